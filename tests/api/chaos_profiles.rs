//! Every built-in profile run by the real binary at a small time scale, observed from outside:
//! HTTP status over time, exit code or signal, the termination message. Each fault must happen
//! when the plan (computed by the same library the `plan` subcommand uses) says: never seen
//! before it, and within `timing::LATE` after, on the server's own clock (see `timing.rs`).

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use chaos_inference::chaos::fault::Effect;
use chaos_inference::chaos::plan::Plan;
use chaos_inference::chaos::profile::Profile;
use serde_json::Value;

use crate::helpers::{PATIENCE, Spawn, TestServer, ended, record, run_cli};
use crate::timing::{self, Seen, ServerClock, assert_on_time, assert_reported_on_time};

const SEED: u64 = 42;

fn plan(profile: &str, time_scale: f64) -> Plan {
    Plan::new(&Profile::load(profile).unwrap(), SEED, time_scale)
}

/// Waits for readiness; checks the server's ready time against the plan's delays (the model
/// load itself comes on top) and returns the server's clock.
async fn ready_on_time(server: &TestServer, plan: &Plan) -> ServerClock {
    let clock = server.ready_clock().await;
    assert_reported_on_time("ready", clock.ready_at(), plan.bind_delay + plan.load_delay);
    clock
}

#[tokio::test]
async fn none_stays_healthy() {
    let server = Spawn::default().profile("none", 1.0).ready().await;
    let chaos = server.get_json("/chaos").await;
    assert_eq!(chaos["profile"], "none");
    assert_eq!(chaos["seed"], SEED);
    assert_eq!(chaos["next"], serde_json::json!([]));
    for _ in 0..5 {
        assert_eq!(server.post_json("/predict", &record()).await.status(), 200);
        assert_eq!(server.status("/livez").await, 200);
    }
}

#[tokio::test]
async fn v2_loads_late_then_exits_1_with_a_termination_message() {
    let scale = 0.02;
    let plan = plan("v2", scale);
    let mut server = Spawn::default().profile("v2", scale).listening();
    assert_eq!(
        server.status("/readyz").await,
        503,
        "not ready during the load"
    );
    let clock = ready_on_time(&server, &plan).await;
    let chaos = server.get_json("/chaos").await;
    assert_eq!(chaos["next"][0]["fault"], "crash");
    assert!(chaos["next"][0]["in_ms"].as_u64().is_some(), "{chaos}");
    let (status, exited) = server.wait_exit(PATIENCE).await;
    assert_eq!(status.code(), Some(1), "{}", ended(&status));
    let crash = clock.ready_at() + plan.schedules[0].first;
    assert_on_time("crash (exit)", exited, crash, &clock);
    let message = server.termination_message();
    assert!(
        message.starts_with("v2: crash (exit code 1) after "),
        "{message}"
    );
}

#[tokio::test]
async fn slow_start_fails_every_probe_until_the_model_has_loaded() {
    let scale = 0.02; // 90 s -> 1.8 s
    let plan = plan("slow-start", scale);
    let server = Spawn::default().profile("slow-start", scale).listening();
    assert_eq!(server.status("/startupz").await, 503);
    assert_eq!(
        server.status("/livez").await,
        503,
        "not live while loading: liveness alone would kill it"
    );
    assert_eq!(server.status("/readyz").await, 503);
    let started = server.wait_status("/startupz", 200, PATIENCE).await;
    let clock = ServerClock::read(&server).await;
    assert_reported_on_time(
        "model loaded",
        clock.ready_at(),
        plan.bind_delay + plan.load_delay,
    );
    assert_on_time("startup passing", started, clock.ready_at(), &clock);
    assert_eq!(server.status("/readyz").await, 200);
    assert_eq!(server.status("/livez").await, 200);
}

#[tokio::test]
async fn crash_loop_exits_1_shortly_after_every_start() {
    let scale = 0.1; // 5 s -> 0.5 s
    let plan = plan("crash-loop", scale);
    for _ in 0..2 {
        let mut server = Spawn::default().profile("crash-loop", scale).listening();
        let clock = ready_on_time(&server, &plan).await;
        let (status, exited) = server.wait_exit(PATIENCE).await;
        assert_eq!(status.code(), Some(1), "{}", ended(&status));
        let crash = clock.ready_at() + plan.schedules[0].first;
        assert_on_time("crash (exit)", exited, crash, &clock);
        assert!(
            server
                .termination_message()
                .starts_with("crash-loop: crash"),
            "{}",
            server.termination_message()
        );
    }
}

#[tokio::test]
async fn liveness_hang_stops_answering_every_route_but_stays_up() {
    let scale = 0.02; // 30 s -> 0.6 s
    let plan = plan("liveness-hang", scale);
    let mut server = Spawn::default().profile("liveness-hang", scale).listening();
    let clock = ready_on_time(&server, &plan).await;
    // Poll liveness with the kubelet's default 1 s timeout until it times out: a busy machine
    // can be slow, but not that slow. The hang came after the last answered look was sent and
    // before the look that timed out gave up.
    let (_, hung) = timing::poll(
        &server,
        "the hang",
        Duration::from_millis(10),
        PATIENCE,
        || async {
            match server
                .client
                .get(server.url("/livez"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
            {
                Ok(r) => {
                    assert_eq!(
                        r.status(),
                        200,
                        "a hang is a timeout, never an error status"
                    );
                    None
                }
                Err(e) => {
                    assert!(e.is_timeout(), "{e}");
                    Some(())
                }
            }
        },
    )
    .await;
    let hang = clock.ready_at() + plan.schedules[0].first;
    assert_on_time("hang", hung, hang, &clock);
    for path in ["/readyz", "/metrics", "/chaos"] {
        let r = server
            .client
            .get(server.url(path))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(r.is_err_and(|e| e.is_timeout()), "{path} must not answer");
    }
    // The port still accepts connections: the process is up, not crashed.
    assert!(std::net::TcpStream::connect(format!("127.0.0.1:{}", server.port())).is_ok());
    assert!(server.alive());
    // Like a deadlocked process it cannot drain on SIGTERM; only SIGKILL ends it (exit 137).
    server.signal(libc::SIGTERM);
    server
        .stays_alive(
            Duration::from_secs(1),
            "a hung process must not exit on SIGTERM",
        )
        .await;
    server.signal(libc::SIGKILL);
    let (status, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[tokio::test]
async fn unhealthy_fails_liveness_with_500_while_predictions_work() {
    let scale = 0.01; // 60 s -> 0.6 s
    let plan = plan("unhealthy", scale);
    let server = Spawn::default().profile("unhealthy", scale).listening();
    let clock = ready_on_time(&server, &plan).await;
    let at = server.wait_status("/livez", 500, PATIENCE).await;
    let planned = clock.ready_at() + plan.schedules[0].first;
    assert_on_time("unhealthy", at, planned, &clock);
    let body: Value = server.get_json("/livez").await;
    assert_eq!(body["phase"], "unhealthy");
    assert!(
        body["status"].as_str().unwrap().contains("unhealthy"),
        "{body}"
    );
    assert_eq!(server.post_json("/predict", &record()).await.status(), 200);
    assert_eq!(server.status("/readyz").await, 200);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .contains(r#"chaos_inference_fault_events_total{action="start",fault="unhealthy"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn flapping_readiness_follows_its_windows() {
    let scale = 0.05; // first at 1 s after ready, 0.5 s unready in every 1.5 s
    let plan = plan("flapping-readiness", scale);
    let s = &plan.schedules[0];
    let server = Spawn::default()
        .profile("flapping-readiness", scale)
        .listening();
    let clock = server.ready_clock().await;
    // Readiness changes for two periods, each seen between the last look with the old status
    // (when it was sent) and the first look with the new one (when it came back).
    let mut unready: Vec<Seen> = Vec::new();
    let mut back: Vec<Seen> = Vec::new();
    let (mut last, mut last_sent) = (200, Duration::ZERO);
    let until = clock.ready_at() + s.first + s.period.unwrap() * 2 + Duration::from_millis(300);
    while server.started.elapsed() < until + clock.start_latest {
        let sent = server.started.elapsed();
        let status = server.status("/readyz").await;
        let seen = Seen {
            after: last_sent,
            by: server.started.elapsed(),
        };
        if status != last {
            match status {
                503 => unready.push(seen),
                _ => back.push(seen),
            }
            last = status;
        }
        last_sent = sent;
        assert_eq!(server.status("/livez").await, 200, "liveness stays green");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        unready.len() >= 2 && back.len() >= 2,
        "unready {unready:?}, back {back:?}"
    );
    for k in 0..2 {
        let o = s.occurrence(k as u64).unwrap();
        let (start, end) = (
            clock.ready_at() + o.start,
            clock.ready_at() + o.end.unwrap(),
        );
        assert_on_time(&format!("window {k} start"), unready[k], start, &clock);
        assert_on_time(&format!("window {k} end"), back[k], end, &clock);
    }
}

#[tokio::test]
async fn latency_slows_predictions_with_a_long_tail_but_never_probes() {
    let scale = 0.2; // median 10 ms, p99 200 ms
    let server = Spawn::default().profile("latency", scale).ready().await;
    let mut took: Vec<Duration> = Vec::new();
    for _ in 0..60 {
        let started = Instant::now();
        assert_eq!(server.post_json("/predict", &record()).await.status(), 200);
        took.push(started.elapsed());
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median >= Duration::from_millis(5) && median <= Duration::from_millis(60),
        "median {median:?}"
    );
    assert!(took[took.len() - 1] >= median * 2, "no tail: {took:?}");
    // Probes get no injected latency: their median is a small part of the predictions', which
    // pay the same client, connection and scheduling costs plus a 10 ms median of their own.
    let mut probes: Vec<Duration> = Vec::new();
    for path in ["/livez", "/readyz"].repeat(20) {
        let started = Instant::now();
        assert_eq!(server.status(path).await, 200);
        probes.push(started.elapsed());
    }
    probes.sort();
    let probe_median = probes[probes.len() / 2];
    assert!(
        probe_median * 2 < median,
        "probes were delayed: median {probe_median:?} against the predictions' {median:?}"
    );
}

#[tokio::test]
async fn errors_fail_a_fraction_of_predictions_only() {
    let server = Spawn::default().profile("errors", 1.0).ready().await;
    let mut failed = 0;
    for _ in 0..300 {
        let response = server.post_json("/predict", &record()).await;
        let status = response.status().as_u16();
        if status != 200 {
            assert!(status == 500 || status == 503, "{status}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error_type"], "chaos");
            failed += 1;
        }
    }
    // 10% of 300 = 30; a binomial draw stays within 10..60 with overwhelming probability.
    assert!((10..=60).contains(&failed), "{failed} of 300 failed");
    for path in ["/livez", "/readyz", "/metrics", "/chaos"] {
        for _ in 0..20 {
            assert_eq!(server.status(path).await, 200, "{path}");
        }
    }
}

#[tokio::test]
async fn memory_leak_grows_resident_memory_at_its_rate() {
    let scale = 0.02; // starts 0.1 s after ready; 10 MiB/s is a rate, not scaled
    let server = Spawn::default().profile("memory-leak", scale).ready().await;
    timing::poll(
        &server,
        "the leak's start",
        Duration::from_millis(20),
        PATIENCE,
        || async {
            let chaos = server.get_json("/chaos").await;
            let past = chaos["past"].as_array()?.clone();
            past.iter()
                .any(|e| e["fault"] == "leak" && e["action"] == "start")
                .then_some(())
        },
    )
    .await;
    // The leak thread schedules its chunks on the monotonic clock, the one the process and
    // this test share, and catches up when the machine delayed it: over 2 s its growth stays
    // within one 100 ms tick of its rate, so the band holds on a busy machine.
    let (rss0, t0) = (server.rss_bytes(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss1, t1) = (server.rss_bytes(), Instant::now());
    let rate = (rss1 as f64 - rss0 as f64) / (1 << 20) as f64 / (t1 - t0).as_secs_f64();
    assert!((6.0..=14.0).contains(&rate), "grew {rate:.1} MiB/s");
    let metrics = server.get("/metrics").await.text().await.unwrap();
    let leaked: f64 = metrics
        .lines()
        .find(|l| l.starts_with("chaos_inference_leaked_bytes "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(leaked >= 20.0 * (1 << 20) as f64, "leaked {leaked}");
}

#[tokio::test]
async fn cpu_burn_keeps_a_thread_running() {
    // How much CPU the burner gets depends on what else the machine runs; that it always wants
    // the CPU does not: its thread is runnable (state R) at every look, where an idle thread
    // sleeps (S). So the test holds on a loaded machine too.
    let server = Spawn::default().profile("cpu-burn", 1.0).ready().await;
    let task = server
        .wait_for_thread("chaos-burn-0")
        .unwrap_or_else(|| panic!("no burn thread; logs:\n{}", server.logs().join("\n")));
    let (mut runnable, looks) = (0, 100);
    for _ in 0..looks {
        if server.thread_state(&task) == Some('R') {
            runnable += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        runnable >= looks * 9 / 10,
        "runnable at {runnable} of {looks} looks"
    );
    let idle = server.wait_for_thread("inference-0").unwrap();
    assert_ne!(
        server.thread_state(&idle),
        Some('R'),
        "an idle worker sleeps"
    );
    assert_eq!(server.post_json("/predict", &record()).await.status(), 200);
}

#[tokio::test]
async fn slow_shutdown_ignores_sigterm_until_sigkill() {
    let mut server = Spawn::default().profile("slow-shutdown", 1.0).ready().await;
    server.signal(libc::SIGTERM);
    server.wait_status("/readyz", 503, PATIENCE).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(server.alive(), "SIGTERM must be ignored");
    assert_eq!(server.status("/livez").await, 200);
    assert_eq!(server.post_json("/predict", &record()).await.status(), 200);
    let chaos = server.get_json("/chaos").await;
    assert!(
        chaos["past"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["fault"] == "ignore-sigterm"),
        "{chaos}"
    );
    server.signal(libc::SIGKILL);
    let (status, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{}", ended(&status));
}

/// Crash modes through the overrides: (mode, expected end).
#[tokio::test]
async fn every_crash_mode_ends_the_process_as_named() {
    let cases: [(&str, Option<i32>, Option<i32>); 4] = [
        ("exit", Some(7), None),
        ("panic", Some(101), None),
        ("abort", None, Some(libc::SIGABRT)),
        ("sigkill", None, Some(libc::SIGKILL)),
    ];
    for (mode, code, signal) in cases {
        let mut server = Spawn::default()
            .env("CHAOS_CRASH_AFTER", "200ms")
            .env("CHAOS_CRASH_MODE", mode)
            .env("CHAOS_EXIT_CODE", "7")
            .ready()
            .await;
        let (status, _) = server.wait_exit(PATIENCE).await;
        assert_eq!(
            (status.code(), status.signal()),
            (code, signal),
            "{mode}: {}",
            ended(&status)
        );
        let message = server.termination_message();
        assert!(message.starts_with("none: crash"), "{mode}: {message}");
    }
}

#[tokio::test]
async fn oom_crash_allocates_until_the_memory_limit_stops_it() {
    // Without a container, a 2 GiB address-space limit plays the memory limit: the allocation
    // that crosses it fails and the process aborts. Under a cgroup limit it is OOMKilled instead.
    let mut server = Spawn::default()
        .env("CHAOS_CRASH_AFTER", "100ms")
        .env("CHAOS_CRASH_MODE", "oom")
        .env("INFERENCE_WORKERS", "1")
        .address_space_limit(2 << 30)
        .ready()
        .await;
    let (status, _) = server.wait_exit(PATIENCE).await;
    assert!(
        status.signal() == Some(libc::SIGABRT) || status.signal() == Some(libc::SIGKILL),
        "{}",
        ended(&status)
    );
    assert!(
        server.termination_message().contains("crash (oom)"),
        "{}",
        server.termination_message()
    );
}

#[tokio::test]
async fn hang_crash_mode_keeps_the_process_but_not_the_answers() {
    let mut server = Spawn::default()
        .env("CHAOS_CRASH_AFTER", "100ms")
        .env("CHAOS_CRASH_MODE", "hang")
        .ready()
        .await;
    let look = || async {
        let answer = server
            .client
            .get(server.url("/livez"))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        answer.is_err_and(|e| e.is_timeout()).then_some(())
    };
    timing::poll(
        &server,
        "the hang",
        Duration::from_millis(10),
        PATIENCE,
        look,
    )
    .await;
    assert!(
        look().await.is_some(),
        "a hang holds every later request too"
    );
    assert!(server.alive());
}

#[test]
fn plan_prints_the_same_timeline_for_a_seed_and_another_for_another_seed() {
    let run = |seed: &str| run_cli(&["plan", "--profile", "v2", "--seed", seed], &[]);
    let (code, a, _) = run("1");
    assert_eq!(code, Some(0));
    assert_eq!(a, run("1").1);
    assert_ne!(a, run("2").1);
    assert!(a.contains("fault[0] crash (exit code 1) starts"), "{a}");
    // The printed plan is the plan the server follows.
    let expected = Plan::new(&Profile::load("v2").unwrap(), 1, 1.0).render(3);
    assert_eq!(a, expected);
    let (_, scaled, _) = run_cli(
        &[
            "plan",
            "--profile",
            "crash-loop",
            "--seed",
            "1",
            "--time-scale",
            "0.1",
        ],
        &[],
    );
    assert!(scaled.contains("ready + 500ms"), "{scaled}");
}

#[test]
fn profiles_lists_every_builtin() {
    let (code, out, _) = run_cli(&["profiles"], &[]);
    assert_eq!(code, Some(0));
    for name in [
        "none",
        "v2",
        "slow-start",
        "crash-loop",
        "liveness-hang",
        "unhealthy",
        "flapping-readiness",
        "latency",
        "errors",
        "memory-leak",
        "cpu-burn",
        "slow-shutdown",
        "overload",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{out}"
        );
    }
}

#[tokio::test]
async fn chaos_route_shows_past_and_next_events_with_countdowns() {
    let scale = 0.05;
    let server = Spawn::default()
        .profile("flapping-readiness", scale)
        .ready()
        .await;
    let chaos = server.get_json("/chaos").await;
    assert_eq!(chaos["profile"], "flapping-readiness");
    assert_eq!(chaos["time_scale"], scale);
    let next = &chaos["next"][0];
    assert_eq!(next["fault"], "unready");
    assert!(next["in_ms"].as_u64().unwrap() <= 1000, "{chaos}");
    server.wait_status("/readyz", 503, PATIENCE).await;
    let chaos = server.get_json("/chaos").await;
    assert_eq!(chaos["phase"], "unready");
    let past = chaos["past"].as_array().unwrap();
    assert!(
        past.iter()
            .any(|e| e["fault"] == "unready" && e["action"] == "start"),
        "{chaos}"
    );
    assert_eq!(chaos["next"][0]["action"], "end");
    server.logs_with(&[r#""level":"WARN","message":"chaos event""#]);
}

#[tokio::test]
async fn same_seed_gives_the_same_observed_timeline() {
    let scale = 0.02;
    let planned = plan("v2", scale);
    let Effect::Crash { .. } = planned.schedules[0].effect else {
        panic!("v2's first fault is its crash")
    };
    for run in 0..2 {
        let mut server = Spawn::default().profile("v2", scale).listening();
        let clock = ready_on_time(&server, &planned).await;
        let (_, exited) = server.wait_exit(PATIENCE).await;
        let crash = clock.ready_at() + planned.schedules[0].first;
        assert_on_time(&format!("run {run}: crash (exit)"), exited, crash, &clock);
    }
}
