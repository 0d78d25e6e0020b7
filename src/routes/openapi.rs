//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, generated from the handlers.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::chaos::engine::{ChaosStatus, NextEvent, PastEvent};
use crate::error::ErrorBody;
use crate::health::Phase;
use crate::model::Prediction;
use crate::model::schema::{
    ClassSpec, Feature, FeatureKind, InputSpec, ModelSchema, OutputSpec, OutputsSpec,
};
use crate::model::tensor::TensorSpec;

/// The generated document.
#[derive(OpenApi)]
#[openapi(
    info(title = "chaos-inference", description = "ONNX inference server with scheduled, observable faults for Kubernetes probes, restarts and rollouts."),
    paths(
        super::health::livez, super::health::readyz, super::health::startupz,
        super::predict::predict, super::model::model,
        super::v2::server_metadata, super::v2::live, super::v2::ready, super::v2::model_metadata, super::v2::model_ready,
        super::v2::infer, super::v2::model_version_metadata, super::v2::model_version_ready, super::v2::version_infer,
        super::metrics::metrics, super::chaos::status, super::chaos::action,
    ),
    components(schemas(
        ErrorBody, Phase, super::health::ProbeStatus, Prediction, super::predict::Predictions, super::model::ModelInfo,
        ModelSchema, InputSpec, Feature, FeatureKind, OutputsSpec, OutputSpec, ClassSpec, TensorSpec,
        super::v2::ServerMetadata, super::v2::ModelMetadata, super::v2::InferRequest, super::v2::InferInputTensor,
        super::v2::RequestedOutput, super::v2::InferResponse, super::v2::OutputTensor,
        ChaosStatus, PastEvent, NextEvent, super::chaos::ActionResult,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// The OpenAPI document.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
