//! Inference off the async executor: a fixed set of worker threads, each owning one ONNX Runtime
//! session, fed by one bounded queue.
//!
//! `Session::run` takes `&mut self`, so sessions cannot be shared; one per worker means no lock
//! on the hot path. The queue is bounded: when every worker is busy and the queue is full, a
//! request is refused at once (503 with `Retry-After`) instead of piling up latency.
//!
//! Small requests may skip the queue (`INFERENCE_INLINE`, decided at load by
//! [`super::inline`]): for a model whose run takes microseconds, running it is cheaper than
//! handing it to another thread and waking the caller again. Such a request borrows one of a few
//! spare sessions (one per HTTP worker) and runs on the HTTP worker that received it; when none
//! is free, or the request is larger, it goes through the queue as above. A slow model gets no
//! inline runs, so it never holds an HTTP worker (and the probes it answers).

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ort::session::Session;
use ort::value::{DynValue, TensorElementType, ValueType};
use tokio::sync::oneshot;

use super::tensor::{Tensor, TensorData};
use crate::metrics::Metrics;

/// Why a run did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("all {workers} inference workers are busy and {queue} requests are queued")]
    Saturated { workers: usize, queue: usize },
    #[error("the inference workers have stopped")]
    Stopped,
    #[error("{0}")]
    Runtime(String),
}

/// What runs a model: an ONNX Runtime session in the server. The pool's own tests run it with
/// runners they hold on a gate, so every queueing rule is shown without racing a clock.
pub trait Runner: Send + 'static {
    /// Runs the inputs and returns the named outputs, in order.
    fn run(&mut self, inputs: Vec<Tensor>, outputs: &[String]) -> Result<Vec<Tensor>, String>;
}

impl Runner for Session {
    fn run(&mut self, inputs: Vec<Tensor>, outputs: &[String]) -> Result<Vec<Tensor>, String> {
        run_session(self, inputs, outputs)
    }
}

struct Job {
    inputs: Vec<Tensor>,
    outputs: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Tensor>, String>>,
}

/// Handle to the worker threads; cheap to clone.
pub struct InferencePool<R: Runner = Session> {
    sender: Sender<Job>,
    workers: usize,
    queue: usize,
    inline: Arc<Inline<R>>,
}

impl<R: Runner> Clone for InferencePool<R> {
    fn clone(&self) -> Self {
        InferencePool {
            sender: self.sender.clone(),
            workers: self.workers,
            queue: self.queue,
            inline: Arc::clone(&self.inline),
        }
    }
}

/// Spare runners for small requests run on the caller's thread.
struct Inline<R> {
    runners: Mutex<Vec<R>>,
    max_rows: i64,
    measured: Measured,
}

/// Runs sessions and records each run's duration and, when it succeeds, its rows.
#[derive(Clone)]
struct Measured {
    duration: prometheus::Histogram,
    rows: prometheus::IntCounter,
}

impl Measured {
    fn new(metrics: &Metrics, model: &str) -> Self {
        Measured {
            duration: metrics.model_run_duration.with_label_values(&[model]),
            rows: metrics.model_rows.with_label_values(&[model]),
        }
    }

    fn run(
        &self,
        runner: &mut impl Runner,
        inputs: Vec<Tensor>,
        outputs: &[String],
    ) -> Result<Vec<Tensor>, String> {
        let batch = batch_rows(&inputs);
        let started = Instant::now();
        let result = runner.run(inputs, outputs);
        self.duration.observe(started.elapsed().as_secs_f64());
        if result.is_ok() {
            self.rows.inc_by(u64::try_from(batch).unwrap_or(0));
        }
        result
    }
}

/// Where small requests run.
pub struct InlineRunners<R> {
    pub runners: Vec<R>,
    /// Requests of at most this many rows run inline; 0 sends every request to the workers.
    pub max_rows: usize,
}

impl<R: Runner> InferencePool<R> {
    /// Starts one thread per worker runner.
    pub fn start(
        workers: Vec<R>,
        inline: InlineRunners<R>,
        queue: usize,
        model: &str,
        metrics: &Metrics,
    ) -> Self {
        let count = workers.len();
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(queue);
        let measured = Measured::new(metrics, model);
        for (i, runner) in workers.into_iter().enumerate() {
            let receiver = receiver.clone();
            let measured = measured.clone();
            thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || worker(runner, receiver, measured))
                // Failing to start a thread at start-up leaves nothing to serve with.
                .expect("spawn inference worker");
        }
        InferencePool {
            sender,
            workers: count,
            queue,
            inline: Arc::new(Inline {
                runners: Mutex::new(inline.runners),
                max_rows: i64::try_from(inline.max_rows).unwrap_or(i64::MAX),
                measured,
            }),
        }
    }

    /// Runs a small request on this thread with a spare session; gives the request back when
    /// it is too large or every spare session is in use.
    fn try_inline(
        &self,
        inputs: Vec<Tensor>,
        outputs: &[String],
    ) -> Result<Result<Vec<Tensor>, String>, Vec<Tensor>> {
        if batch_rows(&inputs) > self.inline.max_rows {
            return Err(inputs);
        }
        // A poisoned lock only means a run panicked while another thread pushed or popped;
        // the Vec itself is always whole.
        let taken = self
            .inline
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let Some(mut runner) = taken else {
            return Err(inputs);
        };
        let result = self.inline.measured.run(&mut runner, inputs, outputs);
        self.inline
            .runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(runner);
        Ok(result)
    }

    /// Runs the model; `outputs` names the outputs to return, in order.
    pub async fn run(
        &self,
        inputs: Vec<Tensor>,
        outputs: Vec<String>,
    ) -> Result<Vec<Tensor>, PoolError> {
        let inputs = match self.try_inline(inputs, &outputs) {
            Ok(result) => return result.map_err(PoolError::Runtime),
            Err(inputs) => inputs,
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            outputs,
            reply,
        };
        match self.sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(PoolError::Saturated {
                    workers: self.workers,
                    queue: self.queue,
                });
            }
            Err(TrySendError::Disconnected(_)) => return Err(PoolError::Stopped),
        }
        answer
            .await
            .map_err(|_| PoolError::Stopped)?
            .map_err(PoolError::Runtime)
    }

    /// How many workers run sessions.
    pub fn workers(&self) -> usize {
        self.workers
    }
}

fn worker(mut runner: impl Runner, jobs: Receiver<Job>, measured: Measured) {
    while let Ok(job) = jobs.recv() {
        // A client that gave up no longer needs the answer.
        if job.reply.is_closed() {
            continue;
        }
        let result = measured.run(&mut runner, job.inputs, &job.outputs);
        let _ = job.reply.send(result);
    }
}

/// Rows of a request: the first dimension of its first input.
fn batch_rows(inputs: &[Tensor]) -> i64 {
    inputs
        .first()
        .and_then(|t| t.shape.first())
        .copied()
        .unwrap_or(1)
}

/// One synchronous run: tensors in, the named outputs copied out.
pub fn run_session(
    session: &mut Session,
    inputs: Vec<Tensor>,
    wanted: &[String],
) -> Result<Vec<Tensor>, String> {
    let mut values: Vec<(String, DynValue)> = Vec::with_capacity(inputs.len());
    for tensor in inputs {
        values.push((tensor.name, to_value(tensor.shape, tensor.data)?));
    }
    let outputs = session.run(values).map_err(|e| e.to_string())?;
    wanted
        .iter()
        .map(|name| {
            let value = outputs
                .get(name)
                .ok_or_else(|| format!("model produced no output `{name}`"))?;
            Ok(Tensor {
                name: name.clone(),
                shape: shape_of(value)?,
                data: from_value(value, name)?,
            })
        })
        .collect()
}

fn to_value(shape: Vec<i64>, data: TensorData) -> Result<DynValue, String> {
    let value = match data {
        TensorData::F32(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::F64(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::I32(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::I64(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
    };
    value.map_err(|e| e.to_string())
}

fn shape_of(value: &DynValue) -> Result<Vec<i64>, String> {
    match value.dtype() {
        ValueType::Tensor { shape, .. } => Ok(shape.to_vec()),
        other => Err(format!("output is a {other:?}, not a tensor")),
    }
}

fn from_value(value: &DynValue, name: &str) -> Result<TensorData, String> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(format!("output `{name}` is not a tensor"));
    };
    let err = |e: ort::Error| e.to_string();
    Ok(match ty {
        TensorElementType::Float32 => {
            TensorData::F32(value.try_extract_tensor::<f32>().map_err(err)?.1.to_vec())
        }
        TensorElementType::Float64 => {
            TensorData::F64(value.try_extract_tensor::<f64>().map_err(err)?.1.to_vec())
        }
        TensorElementType::Int32 => {
            TensorData::I32(value.try_extract_tensor::<i32>().map_err(err)?.1.to_vec())
        }
        TensorElementType::Int64 => {
            TensorData::I64(value.try_extract_tensor::<i64>().map_err(err)?.1.to_vec())
        }
        other => {
            return Err(format!(
                "output `{name}` has element type {other:?}, which the V2 routes do not carry"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{Receiver, Sender, unbounded};

    /// A runner that reports when it starts a run and then waits until the test opens its
    /// gate; `None` runs at once. Outputs echo the first input's shape.
    struct Gated {
        started: Sender<()>,
        gate: Option<Receiver<()>>,
    }

    impl Runner for Gated {
        fn run(&mut self, inputs: Vec<Tensor>, _: &[String]) -> Result<Vec<Tensor>, String> {
            let _ = self.started.send(());
            if let Some(gate) = &self.gate {
                gate.recv().map_err(|e| e.to_string())?;
            }
            Ok(inputs)
        }
    }

    fn rows(n: i64) -> Vec<Tensor> {
        vec![Tensor {
            name: "input".into(),
            shape: vec![n, 1],
            data: TensorData::F32(vec![0.0; n as usize]),
        }]
    }

    /// One held worker, a queue of one, `inline` free runners for requests of up to 16 rows.
    fn held_pool(inline: usize) -> (InferencePool<Gated>, Receiver<()>, Sender<()>) {
        let (started_tx, started) = unbounded();
        let (open, gate) = unbounded();
        let worker = Gated {
            started: started_tx.clone(),
            gate: Some(gate),
        };
        let runners = (0..inline)
            .map(|_| Gated {
                started: unbounded().0,
                gate: None,
            })
            .collect();
        let pool = InferencePool::start(
            vec![worker],
            InlineRunners {
                runners,
                max_rows: if inline > 0 { 16 } else { 0 },
            },
            1,
            "m",
            &Metrics::new(),
        );
        (pool, started, open)
    }

    /// Submits a request that occupies the worker, then one that fills the queue.
    async fn saturate(
        pool: &InferencePool<Gated>,
        started: &Receiver<()>,
    ) -> Vec<tokio::task::JoinHandle<Result<Vec<Tensor>, PoolError>>> {
        let submit = || {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(rows(100), vec![]).await })
        };
        let running = submit();
        started.recv().unwrap();
        let queued = submit();
        // The queued request is in the channel once the pool's sender reports it full.
        while !pool.sender.is_full() {
            tokio::task::yield_now().await;
        }
        vec![running, queued]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_and_serves_again_after() {
        let (pool, started, open) = held_pool(0);
        let held = saturate(&pool, &started).await;
        assert!(matches!(
            pool.run(rows(1), vec![]).await,
            Err(PoolError::Saturated {
                workers: 1,
                queue: 1
            })
        ));
        for _ in 0..2 {
            open.send(()).unwrap();
        }
        for run in held {
            assert_eq!(run.await.unwrap().unwrap()[0].shape, vec![100, 1]);
        }
        open.send(()).unwrap();
        assert!(pool.run(rows(1), vec![]).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_requests_run_inline_while_the_queue_is_full() {
        let (pool, started, open) = held_pool(1);
        let held = saturate(&pool, &started).await;
        assert!(
            matches!(
                pool.run(rows(17), vec![]).await,
                Err(PoolError::Saturated { .. })
            ),
            "above the inline limit: queued, and the queue is full"
        );
        for _ in 0..20 {
            let out = pool.run(rows(4), vec![]).await;
            assert_eq!(out.unwrap()[0].shape, vec![4, 1], "inline, never refused");
        }
        for _ in 0..2 {
            open.send(()).unwrap();
        }
        for run in held {
            run.await.unwrap().unwrap();
        }
    }
}
