//! Prometheus metrics, all prefixed `chaos_inference_` (plus the standard `process_*` ones); HTTP ones labelled by route pattern so
//! label sets stay bounded whatever paths clients send.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Buckets for HTTP request time: from 100 µs (a healthy one-row predict) to 60 s (a chaos hang
/// that ends).
const HTTP_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// Buckets for one ONNX Runtime run: a one-row run takes a few microseconds.
const INFERENCE_BUCKETS: &[f64] = &[
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1, 1.0,
];

/// Every metric the server exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub inference_duration: HistogramVec,
    pub inference_rows: IntCounterVec,
    pub inference_rejected: IntCounter,
    pub model_load_duration_ms: IntGauge,
    pub phase: IntGaugeVec,
    pub phase_changes: IntCounterVec,
    pub chaos_events: IntCounterVec,
    pub chaos_leaked_bytes: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "chaos_inference_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "chaos_inference_http_request_duration_seconds",
                "HTTP request time from first byte to response, by route",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let inference_duration = HistogramVec::new(
            HistogramOpts::new(
                "chaos_inference_inference_duration_seconds",
                "time of one ONNX Runtime session run, by model",
            )
            .buckets(INFERENCE_BUCKETS.to_vec()),
            &["model"],
        )
        .expect("valid metric");
        let inference_rows = IntCounterVec::new(
            Opts::new(
                "chaos_inference_inference_rows_total",
                "rows (first dimension) inferred, by model",
            ),
            &["model"],
        )
        .expect("valid metric");
        let inference_rejected = IntCounter::new(
            "chaos_inference_inference_rejected_total",
            "inference requests refused with 503 because every worker and the queue were busy",
        )
        .expect("valid metric");
        let model_load_duration_ms = IntGauge::new(
            "chaos_inference_model_load_duration_milliseconds",
            "time the last model load took, including warm-up, excluding chaos delays",
        )
        .expect("valid metric");
        let phase = IntGaugeVec::new(
            Opts::new(
                "chaos_inference_phase",
                "1 for the current lifecycle phase, 0 for the others",
            ),
            &["phase"],
        )
        .expect("valid metric");
        let phase_changes = IntCounterVec::new(
            Opts::new(
                "chaos_inference_phase_changes_total",
                "lifecycle phase changes, by phase entered",
            ),
            &["phase"],
        )
        .expect("valid metric");
        let chaos_events = IntCounterVec::new(
            Opts::new(
                "chaos_inference_chaos_events_total",
                "chaos events that happened, by fault and action",
            ),
            &["fault", "action"],
        )
        .expect("valid metric");
        let chaos_leaked_bytes = IntGauge::new(
            "chaos_inference_chaos_leaked_bytes",
            "memory held on purpose by the memory-leak fault",
        )
        .expect("valid metric");
        let metrics = Metrics {
            registry,
            http_requests,
            http_duration,
            inference_duration,
            inference_rows,
            inference_rejected,
            model_load_duration_ms,
            phase,
            phase_changes,
            chaos_events,
            chaos_leaked_bytes,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.http_requests.clone()),
            Box::new(self.http_duration.clone()),
            Box::new(self.inference_duration.clone()),
            Box::new(self.inference_rows.clone()),
            Box::new(self.inference_rejected.clone()),
            Box::new(self.model_load_duration_ms.clone()),
            Box::new(self.phase.clone()),
            Box::new(self.phase_changes.clone()),
            Box::new(self.chaos_events.clone()),
            Box::new(self.chaos_leaked_bytes.clone()),
        ];
        for collector in collectors {
            // Names are distinct constants, so registration cannot collide.
            self.registry.register(collector).expect("unique metric");
        }
        #[cfg(target_os = "linux")]
        self.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
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

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
