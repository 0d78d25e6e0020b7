//! Starts the real binary on a free port and talks to it over real HTTP, like a user or the
//! kubelet would.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::timing::{self, Seen, ServerClock};

pub const BIN: &str = env!("CARGO_BIN_EXE_chaos-inference");

/// A generous limit for anything that should take well under a second, so a loaded 2-core
/// machine does not make tests flaky.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The example heart-disease record (`models/heart-disease/example.json`, the README's).
pub fn record() -> Value {
    serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/heart-disease/example.json"
    )))
    .unwrap()
}

/// The same record as a row in feature order, by the server's own schema code.
pub fn row() -> Vec<f64> {
    let schema = chaos_inference::model::schema::ModelSchema::from_json(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/heart-disease/schema.json"
    )))
    .unwrap();
    schema.rows_from_body(&record(), 1).unwrap().0.remove(0)
}

/// The fixture written by models/heart-disease/train.py: rows and onnxruntime's outputs.
pub fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/heart-disease/fixture.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// How to start the server.
pub struct Spawn {
    env: Vec<(String, String)>,
    bind: String,
    limit_address_space: Option<u64>,
    unset: Vec<String>,
}

impl Default for Spawn {
    fn default() -> Self {
        Spawn {
            env: Vec::new(),
            bind: "127.0.0.1:0".into(),
            limit_address_space: None,
            unset: Vec::new(),
        }
    }
}

impl Spawn {
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn profile(self, name: &str, time_scale: f64) -> Self {
        self.env("CHAOS_PROFILE", name)
            .env("CHAOS_TIME_SCALE", time_scale.to_string())
    }

    /// Leaves `key` unset, though the harness sets it by default (`BIND`, `GRPC_BIND`, ...).
    pub fn without(mut self, key: &str) -> Self {
        self.unset.push(key.into());
        self
    }

    /// A fixed address, for tests that must know the port before it opens.
    pub fn bind(mut self, address: &str) -> Self {
        self.bind = address.into();
        self
    }

    /// Caps virtual memory (RLIMIT_AS), so an OOM crash ends quickly without a container.
    pub fn address_space_limit(mut self, bytes: u64) -> Self {
        self.limit_address_space = Some(bytes);
        self
    }

    /// Starts the process without waiting for it to listen.
    pub fn start(self) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let termination_log = dir.path().join("termination-log");
        let mut command = Command::new(BIN);
        for (key, _) in std::env::vars() {
            if key.starts_with("CHAOS_")
                || key == "ADMIN_TOKEN"
                || key == "MODEL_PATH"
                || key == "RUST_LOG"
                || key == "ORT_DISABLE_TELEMETRY"
            {
                command.env_remove(key);
            }
        }
        command
            .env("BIND", &self.bind)
            .env("GRPC_BIND", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("CHAOS_SEED", "42")
            .env("HTTP_WORKERS", "2")
            .env("INFERENCE_WORKERS", "2")
            .env("TERMINATION_LOG", &termination_log)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for key in &self.unset {
            command.env_remove(key);
        }
        if let Some(limit) = self.limit_address_space {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches only the child's limits.
            unsafe {
                command.pre_exec(move || {
                    let rl = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let started = Instant::now();
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let (grpc_tx, grpc_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "listening" {
                        let _ = port_tx.send(v["port"].as_u64().unwrap() as u16);
                    } else if v["message"] == "listening (gRPC)" {
                        let _ = grpc_tx.send(v["port"].as_u64().unwrap() as u16);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(format!("stderr: {line}"));
            }
        });
        TestServer {
            child,
            port_rx: Mutex::new(Some(port_rx)),
            port: Mutex::new(None),
            grpc_rx: Mutex::new(Some(grpc_rx)),
            grpc_port: Mutex::new(None),
            logs,
            termination_log,
            started,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    /// Starts the process and waits for it to listen.
    pub fn listening(self) -> TestServer {
        let server = self.start();
        server.port();
        server
    }

    /// Starts the process and waits for `/readyz` to answer 200.
    pub async fn ready(self) -> TestServer {
        let server = self.listening();
        server.wait_ready().await;
        server
    }
}

/// A running server process.
pub struct TestServer {
    pub child: Child,
    port_rx: Mutex<Option<mpsc::Receiver<u16>>>,
    port: Mutex<Option<u16>>,
    grpc_rx: Mutex<Option<mpsc::Receiver<u16>>>,
    grpc_port: Mutex<Option<u16>>,
    logs: Arc<Mutex<Vec<String>>>,
    pub termination_log: PathBuf,
    pub started: Instant,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// The port, once the "listening" log line has come.
    pub fn port(&self) -> u16 {
        if let Some(port) = *self.port.lock().unwrap() {
            return port;
        }
        let rx = self
            .port_rx
            .lock()
            .unwrap()
            .take()
            .expect("port already awaited");
        let port = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("server did not listen; logs:\n{}", self.logs().join("\n")));
        *self.port.lock().unwrap() = Some(port);
        port
    }

    /// The gRPC port, once the "listening (gRPC)" log line has come.
    pub fn grpc_port(&self) -> u16 {
        if let Some(port) = *self.grpc_port.lock().unwrap() {
            return port;
        }
        let rx = self
            .grpc_rx
            .lock()
            .unwrap()
            .take()
            .expect("gRPC port already awaited");
        let port = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            panic!(
                "server did not listen for gRPC; logs:\n{}",
                self.logs().join("\n")
            )
        });
        *self.grpc_port.lock().unwrap() = Some(port);
        port
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The logs once every needle is in them: lines reach the test through a pipe a moment
    /// after the server wrote them, so a line is polled for, never expected at once.
    pub fn logs_with(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let logs = self.logs().join("\n");
            if needles.iter().all(|n| logs.contains(n)) {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} within {PATIENCE:?}; logs:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn status(&self, path: &str) -> u16 {
        self.get(path).await.status().as_u16()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends raw bytes with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Polls `path` until it answers `status` (every 10 ms, each look with the kubelet's 1 s
    /// timeout doubled); returns when that was seen.
    pub async fn wait_status(&self, path: &str, status: u16, limit: Duration) -> Seen {
        let what = format!("{path} answering {status}");
        let (_, seen) = timing::poll(self, &what, Duration::from_millis(10), limit, || async {
            let answer = self
                .client
                .get(self.url(path))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            matches!(answer, Ok(r) if r.status().as_u16() == status).then_some(())
        })
        .await;
        seen
    }

    pub async fn wait_ready(&self) -> Seen {
        self.wait_status("/readyz", 200, PATIENCE).await
    }

    /// Waits for readiness and returns the server's clock, checking that the server's own
    /// account of when it became ready fits what polling saw.
    pub async fn ready_clock(&self) -> ServerClock {
        let seen = self.wait_ready().await;
        let clock = ServerClock::read(self).await;
        timing::assert_on_time("readiness seen by polling", seen, clock.ready_at(), &clock);
        clock
    }

    /// One sample of `/metrics` by its name and labels as the text shows them
    /// (`chaos_inference_requests_in_flight{protocol="http"}`), if it is there.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits until the server itself counts `count` requests of `protocol` in flight (over
    /// HTTP, the scrape that asks counts itself): evidence on the server's side that a request
    /// is being served, where a sleep would only hope so.
    pub async fn wait_in_flight(&self, protocol: &str, count: u64) {
        let sample = format!("chaos_inference_requests_in_flight{{protocol=\"{protocol}\"}}");
        let what = format!("{count} {protocol} requests in flight");
        timing::poll(self, &what, Duration::from_millis(10), PATIENCE, || async {
            (self.metric(&sample).await? >= count as f64).then_some(())
        })
        .await;
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits for the process to end, polling every 5 ms; returns its status and when it ended.
    pub async fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Seen) {
        let deadline = Instant::now() + limit;
        let mut after = Duration::ZERO;
        loop {
            let looked = self.started.elapsed();
            if let Some(status) = self.child.try_wait().unwrap() {
                let by = self.started.elapsed();
                return (status, Seen { after, by });
            }
            after = looked;
            assert!(
                Instant::now() < deadline,
                "process still running after {limit:?}; logs:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Asserts that the process stays up for `span`, looking every 20 ms.
    pub async fn stays_alive(&mut self, span: Duration, why: &str) {
        let until = Instant::now() + span;
        while Instant::now() < until {
            assert!(self.alive(), "{why}; logs:\n{}", self.logs().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn termination_message(&self) -> String {
        std::fs::read_to_string(&self.termination_log).unwrap_or_default()
    }

    /// Resident memory in bytes, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap();
        kb * 1024
    }

    /// The /proc folder of the server's thread named `name`, once it exists.
    pub fn wait_for_thread(&self, name: &str) -> Option<PathBuf> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).ok()?;
            for task in tasks.flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                if comm.trim() == name {
                    return Some(task.path());
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// CPU time (user and system, in clock ticks) of the server's threads whose name starts with
    /// `prefix`, from their stat(5): what ran where, whatever else loads the machine.
    pub fn thread_cpu_ticks(&self, prefix: &str) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return 0;
        };
        tasks
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.starts_with(prefix))
            })
            .filter_map(|task| {
                let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
                // utime and stime are fields 14 and 15 of stat(5); 3 is the first after `comm`.
                Some(fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?)
            })
            .sum()
    }

    /// A thread's scheduler state (`R` runnable, `S` sleeping, ...), from its stat(5).
    pub fn thread_state(&self, task: &std::path::Path) -> Option<char> {
        let stat = std::fs::read_to_string(task.join("stat")).ok()?;
        stat[stat.rfind(')')? + 2..].chars().next()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Describes how a process ended, for assertion messages.
pub fn ended(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (_, Some(signal)) => format!("signal {signal}"),
        _ => "unknown".into(),
    }
}

/// Runs the binary to completion with arguments and environment.
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    run_binary(args, env, None)
}

/// Runs the binary to completion with `stdin` on its standard input (`simulate -`, `tune -`).
pub fn run_cli_with_stdin(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    run_binary(args, &[], Some(stdin))
}

fn run_binary(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> (Option<i32>, String, String) {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("CHAOS_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .env("BIND", "127.0.0.1:0")
        .env("GRPC_BIND", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    if let Some(text) = stdin {
        // Written whole, then closed, so the binary sees the end of its input.
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
