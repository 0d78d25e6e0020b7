//! The overload fault from outside: one FIFO of workers that predictions and (queued) probes
//! wait in, over HTTP and gRPC; a queue limit that sheds; the metrics against what the client
//! saw; and every bad value refused with its key named. Times are only ever lower bounds (a
//! busy machine makes a request later, never earlier); the rest is order and counts.

use std::time::{Duration, Instant};

use chaos_inference::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use chaos_inference::grpc::pb::model_infer_request::InferInputTensor;
use chaos_inference::grpc::pb::{InferTensorContents, ModelInferRequest};
use serde_json::Value;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{PATIENCE, Spawn, TestServer, record, row, run_cli};
use crate::timing;

const TOKEN: &str = "overload-admin-token";
const DEPTH: &str = "chaos_inference_overload_queue_depth";

/// A server with one worker that holds each prediction for `service`, probes as `probes` says,
/// and the other overload keys from `extra`.
async fn overloaded(service: &str, probes: &str, extra: &[(&str, &str)]) -> TestServer {
    let mut spawn = Spawn::default()
        .env("CHAOS_OVERLOAD_WORKERS", "1")
        .env("CHAOS_OVERLOAD_SERVICE_TIME", service)
        .env("CHAOS_OVERLOAD_PROBES", probes)
        .env("ADMIN_TOKEN", TOKEN);
    for (key, value) in extra {
        spawn = spawn.env(key, *value);
    }
    spawn.ready().await
}

/// Sends `n` predictions at once; each task answers its status and when it was answered.
fn burst(server: &TestServer, n: usize) -> Vec<tokio::task::JoinHandle<(u16, Instant, Value)>> {
    (0..n)
        .map(|_| {
            let (client, url) = (server.client.clone(), server.url("/predict"));
            tokio::spawn(async move {
                let response = client.post(&url).json(&record()).send().await.unwrap();
                let status = response.status().as_u16();
                let retry_after = response.headers().get("retry-after").is_some();
                let mut body: Value = response.json().await.unwrap_or(Value::Null);
                body["retry_after_header"] = Value::Bool(retry_after);
                (status, Instant::now(), body)
            })
        })
        .collect()
}

/// Waits until the server counts at least `n` requests waiting for a worker.
async fn wait_depth(server: &TestServer, n: usize) {
    timing::poll(
        server,
        &format!("{n} requests waiting for the worker"),
        Duration::from_millis(5),
        PATIENCE,
        || async { (server.metric(DEPTH).await? >= n as f64).then_some(()) },
    )
    .await;
}

async fn join(
    tasks: Vec<tokio::task::JoinHandle<(u16, Instant, Value)>>,
) -> Vec<(u16, Instant, Value)> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_queued_probe_waits_behind_every_prediction_before_it() {
    // Long enough that the five waiting are seen together on a busy machine: they are, only
    // from the last one's arrival to the first one's answer.
    let service = Duration::from_millis(400);
    let server = overloaded("400ms", "queued", &[]).await;
    let n = 6;
    let sent = Instant::now();
    let predictions = burst(&server, n);
    // One holds the worker, the others wait: the probe joins the queue behind them.
    wait_depth(&server, n - 1).await;
    let probe_sent = Instant::now();
    let status = server.status("/livez").await;
    let probe_answered = Instant::now();
    assert_eq!(status, 200, "a busy pod is still alive");
    let answers = join(predictions).await;
    assert!(answers.iter().all(|(s, ..)| *s == 200), "{answers:?}");
    // FIFO: every prediction that waited before the probe was answered before it.
    let before = answers
        .iter()
        .filter(|(_, at, _)| *at <= probe_answered)
        .count();
    assert_eq!(
        before, n,
        "the probe was answered before predictions ahead of it"
    );
    // It waited for at least the n-1 queued predictions' service times.
    let waited = probe_answered - probe_sent;
    assert!(
        waited >= service * (n as u32 - 1) * 9 / 10,
        "the probe waited only {waited:?} behind {} predictions of {service:?}",
        n - 1
    );
    // The server's histogram says the same of the probe, and counts every prediction.
    let probe_wait = server
        .metric("chaos_inference_overload_queue_wait_seconds_sum{work=\"probe\"}")
        .await
        .unwrap();
    assert!(
        probe_wait >= (service * (n as u32 - 1) * 9 / 10).as_secs_f64()
            && probe_wait <= waited.as_secs_f64(),
        "server says the probe waited {probe_wait} s, the client saw {waited:?}"
    );
    let counted = server
        .metric("chaos_inference_overload_queue_wait_seconds_count{work=\"prediction\"}")
        .await
        .unwrap();
    assert_eq!(counted, n as f64);
    // The k-th prediction waited about k service times: the sum is at least 0+1+..+(n-1).
    let sum = server
        .metric("chaos_inference_overload_queue_wait_seconds_sum{work=\"prediction\"}")
        .await
        .unwrap();
    let least = service.as_secs_f64() * ((n * (n - 1)) / 2) as f64 * 0.9;
    let most: f64 = answers
        .iter()
        .map(|(_, at, _)| (*at - sent).as_secs_f64())
        .sum();
    assert!(
        sum >= least && sum <= most,
        "prediction waits sum to {sum} s; expected {least}..{most}"
    );
    assert_eq!(server.metric(DEPTH).await, Some(0.0), "nobody waits now");
    // The status page's view of the queue.
    let chaos = server.get_json("/chaos").await;
    assert_eq!(chaos["overload"]["workers"], 1);
    assert_eq!(chaos["overload"]["waiting"], 0);
    assert!(chaos["overload"]["last_probe_wait_ms"].as_f64().unwrap() >= probe_wait * 1000.0 - 1.0);
}

#[tokio::test]
async fn a_separate_probe_is_answered_while_predictions_still_wait() {
    let server = overloaded("600ms", "separate", &[]).await;
    let n = 5;
    let predictions = burst(&server, n);
    wait_depth(&server, n - 1).await;
    for path in [
        "/livez",
        "/readyz",
        "/v2/health/ready",
        "/v2/models/heart-disease/ready",
    ] {
        assert_eq!(server.status(path).await, 200, "{path}");
    }
    // Answered ahead of the queue: the predictions have not all been served yet.
    assert!(
        server.metric(DEPTH).await.unwrap() >= 1.0,
        "the probes should not have waited for the queue to drain"
    );
    assert_eq!(
        server
            .metric("chaos_inference_overload_queue_wait_seconds_count{work=\"probe\"}")
            .await
            .unwrap_or(0.0),
        0.0,
        "a separate probe never enters the queue"
    );
    let answers = join(predictions).await;
    assert!(answers.iter().all(|(s, ..)| *s == 200));
}

#[tokio::test]
async fn a_full_queue_sheds_predictions_but_not_probes_unless_told() {
    let server = overloaded("2s", "queued", &[("CHAOS_OVERLOAD_QUEUE_LIMIT", "2")]).await;
    let first = burst(&server, 3);
    wait_depth(&server, 2).await;
    // The queue is full: more predictions are refused at once, with Retry-After.
    let shed = join(burst(&server, 3)).await;
    for (status, _, body) in &shed {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error_type"], "shed", "{body}");
        assert_eq!(body["retry_after_header"], true);
    }
    // A probe is never shed unless the fault says so: it waits its turn and passes.
    assert_eq!(server.status("/readyz").await, 200);
    let served = join(first).await;
    assert!(served.iter().all(|(s, ..)| *s == 200), "{served:?}");
    assert_eq!(
        server
            .metric("chaos_inference_overload_shed_total{work=\"prediction\"}")
            .await,
        Some(3.0)
    );
    assert_eq!(
        server
            .metric("chaos_inference_overload_shed_total{work=\"probe\"}")
            .await
            .unwrap_or(0.0),
        0.0
    );
}

#[tokio::test]
async fn shed_probes_and_the_shed_status_are_the_faults_own() {
    let server = overloaded(
        "2s",
        "queued",
        &[
            ("CHAOS_OVERLOAD_QUEUE_LIMIT", "1"),
            ("CHAOS_OVERLOAD_SHED_PROBES", "true"),
            ("CHAOS_OVERLOAD_SHED_STATUS", "429"),
        ],
    )
    .await;
    let first = burst(&server, 2);
    wait_depth(&server, 1).await;
    let response = server.get("/livez").await;
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().get("retry-after").is_some());
    assert!(
        server.metric(DEPTH).await.unwrap() >= 1.0,
        "a shed probe is refused at once, while the queue still holds its prediction"
    );
    let (status, ..) = join(burst(&server, 1)).await.remove(0);
    assert_eq!(status, 429);
    join(first).await;
    assert_eq!(
        server
            .metric("chaos_inference_overload_shed_total{work=\"probe\"}")
            .await,
        Some(1.0)
    );
}

/// HTTP and gRPC wait in one queue: a gRPC health check waits behind HTTP predictions, and an
/// HTTP probe behind gRPC inference.
#[tokio::test]
async fn grpc_and_http_share_the_queue() {
    let service = Duration::from_millis(500);
    let server = overloaded("500ms", "queued", &[]).await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.grpc_port()))
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect()
        .await
        .unwrap();
    let predictions = burst(&server, 4);
    wait_depth(&server, 3).await;
    let sent = Instant::now();
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert!(
        sent.elapsed() >= service * 3 * 9 / 10,
        "the gRPC health check waited only {:?} behind 3 HTTP predictions",
        sent.elapsed()
    );
    join(predictions).await;
    // gRPC inference holds the worker as HTTP predictions do.
    let client = GrpcInferenceServiceClient::new(channel);
    let request = ModelInferRequest {
        model_name: "heart-disease".into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 13],
            contents: Some(InferTensorContents {
                fp32_contents: row().iter().map(|x| *x as f32).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let (mut client, request) = (client.clone(), request.clone());
            tokio::spawn(async move { client.model_infer(request).await.map(|_| ()) })
        })
        .collect();
    wait_depth(&server, 2).await;
    let sent = Instant::now();
    assert_eq!(server.status("/livez").await, 200);
    assert!(sent.elapsed() >= service * 2 * 9 / 10);
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

async fn admin(server: &TestServer, action: &str) -> (u16, Value) {
    let response = server
        .client
        .post(server.url(&format!("/chaos/actions/{action}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_admin_route_starts_and_stops_an_overload_and_refuses_bad_keys() {
    let server = Spawn::default().env("ADMIN_TOKEN", TOKEN).ready().await;
    for (query, field) in [
        ("overload?workers=0", "workers"),
        ("overload?workers=1.5", "workers"),
        ("overload?probes=sometimes", "probes"),
        ("overload?service_time=soon", "service_time"),
        ("overload?shed_probes=yes", "shed_probes"),
        ("overload?shed_status=200", "shed_status"),
        ("overload?median=50ms&p99=10ms", "p99"),
        ("overload?queue_limit=-1", "queue_limit"),
    ] {
        let (status, body) = admin(&server, query).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    assert!(
        server.get_json("/chaos").await.get("overload").is_none(),
        "a refused action starts nothing"
    );
    let (status, body) = admin(&server, "overload?workers=2&service_time=1s").await;
    assert_eq!(status, 202, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("2 workers"),
        "{body}"
    );
    assert_eq!(server.get_json("/chaos").await["overload"]["workers"], 2);
    // Two workers: the third of three predictions waits for one of them.
    let predictions = burst(&server, 3);
    wait_depth(&server, 1).await;
    join(predictions).await;
    let (status, _) = admin(&server, "stop-overload").await;
    assert_eq!(status, 202);
    assert!(server.get_json("/chaos").await.get("overload").is_none());
    join(burst(&server, 3)).await;
    assert_eq!(
        server
            .metric("chaos_inference_overload_queue_wait_seconds_count{work=\"prediction\"}")
            .await,
        Some(3.0),
        "after stop-overload nothing queues"
    );
}

#[test]
fn bad_overload_settings_exit_2_with_one_line_naming_the_variable_or_key() {
    for (env, needle) in [
        (
            vec![("CHAOS_OVERLOAD_WORKERS", "0")],
            "CHAOS_OVERLOAD_WORKERS",
        ),
        (
            vec![("CHAOS_OVERLOAD_PROBES", "maybe")],
            "CHAOS_OVERLOAD_PROBES",
        ),
        (
            vec![("CHAOS_OVERLOAD_QUEUE_LIMIT", "x")],
            "CHAOS_OVERLOAD_QUEUE_LIMIT",
        ),
    ] {
        let (code, _, err) = run_cli(&["serve"], &env);
        assert_eq!(code, Some(2), "{env:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{env:?}: {err}");
        assert!(err.contains(needle), "{env:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        "[[fault]]\ntype = \"overload\"\nworkers = 1\nservice-time = \"25ms\"\nshed-probes = \"yes\"\n",
    )
    .unwrap();
    let (code, _, err) = run_cli(&["serve"], &[("CHAOS_PROFILE", path.to_str().unwrap())]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("fault[0].shed-probes") && err.contains("true or false"),
        "{err}"
    );
}

/// The route table says which GET routes wait in the queue as probes (what `simulate` reads);
/// every handler must do as its row says. With the one worker held by predictions, a route that
/// waits gets no answer within a short time-out, and one that does not answers at once.
#[tokio::test]
async fn every_get_route_waits_in_the_queue_exactly_when_the_route_table_says() {
    use chaos_inference::chaos::overload::Work;
    use chaos_inference::simulate::app::ROUTES;
    // The worker is held for a minute; a route that waits gets no answer within 15 s, one that
    // does not answers well within that even on a machine with every core busy.
    let server = overloaded("60s", "queued", &[]).await;
    let patient = reqwest::Client::new();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (patient.clone(), server.url("/predict"));
            tokio::spawn(async move { client.post(&url).json(&record()).send().await })
        })
        .collect();
    wait_depth(&server, 1).await;
    let short = Duration::from_secs(15);
    let mut checks = Vec::new();
    for route in ROUTES.iter().filter(|r| r.waits != Some(Work::Prediction)) {
        if route.path.contains("{action}") {
            continue;
        }
        let path = route
            .path
            .replace("{name}", "heart-disease")
            .replace("{version}", "1");
        let (client, url) = (server.client.clone(), server.url(&path));
        let waits = route.waits == Some(Work::Probe);
        checks.push(tokio::spawn(async move {
            // Headers are enough: the event stream never ends.
            let answered = client.get(&url).timeout(short).send().await.is_ok();
            (path, waits, answered)
        }));
    }
    let mut wrong = Vec::new();
    for check in checks {
        let (path, waits, answered) = check.await.unwrap();
        if waits == answered {
            wrong.push(format!(
                "{path}: the table says it {} but it {}",
                if waits { "waits" } else { "does not wait" },
                if answered {
                    "answered at once"
                } else {
                    "got no answer"
                }
            ));
        }
    }
    for task in held {
        task.abort();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
