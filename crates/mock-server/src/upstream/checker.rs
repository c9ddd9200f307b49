//! Reply validation off the response path: the proxy passes the upstream's reply to the client
//! as it arrives and queues a copy of its body (reference-counted chunks, not a second buffer)
//! for a background thread, which validates it against the operation's `returns` (while parsing
//! it, [`super::stream`]; a reply with discrepancies is then read into a tree and checked in
//! full for their report), records the discrepancies and offers the reply to the recorder.
//!
//! **The trade-off.** The client never waits for the check, so validation adds no latency to
//! a reply; but the discrepancies of a reply appear a moment after the client has it. Readers
//! that need them complete wait for the queue to empty first ([`ReplyChecker::drain`]:
//! `GET /_mock/discrepancies` and the report at shutdown do). The queue is bounded
//! ([`QUEUE`] replies): when the upstream answers faster than the thread can check, a reply
//! that finds the queue full is passed on unchecked and counted as *not validated* (per
//! operation and in the totals of the report) instead of slowing the traffic down or holding
//! memory without bound. A proxy that must see every reply is one that is not saturated; the
//! count says when that was not the case.
//!
//! The thread is one OS thread (JSON parsing and schema walking are CPU work that would stall
//! an async worker), named `proxy-check`. It holds the upstream weakly and ends when the
//! queue's sender is dropped with the [`super::Upstream`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use route_metadata::Method;
use serde_json::Value;

use super::Upstream;
use super::{stream, validate};
use crate::api::Api;

/// How many replies may wait for their check.
pub(crate) const QUEUE: usize = 4096;

/// One reply to check.
pub(crate) struct Job {
    /// The operation: its path's index in the router and its method.
    pub(crate) path_index: usize,
    pub(crate) method: Method,
    /// The whole reply body.
    pub(crate) body: Bytes,
    /// For the recorder (GETs only): the request's path relative to `/api2/json`, still
    /// percent-encoded, and its query.
    pub(crate) record: Option<(String, Option<String>)>,
}

/// The queue and its counters.
#[derive(Debug, Default)]
pub(crate) struct ReplyChecker {
    /// Set when the thread runs ([`super::Upstream::start`]); until then replies are checked
    /// on the request's own task.
    sender: OnceLock<SyncSender<Job>>,
    queued: AtomicU64,
    checked: Arc<AtomicU64>,
}

impl ReplyChecker {
    /// Starts the thread; replies are checked inline if the thread cannot be started.
    pub(crate) fn start(&self, upstream: Weak<Upstream>, api: Arc<Api>) {
        let (sender, receiver) = mpsc::sync_channel(QUEUE);
        let checked = Arc::clone(&self.checked);
        let spawned = std::thread::Builder::new()
            .name("proxy-check".to_owned())
            .spawn(move || run(&receiver, &upstream, &api, &checked));
        match spawned {
            Ok(_) => {
                let _ = self.sender.set(sender);
            }
            Err(error) => {
                tracing::warn!(%error, "starting the reply-check thread failed; replies are checked inline");
            }
        }
    }

    /// Queues a reply; without a thread, checks it here. A full queue: the reply is counted as
    /// not validated.
    pub(crate) fn submit(&self, upstream: &Upstream, api: &Api, operation: &str, job: Job) {
        let Some(sender) = self.sender.get() else {
            check(upstream, api, job, &mut stream::Walk::default());
            return;
        };
        // Counted before sending, so that `drain` never sees a check finish before its count.
        self.queued.fetch_add(1, Ordering::SeqCst);
        match sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                upstream.discrepancies.not_validated(operation);
            }
            Err(TrySendError::Disconnected(job)) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                check(upstream, api, job, &mut stream::Walk::default());
            }
        }
    }

    /// Whether every queued reply has been checked.
    fn idle(&self) -> bool {
        self.checked.load(Ordering::SeqCst) >= self.queued.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) until every reply queued so far has been checked.
    pub(crate) async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.idle() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// [`ReplyChecker::drain`] for synchronous callers (the shutdown report).
    pub(crate) fn drain_blocking(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.idle() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// How long the thread naps after emptying the queue before it waits to be woken.
const NAP: Duration = Duration::from_millis(1);

/// The thread: checks replies until the sender is gone.
///
/// Waking a sleeping thread costs a system call for the sender and a context switch for each
/// reply. Under load the thread therefore does not wait for a wake-up after emptying the queue:
/// it naps [`NAP`] (one timer for all the replies that arrive meanwhile, and no wake-up for
/// their senders) and only waits once a nap brought nothing. Every reply is still checked;
/// its discrepancies appear at most a nap later ([`ReplyChecker::drain`] waits for them).
fn run(receiver: &Receiver<Job>, upstream: &Weak<Upstream>, api: &Api, checked: &AtomicU64) {
    // The schema's property look-ups, kept for the thread's life.
    let mut walk = stream::Walk::default();
    let mut handle = |job: Job| {
        if let Some(upstream) = upstream.upgrade() {
            check(&upstream, api, job, &mut walk);
        }
        checked.fetch_add(1, Ordering::SeqCst);
    };
    while let Ok(job) = receiver.recv() {
        handle(job);
        loop {
            while let Ok(job) = receiver.try_recv() {
                handle(job);
            }
            std::thread::sleep(NAP);
            match receiver.try_recv() {
                Ok(job) => handle(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
    }
}

/// Checks one reply: its discrepancies are recorded, and a GET's reply goes to the recorder.
fn check<'a>(upstream: &Upstream, api: &'a Api, job: Job, walk: &mut stream::Walk<'a>) {
    let Some((_, op)) = api.operation(job.path_index, job.method) else {
        return;
    };
    // The recorder needs the tree; otherwise a valid reply is decided while it is parsed, and
    // only a reply that is not (or not decided there) is read into a tree and checked in full.
    let recording = upstream.recorder.is_some() && job.record.is_some();
    if !recording && stream::reply_is_valid(api, &op.returns, &job.body, walk) {
        return;
    }
    let envelope = serde_json::from_slice::<Value>(&job.body).ok();
    upstream
        .discrepancies
        .record(validate::reply(api, op, envelope.as_ref()));
    if let (Some(recorder), Some(envelope), Some((rel, query))) =
        (&upstream.recorder, &envelope, &job.record)
    {
        let rel_path = percent_encoding::percent_decode_str(rel).decode_utf8_lossy();
        recorder.observe(op, &rel_path, query.as_deref(), envelope);
    }
}
