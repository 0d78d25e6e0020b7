//! Wiring: configuration -> profile -> plan -> engine -> effects, then the lifecycle of SPEC.md.
//!
//! start -> (bind delay: port closed) -> port open -> (load delay) -> model loaded and warmed up:
//! startup and readiness pass -> serving, faults on schedule -> SIGTERM: readiness fails at once,
//! (shutdown delay), listener closes, in-flight requests finish, exit 0.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::chaos::effects::ProcessEffects;
use crate::chaos::engine::{ChaosEngine, Sigterm};
use crate::chaos::plan::Plan;
use crate::chaos::seed;
use crate::config::ServeArgs;
use crate::grpc::{self, GrpcState};
use crate::health::Health;
use crate::http::{self, AppState, Limits, ServerOptions};
use crate::metrics::Metrics;
use crate::model::runtime;
use crate::model::{LoadOptions, ModelSource, ServedModel};
use crate::stand_in::StandIn;
use crate::stats::Stats;

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
    /// What it replays of another application, when the profile is a timeline file.
    stand_in: Option<Arc<StandIn>>,
    environment: Arc<ort::environment::Environment>,
    source: ModelSource,
}

/// Validates the configuration, plans the chaos, loads the ONNX Runtime library and reads the
/// model file.
pub fn prepare(mut args: ServeArgs) -> Result<Prepared, ConfigError> {
    args.load_admin_token().map_err(ConfigError)?;
    let profile = args.chaos.resolve().map_err(ConfigError)?;
    let plan = Plan::new(
        &profile,
        seed::resolve(args.chaos.seed),
        args.chaos.time_scale,
    );
    let stand_in = StandIn::of(&profile, plan.seed, plan.time_scale).map(Arc::new);
    if let Some(stand_in) = &stand_in {
        // The application's ports, unless BIND or GRPC_BIND were given.
        let given = |variable: &str, flag: &str| {
            std::env::var_os(variable).is_some()
                || std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        let (http, grpc) = stand_in.addresses(
            args.bind,
            args.grpc_bind.0,
            (given("BIND", "--bind"), given("GRPC_BIND", "--grpc-bind")),
        );
        args.bind = http;
        args.grpc_bind.0 = grpc;
        // It exits the recorded time after SIGTERM.
        if let Some(after) = plan.exit_after {
            args.shutdown_delay = after;
        }
    }
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
        stand_in,
        environment: Arc::new(environment),
        source,
    })
}

/// Runs the server until SIGTERM/SIGINT (or a chaos crash). Returns the exit code.
pub async fn run(prepared: Prepared, started: Instant) -> anyhow::Result<u8> {
    let Prepared {
        args,
        plan,
        stand_in,
        environment,
        source,
    } = prepared;
    // Taken over before anything can make the process ready: a SIGTERM that comes early (during
    // the bind delay, or from a test that saw readiness the moment it passed) is handled once
    // the loop below runs, never by the default action that ends the process with signal 15.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let metrics = Metrics::new();
    let health = Arc::new(Health::new(metrics.clone()));
    let (effects, mut crash_orders) =
        ProcessEffects::new(args.termination_log.clone(), metrics.leaked_bytes.clone());
    tracing::info!(config = %args.redacted_summary(), seed = plan.seed, "starting");
    let chaos = ChaosEngine::new(
        plan,
        started,
        Arc::clone(&health),
        metrics.clone(),
        Box::new(effects),
    );
    chaos.start();
    let stats = Arc::new(Stats::default());
    stats.spawn_sampler(metrics.clone(), started);

    chaos.bind_delay().await;
    let listener = TcpListener::bind(args.bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.bind))?;
    let address = listener.local_addr()?;
    let grpc_listener = match args.grpc_bind.0 {
        Some(bind) => Some(
            tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {bind} (GRPC_BIND): {e}"))?,
        ),
        None => None,
    };
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
        stats,
        openapi: Arc::new(OnceLock::new()),
        stand_in: stand_in.clone(),
    };
    let options = ServerOptions {
        workers: args.http_workers(),
        max_connections: args.max_connections as usize,
        client_request_timeout: args.client_request_timeout,
        drain_timeout: args.drain_timeout,
    };
    let grpc_state = GrpcState {
        health: Arc::clone(&health),
        metrics: metrics.clone(),
        model: Arc::clone(&model),
        model_name: args.model_name.clone(),
        chaos: Arc::clone(&chaos),
        max_tensor_elements: args.max_tensor_elements as usize,
        stand_in: stand_in.clone(),
    };
    if let Some(stand_in) = &stand_in {
        tracing::info!(
            application = %stand_in.description,
            paths = ?stand_in.paths.iter().map(|(p, c, _)| format!("{p} {c:?}")).collect::<Vec<_>>(),
            grpc = ?stand_in.grpc,
            working_set = stand_in.working_set,
            "standing in for another application"
        );
        if !stand_in.exec.is_empty() {
            tracing::warn!(
                commands = ?stand_in.exec,
                "the timeline's exec probes run commands of the application, which a stand-in cannot answer for"
            );
        }
        if let Some(bytes) = stand_in.working_set {
            hold_working_set(bytes);
        }
    }
    let server = http::server(state, options, listener)?;
    let handle = server.handle();
    let mut server = tokio::spawn(server);
    let (stop_grpc, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
    let grpc_on = grpc_listener.is_some();
    let mut grpc = match grpc_listener {
        Some(listener) => {
            let grpc_address = listener.local_addr()?;
            tracing::info!(address = %grpc_address, port = grpc_address.port(), "listening (gRPC)");
            let shutdown = async {
                let _ = grpc_stopped.await;
            };
            tokio::spawn(grpc::serve(
                grpc_state,
                listener,
                args.max_body_bytes as usize,
                shutdown,
            ))
        }
        None => tokio::spawn(std::future::pending()),
    };
    health.set_listening();
    tracing::info!(address = %address, port = address.port(), "listening");

    let load = LoadOptions {
        name: args.model_name.clone(),
        workers: args.inference_workers(),
        queue: args.inference_queue as usize,
        inline_sessions: args.http_workers(),
        inline: args.inference_inline,
        batch_max_rows: args.batch_max_rows.0,
        batch_cap: args.max_batch_rows as usize,
        batch_max_delay: args.batch_max_delay,
    };
    tokio::spawn(load_model(
        environment,
        source,
        load,
        model,
        Arc::clone(&chaos),
        metrics,
    ));

    loop {
        tokio::select! {
            _ = sigterm.recv() => match chaos.on_sigterm() {
                Sigterm::Drain => {
                    tracing::info!(signal = "SIGTERM", "shutting down");
                    break;
                }
                Sigterm::Ignored | Sigterm::Hung => continue,
            },
            _ = sigint.recv() => {
                tracing::info!(signal = "SIGINT", "shutting down");
                health.set_draining();
                break;
            }
            Some(order) = crash_orders.recv() => {
                panic!("{}", order.reason);
            }
            result = &mut server => {
                result??;
                return Ok(0);
            }
            result = &mut grpc => {
                result??;
                anyhow::bail!("the gRPC server stopped");
            }
        }
    }
    if !args.shutdown_delay.is_zero() {
        tracing::info!(
            delay_ms = args.shutdown_delay.as_millis() as u64,
            "readiness failing; serving until endpoints update"
        );
        tokio::time::sleep(args.shutdown_delay).await;
    }
    // HTTP stops accepting and finishes its requests; gRPC sends GOAWAY and finishes its calls.
    let stopping = handle.stop(true);
    let _ = stop_grpc.send(());
    let drained = async {
        stopping.await;
        // With gRPC off its task is a pending placeholder that never ends: waiting for it
        // held every shutdown for the whole drain window.
        if grpc_on {
            let _ = grpc.await;
        }
    };
    // Workers blocked by a hang fault never finish: give up after the drain window.
    if tokio::time::timeout(args.drain_timeout + Duration::from_secs(1), drained)
        .await
        .is_err()
    {
        tracing::warn!("drain window over with requests still running; exiting");
    } else {
        tracing::info!("drained; exiting");
    }
    Ok(0)
}

/// Waits out the load delay, loads and warms the model off the async workers, then marks the
/// process started and ready. A model that cannot load ends the process (exit 2).
async fn load_model(
    environment: Arc<ort::environment::Environment>,
    source: ModelSource,
    options: LoadOptions,
    model: Arc<OnceLock<ServedModel>>,
    chaos: Arc<ChaosEngine>,
    metrics: Metrics,
) {
    chaos.load_delay().await;
    let load_metrics = metrics.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        ServedModel::load(&environment, &source, &options, &load_metrics)
    })
    .await;
    match loaded {
        Ok(Ok(served)) => {
            metrics
                .model_load_duration
                .set(served.load_time.as_secs_f64());
            tracing::info!(
                model = %served.name,
                version = %served.version,
                workers = served.pool.workers(),
                schema = served.schema.is_some(),
                load_ms = served.load_time.as_millis() as u64,
                inline_rows = served.inline.max_rows,
                one_row_run_us = served.inline.one_row.map(|d| d.as_secs_f64() * 1e6),
                batch_max_rows = served.batching.max_rows,
                batch_max_delay_us = served.batching.max_delay.as_micros() as u64,
                "model loaded"
            );
            let _ = model.set(served);
            chaos.model_loaded();
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
}

/// Holds memory until the process holds `bytes` in all, as the application it stands in for
/// does: allocated and written (so it is resident), kept for the life of the process.
fn hold_working_set(bytes: u64) {
    let resident = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    let more = bytes.saturating_sub(resident) as usize;
    if more > 0 {
        // Deliberately leaked: the process holds this memory until it exits. `black_box`
        // keeps an optimised build from eliding an allocation nothing reads.
        let held: &'static mut [u8] = Box::leak(vec![1u8; more].into_boxed_slice());
        std::hint::black_box(&held);
        tracing::info!(bytes = more, "holding the application's working set");
    }
}
