//! The report as people read it (`kubectl get pods -w` lines with the events of `kubectl
//! describe` between them, then a summary and the findings) and as programs read it (JSON).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::findings::{Rule, Severity};
use super::{Line, Report, Window};

/// Seconds as a short duration: `4s`, `1m27s`, `2.5s`.
fn secs(s: f64) -> String {
    if s < 10.0 && s.fract().abs() > 0.05 {
        return format!("{s:.1}s");
    }
    let total = s.round() as u64;
    match (total / 60, total % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// A window as `21s` or `21s..33s`.
pub fn window(w: &Window) -> String {
    let (a, b) = (secs(w.earliest_s), secs(w.latest_s));
    if a == b { a } else { format!("{a}..{b}") }
}

fn share(line: &Line) -> String {
    if line.share >= 0.999 {
        String::new()
    } else {
        format!("  (in {:.0}% of runs)", line.share * 100.0)
    }
}

/// The table.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} pod(s), {} after apply, {} scenarios; a time a..b is the earliest and latest over them",
        report.pods.len(),
        secs(report.horizon_s),
        report.scenarios
    );
    let _ = writeln!(out);
    if report.pods.is_empty() {
        let _ = writeln!(
            out,
            "no pod is simulated: no container has a timeline (this server's image, the pod template's chaos-inference/timeline.<container> annotation or --app NAME=FILE); the findings below come from the manifests alone"
        );
    }
    let width = report
        .pods
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    if !report.pods.is_empty() {
        let _ = writeln!(
            out,
            "{:<15} {:<width$}  READY  {:<18} RESTARTS",
            "AT", "NAME", "STATUS"
        );
    }
    let mut lines: Vec<(&str, &Line)> = report
        .pods
        .iter()
        .flat_map(|p| {
            p.rows
                .iter()
                .chain(&p.events)
                .map(move |l| (p.name.as_str(), l))
        })
        .filter(|(_, l)| l.event != "Started")
        .collect();
    lines.sort_by(|a, b| {
        a.1.window
            .earliest_s
            .total_cmp(&b.1.window.earliest_s)
            .then((a.1.event != "Row").cmp(&(b.1.event != "Row")))
    });
    for (pod, line) in lines {
        if line.event == "Row" {
            let mut parts = line.detail.split(' ');
            let (ready, status, restarts) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let _ = writeln!(
                out,
                "{:<15} {pod:<width$}  {ready:<5}  {status:<18} {restarts}{}",
                window(&line.window),
                share(line)
            );
        } else {
            let count = match line.count {
                Some(c) if c.max > 1 && c.min == c.max => format!(" (x{})", c.max),
                Some(c) if c.max > 1 => format!(" (x{}..{})", c.min, c.max),
                _ => String::new(),
            };
            let kind = match line.event.as_str() {
                "Unhealthy" | "BackOff" | "Error" | "OOMKilled" => "Warning",
                _ => "Normal",
            };
            let _ = writeln!(
                out,
                "{:<15}   {kind:<7} {:<10} {}{count}{}",
                window(&line.window),
                line.event,
                line.detail,
                share(line)
            );
        }
    }
    let _ = writeln!(out);
    for pod in &report.pods {
        let seed = pod
            .seed
            .map_or("unknown: every draw covered".to_string(), |s| s.to_string());
        let _ = writeln!(
            out,
            "{}  ({}, profile {}, seed {seed})",
            pod.name, pod.image, pod.profile
        );
        let first = match (&pod.first_ready, pod.ready_share) {
            (None, _) => "never".to_string(),
            (Some(w), s) if s < 0.999 => format!("{} (in {:.0}% of runs)", window(w), s * 100.0),
            (Some(w), _) => window(w),
        };
        let _ = writeln!(out, "  first Ready      {first}");
        let restarts = if pod.restarts.min == pod.restarts.max {
            pod.restarts.min.to_string()
        } else {
            format!("{}..{}", pod.restarts.min, pod.restarts.max)
        };
        let _ = writeln!(
            out,
            "  restarts         {restarts} within {}",
            secs(report.horizon_s)
        );
        for restart in pod.restarts_at.iter().take(5) {
            let _ = writeln!(
                out,
                "    #{:<3} ended {} ({}), running again {}",
                restart.number,
                window(&restart.ended),
                restart.reason,
                restart
                    .started
                    .as_ref()
                    .map_or_else(|| "after the horizon".to_string(), window)
            );
        }
        let _ = writeln!(
            out,
            "  time Ready       {}..{}%",
            pod.percent_ready.min, pod.percent_ready.max
        );
    }
    for rollout in &report.rollouts {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} {} ({} replicas)",
            rollout.kind, rollout.workload, rollout.replicas
        );
        for step in &rollout.steps {
            let _ = writeln!(out, "  {:<14} {}", window(&step.at), step.action);
        }
        match &rollout.settled {
            Some(at) if rollout.settled_share >= 0.999 => {
                let _ = writeln!(
                    out,
                    "  {:<14} settled: every pod available on the newest template",
                    window(at)
                );
            }
            Some(at) => {
                let _ = writeln!(
                    out,
                    "  {:<14} settled in {:.0}% of runs",
                    window(at),
                    rollout.settled_share * 100.0
                );
            }
            None => {
                let _ = writeln!(out, "  never settles within the horizon");
            }
        }
        let _ = writeln!(
            out,
            "  peak pods {}..{}, fewest Ready {}..{}{}",
            rollout.peak_pods.min,
            rollout.peak_pods.max,
            rollout.min_ready.min,
            rollout.min_ready.max,
            match (&rollout.zero_ready, &rollout.zero_ready_seconds) {
                (Some(at), Some(for_)) =>
                    format!("; 0 Ready from {} for {}", window(at), window(for_)),
                (Some(at), None) => format!("; 0 Ready from {}", window(at)),
                _ => String::new(),
            }
        );
        // Several changes in the same millisecond read as their last.
        let last_of_each_moment = rollout
            .counts
            .iter()
            .zip(rollout.counts.iter().skip(1).map(Some).chain([None]))
            .filter(|(c, next)| next.is_none_or(|n| n.at_s != c.at_s))
            .map(|(c, _)| c);
        for counts in last_of_each_moment {
            let sets: Vec<String> = counts
                .sets
                .iter()
                .map(|s| format!("{} {}/{}", s.name, s.ready, s.total))
                .collect();
            let _ = writeln!(out, "    {:<10} {}", secs(counts.at_s), sets.join(", "));
        }
    }
    if let Some(load) = &report.load {
        load_table(&mut out, load);
    }
    let _ = writeln!(out);
    if report.findings.is_empty() {
        let _ = writeln!(out, "findings: none");
    }
    for f in &report.findings {
        let _ = writeln!(
            out,
            "{}{} [{}] {}: {}",
            f.severity.as_str(),
            if f.expected { " (expected)" } else { "" },
            f.rule,
            f.workload,
            f.message
        );
        let _ = writeln!(out, "    at {} ({})", f.location, f.location.field);
        let _ = writeln!(out, "    fix: {}", f.fix);
    }
    out
}

/// One GitHub Actions workflow command per finding: `error`, `warning` or `notice` by severity
/// (an expected finding, shown on purpose, is a `notice`), at the finding's file, line and
/// column, titled with its rule, the fix after the message.
pub fn github(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let command = match f.severity {
            _ if f.expected => "notice",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut properties = vec![format!("file={}", escape_property(&f.location.file))];
        if let (Some(line), Some(column)) = (f.location.line, f.location.column) {
            properties.push(format!("line={line}"));
            properties.push(format!("col={column}"));
        }
        let title = if f.expected {
            format!("{} (expected)", f.rule)
        } else {
            f.rule.to_string()
        };
        properties.push(format!("title={}", escape_property(&title)));
        let message = format!(
            "{}: {} ({})\nfix: {}",
            f.workload, f.message, f.location.field, f.fix
        );
        let _ = writeln!(
            out,
            "::{command} {}::{}",
            properties.join(","),
            escape_data(&message)
        );
    }
    out
}

/// A workflow command's message: `%`, CR and LF escaped (as the Actions toolkit's
/// `escapeData`).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: the message's escapes, and `:` and `,`, which end a
/// property (the toolkit's `escapeProperty`).
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The SARIF 2.1.0 log: one run of the tool, every rule described (id, short and full
/// description, help, default level), one result per finding with its level, message, fix
/// and physical location. An expected finding is a result with an in-source suppression (the
/// manifest's annotation), which code scanning shows as dismissed.
pub fn sarif(report: &Report) -> String {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id(),
                "name": rule.name(),
                "shortDescription": {"text": rule.description()},
                "fullDescription": {"text": format!(
                    "{} (predicted by chaos-inference simulate from the manifest's probes, \
                     resources and strategy, and the container's timeline)",
                    rule.description()
                )},
                "help": {"text": format!(
                    "{}. Each result carries the concrete fix for its manifest; docs/simulate.md \
                     lists every rule.",
                    rule.description()
                )},
                "defaultConfiguration": {"level": level(rule.severity())},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut region = serde_json::Map::new();
            if let (Some(line), Some(column)) = (f.location.line, f.location.column) {
                region.insert("startLine".into(), line.into());
                region.insert("startColumn".into(), column.into());
            }
            let mut physical = json!({"artifactLocation": {"uri": artifact_uri(&f.location.file)}});
            if !region.is_empty() {
                physical["region"] = Value::Object(region);
            }
            let mut result = json!({
                "ruleId": f.rule.id(),
                "ruleIndex": Rule::ALL.iter().position(|r| *r == f.rule),
                "level": level(f.severity),
                "message": {"text": format!("{}: {} Fix: {}", f.workload, f.message, f.fix)},
                "locations": [{
                    "physicalLocation": physical,
                    "logicalLocations": [{
                        "fullyQualifiedName": format!("document {}: {}", f.location.document, f.location.field),
                        "kind": "member",
                    }],
                }],
                "properties": {
                    "fix": f.fix,
                    "workload": f.workload,
                    "container": f.container,
                    "document": f.location.document,
                    "field": f.location.field,
                },
            });
            if f.expected {
                result["suppressions"] = json!([{
                    "kind": "inSource",
                    "justification": "named in the manifest's chaos-inference/expected-findings annotation",
                }]);
            }
            result
        })
        .collect();
    let mut driver = json!({
        "name": "chaos-inference",
        "version": env!("CARGO_PKG_VERSION"),
        "semanticVersion": env!("CARGO_PKG_VERSION"),
        "rules": rules,
    });
    if !env!("CARGO_PKG_HOMEPAGE").is_empty() {
        driver["informationUri"] = env!("CARGO_PKG_HOMEPAGE").into();
    }
    let log = json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": driver},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).expect("SARIF serialises") + "\n"
}

/// JUnit XML: a test suite per workload, a test case per rule; a finding at or above
/// `fail_on` fails its case, an expected one skips it, one below `fail_on` passes with the
/// finding in its output. Read by CI test reports (Jenkins, GitLab, GitHub test reporters), and
/// valid against the Surefire/Jenkins xUnit schema (`junit-10.xsd`), which Jenkins' xUnit plugin
/// checks reports against.
pub fn junit(report: &Report, fail_on: Option<Severity>) -> String {
    let mut workloads: Vec<&str> = Vec::new();
    for name in report
        .pods
        .iter()
        .map(|p| p.workload.as_str())
        .chain(report.findings.iter().map(|f| f.workload.as_str()))
    {
        if !workloads.contains(&name) {
            workloads.push(name);
        }
    }
    let mut suites = String::new();
    let (mut all_tests, mut all_failures) = (0, 0);
    for workload in workloads {
        let (mut failures, mut skipped) = (0, 0);
        let mut cases = String::new();
        for rule in Rule::ALL {
            let found: Vec<_> = report
                .findings
                .iter()
                .filter(|f| f.workload == workload && f.rule == *rule)
                .collect();
            let _ = write!(
                cases,
                "    <testcase classname=\"simulate.{}\" name=\"{}\"",
                xml(workload),
                rule.id()
            );
            if found.is_empty() {
                cases.push_str("/>\n");
                continue;
            }
            cases.push_str(">\n");
            for f in found {
                let text = xml(&format!(
                    "{}\nat {} ({})\nfix: {}",
                    f.message, f.location, f.location.field, f.fix
                ));
                if f.expected {
                    skipped += 1;
                    let _ = writeln!(
                        cases,
                        "      <skipped message=\"expected: named in the chaos-inference/expected-findings annotation\"/>"
                    );
                } else if fail_on.is_some_and(|level| f.severity >= level) {
                    failures += 1;
                    let _ = writeln!(
                        cases,
                        "      <failure type=\"{}\" message=\"{}\">{text}</failure>",
                        f.severity.as_str(),
                        xml(&f.message)
                    );
                } else {
                    let _ = writeln!(
                        cases,
                        "      <system-out>{}: {text}</system-out>",
                        f.severity.as_str()
                    );
                }
            }
            cases.push_str("    </testcase>\n");
        }
        let tests = Rule::ALL.len();
        // The workload's manifest, where a finding names it; each finding's line and column
        // are in its text (the Surefire schema Jenkins validates against has no place for them
        // on a test case).
        let file = report
            .findings
            .iter()
            .find(|f| f.workload == workload)
            .map(|f| format!(" file=\"{}\"", xml(&f.location.file)))
            .unwrap_or_default();
        let _ = write!(
            suites,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\"{file}>\n{cases}  </testsuite>\n",
            xml(workload)
        );
        all_tests += tests;
        all_failures += failures;
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"chaos-inference simulate\" tests=\"{all_tests}\" failures=\"{all_failures}\" errors=\"0\">\n{suites}</testsuites>\n"
    )
}

/// Text for an XML attribute or element.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            // Characters XML 1.0 cannot hold at all.
            c if (c as u32) < 0x20 && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// SARIF's level for a severity.
fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A file as a URI reference relative to the working directory (what code scanning resolves
/// against the checkout), with `/` separators and the characters a URI cannot hold escaped.
fn artifact_uri(file: &str) -> String {
    let path = std::path::Path::new(file);
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            path.strip_prefix(cwd)
                .ok()
                .map(std::path::Path::to_path_buf)
        })
        .unwrap_or_else(|| path.to_path_buf());
    let text = relative.to_string_lossy().replace('\\', "/");
    let mut uri = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(byte as char)
            }
            _ => uri.push_str(&format!("%{byte:02X}")),
        }
    }
    uri
}

/// The JSON document.
pub fn json(report: &Report) -> String {
    // Plain data: serialising cannot fail.
    serde_json::to_string_pretty(report).expect("report serialises") + "\n"
}

/// The exit code: 1 when a finding not shown on purpose reaches `fail_on`.
pub fn exit_code(report: &Report, fail_on: Option<Severity>) -> u8 {
    match fail_on {
        Some(level)
            if report
                .findings
                .iter()
                .any(|f| !f.expected && f.severity >= level) =>
        {
            1
        }
        _ => 0,
    }
}

/// Requests per second, as few digits as say it.
fn per_second(x: f64) -> String {
    if (x - x.round()).abs() < 0.05 {
        format!("{:.0}/s", x)
    } else {
        format!("{x:.1}/s")
    }
}

/// A range of counts as `3` or `3..7`.
fn range(r: &super::Range) -> String {
    if r.min == r.max {
        r.min.to_string()
    } else {
        format!("{}..{}", r.min, r.max)
    }
}

/// The load's part of the table: capacity, the spread over time, the storm, the clients.
fn load_table(out: &mut String, load: &super::under_load::LoadReport) {
    let _ = writeln!(out);
    let rates: Vec<String> = load
        .offered
        .iter()
        .filter(|r| r.rate > 0.0 || r.from_s > 0.0)
        .map(|r| {
            if r.from_s == 0.0 {
                per_second(r.rate)
            } else {
                format!("{} from {}", per_second(r.rate), secs(r.from_s))
            }
        })
        .collect();
    let through = load
        .service
        .as_ref()
        .map_or("straight to".to_string(), |s| {
            format!("through Service {s} to")
        });
    let _ = writeln!(
        out,
        "load {} {through} {} ({} pods), clients time out after {}",
        rates.join(", then "),
        load.workloads.join(", "),
        load.replicas,
        secs(load.client_timeout_s)
    );
    match load.capacity_per_pod {
        None => {
            let _ = writeln!(
                out,
                "  capacity         no limit: the container has no overload fault, so its queue never grows"
            );
        }
        Some(one) => {
            let all: Vec<String> = load
                .capacity
                .iter()
                .map(|c| format!("{} at {} Ready", per_second(c.per_second), c.pods))
                .collect();
            let _ = writeln!(
                out,
                "  capacity         {} per pod: {}",
                per_second(one),
                all.join(", ")
            );
        }
    }
    for s in &load.at_full_strength {
        let Some(u) = s.utilisation else { continue };
        let mut line = format!(
            "  at {:<13} utilisation {:.2} with every pod Ready",
            per_second(s.rate),
            u
        );
        if let Some(down) = s.utilisation_one_down {
            let _ = write!(line, ", {down:.2} with one fewer");
        }
        if let Some(w) = s.mean_wait_s {
            let _ = write!(line, "; mean queue wait {:.0}ms", w * 1000.0);
        }
        if let Some(k) = s.liveness_kills_per_hour {
            let _ = write!(line, "; liveness kills from the queue's tail {k:.1e}/h");
        }
        let _ = writeln!(out, "{line}");
    }
    if load.capacity_per_pod.is_some() {
        let _ = writeln!(
            out,
            "  {:<14}   {:>9}  {:>9}  {:>11}  {:>10}   (latest scenario)",
            "AT", "ENDPOINTS", "PER POD", "UTILISATION", "QUEUE WAIT"
        );
        const SHOWN: usize = 24;
        for (i, p) in load.timeline.iter().enumerate() {
            if i == SHOWN {
                let _ = writeln!(
                    out,
                    "  ... {} more changes (--output json has them all)",
                    load.timeline.len() - SHOWN
                );
                break;
            }
            let _ = writeln!(
                out,
                "  {:<14}   {:>9}  {:>9}  {:>11.2}  {:>9.1}s",
                secs(p.at_s),
                p.endpoints,
                per_second(p.per_pod),
                p.utilisation,
                p.wait_s
            );
        }
    }
    let storm = &load.storm;
    if storm.kill_share == 0.0 {
        let _ = writeln!(
            out,
            "  storm            none: no pod is killed because its probes waited in the queue"
        );
    } else {
        let first = storm
            .first_kill
            .as_ref()
            .map_or(String::new(), |w| format!(", the first at {}", window(w)));
        let _ = writeln!(
            out,
            "  storm            {} kill(s) of {} pod(s) caused by the queue{first} (in {:.0}% of runs; cascading to another pod in {:.0}%)",
            range(&storm.kills),
            range(&storm.pods_killed),
            storm.kill_share * 100.0,
            storm.cascade_share * 100.0
        );
    }
    let _ = writeln!(
        out,
        "  restarts         {} within the horizon, every cause",
        range(&storm.restarts)
    );
    if let Some(w) = &storm.no_endpoint_seconds {
        let _ = writeln!(out, "  no pod serving   up to {} at a stretch", window(w));
    }
    let c = &load.clients;
    let _ = writeln!(
        out,
        "  clients          {} sent: served {}, timed out {}, shed {}, refused {}, failed {}",
        c.sent,
        range(&c.served),
        range(&c.timed_out),
        range(&c.shed),
        range(&c.refused),
        range(&c.failed)
    );
}
