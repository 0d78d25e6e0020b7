//! `POST /predict`: named features in, label and class probabilities out.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::chaos::overload::Work;
use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::http::body::{fast_path_allowed, parse_json, read_body};
use crate::model::schema::ModelSchema;
use crate::model::{Prediction, ServedModel, json};

/// The answer: one prediction for one record, the list form for a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PredictResponse {
    One(Prediction),
    Many(Predictions),
}

/// The answer for a list of records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Predictions {
    pub model: String,
    pub predictions: Vec<Prediction>,
}

/// Predicts one record (an object of named features) or a list of them.
///
/// The features, their order, types and allowed values are those of `GET /model`. One record
/// gives one prediction object; a list gives `{"predictions": [...]}` in the same order.
#[utoipa::path(post, path = "/predict", tag = "inference",
    request_body(content = Object, description = "one record, or a list of records (the schema is the served model's)",
        content_type = "application/json"),
    responses(
        (status = 200, description = "one prediction, or `{predictions}` for a list", body = PredictResponse),
        (status = 400, body = ErrorBody, description = "malformed JSON"),
        (status = 404, body = ErrorBody, description = "the model has no feature schema"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a feature breaks the schema; `field` names it"),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn predict(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // An overload fault's worker is held until the answer is made.
    let _worker = state.chaos.admit(Work::Prediction).await?;
    let body = read_body(&req, payload, &state.limits).await?;
    let max_rows = state.limits.max_batch_rows;
    // A valid body for a loaded model with a schema decodes straight from the bytes; anything
    // else takes the general path, in its order: malformed JSON (400), loading (503), no
    // schema (404), a feature out of its rule (422).
    let fast = match state.model() {
        Ok(ServedModel {
            schema: Some(schema),
            ..
        }) if fast_path_allowed(&body, state.limits.max_json_depth) => {
            json::predict_rows(&body, schema, max_rows)
        }
        _ => None,
    };
    let (rows, single) = match fast {
        Some(decoded) => decoded,
        None => {
            let value = parse_json(&body, state.limits.max_json_depth)?;
            schema_of(&state)?
                .rows_from_body(&value, max_rows)
                .map_err(|e| ApiError::invalid(e.field, e.message))?
        }
    };
    let model = state.model()?;
    let schema = schema_of(&state)?;
    state.chaos.inject().await?;
    let mut predictions = model
        .predict(schema, rows)
        .await
        .map_err(|e| state.pool_error(e))?;
    Ok(HttpResponse::Ok().json(if single {
        PredictResponse::One(predictions.swap_remove(0))
    } else {
        PredictResponse::Many(Predictions {
            model: model.name.clone(),
            predictions,
        })
    }))
}

/// The served model's feature schema: 503 while loading, 404 for a model without one.
fn schema_of(state: &AppState) -> Result<&ModelSchema, ApiError> {
    let model = state.model()?;
    model.schema.as_ref().ok_or_else(|| {
        ApiError::NotFound(format!(
            "model `{}` has no feature schema; use POST /v2/models/{}/infer",
            model.name, model.name
        ))
    })
}
