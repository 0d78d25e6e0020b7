//! `chaos-inference load`: steady requests at a fixed rate (in steps), one new connection each
//! (what a `curl` loop or a fresh client sees, so a Service's choice of endpoint is made per
//! request) or, with `--connections N`, over N kept-alive connections (what a pooled client
//! does: a Service picks a pod per connection, so the load stays where the connections went),
//! counting what failed and for how long. Run in a pod against a Service during a rollout, it
//! shows a strategy's outage as failed requests and seconds, from inside the cluster.
//!
//! The rate is offered whatever the answers take (an open loop, as many independent clients
//! are), up to `--max-in-flight` requests waiting at once. Bounded by time and by count; a
//! SIGTERM (the pod deleted) ends it early with its summary.

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::http1::{self, Until};

/// The example heart-disease record, sent when no body is given.
const EXAMPLE_RECORD: &str = include_str!("../models/heart-disease/example.json");

/// Most requests in flight at once by default: a rate of 100/s against a 5 s time-out can
/// have 500 waiting, and the offered rate must not fall because the target is slow.
const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// The most `--max-in-flight` may ask for (one thread each in the default mode).
const MAX_IN_FLIGHT: usize = 10_000;

/// How the progress lines are written.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LoadOutput {
    Text,
    Json,
}

/// Arguments of `chaos-inference load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Where to send: http://HOST[:PORT]/PATH (a Service name resolves through cluster DNS).
    pub url: String,
    /// Requests per second, from the start or, as RATE@WHEN, from that time on (repeatable:
    /// `--rate 30 --rate 90@60s`).
    #[arg(long = "rate", value_name = "RATE[@WHEN]", default_value = "20", value_parser = RateStep::parse)]
    pub rates: Vec<RateStep>,
    /// Stop after this long.
    #[arg(long, default_value = "60s", value_parser = crate::config::parse_duration)]
    pub duration: Duration,
    /// Stop after this many requests.
    #[arg(long, default_value_t = 100_000)]
    pub requests: u64,
    /// A request not answered within this long failed: counted as `timed out`, apart from
    /// the other failures.
    #[arg(long, default_value = "5s", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
    /// JSON body to POST; default: the example heart-disease record. `--get` sends none.
    #[arg(long, conflicts_with = "get")]
    pub body: Option<String>,
    /// Send GET requests without a body (for /livez, /readyz).
    #[arg(long)]
    pub get: bool,
    /// Progress once a second and a summary at the end, as text or JSON lines.
    #[arg(long, value_enum, default_value_t = LoadOutput::Text)]
    pub output: LoadOutput,
    /// Send over this many kept-alive connections instead of a new connection per request; a
    /// request due while every connection is busy waits for one (its wait counts against its
    /// time-out).
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// Most requests in flight at once (waiting for an answer or for a connection); past it, a
    /// request waits its turn and goes late, so keep it above rate x time-out.
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT, value_name = "N")]
    pub max_in_flight: usize,
}

/// Highest rate a step may ask for.
const MAX_RATE: f64 = 10_000.0;

/// One rate step: this many requests per second from `from` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStep {
    pub rate: f64,
    pub from: Duration,
}

impl RateStep {
    /// `RATE` (from the start) or `RATE@WHEN` (`90@60s`).
    pub fn parse(text: &str) -> Result<RateStep, String> {
        let (rate, from) = match text.split_once('@') {
            Some((rate, when)) => (rate, crate::config::parse_duration(when.trim())?),
            None => (text, Duration::ZERO),
        };
        match rate.trim().parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE => {
                Ok(RateStep { rate, from })
            }
            _ => Err(format!(
                "`{text}` is not a rate from above 0 to {MAX_RATE} requests per second, optionally @WHEN (90@60s)"
            )),
        }
    }
}

/// The rate steps of a run, in time order, the first from the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates(Vec<RateStep>);

impl Rates {
    /// Orders the steps; the first must start at 0s, and no two at the same time.
    pub fn new(mut steps: Vec<RateStep>) -> Result<Rates, String> {
        steps.sort_by_key(|s| s.from);
        match steps.first() {
            Some(first) if first.from.is_zero() => {}
            _ => return Err("give a rate from the start (one without @WHEN)".into()),
        }
        if let Some(w) = steps.windows(2).find(|w| w[0].from == w[1].from) {
            return Err(format!(
                "two rates from {}",
                humantime::format_duration(w[1].from)
            ));
        }
        Ok(Rates(steps))
    }

    /// The steps, in time order, the first from the start.
    pub fn steps(&self) -> &[RateStep] {
        &self.0
    }

    /// The rate in force at `t`.
    pub fn at(&self, t: Duration) -> f64 {
        self.0
            .iter()
            .rev()
            .find(|s| s.from <= t)
            .map_or(self.0[0].rate, |s| s.rate)
    }

    /// When the request after one due at `due` is due: one interval of the rate in force, or
    /// the start of the next step if that comes first (a step's first request goes at its
    /// start).
    pub fn next_due(&self, due: Duration) -> Duration {
        // Counted from the step's start, so that intervals do not add up rounding errors.
        let step = self
            .0
            .iter()
            .rev()
            .find(|s| s.from <= due)
            .unwrap_or(&self.0[0]);
        let k = ((due - step.from).as_secs_f64() * step.rate).round();
        let next = step.from + Duration::from_secs_f64((k + 1.0) / step.rate);
        match self.0.iter().find(|s| s.from > due) {
            Some(step) if step.from < next => step.from,
            _ => next,
        }
    }

    /// The longest interval between requests of any step (an outage's last request counts for
    /// one).
    pub fn longest_interval_s(&self) -> f64 {
        self.0.iter().map(|s| 1.0 / s.rate).fold(0.0, f64::max)
    }
}

/// Where requests go, from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("url: {url:?} must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            // An IPv6 literal keeps its colons inside brackets: [::1]:8000.
            Some((host, port)) if !port.contains(']') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("url: port {port:?} is not a number from 1 to 65535"))?,
            ),
            _ => (authority, 80),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || port == 0 {
            return Err(format!("url: {url:?} has no host or port"));
        }
        Ok(Target {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// No answer within the client's timeout (connecting, sending or waiting).
    TimedOut,
    Failed(String),
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(self, Outcome::Status(code) if (200..300).contains(code))
    }

    fn label(&self) -> String {
        match self {
            Outcome::Status(code) => format!("status {code}"),
            Outcome::TimedOut => "timed out".into(),
            Outcome::Failed(why) => why.clone(),
        }
    }
}

/// Counts so far, and the outages: runs of failed requests with no success sent between them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub elapsed_s: f64,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    /// Answers and errors other than 2xx, by kind.
    pub failures: BTreeMap<String, u64>,
    /// Runs of consecutive failed requests (in the order they were sent).
    pub outages: u64,
    /// The longest run, from its first failed request to its last plus one interval.
    pub longest_outage_s: f64,
    pub first_failure_s: Option<f64>,
    pub last_failure_s: Option<f64>,
    pub done: bool,
    /// The requests sent in the last second before this line (progress lines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_second: Option<Window>,
    /// Every request of the run: outcomes and p50/p99 (the final line only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<Window>,
}

/// The requests sent in one stretch of time: how many, how they ended and how long the
/// answered ones took.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Window {
    pub sent: u64,
    /// Outcomes by kind (`status 200`, `timed out`, ...); those still waiting are `pending`.
    pub outcomes: BTreeMap<String, u64>,
    /// Median and 99th percentile of the time to an answer (any status), in milliseconds.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Results by send time: the pure part, testable without a network.
#[derive(Debug, Default)]
pub struct Tally {
    results: Vec<(f64, Outcome)>,
    /// Send time and time to an answer, of the requests answered.
    latencies: Vec<(f64, f64)>,
    /// Send times of the requests sent, answered or not.
    sent: Vec<f64>,
}

impl Tally {
    /// A request sent at `sent_at_s` (since the start) was sent.
    pub fn sent(&mut self, sent_at_s: f64) {
        self.sent.push(sent_at_s);
    }

    /// A request sent at `sent_at_s` ended as `outcome` after `took_s`.
    pub fn record(&mut self, sent_at_s: f64, took_s: f64, outcome: Outcome) {
        if matches!(outcome, Outcome::Status(_)) {
            self.latencies.push((sent_at_s, took_s));
        }
        self.results.push((sent_at_s, outcome));
    }

    /// The requests sent from `from_s` to `to_s`.
    pub fn window(&self, from_s: f64, to_s: f64) -> Window {
        let inside = |t: f64| t >= from_s && t < to_s;
        let mut outcomes = BTreeMap::new();
        for (_, outcome) in self.results.iter().filter(|(t, _)| inside(*t)) {
            *outcomes.entry(outcome.label()).or_insert(0) += 1;
        }
        let sent = self.sent.iter().filter(|t| inside(**t)).count() as u64;
        let ended: u64 = outcomes.values().sum();
        if sent > ended {
            outcomes.insert("pending".into(), sent - ended);
        }
        let mut took: Vec<f64> = self
            .latencies
            .iter()
            .filter(|(t, _)| inside(*t))
            .map(|(_, took)| took * 1000.0)
            .collect();
        took.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            (!took.is_empty()).then(|| {
                let rank = ((q * took.len() as f64).ceil() as usize).clamp(1, took.len());
                (took[rank - 1] * 10.0).round() / 10.0
            })
        };
        Window {
            sent,
            outcomes,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
        }
    }

    pub fn summary(&self, elapsed_s: f64, interval_s: f64, done: bool) -> Summary {
        let mut ordered: Vec<&(f64, Outcome)> = self.results.iter().collect();
        ordered.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut failures = BTreeMap::new();
        let (mut ok, mut outages, mut longest) = (0, 0, 0.0f64);
        let mut run: Option<(f64, f64)> = None;
        let mut first_failure = None;
        let mut last_failure = None;
        for (at, outcome) in ordered {
            if outcome.ok() {
                ok += 1;
                if let Some((start, end)) = run.take() {
                    longest = longest.max(end - start + interval_s);
                }
            } else {
                *failures.entry(outcome.label()).or_insert(0) += 1;
                first_failure.get_or_insert(*at);
                last_failure = Some(*at);
                run = match run {
                    Some((start, _)) => Some((start, *at)),
                    None => {
                        outages += 1;
                        Some((*at, *at))
                    }
                };
            }
        }
        if let Some((start, end)) = run {
            longest = longest.max(end - start + interval_s);
        }
        // Sent counts those still waiting too; failed only those that ended without a 2xx.
        let ended = self.results.len() as u64;
        Summary {
            elapsed_s: round(elapsed_s),
            sent: ended.max(self.sent.len() as u64),
            ok,
            failed: ended - ok,
            failures,
            outages,
            longest_outage_s: round(longest),
            first_failure_s: first_failure.map(round),
            last_failure_s: last_failure.map(round),
            done,
            last_second: None,
            total: done.then(|| self.window(f64::NEG_INFINITY, f64::INFINITY)),
        }
    }
}

fn round(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}

impl Summary {
    pub fn text(&self) -> String {
        let mut line = format!(
            "{:6.1}s sent {} ok {} failed {}",
            self.elapsed_s, self.sent, self.ok, self.failed
        );
        if self.failed > 0 {
            let kinds: Vec<String> = self
                .failures
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            line.push_str(&format!(
                " ({}); outages {}, longest {:.1}s, failures from {:.1}s to {:.1}s",
                kinds.join(", "),
                self.outages,
                self.longest_outage_s,
                self.first_failure_s.unwrap_or_default(),
                self.last_failure_s.unwrap_or_default()
            ));
        }
        if let Some(w) = &self.last_second {
            let mix: Vec<String> = w
                .outcomes
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let ms = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x}ms"));
            line.push_str(&format!(
                " | last second: sent {} [{}] p50 {} p99 {}",
                w.sent,
                mix.join(", "),
                ms(w.p50_ms),
                ms(w.p99_ms)
            ));
        }
        if self.done {
            line.push_str(" (done)");
        }
        line
    }
}

static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

/// One request on a new connection, resolving the host each time (a Service's ClusterIP, or
/// its endpoints for a headless one).
pub fn request(target: &Target, method: &str, body: &[u8], timeout: Duration) -> Outcome {
    let address = match (target.host.as_str(), target.port).to_socket_addrs() {
        Ok(mut addresses) => match addresses.next() {
            Some(address) => address,
            None => return Outcome::Failed("name has no address".into()),
        },
        Err(_) => return Outcome::Failed("name not resolved".into()),
    };
    let host = format!("{}:{}", target.host, target.port);
    let request = http1::Request {
        method,
        path: &target.path,
        host: &host,
        user_agent: "chaos-inference-load",
        body,
    };
    match http1::exchange(address, &request, timeout, Until::Close) {
        Ok(answer) => Outcome::Status(answer.status),
        Err(failure) if failure.timed_out() => Outcome::TimedOut,
        Err(failure) => Outcome::Failed(failure.label()),
    }
}

/// A request for the connection pool: when it was due.
struct Job {
    /// Seconds after the start, as the tally counts it.
    sent_at: f64,
    due: Instant,
}

/// `n` threads, each with a kept-alive connection, taking the requests sent on the returned
/// channel in turn. A request that waited for a connection past the time-out is not sent.
fn connection_pool(
    n: usize,
    target: &Arc<Target>,
    method: &'static str,
    body: &Arc<Vec<u8>>,
    timeout: Duration,
    tally: &Arc<Mutex<Tally>>,
    in_flight: &Arc<AtomicUsize>,
) -> Result<std::sync::mpsc::Sender<Job>, String> {
    // Resolved once: every connection goes to the same address (a Service's ClusterIP), and
    // the Service picks a pod per connection.
    let address = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("url: {} does not resolve", target.host))?;
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for _ in 0..n {
        let (queue, target, body, tally, in_flight) = (
            Arc::clone(&queue),
            Arc::clone(target),
            Arc::clone(body),
            Arc::clone(tally),
            Arc::clone(in_flight),
        );
        std::thread::spawn(move || {
            let mut connection = http1::KeepAlive::new(address);
            let host = format!("{}:{}", target.host, target.port);
            loop {
                let job = match queue.lock().unwrap().recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                let waited = job.due.elapsed();
                let outcome = if waited >= timeout {
                    Outcome::TimedOut
                } else {
                    let request = http1::Request {
                        method,
                        path: &target.path,
                        host: &host,
                        user_agent: "chaos-inference-load",
                        body: &body,
                    };
                    match connection.exchange(&request, timeout - waited) {
                        Ok(answer) => Outcome::Status(answer.status),
                        Err(failure) if failure.timed_out() => Outcome::TimedOut,
                        Err(failure) => Outcome::Failed(failure.label()),
                    }
                };
                let took = job.due.elapsed().as_secs_f64();
                tally.lock().unwrap().record(job.sent_at, took, outcome);
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
    Ok(jobs)
}

/// Validates the arguments: a clear one-line error for each.
pub fn validate(args: &LoadArgs) -> Result<(Target, Rates), String> {
    let target = Target::parse(&args.url)?;
    let rates = Rates::new(args.rates.clone()).map_err(|e| format!("--rate: {e}"))?;
    if args.duration.is_zero() || args.requests == 0 || args.timeout.is_zero() {
        return Err("--duration, --requests and --timeout must be above 0".into());
    }
    if !(1..=MAX_IN_FLIGHT).contains(&args.max_in_flight) {
        return Err(format!(
            "--max-in-flight: expected 1 to {MAX_IN_FLIGHT}, got {}",
            args.max_in_flight
        ));
    }
    if let Some(n) = args.connections
        && !(1..=1024).contains(&n)
    {
        return Err(format!("--connections: expected 1 to 1024, got {n}"));
    }
    if let Some(body) = &args.body {
        serde_json::from_str::<serde_json::Value>(body)
            .map_err(|e| format!("--body: not JSON: {e}"))?;
    }
    Ok((target, rates))
}

/// Runs the load as the `load` command does: SIGTERM or SIGINT ends it early, and a line is
/// printed each second and at the end. Returns the final summary.
pub fn run(args: &LoadArgs) -> Result<Summary, String> {
    validate(args)?;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_terminate as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            on_terminate as *const () as libc::sighandler_t,
        );
    }
    let output = args.output;
    run_with(args, &|summary: &Summary| match output {
        LoadOutput::Text => println!("{}", summary.text()),
        LoadOutput::Json => println!("{}", serde_json::to_string(summary).unwrap_or_default()),
    })
}

/// Runs the load, handing each second's summary and the last to `print`; for callers of their
/// own (`record`), which keep their own signal handling.
pub fn run_with(args: &LoadArgs, print: &dyn Fn(&Summary)) -> Result<Summary, String> {
    let (target, rates) = validate(args)?;
    let target = Arc::new(target);
    let (method, body): (&str, Arc<Vec<u8>>) = if args.get {
        ("GET", Arc::new(Vec::new()))
    } else {
        let body = args.body.as_deref().unwrap_or(EXAMPLE_RECORD.trim());
        ("POST", Arc::new(body.as_bytes().to_vec()))
    };
    let interval_s = rates.longest_interval_s();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut next_report = Duration::from_secs(1);
    // A progress line once a second: the totals, and the requests sent in the second before.
    let report = |next_report: &mut Duration| {
        let now = started.elapsed();
        if now >= *next_report {
            let tally = tally.lock().unwrap();
            let mut summary = tally.summary(now.as_secs_f64(), interval_s, false);
            let to = next_report.as_secs_f64();
            summary.last_second = Some(tally.window(to - 1.0, to));
            drop(tally);
            print(&summary);
            *next_report += Duration::from_secs(1);
        }
    };
    let pool = match args.connections {
        Some(n) => Some(connection_pool(
            n,
            &target,
            method,
            &body,
            args.timeout,
            &tally,
            &in_flight,
        )?),
        None => None,
    };
    let mut sent = 0u64;
    let mut due = Duration::ZERO;
    while sent < args.requests && !TERMINATED.load(Ordering::SeqCst) {
        if due >= args.duration {
            break;
        }
        report(&mut next_report);
        let now = started.elapsed();
        if due > now {
            std::thread::sleep((due - now).min(Duration::from_millis(100)));
            continue;
        }
        if in_flight.load(Ordering::SeqCst) >= args.max_in_flight {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        in_flight.fetch_add(1, Ordering::SeqCst);
        let sent_at = due.as_secs_f64();
        tally.lock().unwrap().sent(sent_at);
        match &pool {
            Some(jobs) => {
                // A worker of the pool takes it; the channel outlives every send here.
                let _ = jobs.send(Job {
                    sent_at,
                    due: started + due,
                });
            }
            None => {
                let (target, body, tally, in_flight) = (
                    Arc::clone(&target),
                    Arc::clone(&body),
                    Arc::clone(&tally),
                    Arc::clone(&in_flight),
                );
                let timeout = args.timeout;
                std::thread::spawn(move || {
                    let began = Instant::now();
                    let outcome = request(&target, method, &body, timeout);
                    let took = began.elapsed().as_secs_f64();
                    tally.lock().unwrap().record(sent_at, took, outcome);
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }
        sent += 1;
        due = rates.next_due(due);
    }
    // Every request sent gets its answer or its time-out before the summary.
    let waited = Instant::now();
    while in_flight.load(Ordering::SeqCst) > 0 && waited.elapsed() < args.timeout * 2 {
        report(&mut next_report);
        std::thread::sleep(Duration::from_millis(5));
    }
    let summary = tally
        .lock()
        .unwrap()
        .summary(started.elapsed().as_secs_f64(), interval_s, true);
    print(&summary);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_path() {
        assert_eq!(
            Target::parse("http://online-inference/predict").unwrap(),
            Target {
                host: "online-inference".into(),
                port: 80,
                path: "/predict".into()
            }
        );
        let t = Target::parse("http://10.96.0.12:8000").unwrap();
        assert_eq!((t.port, t.path.as_str()), (8000, "/"));
        assert!(Target::parse("https://x/").unwrap_err().starts_with("url:"));
        assert!(
            Target::parse("http://x:http/")
                .unwrap_err()
                .contains("port")
        );
        assert!(Target::parse("http://:80/").is_err());
        let t = Target::parse("http://[::1]:8000/readyz").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8000));
        assert_eq!(Target::parse("http://[::1]/").unwrap().port, 80);
    }

    fn tally(results: &[(f64, Outcome)]) -> Summary {
        let mut t = Tally::default();
        // Recorded out of order, as answers arrive; counted in the order sent.
        for (at, outcome) in results.iter().rev() {
            t.sent(*at);
            t.record(*at, 0.01, outcome.clone());
        }
        t.summary(10.0, 0.1, true)
    }

    #[test]
    fn an_outage_is_a_run_of_failures_between_successes() {
        let refused = || Outcome::Failed("connect: connection refused".into());
        let s = tally(&[
            (0.0, Outcome::Status(200)),
            (0.1, refused()),
            (0.2, refused()),
            (0.3, Outcome::Status(503)),
            (0.4, Outcome::Status(200)),
            (0.5, refused()),
            (0.6, Outcome::Status(200)),
        ]);
        assert_eq!((s.sent, s.ok, s.failed, s.outages), (7, 3, 4, 2));
        // 0.1 to 0.3 and one interval.
        assert_eq!(s.longest_outage_s, 0.3);
        assert_eq!(
            (s.first_failure_s, s.last_failure_s),
            (Some(0.1), Some(0.5))
        );
        assert_eq!(s.failures["connect: connection refused"], 3);
        assert_eq!(s.failures["status 503"], 1);
    }

    #[test]
    fn no_failures_no_outage_and_a_trailing_run_counts() {
        let s = tally(&[(0.0, Outcome::Status(200)), (0.1, Outcome::Status(204))]);
        assert_eq!((s.failed, s.outages, s.longest_outage_s), (0, 0, 0.0));
        assert!(s.text().ends_with("failed 0 (done)"), "{}", s.text());
        let s = tally(&[
            (0.0, Outcome::Status(200)),
            (1.0, Outcome::TimedOut),
            (2.0, Outcome::TimedOut),
        ]);
        assert_eq!((s.outages, s.longest_outage_s), (1, 1.1));
        assert!(s.text().contains("timed out: 2"), "{}", s.text());
    }

    fn step(text: &str) -> RateStep {
        RateStep::parse(text).unwrap()
    }

    #[test]
    fn rate_steps_change_the_interval_from_their_time_on() {
        let rates = Rates::new(vec![step("90@1s"), step("10")]).unwrap();
        assert_eq!(rates.at(Duration::ZERO), 10.0);
        assert_eq!(rates.at(Duration::from_millis(999)), 10.0);
        assert_eq!(rates.at(Duration::from_secs(5)), 90.0);
        // Ten a second until 1 s, then ninety a second; the step's first request at 1 s.
        let mut due = Duration::ZERO;
        let mut times = vec![due];
        while due < Duration::from_secs(2) {
            due = rates.next_due(due);
            times.push(due);
        }
        let before = times
            .iter()
            .filter(|t| **t < Duration::from_secs(1))
            .count();
        let after = times
            .iter()
            .filter(|t| **t >= Duration::from_secs(1) && **t < Duration::from_secs(2))
            .count();
        assert_eq!((before, after), (10, 90));
        assert!(times.contains(&Duration::from_secs(1)));
        assert!((rates.longest_interval_s() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn rate_steps_are_checked() {
        for (given, needle) in [
            (vec![step("30@10s")], "from the start"),
            (
                vec![step("10"), step("20@5s"), step("30@5s")],
                "two rates from 5s",
            ),
        ] {
            let e = Rates::new(given).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
        for bad in ["0", "-1", "fast", "20001", "30@soon"] {
            assert!(RateStep::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            step("90@1m"),
            RateStep {
                rate: 90.0,
                from: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn a_window_counts_outcomes_pending_requests_and_latency_quantiles() {
        let mut t = Tally::default();
        for i in 0..100 {
            let at = 1.0 + i as f64 * 0.01;
            t.sent(at);
            if i < 90 {
                t.record(at, (i + 1) as f64 / 1000.0, Outcome::Status(200));
            } else if i < 95 {
                t.record(at, 5.0, Outcome::TimedOut);
            }
        }
        t.sent(0.5);
        t.record(0.5, 0.001, Outcome::Status(503));
        let w = t.window(1.0, 2.0);
        assert_eq!(w.sent, 100);
        assert_eq!(w.outcomes["status 200"], 90);
        assert_eq!(w.outcomes["timed out"], 5);
        assert_eq!(w.outcomes["pending"], 5);
        assert!(!w.outcomes.contains_key("status 503"), "outside the window");
        // Latencies of the 90 answered: 1..90 ms.
        assert_eq!((w.p50_ms, w.p99_ms), (Some(45.0), Some(90.0)));
        assert_eq!(t.window(5.0, 6.0).p50_ms, None);
    }
}
