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
//!
//! A worker that takes a request from the queue joins the requests queued behind it that fit
//! ([`super::batch`], `BATCH_MAX_ROWS` and `BATCH_MAX_DELAY`) into one run and hands each its
//! own rows of the outputs. A joined run that fails is run again request by request, so only a
//! request that fails alone gets an error, and each gets its own. While joining is on, a run of
//! one row is made as two (the row twice): ONNX Runtime computes a lone row with other kernels
//! (a matrix-vector product) than a batch, which round differently in the last bits, and a row's
//! answer must not depend on whether others happened to share its run.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use ort::session::Session;
use ort::value::{DynValue, TensorElementType, ValueType};
use tokio::sync::oneshot;

use super::batch::{self, Batching};
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
    queued: Instant,
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
    max_rows: usize,
    measured: Measured,
}

/// Runs sessions and records each run: its duration, its requests and rows, and, when it
/// succeeds, its rows inferred.
#[derive(Clone)]
struct Measured {
    duration: prometheus::Histogram,
    rows: prometheus::IntCounter,
    batch_requests: prometheus::Histogram,
    batch_rows: prometheus::Histogram,
    queue_wait: prometheus::Histogram,
    /// Run one-row requests as two rows (while joining is on).
    pad_single_rows: bool,
}

impl Measured {
    fn new(metrics: &Metrics, model: &str, batching: Batching) -> Self {
        Measured {
            pad_single_rows: batching.on(),
            duration: metrics.model_run_duration.with_label_values(&[model]),
            rows: metrics.model_rows.with_label_values(&[model]),
            batch_requests: metrics.batch_requests.with_label_values(&[model]),
            batch_rows: metrics.batch_rows.with_label_values(&[model]),
            queue_wait: metrics.queue_wait.with_label_values(&[model]),
        }
    }

    /// One run of `requests` joined requests.
    fn run(
        &self,
        runner: &mut impl Runner,
        inputs: Vec<Tensor>,
        outputs: &[String],
        requests: usize,
    ) -> Result<Vec<Tensor>, String> {
        let rows = batch::rows_of(&inputs);
        self.batch_requests.observe(requests as f64);
        self.batch_rows.observe(rows as f64);
        if rows == 1 && self.pad_single_rows {
            let twice = batch::join(vec![inputs.clone(), inputs.clone()]);
            let halves = batch::split(self.timed(runner, twice, outputs, 1)?, &[1, 1]);
            if let Some(first) = halves.and_then(|h| h.into_iter().next()) {
                return Ok(first);
            }
            // Not one output row per input row: the row alone answers.
        }
        self.timed(runner, inputs, outputs, rows)
    }

    fn timed(
        &self,
        runner: &mut impl Runner,
        inputs: Vec<Tensor>,
        outputs: &[String],
        rows: usize,
    ) -> Result<Vec<Tensor>, String> {
        let started = Instant::now();
        let result = runner.run(inputs, outputs);
        self.duration.observe(started.elapsed().as_secs_f64());
        if result.is_ok() {
            self.rows.inc_by(rows as u64);
        }
        result
    }

    /// Runs queued jobs, one alone or several joined, and answers each.
    fn run_jobs(&self, runner: &mut impl Runner, jobs: Vec<Job>) {
        let now = Instant::now();
        for job in &jobs {
            self.queue_wait
                .observe(now.duration_since(job.queued).as_secs_f64());
        }
        if jobs.len() == 1 {
            let job = jobs.into_iter().next().expect("one job");
            let result = self.run(runner, job.inputs, &job.outputs, 1);
            let _ = job.reply.send(result);
            return;
        }
        let rows: Vec<usize> = jobs.iter().map(|job| batch::rows_of(&job.inputs)).collect();
        let outputs = jobs[0].outputs.clone();
        let (inputs, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.inputs, j.reply)).unzip();
        // Copied into the joined run: the requests' own inputs are kept in case they must run
        // again alone.
        let joined = batch::join(inputs.clone());
        let parts = self
            .run(runner, joined, &outputs, replies.len())
            .ok()
            .and_then(|out| batch::split(out, &rows));
        match parts {
            Some(parts) => {
                for (reply, part) in replies.into_iter().zip(parts) {
                    let _ = reply.send(Ok(part));
                }
            }
            // Failed, or outputs that are not one row per input row: each request alone, so
            // each gets its own answer or error.
            None => {
                for (reply, inputs) in replies.into_iter().zip(inputs) {
                    let _ = reply.send(self.run(runner, inputs, &outputs, 1));
                }
            }
        }
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
        batching: Batching,
        queue: usize,
        model: &str,
        metrics: &Metrics,
    ) -> Self {
        let count = workers.len();
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(queue);
        let measured = Measured::new(metrics, model, batching);
        for (i, runner) in workers.into_iter().enumerate() {
            let receiver = receiver.clone();
            let measured = measured.clone();
            thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || worker(runner, receiver, measured, batching))
                // Failing to start a thread at start-up leaves nothing to serve with.
                .expect("spawn inference worker");
        }
        InferencePool {
            sender,
            workers: count,
            queue,
            inline: Arc::new(Inline {
                runners: Mutex::new(inline.runners),
                max_rows: inline.max_rows,
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
        if batch::rows_of(&inputs) > self.inline.max_rows {
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
        let result = self.inline.measured.run(&mut runner, inputs, outputs, 1);
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
            queued: Instant::now(),
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

fn worker(mut runner: impl Runner, jobs: Receiver<Job>, measured: Measured, batching: Batching) {
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        // A client that gave up no longer needs the answer.
        if first.reply.is_closed() {
            continue;
        }
        let mut run = vec![first];
        if batching.on() {
            next = gather(&mut run, &jobs, batching);
        }
        measured.run_jobs(&mut runner, run);
    }
}

/// Adds to `run` the queued jobs that fit it: the same outputs, joinable inputs, rows within
/// the limit; waits for more until `max_delay` after the first was queued. Returns the job that
/// did not fit, which starts the next run.
fn gather(run: &mut Vec<Job>, jobs: &Receiver<Job>, batching: Batching) -> Option<Job> {
    let mut rows = batch::rows_of(&run[0].inputs);
    let deadline = run[0].queued + batching.max_delay;
    while rows < batching.max_rows {
        let job = match jobs.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => match jobs.recv_deadline(deadline) {
                Ok(job) => job,
                Err(_) => return None,
            },
        };
        if job.reply.is_closed() {
            continue;
        }
        let first = &run[0];
        let added = batch::rows_of(&job.inputs);
        if rows + added > batching.max_rows
            || job.outputs != first.outputs
            || !batch::joinable(&first.inputs, &job.inputs)
        {
            return Some(job);
        }
        rows += added;
        run.push(job);
    }
    None
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

    use std::time::Duration;

    /// A runner that reports the rows of each run it starts and then waits until the test opens
    /// its gate; `None` runs at once. Outputs echo the inputs (an identity model), so a request
    /// that gets its own inputs back got its own rows; a negative input fails the run.
    struct Gated {
        started: Sender<i64>,
        gate: Option<Receiver<()>>,
    }

    impl Runner for Gated {
        fn run(&mut self, inputs: Vec<Tensor>, _: &[String]) -> Result<Vec<Tensor>, String> {
            let _ = self.started.send(inputs[0].shape[0]);
            if let Some(gate) = &self.gate {
                gate.recv().map_err(|e| e.to_string())?;
            }
            if (0..inputs[0].data.len()).any(|i| inputs[0].data.get_f64(i) < Some(0.0)) {
                return Err("a negative input".into());
            }
            Ok(inputs)
        }
    }

    fn rows(n: i64) -> Vec<Tensor> {
        request(n, 0.0)
    }

    /// `n` rows of two values counting up from `first`.
    fn request(n: i64, first: f32) -> Vec<Tensor> {
        vec![Tensor {
            name: "input".into(),
            shape: vec![n, 2],
            data: TensorData::F32((0..2 * n).map(|i| first + i as f32).collect()),
        }]
    }

    /// One worker, held when `held`, a queue of `queue`, `inline` free runners for requests of
    /// up to 16 rows; returns the rows of each run the worker starts and the worker's gate.
    fn pool(
        held: bool,
        inline: usize,
        batching: Batching,
        queue: usize,
    ) -> (InferencePool<Gated>, Receiver<i64>, Sender<()>) {
        let (started_tx, started) = unbounded();
        let (open, gate) = unbounded();
        let worker = Gated {
            started: started_tx.clone(),
            gate: held.then_some(gate),
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
            batching,
            queue,
            "m",
            &Metrics::new(),
        );
        (pool, started, open)
    }

    /// One held worker, a queue of one, no batching.
    fn held_pool(inline: usize) -> (InferencePool<Gated>, Receiver<i64>, Sender<()>) {
        pool(true, inline, Batching::OFF, 1)
    }

    type Pending = tokio::task::JoinHandle<Result<Vec<Tensor>, PoolError>>;

    fn submit(pool: &InferencePool<Gated>, inputs: Vec<Tensor>, outputs: &[&str]) -> Pending {
        let pool = pool.clone();
        let outputs = outputs.iter().map(|o| o.to_string()).collect();
        tokio::spawn(async move { pool.run(inputs, outputs).await })
    }

    /// Queues `requests` behind a two-row request that holds the worker; returns the holder and
    /// the queued, once all are in the queue.
    async fn queue_behind_a_held_run(
        pool: &InferencePool<Gated>,
        started: &Receiver<i64>,
        requests: Vec<(Vec<Tensor>, &[&str])>,
    ) -> (Pending, Vec<Pending>) {
        let holder = submit(pool, request(2, 0.0), &[]);
        assert_eq!(started.recv().unwrap(), 2);
        let count = requests.len();
        let mut queued = Vec::new();
        for (inputs, outputs) in requests {
            queued.push(submit(pool, inputs, outputs));
            // One at a time, so the queue holds them in this order.
            while pool.sender.len() < queued.len() {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(pool.sender.len(), count);
        (holder, queued)
    }

    /// Submits a request that occupies the worker, then one that fills the queue.
    async fn saturate(
        pool: &InferencePool<Gated>,
        started: &Receiver<i64>,
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
            assert_eq!(run.await.unwrap().unwrap()[0].shape, vec![100, 2]);
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
            assert_eq!(out.unwrap()[0].shape, vec![4, 2], "inline, never refused");
        }
        for _ in 0..2 {
            open.send(()).unwrap();
        }
        for run in held {
            run.await.unwrap().unwrap();
        }
    }

    const JOIN_8: Batching = Batching {
        max_rows: 8,
        max_delay: Duration::ZERO,
    };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_queued_behind_a_run_are_joined_and_each_gets_its_own_rows() {
        let (pool, started, open) = pool(true, 0, JOIN_8, 16);
        let sent = [request(2, 10.0), request(3, 20.0), request(4, 30.0)];
        let (holder, queued) = queue_behind_a_held_run(
            &pool,
            &started,
            sent.iter().map(|r| (r.clone(), &[][..])).collect(),
        )
        .await;
        for _ in 0..3 {
            open.send(()).unwrap();
        }
        holder.await.unwrap().unwrap();
        // 2 + 3 rows joined; 4 more would pass 8, so that request starts the next run.
        assert_eq!(started.recv().unwrap(), 5);
        assert_eq!(started.recv().unwrap(), 4);
        for (pending, sent) in queued.into_iter().zip(sent) {
            assert_eq!(pending.await.unwrap().unwrap(), sent, "its own rows back");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_requests_for_the_same_outputs_and_row_shape_are_joined() {
        let (pool, started, open) = pool(true, 0, JOIN_8, 16);
        let mut wide = request(1, 5.0);
        wide[0].shape = vec![1, 1];
        wide[0].data = TensorData::F32(vec![5.0]);
        let (holder, queued) = queue_behind_a_held_run(
            &pool,
            &started,
            vec![
                (request(2, 1.0), &["a"][..]),
                (request(2, 2.0), &["a"][..]),
                (request(3, 3.0), &["b"][..]),
                (wide, &["b"][..]),
            ],
        )
        .await;
        for _ in 0..4 {
            open.send(()).unwrap();
        }
        holder.await.unwrap().unwrap();
        let runs: Vec<i64> = (0..3).map(|_| started.recv().unwrap()).collect();
        // The one-row request runs as two rows (see the module's notes).
        assert_eq!(
            runs,
            vec![4, 3, 2],
            "the two for `a` joined; `b` and the narrower one alone"
        );
        for pending in queued {
            pending.await.unwrap().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_joined_run_is_run_again_alone_and_fails_only_the_failing_request() {
        let (pool, started, open) = pool(true, 0, JOIN_8, 16);
        let sent = [request(1, 1.0), request(1, -1.0), request(2, 5.0)];
        let (holder, queued) = queue_behind_a_held_run(
            &pool,
            &started,
            sent.iter().map(|r| (r.clone(), &[][..])).collect(),
        )
        .await;
        for _ in 0..5 {
            open.send(()).unwrap();
        }
        holder.await.unwrap().unwrap();
        let runs: Vec<i64> = (0..4).map(|_| started.recv().unwrap()).collect();
        // Alone, each one-row request runs as two rows.
        assert_eq!(runs, vec![4, 2, 2, 2], "joined, failed, then each alone");
        let mut answers = Vec::new();
        for pending in queued {
            answers.push(pending.await.unwrap());
        }
        assert_eq!(answers[0].as_ref().unwrap(), &sent[0]);
        assert!(
            matches!(&answers[1], Err(PoolError::Runtime(e)) if e == "a negative input"),
            "{:?}",
            answers[1]
        );
        assert_eq!(answers[2].as_ref().unwrap(), &sent[2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_a_delay_a_request_waits_that_long_for_others_and_those_that_come_join() {
        let delay = Duration::from_millis(400);
        let (pool, started, _) = pool(
            false,
            0,
            Batching {
                max_rows: 8,
                max_delay: delay,
            },
            16,
        );
        let alone = Instant::now();
        let answer = submit(&pool, request(1, 7.0), &[]).await.unwrap().unwrap();
        assert!(alone.elapsed() >= delay, "waited {:?}", alone.elapsed());
        assert_eq!(started.recv().unwrap(), 2, "one row, run as two");
        assert_eq!(answer, request(1, 7.0), "the first of the two rows back");
        // Two sent together: the second comes well inside the first's delay.
        let pair = [
            submit(&pool, request(1, 0.0), &[]),
            submit(&pool, request(2, 0.0), &[]),
        ];
        for pending in pair {
            pending.await.unwrap().unwrap();
        }
        assert_eq!(started.recv().unwrap(), 3);
        // Without a delay a lone request does not wait: the held-worker tests above show it
        // runs as soon as the worker is free, joined with nothing.
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batching_off_runs_each_queued_request_alone() {
        let (pool, started, open) = pool(true, 0, Batching::OFF, 16);
        let (holder, queued) = queue_behind_a_held_run(
            &pool,
            &started,
            vec![(request(1, 1.0), &[][..]), (request(1, 2.0), &[][..])],
        )
        .await;
        for _ in 0..3 {
            open.send(()).unwrap();
        }
        holder.await.unwrap().unwrap();
        assert_eq!(
            (started.recv().unwrap(), started.recv().unwrap()),
            (1, 1),
            "alone, and a row run as one row"
        );
        for pending in queued {
            pending.await.unwrap().unwrap();
        }
    }
}
