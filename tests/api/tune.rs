//! `chaos-inference tune` from outside, as a user runs it: the shipped lesson manifest gets a
//! startup probe and no kill, its YAML goes back into `simulate` clean with everything else
//! kept, the patch and JSON carry the tuned probes, and the exit codes.

use serde_json::Value;

use crate::helpers::{run_cli, run_cli_with_stdin};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn manifest(name: &str) -> String {
    format!("{ROOT}/manifests/{name}")
}

#[test]
fn the_pod_without_startup_probe_gets_one_and_no_kill() {
    let file = manifest("online-inference-pod-without-startup-probe.yaml");
    let (code, stdout, stderr) = run_cli(&["tune", "--scenarios", "8", &file], &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("startupProbe: (none) -> http-get :8000/startupz"),
        "{stdout}"
    );
    let kills = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("healthy kills"))
        .unwrap();
    // Current: killed during the load; tuned: none.
    assert!(kills.contains("(first: liveness probe"), "{kills}");
    assert!(kills.trim_end().ends_with(" 0"), "{kills}");
    assert!(stdout.contains("startup budget"), "{stdout}");
}

#[test]
fn the_tuned_yaml_simulates_clean_and_keeps_everything_else() {
    let file = manifest("online-inference-pod-without-startup-probe.yaml");
    let (code, yaml, stderr) = run_cli(
        &["tune", "--scenarios", "8", "--output", "yaml", &file],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let original = std::fs::read_to_string(&file).unwrap();
    // Every comment and every line outside the probes and the expectations is still there,
    // in order.
    let kept: Vec<&str> = original
        .lines()
        .filter(|l| {
            !l.contains("Seconds:")
                && !l.contains("Threshold:")
                && !l.contains("chaos-inference/expected-findings")
        })
        .collect();
    let mut out = yaml.lines();
    for line in &kept {
        assert!(out.any(|l| l == *line), "lost or moved: {line:?}\n{yaml}");
    }
    let (code, report, stderr) = run_cli_with_stdin(&["simulate", "--output", "json", "-"], &yaml);
    assert_eq!(code, Some(0), "{report}{stderr}");
    let report: Value = serde_json::from_str(&report).unwrap();
    let errors: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(report["pods"][0]["restarts"]["max"], 0);
}

#[test]
fn json_and_patch_carry_the_tuned_probes() {
    let file = manifest("online-inference-deployment-overload.yaml");
    let service = manifest("online-inference-service.yaml");
    let args = ["tune", "--scenarios", "6", "--load", "100", &file, &service];
    let (code, stdout, stderr) = run_cli(&[&args[..], &["--output", "json"]].concat(), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let all: Value = serde_json::from_str(&stdout).unwrap();
    let overload = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["workload"] == "online-inference-overload")
        .unwrap();
    assert!(
        overload["current"]["simulated"]["false_kills"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(overload["tuned"]["simulated"]["false_kills"], 0);
    let probe = |name: &str| {
        overload["tuned"]["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["probe"] == name)
            .unwrap()
            .clone()
    };
    let liveness = probe("livenessProbe");
    // Readiness no longer calls the liveness check /healthz: it sheds an overloaded pod.
    assert_eq!(probe("readinessProbe")["handler"], "http-get :8000/readyz");

    let (code, patch, stderr) = run_cli(&[&args[..], &["--output", "patch"]].concat(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        patch.contains("# kubectl patch deployment online-inference-overload"),
        "{patch}"
    );
    let json_part: String = patch.lines().filter(|l| !l.starts_with('#')).collect();
    let patch: Value = serde_json::from_str(&json_part).unwrap();
    let container = &patch["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "chaos-inference");
    assert_eq!(
        container["livenessProbe"]["periodSeconds"],
        liveness["periodSeconds"]
    );
    assert_eq!(
        container["livenessProbe"]["failureThreshold"],
        liveness["failureThreshold"]
    );
}

/// A startup probe the application does not need (its liveness check passes while it loads)
/// goes: from the table, the patch (null, which a strategic merge deletes) and the YAML, whose
/// expectations annotation, folded over two lines as a renderer writes it, is cut whole.
#[test]
fn an_unneeded_startup_probe_is_removed_from_the_table_the_patch_and_the_yaml() {
    let original = std::fs::read_to_string(manifest("online-inference-deployment-overload.yaml"))
        .unwrap()
        .replace(
            "expected-findings: liveness-same-as-readiness, liveness-kills-under-load, ",
            "expected-findings: liveness-same-as-readiness, liveness-kills-under-load,\n      ",
        );
    assert!(original.contains("under-load,\n      restart-storm"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("overload.yaml");
    std::fs::write(&file, &original).unwrap();
    let file = file.to_str().unwrap();
    let args = ["tune", "--scenarios", "6", "--load", "100", file];
    let (code, table, stderr) = run_cli(&args, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        table.contains("startupProbe: http-get :8000/startupz") && table.contains("-> (none)"),
        "{table}"
    );
    let (code, patch, stderr) = run_cli(&[&args[..], &["--output", "patch"]].concat(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let json_part: String = patch.lines().filter(|l| !l.starts_with('#')).collect();
    let patch: Value = serde_json::from_str(&json_part).unwrap();
    let container = patch["spec"]["template"]["spec"]["containers"][0]
        .as_object()
        .unwrap();
    assert_eq!(
        container.get("startupProbe"),
        Some(&Value::Null),
        "{json_part}"
    );
    let (code, yaml, stderr) = run_cli(&[&args[..], &["--output", "yaml"]].concat(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !yaml.contains("startupProbe") && !yaml.contains("/startupz"),
        "{yaml}"
    );
    assert!(!yaml.contains("      restart-storm"), "{yaml}");
    // What the annotation still expects appears, and nothing it no longer lists is missing.
    let (code, report, stderr) = run_cli_with_stdin(
        &[
            "simulate",
            "--scenarios",
            "6",
            "--load",
            "100",
            "--output",
            "json",
            "--fail-on",
            "never",
            "-",
        ],
        &yaml,
    );
    assert_eq!(code, Some(0), "{report}{stderr}");
    let report: Value = serde_json::from_str(&report).unwrap();
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(!rules.contains(&"expected-finding-missing"), "{rules:?}");
    assert!(!rules.contains(&"liveness-kills-under-load"), "{rules:?}");
}

#[test]
fn no_setting_for_an_unready_window_shorter_than_a_second_exits_1_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("blink.toml");
    std::fs::write(
        &profile,
        "description = \"unready for half a second every 20 s\"\n[[fault]]\ntype = \"unready\"\nfrom = \"ready\"\nafter = \"20s\"\nfor = \"500ms\"\nevery = \"20s\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run_cli(
        &[
            "tune",
            "--scenarios",
            "4",
            "--profile",
            profile.to_str().unwrap(),
            &manifest("online-inference-pod-probes.yaml"),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("no readiness setting sees the shortest unready window (0.5 s)"),
        "{stdout}"
    );
}

#[test]
fn unreadable_input_and_bad_flags_exit_2_with_one_line() {
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["tune".into(), "/nonexistent.yaml".into()],
            "cannot read",
        ),
        (
            vec![
                "tune".into(),
                "--max-false-restarts-per-day=-1".into(),
                manifest("online-inference-pod.yaml"),
            ],
            "max-false-restarts-per-day",
        ),
        (
            vec![
                "tune".into(),
                "--app".into(),
                "nothing=none".into(),
                manifest("online-inference-pod.yaml"),
            ],
            "--app nothing",
        ),
    ];
    for (args, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = run_cli(&args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // Nothing modelled: an ordinary image with no timeline.
    let (code, _, stderr) = run_cli_with_stdin(
        &["tune", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: web\n      image: nginx:1.27\n",
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no container with a timeline to tune"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
