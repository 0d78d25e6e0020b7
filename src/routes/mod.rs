//! Thin HTTP handlers, one file per concern, and what they share: the app state and body reading.

pub mod chaos;
pub mod health;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod predict;
pub mod v2;

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::Value;

use crate::chaos::engine::ChaosEngine;
use crate::error::ApiError;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::model::ServedModel;
use crate::model::pool::PoolError;

/// Bounds on what one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch_rows: usize,
    pub max_tensor_elements: usize,
    pub max_json_depth: usize,
    pub max_header_bytes: usize,
}

/// Everything the handlers share; built once, cloned into each worker.
#[derive(Clone)]
pub struct AppState {
    pub health: Arc<Health>,
    pub metrics: Metrics,
    pub model: Arc<OnceLock<ServedModel>>,
    pub model_name: String,
    pub model_origin: String,
    pub chaos: Arc<ChaosEngine>,
    pub limits: Limits,
    pub admin_token: Option<String>,
}

impl AppState {
    /// The model, or 503 while it loads.
    pub fn model(&self) -> Result<&ServedModel, ApiError> {
        self.model
            .get()
            .ok_or_else(|| ApiError::NotReady("model is loading".into()))
    }

    /// The model by its V2 name: 404 for another name, 503 while it loads.
    pub fn model_named(&self, name: &str) -> Result<&ServedModel, ApiError> {
        if name != self.model_name {
            return Err(ApiError::ModelNotFound(name.to_string()));
        }
        self.model()
    }

    /// Maps a pool failure to its HTTP error, counting refusals.
    pub fn pool_error(&self, e: PoolError) -> ApiError {
        match e {
            PoolError::Saturated { .. } => {
                self.metrics.inference_rejected.inc();
                ApiError::Overloaded(e.to_string())
            }
            PoolError::Stopped => ApiError::NotReady(e.to_string()),
            PoolError::Runtime(message) => ApiError::Inference(message),
        }
    }
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/livez", web::get().to(health::livez))
        .route("/healthz", web::get().to(health::livez))
        .route("/readyz", web::get().to(health::readyz))
        .route("/startupz", web::get().to(health::startupz))
        .route("/predict", web::post().to(predict::predict))
        .route("/model", web::get().to(model::model))
        .route("/v2", web::get().to(v2::server_metadata))
        .route("/v2/health/live", web::get().to(v2::live))
        .route("/v2/health/ready", web::get().to(v2::ready))
        .route("/v2/models/{name}", web::get().to(v2::model_metadata))
        .route("/v2/models/{name}/ready", web::get().to(v2::model_ready))
        .route("/v2/models/{name}/infer", web::post().to(v2::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            web::get().to(v2::model_version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            web::get().to(v2::model_version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            web::post().to(v2::version_infer),
        )
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/chaos", web::get().to(chaos::status))
        .route("/chaos/actions/{action}", web::post().to(chaos::action))
        .route("/openapi.json", web::get().to(openapi::openapi));
}

/// Answers unknown routes and wrong methods in the standard error body.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

/// Reads a JSON body: 415 for another content type, 413 above the size limit (checked against
/// Content-Length before reading, and while reading), 400 for malformed JSON or nesting deeper
/// than the depth limit (checked before parsing, so a hostile body cannot exhaust the stack).
pub async fn read_json(
    req: &HttpRequest,
    mut payload: web::Payload,
    limits: &Limits,
) -> Result<Value, ApiError> {
    let limit = limits.max_body_bytes;
    if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
        let text = content_type.to_str().unwrap_or("");
        let essence = text
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!("`{text}`")));
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::MalformedJson(format!("cannot read body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    parse_json(&body, limits.max_json_depth)
}

/// Parses a request body: 400 for an empty body, malformed JSON, or nesting deeper than
/// `max_depth` (checked before parsing, so a hostile body cannot exhaust the stack).
pub fn parse_json(body: &[u8], max_depth: usize) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::MalformedJson(
            "empty body; send a JSON document".into(),
        ));
    }
    if nesting_depth(body) > max_depth {
        return Err(ApiError::MalformedJson(format!(
            "nesting deeper than the limit of {max_depth} (MAX_JSON_DEPTH)"
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// The deepest nesting of `[` and `{` outside strings: a linear scan, no recursion.
pub fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::nesting_depth;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert_eq!(nesting_depth(b"5"), 0);
        assert_eq!(nesting_depth(br#"{"a": [1, [2]]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a": "[[[[{{{"}"#), 1);
        // An escaped quote does not end the string; an escaped backslash does not escape it.
        assert_eq!(nesting_depth(br#"{"a": "\"[[["}"#), 1);
        assert_eq!(nesting_depth(br#"{"a": "\\", "b": [[1]]}"#), 3);
        assert_eq!(nesting_depth(br#"[{}, {}, [[]]]"#), 3);
        assert_eq!(nesting_depth(&[b'['; 10_000]), 10_000);
    }
}
