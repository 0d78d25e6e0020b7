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
        (
            vec!["load", "http://x/", "--connections", "0"],
            "--connections",
        ),
        (
            vec!["load", "http://x/", "--max-in-flight", "0"],
            "--max-in-flight",
        ),
        (
            vec!["load", "http://x/", "--rate", "9@5s"],
            "--rate: give a rate from the start",
        ),
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

/// A server that answers every request on a connection until the client closes it, and counts
/// the connections it accepted.
fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/predict", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    // A request is its head and a Content-Length body.
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if pending.len() < end + 4 + length {
                            break;
                        }
                        pending.drain(..end + 4 + length);
                        let close = head.contains("connection: close");
                        let answer: &[u8] = if close {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                        };
                        if stream.write_all(answer).is_err() || close {
                            return;
                        }
                    }
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buffer[..n]),
                    }
                }
            });
        }
    });
    (url, accepted)
}

#[test]
fn connections_are_kept_alive_only_when_asked() {
    use std::sync::atomic::Ordering;
    for (extra, expected_connections) in [(vec![], 40), (vec!["--connections", "2"], 2)] {
        let (url, accepted) = counting_server();
        let mut args = vec![
            "load",
            url.as_str(),
            "--rate",
            "40",
            "--duration",
            "1s",
            "--output",
            "json",
        ];
        args.extend(extra.iter().copied());
        let (code, stdout, stderr) = run_cli(&args, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        let last = summaries(&stdout).pop().unwrap();
        assert_eq!(
            (last["sent"].as_u64(), last["ok"].as_u64()),
            (Some(40), Some(40)),
            "{args:?}: {stdout}"
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            expected_connections,
            "{args:?}"
        );
    }
}

/// The rate is offered whatever the answers take: against one worker at 100 ms (10 a second),
/// 60 requests in one second are all sent at once and wait at the server, past the 64 that
/// once capped what was in flight.
#[tokio::test]
async fn a_slow_target_does_not_slow_the_offered_rate() {
    let server = Spawn::default()
        .env("CHAOS_OVERLOAD_WORKERS", "1")
        .env("CHAOS_OVERLOAD_SERVICE_TIME", "100ms")
        .ready()
        .await;
    let url = server.url("/predict");
    let (code, stdout, stderr) = run_cli(
        &[
            "load",
            &url,
            "--rate",
            "100",
            "--duration",
            "1s",
            "--timeout",
            "2s",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let lines = summaries(&stdout);
    let first = &lines[0];
    // All 100 were sent in the first second, answered or not.
    assert_eq!(first["last_second"]["sent"], 100, "{stdout}");
    let last = lines.last().unwrap();
    // About 20 served in the 2 s time-out, the rest timed out.
    let timed_out = last["failures"]["timed out"].as_u64().unwrap_or(0);
    assert!(timed_out >= 60, "{stdout}");
}
