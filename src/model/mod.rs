//! The served model: where its bytes come from, its schema, and a pool of sessions that run it.

pub mod batch;
pub mod infer_body;
mod infer_scan;
pub mod inline;
pub mod json;
pub mod pool;
pub mod runtime;
pub mod schema;
pub mod tensor;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, ValueType};

use self::batch::Batching;
use self::inline::{Decision, InlinePolicy};
use self::pool::{InferencePool, InlineRunners, run_session};
use self::schema::{ModelSchema, SCHEMA_METADATA_KEY};
use self::tensor::{DataType, Tensor, TensorData, TensorSpec, returnable_outputs};
use crate::metrics::Metrics;

/// The built-in model, embedded so that the binary serves with no files around it.
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../../models/heart-disease/model.onnx");

/// The model's bytes and where they came from.
#[derive(Debug, Clone)]
pub struct ModelSource {
    pub bytes: std::borrow::Cow<'static, [u8]>,
    /// `built-in` or the file's path.
    pub origin: String,
    /// A `schema.json` found beside the file, used when the model carries no schema itself.
    pub sidecar_schema: Option<(PathBuf, String)>,
}

impl ModelSource {
    /// The embedded heart-disease model.
    pub fn builtin() -> Self {
        ModelSource {
            bytes: BUILTIN_MODEL.into(),
            origin: "built-in".into(),
            sidecar_schema: None,
        }
    }

    /// A model file; a `<stem>.schema.json` or `schema.json` beside it is its schema.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("MODEL_PATH={}: cannot read: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        let sidecar_schema = [
            dir.join(format!("{stem}.schema.json")),
            dir.join("schema.json"),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .map(|p| {
            std::fs::read_to_string(&p)
                .map(|text| (p.clone(), text))
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))
        })
        .transpose()?;
        Ok(ModelSource {
            bytes: bytes.into(),
            origin: path.display().to_string(),
            sidecar_schema,
        })
    }
}

/// Settings for sessions and the pool.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub name: String,
    pub workers: usize,
    pub queue: usize,
    /// Spare sessions for small requests run on the HTTP worker (one per HTTP worker).
    pub inline_sessions: usize,
    /// Which requests may run inline (see [`inline`]).
    pub inline: InlinePolicy,
    /// `BATCH_MAX_ROWS`: the most rows of joined requests; `None` (`auto`) measures (see
    /// [`batch`]).
    pub batch_max_rows: Option<usize>,
    /// The measured default's cap (`MAX_BATCH_ROWS`).
    pub batch_cap: usize,
    /// `BATCH_MAX_DELAY`.
    pub batch_max_delay: Duration,
}

/// The version a model whose file gives none (or 0) is served as: the built-in model's.
pub const UNVERSIONED: &str = "1";

/// A loaded, warmed-up model ready to serve.
#[derive(Clone)]
pub struct ServedModel {
    pub name: String,
    pub version: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub schema: Option<ModelSchema>,
    pub pool: InferencePool,
    pub load_time: Duration,
    /// Which requests run on the HTTP worker, as decided at load.
    pub inline: Decision,
    /// How queued requests are joined, as decided at load.
    pub batching: Batching,
}

/// One prediction of `/predict`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Prediction {
    /// Predicted class.
    pub label: i64,
    /// The class's name, when the schema names classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Probability of each class, in class order (see `GET /model`); `null` where the model
    /// produced NaN (inputs at the far ends of their ranges can do that), which JSON cannot carry.
    #[schema(value_type = Vec<Option<f64>>)]
    pub probabilities: Vec<f64>,
}

impl ServedModel {
    /// Creates the sessions, checks the schema against the graph, warms every session up and
    /// starts the workers. Blocking: call it off the async executor.
    pub fn load(
        environment: &ort::environment::Environment,
        source: &ModelSource,
        options: &LoadOptions,
        metrics: &Metrics,
    ) -> Result<Self, String> {
        let started = Instant::now();
        let workers = options.workers.max(1);
        let new = || {
            new_session(environment, &source.bytes)
                .map_err(|e| format!("model {}: {e}", source.origin))
        };
        let mut sessions = (0..workers).map(|_| new()).collect::<Result<Vec<_>, _>>()?;
        let first = &sessions[0];
        let inputs: Vec<TensorSpec> = first
            .inputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect();
        let outputs: Vec<TensorSpec> = first
            .outputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect();
        let metadata = first.metadata().map_err(|e| e.to_string())?;
        let version = metadata
            .version()
            .filter(|v| *v > 0)
            .map_or_else(|| UNVERSIONED.to_string(), |v| v.to_string());
        let embedded = metadata.custom(SCHEMA_METADATA_KEY);
        drop(metadata);
        let schema = match (embedded, &source.sidecar_schema) {
            (Some(text), _) => Some(ModelSchema::from_json(&text).map_err(|e| {
                format!(
                    "model {}: schema in metadata `{SCHEMA_METADATA_KEY}`: {e}",
                    source.origin
                )
            })?),
            (None, Some((path, text))) => {
                Some(ModelSchema::from_json(text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            (None, None) => None,
        };
        if let Some(schema) = &schema {
            check_schema_fits(schema, &inputs, &outputs).map_err(|e| {
                format!(
                    "model {}: schema does not fit the graph: {e}",
                    source.origin
                )
            })?;
        }
        let warm = |session: &mut Session| {
            warm_up(session, &inputs, &outputs)
                .map_err(|e| format!("model {}: warm-up run failed: {e}", source.origin))
        };
        for session in &mut sessions {
            warm(session)?;
        }
        let fixed_rows = inputs
            .first()
            .and_then(|i| i.shape.first())
            .and_then(|d| usize::try_from(*d).ok());
        // The typical run of `rows` dummy rows: what the inline and batching decisions weigh.
        let wanted = returnable_outputs(&outputs);
        let mut time_rows = |rows| {
            inline::typical_run(|| {
                run_session(&mut sessions[0], dummy_inputs(&inputs, rows)?, &wanted).map(drop)
            })
        };
        let batching = batching(options, fixed_rows, &mut time_rows)
            .map_err(|e| format!("model {}: {e}", source.origin))?;
        let decision = inline::decide(
            inline_policy(options.inline, batching),
            fixed_rows,
            &mut time_rows,
        )
        .map_err(|e| format!("model {}: timing runs failed: {e}", source.origin))?;
        let mut spare = Vec::new();
        if decision.max_rows > 0 {
            for _ in 0..options.inline_sessions {
                let mut session = new()?;
                warm(&mut session)?;
                spare.push(session);
            }
        }
        let inline = InlineRunners {
            runners: spare,
            max_rows: decision.max_rows,
        };
        let pool = InferencePool::start(
            sessions,
            inline,
            batching,
            options.queue,
            &options.name,
            metrics,
        );
        Ok(ServedModel {
            name: options.name.clone(),
            version,
            inputs,
            outputs,
            schema,
            pool,
            load_time: started.elapsed(),
            inline: decision,
            batching,
        })
    }

    /// Runs rows of features (already checked against the schema) and reads label and
    /// probabilities back.
    pub async fn predict(
        &self,
        schema: &ModelSchema,
        rows: Vec<Vec<f64>>,
    ) -> Result<Vec<Prediction>, pool::PoolError> {
        let count = rows.len();
        let width = schema.features.len();
        let data = match schema.input.datatype.as_str() {
            "FP64" => TensorData::F64(rows.into_iter().flatten().collect()),
            _ => TensorData::F32(rows.into_iter().flatten().map(|x| x as f32).collect()),
        };
        let input = Tensor {
            name: schema.input.tensor.clone(),
            shape: vec![count as i64, width as i64],
            data,
        };
        let wanted = vec![
            schema.outputs.label.tensor.clone(),
            schema.outputs.probabilities.tensor.clone(),
        ];
        let out = self.pool.run(vec![input], wanted).await?;
        let (labels, probabilities) = (&out[0], &out[1]);
        let classes = probabilities.data.len().checked_div(count).unwrap_or(0);
        Ok((0..count)
            .map(|row| {
                let label = labels.data.get_f64(row).unwrap_or(f64::NAN) as i64;
                Prediction {
                    label,
                    class: schema.class_name(label).map(str::to_string),
                    probabilities: (0..classes)
                        .filter_map(|c| probabilities.data.get_f64(row * classes + c))
                        .collect(),
                }
            })
            .collect())
    }
}

/// Which requests may run inline: as set, except that `auto` queues every request while
/// batching is on. A request run inline can never join others, and at saturation joining saves
/// more than inline runs do (bench/RESULTS.md: one-row infer at 64 connections 66,300 requests/s
/// queued and joined against 54,200 inline with batching off, one run; inline runs padded to two
/// rows with batching on made 42,300 in an earlier run); an idle server pays the hand-off to a
/// worker, tens of microseconds. A row count set by hand is kept.
fn inline_policy(set: InlinePolicy, batching: Batching) -> InlinePolicy {
    match set {
        InlinePolicy::Auto if batching.on() => InlinePolicy::Off,
        other => other,
    }
}

/// How queued requests are joined: `BATCH_MAX_ROWS` as set, or measured with `cost(rows)` (the
/// typical run of that many rows). A model whose first dimension is fixed cannot be joined:
/// off by default, and an error when `BATCH_MAX_ROWS` asks for more.
fn batching(
    options: &LoadOptions,
    fixed_rows: Option<usize>,
    cost: impl FnMut(usize) -> Result<Duration, String>,
) -> Result<Batching, String> {
    let max_rows = match (options.batch_max_rows, fixed_rows) {
        (Some(rows), Some(fixed)) if rows > 1 => {
            return Err(format!(
                "BATCH_MAX_ROWS={rows}: the model's first dimension is fixed at {fixed}, so requests \
                 cannot be joined; set BATCH_MAX_ROWS=1"
            ));
        }
        (Some(rows), _) => rows,
        (None, Some(_)) => 1,
        (None, None) => batch::efficient_rows(options.batch_cap, cost)
            .map_err(|e| format!("timing runs failed: {e}"))?,
    };
    Ok(Batching {
        max_rows,
        max_delay: options.batch_max_delay,
    })
}

/// A session with the server's settings: one intra-op thread, full graph optimisation.
pub fn new_session(
    environment: &ort::environment::Environment,
    bytes: &[u8],
) -> Result<Session, String> {
    let text = |e: ort::Error<_>| e.to_string();
    Session::builder(environment)
        .map_err(|e| e.to_string())?
        // Parallelism comes from several sessions, one per worker; threads inside one run would
        // only fight them for the same cores.
        .with_intra_threads(1)
        .map_err(text)?
        .with_inter_threads(1)
        .map_err(text)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(text)?
        .commit_from_memory(bytes)
        .map_err(|e| e.to_string())
}

fn spec(name: &str, dtype: &ValueType) -> TensorSpec {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => TensorSpec {
            name: name.to_string(),
            datatype: v2_name(*ty),
            shape: shape.to_vec(),
        },
        other => TensorSpec {
            name: name.to_string(),
            datatype: format!("{other:?}"),
            shape: vec![],
        },
    }
}

fn v2_name(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float32 => DataType::Fp32.as_v2().into(),
        TensorElementType::Float64 => DataType::Fp64.as_v2().into(),
        TensorElementType::Int32 => DataType::Int32.as_v2().into(),
        TensorElementType::Int64 => DataType::Int64.as_v2().into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

fn check_schema_fits(
    schema: &ModelSchema,
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
) -> Result<(), String> {
    let input = inputs
        .iter()
        .find(|i| i.name == schema.input.tensor)
        .ok_or_else(|| format!("no input tensor `{}`", schema.input.tensor))?;
    if input.datatype != schema.input.datatype {
        return Err(format!(
            "input `{}` is {}, schema says {}",
            input.name, input.datatype, schema.input.datatype
        ));
    }
    if input.shape.len() != 2
        || (input.shape[1] >= 0 && input.shape[1] as usize != schema.features.len())
    {
        return Err(format!(
            "input `{}` has shape {:?}, schema has {} features",
            input.name,
            input.shape,
            schema.features.len()
        ));
    }
    if inputs.len() != 1 {
        return Err("a schema model must have exactly one input".into());
    }
    for name in [
        &schema.outputs.label.tensor,
        &schema.outputs.probabilities.tensor,
    ] {
        if !outputs.iter().any(|o| &o.name == name) {
            return Err(format!("no output tensor `{name}`"));
        }
    }
    Ok(())
}

/// One run with zeros (free dimensions set to 1) so the first real request pays no one-off cost,
/// and so a model that cannot run fails the load instead of the first request.
fn warm_up(
    session: &mut Session,
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
) -> Result<(), String> {
    run_session(
        session,
        dummy_inputs(inputs, 1)?,
        &returnable_outputs(outputs),
    )
    .map(drop)
}

/// Zeros for every input: `rows` in a free first dimension, 1 in every other free one.
fn dummy_inputs(inputs: &[TensorSpec], rows: usize) -> Result<Vec<Tensor>, String> {
    inputs
        .iter()
        .map(|spec| {
            let shape: Vec<i64> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(axis, d)| match (*d < 0, axis) {
                    (true, 0) => rows as i64,
                    (true, _) => 1,
                    (false, _) => *d,
                })
                .collect();
            let n = shape.iter().product::<i64>().max(0) as usize;
            let data = match spec.v2_type() {
                Some(DataType::Fp32) => TensorData::F32(vec![0.0; n]),
                Some(DataType::Fp64) => TensorData::F64(vec![0.0; n]),
                Some(DataType::Int32) => TensorData::I32(vec![0; n]),
                Some(DataType::Int64) => TensorData::I64(vec![0; n]),
                None => {
                    return Err(format!(
                        "input `{}` has type {}, which the V2 routes do not carry",
                        spec.name, spec.datatype
                    ));
                }
            };
            Ok(Tensor {
                name: spec.name.clone(),
                shape,
                data,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(batch_max_rows: Option<usize>) -> LoadOptions {
        LoadOptions {
            name: "m".into(),
            workers: 1,
            queue: 1,
            inline_sessions: 0,
            inline: InlinePolicy::Off,
            batch_max_rows,
            batch_cap: 1024,
            batch_max_delay: Duration::from_millis(3),
        }
    }

    /// A fixed cost of 10 µs and 1 µs a row.
    fn cost(rows: usize) -> Result<Duration, String> {
        Ok(Duration::from_micros(10 + rows as u64))
    }

    #[test]
    fn auto_inline_queues_everything_while_batching_is_on() {
        let on = Batching {
            max_rows: 64,
            max_delay: Duration::ZERO,
        };
        let off = Batching { max_rows: 1, ..on };
        assert_eq!(inline_policy(InlinePolicy::Auto, on), InlinePolicy::Off);
        assert_eq!(inline_policy(InlinePolicy::Auto, off), InlinePolicy::Auto);
        assert_eq!(
            inline_policy(InlinePolicy::Rows(4), on),
            InlinePolicy::Rows(4)
        );
        assert_eq!(inline_policy(InlinePolicy::Off, off), InlinePolicy::Off);
    }

    #[test]
    fn batching_is_measured_set_or_refused_for_a_fixed_first_dimension() {
        let measured = batching(&options(None), None, cost).unwrap();
        assert_eq!(measured.max_rows, 64, "10 + 128 µs is 1.86 times 10 + 64");
        assert_eq!(measured.max_delay, Duration::from_millis(3));
        assert_eq!(batching(&options(Some(5)), None, cost).unwrap().max_rows, 5);
        let never = |_| Err::<Duration, _>("not to be measured".to_string());
        assert_eq!(
            batching(&options(None), Some(1), never).unwrap().max_rows,
            1
        );
        assert_eq!(
            batching(&options(Some(1)), Some(4), never)
                .unwrap()
                .max_rows,
            1
        );
        let refused = batching(&options(Some(8)), Some(1), never).unwrap_err();
        assert!(refused.starts_with("BATCH_MAX_ROWS=8: "), "{refused}");
        assert!(refused.contains("fixed at 1"), "{refused}");
    }
}
