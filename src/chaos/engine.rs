//! The runtime: executes a [`Plan`] with tokio timers, and keeps what happened visible (logs,
//! metrics, `GET /chaos`). It decides nothing itself: every time and draw comes from the plan.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until};

use super::duration::show;
use super::faults::{self, Burner, Leaker};
use super::plan::{Action, Plan, mix};
use super::profile::{Anchor, CrashMode};
use crate::error::ApiError;
use crate::health::Health;
use crate::metrics::Metrics;

/// How many past events `/chaos` keeps.
const HISTORY: usize = 200;

/// A crash the main task must carry out because it cannot happen on a worker (a panic).
#[derive(Debug)]
pub struct CrashOrder {
    pub reason: String,
}

/// One thing that happened.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PastEvent {
    /// Milliseconds since process start.
    pub at_ms: u64,
    /// `fault[i]` or `admin`.
    pub source: String,
    pub fault: String,
    /// start, end, skipped.
    pub action: String,
    pub detail: String,
}

/// One thing that will happen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NextEvent {
    pub source: String,
    pub fault: String,
    /// start or end.
    pub action: String,
    pub detail: String,
    /// Countdown in milliseconds; absent while it waits for the process to become ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_ms: Option<u64>,
    /// For events anchored on readiness that is not reached yet: milliseconds after ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_ready_ms: Option<u64>,
}

/// What `GET /chaos` returns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChaosStatus {
    pub profile: String,
    pub description: String,
    pub seed: u64,
    pub time_scale: f64,
    pub phase: String,
    pub uptime_ms: u64,
    /// Milliseconds from start to the first time the process became ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_at_ms: Option<u64>,
    pub bind_delay_ms: u64,
    pub load_delay_ms: u64,
    pub ignore_sigterm: bool,
    pub past: Vec<PastEvent>,
    pub next: Vec<NextEvent>,
}

#[derive(Debug, Clone)]
struct Pending {
    at: Option<Instant>,
    after_ready: Option<Duration>,
    action: &'static str,
}

/// The chaos runtime for one process.
pub struct ChaosEngine {
    plan: Plan,
    started: Instant,
    ready_at: OnceLock<Instant>,
    ready: Notify,
    health: Arc<Health>,
    metrics: Metrics,
    termination_log: PathBuf,
    history: Mutex<VecDeque<PastEvent>>,
    pending: Mutex<BTreeMap<usize, Pending>>,
    /// Per schedule: whether a per-request fault is in its window now.
    active: Vec<AtomicBool>,
    /// Per-request faults switched on by the admin routes, by fault kind.
    admin_faults: Mutex<BTreeMap<&'static str, Action>>,
    request_rng: Mutex<ChaCha8Rng>,
    crash_orders: mpsc::UnboundedSender<CrashOrder>,
    leaker: Leaker,
    burner: Burner,
}

impl ChaosEngine {
    /// An engine for `plan`; the receiver gets crashes only the main task can carry out.
    pub fn new(
        plan: Plan,
        started: Instant,
        health: Arc<Health>,
        metrics: Metrics,
        termination_log: PathBuf,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<CrashOrder>) {
        let (crash_orders, receiver) = mpsc::unbounded_channel();
        let active = plan
            .schedules
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let request_rng = Mutex::new(ChaCha8Rng::seed_from_u64(mix(plan.seed, 7)));
        let leaker = Leaker::new(metrics.chaos_leaked_bytes.clone());
        let engine = ChaosEngine {
            plan,
            started,
            ready_at: OnceLock::new(),
            ready: Notify::new(),
            health,
            metrics,
            termination_log,
            history: Mutex::new(VecDeque::new()),
            pending: Mutex::new(BTreeMap::new()),
            active,
            admin_faults: Mutex::new(BTreeMap::new()),
            request_rng,
            crash_orders,
            leaker,
            burner: Burner::default(),
        };
        (Arc::new(engine), receiver)
    }

    /// The plan being executed.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Starts one timer task per schedule.
    pub fn start(self: &Arc<Self>) {
        for index in 0..self.plan.schedules.len() {
            let engine = Arc::clone(self);
            tokio::spawn(async move { engine.run_schedule(index).await });
        }
    }

    /// The process became ready for the first time: schedules anchored on readiness start
    /// counting.
    pub fn mark_ready(&self) {
        if self.ready_at.set(Instant::now()).is_ok() {
            self.ready.notify_waiters();
        }
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
        let source = format!("fault[{index}]");
        if schedule.anchor == Anchor::Ready
            && let Some(first) = schedule.occurrence(0)
        {
            self.set_pending(index, None, Some(first.start), "start");
        }
        let anchor = match schedule.anchor {
            Anchor::Start => self.started,
            Anchor::Ready => self.wait_ready().await,
        };
        let mut k = 0;
        while let Some(occurrence) = schedule.occurrence(k) {
            k += 1;
            let start = anchor + occurrence.start;
            self.set_pending(index, Some(start), None, "start");
            sleep_until(start).await;
            if !occurrence.happens {
                self.record(
                    &source,
                    schedule.action.kind(),
                    "skipped",
                    format!("probability {}", schedule.probability),
                );
                continue;
            }
            self.switch(&source, Some(index), &schedule.action, true);
            if let Some(end) = occurrence.end {
                let end = anchor + end;
                self.set_pending(index, Some(end), None, "end");
                sleep_until(end).await;
                self.switch(&source, Some(index), &schedule.action, false);
            }
        }
        self.clear_pending(index);
    }

    /// Turns a fault on or off. `schedule` is the plan's schedule for per-request faults; admin
    /// actions pass `None`.
    pub fn switch(&self, source: &str, schedule: Option<usize>, action: &Action, on: bool) {
        let kind = action.kind();
        self.record(
            source,
            kind,
            if on { "start" } else { "end" },
            action.describe(),
        );
        match action {
            Action::Crash { mode, exit_code } if on => {
                self.crash(source, *mode, *exit_code, &action.describe())
            }
            Action::Hang if on => self.health.set_hung(),
            Action::Unhealthy => self.health.set_unhealthy(
                source,
                on.then(|| format!("{}: {source} unhealthy", self.plan.profile)),
            ),
            Action::Unready => self.health.set_unready(
                source,
                on.then(|| format!("{}: {source} unready", self.plan.profile)),
            ),
            Action::Latency(_) | Action::Errors { .. } => match schedule {
                Some(i) => self.active[i].store(on, Ordering::SeqCst),
                None => {
                    let mut admin = lock(&self.admin_faults);
                    if on {
                        admin.insert(kind, action.clone());
                    } else {
                        admin.remove(kind);
                    }
                }
            },
            Action::Leak {
                mib_per_second,
                max_mib,
            } => {
                if on {
                    self.leaker.start(*mib_per_second, *max_mib);
                } else {
                    self.leaker.stop();
                }
            }
            Action::Burn { cores } => {
                if on {
                    self.burner.start(source, *cores);
                } else {
                    self.burner.stop(source);
                }
            }
            Action::Crash { .. } | Action::Hang => {}
        }
    }

    /// Ends the process as `mode` says, after writing why to the termination log.
    fn crash(&self, source: &str, mode: CrashMode, exit_code: u8, what: &str) {
        let reason = format!(
            "{}: {what} after {}",
            self.plan.profile,
            show(self.started.elapsed())
        );
        if let Err(e) = std::fs::write(&self.termination_log, format!("{reason}\n")) {
            tracing::debug!(path = %self.termination_log.display(), error = %e, "termination log not written");
        }
        tracing::error!(source, mode = mode.as_str(), exit_code, reason = %reason, "chaos crash");
        match mode {
            CrashMode::Exit => std::process::exit(i32::from(exit_code)),
            CrashMode::Abort => std::process::abort(),
            CrashMode::Sigkill => faults::kill_self(),
            CrashMode::Oom => faults::exhaust_memory(),
            CrashMode::Hang => self.health.set_hung(),
            CrashMode::Panic => {
                // A panic on a tokio worker would only end that task: the main task panics instead.
                let _ = self.crash_orders.send(CrashOrder { reason });
            }
        }
    }

    /// Applies the active per-request faults to one prediction: waits out injected latency, then
    /// maybe fails it.
    pub async fn before_prediction(&self) -> Result<(), ApiError> {
        let mut actions: Vec<Action> = self
            .plan
            .schedules
            .iter()
            .zip(&self.active)
            .filter(|(_, on)| on.load(Ordering::Relaxed))
            .map(|(s, _)| s.action.clone())
            .collect();
        {
            let admin = lock(&self.admin_faults);
            if !admin.is_empty() {
                actions.extend(admin.values().cloned());
            }
        }
        if actions.is_empty() {
            return Ok(());
        }
        let mut delay = Duration::ZERO;
        let mut failure = None;
        {
            let mut rng = lock(&self.request_rng);
            for action in &actions {
                match action {
                    Action::Latency(latency) => delay += latency.sample(&mut *rng),
                    Action::Errors { rate, statuses }
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
                    .chaos_events
                    .with_label_values(&["errors", "inject"])
                    .inc();
                Err(ApiError::Injected {
                    status,
                    fault: "errors".into(),
                })
            }
            None => Ok(()),
        }
    }

    /// One log line (warn for faults), one metric, one history entry.
    pub fn record(&self, source: &str, fault: &str, action: &str, detail: String) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        if action == "skipped" {
            tracing::info!(source, fault, action, detail = %detail, at_ms, "chaos event");
        } else {
            tracing::warn!(source, fault, action, detail = %detail, at_ms, "chaos event");
        }
        self.metrics
            .chaos_events
            .with_label_values(&[fault, action])
            .inc();
        let mut history = lock(&self.history);
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(PastEvent {
            at_ms,
            source: source.to_string(),
            fault: fault.to_string(),
            action: action.to_string(),
            detail,
        });
    }

    fn set_pending(
        &self,
        index: usize,
        at: Option<Instant>,
        after_ready: Option<Duration>,
        action: &'static str,
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

    fn clear_pending(&self, index: usize) {
        lock(&self.pending).remove(&index);
    }

    /// Everything `GET /chaos` shows.
    pub fn status(&self) -> ChaosStatus {
        let now = Instant::now();
        let mut next: Vec<NextEvent> = lock(&self.pending)
            .iter()
            .map(|(index, p)| {
                let action = &self.plan.schedules[*index].action;
                NextEvent {
                    source: format!("fault[{index}]"),
                    fault: action.kind().to_string(),
                    action: p.action.to_string(),
                    detail: action.describe(),
                    in_ms: p
                        .at
                        .map(|at| at.saturating_duration_since(now).as_millis() as u64),
                    after_ready_ms: p.after_ready.map(|d| d.as_millis() as u64),
                }
            })
            .collect();
        next.sort_by_key(|e| (e.in_ms.is_none(), e.in_ms.or(e.after_ready_ms)));
        ChaosStatus {
            profile: self.plan.profile.clone(),
            description: self.plan.description.clone(),
            seed: self.plan.seed,
            time_scale: self.plan.time_scale,
            phase: self.health.phase().as_str().to_string(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            ready_at_ms: self
                .ready_at
                .get()
                .map(|at| at.duration_since(self.started).as_millis() as u64),
            bind_delay_ms: self.plan.bind_delay.as_millis() as u64,
            load_delay_ms: self.plan.load_delay.as_millis() as u64,
            ignore_sigterm: self.plan.ignore_sigterm,
            past: lock(&self.history).iter().cloned().collect(),
            next,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
