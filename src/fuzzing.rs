//! Entry points for the code that reads untrusted bytes, shared by the `cargo fuzz` targets in
//! `fuzz/` and by the test that replays their corpus (`tests/fuzz_corpus.rs`).
//!
//! Each function takes arbitrary bytes the way the server would meet them and must return
//! without panicking, whatever the bytes; where a round trip must hold, it asserts it, so the
//! fuzzer finds wrong answers as well as crashes.

use std::str::FromStr;
use std::sync::OnceLock;

use clap::Parser;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::chaos::duration::{DurationRange, scale, show};
use crate::chaos::overrides::ChaosArgs;
use crate::chaos::plan::Plan;
use crate::chaos::profile::{BUILTINS, Profile};
use crate::config::{DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_JSON_DEPTH, DEFAULT_MAX_TENSOR_ELEMENTS};
use crate::http::body::{fast_path_allowed, parse_json};
use crate::model::infer_body::decode_infer_request;
use crate::model::json;
use crate::model::schema::ModelSchema;
use crate::model::tensor::{TensorLimits, TensorSpec};

/// A fuzz entry point: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` use them.
pub const TARGETS: &[(&str, Target)] = &[
    ("predict_body", predict_body),
    ("infer_body", infer_body),
    ("profile_file", profile_file),
    ("duration_range", duration_range),
    ("chaos_overrides", chaos_overrides),
    ("grpc_infer_request", grpc_infer_request),
];

/// The default limits, so the fuzzer meets the same bounds a default server has.
const MAX_JSON_DEPTH: usize = DEFAULT_MAX_JSON_DEPTH as usize;
const MAX_BATCH_ROWS: usize = DEFAULT_MAX_BATCH_ROWS as usize;
const MAX_TENSOR_ELEMENTS: usize = DEFAULT_MAX_TENSOR_ELEMENTS as usize;

fn builtin_schema() -> &'static ModelSchema {
    static SCHEMA: OnceLock<ModelSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        ModelSchema::from_json(include_str!("../models/heart-disease/schema.json"))
            .expect("the built-in schema parses")
    })
}

/// The built-in model's inputs and outputs, plus one input of each other V2 datatype, so every
/// conversion is reachable.
fn tensor_specs() -> (Vec<TensorSpec>, Vec<TensorSpec>) {
    let spec = TensorSpec::new;
    (
        vec![
            spec("input", "FP32", &[-1, 13]),
            spec("doubles", "FP64", &[-1]),
            spec("ints", "INT32", &[2, -1]),
            spec("longs", "INT64", &[-1, -1, 2]),
        ],
        vec![
            spec("label", "INT64", &[-1]),
            spec("probabilities", "FP32", &[-1, 2]),
            spec("map", "map(int64,tensor(float))", &[-1]),
        ],
    )
}

/// A `/predict` body: JSON parsing with the depth limit, then the schema's record checks. The
/// typed fast path answers only where the general path accepts, and with the same rows.
pub fn predict_body(data: &[u8]) {
    let fast = fast_path_allowed(data, MAX_JSON_DEPTH)
        .then(|| json::predict_rows(data, builtin_schema(), MAX_BATCH_ROWS))
        .flatten();
    let general = parse_json(data, MAX_JSON_DEPTH)
        .ok()
        .and_then(|body| builtin_schema().rows_from_body(&body, MAX_BATCH_ROWS).ok());
    if let Some(fast) = &fast {
        assert_eq!(Some(fast), general.as_ref(), "the fast path disagrees");
    }
    if let Some((rows, single)) = general {
        assert!(!rows.is_empty() && rows.len() <= MAX_BATCH_ROWS);
        assert!(!single || rows.len() == 1);
        let width = builtin_schema().features.len();
        assert!(
            rows.iter()
                .all(|r| r.len() == width && r.iter().all(|x| x.is_finite()))
        );
    }
}

/// A V2 infer body: JSON parsing with the depth limit, then tensor decoding against the specs.
/// The typed fast path answers only where the general path accepts, and with the same tensors.
pub fn infer_body(data: &[u8]) {
    let (inputs, outputs) = tensor_specs();
    let limits = TensorLimits {
        max_elements: MAX_TENSOR_ELEMENTS,
    };
    let fast = fast_path_allowed(data, MAX_JSON_DEPTH)
        .then(|| json::decode_infer_body(data, &inputs, &outputs, limits))
        .flatten();
    let general = parse_json(data, MAX_JSON_DEPTH)
        .ok()
        .and_then(|body| decode_infer_request(&body, &inputs, &outputs, limits).ok());
    if let Some(fast) = &fast {
        assert_eq!(Some(fast), general.as_ref(), "the fast path disagrees");
    }
    if let Some(request) = general {
        let total: usize = request.inputs.iter().map(|t| t.data.len()).sum();
        assert!(total <= MAX_TENSOR_ELEMENTS);
        for tensor in &request.inputs {
            let elements = tensor
                .shape
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
            assert_eq!(elements, Some(tensor.data.len()), "{}", tensor.name);
        }
    }
}

/// A gRPC `ModelInferRequest` as it arrives on the wire: protobuf decoding, then the same tensor
/// checks as REST. A request that decodes must decode to the same tensors when its typed
/// contents are sent as raw bytes instead.
pub fn grpc_infer_request(data: &[u8]) {
    use prost::Message;

    use crate::grpc::convert::{decode, encode};
    use crate::grpc::pb::ModelInferRequest;

    let Ok(request) = ModelInferRequest::decode(data) else {
        return;
    };
    let (inputs, outputs) = tensor_specs();
    let limits = TensorLimits {
        max_elements: MAX_TENSOR_ELEMENTS,
    };
    let Ok(decoded) = decode(&request, &inputs, &outputs, limits) else {
        return;
    };
    let total: usize = decoded.inputs.iter().map(|t| t.data.len()).sum();
    assert!(total <= MAX_TENSOR_ELEMENTS);
    if !request.raw_input_contents.is_empty() {
        return;
    }
    let mut raw = request.clone();
    (_, raw.raw_input_contents) = encode(decoded.inputs.clone(), true);
    for input in &mut raw.inputs {
        input.contents = None;
    }
    let again = decode(&raw, &inputs, &outputs, limits).expect("the raw form of a valid request");
    assert_eq!(
        again.inputs, decoded.inputs,
        "typed and raw decode differently"
    );
}

/// A profile file: TOML parsing and checking, then planning and rendering the plan.
pub fn profile_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(profile) = Profile::parse("fuzz", text) {
        plan_everything(&profile);
    }
}

/// A duration or `a..b` range: parsing, drawing, scaling, and printing that parses back.
pub fn duration_range(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(range) = DurationRange::from_str(text) else {
        return;
    };
    assert!(range.low <= range.high);
    let printed = range.to_string();
    assert_eq!(
        DurationRange::from_str(&printed).as_ref(),
        Ok(&range),
        "`{printed}` does not parse back"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let drawn = range.sample(&mut rng);
    assert!(range.low.as_millis() <= drawn.as_millis() && drawn <= range.high);
    for time_scale in [0.001, 1.0, 1000.0] {
        let _ = show(scale(drawn, time_scale));
    }
}

/// `CHAOS_*` variables, one `NAME=value` per line: parsed as the server parses them, applied to
/// the profile they name (built-ins only, so the fuzzer reads no files), then planned.
pub fn chaos_overrides(data: &[u8]) {
    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Overrides {
        #[command(flatten)]
        chaos: ChaosArgs,
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args = text.lines().filter_map(|line| {
        let (name, value) = line.split_once('=')?;
        let flag = name
            .strip_prefix("CHAOS_")?
            .to_ascii_lowercase()
            .replace('_', "-");
        Some(format!("--chaos-{flag}={value}"))
    });
    let Ok(Overrides { chaos }) = Overrides::try_parse_from(args) else {
        return;
    };
    if !BUILTINS.iter().any(|b| b.name == chaos.profile) {
        return;
    }
    if let Ok(profile) = chaos.resolve() {
        let plan = Plan::new(&profile, chaos.seed.unwrap_or(0), chaos.time_scale);
        let _ = plan.render(3);
        let _ = plan.timeline(3);
    }
}

fn plan_everything(profile: &Profile) {
    for (seed, time_scale) in [(0, 1.0), (u64::MAX, 0.001), (7, 1000.0)] {
        let plan = Plan::new(profile, seed, time_scale);
        assert_eq!(
            plan.render(3),
            Plan::new(profile, seed, time_scale).render(3)
        );
        let _ = plan.timeline(3);
    }
}
