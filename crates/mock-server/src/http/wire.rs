//! Request heads as pveproxy reads them, in front of hyper (pve-http-server
//! `src/PVE/APIServer/AnyEvent.pm`: `push_request_header`, `unshift_read_header`,
//! `process_header`).
//!
//! [`Wire`] wraps a connection's byte stream. It reads each request head itself, applies
//! pveproxy's rules and limits, and hands hyper either the head (re-written in a form hyper
//! accepts) followed by exactly `Content-Length` body bytes, or, for a request pveproxy refuses,
//! a *verdict*: a made-up request carrying the [`VERDICT`] header, which [`Service`] answers in
//! pveproxy's shape (or by closing the connection) without running the router. Clients cannot
//! forge a verdict: every head from the client goes through [`Wire`], which drops that header.
//! Verdicts travel as requests so that hyper answers them in order, after the replies to earlier
//! requests of the same connection; the write side is hyper's alone.
//!
//! pveproxy's answers, and ours:
//!
//! - a request line that does not match `(\S+) (\S+) HTTP/(\d+)\.(\d+)`: `400 bad request`;
//!   an HTTP major version other than 1: `506 http protocol version 2.0 not supported`; a URL
//!   with `@` before its first `/`: `400 invalid url`. These say `HTTP/1.0` in the status line
//!   (pveproxy has not taken the request's version yet);
//! - a header line that is neither `Name: value` nor a continuation:
//!   `506 unable to parse request header`;
//! - 64 header lines (the blank line included) or 8 KiB of header text (`$limit_max_headers`,
//!   `$limit_max_header_size`): pveproxy `die`s inside its read callback and never answers; the
//!   connection is closed without a reply (pveproxy leaves it until its 5 s idle timeout);
//! - a line longer than pveproxy's read buffer (`rbuf_max`, 520 KiB): closed without a reply;
//! - a head that does not arrive within the header timeout: closed without a reply (pveproxy's
//!   idle timeout, 5 s; ours is `header_timeout`, 30 s by default);
//! - a method other than GET, POST, PUT and DELETE: `501 method 'PATCH' not available`, no body;
//! - any `Transfer-Encoding`: `501 chunked transfer encoding not supported` (or
//!   `Unknown transfer encoding 'gzip'`): pveproxy reads no chunked bodies, only
//!   `Content-Length` ones.
//!
//! Replies made by `error()` carry the message as their body, without a `Content-Type`, and
//! close the connection, as every pveproxy reply with a status of 400 or more does.
//!
//! Where hyper is stricter than pveproxy the head is adjusted the way Perl's `HTTP::Request`
//! would see it, or refused in the same shape: characters Perl's `URI` escapes are escaped;
//! continuation lines are joined; header lines hyper cannot represent (a name that is no
//! token, a value with control characters) are dropped; `HTTP/1.x` is passed on as `HTTP/1.1`
//! (`HTTP/1.0` stays). Two refusals are the mock's own: a request target over 65,534 bytes
//! (hyper's limit; pveproxy accepts up to its read buffer) gets `414 request URI too long`, and
//! a `Content-Length` that is not a number gets `400 bad request`.

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, Version, header};
use hyper::body::Incoming;
use regex::bytes::Regex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tower::ServiceExt;

/// The header of a made-up request that carries a verdict from [`Wire`] to [`Service`].
pub(crate) const VERDICT: &str = "x-proxmox-mock-wire-verdict";

/// `$limit_max_headers`: header lines, the closing blank line included.
const MAX_HEADER_LINES: usize = 64;
/// `$limit_max_header_size`: bytes of header lines (without line ends).
const MAX_HEADER_SIZE: usize = 8 * 1024;
/// `rbuf_max` of pveproxy's handle (`$limit_max_post + $limit_max_header_size`).
const MAX_BUFFER: usize = 512 * 1024 + 8 * 1024;
/// The longest request target hyper takes (`MAX_URI_LEN` in hyper's `proto/h1/role.rs`).
const MAX_TARGET: usize = u16::MAX as usize - 1;
/// How much one read from the client asks for while a head is incomplete.
const READ_CHUNK: usize = 16 * 1024;

/// The methods pveproxy knows (`$known_methods`).
const KNOWN_METHODS: [&[u8]; 4] = [b"GET", b"POST", b"PUT", b"DELETE"];

/// A connection's inbound stream, checked and re-written head by head (see the module docs).
pub(crate) struct Wire<S> {
    inner: S,
    /// Bytes from the client not yet handed on.
    pending: Vec<u8>,
    /// Where a head's bytes are read to (zeroed once, not on every read).
    scratch: Vec<u8>,
    /// What hyper gets next (a head), and how much of it it has.
    out: Vec<u8>,
    out_at: usize,
    phase: Phase,
    /// How long a head may take to arrive; armed when hyper first asks for a head.
    timeout: Duration,
    /// The head's deadline: made for the connection's first head and reset for each later
    /// one (a new timer per request cost an allocation and the timer wheel's insertion and
    /// removal on every request of a keep-alive connection).
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `deadline` runs for the head being read (it is left set, not dropped, between
    /// heads; a disarmed deadline that fires only wakes the connection once, to no effect).
    armed: bool,
    /// Whether a request asking for a protocol upgrade switches the stream to [`Phase::Raw`]
    /// (real mode, which passes WebSocket consoles through).
    upgrades: bool,
}

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a head.
    Head,
    /// Passing on this many more body bytes.
    Body(u64),
    /// A verdict was handed on; nothing more is read.
    Done,
    /// After a request asking for an upgrade: everything passes through unread (hyper either
    /// upgrades the connection, or the reply closes it, see `crate::upstream`).
    Raw,
}

impl<S> Wire<S> {
    /// Wraps a connection; `timeout` bounds how long each head may take; `upgrades`: see
    /// [`Phase::Raw`].
    pub(crate) fn new(inner: S, timeout: Duration, upgrades: bool) -> Wire<S> {
        Wire {
            inner,
            pending: Vec::new(),
            scratch: Vec::new(),
            out: Vec::new(),
            out_at: 0,
            phase: Phase::Head,
            timeout,
            deadline: None,
            armed: false,
            upgrades,
        }
    }
}

impl<S: AsyncRead + Unpin> Wire<S> {
    /// Moves on from a parsed head: its re-written form or a verdict becomes `out`.
    fn take(&mut self, outcome: Outcome) {
        self.armed = false;
        self.out_at = 0;
        match outcome {
            Outcome::Forward {
                head,
                used,
                body,
                upgrade,
                ..
            } => {
                self.pending.drain(..used);
                self.out = head;
                self.phase = if upgrade && self.upgrades && body == 0 {
                    Phase::Raw
                } else {
                    Phase::Body(body)
                };
            }
            Outcome::Verdict(verdict) => {
                tracing::debug!(verdict = %verdict.describe(), "request refused before hyper");
                self.pending = Vec::new();
                self.out = verdict.request();
                self.phase = Phase::Done;
            }
            Outcome::Incomplete => {}
        }
    }

    /// Whether the head being read is late: arms the head's deadline when it is not running
    /// yet (made for the connection's first head, reset for each later one) and polls it.
    fn head_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let timeout = self.timeout;
        let deadline = match &mut self.deadline {
            Some(deadline) => {
                if !self.armed {
                    deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + timeout);
                }
                deadline
            }
            None => self.deadline.insert(Box::pin(tokio::time::sleep(timeout))),
        };
        self.armed = true;
        deadline.as_mut().poll(cx).is_ready()
    }

    /// The next request head for a connection loop of its own (real mode's,
    /// `crate::upstream::serve`), read with pveproxy's rules and limits and the header timeout
    /// as for hyper. The head stays unread until the loop takes it ([`Wire::consume`]); what
    /// the loop does not take (a refusal, an upgrade, a head it declines) is left for hyper.
    pub(crate) fn poll_next_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Next>> {
        debug_assert!(self.phase == Phase::Head && self.out_at >= self.out.len());
        loop {
            match parse(&self.pending) {
                Outcome::Forward {
                    head,
                    lines,
                    used,
                    body,
                    upgrade,
                } => {
                    if upgrade {
                        return Poll::Ready(Ok(Next::Hyper));
                    }
                    return Poll::Ready(Ok(Next::Head {
                        head,
                        lines,
                        used,
                        body,
                    }));
                }
                Outcome::Verdict(_) => return Poll::Ready(Ok(Next::Hyper)),
                Outcome::Incomplete => {}
            }
            if self.head_timed_out(cx) {
                tracing::debug!("request refused: close: header timeout");
                return Poll::Ready(Ok(Next::End));
            }
            if !ready!(self.fill(cx))? {
                return Poll::Ready(Ok(Next::End));
            }
        }
    }

    /// Takes the head [`Wire::poll_next_head`] returned (its `used` bytes of input).
    pub(crate) fn consume(&mut self, used: usize) {
        self.armed = false;
        self.pending.drain(..used.min(self.pending.len()));
    }

    /// Reads a request body of `length` bytes taken after a head from [`Wire::poll_next_head`];
    /// `None` when the client ends the connection first.
    ///
    /// The buffer grows with what arrives, [`READ_CHUNK`] at a time: a client that announces a
    /// large body and sends nothing does not make the server hold memory for it.
    pub(crate) async fn read_body(&mut self, length: usize) -> io::Result<Option<Vec<u8>>> {
        use tokio::io::AsyncReadExt as _;
        let from_pending = length.min(self.pending.len());
        let mut body = Vec::with_capacity(from_pending.max(length.min(READ_CHUNK)));
        body.extend_from_slice(&self.pending[..from_pending]);
        self.pending.drain(..from_pending);
        while body.len() < length {
            let want = length - body.len();
            body.reserve(want.min(READ_CHUNK));
            let read = (&mut self.inner)
                .take(want as u64)
                .read_buf(&mut body)
                .await?;
            if read == 0 {
                return Ok(None);
            }
        }
        Ok(Some(body))
    }

    /// Reads more of a head from the client; `Ok(false)` at end of stream.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.scratch.is_empty() {
            self.scratch = vec![0; READ_CHUNK];
        }
        let mut buf = ReadBuf::new(&mut self.scratch);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
        let read = buf.filled().len();
        self.pending.extend_from_slice(&self.scratch[..read]);
        Poll::Ready(Ok(read > 0))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_at < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_at);
                buf.put_slice(&this.out[this.out_at..this.out_at + n]);
                this.out_at += n;
                return Poll::Ready(Ok(()));
            }
            match this.phase {
                Phase::Done => return Poll::Pending,
                Phase::Raw => {
                    if !this.pending.is_empty() {
                        let n = buf.remaining().min(this.pending.len());
                        buf.put_slice(&this.pending[..n]);
                        this.pending.drain(..n);
                        return Poll::Ready(Ok(()));
                    }
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                Phase::Body(0) => this.phase = Phase::Head,
                Phase::Body(left) => {
                    let room = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(buf.remaining());
                    if !this.pending.is_empty() {
                        let n = room.min(this.pending.len());
                        buf.put_slice(&this.pending[..n]);
                        this.pending.drain(..n);
                        this.phase = Phase::Body(left - n as u64);
                        return Poll::Ready(Ok(()));
                    }
                    let mut limited = ReadBuf::new(buf.initialize_unfilled_to(room));
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
                    let n = limited.filled().len();
                    buf.advance(n);
                    this.phase = Phase::Body(left - n as u64);
                    return Poll::Ready(Ok(()));
                }
                Phase::Head => {
                    let outcome = parse(&this.pending);
                    if !matches!(outcome, Outcome::Incomplete) {
                        this.take(outcome);
                        continue;
                    }
                    if this.head_timed_out(cx) {
                        this.take(Outcome::Verdict(Verdict::Close("header timeout")));
                        continue;
                    }
                    if !ready!(this.fill(cx))? {
                        // The client is gone (pveproxy's `on_eof`): hyper sees the end too.
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// What [`Wire::poll_next_head`] found.
#[derive(Debug)]
pub(crate) enum Next {
    /// A head, re-written as for hyper (`METHOD TARGET HTTP/1.x`, one `Name: value` line per
    /// header, an empty line), to be followed by `body` bytes; `lines`: where each header line
    /// starts in `head` and how long its name is; `used`: how many bytes of input it is.
    Head {
        head: Vec<u8>,
        lines: Vec<(u32, u32)>,
        used: usize,
        body: u64,
    },
    /// A head for hyper (a refusal, an upgrade), left unread.
    Hyper,
    /// The client is gone, or its head is late (closed without a reply, as pveproxy does).
    End,
}

/// What to do with the bytes read so far.
#[derive(Debug)]
enum Outcome {
    /// Not a whole head yet.
    Incomplete,
    /// A head to pass on (`used` bytes of input), followed by `body` bytes; `upgrade`: it asks
    /// for a protocol upgrade (`Upgrade`); `lines`: where each header line starts in `head`, and
    /// the length of its name.
    Forward {
        head: Vec<u8>,
        lines: Vec<(u32, u32)>,
        used: usize,
        body: u64,
        upgrade: bool,
    },
    /// A refusal.
    Verdict(Verdict),
}

/// A refused request: a pveproxy reply, or a close without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Close the connection without a reply; the reason is logged.
    Close(&'static str),
    /// Reply like `PVE::APIServer::AnyEvent::error` (`body` true: the message is the body) or
    /// like a bare `HTTP::Response` (no body).
    Reply {
        /// `HTTP/1.0` (before pveproxy took the request's version) or the request's.
        http10: bool,
        status: u16,
        message: String,
        body: bool,
    },
}

impl Verdict {
    fn error(http10: bool, status: u16, message: impl Into<String>) -> Verdict {
        Verdict::Reply {
            http10,
            status,
            message: message.into(),
            body: true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Verdict::Close(reason) => format!("close: {reason}"),
            Verdict::Reply {
                status, message, ..
            } => format!("{status} {}", message.escape_debug()),
        }
    }

    /// The made-up request that carries the verdict to [`Service`].
    fn request(&self) -> Vec<u8> {
        let value = match self {
            Verdict::Close(reason) => format!("close {reason}").replace(' ', "+"),
            Verdict::Reply {
                http10,
                status,
                message,
                body,
            } => format!(
                "reply {} {status} {} {}",
                if *http10 { "1.0" } else { "1.1" },
                if *body { "body" } else { "none" },
                hex::encode(message.as_bytes()),
            )
            .replace(' ', "+"),
        };
        format!("GET / HTTP/1.1\r\n{VERDICT}: {value}\r\nconnection: close\r\n\r\n").into_bytes()
    }

    /// Reads the verdict of a request made by [`Verdict::request`].
    fn from_request(value: &HeaderValue) -> Option<Verdict> {
        let text = value.to_str().ok()?;
        let mut words = text.split('+');
        match words.next()? {
            "close" => Some(Verdict::Close("refused before hyper")),
            "reply" => {
                let http10 = words.next()? == "1.0";
                let status = words.next()?.parse().ok()?;
                let body = words.next()? == "body";
                let message = String::from_utf8(hex::decode(words.next()?).ok()?).ok()?;
                Some(Verdict::Reply {
                    http10,
                    status,
                    message,
                    body,
                })
            }
            _ => None,
        }
    }

    /// pveproxy's reply (`PVE::APIServer::AnyEvent::response`): the message's first line as
    /// the reason (a message with a CR makes it `400 Bad Request`), `Cache-Control`, `Pragma`,
    /// `Expires`, `Server`, `Connection: close`, and no `Content-Type`.
    fn into_response(self) -> Option<Response> {
        let Verdict::Reply {
            http10,
            status,
            message,
            body,
        } = self
        else {
            return None;
        };
        let first = message.lines().next().unwrap_or_default();
        let (status, reason, content) = match StatusCode::from_u16(status) {
            Ok(status) if !first.contains('\r') => {
                let content = if body { message.clone() } else { String::new() };
                (status, first.to_owned(), content)
            }
            _ => (
                StatusCode::BAD_REQUEST,
                "Bad Request".to_owned(),
                String::new(),
            ),
        };
        let mut response = Response::new(Body::from(content));
        *response.status_mut() = status;
        if http10 {
            *response.version_mut() = Version::HTTP_10;
        }
        let date = http_date(SystemTime::now());
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=0"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::SERVER,
            HeaderValue::from_static("pve-api-daemon/3.0"),
        );
        if let Ok(date) = HeaderValue::from_str(&date) {
            headers.insert(header::EXPIRES, date.clone());
            headers.insert(header::DATE, date);
        }
        if !reason.is_empty()
            && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
        {
            response.extensions_mut().insert(phrase);
        }
        Some(response)
    }
}

/// Marks a response after which the connection is closed without sending it (pveproxy `die`s
/// without answering); [`Service`] turns it into a service error, on which hyper closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseWithoutReply;

/// The error [`Service`] gives hyper to close a connection without a reply.
#[derive(Debug)]
pub(crate) struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed without a reply, as pveproxy does")
    }
}

impl std::error::Error for Closed {}

/// The hyper service of a connection: verdicts from [`Wire`] are answered here, every other
/// request goes to the router.
#[derive(Clone)]
pub(crate) struct Service {
    router: Router,
    /// The API paths, served without the router ([`super::ApiService`]).
    api: super::ApiService,
}

impl Service {
    pub(crate) fn new(router: Router, api: super::ApiService) -> Service {
        Service { router, api }
    }
}

impl hyper::service::Service<http::Request<Incoming>> for Service {
    type Response = Response;
    type Error = Closed;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Closed>> + Send>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        if let Some(value) = request.headers().get(VERDICT) {
            let verdict = Verdict::from_request(value);
            return Box::pin(async move { verdict.and_then(Verdict::into_response).ok_or(Closed) });
        }
        // Every `/api2/` path is the router's fallback: no route of the router starts so.
        let direct = request.uri().path().starts_with("/api2/");
        let (router, api) = if direct {
            (None, Some(self.api.clone()))
        } else {
            (Some(self.router.clone()), None)
        };
        Box::pin(async move {
            let request = request.map(Body::new);
            let answered = match (router, api) {
                (_, Some(api)) => api.oneshot(request).await,
                (Some(router), None) => router.oneshot(request).await,
                (None, None) => return Err(Closed),
            };
            let response = match answered {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<CloseWithoutReply>().is_some() {
                return Err(Closed);
            }
            Ok(response)
        })
    }
}

/// pveproxy's request line (`push_request_header`), unanchored as there.
static REQUEST_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)(\S+) (\S+) HTTP/(\d+)\.(\d+)").unwrap_or_else(|_| unreachable!())
});
/// A header line (`unshift_read_header`).
static HEADER_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)^([^:\s]+)\s*:\s*(.*)").unwrap_or_else(|_| unreachable!()));
/// A continuation line.
static CONTINUATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)^\s+(.*)").unwrap_or_else(|_| unreachable!()));

/// Whitespace as `\s` matches it without Unicode (`[\t\n\x0B\x0C\r ]`).
fn is_space(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// A request line's method, target, and major and minor version.
type RequestLine<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a [u8]);

/// The common request line, `METHOD TARGET HTTP/<digits>.<digits>` with single spaces and
/// nothing after, split without a regex; `None` for anything else, which [`REQUEST_LINE`]
/// then decides. For such a line the regex's leftmost match starts at the first byte and its
/// groups are exactly these parts, so the answer is the same.
fn simple_request_line(line: &[u8]) -> Option<RequestLine<'_>> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (method, url, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |part: &[u8]| !part.is_empty() && !part.iter().any(|&b| is_space(b));
    let version = version.strip_prefix(b"HTTP/")?;
    let dot = version.iter().position(|&b| b == b'.')?;
    let (major, minor) = (&version[..dot], &version[dot + 1..]);
    let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    (token(method) && token(url) && digits(major) && digits(minor))
        .then_some((method, url, major, minor))
}

/// A header line whose name runs from the first byte to the first `:` without whitespace,
/// split without a regex: [`HEADER_LINE`] matches such a line with the same groups (the name,
/// and the rest after the colon and any whitespace). `None` for anything else.
fn simple_header_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':' || is_space(b))?;
    if colon == 0 || line[colon] != b':' {
        return None;
    }
    let rest = &line[colon + 1..];
    let skip = rest.iter().take_while(|&&b| is_space(b)).count();
    Some((&line[..colon], &rest[skip..]))
}

/// The next line of `data` from `at`: its content (without `\r?\n`) and where the next starts.
fn line(data: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let end = memchr::memchr(b'\n', &data[at..])? + at;
    let content = &data[at..end];
    let content = content.strip_suffix(b"\r").unwrap_or(content);
    Some((content, end + 1))
}

/// Reads one head from the start of `data` (see the module docs for the rules).
fn parse(data: &[u8]) -> Outcome {
    // Empty lines before a request are skipped.
    let mut at = 0;
    let request_line = loop {
        match line(data, at) {
            // (Counting the blank lines before it, so that they cannot fill memory either.)
            None if data.len() > MAX_BUFFER => {
                return Outcome::Verdict(Verdict::Close("request line over rbuf_max"));
            }
            None => return Outcome::Incomplete,
            Some((content, next)) => {
                at = next;
                if !content.is_empty() {
                    break content;
                }
            }
        }
    };
    let Some((method, url, major, minor)) = simple_request_line(request_line).or_else(|| {
        let captures = REQUEST_LINE.captures(request_line)?;
        let text = |i: usize| captures.get(i).map(|m| m.as_bytes()).unwrap_or_default();
        Some((text(1), text(2), text(3), text(4)))
    }) else {
        return Outcome::Verdict(Verdict::error(true, 400, "bad request"));
    };
    if trim_zeros(major) != b"1" {
        return Outcome::Verdict(Verdict::error(
            true,
            506,
            format!(
                "http protocol version {}.{} not supported",
                String::from_utf8_lossy(major),
                String::from_utf8_lossy(minor)
            ),
        ));
    }
    let before_slash = url.split(|&b| b == b'/').next().unwrap_or_default();
    if before_slash.contains(&b'@') {
        return Outcome::Verdict(Verdict::error(true, 400, "invalid url"));
    }
    let http10 = trim_zeros(minor).is_empty();
    // Borrowed from `data`; a value only becomes owned when a continuation line extends it.
    let mut headers: Vec<(&[u8], Cow<'_, [u8]>)> = Vec::with_capacity(16);
    let (mut count, mut size) = (0usize, 0usize);
    loop {
        let Some((content, next)) = line(data, at) else {
            // A line that cannot end within the limit ends the same way as the whole one would.
            // (Less one byte: the partial line may end in the `\r` of its line end.)
            if size + (data.len() - at).saturating_sub(1) >= MAX_HEADER_SIZE {
                return Outcome::Verdict(Verdict::Close("http header too large"));
            }
            return Outcome::Incomplete;
        };
        at = next;
        count += 1;
        if count >= MAX_HEADER_LINES {
            return Outcome::Verdict(Verdict::Close("too many http header lines"));
        }
        size += content.len();
        if size >= MAX_HEADER_SIZE {
            return Outcome::Verdict(Verdict::Close("http header too large"));
        }
        if content.is_empty() {
            break;
        }
        if let Some((name, value)) = simple_header_line(content) {
            headers.push((name, Cow::Borrowed(value)));
        } else if let Some(found) = HEADER_LINE.captures(content) {
            let name = found.get(1).map(|m| m.as_bytes()).unwrap_or_default();
            let value = found.get(2).map(|m| m.as_bytes()).unwrap_or_default();
            headers.push((name, Cow::Borrowed(value)));
        } else if let Some(found) = CONTINUATION.captures(content) {
            if let Some((_, value)) = headers.last_mut() {
                let value = value.to_mut();
                value.push(b' ');
                value.extend_from_slice(found.get(1).map(|m| m.as_bytes()).unwrap_or_default());
            }
        } else {
            return Outcome::Verdict(Verdict::error(
                http10,
                506,
                "unable to parse request header",
            ));
        }
    }
    if !KNOWN_METHODS.contains(&method) {
        return Outcome::Verdict(Verdict::Reply {
            http10,
            status: 501,
            message: format!("method '{}' not available", String::from_utf8_lossy(method)),
            body: false,
        });
    }
    // A header's values joined with `, ` (borrowed when it has one line, as nearly always).
    let joined = |name: &str| -> Option<Cow<'_, [u8]>> {
        let mut values = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &**v);
        let first = values.next()?;
        let mut all = match values.next() {
            None => return Some(Cow::Borrowed(first)),
            Some(second) => [first, b", ", second].concat(),
        };
        for value in values {
            all.extend_from_slice(b", ");
            all.extend_from_slice(value);
        }
        Some(Cow::Owned(all))
    };
    // Perl's truth: an empty value and "0" are false.
    if let Some(te) = joined("transfer-encoding").filter(|v| !v.is_empty() && **v != *b"0") {
        let message = if te.eq_ignore_ascii_case(b"chunked") {
            "chunked transfer encoding not supported".to_owned()
        } else {
            format!(
                "Unknown transfer encoding '{}'",
                String::from_utf8_lossy(&te)
            )
        };
        return Outcome::Verdict(Verdict::error(http10, 501, message));
    }
    let body = match joined("content-length") {
        None => 0,
        Some(value) => match content_length(&value) {
            Some(length) => length,
            None => return Outcome::Verdict(Verdict::error(http10, 400, "bad request")),
        },
    };
    let target = escape_target(url);
    if target.len() > MAX_TARGET {
        return Outcome::Verdict(Verdict::error(http10, 414, "request URI too long"));
    }
    if !is_plain_path(&target) && http::Uri::try_from(&*target).is_err() {
        return Outcome::Verdict(Verdict::error(http10, 400, "bad request"));
    }
    let mut head = Vec::with_capacity(at + 32);
    head.extend_from_slice(method);
    head.push(b' ');
    head.extend_from_slice(&target);
    head.extend_from_slice(if http10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    let mut lines = Vec::with_capacity(headers.len());
    for (name, value) in &headers {
        let value = value.trim_ascii();
        let acceptable = is_header_name(name)
            && !name.eq_ignore_ascii_case(VERDICT.as_bytes())
            && is_header_value(value);
        if acceptable {
            // (A head is at most the longest target and 8 KiB of header lines.)
            lines.push((head.len() as u32, name.len() as u32));
            head.extend_from_slice(name);
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
    }
    head.extend_from_slice(b"\r\n");
    let upgrade = joined("upgrade").is_some_and(|value| !value.trim_ascii().is_empty());
    Outcome::Forward {
        head,
        lines,
        used: at,
        body,
        upgrade,
    }
}

/// Digits without leading zeros (Perl compares versions as numbers).
fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&b| b != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

/// A `Content-Length`: digits, or a list of equal ones (several header lines).
fn content_length(value: &[u8]) -> Option<u64> {
    let mut length = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let parsed: u64 = std::str::from_utf8(part).ok()?.parse().ok()?;
        if length.is_some_and(|known| known != parsed) {
            return None;
        }
        length = Some(parsed);
    }
    length
}

/// Whether an escaped target (see [`escape_target`]) is a path that `http::Uri` surely takes: it
/// starts with `/` and has none of `#`, `[` and `]` (every other byte [`escape_target`] leaves
/// is one a path and query may hold). Anything else is left to `http::Uri` to decide.
fn is_plain_path(target: &[u8]) -> bool {
    target.first() == Some(&b'/') && !target.iter().any(|b| matches!(b, b'#' | b'[' | b']'))
}

/// Escapes what Perl's `URI->new` escapes: every byte outside RFC 2396's `uric`, `#`, `[`
/// and `]` becomes `%XX`.
fn escape_target(url: &[u8]) -> Cow<'_, [u8]> {
    if url.iter().all(|&b| URI_KEPT[usize::from(b)]) {
        return Cow::Borrowed(url);
    }
    let mut out = Vec::with_capacity(url.len() + 16);
    for &b in url {
        if URI_KEPT[usize::from(b)] {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    Cow::Owned(out)
}

/// The bytes [`escape_target`] keeps: RFC 2396's `uric`, `%`, `#`, `[` and `]`.
static URI_KEPT: [bool; 256] = byte_set(b"-_.!~*'();/?:@&=+$,%#[]", true);

/// The bytes of a header name hyper takes (RFC 9110 `tchar`; `http::HeaderName::from_bytes`
/// takes exactly these, upper case folded).
static TCHAR: [bool; 256] = byte_set(b"!#$%&'*+-.^_`|~", true);

/// A table of `extra` plus, with `alphanumeric`, the ASCII letters and digits.
const fn byte_set(extra: &[u8], alphanumeric: bool) -> [bool; 256] {
    let mut set = [false; 256];
    let mut i = 0;
    while i < extra.len() {
        set[extra[i] as usize] = true;
        i += 1;
    }
    let mut b = 0;
    while b < 128 {
        if alphanumeric && (b as u8).is_ascii_alphanumeric() {
            set[b] = true;
        }
        b += 1;
    }
    set
}

/// Whether hyper takes `name` as a header name (what `http::HeaderName::from_bytes` accepts).
fn is_header_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= MAX_HEADER_NAME && name.iter().all(|&b| TCHAR[usize::from(b)])
}

/// `http::HeaderName`'s longest name.
const MAX_HEADER_NAME: usize = 1 << 16;

/// Whether hyper takes `value` as a header value (what `http::HeaderValue::from_bytes`
/// accepts: visible ASCII, spaces, tabs and bytes from 0x80).
fn is_header_value(value: &[u8]) -> bool {
    // Without an early exit, so that it compiles to a vector loop (a ticket cookie is about
    // 400 bytes).
    value.iter().fold(true, |ok, &b| {
        ok & (((b >= 32) & (b != 127)) | (b == b'\t'))
    })
}

/// An HTTP date (RFC 9110 IMF-fixdate), as `HTTP::Date::time2str` writes it.
pub(crate) fn http_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use http::HeaderName;
    use tokio::io::AsyncWriteExt;

    /// Polls `wire` once for what it hands on: `None` while it waits (a head is incomplete).
    async fn poll_once<S: AsyncRead + Unpin>(wire: &mut Wire<S>) -> Option<Vec<u8>> {
        let mut buf = vec![0; 4096];
        std::future::poll_fn(|cx| {
            let mut read = ReadBuf::new(&mut buf);
            Poll::Ready(match Pin::new(&mut *wire).poll_read(cx, &mut read) {
                Poll::Ready(result) => {
                    result.unwrap();
                    Some(read.filled().to_vec())
                }
                Poll::Pending => None,
            })
        })
        .await
    }

    /// Each head has the whole timeout from the moment it is first waited for, also on a
    /// keep-alive connection whose earlier head armed the (reused) deadline long before.
    #[tokio::test(start_paused = true)]
    async fn every_head_gets_the_whole_header_timeout() {
        let timeout = Duration::from_millis(300);
        let (mut client, server) = tokio::io::duplex(4096);
        let mut wire = Wire::new(server, timeout, false);

        client.write_all(b"GET /a HTTP/1.1\r\n").await.unwrap();
        assert_eq!(
            poll_once(&mut wire).await,
            None,
            "the first head is incomplete"
        );
        client.write_all(b"Host: x\r\n\r\n").await.unwrap();
        let first = poll_once(&mut wire).await.unwrap();
        assert!(first.starts_with(b"GET /a HTTP/1.1\r\n"), "{first:?}");

        tokio::time::advance(Duration::from_millis(250)).await;
        client.write_all(b"GET /b HTTP/1.1\r\n").await.unwrap();
        assert_eq!(
            poll_once(&mut wire).await,
            None,
            "the second head is incomplete"
        );
        // 500 ms after the first head's deadline was armed, 250 ms after the second's.
        tokio::time::advance(Duration::from_millis(250)).await;
        client.write_all(b"Host: x\r\n\r\n").await.unwrap();
        let second = poll_once(&mut wire).await.unwrap();
        assert!(second.starts_with(b"GET /b HTTP/1.1\r\n"), "{second:?}");
    }

    /// A head that does not arrive within the timeout ends the connection (a verdict that
    /// closes it), on the first request and on a later one alike.
    #[tokio::test(start_paused = true)]
    async fn a_head_late_past_the_timeout_closes_the_connection() {
        let timeout = Duration::from_millis(300);
        let (mut client, server) = tokio::io::duplex(4096);
        let mut wire = Wire::new(server, timeout, false);

        client
            .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n")
            .await
            .unwrap();
        let first = poll_once(&mut wire).await.unwrap();
        assert!(first.starts_with(b"GET /a HTTP/1.1\r\n"), "{first:?}");
        assert_eq!(
            poll_once(&mut wire).await,
            None,
            "the second head is incomplete"
        );
        tokio::time::advance(Duration::from_millis(301)).await;
        let verdict = poll_once(&mut wire).await.unwrap();
        let text = String::from_utf8_lossy(&verdict).to_ascii_lowercase();
        assert!(text.contains(VERDICT), "{text}");
        assert!(text.contains("close+header+timeout"), "{text}");
    }

    /// The byte tables take exactly what `http` takes: every byte alone, and in a name or a
    /// value of several bytes.
    #[test]
    fn header_checks_agree_with_http() {
        for b in 0..=255u8 {
            for bytes in [vec![b], vec![b'a', b, b'z']] {
                assert_eq!(
                    is_header_name(&bytes),
                    HeaderName::from_bytes(&bytes).is_ok(),
                    "name {bytes:?}"
                );
                assert_eq!(
                    is_header_value(&bytes),
                    HeaderValue::from_bytes(&bytes).is_ok(),
                    "value {bytes:?}"
                );
            }
        }
        assert!(!is_header_name(b""));
    }

    /// Targets that need no escaping are passed on as they are; others are escaped as Perl's
    /// `URI` escapes them.
    #[tokio::test]
    async fn a_body_is_read_as_it_arrives_and_only_that_far() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, server) = tokio::io::duplex(64);
        let mut wire = Wire::new(server, Duration::from_secs(5), false);
        client
            .write_all(b"POST /a HTTP/1.1\r\nContent-Length: 40000\r\n\r\nfirst")
            .await
            .unwrap();
        let Ok(Next::Head { used, body, .. }) =
            std::future::poll_fn(|cx| wire.poll_next_head(cx)).await
        else {
            panic!("no head");
        };
        assert_eq!(body, 40_000);
        wire.consume(used);
        let sender = tokio::spawn(async move {
            // The rest in pieces, then the next request, which stays unread.
            for _ in 0..(40_000 - 5) / 5 {
                client.write_all(b"12345").await.unwrap();
            }
            client.write_all(b"GET /b HTTP/1.1\r\n\r\n").await.unwrap();
            client
        });
        let read = wire.read_body(40_000).await.unwrap().unwrap();
        assert_eq!(read.len(), 40_000);
        assert!(read.starts_with(b"first12345"));
        let _client = sender.await.unwrap();
        let next = std::future::poll_fn(|cx| wire.poll_next_head(cx))
            .await
            .unwrap();
        assert!(
            matches!(&next, Next::Head { head, .. } if head.starts_with(b"GET /b ")),
            "{next:?}"
        );
        // A client that goes away within its body: no body.
        let (client, server) = tokio::io::duplex(64);
        let mut wire = Wire::new(server, Duration::from_secs(5), false);
        drop(client);
        assert!(wire.read_body(10).await.unwrap().is_none());
    }

    #[test]
    fn plain_paths_are_paths_http_takes() {
        let kept: Vec<u8> = (0..=255u8)
            .filter(|&b| URI_KEPT[usize::from(b)] && !matches!(b, b'#' | b'[' | b']'))
            .collect();
        assert!(kept.len() > 70);
        for &b in &kept {
            for target in [
                vec![b'/', b],
                vec![b'/', b'a', b, b'?', b, b'=', b],
                vec![b'/', b, b'/', b],
            ] {
                assert!(is_plain_path(&target));
                assert!(
                    http::Uri::try_from(&target[..]).is_ok(),
                    "{:?}",
                    String::from_utf8_lossy(&target)
                );
            }
        }
        let all: Vec<u8> = [b"/".as_slice(), &kept, b"?", &kept].concat();
        assert!(is_plain_path(&all) && http::Uri::try_from(&all[..]).is_ok());
        for other in [&b"*"[..], b"http://a/b", b"/a#b", b"/[::1]", b"a/b", b""] {
            assert!(!is_plain_path(other), "{other:?}");
        }
    }

    #[test]
    fn escape_target_borrows_when_nothing_changes() {
        assert!(matches!(
            escape_target(b"/api2/json/nodes?x=1&y=[2]#f"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            &*escape_target(b"/a b\"{}|^`\x80"),
            b"/a%20b%22%7B%7D%7C%5E%60%80"
        );
    }

    fn verdict(data: &[u8]) -> Verdict {
        match parse(data) {
            Outcome::Verdict(verdict) => verdict,
            other => panic!("{other:?}"),
        }
    }

    fn forward(data: &[u8]) -> (String, usize, u64) {
        match parse(data) {
            Outcome::Forward {
                head, used, body, ..
            } => (String::from_utf8(head).unwrap(), used, body),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_fast_paths_agree_with_the_regexes() {
        let lines: &[&[u8]] = &[
            b"GET /api2/json/version HTTP/1.1",
            b"POST /x?a=b HTTP/1.0",
            b"GET / HTTP/01.001",
            b"GET  /x HTTP/1.1",
            b"GET /a b HTTP/1.1",
            b"GET /x HTTP/1.1 trailing",
            b"GET /x HTTP/1.1.5",
            b"GET /x HTTP/1.",
            b"GET /x HTTP/.1",
            b"GET /x\t HTTP/1.1",
            b" GET /x HTTP/1.1",
            b"GET /\xff HTTP/1.1",
            b"GET /x HTTPS/1.1",
            b"garbage",
        ];
        for line in lines {
            let regex = REQUEST_LINE.captures(line).map(|c| {
                let text = |i: usize| c.get(i).map(|m| m.as_bytes()).unwrap_or_default();
                (text(1), text(2), text(3), text(4))
            });
            if let Some(fast) = simple_request_line(line) {
                assert_eq!(Some(fast), regex, "{}", line.escape_ascii());
            }
        }
        assert!(simple_request_line(b"GET /api2/json/version HTTP/1.1").is_some());
        let headers: &[&[u8]] = &[
            b"Host: localhost",
            b"Cookie:PVEAuthCookie=abc; x=y",
            b"X-Empty:",
            b"X-Spaces: \t value with : colons ",
            b"Host : spaced",
            b" continued",
            b":no-name",
            b"no colon",
            b"Name\x0b: odd",
            b"N\xffme: bytes \xfe",
        ];
        for line in headers {
            let regex = HEADER_LINE.captures(line).map(|c| {
                let text = |i: usize| c.get(i).map(|m| m.as_bytes()).unwrap_or_default();
                (text(1), text(2))
            });
            if let Some(fast) = simple_header_line(line) {
                assert_eq!(Some(fast), regex, "{}", line.escape_ascii());
            }
        }
        assert!(simple_header_line(b"Host: localhost").is_some());
    }

    #[test]
    fn request_lines_as_pveproxy_reads_them() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Outcome::Incomplete));
        assert_eq!(
            verdict(b"garbage\r\n\r\n"),
            Verdict::error(true, 400, "bad request")
        );
        assert_eq!(
            verdict(b"PRI * HTTP/2.0\r\n\r\n"),
            Verdict::error(true, 506, "http protocol version 2.0 not supported")
        );
        assert_eq!(
            verdict(b"GET user@host/x HTTP/1.1\r\n\r\n"),
            Verdict::error(true, 400, "invalid url")
        );
        let (head, used, body) = forward(b"\r\nGET /a%20b?x=<y> HTTP/1.1\nHost: h\n\nrest");
        assert_eq!(head, "GET /a%20b?x=%3Cy%3E HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((used, body), (37, 0));
        let (head, _, _) = forward(b"GET / HTTP/1.0\r\n\r\n");
        assert!(head.starts_with("GET / HTTP/1.0\r\n"));
    }

    #[test]
    fn headers_as_pveproxy_reads_them() {
        let (head, _, body) = forward(
            b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nX-Long: a\r\n  b\r\nBad(Name): 1\r\n\r\n",
        );
        assert_eq!(
            head,
            "POST /x HTTP/1.1\r\nContent-Length: 5\r\nX-Long: a b\r\n\r\n"
        );
        assert_eq!(body, 5);
        assert_eq!(
            verdict(b"GET / HTTP/1.1\r\n: no name\r\n\r\n"),
            Verdict::error(false, 506, "unable to parse request header")
        );
        let many: String = (0..63).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(matches!(
            verdict(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Verdict::Close(_)
        ));
        let fewer: String = (0..62).map(|i| format!("X-{i}: v\r\n")).collect();
        forward(format!("GET / HTTP/1.1\r\n{fewer}\r\n").as_bytes());
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "v".repeat(9000));
        assert!(matches!(verdict(big.as_bytes()), Verdict::Close(_)));
        assert!(matches!(
            verdict(format!("GET / HTTP/1.1\r\nX: {}", "v".repeat(9000)).as_bytes()),
            Verdict::Close(_)
        ));
        let spoof = forward(format!("GET / HTTP/1.1\r\n{VERDICT}: close\r\n\r\n").as_bytes());
        assert_eq!(spoof.0, "GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn methods_bodies_and_targets() {
        assert_eq!(
            verdict(b"PATCH / HTTP/1.1\r\n\r\n"),
            Verdict::Reply {
                http10: false,
                status: 501,
                message: "method 'PATCH' not available".to_owned(),
                body: false,
            }
        );
        assert_eq!(
            verdict(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Verdict::error(false, 501, "chunked transfer encoding not supported")
        );
        assert_eq!(
            verdict(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Verdict::error(false, 501, "Unknown transfer encoding 'gzip'")
        );
        assert_eq!(
            verdict(b"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"),
            Verdict::error(false, 400, "bad request")
        );
        assert_eq!(
            forward(b"POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n").2,
            7
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(70_000));
        assert_eq!(
            verdict(long.as_bytes()),
            Verdict::error(false, 414, "request URI too long")
        );
        let endless = vec![b'a'; MAX_BUFFER + 1];
        assert!(matches!(verdict(&endless), Verdict::Close(_)));
        let blank = b"\r\n".repeat(MAX_BUFFER / 2 + 1);
        assert!(matches!(verdict(&blank), Verdict::Close(_)));
    }

    #[test]
    fn verdicts_round_trip_through_their_request() {
        for verdict in [
            Verdict::error(true, 400, "bad request"),
            Verdict::Reply {
                http10: false,
                status: 501,
                message: "method 'X+Y' not available".to_owned(),
                body: false,
            },
        ] {
            let request = verdict.request();
            let text = String::from_utf8(request).unwrap();
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{VERDICT}: ")))
                .unwrap();
            let parsed = Verdict::from_request(&HeaderValue::from_str(value).unwrap());
            assert_eq!(parsed, Some(verdict));
        }
    }

    #[test]
    fn dates_as_http_date_writes_them() {
        let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(http_date(time), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
