//! The load generator: keep-alive HTTP/1.1 connections, plain or TLS, for a fixed time or count.
//!
//! Same semantics as `wrk -t2 -c50 -d10s --latency`: each connection sends its next request as
//! soon as the previous answer is read (closed loop), latencies are measured per request from
//! just before sending to the last byte of the body, and throughput counts 2xx answers over the
//! wall time of the whole run. It is built like wrk, too: the connections are shared out over
//! one event loop per core (a `current_thread` runtime on its own thread each, see [`spread`]),
//! and each connection is one task that writes prepared request bytes and parses the answer in
//! place ([`crate::http1`]). It is our own rather than wrk so that POSTs with a fresh form body
//! per request (creates with increasing `vmid`) need no Lua, and so that nothing outside the
//! bench crate has to be installed.
//!
//! [`run_open`] is the open-loop variant (like `wrk2 -R`): a fixed offered rate, latencies
//! counted from each request's due time when the connection was still busy then.
//!
//! A connection that fails is counted and reopened; every run is bounded both by time and, when
//! asked, by a request count, and every request by [`REQUEST_TIMEOUT`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsConnector;

use crate::http1::Connection;
use crate::stats::Latencies;

/// The longest a single request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection failures after which a run gives up.
const MAX_ERRORS: u64 = 10_000;

/// Where requests go: a loopback address, over TLS when a connector is given.
#[derive(Clone)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// TLS connector trusting the bench certificate; `None` for plain HTTP.
    pub tls: Option<TlsConnector>,
}

/// Credentials sent with every request.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    /// Headers for every request (cookie or `Authorization`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers for writes only (the CSRF token).
    pub write_headers: Vec<(HeaderName, HeaderValue)>,
}

/// The body of each request.
#[derive(Clone, Debug)]
pub enum Body {
    /// No body.
    Empty,
    /// A form body creating a VM: `vmid=<next>&name=bench<next>&memory=512`.
    CreateVm {
        /// The next VM ID; every request takes one.
        next_vmid: Arc<AtomicU32>,
    },
}

/// One kind of request to repeat.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// Method.
    pub method: Method,
    /// Path and query, e.g. `/api2/json/version`.
    pub path: String,
    /// Body.
    pub body: Body,
}

/// How long and how wide a run is.
#[derive(Clone, Copy, Debug)]
pub struct LoadShape {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Wall-time limit.
    pub duration: Duration,
    /// Request-count limit, if any.
    pub max_requests: Option<u64>,
}

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadSummary {
    /// Requests answered with 2xx.
    pub ok: u64,
    /// Requests answered with another status.
    pub non_2xx: u64,
    /// Requests that failed (connection error, timeout).
    pub errors: u64,
    /// Wall time of the run, seconds.
    pub elapsed_s: f64,
    /// 2xx answers per second.
    pub rps: f64,
    /// Latencies of the 2xx answers (none when there were none).
    pub latency: Option<Latencies>,
    /// The first non-2xx answer or error, for diagnosis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

/// Runs `spec` against `target` with `shape`, and summarises the latencies of 2xx answers.
pub async fn run(
    target: &Target,
    auth: &Auth,
    spec: &RequestSpec,
    shape: LoadShape,
) -> anyhow::Result<LoadSummary> {
    let started = Instant::now();
    let deadline = started + shape.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let request = Arc::new(Prepared::new(target, auth, spec));
    let target = target.clone();
    let max_requests = shape.max_requests;
    let mut total = spread(shape.connections, move |_lane| {
        let (target, request, issued) = (target.clone(), request.clone(), issued.clone());
        async move { drive_connection(&target, &request, deadline, max_requests, &issued).await }
    })
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = Latencies::from_micros(&mut total.latencies_us);
    let ok = total.latencies_us.len() as u64;
    Ok(LoadSummary {
        ok,
        non_2xx: total.non_2xx,
        errors: total.errors,
        elapsed_s: elapsed,
        rps: ok as f64 / elapsed,
        latency: latencies,
        first_failure: total.first_failure,
    })
}

/// Runs `spec` against `target` open-loop: `connections` keep-alive connections share a fixed
/// schedule of `rate` requests per second for `duration` (request `i` is due at `i / rate`
/// seconds, on connection `i % connections`), whatever the answers take.
///
/// The due times are kept by a [`Pacer`] on a blocking thread, which sleeps until each one
/// (`nanosleep`, to within the kernel's timer slack of about 50 µs) and then releases that
/// request to its connection. tokio's own timers tick in milliseconds: a connection waiting
/// on one would send every request due within the same millisecond together, in bursts of
/// `rate / 1000`, and the queue each burst builds would be counted as the server's latency.
///
/// A request's latency is counted from the time it was due when its connection was still busy
/// with the previous one at that time (so the wait in the queue behind a slow answer counts,
/// and coordinated omission does not hide it), else from when it was sent (the pacer's
/// lateness belongs to the load generator, not to the server). Throughput is the 2xx answers
/// over the scheduled duration, so a server that cannot keep up shows an achieved rate below
/// `rate`.
pub async fn run_open(
    target: &Target,
    auth: &Auth,
    spec: &RequestSpec,
    connections: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<LoadSummary> {
    anyhow::ensure!(
        rate > 0.0 && rate.is_finite(),
        "the offered rate must be positive"
    );
    let connections = connections.max(1);
    let started = Instant::now() + Duration::from_millis(20);
    let pacer = Arc::new(Pacer {
        started,
        rate,
        end: started + duration,
        lanes: (0..connections).map(|_| Lane::default()).collect(),
    });
    let pacing = {
        let pacer = pacer.clone();
        tokio::task::spawn_blocking(move || pacer.run())
    };
    let request = Arc::new(Prepared::new(target, auth, spec));
    let lanes = {
        let (target, pacer) = (target.clone(), pacer.clone());
        spread(connections, move |lane| {
            let (target, request, pacer) = (target.clone(), request.clone(), pacer.clone());
            async move { drive_open_connection(&target, &request, &pacer, lane).await }
        })
    };
    let total = lanes.await;
    pacing.await.context("joining the pacer")?;
    let mut total = total?;
    let latencies = Latencies::from_micros(&mut total.latencies_us);
    let ok = total.latencies_us.len() as u64;
    let elapsed = duration.as_secs_f64();
    Ok(LoadSummary {
        ok,
        non_2xx: total.non_2xx,
        errors: total.errors,
        elapsed_s: elapsed,
        rps: ok as f64 / elapsed,
        latency: latencies,
        first_failure: total.first_failure,
    })
}

/// The schedule of an open-loop run, and the thread that keeps it: request `i` is due at
/// `started + i / rate` on lane (connection) `i % lanes`, for due times before `end`.
struct Pacer {
    started: Instant,
    rate: f64,
    end: Instant,
    lanes: Vec<Lane>,
}

/// What the pacer has released to one connection.
#[derive(Default)]
struct Lane {
    /// Requests of this connection whose due time has been reached.
    released: AtomicU64,
    /// Woken at each release.
    notify: tokio::sync::Notify,
}

impl Pacer {
    /// When request `index` of the whole run is due.
    fn due(&self, index: u64) -> Instant {
        self.started + Duration::from_secs_f64(index as f64 / self.rate)
    }

    /// The global index of a connection's `nth` request.
    fn index(&self, lane: usize, nth: u64) -> u64 {
        lane as u64 + nth * self.lanes.len() as u64
    }

    /// Releases every request at its due time; returns after the last one (run on a blocking
    /// thread: it sleeps).
    fn run(&self) {
        let lanes = self.lanes.len() as u64;
        let mut index = 0_u64;
        loop {
            let due = self.due(index);
            if due >= self.end {
                return;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let lane = &self.lanes[(index % lanes) as usize];
            lane.released.fetch_add(1, Ordering::Release);
            lane.notify.notify_one();
            index += 1;
        }
    }

    /// Waits until the pacer has released the `nth` request of connection `lane`.
    async fn released(&self, lane: usize, nth: u64) {
        let lane = &self.lanes[lane];
        // `notify_one` leaves a permit when nobody waits, so a release between the check and
        // the wait is not missed; a permit left by a release this connection did not wait for
        // (it was late) only costs one more turn of the loop.
        while lane.released.load(Ordering::Acquire) <= nth {
            lane.notify.notified().await;
        }
    }
}

/// One connection of an open-loop run: each request at its due time (or as soon as the
/// previous answer is in, when that is later).
async fn drive_open_connection(
    target: &Target,
    request: &Prepared,
    pacer: &Pacer,
    lane: usize,
) -> ConnectionTally {
    let mut tally = ConnectionTally::default();
    let mut connection: Option<Connection> = None;
    let mut bytes = Vec::new();
    let mut nth = 0_u64;
    loop {
        let due = pacer.due(pacer.index(lane, nth));
        if due >= pacer.end || tally.errors >= MAX_ERRORS {
            break;
        }
        let late = Instant::now() >= due;
        if !late {
            pacer.released(lane, nth).await;
        }
        nth += 1;
        let Some(open) = tally.connection(&mut connection, target).await else {
            continue;
        };
        request.write(&mut bytes);
        let sent = if late { due } else { Instant::now() };
        let outcome = exchange(open, &bytes).await;
        tally.record(outcome, sent.elapsed(), &mut connection);
    }
    tally
}

/// Sends one request on a fresh connection and returns the status and body.
pub async fn once(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
    form: Option<&str>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut connection = Connection::open(target.addr, target.tls.as_ref()).await?;
    let mut request = Vec::new();
    write_head(&mut request, &method, path, target.addr, headers.iter());
    match form {
        Some(form) => write_form(&mut request, form),
        None => request.extend_from_slice(b"\r\n"),
    }
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, connection.exchange(&request))
        .await
        .context("request timed out")?
        .context("sending a request")?;
    Ok((answer.status, Bytes::copy_from_slice(answer.body)))
}

/// One request of a run, as bytes: everything but a create's form is written once.
struct Prepared {
    /// The request line and the headers of every request, without the blank line.
    head: Vec<u8>,
    body: Body,
}

impl Prepared {
    fn new(target: &Target, auth: &Auth, spec: &RequestSpec) -> Self {
        let mut head = Vec::new();
        let writes = (spec.method != Method::GET).then_some(&auth.write_headers);
        write_head(
            &mut head,
            &spec.method,
            &spec.path,
            target.addr,
            auth.headers.iter().chain(writes.into_iter().flatten()),
        );
        Self {
            head,
            body: spec.body.clone(),
        }
    }

    /// Writes the next request into `out` (a create takes the next VM ID).
    fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.head);
        match &self.body {
            Body::Empty => out.extend_from_slice(b"\r\n"),
            Body::CreateVm { next_vmid } => {
                let vmid = next_vmid.fetch_add(1, Ordering::Relaxed);
                write_form(out, &create_form(vmid));
            }
        }
    }
}

/// Writes a request line, `Host` and `headers` (each line with its CRLF).
fn write_head<'a>(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    host: SocketAddr,
    headers: impl Iterator<Item = &'a (HeaderName, HeaderValue)>,
) {
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n").as_bytes());
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Ends a head with a form body's headers, and appends the form.
fn write_form(out: &mut Vec<u8>, form: &str) {
    out.extend_from_slice(
        format!(
            "content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
            form.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(form.as_bytes());
}

/// Runs one future per connection (`lane(0)`, `lane(1)`, ...), shared out over one
/// `current_thread` runtime per available core, each on a thread of its own, the way `wrk -t2`
/// shares its connections over two event loops; returns the connections' tallies merged.
async fn spread<F, Fut>(connections: usize, lane: F) -> anyhow::Result<ConnectionTally>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConnectionTally> + Send + 'static,
{
    let connections = connections.max(1);
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(connections);
    let lane = Arc::new(lane);
    let mut results = Vec::with_capacity(threads);
    for thread in 0..threads {
        let lane = lane.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("load-{thread}"))
            .spawn(move || {
                let tally = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|runtime| {
                        runtime.block_on(async {
                            let tasks: Vec<_> = (thread..connections)
                                .step_by(threads)
                                .map(|index| tokio::spawn(lane(index)))
                                .collect();
                            let mut total = ConnectionTally::default();
                            for task in tasks {
                                match task.await {
                                    Ok(tally) => total.merge(tally),
                                    Err(error) => {
                                        total.errors += 1;
                                        total.fail(format!("a load connection failed: {error}"));
                                    }
                                }
                            }
                            total
                        })
                    });
                let _ = done.send(tally);
            })
            .context("starting a load thread")?;
        results.push(result);
    }
    let mut total = ConnectionTally::default();
    for result in results {
        let tally = result
            .await
            .context("a load thread ended without a result")?
            .context("starting a load runtime")?;
        total.merge(tally);
    }
    Ok(total)
}

/// What one connection saw.
#[derive(Default)]
struct ConnectionTally {
    latencies_us: Vec<u32>,
    non_2xx: u64,
    errors: u64,
    first_failure: Option<String>,
}

/// An exchange's outcome: the status and, for a non-2xx answer, the start of its body.
type Outcome = Result<anyhow::Result<(StatusCode, Option<String>)>, tokio::time::error::Elapsed>;

/// Sends `request` on `connection` and reads the answer, within [`REQUEST_TIMEOUT`].
async fn exchange(connection: &mut Connection, request: &[u8]) -> Outcome {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let answer = connection.exchange(request).await?;
        let failure = (!answer.status.is_success()).then(|| {
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)]).into_owned()
        });
        Ok((answer.status, failure))
    })
    .await
}

impl ConnectionTally {
    fn merge(&mut self, other: ConnectionTally) {
        self.latencies_us.extend(other.latencies_us);
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    fn fail(&mut self, what: String) {
        if self.first_failure.is_none() {
            self.first_failure = Some(what);
        }
    }

    /// The open connection in `slot`, opening one first when there is none; `None` (counted as
    /// an error) when that fails.
    async fn connection<'a>(
        &mut self,
        slot: &'a mut Option<Connection>,
        target: &Target,
    ) -> Option<&'a mut Connection> {
        if slot.is_none() {
            match Connection::open(target.addr, target.tls.as_ref()).await {
                Ok(connection) => *slot = Some(connection),
                Err(error) => {
                    self.errors += 1;
                    self.fail(format!("{error:#}"));
                    return None;
                }
            }
        }
        slot.as_mut()
    }

    /// Counts an exchange's outcome; the connection is kept for the next request only when the
    /// answer came whole and the server keeps it open.
    fn record(&mut self, outcome: Outcome, latency: Duration, slot: &mut Option<Connection>) {
        match outcome {
            Ok(Ok((status, failure))) => {
                match failure {
                    None => {
                        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
                        self.latencies_us.push(micros);
                    }
                    Some(body) => {
                        self.non_2xx += 1;
                        self.fail(format!("{status}: {body}"));
                    }
                }
                if slot.as_ref().is_some_and(|open| !open.reusable()) {
                    *slot = None;
                }
            }
            Ok(Err(error)) => {
                self.errors += 1;
                self.fail(format!("{error:#}"));
                *slot = None;
            }
            Err(_elapsed) => {
                self.errors += 1;
                self.fail(format!("no answer within {REQUEST_TIMEOUT:?}"));
                *slot = None;
            }
        }
    }
}

/// One connection's loop: send, read, record, until the deadline or the request budget.
async fn drive_connection(
    target: &Target,
    request: &Prepared,
    deadline: Instant,
    max_requests: Option<u64>,
    issued: &AtomicU64,
) -> ConnectionTally {
    let mut tally = ConnectionTally::default();
    let mut connection: Option<Connection> = None;
    let mut bytes = Vec::new();
    while Instant::now() < deadline && tally.errors < MAX_ERRORS {
        if let Some(limit) = max_requests
            && issued.fetch_add(1, Ordering::Relaxed) >= limit
        {
            break;
        }
        let Some(open) = tally.connection(&mut connection, target).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        request.write(&mut bytes);
        let started = Instant::now();
        let outcome = exchange(open, &bytes).await;
        tally.record(outcome, started.elapsed(), &mut connection);
    }
    tally
}

/// The form body of a VM creation.
pub fn create_form(vmid: u32) -> String {
    format!("vmid={vmid}&name=bench{vmid}&memory=512")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An axum server on loopback counting the requests it answers.
    async fn counting_server() -> (SocketAddr, Arc<AtomicU64>) {
        let hits = Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/x",
            axum::routing::get(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (addr, hits)
    }

    /// The pacer releases each due request once, to the connection the schedule gives it
    /// (`i % lanes`), and a connection waiting for its `nth` request is let go by that release.
    #[tokio::test]
    async fn the_pacer_releases_each_request_to_its_connection() {
        let started = Instant::now();
        let pacer = Arc::new(Pacer {
            started,
            rate: 1000.0,
            // Due at 0, 1, ..., 9 ms: 10 requests over 3 lanes (4, 3 and 3).
            end: started + Duration::from_micros(9_500),
            lanes: (0..3).map(|_| Lane::default()).collect(),
        });
        assert_eq!(pacer.index(1, 2), 7);
        assert_eq!(pacer.due(7), started + Duration::from_millis(7));
        let waiting = {
            let pacer = pacer.clone();
            tokio::spawn(async move { pacer.released(0, 3).await })
        };
        let pacing = {
            let pacer = pacer.clone();
            tokio::task::spawn_blocking(move || pacer.run())
        };
        pacing.await.unwrap();
        waiting.await.unwrap();
        let released: Vec<u64> = pacer
            .lanes
            .iter()
            .map(|lane| lane.released.load(Ordering::Acquire))
            .collect();
        assert_eq!(released, [4, 3, 3]);
    }

    /// Every due time of the schedule sends exactly one request, however long answers take:
    /// `rate * duration` requests (rounded up), spread over the connections.
    #[tokio::test]
    async fn an_open_loop_run_sends_exactly_the_scheduled_requests() {
        let (addr, hits) = counting_server().await;
        let target = Target { addr, tls: None };
        let spec = RequestSpec {
            method: Method::GET,
            path: "/x".to_owned(),
            body: Body::Empty,
        };
        let summary = run_open(
            &target,
            &Auth::default(),
            &spec,
            4,
            200.0,
            Duration::from_millis(155),
        )
        .await
        .unwrap();
        // Due at 0, 5, ..., 150 ms: 31 requests.
        assert_eq!(summary.ok + summary.non_2xx + summary.errors, 31);
        assert_eq!(summary.ok, 31, "{:?}", summary.first_failure);
        assert_eq!(hits.load(Ordering::SeqCst), 31);
        assert!(summary.latency.is_some());
        assert!(
            run_open(
                &target,
                &Auth::default(),
                &spec,
                4,
                0.0,
                Duration::from_millis(10)
            )
            .await
            .is_err()
        );
    }
}
