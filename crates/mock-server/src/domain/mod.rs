//! Proxmox semantics for the domains clients actually drive, beside the generic engine.
//!
//! The generic engine ([`crate::engine`]) answers every operation from the route metadata's
//! topology. The modules here take over the operations whose effects clients depend on, and
//! answer everything else with `None` so the engine stays the fallback:
//!
//! - [`guests`]: QEMU and LXC create (ID reserved at request time), config with Proxmox's digest,
//!   `delete`, locks, `pending`, the power state machine, destroy, clone, template, migrate,
//!   `/cluster/nextid`.
//! - [`disks`]: volume allocation for `scsi0=local-lvm:8`-style disks, generated MAC addresses,
//!   `resize`, `move_disk`/`move_volume`.
//! - [`snapshots`]: create, list (with `current`), config, rollback, delete.
//! - [`agent`]: the QEMU guest agent endpoints.
//! - [`storage`]: storage content (list, allocate, upload, update, delete), pools, `vzdump`.
//! - [`tasks`]: task lists with Proxmox's filters, `/cluster/tasks`, node network and version.
//!
//! Every handler reads one consistent snapshot of the tables and returns a [`DomainPlan`]: the
//! complete change list, computed before anything is written, so a failing request changes
//! nothing. A check that Proxmox makes inside the worker (after the UPID was returned) fails the
//! task instead of the request ([`fail`]), exactly as a real client would see it.
//!
//! Guest configs are the guest's item row (`/nodes/{node}/qemu/{vmid}`); its power state lives
//! in `status/current`, its snapshots are rows below `snapshot/`. Volumes are rows below
//! `/nodes/{node}/storage/{storage}/content/` (see [`storage::content_collection`]). The store
//! keeps an index of guest IDs ([`crate::store::Tables::guests`]), so ID look-ups and `nextid` cost
//! no scan.

pub mod agent;
pub mod disks;
pub mod guests;
pub mod snapshots;
pub mod storage;
pub mod tasks;

use route_metadata::Method;
use serde_json::{Map, Value, json};
use sha1::Digest as _;

use crate::api::fill_template;
use crate::app::AppState;
use crate::engine::{Call, DomainPlan};
use crate::error::AppError;
use crate::store::Tables;

/// A computed reply for a GET handled by a domain module.
pub fn read(state: &AppState, tables: &Tables, call: &Call<'_>) -> Result<Option<Value>, AppError> {
    let template = call.node.path.as_str();
    match template {
        "/cluster/nextid" => return guests::nextid(tables, call).map(Some),
        "/cluster/tasks" => return Ok(Some(tasks::cluster_tasks(tables, call))),
        "/nodes/{node}/tasks" => return tasks::node_tasks(state, tables, call).map(Some),
        "/nodes/{node}/network" => return tasks::network(state, tables, call).map(Some),
        "/nodes/{node}/version" => return tasks::node_version(state, tables, call).map(Some),
        "/nodes/{node}/storage/{storage}/content" => {
            return storage::list_content(state, tables, call).map(Some);
        }
        "/nodes/{node}/storage/{storage}/content/{volume}" => {
            return storage::volume_info(state, tables, call).map(Some);
        }
        "/pools" => return storage::list_pools(tables, call).map(Some),
        "/pools/{poolid}" => return storage::get_pool(tables, call).map(Some),
        _ => {}
    }
    let Some((guest, rest)) = Guest::from_call(call) else {
        return Ok(None);
    };
    match rest {
        "/config" => guests::get_config(state, tables, call, &guest).map(Some),
        "/pending" => guests::pending(state, tables, call, &guest).map(Some),
        "/snapshot" => snapshots::list(state, tables, call, &guest).map(Some),
        "/snapshot/{snapname}/config" => {
            snapshots::get_config(state, tables, call, &guest).map(Some)
        }
        _ if rest.starts_with("/agent/") => agent::read(state, tables, call, &guest, rest),
        _ => Ok(None),
    }
}

/// A planned write handled by a domain module.
pub fn write(
    state: &AppState,
    tables: &Tables,
    call: &Call<'_>,
) -> Result<Option<DomainPlan>, AppError> {
    let template = call.node.path.as_str();
    let method = call.op.method;
    match (method, template) {
        (Method::Post, "/nodes/{node}/qemu") => {
            return guests::create(state, tables, call, Kind::Qemu).map(Some);
        }
        (Method::Post, "/nodes/{node}/lxc") => {
            return guests::create(state, tables, call, Kind::Lxc).map(Some);
        }
        (Method::Post, "/nodes/{node}/vzdump") => {
            return storage::vzdump(state, tables, call).map(Some);
        }
        (Method::Post, "/nodes/{node}/storage/{storage}/upload") => {
            return storage::upload(state, tables, call).map(Some);
        }
        (Method::Post, "/nodes/{node}/storage/{storage}/content") => {
            return storage::allocate(state, tables, call).map(Some);
        }
        (_, "/nodes/{node}/storage/{storage}/content/{volume}") => {
            return storage::volume_write(state, tables, call).map(Some);
        }
        (Method::Put, "/pools") | (Method::Put, "/pools/{poolid}") => {
            return storage::update_pool(tables, call).map(Some);
        }
        (Method::Delete, "/pools") | (Method::Delete, "/pools/{poolid}") => {
            return storage::delete_pool(tables, call).map(Some);
        }
        _ => {}
    }
    let Some((guest, rest)) = Guest::from_call(call) else {
        return Ok(None);
    };
    let plan = match (method, rest) {
        (Method::Delete, "") => guests::destroy(state, tables, call, &guest)?,
        (Method::Put | Method::Post, "/config") => {
            guests::update_config(state, tables, call, &guest)?
        }
        (Method::Post, "/clone") => guests::clone(state, tables, call, &guest)?,
        (Method::Post, "/template") => guests::template(state, tables, call, &guest)?,
        (Method::Post, "/migrate") => guests::migrate(state, tables, call, &guest)?,
        (Method::Put, "/resize") => disks::resize(state, tables, call, &guest)?,
        (Method::Post, "/move_disk" | "/move_volume") => {
            disks::move_disk(state, tables, call, &guest)?
        }
        (Method::Post, "/snapshot") => snapshots::create(state, tables, call, &guest)?,
        (Method::Delete, "/snapshot/{snapname}") => snapshots::delete(state, tables, call, &guest)?,
        (Method::Put, "/snapshot/{snapname}/config") => {
            snapshots::update(state, tables, call, &guest)?
        }
        (Method::Post, "/snapshot/{snapname}/rollback") => {
            snapshots::rollback(state, tables, call, &guest)?
        }
        (Method::Post, _) if rest.starts_with("/status/") => {
            guests::power(state, tables, call, &guest, &rest["/status/".len()..])?
        }
        (Method::Post, _) if rest.starts_with("/agent") => {
            return agent::write(state, tables, call, &guest, rest);
        }
        _ => return Ok(None),
    };
    Ok(Some(plan))
}

// ----------------------------------------------------------------------------------------------
// Guests.

/// QEMU VM or LXC container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A QEMU virtual machine.
    Qemu,
    /// An LXC container.
    Lxc,
}

impl Kind {
    /// The path segment (`qemu`, `lxc`), also the resource type.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu",
            Kind::Lxc => "lxc",
        }
    }

    /// `VM` or `CT`, as `guest_type()` in `PVE::QemuConfig` / `PVE::LXC::Config`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Qemu => "VM",
            Kind::Lxc => "CT",
        }
    }

    /// The directory of the config files in `/etc/pve/nodes/{node}/`.
    pub fn conf_dir(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu-server",
            Kind::Lxc => "lxc",
        }
    }

    /// The kind of an item path's segment.
    pub fn parse(segment: &str) -> Option<Kind> {
        match segment {
            "qemu" => Some(Kind::Qemu),
            "lxc" => Some(Kind::Lxc),
            _ => None,
        }
    }
}

/// One guest, addressed by node and VM ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// QEMU or LXC.
    pub kind: Kind,
    /// Node the guest lives on.
    pub node: String,
    /// VM ID.
    pub vmid: u32,
    /// Item path (`/nodes/{node}/qemu/{vmid}`), the row holding the config.
    pub item: String,
}

impl Guest {
    /// A guest at a place.
    pub fn at(kind: Kind, node: &str, vmid: u32) -> Guest {
        Guest {
            kind,
            node: node.to_owned(),
            vmid,
            item: format!("/nodes/{node}/{}/{vmid}", kind.segment()),
        }
    }

    /// The guest a call addresses and the rest of its template after `{vmid}`.
    fn from_call<'c>(call: &'c Call<'_>) -> Option<(Guest, &'c str)> {
        let template = call.node.path.as_str();
        let (kind, rest) = if let Some(rest) = template.strip_prefix("/nodes/{node}/qemu/{vmid}") {
            (Kind::Qemu, rest)
        } else {
            (
                Kind::Lxc,
                template.strip_prefix("/nodes/{node}/lxc/{vmid}")?,
            )
        };
        let node = param(call, "node")?;
        let vmid = param(call, "vmid")?.parse().ok()?;
        Some((Guest::at(kind, node, vmid), rest))
    }

    /// The guest whose item path this is.
    pub fn from_item(item: &str) -> Option<Guest> {
        let mut segments = item.strip_prefix("/nodes/")?.split('/');
        let (node, kind, vmid) = (segments.next()?, segments.next()?, segments.next()?);
        Some(Guest::at(Kind::parse(kind)?, node, vmid.parse().ok()?))
    }

    /// Path of the power-state row.
    pub fn status_path(&self) -> String {
        format!("{}/status/current", self.item)
    }

    /// Collection of the guest's snapshots.
    pub fn snapshot_collection(&self) -> String {
        format!("{}/snapshot", self.item)
    }

    /// Proxmox's message for a guest whose config does not exist.
    pub fn not_found(&self) -> AppError {
        AppError::die(format!(
            "Configuration file 'nodes/{}/{}/{}.conf' does not exist\n",
            self.node,
            self.kind.conf_dir(),
            self.vmid
        ))
    }

    /// The config (the item row without hidden keys); fails like Proxmox when missing.
    pub fn config(&self, tables: &Tables) -> Result<Map<String, Value>, AppError> {
        let Some(Value::Object(row)) = tables.get(&self.item) else {
            return Err(self.not_found());
        };
        Ok(visible(row))
    }

    /// The power state.
    pub fn power(&self, tables: &Tables) -> Power {
        let status = tables.get(&self.status_path());
        let field = |key: &str| status.and_then(|s| s.get(key)).and_then(Value::as_str);
        match (field("status"), field("qmpstatus")) {
            (Some("running"), Some("paused")) => Power::Paused,
            (Some("running"), _) => Power::Running,
            _ => Power::Stopped,
        }
    }

    /// Snapshot name -> snapshot config, sorted by name.
    pub fn snapshots<'t>(&self, tables: &'t Tables) -> Vec<(String, &'t Value)> {
        tables
            .members(&self.snapshot_collection())
            .filter_map(|path| {
                let name = crate::api::last_segment(path).to_owned();
                tables.get(path).map(|value| (name, value))
            })
            .collect()
    }
}

/// Power state of a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// Not running.
    Stopped,
    /// Running.
    Running,
    /// Running but paused (`qmpstatus: paused`).
    Paused,
}

impl Power {
    /// Running or paused: the process exists.
    pub fn is_running(self) -> bool {
        self != Power::Stopped
    }
}

/// The row of a `status/current` for a power state.
pub fn status_row(power: Power, started: u64) -> Value {
    match power {
        Power::Stopped => json!({"status": "stopped", "qmpstatus": "stopped"}),
        Power::Running => json!({"status": "running", "qmpstatus": "running", "_started": started}),
        Power::Paused => json!({"status": "running", "qmpstatus": "paused", "_started": started}),
    }
}

/// `check_lock` of `PVE::AbstractConfig` (pve-guest-common `src/PVE/AbstractConfig.pm`):
/// `VM is locked (backup)`, unless `skiplock` is given.
pub fn check_lock(kind: Kind, config: &Map<String, Value>, call: &Call<'_>) -> Result<(), String> {
    if arg_bool(call, "skiplock") {
        return Ok(());
    }
    match config.get("lock").map(text) {
        Some(lock) if !lock.is_empty() => Err(format!("{} is locked ({lock})\n", kind.label())),
        _ => Ok(()),
    }
}

/// A failure Proxmox raises inside the worker: the request still answers a UPID and the task
/// ends with the message as its exit status. Synchronous calls fail with HTTP 500.
pub fn fail(call: &Call<'_>, message: impl Into<String>) -> Result<DomainPlan, AppError> {
    let message = message.into();
    if call.op.worker_task {
        Ok(DomainPlan {
            task_error: Some(message.trim_end().to_owned()),
            ..DomainPlan::default()
        })
    } else {
        Err(AppError::die(message))
    }
}

/// The config file as Proxmox writes it (`write_vm_config` in qemu-server
/// `PVE/QemuServer.pm`, `write_pct_config` in pve-container `src/PVE/LXC/Config.pm`): the
/// description as `#` comment lines, the other keys sorted as `key: value`, then one
/// `[snapname]` section per snapshot.
pub fn raw_config(config: &Map<String, Value>, snapshots: &[(String, &Value)]) -> String {
    fn section(raw: &mut String, config: &Map<String, Value>) {
        if let Some(description) = config.get("description").map(text) {
            for line in description.split('\n') {
                raw.push('#');
                raw.push_str(line);
                raw.push('\n');
            }
        }
        let mut keys: Vec<&String> = config
            .keys()
            .filter(|key| {
                !key.starts_with('_')
                    && !matches!(
                        key.as_str(),
                        "digest" | "description" | "pending" | "snapshots"
                    )
            })
            .collect();
        keys.sort();
        for key in keys {
            raw.push_str(key);
            raw.push_str(": ");
            raw.push_str(&text(&config[key]));
            raw.push('\n');
        }
    }
    let mut raw = String::with_capacity(512);
    section(&mut raw, config);
    for (name, snapshot) in snapshots {
        raw.push_str("\n[");
        raw.push_str(name);
        raw.push_str("]\n");
        if let Value::Object(snapshot) = snapshot {
            section(&mut raw, snapshot);
        }
    }
    raw
}

/// The config digest: SHA-1 (hex) of the raw config file, as `parse_vm_config` computes it.
pub fn config_digest(config: &Map<String, Value>, snapshots: &[(String, &Value)]) -> String {
    let raw = raw_config(config, snapshots);
    hex::encode(sha1::Sha1::digest(raw.as_bytes()))
}

/// `assert_if_modified` (pve-common `PVE::Tools`): a given, different digest is rejected.
pub fn check_digest(call: &Call<'_>, current: &str) -> Result<(), String> {
    match call.args.get("digest").and_then(Value::as_str) {
        Some(expected) if !expected.is_empty() && expected != current => Err(
            "detected modified configuration - file changed by other user? Try again.\n".to_owned(),
        ),
        _ => Ok(()),
    }
}

// ----------------------------------------------------------------------------------------------
// Small helpers.

/// A path parameter.
pub fn param<'c>(call: &'c Call<'_>, name: &str) -> Option<&'c str> {
    call.path_params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// An argument as text (numbers and booleans printed), if given.
pub fn arg_text(call: &Call<'_>, name: &str) -> Option<String> {
    call.args.get(name).map(text)
}

/// An argument as a boolean (`1`, `true`).
pub fn arg_bool(call: &Call<'_>, name: &str) -> bool {
    match call.args.get(name) {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number.as_i64().is_some_and(|n| n != 0),
        Some(Value::String(text)) => matches!(text.as_str(), "1" | "true" | "yes" | "on"),
        _ => false,
    }
}

/// A JSON value as Proxmox prints it in a config file.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(flag) => u8::from(*flag).to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A row without its hidden (`_`-prefixed) keys.
pub fn visible(row: &Map<String, Value>) -> Map<String, Value> {
    row.iter()
        .filter(|(key, _)| !key.starts_with('_'))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The concrete path of a call.
pub fn concrete(call: &Call<'_>) -> String {
    fill_template(&call.node.path, call.path_params)
}

/// Whether a node exists (`/nodes/{node}`).
pub fn node_exists(tables: &Tables, node: &str) -> bool {
    tables.exists(&format!("/nodes/{node}"))
}
