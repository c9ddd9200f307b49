//! The HTTP application: [`AppState`], the router built by [`app`], the `/api2/json` request
//! pipeline, and the endpoints outside `/api2` (`/healthz`, `/openapi.json`, `/_mock/...`).
//!
//! The pipeline mirrors `PVE::APIServer::AnyEvent` and `PVE::HTTPServer` (pve-http-server
//! `src/PVE/APIServer/AnyEvent.pm`, pve-manager `PVE/HTTPServer.pm`):
//!
//! 1. reject malformed requests (`..` segments, NUL, invalid UTF-8, over-long paths) with 400;
//! 2. authenticate (`auth_handler`: ticket cookie or header, API token, CSRF for writes);
//! 3. route: one matcher lookup; unknown path or method answers `501` with
//!    `Method 'GET /foo' not implemented` (`rest_handler`'s default response, whose path is the
//!    one relative to `/api2/json`);
//! 4. extract parameters (`extract_params`: body as form or JSON on POST/PUT, query merged over
//!    it, `_dc` dropped), add path parameters (conflicts are a parameter error);
//! 5. check the operation's permissions (403, [`crate::access`]), then answer 595/596 if the
//!    call would be proxied to an offline node ([`crate::simulation`]), as `rest_handler` does
//!    before the handler runs;
//! 6. coerce and validate (400 `Parameter verification failed.`);
//! 7. run the `/access` endpoints or the engine, filter lists for the caller, and answer
//!    `{"data": ...}`.
//!
//! Injected request faults (`/_mock/faults`) apply first, before authentication.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use route_metadata::Method;
use serde_json::{Map, Value, json};

use crate::api::{Api, MatchError};
use crate::auth::{self, COOKIE_NAME, SECRET_KEY, Signer, TOKEN_SCHEME};
use crate::engine::{self, Call};
use crate::error::{AppError, json_response};
use crate::seed::Fixture;
use crate::store::StateStore;
use crate::validate::{self, Params};

/// Largest accepted request body (Proxmox's `$limit_max_post`).
pub const MAX_BODY: usize = 64 * 1024;

/// Longest accepted request path.
pub const MAX_PATH: usize = 4096;

/// Run-time settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether requests must authenticate.
    pub auth: bool,
    /// How long worker tasks run (the default of `task_durations`).
    pub task_delay: Duration,
    /// How long worker tasks run, by type.
    pub task_durations: crate::simulation::TaskDurations,
    /// The root@pam password of the seed.
    pub root_password: String,
    /// The seed fixture (used by `POST /_mock/reset`).
    pub fixture: Fixture,
}

pub use crate::simulation::Fault;

/// Shared state of one mock instance.
pub struct Inner {
    /// The compiled API.
    pub api: Arc<Api>,
    /// The state store.
    pub store: Arc<StateStore>,
    /// Ticket signer.
    pub signer: Signer,
    /// Settings.
    pub settings: Settings,
    /// Serialises the read-plan-apply step of writes.
    pub write_gate: tokio::sync::Mutex<()>,
    /// Injected request and task faults.
    pub simulation: crate::simulation::Simulation,
    /// The access model (users, groups, roles, ACL), rebuilt after changes.
    pub access: crate::access::AccessCache,
    /// Verified tickets and tokens (see [`auth::AuthCache`]).
    pub auth_cache: auth::AuthCache,
    pid: AtomicU32,
    /// Base URLs advertised in `openapi.json` (`servers`).
    pub server_urls: OnceLock<Vec<String>>,
    openapi: OnceLock<Bytes>,
}

/// Cheaply clonable handle to the shared state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("tag", &self.api.meta.tag)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        api: Arc<Api>,
        store: Arc<StateStore>,
        signer: Signer,
        settings: Settings,
    ) -> AppState {
        let simulation = crate::simulation::Simulation::new(&settings.fixture.faults);
        let access = crate::access::AccessCache::new(&api.meta.release);
        AppState(Arc::new(Inner {
            api,
            store,
            signer,
            settings,
            write_gate: tokio::sync::Mutex::new(()),
            simulation,
            access,
            auth_cache: auth::AuthCache::default(),
            pid: AtomicU32::new(0x1000 + (auth::now() % 0x1000) as u32),
            server_urls: OnceLock::new(),
            openapi: OnceLock::new(),
        }))
    }

    /// Another handle to the same state.
    pub fn clone_handle(&self) -> AppState {
        self.clone()
    }

    /// A fresh worker PID.
    pub fn next_pid(&self) -> u32 {
        self.pid.fetch_add(1, Ordering::Relaxed)
    }
}

/// Builds the router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/openapi.json", get(openapi))
        .route("/_mock/reset", post(reset))
        .route("/_mock/state", get(dump_state))
        .route(
            "/_mock/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .fallback(api_entry)
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

async fn reset(State(state): State<AppState>) -> Response {
    let seed = state
        .settings
        .fixture
        .to_changes(&state.settings.root_password);
    let _gate = state.write_gate.lock().await;
    state.simulation.reset(&state.settings.fixture.faults);
    let result = state.store.reset(seed).await;
    state.access.invalidate();
    match result {
        Ok(()) => json_response(StatusCode::OK, None, json!({"data": null}).to_string()),
        Err(error) => AppError::Internal(error.to_string()).into_response(),
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
    json_response(StatusCode::OK, None, json!({"data": value}).to_string())
}

async fn add_fault(State(state): State<AppState>, body: Bytes) -> Response {
    let spec: crate::simulation::FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(error) => {
            return AppError::bad_request(format!("invalid fault: {error}\n")).into_response();
        }
    };
    match crate::simulation::apply_fault(&state, spec).await {
        Ok(()) => json_response(StatusCode::OK, None, json!({"data": null}).to_string()),
        Err(error) => error.into_response(),
    }
}

async fn list_faults(State(state): State<AppState>) -> Response {
    let faults = state.simulation.list();
    json_response(StatusCode::OK, None, json!({"data": faults}).to_string())
}

async fn clear_faults(State(state): State<AppState>) -> Response {
    state.simulation.clear();
    json_response(StatusCode::OK, None, json!({"data": null}).to_string())
}

async fn api_entry(State(state): State<AppState>, request: Request) -> Response {
    match handle_api(&state, request).await {
        Ok(data) => {
            // Serialise the envelope directly instead of building another `Value`.
            let mut body = String::with_capacity(256);
            body.push_str("{\"data\":");
            body.push_str(&data.to_string());
            body.push('}');
            json_response(StatusCode::OK, None, body)
        }
        Err(error) => error.into_response(),
    }
}

/// Checks the raw path for things no valid request contains.
fn check_raw_path(path: &str) -> Result<(), AppError> {
    if path.len() > MAX_PATH {
        return Err(AppError::bad_request("request path too long\n"));
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| AppError::bad_request("invalid UTF-8 in request path\n"))?;
    if decoded.contains('\0') {
        return Err(AppError::bad_request("invalid NUL byte in request path\n"));
    }
    if decoded
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Err(AppError::bad_request(
            "invalid path segment in request path\n",
        ));
    }
    Ok(())
}

async fn handle_api(state: &AppState, request: Request) -> Result<Value, AppError> {
    let (parts, body) = request.into_parts();
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
    if let Some(hit) = state
        .simulation
        .take_request_fault(method.as_str(), rel_path)
    {
        if !hit.delay.is_zero() {
            tokio::time::sleep(hit.delay).await;
        }
        if let Some(error) = hit.error {
            return Err(error);
        }
    }
    let decoded_rel = percent_encoding::percent_decode_str(rel_path)
        .decode_utf8()
        .map_err(|_| AppError::bad_request("invalid UTF-8 in request path\n"))?
        .into_owned();
    let user = authenticate(state, method, &decoded_rel, &parts.headers)?;

    let not_implemented = || {
        AppError::status(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "Method '{} {}' not implemented",
                method.as_str(),
                match decoded_rel.trim_end_matches('/') {
                    "" => "/",
                    trimmed => trimmed,
                }
            ),
        )
    };
    let matched = match state.api.match_path(rel_path) {
        Ok(matched) => matched,
        Err(MatchError::NotFound) => return Err(not_implemented()),
        Err(MatchError::BadEncoding) => {
            return Err(AppError::bad_request("invalid request path\n"));
        }
    };
    let Some((_, op)) = state.api.operation(matched.path_index, method) else {
        return Err(not_implemented());
    };
    if user.api_token && !op.allowtoken {
        return Err(AppError::status(
            StatusCode::FORBIDDEN,
            format!(
                "Permission check failed (URI '{decoded_rel}' not available with API token, need proper ticket.)\n"
            ),
        ));
    }
    let node = state.api.node(matched.path_index);

    let mut params = Params::new();
    if method.has_body() && crate::domain::storage::is_multipart(&parts.headers) {
        // Uploads: the file part is streamed, not buffered (see `domain::storage`).
        params = crate::domain::storage::read_multipart(&parts.headers, body).await?;
    } else if method.has_body() {
        let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
            AppError::status(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
        })?;
        params = parse_body(&parts.headers, &bytes)?;
    }
    if let Some(query) = parts.uri.query() {
        for (key, value) in parse_urlencoded(query.as_bytes())? {
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
                ));
            }
        }
        params.insert(name.clone(), Value::String(value.clone()));
    }
    // `rest_handler`: permissions before validation and existence, then the proxy to the node.
    crate::access::check_request(state, &user, op, &params)?;
    crate::simulation::check_node_reachable(&state.store.read(), op, &params)?;
    validate::coerce_params(op, &mut params);
    validate::validate_params(&state.api, op, &params).map_err(AppError::Param)?;
    let call = Call {
        node,
        op,
        path_params: &matched.params,
        args: &params,
        user: &user.userid,
    };
    let result = match crate::access::endpoints::handle(state, &user, &call).await {
        Some(result) => result,
        None => engine::handle(state, call).await,
    };
    if method != Method::Get && crate::access::touches_access(&decoded_rel) {
        state.access.invalidate();
    }
    let value = result?;
    if method == Method::Get {
        crate::access::filter::filter_reply(state, &user, op, &matched.params, value)
    } else {
        Ok(value)
    }
}

fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Params, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Params::new());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split([';', ','])
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some("application/json") => {
            let value: Value = serde_json::from_slice(bytes).map_err(|error| {
                AppError::bad_request(format!("malformed JSON body: {error}\n"))
            })?;
            match value {
                Value::Object(map) => {
                    if map.values().any(|v| depth(v) > 8) {
                        return Err(AppError::bad_request("JSON body nested too deeply\n"));
                    }
                    Ok(map)
                }
                _ => Err(AppError::bad_request("JSON body must be an object\n")),
            }
        }
        None | Some("application/x-www-form-urlencoded") | Some("") => {
            Ok(parse_urlencoded(bytes)?.into_iter().collect())
        }
        Some(other) => Err(AppError::status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("upload 'Content-Type '{other}' not implemented\n"),
        )),
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn decode_component(raw: &[u8]) -> Result<String, AppError> {
    let plus_decoded: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_decoded).collect();
    String::from_utf8(bytes).map_err(|_| AppError::bad_request("invalid UTF-8 in parameters\n"))
}

/// `decode_urlencoded`: `&`/`;` separated pairs; a repeated key becomes an array.
fn parse_urlencoded(data: &[u8]) -> Result<Vec<(String, Value)>, AppError> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for pair in data.split(|&b| b == b'&' || b == b';') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], Some(&pair[at + 1..])),
            None => (pair, None),
        };
        let key = decode_component(key)?;
        if key.contains('\0') {
            return Err(AppError::bad_request("invalid NUL byte in parameters\n"));
        }
        let value = match value {
            Some(raw) => Value::String(decode_component(raw)?),
            None => Value::String(String::new()),
        };
        match index.get(&key) {
            Some(&at) => {
                let slot = &mut out[at].1;
                match slot {
                    Value::Array(items) => items.push(value),
                    other => *other = Value::Array(vec![other.take(), value]),
                }
            }
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, value));
            }
        }
    }
    Ok(out)
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User or token ID.
    pub userid: String,
    /// Whether an API token authenticated the call.
    pub api_token: bool,
}

/// `PVE::HTTPServer::auth_handler`.
fn authenticate(
    state: &AppState,
    method: Method,
    rel_path: &str,
    headers: &HeaderMap,
) -> Result<Caller, AppError> {
    let rel_path = rel_path.trim_end_matches('/');
    let exempt = (rel_path == "/access/domains" && method == Method::Get)
        || (rel_path == "/access/ticket" && matches!(method, Method::Get | Method::Post))
        || (rel_path == "/access/vncticket" && method == Method::Post)
        || (rel_path == "/access/openid/login" && method == Method::Post)
        || (rel_path == "/access/openid/auth-url" && method == Method::Post);
    if exempt || !state.settings.auth {
        return Ok(Caller {
            userid: "root@pam".to_owned(),
            api_token: false,
        });
    }
    let header_text = |name: header::HeaderName| -> Option<String> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join("; "))
    };
    let cookie = header_text(header::COOKIE);
    let authorization = header_text(header::AUTHORIZATION);
    let ticket = cookie
        .as_deref()
        .and_then(|c| auth::extract_auth_value(c, COOKIE_NAME))
        .or_else(|| {
            authorization
                .as_deref()
                .and_then(|a| auth::extract_auth_value(a, COOKIE_NAME))
        });
    let now = auth::now();
    if ticket.is_none()
        && let Some(token) = authorization
            .as_deref()
            .and_then(|a| auth::extract_auth_value(a, TOKEN_SCHEME))
    {
        return authenticate_token(state, &token, now);
    }
    let Some(ticket) = ticket else {
        return Err(AppError::Unauthorized("No ticket\n".to_owned()));
    };
    let generation = state.access.generation();
    let userid = match state.auth_cache.ticket(&ticket) {
        Some(hit) => {
            if !state.signer.age_ok(hit.issued, now) {
                return Err(AppError::Unauthorized(
                    "permission denied - invalid PVE ticket\n".to_owned(),
                ));
            }
            if hit.generation == generation {
                check_expire(&hit.userid, hit.user_expire, now)?;
            } else {
                let user_expire = check_user(state, &hit.userid, now)?;
                state.auth_cache.put_ticket(
                    &ticket,
                    auth::TicketVerdict {
                        generation,
                        user_expire,
                        ..hit.clone()
                    },
                );
            }
            hit.userid
        }
        None => {
            let (userid, issued) = state.signer.verify_ticket_signature(&ticket)?;
            if !state.signer.age_ok(issued, now) {
                return Err(AppError::Unauthorized(
                    "permission denied - invalid PVE ticket\n".to_owned(),
                ));
            }
            let user_expire = check_user(state, userid, now)?;
            state.auth_cache.put_ticket(
                &ticket,
                auth::TicketVerdict {
                    userid: userid.to_owned(),
                    issued,
                    generation,
                    user_expire,
                },
            );
            userid.to_owned()
        }
    };
    if method != Method::Get {
        let token = headers
            .get("CSRFPreventionToken")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        state.signer.verify_csrf(&userid, token, now)?;
    }
    Ok(Caller {
        userid,
        api_token: false,
    })
}

/// `PVEAPIToken=user@realm!name=secret`: a cached verdict of the current access generation
/// whose secret digest matches (in constant time), or the full check against the rows.
fn authenticate_token(state: &AppState, token: &str, now: u64) -> Result<Caller, AppError> {
    let generation = state.access.generation();
    if let Some((tokenid, secret)) = token.rsplit_once('=')
        && let Some(hit) = state.auth_cache.token(tokenid)
        && hit.generation == generation
        && auth::constant_time_eq(&auth::secret_digest(secret), &hit.secret_digest)
        && !expired(hit.user_expire, now)
        && !expired(hit.token_expire, now)
    {
        return Ok(Caller {
            userid: tokenid.to_owned(),
            api_token: true,
        });
    }
    let (userid, token_name, secret) = auth::split_api_token(token)?;
    let tables = state.store.read();
    let user = tables
        .get(&format!("/access/users/{userid}"))
        .ok_or_else(|| AppError::Unauthorized(format!("no such user ('{userid}')\n")))?;
    if user.get("enable").is_some_and(|e| e.as_i64() == Some(0)) {
        return Err(AppError::Unauthorized(format!(
            "user '{userid}' is disabled\n"
        )));
    }
    check_not_expired(&userid, user, now)?;
    let stored = tables
        .get(&format!("/access/users/{userid}/token/{token_name}"))
        .ok_or_else(|| {
            AppError::Unauthorized(format!(
                "no such token '{token_name}' for user '{userid}'\n"
            ))
        })?;
    let token_expire = stored.get("expire").and_then(Value::as_u64);
    if expired(token_expire, now) {
        return Err(AppError::Unauthorized(format!(
            "token '{token_name}' access expired\n"
        )));
    }
    let valid = stored
        .get(SECRET_KEY)
        .and_then(Value::as_str)
        .is_some_and(|hash| auth::verify_secret(hash, &secret));
    if !valid {
        return Err(AppError::Unauthorized("invalid token value!\n".to_owned()));
    }
    let caller = format!("{userid}!{token_name}");
    state.auth_cache.put_token(
        &caller,
        auth::TokenVerdict {
            generation,
            secret_digest: auth::secret_digest(&secret),
            user_expire: user.get("expire").and_then(Value::as_u64),
            token_expire,
        },
    );
    Ok(Caller {
        userid: caller,
        api_token: true,
    })
}

/// The user of a verified ticket must exist, be enabled and not have expired; returns its
/// `expire`.
fn check_user(state: &AppState, userid: &str, now: u64) -> Result<Option<u64>, AppError> {
    let tables = state.store.read();
    match tables.get(&format!("/access/users/{userid}")) {
        None => Err(AppError::Unauthorized(format!(
            "no such user ('{userid}')\n"
        ))),
        Some(user) if user.get("enable").is_some_and(|e| e.as_i64() == Some(0)) => Err(
            AppError::Unauthorized(format!("user '{userid}' is disabled\n")),
        ),
        Some(user) => {
            check_not_expired(userid, user, now)?;
            Ok(user.get("expire").and_then(Value::as_u64))
        }
    }
}

/// Whether an `expire` time (0: never) has passed.
fn expired(expire: Option<u64>, now: u64) -> bool {
    expire.is_some_and(|expire| expire > 0 && expire < now)
}

fn check_expire(userid: &str, expire: Option<u64>, now: u64) -> Result<(), AppError> {
    if expired(expire, now) {
        return Err(AppError::Unauthorized(format!(
            "user '{userid}' access expired\n"
        )));
    }
    Ok(())
}

/// `check_user_enabled` (pve-access-control `src/PVE/AccessControl.pm`): an account whose
/// `expire` time has passed authenticates nothing.
fn check_not_expired(userid: &str, user: &Value, now: u64) -> Result<(), AppError> {
    check_expire(userid, user.get("expire").and_then(Value::as_u64), now)
}

/// Renders an unexpected panic as a logged 500 (used with `CatchPanicLayer`).
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned());
    AppError::Internal(format!("handler panicked: {detail}")).into_response()
}

/// Turns a JSON map into a value (small helper for tests and views).
pub fn object(map: Map<String, Value>) -> Value {
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urlencoded_parsing() {
        let parsed = parse_urlencoded(b"a=1&b=x+y;c=%C3%A9&a=2&flag").unwrap();
        assert_eq!(parsed[0], ("a".to_owned(), json!(["1", "2"])));
        assert_eq!(parsed[1], ("b".to_owned(), json!("x y")));
        assert_eq!(parsed[2], ("c".to_owned(), json!("é")));
        assert_eq!(parsed[3], ("flag".to_owned(), json!("")));
        assert!(parse_urlencoded(b"a=%FF").is_err());
    }

    #[test]
    fn raw_path_checks() {
        assert!(check_raw_path("/api2/json/nodes").is_ok());
        assert!(check_raw_path("/api2/json/../etc").is_err());
        assert!(check_raw_path("/api2/json/%2e%2e/etc").is_err());
        assert!(check_raw_path("/api2/json/a%00b").is_err());
        assert!(check_raw_path(&format!("/api2/json/{}", "a".repeat(10_000))).is_err());
    }

    #[test]
    fn panics_become_500() {
        let response = panic_response(Box::new("boom"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn faults_match() {
        let fault = Fault {
            method: Some("GET".to_owned()),
            path: "/nodes*".to_owned(),
            status: Some(503),
            count: Some(1),
            message: None,
            delay_ms: 0,
        };
        assert!(fault.matches("GET", "/nodes/pve1"));
        assert!(!fault.matches("POST", "/nodes/pve1"));
    }
}
