//! `CHAOS_*` variables: the profile, seed and time scale, and single-fault overrides applied on
//! top of any profile.

use clap::Args;

use super::duration::DurationRange;
use super::profile::{Anchor, CrashMode, Fault, LatencyDistribution, Profile, Timing};

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
    #[arg(long = "chaos-error-rate", env = "CHAOS_ERROR_RATE", value_name = "CHAOS_ERROR_RATE", value_parser = parse_fraction)]
    pub error_rate: Option<f64>,

    /// Override: leak this many MiB per second from ready.
    #[arg(long = "chaos-leak-mib-per-second", env = "CHAOS_LEAK_MIB_PER_SECOND", value_name = "CHAOS_LEAK_MIB_PER_SECOND", value_parser = parse_positive)]
    pub leak_mib_per_second: Option<f64>,

    /// Override: burn this many cores from ready.
    #[arg(long = "chaos-burn-cores", env = "CHAOS_BURN_CORES", value_name = "CHAOS_BURN_CORES", value_parser = parse_positive)]
    pub burn_cores: Option<f64>,

    /// Override: ignore SIGTERM (true) or honour it (false).
    #[arg(
        long = "chaos-ignore-sigterm",
        env = "CHAOS_IGNORE_SIGTERM",
        value_name = "CHAOS_IGNORE_SIGTERM"
    )]
    pub ignore_sigterm: Option<bool>,
}

fn parse_time_scale(text: &str) -> Result<f64, String> {
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

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "expected a number from 0 to 1 such as 0.1, got `{text}`"
        )),
    }
}

fn parse_positive(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 4096.0 => Ok(x),
        _ => Err(format!(
            "expected a number above 0 such as 2.5, got `{text}`"
        )),
    }
}

fn after_ready(after: DurationRange) -> Timing {
    Timing {
        from: Anchor::Ready,
        after: Some(after),
        ..Timing::default()
    }
}

impl ChaosArgs {
    /// Loads the profile and applies the overrides. Errors name the variable.
    pub fn resolve(&self) -> Result<Profile, String> {
        let mut profile = Profile::load(&self.profile)?;
        self.apply(&mut profile)?;
        Ok(profile)
    }

    /// Applies the overrides to a profile.
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
        let replace = |profile: &mut Profile, kind: &str, fault: Fault| {
            profile.faults.retain(|f| f.kind() != kind);
            profile.faults.push(fault);
        };
        if let Some(after) = self.hang_after {
            replace(
                profile,
                "hang",
                Fault::Hang {
                    timing: after_ready(after),
                },
            );
        }
        if let Some(after) = self.unhealthy_after {
            replace(
                profile,
                "unhealthy",
                Fault::Unhealthy {
                    timing: after_ready(after),
                },
            );
        }
        if let Some(delay) = self.latency {
            replace(
                profile,
                "latency",
                Fault::Latency {
                    timing: Timing::default(),
                    distribution: LatencyDistribution::Uniform { delay },
                },
            );
        }
        if let Some(rate) = self.error_rate {
            replace(
                profile,
                "errors",
                Fault::Errors {
                    timing: Timing::default(),
                    rate,
                    statuses: vec![500, 503],
                },
            );
        }
        if let Some(mib_per_second) = self.leak_mib_per_second {
            replace(
                profile,
                "leak",
                Fault::Leak {
                    timing: Timing::default(),
                    mib_per_second,
                    max_mib: None,
                },
            );
        }
        if let Some(cores) = self.burn_cores {
            replace(
                profile,
                "burn",
                Fault::Burn {
                    timing: Timing::default(),
                    cores,
                },
            );
        }
        Ok(())
    }

    fn apply_crash(&self, profile: &mut Profile) -> Result<(), String> {
        if self.crash_after.is_none() && self.crash_mode.is_none() && self.exit_code.is_none() {
            return Ok(());
        }
        if !profile.faults.iter().any(|f| f.kind() == "crash") {
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
            profile.faults.push(Fault::Crash {
                timing: after_ready(after),
                mode: CrashMode::Exit,
                exit_code: 1,
            });
        }
        for fault in &mut profile.faults {
            if let Fault::Crash {
                timing,
                mode,
                exit_code,
            } = fault
            {
                if let Some(after) = self.crash_after {
                    timing.after = Some(after);
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
            [Fault::Crash {
                mode: CrashMode::Abort,
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
        assert!(matches!(&p.faults[..], [Fault::Crash { exit_code: 3, .. }]));
    }

    #[test]
    fn malformed_values_name_the_variable_and_the_form() {
        for (flags, var) in [
            (vec!["--chaos-time-scale", "0"], "CHAOS_TIME_SCALE"),
            (vec!["--chaos-crash-after", "soon"], "CHAOS_CRASH_AFTER"),
            (vec!["--chaos-error-rate", "2"], "CHAOS_ERROR_RATE"),
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
}
