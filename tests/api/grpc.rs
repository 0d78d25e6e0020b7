//! The gRPC listener from outside, with a tonic client: every RPC of the Open Inference
//! Protocol's service, the health service and reflection, and every fault acting on gRPC as it
//! acts on HTTP.

use std::time::{Duration, Instant};

use chaos_inference::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use chaos_inference::grpc::pb::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use chaos_inference::grpc::pb::*;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{PATIENCE, Spawn, TestServer, fixture, free_port, row};

const TOKEN: &str = "grpc-admin-token";
const INFERENCE: &str = "inference.GRPCInferenceService";

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{}", server.grpc_port()))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

pub(crate) async fn client(server: &TestServer) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::new(channel(server).await)
}

/// One row of the example record as an FP32 request, typed or raw.
pub(crate) fn infer(rows: &[Vec<f64>], raw: bool) -> ModelInferRequest {
    let flat: Vec<f32> = rows.iter().flatten().map(|x| *x as f32).collect();
    let mut input = InferInputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape: vec![rows.len() as i64, 13],
        ..Default::default()
    };
    let mut request = ModelInferRequest {
        model_name: "heart-disease".into(),
        id: "req-7".into(),
        ..Default::default()
    };
    if raw {
        request.raw_input_contents = vec![flat.iter().flat_map(|x| x.to_le_bytes()).collect()];
    } else {
        input.contents = Some(InferTensorContents {
            fp32_contents: flat,
            ..Default::default()
        });
    }
    request.inputs = vec![input];
    request
}

async fn health(server: &TestServer, service: &str) -> Result<ServingStatus, Code> {
    let mut client = HealthClient::new(channel(server).await);
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| ServingStatus::try_from(r.into_inner().status).unwrap())
        .map_err(|s| s.code())
}

async fn admin(server: &TestServer, action: &str) {
    let status = server
        .client
        .post(server.url(&format!("/chaos/actions/{action}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202, "{action}");
}

#[tokio::test]
async fn every_rpc_answers_as_the_protocol_says() {
    let server = Spawn::default().ready().await;
    let mut c = client(&server).await;
    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = c
        .model_ready(ModelReadyRequest {
            name: "heart-disease".into(),
            version: String::new(),
        })
        .await
        .unwrap();
    assert!(ready.into_inner().ready);
    let meta = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, "chaos-inference");
    let model = c
        .model_metadata(ModelMetadataRequest {
            name: "heart-disease".into(),
            version: "1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(model.platform, "onnxruntime_onnx");
    assert_eq!(model.inputs[0].name, "input");
    assert_eq!(model.inputs[0].shape, [-1, 13]);
    assert_eq!(model.outputs.len(), 2);
    // Unknown model and version: NOT_FOUND.
    let e = c
        .model_metadata(ModelMetadataRequest {
            name: "other".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .model_ready(ModelReadyRequest {
            name: "heart-disease".into(),
            version: "9".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn model_infer_matches_onnxruntime_typed_and_raw_and_honours_outputs_and_id() {
    let server = Spawn::default().ready().await;
    let mut c = client(&server).await;
    let fixture = fixture();
    let features: Vec<String> = fixture["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let cases = fixture["rows"].as_array().unwrap();
    let rows: Vec<Vec<f64>> = cases
        .iter()
        .map(|case| {
            features
                .iter()
                .map(|f| case["input"][f].as_f64().unwrap())
                .collect()
        })
        .collect();
    // Typed in, typed out.
    let typed = c
        .model_infer(infer(&rows, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(typed.id, "req-7");
    assert_eq!(typed.model_name, "heart-disease");
    assert!(typed.raw_output_contents.is_empty());
    let probabilities = typed
        .outputs
        .iter()
        .find(|o| o.name == "probabilities")
        .unwrap();
    assert_eq!(probabilities.shape, [rows.len() as i64, 2]);
    let got = &probabilities.contents.as_ref().unwrap().fp32_contents;
    for (i, case) in cases.iter().enumerate() {
        for k in 0..2 {
            let want = case["probabilities"][k].as_f64().unwrap();
            assert!((f64::from(got[i * 2 + k]) - want).abs() < 1e-5, "row {i}");
        }
    }
    // Raw in, raw out, one output asked for.
    let mut request = infer(&rows[..2], true);
    request.outputs = vec![InferRequestedOutputTensor {
        name: "label".into(),
        ..Default::default()
    }];
    let raw = c.model_infer(request).await.unwrap().into_inner();
    assert_eq!(raw.outputs.len(), 1);
    assert_eq!(raw.outputs[0].name, "label");
    assert_eq!(raw.outputs[0].datatype, "INT64");
    let labels: Vec<i64> = raw.raw_output_contents[0]
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let want: Vec<i64> = cases[..2]
        .iter()
        .map(|c| c["label"].as_i64().unwrap())
        .collect();
    assert_eq!(labels, want);
}

#[tokio::test]
async fn bad_requests_get_invalid_argument_naming_the_field_and_change_nothing() {
    let server = Spawn::default().ready().await;
    let mut c = client(&server).await;
    let mut short = infer(&[row()], false);
    short.inputs[0]
        .contents
        .as_mut()
        .unwrap()
        .fp32_contents
        .pop();
    let e = c.model_infer(short).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("inputs[0].contents.fp32_contents:"),
        "{}",
        e.message()
    );
    let mut shape = infer(&[row()], true);
    shape.inputs[0].shape = vec![1, 12];
    let e = c.model_infer(shape).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("inputs[0].shape:"),
        "{}",
        e.message()
    );
    let mut datatype = infer(&[row()], false);
    datatype.inputs[0].datatype = "FP16".into();
    assert_eq!(
        c.model_infer(datatype).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut output = infer(&[row()], false);
    output.outputs = vec![InferRequestedOutputTensor {
        name: "nope".into(),
        ..Default::default()
    }];
    let e = c.model_infer(output).await.unwrap_err();
    assert!(
        e.message().starts_with("outputs[0].name:"),
        "{}",
        e.message()
    );
    let mut model = infer(&[row()], false);
    model.model_name = "other".into();
    assert_eq!(
        c.model_infer(model).await.unwrap_err().code(),
        Code::NotFound
    );
    // Still serving, both protocols.
    assert!(c.model_infer(infer(&[row()], false)).await.is_ok());
    assert_eq!(server.status("/readyz").await, 200);
}

#[tokio::test]
async fn health_follows_liveness_for_the_empty_service_and_readiness_for_the_inference_service() {
    let server = Spawn::default().env("ADMIN_TOKEN", TOKEN).ready().await;
    assert_eq!(health(&server, "").await, Ok(ServingStatus::Serving));
    assert_eq!(health(&server, INFERENCE).await, Ok(ServingStatus::Serving));
    assert_eq!(health(&server, "nope").await, Err(Code::NotFound));
    admin(&server, "unready").await;
    assert_eq!(
        health(&server, INFERENCE).await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(health(&server, "").await, Ok(ServingStatus::Serving));
    let mut c = client(&server).await;
    assert!(
        !c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    admin(&server, "ready").await;
    admin(&server, "unhealthy").await;
    assert_eq!(health(&server, "").await, Ok(ServingStatus::NotServing));
    assert!(
        !c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert_eq!(server.status("/livez").await, 500);
}

#[tokio::test]
async fn injected_latency_and_errors_act_on_model_infer() {
    let server = Spawn::default().env("ADMIN_TOKEN", TOKEN).ready().await;
    let mut c = client(&server).await;
    admin(&server, "latency?delay=300ms").await;
    let started = Instant::now();
    c.model_infer(infer(&[row()], false)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    admin(&server, "stop-latency").await;
    admin(&server, "errors?rate=1&statuses=503").await;
    assert_eq!(
        c.model_infer(infer(&[row()], false))
            .await
            .unwrap_err()
            .code(),
        Code::Unavailable
    );
    admin(&server, "errors?rate=1&statuses=500").await;
    assert_eq!(
        c.model_infer(infer(&[row()], false))
            .await
            .unwrap_err()
            .code(),
        Code::Internal
    );
    admin(&server, "clear").await;
    assert!(c.model_infer(infer(&[row()], false)).await.is_ok());
    let metrics = server.get("/metrics").await.text().await.unwrap();
    for needle in [
        r#"chaos_inference_requests_total{method="POST",protocol="grpc",route="/inference.GRPCInferenceService/ModelInfer",status="OK"}"#,
        r#"protocol="grpc",route="/inference.GRPCInferenceService/ModelInfer",status="UNAVAILABLE"} 1"#,
        r#"chaos_inference_fault_events_total{action="inject",fault="errors"} 2"#,
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_hang_stops_grpc_answers_too() {
    let server = Spawn::default().env("ADMIN_TOKEN", TOKEN).ready().await;
    let mut c = client(&server).await;
    assert!(c.server_live(ServerLiveRequest {}).await.is_ok());
    admin(&server, "hang").await;
    let mut request = tonic::Request::new(ServerLiveRequest {});
    request.set_timeout(Duration::from_millis(500));
    let e = c.server_live(request).await.unwrap_err();
    assert!(
        matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{e:?}"
    );
    let mut check = tonic::Request::new(HealthCheckRequest::default());
    check.set_timeout(Duration::from_millis(500));
    let mut h = HealthClient::new(channel(&server).await);
    assert!(
        h.check(check).await.is_err(),
        "health times out as a kubelet probe would"
    );
}

#[tokio::test]
async fn during_the_load_the_model_is_unavailable_and_readiness_not_serving() {
    let server = Spawn::default()
        .env("CHAOS_STARTUP_DELAY", "3s")
        .listening();
    let mut c = client(&server).await;
    assert!(
        !c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = c
        .model_ready(ModelReadyRequest {
            name: "heart-disease".into(),
            version: String::new(),
        })
        .await
        .unwrap();
    assert!(!ready.into_inner().ready);
    assert_eq!(
        c.model_infer(infer(&[row()], false))
            .await
            .unwrap_err()
            .code(),
        Code::Unavailable
    );
    assert_eq!(
        health(&server, INFERENCE).await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(
        health(&server, "").await,
        Ok(ServingStatus::Serving),
        "live while loading"
    );
    server.wait_ready().await;
    assert_eq!(health(&server, INFERENCE).await, Ok(ServingStatus::Serving));
}

#[tokio::test]
async fn a_bind_delay_keeps_both_ports_closed() {
    let (http, grpc) = (free_port(), free_port());
    let server = Spawn::default()
        .bind(&format!("127.0.0.1:{http}"))
        .env("GRPC_BIND", format!("127.0.0.1:{grpc}"))
        .env("CHAOS_BIND_DELAY", "2s")
        .start();
    // The process starts after the spawn, so both ports stay closed at least 2 s after it.
    while server.started.elapsed() < Duration::from_millis(1500) {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err(),
            "gRPC open {:?} after spawn, during the bind delay",
            server.started.elapsed()
        );
        assert!(std::net::TcpStream::connect(("127.0.0.1", http)).is_err());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.grpc_port(), grpc);
    assert!(server.started.elapsed() >= Duration::from_secs(2));
    assert_eq!(server.port(), http);
    assert!(std::net::TcpStream::connect(("127.0.0.1", grpc)).is_ok());
}

#[tokio::test]
async fn watch_streams_not_serving_then_serving_then_ends_with_the_crash() {
    // v2 at 1/50: loads 0.4-0.6 s, exits 1.2-2.4 s after ready.
    let server = Spawn::default().profile("v2", 0.02).listening();
    let mut h = HealthClient::new(channel(&server).await);
    let mut stream = h
        .watch(HealthCheckRequest {
            service: INFERENCE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.message()).await {
            Ok(Ok(Some(r))) => seen.push(ServingStatus::try_from(r.status).unwrap()),
            // The process exited: the stream breaks.
            Ok(Ok(None) | Err(_)) => break,
            Err(_) => panic!("no end of the stream: {seen:?}"),
        }
    }
    assert_eq!(seen, [ServingStatus::NotServing, ServingStatus::Serving]);
}

#[tokio::test]
async fn sigterm_lets_a_call_in_flight_finish_and_exits_0() {
    let mut server = Spawn::default()
        .env("ADMIN_TOKEN", TOKEN)
        .env("DRAIN_TIMEOUT", "10s")
        .ready()
        .await;
    admin(&server, "latency?delay=2s").await;
    let mut c = client(&server).await;
    let started = server.started;
    let call = tokio::spawn(async move {
        let answer = c.model_infer(infer(&[row()], false)).await;
        (answer, started.elapsed())
    });
    // Evidence on the server's side that the call is in flight, not a sleep that hopes so.
    server.wait_in_flight("grpc", 1).await;
    server.signal(libc::SIGTERM);
    // With no SHUTDOWN_DELAY the drain starts at once (the HTTP listener closes with it, and
    // gRPC sends GOAWAY); the call in flight must still be answered.
    let address = format!("127.0.0.1:{}", server.port());
    let (_, closed) = crate::timing::poll(
        &server,
        "the drain",
        Duration::from_millis(10),
        PATIENCE,
        || async {
            std::net::TcpStream::connect(&address)
                .is_err()
                .then_some(())
        },
    )
    .await;
    let (answer, finished) = call.await.unwrap();
    assert!(answer.is_ok(), "in flight: {answer:?}");
    assert!(
        finished > closed.by,
        "the call ended {finished:?} after spawn, before the drain began (by {:?})",
        closed.by
    );
    let (status, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(status.code(), Some(0), "{}", crate::helpers::ended(&status));
}

#[tokio::test]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let server = Spawn::default().ready().await;
    let mut client = ServerReflectionClient::new(channel(&server).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream_once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("{response:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [INFERENCE, "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
}

fn tokio_stream_once<T: Send + 'static>(item: T) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::iter([item])
}

#[tokio::test]
async fn a_full_queue_answers_unavailable_and_counts_the_rejection() {
    // One worker and a queue of one: a burst of large batches must find it full.
    let server = Spawn::default()
        .env("INFERENCE_WORKERS", "1")
        .env("INFERENCE_QUEUE", "1")
        .ready()
        .await;
    let c = client(&server).await;
    let batch = vec![row(); 1024];
    let mut rejected = Vec::new();
    for _ in 0..20 {
        let calls: Vec<_> = (0..32)
            .map(|_| {
                let mut c = c.clone();
                let request = infer(&batch, true);
                tokio::spawn(async move { c.model_infer(request).await })
            })
            .collect();
        for call in calls {
            if let Err(e) = call.await.unwrap() {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                rejected.push(e.message().to_string());
            }
        }
        if !rejected.is_empty() {
            break;
        }
    }
    assert!(
        !rejected.is_empty(),
        "32 concurrent 1024-row calls never filled a queue of 1"
    );
    assert!(rejected[0].contains("saturated"), "{}", rejected[0]);
    let metrics = server.get("/metrics").await.text().await.unwrap();
    let counted = format!("chaos_inference_queue_rejected_total {}", rejected.len());
    assert!(
        metrics.contains(&counted),
        "missing {counted} in\n{metrics}"
    );
    // Served again once the burst is over.
    let mut c = c;
    assert!(c.model_infer(infer(&[row()], false)).await.is_ok());
}

/// The four V2 types through a model that doubles (f32, i32), adds one (f64) and negates (i64).
fn typed_inputs() -> Vec<InferInputTensor> {
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>, contents: InferTensorContents| {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape,
            contents: Some(contents),
            ..Default::default()
        }
    };
    vec![
        tensor(
            "x_f32",
            "FP32",
            vec![1, 2],
            InferTensorContents {
                fp32_contents: vec![1.5, -2.0],
                ..Default::default()
            },
        ),
        tensor(
            "x_f64",
            "FP64",
            vec![1, 2],
            InferTensorContents {
                fp64_contents: vec![0.25, 1e300],
                ..Default::default()
            },
        ),
        tensor(
            "x_i32",
            "INT32",
            vec![2, 2],
            InferTensorContents {
                int_contents: vec![1, -2, 3, i32::MAX],
                ..Default::default()
            },
        ),
        tensor(
            "x_i64",
            "INT64",
            vec![1, 2],
            InferTensorContents {
                int64_contents: vec![9_007_199_254_740_993, -5],
                ..Default::default()
            },
        ),
    ]
}

#[tokio::test]
async fn fp32_fp64_int32_int64_typed_and_raw() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/typed.onnx");
    let server = Spawn::default()
        .env("MODEL_PATH", model)
        .env("MODEL_NAME", "typed")
        .ready()
        .await;
    let mut c = client(&server).await;
    let typed = ModelInferRequest {
        model_name: "typed".into(),
        inputs: typed_inputs(),
        ..Default::default()
    };
    // The same tensors as little-endian bytes.
    let mut raw = typed.clone();
    raw.raw_input_contents = raw
        .inputs
        .iter_mut()
        .map(|input| {
            let c = input.contents.take().unwrap();
            let mut bytes = Vec::new();
            c.fp32_contents
                .iter()
                .for_each(|x| bytes.extend(x.to_le_bytes()));
            c.fp64_contents
                .iter()
                .for_each(|x| bytes.extend(x.to_le_bytes()));
            c.int_contents
                .iter()
                .for_each(|x| bytes.extend(x.to_le_bytes()));
            c.int64_contents
                .iter()
                .for_each(|x| bytes.extend(x.to_le_bytes()));
            bytes
        })
        .collect();
    let typed = c.model_infer(typed).await.unwrap().into_inner();
    let raw = c.model_infer(raw).await.unwrap().into_inner();
    assert!(typed.raw_output_contents.is_empty());
    assert_eq!(raw.raw_output_contents.len(), raw.outputs.len());
    let find = |r: &ModelInferResponse, name: &str| {
        let i = r.outputs.iter().position(|o| o.name == name).unwrap();
        (r.outputs[i].clone(), r.raw_output_contents.get(i).cloned())
    };
    let (f32_out, f32_raw) = find(&raw, "y_f32");
    assert_eq!(f32_out.datatype, "FP32");
    let f32_raw: Vec<f32> = f32_raw
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(f32_raw, [3.0, -4.0]);
    let (i64_out, i64_raw) = find(&raw, "y_i64");
    let i64_raw: Vec<i64> = i64_raw
        .unwrap()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(i64_out.datatype, "INT64");
    assert_eq!(i64_raw, [-9_007_199_254_740_993, 5]);
    let contents = |name: &str| find(&typed, name).0.contents.unwrap();
    assert_eq!(contents("y_f32").fp32_contents, [3.0, -4.0]);
    assert_eq!(contents("y_f64").fp64_contents, [1.25, 1e300]);
    // INT32 multiplication wraps in ONNX Runtime, as in C.
    assert_eq!(contents("y_i32").int_contents, [3, -6, 9, 2_147_483_645]);
    assert_eq!(find(&typed, "y_i32").0.shape, [2, 2]);
    assert_eq!(
        contents("y_i64").int64_contents,
        [-9_007_199_254_740_993, 5]
    );
}

#[tokio::test]
async fn probe_grpc_checks_the_health_service_like_a_kubelet() {
    use crate::helpers::run_cli;
    let server = Spawn::default().env("ADMIN_TOKEN", TOKEN).ready().await;
    let addr = format!("127.0.0.1:{}", server.grpc_port());
    let probe = |service: &str| {
        run_cli(
            &[
                "probe",
                "grpc",
                "--addr",
                &addr,
                "--service",
                service,
                "--timeout",
                "5s",
            ],
            &[],
        )
    };
    let (code, out, _) = probe("");
    assert_eq!(code, Some(0));
    assert!(out.contains("SERVING"), "{out}");
    admin(&server, "unready").await;
    let (code, _, err) = probe(INFERENCE);
    assert_eq!(code, Some(1));
    assert!(err.contains("NOT_SERVING"), "{err}");
    assert_eq!(probe("").0, Some(0), "unready is still live");
    let (code, _, err) = probe("nope");
    assert_eq!(code, Some(1));
    assert!(err.contains("NotFound"), "{err}");
    // Nothing listening: a failure, not a hang.
    let closed = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = run_cli(&["probe", "grpc", "--addr", &closed], &[]);
    assert_eq!(code, Some(1), "{err}");
    // --service belongs to grpc only.
    let (code, _, err) = run_cli(&["probe", "livez", "--service", "x"], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--service"), "{err}");
}

#[tokio::test]
async fn a_message_over_max_body_bytes_is_refused_and_changes_nothing() {
    let server = Spawn::default().env("MAX_BODY_BYTES", "4096").ready().await;
    let mut c = client(&server).await;
    // 100 rows of 13 floats: 5,200 bytes of raw data alone.
    let e = c
        .model_infer(infer(&vec![row(); 100], true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("4096"), "{}", e.message());
    assert!(c.model_infer(infer(&[row()], true)).await.is_ok());
}
