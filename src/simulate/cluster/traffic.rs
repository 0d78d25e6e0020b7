//! The offered load on the cluster (`simulate --load`): which pods are in the Service's
//! endpoints, each pod's queue brought up to date whenever something that moves it changes, the
//! view a probe gets of it, the kills it causes, and what the clients got.
//!
//! A pod enters the endpoints when it is Ready, running and not being deleted, and leaves when
//! it is not, each 0-1 s after the change (the endpoints controller and kube-proxy; on the
//! local cluster a pod that fails readiness stops getting traffic in under a second). Arrivals
//! split evenly over the endpoints; those that reach a pod whose process does not listen are
//! refused.
//!
//! With no endpoint at all, kube-proxy rejects new connections with an ICMP port-unreachable,
//! but the kernel sends at most about one of those a second to a client (`icmp_ratelimit`), so
//! a busy client's connections mostly hear nothing and retry their SYN 1 s, then 3 s, 7 s, ...
//! after the first (the initial retransmission timeout, doubling). Those still retrying when an
//! endpoint comes back reach it together: measured on the local cluster, a Service with no
//! endpoint refused 7 of 30 connections and left 23 to time out, and a pod coming back took
//! 430 queued requests in 2 s under 100/s. So the requests of a stretch with no endpoint are
//! held: those whose next retry falls before their client's time-out arrive, spread over the
//! retries' span, at the first pods back; the others time out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Cluster, Item, Scenario};
use crate::chaos::plan::mix;
use crate::simulate::kubelet::{Ms, ProbeKind, Reason, Seen};
use crate::simulate::queue::Clock;
use crate::simulate::timeline::QueueView;
use crate::simulate::traffic::{Door, Offered, Outcomes, PodQueue, SPREAD_SIGMAS, split_scv};

/// How long the endpoints take to follow a pod's readiness.
pub const ENDPOINTS_LAG: (Ms, Ms) = (0, 1_000);
/// A SYN's first retransmission timeout (Linux's `TCP_TIMEOUT_INIT`); each retry doubles it.
const SYN_RETRY: Ms = 1_000;

/// The moments, after a connect's first SYN, at which it retries (1 s, 3 s, 7 s, ...), before
/// `timeout`.
fn syn_retries(timeout: Ms) -> impl Iterator<Item = Ms> {
    (1..16u32)
        .map(|i| SYN_RETRY * ((1 << i) - 1))
        .take_while(move |at| *at < timeout)
}

/// What the load did in one scenario.
#[derive(Debug, Clone, Default)]
pub struct LoadTrace {
    /// How the load spread, each time it changed.
    pub samples: Vec<LoadSample>,
    /// Every liveness or startup kill that the queue caused.
    pub kills: Vec<LoadKill>,
    /// What the clients got, to the horizon.
    pub outcomes: Outcomes,
}

/// The load at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSample {
    pub at: Ms,
    /// Offered rate.
    pub rate: f64,
    /// Pods in the endpoints.
    pub endpoints: u32,
    /// Arrivals per second at each of them.
    pub per_pod: f64,
    /// The highest utilisation among them.
    pub utilisation: f64,
    /// The longest fluid wait among the group's pods, seconds.
    pub wait_s: f64,
}

/// A kill by a probe that failed because it waited in the queue (or was shed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadKill {
    pub at: Ms,
    /// The pod's index in the trace.
    pub pod: usize,
    pub probe: ProbeKind,
    /// The probe was refused by a full queue rather than timed out.
    pub shed: bool,
    /// The pod was still Ready (getting traffic) when it was killed.
    pub ready: bool,
}

/// The load's state in one run.
pub(super) struct Traffic {
    offered: Offered,
    /// Indices of the workloads whose pods share it.
    workloads: Vec<usize>,
    endpoints: BTreeSet<usize>,
    queues: BTreeMap<usize, PodQueue>,
    /// Per pod, how many standard deviations of the queueing spread it takes.
    sigmas: BTreeMap<usize, f64>,
    rng: ChaCha8Rng,
    at: Ms,
    /// Requests sent while no pod was in the endpoints, and given up.
    unrouted: Outcomes,
    /// Since when no pod has been in the endpoints, while the load was on.
    held_since: Option<Ms>,
    /// Requests that retried their connect through a stretch with no endpoint, arriving at the
    /// first pods back: this many a second until then.
    burst: Option<(Ms, f64)>,
    pub(super) trace: LoadTrace,
}

impl Traffic {
    pub(super) fn new(offered: Offered, workloads: Vec<usize>, scenario: Scenario) -> Traffic {
        let seed = match scenario {
            Scenario::Drawn(seed) => seed,
            Scenario::Earliest => 1,
            Scenario::Latest => 2,
        };
        Traffic {
            offered,
            workloads,
            endpoints: BTreeSet::new(),
            queues: BTreeMap::new(),
            sigmas: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(mix(seed, 0x7AFF1C)),
            at: 0,
            unrouted: Outcomes::default(),
            held_since: None,
            burst: None,
            trace: LoadTrace::default(),
        }
    }
}

/// What a pod was before a wake-up, to tell what the wake-up changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Before {
    pub(super) ready: bool,
    pub(super) gone: bool,
    deleting: bool,
    container: Option<(Ms, Option<Ms>)>,
    records: usize,
}

impl Cluster<'_> {
    /// Whether the pod at `index` shares the offered load.
    fn loaded_pod(&self, index: usize) -> bool {
        self.traffic
            .as_ref()
            .is_some_and(|t| t.workloads.contains(&self.pods[index].workload))
    }

    /// The rate changes of the offered load go on the clock.
    pub(super) fn schedule_traffic(&mut self) {
        if let Some(traffic) = &self.traffic {
            let changes: Vec<Ms> = traffic.offered.changes().collect();
            for at in changes {
                self.queue.schedule(at, Item::Traffic);
            }
        }
    }

    /// What the pod was, before a wake-up.
    pub(super) fn before(&self, index: usize) -> Before {
        let pod = &self.pods[index].pod;
        Before {
            ready: pod.ready(),
            gone: pod.gone(),
            deleting: pod.deleting.is_some(),
            container: pod.container(),
            records: pod.record.len(),
        }
    }

    /// Every queue of the load brought to now, and what reached no pod counted.
    fn advance_traffic(&mut self) {
        let now = self.now;
        let Some(traffic) = &mut self.traffic else {
            return;
        };
        if traffic.endpoints.is_empty()
            && now > traffic.at
            && traffic.offered.rate_at(traffic.at) > 0.0
        {
            traffic.held_since.get_or_insert(traffic.at);
        }
        traffic.at = now;
        for queue in traffic.queues.values_mut() {
            queue.advance(now);
        }
    }

    /// The load brought to now, and each pod's share, door and capacity set from now on.
    pub(super) fn refresh_traffic(&mut self) {
        self.advance_traffic();
        let now = self.now;
        let Some(traffic) = &self.traffic else {
            return;
        };
        let members: Vec<usize> = self
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| traffic.workloads.contains(&p.workload))
            .map(|(i, _)| i)
            .collect();
        let burst = traffic
            .burst
            .filter(|(until, _)| now < *until)
            .map_or(0.0, |(_, rate)| rate);
        let rate = traffic.offered.rate_at(now);
        let n = traffic.endpoints.len();
        let per_pod = if n == 0 {
            0.0
        } else {
            (rate + burst) / n as f64
        };
        let timeout = traffic.offered.client_timeout.as_secs_f64();
        let mut settings = Vec::new();
        for &i in &members {
            let p = &self.pods[i];
            let (door, capacity) = match p.pod.container() {
                None => (Door::Closed, None),
                Some((since, sigterm)) => {
                    let t = Duration::from_millis(now - since);
                    let life = &p.life;
                    let closed =
                        sigterm.is_some_and(|s| now >= s + life.shutdown_delay.as_millis() as Ms);
                    let door = if t < life.open || closed {
                        Door::Closed
                    } else if life.hung(t) {
                        Door::Silent
                    } else if t < life.loaded {
                        Door::Unavailable
                    } else {
                        Door::Open
                    };
                    (door, life.capacity_at(t).copied())
                }
            };
            let share = if traffic.endpoints.contains(&i) {
                per_pod
            } else {
                0.0
            };
            settings.push((i, share, door, capacity));
        }
        let scenario = self.scenario;
        let Some(traffic) = &mut self.traffic else {
            return;
        };
        let mut utilisation = 0.0f64;
        let mut wait = 0.0f64;
        for (i, share, door, capacity) in settings {
            if !traffic.sigmas.contains_key(&i) {
                let sigmas = match scenario {
                    Scenario::Earliest => SPREAD_SIGMAS,
                    Scenario::Latest => -SPREAD_SIGMAS,
                    Scenario::Drawn(_) => traffic.rng.random_range(-SPREAD_SIGMAS..=SPREAD_SIGMAS),
                };
                traffic.sigmas.insert(i, sigmas);
            }
            let queue = traffic
                .queues
                .entry(i)
                .or_insert_with(|| PodQueue::new(now, timeout));
            queue.set(share, split_scv(n), capacity, door);
            if share > 0.0 {
                utilisation = utilisation.max(queue.utilisation());
            }
            wait = wait.max(queue.backlog());
        }
        let sample = LoadSample {
            at: now,
            rate,
            endpoints: n as u32,
            per_pod,
            utilisation,
            wait_s: wait,
        };
        let samples = &mut traffic.trace.samples;
        let same = samples.last().is_some_and(|last| {
            (last.rate, last.endpoints, last.per_pod) == (rate, sample.endpoints, per_pod)
                && (last.wait_s - wait).abs() < 0.05
        });
        if !same {
            samples.push(sample);
        }
    }

    /// What the pod's queue holds now, for a probe or a SIGTERM.
    pub(super) fn queue_view(&mut self, index: usize) -> QueueView {
        if !self.loaded_pod(index) {
            return QueueView::default();
        }
        self.advance_traffic();
        let scenario = self.scenario;
        let Some(traffic) = &mut self.traffic else {
            return QueueView::default();
        };
        let Some(queue) = traffic.queues.get(&index) else {
            return QueueView::default();
        };
        let sigmas = traffic.sigmas.get(&index).copied().unwrap_or(0.0);
        // Drawn scenarios draw each probe's wait below saturation; the earliest and latest
        // take its mean.
        let draw = match scenario {
            Scenario::Drawn(_) => Some((traffic.rng.random::<f64>(), traffic.rng.random::<f64>())),
            _ => None,
        };
        QueueView {
            wait: Duration::from_secs_f64(queue.wait(sigmas, draw)),
            backlog: Duration::from_secs_f64(queue.backlog()),
            full: queue.full(),
            draw: 0.0,
        }
    }

    /// After the pod at `index` woke with `view` of its queue: endpoints follow its readiness,
    /// its queue follows its container, and a kill the queue caused is recorded.
    pub(super) fn after_wake(&mut self, index: usize, before: Before, view: &QueueView) {
        if !self.loaded_pod(index) {
            return;
        }
        let pod = &self.pods[index].pod;
        let (ready, gone, container) = (pod.ready(), pod.gone(), pod.container());
        // A pod being deleted leaves the endpoints at once, Ready or not.
        let deleting = pod.deleting.is_some();
        if (ready, gone, deleting) != (before.ready, before.gone, before.deleting) {
            self.schedule_endpoints(index);
        }
        let now = self.now;
        let mut refresh = false;
        if container.map(|c| c.0) != before.container.map(|c| c.0) {
            // The container ended or started: what its queue held is cut off, and the moments
            // its door changes go on the clock.
            self.advance_traffic();
            if let Some(queue) = self.traffic.as_mut().and_then(|t| t.queues.get_mut(&index)) {
                queue.cut();
            }
            if let Some((since, _)) = container {
                let life = &self.pods[index].life;
                let mut moments = vec![life.open, life.loaded];
                moments.extend(life.hang);
                for (window, _) in &life.overload {
                    moments.push(window.start);
                    moments.extend(window.end);
                }
                for moment in moments {
                    if moment != Duration::MAX {
                        let at = since + moment.as_millis() as Ms;
                        if at > now && at <= self.horizon {
                            self.queue.schedule(at, Item::Traffic);
                        }
                    }
                }
            }
            refresh = true;
        }
        let sigterm = container.and_then(|c| c.1);
        if sigterm.is_some() && sigterm != before.container.and_then(|c| c.1) {
            let delay = self.pods[index].life.shutdown_delay.as_millis() as Ms;
            if delay > 0 {
                self.queue.schedule(now + delay, Item::Traffic);
            }
            refresh = true;
        }
        let pod = &self.pods[index].pod;
        for (at, seen) in &pod.record[before.records..] {
            if let Seen::Event {
                reason: Reason::Killing,
                probe: Some(kind @ (ProbeKind::Liveness | ProbeKind::Startup)),
                ..
            } = seen
            {
                let capacity = before
                    .container
                    .and_then(|(since, _)| {
                        self.pods[index]
                            .life
                            .capacity_at(Duration::from_millis(at - since))
                            .copied()
                    })
                    .filter(|c| c.probes_queued);
                let timeout = pod.spec().probe(*kind).map_or(Duration::from_secs(1), |p| {
                    Duration::from_secs(u64::from(p.timeout))
                });
                if let Some(capacity) = capacity {
                    let shed = view.full && capacity.shed_probes;
                    let waited = view.wait + Duration::from_secs_f64(capacity.probe_s);
                    if shed || waited >= timeout {
                        let kill = LoadKill {
                            at: *at,
                            pod: index,
                            probe: *kind,
                            shed,
                            ready: before.ready,
                        };
                        if let Some(traffic) = &mut self.traffic {
                            traffic.trace.kills.push(kill);
                        }
                    }
                }
            }
        }
        if refresh {
            self.refresh_traffic();
        }
    }

    /// The endpoints will follow the pod's state after the lag.
    fn schedule_endpoints(&mut self, index: usize) {
        let lag = match self.scenario {
            Scenario::Earliest => ENDPOINTS_LAG.0,
            Scenario::Latest => ENDPOINTS_LAG.1,
            Scenario::Drawn(_) => match &mut self.traffic {
                Some(t) => t.rng.random_range(ENDPOINTS_LAG.0..=ENDPOINTS_LAG.1),
                None => 0,
            },
        };
        self.queue.schedule(self.now + lag, Item::Endpoints(index));
    }

    /// The endpoints now hold the pod if it is Ready, running and not being deleted.
    pub(super) fn update_endpoints(&mut self, index: usize) {
        self.advance_traffic();
        let now = self.now;
        let pod = &self.pods[index].pod;
        let member = pod.ready() && pod.running() && pod.deleting.is_none();
        let Some(traffic) = &mut self.traffic else {
            return;
        };
        let changed = if member {
            traffic.endpoints.insert(index)
        } else {
            traffic.endpoints.remove(&index)
        };
        if !changed {
            return;
        }
        if let Some(since) = traffic.held_since.take()
            && !traffic.endpoints.is_empty()
        {
            // The stretch with no endpoint is over: who was still retrying arrives now.
            let timeout = traffic.offered.client_timeout.as_millis() as Ms;
            let window = syn_retries(timeout).last().unwrap_or(0);
            let gap = now - since;
            let rate = traffic.offered.rate_at(since);
            let held = rate * gap.min(window) as f64 / 1000.0;
            traffic.unrouted.timed_out += rate * gap.saturating_sub(window) as f64 / 1000.0;
            let spread = window.saturating_sub(SYN_RETRY).max(SYN_RETRY);
            if held > 0.0 {
                traffic.burst = Some((now + spread, held / (spread as f64 / 1000.0)));
                self.queue.schedule(now + spread, Item::Traffic);
            }
        }
        self.refresh_traffic();
    }

    /// The load to the horizon: the clients' outcomes summed.
    pub(super) fn finish_traffic(&mut self) -> Option<LoadTrace> {
        self.now = self.horizon;
        self.advance_traffic();
        let mut traffic = self.traffic.take()?;
        if let Some(since) = traffic.held_since {
            // Still no endpoint at the horizon: every request held times out.
            let rate = traffic.offered.rate_at(since);
            traffic.unrouted.timed_out += rate * (self.horizon - since) as f64 / 1000.0;
        }
        let mut trace = traffic.trace;
        trace.outcomes = traffic.unrouted;
        for queue in traffic.queues.values() {
            trace.outcomes.add(&queue.outcomes);
        }
        Some(trace)
    }
}
