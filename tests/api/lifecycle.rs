//! Start-up, readiness, SIGTERM and drain, and configuration errors, seen from outside.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::{PATIENCE, Spawn, ended, free_port, record, run_cli};
use crate::timing::{self, assert_reported_on_time};

#[tokio::test]
async fn probes_fail_while_the_model_loads_and_pass_after() {
    // A 1.5 s load delay: port open, startup and readiness 503, liveness 200.
    let server = Spawn::default()
        .env("CHAOS_STARTUP_DELAY", "1500ms")
        .listening();
    assert_eq!(server.status("/livez").await, 200);
    assert_eq!(server.status("/startupz").await, 503);
    let response = server.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["phase"], "loading");
    assert_eq!(server.post_json("/predict", &record()).await.status(), 503);
    assert_eq!(server.status("/v2/models/heart-disease/ready").await, 503);

    let clock = server.ready_clock().await;
    assert_reported_on_time("ready", clock.ready_at(), Duration::from_millis(1500));
    assert_eq!(server.status("/startupz").await, 200);
    assert_eq!(server.post_json("/predict", &record()).await.status(), 200);
}

/// ONNX Runtime writes a device id and an event database under the cache folder, or warns at
/// every start where it cannot (a read-only root, `HOME=/`), unless told not to.
#[tokio::test]
async fn onnx_runtime_writes_nothing_and_does_not_warn_about_telemetry() {
    let home = tempfile::tempdir().unwrap();
    let server = Spawn::default()
        .env("HOME", home.path().to_str().unwrap())
        .env(
            "XDG_CACHE_HOME",
            home.path().join(".cache").to_str().unwrap(),
        )
        .ready()
        .await;
    assert_eq!(server.post_json("/predict", &record()).await.status(), 200);
    let written: Vec<_> = walk(home.path());
    assert!(written.is_empty(), "written under HOME: {written:?}");
    let logs = server.logs().join("\n");
    assert!(
        !logs.to_lowercase().contains("telemetry"),
        "a telemetry line in the log: {logs}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            let mut below = if path.is_dir() {
                walk(&path)
            } else {
                Vec::new()
            };
            below.push(path);
            below
        })
        .collect()
}

#[tokio::test]
async fn bind_delay_keeps_the_port_closed_but_load_delay_does_not() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let server = Spawn::default()
        .bind(&address)
        .env("CHAOS_BIND_DELAY", "1500ms")
        .start();
    // The process starts after the spawn, so its port stays closed at least until 1.5 s after.
    while server.started.elapsed() < Duration::from_secs(1) {
        assert!(
            TcpStream::connect(&address).is_err(),
            "port open {:?} after spawn, during the bind delay",
            server.started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.port();
    assert!(server.started.elapsed() >= Duration::from_millis(1500));
    assert!(TcpStream::connect(&address).is_ok());
    server.wait_ready().await;
}

#[tokio::test]
async fn sigterm_fails_readiness_at_once_and_finishes_in_flight_requests() {
    // Every prediction takes 3 s, longer than SHUTDOWN_DELAY, so the one in flight at SIGTERM is
    // still running when the listener closes: only the drain can finish it.
    let mut server = Spawn::default()
        .env("CHAOS_LATENCY", "3s")
        .env("SHUTDOWN_DELAY", "1500ms")
        .env("DRAIN_TIMEOUT", "10s")
        .ready()
        .await;
    let (client, url, started) = (
        server.client.clone(),
        server.url("/predict"),
        server.started,
    );
    let in_flight = tokio::spawn(async move {
        let response = client.post(url).json(&record()).send().await;
        (response.map(|r| r.status().as_u16()), started.elapsed())
    });
    // The prediction and the scrape that sees it.
    server.wait_in_flight("http", 2).await;
    server.signal(libc::SIGTERM);
    server
        .wait_status("/readyz", 503, Duration::from_secs(1))
        .await;
    assert_eq!(server.status("/livez").await, 200, "draining is not dead");
    // The listener closes after SHUTDOWN_DELAY; the prediction must still be running then.
    let address = format!("127.0.0.1:{}", server.port());
    let (_, closed) = timing::poll(
        &server,
        "the listener closed",
        Duration::from_millis(10),
        PATIENCE,
        || async { TcpStream::connect(&address).is_err().then_some(()) },
    )
    .await;
    let (answer, finished) = in_flight.await.unwrap();
    assert!(
        matches!(answer, Ok(200)),
        "the in-flight request must complete: {answer:?}; logs:\n{}",
        server.logs().join("\n")
    );
    assert!(
        finished > closed.by,
        "the prediction ended {finished:?} after spawn, before the listener closed (by {:?}): \
         nothing was in flight to drain",
        closed.by
    );
    let (exit, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(
        exit.code(),
        Some(0),
        "{}; logs:\n{}",
        ended(&exit),
        server.logs().join("\n")
    );
    server.logs_with(&["\"to\":\"draining\"", "drained; exiting"]);
}

#[tokio::test]
async fn sigint_exits_zero_promptly_when_idle() {
    let mut server = Spawn::default().ready().await;
    server.signal(libc::SIGINT);
    let (exit, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(exit.code(), Some(0), "{}", ended(&exit));
}

#[tokio::test]
async fn sigterm_with_grpc_off_exits_when_drained_not_after_the_drain_window() {
    // Nothing in flight: a drained server exits at once. A 60 s drain window makes waiting it
    // out (as shutdown did when gRPC was off) fail against the 20 s patience.
    let mut server = Spawn::default()
        .env("GRPC_BIND", "")
        .env("DRAIN_TIMEOUT", "60s")
        .ready()
        .await;
    server.signal(libc::SIGTERM);
    let (exit, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(exit.code(), Some(0), "{}", ended(&exit));
    server.logs_with(&["drained; exiting"]);
}

fn assert_config_error(env: &[(&str, &str)], needle: &str) {
    let (code, _, stderr) = run_cli(&[], env);
    assert_eq!(code, Some(2), "{env:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{env:?}: one line expected, got:\n{stderr}");
    assert!(lines[0].contains(needle), "{env:?}: {stderr}");
}

#[test]
fn invalid_configuration_exits_2_with_one_line_naming_the_variable() {
    assert_config_error(&[("CHAOS_PROFILE", "nope")], "CHAOS_PROFILE=nope");
    assert_config_error(&[("CHAOS_TIME_SCALE", "fast")], "CHAOS_TIME_SCALE");
    assert_config_error(&[("CHAOS_TIME_SCALE", "-1")], "CHAOS_TIME_SCALE");
    assert_config_error(&[("CHAOS_CRASH_AFTER", "10")], "CHAOS_CRASH_AFTER");
    assert_config_error(&[("CHAOS_CRASH_MODE", "boom")], "CHAOS_CRASH_MODE");
    assert_config_error(&[("CHAOS_CRASH_MODE", "abort")], "CHAOS_CRASH_AFTER");
    assert_config_error(&[("CHAOS_ERROR_RATE", "1.5")], "CHAOS_ERROR_RATE");
    assert_config_error(&[("CHAOS_SEED", "x")], "CHAOS_SEED");
    // The same limit and message as `cores` in a profile and `cores` on the admin route.
    assert_config_error(
        &[("CHAOS_BURN_CORES", "1000")],
        "CHAOS_BURN_CORES: expected a number above 0 and at most 256, got 1000",
    );
    assert_config_error(&[("BIND", "localhost")], "BIND");
    assert_config_error(&[("DRAIN_TIMEOUT", "soon")], "DRAIN_TIMEOUT");
    assert_config_error(&[("CHAOS_CRASH_AFTER", "400days")], "limit of 365 days");
    assert_config_error(
        &[("INFERENCE_INLINE", "2000")],
        "<INFERENCE_INLINE>': expected auto, off or a row count",
    );
    assert_config_error(
        &[("BATCH_MAX_ROWS", "0")],
        "<BATCH_MAX_ROWS>': expected auto or a row count from 1 to 65536, got `0`",
    );
    assert_config_error(
        &[("BATCH_MAX_DELAY", "5s")],
        "<BATCH_MAX_DELAY>': at most 1s, got `5s`",
    );
    assert_config_error(&[("BATCH_MAX_DELAY", "soon")], "BATCH_MAX_DELAY");
    assert_config_error(
        &[("ADMIN_TOKEN", "a"), ("ADMIN_TOKEN_FILE", "/etc/hostname")],
        "ADMIN_TOKEN_FILE",
    );
    assert_config_error(
        &[("MODEL_PATH", "/nonexistent/model.onnx")],
        "MODEL_PATH=/nonexistent/model.onnx",
    );
    assert_config_error(
        &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")],
        "ORT_DYLIB_PATH",
    );
}

#[test]
fn malformed_profile_files_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[fault]]\ntype = \"crash\"\nafter = \"a while\"\n",
            "expected a duration",
        ),
        ("[[fault]]\ntype = \"crash\"\nafterr = \"1s\"\n", "afterr"),
        ("[[fault]]\ntype = \"errors\"\nrate = 3\n", "fault[0].rate"),
        ("[startup\n", "line 1"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("p{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap().to_string();
        assert_config_error(&[("CHAOS_PROFILE", &path)], needle);
    }
}

#[test]
fn a_model_file_that_is_not_onnx_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.onnx");
    std::fs::write(&path, b"not a model").unwrap();
    let (code, _, stderr) = run_cli(&[], &[("MODEL_PATH", path.to_str().unwrap())]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("broken.onnx"), "{stderr}");
}

#[test]
fn a_missing_onnx_runtime_says_how_to_get_it() {
    // The search order itself is unit-tested with folders of its own (model::runtime); this
    // runs the real binary far from .ort/, with no Python on PATH. Where the machine has a
    // system-wide library the binary must find it instead.
    let system = ["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu"]
        .iter()
        .any(|d| std::path::Path::new(d).join("libonnxruntime.so").exists());
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("chaos-inference");
    // A hard link, not a copy: a copy is open for writing for a moment, and a child that another
    // test thread forks then inherits that descriptor until it execs, so running the copy can
    // fail with "Text file busy" (ETXTBSY). A copy only where a link cannot be made, retried.
    if std::fs::hard_link(crate::helpers::BIN, &bin).is_err() {
        std::fs::copy(crate::helpers::BIN, &bin).unwrap();
    }
    let mut attempts = 0;
    let out = loop {
        let out = std::process::Command::new(&bin)
            .current_dir(dir.path())
            .env_clear()
            .env("BIND", "127.0.0.1:0")
            // Read after the library is loaded: with a system-wide library the start stops here.
            .env("MODEL_PATH", "/nonexistent/model.onnx")
            .output();
        match out {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            out => break out.unwrap(),
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if system {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("system library folder"), "{stdout}{stderr}");
        assert!(stderr.contains("MODEL_PATH=/nonexistent"), "{stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("scripts/fetch-onnxruntime.sh"), "{stderr}");
}

#[tokio::test]
async fn the_probe_subcommand_checks_routes() {
    let server = Spawn::default()
        .env("CHAOS_STARTUP_DELAY", "2s")
        .listening();
    let addr = format!("127.0.0.1:{}", server.port());
    let (code, _, _) = run_cli(&["probe", "livez", "--addr", &addr], &[]);
    assert_eq!(code, Some(0));
    let (code, _, stderr) = run_cli(&["probe", "readyz", "--addr", &addr], &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
    server.wait_ready().await;
    let (code, stdout, _) = run_cli(&["probe", "startupz", "--addr", &addr], &[]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("200"), "{stdout}");
    let (code, _, _) = run_cli(
        &[
            "probe",
            "livez",
            "--addr",
            &format!("127.0.0.1:{}", free_port()),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "nothing listening");
}

/// SIGTERM in the middle of a load, with clients that behave like a load balancer: they send
/// only while the last readiness check (every 200 ms) passed. Every request sent completes with
/// 200: readiness fails at once, the server keeps serving for SHUTDOWN_DELAY (longer than the
/// check period), then drains. Clients open a fresh connection per request, so no request can be
/// lost to a keep-alive connection closing. (Without the delay, connections that complete their
/// handshake in the last instant before the listener closes are reset by the kernel: that is why
/// the manifests set SHUTDOWN_DELAY.)
#[tokio::test]
async fn sigterm_under_load_loses_no_request_sent_while_ready() {
    let mut server = Spawn::default()
        .env("SHUTDOWN_DELAY", "1s")
        .env("DRAIN_TIMEOUT", "5s")
        .ready()
        .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (client, url, ready, stop) = (
            client.clone(),
            server.url("/readyz"),
            ready.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let ok = matches!(client.get(&url).send().await, Ok(r) if r.status() == 200);
                ready.store(ok, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let url = server.url("/predict");
    let deadline = Instant::now() + Duration::from_secs(6);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, ready) = (client.clone(), url.clone(), ready.clone());
            tokio::spawn(async move {
                let (mut ok, mut lost) = (0u32, Vec::new());
                while Instant::now() < deadline && ok < 50_000 {
                    if !ready.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    match client.post(&url).json(&record()).send().await {
                        Ok(r) if r.status() == 200 => ok += 1,
                        Ok(r) => lost.push(format!("status {}", r.status())),
                        Err(e) => lost.push(format!("{:?}", std::error::Error::source(&e))),
                    }
                }
                (ok, lost)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.signal(libc::SIGTERM);
    let (mut ok, mut lost) = (0, Vec::new());
    for w in workers {
        let (o, l) = w.await.unwrap();
        ok += o;
        lost.extend(l);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    poller.await.unwrap();
    let (exit, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(exit.code(), Some(0), "{}", ended(&exit));
    assert!(
        lost.is_empty(),
        "{} of {} requests failed: {:?}",
        lost.len(),
        ok as usize + lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests completed");
}
