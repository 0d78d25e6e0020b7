//! The status page at `/` and its event stream `/chaos/events`: content negotiation, event
//! names and order, streams that end (drain) or go away (disconnect) without leaking.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::{PATIENCE, Spawn, TestServer, record};

const CHROMIUM_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
const TOKEN: &str = "status-page-secret-token";

async fn get_with_accept(server: &TestServer, accept: Option<&str>) -> reqwest::Response {
    let mut request = server.client.get(server.url("/"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    request.send().await.unwrap()
}

/// An open `/chaos/events` stream, read frame by frame.
struct Events {
    body: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<actix_web::web::Bytes>> + Send>,
    >,
    buffer: String,
}

impl Events {
    async fn open(server: &TestServer) -> Self {
        let response = server
            .client
            .get(server.url("/chaos/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next `(event name, data)`, `None` when the stream ended; panics after `limit`.
    async fn next(&mut self, limit: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => panic!("no event within {limit:?}"),
                Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
            }
        }
    }

    /// Events up to and including the first `name` that `pick` accepts.
    async fn until(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&str, &Value) -> bool,
    ) -> Vec<(String, Value)> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((name, data)) = self.next(left).await else {
                panic!("stream ended; saw {seen:?}");
            };
            let done = pick(&name, &data);
            seen.push((name, data));
            if done {
                return seen;
            }
        }
    }
}

async fn open_streams(server: &TestServer) -> i64 {
    let open = server.metric("chaos_inference_event_streams").await;
    open.expect("event stream gauge") as i64
}

#[tokio::test]
async fn browsers_get_the_page_and_other_clients_the_chaos_json() {
    let server = Spawn::default().env("ADMIN_TOKEN", TOKEN).ready().await;
    let page = get_with_accept(&server, Some(CHROMIUM_ACCEPT)).await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["vary"], "Accept");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("/chaos/events"));
    assert!(!html.contains(TOKEN));

    for accept in [None, Some("*/*"), Some("application/json")] {
        let response = get_with_accept(&server, accept).await;
        assert_eq!(response.status(), 200, "{accept:?}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["profile"], "none", "{accept:?}");
        assert_eq!(json["phase"], "serving");
        assert!(!json.to_string().contains(TOKEN));
    }

    let refused = get_with_accept(&server, Some("image/png")).await;
    assert_eq!(refused.status(), 406);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_type"], "not_acceptable");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("text/html or application/json")
    );

    let mut events = Events::open(&server).await;
    let (name, status) = events.next(PATIENCE).await.unwrap();
    assert_eq!(name, "status");
    assert!(!status.to_string().contains(TOKEN));
    assert_eq!(status["probes"]["readyz"], 200);
}

/// A v2 process seen from its first moment: the status while loading, the phase change to
/// serving, then the end of the stream when the process crashes. The crash's own `fault` event
/// may or may not get out first (the process exits right after recording it); the page shows
/// the crash as the lost connection either way.
#[tokio::test]
async fn the_stream_tells_loading_then_serving_and_ends_with_the_crash() {
    let mut server = Spawn::default().profile("v2", 0.05).listening();
    let mut events = Events::open(&server).await;
    let (name, first) = events.next(PATIENCE).await.unwrap();
    assert_eq!(name, "status");
    assert_eq!(first["phase"], "loading", "{first}");
    assert_eq!(first["probes"]["readyz"], 503);
    assert_eq!(first["probes"]["livez"], 200);
    assert_eq!(first["probes"]["startupz"], 503);
    assert_eq!(first["profile"], "v2");

    let to_serving = events
        .until(PATIENCE, |name, data| {
            name == "phase" && data["phase"] == "serving"
        })
        .await;
    let serving = &to_serving.last().unwrap().1;
    assert_eq!(serving["probes"]["readyz"], 200);
    assert!(
        to_serving
            .iter()
            .all(|(name, _)| name == "stats" || name == "phase" || name == "fault"),
        "{to_serving:?}"
    );

    // 60-120 s after ready at 0.05: 3-6 s. The stream ends instead of hanging.
    let deadline = Instant::now() + PATIENCE;
    let mut after = Vec::new();
    while let Some(event) = events.next(PATIENCE).await {
        assert!(Instant::now() < deadline, "stream still open");
        after.push(event);
    }
    for (name, data) in &after {
        assert!(name == "stats" || name == "fault", "{name}: {data}");
        if name == "fault" {
            assert_eq!(data["event"]["fault"], "crash");
            assert_eq!(data["event"]["action"], "start");
            assert!(data["event"]["at_ms"].as_u64() >= serving["at_ms"].as_u64());
        }
    }
    let (status, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(status.code(), Some(1), "the v2 crash");
}

/// Faults that come and go: each start and end is a `fault` event (with what comes next), and
/// the phase follows, serving -> unready -> serving.
#[tokio::test]
async fn fault_windows_are_told_as_they_start_and_end() {
    // Unready 1 s after ready for 0.5 s, every 1.5 s.
    let server = Spawn::default()
        .profile("flapping-readiness", 0.05)
        .ready()
        .await;
    let mut events = Events::open(&server).await;
    let mut phases = Vec::new();
    let seen = events
        .until(PATIENCE, |name, data| {
            if name == "phase" {
                phases.push(data["phase"].as_str().unwrap().to_string());
            }
            phases.ends_with(&["unready".to_string(), "serving".to_string()])
        })
        .await;
    let faults: Vec<(String, String)> = seen
        .iter()
        .filter(|(name, _)| name == "fault")
        .map(|(_, d)| {
            (
                d["event"]["fault"].as_str().unwrap().to_string(),
                d["event"]["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        faults.contains(&("unready".into(), "start".into()))
            && faults.contains(&("unready".into(), "end".into())),
        "{faults:?}"
    );
    let with_next = seen.iter().find(|(name, _)| name == "fault").unwrap();
    assert!(with_next.1["next"].is_array(), "{}", with_next.1);
}

#[tokio::test]
async fn stats_report_the_traffic_once_a_second() {
    let server = Spawn::default().ready().await;
    let mut events = Events::open(&server).await;
    for _ in 0..40 {
        assert_eq!(server.post_json("/predict", &record()).await.status(), 200);
    }
    let seen = events
        .until(PATIENCE, |name, data| {
            name == "stats"
                && data["sample"]["requests_per_second"]
                    .as_f64()
                    .unwrap_or(0.0)
                    > 0.0
        })
        .await;
    let stats = &seen.last().unwrap().1;
    assert_eq!(stats["phase"], "serving");
    assert_eq!(stats["sample"]["error_ratio"], 0.0);
    assert!(stats["sample"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(stats["uptime_ms"].as_u64().unwrap() > 0);
}

/// Clients that go away do not leave streams (tasks) behind; SIGTERM ends open streams so the
/// drain is not held up.
#[tokio::test]
async fn streams_end_on_disconnect_and_on_sigterm() {
    let mut server = Spawn::default().env("DRAIN_TIMEOUT", "30s").ready().await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut events = Events::open(&server).await;
        events.next(PATIENCE).await.unwrap();
        streams.push(events);
    }
    assert_eq!(open_streams(&server).await, 3);
    streams.truncate(1);
    let deadline = Instant::now() + PATIENCE;
    while open_streams(&server).await != 1 {
        assert!(Instant::now() < deadline, "closed streams still counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut last = streams.pop().unwrap();
    server.signal(libc::SIGTERM);
    let draining = last
        .until(PATIENCE, |name, data| {
            name == "phase" && data["phase"] == "draining"
        })
        .await;
    assert_eq!(draining.last().unwrap().1["probes"]["readyz"], 503);
    assert!(
        last.next(PATIENCE).await.is_none(),
        "the stream ends after draining"
    );
    let (status, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(status.code(), Some(0));
}

/// JavaScript reads JSON numbers as doubles, so a seed above 2^53 would show as another number
/// (one `plan --seed` gives another timeline for): the seed also travels as a string, which the
/// page shows. (scripts/status_page_browser.py checks what a real browser shows.)
#[tokio::test]
async fn a_seed_above_2_to_the_53_reaches_the_page_exactly() {
    let large = "9007199254740993";
    let server = Spawn::default().env("CHAOS_SEED", large).ready().await;
    let chaos = server.get_json("/chaos").await;
    assert_eq!(chaos["seed_str"], large);
    assert_eq!(chaos["seed"].as_u64(), Some(9_007_199_254_740_993));
    let mut events = Events::open(&server).await;
    let (name, status) = events.next(PATIENCE).await.unwrap();
    assert_eq!(name, "status");
    assert_eq!(status["seed_str"], large);
    let html = get_with_accept(&server, Some(CHROMIUM_ACCEPT))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("status.seed_str"), "the page shows seed_str");
}

/// The document describes each event of the stream (OpenAPI 3.2's `itemSchema`), its `data`
/// JSON text with the event's schema, so a standard validator (schemathesis, in
/// scripts/schema-fuzz.sh) checks every event; the events sent are the ones described.
#[tokio::test]
async fn the_openapi_document_describes_every_event_of_the_stream() {
    let server = Spawn::default().ready().await;
    let doc = server.get_json("/openapi.json").await;
    let media =
        &doc["paths"]["/chaos/events"]["get"]["responses"]["200"]["content"]["text/event-stream"];
    assert!(
        media.get("schema").is_none(),
        "no schema for the whole stream: {media}"
    );
    let described: Vec<(String, String)> = media["itemSchema"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            let data = &event["properties"]["data"];
            assert_eq!(data["contentMediaType"], "application/json");
            (
                event["properties"]["event"]["const"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                data["contentSchema"]["$ref"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let names: Vec<&str> = described.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["status", "phase", "fault", "stats"]);
    for (_, schema) in &described {
        let name = schema.trim_start_matches("#/components/schemas/");
        assert!(doc["components"]["schemas"].get(name).is_some(), "{schema}");
    }
    let mut events = Events::open(&server).await;
    for _ in 0..2 {
        let (name, _) = events.next(PATIENCE).await.unwrap();
        assert!(names.contains(&name.as_str()), "{name} is not described");
    }
}
