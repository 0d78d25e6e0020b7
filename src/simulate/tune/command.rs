//! `chaos-inference tune`: reading files and flags as `simulate` does, writing the tuned
//! setting.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{Goals, Objective, render, tune_all};
use crate::simulate::command::{InputArgs, steps_of};
use crate::simulate::manifest;

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
    /// The manifests, timelines and scenario, as for `simulate`; every setting is judged over
    /// them (a setting whose liveness probe kills a pod that is only busy under `--load` is
    /// refused).
    #[command(flatten)]
    pub input: InputArgs,
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
    /// How much later than its timeline a container may open its port and load, on a busy
    /// node (its process starts after the kubelet records the container started): a startup
    /// probe, and a liveness probe no startup probe gates, wait this much longer.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_allowance)]
    pub start_allowance: Duration,
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

fn parse_allowance(text: &str) -> Result<Duration, String> {
    match crate::config::parse_duration(text)? {
        d if d <= Duration::from_secs(600) => Ok(d),
        _ => Err(format!("`{text}`: expected at most 10m")),
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
    let (sources, input) = args.input.read(false)?;
    let steps = steps_of(
        &input,
        args.input.workload.as_deref(),
        None,
        None,
        &args.input.steps,
    )?;
    let options = args.input.options(&input, steps)?;
    let goals = Goals {
        max_false_restarts_per_day: args.max_false_restarts_per_day,
        prefer: args.prefer.clone(),
        startup_margin: args.startup_margin / 100.0,
        start_allowance: args.start_allowance,
    };
    let tuned = tune_all(&input, &options, &goals);
    if tuned.is_empty() {
        return Err(format!(
            "{}: no container with a timeline to tune (this server's image, --app NAME=FILE or the {}<container> annotation)",
            args.input.files.join(", "),
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
