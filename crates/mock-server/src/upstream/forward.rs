//! One proxied request: check it, forward it, check the reply, pass the reply back (see the
//! module docs of [`super`] for what is read and what streams).

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode, header};
use http_body_util::BodyExt;
use route_metadata::{Method, Operation};
use serde_json::Value;

use super::checker::Job;
use super::pool::{Outgoing, UpstreamBody};
use super::report::{Direction, Discrepancy};
use super::serve::RawHead;
use super::validate;
use super::{SendError, Upstream};
use crate::error::AppError;
use crate::state::AppState;

/// Largest form or JSON request body read for validation (pveproxy's `$limit_max_post`).
const MAX_CHECKED_REQUEST: usize = 512 * 1024;

/// Largest JSON reply read whole for validation; larger ones stream through unchecked.
pub(crate) const MAX_CHECKED_REPLY: usize = 64 * 1024 * 1024;

/// Largest checked reply that is read whole before it is passed on (one write to the client);
/// larger ones stream.
const WHOLE_REPLY: u64 = 256 * 1024;

/// Largest part of a non-JSON `5xx` body quoted in the error that replaces it.
const MAX_QUOTED_ERROR: usize = 4 * 1024;

/// Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
];

/// What the schema check found out about a request.
pub(super) struct Checked<'a> {
    /// The operation and its path's index, when the path and method are in the schema.
    op: Option<(usize, &'a Operation)>,
    /// The operation's index among the tag's operations (for the metrics).
    pub(super) op_index: Option<usize>,
    /// Its name in the log: the operationId, or `METHOD /path`.
    name: Cow<'a, str>,
    /// For the recorder (GETs, when recording): the path relative to `/api2/json`.
    record_path: Option<String>,
}

/// Forwards one request (the router's fallback in real mode).
pub(crate) async fn forward(
    state: &AppState,
    upstream: &Arc<Upstream>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    // A WebSocket (a console): the client's side of the upgrade, taken before anything else.
    let upgrade = is_websocket(&parts.headers)
        .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        .flatten();
    let raw_path = parts.uri.path();
    let api_rel = raw_path
        .strip_prefix("/api2/json")
        .or_else(|| raw_path.strip_prefix("/api2/extjs"))
        .map(|rel| if rel.is_empty() { "/" } else { rel });
    let method = Method::parse(parts.method.as_str());
    let has_body = method.is_some_and(Method::has_body);
    let readable = has_body && body_is_readable(&parts.headers);
    // A request without `Content-Length` or `Transfer-Encoding` has no body (RFC 9112 6.3).
    let carries_body = parts.headers.contains_key(header::TRANSFER_ENCODING)
        || parts
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|value| value.as_bytes() != b"0");

    let (checked, body) = match (api_rel, method) {
        (Some(rel), Some(method)) => {
            let (read, unread) = if readable {
                match axum::body::to_bytes(body, MAX_CHECKED_REQUEST).await {
                    Ok(bytes) => (Some(bytes), None),
                    Err(_) => {
                        return AppError::status(
                            StatusCode::NOT_IMPLEMENTED,
                            "for data too large\n",
                        )
                        .into_response();
                    }
                }
            } else {
                (None, Some(body))
            };
            let json = parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|value| is_json_type(value.as_bytes()));
            let checked = match check_request(
                state,
                upstream,
                parts.uri.query(),
                json,
                rel,
                method,
                read.as_ref(),
                readable || !has_body,
            ) {
                Ok(checked) => checked,
                Err((refusal, _)) => return refusal.into_response(),
            };
            let body = match (read, unread) {
                (Some(bytes), _) => Outgoing::Full(bytes),
                (None, Some(body)) if carries_body => Outgoing::Stream(body),
                _ => Outgoing::Empty,
            };
            (Some(checked), body)
        }
        _ => (
            None,
            if carries_body {
                Outgoing::Stream(body)
            } else {
                Outgoing::Empty
            },
        ),
    };
    send(upstream, state, &mut parts, checked, body, upgrade).await
}

/// Forwards one request taken by real mode's own connection loop ([`super::serve`]): the
/// same check, exchange and reply as [`forward`], with the upstream's request head written from
/// the client's (its header lines in their order and spelling, less the connection's own
/// headers, `Host` the upstream's). `deadline` is the connection's timer, reset here to the
/// upstream timeout (one timer per connection rather than one per request). Returns the reply
/// and the operation matched (for the metrics).
pub(super) async fn forward_head(
    state: &AppState,
    upstream: &Arc<Upstream>,
    head: &RawHead<'_>,
    body: Bytes,
    deadline: Pin<&mut tokio::time::Sleep>,
) -> (Response, Option<usize>) {
    let api_rel = head
        .path
        .strip_prefix("/api2/json")
        .or_else(|| head.path.strip_prefix("/api2/extjs"))
        .map(|rel| if rel.is_empty() { "/" } else { rel });
    let has_body = head.method.has_body();
    let checked = match api_rel {
        Some(rel) => {
            let json = head.content_type.is_some_and(is_json_type);
            let body = has_body.then_some(&body);
            match check_request(
                state,
                upstream,
                head.query,
                json,
                rel,
                head.method,
                body,
                true,
            ) {
                Ok(checked) => Some(checked),
                Err((refusal, op_index)) => return (refusal.into_response(), op_index),
            }
        }
        None => None,
    };
    let op_index = checked.as_ref().and_then(|checked| checked.op_index);
    let name = checked.as_ref().map_or_else(
        || Cow::Owned(format!("{} {}", head.method.as_str(), head.path)),
        |checked| checked.name.clone(),
    );
    // Replies are validated as JSON, so they must not come compressed.
    let drop_encoding = checked.is_some();
    let mut out = Vec::with_capacity(head.len() + upstream.prefix.len() + 64);
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(upstream.prefix.as_bytes());
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = false;
    for (line_name, line) in head.lines() {
        if line_name.eq_ignore_ascii_case(b"host") {
            if !host {
                out.extend_from_slice(b"host: ");
                out.extend_from_slice(upstream.pool.host().as_bytes());
                out.extend_from_slice(b"\r\n");
                host = true;
            }
            continue;
        }
        if is_hop_by_hop(line_name)
            || (drop_encoding && line_name.eq_ignore_ascii_case(b"accept-encoding"))
        {
            continue;
        }
        out.extend_from_slice(line);
    }
    if !host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(upstream.pool.host().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if has_body && !head.content_length {
        // A form or JSON body is sent with its length, as `Pool::send` frames it.
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let sent = within(
        deadline,
        upstream.timeout,
        upstream.pool.send_head(&head.http_method, &out, &body),
    )
    .await;
    let response = match sent {
        Some(Ok(response)) => response,
        Some(Err(error)) => return (failure(upstream, &name, &error), op_index),
        None => return (timed_out(upstream, &name), op_index),
    };
    let reply = reply(
        upstream,
        state,
        &name,
        checked,
        (head.method, head.query),
        response,
        None,
    )
    .await;
    (reply, op_index)
}

/// `future`'s output, or `None` when it takes longer than `timeout` (`deadline`, reset).
async fn within<F: Future>(
    mut deadline: Pin<&mut tokio::time::Sleep>,
    timeout: std::time::Duration,
    future: F,
) -> Option<F::Output> {
    deadline
        .as_mut()
        .reset(tokio::time::Instant::now() + timeout);
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        deadline.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Whether a header (by its name, any case) belongs to one connection ([`HOP_BY_HOP`], less
/// `Host`, which is replaced rather than left out).
fn is_hop_by_hop(name: &[u8]) -> bool {
    // Most names have none of the lengths of these (a length test first: this runs for every
    // header line of every request).
    matches!(name.len(), 2 | 7 | 10 | 17 | 18 | 19)
        && HOP_BY_HOP
            .iter()
            .any(|hop| *hop != header::HOST && name.eq_ignore_ascii_case(hop.as_str().as_bytes()))
}

/// Whether a request asks to switch to WebSocket (`Upgrade: websocket`, RFC 6455 4.1).
fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"))
}

/// Whether a `Content-Type` is JSON (`application/json`, any case, parameters after it).
pub(super) fn is_json_type(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|text| {
        text.as_bytes()
            .get(..16)
            .is_some_and(|start| start.eq_ignore_ascii_case(b"application/json"))
    })
}

/// Whether a request body is read for validation: form data or JSON (not an upload).
fn body_is_readable(headers: &HeaderMap) -> bool {
    type_is_readable(
        headers
            .get(header::CONTENT_TYPE)
            .map(|value| value.as_bytes()),
    )
}

/// Whether a request body of this `Content-Type` is read for validation (see
/// [`body_is_readable`]).
pub(super) fn type_is_readable(content_type: Option<&[u8]>) -> bool {
    let media_type = content_type
        .and_then(|value| std::str::from_utf8(value).ok())
        .map(|value| {
            value
                .split([';', ','])
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    matches!(
        media_type.as_deref(),
        None | Some("") | Some("application/x-www-form-urlencoded") | Some("application/json")
    )
}

/// Matches the operation and validates the parameters; `Err` is a `--strict` refusal (with the
/// index of the operation matched, if any).
#[allow(clippy::too_many_arguments)]
fn check_request<'s>(
    state: &'s AppState,
    upstream: &Upstream,
    query: Option<&str>,
    json: bool,
    rel: &str,
    method: Method,
    body: Option<&Bytes>,
    complete: bool,
) -> Result<Checked<'s>, (AppError, Option<usize>)> {
    let matched = state.api.match_path(rel).ok().and_then(|matched| {
        state
            .api
            .operation(matched.path_index, method)
            .map(|(op_index, op)| {
                crate::http::matched(op_index);
                (matched, op_index, op)
            })
    });
    let Some((matched, op_index, op)) = matched else {
        let rel_path = percent_encoding::percent_decode_str(rel).decode_utf8_lossy();
        let shown_path = match rel_path.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        let name = format!("{} {shown_path}", method.as_str());
        upstream.discrepancies.call(&name);
        upstream.discrepancies.record(vec![Discrepancy {
            operation: name.clone(),
            direction: Direction::Request,
            pointer: String::new(),
            expected: format!("an operation of schema {}", state.api.meta.tag),
            found: name.clone(),
            message: format!("Method '{name}' not implemented"),
        }]);
        if upstream.strict {
            upstream.discrepancies.refused(&name);
            return Err((
                AppError::status(
                    StatusCode::NOT_IMPLEMENTED,
                    format!("Method '{name}' not implemented"),
                ),
                None,
            ));
        }
        return Ok(Checked {
            op: None,
            op_index: None,
            name: Cow::Owned(name),
            record_path: None,
        });
    };
    upstream.discrepancies.call(&op.operation_id);
    if complete {
        let params = validate::params(query, body.map(|bytes| (bytes.as_ref(), json)));
        let (found, errors) = match params {
            Some(mut params) => {
                for (name, value) in &matched.params {
                    params.insert(name.clone(), Value::String(value.clone()));
                }
                validate::request(&state.api, op, &mut params)
            }
            None => (
                vec![Discrepancy {
                    operation: op.operation_id.clone(),
                    direction: Direction::Request,
                    pointer: String::new(),
                    expected: "form data or a JSON object".to_owned(),
                    found: "an unreadable body".to_owned(),
                    message: "the request body could not be parsed".to_owned(),
                }],
                None,
            ),
        };
        let refuse = upstream.strict && !found.is_empty();
        upstream.discrepancies.record(found);
        if refuse {
            upstream.discrepancies.refused(&op.operation_id);
            let error = match errors {
                Some(errors) => AppError::Param(errors),
                None => AppError::bad_request("the request body could not be parsed\n"),
            };
            return Err((error, Some(op_index)));
        }
    }
    let record_path =
        (upstream.recorder.is_some() && method == Method::Get).then(|| rel.to_owned());
    Ok(Checked {
        op: Some((matched.path_index, op)),
        op_index: Some(op_index),
        name: Cow::Borrowed(&op.operation_id),
        record_path,
    })
}

/// Sends the request and passes the reply back (the request's headers are moved out of
/// `parts`).
async fn send(
    upstream: &Arc<Upstream>,
    state: &AppState,
    parts: &mut http::request::Parts,
    checked: Option<Checked<'_>>,
    body: Outgoing,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response {
    let name = checked.as_ref().map_or_else(
        || Cow::Owned(format!("{} {}", parts.method, parts.uri.path())),
        |c| c.name.clone(),
    );
    let mut request = http::Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = match upstream.target(&parts.uri) {
        Ok(uri) => uri,
        Err(error) => {
            return AppError::bad_request(format!(
                "the request target cannot be forwarded: {error}\n"
            ))
            .into_response();
        }
    };
    let client_headers = std::mem::take(&mut parts.headers);
    // Replies are validated as JSON, so they must not come compressed.
    let drop_encoding = checked.is_some() && client_headers.contains_key(header::ACCEPT_ENCODING);
    if !drop_encoding
        && client_headers
            .keys()
            .all(|name| name == header::HOST || !HOP_BY_HOP.contains(name))
    {
        // Nothing to leave out but `Host` (nearly always): the client's headers as they are,
        // with the upstream's `Host` in the place of the client's.
        let mut headers = client_headers;
        headers.insert(header::HOST, upstream.pool.host().clone());
        *request.headers_mut() = headers;
    } else {
        let headers = request.headers_mut();
        headers.reserve(client_headers.len());
        for (name, value) in &client_headers {
            if HOP_BY_HOP.contains(name) || (drop_encoding && name == header::ACCEPT_ENCODING) {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
    }
    if upgrade.is_some() {
        let headers = request.headers_mut();
        headers.insert(
            header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        headers.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
    }
    let sent = if upgrade.is_some() {
        tokio::time::timeout(upstream.timeout, upstream.pool.send_upgrade(request)).await
    } else {
        tokio::time::timeout(upstream.timeout, upstream.pool.send(request)).await
    };
    let response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return failure(upstream, &name, &error),
        Err(_) => return timed_out(upstream, &name),
    };
    let method = Method::parse(parts.method.as_str()).unwrap_or(Method::Get);
    reply(
        upstream,
        state,
        &name,
        checked,
        (method, parts.uri.query()),
        response,
        upgrade,
    )
    .await
}

/// No reply within the upstream timeout: `596`.
fn timed_out(upstream: &Upstream, name: &str) -> Response {
    upstream.discrepancies.upstream_failure(name);
    upstream_error(
        596,
        format!(
            "upstream {} did not answer within {} s\n",
            upstream.authority,
            upstream.timeout.as_secs_f64()
        ),
    )
}

/// Passes the upstream's reply back (`method` and `query`: the request's, for the check and the
/// recorder): its head as it came, less the connection's own headers, its body streamed or,
/// when small, whole; a `200` JSON reply to a checked request is queued for its check.
pub(super) async fn reply(
    upstream: &Arc<Upstream>,
    state: &AppState,
    name: &str,
    checked: Option<Checked<'_>>,
    (method, query): (Method, Option<&str>),
    mut response: http::Response<UpstreamBody>,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response {
    let status = response.status();
    let upgrade_refused = upgrade.is_some() && status != StatusCode::SWITCHING_PROTOCOLS;
    if let Some(client_side) = upgrade
        && status == StatusCode::SWITCHING_PROTOCOLS
    {
        return switch(upstream, name, response, client_side).await;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| is_json_type(value.as_bytes()));
    let content_length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let mut builder = Response::builder().status(status);
    if let Some(reply_headers) = builder.headers_mut() {
        let upstream_headers = response.headers_mut();
        if upstream_headers
            .keys()
            .any(|name| HOP_BY_HOP.contains(name))
        {
            for (name, value) in upstream_headers.iter() {
                if !HOP_BY_HOP.contains(name) {
                    reply_headers.append(name.clone(), value.clone());
                }
            }
        } else {
            // Nothing to leave out (nearly always): the upstream's headers as they are.
            *reply_headers = std::mem::take(upstream_headers);
        }
    }
    if let Some(phrase) = response.extensions().get::<hyper::ext::ReasonPhrase>() {
        builder = builder.extension(phrase.clone());
    }
    if upgrade_refused {
        // The client's bytes after this head were not read as requests (`Wire`'s raw phase):
        // the connection ends with this reply.
        builder = builder.header(header::CONNECTION, "close");
    }
    if status.is_server_error() {
        upstream.discrepancies.upstream_failure(name);
        if !is_json && checked.is_some() {
            return replace_server_error(upstream, status, response).await;
        }
    }
    let checkable = status == StatusCode::OK
        && is_json
        && content_length.is_none_or(|length| length <= MAX_CHECKED_REPLY as u64);
    let (
        Some(Checked {
            op: Some((path_index, op)),
            record_path,
            ..
        }),
        true,
    ) = (checked, checkable)
    else {
        let tee = Tee::new(upstream, &state.api, response.into_body(), None, None);
        return finish(builder, Body::new(tee));
    };
    let pending = PendingCheck {
        path_index,
        method,
        operation: op.operation_id.clone(),
        record: record_path.map(|path| (path, query.map(str::to_owned))),
    };
    // A small reply (nearly all of them) is taken whole and written to the client at once with
    // its head: streaming it would often send the head and the body in two writes, which costs
    // the client a wake-up. The body is the upstream's buffer, passed on and queued as is.
    if content_length.is_some_and(|length| length <= WHOLE_REPLY) {
        // Usually the whole body came in the read that brought the head: then it is taken
        // without a timer (creating and dropping one cost about 600 of the proxy's 44,000
        // instructions per `GET /version`, callgrind).
        let mut collect = std::pin::pin!(response.into_body().collect());
        let read = match futures::FutureExt::now_or_never(collect.as_mut()) {
            Some(read) => Ok(read),
            None => tokio::time::timeout(upstream.timeout, collect).await,
        };
        let bytes = match read
            .map_err(|_| SendError::ReadTimeout)
            .and_then(|read| read)
        {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                upstream.discrepancies.upstream_failure(&pending.operation);
                tracing::warn!(operation = %pending.operation, error = %error.chain(), "reading the upstream reply failed");
                return upstream_error(
                    597,
                    format!(
                        "reading the reply of upstream {} failed: {}\n",
                        upstream.authority,
                        error.chain()
                    ),
                );
            }
        };
        pending.submit(upstream, &state.api, bytes.clone());
        return finish(builder, Body::from(bytes));
    }
    let tee = Tee::new(
        upstream,
        &state.api,
        response.into_body(),
        content_length,
        Some(pending),
    );
    finish(builder, Body::new(tee))
}

/// A reply to check once its body has passed.
struct PendingCheck {
    path_index: usize,
    method: Method,
    operation: String,
    record: Option<(String, Option<String>)>,
}

impl PendingCheck {
    /// Queues the whole body for its check.
    fn submit(self, upstream: &Upstream, api: &crate::api::Api, body: Bytes) {
        let job = Job {
            path_index: self.path_index,
            method: self.method,
            body,
            record: self.record,
        };
        upstream.checker.submit(upstream, api, &self.operation, job);
    }
}

/// Passes a reply's body on as it arrives and keeps its chunks (reference-counted, not
/// copied); at the end the whole body goes to the check queue ([`super::checker`]). A body
/// larger than [`MAX_CHECKED_REPLY`] passes unchecked; one that fails midway, or stalls for the
/// upstream timeout between two chunks, counts as an upstream failure (the client sees the
/// connection end early, as from the upstream itself). Without a pending check it only passes
/// the body on (with the same stall limit).
struct Tee {
    /// The upstream's `Content-Length`: hyper stops polling a body once it has that much.
    expected: Option<u64>,
    inner: UpstreamBody,
    kept: Vec<Bytes>,
    length: usize,
    pending: Option<PendingCheck>,
    upstream: Arc<Upstream>,
    api: Arc<crate::api::Api>,
    /// Armed while the upstream keeps the next chunk waiting.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Tee {
    fn new(
        upstream: &Arc<Upstream>,
        api: &Arc<crate::api::Api>,
        inner: UpstreamBody,
        expected: Option<u64>,
        pending: Option<PendingCheck>,
    ) -> Tee {
        Tee {
            expected,
            inner,
            kept: Vec::new(),
            length: 0,
            pending,
            upstream: Arc::clone(upstream),
            api: Arc::clone(api),
            stall: None,
        }
    }

    /// The body failed: counted once, as an upstream failure.
    fn failed(&mut self, error: &SendError) {
        if let Some(pending) = self.pending.take() {
            self.upstream
                .discrepancies
                .upstream_failure(&pending.operation);
            tracing::warn!(operation = %pending.operation, error = %error.chain(), "reading the upstream reply failed");
        }
        self.kept = Vec::new();
    }
}

// `is_end_stream` and `size_hint` keep their defaults (not done, size unknown: the head carries the
// upstream's `Content-Length`), so that hyper polls until the end is seen and the check is queued.
impl hyper::body::Body for Tee {
    type Data = Bytes;
    type Error = SendError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, SendError>>> {
        let this = self.get_mut();
        let polled = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(polled) => {
                this.stall = None;
                polled
            }
            Poll::Pending => {
                let timeout = this.upstream.timeout;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    this.stall = None;
                    this.failed(&SendError::ReadTimeout);
                    return Poll::Ready(Some(Err(SendError::ReadTimeout)));
                }
                return Poll::Pending;
            }
        };
        let complete = match &polled {
            Some(Ok(frame)) if this.pending.is_some() => match frame.data_ref() {
                Some(chunk) => {
                    this.length += chunk.len();
                    if this.length > MAX_CHECKED_REPLY {
                        this.pending = None;
                        this.kept = Vec::new();
                        false
                    } else {
                        this.kept.push(chunk.clone());
                        this.expected == Some(this.length as u64)
                    }
                }
                None => false,
            },
            Some(Ok(_)) => false,
            Some(Err(_)) => false,
            None => true,
        };
        let polled = match polled {
            Some(Err(error)) => {
                this.failed(&error);
                Some(Err(error))
            }
            Some(Ok(frame)) => Some(Ok(frame)),
            None => None,
        };
        if complete && let Some(pending) = this.pending.take() {
            let body = join(std::mem::take(&mut this.kept), this.length);
            pending.submit(&this.upstream, &this.api, body);
        }
        Poll::Ready(polled)
    }
}

/// The chunks of a body as one buffer (the chunk itself when there is one).
fn join(mut chunks: Vec<Bytes>, length: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut joined = Vec::with_capacity(length);
    for chunk in &chunks {
        joined.extend_from_slice(chunk);
    }
    Bytes::from(joined)
}

/// The upstream switched to WebSocket: the `101` goes back to the client, and once hyper has
/// switched the client's connection too, the two carry each other's bytes until either ends.
async fn switch(
    upstream: &Upstream,
    name: &str,
    response: http::Response<UpstreamBody>,
    client_side: hyper::upgrade::OnUpgrade,
) -> Response {
    let mut builder = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    if let Some(reply_headers) = builder.headers_mut() {
        for (header_name, value) in response.headers() {
            if !HOP_BY_HOP.contains(header_name) {
                reply_headers.append(header_name.clone(), value.clone());
            }
        }
        reply_headers.insert(
            header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        reply_headers.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
    }
    let mut upstream_side = match hyper::upgrade::on(response).await {
        Ok(io) => hyper_util::rt::TokioIo::new(io),
        Err(error) => return failure(upstream, name, &SendError::Read(error)),
    };
    let operation = name.to_owned();
    tokio::spawn(async move {
        let client_side = match client_side.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(operation, %error, "the client's connection was not upgraded");
                return;
            }
        };
        let mut client_side = hyper_util::rt::TokioIo::new(client_side);
        match tokio::io::copy_bidirectional(&mut client_side, &mut upstream_side).await {
            Ok((to_upstream, to_client)) => {
                tracing::debug!(operation, to_upstream, to_client, "websocket closed");
            }
            Err(error) => tracing::debug!(operation, %error, "websocket ended"),
        }
    });
    finish(builder, Body::empty())
}

fn finish(builder: http::response::Builder, body: Body) -> Response {
    builder.body(body).unwrap_or_else(|error| {
        AppError::Internal(format!("building the proxied reply: {error}")).into_response()
    })
}

/// A Proxmox-shaped error with one of AnyEvent::HTTP's pseudo-statuses (595-599).
fn upstream_error(status: u16, message: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    AppError::status(status, message).into_response()
}

/// A failed `send`: unreachable (595), TLS or timeout (596), anything else (599).
fn failure(upstream: &Upstream, name: &str, error: &SendError) -> Response {
    upstream.discrepancies.upstream_failure(name);
    let detail = error.chain();
    tracing::warn!(operation = %name, upstream = %upstream.authority, error = %detail, "upstream request failed");
    let tls = error.is_tls()
        || detail.contains("certificate")
        || detail.to_ascii_lowercase().contains("tls");
    let (status, message) = if error.is_timeout() {
        (
            596,
            format!(
                "upstream {} did not answer within {} s\n",
                upstream.authority,
                upstream.timeout.as_secs_f64()
            ),
        )
    } else if tls {
        (
            596,
            format!(
                "TLS handshake with upstream {} failed: {detail}\n",
                upstream.authority
            ),
        )
    } else if error.is_connect() {
        (
            595,
            format!("upstream {} unreachable: {detail}\n", upstream.authority),
        )
    } else {
        (
            599,
            format!(
                "request to upstream {} failed: {detail}\n",
                upstream.authority
            ),
        )
    };
    upstream_error(status, message)
}

/// A `5xx` that is not a Proxmox reply (a load balancer's HTML page): a JSON error quoting it.
async fn replace_server_error(
    upstream: &Upstream,
    status: StatusCode,
    response: http::Response<UpstreamBody>,
) -> Response {
    let mut body = response.into_body();
    let mut quoted = Vec::new();
    let deadline = tokio::time::Instant::now() + upstream.timeout;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Some(chunk) = frame.data_ref() {
            quoted.extend_from_slice(chunk);
        }
        if quoted.len() >= MAX_QUOTED_ERROR {
            break;
        }
    }
    let text = String::from_utf8_lossy(&quoted[..quoted.len().min(MAX_QUOTED_ERROR)]);
    let first_line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    AppError::status(
        status,
        format!(
            "upstream {} answered {status} without a Proxmox reply: {}\n",
            upstream.authority,
            first_line.chars().take(200).collect::<String>()
        ),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_names_are_known_in_any_case() {
        for name in HOP_BY_HOP.iter().filter(|name| **name != header::HOST) {
            assert!(is_hop_by_hop(name.as_str().as_bytes()), "{name}");
            let upper = name.as_str().to_ascii_uppercase();
            assert!(is_hop_by_hop(upper.as_bytes()), "{upper}");
        }
        for name in [
            "Host",
            "Cookie",
            "Content-Length",
            "Keep-Alive",
            "Upgraded",
            "TEE",
            "",
        ] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }
}
