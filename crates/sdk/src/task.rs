//! Background tasks: waiting for a UPID to finish, reading and following its log.
//!
//! Every Proxmox call that starts a worker (creating or starting a VM, a backup, a migration)
//! answers at once with a [`Upid`]; the work goes on in the background.
//! In the typed API such a call is a [`Call<Upid>`](crate::Call), which can be awaited for the
//! UPID, or waited on directly:
//!
//! ```no_run
//! # async fn demo(client: &proxmox_sdk::Client) -> proxmox_sdk::Result<()> {
//! use proxmox_sdk::TaskOutcome;
//! use std::time::Duration;
//! let vm = client.nodes().node("pve1").qemu().vmid(100);
//! match vm.status().start().wait(Duration::from_secs(120)).await {
//!     Ok(TaskOutcome::Ok) => println!("started"),
//!     Ok(outcome) => println!("started with {} warning(s)", outcome.warning_count()),
//!     Err(error) => match error.task_failure() {
//!         Some(failure) => eprintln!("{}: {:?}", failure.exit_status(), failure.log_tail()),
//!         None => return Err(error),
//!     },
//! }
//! # Ok(()) }
//! ```
//!
//! [`Task::wait`] polls `GET /nodes/{node}/tasks/{upid}/status` until `status` is `stopped`,
//! pausing 1 s, then 2 s, 4 s, … up to 30 s between polls (configurable with
//! [`ClientBuilder::task_poll_interval`](crate::ClientBuilder::task_poll_interval) or
//! [`Task::poll_interval`]), and gives up at a deadline measured on the monotonic clock, so a
//! change of wall-clock time cannot stretch or cut the wait.
//!
//! # Outcomes
//!
//! A task that stopped has one of three outcomes:
//!
//! - `OK`: [`TaskOutcome::Ok`];
//! - `WARNINGS: n`: it did its work, but logged `n` warnings (the Proxmox UI shows it with a
//!   warning sign, not as failed): [`TaskOutcome::Warnings`], with the count and the log lines
//!   that start with `WARN:`;
//! - anything else (the error message Proxmox recorded): [`Error::TaskFailed`], whose
//!   [`TaskFailedError`] carries the exit status and the last [`LOG_TAIL_LINES`] lines of
//!   `GET /nodes/{node}/tasks/{upid}/log`, where the reason usually is.
//!
//! A failed task is an `Err`, not a third variant of [`TaskOutcome`], so that
//! `task.wait(timeout).await?` stops on a failure as it does on any other error; a caller that
//! wants to handle the failure reads it with [`Error::task_failure`].
//!
//! # Logs
//!
//! The log endpoint is paged with `start` and `limit` and answers lines as `{"n": 1, "t": "…"}`
//! with the line count in `total` next to `data`. [`Task::log`] streams the log as it is now,
//! fetching 500 lines at a time; [`Task::follow`] streams it as it grows, until the task stops
//! and its last line was read. Both return [`Items`], which needs neither `futures` nor `pin!`:
//! `while let Some(line) = lines.next().await`.
//!
//! A [`Task`] owns a clone of the client and of the UPID, so it can be stored or moved into
//! `tokio::spawn`.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use futures::{TryStreamExt, stream};
use reqwest::Method;
use serde::Deserialize;
use shared_types::Upid;
use tracing::Instrument as _;

use crate::Client;
use crate::encode::path;
use crate::envelope::Paged;
use crate::error::{Error, Result, TaskFailedError};
use crate::retry::capped_exponential;
use crate::stream::Items;
use crate::typed::Call;

/// How many log lines an [`Error::TaskFailed`] carries.
pub const LOG_TAIL_LINES: usize = 20;

/// How many log lines are fetched per request.
const LOG_PAGE_SIZE: u64 = 500;

/// The most `WARN:` lines a [`TaskOutcome::Warnings`] keeps.
const MAX_WARNING_LINES: usize = 100;

/// The longest pause of [`Task::follow`] between two reads of a running task's log.
const FOLLOW_MAX_PAUSE: Duration = Duration::from_secs(5);

/// The pacing of [`Task::wait`]: the first pause between polls, doubling up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskPolling {
    /// The pause after the first poll.
    pub initial: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Default for TaskPolling {
    fn default() -> Self {
        TaskPolling {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl TaskPolling {
    /// The pause after poll `n_poll` (0 for the first).
    pub fn delay(&self, n_poll: u32) -> Duration {
        capped_exponential(self.initial, n_poll, self.max)
    }
}

/// A task's state, from `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct TaskStatus {
    /// `running` or `stopped`.
    pub status: String,
    /// Once stopped: `OK`, `WARNINGS: n`, or an error message.
    #[serde(default)]
    pub exitstatus: Option<String>,
    /// The task's kind, e.g. `qmcreate`.
    #[serde(default, rename = "type")]
    pub task_type: Option<String>,
    /// What the task works on, e.g. a VM id.
    #[serde(default)]
    pub id: Option<String>,
    /// Who started it.
    #[serde(default)]
    pub user: Option<String>,
    /// The node it runs on.
    #[serde(default)]
    pub node: Option<String>,
    /// Start time, seconds since the Unix epoch.
    #[serde(default)]
    pub starttime: Option<i64>,
}

impl TaskStatus {
    /// Whether the task is still running.
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// Whether the task stopped successfully (`OK` or `WARNINGS: n`).
    pub fn is_success(&self) -> bool {
        !self.is_running()
            && self
                .exitstatus
                .as_deref()
                .is_some_and(is_success_exit_status)
    }
}

/// Whether an exit status means success: `OK`, or `WARNINGS: n`.
pub(crate) fn is_success_exit_status(exit_status: &str) -> bool {
    exit_status == "OK" || exit_status.starts_with("WARNINGS")
}

/// How a task that did its work ended: `OK`, or `WARNINGS: n`.
///
/// A task that failed is an [`Error::TaskFailed`] instead (see the module docs).
/// `Display` prints the exit status as Proxmox reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskOutcome {
    /// The exit status was `OK`.
    Ok,
    /// The exit status was `WARNINGS: n`: the work was done, with `count` warnings.
    Warnings {
        /// The `n` of `WARNINGS: n`.
        count: u32,
        /// The log lines starting with `WARN:`, oldest first (at most 100).
        lines: Vec<String>,
    },
}

impl TaskOutcome {
    /// Whether the task ended with `OK`, without warnings.
    pub fn is_ok(&self) -> bool {
        matches!(self, TaskOutcome::Ok)
    }

    /// The number of warnings (0 for [`TaskOutcome::Ok`]).
    pub fn warning_count(&self) -> u32 {
        match self {
            TaskOutcome::Ok => 0,
            TaskOutcome::Warnings { count, .. } => *count,
        }
    }

    /// The exit status as Proxmox reports it: `OK` or `WARNINGS: n`.
    pub fn exit_status(&self) -> String {
        self.to_string()
    }

    /// The outcome of a successful exit status, without the warning lines; `None` for a failure.
    fn from_exit_status(exit_status: &str) -> Option<TaskOutcome> {
        if exit_status == "OK" {
            return Some(TaskOutcome::Ok);
        }
        let count = exit_status.strip_prefix("WARNINGS")?;
        let count = count.trim_start_matches(':').trim();
        Some(TaskOutcome::Warnings {
            // Proxmox always writes the count; a missing or odd one still means "warnings".
            count: count.parse().unwrap_or(1),
            lines: Vec::new(),
        })
    }
}

impl fmt::Display for TaskOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskOutcome::Ok => f.write_str("OK"),
            TaskOutcome::Warnings { count, .. } => write!(f, "WARNINGS: {count}"),
        }
    }
}

/// Compares the exit status: `outcome == "OK"`, `outcome == "WARNINGS: 2"`.
impl PartialEq<str> for TaskOutcome {
    fn eq(&self, exit_status: &str) -> bool {
        match self {
            TaskOutcome::Ok => exit_status == "OK",
            TaskOutcome::Warnings { count, .. } => {
                TaskOutcome::from_exit_status(exit_status).is_some_and(|other| {
                    matches!(other, TaskOutcome::Warnings { count: other_count, .. } if other_count == *count)
                })
            }
        }
    }
}

/// Compares the exit status: `outcome == "OK"`.
impl PartialEq<&str> for TaskOutcome {
    fn eq(&self, exit_status: &&str) -> bool {
        self == *exit_status
    }
}

/// One line of a task log.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct TaskLogLine {
    /// The line number, counting from 1.
    pub n: u64,
    /// The text.
    pub t: String,
}

/// A handle on a background task; created by [`Client::task`] or [`Call::task`].
///
/// It owns a clone of the client (an `Arc` inside) and of the UPID: store it, or move it into
/// `tokio::spawn`.
#[derive(Clone)]
pub struct Task {
    client: Client,
    upid: Upid,
    polling: TaskPolling,
}

impl Task {
    /// A handle using the client's default polling.
    pub fn new(client: Client, upid: Upid) -> Self {
        let polling = client.task_polling();
        Task {
            client,
            upid,
            polling,
        }
    }

    /// Overrides the polling pace for this task.
    #[must_use]
    pub fn poll_interval(mut self, initial: Duration, max: Duration) -> Self {
        self.polling = TaskPolling { initial, max };
        self
    }

    /// The task's identifier.
    pub fn upid(&self) -> &Upid {
        &self.upid
    }

    /// The task's current state.
    pub async fn status(&self) -> Result<TaskStatus> {
        self.client.get(&self.task_path("status"), &()).await
    }

    /// Waits until the task stops, and returns how it ended: [`TaskOutcome::Ok`] or
    /// [`TaskOutcome::Warnings`].
    ///
    /// Fails with [`Error::TaskFailed`] (exit status and log tail) if the task failed, and with
    /// [`Error::Timeout`] if it is still running after `timeout`; the task itself is not stopped
    /// then.
    pub async fn wait(&self, timeout: Duration) -> Result<TaskOutcome> {
        let span = crate::telemetry::task_wait_span(&self.upid);
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = match tokio::time::timeout_at(deadline, self.poll_until_stopped())
            .instrument(span.clone())
            .await
        {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(Error::Timeout {
                what: format!("waiting for task {}", self.upid),
                source: None,
            }),
        };
        crate::telemetry::record_task_outcome(&span, &outcome);
        outcome
    }

    /// Asks Proxmox to stop the task.
    pub async fn stop(&self) -> Result<()> {
        self.client.delete(&self.task_path(""), &()).await
    }

    /// Streams the whole log as it is now, oldest line first, fetching it page by page.
    pub fn log(&self) -> Items<TaskLogLine> {
        let task = self.clone();
        let pages = stream::try_unfold(Some(0u64), move |next_start| {
            let task = task.clone();
            async move {
                let Some(start) = next_start else {
                    return Ok(None);
                };
                let page = task.log_page(start, LOG_PAGE_SIZE).await?;
                let n_lines = page.data.len() as u64;
                if n_lines == 0 {
                    return Ok(None);
                }
                let end = start + n_lines;
                let finished =
                    n_lines < LOG_PAGE_SIZE || page.total.is_some_and(|total| end >= total);
                let next_start = if finished { None } else { Some(end) };
                Ok(Some((
                    stream::iter(page.data.into_iter().map(Ok)),
                    next_start,
                )))
            }
        });
        Items::new(pages.try_flatten())
    }

    /// Streams the log while the task runs, oldest line first, and ends once the task stopped
    /// and its last line was read.
    ///
    /// Between reads that bring no new line it pauses as [`Task::wait`] polls (1 s, 2 s, …), but
    /// at most 5 s; a new line resets the pause. The stream does not tell how the task ended:
    /// call [`Task::wait`] after it, which then answers at once.
    ///
    /// ```no_run
    /// # async fn demo(task: proxmox_sdk::Task) -> proxmox_sdk::Result<()> {
    /// let mut lines = task.follow();
    /// while let Some(line) = lines.next().await {
    ///     println!("{}", line?.t);
    /// }
    /// let outcome = task.wait(std::time::Duration::from_secs(10)).await?;
    /// # let _ = outcome; Ok(()) }
    /// ```
    pub fn follow(&self) -> Items<TaskLogLine> {
        let cursor = FollowCursor {
            task: self.clone(),
            next_start: 0,
            last_n: 0,
            n_idle: 0,
            stopped: false,
            pending: VecDeque::new(),
        };
        Items::new(stream::try_unfold(cursor, |mut cursor| async move {
            let line = cursor.next_line().await?;
            Ok(line.map(|line| (line, cursor)))
        }))
    }

    /// The last `n_lines` lines of the log, oldest first.
    pub async fn log_tail(&self, n_lines: usize) -> Result<Vec<String>> {
        let first = self.log_page(0, LOG_PAGE_SIZE).await?;
        let n_first = first.data.len() as u64;
        if let Some(total) = first.total
            && total > n_first
        {
            let start = total.saturating_sub(n_lines as u64);
            let last = self.log_page(start, n_lines as u64).await?;
            return Ok(last.data.into_iter().map(|line| line.t).collect());
        }
        let mut tail: VecDeque<String> = VecDeque::with_capacity(n_lines);
        let mut push = |line: TaskLogLine| {
            if tail.len() == n_lines {
                tail.pop_front();
            }
            if n_lines > 0 {
                tail.push_back(line.t);
            }
        };
        let first_was_full = n_first >= LOG_PAGE_SIZE;
        first.data.into_iter().for_each(&mut push);
        if first_was_full {
            let mut start = n_first;
            loop {
                let page = self.log_page(start, LOG_PAGE_SIZE).await?;
                let n_page = page.data.len() as u64;
                page.data.into_iter().for_each(&mut push);
                if n_page < LOG_PAGE_SIZE {
                    break;
                }
                start += n_page;
            }
        }
        Ok(tail.into())
    }

    /// Polls until the task stops, then turns its exit status into the outcome.
    async fn poll_until_stopped(&self) -> Result<TaskOutcome> {
        let mut n_poll = 0u32;
        loop {
            let status = self.status().await?;
            if !status.is_running() {
                return self.outcome(status).await;
            }
            let delay = self.polling.delay(n_poll);
            tracing::trace!(upid = %self.upid, ?delay, "task still running");
            n_poll = n_poll.saturating_add(1);
            tokio::time::sleep(delay).await;
        }
    }

    /// The outcome of a successful task, [`Error::TaskFailed`] otherwise.
    async fn outcome(&self, status: TaskStatus) -> Result<TaskOutcome> {
        let exit_status = status
            .exitstatus
            .unwrap_or_else(|| "unknown (no exit status reported)".to_owned());
        match TaskOutcome::from_exit_status(&exit_status) {
            Some(TaskOutcome::Warnings { count, .. }) => Ok(TaskOutcome::Warnings {
                count,
                lines: self.warning_lines().await,
            }),
            Some(outcome) => Ok(outcome),
            None => {
                let log_tail = match self.log_tail(LOG_TAIL_LINES).await {
                    Ok(lines) => lines,
                    Err(error) => {
                        tracing::debug!(upid = %self.upid, error = %error, "could not read the log of a failed task");
                        Vec::new()
                    }
                };
                Err(Error::TaskFailed(TaskFailedError::new(
                    self.upid.clone(),
                    exit_status,
                    log_tail,
                )))
            }
        }
    }

    /// The `WARN:` lines of the log; empty if the log cannot be read (the outcome stays known).
    async fn warning_lines(&self) -> Vec<String> {
        let mut log = self.log();
        let mut lines = Vec::new();
        while let Some(line) = log.next().await {
            match line {
                Ok(line) if line.t.starts_with("WARN") => {
                    if lines.len() == MAX_WARNING_LINES {
                        break;
                    }
                    lines.push(line.t);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(upid = %self.upid, error = %error, "could not read the log of a task with warnings");
                    break;
                }
            }
        }
        lines
    }

    /// One page of the log.
    async fn log_page(&self, start: u64, limit: u64) -> Result<Paged<Vec<TaskLogLine>>> {
        self.client
            .request(Method::GET, self.task_path("log"))
            .params(&serde_json::json!({ "start": start, "limit": limit }))
            .send_paged()
            .await
    }

    /// `/nodes/{node}/tasks/{upid}/{leaf}`, or without the leaf when it is empty.
    fn task_path(&self, leaf: &str) -> String {
        let upid = self.upid.to_string();
        let mut segments = vec!["nodes", self.upid.node.as_str(), "tasks", upid.as_str()];
        if !leaf.is_empty() {
            segments.push(leaf);
        }
        path(segments)
    }
}

/// Where [`Task::follow`] stands.
struct FollowCursor {
    task: Task,
    /// The `start` of the next read.
    next_start: u64,
    /// The number of the last line handed out; lines at or below it are not repeated.
    last_n: u64,
    /// Reads in a row that brought nothing new, for the pause.
    n_idle: u32,
    /// Whether the task was seen stopped before the last read (so that read was the last).
    stopped: bool,
    /// Lines read but not yet handed out.
    pending: VecDeque<TaskLogLine>,
}

impl FollowCursor {
    /// The next line, reading and pausing as needed; `None` once the task stopped and its log
    /// was read to the end.
    async fn next_line(&mut self) -> Result<Option<TaskLogLine>> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Ok(Some(line));
            }
            if self.stopped {
                return Ok(None);
            }
            // The status first: when it says stopped, the read after it sees the whole log.
            let stopped = !self.task.status().await?.is_running();
            let n_read = self.read_available().await?;
            if stopped {
                self.stopped = true;
                continue;
            }
            if n_read > 0 {
                self.n_idle = 0;
                continue;
            }
            let pause = self.task.polling.delay(self.n_idle).min(FOLLOW_MAX_PAUSE);
            self.n_idle = self.n_idle.saturating_add(1);
            tokio::time::sleep(pause).await;
        }
    }

    /// Reads every line past `next_start` into `pending`; returns how many were new.
    async fn read_available(&mut self) -> Result<usize> {
        let mut n_new = 0;
        loop {
            let page = self.task.log_page(self.next_start, LOG_PAGE_SIZE).await?;
            let n_lines = page.data.len() as u64;
            self.next_start += n_lines;
            for line in page.data {
                if line.n > self.last_n {
                    self.last_n = line.n;
                    self.pending.push_back(line);
                    n_new += 1;
                }
            }
            let more =
                n_lines >= LOG_PAGE_SIZE && page.total.is_none_or(|total| self.next_start < total);
            if !more {
                return Ok(n_new);
            }
        }
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("upid", &self.upid.to_string())
            .field("polling", &self.polling)
            .finish()
    }
}

impl<P> Call<Upid, P> {
    /// Sends the call and returns a handle on the task it started.
    pub async fn task(self) -> Result<Task> {
        let request = self.into_request();
        let client = request.client().clone();
        let upid: Upid = request.send().await?;
        Ok(Task::new(client, upid))
    }

    /// Sends the call, then waits until the task it started stops (see [`Task::wait`]).
    ///
    /// `timeout` bounds the wait for the task; the request itself has the client's timeout, or
    /// the one set with [`Call::timeout`].
    pub async fn wait(self, timeout: Duration) -> Result<TaskOutcome> {
        self.task().await?.wait(timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_doubles_to_the_cap() {
        let polling = TaskPolling::default();
        let delays: Vec<u64> = (0..7)
            .map(|n_poll| polling.delay(n_poll).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn exit_statuses() {
        assert!(is_success_exit_status("OK"));
        assert!(is_success_exit_status("WARNINGS: 2"));
        assert!(!is_success_exit_status(
            "command 'qm start 100' failed: exit code 1"
        ));
        assert!(!is_success_exit_status("unexpected status"));
    }

    #[test]
    fn outcomes() {
        assert_eq!(TaskOutcome::from_exit_status("OK"), Some(TaskOutcome::Ok));
        let warnings = TaskOutcome::from_exit_status("WARNINGS: 3").expect("a success");
        assert_eq!(warnings.warning_count(), 3);
        assert_eq!(warnings.to_string(), "WARNINGS: 3");
        assert!(!warnings.is_ok());
        assert_eq!(
            TaskOutcome::from_exit_status("WARNINGS")
                .expect("a success")
                .warning_count(),
            1
        );
        assert_eq!(TaskOutcome::from_exit_status("unexpected status"), None);
        assert_eq!(TaskOutcome::Ok.exit_status(), "OK");
        assert_eq!(TaskOutcome::Ok, "OK");
        assert_eq!(warnings, "WARNINGS: 3");
        assert_ne!(warnings, "OK");
    }

    #[test]
    fn status_decoding() {
        let status: TaskStatus = serde_json::from_str(
            r#"{"status":"stopped","exitstatus":"OK","type":"qmcreate","id":"100","user":"root@pam",
                "node":"pve1","pid":1234,"pstart":5678,"starttime":1700000000,"upid":"UPID:..."}"#,
        )
        .expect("valid status");
        assert!(status.is_success());
        let running: TaskStatus =
            serde_json::from_str(r#"{"status":"running"}"#).expect("valid status");
        assert!(running.is_running() && !running.is_success());
    }
}
