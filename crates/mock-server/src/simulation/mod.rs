//! Simulation controls: task durations, injected faults and seed profiles.
//!
//! Layout:
//! - [`TaskDurations`]: how long worker tasks of each type report `running`.
//! - [`Simulation`]: the faults injected through `/_mock/faults` or the seed's `faults` list.
//! - [`profile`]: the named seed profiles (`small`, `large`).
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
//!   ([`crate::domain`]) then refuse what Proxmox refuses on a locked guest (`VM is locked
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
pub mod profile;

pub use durations::TaskDurations;

use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use route_metadata::Operation;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::AppError;
use crate::schema::Params;
use crate::store::{Change, StateStore, Tables};

/// The kind of a [`FaultSpec`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Fail or delay API requests.
    #[default]
    Request,
    /// Make worker tasks end with an error.
    Task,
    /// Lock or unlock a guest.
    Lock,
    /// Take a node offline or bring it back.
    Node,
}

/// A fault as posted to `/_mock/faults` or listed in a seed's `faults` (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Which kind of fault.
    #[serde(default)]
    pub kind: FaultKind,
    /// `request`: method to match (any when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `request`: path below `/api2/json` (a trailing `*` matches a prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `request`: HTTP status to answer; `node`: 595 or 596.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `request` and `task`: how many times the fault fires.
    #[serde(default, alias = "times", skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// `request` and `node`: message of the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `request`: added latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// `task`: the worker type (`qmstart`, `vzdump`, ...).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub task_type: Option<String>,
    /// `task`: the task's ID (usually the guest's VM ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// `task` and `node`: the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `task`: the error the task ends with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exitstatus: Option<String>,
    /// `task`: log lines written before the error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// `lock`: the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// `lock`: the lock (`backup`, `migrate`, `snapshot`, ...); empty or absent unlocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// `node`: offline (default) or back online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<bool>,
}

/// An injected request fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Method to fail (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Path below `/api2/json` (a trailing `*` matches a prefix).
    pub path: String,
    /// HTTP status to answer; `None` only delays.
    #[serde(default)]
    pub status: Option<u16>,
    /// How many requests it still affects; `None` for every request until cleared.
    #[serde(default)]
    pub count: Option<u32>,
    /// Message of the reply.
    #[serde(default)]
    pub message: Option<String>,
    /// Added latency in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
}

impl Fault {
    /// Whether the fault applies to a request (`path` relative to `/api2/json` or absolute).
    pub fn matches(&self, method: &str, path: &str) -> bool {
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
pub struct TaskFault {
    /// Worker type to fail (any when absent).
    #[serde(rename = "type", default)]
    pub task_type: Option<String>,
    /// Task ID to match (any when absent).
    #[serde(default)]
    pub id: Option<String>,
    /// Node to match (any when absent).
    #[serde(default)]
    pub node: Option<String>,
    /// The error the task ends with.
    pub exitstatus: String,
    /// Log lines before the error.
    #[serde(default)]
    pub log: Vec<String>,
    /// How many tasks it still fails (`None`: all until cleared).
    #[serde(default)]
    pub count: Option<u32>,
}

/// What a request fault does to one request.
#[derive(Debug, Clone, Default)]
pub struct FaultHit {
    /// Latency to add.
    pub delay: Duration,
    /// The error to answer, if any.
    pub error: Option<AppError>,
}

/// The in-memory faults of one mock instance.
#[derive(Debug, Default)]
pub struct Simulation {
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
    pub fn new(seed_faults: &[FaultSpec]) -> Simulation {
        let simulation = Simulation::default();
        simulation.load(seed_faults);
        simulation
    }

    /// Forgets every request and task fault and loads the seed's again.
    pub fn reset(&self, seed_faults: &[FaultSpec]) {
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
    pub fn clear(&self) {
        lock(&self.requests).clear();
        lock(&self.tasks).clear();
    }

    /// The current request and task faults, as specs.
    pub fn list(&self) -> Vec<Value> {
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
    pub fn add_memory_fault(&self, spec: &FaultSpec) -> Result<(), String> {
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
                    && (StatusCode::from_u16(status).is_err() || status < 100)
                {
                    return Err(format!("invalid fault status {status}"));
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
    pub fn take_request_fault(&self, method: &str, path: &str) -> Option<FaultHit> {
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hidden key of a node row: the status its proxied calls answer while it is offline.
pub const UNREACHABLE_KEY: &str = "_unreachable";

/// Read access to rows, for planning `lock` and `node` faults against the store or a seed.
trait Rows {
    /// A row and its collection.
    fn row(&self, path: &str) -> Option<(Value, Option<String>)>;
    /// The item path of a guest.
    fn guest(&self, vmid: u32) -> Option<String>;
}

impl Rows for Tables {
    fn row(&self, path: &str) -> Option<(Value, Option<String>)> {
        Some((self.get(path)?.clone(), self.member_of.get(path).cloned()))
    }

    fn guest(&self, vmid: u32) -> Option<String> {
        self.members("/nodes").find_map(|node| {
            ["qemu", "lxc"]
                .into_iter()
                .map(|kind| format!("{node}/{kind}/{vmid}"))
                .find(|item| self.exists(item))
        })
    }
}

/// The rows of a seed's change list (the last put of a path wins).
struct SeedRows<'a>(&'a [Change]);

impl Rows for SeedRows<'_> {
    fn row(&self, path: &str) -> Option<(Value, Option<String>)> {
        self.0.iter().rev().find_map(|change| match change {
            Change::Put {
                path: put,
                collection,
                value,
            } if put == path => Some((value.clone(), collection.clone())),
            _ => None,
        })
    }

    fn guest(&self, vmid: u32) -> Option<String> {
        let suffix = format!("/{vmid}");
        self.0.iter().find_map(|change| match change {
            Change::Put {
                path,
                collection: Some(collection),
                ..
            } if path.ends_with(&suffix)
                && path.starts_with("/nodes/")
                && (collection.ends_with("/qemu") || collection.ends_with("/lxc")) =>
            {
                Some(path.clone())
            }
            _ => None,
        })
    }
}

/// The changes a `lock` or `node` fault makes to the state.
fn fault_changes(rows: &impl Rows, spec: &FaultSpec) -> Result<Vec<Change>, AppError> {
    match spec.kind {
        FaultKind::Lock => {
            let vmid = spec
                .vmid
                .ok_or_else(|| AppError::bad_request("a lock fault needs a 'vmid'\n"))?;
            let item = rows
                .guest(vmid)
                .ok_or_else(|| AppError::bad_request(format!("no guest with VM ID {vmid}\n")))?;
            let (config, collection) = rows.row(&item).unwrap_or((json!({}), None));
            let mut config = match config {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            match spec.lock.as_deref().filter(|lock| !lock.is_empty()) {
                Some(lock) => {
                    config.insert("lock".to_owned(), json!(lock));
                }
                None => {
                    config.remove("lock");
                }
            }
            let config = Value::Object(config);
            Ok(vec![Change::Put {
                collection,
                path: item,
                value: config,
            }])
        }
        FaultKind::Node => {
            let node = spec
                .node
                .as_deref()
                .ok_or_else(|| AppError::bad_request("a node fault needs a 'node'\n"))?;
            let path = format!("/nodes/{node}");
            let (row, _) = rows
                .row(&path)
                .ok_or_else(|| AppError::bad_request(format!("no node '{node}'\n")))?;
            let offline = spec.offline.unwrap_or(true);
            let mut row = match row {
                Value::Object(map) => Value::Object(map),
                _ => json!({}),
            };
            row["status"] = json!(if offline { "offline" } else { "online" });
            if let Value::Object(map) = &mut row {
                if offline {
                    let status = spec.status.unwrap_or(595);
                    if !matches!(status, 595 | 596) {
                        return Err(AppError::bad_request(
                            "an offline node answers 595 or 596\n",
                        ));
                    }
                    let mut unreachable = json!({"status": status});
                    if let Some(message) = &spec.message {
                        unreachable["message"] = json!(message);
                    }
                    map.insert(UNREACHABLE_KEY.to_owned(), unreachable);
                } else {
                    map.remove(UNREACHABLE_KEY);
                }
            }
            Ok(vec![Change::Put {
                path,
                collection: Some("/nodes".to_owned()),
                value: row,
            }])
        }
        FaultKind::Request | FaultKind::Task => Ok(Vec::new()),
    }
}

/// Answers like `pveproxy` when an operation is proxied (`proxyto`) to an offline node.
pub fn check_node_reachable(
    tables: &Tables,
    op: &Operation,
    params: &Params,
) -> Result<(), AppError> {
    let Some(name) = op.proxyto.as_deref() else {
        return Ok(());
    };
    let Some(node) = params.get(name).and_then(Value::as_str) else {
        return Ok(());
    };
    let Some(row) = tables.get(&format!("/nodes/{node}")) else {
        return Ok(());
    };
    if row.get("status").and_then(Value::as_str) != Some("offline") {
        return Ok(());
    }
    let unreachable = row.get(UNREACHABLE_KEY);
    let status = unreachable
        .and_then(|u| u.get("status"))
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(595);
    let message = unreachable
        .and_then(|u| u.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if status == 596 {
                "Connection timed out".to_owned()
            } else {
                "No route to host".to_owned()
            }
        });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    Err(AppError::status(status, format!("{message}\n")))
}

/// Folds the `lock` and `node` faults of a seed into its rows (later puts win).
pub fn seed_changes(changes: &mut Vec<Change>, faults: &[FaultSpec]) {
    for spec in faults
        .iter()
        .filter(|spec| matches!(spec.kind, FaultKind::Lock | FaultKind::Node))
    {
        match fault_changes(&SeedRows(changes), spec) {
            Ok(extra) => changes.extend(extra),
            Err(error) => tracing::warn!(error = %error, "ignoring an invalid seed fault"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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
