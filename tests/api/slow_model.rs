//! Inline runs by default, but never for a slow model: a model whose run takes tens of
//! milliseconds (`tests/fixtures/slow.onnx`, made by `scripts/make-slow-model.py`) gets no
//! inline runs, so under inference load the model runs on the inference threads and the probes
//! and other connections of the same HTTP worker keep answering.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Spawn, TestServer, row};

fn slow_model() -> String {
    format!("{}/tests/fixtures/slow.onnx", env!("CARGO_MANIFEST_DIR"))
}

fn loaded_line(server: &TestServer) -> Value {
    let line = server.logs_with(&[r#""message":"model loaded""#]);
    let line = line
        .lines()
        .find(|l| l.contains(r#""message":"model loaded""#))
        .unwrap()
        .to_string();
    serde_json::from_str(&line).unwrap()
}

fn slow_request() -> Value {
    json!({"inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32", "data": row()}]})
}

#[tokio::test]
async fn small_requests_run_inline_when_the_measured_run_fits_the_budget() {
    // Batching off: while it is on (the default for this model), `auto` queues every request
    // so that they can be joined.
    let server = Spawn::default().env("BATCH_MAX_ROWS", "1").ready().await;
    let loaded = loaded_line(&server);
    // A release build runs the built-in model in about 3 µs a row (inline); an unoptimised
    // test build can take longer than the 5 µs budget. Either way the decision follows the
    // measurement.
    let one_row_us = loaded["one_row_run_us"].as_f64().unwrap();
    let inline_rows = loaded["inline_rows"].as_u64().unwrap();
    assert!(one_row_us > 0.0);
    assert_eq!(inline_rows >= 1, one_row_us <= 5.0, "{loaded}");
    let off = Spawn::default()
        .env("INFERENCE_INLINE", "off")
        .ready()
        .await;
    assert_eq!(loaded_line(&off)["inline_rows"], 0);
    let batching = Spawn::default().ready().await;
    let loaded = loaded_line(&batching);
    assert!(loaded["batch_max_rows"].as_u64().unwrap() >= 2, "{loaded}");
    assert_eq!(loaded["inline_rows"], 0, "{loaded}");
    let fixed = Spawn::default().env("INFERENCE_INLINE", "8").ready().await;
    assert_eq!(loaded_line(&fixed)["inline_rows"], 8);
    assert!(
        loaded_line(&fixed)["one_row_run_us"].is_null(),
        "not measured"
    );
}

#[tokio::test]
async fn a_slow_model_never_holds_an_http_worker() {
    // One HTTP worker: whatever it runs inline, every connection waits for. Batching off, so
    // that the inline decision is the one measured (batching on queues every request anyway).
    let server = Spawn::default()
        .env("MODEL_PATH", slow_model())
        .env("MODEL_NAME", "slow")
        .env("BATCH_MAX_ROWS", "1")
        .env("HTTP_WORKERS", "1")
        .env("INFERENCE_WORKERS", "2")
        .ready()
        .await;
    let loaded = loaded_line(&server);
    assert_eq!(loaded["inline_rows"], 0, "{loaded}");
    let one_row_ms = loaded["one_row_run_us"].as_f64().unwrap() / 1000.0;
    assert!(one_row_ms > 5.0, "the fixture is slow: {one_row_ms} ms");

    // Load: four clients keep both inference workers and the queue busy, bounded in time and
    // count.
    let url = server.url("/v2/models/slow/infer");
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut load = Vec::new();
    for _ in 0..4 {
        let client = server.client.clone();
        let url = url.clone();
        load.push(tokio::spawn(async move {
            let mut answered = 0;
            for _ in 0..200 {
                if Instant::now() > deadline {
                    break;
                }
                let response = client
                    .post(&url)
                    .json(&slow_request())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                answered += 1;
            }
            answered
        }));
    }
    // Meanwhile the probes (new connections, and one kept alive) answer within a kubelet's
    // timeout and well under one run of the model.
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while Instant::now() < deadline {
        for path in ["/livez", "/readyz", "/v2/models/slow"] {
            let started = Instant::now();
            assert_eq!(server.status(path).await, 200);
            slowest = slowest.max(started.elapsed());
            probes += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut answered = 0;
    for task in load {
        answered += task.await.unwrap();
    }
    assert!(answered >= 4, "the load ran: {answered} predictions");
    assert!(probes >= 10);
    // Within a kubelet's default probe timeout (1 s), however loaded the machine is.
    assert!(
        slowest < Duration::from_secs(1),
        "slowest probe {slowest:?} while the model ran {answered} times"
    );
    // And the model ran on the inference threads, not on the HTTP worker: CPU time per thread
    // says where, without racing a clock (forced inline, the HTTP worker took it all).
    let http = server.thread_cpu_ticks("actix-server wo");
    let inference = server.thread_cpu_ticks("inference-");
    assert!(
        inference >= 10 && http * 3 < inference,
        "CPU ticks: HTTP worker {http}, inference workers {inference}"
    );
    eprintln!(
        "slow model ({one_row_ms:.1} ms a run): {answered} predictions, {probes} probes, slowest {slowest:?}, CPU ticks HTTP {http} inference {inference}"
    );
}
