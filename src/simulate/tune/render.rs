//! `tune`'s report: a table for people, JSON for programs, a patch for `kubectl patch`.

use std::fmt::Write;

use serde::Serialize;

use super::edit::{self, Change};
use super::{Judged, Scores, Simulated, StartupBudget, Tuned};

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "never".to_string(), |v| format!("{v:.0} s"))
}

fn window(value: Option<(f64, f64)>) -> String {
    match value {
        None => "-".to_string(),
        Some((a, b)) if (a - b).abs() < 0.05 => format!("{a:.1} s"),
        Some((a, b)) => format!("{a:.1}..{b:.1} s"),
    }
}

fn rate(value: f64) -> String {
    if value == 0.0 {
        "0".to_string()
    } else if value < 0.001 {
        format!("{value:.1e}")
    } else {
        format!("{value:.3}")
    }
}

/// The rows of the current-versus-tuned table: worst case by formula, and in brackets what
/// the simulator shows over its scenarios.
fn rows(j: &Judged) -> Vec<String> {
    let s = &j.scores;
    let sim = j.simulated.clone().unwrap_or_default();
    vec![
        format!("{} ({})", seconds(s.detect_s), window(sim.detect_s)),
        format!("{} ({})", seconds(s.ready_s), window(sim.ready_s)),
        format!("{} ({})", seconds(s.shed_s), window(sim.shed_s)),
        format!("{:.0}", s.probes_per_minute),
        rate(s.false_restarts_per_day),
        match &sim.first_false_kill {
            None => "0".to_string(),
            Some(first) => format!("{} (first: {first})", sim.false_kills),
        },
    ]
}

const LABELS: [&str; 6] = [
    "detect: hang -> kill",
    "ready: loaded -> Ready",
    "shed: unready -> out",
    "probes per minute",
    "false restarts a day",
    "healthy kills (simulated)",
];

/// The table.
pub fn table(tuned: &[Tuned]) -> String {
    let mut out = String::new();
    for t in tuned {
        let _ = writeln!(
            out,
            "{} {} / container {} ({})",
            t.kind, t.workload, t.container, t.app
        );
        let current = rows(&t.current);
        let chosen = t.chosen.as_ref().map(rows);
        let width = current.iter().map(String::len).max().unwrap_or(0).max(7) + 2;
        let _ = writeln!(
            out,
            "  {:<27} {:<width$} tuned",
            "worst case (simulated)", "current"
        );
        for (i, label) in LABELS.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {label:<27} {:<width$} {}",
                current[i],
                chosen.as_ref().map_or("-", |c| c[i].as_str())
            );
        }
        match &t.chosen {
            None => {
                let _ = writeln!(out, "  no setting meets the constraints:");
                for why in &t.unmet {
                    let _ = writeln!(out, "    {why}");
                }
            }
            Some(chosen) => {
                let changes = edit::changes(&t.current.setting, &chosen.setting);
                if changes.is_empty() {
                    let _ = writeln!(out, "  the manifest's setting is already the best found");
                } else {
                    let _ = writeln!(out, "  changes:");
                    for c in &changes {
                        let _ = writeln!(
                            out,
                            "    {}: {} -> {}",
                            c.field,
                            c.from.as_deref().unwrap_or("(none)"),
                            c.to.as_deref().unwrap_or("(none)")
                        );
                    }
                }
                if let Some(b) = &t.startup_budget {
                    let _ = writeln!(
                        out,
                        "  startup budget {:.0} s covers the latest load {:.1} s with {:.1} s to spare (a start up to {:.1} s late allowed)",
                        b.budget_s, b.latest_load_s, b.margin_s, b.start_allowance_s
                    );
                }
                if !t.trades.is_empty() {
                    let _ = writeln!(
                        out,
                        "  trade-offs (each kills no healthy container in the simulation):"
                    );
                    let _ = writeln!(
                        out,
                        "    {:<16} {:>7} {:>7} {:>7} {:>10}  setting",
                        "", "detect", "ready", "shed", "probes/min"
                    );
                    let mut all = vec![("chosen".to_string(), chosen.clone())];
                    all.extend(t.trades.iter().cloned());
                    for (label, j) in all {
                        let s = &j.scores;
                        let _ = writeln!(
                            out,
                            "    {label:<16} {:>7} {:>7} {:>7} {:>10.0}  {}",
                            seconds(s.detect_s),
                            seconds(s.ready_s),
                            seconds(s.shed_s),
                            s.probes_per_minute,
                            short(&j.setting)
                        );
                    }
                }
            }
        }
        out.push('\n');
    }
    out.push_str(
        "worst case: by the kubelet's probe loop; in brackets the earliest..latest the simulator shows over its scenarios ('-': no such event in the timeline)\n",
    );
    out
}

/// A setting in a few words: period/timeout/threshold of each probe.
pub fn short(s: &super::Setting) -> String {
    [
        ("startup", &s.startup),
        ("liveness", &s.liveness),
        ("readiness", &s.readiness),
    ]
    .iter()
    .filter_map(|(name, p)| {
        p.as_ref().map(|p| {
            let how = match &p.handler {
                crate::simulate::manifest::Handler::Tcp { .. } => " tcp".to_string(),
                crate::simulate::manifest::Handler::Http { path, .. } => format!(" {path}"),
                other => format!(" {}", other.describe()),
            };
            format!(
                "{name}{how} {}s/{}s x{}",
                p.period, p.timeout, p.failure_threshold
            )
        })
    })
    .collect::<Vec<_>>()
    .join("; ")
}

#[derive(Serialize)]
struct JsonSetting {
    probes: Vec<JsonProbe>,
    scores: Scores,
    simulated: Option<Simulated>,
}

#[derive(Serialize)]
struct JsonProbe {
    probe: &'static str,
    handler: String,
    #[serde(rename = "initialDelaySeconds")]
    initial_delay: u32,
    #[serde(rename = "periodSeconds")]
    period: u32,
    #[serde(rename = "timeoutSeconds")]
    timeout: u32,
    #[serde(rename = "successThreshold")]
    success_threshold: u32,
    #[serde(rename = "failureThreshold")]
    failure_threshold: u32,
}

fn json_setting(j: &Judged) -> JsonSetting {
    JsonSetting {
        probes: crate::simulate::kubelet::ProbeKind::ALL
            .iter()
            .filter_map(|k| {
                j.setting.get(*k).map(|p| JsonProbe {
                    probe: edit::key(*k),
                    handler: p.handler.describe(),
                    initial_delay: p.initial_delay,
                    period: p.period,
                    timeout: p.timeout,
                    success_threshold: p.success_threshold,
                    failure_threshold: p.failure_threshold,
                })
            })
            .collect(),
        scores: j.scores,
        simulated: j.simulated.clone(),
    }
}

#[derive(Serialize)]
struct JsonTuned {
    workload: String,
    kind: &'static str,
    container: String,
    app: String,
    current: JsonSetting,
    tuned: Option<JsonSetting>,
    changes: Vec<Change>,
    trades: Vec<(String, JsonSetting)>,
    unmet: Vec<String>,
    startup_budget: Option<StartupBudget>,
}

/// The JSON document: one entry per tuned container.
pub fn json(tuned: &[Tuned]) -> String {
    let all: Vec<JsonTuned> = tuned
        .iter()
        .map(|t| JsonTuned {
            workload: t.workload.clone(),
            kind: t.kind,
            container: t.container.clone(),
            app: t.app.clone(),
            current: json_setting(&t.current),
            tuned: t.chosen.as_ref().map(json_setting),
            changes: t
                .chosen
                .as_ref()
                .map(|c| edit::changes(&t.current.setting, &c.setting))
                .unwrap_or_default(),
            trades: t
                .trades
                .iter()
                .map(|(l, j)| (l.clone(), json_setting(j)))
                .collect(),
            unmet: t.unmet.clone(),
            startup_budget: t.startup_budget,
        })
        .collect();
    serde_json::to_string_pretty(&all).expect("plain data serialises") + "\n"
}

/// A strategic merge patch per changed workload, as a YAML stream (each document is JSON,
/// which is YAML) with the `kubectl patch` command that applies it as a comment.
pub fn patch(tuned: &[Tuned]) -> String {
    let mut out = String::new();
    for t in tuned {
        let Some(p) = edit::patch(t) else { continue };
        if !out.is_empty() {
            out.push_str("---\n");
        }
        if t.kind != crate::simulate::manifest::Kind::Pod.as_str() {
            let _ = writeln!(
                out,
                "# kubectl patch {} {} --type strategic --patch-file FILE",
                t.kind.to_lowercase(),
                t.workload
            );
        } else {
            let _ = writeln!(
                out,
                "# a Pod's probes cannot change in place: apply --output yaml to a new Pod (kubectl replace --force -f FILE)"
            );
        }
        out.push_str(&serde_json::to_string_pretty(&p).expect("plain data serialises"));
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("# nothing to change\n{}\n");
    }
    out
}

/// The tuned probes in a sentence, for the fix of a `simulate` finding: each changed probe
/// whole. `None` when no setting meets the constraints or nothing changes.
pub fn suggestion(t: &Tuned) -> Option<String> {
    let chosen = t.chosen.as_ref()?;
    let parts: Vec<String> = crate::simulate::kubelet::ProbeKind::ALL
        .iter()
        .filter_map(|k| {
            let new = chosen.setting.get(*k)?;
            (t.current.setting.get(*k) != Some(new)).then(|| {
                format!(
                    "{} {} periodSeconds {} timeoutSeconds {} failureThreshold {}",
                    edit::key(*k),
                    new.handler.describe(),
                    new.period,
                    new.timeout,
                    new.failure_threshold
                )
            })
        })
        .collect();
    (!parts.is_empty()).then(|| format!("`chaos-inference tune` finds {}", parts.join("; ")))
}
