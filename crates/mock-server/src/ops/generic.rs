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
use crate::schema::{
    GenContext, Params, gen_key_hash, generate, reply_value, resolve_property, split_list,
};
use crate::store::{Change, Tables};

// ----------------------------------------------------------------------------------------------
// Existence and messages.

/// The noun of a collection's members for messages without a Proxmox text of their own: the
/// collection's last word, singular (`aliases` → `alias`, `/cluster/mapping/pci` → `pci`); a
/// collection named by a parameter (`/cluster/sdn/fabrics/node/{fabric_id}`) takes the word
/// before it.
fn kind_name(collection_template: &str) -> String {
    let word = collection_template
        .rsplit('/')
        .find(|segment| !segment.is_empty() && !segment.starts_with('{'))
        .unwrap_or("object");
    if let Some(stem) = word.strip_suffix("ses") {
        format!("{stem}s")
    } else {
        word.strip_suffix('s').unwrap_or(word).to_owned()
    }
}

/// How Proxmox words a missing member: a plain `die` (HTTP 500) or a parameter exception.
enum Missing {
    Die(String),
    Param(&'static str, String),
}

/// Proxmox's message for a missing member of the given item template, from the handler that
/// serves it (pve-firewall `API2/Firewall/*.pm`, pve-network `Network/SDN/*.pm`, pve-manager,
/// pve-ha-manager, pve-access-control); `None` where the mock has no text of Proxmox's.
fn proxmox_missing(item_template: &str, id: &str) -> Option<Missing> {
    let die = |text: String| Some(Missing::Die(text));
    // Firewall resources exist at cluster, node, guest and vnet level with the same handlers.
    let firewall = item_template
        .find("/firewall/")
        .map(|at| &item_template[at..]);
    if let Some(firewall) = firewall {
        return match firewall {
            "/firewall/rules/{pos}" | "/firewall/groups/{group}/{pos}" => {
                die(format!("no rule at position {id}\n"))
            }
            "/firewall/groups/{group}" => die(format!("no such security group '{id}'\n")),
            "/firewall/ipset/{name}" => die(format!("no such IPSet '{id}'\n")),
            "/firewall/ipset/{name}/{cidr}" => {
                Some(Missing::Param("cidr", "no such IP/Network".to_owned()))
            }
            "/firewall/aliases/{name}" => Some(Missing::Param("name", "no such alias".to_owned())),
            _ => None,
        };
    }
    match item_template {
        "/cluster/sdn/vnets/{vnet}" => die(format!("sdn vnet '{id}' does not exist\n")),
        "/cluster/sdn/vnets/{vnet}/subnets/{subnet}" => {
            die(format!("sdn subnet '{id}' does not exist\n"))
        }
        "/cluster/sdn/zones/{zone}"
        | "/cluster/sdn/controllers/{controller}"
        | "/cluster/sdn/ipams/{ipam}"
        | "/cluster/sdn/dns/{dns}" => die(format!("sdn '{id}' does not exist\n")),
        "/cluster/replication/{id}" => die(format!("no such replication job '{id}'\n")),
        "/cluster/metrics/server/{id}" => die(format!("no such server '{id}'\n")),
        // The text of the PUT and DELETE handlers (GET says "mapping 'x' not found").
        "/cluster/mapping/pci/{id}" => die(format!("pci ID '{id}' does not exist\n")),
        "/cluster/mapping/usb/{id}" => die(format!("usb ID '{id}' does not exist\n")),
        "/cluster/mapping/dir/{id}" => die(format!("dir ID '{id}' does not exist\n")),
        "/cluster/backup/{id}" => Some(Missing::Param("id", format!("No such job '{id}'"))),
        "/cluster/acme/plugins/{id}" => die(format!("ACME plugin ID '{id}' does not exist\n")),
        "/cluster/acme/account/{name}" => Some(Missing::Param(
            "name",
            format!("ACME account config file '{id}' does not exist."),
        )),
        "/cluster/ha/resources/{sid}" => die(format!("no such resource '{id}'\n")),
        "/cluster/ha/groups/{group}" => die(format!("no such ha group '{id}'\n")),
        "/cluster/ha/rules/{rule}" => die(format!("no such ha rule '{id}'\n")),
        "/pools/{poolid}" => die(format!("pool '{id}' does not exist\n")),
        "/access/groups/{groupid}" => die(format!("group '{id}' does not exist\n")),
        "/access/roles/{roleid}" => die(format!("role '{id}' does not exist\n")),
        "/access/domains/{realm}" => die(format!("domain '{id}' does not exist\n")),
        "/nodes/{node}/ceph/osd/{osdid}" => die(format!("no such OSD '{id}'\n")),
        "/nodes/{node}/ceph/fs/{name}" => die(format!("no such cephfs '{id}'\n")),
        "/nodes/{node}/ceph/mon/{monid}" => die(format!("no such monitor id '{id}'\n")),
        _ => None,
    }
}

/// Proxmox's message for a missing member.
fn not_found(item_template: &str, concrete: &str, params: &[(String, String)]) -> AppError {
    let get = |name: &str| path_param(params, name).unwrap_or_default();
    let id = last_segment(concrete);
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
        _ => match proxmox_missing(item_template, id) {
            Some(Missing::Die(message)) => message,
            Some(Missing::Param(name, message)) => return AppError::param(name, message),
            None => format!(
                "{} '{id}' does not exist\n",
                kind_name(parent(item_template))
            ),
        },
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
    let computed;
    // Which prefixes are items depends on the template alone: computed once per path node.
    let cell = api
        .path_index(template)
        .and_then(|index| api.item_prefixes(index));
    let prefixes: &[Box<str>] = match cell {
        Some(cell) => cell.get_or_init(|| item_prefixes(api, template)),
        None => {
            computed = item_prefixes(api, template);
            &computed
        }
    };
    for prefix in prefixes {
        let concrete = fill_template(prefix, params);
        if !member_exists(tables, prefix, &concrete, params) {
            return Err(not_found(prefix, &concrete, params));
        }
    }
    Ok(())
}

/// The prefixes of `template` (itself included) that end in a parameter naming a member of a
/// collection: the items [`check_exists`] looks for, outermost first.
fn item_prefixes(api: &Api, template: &str) -> Box<[Box<str>]> {
    let mut prefixes = Vec::new();
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
            .node_at(parent(prefix))
            .is_some_and(|node| node.kind == PathKind::Collection)
            && api.node_at(prefix).is_none_or(|node| match node.kind {
                PathKind::Item => true,
                // A collection that is itself a member (`/cluster/firewall/groups/{group}`, a
                // security group holding rules), created by its parent's POST.
                PathKind::Collection => api.operation_at(parent(prefix), Method::Post).is_some(),
                _ => false,
            });
        if is_item {
            prefixes.push(prefix.into());
        }
    }
    prefixes.into_boxed_slice()
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

/// Overlays a stored row on a generated reply: each stored field the reply schema knows, as
/// the schema wants it ([`reply_value`]: `null` left out, property strings parsed where the
/// reply has an object, scalars converted); a field that cannot take the schema's type keeps
/// its generated value.
fn overlay(api: &Api, target: &mut Value, source: Option<&Value>, schema: &Schema) {
    let (Value::Object(target), Some(Value::Object(source))) = (target, source) else {
        return;
    };
    for (key, value) in source {
        if key.starts_with('_') {
            continue;
        }
        let property = schema
            .properties
            .as_ref()
            .and_then(|props| resolve_property(props, key));
        let value = match property {
            Some(property) => reply_value(api, property, value),
            None if schema.additional_properties => Some(value.clone()).filter(|v| !v.is_null()),
            None => None,
        };
        if let Some(value) = value {
            target.insert(key.clone(), value);
        }
    }
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
        // Each row is parsed once: the item's row serves both overlays and the digest when
        // the path is the item.
        let item_row = item.as_deref().and_then(|item| tables.get(item));
        let own_parsed;
        let own_row = if item.as_deref() == Some(concrete.as_str()) {
            item_row.as_ref()
        } else {
            own_parsed = tables.get(&concrete);
            own_parsed.as_ref()
        };
        overlay(api, &mut value, item_row.as_ref(), returns);
        overlay(api, &mut value, own_row, returns);
        if let Some(vmid) = call.param("vmid")
            && returns
                .properties
                .as_ref()
                .is_some_and(|p| p.contains_key("vmid"))
            && let Ok(vmid) = vmid.parse::<u64>()
        {
            value["vmid"] = json!(vmid);
        }
        if is_position(api, &call.node.path)
            && let Some(pos) = call.param(POSITION).and_then(|pos| pos.parse::<u64>().ok())
        {
            value[POSITION] = json!(pos);
        }
        if returns
            .properties
            .as_ref()
            .is_some_and(|p| p.contains_key("digest"))
        {
            let source = if item.is_some() {
                item_row.as_ref()
            } else {
                own_row
            };
            value["digest"] = json!(digest(source));
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

fn list(
    tables: &Tables,
    call: &Call<'_>,
    concrete: &str,
    nodes: &[String],
    complete: &dyn Fn(&mut Value, &str, &Schema),
) -> Value {
    let Some(items) = call.op.returns.items.as_deref() else {
        return json!([]);
    };
    let id_param = call.node.id_param.as_deref();
    let mut members: Vec<&str> = tables.members(concrete).collect();
    if id_param == Some(POSITION) {
        members.sort_by_key(|member| last_segment(member).parse::<u64>().unwrap_or(u64::MAX));
    }
    let entries = members
        .into_iter()
        .map(|member| list_entry(tables, call, items, member, nodes, complete))
        .collect();
    Value::Array(entries)
}

/// The path parameters of a member's entry: the call's, and the member's ID.
fn entry_params(call: &Call<'_>, member: &str) -> Vec<(String, String)> {
    let mut params = call.path_params.to_vec();
    if let Some(id_param) = call.node.id_param.as_deref() {
        params.push((id_param.to_owned(), last_segment(member).to_owned()));
    }
    params
}

/// The key of everything the list entries ([`list_entry`]) of a call depend on besides the
/// member itself and its rows: [`gen_key_hash`] of the entry schema and the generation context
/// without the member (its path and ID). A caller keeps an entry under the member's path and
/// this key until the member's rows change; one key serves every member of the list.
pub(crate) fn list_entry_key(call: &Call<'_>, items: &Schema, nodes: &[String]) -> u64 {
    gen_key_hash(items, &gen_ctx(call, "", call.path_params, &[], nodes))
}

/// One entry of a collection's list: generated for the member at `member`,
/// overlaid with its row, passed to `complete`, with its ID set and hidden keys dropped.
pub(crate) fn list_entry(
    tables: &Tables,
    call: &Call<'_>,
    items: &Schema,
    member: &str,
    nodes: &[String],
    complete: &dyn Fn(&mut Value, &str, &Schema),
) -> Value {
    let api = call.api;
    let id_param = call.node.id_param.as_deref();
    let id = last_segment(member);
    let params = entry_params(call, member);
    let ctx = gen_ctx(call, member, &params, &[], nodes);
    let mut entry = generate(api, items, &ctx);
    overlay(api, &mut entry, tables.get(member).as_ref(), items);
    complete(&mut entry, member, items);
    if let Some(id_param) = id_param
        && let Value::Object(map) = &mut entry
    {
        let wanted = items.properties.as_ref().and_then(|p| p.get(id_param));
        let id_value = match wanted.map(Schema::kind) {
            Some(SchemaType::Integer) => id.parse::<i64>().map_or_else(|_| json!(id), |n| json!(n)),
            Some(_) => json!(id),
            None if items.additional_properties => json!(id),
            None => Value::Null,
        };
        if !id_value.is_null() {
            map.insert(id_param.to_owned(), id_value);
        }
    }
    strip_hidden(&mut entry);
    entry
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
        // A `null` is an unset parameter (`PVE::JSONSchema::check_prop`), never stored.
        if value.is_null() || op.path_params.contains(key) || NOT_CONFIG.contains(&key.as_str()) {
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
    } else if is_position(call.api, &call.node.path) {
        exists(call, tx)?;
        positional_write(tables, call, &concrete)
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

/// A reply generated from the operation's `returns` schema; one that lists properties without
/// a type (Proxmox's console replies) is an object.
pub(crate) fn generated_reply(call: &Call<'_>) -> Value {
    let concrete = call.concrete();
    let ctx = gen_ctx(call, &concrete, call.path_params, &[], &[]);
    let mut returns = call.op.returns.clone();
    if returns.ty.is_none() && returns.properties.is_some() {
        returns.ty = Some(SchemaType::Object);
    }
    generate(call.api, &returns, &ctx)
}

fn default_reply(call: &Call<'_>, concrete: &str) -> Value {
    let returns = &call.op.returns;
    let object_without_type = returns.ty.is_none() && returns.properties.is_some();
    match returns.kind() {
        _ if returns.optional => Value::Null,
        _ if object_without_type => generated_reply(call),
        SchemaType::Null | SchemaType::Any => Value::Null,
        _ => {
            let ctx = gen_ctx(call, concrete, call.path_params, &[], &[]);
            generate(call.api, returns, &ctx)
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
    if id_param == POSITION {
        let mut rule = config_fields(api, &item_template, call.op, call.args);
        rule.remove(POSITION);
        rule.retain(|_, value| !is_cleared(value));
        let takes_enable = config_schema(api, &item_template)
            .and_then(|schema| schema.properties.as_ref())
            .is_some_and(|props| props.contains_key("enable"));
        if takes_enable {
            rule.entry("enable").or_insert(json!(0));
        }
        let mut list = vec![Value::Object(rule)];
        let old = positions(tables, &collection);
        let old_len = old.len();
        list.extend(old);
        return Ok(Plan {
            at_end: rewrite_positions(&collection, old_len, list),
            ..Plan::default()
        });
    }
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

// ----------------------------------------------------------------------------------------------
// Positional lists: firewall rules (pve-firewall `API2/Firewall/Rules.pm`).

/// The ID parameter of a positional list: a member's index, not a name.
const POSITION: &str = "pos";

/// Whether `template` is a member of a positional list (`/cluster/firewall/rules/{pos}`).
fn is_position(api: &Api, template: &str) -> bool {
    api.node_at(template)
        .is_some_and(|node| node.kind == PathKind::Item)
        && api.node_at(parent(template)).is_some_and(|node| {
            node.kind == PathKind::Collection && node.id_param.as_deref() == Some(POSITION)
        })
}

/// `copy_rule_data`: an empty value or `-` clears a rule property.
fn is_cleared(value: &Value) -> bool {
    matches!(value.as_str(), Some("" | "-"))
}

/// A positional list's rows in order.
fn positions(tables: &Tables, collection: &str) -> Vec<Value> {
    let mut members: Vec<(u64, &str)> = tables
        .members(collection)
        .filter_map(|member| Some((last_segment(member).parse::<u64>().ok()?, member)))
        .collect();
    members.sort_unstable();
    members
        .into_iter()
        .filter_map(|(_, member)| tables.get(member))
        .collect()
}

/// The changes that store `list` as the positional list `collection` had `old_len` rows.
fn rewrite_positions(collection: &str, old_len: usize, list: Vec<Value>) -> Vec<Change> {
    let new_len = list.len();
    let mut changes: Vec<Change> = list
        .into_iter()
        .enumerate()
        .map(|(index, value)| Change::Put {
            path: format!("{collection}/{index}"),
            collection: Some(collection.to_owned()),
            value,
        })
        .collect();
    changes.extend((new_len..old_len).map(|index| Change::Delete {
        path: format!("{collection}/{index}"),
    }));
    changes
}

/// `PUT` (update or `moveto`) and `DELETE` on a member of a positional list, which exists.
fn positional_write(tables: &Tables, call: &Call<'_>, concrete: &str) -> Plan {
    let collection = parent(concrete);
    let mut list = positions(tables, collection);
    let old_len = list.len();
    let pos = last_segment(concrete)
        .parse::<usize>()
        .unwrap_or(usize::MAX)
        .min(old_len.saturating_sub(1));
    if call.op.method == Method::Delete {
        list.remove(pos);
    } else if let Some(moveto) = call
        .args
        .get("moveto")
        .and_then(Value::as_u64)
        .and_then(|moveto| usize::try_from(moveto).ok())
        .filter(|moveto| *moveto != pos)
    {
        // Rules.pm: the rule goes before the one now at `moveto`, or last.
        let rule = list.remove(pos);
        let at = if moveto > pos { moveto - 1 } else { moveto };
        list.insert(at.min(list.len()), rule);
    } else if let Some(Value::Object(rule)) = list.get_mut(pos) {
        for (key, value) in config_fields(call.api, &call.node.path, call.op, call.args) {
            if key == POSITION || key == "moveto" {
                continue;
            }
            if is_cleared(&value) {
                rule.remove(&key);
            } else {
                rule.insert(key, value);
            }
        }
        if let Some(delete) = call.args.get("delete").and_then(Value::as_str) {
            for key in split_list(delete) {
                rule.remove(key);
            }
        }
    }
    Plan {
        at_end: rewrite_positions(collection, old_len, list),
        ..Plan::default()
    }
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
    let current = tables.get(&target).unwrap_or_else(|| json!({}));
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
            if !value.is_null()
                && !call.op.path_params.contains(key)
                && !matches!(key.as_str(), "digest" | "delete")
            {
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
            collection: tables.collection_of(&target).map(str::to_owned),
            path: target,
            value: Value::Object(object),
        }],
        ..Plan::default()
    })
}
