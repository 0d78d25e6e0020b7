//! The HTTP protocol layer (actix-web): the app, its middleware and its routes. It only
//! translates: decode a request, call the model or the chaos engine, map the result to a status.

pub mod body;
pub mod middleware;
pub mod routes;

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::{App, HttpServer, web};

use crate::chaos::engine::ChaosEngine;
use crate::error::ApiError;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::model::ServedModel;
use crate::model::pool::PoolError;
use crate::stats::Stats;

/// Bounds on what one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch_rows: usize,
    pub max_tensor_elements: usize,
    pub max_json_depth: usize,
    pub max_header_bytes: usize,
}

/// Everything the handlers share; built once, cloned into each worker.
#[derive(Clone)]
pub struct AppState {
    pub health: Arc<Health>,
    pub metrics: Metrics,
    pub model: Arc<OnceLock<ServedModel>>,
    pub model_name: String,
    pub model_origin: String,
    pub chaos: Arc<ChaosEngine>,
    pub limits: Limits,
    pub admin_token: Option<String>,
    /// Recent inference traffic, for the status page.
    pub stats: Arc<Stats>,
    /// The OpenAPI document for the served model, built on first request after the load.
    pub openapi: Arc<OnceLock<String>>,
    /// What it replays of another application (`CHAOS_PROFILE` a timeline file).
    pub stand_in: Option<Arc<crate::stand_in::StandIn>>,
}

impl AppState {
    /// The model, or 503 while it loads.
    pub fn model(&self) -> Result<&ServedModel, ApiError> {
        self.model
            .get()
            .ok_or_else(|| ApiError::NotReady("model is loading".into()))
    }

    /// The model by its V2 name: 404 for another name, 503 while it loads.
    pub fn model_named(&self, name: &str) -> Result<&ServedModel, ApiError> {
        if name != self.model_name {
            return Err(ApiError::ModelNotFound(name.to_string()));
        }
        self.model()
    }

    /// Maps a pool failure to its HTTP error, counting refusals.
    pub fn pool_error(&self, e: PoolError) -> ApiError {
        match e {
            PoolError::Saturated { .. } => {
                self.metrics.queue_rejected.inc();
                ApiError::Overloaded(e.to_string())
            }
            PoolError::Stopped => ApiError::NotReady(e.to_string()),
            PoolError::Runtime(message) => ApiError::Inference(message),
        }
    }
}

/// Server settings that are not per-request limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    pub workers: usize,
    pub max_connections: usize,
    pub client_request_timeout: Duration,
    pub drain_timeout: Duration,
}

/// The HTTP server on `listener`, not started yet. Signals are the lifecycle's business, not
/// actix's.
pub fn server(
    state: AppState,
    options: ServerOptions,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    let drain_secs = options.drain_timeout.as_secs_f64().ceil() as u64;
    Ok(HttpServer::new(move || {
        let metrics = data.metrics.clone();
        let health = Arc::clone(&data.health);
        let max_header_bytes = data.limits.max_header_bytes;
        let stand_in = data.stand_in.clone();
        App::new()
            .app_data(data.clone())
            .wrap_fn(move |req, srv| middleware::measure(&metrics, req, srv))
            .wrap_fn(move |req, srv| middleware::guard(&health, max_header_bytes, req, srv))
            .configure(|cfg| {
                if let Some(stand_in) = &stand_in {
                    crate::stand_in::configure(cfg, stand_in);
                }
            })
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .workers(options.workers)
    .max_connections(options.max_connections)
    .client_request_timeout(options.client_request_timeout)
    .shutdown_timeout(drain_secs)
    .disable_signals()
    .listen(listener)?
    .run())
}
