//! The gRPC protocol layer (tonic): the Open Inference Protocol's `GRPCInferenceService`, the
//! standard `grpc.health.v1.Health` service and server reflection, on `GRPC_BIND`. Like `http/`
//! it only translates: the same model, inference pool, health and chaos engine answer.

pub mod convert;
pub mod health;
pub mod inference;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};

use crate::chaos::effects;
use crate::chaos::engine::ChaosEngine;
use crate::chaos::overload::Work;
use crate::health::Health;
use crate::metrics::{GaugeGuard, Metrics};
use crate::model::ServedModel;

/// The generated protocol code, from `proto/inference.proto`.
#[allow(clippy::all, missing_docs, unreachable_pub)]
pub mod pb {
    tonic::include_proto!("inference");

    /// The compiled descriptors, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/inference_descriptor.bin"));
}

/// The inference service's full name: also the health service name readiness answers for.
pub const INFERENCE_SERVICE: &str = "inference.GRPCInferenceService";

/// What the gRPC services share.
#[derive(Clone)]
pub struct GrpcState {
    pub health: Arc<Health>,
    pub metrics: Metrics,
    pub model: Arc<OnceLock<ServedModel>>,
    pub model_name: String,
    pub chaos: Arc<ChaosEngine>,
    pub max_tensor_elements: usize,
    /// What it replays of another application: its gRPC health services.
    pub stand_in: Option<Arc<crate::stand_in::StandIn>>,
}

impl GrpcState {
    /// Runs one call: waits for good while a hang holds the server (as HTTP does), then counts
    /// and times it under its method, and logs a refusal.
    pub(crate) async fn measured<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        effects::pend_if_hung(&self.health).await;
        let started = Instant::now();
        let in_flight = GaugeGuard::enter(&self.metrics.in_flight.grpc);
        let result = match work_of(method) {
            // HTTP and gRPC wait in the same overload queue; a prediction's worker is held
            // until its answer is made.
            Some(work) => match self.chaos.admit(work).await {
                Ok(worker) => {
                    let result = call.await;
                    drop(worker);
                    result
                }
                Err(shed) => Err(Status::unavailable(shed.to_string())),
            },
            None => call.await,
        };
        drop(in_flight);
        let code = match &result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        let elapsed = started.elapsed();
        self.metrics
            .requests
            .with_label_values(&["grpc", method, "POST", code_name(code)])
            .inc();
        self.metrics
            .request_duration
            .with_label_values(&["grpc", method])
            .observe(elapsed.as_secs_f64());
        match &result {
            Err(status) => tracing::info!(
                method,
                code = code_name(code),
                error = status.message(),
                "request refused"
            ),
            Ok(_) => tracing::debug!(method, elapsed_us = elapsed.as_micros() as u64, "request"),
        }
        result
    }
}

/// What a call is to an overload fault's queue: the health checks a probe makes (the standard
/// health Check, V2 liveness and readiness) and inference; the rest never wait.
pub(crate) fn work_of(method: &str) -> Option<Work> {
    match method {
        health::CHECK_METHOD
        | "/inference.GRPCInferenceService/ServerLive"
        | "/inference.GRPCInferenceService/ServerReady"
        | "/inference.GRPCInferenceService/ModelReady" => Some(Work::Probe),
        "/inference.GRPCInferenceService/ModelInfer" => Some(Work::Prediction),
        _ => None,
    }
}

/// The gRPC status code's canonical name, for metrics.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves every gRPC service on `listener` until `shutdown` resolves, then stops taking calls
/// (GOAWAY) and lets those in flight finish.
pub async fn serve(
    state: GrpcState,
    listener: tokio::net::TcpListener,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let inference = pb::grpc_inference_service_server::GrpcInferenceServiceServer::new(
        inference::Inference::new(state.clone()),
    )
    .max_decoding_message_size(max_message_bytes);
    Server::builder()
        .add_service(inference)
        .add_service(tonic_health::pb::health_server::HealthServer::new(
            health::HealthService::new(state),
        ))
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
