//! `GET /openapi.json`: the OpenAPI 3.1 description of every route. The routes come from the
//! handlers; the request bodies come from the served model (its feature schema for `/predict`,
//! its inputs and outputs for V2 infer), so a user's own model gets its own exact document.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::chaos::{ActionResult, ChaosStatus, NextEvent, OverloadQueue, PastEvent, actions};
use super::events::EventKind;
use crate::error::{ApiError, ErrorBody};
use crate::health::Phase;
use crate::http::{AppState, Limits};
use crate::model::schema::{
    ClassSpec, Feature, FeatureKind, InputSpec, ModelSchema, OutputSpec, OutputsSpec,
};
use crate::model::tensor::{DataType, TensorSpec};
use crate::model::{Prediction, ServedModel};

/// The part of the document that does not depend on the model.
#[derive(OpenApi)]
#[openapi(
    info(title = "chaos-inference", description = "ONNX inference server with scheduled, observable faults for Kubernetes probes, restarts and rollouts."),
    paths(
        super::health::livez, super::health::healthz, super::health::readyz, super::health::startupz,
        super::predict::predict, super::model::model,
        super::v2::server_metadata, super::v2::live, super::v2::ready, super::v2::model_metadata, super::v2::model_ready,
        super::v2::infer, super::v2::model_version_metadata, super::v2::model_version_ready, super::v2::version_infer,
        super::metrics::metrics, super::chaos::status, super::chaos::action, super::page::index, super::events::events, openapi,
    ),
    components(schemas(
        ErrorBody, Phase, super::health::ProbeStatus, Prediction, super::predict::Predictions, super::predict::PredictResponse, super::model::ModelInfo,
        ModelSchema, InputSpec, Feature, FeatureKind, OutputsSpec, OutputSpec, ClassSpec, TensorSpec,
        super::v2::ServerMetadata, super::v2::ModelMetadata, super::v2::ModelReady,
        super::v2::InferResponse, super::v2::OutputTensor,
        ChaosStatus, PastEvent, NextEvent, OverloadQueue, ActionResult,
        super::events::PageStatus, super::events::PhaseEvent, super::events::FaultEvent, super::events::StatsEvent,
        super::health::ProbeCodes, crate::stats::Sample,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// This document, for the served model (503 while it loads).
#[utoipa::path(get, path = "/openapi.json", tag = "observability",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"),
        (status = 503, body = ErrorBody, description = "model still loading")))]
pub async fn openapi(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let model = state.model()?;
    let document = state
        .openapi
        .get_or_init(|| document(model, &state.limits).to_string());
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(document.clone()))
}

/// The whole document for `model` under `limits`.
pub fn document(model: &ServedModel, limits: &Limits) -> Value {
    // The derived document is plain data; serialising it cannot fail.
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("OpenAPI document");
    let schemas = &mut doc["components"]["schemas"];
    schemas["InferRequest"] =
        infer_request(&model.inputs, &model.outputs, limits.max_tensor_elements);
    schemas["PredictRequest"] = match &model.schema {
        Some(schema) => predict_request(schema, limits.max_batch_rows),
        None => json!({"description": "this model has no feature schema: /predict answers 404"}),
    };
    let paths = &mut doc["paths"];
    let body = &mut paths["/predict"]["post"]["requestBody"]["content"]["application/json"];
    body["schema"] = json!({"$ref": "#/components/schemas/PredictRequest"});
    body["example"] = model.schema.as_ref().map_or(Value::Null, predict_example);
    for path in [
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ] {
        let body = &mut paths[path]["post"]["requestBody"]["content"]["application/json"];
        body["schema"] = json!({"$ref": "#/components/schemas/InferRequest"});
        body["example"] = infer_example(&model.inputs);
    }
    paths["/chaos/events"]["get"]["responses"]["200"]["content"] = event_stream();
    if let Value::Object(paths) = paths {
        for item in paths.values_mut() {
            for operation in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                let parameters = operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut);
                for parameter in parameters.into_iter().flatten() {
                    let values = match parameter["name"].as_str() {
                        Some("name") => vec![model.name.clone()],
                        Some("version") => vec![model.version.clone()],
                        Some("action") => actions(),
                        _ => continue,
                    };
                    parameter["schema"] = json!({"type": "string", "enum": values});
                }
            }
        }
    }
    doc
}

/// The event stream as OpenAPI 3.2 describes one (`itemSchema`: the schema of each event, not
/// of the whole stream): an event's `data` is JSON text whose parsed value has the event's
/// schema (`contentMediaType`, `contentSchema`), so a standard validator checks every event.
fn event_stream() -> Value {
    let events: Vec<Value> = EventKind::ALL
        .iter()
        .map(|kind| {
            json!({
                "type": "object",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": kind.name()},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": format!("#/components/schemas/{}", kind.schema())},
                    },
                },
            })
        })
        .collect();
    json!({"text/event-stream": {"itemSchema": {"oneOf": events}}})
}

/// One record of `/predict`: every feature required, each with its type and allowed values.
fn predict_request(schema: &ModelSchema, max_rows: usize) -> Value {
    let mut properties = Map::new();
    for feature in &schema.features {
        let mut property = match &feature.kind {
            FeatureKind::Integer { min, max } => {
                json!({"type": "integer", "minimum": number(*min), "maximum": number(*max)})
            }
            FeatureKind::Number { min, max } => {
                json!({"type": "number", "minimum": number(*min), "maximum": number(*max)})
            }
            FeatureKind::Categorical { categories } => {
                let codes: Vec<Value> = categories
                    .keys()
                    .filter_map(|code| code.parse::<f64>().ok())
                    .map(number)
                    .collect();
                let meanings: Vec<String> = categories
                    .iter()
                    .map(|(code, meaning)| format!("{code} ({meaning})"))
                    .collect();
                json!({"type": "number", "enum": codes, "description": meanings.join(", ")})
            }
        };
        if let Some(description) = &feature.description
            && property.get("description").is_none()
        {
            property["description"] = json!(description);
        }
        properties.insert(feature.name.clone(), property);
    }
    let record = json!({
        "type": "object",
        "description": "one record: every feature of the model, by name",
        "required": schema.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        "properties": properties,
        "additionalProperties": false,
    });
    json!({"oneOf": [
        record,
        {"type": "array", "description": "a list of records", "minItems": 1, "maxItems": max_rows, "items": record},
    ]})
}

/// A V2 infer request for these inputs and outputs: each input exactly once, with its datatype,
/// its rank and fixed dimensions, and elements of its type, flat or nested row-major. JSON
/// Schema cannot say that `data` holds as many elements as `shape` multiplies to; the server
/// checks it (422).
fn infer_request(inputs: &[TensorSpec], outputs: &[TensorSpec], max_elements: usize) -> Value {
    let tensors: Vec<Value> = inputs
        .iter()
        .map(|spec| input_tensor(spec, max_elements))
        .collect();
    let each_once: Vec<Value> = inputs
        .iter()
        .map(|spec| {
            json!({"contains": {"properties": {"name": {"const": spec.name}}},
                   "minContains": 1, "maxContains": 1})
        })
        .collect();
    let output_names: Vec<&str> = outputs
        .iter()
        .filter(|o| o.v2_type().is_some())
        .map(|o| o.name.as_str())
        .collect();
    json!({
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": ["string", "null"], "description": "echoed in the response"},
            "inputs": {
                "type": "array",
                "minItems": inputs.len(),
                "maxItems": inputs.len(),
                "items": {"oneOf": tensors},
                "allOf": each_once,
            },
            "outputs": {
                "type": ["array", "null"],
                "description": "outputs to return, in this order; all when absent",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"enum": output_names}},
                },
            },
        },
    })
}

fn input_tensor(spec: &TensorSpec, max_elements: usize) -> Value {
    // A free dimension can be at most the element limit over the fixed ones: exact for one free
    // dimension; with several, their product is checked by the server too (422).
    let fixed: usize = spec
        .shape
        .iter()
        .filter(|d| **d > 0)
        .map(|d| *d as usize)
        .product();
    let largest = max_elements / fixed.max(1);
    let dimensions: Vec<Value> = spec
        .shape
        .iter()
        .map(|d| {
            if *d >= 0 {
                json!({"const": d})
            } else {
                json!({"type": "integer", "minimum": 0, "maximum": largest})
            }
        })
        .collect();
    let element = match spec.v2_type() {
        Some(DataType::Fp32) => {
            json!({"type": "number", "minimum": -f64::from(f32::MAX), "maximum": f64::from(f32::MAX)})
        }
        Some(DataType::Fp64) => json!({"type": "number"}),
        Some(DataType::Int32) => {
            json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX})
        }
        Some(DataType::Int64) => {
            json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX})
        }
        None => json!(false),
    };
    // Elements nested up to the tensor's rank, row-major; a scalar may stand at any level.
    let data = (0..spec.shape.len()).fold(
        element.clone(),
        |inner, _| json!({"anyOf": [element, {"type": "array", "items": inner}]}),
    );
    json!({
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"const": spec.name},
            "shape": {"type": "array", "prefixItems": dimensions, "minItems": spec.shape.len(),
                      "items": false},
            "datatype": {"const": spec.datatype},
            "data": data,
        },
    })
}

/// A valid record: the middle of each range, the first category.
fn predict_example(schema: &ModelSchema) -> Value {
    let record: Map<String, Value> = schema
        .features
        .iter()
        .map(|feature| {
            let value = match &feature.kind {
                FeatureKind::Integer { min, max } => number(((min + max) / 2.0).floor()),
                FeatureKind::Number { min, max } => number((min + max) / 2.0),
                FeatureKind::Categorical { categories } => categories
                    .keys()
                    .find_map(|code| code.parse::<f64>().ok())
                    .map_or(Value::Null, number),
            };
            (feature.name.clone(), value)
        })
        .collect();
    Value::Object(record)
}

/// One valid request: every input with free dimensions set to 1, zeros as data.
fn infer_example(inputs: &[TensorSpec]) -> Value {
    let tensors: Vec<Value> = inputs
        .iter()
        .map(|spec| {
            let shape: Vec<i64> = spec.shape.iter().map(|d| if *d < 0 { 1 } else { *d }).collect();
            let elements = shape.iter().product::<i64>().max(0) as usize;
            json!({"name": spec.name, "shape": shape, "datatype": spec.datatype, "data": vec![0; elements]})
        })
        .collect();
    json!({"id": "1", "inputs": tensors})
}

/// A number as JSON writes it: whole numbers without a fraction.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}
