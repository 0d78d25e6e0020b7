//! Probe routes: `/livez` (`/healthz`), `/readyz`, `/startupz`. Cheap, no locks on the model,
//! never delayed by latency or error faults.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::health::Phase;
use crate::http::AppState;

/// Body of every probe route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    /// `ok`, or why not.
    pub status: String,
    pub phase: Phase,
}

fn answer(
    ok: Result<(), String>,
    phase: Phase,
    failure: actix_web::http::StatusCode,
) -> HttpResponse {
    match ok {
        Ok(()) => HttpResponse::Ok().json(ProbeStatus {
            status: "ok".into(),
            phase,
        }),
        Err(reason) => HttpResponse::build(failure)
            .insert_header(("Retry-After", "1"))
            .json(ProbeStatus {
                status: reason,
                phase,
            }),
    }
}

/// Liveness: 200 unless a fault made the process unhealthy (500), or the profile says the
/// process is not live until the model has loaded (503).
#[utoipa::path(get, path = "/livez", tag = "probes",
    responses((status = 200, body = ProbeStatus), (status = 500, body = ProbeStatus, description = "an unhealthy fault is active"),
        (status = 503, body = ProbeStatus, description = "still loading, with a profile that is not live while loading")))]
pub async fn livez(state: web::Data<AppState>) -> HttpResponse {
    let failure = if state.health.started() {
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
    } else {
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE
    };
    answer(state.health.liveness(), state.health.phase(), failure)
}

/// Liveness under its older name (same as `/livez`).
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, body = ProbeStatus), (status = 500, body = ProbeStatus, description = "an unhealthy fault is active"),
        (status = 503, body = ProbeStatus, description = "still loading, with a profile that is not live while loading")))]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    livez(state).await
}

/// Readiness: 503 while loading, during unready faults and after SIGTERM.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses((status = 200, body = ProbeStatus), (status = 503, body = ProbeStatus)))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    answer(
        state.health.readiness(),
        state.health.phase(),
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
    )
}

/// Startup: 200 once the model has loaded for the first time.
#[utoipa::path(get, path = "/startupz", tag = "probes",
    responses((status = 200, body = ProbeStatus), (status = 503, body = ProbeStatus)))]
pub async fn startupz(state: web::Data<AppState>) -> HttpResponse {
    let started = if state.health.started() {
        Ok(())
    } else {
        Err("model is loading".to_string())
    };
    answer(
        started,
        state.health.phase(),
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
    )
}
