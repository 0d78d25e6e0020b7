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

use crate::error::ApiError;

/// Registers every route. Each path serves one method (GET routes also HEAD, RFC 9110); any
/// other method gets 405 with an `Allow` header.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/livez", health::livez))
        .service(get("/healthz", health::healthz))
        .service(get("/readyz", health::readyz))
        .service(get("/startupz", health::startupz))
        .service(post("/predict", predict::predict))
        .service(get("/model", model::model))
        .service(get("/v2", v2::server_metadata))
        .service(get("/v2/health/live", v2::live))
        .service(get("/v2/health/ready", v2::ready))
        .service(get("/v2/models/{name}", v2::model_metadata))
        .service(get("/v2/models/{name}/ready", v2::model_ready))
        .service(post("/v2/models/{name}/infer", v2::infer))
        .service(get(
            "/v2/models/{name}/versions/{version}",
            v2::model_version_metadata,
        ))
        .service(get(
            "/v2/models/{name}/versions/{version}/ready",
            v2::model_version_ready,
        ))
        .service(post(
            "/v2/models/{name}/versions/{version}/infer",
            v2::version_infer,
        ))
        .service(get("/metrics", metrics::metrics))
        .service(get("/", page::index))
        .service(get("/chaos", chaos::status))
        .service(get("/chaos/events", events::events))
        .service(post("/chaos/actions/{action}", chaos::action))
        .service(get("/openapi.json", openapi::openapi));
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
