//! Reading request bodies: content type, size and nesting limits before any parsing.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use serde_json::Value;

use super::Limits;
use crate::error::ApiError;

/// Reads a JSON body's bytes, unparsed: 415 for another content type, 413 above the size limit
/// (checked against Content-Length before reading, and while reading). Parsing is the route's:
/// a typed fast path for valid bodies, else [`parse_json`].
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limits: &Limits,
) -> Result<web::BytesMut, ApiError> {
    let limit = limits.max_body_bytes;
    if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
        let text = content_type.to_str().unwrap_or("");
        let essence = text
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!("`{text}`")));
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::MalformedJson(format!("cannot read body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// True when `body` may go to a typed fast path ([`crate::model::json`]): not empty and within
/// the depth limit, which the general path ([`parse_json`]) would refuse.
pub fn fast_path_allowed(body: &[u8], max_depth: usize) -> bool {
    !body.is_empty() && nesting_depth(body) <= max_depth
}

/// Parses a request body: 400 for an empty body, malformed JSON, or nesting deeper than
/// `max_depth` (checked before parsing, so a hostile body cannot exhaust the stack).
pub fn parse_json(body: &[u8], max_depth: usize) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::MalformedJson(
            "empty body; send a JSON document".into(),
        ));
    }
    if nesting_depth(body) > max_depth {
        return Err(ApiError::MalformedJson(format!(
            "nesting deeper than the limit of {max_depth} (MAX_JSON_DEPTH)"
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// The deepest nesting of `[` and `{` outside strings: a linear scan, no recursion.
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::nesting_depth;

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert_eq!(nesting_depth(b"5"), 0);
        assert_eq!(nesting_depth(br#"{"a": [1, [2]]}"#), 3);
        assert_eq!(nesting_depth(br#"{"a": "[[[[{{{"}"#), 1);
        // An escaped quote does not end the string; an escaped backslash does not escape it.
        assert_eq!(nesting_depth(br#"{"a": "\"[[["}"#), 1);
        assert_eq!(nesting_depth(br#"{"a": "\\", "b": [[1]]}"#), 3);
        assert_eq!(nesting_depth(br#"[{}, {}, [[]]]"#), 3);
        assert_eq!(nesting_depth(&[b'['; 10_000]), 10_000);
    }
}
