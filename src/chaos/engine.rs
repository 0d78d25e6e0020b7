//! The runtime: walks a [`Plan`] on the tokio clock, switches health and effects, and keeps
//! what happened visible (logs, metrics, [`ChaosEngine::snapshot`]). It decides nothing itself:
//! every time and draw comes from the plan. It knows nothing of HTTP or gRPC either: a protocol
//! layer calls [`ChaosEngine::inject`] before each prediction and maps an [`Injected`] failure
//! to its own status.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use super::duration::show;
use super::effects::Effects;
use super::fault::{Anchor, CrashMode, Effect, FaultKind, Overload, Source, Switches};
use super::overload::{Held, QueueState, Queues, Shed, Work};
use super::plan::{Plan, Schedule, mix};
use crate::health::{Health, Phase};
use crate::metrics::Metrics;

/// How many past events the engine keeps.
const HISTORY: usize = 200;
/// Stream of the per-request draws (latency, errors); fault streams start at 1000.
const REQUEST_STREAM: u64 = 7;

/// What happened to a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAction {
    Start,
    End,
    /// The probability draw skipped this occurrence.
    Skipped,
    /// A SIGTERM arrived while the fault held.
    Sigterm,
}

impl EventAction {
    /// The name in logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Start => "start",
            EventAction::End => "end",
            EventAction::Skipped => "skipped",
            EventAction::Sigterm => "sigterm",
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Since process start.
    pub at: Duration,
    pub source: Source,
    /// A fault name, or `ignore-sigterm`.
    pub fault: &'static str,
    pub action: EventAction,
    pub detail: String,
}

/// One thing the plan will do next.
#[derive(Debug, Clone, PartialEq)]
pub struct Upcoming {
    /// The schedule's index in the plan.
    pub schedule: usize,
    pub action: EventAction,
    /// Time left, once its anchor is known.
    pub in_: Option<Duration>,
    /// For events anchored on a readiness not reached yet: how long after ready.
    pub after_ready: Option<Duration>,
}

/// The engine's state at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub uptime: Duration,
    /// From start to the first time the process became ready.
    pub ready_at: Option<Duration>,
    pub phase: Phase,
    pub past: Vec<Event>,
    /// Soonest first; events waiting for readiness last.
    pub next: Vec<Upcoming>,
}

/// A prediction failure a fault asked for, with the HTTP-style status it chose (5xx); each
/// protocol maps it to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("chaos: injected error ({status})")]
pub struct Injected {
    pub status: u16,
}

/// What to do about a SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sigterm {
    /// Readiness fails now; drain and exit.
    Drain,
    /// The profile ignores SIGTERM: readiness fails, the process stays until SIGKILL.
    Ignored,
    /// A hung process cannot drain: like a deadlocked one, it waits for SIGKILL.
    Hung,
}

#[derive(Debug, Clone)]
struct Pending {
    at: Option<Instant>,
    after_ready: Option<Duration>,
    action: EventAction,
}

/// Latency and error faults that are active now. The count lets every prediction skip the lock
/// when none is (the usual case).
#[derive(Default)]
struct RequestFaults {
    count: AtomicUsize,
    active: Mutex<BTreeMap<(Source, FaultKind), Effect>>,
}

/// True for a schedule whose first occurrence is due the moment its anchor is reached and
/// happens: `start` (anchored at start) or `model_loaded` (at ready) switches it on then and
/// there, so no request can come before it, and the schedule's task only ends it.
fn on_at_anchor(schedule: &Schedule) -> bool {
    schedule
        .occurrence(0)
        .is_some_and(|first| first.start.is_zero() && first.happens)
}

/// The chaos runtime of one process.
pub struct ChaosEngine {
    plan: Plan,
    started: Instant,
    ready_at: OnceLock<Instant>,
    ready: Notify,
    health: Arc<Health>,
    metrics: Metrics,
    effects: Box<dyn Effects>,
    history: Mutex<VecDeque<Event>>,
    /// How many events were ever recorded; watchers (the status page) hear of each one.
    recorded: tokio::sync::watch::Sender<u64>,
    pending: Mutex<BTreeMap<usize, Pending>>,
    request_faults: RequestFaults,
    request_rng: Mutex<ChaCha8Rng>,
    overload: Queues,
}

impl ChaosEngine {
    /// An engine for `plan`, counting from `started` (the process start).
    pub fn new(
        plan: Plan,
        started: Instant,
        health: Arc<Health>,
        metrics: Metrics,
        effects: Box<dyn Effects>,
    ) -> Arc<Self> {
        health.set_live_while_loading(plan.live_while_loading);
        let request_rng = Mutex::new(ChaCha8Rng::seed_from_u64(mix(plan.seed, REQUEST_STREAM)));
        Arc::new(ChaosEngine {
            plan,
            started,
            ready_at: OnceLock::new(),
            ready: Notify::new(),
            health,
            effects,
            history: Mutex::new(VecDeque::new()),
            recorded: tokio::sync::watch::Sender::new(0),
            pending: Mutex::new(BTreeMap::new()),
            request_faults: RequestFaults::default(),
            request_rng,
            overload: Queues::new(metrics.clone()),
            metrics,
        })
    }

    /// The plan being carried out.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// A draw within `range`, from the per-request stream (a stand-in's latency).
    pub fn draw(&self, range: &crate::chaos::duration::DurationRange) -> std::time::Duration {
        let mut rng = self
            .request_rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        range.sample(&mut *rng)
    }

    /// Switches on the faults due at start + 0, then starts one timer task per schedule.
    pub fn start(self: &Arc<Self>) {
        for (index, schedule) in self.plan.schedules.iter().enumerate() {
            if schedule.anchor == Anchor::Start && on_at_anchor(schedule) {
                self.start_fault(Source::Schedule(index), &schedule.effect);
            }
        }
        for index in 0..self.plan.schedules.len() {
            let engine = Arc::clone(self);
            tokio::spawn(async move { engine.run_schedule(index).await });
        }
    }

    /// Waits out the bind delay: the port stays closed until then.
    pub async fn bind_delay(&self) {
        if !self.plan.bind_delay.is_zero() {
            tracing::warn!(
                delay_ms = self.plan.bind_delay.as_millis() as u64,
                "chaos: port stays closed (bind delay)"
            );
            sleep_until(self.started + self.plan.bind_delay).await;
        }
    }

    /// Waits out the load delay: the port is open, the model not loaded yet.
    pub async fn load_delay(&self) {
        if !self.plan.load_delay.is_zero() {
            tracing::warn!(
                delay_ms = self.plan.load_delay.as_millis() as u64,
                "chaos: model load delayed (port open, not ready)"
            );
            tokio::time::sleep(self.plan.load_delay).await;
        }
    }

    /// The model has loaded: startup and readiness pass, and schedules anchored on readiness
    /// start counting. Faults due the moment the model is ready are switched on here, before
    /// readiness passes: a probe or request that finds the process ready finds them on too (from
    /// the schedules' own tasks they came a wake-up later, and a request in between escaped).
    pub fn model_loaded(&self) {
        if self.ready_at.get().is_some() {
            self.health.set_loaded();
            return;
        }
        let _ = self.ready_at.set(Instant::now());
        for (index, schedule) in self.plan.schedules.iter().enumerate() {
            if schedule.anchor == Anchor::Ready && on_at_anchor(schedule) {
                self.start_fault(Source::Schedule(index), &schedule.effect);
            }
        }
        self.health.set_loaded();
        self.ready.notify_waiters();
    }

    /// Decides what a SIGTERM does, and records it.
    pub fn on_sigterm(&self) -> Sigterm {
        if self.plan.ignore_sigterm {
            self.record(
                Source::Shutdown,
                "ignore-sigterm",
                EventAction::Start,
                "SIGTERM ignored; only SIGKILL ends the process".into(),
            );
            self.health.set_draining();
            return Sigterm::Ignored;
        }
        if self.health.hung() {
            self.record(
                Source::Shutdown,
                FaultKind::Hang.name(),
                EventAction::Sigterm,
                "SIGTERM while hung: nothing can drain; waiting for SIGKILL".into(),
            );
            return Sigterm::Hung;
        }
        // A timeline may say its application keeps passing readiness until it exits.
        if self.plan.unready_on_sigterm {
            self.health.set_draining();
        }
        Sigterm::Drain
    }

    async fn wait_ready(&self) -> Instant {
        loop {
            let notified = self.ready.notified();
            if let Some(at) = self.ready_at.get() {
                return *at;
            }
            notified.await;
        }
    }

    async fn run_schedule(self: Arc<Self>, index: usize) {
        let schedule = &self.plan.schedules[index];
        let source = Source::Schedule(index);
        if schedule.anchor == Anchor::Ready
            && let Some(first) = schedule.occurrence(0)
        {
            self.set_pending(index, None, Some(first.start), EventAction::Start);
        }
        let anchor = match schedule.anchor {
            Anchor::Start => self.started,
            Anchor::Ready => self.wait_ready().await,
        };
        let mut k = 0;
        while let Some(occurrence) = schedule.occurrence(k) {
            k += 1;
            // On already when due at its anchor + 0 (see `start`, `model_loaded`); only its end
            // is left.
            if !(k == 1 && on_at_anchor(schedule)) {
                let start = anchor + occurrence.start;
                self.set_pending(index, Some(start), None, EventAction::Start);
                sleep_until(start).await;
                if !occurrence.happens {
                    self.record(
                        source,
                        schedule.effect.kind().name(),
                        EventAction::Skipped,
                        format!("probability {}", schedule.probability),
                    );
                    continue;
                }
                self.start_fault(source, &schedule.effect);
            }
            if let Some(end) = occurrence.end {
                let end = anchor + end;
                self.set_pending(index, Some(end), None, EventAction::End);
                sleep_until(end).await;
                self.stop_fault(source, schedule.effect.kind());
            }
        }
        lock(&self.pending).remove(&index);
    }

    /// Switches a fault on now.
    pub fn start_fault(&self, source: Source, effect: &Effect) {
        self.record(
            source,
            effect.kind().name(),
            EventAction::Start,
            effect.describe(),
        );
        effect.start(source, &self.plan.profile, self);
    }

    /// Switches a fault of `source` off; a crash or hang cannot be, and a fault that is not
    /// on is left alone (recorded all the same, so an admin's request shows).
    pub fn stop_fault(&self, source: Source, kind: FaultKind) {
        if !kind.can_stop() {
            return;
        }
        self.record(
            source,
            kind.name(),
            EventAction::End,
            format!("{kind} cleared"),
        );
        kind.stop(source, self);
    }

    /// Switches off every fault `source` can stop.
    pub fn stop_all(&self, source: Source) {
        for kind in FaultKind::ALL.into_iter().filter(|k| k.can_stop()) {
            self.stop_fault(source, kind);
        }
    }

    /// Applies the active latency and error faults to one prediction: waits out the injected
    /// latency, then maybe fails it.
    pub async fn inject(&self) -> Result<(), Injected> {
        if self.request_faults.count.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let effects: Vec<Effect> = lock(&self.request_faults.active)
            .values()
            .cloned()
            .collect();
        let mut delay = Duration::ZERO;
        let mut failure = None;
        {
            let mut rng = lock(&self.request_rng);
            for effect in &effects {
                match effect {
                    Effect::Latency(latency) => delay += latency.sample(&mut *rng),
                    Effect::Errors { rate, statuses }
                        if failure.is_none() && rng.random::<f64>() < *rate =>
                    {
                        failure = Some(statuses[rng.random_range(0..statuses.len())]);
                    }
                    _ => {}
                }
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match failure {
            Some(status) => {
                self.metrics
                    .fault_events
                    .with_label_values(&[FaultKind::Errors.name(), "inject"])
                    .inc();
                Err(Injected { status })
            }
            None => Ok(()),
        }
    }

    /// Waits for a worker of the active overload fault, if any (see [`Queues::admit`]): the
    /// first thing every probe and prediction does, before reading its body.
    pub async fn admit(&self, work: Work) -> Result<Option<Held>, Shed> {
        self.overload.admit(work, &self.request_rng).await
    }

    /// The active overload fault's queue now.
    pub fn overload_state(&self) -> Option<QueueState> {
        self.overload.state()
    }

    /// One log line (warn for faults), one metric, one history entry.
    fn record(&self, source: Source, fault: &'static str, action: EventAction, detail: String) {
        let at = self.started.elapsed();
        let at_ms = at.as_millis() as u64;
        let source_name = source.to_string();
        if action == EventAction::Skipped {
            tracing::info!(source = %source_name, fault, action = action.as_str(), detail = %detail, at_ms, "chaos event");
        } else {
            tracing::warn!(source = %source_name, fault, action = action.as_str(), detail = %detail, at_ms, "chaos event");
        }
        self.metrics
            .fault_events
            .with_label_values(&[fault, action.as_str()])
            .inc();
        let mut history = lock(&self.history);
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(Event {
            at,
            source,
            fault,
            action,
            detail,
        });
        // Counted under the history lock, so `events_since` sees count and history agree.
        self.recorded.send_modify(|n| *n += 1);
    }

    /// A receiver of the count of events recorded so far, changed by every new event.
    pub fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.recorded.subscribe()
    }

    /// The events recorded after the first `seen` (those still kept), and the count to pass
    /// next time.
    pub fn events_since(&self, seen: u64) -> (Vec<Event>, u64) {
        let history = lock(&self.history);
        let total = *self.recorded.borrow();
        let kept_from = total - history.len() as u64;
        let skip = seen.saturating_sub(kept_from) as usize;
        (history.iter().skip(skip).cloned().collect(), total)
    }

    fn set_pending(
        &self,
        index: usize,
        at: Option<Instant>,
        after_ready: Option<Duration>,
        action: EventAction,
    ) {
        lock(&self.pending).insert(
            index,
            Pending {
                at,
                after_ready,
                action,
            },
        );
    }

    /// Time since process start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// What happened and what comes next.
    pub fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let mut next: Vec<Upcoming> = lock(&self.pending)
            .iter()
            .map(|(index, p)| Upcoming {
                schedule: *index,
                action: p.action,
                in_: p.at.map(|at| at.saturating_duration_since(now)),
                after_ready: p.after_ready,
            })
            .collect();
        next.sort_by_key(|e| (e.in_.is_none(), e.in_.or(e.after_ready)));
        Snapshot {
            uptime: now.saturating_duration_since(self.started),
            ready_at: self
                .ready_at
                .get()
                .map(|at| at.saturating_duration_since(self.started)),
            phase: self.health.phase(),
            past: lock(&self.history).iter().cloned().collect(),
            next,
        }
    }
}

impl Switches for ChaosEngine {
    fn readiness(&self, source: Source, failing: Option<String>) {
        self.health.set_unready(&source.to_string(), failing);
    }

    fn liveness(&self, source: Source, failing: Option<String>) {
        self.health.set_unhealthy(&source.to_string(), failing);
    }

    fn hang(&self) {
        self.health.set_hung();
    }

    /// Ends the process as `mode` says, or holds it for a hang.
    fn crash(&self, mode: CrashMode, exit_code: u8, what: &str) {
        let reason = format!(
            "{}: {what} after {}",
            self.plan.profile,
            show(self.started.elapsed())
        );
        tracing::error!(mode = mode.as_str(), exit_code, reason = %reason, "chaos crash");
        if mode == CrashMode::Hang {
            self.health.set_hung();
        } else {
            self.effects.crash(mode, exit_code, &reason);
        }
    }

    fn per_request(&self, source: Source, kind: FaultKind, effect: Option<Effect>) {
        let mut active = lock(&self.request_faults.active);
        match effect {
            Some(effect) => active.insert((source, kind), effect),
            None => active.remove(&(source, kind)),
        };
        self.request_faults
            .count
            .store(active.len(), Ordering::SeqCst);
    }

    fn leak(&self, rate: Option<(f64, Option<f64>)>) {
        self.effects.leak(rate);
    }

    fn burn(&self, source: Source, cores: Option<f64>) {
        self.effects.burn(&source.to_string(), cores);
    }

    fn overload(&self, source: Source, overload: Option<Overload>) {
        self.overload.set(source, overload);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The engine on tokio's paused clock: time moves only when every task waits, so each test
/// steps through a plan exactly, like the planner's tests, with the process effects recorded
/// instead of carried out.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::profile::Profile;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Effects for Arc<Recorder> {
        fn crash(&self, mode: CrashMode, exit_code: u8, reason: &str) {
            lock(&self.0).push(format!("crash {} {exit_code} {reason}", mode.as_str()));
        }
        fn leak(&self, rate: Option<(f64, Option<f64>)>) {
            lock(&self.0).push(format!("leak {rate:?}"));
        }
        fn burn(&self, source: &str, cores: Option<f64>) {
            lock(&self.0).push(format!("burn {source} {cores:?}"));
        }
    }

    fn running(profile: &str) -> (Arc<ChaosEngine>, Arc<Health>, Arc<Recorder>) {
        let profile = Profile::load(profile).unwrap();
        let plan = Plan::new(&profile, 42, 1.0);
        let metrics = Metrics::new();
        let health = Arc::new(Health::new(metrics.clone()));
        health.set_listening();
        let recorder = Arc::new(Recorder::default());
        let engine = ChaosEngine::new(
            plan,
            Instant::now(),
            Arc::clone(&health),
            metrics,
            Box::new(Arc::clone(&recorder)),
        );
        engine.start();
        (engine, health, recorder)
    }

    /// Lets the schedule tasks run up to `at` since the engine started.
    async fn at(engine: &ChaosEngine, at: Duration) {
        sleep_until(engine.started + at).await;
        // The timers that fire at `at` run before this task resumes only if they were first;
        // one yield lets every task woken at the same instant finish its step.
        tokio::task::yield_now().await;
    }

    #[tokio::test(start_paused = true)]
    async fn v2_crashes_with_exit_code_1_when_the_plan_says() {
        let (engine, _, recorder) = running("v2");
        let load = engine.plan().load_delay;
        let crash = engine.plan().schedules[0].first;
        at(&engine, load).await;
        assert!(engine.snapshot().next[0].in_.is_none(), "waits for ready");
        engine.model_loaded();
        at(&engine, load + crash - Duration::from_millis(1)).await;
        assert!(lock(&recorder.0).is_empty(), "nothing before the crash");
        at(&engine, load + crash).await;
        let calls = lock(&recorder.0).clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(
            calls[0].starts_with("crash exit 1 v2: crash (exit code 1) after "),
            "{calls:?}"
        );
        let past = engine.snapshot().past;
        assert_eq!(past.last().unwrap().at, load + crash);
    }

    /// A fault due at ready + 0 is on before readiness passes, so that no probe or request finds
    /// the process ready without it; its task still ends it, and starts it only once.
    #[tokio::test(start_paused = true)]
    async fn a_fault_due_at_ready_is_on_before_readiness_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("at-ready.toml");
        std::fs::write(
            &path,
            "[[fault]]\ntype = \"overload\"\nworkers = 1\nservice-time = \"1s\"\nfor = \"5s\"\n",
        )
        .unwrap();
        let (engine, health, _) = running(path.to_str().unwrap());
        // The schedule's task waits for readiness.
        tokio::task::yield_now().await;
        assert!(engine.overload_state().is_none());
        engine.model_loaded();
        // No await in between: the same instant readiness passes.
        assert!(health.readiness().is_ok());
        assert!(engine.overload_state().is_some(), "on as readiness passes");
        at(&engine, Duration::from_secs(6)).await;
        assert!(engine.overload_state().is_none(), "ended by its task");
        let actions: Vec<_> = engine.snapshot().past.iter().map(|e| e.action).collect();
        assert_eq!(actions, [EventAction::Start, EventAction::End]);
    }

    /// A fault due at start + 0 is on when `start` returns, before the port can open, not when
    /// its task first runs: on a busy machine that can be after the first requests.
    #[tokio::test(start_paused = true)]
    async fn a_fault_due_at_start_is_on_before_any_task_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("at-start.toml");
        std::fs::write(
            &path,
            "[[fault]]\ntype = \"overload\"\nfrom = \"start\"\nworkers = 1\nservice-time = \"1s\"\nfor = \"5s\"\n",
        )
        .unwrap();
        // No await between `start` and the look.
        let (engine, ..) = running(path.to_str().unwrap());
        assert!(engine.overload_state().is_some(), "on as the engine starts");
        at(&engine, Duration::from_secs(6)).await;
        assert!(engine.overload_state().is_none(), "ended by its task");
        let actions: Vec<_> = engine.snapshot().past.iter().map(|e| e.action).collect();
        assert_eq!(actions, [EventAction::Start, EventAction::End]);
    }

    /// The status page's stream asks for what it has not seen: every new event once, in order,
    /// also after the history dropped its oldest entries.
    #[tokio::test(start_paused = true)]
    async fn events_since_hands_out_each_new_event_once() {
        let (engine, _, _) = running("none");
        let watcher = engine.subscribe_events();
        let (none, seen) = engine.events_since(0);
        assert!(none.is_empty() && seen == 0);
        engine.record(Source::Admin, "unready", EventAction::Start, "a".into());
        assert!(
            watcher.has_changed().unwrap(),
            "watchers hear of every event"
        );
        engine.record(Source::Admin, "unready", EventAction::End, "b".into());
        let (events, seen) = engine.events_since(seen);
        let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(details, ["a", "b"]);
        assert_eq!(seen, 2);
        assert!(engine.events_since(seen).0.is_empty());
        for i in 0..HISTORY + 5 {
            engine.record(Source::Admin, "latency", EventAction::Start, i.to_string());
        }
        let (events, seen) = engine.events_since(seen);
        assert_eq!(events.len(), HISTORY, "only what is still kept");
        assert_eq!(events[0].detail, "5");
        assert_eq!(seen, (HISTORY + 7) as u64);
        assert_eq!(
            engine.events_since(u64::MAX).1,
            seen,
            "a new stream starts from now"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn flapping_readiness_switches_readiness_in_its_windows() {
        let (engine, health, _) = running("flapping-readiness");
        engine.model_loaded();
        let secs = Duration::from_secs;
        for (t, ready) in [
            (19, true),
            (20, false),
            (29, false),
            (30, true),
            (50, false),
            (60, true),
        ] {
            at(&engine, secs(t)).await;
            assert_eq!(health.readiness().is_ok(), ready, "at {t}s");
        }
        let snapshot = engine.snapshot();
        let actions: Vec<_> = snapshot.past.iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [
                EventAction::Start,
                EventAction::End,
                EventAction::Start,
                EventAction::End
            ]
        );
        assert_eq!(snapshot.next[0].in_, Some(secs(20)), "next window at 80 s");
    }

    #[tokio::test(start_paused = true)]
    async fn request_faults_delay_and_fail_predictions_until_stopped() {
        let (engine, _, _) = running("none");
        engine.model_loaded();
        assert_eq!(engine.inject().await, Ok(()));
        engine.start_fault(
            Source::Admin,
            &Effect::Latency(crate::chaos::fault::LatencyDistribution::Uniform {
                delay: "250ms".parse().unwrap(),
            }),
        );
        engine.start_fault(
            Source::Admin,
            &Effect::Errors {
                rate: 1.0,
                statuses: vec![503],
            },
        );
        let before = Instant::now();
        assert_eq!(engine.inject().await, Err(Injected { status: 503 }));
        assert_eq!(before.elapsed(), Duration::from_millis(250));
        engine.stop_all(Source::Admin);
        let before = Instant::now();
        assert_eq!(engine.inject().await, Ok(()));
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn sources_switch_their_own_faults_only() {
        let (engine, health, recorder) = running("none");
        engine.model_loaded();
        engine.start_fault(Source::Schedule(0), &Effect::Unready);
        engine.start_fault(Source::Admin, &Effect::Unready);
        engine.start_fault(Source::Admin, &Effect::Burn { cores: 2.0 });
        engine.stop_all(Source::Admin);
        assert!(health.readiness().is_err(), "the schedule's window holds");
        engine.stop_fault(Source::Schedule(0), FaultKind::Unready);
        assert!(health.readiness().is_ok());
        assert_eq!(
            lock(&recorder.0).clone(),
            ["burn admin Some(2.0)", "leak None", "burn admin None"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_drains_unless_ignored_or_hung() {
        let (engine, health, _) = running("none");
        engine.model_loaded();
        assert_eq!(engine.on_sigterm(), Sigterm::Drain);
        assert_eq!(health.phase(), Phase::Draining);
        let (engine, health, _) = running("slow-shutdown");
        engine.model_loaded();
        assert_eq!(engine.on_sigterm(), Sigterm::Ignored);
        assert!(health.readiness().is_err(), "readiness fails all the same");
        let (engine, _, _) = running("none");
        engine.model_loaded();
        engine.start_fault(Source::Admin, &Effect::Hang);
        assert_eq!(engine.on_sigterm(), Sigterm::Hung);
    }
}
