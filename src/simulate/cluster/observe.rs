//! What a watcher of the cluster records: each ReplicaSet's ready and total pods when they
//! change, when a workload settles after its steps, and which steps that waited for it are due.

use super::{Cluster, Item, PodTrace};
use crate::simulate::manifest::Kind;
use crate::simulate::queue::Clock;

impl Cluster<'_> {
    /// Records what changed at this moment, and puts steps whose workload is ready on the clock.
    pub(super) fn observe(&mut self) {
        for w in 0..self.states.len() {
            let counts: Vec<(u32, u32)> = (0..self.states[w].sets.len())
                .map(|set| {
                    self.active(w, Some(set))
                        .fold((0, 0), |(ready, total), (_, p)| {
                            (ready + u32::from(p.pod.ready()), total + 1)
                        })
                })
                .collect();
            let trace = &mut self.traces[w];
            trace.sets = self.states[w].sets.iter().map(|s| s.name.clone()).collect();
            if trace.counts.last().map(|(_, c)| c) != Some(&counts) {
                trace.counts.push((self.now, counts));
            }
        }
        for w in 0..self.states.len() {
            if self.traces[w].settled.is_none()
                && self.steps.all_done_for(&self.states[w].workload.name)
                && self.settled(w)
            {
                let mark = self.traces[w].counts.len();
                self.traces[w].settled = Some((self.now, mark));
            }
        }
        if let Some((index, workload)) = self.steps.waiting_for_ready()
            && let Some(w) = self.states.iter().position(|s| s.workload.name == workload)
            && self.settled(w)
        {
            self.steps.scheduled(index);
            self.queue.schedule(self.now, Item::Step(index));
        }
    }

    /// Every pod of the workload available, and for a Deployment only pods of its newest
    /// template.
    fn settled(&self, w: usize) -> bool {
        let state = &self.states[w];
        let min_ready = u64::from(state.workload.min_ready_seconds) * 1000;
        let newest = state.templates.len() - 1;
        let active: Vec<&PodTrace> = self.active(w, None).map(|(_, p)| p).collect();
        active.len() as u32 == state.replicas
            && active.iter().all(|p| {
                p.pod.available(self.now, min_ready)
                    && (state.workload.kind != Kind::Deployment || p.revision == newest)
            })
    }
}
