//! The controllers' syncs: a bare Pod's creation, the ReplicaSet controller's replicas and the
//! Deployment controller's ReplicaSets, on the arithmetic of `simulate::controllers`.

use super::{Cluster, Item, Set, slack};
use crate::simulate::controllers::{
    Rank, SetState, fenceposts, recreate_sync, rolling_sync, to_delete,
};
use crate::simulate::manifest::{Kind, Strategy};
use crate::simulate::queue::Clock;

impl Cluster<'_> {
    /// A controller sync at `at`. Syncs read the state when they run, so an extra one is
    /// harmless, and a later one (a pod becoming available after minReadySeconds) is never
    /// folded into an earlier one.
    fn schedule_reconcile(&mut self, workload: usize, at: u64) {
        self.queue.schedule(at, Item::Reconcile(workload));
    }

    /// A pod's readiness or existence changed: its controller syncs soon, and again when the
    /// pod becomes available.
    pub(super) fn pod_changed(&mut self, index: usize) {
        let workload = self.pods[index].workload;
        let delay = self.pick(slack::CONTROLLER);
        self.schedule_reconcile(workload, self.now + delay);
        // A pod becomes available once Ready for minReadySeconds.
        let min_ready = u64::from(self.states[workload].workload.min_ready_seconds) * 1000;
        if min_ready > 0
            && let Some(since) = self.pods[index].pod.ready_since()
        {
            self.schedule_reconcile(workload, since + min_ready + delay);
        }
    }

    pub(super) fn reconcile(&mut self, w: usize) {
        match self.states[w].workload.kind {
            Kind::Pod => {
                if self.states[w].sets.is_empty() {
                    let name = self.states[w].workload.name.clone();
                    self.states[w].sets.push(Set {
                        name: name.clone(),
                        revision: 0,
                        spec: 1,
                    });
                    self.create_pod(w, 0, 0, name);
                }
            }
            Kind::ReplicaSet => {
                let state = &mut self.states[w];
                if state.sets.is_empty() {
                    state.sets.push(Set {
                        name: state.workload.name.clone(),
                        revision: 0,
                        spec: 0,
                    });
                }
                // The template of a ReplicaSet changes in place: new pods get the newest one,
                // running pods keep theirs.
                state.sets[0].spec = state.replicas;
                self.replicate(w);
            }
            Kind::Deployment => {
                self.deploy(w);
                self.replicate(w);
            }
        }
    }

    /// The Deployment controller: a ReplicaSet per template, scaled by the strategy.
    fn deploy(&mut self, w: usize) {
        let revision = self.states[w].templates.len() - 1;
        let name = self.states[w].workload.name.clone();
        if self.states[w].sets.last().map(|s| s.revision) != Some(revision) {
            self.states[w].sets.push(Set {
                name: format!("{name}-r{}", revision + 1),
                revision,
                spec: 0,
            });
        }
        let now = self.now;
        let min_ready = u64::from(self.states[w].workload.min_ready_seconds) * 1000;
        let mut sets: Vec<SetState> = self.states[w]
            .sets
            .iter()
            .enumerate()
            .map(|(index, set)| {
                let (available, active) =
                    self.active(w, Some(index)).fold((0, 0), |(a, n), (_, p)| {
                        (a + u32::from(p.pod.available(now, min_ready)), n + 1)
                    });
                SetState {
                    spec: set.spec,
                    available,
                    active,
                }
            })
            .collect();
        let (old, new) = sets.split_at_mut(self.states[w].sets.len() - 1);
        let new = &mut new[0];
        let replicas = self.states[w].replicas;
        let changed = match &self.states[w].workload.strategy {
            Strategy::Recreate => {
                let newest = self.states[w].sets.len() - 1;
                // Pods being deleted count too: Recreate waits until they are gone.
                let old_pods = self
                    .pods
                    .iter()
                    .filter(|p| p.workload == w && p.set != newest && !p.pod.gone())
                    .count() as u32;
                recreate_sync(replicas, new, old, old_pods)
            }
            strategy => match fenceposts(strategy, replicas) {
                Ok((surge, unavailable)) => rolling_sync(replicas, surge, unavailable, new, old),
                Err(_) => false,
            },
        };
        for (set, state) in self.states[w].sets.iter_mut().zip(&sets) {
            set.spec = state.spec;
        }
        if changed {
            let delay = self.pick(slack::CONTROLLER);
            self.schedule_reconcile(w, now + delay);
        }
    }

    /// The ReplicaSet controller for every set of the workload.
    fn replicate(&mut self, w: usize) {
        for s in 0..self.states[w].sets.len() {
            let revision = self.states[w].sets[s].revision;
            let spec = self.states[w].sets[s].spec as usize;
            let active: Vec<usize> = self.active(w, Some(s)).map(|(i, _)| i).collect();
            if active.len() < spec {
                for _ in active.len()..spec {
                    let state = &mut self.states[w];
                    state.next_pod += 1;
                    let template = match state.workload.kind {
                        // A ReplicaSet's new pods take its newest template.
                        Kind::ReplicaSet => state.templates.len() - 1,
                        _ => revision,
                    };
                    let name = format!("{}-{}", state.sets[s].name, state.next_pod);
                    self.create_pod(w, s, template, name);
                }
            } else if active.len() > spec {
                let ranks: Vec<Rank> = active
                    .iter()
                    .map(|&i| {
                        let p = &self.pods[i].pod;
                        Rank {
                            running: p.running(),
                            ready: p.ready(),
                            ready_since: p.ready_since(),
                            restarts: p.restarts,
                            created: p.created,
                        }
                    })
                    .collect();
                for victim in to_delete(&ranks, active.len() - spec) {
                    self.delete_pod(active[victim]);
                }
            }
        }
    }
}
