//! Task lists and node facts: `/nodes/{node}/tasks` with Proxmox's filters, `/cluster/tasks`,
//! `/nodes/{node}/network` and `/nodes/{node}/version`.
//!
//! Filters follow `node_tasks` in pve-manager `PVE/API2/Tasks.pm`: `source` (`archive`, the
//! default, lists finished tasks; `active` running ones; `all` both), `vmid`, `typefilter`
//! (substring of the type), `userfilter`, `statusfilter` (`ok`, `error`, ...), `errors` (only
//! failed tasks), `since`/`until`, then `start` and `limit` (default 50) on the newest-first list.

use serde_json::{Value, json};

use super::{arg_bool, arg_text, param};
use crate::api::last_segment;
use crate::app::AppState;
use crate::engine::Call;
use crate::error::AppError;
use crate::store::Tables;
use crate::validate::split_list;

/// A task record as the list shows it: hidden keys dropped, `status` is the exit status of a
/// finished task and absent for a running one.
fn entry(record: &Value) -> Value {
    let mut entry = record.clone();
    if let Value::Object(map) = &mut entry {
        map.retain(|key, _| !key.starts_with('_'));
        let running = map.get("status").and_then(Value::as_str) == Some("running");
        if running {
            map.remove("status");
            map.remove("endtime");
        } else {
            let exit = map.remove("exitstatus").unwrap_or_else(|| json!("OK"));
            map.insert("status".to_owned(), exit);
        }
        map.remove("exitstatus");
    }
    entry
}

fn is_running(record: &Value) -> bool {
    record.get("status").and_then(Value::as_str) == Some("running")
}

fn starttime(record: &Value) -> u64 {
    record.get("starttime").and_then(Value::as_u64).unwrap_or(0)
}

/// The task records of a node, newest first.
fn records<'t>(tables: &'t Tables, node: &str) -> Vec<&'t Value> {
    let mut records: Vec<&Value> = tables
        .members(&format!("/nodes/{node}/tasks"))
        .filter_map(|path| tables.get(path))
        .collect();
    records.sort_by_key(|record| std::cmp::Reverse(starttime(record)));
    records
}

/// `GET /nodes/{node}/tasks`.
pub fn node_tasks(state: &AppState, tables: &Tables, call: &Call<'_>) -> Result<Value, AppError> {
    crate::engine::check_exists(&state.api, tables, &call.node.path, call.path_params)?;
    let node = param(call, "node").unwrap_or_default();
    let source = arg_text(call, "source").unwrap_or_else(|| "archive".to_owned());
    let vmid = arg_text(call, "vmid");
    let typefilter = arg_text(call, "typefilter").map(|t| t.to_ascii_lowercase());
    let userfilter = arg_text(call, "userfilter").map(|u| u.to_ascii_lowercase());
    let statusfilter: Option<Vec<String>> = arg_text(call, "statusfilter")
        .map(|list| split_list(&list).map(str::to_ascii_lowercase).collect());
    let errors = arg_bool(call, "errors");
    let since = call.args.get("since").and_then(Value::as_u64);
    let until = call.args.get("until").and_then(Value::as_u64);
    let start = call.args.get("start").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = call.args.get("limit").and_then(Value::as_u64).unwrap_or(50) as usize;
    let field = |record: &Value, key: &str| {
        record
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let entries: Vec<Value> = records(tables, node)
        .into_iter()
        .filter(|record| match source.as_str() {
            "active" => is_running(record),
            "all" => true,
            _ => !is_running(record),
        })
        .filter(|record| {
            let exit = record
                .get("exitstatus")
                .and_then(Value::as_str)
                .unwrap_or("OK");
            let failed = !is_running(record) && exit != "OK";
            let status_class = if is_running(record) {
                "running"
            } else if exit == "OK" {
                "ok"
            } else if exit.starts_with("WARNINGS") {
                "warning"
            } else {
                "error"
            };
            vmid.as_deref().is_none_or(|v| field(record, "id") == v)
                && typefilter
                    .as_deref()
                    .is_none_or(|t| field(record, "type").to_ascii_lowercase().contains(t))
                && userfilter
                    .as_deref()
                    .is_none_or(|u| field(record, "user").to_ascii_lowercase().contains(u))
                && (!errors || failed)
                && statusfilter
                    .as_ref()
                    .is_none_or(|wanted| wanted.iter().any(|w| w == status_class))
                && since.is_none_or(|s| starttime(record) >= s)
                && until.is_none_or(|u| starttime(record) <= u)
        })
        .skip(start)
        .take(limit)
        .map(entry)
        .collect();
    Ok(Value::Array(entries))
}

/// `GET /cluster/tasks`: the tasks of every node, newest first.
pub fn cluster_tasks(tables: &Tables, _call: &Call<'_>) -> Value {
    let mut all: Vec<&Value> = tables
        .members("/nodes")
        .flat_map(|node| records(tables, last_segment(node)))
        .collect();
    all.sort_by_key(|record| std::cmp::Reverse(starttime(record)));
    Value::Array(all.into_iter().map(entry).collect())
}

fn check_node(tables: &Tables, node: &str) -> Result<(), AppError> {
    if super::node_exists(tables, node) {
        Ok(())
    } else {
        Err(AppError::die(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known\n"
        )))
    }
}

/// `GET /nodes/{node}/network`: the node's physical NIC, its bridge `vmbr0` (with the node's
/// address) and any interfaces stored below the path; `type` filters.
pub fn network(_state: &AppState, tables: &Tables, call: &Call<'_>) -> Result<Value, AppError> {
    let node = param(call, "node").unwrap_or_default();
    check_node(tables, node)?;
    let ip = tables
        .get(&format!("/nodes/{node}"))
        .and_then(|row| row.get("ip"))
        .and_then(Value::as_str)
        .unwrap_or("192.168.1.11")
        .to_owned();
    let mut interfaces = vec![
        json!({"iface": "eno1", "type": "eth", "method": "manual", "method6": "manual",
               "families": ["inet"], "active": 1, "autostart": 0, "exists": 1, "priority": 3}),
        json!({"iface": "vmbr0", "type": "bridge", "method": "static", "method6": "manual",
               "families": ["inet"], "active": 1, "autostart": 1, "priority": 4,
               "address": ip, "netmask": "24", "cidr": format!("{ip}/24"),
               "gateway": "192.168.1.1", "bridge_ports": "eno1", "bridge_stp": "off",
               "bridge_fd": "0"}),
    ];
    let collection = format!("/nodes/{node}/network");
    for path in tables.members(&collection) {
        let Some(Value::Object(row)) = tables.get(path) else {
            continue;
        };
        let iface = last_segment(path).to_owned();
        interfaces.retain(|i| i["iface"] != json!(iface));
        let mut entry =
            json!({"iface": iface, "families": ["inet"], "method": "manual", "priority": 5});
        for (key, value) in row {
            if !key.starts_with('_') {
                entry[key] = value.clone();
            }
        }
        interfaces.push(entry);
    }
    if let Some(wanted) = arg_text(call, "type") {
        interfaces.retain(|i| {
            let kind = i["type"].as_str().unwrap_or_default();
            match wanted.as_str() {
                "any_bridge" | "any_local_bridge" => kind == "bridge" || kind == "OVSBridge",
                _ => kind == wanted,
            }
        });
    }
    Ok(Value::Array(interfaces))
}

/// `GET /nodes/{node}/version`: the same release as `/version`.
pub fn node_version(state: &AppState, tables: &Tables, call: &Call<'_>) -> Result<Value, AppError> {
    check_node(tables, param(call, "node").unwrap_or_default())?;
    let version = &state.api.meta.release;
    let release: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    Ok(json!({"release": release, "version": version, "repoid": "c0ffee42"}))
}
