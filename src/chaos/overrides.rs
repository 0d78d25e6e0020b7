//! `CHAOS_*` variables: the profile, seed and time scale, and single-fault overrides applied on
//! top of any profile.

use clap::Args;

use super::duration::DurationRange;
use super::fault::{
    CrashMode, DEFAULT_ERROR_STATUSES, Effect, Fault, FaultKind, Invalid, Keys,
    LatencyDistribution, Like, Missing, Timing, Value,
};
use super::profile::Profile;

/// Chaos settings; each is also a `CHAOS_*` environment variable.
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// Built-in profile name (see `chaos-inference profiles`) or path to a profile file.
    #[arg(
        long = "chaos-profile",
        env = "CHAOS_PROFILE",
        value_name = "CHAOS_PROFILE",
        default_value = "none"
    )]
    pub profile: String,

    /// Seed for every random draw; derived from HOSTNAME when unset.
    #[arg(long = "chaos-seed", env = "CHAOS_SEED", value_name = "CHAOS_SEED", value_parser = parse_seed)]
    pub seed: Option<u64>,

    /// Multiplies every chaos duration (0.01 makes a 60 s crash happen at 0.6 s).
    #[arg(long = "chaos-time-scale", env = "CHAOS_TIME_SCALE", value_name = "CHAOS_TIME_SCALE", default_value_t = 1.0, value_parser = parse_time_scale)]
    pub time_scale: f64,

    /// Override: port stays closed this long at start (`5s` or `2s..8s`).
    #[arg(
        long = "chaos-bind-delay",
        env = "CHAOS_BIND_DELAY",
        value_name = "CHAOS_BIND_DELAY"
    )]
    pub bind_delay: Option<DurationRange>,

    /// Override: model load takes this long (port open, /readyz 503).
    #[arg(
        long = "chaos-startup-delay",
        env = "CHAOS_STARTUP_DELAY",
        value_name = "CHAOS_STARTUP_DELAY"
    )]
    pub startup_delay: Option<DurationRange>,

    /// Override: crash this long after ready (adds a crash fault if the profile has none).
    #[arg(
        long = "chaos-crash-after",
        env = "CHAOS_CRASH_AFTER",
        value_name = "CHAOS_CRASH_AFTER"
    )]
    pub crash_after: Option<DurationRange>,

    /// Override: how the crash ends the process: exit, panic, abort, sigkill, oom, hang.
    #[arg(
        long = "chaos-crash-mode",
        env = "CHAOS_CRASH_MODE",
        value_name = "CHAOS_CRASH_MODE"
    )]
    pub crash_mode: Option<CrashMode>,

    /// Override: exit code of an `exit` crash.
    #[arg(
        long = "chaos-exit-code",
        env = "CHAOS_EXIT_CODE",
        value_name = "CHAOS_EXIT_CODE"
    )]
    pub exit_code: Option<u8>,

    /// Override: stop answering every route this long after ready.
    #[arg(
        long = "chaos-hang-after",
        env = "CHAOS_HANG_AFTER",
        value_name = "CHAOS_HANG_AFTER"
    )]
    pub hang_after: Option<DurationRange>,

    /// Override: /livez answers 500 from this long after ready.
    #[arg(
        long = "chaos-unhealthy-after",
        env = "CHAOS_UNHEALTHY_AFTER",
        value_name = "CHAOS_UNHEALTHY_AFTER"
    )]
    pub unhealthy_after: Option<DurationRange>,

    /// Override: delay every prediction by this (`100ms` or uniform `50ms..200ms`); replaces the
    /// profile's latency faults.
    #[arg(
        long = "chaos-latency",
        env = "CHAOS_LATENCY",
        value_name = "CHAOS_LATENCY"
    )]
    pub latency: Option<DurationRange>,

    /// Override: fraction of predictions that fail with 500 or 503 (0 to 1); replaces the
    /// profile's error faults.
    #[arg(long = "chaos-error-rate", env = "CHAOS_ERROR_RATE", value_name = "CHAOS_ERROR_RATE", value_parser = parse_number)]
    pub error_rate: Option<f64>,

    /// Override: leak this many MiB per second from ready.
    #[arg(long = "chaos-leak-mib-per-second", env = "CHAOS_LEAK_MIB_PER_SECOND", value_name = "CHAOS_LEAK_MIB_PER_SECOND", value_parser = parse_number)]
    pub leak_mib_per_second: Option<f64>,

    /// Override: burn this many cores from ready.
    #[arg(long = "chaos-burn-cores", env = "CHAOS_BURN_CORES", value_name = "CHAOS_BURN_CORES", value_parser = parse_number)]
    pub burn_cores: Option<f64>,

    /// Override: ignore SIGTERM (true) or honour it (false).
    #[arg(
        long = "chaos-ignore-sigterm",
        env = "CHAOS_IGNORE_SIGTERM",
        value_name = "CHAOS_IGNORE_SIGTERM"
    )]
    pub ignore_sigterm: Option<bool>,
}

/// A time scale: above 0 and at most 1000 (`CHAOS_TIME_SCALE`, and `simulate --time-scale`).
pub fn parse_time_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 1000.0 => Ok(x),
        _ => Err(format!(
            "expected a number above 0 and at most 1000 such as 0.01, got `{text}`"
        )),
    }
}

fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| {
        format!("expected a whole number from 0 to 18446744073709551615, got `{text}`")
    })
}

/// A number; its range is checked with the fault it belongs to (`Fault::check`), so a
/// variable has the same limits and message as the profile key it overrides.
fn parse_number(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| format!("expected a number such as 0.5, got `{text}`"))
}

impl ChaosArgs {
    /// Loads the profile and applies the overrides, `CHAOS_OVERLOAD_*` from the environment
    /// included. Errors name the variable.
    pub fn resolve(&self) -> Result<Profile, String> {
        let mut profile = Profile::load(&self.profile)?;
        self.apply(&mut profile)?;
        apply_overload(&mut profile, &|name| std::env::var(name).ok())?;
        Ok(profile)
    }

    /// Applies the overrides to a profile; every fault they make or change passes the same
    /// check as a profile's, and an error names the variable.
    pub fn apply(&self, profile: &mut Profile) -> Result<(), String> {
        if let Some(d) = self.bind_delay {
            profile.startup.bind_delay = Some(d);
        }
        if let Some(d) = self.startup_delay {
            profile.startup.load_delay = Some(d);
        }
        if let Some(ignore) = self.ignore_sigterm {
            profile.shutdown.ignore_sigterm = ignore;
        }
        self.apply_crash(profile)?;
        let from_start = Timing::default;
        let replacements = [
            (
                "CHAOS_HANG_AFTER",
                self.hang_after
                    .map(|after| (Timing::after_ready(after), Effect::Hang)),
            ),
            (
                "CHAOS_UNHEALTHY_AFTER",
                self.unhealthy_after
                    .map(|after| (Timing::after_ready(after), Effect::Unhealthy)),
            ),
            (
                "CHAOS_LATENCY",
                self.latency.map(|delay| {
                    (
                        from_start(),
                        Effect::Latency(LatencyDistribution::Uniform { delay }),
                    )
                }),
            ),
            (
                "CHAOS_ERROR_RATE",
                self.error_rate.map(|rate| {
                    (
                        from_start(),
                        Effect::Errors {
                            rate,
                            statuses: DEFAULT_ERROR_STATUSES.to_vec(),
                        },
                    )
                }),
            ),
            (
                "CHAOS_LEAK_MIB_PER_SECOND",
                self.leak_mib_per_second.map(|mib_per_second| {
                    (
                        from_start(),
                        Effect::Leak {
                            mib_per_second,
                            max_mib: None,
                        },
                    )
                }),
            ),
            (
                "CHAOS_BURN_CORES",
                self.burn_cores
                    .map(|cores| (from_start(), Effect::Burn { cores })),
            ),
        ];
        for (variable, replacement) in replacements {
            let Some((timing, effect)) = replacement else {
                continue;
            };
            let fault = Fault { timing, effect };
            fault
                .check()
                .map_err(|e| format!("{variable}: {}", e.message))?;
            profile.faults.retain(|f| f.kind() != fault.kind());
            profile.faults.push(fault);
        }
        Ok(())
    }

    fn apply_crash(&self, profile: &mut Profile) -> Result<(), String> {
        if self.crash_after.is_none() && self.crash_mode.is_none() && self.exit_code.is_none() {
            return Ok(());
        }
        if !profile.faults.iter().any(|f| f.kind() == FaultKind::Crash) {
            let Some(after) = self.crash_after else {
                let var = if self.crash_mode.is_some() {
                    "CHAOS_CRASH_MODE"
                } else {
                    "CHAOS_EXIT_CODE"
                };
                return Err(format!(
                    "{var}: profile `{}` has no crash fault to change; also set CHAOS_CRASH_AFTER (e.g. 60s)",
                    profile.name
                ));
            };
            profile.faults.push(Fault {
                timing: Timing::after_ready(after),
                effect: Effect::Crash {
                    mode: CrashMode::Exit,
                    exit_code: 1,
                },
            });
        }
        for fault in &mut profile.faults {
            if let Effect::Crash { mode, exit_code } = &mut fault.effect {
                if let Some(after) = self.crash_after {
                    fault.timing.after = Some(after);
                }
                if let Some(m) = self.crash_mode {
                    *mode = m;
                }
                if let Some(code) = self.exit_code {
                    *exit_code = code;
                }
            }
        }
        Ok(())
    }
}

/// The variable that overrides one key of the overload fault: `CHAOS_OVERLOAD_` and the key
/// in upper snake case (`service-time` is `CHAOS_OVERLOAD_SERVICE_TIME`).
pub fn overload_variable(key: &str) -> String {
    format!("CHAOS_OVERLOAD_{}", key.to_uppercase().replace('-', "_"))
}

/// The overload keys that variables set, over the profile's own overload fault (or the admin
/// route's defaults when it has none).
struct OverloadVariables {
    given: Vec<(&'static str, String)>,
    profile: Vec<(&'static str, Value)>,
}

impl Keys for OverloadVariables {
    fn get(&self, key: &'static str, like: Like) -> Result<Option<Value>, Invalid> {
        if let Some((_, text)) = self.given.iter().find(|(k, _)| *k == key) {
            return Value::from_text(key, like, text).map(Some);
        }
        Ok(self
            .profile
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }
}

/// Applies the `CHAOS_OVERLOAD_*` variables `lookup` finds: each changes its key of the
/// profile's overload fault, or of a new one from start with the admin route's defaults (one
/// worker, 25 ms) for the keys none sets. The fault passes the profile's check; an error names
/// the variable.
pub fn apply_overload(
    profile: &mut Profile,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let kind = FaultKind::Overload;
    let given: Vec<(&'static str, String)> = kind
        .keys()
        .iter()
        .filter_map(|key| lookup(&overload_variable(key)).map(|text| (*key, text)))
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    let existing = profile.faults.iter().position(|f| f.kind() == kind);
    let (timing, keys) = match existing.map(|i| &profile.faults[i]) {
        Some(Fault {
            timing,
            effect: Effect::Overload(o),
        }) => {
            let mut keys = o.keys();
            // A variable that gives one form of the service time replaces the other form.
            if given.iter().any(|(k, _)| *k == "service-time") {
                keys.retain(|(k, _)| !matches!(*k, "distribution" | "median" | "p99"));
            }
            if given.iter().any(|(k, _)| matches!(*k, "median" | "p99")) {
                keys.retain(|(k, _)| *k != "service-time");
            }
            (timing.clone(), keys)
        }
        _ => (Timing::default(), Vec::new()),
    };
    let keys = OverloadVariables {
        given,
        profile: keys,
    };
    let named = |e: Invalid| format!("{}: {}", overload_variable(e.key), e.message);
    let effect = Effect::from_keys(kind, &keys, Missing::AdminDefault).map_err(named)?;
    let fault = Fault { timing, effect };
    fault.check().map_err(named)?;
    match existing {
        Some(i) => profile.faults[i] = fault,
        None => profile.faults.push(fault),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        chaos: ChaosArgs,
    }

    fn args(flags: &[&str]) -> Result<ChaosArgs, String> {
        Wrapper::try_parse_from(std::iter::once("x").chain(flags.iter().copied()))
            .map(|w| w.chaos)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn crash_after_adds_a_crash_to_a_healthy_profile() {
        let a = args(&[
            "--chaos-crash-after",
            "1s..2s",
            "--chaos-crash-mode",
            "abort",
        ])
        .unwrap();
        let p = a.resolve().unwrap();
        assert!(matches!(
            &p.faults[..],
            [Fault {
                effect: Effect::Crash {
                    mode: CrashMode::Abort,
                    ..
                },
                ..
            }]
        ));
    }

    #[test]
    fn crash_mode_without_a_crash_names_the_variable() {
        let a = args(&["--chaos-crash-mode", "panic"]).unwrap();
        let e = a.resolve().unwrap_err();
        assert!(e.starts_with("CHAOS_CRASH_MODE"), "{e}");
    }

    #[test]
    fn overrides_change_a_builtin_profile() {
        let a = args(&[
            "--chaos-profile",
            "v2",
            "--chaos-startup-delay",
            "1s",
            "--chaos-exit-code",
            "3",
        ])
        .unwrap();
        let p = a.resolve().unwrap();
        assert_eq!(p.startup.load_delay, Some("1s".parse().unwrap()));
        assert!(matches!(
            &p.faults[..],
            [Fault {
                effect: Effect::Crash { exit_code: 3, .. },
                ..
            }]
        ));
    }

    #[test]
    fn malformed_values_name_the_variable_and_the_form() {
        for (flags, var) in [
            (vec!["--chaos-time-scale", "0"], "CHAOS_TIME_SCALE"),
            (vec!["--chaos-crash-after", "soon"], "CHAOS_CRASH_AFTER"),
            (vec!["--chaos-crash-mode", "explode"], "CHAOS_CRASH_MODE"),
            (vec!["--chaos-seed=-1"], "CHAOS_SEED"),
        ] {
            let e = args(&flags).unwrap_err();
            assert!(e.contains(var), "{flags:?}: {e}");
            assert!(
                e.contains("expected") || e.contains("invalid"),
                "{flags:?}: {e}"
            );
        }
    }

    /// The same limits as the profile keys they override, with the cap in the message.
    #[test]
    fn out_of_range_values_name_the_variable_and_the_limit() {
        for (flags, needle) in [
            (
                vec!["--chaos-burn-cores", "1000"],
                "CHAOS_BURN_CORES: expected a number above 0 and at most 256, got 1000",
            ),
            (
                vec!["--chaos-error-rate", "2"],
                "CHAOS_ERROR_RATE: expected a number from 0 to 1, got 2",
            ),
            (
                vec!["--chaos-leak-mib-per-second", "0"],
                "CHAOS_LEAK_MIB_PER_SECOND: expected a number above 0 and at most 4096, got 0",
            ),
        ] {
            let e = args(&flags).unwrap().resolve().unwrap_err();
            assert_eq!(e, needle, "{flags:?}");
        }
    }

    fn overload_of(profile: &Profile) -> &crate::chaos::fault::Overload {
        match profile.faults.iter().find_map(|f| match &f.effect {
            Effect::Overload(o) => Some(o),
            _ => None,
        }) {
            Some(o) => o,
            None => panic!("no overload fault in {}", profile.name),
        }
    }

    #[test]
    fn overload_variables_change_only_their_keys_of_the_profile_fault() {
        let mut profile = Profile::load("overload").unwrap();
        let vars = |name: &str| match name {
            "CHAOS_OVERLOAD_WORKERS" => Some("4".to_string()),
            "CHAOS_OVERLOAD_QUEUE_LIMIT" => Some("10".to_string()),
            "CHAOS_OVERLOAD_SHED_PROBES" => Some("true".to_string()),
            _ => None,
        };
        apply_overload(&mut profile, &vars).unwrap();
        let o = overload_of(&profile);
        assert_eq!(
            (o.workers, o.queue_limit, o.shed_probes),
            (4, Some(10), true)
        );
        // Untouched keys keep the profile's values.
        assert_eq!(
            o.service_time,
            LatencyDistribution::Uniform {
                delay: "25ms".parse().unwrap()
            }
        );
        assert_eq!(profile.faults.len(), 1);
    }

    #[test]
    fn overload_variables_add_an_overload_to_a_profile_without_one() {
        let mut profile = Profile::load("none").unwrap();
        let vars =
            |name: &str| (name == "CHAOS_OVERLOAD_SERVICE_TIME").then(|| "10ms..20ms".to_string());
        apply_overload(&mut profile, &vars).unwrap();
        let o = overload_of(&profile);
        assert_eq!(o.workers, 1, "the admin default");
        assert_eq!(
            o.service_time,
            LatencyDistribution::Uniform {
                delay: "10ms..20ms".parse().unwrap()
            }
        );
        // A log-normal service time replaces the profile's fixed one.
        let mut profile = Profile::load("overload").unwrap();
        let vars = |name: &str| match name {
            "CHAOS_OVERLOAD_MEDIAN" => Some("20ms".to_string()),
            "CHAOS_OVERLOAD_P99" => Some("200ms".to_string()),
            _ => None,
        };
        apply_overload(&mut profile, &vars).unwrap();
        assert!(matches!(
            overload_of(&profile).service_time,
            LatencyDistribution::Lognormal { .. }
        ));
    }

    #[test]
    fn bad_overload_variables_name_the_variable() {
        for (var, value, needle) in [
            (
                "CHAOS_OVERLOAD_WORKERS",
                "0",
                "expected a whole number from 1 to 4096, got 0",
            ),
            (
                "CHAOS_OVERLOAD_WORKERS",
                "many",
                "expected a number, got `many`",
            ),
            (
                "CHAOS_OVERLOAD_PROBES",
                "sometimes",
                "expected queued or separate, got `sometimes`",
            ),
            (
                "CHAOS_OVERLOAD_SHED_STATUS",
                "200",
                "expected a 4xx or 5xx status code, got 200",
            ),
            (
                "CHAOS_OVERLOAD_SHED_PROBES",
                "yes",
                "expected true or false, got `yes`",
            ),
            (
                "CHAOS_OVERLOAD_SERVICE_TIME",
                "soon",
                "expected a duration or range",
            ),
            (
                "CHAOS_OVERLOAD_QUEUE_LIMIT",
                "1.5",
                "expected a whole number from 0",
            ),
        ] {
            let mut profile = Profile::load("overload").unwrap();
            let vars = |name: &str| (name == var).then(|| value.to_string());
            let e = apply_overload(&mut profile, &vars).unwrap_err();
            assert!(e.starts_with(&format!("{var}: ")), "{var}={value}: {e}");
            assert!(e.contains(needle), "{var}={value}: {e}");
        }
    }
}
