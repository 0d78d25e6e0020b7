//! `chaos-inference simulate`: what the kubelet and the controllers will do with manifests,
//! given what the application will do (the same plan the server follows), and findings about
//! the probes, limits and strategies from that timeline.
//!
//! Pure, like the planner: manifests and settings in, a report out. What the manifests do not
//! fix (the draws of a seed that depends on a random pod name, how fast the cluster starts
//! containers, the probes' phases) is covered by running many scenarios: the earliest, the
//! latest and a fixed number drawn from a fixed seed, so every time becomes a window and the
//! same input always gives the same report.

pub mod app;
pub mod cluster;
pub mod command;
pub mod controllers;
pub mod findings;
pub mod kubelet;
pub mod manifest;
pub mod queue;
pub mod render;
pub mod steps;
pub mod timeline;
pub mod traffic;
pub mod tune;
pub mod under_load;
pub mod yaml;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use self::app::Overrides;
use self::cluster::{Action, Cluster, Scenario, Step, Trace, When};
use self::findings::Finding;
use self::kubelet::{Ms, ProbeKind, Reason, Seen};
use self::manifest::{Input, Kind};
use self::traffic::Offered;
use crate::chaos::plan::mix;

/// Scenarios drawn on top of the earliest and the latest.
pub const DRAWN_SCENARIOS: u64 = 30;

/// What `simulate` is asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub horizon: Duration,
    pub overrides: Overrides,
    pub steps: Vec<Step>,
    /// Drawn scenarios on top of the earliest and the latest.
    pub scenarios: u64,
    /// The offered load, if any (`--load`).
    pub load: Option<Offered>,
}

/// A time that depends on the unknowns: earliest and latest over every scenario, in seconds
/// after apply.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    pub earliest_s: f64,
    pub latest_s: f64,
}

impl Window {
    fn of(times: &[Ms]) -> Option<Window> {
        let (min, max) = (times.iter().min()?, times.iter().max()?);
        Some(Window {
            earliest_s: *min as f64 / 1000.0,
            latest_s: *max as f64 / 1000.0,
        })
    }
}

/// A count that depends on the unknowns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    pub min: u64,
    pub max: u64,
}

impl Range {
    fn of(values: impl IntoIterator<Item = u64>) -> Range {
        let values: Vec<u64> = values.into_iter().collect();
        Range {
            min: values.iter().copied().min().unwrap_or(0),
            max: values.iter().copied().max().unwrap_or(0),
        }
    }
}

/// One line a watcher sees, with when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// `Row` lines read like `kubectl get pods -w`; the others are events.
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<&'static str>,
    /// READY/STATUS/RESTARTS of a row, or the event's message.
    pub detail: String,
    #[serde(flatten)]
    pub window: Window,
    /// Share of the scenarios it happens in (1 when it always does).
    pub share: f64,
    /// For events: the most times in a row it repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<Range>,
}

/// One pod's prediction.
#[derive(Debug, Clone, Serialize)]
pub struct PodReport {
    pub name: String,
    pub workload: String,
    pub image: String,
    pub profile: String,
    /// The seed, when the pod's name fixes it.
    pub seed: Option<u64>,
    pub events: Vec<Line>,
    pub rows: Vec<Line>,
    /// First time Ready; `null` if it never is in any scenario.
    pub first_ready: Option<Window>,
    /// Share of scenarios in which it ever becomes Ready.
    pub ready_share: f64,
    /// Restarts within the horizon.
    pub restarts: Range,
    /// Each restart: when the container ran again, and how the one before ended.
    pub restarts_at: Vec<Restart>,
    /// Percent of the time from apply to the horizon it is Ready.
    pub percent_ready: Range,
}

/// One restart of a pod's container.
#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    pub number: usize,
    /// When the container before ended.
    pub ended: Window,
    /// When the new one started; `None` where it ended so near the horizon that its restart
    /// (after the back-off) came after it in every scenario: the end is still a prediction.
    pub started: Option<Window>,
    /// How the one before ended: `Error`, `Completed`, `OOMKilled`, and why.
    pub reason: String,
    pub share: f64,
}

/// A workload's ReplicaSets over a change.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutReport {
    pub workload: String,
    pub kind: &'static str,
    pub replicas: u32,
    /// The steps, and when they happened.
    pub steps: Vec<StepReport>,
    /// ReplicaSet names, oldest first.
    pub replica_sets: Vec<String>,
    /// When the workload settles after its last step: every pod available (for a Deployment,
    /// on the newest template). Figures below count from the first step to this moment (to the
    /// horizon where it never settles).
    pub settled: Option<Window>,
    /// Share of scenarios in which it settles within the horizon.
    pub settled_share: f64,
    /// Most pods at once (not being deleted).
    pub peak_pods: Range,
    /// Fewest Ready pods at once.
    pub min_ready: Range,
    /// When Ready pods first drop to 0 after the first step, in the scenarios where they do.
    pub zero_ready: Option<Window>,
    /// Share of scenarios with a moment of 0 Ready pods.
    pub zero_ready_share: f64,
    /// How long Ready pods stay at 0, longest stretch.
    pub zero_ready_seconds: Option<Window>,
    /// Ready and total pods per ReplicaSet over time, in the latest scenario.
    pub counts: Vec<PodCounts>,
}

/// A step and when it happened.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub action: String,
    #[serde(flatten)]
    pub at: Window,
}

/// Pods per ReplicaSet at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct PodCounts {
    pub at_s: f64,
    pub sets: Vec<SetCount>,
}

/// One ReplicaSet's pods at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct SetCount {
    pub name: String,
    pub ready: u32,
    pub total: u32,
}

/// Everything `simulate` predicts.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub horizon_s: f64,
    pub scenarios: u64,
    pub pods: Vec<PodReport>,
    pub rollouts: Vec<RolloutReport>,
    /// What the offered load does (`--load`), when one was offered.
    pub load: Option<under_load::LoadReport>,
    pub findings: Vec<Finding>,
    /// Document kinds passed over (NetworkPolicies, ...).
    pub ignored: Vec<String>,
}

/// Every scenario the report covers.
fn scenarios(drawn: u64) -> Vec<Scenario> {
    let mut all = vec![Scenario::Earliest, Scenario::Latest];
    all.extend((0..drawn).map(|i| Scenario::Drawn(mix(0x51_1234, i))));
    all
}

/// Runs every scenario of the input.
pub fn traces(input: &Input, options: &Options) -> Vec<Trace> {
    scenarios(options.scenarios)
        .into_iter()
        .map(|scenario| {
            let cluster = Cluster::new(
                &input.workloads,
                &options.steps,
                scenario,
                &options.overrides,
                options.horizon,
            );
            match &options.load {
                Some(offered) => cluster.with_load(offered),
                None => cluster,
            }
            .run()
        })
        .collect()
}

/// The whole prediction: timelines, rollouts and findings.
pub fn simulate(input: &Input, options: &Options) -> Report {
    let traces = traces(input, options);
    let pods = pod_reports(input, &traces, options.horizon);
    let rollouts = rollout_reports(input, &traces, options);
    let load = options
        .load
        .as_ref()
        .and_then(|offered| under_load::report(input, &traces, offered, options.horizon));
    let findings = findings::all(input, &traces, &pods, load.as_ref(), options);
    Report {
        horizon_s: options.horizon.as_secs_f64(),
        scenarios: traces.len() as u64,
        pods,
        rollouts,
        load,
        findings,
        ignored: input.ignored.clone(),
    }
}

/// What identifies one line across scenarios: which pod, what, and the how-many-th of it.
type Key = (String, String, Option<ProbeKind>, String, usize);

fn pod_reports(input: &Input, traces: &[Trace], horizon: Duration) -> Vec<PodReport> {
    let horizon_ms = horizon.as_millis() as Ms;
    let scenarios = traces.len() as f64;
    let mut names: Vec<String> = Vec::new();
    for trace in traces {
        for p in &trace.pods {
            if !names.contains(&p.pod.name) {
                names.push(p.pod.name.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let runs: Vec<_> = traces
                .iter()
                .filter_map(|t| t.pods.iter().find(|p| p.pod.name == name))
                .collect();
            let first = runs[0];
            let mut lines: BTreeMap<Key, (Vec<Ms>, Vec<u64>, String)> = BTreeMap::new();
            for run in &runs {
                let mut seen: BTreeMap<(String, Option<ProbeKind>, String), usize> =
                    BTreeMap::new();
                for (at, s) in &run.pod.record {
                    let (what, probe, detail, count) = match s {
                        Seen::Row {
                            ready,
                            status,
                            restarts,
                        } => (
                            "Row".to_string(),
                            None,
                            format!("{}/1 {} {restarts}", u8::from(*ready), status.as_str()),
                            None,
                        ),
                        Seen::Event {
                            reason,
                            probe,
                            message,
                            count,
                            ..
                        } => (
                            reason.as_str().to_string(),
                            *probe,
                            message.clone(),
                            Some(*count),
                        ),
                    };
                    // Identity ignores the detail of events whose text carries times.
                    let identity = if what == "Row" {
                        detail.clone()
                    } else {
                        String::new()
                    };
                    let n = seen
                        .entry((what.clone(), probe, identity.clone()))
                        .or_default();
                    let key = (name.clone(), what, probe, identity, *n);
                    *n += 1;
                    let entry = lines
                        .entry(key)
                        .or_insert_with(|| (Vec::new(), Vec::new(), detail.clone()));
                    entry.0.push(*at);
                    if let Some(count) = count {
                        entry.1.push(u64::from(count));
                    }
                }
            }
            let mut all: Vec<Line> = lines
                .into_iter()
                .map(|((_, what, probe, _, _), (times, counts, detail))| Line {
                    event: what,
                    probe: probe.map(ProbeKind::as_str),
                    detail,
                    window: Window::of(&times).unwrap_or(Window {
                        earliest_s: 0.0,
                        latest_s: 0.0,
                    }),
                    share: times.len() as f64 / scenarios,
                    count: (!counts.is_empty()).then(|| Range::of(counts)),
                })
                .collect();
            all.sort_by(|a, b| {
                a.window
                    .earliest_s
                    .total_cmp(&b.window.earliest_s)
                    .then(a.window.latest_s.total_cmp(&b.window.latest_s))
            });
            let (rows, events): (Vec<Line>, Vec<Line>) =
                all.into_iter().partition(|l| l.event == "Row");
            let ready_times: Vec<Ms> = runs
                .iter()
                .filter_map(|r| {
                    r.pod.record.iter().find_map(|(t, s)| match s {
                        Seen::Row { ready: true, .. } => Some(*t),
                        _ => None,
                    })
                })
                .collect();
            let restarts_at = restarts(&runs, scenarios);
            let percent_ready = Range::of(
                runs.iter()
                    .map(|r| ready_percent(&r.pod.record, horizon_ms)),
            );
            let workload = &input.workloads[first.workload];
            let container = workload.template.modelled();
            PodReport {
                name: name.clone(),
                workload: workload.name.clone(),
                image: container.map(|c| c.image.clone()).unwrap_or_default(),
                profile: first.app.clone(),
                seed: first.seed,
                first_ready: Window::of(&ready_times),
                ready_share: ready_times.len() as f64 / scenarios,
                restarts: Range::of(runs.iter().map(|r| u64::from(r.pod.restarts))),
                restarts_at,
                percent_ready,
                events,
                rows,
            }
        })
        .collect()
}

/// Each restart's windows: when the container before ended and the next one started.
fn restarts(runs: &[&cluster::PodTrace], scenarios: f64) -> Vec<Restart> {
    // Each container's end counts for its restart's `ended` window whether or not the next
    // container started by the horizon: a scenario whose last run began late still ends it
    // (a window over only the scenarios that went on to start again would leave those out).
    // An end the pod's deletion made is no restart.
    let mut by_number: BTreeMap<usize, (Vec<Ms>, Vec<Ms>, String)> = BTreeMap::new();
    for run in runs {
        let mut number = 0;
        let mut pending: Option<(Ms, String)> = None;
        let mut commit = |number: usize, (end, why): (Ms, String), start: Option<Ms>| {
            let entry = by_number
                .entry(number)
                .or_insert_with(|| (Vec::new(), Vec::new(), why));
            entry.0.push(end);
            entry.1.extend(start);
        };
        for (at, s) in &run.pod.record {
            match s {
                Seen::Event {
                    reason: Reason::Ended { ending, code },
                    ..
                } => {
                    pending = Some((*at, format!("{}, exit code {code}", ending.as_str())));
                }
                Seen::Event {
                    reason: Reason::Started,
                    ..
                } => {
                    if let Some(ended) = pending.take() {
                        number += 1;
                        commit(number, ended, Some(*at));
                    }
                }
                Seen::Row {
                    status: kubelet::Status::Gone,
                    ..
                } => pending = None,
                _ => {}
            }
        }
        if let Some(ended) = pending.take() {
            commit(number + 1, ended, None);
        }
    }
    by_number
        .into_iter()
        .filter_map(|(number, (ended, started, reason))| {
            Some(Restart {
                number,
                ended: Window::of(&ended)?,
                started: Window::of(&started),
                reason,
                share: started.len() as f64 / scenarios,
            })
        })
        .collect()
}

/// Percent of `[0, horizon)` the pod is Ready.
fn ready_percent(record: &[(Ms, Seen)], horizon: Ms) -> u64 {
    let mut ready_since: Option<Ms> = None;
    let mut total = 0;
    for (at, s) in record {
        if let Seen::Row { ready, .. } = s {
            match (ready_since, *ready) {
                (None, true) => ready_since = Some(*at),
                (Some(since), false) => {
                    total += at.min(&horizon).saturating_sub(since);
                    ready_since = None;
                }
                _ => {}
            }
        }
    }
    if let Some(since) = ready_since {
        total += horizon.saturating_sub(since);
    }
    (total * 100).checked_div(horizon).unwrap_or(0)
}

fn rollout_reports(input: &Input, traces: &[Trace], options: &Options) -> Vec<RolloutReport> {
    let scenarios = traces.len() as f64;
    input
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.kind != Kind::Pod && options.steps.iter().any(|s| s.workload == w.name))
        .map(|(index, workload)| {
            let per_run: Vec<RolloutRun> = traces
                .iter()
                .map(|t| rollout_run(&t.workloads[index]))
                .collect();
            let steps: Vec<StepReport> = options
                .steps
                .iter()
                .filter(|s| s.workload == workload.name)
                .enumerate()
                .filter_map(|(i, step)| {
                    let times: Vec<Ms> = traces
                        .iter()
                        .filter_map(|t| t.workloads[index].steps.get(i).copied())
                        .collect();
                    Some(StepReport {
                        action: describe(&step.action),
                        at: Window::of(&times)?,
                    })
                })
                .collect();
            let latest = &traces[1].workloads[index];
            let settled: Vec<Ms> = traces
                .iter()
                .filter_map(|t| t.workloads[index].settled.map(|(at, _)| at))
                .collect();
            let zero: Vec<Ms> = per_run.iter().filter_map(|r| r.zero_ready).collect();
            let zero_for: Vec<Ms> = per_run.iter().filter_map(|r| r.zero_ready_for).collect();
            RolloutReport {
                workload: workload.name.clone(),
                kind: workload.kind.as_str(),
                replicas: workload.replicas,
                steps,
                replica_sets: latest.sets.clone(),
                settled: Window::of(&settled),
                settled_share: settled.len() as f64 / scenarios,
                peak_pods: Range::of(per_run.iter().map(|r| r.peak)),
                min_ready: Range::of(per_run.iter().map(|r| r.min_ready)),
                zero_ready: Window::of(&zero),
                zero_ready_share: zero.len() as f64 / scenarios,
                zero_ready_seconds: Window::of(&zero_for),
                counts: latest
                    .counts
                    .iter()
                    .map(|(at, counts)| PodCounts {
                        at_s: *at as f64 / 1000.0,
                        sets: latest
                            .sets
                            .iter()
                            .zip(counts)
                            .map(|(name, (ready, total))| SetCount {
                                name: name.clone(),
                                ready: *ready,
                                total: *total,
                            })
                            .collect(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// One scenario's rollout figures, from the first step on.
pub(crate) struct RolloutRun {
    pub(crate) peak: u64,
    pub(crate) min_ready: u64,
    pub(crate) zero_ready: Option<Ms>,
    pub(crate) zero_ready_for: Option<Ms>,
}

pub(crate) fn rollout_run(trace: &cluster::WorkloadTrace) -> RolloutRun {
    let mut run = RolloutRun {
        peak: 0,
        min_ready: u64::MAX,
        zero_ready: None,
        zero_ready_for: None,
    };
    let (Some(&from), Some(&mark)) = (trace.steps.first(), trace.step_marks.first()) else {
        run.min_ready = 0;
        return run;
    };
    let mut zero_since: Option<Ms> = None;
    let end = trace.settled.map_or(trace.counts.len(), |(_, mark)| mark);
    let points: Vec<(Ms, u64, u64)> = trace
        .counts
        .iter()
        .enumerate()
        .take(end)
        // The state the step found counts too.
        .skip(mark.saturating_sub(1))
        .map(|(i, (at, counts))| {
            let ready: u64 = counts.iter().map(|(r, _)| u64::from(*r)).sum();
            let total: u64 = counts.iter().map(|(_, t)| u64::from(*t)).sum();
            (if i + 1 == mark { from } else { *at }, ready, total)
        })
        .collect();
    for (at, ready, total) in points {
        run.peak = run.peak.max(total);
        run.min_ready = run.min_ready.min(ready);
        match (ready, zero_since) {
            (0, None) => {
                zero_since = Some(at);
                run.zero_ready.get_or_insert(at);
            }
            (r, Some(since)) if r > 0 => {
                let stretch = at - since;
                run.zero_ready_for = Some(run.zero_ready_for.map_or(stretch, |s| s.max(stretch)));
                zero_since = None;
            }
            _ => {}
        }
    }
    if run.min_ready == u64::MAX {
        run.min_ready = 0;
    }
    run
}

/// A step as the report names it.
pub fn describe(action: &Action) -> String {
    match action {
        Action::SetImage(tag) => format!("set image {tag}"),
        Action::Scale(n) => format!("scale to {n}"),
        Action::Apply(w) => format!("apply {}", w.origin),
        Action::DeletePod => "delete a pod".into(),
    }
}

/// Where an offered load goes: the workload named (or the input's only one, or those of the
/// input's only Service that selects any), through the first Service that selects it, to the
/// pods of every workload that Service selects.
pub fn offered(
    input: &Input,
    workload: Option<&str>,
    rates: crate::load::Rates,
    client_timeout: Duration,
) -> Result<Offered, String> {
    let target = match workload {
        Some(name) => input
            .workloads
            .iter()
            .find(|w| w.name == name)
            .ok_or_else(|| format!("--workload: no workload named `{name}` in the input"))?,
        None => {
            let serving: Vec<_> = input
                .services
                .iter()
                .filter(|s| input.workloads.iter().any(|w| s.selects(w)))
                .collect();
            match (&input.workloads[..], &serving[..]) {
                ([], _) => {
                    return Err("--load: the input has no Pod, ReplicaSet or Deployment".into());
                }
                ([only], _) => only,
                (_, [service]) => input
                    .workloads
                    .iter()
                    .find(|w| service.selects(w))
                    .expect("the Service selects one"),
                _ => {
                    return Err(
                        "--load: the input has several workloads; name one with --workload".into(),
                    );
                }
            }
        }
    };
    let service = input.services.iter().find(|s| s.selects(target));
    let workloads = match service {
        Some(service) => input
            .workloads
            .iter()
            .filter(|w| service.selects(w))
            .map(|w| w.name.clone())
            .collect(),
        None => vec![target.name.clone()],
    };
    Ok(Offered {
        rates,
        client_timeout,
        service: service.map(|s| s.name.clone()),
        workloads,
    })
}

/// A step as written on the command line: `ACTION[@WHEN]` with ACTION one of
/// `set-image=TAG`, `scale=N`, `delete-pod`, and WHEN `ready` (default), a duration since
/// apply, or `+DURATION` after the step before.
pub fn parse_step(text: &str, workload: &str) -> Result<Step, String> {
    let (action, when) = text.split_once('@').unwrap_or((text, "ready"));
    let when = match when {
        "ready" => When::Ready,
        w => {
            let (relative, d) = w.strip_prefix('+').map_or((false, w), |d| (true, d));
            let d = crate::config::parse_duration(d)?.as_millis() as Ms;
            if relative {
                When::After(d)
            } else {
                When::At(d)
            }
        }
    };
    let action = match action.split_once('=') {
        None if action == "delete-pod" => Action::DeletePod,
        Some(("set-image", tag)) if !tag.is_empty() => Action::SetImage(tag.to_string()),
        Some(("scale", n)) => Action::Scale(
            n.parse()
                .map_err(|_| format!("scale: expected a number of replicas, got `{n}`"))?,
        ),
        _ => {
            return Err(format!(
                "expected set-image=TAG, scale=N or delete-pod, optionally @ready, @DURATION or @+DURATION, got `{text}`"
            ));
        }
    };
    Ok(Step {
        workload: workload.to_string(),
        action,
        when,
    })
}

#[cfg(test)]
mod tests;
