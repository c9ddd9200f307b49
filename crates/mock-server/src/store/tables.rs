//! The in-memory tables: objects by concrete path, collection members, tombstones, metadata, and
//! the indexes and caches kept beside them ([`Tables::guests`], [`Tables::guest_rows`],
//! [`Tables::access_rev`]). Every change goes through [`Tables::apply`], so the indexes can never
//! disagree with the rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// Moves on every change that can change what the access model reads (users, groups,
    /// tokens, roles, the ACL, pools) and on every reset, so caches of verified credentials and
    /// of the access model built from older rows are never used.
    pub(crate) access_rev: u64,
}

/// Whether a change at `path` can change what [`crate::access::AccessModel`] reads.
fn touches_access(path: &str) -> bool {
    path.starts_with("/access") || path.starts_with("/pools") || path.starts_with("/_mock/acl")
}

/// Cached computed guest rows (see [`Tables::guest_rows`]): item path -> (key of everything
/// else the row depends on, the row). A clone of [`Tables`] starts with an empty cache.
#[derive(Debug, Default)]
pub(crate) struct GuestRows(std::sync::Mutex<HashMap<String, (u64, Value)>>);

impl Clone for GuestRows {
    fn clone(&self) -> Self {
        GuestRows::default()
    }
}

impl GuestRows {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Value)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached row for a guest item, if it was computed under the same `key`.
    pub(crate) fn get(&self, item: &str, key: u64) -> Option<Value> {
        self.lock()
            .get(item)
            .filter(|(stored, _)| *stored == key)
            .map(|(_, row)| row.clone())
    }

    /// Caches the row computed for a guest item under `key`.
    pub(crate) fn insert(&self, item: &str, key: u64, row: Value) {
        self.lock().insert(item.to_owned(), (key, row));
    }

    /// Drops what a change at `path` may have made stale: the guest item `path` is in (or is),
    /// and every guest under `path`.
    fn invalidate(&mut self, path: &str) {
        let rows = self
            .0
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if rows.is_empty() {
            return;
        }
        let item = guest_item_of(path);
        if let Some(item) = item {
            rows.remove(item);
        }
        if item.is_none_or(|item| item.len() == path.len()) {
            let prefix = format!("{path}/");
            rows.retain(|key, _| !key.starts_with(&prefix));
        }
    }
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
