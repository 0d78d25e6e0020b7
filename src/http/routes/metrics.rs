//! `GET /metrics`: Prometheus text format.

use actix_web::{HttpResponse, web};

use crate::http::AppState;

/// Every metric in the Prometheus text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "observability",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
