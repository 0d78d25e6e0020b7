//! A gRPC load generator for the benchmark: V2 `ModelInfer` calls with one FP32 input, as
//! tritonclient sends them (raw bytes), against any server of the protocol.
//!
//!     cargo run --release --example grpc_load -- --addr 127.0.0.1:8001 --seconds 10 \
//!         [--concurrency 64 --connections 8 | --rate 1000 --concurrency 16] [--rows 1] [--typed]
//!
//! Closed loop (no `--rate`): `--concurrency` calls in flight at all times over `--connections`
//! HTTP/2 connections. Open loop (`--rate R`): a call every 1/R s whatever the answers do, at
//! most `--concurrency` in flight per connection; a call that has to wait for one of those slots
//! is timed from when it was due (so queueing in the server is not hidden). One thread (pin it with taskset); prints one JSON
//! object with throughput, latency percentiles, errors by status code, and the CPU this process
//! used, to show it was not the bottleneck.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos_inference::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use chaos_inference::grpc::pb::model_infer_request::InferInputTensor;
use chaos_inference::grpc::pb::{InferTensorContents, ModelInferRequest};
use clap::Parser;
use tokio::sync::Semaphore;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    addr: String,
    #[arg(long, default_value = "heart-disease")]
    model: String,
    #[arg(long, default_value = "input")]
    input: String,
    /// Rows of the example record per call.
    #[arg(long, default_value_t = 1)]
    rows: usize,
    /// Typed `fp32_contents` instead of `raw_input_contents`.
    #[arg(long)]
    typed: bool,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Calls per second, open loop; closed loop when absent.
    #[arg(long)]
    rate: Option<f64>,
}

/// The example record of the built-in model, in feature order.
const ROW: [f32; 13] = [
    63.0, 1.0, 4.0, 145.0, 233.0, 1.0, 2.0, 150.0, 0.0, 2.3, 3.0, 0.0, 6.0,
];

fn request(args: &Args) -> ModelInferRequest {
    let values: Vec<f32> = ROW.iter().copied().cycle().take(13 * args.rows).collect();
    let mut input = InferInputTensor {
        name: args.input.clone(),
        datatype: "FP32".into(),
        shape: vec![args.rows as i64, 13],
        ..Default::default()
    };
    let mut request = ModelInferRequest {
        model_name: args.model.clone(),
        id: "bench".into(),
        ..Default::default()
    };
    if args.typed {
        input.contents = Some(InferTensorContents {
            fp32_contents: values,
            ..Default::default()
        });
    } else {
        request.raw_input_contents = vec![values.iter().flat_map(|v| v.to_le_bytes()).collect()];
    }
    request.inputs = vec![input];
    request
}

#[derive(Default)]
struct Tally {
    micros: Vec<u64>,
    codes: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.micros.extend(other.micros);
        for (code, n) in other.codes {
            *self.codes.entry(code).or_default() += n;
        }
    }
}

async fn call(
    client: &mut GrpcInferenceServiceClient<Channel>,
    request: &ModelInferRequest,
) -> String {
    match client.model_infer(request.clone()).await {
        Ok(answer) if !answer.get_ref().outputs.is_empty() => "OK".into(),
        Ok(_) => "OK without outputs".into(),
        Err(status) => format!("{:?}", status.code()),
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

async fn closed_loop(
    channels: Vec<Channel>,
    request: Arc<ModelInferRequest>,
    concurrency: usize,
    deadline: Instant,
) -> Tally {
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let mut client = GrpcInferenceServiceClient::new(channels[i % channels.len()].clone());
            let request = request.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let code = call(&mut client, &request).await;
                    let done = Instant::now();
                    // Calls still in flight at the deadline are not counted either way.
                    if done <= deadline {
                        tally.micros.push((done - started).as_micros() as u64);
                        *tally.codes.entry(code).or_default() += 1;
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await.expect("a load task panicked"));
    }
    total
}

async fn open_loop(
    channels: Vec<Channel>,
    request: Arc<ModelInferRequest>,
    rate: f64,
    concurrency: usize,
    started: Instant,
    deadline: Instant,
) -> Tally {
    let slots = Arc::new(Semaphore::new(concurrency * channels.len()));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = Vec::new();
    let mut due = started;
    let mut i = 0usize;
    while due < deadline {
        tokio::time::sleep_until(due.into()).await;
        // The timer wakes up to a millisecond late: that lateness is this generator's, so a call
        // that finds a free slot is timed from when it is sent. Waiting for a slot means the
        // server is behind: then the wait counts against it, from when the call was due.
        let (permit, scheduled) = match slots.clone().try_acquire_owned() {
            Ok(permit) => (permit, Instant::now()),
            Err(_) => (
                slots.clone().acquire_owned().await.expect("semaphore open"),
                due,
            ),
        };
        let mut client = GrpcInferenceServiceClient::new(channels[i % channels.len()].clone());
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let code = call(&mut client, &request).await;
            drop(permit);
            (Instant::now() - scheduled, code)
        }));
        i += 1;
        due = started + interval.mul_f64(i as f64);
    }
    let mut total = Tally::default();
    for task in tasks {
        let (latency, code) = task.await.expect("a load task panicked");
        total.micros.push(latency.as_micros() as u64);
        *total.codes.entry(code).or_default() += 1;
    }
    total
}

fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0)
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut channels = Vec::new();
        for _ in 0..args.connections.max(1) {
            let channel = Endpoint::from_shared(format!("http://{}", args.addr))
                .map_err(|e| e.to_string())?
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(|e| format!("{}: {e}", args.addr))?;
            channels.push(channel);
        }
        let request = Arc::new(request(&args));
        // One call first: a server that cannot answer this request fails the run, not the numbers.
        let mut probe = GrpcInferenceServiceClient::new(channels[0].clone());
        probe
            .model_infer((*request).clone())
            .await
            .map_err(|s| format!("first call: {:?}: {}", s.code(), s.message()))?;
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(args.seconds);
        let tally = match args.rate {
            Some(rate) => {
                open_loop(channels, request, rate, args.concurrency, started, deadline).await
            }
            None => closed_loop(channels, request, args.concurrency, deadline).await,
        };
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_before;
        let mut micros = tally.micros;
        micros.sort_unstable();
        let ok = tally.codes.get("OK").copied().unwrap_or(0);
        let calls: u64 = tally.codes.values().sum();
        let ms = |p| percentile(&micros, p).map(|v| (v * 1000.0).round() / 1000.0);
        let summary = serde_json::json!({
            "requests_per_s": (calls as f64 / args.seconds * 10.0).round() / 10.0,
            "ok_per_s": (ok as f64 / args.seconds * 10.0).round() / 10.0,
            "p50_ms": ms(50.0),
            "p99_ms": ms(99.0),
            "p99_9_ms": ms(99.9),
            "ok": ok,
            "errors": calls - ok,
            "codes": tally.codes,
            "client_cpu_share": (cpu / elapsed * 1000.0).round() / 1000.0,
        });
        println!("{summary}");
        Ok(())
    })
}
