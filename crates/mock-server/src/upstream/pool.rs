//! The upstream's connections: one upstream host, so one pool, and the HTTP/1.1 exchange on
//! them in the request's own task.
//!
//! Idle connections are plain streams (TCP, or `rustls` over TCP) with their read buffer, in a
//! small lock-protected stack, last in first out, so that a burst reuses the connections that
//! were busy a moment ago and the others age out. A request takes the newest idle connection
//! that is still usable (nothing arrived on it since: an upstream that closed it, or sent
//! bytes nobody asked for, leaves it unusable; tokio's cached readiness tells without a system
//! call), or opens a new one (TCP with `TCP_NODELAY` and the connect timeout, then `rustls` with
//! the configuration of [`super::tls`]: hyper-util's `HttpConnector` under `hyper-rustls`, whose
//! errors and their messages the proxy's replies quote).
//!
//! The exchange is our own HTTP/1.1 client codec ([`super::h1`]), run by the task of the
//! client's request, with no connection task to hand the request to and the reply back from:
//! the request head (and a body read for validation) is written with one write, the reply head
//! is read and parsed, and the body is read from the connection as the client side polls it
//! ([`UpstreamBody`]; a reply that arrived whole with its head is handed on at once and its
//! connection goes back to the stack before the head is even returned). Uploads stream to the
//! upstream as they come (`Content-Length` when known, else `chunked`), downloads stream back.
//! A connection goes back to the stack when the reply's body has been read to its end; one
//! whose reply was not read to the end, that failed, closed, or whose reply said
//! `Connection: close` (or ran to the connection's end) is never reused. At most
//! [`Pool::new`]'s `max_idle` connections wait; one idle for longer than the idle timeout is
//! closed (when met at checkout, and by a reaper task).
//!
//! HTTP/1.1 cannot tell a request that never reached a closing connection from one that did.
//! When a reused connection fails while the request is written, or ends (EOF, reset) before a
//! single byte of reply, the upstream closed it while it was idle: a request whose body is at
//! hand (none, or read for validation) is then sent once more on a new connection, as hyper-util's
//! pooled client does for a request the connection never took. A streaming upload is not.
//!
//! A WebSocket handshake (a console) is the exception: it goes through hyper's
//! `client::conn::http1` on a connection of its own, which then belongs to the upgrade.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::SendError;
use super::h1::{self, Decoder, ReplyHead, WireError};

/// Opens a connection to the upstream (TCP, then TLS for `https`).
pub(super) type Connector = HttpsConnector<HttpConnector>;

/// Bytes a read asks for at least (the read buffer grows by [`READ_CHUNK`] below that).
const MIN_READ: usize = 4 * 1024;

/// How much the read buffer grows at a time.
const READ_CHUNK: usize = 16 * 1024;

/// A request body this large or smaller is copied behind the head, to go in the same write.
const COPIED_BODY: usize = 16 * 1024;

/// A request's body, as the pool sends it.
pub(crate) enum Outgoing {
    /// None.
    Empty,
    /// At hand (read for validation): sent with `Content-Length`, and again if the request
    /// has to be retried.
    Full(Bytes),
    /// Streamed as it comes (an upload): `Content-Length` when its size is known, else
    /// `chunked`.
    Stream(Body),
}

impl Outgoing {
    /// As a body for hyper (the WebSocket path).
    fn into_body(self) -> Body {
        match self {
            Outgoing::Empty => Body::empty(),
            Outgoing::Full(bytes) => Body::from(bytes),
            Outgoing::Stream(body) => body,
        }
    }
}

/// The connections to the upstream.
pub(crate) struct Pool {
    connector: Connector,
    /// `scheme://host:port`: what the connector connects to.
    target: Uri,
    /// The `Host` header of every request (`host`, with `:port` when it is not the scheme's).
    host: HeaderValue,
    idle_timeout: Duration,
    max_idle: usize,
    /// Idle connections, the newest last.
    idle: Mutex<Vec<Idle>>,
    /// Whether the task that closes connections idle for too long runs.
    reaper: AtomicBool,
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("target", &self.target)
            .field("idle", &self.idle_count())
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(super) fn new(
        connector: Connector,
        target: Uri,
        host: HeaderValue,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Pool {
        Pool {
            connector,
            target,
            host,
            idle_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
            reaper: AtomicBool::new(false),
        }
    }

    /// The `Host` header of the upstream's requests.
    pub(crate) fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Sends a request (origin-form URI, `/path?query`) and returns the reply with its head; the
    /// body is read from the connection as it is polled. The `Host` header is set unless the
    /// request has one; the body's framing headers are the pool's (`Content-Length` of the body
    /// at hand, or `Transfer-Encoding: chunked` for a stream of unknown size).
    pub(crate) async fn send(
        self: &Arc<Self>,
        request: Request<Outgoing>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let (mut parts, body) = request.into_parts();
        self.frame_request(&mut parts.headers, &body);
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str());
        let (mut conn, reused) = match self.checkout() {
            Some(conn) => (conn, true),
            None => (self.connect().await?, false),
        };
        let head = match body {
            Outgoing::Stream(body) => {
                let chunked = parts.headers.contains_key(header::TRANSFER_ENCODING);
                conn.write.clear();
                h1::encode_head(&parts.method, target, &parts.headers, &mut conn.write);
                conn.send_stream(body, chunked)
                    .await
                    .map_err(SendError::Exchange)?;
                conn.read_head(&parts.method)
                    .await
                    .map_err(|(error, _)| SendError::Exchange(error))?
            }
            Outgoing::Empty | Outgoing::Full(_) => {
                let bytes = match &body {
                    Outgoing::Full(bytes) => bytes.clone(),
                    _ => Bytes::new(),
                };
                let encode = |out: &mut Vec<u8>| {
                    h1::encode_head(&parts.method, target, &parts.headers, out);
                };
                return self
                    .exchange_whole(conn, reused, &parts.method, encode, &bytes)
                    .await;
            }
        };
        Ok(self.reply(conn, head))
    }

    /// Sends a request whose head is written already (`head`: request line, headers with
    /// `Host` and the body's framing, empty line) and whose body is at hand, and returns the
    /// reply as [`Pool::send`] does (real mode's own connection loop, `super::serve`).
    pub(crate) async fn send_head(
        self: &Arc<Self>,
        method: &Method,
        head: &[u8],
        body: &Bytes,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let (conn, reused) = match self.checkout() {
            Some(conn) => (conn, true),
            None => (self.connect().await?, false),
        };
        let encode = |out: &mut Vec<u8>| out.extend_from_slice(head);
        self.exchange_whole(conn, reused, method, encode, body)
            .await
    }

    /// The exchange of a request whose body is at hand: sent once more on a new connection
    /// when a reused one turns out to have been closed by the upstream.
    async fn exchange_whole(
        self: &Arc<Self>,
        mut conn: Box<Conn>,
        mut reused: bool,
        method: &Method,
        encode: impl Fn(&mut Vec<u8>),
        body: &Bytes,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let head = loop {
            conn.write.clear();
            encode(&mut conn.write);
            match conn.exchange(method, body).await {
                Ok(head) => break head,
                // The idle connection had been closed by the upstream: once more, on a new
                // connection.
                Err((_, true)) if reused => {
                    conn = self.connect().await?;
                    reused = false;
                }
                Err((error, _)) => return Err(SendError::Exchange(error)),
            }
        };
        Ok(self.reply(conn, head))
    }

    /// Sets the request's `Host` (unless it has one) and its body's framing headers.
    fn frame_request(&self, headers: &mut HeaderMap, body: &Outgoing) {
        headers
            .entry(header::HOST)
            .or_insert_with(|| self.host.clone());
        if headers.contains_key(header::TRANSFER_ENCODING) {
            headers.remove(header::TRANSFER_ENCODING);
        }
        let length = match body {
            // As hyper did: no framing header of its own for a request without a body.
            Outgoing::Empty => return,
            Outgoing::Full(bytes) => Some(bytes.len() as u64),
            Outgoing::Stream(body) => hyper::body::Body::size_hint(body).exact(),
        };
        match length {
            Some(length) => {
                let value = HeaderValue::from(length);
                if headers.get(header::CONTENT_LENGTH) != Some(&value) {
                    headers.insert(header::CONTENT_LENGTH, value);
                }
            }
            None => {
                headers.remove(header::CONTENT_LENGTH);
                headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            }
        }
    }

    /// The reply for a parsed head: its body is taken at once when it is all in the buffer
    /// (and the connection goes back to the stack), else read as it is polled.
    fn reply(self: &Arc<Self>, mut conn: Box<Conn>, head: ReplyHead) -> Response<UpstreamBody> {
        let ReplyHead {
            status,
            version,
            reason,
            headers,
            body: decoder,
            keep_alive,
        } = head;
        let body = match decoder.remaining() {
            Some(length) if length <= conn.read.len() as u64 => {
                let data = conn.read.split_to(length as usize).freeze();
                if keep_alive && conn.read.is_empty() {
                    self.release(conn);
                }
                UpstreamBody {
                    kind: Kind::Whole(Some(data)),
                }
            }
            // What is in the buffer is the body's first part: the decoder takes it first.
            _ => UpstreamBody {
                kind: Kind::Wire {
                    conn: Some(conn),
                    decoder,
                    keep_alive,
                    pool: Arc::clone(self),
                },
            },
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        if let Some(reason) = reason
            && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason)
        {
            response.extensions_mut().insert(phrase);
        }
        response
    }

    /// Sends a WebSocket handshake through hyper on a new connection of its own, which belongs
    /// to the upgrade afterwards (never pooled).
    pub(crate) async fn send_upgrade(
        &self,
        request: Request<Outgoing>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let mut request = request.map(Outgoing::into_body);
        request
            .headers_mut()
            .entry(header::HOST)
            .or_insert_with(|| self.host.clone());
        let io = self.open().await?;
        let (mut sender, connection) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(SendError::Send)?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended");
            }
        });
        let response = sender
            .send_request(request)
            .await
            .map_err(SendError::Send)?;
        Ok(response.map(|body| UpstreamBody {
            kind: Kind::Hyper(body),
        }))
    }

    /// The newest idle connection that is still usable; drops the expired and unusable ones
    /// it meets.
    fn checkout(&self) -> Option<Box<Conn>> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut entry) = idle.pop() {
            if now.duration_since(entry.since) < self.idle_timeout && entry.conn.is_usable() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Connects (TCP, then TLS for `https`).
    async fn open(&self) -> Result<MaybeHttpsStream<TokioIo<TcpStream>>, SendError> {
        tower::ServiceExt::oneshot(self.connector.clone(), self.target.clone())
            .await
            .map_err(SendError::Connect)
    }

    /// Opens a new connection for the pool.
    async fn connect(&self) -> Result<Box<Conn>, SendError> {
        let stream = match self.open().await? {
            MaybeHttpsStream::Http(tcp) => Stream::Plain(tcp.into_inner()),
            MaybeHttpsStream::Https(tls) => Stream::Tls(Box::new(tls.into_inner())),
        };
        Ok(Box::new(Conn {
            stream,
            read: BytesMut::with_capacity(READ_CHUNK),
            write: Vec::with_capacity(1024),
        }))
    }

    /// A connection whose reply has been read to its end goes back to the stack (unless the
    /// stack is full).
    fn release(self: &Arc<Self>, conn: Box<Conn>) {
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() >= self.max_idle {
                return;
            }
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
        if !self.reaper.load(Ordering::Relaxed) && !self.reaper.swap(true, Ordering::AcqRel) {
            self.start_reaper();
        }
    }

    /// Closes, every idle timeout, the connections idle for longer than that or no longer
    /// usable (until the pool is gone).
    fn start_reaper(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reaper.store(false, Ordering::Release);
            return;
        };
        let pool: Weak<Pool> = Arc::downgrade(self);
        let period = self.idle_timeout.max(Duration::from_millis(10));
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.drop_expired();
            }
        });
    }

    fn drop_expired(&self) {
        let now = Instant::now();
        let expired: Vec<Idle> = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let (keep, expired) =
                std::mem::take(&mut *idle)
                    .into_iter()
                    .partition(|entry: &Idle| {
                        now.duration_since(entry.since) < self.idle_timeout && entry.conn.is_quiet()
                    });
            *idle = keep;
            expired
        };
        // Closed outside the lock.
        drop(expired);
    }

    /// How many connections are idle now.
    fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A connection's byte stream.
enum Stream {
    Plain(TcpStream),
    /// As `hyper-rustls` makes it: TLS over tokio's traits over hyper's over tokio's.
    Tls(Box<tokio_rustls::client::TlsStream<TokioIo<TokioIo<TcpStream>>>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0.inner().inner(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}

/// One connection to the upstream: its stream, what has been read from it and not used yet,
/// and the buffer its request heads are written into.
struct Conn {
    stream: Stream,
    read: BytesMut,
    write: Vec<u8>,
}

/// Whether an error while sending on a reused connection, or before any byte of its reply,
/// means the upstream had closed the idle connection.
fn is_stale(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | NotConnected
    )
}

impl Conn {
    /// Whether nothing arrived on the idle connection (tokio's cached readiness: no system call
    /// unless the socket was marked readable).
    fn is_quiet(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(self.stream.tcp().poll_read_ready(&mut cx), Poll::Pending)
    }

    /// Whether an idle connection can take a request: nothing arrived on it, neither bytes nor
    /// its end. When the socket is marked readable (a read that filled its buffer exactly
    /// leaves the mark), one read without waiting tells.
    fn is_usable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        if self.is_quiet() {
            return true;
        }
        let mut cx = Context::from_waker(Waker::noop());
        self.read.reserve(MIN_READ);
        // `Pending`: nothing to read, the connection waits for a request (a TLS stream may have
        // taken a session ticket on the way).
        let read = pin!(self.stream.read_buf(&mut self.read)).poll(&mut cx);
        read.is_pending() && self.read.is_empty()
    }

    /// Writes the request (the head in `write`, then `body`) and reads the reply's head. The
    /// error says too whether the connection failed before any of the reply came (`true`: an
    /// idle connection the upstream had closed, if it was reused).
    async fn exchange(
        &mut self,
        method: &Method,
        body: &Bytes,
    ) -> Result<ReplyHead, (WireError, bool)> {
        if body.len() <= COPIED_BODY {
            self.write.extend_from_slice(body);
        }
        let written = async {
            self.stream.write_all(&self.write).await?;
            if body.len() > COPIED_BODY {
                self.stream.write_all(body).await?;
            }
            self.stream.flush().await
        }
        .await;
        if let Err(error) = written {
            let stale = is_stale(&error);
            return Err((WireError::Io(error), stale));
        }
        self.read_head(method).await
    }

    /// Writes the head in `write`, then the body as it comes (`chunked` or as is).
    async fn send_stream(&mut self, mut body: Body, chunked: bool) -> Result<(), WireError> {
        self.stream
            .write_all(&self.write)
            .await
            .map_err(WireError::Io)?;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(WireError::RequestBody)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            if chunked {
                let size = format!("{:x}\r\n", data.len());
                self.stream
                    .write_all(size.as_bytes())
                    .await
                    .map_err(WireError::Io)?;
                self.stream.write_all(&data).await.map_err(WireError::Io)?;
                self.stream
                    .write_all(b"\r\n")
                    .await
                    .map_err(WireError::Io)?;
            } else {
                self.stream.write_all(&data).await.map_err(WireError::Io)?;
            }
        }
        if chunked {
            self.stream
                .write_all(b"0\r\n\r\n")
                .await
                .map_err(WireError::Io)?;
        }
        self.stream.flush().await.map_err(WireError::Io)
    }

    /// Reads until a whole reply head is in the buffer and parses it. The error says too whether
    /// the connection ended before any of the reply came.
    async fn read_head(&mut self, method: &Method) -> Result<ReplyHead, (WireError, bool)> {
        let mut received = 0usize;
        loop {
            match h1::parse_head(&mut self.read, method) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(error) => return Err((error, false)),
            }
            if self.read.capacity() - self.read.len() < MIN_READ {
                self.read.reserve(READ_CHUNK);
            }
            match self.stream.read_buf(&mut self.read).await {
                Ok(0) => return Err((WireError::Closed, received == 0)),
                Ok(read) => received += read,
                Err(error) => {
                    let stale = received == 0 && is_stale(&error);
                    return Err((WireError::Io(error), stale));
                }
            }
        }
    }
}

/// The body of an upstream reply: read from the connection as it is polled, and the
/// connection goes back to the pool when the body has been read to its end (dropped with the
/// body otherwise: a reply not read to its end leaves its connection unusable).
pub(crate) struct UpstreamBody {
    kind: Kind,
}

enum Kind {
    /// The whole body, read with the head.
    Whole(Option<Bytes>),
    /// The rest comes from the connection.
    Wire {
        /// `None` once the body has ended or failed.
        conn: Option<Box<Conn>>,
        decoder: Decoder,
        keep_alive: bool,
        pool: Arc<Pool>,
    },
    /// hyper's (a WebSocket handshake's reply).
    Hyper(Incoming),
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Whole(_) => "whole",
            Kind::Wire { .. } => "wire",
            Kind::Hyper(_) => "hyper",
        };
        f.debug_struct("UpstreamBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = SendError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, SendError>>> {
        match &mut self.get_mut().kind {
            Kind::Whole(data) => Poll::Ready(
                data.take()
                    .filter(|data| !data.is_empty())
                    .map(|data| Ok(Frame::data(data))),
            ),
            Kind::Hyper(incoming) => Pin::new(incoming).poll_frame(cx).map_err(SendError::Read),
            Kind::Wire {
                conn: slot,
                decoder,
                keep_alive,
                pool,
            } => loop {
                let Some(conn) = slot.as_mut() else {
                    return Poll::Ready(None);
                };
                match decoder.decode(&mut conn.read) {
                    Err(error) => {
                        *slot = None;
                        return Poll::Ready(Some(Err(SendError::ReadBody(error))));
                    }
                    Ok(Some(data)) => {
                        if decoder.is_done() {
                            finish(slot, *keep_alive, pool);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(None) if decoder.is_done() => {
                        finish(slot, *keep_alive, pool);
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                }
                if conn.read.capacity() - conn.read.len() < MIN_READ {
                    conn.read.reserve(READ_CHUNK);
                }
                let read = ready!(pin!(conn.stream.read_buf(&mut conn.read)).poll(cx));
                match read {
                    Ok(0) => {
                        // The connection ended: the body's end, or too early.
                        let ended = decoder.end_of_input();
                        *slot = None;
                        return Poll::Ready(
                            ended.err().map(|error| Err(SendError::ReadBody(error))),
                        );
                    }
                    Ok(_) => {}
                    Err(error) => {
                        *slot = None;
                        return Poll::Ready(Some(Err(SendError::ReadBody(WireError::Io(error)))));
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Whole(data) => data.as_ref().is_none_or(Bytes::is_empty),
            Kind::Wire { conn, decoder, .. } => conn.is_none() || decoder.is_done(),
            Kind::Hyper(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Whole(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Wire { decoder, .. } => match decoder.remaining() {
                Some(left) => SizeHint::with_exact(left),
                None => SizeHint::default(),
            },
            Kind::Hyper(incoming) => incoming.size_hint(),
        }
    }
}

/// The body has been read to its end: its connection goes back to the pool when it may carry
/// another request and nothing beyond the body arrived on it.
fn finish(slot: &mut Option<Box<Conn>>, keep_alive: bool, pool: &Arc<Pool>) {
    if let Some(conn) = slot.take()
        && keep_alive
        && conn.read.is_empty()
    {
        pool.release(conn);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A plain-HTTP upstream on loopback (hyper's server) that answers every request `200` with
    /// the request's path and `Host` as its body (1 MiB after them when the path says `big`;
    /// closing the connection after it when the path says `close`); counts the connections it
    /// accepts.
    async fn upstream(accepted: Arc<AtomicUsize>) -> (Uri, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target: Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(|request: Request<Incoming>| async move {
                            let path = request.uri().path().to_owned();
                            let host = request
                                .headers()
                                .get(header::HOST)
                                .and_then(|value| value.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let mut body = format!("{path} {host}").into_bytes();
                            if path.contains("big") {
                                body.resize(body.len() + (1 << 20), b'x');
                            }
                            let mut response =
                                Response::new(http_body_util::Full::new(Bytes::from(body)));
                            if path.contains("close") {
                                response
                                    .headers_mut()
                                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                            }
                            Ok::<_, Infallible>(response)
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (target, task)
    }

    /// A loopback listener that hands each connection, with its number (from 0), to `serve`;
    /// counts the connections.
    async fn raw_upstream<F, Fut>(serve: F) -> (Uri, Arc<AtomicUsize>, tokio::task::JoinHandle<()>)
    where
        F: Fn(usize, TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target: Uri = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let number = counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(number, stream));
            }
        });
        (target, accepted, task)
    }

    /// Reads a request head (the text up to its empty line); `None` when the connection ends
    /// first.
    async fn request_head(stream: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    fn pool(target: Uri, idle_timeout: Duration, max_idle: usize) -> Arc<Pool> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(
                super::super::tls::client_config(&super::super::UpstreamTls::Insecure).unwrap(),
            )
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let host = HeaderValue::from_str(target.authority().unwrap().as_str()).unwrap();
        Arc::new(Pool::new(connector, target, host, idle_timeout, max_idle))
    }

    fn get(path: &str) -> Request<Outgoing> {
        Request::get(path).body(Outgoing::Empty).unwrap()
    }

    async fn collect(response: Response<UpstreamBody>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    async fn text(pool: &Arc<Pool>, path: &str) -> String {
        let response = pool.send(get(path)).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        String::from_utf8(collect(response).await.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_reply_has_been_read() {
        let accepted = Arc::new(AtomicUsize::new(0));
        let (target, server) = upstream(Arc::clone(&accepted)).await;
        let authority = target.authority().unwrap().to_string();
        let pool = pool(target, Duration::from_secs(90), 256);
        for round in 0..5 {
            let path = format!("/api2/json/version/{round}");
            assert_eq!(text(&pool, &path).await, format!("{path} {authority}"));
            assert_eq!(pool.idle_count(), 1);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Two at once need two connections; both are kept.
        let (a, b) = tokio::join!(pool.send(get("/a")), pool.send(get("/b")));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        collect(a).await;
        collect(b).await;
        assert_eq!(pool.idle_count(), 2);
        // A large body streams in parts and the connection comes back at its end.
        let big = pool.send(get("/big")).await.unwrap();
        assert_eq!(pool.idle_count(), 1);
        assert_eq!(collect(big).await.len(), 5 + authority.len() + (1 << 20));
        assert_eq!(pool.idle_count(), 2);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        server.abort();
    }

    #[tokio::test]
    async fn a_reply_not_read_to_its_end_or_closed_leaves_its_connection_out() {
        let accepted = Arc::new(AtomicUsize::new(0));
        let (target, server) = upstream(Arc::clone(&accepted)).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        // Dropped with (most of) its body unread.
        drop(pool.send(get("/big")).await.unwrap());
        assert_eq!(pool.idle_count(), 0);
        text(&pool, "/one").await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_count(), 1);
        // The upstream closes after this reply: the next request opens a new connection.
        text(&pool, "/close").await;
        assert_eq!(pool.idle_count(), 0);
        text(&pool, "/after").await;
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        server.abort();
    }

    #[tokio::test]
    async fn idle_connections_are_capped_and_expire() {
        let accepted = Arc::new(AtomicUsize::new(0));
        let (target, server) = upstream(Arc::clone(&accepted)).await;
        let capped = pool(target.clone(), Duration::from_secs(90), 2);
        let replies =
            futures::future::join_all((0..4).map(|i| capped.send(get(&format!("/{i}"))))).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 4);
        for reply in replies {
            collect(reply.unwrap()).await;
        }
        assert_eq!(capped.idle_count(), 2);
        // An idle timeout of zero: every idle connection has expired when the next request
        // comes, which opens a new one.
        let expiring = pool(target, Duration::ZERO, 256);
        text(&expiring, "/first").await;
        text(&expiring, "/second").await;
        assert_eq!(accepted.load(Ordering::SeqCst), 6);
        server.abort();
    }

    /// The first connection reads one request head and closes without a reply (an idle
    /// connection the upstream closed as the request came); the others answer `ok`.
    async fn closing_first(number: usize, mut stream: TcpStream) {
        while request_head(&mut stream).await.is_some() {
            if number == 0 {
                return;
            }
            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            if stream.write_all(reply).await.is_err() {
                return;
            }
        }
    }

    #[tokio::test]
    async fn a_request_on_a_reused_connection_that_closed_before_replying_is_sent_again() {
        let (target, accepted, server) = raw_upstream(closing_first).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        let stale = pool.connect().await.unwrap();
        pool.release(stale);
        assert_eq!(text(&pool, "/retried").await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_count(), 1);
        server.abort();
        // A body at hand is sent again too.
        let (target, accepted, server) = raw_upstream(closing_first).await;
        let pool = super::tests::pool(target, Duration::from_secs(90), 256);
        let stale = pool.connect().await.unwrap();
        pool.release(stale);
        let post = Request::post("/form")
            .body(Outgoing::Full(Bytes::from_static(b"a=1")))
            .unwrap();
        let response = pool.send(post).await.unwrap();
        assert_eq!(collect(response).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        server.abort();
    }

    #[tokio::test]
    async fn a_new_connection_or_a_streaming_upload_is_not_sent_again() {
        let always_closing = |_, mut stream: TcpStream| async move {
            let _ = request_head(&mut stream).await;
        };
        let (target, accepted, server) = raw_upstream(always_closing).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        let error = pool.send(get("/once")).await.unwrap_err();
        assert_eq!(error.chain(), "connection closed before message completed");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let stale = pool.connect().await.unwrap();
        pool.release(stale);
        let upload = Request::put("/upload")
            .body(Outgoing::Stream(Body::from("streamed")))
            .unwrap();
        let error = pool.send(upload).await.unwrap_err();
        // (closed with the body unread: the upstream's end may also reset the connection)
        let chain = error.chain();
        assert!(
            chain == "connection closed before message completed"
                || chain.starts_with("connection error: "),
            "{chain}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        server.abort();
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_not_a_failure() {
        // Each connection answers one request, then closes (without saying so).
        let one_reply = |_, mut stream: TcpStream| async move {
            if request_head(&mut stream).await.is_some() {
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                let _ = stream.write_all(reply).await;
            }
        };
        let (target, accepted, server) = raw_upstream(one_reply).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        for round in 1..=3 {
            // Either the check at checkout sees the closed connection, or the retry sends
            // the request again: the client sees its reply either way.
            assert_eq!(text(&pool, "/x").await, "ok");
            assert_eq!(accepted.load(Ordering::SeqCst), round);
        }
        server.abort();
    }

    #[tokio::test]
    async fn a_chunked_reply_streams_part_by_part_and_its_connection_is_reused() {
        let (go_on, wait) = tokio::sync::oneshot::channel::<()>();
        let wait = Arc::new(Mutex::new(Some(wait)));
        let chunked = move |_, mut stream: TcpStream| {
            let wait = wait.lock().unwrap().take();
            async move {
                request_head(&mut stream).await.unwrap();
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n5;ext=1\r\nhello\r\n",
                    )
                    .await
                    .unwrap();
                // The rest only once the client has seen the first part.
                wait.unwrap().await.unwrap();
                stream
                    .write_all(b"6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n")
                    .await
                    .unwrap();
                while request_head(&mut stream).await.is_some() {
                    let reply = b"HTTP/1.1 204 No Content\r\n\r\n";
                    stream.write_all(reply).await.unwrap();
                }
            }
        };
        let (target, accepted, server) = raw_upstream(chunked).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        let response = pool.send(get("/download")).await.unwrap();
        let values: Vec<&[u8]> = response
            .headers()
            .get_all("x-a")
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(values, [b"1", b"2"]);
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "hello");
        assert_eq!(pool.idle_count(), 0);
        go_on.send(()).unwrap();
        assert_eq!(body.collect().await.unwrap().to_bytes(), " world");
        assert_eq!(pool.idle_count(), 1);
        let response = pool.send(get("/again")).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::NO_CONTENT);
        assert!(hyper::body::Body::is_end_stream(response.body()));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        server.abort();
    }

    #[tokio::test]
    async fn an_http_1_0_reply_runs_to_the_connection_end() {
        let old = |_, mut stream: TcpStream| async move {
            request_head(&mut stream).await.unwrap();
            stream
                .write_all(b"HTTP/1.0 200 Fine\r\nContent-Type: text/plain\r\n\r\nold ")
                .await
                .unwrap();
            stream.write_all(b"body").await.unwrap();
        };
        let (target, accepted, server) = raw_upstream(old).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        let response = pool.send(get("/old")).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_10);
        let phrase = response.extensions().get::<hyper::ext::ReasonPhrase>();
        assert_eq!(phrase.map(|phrase| phrase.as_bytes()), Some(&b"Fine"[..]));
        assert_eq!(collect(response).await, "old body");
        assert_eq!(pool.idle_count(), 0);
        text(&pool, "/old").await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        server.abort();
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let short = |_, mut stream: TcpStream| async move {
            request_head(&mut stream).await.unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
                .await
                .unwrap();
        };
        let (target, _, server) = raw_upstream(short).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        let response = pool.send(get("/short")).await.unwrap();
        let error = response.into_body().collect().await.unwrap_err();
        assert_eq!(
            error.chain(),
            "error reading a body from connection: end of file before message completed"
        );
        assert_eq!(pool.idle_count(), 0);
        server.abort();
    }

    /// A hyper upstream that answers the request's body, after telling through `first` that
    /// its first part arrived.
    #[tokio::test]
    async fn an_upload_of_unknown_size_streams_chunked() {
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Bytes>();
        let first_tx = Arc::new(Mutex::new(Some(first_tx)));
        let echo = move |_, stream: TcpStream| {
            let first_tx = Arc::clone(&first_tx);
            async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let first_tx = first_tx.lock().unwrap().take();
                    async move {
                        let chunked = request
                            .headers()
                            .get(header::TRANSFER_ENCODING)
                            .is_some_and(|value| value == "chunked");
                        let mut body = request.into_body();
                        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
                        first_tx.unwrap().send(first.clone()).unwrap();
                        let rest = body.collect().await.unwrap().to_bytes();
                        let text = format!(
                            "{chunked} {}{}",
                            String::from_utf8_lossy(&first),
                            String::from_utf8_lossy(&rest)
                        );
                        Ok::<_, Infallible>(Response::new(http_body_util::Full::new(Bytes::from(
                            text,
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        };
        let (target, _, server) = raw_upstream(echo).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        let (mut parts, receiver) =
            futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        let body = Body::new(http_body_util::StreamBody::new(receiver));
        let upload = Request::post("/upload")
            .body(Outgoing::Stream(body))
            .unwrap();
        let sending = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { collect(pool.send(upload).await.unwrap()).await }
        });
        use futures::SinkExt;
        parts
            .send(Ok(Frame::data(Bytes::from_static(b"part one, "))))
            .await
            .unwrap();
        // The upstream has the first part before the second exists.
        assert_eq!(first_rx.await.unwrap(), "part one, ");
        parts
            .send(Ok(Frame::data(Bytes::from_static(b"part two"))))
            .await
            .unwrap();
        drop(parts);
        assert_eq!(sending.await.unwrap(), "true part one, part two");
        server.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target: Uri = format!("http://{}", closed.local_addr().unwrap())
            .parse()
            .unwrap();
        drop(closed);
        let pool = pool(target, Duration::from_secs(90), 256);
        let error = pool.send(get("/version")).await.unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        assert!(
            error.chain().starts_with("tcp connect error: "),
            "{}",
            error.chain()
        );
    }
}
