//! Probe routes: `/livez` (`/healthz`), `/readyz`, `/startupz`. Cheap, no locks on the model,
//! never delayed by latency or error faults; an overload fault may make them wait for a worker.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::chaos::overload::Work;
use crate::error::ApiError;
use crate::health::{Check, Health, Phase};
use crate::http::AppState;
use actix_web::ResponseError;
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
        let switches = health.switches();
        ProbeCodes {
            livez: Check::Liveness.status(&switches),
            readyz: Check::Readiness.status(&switches),
            startupz: Check::Startup.status(&switches),
        }
    }
}

/// The answer of a probe route: the check's status (one rule, in `health.rs`) and why, once an
/// overload fault's queue (if any) lets the probe through.
pub(crate) async fn probe(state: &AppState, check: Check) -> HttpResponse {
    if let Err(shed) = state.chaos.admit(Work::Probe).await {
        return ApiError::from(shed).error_response();
    }
    let health = &state.health;
    let switches = health.switches();
    let status = check.status(&switches);
    answer(
        health.check_at(check, &switches),
        StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        health.phase(),
    )
}

/// Body of every probe route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    /// `ok`, or why not.
    pub status: String,
    pub phase: Phase,
}

fn answer(ok: Result<(), String>, failure: StatusCode, phase: Phase) -> HttpResponse {
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
    probe(&state, Check::Liveness).await
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
    probe(&state, Check::Readiness).await
}

/// Startup: 200 once the model has loaded for the first time.
#[utoipa::path(get, path = "/startupz", tag = "probes",
    responses((status = 200, body = ProbeStatus), (status = 503, body = ProbeStatus)))]
pub async fn startupz(state: web::Data<AppState>) -> HttpResponse {
    probe(&state, Check::Startup).await
}
