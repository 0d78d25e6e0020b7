//! `GET /chaos` (what the chaos engine did and will do) and the admin routes that switch faults
//! at run time. The fault names and parameters come from `chaos::fault`, and every value
//! passes the same check as in a profile.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::chaos::engine::{ChaosEngine, Event, Upcoming};
use crate::chaos::fault::{Effect, FaultKind, Invalid, Keys, Like, Missing, Source, Value};
use crate::error::{ApiError, ErrorBody};
use crate::health::Phase;
use crate::http::AppState;

/// Stops that keep the names the first releases used.
const ALIASES: [(&str, FaultKind); 2] = [
    ("ready", FaultKind::Unready),
    ("healthy", FaultKind::Unhealthy),
];

/// Every admin action: each fault's name starts it, `stop-<name>` stops it (`ready` and
/// `healthy` are the stops of `unready` and `unhealthy`), `clear` stops every admin fault.
pub fn actions() -> Vec<String> {
    let mut actions: Vec<String> = FaultKind::ALL
        .iter()
        .map(|k| k.name().to_string())
        .collect();
    actions.extend(
        FaultKind::ALL
            .iter()
            .filter(|k| k.can_stop())
            .map(|k| format!("stop-{k}")),
    );
    actions.extend(ALIASES.iter().map(|(alias, _)| alias.to_string()));
    actions.push("clear".into());
    actions
}

/// The query parameters an admin action of this fault type takes: the profile keys of its
/// effect, in snake case.
pub fn parameters(kind: FaultKind) -> Vec<String> {
    kind.keys()
        .iter()
        .filter(|k| **k != "distribution")
        .map(|k| k.replace('-', "_"))
        .collect()
}

/// One thing that happened.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PastEvent {
    /// Milliseconds since process start.
    pub at_ms: u64,
    /// `fault[i]`, `admin` or `shutdown`.
    pub source: String,
    pub fault: String,
    /// start, end, skipped, sigterm.
    pub action: String,
    pub detail: String,
}

impl From<Event> for PastEvent {
    fn from(e: Event) -> Self {
        PastEvent {
            at_ms: ms(e.at),
            source: e.source.to_string(),
            fault: e.fault.to_string(),
            action: e.action.as_str().to_string(),
            detail: e.detail,
        }
    }
}

/// One thing that will happen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NextEvent {
    pub source: String,
    pub fault: String,
    /// start or end.
    pub action: String,
    pub detail: String,
    /// Countdown in milliseconds; absent while it waits for the process to become ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_ms: Option<u64>,
    /// For events anchored on readiness that is not reached yet: milliseconds after ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_ready_ms: Option<u64>,
}

/// What `GET /chaos` returns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChaosStatus {
    pub profile: String,
    pub description: String,
    pub seed: u64,
    /// The seed in decimal, exact for every JSON reader: JavaScript reads `seed` as a double,
    /// which changes seeds above 2^53 (a number `plan --seed` would give another timeline for).
    pub seed_str: String,
    pub time_scale: f64,
    pub phase: Phase,
    pub uptime_ms: u64,
    /// Milliseconds from start to the first time the process became ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_at_ms: Option<u64>,
    pub bind_delay_ms: u64,
    pub load_delay_ms: u64,
    pub ignore_sigterm: bool,
    pub past: Vec<PastEvent>,
    pub next: Vec<NextEvent>,
    /// The queue of the active overload fault; absent when none is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overload: Option<OverloadQueue>,
}

/// An overload fault's queue at one moment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OverloadQueue {
    pub description: String,
    pub workers: u32,
    /// Workers holding a request now.
    pub busy: u32,
    /// Requests waiting for a worker now.
    pub waiting: usize,
    /// Milliseconds the last queued probe waited for its worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_probe_wait_ms: Option<f64>,
}

impl OverloadQueue {
    /// The engine's active overload queue, if any.
    pub fn of(engine: &ChaosEngine) -> Option<Self> {
        engine.overload_state().map(|q| OverloadQueue {
            description: q.description,
            workers: q.workers,
            busy: q.busy,
            waiting: q.waiting,
            last_probe_wait_ms: q.last_probe_wait.map(|d| d.as_secs_f64() * 1000.0),
        })
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl ChaosStatus {
    /// The engine's state now, as JSON shows it.
    pub fn of(engine: &ChaosEngine) -> Self {
        let plan = engine.plan();
        let snapshot = engine.snapshot();
        let next = |u: Upcoming| {
            let effect = &plan.schedules[u.schedule].effect;
            NextEvent {
                source: Source::Schedule(u.schedule).to_string(),
                fault: effect.kind().to_string(),
                action: u.action.as_str().to_string(),
                detail: effect.describe(),
                in_ms: u.in_.map(ms),
                after_ready_ms: u.after_ready.map(ms),
            }
        };
        ChaosStatus {
            profile: plan.profile.clone(),
            description: plan.description.clone(),
            seed: plan.seed,
            seed_str: plan.seed.to_string(),
            time_scale: plan.time_scale,
            phase: snapshot.phase,
            uptime_ms: ms(snapshot.uptime),
            ready_at_ms: snapshot.ready_at.map(ms),
            bind_delay_ms: ms(plan.bind_delay),
            load_delay_ms: ms(plan.load_delay),
            ignore_sigterm: plan.ignore_sigterm,
            past: snapshot.past.into_iter().map(PastEvent::from).collect(),
            next: snapshot.next.into_iter().map(next).collect(),
            overload: OverloadQueue::of(engine),
        }
    }
}

/// The answer to an admin action.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionResult {
    pub action: String,
    pub detail: String,
}

/// Profile, seed, phase, past events and the next ones with countdowns.
#[utoipa::path(get, path = "/chaos", tag = "chaos", responses((status = 200, body = ChaosStatus)))]
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ChaosStatus::of(&state.chaos))
}

/// True when `given` equals `expected`, comparing every byte of `expected` whatever matches,
/// so the time taken does not depend on how much of the token is right.
fn tokens_match(expected: &[u8], given: &[u8]) -> bool {
    compare_every_byte(expected, given, |a, b| a.ct_eq(&b))
}

/// The comparison, with the byte comparison passed in so a test can count the calls.
fn compare_every_byte(
    expected: &[u8],
    given: &[u8],
    mut eq: impl FnMut(u8, u8) -> subtle::Choice,
) -> bool {
    let mut same = subtle::Choice::from(1u8);
    for (i, byte) in expected.iter().enumerate() {
        // The attacker's own input decides `given.len()`; only `expected` is secret.
        same &= eq(*byte, given.get(i).copied().unwrap_or(0));
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

/// An admin query read as fault keys: `mib_per_second` is the profile key `mib-per-second`.
struct QueryKeys<'a>(&'a HashMap<String, String>);

impl QueryKeys<'_> {
    /// Refuses a parameter this action does not take.
    fn only(&self, allowed: &[String], action: &str) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(k)) {
            None => Ok(()),
            Some(unknown) => Err(ApiError::invalid(
                unknown.as_str(),
                format!(
                    "not a parameter of {action}; expected {}",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            )),
        }
    }
}

impl Keys for QueryKeys<'_> {
    fn get(&self, key: &'static str, like: Like) -> Result<Option<Value>, Invalid> {
        self.0
            .get(&key.replace('-', "_"))
            .map(|text| Value::from_text(key, like, text))
            .transpose()
    }
}

/// The effect an admin action starts, from its query, built and checked as a profile's is.
fn admin_effect(kind: FaultKind, query: &HashMap<String, String>) -> Result<Effect, ApiError> {
    let keys = QueryKeys(query);
    keys.only(&parameters(kind), kind.name())?;
    Effect::from_keys(kind, &keys, Missing::AdminDefault)
        .map_err(|Invalid { key, message }| ApiError::invalid(key.replace('-', "_"), message))
}

/// Switches a fault now. Needs `Authorization: Bearer $ADMIN_TOKEN`; 404 for every action when
/// `ADMIN_TOKEN` is unset. A fault's name starts it with the parameters in the query string
/// (`crash?mode=exit&exit_code=1`, `latency?delay=50ms..200ms` or `latency?median=50ms&p99=1s`,
/// `errors?rate=0.1&statuses=500,503`, `leak?mib_per_second=10&max_mib=200`, `burn?cores=1`,
/// `overload?workers=1&service_time=25ms&probes=queued&queue_limit=10`);
/// `stop-<fault>` stops it (`ready`, `healthy` too); `clear` stops every admin fault.
#[utoipa::path(post, path = "/chaos/actions/{action}", tag = "chaos",
    params(("action" = String, Path, description = "the action: a fault name, stop-<fault>, ready, healthy or clear"),
        ("mode" = Option<String>, Query, description = "crash: exit, panic, abort, sigkill, oom or hang"),
        ("exit_code" = Option<u8>, Query, description = "crash: exit code of mode exit"),
        ("delay" = Option<String>, Query, description = "latency: uniform delay, e.g. 50ms..200ms"),
        ("median" = Option<String>, Query, description = "latency, overload: log-normal median (of the delay, of the service time)"),
        ("p99" = Option<String>, Query, description = "latency, overload: log-normal 99th percentile"),
        ("rate" = Option<f64>, Query, description = "errors: fraction of predictions that fail"),
        ("statuses" = Option<String>, Query, description = "errors: 5xx statuses, comma-separated"),
        ("mib_per_second" = Option<f64>, Query, description = "leak: growth rate"),
        ("max_mib" = Option<f64>, Query, description = "leak: stop growing at this size"),
        ("cores" = Option<f64>, Query, description = "burn: cores to keep busy"),
        ("workers" = Option<u32>, Query, description = "overload: requests served at once (default 1)"),
        ("service_time" = Option<String>, Query, description = "overload: how long a prediction holds a worker, e.g. 25ms or 20ms..30ms (default 25ms)"),
        ("probes" = Option<String>, Query, description = "overload: queued (probes wait behind predictions, the default) or separate"),
        ("probe_time" = Option<String>, Query, description = "overload: how long a queued probe holds a worker (default 1ms)"),
        ("queue_limit" = Option<u32>, Query, description = "overload: requests waiting beyond this many are refused at once"),
        ("shed_status" = Option<u16>, Query, description = "overload: the status of a refused request (default 503)"),
        ("shed_probes" = Option<bool>, Query, description = "overload: whether probes can be refused too (default false)")),
    security(("bearer" = [])),
    responses((status = 202, body = ActionResult), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a parameter out of its domain; `field` names it")))]
pub async fn action(
    req: HttpRequest,
    action: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let chaos = &state.chaos;
    let name = action.into_inner();
    let query = query.into_inner();
    let stop = name
        .strip_prefix("stop-")
        .and_then(FaultKind::from_name)
        .filter(|k| k.can_stop())
        .or_else(|| ALIASES.iter().find(|(a, _)| *a == name).map(|(_, k)| *k));
    let detail = if let Some(kind) = FaultKind::from_name(&name) {
        let effect = admin_effect(kind, &query)?;
        let detail = effect.describe();
        if kind == FaultKind::Crash {
            // Let the response reach the client before the process goes.
            let engine = state.chaos.clone();
            actix_web::rt::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                engine.start_fault(Source::Admin, &effect);
            });
        } else {
            chaos.start_fault(Source::Admin, &effect);
        }
        detail
    } else if let Some(kind) = stop {
        QueryKeys(&query).only(&[], &name)?;
        chaos.stop_fault(Source::Admin, kind);
        format!("{kind} cleared")
    } else if name == "clear" {
        QueryKeys(&query).only(&[], &name)?;
        chaos.stop_all(Source::Admin);
        "admin faults cleared".to_string()
    } else {
        return Err(ApiError::NotFound(format!(
            "unknown action `{name}`; actions are {}",
            actions().join(", ")
        )));
    };
    Ok(HttpResponse::Accepted().json(ActionResult {
        action: name,
        detail,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(tokens_match(b"secret", b"secret"));
        assert!(!tokens_match(b"secret", b"secreT"));
        assert!(!tokens_match(b"secret", b"secret2"));
        assert!(!tokens_match(b"secret", b"secre"));
        assert!(!tokens_match(b"secret", b""));
        assert!(!tokens_match(b"secret\0", b"secret"));
    }

    /// The work does not depend on where the first difference is, nor on the given length:
    /// every byte of the secret is compared, with the constant-time primitive, every time. An
    /// early return at the first difference (what `==` does) fails this.
    #[test]
    fn every_byte_of_the_secret_is_compared_whatever_matches() {
        let secret = vec![b'a'; 64];
        let mut late = secret.clone();
        late[63] = b'b';
        let mut early = secret.clone();
        early[0] = b'b';
        for given in [
            &secret[..],
            &late,
            &early,
            b"",
            &secret[..10],
            &[b'a'; 100][..],
        ] {
            let mut calls = 0;
            compare_every_byte(&secret, given, |a, b| {
                calls += 1;
                a.ct_eq(&b)
            });
            assert_eq!(calls, secret.len(), "given {} bytes", given.len());
        }
    }

    #[test]
    fn every_fault_has_a_start_action_and_the_stoppable_ones_a_stop() {
        let actions = actions();
        for kind in FaultKind::ALL {
            assert!(actions.contains(&kind.name().to_string()));
            assert_eq!(actions.contains(&format!("stop-{kind}")), kind.can_stop());
        }
        assert_eq!(parameters(FaultKind::Leak), ["mib_per_second", "max_mib"]);
        assert_eq!(parameters(FaultKind::Latency), ["delay", "median", "p99"]);
    }

    /// The admin route checks with the profile's limits: `max_mib` included.
    #[test]
    fn admin_values_pass_the_fault_check() {
        let query = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let invalid = |kind, pairs: &[(&str, &str)]| match admin_effect(kind, &query(pairs)) {
            Err(ApiError::Invalid { field, message }) => (field, message),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            invalid(FaultKind::Leak, &[("max_mib", "-5")]),
            (
                "max_mib".into(),
                "expected a number above 0 and at most 1048576, got -5".into()
            )
        );
        assert_eq!(
            invalid(FaultKind::Burn, &[("cores", "1000")]).1,
            "expected a number above 0 and at most 256, got 1000"
        );
        assert_eq!(invalid(FaultKind::Hang, &[("cores", "1")]).0, "cores");
        assert!(admin_effect(FaultKind::Errors, &query(&[("statuses", "502")])).is_ok());
        assert_eq!(
            invalid(FaultKind::Errors, &[("statuses", "404")]).0,
            "statuses"
        );
    }
}
