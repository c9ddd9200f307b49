//! The HTTP layer, the only axum-aware code of the crate: pveproxy's request-head rules in front
//! of hyper ([`wire`]), the router built by [`app`] (and [`api_service`], the `/api2/` paths
//! served without it), the `/api2/json` pipeline ([`pipeline`]),
//! request bodies ([`body`]), authentication ([`authn`]), the rendering of [`AppError`] as
//! Proxmox renders errors, and the endpoints outside `/api2`:
//!
//! - `GET /healthz`: `ok`;
//! - `GET /openapi.json`: the tag's OpenAPI document with this server's URLs as `servers`;
//! - `/_mock/...`: the control endpoints ([`control`]: `POST /_mock/reset`, `GET /_mock/state`,
//!   `POST|GET|DELETE /_mock/faults`), closed to strangers;
//! - `GET /metrics`: Prometheus metrics ([`observe`], which also opens the span of every request
//!   and counts it), behind the same guard as `/_mock`.

mod authn;
mod body;
mod control;
mod observe;
mod pipeline;
mod wire;

use std::convert::Infallible;
use std::future::Future;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::error::AppError;
use crate::state::AppState;

pub(crate) use observe::matched;
pub(crate) use wire::{Next, Service as WireService, Wire, http_date};

/// The API paths (`/api2/...`) served without the router: the router would send every one of
/// them to its fallback ([`pipeline::api_entry`]) anyway, after matching the path against its
/// own routes, so [`WireService`] calls the fallback directly, inside the same layers (the
/// observation layer here, panic catching from the caller). About a tenth of a GET's
/// instructions went to the router's matching and its per-route futures.
pub(crate) type ApiService = tower::util::BoxCloneSyncService<Request, Response, Infallible>;

/// The service of the API paths (see [`ApiService`]): [`pipeline::api_entry`] inside the
/// observation layer, inside panic catching ([`panic_response`]), as the router has them.
pub(crate) fn api_service(state: AppState) -> ApiService {
    use tower::ServiceExt as _;
    let observed = tower::Layer::layer(
        &observe::ObserveLayer::new(state.clone()),
        ApiEntry { state },
    );
    let caught = tower::Layer::layer(
        &tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
        observed,
    );
    tower::util::BoxCloneSyncService::new(caught.map_response(|response| response.map(Body::new)))
}

/// [`pipeline::api_entry`] as a service.
#[derive(Clone)]
pub(crate) struct ApiEntry {
    state: AppState,
}

impl tower::Service<Request> for ApiEntry {
    type Response = Response;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move { Ok(pipeline::api_entry(State(state), request).await) })
    }
}

/// Builds the router.
pub(crate) fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/openapi.json", get(openapi))
        .merge(control::router(state.clone()))
        .fallback(pipeline::api_entry)
        .layer(observe::ObserveLayer::new(state.clone()))
        .with_state(state)
}

async fn openapi(State(state): State<AppState>) -> Response {
    let Some(text) = state.api.openapi else {
        return AppError::status(
            StatusCode::NOT_FOUND,
            "no openapi.json embedded for this schema\n",
        )
        .into_response();
    };
    let body = state.openapi.get_or_init(|| {
        let urls = state.server_urls.get().cloned().unwrap_or_default();
        match serde_json::from_str::<Value>(text) {
            Ok(mut document) => {
                document["servers"] =
                    Value::Array(urls.into_iter().map(|url| json!({"url": url})).collect());
                Bytes::from(document.to_string())
            }
            Err(_) => Bytes::from_static(text.as_bytes()),
        }
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error while handling a request");
        }
        let status = self.http_status();
        let message = self.message().to_owned();
        let body = match &self {
            AppError::Param(errors) => json!({
                "data": null,
                "errors": errors,
                "message": message,
            }),
            _ => json!({ "data": null, "message": message }),
        };
        json_response(status, Some(reason_phrase(&message)), body.to_string())
    }
}

/// The HTTP reason phrase of an error: the first line of its message, printable ASCII only
/// (`PVE::APIServer::AnyEvent::response`).
fn reason_phrase(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    first
        .chars()
        .map(|c| {
            if c == '\t' || (' '..='~').contains(&c) {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect()
}

/// A JSON reply with Proxmox's content type and, optionally, a custom reason phrase.
fn json_response(status: StatusCode, reason: Option<String>, body: impl Into<Body>) -> Response {
    let mut response = (status, body.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Some(reason) = reason.filter(|r| !r.is_empty())
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        response.extensions_mut().insert(phrase);
    }
    response
}

/// Renders an unexpected panic as a logged 500 (used with `CatchPanicLayer`).
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    AppError::Internal(format!("handler panicked: {detail}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_500() {
        let response = panic_response(Box::new("boom"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn reason_phrase_takes_first_line() {
        assert_eq!(reason_phrase("a\nb"), "a");
        assert_eq!(
            reason_phrase("Parameter verification failed.\n"),
            "Parameter verification failed."
        );
    }
}
