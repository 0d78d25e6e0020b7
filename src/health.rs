//! Liveness, readiness and startup state, and the lifecycle phase derived from them.
//!
//! Liveness and readiness are separate switches (as in podinfo): a fault can make the process
//! unready while it is still alive, or unhealthy while it still serves predictions. The phase is
//! never stored on its own; it is computed from the switches, so it cannot disagree with them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::metrics::Metrics;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the port is open (a bind delay is running).
    Starting,
    /// Port open, model not loaded yet: startup and readiness fail.
    Loading,
    /// Model loaded, ready, healthy.
    Serving,
    /// A fault made readiness fail.
    Unready,
    /// A fault made liveness fail.
    Unhealthy,
    /// A fault stopped the server from answering at all.
    Hung,
    /// SIGTERM received: readiness fails, in-flight requests finish.
    Draining,
}

impl Phase {
    /// Every phase, for the gauge.
    pub const ALL: [Phase; 7] = [
        Phase::Starting,
        Phase::Loading,
        Phase::Serving,
        Phase::Unready,
        Phase::Unhealthy,
        Phase::Hung,
        Phase::Draining,
    ];

    /// The lowercase name used in logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Loading => "loading",
            Phase::Serving => "serving",
            Phase::Unready => "unready",
            Phase::Unhealthy => "unhealthy",
            Phase::Hung => "hung",
            Phase::Draining => "draining",
        }
    }
}

/// The switches as plain values at one moment: what the probe rules read. The server takes
/// them from [`Health`]; `simulate` from an application's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Switches {
    pub loaded: bool,
    pub live_while_loading: bool,
    pub unhealthy: bool,
    pub unready: bool,
    pub draining: bool,
}

/// What a probe route checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    Liveness,
    Readiness,
    Startup,
}

impl Check {
    /// Whether the check passes: the one rule the probe routes, gRPC health and `simulate`
    /// follow.
    pub fn passes(self, s: &Switches) -> bool {
        match self {
            Check::Liveness => (s.loaded || s.live_while_loading) && !s.unhealthy,
            Check::Readiness => s.loaded && !s.unready && !s.draining,
            Check::Startup => s.loaded,
        }
    }

    /// The HTTP status its route answers: 200, or 503 (500 for liveness failing once the model
    /// has loaded: an unhealthy fault, not a load).
    pub fn status(self, s: &Switches) -> u16 {
        if self.passes(s) {
            200
        } else if self == Check::Liveness && s.loaded {
            500
        } else {
            503
        }
    }
}

/// The switches behind the probe routes.
pub struct Health {
    listening: AtomicBool,
    loaded: AtomicBool,
    draining: AtomicBool,
    hung: AtomicBool,
    live_while_loading: AtomicBool,
    unready: Reasons,
    unhealthy: Reasons,
    phase: Mutex<Phase>,
    metrics: Metrics,
    /// Bumped on every change of any switch, for watchers (gRPC health Watch).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Health {
    /// A process that has not opened its port yet.
    pub fn new(metrics: Metrics) -> Self {
        let health = Health {
            listening: AtomicBool::new(false),
            loaded: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            hung: AtomicBool::new(false),
            live_while_loading: AtomicBool::new(true),
            unready: Reasons::default(),
            unhealthy: Reasons::default(),
            phase: Mutex::new(Phase::Starting),
            metrics,
            changes: tokio::sync::watch::Sender::new(0),
        };
        health.publish(Phase::Starting);
        health
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *lock(&self.phase)
    }

    /// True once the model has loaded (startup probe).
    pub fn started(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// The switches now.
    pub fn switches(&self) -> Switches {
        Switches {
            loaded: self.started(),
            live_while_loading: self.live_while_loading.load(Ordering::SeqCst),
            unhealthy: self.unhealthy.any(),
            unready: self.unready.any(),
            draining: self.draining.load(Ordering::SeqCst),
        }
    }

    /// `Ok` when `check` passes, else why not.
    pub fn check(&self, check: Check) -> Result<(), String> {
        self.check_at(check, &self.switches())
    }

    /// `Ok` when `check` passes with `switches` (taken once by a caller that also needs the
    /// status), else why not.
    pub fn check_at(&self, check: Check, switches: &Switches) -> Result<(), String> {
        if check.passes(switches) {
            return Ok(());
        }
        let reason = match check {
            Check::Readiness if switches.draining => Some("shutting down".to_string()),
            Check::Readiness if switches.loaded => self.unready.first(),
            Check::Liveness if switches.unhealthy => self.unhealthy.first(),
            _ => None,
        };
        Err(reason.unwrap_or_else(|| "model is loading".into()))
    }

    /// `Ok` when ready for traffic, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        self.check(Check::Readiness)
    }

    /// `Ok` when alive, else why not.
    pub fn liveness(&self) -> Result<(), String> {
        self.check(Check::Liveness)
    }

    /// True while a hang fault holds the server.
    pub fn hung(&self) -> bool {
        self.hung.load(Ordering::SeqCst)
    }

    /// Whether liveness passes before the model has loaded (a profile may say no).
    pub fn set_live_while_loading(&self, live: bool) {
        self.live_while_loading.store(live, Ordering::SeqCst);
    }

    /// The port is open.
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::SeqCst);
        self.update();
    }

    /// The model is loaded and warmed up.
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::SeqCst);
        self.update();
    }

    /// SIGTERM: readiness fails from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.update();
    }

    /// Every route stops answering.
    pub fn set_hung(&self) {
        self.hung.store(true, Ordering::SeqCst);
        self.update();
    }

    /// Readiness fails for `source` with `reason`, or no longer fails for it with `None`.
    pub fn set_unready(&self, source: &str, reason: Option<String>) {
        self.unready.set(source, reason);
        self.update();
    }

    /// Liveness fails for `source` with `reason`, or no longer fails for it with `None`.
    pub fn set_unhealthy(&self, source: &str, reason: Option<String>) {
        self.unhealthy.set(source, reason);
        self.update();
    }

    fn derive(&self) -> Phase {
        if self.hung.load(Ordering::SeqCst) {
            Phase::Hung
        } else if self.draining.load(Ordering::SeqCst) {
            Phase::Draining
        } else if !self.listening.load(Ordering::SeqCst) {
            Phase::Starting
        } else if !self.started() {
            Phase::Loading
        } else if self.unhealthy.any() {
            Phase::Unhealthy
        } else if self.unready.any() {
            Phase::Unready
        } else {
            Phase::Serving
        }
    }

    /// A receiver that sees a new value whenever liveness, readiness or the phase may have
    /// changed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Recomputes the phase; a change is one log line and one metric update. Watchers hear of
    /// every switch.
    ///
    /// The phase is stored before watchers are told, so a watcher woken by a change reads the
    /// phase that change made (the status page's event stream relies on it).
    fn update(&self) {
        let next = self.derive();
        let mut current = lock(&self.phase);
        if *current != next {
            tracing::info!(from = current.as_str(), to = next.as_str(), "phase changed");
            *current = next;
            drop(current);
            self.publish(next);
        } else {
            drop(current);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    fn publish(&self, phase: Phase) {
        for p in Phase::ALL {
            self.metrics
                .phase
                .with_label_values(&[p.as_str()])
                .set(i64::from(p == phase));
        }
        self.metrics
            .phase_changes
            .with_label_values(&[phase.as_str()])
            .inc();
    }
}

/// Why a check fails, by source (`fault[2]`, `admin`), so overlapping faults do not cancel
/// each other; `any` answers every probe without the lock.
#[derive(Default)]
struct Reasons {
    any: AtomicBool,
    by_source: Mutex<BTreeMap<String, String>>,
}

impl Reasons {
    /// `source` fails the check with `reason`, or no longer fails it with `None`.
    fn set(&self, source: &str, reason: Option<String>) {
        let mut reasons = lock(&self.by_source);
        match reason {
            Some(reason) => reasons.insert(source.to_string(), reason),
            None => reasons.remove(source),
        };
        // Stored under the lock, so the flag and the map never disagree for long.
        self.any.store(!reasons.is_empty(), Ordering::SeqCst);
    }

    /// Whether any source fails the check.
    fn any(&self) -> bool {
        self.any.load(Ordering::SeqCst)
    }

    /// The reason of the first source that fails it.
    fn first(&self) -> Option<String> {
        lock(&self.by_source).values().next().cloned()
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked (plain values, no invariants).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watcher woken by a switch reads the phase that switch made, never the one before.
    #[test]
    fn watchers_read_the_new_phase() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        for _ in 0..200 {
            let h = std::sync::Arc::new(Health::new(Metrics::new()));
            h.set_listening();
            let mut changes = h.subscribe();
            changes.mark_unchanged();
            let watcher = {
                let h = std::sync::Arc::clone(&h);
                runtime.spawn(async move {
                    changes.changed().await.unwrap();
                    h.phase()
                })
            };
            h.set_loaded();
            assert_eq!(runtime.block_on(watcher).unwrap(), Phase::Serving);
        }
    }

    #[test]
    fn phases_follow_the_switches() {
        let h = Health::new(Metrics::new());
        assert_eq!(h.phase(), Phase::Starting);
        h.set_listening();
        assert_eq!(h.phase(), Phase::Loading);
        assert!(h.readiness().is_err());
        h.set_loaded();
        assert_eq!(h.phase(), Phase::Serving);
        assert!(h.readiness().is_ok());
        h.set_unready("fault[0]", Some("chaos".into()));
        h.set_unready("admin", Some("admin".into()));
        assert_eq!(h.phase(), Phase::Unready);
        h.set_unready("admin", None);
        assert_eq!(
            h.readiness().unwrap_err(),
            "chaos",
            "one source ending keeps the other"
        );
        h.set_unhealthy("fault[1]", Some("sick".into()));
        assert_eq!(h.phase(), Phase::Unhealthy);
        assert!(h.liveness().is_err());
        h.set_unhealthy("fault[1]", None);
        h.set_unready("fault[0]", None);
        assert_eq!(h.phase(), Phase::Serving);
        h.set_draining();
        assert_eq!(h.phase(), Phase::Draining);
        assert!(h.readiness().is_err());
        assert!(h.liveness().is_ok(), "draining is not dead");
    }
}
