//! `GET /model`: what is served and what it accepts.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::model::schema::ModelSchema;
use crate::model::tensor::TensorSpec;

/// The served model.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    /// `built-in` or the file path.
    pub origin: String,
    pub platform: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Inference worker threads, each with its own session.
    pub workers: usize,
    pub load_time_ms: u64,
    /// Feature schema; absent for models that carry none (`/predict` is then unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<ModelSchema>,
}

/// The model's schema: features, types, allowed values, outputs.
#[utoipa::path(get, path = "/model", tag = "inference",
    responses((status = 200, body = ModelInfo), (status = 503, body = ErrorBody, description = "model still loading")))]
pub async fn model(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let model = state.model()?;
    Ok(HttpResponse::Ok().json(ModelInfo {
        name: model.name.clone(),
        version: model.version.clone(),
        origin: state.model_origin.clone(),
        platform: "onnxruntime_onnx".into(),
        inputs: model.inputs.clone(),
        outputs: model.outputs.clone(),
        workers: model.pool.workers(),
        load_time_ms: model.load_time.as_millis() as u64,
        schema: model.schema.clone(),
    }))
}
