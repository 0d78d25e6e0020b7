//! `chaos-inference load` against the real server: counts, failure kinds, bounds, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{BIN, PATIENCE, Spawn, free_port, run_cli};

fn summaries(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[tokio::test]
async fn every_request_to_a_ready_server_succeeds() {
    let server = Spawn::default().ready().await;
    let url = server.url("/predict");
    let (code, stdout, stderr) = run_cli(
        &[
            "load",
            &url,
            "--rate",
            "50",
            "--duration",
            "1s",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let last = summaries(&stdout).pop().unwrap();
    assert_eq!(last["done"], true, "{stdout}");
    assert_eq!(
        (last["sent"].as_u64(), last["ok"].as_u64()),
        (Some(50), Some(50)),
        "{stdout}"
    );
    assert_eq!(last["outages"], 0);
}

#[test]
fn a_closed_port_is_one_outage_of_refused_connections() {
    let url = format!("http://127.0.0.1:{}/predict", free_port());
    let (code, stdout, _) = run_cli(
        &[
            "load",
            &url,
            "--rate",
            "20",
            "--requests",
            "10",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(code, Some(0));
    let last = summaries(&stdout).pop().unwrap();
    assert_eq!(
        (last["sent"].as_u64(), last["failed"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(
        last["failures"]["connect: connection refused"], 10,
        "{stdout}"
    );
    assert_eq!(last["outages"], 1);
    // Ten requests 50 ms apart: from the first to the last and one interval.
    assert_eq!(last["longest_outage_s"], 0.5, "{stdout}");
}

#[tokio::test]
async fn answers_other_than_2xx_are_failures_by_status() {
    let server = Spawn::default()
        .env("CHAOS_STARTUP_DELAY", "30s")
        .listening();
    let url = server.url("/readyz");
    let (code, stdout, stderr) = run_cli(
        &[
            "load",
            &url,
            "--get",
            "--rate",
            "20",
            "--requests",
            "5",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let last = summaries(&stdout).pop().unwrap();
    assert_eq!(last["failures"]["status 503"], 5, "{stdout}");
}

#[test]
fn bad_arguments_exit_2_naming_the_flag() {
    for (args, needle) in [
        (vec!["load", "ftp://x/"], "url:"),
        (vec!["load", "http://x:port/"], "port"),
        (vec!["load", "http://x/", "--rate", "0"], "--rate"),
        (vec!["load", "http://x/", "--body", "{not json"], "--body"),
        (vec!["load", "http://x/", "--duration", "0s"], "--duration"),
    ] {
        let (code, _, stderr) = run_cli(&args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// A deleted load pod gets SIGTERM: it stops sending and prints its summary.
#[test]
fn sigterm_ends_it_with_a_summary() {
    let url = format!("http://127.0.0.1:{}/", free_port());
    let mut child = Command::new(BIN)
        .args([
            "load",
            &url,
            "--rate",
            "10",
            "--duration",
            "60s",
            "--output",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"done\":false"), "{first}");
    let signalled = Instant::now();
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(signalled.elapsed() < PATIENCE.min(Duration::from_secs(10)));
    assert_eq!(status.code(), Some(0));
    let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["done"], true);
    assert!(last["sent"].as_u64().unwrap() < 600, "{last}");
}

/// Rate steps: ten a second, then forty from 1 s on; each progress line tells the last second
/// apart. Against one worker at 50 ms (20 a second) the second second's requests queue, and
/// their p50 shows it.
#[tokio::test]
async fn rate_steps_and_the_last_seconds_outcomes_and_latency() {
    let server = Spawn::default()
        .env("CHAOS_OVERLOAD_WORKERS", "1")
        .env("CHAOS_OVERLOAD_SERVICE_TIME", "50ms")
        .ready()
        .await;
    let url = server.url("/predict");
    let (code, stdout, stderr) = run_cli(
        &[
            "load",
            &url,
            "--rate",
            "10",
            "--rate",
            "40@1s",
            "--duration",
            "2s",
            "--timeout",
            "20s",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let lines = summaries(&stdout);
    let last = lines.last().unwrap();
    assert_eq!(
        (last["sent"].as_u64(), last["ok"].as_u64()),
        (Some(50), Some(50)),
        "{stdout}"
    );
    let first_second = lines
        .iter()
        .find(|l| l["last_second"]["sent"] == 10)
        .unwrap_or_else(|| panic!("no line for the first second: {stdout}"));
    // Ten a second fits one 50 ms worker: each answer takes about its service time.
    let p50 = first_second["last_second"]["p50_ms"].as_f64().unwrap();
    assert!(p50 >= 45.0, "{stdout}");
    let second = lines
        .iter()
        .find(|l| l["last_second"]["sent"] == 40)
        .unwrap_or_else(|| panic!("no line for the second second: {stdout}"));
    let outcomes = &second["last_second"]["outcomes"];
    let counted: u64 = outcomes
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 40, "{stdout}");
    // Forty a second is twice what the worker serves: most are still waiting after the second.
    assert!(outcomes["pending"].as_u64().unwrap_or(0) >= 10, "{stdout}");
}
