//! Writing a tuned setting back: the changed fields, a strategic merge patch for `kubectl
//! patch`, and the input manifests with only those fields changed.
//!
//! The manifests are edited as text, at the lines the YAML parser gives for each field, so
//! everything else (comments, key order, quoting, other documents) stays byte for byte. A value
//! is replaced where it stands; a field the probe lacks is added as the probe's first field; a
//! new probe is added before the container's other probes; a handler of another kind replaces
//! the old handler's lines. Flow-style mappings (`livenessProbe: {httpGet: ...}`) cannot be
//! edited this way: the edit is then refused with the patch as the way out, and every edit is
//! checked by reading the result back.

use serde_json::{Map, Value, json};

use super::{Setting, Tuned};
use crate::simulate::kubelet::ProbeKind;
use crate::simulate::manifest::{self, Handler, Input, Kind, Probe, Workload};

/// A probe's key in a container.
pub fn key(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Startup => "startupProbe",
        ProbeKind::Liveness => "livenessProbe",
        ProbeKind::Readiness => "readinessProbe",
    }
}

/// The key of a handler kind.
fn handler_key(handler: &Handler) -> &'static str {
    match handler {
        Handler::Http { .. } => "httpGet",
        Handler::Tcp { .. } => "tcpSocket",
        Handler::Exec { .. } => "exec",
        Handler::Grpc { .. } => "grpc",
    }
}

/// One changed field of a container, relative to it (`livenessProbe.periodSeconds`); a probe
/// added or removed whole has the probe's key.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    pub field: String,
    /// `None` when the field (or probe) is not in the manifest.
    pub from: Option<String>,
    /// `None` when the probe goes (a startup probe the application does not need: its
    /// liveness check passes while it loads).
    pub to: Option<String>,
}

fn numbers(p: &Probe) -> [(&'static str, u32); 5] {
    [
        ("initialDelaySeconds", p.initial_delay),
        ("periodSeconds", p.period),
        ("timeoutSeconds", p.timeout),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ]
}

/// A probe in one line, as a table shows it.
pub fn describe(p: &Probe) -> String {
    format!(
        "{}, initialDelaySeconds {}, periodSeconds {}, timeoutSeconds {}, successThreshold {}, failureThreshold {}",
        p.handler.describe(),
        p.initial_delay,
        p.period,
        p.timeout,
        p.success_threshold,
        p.failure_threshold
    )
}

/// The fields `tuned` changes in `current`.
pub fn changes(current: &Setting, tuned: &Setting) -> Vec<Change> {
    let mut out = Vec::new();
    for kind in ProbeKind::ALL {
        let k = key(kind);
        match (current.get(kind), tuned.get(kind)) {
            (None, None) => {}
            (Some(c), None) => out.push(Change {
                field: k.to_string(),
                from: Some(describe(c)),
                to: None,
            }),
            (None, Some(t)) => out.push(Change {
                field: k.to_string(),
                from: None,
                to: Some(describe(t)),
            }),
            (Some(c), Some(t)) => {
                if c.handler != t.handler {
                    out.push(Change {
                        field: format!("{k}.{}", handler_key(&t.handler)),
                        from: Some(c.handler.describe()),
                        to: Some(t.handler.describe()),
                    });
                }
                for ((name, from), (_, to)) in numbers(c).into_iter().zip(numbers(t)) {
                    if from != to {
                        out.push(Change {
                            field: format!("{k}.{name}"),
                            from: Some(from.to_string()),
                            to: Some(to.to_string()),
                        });
                    }
                }
            }
        }
    }
    out
}

fn handler_json(handler: &Handler) -> Value {
    match handler {
        Handler::Http { path, port } => json!({"path": path, "port": port}),
        Handler::Tcp { port } => json!({"port": port}),
        Handler::Exec { command } => json!({"command": command}),
        Handler::Grpc { port, service } => json!({"port": port, "service": service}),
    }
}

fn probe_json(p: &Probe, replaced: Option<&Handler>) -> Value {
    let mut m = Map::new();
    if let Some(old) = replaced.filter(|old| handler_key(old) != handler_key(&p.handler)) {
        // A strategic merge keeps the old handler unless told to drop it.
        m.insert(handler_key(old).to_string(), Value::Null);
    }
    m.insert(
        handler_key(&p.handler).to_string(),
        handler_json(&p.handler),
    );
    for (name, value) in numbers(p) {
        m.insert(name.to_string(), json!(value));
    }
    Value::Object(m)
}

/// The strategic merge patch that gives the workload the tuned probes (containers merge by
/// name); `None` when nothing changes.
pub fn patch(tuned: &Tuned) -> Option<Value> {
    let chosen = tuned.chosen.as_ref()?;
    let mut container = Map::new();
    container.insert("name".into(), json!(tuned.container));
    for kind in ProbeKind::ALL {
        match (tuned.current.setting.get(kind), chosen.setting.get(kind)) {
            (current, Some(new)) if current != Some(new) => {
                container.insert(
                    key(kind).into(),
                    probe_json(new, current.map(|c| &c.handler)),
                );
            }
            // A strategic merge deletes a field set to null.
            (Some(_), None) => {
                container.insert(key(kind).into(), Value::Null);
            }
            _ => {}
        }
    }
    if container.len() == 1 {
        return None;
    }
    let containers = json!({"containers": [Value::Object(container)]});
    Some(if tuned.kind == Kind::Pod.as_str() {
        json!({ "spec": containers })
    } else {
        json!({"spec": {"template": {"spec": containers}}})
    })
}

/// A text edit at a line (1-based): lines `first..=last` replaced by `lines` (`last` =
/// `first - 1` inserts before `first`).
#[derive(Debug, Clone)]
struct LineEdit {
    first: usize,
    last: usize,
    lines: Vec<String>,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The last line (1-based) of the block of the key at `line`, `column`: the lines below it
/// indented past the key's column (blank and comment lines inside it too).
fn block_end(lines: &[&str], line: usize, column: usize) -> usize {
    let mut end = line;
    for (i, text) in lines.iter().enumerate().skip(line) {
        if is_blank_or_comment(text) {
            continue;
        }
        if indent_of(text) >= column {
            end = i + 1;
        } else {
            break;
        }
    }
    end
}

/// The lines of `probe` as a block mapping at `indent`, under its key.
fn probe_lines(kind: ProbeKind, p: &Probe, indent: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let mut out = vec![format!("{pad}{}:", key(kind))];
    out.extend(handler_lines(&p.handler, indent + 2));
    for (name, value) in numbers(p) {
        out.push(format!("{pad}  {name}: {value}"));
    }
    out
}

fn handler_lines(handler: &Handler, indent: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let mut out = vec![format!("{pad}{}:", handler_key(handler))];
    match handler {
        Handler::Http { path, port } => {
            out.push(format!("{pad}  path: {path}"));
            out.push(format!("{pad}  port: {port}"));
        }
        Handler::Tcp { port } => out.push(format!("{pad}  port: {port}")),
        Handler::Grpc { port, service } => {
            out.push(format!("{pad}  port: {port}"));
            out.push(format!("{pad}  service: {service:?}"));
        }
        Handler::Exec { command } => {
            out.push(format!("{pad}  command:"));
            for word in command {
                out.push(format!("{pad}    - {word:?}"));
            }
        }
    }
    out
}

/// A scalar value on `line` after the key at `column`: the line with it replaced by `value`.
fn replace_scalar(line: &str, column: usize, value: &str) -> Option<String> {
    let start = column.checked_sub(1)?;
    let rest = line.get(start..)?;
    let colon = rest.find(':')?;
    let after = &rest[colon + 1..];
    let spaces = after.len() - after.trim_start().len();
    let value_start = start + colon + 1 + spaces;
    let tail = &line[value_start..];
    if tail.is_empty() || tail.starts_with(['{', '[', '|', '>', '&', '*', '#']) {
        return None;
    }
    let end = tail.find(" #").map_or(line.len(), |i| value_start + i);
    let old = line[value_start..end].trim_end();
    Some(format!(
        "{}{}{}",
        &line[..value_start],
        value,
        &line[value_start + old.len()..]
    ))
}

/// The edits that give one workload's container the tuned setting.
fn edits(workload: &Workload, tuned: &Tuned, lines: &[&str]) -> Result<Vec<LineEdit>, String> {
    let chosen = tuned.chosen.as_ref().map(|c| &c.setting);
    let Some(chosen) = chosen else {
        return Ok(Vec::new());
    };
    let container = workload
        .template
        .containers
        .iter()
        .find(|c| c.name == tuned.container)
        .ok_or("the container is gone")?;
    let base = &container.field;
    let origin = &workload.origin;
    let at = |path: &str| origin.positions.exact(path);
    let refuse = |path: &str| {
        format!(
            "{}: {path} is not a block mapping this edit can change in place; use --output patch",
            origin
        )
    };
    let mut out = Vec::new();
    for kind in ProbeKind::ALL {
        let k = key(kind);
        let probe_path = format!("{base}.{k}");
        let (current, new) = (tuned.current.setting.get(kind), chosen.get(kind));
        let Some(new) = new else {
            if current.is_some() {
                // The probe goes: its key line and its block.
                let probe_at = at(&probe_path).ok_or_else(|| refuse(&probe_path))?;
                let line = probe_at.line as usize;
                out.push(LineEdit {
                    first: line,
                    last: block_end(lines, line, probe_at.column as usize),
                    lines: Vec::new(),
                });
            }
            continue;
        };
        let Some(current) = current else {
            // A new probe: before the container's first probe, else after its name.
            let anchor = ProbeKind::ALL
                .iter()
                .filter_map(|o| at(&format!("{base}.{}", key(*o))))
                .min()
                .map(|p| (p, true))
                .or_else(|| at(&format!("{base}.name")).map(|p| (p, false)))
                .ok_or_else(|| refuse(base))?;
            let (position, before) = anchor;
            let line = position.line as usize;
            let indent = position.column as usize - 1;
            let first = if before { line } else { line + 1 };
            out.push(LineEdit {
                first,
                last: first - 1,
                lines: probe_lines(kind, new, indent),
            });
            continue;
        };
        if current == new {
            continue;
        }
        let probe_at = at(&probe_path).ok_or_else(|| refuse(&probe_path))?;
        let probe_line = probe_at.line as usize;
        let child_indent = lines
            .get(probe_line)
            .filter(|l| !is_blank_or_comment(l) && indent_of(l) >= probe_at.column as usize)
            .map(|l| indent_of(l))
            .ok_or_else(|| refuse(&probe_path))?;
        if current.handler != new.handler {
            let old_path = format!("{probe_path}.{}", handler_key(&current.handler));
            let old = at(&old_path).ok_or_else(|| refuse(&old_path))?;
            let same_kind = handler_key(&current.handler) == handler_key(&new.handler);
            match (&current.handler, &new.handler) {
                (
                    Handler::Http { port: p1, .. },
                    Handler::Http {
                        path: path2,
                        port: p2,
                    },
                ) if same_kind && p1 == p2 => {
                    let path_at =
                        at(&format!("{old_path}.path")).ok_or_else(|| refuse(&old_path))?;
                    let line = path_at.line as usize;
                    let text = replace_scalar(lines[line - 1], path_at.column as usize, path2)
                        .ok_or_else(|| refuse(&old_path))?;
                    out.push(LineEdit {
                        first: line,
                        last: line,
                        lines: vec![text],
                    });
                }
                _ => {
                    let line = old.line as usize;
                    let end = block_end(lines, line, old.column as usize);
                    out.push(LineEdit {
                        first: line,
                        last: end,
                        lines: handler_lines(&new.handler, old.column as usize - 1),
                    });
                }
            }
        }
        for ((name, from), (_, to)) in numbers(current).into_iter().zip(numbers(new)) {
            if from == to {
                continue;
            }
            let path = format!("{probe_path}.{name}");
            match at(&path) {
                Some(p) => {
                    let line = p.line as usize;
                    let text = replace_scalar(lines[line - 1], p.column as usize, &to.to_string())
                        .ok_or_else(|| refuse(&path))?;
                    out.push(LineEdit {
                        first: line,
                        last: line,
                        lines: vec![text],
                    });
                }
                None => out.push(LineEdit {
                    first: probe_line + 1,
                    last: probe_line,
                    lines: vec![format!("{}{name}: {to}", " ".repeat(child_indent))],
                }),
            }
        }
    }
    Ok(out)
}

/// The input files with every tuned container's fields changed, in the order given, each
/// checked by reading it back. `sources` are the files as read (`-` for standard input).
pub fn yaml(
    sources: &[(String, String)],
    input: &Input,
    tuned: &[Tuned],
    options: &crate::simulate::Options,
) -> Result<String, String> {
    let mut out = String::new();
    for (file, text) in sources {
        let lines: Vec<&str> = text.split('\n').collect();
        let mut all: Vec<LineEdit> = Vec::new();
        for t in tuned {
            let workload = &input.workloads[t.index];
            if &workload.origin.file != file {
                continue;
            }
            all.extend(edits(workload, t, &lines)?);
        }
        // From the bottom up, so that every position still holds; inserts at one line keep
        // their order.
        all.sort_by_key(|e| std::cmp::Reverse((e.first, e.last)));
        let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        for e in all {
            edited.splice(e.first - 1..e.last, e.lines);
        }
        let edited = expectations(file, &edited.join("\n"), input, tuned, options)?;
        check(file, &edited, input, tuned)?;
        if !out.is_empty() && !out.ends_with("\n---\n") {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("---\n");
        }
        out.push_str(&edited);
    }
    Ok(out)
}

/// The `chaos-inference/expected-findings` annotation of each tuned workload of `file`, cut
/// to the findings that still appear with the tuned probes (the line goes when none does), so
/// that the manifest keeps saying what it shows on purpose.
fn expectations(
    file: &str,
    text: &str,
    input: &Input,
    tuned: &[Tuned],
    options: &crate::simulate::Options,
) -> Result<String, String> {
    let field = format!("metadata.annotations.{}", manifest::EXPECTED_FINDINGS);
    if !tuned
        .iter()
        .any(|t| t.chosen.is_some() && input.workloads[t.index].origin.file == file)
    {
        return Ok(text.to_string());
    }
    let mut back = manifest::read(&[(file.to_string(), text.to_string())])
        .map_err(|e| format!("{file}: the edited manifest does not read back: {e}"))?;
    // The timelines the input had, by workload and container.
    for w in &mut back.workloads {
        if let Some(original) = input
            .workloads
            .iter()
            .find(|o| o.name == w.name && o.kind == w.kind && o.origin.file == file)
        {
            for c in &mut w.template.containers {
                if let Some(o) = original
                    .template
                    .containers
                    .iter()
                    .find(|o| o.name == c.name)
                {
                    c.app = o.app.clone();
                }
            }
        }
    }
    let report = crate::simulate::simulate(&back, options);
    let lines: Vec<&str> = text.split('\n').collect();
    // Lines `first..=last` (the value may run on over more-indented lines, as a long plain
    // scalar does) become the one line, or none.
    let mut edits: Vec<(usize, usize, Option<String>)> = Vec::new();
    for t in tuned {
        let original = &input.workloads[t.index];
        if t.chosen.is_none()
            || original.origin.file != file
            || original.expected_findings.is_empty()
        {
            continue;
        }
        let Some(workload) = back
            .workloads
            .iter()
            .find(|w| w.name == original.name && w.kind == original.kind)
        else {
            continue;
        };
        let still: Vec<&String> = workload
            .expected_findings
            .iter()
            .filter(|id| {
                report.findings.iter().any(|f| {
                    f.workload == workload.name
                        && f.rule != crate::simulate::findings::Rule::ExpectedFindingMissing
                        && f.rule.id() == id.as_str()
                })
            })
            .collect();
        if still.len() == workload.expected_findings.len() {
            continue;
        }
        let Some(at) = workload.origin.positions.exact(&field) else {
            continue;
        };
        let line = at.line as usize;
        let last = block_end(&lines, line, at.column as usize);
        if still.is_empty() {
            edits.push((line, last, None));
        } else {
            let value = still
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let text = replace_scalar(lines[line - 1], at.column as usize, &value)
                .ok_or_else(|| format!("{}: cannot edit {field} in place", workload.origin))?;
            edits.push((line, last, Some(text)));
        }
    }
    edits.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for (first, last, text) in edits {
        out.splice(first - 1..last, text);
    }
    Ok(out.join("\n"))
}

/// Reads the edited `text` back: every tuned container of `file` must have its tuned probes.
fn check(file: &str, text: &str, input: &Input, tuned: &[Tuned]) -> Result<(), String> {
    let back = manifest::read(&[(file.to_string(), text.to_string())])
        .map_err(|e| format!("{file}: the edited manifest does not read back: {e}"))?;
    for t in tuned {
        let workload = &input.workloads[t.index];
        let Some(chosen) = &t.chosen else { continue };
        if workload.origin.file != file {
            continue;
        }
        let container = back
            .workloads
            .iter()
            .find(|w| w.name == workload.name && w.kind == workload.kind)
            .and_then(|w| w.template.containers.iter().find(|c| c.name == t.container))
            .ok_or_else(|| format!("{file}: the edited manifest lost {}", workload.name))?;
        let got = Setting {
            startup: container.startup.clone(),
            liveness: container.liveness.clone(),
            readiness: container.readiness.clone(),
        };
        if got != chosen.setting {
            return Err(format!(
                "{}: the edit did not give container {} the tuned probes (a layout this edit does not handle); use --output patch",
                workload.origin, t.container
            ));
        }
    }
    Ok(())
}
