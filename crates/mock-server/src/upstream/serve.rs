//! Real mode's client connections: a server loop of our own for the proxied requests, hyper
//! for the rest.
//!
//! In real mode nearly every request is an `/api2/` call to forward, and hyper's server (its
//! second parse of a head [`Wire`] has already parsed, the request and response types, the
//! service layers around the forwarding) cost about a third of the proxy's instructions per
//! request. So each connection is served here first: [`Wire`] reads each head with pveproxy's
//! rules and limits as before, and a head this loop takes (see [`takes`]) is forwarded from its
//! bytes ([`super::forward::forward_head`]: the same check, exchange and reply handling as the
//! hyper path), and the reply is written by [`write_response`] in the form hyper writes it
//! (status line, headers in order, `content-length` or `chunked`, `date`, `connection: close`
//! when the client asked for it). The first head the loop does not take (a refusal, an upgrade
//! such as a console's WebSocket, an upload, `Expect`, HTTP/1.0, a path outside `/api2/`, a
//! body too large to check) is left unread, and the connection is handed to hyper with
//! everything it has not read: hyper then serves that request and the rest of the connection
//! as it serves every connection in mock mode. Requests are answered one at a time, in order,
//! so pipelined requests keep their order as with hyper.
//!
//! Each request taken is counted in the metrics under its operation, as the observation layer
//! counts it. The loop is not used when the request span or the request log line is enabled
//! (`DEBUG` for `mock_server::http::observe` or `mock_server::server`): those connections go to
//! hyper from the start, through the observation layer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::response::Response;
use bytes::Bytes;
use futures::FutureExt as _;
use http::{StatusCode, header};
use http_body_util::BodyExt as _;
use route_metadata::Method;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;

use super::Upstream;
use super::forward::{forward_head, type_is_readable};
use crate::http::{Next, Wire};
use crate::state::AppState;
use crate::telemetry::metrics::{RequestLabel, RequestMetrics, method_index};

/// Largest request body the loop reads (form data or JSON, to be checked); a larger one goes
/// to hyper, which refuses it as pveproxy does.
const MAX_BODY: u64 = 512 * 1024;

/// Body bytes copied behind a reply's head to go in the same write.
const COALESCE: usize = 64 * 1024;

/// Serves one client connection of real mode (see the module docs); `hyper` serves what the
/// loop does not take, from the first such request to the connection's end.
pub(crate) async fn serve<S, H, F>(
    mut wire: Wire<S>,
    state: AppState,
    upstream: Arc<Upstream>,
    mut stopped: watch::Receiver<bool>,
    hyper: H,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    H: FnOnce(Wire<S>, watch::Receiver<bool>) -> F,
    F: Future<Output = ()>,
{
    if !quiet() {
        return hyper(wire, stopped).await;
    }
    let mut out = Vec::with_capacity(4 * 1024);
    // The upstream timeout of the request in flight, reset for each one.
    let mut deadline = std::pin::pin!(tokio::time::sleep(upstream.timeout));
    loop {
        let next = tokio::select! {
            biased;
            Ok(_) = stopped.wait_for(|stop| *stop) => return,
            next = std::future::poll_fn(|cx| wire.poll_next_head(cx)) => next,
        };
        match next {
            Ok(Next::Head {
                head,
                lines,
                used,
                body,
            }) => {
                let Some(raw) = RawHead::parse(&head, &lines).filter(|raw| takes(raw, body)) else {
                    return hyper(wire, stopped).await;
                };
                wire.consume(used);
                let keep = exchange(
                    (&mut wire, &mut out),
                    &state,
                    &upstream,
                    (&raw, body),
                    deadline.as_mut(),
                )
                .await;
                if !keep {
                    let _ = wire.shutdown().await;
                    return;
                }
            }
            Ok(Next::Hyper) => return hyper(wire, stopped).await,
            Ok(Next::End) | Err(_) => return,
        }
    }
}

/// Whether neither the request span nor the request log line is wanted (both belong to the
/// observation layer of the hyper path).
fn quiet() -> bool {
    !tracing::enabled!(target: "mock_server::http::observe", tracing::Level::DEBUG)
        && !tracing::enabled!(target: "mock_server::server", tracing::Level::DEBUG)
}

/// Whether the loop takes a head (re-written by [`Wire`]) followed by `body` bytes: an HTTP/1.1
/// request for `/api2/`, without `Expect`, whose body (if any) is form data or JSON of at most
/// [`MAX_BODY`] bytes sent with a method that carries its parameters in the body.
fn takes(raw: &RawHead<'_>, body: u64) -> bool {
    if !raw.path.starts_with("/api2/") || raw.expect {
        return false;
    }
    if raw.method.has_body() {
        body <= MAX_BODY && type_is_readable(raw.content_type)
    } else {
        body == 0
    }
}

/// One request taken by the loop: its body read, forwarded, counted, and its reply written.
/// Returns whether the connection goes on.
async fn exchange<S>(
    (wire, out): (&mut Wire<S>, &mut Vec<u8>),
    state: &AppState,
    upstream: &Arc<Upstream>,
    (raw, body): (&RawHead<'_>, u64),
    deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let _in_flight = InFlight::new(&state.metrics);
    let body = if body == 0 {
        Bytes::new()
    } else {
        match usize::try_from(body) {
            Ok(length) => match wire.read_body(length).await {
                Ok(Some(bytes)) => Bytes::from(bytes),
                Ok(None) | Err(_) => return false,
            },
            Err(_) => return false,
        }
    };
    // A panic becomes a logged 500, as `CatchPanicLayer` makes it on the hyper path.
    let forwarded =
        std::panic::AssertUnwindSafe(forward_head(state, upstream, raw, body, deadline))
            .catch_unwind()
            .await;
    let (response, operation) = match forwarded {
        Ok(forwarded) => forwarded,
        Err(panic) => (crate::http::panic_response(panic), None),
    };
    let label = match operation {
        Some(index) => RequestLabel::Operation(index),
        None => RequestLabel::Unmatched,
    };
    state.metrics.observe(
        label,
        method_index(&raw.http_method),
        response.status().as_u16(),
        started.elapsed(),
    );
    write_response(wire, response, raw.close, out).await
}

/// A request in flight for the metrics' gauge, until dropped.
struct InFlight<'a>(&'a RequestMetrics);

impl<'a> InFlight<'a> {
    fn new(metrics: &'a RequestMetrics) -> InFlight<'a> {
        metrics.arrive();
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A request head as [`Wire`] re-writes it (`METHOD TARGET HTTP/1.1`, then one
/// `Name: value\r\n` line per header with the value trimmed, then an empty line), read
/// without copying.
pub(crate) struct RawHead<'a> {
    pub(super) method: Method,
    pub(super) http_method: http::Method,
    /// The request target (origin-form, escaped as Perl's `URI` escapes it).
    pub(super) target: &'a str,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    head: &'a [u8],
    /// Where each header line starts in `head`, and the length of its name.
    lines: &'a [(u32, u32)],
    /// The length of the head's header lines.
    headers: usize,
    pub(super) content_type: Option<&'a [u8]>,
    /// Whether the request has a `Content-Length`.
    pub(super) content_length: bool,
    /// Whether the client asked to close the connection after this request.
    pub(super) close: bool,
    /// Whether the request has an `Expect` header.
    expect: bool,
}

impl<'a> RawHead<'a> {
    /// Reads a re-written head and its table of lines (see [`Next::Head`]); `None` for what the
    /// loop does not serve (not HTTP/1.1, a target that is not a plain origin-form path, a
    /// method other than pveproxy's four).
    pub(crate) fn parse(head: &'a [u8], lines: &'a [(u32, u32)]) -> Option<RawHead<'a>> {
        let end = match lines.first() {
            Some(&(start, _)) => start as usize,
            None => head.len().checked_sub(2)?,
        };
        let request_line = head.get(..end)?.strip_suffix(b"\r\n")?;
        let mut parts = request_line.splitn(3, |&b| b == b' ');
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        if version != b"HTTP/1.1" {
            return None;
        }
        let (method, http_method) = match method {
            b"GET" => (Method::Get, http::Method::GET),
            b"POST" => (Method::Post, http::Method::POST),
            b"PUT" => (Method::Put, http::Method::PUT),
            b"DELETE" => (Method::Delete, http::Method::DELETE),
            _ => return None,
        };
        let target = std::str::from_utf8(target).ok()?;
        // A fragment would be cut off by a URI parser: hyper's path serves that.
        if !target.starts_with('/') || target.contains('#') {
            return None;
        }
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let headers = head.len().checked_sub(end + 2)?;
        let mut raw = RawHead {
            method,
            http_method,
            target,
            path,
            query,
            head,
            lines,
            headers,
            content_type: None,
            content_length: false,
            close: false,
            expect: false,
        };
        for (name, line) in raw.lines() {
            let value = line
                .get(name.len() + 2..line.len().saturating_sub(2))
                .unwrap_or_default();
            if name.eq_ignore_ascii_case(b"content-type") {
                raw.content_type.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                raw.content_length = true;
            } else if name.eq_ignore_ascii_case(b"connection") {
                raw.close |= value
                    .split(|&b| b == b',')
                    .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
            } else if name.eq_ignore_ascii_case(b"expect") {
                raw.expect = true;
            }
        }
        Some(raw)
    }

    /// The header lines: each one's name and the whole line with its line end.
    pub(super) fn lines(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        let head = self.head;
        // The headers end with the empty line.
        let ends = self
            .lines
            .iter()
            .skip(1)
            .map(|&(start, _)| start as usize)
            .chain(std::iter::once(head.len().saturating_sub(2)));
        self.lines
            .iter()
            .zip(ends)
            .map(move |(&(start, name), end)| {
                let start = start as usize;
                let line = head.get(start..end).unwrap_or_default();
                (line.get(..name as usize).unwrap_or_default(), line)
            })
    }

    /// The length of the head's target and header lines (for sizing a buffer).
    pub(super) fn len(&self) -> usize {
        self.target.len() + self.headers
    }
}

/// How a reply's body is delimited on the client's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (`204`, `304`).
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (a body of unknown size).
    Chunked,
}

/// Writes a reply head into `out` as hyper's server writes it for an HTTP/1.1 request: the
/// status line (the reason phrase of `hyper::ext::ReasonPhrase`, else the canonical one), the
/// headers in their order with lower-case names, `connection: close` when the client asked to
/// close and the reply does not say so already, `content-length` from the headers or the body's
/// exact size (else `transfer-encoding: chunked`), and `date` unless the reply has one.
/// Returns the framing and whether the connection may go on after the reply.
fn encode_head(
    parts: &http::response::Parts,
    close_asked: bool,
    exact: Option<u64>,
    out: &mut Vec<u8>,
) -> (Framing, bool) {
    let status = parts.status;
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
    if status == StatusCode::OK && reason.is_none() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        match reason {
            Some(reason) => out.extend_from_slice(reason.as_bytes()),
            None => out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = status == StatusCode::SWITCHING_PROTOCOLS
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut length = None;
    let mut date = false;
    let mut close = false;
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            if length.is_some() {
                continue;
            }
            length = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok());
        } else if name == header::TRANSFER_ENCODING {
            // The framing is this writer's own (a proxied reply has none left either).
            continue;
        } else if name == header::DATE {
            date = true;
        } else if name == header::CONNECTION {
            close |= value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close_asked && !close {
        out.extend_from_slice(b"connection: close\r\n");
        close = true;
    }
    let framing = if bodiless {
        Framing::None
    } else if let Some(length) = length {
        Framing::Length(length)
    } else if let Some(exact) = exact {
        out.extend_from_slice(format!("content-length: {exact}\r\n").as_bytes());
        Framing::Length(exact)
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    if !date {
        out.extend_from_slice(b"date: ");
        append_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (framing, !close)
}

/// Appends the current time as an HTTP date, formatted at most once a second per thread (as
/// hyper caches it).
fn append_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    CACHED.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = crate::http::http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// Writes a reply to the client (see [`encode_head`]); a small body goes in the same write as
/// the head, a body that is not at hand yet streams after it. Returns whether the connection
/// goes on: not when either side asked to close, the body failed or came short (the client
/// then sees the connection end, as hyper ends it), or a write failed.
async fn write_response<S>(
    io: &mut S,
    response: Response,
    close_asked: bool,
    out: &mut Vec<u8>,
) -> bool
where
    S: AsyncWrite + Unpin,
{
    let (mut parts, mut body) = response.into_parts();
    out.clear();
    if parts.status.is_informational() {
        // As hyper: a `101` (from an upstream, to a request that did not ask to switch) goes
        // out without a body and ends the connection; any other `1xx` is not sent, a bare
        // `500` is, and the connection ends too.
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        if !switching {
            parts.status = StatusCode::INTERNAL_SERVER_ERROR;
            parts.headers.clear();
            parts.extensions.clear();
        }
        encode_head(&parts, close_asked && switching, Some(0), out);
        let _ = io.write_all(out).await;
        let _ = io.flush().await;
        return false;
    }
    let exact = if hyper::body::Body::is_end_stream(&body) {
        Some(0)
    } else {
        hyper::body::Body::size_hint(&body).exact()
    };
    let (framing, keep) = encode_head(&parts, close_asked, exact, out);
    let complete = match framing {
        Framing::None => true,
        Framing::Length(length) => {
            let mut left = length;
            loop {
                if left == 0 {
                    break true;
                }
                let Some(data) = next_data(io, &mut body, out).await else {
                    break false;
                };
                let Ok(data) = data else {
                    break false;
                };
                let take = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                if !push(io, out, &data[..take]).await {
                    return false;
                }
                left -= take as u64;
            }
        }
        Framing::Chunked => loop {
            let Some(data) = next_data(io, &mut body, out).await else {
                out.extend_from_slice(b"0\r\n\r\n");
                break true;
            };
            let Ok(data) = data else {
                break false;
            };
            if data.is_empty() {
                continue;
            }
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            if !push(io, out, &data).await {
                return false;
            }
            out.extend_from_slice(b"\r\n");
        },
    };
    if io.write_all(out).await.is_err() || io.flush().await.is_err() {
        return false;
    }
    out.clear();
    complete && keep
}

/// The body's next data (frames without data are skipped); what is in `out` is written first
/// when the body has nothing at hand, so that a head does not wait for a slow body. `None` at
/// the body's end, `Some(Err(()))` when the body or a write failed.
async fn next_data<S>(
    io: &mut S,
    body: &mut axum::body::Body,
    out: &mut Vec<u8>,
) -> Option<Result<Bytes, ()>>
where
    S: AsyncWrite + Unpin,
{
    loop {
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    if io.write_all(out).await.is_err() || io.flush().await.is_err() {
                        return Some(Err(()));
                    }
                    out.clear();
                }
                body.frame().await
            }
        };
        match frame? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(_) => return Some(Err(())),
        }
    }
}

/// Queues `data` behind what `out` holds, or writes both when that would make `out` large.
async fn push<S>(io: &mut S, out: &mut Vec<u8>, data: &[u8]) -> bool
where
    S: AsyncWrite + Unpin,
{
    if out.len() + data.len() <= COALESCE {
        out.extend_from_slice(data);
        return true;
    }
    if io.write_all(out).await.is_err() || io.write_all(data).await.is_err() {
        return false;
    }
    out.clear();
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::convert::Infallible;

    use axum::body::Body;
    use bytes::Bytes;
    use http::HeaderValue;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A reply as the test builds it again for each writer.
    type Make = fn() -> Response;

    /// What hyper's server writes for the reply `make` builds, to a request with `extra` header
    /// lines, with the value of `date` left out.
    async fn by_hyper(make: Make, extra: &str) -> String {
        let (client, server) = tokio::io::duplex(1 << 20);
        let service =
            hyper::service::service_fn(move |_request| async move { Ok::<_, Infallible>(make()) });
        let connection = tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .serve_connection(hyper_util::rt::TokioIo::new(server), service)
                .await;
        });
        let mut client = client;
        client
            .write_all(format!("GET / HTTP/1.1\r\nHost: a\r\n{extra}\r\n").as_bytes())
            .await
            .unwrap();
        // The client's end of the stream: hyper (with half-closed connections allowed, which
        // changes nothing of how it writes) finishes the reply, then closes.
        client.shutdown().await.unwrap();
        let mut written = Vec::new();
        client.read_to_end(&mut written).await.unwrap();
        drop(client);
        connection.abort();
        without_date(&written)
    }

    /// What [`write_response`] writes for the same reply.
    async fn by_loop(make: Make, close_asked: bool) -> (String, bool) {
        let mut written = Vec::new();
        let mut out = Vec::new();
        let keep = write_response(&mut written, make(), close_asked, &mut out).await;
        (without_date(&written), keep)
    }

    /// The text, with the digits of the `date` line masked (the time moves, its form must not).
    fn without_date(bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        text.split("\r\n")
            .map(|line| {
                if line.starts_with("date: ") {
                    line.chars()
                        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
                        .collect()
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    fn json_ok() -> Response {
        let mut response = Response::new(Body::from(r#"{"data":{"version":"9.0.3"}}"#));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        response
    }

    fn with_length_and_date() -> Response {
        let mut response = json_ok();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("28"));
        headers.insert(
            header::DATE,
            HeaderValue::from_static("Tue, 01 Dec 2026 08:00:00 GMT"),
        );
        headers.append("x-twice", HeaderValue::from_static("1"));
        headers.append("x-twice", HeaderValue::from_static("2"));
        response
    }

    fn refused() -> Response {
        let mut response = Response::new(Body::from(r#"{"data":null,"message":"no"}"#));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response.extensions_mut().insert(
            hyper::ext::ReasonPhrase::try_from(&b"Parameter verification failed."[..]).unwrap(),
        );
        response
    }

    fn not_found() -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    }

    fn no_content() -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
    }

    fn streamed() -> Response {
        let parts = futures::stream::iter(
            ["first", "second", "", "third"].map(|part| Ok::<_, Infallible>(Bytes::from(part))),
        );
        Response::new(Body::from_stream(parts))
    }

    fn switching() -> Response {
        let mut response = json_ok();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        response
    }

    fn early_hints() -> Response {
        let mut response = json_ok();
        *response.status_mut() = StatusCode::from_u16(103).unwrap();
        response
    }

    fn closing() -> Response {
        let mut response = json_ok();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    #[tokio::test]
    async fn replies_are_written_as_hyper_writes_them() {
        let cases: [(&str, Make); 9] = [
            ("json", json_ok),
            ("length and date", with_length_and_date),
            ("reason phrase", refused),
            ("empty", not_found),
            ("no content", no_content),
            ("streamed", streamed),
            ("closing", closing),
            ("switching", switching),
            ("informational", early_hints),
        ];
        for (what, make) in cases {
            for close_asked in [false, true] {
                let extra = if close_asked {
                    "Connection: close\r\n"
                } else {
                    ""
                };
                let hyper = by_hyper(make, extra).await;
                let (ours, keep) = by_loop(make, close_asked).await;
                assert_eq!(ours, hyper, "{what}, close asked: {close_asked}");
                let closes =
                    close_asked || ["closing", "switching", "informational"].contains(&what);
                assert_eq!(keep, !closes, "{what}, close asked: {close_asked}");
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_fails_ends_the_connection_after_what_came() {
        let parts = futures::stream::iter([
            Ok(Bytes::from_static(b"part")),
            Err(std::io::Error::other("upstream gone")),
        ]);
        let response = Response::new(Body::from_stream(parts));
        let mut written = Vec::new();
        let keep = write_response(&mut written, response, false, &mut Vec::new()).await;
        assert!(!keep);
        let text = String::from_utf8(written).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n4\r\npart\r\n"), "{text}");
    }

    /// What [`Wire`] makes of `input`: the head and its table of lines.
    async fn wire_head(input: &[u8]) -> Option<(Vec<u8>, Vec<(u32, u32)>)> {
        let mut wire = Wire::new(input, std::time::Duration::from_secs(5), true);
        match std::future::poll_fn(|cx| wire.poll_next_head(cx)).await {
            Ok(Next::Head { head, lines, .. }) => Some((head, lines)),
            _ => None,
        }
    }

    /// Whether the loop takes `input` with `body` bytes after it.
    async fn taken(input: &str, body: u64) -> bool {
        let (head, lines) = wire_head(input.as_bytes()).await.unwrap();
        RawHead::parse(&head, &lines).is_some_and(|raw| takes(&raw, body))
    }

    #[tokio::test]
    async fn heads_are_read_as_wire_writes_them() {
        let input = b"POST /api2/json/nodes/pve1/qemu?full=1 HTTP/1.1\r\n\
            Host: a\r\nContent-Type:  application/json \r\nContent-Length: 2\r\n\
            Connection: keep-alive, Close\r\nX-Empty:\r\n\r\n{}";
        let (head, lines) = wire_head(input).await.unwrap();
        let raw = RawHead::parse(&head, &lines).unwrap();
        assert_eq!(raw.method, Method::Post);
        assert_eq!(raw.http_method, http::Method::POST);
        assert_eq!(raw.target, "/api2/json/nodes/pve1/qemu?full=1");
        assert_eq!(raw.path, "/api2/json/nodes/pve1/qemu");
        assert_eq!(raw.query, Some("full=1"));
        assert_eq!(raw.content_type, Some(&b"application/json"[..]));
        assert!(raw.content_length && raw.close && !raw.expect);
        let lines: Vec<(&[u8], &[u8])> = raw.lines().collect();
        assert_eq!(
            lines,
            [
                (&b"Host"[..], &b"Host: a\r\n"[..]),
                (b"Content-Type", b"Content-Type: application/json\r\n"),
                (b"Content-Length", b"Content-Length: 2\r\n"),
                (b"Connection", b"Connection: keep-alive, Close\r\n"),
                (b"X-Empty", b"X-Empty: \r\n"),
            ]
        );
        let (head, lines) = wire_head(b"GET /api2/json/version HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let raw = RawHead::parse(&head, &lines).unwrap();
        assert_eq!(raw.path, "/api2/json/version");
        assert_eq!(raw.lines().count(), 0);

        for refused in [
            &b"GET /api2/json/version HTTP/1.0\r\n\r\n"[..],
            b"GET http://a/api2/json/version HTTP/1.1\r\n\r\n",
            b"GET /api2/json/version#x HTTP/1.1\r\n\r\n",
        ] {
            let (head, lines) = wire_head(refused).await.unwrap();
            assert!(RawHead::parse(&head, &lines).is_none(), "{refused:?}");
        }
        // Refusals and upgrades are hyper's.
        for hyper in [
            &b"PATCH /api2/json/version HTTP/1.1\r\n\r\n"[..],
            b"GET /api2/json/version HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /api2/json/vncwebsocket HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        ] {
            assert!(wire_head(hyper).await.is_none(), "{hyper:?}");
        }
    }

    #[tokio::test]
    async fn the_loop_takes_api_calls_and_leaves_the_rest_to_hyper() {
        let head = |method: &str, path: &str, extra: &str| {
            format!("{method} {path} HTTP/1.1\r\nHost: a\r\n{extra}\r\n")
        };
        let form = "Content-Type: application/x-www-form-urlencoded\r\n";
        assert!(taken(&head("GET", "/api2/json/version", ""), 0).await);
        assert!(taken(&head("GET", "/api2/extjs/version", ""), 0).await);
        assert!(taken(&head("POST", "/api2/json/access/ticket", form), 100).await);
        assert!(taken(&head("POST", "/api2/json/access/ticket", ""), 0).await);
        let json = "Content-Type: application/json\r\n";
        assert!(taken(&head("PUT", "/api2/json/x", json), 10).await);
        // An upload, a body too large to check, a body on a GET, `Expect`, not the API.
        let upload = "Content-Type: multipart/form-data\r\n";
        assert!(!taken(&head("POST", "/api2/json/upload", upload), 10).await);
        assert!(!taken(&head("POST", "/api2/json/x", form), MAX_BODY + 1).await);
        assert!(!taken(&head("GET", "/api2/json/version", ""), 1).await);
        let expect = "Expect: 100-continue\r\n";
        assert!(!taken(&head("POST", "/api2/json/x", expect), 10).await);
        assert!(!taken(&head("GET", "/openapi.json", ""), 0).await);
        assert!(!taken(&head("GET", "/_mock/discrepancies", ""), 0).await);
    }
}
