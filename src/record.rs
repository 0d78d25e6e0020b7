//! `chaos-inference record`: measure any application's timeline from outside and write it as a
//! timeline file (the profile language plus `[endpoints]` and `[resources]`), which `simulate
//! --app` models and `timeline` checks.
//!
//! The command is started `--runs` times, each a fresh process in a process group of its own.
//! From its start, every 20 ms: a TCP connect to the port, a GET of each path (1 s timeout) and a
//! `grpc.health.v1.Health/Check` of each gRPC service, each in a thread of its own; every 100 ms
//! the resident memory of the whole process group. Once every endpoint has passed it waits a
//! second, measures latency idle (and, with `--load`, under that load from the `load` client),
//! then, with `--sigterm`, sends SIGTERM to the command's own process (as a container runtime
//! signals only a container's first process: a multi-process server's workers are left to it)
//! and watches readiness and the exit; otherwise it stops the process group. The timeline's
//! ranges cover every run, widened by the polling interval (a moment is known to lie between
//! the last poll that did not see it and the first that did), and its comments keep each run's
//! raw figures.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::chaos::endpoints::Endpoint;
use crate::http1::{self, Until};
use crate::load::{LoadArgs, LoadOutput, RateStep};

/// How often each endpoint is polled.
pub const POLL: Duration = Duration::from_millis(20);
/// How often the process group's memory is read.
const MEMORY_POLL: Duration = Duration::from_millis(100);
/// How long an HTTP or gRPC check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// After every endpoint passed, before measuring (startup noise settles).
const SETTLE: Duration = Duration::from_secs(1);
/// How long latency is measured idle, and under `--load`.
const MEASURE: Duration = Duration::from_secs(3);
/// How long a process may take to exit after SIGTERM before it counts as ignoring it.
const SIGTERM_GRACE: Duration = Duration::from_secs(30);

/// Which check an endpoint follows in the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Follows {
    Liveness,
    Readiness,
    Startup,
    /// Passes from the moment the port opens.
    Always,
}

impl Follows {
    fn key(self) -> &'static str {
        match self {
            Follows::Liveness => "liveness",
            Follows::Readiness => "readiness",
            Follows::Startup => "startup",
            Follows::Always => "always",
        }
    }

    /// `readiness=/ready`, or a bare endpoint (readiness: what tells that it is up).
    fn split(text: &str) -> (Follows, &str) {
        for kind in [
            Follows::Liveness,
            Follows::Readiness,
            Follows::Startup,
            Follows::Always,
        ] {
            if let Some(rest) = text.strip_prefix(&format!("{}=", kind.key())) {
                return (kind, rest);
            }
        }
        (Follows::Readiness, text)
    }
}

/// Arguments of `chaos-inference record`.
#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// Starts of the command to measure, each a fresh process.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// The port it listens on for HTTP (its TCP connect is polled).
    #[arg(long)]
    pub port: Option<u16>,
    /// An HTTP path to poll, as `PATH` (it follows readiness) or `CHECK=PATH` with CHECK one of
    /// liveness, readiness, startup, always. Repeatable.
    #[arg(long = "path", value_name = "[CHECK=]PATH")]
    pub paths: Vec<String>,
    /// The gRPC port, for `--grpc-service`.
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// A gRPC health service to check (`""` for the server as a whole), as for `--path`.
    /// Repeatable.
    #[arg(long = "grpc-service", value_name = "[CHECK=]SERVICE")]
    pub grpc_services: Vec<String>,
    /// Take the ports, paths and services from a container's probes in this manifest.
    #[arg(long, value_name = "FILE")]
    pub from_manifest: Option<String>,
    /// The container of `--from-manifest`, when its pods have several.
    #[arg(long, value_name = "NAME", requires = "from_manifest")]
    pub container: Option<String>,
    /// Once ready, offer this many requests per second for a few seconds (the `load` client)
    /// and measure every endpoint's latency under it.
    #[arg(long, value_name = "RATE", value_parser = RateStep::parse)]
    pub load: Option<RateStep>,
    /// The path the load goes to (with --load).
    #[arg(long, default_value = "/", requires = "load")]
    pub load_path: String,
    /// A JSON file the load POSTs (with --load; default: GET).
    #[arg(long, value_name = "FILE", requires = "load")]
    pub load_body: Option<String>,
    /// Once ready, send SIGTERM and record when readiness fails, when it exits and how.
    #[arg(long)]
    pub sigterm: bool,
    /// Measure an application already running at this URL instead (latency, and with --load
    /// latency under load; no start-up).
    #[arg(long, conflicts_with_all = ["command", "sigterm"])]
    pub url: Option<String>,
    /// Give up when a run is not ready after this long.
    #[arg(long, default_value = "5m", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
    /// Write the timeline here (default: standard output). Written whole, or not at all.
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
    /// The command that starts the application, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// One thing to poll, and the check it follows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub follows: Follows,
    pub endpoint: Endpoint,
}

/// What `record` polls.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub host: String,
    pub port: u16,
    pub grpc_port: Option<u16>,
    pub targets: Vec<Target>,
}

/// What one run saw; times in milliseconds from the start of the process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    /// The first TCP connect that succeeded.
    pub open: Option<f64>,
    /// The last poll before it that did not.
    pub closed_until: f64,
    /// Per target: the first poll that passed and the last before it that did not.
    pub first_pass: BTreeMap<Target, (f64, f64)>,
    /// Per target: answer times of the polls that passed, idle and under load (ms).
    pub idle_latency: BTreeMap<Target, Vec<f64>>,
    pub load_latency: BTreeMap<Target, Vec<f64>>,
    /// What the load client got.
    pub load: Option<LoadSeen>,
    /// The most memory the process group held, bytes.
    pub peak_rss: Option<u64>,
    pub sigterm: Option<Sigterm>,
}

/// What the load client got in one run: requests sent and served, p50 and p99 (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSeen {
    pub sent: u64,
    pub served: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// What SIGTERM did in one run; times from the SIGTERM, milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Sigterm {
    /// When a readiness endpoint first failed after it.
    pub unready: Option<f64>,
    /// When the process exited, and its exit code (or signal, negative).
    pub exit: Option<(f64, i32)>,
}

/// Reads the spec from the arguments (and `--from-manifest`); an error names the flag.
pub fn spec(args: &RecordArgs) -> Result<Spec, String> {
    let mut targets = Vec::new();
    let mut port = args.port;
    let mut grpc_port = args.grpc_port;
    let mut host = "127.0.0.1".to_string();
    if let Some(url) = &args.url {
        let target = crate::load::Target::parse(url).map_err(|e| format!("--url: {e}"))?;
        host = target.host;
        port = port.or(Some(target.port));
    }
    if let Some(file) = &args.from_manifest {
        let probed = from_manifest(file, args.container.as_deref())?;
        port = port.or(probed.port);
        grpc_port = grpc_port.or(probed.grpc_port);
        targets.extend(probed.targets);
    }
    for text in &args.paths {
        let (follows, path) = Follows::split(text);
        let endpoint: Endpoint = path.parse().map_err(|e| format!("--path {text}: {e}"))?;
        if !matches!(endpoint, Endpoint::Path(_)) {
            return Err(format!(
                "--path {text}: expected an HTTP path such as /healthz"
            ));
        }
        targets.push(Target { follows, endpoint });
    }
    for text in &args.grpc_services {
        let (follows, service) = Follows::split(text);
        targets.push(Target {
            follows,
            endpoint: Endpoint::Grpc(service.to_string()),
        });
    }
    let port = port
        .ok_or("--port: give the port the application listens on (or --from-manifest, or --url)")?;
    if targets
        .iter()
        .any(|t| matches!(t.endpoint, Endpoint::Grpc(_)))
        && grpc_port.is_none()
    {
        return Err("--grpc-service: give --grpc-port too".into());
    }
    if args.url.is_none() && args.command.is_empty() {
        return Err(
            "give the command after `--` (or --url for an application already running)".into(),
        );
    }
    if args.runs == 0 || args.runs > 100 {
        return Err(format!("--runs: expected 1 to 100, got {}", args.runs));
    }
    targets.sort();
    targets.dedup();
    for (i, a) in targets.iter().enumerate() {
        if let Some(b) = targets[i + 1..].iter().find(|b| b.endpoint == a.endpoint) {
            return Err(format!(
                "`{}` is given as {} and as {}: an endpoint follows one check",
                a.endpoint,
                a.follows.key(),
                b.follows.key()
            ));
        }
    }
    Ok(Spec {
        host,
        port,
        grpc_port,
        targets,
    })
}

/// What a container's probes call: its ports and targets.
struct Probed {
    port: Option<u16>,
    grpc_port: Option<u16>,
    targets: Vec<Target>,
}

/// The ports and probe targets of a container's probes in a manifest.
fn from_manifest(file: &str, container: Option<&str>) -> Result<Probed, String> {
    use crate::simulate::manifest::{self, Handler};
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let input = manifest::read(&[(file.to_string(), text)]).map_err(|e| e.to_string())?;
    let containers: Vec<&manifest::Container> = input
        .workloads
        .iter()
        .flat_map(|w| w.template.containers.iter())
        .filter(|c| container.is_none_or(|name| c.name == name))
        .collect();
    let c = match (containers.as_slice(), container) {
        ([one], _) => *one,
        ([], Some(name)) => return Err(format!("--container {name}: no such container in {file}")),
        ([], None) => {
            return Err(format!(
                "--from-manifest {file}: no Pod, ReplicaSet or Deployment"
            ));
        }
        (_, _) => {
            return Err(format!(
                "--from-manifest {file}: several containers; name one with --container"
            ));
        }
    };
    let (mut port, mut grpc_port, mut targets) = (None, None, Vec::new());
    for (follows, probe) in [
        (Follows::Startup, &c.startup),
        (Follows::Liveness, &c.liveness),
        (Follows::Readiness, &c.readiness),
    ] {
        let Some(probe) = probe else { continue };
        match &probe.handler {
            Handler::Http { path, port: p } => {
                port.get_or_insert(*p);
                targets.push(Target {
                    follows,
                    endpoint: Endpoint::Path(path.split('?').next().unwrap_or(path).to_string()),
                });
            }
            Handler::Grpc { port: p, service } => {
                grpc_port.get_or_insert(*p);
                targets.push(Target {
                    follows,
                    endpoint: Endpoint::Grpc(service.clone()),
                });
            }
            Handler::Tcp { port: p } => {
                port.get_or_insert(*p);
            }
            Handler::Exec { .. } => {}
        }
    }
    if port.is_none() {
        port = c.ports.first().map(|(_, p)| *p);
    }
    Ok(Probed {
        port,
        grpc_port,
        targets,
    })
}

/// Whether a poll of `target` passes now, and how long it took (ms).
fn check(spec: &Spec, target: &Target) -> (bool, f64) {
    let started = Instant::now();
    let passed = match &target.endpoint {
        Endpoint::Path(path) => {
            let address = format!("{}:{}", spec.host, spec.port);
            let Ok(address) = resolve(&address) else {
                return (false, 0.0);
            };
            let request = http1::Request {
                method: "GET",
                path,
                host: &format!("{}:{}", spec.host, spec.port),
                user_agent: "chaos-inference-record",
                body: b"",
            };
            http1::exchange(address, &request, CHECK_TIMEOUT, Until::StatusLine)
                .is_ok_and(|a| (200..400).contains(&a.status))
        }
        Endpoint::Grpc(service) => {
            let target = format!("{}:{}", spec.host, spec.grpc_port.unwrap_or(spec.port));
            crate::probe::grpc(&target, service, CHECK_TIMEOUT).is_ok()
        }
        Endpoint::Exec(_) => false,
    };
    (passed, started.elapsed().as_secs_f64() * 1000.0)
}

fn resolve(address: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    address
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{address}: no address"))
}

/// What the pollers are measuring now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Starting,
    Idle,
    Load,
    Stopping,
}

/// What the pollers share.
#[derive(Default)]
struct Seen {
    open: Option<f64>,
    closed_until: f64,
    first_pass: BTreeMap<Target, (f64, f64)>,
    last_fail: BTreeMap<Target, f64>,
    phase: Phase,
    idle_latency: BTreeMap<Target, Vec<f64>>,
    load_latency: BTreeMap<Target, Vec<f64>>,
    /// When SIGTERM was sent, and when a readiness endpoint first failed after it.
    sigterm: Option<(f64, Option<f64>)>,
    peak_rss: Option<u64>,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Polls `spec` until `stop`, from `started`, into `seen`; the memory of process group
/// `group` when given.
fn pollers(
    spec: &Arc<Spec>,
    started: Instant,
    seen: &Arc<Mutex<Seen>>,
    stop: &Arc<AtomicBool>,
    group: Option<i32>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    {
        let (spec, seen, stop) = (Arc::clone(spec), Arc::clone(seen), Arc::clone(stop));
        threads.push(std::thread::spawn(move || {
            let address = resolve(&format!("{}:{}", spec.host, spec.port)).ok();
            while !stop.load(Ordering::SeqCst) {
                let sent = ms(started);
                let open = address.is_some_and(|a| {
                    TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok()
                });
                let mut s = seen.lock().unwrap();
                if open {
                    s.open.get_or_insert(ms(started));
                    break;
                }
                s.closed_until = sent;
                drop(s);
                std::thread::sleep(POLL);
            }
        }));
    }
    for target in spec.targets.clone() {
        let (spec, seen, stop) = (Arc::clone(spec), Arc::clone(seen), Arc::clone(stop));
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let sent = ms(started);
                let (passed, took) = check(&spec, &target);
                let now = ms(started);
                let mut s = seen.lock().unwrap();
                if passed {
                    let fail = s.last_fail.get(&target).copied().unwrap_or(0.0);
                    s.first_pass.entry(target.clone()).or_insert((now, fail));
                    let bucket = match s.phase {
                        Phase::Idle => Some(&mut s.idle_latency),
                        Phase::Load => Some(&mut s.load_latency),
                        _ => None,
                    };
                    if let Some(bucket) = bucket {
                        bucket.entry(target.clone()).or_default().push(took);
                    }
                } else {
                    s.last_fail.insert(target.clone(), sent);
                    if target.follows == Follows::Readiness
                        && let Some((at, unready @ None)) = &mut s.sigterm
                        && sent >= *at
                    {
                        *unready = Some(now);
                    }
                }
                drop(s);
                std::thread::sleep(POLL);
            }
        }));
    }
    if let Some(group) = group {
        let (seen, stop) = (Arc::clone(seen), Arc::clone(stop));
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(rss) = group_rss(group) {
                    let mut s = seen.lock().unwrap();
                    s.peak_rss = Some(s.peak_rss.map_or(rss, |p| p.max(rss)));
                }
                std::thread::sleep(MEMORY_POLL);
            }
        }));
    }
    threads
}

/// Resident memory of every process of process group `group`, bytes.
fn group_rss(group: i32) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command (which may hold spaces) start after the last ')':
        // state, ppid, pgrp.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let pgrp = rest
            .split_whitespace()
            .nth(2)
            .and_then(|p| p.parse::<i32>().ok());
        if pgrp != Some(group) {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        {
            total += kib * 1024;
            any = true;
        }
    }
    any.then_some(total)
}

/// Starts the command in a process group of its own (so its children are signalled and
/// measured with it), its output discarded.
fn start(command: &[String]) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{}: cannot start: {e}", command[0]))
}

fn signal_group(child: &Child, signal: i32) {
    // SAFETY: kill(2) of the process group this process started.
    unsafe {
        libc::kill(-(child.id() as i32), signal);
    }
}

/// Stops the process group: SIGTERM, then SIGKILL after 10 s; waits for it.
fn stop_group(child: &mut Child) {
    signal_group(child, libc::SIGTERM);
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(child, libc::SIGKILL);
    let _ = child.wait();
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// Offers the load of `--load` for `MEASURE`: what the client got.
fn offer_load(args: &RecordArgs, spec: &Spec) -> Result<LoadSeen, String> {
    let rate = args.load.expect("called with --load");
    let body = match &args.load_body {
        Some(file) => {
            Some(std::fs::read_to_string(file).map_err(|e| format!("--load-body {file}: {e}"))?)
        }
        None => None,
    };
    let load = LoadArgs {
        url: format!("http://{}:{}{}", spec.host, spec.port, args.load_path),
        rates: vec![RateStep {
            rate: rate.rate,
            from: Duration::ZERO,
        }],
        duration: MEASURE,
        requests: 100_000,
        timeout: Duration::from_secs(5),
        get: body.is_none(),
        body,
        output: LoadOutput::Json,
        connections: None,
        max_in_flight: 1024,
    };
    let summary = crate::load::run_with(&load, &|_| {})?;
    let (p50, p99) = summary
        .total
        .as_ref()
        .map_or((None, None), |w| (w.p50_ms, w.p99_ms));
    Ok(LoadSeen {
        sent: summary.sent,
        served: summary.ok,
        p50_ms: p50,
        p99_ms: p99,
    })
}

/// One run: start the command (or, with `--url`, look at what runs), wait until every target
/// passes, measure, then SIGTERM (with `--sigterm`) or stop it.
fn record_run(args: &RecordArgs, spec: &Arc<Spec>) -> Result<Run, String> {
    let mut child = match &args.url {
        Some(_) => None,
        None => Some(start(&args.command)?),
    };
    let started = Instant::now();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let group = child.as_ref().map(|c| c.id() as i32);
    let threads = pollers(spec, started, &seen, &stop, group);
    let finish = |child: &mut Option<Child>, stop: &Arc<AtomicBool>| {
        stop.store(true, Ordering::SeqCst);
        if let Some(child) = child.as_mut() {
            stop_group(child);
        }
    };
    // Until the port is open and every target has passed.
    loop {
        let s = seen.lock().unwrap();
        let ready = s.open.is_some() && spec.targets.iter().all(|t| s.first_pass.contains_key(t));
        let (open, passed) = (s.open.is_some(), s.first_pass.len());
        drop(s);
        if ready {
            break;
        }
        if let Some(c) = child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            stop.store(true, Ordering::SeqCst);
            return Err(format!(
                "`{}` exited with {} after {:.1} s, before it was ready",
                args.command.join(" "),
                exit_code(status),
                started.elapsed().as_secs_f64()
            ));
        }
        if started.elapsed() > args.timeout {
            finish(&mut child, &stop);
            let missing: Vec<String> = {
                let s = seen.lock().unwrap();
                spec.targets
                    .iter()
                    .filter(|t| !s.first_pass.contains_key(t))
                    .map(|t| t.endpoint.to_string())
                    .collect()
            };
            return Err(if !open {
                format!(
                    "port {} never opened within --timeout {}",
                    spec.port,
                    humantime::format_duration(args.timeout)
                )
            } else {
                format!(
                    "{} never answered 2xx/3xx within --timeout {} ({passed} of {} did)",
                    missing.join(", "),
                    humantime::format_duration(args.timeout),
                    spec.targets.len()
                )
            });
        }
        std::thread::sleep(POLL);
    }
    std::thread::sleep(SETTLE);
    seen.lock().unwrap().phase = Phase::Idle;
    std::thread::sleep(MEASURE);
    let load = if args.load.is_some() {
        seen.lock().unwrap().phase = Phase::Load;
        let load = offer_load(args, spec);
        if load.is_err() {
            finish(&mut child, &stop);
        }
        Some(load?)
    } else {
        None
    };
    // A command that ended by itself once ready (a server that stops when a model fails to
    // load) has no shutdown to measure, and its timeline would miss the exit.
    if let Some(c) = child.as_mut()
        && let Ok(Some(status)) = c.try_wait()
    {
        let after = started.elapsed().as_secs_f64();
        finish(&mut child, &stop);
        return Err(format!(
            "`{}` exited with {} after {after:.1} s, by itself once it was ready",
            args.command.join(" "),
            exit_code(status),
        ));
    }
    seen.lock().unwrap().phase = Phase::Stopping;
    let mut sigterm = None;
    if args.sigterm
        && let Some(c) = child.as_mut()
    {
        let sent = ms(started);
        seen.lock().unwrap().sigterm = Some((sent, None));
        // The process alone: signalling its group would stop its workers at the same moment,
        // where under a kubelet they are the process's own to stop.
        // SAFETY: kill(2) of the child this process started and has not yet waited for.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let until = Instant::now() + SIGTERM_GRACE;
        let mut exit = None;
        while Instant::now() < until {
            if let Ok(Some(status)) = c.try_wait() {
                exit = Some((ms(started) - sent, exit_code(status)));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let unready = seen
            .lock()
            .unwrap()
            .sigterm
            .and_then(|(_, u)| u)
            .map(|u| u - sent);
        sigterm = Some(Sigterm { unready, exit });
    }
    finish(&mut child, &stop);
    for t in threads {
        let _ = t.join();
    }
    let s = seen.lock().unwrap();
    // An HTTP path that passed proves the port open: its poll can come before the connect
    // poll sees it (they run side by side), and the port cannot open after it.
    let passed = s
        .first_pass
        .iter()
        .filter(|(t, _)| matches!(t.endpoint, Endpoint::Path(_)))
        .map(|(_, (at, _))| *at)
        .reduce(f64::min);
    let open = match (s.open, passed) {
        (Some(o), Some(p)) => Some(o.min(p)),
        (o, p) => o.or(p),
    };
    Ok(Run {
        open,
        closed_until: open.map_or(s.closed_until, |o| s.closed_until.min(o)),
        first_pass: s.first_pass.clone(),
        idle_latency: s.idle_latency.clone(),
        load_latency: s.load_latency.clone(),
        load,
        peak_rss: s.peak_rss,
        sigterm,
    })
}

/// Runs `record`: the timeline text (written to `--out` when given), or one line on why not.
pub fn run(args: &RecordArgs) -> Result<String, String> {
    let spec = Arc::new(spec(args)?);
    let mut runs = Vec::new();
    let count = if args.url.is_some() { 1 } else { args.runs };
    for i in 0..count {
        eprintln!("record: run {} of {count}", i + 1);
        runs.push(record_run(args, &spec)?);
    }
    let what = if args.command.is_empty() {
        args.url.clone().unwrap_or_default()
    } else {
        args.command.join(" ")
    };
    let text = render(&spec, &what, args.url.is_some(), &runs);
    // The text must be a timeline this tool reads back: no half-good file.
    crate::simulate::app::file::AppTimeline::parse("recorded", &text)
        .map_err(|e| format!("the recorded timeline does not read back ({e}); nothing written"))?;
    if let Some(out) = &args.out {
        let tmp = format!("{out}.tmp-{}", std::process::id());
        std::fs::write(&tmp, &text).map_err(|e| format!("--out {out}: {e}"))?;
        std::fs::rename(&tmp, out).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("--out {out}: {e}")
        })?;
    }
    Ok(text)
}

/// A duration range as a timeline writes it, in whole milliseconds: `40ms..90ms`.
fn range(low: f64, high: f64) -> String {
    let (low, high) = (low.max(0.0).floor() as u64, high.max(0.0).ceil() as u64);
    if low == high {
        format!("{low}ms")
    } else {
        format!("{low}ms..{high}ms")
    }
}

/// The `q` quantile of `values` (sorted here).
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1])
}

/// The timeline of the runs: each range covers every run, widened by the polling interval.
pub fn render(spec: &Spec, what: &str, running: bool, runs: &[Run]) -> String {
    let poll = POLL.as_secs_f64() * 1000.0;
    let mut out = String::new();
    let _ = writeln!(out, "# Recorded by `chaos-inference record` from: {what}");
    let _ = writeln!(
        out,
        "# {} run(s), polled every {} ms; each range covers every run, widened by the polling interval.",
        runs.len(),
        poll
    );
    for (i, run) in runs.iter().enumerate() {
        let mut line = format!("#   run {}:", i + 1);
        if let Some(open) = run.open {
            let _ = write!(line, " port open at {:.0} ms;", open);
        }
        for (target, (pass, _)) in &run.first_pass {
            let _ = write!(line, " {} passed at {:.0} ms;", target.endpoint, pass);
        }
        if let Some(rss) = run.peak_rss {
            let _ = write!(
                line,
                " peak RSS {:.1} MiB;",
                rss as f64 / f64::from(1 << 20)
            );
        }
        if let Some(load) = run.load {
            let _ = write!(
                line,
                " load: {} of {} served, p50 {} ms, p99 {} ms;",
                load.served,
                load.sent,
                load.p50_ms.map_or("-".into(), |x| format!("{x:.1}")),
                load.p99_ms.map_or("-".into(), |x| format!("{x:.1}"))
            );
        }
        if let Some(t) = &run.sigterm {
            let _ = write!(
                line,
                " SIGTERM: readiness {}, exit {}",
                t.unready
                    .map_or("kept passing".into(), |u| format!("failed after {u:.0} ms")),
                t.exit
                    .map_or("never (ignored)".into(), |(at, code)| if code < 0 {
                        format!(
                            "after {at:.0} ms by signal {} (exit code {})",
                            -code,
                            128 - code
                        )
                    } else {
                        format!("after {at:.0} ms with exit code {code}")
                    })
            );
        }
        let _ = writeln!(out, "{}", line.trim_end_matches(';'));
    }
    let _ = writeln!(out, "description = {:?}", format!("recorded: {what}"));
    // Start-up: the port between the last closed poll and the first open one; ready when the
    // last readiness or startup target first passed (or the port, with none).
    let open: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| (r.closed_until, r.open.unwrap_or(0.0)))
        .collect();
    let ready_kinds = [Follows::Readiness, Follows::Startup];
    let loaded: Vec<f64> = runs
        .iter()
        .map(|r| {
            let open = r.open.unwrap_or(0.0);
            r.first_pass
                .iter()
                .filter(|(t, _)| ready_kinds.contains(&t.follows))
                .map(|(_, (pass, _))| *pass)
                .fold(open, f64::max)
                - open
        })
        .collect();
    if !running {
        let _ = writeln!(out, "\n[startup]");
        let (low, high) = (
            open.iter().map(|o| o.0).fold(f64::INFINITY, f64::min),
            open.iter().map(|o| o.1).fold(0.0, f64::max),
        );
        let _ = writeln!(out, "bind-delay = {:?}", range(low, high));
        let (low, high) = (
            loaded.iter().copied().fold(f64::INFINITY, f64::min) - poll,
            loaded.iter().copied().fold(0.0, f64::max) + poll,
        );
        let _ = writeln!(out, "load-delay = {:?}", range(low, high));
        // Liveness passes while loading when it passed as soon as the port was open (within
        // two polls), or a poll before readiness did.
        let live = runs.iter().all(|r| {
            let open = r.open.unwrap_or(0.0);
            let ready = r
                .first_pass
                .iter()
                .filter(|(t, _)| ready_kinds.contains(&t.follows))
                .map(|(_, (p, _))| *p)
                .fold(open, f64::max);
            r.first_pass
                .iter()
                .filter(|(t, _)| t.follows == Follows::Liveness)
                .all(|(_, (p, _))| *p - open <= 2.0 * poll || *p < ready - poll)
        });
        let _ = writeln!(out, "live-while-loading = {live}");
    }
    let sigterms: Vec<&Sigterm> = runs.iter().filter_map(|r| r.sigterm.as_ref()).collect();
    if !sigterms.is_empty() {
        let _ = writeln!(out, "\n[shutdown]");
        if sigterms.iter().any(|t| t.exit.is_none()) {
            let _ = writeln!(out, "ignore-sigterm = true");
        } else {
            let exits: Vec<f64> = sigterms
                .iter()
                .filter_map(|t| t.exit.map(|e| e.0))
                .collect();
            let low = exits.iter().copied().fold(f64::INFINITY, f64::min);
            let high = exits.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(out, "exit-after = {:?}", range(low - poll, high + poll));
            // Readiness failed before the exit in every run: it fails at SIGTERM.
            let unready = sigterms
                .iter()
                .all(|t| matches!((t.unready, t.exit), (Some(u), Some((e, _))) if u < e));
            let _ = writeln!(out, "unready-on-sigterm = {unready}");
        }
    }
    let _ = writeln!(out, "\n[endpoints]");
    let _ = writeln!(out, "http-port = {}", spec.port);
    if let Some(g) = spec.grpc_port {
        let _ = writeln!(out, "grpc-port = {g}");
    }
    for follows in [
        Follows::Liveness,
        Follows::Readiness,
        Follows::Startup,
        Follows::Always,
    ] {
        let list: Vec<String> = spec
            .targets
            .iter()
            .filter(|t| t.follows == follows)
            .map(|t| format!("{:?}", t.endpoint.to_string()))
            .collect();
        if !list.is_empty() {
            let _ = writeln!(out, "{} = [{}]", follows.key(), list.join(", "));
        }
    }
    let mut latency = String::new();
    for target in &spec.targets {
        let all: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.idle_latency.get(target).into_iter().flatten().copied())
            .collect();
        let under: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.load_latency.get(target).into_iter().flatten().copied())
            .collect();
        if let (Some(low), Some(p99)) = (quantile(&all, 0.0), quantile(&all, 0.99)) {
            let _ = write!(
                latency,
                "{:?} = {:?}",
                target.endpoint.to_string(),
                range(low, p99)
            );
            if let (Some(p50), Some(p99)) = (quantile(&under, 0.5), quantile(&under, 0.99)) {
                let _ = write!(latency, "  # under load: p50 {p50:.1} ms, p99 {p99:.1} ms");
            }
            latency.push('\n');
        }
    }
    if !latency.is_empty() {
        let _ = writeln!(
            out,
            "\n# Idle answer times, fastest to the 99th percentile."
        );
        let _ = write!(out, "[endpoints.latency]\n{latency}");
    }
    let rss: Vec<u64> = runs.iter().filter_map(|r| r.peak_rss).collect();
    if let (Some(low), Some(high)) = (rss.iter().min(), rss.iter().max()) {
        let mib = |b: u64| b.div_ceil(1 << 20);
        let _ = writeln!(out, "\n[resources]");
        let _ = writeln!(
            out,
            "# The peak resident memory of the process group in each run."
        );
        let (low, high) = (mib(*low), mib(*high));
        if low == high {
            let _ = writeln!(out, "working-set = \"{low}Mi\"");
        } else {
            let _ = writeln!(out, "working-set = \"{low}Mi..{high}Mi\"");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        record: RecordArgs,
    }

    fn args(line: &[&str]) -> RecordArgs {
        let mut all = vec!["record"];
        all.extend_from_slice(line);
        Cli::try_parse_from(all).unwrap().record
    }

    #[test]
    fn probes_of_a_manifest_give_the_ports_and_what_each_path_follows() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pod.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: app
    image: x
    ports: [{name: http, containerPort: 9000}]
    startupProbe: {httpGet: {path: /started, port: http}}
    livenessProbe: {tcpSocket: {port: http}}
    readinessProbe: {httpGet: {path: /ready?full=1, port: http}}
",
        )
        .unwrap();
        let spec = spec(&args(&[
            "--from-manifest",
            file.to_str().unwrap(),
            "--",
            "app",
        ]))
        .unwrap();
        assert_eq!(spec.port, 9000);
        let got: Vec<(Follows, String)> = spec
            .targets
            .iter()
            .map(|t| (t.follows, t.endpoint.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                (Follows::Readiness, "/ready".to_string()),
                (Follows::Startup, "/started".to_string())
            ]
        );
    }

    #[test]
    fn ranges_cover_every_run_widened_by_the_poll() {
        let spec = Spec {
            host: "127.0.0.1".into(),
            port: 8080,
            grpc_port: None,
            targets: vec![Target {
                follows: Follows::Readiness,
                endpoint: Endpoint::Path("/ready".into()),
            }],
        };
        let target = spec.targets[0].clone();
        let run = |open: f64, ready: f64, exit: f64| Run {
            open: Some(open),
            closed_until: open - 20.0,
            first_pass: [(target.clone(), (ready, ready - 20.0))].into(),
            idle_latency: [(target.clone(), vec![2.0, 3.0, 9.0])].into(),
            peak_rss: Some(300 << 20),
            sigterm: Some(Sigterm {
                unready: Some(1.0),
                exit: Some((exit, 0)),
            }),
            ..Run::default()
        };
        let text = render(
            &spec,
            "app",
            false,
            &[run(1000.0, 41_000.0, 2000.0), run(3000.0, 93_000.0, 2500.0)],
        );
        // Open between 980 ms (the first run's last closed poll) and 3000 ms; loaded 40-90 s
        // after, each end moved out by one poll.
        assert!(text.contains("bind-delay = \"980ms..3000ms\""), "{text}");
        assert!(text.contains("load-delay = \"39980ms..90020ms\""), "{text}");
        assert!(text.contains("exit-after = \"1980ms..2520ms\""), "{text}");
        assert!(text.contains("unready-on-sigterm = true"), "{text}");
        assert!(text.contains("\"/ready\" = \"2ms..9ms\""), "{text}");
        assert!(text.contains("working-set = \"300Mi\""), "{text}");
        crate::simulate::app::file::AppTimeline::parse("t.toml", &text).unwrap();
    }
}
