//! Thin HTTP handlers, one file per concern, and the route table.

pub mod chaos;
pub mod events;
pub mod health;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod page;
pub mod predict;
pub mod v2;

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, guard, web};

use crate::chaos::overload::Work;
use crate::error::ApiError;
use crate::health::Check;

/// What a GET of a route answers, by the health state alone: what `simulate` reads to know what
/// a probe of that path sees (a GET with no body, as the kubelet sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// The check's status ([`Check::status`]).
    Check(Check),
    /// 503 while the model loads, then 200; 404 for another model name or version.
    ModelLoaded,
    /// 200 from the moment the port opens.
    Always,
    /// A POST route: a GET gets 405.
    PostOnly,
}

/// One route of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The pattern, with `{name}` for the model name and `{version}` for its version.
    pub path: &'static str,
    pub answers: Answers,
    /// What its handler waits as in an overload fault's queue (`ChaosEngine::admit`): a probe,
    /// a prediction, or nothing. `simulate` reads it to know which probes wait behind
    /// predictions; `tests/api/overload.rs` holds every handler to it.
    pub waits: Option<Work>,
}

/// The route table: [`ROUTES`] (what `simulate` reads) and [`configure`] (what the server
/// registers), both from one list.
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:path, $answers:expr, $waits:expr;)*) => {
        /// Every route, with what a GET of it answers and what it waits as in an overload queue.
        pub const ROUTES: &[Route] = &[$(Route { path: $path, answers: $answers, waits: $waits }),*];

        /// Registers every route. Each path serves one method (GET routes also HEAD, RFC
        /// 9110); any other method gets 405 with an `Allow` header.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.service(route_table!(@resource $method $path, $handler));)*
        }
    };
    (@resource GET $path:literal, $handler:path) => { get($path, $handler) };
    (@resource POST $path:literal, $handler:path) => { post($path, $handler) };
}

route_table! {
    GET "/livez" => health::livez, Answers::Check(Check::Liveness), Some(Work::Probe);
    GET "/healthz" => health::healthz, Answers::Check(Check::Liveness), Some(Work::Probe);
    GET "/readyz" => health::readyz, Answers::Check(Check::Readiness), Some(Work::Probe);
    GET "/startupz" => health::startupz, Answers::Check(Check::Startup), Some(Work::Probe);
    POST "/predict" => predict::predict, Answers::PostOnly, Some(Work::Prediction);
    GET "/model" => model::model, Answers::ModelLoaded, None;
    GET "/v2" => v2::server_metadata, Answers::Always, None;
    GET "/v2/health/live" => v2::live, Answers::Check(Check::Liveness), Some(Work::Probe);
    GET "/v2/health/ready" => v2::ready, Answers::Check(Check::Readiness), Some(Work::Probe);
    GET "/v2/models/{name}" => v2::model_metadata, Answers::ModelLoaded, None;
    GET "/v2/models/{name}/ready" => v2::model_ready, Answers::ModelLoaded, Some(Work::Probe);
    POST "/v2/models/{name}/infer" => v2::infer, Answers::PostOnly, Some(Work::Prediction);
    GET "/v2/models/{name}/versions/{version}" => v2::model_version_metadata, Answers::ModelLoaded, None;
    GET "/v2/models/{name}/versions/{version}/ready" => v2::model_version_ready, Answers::ModelLoaded, Some(Work::Probe);
    POST "/v2/models/{name}/versions/{version}/infer" => v2::version_infer, Answers::PostOnly, Some(Work::Prediction);
    GET "/metrics" => metrics::metrics, Answers::Always, None;
    GET "/" => page::index, Answers::Always, None;
    GET "/chaos" => chaos::status, Answers::Always, None;
    GET "/chaos/events" => events::events, Answers::Always, None;
    POST "/chaos/actions/{action}" => chaos::action, Answers::PostOnly, None;
    GET "/openapi.json" => openapi::openapi, Answers::ModelLoaded, None;
}

/// The model name and version a path names, where its pattern has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathModel<'a> {
    pub name: Option<&'a str>,
    pub version: Option<&'a str>,
}

impl Route {
    /// The model a request path names, when the path matches this route's pattern (segment by
    /// segment, as actix matches: no trailing slash, a `{...}` segment is any one non-empty
    /// segment).
    pub fn matches<'a>(&self, path: &'a str) -> Option<PathModel<'a>> {
        let mut found = PathModel::default();
        let mut pattern = self.path.split('/');
        let mut given = path.split('/');
        loop {
            match (pattern.next(), given.next()) {
                (None, None) => return Some(found),
                (Some(p), Some(g)) if p.starts_with('{') => {
                    if g.is_empty() {
                        return None;
                    }
                    match p {
                        "{name}" => found.name = Some(g),
                        "{version}" => found.version = Some(g),
                        _ => {}
                    }
                }
                (Some(p), Some(g)) if p == g => {}
                _ => return None,
            }
        }
    }
}

/// The route a request path reaches and the model it names; `None` is a 404.
pub fn route_of(path: &str) -> Option<(&'static Route, PathModel<'_>)> {
    ROUTES
        .iter()
        .find_map(|route| route.matches(path).map(|model| (route, model)))
}

/// A GET (and HEAD) route.
fn get<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler),
        )
        .default_service(web::to(|req: HttpRequest| {
            method_not_allowed(req, "GET, HEAD")
        }))
}

/// A POST route.
fn post<F, Args>(path: &str, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(web::route().method(Method::POST).to(handler))
        .default_service(web::to(|req: HttpRequest| method_not_allowed(req, "POST")))
}

async fn method_not_allowed(
    req: HttpRequest,
    allow: &'static str,
) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_string(),
        allow,
    })
}

/// Answers unknown routes in the standard error body.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_its_route_and_the_model_it_names() {
        let (route, model) = route_of("/v2/models/heart-disease/versions/1/ready").unwrap();
        assert_eq!(route.path, "/v2/models/{name}/versions/{version}/ready");
        assert_eq!(route.answers, Answers::ModelLoaded);
        assert_eq!(model.name, Some("heart-disease"));
        assert_eq!(model.version, Some("1"));
        let (route, model) = route_of("/livez").unwrap();
        assert_eq!(route.answers, Answers::Check(Check::Liveness));
        assert_eq!(model, PathModel::default());
        assert_eq!(
            route_of("/v2/models/m/infer").unwrap().0.answers,
            Answers::PostOnly
        );
        assert_eq!(
            route_of("/chaos/events").unwrap().0.answers,
            Answers::Always
        );
        for missing in [
            "/nope",
            "/livez/",
            "/v2/models//ready",
            "/v2/models/m/ready/x",
            "",
        ] {
            assert!(route_of(missing).is_none(), "{missing}");
        }
    }

    #[test]
    fn every_pattern_is_reached_by_a_path_of_its_own() {
        for route in ROUTES {
            let path = route
                .path
                .replace("{name}", "m")
                .replace("{version}", "1")
                .replace("{action}", "hang");
            assert_eq!(route_of(&path).map(|(r, _)| r.path), Some(route.path));
        }
    }
}
