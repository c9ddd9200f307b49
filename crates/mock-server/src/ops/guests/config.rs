//! A guest's config: `GET .../config` (optionally of a snapshot), `GET .../pending`, and the
//! updates `PUT .../config` (synchronous) and `POST .../config` (a task).
//!
//! Both updates check the digest and the lock (unless `skiplock`), apply `delete` (a used disk
//! becomes `unused[n]`, an `unused[n]` volume is freed) and allocate new disks
//! (qemu-server `src/PVE/API2/Qemu.pm`, pve-container `src/PVE/API2/LXC/Config.pm`).

use serde_json::{Value, json};

use super::config_args;
use crate::error::AppError;
use crate::ops::disks::Allocator;
use crate::ops::guest::{ConfigChange, check_config_change, check_drive_values};
use crate::ops::guest::{Guest, config_digest, hide_cipassword};
use crate::ops::guest::{check_edit, put_config};
use crate::ops::guest::{is_disk_key, is_unused_key, owned_by};
use crate::ops::{Call, Plan, Tx, fail, snapshots, storage, text, visible};
use crate::schema::split_list;
use crate::store::Change;

/// `GET .../config`: the stored config plus `digest`; with `snapshot=<name>`, the snapshot's
/// config (`snapshot '<name>' does not exist` otherwise).
pub(crate) fn get_config(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Value, AppError> {
    let tables = tx.tables;
    let config = guest.config(tables)?;
    let digest = config_digest(&config, &guest.snapshots(tables));
    let mut reply = match call.arg_text("snapshot").filter(|name| !name.is_empty()) {
        Some(name) => {
            visible(&snapshots::snapshot_row(tables, guest, &name).map_err(AppError::die)?)
        }
        None => config,
    };
    hide_cipassword(&mut reply);
    reply.insert("digest".to_owned(), json!(digest));
    Ok(Value::Object(reply))
}

/// `GET .../pending`: every config key with its value (`config_with_pending_array` in
/// pve-guest-common `src/PVE/GuestHelpers.pm`). Changes apply at once in the mock, so no entry
/// carries `pending` or `delete`.
pub(crate) fn pending(_call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Value, AppError> {
    let tables = tx.tables;
    let mut config = guest.config(tables)?;
    let digest = config_digest(&config, &guest.snapshots(tables));
    hide_cipassword(&mut config);
    let mut keys: Vec<(&String, &Value)> = config.iter().collect();
    let digest_value = json!(digest);
    let digest_key = "digest".to_owned();
    keys.push((&digest_key, &digest_value));
    keys.sort_by(|a, b| a.0.cmp(b.0));
    Ok(Value::Array(
        keys.into_iter()
            .map(|(key, value)| json!({"key": key, "value": text(value)}))
            .collect(),
    ))
}

/// `PUT` (synchronous) and `POST` (task) `.../config`.
pub(crate) fn update_config(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let mut config = guest.config(tables)?;
    let updates = config_args(call, guest.kind);
    let deletes: Vec<String> = call
        .arg_text("delete")
        .map(|list| split_list(&list).map(str::to_owned).collect())
        .unwrap_or_default();
    for key in &deletes {
        if updates.contains_key(key) {
            return Err(AppError::param(
                "delete",
                format!("you can't use '-{key}' and -delete {key}' at the same time"),
            ));
        }
    }
    // `cdrom` is `ide2` (`$resolve_cdrom_alias`); reverted keys are checked like deleted ones.
    let removed: Vec<String> = deletes
        .iter()
        .cloned()
        .chain(
            call.arg_text("revert")
                .map(|list| split_list(&list).map(str::to_owned).collect::<Vec<_>>())
                .unwrap_or_default(),
        )
        .map(|key| {
            if key == "cdrom" {
                "ide2".to_owned()
            } else {
                key
            }
        })
        .collect();
    check_drive_values(tables, guest.kind, &updates)?;
    check_config_change(
        &tx.rpc(call),
        tables,
        &ConfigChange {
            kind: guest.kind,
            vmid: guest.vmid,
            pool: None,
            old: &config,
            set: &updates,
            delete: &removed,
            create: false,
        },
    )?;
    if let Err(message) = check_edit(call, tables, guest, &config) {
        return fail(call, message);
    }
    let mut plan = Plan::default();
    let force = call.flag("force");
    for key in &deletes {
        let Some(value) = config.remove(key) else {
            continue;
        };
        let value = text(&value);
        if is_unused_key(key) || (force && is_disk_key(guest.kind, key)) {
            if let Some(disk) = crate::ops::guest::parse_disk(guest.kind, key, &value)
                && owned_by(&disk.volume, guest.vmid)
                && let Some(path) =
                    storage::existing_volume_path(tables, &guest.node, &disk.volume)?
            {
                plan.at_end.push(Change::Delete { path });
            }
        } else if is_disk_key(guest.kind, key)
            && let Some(disk) = crate::ops::guest::parse_disk(guest.kind, key, &value)
            && !disk.cdrom
            && owned_by(&disk.volume, guest.vmid)
        {
            let unused = crate::ops::guest::free_unused_key(&config);
            config.insert(unused, json!(disk.volume));
        }
    }
    let mut allocator = Allocator::new(tables, &guest.node, guest.vmid);
    for (key, value) in updates {
        let prepared = allocator.prepare(guest.kind, &key, &value)?;
        // A disk replaced by another volume keeps its old volume as `unused[n]`.
        if is_disk_key(guest.kind, &key)
            && let Some(old) = config.get(&key).map(text)
            && let Some(old_disk) = crate::ops::guest::parse_disk(guest.kind, &key, &old)
            && let Some(new_disk) =
                crate::ops::guest::parse_disk(guest.kind, &key, &text(&prepared))
            && old_disk.volume != new_disk.volume
            && !old_disk.cdrom
            && owned_by(&old_disk.volume, guest.vmid)
        {
            let unused = crate::ops::guest::free_unused_key(&config);
            config.insert(unused, json!(old_disk.volume));
        }
        config.insert(key, prepared);
    }
    plan.log.append(&mut allocator.log);
    plan.at_end.append(&mut allocator.changes);
    plan.at_end.push(put_config(tables, guest, config));
    Ok(plan)
}
