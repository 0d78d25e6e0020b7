//! Prometheus metrics, all prefixed `chaos_inference_` (plus the standard `process_*` ones), in
//! base units. Each is declared once, in [`Metrics::new`], where it is also registered. Request
//! metrics are labelled by protocol and route pattern, never the raw path, so label sets stay
//! bounded whatever clients send.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Buckets for request time: from 100 µs (a healthy one-row predict) to 60 s (a chaos hang that
/// ends).
const REQUEST_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// Buckets for one ONNX Runtime run: a one-row run takes a few microseconds.
const RUN_BUCKETS: &[f64] = &[
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1, 1.0,
];
/// Buckets for the requests or rows of one run: powers of two up to the largest batch.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// Buckets for a request's wait in the inference queue: none when a worker is free, up to a
/// batch delay or a busy slow model's runs.
const WAIT_BUCKETS: &[f64] = &[
    0.000001, 0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
    1.0,
];

/// Every metric the server exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by protocol (`http`, `grpc`), route pattern or RPC, method and status.
    pub requests: IntCounterVec,
    /// Request time from first byte to response, by protocol and route.
    pub request_duration: HistogramVec,
    /// One ONNX Runtime session run, by model.
    pub model_run_duration: HistogramVec,
    /// Rows (first dimension) inferred, by model.
    pub model_rows: IntCounterVec,
    /// Requests joined into one run (1 when run alone), by model.
    pub batch_requests: HistogramVec,
    /// Rows of one run, by model.
    pub batch_rows: HistogramVec,
    /// From a request entering the inference queue to its run starting, by model.
    pub queue_wait: HistogramVec,
    /// Requests refused because every inference worker and the queue were busy.
    pub queue_rejected: IntCounter,
    /// How long the last model load took, warm-up included, chaos delays excluded.
    pub model_load_duration: Gauge,
    /// 1 for the current lifecycle phase, 0 for the others.
    pub phase: IntGaugeVec,
    /// Phase changes, by phase entered.
    pub phase_changes: IntCounterVec,
    /// Chaos events, by fault and action.
    pub fault_events: IntCounterVec,
    /// Memory held on purpose by a leak fault.
    pub leaked_bytes: IntGauge,
    /// Open status-page event streams (`GET /chaos/events`).
    pub event_streams: IntGauge,
    /// Requests being served now, HTTP and gRPC apart.
    pub in_flight: InFlight,
    /// Requests waiting for an overload fault's workers now.
    pub overload_queue_depth: IntGauge,
    /// How long requests waited for an overload fault's worker, probes and predictions apart.
    pub overload_wait: HistogramVec,
    /// Requests an overload fault refused because its queue was full, probes and predictions
    /// apart.
    pub overload_shed: IntCounterVec,
}

/// The in-flight gauges of both protocols, looked up once so that a request pays two atomic
/// additions and no label lookup.
#[derive(Clone)]
pub struct InFlight {
    pub http: IntGauge,
    pub grpc: IntGauge,
}

/// Counts one open thing (a request in flight, an event stream) in a gauge until dropped, also
/// when the future holding it is dropped unfinished (a client that went away).
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    /// Adds one to `gauge` until the guard is dropped.
    pub fn enter(gauge: &IntGauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let metrics = Metrics {
            requests: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaos_inference_requests_total",
                        "requests by protocol, route pattern (HTTP) or method (gRPC), method and status",
                    ),
                    &["protocol", "route", "method", "status"],
                ),
            ),
            request_duration: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "chaos_inference_request_duration_seconds",
                        "request time from first byte to response, by protocol and route",
                    )
                    .buckets(REQUEST_BUCKETS.to_vec()),
                    &["protocol", "route"],
                ),
            ),
            model_run_duration: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "chaos_inference_model_run_duration_seconds",
                        "time of one ONNX Runtime session run, by model",
                    )
                    .buckets(RUN_BUCKETS.to_vec()),
                    &["model"],
                ),
            ),
            model_rows: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaos_inference_model_rows_total",
                        "rows (first dimension) inferred, by model",
                    ),
                    &["model"],
                ),
            ),
            batch_requests: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "chaos_inference_model_batch_requests",
                        "requests joined into one ONNX Runtime run (1: run alone), by model",
                    )
                    .buckets(BATCH_BUCKETS.to_vec()),
                    &["model"],
                ),
            ),
            batch_rows: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "chaos_inference_model_batch_rows",
                        "rows of one ONNX Runtime run, by model",
                    )
                    .buckets(BATCH_BUCKETS.to_vec()),
                    &["model"],
                ),
            ),
            queue_wait: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "chaos_inference_model_queue_wait_seconds",
                        "from a request entering the inference queue to its run starting, by model",
                    )
                    .buckets(WAIT_BUCKETS.to_vec()),
                    &["model"],
                ),
            ),
            queue_rejected: register(
                r,
                IntCounter::new(
                    "chaos_inference_queue_rejected_total",
                    "requests refused because every inference worker and the queue were busy",
                ),
            ),
            model_load_duration: register(
                r,
                Gauge::new(
                    "chaos_inference_model_load_duration_seconds",
                    "time the last model load took, including warm-up, excluding chaos delays",
                ),
            ),
            phase: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "chaos_inference_phase",
                        "1 for the current lifecycle phase, 0 for the others",
                    ),
                    &["phase"],
                ),
            ),
            phase_changes: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaos_inference_phase_changes_total",
                        "lifecycle phase changes, by phase entered",
                    ),
                    &["phase"],
                ),
            ),
            fault_events: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaos_inference_fault_events_total",
                        "chaos events that happened, by fault and action",
                    ),
                    &["fault", "action"],
                ),
            ),
            leaked_bytes: register(
                r,
                IntGauge::new(
                    "chaos_inference_leaked_bytes",
                    "memory held on purpose by a leak fault",
                ),
            ),
            event_streams: register(
                r,
                IntGauge::new(
                    "chaos_inference_event_streams",
                    "open status-page event streams (GET /chaos/events)",
                ),
            ),
            overload_queue_depth: register(
                r,
                IntGauge::new(
                    "chaos_inference_overload_queue_depth",
                    "requests waiting for an overload fault's workers",
                ),
            ),
            overload_wait: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "chaos_inference_overload_queue_wait_seconds",
                        "time a request waited for an overload fault's worker, by work (probe, prediction)",
                    )
                    .buckets(REQUEST_BUCKETS.to_vec()),
                    &["work"],
                ),
            ),
            overload_shed: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "chaos_inference_overload_shed_total",
                        "requests an overload fault refused with its queue full, by work (probe, prediction)",
                    ),
                    &["work"],
                ),
            ),
            in_flight: {
                let vec = register(
                    r,
                    IntGaugeVec::new(
                        Opts::new(
                            "chaos_inference_requests_in_flight",
                            "requests being served now (a scrape counts itself), by protocol",
                        ),
                        &["protocol"],
                    ),
                );
                InFlight {
                    http: vec.with_label_values(&["http"]),
                    grpc: vec.with_label_values(&["grpc"]),
                }
            },
            registry,
        };
        #[cfg(target_os = "linux")]
        metrics
            .registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            // Its `process_*` names are distinct from every name above.
            .expect("unique metric");
        metrics
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Registers a new metric and hands it back.
fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    // Names and labels are constants of this file, valid and distinct, so neither creating nor
    // registering can fail.
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus naming: base units, `_total` on counters, no repeated words after the prefix.
    #[test]
    fn names_follow_prometheus_conventions() {
        let metrics = Metrics::new();
        metrics
            .requests
            .with_label_values(&["http", "/livez", "GET", "200"])
            .inc();
        metrics
            .request_duration
            .with_label_values(&["http", "/livez"])
            .observe(0.001);
        metrics
            .model_run_duration
            .with_label_values(&["m"])
            .observe(0.001);
        metrics.model_rows.with_label_values(&["m"]).inc();
        for histogram in [
            &metrics.batch_requests,
            &metrics.batch_rows,
            &metrics.queue_wait,
        ] {
            histogram.with_label_values(&["m"]).observe(1.0);
        }
        metrics.phase.with_label_values(&["serving"]).set(1);
        metrics.phase_changes.with_label_values(&["serving"]).inc();
        metrics
            .fault_events
            .with_label_values(&["crash", "start"])
            .inc();
        metrics
            .overload_wait
            .with_label_values(&["probe"])
            .observe(0.001);
        metrics
            .overload_shed
            .with_label_values(&["prediction"])
            .inc();
        let text = metrics.render();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with("chaos_inference_"))
            .collect();
        assert_eq!(names.len(), 18, "{names:?}");
        for name in names {
            let rest = name.trim_start_matches("chaos_inference_");
            assert!(
                !rest.starts_with("inference_") && !rest.starts_with("chaos_"),
                "{name} stutters"
            );
            assert!(
                !name.contains("milli") && !name.contains("_ms"),
                "{name} is not in base units"
            );
        }
    }
}
