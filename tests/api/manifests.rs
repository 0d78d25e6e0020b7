//! `chaos-inference simulate` from outside, as a user runs it: every shipped manifest passes its
//! own lint, the JSON carries what docs/simulate.md promises, the exit codes, standard input.
//! (scripts/check-simulate.sh does the same for the rendered overlays and chart.)

use serde_json::Value;

use crate::helpers::{run_cli, run_cli_with_stdin};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn manifest(name: &str) -> String {
    format!("{ROOT}/manifests/{name}")
}

fn simulate_json(args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["simulate", "--output", "json", "--scenarios", "6"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run_cli(&all, &[]);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (code, json)
}

#[test]
fn every_shipped_manifest_passes_its_own_lint() {
    let mut checked = 0;
    for entry in std::fs::read_dir(format!("{ROOT}/manifests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let file = path.to_str().unwrap();
            let (code, stdout, stderr) = run_cli(
                &["simulate", "--fail-on", "warning", "--scenarios", "6", file],
                &[],
            );
            assert_eq!(code, Some(0), "{file}:\n{stdout}{stderr}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} manifests");
}

#[test]
fn the_json_carries_events_windows_restarts_and_findings() {
    let (code, report) = simulate_json(&[&manifest("online-inference-pod-probes.yaml")]);
    assert_eq!(code, Some(0));
    let pod = &report["pods"][0];
    assert_eq!(pod["name"], "online-inference-probes");
    assert_eq!(pod["profile"], "v2", "the v2 tag picks the v2 profile");
    let first_ready = &pod["first_ready"];
    let (earliest, latest) = (
        first_ready["earliest_s"].as_f64().unwrap(),
        first_ready["latest_s"].as_f64().unwrap(),
    );
    assert!(
        20.0 < earliest && earliest <= latest && latest < 40.0,
        "{first_ready}"
    );
    let events = pod["events"].as_array().unwrap();
    assert!(events.iter().all(|e| e["event"].is_string()
        && e["earliest_s"].is_number()
        && e["latest_s"].is_number()
        && e["detail"].is_string()));
    let crash = events
        .iter()
        .find(|e| e["event"] == "Error")
        .expect("the v2 crash");
    assert!(
        crash["detail"]
            .as_str()
            .unwrap()
            .contains("v2: crash (exit code 1)"),
        "{crash}"
    );
    assert!(
        pod["restarts"]["min"].as_u64().unwrap() >= 1,
        "{}",
        pod["restarts"]
    );
    assert_eq!(report["findings"], serde_json::json!([]));

    let (code, report) =
        simulate_json(&[&manifest("online-inference-pod-without-startup-probe.yaml")]);
    assert_eq!(code, Some(0), "the finding is expected by the manifest");
    let finding = &report["findings"][0];
    assert_eq!(finding["rule"], "liveness-kills-during-load");
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["container"], "chaos-inference");
    assert_eq!(finding["expected"], true);
    assert!(finding["message"].as_str().unwrap().contains("liveness"));
    assert_eq!(report["pods"][0]["first_ready"], Value::Null);
}

#[test]
fn exit_codes_say_clean_findings_or_unreadable_input() {
    let dir = tempfile::tempdir().unwrap();
    // The teaching variant without its annotation: an error finding, exit 1.
    let text = std::fs::read_to_string(manifest("online-inference-pod-without-startup-probe.yaml"))
        .unwrap();
    let bare: String = text
        .lines()
        .filter(|l| !l.contains("chaos-inference/expected-findings"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.path().join("bare.yaml");
    std::fs::write(&path, bare).unwrap();
    let (code, stdout, _) = run_cli(
        &["simulate", "--scenarios", "4", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("error [liveness-kills-during-load]"),
        "{stdout}"
    );
    let (code, ..) = run_cli(
        &[
            "simulate",
            "--scenarios",
            "4",
            "--fail-on",
            "never",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0));
    // Unreadable input: exit 2, one line naming the file and the field.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: chaos-inference:v1\n    livenessProbe: {periodSeconds: 0, httpGet: {path: /livez, port: 8000}}\n",
    )
    .unwrap();
    let (code, _, stderr) = run_cli(&["simulate", broken.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "broken.yaml:8:21: document 1: spec.containers[0].livenessProbe.periodSeconds: expected 1 or more, got 0"
        ),
        "{stderr}"
    );
    // A value of the wrong type: the field's path and line, not only serde's complaint.
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: chaos-inference:v1\n    livenessProbe:\n      httpGet: {path: /livez, port: 8000}\n      periodSeconds: \"often\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run_cli(&["simulate", broken.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(
            "broken.yaml:10:7: document 1: spec.containers[0].livenessProbe.periodSeconds: invalid type: string \"often\", expected i32"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = run_cli(
        &["simulate", "--time-scale", "0", broken.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--time-scale"), "{stderr}");
    let (code, _, stderr) = run_cli(&["simulate", "/nonexistent.yaml"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("/nonexistent.yaml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn standard_input_reads_what_kubectl_kustomize_or_helm_template_print() {
    let text = std::fs::read_to_string(manifest("online-inference-deployment-rolling-update.yaml"))
        .unwrap();
    let (code, stdout) = simulate_stdin(
        &["--output", "json", "--scenarios", "4", "--set-image", "v2"],
        &text,
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        code,
        Some(0),
        "the zero-ready rollout is expected by the manifest"
    );
    let rollout = &report["rollouts"][0];
    assert_eq!(
        rollout["min_ready"]["max"], 0,
        "maxUnavailable 100%: a moment with nothing Ready"
    );
    assert_eq!(rollout["peak_pods"]["max"], 3);
    assert!(rollout["counts"].as_array().unwrap().len() > 3);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "rollout-zero-ready")
    );
}

/// A file without workloads (a Service, a NetworkPolicy) is still a JSON report, with no pods
/// and the kinds passed over (a Service is read: a load enters through it), so tools that read
/// `--output json` need no special case.
#[test]
fn a_file_without_workloads_is_an_empty_json_report() {
    let (code, json) = simulate_json(&[
        &manifest("online-inference-service.yaml"),
        &manifest("online-inference-networkpolicy.yaml"),
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(json["pods"], serde_json::json!([]));
    assert_eq!(json["ignored"], serde_json::json!(["NetworkPolicy"]));
    assert_eq!(json["load"], serde_json::Value::Null);
    let (code, stdout, _) = run_cli(
        &["simulate", &manifest("online-inference-service.yaml")],
        &[],
    );
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("no Pod, ReplicaSet or Deployment"),
        "{stdout}"
    );
}

/// `simulate` with `text` on standard input: exit code and standard output.
fn simulate_stdin(args: &[&str], text: &str) -> (Option<i32>, String) {
    let args: Vec<&str> = ["simulate"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["-"])
        .collect();
    let (code, stdout, _) = run_cli_with_stdin(&args, text);
    (code, stdout)
}

/// The 1-based line of the first line of `text` that holds `needle`, and its column.
fn line_of(text: &str, needle: &str) -> (usize, usize) {
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
        .unwrap()
}

#[test]
fn findings_point_at_the_file_line_and_field_in_every_format() {
    let file = manifest("online-inference-pod-without-startup-probe.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let (line, col) = line_of(&text, "livenessProbe:");
    // The table says where.
    let (code, stdout, _) = run_cli(&["simulate", "--scenarios", "4", &file], &[]);
    assert_eq!(code, Some(0), "the finding is expected: {stdout}");
    assert!(
        stdout.contains(&format!(
            "at {file}:{line}:{col} (spec.containers[0].livenessProbe)"
        )),
        "{stdout}"
    );
    // GitHub: an expected finding is a notice.
    let (code, stdout, _) = run_cli(
        &["simulate", "--output", "github", "--scenarios", "4", &file],
        &[],
    );
    assert_eq!(code, Some(0));
    let want = format!(
        "::notice file={},line={line},col={col},title=liveness-kills-during-load (expected)::online-inference-no-startup-probe: ",
        file.replace(':', "%3A").replace(',', "%2C")
    );
    assert!(stdout.starts_with(&want), "{stdout}");
    assert!(stdout.contains("%0Afix: add a startupProbe"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    // Without the annotation, from standard input: an error at `-`, and exit code 1 as in
    // every format.
    let unexpected: String = text
        .lines()
        .filter(|l| !l.contains("chaos-inference/expected-findings"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (line, col) = line_of(&unexpected, "livenessProbe:");
    let (code, stdout) = simulate_stdin(&["--output", "github", "--scenarios", "4"], &unexpected);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "::error file=-,line={line},col={col},title=liveness-kills-during-load::"
        )),
        "{stdout}"
    );
    let (code, stdout) = simulate_stdin(&["--output", "json", "--scenarios", "4"], &unexpected);
    assert_eq!(code, Some(1));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let location = &report["findings"][0]["location"];
    assert_eq!(location["file"], "-");
    assert_eq!(location["document"], 1);
    assert_eq!(location["field"], "spec.containers[0].livenessProbe");
    assert_eq!(
        (location["line"].as_u64(), location["column"].as_u64()),
        (Some(line as u64), Some(col as u64))
    );
}

/// `simulate --load` from outside, on the shipped pair: the storm and its fix, the table and the
/// JSON, and the flags' errors.
#[test]
fn a_load_predicts_the_storm_of_one_manifest_and_none_for_its_fix() {
    let storm = manifest("online-inference-deployment-overload.yaml");
    let fixed = manifest("online-inference-deployment-overload-fixed.yaml");
    let load = [
        "--load",
        "100",
        "--step",
        "delete-pod@60s",
        "--horizon",
        "4m",
    ];
    let (code, json) = simulate_json(&[&[storm.as_str()][..], &load[..]].concat());
    assert_eq!(code, Some(0), "every finding is expected by the manifest");
    let report = &json["load"];
    assert_eq!(report["service"], "online-inference-overload");
    assert_eq!(report["capacity_per_pod"], 40.0);
    assert!(
        report["storm"]["kills"]["min"].as_u64().unwrap() >= 2,
        "{report}"
    );
    assert_eq!(report["storm"]["cascade_share"], 1.0);
    // Offered from apply, the first pod Ready takes it all: the storm starts with the start-up.
    // Offered once all are Ready (45 s), it starts with the deletion.
    let later = [
        "--load",
        "100@45s",
        "--step",
        "delete-pod@75s",
        "--horizon",
        "4m",
    ];
    let (_, after_ready) = simulate_json(&[&[storm.as_str()][..], &later[..]].concat());
    let first = &after_ready["load"]["storm"]["first_kill"];
    assert!(first["earliest_s"].as_f64().unwrap() > 75.0, "{first}");
    let rules: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"restart-storm"), "{rules:?}");
    // The table says it in words.
    let mut args = vec!["simulate", storm.as_str()];
    args.extend(load);
    let (_, table, _) = run_cli(&args, &[]);
    assert!(
        table.contains("load 100/s through Service online-inference-overload"),
        "{table}"
    );
    assert!(
        table.contains("capacity         40/s per pod: 120/s at 3 Ready"),
        "{table}"
    );
    assert!(table.contains("[restart-storm]"), "{table}");

    let (code, json) = simulate_json(&[&[fixed.as_str()][..], &load[..]].concat());
    assert_eq!(code, Some(0));
    assert_eq!(json["load"]["storm"]["kills"]["max"], 0);
    assert_eq!(json["load"]["storm"]["restarts"]["max"], 0);

    // Without a load, the storm manifest's load findings are not missing: they need one.
    let (code, json) = simulate_json(&[storm.as_str()]);
    assert_eq!(code, Some(0), "{}", json["findings"]);
    assert_eq!(json["load"], Value::Null);
}

#[test]
fn load_flags_are_checked() {
    let storm = manifest("online-inference-deployment-overload.yaml");
    for (args, needle) in [
        (vec!["--load", "0"], "--load"),
        (vec!["--load", "fast"], "--load"),
        (
            vec!["--load", "10", "--load", "20"],
            "--load: two rates from 0s",
        ),
        (
            vec!["--load", "10", "--load-timeout", "soon"],
            "--load-timeout",
        ),
        (
            vec!["--load", "10", "--workload", "nope"],
            "--workload: no workload named `nope`",
        ),
        (vec!["--step", "delete-pods"], "delete-pod"),
    ] {
        let mut all = vec!["simulate", storm.as_str()];
        all.extend(args.iter().copied());
        let (code, _, stderr) = run_cli(&all, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
