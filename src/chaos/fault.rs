//! A fault: when it happens ([`Timing`]) and what it does ([`Effect`]), the one list of fault
//! names ([`FaultKind`]) and the one check every fault passes, whichever way it arrives (profile
//! file, `CHAOS_*` variable, admin route).
//!
//! Adding a fault type is an edit of this file and its tests, plus what the simulator's
//! application model makes of it (`simulate/timeline.rs`): a variant in [`FaultKind`] (name, summary,
//! keys) and in [`Effect`] (built from its keys in [`Effect::from_keys`], limits in
//! [`Effect::check`], text in [`Effect::describe`]), and what it switches while it holds in
//! [`Effect::start`] and [`FaultKind::stop`], through the [`Switches`] the engine provides (a new
//! kind of switch, as the overload queue was, adds a method there). The profile parser, the
//! admin route, the OpenAPI document and `chaos-inference profiles` read everything else from
//! here.

use std::fmt;
use std::time::Duration;

use rand::Rng;

use super::duration::{DurationRange, scale, show};

/// Most cores a burn fault may ask for.
const MAX_BURN_CORES: f64 = 256.0;
/// Fastest leak, in MiB per second.
const MAX_LEAK_MIB_PER_SECOND: f64 = 4096.0;
/// Largest cap of a leak, in MiB (1 TiB): beyond any container worth testing.
const MAX_LEAK_MIB: f64 = 1024.0 * 1024.0;
/// The statuses an `errors` fault answers with when none are given.
pub const DEFAULT_ERROR_STATUSES: [u16; 2] = [500, 503];

/// Most workers an overload fault may have.
const MAX_OVERLOAD_WORKERS: f64 = 4096.0;
/// Largest queue limit of an overload fault.
const MAX_QUEUE_LIMIT: f64 = 1_000_000.0;

/// z-score of the 99th percentile of a standard normal distribution.
const Z99: f64 = 2.326_347_874_040_841;

/// Every fault type, by the name profiles, variables, logs, metrics and the admin routes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// The process ends (or hangs) once.
    Crash,
    /// Every route stops answering; the process stays up.
    Hang,
    /// Liveness fails while predictions still work.
    Unhealthy,
    /// Readiness fails.
    Unready,
    /// Predictions are slowed down.
    Latency,
    /// A fraction of predictions fail.
    Errors,
    /// Resident memory grows steadily.
    Leak,
    /// Busy threads burn CPU.
    Burn,
    /// Requests wait for a few workers, probes too unless told otherwise.
    Overload,
}

impl FaultKind {
    /// Every fault type, in the order the docs list them.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Crash,
        FaultKind::Hang,
        FaultKind::Unhealthy,
        FaultKind::Unready,
        FaultKind::Latency,
        FaultKind::Errors,
        FaultKind::Leak,
        FaultKind::Burn,
        FaultKind::Overload,
    ];

    /// The fault's name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Hang => "hang",
            FaultKind::Unhealthy => "unhealthy",
            FaultKind::Unready => "unready",
            FaultKind::Latency => "latency",
            FaultKind::Errors => "errors",
            FaultKind::Leak => "leak",
            FaultKind::Burn => "burn",
            FaultKind::Overload => "overload",
        }
    }

    /// The fault type of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every name, comma-separated, for messages and docs.
    pub fn names() -> String {
        FaultKind::ALL.map(FaultKind::name).join(", ")
    }

    /// What the fault does, in one line (docs, `profiles`, the OpenAPI document).
    pub fn summary(self) -> &'static str {
        match self {
            FaultKind::Crash => "the process ends once (exit, panic, abort, sigkill, oom) or hangs",
            FaultKind::Hang => "every route stops answering; the process stays up",
            FaultKind::Unhealthy => "/livez answers 500 while predictions still work",
            FaultKind::Unready => "/readyz answers 503",
            FaultKind::Latency => "predictions are delayed",
            FaultKind::Errors => "a fraction of predictions answer 5xx",
            FaultKind::Leak => "resident memory grows at a steady rate",
            FaultKind::Burn => "busy threads burn CPU",
            FaultKind::Overload => {
                "requests wait in one queue for a few workers; probes wait behind predictions unless `probes = \"separate\"`"
            }
        }
    }

    /// The keys of what this type does, as a profile's `[[fault]]` table spells them; the admin
    /// route takes the same in snake case. Timing keys (`from`, `after`, `for`, `every`,
    /// `probability`) come on top in a profile.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            FaultKind::Crash => &["mode", "exit-code"],
            FaultKind::Hang | FaultKind::Unhealthy | FaultKind::Unready => &[],
            FaultKind::Latency => &["distribution", "delay", "median", "p99"],
            FaultKind::Errors => &["rate", "statuses"],
            FaultKind::Leak => &["mib-per-second", "max-mib"],
            FaultKind::Burn => &["cores"],
            FaultKind::Overload => &[
                "workers",
                "service-time",
                "distribution",
                "median",
                "p99",
                "probes",
                "probe-time",
                "queue-limit",
                "shed-status",
                "shed-probes",
            ],
        }
    }

    /// The value a key takes when an admin action leaves it out (a profile must give it).
    fn admin_default(self, key: &str) -> Option<Value> {
        Some(match (self, key) {
            (FaultKind::Latency, "delay") => {
                Value::Duration(DurationRange::fixed(Duration::from_millis(100)))
            }
            (FaultKind::Errors, "rate") => Value::Number(0.5),
            (FaultKind::Leak, "mib-per-second") => Value::Number(10.0),
            (FaultKind::Burn, "cores") => Value::Number(1.0),
            (FaultKind::Overload, "workers") => Value::Number(1.0),
            (FaultKind::Overload, "service-time") => {
                Value::Duration(DurationRange::fixed(Duration::from_millis(25)))
            }
            _ => return None,
        })
    }

    /// Whether a running fault of this type can be switched off again, and so lasts a window
    /// (`for`) and repeats (`every`). A crash or a hang is for good.
    pub fn can_stop(self) -> bool {
        !matches!(self, FaultKind::Crash | FaultKind::Hang)
    }

    /// Switches off what [`Effect::start`] switched on for `source`.
    pub fn stop(self, source: Source, switches: &dyn Switches) {
        match self {
            FaultKind::Unhealthy => switches.liveness(source, None),
            FaultKind::Unready => switches.readiness(source, None),
            FaultKind::Latency | FaultKind::Errors => switches.per_request(source, self, None),
            FaultKind::Leak => switches.leak(None),
            FaultKind::Burn => switches.burn(source, None),
            FaultKind::Overload => switches.overload(source, None),
            FaultKind::Crash | FaultKind::Hang => {}
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value out of its domain: the key, as a profile spells it, and what is expected. Each
/// source (profile, variable, admin route) names the key its own way around the same message.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub key: &'static str,
    pub message: String,
}

impl Invalid {
    /// `key` breaks the rule `message` states.
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            key,
            message: message.into(),
        }
    }
}

/// Who switched a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The profile's fault at this index (`fault[i]`).
    Schedule(usize),
    /// The admin routes.
    Admin,
    /// The SIGTERM handling of the lifecycle.
    Shutdown,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Schedule(i) => write!(f, "fault[{i}]"),
            Source::Admin => f.write_str("admin"),
            Source::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// What a fault can switch while it holds; the engine provides them. A fault type made of these
/// needs no change anywhere else.
pub trait Switches {
    /// Readiness fails for `source` with this reason, or no longer fails for it.
    fn readiness(&self, source: Source, failing: Option<String>);
    /// Liveness fails for `source` with this reason, or no longer fails for it.
    fn liveness(&self, source: Source, failing: Option<String>);
    /// Every route stops answering, for good.
    fn hang(&self);
    /// The process ends as `mode` says; `what` goes into the termination message.
    fn crash(&self, mode: CrashMode, exit_code: u8, what: &str);
    /// Each prediction passes through `effect` ([`Effect::Latency`], [`Effect::Errors`]) until
    /// switched off with `None`.
    fn per_request(&self, source: Source, kind: FaultKind, effect: Option<Effect>);
    /// Memory grows at this rate up to this cap, or stops growing.
    fn leak(&self, rate: Option<(f64, Option<f64>)>);
    /// Busy threads keep this many cores busy for `source`, or stop.
    fn burn(&self, source: Source, cores: Option<f64>);
    /// Requests queue for this overload's workers (the latest started holds), or no longer for
    /// that of `source`.
    fn overload(&self, source: Source, overload: Option<Overload>);
}

/// A key's value, from any source.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Duration(DurationRange),
    Word(String),
    Statuses(Vec<u16>),
    Flag(bool),
}

impl Value {
    /// A value written as text (a query parameter, an environment variable): `like` says how
    /// to read it, and an error says what was expected.
    pub fn from_text(key: &'static str, like: Like, text: &str) -> Result<Value, Invalid> {
        let expected = |what: &str| Invalid::new(key, format!("expected {what}, got `{text}`"));
        Ok(match like {
            Like::Number => Value::Number(text.trim().parse().map_err(|_| expected("a number"))?),
            Like::Duration => Value::Duration(
                text.parse()
                    .map_err(|_| expected("a duration or range such as 50ms..200ms"))?,
            ),
            Like::Word => Value::Word(text.to_string()),
            Like::Statuses => Value::Statuses(
                text.split(',')
                    .map(|s| s.trim().parse::<u16>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| expected("status codes such as 500,503"))?,
            ),
            Like::Flag => Value::Flag(match text.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(expected("true or false")),
            }),
        })
    }
}

/// Where a fault's keys come from: a profile's `[[fault]]` table or an admin route's query.
/// Keys are named as profiles spell them (`mib-per-second`); each source reads a value as its
/// own syntax writes it and says `expected ...` when it cannot.
pub trait Keys {
    /// The value of `key` read as `like` says (a number, a duration, a word, a list of
    /// statuses), `None` when absent.
    fn get(&self, key: &'static str, like: Like) -> Result<Option<Value>, Invalid>;
}

/// Which kind of value a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Like {
    Number,
    Duration,
    Word,
    Statuses,
    /// `true` or `false`.
    Flag,
}

/// What to do about a key that is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Refuse it (profiles say everything).
    Required,
    /// Use the admin route's default.
    AdminDefault,
}

/// From when a fault's `after` counts.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Anchor {
    /// Process start.
    Start,
    /// The moment the model is loaded and the process first becomes ready.
    #[default]
    Ready,
}

/// When a fault happens: once at `after`, for `for` (or for ever), repeating every `every`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timing {
    pub from: Anchor,
    pub after: Option<DurationRange>,
    pub duration: Option<DurationRange>,
    pub every: Option<DurationRange>,
    /// Chance that each occurrence happens at all (drawn from the seed).
    pub probability: Option<f64>,
}

impl Timing {
    /// Once, this long after ready.
    pub fn after_ready(after: DurationRange) -> Self {
        Timing {
            after: Some(after),
            ..Timing::default()
        }
    }

    /// Checks probability and windows.
    pub fn check(&self) -> Result<(), Invalid> {
        if let Some(p) = self.probability {
            check_fraction("probability", p)?;
        }
        if let Some(every) = self.every {
            if every.low.is_zero() {
                return Err(Invalid::new("every", "must be longer than 0s"));
            }
            if let Some(d) = self.duration
                && d.high > every.low
            {
                return Err(Invalid::new(
                    "for",
                    format!("a window ({d}) must fit in its period ({every})"),
                ));
            }
        }
        Ok(())
    }
}

/// How a crash ends the process.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CrashMode {
    /// `exit(code)`.
    #[default]
    Exit,
    /// A Rust panic (exit code 101).
    Panic,
    /// `abort()`: SIGABRT, exit code 134 in a shell or container.
    Abort,
    /// SIGKILL to itself: exit code 137, as after an OOM kill or a liveness kill.
    Sigkill,
    /// Allocate and touch memory until the kernel or the container limit kills the process.
    Oom,
    /// Stop answering every route while the process stays up.
    Hang,
}

impl CrashMode {
    /// Every mode.
    pub const ALL: [CrashMode; 6] = [
        CrashMode::Exit,
        CrashMode::Panic,
        CrashMode::Abort,
        CrashMode::Sigkill,
        CrashMode::Oom,
        CrashMode::Hang,
    ];

    /// The name used in profiles, variables and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashMode::Exit => "exit",
            CrashMode::Panic => "panic",
            CrashMode::Abort => "abort",
            CrashMode::Sigkill => "sigkill",
            CrashMode::Oom => "oom",
            CrashMode::Hang => "hang",
        }
    }
}

impl std::str::FromStr for CrashMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CrashMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "expected one of {}, got `{s}`",
                    CrashMode::ALL.map(CrashMode::as_str).join(", ")
                )
            })
    }
}

/// How injected latency is distributed.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencyDistribution {
    /// Uniform over `delay` (a duration or an `a..b` range), drawn per request.
    Uniform { delay: DurationRange },
    /// Log-normal with the given median and 99th percentile: most requests a little slow, a
    /// few very slow, as real tail latency looks. A range for either is drawn once per plan.
    Lognormal {
        median: DurationRange,
        p99: DurationRange,
    },
}

impl LatencyDistribution {
    /// The mean, in seconds (a log-normal's from the low ends of `median` and `p99`, which a
    /// plan has fixed).
    pub fn mean_seconds(&self) -> f64 {
        match self {
            LatencyDistribution::Uniform { delay } => {
                (delay.low.as_secs_f64() + delay.high.as_secs_f64()) / 2.0
            }
            LatencyDistribution::Lognormal { median, p99 } => {
                let (mu, sigma) = lognormal_parameters(median, p99);
                (mu + sigma * sigma / 2.0).exp()
            }
        }
    }

    /// The squared coefficient of variation (variance over the mean squared): 0 for a fixed
    /// delay, what queueing formulas call the service time's variability.
    pub fn scv(&self) -> f64 {
        match self {
            LatencyDistribution::Uniform { delay } => {
                let mean = self.mean_seconds();
                if mean <= 0.0 {
                    return 0.0;
                }
                let width = delay.high.as_secs_f64() - delay.low.as_secs_f64();
                width * width / 12.0 / (mean * mean)
            }
            LatencyDistribution::Lognormal { median, p99 } => {
                let (_, sigma) = lognormal_parameters(median, p99);
                (sigma * sigma).exp() - 1.0
            }
        }
    }

    /// One delay. Uniform draws are exact to the microsecond; log-normal ones use the low end
    /// of `median` and `p99`, which the plan has fixed.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match self {
            LatencyDistribution::Uniform { delay } if delay.is_fixed() => delay.low,
            LatencyDistribution::Uniform { delay } => Duration::from_micros(
                rng.random_range(delay.low.as_micros() as u64..=delay.high.as_micros() as u64),
            ),
            LatencyDistribution::Lognormal { median, p99 } => {
                let (mu, sigma) = lognormal_parameters(median, p99);
                // Box-Muller: two uniforms give one standard normal draw.
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                // Cap at one hour so a freak draw cannot overflow.
                Duration::from_secs_f64((mu + sigma * z).exp().min(3600.0))
            }
        }
    }
}

/// `mu` and `sigma` of the log-normal with this median and 99th percentile (their low ends).
fn lognormal_parameters(median: &DurationRange, p99: &DurationRange) -> (f64, f64) {
    let mu = median.low.as_secs_f64().max(1e-9).ln();
    let sigma = (p99.low.as_secs_f64().max(1e-9).ln() - mu) / Z99;
    (mu, sigma)
}

/// Reads a delay distribution from its keys: `delay_key` alone (uniform) or `median` and
/// `p99` (log-normal), `distribution` naming one when given; `default` when none is given.
fn distribution_from(
    delay_key: &'static str,
    distribution: Option<String>,
    delay: Option<DurationRange>,
    median: Option<DurationRange>,
    p99: Option<DurationRange>,
    default: Option<Value>,
) -> Result<LatencyDistribution, Invalid> {
    match (distribution.as_deref(), delay, median, p99) {
        (None | Some("uniform"), Some(delay), None, None) => {
            Ok(LatencyDistribution::Uniform { delay })
        }
        (None | Some("lognormal"), None, Some(median), Some(p99)) => {
            Ok(LatencyDistribution::Lognormal { median, p99 })
        }
        (None, None, None, None) if default.is_some() => {
            let Some(Value::Duration(delay)) = default else {
                unreachable!("a delay's default is a duration")
            };
            Ok(LatencyDistribution::Uniform { delay })
        }
        (Some(other), ..) if other != "uniform" && other != "lognormal" => Err(Invalid::new(
            "distribution",
            format!("expected uniform or lognormal, got `{other}`"),
        )),
        (Some("lognormal"), ..) => Err(Invalid::new(
            "p99",
            "a log-normal distribution takes `median` and `p99` only",
        )),
        _ => Err(Invalid::new(
            delay_key,
            format!("give `{delay_key}` (uniform) or `median` and `p99` (lognormal)"),
        )),
    }
}

/// A whole number from `min` to `max`.
fn whole(key: &'static str, x: f64, min: f64, max: f64) -> Result<u32, Invalid> {
    if x.fract() == 0.0 && (min..=max).contains(&x) {
        Ok(x as u32)
    } else {
        Err(Invalid::new(
            key,
            format!("expected a whole number from {min} to {max}, got {x}"),
        ))
    }
}

/// How long a queued probe holds a worker when a profile does not say.
pub const DEFAULT_PROBE_TIME: Duration = Duration::from_millis(1);
/// What a shed request answers when a profile does not say.
pub const DEFAULT_SHED_STATUS: u16 = 503;

/// Whether probes wait in an overload's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProbeQueue {
    /// In the same FIFO as predictions, as in a one-worker Python server.
    #[default]
    Queued,
    /// Answered at once, as by a server with its own probe thread.
    Separate,
}

impl ProbeQueue {
    /// The name profiles, variables and the admin route use.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeQueue::Queued => "queued",
            ProbeQueue::Separate => "separate",
        }
    }
}

impl std::str::FromStr for ProbeQueue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "queued" => Ok(ProbeQueue::Queued),
            "separate" => Ok(ProbeQueue::Separate),
            _ => Err(format!("expected queued or separate, got `{s}`")),
        }
    }
}

/// A capacity-limited app: `workers` requests are served at once and the rest wait in one
/// FIFO; a prediction holds its worker for the service time, a queued probe for `probe_time`.
/// The holding sleeps, so the fault costs no CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Overload {
    pub workers: u32,
    pub service_time: LatencyDistribution,
    pub probes: ProbeQueue,
    pub probe_time: DurationRange,
    /// Requests waiting beyond this many are refused at once; unset waits without bound.
    pub queue_limit: Option<u32>,
    /// The status of a refused request (gRPC answers `UNAVAILABLE`).
    pub shed_status: u16,
    /// Whether probes can be refused too.
    pub shed_probes: bool,
}

impl Overload {
    /// Predictions per second it serves at most: workers over the mean service time.
    pub fn capacity_per_second(&self) -> f64 {
        f64::from(self.workers) / self.service_time.mean_seconds().max(1e-9)
    }

    /// The keys and values that make this overload again, as a profile spells them: what a
    /// `CHAOS_OVERLOAD_*` variable falls back to for the keys it leaves alone.
    pub fn keys(&self) -> Vec<(&'static str, Value)> {
        let mut keys = vec![("workers", Value::Number(f64::from(self.workers)))];
        match &self.service_time {
            LatencyDistribution::Uniform { delay } => {
                keys.push(("service-time", Value::Duration(*delay)))
            }
            LatencyDistribution::Lognormal { median, p99 } => {
                keys.push(("distribution", Value::Word("lognormal".into())));
                keys.push(("median", Value::Duration(*median)));
                keys.push(("p99", Value::Duration(*p99)));
            }
        }
        keys.push(("probes", Value::Word(self.probes.as_str().into())));
        keys.push(("probe-time", Value::Duration(self.probe_time)));
        if let Some(limit) = self.queue_limit {
            keys.push(("queue-limit", Value::Number(f64::from(limit))));
        }
        keys.push(("shed-status", Value::Number(f64::from(self.shed_status))));
        keys.push(("shed-probes", Value::Flag(self.shed_probes)));
        keys
    }
}

/// What a fault does while it is active.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Crash {
        mode: CrashMode,
        exit_code: u8,
    },
    Hang,
    Unhealthy,
    Unready,
    Latency(LatencyDistribution),
    Errors {
        /// Fraction of predictions that fail, 0 to 1.
        rate: f64,
        /// The 5xx statuses to answer with, drawn uniformly.
        statuses: Vec<u16>,
    },
    Leak {
        mib_per_second: f64,
        /// Stop growing at this size; unset grows until killed.
        max_mib: Option<f64>,
    },
    Burn {
        cores: f64,
    },
    Overload(Overload),
}

impl Effect {
    /// Builds the effect of a `kind` fault from its keys, then checks it: the one constructor
    /// for profiles and admin actions alike.
    pub fn from_keys(
        kind: FaultKind,
        keys: &dyn Keys,
        missing: Missing,
    ) -> Result<Effect, Invalid> {
        let get = |key: &'static str, like: Like| -> Result<Option<Value>, Invalid> {
            match keys.get(key, like)? {
                Some(value) => Ok(Some(value)),
                None if missing == Missing::AdminDefault => Ok(kind.admin_default(key)),
                None => Ok(None),
            }
        };
        let number = |key: &'static str| -> Result<Option<f64>, Invalid> {
            Ok(match get(key, Like::Number)? {
                Some(Value::Number(x)) => Some(x),
                _ => None,
            })
        };
        let required = |key: &'static str| {
            number(key)?.ok_or_else(|| Invalid::new(key, format!("required for type {kind}")))
        };
        let duration = |key: &'static str| -> Result<Option<DurationRange>, Invalid> {
            Ok(match keys.get(key, Like::Duration)? {
                Some(Value::Duration(d)) => Some(d),
                _ => None,
            })
        };
        let word = |key: &'static str| -> Result<Option<String>, Invalid> {
            Ok(match keys.get(key, Like::Word)? {
                Some(Value::Word(w)) => Some(w),
                _ => None,
            })
        };
        let effect = match kind {
            FaultKind::Crash => Effect::Crash {
                mode: match word("mode")? {
                    Some(mode) => mode.parse().map_err(|e| Invalid::new("mode", e))?,
                    None => CrashMode::default(),
                },
                exit_code: match number("exit-code")? {
                    None => 1,
                    Some(x) if x.fract() == 0.0 && (0.0..=255.0).contains(&x) => x as u8,
                    Some(x) => {
                        return Err(Invalid::new(
                            "exit-code",
                            format!("expected a whole number from 0 to 255, got {x}"),
                        ));
                    }
                },
            },
            FaultKind::Hang => Effect::Hang,
            FaultKind::Unhealthy => Effect::Unhealthy,
            FaultKind::Unready => Effect::Unready,
            FaultKind::Latency => Effect::Latency(distribution_from(
                "delay",
                word("distribution")?,
                duration("delay")?,
                duration("median")?,
                duration("p99")?,
                kind.admin_default("delay")
                    .filter(|_| missing == Missing::AdminDefault),
            )?),
            FaultKind::Errors => Effect::Errors {
                rate: required("rate")?,
                statuses: match keys.get("statuses", Like::Statuses)? {
                    Some(Value::Statuses(list)) => list,
                    _ => DEFAULT_ERROR_STATUSES.to_vec(),
                },
            },
            FaultKind::Leak => Effect::Leak {
                mib_per_second: required("mib-per-second")?,
                max_mib: number("max-mib")?,
            },
            FaultKind::Burn => Effect::Burn {
                cores: required("cores")?,
            },
            FaultKind::Overload => Effect::Overload(Overload {
                workers: whole("workers", required("workers")?, 1.0, MAX_OVERLOAD_WORKERS)?,
                service_time: distribution_from(
                    "service-time",
                    word("distribution")?,
                    duration("service-time")?,
                    duration("median")?,
                    duration("p99")?,
                    kind.admin_default("service-time")
                        .filter(|_| missing == Missing::AdminDefault),
                )?,
                probes: match word("probes")? {
                    None => ProbeQueue::default(),
                    Some(w) => w.parse().map_err(|e| Invalid::new("probes", e))?,
                },
                probe_time: duration("probe-time")?
                    .unwrap_or(DurationRange::fixed(DEFAULT_PROBE_TIME)),
                queue_limit: match number("queue-limit")? {
                    None => None,
                    Some(x) => Some(whole("queue-limit", x, 0.0, MAX_QUEUE_LIMIT)?),
                },
                shed_status: match number("shed-status")? {
                    None => DEFAULT_SHED_STATUS,
                    Some(x) if x.fract() == 0.0 && (400.0..=599.0).contains(&x) => x as u16,
                    Some(x) => {
                        return Err(Invalid::new(
                            "shed-status",
                            format!("expected a 4xx or 5xx status code, got {x}"),
                        ));
                    }
                },
                shed_probes: match keys.get("shed-probes", Like::Flag)? {
                    Some(Value::Flag(b)) => b,
                    _ => false,
                },
            }),
        };
        effect.check()?;
        Ok(effect)
    }

    /// Switches on what this effect does, for `source`.
    pub fn start(&self, source: Source, profile: &str, switches: &dyn Switches) {
        match self {
            Effect::Crash { mode, exit_code } => {
                switches.crash(*mode, *exit_code, &self.describe())
            }
            Effect::Hang => switches.hang(),
            Effect::Unhealthy => {
                switches.liveness(source, Some(format!("{profile}: {source} unhealthy")))
            }
            Effect::Unready => {
                switches.readiness(source, Some(format!("{profile}: {source} unready")))
            }
            Effect::Latency(_) | Effect::Errors { .. } => {
                switches.per_request(source, self.kind(), Some(self.clone()))
            }
            Effect::Leak {
                mib_per_second,
                max_mib,
            } => switches.leak(Some((*mib_per_second, *max_mib))),
            Effect::Burn { cores } => switches.burn(source, Some(*cores)),
            Effect::Overload(overload) => switches.overload(source, Some(overload.clone())),
        }
    }

    /// The fault type.
    pub fn kind(&self) -> FaultKind {
        match self {
            Effect::Crash { .. } => FaultKind::Crash,
            Effect::Hang => FaultKind::Hang,
            Effect::Unhealthy => FaultKind::Unhealthy,
            Effect::Unready => FaultKind::Unready,
            Effect::Latency(_) => FaultKind::Latency,
            Effect::Errors { .. } => FaultKind::Errors,
            Effect::Leak { .. } => FaultKind::Leak,
            Effect::Burn { .. } => FaultKind::Burn,
            Effect::Overload(_) => FaultKind::Overload,
        }
    }

    /// The limits of every value, the same for every source.
    pub fn check(&self) -> Result<(), Invalid> {
        match self {
            Effect::Errors { rate, statuses } => {
                check_fraction("rate", *rate)?;
                if statuses.is_empty() || statuses.iter().any(|s| !(500..=599).contains(s)) {
                    return Err(Invalid::new(
                        "statuses",
                        format!("expected 5xx status codes, got {statuses:?}"),
                    ));
                }
            }
            Effect::Leak {
                mib_per_second,
                max_mib,
            } => {
                check_positive("mib-per-second", *mib_per_second, MAX_LEAK_MIB_PER_SECOND)?;
                if let Some(max) = max_mib {
                    check_positive("max-mib", *max, MAX_LEAK_MIB)?;
                }
            }
            Effect::Burn { cores } => check_positive("cores", *cores, MAX_BURN_CORES)?,
            Effect::Latency(distribution) => check_distribution(distribution)?,
            Effect::Overload(o) => {
                whole("workers", f64::from(o.workers), 1.0, MAX_OVERLOAD_WORKERS)?;
                if let Some(limit) = o.queue_limit {
                    whole("queue-limit", f64::from(limit), 0.0, MAX_QUEUE_LIMIT)?;
                }
                if !(400..=599).contains(&o.shed_status) {
                    return Err(Invalid::new(
                        "shed-status",
                        format!("expected a 4xx or 5xx status code, got {}", o.shed_status),
                    ));
                }
                if let LatencyDistribution::Uniform { delay } = &o.service_time
                    && delay.high.is_zero()
                {
                    return Err(Invalid::new("service-time", "must be above 0s"));
                }
                check_distribution(&o.service_time)?;
            }
            Effect::Crash { .. } | Effect::Hang | Effect::Unhealthy | Effect::Unready => {}
        }
        Ok(())
    }

    /// The effect as a plan carries it out: durations multiplied by the time scale, and the
    /// ranges that are drawn once per plan (a log-normal's median and p99) drawn by `draw`.
    pub fn resolve(
        &self,
        draw: &mut dyn FnMut(DurationRange) -> Duration,
        time_scale: f64,
    ) -> Effect {
        let scaled = |r: &DurationRange| DurationRange {
            low: scale(r.low, time_scale),
            high: scale(r.high, time_scale),
        };
        let mut resolve_distribution = |d: &LatencyDistribution| match d {
            LatencyDistribution::Uniform { delay } => LatencyDistribution::Uniform {
                delay: scaled(delay),
            },
            LatencyDistribution::Lognormal { median, p99 } => {
                let median = scale(draw(*median), time_scale);
                let p99 = scale(draw(*p99), time_scale).max(median);
                LatencyDistribution::Lognormal {
                    median: DurationRange::fixed(median),
                    p99: DurationRange::fixed(p99),
                }
            }
        };
        match self {
            Effect::Latency(d) => Effect::Latency(resolve_distribution(d)),
            Effect::Overload(o) => Effect::Overload(Overload {
                service_time: resolve_distribution(&o.service_time),
                probe_time: scaled(&o.probe_time),
                ..o.clone()
            }),
            other => other.clone(),
        }
    }

    /// A short description with the parameters, for logs, the timeline and `/chaos`.
    pub fn describe(&self) -> String {
        let range = |r: &DurationRange| {
            if r.is_fixed() {
                show(r.low)
            } else {
                format!("{}..{}", show(r.low), show(r.high))
            }
        };
        match self {
            Effect::Crash {
                mode: CrashMode::Exit,
                exit_code,
            } => format!("crash (exit code {exit_code})"),
            Effect::Crash { mode, .. } => format!("crash ({})", mode.as_str()),
            Effect::Hang => "hang (every route stops answering)".into(),
            Effect::Unhealthy => "unhealthy (/livez answers 500)".into(),
            Effect::Unready => "unready (/readyz answers 503)".into(),
            Effect::Latency(LatencyDistribution::Uniform { delay }) => {
                format!("latency {} on predictions", range(delay))
            }
            Effect::Latency(LatencyDistribution::Lognormal { median, p99 }) => format!(
                "latency log-normal median {} p99 {} on predictions",
                range(median),
                range(p99)
            ),
            Effect::Errors { rate, statuses } => {
                format!("errors {:.1}% of predictions as {statuses:?}", rate * 100.0)
            }
            Effect::Leak {
                mib_per_second,
                max_mib: None,
            } => format!("leak {mib_per_second} MiB/s"),
            Effect::Leak {
                mib_per_second,
                max_mib: Some(max),
            } => format!("leak {mib_per_second} MiB/s up to {max} MiB"),
            Effect::Burn { cores } => format!("burn {cores} cores"),
            Effect::Overload(o) => {
                let service = match &o.service_time {
                    LatencyDistribution::Uniform { delay } => range(delay),
                    LatencyDistribution::Lognormal { median, p99 } => {
                        format!("log-normal median {} p99 {}", range(median), range(p99))
                    }
                };
                let probes = match o.probes {
                    ProbeQueue::Queued => format!("probes queued ({} each)", range(&o.probe_time)),
                    ProbeQueue::Separate => "probes separate".into(),
                };
                let limit = match o.queue_limit {
                    None => "no queue limit".into(),
                    Some(n) => format!(
                        "queue limit {n} (then {}{})",
                        o.shed_status,
                        if o.shed_probes { ", probes too" } else { "" }
                    ),
                };
                format!(
                    "overload: {} worker{}, {service} per prediction, {probes}, {limit}",
                    o.workers,
                    if o.workers == 1 { "" } else { "s" }
                )
            }
        }
    }
}

/// One fault of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub timing: Timing,
    pub effect: Effect,
}

impl Fault {
    /// The fault type.
    pub fn kind(&self) -> FaultKind {
        self.effect.kind()
    }

    /// Checks timing and effect: the one check of every fault.
    pub fn check(&self) -> Result<(), Invalid> {
        if !self.kind().can_stop()
            && (self.timing.duration.is_some() || self.timing.every.is_some())
        {
            let key = if self.timing.duration.is_some() {
                "for"
            } else {
                "every"
            };
            return Err(Invalid::new(
                key,
                format!("does not apply to a fault of type {}", self.kind()),
            ));
        }
        self.timing.check()?;
        self.effect.check()
    }
}

/// A log-normal's median above zero and p99 at least the median.
fn check_distribution(distribution: &LatencyDistribution) -> Result<(), Invalid> {
    if let LatencyDistribution::Lognormal { median, p99 } = distribution {
        if median.low.is_zero() {
            return Err(Invalid::new("median", "must be above 0s"));
        }
        if p99.low < median.high {
            return Err(Invalid::new(
                "p99",
                format!("must be at least the median ({median}), got {p99}"),
            ));
        }
    }
    Ok(())
}

fn check_fraction(key: &'static str, x: f64) -> Result<(), Invalid> {
    if (0.0..=1.0).contains(&x) {
        Ok(())
    } else {
        Err(Invalid::new(
            key,
            format!("expected a number from 0 to 1, got {x}"),
        ))
    }
}

fn check_positive(key: &'static str, x: f64, max: f64) -> Result<(), Invalid> {
    if x.is_finite() && x > 0.0 && x <= max {
        Ok(())
    } else {
        Err(Invalid::new(
            key,
            format!("expected a number above 0 and at most {max}, got {x}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn names_round_trip_and_are_unique() {
        for kind in FaultKind::ALL {
            assert_eq!(FaultKind::from_name(kind.name()), Some(kind));
        }
        let mut names: Vec<_> = FaultKind::ALL.map(FaultKind::name).to_vec();
        names.dedup();
        assert_eq!(names.len(), FaultKind::ALL.len());
        assert_eq!(FaultKind::from_name("explode"), None);
        assert!(FaultKind::names().starts_with("crash, hang"));
    }

    #[test]
    fn limits_are_named_by_key_with_the_cap_in_the_message() {
        let cases = [
            (Effect::Burn { cores: 1000.0 }, "cores", "at most 256"),
            (Effect::Burn { cores: 0.0 }, "cores", "above 0"),
            (
                Effect::Leak {
                    mib_per_second: 10.0,
                    max_mib: Some(-1.0),
                },
                "max-mib",
                "above 0",
            ),
            (
                Effect::Leak {
                    mib_per_second: f64::NAN,
                    max_mib: None,
                },
                "mib-per-second",
                "at most 4096",
            ),
            (
                Effect::Errors {
                    rate: 1.5,
                    statuses: vec![500],
                },
                "rate",
                "from 0 to 1",
            ),
            (
                Effect::Errors {
                    rate: 0.5,
                    statuses: vec![404],
                },
                "statuses",
                "5xx",
            ),
        ];
        for (effect, key, needle) in cases {
            let e = effect.check().unwrap_err();
            assert_eq!(e.key, key, "{effect:?}");
            assert!(e.message.contains(needle), "{effect:?}: {}", e.message);
        }
        assert!(Effect::Burn { cores: 256.0 }.check().is_ok());
    }

    #[test]
    fn windows_only_for_faults_that_last() {
        let crash = Fault {
            timing: Timing {
                every: Some("10s".parse().unwrap()),
                ..Timing::default()
            },
            effect: Effect::Hang,
        };
        assert_eq!(crash.check().unwrap_err().key, "every");
        let unready = Fault {
            timing: Timing {
                duration: Some("20s".parse().unwrap()),
                every: Some("10s".parse().unwrap()),
                ..Timing::default()
            },
            effect: Effect::Unready,
        };
        assert_eq!(unready.check().unwrap_err().key, "for");
    }

    #[test]
    fn resolving_scales_and_draws_once() {
        let uniform = Effect::Latency(LatencyDistribution::Uniform {
            delay: "100ms..200ms".parse().unwrap(),
        });
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let Effect::Latency(LatencyDistribution::Uniform { delay }) =
            uniform.resolve(&mut |r: DurationRange| r.sample(&mut rng), 0.1)
        else {
            panic!()
        };
        assert_eq!(
            (delay.low, delay.high),
            (Duration::from_millis(10), Duration::from_millis(20))
        );
        let lognormal = Effect::Latency(LatencyDistribution::Lognormal {
            median: "40ms..60ms".parse().unwrap(),
            p99: "1s".parse().unwrap(),
        });
        let Effect::Latency(LatencyDistribution::Lognormal { median, p99 }) =
            lognormal.resolve(&mut |r: DurationRange| r.sample(&mut rng), 1.0)
        else {
            panic!()
        };
        assert!(median.is_fixed() && p99.is_fixed());
        assert!((40..=60).contains(&median.low.as_millis()));
    }

    #[test]
    fn the_overload_profile_is_forty_predictions_a_second_with_probes_queued() {
        let profile = crate::chaos::profile::Profile::load("overload").unwrap();
        let [
            Fault {
                effect: Effect::Overload(o),
                timing,
            },
        ] = &profile.faults[..]
        else {
            panic!("{:?}", profile.faults)
        };
        assert_eq!(timing.from, Anchor::Start);
        assert_eq!(
            (o.workers, o.probes, o.queue_limit),
            (1, ProbeQueue::Queued, None)
        );
        assert_eq!(o.probe_time, DurationRange::fixed(DEFAULT_PROBE_TIME));
        assert_eq!((o.shed_status, o.shed_probes), (503, false));
        assert!((o.capacity_per_second() - 40.0).abs() < 1e-9);
        assert_eq!(
            o.service_time.scv(),
            0.0,
            "a fixed service time does not vary"
        );
        // Uniform over 10..30 ms: mean 20 ms, variance 20^2/12 ms^2.
        let uniform = LatencyDistribution::Uniform {
            delay: "10ms..30ms".parse().unwrap(),
        };
        assert!((uniform.mean_seconds() - 0.020).abs() < 1e-12);
        assert!((uniform.scv() - 1.0 / 12.0).abs() < 1e-9);
        // Log-normal: mean exp(mu + sigma^2/2), scv exp(sigma^2) - 1.
        let lognormal = LatencyDistribution::Lognormal {
            median: "50ms".parse().unwrap(),
            p99: "1s".parse().unwrap(),
        };
        let sigma = (20.0f64).ln() / Z99;
        assert!((lognormal.mean_seconds() - 0.05 * (sigma * sigma / 2.0).exp()).abs() < 1e-12);
        assert!((lognormal.scv() - ((sigma * sigma).exp() - 1.0)).abs() < 1e-9);
        // Resolving scales both holding times, as every other chaos duration.
        let Effect::Overload(scaled) =
            Effect::Overload(o.clone()).resolve(&mut |r: DurationRange| r.low, 0.1)
        else {
            panic!()
        };
        assert_eq!(
            scaled.service_time,
            LatencyDistribution::Uniform {
                delay: DurationRange::fixed(Duration::from_micros(2500))
            }
        );
        assert_eq!(scaled.probe_time.low, Duration::from_micros(100));
        assert_eq!(
            Effect::Overload(o.clone()).describe(),
            "overload: 1 worker, 25ms per prediction, probes queued (1ms each), no queue limit"
        );
    }

    #[test]
    fn overload_keys_rebuild_the_same_overload() {
        struct Given(Vec<(&'static str, Value)>);
        impl Keys for Given {
            fn get(&self, key: &'static str, _: Like) -> Result<Option<Value>, Invalid> {
                Ok(self
                    .0
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone()))
            }
        }
        let overload = Overload {
            workers: 3,
            service_time: LatencyDistribution::Lognormal {
                median: "20ms".parse().unwrap(),
                p99: "200ms".parse().unwrap(),
            },
            probes: ProbeQueue::Separate,
            probe_time: "2ms".parse().unwrap(),
            queue_limit: Some(0),
            shed_status: 429,
            shed_probes: true,
        };
        let rebuilt = Effect::from_keys(
            FaultKind::Overload,
            &Given(overload.keys()),
            Missing::Required,
        );
        assert_eq!(rebuilt, Ok(Effect::Overload(overload)));
        // A profile must say how many workers and how long a prediction holds one.
        let e =
            Effect::from_keys(FaultKind::Overload, &Given(vec![]), Missing::Required).unwrap_err();
        assert_eq!(e.key, "workers");
        let e = Effect::from_keys(
            FaultKind::Overload,
            &Given(vec![("workers", Value::Number(1.0))]),
            Missing::Required,
        )
        .unwrap_err();
        assert_eq!(e.key, "service-time");
    }
}
