//! The kubelet's part, for one pod: probe workers, thresholds, kills, restarts and back-off,
//! termination. Each rule follows the kubelet's code (Kubernetes v1.20 to v1.35 agree on them):
//!
//! - probe workers (`pkg/kubelet/prober/worker.go`): results start as readiness Failure,
//!   liveness Success, startup Unknown, and again for every new container; a worker ticks every
//!   `periodSeconds` from a phase of its own and probes a container only once the status it
//!   reads shows it running: that status is written by the pod's sync after the PLEG's relist
//!   (every second, `pkg/kubelet/pleg/generic.go`) noticed the start, so the first probe lands
//!   in `[initialDelaySeconds, initialDelaySeconds + periodSeconds)` after that, not after the
//!   start itself; it skips while `int(seconds since start) < initialDelaySeconds`; liveness
//!   and readiness wait for the startup probe; a result counts after
//!   `successThreshold`/`failureThreshold` consecutive equal results; a liveness or startup
//!   failure puts the worker on hold until the next container; on pod deletion liveness and
//!   startup stop, readiness goes on;
//! - probes (`pkg/probe/http`): HTTP 200-399 passes, no answer within `timeoutSeconds` fails;
//! - kills and restarts (`pkg/kubelet/kuberuntime`): a failed liveness or startup probe kills
//!   the container with the pod's `terminationGracePeriodSeconds` (SIGTERM, then SIGKILL);
//!   `restartPolicy` decides on a restart; the first restart is immediate, later ones wait a
//!   back-off of 10 s doubling to 300 s, counted from the container's exit, reset when a
//!   container ran for more than 600 s (`client-go/util/flowcontrol/backoff.go`).

use std::sync::Arc;
use std::time::Duration;

use super::manifest::{Probe, RestartPolicy};
pub use super::queue::Ms;
use super::queue::{Clock, EventId};
use super::timeline::{Ending, Exit, Outcome, QueueView, Timeline};

/// The first back-off (`backOffPeriod` in `pkg/kubelet/kubelet.go`).
pub const BACKOFF_INITIAL: Ms = 10_000;
/// The longest back-off (`MaxContainerBackOff`).
pub const BACKOFF_MAX: Ms = 300_000;

/// The three probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    /// As events name it (`Liveness probe failed: ...`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// The STATUS column of `kubectl get pods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    ContainerCreating,
    Running,
    /// The last container's terminated reason.
    Terminated(Ending),
    CrashLoopBackOff,
    Terminating,
    /// Deleted and gone.
    Gone,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::ContainerCreating => "ContainerCreating",
            Status::Running => "Running",
            Status::Terminated(ending) => ending.as_str(),
            Status::CrashLoopBackOff => "CrashLoopBackOff",
            Status::Terminating => "Terminating",
            Status::Gone => "Deleted",
        }
    }
}

/// The REASON column of a pod's events, and how a container ended, with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Started,
    Killing,
    Unhealthy,
    BackOff,
    /// The container ended: its terminated state's reason and exit code.
    Ended {
        ending: Ending,
        code: i32,
    },
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Started => "Started",
            Reason::Killing => "Killing",
            Reason::Unhealthy => "Unhealthy",
            Reason::BackOff => "BackOff",
            Reason::Ended { ending, .. } => ending.as_str(),
        }
    }
}

/// What a watcher sees of the pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A line of `kubectl get pods -w`.
    Row {
        ready: bool,
        status: Status,
        restarts: u32,
    },
    /// A line of `kubectl describe pod`'s events, or the reason a container ended.
    Event {
        reason: Reason,
        probe: Option<ProbeKind>,
        message: String,
        /// Consecutive identical events folded into this one (`x12 over 24s`).
        count: u32,
        last: Ms,
    },
}

/// Back-offs with a resync lag of their own ([`Pace::resync`]).
pub const RESYNCS: usize = 8;
/// Runs with a status lag of their own ([`Pace::seen`]).
pub const SEEN_RUNS: usize = 8;

/// How long the cluster takes for things the manifests do not say; each scenario draws them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// From the pod's creation to its container running.
    pub start: Ms,
    /// From a restart decision to the new container running.
    pub restart: Ms,
    /// From a container's exit to the kubelet acting on it.
    pub notice: Ms,
    /// After each back-off ends, until the pod's next sync restarts it: a pod in back-off is
    /// synced again every 10-15 s, jittered at each requeue, so each back-off draws its own
    /// (the last repeats for any after these).
    pub resync: [Ms; RESYNCS],
    /// From each run's start until its probe workers see it running (the PLEG's next relist,
    /// then the pod's sync writing the status they read); the last repeats for later runs.
    pub seen: [Ms; SEEN_RUNS],
    /// When each probe worker first ticks, after the pod's creation (below its period).
    pub phases: [Ms; 3],
}

/// What a pod asks the clock for.
#[derive(Debug, Clone, PartialEq)]
pub enum Wake {
    /// The next container runs.
    ContainerStart,
    /// A probe worker's period comes round.
    Tick(ProbeKind),
    /// A probe of the running container answers (or times out).
    ProbeDone {
        kind: ProbeKind,
        result: Result<(), String>,
    },
    /// The running container ends.
    Exit(Exit),
    /// The back-off is over: the kubelet restarts the container.
    Restart,
}

/// The pod settings the kubelet reads.
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub container: String,
    pub probes: [Option<Probe>; 3],
    pub restart_policy: RestartPolicy,
    pub grace: Duration,
}

impl PodSpec {
    pub fn probe(&self, kind: ProbeKind) -> Option<&Probe> {
        self.probes[kind as usize].as_ref()
    }
}

/// A probe worker's results for one container (`worker.go` resets them for a new container).
#[derive(Debug, Clone, Default)]
struct ProbeResults {
    /// The last result, and how many times in a row it came.
    last: Option<bool>,
    count: u32,
    /// After a liveness or startup failure, until the next container.
    on_hold: bool,
    /// The record index of the open Unhealthy event, to fold repeats into.
    streak: Option<usize>,
}

/// One run of the container: everything that starts afresh when the container does.
#[derive(Debug, Clone)]
struct Run {
    since: Ms,
    /// When the probe workers first see this run (they do not probe it before).
    seen: Ms,
    /// The startup probe has passed (or there is none).
    started: bool,
    ready_since: Option<Ms>,
    sigterm: Option<Ms>,
    results: [ProbeResults; 3],
    /// Events that belong to this run (its exit, probes in flight): cancelled when it ends.
    pending: Vec<EventId>,
}

impl Run {
    fn new(since: Ms, seen: Ms, spec: &PodSpec) -> Run {
        let started = spec.probe(ProbeKind::Startup).is_none();
        Run {
            since,
            seen,
            started,
            // A new container's readiness starts as Failure; without a readiness probe the
            // container is ready once started.
            ready_since: (started && spec.probe(ProbeKind::Readiness).is_none()).then_some(since),
            sigterm: None,
            results: Default::default(),
            pending: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
enum Container {
    Waiting,
    Running(Run),
    Exited,
}

/// The kubelet's crash-loop back-off for the container (`flowcontrol.Backoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BackOff {
    /// The wait before the next restart.
    period: Ms,
    /// When it last changed: a container that runs for more than twice the longest back-off
    /// after it resets it.
    last_update: Ms,
}

/// One pod on the kubelet.
#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub created: Ms,
    spec: Arc<PodSpec>,
    life: Arc<Timeline>,
    pace: Pace,
    container: Container,
    pub restarts: u32,
    pub deleting: Option<Ms>,
    backoff: Option<BackOff>,
    /// Back-offs waited so far (which resync lag the next takes).
    backoffs: usize,
    /// When the container before the running one exited (the kubelet keeps it).
    last_exit: Option<Ms>,
    /// Liveness and startup workers stop when the pod is deleted.
    stopped: [bool; 3],
    /// The next container start or restart, when one is coming.
    coming: Option<EventId>,
    status: Status,
    /// Everything seen, in time order.
    pub record: Vec<(Ms, Seen)>,
}

impl Pod {
    /// A pod created at `now`, its first wake-ups on `clock`.
    pub fn new(
        name: String,
        now: Ms,
        spec: Arc<PodSpec>,
        life: Arc<Timeline>,
        pace: Pace,
        clock: &mut impl Clock<Wake>,
    ) -> Pod {
        let mut pod = Pod {
            name,
            created: now,
            spec,
            life,
            pace,
            container: Container::Waiting,
            restarts: 0,
            deleting: None,
            backoff: None,
            backoffs: 0,
            last_exit: None,
            stopped: [false; 3],
            coming: None,
            status: Status::ContainerCreating,
            record: Vec::new(),
        };
        pod.row(now);
        pod.coming = Some(clock.schedule(now + pace.start, Wake::ContainerStart));
        for kind in ProbeKind::ALL {
            if let Some(probe) = pod.spec.probe(kind) {
                let period = u64::from(probe.period) * 1000;
                clock.schedule(now + pace.phases[kind as usize] % period, Wake::Tick(kind));
            }
        }
        pod
    }

    fn run(&self) -> Option<&Run> {
        match &self.container {
            Container::Running(run) => Some(run),
            _ => None,
        }
    }

    /// Whether the pod counts as ready (its container's readiness).
    pub fn ready(&self) -> bool {
        self.ready_since().is_some()
    }

    /// Ready, not being deleted, and ready for at least `min_ready`: what a ReplicaSet counts
    /// as available.
    pub fn available(&self, now: Ms, min_ready: Ms) -> bool {
        self.deleting.is_none() && self.ready_since().is_some_and(|s| s + min_ready <= now)
    }

    /// Since when it has been ready.
    pub fn ready_since(&self) -> Option<Ms> {
        self.run().and_then(|run| run.ready_since)
    }

    /// Whether it is gone for good.
    pub fn gone(&self) -> bool {
        self.status == Status::Gone
    }

    /// Not being deleted and not gone: what a ReplicaSet counts as its own.
    pub fn active(&self) -> bool {
        self.deleting.is_none() && !self.gone()
    }

    /// Whether the container is running now.
    pub fn running(&self) -> bool {
        self.run().is_some()
    }

    /// When the running container started, and when it got SIGTERM if it did.
    pub fn container(&self) -> Option<(Ms, Option<Ms>)> {
        self.run().map(|run| (run.since, run.sigterm))
    }

    /// The pod's spec as the kubelet reads it.
    pub fn spec(&self) -> &PodSpec {
        &self.spec
    }

    fn row(&mut self, now: Ms) {
        let seen = Seen::Row {
            ready: self.ready(),
            status: self.status,
            restarts: self.restarts,
        };
        if self.record.iter().rev().find_map(|(_, s)| match s {
            Seen::Row { .. } => Some(s),
            Seen::Event { .. } => None,
        }) != Some(&seen)
        {
            self.record.push((now, seen));
        }
    }

    fn event(&mut self, now: Ms, reason: Reason, probe: Option<ProbeKind>, message: String) {
        self.record.push((
            now,
            Seen::Event {
                reason,
                probe,
                message,
                count: 1,
                last: now,
            },
        ));
    }

    fn set_ready(&mut self, now: Ms, ready: bool) {
        let Container::Running(run) = &mut self.container else {
            return;
        };
        if run.ready_since.is_some() != ready {
            run.ready_since = ready.then_some(now);
            self.row(now);
        }
    }

    /// The pod is deleted at `now`: readiness goes on probing, liveness and startup stop, the
    /// container gets SIGTERM and the grace period; `queue` is what its queue holds then.
    pub fn delete(&mut self, now: Ms, queue: &QueueView, clock: &mut impl Clock<Wake>) {
        if self.deleting.is_some() || self.gone() {
            return;
        }
        self.deleting = Some(now);
        self.status = Status::Terminating;
        self.row(now);
        if self.running() {
            let message = format!("Stopping container {}", self.spec.container);
            self.event(now, Reason::Killing, None, message);
            self.kill(now, queue, clock);
        } else {
            // No container to stop: a start or restart still to come will not happen.
            if let Some(id) = self.coming.take() {
                clock.cancel(id);
            }
            self.status = Status::Gone;
            self.row(now);
        }
    }

    /// SIGTERM now; the run ends as the application, its queue and the grace period decide.
    fn kill(&mut self, now: Ms, queue: &QueueView, clock: &mut impl Clock<Wake>) {
        let Container::Running(run) = &mut self.container else {
            return;
        };
        if run.sigterm.is_some() {
            return;
        }
        run.sigterm = Some(now);
        let (at, exit) = self.life.sigterm(
            Duration::from_millis(now - run.since),
            self.spec.grace,
            queue.backlog,
        );
        run.pending
            .push(clock.schedule(run.since + at.as_millis() as Ms, Wake::Exit(exit)));
    }

    /// Handles one wake-up at `now`, scheduling what follows on `clock`; `queue` is what the
    /// pod's queue holds now (idle without offered load).
    pub fn wake(&mut self, now: Ms, wake: Wake, queue: &QueueView, clock: &mut impl Clock<Wake>) {
        if self.gone() {
            return;
        }
        match wake {
            Wake::ContainerStart => self.start(now, clock),
            Wake::Tick(kind) => self.tick(now, kind, queue, clock),
            Wake::ProbeDone { kind, result } => self.probe_done(now, kind, result, queue, clock),
            Wake::Exit(exit) => self.exit(now, exit, clock),
            Wake::Restart => {
                self.restarts += 1;
                self.coming = Some(clock.schedule(now + self.pace.restart, Wake::ContainerStart));
            }
        }
    }

    fn start(&mut self, now: Ms, clock: &mut impl Clock<Wake>) {
        self.coming = None;
        let lag = self.pace.seen[(self.restarts as usize).min(SEEN_RUNS - 1)];
        let mut run = Run::new(now, now + lag, &self.spec);
        if let Some((at, exit)) = &self.life.exit {
            run.pending
                .push(clock.schedule(now + at.as_millis() as Ms, Wake::Exit(exit.clone())));
        }
        self.container = Container::Running(run);
        self.status = Status::Running;
        self.row(now);
        let message = format!("Started container {}", self.spec.container);
        self.event(now, Reason::Started, None, message);
    }

    fn tick(&mut self, now: Ms, kind: ProbeKind, queue: &QueueView, clock: &mut impl Clock<Wake>) {
        let Some(probe) = self.spec.probe(kind).cloned() else {
            return;
        };
        if self.stopped[kind as usize] {
            return;
        }
        if self.deleting.is_some() && kind != ProbeKind::Readiness && self.running() {
            self.stopped[kind as usize] = true;
            return;
        }
        clock.schedule(now + u64::from(probe.period) * 1000, Wake::Tick(kind));
        let Container::Running(run) = &mut self.container else {
            return;
        };
        if run.results[kind as usize].on_hold
            || now < run.seen
            || (now - run.since) / 1000 < u64::from(probe.initial_delay)
            || (kind == ProbeKind::Startup) == run.started
        {
            return;
        }
        let sigterm = run.sigterm.map(|s| Duration::from_millis(s - run.since));
        let (outcome, after) = self.life.answer(
            &probe.handler,
            Duration::from_millis(now - run.since),
            sigterm,
            queue,
        );
        // An answer that comes after the timeout is none (the kubelet stops waiting).
        let outcome = if after >= Duration::from_secs(u64::from(probe.timeout)) {
            Outcome::Timeout
        } else {
            outcome
        };
        let answered = now + 1 + after.as_millis() as Ms;
        let (at, result) = match outcome {
            Outcome::Success => (answered, Ok(())),
            Outcome::Failure(message) => (answered, Err(message)),
            Outcome::Timeout => (
                now + u64::from(probe.timeout) * 1000,
                Err(format!(
                    "Get \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    probe.handler.describe()
                )),
            ),
        };
        run.pending
            .push(clock.schedule(at, Wake::ProbeDone { kind, result }));
    }

    fn probe_done(
        &mut self,
        now: Ms,
        kind: ProbeKind,
        result: Result<(), String>,
        queue: &QueueView,
        clock: &mut impl Clock<Wake>,
    ) {
        let Some(probe) = self.spec.probe(kind).cloned() else {
            return;
        };
        let success = result.is_ok();
        match result {
            Err(message) => self.unhealthy(now, kind, message),
            Ok(()) => self.results(kind).streak = None,
        }
        let results = self.results(kind);
        if results.last == Some(success) {
            results.count += 1;
        } else {
            results.last = Some(success);
            results.count = 1;
        }
        let threshold = if success {
            probe.success_threshold
        } else {
            probe.failure_threshold
        };
        if results.count < threshold {
            return;
        }
        match (kind, success) {
            (ProbeKind::Readiness, ready) => self.set_ready(now, ready),
            (ProbeKind::Startup, true) => {
                if let Container::Running(run) = &mut self.container {
                    run.started = true;
                }
                if self.spec.probe(ProbeKind::Readiness).is_none() {
                    self.set_ready(now, true);
                }
            }
            (ProbeKind::Liveness, true) => {}
            (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                let results = self.results(kind);
                results.on_hold = true;
                results.count = 0;
                let message = format!(
                    "Container {} failed {} probe, will be restarted",
                    self.spec.container,
                    kind.as_str().to_lowercase()
                );
                self.event(now, Reason::Killing, Some(kind), message);
                self.kill(now, queue, clock);
            }
        }
    }

    /// The running container's results of one probe.
    fn results(&mut self, kind: ProbeKind) -> &mut ProbeResults {
        match &mut self.container {
            Container::Running(run) => &mut run.results[kind as usize],
            // Probe results come only while a container runs: its end cancels the rest.
            _ => unreachable!("a probe result with no container running"),
        }
    }

    /// One failed probe: a new Unhealthy event, or one more of the same in a row.
    fn unhealthy(&mut self, now: Ms, kind: ProbeKind, message: String) {
        let message = format!("{} probe failed: {message}", kind.as_str());
        if let Some(index) = self.results(kind).streak
            && let Some((
                _,
                Seen::Event {
                    message: open,
                    count,
                    last,
                    ..
                },
            )) = self.record.get_mut(index)
            && *open == message
        {
            *count += 1;
            *last = now;
            return;
        }
        let index = self.record.len();
        self.results(kind).streak = Some(index);
        self.event(now, Reason::Unhealthy, Some(kind), message);
    }

    fn exit(&mut self, now: Ms, exit: Exit, clock: &mut impl Clock<Wake>) {
        let Container::Running(run) = std::mem::replace(&mut self.container, Container::Exited)
        else {
            unreachable!("an exit with no container running");
        };
        // The run is over: its other exit, if any, and its probes in flight never come.
        for id in run.pending {
            clock.cancel(id);
        }
        let detail = if exit.message.is_empty() {
            format!("exit code {}", exit.code)
        } else {
            format!("exit code {}: {}", exit.code, exit.message)
        };
        let reason = Reason::Ended {
            ending: exit.ending,
            code: exit.code,
        };
        self.event(now, reason, None, detail);
        if self.deleting.is_some() {
            self.status = Status::Gone;
            self.row(now);
            return;
        }
        self.status = Status::Terminated(exit.ending);
        self.row(now);
        let restart = match self.spec.restart_policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit.code != 0,
            RestartPolicy::Never => false,
        };
        if !restart {
            return;
        }
        // A container the kubelet killed (liveness or startup) is started again in the same
        // pod sync that stopped it, and that sync's back-off check reads the container that
        // exited before this one (the status it works from was taken while this one ran): so
        // the restart is immediate unless that earlier exit is within the back-off period.
        // With no earlier exit the check returns before it counts (`doBackOff` in
        // `pkg/kubelet/kuberuntime/kuberuntime_manager.go` finds no exited container and never
        // calls `Next`): the first kill starts no back-off, and the second restarts at once
        // too (MLServer killed by liveness every 2 s on the e2e's kubelet: at once, at once,
        // then 10 s).
        // Any other exit is noticed by the PLEG, and the check reads this very exit.
        let killed = run.sigterm.is_some();
        let previous_exit = self.last_exit.replace(now);
        let decided = if killed { now } else { now + self.pace.notice };
        let in_backoff = |backoff: &BackOff| {
            let expired = now.saturating_sub(backoff.last_update) > 2 * BACKOFF_MAX;
            let since = if killed { previous_exit } else { Some(now) };
            !expired && since.is_some_and(|exit| now.saturating_sub(exit) < backoff.period)
        };
        let restart_at = match self.backoff {
            None if killed && previous_exit.is_none() => decided,
            Some(backoff) if in_backoff(&backoff) => {
                self.status = Status::CrashLoopBackOff;
                self.record_backoff(decided);
                let resync = self.pace.resync[self.backoffs.min(RESYNCS - 1)];
                self.backoffs += 1;
                let restart_at = (now + backoff.period + resync).max(decided);
                self.backoff = Some(BackOff {
                    period: (backoff.period * 2).min(BACKOFF_MAX),
                    last_update: restart_at,
                });
                restart_at
            }
            // Not in back-off: restart now, and the next back-off doubles (or starts at 10 s
            // when there was none, or the container ran long enough to reset it).
            backoff => {
                let period = match backoff {
                    Some(b) if now.saturating_sub(b.last_update) <= 2 * BACKOFF_MAX => {
                        (b.period * 2).min(BACKOFF_MAX)
                    }
                    _ => BACKOFF_INITIAL,
                };
                self.backoff = Some(BackOff {
                    period,
                    last_update: decided,
                });
                decided
            }
        };
        self.coming = Some(clock.schedule(restart_at, Wake::Restart));
    }

    fn record_backoff(&mut self, at: Ms) {
        self.record.push((
            at,
            Seen::Row {
                ready: false,
                status: self.status,
                restarts: self.restarts,
            },
        ));
        let message = format!(
            "Back-off restarting failed container {}",
            self.spec.container
        );
        self.event(at, Reason::BackOff, None, message);
    }
}

/// Back-off waits before restart k (k = 1 is the first restart), for a container that keeps
/// failing soon after it starts: 0, 10 s, 20 s, 40 s, ... up to 300 s.
pub fn backoff_before_restart(k: u32) -> Ms {
    match k {
        0 | 1 => 0,
        k => (BACKOFF_INITIAL << (k - 2).min(10)).min(BACKOFF_MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::manifest::Handler;
    use crate::simulate::queue::Queue;
    use crate::simulate::timeline::{Interval, Timeline};

    fn probe(path: &str, period: u32, failure: u32) -> Probe {
        Probe {
            handler: Handler::Http {
                path: path.into(),
                port: 8000,
            },
            initial_delay: 0,
            period,
            timeout: 1,
            success_threshold: 1,
            failure_threshold: failure,
        }
    }

    fn healthy() -> Timeline {
        let mut life = Timeline::config_error(
            "unused",
            &crate::simulate::app::Settings::defaults().shape(),
        );
        life.exit = None;
        life.open = Duration::ZERO;
        life.loaded = Duration::from_secs(5);
        life
    }

    const PACE: Pace = Pace {
        start: 1000,
        restart: 500,
        notice: 100,
        resync: [0; RESYNCS],
        seen: [0; SEEN_RUNS],
        phases: [0, 0, 0],
    };

    /// Runs one pod alone until `until`, on the simulator's own queue.
    fn run(spec: PodSpec, life: Timeline, until: Ms) -> Pod {
        run_paced(spec, life, PACE, until)
    }

    fn run_paced(spec: PodSpec, life: Timeline, pace: Pace, until: Ms) -> Pod {
        let mut queue = Queue::default();
        let mut pod = Pod::new(
            "p".into(),
            0,
            Arc::new(spec),
            Arc::new(life),
            pace,
            &mut queue,
        );
        run_until(&mut pod, &mut queue, until);
        pod
    }

    /// Runs the pod's events up to `until`; later ones stay queued.
    fn run_until(pod: &mut Pod, queue: &mut Queue<Wake>, until: Ms) {
        while let Some((t, wake)) = queue.pop_until(until) {
            pod.wake(t, wake, &QueueView::default(), queue);
        }
    }

    /// A pod whose container started at 1 s, every event after it still queued.
    fn started(spec: PodSpec, life: Timeline) -> (Pod, Queue<Wake>) {
        let mut queue = Queue::default();
        let mut pod = Pod::new(
            "p".into(),
            0,
            Arc::new(spec),
            Arc::new(life),
            PACE,
            &mut queue,
        );
        run_until(&mut pod, &mut queue, PACE.start);
        assert!(pod.running());
        (pod, queue)
    }

    fn reason(pod: &Pod, wanted: Reason) -> Option<Ms> {
        first(
            pod,
            |s| matches!(s, Seen::Event { reason, .. } if *reason == wanted),
        )
    }

    /// When each container ended.
    fn exits(pod: &Pod) -> Vec<Ms> {
        pod.record
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    Seen::Event {
                        reason: Reason::Ended { .. },
                        ..
                    }
                )
            })
            .map(|(t, _)| *t)
            .collect()
    }

    fn starts(pod: &Pod) -> Vec<Ms> {
        pod.record
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    Seen::Event {
                        reason: Reason::Started,
                        ..
                    }
                )
            })
            .map(|(t, _)| *t)
            .collect()
    }

    fn spec(probes: [Option<Probe>; 3]) -> PodSpec {
        PodSpec {
            container: "c".into(),
            probes,
            restart_policy: RestartPolicy::Always,
            grace: Duration::from_secs(30),
        }
    }

    fn first(pod: &Pod, pred: impl Fn(&Seen) -> bool) -> Option<Ms> {
        pod.record.iter().find(|(_, s)| pred(s)).map(|(t, _)| *t)
    }

    #[test]
    fn readiness_starts_failed_and_passes_at_the_first_probe_after_the_load() {
        let pod = run(
            spec([None, None, Some(probe("/readyz", 2, 3))]),
            healthy(),
            20_000,
        );
        // Container at 1 s, loaded at 6 s; ticks at 0, 2, 4, 6, 8 s: the 8 s tick is the first
        // after the load.
        let ready = first(&pod, |s| matches!(s, Seen::Row { ready: true, .. }));
        assert_eq!(ready, Some(6_001));
    }

    #[test]
    fn without_a_readiness_probe_the_container_is_ready_when_it_starts() {
        let pod = run(spec([None, None, None]), healthy(), 5_000);
        assert_eq!(
            first(&pod, |s| matches!(s, Seen::Row { ready: true, .. })),
            Some(1000)
        );
    }

    #[test]
    fn liveness_kills_after_failure_threshold_consecutive_failures() {
        let mut life = healthy();
        life.live_while_loading = false;
        life.loaded = Duration::from_secs(600);
        let pod = run(
            spec([None, Some(probe("/livez", 5, 3)), None]),
            life,
            40_000,
        );
        // Failures at 5, 10, 15 s: killed at the third; no shutdown delay, so exit 0 at once.
        assert_eq!(reason(&pod, Reason::Killing), Some(15_001));
        let unhealthy = pod.record.iter().find_map(|(_, s)| match s {
            Seen::Event {
                reason: Reason::Unhealthy,
                count,
                message,
                ..
            } => Some((*count, message.clone())),
            _ => None,
        });
        assert_eq!(
            unhealthy,
            Some((
                3,
                "Liveness probe failed: HTTP probe failed with statuscode: 503".into()
            ))
        );
        assert_eq!(
            pod.restarts, 2,
            "restarted at once after each of the kills at 15 and 30 s"
        );
    }

    #[test]
    fn a_killed_container_restarts_at_once_until_the_exit_before_it_is_within_the_back_off() {
        // Killed by liveness every 15 s or so (each run fails from its start). The kubelet
        // restarts a killed container in the sync that killed it, checking the back-off against
        // the exit before: none at the first kill (no back-off counted), then 15 s apart is
        // more than the first 10 s, not the doubled 20 s.
        let mut life = healthy();
        life.live_while_loading = false;
        life.loaded = Duration::from_secs(600);
        let pod = run(
            spec([None, Some(probe("/livez", 5, 3)), None]),
            life,
            120_000,
        );
        let exits = exits(&pod);
        let starts = starts(&pod);
        // The first kill counts no back-off; the next two (15 s apart, more than the 10 s
        // back-off the second started) restart at once.
        assert_eq!(starts[1] - exits[0], PACE.restart);
        assert_eq!(starts[2] - exits[1], PACE.restart);
        assert_eq!(starts[3] - exits[2], PACE.restart);
        // The fourth comes 15 s after the third, inside the doubled 20 s: back-off from it.
        assert!(exits[3] - exits[2] < 20_000, "{exits:?}");
        assert_eq!(starts[4] - exits[3], 20_000 + PACE.resync[0] + PACE.restart);
        assert!(pod.record.iter().any(|(_, s)| matches!(
            s,
            Seen::Row {
                status: Status::CrashLoopBackOff,
                ..
            }
        )));
    }

    #[test]
    fn killed_before_it_listens_it_restarts_at_once_twice_then_backs_off_from_the_third_exit() {
        // MLServer under a liveness probe every second acting on one failure, its port opening
        // seconds after each start: on the e2e's kubelet its runs ended 3, 5 and 7 s after
        // apply, the fourth started at 21 s and the fifth at 50 s.
        let mut life = healthy();
        life.open = Duration::from_secs(600);
        life.loaded = Duration::from_secs(600);
        let pod = run(
            spec([None, Some(probe("/livez", 1, 1)), None]),
            life,
            120_000,
        );
        let exits = exits(&pod);
        let starts = starts(&pod);
        assert_eq!(starts[1] - exits[0], PACE.restart, "{starts:?} {exits:?}");
        assert_eq!(starts[2] - exits[1], PACE.restart, "{starts:?} {exits:?}");
        // The third kill's sync finds the second exit within the 10 s the second started.
        assert_eq!(starts[3] - exits[2], 10_000 + PACE.resync[0] + PACE.restart);
        assert_eq!(starts[4] - exits[3], 20_000 + PACE.resync[0] + PACE.restart);
    }

    #[test]
    fn no_probe_reaches_a_run_before_the_kubelet_has_seen_it_start() {
        // A port that opens 1.8 s after each start, and a liveness probe every second acting
        // on one failure: a run the workers see at once is probed (and killed) in its first
        // second; one they see only 2 s after its start is probed once it listens, and lives.
        let mut life = healthy();
        life.open = Duration::from_millis(1_800);
        life.loaded = Duration::from_millis(1_800);
        let probes = || spec([None, Some(probe("/livez", 1, 1)), None]);
        let at_once = run(probes(), life.clone(), 60_000);
        assert!(at_once.restarts >= 3, "{:?}", starts(&at_once));

        let mut seen = [0; SEEN_RUNS];
        seen[1] = 2_000;
        let pace = Pace { seen, ..PACE };
        let pod = run_paced(probes(), life, pace, 60_000);
        let starts = starts(&pod);
        assert_eq!(pod.restarts, 1, "the second run lives: {starts:?}");
        let killed = first(&pod, |s| {
            matches!(
                s,
                Seen::Event {
                    reason: Reason::Killing,
                    ..
                }
            )
        });
        assert!(
            killed.unwrap() < starts[1],
            "the first run was killed: {killed:?} {starts:?}"
        );
        assert!(pod.running());
    }

    #[test]
    fn a_startup_probe_holds_liveness_until_it_passes() {
        let mut life = healthy();
        life.live_while_loading = false;
        life.loaded = Duration::from_secs(30);
        let startup = Probe {
            failure_threshold: 30,
            ..probe("/startupz", 2, 30)
        };
        let pod = run(
            spec([Some(startup), Some(probe("/livez", 5, 3)), None]),
            life,
            60_000,
        );
        assert_eq!(pod.restarts, 0);
        assert_eq!(reason(&pod, Reason::Killing), None);
        assert_eq!(
            first(&pod, |s| matches!(s, Seen::Row { ready: true, .. })),
            Some(32_001),
            "ready once the startup probe passes (no readiness probe)"
        );
    }

    #[test]
    fn restarts_back_off_10_20_40_seconds_from_the_exit() {
        let mut life = healthy();
        life.exit = Some((Duration::from_secs(1), Exit::code(1, String::new())));
        let pod = run(spec([None, None, None]), life, 120_000);
        // Exit 1 s after each start; first restart after notice + restart, then back-off.
        assert_eq!(starts(&pod)[..4], [1000, 2600, 14_100, 35_600]);
        assert_eq!(
            reason(
                &pod,
                Reason::Ended {
                    ending: Ending::Error,
                    code: 1
                }
            ),
            Some(2000),
            "the exit code travels with the reason"
        );
        assert!(pod.record.iter().any(|(_, s)| matches!(
            s,
            Seen::Row {
                status: Status::CrashLoopBackOff,
                ..
            }
        )));
        assert_eq!(backoff_before_restart(2), 10_000);
        assert_eq!(backoff_before_restart(7), 300_000);
    }

    #[test]
    fn deletion_stops_liveness_and_ends_with_the_grace_period_when_sigterm_is_ignored() {
        let mut life = healthy();
        life.ignore_sigterm = true;
        life.unhealthy.push(Interval {
            start: Duration::from_millis(9_500),
            end: None,
        });
        let (mut pod, mut queue) = started(spec([None, Some(probe("/livez", 5, 3)), None]), life);
        run_until(&mut pod, &mut queue, 10_000);
        pod.delete(10_000, &QueueView::default(), &mut queue);
        run_until(&mut pod, &mut queue, 60_000);
        let ended = |s: &Seen| {
            matches!(
                s,
                Seen::Event {
                    reason: Reason::Ended { code: 137, .. },
                    ..
                }
            )
        };
        assert_eq!(
            first(&pod, ended),
            Some(40_000),
            "SIGKILL when the grace period ends"
        );
        assert!(pod.gone());
        assert_eq!(
            reason(&pod, Reason::Unhealthy),
            None,
            "liveness stops: it would fail from 10.5 s, three times before the SIGKILL"
        );
        assert_eq!(
            queue.pending(),
            0,
            "nothing left: liveness stopped, the run's events cancelled"
        );
    }

    #[test]
    fn no_probe_before_the_initial_delay_and_success_needs_its_threshold() {
        let readiness = Probe {
            initial_delay: 10,
            success_threshold: 3,
            ..probe("/readyz", 2, 3)
        };
        let pod = run(spec([None, None, Some(readiness)]), healthy(), 30_000);
        // Started at 1 s, loaded at 6 s; ticks every 2 s, skipped until 11 s after creation
        // (10 s after the start); three successes in a row: 12, 14, 16 s.
        assert_eq!(
            reason(&pod, Reason::Unhealthy),
            None,
            "nothing probed during the initial delay, when it would fail"
        );
        assert_eq!(
            first(&pod, |s| matches!(s, Seen::Row { ready: true, .. })),
            Some(16_001)
        );
    }

    #[test]
    fn a_probe_that_gets_no_answer_fails_when_its_timeout_ends() {
        let mut life = healthy();
        life.loaded = Duration::ZERO;
        life.hang = Some(Duration::from_secs(3));
        let liveness = Probe {
            timeout: 2,
            failure_threshold: 1,
            ..probe("/livez", 5, 1)
        };
        let pod = run(spec([None, Some(liveness), None]), life, 20_000);
        // Ticks at 0 (not running yet) and 5 s (hung): no answer by 7 s.
        assert_eq!(reason(&pod, Reason::Killing), Some(7_000));
    }

    #[test]
    fn restart_policy_decides_on_a_restart() {
        let exits_with = |code| {
            let mut life = healthy();
            life.exit = Some((Duration::from_secs(1), Exit::code(code, String::new())));
            life
        };
        let with = |policy, code| {
            let mut s = spec([None, None, None]);
            s.restart_policy = policy;
            run(s, exits_with(code), 30_000).restarts
        };
        assert_eq!(with(RestartPolicy::Never, 1), 0);
        assert_eq!(with(RestartPolicy::OnFailure, 0), 0);
        assert!(with(RestartPolicy::OnFailure, 1) > 0);
        assert!(with(RestartPolicy::Always, 0) > 0);
    }

    #[test]
    fn a_container_that_ran_ten_minutes_restarts_at_once_again() {
        let mut life = healthy();
        life.exit = Some((Duration::from_secs(700), Exit::code(1, String::new())));
        let pod = run(spec([None, None, None]), life, 2_200_000);
        let starts = starts(&pod);
        // Each run lasts 700 s, more than the 600 s that reset the back-off: no waiting.
        for pair in starts.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                700_000 + PACE.notice + PACE.restart,
                "{starts:?}"
            );
        }
        assert!(!pod.record.iter().any(|(_, s)| matches!(
            s,
            Seen::Row {
                status: Status::CrashLoopBackOff,
                ..
            }
        )));
    }

    #[test]
    fn readiness_goes_on_probing_while_the_pod_terminates() {
        let mut life = healthy();
        life.loaded = Duration::ZERO;
        life.shutdown_delay = Duration::from_secs(20);
        let (mut pod, mut queue) = started(spec([None, None, Some(probe("/readyz", 2, 1))]), life);
        run_until(&mut pod, &mut queue, 10_000);
        assert!(pod.ready());
        pod.delete(10_000, &QueueView::default(), &mut queue);
        assert!(pod.ready(), "still ready the moment it is deleted");
        run_until(&mut pod, &mut queue, 12_001);
        assert!(
            !pod.ready(),
            "/readyz fails after SIGTERM, and the probe at 12 s sees it"
        );
        assert!(pod.running(), "still draining");
    }
}
