//! `chaos-inference tune`: the probe settings that detect real failures fastest and never kill
//! a healthy pod, for each modelled container, judged by the same simulator as `simulate`.
//!
//! The search is two-staged so that it stays well under two seconds. First every candidate
//! (startup, liveness and readiness probes over periods, timeouts and thresholds, with a
//! startup probe added where loading would otherwise be killed, and liveness switched to its
//! own path or to a TCP connect where the timeline allows) is scored by closed formulas over
//! the application's timelines: worst cases of the kubelet's probe loop, which probes every
//! `periodSeconds` from a phase the manifest does not fix and acts on `failureThreshold`
//! consecutive results (see [`scores`]). Then candidates are run through the simulator in
//! that order, over every scenario and the offered load, until one kills no healthy
//! container; the few that trade one objective for another are checked the same way.

pub mod command;
pub mod edit;
pub mod render;

use std::time::Duration;

use serde::Serialize;

use super::Options;
use super::cluster::Trace;
use super::kubelet::{Ms, ProbeKind, Reason, Seen};
use super::manifest::{Handler, Input, Probe};
use super::timeline::{Check, Routes, Timeline, endpoint_of};
use super::traffic::{Capacity, Steady, kills_per_hour, split_scv};
use crate::chaos::duration::DurationRange;
pub use crate::chaos::endpoints::Endpoint;

/// Periods tried, in seconds (the kubelet's minimum is 1).
const PERIODS: &[u32] = &[1, 2, 3, 5, 10, 15, 20, 30];
/// Timeouts tried besides the one that covers the path's slowest answer.
const TIMEOUTS: &[u32] = &[1, 2, 3, 5, 10, 15, 20, 30];
/// Highest failureThreshold tried for liveness and readiness.
const MAX_THRESHOLD: u32 = 10;
/// A liveness probe never acts on one failure: one lost SYN is retransmitted after the kernel's
/// initial 1 s retransmission timeout (RFC 6298), later than a 1 s probe timeout, so a single
/// dropped packet would restart a healthy pod.
const MIN_LIVENESS_THRESHOLD: u32 = 2;
/// How many false readiness failures a day readiness may act on: an unready blip only moves
/// traffic for a period, so it is allowed far more often than a restart.
const READINESS_FALSE_PER_DAY: f64 = 1.0;
/// At most this many candidates are simulated for the choice (each is every scenario).
const MAX_SIMULATED: usize = 100;
const SECONDS_PER_DAY: f64 = 86_400.0;
/// Drawn scenarios of the first pass over a candidate (the earliest and the latest besides).
const QUICK_SCENARIOS: u64 = 4;
/// The default start allowance ([`Goals::start_allowance`]). This server opens its port 20 to
/// 70 ms after it is executed on an idle machine, yet on the 2-CPU node of this project's e2e,
/// starting ten pods at once, the kubelet's probes were refused after the container had started
/// and a liveness probe acting on 2 failures 1 s apart killed a healthy pod before it was Ready.
pub const DEFAULT_START_ALLOWANCE: Duration = Duration::from_secs(5);

/// What the search optimises, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Worst-case time from a hang or a failing liveness check to the kubelet's kill.
    Detect,
    /// Worst-case time from the application being able to serve to the pod being Ready.
    Ready,
    /// Worst-case time from the application turning unready to the pod leaving the endpoints.
    Shed,
}

impl Objective {
    pub fn as_str(self) -> &'static str {
        match self {
            Objective::Detect => "detect",
            Objective::Ready => "ready",
            Objective::Shed => "shed",
        }
    }
}

/// What `tune` is asked for.
#[derive(Debug, Clone)]
pub struct Goals {
    pub max_false_restarts_per_day: f64,
    /// The objectives in order; the ones not named follow in the default order.
    pub prefer: Vec<Objective>,
    /// The startup budget covers the latest load plus this share of it.
    pub startup_margin: f64,
    /// How much later than its timeline says a container may open its port and load: its
    /// process begins after the kubelet records the container started and, on a node starting
    /// many pods at once, gets little CPU. Whatever acts on failures from the container's start
    /// (a startup probe, a liveness probe no startup probe gates) waits this much longer.
    pub start_allowance: Duration,
}

impl Default for Goals {
    fn default() -> Self {
        Goals {
            max_false_restarts_per_day: 0.01,
            prefer: Vec::new(),
            startup_margin: 0.1,
            start_allowance: DEFAULT_START_ALLOWANCE,
        }
    }
}

impl Goals {
    /// Every objective, the preferred first.
    fn order(&self) -> Vec<Objective> {
        let mut order = self.prefer.clone();
        for o in [Objective::Detect, Objective::Ready, Objective::Shed] {
            if !order.contains(&o) {
                order.push(o);
            }
        }
        order
    }
}

/// The three probes of a container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Setting {
    pub startup: Option<Probe>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
}

impl Setting {
    pub fn get(&self, kind: ProbeKind) -> Option<&Probe> {
        match kind {
            ProbeKind::Startup => self.startup.as_ref(),
            ProbeKind::Liveness => self.liveness.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
        }
    }
}

/// A setting's objectives by the closed formulas, worst case, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    /// `None`: nothing would detect a hang (no liveness probe, or a TCP connect, which a hung
    /// process's listening socket still accepts).
    pub detect_s: Option<f64>,
    /// `None`: the pod is never Ready by a probe (no readiness probe: Ready at once, even
    /// while loading).
    pub ready_s: Option<f64>,
    /// `None`: no readiness probe takes an unready pod out of the endpoints.
    pub shed_s: Option<f64>,
    pub probes_per_minute: f64,
    /// Expected liveness and startup kills of a healthy container a day, from the probe paths'
    /// latency tails.
    pub false_restarts_per_day: f64,
}

impl Scores {
    fn of(&self, objective: Objective) -> f64 {
        let value = match objective {
            Objective::Detect => self.detect_s,
            Objective::Ready => self.ready_s,
            Objective::Shed => self.shed_s,
        };
        value.unwrap_or(f64::INFINITY)
    }
}

/// What the simulator shows for a setting, over every scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Simulated {
    /// Liveness and startup kills of a container that had not hung, failed liveness or been
    /// unable to load (most in one scenario).
    pub false_kills: u64,
    /// The first such kill: which probe, and after how long in its container.
    pub first_false_kill: Option<String>,
    /// From loaded to Ready, first run of each pod.
    pub ready_s: Option<(f64, f64)>,
    /// From a hang or liveness failure to the kill.
    pub detect_s: Option<(f64, f64)>,
    /// From an unready window's start to the pod not Ready.
    pub shed_s: Option<(f64, f64)>,
    /// Restarts in the horizon, fewest and most.
    pub restarts: (u64, u64),
    pub scenarios: usize,
}

/// A setting, scored and (when it was) simulated.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    #[serde(skip)]
    pub setting: Setting,
    pub scores: Scores,
    pub simulated: Option<Simulated>,
}

/// What is known of the application from its timelines over every scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// Latest time it can serve (readiness passes), among the runs that load.
    pub loaded_latest: Option<Duration>,
    /// Some run never loads.
    pub never_loads: bool,
    pub open_latest: Duration,
    /// Liveness passes while it loads, in every run.
    pub live_while_loading: bool,
    /// It hangs or fails liveness in some run: what liveness is for.
    pub fails_liveness: bool,
    /// The shortest unready window after loading, if any.
    pub shortest_unready: Option<Duration>,
    pub http_port: u16,
    pub grpc_port: Option<u16>,
    pub routes: Routes,
}

impl Facts {
    /// Reads the timelines of every run of a container.
    pub fn of(lives: &[&Timeline]) -> Option<Facts> {
        let first = lives.first()?;
        let loaded: Vec<Duration> = lives
            .iter()
            .map(|l| l.loaded)
            .filter(|l| *l != Duration::MAX)
            .collect();
        let shortest_unready = lives
            .iter()
            .flat_map(|l| l.unready.iter().filter(move |u| u.start >= l.loaded))
            .filter_map(|u| u.end.map(|end| end.saturating_sub(u.start)))
            .min();
        Some(Facts {
            loaded_latest: loaded.iter().copied().max(),
            never_loads: loaded.len() < lives.len(),
            open_latest: lives
                .iter()
                .map(|l| l.open)
                .filter(|o| *o != Duration::MAX)
                .max()
                .unwrap_or_default(),
            live_while_loading: lives.iter().all(|l| l.live_while_loading),
            fails_liveness: lives
                .iter()
                .any(|l| l.hang.is_some() || !l.unhealthy.is_empty()),
            shortest_unready,
            http_port: first.http_port,
            grpc_port: first.grpc_port,
            routes: first.routes.clone(),
        })
    }

    /// How long a probe calling `handler` may take to answer, where the timeline says.
    fn latency(&self, handler: &Handler) -> Option<DurationRange> {
        match &self.routes {
            Routes::Declared(routes) => routes.latency_of(&endpoint_of(handler)?),
            Routes::Server { .. } => None,
        }
    }

    /// The check `handler` follows.
    fn check_of(&self, handler: &Handler) -> Option<Check> {
        self.routes.check_of(handler)
    }

    /// A handler that calls an endpoint following `check`, of the same kind as `like` where
    /// the application has one (an HTTP path on its HTTP port, else a gRPC service).
    fn handler_for(&self, check: Check, like: Option<&Handler>) -> Option<Handler> {
        let endpoints = self.routes.endpoints_for(check);
        let as_handler = |e: &Endpoint| match e {
            Endpoint::Path(path) => Some(Handler::Http {
                path: path.clone(),
                port: self.http_port,
            }),
            Endpoint::Grpc(service) => self.grpc_port.map(|port| Handler::Grpc {
                port,
                service: service.clone(),
            }),
            Endpoint::Exec(_) => None,
        };
        let same_kind = |h: &Handler| {
            matches!(
                (h, like),
                (Handler::Http { .. }, Some(Handler::Http { .. }))
                    | (Handler::Grpc { .. }, Some(Handler::Grpc { .. }))
            )
        };
        let all: Vec<Handler> = endpoints.iter().filter_map(as_handler).collect();
        all.iter()
            .find(|h| same_kind(h))
            .or_else(|| all.first())
            .cloned()
    }
}

/// Chance that one probe with this timeout fails on a path answering within `latency`
/// (uniform over its range, as the timeline draws it).
pub fn miss_chance(latency: Option<DurationRange>, timeout_s: u32) -> f64 {
    let Some(range) = latency else { return 0.0 };
    let timeout = Duration::from_secs(u64::from(timeout_s));
    if timeout >= range.high {
        0.0
    } else if timeout < range.low {
        1.0
    } else {
        (range.high - timeout).as_secs_f64() / (range.high - range.low).as_secs_f64()
    }
}

/// Expected runs a day of `threshold` consecutive misses of a probe every `period` seconds.
pub fn false_per_day(miss: f64, period: u32, threshold: u32) -> f64 {
    if miss <= 0.0 {
        return 0.0;
    }
    SECONDS_PER_DAY / f64::from(period) * miss.powi(threshold as i32)
}

/// The smallest `failureThreshold` of a startup probe every `period` seconds (from the
/// container's start, at any phase) that never gives up before `load`: the first probe can
/// come as the container starts, so the last of `threshold` failures comes
/// `(threshold - 1) * period` later and must not be before `load`.
pub fn startup_threshold(load: Duration, initial_delay: u32, period: u32) -> u32 {
    let after_delay = load.as_secs_f64() - f64::from(initial_delay);
    if after_delay <= 0.0 {
        return 1;
    }
    (after_delay / f64::from(period)).ceil() as u32 + 1
}

/// The closed-form worst cases of a setting on an application (see the module's comment):
/// a hang is caught by the `failureThreshold`-th probe that times out after it, the first
/// coming up to a period after it: `failureThreshold * period + timeout`; a loaded app is Ready
/// at the next startup probe and then the next readiness probe (`successThreshold` of them);
/// an unready app leaves the endpoints after `failureThreshold` readiness failures.
pub fn scores(setting: &Setting, facts: &Facts) -> Scores {
    let worst = |p: &Probe| f64::from(p.failure_threshold * p.period + p.timeout);
    let detect_s = setting
        .liveness
        .as_ref()
        .filter(|p| !matches!(p.handler, Handler::Tcp { .. }))
        .map(worst);
    let ready_s = setting.readiness.as_ref().map(|r| {
        let startup = setting
            .startup
            .as_ref()
            .map_or(0.0, |s| f64::from(s.period));
        startup + f64::from(r.period * r.success_threshold)
    });
    let shed_s = setting.readiness.as_ref().map(worst);
    let probes_per_minute = [&setting.liveness, &setting.readiness]
        .into_iter()
        .flatten()
        .map(|p| 60.0 / f64::from(p.period))
        .sum();
    let false_restarts_per_day = setting
        .liveness
        .as_ref()
        .filter(|p| !matches!(p.handler, Handler::Tcp { .. }))
        .map_or(0.0, |p| {
            false_per_day(
                miss_chance(facts.latency(&p.handler), p.timeout),
                p.period,
                p.failure_threshold,
            )
        });
    Scores {
        detect_s,
        ready_s,
        shed_s,
        probes_per_minute,
        false_restarts_per_day,
    }
}

/// The smallest timeout that covers every answer of `handler`, in whole seconds (at least 1).
fn covering_timeout(facts: &Facts, handler: &Handler) -> u32 {
    facts.latency(handler).map_or(1, |l| {
        (l.high.as_secs_f64().ceil() as u32 + u32::from(l.high.subsec_nanos() == 0)).max(1)
    })
}

/// Period and timeout pairs for a probe calling `handler`: timeouts at most the period
/// (the kubelet runs one probe at a time per container and probe), and the covering one.
fn cadences(facts: &Facts, handler: &Handler) -> Vec<(u32, u32)> {
    let cover = covering_timeout(facts, handler);
    let mut out = Vec::new();
    for &period in PERIODS {
        // Longer than the covering one too: a queue under load can hold a probe longer
        // than the path ever takes idle.
        let mut timeouts: Vec<u32> = TIMEOUTS
            .iter()
            .copied()
            .filter(|t| *t <= period && *t != cover)
            .filter(|t| miss_chance(facts.latency(handler), *t) < 1.0)
            .collect();
        if cover <= period {
            timeouts.push(cover);
        }
        timeouts.sort_unstable();
        for t in timeouts {
            out.push((period, t));
        }
    }
    if out.is_empty() {
        // A path slower than the longest period: probe as often as it can answer.
        out.push((cover, cover));
    }
    out
}

fn probe(handler: Handler, period: u32, timeout: u32, failure_threshold: u32) -> Probe {
    Probe {
        handler,
        initial_delay: 0,
        period,
        timeout,
        success_threshold: 1,
        failure_threshold,
    }
}

/// Under `--load`, the steady queue each pod sees at each offered rate with every pod Ready,
/// when probes wait in it: what a liveness timeout must outlast (`simulate`'s
/// `liveness_kills_per_hour`, per day).
struct QueueTail {
    capacity: Capacity,
    steady: Vec<Steady>,
    life: Timeline,
}

impl QueueTail {
    fn of(replicas: u32, options: &Options, life: &Timeline) -> Option<QueueTail> {
        let offered = options.load.as_ref()?;
        let capacity = *life.capacity_at(life.loaded.min(Duration::from_secs(365 * 86_400)))?;
        if !capacity.probes_queued {
            return None;
        }
        let steady = offered
            .rates
            .steps()
            .iter()
            .filter(|s| s.rate > 0.0)
            .filter_map(|s| {
                Steady::of(
                    s.rate / f64::from(replicas.max(1)),
                    &capacity,
                    split_scv(replicas.max(1) as usize),
                )
            })
            .collect();
        Some(QueueTail {
            capacity,
            steady,
            life: life.clone(),
        })
    }

    /// Expected kills a day of `probe` by waits alone, at the worst rate.
    fn per_day(&self, probe: &Probe) -> f64 {
        if matches!(probe.handler, Handler::Tcp { .. }) || !self.life.waits(&probe.handler) {
            return 0.0;
        }
        self.steady
            .iter()
            .map(|s| {
                let p = s.exceeds(f64::from(probe.timeout) - self.capacity.probe_s);
                24.0 * kills_per_hour(p, probe.failure_threshold, f64::from(probe.period))
            })
            .fold(0.0, f64::max)
    }
}

/// Why a candidate family is empty: the constraint no setting meets.
#[derive(Debug, Default)]
struct Unmet(Vec<String>);

/// Liveness candidates: its own path (or the current handler, when that is a liveness check or
/// cannot be modelled), and a TCP connect when nothing in the timeline is for liveness to catch.
fn liveness_candidates(
    current: Option<&Probe>,
    facts: &Facts,
    goals: &Goals,
    gated: bool,
    unmet: &mut Unmet,
) -> Vec<Option<Probe>> {
    let mut handlers: Vec<Handler> = Vec::new();
    let current_handler = current.map(|p| &p.handler);
    match current_handler {
        Some(h @ Handler::Exec { .. }) => handlers.push(h.clone()),
        Some(h) if facts.check_of(h) == Some(Check::Liveness) => handlers.push(h.clone()),
        _ => {}
    }
    if handlers.is_empty()
        && let Some(h) = facts.handler_for(Check::Liveness, current_handler)
    {
        handlers.push(h);
    }
    if !facts.fails_liveness {
        handlers.push(Handler::Tcp {
            port: facts.http_port,
        });
    }
    let mut out = Vec::new();
    for handler in handlers {
        for (period, timeout) in cadences(facts, &handler) {
            let miss = if matches!(handler, Handler::Tcp { .. }) {
                0.0
            } else {
                miss_chance(facts.latency(&handler), timeout)
            };
            let mut threshold = MIN_LIVENESS_THRESHOLD;
            // Ungated, liveness runs from the start: it must also outlast the port opening
            // and, when liveness fails while loading, the load, each up to the start
            // allowance late.
            if !gated {
                let mut wait = facts.open_latest;
                if !facts.live_while_loading {
                    wait = wait.max(facts.loaded_latest.unwrap_or_default());
                }
                threshold =
                    threshold.max(startup_threshold(wait + goals.start_allowance, 0, period));
            }
            while threshold <= MAX_THRESHOLD
                && false_per_day(miss, period, threshold) > goals.max_false_restarts_per_day
            {
                threshold += 1;
            }
            // More patient ones too, for what only the simulator sees (a queue under load).
            let mut thresholds = vec![threshold, threshold + 1, threshold + 2, 5, MAX_THRESHOLD];
            thresholds.retain(|t| *t >= threshold && *t <= MAX_THRESHOLD);
            thresholds.sort_unstable();
            thresholds.dedup();
            for t in thresholds {
                out.push(Some(probe(handler.clone(), period, timeout, t)));
            }
        }
    }
    if out.is_empty() {
        unmet.0.push(format!(
            "no liveness setting keeps false restarts at or below {} a day: the liveness path's answers are too slow to tell from a hang",
            goals.max_false_restarts_per_day
        ));
    }
    out
}

/// Readiness candidates: the readiness path (or the current handler when it follows
/// readiness), fast enough to see the shortest unready window.
fn readiness_candidates(
    current: Option<&Probe>,
    facts: &Facts,
    unmet: &mut Unmet,
) -> Vec<Option<Probe>> {
    let handler = match current.map(|p| &p.handler) {
        Some(h @ Handler::Exec { .. }) => Some(h.clone()),
        Some(h) if facts.check_of(h) == Some(Check::Readiness) => Some(h.clone()),
        other => facts.handler_for(Check::Readiness, other),
    };
    let Some(handler) = handler else {
        // Nothing to call: keep what the manifest has.
        return vec![current.cloned()];
    };
    let mut out = Vec::new();
    for (period, timeout) in cadences(facts, &handler) {
        let miss = miss_chance(facts.latency(&handler), timeout);
        let mut threshold = 1;
        while threshold <= MAX_THRESHOLD
            && false_per_day(miss, period, threshold) > READINESS_FALSE_PER_DAY
        {
            threshold += 1;
        }
        // It must see every unready window: the window holds at least
        // floor(width / period) probes, and `threshold` of them must fail in a row.
        if let Some(width) = facts.shortest_unready {
            let seen = (width.as_secs_f64() / f64::from(period)).floor() as u32;
            if seen < threshold {
                continue;
            }
        }
        if threshold <= MAX_THRESHOLD {
            out.push(Some(probe(handler.clone(), period, timeout, threshold)));
        }
    }
    if out.is_empty() {
        let width = facts.shortest_unready.unwrap_or_default().as_secs_f64();
        unmet.0.push(if width < 1.0 {
            format!(
                "no readiness setting sees the shortest unready window ({width:.1} s): the kubelet probes at most once a second"
            )
        } else {
            format!(
                "no readiness setting sees the shortest unready window ({width:.1} s) without failing on the readiness path's slow answers"
            )
        });
    }
    out
}

/// Startup candidates: one whose budget covers the latest load with the margin, at each
/// period, when liveness would otherwise kill a loading container (or the manifest has one).
fn startup_candidates(current: Option<&Probe>, facts: &Facts, goals: &Goals) -> Vec<Option<Probe>> {
    let Some(load) = facts.loaded_latest else {
        // It never loads: no budget covers that, and the kill is what should happen.
        return vec![current.cloned()];
    };
    // Without one, liveness runs from the start: possible (and Ready sooner) when liveness
    // passes while loading; the liveness candidates then outlast the port opening.
    let mut out = Vec::new();
    if facts.live_while_loading {
        out.push(None);
    }
    if load + goals.start_allowance < Duration::from_secs(1)
        && facts.open_latest + goals.start_allowance < Duration::from_secs(1)
        && current.is_none()
    {
        return vec![None];
    }
    let handler = match current.map(|p| &p.handler) {
        Some(h @ Handler::Exec { .. }) => Some(h.clone()),
        Some(h)
            if matches!(
                facts.check_of(h),
                Some(Check::Startup) | Some(Check::Readiness)
            ) =>
        {
            Some(h.clone())
        }
        other => facts
            .handler_for(Check::Startup, other)
            .or_else(|| facts.handler_for(Check::Readiness, other)),
    };
    let Some(handler) = handler else {
        out.push(current.cloned());
        out.dedup();
        return out;
    };
    let with_margin = load.mul_f64(1.0 + goals.startup_margin) + goals.start_allowance;
    let timeout = covering_timeout(facts, &handler);
    out.extend(
        [1u32, 2, 5, 10]
            .iter()
            .filter(|p| **p >= timeout)
            .map(|&period| {
                Some(probe(
                    handler.clone(),
                    period,
                    timeout,
                    startup_threshold(with_margin, 0, period),
                ))
            }),
    );
    out
}

/// Every candidate setting, scored.
fn candidates(current: &Setting, facts: &Facts, goals: &Goals) -> (Vec<Judged>, Unmet) {
    let mut unmet = Unmet::default();
    let startups = startup_candidates(current.startup.as_ref(), facts, goals);
    let readiness = readiness_candidates(current.readiness.as_ref(), facts, &mut unmet);
    let mut out = Vec::new();
    for startup in &startups {
        let gated = startup.is_some();
        let liveness =
            liveness_candidates(current.liveness.as_ref(), facts, goals, gated, &mut unmet);
        for l in &liveness {
            for r in &readiness {
                let setting = Setting {
                    startup: startup.clone(),
                    liveness: l.clone(),
                    readiness: r.clone(),
                };
                out.push(Judged {
                    scores: scores(&setting, facts),
                    setting,
                    simulated: None,
                });
            }
        }
    }
    unmet.0.dedup();
    (out, unmet)
}

/// Orders by the objectives in the goals' order, then by probes per minute; values within
/// 0.05 s count as equal.
fn compare(a: &Scores, b: &Scores, order: &[Objective]) -> std::cmp::Ordering {
    for o in order {
        let (x, y) = (a.of(*o), b.of(*o));
        if (x - y).abs() > 0.05 || x.is_infinite() != y.is_infinite() {
            return x.total_cmp(&y);
        }
    }
    a.probes_per_minute.total_cmp(&b.probes_per_minute)
}

/// Whether `a` is at least as good as `b` on every objective and strictly better on one.
fn dominates(a: &Scores, b: &Scores) -> bool {
    let all = [Objective::Detect, Objective::Ready, Objective::Shed];
    let le = all.iter().all(|o| a.of(*o) <= b.of(*o) + 1e-9)
        && a.probes_per_minute <= b.probes_per_minute + 1e-9;
    let lt = all.iter().any(|o| a.of(*o) + 1e-9 < b.of(*o))
        || a.probes_per_minute + 1e-9 < b.probes_per_minute;
    le && lt
}

/// Whether liveness probe `a` gives up no later than `b`, which killed a healthy container:
/// the same handler, a timeout no longer and no more time in failures before acting. Such a
/// probe would kill it too (or sooner), so it is not simulated.
fn at_most_as_patient(a: &Option<Probe>, b: &Option<Probe>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.handler == b.handler
                && a.timeout <= b.timeout
                && a.failure_threshold * a.period <= b.failure_threshold * b.period
                && a.failure_threshold <= b.failure_threshold
        }
        (a, b) => a == b,
    }
}

/// One container's tuning.
#[derive(Debug, Clone, Serialize)]
pub struct Tuned {
    pub workload: String,
    pub kind: &'static str,
    pub container: String,
    /// What runs in it: the profile's name, or the timeline file's.
    pub app: String,
    pub current: Judged,
    /// The chosen setting, when one meets every constraint.
    pub chosen: Option<Judged>,
    /// Settings that trade one objective for another, each with what it is best at.
    pub trades: Vec<(String, Judged)>,
    /// Why no setting meets the constraints.
    pub unmet: Vec<String>,
    /// The latest load, the budget that covers it and the margin, when a startup probe is
    /// chosen.
    pub startup_budget: Option<StartupBudget>,
    #[serde(skip)]
    pub index: usize,
}

/// The startup probe's budget against the latest load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StartupBudget {
    pub latest_load_s: f64,
    /// initialDelaySeconds + (failureThreshold - 1) * periodSeconds: the last failure comes no
    /// earlier than this after the container starts.
    pub budget_s: f64,
    /// `budget_s - latest_load_s`: the `--startup-margin` share of the load plus the start
    /// allowance, or more.
    pub margin_s: f64,
    pub start_allowance_s: f64,
}

/// The input with `setting` as the probes of workload `index`'s modelled container (of every
/// revision the input gives: one).
pub fn with_setting(input: &Input, index: usize, setting: &Setting) -> Input {
    let mut input = input.clone();
    let template = &mut input.workloads[index].template;
    if let Some(c) = template.containers.iter_mut().find(|c| c.modelled()) {
        c.startup = setting.startup.clone();
        c.liveness = setting.liveness.clone();
        c.readiness = setting.readiness.clone();
    }
    input
}

/// What [`observe`] follows along one pod's record: the container run it is in and the pod's
/// readiness in it.
#[derive(Default)]
struct Walk {
    /// When the current run started, and how many runs so far.
    run_start: Option<Ms>,
    runs: u32,
    ready: bool,
    ready_since: Option<Ms>,
    /// The first run's first Ready is counted (loaded to Ready).
    first_ready_counted: bool,
    /// Starts of this run's unready windows already counted as shed.
    shed_windows: Vec<Ms>,
}

/// Reads what the simulator shows for workload `index` in `traces`.
pub fn observe(traces: &[Trace], index: usize) -> Simulated {
    let mut out = Simulated {
        scenarios: traces.len(),
        restarts: (u64::MAX, 0),
        ..Simulated::default()
    };
    let mut ready: Vec<f64> = Vec::new();
    let mut detect: Vec<f64> = Vec::new();
    let mut shed: Vec<f64> = Vec::new();
    for trace in traces {
        let mut false_kills = 0u64;
        for pod in trace.pods.iter().filter(|p| p.workload == index) {
            let life = &pod.life;
            let failure = [
                life.hang,
                life.unhealthy.first().map(|u| u.start),
                (life.loaded == Duration::MAX).then_some(Duration::ZERO),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(|d| d.as_millis() as Ms);
            let loaded = (life.loaded != Duration::MAX).then(|| life.loaded.as_millis() as Ms);
            let mut walk = Walk::default();
            for (at, seen) in &pod.pod.record {
                match seen {
                    Seen::Event {
                        reason: Reason::Started,
                        ..
                    } => {
                        walk.run_start = Some(*at);
                        walk.runs += 1;
                        walk.shed_windows.clear();
                    }
                    Seen::Event {
                        reason: Reason::Killing,
                        probe: Some(kind @ (ProbeKind::Liveness | ProbeKind::Startup)),
                        ..
                    } => {
                        let Some(start) = walk.run_start else {
                            continue;
                        };
                        let age = at - start;
                        match failure {
                            Some(f) if age >= f => {
                                if life.loaded != Duration::MAX {
                                    detect.push((age - f) as f64 / 1000.0);
                                }
                            }
                            _ => {
                                false_kills += 1;
                                if out.first_false_kill.is_none() {
                                    out.first_false_kill = Some(format!(
                                        "{} probe after {:.1} s",
                                        kind.as_str().to_lowercase(),
                                        age as f64 / 1000.0
                                    ));
                                }
                            }
                        }
                    }
                    Seen::Row { ready: r, .. } => {
                        if *r && !walk.ready {
                            walk.ready_since = Some(*at);
                            if walk.runs == 1
                                && !walk.first_ready_counted
                                && let (Some(start), Some(l)) = (walk.run_start, loaded)
                            {
                                walk.first_ready_counted = true;
                                ready.push((at.saturating_sub(start + l)) as f64 / 1000.0);
                            }
                        }
                        if !*r && walk.ready {
                            // Which unready window of this run took it out.
                            if let (Some(start), Some(since)) = (walk.run_start, walk.ready_since) {
                                let window = life.unready.iter().find(|u| {
                                    let begin = start + u.start.as_millis() as Ms;
                                    begin >= since && begin <= *at
                                });
                                if let Some(u) = window {
                                    let begin = start + u.start.as_millis() as Ms;
                                    if !walk.shed_windows.contains(&begin) {
                                        walk.shed_windows.push(begin);
                                        shed.push((at - begin) as f64 / 1000.0);
                                    }
                                }
                            }
                        }
                        walk.ready = *r;
                    }
                    _ => {}
                }
            }
            let restarts = u64::from(pod.pod.restarts);
            out.restarts = (out.restarts.0.min(restarts), out.restarts.1.max(restarts));
        }
        out.false_kills = out.false_kills.max(false_kills);
    }
    if out.restarts.0 == u64::MAX {
        out.restarts = (0, 0);
    }
    let window = |v: &[f64]| {
        (!v.is_empty()).then(|| {
            (
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(0.0, f64::max),
            )
        })
    };
    out.ready_s = window(&ready);
    out.detect_s = window(&detect);
    out.shed_s = window(&shed);
    out
}

/// Runs the simulator on the input with `setting`, keeping only the workloads that matter
/// (the tuned one, and those sharing its load).
fn simulate_setting(
    input: &Input,
    index: usize,
    setting: &Setting,
    options: &Options,
) -> Simulated {
    let name = &input.workloads[index].name;
    let mut reduced = with_setting(input, index, setting);
    let keep: Vec<bool> = reduced
        .workloads
        .iter()
        .map(|w| {
            &w.name == name
                || options
                    .load
                    .as_ref()
                    .is_some_and(|o| o.workloads.contains(&w.name))
        })
        .collect();
    let new_index = keep[..index].iter().filter(|k| **k).count();
    let mut i = 0;
    reduced.workloads.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    // The steps that change a workload still in the input (`--step` names the tuned one or
    // one sharing its load).
    let options = Options {
        steps: options
            .steps
            .iter()
            .filter(|s| reduced.workloads.iter().any(|w| w.name == s.workload))
            .cloned()
            .collect(),
        ..options.clone()
    };
    observe(&super::traces(&reduced, &options), new_index)
}

/// Tunes the modelled container of workload `index`. `None` when it has none.
pub fn tune(input: &Input, index: usize, options: &Options, goals: &Goals) -> Option<Tuned> {
    let workload = &input.workloads[index];
    let container = workload.template.modelled()?;
    let current = Setting {
        startup: container.startup.clone(),
        liveness: container.liveness.clone(),
        readiness: container.readiness.clone(),
    };
    let traces = super::traces(input, options);
    let lives: Vec<&Timeline> = traces
        .iter()
        .flat_map(|t| t.pods.iter())
        .filter(|p| p.workload == index && p.revision == 0)
        .map(|p| p.life.as_ref())
        .collect();
    let app = traces
        .iter()
        .flat_map(|t| t.pods.iter())
        .find(|p| p.workload == index)
        .map(|p| p.app.clone())
        .unwrap_or_default();
    let facts = Facts::of(&lives)?;
    let current_judged = Judged {
        scores: scores(&current, &facts),
        simulated: Some(observe(&traces, index)),
        setting: current.clone(),
    };
    let (mut all, Unmet(mut unmet)) = candidates(&current, &facts, goals);
    let mut current_judged = current_judged;
    if let Some(tail) = lives
        .first()
        .and_then(|l| QueueTail::of(workload.replicas, options, l))
    {
        let add = |j: &mut Judged| {
            if let Some(l) = &j.setting.liveness {
                j.scores.false_restarts_per_day += tail.per_day(l);
            }
        };
        add(&mut current_judged);
        all.iter_mut().for_each(add);
        let before = all.len();
        all.retain(|j| j.scores.false_restarts_per_day <= goals.max_false_restarts_per_day);
        if before > 0 && all.is_empty() {
            unmet.push(format!(
                "under this load the probes wait behind predictions: every liveness setting restarts a healthy pod more than {} times a day from the queue's tail",
                goals.max_false_restarts_per_day
            ));
        }
    }
    let order = goals.order();
    all.sort_by(|a, b| compare(&a.scores, &b.scores, &order));
    let mut chosen: Option<Judged> = None;
    let mut refused_liveness: Vec<Option<Probe>> = Vec::new();
    let mut refused_startup: Vec<Option<Probe>> = Vec::new();
    let mut simulated = 0;
    let mut last_kill = None;
    let quick = Options {
        scenarios: options.scenarios.min(QUICK_SCENARIOS),
        ..options.clone()
    };
    for candidate in &all {
        if simulated >= MAX_SIMULATED {
            break;
        }
        if refused_liveness
            .iter()
            .any(|r| at_most_as_patient(&candidate.setting.liveness, r))
            || refused_startup.contains(&candidate.setting.startup)
        {
            continue;
        }
        simulated += 1;
        // A few scenarios weed out; all of them confirm.
        let mut seen = simulate_setting(input, index, &candidate.setting, &quick);
        if seen.false_kills == 0 {
            seen = simulate_setting(input, index, &candidate.setting, options);
        }
        if seen.false_kills == 0 {
            chosen = Some(Judged {
                simulated: Some(seen),
                ..candidate.clone()
            });
            break;
        }
        // A kill by one probe refuses that probe with any other.
        match seen.first_false_kill.as_deref() {
            Some(k) if k.starts_with("startup") => {
                refused_startup.push(candidate.setting.startup.clone())
            }
            _ => refused_liveness.push(candidate.setting.liveness.clone()),
        }
        last_kill = seen.first_false_kill;
    }
    if chosen.is_none() && unmet.is_empty() {
        unmet.push(match last_kill {
            Some(kill) => format!(
                "every setting tried still kills a healthy container in the simulation (e.g. the {kill}){}",
                if options.load.is_some() {
                    ": under this load the liveness probe waits behind predictions longer than any timeout that still tells a hang"
                } else {
                    ""
                }
            ),
            None => "no candidate setting".to_string(),
        });
    }
    let trades = match &chosen {
        Some(c) => trades(&all, c, input, index, options, &refused_liveness),
        None => Vec::new(),
    };
    let startup_budget = chosen
        .as_ref()
        .and_then(|c| c.setting.startup.as_ref())
        .zip(facts.loaded_latest)
        .map(|(s, load)| {
            let budget = f64::from(s.initial_delay + (s.failure_threshold - 1) * s.period);
            StartupBudget {
                latest_load_s: load.as_secs_f64(),
                budget_s: budget,
                margin_s: budget - load.as_secs_f64(),
                start_allowance_s: goals.start_allowance.as_secs_f64(),
            }
        });
    Some(Tuned {
        workload: workload.name.clone(),
        kind: workload.kind.as_str(),
        container: container.name.clone(),
        app,
        current: current_judged,
        chosen,
        trades,
        unmet,
        startup_budget,
        index,
    })
}

/// The settings on the Pareto front that are best at one thing each (fewest probes, fastest
/// detection, Ready soonest, shed soonest), other than the chosen one, each checked by the
/// simulator.
fn trades(
    all: &[Judged],
    chosen: &Judged,
    input: &Input,
    index: usize,
    options: &Options,
    refused: &[Option<Probe>],
) -> Vec<(String, Judged)> {
    let usable: Vec<&Judged> = all
        .iter()
        .filter(|j| {
            !refused
                .iter()
                .any(|r| at_most_as_patient(&j.setting.liveness, r))
        })
        .collect();
    // The front by a sweep: in lexicographic order a dominating setting always comes first,
    // so each is compared with the front so far only (tens of thousands of candidates).
    let mut sorted = usable;
    let key = |s: &Scores| {
        [
            s.of(Objective::Detect),
            s.of(Objective::Ready),
            s.of(Objective::Shed),
            s.probes_per_minute,
        ]
    };
    sorted.sort_by(|a, b| {
        key(&a.scores)
            .iter()
            .zip(key(&b.scores).iter())
            .map(|(x, y)| x.total_cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut front: Vec<&Judged> = Vec::new();
    for j in sorted {
        if !front
            .iter()
            .any(|k| dominates(&k.scores, &j.scores) || key(&k.scores) == key(&j.scores))
        {
            front.push(j);
        }
    }
    let mut out: Vec<(String, Judged)> = Vec::new();
    let picks: [(&str, Vec<Objective>, bool); 5] = [
        ("fewest probes", vec![], true),
        ("<= 12 probes/min", vec![], false),
        ("detect first", vec![Objective::Detect], false),
        ("ready first", vec![Objective::Ready], false),
        ("shed first", vec![Objective::Shed], false),
    ];
    for (label, prefer, fewest) in picks {
        let order = Goals {
            prefer,
            ..Goals::default()
        }
        .order();
        // The kubelet's default cadence: liveness and readiness every 10 s.
        let cap = if label.starts_with("<=") {
            12.0
        } else {
            f64::INFINITY
        };
        let best = front
            .iter()
            .copied()
            .filter(|j| j.setting != chosen.setting && j.scores.probes_per_minute <= cap + 1e-9)
            .filter(|j| !out.iter().any(|(_, k)| k.setting == j.setting))
            .min_by(|a, b| {
                if fewest {
                    a.scores
                        .probes_per_minute
                        .total_cmp(&b.scores.probes_per_minute)
                        .then(compare(&a.scores, &b.scores, &order))
                } else {
                    compare(&a.scores, &b.scores, &order)
                }
            });
        let Some(best) = best else { continue };
        // Only a real trade: better than the chosen on what it is picked for.
        let better = if fewest || cap.is_finite() {
            best.scores.probes_per_minute + 1e-9 < chosen.scores.probes_per_minute
        } else {
            order
                .first()
                .is_some_and(|o| best.scores.of(*o) + 0.05 < chosen.scores.of(*o))
        };
        if !better {
            continue;
        }
        let seen = simulate_setting(input, index, &best.setting, options);
        if seen.false_kills == 0 {
            out.push((
                label.to_string(),
                Judged {
                    simulated: Some(seen),
                    ..best.clone()
                },
            ));
        }
    }
    out
}

/// Tunes every workload's modelled container.
pub fn tune_all(input: &Input, options: &Options, goals: &Goals) -> Vec<Tuned> {
    (0..input.workloads.len())
        .filter_map(|i| tune(input, i, options, goals))
        .collect()
}

#[cfg(test)]
mod tests;
