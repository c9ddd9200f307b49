//! Paths whose replies are computed from other rows rather than stored at the path:
//! `/version`, `/cluster/status`, `/cluster/resources`, `/nodes/{node}/storage`, the task list
//! and task log, and guest list entries.

use route_metadata::{Schema, SchemaType};
use serde_json::{Value, json};

use crate::api::last_segment;
use crate::app::AppState;
use crate::auth;
use crate::engine::{Call, ViewPlan, cluster_name};
use crate::error::AppError;
use crate::generate::{GenContext, gen_key_hash, generate};
use crate::store::Tables;

const MIB: i64 = 1024 * 1024;

/// Generates a value for a schema and overlays known fields.
fn shaped(state: &AppState, schema: &Schema, ctx: &GenContext<'_>, fields: Value) -> Value {
    let mut value = generate(&state.api, schema, ctx);
    if let (Value::Object(target), Value::Object(fields)) = (&mut value, fields) {
        let props = schema.properties.as_ref();
        for (key, field) in fields {
            let known = props.is_some_and(|p| p.contains_key(&key));
            if known || (props.is_none() && schema.additional_properties) {
                target.insert(key, field);
            }
        }
    }
    value
}

fn items_of(schema: &Schema) -> Option<&Schema> {
    if schema.kind() == SchemaType::Array {
        schema.items.as_deref()
    } else {
        None
    }
}

fn storages_on(tables: &Tables, node: &str) -> Vec<(String, Value)> {
    tables
        .members("/storage")
        .filter_map(|path| {
            let config = tables.get(path)?;
            let on_node = config
                .get("nodes")
                .and_then(Value::as_str)
                .is_none_or(|nodes| crate::validate::split_list(nodes).any(|n| n == node));
            on_node.then(|| (last_segment(path).to_owned(), config.clone()))
        })
        .collect()
}

fn memory_bytes(config: &Value) -> Option<i64> {
    let memory = config.get("memory")?;
    let mib = match memory {
        Value::Number(n) => n.as_i64()?,
        Value::String(text) => {
            let text = text.strip_prefix("current=").unwrap_or(text);
            text.split(',').next()?.parse().ok()?
        }
        _ => return None,
    };
    Some(mib * MIB)
}

/// Fills a guest list entry (or status) from its config and status rows.
pub fn guest_entry(entry: &mut Value, tables: &Tables, item: &str, kind: &str, schema: &Schema) {
    let Value::Object(map) = entry else {
        return;
    };
    let props = schema.properties.as_ref();
    let has = |key: &str| props.is_none_or(|p| p.contains_key(key));
    let empty = Value::Object(serde_json::Map::new());
    let config = tables.get(item).unwrap_or(&empty);
    let status_row = tables.get(&format!("{item}/status/current"));
    let status = status_row
        .and_then(|s| s.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("stopped")
        .to_owned();
    let running = status == "running";
    if has("status") {
        map.insert("status".to_owned(), json!(status));
    }
    if has("qmpstatus") && kind == "qemu" {
        let stored = status_row
            .and_then(|s| s.get("qmpstatus"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        map.insert(
            "qmpstatus".to_owned(),
            json!(stored.unwrap_or_else(|| status.clone())),
        );
    }
    let name = config
        .get(if kind == "lxc" { "hostname" } else { "name" })
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{}{}",
                if kind == "lxc" { "CT" } else { "VM" },
                last_segment(item)
            )
        });
    if has("name") {
        map.insert("name".to_owned(), json!(name));
    }
    if let Some(bytes) = memory_bytes(config)
        && has("maxmem")
    {
        map.insert("maxmem".to_owned(), json!(bytes));
        if has("mem") {
            map.insert("mem".to_owned(), json!(if running { bytes / 2 } else { 0 }));
        }
    }
    let cores = config.get("cores").and_then(Value::as_i64).unwrap_or(1);
    let sockets = config.get("sockets").and_then(Value::as_i64).unwrap_or(1);
    if has("cpus") {
        map.insert("cpus".to_owned(), json!(cores * sockets));
    }
    if !running {
        for key in ["uptime", "cpu", "netin", "netout", "diskread", "diskwrite"] {
            if map.contains_key(key) {
                map.insert(key.to_owned(), json!(0));
            }
        }
    }
    // Uptime counts from the start `domain::guests::power` recorded.
    if running
        && has("uptime")
        && let Some(started) = status_row
            .and_then(|s| s.get("_started"))
            .and_then(Value::as_u64)
    {
        map.insert(
            "uptime".to_owned(),
            json!(auth::now().saturating_sub(started)),
        );
    }
    if has("lock") {
        match config.get("lock") {
            Some(lock) => map.insert("lock".to_owned(), lock.clone()),
            None => map.remove("lock"),
        };
    }
    if has("type")
        && kind == "lxc"
        && props.is_some_and(|p| p.get("type").is_some_and(|t| t.enum_values.is_none()))
    {
        map.insert("type".to_owned(), json!("lxc"));
    }
    if has("template") && map.contains_key("template") {
        map.insert(
            "template".to_owned(),
            json!(config.get("template").and_then(Value::as_i64).unwrap_or(0)),
        );
    }
}

/// A computed reply for a GET, if this path has one.
pub fn read(
    state: &AppState,
    tables: &Tables,
    call: &Call<'_>,
    ctx: &GenContext<'_>,
) -> Result<Option<Value>, AppError> {
    let returns = &call.op.returns;
    let value = match call.node.path.as_str() {
        "/version" => shaped(
            state,
            returns,
            ctx,
            json!({
                "release": state.api.meta.release.split('.').take(2).collect::<Vec<_>>().join("."),
                "version": state.api.meta.release,
                "repoid": "c0ffee42",
            }),
        ),
        "/cluster/status" => {
            let Some(items) = items_of(returns) else {
                return Ok(None);
            };
            let nodes: Vec<String> = tables.members("/nodes").cloned().collect();
            let mut entries = vec![shaped(
                state,
                items,
                ctx,
                json!({"type": "cluster", "id": "cluster", "name": cluster_name(tables),
                       "nodes": nodes.len(), "quorate": 1, "version": 3}),
            )];
            for (index, node) in nodes.iter().enumerate() {
                let row = tables.get(node).cloned().unwrap_or_default();
                let name = last_segment(node);
                let node_ctx = GenContext { path: node, ..*ctx };
                entries.push(shaped(
                    state,
                    items,
                    &node_ctx,
                    json!({"type": "node", "id": format!("node/{name}"), "name": name,
                           "online": u8::from(row.get("status").and_then(Value::as_str) == Some("online")),
                           "local": u8::from(index == 0), "nodeid": index + 1,
                           "ip": row.get("ip").cloned().unwrap_or(json!("192.168.1.11")), "level": ""}),
                ));
            }
            Value::Array(entries)
        }
        "/cluster/resources" => {
            let Some(items) = items_of(returns) else {
                return Ok(None);
            };
            let wanted = call.args.get("type").and_then(Value::as_str);
            let mut entries = Vec::new();
            let nodes: Vec<String> = tables.members("/nodes").cloned().collect();
            let pools = crate::domain::storage::pool_of_guests(tables);
            for node_path in &nodes {
                let node = last_segment(node_path);
                let row = tables.get(node_path).cloned().unwrap_or_default();
                let online = row.get("status").and_then(Value::as_str) == Some("online");
                if wanted.is_none_or(|w| w == "node") {
                    let node_ctx = GenContext {
                        path: node_path,
                        ..*ctx
                    };
                    entries.push(shaped(
                        state,
                        items,
                        &node_ctx,
                        json!({"type": "node", "id": format!("node/{node}"), "node": node,
                               "status": if online { "online" } else { "offline" }, "level": ""}),
                    ));
                }
                if wanted.is_none_or(|w| w == "vm") {
                    for kind in ["qemu", "lxc"] {
                        for item in tables.members(&format!("{node_path}/{kind}")) {
                            let vmid = last_segment(item);
                            let item_ctx = GenContext { path: item, ..*ctx };
                            // The row depends on the schema, the context (the item's path
                            // among it), and the guest's config and status rows; a change to
                            // either row drops the cached one (`Tables::apply`). Running
                            // guests are not cached: their uptime moves with the clock.
                            let key = gen_key_hash(items, &item_ctx);
                            let mut entry = match tables.guest_rows.get(item, key) {
                                Some(row) => row,
                                None => {
                                    let mut entry = shaped(
                                        state,
                                        items,
                                        &item_ctx,
                                        json!({"type": kind, "id": format!("{kind}/{vmid}"), "node": node,
                                               "vmid": vmid.parse::<i64>().unwrap_or(0)}),
                                    );
                                    guest_entry(&mut entry, tables, item, kind, items);
                                    if let Value::Object(map) = &mut entry {
                                        map.insert("type".to_owned(), json!(kind));
                                    }
                                    let running = entry.get("status").and_then(Value::as_str)
                                        == Some("running")
                                        || tables
                                            .get(&format!("{item}/status/current"))
                                            .and_then(|s| s.get("status"))
                                            .and_then(Value::as_str)
                                            == Some("running");
                                    if !running {
                                        tables.guest_rows.insert(item, key, entry.clone());
                                    }
                                    entry
                                }
                            };
                            if let Value::Object(map) = &mut entry {
                                match vmid.parse::<u64>().ok().and_then(|v| pools.get(&v)) {
                                    Some(pool) => map.insert("pool".to_owned(), json!(pool)),
                                    None => map.remove("pool"),
                                };
                            }
                            entries.push(entry);
                        }
                    }
                }
                if wanted.is_none_or(|w| w == "storage") {
                    for (storage, config) in storages_on(tables, node) {
                        let path = format!("{node_path}/storage/{storage}");
                        let storage_ctx = GenContext {
                            path: &path,
                            ..*ctx
                        };
                        entries.push(shaped(
                            state,
                            items,
                            &storage_ctx,
                            json!({"type": "storage", "id": format!("storage/{node}/{storage}"), "node": node,
                                   "storage": storage, "status": "available",
                                   "plugintype": config.get("type").cloned().unwrap_or(json!("dir")),
                                   "content": config.get("content").cloned().unwrap_or(json!("images")),
                                   "shared": 0}),
                        ));
                    }
                }
            }
            Value::Array(entries)
        }
        "/nodes/{node}/storage" => {
            let Some(items) = items_of(returns) else {
                return Ok(None);
            };
            let node = call
                .path_params
                .first()
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            let content_filter = call.args.get("content").and_then(Value::as_str);
            let mut entries = Vec::new();
            for (storage, config) in storages_on(tables, node) {
                let content = config
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or("images")
                    .to_owned();
                if let Some(filter) = content_filter
                    && !crate::validate::split_list(&content).any(|c| c == filter)
                {
                    continue;
                }
                let path = format!("/nodes/{node}/storage/{storage}");
                let storage_ctx = GenContext {
                    path: &path,
                    ..*ctx
                };
                entries.push(shaped(
                    state,
                    items,
                    &storage_ctx,
                    json!({"storage": storage, "type": config.get("type").cloned().unwrap_or(json!("dir")),
                           "content": content, "active": 1, "enabled": 1, "shared": 0}),
                ));
            }
            Value::Array(entries)
        }
        "/nodes/{node}/tasks/{upid}/log" => {
            let item = crate::api::parent(ctx.path);
            let record = tables.get(item).cloned().unwrap_or_default();
            let start = call.args.get("start").and_then(Value::as_u64).unwrap_or(0) as usize;
            let limit = call
                .args
                .get("limit")
                .and_then(Value::as_u64)
                .filter(|l| *l > 0)
                .unwrap_or(50) as usize;
            let lines = record
                .get("_log")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Value::Array(
                lines
                    .iter()
                    .enumerate()
                    .skip(start)
                    .take(limit)
                    .map(|(index, line)| json!({"n": index + 1, "t": line}))
                    .collect(),
            )
        }
        "/nodes/{node}/qemu/{vmid}/status/current" | "/nodes/{node}/lxc/{vmid}/status/current" => {
            let kind = if call.node.path.contains("/lxc/") {
                "lxc"
            } else {
                "qemu"
            };
            let item = crate::api::parent(crate::api::parent(ctx.path));
            let mut value = generate(&state.api, returns, ctx);
            if let Some(stored) = tables.get(ctx.path).and_then(Value::as_object)
                && let Value::Object(map) = &mut value
            {
                for (key, field) in stored {
                    if returns
                        .properties
                        .as_ref()
                        .is_some_and(|p| p.contains_key(key))
                    {
                        map.insert(key.clone(), field.clone());
                    }
                }
            }
            guest_entry(&mut value, tables, item, kind, returns);
            if let Some(vmid) = ctx.params.iter().find(|(k, _)| k == "vmid")
                && let Value::Object(map) = &mut value
                && returns
                    .properties
                    .as_ref()
                    .is_some_and(|p| p.contains_key("vmid"))
            {
                map.insert("vmid".to_owned(), json!(vmid.1.parse::<i64>().unwrap_or(0)));
            }
            value
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// A computed write, if this path has one (none at present: the login, `POST /access/ticket`,
/// is answered by [`crate::access::endpoints`] before the engine runs).
pub fn write(
    _state: &AppState,
    _tables: &Tables,
    _call: &Call<'_>,
) -> Result<Option<ViewPlan>, AppError> {
    Ok(None)
}
