//! Guest snapshots: create, list (with `current`), config, description update, rollback, delete
//! (`snapshot_*` in pve-guest-common `src/PVE/AbstractConfig.pm`; the API in qemu-server
//! `src/PVE/API2/Qemu.pm` and pve-container `src/PVE/API2/LXC/Snapshot.pm`).
//!
//! A snapshot is a row `{item}/snapshot/{name}` holding a copy of the config at that time (minus
//! `lock`, `digest`, `description`, `parent`, `snapshots`) with `snaptime`, its `description` and
//! its `parent`; the config's `parent` names the snapshot "you are here" follows. Rollback
//! replaces the config with the snapshot's (keeping `parent: <snapname>`); delete re-parents the
//! snapshot's children. Volume-level snapshots are not simulated: disks keep their volumes.

use serde_json::{Map, Value, json};

use super::guest::{Guest, Power, check_lock, config_digest, status_row};
use super::{Call, Plan, Tx};
use super::{fail, text};
use crate::auth;
use crate::error::AppError;
use crate::ops::guest::{is_template, put_config, put_status};
use crate::store::{Change, Tables};

/// Keys `snapshot_copy_config` leaves out.
const NOT_COPIED: &[&str] = &[
    "lock",
    "digest",
    "description",
    "parent",
    "snapshots",
    "snapstate",
    "snaptime",
    "vmstate",
    "runningmachine",
    "runningcpu",
];

/// The path of a snapshot's row.
fn snapshot_path(guest: &Guest, name: &str) -> String {
    format!("{}/{name}", guest.snapshot_collection())
}

/// A snapshot's row; Proxmox's message when there is none.
pub(crate) fn snapshot_row(
    tables: &Tables,
    guest: &Guest,
    name: &str,
) -> Result<Map<String, Value>, String> {
    match tables.get(&snapshot_path(guest, name)) {
        Some(Value::Object(row)) => Ok(row),
        _ => Err(format!("snapshot '{name}' does not exist\n")),
    }
}

/// The change that writes a snapshot's row.
fn put_snapshot(guest: &Guest, name: &str, row: Map<String, Value>) -> Change {
    Change::Put {
        path: snapshot_path(guest, name),
        collection: Some(guest.snapshot_collection()),
        value: Value::Object(row),
    }
}

/// The config keys a snapshot copies (`snapshot_copy_config`), or a rollback restores: all but
/// [`NOT_COPIED`] and hidden keys.
fn copy_config(config: &Map<String, Value>) -> Map<String, Value> {
    config
        .iter()
        .filter(|(key, _)| !NOT_COPIED.contains(&key.as_str()) && !key.starts_with('_'))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// What a call on one snapshot (`{snapname}`) works on.
struct Addressed<'c> {
    /// The guest's config.
    config: Map<String, Value>,
    /// The snapshot's name.
    name: &'c str,
    /// The snapshot's row.
    row: Map<String, Value>,
}

/// The snapshot a call addresses, after the lock check (when `lock_checked`). The outer error
/// is a guest that does not exist; the inner one is Proxmox's message for a lock or a missing
/// snapshot, which the caller raises or fails the task with.
fn addressed<'c>(
    call: &'c Call<'_>,
    tables: &Tables,
    guest: &Guest,
    lock_checked: bool,
) -> Result<Result<Addressed<'c>, String>, AppError> {
    let config = guest.config(tables)?;
    let name = call.param("snapname").unwrap_or_default();
    if lock_checked && let Err(message) = check_lock(guest.kind, &config, call) {
        return Ok(Err(message));
    }
    Ok(snapshot_row(tables, guest, name).map(|row| Addressed { config, name, row }))
}

/// `GET .../snapshot`: every snapshot plus `current` ("You are here!").
pub(crate) fn list(_call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Value, AppError> {
    let tables = tx.tables;
    let config = guest.config(tables)?;
    let snapshots = guest.snapshots(tables);
    let mut entries: Vec<Value> = snapshots
        .iter()
        .map(|(name, snapshot)| {
            let mut entry = json!({
                "name": name,
                "description": snapshot.get("description").map(text).unwrap_or_default(),
            });
            for key in ["snaptime", "parent"] {
                if let Some(value) = snapshot.get(key) {
                    entry[key] = value.clone();
                }
            }
            if snapshot.get("vmstate").is_some() {
                entry["vmstate"] = json!(1);
            }
            entry
        })
        .collect();
    let mut current = json!({
        "name": "current",
        "description": "You are here!",
        "digest": config_digest(&config, &snapshots),
        "running": u8::from(guest.power(tables).is_running()),
    });
    if let Some(parent) = config.get("parent") {
        current["parent"] = parent.clone();
    }
    entries.push(current);
    Ok(Value::Array(entries))
}

/// `GET .../snapshot/{snapname}/config`.
pub(crate) fn get_config(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Value, AppError> {
    let snapshot = addressed(call, tx.tables, guest, false)?.map_err(AppError::die)?;
    Ok(Value::Object(super::visible(&snapshot.row)))
}

/// `POST .../snapshot` (task).
pub(crate) fn create(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let mut config = guest.config(tables)?;
    let name = call.arg_text("snapname").unwrap_or_default();
    if name == "current" || name.eq_ignore_ascii_case("pending") {
        return Err(AppError::die(format!(
            "unable to use snapshot name '{name}' (reserved name)\n"
        )));
    }
    if is_template(&config) {
        return fail(call, "you can't take a snapshot if it's a template\n");
    }
    if let Err(message) = check_lock(guest.kind, &config, call) {
        return fail(call, message);
    }
    if tables.exists(&snapshot_path(guest, &name)) {
        return fail(call, format!("snapshot name '{name}' already used\n"));
    }
    let mut snapshot = copy_config(&config);
    if let Some(parent) = config.get("parent") {
        snapshot.insert("parent".to_owned(), parent.clone());
    }
    snapshot.insert("snaptime".to_owned(), json!(auth::now()));
    if let Some(description) = call.arg_text("description").filter(|d| !d.is_empty()) {
        snapshot.insert("description".to_owned(), json!(description));
    }
    if call.flag("vmstate") && guest.power(tables).is_running() {
        snapshot.insert(
            "vmstate".to_owned(),
            json!(format!("local-lvm:vm-{}-state-{name}", guest.vmid)),
        );
    }
    config.insert("parent".to_owned(), json!(name));
    Ok(Plan {
        at_end: vec![
            put_snapshot(guest, &name, snapshot),
            put_config(tables, guest, config),
        ],
        ..Plan::default()
    })
}

/// `PUT .../snapshot/{snapname}/config`: updates the description.
pub(crate) fn update(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let snapshot = addressed(call, tx.tables, guest, true)?.map_err(AppError::die)?;
    let mut row = snapshot.row.clone();
    if let Some(description) = call.arg_text("description") {
        row.insert("description".to_owned(), json!(description));
    }
    Ok(Plan {
        now: vec![put_snapshot(guest, snapshot.name, row)],
        ..Plan::default()
    })
}

/// `POST .../snapshot/{snapname}/rollback` (task): the config becomes the snapshot's.
pub(crate) fn rollback(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let snapshot = match addressed(call, tables, guest, true)? {
        Ok(snapshot) => snapshot,
        Err(message) => return fail(call, message),
    };
    let mut restored = copy_config(&snapshot.row);
    restored.insert("parent".to_owned(), json!(snapshot.name));
    let running_after = snapshot.row.get("vmstate").is_some() || call.flag("start");
    Ok(Plan {
        at_end: vec![
            put_config(tables, guest, restored),
            put_status(
                guest,
                if running_after {
                    status_row(Power::Running, auth::now())
                } else {
                    status_row(Power::Stopped, 0)
                },
            ),
        ],
        ..Plan::default()
    })
}

/// `DELETE .../snapshot/{snapname}` (task): children and the config take over its parent.
pub(crate) fn delete(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let Addressed {
        mut config,
        name,
        row: snapshot,
    } = match addressed(call, tables, guest, !call.flag("force"))? {
        Ok(snapshot) => snapshot,
        Err(message) => return fail(call, message),
    };
    let parent = snapshot.get("parent").cloned();
    let mut plan = Plan::default();
    for (other, row) in guest.snapshots(tables) {
        if other != name && row.get("parent").and_then(Value::as_str) == Some(name) {
            let Value::Object(row) = row else { continue };
            let mut row = row.clone();
            match &parent {
                Some(parent) => row.insert("parent".to_owned(), parent.clone()),
                None => row.remove("parent"),
            };
            plan.at_end.push(put_snapshot(guest, &other, row));
        }
    }
    if config.get("parent").and_then(Value::as_str) == Some(name) {
        match parent {
            Some(parent) => config.insert("parent".to_owned(), parent),
            None => config.remove("parent"),
        };
    }
    plan.at_end.push(Change::Delete {
        path: snapshot_path(guest, name),
    });
    plan.at_end.push(put_config(tables, guest, config));
    Ok(plan)
}
