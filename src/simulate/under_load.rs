//! The report of an offered load (`simulate --load`): what the pods can serve, how the load
//! spread over them, the restart storm if one comes, and what the clients got, each over every
//! scenario.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::cluster::{LoadTrace, Trace};
use super::kubelet::Ms;
use super::manifest::Input;
use super::traffic::{Capacity, Offered, Steady, kills_per_hour, split_scv};
use super::{Range, Window};

/// What an offered load does.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The Service it enters through (`null`: straight to the workload).
    pub service: Option<String>,
    pub workloads: Vec<String>,
    /// The offered rate, in steps.
    pub offered: Vec<RateReport>,
    pub client_timeout_s: f64,
    /// Pods the workloads ask for, in all.
    pub replicas: u32,
    /// Predictions per second one pod serves (`null`: no limit, the container has no
    /// `overload` fault).
    pub capacity_per_pod: Option<f64>,
    /// What N Ready pods serve, from all of them down to one.
    pub capacity: Vec<CapacityAt>,
    /// Each rate step at full strength (every pod Ready).
    pub at_full_strength: Vec<Strength>,
    /// How the load spread over time, in the latest scenario.
    pub timeline: Vec<LoadPoint>,
    pub storm: Storm,
    /// What the clients got over the horizon.
    pub clients: Clients,
}

/// One step of the offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct RateReport {
    pub from_s: f64,
    pub rate: f64,
}

/// What N Ready pods serve.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityAt {
    pub pods: u32,
    pub per_second: f64,
}

/// A rate step with every pod Ready.
#[derive(Debug, Clone, Serialize)]
pub struct Strength {
    pub rate: f64,
    /// Offered over what the pods serve.
    pub utilisation: Option<f64>,
    /// The same with one pod fewer (a restart, a deletion, a rollout's unavailable pod).
    pub utilisation_one_down: Option<f64>,
    /// Below saturation, the mean wait in a pod's queue, seconds.
    pub mean_wait_s: Option<f64>,
    /// Below saturation, expected liveness kills per hour from the queue's tail alone (a
    /// probe waiting past its timeout `failureThreshold` times in a row).
    pub liveness_kills_per_hour: Option<f64>,
}

/// The load at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct LoadPoint {
    pub at_s: f64,
    pub rate: f64,
    /// Pods in the endpoints.
    pub endpoints: u32,
    /// Arrivals per second at each.
    pub per_pod: f64,
    /// The highest utilisation among them.
    pub utilisation: f64,
    /// The longest wait in a queue (the fluid part), seconds.
    pub wait_s: f64,
}

/// The kills the queue causes, and what follows them.
#[derive(Debug, Clone, Serialize)]
pub struct Storm {
    /// Liveness and startup kills caused by the queue (a probe that waited past its timeout,
    /// or was shed), within the horizon.
    pub kills: Range,
    /// How many different pods they hit.
    pub pods_killed: Range,
    /// Share of scenarios with such a kill.
    pub kill_share: f64,
    /// Share of scenarios where the kills cascade to another pod.
    pub cascade_share: f64,
    /// The first kill.
    pub first_kill: Option<Window>,
    /// Restarts of the workloads' pods within the horizon, whatever their cause.
    pub restarts: Range,
    /// The longest stretch with no pod in the endpoints after the first was, seconds.
    pub no_endpoint_seconds: Option<Window>,
}

/// What the clients got: expected counts, over the scenarios.
#[derive(Debug, Clone, Serialize)]
pub struct Clients {
    pub sent: u64,
    pub served: Range,
    pub timed_out: Range,
    pub shed: Range,
    pub refused: Range,
    pub failed: Range,
}

/// The report of the load, when one was offered.
pub fn report(
    input: &Input,
    traces: &[Trace],
    offered: &Offered,
    horizon: Duration,
) -> Option<LoadReport> {
    let loads: Vec<(&Trace, &LoadTrace)> = traces
        .iter()
        .filter_map(|t| t.load.as_ref().map(|l| (t, l)))
        .collect();
    if loads.is_empty() {
        return None;
    }
    let members: Vec<usize> = input
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| offered.workloads.contains(&w.name))
        .map(|(i, _)| i)
        .collect();
    let replicas: u32 = members.iter().map(|&i| input.workloads[i].replicas).sum();
    // The capacity of a pod once loaded (the first pod of the first scenario that has one).
    let life = traces
        .iter()
        .flat_map(|t| t.pods.iter())
        .find(|p| members.contains(&p.workload))
        .map(|p| p.life.clone());
    let capacity: Option<Capacity> = life.as_ref().and_then(|l| {
        l.capacity_at(l.loaded.min(Duration::from_secs(365 * 86_400)))
            .copied()
    });
    let liveness = members.iter().find_map(|&i| {
        input.workloads[i]
            .template
            .modelled()
            .and_then(|c| c.liveness.clone())
    });
    let at_full_strength = offered
        .rates
        .steps()
        .iter()
        .filter(|step| step.rate > 0.0)
        .map(|step| {
            let per = |pods: u32| capacity.map(|c| step.rate / (c.per_second() * f64::from(pods)));
            let steady = capacity.and_then(|c| {
                Steady::of(
                    step.rate / f64::from(replicas.max(1)),
                    &c,
                    split_scv(replicas as usize),
                )
                .map(|s| (c, s))
            });
            let kills = match (&steady, &liveness, &life) {
                (Some((c, s)), Some(probe), Some(life))
                    if c.probes_queued && life.waits(&probe.handler) =>
                {
                    let p = s.exceeds(f64::from(probe.timeout) - c.probe_s);
                    Some(kills_per_hour(
                        p,
                        probe.failure_threshold,
                        f64::from(probe.period),
                    ))
                }
                _ => None,
            };
            Strength {
                rate: step.rate,
                utilisation: per(replicas.max(1)),
                utilisation_one_down: (replicas > 1).then(|| per(replicas - 1)).flatten(),
                mean_wait_s: steady.map(|(_, s)| s.mean_wait),
                liveness_kills_per_hour: kills,
            }
        })
        .collect();
    let scenarios = loads.len() as f64;
    let mut kills = Vec::new();
    let mut pods_killed = Vec::new();
    let mut first = Vec::new();
    let mut cascades = 0;
    let mut restarts = Vec::new();
    let mut no_endpoint = Vec::new();
    for (trace, load) in &loads {
        let killed: BTreeSet<&str> = load
            .kills
            .iter()
            .map(|k| trace.pods[k.pod].pod.name.as_str())
            .collect();
        kills.push(load.kills.len() as u64);
        pods_killed.push(killed.len() as u64);
        if killed.len() > 1 {
            cascades += 1;
        }
        first.extend(load.kills.iter().map(|k| k.at).min());
        restarts.push(
            trace
                .pods
                .iter()
                .filter(|p| members.contains(&p.workload))
                .map(|p| u64::from(p.pod.restarts))
                .sum(),
        );
        no_endpoint.extend(longest_without_endpoint(load, horizon.as_millis() as Ms));
    }
    let count =
        |f: fn(&LoadTrace) -> f64| Range::of(loads.iter().map(|(_, l)| f(l).round() as u64));
    let latest = loads.get(1).or(loads.first()).map(|(_, l)| *l);
    Some(LoadReport {
        service: offered.service.clone(),
        workloads: offered.workloads.clone(),
        offered: offered
            .rates
            .steps()
            .iter()
            .map(|s| RateReport {
                from_s: s.from.as_secs_f64(),
                rate: s.rate,
            })
            .collect(),
        client_timeout_s: offered.client_timeout.as_secs_f64(),
        replicas,
        capacity_per_pod: capacity.map(|c| c.per_second()),
        capacity: capacity
            .map(|c| {
                (1..=replicas.max(1))
                    .rev()
                    .map(|pods| CapacityAt {
                        pods,
                        per_second: c.per_second() * f64::from(pods),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        at_full_strength,
        timeline: latest
            .map(|l| {
                l.samples
                    .iter()
                    .map(|s| LoadPoint {
                        at_s: s.at as f64 / 1000.0,
                        rate: s.rate,
                        endpoints: s.endpoints,
                        per_pod: s.per_pod,
                        utilisation: s.utilisation,
                        wait_s: s.wait_s,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        storm: Storm {
            kills: Range::of(kills.iter().copied()),
            pods_killed: Range::of(pods_killed.iter().copied()),
            kill_share: kills.iter().filter(|k| **k > 0).count() as f64 / scenarios,
            cascade_share: f64::from(cascades) / scenarios,
            first_kill: Window::of(&first),
            restarts: Range::of(restarts),
            no_endpoint_seconds: Window::of(&no_endpoint),
        },
        clients: Clients {
            sent: count(|l| l.outcomes.sent()).max,
            served: count(|l| l.outcomes.served),
            timed_out: count(|l| l.outcomes.timed_out),
            shed: count(|l| l.outcomes.shed),
            refused: count(|l| l.outcomes.refused),
            failed: count(|l| l.outcomes.failed),
        },
    })
}

/// The longest stretch with no endpoint, after the first time there was one; a stretch still
/// open at the last sample counts to it.
fn longest_without_endpoint(load: &LoadTrace, until: Ms) -> Option<Ms> {
    let mut seen_one = false;
    let mut since: Option<Ms> = None;
    let mut longest: Option<Ms> = None;
    for s in &load.samples {
        match (s.endpoints, since) {
            (0, None) if seen_one => since = Some(s.at),
            (n, Some(start)) if n > 0 => {
                longest = Some(longest.unwrap_or(0).max(s.at - start));
                since = None;
            }
            _ => {}
        }
        seen_one |= s.endpoints > 0;
    }
    if let Some(start) = since {
        longest = Some(longest.unwrap_or(0).max(until.saturating_sub(start)));
    }
    longest
}
