//! Findings under an offered load (`simulate --load`): kills the queue causes, the storm they
//! start, the headroom for one restart, probes that a full queue sheds, and readiness that
//! keeps an overloaded pod in the Service.

use std::collections::BTreeSet;

use super::super::kubelet::Ms;
use super::super::manifest::Handler;
use super::super::timeline::Shape;
use super::super::under_load::LoadReport;
use super::{Context, Rule};
use crate::chaos::duration::show;

/// How many times readiness's budget liveness should tolerate before it kills.
const LIVENESS_OVER_READINESS: u32 = 3;

/// The kills of this workload's pods that the queue caused, per scenario.
fn kills(cx: &Context<'_>) -> Vec<Vec<(Ms, String, bool, bool)>> {
    cx.traces
        .iter()
        .map(|trace| {
            trace
                .load
                .iter()
                .flat_map(|load| load.kills.iter())
                .filter(|k| trace.pods[k.pod].workload == cx.index)
                .map(|k| (k.at, trace.pods[k.pod].pod.name.clone(), k.shed, k.ready))
                .collect()
        })
        .collect()
}

fn seconds_text(ms: Ms) -> String {
    show(std::time::Duration::from_millis(ms))
}

pub(super) fn rules(cx: &mut Context<'_>, report: &LoadReport, shape: &Shape) {
    let container = cx.container;
    let per_scenario = kills(cx);
    let scenarios = per_scenario.len().max(1) as f64;
    let with_kills = per_scenario.iter().filter(|k| !k.is_empty()).count();
    let rate = report.offered.iter().map(|r| r.rate).fold(0.0f64, f64::max);
    let port = shape.http_port;
    let readiness_budget = container
        .readiness
        .as_ref()
        .map(|r| r.period * r.failure_threshold + r.timeout);
    let fast_readiness = "readinessProbe periodSeconds: 2, failureThreshold: 1, timeoutSeconds: 1 (the pod leaves the Service within about 3s and its queue drains)";
    let tolerant_liveness = match &container.liveness {
        Some(l) if !matches!(l.handler, Handler::Tcp { .. }) => {
            // Over the fast readiness's budget (3 s) several times, and more than today.
            let budget = 3 * LIVENESS_OVER_READINESS;
            let threshold = budget.div_ceil(l.period).max(l.failure_threshold + 1);
            format!(
                "a tcpSocket liveness probe on port {port} (a busy server still accepts connections), or livenessProbe failureThreshold: {threshold} (gives up after {}s, over {LIVENESS_OVER_READINESS}x the fast readiness's 3s)",
                threshold * l.period
            )
        }
        _ => format!("a tcpSocket liveness probe on port {port}"),
    };
    if with_kills > 0 {
        let all: Vec<Ms> = per_scenario.iter().flatten().map(|k| k.0).collect();
        let first = all.iter().min().copied().unwrap_or(0);
        let last_first = per_scenario
            .iter()
            .filter_map(|k| k.iter().map(|x| x.0).min())
            .max()
            .unwrap_or(first);
        let most = per_scenario.iter().map(Vec::len).max().unwrap_or(0);
        let timeout = container.liveness.as_ref().map_or(1, |l| l.timeout);
        cx.add(
            Rule::LivenessKillsUnderLoad,
            cx.field("livenessProbe"),
            format!(
                "at {rate}/s the liveness probe waits in the queue behind predictions past its {timeout}s timeout: pods that were only busy are killed ({most} kill(s) at most, first at {}..{}, in {:.0}% of runs)",
                seconds_text(first),
                seconds_text(last_first),
                100.0 * with_kills as f64 / scenarios
            ),
            format!(
                "fail readiness fast and liveness slowly: {fast_readiness}, and {tolerant_liveness}; or have probes skip the queue (overload probes = \"separate\", a probe thread of its own)"
            ),
        );
    }
    let cascades = per_scenario
        .iter()
        .filter(|k| {
            k.iter()
                .map(|x| x.1.as_str())
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .count();
    if cascades > 0 {
        let storm = &report.storm;
        let needed = report
            .capacity_per_pod
            .map(|c| (rate / c).floor() as u32 + 1)
            .unwrap_or(report.replicas);
        let outage = storm.no_endpoint_seconds.map_or(String::new(), |w| {
            format!(
                ", up to {:.0}..{:.0}s with no pod in the Service",
                w.earliest_s, w.latest_s
            )
        });
        cx.add(
            Rule::RestartStorm,
            cx.field("livenessProbe"),
            format!(
                "at {rate}/s the kills cascade: {}..{} liveness kills over {}..{} pods, {}..{} restarts within the horizon{outage} (in {:.0}% of runs)",
                storm.kills.min,
                storm.kills.max,
                storm.pods_killed.min,
                storm.pods_killed.max,
                storm.restarts.min,
                storm.restarts.max,
                100.0 * cascades as f64 / scenarios
            ),
            format!(
                "stop the first kill: {fast_readiness}, and {tolerant_liveness}; shed load with a queue limit; or run {} replicas ({rate}/s needs {needed} at {:.0}/s each, one more for a restart)",
                needed + 1,
                report.capacity_per_pod.unwrap_or(0.0)
            ),
        );
    }
    if per_scenario.iter().flatten().any(|k| k.2) {
        cx.add(
            Rule::ShedProbesKill,
            cx.field(""),
            "the queue is full and sheds probes too (shed-probes = true): the liveness probe is refused at once and the pod killed after failureThreshold tries, faster than a timeout would".into(),
            "keep probes out of shedding (shed-probes = false, the default): a queue limit then bounds the probe's wait instead".into(),
        );
    }
    if container.readiness.is_some() && per_scenario.iter().flatten().any(|k| k.3) {
        let liveness_budget = container
            .liveness
            .as_ref()
            .map_or(0, |l| l.period * l.failure_threshold + l.timeout);
        cx.add(
            Rule::ReadinessNotShedding,
            cx.field("readinessProbe"),
            format!(
                "readiness gives up after {}s and liveness after {liveness_budget}s: an overloaded pod is still in the Service, taking its share, when liveness kills it",
                readiness_budget.unwrap_or(0)
            ),
            format!("fail readiness well before liveness: {fast_readiness}"),
        );
    }
    // Headroom: the load fits every pod but not one fewer (said once, of the first workload).
    if report.workloads.first() == Some(&cx.workload.name)
        && let Some(capacity) = report.capacity_per_pod
        && let Some(step) = report.at_full_strength.iter().find(|s| {
            s.utilisation.is_some_and(|u| u < 1.0)
                && s.utilisation_one_down.is_some_and(|u| u >= 1.0)
        })
    {
        let needed = (step.rate / capacity).floor() as u32 + 1;
        cx.add(
            Rule::NoHeadroomForOneRestart,
            "spec.replicas".to_string(),
            format!(
                "{}/s fits {} pods ({:.0}/s) but not {} ({:.0}/s): one restart, deletion or rollout's unavailable pod overloads the rest",
                step.rate,
                report.replicas,
                capacity * f64::from(report.replicas),
                report.replicas.saturating_sub(1),
                capacity * f64::from(report.replicas.saturating_sub(1))
            ),
            format!(
                "run {} replicas ({needed} serve {}/s, one more for a restart), or keep the rate below {:.0}/s",
                needed + 1,
                step.rate,
                capacity * f64::from(report.replicas.saturating_sub(1))
            ),
        );
    }
}
