//! Any application's timeline, from outside: `chaos-inference timeline`, and `simulate` on
//! workloads of other images, with a timeline (`--app`, the annotation) and without one.

use serde_json::Value;

use crate::helpers::run_cli;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A three-replica Deployment of an ordinary image behind a Service, liveness identical to
/// readiness.
const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: ghcr.io/acme/web:1.4
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 5}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 5}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
";

/// Its timeline: the port after 1 s, ready 10-20 s later, /health follows readiness.
const WEB_TIMELINE: &str = "description = \"web\"
[startup]
bind-delay = \"1s\"
load-delay = \"10s..20s\"
[endpoints]
http-port = 8080
readiness = [\"/health\"]
";

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn json(args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["simulate", "--output", "json", "--scenarios", "6"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run_cli(&all, &[]);
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (code, report, stderr)
}

fn rules(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_ordinary_deployment_without_a_timeline_gets_the_findings_of_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let web = write(dir.path(), "web.yaml", WEB);
    let (code, report, stderr) = json(&[&web]);
    assert_eq!(code, Some(0), "warnings only: {stderr}");
    assert_eq!(report["pods"], serde_json::json!([]), "nothing to simulate");
    let found = rules(&report);
    assert!(
        found.contains(&"liveness-same-as-readiness".to_string()),
        "{found:?}"
    );
    assert!(found.contains(&"no-timeline".to_string()), "{found:?}");
    let table = run_cli(&["simulate", &web], &[]).1;
    assert!(
        !table.contains("no Pod, ReplicaSet or Deployment"),
        "{table}"
    );
    assert!(table.contains("no pod is simulated"), "{table}");
    assert!(table.contains("--app web=web.toml"), "{table}");
}

#[test]
fn a_timeline_given_by_app_or_annotation_simulates_the_pods() {
    let dir = tempfile::tempdir().unwrap();
    let web = write(dir.path(), "web.yaml", WEB);
    let timeline = write(dir.path(), "web.toml", WEB_TIMELINE);
    // By image repository and by container name.
    for name in ["web", "ghcr.io/acme/web"] {
        let name = name.rsplit('/').next().unwrap();
        let app = format!("{name}={timeline}");
        let (code, report, stderr) = json(&[&web, "--app", &app]);
        assert_eq!(code, Some(1), "an error finding, below: {stderr}");
        let pods = report["pods"].as_array().unwrap();
        assert_eq!(pods.len(), 3);
        // Ready once loaded (1 s + 10-20 s), after the container starts (0.2-4 s), at the next
        // readiness tick (every 5 s).
        let ready = &pods[0]["first_ready"];
        assert!(ready["earliest_s"].as_f64().unwrap() >= 11.2, "{ready}");
        assert!(
            ready["latest_s"].as_f64().unwrap() <= 21.0 + 4.0 + 5.0 + 1.0,
            "{ready}"
        );
        assert!(pods[0]["profile"].as_str().unwrap().contains("web.toml"));
        // Liveness is readiness here: it fails during the load, 3 x 5 s < 21 s, so it kills.
        assert!(rules(&report).contains(&"liveness-kills-during-load".to_string()));
    }
    // The annotation, relative to the manifest's folder.
    let annotated = WEB.replace(
        "    metadata: {labels: {app: web}}",
        "    metadata:\n      labels: {app: web}\n      annotations: {chaos-inference/timeline.web: web.toml}",
    );
    let annotated = write(dir.path(), "annotated.yaml", &annotated);
    let (_, report, stderr) = json(&[&annotated]);
    assert_eq!(report["pods"].as_array().map(Vec::len), Some(3), "{stderr}");
}

#[test]
fn bad_timelines_and_app_flags_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let web = write(dir.path(), "web.yaml", WEB);
    let no_endpoints = write(dir.path(), "bad.toml", "[startup]\nload-delay = \"5s\"\n");
    let bad_key = write(
        dir.path(),
        "key.toml",
        "[endpoints]\nhttp-port = 8080\nreadiness = [\"health\"]\n",
    );
    for (args, needle) in [
        (vec!["--app", "web"], "expected NAME=FILE"),
        (
            vec!["--app", "nope=v2"],
            "no container of the input is named `nope`",
        ),
        (
            vec!["--app", &format!("web={no_endpoints}")[..]],
            "needs [endpoints]",
        ),
        (vec!["--app", &format!("web={bad_key}")[..]], "line 3"),
        (
            vec!["--app", "web=/no/such.toml"],
            "cannot read the timeline",
        ),
    ] {
        let mut all = vec!["simulate", web.as_str()];
        all.extend(args.iter().copied());
        let (code, _, stderr) = run_cli(&all, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn timeline_checks_a_file_and_prints_what_it_will_do() {
    let java = format!("{ROOT}/docs/your-app/java-service.toml");
    let (code, stdout, stderr) = run_cli(&["timeline", &java], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    for needle in [
        "listens     HTTP on 8080",
        "/actuator/health/readiness follows readiness, in 5ms..60ms",
        "memory      300-420 MiB when started",
        "on SIGTERM  exits 1s..3s after it; readiness keeps passing until then",
        "start + 43s          loaded",
        "start + 1m 35s       loaded",
        "fault[0] unhealthy (liveness fails) starts",
    ] {
        assert!(stdout.contains(needle), "{needle} not in:\n{stdout}");
    }
    let (code, _, stderr) = run_cli(&["timeline", "v2"], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("chaos-inference plan --profile v2"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_example_of_another_application_shows_its_finding() {
    let java = format!("{ROOT}/docs/your-app/java-service.yaml");
    let (code, report, stderr) = json(&[&java]);
    assert_eq!(code, Some(0), "{stderr}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "liveness-kills-during-load")
        .unwrap();
    assert_eq!(finding["expected"], true);
    assert!(report["pods"][0]["restarts"]["min"].as_u64().unwrap() >= 3);
}
