//! The bad-input matrix: each case gets its documented status and error body, and the server
//! keeps serving afterwards.

use serde_json::{Value, json};

use crate::helpers::{PATIENCE, Spawn, TestServer, record, row};

fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut r = record();
    change(r.as_object_mut().unwrap());
    r.to_string()
}

fn infer_body(shape: Value, datatype: &str, data: Value) -> String {
    json!({"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]})
        .to_string()
}

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: String,
    status: u16,
    error_type: &'static str,
    field: Option<&'static str>,
}

fn case(
    name: &'static str,
    path: &'static str,
    body: String,
    status: u16,
    error_type: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        name,
        path,
        content_type: "application/json",
        body,
        status,
        error_type,
        field,
    }
}

fn cases() -> Vec<Case> {
    let infer = "/v2/models/heart-disease/infer";
    let row = row();
    vec![
        case("malformed JSON", "/predict", "{\"age\": 63,".into(), 400, "malformed_json", None),
        case("not JSON at all", infer, "hello".into(), 400, "malformed_json", None),
        case("empty body", "/predict", String::new(), 400, "malformed_json", None),
        case("NaN literal", "/predict", with(|_| {}).replace("2.3", "NaN"), 400, "malformed_json", None),
        case("Infinity literal", "/predict", with(|_| {}).replace("2.3", "Infinity"), 400, "malformed_json", None),
        case("number beyond f64", "/predict", with(|_| {}).replace("2.3", "1e999"), 400, "malformed_json", None),
        Case {
            content_type: "text/plain",
            ..case("wrong content type", "/predict", record().to_string(), 415, "unsupported_media_type", None)
        },
        Case {
            content_type: "application/x-www-form-urlencoded",
            ..case("form content type (curl -d default)", infer, "a=b".into(), 415, "unsupported_media_type", None)
        },
        case("missing feature", "/predict", with(|r| { r.remove("thalach"); }), 422, "validation", Some("thalach")),
        case("extra feature", "/predict", with(|r| { r.insert("bmi".into(), json!(25)); }), 422, "validation", Some("bmi")),
        case("string feature", "/predict", with(|r| { r.insert("chol".into(), json!("233")); }), 422, "validation", Some("chol")),
        case("null feature", "/predict", with(|r| { r.insert("chol".into(), Value::Null); }), 422, "validation", Some("chol")),
        case("boolean feature", "/predict", with(|r| { r.insert("fbs".into(), json!(true)); }), 422, "validation", Some("fbs")),
        case("NaN as a string", "/predict", with(|r| { r.insert("oldpeak".into(), json!("NaN")); }), 422, "validation", Some("oldpeak")),
        case("out of range", "/predict", with(|r| { r.insert("age".into(), json!(250)); }), 422, "validation", Some("age")),
        case("negative", "/predict", with(|r| { r.insert("trestbps".into(), json!(-5)); }), 422, "validation", Some("trestbps")),
        case("fractional integer", "/predict", with(|r| { r.insert("ca".into(), json!(1.5)); }), 422, "validation", Some("ca")),
        case("unknown category", "/predict", with(|r| { r.insert("cp".into(), json!(0)); }), 422, "validation", Some("cp")),
        case("bad record in a list", "/predict", json!([record(), {"age": 50}]).to_string(), 422, "validation", Some("[1].sex")),
        case("empty list", "/predict", "[]".into(), 422, "validation", Some("body")),
        case("a bare number", "/predict", "5".into(), 422, "validation", Some("body")),
        case("a list of numbers", "/predict", "[1, 2]".into(), 422, "validation", Some("[0]")),
        case("wrong tensor shape", infer, infer_body(json!([1, 12]), "FP32", json!(row[..12])), 422, "validation", Some("inputs[0].shape")),
        case("wrong tensor rank", infer, infer_body(json!([13]), "FP32", json!(row)), 422, "validation", Some("inputs[0].shape")),
        case("negative dimension", infer, infer_body(json!([-1, 13]), "FP32", json!(row)), 422, "validation", Some("inputs[0].shape")),
        case("wrong datatype", infer, infer_body(json!([1, 13]), "INT64", json!(row)), 422, "validation", Some("inputs[0].datatype")),
        case("unknown datatype", infer, infer_body(json!([1, 13]), "BF16", json!(row)), 422, "validation", Some("inputs[0].datatype")),
        case("data shorter than shape", infer, infer_body(json!([2, 13]), "FP32", json!(row)), 422, "validation", Some("inputs[0].data")),
        case("data longer than shape", infer, infer_body(json!([1, 13]), "FP32", json!([row.clone(), row.clone()].concat())), 422, "validation", Some("inputs[0].data")),
        case("string element", infer, infer_body(json!([1, 13]), "FP32", json!(vec!["x"; 13])), 422, "validation", Some("inputs[0].data[0]")),
        case("unknown input", infer, json!({"inputs": [{"name": "x", "shape": [1, 13], "datatype": "FP32", "data": row}]}).to_string(), 422, "validation", Some("inputs[0].name")),
        case("no inputs", infer, json!({"inputs": []}).to_string(), 422, "validation", Some("inputs")),
        case("unknown output", infer, json!({"inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32", "data": row}], "outputs": [{"name": "nope"}]}).to_string(), 422, "validation", Some("outputs[0].name")),
        case("unknown model", "/v2/models/nope/infer", infer_body(json!([1, 13]), "FP32", json!(row)), 404, "model_not_found", None),
    ]
}

async fn still_serving(server: &TestServer) {
    assert_eq!(server.status("/readyz").await, 200);
    let response = server.post_json("/predict", &record()).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn every_bad_input_gets_its_status_and_a_named_field() {
    let server = Spawn::default().ready().await;
    for case in cases() {
        let response = server
            .post_raw(case.path, case.content_type, case.body.clone())
            .await;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{}: body is not JSON: {e}", case.name));
        assert_eq!(status, case.status, "{}: {body}", case.name);
        assert_eq!(body["error_type"], case.error_type, "{}: {body}", case.name);
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}: {body}",
            case.name
        );
        if let Some(field) = case.field {
            assert_eq!(body["field"], field, "{}: {body}", case.name);
        }
    }
    still_serving(&server).await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413_with_or_without_a_length() {
    let server = Spawn::default().env("MAX_BODY_BYTES", "4096").ready().await;
    let big = json!(vec![record(); 40]).to_string();
    assert!(big.len() > 4096);
    let response = server
        .post_raw("/predict", "application/json", big.clone())
        .await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_type"], "payload_too_large");

    // Chunked, with no Content-Length: the limit holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.as_bytes().chunks(512).map(|c| Ok(c.to_vec())).collect();
    let stream = futures_util::stream::iter(chunks);
    let response = server
        .client
        .post(server.url("/v2/models/heart-disease/infer"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    still_serving(&server).await;
}

#[tokio::test]
async fn batch_and_tensor_limits_are_enforced() {
    let server = Spawn::default()
        .env("MAX_BATCH_ROWS", "3")
        .env("MAX_TENSOR_ELEMENTS", "26")
        .ready()
        .await;
    let response = server
        .post_json("/predict", &json!(vec![record(); 4]))
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("MAX_BATCH_ROWS"),
        "{body}"
    );
    assert_eq!(
        server
            .post_json("/predict", &json!(vec![record(); 3]))
            .await
            .status(),
        200
    );

    let data = vec![1.0; 39];
    let request =
        json!({"inputs": [{"name": "input", "shape": [3, 13], "datatype": "FP32", "data": data}]});
    let response = server
        .post_json("/v2/models/heart-disease/infer", &request)
        .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("limit of 26"),
        "{body}"
    );
    still_serving(&server).await;
}

#[tokio::test]
async fn unknown_routes_answer_404_and_wrong_methods_405_with_allow() {
    let server = Spawn::default().ready().await;
    let response = server.get("/nope").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_type"], "not_found");
    for (method, path, allow) in [
        ("GET", "/predict", "POST"),
        ("DELETE", "/v2/models/heart-disease/infer", "POST"),
        ("POST", "/livez", "GET, HEAD"),
        ("TRACE", "/chaos", "GET, HEAD"),
        ("PUT", "/v2/models/heart-disease", "GET, HEAD"),
    ] {
        let response = server
            .client
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error_type"], "method_not_allowed");
    }
    // HEAD is served wherever GET is (RFC 9110), without a body.
    let response = server
        .client
        .head(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    still_serving(&server).await;
}

#[tokio::test]
async fn deep_nesting_is_refused_before_parsing() {
    let server = Spawn::default().env("MAX_JSON_DEPTH", "8").ready().await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let response = server
        .post_raw("/v2/models/heart-disease/infer", "application/json", deep)
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("MAX_JSON_DEPTH"),
        "{body}"
    );
    // A rank-2 tensor nested as rows is well within the limit.
    let request = json!({"inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32",
        "data": [row()]}]});
    assert_eq!(
        server
            .post_json("/v2/models/heart-disease/infer", &request)
            .await
            .status(),
        200
    );
    still_serving(&server).await;
}

#[tokio::test]
async fn refused_requests_are_logged_with_their_reason() {
    let server = Spawn::default().env("MAX_BODY_BYTES", "1024").ready().await;
    server
        .post_raw("/predict", "application/json", "x".repeat(4096))
        .await;
    server.post_json("/predict", &json!({"age": 1})).await;
    server.logs_with(&[
        r#""message":"request refused""#,
        r#""status":413"#,
        r#""status":422"#,
    ]);
}

#[tokio::test]
async fn oversized_headers_get_431_and_slow_clients_are_cut_off() {
    use std::io::{Read, Write};
    let server = Spawn::default()
        .env("CLIENT_REQUEST_TIMEOUT", "500ms")
        .ready()
        .await;
    let huge = "x".repeat(32 * 1024);
    let response = server
        .client
        .get(server.url("/livez"))
        .header("x-big", huge)
        .send()
        .await;
    match response {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => panic!("expected 431, got {e}"),
    }
    // A client that sends half a request line and stops: answered 408 (or closed) quickly.
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{}", server.port())).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "slow client held for {:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    still_serving(&server).await;
}

/// One raw HTTP/1.1 exchange on `stream`: sends `GET path`, returns the status line, or the I/O
/// error kind when nothing came back within the stream's read timeout.
fn raw_get(
    stream: &mut std::net::TcpStream,
    path: &str,
    close: bool,
) -> Result<String, std::io::ErrorKind> {
    use std::io::Write;
    let connection = if close { "close" } else { "keep-alive" };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\r\n"
    )
    .map_err(|e| e.kind())?;
    status_line(stream)
}

/// The next status line on `stream`, or the I/O error kind when none came within its timeout.
fn status_line(stream: &mut std::net::TcpStream) -> Result<String, std::io::ErrorKind> {
    use std::io::{BufRead, BufReader};
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.kind())?;
    Ok(line.trim_end().to_string())
}

#[test]
fn connections_beyond_the_limit_wait_until_one_closes() {
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    // One HTTP worker that may hold one connection. Readiness is polled on keep-alive
    // connections; the one that finds the server ready is kept and holds the only slot (a
    // dropped probe's slot is freed a moment later, and the next probe waits for it).
    let server = Spawn::default()
        .env("MAX_CONNECTIONS", "1")
        .env("HTTP_WORKERS", "1")
        .listening();
    let address = format!("127.0.0.1:{}", server.port());
    let deadline = Instant::now() + PATIENCE;
    let holder = loop {
        let mut probe = TcpStream::connect(&address).unwrap();
        probe.set_read_timeout(Some(PATIENCE)).unwrap();
        if raw_get(&mut probe, "/readyz", false).as_deref() == Ok("HTTP/1.1 200 OK") {
            break probe;
        }
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    };

    let mut waiting = TcpStream::connect(&address).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let early = raw_get(&mut waiting, "/livez", true);
    assert!(
        matches!(
            early,
            Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        ),
        "a connection over the limit was served at once: {early:?}"
    );

    drop(holder);
    waiting.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(
        status_line(&mut waiting).as_deref(),
        Ok("HTTP/1.1 200 OK"),
        "served once a slot is free"
    );
}
