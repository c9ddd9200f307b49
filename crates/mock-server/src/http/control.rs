//! The control endpoints (`/_mock/state`, `/_mock/reset`, `/_mock/faults`,
//! `/_mock/discrepancies` in real mode, and `/metrics`) and the guard that
//! keeps them from being turned against the mock's host.
//!
//! They read and change the whole state, so a request must pass, in this order:
//!
//! 1. **Host**: its `Host` is a loopback name or address (`localhost`, `127.0.0.0/8`, `[::1]`),
//!    the address a listener was bound to, or a host allowed with `--allowed-host`. A web page
//!    whose name an attacker points at 127.0.0.1 (DNS rebinding) sends its own name and is
//!    refused (403).
//! 2. **Origin**: a request that carries `Origin` (every cross-site request from a browser does)
//!    must come from the mock's own origin, so a page elsewhere cannot post to it, even with a
//!    `text/plain` body that needs no preflight (403).
//! 3. **Credentials**, when authentication is on: the control token
//!    (`Authorization: Bearer <token>`, `--control-token`, compared in constant time), or
//!    `root@pam` with a ticket (and its CSRF token on writes) or with an API token without
//!    privilege separation. Anyone else is refused (401 without valid credentials, 403 for other
//!    users).
//!
//! `POST /_mock/faults` then takes JSON only (415 otherwise) and each spec is validated
//! (`Simulation::apply`).

use std::net::IpAddr;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use route_metadata::Method as ApiMethod;
use serde_json::{Value, json};

use super::{authn, json_response};
use crate::access::Caller;
use crate::auth;
use crate::error::AppError;
use crate::simulation::FaultSpec;
use crate::state::AppState;

/// The control endpoints behind their guard.
pub(super) fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/_mock/reset", post(reset))
        .route("/_mock/state", get(dump_state))
        .route(
            "/_mock/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_mock/discrepancies", get(discrepancies))
        .route("/metrics", get(super::observe::metrics))
        .route_layer(axum::middleware::from_fn_with_state(state, guard))
}

/// The checks of the module docs, before any control endpoint runs.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let checked = check_host(headers, &state.settings.allowed_hosts)
        .and_then(|()| check_origin(headers))
        .and_then(|()| check_credentials(&state, request.method(), headers));
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// The host of a `Host` header or an origin's authority, lower case, without port or brackets.
fn host_name(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a host name is a loopback name or address.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn forbidden(message: String) -> AppError {
    AppError::status(StatusCode::FORBIDDEN, message)
}

/// Step 1: a loopback or allowed `Host` (a request without one comes from no browser).
fn check_host(headers: &HeaderMap, allowed: &[String]) -> Result<(), AppError> {
    let Some(value) = headers.get(header::HOST) else {
        return Ok(());
    };
    let host = host_name(value.to_str().unwrap_or_default());
    if is_loopback(&host) || allowed.contains(&host) {
        return Ok(());
    }
    Err(forbidden(format!(
        "control endpoints answer on loopback hosts only, not '{host}' (see --allowed-host)\n"
    )))
}

/// Step 2: an `Origin`, if any, is the mock's own (scheme aside, its authority is the `Host`).
fn check_origin(headers: &HeaderMap) -> Result<(), AppError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(forbidden(
            "control endpoints refuse cross-site requests (foreign Origin)\n".to_owned(),
        )),
    }
}

/// Step 3: the control token, or `root@pam` itself, when authentication is on.
fn check_credentials(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), AppError> {
    if !state.settings.auth {
        return Ok(());
    }
    if let Some(token) = bearer(headers) {
        let wanted = auth::secret_digest(&state.settings.control_token);
        if auth::constant_time_eq(&auth::secret_digest(token), &wanted) {
            return Ok(());
        }
        return Err(AppError::Unauthorized("invalid control token\n".to_owned()));
    }
    let method = ApiMethod::parse(method.as_str()).unwrap_or(ApiMethod::Post);
    let caller = authn::authenticate(state, method, "/_mock", headers)?;
    if is_root(state, &caller) {
        return Ok(());
    }
    Err(forbidden(
        "Permission check failed (control endpoints need root@pam or the control token)\n"
            .to_owned(),
    ))
}

/// `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.trim().strip_prefix("Bearer "))
        .map(str::trim)
}

/// `root@pam` with a ticket, or a token of `root@pam` without privilege separation.
fn is_root(state: &AppState, caller: &Caller) -> bool {
    if !caller.api_token {
        return caller.userid == crate::access::model::ROOT;
    }
    let Some((user, _)) = caller.userid.split_once('!') else {
        return false;
    };
    user == crate::access::model::ROOT
        && state
            .access
            .model(&state.store.read())
            .token_privsep(&caller.userid)
            == Some(false)
}

/// `{"data": ...}` with status 200.
fn data(value: &Value) -> Response {
    json_response(StatusCode::OK, None, json!({ "data": value }).to_string())
}

async fn reset(State(state): State<AppState>) -> Response {
    let seed = state
        .settings
        .fixture
        .to_changes(&state.settings.root_password);
    let result = state
        .store
        .reset(seed, || {
            state.simulation.reset(&state.settings.fixture.faults);
        })
        .await;
    match result {
        Ok(()) => data(&Value::Null),
        Err(error) => AppError::from(error).into_response(),
    }
}

async fn dump_state(State(state): State<AppState>) -> Response {
    let mut value = state.store.read().to_json();
    if let Some(Value::Object(objects)) = value.get_mut("objects") {
        for object in objects.values_mut() {
            if let Value::Object(map) = object {
                map.retain(|key, _| !key.starts_with('_'));
            }
        }
    }
    data(&value)
}

async fn add_fault(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    if !json {
        return AppError::status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "faults take a JSON body (Content-Type: application/json)\n",
        )
        .into_response();
    }
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(error) => {
            return AppError::bad_request(format!("invalid fault: {error}\n")).into_response();
        }
    };
    match state.simulation.apply(&state.store, spec).await {
        Ok(()) => data(&Value::Null),
        Err(error) => error.into_response(),
    }
}

/// Real mode's discrepancy log (`crate::upstream`); 404 when the mock is not a proxy.
async fn discrepancies(State(state): State<AppState>) -> Response {
    match state.upstream.get() {
        Some(upstream) => data(&upstream.discrepancies_json().await),
        None => AppError::status(
            StatusCode::NOT_FOUND,
            "no discrepancies: the mock is not a proxy (see --upstream)\n",
        )
        .into_response(),
    }
}

async fn list_faults(State(state): State<AppState>) -> Response {
    data(&Value::Array(state.simulation.list()))
}

async fn clear_faults(State(state): State<AppState>) -> Response {
    state.simulation.clear();
    data(&Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_like_browsers_send_them() {
        assert_eq!(host_name("127.0.0.1:8006"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8006"), "::1");
        assert_eq!(host_name("LocalHost."), "localhost");
        assert_eq!(host_name("mock.test:443"), "mock.test");
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("app.localhost"));
        assert!(!is_loopback("127.0.0.1.attacker.example"));
        assert!(!is_loopback("attacker.example"));
    }
}
