//! The search and its constraints on hand-made timelines with a known best answer, and on the
//! shipped manifests through the simulator.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::simulate::app::Overrides;
use crate::simulate::manifest;
use crate::simulate::timeline::DeclaredRoutes;

fn server_facts() -> Facts {
    Facts {
        loaded_latest: Some(Duration::from_secs(30)),
        never_loads: false,
        open_latest: Duration::from_millis(20),
        live_while_loading: false,
        fails_liveness: false,
        shortest_unready: None,
        http_port: 8000,
        grpc_port: None,
        routes: Routes::Server {
            model_name: "m".into(),
            model_version: None,
        },
    }
}

fn declared(latency: &[(&str, u64, u64)]) -> Routes {
    let path = |p: &str| Endpoint::Path(p.to_string());
    Routes::Declared(DeclaredRoutes {
        answers: vec![
            (path("/live"), Some(Check::Liveness)),
            (path("/ready"), Some(Check::Readiness)),
        ],
        latency: latency
            .iter()
            .map(|(p, low, high)| {
                (
                    path(p),
                    DurationRange {
                        low: Duration::from_millis(*low),
                        high: Duration::from_millis(*high),
                    },
                )
            })
            .collect(),
    })
}

fn best(facts: &Facts, goals: &Goals) -> Judged {
    let (mut all, unmet) = candidates(&Setting::default(), facts, goals);
    assert!(unmet.0.is_empty(), "{:?}", unmet.0);
    let order = goals.order();
    all.sort_by(|a, b| compare(&a.scores, &b.scores, &order));
    all.remove(0)
}

fn options() -> Options {
    Options {
        horizon: Duration::from_secs(600),
        overrides: Overrides::default(),
        steps: Vec::new(),
        scenarios: 12,
        load: None,
    }
}

fn shipped(file: &str) -> Input {
    let path = format!("{}/manifests/{file}", env!("CARGO_MANIFEST_DIR"));
    manifest::read(&[(file.to_string(), std::fs::read_to_string(path).unwrap())]).unwrap()
}

#[test]
fn a_load_of_exactly_30_s_probed_every_5_s_needs_a_failure_threshold_of_7() {
    // The first probe can come as the container starts (t = 0); the 7th comes at 30 s, when
    // the app has loaded; with 6 the last failure is at 25 s and the kubelet kills it.
    assert_eq!(startup_threshold(Duration::from_secs(30), 0, 5), 7);
    assert_eq!(startup_threshold(Duration::from_secs(30), 10, 5), 5);
    assert_eq!(startup_threshold(Duration::from_millis(30_001), 0, 5), 8);
    assert_eq!(startup_threshold(Duration::ZERO, 0, 5), 1);
}

#[test]
fn false_restarts_follow_the_latency_tail_and_the_threshold() {
    let range = Some(DurationRange {
        low: Duration::ZERO,
        high: Duration::from_secs(2),
    });
    assert_eq!(miss_chance(range, 1), 0.5);
    assert_eq!(miss_chance(range, 2), 0.0);
    assert_eq!(miss_chance(None, 1), 0.0);
    // Every 10 s, two misses in a row: 8640 probes a day, a quarter of the pairs.
    assert!((false_per_day(0.5, 10, 2) - 2160.0).abs() < 1e-9);
    assert_eq!(false_per_day(0.0, 1, 1), 0.0);
}

#[test]
fn a_load_that_fails_liveness_gets_a_startup_probe_whose_budget_covers_it() {
    let goals = Goals {
        startup_margin: 0.0,
        start_allowance: Duration::ZERO,
        ..Goals::default()
    };
    let chosen = best(&server_facts(), &goals);
    let startup = chosen.setting.startup.expect("a startup probe");
    assert_eq!(startup.period, 1);
    assert_eq!(
        startup.failure_threshold,
        startup_threshold(Duration::from_secs(30), 0, 1)
    );
    assert!(
        startup.initial_delay + (startup.failure_threshold - 1) * startup.period >= 30,
        "{startup:?}"
    );
    // Detect first: liveness every second, one lost packet tolerated.
    let liveness = chosen.setting.liveness.expect("a liveness probe");
    assert_eq!(
        (
            liveness.period,
            liveness.timeout,
            liveness.failure_threshold
        ),
        (1, 1, 2)
    );
    assert_eq!(chosen.scores.detect_s, Some(3.0));
    // Ready: a startup period, then a readiness period.
    assert_eq!(chosen.scores.ready_s, Some(2.0));
}

#[test]
fn the_margin_and_the_start_allowance_are_added_to_the_load() {
    let without_allowance = Goals {
        start_allowance: Duration::ZERO,
        ..Goals::default()
    };
    let startup = best(&server_facts(), &without_allowance)
        .setting
        .startup
        .unwrap();
    // 30 s + 10 % = 33 s at 1 s: 34 probes.
    assert_eq!(startup.failure_threshold, 34);
    let startup = best(&server_facts(), &Goals::default())
        .setting
        .startup
        .unwrap();
    // And 5 s late: 38 s at 1 s, 39 probes.
    assert_eq!(startup.failure_threshold, 39);
}

#[test]
fn an_app_live_while_loading_needs_no_startup_probe_and_is_ready_sooner() {
    let facts = Facts {
        live_while_loading: true,
        ..server_facts()
    };
    let on_time = Goals {
        start_allowance: Duration::ZERO,
        ..Goals::default()
    };
    let chosen = best(&facts, &on_time);
    assert_eq!(chosen.setting.startup, None);
    assert_eq!(chosen.scores.ready_s, Some(1.0));
    // Allowed to start 5 s late, liveness without a startup probe waits 7 failures (the port
    // opens 20 ms after a start up to 5 s late: 5.02 s at 1 s), Ready still a period sooner.
    let ready_first = Goals {
        prefer: vec![Objective::Ready],
        ..Goals::default()
    };
    let chosen = best(&facts, &ready_first);
    assert_eq!(chosen.setting.startup, None);
    assert_eq!(chosen.scores.ready_s, Some(1.0));
    assert_eq!(chosen.setting.liveness.unwrap().failure_threshold, 7);
}

/// The e2e's case: an app that listens at once and loads in 50 ms was killed before it was
/// first Ready, on a busy node, by liveness acting on 2 failures 1 s apart from the container's
/// start. Whatever the objectives, nothing that restarts the container acts before the start
/// allowance has passed.
#[test]
fn no_probe_kills_a_container_before_its_start_allowance() {
    for live_while_loading in [false, true] {
        let facts = Facts {
            loaded_latest: Some(Duration::from_millis(50)),
            open_latest: Duration::ZERO,
            live_while_loading,
            fails_liveness: true,
            ..server_facts()
        };
        for prefer in [Objective::Detect, Objective::Ready, Objective::Shed] {
            let goals = Goals {
                prefer: vec![prefer],
                ..Goals::default()
            };
            let chosen = best(&facts, &goals).setting;
            // The earliest the kubelet acts, from the container's start: the first probe can
            // come as it starts, the threshold-th a (threshold - 1) periods later.
            let patience = |p: &Probe| p.initial_delay + (p.failure_threshold - 1) * p.period;
            let acts_after = match (&chosen.startup, &chosen.liveness) {
                (Some(s), _) => patience(s),
                (None, Some(l)) => patience(l),
                (None, None) => u32::MAX,
            };
            assert!(
                f64::from(acts_after) >= goals.start_allowance.as_secs_f64(),
                "live while loading {live_while_loading}, {prefer:?}: {chosen:?}"
            );
        }
    }
}

#[test]
fn a_slow_liveness_path_gets_a_timeout_and_threshold_that_keep_false_restarts_rare() {
    // /live answers in 0.1..3 s: a 1 s timeout misses 2 in 2.9 probes.
    let facts = Facts {
        routes: declared(&[("/live", 100, 3000)]),
        live_while_loading: true,
        ..server_facts()
    };
    let goals = Goals::default();
    let (all, _) = candidates(&Setting::default(), &facts, &goals);
    for c in &all {
        assert!(
            c.scores.false_restarts_per_day <= goals.max_false_restarts_per_day,
            "{:?}",
            c.setting.liveness
        );
    }
    let chosen = best(&facts, &goals);
    let liveness = chosen.setting.liveness.unwrap();
    // The fastest detection that keeps the rate: a covering 4 s timeout beats any shorter
    // one with the threshold it would need.
    let detect = chosen.scores.detect_s.unwrap();
    for c in &all {
        assert!(c.scores.detect_s.unwrap_or(f64::INFINITY) >= detect - 1e-9);
    }
    assert!(liveness.timeout <= liveness.period);
    assert!(
        false_per_day(
            miss_chance(facts.latency(&liveness.handler), liveness.timeout),
            liveness.period,
            liveness.failure_threshold
        ) <= 0.01
    );
}

#[test]
fn readiness_sees_the_shortest_unready_window() {
    let facts = Facts {
        shortest_unready: Some(Duration::from_secs(3)),
        live_while_loading: true,
        ..server_facts()
    };
    let goals = Goals {
        prefer: vec![],
        ..Goals::default()
    };
    let (all, _) = candidates(&Setting::default(), &facts, &goals);
    assert!(!all.is_empty());
    for c in &all {
        let r = c.setting.readiness.as_ref().unwrap();
        assert!(3 / r.period >= r.failure_threshold, "{r:?}");
    }
}

#[test]
fn liveness_that_calls_readiness_is_moved_to_its_own_path_and_tcp_only_when_nothing_hangs() {
    let current = Setting {
        liveness: Some(probe(
            Handler::Http {
                path: "/readyz".into(),
                port: 8000,
            },
            10,
            1,
            3,
        )),
        ..Setting::default()
    };
    let mut unmet = Unmet::default();
    let facts = server_facts();
    let found = liveness_candidates(
        current.liveness.as_ref(),
        &facts,
        &Goals::default(),
        true,
        &mut unmet,
    );
    let handlers: Vec<String> = found
        .iter()
        .map(|p| p.as_ref().unwrap().handler.describe())
        .collect();
    assert!(handlers.contains(&"http-get :8000/livez".to_string()));
    assert!(handlers.contains(&"tcp-socket :8000".to_string()));
    assert!(!handlers.contains(&"http-get :8000/readyz".to_string()));
    let hangs = Facts {
        fails_liveness: true,
        ..facts
    };
    let found = liveness_candidates(
        current.liveness.as_ref(),
        &hangs,
        &Goals::default(),
        true,
        &mut unmet,
    );
    assert!(
        found
            .iter()
            .all(|p| !matches!(p.as_ref().unwrap().handler, Handler::Tcp { .. }))
    );
}

#[test]
fn prefer_changes_the_choice() {
    let facts = Facts {
        live_while_loading: true,
        shortest_unready: Some(Duration::from_secs(20)),
        ..server_facts()
    };
    let detect = best(&facts, &Goals::default());
    let shed = best(
        &facts,
        &Goals {
            prefer: vec![Objective::Shed],
            ..Goals::default()
        },
    );
    assert!(shed.scores.shed_s.unwrap() <= detect.scores.shed_s.unwrap());
    assert!(detect.scores.detect_s.unwrap() <= shed.scores.detect_s.unwrap());
}

#[test]
fn the_shipped_pod_without_startup_probe_gets_one_and_no_kill() {
    let input = shipped("online-inference-pod-without-startup-probe.yaml");
    let tuned = tune(&input, 0, &options(), &Goals::default()).unwrap();
    assert!(tuned.current.simulated.as_ref().unwrap().false_kills > 0);
    let chosen = tuned.chosen.expect("a setting");
    assert!(chosen.setting.startup.is_some());
    assert_eq!(chosen.simulated.as_ref().unwrap().false_kills, 0);
    let budget = tuned.startup_budget.unwrap();
    assert!(budget.margin_s >= 0.0 && budget.budget_s >= budget.latest_load_s);
    // Every trade is checked by the simulator too.
    for (_, t) in &tuned.trades {
        assert_eq!(t.simulated.as_ref().unwrap().false_kills, 0);
    }
}

#[test]
fn a_hang_is_detected_within_the_predicted_worst_case() {
    let input = shipped("online-inference-pod-probes.yaml");
    let options = Options {
        overrides: Overrides {
            profile: Some("liveness-hang".into()),
            ..Overrides::default()
        },
        ..options()
    };
    let tuned = tune(&input, 0, &options, &Goals::default()).unwrap();
    let chosen = tuned.chosen.unwrap();
    let (_, latest) = chosen
        .simulated
        .as_ref()
        .unwrap()
        .detect_s
        .expect("a hang caught");
    assert!(latest <= chosen.scores.detect_s.unwrap() + 0.5, "{latest}");
    let (_, current_latest) = tuned.current.simulated.as_ref().unwrap().detect_s.unwrap();
    assert!(latest < current_latest);
}

/// The overload Deployment and its Service, as shipped, and the Deployment's index.
fn overload_with_service() -> (Input, usize) {
    let sources: Vec<(String, String)> = [
        "online-inference-deployment-overload.yaml",
        "online-inference-service.yaml",
    ]
    .iter()
    .map(|f| {
        let path = format!("{}/manifests/{f}", env!("CARGO_MANIFEST_DIR"));
        (f.to_string(), std::fs::read_to_string(path).unwrap())
    })
    .collect();
    let input = manifest::read(&sources).unwrap();
    let index = input
        .workloads
        .iter()
        .position(|w| w.name == "online-inference-overload")
        .unwrap();
    (input, index)
}

/// The load `--load RATE[@WHEN]` offers, through the Service, with the 5 s client time-out.
fn load(input: &Input, rate: &str) -> Option<crate::simulate::traffic::Offered> {
    let step = crate::load::RateStep::parse(rate).unwrap();
    crate::simulate::command::load_of(input, &[step], None, Duration::from_secs(5)).unwrap()
}

#[test]
fn under_a_load_that_queues_probes_liveness_stops_waiting_behind_predictions() {
    let (input, index) = overload_with_service();
    let options = Options {
        load: load(&input, "100"),
        ..options()
    };
    let tuned = tune(&input, index, &options, &Goals::default()).unwrap();
    assert!(tuned.current.simulated.as_ref().unwrap().false_kills > 0);
    let chosen = tuned.chosen.expect("a setting");
    assert_eq!(chosen.simulated.as_ref().unwrap().false_kills, 0);
}

/// With a pod deleted under the load (`--step delete-pod@75s`), the two left queue more: the
/// setting tuned for the load alone would kill them, so the one tuned with the step waits
/// longer and kills no healthy container in that scenario either.
#[test]
fn a_step_under_load_is_part_of_every_judgement() {
    let (input, index) = overload_with_service();
    let without_step = Options {
        load: load(&input, "100@45s"),
        horizon: Duration::from_secs(240),
        ..options()
    };
    let with_step = Options {
        steps: crate::simulate::command::steps_of(
            &input,
            None,
            None,
            None,
            &["delete-pod@75s".to_string()],
        )
        .unwrap(),
        ..without_step.clone()
    };
    let patience = |j: &Judged| {
        let l = j.setting.liveness.as_ref().unwrap();
        l.period * l.failure_threshold
    };
    let for_load = tune(&input, index, &without_step, &Goals::default()).unwrap();
    let for_step = tune(&input, index, &with_step, &Goals::default()).unwrap();
    assert!(for_step.current.simulated.as_ref().unwrap().false_kills > 0);
    let (load_only, stepped) = (for_load.chosen.unwrap(), for_step.chosen.unwrap());
    assert_eq!(stepped.simulated.as_ref().unwrap().false_kills, 0);
    assert!(patience(&stepped) > patience(&load_only));
    // The setting tuned for the load alone, judged with the step, kills.
    let judged = simulate_setting(&input, index, &load_only.setting, &with_step);
    assert!(judged.false_kills > 0, "{judged:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the manifest's probes, a setting that meets the constraints is never worse
    /// than them in the objectives' order, and never kills a healthy container.
    #[test]
    fn the_tuned_setting_is_never_worse_than_a_valid_input(
        lp in 1u32..20, lt in 1u32..5, lf in 2u32..6,
        rp in 1u32..20, rt in 1u32..5, rf in 1u32..6,
        profile in prop::sample::select(vec!["none", "v2", "liveness-hang", "flapping-readiness"]),
    ) {
        let mut input = shipped("online-inference-pod-probes.yaml");
        let c = &mut input.workloads[0].template.containers[0];
        let l = c.liveness.as_mut().unwrap();
        (l.period, l.timeout, l.failure_threshold) = (lp, lt.min(lp), lf);
        let r = c.readiness.as_mut().unwrap();
        (r.period, r.timeout, r.failure_threshold) = (rp, rt.min(rp), rf);
        let options = Options {
            overrides: Overrides { profile: Some(profile.into()), ..Overrides::default() },
            scenarios: 4,
            ..options()
        };
        let goals = Goals::default();
        let tuned = tune(&input, 0, &options, &goals).unwrap();
        let chosen = tuned.chosen.expect("a setting");
        prop_assert_eq!(chosen.simulated.as_ref().unwrap().false_kills, 0);
        let current = &tuned.current;
        if current.simulated.as_ref().unwrap().false_kills == 0 {
            prop_assert_ne!(
                compare(&chosen.scores, &current.scores, &goals.order()),
                std::cmp::Ordering::Greater,
                "chosen {:?} current {:?}", chosen.scores, current.scores
            );
        }
    }
}
