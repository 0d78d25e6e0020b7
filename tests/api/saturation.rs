//! Back-pressure of the inference pool, in process: with every worker busy and the queue full,
//! a request is refused at once instead of waiting without bound.

use std::sync::OnceLock;

use chaos_inference::metrics::Metrics;
use chaos_inference::model::pool::PoolError;
use chaos_inference::model::runtime;
use chaos_inference::model::tensor::{Tensor, TensorData};
use chaos_inference::model::{LoadOptions, ModelSource, ServedModel};

/// The built-in model with one inference worker and a queue of one.
fn one_worker_one_slot(inline_sessions: usize, inline_max_rows: usize) -> ServedModel {
    // ONNX Runtime is initialised once per process; the tests here share it.
    static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
    let environment = ENVIRONMENT.get_or_init(|| {
        let library = runtime::discover(None).expect("run scripts/fetch-onnxruntime.sh");
        runtime::init_environment(&library.path).unwrap()
    });
    let options = LoadOptions {
        name: "heart-disease".into(),
        workers: 1,
        queue: 1,
        inline_sessions,
        inline_max_rows,
    };
    ServedModel::load(
        environment,
        &ModelSource::builtin(),
        &options,
        &Metrics::new(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_instead_of_waiting() {
    let model = one_worker_one_slot(0, 0);
    // 20,000 rows keep the one worker busy for milliseconds per run: far longer than it takes
    // to submit every request below.
    let rows = 20_000;
    let batch = || Tensor {
        name: "input".into(),
        shape: vec![rows, 13],
        data: TensorData::F32(vec![1.0; rows as usize * 13]),
    };
    let runs: Vec<_> = (0..16)
        .map(|_| {
            let pool = model.pool.clone();
            let input = batch();
            tokio::spawn(async move { pool.run(vec![input], vec!["label".into()]).await })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for run in runs {
        match run.await.unwrap() {
            Ok(out) => {
                assert_eq!(out[0].shape, vec![rows]);
                ok += 1;
            }
            Err(PoolError::Saturated {
                workers: 1,
                queue: 1,
            }) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(ok >= 1, "the worker must keep serving");
    assert!(refused >= 1, "a full queue must refuse ({ok} ran)");
    // Once the burst is over, the pool serves again.
    assert!(
        model
            .pool
            .run(vec![batch()], vec!["label".into()])
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_requests_run_inline_while_the_queue_is_full() {
    let model = one_worker_one_slot(1, 16);
    let tensor = |rows: usize| Tensor {
        name: "input".into(),
        shape: vec![rows as i64, 13],
        data: TensorData::F32(vec![1.0; rows * 13]),
    };
    // Saturate: submit batches of 1,000,000 rows (tens of milliseconds each) by polling each
    // future once, until two are pending at the same time: with one worker and a queue of one,
    // one is running and the other fills the queue.
    let big = || {
        Box::pin(
            model
                .pool
                .run(vec![tensor(1_000_000)], vec!["label".into()]),
        )
    };
    let mut pending = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pending.len() < 2 {
        let mut run = big();
        match futures_util::FutureExt::now_or_never(run.as_mut()) {
            None => pending.push(run),
            Some(Err(PoolError::Saturated { .. })) => {}
            Some(other) => panic!("unexpected {:?}", other.map(|t| t.len())),
        }
        assert!(std::time::Instant::now() < deadline, "never saturated");
    }
    // A request above the inline limit is refused now: the queue is full.
    assert!(matches!(
        model.pool.run(vec![tensor(17)], vec!["label".into()]).await,
        Err(PoolError::Saturated { .. })
    ));
    // Now, with the queue full, small requests still run: inline, on this thread.
    for _ in 0..20 {
        let out = model
            .pool
            .run(vec![tensor(4)], vec!["label".into()])
            .await
            .expect("a small request runs inline, never refused");
        assert_eq!(out[0].shape, vec![4]);
    }
    for run in pending {
        run.await.expect("the large batches complete");
    }
    // 17 rows is above the inline limit: it went through the queue above, and still does.
    assert_eq!(
        model
            .pool
            .run(vec![tensor(17)], vec!["label".into()])
            .await
            .unwrap()[0]
            .shape,
        vec![17]
    );
}
