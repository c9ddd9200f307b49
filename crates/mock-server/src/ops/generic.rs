//! The generic handlers: every operation without a dedicated handler in the route table is
//! answered from the route metadata's topology.
//!
//! - `GET` on a collection lists its stored members, each entry generated from the list schema
//!   and overlaid with the member's stored fields; `GET` elsewhere generates the reply from the
//!   `returns` schema and overlays what is stored (the path's own row, and for `config`/`status`
//!   children of an item, the item's row).
//! - A create (`Operation::creates`, or `POST` on a collection) adds a member under the
//!   collection's `id_param`; duplicates fail like Proxmox (`pool 'p1' already exists`).
//! - `PUT`/`POST` on an item or its `config` updates the item's row (`delete` removes keys,
//!   `digest` must match); on other singletons it updates the singleton's row.
//! - `DELETE` on an item removes it and everything below; the next access fails with Proxmox's
//!   not-found message (`storage 'x' does not exist`).
//! - Actions (`PathKind::Action`) check that their item exists and change nothing.
//!
//! Worker operations get their task from [`super::run`]; the effect is applied when it ends.

use route_metadata::{Method, Operation, PathKind, Schema, SchemaType};
use serde_json::{Map, Value, json};

use super::{Call, Plan, Tx, already_exists};
use crate::api::{Api, fill_template, last_segment, parent, path_param};
use crate::auth::{self, PASSWORD_KEY, SECRET_KEY};
use crate::error::AppError;
use crate::schema::{GenContext, Params, generate, resolve_property, split_list};
use crate::store::{Change, Tables};

// ----------------------------------------------------------------------------------------------
// Existence and messages.

fn kind_name(collection_template: &str) -> String {
    let segment = last_segment(collection_template);
    segment.strip_suffix('s').unwrap_or(segment).to_owned()
}

/// Proxmox's message for a missing member.
fn not_found(item_template: &str, concrete: &str, params: &[(String, String)]) -> AppError {
    let get = |name: &str| path_param(params, name).unwrap_or_default();
    let message = match item_template {
        "/nodes/{node}/qemu/{vmid}" => format!(
            "Configuration file 'nodes/{}/qemu-server/{}.conf' does not exist\n",
            get("node"),
            get("vmid")
        ),
        "/nodes/{node}/lxc/{vmid}" => format!(
            "Configuration file 'nodes/{}/lxc/{}.conf' does not exist\n",
            get("node"),
            get("vmid")
        ),
        "/nodes/{node}" => {
            let node = get("node");
            format!(
                "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known\n"
            )
        }
        "/storage/{storage}" | "/nodes/{node}/storage/{storage}" => {
            format!("storage '{}' does not exist\n", get("storage"))
        }
        "/access/users/{userid}" => format!("no such user ('{}')\n", get("userid")),
        "/access/users/{userid}/token/{tokenid}" => {
            format!(
                "no such token '{}' for user '{}'\n",
                get("tokenid"),
                get("userid")
            )
        }
        "/nodes/{node}/tasks/{upid}" => format!("no such task '{}'\n", get("upid")),
        _ => format!(
            "{} '{}' does not exist\n",
            kind_name(parent(item_template)),
            last_segment(concrete)
        ),
    };
    AppError::die(message)
}

/// Checks that every item on the way to (and including) `template` exists.
pub(crate) fn check_exists(
    api: &Api,
    tables: &Tables,
    template: &str,
    params: &[(String, String)],
) -> Result<(), AppError> {
    let mut end = 0;
    let bytes = template.as_bytes();
    while end < template.len() {
        end = template[end + 1..]
            .find('/')
            .map_or(template.len(), |index| index + end + 1);
        let prefix = &template[..end];
        if !prefix.ends_with('}') || bytes.get(end).is_some_and(|b| *b != b'/') {
            continue;
        }
        let is_item = api
            .node_at(prefix)
            .is_none_or(|node| node.kind == PathKind::Item)
            && api
                .node_at(parent(prefix))
                .is_some_and(|node| node.kind == PathKind::Collection);
        if !is_item {
            continue;
        }
        let concrete = fill_template(prefix, params);
        if !member_exists(tables, prefix, &concrete, params) {
            return Err(not_found(prefix, &concrete, params));
        }
    }
    Ok(())
}

fn member_exists(
    tables: &Tables,
    template: &str,
    concrete: &str,
    params: &[(String, String)],
) -> bool {
    match template {
        "/nodes/{node}/storage/{storage}" => {
            let storage = path_param(params, "storage").unwrap_or_default();
            tables.exists(&format!("/storage/{storage}"))
        }
        _ => tables.exists(concrete),
    }
}

// ----------------------------------------------------------------------------------------------
// Reads.

fn strip_hidden(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|key, _| !key.starts_with('_'));
    }
}

fn overlay(target: &mut Value, source: Option<&Value>, schema: &Schema) {
    let (Value::Object(target), Some(Value::Object(source))) = (target, source) else {
        return;
    };
    for (key, value) in source {
        if key.starts_with('_') {
            continue;
        }
        let known = schema
            .properties
            .as_ref()
            .is_some_and(|props| resolve_property(props, key).is_some());
        if known || schema.additional_properties {
            target.insert(key.clone(), conform(schema, key, value));
        }
    }
}

/// Converts a stored value to the type the reply schema wants (`"2048"` for an integer field).
fn conform(schema: &Schema, key: &str, value: &Value) -> Value {
    let Some(property) = schema
        .properties
        .as_ref()
        .and_then(|props| resolve_property(props, key))
    else {
        return value.clone();
    };
    let mut value = value.clone();
    match (property.kind(), &value) {
        (SchemaType::String, Value::Number(_) | Value::Bool(_)) => {
            crate::schema::coerce(property, &mut value)
        }
        (SchemaType::Integer | SchemaType::Number | SchemaType::Boolean, Value::String(_)) => {
            crate::schema::coerce(property, &mut value)
        }
        _ => {}
    }
    value
}

/// The digest of a stored row: the one config digest ([`super::guest::config_digest`]) of its
/// visible keys.
fn digest(value: Option<&Value>) -> String {
    match value {
        Some(Value::Object(map)) => super::guest::config_digest(&super::visible(map), &[]),
        _ => super::guest::config_digest(&Map::new(), &[]),
    }
}

fn gen_ctx<'a>(
    call: &'a Call<'_>,
    path: &'a str,
    params: &'a [(String, String)],
    children: &'a [String],
    nodes: &'a [String],
) -> GenContext<'a> {
    GenContext {
        path,
        params,
        children,
        release: &call.api.meta.release,
        nodes,
        minimal: false,
    }
}

/// The last segments of the call's child paths (what index replies list).
pub(crate) fn children(call: &Call<'_>) -> Vec<String> {
    call.node
        .children
        .iter()
        .map(|child| last_segment(child).to_owned())
        .collect()
}

/// The names of the nodes.
pub(crate) fn node_names(tables: &Tables) -> Vec<String> {
    tables
        .members("/nodes")
        .map(|p| last_segment(p).to_owned())
        .collect()
}

/// Checks that every item on the way to (and including) the call's path exists.
pub(crate) fn exists(call: &Call<'_>, tx: &Tx<'_>) -> Result<(), AppError> {
    check_exists(call.api, tx.tables, &call.node.path, call.path_params)
}

/// `GET`: lists a collection's members, or generates the reply and overlays the stored rows.
pub(crate) fn read(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let api = call.api;
    let tables = tx.tables;
    exists(call, tx)?;
    let concrete = call.concrete();
    let children = children(call);
    let nodes = node_names(tables);
    let ctx = gen_ctx(call, &concrete, call.path_params, &children, &nodes);
    let returns = &call.op.returns;
    if call.node.kind == PathKind::Collection && returns.kind() == SchemaType::Array {
        return Ok(list(tables, call, &concrete, &nodes, &|_, _, _| {}));
    }
    let item = item_row_for(api, &call.node.path, &concrete);
    let minimal = item.as_deref().is_some_and(|row| tables.exists(row))
        && last_segment(&call.node.path) == "config";
    let mut value = generate(api, returns, &GenContext { minimal, ..ctx });
    if value.is_object() {
        if let Some(item) = &item {
            overlay(&mut value, tables.get(item), returns);
        }
        overlay(&mut value, tables.get(&concrete), returns);
        if let Some(vmid) = call.param("vmid")
            && returns
                .properties
                .as_ref()
                .is_some_and(|p| p.contains_key("vmid"))
            && let Ok(vmid) = vmid.parse::<u64>()
        {
            value["vmid"] = json!(vmid);
        }
        if returns
            .properties
            .as_ref()
            .is_some_and(|p| p.contains_key("digest"))
        {
            let source = item.as_deref().unwrap_or(&concrete);
            value["digest"] = json!(digest(tables.get(source)));
        }
        strip_hidden(&mut value);
    }
    Ok(value)
}

/// The item row whose fields a path shows: the item itself, or the item of a `config` or
/// `status` child.
fn item_row_for(api: &Api, template: &str, concrete: &str) -> Option<String> {
    if api.is_item(template) {
        return Some(concrete.to_owned());
    }
    let name = last_segment(template);
    if matches!(name, "config" | "status") && api.is_item(parent(template)) {
        return Some(parent(concrete).to_owned());
    }
    if template.ends_with("/status/current") && super::guest::Kind::of_template(template).is_some()
    {
        return Some(parent(parent(concrete)).to_owned());
    }
    None
}

/// `GET` on a collection whose entries another module completes: the members as [`read`] lists
/// them, each entry passed to `complete` with the member's path before its ID is set and hidden
/// keys are dropped.
pub(crate) fn list_with(
    call: &Call<'_>,
    tx: &Tx<'_>,
    complete: &dyn Fn(&mut Value, &str, &Schema),
) -> Result<Value, AppError> {
    exists(call, tx)?;
    let nodes = node_names(tx.tables);
    Ok(list(tx.tables, call, &call.concrete(), &nodes, complete))
}

fn list(
    tables: &Tables,
    call: &Call<'_>,
    concrete: &str,
    nodes: &[String],
    complete: &dyn Fn(&mut Value, &str, &Schema),
) -> Value {
    let api = call.api;
    let Some(items) = call.op.returns.items.as_deref() else {
        return json!([]);
    };
    let id_param = call.node.id_param.as_deref();
    let mut entries = Vec::new();
    for member in tables.members(concrete) {
        let id = last_segment(member);
        let mut params = call.path_params.to_vec();
        if let Some(id_param) = id_param {
            params.push((id_param.to_owned(), id.to_owned()));
        }
        let ctx = gen_ctx(call, member, &params, &[], nodes);
        let mut entry = generate(api, items, &ctx);
        overlay(&mut entry, tables.get(member), items);
        complete(&mut entry, member, items);
        if let Some(id_param) = id_param
            && let Value::Object(map) = &mut entry
        {
            let wanted = items.properties.as_ref().and_then(|p| p.get(id_param));
            let id_value = match wanted.map(Schema::kind) {
                Some(SchemaType::Integer) => {
                    id.parse::<i64>().map_or_else(|_| json!(id), |n| json!(n))
                }
                Some(_) => json!(id),
                None if items.additional_properties => json!(id),
                None => Value::Null,
            };
            if !id_value.is_null() {
                map.insert(id_param.to_owned(), id_value);
            }
        }
        strip_hidden(&mut entry);
        entries.push(entry);
    }
    Value::Array(entries)
}

// ----------------------------------------------------------------------------------------------
// Writes.

const NOT_CONFIG: &[&str] = &[
    "digest", "delete", "revert", "skiplock", "force", "purge", "start", "password",
];

/// The keys a config row keeps: those the item's (or its `config` child's) GET reply shows.
fn config_schema<'a>(api: &'a Api, item_template: &str) -> Option<&'a Schema> {
    let config = format!("{item_template}/config");
    [item_template, config.as_str()]
        .into_iter()
        .filter_map(|template| api.operation_at(template, Method::Get))
        .map(|op| &op.returns)
        .find(|schema| schema.kind() == SchemaType::Object && schema.properties.is_some())
}

fn config_fields(
    api: &Api,
    item_template: &str,
    op: &Operation,
    args: &Params,
) -> Map<String, Value> {
    let schema = config_schema(api, item_template);
    let mut fields = Map::new();
    for (key, value) in args {
        if op.path_params.contains(key) || NOT_CONFIG.contains(&key.as_str()) {
            continue;
        }
        let keep = match schema.and_then(|s| s.properties.as_ref()) {
            Some(props) => resolve_property(props, key).is_some(),
            None => true,
        };
        if keep {
            fields.insert(key.clone(), value.clone());
        }
    }
    fields
}

/// A write without a dedicated handler: create, delete, action or update, by topology.
pub(crate) fn write(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let api = call.api;
    let tables = tx.tables;
    let op = call.op;
    let concrete = call.concrete();
    let creates = op
        .creates
        .clone()
        .or_else(|| {
            (op.method == Method::Post && call.node.kind == PathKind::Collection)
                .then(|| call.node.path.clone())
        })
        .or_else(|| {
            // `POST` on an item path (e.g. `/access/users/{userid}/token/{tokenid}`) creates it.
            (op.method == Method::Post && call.node.kind == PathKind::Item)
                .then(|| call.node.related.clone())
                .flatten()
        });
    let mut plan = if let Some(collection_template) = creates {
        create(tables, call, &collection_template)?
    } else if op.method == Method::Delete {
        // Deleting an item removes it and everything below it.
        exists(call, tx)?;
        Plan::changes(
            vec![Change::Delete {
                path: concrete.clone(),
            }],
            Value::Null,
        )
    } else if call.node.kind == PathKind::Action {
        // Actions without a dedicated handler have no effect on the state.
        exists(call, tx)?;
        Plan::default()
    } else {
        exists(call, tx)?;
        update(api, tables, call, &concrete)?
    };
    if plan.reply.is_null() && !op.worker_task {
        plan.reply = default_reply(call, &concrete);
    }
    Ok(plan)
}

fn default_reply(call: &Call<'_>, concrete: &str) -> Value {
    match call.op.returns.kind() {
        SchemaType::Null | SchemaType::Any => Value::Null,
        _ if call.op.returns.optional => Value::Null,
        _ => {
            let ctx = gen_ctx(call, concrete, call.path_params, &[], &[]);
            generate(call.api, &call.op.returns, &ctx)
        }
    }
}

fn create(tables: &Tables, call: &Call<'_>, collection_template: &str) -> Result<Plan, AppError> {
    let api = call.api;
    check_exists(api, tables, collection_template, call.path_params)?;
    let collection_node = api.node_at(collection_template);
    let id_param = collection_node
        .and_then(|node| node.id_param.clone())
        .unwrap_or_else(|| "id".to_owned());
    let item_template = collection_node
        .and_then(|node| node.related.clone())
        .unwrap_or_else(|| format!("{collection_template}/{{{id_param}}}"));
    let collection = fill_template(collection_template, call.path_params);
    let id = match call.param(&id_param) {
        Some(id) => id.to_owned(),
        None => match call.args.get(&id_param) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                let mut index = tables.members(&collection).count();
                loop {
                    let candidate = index.to_string();
                    if !tables.exists(&format!("{collection}/{candidate}")) {
                        break candidate;
                    }
                    index += 1;
                }
            }
        },
    };
    let item = format!("{collection}/{id}");
    let mut item_params = call.path_params.to_vec();
    if !item_params.iter().any(|(key, _)| *key == id_param) {
        item_params.push((id_param.clone(), id.clone()));
    }
    if tables.exists(&item) {
        return Err(AppError::die(duplicate_message(&item_template, &id)));
    }
    let mut fields = config_fields(api, &item_template, call.op, call.args);
    fields.remove(&id_param);
    let mut plan = Plan::default();
    let mut reply = Value::Null;
    match item_template.as_str() {
        "/access/users/{userid}" => {
            if let Some(password) = call.args.get("password").and_then(Value::as_str) {
                fields.insert(PASSWORD_KEY.to_owned(), json!(auth::hash_secret(password)));
            }
            fields.entry("enable").or_insert(json!(1));
        }
        "/access/users/{userid}/token/{tokenid}" => {
            let secret = auth::new_token_secret();
            fields.insert(SECRET_KEY.to_owned(), json!(auth::hash_secret(&secret)));
            fields.entry("privsep").or_insert(json!(1));
            let userid = call.param("userid").unwrap_or_default();
            let mut info = Value::Object(fields.clone());
            strip_hidden(&mut info);
            reply =
                json!({"full-tokenid": format!("{userid}!{id}"), "info": info, "value": secret});
        }
        _ => {}
    }
    plan.at_end.push(Change::Put {
        path: item,
        collection: Some(collection),
        value: Value::Object(fields),
    });
    plan.reply = reply;
    Ok(plan)
}

/// Proxmox's message for a member that exists already.
fn duplicate_message(item_template: &str, id: &str) -> String {
    match item_template {
        "/storage/{storage}" => format!("storage ID '{id}' already defined\n"),
        "/access/users/{userid}" => {
            format!("create user failed: {}", already_exists("user", id))
        }
        "/access/users/{userid}/token/{tokenid}" => "Token already exists.\n".to_owned(),
        _ => already_exists(&kind_name(parent(item_template)), id),
    }
}

fn update(api: &Api, tables: &Tables, call: &Call<'_>, concrete: &str) -> Result<Plan, AppError> {
    let target = item_row_for(api, &call.node.path, concrete)
        .filter(|_| last_segment(&call.node.path) != "status")
        .unwrap_or_else(|| concrete.to_owned());
    let target_template = if target == concrete {
        call.node.path.clone()
    } else {
        parent(&call.node.path).to_owned()
    };
    let current = tables.get(&target).cloned().unwrap_or_else(|| json!({}));
    if let Some(expected) = call.args.get("digest").and_then(Value::as_str)
        && !expected.is_empty()
        && !auth::constant_time_eq(expected.as_bytes(), digest(Some(&current)).as_bytes())
    {
        return Err(AppError::die(
            "detected modified configuration - file changed by other user? Try again.\n",
        ));
    }
    let fields = if api.is_item(&target_template) {
        config_fields(api, &target_template, call.op, call.args)
    } else {
        let mut fields = Map::new();
        for (key, value) in call.args {
            if !call.op.path_params.contains(key) && !matches!(key.as_str(), "digest" | "delete") {
                fields.insert(key.clone(), value.clone());
            }
        }
        fields
    };
    let mut object = match current {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if let Some(delete) = call.args.get("delete").and_then(Value::as_str) {
        for key in split_list(delete) {
            object.remove(key);
        }
    }
    if (call.node.path == "/access/password" || target_template == "/access/users/{userid}")
        && let Some(password) = call.args.get("password").and_then(Value::as_str)
    {
        object.insert(PASSWORD_KEY.to_owned(), json!(auth::hash_secret(password)));
    }
    object.extend(fields);
    Ok(Plan {
        at_end: vec![Change::Put {
            collection: tables.member_of.get(&target).cloned(),
            path: target,
            value: Value::Object(object),
        }],
        ..Plan::default()
    })
}
