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

fn snapshot_path(guest: &Guest, name: &str) -> String {
    format!("{}/{name}", guest.snapshot_collection())
}

fn snapshot_row<'t>(
    tables: &'t Tables,
    guest: &Guest,
    name: &str,
) -> Result<&'t Map<String, Value>, String> {
    match tables.get(&snapshot_path(guest, name)) {
        Some(Value::Object(row)) => Ok(row),
        _ => Err(format!("snapshot '{name}' does not exist\n")),
    }
}

fn put_snapshot(guest: &Guest, name: &str, row: Map<String, Value>) -> Change {
    Change::Put {
        path: snapshot_path(guest, name),
        collection: Some(guest.snapshot_collection()),
        value: Value::Object(row),
    }
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
    let tables = tx.tables;
    guest.config(tables)?;
    let name = call.param("snapname").unwrap_or_default();
    let row = snapshot_row(tables, guest, name).map_err(AppError::die)?;
    Ok(Value::Object(super::visible(row)))
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
    if config.get("template").is_some_and(|t| text(t) == "1") {
        return fail(call, "you can't take a snapshot if it's a template\n");
    }
    if let Err(message) = check_lock(guest.kind, &config, call) {
        return fail(call, message);
    }
    if tables.exists(&snapshot_path(guest, &name)) {
        return fail(call, format!("snapshot name '{name}' already used\n"));
    }
    let mut snapshot: Map<String, Value> = config
        .iter()
        .filter(|(key, _)| !NOT_COPIED.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
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
            super::guests::put_config(tables, guest, config),
        ],
        ..Plan::default()
    })
}

/// `PUT .../snapshot/{snapname}/config`: updates the description.
pub(crate) fn update(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let config = guest.config(tables)?;
    let name = call.param("snapname").unwrap_or_default();
    if let Err(message) = check_lock(guest.kind, &config, call) {
        return Err(AppError::die(message));
    }
    let mut row = snapshot_row(tables, guest, name)
        .map_err(AppError::die)?
        .clone();
    if let Some(description) = call.arg_text("description") {
        row.insert("description".to_owned(), json!(description));
    }
    Ok(Plan {
        now: vec![put_snapshot(guest, name, row)],
        ..Plan::default()
    })
}

/// `POST .../snapshot/{snapname}/rollback` (task): the config becomes the snapshot's.
pub(crate) fn rollback(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let config = guest.config(tables)?;
    let name = call.param("snapname").unwrap_or_default();
    if let Err(message) = check_lock(guest.kind, &config, call) {
        return fail(call, message);
    }
    let snapshot = match snapshot_row(tables, guest, name) {
        Ok(snapshot) => snapshot,
        Err(message) => return fail(call, message),
    };
    let mut restored: Map<String, Value> = snapshot
        .iter()
        .filter(|(key, _)| !NOT_COPIED.contains(&key.as_str()) && !key.starts_with('_'))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    restored.insert("parent".to_owned(), json!(name));
    let running_after = snapshot.get("vmstate").is_some() || call.flag("start");
    Ok(Plan {
        at_end: vec![
            super::guests::put_config(tables, guest, restored),
            Change::Put {
                path: guest.status_path(),
                collection: None,
                value: if running_after {
                    status_row(Power::Running, auth::now())
                } else {
                    status_row(Power::Stopped, 0)
                },
            },
        ],
        ..Plan::default()
    })
}

/// `DELETE .../snapshot/{snapname}` (task): children and the config take over its parent.
pub(crate) fn delete(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let mut config = guest.config(tables)?;
    let name = call.param("snapname").unwrap_or_default();
    if !call.flag("force")
        && let Err(message) = check_lock(guest.kind, &config, call)
    {
        return fail(call, message);
    }
    let snapshot = match snapshot_row(tables, guest, name) {
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
    plan.at_end
        .push(super::guests::put_config(tables, guest, config));
    Ok(plan)
}
