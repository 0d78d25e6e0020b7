//! `chaos-inference record` against real processes: this server with a known start-up and
//! shutdown, and Python's `http.server`; its timelines read back by `timeline` and `simulate`.

use crate::helpers::{BIN, free_port, run_cli};

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// The low and high end, in ms, of `key = "Xms..Yms"` (or `"Xms"`) in a timeline.
fn range_ms(text: &str, key: &str) -> (f64, f64) {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"));
    let value = line.split('"').nth(1).unwrap();
    let ms = |v: &str| v.trim_end_matches("ms").parse::<f64>().unwrap();
    match value.split_once("..") {
        Some((a, b)) => (ms(a), ms(b)),
        None => (ms(value), ms(value)),
    }
}

#[test]
fn the_servers_own_start_up_and_shutdown_are_measured_within_their_windows() {
    // A 1.5 s load, readiness failing at SIGTERM, then 600 ms of shutdown delay.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("server.toml");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let (code, _, stderr) = run_cli(
        &[
            "record",
            "--runs",
            "2",
            "--port",
            &port.to_string(),
            "--path",
            "readiness=/readyz",
            "--path",
            "liveness=/livez",
            "--sigterm",
            "--out",
            out.to_str().unwrap(),
            "--",
            BIN,
        ],
        &[
            ("BIND", bind.as_str()),
            ("GRPC_BIND", ""),
            ("CHAOS_STARTUP_DELAY", "1500ms"),
            ("SHUTDOWN_DELAY", "600ms"),
            ("LOG_FORMAT", "json"),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let text = read(&out);
    // The load delay is 1.5 s and the model's own load a few tens of ms; a busy machine only
    // makes it later.
    let (low, high) = range_ms(&text, "load-delay");
    assert!(
        low <= 1500.0 + 20.0 && high >= 1500.0,
        "{low}..{high}\n{text}"
    );
    // Readiness fails the moment SIGTERM comes; the process exits after the shutdown delay.
    assert!(text.contains("unready-on-sigterm = true"), "{text}");
    let (low, high) = range_ms(&text, "exit-after");
    assert!(low <= 650.0 && high >= 600.0, "{low}..{high}\n{text}");
    assert!(text.contains("live-while-loading = true"), "{text}");
    assert!(text.contains(&format!("http-port = {port}")), "{text}");
    assert!(text.contains("working-set = "), "{text}");
    // It reads back.
    let (code, shown, stderr) = run_cli(&["timeline", out.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(shown.contains("/readyz follows readiness"), "{shown}");
}

#[test]
fn an_ordinary_http_server_is_recorded_and_simulated() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.toml");
    let port = free_port().to_string();
    let (code, _, stderr) = run_cli(
        &[
            "record",
            "--runs",
            "3",
            "--port",
            &port,
            "--path",
            "/",
            "--out",
            out.to_str().unwrap(),
            "--",
            "python3",
            "-m",
            "http.server",
            &port,
            "--bind",
            "127.0.0.1",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let text = read(&out);
    assert_eq!(text.matches("#   run ").count(), 3, "{text}");
    let (code, _, stderr) = run_cli(&["timeline", out.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    // A Deployment of it, simulated from the recording: Ready within a few seconds.
    let manifest = dir.path().join("web.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: python:3.11
        readinessProbe: {{httpGet: {{path: /, port: {port}}}, periodSeconds: 2}}
"
        ),
    )
    .unwrap();
    let app = format!("web={}", out.display());
    let (code, stdout, stderr) = run_cli(
        &[
            "simulate",
            manifest.to_str().unwrap(),
            "--app",
            &app,
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // Ready no later than the slowest recorded start (port, then path) plus a readiness period
    // (2 s) and the cluster's pace (up to 4 s to start a container): how fast Python starts
    // depends on how busy the machine is, so the bound comes from the recording.
    // Then up to 1.5 s until the kubelet's probe workers see the container running.
    let slowest = (range_ms(&text, "bind-delay").1 + range_ms(&text, "load-delay").1) / 1000.0;
    let ready = &report["pods"][0]["first_ready"];
    assert!(
        ready["latest_s"].as_f64().unwrap() <= slowest + 2.0 + 4.0 + 1.5 + 0.5,
        "{ready} (slowest recorded start {slowest} s)"
    );
}

#[test]
fn sigterm_goes_to_the_command_alone_as_a_container_runtime_sends_it() {
    // A server with a worker process: SIGTERM makes it exit 0 after 500 ms, while losing its
    // worker makes it exit 5 at once. Signalled alone (as the runtime signals a container's
    // first process), it takes its 500 ms; had its whole process group been signalled, the
    // worker would have died with it.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("server.py");
    std::fs::write(
        &script,
        r#"import http.server, os, signal, subprocess, sys, threading, time
worker = subprocess.Popen(["sleep", "60"])
def watch():
    worker.wait()
    os._exit(5)
threading.Thread(target=watch, daemon=True).start()
def term(*_):
    time.sleep(0.5)
    os._exit(0)
signal.signal(signal.SIGTERM, term)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"#,
    )
    .unwrap();
    let out = dir.path().join("t.toml");
    let port = free_port().to_string();
    let (code, _, stderr) = run_cli(
        &[
            "record",
            "--runs",
            "1",
            "--port",
            &port,
            "--path",
            "/",
            "--sigterm",
            "--out",
            out.to_str().unwrap(),
            "--",
            "python3",
            script.to_str().unwrap(),
            &port,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let text = read(&out);
    assert!(text.contains("with exit code 0"), "{text}");
    let (low, _) = range_ms(&text, "exit-after");
    assert!(low >= 450.0, "{low}\n{text}");
}

#[test]
fn what_cannot_be_recorded_exits_2_with_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.toml");
    let port = free_port().to_string();
    let out_s = out.to_str().unwrap();
    let quits = format!(
        "import http.server, os, threading\n\
         s = http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler)\n\
         threading.Timer(1.0, lambda: os._exit(4)).start()\n\
         s.serve_forever()"
    );
    for (args, needle) in [
        (
            vec![
                "--port",
                &port[..],
                "--out",
                out_s,
                "--",
                "/no/such/command",
            ],
            "cannot start",
        ),
        (
            vec![
                "--port",
                &port[..],
                "--timeout",
                "1s",
                "--out",
                out_s,
                "--",
                "sleep",
                "30",
            ],
            "never opened within --timeout 1s",
        ),
        (
            vec![
                "--port",
                &port[..],
                "--path",
                "/nope",
                // Long enough for Python to open its port on a busy machine.
                "--timeout",
                "10s",
                "--out",
                out_s,
                "--",
                "python3",
                "-m",
                "http.server",
                &port[..],
                "--bind",
                "127.0.0.1",
            ],
            "/nope never answered 2xx/3xx",
        ),
        (vec!["--path", "/", "--", "true"], "--port"),
        (vec!["--port", &port[..]], "give the command after `--`"),
        (
            vec![
                "--port",
                &port[..],
                "--path",
                "/",
                "--path",
                "liveness=/",
                "--",
                "true",
            ],
            "an endpoint follows one check",
        ),
        (
            vec!["--port", &port[..], "--", "sh", "-c", "exit 3"],
            "exited with 3",
        ),
        (
            // Ready, then gone by itself a second later (before the measurements end).
            vec![
                "--port",
                &port[..],
                "--sigterm",
                "--out",
                out_s,
                "--",
                "python3",
                "-c",
                &quits,
            ],
            "exited with 4",
        ),
    ] {
        let mut all = vec!["record", "--runs", "1"];
        all.extend(args.iter().copied());
        let (code, _, stderr) = run_cli(&all, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let last = stderr.trim().lines().last().unwrap_or("");
        assert!(last.contains(needle), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?}: a file was written");
    }
}
