//! Probe routes: `/livez` (`/healthz`), `/readyz`, `/startupz`. Cheap, no locks on the model,
//! never delayed by latency or error faults.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::health::{Health, Phase};
use crate::http::AppState;
use actix_web::http::StatusCode;

/// The status each probe route answers now: what the kubelet sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProbeCodes {
    pub livez: u16,
    pub readyz: u16,
    pub startupz: u16,
}

impl ProbeCodes {
    pub fn of(health: &Health) -> Self {
        let code = |(ok, failure): (Result<(), String>, StatusCode)| match ok {
            Ok(()) => 200,
            Err(_) => failure.as_u16(),
        };
        ProbeCodes {
            livez: code(liveness(health)),
            readyz: code(readiness(health)),
            startupz: code(startup(health)),
        }
    }
}

/// Liveness and the status it fails with: 500 for an unhealthy fault, 503 while loading.
fn liveness(health: &Health) -> (Result<(), String>, StatusCode) {
    let failure = if health.started() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (health.liveness(), failure)
}

fn readiness(health: &Health) -> (Result<(), String>, StatusCode) {
    (health.readiness(), StatusCode::SERVICE_UNAVAILABLE)
}

fn startup(health: &Health) -> (Result<(), String>, StatusCode) {
    let started = if health.started() {
        Ok(())
    } else {
        Err("model is loading".to_string())
    };
    (started, StatusCode::SERVICE_UNAVAILABLE)
}

/// Body of every probe route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    /// `ok`, or why not.
    pub status: String,
    pub phase: Phase,
}

fn answer((ok, failure): (Result<(), String>, StatusCode), phase: Phase) -> HttpResponse {
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
    answer(liveness(&state.health), state.health.phase())
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
    answer(readiness(&state.health), state.health.phase())
}

/// Startup: 200 once the model has loaded for the first time.
#[utoipa::path(get, path = "/startupz", tag = "probes",
    responses((status = 200, body = ProbeStatus), (status = 503, body = ProbeStatus)))]
pub async fn startupz(state: web::Data<AppState>) -> HttpResponse {
    answer(startup(&state.health), state.health.phase())
}
