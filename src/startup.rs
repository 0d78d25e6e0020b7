//! Building and running the server: the lifecycle of SPEC.md.
//!
//! start -> (bind delay: port closed) -> port open -> (load delay) -> model loaded and warmed up:
//! startup and readiness pass -> serving, faults on schedule -> SIGTERM: readiness fails at once,
//! (shutdown delay), listener closes, in-flight requests finish, exit 0.

use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::ResponseError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, web};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::chaos::engine::ChaosEngine;
use crate::chaos::plan::{Plan, seed_from_hostname};
use crate::config::ServeArgs;
use crate::error::ApiError;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::model::runtime;
use crate::model::{LoadOptions, ModelSource, ServedModel};
use crate::routes::{self, AppState, Limits};

/// Exit code for invalid configuration.
pub const EXIT_CONFIG: u8 = 2;

/// A configuration problem found before serving: one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Everything checked and prepared before the port opens.
pub struct Prepared {
    args: ServeArgs,
    plan: Plan,
    environment: Arc<ort::environment::Environment>,
    source: ModelSource,
}

/// The seed: `CHAOS_SEED`, else a hash of the host name.
pub fn resolve_seed(explicit: Option<u64>) -> u64 {
    explicit.unwrap_or_else(|| {
        let hostname = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .unwrap_or_default();
        seed_from_hostname(hostname.trim())
    })
}

/// Validates the configuration, loads the ONNX Runtime library and reads the model file.
pub fn prepare(mut args: ServeArgs) -> Result<Prepared, ConfigError> {
    args.load_admin_token().map_err(ConfigError)?;
    let profile = args.chaos.resolve().map_err(ConfigError)?;
    let plan = Plan::new(
        &profile,
        resolve_seed(args.chaos.seed),
        args.chaos.time_scale,
    );
    let library = runtime::discover(args.ort_dylib_path.as_deref()).map_err(ConfigError)?;
    let environment = runtime::init_environment(&library.path).map_err(ConfigError)?;
    tracing::info!(path = %library.path.display(), found = library.how, "ONNX Runtime loaded");
    let source = match &args.model_path {
        Some(path) => ModelSource::from_file(path).map_err(ConfigError)?,
        None => ModelSource::builtin(),
    };
    Ok(Prepared {
        args,
        plan,
        environment: Arc::new(environment),
        source,
    })
}

/// Runs the server until SIGTERM/SIGINT (or a chaos crash). Returns the exit code.
pub async fn run(prepared: Prepared, started: Instant) -> anyhow::Result<u8> {
    let Prepared {
        args,
        plan,
        environment,
        source,
    } = prepared;
    let metrics = Metrics::new();
    let health = Arc::new(Health::new(metrics.clone()));
    health.set_live_while_loading(plan.live_while_loading);
    let (chaos, mut crash_orders) = ChaosEngine::new(
        plan.clone(),
        started,
        Arc::clone(&health),
        metrics.clone(),
        args.termination_log.clone(),
    );
    tracing::info!(config = %args.redacted_summary(), seed = plan.seed, "starting");
    chaos.start();

    if !plan.bind_delay.is_zero() {
        tracing::warn!(
            delay_ms = plan.bind_delay.as_millis() as u64,
            "chaos: port stays closed (bind delay)"
        );
        tokio::time::sleep_until(started + plan.bind_delay).await;
    }
    let listener = TcpListener::bind(args.bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.bind))?;
    let address = listener.local_addr()?;
    let model = Arc::new(OnceLock::new());
    let state = AppState {
        health: Arc::clone(&health),
        metrics: metrics.clone(),
        model: Arc::clone(&model),
        model_name: args.model_name.clone(),
        model_origin: source.origin.clone(),
        chaos: Arc::clone(&chaos),
        limits: Limits {
            max_body_bytes: args.max_body_bytes as usize,
            max_batch_rows: args.max_batch_rows as usize,
            max_tensor_elements: args.max_tensor_elements as usize,
            max_json_depth: args.max_json_depth as usize,
            max_header_bytes: args.max_header_bytes as usize,
        },
        admin_token: args.admin_token.clone(),
    };
    let server = build_server(&args, state, listener)?;
    let handle = server.handle();
    let mut server = tokio::spawn(server);
    health.set_listening();
    tracing::info!(address = %address, port = address.port(), "listening");

    spawn_model_load(
        &args,
        &plan,
        environment,
        source,
        model,
        Arc::clone(&health),
        Arc::clone(&chaos),
        metrics,
    );

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = sigterm.recv() => {
                if plan.ignore_sigterm {
                    chaos.record("shutdown", "ignore-sigterm", "start", "SIGTERM ignored; only SIGKILL ends the process".into());
                    health.set_draining();
                    continue;
                }
                if health.hung() {
                    // A deadlocked server cannot drain: like one, wait for SIGKILL (exit 137).
                    chaos.record("shutdown", "hang", "sigterm", "SIGTERM while hung: nothing can drain; waiting for SIGKILL".into());
                    continue;
                }
                tracing::info!(signal = "SIGTERM", "shutting down");
                break;
            }
            _ = sigint.recv() => {
                tracing::info!(signal = "SIGINT", "shutting down");
                break;
            }
            Some(order) = crash_orders.recv() => {
                panic!("{}", order.reason);
            }
            result = &mut server => {
                result??;
                return Ok(0);
            }
        }
    }
    health.set_draining();
    if !args.shutdown_delay.is_zero() {
        tracing::info!(
            delay_ms = args.shutdown_delay.as_millis() as u64,
            "readiness failing; serving until endpoints update"
        );
        tokio::time::sleep(args.shutdown_delay).await;
    }
    let stopping = handle.stop(true);
    // Workers blocked by a hang fault never finish: give up after the drain window.
    if tokio::time::timeout(args.drain_timeout + Duration::from_secs(1), stopping)
        .await
        .is_err()
    {
        tracing::warn!("drain window over with requests still running; exiting");
    } else {
        tracing::info!("drained; exiting");
    }
    Ok(0)
}

/// The route pattern of a request (`/v2/models/{name}/infer`), the label of its metrics.
///
/// Finding the pattern walks the whole route table again, so it is remembered per path, per
/// worker thread; unknown paths (scanners, typos) are bounded by emptying the cache when full.
fn route_label(req: &actix_web::dev::ServiceRequest) -> std::rc::Rc<str> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    const MAX_PATHS: usize = 1024;
    thread_local! {
        static LABELS: RefCell<HashMap<String, Rc<str>>> = RefCell::new(HashMap::new());
    }
    LABELS.with(|labels| {
        let mut labels = labels.borrow_mut();
        if let Some(label) = labels.get(req.path()) {
            return Rc::clone(label);
        }
        let label: Rc<str> = req
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into())
            .into();
        if labels.len() >= MAX_PATHS {
            labels.clear();
        }
        labels.insert(req.path().to_string(), Rc::clone(&label));
        label
    })
}

fn build_server(
    args: &ServeArgs,
    state: AppState,
    listener: TcpListener,
) -> anyhow::Result<actix_web::dev::Server> {
    let data = web::Data::new(state);
    let drain_secs = args.drain_timeout.as_secs_f64().ceil() as u64;
    let server = HttpServer::new(move || {
        let metrics = data.metrics.clone();
        let health = Arc::clone(&data.health);
        let max_header_bytes = data.limits.max_header_bytes;
        App::new()
            .app_data(data.clone())
            .wrap_fn(move |req, srv| {
                let started = std::time::Instant::now();
                let route = route_label(&req);
                let method = req.method().to_string();
                let response = srv.call(req);
                let metrics = metrics.clone();
                async move {
                    let response = response.await?;
                    let status = response.status().as_u16();
                    let elapsed = started.elapsed();
                    metrics
                        .http_requests
                        .with_label_values(&[&*route, method.as_str(), &status.to_string()])
                        .inc();
                    metrics.http_duration.with_label_values(&[&route]).observe(elapsed.as_secs_f64());
                    match response.response().error() {
                        // Every refused request (limits, bad input, saturation) is one log line.
                        Some(error) => tracing::info!(%method, %route, status, %error, "request refused"),
                        None => tracing::debug!(%method, %route, status, elapsed_us = elapsed.as_micros() as u64, "request"),
                    }
                    Ok(response)
                }
            })
            .wrap_fn(move |req, srv| guard(&health, max_header_bytes, req, srv))
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .workers(args.http_workers())
    .max_connections(args.max_connections as usize)
    .client_request_timeout(args.client_request_timeout)
    .shutdown_timeout(drain_secs)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

type BoxedResponse<B> = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

/// The outermost layer. While a hang fault holds, every request blocks its worker thread for
/// good, as a deadlock would: the port stays open and connections are accepted, but nothing
/// answers, probes included, so kubelet probes time out instead of failing fast. Otherwise it
/// refuses oversized headers before any route sees them.
fn guard<S, B>(
    health: &Health,
    max_header_bytes: usize,
    req: ServiceRequest,
    srv: &S,
) -> BoxedResponse<EitherBody<B>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    if health.hung() {
        loop {
            std::thread::park();
        }
    }
    let size: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if size > max_header_bytes {
        tracing::info!(
            path = req.path(),
            size,
            limit = max_header_bytes,
            status = 431,
            "request refused"
        );
        let response = ApiError::HeadersTooLarge {
            size,
            limit: max_header_bytes,
        }
        .error_response();
        let refused = req.into_response(response).map_into_right_body();
        return Box::pin(async move { Ok(refused) });
    }
    let call = srv.call(req);
    Box::pin(async move { call.await.map(ServiceResponse::map_into_left_body) })
}

#[allow(clippy::too_many_arguments)]
fn spawn_model_load(
    args: &ServeArgs,
    plan: &Plan,
    environment: Arc<ort::environment::Environment>,
    source: ModelSource,
    model: Arc<OnceLock<ServedModel>>,
    health: Arc<Health>,
    chaos: Arc<ChaosEngine>,
    metrics: Metrics,
) {
    let options = LoadOptions {
        name: args.model_name.clone(),
        workers: args.inference_workers(),
        queue: args.inference_queue as usize,
        inline_sessions: args.http_workers(),
        inline_max_rows: args.inference_inline_rows as usize,
    };
    let load_delay = plan.load_delay;
    tokio::spawn(async move {
        if !load_delay.is_zero() {
            tracing::warn!(
                delay_ms = load_delay.as_millis() as u64,
                "chaos: model load delayed (port open, not ready)"
            );
            tokio::time::sleep(load_delay).await;
        }
        let load_metrics = metrics.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            ServedModel::load(&environment, &source, &options, &load_metrics)
        })
        .await;
        match loaded {
            Ok(Ok(served)) => {
                let load_ms = served.load_time.as_millis() as u64;
                metrics.model_load_duration_ms.set(load_ms as i64);
                tracing::info!(
                    model = %served.name,
                    version = %served.version,
                    workers = served.pool.workers(),
                    schema = served.schema.is_some(),
                    load_ms,
                    "model loaded"
                );
                let _ = model.set(served);
                health.set_loaded();
                chaos.mark_ready();
            }
            Ok(Err(message)) => {
                eprintln!("chaos-inference: {message}");
                tracing::error!(error = %message, "model load failed");
                std::process::exit(i32::from(EXIT_CONFIG));
            }
            Err(panic) => {
                tracing::error!(error = %panic, "model load panicked");
                std::process::exit(1);
            }
        }
    });
}
