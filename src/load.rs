//! `chaos-inference load`: steady requests at a fixed rate, one new connection each (what a
//! `curl` loop or a fresh client sees, so a Service's choice of endpoint is made per request),
//! counting what failed and for how long. Run in a pod against a Service during a rollout, it
//! shows a strategy's outage as failed requests and seconds, from inside the cluster.
//!
//! Bounded by time and by count; a SIGTERM (the pod deleted) ends it early with its summary.

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

/// Most requests waiting for an answer at once; a slower target makes requests wait their turn
/// (counted as late), never an unbounded pile of threads.
const MAX_IN_FLIGHT: usize = 64;

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
    /// Requests per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Stop after this long.
    #[arg(long, default_value = "60s", value_parser = crate::config::parse_duration)]
    pub duration: Duration,
    /// Stop after this many requests.
    #[arg(long, default_value_t = 100_000)]
    pub requests: u64,
    /// A request not answered within this long failed.
    #[arg(long, default_value = "2s", value_parser = crate::config::parse_duration)]
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
    Failed(String),
}

impl Outcome {
    fn ok(&self) -> bool {
        matches!(self, Outcome::Status(code) if (200..300).contains(code))
    }

    fn label(&self) -> String {
        match self {
            Outcome::Status(code) => format!("status {code}"),
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
}

/// Results by send time: the pure part, testable without a network.
#[derive(Debug, Default)]
pub struct Tally {
    results: Vec<(f64, Outcome)>,
}

impl Tally {
    pub fn record(&mut self, sent_at_s: f64, outcome: Outcome) {
        self.results.push((sent_at_s, outcome));
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
        let sent = self.results.len() as u64;
        Summary {
            elapsed_s: round(elapsed_s),
            sent,
            ok,
            failed: sent - ok,
            failures,
            outages,
            longest_outage_s: round(longest),
            first_failure_s: first_failure.map(round),
            last_failure_s: last_failure.map(round),
            done,
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
        Err(failure) => Outcome::Failed(failure.label()),
    }
}

/// Validates the arguments: a clear one-line error for each.
pub fn validate(args: &LoadArgs) -> Result<Target, String> {
    let target = Target::parse(&args.url)?;
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 10_000.0) {
        return Err(format!(
            "--rate: {} is not a rate from above 0 to 10000 requests per second",
            args.rate
        ));
    }
    if args.duration.is_zero() || args.requests == 0 || args.timeout.is_zero() {
        return Err("--duration, --requests and --timeout must be above 0".into());
    }
    if let Some(body) = &args.body {
        serde_json::from_str::<serde_json::Value>(body)
            .map_err(|e| format!("--body: not JSON: {e}"))?;
    }
    Ok(target)
}

/// Runs the load; returns the final summary.
pub fn run(args: &LoadArgs) -> Result<Summary, String> {
    let target = Arc::new(validate(args)?);
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
    let (method, body): (&str, Arc<Vec<u8>>) = if args.get {
        ("GET", Arc::new(Vec::new()))
    } else {
        let body = args.body.as_deref().unwrap_or(EXAMPLE_RECORD.trim());
        ("POST", Arc::new(body.as_bytes().to_vec()))
    };
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let print = |summary: &Summary| match args.output {
        LoadOutput::Text => println!("{}", summary.text()),
        LoadOutput::Json => println!("{}", serde_json::to_string(summary).unwrap_or_default()),
    };
    let mut next_report = Duration::from_secs(1);
    let mut sent = 0u64;
    while sent < args.requests && !TERMINATED.load(Ordering::SeqCst) {
        let due = interval.mul_f64(sent as f64);
        if due >= args.duration {
            break;
        }
        let now = started.elapsed();
        if now >= next_report {
            let summary =
                tally
                    .lock()
                    .unwrap()
                    .summary(now.as_secs_f64(), interval.as_secs_f64(), false);
            print(&summary);
            next_report += Duration::from_secs(1);
        }
        if due > now {
            std::thread::sleep((due - now).min(Duration::from_millis(100)));
            continue;
        }
        if in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        in_flight.fetch_add(1, Ordering::SeqCst);
        let (target, body, tally, in_flight) = (
            Arc::clone(&target),
            Arc::clone(&body),
            Arc::clone(&tally),
            Arc::clone(&in_flight),
        );
        let timeout = args.timeout;
        let sent_at = due.as_secs_f64();
        std::thread::spawn(move || {
            let outcome = request(&target, method, &body, timeout);
            tally.lock().unwrap().record(sent_at, outcome);
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
        sent += 1;
    }
    // Every request sent gets its answer or its time-out before the summary.
    let waited = Instant::now();
    while in_flight.load(Ordering::SeqCst) > 0 && waited.elapsed() < args.timeout * 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let summary = tally.lock().unwrap().summary(
        started.elapsed().as_secs_f64(),
        interval.as_secs_f64(),
        true,
    );
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
            t.record(*at, outcome.clone());
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
            (1.0, Outcome::Failed("answer: timed out".into())),
            (2.0, Outcome::Failed("answer: timed out".into())),
        ]);
        assert_eq!((s.outages, s.longest_outage_s), (1, 1.1));
        assert!(s.text().contains("answer: timed out: 2"), "{}", s.text());
    }
}
