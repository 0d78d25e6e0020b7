//! Protobuf tensors in and out: the V2 gRPC request's typed `contents` or
//! `raw_input_contents` into the same checked tensors the REST routes make, and results back as
//! typed contents or raw bytes.

use super::pb::infer_parameter::ParameterChoice;
use super::pb::model_infer_response::InferOutputTensor;
use super::pb::{InferParameter, InferTensorContents, ModelInferRequest};
use crate::model::schema::FieldError;
use crate::model::tensor::{
    DataType, Tensor, TensorData, TensorLimits, TensorSpec, check_all_inputs, check_input,
    check_outputs,
};

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub inputs: Vec<Tensor>,
    /// The outputs asked for, in order; `None` for all.
    pub outputs: Option<Vec<String>>,
    /// Whether to answer with `raw_output_contents` (the request sent raw inputs, or asked for
    /// binary outputs) rather than typed contents.
    pub raw: bool,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

fn truthy(parameters: &std::collections::HashMap<String, InferParameter>, key: &str) -> bool {
    matches!(
        parameters
            .get(key)
            .and_then(|p| p.parameter_choice.as_ref()),
        Some(ParameterChoice::BoolParam(true))
    )
}

/// Checks a ModelInfer request against the model, with the REST routes' rules and field names.
pub fn decode(
    request: &ModelInferRequest,
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
    limits: TensorLimits,
) -> Result<Decoded, FieldError> {
    let raw = !request.raw_input_contents.is_empty();
    if raw && request.raw_input_contents.len() != request.inputs.len() {
        return Err(err(
            "raw_input_contents",
            format!(
                "one entry per input expected: {} inputs, {} entries",
                request.inputs.len(),
                request.raw_input_contents.len()
            ),
        ));
    }
    let mut decoded = Vec::with_capacity(request.inputs.len());
    let mut total = 0usize;
    for (i, input) in request.inputs.iter().enumerate() {
        let (datatype, elements) = check_input(
            i,
            &input.name,
            &input.datatype,
            &input.shape,
            inputs,
            limits.max_elements - total,
        )?;
        total += elements;
        let data = if raw {
            if input.contents.is_some() {
                return Err(err(
                    format!("inputs[{i}].contents"),
                    "not allowed with raw_input_contents",
                ));
            }
            from_raw(&request.raw_input_contents[i], datatype, elements, i)?
        } else {
            from_contents(input.contents.as_ref(), datatype, elements, i)?
        };
        decoded.push(Tensor {
            name: input.name.clone(),
            shape: input.shape.clone(),
            data,
        });
    }
    check_all_inputs(&decoded, inputs)?;
    let requested = if request.outputs.is_empty() {
        None
    } else {
        Some(check_outputs(
            request.outputs.iter().map(|o| o.name.as_str()),
            outputs,
        )?)
    };
    let binary = truthy(&request.parameters, "binary_data_output")
        || request
            .outputs
            .iter()
            .any(|o| truthy(&o.parameters, "binary_data"));
    Ok(Decoded {
        inputs: decoded,
        outputs: requested,
        raw: raw || binary,
    })
}

fn from_raw(
    bytes: &[u8],
    datatype: DataType,
    elements: usize,
    i: usize,
) -> Result<TensorData, FieldError> {
    let size = match datatype {
        DataType::Fp32 | DataType::Int32 => 4,
        DataType::Fp64 | DataType::Int64 => 8,
    };
    if bytes.len() != elements * size {
        return Err(err(
            format!("raw_input_contents[{i}]"),
            format!(
                "{elements} {} elements need {} bytes, got {}",
                datatype.as_v2(),
                elements * size,
                bytes.len()
            ),
        ));
    }
    let data = match datatype {
        DataType::Fp32 => TensorData::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DataType::Int32 => TensorData::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DataType::Fp64 => TensorData::F64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        DataType::Int64 => TensorData::I64(
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
    };
    // NaN and infinities: refused as in typed contents (and as JSON cannot carry them).
    let not_finite = match &data {
        TensorData::F32(v) => v.iter().position(|x| !x.is_finite()),
        TensorData::F64(v) => v.iter().position(|x| !x.is_finite()),
        TensorData::I32(_) | TensorData::I64(_) => None,
    };
    if let Some(j) = not_finite {
        return Err(err(
            format!("raw_input_contents[{i}]"),
            format!("element {j} is not a finite number"),
        ));
    }
    Ok(data)
}

fn from_contents(
    contents: Option<&InferTensorContents>,
    datatype: DataType,
    elements: usize,
    i: usize,
) -> Result<TensorData, FieldError> {
    let field = format!("inputs[{i}].contents");
    let empty = InferTensorContents::default();
    let contents = match contents {
        Some(c) => c,
        None if elements == 0 => &empty,
        None => {
            return Err(err(
                field,
                "required: typed contents, or raw_input_contents for every input",
            ));
        }
    };
    let (data, given) = match datatype {
        DataType::Fp32 => (
            TensorData::F32(contents.fp32_contents.clone()),
            "fp32_contents",
        ),
        DataType::Fp64 => (
            TensorData::F64(contents.fp64_contents.clone()),
            "fp64_contents",
        ),
        DataType::Int32 => (
            TensorData::I32(contents.int_contents.clone()),
            "int_contents",
        ),
        DataType::Int64 => (
            TensorData::I64(contents.int64_contents.clone()),
            "int64_contents",
        ),
    };
    if data.len() != elements {
        return Err(err(
            format!("{field}.{given}"),
            format!("the shape needs {elements} elements, got {}", data.len()),
        ));
    }
    if let DataType::Fp32 = datatype
        && let Some(j) = contents.fp32_contents.iter().position(|x| !x.is_finite())
    {
        return Err(err(
            format!("{field}.{given}[{j}]"),
            "expected a finite number",
        ));
    }
    if let DataType::Fp64 = datatype
        && let Some(j) = contents.fp64_contents.iter().position(|x| !x.is_finite())
    {
        return Err(err(
            format!("{field}.{given}[{j}]"),
            "expected a finite number",
        ));
    }
    Ok(data)
}

/// Output tensors as the response carries them: typed contents, or shapes only plus one raw
/// byte string each.
pub fn encode(outputs: Vec<Tensor>, raw: bool) -> (Vec<InferOutputTensor>, Vec<Vec<u8>>) {
    let mut tensors = Vec::with_capacity(outputs.len());
    let mut bytes = Vec::new();
    for tensor in outputs {
        let datatype = tensor.data.datatype().as_v2().to_string();
        let contents = if raw {
            bytes.push(match &tensor.data {
                TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            });
            None
        } else {
            let mut c = InferTensorContents::default();
            match tensor.data {
                TensorData::F32(v) => c.fp32_contents = v,
                TensorData::F64(v) => c.fp64_contents = v,
                TensorData::I32(v) => c.int_contents = v,
                TensorData::I64(v) => c.int64_contents = v,
            }
            Some(c)
        };
        tensors.push(InferOutputTensor {
            name: tensor.name,
            datatype,
            shape: tensor.shape,
            parameters: Default::default(),
            contents,
        });
    }
    (tensors, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};

    fn specs() -> (Vec<TensorSpec>, Vec<TensorSpec>) {
        let spec = TensorSpec::new;
        (
            vec![spec("input", "FP32", &[-1, 2])],
            vec![
                spec("label", "INT64", &[-1]),
                spec("probabilities", "FP32", &[-1, 2]),
            ],
        )
    }

    fn request(contents: Option<InferTensorContents>, raw: Vec<Vec<u8>>) -> ModelInferRequest {
        ModelInferRequest {
            inputs: vec![InferInputTensor {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![2, 2],
                contents,
                ..Default::default()
            }],
            raw_input_contents: raw,
            ..Default::default()
        }
    }

    const LIMITS: TensorLimits = TensorLimits { max_elements: 100 };

    #[test]
    fn typed_and_raw_inputs_decode_the_same() {
        let (inputs, outputs) = specs();
        let typed = request(
            Some(InferTensorContents {
                fp32_contents: vec![1.0, 2.0, 3.0, 4.0],
                ..Default::default()
            }),
            vec![],
        );
        let raw = request(
            None,
            vec![
                [1.0f32, 2.0, 3.0, 4.0]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ],
        );
        let a = decode(&typed, &inputs, &outputs, LIMITS).unwrap();
        let b = decode(&raw, &inputs, &outputs, LIMITS).unwrap();
        assert_eq!(a.inputs, b.inputs);
        assert!(!a.raw && b.raw, "answers as asked");
    }

    #[test]
    fn errors_name_the_field_as_rest_does() {
        let (inputs, outputs) = specs();
        let short = request(
            Some(InferTensorContents {
                fp32_contents: vec![1.0],
                ..Default::default()
            }),
            vec![],
        );
        let e = decode(&short, &inputs, &outputs, LIMITS).unwrap_err();
        assert_eq!(e.field, "inputs[0].contents.fp32_contents");
        let e = decode(&request(None, vec![vec![0; 3]]), &inputs, &outputs, LIMITS).unwrap_err();
        assert_eq!(e.field, "raw_input_contents[0]");
        let mut wrong = request(None, vec![vec![0; 16]]);
        wrong.inputs[0].shape = vec![2, 3];
        assert_eq!(
            decode(&wrong, &inputs, &outputs, LIMITS).unwrap_err().field,
            "inputs[0].shape"
        );
        let mut unknown = request(None, vec![vec![0; 16]]);
        unknown.outputs = vec![InferRequestedOutputTensor {
            name: "nope".into(),
            ..Default::default()
        }];
        assert_eq!(
            decode(&unknown, &inputs, &outputs, LIMITS)
                .unwrap_err()
                .field,
            "outputs[0].name"
        );
    }

    #[test]
    fn non_finite_floats_are_refused_typed_or_raw() {
        let (inputs, outputs) = specs();
        let typed = request(
            Some(InferTensorContents {
                fp32_contents: vec![1.0, f32::NAN, 3.0, 4.0],
                ..Default::default()
            }),
            vec![],
        );
        let e = decode(&typed, &inputs, &outputs, LIMITS).unwrap_err();
        assert_eq!(e.field, "inputs[0].contents.fp32_contents[1]");
        let raw = request(
            None,
            vec![
                [1.0f32, 2.0, f32::INFINITY, 4.0]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            ],
        );
        let e = decode(&raw, &inputs, &outputs, LIMITS).unwrap_err();
        assert_eq!(e.field, "raw_input_contents[0]");
        assert!(e.message.contains("element 2"), "{}", e.message);
    }

    #[test]
    fn outputs_go_back_typed_or_raw() {
        let tensor = Tensor {
            name: "label".into(),
            shape: vec![2],
            data: TensorData::I64(vec![0, 1]),
        };
        let (typed, bytes) = encode(vec![tensor.clone()], false);
        assert_eq!(typed[0].contents.as_ref().unwrap().int64_contents, [0, 1]);
        assert!(bytes.is_empty());
        let (shapes, bytes) = encode(vec![tensor], true);
        assert!(shapes[0].contents.is_none());
        assert_eq!(bytes[0].len(), 16);
        assert_eq!(shapes[0].datatype, "INT64");
    }
}
