//! The kubelet's part, for one pod: probe workers, thresholds, kills, restarts and back-off,
//! termination. Each rule follows the kubelet's code (Kubernetes v1.20 to v1.35 agree on them):
//!
//! - probe workers (`pkg/kubelet/prober/worker.go`): results start as readiness Failure,
//!   liveness Success, startup Unknown, and again for every new container; a worker ticks every
//!   `periodSeconds` from a phase of its own, so the first probe lands in
//!   `[initialDelaySeconds, initialDelaySeconds + periodSeconds)` after the container starts;
//!   it skips while `int(seconds since start) < initialDelaySeconds`; liveness and readiness
//!   wait for the startup probe; a result counts after `successThreshold`/`failureThreshold`
//!   consecutive equal results; a liveness or startup failure puts the worker on hold until
//!   the next container; on pod deletion liveness and startup stop, readiness goes on;
//! - probes (`pkg/probe/http`): HTTP 200-399 passes, no answer within `timeoutSeconds` fails;
//! - kills and restarts (`pkg/kubelet/kuberuntime`): a failed liveness or startup probe kills
//!   the container with the pod's `terminationGracePeriodSeconds` (SIGTERM, then SIGKILL);
//!   `restartPolicy` decides on a restart; the first restart is immediate, later ones wait a
//!   back-off of 10 s doubling to 300 s, counted from the container's exit, reset when a
//!   container ran for more than 600 s (`client-go/util/flowcontrol/backoff.go`).

use std::sync::Arc;
use std::time::Duration;

use super::app::{Exit, Life, Outcome};
use super::manifest::{Probe, RestartPolicy};

/// Milliseconds since the manifests were applied.
pub type Ms = u64;

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
    /// The last container's terminated reason: `Error`, `Completed`, `OOMKilled`.
    Terminated(&'static str),
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
            Status::Terminated(reason) => reason,
            Status::CrashLoopBackOff => "CrashLoopBackOff",
            Status::Terminating => "Terminating",
            Status::Gone => "Deleted",
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
        reason: &'static str,
        probe: Option<ProbeKind>,
        message: String,
        /// Consecutive identical events folded into this one (`x12 over 24s`).
        count: u32,
        last: Ms,
    },
}

/// How long the cluster takes for things the manifests do not say; each scenario draws them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// From the pod's creation to its container running.
    pub start: Ms,
    /// From a restart decision to the new container running.
    pub restart: Ms,
    /// From a container's exit to the kubelet acting on it.
    pub notice: Ms,
    /// After a back-off ends, until the pod's next sync restarts it.
    pub resync: Ms,
    /// When each probe worker first ticks, after the pod's creation (below its period).
    pub phases: [Ms; 3],
}

/// What a pod asks the clock for.
#[derive(Debug, Clone, PartialEq)]
pub enum Wake {
    ContainerStart {
        run: u32,
    },
    Tick(ProbeKind),
    ProbeDone {
        kind: ProbeKind,
        run: u32,
        result: Result<(), String>,
    },
    Exit {
        run: u32,
        exit: Exit,
    },
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
    fn probe(&self, kind: ProbeKind) -> Option<&Probe> {
        self.probes[kind as usize].as_ref()
    }
}

#[derive(Debug, Clone, Default)]
struct Worker {
    last: Option<bool>,
    run: u32,
    on_hold: bool,
    stopped: bool,
    /// The record index of the open Unhealthy event, to fold repeats into.
    streak: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Container {
    Waiting,
    Running { run: u32, since: Ms },
    Exited { run: u32 },
}

/// One pod on the kubelet.
#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub created: Ms,
    spec: Arc<PodSpec>,
    life: Arc<Life>,
    pace: Pace,
    container: Container,
    runs: u32,
    pub restarts: u32,
    ready: bool,
    ready_since: Option<Ms>,
    started: bool,
    sigterm: Option<Ms>,
    pub deleting: Option<Ms>,
    backoff: Option<(Ms, Ms)>,
    workers: [Worker; 3],
    status: Status,
    /// Everything seen, in time order.
    pub record: Vec<(Ms, Seen)>,
}

impl Pod {
    /// A pod created at `now`; returns it and its first wake-ups.
    pub fn new(
        name: String,
        now: Ms,
        spec: Arc<PodSpec>,
        life: Arc<Life>,
        pace: Pace,
    ) -> (Pod, Vec<(Ms, Wake)>) {
        let mut pod = Pod {
            name,
            created: now,
            spec,
            life,
            pace,
            container: Container::Waiting,
            runs: 0,
            restarts: 0,
            ready: false,
            ready_since: None,
            started: false,
            sigterm: None,
            deleting: None,
            backoff: None,
            workers: Default::default(),
            status: Status::ContainerCreating,
            record: Vec::new(),
        };
        pod.row(now);
        let mut wakes = vec![(now + pace.start, Wake::ContainerStart { run: 1 })];
        for kind in ProbeKind::ALL {
            if let Some(probe) = pod.spec.probe(kind) {
                let period = u64::from(probe.period) * 1000;
                wakes.push((now + pace.phases[kind as usize] % period, Wake::Tick(kind)));
            }
        }
        (pod, wakes)
    }

    /// Whether the pod counts as ready (its container's readiness).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Ready, not being deleted, and ready for at least `min_ready`: what a ReplicaSet counts
    /// as available.
    pub fn available(&self, now: Ms, min_ready: Ms) -> bool {
        self.deleting.is_none()
            && self.ready
            && self.ready_since.is_some_and(|s| s + min_ready <= now)
    }

    /// Since when it has been ready.
    pub fn ready_since(&self) -> Option<Ms> {
        self.ready_since
    }

    /// Whether it is gone for good.
    pub fn gone(&self) -> bool {
        self.status == Status::Gone
    }

    /// Whether the container is running now.
    pub fn running(&self) -> bool {
        matches!(self.container, Container::Running { .. })
    }

    fn row(&mut self, now: Ms) {
        let seen = Seen::Row {
            ready: self.ready,
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

    fn event(&mut self, now: Ms, reason: &'static str, probe: Option<ProbeKind>, message: String) {
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
        if self.ready != ready {
            self.ready = ready;
            self.ready_since = ready.then_some(now);
            self.row(now);
        }
    }

    /// The pod is deleted at `now`: readiness goes on probing, liveness and startup stop, the
    /// container gets SIGTERM and the grace period.
    pub fn delete(&mut self, now: Ms) -> Vec<(Ms, Wake)> {
        if self.deleting.is_some() || self.gone() {
            return Vec::new();
        }
        self.deleting = Some(now);
        self.status = Status::Terminating;
        self.row(now);
        match self.container {
            Container::Running { .. } => {
                let container = self.spec.container.clone();
                self.event(
                    now,
                    "Killing",
                    None,
                    format!("Stopping container {container}"),
                );
                self.kill(now)
            }
            _ => {
                self.status = Status::Gone;
                self.set_ready(now, false);
                self.row(now);
                Vec::new()
            }
        }
    }

    /// SIGTERM now; the run ends as the application and the grace period decide.
    fn kill(&mut self, now: Ms) -> Vec<(Ms, Wake)> {
        let Container::Running { run, since } = self.container else {
            return Vec::new();
        };
        if self.sigterm.is_some() {
            return Vec::new();
        }
        self.sigterm = Some(now);
        let (at, exit) = self
            .life
            .sigterm(Duration::from_millis(now - since), self.spec.grace);
        vec![(since + at.as_millis() as Ms, Wake::Exit { run, exit })]
    }

    /// Handles one wake-up at `now`; returns the next ones.
    pub fn wake(&mut self, now: Ms, wake: Wake) -> Vec<(Ms, Wake)> {
        if self.gone() {
            return Vec::new();
        }
        match wake {
            Wake::ContainerStart { run } => self.start(now, run),
            Wake::Tick(kind) => self.tick(now, kind),
            Wake::ProbeDone { kind, run, result } => self.probe_done(now, kind, run, result),
            Wake::Exit { run, exit } => self.exit(now, run, exit),
            Wake::Restart => {
                if self.deleting.is_some() {
                    return Vec::new();
                }
                self.restarts += 1;
                vec![(
                    now + self.pace.restart,
                    Wake::ContainerStart { run: self.runs + 1 },
                )]
            }
        }
    }

    fn start(&mut self, now: Ms, run: u32) -> Vec<(Ms, Wake)> {
        if self.deleting.is_some() || run != self.runs + 1 {
            return Vec::new();
        }
        self.runs = run;
        self.container = Container::Running { run, since: now };
        self.sigterm = None;
        self.started = self.spec.probe(ProbeKind::Startup).is_none();
        for worker in &mut self.workers {
            worker.on_hold = false;
        }
        self.status = Status::Running;
        // A new container's readiness starts as Failure; without a readiness probe the
        // container is ready once started.
        self.ready = false;
        self.ready_since = None;
        if self.spec.probe(ProbeKind::Readiness).is_none() && self.started {
            self.ready = true;
            self.ready_since = Some(now);
        }
        self.row(now);
        let container = self.spec.container.clone();
        self.event(
            now,
            "Started",
            None,
            format!("Started container {container}"),
        );
        match &self.life.exit {
            Some((at, exit)) => vec![(
                now + at.as_millis() as Ms,
                Wake::Exit {
                    run,
                    exit: exit.clone(),
                },
            )],
            None => Vec::new(),
        }
    }

    fn tick(&mut self, now: Ms, kind: ProbeKind) -> Vec<(Ms, Wake)> {
        let Some(probe) = self.spec.probe(kind).cloned() else {
            return Vec::new();
        };
        if self.workers[kind as usize].stopped {
            return Vec::new();
        }
        let next = (now + u64::from(probe.period) * 1000, Wake::Tick(kind));
        let Container::Running { run, since } = self.container else {
            if kind == ProbeKind::Readiness {
                self.set_ready(now, false);
            }
            return vec![next];
        };
        if self.workers[kind as usize].on_hold {
            return vec![next];
        }
        if self.deleting.is_some() && kind != ProbeKind::Readiness {
            self.workers[kind as usize].stopped = true;
            return Vec::new();
        }
        if (now - since) / 1000 < u64::from(probe.initial_delay) {
            return vec![next];
        }
        if (kind == ProbeKind::Startup) == self.started {
            return vec![next];
        }
        let sigterm = self.sigterm.map(|s| Duration::from_millis(s - since));
        let outcome = self
            .life
            .probe(&probe.handler, Duration::from_millis(now - since), sigterm);
        let (at, result) = match outcome {
            Outcome::Success => (now + 1, Ok(())),
            Outcome::Failure(message) => (now + 1, Err(message)),
            Outcome::Timeout => (
                now + u64::from(probe.timeout) * 1000,
                Err(format!(
                    "Get \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    probe.handler.describe()
                )),
            ),
        };
        vec![next, (at, Wake::ProbeDone { kind, run, result })]
    }

    fn probe_done(
        &mut self,
        now: Ms,
        kind: ProbeKind,
        run: u32,
        result: Result<(), String>,
    ) -> Vec<(Ms, Wake)> {
        if self.container
            != (Container::Running {
                run,
                since: self.since(),
            })
        {
            return Vec::new();
        }
        let Some(probe) = self.spec.probe(kind).cloned() else {
            return Vec::new();
        };
        let success = result.is_ok();
        if let Err(message) = &result {
            self.unhealthy(now, kind, message.clone());
        } else {
            self.workers[kind as usize].streak = None;
        }
        let worker = &mut self.workers[kind as usize];
        if worker.last == Some(success) {
            worker.run += 1;
        } else {
            worker.last = Some(success);
            worker.run = 1;
        }
        let threshold = if success {
            probe.success_threshold
        } else {
            probe.failure_threshold
        };
        if worker.run < threshold {
            return Vec::new();
        }
        match (kind, success) {
            (ProbeKind::Readiness, ready) => {
                self.set_ready(now, ready);
                Vec::new()
            }
            (ProbeKind::Startup, true) => {
                self.started = true;
                if self.spec.probe(ProbeKind::Readiness).is_none() {
                    self.set_ready(now, true);
                }
                Vec::new()
            }
            (ProbeKind::Liveness, true) => Vec::new(),
            (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                let worker = &mut self.workers[kind as usize];
                worker.on_hold = true;
                worker.run = 0;
                let container = self.spec.container.clone();
                self.event(
                    now,
                    "Killing",
                    Some(kind),
                    format!(
                        "Container {container} failed {} probe, will be restarted",
                        kind.as_str().to_lowercase()
                    ),
                );
                self.kill(now)
            }
        }
    }

    fn since(&self) -> Ms {
        match self.container {
            Container::Running { since, .. } => since,
            _ => 0,
        }
    }

    /// One failed probe: a new Unhealthy event, or one more of the same in a row.
    fn unhealthy(&mut self, now: Ms, kind: ProbeKind, message: String) {
        let message = format!("{} probe failed: {message}", kind.as_str());
        if let Some(index) = self.workers[kind as usize].streak
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
        self.workers[kind as usize].streak = Some(self.record.len());
        self.event(now, "Unhealthy", Some(kind), message);
    }

    fn exit(&mut self, now: Ms, run: u32, exit: Exit) -> Vec<(Ms, Wake)> {
        let Container::Running { run: current, .. } = self.container else {
            return Vec::new();
        };
        if current != run {
            return Vec::new();
        }
        self.container = Container::Exited { run };
        self.ready = false;
        self.ready_since = None;
        for worker in &mut self.workers {
            worker.streak = None;
        }
        let detail = if exit.message.is_empty() {
            format!("exit code {}", exit.code)
        } else {
            format!("exit code {}: {}", exit.code, exit.message)
        };
        self.event(now, exit.reason, None, detail);
        if self.deleting.is_some() {
            self.status = Status::Gone;
            self.row(now);
            return Vec::new();
        }
        self.status = Status::Terminated(exit.reason);
        self.row(now);
        let restart = match self.spec.restart_policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit.code != 0,
            RestartPolicy::Never => false,
        };
        if !restart {
            return Vec::new();
        }
        let decided = now + self.pace.notice;
        match self.backoff {
            // No back-off yet, or the container ran long enough to reset it: restart now.
            None => {
                self.backoff = Some((BACKOFF_INITIAL, decided));
                vec![(decided, Wake::Restart)]
            }
            Some((_, last_update)) if now.saturating_sub(last_update) > 2 * BACKOFF_MAX => {
                self.backoff = Some((BACKOFF_INITIAL, decided));
                vec![(decided, Wake::Restart)]
            }
            Some((backoff, _)) => {
                self.status = Status::CrashLoopBackOff;
                let mut wakes = Vec::new();
                self.record_backoff(decided);
                let restart_at = (now + backoff + self.pace.resync).max(decided);
                self.backoff = Some(((backoff * 2).min(BACKOFF_MAX), restart_at));
                wakes.push((restart_at, Wake::Restart));
                wakes
            }
        }
    }

    fn record_backoff(&mut self, at: Ms) {
        let status = self.status;
        self.record.push((
            at,
            Seen::Row {
                ready: false,
                status,
                restarts: self.restarts,
            },
        ));
        let container = self.spec.container.clone();
        self.event(
            at,
            "BackOff",
            None,
            format!("Back-off restarting failed container {container}"),
        );
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
    use crate::simulate::app::Life;
    use crate::simulate::manifest::Handler;

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

    fn healthy() -> Life {
        let mut life = Life::config_error("unused");
        life.exit = None;
        life.open = Duration::ZERO;
        life.loaded = Duration::from_secs(5);
        life
    }

    const PACE: Pace = Pace {
        start: 1000,
        restart: 500,
        notice: 100,
        resync: 0,
        phases: [0, 0, 0],
    };

    /// Runs one pod alone until `until`.
    fn run(spec: PodSpec, life: Life, until: Ms) -> Pod {
        let (mut pod, wakes) = Pod::new("p".into(), 0, Arc::new(spec), Arc::new(life), PACE);
        let mut queue: Vec<(Ms, u64, Wake)> = Vec::new();
        let mut seq = 0;
        for (t, w) in wakes {
            seq += 1;
            queue.push((t, seq, w));
        }
        while let Some(i) = queue
            .iter()
            .enumerate()
            .min_by_key(|(_, (t, s, _))| (*t, *s))
            .map(|(i, _)| i)
        {
            let (t, _, w) = queue.remove(i);
            if t > until {
                break;
            }
            for (t2, w2) in pod.wake(t, w) {
                seq += 1;
                queue.push((t2, seq, w2));
            }
        }
        pod
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
        let killed = first(&pod, |s| {
            matches!(
                s,
                Seen::Event {
                    reason: "Killing",
                    ..
                }
            )
        });
        assert_eq!(killed, Some(15_001));
        let unhealthy = pod.record.iter().find_map(|(_, s)| match s {
            Seen::Event {
                reason: "Unhealthy",
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
        assert_eq!(pod.restarts, 1, "restarted at once after the first kill");
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
        assert!(
            first(&pod, |s| matches!(
                s,
                Seen::Event {
                    reason: "Killing",
                    ..
                }
            ))
            .is_none()
        );
        assert_eq!(
            first(&pod, |s| matches!(s, Seen::Row { ready: true, .. })),
            Some(32_001),
            "ready once the startup probe passes (no readiness probe)"
        );
    }

    #[test]
    fn restarts_back_off_10_20_40_seconds_from_the_exit() {
        let mut life = healthy();
        life.exit = Some((
            Duration::from_secs(1),
            Exit {
                code: 1,
                reason: "Error",
                message: String::new(),
            },
        ));
        let pod = run(spec([None, None, None]), life, 120_000);
        let starts: Vec<Ms> = pod
            .record
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    Seen::Event {
                        reason: "Started",
                        ..
                    }
                )
            })
            .map(|(t, _)| *t)
            .collect();
        // Exit 1 s after each start; first restart after notice + restart, then back-off.
        assert_eq!(starts[..4], [1000, 2600, 14_100, 35_600]);
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
        let (mut pod, _) = Pod::new(
            "p".into(),
            0,
            Arc::new(spec([None, Some(probe("/livez", 5, 3)), None])),
            Arc::new(life),
            PACE,
        );
        pod.wake(1000, Wake::ContainerStart { run: 1 });
        let wakes = pod.delete(10_000);
        assert_eq!(wakes.len(), 1);
        let (at, Wake::Exit { exit, .. }) = wakes[0].clone() else {
            panic!()
        };
        assert_eq!((at, exit.code), (40_000, 137));
        assert!(
            pod.tick(12_000, ProbeKind::Liveness).is_empty(),
            "liveness stops"
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
        let unhealthy = first(&pod, |s| {
            matches!(
                s,
                Seen::Event {
                    reason: "Unhealthy",
                    ..
                }
            )
        });
        assert_eq!(
            unhealthy, None,
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
        assert_eq!(
            first(&pod, |s| matches!(
                s,
                Seen::Event {
                    reason: "Killing",
                    ..
                }
            )),
            Some(7_000)
        );
    }

    #[test]
    fn restart_policy_decides_on_a_restart() {
        let exits_with = |code| {
            let mut life = healthy();
            life.exit = Some((
                Duration::from_secs(1),
                Exit {
                    code,
                    reason: if code == 0 { "Completed" } else { "Error" },
                    message: String::new(),
                },
            ));
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
        life.exit = Some((
            Duration::from_secs(700),
            Exit {
                code: 1,
                reason: "Error",
                message: String::new(),
            },
        ));
        let pod = run(spec([None, None, None]), life, 2_200_000);
        let starts: Vec<Ms> = pod
            .record
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    Seen::Event {
                        reason: "Started",
                        ..
                    }
                )
            })
            .map(|(t, _)| *t)
            .collect();
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
        let (mut pod, _) = Pod::new(
            "p".into(),
            0,
            Arc::new(spec([None, None, Some(probe("/readyz", 2, 1))])),
            Arc::new(life),
            PACE,
        );
        pod.wake(1000, Wake::ContainerStart { run: 1 });
        pod.delete(10_000);
        let wakes = pod.tick(12_000, ProbeKind::Readiness);
        assert_eq!(wakes.len(), 2, "the next tick and this probe's result");
        let (at, done) = wakes[1].clone();
        pod.wake(at, done);
        assert!(
            !pod.ready(),
            "/readyz fails after SIGTERM, and the probe sees it"
        );
    }
}
