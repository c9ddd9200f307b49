//! Background tasks: waiting for a UPID to finish and reading its log.
//!
//! Every Proxmox call that starts a worker (creating or starting a VM, a backup, a migration)
//! answers at once with a [`Upid`]; the work goes on in the background.
//! [`Task::wait`] polls `GET /nodes/{node}/tasks/{upid}/status` until `status` is `stopped`,
//! pausing 1 s, then 2 s, 4 s, … up to 30 s between polls (configurable with
//! [`ClientBuilder::task_poll_interval`](crate::ClientBuilder::task_poll_interval) or
//! [`Task::poll_interval`]), and gives up at a deadline measured on the monotonic clock, so a
//! change of wall-clock time cannot stretch or cut the wait.
//!
//! A task succeeded when its `exitstatus` is `OK`, or `WARNINGS: n` (the Proxmox UI shows those as
//! warnings, not errors).
//! Anything else becomes [`Error::TaskFailed`], carrying the last lines of
//! `GET /nodes/{node}/tasks/{upid}/log`, where the reason usually is.
//!
//! The log endpoint is paged with `start` and `limit` and answers lines as `{"n": 1, "t": "…"}`
//! with the line count in `total` next to `data`; [`Task::log`] streams every line, fetching 500 at
//! a time.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use futures::{Stream, TryStreamExt, stream};
use reqwest::Method;
use serde::Deserialize;
use shared_types::Upid;

use crate::Client;
use crate::encode::path;
use crate::envelope::Paged;
use crate::error::{Error, Result, TaskFailedError};
use crate::retry::capped_exponential;

/// How many log lines an [`Error::TaskFailed`] carries.
pub const LOG_TAIL_LINES: usize = 20;

/// How many log lines are fetched per request.
const LOG_PAGE_SIZE: u64 = 500;

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

/// One line of a task log.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct TaskLogLine {
    /// The line number, counting from 1.
    pub n: u64,
    /// The text.
    pub t: String,
}

/// A handle on a background task; created by [`Client::task`].
#[derive(Clone)]
pub struct Task<'a> {
    client: &'a Client,
    upid: &'a Upid,
    polling: TaskPolling,
}

impl<'a> Task<'a> {
    /// A handle using the client's default polling.
    pub(crate) fn new(client: &'a Client, upid: &'a Upid) -> Self {
        Task {
            client,
            upid,
            polling: client.task_polling(),
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
        self.upid
    }

    /// The task's current state.
    pub async fn status(&self) -> Result<TaskStatus> {
        self.client.get(&self.task_path("status"), &()).await
    }

    /// Waits until the task stops, and returns its exit status (`OK` or `WARNINGS: n`).
    ///
    /// Fails with [`Error::TaskFailed`] if the task failed, and with [`Error::Timeout`] if it is
    /// still running after `timeout`; the task itself is not stopped then.
    pub async fn wait(&self, timeout: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.poll_until_stopped()).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(Error::Timeout {
                what: format!("waiting for task {}", self.upid),
                source: None,
            }),
        }
    }

    /// Asks Proxmox to stop the task.
    pub async fn stop(&self) -> Result<()> {
        self.client.delete(&self.task_path(""), &()).await
    }

    /// Streams the whole log, oldest line first, fetching it page by page.
    pub fn log(&self) -> impl Stream<Item = Result<TaskLogLine>> + 'a {
        let task = self.clone();
        stream::try_unfold(Some(0u64), move |next_start| {
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
        })
        .try_flatten()
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
    async fn poll_until_stopped(&self) -> Result<String> {
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

    /// `Ok(exit status)` for a successful task, [`Error::TaskFailed`] otherwise.
    async fn outcome(&self, status: TaskStatus) -> Result<String> {
        let exit_status = status
            .exitstatus
            .unwrap_or_else(|| "unknown (no exit status reported)".to_owned());
        if is_success_exit_status(&exit_status) {
            return Ok(exit_status);
        }
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

impl fmt::Debug for Task<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("upid", &self.upid.to_string())
            .field("polling", &self.polling)
            .finish()
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
