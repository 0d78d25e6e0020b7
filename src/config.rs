//! Server settings: every flag is also an environment variable (environment first, flags
//! override), validated before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::chaos::overrides::ChaosArgs;
use crate::model::inline::InlinePolicy;

/// Default request limits (also what the fuzz targets check against).
pub const DEFAULT_MAX_BATCH_ROWS: u32 = 1024;
pub const DEFAULT_MAX_TENSOR_ELEMENTS: u32 = 1 << 20;
pub const DEFAULT_MAX_JSON_DEPTH: u32 = 32;

/// The model name in the V2 routes unless `MODEL_NAME` says otherwise.
pub const DEFAULT_MODEL_NAME: &str = "heart-disease";

/// Settings of `chaos-inference serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Listen address.
    #[arg(
        long,
        env = "BIND",
        value_name = "BIND",
        default_value = "0.0.0.0:8000"
    )]
    pub bind: SocketAddr,

    /// gRPC listen address (Open Inference Protocol, gRPC health, reflection); empty turns gRPC
    /// off.
    #[arg(long, env = "GRPC_BIND", value_name = "GRPC_BIND", default_value = "0.0.0.0:8001", value_parser = parse_optional_address)]
    pub grpc_bind: OptionalAddress,

    /// ONNX file to serve; the built-in heart-disease model when unset. A `schema.json` (or
    /// `<stem>.schema.json`) beside it enables `/predict` when the model carries no schema.
    #[arg(long, env = "MODEL_PATH", value_name = "MODEL_PATH")]
    pub model_path: Option<PathBuf>,

    /// Model name in the V2 routes and metrics.
    #[arg(
        long,
        env = "MODEL_NAME",
        value_name = "MODEL_NAME",
        default_value = DEFAULT_MODEL_NAME
    )]
    pub model_name: String,

    /// ONNX Runtime shared library; discovered when unset (see README).
    #[arg(long, env = "ORT_DYLIB_PATH", value_name = "ORT_DYLIB_PATH")]
    pub ort_dylib_path: Option<PathBuf>,

    #[command(flatten)]
    pub chaos: ChaosArgs,

    /// Enables `POST /chaos/actions/*` for requests with `Authorization: Bearer <token>`.
    #[arg(
        long,
        env = "ADMIN_TOKEN",
        value_name = "ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Reads the admin token from this file instead (a mounted Secret keeps it out of the
    /// environment); one trailing newline is ignored.
    #[arg(
        long,
        env = "ADMIN_TOKEN_FILE",
        value_name = "ADMIN_TOKEN_FILE",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<PathBuf>,

    /// Log format; `pretty` on a terminal, else `json`. `RUST_LOG` filters.
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Where the reason for a chaos crash is written, if writable (Kubernetes shows it).
    #[arg(
        long,
        env = "TERMINATION_LOG",
        value_name = "TERMINATION_LOG",
        default_value = "/dev/termination-log"
    )]
    pub termination_log: PathBuf,

    /// HTTP worker threads; the number of CPUs when unset.
    #[arg(long, env = "HTTP_WORKERS", value_name = "HTTP_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub http_workers: Option<u16>,

    /// Inference worker threads, each with its own ONNX Runtime session; the number of CPUs when
    /// unset.
    #[arg(long, env = "INFERENCE_WORKERS", value_name = "INFERENCE_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub inference_workers: Option<u16>,

    /// Inference requests that may wait for a worker; past that, 503 with Retry-After.
    #[arg(long, env = "INFERENCE_QUEUE", value_name = "INFERENCE_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub inference_queue: u32,

    /// Which requests run on the HTTP worker that received them, with a spare session, instead
    /// of being handed to an inference worker: `auto` (default) times the model at load and
    /// runs inline only the row counts whose run takes at most 5 µs (none for a slow model, and
    /// none while batching is on: a request run inline cannot join others);
    /// `off`; or a row count.
    #[arg(long, env = "INFERENCE_INLINE", value_name = "INFERENCE_INLINE", default_value = "auto", value_parser = parse_inline)]
    pub inference_inline: InlinePolicy,

    /// Dynamic batching: the most rows one run of requests joined from the inference queue may
    /// have; `auto` (the default): the largest row count whose run the model does in less than
    /// 1.8 times the run of half as many rows (timed at load), at most MAX_BATCH_ROWS, and 1 for
    /// a model with a fixed first dimension; 1 runs each request alone.
    #[arg(long, env = "BATCH_MAX_ROWS", value_name = "BATCH_MAX_ROWS", default_value = "auto", value_parser = parse_batch_rows)]
    pub batch_max_rows: BatchRows,

    /// Dynamic batching: how long the first request of a run may wait in the queue for others to
    /// join it. 0 (the default) joins only requests already waiting, so an idle server adds no
    /// latency.
    #[arg(long, env = "BATCH_MAX_DELAY", value_name = "BATCH_MAX_DELAY", default_value = "0s", value_parser = parse_batch_delay)]
    pub batch_max_delay: Duration,

    /// After SIGTERM, how long to keep serving while readiness fails, so that endpoints are
    /// removed before the listener closes.
    #[arg(long, env = "SHUTDOWN_DELAY", value_name = "SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// After the listener closes, how long in-flight requests may take before the process exits.
    #[arg(long, env = "DRAIN_TIMEOUT", value_name = "DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Largest request body, in bytes (413 above).
    #[arg(long, env = "MAX_BODY_BYTES", value_name = "MAX_BODY_BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_body_bytes: u32,

    /// Most records in one `/predict` request (422 above).
    #[arg(long, env = "MAX_BATCH_ROWS", value_name = "MAX_BATCH_ROWS", default_value_t = DEFAULT_MAX_BATCH_ROWS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_batch_rows: u32,

    /// Most tensor elements in one V2 infer request (422 above).
    #[arg(long, env = "MAX_TENSOR_ELEMENTS", value_name = "MAX_TENSOR_ELEMENTS", default_value_t = DEFAULT_MAX_TENSOR_ELEMENTS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tensor_elements: u32,

    /// Largest total size of a request's header names and values, in bytes (431 above).
    #[arg(long, env = "MAX_HEADER_BYTES", value_name = "MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(1024..))]
    pub max_header_bytes: u32,

    /// Deepest nesting of arrays and objects in a request body (400 above).
    #[arg(long, env = "MAX_JSON_DEPTH", value_name = "MAX_JSON_DEPTH", default_value_t = DEFAULT_MAX_JSON_DEPTH, value_parser = clap::value_parser!(u32).range(2..=128))]
    pub max_json_depth: u32,

    /// Most open connections per HTTP worker; further ones wait in the listen backlog.
    #[arg(long, env = "MAX_CONNECTIONS", value_name = "MAX_CONNECTIONS", default_value_t = 25_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Time a client has to send a request's headers (slow clients are cut off with 408).
    #[arg(long, env = "CLIENT_REQUEST_TIMEOUT", value_name = "CLIENT_REQUEST_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub client_request_timeout: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A listen address that an empty value turns off (a newtype so that clap does not read the
/// `Option` as "flag may be absent").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddress(pub Option<SocketAddr>);

fn parse_optional_address(text: &str) -> Result<OptionalAddress, String> {
    if text.trim().is_empty() {
        return Ok(OptionalAddress(None));
    }
    text.trim()
        .parse()
        .map(|a| OptionalAddress(Some(a)))
        .map_err(|_| {
            format!(
                "expected HOST:PORT such as 0.0.0.0:8001, or empty to turn gRPC off, got `{text}`"
            )
        })
}

/// Parses `INFERENCE_INLINE`: `auto`, `off` or a row count.
fn parse_inline(text: &str) -> Result<InlinePolicy, String> {
    text.parse()
}

/// Parses a humantime duration such as `250ms` or `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|_| format!("expected a duration such as 250ms, 5s or 1m30s, got `{text}`"))
}

/// `BATCH_MAX_ROWS`: a row count, or `None` for `auto` (measured at load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRows(pub Option<usize>);

/// Parses `BATCH_MAX_ROWS`: `auto` or a row count from 1 to 65,536.
fn parse_batch_rows(text: &str) -> Result<BatchRows, String> {
    match text.trim() {
        "auto" => Ok(BatchRows(None)),
        other => match other.parse::<usize>() {
            Ok(rows) if (1..=65_536).contains(&rows) => Ok(BatchRows(Some(rows))),
            _ => Err(format!(
                "expected auto or a row count from 1 to 65536, got `{other}`"
            )),
        },
    }
}

/// Parses `BATCH_MAX_DELAY`: a duration of at most 1 s (a run held longer is an outage, not a
/// batch).
fn parse_batch_delay(text: &str) -> Result<Duration, String> {
    let delay = parse_duration(text)?;
    if delay > Duration::from_secs(1) {
        return Err(format!("at most 1s, got `{text}`"));
    }
    Ok(delay)
}

impl ServeArgs {
    /// CPUs available to this process (cgroup limits included).
    fn cpus() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// HTTP workers to start.
    pub fn http_workers(&self) -> usize {
        self.http_workers.map_or_else(Self::cpus, usize::from)
    }

    /// Reads `ADMIN_TOKEN_FILE` into `admin_token`; an empty `ADMIN_TOKEN` means unset.
    pub fn load_admin_token(&mut self) -> Result<(), String> {
        if let Some(path) = &self.admin_token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("ADMIN_TOKEN_FILE={}: cannot read: {e}", path.display()))?;
            let token = text.strip_suffix('\n').unwrap_or(&text);
            let token = token.strip_suffix('\r').unwrap_or(token);
            if token.is_empty() {
                return Err(format!(
                    "ADMIN_TOKEN_FILE={}: the file is empty",
                    path.display()
                ));
            }
            self.admin_token = Some(token.to_string());
        }
        self.admin_token = self.admin_token.take().filter(|t| !t.is_empty());
        Ok(())
    }

    /// Inference workers (sessions) to start.
    pub fn inference_workers(&self) -> usize {
        self.inference_workers.map_or_else(Self::cpus, usize::from)
    }

    /// The settings as log fields, with the admin token redacted.
    pub fn redacted_summary(&self) -> String {
        format!(
            "bind={} grpc_bind={} model={} model_name={} profile={} time_scale={} admin={} http_workers={} inference_workers={} queue={}",
            self.bind,
            self.grpc_bind
                .0
                .map_or_else(|| "off".to_string(), |a| a.to_string()),
            self.model_path
                .as_ref()
                .map_or_else(|| "built-in".to_string(), |p| p.display().to_string()),
            self.model_name,
            self.chaos.profile,
            self.chaos.time_scale,
            if self.admin_token.is_some() {
                "enabled"
            } else {
                "disabled"
            },
            self.http_workers(),
            self.inference_workers(),
            self.inference_queue,
        )
    }
}

/// A Kubernetes quantity (`128Mi`, `500m`, `1.5`, `2e3`) as a number of units.
pub fn quantity(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, factor) = suffixes
        .iter()
        .find_map(|(suffix, factor)| text.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((text, 1.0));
    number
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x * factor)
        .ok_or_else(|| format!("expected a quantity such as 128Mi or 500m, got `{text}`"))
}
