//! The in-memory tables: objects by concrete path, collection members, tombstones, metadata, and
//! the indexes and caches kept beside them ([`Tables::guests`], [`Tables::guest_rows`],
//! [`Tables::access_rev`]). Every change goes through [`Tables::apply`], so the indexes can never
//! disagree with the rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

/// One change to the state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// Insert or replace an object; `collection` names the collection it is a member of.
    Put {
        /// Concrete path.
        path: String,
        /// Concrete collection path, for members.
        collection: Option<String>,
        /// The object.
        value: Value,
    },
    /// Delete an object and everything below it; a member leaves a tombstone.
    Delete {
        /// Concrete path.
        path: String,
    },
    /// Delete an object and everything below it without a tombstone: history that is pruned
    /// (old task records), not something a client deleted.
    Forget {
        /// Concrete path.
        path: String,
    },
    /// Set a metadata value.
    Meta {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
}

/// The in-memory tables.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tables {
    /// Objects by concrete path (ordered, so a subtree is one range).
    pub(crate) objects: BTreeMap<String, Value>,
    /// For each member: its collection.
    pub(crate) member_of: HashMap<String, String>,
    /// Collection -> member paths.
    pub(crate) members: BTreeMap<String, BTreeSet<String>>,
    /// Deleted members -> their collection.
    pub(crate) tombstones: BTreeMap<String, String>,
    /// Metadata.
    pub(crate) meta: BTreeMap<String, String>,
    /// Guest index: VM ID -> item path (`/nodes/{node}/qemu|lxc/{vmid}`), kept by [`Tables::apply`]
    /// so that ID look-ups and `/cluster/nextid` need no scan over nodes or guests.
    pub(crate) guests: BTreeMap<u32, String>,
    /// Computed guest rows of `/cluster/resources`, by item path; an entry is dropped by
    /// [`Tables::apply`] whenever a change touches the guest (its config, status or anything
    /// under it), so it never outlives the rows it was computed from.
    pub(crate) guest_rows: GuestRows,
    /// Computed entries of `GET /nodes`, by node path; an entry is dropped by [`Tables::apply`]
    /// whenever the node's row changes (or a subtree holding it is deleted).
    pub(crate) node_rows: NodeRows,
    /// Moves on every change that can change what the access model reads (users, groups,
    /// tokens, roles, the ACL, pools) and on every reset, so caches of verified credentials and
    /// of the access model built from older rows are never used.
    pub(crate) access_rev: u64,
}

/// Whether a change at `path` can change what [`crate::access::AccessModel`] reads.
fn touches_access(path: &str) -> bool {
    path.starts_with("/access") || path.starts_with("/pools") || path.starts_with("/_mock/acl")
}

/// Cached computed guest rows (see [`Tables::guest_rows`]): item path -> the rows kept for it,
/// each under the key of everything else it depends on (a guest has one row per view that lists
/// it: `/cluster/resources`, its node's guest list). A clone of [`Tables`] starts with an empty
/// cache. Rows are kept as JSON text, not as `Value` trees: a reply copies the bytes, with no
/// clone of a tree, no string escaping and a fraction of the memory.
#[derive(Debug, Default)]
pub(crate) struct GuestRows(std::sync::Mutex<KeptRows>);

/// Item path -> (key, row) of each view that keeps a row for the guest.
type KeptRows = HashMap<String, Vec<(u64, Arc<KeptRow>)>>;

/// Most rows kept per guest (one per view; more only while keys change).
const ROWS_PER_GUEST: usize = 4;

/// A kept row: JSON text, and for a running guest where its `uptime` goes, with the start time
/// it counts from, so that the row stays exact as the clock moves.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeptRow {
    text: String,
    uptime: Option<(usize, u64)>,
}

impl KeptRow {
    /// A row without a moving part.
    pub(crate) fn fixed(text: String) -> KeptRow {
        KeptRow { text, uptime: None }
    }

    /// A row whose `uptime` is `now - started`: `text` has the number [`UPTIME_MARK`] exactly
    /// once, where the uptime goes; `None` if it has not.
    pub(crate) fn with_uptime(text: &str, started: u64) -> Option<KeptRow> {
        let mark = UPTIME_MARK.to_string();
        let at = text.find(&mark)?;
        if text[at + mark.len()..].contains(&mark) {
            return None;
        }
        let mut rest = String::with_capacity(text.len() - mark.len());
        rest.push_str(&text[..at]);
        rest.push_str(&text[at + mark.len()..]);
        Some(KeptRow {
            text: rest,
            uptime: Some((at, started)),
        })
    }

    /// Appends the row as of `now` (seconds since the epoch).
    pub(crate) fn write_to(&self, out: &mut Vec<u8>, now: u64) {
        match self.uptime {
            None => out.extend_from_slice(self.text.as_bytes()),
            Some((at, started)) => {
                out.extend_from_slice(&self.text.as_bytes()[..at]);
                out.extend_from_slice(now.saturating_sub(started).to_string().as_bytes());
                out.extend_from_slice(&self.text.as_bytes()[at..]);
            }
        }
    }
}

/// The placeholder a row's `uptime` is built with before it is kept ([`KeptRow::with_uptime`]).
pub(crate) const UPTIME_MARK: u64 = u64::MAX;

impl Clone for GuestRows {
    fn clone(&self) -> Self {
        GuestRows::default()
    }
}

impl GuestRows {
    fn lock(&self) -> std::sync::MutexGuard<'_, KeptRows> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached row for a guest item, if one was computed under the same `key`.
    pub(crate) fn get(&self, item: &str, key: u64) -> Option<Arc<KeptRow>> {
        self.lock()
            .get(item)?
            .iter()
            .find(|(stored, _)| *stored == key)
            .map(|(_, row)| Arc::clone(row))
    }

    /// Caches the row computed for a guest item under `key`.
    pub(crate) fn insert(&self, item: &str, key: u64, row: Arc<KeptRow>) {
        let mut rows = self.lock();
        let kept = rows.entry(item.to_owned()).or_default();
        kept.retain(|(stored, _)| *stored != key);
        if kept.len() >= ROWS_PER_GUEST {
            kept.remove(0);
        }
        kept.push((key, row));
    }

    /// Drops what a change at `path` may have made stale: the guest item `path` is in (or is),
    /// or every guest under `path`. Paths that are neither (tasks, storage, access) cost no
    /// scan, so writes stay cheap however many rows are kept.
    fn invalidate(&mut self, path: &str) {
        let rows = self
            .0
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if rows.is_empty() {
            return;
        }
        if let Some(item) = guest_item_of(path) {
            rows.remove(item);
        } else if may_hold_guests(path) {
            let prefix = format!("{}/", path.trim_end_matches('/'));
            rows.retain(|key, _| !key.starts_with(&prefix));
        }
    }
}

/// A node's entry of `GET /nodes` as JSON text, in each form the permission filter may show
/// it (`crate::access::filter::NodeFilter`): as computed, without the statistics (no
/// `Sys.Audit`), and marked offline without the statistics.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NodeTexts {
    /// The entry's `node` (what the filter decides on).
    pub(crate) node: String,
    /// The entry as computed.
    pub(crate) full: String,
    /// Without the statistics.
    pub(crate) stripped: String,
    /// Status `offline`, without the statistics.
    pub(crate) offline: String,
}

/// Kept `GET /nodes` entries (see [`Tables::node_rows`]): node path -> the key of everything
/// else the entry depends on (the entry schema and the node names) and the entry. A clone of
/// [`Tables`] starts with an empty cache.
#[derive(Debug, Default)]
pub(crate) struct NodeRows(std::sync::Mutex<HashMap<String, (u64, Arc<NodeTexts>)>>);

impl Clone for NodeRows {
    fn clone(&self) -> Self {
        NodeRows::default()
    }
}

impl NodeRows {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Arc<NodeTexts>)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The kept entry of a node, if it was computed under the same `key`.
    pub(crate) fn get(&self, node: &str, key: u64) -> Option<Arc<NodeTexts>> {
        self.lock()
            .get(node)
            .filter(|(stored, _)| *stored == key)
            .map(|(_, texts)| Arc::clone(texts))
    }

    /// Keeps the entry computed for a node under `key`.
    pub(crate) fn insert(&self, node: &str, key: u64, texts: Arc<NodeTexts>) {
        self.lock().insert(node.to_owned(), (key, texts));
    }

    /// Drops what a change at `path` may have made stale: the node `path` is, or every node
    /// when `path` is `/` or `/nodes`. An entry is computed from its node's row alone, so
    /// changes below a node (guests, tasks, storage) keep it.
    fn invalidate(&mut self, path: &str) {
        let rows = self
            .0
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if rows.is_empty() {
            return;
        }
        let path = path.trim_end_matches('/');
        if path.is_empty() || path == "/nodes" {
            rows.clear();
        } else {
            rows.remove(path);
        }
    }
}

/// Whether guest items can lie below `path`: `/`, `/nodes`, `/nodes/{node}` and
/// `/nodes/{node}/qemu|lxc`.
fn may_hold_guests(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    if path.is_empty() || path == "/nodes" {
        return true;
    }
    let Some(rest) = path.strip_prefix("/nodes/") else {
        return false;
    };
    let mut segments = rest.split('/');
    let _node = segments.next();
    matches!(
        (segments.next(), segments.next()),
        (None, _) | (Some("qemu" | "lxc"), None)
    )
}

/// The guest item path (`/nodes/{node}/qemu|lxc/{vmid}`) a path is, or is under.
fn guest_item_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/nodes/")?;
    let mut end = "/nodes/".len();
    let mut segments = rest.split('/');
    let node = segments.next()?;
    let kind = segments.next()?;
    let vmid = segments.next()?;
    if !matches!(kind, "qemu" | "lxc") || vmid.is_empty() {
        return None;
    }
    end += node.len() + 1 + kind.len() + 1 + vmid.len();
    Some(&path[..end])
}

/// The bounds of everything strictly below `path` in path order: the range `[path/, path0)`
/// (`0` is the character after `/`), for a range scan of a sorted map or table.
pub(super) fn subtree_range(path: &str) -> (String, String) {
    (format!("{path}/"), format!("{path}0"))
}

/// The VM ID of a guest item path (`/nodes/{node}/qemu/{vmid}` or `.../lxc/{vmid}`).
pub(crate) fn guest_vmid(path: &str) -> Option<u32> {
    let mut segments = path.strip_prefix("/nodes/")?.split('/');
    let (_node, kind, vmid) = (segments.next()?, segments.next()?, segments.next()?);
    if segments.next().is_some() || !matches!(kind, "qemu" | "lxc") {
        return None;
    }
    vmid.parse().ok()
}

impl Tables {
    /// The object at a path.
    pub(crate) fn get(&self, path: &str) -> Option<&Value> {
        self.objects.get(path)
    }

    /// Whether a path holds an object.
    pub(crate) fn exists(&self, path: &str) -> bool {
        self.objects.contains_key(path)
    }

    /// How many members a collection has.
    pub(crate) fn member_count(&self, collection: &str) -> usize {
        self.members.get(collection).map_or(0, BTreeSet::len)
    }

    /// The member paths of a collection, sorted.
    pub(crate) fn members(&self, collection: &str) -> impl Iterator<Item = &String> {
        self.members.get(collection).into_iter().flatten()
    }

    /// Whether a path was deleted.
    #[cfg(test)]
    pub(crate) fn is_tombstone(&self, path: &str) -> bool {
        self.tombstones.contains_key(path)
    }

    /// Applies one change and keeps the indexes and caches in step with it.
    pub(super) fn apply(&mut self, change: &Change) {
        match change {
            Change::Put { path, .. } | Change::Delete { path } | Change::Forget { path } => {
                self.guest_rows.invalidate(path);
                self.node_rows.invalidate(path);
                if touches_access(path) {
                    self.access_rev += 1;
                }
            }
            Change::Meta { .. } => {}
        }
        match change {
            Change::Put {
                path,
                collection,
                value,
            } => {
                self.tombstones.remove(path);
                if let Some(collection) = collection {
                    self.member_of.insert(path.clone(), collection.clone());
                    self.members
                        .entry(collection.clone())
                        .or_default()
                        .insert(path.clone());
                    if let Some(vmid) = guest_vmid(path) {
                        self.guests.insert(vmid, path.clone());
                    }
                }
                self.objects.insert(path.clone(), value.clone());
            }
            Change::Delete { path } | Change::Forget { path } => {
                let tombstone = matches!(change, Change::Delete { .. });
                let (low, high) = subtree_range(path);
                let mut doomed: Vec<String> = self
                    .objects
                    .range(low.clone()..high.clone())
                    .map(|(key, _)| key.clone())
                    .collect();
                if self.objects.contains_key(path) {
                    doomed.push(path.clone());
                }
                for key in doomed {
                    self.objects.remove(&key);
                    if let Some(vmid) = guest_vmid(&key)
                        && self.guests.get(&vmid) == Some(&key)
                    {
                        self.guests.remove(&vmid);
                    }
                    if let Some(collection) = self.member_of.remove(&key) {
                        if let Some(set) = self.members.get_mut(&collection) {
                            set.remove(&key);
                        }
                        if tombstone && key == *path {
                            self.tombstones.insert(key.clone(), collection);
                        }
                    }
                }
                let nested: Vec<String> = self
                    .members
                    .range(low..high)
                    .map(|(key, _)| key.clone())
                    .collect();
                for collection in nested {
                    self.members.remove(&collection);
                }
            }
            Change::Meta { key, value } => {
                self.meta.insert(key.clone(), value.clone());
            }
        }
    }

    /// The whole state as JSON (for `GET /_mock/state`), hidden keys included.
    pub(crate) fn to_json(&self) -> Value {
        let objects = &self.objects;
        let members: BTreeMap<&String, &BTreeSet<String>> = self
            .members
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .collect();
        serde_json::json!({
            "objects": objects,
            "collections": members,
            "tombstones": self.tombstones,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn kept(rows: &GuestRows) -> Vec<String> {
        let mut items: Vec<String> = rows.lock().keys().cloned().collect();
        items.sort();
        items
    }

    #[test]
    fn kept_rows_follow_the_rows_they_were_computed_from() {
        let mut rows = GuestRows::default();
        for item in [
            "/nodes/pve1/qemu/100",
            "/nodes/pve1/lxc/200",
            "/nodes/pve2/qemu/101",
        ] {
            rows.insert(item, 1, Arc::new(KeptRow::fixed("{}".to_owned())));
        }
        // Writes that no row depends on keep every row (and cost no scan).
        for path in [
            "/nodes/pve1/tasks/UPID:pve1:1",
            "/storage/local",
            "/access/users/a@pve",
        ] {
            rows.invalidate(path);
        }
        assert_eq!(kept(&rows).len(), 3);
        rows.invalidate("/nodes/pve1/qemu/100/status/current");
        assert_eq!(kept(&rows), ["/nodes/pve1/lxc/200", "/nodes/pve2/qemu/101"]);
        rows.invalidate("/nodes/pve1");
        assert_eq!(kept(&rows), ["/nodes/pve2/qemu/101"]);
        rows.invalidate("/nodes/pve2/qemu");
        assert!(kept(&rows).is_empty());
        assert!(rows.get("/nodes/pve2/qemu/101", 1).is_none());
    }

    #[test]
    fn a_kept_row_counts_uptime_from_its_start() {
        let text = format!(r#"{{"uptime":{UPTIME_MARK},"vmid":100}}"#);
        let row = KeptRow::with_uptime(&text, 1_000).unwrap();
        let mut out = Vec::new();
        row.write_to(&mut out, 1_042);
        assert_eq!(out, br#"{"uptime":42,"vmid":100}"#);
        let twice = format!("[{UPTIME_MARK},{UPTIME_MARK}]");
        assert!(KeptRow::with_uptime(&twice, 0).is_none());
        assert!(KeptRow::with_uptime("{}", 0).is_none());
    }

    #[test]
    fn paths_that_may_hold_guests() {
        for path in [
            "/",
            "/nodes",
            "/nodes/pve1",
            "/nodes/pve1/qemu",
            "/nodes/a/lxc",
        ] {
            assert!(may_hold_guests(path), "{path}");
        }
        for path in [
            "/nodes/pve1/tasks",
            "/nodes/pve1/storage/local",
            "/pools/p",
            "/access",
        ] {
            assert!(!may_hold_guests(path), "{path}");
        }
    }
}
