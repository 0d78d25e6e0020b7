//! `GET /chaos` (what the chaos engine did and will do) and the admin routes that inject faults
//! at run time.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::chaos::duration::DurationRange;
use crate::chaos::engine::ChaosStatus;
use crate::chaos::plan::{Action, Latency};
use crate::chaos::profile::CrashMode;
use crate::error::{ApiError, ErrorBody};

/// The admin actions, as `POST /chaos/actions/{action}` takes them.
pub const ACTIONS: &str = "crash, hang, unready, ready, unhealthy, healthy, latency, errors, leak, burn, stop-burn, clear";

/// Source name of faults switched by the admin routes.
const ADMIN: &str = "admin";

/// The answer to an admin action.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionResult {
    pub action: String,
    pub detail: String,
}

/// Profile, seed, phase, past events and the next ones with countdowns.
#[utoipa::path(get, path = "/chaos", tag = "chaos", responses((status = 200, body = ChaosStatus)))]
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.chaos.status())
}

/// True when `given` equals `expected`, in time that does not depend on how much of it matches.
pub fn tokens_match(expected: &[u8], given: &[u8]) -> bool {
    let mut same = subtle::Choice::from(1u8);
    for (i, byte) in expected.iter().enumerate() {
        // The attacker's own input decides `given.len()`; only `expected` is secret.
        same &= byte.ct_eq(given.get(i).unwrap_or(&0));
    }
    let lengths = (expected.len() as u64).ct_eq(&(given.len() as u64));
    bool::from(same & lengths)
}

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(token) = &state.admin_token else {
        // Unset token: the admin surface does not exist.
        return Err(ApiError::NotFound(format!("no route POST {}", req.path())));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if tokens_match(token.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn param<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    key: &str,
    default: T,
    form: &str,
) -> Result<T, ApiError> {
    match query.get(key) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::invalid(key, format!("expected {form}, got `{text}`"))),
    }
}

/// Injects or clears a fault now. Needs `Authorization: Bearer $ADMIN_TOKEN`; 404 for every
/// action when `ADMIN_TOKEN` is unset. Parameters go in the query string:
/// `crash?mode=exit|panic|abort|sigkill|oom|hang&exit_code=1`, `latency?delay=50ms..200ms`,
/// `errors?rate=0.1`, `leak?mib_per_second=10&max_mib=200`, `burn?cores=1`.
#[utoipa::path(post, path = "/chaos/actions/{action}", tag = "chaos",
    params(("action" = String, Path, description = "crash, hang, unready, ready, unhealthy, healthy, latency, errors, leak, burn, stop-burn, clear")),
    security(("bearer" = [])),
    responses((status = 202, body = ActionResult), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "bad parameter")))]
pub async fn action(
    req: HttpRequest,
    action: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let chaos = &state.chaos;
    let name = action.into_inner();
    let detail = match name.as_str() {
        "crash" => {
            let mode: CrashMode = param(
                &query,
                "mode",
                CrashMode::Exit,
                "exit, panic, abort, sigkill, oom or hang",
            )?;
            let exit_code: u8 = param(&query, "exit_code", 1, "a number from 0 to 255")?;
            let fault = Action::Crash { mode, exit_code };
            let detail = fault.describe();
            let engine = state.chaos.clone();
            // Let the response reach the client before the process goes.
            actix_web::rt::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                engine.switch(ADMIN, None, &fault, true);
            });
            detail
        }
        "hang" => switch(&state, Action::Hang, true),
        "unready" => switch(&state, Action::Unready, true),
        "ready" => switch(&state, Action::Unready, false),
        "unhealthy" => switch(&state, Action::Unhealthy, true),
        "healthy" => switch(&state, Action::Unhealthy, false),
        "latency" => {
            let delay: DurationRange = param(
                &query,
                "delay",
                DurationRange::fixed(Duration::from_millis(100)),
                "a duration or range such as 50ms..200ms",
            )?;
            switch(
                &state,
                Action::Latency(Latency::Uniform {
                    low: delay.low,
                    high: delay.high,
                }),
                true,
            )
        }
        "errors" => {
            let rate: f64 = param(&query, "rate", 0.5, "a number from 0 to 1")?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(ApiError::invalid(
                    "rate",
                    format!("expected a number from 0 to 1, got {rate}"),
                ));
            }
            switch(
                &state,
                Action::Errors {
                    rate,
                    statuses: vec![500, 503],
                },
                true,
            )
        }
        "leak" => {
            let mib_per_second: f64 =
                param(&query, "mib_per_second", 10.0, "a number of MiB per second")?;
            let max_mib: Option<f64> = query
                .get("max_mib")
                .map(|m| {
                    m.parse().map_err(|_| {
                        ApiError::invalid("max_mib", format!("expected a number, got `{m}`"))
                    })
                })
                .transpose()?;
            if !(mib_per_second.is_finite() && mib_per_second > 0.0 && mib_per_second <= 4096.0) {
                return Err(ApiError::invalid(
                    "mib_per_second",
                    "expected a number above 0 and at most 4096",
                ));
            }
            switch(
                &state,
                Action::Leak {
                    mib_per_second,
                    max_mib,
                },
                true,
            )
        }
        "burn" => {
            let cores: f64 = param(&query, "cores", 1.0, "a number of cores")?;
            if !(cores.is_finite() && cores > 0.0 && cores <= 256.0) {
                return Err(ApiError::invalid(
                    "cores",
                    "expected a number above 0 and at most 256",
                ));
            }
            switch(&state, Action::Burn { cores }, true)
        }
        "stop-burn" => switch(&state, Action::Burn { cores: 0.0 }, false),
        "clear" => {
            for fault in [
                Action::Unready,
                Action::Unhealthy,
                Action::Latency(Latency::Uniform {
                    low: Duration::ZERO,
                    high: Duration::ZERO,
                }),
                Action::Errors {
                    rate: 0.0,
                    statuses: vec![500],
                },
                Action::Burn { cores: 0.0 },
                Action::Leak {
                    mib_per_second: 0.0,
                    max_mib: None,
                },
            ] {
                chaos.switch(ADMIN, None, &fault, false);
            }
            "admin faults cleared".to_string()
        }
        other => {
            return Err(ApiError::NotFound(format!(
                "unknown action `{other}`; actions are {ACTIONS}"
            )));
        }
    };
    Ok(HttpResponse::Accepted().json(ActionResult {
        action: name,
        detail,
    }))
}

fn switch(state: &AppState, fault: Action, on: bool) -> String {
    state.chaos.switch(ADMIN, None, &fault, on);
    if on {
        fault.describe()
    } else {
        format!("{} cleared", fault.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::tokens_match;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(tokens_match(b"secret", b"secret"));
        assert!(!tokens_match(b"secret", b"secreT"));
        assert!(!tokens_match(b"secret", b"secret2"));
        assert!(!tokens_match(b"secret", b"secre"));
        assert!(!tokens_match(b"secret", b""));
        assert!(!tokens_match(b"secret\0", b"secret"));
    }

    /// Comparing against a token that shares a long prefix with the secret takes as long as
    /// against one that shares nothing. A byte-wise `==` fails this: it stops at the first
    /// difference, so the prefix case is thousands of times slower with a 4 KiB token.
    #[test]
    fn comparison_time_does_not_depend_on_how_much_matches() {
        use std::hint::black_box;
        use std::time::Instant;
        let secret = vec![b'a'; 4096];
        let mut almost = secret.clone();
        *almost.last_mut().unwrap() = b'b';
        let mut nothing = secret.clone();
        nothing[0] = b'b';
        let time = |given: &[u8]| {
            // The fastest of several rounds: the least disturbed by other work on the machine.
            (0..7)
                .map(|_| {
                    let started = Instant::now();
                    for _ in 0..200 {
                        black_box(tokens_match(black_box(&secret), black_box(given)));
                    }
                    started.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let (late, early) = (time(&almost), time(&nothing));
        let ratio = late / early;
        assert!(
            (0.5..2.0).contains(&ratio),
            "prefix match {late:.6}s vs none {early:.6}s"
        );
    }
}
