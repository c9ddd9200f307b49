//! The upstream's connections: one upstream host, so one pool.
//!
//! Idle HTTP/1.1 connections (hyper's `client::conn::http1` senders) wait in a small
//! lock-protected stack, last in first out, so that a burst reuses the connections that were
//! busy a moment ago and the others age out. A request takes the newest idle connection that is
//! ready for another request, or opens a new one (TCP with `TCP_NODELAY` and the connect
//! timeout, then `rustls` with the configuration of [`super::tls`], or plain HTTP: hyper-util's
//! `HttpConnector` under `hyper-rustls`, as before) whose connection task is spawned. The
//! connection goes back to the stack when the reply's body has been read to its end
//! ([`UpstreamBody`]); a connection whose reply was not read to the end, that failed, closed, or
//! switched protocols (a console's WebSocket) is never reused. At most [`Pool::new`]'s
//! `max_idle` connections wait; one idle for longer than the idle timeout is closed.
//!
//! HTTP/1.1 cannot tell a request that never reached a closing connection from one that did,
//! except when the connection closed before the request was even written: then hyper hands
//! the request back, and it is sent once more on a new connection (as hyper-util's pooled
//! client does for a reused connection).
//!
//! Compared to hyper-util's pooled client (`client::legacy`, used before), a request costs no
//! pool-key hashing, no URI rewriting and no spawned task to put the connection back.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

use super::SendError;

/// Opens a connection to the upstream (TCP, then TLS for `https`).
pub(super) type Connector = HttpsConnector<HttpConnector>;

/// One connection's sending half.
type Sender = SendRequest<Body>;

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
    sender: Sender,
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
    /// request has one.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<Body>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        request
            .headers_mut()
            .entry(header::HOST)
            .or_insert_with(|| self.host.clone());
        let (mut sender, reused) = match self.checkout() {
            Some(sender) => (sender, true),
            None => (self.connect().await?, false),
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut error) => match error.take_message() {
                // The idle connection closed before the request was written: once more, on a
                // new connection.
                Some(request) if reused => {
                    sender = self.connect().await?;
                    sender
                        .try_send_request(request)
                        .await
                        .map_err(|error| SendError::Send(error.into_error()))?
                }
                _ => return Err(SendError::Send(error.into_error())),
            },
        };
        // After `101 Switching Protocols` the connection belongs to the upgrade.
        let reusable = response.status() != StatusCode::SWITCHING_PROTOCOLS;
        let (parts, inner) = response.into_parts();
        let mut body = UpstreamBody {
            inner,
            pooled: reusable.then(|| (sender, Arc::clone(self))),
        };
        if hyper::body::Body::is_end_stream(&body.inner) {
            // No body at all (`HEAD`, `204`, `304`, `Content-Length: 0`).
            body.release();
        }
        Ok(Response::from_parts(parts, body))
    }

    /// The newest idle connection that can take a request now; drops the closed and expired
    /// ones it meets, and leaves in place those not ready yet (their connection task has not
    /// yet taken up the next request).
    fn checkout(&self) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let mut index = idle.len();
        while index > 0 {
            index -= 1;
            let entry = &idle[index];
            if entry.sender.is_closed() || now.duration_since(entry.since) >= self.idle_timeout {
                idle.remove(index);
            } else if entry.sender.is_ready() {
                return Some(idle.remove(index).sender);
            }
        }
        None
    }

    /// Opens a new connection and spawns its task.
    async fn connect(&self) -> Result<Sender, SendError> {
        let io = tower::ServiceExt::oneshot(self.connector.clone(), self.target.clone())
            .await
            .map_err(SendError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(SendError::Send)?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// A connection whose reply has been read to its end goes back to the stack (unless it
    /// closed or the stack is full).
    fn release(self: &Arc<Self>, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() >= self.max_idle {
                return;
            }
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
        if !self.reaper.load(Ordering::Relaxed) && !self.reaper.swap(true, Ordering::AcqRel) {
            self.start_reaper();
        }
    }

    /// Closes, every idle timeout, the connections idle for longer than that (until the pool
    /// is gone).
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
            let (keep, expired) = std::mem::take(&mut *idle).into_iter().partition(|entry| {
                !entry.sender.is_closed() && now.duration_since(entry.since) < self.idle_timeout
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

/// The body of an upstream reply: hyper's, and the connection it came on, which goes back to
/// the pool when the body has been read to its end (dropped with the body otherwise: a reply
/// not read to its end leaves its connection unusable).
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: Incoming,
    pooled: Option<(Sender, Arc<Pool>)>,
}

impl UpstreamBody {
    fn release(&mut self) {
        if let Some((sender, pool)) = self.pooled.take() {
            pool.release(sender);
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &polled {
            None => this.release(),
            Some(Ok(_)) if this.inner.is_end_stream() => this.release(),
            Some(Ok(_)) => {}
            Some(Err(_)) => this.pooled = None,
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;

    use super::*;

    /// A plain-HTTP upstream on loopback that answers every request `200` with the request's
    /// path as its body (closing the connection after it when the path says `close`); counts
    /// the connections it accepts.
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
                            let mut response = Response::new(http_body_util::Full::new(
                                Bytes::from(format!("{path} {host}")),
                            ));
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

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    async fn text(pool: &Arc<Pool>, path: &str) -> String {
        let response = pool.send(get(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Waits (a bounded number of scheduler turns, no clock) until the pool has `count` idle
    /// connections that are ready.
    async fn settle(pool: &Pool, count: usize) {
        for _ in 0..10_000 {
            let ready = {
                let idle = pool.idle.lock().unwrap();
                idle.iter().filter(|entry| entry.sender.is_ready()).count()
            };
            if ready == count {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the pool did not settle at {count} ready connections");
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
            settle(&pool, 1).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Two at once need two connections; both are kept.
        let (a, b) = tokio::join!(pool.send(get("/a")), pool.send(get("/b")));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        a.into_body().collect().await.unwrap();
        b.into_body().collect().await.unwrap();
        settle(&pool, 2).await;
        server.abort();
    }

    #[tokio::test]
    async fn a_reply_not_read_to_its_end_or_closed_leaves_its_connection_out() {
        let accepted = Arc::new(AtomicUsize::new(0));
        let (target, server) = upstream(Arc::clone(&accepted)).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        // Dropped with its body unread.
        drop(pool.send(get("/unread")).await.unwrap());
        assert_eq!(pool.idle_count(), 0);
        text(&pool, "/one").await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        settle(&pool, 1).await;
        // The upstream closes after this reply: the next request opens a new connection.
        text(&pool, "/close").await;
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
            reply.unwrap().into_body().collect().await.unwrap();
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

    #[tokio::test]
    async fn a_request_on_a_connection_that_closed_before_writing_it_is_sent_again() {
        let accepted = Arc::new(AtomicUsize::new(0));
        let (target, server) = upstream(Arc::clone(&accepted)).await;
        let pool = pool(target, Duration::from_secs(90), 256);
        // An idle connection whose task has asked for the next request, then stops before
        // writing it (as when the upstream closes an idle connection at that moment).
        let (client_io, _server_io) = tokio::io::duplex(1024);
        let (sender, connection) = http1::Builder::new()
            .handshake::<_, Body>(TokioIo::new(client_io))
            .await
            .unwrap();
        let mut connection = Box::pin(connection);
        assert!(futures::poll!(connection.as_mut()).is_pending());
        assert!(sender.is_ready());
        pool.release(sender);
        let mut sending = Box::pin(pool.send(get("/retried")));
        assert!(futures::poll!(sending.as_mut()).is_pending());
        assert_eq!(pool.idle_count(), 0, "the stale connection was taken");
        drop(connection);
        let response = sending.await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.starts_with(b"/retried "), "{bytes:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
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
