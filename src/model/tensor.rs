//! Tensors as the V2 protocol carries them, and the checks that turn untrusted JSON into them.
//!
//! Pure code: no ONNX Runtime here, so every rule is unit-tested on its own.

use serde::Serialize;
use serde_json::Value;

use super::schema::FieldError;

/// The element types the V2 routes accept and return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Fp32,
    Fp64,
    Int32,
    Int64,
}

impl DataType {
    /// Every supported type, in the order the docs list them.
    pub const ALL: [DataType; 4] = [
        DataType::Fp32,
        DataType::Fp64,
        DataType::Int32,
        DataType::Int64,
    ];

    /// The V2 protocol's name for this type.
    pub fn as_v2(self) -> &'static str {
        match self {
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
        }
    }

    /// Parses a V2 datatype name.
    fn from_v2(name: &str) -> Option<Self> {
        DataType::ALL.into_iter().find(|t| t.as_v2() == name)
    }
}

/// A tensor's elements, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl TensorData {
    /// The element type.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::F32(_) => DataType::Fp32,
            TensorData::F64(_) => DataType::Fp64,
            TensorData::I32(_) => DataType::Int32,
            TensorData::I64(_) => DataType::Int64,
        }
    }

    /// How many elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f64 (exact for every supported type but very large INT64).
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        match self {
            TensorData::F32(v) => v.get(i).map(|x| f64::from(*x)),
            TensorData::F64(v) => v.get(i).copied(),
            TensorData::I32(v) => v.get(i).map(|x| f64::from(*x)),
            TensorData::I64(v) => v.get(i).map(|x| *x as f64),
        }
    }
}

impl Serialize for TensorData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TensorData::F32(v) => v.serialize(s),
            TensorData::F64(v) => v.serialize(s),
            TensorData::I32(v) => v.serialize(s),
            TensorData::I64(v) => v.serialize(s),
        }
    }
}

/// A named tensor with a concrete shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    pub data: TensorData,
}

/// What the model declares for one of its inputs or outputs.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TensorSpec {
    pub name: String,
    /// V2 datatype, or the ONNX type name when it is not one the V2 routes support.
    pub datatype: String,
    /// Dimensions; -1 where the model leaves a dimension free.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    pub fn new(name: &str, datatype: &str, shape: &[i64]) -> Self {
        TensorSpec {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        }
    }

    /// The V2 datatype, when supported.
    pub fn v2_type(&self) -> Option<DataType> {
        DataType::from_v2(&self.datatype)
    }
}

/// Bounds that protect the process from oversized requests.
#[derive(Debug, Clone, Copy)]
pub struct TensorLimits {
    pub max_elements: usize,
}

/// A decoded V2 infer request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferInput {
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// The outputs asked for, or `None` for all of them.
    pub outputs: Option<Vec<String>>,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// The checks every input passes, from JSON or protobuf: a model input of that name, its
/// datatype, its rank and fixed dimensions, and the element limit. Returns the datatype and how
/// many elements the shape holds.
pub fn check_input(
    i: usize,
    name: &str,
    datatype: &str,
    shape: &[i64],
    specs: &[TensorSpec],
    max_elements: usize,
) -> Result<(DataType, usize), FieldError> {
    let at = |key: &str| format!("inputs[{i}].{key}");
    let spec = specs.iter().find(|s| s.name == name).ok_or_else(|| {
        err(
            at("name"),
            format!(
                "model has no input `{name}`; inputs are {}",
                names(specs).join(", ")
            ),
        )
    })?;
    let datatype = DataType::from_v2(datatype).ok_or_else(|| {
        err(
            at("datatype"),
            format!("`{datatype}` is not supported; use FP32, FP64, INT32 or INT64"),
        )
    })?;
    if spec.v2_type() != Some(datatype) {
        return Err(err(
            at("datatype"),
            format!(
                "input `{name}` is {}, got {}",
                spec.datatype,
                datatype.as_v2()
            ),
        ));
    }
    if let Some(d) = shape.iter().find(|d| **d < 0) {
        return Err(err(
            at("shape"),
            format!("dimensions must be whole numbers >= 0, got {d}"),
        ));
    }
    check_shape(shape, &spec.shape, &|| at("shape"))?;
    let elements = element_count(shape)
        .filter(|n| *n <= max_elements)
        .ok_or_else(|| {
            err(
                at("shape"),
                format!("more than the limit of {max_elements} elements"),
            )
        })?;
    Ok((datatype, elements))
}

/// Every model input given exactly once.
pub fn check_all_inputs(given: &[Tensor], specs: &[TensorSpec]) -> Result<(), FieldError> {
    for (i, tensor) in given.iter().enumerate() {
        if given[..i].iter().any(|t| t.name == tensor.name) {
            return Err(err(
                format!("inputs[{i}].name"),
                format!("input `{}` given twice", tensor.name),
            ));
        }
    }
    match specs
        .iter()
        .find(|spec| !given.iter().any(|t| t.name == spec.name))
    {
        Some(missing) => Err(err(
            "inputs",
            format!("missing model input `{}`", missing.name),
        )),
        None => Ok(()),
    }
}

/// The outputs the V2 routes can return (all of them unless a request asks for fewer).
pub fn returnable_outputs(outputs: &[TensorSpec]) -> Vec<String> {
    outputs
        .iter()
        .filter(|o| o.v2_type().is_some())
        .map(|o| o.name.clone())
        .collect()
}

/// Requested output names: each one the model has and the V2 routes can return.
pub fn check_outputs<'a>(
    requested: impl IntoIterator<Item = &'a str>,
    outputs: &[TensorSpec],
) -> Result<Vec<String>, FieldError> {
    requested
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            if outputs
                .iter()
                .any(|o| o.name == name && o.v2_type().is_some())
            {
                Ok(name.to_string())
            } else {
                let returnable: Vec<&str> = outputs
                    .iter()
                    .filter(|o| o.v2_type().is_some())
                    .map(|o| o.name.as_str())
                    .collect();
                Err(err(
                    format!("outputs[{i}].name"),
                    format!(
                        "model has no output `{name}` the V2 routes can return; outputs are {}",
                        returnable.join(", ")
                    ),
                ))
            }
        })
        .collect()
}

/// A JSON number, from a parsed `Value` or read straight from the bytes
/// ([`super::json`]): both give the same answers, as serde_json's own `Value` delegates to
/// `Number`.
pub trait JsonNumber {
    fn as_f64(&self) -> Option<f64>;
    fn as_i64(&self) -> Option<i64>;
}

impl JsonNumber for &Value {
    fn as_f64(&self) -> Option<f64> {
        Value::as_f64(self)
    }
    fn as_i64(&self) -> Option<i64> {
        Value::as_i64(self)
    }
}

impl JsonNumber for serde_json::Number {
    fn as_f64(&self) -> Option<f64> {
        serde_json::Number::as_f64(self)
    }
    fn as_i64(&self) -> Option<i64> {
        serde_json::Number::as_i64(self)
    }
}

/// A JSON number that is a whole number in the i64 range, written as an integer or as a float
/// with no fraction (`3.0`): JSON Schema's `integer` accepts both, and so do we.
pub(super) fn whole_number(value: &impl JsonNumber) -> Option<i64> {
    // 2^63 is the first float past i64::MAX; every float below it with no fraction fits.
    const TWO_TO_63: f64 = 9_223_372_036_854_775_808.0;
    value.as_i64().or_else(|| {
        let x = value.as_f64()?;
        (x.fract() == 0.0 && (-TWO_TO_63..TWO_TO_63).contains(&x)).then_some(x as i64)
    })
}

/// `field` names the shape in an error; it is only built then, so that a valid request pays
/// for no text.
fn check_shape(
    shape: &[i64],
    declared: &[i64],
    field: &dyn Fn() -> String,
) -> Result<(), FieldError> {
    if shape.len() != declared.len() {
        return Err(err(
            field(),
            format!(
                "expected {} dimensions {}, got {shape:?}",
                declared.len(),
                show_shape(declared)
            ),
        ));
    }
    for (axis, (got, want)) in shape.iter().zip(declared).enumerate() {
        if *want >= 0 && got != want {
            return Err(err(
                field(),
                format!(
                    "dimension {axis} must be {want} (shape {}), got {shape:?}",
                    show_shape(declared)
                ),
            ));
        }
    }
    Ok(())
}

/// Shape with free dimensions written as `-1`, e.g. `[-1, 13]`.
fn show_shape(shape: &[i64]) -> String {
    format!("{shape:?}")
}

fn element_count(shape: &[i64]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(usize::try_from(*d).ok()?))
}

/// The elements as `datatype`, each checked to fit it; `field` names the data in errors.
pub fn convert_numbers(
    values: &[impl JsonNumber],
    datatype: DataType,
    field: &dyn Fn() -> String,
) -> Result<TensorData, FieldError> {
    let bad = |i: usize, what: &str| {
        err(
            format!("{}[{i}]", field()),
            format!("expected {what} for {}", datatype.as_v2()),
        )
    };
    let floats = |what| {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| v.as_f64().ok_or_else(|| bad(i, what)))
            .collect::<Result<Vec<f64>, _>>()
    };
    let ints = |lo: i64, hi: i64, what| {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                whole_number(v)
                    .filter(|x| (lo..=hi).contains(x))
                    .ok_or_else(|| bad(i, what))
            })
            .collect::<Result<Vec<i64>, _>>()
    };
    Ok(match datatype {
        DataType::Fp64 => TensorData::F64(floats("a number")?),
        // One pass, straight to f32 into a buffer of the right size: no f64 copy of the data.
        DataType::Fp32 => {
            let mut out = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                let x = v.as_f64().ok_or_else(|| bad(i, "a number"))?;
                if x.abs() > f64::from(f32::MAX) {
                    return Err(bad(i, "a number within the FP32 range"));
                }
                out.push(x as f32);
            }
            TensorData::F32(out)
        }
        DataType::Int32 => TensorData::I32(
            ints(
                i32::MIN.into(),
                i32::MAX.into(),
                "a whole number in the INT32 range",
            )?
            .into_iter()
            // Range-checked just above, so the narrowing cannot fail.
            .map(|x| x as i32)
            .collect(),
        ),
        DataType::Int64 => TensorData::I64(ints(i64::MIN, i64::MAX, "a whole number")?),
    })
}

fn names(specs: &[TensorSpec]) -> Vec<&str> {
    specs.iter().map(|s| s.name.as_str()).collect()
}
