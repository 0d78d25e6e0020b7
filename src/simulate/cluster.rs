//! One run of the whole input on a simulated cluster: a clock, the kubelet's pods and the
//! controllers of each workload, for one scenario (one set of the unknowns the manifests do not
//! fix: the draws of unknown seeds, how fast the cluster starts things, the probes' phases).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::app::{Life, Overrides, Settings, WORKING_SET};
use super::controllers::{Counts, Rank, fenceposts, recreate_sync, rolling_sync, to_delete};
use super::kubelet::{Ms, Pace, Pod, PodSpec, ProbeKind, Wake};
use super::manifest::{Kind, Strategy, Template, Workload};
use crate::chaos::plan::{Draw, mix};

/// When a step happens.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// This long after the manifests are applied.
    At(Ms),
    /// This long after the step before.
    After(Ms),
    /// Once every pod of the workload is available and the last rollout is over.
    Ready,
}

/// What a step does to a workload.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `kubectl set image`: this tag on every chaos-inference container.
    SetImage(String),
    /// `kubectl scale --replicas`.
    Scale(u32),
    /// `kubectl apply` of a changed manifest of the same workload.
    Apply(Box<Workload>),
}

/// A change to a workload at some moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub workload: String,
    pub action: Action,
    pub when: When,
}

/// The unknowns one run takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// Everything as early as it can be: quick cluster, every range at its low end.
    Earliest,
    /// Everything as late as it can be.
    Latest,
    /// Each unknown drawn from this seed.
    Drawn(u64),
}

/// The cluster's pace, drawn per pod: the documented slack of `docs/simulate.md`.
pub mod slack {
    use super::Ms;
    /// Pod created to container running (sandbox, image present): a few hundred milliseconds
    /// on the reference cluster, seconds on a busy node.
    pub const START: (Ms, Ms) = (200, 4_000);
    /// Restart decided to container running again.
    pub const RESTART: (Ms, Ms) = (300, 2_000);
    /// A container's exit to the kubelet acting on it (the PLEG relists every second).
    pub const NOTICE: (Ms, Ms) = (0, 1_500);
    /// A pod in back-off is synced again every 10-15 s: a restart lands up to 15 s late.
    pub const RESYNC: (Ms, Ms) = (0, 15_000);
    /// A controller acting on a change.
    pub const CONTROLLER: (Ms, Ms) = (50, 1_000);
}

/// What one run saw.
#[derive(Debug, Clone)]
pub struct Trace {
    pub pods: Vec<PodTrace>,
    pub workloads: Vec<WorkloadTrace>,
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
    pub life: Arc<Life>,
    pub settings: Arc<Settings>,
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

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Pod(usize, u64),
    Reconcile(usize),
    Step(usize),
}

struct Set {
    name: String,
    revision: usize,
    spec: u32,
}

struct WorkloadState {
    workload: Workload,
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
    seq: u64,
    queue: BinaryHeap<Reverse<(Ms, u64, Item)>>,
    wakes: Vec<Option<Wake>>,
    rng: ChaCha8Rng,
    pods: Vec<PodTrace>,
    states: Vec<WorkloadState>,
    traces: Vec<WorkloadTrace>,
    steps: Vec<Step>,
    step_done: Vec<Option<Ms>>,
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
            seq: 0,
            queue: BinaryHeap::new(),
            wakes: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(mix(seed, 0x5157)),
            pods: Vec::new(),
            states: Vec::new(),
            traces: Vec::new(),
            steps: steps.to_vec(),
            step_done: vec![None; steps.len()],
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
            cluster.schedule(0, Item::Reconcile(i));
        }
        cluster.schedule_steps();
        cluster
    }

    /// A value in `range`: its low end in the earliest scenario, high end in the latest.
    fn pick(&mut self, range: (Ms, Ms)) -> Ms {
        match self.scenario {
            Scenario::Earliest => range.0,
            Scenario::Latest => range.1,
            Scenario::Drawn(_) => self.rng.random_range(range.0..=range.1),
        }
    }

    fn schedule(&mut self, at: Ms, item: Item) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, item)));
    }

    /// A controller sync at `at`. Syncs read the state when they run, so an extra one is
    /// harmless, and a later one (a pod becoming available after minReadySeconds) is never
    /// folded into an earlier one.
    fn schedule_reconcile(&mut self, workload: usize, at: Ms) {
        self.schedule(at, Item::Reconcile(workload));
    }

    fn schedule_steps(&mut self) {
        for (i, step) in self.steps.iter().enumerate() {
            if self.step_done[i].is_some() {
                continue;
            }
            let previous = if i == 0 {
                Some(0)
            } else {
                self.step_done[i - 1]
            };
            match (&step.when, previous) {
                (When::At(t), _) => {
                    let t = *t;
                    self.step_done[i] = Some(Ms::MAX);
                    self.seq += 1;
                    self.queue.push(Reverse((t, self.seq, Item::Step(i))));
                }
                (When::After(d), Some(prev)) if prev != Ms::MAX => {
                    let t = prev + d;
                    self.step_done[i] = Some(Ms::MAX);
                    self.seq += 1;
                    self.queue.push(Reverse((t, self.seq, Item::Step(i))));
                }
                _ => {}
            }
            // Steps run in order: a later one waits for this one.
            break;
        }
    }

    /// Runs to the horizon and returns what was seen.
    pub fn run(mut self) -> Trace {
        while let Some(Reverse((at, _, item))) = self.queue.pop() {
            if at > self.horizon {
                break;
            }
            self.now = at;
            match item {
                Item::Pod(index, wake) => {
                    let Some(wake) = self.wakes[wake as usize].take() else {
                        continue;
                    };
                    let before = self.pods[index].pod.ready();
                    let gone = self.pods[index].pod.gone();
                    let next = self.pods[index].pod.wake(at, wake);
                    for (t, w) in next {
                        self.wake_pod(index, t, w);
                    }
                    if before != self.pods[index].pod.ready() || gone != self.pods[index].pod.gone()
                    {
                        self.pod_changed(index);
                    }
                }
                Item::Reconcile(workload) => self.reconcile(workload),
                Item::Step(step) => self.step(step),
            }
            self.observe();
        }
        Trace {
            pods: self.pods,
            workloads: self.traces,
        }
    }

    fn wake_pod(&mut self, index: usize, at: Ms, wake: Wake) {
        self.wakes.push(Some(wake));
        let id = (self.wakes.len() - 1) as u64;
        self.schedule(at, Item::Pod(index, id));
    }

    fn pod_changed(&mut self, index: usize) {
        let workload = self.pods[index].workload;
        let delay = self.pick(slack::CONTROLLER);
        self.schedule_reconcile(workload, self.now + delay);
        // An available pod becomes available once Ready for minReadySeconds.
        let min_ready = u64::from(self.states[workload].workload.min_ready_seconds) * 1000;
        if min_ready > 0
            && let Some(since) = self.pods[index].pod.ready_since()
        {
            self.schedule_reconcile(workload, since + min_ready + delay);
        }
    }

    /// Records the ready and total pods of each ReplicaSet when they change.
    fn observe(&mut self) {
        for (w, state) in self.states.iter().enumerate() {
            let counts: Vec<(u32, u32)> = (0..state.sets.len())
                .map(|set| {
                    let pods = self.pods.iter().filter(|p| {
                        p.workload == w && p.set == set && p.pod.deleting.is_none() && !p.pod.gone()
                    });
                    pods.fold((0, 0), |(ready, total), p| {
                        (ready + u32::from(p.pod.ready()), total + 1)
                    })
                })
                .collect();
            let trace = &mut self.traces[w];
            trace.sets = state.sets.iter().map(|s| s.name.clone()).collect();
            if trace.counts.last().map(|(_, c)| c) != Some(&counts) {
                trace.counts.push((self.now, counts));
            }
        }
        for w in 0..self.states.len() {
            let name = &self.states[w].workload.name;
            let mine: Vec<usize> = (0..self.steps.len())
                .filter(|&i| &self.steps[i].workload == name)
                .collect();
            let all_done = !mine.is_empty()
                && mine
                    .iter()
                    .all(|&i| self.step_done[i].is_some_and(|t| t != Ms::MAX));
            if all_done && self.traces[w].settled.is_none() && self.settled(w) {
                let mark = self.traces[w].counts.len();
                self.traces[w].settled = Some((self.now, mark));
            }
        }
        // Steps waiting for a workload to be ready.
        for i in 0..self.steps.len() {
            if self.step_done[i].is_some() {
                continue;
            }
            let previous_done =
                i == 0 || self.step_done[i - 1].is_some_and(|t| t != Ms::MAX && t <= self.now);
            if self.steps[i].when == When::Ready
                && previous_done
                && let Some(w) = self
                    .states
                    .iter()
                    .position(|s| s.workload.name == self.steps[i].workload)
                && self.settled(w)
            {
                self.step_done[i] = Some(Ms::MAX);
                let now = self.now;
                self.schedule(now, Item::Step(i));
            }
            break;
        }
    }

    /// Every pod of the workload available, and for a Deployment only pods of its newest
    /// template.
    fn settled(&self, w: usize) -> bool {
        let state = &self.states[w];
        let min_ready = u64::from(state.workload.min_ready_seconds) * 1000;
        let newest = Some(state.templates.len() - 1);
        let active: Vec<&PodTrace> = self
            .pods
            .iter()
            .filter(|p| p.workload == w && p.pod.deleting.is_none() && !p.pod.gone())
            .collect();
        active.len() as u32 == state.replicas
            && active.iter().all(|p| {
                p.pod.available(self.now, min_ready)
                    && (state.workload.kind != Kind::Deployment || Some(p.revision) == newest)
            })
    }

    fn step(&mut self, index: usize) {
        self.step_done[index] = Some(self.now);
        let step = self.steps[index].clone();
        if let Some(w) = self
            .states
            .iter()
            .position(|s| s.workload.name == step.workload)
        {
            self.traces[w].steps.push(self.now);
            let mark = self.traces[w].counts.len();
            self.traces[w].step_marks.push(mark);
            let state = &mut self.states[w];
            match step.action {
                Action::Scale(n) => state.replicas = n,
                Action::SetImage(tag) => {
                    let mut template = state
                        .templates
                        .last()
                        .cloned()
                        .unwrap_or_else(|| state.workload.template.clone());
                    for c in template
                        .containers
                        .iter_mut()
                        .filter(|c| c.is_chaos_inference())
                    {
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
            let now = self.now;
            self.schedule_reconcile(w, now);
        }
        self.schedule_steps();
    }

    fn reconcile(&mut self, w: usize) {
        let kind = self.states[w].workload.kind;
        match kind {
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
        let counts: Vec<Counts> = self.states[w]
            .sets
            .iter()
            .enumerate()
            .map(|(index, set)| {
                let pods = self.pods.iter().filter(|p| {
                    p.workload == w && p.set == index && p.pod.deleting.is_none() && !p.pod.gone()
                });
                let (available, active) = pods.fold((0, 0), |(a, n), p| {
                    (a + u32::from(p.pod.available(now, min_ready)), n + 1)
                });
                Counts {
                    spec: set.spec,
                    available,
                    active,
                }
            })
            .collect();
        let (mut old, new) = (
            counts[..counts.len() - 1].to_vec(),
            counts[counts.len() - 1],
        );
        let mut new = new;
        let replicas = self.states[w].replicas;
        let changed = match &self.states[w].workload.strategy {
            Strategy::Recreate => {
                let newest = self.states[w].sets.len() - 1;
                let old_pods: u32 = self
                    .pods
                    .iter()
                    .filter(|p| p.workload == w && p.set != newest && !p.pod.gone())
                    .count() as u32;
                recreate_sync(replicas, &mut new, &mut old, old_pods)
            }
            strategy => match fenceposts(strategy, replicas) {
                Ok((surge, unavailable)) => {
                    rolling_sync(replicas, surge, unavailable, &mut new, &mut old)
                }
                Err(_) => false,
            },
        };
        let sets = &mut self.states[w].sets;
        for (set, count) in sets.iter_mut().zip(old.iter().chain(std::iter::once(&new))) {
            set.spec = count.spec;
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
            let active: Vec<usize> = (0..self.pods.len())
                .filter(|&i| {
                    let p = &self.pods[i];
                    p.workload == w && p.set == s && p.pod.deleting.is_none() && !p.pod.gone()
                })
                .collect();
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
                    let index = active[victim];
                    let now = self.now;
                    let wakes = self.pods[index].pod.delete(now);
                    for (t, wake) in wakes {
                        self.wake_pod(index, t, wake);
                    }
                    self.pod_changed(index);
                }
            }
        }
    }

    fn create_pod(&mut self, w: usize, set: usize, revision: usize, name: String) {
        let template = self.states[w].templates[revision].clone();
        let kind = self.states[w].workload.kind;
        let index = self.pods.len();
        // A pod's name is known in advance only when the manifest gives it.
        let known_name = (kind == Kind::Pod).then_some(name.as_str());
        let modelled = template
            .containers
            .iter()
            .find(|c| c.is_chaos_inference())
            .or(template.containers.first());
        let Some(container) = modelled else { return };
        let settings = Settings::of(container, known_name, self.overrides);
        let working_set = match self.scenario {
            Scenario::Earliest => WORKING_SET.1,
            Scenario::Latest => WORKING_SET.0,
            Scenario::Drawn(_) => self.rng.random_range(WORKING_SET.0..=WORKING_SET.1),
        };
        let draw_seed = settings.seed.unwrap_or_else(|| {
            let base = match self.scenario {
                Scenario::Drawn(seed) => seed,
                Scenario::Earliest => 11,
                Scenario::Latest => 12,
            };
            mix(base, index as u64 + 1)
        });
        let draw = match (settings.seed.is_some(), self.scenario) {
            (true, _) | (false, Scenario::Drawn(_)) => Draw::Seed(draw_seed),
            (false, Scenario::Earliest) => Draw::Lowest(draw_seed),
            (false, Scenario::Latest) => Draw::Highest(draw_seed),
        };
        let life = match &settings.profile {
            Ok(profile) => Life::of(
                &crate::chaos::plan::Plan::drawn(profile, draw, settings.time_scale),
                &settings,
                container.memory_limit,
                working_set,
                Duration::from_millis(self.horizon),
            ),
            Err(message) => Life::config_error(message),
        };
        let spec = PodSpec {
            container: container.name.clone(),
            probes: [
                container.startup.clone(),
                container.liveness.clone(),
                container.readiness.clone(),
            ],
            restart_policy: template.restart_policy,
            grace: template.grace,
        };
        let start = self.pick(slack::START);
        // The probes' phases: in the earliest run every probe ticks the moment its answer first
        // changes (liveness when it first fails, startup and readiness when the model has
        // loaded); in the latest, a millisecond after, so it waits a whole period.
        // Rounded up: a tick a fraction of a millisecond early would still see the old answer.
        let ms = |d: Duration| {
            if d == Duration::MAX {
                0
            } else {
                d.as_micros().div_ceil(1000) as Ms
            }
        };
        let loaded = ms(life.loaded);
        let failing = life.liveness_fails_from().map_or(0, ms);
        let mut phases = [0; 3];
        for (i, probe) in spec.probes.iter().enumerate() {
            let Some(probe) = probe else { continue };
            let period = u64::from(probe.period) * 1000;
            let moment = if i == ProbeKind::Liveness as usize {
                start + failing
            } else {
                start + loaded
            };
            phases[i] = match self.scenario {
                Scenario::Earliest => moment % period,
                Scenario::Latest => (moment + 1) % period,
                Scenario::Drawn(_) => self.rng.random_range(0..period),
            };
        }
        let pace = Pace {
            start,
            restart: self.pick(slack::RESTART),
            notice: self.pick(slack::NOTICE),
            resync: self.pick(slack::RESYNC),
            phases,
        };
        let life = Arc::new(life);
        let (pod, wakes) = Pod::new(name, self.now, Arc::new(spec), Arc::clone(&life), pace);
        self.pods.push(PodTrace {
            pod,
            workload: w,
            set,
            revision,
            life,
            settings: Arc::new(settings),
        });
        for (t, wake) in wakes {
            self.wake_pod(index, t, wake);
        }
        self.pod_changed(index);
    }
}
