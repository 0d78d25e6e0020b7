//! Dynamic batching seen from outside: requests sent at the same moment are joined into runs
//! of more than one request (the server's metrics say so), and every answer, REST, `/predict`
//! and gRPC, is byte for byte the answer the same request gets when it runs alone. A row's
//! answer does not depend on the rows it ran with: one row alone (run as two, see
//! `src/model/pool.rs`), the same row first of three, and a server that never joins agree.

use prost::Message;
use serde_json::{Value, json};

use crate::grpc::{client, infer};
use crate::helpers::{Spawn, TestServer, fixture};

const INFER: &str = "/v2/models/heart-disease/infer";

/// The fixture's records, and the same as rows in the model's feature order.
fn fixture_rows() -> (Vec<Value>, Vec<Vec<f64>>) {
    let fixture = fixture();
    let features: Vec<&str> = fixture["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let records: Vec<Value> = fixture["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["input"].clone())
        .collect();
    let rows = records
        .iter()
        .map(|r| features.iter().map(|f| r[*f].as_f64().unwrap()).collect())
        .collect();
    (records, rows)
}

/// One request of each kind per fixture record: a one-row V2 infer, a V2 infer of that row
/// and the next two, and a `/predict` of the record; (path, body).
fn requests() -> Vec<(&'static str, Value)> {
    let (records, rows) = fixture_rows();
    let mut out = Vec::new();
    for (i, (record, row)) in records.iter().zip(&rows).enumerate() {
        out.push((
            INFER,
            json!({"id": format!("one-{i}"), "inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32", "data": row}]}),
        ));
        let three: Vec<f64> = (0..3)
            .flat_map(|k| rows[(i + k) % rows.len()].clone())
            .collect();
        out.push((
            INFER,
            json!({"id": format!("three-{i}"), "inputs": [{"name": "input", "shape": [3, 13], "datatype": "FP32", "data": three}]}),
        ));
        out.push(("/predict", record.clone()));
    }
    out
}

/// Every request sent at once; (status, body) of each, in order.
async fn all_at_once(
    server: &TestServer,
    requests: &[(&'static str, Value)],
) -> Vec<(u16, Vec<u8>)> {
    let pending: Vec<_> = requests
        .iter()
        .map(|(path, body)| {
            let post = server.client.post(server.url(path)).json(body);
            tokio::spawn(async move {
                let answer = post.send().await.unwrap();
                (
                    answer.status().as_u16(),
                    answer.bytes().await.unwrap().to_vec(),
                )
            })
        })
        .collect();
    let mut out = Vec::new();
    for p in pending {
        out.push(p.await.unwrap());
    }
    out
}

/// Runs and requests joined per run, as the server counts them.
async fn batches(server: &TestServer) -> (f64, f64) {
    let sample =
        |part| format!("chaos_inference_model_batch_requests_{part}{{model=\"heart-disease\"}}");
    (
        server.metric(&sample("count")).await.unwrap(),
        server.metric(&sample("sum")).await.unwrap(),
    )
}

/// A server whose one inference worker takes every request (none inline).
fn queued() -> Spawn {
    Spawn::default()
        .env("INFERENCE_INLINE", "off")
        .env("INFERENCE_WORKERS", "1")
}

/// The same requests one at a time (each runs alone), then all at once; the answers.
async fn alone_and_together(
    server: &TestServer,
    requests: &[(&'static str, Value)],
) -> (Vec<(u16, Vec<u8>)>, Vec<(u16, Vec<u8>)>) {
    let mut alone = Vec::new();
    for request in requests {
        alone.extend(all_at_once(server, std::slice::from_ref(request)).await);
    }
    let (runs, requested) = batches(server).await;
    assert_eq!(runs, requested, "one at a time: every run is one request");
    (alone, all_at_once(server, requests).await)
}

fn probabilities(answer: &(u16, Vec<u8>), row: usize) -> Value {
    let body: Value = serde_json::from_slice(&answer.1).unwrap();
    body["outputs"][1]["data"].as_array().unwrap()[2 * row..2 * row + 2].into()
}

#[tokio::test]
async fn requests_sent_together_are_joined_and_answered_byte_for_byte_as_alone() {
    let requests = requests();
    // A delay, so that requests arriving over a few milliseconds still meet.
    let server = queued()
        .env("BATCH_MAX_ROWS", "64")
        .env("BATCH_MAX_DELAY", "20ms")
        .ready()
        .await;
    let (alone, together) = alone_and_together(&server, &requests).await;
    for ((request, want), got) in requests.iter().zip(&alone).zip(&together) {
        assert_eq!(want.0, 200, "{request:?}");
        assert_eq!(
            got,
            want,
            "{request:?}: {} against {}",
            String::from_utf8_lossy(&got.1),
            String::from_utf8_lossy(&want.1)
        );
    }
    let (runs, requested) = batches(&server).await;
    let joined_runs = runs - requests.len() as f64;
    assert_eq!(
        requested as usize,
        2 * requests.len(),
        "every request ran once each time"
    );
    assert!(
        joined_runs < requests.len() as f64,
        "{joined_runs} runs for {} requests sent together: none joined",
        requests.len()
    );
    // Every request's wait in the queue is measured.
    let waited = server
        .metric("chaos_inference_model_queue_wait_seconds_count{model=\"heart-disease\"}")
        .await
        .unwrap();
    assert_eq!(waited as usize, 2 * requests.len());

    // A row alone (run as two rows) and first of three: the same answer.
    for i in 0..requests.len() / 3 {
        assert_eq!(
            probabilities(&alone[3 * i], 0),
            probabilities(&alone[3 * i + 1], 0),
            "row {i}"
        );
    }
    // A server that never joins answers the three-row requests with the same bytes.
    let never = queued().env("BATCH_MAX_ROWS", "1").ready().await;
    let threes: Vec<_> = requests.iter().skip(1).step_by(3).cloned().collect();
    let (unjoined, _) = alone_and_together(&never, &threes).await;
    for (want, got) in alone.iter().skip(1).step_by(3).zip(&unjoined) {
        assert_eq!(got, want);
    }
    let (runs, requested) = batches(&never).await;
    assert_eq!(runs, requested, "BATCH_MAX_ROWS=1: never joined");
}

#[tokio::test]
async fn default_settings_join_requests_sent_together() {
    // No INFERENCE_INLINE, BATCH_MAX_ROWS or BATCH_MAX_DELAY: the built-in model's requests
    // are queued (none inline while batching is on) and those waiting together are joined.
    let requests = requests();
    let server = Spawn::default().ready().await;
    let (alone, together) = alone_and_together(&server, &requests).await;
    assert_eq!(together, alone);
    let (runs, requested) = batches(&server).await;
    assert_eq!(requested as usize, 2 * requests.len());
    assert!(
        runs - (requests.len() as f64) < requests.len() as f64,
        "{} runs for {} requests sent together: none joined",
        runs - requests.len() as f64,
        requests.len()
    );
}

#[tokio::test]
async fn grpc_infer_is_joined_too_and_answers_as_alone() {
    let (_, rows) = fixture_rows();
    let server = queued()
        .env("BATCH_MAX_ROWS", "64")
        .env("BATCH_MAX_DELAY", "20ms")
        .ready()
        .await;
    let mut one = client(&server).await;
    let mut expected = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let answer = one
            .model_infer(infer(std::slice::from_ref(row), i % 2 == 0))
            .await
            .unwrap();
        expected.push(answer.into_inner().encode_to_vec());
    }
    let pending: Vec<_> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut c = one.clone();
            let request = infer(std::slice::from_ref(row), i % 2 == 0);
            tokio::spawn(async move {
                c.model_infer(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .encode_to_vec()
            })
        })
        .collect();
    for (i, (p, want)) in pending.into_iter().zip(&expected).enumerate() {
        assert_eq!(&p.await.unwrap(), want, "row {i}");
    }
    let (runs, requested) = batches(&server).await;
    assert_eq!(requested as usize, 2 * rows.len());
    assert!(
        runs < requested,
        "{runs} runs for {requested} requests: none joined"
    );
}

#[tokio::test]
async fn one_at_a_time_each_runs_alone_and_the_default_auto_joins_for_the_built_in_model() {
    // No BATCH_MAX_ROWS: the default is `auto`.
    let server = queued().ready().await;
    let (_, rows) = fixture_rows();
    for row in rows.iter().take(5) {
        let body = json!({"inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32", "data": row}]});
        assert_eq!(server.post_json(INFER, &body).await.status(), 200);
    }
    // One at a time with the default delay of 0: each ran alone, none waited for company.
    let (runs, joined) = batches(&server).await;
    assert_eq!((runs, joined), (5.0, 5.0));
    let line = server.logs_with(&[r#""message":"model loaded""#]);
    let loaded: Value = serde_json::from_str(
        line.lines()
            .find(|l| l.contains(r#""message":"model loaded""#))
            .unwrap(),
    )
    .unwrap();
    // The built-in model's run is mostly fixed cost: two rows cost nowhere near twice one.
    assert!(loaded["batch_max_rows"].as_u64().unwrap() >= 2, "{loaded}");
    assert_eq!(loaded["batch_max_delay_us"], 0);
}

#[tokio::test]
async fn injected_errors_stay_per_request_while_the_rest_are_joined() {
    let (_, rows) = fixture_rows();
    let requests: Vec<(&'static str, Value)> = rows
        .iter()
        .map(|row| {
            (
                INFER,
                json!({"inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32", "data": row}]}),
            )
        })
        .collect();
    let reference = queued().env("BATCH_MAX_ROWS", "64").ready().await;
    let mut alone = Vec::new();
    for request in &requests {
        alone.extend(all_at_once(&reference, std::slice::from_ref(request)).await);
    }
    let server = queued()
        .env("BATCH_MAX_ROWS", "64")
        .env("BATCH_MAX_DELAY", "20ms")
        .env("CHAOS_ERROR_RATE", "0.5")
        .ready()
        .await;
    let got = all_at_once(&server, &requests).await;
    let failed = got.iter().filter(|(status, _)| *status != 200).count();
    assert!(
        got.iter()
            .all(|(status, _)| [200, 500, 503].contains(status)),
        "{got:?}"
    );
    assert!(
        0 < failed && failed < got.len(),
        "{failed} of {} failed",
        got.len()
    );
    for (got, want) in got.iter().zip(&alone) {
        if got.0 == 200 {
            assert_eq!(
                got, want,
                "a request that passed the fault gets its own answer"
            );
        }
    }
    // Only the requests the fault let through reached the model, some of them joined.
    let (runs, requested) = batches(&server).await;
    assert_eq!(requested as usize, got.len() - failed);
    assert!(
        runs < requested,
        "{runs} runs for {requested} requests: none joined"
    );
}
