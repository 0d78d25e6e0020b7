//! `chaos-inference simulate`: reading files and flags, writing the report.

use std::io::Read;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::app::Overrides;
use super::app::file::AppTimeline;
use super::cluster::{Action, Step, When};
use super::findings::Severity;
use super::manifest::{self, App, Kind};
use super::{DRAWN_SCENARIOS, Options, offered, parse_step, render, simulate};
use crate::chaos::overrides::parse_time_scale;
use crate::config::parse_duration;
use crate::load::{RateStep, Rates};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    /// GitHub Actions workflow commands (`::error file=...,line=...,col=...,title=...::`), which
    /// a workflow turns into annotations on the lines they name.
    Github,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF consumers.
    Sarif,
    /// JUnit XML, for CI test reports: a test case per workload and rule.
    Junit,
}

/// The lowest finding severity that makes the exit code 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Never,
}

/// What `simulate` and `tune` both read: the manifests, the timelines, and the scenario
/// (overrides, changes after apply, load, horizon).
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Manifest files (multi-document YAML); `-` reads standard input, as from `kubectl
    /// kustomize` or `helm template`. Pods, ReplicaSets, Deployments and ConfigMaps are read;
    /// other kinds are passed over.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Profile for every container instead of its own (a built-in name or a file).
    #[arg(long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Seed for every container instead of its own (CHAOS_SEED, or its pod's name).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Time scale for every container instead of its own CHAOS_TIME_SCALE.
    #[arg(long, value_name = "F", value_parser = parse_time_scale)]
    pub time_scale: Option<f64>,
    /// How long after apply to look.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub horizon: Duration,
    /// Changes after apply, in order: `set-image=TAG`, `scale=N` or `delete-pod`, then
    /// `@ready` (default), `@30s` after apply or `@+10s` after the step before. Repeatable.
    /// (`tune` judges every setting with them: `delete-pod@75s` under a load asks for probes
    /// that keep the pods alive when one is lost.)
    #[arg(long = "step", value_name = "ACTION[@WHEN]")]
    pub steps: Vec<String>,
    /// Offer this load, in requests per second of predictions, from apply or, as RATE@WHEN,
    /// from that time on (repeatable: `--load 30 --load 90@60s`; `--load 90@45s` alone offers
    /// nothing before 45 s). It enters through the Service
    /// that selects the workload (or straight to the workload) and splits evenly over the
    /// Ready pods; each pod queues it as its container's capacity says (the `overload` fault).
    #[arg(long = "load", value_name = "RATE[@WHEN]", value_parser = RateStep::parse)]
    pub load: Vec<RateStep>,
    /// The clients' time-out under `--load`: a request answered later counts as timed out.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub load_timeout: Duration,
    /// The workload the changes (and the load) apply to, when the input has several.
    #[arg(long, value_name = "NAME")]
    pub workload: Option<String>,
    /// Scenarios drawn on top of the earliest and the latest.
    #[arg(long, default_value_t = DRAWN_SCENARIOS, value_name = "N")]
    pub scenarios: u64,
    /// The timeline of a container that is not this server's: NAME is a container name or an
    /// image repository without its tag (`gunicorn`, `ghcr.io/acme/api`'s `api`), FILE a
    /// timeline file (`chaos-inference record` writes one) or a built-in profile. Repeatable;
    /// wins over the pod template's `chaos-inference/timeline.<container>` annotation.
    #[arg(long = "app", value_name = "NAME=FILE")]
    pub apps: Vec<String>,
}

impl InputArgs {
    /// The manifests as read, and the input with each container's timeline. `skip_other_yaml`
    /// passes over files that are not Kubernetes manifests.
    pub fn read(
        &self,
        skip_other_yaml: bool,
    ) -> Result<(Vec<(String, String)>, manifest::Input), String> {
        let (sources, skipped) = read_sources(&self.files, skip_other_yaml)?;
        let mut input = manifest::read(&sources).map_err(|e| e.to_string())?;
        input.ignored.extend(skipped);
        resolve_timelines(&mut input, &self.apps)?;
        Ok((sources, input))
    }

    /// The simulator's options for `input`, with `steps` (the `--step`s and any others).
    pub fn options(&self, input: &manifest::Input, steps: Vec<Step>) -> Result<Options, String> {
        if let Some(profile) = &self.profile {
            crate::chaos::profile::Profile::load(profile).map_err(|e| format!("--profile: {e}"))?;
        }
        Ok(Options {
            horizon: self.horizon,
            overrides: Overrides {
                profile: self.profile.clone(),
                seed: self.seed,
                time_scale: self.time_scale,
                without_faults: false,
            },
            steps,
            scenarios: self.scenarios,
            load: load_of(
                input,
                &self.load,
                self.workload.as_deref(),
                self.load_timeout,
            )?,
        })
    }
}

/// Arguments of `simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Table for people, JSON for programs.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Exit 1 when a finding (not expected by the manifest) is at least this severe.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Roll out this image tag (`kubectl set image`) once the workload is ready; the tag picks
    /// the profile as the Dockerfile's targets do (v2 -> v2, others -> none) unless the
    /// container sets CHAOS_PROFILE.
    #[arg(long, value_name = "TAG")]
    pub set_image: Option<String>,
    /// Apply this changed manifest of the workload once it is ready (`kubectl apply`).
    #[arg(long, value_name = "FILE")]
    pub then: Option<String>,
    /// Pass over files that are not Kubernetes manifests (not YAML, such as a Helm template, or
    /// no document with both `apiVersion` and `kind`) instead of refusing them: for hooks that
    /// hand over every staged YAML file.
    #[arg(long)]
    pub skip_other_yaml: bool,
}

/// Whether `text` is a Kubernetes manifest: YAML with at least one document that has both
/// `apiVersion` and `kind`.
fn is_kubernetes_yaml(text: &str) -> bool {
    super::yaml::documents(text).is_ok_and(|documents| {
        documents
            .iter()
            .any(|d| d.value["apiVersion"].is_string() && d.value["kind"].is_string())
    })
}

/// Gives each container its timeline: `--app NAME=FILE` (by container name or image
/// repository), else its pod template's `chaos-inference/timeline.<container>` annotation (a
/// path relative to the manifest's folder, or a built-in profile). A file that cannot be read
/// or checked is an error naming it (exit code 2).
pub fn resolve_timelines(input: &mut manifest::Input, apps: &[String]) -> Result<(), String> {
    let mut given = Vec::new();
    for app in apps {
        let Some((name, file)) = app
            .split_once('=')
            .filter(|(n, f)| !n.is_empty() && !f.is_empty())
        else {
            return Err(format!(
                "--app {app}: expected NAME=FILE (a container name or image repository, and a timeline file or built-in profile)"
            ));
        };
        let timeline = AppTimeline::load(file, None).map_err(|e| format!("--app {app}: {e}"))?;
        given.push((name.to_string(), std::sync::Arc::new(timeline), false));
    }
    let mut loaded: Vec<(String, std::sync::Arc<AppTimeline>)> = Vec::new();
    for workload in &mut input.workloads {
        let base = (workload.origin.file != "-")
            .then(|| {
                std::path::Path::new(&workload.origin.file)
                    .parent()
                    .map(|p| p.to_path_buf())
            })
            .flatten();
        for container in &mut workload.template.containers {
            let by_flag = given.iter_mut().find(|(name, _, _)| {
                *name == container.name || *name == container.image_repository()
            });
            if let Some((_, timeline, used)) = by_flag {
                container.app = App::Timeline(std::sync::Arc::clone(timeline));
                *used = true;
                continue;
            }
            let Some(annotation) = &container.timeline_annotation else {
                continue;
            };
            let key = format!(
                "{}|{annotation}",
                base.as_ref()
                    .map_or(String::new(), |b| b.display().to_string())
            );
            let timeline = match loaded.iter().find(|(k, _)| *k == key) {
                Some((_, t)) => std::sync::Arc::clone(t),
                None => {
                    let t = AppTimeline::load(annotation, base.as_deref()).map_err(|e| {
                        format!(
                            "{}: {}{}: {e}",
                            workload.origin,
                            manifest::TIMELINE_ANNOTATION,
                            container.name
                        )
                    })?;
                    let t = std::sync::Arc::new(t);
                    loaded.push((key, std::sync::Arc::clone(&t)));
                    t
                }
            };
            container.app = App::Timeline(timeline);
        }
    }
    if let Some((name, _, _)) = given.iter().find(|(_, _, used)| !used) {
        return Err(format!(
            "--app {name}=...: no container of the input is named `{name}` or runs an image of that repository"
        ));
    }
    Ok(())
}

/// Files as read: name (`-` for standard input) and text.
pub type Sources = Vec<(String, String)>;

/// Reads every file (`-`: standard input); with `skip_other_yaml`, the ones that are not
/// Kubernetes manifests are passed over and named in the second list.
pub fn read_sources(
    files: &[String],
    skip_other_yaml: bool,
) -> Result<(Sources, Vec<String>), String> {
    let mut sources = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        let text = if file == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("-: cannot read standard input: {e}"))?;
            text
        } else {
            std::fs::read_to_string(file).map_err(|e| format!("{file}: cannot read: {e}"))?
        };
        if skip_other_yaml && !is_kubernetes_yaml(&text) {
            skipped.push(format!("{file} (not Kubernetes manifests)"));
            continue;
        }
        // Standard input is `-` in every message and finding, as on the command line.
        sources.push((file.clone(), text));
    }
    Ok((sources, skipped))
}

/// The offered load of `--load` steps (none when there are none).
pub fn load_of(
    input: &manifest::Input,
    load: &[RateStep],
    workload: Option<&str>,
    timeout: Duration,
) -> Result<Option<super::traffic::Offered>, String> {
    if load.is_empty() {
        return Ok(None);
    }
    // A load that starts later offers nothing until then.
    let mut steps = load.to_vec();
    if steps.iter().all(|s| !s.from.is_zero()) {
        steps.push(RateStep {
            rate: 0.0,
            from: Duration::ZERO,
        });
    }
    let rates = Rates::new(steps).map_err(|e| format!("--load: {e}"))?;
    Ok(Some(offered(input, workload, rates, timeout)?))
}

/// Findings that a probe setting fixes: their fix quotes what `tune` finds for the container.
fn suggest_tuned(input: &manifest::Input, options: &super::Options, report: &mut super::Report) {
    use super::findings::Rule;
    let about_probes = |rule: Rule| {
        matches!(
            rule,
            Rule::LivenessKillsDuringLoad
                | Rule::StartupBudgetTooShort
                | Rule::ProbeTimeoutBelowLatency
                | Rule::LivenessSameAsReadiness
                | Rule::UnreadyWindowMissed
                | Rule::NoLivenessForHang
                | Rule::ReadyBeforeLoaded
                | Rule::LivenessKillsUnderLoad
                | Rule::RestartStorm
                | Rule::ShedProbesKill
                | Rule::ReadinessNotShedding
        )
    };
    let mut tuned: Vec<(String, Option<String>)> = Vec::new();
    for finding in report.findings.iter_mut().filter(|f| about_probes(f.rule)) {
        let suggestion = match tuned.iter().find(|(w, _)| *w == finding.workload) {
            Some((_, s)) => s.clone(),
            None => {
                let s = input
                    .workloads
                    .iter()
                    .position(|w| w.name == finding.workload)
                    .and_then(|i| super::tune::tune(input, i, options, &Default::default()))
                    .and_then(|t| super::tune::render::suggestion(&t));
                tuned.push((finding.workload.clone(), s.clone()));
                s
            }
        };
        if let Some(s) = suggestion {
            finding.fix = format!("{} ({s})", finding.fix);
        }
    }
}

/// The changes made after apply (`--set-image`, `--then`, `--step`), all to one workload:
/// `workload` or the input's only ReplicaSet or Deployment.
pub fn steps_of(
    input: &manifest::Input,
    workload: Option<&str>,
    set_image: Option<&str>,
    then: Option<&str>,
    texts: &[String],
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let wants_steps = set_image.is_some() || then.is_some() || !texts.is_empty();
    if wants_steps {
        let target = match workload {
            Some(name) => input
                .workloads
                .iter()
                .find(|w| w.name == name)
                .ok_or_else(|| format!("--workload: no workload named `{name}` in the input"))?,
            None => {
                let mut rolling = input.workloads.iter().filter(|w| w.kind != Kind::Pod);
                match (rolling.next(), rolling.next()) {
                    (Some(w), None) => w,
                    (None, _) => return Err("--set-image/--then/--step: the input has no ReplicaSet or Deployment to change".into()),
                    (Some(_), Some(_)) => return Err("--set-image/--then/--step: the input has several workloads; name one with --workload".into()),
                }
            }
        };
        if let Some(tag) = set_image {
            steps.push(Step {
                workload: target.name.clone(),
                action: Action::SetImage(tag.to_string()),
                when: When::Ready,
            });
        }
        if let Some(file) = then {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{file}: cannot read: {e}"))?;
            let changed = manifest::read(&[(file.to_string(), text)]).map_err(|e| e.to_string())?;
            let workload = changed
                .workloads
                .into_iter()
                .find(|w| w.name == target.name && w.kind == target.kind)
                .ok_or_else(|| {
                    format!(
                        "{file}: no {} named `{}`",
                        target.kind.as_str(),
                        target.name
                    )
                })?;
            steps.push(Step {
                workload: target.name.clone(),
                action: Action::Apply(Box::new(workload)),
                when: When::Ready,
            });
        }
        for text in texts {
            steps.push(parse_step(text, &target.name).map_err(|e| format!("--step {text}: {e}"))?);
        }
    }
    Ok(steps)
}

/// Runs `simulate`: the report text and the exit code, or the one line that says why the input
/// cannot be read (exit code 2).
pub fn run(args: &SimulateArgs) -> Result<(String, u8), String> {
    let (_, input) = args.input.read(args.skip_other_yaml)?;
    // A table says so in words; JSON stays a report (with no pods) for whatever reads it.
    if input.workloads.is_empty() && matches!(args.output, Output::Table) {
        return Ok((
            format!(
                "{}: no Pod, ReplicaSet or Deployment to simulate\n",
                args.input.files.join(", ")
            ),
            0,
        ));
    }
    let steps = steps_of(
        &input,
        args.input.workload.as_deref(),
        args.set_image.as_deref(),
        args.then.as_deref(),
        &args.input.steps,
    )?;
    let options = args.input.options(&input, steps)?;
    let mut report = simulate(&input, &options);
    suggest_tuned(&input, &options, &mut report);
    let fail_on = match args.fail_on {
        FailOn::Error => Some(Severity::Error),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Never => None,
    };
    let text = match args.output {
        Output::Table => render::table(&report),
        Output::Json => render::json(&report),
        Output::Github => render::github(&report),
        Output::Sarif => render::sarif(&report),
        Output::Junit => render::junit(&report, fail_on),
    };
    Ok((text, render::exit_code(&report, fail_on)))
}
