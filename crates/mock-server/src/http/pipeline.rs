//! The `/api2/json` pipeline, as `PVE::APIServer::AnyEvent` and `PVE::HTTPServer` run it
//! (pve-http-server `src/PVE/APIServer/AnyEvent.pm`, pve-manager `PVE/HTTPServer.pm`):
//!
//! 1. [`check_request`]: reject malformed requests (`..` segments, NUL, invalid UTF-8, over-long
//!    paths) with 400 and strip `/api2/json`; injected request faults (`/_mock/faults`) apply
//!    next, before authentication;
//! 2. [`authn::authenticate`]: ticket cookie or header, API token, CSRF for writes (not for
//!    uploads); an upload's permission ([`authn::check_upload`]) is checked here too, before
//!    any of its body is read. With `auth_failure_delay` set, every failure of this step waits
//!    that long, and so does any other 401 (counted from the start of the request), as
//!    pveproxy waits 3 s;
//! 3. [`route`]: one matcher lookup; an unknown path or method answers `501` with
//!    `Method 'GET /foo' not implemented` (`rest_handler`'s default response, whose path is the
//!    one relative to `/api2/json`); operations without `allowtoken` refuse API tokens;
//! 4. [`params`]: body as form or JSON on POST/PUT (multipart for uploads, whose requests
//!    pveproxy cannot parse end without a reply), query merged over it, `_dc` dropped, path
//!    parameters added (conflicts are a parameter error);
//! 5. [`authorize`]: the operation's permissions (403, [`crate::access`]), then 595/596 if the
//!    call would be proxied to an offline node ([`crate::simulation`]), as `rest_handler` does
//!    before the handler runs;
//! 6. [`crate::schema`]: coerce and validate (400 `Parameter verification failed.`);
//! 7. [`crate::ops::run`]: the handler from the route table, and the `{"data": ...}` reply.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use route_metadata::{Method, Operation};
use serde_json::Value;

use super::wire::CloseWithoutReply;
use super::{authn, body, json_response};
use crate::access::Caller;
use crate::api::{MatchError, RouteMatch};
use crate::error::AppError;
use crate::ops::{self, Call};
use crate::schema::{self, Params};
use crate::state::AppState;

/// Longest accepted request path.
const MAX_PATH: usize = 4096;

/// The fallback handler of the router: every request that is not a control endpoint.
pub(super) async fn api_entry(State(state): State<AppState>, request: Request) -> Response {
    if let Some(upstream) = state.upstream.get() {
        return crate::upstream::forward(&state, upstream, request).await;
    }
    let started = Instant::now();
    let error = match handle(&state, request).await {
        Ok(data) => {
            // Serialise the envelope directly instead of building another `Value`.
            let body = match data {
                ops::Reply::Json(text) => text.into_envelope(),
                ops::Reply::Value(value) => {
                    let mut text = ops::JsonText::with_capacity(256);
                    // Writing a `Value` into a `Vec` cannot fail.
                    let _ = serde_json::to_writer(text.buf(), &value);
                    text.into_envelope()
                }
            };
            return json_response(StatusCode::OK, None, body);
        }
        Err(Failure::Close(reason)) => {
            tracing::debug!(
                reason,
                "closing the connection without a reply, as pveproxy does"
            );
            let mut response = Response::new(axum::body::Body::empty());
            response.extensions_mut().insert(CloseWithoutReply);
            return response;
        }
        Err(Failure::Error(error)) => error,
    };
    // `handle_api2_request`: a 401 from a handler (a failed login) waits until the delay has
    // passed since the request began.
    let delay = state.settings.auth_failure_delay;
    if error.http_status() == StatusCode::UNAUTHORIZED
        && let Some(rest) = delay.checked_sub(started.elapsed())
        && !rest.is_zero()
    {
        tokio::time::sleep(rest).await;
    }
    error.into_response()
}

/// How a request ends when it does not succeed.
enum Failure {
    /// An error reply.
    Error(AppError),
    /// No reply at all: pveproxy `die`s in its read callback (a malformed upload request).
    Close(&'static str),
}

impl From<AppError> for Failure {
    fn from(error: AppError) -> Failure {
        Failure::Error(error)
    }
}

/// The pipeline (see the module docs).
async fn handle(state: &AppState, request: Request) -> Result<ops::Reply, Failure> {
    let (parts, body) = request.into_parts();
    let (method, rel_path) = check_request(&parts)?;
    apply_request_fault(state, method, rel_path).await?;
    let decoded_rel = percent_encoding::percent_decode_str(rel_path)
        .decode_utf8()
        .map_err(|_| AppError::bad_request("invalid UTF-8 in request path\n"))?
        .into_owned();
    // `auth_handler` checks an upload's permission too, before any of its body is read.
    let upload = authn::upload_storage(method, &decoded_rel);
    let authenticated =
        authn::authenticate(state, method, &decoded_rel, &parts.headers).and_then(|caller| {
            match upload {
                Some(storage) => authn::check_upload(state, &caller, storage).map(|()| caller),
                None => Ok(caller),
            }
        });
    let caller = match authenticated {
        Ok(caller) => caller,
        Err(error) => {
            // `authenticate_and_handle_request`: every failure of `auth_handler` (401, or the
            // 403 of a refused upload) is delayed ("always delay unauthorized calls").
            let delay = state.settings.auth_failure_delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            return Err(error.into());
        }
    };
    let (matched, op) = route(state, method, rel_path, &decoded_rel, &caller)?;
    let mut params = params(&parts, body, method, &matched, upload.is_some()).await?;
    authorize(state, &caller, op, &params)?;
    schema::coerce_params(op, &mut params);
    schema::validate_params(&state.api, op, &params).map_err(AppError::Param)?;
    let call = Call {
        api: &state.api,
        node: state.api.node(matched.path_index),
        op,
        path_params: &matched.params,
        args: &params,
        caller: &caller,
    };
    Ok(ops::run(state.engine(), matched.path_index, &call).await?)
}

/// Step 1: the method, and the path relative to `/api2/json` of a well-formed request.
fn check_request(parts: &Parts) -> Result<(Method, &str), AppError> {
    let raw_path = parts.uri.path();
    check_raw_path(raw_path)?;
    let Some(method) = Method::parse(parts.method.as_str()) else {
        return Err(AppError::status(
            StatusCode::NOT_IMPLEMENTED,
            format!("method '{}' not available\n", parts.method),
        ));
    };
    let Some(rel_path) = raw_path.strip_prefix("/api2/json") else {
        if raw_path.starts_with("/api2/") {
            return Err(AppError::status(
                StatusCode::NOT_IMPLEMENTED,
                "no such uri\n",
            ));
        }
        return Err(AppError::status(
            StatusCode::NOT_IMPLEMENTED,
            format!("no such file '{raw_path}'\n"),
        ));
    };
    let rel_path = if rel_path.is_empty() { "/" } else { rel_path };
    if !rel_path.starts_with('/') {
        return Err(AppError::status(
            StatusCode::NOT_IMPLEMENTED,
            "no such uri\n",
        ));
    }
    Ok((method, rel_path))
}

/// Checks the raw path for things no valid request contains.
fn check_raw_path(path: &str) -> Result<(), AppError> {
    if path.len() > MAX_PATH {
        return Err(AppError::bad_request("request path too long\n"));
    }
    // Byte searches: most paths have no `%` and so decode to themselves.
    let decoded = if memchr::memchr(b'%', path.as_bytes()).is_none() {
        std::borrow::Cow::Borrowed(path)
    } else {
        percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| AppError::bad_request("invalid UTF-8 in request path\n"))?
    };
    if memchr::memchr(0, decoded.as_bytes()).is_some() {
        return Err(AppError::bad_request("invalid NUL byte in request path\n"));
    }
    if decoded
        .as_bytes()
        .split(|&b| b == b'/')
        .any(|segment| segment == b".." || segment == b".")
    {
        return Err(AppError::bad_request(
            "invalid path segment in request path\n",
        ));
    }
    Ok(())
}

/// Injected request faults: latency, then the injected error.
async fn apply_request_fault(
    state: &AppState,
    method: Method,
    rel_path: &str,
) -> Result<(), AppError> {
    let Some(hit) = state
        .simulation
        .take_request_fault(method.as_str(), rel_path)
    else {
        return Ok(());
    };
    if !hit.delay.is_zero() {
        tokio::time::sleep(hit.delay).await;
    }
    match hit.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Step 3: the matched path and its operation; API tokens only where `allowtoken` says so.
fn route<'s>(
    state: &'s AppState,
    method: Method,
    rel_path: &str,
    decoded_rel: &str,
    caller: &Caller,
) -> Result<(RouteMatch, &'s Operation), AppError> {
    let not_implemented = || {
        let shown = match decoded_rel.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        AppError::status(
            StatusCode::NOT_IMPLEMENTED,
            format!("Method '{} {shown}' not implemented", method.as_str()),
        )
    };
    let matched = match state.api.match_path(rel_path) {
        Ok(matched) => matched,
        Err(MatchError::NotFound) => return Err(not_implemented()),
        Err(MatchError::BadEncoding) => {
            return Err(AppError::bad_request("invalid request path\n"));
        }
    };
    let Some((op_index, op)) = state.api.operation(matched.path_index, method) else {
        return Err(not_implemented());
    };
    super::observe::matched(op_index);
    if caller.api_token && !op.allowtoken {
        return Err(AppError::status(
            StatusCode::FORBIDDEN,
            format!(
                "Permission check failed (URI '{decoded_rel}' not available with API token, need proper ticket.)\n"
            ),
        ));
    }
    Ok((matched, op))
}

/// Step 4: `extract_params`: the body (form, JSON or multipart) on POST/PUT, the query merged
/// over it, `_dc` dropped, then the path parameters (a conflicting value is an error).
async fn params(
    parts: &Parts,
    request_body: axum::body::Body,
    method: Method,
    matched: &RouteMatch,
    upload: bool,
) -> Result<Params, Failure> {
    let mut params = if method.has_body() {
        if upload && body::content_length(&parts.headers).is_some_and(|len| len > 0) {
            check_upload_request(parts)?;
        }
        body::read(&parts.headers, request_body, upload).await?
    } else if body::content_length(&parts.headers).is_some_and(|len| len > 0) {
        // `AnyEvent.pm`: only PUT and POST carry a body.
        return Err(AppError::status(
            StatusCode::NOT_IMPLEMENTED,
            format!("Unexpected content for method '{}'\n", method.as_str()),
        )
        .into());
    } else {
        Params::new()
    };
    if let Some(query) = parts.uri.query() {
        for (key, value) in body::parse_urlencoded(query.as_bytes())? {
            params.insert(key, value);
        }
    }
    params.remove("_dc");
    for (name, value) in &matched.params {
        if let Some(given) = params.get(name) {
            let given_text = match given {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if given_text != *value {
                return Err(AppError::param(
                    name.clone(),
                    "duplicate parameter (already defined in URI) with conflicting values!",
                )
                .into());
            }
        }
        params.insert(name.clone(), Value::String(value.clone()));
    }
    Ok(params)
}

/// `authenticate_and_handle_request`'s conditions for an upload with a body: a
/// `multipart/form-data` body with a boundary, and no `tmpfilename` in the query. pveproxy
/// `die`s without replying when they fail, and the connection ends.
fn check_upload_request(parts: &Parts) -> Result<(), Failure> {
    if !body::is_multipart_with_boundary(&parts.headers) {
        return Err(Failure::Close(
            "upload without a multipart/form-data boundary",
        ));
    }
    let query = parts.uri.query().unwrap_or_default();
    if body::parse_urlencoded(query.as_bytes())?
        .iter()
        .any(|(key, _)| key == "tmpfilename")
    {
        return Err(Failure::Close("'tmpfilename' query parameter in an upload"));
    }
    Ok(())
}

/// Step 5: `rest_handler` checks permissions before validation and existence, then proxies to
/// the node (an offline node answers 595/596).
fn authorize(
    state: &AppState,
    caller: &Caller,
    op: &Operation,
    params: &Params,
) -> Result<(), AppError> {
    let tables = state.store.read();
    crate::access::check_request(&tables, &state.access, caller, op, params)?;
    crate::simulation::check_node_reachable(&tables, op, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_path_checks() {
        assert!(check_raw_path("/api2/json/nodes").is_ok());
        assert!(check_raw_path("/api2/json/../etc").is_err());
        assert!(check_raw_path("/api2/json/%2e%2e/etc").is_err());
        assert!(check_raw_path("/api2/json/a%00b").is_err());
        assert!(check_raw_path(&format!("/api2/json/{}", "a".repeat(10_000))).is_err());
    }
}
