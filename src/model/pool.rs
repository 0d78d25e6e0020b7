//! Inference off the async executor: a fixed set of worker threads, each owning one ONNX Runtime
//! session, fed by one bounded queue.
//!
//! `Session::run` takes `&mut self`, so sessions cannot be shared; one per worker means no lock
//! on the hot path. The queue is bounded: when every worker is busy and the queue is full, a
//! request is refused at once (503 with `Retry-After`) instead of piling up latency.
//!
//! Opt-in (`INFERENCE_INLINE_ROWS`), small requests skip the queue: for a model whose run takes
//! microseconds, that is less than handing the run to another thread and waking the caller
//! again. Such a request borrows one of a few spare sessions (one per HTTP worker) and runs on
//! the HTTP worker that received it; when none is free, or the request is larger, it goes
//! through the queue as above. Off by default, because it blocks an executor thread for the
//! length of the run, which for a large model would stall every connection of that worker.

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

struct Job {
    inputs: Vec<Tensor>,
    outputs: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Tensor>, String>>,
}

/// Handle to the worker threads; cheap to clone.
#[derive(Clone)]
pub struct InferencePool {
    sender: Sender<Job>,
    workers: usize,
    queue: usize,
    inline: Arc<Inline>,
}

/// Spare sessions for small requests run on the caller's thread.
struct Inline {
    sessions: Mutex<Vec<Session>>,
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
        session: &mut Session,
        inputs: Vec<Tensor>,
        outputs: &[String],
    ) -> Result<Vec<Tensor>, String> {
        let batch = batch_rows(&inputs);
        let started = Instant::now();
        let result = run_session(session, inputs, outputs);
        self.duration.observe(started.elapsed().as_secs_f64());
        if result.is_ok() {
            self.rows.inc_by(u64::try_from(batch).unwrap_or(0));
        }
        result
    }
}

/// Where small requests run.
pub struct InlineSessions {
    pub sessions: Vec<Session>,
    /// Requests of at most this many rows run inline; 0 sends every request to the workers.
    pub max_rows: usize,
}

impl InferencePool {
    /// Starts one thread per session.
    pub fn start(
        sessions: Vec<Session>,
        inline: InlineSessions,
        queue: usize,
        model: &str,
        metrics: &Metrics,
    ) -> Self {
        let workers = sessions.len();
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(queue);
        let measured = Measured::new(metrics, model);
        for (i, session) in sessions.into_iter().enumerate() {
            let receiver = receiver.clone();
            let measured = measured.clone();
            thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || worker(session, receiver, measured))
                // Failing to start a thread at start-up leaves nothing to serve with.
                .expect("spawn inference worker");
        }
        InferencePool {
            sender,
            workers,
            queue,
            inline: Arc::new(Inline {
                sessions: Mutex::new(inline.sessions),
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
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let Some(mut session) = taken else {
            return Err(inputs);
        };
        let result = self.inline.measured.run(&mut session, inputs, outputs);
        self.inline
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(session);
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

fn worker(mut session: Session, jobs: Receiver<Job>, measured: Measured) {
    while let Ok(job) = jobs.recv() {
        // A client that gave up no longer needs the answer.
        if job.reply.is_closed() {
            continue;
        }
        let result = measured.run(&mut session, job.inputs, &job.outputs);
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
