//! Resource pools: `/pools` and `/pools/{poolid}` (pve-access-control `src/PVE/API2/Pool.pm`).
//!
//! Pools keep their members in their row (`/pools/{poolid}`, hidden keys `_vms` and
//! `_storage`); `PUT /pools/{poolid}` and the 9.x `PUT /pools?poolid=` add or (`delete=1`)
//! remove VMs and storages with Proxmox's messages. Guests join a pool when created or cloned
//! with `pool=` and leave it when destroyed.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::guest::Guest;
use super::storage::storage_config;
use super::{Call, Plan, Tx, text};
use crate::api::last_segment;
use crate::error::AppError;
use crate::schema::split_list;
use crate::store::{Change, Tables};

/// The pool a call addresses: the `{poolid}` path parameter or the `poolid` argument (9.x).
fn pool_id(call: &Call<'_>) -> String {
    call.param("poolid")
        .map(str::to_owned)
        .or_else(|| call.arg_text("poolid"))
        .unwrap_or_default()
}

/// A pool's row; Proxmox's message when there is none.
pub(crate) fn pool_row(tables: &Tables, poolid: &str) -> Result<Value, AppError> {
    tables
        .get(&format!("/pools/{poolid}"))
        .ok_or_else(|| AppError::die(format!("pool '{poolid}' does not exist\n")))
}

/// A member list of a pool's row (`_vms`, `_storage`).
fn pool_list<'v>(row: &'v Value, key: &str) -> Vec<&'v Value> {
    row.get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().collect())
        .unwrap_or_default()
}

/// The VM IDs of a pool's row.
pub(crate) fn pool_vms(row: &Value) -> Vec<u64> {
    pool_list(row, "_vms")
        .into_iter()
        .filter_map(Value::as_u64)
        .collect()
}

/// The change that writes a pool's row.
fn put_pool(path: String, row: Value) -> Change {
    Change::Put {
        path,
        collection: Some("/pools".to_owned()),
        value: row,
    }
}

/// VM ID -> pool, for `/cluster/resources` (pools are few; one pass over them).
pub(crate) fn pool_of_guests(tables: &Tables) -> HashMap<u64, String> {
    let mut map = HashMap::new();
    for path in tables.members("/pools") {
        let Some(row) = tables.get(path) else {
            continue;
        };
        for vmid in pool_vms(&row) {
            map.insert(vmid, last_segment(path).to_owned());
        }
    }
    map
}

/// The `members` of a pool: its guests, then its storages once per node they are on; `type`
/// filters (`qemu`, `lxc`, `storage`).
fn member_entries(tables: &Tables, row: &Value, type_filter: Option<&str>) -> Vec<Value> {
    let mut members = Vec::new();
    for vmid in pool_vms(row) {
        let Some(item) = u32::try_from(vmid).ok().and_then(|v| tables.guests.get(&v)) else {
            continue;
        };
        let Some(guest) = Guest::from_item(item) else {
            continue;
        };
        let kind = guest.kind.segment();
        if type_filter.is_some_and(|wanted| wanted != kind) {
            continue;
        }
        let config = tables.get(item).unwrap_or_default();
        let name_key = guest.kind.name_key();
        let mut entry = json!({
            "id": format!("{kind}/{}", guest.vmid), "node": guest.node, "type": kind,
            "vmid": guest.vmid, "status": if guest.power(tables).is_running() { "running" } else { "stopped" },
        });
        if let Some(name) = config.get(name_key) {
            entry["name"] = name.clone();
        }
        members.push(entry);
    }
    if type_filter.is_none_or(|wanted| wanted == "storage") {
        for storage in pool_list(row, "_storage") {
            let storage = text(storage);
            let Ok(config) = storage_config(tables, &storage) else {
                continue;
            };
            for node_path in tables.members("/nodes") {
                let node = last_segment(node_path);
                let on_node = config
                    .get("nodes")
                    .map(text)
                    .is_none_or(|nodes| split_list(&nodes).any(|n| n == node));
                if on_node {
                    members.push(json!({
                        "id": format!("storage/{node}/{storage}"), "node": node,
                        "storage": storage, "type": "storage",
                    }));
                }
            }
        }
    }
    members
}

/// `GET /pools` (9.x: `poolid` and `type` filters add the members).
pub(crate) fn list(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let wanted = call.arg_text("poolid");
    let type_filter = call.arg_text("type");
    if let Some(poolid) = &wanted {
        pool_row(tables, poolid)?;
    }
    let mut entries = Vec::new();
    for path in tables.members("/pools") {
        let poolid = last_segment(path);
        if wanted.as_deref().is_some_and(|w| w != poolid) {
            continue;
        }
        let row = tables.get(path).unwrap_or_default();
        let mut entry = json!({"poolid": poolid});
        if let Some(comment) = row.get("comment") {
            entry["comment"] = comment.clone();
        }
        if wanted.is_some() {
            entry["members"] = json!(member_entries(tables, &row, type_filter.as_deref()));
        }
        entries.push(entry);
    }
    Ok(Value::Array(entries))
}

/// `GET /pools/{poolid}`.
pub(crate) fn get(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let poolid = pool_id(call);
    let row = &pool_row(tables, &poolid)?;
    let mut reply = json!({
        "members": member_entries(tables, row, call.arg_text("type").as_deref()),
    });
    if let Some(comment) = row.get("comment") {
        reply["comment"] = comment.clone();
    }
    Ok(reply)
}

/// `PUT /pools/{poolid}` and `PUT /pools?poolid=`: comment, members in or out (`update_pool`
/// in pve-access-control `src/PVE/API2/Pool.pm`).
pub(crate) fn update(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let poolid = pool_id(call);
    let mut row = pool_row(tables, &poolid)?;
    let delete = call.flag("delete");
    let mut plan = Plan::default();
    if let Some(comment) = call.arg_text("comment") {
        row["comment"] = json!(comment);
    }
    let vms = planned_vms(call, tables, &row, delete)?;
    let storages = planned_storages(call, tables, &row, delete)?;
    for (other, moved) in vms.moved_from {
        plan.now.push(release_moved(tables, &other, &moved));
    }
    row["_vms"] = json!(vms.members);
    row["_storage"] = json!(storages);
    plan.now.push(put_pool(format!("/pools/{poolid}"), row));
    Ok(plan)
}

/// A list argument of a pool update (`vms`, `storage`).
fn list_arg(call: &Call<'_>, name: &str) -> Vec<String> {
    call.arg_text(name)
        .map(|list| split_list(&list).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The VM members of a pool after an update.
struct VmPlan {
    /// The pool's VM IDs.
    members: Vec<u64>,
    /// Per other pool, the VMs that move from it (`allow-move`).
    moved_from: BTreeMap<String, Vec<u64>>,
}

/// Plans the pool's VM members after `vms=` is added (or with `delete`, removed).
fn planned_vms(
    call: &Call<'_>,
    tables: &Tables,
    row: &Value,
    delete: bool,
) -> Result<VmPlan, AppError> {
    let allow_move = call.flag("allow-move");
    let mut vms = pool_vms(row);
    let owners = pool_of_guests(tables);
    let mut moved_from: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for vmid_text in list_arg(call, "vms") {
        let vmid: u64 = vmid_text
            .parse()
            .map_err(|_| AppError::param("vms", format!("invalid VM ID '{vmid_text}'")))?;
        if delete {
            if !vms.contains(&vmid) {
                return Err(AppError::die(format!("VM {vmid} is not a pool member\n")));
            }
            vms.retain(|v| *v != vmid);
            continue;
        }
        if u32::try_from(vmid)
            .ok()
            .is_none_or(|v| !tables.guests.contains_key(&v))
        {
            return Err(AppError::die(format!("VM {vmid} does not exist\n")));
        }
        if vms.contains(&vmid) {
            return Err(AppError::die(format!(
                "VM {vmid} is already a pool member\n"
            )));
        }
        if let Some(other) = owners.get(&vmid) {
            if !allow_move {
                return Err(AppError::die(format!(
                    "VM {vmid} belongs already to pool '{other}' and 'allow-move' is not set\n"
                )));
            }
            moved_from.entry(other.clone()).or_default().push(vmid);
        }
        vms.push(vmid);
    }
    Ok(VmPlan {
        members: vms,
        moved_from,
    })
}

/// Plans the pool's storage members after `storage=` is added (or with `delete`, removed).
fn planned_storages(
    call: &Call<'_>,
    tables: &Tables,
    row: &Value,
    delete: bool,
) -> Result<Vec<String>, AppError> {
    let mut storages: Vec<String> = pool_list(row, "_storage").into_iter().map(text).collect();
    for storage in list_arg(call, "storage") {
        if delete {
            if !storages.contains(&storage) {
                return Err(AppError::die(format!(
                    "Storage '{storage}' is not a pool member\n"
                )));
            }
            storages.retain(|s| *s != storage);
        } else {
            storage_config(tables, &storage)?;
            if storages.contains(&storage) {
                return Err(AppError::die(format!(
                    "Storage '{storage}' is already a pool member\n"
                )));
            }
            storages.push(storage);
        }
    }
    Ok(storages)
}

/// The change that drops VMs from a pool's row (they moved to another pool).
fn release_moved(tables: &Tables, poolid: &str, moved: &[u64]) -> Change {
    let path = format!("/pools/{poolid}");
    let mut row = tables.get(&path).unwrap_or_default();
    let remaining: Vec<u64> = pool_vms(&row)
        .into_iter()
        .filter(|v| !moved.contains(v))
        .collect();
    row["_vms"] = json!(remaining);
    put_pool(path, row)
}

/// `DELETE /pools/{poolid}` and `DELETE /pools?poolid=`: only empty pools.
pub(crate) fn delete(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let poolid = pool_id(call);
    let row = &pool_row(tables, &poolid)?;
    if !pool_list(row, "_vms").is_empty() || !pool_list(row, "_storage").is_empty() {
        return Err(AppError::die(format!("pool '{poolid}' is not empty\n")));
    }
    Ok(Plan {
        now: vec![Change::Delete {
            path: format!("/pools/{poolid}"),
        }],
        ..Plan::default()
    })
}

/// Changes that drop a VM ID from every pool (when the guest is destroyed).
pub(crate) fn remove_from_pools(tables: &Tables, vmid: u32) -> Vec<Change> {
    let mut changes = Vec::new();
    for path in tables.members("/pools") {
        let Some(row) = tables.get(path) else {
            continue;
        };
        let vms = pool_vms(&row);
        if vms.contains(&u64::from(vmid)) {
            let mut row = row.clone();
            row["_vms"] = json!(
                vms.into_iter()
                    .filter(|v| *v != u64::from(vmid))
                    .collect::<Vec<_>>()
            );
            changes.push(put_pool(path.to_owned(), row));
        }
    }
    changes
}

/// The change that adds a VM to a pool (create and clone with `pool=`).
pub(crate) fn add_to_pool(tables: &Tables, poolid: &str, vmid: u32) -> Result<Change, AppError> {
    let mut row = pool_row(tables, poolid)?;
    let mut vms = pool_vms(&row);
    if !vms.contains(&u64::from(vmid)) {
        vms.push(u64::from(vmid));
    }
    row["_vms"] = json!(vms);
    Ok(put_pool(format!("/pools/{poolid}"), row))
}

/// `POST /pools` (`create_pool`, pve-manager `PVE/API2/Pool.pm`, inside `lock_user_config`, so
/// its `die`s read `create pool failed: ...`): the pool must be new, a nested pool's parent
/// must exist, and every level's name must start with a letter.
pub(crate) fn create(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let poolid = call.arg_text("poolid").unwrap_or_default();
    let failed = |message: String| AppError::die(format!("create pool failed: {message}"));
    if tx.tables.exists(&format!("/pools/{poolid}")) {
        return Err(failed(super::already_exists("pool", &poolid)));
    }
    let leaf = match poolid.rsplit_once('/') {
        Some((parent, leaf)) => {
            if !tx.tables.exists(&format!("/pools/{parent}")) {
                return Err(failed(format!(
                    "parent '{parent}' of pool '{poolid}' does not exist\n"
                )));
            }
            leaf
        }
        None => poolid.as_str(),
    };
    if !leaf.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(failed("pool name must start with a letter\n".to_owned()));
    }
    super::generic::write(call, tx)
}
