//! QEMU VMs and LXC containers: create and `/cluster/nextid` here, with the helpers the guest
//! handlers share (writing the config and power rows, reserving an ID for a new guest); config
//! reads and updates in `config.rs`, power actions in `power.rs`, destroy, clone, template and
//! migrate in `lifecycle.rs`.
//!
//! Sources (qemu-server `src/PVE/API2/Qemu.pm`, pve-container `src/PVE/API2/LXC.pm` and
//! `src/PVE/API2/LXC/Status.pm`, pve-guest-common `src/PVE/AbstractConfig.pm`, pve-manager
//! `PVE/API2/Cluster.pm`):
//!
//! - Create reserves the ID when the request is made (`create_and_lock_config`: the config exists
//!   at once with `lock: create`), so of concurrent creates with one ID exactly one wins and the
//!   others get `VM 150 already exists on node 'pve1'`; the task writes the full config and
//!   removes the lock when it ends. Clone reserves its new ID the same way (`lock: clone`).

mod config;
mod lifecycle;
mod power;

use serde_json::{Map, Value, json};

pub(crate) use config::{get_config, pending, update_config};
pub(crate) use lifecycle::{clone, destroy, migrate, template};
pub(crate) use power::{power, power_path};

use super::disks::Allocator;
use super::guest::{ConfigChange, Guest, Kind, Power, check_config_change, check_drive_values};
use super::guest::{put_config, put_status, status_row};
use super::{Call, Plan, Tx, text};
use crate::auth;
use crate::error::AppError;
use crate::store::Tables;

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

/// `/cluster/nextid`: the lowest free ID from 100 or, with `vmid`, that ID if it is free
/// (pve-manager `PVE/API2/Cluster.pm`, `nextid`), as a string (`{"data":"102"}`), as Proxmox
/// sends it although its schema says `integer`.
pub(crate) fn nextid(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    if let Some(vmid) = call.arg_text("vmid") {
        let id: u32 = vmid
            .parse()
            .map_err(|_| AppError::param("vmid", "invalid VM ID"))?;
        if tables.guests.contains_key(&id) {
            return Err(AppError::param("vmid", format!("VM {id} already exists")));
        }
        return Ok(json!(id.to_string()));
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
    Ok(json!(candidate.to_string()))
}

/// `POST /nodes/{node}/qemu` and `POST /nodes/{node}/lxc`.
pub(crate) fn create(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let kind = Kind::of_template(call.template()).unwrap_or(Kind::Qemu);
    super::generic::exists(call, tx)?;
    let node = call.param("node").unwrap_or_default();
    let vmid = required_id(call, "vmid")?;
    if call.args.contains_key("archive") && kind == Kind::Qemu {
        return Err(AppError::die(
            "restoring from a backup archive is not simulated by the mock\n",
        ));
    }
    if let Some(error) = id_in_use(tables, vmid) {
        return Err(error);
    }
    let guest = Guest::at(kind, node, vmid);
    let settings = config_args(call, kind);
    check_drive_values(tables, kind, &settings)?;
    check_create_perms(call, tx, kind, vmid, &settings)?;
    let mut allocator = Allocator::new(tables, node, vmid);
    let mut config = Map::new();
    for (key, value) in settings {
        let prepared = allocator.prepare(kind, &key, &value)?;
        config.insert(key, prepared);
    }
    match kind {
        Kind::Qemu => add_qemu_ids(&mut config, vmid),
        Kind::Lxc => add_lxc_defaults(call, &mut config),
    }
    let mut plan = new_guest_plan(call, tables, &guest, "create", allocator, config)?;
    if call.flag("start") {
        plan.at_end
            .push(put_status(&guest, status_row(Power::Running, auth::now())));
    }
    Ok(plan)
}

/// The checks of a new guest's settings beyond `VM.Allocate` (which the request already
/// passed): every key as a config change into the pool, and a container's template
/// (`check_volume_access` of `ostemplate`, pve-container `src/PVE/API2/LXC.pm`).
fn check_create_perms(
    call: &Call<'_>,
    tx: &Tx<'_>,
    kind: Kind,
    vmid: u32,
    settings: &Map<String, Value>,
) -> Result<(), AppError> {
    let rpc = tx.rpc(call);
    if rpc.is_root() {
        return Ok(());
    }
    check_config_change(
        &rpc,
        tx.tables,
        &ConfigChange {
            kind,
            vmid,
            pool: call.arg_str("pool"),
            old: &Map::new(),
            set: settings,
            delete: &[],
            create: true,
        },
    )?;
    if kind == Kind::Lxc
        && let Some(template) = call.arg_str("ostemplate")
    {
        let volume = template.split_once(':').map_or("", |(_, name)| name);
        let wanted = if call.flag("restore") {
            "backup"
        } else {
            "vztmpl"
        };
        let found = crate::access::rpcenv::parse_volname(volume);
        if template.contains(':') && found.vtype != wanted {
            return Err(AppError::die(format!(
                "unable to use volume {template} - content type needs to be '{wanted}'\n"
            )));
        }
        rpc.check_volume_access(template, &found, Some(vmid))?;
    }
    Ok(())
}

/// The config keys a call sets: its arguments that are not [`NOT_CONFIG`] and are in the
/// schema of the kind's `GET .../config` (every key is when the schema lists no properties),
/// which is looked up once per call.
fn config_args(call: &Call<'_>, kind: Kind) -> Map<String, Value> {
    let template = format!("/nodes/{{node}}/{}/{{vmid}}/config", kind.segment());
    let properties = call
        .api
        .operation_at(&template, route_metadata::Method::Get)
        .and_then(|op| op.returns.properties.as_ref());
    call.args
        .iter()
        .filter(|(key, _)| {
            !NOT_CONFIG.contains(&key.as_str())
                && properties
                    .is_none_or(|props| crate::schema::resolve_property(props, key).is_some())
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A required VM ID argument (`vmid` of create, `newid` of clone).
fn required_id(call: &Call<'_>, name: &str) -> Result<u32, AppError> {
    call.arg_text(name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| AppError::param(name, "property is missing and it is not optional"))
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

/// Fails unless a node is a cluster member (the `target` of clone and migrate).
fn check_target_node(tables: &Tables, node: &str) -> Result<(), AppError> {
    if tables.exists(&format!("/nodes/{node}")) {
        return Ok(());
    }
    Err(AppError::param(
        "target",
        format!("no such cluster node '{node}'"),
    ))
}

/// Appends a deterministic UUID-looking value for `smbios1`/`vmgenid` (`kind`) of guest `vmid`,
/// in RFC 4122 version 4 layout: the bits of two seeds (`schema::seed` of the kind and the ID,
/// and of `kind/ID` and `low`) written as hex digits by hand (`format!`'s padded hex cost about
/// as much as the rest of a create's config).
fn push_uuid(out: &mut String, kind: &str, vmid: u32) {
    let id = vmid.to_string();
    let mut joined = String::with_capacity(kind.len() + 1 + id.len());
    joined.push_str(kind);
    joined.push('/');
    joined.push_str(&id);
    let high = crate::schema::seed(&[kind, &id]);
    let low = crate::schema::seed(&[&joined, "low"]);
    push_hex(out, high >> 32, 8);
    out.push('-');
    push_hex(out, (high >> 16) & 0xffff, 4);
    out.push_str("-4");
    push_hex(out, high & 0x0fff, 3);
    out.push('-');
    push_hex(out, 0x8000 | (low >> 48 & 0x3fff), 4);
    out.push('-');
    push_hex(out, low & 0xffff_ffff_ffff, 12);
}

/// Appends the lowest `digits` hex digits of `value` (lower case, leading zeros kept).
fn push_hex(out: &mut String, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for place in (0..digits).rev() {
        out.push(char::from(HEX[(value >> (place * 4) & 0xf) as usize]));
    }
}

/// The generated `smbios1` value of a new QEMU guest (`uuid=<uuid>`).
fn new_smbios1(vmid: u32) -> Value {
    let mut text = String::with_capacity(41);
    text.push_str("uuid=");
    push_uuid(&mut text, "smbios1", vmid);
    Value::String(text)
}

/// The generated `vmgenid` value of a new QEMU guest.
fn new_vmgenid(vmid: u32) -> Value {
    let mut text = String::with_capacity(36);
    push_uuid(&mut text, "vmgenid", vmid);
    Value::String(text)
}

/// A new VM gets an SMBIOS UUID unless the call sets one, and a generation ID unless the call
/// sets one other than `1` ("generate one").
fn add_qemu_ids(config: &mut Map<String, Value>, vmid: u32) {
    config.entry("smbios1").or_insert_with(|| new_smbios1(vmid));
    if config.get("vmgenid").is_none_or(|v| text(v) == "1") {
        config.insert("vmgenid".to_owned(), new_vmgenid(vmid));
    }
}

/// A new container gets `arch: amd64` and, unless the call sets one, the `ostype` its
/// `ostemplate` names (`unmanaged` when none matches).
fn add_lxc_defaults(call: &Call<'_>, config: &mut Map<String, Value>) {
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

/// The plan of a new guest (create, clone). Its ID is reserved at once: the config exists with
/// `lock: <lock>` and the guest is stopped. When the task ends the guest joins the `pool=` pool,
/// its volumes are created and its full config is written.
fn new_guest_plan(
    call: &Call<'_>,
    tables: &Tables,
    guest: &Guest,
    lock: &str,
    allocator: Allocator<'_>,
    config: Map<String, Value>,
) -> Result<Plan, AppError> {
    let mut plan = Plan::default();
    plan.now.push(put_config(
        tables,
        guest,
        Map::from_iter([("lock".to_owned(), json!(lock))]),
    ));
    plan.now
        .push(put_status(guest, status_row(Power::Stopped, 0)));
    if let Some(poolid) = call.arg_text("pool") {
        plan.at_end
            .push(super::pools::add_to_pool(tables, &poolid, guest.vmid)?);
    }
    plan.log = allocator.log;
    plan.at_end.extend(allocator.changes);
    plan.at_end.push(put_config(tables, guest, config));
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated IDs as `format!` wrote them before they were written by hand.
    fn formatted(parts: &[&str]) -> String {
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

    #[test]
    fn generated_ids_are_as_formatted() {
        for vmid in (100..2_000).chain([0, 999_999_999, u32::MAX]) {
            let id = vmid.to_string();
            assert_eq!(
                new_smbios1(vmid),
                Value::String(format!("uuid={}", formatted(&["smbios1", &id])))
            );
            assert_eq!(
                new_vmgenid(vmid),
                Value::String(formatted(&["vmgenid", &id]))
            );
        }
        // Version 4 layout: 8-4-4-4-12 hex digits, version nibble 4, variant bits 10.
        let Value::String(uuid) = new_vmgenid(100) else {
            unreachable!("a string")
        };
        let groups: Vec<&str> = uuid.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'));
        assert!(matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }
}
