//! `inference.GRPCInferenceService`: the Open Inference Protocol over gRPC, answered by the
//! same model, pool, health and chaos engine as the REST routes. Statuses: INVALID_ARGUMENT
//! for a request that breaks the model's schema (naming the field, as REST does), NOT_FOUND for
//! another model or version, UNAVAILABLE while loading and when saturated, and an injected error
//! as its HTTP status would be (503 UNAVAILABLE, other 5xx INTERNAL).

use tonic::{Request, Response, Status};

use super::GrpcState;
use super::convert;
use super::pb::grpc_inference_service_server::GrpcInferenceService;
use super::pb::model_metadata_response::TensorMetadata;
use super::pb::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
    ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
    ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
};
use crate::chaos::engine::Injected;
use crate::model::ServedModel;
use crate::model::pool::PoolError;
use crate::model::tensor::{TensorLimits, returnable_outputs};

/// The service.
pub struct Inference {
    state: GrpcState,
}

impl Inference {
    pub fn new(state: GrpcState) -> Self {
        Inference { state }
    }

    /// The model by name and version (empty: the one served): NOT_FOUND for another one,
    /// UNAVAILABLE while it loads.
    fn model(&self, name: &str, version: &str) -> Result<&ServedModel, Status> {
        if name != self.state.model_name {
            return Err(Status::not_found(format!("unknown model `{name}`")));
        }
        let model = self
            .state
            .model
            .get()
            .ok_or_else(|| Status::unavailable("not ready: model is loading"))?;
        if !version.is_empty() && version != model.version {
            return Err(Status::not_found(format!(
                "unknown model `{name}` version {version}"
            )));
        }
        Ok(model)
    }
}

/// An injected failure as gRPC says it.
fn injected(e: Injected) -> Status {
    let message = e.to_string();
    match e.status {
        502..=504 => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

fn tensors(specs: &[crate::model::tensor::TensorSpec]) -> Vec<TensorMetadata> {
    specs
        .iter()
        .map(|s| TensorMetadata {
            name: s.name.clone(),
            datatype: s.datatype.clone(),
            shape: s.shape.clone(),
        })
        .collect()
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        self.state
            .measured("/inference.GRPCInferenceService/ServerLive", async {
                Ok(Response::new(ServerLiveResponse {
                    live: self.state.health.liveness().is_ok(),
                }))
            })
            .await
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        self.state
            .measured("/inference.GRPCInferenceService/ServerReady", async {
                Ok(Response::new(ServerReadyResponse {
                    ready: self.state.health.readiness().is_ok(),
                }))
            })
            .await
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let request = request.into_inner();
        self.state
            .measured("/inference.GRPCInferenceService/ModelReady", async {
                let ready = match self.model(&request.name, &request.version) {
                    Ok(_) => true,
                    Err(status) if status.code() == tonic::Code::Unavailable => false,
                    Err(status) => return Err(status),
                };
                Ok(Response::new(ModelReadyResponse { ready }))
            })
            .await
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.state
            .measured("/inference.GRPCInferenceService/ServerMetadata", async {
                Ok(Response::new(ServerMetadataResponse {
                    name: "chaos-inference".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    extensions: Vec::new(),
                }))
            })
            .await
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        self.state
            .measured("/inference.GRPCInferenceService/ModelMetadata", async {
                let model = self.model(&request.name, &request.version)?;
                Ok(Response::new(ModelMetadataResponse {
                    name: model.name.clone(),
                    versions: vec![model.version.clone()],
                    platform: "onnxruntime_onnx".into(),
                    inputs: tensors(&model.inputs),
                    outputs: tensors(&model.outputs),
                }))
            })
            .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let request = request.into_inner();
        self.state
            .measured("/inference.GRPCInferenceService/ModelInfer", async {
                let model = self.model(&request.model_name, &request.model_version)?;
                let decoded = convert::decode(
                    &request,
                    &model.inputs,
                    &model.outputs,
                    TensorLimits {
                        max_elements: self.state.max_tensor_elements,
                    },
                )
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
                let wanted = decoded
                    .outputs
                    .unwrap_or_else(|| returnable_outputs(&model.outputs));
                self.state.chaos.inject().await.map_err(injected)?;
                let outputs =
                    model
                        .pool
                        .run(decoded.inputs, wanted)
                        .await
                        .map_err(|e| match e {
                            PoolError::Saturated { .. } => {
                                self.state.metrics.queue_rejected.inc();
                                Status::unavailable(format!("server is saturated: {e}"))
                            }
                            PoolError::Stopped => Status::unavailable(e.to_string()),
                            PoolError::Runtime(message) => {
                                Status::internal(format!("inference failed: {message}"))
                            }
                        })?;
                let (outputs, raw_output_contents) = convert::encode(outputs, decoded.raw);
                Ok(Response::new(ModelInferResponse {
                    model_name: model.name.clone(),
                    model_version: model.version.clone(),
                    id: request.id.clone(),
                    parameters: Default::default(),
                    outputs,
                    raw_output_contents,
                }))
            })
            .await
    }
}
