//! The layers every request passes: the hang and header guard (outermost), then metrics and the
//! log line of a refused request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::ResponseError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};

use crate::chaos::effects;
use crate::error::ApiError;
use crate::health::Health;
use crate::metrics::{GaugeGuard, Metrics};

type BoxedResponse<B> = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

/// The outermost layer: a hang fault holds the request's worker for good (see
/// [`effects::block_if_hung`]); otherwise oversized headers are refused before any route sees
/// them.
pub fn guard<S, B>(
    health: &Health,
    max_header_bytes: usize,
    req: ServiceRequest,
    srv: &S,
) -> BoxedResponse<EitherBody<B>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    effects::block_if_hung(health);
    let size: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if size > max_header_bytes {
        tracing::info!(
            path = req.path(),
            size,
            limit = max_header_bytes,
            status = 431,
            "request refused"
        );
        let response = ApiError::HeadersTooLarge {
            size,
            limit: max_header_bytes,
        }
        .error_response();
        let refused = req.into_response(response).map_into_right_body();
        return Box::pin(async move { Ok(refused) });
    }
    let call = srv.call(req);
    Box::pin(async move { call.await.map(ServiceResponse::map_into_left_body) })
}

/// Counts and times every request by route pattern, and logs every refused one.
pub fn measure<S, B>(metrics: &Metrics, req: ServiceRequest, srv: &S) -> BoxedResponse<B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let started = std::time::Instant::now();
    let in_flight = GaugeGuard::enter(&metrics.in_flight.http);
    let route = route_label(&req);
    let method = req.method().clone();
    let response = srv.call(req);
    let metrics = metrics.clone();
    Box::pin(async move {
        let response = response.await?;
        let status = response.status();
        let elapsed = started.elapsed();
        drop(in_flight);
        metrics
            .requests
            .with_label_values(&["http", &route, method.as_str(), status.as_str()])
            .inc();
        metrics
            .request_duration
            .with_label_values(&["http", &route])
            .observe(elapsed.as_secs_f64());
        match response.response().error() {
            // Every refused request (limits, bad input, saturation) is one log line.
            Some(error) => {
                tracing::info!(%method, %route, status = status.as_u16(), %error, "request refused")
            }
            None => {
                tracing::debug!(%method, %route, status = status.as_u16(), elapsed_us = elapsed.as_micros() as u64, "request")
            }
        }
        Ok(response)
    })
}

/// The route pattern of a request (`/v2/models/{name}/infer`), the label of its metrics.
///
/// Finding the pattern walks the whole route table again, so it is remembered per path, per
/// worker thread; unknown paths (scanners, typos) are bounded by emptying the cache when full.
fn route_label(req: &ServiceRequest) -> Rc<str> {
    const MAX_PATHS: usize = 1024;
    thread_local! {
        static LABELS: RefCell<HashMap<String, Rc<str>>> = RefCell::new(HashMap::new());
    }
    LABELS.with(|labels| {
        let mut labels = labels.borrow_mut();
        if let Some(label) = labels.get(req.path()) {
            return Rc::clone(label);
        }
        let label: Rc<str> = req
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into())
            .into();
        if labels.len() >= MAX_PATHS {
            labels.clear();
        }
        labels.insert(req.path().to_string(), Rc::clone(&label));
        label
    })
}
