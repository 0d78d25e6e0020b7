//! Chaos profiles: TOML documents that say which faults happen and when.
//!
//! The built-in ones live in `chaos-profiles/` and are embedded in the binary; any file path
//! works as well. See `chaos-profiles/README.md` for the format.

use std::path::Path;

use serde::Deserialize;

use super::duration::DurationRange;
use super::fault::{
    Anchor, CrashMode, DEFAULT_ERROR_STATUSES, Effect, Fault, FaultKind, LatencyDistribution,
    Timing,
};

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

impl RawFault {
    /// Types the fault, refusing keys that belong to other types and missing required ones,
    /// then checks it like every other fault (`Fault::check`).
    fn into_fault(self, index: usize) -> Result<Fault, String> {
        let at = |key: &str| format!("fault[{index}].{key}");
        let kind = FaultKind::from_name(&self.kind).ok_or_else(|| {
            format!(
                "{}: unknown fault type `{}`; expected one of {}",
                at("type"),
                self.kind,
                FaultKind::names()
            )
        })?;
        let given: [(&str, bool); 13] = [
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
            ("for", self.duration.is_some()),
            ("every", self.every.is_some()),
        ];
        if let Some((key, _)) = given
            .iter()
            .find(|(key, set)| *set && !kind.keys().contains(key))
        {
            return Err(format!(
                "{}: does not apply to a fault of type {kind}",
                at(key)
            ));
        }
        let required = |value: Option<f64>, key: &str| {
            value.ok_or_else(|| format!("{}: required for type {kind}", at(key)))
        };
        let effect = match kind {
            FaultKind::Crash => Effect::Crash {
                mode: self.mode.unwrap_or_default(),
                exit_code: self.exit_code.unwrap_or(1),
            },
            FaultKind::Hang => Effect::Hang,
            FaultKind::Unhealthy => Effect::Unhealthy,
            FaultKind::Unready => Effect::Unready,
            FaultKind::Latency => Effect::Latency(
                match (
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
                },
            ),
            FaultKind::Errors => Effect::Errors {
                rate: required(self.rate, "rate")?,
                statuses: self
                    .statuses
                    .unwrap_or_else(|| DEFAULT_ERROR_STATUSES.to_vec()),
            },
            FaultKind::Leak => Effect::Leak {
                mib_per_second: required(self.mib_per_second, "mib-per-second")?,
                max_mib: self.max_mib,
            },
            FaultKind::Burn => Effect::Burn {
                cores: required(self.cores, "cores")?,
            },
        };
        let fault = Fault {
            timing: Timing {
                from: self.from,
                after: self.after,
                duration: self.duration,
                every: self.every,
                probability: self.probability,
            },
            effect,
        };
        fault
            .check()
            .map_err(|e| format!("{}: {}", at(e.key), e.message))?;
        Ok(fault)
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
            .map(|(i, f)| f.into_fault(i))
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
                "fault[0].every",
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
