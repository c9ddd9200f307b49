//! Backups: `POST /nodes/{node}/vzdump`.
//!
//! `vzdump` locks each guest (`lock: backup`) while its task runs and creates
//! `<storage>:backup/vzdump-<type>-<vmid>-<YYYY_MM_DD-hh_mm_ss>.<ext>` when it ends
//! (pve-manager `PVE/VZDump.pm`).

use serde_json::{Map, Value, json};

use super::guest::{Guest, Kind, check_lock};
use super::pools::{pool_row, pool_vms};
use super::storage::{Volume, put_volume, volume};
use super::storage::{storage_config, supports};
use super::text;
use super::{Call, Plan, Tx};
use crate::access::rpcenv::RpcEnv;
use crate::error::AppError;
use crate::schema::split_list;
use crate::store::{Change, Tables};

/// `YYYY_MM_DD-hh_mm_ss` in UTC, as in vzdump archive names.
pub(crate) fn backup_timestamp(epoch: u64) -> String {
    let days = i64::try_from(epoch / 86_400).unwrap_or(0);
    let seconds = epoch % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}_{month:02}_{day:02}-{:02}_{:02}_{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// `POST /nodes/{node}/vzdump`: backs up the selected local guests to a backup storage.
pub(crate) fn vzdump(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let node = call.param("node").unwrap_or_default();
    let rpc = tx.rpc(call);
    check_vzdump_params(call, &rpc)?;
    let storage = backup_storage(call, tables)?;
    let mut selected = selected_guests(call, tables, node)?;
    // `exec_backup` (pve-manager `PVE/VZDump.pm`): `VM.Backup` on each guest; with `all=1`
    // the others are skipped, else the task fails before backing anything up.
    if let Some(vmid) = selected
        .iter()
        .find(|vmid| !rpc.allows(&format!("/vms/{vmid}"), &["VM.Backup"]))
        .filter(|_| !call.flag("all"))
    {
        return super::fail(
            call,
            format!("Permission check failed (/vms/{vmid}, VM.Backup)\n"),
        );
    }
    selected.retain(|vmid| rpc.allows(&format!("/vms/{vmid}"), &["VM.Backup"]));
    let now = crate::auth::now();
    let job = Job {
        node,
        storage,
        extension: archive_extension(&call.arg_text("compress").unwrap_or_else(|| "0".to_owned())),
        now,
        stamp: backup_timestamp(now),
    };
    let mut plan = Plan::default();
    let mut errors = false;
    for vmid in selected {
        if !back_up(call, tables, &job, vmid, &mut plan)? {
            errors = true;
        }
    }
    if errors {
        plan.task_error = Some("job errors".to_owned());
        // Backups that succeeded are kept; failed guests were never locked.
        let kept = std::mem::take(&mut plan.at_end);
        plan.now.extend(kept);
        plan.now.retain(|change| !is_backup_lock(change));
    }
    Ok(plan)
}

/// The checks of `vzdump`'s parameters before its task starts
/// (`assert_param_permission_vzdump` in pve-manager `PVE/API2/VZDump.pm` and
/// `assert_param_permission_common` in `PVE/API2/Backup.pm`): options only root may set,
/// `Sys.Modify` for bandwidth and I/O settings, `Datastore.AllocateSpace` on the fleecing and
/// target storages, `Datastore.Allocate` to prune, `Sys.Modify` on the node to `stop`.
fn check_vzdump_params(call: &Call<'_>, rpc: &RpcEnv<'_>) -> Result<(), AppError> {
    if rpc.is_root() {
        return Ok(());
    }
    for key in ["tmpdir", "dumpdir", "script", "job-id"] {
        if call.args.contains_key(key) {
            return Err(AppError::param(key, "Only root may set this option."));
        }
    }
    if ["bwlimit", "ionice", "performance"]
        .iter()
        .any(|key| call.args.get(*key).is_some_and(|v| !v.is_null()))
    {
        rpc.check("/", &["Sys.Modify"])?;
    }
    let fleecing = call.arg_text("fleecing").unwrap_or_default();
    if let Some(storage) = fleecing
        .split(',')
        .find_map(|part| part.strip_prefix("storage="))
    {
        rpc.check(&format!("/storage/{storage}"), &["Datastore.AllocateSpace"])?;
    }
    let storage = call
        .arg_text("storage")
        .unwrap_or_else(|| "local".to_owned());
    if call.args.contains_key("prune-backups") {
        rpc.check(&format!("/storage/{storage}"), &["Datastore.Allocate"])?;
    }
    if call.flag("stop") {
        let node = call.param("node").unwrap_or_default();
        rpc.check(&format!("/nodes/{node}"), &["Sys.Modify"])?;
    }
    rpc.check(&format!("/storage/{storage}"), &["Datastore.AllocateSpace"])
}

/// One vzdump run: where its archives go and how they are named.
struct Job<'a> {
    /// The node whose guests are backed up.
    node: &'a str,
    /// The backup storage.
    storage: String,
    /// The compression's file extension (`.zst`, or empty).
    extension: &'static str,
    /// The start of the run (the archives' `ctime`).
    now: u64,
    /// The start of the run as in archive names.
    stamp: String,
}

/// The `storage=` of a call (`local` by default); it must hold backups.
fn backup_storage(call: &Call<'_>, tables: &Tables) -> Result<String, AppError> {
    let storage = call
        .arg_text("storage")
        .unwrap_or_else(|| "local".to_owned());
    let config = storage_config(tables, &storage)?;
    if !supports(&config, "backup") {
        return Err(AppError::param(
            "storage",
            format!("storage '{storage}' does not support backups"),
        ));
    }
    Ok(storage)
}

/// The VM IDs a call selects: every guest of the node (`all=1`), a pool's members (`pool=`) or
/// a list (`vmid=`), without those in `exclude=`.
fn selected_guests(call: &Call<'_>, tables: &Tables, node: &str) -> Result<Vec<u32>, AppError> {
    let excluded: Vec<u32> = call
        .arg_text("exclude")
        .map(|list| split_list(&list).filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let mut selected: Vec<u32> = Vec::new();
    if call.flag("all") {
        selected.extend(
            tables
                .guests
                .iter()
                .filter(|(_, item)| Guest::from_item(item).is_some_and(|g| g.node == node))
                .map(|(vmid, _)| *vmid),
        );
    } else if let Some(poolid) = call.arg_text("pool") {
        let row = &pool_row(tables, &poolid)?;
        selected.extend(
            pool_vms(row)
                .into_iter()
                .filter_map(|v| u32::try_from(v).ok()),
        );
    } else if let Some(list) = call.arg_text("vmid") {
        for vmid in split_list(&list) {
            selected.push(
                vmid.parse()
                    .map_err(|_| AppError::param("vmid", format!("invalid VM ID '{vmid}'")))?,
            );
        }
    } else {
        return Err(AppError::param(
            "vmid",
            "property is missing and it is not optional",
        ));
    }
    selected.retain(|vmid| !excluded.contains(vmid));
    Ok(selected)
}

/// The file extension of a `compress=` mode.
fn archive_extension(compress: &str) -> &'static str {
    match compress {
        "zstd" => ".zst",
        "gzip" => ".gz",
        "1" | "lzo" => ".lzo",
        _ => "",
    }
}

/// Backs up one guest into the plan: the guest is locked (`lock: backup`) while the task runs and
/// its archive is created when it ends. `false` when its backup failed (logged as vzdump does);
/// guests of other nodes are skipped.
fn back_up(
    call: &Call<'_>,
    tables: &Tables,
    job: &Job<'_>,
    vmid: u32,
    plan: &mut Plan,
) -> Result<bool, AppError> {
    let Some(item) = tables.guests.get(&vmid) else {
        plan.log.push(format!(
            "ERROR: Backup of VM {vmid} failed - unable to find VM {vmid}"
        ));
        return Ok(false);
    };
    let Some(guest) = Guest::from_item(item) else {
        return Ok(true);
    };
    if guest.node != job.node {
        plan.log.push(format!("skip external VMs: {vmid}"));
        return Ok(true);
    }
    let mut guest_config = guest.config(tables)?;
    if let Err(message) = check_lock(guest.kind, &guest_config, call) {
        plan.log.push(format!(
            "ERROR: Backup of VM {vmid} failed - {}",
            message.trim_end()
        ));
        return Ok(false);
    }
    let archive = archive_change(tables, job, &guest, &guest_config, plan)?;
    plan.at_end.push(archive);
    // The guest is locked while its backup runs (`lock: backup`).
    let mut locked = guest_config.clone();
    locked.insert("lock".to_owned(), json!("backup"));
    plan.now
        .push(super::guest::put_config(tables, &guest, locked));
    guest_config.remove("lock");
    plan.at_end
        .push(super::guest::put_config(tables, &guest, guest_config));
    Ok(true)
}

/// The change that creates a guest's archive volume
/// (`<storage>:backup/vzdump-<type>-<vmid>-<stamp>.<ext>`, an eighth of its disks' size, at
/// least 4 MiB, the guest's name as notes), logging the backup's progress.
fn archive_change(
    tables: &Tables,
    job: &Job<'_>,
    guest: &Guest,
    guest_config: &Map<String, Value>,
    plan: &mut Plan,
) -> Result<Change, AppError> {
    let (vmid, node, storage, stamp) = (guest.vmid, job.node, &job.storage, &job.stamp);
    let kind = guest.kind.segment();
    let archive = match guest.kind {
        Kind::Qemu => "vma",
        Kind::Lxc => "tar",
    };
    let format = format!("{archive}{}", job.extension);
    let volid = format!("{storage}:backup/vzdump-{kind}-{vmid}-{stamp}.{format}");
    let disk_bytes: u64 = super::guest::config_volumes(guest.kind, guest_config)
        .iter()
        .filter_map(|volid| volume(tables, node, volid))
        .map(|v| v.size)
        .sum();
    let volume = Volume {
        volid: volid.clone(),
        format: format.clone(),
        size: (disk_bytes / 8).max(4 << 20),
        content: "backup".to_owned(),
        vmid: Some(vmid),
    };
    plan.log
        .push(format!("INFO: Starting Backup of VM {vmid} ({kind})"));
    plan.log
        .push(format!("INFO: creating vzdump archive '{volid}'"));
    plan.log
        .push(format!("INFO: Finished Backup of VM {vmid} (00:00:01)"));
    let mut put = put_volume(tables, node, &volume)?;
    if let (Change::Put { value, .. }, Some(notes)) =
        (&mut put, guest_config.get(guest.kind.name_key()))
    {
        value["notes"] = json!(text(notes));
        value["ctime"] = json!(job.now);
    }
    Ok(put)
}

/// Whether a change writes a config locked by a backup.
fn is_backup_lock(change: &Change) -> bool {
    matches!(change, Change::Put { value, .. } if value.get("lock").and_then(Value::as_str) == Some("backup"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(backup_timestamp(0), "1970_01_01-00_00_00");
        assert_eq!(backup_timestamp(1_709_251_199), "2024_02_29-23_59_59");
        assert_eq!(backup_timestamp(1_735_689_600), "2025_01_01-00_00_00");
    }
}
