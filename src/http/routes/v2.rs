//! The Open Inference Protocol (KServe V2 / Triton) REST routes, generic over the model's
//! inputs and outputs.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::chaos::overload::Work;
use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::http::body::{fast_path_allowed, parse_json, read_body};
use crate::model::infer_body::decode_infer_request;
use crate::model::json;
use crate::model::tensor::{TensorData, TensorLimits, TensorSpec, returnable_outputs};

/// `GET /v2`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

/// `GET /v2/models/{name}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// `GET /v2/models/{name}/ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelReady {
    pub name: String,
    pub ready: bool,
}

/// One output tensor of an infer response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutputTensor {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
    /// Elements in row-major order; `null` where the model produced NaN or an infinity, which
    /// JSON cannot carry.
    #[schema(value_type = Vec<Option<f64>>)]
    pub data: TensorData,
}

/// `POST /v2/models/{name}/infer` response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InferResponse<'a> {
    pub model_name: &'a str,
    pub model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor>,
}

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "v2", responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(ServerMetadata {
        name: "chaos-inference".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec![],
    })
}

/// Server liveness (same as `/livez`).
#[utoipa::path(get, path = "/v2/health/live", tag = "v2",
    responses((status = 200, body = super::health::ProbeStatus, description = "live"),
        (status = 500, body = super::health::ProbeStatus, description = "an unhealthy fault is active"),
        (status = 503, body = super::health::ProbeStatus, description = "still loading, with a profile that is not live while loading")))]
pub async fn live(state: web::Data<AppState>) -> HttpResponse {
    super::health::livez(state).await
}

/// Server readiness (same as `/readyz`).
#[utoipa::path(get, path = "/v2/health/ready", tag = "v2",
    responses((status = 200, body = super::health::ProbeStatus, description = "ready"),
        (status = 503, body = super::health::ProbeStatus, description = "not ready")))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    super::health::readyz(state).await
}

/// Model metadata: inputs and outputs with datatypes and shapes (-1 for free dimensions).
#[utoipa::path(get, path = "/v2/models/{name}", tag = "v2",
    params(("name" = String, Path, description = "model name", example = "heart-disease")),
    responses((status = 200, body = ModelMetadata), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn model_metadata(
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let model = state.model_named(&name)?;
    Ok(HttpResponse::Ok().json(ModelMetadata {
        name: model.name.clone(),
        versions: vec![model.version.clone()],
        platform: "onnxruntime_onnx".into(),
        inputs: model.inputs.clone(),
        outputs: model.outputs.clone(),
    }))
}

/// Model readiness: 200 once loaded.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "v2",
    params(("name" = String, Path, description = "model name", example = "heart-disease")),
    responses((status = 200, body = ModelReady), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn model_ready(
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.chaos.admit(Work::Probe).await?;
    ready_answer(name, &state)
}

/// The answer of a model readiness route once the probe is through any overload queue.
fn ready_answer(name: web::Path<String>, state: &AppState) -> Result<HttpResponse, ApiError> {
    state.model_named(&name)?;
    Ok(HttpResponse::Ok().json(ModelReady {
        name: name.into_inner(),
        ready: true,
    }))
}

fn check_version(state: &AppState, name: &str, version: &str) -> Result<(), ApiError> {
    let model = state.model_named(name)?;
    if model.version != version {
        return Err(ApiError::ModelNotFound(format!("{name} version {version}")));
    }
    Ok(())
}

/// Metadata of one model version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "v2",
    params(("name" = String, Path, description = "model name", example = "heart-disease"), ("version" = String, Path, description = "model version", example = "1")),
    responses((status = 200, body = ModelMetadata), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn model_version_metadata(
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (name, version) = path.into_inner();
    check_version(&state, &name, &version)?;
    model_metadata(web::Path::from(name), state).await
}

/// Readiness of one model version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "v2",
    params(("name" = String, Path, description = "model name", example = "heart-disease"), ("version" = String, Path, description = "model version", example = "1")),
    responses((status = 200, body = ModelReady), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn model_version_ready(
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.chaos.admit(Work::Probe).await?;
    let (name, version) = path.into_inner();
    check_version(&state, &name, &version)?;
    ready_answer(web::Path::from(name), &state)
}

/// Inference on tensors. Datatypes FP32, FP64, INT32, INT64; `data` flat or nested,
/// row-major; `outputs` optionally selects outputs; `id` is echoed.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "v2",
    params(("name" = String, Path, description = "model name", example = "heart-disease")),
    request_body(content = Object, description = "the served model's inputs (see InferRequest)", content_type = "application/json"),
    responses(
        (status = 200, body = InferResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody, description = "shape, datatype or data do not fit the model; `field` names which"),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn infer(
    name: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // An overload fault's worker is held until the answer is made.
    let _worker = state.chaos.admit(Work::Prediction).await?;
    let model = state.model_named(&name)?;
    let body = read_body(&req, payload, &state.limits).await?;
    let limits = TensorLimits {
        max_elements: state.limits.max_tensor_elements,
    };
    // Valid requests decode straight from the bytes; anything else takes the general path,
    // which names the error.
    let fast = fast_path_allowed(&body, state.limits.max_json_depth)
        .then(|| json::decode_infer_body(&body, &model.inputs, &model.outputs, limits))
        .flatten();
    let request = match fast {
        Some(request) => request,
        None => {
            let value = parse_json(&body, state.limits.max_json_depth)?;
            decode_infer_request(&value, &model.inputs, &model.outputs, limits)
                .map_err(|e| ApiError::invalid(e.field, e.message))?
        }
    };
    let wanted = request
        .outputs
        .unwrap_or_else(|| returnable_outputs(&model.outputs));
    state.chaos.inject().await?;
    let outputs = model
        .pool
        .run(request.inputs, wanted)
        .await
        .map_err(|e| state.pool_error(e))?;
    let elements: usize = outputs.iter().map(|t| t.data.len()).sum();
    let response = InferResponse {
        model_name: &model.name,
        model_version: &model.version,
        id: request.id,
        outputs: outputs
            .into_iter()
            .map(|t| OutputTensor {
                name: t.name,
                datatype: t.data.datatype().as_v2(),
                shape: t.shape,
                data: t.data,
            })
            .collect(),
    };
    // Written once into a buffer sized for it (a number is at most 24 bytes in JSON), not grown
    // from empty.
    let mut body = Vec::with_capacity(128 + 24 * elements);
    serde_json::to_writer(&mut body, &response)
        .map_err(|e| ApiError::Inference(format!("cannot encode the response: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

/// Inference on one model version.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "v2",
    params(("name" = String, Path, description = "model name", example = "heart-disease"), ("version" = String, Path, description = "model version", example = "1")),
    request_body(content = Object, description = "the served model's inputs (see InferRequest)", content_type = "application/json"),
    responses((status = 200, body = InferResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn version_infer(
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (name, version) = path.into_inner();
    check_version(&state, &name, &version)?;
    infer(web::Path::from(name), req, payload, state).await
}
