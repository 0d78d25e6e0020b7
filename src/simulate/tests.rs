//! The simulation on the shipped manifests: the course's cases come out as the kubelet and the
//! controllers make them.

use std::time::Duration;

use super::cluster::{Action, Step, When};
use super::findings::Rule;
use super::*;

fn shipped(files: &[&str]) -> Input {
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let path = format!("{}/manifests/{f}", env!("CARGO_MANIFEST_DIR"));
            (f.to_string(), std::fs::read_to_string(path).unwrap())
        })
        .collect();
    manifest::read(&sources).unwrap()
}

fn options(steps: Vec<Step>) -> Options {
    Options {
        horizon: Duration::from_secs(600),
        overrides: Overrides::default(),
        steps,
        scenarios: 12,
    }
}

fn errors(report: &Report) -> Vec<&'static str> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == findings::Severity::Error && !f.expected)
        .map(|f| f.rule.id())
        .collect()
}

#[test]
fn v2_with_the_shipped_probes_is_ready_after_its_load_and_restarts_after_its_crash() {
    let mut input = shipped(&["online-inference-pod-probes.yaml"]);
    let container = &mut input.workloads[0].template.containers[0];
    container.env.insert(
        "CHAOS_PROFILE".into(),
        manifest::EnvValue::Literal("v2".into()),
    );
    container.mounted_profile = None;
    let container = container.clone();
    let report = simulate(&input, &options(Vec::new()));
    let pod = &report.pods[0];
    let settings = app::Settings::of(&container, Some(&pod.name), &Overrides::default());
    let plan = settings.plan(settings.seed.unwrap()).unwrap();
    let load = (plan.load_delay + app::MODEL_LOAD).as_secs_f64();
    let ready = pod.first_ready.unwrap();
    // Container start (0.2-4 s) + load, then the next readiness tick (period 2 s).
    assert!(
        ready.earliest_s >= load + 0.2 && ready.latest_s <= load + 4.0 + 2.0,
        "{ready:?} vs load {load}"
    );
    let first = &pod.restarts_at[0];
    assert_eq!(first.reason, "Error, exit code 1");
    let crash = load + plan.schedules[0].first.as_secs_f64();
    assert!(
        first.ended.earliest_s >= crash + 0.2 && first.ended.latest_s <= crash + 4.0,
        "{first:?} vs {crash}"
    );
    assert!(errors(&report).is_empty(), "{:?}", report.findings);
}

#[test]
fn slow_start_without_a_startup_probe_is_killed_by_liveness_again_and_again() {
    let mut input = shipped(&["online-inference-pod-startup-probe.yaml"]);
    let container = &mut input.workloads[0].template.containers[0];
    container.startup = None;
    container.env.insert(
        "CHAOS_PROFILE".into(),
        manifest::EnvValue::Literal("slow-start".into()),
    );
    container.mounted_profile = None;
    let report = simulate(&input, &options(Vec::new()));
    let finding = report
        .findings
        .iter()
        .find(|f| f.rule == Rule::LivenessKillsDuringLoad)
        .expect("the liveness-kill finding");
    assert!(finding.fix.contains("startupProbe"), "{}", finding.fix);
    assert!(
        report.pods[0].restarts.min >= 3,
        "{:?}",
        report.pods[0].restarts
    );
    assert!(report.pods[0].first_ready.is_none(), "never ready");
    assert!(
        report.pods[0]
            .events
            .iter()
            .any(|e| e.event == "Killing" && e.probe == Some("Liveness"))
    );
    // With the startup probe as shipped: no kill, ready after the load.
    let mut input = shipped(&["online-inference-pod-startup-probe.yaml"]);
    let container = &mut input.workloads[0].template.containers[0];
    container.env.insert(
        "CHAOS_PROFILE".into(),
        manifest::EnvValue::Literal("slow-start".into()),
    );
    container.mounted_profile = None;
    let report = simulate(&input, &options(Vec::new()));
    assert_eq!(report.pods[0].restarts.max, 0, "{}", render::table(&report));
    assert!(report.pods[0].first_ready.unwrap().earliest_s >= 90.0);
}

fn set_image(workload: &str) -> Step {
    Step {
        workload: workload.into(),
        action: Action::SetImage("v2".into()),
        when: When::Ready,
    }
}

#[test]
fn blue_green_peaks_at_twice_the_pods_and_never_drops_below_three_ready() {
    let input = shipped(&["online-inference-deployment-blue-green.yaml"]);
    let report = simulate(
        &input,
        &options(vec![set_image("online-inference-blue-green")]),
    );
    let rollout = &report.rollouts[0];
    assert_eq!(rollout.peak_pods, Range { min: 6, max: 6 });
    assert_eq!(rollout.min_ready.min, 3, "{}", render::table(&report));
    assert!(rollout.zero_ready.is_none());
    assert_eq!(rollout.replica_sets.len(), 2);
}

#[test]
fn max_unavailable_100_percent_has_a_moment_with_nothing_ready() {
    let input = shipped(&["online-inference-deployment-rolling-update.yaml"]);
    let report = simulate(
        &input,
        &options(vec![set_image("online-inference-rolling-update")]),
    );
    let rollout = &report.rollouts[0];
    assert_eq!(
        rollout.peak_pods.max, 3,
        "maxSurge 0: never more than 3 pods"
    );
    assert_eq!(rollout.min_ready, Range { min: 0, max: 0 });
    assert!((rollout.zero_ready_share - 1.0).abs() < 1e-9);
    // Reported for the Deployment as given, by simulating its next rollout.
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.rule == Rule::RolloutZeroReady)
    );
}

#[test]
fn a_replicaset_keeps_its_pods_on_a_template_change_and_new_ones_take_the_new_template() {
    let input = shipped(&["online-inference-replicaset.yaml"]);
    let name = "online-inference-replicaset";
    let steps = vec![
        set_image(name),
        Step {
            workload: name.into(),
            action: Action::Scale(1),
            when: When::After(5_000),
        },
        Step {
            workload: name.into(),
            action: Action::Scale(3),
            when: When::After(30_000),
        },
    ];
    let report = simulate(&input, &options(steps.clone()));
    let traces = traces(&input, &options(steps));
    for trace in &traces {
        let mut images: Vec<&str> = trace
            .pods
            .iter()
            .filter(|p| p.pod.deleting.is_none() && !p.pod.gone())
            .map(|p| if p.revision == 0 { "v1" } else { "v2" })
            .collect();
        images.sort();
        assert_eq!(images, ["v1", "v2", "v2"]);
    }
    assert_eq!(
        report.pods.len(),
        5,
        "3 at first, 2 more after the scale up"
    );
}

#[test]
fn a_leak_under_the_shipped_limit_is_oom_killed_when_the_rate_says() {
    let mut input = shipped(&["online-inference-pod-resources.yaml"]);
    let container = &mut input.workloads[0].template.containers[0];
    container.env.insert(
        "CHAOS_PROFILE".into(),
        manifest::EnvValue::Literal("memory-leak".into()),
    );
    container.mounted_profile = None;
    let report = simulate(&input, &options(Vec::new()));
    let oom = report.pods[0].restarts_at.first().expect("a restart");
    assert_eq!(oom.reason, "OOMKilled, exit code 137");
    // Ready at 0.2-4 s, leak from 5 s after, (128 - 30..45 MiB) at 10 MiB/s.
    assert!(
        oom.ended.earliest_s >= 0.2 + 5.0 + 8.0 && oom.ended.latest_s <= 4.1 + 5.0 + 10.0,
        "{oom:?}"
    );
    assert!(report.findings.iter().any(|f| f.rule == Rule::LeakOom));
}

#[test]
fn steps_read_from_the_command_line() {
    assert_eq!(
        parse_step("scale=1@+5s", "w").unwrap(),
        Step {
            workload: "w".into(),
            action: Action::Scale(1),
            when: When::After(5_000)
        }
    );
    assert_eq!(parse_step("set-image=v2", "w").unwrap().when, When::Ready);
    assert!(
        parse_step("explode", "w")
            .unwrap_err()
            .contains("set-image=TAG")
    );
}

#[test]
fn min_ready_seconds_holds_old_pods_until_new_ones_have_been_ready_that_long() {
    let input = shipped(&["online-inference-deployment-blue-green.yaml"]);
    let mut slow = input.clone();
    slow.workloads[0].min_ready_seconds = 30;
    let steps = vec![set_image("online-inference-blue-green")];
    let settled = |input: &Input| {
        simulate(input, &options(steps.clone())).rollouts[0]
            .settled
            .unwrap()
    };
    let (fast, slow) = (settled(&input), settled(&slow));
    assert!(
        slow.earliest_s >= fast.earliest_s + 30.0,
        "old pods go only once new ones are available: {fast:?} vs {slow:?}"
    );
}

/// One seed for both pods, so their plans agree whatever their names.
fn seeded() -> Options {
    let mut options = options(Vec::new());
    options.overrides.seed = Some(7);
    options
}

#[test]
fn grpc_probes_predict_what_the_http_probes_do() {
    let http = simulate(&shipped(&["online-inference-pod-probes.yaml"]), &seeded());
    let grpc = simulate(
        &shipped(&["online-inference-pod-grpc-probes.yaml"]),
        &seeded(),
    );
    let (h, g) = (&http.pods[0], &grpc.pods[0]);
    assert_eq!(g.profile, "v2");
    let close = |a: &Window, b: &Window| {
        (a.earliest_s - b.earliest_s).abs() < 1e-6 && (a.latest_s - b.latest_s).abs() < 1e-6
    };
    assert!(close(
        h.first_ready.as_ref().unwrap(),
        g.first_ready.as_ref().unwrap()
    ));
    assert_eq!(h.restarts_at.len(), g.restarts_at.len());
    for (a, b) in h.restarts_at.iter().zip(&g.restarts_at) {
        assert!(
            close(&a.ended, &b.ended) && close(&a.started, &b.started),
            "{a:?} {b:?}"
        );
    }
    assert!(
        grpc.findings
            .iter()
            .all(|f| f.severity < findings::Severity::Warning),
        "{:?}",
        grpc.findings
    );
    let failed = g
        .events
        .iter()
        .find(|e| e.event == "Unhealthy")
        .expect("readiness fails during the load");
    assert!(
        failed.detail.contains(r#"responded with "NOT_SERVING""#),
        "{failed:?}"
    );
}

#[test]
fn a_grpc_liveness_probe_on_the_inference_service_restarts_an_unready_pod() {
    let mut input = shipped(&["online-inference-pod-grpc-probes.yaml"]);
    let container = &mut input.workloads[0].template.containers[0];
    let liveness = container.liveness.as_mut().unwrap();
    liveness.handler = manifest::Handler::Grpc {
        port: 8001,
        service: "inference.GRPCInferenceService".into(),
    };
    let report = simulate(&input, &seeded());
    let rules: Vec<_> = report.findings.iter().map(|f| f.rule).collect();
    assert!(rules.contains(&Rule::LivenessSameAsReadiness), "{rules:?}");
    assert!(rules.contains(&Rule::LivenessKillsDuringLoad), "{rules:?}");
    let fix = &report
        .findings
        .iter()
        .find(|f| f.rule == Rule::LivenessSameAsReadiness)
        .unwrap()
        .fix;
    assert!(fix.contains(r#"service """#), "{fix}");
    assert!(
        report.pods[0].first_ready.is_none(),
        "killed during every load (20-30 s > 15 s)"
    );
}

#[test]
fn grpc_probes_on_a_closed_port_never_pass() {
    // GRPC_BIND empty: gRPC is off, so the probes are refused.
    let mut input = shipped(&["online-inference-pod-grpc-probes.yaml"]);
    let container = &mut input.workloads[0].template.containers[0];
    container.env.insert(
        "GRPC_BIND".into(),
        manifest::EnvValue::Literal(String::new()),
    );
    let report = simulate(&input, &seeded());
    assert!(report.pods[0].first_ready.is_none());
    let refused = report.pods[0]
        .events
        .iter()
        .find(|e| e.event == "Unhealthy")
        .unwrap();
    assert!(refused.detail.contains("connection refused"), "{refused:?}");
    let errors = errors(&report);
    assert!(
        errors.contains(&"probe-port-closed"),
        "{:?}",
        report.findings
    );
    assert!(
        !errors.contains(&"liveness-kills-during-load"),
        "the closed port is the cause: {errors:?}"
    );
    let closed = report
        .findings
        .iter()
        .find(|f| f.rule == Rule::ProbePortClosed)
        .unwrap();
    assert!(closed.fix.contains("GRPC_BIND is empty"), "{}", closed.fix);
}
