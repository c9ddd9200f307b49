//! Cluster and node views: replies computed from other rows rather than stored at the path.
//!
//! `/version`, `/cluster/status`, `/cluster/resources` (nodes, guests, storage, with the pool of
//! each guest), `/nodes/{node}/status`, `/nodes/{node}/storage` and each storage's `status`,
//! `/nodes/{node}/network`, `/nodes/{node}/version`, a
//! guest's `status/current`, and the guest list entries the generic list uses. Each reply is
//! generated from the operation's `returns` schema and overlaid with what the rows say, so it
//! has every field the schema promises.

use std::sync::Arc;

use route_metadata::{PathKind, Schema, SchemaType};
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::guest::{Guest, Kind};
use super::{Call, JsonText, Reply, Tx, generic, text};
use crate::access::filter::{GuestAudit, GuestShown, NodeFilter, ResourceFilter, node_texts};
use crate::api::{Api, last_segment, parent};
use crate::auth;
use crate::error::AppError;
use crate::schema::{
    GenContext, gen_key_hash, generate, integer_at, kernel_build, kernel_release, kernel_version,
    load_average, number_at, pve_version, seed, split_list,
};
use crate::store::{KeptRow, Tables, UPTIME_MARK};

/// Internal row holding cluster-wide facts (the cluster name).
pub(crate) const CLUSTER_PATH: &str = "/_mock/cluster";

/// The cluster name.
pub(crate) fn cluster_name(tables: &Tables) -> String {
    tables
        .field(CLUSTER_PATH, "name")
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or("pve-cluster")
        .to_owned()
}

/// The fields of `/version` and `/nodes/{node}/version`.
fn version_fields(api: &Api) -> Value {
    let version = &api.meta.release;
    let release: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    json!({"release": release, "version": version, "repoid": "c0ffee42"})
}

/// Everything a view generates values with: the call's path, parameters, children and nodes.
struct View {
    concrete: String,
    children: Vec<String>,
    nodes: Vec<String>,
}

impl View {
    fn new(call: &Call<'_>, tables: &Tables) -> View {
        View {
            concrete: call.concrete(),
            children: generic::children(call),
            nodes: generic::node_names(tables),
        }
    }

    fn ctx<'a>(&'a self, call: &'a Call<'_>) -> GenContext<'a> {
        GenContext {
            path: &self.concrete,
            params: call.path_params,
            children: &self.children,
            release: &call.api.meta.release,
            nodes: &self.nodes,
            minimal: false,
        }
    }
}

const MIB: i64 = 1024 * 1024;

/// Generates a value for a schema and overlays known fields.
fn shaped(api: &Api, schema: &Schema, ctx: &GenContext<'_>, fields: Value) -> Value {
    let mut value = generate(api, schema, ctx);
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

/// The item schema of an array schema.
fn items_of(schema: &Schema) -> Option<&Schema> {
    if schema.kind() == SchemaType::Array {
        schema.items.as_deref()
    } else {
        None
    }
}

/// The storages enabled on a node (no `nodes` list: on every node), with their configs.
fn storages_on(tables: &Tables, node: &str) -> Vec<(String, Value)> {
    tables
        .members("/storage")
        .filter_map(|path| {
            let config = tables.get(path)?;
            let on_node = config
                .get("nodes")
                .and_then(Value::as_str)
                .is_none_or(|nodes| split_list(nodes).any(|n| n == node));
            on_node.then(|| (last_segment(path).to_owned(), config))
        })
        .collect()
}

/// A config's `memory` (MiB, or `current=<MiB>,...`) in bytes.
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
pub(crate) fn guest_entry(
    entry: &mut Value,
    tables: &Tables,
    item: &str,
    kind: Kind,
    schema: &Schema,
) {
    let Value::Object(map) = entry else {
        return;
    };
    let props = schema.properties.as_ref();
    let has = |key: &str| props.is_none_or(|p| p.contains_key(key));
    let config = tables
        .get(item)
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let config = &config;
    let status_row = tables.get(&format!("{item}/status/current"));
    let status_row = status_row.as_ref();
    let running = put_power_fields(map, status_row, kind, &has);
    let name = config
        .get(kind.name_key())
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}{}", kind.label(), last_segment(item)));
    if has("name") {
        map.insert("name".to_owned(), json!(name));
    }
    put_size_fields(map, config, running, &has);
    put_usage_fields(map, status_row, running, &has);
    put_config_fields(map, config, kind, schema, &has);
}

/// Sets `status` and (QEMU) `qmpstatus` from the status row; whether the guest runs.
fn put_power_fields(
    map: &mut Map<String, Value>,
    status_row: Option<&Value>,
    kind: Kind,
    has: &dyn Fn(&str) -> bool,
) -> bool {
    let status = status_row
        .and_then(|s| s.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("stopped")
        .to_owned();
    let running = status == "running";
    if has("status") {
        map.insert("status".to_owned(), json!(status));
    }
    if has("qmpstatus") && kind == Kind::Qemu {
        let stored = status_row
            .and_then(|s| s.get("qmpstatus"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        map.insert(
            "qmpstatus".to_owned(),
            json!(stored.unwrap_or_else(|| status.clone())),
        );
    }
    running
}

/// Sets `maxmem`, `mem` (half of it while running) and `cpus` from the config.
fn put_size_fields(
    map: &mut Map<String, Value>,
    config: &Value,
    running: bool,
    has: &dyn Fn(&str) -> bool,
) {
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
}

/// Zeroes the usage counters of a stopped guest; a running guest's `uptime` counts from the
/// start `guests::power` recorded.
fn put_usage_fields(
    map: &mut Map<String, Value>,
    status_row: Option<&Value>,
    running: bool,
    has: &dyn Fn(&str) -> bool,
) {
    if !running {
        for key in ["uptime", "cpu", "netin", "netout", "diskread", "diskwrite"] {
            if map.contains_key(key) {
                map.insert(key.to_owned(), json!(0));
            }
        }
    }
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
}

/// Sets `lock` and `template` from the config, and `type: lxc` for containers where the schema
/// has a free-form `type`.
fn put_config_fields(
    map: &mut Map<String, Value>,
    config: &Value,
    kind: Kind,
    schema: &Schema,
    has: &dyn Fn(&str) -> bool,
) {
    if has("lock") {
        match config.get("lock") {
            Some(lock) => map.insert("lock".to_owned(), lock.clone()),
            None => map.remove("lock"),
        };
    }
    if has("type")
        && kind == Kind::Lxc
        && schema
            .properties
            .as_ref()
            .is_some_and(|p| p.get("type").is_some_and(|t| t.enum_values.is_none()))
    {
        map.insert("type".to_owned(), json!(Kind::Lxc.segment()));
    }
    if has("template") && map.contains_key("template") {
        map.insert(
            "template".to_owned(),
            json!(config.get("template").and_then(Value::as_i64).unwrap_or(0)),
        );
    }
}

/// `GET /version`: kept as JSON text ([`crate::schema::GenCache::text_or_insert`]); the reply
/// depends on the release and on the generation context (the node names) alone, and is not
/// filtered per caller.
pub(crate) fn version(call: &Call<'_>, tx: &Tx<'_>) -> Result<Reply, AppError> {
    generic::exists(call, tx)?;
    let view = View::new(call, tx.tables);
    let ctx = view.ctx(call);
    let text = call
        .api
        .generated
        .text_or_insert(&call.op.returns, &ctx, || {
            shaped(call.api, &call.op.returns, &ctx, version_fields(call.api)).to_string()
        });
    Ok(Reply::Json(JsonText::from_json(text.as_bytes())))
}

/// The inputs of a list view: the call, the rows, the schema of one entry and the view.
struct Listing<'a> {
    call: &'a Call<'a>,
    tables: &'a Tables,
    /// The schema of one entry.
    items: &'a Schema,
    view: View,
}

impl<'a> Listing<'a> {
    /// Fails unless the path exists; `None` when the operation does not return an array (the
    /// caller answers generically).
    fn of(call: &'a Call<'a>, tx: &Tx<'a>) -> Result<Option<Listing<'a>>, AppError> {
        generic::exists(call, tx)?;
        Ok(items_of(&call.op.returns).map(|items| Listing {
            call,
            tables: tx.tables,
            items,
            view: View::new(call, tx.tables),
        }))
    }

    /// The generation context of the view.
    fn ctx(&self) -> GenContext<'_> {
        self.view.ctx(self.call)
    }

    /// One entry: generated for the row at `path`, overlaid with `fields`.
    fn entry_at(&self, path: &str, fields: Value) -> Value {
        let ctx = GenContext { path, ..self.ctx() };
        shaped(self.call.api, self.items, &ctx, fields)
    }
}

/// `GET /cluster/status`: the cluster entry, then one entry per node.
pub(crate) fn cluster_status(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let Some(list) = Listing::of(call, tx)? else {
        return generic::read(call, tx);
    };
    let tables = tx.tables;
    let nodes: Vec<String> = tables.members("/nodes").map(str::to_owned).collect();
    let mut entries = vec![list.entry_at(
        list.ctx().path,
        json!({"type": "cluster", "id": "cluster", "name": cluster_name(tables),
               "nodes": nodes.len(), "quorate": 1, "version": 3}),
    )];
    for (index, node) in nodes.iter().enumerate() {
        let row = tables.get(node).unwrap_or_default();
        let name = last_segment(node);
        entries.push(list.entry_at(
            node,
            json!({"type": "node", "id": format!("node/{name}"), "name": name,
                   "online": u8::from(row.get("status").and_then(Value::as_str) == Some("online")),
                   "local": u8::from(index == 0), "nodeid": index + 1,
                   "ip": row.get("ip").cloned().unwrap_or(json!("192.168.1.11")), "level": ""}),
        ));
    }
    Ok(Value::Array(entries))
}

/// `GET /cluster/resources`: per node its node entry, its guests and its storages (`type`
/// filters), filtered for the caller as it is written ([`ResourceFilter`]).
///
/// The reply is written as JSON text: a stopped guest's row is kept as text between requests
/// ([`resource_guest_row`]) and copied as it is, so the cost of a request is a few bytes
/// copied per guest plus the permission check, not a tree cloned, filtered and serialised.
pub(crate) fn cluster_resources(call: &Call<'_>, tx: &Tx<'_>) -> Result<Reply, AppError> {
    let Some(list) = Listing::of(call, tx)? else {
        return generic::read(call, tx).map(Reply::Value);
    };
    let tables = tx.tables;
    let filter = ResourceFilter::new(tables, tx.access_cache(), call.caller);
    let wanted = call.arg_str("type");
    let mut out = JsonArray::expecting(if wanted.is_none_or(|w| w == "vm") {
        tables.guests.len()
    } else {
        0
    });
    let now = auth::now();
    // Rows are kept per guest path, so the key leaves the path out: one hash per request.
    let key = gen_key_hash(list.items, &list.ctx());
    let pools = super::pools::pool_of_guests(tables);
    for node_path in tables.members("/nodes") {
        let node = last_segment(node_path);
        let online = tables
            .get(node_path)
            .is_some_and(|row| row.get("status").and_then(Value::as_str) == Some("online"));
        if wanted.is_none_or(|w| w == "node") {
            let mut entry = list.entry_at(
                node_path,
                json!({"type": "node", "id": format!("node/{node}"), "node": node,
                       "status": if online { "online" } else { "offline" }, "level": "",
                       "maxdisk": 100 * GIB,
                       "disk": integer_at(&format!("{node_path}/rootfs"), "used") % (100 * GIB)}),
            );
            keep_only(&mut entry, NODE_RESOURCE_FIELDS);
            if filter.entry(&mut entry) {
                out.push_value(&entry);
            }
        }
        if wanted.is_none_or(|w| w == "vm") {
            for kind in [Kind::Qemu, Kind::Lxc] {
                for item in tables.members(&format!("{node_path}/{}", kind.segment())) {
                    let vmid = last_segment(item);
                    let shown = filter.guest(vmid, node);
                    let pool = vmid.parse::<u64>().ok().and_then(|v| pools.get(&v));
                    match (shown, pool) {
                        (GuestShown::Hidden, _) => {}
                        (GuestShown::AsIs, None) => {
                            out.push_row(&resource_guest_row(&list, item, kind, key), now);
                        }
                        (shown, pool) => {
                            let mut entry = resource_guest_value(&list, item, kind).0;
                            if let Value::Object(map) = &mut entry {
                                match pool {
                                    Some(pool) => map.insert("pool".to_owned(), json!(pool)),
                                    None => map.remove("pool"),
                                };
                            }
                            if shown == GuestShown::Unknown {
                                ResourceFilter::mark_unknown(&mut entry);
                            }
                            out.push_value(&entry);
                        }
                    }
                }
            }
        }
        if wanted.is_none_or(|w| w == "storage") {
            for (storage, config) in storages_on(tables, node) {
                let path = format!("{node_path}/storage/{storage}");
                let usage = storage_fields(&path, &config);
                let mut entry = list.entry_at(
                    &path,
                    json!({"type": "storage", "id": format!("storage/{node}/{storage}"), "node": node,
                           "storage": storage, "status": "available",
                           "plugintype": usage["type"], "content": usage["content"],
                           "shared": usage["shared"], "disk": usage["used"],
                           "maxdisk": usage["total"]}),
                );
                keep_only(&mut entry, STORAGE_RESOURCE_FIELDS);
                if filter.entry(&mut entry) {
                    out.push_value(&entry);
                }
            }
        }
    }
    Ok(Reply::Json(out.finish()))
}

/// A JSON array written element by element, into the reply's own buffer ([`JsonText`]).
struct JsonArray {
    out: JsonText,
    /// Whether an element was written.
    started: bool,
    /// Kept rows still expected before the buffer was sized ([`JsonArray::expecting`]).
    rows: usize,
}

impl JsonArray {
    /// An array that will hold about `rows` kept rows: the first one sizes the buffer for all
    /// of them, so a long list is written without the buffer growing (and being copied) a
    /// dozen times: at 10,000 guests, 3 MB copied again and again.
    fn expecting(rows: usize) -> JsonArray {
        JsonArray {
            out: JsonText::with_capacity(256),
            started: false,
            rows,
        }
    }

    fn separate(&mut self) {
        self.out.buf().push(if self.started { b',' } else { b'[' });
        self.started = true;
    }

    /// Appends a kept row as of `now`.
    fn push_row(&mut self, row: &KeptRow, now: u64) {
        self.separate();
        let out = self.out.buf();
        let start = out.len();
        row.write_to(out, now);
        if self.rows > 1 {
            // Rows differ by a name or a number: an eighth more than the first one's length
            // per row covers most lists in one allocation.
            let per_row = (out.len() - start + 1).saturating_mul(9) / 8;
            out.reserve(per_row.saturating_mul(self.rows - 1) + 1);
        }
        self.rows = 0;
    }

    /// Appends JSON text.
    fn push_text(&mut self, text: &str) {
        self.separate();
        self.out.buf().extend_from_slice(text.as_bytes());
    }

    /// Appends a value.
    fn push_value(&mut self, value: &Value) {
        self.separate();
        // Writing a `Value` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(self.out.buf(), value);
    }

    /// The array's text.
    fn finish(mut self) -> JsonText {
        if !self.started {
            self.out.buf().push(b'[');
        }
        self.out.buf().push(b']');
        self.out
    }
}

/// The fields `/cluster/resources` has for a node (pve-manager `PVE::API2Tools::
/// extract_node_stats`); the schema lists the fields of every type in one object.
const NODE_RESOURCE_FIELDS: &[&str] = &[
    "id",
    "type",
    "node",
    "status",
    "cpu",
    "maxcpu",
    "mem",
    "maxmem",
    "disk",
    "maxdisk",
    "uptime",
    "level",
    "cgroup-mode",
];

/// The fields `/cluster/resources` has for a storage (`PVE::API2Tools::extract_storage_stats`).
const STORAGE_RESOURCE_FIELDS: &[&str] = &[
    "id",
    "type",
    "node",
    "storage",
    "status",
    "content",
    "disk",
    "maxdisk",
    "plugintype",
    "shared",
];

/// Drops the generated fields a resource of this type does not have.
fn keep_only(entry: &mut Value, fields: &[&str]) {
    if let Value::Object(map) = entry {
        map.retain(|key, _| fields.contains(&key.as_str()));
    }
}

/// The `/cluster/resources` row of a listed guest outside any pool, as JSON text.
///
/// The row depends on the schema and the view's context (`key`, their hash), the guest's path
/// (the key of the kept rows) and its config and status rows; a change to either row drops
/// the kept one (`Tables::apply`). A running guest's row keeps the place of its `uptime`
/// (counted from the start its status row records, as the guest lists keep theirs); one
/// whose start is not recorded (a seeded running guest) shows the generated uptime, which does
/// not move, and is kept as it is, as the guest lists keep it.
fn resource_guest_row(list: &Listing<'_>, item: &str, kind: Kind, key: u64) -> Arc<KeptRow> {
    if let Some(row) = list.tables.guest_rows.get(item, key) {
        return row;
    }
    let (mut entry, running) = resource_guest_value(list, item, kind);
    if let Value::Object(map) = &mut entry {
        map.remove("pool");
    }
    let row = Arc::new(KeptRow::fixed(entry.to_string()));
    let started = if running {
        list.tables
            .field(&format!("{item}/status/current"), "_started")
            .as_ref()
            .and_then(Value::as_u64)
    } else {
        None
    };
    // A row without a recorded start (stopped, or seeded running) has nothing that moves.
    if started.is_none() {
        list.tables.guest_rows.insert(item, key, Arc::clone(&row));
        return row;
    }
    if let (Some(started), Value::Object(map)) = (started, &mut entry)
        && map.get("uptime").is_some_and(Value::is_u64)
    {
        map.insert("uptime".to_owned(), json!(UPTIME_MARK));
        if let Some(kept) = KeptRow::with_uptime(&entry.to_string(), started) {
            list.tables.guest_rows.insert(item, key, Arc::new(kept));
        }
    }
    row
}

/// The `/cluster/resources` row of one guest (without its pool), and whether it runs.
fn resource_guest_value(list: &Listing<'_>, item: &str, kind: Kind) -> (Value, bool) {
    let (api, tables, items) = (list.call.api, list.tables, list.items);
    let item_ctx = GenContext {
        path: item,
        ..list.ctx()
    };
    let vmid = last_segment(item);
    let node = last_segment(parent(parent(item)));
    let segment = kind.segment();
    let mut entry = shaped(
        api,
        items,
        &item_ctx,
        json!({"type": segment, "id": format!("{segment}/{vmid}"), "node": node,
               "vmid": vmid.parse::<i64>().unwrap_or(0)}),
    );
    guest_entry(&mut entry, tables, item, kind, items);
    if let Value::Object(map) = &mut entry {
        map.insert("type".to_owned(), json!(segment));
    }
    let running = entry.get("status").and_then(Value::as_str) == Some("running")
        || tables
            .field(&format!("{item}/status/current"), "status")
            .as_ref()
            .and_then(Value::as_str)
            == Some("running");
    (entry, running)
}

/// `GET /nodes/{node}/storage`: the storages enabled on the node (`content` filters).
pub(crate) fn node_storage(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let Some(list) = Listing::of(call, tx)? else {
        return generic::read(call, tx);
    };
    let node = call.param("node").unwrap_or_default();
    let content_filter = call.arg_str("content");
    let mut entries = Vec::new();
    for (storage, config) in storages_on(tx.tables, node) {
        let content = config
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("images")
            .to_owned();
        if let Some(filter) = content_filter
            && !split_list(&content).any(|c| c == filter)
        {
            continue;
        }
        let path = format!("/nodes/{node}/storage/{storage}");
        let mut fields = storage_fields(&path, &config);
        fields["storage"] = json!(storage);
        fields["content"] = json!(content);
        entries.push(list.entry_at(&path, fields));
    }
    Ok(Value::Array(entries))
}

/// `GET /nodes/{node}/storage/{storage}/status`: the storage's `type`, `content` and `shared`
/// from its config, and a usage that agrees with the node's storage list (`PVE::API2::Storage::
/// Status::read_status`, which answers `No such storage.` for one not enabled on the node).
pub(crate) fn node_storage_status(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    generic::exists(call, tx)?;
    let node = call.param("node").unwrap_or_default();
    let storage = call.param("storage").unwrap_or_default();
    let Some((_, config)) = storages_on(tx.tables, node)
        .into_iter()
        .find(|(id, _)| id == storage)
    else {
        return Err(AppError::param("storage", "No such storage."));
    };
    let view = View::new(call, tx.tables);
    let path = format!("/nodes/{node}/storage/{storage}");
    Ok(shaped(
        call.api,
        &call.op.returns,
        &view.ctx(call),
        storage_fields(&path, &config),
    ))
}

/// `GET /nodes/{node}/storage/{storage}/identity` (9.2, pve-storage `API2/Storage/Status.pm`):
/// `storage_check_enabled`, then the plugin's `get_identity`, which only the PBS plugin
/// implements (the PBS instance ID; here one derived from the storage ID). Every other plugin
/// dies as `PVE::Storage::Plugin::get_identity` does.
pub(crate) fn storage_identity(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let node = call.param("node").unwrap_or_default();
    let storage = call.param("storage").unwrap_or_default();
    let config = super::storage::storage_config(tx.tables, storage)?;
    if config.get("disable").is_some_and(|d| text(d) == "1") {
        return Err(AppError::die(format!("storage '{storage}' is disabled\n")));
    }
    let on_node = config
        .get("nodes")
        .map(text)
        .is_none_or(|nodes| split_list(&nodes).any(|n| n == node));
    if !on_node {
        return Err(AppError::die(format!(
            "storage '{storage}' is not available on node '{node}'\n"
        )));
    }
    let storage_type = config.get("type").map(text).unwrap_or_default();
    if storage_type != "pbs" {
        return Err(AppError::die(
            "get_identity not implemented for this plugin at /usr/share/perl5/PVE/Storage/Plugin.pm line 2681.\n",
        ));
    }
    let digest = hex::encode(sha2::Sha256::digest(format!("pbs-instance:{storage}")));
    Ok(json!({"type": storage_type, "id": digest}))
}

/// Whether a storage is shared between nodes: its `shared` flag, or a type that always is
/// (pve-storage `Plugin.pm`, `@SHARED_STORAGE`).
fn storage_is_shared(config: &Value) -> bool {
    const SHARED_TYPES: &[&str] = &[
        "iscsi",
        "nfs",
        "cifs",
        "rbd",
        "cephfs",
        "iscsidirect",
        "glusterfs",
        "zfs",
        "drbd",
        "pbs",
    ];
    let flagged = config
        .get("shared")
        .is_some_and(|flag| super::text(flag) == "1");
    let kind = config.get("type").and_then(Value::as_str).unwrap_or("dir");
    flagged || SHARED_TYPES.contains(&kind)
}

/// What a node reports about one of its storages (`PVE::Storage::storage_info`): type, content,
/// sharing from the config, and a usage where `used + avail == total`, seeded by `path`.
fn storage_fields(path: &str, config: &Value) -> Value {
    let total = integer_at(path, "total");
    let used = integer_at(path, "used") % total.max(1);
    json!({
        "type": config.get("type").cloned().unwrap_or(json!("dir")),
        "content": config.get("content").cloned().unwrap_or(json!("images")),
        "shared": u8::from(storage_is_shared(config)),
        "active": 1,
        "enabled": 1,
        "total": total,
        "used": used,
        "avail": total - used,
    })
}

/// `GET /nodes/{node}/status`: what `pvesh get /nodes/{node}/status` shows on a real node,
/// with memory, CPU count and uptime agreeing with the node's `/nodes` entry.
pub(crate) fn node_status(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    generic::exists(call, tx)?;
    let node = call.param("node").unwrap_or_default();
    let node_path = format!("/nodes/{node}");
    let release = &call.api.meta.release;
    let view = View::new(call, tx.tables);
    let returns = &call.op.returns;
    let cpus = integer_at(&node_path, "maxcpu").max(1);
    let total_memory = integer_at(&node_path, "maxmem");
    let used_memory = integer_at(&node_path, "mem") % total_memory.max(1);
    let free_memory = total_memory - used_memory;
    let rootfs_total = 100 * GIB;
    let rootfs_used = integer_at(&format!("{node_path}/rootfs"), "used") % rootfs_total;
    let swap_total = 8 * GIB;
    let swap_used = integer_at(&format!("{node_path}/swap"), "used") % (swap_total / 8);
    let cpu = number_at(&node_path, "cpu");
    let load: Vec<String> = ["1", "5", "15"]
        .iter()
        .map(|minutes| load_average(seed(&[&node_path, "loadavg", minutes])))
        .collect();
    let model = CPU_MODELS[(seed(&[&node_path, "model"]) % CPU_MODELS.len() as u64) as usize];
    let mut value = generate(call.api, returns, &view.ctx(call));
    let Value::Object(map) = &mut value else {
        return Ok(value);
    };
    let has_available = returns
        .properties
        .as_ref()
        .and_then(|p| p.get("memory"))
        .and_then(|memory| memory.properties.as_ref())
        .is_some_and(|p| p.contains_key("available"));
    let mut memory = json!({"total": total_memory, "used": used_memory, "free": free_memory});
    if has_available {
        memory["available"] = json!(free_memory + (total_memory - free_memory) / 4);
    }
    let fields = json!({
        "uptime": integer_at(&node_path, "uptime"),
        "cpu": cpu,
        "wait": (cpu / 20.0 * 1000.0).round() / 1000.0,
        "idle": 0,
        "loadavg": load,
        "cpuinfo": {"cpus": cpus, "cores": cpus, "sockets": 1, "model": model,
                    "mhz": "2400.000", "hvm": "1", "user_hz": 100,
                    "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc nopl xtopology cpuid pni pclmulqdq vmx ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch avx2 bmi1 bmi2 erms invpcid avx512f"},
        "memory": memory,
        "swap": {"total": swap_total, "used": swap_used, "free": swap_total - swap_used},
        "rootfs": {"total": rootfs_total, "used": rootfs_used,
                   "avail": rootfs_total - rootfs_used, "free": rootfs_total - rootfs_used},
        "ksm": {"shared": 0},
        "pveversion": pve_version(release, seed(&[release, "pveversion"])),
        "kversion": kernel_version(release),
        "current-kernel": {"sysname": "Linux", "release": kernel_release(release),
                           "version": kernel_build(release), "machine": "x86_64"},
        "boot-info": {"mode": "efi", "secureboot": 0},
    });
    if let Value::Object(fields) = fields {
        map.extend(fields);
    }
    Ok(value)
}

/// CPU models a node reports, one chosen per node.
const CPU_MODELS: &[&str] = &[
    "Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz",
    "AMD EPYC 7313P 16-Core Processor",
    "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
    "AMD Ryzen 9 7950X3D 16-Core Processor",
];

const GIB: i64 = 1024 * MIB;

/// `GET /nodes/{node}/qemu` and `GET /nodes/{node}/lxc`: the guests the caller may see
/// ([`GuestAudit`]), each entry completed from its config and power state ([`guest_entry`]).
///
/// Entries are kept as JSON text between requests ([`KeptRow`]), dropped by the store whenever
/// the guest's rows change; a running guest's entry keeps the place of its `uptime`, written
/// as of the request.
pub(crate) fn guest_list(call: &Call<'_>, tx: &Tx<'_>) -> Result<Reply, AppError> {
    let Some(kind) = Kind::of_template(call.template()) else {
        return generic::read(call, tx).map(Reply::Value);
    };
    generic::exists(call, tx)?;
    let Some(items) = call.op.returns.items.as_deref() else {
        return Ok(Reply::Value(json!([])));
    };
    let tables = tx.tables;
    let audit = GuestAudit::new(tables, tx.access_cache(), call.caller);
    let nodes = generic::node_names(tables);
    let now = auth::now();
    let collection = call.concrete();
    let mut out = JsonArray::expecting(tables.member_count(&collection));
    let key = generic::list_entry_key(call, items, &nodes);
    for member in tables.members(&collection) {
        if !audit.visible(last_segment(member)) {
            continue;
        }
        let row = match tables.guest_rows.get(member, key) {
            Some(row) => row,
            None => {
                let row = Arc::new(guest_list_row(call, tables, items, member, &nodes, kind));
                tables.guest_rows.insert(member, key, Arc::clone(&row));
                row
            }
        };
        out.push_row(&row, now);
    }
    Ok(Reply::Json(out.finish()))
}

/// `GET /nodes`: the generic list ([`generic::list_entry`] per node), each entry kept as JSON
/// text ([`crate::store::NodeTexts`], dropped by the store when the node's row changes) in
/// every form the permission filter may show it; [`NodeFilter`] picks the form per request
/// and per node, as `filter_reply` decides for a list built as a `Value`. A `/nodes` that is
/// not a list of nodes keyed by name answers generically.
pub(crate) fn node_list(call: &Call<'_>, tx: &Tx<'_>) -> Result<Reply, AppError> {
    let items = call.op.returns.items.as_deref();
    let (Some(items), PathKind::Collection, SchemaType::Array, Some("node")) = (
        items,
        call.node.kind,
        call.op.returns.kind(),
        call.node.id_param.as_deref(),
    ) else {
        return generic::read(call, tx).map(Reply::Value);
    };
    generic::exists(call, tx)?;
    let tables = tx.tables;
    let filter = NodeFilter::new(tables, tx.access_cache(), call.caller);
    let nodes = generic::node_names(tables);
    let key = generic::list_entry_key(call, items, &nodes);
    let mut out = JsonArray::expecting(0);
    for member in tables.members(&call.concrete()) {
        let texts = match tables.node_rows.get(member, key) {
            Some(texts) => texts,
            None => {
                let entry = generic::list_entry(tables, call, items, member, &nodes, &|_, _, _| {});
                let texts = Arc::new(node_texts(entry));
                tables.node_rows.insert(member, key, Arc::clone(&texts));
                texts
            }
        };
        out.push_text(filter.text(&texts));
    }
    Ok(Reply::Json(out.finish()))
}

/// A guest's entry of its node's guest list, as a [`KeptRow`]: a running guest's `uptime` is
/// built as [`UPTIME_MARK`] and becomes the row's moving part.
fn guest_list_row(
    call: &Call<'_>,
    tables: &Tables,
    items: &Schema,
    member: &str,
    nodes: &[String],
    kind: Kind,
) -> KeptRow {
    let started = tables
        .get(&format!("{member}/status/current"))
        .filter(|row| row.get("status").and_then(Value::as_str) == Some("running"))
        .and_then(|row| row.get("_started").and_then(Value::as_u64));
    let entry = generic::list_entry(
        tables,
        call,
        items,
        member,
        nodes,
        &|entry, item, schema| {
            guest_entry(entry, tables, item, kind, schema);
            if let (Some(_), Value::Object(map)) = (started, entry)
                && map.get("uptime").is_some_and(Value::is_u64)
            {
                map.insert("uptime".to_owned(), json!(UPTIME_MARK));
            }
        },
    );
    let text = entry.to_string();
    started
        .and_then(|started| KeptRow::with_uptime(&text, started))
        .unwrap_or_else(|| KeptRow::fixed(text))
}

/// `GET .../{vmid}/status/current`: generated, overlaid with the status row and the config.
pub(crate) fn guest_status(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Value, AppError> {
    generic::exists(call, tx)?;
    let tables = tx.tables;
    let view = View::new(call, tables);
    let ctx = view.ctx(call);
    let returns = &call.op.returns;
    let mut value = generate(call.api, returns, &ctx);
    let has = |key: &str| {
        returns
            .properties
            .as_ref()
            .is_some_and(|p| p.contains_key(key))
    };
    if let Some(Value::Object(stored)) = tables.get(&view.concrete)
        && let Value::Object(map) = &mut value
    {
        for (key, field) in stored {
            if has(&key) {
                map.insert(key, field);
            }
        }
    }
    guest_entry(&mut value, tables, &guest.item, guest.kind, returns);
    if let Value::Object(map) = &mut value
        && has("vmid")
    {
        map.insert("vmid".to_owned(), json!(guest.vmid));
    }
    Ok(value)
}

/// Fails as Proxmox does for a node name that does not resolve.
fn check_node(tables: &Tables, node: &str) -> Result<(), AppError> {
    if tables.exists(&format!("/nodes/{node}")) {
        Ok(())
    } else {
        Err(AppError::die(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known\n"
        )))
    }
}

/// `GET /nodes/{node}/network`: the node's physical NIC, its bridge `vmbr0` (with the node's
/// address) and any interfaces stored below the path; `type` filters.
pub(crate) fn network(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let node = call.param("node").unwrap_or_default();
    check_node(tables, node)?;
    let ip = tables
        .field(&format!("/nodes/{node}"), "ip")
        .as_ref()
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
    if let Some(wanted) = call.arg_text("type") {
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
pub(crate) fn node_version(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    check_node(tx.tables, call.param("node").unwrap_or_default())?;
    Ok(version_fields(call.api))
}
