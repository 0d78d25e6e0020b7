//! Chaos profiles: TOML documents that say which faults happen and when.
//!
//! The built-in ones live in `chaos-profiles/` and are embedded in the binary; any file path
//! works as well. See `chaos-profiles/README.md` for the format.

use std::path::Path;

use serde::Deserialize;

use super::duration::DurationRange;

/// A parsed, checked profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// The built-in name or the file path.
    pub name: String,
    /// One line: what the profile does.
    pub description: String,
    /// What you see in Kubernetes with it.
    pub shows: String,
    /// The manifest to pair it with.
    pub manifest: String,
    pub startup: Startup,
    pub shutdown: Shutdown,
    pub faults: Vec<Fault>,
}

/// The profile as written; faults are checked and typed afterwards.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawProfile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    shows: String,
    #[serde(default)]
    manifest: String,
    #[serde(default)]
    startup: Startup,
    #[serde(default)]
    shutdown: Shutdown,
    #[serde(default)]
    fault: Vec<RawFault>,
}

/// One `[[fault]]` table as written: every key any fault type takes, so that unknown keys are
/// refused by name and keys of another type are refused with the type named.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFault {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    from: Anchor,
    after: Option<DurationRange>,
    #[serde(rename = "for")]
    duration: Option<DurationRange>,
    every: Option<DurationRange>,
    probability: Option<f64>,
    mode: Option<CrashMode>,
    exit_code: Option<u8>,
    distribution: Option<String>,
    delay: Option<DurationRange>,
    median: Option<DurationRange>,
    p99: Option<DurationRange>,
    rate: Option<f64>,
    statuses: Option<Vec<u16>>,
    mib_per_second: Option<f64>,
    max_mib: Option<f64>,
    cores: Option<f64>,
}

/// Delays before serving.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Startup {
    /// Before the port opens: TCP probes and connections fail.
    pub bind_delay: Option<DurationRange>,
    /// Port open, model loading: `/startupz` and `/readyz` answer 503.
    pub load_delay: Option<DurationRange>,
    /// Whether `/livez` passes while the model loads (default true). False models a server that
    /// cannot answer health checks until it has started, which is what startup probes are for.
    pub live_while_loading: Option<bool>,
}

/// SIGTERM handling.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Shutdown {
    /// Ignore SIGTERM, so only SIGKILL ends the process.
    #[serde(default)]
    pub ignore_sigterm: bool,
}

/// From when a fault's `after` counts.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
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

/// How a crash ends the process.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
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
        [
            CrashMode::Exit,
            CrashMode::Panic,
            CrashMode::Abort,
            CrashMode::Sigkill,
            CrashMode::Oom,
            CrashMode::Hang,
        ]
        .into_iter()
        .find(|m| m.as_str() == s.trim())
        .ok_or_else(|| format!("expected one of exit, panic, abort, sigkill, oom, hang, got `{s}`"))
    }
}

/// How injected latency is distributed.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencyDistribution {
    /// Uniform over `delay` (a duration or an `a..b` range).
    Uniform { delay: DurationRange },
    /// Log-normal with the given median and 99th percentile: most requests a little slow, a
    /// few very slow, as real tail latency looks.
    Lognormal {
        median: DurationRange,
        p99: DurationRange,
    },
}

/// One fault of a profile.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The process ends (or hangs) once.
    Crash {
        timing: Timing,
        mode: CrashMode,
        exit_code: u8,
    },
    /// Every route stops answering; the process stays up.
    Hang { timing: Timing },
    /// `/livez` answers 500 while predictions still work.
    Unhealthy { timing: Timing },
    /// `/readyz` answers 503.
    Unready { timing: Timing },
    /// Prediction routes are slowed down.
    Latency {
        timing: Timing,
        distribution: LatencyDistribution,
    },
    /// A fraction of predictions fail.
    Errors {
        timing: Timing,
        rate: f64,
        statuses: Vec<u16>,
    },
    /// Memory grows steadily (allocated and touched, so it is resident).
    Leak {
        timing: Timing,
        mib_per_second: f64,
        /// Stop growing at this size; unset grows until killed.
        max_mib: Option<f64>,
    },
    /// Busy threads burn CPU.
    Burn { timing: Timing, cores: f64 },
}

/// The fault types, as `type = "..."` takes them.
pub const FAULT_TYPES: &str = "crash, hang, unhealthy, unready, latency, errors, leak, burn";

impl RawFault {
    /// Types the fault, refusing keys that belong to other types and missing required ones.
    fn into_fault(self, index: usize) -> Result<Fault, String> {
        let at = |key: &str| format!("fault[{index}].{key}");
        let given: [(&str, bool); 12] = [
            ("mode", self.mode.is_some()),
            ("exit-code", self.exit_code.is_some()),
            ("distribution", self.distribution.is_some()),
            ("delay", self.delay.is_some()),
            ("median", self.median.is_some()),
            ("p99", self.p99.is_some()),
            ("rate", self.rate.is_some()),
            ("statuses", self.statuses.is_some()),
            ("mib-per-second", self.mib_per_second.is_some()),
            ("max-mib", self.max_mib.is_some()),
            ("cores", self.cores.is_some()),
            ("for", self.duration.is_some() || self.every.is_some()),
        ];
        let allowed: &[&str] = match self.kind.as_str() {
            "crash" => &["mode", "exit-code"],
            "hang" => &[],
            "unhealthy" | "unready" => &["for"],
            "latency" => &["distribution", "delay", "median", "p99", "for"],
            "errors" => &["rate", "statuses", "for"],
            "leak" => &["mib-per-second", "max-mib", "for"],
            "burn" => &["cores", "for"],
            other => {
                return Err(format!(
                    "{}: unknown fault type `{other}`; expected one of {FAULT_TYPES}",
                    at("type")
                ));
            }
        };
        if let Some((key, _)) = given
            .iter()
            .find(|(key, set)| *set && !allowed.contains(key))
        {
            let key = if *key == "for" { "for/every" } else { key };
            return Err(format!(
                "{}: does not apply to a fault of type {}",
                at(key),
                self.kind
            ));
        }
        let required = |value: Option<f64>, key: &str| {
            value.ok_or_else(|| format!("{}: required for type {}", at(key), self.kind))
        };
        let timing = Timing {
            from: self.from,
            after: self.after,
            duration: self.duration,
            every: self.every,
            probability: self.probability,
        };
        Ok(match self.kind.as_str() {
            "crash" => Fault::Crash {
                timing,
                mode: self.mode.unwrap_or_default(),
                exit_code: self.exit_code.unwrap_or(1),
            },
            "hang" => Fault::Hang { timing },
            "unhealthy" => Fault::Unhealthy { timing },
            "unready" => Fault::Unready { timing },
            "latency" => {
                let distribution = match (
                    self.distribution.as_deref().unwrap_or("uniform"),
                    self.delay,
                    self.median,
                    self.p99,
                ) {
                    ("uniform", Some(delay), None, None) => LatencyDistribution::Uniform { delay },
                    ("lognormal", None, Some(median), Some(p99)) => {
                        LatencyDistribution::Lognormal { median, p99 }
                    }
                    ("uniform", ..) => {
                        return Err(format!(
                            "{}: uniform latency takes `delay` only",
                            at("delay")
                        ));
                    }
                    ("lognormal", ..) => {
                        return Err(format!(
                            "{}: lognormal latency takes `median` and `p99` only",
                            at("p99")
                        ));
                    }
                    (other, ..) => {
                        return Err(format!(
                            "{}: expected uniform or lognormal, got `{other}`",
                            at("distribution")
                        ));
                    }
                };
                Fault::Latency {
                    timing,
                    distribution,
                }
            }
            "errors" => Fault::Errors {
                timing,
                rate: required(self.rate, "rate")?,
                statuses: self.statuses.unwrap_or_else(|| vec![500, 503]),
            },
            "leak" => Fault::Leak {
                timing,
                mib_per_second: required(self.mib_per_second, "mib-per-second")?,
                max_mib: self.max_mib,
            },
            _ => Fault::Burn {
                timing,
                cores: required(self.cores, "cores")?,
            },
        })
    }
}

impl Fault {
    /// The fault's name, as in profiles, logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Crash { .. } => "crash",
            Fault::Hang { .. } => "hang",
            Fault::Unhealthy { .. } => "unhealthy",
            Fault::Unready { .. } => "unready",
            Fault::Latency { .. } => "latency",
            Fault::Errors { .. } => "errors",
            Fault::Leak { .. } => "leak",
            Fault::Burn { .. } => "burn",
        }
    }

    /// When it happens.
    pub fn timing(&self) -> &Timing {
        match self {
            Fault::Crash { timing, .. }
            | Fault::Hang { timing }
            | Fault::Unhealthy { timing }
            | Fault::Unready { timing }
            | Fault::Latency { timing, .. }
            | Fault::Errors { timing, .. }
            | Fault::Leak { timing, .. }
            | Fault::Burn { timing, .. } => timing,
        }
    }

    /// Mutable timing, for overrides.
    pub fn timing_mut(&mut self) -> &mut Timing {
        match self {
            Fault::Crash { timing, .. }
            | Fault::Hang { timing }
            | Fault::Unhealthy { timing }
            | Fault::Unready { timing }
            | Fault::Latency { timing, .. }
            | Fault::Errors { timing, .. }
            | Fault::Leak { timing, .. }
            | Fault::Burn { timing, .. } => timing,
        }
    }

    /// Checks values serde cannot: probabilities, rates, statuses, windows.
    fn check(&self, index: usize) -> Result<(), String> {
        let at = |key: &str| format!("fault[{index}].{key}");
        let timing = self.timing();
        if let Some(p) = timing.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(format!(
                "{}: expected a number from 0 to 1, got {p}",
                at("probability")
            ));
        }
        if let Some(every) = timing.every {
            if every.low.is_zero() {
                return Err(format!("{}: must be longer than 0s", at("every")));
            }
            if let Some(d) = timing.duration
                && d.high > every.low
            {
                return Err(format!(
                    "{}: a window ({d}) must fit in its period ({every})",
                    at("for")
                ));
            }
        }
        match self {
            Fault::Errors { rate, statuses, .. } => {
                if !(0.0..=1.0).contains(rate) {
                    return Err(format!(
                        "{}: expected a number from 0 to 1, got {rate}",
                        at("rate")
                    ));
                }
                if statuses.is_empty() || statuses.iter().any(|s| !(500..=599).contains(s)) {
                    return Err(format!(
                        "{}: expected 5xx status codes, got {statuses:?}",
                        at("statuses")
                    ));
                }
            }
            Fault::Leak {
                mib_per_second,
                max_mib,
                ..
            } => {
                if !(mib_per_second.is_finite()
                    && *mib_per_second > 0.0
                    && *mib_per_second <= 4096.0)
                {
                    return Err(format!(
                        "{}: expected a number above 0 and at most 4096, got {mib_per_second}",
                        at("mib-per-second")
                    ));
                }
                if max_mib.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
                    return Err(format!("{}: expected a positive number", at("max-mib")));
                }
            }
            Fault::Burn { cores, .. } => {
                if !(cores.is_finite() && *cores > 0.0 && *cores <= 256.0) {
                    return Err(format!(
                        "{}: expected a number above 0 and at most 256, got {cores}",
                        at("cores")
                    ));
                }
            }
            Fault::Latency { distribution, .. } => {
                if let LatencyDistribution::Lognormal { median, p99 } = distribution
                    && (median.low.is_zero() || p99.low < median.high)
                {
                    return Err(format!(
                        "{}: median must be above 0 and p99 at least the median",
                        at("p99")
                    ));
                }
            }
            Fault::Crash { .. }
            | Fault::Hang { .. }
            | Fault::Unhealthy { .. }
            | Fault::Unready { .. } => {}
        }
        Ok(())
    }
}

/// A built-in profile: its name and TOML text.
pub struct Builtin {
    pub name: &'static str,
    pub text: &'static str,
}

macro_rules! builtins {
    ($($name:literal),* $(,)?) => {
        /// Every built-in profile, in the order `profiles` lists them.
        pub const BUILTINS: &[Builtin] = &[
            $(Builtin { name: $name, text: include_str!(concat!("../../chaos-profiles/", $name, ".toml")) }),*
        ];
    };
}

builtins!(
    "none",
    "v2",
    "slow-start",
    "crash-loop",
    "liveness-hang",
    "unhealthy",
    "flapping-readiness",
    "latency",
    "errors",
    "memory-leak",
    "cpu-burn",
    "slow-shutdown",
);

impl Profile {
    /// Parses a profile's TOML; errors name the key and line.
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let message = e.message().replace('\n', " ");
            match line {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            }
        })?;
        let faults = raw
            .fault
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let fault = f.into_fault(i)?;
                fault.check(i)?;
                Ok(fault)
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Profile {
            name: name.to_string(),
            description: raw.description,
            shows: raw.shows,
            manifest: raw.manifest,
            startup: raw.startup,
            shutdown: raw.shutdown,
            faults,
        })
    }

    /// A built-in name or a file path, as `CHAOS_PROFILE` takes it.
    pub fn load(name_or_path: &str) -> Result<Self, String> {
        if let Some(builtin) = BUILTINS.iter().find(|b| b.name == name_or_path) {
            return Profile::parse(builtin.name, builtin.text).map_err(|e| {
                format!("CHAOS_PROFILE={name_or_path}: built-in profile is broken: {e}")
            });
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(format!(
                "CHAOS_PROFILE={name_or_path}: no built-in profile or file of that name; expected one of {} or a path to a .toml file",
                BUILTINS
                    .iter()
                    .map(|b| b.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("CHAOS_PROFILE={name_or_path}: cannot read: {e}"))?;
        // A mounted profile (e.g. /etc/chaos-inference/profiles/v2.toml) is named by its file stem,
        // so logs and termination messages read `v2: ...`, not the mount path.
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(name_or_path);
        Profile::parse(name, &text).map_err(|e| format!("CHAOS_PROFILE={name_or_path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_says_what_it_shows() {
        for b in BUILTINS {
            let p = Profile::parse(b.name, b.text).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            assert!(!p.description.is_empty(), "{} has no description", b.name);
            assert!(!p.manifest.is_empty(), "{} names no manifest", b.name);
        }
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = Profile::parse("x", "[[fault]]\ntype = \"crash\"\nafter = \"soon\"\n").unwrap_err();
        assert!(e.contains("line 1") || e.contains("line 3"), "{e}");
        assert!(e.contains("expected a duration"), "{e}");
        let e = Profile::parse("x", "[startup]\nbind-dely = \"1s\"\n").unwrap_err();
        assert!(e.contains("bind-dely"), "{e}");
        let e = Profile::parse("x", "[[fault]]\ntype = \"explode\"\n").unwrap_err();
        assert!(e.contains("explode"), "{e}");
    }

    #[test]
    fn values_out_of_their_domain_are_refused() {
        let cases = [
            (
                "[[fault]]\ntype = \"errors\"\nrate = 1.5\n",
                "fault[0].rate",
            ),
            (
                "[[fault]]\ntype = \"errors\"\nrate = 0.5\nstatuses = [404]\n",
                "fault[0].statuses",
            ),
            (
                "[[fault]]\ntype = \"unready\"\nfor = \"20s\"\nevery = \"10s\"\n",
                "fault[0].for",
            ),
            (
                "[[fault]]\ntype = \"crash\"\nevery = \"10s\"\n",
                "fault[0].for/every",
            ),
            ("[[fault]]\ntype = \"crash\"\ncores = 1\n", "fault[0].cores"),
            ("[[fault]]\ntype = \"leak\"\n", "fault[0].mib-per-second"),
            ("[[fault]]\ntype = \"burn\"\ncores = 0\n", "fault[0].cores"),
            (
                "[[fault]]\ntype = \"hang\"\nprobability = 2\n",
                "fault[0].probability",
            ),
        ];
        for (text, key) in cases {
            let e = Profile::parse("x", text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn profiles_from_files_are_named_by_their_stem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my-profile.toml");
        std::fs::write(&path, "description = \"x\"\n").unwrap();
        assert_eq!(
            Profile::load(path.to_str().unwrap()).unwrap().name,
            "my-profile"
        );
    }

    #[test]
    fn unknown_names_list_the_builtins() {
        let e = Profile::load("no-such-profile").unwrap_err();
        assert!(e.starts_with("CHAOS_PROFILE=no-such-profile"), "{e}");
        assert!(e.contains("flapping-readiness"), "{e}");
    }
}
