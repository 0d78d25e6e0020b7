//! A fault: when it happens ([`Timing`]) and what it does ([`Effect`]), the one list of fault
//! names ([`FaultKind`]) and the one check every fault passes, whichever way it arrives (profile
//! file, `CHAOS_*` variable, admin route).
//!
//! Adding a fault type means: a variant in [`FaultKind`] and [`Effect`], its keys in
//! [`FaultKind::keys`], its limits in [`Effect::check`], and what it does in
//! `engine::ChaosEngine::switch`. The parser, the admin route, the OpenAPI document and
//! `chaos-inference profiles` read the names from here.

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
}

impl FaultKind {
    /// Every fault type, in the order the docs list them.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Crash,
        FaultKind::Hang,
        FaultKind::Unhealthy,
        FaultKind::Unready,
        FaultKind::Latency,
        FaultKind::Errors,
        FaultKind::Leak,
        FaultKind::Burn,
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
        }
    }

    /// Keys of a profile's `[[fault]]` table that this type takes besides `type`, `from`,
    /// `after` and `probability` (which every type takes).
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            FaultKind::Crash => &["mode", "exit-code"],
            FaultKind::Hang => &[],
            FaultKind::Unhealthy | FaultKind::Unready => &["for", "every"],
            FaultKind::Latency => &["distribution", "delay", "median", "p99", "for", "every"],
            FaultKind::Errors => &["rate", "statuses", "for", "every"],
            FaultKind::Leak => &["mib-per-second", "max-mib", "for", "every"],
            FaultKind::Burn => &["cores", "for", "every"],
        }
    }

    /// Whether a running fault of this type can be switched off again. A crash or a hang is
    /// for good.
    pub fn can_stop(self) -> bool {
        !matches!(self, FaultKind::Crash | FaultKind::Hang)
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
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            key,
            message: message.into(),
        }
    }
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
    /// One delay. Uniform draws are exact to the microsecond; log-normal ones use the low end
    /// of `median` and `p99`, which the plan has fixed.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match self {
            LatencyDistribution::Uniform { delay } if delay.is_fixed() => delay.low,
            LatencyDistribution::Uniform { delay } => Duration::from_micros(
                rng.random_range(delay.low.as_micros() as u64..=delay.high.as_micros() as u64),
            ),
            LatencyDistribution::Lognormal { median, p99 } => {
                let mu = median.low.as_secs_f64().max(1e-9).ln();
                let sigma = (p99.low.as_secs_f64().max(1e-9).ln() - mu) / Z99;
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
}

impl Effect {
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
            Effect::Latency(LatencyDistribution::Lognormal { median, p99 }) => {
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
            Effect::Latency(LatencyDistribution::Uniform { .. })
            | Effect::Crash { .. }
            | Effect::Hang
            | Effect::Unhealthy
            | Effect::Unready => {}
        }
        Ok(())
    }

    /// The effect as a plan carries it out: durations multiplied by the time scale, and the
    /// ranges that are drawn once per plan (a log-normal's median and p99) drawn from `rng`.
    pub fn resolve(&self, rng: &mut impl Rng, time_scale: f64) -> Effect {
        match self {
            Effect::Latency(LatencyDistribution::Uniform { delay }) => {
                Effect::Latency(LatencyDistribution::Uniform {
                    delay: DurationRange {
                        low: scale(delay.low, time_scale),
                        high: scale(delay.high, time_scale),
                    },
                })
            }
            Effect::Latency(LatencyDistribution::Lognormal { median, p99 }) => {
                let median = scale(median.sample(rng), time_scale);
                let p99 = scale(p99.sample(rng), time_scale).max(median);
                Effect::Latency(LatencyDistribution::Lognormal {
                    median: DurationRange::fixed(median),
                    p99: DurationRange::fixed(p99),
                })
            }
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
        if !self.kind().keys().contains(&"every")
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
            uniform.resolve(&mut rng, 0.1)
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
            lognormal.resolve(&mut rng, 1.0)
        else {
            panic!()
        };
        assert!(median.is_fixed() && p99.is_fixed());
        assert!((40..=60).contains(&median.low.as_millis()));
    }
}
