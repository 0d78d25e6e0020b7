//! The feature schema that travels with a model: names, order, types, allowed values, outputs.
//!
//! It is read from the model (ONNX metadata key [`SCHEMA_METADATA_KEY`]) or a sidecar
//! `schema.json`, never written into the server, so `/predict` works for any tabular model that
//! ships one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The ONNX metadata key that holds the schema as JSON.
pub const SCHEMA_METADATA_KEY: &str = "chaos_inference.schema";

/// The schema document, as written by `models/heart-disease/train.py`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSchema {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub input: InputSpec,
    pub features: Vec<Feature>,
    pub outputs: OutputsSpec,
    #[serde(default)]
    pub classes: Vec<ClassSpec>,
}

/// The one input tensor that holds a row of features.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub tensor: String,
    /// V2 datatype of that tensor; `FP32` or `FP64`.
    pub datatype: String,
}

/// One named feature, at its position in the row.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Feature {
    pub name: String,
    #[serde(flatten)]
    pub kind: FeatureKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What values a feature accepts.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FeatureKind {
    /// A whole number in `min..=max`.
    Integer { min: f64, max: f64 },
    /// Any finite number in `min..=max`.
    Number { min: f64, max: f64 },
    /// One of the codes; the map gives each code's meaning.
    Categorical {
        categories: BTreeMap<String, String>,
    },
}

/// Names of the output tensors.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputsSpec {
    pub label: OutputSpec,
    pub probabilities: OutputSpec,
}

/// One output tensor.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub tensor: String,
    #[serde(default)]
    pub description: String,
}

/// A class the label can take, with its name.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    pub label: i64,
    pub name: String,
}

/// A record that breaks the schema: which field, which rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl ModelSchema {
    /// Parses and checks a schema document.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let schema: ModelSchema = serde_json::from_str(text).map_err(|e| e.to_string())?;
        schema.check()?;
        Ok(schema)
    }

    fn check(&self) -> Result<(), String> {
        if self.features.is_empty() {
            return Err("`features` is empty".into());
        }
        let mut seen = std::collections::HashSet::new();
        for feature in &self.features {
            if !seen.insert(feature.name.as_str()) {
                return Err(format!("feature `{}` appears twice", feature.name));
            }
            match &feature.kind {
                FeatureKind::Integer { min, max } | FeatureKind::Number { min, max } => {
                    if !(min.is_finite() && max.is_finite() && min <= max) {
                        return Err(format!("feature `{}`: min must be <= max", feature.name));
                    }
                }
                FeatureKind::Categorical { categories } => {
                    if categories.is_empty() {
                        return Err(format!("feature `{}`: no categories", feature.name));
                    }
                    if let Some(bad) = categories.keys().find(|k| k.parse::<f64>().is_err()) {
                        return Err(format!(
                            "feature `{}`: category code `{bad}` is not a number",
                            feature.name
                        ));
                    }
                }
            }
        }
        if !matches!(self.input.datatype.as_str(), "FP32" | "FP64") {
            return Err(format!(
                "input datatype `{}` is not FP32 or FP64",
                self.input.datatype
            ));
        }
        Ok(())
    }

    /// The name of class `label`, when the schema names classes.
    pub fn class_name(&self, label: i64) -> Option<&str> {
        self.classes
            .iter()
            .find(|c| c.label == label)
            .map(|c| c.name.as_str())
    }

    /// Checks a `/predict` body, one record or a non-empty list of at most `max_rows` records,
    /// and returns the rows in feature order and whether the body was a single record.
    pub fn rows_from_body(
        &self,
        body: &Value,
        max_rows: usize,
    ) -> Result<(Vec<Vec<f64>>, bool), FieldError> {
        let (records, single) = match body {
            Value::Array(records) => (records.as_slice(), false),
            Value::Object(_) => (std::slice::from_ref(body), true),
            _ => {
                return Err(FieldError::new(
                    "body",
                    "must be a record (object of named features) or a list of records",
                ));
            }
        };
        if records.is_empty() {
            return Err(FieldError::new(
                "body",
                "empty list: send at least one record",
            ));
        }
        if records.len() > max_rows {
            return Err(FieldError::new(
                "body",
                format!(
                    "{} records is more than the limit of {max_rows} (MAX_BATCH_ROWS)",
                    records.len()
                ),
            ));
        }
        let rows = records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let prefix = if single {
                    String::new()
                } else {
                    format!("[{i}].")
                };
                self.row_from_record(record, &prefix)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, single))
    }

    /// Checks one record (a JSON object of named features) and returns its row in feature order.
    ///
    /// `prefix` goes in front of field names, e.g. `[3].` for the fourth record of a list.
    fn row_from_record(&self, record: &Value, prefix: &str) -> Result<Vec<f64>, FieldError> {
        let Value::Object(fields) = record else {
            let what = if prefix.is_empty() {
                "body".to_string()
            } else {
                prefix.trim_end_matches('.').to_string()
            };
            return Err(FieldError::new(
                what,
                format!(
                    "must be an object of named features, got {}",
                    json_kind(record)
                ),
            ));
        };
        self.reject_unknown(fields, prefix)?;
        self.features
            .iter()
            .map(|feature| {
                let field = format!("{prefix}{}", feature.name);
                let value = fields
                    .get(&feature.name)
                    .ok_or_else(|| FieldError::new(&field, "missing required feature"))?;
                feature.accept(value).map_err(|m| FieldError::new(field, m))
            })
            .collect()
    }

    fn reject_unknown(&self, fields: &Map<String, Value>, prefix: &str) -> Result<(), FieldError> {
        match fields
            .keys()
            .find(|k| !self.features.iter().any(|f| &f.name == *k))
        {
            None => Ok(()),
            Some(unknown) => Err(FieldError::new(
                format!("{prefix}{unknown}"),
                format!(
                    "unknown feature; expected only {}",
                    self.features
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

impl Feature {
    /// The value as a number if it satisfies this feature's rule, else the rule it breaks.
    fn accept(&self, value: &Value) -> Result<f64, String> {
        let Some(x) = value.as_f64() else {
            return Err(format!("must be a number, got {}", json_kind(value)));
        };
        self.accept_number(x)
    }

    /// A number if it satisfies this feature's rule, else the rule it breaks.
    pub fn accept_number(&self, x: f64) -> Result<f64, String> {
        if !x.is_finite() {
            return Err("must be a finite number".into());
        }
        match &self.kind {
            FeatureKind::Integer { min, max } => {
                if x.fract() != 0.0 {
                    return Err(format!("must be a whole number, got {x}"));
                }
                in_range(x, *min, *max)
            }
            FeatureKind::Number { min, max } => in_range(x, *min, *max),
            FeatureKind::Categorical { categories } => {
                if categories
                    .keys()
                    .any(|code| code.parse::<f64>().is_ok_and(|c| c == x))
                {
                    Ok(x)
                } else {
                    Err(format!(
                        "must be one of {}, got {x}",
                        categories
                            .iter()
                            .map(|(code, meaning)| format!("{code} ({meaning})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    }
}

fn in_range(x: f64, min: f64, max: f64) -> Result<f64, String> {
    if (min..=max).contains(&x) {
        Ok(x)
    } else {
        Err(format!("must be between {min} and {max}, got {x}"))
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ModelSchema {
        ModelSchema::from_json(include_str!("../../models/heart-disease/schema.json")).unwrap()
    }

    fn record() -> Value {
        serde_json::from_str(include_str!("../../models/heart-disease/example.json")).unwrap()
    }

    fn error_for(change: impl FnOnce(&mut Map<String, Value>)) -> FieldError {
        let mut r = record();
        change(r.as_object_mut().unwrap());
        schema().row_from_record(&r, "").unwrap_err()
    }

    #[test]
    fn a_valid_record_becomes_a_row_in_feature_order() {
        let row = schema().row_from_record(&record(), "").unwrap();
        assert_eq!(row.len(), 13);
        assert_eq!(row[0], 63.0);
        assert_eq!(row[9], 2.3);
        assert_eq!(row[12], 6.0);
    }

    #[test]
    fn missing_feature_is_named() {
        let e = error_for(|r| {
            r.remove("chol");
        });
        assert_eq!(e.field, "chol");
        assert!(e.message.contains("missing"));
    }

    #[test]
    fn unknown_feature_is_named() {
        let e = error_for(|r| {
            r.insert("weight".into(), json!(80));
        });
        assert_eq!(e.field, "weight");
        assert!(e.message.contains("unknown feature"));
    }

    #[test]
    fn mistyped_feature_is_named() {
        let e = error_for(|r| {
            r.insert("age".into(), json!("63"));
        });
        assert_eq!(e.field, "age");
        assert!(e.message.contains("must be a number, got a string"), "{e}");
    }

    #[test]
    fn out_of_range_and_fractional_integers_are_refused() {
        let e = error_for(|r| {
            r.insert("age".into(), json!(130));
        });
        assert!(e.message.contains("between 18 and 100"), "{e}");
        let e = error_for(|r| {
            r.insert("age".into(), json!(63.5));
        });
        assert!(e.message.contains("whole number"), "{e}");
        let e = error_for(|r| {
            r.insert("oldpeak".into(), json!(-0.1));
        });
        assert_eq!(e.field, "oldpeak");
    }

    #[test]
    fn unknown_category_lists_the_allowed_codes() {
        let e = error_for(|r| {
            r.insert("thal".into(), json!(5));
        });
        assert_eq!(e.field, "thal");
        assert!(e.message.contains("3 (normal)"), "{e}");
    }

    #[test]
    fn prefix_locates_the_record_in_a_list() {
        let mut r = record();
        r.as_object_mut().unwrap().remove("ca");
        let e = schema().row_from_record(&r, "[2].").unwrap_err();
        assert_eq!(e.field, "[2].ca");
        let e = schema().row_from_record(&json!(5), "[0].").unwrap_err();
        assert_eq!(e.field, "[0]");
    }

    #[test]
    fn bad_schemas_are_refused() {
        assert!(ModelSchema::from_json("{}").is_err());
        let mut doc: Value =
            serde_json::from_str(include_str!("../../models/heart-disease/schema.json")).unwrap();
        doc["features"][0]["min"] = json!(200);
        assert!(
            ModelSchema::from_json(&doc.to_string())
                .unwrap_err()
                .contains("min must be <= max")
        );
    }
}
