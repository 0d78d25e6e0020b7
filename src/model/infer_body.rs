//! The V2 infer request body (`POST /v2/models/{name}/infer`): the one place that knows its
//! form. Its field names, the parts every reader hands over ([`RawRequest`]) and the checks
//! that turn those parts into an [`InferInput`] live here; the readers only read.
//!
//! Three readers take a body apart, and all of them end in [`RawRequest::check`]:
//! - the byte scanner ([`super::infer_scan`]) for the common form, and the serde reader
//!   ([`super::json`]) for the rest of the valid bodies: fast paths that decline (`None`) what
//!   they do not read exactly as the general reader would, and drop the checks' errors;
//! - the general reader here ([`decode_infer_request`], on a parsed `Value`), which names every
//!   error with its field.
//!
//! A change to the format (a field, a datatype, a limit) is one edit here; the fuzz targets and
//! property tests check that the readers agree.

use serde_json::Value;

use super::schema::FieldError;
use super::tensor::{
    InferInput, JsonNumber, Tensor, TensorLimits, TensorSpec, check_all_inputs, check_input,
    check_outputs, convert_numbers, whole_number,
};

/// The body's field names.
pub mod field {
    pub const ID: &str = "id";
    pub const INPUTS: &str = "inputs";
    pub const OUTPUTS: &str = "outputs";
    /// Of an input tensor, and of a requested output.
    pub const NAME: &str = "name";
    pub const DATATYPE: &str = "datatype";
    pub const SHAPE: &str = "shape";
    pub const DATA: &str = "data";
}

/// One input tensor as the body gives it, before any check. `N` is a JSON number read from the
/// bytes (`serde_json::Number`) or a value of a parsed body (`&Value`, which may be anything:
/// the check names what is not a number).
#[derive(Debug, PartialEq)]
pub struct RawInput<N> {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    /// The elements in row-major order; `None` when the body has no `data` (only the general
    /// reader passes that on, so that its error comes after those of name, datatype and shape).
    pub data: Option<Vec<N>>,
    /// The deepest nesting of arrays in `data`, the outer array included (0 for a scalar).
    pub depth: usize,
}

/// A V2 infer body's parts, as a reader found them.
#[derive(Debug, PartialEq)]
pub struct RawRequest<N> {
    pub id: Option<String>,
    pub inputs: Vec<RawInput<N>>,
    /// The names of the outputs asked for; `None` for all of them.
    pub outputs: Option<Vec<String>>,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// `inputs[i].key`, the name of an input's field in errors.
fn at(i: usize, key: &str) -> String {
    format!("{}[{i}].{key}", field::INPUTS)
}

impl<N: JsonNumber> RawInput<N> {
    /// Checks input `i` against the model's inputs (`specs`), with `max_elements` left of the
    /// request's element limit.
    pub fn check(
        self,
        i: usize,
        specs: &[TensorSpec],
        max_elements: usize,
    ) -> Result<Tensor, FieldError> {
        let (datatype, elements) = check_input(
            i,
            &self.name,
            &self.datatype,
            &self.shape,
            specs,
            max_elements,
        )?;
        // Named only in an error, so that a valid request formats no text.
        let data_field = || at(i, field::DATA);
        let Some(data) = self.data else {
            return Err(err(data_field(), "required: an array of numbers"));
        };
        if self.depth > self.shape.len() {
            return Err(err(data_field(), "arrays nested deeper than the shape"));
        }
        if data.len() > elements {
            return Err(err(
                data_field(),
                format!("more elements than the shape's {elements}"),
            ));
        }
        if data.len() < elements {
            return Err(err(
                data_field(),
                format!(
                    "shape {:?} needs {elements} elements, got {}",
                    self.shape,
                    data.len()
                ),
            ));
        }
        let data = convert_numbers(&data, datatype, &data_field)?;
        Ok(Tensor {
            name: self.name,
            shape: self.shape,
            data,
        })
    }
}

/// Checks inputs one by one as a reader yields them, so that a reader's error about input `i`
/// comes after the checks of the inputs before it.
fn check_inputs<N: JsonNumber>(
    given: impl Iterator<Item = Result<RawInput<N>, FieldError>>,
    specs: &[TensorSpec],
    limits: TensorLimits,
) -> Result<Vec<Tensor>, FieldError> {
    let mut decoded: Vec<Tensor> = Vec::with_capacity(given.size_hint().0);
    let mut total = 0usize;
    for (i, input) in given.enumerate() {
        let tensor = input?.check(i, specs, limits.max_elements - total)?;
        total += tensor.data.len();
        decoded.push(tensor);
    }
    check_all_inputs(&decoded, specs)?;
    Ok(decoded)
}

impl<N: JsonNumber> RawRequest<N> {
    /// Checks the request against the model's inputs and outputs.
    pub fn check(
        self,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
        limits: TensorLimits,
    ) -> Result<InferInput, FieldError> {
        let decoded = check_inputs(self.inputs.into_iter().map(Ok), inputs, limits)?;
        let outputs = match self.outputs {
            None => None,
            Some(names) => Some(check_outputs(names.iter().map(String::as_str), outputs)?),
        };
        Ok(InferInput {
            id: self.id,
            inputs: decoded,
            outputs,
        })
    }
}

/// The general reader: checks a parsed V2 infer body against the model's inputs and outputs,
/// naming the field of the first error.
pub fn decode_infer_request(
    body: &Value,
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
    limits: TensorLimits,
) -> Result<InferInput, FieldError> {
    let Value::Object(request) = body else {
        return Err(err("body", "must be a JSON object with `inputs`"));
    };
    let id = match request.get(field::ID) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(err(field::ID, "must be a string")),
    };
    let Some(Value::Array(given)) = request.get(field::INPUTS) else {
        return Err(err(field::INPUTS, "required: an array of input tensors"));
    };
    let given = given.iter().enumerate().map(|(i, v)| read_input(v, i));
    let decoded = check_inputs(given, inputs, limits)?;
    let outputs = read_outputs(request.get(field::OUTPUTS))?
        .map(|names| check_outputs(names, outputs))
        .transpose()?;
    Ok(InferInput {
        id,
        inputs: decoded,
        outputs,
    })
}

/// One input of a parsed body, its fields' types checked.
fn read_input(input: &Value, i: usize) -> Result<RawInput<&Value>, FieldError> {
    let Value::Object(input) = input else {
        return Err(err(format!("{}[{i}]", field::INPUTS), "must be an object"));
    };
    let name = match input.get(field::NAME) {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(err(at(i, field::NAME), "required: a string")),
    };
    let datatype = match input.get(field::DATATYPE) {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(err(
                at(i, field::DATATYPE),
                "required: a string such as FP32",
            ));
        }
    };
    let shape_field = at(i, field::SHAPE);
    let Some(Value::Array(dims)) = input.get(field::SHAPE) else {
        return Err(err(shape_field, "required: an array of dimensions"));
    };
    let shape = dims
        .iter()
        .map(|d| {
            whole_number(&d)
                .filter(|d| *d >= 0)
                .ok_or_else(|| err(&shape_field, "dimensions must be whole numbers >= 0"))
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let (data, depth) = match input.get(field::DATA) {
        None => (None, 0),
        Some(data) => {
            let mut flat = Vec::new();
            let depth = flatten(data, 0, &mut flat);
            (Some(flat), depth)
        }
    };
    Ok(RawInput {
        name,
        datatype,
        shape,
        data,
        depth,
    })
}

/// Row-major flattening of nested arrays into `out`; returns the deepest nesting of arrays,
/// counting from `level`.
fn flatten<'a>(value: &'a Value, level: usize, out: &mut Vec<&'a Value>) -> usize {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| flatten(item, level + 1, out))
            .fold(level + 1, usize::max),
        scalar => {
            out.push(scalar);
            level
        }
    }
}

/// The requested output names of a parsed body; `None` for all.
fn read_outputs(value: Option<&Value>) -> Result<Option<Vec<&str>>, FieldError> {
    let requested = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(err(field::OUTPUTS, "must be an array of {\"name\": ...}"));
        }
    };
    requested
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.get(field::NAME)
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    err(
                        format!("{}[{i}].{}", field::OUTPUTS, field::NAME),
                        "required: a string",
                    )
                })
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tensor::TensorData;
    use serde_json::json;

    fn inputs() -> Vec<TensorSpec> {
        vec![TensorSpec {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 3],
        }]
    }

    fn outputs() -> Vec<TensorSpec> {
        vec![
            TensorSpec {
                name: "label".into(),
                datatype: "INT64".into(),
                shape: vec![-1],
            },
            TensorSpec {
                name: "probabilities".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 2],
            },
        ]
    }

    const LIMITS: TensorLimits = TensorLimits { max_elements: 100 };

    fn decode(body: Value) -> Result<InferInput, FieldError> {
        decode_infer_request(&body, &inputs(), &outputs(), LIMITS)
    }

    fn request(shape: Value, datatype: &str, data: Value) -> Value {
        json!({"id": "r1", "inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]})
    }

    #[test]
    fn flat_and_nested_data_decode_the_same() {
        let flat = decode(request(json!([2, 3]), "FP32", json!([1, 2, 3, 4, 5, 6]))).unwrap();
        let nested = decode(request(
            json!([2, 3]),
            "FP32",
            json!([[1, 2, 3], [4, 5, 6]]),
        ))
        .unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.id.as_deref(), Some("r1"));
        assert_eq!(
            flat.inputs[0].data,
            TensorData::F32(vec![1., 2., 3., 4., 5., 6.])
        );
        assert_eq!(flat.outputs, None);
    }

    #[test]
    fn shape_rank_and_fixed_dimensions_are_checked() {
        let e = decode(request(json!([6]), "FP32", json!([1, 2, 3, 4, 5, 6]))).unwrap_err();
        assert_eq!(e.field, "inputs[0].shape");
        let e = decode(request(json!([3, 2]), "FP32", json!([1, 2, 3, 4, 5, 6]))).unwrap_err();
        assert!(e.message.contains("dimension 1 must be 3"), "{e}");
        let e = decode(request(json!([2, -3]), "FP32", json!([]))).unwrap_err();
        assert!(e.message.contains(">= 0"), "{e}");
    }

    #[test]
    fn data_length_must_match_the_shape() {
        let e = decode(request(json!([2, 3]), "FP32", json!([1, 2, 3, 4, 5]))).unwrap_err();
        assert_eq!(e.field, "inputs[0].data");
        assert!(e.message.contains("needs 6 elements, got 5"), "{e}");
        let e = decode(request(json!([1, 3]), "FP32", json!([1, 2, 3, 4]))).unwrap_err();
        assert!(e.message.contains("more elements"), "{e}");
    }

    #[test]
    fn datatype_must_be_known_and_match_the_model() {
        let e = decode(request(json!([1, 3]), "FP16", json!([1, 2, 3]))).unwrap_err();
        assert_eq!(e.field, "inputs[0].datatype");
        let e = decode(request(json!([1, 3]), "INT64", json!([1, 2, 3]))).unwrap_err();
        assert!(e.message.contains("is FP32, got INT64"), "{e}");
    }

    #[test]
    fn elements_must_fit_their_datatype() {
        let e = decode(request(json!([1, 3]), "FP32", json!([1, "2", 3]))).unwrap_err();
        assert_eq!(e.field, "inputs[0].data[1]");
        let e = decode(request(json!([1, 3]), "FP32", json!([1, 1e300, 3]))).unwrap_err();
        assert!(e.message.contains("FP32 range"), "{e}");
        let ints = vec![TensorSpec {
            name: "input".into(),
            datatype: "INT32".into(),
            shape: vec![-1, 3],
        }];
        let body = request(json!([1, 3]), "INT32", json!([1, 2.5, 3]));
        let e = decode_infer_request(&body, &ints, &outputs(), LIMITS).unwrap_err();
        assert_eq!(e.field, "inputs[0].data[1]");
        let body = request(json!([1, 3]), "INT32", json!([1, 3_000_000_000i64, 3]));
        assert!(decode_infer_request(&body, &ints, &outputs(), LIMITS).is_err());
        let body = request(json!([1, 3]), "INT32", json!([1, -2, 3]));
        let ok = decode_infer_request(&body, &ints, &outputs(), LIMITS).unwrap();
        assert_eq!(ok.inputs[0].data, TensorData::I32(vec![1, -2, 3]));
        // Whole numbers written as floats are whole numbers, as JSON Schema's `integer` says.
        let body = request(json!([1.0, 3]), "INT32", json!([1.0, -2, 3e0]));
        let ok = decode_infer_request(&body, &ints, &outputs(), LIMITS).unwrap();
        assert_eq!(ok.inputs[0].data, TensorData::I32(vec![1, -2, 3]));
    }

    #[test]
    fn element_limit_is_enforced_before_reading_data() {
        let e = decode(request(json!([1000, 3]), "FP32", json!([]))).unwrap_err();
        assert!(e.message.contains("limit of 100"), "{e}");
        let e = decode(request(json!([i64::MAX, 3]), "FP32", json!([]))).unwrap_err();
        assert!(e.message.contains("limit"), "{e}");
    }

    #[test]
    fn unknown_and_missing_inputs_are_named() {
        let mut body = request(json!([1, 3]), "FP32", json!([1, 2, 3]));
        body["inputs"][0]["name"] = json!("x");
        let e = decode(body).unwrap_err();
        assert!(e.message.contains("no input `x`"), "{e}");
        let e = decode(json!({"inputs": []})).unwrap_err();
        assert!(e.message.contains("missing model input `input`"), "{e}");
        let e = decode(json!({"id": 5, "inputs": []})).unwrap_err();
        assert_eq!(e.field, "id");
    }

    #[test]
    fn output_selection_is_checked() {
        let mut body = request(json!([1, 3]), "FP32", json!([1, 2, 3]));
        body["outputs"] = json!([{"name": "probabilities"}]);
        assert_eq!(
            decode(body.clone()).unwrap().outputs,
            Some(vec!["probabilities".to_string()])
        );
        body["outputs"] = json!([{"name": "nope"}]);
        assert_eq!(decode(body).unwrap_err().field, "outputs[0].name");
    }
}
