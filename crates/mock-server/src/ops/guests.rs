//! QEMU VMs and LXC containers: create, config, power state, destroy, clone, template, migrate,
//! and `/cluster/nextid`.
//!
//! Sources (qemu-server `src/PVE/API2/Qemu.pm`, pve-container `src/PVE/API2/LXC.pm` and
//! `src/PVE/API2/LXC/Status.pm`, pve-guest-common `src/PVE/AbstractConfig.pm`, pve-manager
//! `PVE/API2/Cluster.pm`):
//!
//! - Create reserves the ID when the request is made (`create_and_lock_config`: the config exists
//!   at once with `lock: create`), so of concurrent creates with one ID exactly one wins and the
//!   others get `VM 150 already exists on node 'pve1'`; the task writes the full config and
//!   removes the lock when it ends.
//! - `PUT .../config` is synchronous, `POST .../config` runs as a task; both check the digest,
//!   the lock (unless `skiplock`), apply `delete` (a used disk becomes `unused[n]`, an
//!   `unused[n]` volume is freed) and allocate new disks.
//! - The power actions are tasks. Checks the API makes before forking fail the request
//!   (`CT 200 already running`, `VM 100 not running` for reboot/resume/reset); checks made in the
//!   worker fail the task (`VM 100 already running` for a QEMU start, locks).

use serde_json::{Map, Value, json};

use super::disks::{self, Allocator, config_volumes, is_disk_key, is_unused_key, owned_by};
use super::guest::{Guest, Kind, Power, check_digest, check_lock, config_digest, status_row};
use super::storage;
use super::{Call, Plan, Tx};
use super::{fail, text, visible};
use crate::api::Api;
use crate::auth;
use crate::error::AppError;
use crate::schema::split_list;
use crate::store::{Change, Tables};

/// Parameters of create/update calls that are not config keys.
const NOT_CONFIG: &[&str] = &[
    "node",
    "vmid",
    "digest",
    "delete",
    "revert",
    "skiplock",
    "force",
    "start",
    "password",
    "pool",
    "storage",
    "unique",
    "archive",
    "ostemplate",
    "ssh-public-keys",
    "restore",
    "ignore-unpack-errors",
    "bwlimit",
    "live-restore",
    "import-working-storage",
    "background_delay",
];

/// The change that writes a guest's config row (hidden keys of the stored row are kept).
pub(crate) fn put_config(tables: &Tables, guest: &Guest, config: Map<String, Value>) -> Change {
    let mut row = config;
    if let Some(Value::Object(stored)) = tables.get(&guest.item) {
        for (key, value) in stored {
            if key.starts_with('_') {
                row.insert(key.clone(), value.clone());
            }
        }
    }
    Change::Put {
        path: guest.item.clone(),
        collection: Some(format!("/nodes/{}/{}", guest.node, guest.kind.segment())),
        value: Value::Object(row),
    }
}

fn config_schema_keys(api: &Api, kind: Kind, key: &str) -> bool {
    let template = format!("/nodes/{{node}}/{}/{{vmid}}/config", kind.segment());
    api.operation_at(&template, route_metadata::Method::Get)
        .and_then(|op| op.returns.properties.as_ref())
        .is_none_or(|props| crate::schema::resolve_property(props, key).is_some())
}

/// The config keys a call sets.
fn config_args(call: &Call<'_>, kind: Kind) -> Map<String, Value> {
    call.args
        .iter()
        .filter(|(key, _)| {
            !NOT_CONFIG.contains(&key.as_str()) && config_schema_keys(call.api, kind, key)
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A deterministic UUID-looking value for `smbios1`/`vmgenid`.
fn uuid_for(parts: &[&str]) -> String {
    let high = crate::schema::seed(parts);
    let low = crate::schema::seed(&[parts.join("/").as_str(), "low"]);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        0x8000 | (low >> 48 & 0x3fff),
        low & 0xffff_ffff_ffff
    )
}

/// `/cluster/nextid`: the lowest free ID from 100 or, with `vmid`, that ID if it is free
/// (pve-manager `PVE/API2/Cluster.pm`, `nextid`).
pub(crate) fn nextid(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    if let Some(vmid) = call.arg_text("vmid") {
        let id: u32 = vmid
            .parse()
            .map_err(|_| AppError::param("vmid", "invalid VM ID"))?;
        if tables.guests.contains_key(&id) {
            return Err(AppError::param("vmid", format!("VM {id} already exists")));
        }
        return Ok(json!(id));
    }
    let mut candidate: u32 = 100;
    for used in tables.guests.range(100..).map(|(vmid, _)| *vmid) {
        if used != candidate {
            break;
        }
        candidate += 1;
    }
    if candidate >= 1_000_000 {
        return Err(AppError::die(
            "unable to get any free VMID in range [100, 1000000]\n",
        ));
    }
    Ok(json!(candidate))
}

/// Proxmox's message for an ID in use (`check_vmid_unused` in pve-cluster).
fn id_in_use(tables: &Tables, vmid: u32) -> Option<AppError> {
    let existing = Guest::from_item(tables.guests.get(&vmid)?)?;
    Some(AppError::die(format!(
        "{} {vmid} already exists on node '{}'\n",
        existing.kind.label(),
        existing.node
    )))
}

/// `GET .../config`: the stored config plus `digest`; with `snapshot=<name>`, the snapshot's
/// config (`snapshot '<name>' does not exist` otherwise).
pub(crate) fn get_config(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Value, AppError> {
    let tables = tx.tables;
    let config = guest.config(tables)?;
    if let Some(name) = call.arg_text("snapshot").filter(|name| !name.is_empty()) {
        return match tables.get(&format!("{}/{name}", guest.snapshot_collection())) {
            Some(Value::Object(snapshot)) => {
                let mut reply = visible(snapshot);
                reply.insert(
                    "digest".to_owned(),
                    json!(config_digest(&config, &guest.snapshots(tables))),
                );
                Ok(Value::Object(reply))
            }
            _ => Err(AppError::die(format!("snapshot '{name}' does not exist\n"))),
        };
    }
    let digest = config_digest(&config, &guest.snapshots(tables));
    let mut reply = config;
    reply.insert("digest".to_owned(), json!(digest));
    Ok(Value::Object(reply))
}

/// `GET .../pending`: every config key with its value (`config_with_pending_array` in
/// pve-guest-common `src/PVE/GuestHelpers.pm`). Changes apply at once in the mock, so no entry
/// carries `pending` or `delete`.
pub(crate) fn pending(_call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Value, AppError> {
    let tables = tx.tables;
    let config = guest.config(tables)?;
    let digest = config_digest(&config, &guest.snapshots(tables));
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

/// `POST /nodes/{node}/qemu` and `POST /nodes/{node}/lxc`.
pub(crate) fn create(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let kind = Kind::of_template(call.template()).unwrap_or(Kind::Qemu);
    super::generic::exists(call, tx)?;
    let node = call.param("node").unwrap_or_default();
    let vmid: u32 = call
        .arg_text("vmid")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AppError::param("vmid", "property is missing and it is not optional"))?;
    if call.args.contains_key("archive") && kind == Kind::Qemu {
        return Err(AppError::die(
            "restoring from a backup archive is not simulated by the mock\n",
        ));
    }
    if let Some(error) = id_in_use(tables, vmid) {
        return Err(error);
    }
    let guest = Guest::at(kind, node, vmid);
    let mut allocator = Allocator::new(tables, node, vmid);
    let mut config = Map::new();
    for (key, value) in config_args(call, kind) {
        let prepared = allocator.prepare(kind, &key, &value)?;
        config.insert(key, prepared);
    }
    match kind {
        Kind::Qemu => {
            let vmid_text = vmid.to_string();
            config
                .entry("smbios1")
                .or_insert_with(|| json!(format!("uuid={}", uuid_for(&["smbios1", &vmid_text]))));
            if config.get("vmgenid").is_none_or(|v| text(v) == "1") {
                config.insert(
                    "vmgenid".to_owned(),
                    json!(uuid_for(&["vmgenid", &vmid_text])),
                );
            }
        }
        Kind::Lxc => {
            config.entry("arch").or_insert_with(|| json!("amd64"));
            if !config.contains_key("ostype")
                && let Some(template) = call.arg_text("ostemplate")
            {
                let name = template.rsplit('/').next().unwrap_or(&template);
                let os = [
                    "debian",
                    "ubuntu",
                    "alpine",
                    "centos",
                    "fedora",
                    "archlinux",
                    "opensuse",
                    "rockylinux",
                    "almalinux",
                    "devuan",
                    "gentoo",
                ]
                .into_iter()
                .find(|os| name.starts_with(os))
                .unwrap_or("unmanaged");
                config.insert("ostype".to_owned(), json!(os));
            }
        }
    }
    let mut plan = Plan::default();
    // Reserved at once: the config exists with `lock: create` until the task ends.
    plan.now.push(put_config(
        tables,
        &guest,
        Map::from_iter([("lock".to_owned(), json!("create"))]),
    ));
    plan.now.push(Change::Put {
        path: guest.status_path(),
        collection: None,
        value: status_row(Power::Stopped, 0),
    });
    if let Some(poolid) = call.arg_text("pool") {
        plan.at_end
            .push(super::pools::add_to_pool(tables, &poolid, vmid)?);
    }
    plan.log = std::mem::take(&mut allocator.log);
    plan.at_end.append(&mut allocator.changes);
    plan.at_end.push(put_config(tables, &guest, config));
    if call.flag("start") {
        plan.at_end.push(Change::Put {
            path: guest.status_path(),
            collection: None,
            value: status_row(Power::Running, auth::now()),
        });
    }
    Ok(plan)
}

/// `PUT` (synchronous) and `POST` (task) `.../config`.
pub(crate) fn update_config(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let mut config = guest.config(tables)?;
    let digest = config_digest(&config, &guest.snapshots(tables));
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
    if let Err(message) = check_digest(call, &digest) {
        return fail(call, message);
    }
    if let Err(message) = check_lock(guest.kind, &config, call) {
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
            if let Some(disk) = disks::parse_disk(guest.kind, key, &value)
                && owned_by(&disk.volume, guest.vmid)
                && let Some(path) =
                    storage::existing_volume_path(tables, &guest.node, &disk.volume)?
            {
                plan.at_end.push(Change::Delete { path });
            }
        } else if is_disk_key(guest.kind, key)
            && let Some(disk) = disks::parse_disk(guest.kind, key, &value)
            && !disk.cdrom
            && owned_by(&disk.volume, guest.vmid)
        {
            let unused = disks::free_unused_key(&config);
            config.insert(unused, json!(disk.volume));
        }
    }
    let mut allocator = Allocator::new(tables, &guest.node, guest.vmid);
    for (key, value) in updates {
        let prepared = allocator.prepare(guest.kind, &key, &value)?;
        // A disk replaced by another volume keeps its old volume as `unused[n]`.
        if is_disk_key(guest.kind, &key)
            && let Some(old) = config.get(&key).map(text)
            && let Some(old_disk) = disks::parse_disk(guest.kind, &key, &old)
            && let Some(new_disk) = disks::parse_disk(guest.kind, &key, &text(&prepared))
            && old_disk.volume != new_disk.volume
            && !old_disk.cdrom
            && owned_by(&old_disk.volume, guest.vmid)
        {
            let unused = disks::free_unused_key(&config);
            config.insert(unused, json!(old_disk.volume));
        }
        config.insert(key, prepared);
    }
    plan.log.append(&mut allocator.log);
    plan.at_end.append(&mut allocator.changes);
    plan.at_end.push(put_config(tables, guest, config));
    Ok(plan)
}

/// The path of a power action below a guest item (`/status/stop`).
pub(crate) fn power_path(action: &str) -> String {
    format!("/status/{action}")
}

/// `POST .../status/{action}`.
pub(crate) fn power(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let action = crate::api::last_segment(call.template());
    let config = guest.config(tables)?;
    let current = guest.power(tables);
    let vmid = guest.vmid;
    let label = guest.kind.label();
    let not_running = || AppError::die(format!("{label} {vmid} not running\n"));
    let started = tables
        .get(&guest.status_path())
        .and_then(|s| s.get("_started"))
        .and_then(Value::as_u64)
        .unwrap_or_else(auth::now);
    let target = match (guest.kind, action) {
        (_, "start") => {
            if guest.kind == Kind::Lxc && current.is_running() {
                return Err(AppError::die(format!("CT {vmid} already running\n")));
            }
            if config.get("template").is_some_and(|t| text(t) == "1") {
                return fail(call, "you can't start a vm if it's a template\n");
            }
            if let Err(message) = check_lock(guest.kind, &config, call) {
                return fail(call, message);
            }
            if current.is_running() {
                return fail(call, format!("VM {vmid} already running\n"));
            }
            status_row(Power::Running, auth::now())
        }
        (_, "stop") => {
            if guest.kind == Kind::Lxc && !current.is_running() {
                return Err(not_running());
            }
            if let Err(message) = check_lock(guest.kind, &config, call) {
                return fail(call, message);
            }
            status_row(Power::Stopped, 0)
        }
        (_, "shutdown") => {
            if guest.kind == Kind::Lxc && !current.is_running() {
                return Err(not_running());
            }
            if current == Power::Paused && !call.flag("forceStop") {
                return Err(AppError::die("VM is paused - cannot shutdown\n"));
            }
            if let Err(message) = check_lock(guest.kind, &config, call) {
                return fail(call, message);
            }
            status_row(Power::Stopped, 0)
        }
        (_, "reboot") => {
            if !current.is_running() {
                return Err(not_running());
            }
            if current == Power::Paused {
                return Err(AppError::die("VM is paused - cannot shutdown\n"));
            }
            status_row(Power::Running, auth::now())
        }
        (Kind::Qemu, "reset") => {
            if !current.is_running() {
                return Err(not_running());
            }
            status_row(Power::Running, auth::now())
        }
        (_, "suspend") => {
            if !current.is_running() {
                return Err(not_running());
            }
            if let Err(message) = check_lock(guest.kind, &config, call) {
                return fail(call, message);
            }
            if call.flag("todisk") {
                let mut locked = config.clone();
                locked.insert("lock".to_owned(), json!("suspended"));
                return Ok(Plan {
                    at_end: vec![
                        put_config(tables, guest, locked),
                        Change::Put {
                            path: guest.status_path(),
                            collection: None,
                            value: status_row(Power::Stopped, 0),
                        },
                    ],
                    ..Plan::default()
                });
            }
            status_row(Power::Paused, started)
        }
        (_, "resume") => {
            let suspended_to_disk = config.get("lock").is_some_and(|l| text(l) == "suspended");
            if !current.is_running() && !suspended_to_disk {
                return Err(not_running());
            }
            if suspended_to_disk {
                let mut unlocked = config.clone();
                unlocked.remove("lock");
                return Ok(Plan {
                    at_end: vec![
                        put_config(tables, guest, unlocked),
                        Change::Put {
                            path: guest.status_path(),
                            collection: None,
                            value: status_row(Power::Running, auth::now()),
                        },
                    ],
                    ..Plan::default()
                });
            }
            status_row(Power::Running, started)
        }
        _ => return Ok(Plan::default()),
    };
    Ok(Plan {
        at_end: vec![Change::Put {
            path: guest.status_path(),
            collection: None,
            value: target,
        }],
        ..Plan::default()
    })
}

/// Every volume a guest owns: its disks, `unused[n]` and those only its snapshots refer to.
fn owned_volumes(tables: &Tables, guest: &Guest, config: &Map<String, Value>) -> Vec<String> {
    let mut volids = config_volumes(guest.kind, config);
    for (_, snapshot) in guest.snapshots(tables) {
        if let Value::Object(snapshot) = snapshot {
            volids.extend(config_volumes(guest.kind, snapshot));
        }
    }
    volids.sort();
    volids.dedup();
    volids.retain(|volid| owned_by(volid, guest.vmid));
    volids
}

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
        .extend(super::pools::remove_from_pools(tables, guest.vmid));
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
    let newid: u32 = call
        .arg_text("newid")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AppError::param("newid", "property is missing and it is not optional"))?;
    let target_node = call
        .arg_text("target")
        .unwrap_or_else(|| guest.node.clone());
    if !tables.exists(&format!("/nodes/{target_node}")) {
        return Err(AppError::param(
            "target",
            format!("no such cluster node '{target_node}'"),
        ));
    }
    if let Some(error) = id_in_use(tables, newid) {
        return Err(error);
    }
    if let Err(message) = check_lock(guest.kind, &source, call) {
        return Err(AppError::die(message));
    }
    let is_template = source.get("template").is_some_and(|t| text(t) == "1");
    if target_node != guest.node && !is_template {
        // `clone_vm`: a clone to another node needs shared storage; local disks fail there.
        let local = config_volumes(guest.kind, &source)
            .into_iter()
            .any(|volid| {
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
    }
    let new_guest = Guest::at(guest.kind, &target_node, newid);
    let target_storage = call.arg_text("storage");
    let mut allocator = Allocator::new(tables, &target_node, newid);
    let mut config = Map::new();
    for (key, value) in &source {
        if matches!(key.as_str(), "lock" | "template" | "parent" | "snapshots") {
            continue;
        }
        let raw = text(value);
        let new_value = if is_unused_key(key) {
            continue;
        } else if is_disk_key(guest.kind, key) {
            match disks::parse_disk(guest.kind, key, &raw) {
                Some(disk) if !disk.cdrom && disk.volume.contains(':') => {
                    let storage_id = target_storage.clone().unwrap_or_else(|| {
                        disk.volume.split(':').next().unwrap_or_default().to_owned()
                    });
                    let size = disk.size.unwrap_or_else(|| shared_types::DiskSize::gib(1));
                    let cloudinit = disk.volume.ends_with("-cloudinit");
                    let volume =
                        allocator.allocate(guest.kind, &storage_id, size, None, cloudinit)?;
                    json!(disks::with_volume(
                        guest.kind,
                        &raw,
                        &volume.volid,
                        Some(size)
                    ))
                }
                _ => value.clone(),
            }
        } else if key.starts_with("net") {
            json!(disks::net_with_new_mac(guest.kind, newid, key, &raw))
        } else {
            value.clone()
        };
        config.insert(key.clone(), new_value);
    }
    let name_key = if guest.kind == Kind::Lxc {
        "hostname"
    } else {
        "name"
    };
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
    if guest.kind == Kind::Qemu {
        let newid_text = newid.to_string();
        config.insert(
            "smbios1".to_owned(),
            json!(format!("uuid={}", uuid_for(&["smbios1", &newid_text]))),
        );
        if config.contains_key("vmgenid") {
            config.insert(
                "vmgenid".to_owned(),
                json!(uuid_for(&["vmgenid", &newid_text])),
            );
        }
    }
    let mut plan = Plan::default();
    plan.now.push(put_config(
        tables,
        &new_guest,
        Map::from_iter([("lock".to_owned(), json!("clone"))]),
    ));
    plan.now.push(Change::Put {
        path: new_guest.status_path(),
        collection: None,
        value: status_row(Power::Stopped, 0),
    });
    if let Some(poolid) = call.arg_text("pool") {
        plan.at_end
            .push(super::pools::add_to_pool(tables, &poolid, newid)?);
    }
    plan.log = std::mem::take(&mut allocator.log);
    plan.log.insert(
        0,
        format!(
            "create full clone of drive(s) from {} {}",
            guest.kind.label(),
            guest.vmid
        ),
    );
    plan.at_end.append(&mut allocator.changes);
    plan.at_end.push(put_config(tables, &new_guest, config));
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
    if config.get("template").is_some_and(|t| text(t) == "1") {
        return Err(AppError::die(match guest.kind {
            Kind::Qemu => "you can't convert a template to a template\n",
            Kind::Lxc => "you can't convert a template to a template\n",
        }));
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
    if !tables.exists(&format!("/nodes/{target}")) {
        return Err(AppError::param(
            "target",
            format!("no such cluster node '{target}'"),
        ));
    }
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
    // Move the whole subtree: config, power state, snapshots.
    let prefix = format!("{}/", guest.item);
    let high = format!("{}0", guest.item);
    let mut rows: Vec<Change> = Vec::new();
    for (path, value) in tables.objects.range(prefix..high) {
        let suffix = &path[guest.item.len()..];
        let new_path = format!("{}{suffix}", new_guest.item);
        let collection = tables
            .member_of
            .get(path)
            .map(|c| format!("{}{}", new_guest.item, &c[guest.item.len()..]));
        rows.push(Change::Put {
            path: new_path,
            collection,
            value: value.clone(),
        });
    }
    plan.at_end.push(Change::Delete {
        path: guest.item.clone(),
    });
    if let Some(row) = tables.get(&guest.item) {
        plan.at_end.push(Change::Put {
            path: new_guest.item.clone(),
            collection: Some(format!("/nodes/{target}/{}", guest.kind.segment())),
            value: row.clone(),
        });
    }
    plan.at_end.extend(rows);
    if guest.kind == Kind::Lxc && running {
        plan.at_end.push(Change::Put {
            path: new_guest.status_path(),
            collection: None,
            value: status_row(Power::Running, auth::now()),
        });
    }
    plan.log.push("migration finished successfully".to_owned());
    Ok(plan)
}
