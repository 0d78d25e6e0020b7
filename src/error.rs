//! The one error type of the HTTP layer and its one status table.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::chaos::engine::Injected;
use crate::chaos::overload::Shed;

/// Every way a request can fail, each with exactly one status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error(
        "request headers total {size} bytes, more than the limit of {limit} (MAX_HEADER_BYTES)"
    )]
    HeadersTooLarge { size: usize, limit: usize },
    #[error("unsupported content type {0}; send application/json")]
    UnsupportedMediaType(String),
    /// Valid JSON that breaks the model's schema or the protocol; `field` names where.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("unknown model `{0}`")]
    ModelNotFound(String),
    #[error("{0}")]
    NotFound(String),
    /// A known path called with a method it does not serve; `allow` lists the ones it does.
    #[error("{path} does not serve {method}; allowed: {allow}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    /// The `Accept` header allows none of the representations the route has.
    #[error("cannot answer with any of `{accept}`; this route serves {offers}")]
    NotAcceptable {
        accept: String,
        offers: &'static str,
    },
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("server is saturated: {0}")]
    Overloaded(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("inference failed: {0}")]
    Inference(String),
    /// A failure a chaos fault asked for, with the status it chose.
    #[error(transparent)]
    Injected(#[from] Injected),
    /// Refused at once by an overload fault whose queue is full.
    #[error(transparent)]
    Shed(#[from] Shed),
}

impl ApiError {
    /// A 422 for `field` breaking `message`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The machine-readable kind, stable across releases.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Invalid { .. } => "validation",
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotAcceptable { .. } => "not_acceptable",
            ApiError::NotReady(_) => "not_ready",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Inference(_) => "inference",
            ApiError::Injected(_) => "chaos",
            ApiError::Shed(_) => "shed",
        }
    }
}

/// The standard error body. `field` is present on validation errors.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: malformed_json, payload_too_large, headers_too_large, unsupported_media_type,
    /// validation, model_not_found, not_found, method_not_allowed, not_acceptable, not_ready, overloaded, unauthorized, inference,
    /// chaos, shed.
    pub error_type: String,
    /// The field or variable at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ModelNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            ApiError::NotReady(_) | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Inference(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Injected(injected) => {
                StatusCode::from_u16(injected.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Shed(shed) => {
                StatusCode::from_u16(shed.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = ErrorBody {
            error: self.to_string(),
            error_type: self.error_type().to_string(),
            field: match self {
                ApiError::Invalid { field, .. } => Some(field.clone()),
                _ => None,
            },
        };
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE
            || matches!(self, ApiError::Shed(_))
        {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(body)
    }
}
