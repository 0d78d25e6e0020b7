//! One run of the whole input on a simulated cluster, for one scenario (one set of the unknowns
//! the manifests do not fix: the draws of unknown seeds, how fast the cluster starts things,
//! the probes' phases). Its parts:
//!
//! - the clock (`queue`): times and targets only;
//! - the kubelet (`kubelet`): each pod's containers and probes;
//! - the controllers (`control`): the ReplicaSet and Deployment syncs, over `controllers`'
//!   arithmetic;
//! - the steps (`steps`): changes after the apply, each due in order;
//! - pod construction (`pods`): a pod's application timeline and the cluster's pace, drawn
//!   for the scenario;
//! - observation (`observe`): what `kubectl get` would show, recorded as it changes.

mod control;
mod observe;
mod pods;
mod traffic;

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::app::Overrides;
use super::kubelet::{Ms, Pod, Wake};
use super::manifest::{Template, Workload};
use super::queue::{Clock, Queue, Scoped};
use super::steps::Steps;
pub use super::steps::{Action, Step, When};
use super::timeline::{QueueView, Timeline};
use super::traffic::Offered;
use crate::chaos::plan::mix;
pub use pods::{Scenario, slack};
use traffic::Traffic;
pub use traffic::{ENDPOINTS_LAG, LoadKill, LoadSample, LoadTrace};

/// What one run saw.
#[derive(Debug, Clone)]
pub struct Trace {
    pub pods: Vec<PodTrace>,
    pub workloads: Vec<WorkloadTrace>,
    /// What the offered load did, when there was one.
    pub load: Option<LoadTrace>,
}

/// One pod's record, and the rows it was in.
#[derive(Debug, Clone)]
pub struct PodTrace {
    pub pod: Pod,
    pub workload: usize,
    /// The ReplicaSet it belongs to (its index in the workload's trace).
    pub set: usize,
    /// The template revision it runs (0 for the manifest as given).
    pub revision: usize,
    pub life: Arc<Timeline>,
    /// What runs in it: the profile's name, or the timeline file's.
    pub app: String,
    /// The seed of its draws, when its name fixes it.
    pub seed: Option<u64>,
}

/// A workload's ReplicaSets over time.
#[derive(Debug, Clone, Default)]
pub struct WorkloadTrace {
    /// ReplicaSet names, by revision.
    pub sets: Vec<String>,
    /// (time, per ReplicaSet: ready, total pods not being deleted).
    pub counts: Vec<(Ms, Vec<(u32, u32)>)>,
    /// When each step happened.
    pub steps: Vec<Ms>,
    /// How many entries `counts` had when each step happened: what came before, even at the
    /// same millisecond, was before it.
    pub step_marks: Vec<usize>,
    /// When the workload settled after its last step (every pod available, on the newest
    /// template for a Deployment), and how many entries `counts` had then.
    pub settled: Option<(Ms, usize)>,
}

/// What the clock runs.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// A pod's own wake-up.
    Pod(usize, Wake),
    /// A controller sync of a workload.
    Reconcile(usize),
    Step(usize),
    /// The endpoints follow a pod's readiness.
    Endpoints(usize),
    /// Something that moves the queues changed: the offered rate, or a door.
    Traffic,
}

/// A ReplicaSet of a workload.
struct Set {
    name: String,
    revision: usize,
    /// `spec.replicas`.
    spec: u32,
}

/// A workload as its controller holds it.
struct WorkloadState {
    workload: Workload,
    /// The pod templates, oldest first: one more for every step that changes it.
    templates: Vec<Template>,
    replicas: u32,
    sets: Vec<Set>,
    next_pod: usize,
}

/// The simulated cluster for one scenario.
pub struct Cluster<'a> {
    scenario: Scenario,
    overrides: &'a Overrides,
    horizon: Ms,
    now: Ms,
    queue: Queue<Item>,
    rng: ChaCha8Rng,
    /// Where in a declared latency range each probe answers: a stream of its own, so the other
    /// draws stay where they were.
    probe_rng: ChaCha8Rng,
    pods: Vec<PodTrace>,
    states: Vec<WorkloadState>,
    traces: Vec<WorkloadTrace>,
    steps: Steps,
    traffic: Option<Traffic>,
}

impl<'a> Cluster<'a> {
    /// A cluster where `workloads` are applied at time 0 and `steps` follow.
    pub fn new(
        workloads: &[Workload],
        steps: &[Step],
        scenario: Scenario,
        overrides: &'a Overrides,
        horizon: Duration,
    ) -> Self {
        let seed = match scenario {
            Scenario::Drawn(seed) => seed,
            Scenario::Earliest => 1,
            Scenario::Latest => 2,
        };
        let mut cluster = Cluster {
            scenario,
            overrides,
            horizon: horizon.as_millis() as Ms,
            now: 0,
            queue: Queue::default(),
            rng: ChaCha8Rng::seed_from_u64(mix(seed, 0x5157)),
            probe_rng: ChaCha8Rng::seed_from_u64(mix(seed, 0x9B0BE)),
            pods: Vec::new(),
            states: Vec::new(),
            traces: Vec::new(),
            steps: Steps::new(steps),
            traffic: None,
        };
        for workload in workloads {
            cluster.states.push(WorkloadState {
                templates: vec![workload.template.clone()],
                replicas: workload.replicas,
                sets: Vec::new(),
                next_pod: 0,
                workload: workload.clone(),
            });
            cluster.traces.push(WorkloadTrace::default());
        }
        for i in 0..cluster.states.len() {
            cluster.queue.schedule(0, Item::Reconcile(i));
        }
        cluster.schedule_steps();
        cluster
    }

    /// The offered load enters through the pods of these workloads (by name).
    pub fn with_load(mut self, offered: &Offered) -> Self {
        let workloads = self
            .states
            .iter()
            .enumerate()
            .filter(|(_, s)| offered.workloads.contains(&s.workload.name))
            .map(|(i, _)| i)
            .collect();
        self.traffic = Some(Traffic::new(offered.clone(), workloads, self.scenario));
        self.schedule_traffic();
        self
    }

    /// Runs to the horizon and returns what was seen.
    pub fn run(mut self) -> Trace {
        while let Some((at, item)) = self.queue.pop_until(self.horizon) {
            self.now = at;
            match item {
                Item::Pod(index, wake) => {
                    let before = self.before(index);
                    let mut view = self.queue_view(index);
                    // A slow answer comes sooner to a timeout: the earliest scenario takes the
                    // slow end of a declared latency, the latest the fast end.
                    view.draw = match self.scenario {
                        Scenario::Earliest => 1.0,
                        Scenario::Latest => 0.0,
                        Scenario::Drawn(_) => self.probe_rng.random::<f64>(),
                    };
                    self.wake_pod(index, wake, &view);
                    let pod = &self.pods[index].pod;
                    if (before.ready, before.gone) != (pod.ready(), pod.gone()) {
                        self.pod_changed(index);
                    }
                    self.after_wake(index, before, &view);
                }
                Item::Reconcile(workload) => self.reconcile(workload),
                Item::Step(step) => self.step(step),
                Item::Endpoints(index) => self.update_endpoints(index),
                Item::Traffic => self.refresh_traffic(),
            }
            self.observe();
        }
        let load = self.finish_traffic();
        Trace {
            pods: self.pods,
            workloads: self.traces,
            load,
        }
    }

    /// The pod at `index` handles `wake` with `view` of its queue, on a clock that sends what
    /// it schedules back to it.
    fn wake_pod(&mut self, index: usize, wake: Wake, view: &QueueView) {
        let mut clock = Scoped::new(&mut self.queue, |w| Item::Pod(index, w));
        self.pods[index].pod.wake(self.now, wake, view, &mut clock);
    }

    /// The pod at `index` is deleted now.
    fn delete_pod(&mut self, index: usize) {
        let before = self.before(index);
        let view = self.queue_view(index);
        let mut clock = Scoped::new(&mut self.queue, |w| Item::Pod(index, w));
        self.pods[index].pod.delete(self.now, &view, &mut clock);
        self.pod_changed(index);
        self.after_wake(index, before, &view);
    }

    /// The pods of workload `w` (of its ReplicaSet `set`, when given) that are neither being
    /// deleted nor gone: what a controller counts as the set's pods.
    fn active(&self, w: usize, set: Option<usize>) -> impl Iterator<Item = (usize, &PodTrace)> {
        self.pods.iter().enumerate().filter(move |(_, p)| {
            p.workload == w && set.is_none_or(|s| p.set == s) && p.pod.active()
        })
    }

    /// Steps that are due by the clock go on it.
    fn schedule_steps(&mut self) {
        while let Some((index, at)) = self.steps.due_by_time() {
            self.queue.schedule(at, Item::Step(index));
        }
    }

    fn step(&mut self, index: usize) {
        self.steps.done(index, self.now);
        let step = self.steps.get(index).clone();
        if let Some(w) = self
            .states
            .iter()
            .position(|s| s.workload.name == step.workload)
        {
            self.traces[w].steps.push(self.now);
            let mark = self.traces[w].counts.len();
            self.traces[w].step_marks.push(mark);
            if step.action == Action::DeletePod {
                // The oldest of its pods that is neither being deleted nor gone.
                let oldest = self.active(w, None).map(|(i, _)| i).next();
                if let Some(index) = oldest {
                    self.delete_pod(index);
                }
            }
            let state = &mut self.states[w];
            match step.action {
                Action::DeletePod => {}
                Action::Scale(n) => state.replicas = n,
                Action::SetImage(tag) => {
                    let mut template = state
                        .templates
                        .last()
                        .cloned()
                        .unwrap_or_else(|| state.workload.template.clone());
                    for c in template.containers.iter_mut().filter(|c| c.modelled()) {
                        let repository =
                            c.image.rsplit_once(':').map_or(c.image.as_str(), |(r, t)| {
                                if t.contains('/') { c.image.as_str() } else { r }
                            });
                        c.image = format!("{repository}:{tag}");
                    }
                    state.templates.push(template);
                }
                Action::Apply(workload) => {
                    state.replicas = workload.replicas;
                    state.workload.strategy = workload.strategy.clone();
                    state.workload.min_ready_seconds = workload.min_ready_seconds;
                    state.templates.push(workload.template.clone());
                }
            }
            self.queue.schedule(self.now, Item::Reconcile(w));
        }
        self.schedule_steps();
    }
}
