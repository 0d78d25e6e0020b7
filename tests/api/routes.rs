//! Every route of a healthy server, and predictions against onnxruntime's own outputs.

use serde_json::{Value, json};

use crate::helpers::{Spawn, fixture, record};

const TOLERANCE: f64 = 1e-5;

fn assert_close(got: &Value, want: &Value, what: &str) {
    let (got, want) = (got.as_array().unwrap(), want.as_array().unwrap());
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
        assert!((g - w).abs() <= TOLERANCE, "{what}: {g} vs {w}");
    }
}

#[tokio::test]
async fn probe_routes_answer_ok_when_serving() {
    let server = Spawn::default().ready().await;
    for path in [
        "/livez",
        "/healthz",
        "/readyz",
        "/startupz",
        "/v2/health/live",
        "/v2/health/ready",
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok", "{path}");
        assert_eq!(body["phase"], "serving", "{path}");
    }
}

#[tokio::test]
async fn predict_matches_onnxruntime_for_every_fixture_row() {
    let server = Spawn::default().ready().await;
    let fixture = fixture();
    let rows: Vec<Value> = fixture["rows"].as_array().unwrap().clone();
    let inputs: Vec<Value> = rows.iter().map(|r| r["input"].clone()).collect();

    let response = server
        .post_json("/predict", &Value::Array(inputs.clone()))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let predictions = body["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), rows.len());
    for (i, (got, want)) in predictions.iter().zip(&rows).enumerate() {
        assert_eq!(got["label"], want["label"], "row {i}");
        assert_close(
            &got["probabilities"],
            &want["probabilities"],
            &format!("row {i}"),
        );
        let name = if want["label"] == 1 {
            "disease"
        } else {
            "no disease"
        };
        assert_eq!(got["class"], name, "row {i}");
    }

    // One record gives one prediction object, equal to the same row in a batch.
    let single: Value = server
        .post_json("/predict", &inputs[3])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(single["label"], rows[3]["label"]);
    assert_close(
        &single["probabilities"],
        &rows[3]["probabilities"],
        "single record",
    );
}

#[tokio::test]
async fn v2_infer_round_trips_a_batch_and_echoes_the_id() {
    let server = Spawn::default().ready().await;
    let fixture = fixture();
    let features: Vec<String> = fixture["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let rows = fixture["rows"].as_array().unwrap();
    let data: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            features
                .iter()
                .map(|f| r["input"][f].as_f64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let request = json!({
        "id": "batch-1",
        "inputs": [{"name": "input", "shape": [rows.len(), 13], "datatype": "FP32", "data": data}],
    });
    let response = server
        .post_json("/v2/models/heart-disease/infer", &request)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], "batch-1");
    assert_eq!(body["model_name"], "heart-disease");
    assert_eq!(body["model_version"], "1");
    let outputs = body["outputs"].as_array().unwrap();
    let label = outputs.iter().find(|o| o["name"] == "label").unwrap();
    let probabilities = outputs
        .iter()
        .find(|o| o["name"] == "probabilities")
        .unwrap();
    assert_eq!(label["datatype"], "INT64");
    assert_eq!(label["shape"], json!([rows.len()]));
    assert_eq!(probabilities["datatype"], "FP32");
    assert_eq!(probabilities["shape"], json!([rows.len(), 2]));
    let want_labels: Vec<Value> = rows.iter().map(|r| r["label"].clone()).collect();
    assert_eq!(label["data"], Value::Array(want_labels));
    let want_probabilities: Vec<Value> = rows
        .iter()
        .flat_map(|r| r["probabilities"].as_array().unwrap().clone())
        .collect();
    assert_close(
        &probabilities["data"],
        &Value::Array(want_probabilities),
        "V2 probabilities",
    );

    // Output selection returns only what was asked for; nested data is accepted.
    let nested: Vec<Vec<f64>> = data.chunks(13).take(2).map(|c| c.to_vec()).collect();
    let request = json!({
        "inputs": [{"name": "input", "shape": [2, 13], "datatype": "FP32", "data": nested}],
        "outputs": [{"name": "probabilities"}],
    });
    let body: Value = server
        .post_json("/v2/models/heart-disease/versions/1/infer", &request)
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("id").is_none());
    let outputs = body["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["name"], "probabilities");
    assert_eq!(outputs[0]["shape"], json!([2, 2]));
}

#[tokio::test]
async fn v2_metadata_routes_describe_server_and_model() {
    let server = Spawn::default().ready().await;
    let meta = server.get_json("/v2").await;
    assert_eq!(meta["name"], "chaos-inference");
    let model = server.get_json("/v2/models/heart-disease").await;
    assert_eq!(model["platform"], "onnxruntime_onnx");
    assert_eq!(
        model["inputs"][0],
        json!({"name": "input", "datatype": "FP32", "shape": [-1, 13]})
    );
    assert_eq!(model["outputs"].as_array().unwrap().len(), 2);
    assert_eq!(server.status("/v2/models/heart-disease/ready").await, 200);
    assert_eq!(
        server.status("/v2/models/heart-disease/versions/1").await,
        200
    );
    assert_eq!(
        server
            .status("/v2/models/heart-disease/versions/1/ready")
            .await,
        200
    );
    assert_eq!(
        server.status("/v2/models/heart-disease/versions/9").await,
        404
    );
    assert_eq!(server.status("/v2/models/other").await, 404);
    assert_eq!(server.status("/v2/models/other/ready").await, 404);
}

#[tokio::test]
async fn model_route_publishes_the_schema_from_the_model() {
    let server = Spawn::default().ready().await;
    let model = server.get_json("/model").await;
    assert_eq!(model["name"], "heart-disease");
    assert_eq!(model["origin"], "built-in");
    let features: Vec<&str> = model["schema"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        features,
        [
            "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
            "oldpeak", "slope", "ca", "thal"
        ]
    );
    assert_eq!(model["schema"]["features"][0]["type"], "integer");
    assert_eq!(
        model["schema"]["features"][12]["categories"]["7"],
        "reversible defect"
    );
    assert_eq!(model["schema"]["classes"][1]["name"], "disease");
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let server = Spawn::default().ready().await;
    server.post_json("/predict", &record()).await;
    server.get("/v2/models/heart-disease").await;
    server.get("/no/such/path/12345").await;
    let text = server.get("/metrics").await.text().await.unwrap();
    for needle in [
        r#"chaos_inference_requests_total{method="POST",protocol="http",route="/predict",status="200"} 1"#,
        r#"route="/v2/models/{name}""#,
        r#"route="unmatched""#,
        "chaos_inference_request_duration_seconds_bucket",
        "chaos_inference_model_run_duration_seconds_bucket",
        r#"chaos_inference_model_rows_total{model="heart-disease"}"#,
        r#"chaos_inference_phase{phase="serving"} 1"#,
        "chaos_inference_model_load_duration_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains("12345"), "raw paths must not become labels");
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let server = Spawn::default().ready().await;
    let doc = server.get_json("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/livez",
        "/readyz",
        "/startupz",
        "/predict",
        "/model",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/metrics",
        "/chaos",
        "/chaos/actions/{action}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
}

#[tokio::test]
async fn any_onnx_model_is_served_with_every_v2_datatype() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/typed.onnx");
    let server = Spawn::default()
        .env("MODEL_PATH", model)
        .env("MODEL_NAME", "typed")
        .ready()
        .await;
    let request = json!({
        "id": "t",
        "inputs": [
            {"name": "x_f32", "shape": [1, 2], "datatype": "FP32", "data": [1.5, -2.0]},
            {"name": "x_f64", "shape": [1, 2], "datatype": "FP64", "data": [0.25, 1e300]},
            {"name": "x_i32", "shape": [2, 2], "datatype": "INT32", "data": [[1, -2], [3, 2147483647]]},
            {"name": "x_i64", "shape": [1, 2], "datatype": "INT64", "data": [9007199254740993i64, -5]},
        ],
    });
    let response = server.post_json("/v2/models/typed/infer", &request).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let out = |name: &str| {
        body["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(out("y_f32")["data"], json!([3.0, -4.0]));
    assert_eq!(out("y_f64")["data"], json!([1.25, 1e300]));
    assert_eq!(out("y_f64")["datatype"], "FP64");
    // INT32 multiplication wraps in ONNX Runtime, as in C.
    assert_eq!(out("y_i32")["data"], json!([3, -6, 9, 2147483645]));
    assert_eq!(out("y_i32")["shape"], json!([2, 2]));
    assert_eq!(out("y_i64")["data"], json!([-9007199254740993i64, 5]));

    // No schema: /predict says where to go instead; /model has no schema.
    let response = server.post_json("/predict", &record()).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("/v2/models/typed/infer"),
        "{body}"
    );
    assert!(server.get_json("/model").await.get("schema").is_none());
    assert_eq!(server.status("/v2/models/heart-disease").await, 404);
}
