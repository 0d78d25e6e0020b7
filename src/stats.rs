//! The recent history of the server's own inference metrics, for the status page: request rate,
//! error ratio and p99 once a second over the last minutes. It reads the Prometheus metrics the
//! server exports (so the page and `/metrics` never disagree) and keeps only differences.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::core::Collector;
use serde::Serialize;

use crate::metrics::Metrics;

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How many samples are kept: five minutes.
pub const HISTORY: usize = 300;

/// The HTTP routes and gRPC methods that run the model: what "requests" means on the page.
const INFERENCE_ROUTES: [&str; 4] = [
    "/predict",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
    "ModelInfer",
];
/// gRPC codes that are the server's failure, as 5xx are over HTTP (client mistakes are not).
const GRPC_FAILURES: [&str; 6] = [
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
];

/// Cumulative inference counts at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub requests: u64,
    pub failures: u64,
    /// (upper bound in seconds, cumulative count), as Prometheus keeps them, summed over routes.
    pub buckets: Vec<(f64, u64)>,
}

/// One second of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sample {
    /// Milliseconds since process start, at the end of the second.
    pub at_ms: u64,
    /// Inference requests answered per second.
    pub requests_per_second: f64,
    /// Failed share (HTTP 5xx, gRPC server-side codes) of those, 0 to 1.
    pub error_ratio: f64,
    /// 99th percentile of request time in milliseconds (the upper bound of the histogram
    /// bucket it falls in), absent when nothing was answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

fn label<'a>(metric: &'a prometheus::proto::Metric, name: &str) -> &'a str {
    metric
        .get_label()
        .iter()
        .find(|l| l.name() == name)
        .map_or("", |l| l.value())
}

impl Totals {
    /// The inference totals in `metrics` now.
    pub fn read(metrics: &Metrics) -> Self {
        let mut totals = Totals::default();
        for family in metrics.requests.collect() {
            for metric in family.get_metric() {
                if !INFERENCE_ROUTES.contains(&label(metric, "route")) {
                    continue;
                }
                let count = metric.get_counter().get_value() as u64;
                totals.requests += count;
                let status = label(metric, "status");
                if status.starts_with('5') || GRPC_FAILURES.contains(&status) {
                    totals.failures += count;
                }
            }
        }
        for family in metrics.request_duration.collect() {
            for metric in family.get_metric() {
                if !INFERENCE_ROUTES.contains(&label(metric, "route")) {
                    continue;
                }
                let buckets = metric.get_histogram().get_bucket();
                if totals.buckets.is_empty() {
                    totals.buckets = buckets.iter().map(|b| (b.upper_bound(), 0)).collect();
                }
                for (sum, bucket) in totals.buckets.iter_mut().zip(buckets) {
                    sum.1 += bucket.cumulative_count();
                }
            }
        }
        totals
    }

    /// The traffic between `earlier` and `self`, `seconds` apart.
    pub fn since(&self, earlier: &Totals, seconds: f64, at_ms: u64) -> Sample {
        let requests = self.requests.saturating_sub(earlier.requests);
        let failures = self.failures.saturating_sub(earlier.failures);
        let counted = |i: usize, buckets: &[(f64, u64)]| buckets.get(i).map_or(0, |b| b.1);
        // Requests in the histogram during the interval, bucket by bucket (cumulative).
        let window: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, (bound, count))| (*bound, count.saturating_sub(counted(i, &earlier.buckets))))
            .collect();
        let p99_ms = if requests == 0 {
            None
        } else {
            // The smallest bucket holding 99% of the interval's requests; past the last bound,
            // the last bound is the best the histogram can say.
            let wanted = (requests as f64 * 0.99).ceil() as u64;
            window
                .iter()
                .find(|(_, count)| *count >= wanted)
                .or(window.last())
                .map(|(bound, _)| bound * 1000.0)
        };
        Sample {
            at_ms,
            requests_per_second: if seconds > 0.0 {
                requests as f64 / seconds
            } else {
                0.0
            },
            error_ratio: if requests == 0 {
                0.0
            } else {
                failures as f64 / requests as f64
            },
            p99_ms,
        }
    }
}

/// The last [`HISTORY`] samples.
#[derive(Default)]
pub struct Stats {
    samples: Mutex<VecDeque<Sample>>,
}

impl Stats {
    pub fn push(&self, sample: Sample) {
        let mut samples = lock(&self.samples);
        if samples.len() == HISTORY {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// Every kept sample, oldest first.
    pub fn recent(&self) -> Vec<Sample> {
        lock(&self.samples).iter().copied().collect()
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<Sample> {
        lock(&self.samples).back().copied()
    }

    /// Samples `metrics` every [`INTERVAL`] for as long as the runtime runs.
    pub fn spawn_sampler(self: &Arc<Self>, metrics: Metrics, started: tokio::time::Instant) {
        let stats = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut last = (Totals::read(&metrics), tokio::time::Instant::now());
            loop {
                ticks.tick().await;
                let now = (Totals::read(&metrics), tokio::time::Instant::now());
                let seconds = now.1.duration_since(last.1).as_secs_f64();
                let at_ms = now.1.duration_since(started).as_millis() as u64;
                stats.push(now.0.since(&last.0, seconds, at_ms));
                last = now;
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(metrics: &Metrics, protocol: &str, route: &str, status: &str, seconds: f64) {
        metrics
            .requests
            .with_label_values(&[protocol, route, "POST", status])
            .inc();
        metrics
            .request_duration
            .with_label_values(&[protocol, route])
            .observe(seconds);
    }

    #[test]
    fn only_inference_counts_and_server_failures_are_errors() {
        let metrics = Metrics::new();
        let before = Totals::read(&metrics);
        assert_eq!(before.requests, 0);
        for _ in 0..96 {
            record(&metrics, "http", "/v2/models/{name}/infer", "200", 0.0002);
        }
        record(&metrics, "http", "/predict", "503", 0.0002);
        record(&metrics, "http", "/predict", "422", 0.0002);
        record(&metrics, "grpc", "ModelInfer", "UNAVAILABLE", 0.0002);
        record(&metrics, "grpc", "ModelInfer", "INVALID_ARGUMENT", 0.0002);
        // Probes and other routes are not traffic.
        record(&metrics, "http", "/livez", "500", 0.0002);
        record(&metrics, "grpc", "Check", "UNAVAILABLE", 0.0002);
        let after = Totals::read(&metrics);
        let sample = after.since(&before, 2.0, 5_000);
        assert_eq!(sample.at_ms, 5_000);
        assert_eq!(sample.requests_per_second, 50.0);
        assert_eq!(sample.error_ratio, 0.02);
        assert_eq!(sample.p99_ms, Some(0.25));
    }

    #[test]
    fn p99_is_the_bucket_that_holds_ninety_nine_percent_of_the_interval() {
        let metrics = Metrics::new();
        // Earlier slow requests are not in the next interval.
        for _ in 0..50 {
            record(&metrics, "http", "/predict", "200", 3.0);
        }
        let before = Totals::read(&metrics);
        for _ in 0..98 {
            record(&metrics, "http", "/predict", "200", 0.0008);
        }
        for _ in 0..2 {
            record(&metrics, "http", "/predict", "200", 0.04);
        }
        let sample = Totals::read(&metrics).since(&before, 1.0, 0);
        assert_eq!(sample.p99_ms, Some(50.0), "2% above 25 ms: p99 in 25-50 ms");
        let quiet = Totals::read(&metrics).since(&Totals::read(&metrics), 1.0, 0);
        assert_eq!(quiet.p99_ms, None);
        assert_eq!(quiet.requests_per_second, 0.0);
        assert_eq!(quiet.error_ratio, 0.0);
    }

    #[test]
    fn history_keeps_the_last_five_minutes() {
        let stats = Stats::default();
        for i in 0..(HISTORY as u64 + 10) {
            stats.push(Sample {
                at_ms: i,
                requests_per_second: 0.0,
                error_ratio: 0.0,
                p99_ms: None,
            });
        }
        let recent = stats.recent();
        assert_eq!(recent.len(), HISTORY);
        assert_eq!(recent[0].at_ms, 10);
        assert_eq!(stats.latest().unwrap().at_ms, HISTORY as u64 + 9);
    }
}
