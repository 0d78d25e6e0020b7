//! `grpc.health.v1.Health`: service `""` follows liveness (`/livez`), service
//! `inference.GRPCInferenceService` follows readiness (`/readyz`), so a Kubernetes `grpc:`
//! liveness probe names no service and a readiness probe names the inference service.

use std::pin::Pin;

use futures_util::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::{GrpcState, INFERENCE_SERVICE};
use crate::health::Check;

/// The health service.
pub struct HealthService {
    state: GrpcState,
}

impl HealthService {
    pub fn new(state: GrpcState) -> Self {
        HealthService { state }
    }
}

/// The health services and the check each follows: what `Check` answers and `simulate`
/// predicts for a `grpc:` probe.
pub const SERVICES: [(&str, Check); 2] =
    [("", Check::Liveness), (INFERENCE_SERVICE, Check::Readiness)];

/// The method a `grpc:` probe calls: what the kubelet asks, and what waits in an overload
/// queue as a probe (`super::work_of`).
pub const CHECK_METHOD: &str = "/grpc.health.v1.Health/Check";

/// The status of `service` now; `None` for a service this server does not have.
fn status(state: &GrpcState, service: &str) -> Option<ServingStatus> {
    // A stand-in answers its application's services (and only those).
    let check = match &state.stand_in {
        Some(stand_in) => stand_in.grpc_service(service)?,
        None => Some(SERVICES.iter().find(|(name, _)| *name == service)?.1),
    };
    let ok = check.is_none_or(|check| state.health.check(check).is_ok());
    Some(if ok {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    })
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        self.state
            .measured(CHECK_METHOD, async {
                status(&self.state, &service)
                    .map(|s| Response::new(response(s)))
                    .ok_or_else(|| Status::not_found(format!("unknown service `{service}`")))
            })
            .await
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    /// The status now, then each change, for as long as the client listens. An unknown service
    /// is SERVICE_UNKNOWN, as the protocol says, not an error.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let state = self.state.clone();
        self.state
            .measured("/grpc.health.v1.Health/Watch", async move {
                let changes = state.health.subscribe();
                let stream = futures_util::stream::unfold(
                    (changes, None::<ServingStatus>),
                    move |(mut changes, last)| {
                        let state = state.clone();
                        let service = service.clone();
                        async move {
                            loop {
                                let now = status(&state, &service)
                                    .unwrap_or(ServingStatus::ServiceUnknown);
                                if last != Some(now) {
                                    return Some((Ok(response(now)), (changes, Some(now))));
                                }
                                // The server is stopping: the stream ends with it.
                                changes.changed().await.ok()?;
                            }
                        }
                    },
                );
                Ok(Response::new(Box::pin(stream) as Self::WatchStream))
            })
            .await
    }
}
