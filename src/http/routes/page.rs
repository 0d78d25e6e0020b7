//! `GET /`: the live status page for browsers, the `GET /chaos` JSON for everything else.
//!
//! The page is one self-contained HTML file compiled into the binary (no CDN, fonts or scripts
//! from elsewhere), so it works offline and through `kubectl port-forward`. It reads
//! `GET /chaos/events` and falls back to polling `GET /chaos`.

use actix_web::{HttpRequest, HttpResponse, http::header, web};

use crate::error::ApiError;
use crate::http::AppState;
use crate::http::routes::chaos::ChaosStatus;

/// The page, as shipped.
pub const PAGE: &str = include_str!("page/index.html");

/// What `/` can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Html,
    Json,
}

/// How much a client wants `media` (`type/subtype`) by its `Accept` header: the quality of the
/// most specific range that matches (RFC 9110 section 12.5.1), and whether the match was exact.
fn quality(accept: &str, media: &str) -> (f32, u8) {
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let specificity = if name == media {
            2
        } else if name == format!("{kind}/*") {
            1
        } else if name == "*/*" {
            0
        } else {
            continue;
        };
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or((0.0, 0), |(s, q)| (q, s))
}

/// HTML when the client names it (browsers do) at least as gladly as JSON; JSON for clients
/// that accept anything (`*/*`, curl) or send no `Accept`; `None` when neither is acceptable.
pub fn choose(accept: Option<&str>) -> Option<Representation> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Representation::Json);
    };
    let (html, html_exact) = quality(accept, "text/html");
    let (json, json_exact) = quality(accept, "application/json");
    if html > 0.0 && (html > json || (html == json && html_exact > json_exact)) {
        Some(Representation::Html)
    } else if json > 0.0 {
        Some(Representation::Json)
    } else if html > 0.0 {
        Some(Representation::Html)
    } else {
        None
    }
}

/// The live status page (HTML) for browsers; the JSON of `GET /chaos` for other clients.
#[utoipa::path(get, path = "/", tag = "chaos",
    responses(
        (status = 200, description = "HTML (the status page) when the client prefers text/html, else the JSON of GET /chaos",
            content((ChaosStatus = "application/json"), (String = "text/html"))),
        (status = 406, body = crate::error::ErrorBody, description = "Accept allows neither text/html nor application/json")))]
pub async fn index(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .map(|v| v.to_str().unwrap_or(""));
    match choose(accept) {
        Some(Representation::Html) => Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((header::VARY, "Accept"))
            // Everything the page needs is inline; it talks only to this server.
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:",
            ))
            .body(PAGE)),
        Some(Representation::Json) => Ok(HttpResponse::Ok()
            .insert_header((header::VARY, "Accept"))
            .json(ChaosStatus::of(&state.chaos))),
        None => Err(ApiError::NotAcceptable {
            accept: accept.unwrap_or_default().to_string(),
            offers: "text/html or application/json",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_and_programs_json() {
        let chromium =
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert_eq!(choose(Some(chromium)), Some(Representation::Html));
        assert_eq!(choose(Some(firefox)), Some(Representation::Html));
        assert_eq!(choose(Some("*/*")), Some(Representation::Json), "curl");
        assert_eq!(choose(None), Some(Representation::Json));
        assert_eq!(choose(Some("")), Some(Representation::Json));
        assert_eq!(choose(Some("application/json")), Some(Representation::Json));
        assert_eq!(choose(Some("text/*")), Some(Representation::Html));
        assert_eq!(
            choose(Some("text/html;q=0.5, application/json")),
            Some(Representation::Json)
        );
        assert_eq!(
            choose(Some("application/json;q=0.2, TEXT/HTML")),
            Some(Representation::Html)
        );
        assert_eq!(choose(Some("image/png")), None);
        assert_eq!(choose(Some("text/html;q=0, application/json;q=0")), None);
        assert_eq!(
            choose(Some("text/html;q=0, */*")),
            Some(Representation::Json),
            "an explicit refusal beats the wildcard"
        );
    }

    #[test]
    fn the_page_is_self_contained_and_small() {
        assert!(PAGE.len() < 64 * 1024, "{} bytes", PAGE.len());
        for outside in ["http://", "https://", "//cdn", "@import", "<link"] {
            assert!(!PAGE.contains(outside), "the page loads {outside}");
        }
        assert!(PAGE.contains("/chaos/events") && PAGE.contains("prefers-color-scheme"));
    }
}
