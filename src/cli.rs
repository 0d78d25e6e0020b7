//! The command line: `serve` (the default), `probe`, `profiles`, `plan`, `timeline`, `record`,
//! `simulate`, `load`.

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::chaos::fault::FaultKind;
use crate::chaos::overrides::ChaosArgs;
use crate::chaos::plan::Plan;
use crate::chaos::profile::{BUILTINS, Profile};
use crate::chaos::seed;
use crate::config::ServeArgs;
use crate::load::LoadArgs;
use crate::probe::ProbeArgs;
use crate::simulate::command::SimulateArgs;

/// An ONNX inference server that misbehaves on a schedule, to show and test what Kubernetes
/// probes, restarts, limits and rollouts do. Every flag is also an environment variable.
#[derive(Debug, Parser)]
#[command(name = "chaos-inference", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Check a probe route: exit 0 if it answers 2xx, 1 otherwise (for exec probes and HEALTHCHECK).
    Probe(ProbeArgs),
    /// List the built-in chaos profiles.
    Profiles,
    /// Print the timeline a profile will follow for a seed and time scale.
    Plan(Box<PlanArgs>),
    /// Check an application's timeline file and print what it will do (as `plan` does for a
    /// profile): its ports, what each probe target follows, its start-up, faults and shutdown.
    Timeline(Box<TimelineArgs>),
    /// Measure an application's timeline from outside: start its command several times, poll
    /// its port, probe paths and gRPC health services every 20 ms, and write a timeline file
    /// whose ranges cover every run (for `simulate --app`).
    Record(Box<crate::record::RecordArgs>),
    /// Predict what Kubernetes will do with manifests, and find what is wrong with their probes,
    /// limits and strategies (exit 0 clean, 1 findings, 2 unreadable input).
    Simulate(Box<SimulateArgs>),
    /// Find the probe settings that detect real failures fastest and never kill a healthy pod,
    /// judged by the simulator over every scenario (exit 0 found, 1 no setting meets the
    /// constraints, 2 unreadable input).
    Tune(Box<crate::simulate::tune::command::TuneArgs>),
    /// Send requests at a rate (in steps: `--rate 30 --rate 90@60s`), a new connection each, and
    /// count what failed and for how long, with each second's outcomes and p50/p99 (run it in a
    /// pod against a Service during a rollout).
    Load(Box<LoadArgs>),
}

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub chaos: ChaosArgs,
    /// Occurrences to print for repeating faults.
    #[arg(long, default_value_t = 3)]
    pub repeats: u64,
}

impl PlanArgs {
    /// The plan the server would follow with the same settings.
    pub fn plan(&self) -> Result<Plan, String> {
        let profile = self.chaos.resolve()?;
        Ok(Plan::new(
            &profile,
            seed::resolve(self.chaos.seed),
            self.chaos.time_scale,
        ))
    }
}

/// Arguments of `timeline`.
#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// The timeline file (the profile language plus `[endpoints]` and `[resources]`).
    pub file: String,
    /// Seed for the draws of its ranges (default: each range's low end and high end, as
    /// `simulate` covers them).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Multiplies every duration, as `CHAOS_TIME_SCALE` does.
    #[arg(long, default_value = "1.0", value_parser = crate::chaos::overrides::parse_time_scale)]
    pub time_scale: f64,
    /// Occurrences to print for repeating faults.
    #[arg(long, default_value_t = 3)]
    pub repeats: u64,
}

impl TimelineArgs {
    /// What the timeline says, in words, or why it cannot be read (one line).
    pub fn run(&self) -> Result<String, String> {
        let timeline = crate::simulate::app::file::AppTimeline::load(&self.file, None)?;
        if timeline.is_server_profile() {
            return Err(format!(
                "{} is a built-in profile of this server, not an application's timeline: `chaos-inference plan --profile {}` prints it",
                self.file, self.file
            ));
        }
        Ok(timeline.describe(self.seed, self.time_scale, self.repeats))
    }
}

/// Whether `name` is a subcommand (or `help`), by the `Command` enum itself.
fn is_subcommand(name: &str) -> bool {
    name == "help"
        || Cli::command()
            .get_subcommands()
            .any(|s| s.get_name() == name)
}

/// Parses arguments; with no subcommand (or only flags) the command is `serve`. `--profile`,
/// `--seed` and `--time-scale` are accepted as short forms of the `--chaos-*` flags.
pub fn parse_from(args: Vec<String>) -> Result<Cli, clap::Error> {
    let mut args = args;
    let first = args.get(1).map(String::as_str);
    let needs_serve = match first {
        None => true,
        Some(a) if a.starts_with('-') => !matches!(a, "-h" | "--help" | "-V" | "--version"),
        Some(a) => !is_subcommand(a),
    };
    if needs_serve {
        args.insert(1, "serve".into());
    }
    // `simulate` has its own --profile, --seed and --time-scale.
    let shorthand = matches!(args.get(1).map(String::as_str), Some("serve" | "plan"));
    for arg in args.iter_mut().skip(2).filter(|_| shorthand) {
        for (short, long) in [
            ("--profile", "--chaos-profile"),
            ("--seed", "--chaos-seed"),
            ("--time-scale", "--chaos-time-scale"),
        ] {
            if arg == short {
                *arg = long.into();
            } else if let Some(value) = arg.strip_prefix(&format!("{short}=")) {
                *arg = format!("{long}={value}");
            }
        }
    }
    Cli::try_parse_from(args)
}

/// The `profiles` listing: each built-in profile with its faults, then every fault type.
pub fn list_profiles() -> String {
    let mut out = String::new();
    for builtin in BUILTINS {
        let (description, manifest, faults) = match Profile::parse(builtin.name, builtin.text) {
            Ok(p) => {
                let faults: Vec<&str> = p.faults.iter().map(|f| f.kind().name()).collect();
                (p.description, p.manifest, faults.join(", "))
            }
            Err(e) => (format!("(broken: {e})"), String::new(), String::new()),
        };
        out.push_str(&format!("{:<20} {description}\n", builtin.name));
        if !faults.is_empty() {
            out.push_str(&format!("{:<20} faults: {faults}\n", ""));
        }
        out.push_str(&format!("{:<20} pair with {manifest}\n", ""));
    }
    out.push_str("\nfault types for your own profiles ([[fault]] type = ...):\n");
    for kind in FaultKind::ALL {
        out.push_str(&format!("  {:<18} {}\n", kind.name(), kind.summary()));
    }
    out
}
