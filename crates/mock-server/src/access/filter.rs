//! Lists that show only what the caller may see, and checks that Proxmox makes inside handlers
//! whose metadata says only `user: "all"`.
//!
//! - `GET /cluster/resources` (pve-manager `PVE/API2/Cluster.pm`, `resources`): guests need
//!   `VM.Audit` on `/vms/{vmid}`, storages `Datastore.Audit` on `/storage/{storage}`, pools
//!   `Pool.Audit` on `/pool/{pool}`; nodes are always listed, but without their statistics unless
//!   the caller has `Sys.Audit` on `/nodes/{node}` (`extract_node_stats(..., !$can_audit)`).
//! - `GET /nodes`: the same rule for nodes (`PVE/API2/Nodes.pm`, `index`).
//! - `GET /nodes/{node}/qemu` and `/lxc`: guests with `VM.Audit` (`vmlist`).
//! - `GET /storage`, `GET /nodes/{node}/storage`: `Datastore.Audit` or `Datastore.AllocateSpace`.
//! - `GET /pools`: `Pool.Audit`.
//! - `GET /cluster/replication`: jobs of guests with `VM.Audit`.
//! - Task lists: without `Sys.Audit` on the node (`/` for `/cluster/tasks`) only the caller's own
//!   tasks; a task's status and log need `Sys.Audit` on the node unless the caller owns it.
//!
//! Nodes that are offline (see [`crate::simulation`]) are listed without statistics and their
//! guests and storages with status `unknown`, as when pmxcfs has no fresh RRD data for them.

use std::collections::HashSet;

use serde_json::Value;

use super::check::perm_error;
use super::model::{AccessModel, ROOT};
use super::rpcenv::owns_task;
use super::{AccessCache, Caller};
use crate::api::last_segment;
use crate::error::AppError;
use crate::store::{NodeTexts, Tables};

/// Keys a node entry keeps when its statistics are withheld.
const NODE_KEYS: &[&str] = &[
    "id",
    "node",
    "type",
    "status",
    "ssl_fingerprint",
    "cgroup-mode",
];

/// The caller whose reply is filtered; `model` is `None` for `root@pam`, who sees everything.
struct Viewer<'a> {
    model: Option<&'a AccessModel>,
    subject: &'a str,
}

impl Viewer<'_> {
    /// Whether the caller has any of the named privileges on a path.
    fn any(&self, path: &str, names: &[&str]) -> bool {
        let Some(model) = self.model else {
            return true;
        };
        model.has_any_privilege(self.subject, path, names)
    }

    /// Whether the caller owns a task started by `user` ([`owns_task`]).
    fn owns_task(&self, user: &str) -> bool {
        owns_task(self.subject, user)
    }
}

/// The nodes whose status is not `online`.
fn offline_nodes(tables: &Tables) -> HashSet<String> {
    tables
        .members("/nodes")
        .filter(|path| {
            tables
                .field(path, "status")
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|status| status != "online")
        })
        .map(|path| last_segment(path).to_owned())
        .collect()
}

fn set_status(entry: &mut Value, status: &str) {
    if let Value::Object(map) = entry {
        map.insert("status".to_owned(), Value::from(status));
    }
}

fn strip_node_stats(entry: &mut Value) {
    if let Value::Object(map) = entry {
        map.retain(|key, _| NODE_KEYS.contains(&key.as_str()));
    }
}

fn text(entry: &Value, key: &str) -> String {
    match entry.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    }
}

/// Whether a reply of this path template is filtered (or refused) for the caller.
fn is_filtered(template: &str) -> bool {
    matches!(
        template,
        "/cluster/resources"
            | "/nodes"
            | "/nodes/{node}/qemu"
            | "/nodes/{node}/lxc"
            | "/storage"
            | "/nodes/{node}/storage"
            | "/pools"
            | "/nodes/{node}/tasks"
            | "/cluster/tasks"
            | "/nodes/{node}/tasks/{upid}/status"
            | "/nodes/{node}/tasks/{upid}/log"
            | "/cluster/replication"
    )
}

/// Filters (or refuses) a GET reply for the caller.
pub(crate) fn filter_reply(
    tables: &Tables,
    access: &AccessCache,
    caller: &Caller,
    template: &str,
    path_params: &[(String, String)],
    value: Value,
) -> Result<Value, AppError> {
    if !is_filtered(template) {
        return Ok(value);
    }
    let model = (caller.userid != ROOT).then(|| access.model(tables));
    let viewer = Viewer {
        model: model.as_deref(),
        subject: &caller.userid,
    };
    let node_param = crate::api::path_param(path_params, "node").unwrap_or_default();
    if matches!(
        template,
        "/nodes/{node}/tasks/{upid}/status" | "/nodes/{node}/tasks/{upid}/log"
    ) {
        let upid = crate::api::path_param(path_params, "upid").unwrap_or_default();
        check_task_access(&viewer, node_param, upid)?;
        return Ok(value);
    }
    let Value::Array(entries) = value else {
        return Ok(value);
    };
    let offline = offline_nodes(tables);
    let mut kept = Vec::with_capacity(entries.len());
    for mut entry in entries {
        let keep = match template {
            "/cluster/resources" => keep_resource(&viewer, &offline, &mut entry),
            "/nodes" => keep_node(&viewer, &offline, &mut entry),
            "/nodes/{node}/qemu" | "/nodes/{node}/lxc" => {
                viewer.any(&format!("/vms/{}", text(&entry, "vmid")), &["VM.Audit"])
            }
            "/storage" | "/nodes/{node}/storage" => viewer.any(
                &format!("/storage/{}", text(&entry, "storage")),
                &["Datastore.Audit", "Datastore.AllocateSpace"],
            ),
            "/pools" => viewer.any(
                &format!("/pool/{}", text(&entry, "poolid")),
                &["Pool.Audit"],
            ),
            "/nodes/{node}/tasks" => {
                viewer.owns_task(&text(&entry, "user"))
                    || viewer.any(&format!("/nodes/{node_param}"), &["Sys.Audit"])
            }
            "/cluster/replication" => {
                // `guest` is the job ID's first part (`<vmid>-<jobnum>`).
                let id = text(&entry, "id");
                let guest = id.split('-').next().unwrap_or_default();
                viewer.any(&format!("/vms/{guest}"), &["VM.Audit"])
            }
            "/cluster/tasks" => {
                viewer.owns_task(&text(&entry, "user")) || viewer.any("/", &["Sys.Audit"])
            }
            _ => true,
        };
        if keep {
            kept.push(entry);
        }
    }
    Ok(Value::Array(kept))
}

/// Whether the caller may see a guest (`VM.Audit` on `/vms/{vmid}`), decided per guest by
/// handlers that write a guest list as JSON text themselves (`GET /nodes/{node}/qemu|lxc`, and
/// the guests of [`ResourceFilter`]): the rule [`filter_reply`] applies to those lists.
pub(crate) struct GuestAudit<'a> {
    model: Option<std::sync::Arc<AccessModel>>,
    subject: &'a str,
}

impl<'a> GuestAudit<'a> {
    /// The check for the caller, on these tables (no access model for `root@pam`).
    pub(crate) fn new(tables: &Tables, access: &AccessCache, caller: &'a Caller) -> Self {
        GuestAudit {
            model: (caller.userid != ROOT).then(|| access.model(tables)),
            subject: &caller.userid,
        }
    }

    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            model: self.model.as_deref(),
            subject: self.subject,
        }
    }

    /// Whether the guest `vmid` is listed.
    pub(crate) fn visible(&self, vmid: &str) -> bool {
        self.model.is_none() || self.viewer().any(&format!("/vms/{vmid}"), &["VM.Audit"])
    }
}

/// The filter of one `GET /cluster/resources` reply, for a handler that writes the reply as
/// JSON text itself (`crate::ops::nodes::cluster_resources`): the rules of [`filter_reply`],
/// decided per entry before it is written, so a guest row kept as text is neither parsed nor
/// copied into a `Value` to be filtered.
pub(crate) struct ResourceFilter<'a> {
    guests: GuestAudit<'a>,
    offline: HashSet<String>,
}

/// How a guest is shown in `GET /cluster/resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuestShown {
    /// Not listed (no `VM.Audit`).
    Hidden,
    /// Listed as it is.
    AsIs,
    /// Listed with status `unknown` (its node is offline).
    Unknown,
}

impl<'a> ResourceFilter<'a> {
    /// The filter for the caller, on these tables.
    pub(crate) fn new(tables: &Tables, access: &AccessCache, caller: &'a Caller) -> Self {
        ResourceFilter {
            guests: GuestAudit::new(tables, access, caller),
            offline: offline_nodes(tables),
        }
    }

    /// Whether and how the guest `vmid` on `node` is listed.
    pub(crate) fn guest(&self, vmid: &str, node: &str) -> GuestShown {
        if !self.guests.visible(vmid) {
            GuestShown::Hidden
        } else if self.offline.contains(node) {
            GuestShown::Unknown
        } else {
            GuestShown::AsIs
        }
    }

    /// Whether an entry other than a kept guest row is listed, adjusted as [`filter_reply`]
    /// adjusts it.
    pub(crate) fn entry(&self, entry: &mut Value) -> bool {
        keep_resource(&self.guests.viewer(), &self.offline, entry)
    }

    /// Marks a guest entry that [`ResourceFilter::guest`] found [`GuestShown::Unknown`].
    pub(crate) fn mark_unknown(entry: &mut Value) {
        set_status(entry, "unknown");
    }
}

/// The filter of one `GET /nodes` reply, for a handler that writes the reply as JSON text
/// itself (`crate::ops::nodes::node_list`): the rule of [`filter_reply`] for `/nodes`
/// ([`keep_node`]), decided per node before its kept entry ([`NodeTexts`]) is written.
pub(crate) struct NodeFilter<'a> {
    guests: GuestAudit<'a>,
    offline: HashSet<String>,
}

impl<'a> NodeFilter<'a> {
    /// The filter for the caller, on these tables.
    pub(crate) fn new(tables: &Tables, access: &AccessCache, caller: &'a Caller) -> Self {
        NodeFilter {
            guests: GuestAudit::new(tables, access, caller),
            offline: offline_nodes(tables),
        }
    }

    /// The form of a node's entry the caller sees: offline nodes are marked so and, like
    /// nodes the caller lacks `Sys.Audit` on, lose their statistics.
    pub(crate) fn text<'t>(&self, texts: &'t NodeTexts) -> &'t str {
        if self.offline.contains(&texts.node) {
            &texts.offline
        } else if self
            .guests
            .viewer()
            .any(&format!("/nodes/{}", texts.node), &["Sys.Audit"])
        {
            &texts.full
        } else {
            &texts.stripped
        }
    }
}

/// A computed `GET /nodes` entry in each form [`NodeFilter::text`] picks from, made by the
/// same steps as [`keep_node`].
pub(crate) fn node_texts(entry: Value) -> NodeTexts {
    let mut stripped = entry.clone();
    strip_node_stats(&mut stripped);
    let mut offline = entry.clone();
    set_status(&mut offline, "offline");
    strip_node_stats(&mut offline);
    NodeTexts {
        node: text(&entry, "node"),
        full: entry.to_string(),
        stripped: stripped.to_string(),
        offline: offline.to_string(),
    }
}

/// A task's status and log: the caller owns the task (the UPID's eighth field) or has
/// `Sys.Audit` on its node.
fn check_task_access(viewer: &Viewer<'_>, node: &str, upid: &str) -> Result<(), AppError> {
    let owner = upid.split(':').nth(7).unwrap_or_default();
    if !viewer.owns_task(owner) && !viewer.any(&format!("/nodes/{node}"), &["Sys.Audit"]) {
        return Err(perm_error(None));
    }
    Ok(())
}

/// One entry of `GET /cluster/resources`: whether it is listed, and its status or statistics
/// adjusted for offline nodes and missing `Sys.Audit`.
fn keep_resource(viewer: &Viewer<'_>, offline: &HashSet<String>, entry: &mut Value) -> bool {
    match text(entry, "type").as_str() {
        "qemu" | "lxc" => {
            let visible = viewer.any(&format!("/vms/{}", text(entry, "vmid")), &["VM.Audit"]);
            keep_on_node(visible, offline, entry)
        }
        "node" => keep_node(viewer, offline, entry),
        "storage" => {
            let visible = viewer.any(
                &format!("/storage/{}", text(entry, "storage")),
                &["Datastore.Audit"],
            );
            keep_on_node(visible, offline, entry)
        }
        "pool" => viewer.any(&format!("/pool/{}", text(entry, "pool")), &["Pool.Audit"]),
        "sdn" => viewer.any("/sdn", &["SDN.Audit"]),
        _ => true,
    }
}

/// A guest or storage entry of `GET /cluster/resources`: listed if `visible`, with status
/// `unknown` when its node is offline.
fn keep_on_node(visible: bool, offline: &HashSet<String>, entry: &mut Value) -> bool {
    if visible && offline.contains(&text(entry, "node")) {
        set_status(entry, "unknown");
    }
    visible
}

/// A node entry (`GET /nodes`, `/cluster/resources`): always listed; offline nodes are marked
/// so and, like nodes the caller lacks `Sys.Audit` on, lose their statistics.
fn keep_node(viewer: &Viewer<'_>, offline: &HashSet<String>, entry: &mut Value) -> bool {
    let node = text(entry, "node");
    if offline.contains(&node) {
        set_status(entry, "offline");
        strip_node_stats(entry);
    } else if !viewer.any(&format!("/nodes/{node}"), &["Sys.Audit"]) {
        strip_node_stats(entry);
    }
    true
}
