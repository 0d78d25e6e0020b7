//! The inference ceiling: ONNX Runtime's in-process time for one row of the built-in model,
//! through the same session settings and tensor conversion the server uses, without HTTP or JSON.
//!
//!     cargo run --release --example ort_one_row [RUNS]
//!
//! Prints JSON: runs, mean and p50/p99 microseconds per run.

use std::time::Instant;

use chaos_inference::model::pool::run_session;
use chaos_inference::model::runtime;
use chaos_inference::model::schema::ModelSchema;
use chaos_inference::model::tensor::{Tensor, TensorData};

fn main() -> Result<(), String> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let library = runtime::discover(None)?;
    let environment = runtime::init_environment(&library.path)?;
    let mut session =
        chaos_inference::model::new_session(&environment, chaos_inference::model::BUILTIN_MODEL)?;
    let schema = ModelSchema::from_json(include_str!("../models/heart-disease/schema.json"))?;
    let record = serde_json::from_str(include_str!("../models/heart-disease/example.json"))
        .map_err(|e| e.to_string())?;
    let (rows, _) = schema
        .rows_from_body(&record, 1)
        .map_err(|e| e.to_string())?;
    let row: Vec<f32> = rows[0].iter().map(|x| *x as f32).collect();
    let wanted = vec!["label".to_string(), "probabilities".to_string()];
    let input = || Tensor {
        name: "input".into(),
        shape: vec![1, 13],
        data: TensorData::F32(row.clone()),
    };
    for _ in 0..1000 {
        run_session(&mut session, vec![input()], &wanted)?;
    }
    let mut times = Vec::with_capacity(runs);
    let started = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        run_session(&mut session, vec![input()], &wanted)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mean = started.elapsed().as_secs_f64() * 1e6 / runs as f64;
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((runs as f64 * q) as usize).min(runs - 1)];
    println!(
        "{{\"runs\": {runs}, \"mean_us\": {mean:.2}, \"p50_us\": {:.2}, \"p99_us\": {:.2}}}",
        at(0.5),
        at(0.99)
    );
    Ok(())
}
