//! A guest's life after create: destroy, clone, convert to a template, migrate to another node
//! (qemu-server `src/PVE/API2/Qemu.pm`, pve-container `src/PVE/API2/LXC.pm`).
//!
//! Destroy removes the guest's volumes (those of its snapshots too) and its pool membership.
//! A clone gets new volumes, MAC addresses and SMBIOS UUID, and its ID is reserved at once
//! (`lock: clone`). Migrate moves the config, power state, snapshots and node-local volumes
//! when the task ends.

use serde_json::{Map, Value, json};

use super::{check_target_node, id_in_use, new_guest_plan, new_smbios1, new_vmgenid, required_id};
use crate::auth;
use crate::error::AppError;
use crate::ops::disks::{self, Allocator};
use crate::ops::guest::{Guest, Kind, Power, check_lock, status_row};
use crate::ops::guest::{config_volumes, is_disk_key, is_unused_key, owned_by};
use crate::ops::guest::{is_template, put_config, put_status};
use crate::ops::{Call, Plan, Tx, fail, storage, text};
use crate::store::{Change, Tables};

/// `DELETE /nodes/{node}/qemu/{vmid}` and `.../lxc/{vmid}`: removes the guest, its volumes and
/// its pool membership.
pub(crate) fn destroy(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let config = guest.config(tables)?;
    if config.get("protection").is_some_and(|p| text(p) == "1") {
        return Err(AppError::die(format!(
            "can't remove {} {} - protection mode enabled\n",
            guest.kind.label(),
            guest.vmid
        )));
    }
    if guest.power(tables).is_running() {
        return Err(AppError::die(match guest.kind {
            Kind::Qemu => format!("VM {} is running - destroy failed\n", guest.vmid),
            Kind::Lxc => format!(
                "unable to destroy CT {} - container is running\n",
                guest.vmid
            ),
        }));
    }
    if let Err(message) = check_lock(guest.kind, &config, call) {
        return fail(call, message);
    }
    let mut plan = Plan::default();
    for volid in owned_volumes(tables, guest, &config) {
        if let Some(path) = storage::existing_volume_path(tables, &guest.node, &volid)? {
            plan.log.push(format!(
                "  Logical volume \"{volid}\" successfully removed."
            ));
            plan.at_end.push(Change::Delete { path });
        }
    }
    plan.at_end
        .extend(crate::ops::pools::remove_from_pools(tables, guest.vmid));
    plan.at_end.push(Change::Delete {
        path: guest.item.clone(),
    });
    Ok(plan)
}

/// `POST .../clone`: a new guest from the source config (new volumes, MAC addresses, SMBIOS
/// UUID); the new ID is reserved at once (`lock: clone`).
pub(crate) fn clone(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let source = guest.config(tables)?;
    let newid = required_id(call, "newid")?;
    let target_node = call
        .arg_text("target")
        .unwrap_or_else(|| guest.node.clone());
    check_target_node(tables, &target_node)?;
    if let Some(error) = id_in_use(tables, newid) {
        return Err(error);
    }
    if let Err(message) = check_lock(guest.kind, &source, call) {
        return Err(AppError::die(message));
    }
    if target_node != guest.node && !is_template(&source) {
        check_shared_storage(tables, guest, &source, &target_node)?;
    }
    let new_guest = Guest::at(guest.kind, &target_node, newid);
    let target_storage = call.arg_text("storage");
    let mut allocator = Allocator::new(tables, &target_node, newid);
    let mut config = cloned_config(
        &mut allocator,
        guest.kind,
        &source,
        newid,
        target_storage.as_deref(),
    )?;
    name_clone(call, guest, &source, &mut config);
    if guest.kind == Kind::Qemu {
        config.insert("smbios1".to_owned(), new_smbios1(newid));
        if config.contains_key("vmgenid") {
            config.insert("vmgenid".to_owned(), new_vmgenid(newid));
        }
    }
    let mut plan = new_guest_plan(call, tables, &new_guest, "clone", allocator, config)?;
    plan.log.insert(
        0,
        format!(
            "create full clone of drive(s) from {} {}",
            guest.kind.label(),
            guest.vmid
        ),
    );
    Ok(plan)
}

/// `POST .../template`: marks the guest as a template (`template: 1`); a running guest is
/// refused.
pub(crate) fn template(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let mut config = guest.config(tables)?;
    if let Err(message) = check_lock(guest.kind, &config, call) {
        return Err(AppError::die(message));
    }
    if guest.power(tables).is_running() {
        return Err(AppError::die(match guest.kind {
            Kind::Qemu => "you can't convert a VM to template if VM is running\n",
            Kind::Lxc => "you can't convert a CT to template if the CT is running\n",
        }));
    }
    if is_template(&config) {
        return Err(AppError::die(
            "you can't convert a template to a template\n",
        ));
    }
    config.insert("template".to_owned(), json!(1));
    Ok(Plan {
        at_end: vec![put_config(tables, guest, config)],
        ..Plan::default()
    })
}

/// `POST .../migrate`: the guest (config, state, snapshots, node-local volumes) moves to the
/// target node when the task ends.
pub(crate) fn migrate(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let config = guest.config(tables)?;
    let target = call.arg_text("target").unwrap_or_default();
    if target == guest.node {
        return Err(AppError::param("target", "target is local node."));
    }
    check_target_node(tables, &target)?;
    let online = call.flag("online");
    let running = guest.power(tables).is_running();
    if guest.kind == Kind::Lxc && running && !call.flag("restart") {
        if online {
            return Err(AppError::die(
                "lxc live migration is currently not implemented\n",
            ));
        }
        return Err(AppError::die(
            "can't migrate running container without --online or --restart\n",
        ));
    }
    if let Err(message) = check_lock(guest.kind, &config, call) {
        return fail(call, message);
    }
    if guest.kind == Kind::Qemu && running && !online {
        return fail(call, "can't migrate running VM without --online\n");
    }
    let new_guest = Guest::at(guest.kind, &target, guest.vmid);
    let mut plan = Plan::default();
    plan.log.push(format!(
        "starting migration of {} {} to node '{target}'",
        guest.kind.label(),
        guest.vmid
    ));
    let volids = owned_volumes(tables, guest, &config);
    plan.at_end.extend(storage::move_volumes(
        tables,
        &guest.node,
        &target,
        &volids,
    )?);
    plan.at_end.extend(moved_rows(tables, guest, &new_guest));
    if guest.kind == Kind::Lxc && running {
        plan.at_end.push(put_status(
            &new_guest,
            status_row(Power::Running, auth::now()),
        ));
    }
    plan.log.push("migration finished successfully".to_owned());
    Ok(plan)
}

/// Every volume a guest owns: its disks, `unused[n]` and those only its snapshots refer to.
fn owned_volumes(tables: &Tables, guest: &Guest, config: &Map<String, Value>) -> Vec<String> {
    let mut volids = config_volumes(guest.kind, config);
    for (_, snapshot) in guest.snapshots(tables) {
        if let Value::Object(snapshot) = snapshot {
            volids.extend(config_volumes(guest.kind, &snapshot));
        }
    }
    volids.sort();
    volids.dedup();
    volids.retain(|volid| owned_by(volid, guest.vmid));
    volids
}

/// `clone_vm`: a clone to another node needs shared storage; local disks fail there.
fn check_shared_storage(
    tables: &Tables,
    guest: &Guest,
    source: &Map<String, Value>,
    target_node: &str,
) -> Result<(), AppError> {
    let local = config_volumes(guest.kind, source).into_iter().any(|volid| {
        volid
            .split_once(':')
            .and_then(|(s, _)| storage::storage_config(tables, s).ok())
            .is_some_and(|cfg| cfg.get("shared").is_none_or(|s| text(s) != "1"))
    });
    if local {
        return Err(AppError::die(format!(
            "Can't clone to node '{target_node}' - VM uses local storage\n"
        )));
    }
    Ok(())
}

/// The config of a clone: the source's keys except the lock, template and snapshot state and
/// `unused[n]`; disks on new volumes, NICs with new MAC addresses.
fn cloned_config(
    allocator: &mut Allocator<'_>,
    kind: Kind,
    source: &Map<String, Value>,
    newid: u32,
    target_storage: Option<&str>,
) -> Result<Map<String, Value>, AppError> {
    let mut config = Map::new();
    for (key, value) in source {
        if matches!(key.as_str(), "lock" | "template" | "parent" | "snapshots")
            || is_unused_key(key)
        {
            continue;
        }
        let raw = text(value);
        let new_value = if is_disk_key(kind, key) {
            cloned_disk(allocator, kind, key, &raw, target_storage)?
                .unwrap_or_else(|| value.clone())
        } else if key.starts_with("net") {
            json!(disks::net_with_new_mac(kind, newid, key, &raw))
        } else {
            value.clone()
        };
        config.insert(key.clone(), new_value);
    }
    Ok(config)
}

/// A disk of a clone on a new volume of the same size (1 GiB when none is recorded), on
/// `storage=` or else on the source volume's storage. `None` for CD-ROMs and disks that are not
/// volumes: the clone keeps those as they are.
fn cloned_disk(
    allocator: &mut Allocator<'_>,
    kind: Kind,
    key: &str,
    raw: &str,
    target_storage: Option<&str>,
) -> Result<Option<Value>, AppError> {
    let Some(disk) = crate::ops::guest::parse_disk(kind, key, raw)
        .filter(|disk| !disk.cdrom && disk.volume.contains(':'))
    else {
        return Ok(None);
    };
    let storage_id =
        target_storage.unwrap_or_else(|| disk.volume.split(':').next().unwrap_or_default());
    let size = disk.size.unwrap_or_else(|| shared_types::DiskSize::gib(1));
    let cloudinit = disk.volume.ends_with("-cloudinit");
    let volume = allocator.allocate(kind, storage_id, size, None, cloudinit)?;
    Ok(Some(json!(disks::with_volume(
        kind,
        raw,
        &volume.volid,
        Some(size)
    ))))
}

/// Names a clone: `name` (`hostname` for containers) and `description` from the call; a VM
/// without a new name is called `Copy-of-VM-<name>`.
fn name_clone(
    call: &Call<'_>,
    guest: &Guest,
    source: &Map<String, Value>,
    config: &mut Map<String, Value>,
) {
    let name_key = guest.kind.name_key();
    match call.arg_text(name_key) {
        Some(name) => {
            config.insert(name_key.to_owned(), json!(name));
        }
        None if guest.kind == Kind::Qemu => {
            let old = source
                .get("name")
                .map(text)
                .unwrap_or_else(|| format!("VM{}", guest.vmid));
            config.insert("name".to_owned(), json!(format!("Copy-of-VM-{old}")));
        }
        None => {}
    }
    if let Some(description) = call.arg_text("description") {
        config.insert("description".to_owned(), json!(description));
    }
}

/// The changes that move a guest's rows (config, power state, snapshots) to its place on the
/// target node: the old item is deleted, then the item and everything below it is put again.
fn moved_rows(tables: &Tables, guest: &Guest, new_guest: &Guest) -> Vec<Change> {
    let mut changes = vec![Change::Delete {
        path: guest.item.clone(),
    }];
    if let Some(row) = tables.get(&guest.item) {
        changes.push(Change::Put {
            path: new_guest.item.clone(),
            collection: Some(format!(
                "/nodes/{}/{}",
                new_guest.node,
                guest.kind.segment()
            )),
            value: row,
        });
    }
    for (path, row) in tables.subtree(&guest.item) {
        let suffix = &path[guest.item.len()..];
        let collection = row
            .collection()
            .map(|c| format!("{}{}", new_guest.item, &c[guest.item.len()..]));
        changes.push(Change::Put {
            path: format!("{}{suffix}", new_guest.item),
            collection,
            value: row.value(),
        });
    }
    changes
}
