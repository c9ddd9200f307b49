//! Simulation controls: task durations and injected faults (the seed profiles are in
//! `crate::seed::profile`).
//!
//! Layout:
//! - [`TaskDurations`] (`durations`): how long worker tasks of each type report `running`.
//! - [`Simulation`] (this file): the request and task faults, kept in memory.
//! - `faults`: the fault specs ([`FaultSpec`]) and the `lock` and `node` faults, which are
//!   state changes.
//!
//! # Faults
//!
//! One JSON shape, [`FaultSpec`], for four kinds:
//!
//! - `request` (the default): requests matching `method` and `path` (below `/api2/json`, a
//!   trailing `*` matches a prefix) wait `delay_ms`, and fail with `status` and `message` (503
//!   `injected fault` unless given) `count` times; a fault with only `delay_ms` adds latency
//!   without failing, to every matching request until cleared unless `count` is given;
//! - `task`: the next `count` worker tasks of a `type` (`qmstart`, `vzdump`, ...), optionally of
//!   an `id` (the guest) and `node`, end with `exitstatus` as their error and the `log` lines
//!   before `TASK ERROR: ...`; their effect on the state is not applied;
//! - `lock`: sets (or with an empty or absent `lock`, clears) the `lock` of guest `vmid` in its
//!   configuration, as a running backup or migration would; the guest semantics
//!   (`ops::guest::check_lock`) then refuse what Proxmox refuses on a locked guest (`VM is locked
//!   (backup)`, `PVE::AbstractConfig::check_lock`);
//! - `node`: marks `node` offline (`offline`, default true) or online again. Calls proxied to
//!   an offline node (operations with `proxyto`) answer like `pveproxy` when it cannot reach the
//!   node (pve-http-server `src/PVE/APIServer/AnyEvent.pm`, `proxy_request`, which passes on
//!   AnyEvent::HTTP's pseudo-statuses): `595 No route to host` by default, or
//!   `596 Connection timed out` with `"status": 596`. `/nodes`, `/cluster/status` and
//!   `/cluster/resources` show the node offline.
//!
//! Request and task faults live in memory; `lock` and `node` faults are state changes (written
//! to the store like any other change) and are undone by `/_mock/reset`.

mod durations;
mod faults;

pub use durations::TaskDurations;
pub use faults::{FaultKind, FaultSpec};
pub(crate) use faults::{check_node_reachable, seed_changes};

use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::AppError;
use crate::store::StateStore;
use faults::fault_changes;

/// An injected request fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fault {
    /// Method to fail (any when absent).
    #[serde(default)]
    pub(crate) method: Option<String>,
    /// Path below `/api2/json` (a trailing `*` matches a prefix).
    pub(crate) path: String,
    /// HTTP status to answer; `None` only delays.
    #[serde(default)]
    pub(crate) status: Option<u16>,
    /// How many requests it still affects; `None` for every request until cleared.
    #[serde(default)]
    pub(crate) count: Option<u32>,
    /// Message of the reply.
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// Added latency in milliseconds.
    #[serde(default)]
    pub(crate) delay_ms: u64,
}

impl Fault {
    /// Whether the fault applies to a request (`path` relative to `/api2/json` or absolute).
    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        let path = path.strip_prefix("/api2/json").unwrap_or(path);
        let wanted = self.path.strip_prefix("/api2/json").unwrap_or(&self.path);
        let path_ok = match wanted.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path.trim_end_matches('/') == wanted.trim_end_matches('/'),
        };
        method_ok && path_ok && self.count.is_none_or(|count| count > 0)
    }
}

/// An injected task failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskFault {
    /// Worker type to fail (any when absent).
    #[serde(rename = "type", default)]
    pub(crate) task_type: Option<String>,
    /// Task ID to match (any when absent).
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// Node to match (any when absent).
    #[serde(default)]
    pub(crate) node: Option<String>,
    /// The error the task ends with.
    pub(crate) exitstatus: String,
    /// Log lines before the error.
    #[serde(default)]
    pub(crate) log: Vec<String>,
    /// How many tasks it still fails (`None`: all until cleared).
    #[serde(default)]
    pub(crate) count: Option<u32>,
}

/// What a request fault does to one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultHit {
    /// Latency to add.
    pub(crate) delay: Duration,
    /// The error to answer, if any.
    pub(crate) error: Option<AppError>,
}

/// The in-memory faults of one mock instance.
#[derive(Debug, Default)]
pub(crate) struct Simulation {
    requests: Mutex<Vec<Fault>>,
    tasks: Mutex<Vec<TaskFault>>,
}

fn id_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl Simulation {
    /// A simulation with the request and task faults of a seed.
    pub(crate) fn new(seed_faults: &[FaultSpec]) -> Simulation {
        let simulation = Simulation::default();
        simulation.load(seed_faults);
        simulation
    }

    /// Forgets every request and task fault and loads the seed's again.
    pub(crate) fn reset(&self, seed_faults: &[FaultSpec]) {
        self.clear();
        self.load(seed_faults);
    }

    fn load(&self, seed_faults: &[FaultSpec]) {
        // `lock` and `node` faults are rows of the seed (`seed_changes`).
        for spec in seed_faults
            .iter()
            .filter(|spec| matches!(spec.kind, FaultKind::Request | FaultKind::Task))
        {
            if let Err(error) = self.add_memory_fault(spec) {
                tracing::warn!(%error, "ignoring an invalid seed fault");
            }
        }
    }

    /// Removes every request and task fault.
    pub(crate) fn clear(&self) {
        lock(&self.requests).clear();
        lock(&self.tasks).clear();
    }

    /// The current request and task faults, as specs.
    pub(crate) fn list(&self) -> Vec<Value> {
        let mut out: Vec<Value> = lock(&self.requests)
            .iter()
            .map(|fault| {
                let mut value = json!(fault);
                value["kind"] = json!("request");
                value
            })
            .collect();
        out.extend(lock(&self.tasks).iter().map(|fault| {
            let mut value = json!(fault);
            value["kind"] = json!("task");
            value
        }));
        out
    }

    /// Adds a `request` or `task` fault; other kinds are state changes ([`apply_fault`]).
    pub(crate) fn add_memory_fault(&self, spec: &FaultSpec) -> Result<(), String> {
        check_bounds(spec)?;
        match spec.kind {
            FaultKind::Request => {
                let path = spec
                    .path
                    .clone()
                    .ok_or_else(|| "a request fault needs a 'path'".to_owned())?;
                let delay_ms = spec.delay_ms.unwrap_or(0);
                let status = match (spec.status, delay_ms) {
                    (Some(status), _) => Some(status),
                    (None, 0) => Some(503),
                    (None, _) => None,
                };
                if let Some(status) = status
                    && !(400..=599).contains(&status)
                {
                    return Err(format!("invalid fault status {status} (400 to 599)"));
                }
                let count = match (spec.count, status) {
                    (Some(count), _) => Some(count),
                    (None, Some(_)) => Some(1),
                    (None, None) => None,
                };
                lock(&self.requests).push(Fault {
                    method: spec.method.clone(),
                    path,
                    status,
                    count,
                    message: spec.message.clone(),
                    delay_ms,
                });
                Ok(())
            }
            FaultKind::Task => {
                lock(&self.tasks).push(TaskFault {
                    task_type: spec.task_type.clone(),
                    id: spec.id.as_ref().map(id_text),
                    node: spec.node.clone(),
                    exitstatus: spec
                        .exitstatus
                        .clone()
                        .filter(|text| !text.trim().is_empty())
                        .unwrap_or_else(|| "simulated failure".to_owned()),
                    log: spec.log.clone(),
                    count: Some(spec.count.unwrap_or(1)),
                });
                Ok(())
            }
            FaultKind::Lock | FaultKind::Node => {
                Err("lock and node faults change the state".to_owned())
            }
        }
    }

    /// Consumes the request faults that match a request.
    pub(crate) fn take_request_fault(&self, method: &str, path: &str) -> Option<FaultHit> {
        let mut faults = lock(&self.requests);
        let mut hit: Option<FaultHit> = None;
        for fault in faults
            .iter_mut()
            .filter(|fault| fault.matches(method, path))
        {
            let entry = hit.get_or_insert_with(FaultHit::default);
            entry.delay = entry.delay.max(Duration::from_millis(fault.delay_ms));
            if entry.error.is_none()
                && let Some(status) = fault.status
            {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let message = fault
                    .message
                    .clone()
                    .unwrap_or_else(|| "injected fault\n".to_owned());
                entry.error = Some(AppError::status(status, message));
            }
            if let Some(count) = &mut fault.count {
                *count = count.saturating_sub(1);
            }
        }
        faults.retain(|fault| fault.count.is_none_or(|count| count > 0));
        hit
    }

    /// The task fault that a new worker task of `kind` for `id` on `node` hits, if any (its
    /// count goes down by one): the task then fails with the fault's exit status, after its log
    /// lines, and its effect is not applied.
    pub(crate) fn task_fault(&self, kind: &str, id: &str, node: &str) -> Option<TaskFailure> {
        let mut faults = lock(&self.tasks);
        let index = faults.iter().position(|fault| {
            fault.task_type.as_deref().is_none_or(|t| t == kind)
                && fault.id.as_deref().is_none_or(|i| i == id)
                && fault.node.as_deref().is_none_or(|n| n == node)
                && fault.count.is_none_or(|count| count > 0)
        })?;
        let fault = faults[index].clone();
        if let Some(count) = &mut faults[index].count {
            *count = count.saturating_sub(1);
        }
        faults.retain(|fault| fault.count.is_none_or(|count| count > 0));
        Some(TaskFailure {
            exitstatus: fault.exitstatus,
            log: fault.log,
        })
    }

    /// Applies a fault posted to `/_mock/faults`: request and task faults are kept in memory,
    /// `lock` and `node` faults are written to the store.
    pub(crate) async fn apply(&self, store: &StateStore, spec: FaultSpec) -> Result<(), AppError> {
        check_bounds(&spec)
            .map_err(|error| AppError::bad_request(format!("invalid fault: {error}\n")))?;
        match spec.kind {
            FaultKind::Request | FaultKind::Task => self
                .add_memory_fault(&spec)
                .map_err(|error| AppError::bad_request(format!("invalid fault: {error}\n"))),
            FaultKind::Lock | FaultKind::Node => {
                store
                    .transact(|tables| Ok::<_, AppError>((fault_changes(tables, &spec)?, ())))
                    .await
            }
        }
    }
}

/// How a task that hit a task fault ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskFailure {
    /// The error the task ends with.
    pub(crate) exitstatus: String,
    /// Log lines written before the error.
    pub(crate) log: Vec<String>,
}

/// Longest injected latency.
const MAX_DELAY_MS: u64 = 60_000;
/// Most requests or tasks one fault may affect.
const MAX_COUNT: u32 = 1_000_000;
/// Longest path, message or exit status.
const MAX_TEXT: usize = 4096;
/// Most log lines of a task fault.
const MAX_LOG_LINES: usize = 1000;

/// The bounds every fault spec keeps, so a fault cannot make the mock hold requests for hours or
/// grow without limit.
fn check_bounds(spec: &FaultSpec) -> Result<(), String> {
    if spec.delay_ms.is_some_and(|delay| delay > MAX_DELAY_MS) {
        return Err(format!("delay_ms over {MAX_DELAY_MS}"));
    }
    if spec.count.is_some_and(|count| count > MAX_COUNT) {
        return Err(format!("count over {MAX_COUNT}"));
    }
    let texts = [&spec.path, &spec.message, &spec.exitstatus, &spec.method];
    if texts
        .iter()
        .any(|text| text.as_ref().is_some_and(|text| text.len() > MAX_TEXT))
        || spec.log.iter().any(|line| line.len() > MAX_TEXT)
    {
        return Err(format!("a text over {MAX_TEXT} bytes"));
    }
    if spec.log.len() > MAX_LOG_LINES {
        return Err(format!("more than {MAX_LOG_LINES} log lines"));
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn faults_match() {
        let fault = Fault {
            method: Some("GET".to_owned()),
            path: "/nodes*".to_owned(),
            status: Some(503),
            count: Some(1),
            message: None,
            delay_ms: 0,
        };
        assert!(fault.matches("GET", "/nodes/pve1"));
        assert!(!fault.matches("POST", "/nodes/pve1"));
    }

    #[test]
    fn request_faults_fail_then_expire_and_latency_stays() {
        let simulation = Simulation::default();
        simulation
            .add_memory_fault(&FaultSpec {
                path: Some("/nodes*".to_owned()),
                status: Some(500),
                count: Some(1),
                ..FaultSpec::default()
            })
            .unwrap();
        simulation
            .add_memory_fault(&FaultSpec {
                path: Some("/nodes/pve1".to_owned()),
                delay_ms: Some(20),
                ..FaultSpec::default()
            })
            .unwrap();
        let hit = simulation.take_request_fault("GET", "/nodes/pve1").unwrap();
        assert_eq!(hit.delay, Duration::from_millis(20));
        assert_eq!(hit.error.unwrap().http_status().as_u16(), 500);
        let hit = simulation.take_request_fault("GET", "/nodes/pve1").unwrap();
        assert!(hit.error.is_none(), "latency only");
        assert!(simulation.take_request_fault("GET", "/version").is_none());
        assert_eq!(simulation.list().len(), 1);
        assert!(
            simulation
                .add_memory_fault(&FaultSpec {
                    path: Some("/x".to_owned()),
                    status: Some(42),
                    ..FaultSpec::default()
                })
                .is_err()
        );
    }

    #[test]
    fn task_faults_match_type_and_id() {
        let simulation = Simulation::default();
        simulation
            .add_memory_fault(&FaultSpec {
                kind: FaultKind::Task,
                task_type: Some("qmstart".to_owned()),
                id: Some(json!(100)),
                exitstatus: Some("start failed: boom".to_owned()),
                log: vec!["trying".to_owned()],
                ..FaultSpec::default()
            })
            .unwrap();
        assert_eq!(simulation.task_fault("qmstart", "101", "pve1"), None);
        let failure = simulation.task_fault("qmstart", "100", "pve1").unwrap();
        assert_eq!(failure.exitstatus, "start failed: boom");
        assert_eq!(failure.log, vec!["trying".to_owned()]);
        assert_eq!(
            simulation.task_fault("qmstart", "100", "pve1"),
            None,
            "count defaults to 1"
        );
    }
}
