//! The discrepancy log of the proxy: per operation, how many calls passed, how many requests and
//! replies broke the schema (with one example each), how many upstream failures there were; the
//! most recent discrepancies; and its renderings: JSON (`GET /_mock/discrepancies`, the `.json`
//! report) and Markdown (the `.md` report).
//!
//! Each discrepancy is logged once with `tracing` when it is recorded. What it carries was made
//! safe by `super::validate` (no secret values), so it can be shown anywhere.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Value, json};

/// How many recent discrepancies are kept for `GET /_mock/discrepancies`.
const RECENT: usize = 200;

/// Which way a discrepancy went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    /// The client's request broke the schema.
    Request,
    /// The upstream's reply broke the schema.
    Reply,
}

/// One place where traffic and schema disagree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Discrepancy {
    /// The operation (`operationId`), or `METHOD /path` when no operation matched.
    pub(crate) operation: String,
    /// Request or reply.
    pub(crate) direction: Direction,
    /// JSON pointer into the request's parameters (`/vmid`) or the reply body (`/data/0/vmid`).
    pub(crate) pointer: String,
    /// What the schema says (type, format, enumeration...).
    pub(crate) expected: String,
    /// What was sent (shortened; `(redacted)` where the value may be a secret).
    pub(crate) found: String,
    /// The validator's message, in Proxmox's words.
    pub(crate) message: String,
}

/// Counts of one operation.
#[derive(Debug, Default, Clone, Serialize)]
struct OperationStats {
    calls: u64,
    request_problems: u64,
    reply_problems: u64,
    upstream_failures: u64,
    refused: u64,
    /// Replies passed on without being checked: the check queue was full.
    #[serde(skip_serializing_if = "is_zero")]
    not_validated: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_example: Option<Discrepancy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_example: Option<Discrepancy>,
}

#[derive(Debug, Default)]
struct Log {
    operations: BTreeMap<String, OperationStats>,
    recent: VecDeque<Discrepancy>,
    calls: u64,
    request_problems: u64,
    reply_problems: u64,
    upstream_failures: u64,
    refused: u64,
    not_validated: u64,
}

/// The shared discrepancy log.
#[derive(Debug, Default)]
pub(crate) struct Discrepancies {
    log: Mutex<Log>,
}

impl Discrepancies {
    /// Counts a call of an operation.
    pub(crate) fn call(&self, operation: &str) {
        let mut log = self.lock();
        log.calls += 1;
        update(&mut log, operation, |stats| stats.calls += 1);
    }

    /// Records (and logs) discrepancies.
    pub(crate) fn record(&self, found: Vec<Discrepancy>) {
        if found.is_empty() {
            return;
        }
        for item in &found {
            tracing::warn!(
                operation = %item.operation,
                direction = ?item.direction,
                pointer = %item.pointer,
                expected = %item.expected,
                found = %item.found,
                message = %item.message,
                "schema discrepancy"
            );
        }
        let mut log = self.lock();
        for item in found {
            update(&mut log, &item.operation, |stats| match item.direction {
                Direction::Request => {
                    stats.request_problems += 1;
                    stats.request_example.get_or_insert_with(|| item.clone());
                }
                Direction::Reply => {
                    stats.reply_problems += 1;
                    stats.reply_example.get_or_insert_with(|| item.clone());
                }
            });
            match item.direction {
                Direction::Request => log.request_problems += 1,
                Direction::Reply => log.reply_problems += 1,
            }
            if log.recent.len() == RECENT {
                log.recent.pop_front();
            }
            log.recent.push_back(item);
        }
    }

    /// Counts an upstream failure (refused, TLS, timeout, 5xx).
    pub(crate) fn upstream_failure(&self, operation: &str) {
        let mut log = self.lock();
        log.upstream_failures += 1;
        update(&mut log, operation, |stats| stats.upstream_failures += 1);
    }

    /// Counts a reply passed on unchecked because the check queue was full.
    pub(crate) fn not_validated(&self, operation: &str) {
        let mut log = self.lock();
        log.not_validated += 1;
        update(&mut log, operation, |stats| stats.not_validated += 1);
    }

    /// Counts a request refused by `--strict`.
    pub(crate) fn refused(&self, operation: &str) {
        let mut log = self.lock();
        log.refused += 1;
        update(&mut log, operation, |stats| stats.refused += 1);
    }

    /// Everything, as JSON (the body of `GET /_mock/discrepancies` and the `.json` report).
    pub(crate) fn to_json(&self) -> Value {
        let log = self.lock();
        json!({
            "totals": {
                "calls": log.calls,
                "request_problems": log.request_problems,
                "reply_problems": log.reply_problems,
                "upstream_failures": log.upstream_failures,
                "refused": log.refused,
                "replies_not_validated": log.not_validated,
            },
            "operations": log.operations,
            "recent": log.recent,
        })
    }

    /// The one-line summary logged at shutdown.
    pub(crate) fn summary(&self) -> String {
        let log = self.lock();
        let affected = log
            .operations
            .values()
            .filter(|stats| stats.request_problems + stats.reply_problems > 0)
            .count();
        format!(
            "{} calls, {} request problems, {} reply problems in {affected} operations, {} upstream failures, {} refused, {} replies not validated (queue full)",
            log.calls,
            log.request_problems,
            log.reply_problems,
            log.upstream_failures,
            log.refused,
            log.not_validated
        )
    }

    /// The Markdown report: totals, then one row per operation and one example each.
    pub(crate) fn to_markdown(&self, upstream: &str, tag: &str) -> String {
        let log = self.lock();
        let mut out = String::new();
        let _ = writeln!(out, "# Proxy report\n");
        let _ = writeln!(out, "Upstream `{upstream}`, schema {tag}.\n");
        let _ = writeln!(
            out,
            "{} calls, {} request problems, {} reply problems, {} upstream failures, {} refused by --strict, {} replies not validated (the check queue was full).\n",
            log.calls,
            log.request_problems,
            log.reply_problems,
            log.upstream_failures,
            log.refused,
            log.not_validated
        );
        let _ = writeln!(
            out,
            "| Operation | Calls | Request problems | Reply problems | Upstream failures | Refused |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for (operation, stats) in &log.operations {
            let _ = writeln!(
                out,
                "| `{operation}` | {} | {} | {} | {} | {} |",
                stats.calls,
                stats.request_problems,
                stats.reply_problems,
                stats.upstream_failures,
                stats.refused
            );
        }
        let with_examples: Vec<_> = log
            .operations
            .iter()
            .filter(|(_, stats)| stats.request_example.is_some() || stats.reply_example.is_some())
            .collect();
        if !with_examples.is_empty() {
            let _ = writeln!(out, "\n## Examples\n");
        }
        for (operation, stats) in with_examples {
            let _ = writeln!(out, "### `{operation}`\n");
            for example in [&stats.request_example, &stats.reply_example]
                .into_iter()
                .flatten()
            {
                let _ = writeln!(
                    out,
                    "- {:?} `{}`: expected {}, found `{}` ({})",
                    example.direction,
                    if example.pointer.is_empty() {
                        "/"
                    } else {
                        &example.pointer
                    },
                    example.expected,
                    example.found.replace('`', "'"),
                    example.message.trim_end()
                );
            }
            let _ = writeln!(out);
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        // A panic while holding the lock leaves counters that are still worth reading.
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Updates one operation's counts; its name is copied only the first time it is seen.
fn update(log: &mut Log, operation: &str, change: impl FnOnce(&mut OperationStats)) {
    match log.operations.get_mut(operation) {
        Some(stats) => change(stats),
        None => change(log.operations.entry(operation.to_owned()).or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(direction: Direction) -> Discrepancy {
        Discrepancy {
            operation: "get_version".to_owned(),
            direction,
            pointer: "/data/release".to_owned(),
            expected: "string".to_owned(),
            found: "{...}".to_owned(),
            message: "type check failed".to_owned(),
        }
    }

    #[test]
    fn counts_and_examples_per_operation() {
        let log = Discrepancies::default();
        log.call("get_version");
        log.call("get_version");
        log.record(vec![sample(Direction::Reply), sample(Direction::Reply)]);
        log.record(vec![sample(Direction::Request)]);
        let json = log.to_json();
        assert_eq!(json["totals"]["calls"], 2);
        assert_eq!(json["totals"]["reply_problems"], 2);
        assert_eq!(json["operations"]["get_version"]["request_problems"], 1);
        assert_eq!(
            json["operations"]["get_version"]["reply_example"]["pointer"],
            "/data/release"
        );
        let markdown = log.to_markdown("https://pve:8006", "9.1");
        assert!(markdown.contains("| `get_version` | 2 | 1 | 2 | 0 | 0 |"));
        assert!(markdown.contains("Reply `/data/release`"));
    }
}
