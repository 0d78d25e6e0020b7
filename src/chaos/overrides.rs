//! `CHAOS_*` variables: the profile, seed and time scale, and single-fault overrides applied on
//! top of any profile.

use clap::Args;

use super::duration::DurationRange;
use super::fault::{
    CrashMode, DEFAULT_ERROR_STATUSES, Effect, Fault, FaultKind, LatencyDistribution, Timing,
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
    /// Loads the profile and applies the overrides. Errors name the variable.
    pub fn resolve(&self) -> Result<Profile, String> {
        let mut profile = Profile::load(&self.profile)?;
        self.apply(&mut profile)?;
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
}
