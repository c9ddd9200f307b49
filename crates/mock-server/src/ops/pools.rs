//! Resource pools: `/pools` and `/pools/{poolid}` (pve-access-control `src/PVE/API2/Pool.pm`).
//!
//! Pools keep their members in their row (`/pools/{poolid}`, hidden keys `_vms` and
//! `_storage`); `PUT /pools/{poolid}` and the 9.x `PUT /pools?poolid=` add or (`delete=1`)
//! remove VMs and storages with Proxmox's messages. Guests join a pool when created or cloned
//! with `pool=` and leave it when destroyed.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::guest::{Guest, Kind};
use super::storage::storage_config;
use super::{Call, Plan, Tx, text};
use crate::api::last_segment;
use crate::error::AppError;
use crate::schema::split_list;
use crate::store::{Change, Tables};

fn pool_id(call: &Call<'_>) -> String {
    call.param("poolid")
        .map(str::to_owned)
        .or_else(|| call.arg_text("poolid"))
        .unwrap_or_default()
}

pub(crate) fn pool_row<'t>(tables: &'t Tables, poolid: &str) -> Result<&'t Value, AppError> {
    tables
        .get(&format!("/pools/{poolid}"))
        .ok_or_else(|| AppError::die(format!("pool '{poolid}' does not exist\n")))
}

pub(crate) fn pool_list<'v>(row: &'v Value, key: &str) -> Vec<&'v Value> {
    row.get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().collect())
        .unwrap_or_default()
}

/// VM ID -> pool, for `/cluster/resources` (pools are few; one pass over them).
pub(crate) fn pool_of_guests(tables: &Tables) -> HashMap<u64, String> {
    let mut map = HashMap::new();
    for path in tables.members("/pools") {
        let Some(row) = tables.get(path) else {
            continue;
        };
        for vmid in pool_list(row, "_vms") {
            if let Some(vmid) = vmid.as_u64() {
                map.insert(vmid, last_segment(path).to_owned());
            }
        }
    }
    map
}

fn member_entries(tables: &Tables, row: &Value, type_filter: Option<&str>) -> Vec<Value> {
    let mut members = Vec::new();
    for vmid in pool_list(row, "_vms") {
        let Some(item) = vmid
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .and_then(|v| tables.guests.get(&v))
        else {
            continue;
        };
        let Some(guest) = Guest::from_item(item) else {
            continue;
        };
        let kind = guest.kind.segment();
        if type_filter.is_some_and(|wanted| wanted != kind) {
            continue;
        }
        let config = tables.get(item).cloned().unwrap_or_default();
        let name_key = if guest.kind == Kind::Lxc {
            "hostname"
        } else {
            "name"
        };
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
        let row = tables.get(path).cloned().unwrap_or_default();
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
    let row = pool_row(tables, &poolid)?;
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
    let mut row = pool_row(tables, &poolid)?.clone();
    let delete = call.flag("delete");
    let allow_move = call.flag("allow-move");
    let mut plan = Plan::default();
    if let Some(comment) = call.arg_text("comment") {
        row["comment"] = json!(comment);
    }
    let mut vms: Vec<u64> = pool_list(&row, "_vms")
        .into_iter()
        .filter_map(Value::as_u64)
        .collect();
    let owners = pool_of_guests(tables);
    let mut moved_from: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for vmid_text in call
        .arg_text("vms")
        .map(|list| split_list(&list).map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default()
    {
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
    let mut storages: Vec<String> = pool_list(&row, "_storage").into_iter().map(text).collect();
    for storage in call
        .arg_text("storage")
        .map(|list| split_list(&list).map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default()
    {
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
    for (other, moved) in moved_from {
        let path = format!("/pools/{other}");
        let mut other_row = tables.get(&path).cloned().unwrap_or_default();
        let remaining: Vec<u64> = pool_list(&other_row, "_vms")
            .into_iter()
            .filter_map(Value::as_u64)
            .filter(|v| !moved.contains(v))
            .collect();
        other_row["_vms"] = json!(remaining);
        plan.now.push(Change::Put {
            path,
            collection: Some("/pools".to_owned()),
            value: other_row,
        });
    }
    row["_vms"] = json!(vms);
    row["_storage"] = json!(storages);
    plan.now.push(Change::Put {
        path: format!("/pools/{poolid}"),
        collection: Some("/pools".to_owned()),
        value: row,
    });
    Ok(plan)
}

/// `DELETE /pools/{poolid}` and `DELETE /pools?poolid=`: only empty pools.
pub(crate) fn delete(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let poolid = pool_id(call);
    let row = pool_row(tables, &poolid)?;
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
        let vms: Vec<u64> = pool_list(row, "_vms")
            .into_iter()
            .filter_map(Value::as_u64)
            .collect();
        if vms.contains(&u64::from(vmid)) {
            let mut row = row.clone();
            row["_vms"] = json!(
                vms.into_iter()
                    .filter(|v| *v != u64::from(vmid))
                    .collect::<Vec<_>>()
            );
            changes.push(Change::Put {
                path: path.clone(),
                collection: Some("/pools".to_owned()),
                value: row,
            });
        }
    }
    changes
}

/// The change that adds a VM to a pool (create and clone with `pool=`).
pub(crate) fn add_to_pool(tables: &Tables, poolid: &str, vmid: u32) -> Result<Change, AppError> {
    let mut row = pool_row(tables, poolid)?.clone();
    let mut vms: Vec<u64> = pool_list(&row, "_vms")
        .into_iter()
        .filter_map(Value::as_u64)
        .collect();
    if !vms.contains(&u64::from(vmid)) {
        vms.push(u64::from(vmid));
    }
    row["_vms"] = json!(vms);
    Ok(Change::Put {
        path: format!("/pools/{poolid}"),
        collection: Some("/pools".to_owned()),
        value: row,
    })
}
