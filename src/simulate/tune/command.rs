//! `chaos-inference tune`: reading files and flags as `simulate` does, writing the tuned
//! setting.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{Goals, Objective, render, tune_all};
use crate::chaos::overrides::parse_time_scale;
use crate::config::parse_duration;
use crate::load::RateStep;
use crate::simulate::app::Overrides;
use crate::simulate::command::{load_of, read_sources, resolve_timelines, steps_of};
use crate::simulate::{DRAWN_SCENARIOS, Options, manifest};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Current versus tuned, per container, with the changed fields and the trade-offs.
    Table,
    Json,
    /// A strategic merge patch per workload, for `kubectl patch --patch-file`.
    Patch,
    /// The input manifests with only the tuned fields changed.
    Yaml,
}

/// Arguments of `tune`.
#[derive(Debug, Clone, Args)]
pub struct TuneArgs {
    /// Manifest files (multi-document YAML); `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// The timeline of a container that is not this server's (as for `simulate`).
    #[arg(long = "app", value_name = "NAME=FILE")]
    pub apps: Vec<String>,
    /// Profile for every container instead of its own (a built-in name or a file).
    #[arg(long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Seed for every container instead of its own.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Time scale for every container instead of its own CHAOS_TIME_SCALE.
    #[arg(long, value_name = "F", value_parser = parse_time_scale)]
    pub time_scale: Option<f64>,
    /// Offer this load while judging each setting (as for `simulate`): a setting whose liveness
    /// probe kills a pod that is only busy is refused.
    #[arg(long = "load", value_name = "RATE[@WHEN]", value_parser = RateStep::parse)]
    pub load: Vec<RateStep>,
    /// The clients' time-out under `--load`.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub load_timeout: Duration,
    /// Changes after apply while judging each setting (as for `simulate`): `delete-pod@75s`
    /// asks for probes that keep the pods alive when one is lost under the load (a rollout, a
    /// drained node); `set-image=TAG`, `scale=N`. Repeatable.
    #[arg(long = "step", value_name = "ACTION[@WHEN]")]
    pub steps: Vec<String>,
    /// The workload the load enters and the steps change, when the input has several.
    #[arg(long, value_name = "NAME")]
    pub workload: Option<String>,
    /// The most expected restarts of a healthy container a day, from the probe paths' latency
    /// tails and failureThreshold.
    #[arg(long, default_value_t = 0.01, value_name = "X", value_parser = parse_rate)]
    pub max_false_restarts_per_day: f64,
    /// What matters most, first (repeatable; the others follow in the order detect, ready,
    /// shed; fewest probe requests breaks ties).
    #[arg(long, value_enum, value_name = "OBJECTIVE")]
    pub prefer: Vec<Objective>,
    /// How much longer than the latest load the startup budget is, in percent.
    #[arg(long, default_value_t = 10.0, value_name = "PERCENT", value_parser = parse_percent)]
    pub startup_margin: f64,
    /// How long after apply each setting is simulated.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub horizon: Duration,
    /// Scenarios drawn on top of the earliest and the latest.
    #[arg(long, default_value_t = DRAWN_SCENARIOS, value_name = "N")]
    pub scenarios: u64,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "`{text}`: expected a number of restarts a day, 0 or more"
        )),
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1000.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}`: expected a percentage from 0 to 1000")),
    }
}

/// Runs `tune`: the output and the exit code (0 every container has a setting that meets the
/// constraints, 1 some has none), or the one line that says why the input cannot be read
/// (exit code 2).
pub fn run(args: &TuneArgs) -> Result<(String, u8), String> {
    let (sources, _) = read_sources(&args.files, false)?;
    let mut input = manifest::read(&sources).map_err(|e| e.to_string())?;
    resolve_timelines(&mut input, &args.apps)?;
    if let Some(profile) = &args.profile {
        crate::chaos::profile::Profile::load(profile).map_err(|e| format!("--profile: {e}"))?;
    }
    let options = Options {
        horizon: args.horizon,
        overrides: Overrides {
            profile: args.profile.clone(),
            seed: args.seed,
            time_scale: args.time_scale,
            without_faults: false,
        },
        steps: steps_of(&input, args.workload.as_deref(), None, None, &args.steps)?,
        scenarios: args.scenarios,
        load: load_of(
            &input,
            &args.load,
            args.workload.as_deref(),
            args.load_timeout,
        )?,
    };
    let goals = Goals {
        max_false_restarts_per_day: args.max_false_restarts_per_day,
        prefer: args.prefer.clone(),
        startup_margin: args.startup_margin / 100.0,
    };
    let tuned = tune_all(&input, &options, &goals);
    if tuned.is_empty() {
        return Err(format!(
            "{}: no container with a timeline to tune (this server's image, --app NAME=FILE or the {}<container> annotation)",
            args.files.join(", "),
            manifest::TIMELINE_ANNOTATION
        ));
    }
    let text = match args.output {
        Output::Table => render::table(&tuned),
        Output::Json => render::json(&tuned),
        Output::Patch => render::patch(&tuned),
        Output::Yaml => super::edit::yaml(&sources, &input, &tuned, &options)?,
    };
    let code = u8::from(tuned.iter().any(|t| t.chosen.is_none()));
    Ok((text, code))
}
