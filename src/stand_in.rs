//! The stand-in: this server replaying another application's timeline file
//! (`CHAOS_PROFILE=recorded.toml`), so that its image can take the place of that application in
//! the application's own manifests. It listens on the application's ports (unless `BIND` or
//! `GRPC_BIND` say otherwise), answers the application's probe paths and gRPC health services by
//! the checks the timeline gives them, after their recorded latency, exits the recorded time
//! after SIGTERM (readiness failing at once, or not, as recorded), and holds the recorded working
//! set in memory. Start-up, faults and the overload queue are the profile's, as for any profile.
//! Exec probes run a command in the container, which the stand-in cannot answer for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::chaos::duration::{DurationRange, scale};
use crate::chaos::endpoints::Endpoint;
use crate::chaos::overload::Work;
use crate::chaos::plan::mix;
use crate::chaos::profile::Profile;
use crate::health::Check;
use crate::http::AppState;

/// What the stand-in replays of an application.
#[derive(Debug, Clone, PartialEq)]
pub struct StandIn {
    /// The application, as its timeline describes it.
    pub description: String,
    pub http_port: u16,
    pub grpc_port: Option<u16>,
    /// Each HTTP path, the check it follows (`None`: always passes), and its latency.
    pub paths: Vec<(String, Option<Check>, Option<DurationRange>)>,
    /// Each gRPC health service and the check it follows.
    pub grpc: Vec<(String, Option<Check>)>,
    /// After SIGTERM, how long until it exits (drawn from the timeline's range).
    pub exit_after: Option<Duration>,
    /// Whether readiness fails the moment SIGTERM comes.
    pub unready_on_sigterm: bool,
    /// The memory it holds once started (drawn), bytes.
    pub working_set: Option<u64>,
    /// Exec probe commands the timeline declares, which the stand-in cannot answer for.
    pub exec: Vec<String>,
}

impl StandIn {
    /// The stand-in of a profile that declares another application (`[endpoints]`), with its
    /// ranges drawn from `seed`; `None` for a profile of this server's own.
    pub fn of(profile: &Profile, seed: u64, time_scale: f64) -> Option<StandIn> {
        let endpoints = profile.endpoints.as_ref()?;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, 0x57A1D));
        let mut paths = Vec::new();
        let mut grpc = Vec::new();
        let mut exec = Vec::new();
        for (list, check) in [
            (&endpoints.liveness, Some(Check::Liveness)),
            (&endpoints.readiness, Some(Check::Readiness)),
            (&endpoints.startup, Some(Check::Startup)),
            (&endpoints.always, None),
        ] {
            for endpoint in list {
                match endpoint {
                    Endpoint::Path(path) => paths.push((
                        path.clone(),
                        check,
                        endpoints.latency.get(endpoint).map(|r| DurationRange {
                            low: scale(r.low, time_scale),
                            high: scale(r.high, time_scale),
                        }),
                    )),
                    Endpoint::Grpc(service) => grpc.push((service.clone(), check)),
                    Endpoint::Exec(command) => exec.push(command.clone()),
                }
            }
        }
        let working_set = profile
            .resources
            .as_ref()
            .and_then(|r| r.working_set)
            .map(|r| rng.random_range(r.low..=r.high));
        Some(StandIn {
            description: profile.description.clone(),
            http_port: endpoints.http_port,
            grpc_port: endpoints.grpc_port,
            paths,
            grpc,
            exit_after: profile
                .shutdown
                .exit_after
                .map(|r| scale(r.sample(&mut rng), time_scale)),
            unready_on_sigterm: profile.shutdown.unready_on_sigterm.unwrap_or(true),
            working_set,
            exec,
        })
    }

    /// The listen addresses: the application's ports, unless `BIND` or `GRPC_BIND` were given
    /// (`given`).
    pub fn addresses(
        &self,
        bind: SocketAddr,
        grpc: Option<SocketAddr>,
        given: (bool, bool),
    ) -> (SocketAddr, Option<SocketAddr>) {
        let http = if given.0 {
            bind
        } else {
            SocketAddr::new(bind.ip(), self.http_port)
        };
        let grpc = if given.1 {
            grpc
        } else {
            self.grpc_port
                .map(|p| SocketAddr::new(grpc.map_or(bind.ip(), |g| g.ip()), p))
        };
        (http, grpc)
    }

    /// The check a gRPC health service follows here: `Some(None)` for one that always serves,
    /// `None` for one the application does not have.
    pub fn grpc_service(&self, service: &str) -> Option<Option<Check>> {
        self.grpc
            .iter()
            .find(|(name, _)| name == service)
            .map(|(_, check)| *check)
    }
}

/// Registers the application's paths, before the server's own routes so that they win (a
/// timeline whose readiness is `/` answers `/` by it, not with the status page).
pub fn configure(cfg: &mut web::ServiceConfig, stand_in: &Arc<StandIn>) {
    for (path, check, latency) in &stand_in.paths {
        let (check, latency) = (*check, *latency);
        cfg.service(
            web::resource(path.as_str()).route(
                web::route()
                    .guard(
                        actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()),
                    )
                    .to(move |state: web::Data<AppState>| answer(state, check, latency)),
            ),
        );
    }
}

/// One probe of an application path: through the overload queue as a probe, after its
/// latency, with its check's status.
async fn answer(
    state: web::Data<AppState>,
    check: Option<Check>,
    latency: Option<DurationRange>,
) -> HttpResponse {
    if let Err(shed) = state.chaos.admit(Work::Probe).await {
        return actix_web::ResponseError::error_response(&crate::error::ApiError::from(shed));
    }
    if let Some(latency) = latency {
        let wait = state.chaos.draw(&latency);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    let Some(check) = check else {
        return HttpResponse::Ok().json(serde_json::json!({"status": "ok"}));
    };
    let switches = state.health.switches();
    let status = check.status(&switches);
    let body = serde_json::json!({
        "status": if status == 200 { "ok".to_string() } else { format!("{check:?} fails").to_lowercase() },
        "phase": state.health.phase(),
    });
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::SERVICE_UNAVAILABLE),
    )
    .json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMELINE: &str = r#"
description = "a service"
[shutdown]
exit-after = "2s..4s"
unready-on-sigterm = false
[endpoints]
http-port = 9090
grpc-port = 9091
liveness = ["/live", "grpc:"]
readiness = ["/ready", "exec:cat /tmp/ready"]
always = ["/"]
[endpoints.latency]
"/ready" = "10ms..20ms"
[resources]
working-set = "100Mi..200Mi"
"#;

    #[test]
    fn a_timeline_gives_the_ports_paths_services_and_shutdown_to_replay() {
        let profile = Profile::parse("t", TIMELINE).unwrap();
        let s = StandIn::of(&profile, 7, 1.0).unwrap();
        assert_eq!((s.http_port, s.grpc_port), (9090, Some(9091)));
        assert!(s.paths.contains(&(
            "/ready".into(),
            Some(Check::Readiness),
            Some("10ms..20ms".parse().unwrap())
        )));
        assert!(s.paths.contains(&("/".into(), None, None)));
        assert_eq!(s.grpc_service(""), Some(Some(Check::Liveness)));
        assert_eq!(s.grpc_service("other"), None);
        assert_eq!(s.exec, ["cat /tmp/ready"]);
        let exit = s.exit_after.unwrap();
        assert!(exit >= Duration::from_secs(2) && exit <= Duration::from_secs(4));
        assert!(!s.unready_on_sigterm);
        let ws = s.working_set.unwrap();
        assert!((100 << 20..=200 << 20).contains(&ws));
        // The same seed draws the same; a time scale scales what it draws.
        assert_eq!(StandIn::of(&profile, 7, 1.0), Some(s.clone()));
        let fast = StandIn::of(&profile, 7, 0.1).unwrap();
        assert_eq!(fast.exit_after.unwrap(), scale(exit, 0.1));
        // The application's ports, unless the environment gives others.
        let bind: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        let grpc: SocketAddr = "0.0.0.0:8001".parse().unwrap();
        assert_eq!(
            s.addresses(bind, Some(grpc), (false, false)),
            (
                "0.0.0.0:9090".parse().unwrap(),
                Some("0.0.0.0:9091".parse().unwrap())
            )
        );
        assert_eq!(s.addresses(bind, None, (true, true)), (bind, None));
        assert!(StandIn::of(&Profile::load("v2").unwrap(), 1, 1.0).is_none());
    }
}
