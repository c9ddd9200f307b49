//! The fault specs ([`FaultSpec`], [`FaultKind`]) and the faults that are state changes:
//! `lock` (a guest's `lock` key) and `node` (a node offline, see [`check_node_reachable`]).
//!
//! Both are planned as [`Change`]s against [`Rows`], either the live store ([`Tables`]) for a
//! fault posted to `/_mock/faults` or a seed's change list ([`seed_changes`]), so they are
//! written, persisted and reset like any other row.

use std::sync::LazyLock;

use http::StatusCode;
use route_metadata::Operation;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::AppError;
use crate::schema::Params;
use crate::store::{Change, Tables};

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

/// Hidden key of a node row: the status its proxied calls answer while it is offline.
const UNREACHABLE_KEY: &str = "_unreachable";

/// Read access to rows, for planning `lock` and `node` faults against the store or a seed.
pub(super) trait Rows {
    /// A row and its collection.
    fn row(&self, path: &str) -> Option<(Value, Option<String>)>;
    /// The item path of a guest.
    fn guest(&self, vmid: u32) -> Option<String>;
}

impl Rows for Tables {
    fn row(&self, path: &str) -> Option<(Value, Option<String>)> {
        let row = self.row(path)?;
        Some((row.value(), row.collection().map(str::to_owned)))
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
pub(super) fn fault_changes(rows: &impl Rows, spec: &FaultSpec) -> Result<Vec<Change>, AppError> {
    match spec.kind {
        FaultKind::Lock => lock_changes(rows, spec),
        FaultKind::Node => node_changes(rows, spec),
        FaultKind::Request | FaultKind::Task => Ok(Vec::new()),
    }
}

/// A `lock` fault: sets (or, with an empty or absent `lock`, removes) the guest's `lock` key.
fn lock_changes(rows: &impl Rows, spec: &FaultSpec) -> Result<Vec<Change>, AppError> {
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

/// A `node` fault: marks the node offline (with the status its proxied calls answer) or online.
fn node_changes(rows: &impl Rows, spec: &FaultSpec) -> Result<Vec<Change>, AppError> {
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

/// The fields of a node row that [`check_node_reachable`] reads; the others are skipped.
#[derive(Debug, Default, serde::Deserialize)]
struct NodeGate {
    #[serde(default)]
    status: Option<Value>,
    #[serde(default, rename = "_unreachable")]
    unreachable: Option<Value>,
}

/// Answers like `pveproxy` when an operation is proxied (`proxyto`) to an offline node.
pub(crate) fn check_node_reachable(
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
    let mut path = String::with_capacity("/nodes/".len() + node.len());
    path.push_str("/nodes/");
    path.push_str(node);
    let Some(row) = tables.row(&path) else {
        return Ok(());
    };
    // Every proxied request asks, so a row without the string "offline" is not parsed, and
    // otherwise only the two fields are read from its text (a row that is not an object has
    // neither). The searcher is built once.
    static OFFLINE: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new("\"offline\""));
    if !row.text_has(&OFFLINE) {
        return Ok(());
    }
    let row: NodeGate = row.fields();
    if row.status.as_ref().and_then(Value::as_str) != Some("offline") {
        return Ok(());
    }
    let unreachable = row.unreachable.as_ref();
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
pub(crate) fn seed_changes(changes: &mut Vec<Change>, faults: &[FaultSpec]) {
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
