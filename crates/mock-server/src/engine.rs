//! Generic request semantics, derived from the route metadata's topology.
//!
//! - `GET` on a collection lists its stored members, each entry generated from the list schema
//!   and overlaid with the member's stored fields; `GET` elsewhere generates the reply from the
//!   `returns` schema and overlays what is stored (the path's own row, and for `config`/`status`
//!   children of an item, the item's row).
//! - A create (`Operation::creates`, or `POST` on a collection) adds a member under the
//!   collection's `id_param`; duplicates fail like Proxmox (`VM 100 already exists on node
//!   'pve1'`).
//! - `PUT`/`POST` on an item or its `config` updates the item's row (`delete` removes keys,
//!   `digest` must match); on other singletons it updates the singleton's row.
//! - `DELETE` on an item removes it and everything below; the next access fails with Proxmox's
//!   not-found message (`Configuration file 'nodes/pve1/qemu-server/9001.conf' does not exist`).
//! - Guest actions (`status/start|stop|shutdown|reboot|suspend|resume`) change the guest's
//!   `status/current` row.
//! - Worker-task operations answer a UPID and register the task under `/nodes/{node}/tasks`; the
//!   effect is applied when the task ends (at once unless a task delay is configured).
//!
//! Every write first computes its complete change list from a consistent read of the state and
//! fails before changing anything; the change list is then applied atomically by the store.

use std::time::Duration;

use http::StatusCode;
use route_metadata::{Method, Operation, PathKind, PathNode, Schema, SchemaType};
use serde_json::{Map, Value, json};
use sha1::Digest as _;

use crate::api::{Api, fill_template, last_segment, parent};
use crate::app::AppState;
use crate::auth::{self, PASSWORD_KEY, SECRET_KEY};
use crate::error::AppError;
use crate::generate::{GenContext, generate};
use crate::seed::CLUSTER_PATH;
use crate::store::{Change, Tables};
use crate::validate::{Params, split_list};

/// One validated API call.
#[derive(Debug)]
pub struct Call<'a> {
    /// The path node.
    pub node: &'a PathNode,
    /// The operation.
    pub op: &'a Operation,
    /// Decoded path parameters.
    pub path_params: &'a [(String, String)],
    /// Validated parameters (path parameters included).
    pub args: &'a Params,
    /// The authenticated user (or token ID).
    pub user: &'a str,
}

impl Call<'_> {
    fn concrete(&self) -> String {
        fill_template(&self.node.path, self.path_params)
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.path_params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What a write does.
#[derive(Debug, Default)]
struct Plan {
    now: Vec<Change>,
    at_end: Vec<Change>,
    reply: Value,
    task: Option<Task>,
}

#[derive(Debug, Clone)]
struct Task {
    path: String,
    record: Value,
}

/// Handles a call.
pub async fn handle(state: &AppState, call: Call<'_>) -> Result<Value, AppError> {
    if call.op.method == Method::Get {
        let tables = state.store.read();
        return read(state, &tables, &call);
    }
    let pending = {
        let _gate = state.write_gate.lock().await;
        let plan = {
            let tables = state.store.read();
            plan_write(state, &tables, &call)?
        };
        let Plan {
            mut now,
            mut at_end,
            reply,
            mut task,
        } = plan;
        // Injected task faults (`crate::simulation`): the task fails and changes nothing.
        if let Some(task) = &mut task
            && state.simulation.fail_task(&mut task.record)
        {
            at_end.clear();
        }
        let delay = task.as_ref().map_or(Duration::ZERO, |task| {
            crate::simulation::task_duration(state, task.record["type"].as_str().unwrap_or(""))
        });
        let deferred = match &task {
            Some(task) if !delay.is_zero() => {
                now.push(Change::Put {
                    path: task.path.clone(),
                    collection: Some(parent(&task.path).to_owned()),
                    value: task.record.clone(),
                });
                Some((task.clone(), at_end, delay))
            }
            Some(task) => {
                now.extend(at_end);
                now.push(Change::Put {
                    path: task.path.clone(),
                    collection: Some(parent(&task.path).to_owned()),
                    value: finished(&task.record),
                });
                None
            }
            None => {
                now.extend(at_end);
                None
            }
        };
        let pending = state
            .store
            .submit(now)
            .map_err(|error| AppError::Internal(error.to_string()))?;
        (pending, reply, deferred)
    };
    let (pending, reply, task) = pending;
    pending
        .durable()
        .await
        .map_err(|error| AppError::Internal(error.to_string()))?;
    if let Some((task, at_end, delay)) = task {
        let state = state.clone_handle();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _gate = state.write_gate.lock().await;
            let mut changes = at_end;
            changes.push(Change::Put {
                path: task.path.clone(),
                collection: Some(parent(&task.path).to_owned()),
                value: finished(&task.record),
            });
            match state.store.submit(changes) {
                Ok(pending) => {
                    drop(_gate);
                    if let Err(error) = pending.durable().await {
                        tracing::error!(%error, "finishing a task failed");
                    }
                }
                Err(error) => tracing::error!(%error, "finishing a task failed"),
            }
        });
    }
    Ok(reply)
}

fn finished(record: &Value) -> Value {
    let mut record = record.clone();
    record["status"] = json!("stopped");
    // A domain module marks a task that fails in its worker with `_error` (the message).
    let error = record
        .as_object_mut()
        .and_then(|map| map.remove("_error"))
        .and_then(|error| error.as_str().map(str::to_owned));
    record["exitstatus"] = json!(error.as_deref().unwrap_or("OK"));
    let start = record["starttime"].as_u64().unwrap_or_else(auth::now);
    record["endtime"] = json!(auth::now().max(start));
    if let Some(log) = record.get_mut("_log").and_then(Value::as_array_mut) {
        match &error {
            Some(error) => log.push(json!(format!("TASK ERROR: {error}"))),
            None => log.push(json!("TASK OK")),
        }
    }
    record
}

// ----------------------------------------------------------------------------------------------
// Existence and messages.

fn kind_name(collection_template: &str) -> String {
    let segment = last_segment(collection_template);
    segment.strip_suffix('s').unwrap_or(segment).to_owned()
}

/// Proxmox's message for a missing member.
fn not_found(item_template: &str, concrete: &str, params: &[(String, String)]) -> AppError {
    let get = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_default()
    };
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
            let storage = params
                .iter()
                .find(|(key, _)| key == "storage")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            tables.exists(&format!("/storage/{storage}"))
        }
        _ => tables.exists(concrete),
    }
}

fn guest_kind(template: &str) -> Option<&'static str> {
    if template.starts_with("/nodes/{node}/qemu") {
        Some("qemu")
    } else if template.starts_with("/nodes/{node}/lxc") {
        Some("lxc")
    } else {
        None
    }
}

/// Finds a guest ID on any node.
fn find_guest(tables: &Tables, vmid: &str) -> Option<(String, &'static str)> {
    for node in tables.members("/nodes") {
        for kind in ["qemu", "lxc"] {
            if tables.exists(&format!("{node}/{kind}/{vmid}")) {
                return Some((last_segment(node).to_owned(), kind));
            }
        }
    }
    None
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
            .is_some_and(|props| crate::validate::resolve_property(props, key).is_some());
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
        .and_then(|props| crate::validate::resolve_property(props, key))
    else {
        return value.clone();
    };
    let mut value = value.clone();
    match (property.kind(), &value) {
        (SchemaType::String, Value::Number(_) | Value::Bool(_)) => {
            crate::validate::coerce(property, &mut value)
        }
        (SchemaType::Integer | SchemaType::Number | SchemaType::Boolean, Value::String(_)) => {
            crate::validate::coerce(property, &mut value)
        }
        _ => {}
    }
    value
}

/// SHA-1 hex digest of an object with its keys sorted (Proxmox's config digest is a SHA-1).
pub fn digest(value: Option<&Value>) -> String {
    let mut hasher = sha1::Sha1::new();
    if let Some(Value::Object(map)) = value {
        let mut keys: Vec<&String> = map.keys().filter(|k| !k.starts_with('_')).collect();
        keys.sort();
        for key in keys {
            hasher.update(key.as_bytes());
            hasher.update(b"=");
            hasher.update(map[key].to_string().as_bytes());
            hasher.update(b"\n");
        }
    }
    hex::encode(hasher.finalize())
}

fn gen_ctx<'a>(
    state: &'a AppState,
    path: &'a str,
    params: &'a [(String, String)],
    children: &'a [String],
    nodes: &'a [String],
) -> GenContext<'a> {
    GenContext {
        path,
        params,
        children,
        release: &state.api.meta.release,
        nodes,
        minimal: false,
    }
}

fn node_names(tables: &Tables) -> Vec<String> {
    tables
        .members("/nodes")
        .map(|p| last_segment(p).to_owned())
        .collect()
}

fn read(state: &AppState, tables: &Tables, call: &Call<'_>) -> Result<Value, AppError> {
    let api = &state.api;
    if let Some(value) = crate::domain::read(state, tables, call)? {
        return Ok(value);
    }
    check_exists(api, tables, &call.node.path, call.path_params)?;
    let concrete = call.concrete();
    let children: Vec<String> = call
        .node
        .children
        .iter()
        .map(|c| last_segment(c).to_owned())
        .collect();
    let nodes = node_names(tables);
    let ctx = gen_ctx(state, &concrete, call.path_params, &children, &nodes);
    let returns = &call.op.returns;
    if let Some(value) = crate::views::read(state, tables, call, &ctx)? {
        return Ok(value);
    }
    if call.node.kind == PathKind::Collection && returns.kind() == SchemaType::Array {
        return Ok(list(state, tables, call, &concrete, &nodes));
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
    if template.ends_with("/status/current") && guest_kind(template).is_some() {
        return Some(parent(parent(concrete)).to_owned());
    }
    None
}

fn list(
    state: &AppState,
    tables: &Tables,
    call: &Call<'_>,
    concrete: &str,
    nodes: &[String],
) -> Value {
    let api = &state.api;
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
        let ctx = gen_ctx(state, member, &params, &[], nodes);
        let mut entry = generate(api, items, &ctx);
        overlay(&mut entry, tables.get(member), items);
        if let Some(kind) = guest_kind(&call.node.path) {
            crate::views::guest_entry(&mut entry, tables, member, kind, items);
        }
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
            Some(props) => crate::validate::resolve_property(props, key).is_some(),
            None => true,
        };
        if keep {
            fields.insert(key.clone(), value.clone());
        }
    }
    fields
}

fn plan_write(state: &AppState, tables: &Tables, call: &Call<'_>) -> Result<Plan, AppError> {
    let api = &state.api;
    let op = call.op;
    let concrete = call.concrete();
    if let Some(plan) = crate::views::write(state, tables, call)? {
        return Ok(plan_from_view(plan));
    }
    if let Some(domain) = crate::domain::write(state, tables, call)? {
        return Ok(plan_from_domain(state, call, domain));
    }
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
        create(state, tables, call, &collection_template)?
    } else if op.method == Method::Delete && call.node.kind == PathKind::Item {
        check_exists(api, tables, &call.node.path, call.path_params)?;
        destroy(tables, call, &concrete)?
    } else if op.method == Method::Delete {
        check_exists(api, tables, &call.node.path, call.path_params)?;
        Plan {
            at_end: vec![Change::Delete {
                path: concrete.clone(),
            }],
            ..Plan::default()
        }
    } else if call.node.kind == PathKind::Action
        || guest_kind(&call.node.path).is_some_and(|_| {
            matches!(
                last_segment(&call.node.path),
                "clone" | "template" | "migrate"
            )
        })
    {
        check_exists(api, tables, &call.node.path, call.path_params)?;
        action(tables, call, &concrete)?
    } else {
        check_exists(api, tables, &call.node.path, call.path_params)?;
        update(api, tables, call, &concrete)?
    };
    if plan.reply.is_null() && !op.worker_task {
        plan.reply = default_reply(state, call, &concrete);
    }
    if op.worker_task {
        let task = new_task(state, call);
        plan.reply = json!(task.record["upid"]);
        plan.task = Some(task);
    }
    Ok(plan)
}

/// What a view-level write produced.
#[derive(Debug, Default)]
pub struct ViewPlan {
    /// Changes to apply.
    pub changes: Vec<Change>,
    /// The reply.
    pub reply: Value,
}

/// What a domain module (`crate::domain`) planned for a write.
#[derive(Debug, Default)]
pub struct DomainPlan {
    /// Changes applied when the request is answered.
    pub now: Vec<Change>,
    /// Changes applied when the worker task ends (at once for synchronous calls).
    pub at_end: Vec<Change>,
    /// The reply of a synchronous call (worker tasks answer their UPID).
    pub reply: Value,
    /// Lines the worker task logs before `TASK OK`.
    pub log: Vec<String>,
    /// When set, the worker task fails with this message and `at_end` is not applied.
    pub task_error: Option<String>,
}

fn plan_from_domain(state: &AppState, call: &Call<'_>, domain: DomainPlan) -> Plan {
    let DomainPlan {
        now,
        at_end,
        reply,
        log,
        task_error,
    } = domain;
    let mut plan = Plan {
        now,
        at_end,
        reply,
        task: None,
    };
    if call.op.worker_task {
        let mut task = new_task(state, call);
        if let Some(lines) = task.record.get_mut("_log").and_then(Value::as_array_mut) {
            lines.extend(log.into_iter().map(Value::String));
        }
        if let Some(error) = task_error {
            task.record["_error"] = json!(error);
            plan.at_end.clear();
        }
        plan.reply = json!(task.record["upid"]);
        plan.task = Some(task);
    }
    plan
}

fn plan_from_view(view: ViewPlan) -> Plan {
    Plan {
        now: view.changes,
        reply: view.reply,
        ..Plan::default()
    }
}

fn default_reply(state: &AppState, call: &Call<'_>, concrete: &str) -> Value {
    match call.op.returns.kind() {
        SchemaType::Null | SchemaType::Any => Value::Null,
        _ if call.op.returns.optional => Value::Null,
        _ => {
            let ctx = gen_ctx(state, concrete, call.path_params, &[], &[]);
            generate(&state.api, &call.op.returns, &ctx)
        }
    }
}

fn create(
    state: &AppState,
    tables: &Tables,
    call: &Call<'_>,
    collection_template: &str,
) -> Result<Plan, AppError> {
    let api = &state.api;
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
    let guest = guest_kind(collection_template).filter(|_| {
        collection_template.ends_with("/qemu") || collection_template.ends_with("/lxc")
    });
    if let Some(kind) = guest {
        if let Some((node, existing_kind)) = find_guest(tables, &id) {
            let label = if existing_kind == "lxc" { "CT" } else { "VM" };
            let _ = kind;
            return Err(AppError::die(format!(
                "{label} {id} already exists on node '{node}'\n"
            )));
        }
    } else if tables.exists(&item) {
        return Err(AppError::die(duplicate_message(
            &item_template,
            &id,
            &item_params,
        )));
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
    let value = Value::Object(fields);
    if let Some(kind) = guest {
        let running = call.args.get("start").and_then(Value::as_i64) == Some(1);
        let _ = kind;
        plan.at_end.push(Change::Put {
            path: item.clone(),
            collection: Some(collection.clone()),
            value,
        });
        plan.at_end.push(Change::Put {
            path: format!("{item}/status/current"),
            collection: None,
            value: json!({"status": if running { "running" } else { "stopped" }}),
        });
    } else {
        plan.at_end.push(Change::Put {
            path: item,
            collection: Some(collection),
            value,
        });
    }
    plan.reply = reply;
    Ok(plan)
}

fn duplicate_message(item_template: &str, id: &str, params: &[(String, String)]) -> String {
    match item_template {
        "/storage/{storage}" => format!("storage ID '{id}' already defined\n"),
        "/access/users/{userid}" => format!("create user failed: user '{id}' already exists\n"),
        "/access/users/{userid}/token/{tokenid}" => "Token already exists.\n".to_owned(),
        "/pools/{poolid}" => format!("pool '{id}' already exists\n"),
        _ => {
            let _ = params;
            format!(
                "{} '{id}' already exists\n",
                kind_name(parent(item_template))
            )
        }
    }
}

fn destroy(tables: &Tables, call: &Call<'_>, concrete: &str) -> Result<Plan, AppError> {
    if let Some(kind) = guest_kind(&call.node.path) {
        let running = tables
            .get(&format!("{concrete}/status/current"))
            .and_then(|s| s.get("status"))
            .and_then(Value::as_str)
            == Some("running");
        if running {
            let vmid = call.param("vmid").unwrap_or_default();
            return Err(AppError::die(if kind == "lxc" {
                format!("unable to destroy CT {vmid} - container is running\n")
            } else {
                format!("VM {vmid} is running - destroy failed\n")
            }));
        }
    }
    Ok(Plan {
        at_end: vec![Change::Delete {
            path: concrete.to_owned(),
        }],
        ..Plan::default()
    })
}

fn action(tables: &Tables, call: &Call<'_>, concrete: &str) -> Result<Plan, AppError> {
    let mut plan = Plan::default();
    if let Some(kind) = guest_kind(&call.node.path)
        && matches!(last_segment(concrete), "clone" | "template" | "migrate")
    {
        let item = parent(concrete);
        let node = call.param("node").unwrap_or_default();
        let vmid = call.param("vmid").unwrap_or_default();
        let mut config = tables.get(item).cloned().unwrap_or_else(|| json!({}));
        match last_segment(concrete) {
            "template" => {
                config["template"] = json!(1);
                plan.at_end.push(Change::Put {
                    path: item.to_owned(),
                    collection: Some(parent(item).to_owned()),
                    value: config,
                });
            }
            "clone" => {
                let newid = call
                    .args
                    .get("newid")
                    .map(|v| v.to_string().trim_matches('"').to_owned())
                    .unwrap_or_default();
                if let Some((existing, existing_kind)) = find_guest(tables, &newid) {
                    let label = if existing_kind == "lxc" { "CT" } else { "VM" };
                    return Err(AppError::die(format!(
                        "{label} {newid} already exists on node '{existing}'\n"
                    )));
                }
                let target = call
                    .args
                    .get("target")
                    .and_then(Value::as_str)
                    .unwrap_or(node);
                if let Some(name) = call
                    .args
                    .get(if kind == "lxc" { "hostname" } else { "name" })
                {
                    config[if kind == "lxc" { "hostname" } else { "name" }] = name.clone();
                }
                config["template"] = json!(0);
                let collection = format!("/nodes/{target}/{kind}");
                let new_item = format!("{collection}/{newid}");
                plan.at_end.push(Change::Put {
                    path: new_item.clone(),
                    collection: Some(collection),
                    value: config,
                });
                plan.at_end.push(Change::Put {
                    path: format!("{new_item}/status/current"),
                    collection: None,
                    value: json!({"status": "stopped"}),
                });
            }
            _ => {
                let Some(target) = call.args.get("target").and_then(Value::as_str) else {
                    return Ok(plan);
                };
                if target != node {
                    let status = tables
                        .get(&format!("{item}/status/current"))
                        .cloned()
                        .unwrap_or_else(|| json!({"status": "stopped"}));
                    let collection = format!("/nodes/{target}/{kind}");
                    let new_item = format!("{collection}/{vmid}");
                    plan.at_end.push(Change::Delete {
                        path: item.to_owned(),
                    });
                    plan.at_end.push(Change::Put {
                        path: new_item.clone(),
                        collection: Some(collection),
                        value: config,
                    });
                    plan.at_end.push(Change::Put {
                        path: format!("{new_item}/status/current"),
                        collection: None,
                        value: status,
                    });
                }
            }
        }
        return Ok(plan);
    }
    if guest_kind(&call.node.path).is_some() && parent(&call.node.path).ends_with("/status") {
        let item = parent(parent(concrete));
        let status_path = format!("{item}/status/current");
        let mut status = tables
            .get(&status_path)
            .cloned()
            .unwrap_or_else(|| json!({}));
        match last_segment(concrete) {
            "start" | "reboot" | "reset" => {
                status["status"] = json!("running");
                status["qmpstatus"] = json!("running");
            }
            "stop" | "shutdown" => {
                status["status"] = json!("stopped");
                status["qmpstatus"] = json!("stopped");
            }
            "suspend" => status["qmpstatus"] = json!("paused"),
            "resume" => status["qmpstatus"] = json!("running"),
            _ => return Ok(plan),
        }
        plan.at_end.push(Change::Put {
            path: status_path,
            collection: None,
            value: status,
        });
    }
    Ok(plan)
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

// ----------------------------------------------------------------------------------------------
// Worker tasks.

/// Proxmox-like worker type of an operation.
pub fn task_type(op: &Operation) -> String {
    let path = op.path.as_str();
    let guest = guest_kind(path);
    let prefix = match guest {
        Some("lxc") => "vz",
        _ => "qm",
    };
    let last = last_segment(path);
    if let Some(_guest) = guest {
        let item_level = path.ends_with("/{vmid}");
        let kind = match (op.method, last) {
            (Method::Post, "qemu" | "lxc") => "create",
            (Method::Delete, _) if item_level => "destroy",
            (_, "start" | "stop" | "shutdown" | "reboot" | "suspend" | "resume" | "reset") => last,
            (_, "clone") => "clone",
            (_, "migrate") => "migrate",
            (_, "template") => "template",
            (Method::Post, "snapshot") => "snapshot",
            (Method::Delete, _) if path.contains("/snapshot/") => "delsnapshot",
            (_, "rollback") => "rollback",
            (_, "move_disk" | "move_volume") => "move",
            (_, "config") => "config",
            (_, "resize") => return "resize".to_owned(),
            _ => "",
        };
        if !kind.is_empty() {
            return if kind == "migrate" {
                format!("{prefix}igrate")
            } else {
                format!("{prefix}{kind}")
            };
        }
    }
    match (op.method, last) {
        (_, "vzdump") => "vzdump".to_owned(),
        (Method::Post, "content") => "imgcreate".to_owned(),
        (Method::Delete, "{volume}") => "imgdel".to_owned(),
        (_, "download-url") => "download".to_owned(),
        (Method::Post, "update") if path.contains("/apt/") => "aptupdate".to_owned(),
        _ => op
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase(),
    }
}

fn new_task(state: &AppState, call: &Call<'_>) -> Task {
    let node = call
        .param("node")
        .map(str::to_owned)
        .or_else(|| {
            call.args
                .get("node")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "pve1".to_owned());
    let kind = task_type(call.op);
    let id = call
        .param("vmid")
        .map(str::to_owned)
        .or_else(|| {
            call.args
                .get("vmid")
                .map(|v| v.to_string().trim_matches('"').to_owned())
        })
        .or_else(|| {
            call.path_params
                .last()
                .filter(|(k, _)| k != "node")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_default();
    let pid = state.next_pid();
    let pstart = 1_000_000 + u64::from(pid) * 7 % 8_000_000;
    let starttime = auth::now();
    let user = call.user;
    let upid = format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:");
    let record = json!({
        "upid": upid, "node": node, "pid": pid, "pstart": pstart, "starttime": starttime,
        "type": kind, "id": id, "user": user, "status": "running",
        "_log": [format!("starting task {upid}")],
    });
    Task {
        path: format!("/nodes/{node}/tasks/{upid}"),
        record,
    }
}

/// The delay a write waits before its worker task ends.
pub fn task_delay(state: &AppState) -> Duration {
    state.settings.task_delay
}

/// Error for an operation answered by the wrong status (used by views).
pub fn bad_status(message: &str) -> AppError {
    AppError::status(StatusCode::INTERNAL_SERVER_ERROR, message)
}

/// The cluster name.
pub fn cluster_name(tables: &Tables) -> String {
    tables
        .get(CLUSTER_PATH)
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("pve-cluster")
        .to_owned()
}
