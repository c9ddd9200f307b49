//! The in-memory tables: objects by concrete path, collection members, tombstones, metadata, and
//! the indexes and caches kept beside them ([`Tables::guests`], [`Tables::guest_rows`],
//! [`Tables::access_rev`]). Every change goes through [`Tables::apply`], so the indexes can never
//! disagree with the rows.
//!
//! # How rows are kept (issue 15, memory per guest)
//!
//! A row is kept as its compact JSON text ([`Row`]), not as a `serde_json::Value` tree, and is
//! parsed when it is read ([`Tables::get`], [`Tables::get_as`]). With `preserve_order` a `Value`
//! is 80 bytes and each key of an object costs a 112-byte slot of the map's entries (plus its
//! hash index, the key's and the value's own allocations), so a guest's two rows (config and
//! power state) took about 1.5 KiB as trees against under 200 bytes of text. Reads of single
//! rows parse them (a few hundred bytes of JSON); the lists that are read most
//! (`/cluster/resources`, the guest lists, `/nodes`) answer from their kept texts.
//!
//! Each path is allocated once: the key of [`Tables::objects`] is an `Arc<str>` that the member
//! set of its collection ([`Tables::members`]) and the guest index share, and a row names its
//! collection with the member map's own key. A parsed row is the same `Value` as the one put,
//! since serde_json writes numbers in a form it reads back exactly (`float_roundtrip`).

use std::collections::btree_map::Entry as Slot;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
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
    /// [`Change::Put`] of an object already written as compact JSON text (the text
    /// [`compact`] would give its value), for rows that are serialised straight from a type
    /// (task records) rather than through a `Value`.
    PutText {
        /// Concrete path.
        path: String,
        /// Concrete collection path, for members.
        collection: Option<String>,
        /// The object's compact JSON text.
        body: Box<str>,
    },
}

impl Change {
    /// The path and collection of a put (of a value or of text).
    fn put_target(&self) -> Option<(&str, Option<&str>)> {
        match self {
            Change::Put {
                path, collection, ..
            }
            | Change::PutText {
                path, collection, ..
            } => Some((path, collection.as_deref())),
            _ => None,
        }
    }
}

/// A path as the tables keep it: allocated once, shared by the object map, the member sets and
/// the guest index.
pub(crate) type PathKey = Arc<str>;

/// One stored object: its compact JSON text and the collection it is a member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    body: Box<str>,
    collection: Option<PathKey>,
}

impl Row {
    /// The row as a `Value` (parsed; `Null` only if the text were not JSON, which
    /// [`Tables::apply`] and the loader never store).
    pub(crate) fn value(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Whether the row's JSON text contains what `finder` looks for (a quick test before
    /// parsing: a row whose text lacks `"offline"` has no such string value). The caller builds
    /// the searcher once: building one was most of a one-off search's cost on a short row.
    pub(crate) fn text_has(&self, finder: &memchr::memmem::Finder<'_>) -> bool {
        finder.find(self.body.as_bytes()).is_some()
    }

    /// Some fields of an object row, read straight from its text into `T` (whose fields are
    /// optional: the keys it does not name are skipped without being built); `T::default()`
    /// when the row is not an object, or a field does not fit, as `Value::get` would find
    /// nothing usable.
    pub(crate) fn fields<T: DeserializeOwned + Default>(&self) -> T {
        if !self.body.starts_with('{') {
            return T::default();
        }
        serde_json::from_str(&self.body).unwrap_or_default()
    }

    /// One field of an object row, read from its text without building the other fields;
    /// `None` when the row is not an object or has no such key (as `Value::get` says).
    pub(crate) fn field(&self, key: &str) -> Option<Value> {
        let mut reader = serde_json::Deserializer::from_str(&self.body);
        FieldSeed(key).deserialize(&mut reader).ok().flatten()
    }

    /// The collection the object is a member of.
    pub(crate) fn collection(&self) -> Option<&str> {
        self.collection.as_deref()
    }
}

/// Reads one field of a JSON object ([`Row::field`]): the value of the key (the last one, as a
/// `Value` map keeps it), every other value skipped unbuilt; `None` for an object without the key.
struct FieldSeed<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<Option<Value>, D::Error> {
        reader.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Option<Value>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut found = None;
        while let Some(wanted) = map.next_key_seed(KeyIs(self.0))? {
            if wanted {
                found = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Whether an object key is the wanted one, compared without allocating.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<bool, D::Error> {
        reader.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// The in-memory tables.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tables {
    /// Objects by concrete path (ordered, so a subtree is one range), as JSON text.
    pub(super) objects: BTreeMap<PathKey, Row>,
    /// Collection -> member paths (the same allocations as the keys of `objects`).
    pub(super) members: BTreeMap<PathKey, BTreeSet<PathKey>>,
    /// Deleted members -> their collection.
    pub(crate) tombstones: BTreeMap<String, String>,
    /// Metadata.
    pub(crate) meta: BTreeMap<String, String>,
    /// Guest index: VM ID -> item path (`/nodes/{node}/qemu|lxc/{vmid}`), kept by [`Tables::apply`]
    /// so that ID look-ups and `/cluster/nextid` need no scan over nodes or guests.
    pub(crate) guests: BTreeMap<u32, PathKey>,
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

/// Item path -> (key, row) of each view that keeps a row for the guest. A guest list looks up
/// every listed guest, so the paths are hashed with foldhash, not SipHash (a third of the
/// instructions of `/cluster/resources` at 10,000 guests went to SipHash). Its per-process
/// seed keeps keys from being chosen to collide, and the keys are guest paths, whose IDs are
/// bounded integers.
type KeptRows = HashMap<String, Vec<(u64, Arc<KeptRow>)>, foldhash::fast::RandomState>;

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
    let bound = |last: char| {
        let mut bound = String::with_capacity(path.len() + 1);
        bound.push_str(path);
        bound.push(last);
        bound
    };
    (bound('/'), bound('0'))
}

/// Changes with each put's object rendered once as its compact JSON text: memory keeps the text
/// and SQLite stores the same bytes, so a put is serialised once, not once per side. Made before
/// the tables are locked; a put's `Value` is dropped here, once its text is written.
///
/// Two facts memory knows are carried to the writer, so that it runs no statement that would
/// change nothing (issue 15, round 6):
/// - a put that a later put of the same path in the same batch replaces (a guest's config put
///   with its `lock` and, when the task ends at once, again in full) is *superseded*: neither
///   memory nor SQLite sees it, since the batch is applied and committed as a whole;
/// - a put clears a tombstone in SQLite only when memory held one for its path when the put was
///   applied ([`Rendered::apply_to`] records it; until then every put is assumed to clear one).
#[derive(Debug)]
pub(crate) struct Rendered {
    entries: Vec<Entry>,
}

/// One change of a [`Rendered`] batch.
#[derive(Debug)]
enum Entry {
    /// A put (of a `Value` or of text), as text, and whether applying it removed a tombstone.
    Put {
        path: String,
        collection: Option<String>,
        body: Box<str>,
        cleared: bool,
    },
    /// A put that a later put of the same path in the batch replaces.
    Superseded,
    /// Any other change, and for a delete or forget whether applying it removed rows below its
    /// path.
    Other { change: Change, rows_below: bool },
}

/// The largest batch whose puts are checked for superseded ones (the check compares pairs; a
/// request's batch holds a handful of changes).
const SUPERSEDE_SCAN: usize = 64;

/// One change as the SQLite writer gets it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Written<'a> {
    /// A put with its text, and whether it may have to clear a tombstone (`false` only when
    /// memory had none for its path).
    Put {
        /// Concrete path.
        path: &'a str,
        /// Its collection.
        collection: Option<&'a str>,
        /// The compact JSON text.
        body: &'a str,
        /// Whether a tombstone of the path may exist.
        clears_tombstone: bool,
    },
    /// A change as made (a put in it is rendered by the writer and clears any tombstone).
    Change {
        /// The change.
        change: &'a Change,
        /// A delete or forget: whether rows below its path may exist (`false` only when memory
        /// had none), so that its statement must reach them.
        rows_below: bool,
    },
}

impl<'a> Written<'a> {
    /// A change as made, with nothing known of it.
    pub(crate) fn as_made(change: &'a Change) -> Written<'a> {
        Written::Change {
            change,
            rows_below: true,
        }
    }
}

impl Rendered {
    /// Renders every put that is not superseded.
    pub(crate) fn new(changes: Vec<Change>) -> Rendered {
        let superseded: Vec<bool> = (0..changes.len())
            .map(|index| superseded(&changes, index))
            .collect();
        let entries = changes
            .into_iter()
            .zip(superseded)
            .map(|(change, superseded)| match change {
                _ if superseded => Entry::Superseded,
                Change::Put {
                    path,
                    collection,
                    value,
                } => Entry::Put {
                    path,
                    collection,
                    body: compact(&value),
                    cleared: true,
                },
                Change::PutText {
                    path,
                    collection,
                    body,
                } => Entry::Put {
                    path,
                    collection,
                    body,
                    cleared: true,
                },
                change => Entry::Other {
                    change,
                    rows_below: true,
                },
            })
            .collect();
        Rendered { entries }
    }

    /// How many changes are written (superseded puts left out).
    pub(crate) fn len(&self) -> usize {
        self.entries
            .iter()
            .filter(|entry| !matches!(entry, Entry::Superseded))
            .count()
    }

    /// Applies the batch to memory and records, for each put, whether it removed a tombstone.
    pub(crate) fn apply_to(&mut self, tables: &mut Tables) {
        for entry in &mut self.entries {
            match entry {
                Entry::Superseded => {}
                Entry::Put {
                    path,
                    collection,
                    body,
                    cleared,
                } => {
                    tables.before_change(path);
                    *cleared = tables.put_text(path, collection.as_deref(), Box::from(&**body));
                }
                Entry::Other { change, rows_below } => *rows_below = tables.apply(change),
            }
        }
    }

    /// The changes to write, in order, without the superseded puts.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Written<'_>> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Superseded => None,
            Entry::Put {
                path,
                collection,
                body,
                cleared,
            } => Some(Written::Put {
                path,
                collection: collection.as_deref(),
                body,
                clears_tombstone: *cleared,
            }),
            Entry::Other { change, rows_below } => Some(Written::Change {
                change,
                rows_below: *rows_below,
            }),
        })
    }
}

/// Whether the put at `index` leaves no trace once the batch is applied: a later put of the
/// same path replaces its text, keeps or sets its membership the same way (the same collection,
/// or this one names none), and nothing between them deletes the path or a parent of it.
fn superseded(changes: &[Change], index: usize) -> bool {
    let Some((path, collection)) = changes[index].put_target() else {
        return false;
    };
    if changes.len() > SUPERSEDE_SCAN {
        return false;
    }
    for later in &changes[index + 1..] {
        match later {
            Change::Delete { path: gone } | Change::Forget { path: gone }
                if path == gone
                    || path
                        .strip_prefix(gone.as_str())
                        .is_some_and(|rest| rest.starts_with('/')) =>
            {
                return false;
            }
            _ => {}
        }
        if let Some((other, other_collection)) = later.put_target()
            && other == path
        {
            return collection.is_none() || other_collection == collection;
        }
    }
    false
}

/// A value's compact JSON text, written straight into bytes (not through `Value`'s `Display`
/// and the formatting machinery).
pub(super) fn compact(value: &Value) -> Box<str> {
    let mut out = Vec::with_capacity(128);
    match serde_json::to_writer(&mut out, value).map(|()| String::from_utf8(out)) {
        Ok(Ok(text)) => text.into_boxed_str(),
        // Neither happens for a `Value` (string keys, UTF-8 strings).
        _ => value.to_string().into_boxed_str(),
    }
}

/// `[low, high)` as bounds of a range over `str` keys.
fn bounds<'a>(low: &'a str, high: &'a str) -> (Bound<&'a str>, Bound<&'a str>) {
    (Bound::Included(low), Bound::Excluded(high))
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

/// Makes the object at `key` a member of `collection` (and indexes it when it is a guest);
/// returns the collection's key, allocated once per collection.
fn join(
    members: &mut BTreeMap<PathKey, BTreeSet<PathKey>>,
    guests: &mut BTreeMap<u32, PathKey>,
    collection: &str,
    key: &PathKey,
) -> PathKey {
    let set_key = match members.get_key_value(collection) {
        Some((set_key, _)) => Arc::clone(set_key),
        None => PathKey::from(collection),
    };
    members
        .entry(Arc::clone(&set_key))
        .or_default()
        .insert(Arc::clone(key));
    if let Some(vmid) = guest_vmid(key) {
        guests.insert(vmid, Arc::clone(key));
    }
    set_key
}

impl Tables {
    /// The object at a path, parsed.
    pub(crate) fn get(&self, path: &str) -> Option<Value> {
        self.objects.get(path).map(Row::value)
    }

    /// The object at a path read as `T` (straight from its text, without a `Value` tree);
    /// `None` when there is none or it does not fit `T`.
    pub(crate) fn get_as<T: DeserializeOwned>(&self, path: &str) -> Option<T> {
        serde_json::from_str(&self.objects.get(path)?.body).ok()
    }

    /// One field of the object at a path ([`Row::field`]: the other fields are not built).
    pub(crate) fn field(&self, path: &str, key: &str) -> Option<Value> {
        self.objects.get(path)?.field(key)
    }

    /// The stored row at a path.
    pub(crate) fn row(&self, path: &str) -> Option<&Row> {
        self.objects.get(path)
    }

    /// Whether a path holds an object.
    pub(crate) fn exists(&self, path: &str) -> bool {
        self.objects.contains_key(path)
    }

    /// The collection an object is a member of.
    pub(crate) fn collection_of(&self, path: &str) -> Option<&str> {
        self.objects.get(path)?.collection()
    }

    /// Every object strictly below `path`, in path order.
    pub(crate) fn subtree(&self, path: &str) -> impl Iterator<Item = (&str, &Row)> {
        let (low, high) = subtree_range(path);
        self.objects
            .range::<str, _>(bounds(&low, &high))
            .map(|(key, row)| (&**key, row))
    }

    /// How many members a collection has.
    pub(crate) fn member_count(&self, collection: &str) -> usize {
        self.members.get(collection).map_or(0, BTreeSet::len)
    }

    /// The member paths of a collection, sorted.
    pub(crate) fn members(&self, collection: &str) -> impl Iterator<Item = &str> {
        self.members
            .get(collection)
            .into_iter()
            .flatten()
            .map(|path| &**path)
    }

    /// Whether a path was deleted.
    #[cfg(test)]
    pub(crate) fn is_tombstone(&self, path: &str) -> bool {
        self.tombstones.contains_key(path)
    }

    /// Applies one change and keeps the indexes and caches in step with it. Returns whether the
    /// change reached beyond its own row: a put removed a tombstone, a delete or forget removed
    /// rows below its path (`false` for a metadata value).
    pub(super) fn apply(&mut self, change: &Change) -> bool {
        match change {
            Change::Put { path, .. }
            | Change::PutText { path, .. }
            | Change::Delete { path }
            | Change::Forget { path } => self.before_change(path),
            Change::Meta { .. } => {}
        }
        match change {
            Change::Put {
                path,
                collection,
                value,
            } => {
                return self.put_text(path, collection.as_deref(), compact(value));
            }
            Change::PutText {
                path,
                collection,
                body,
            } => {
                return self.put_text(path, collection.as_deref(), body.clone());
            }
            Change::Delete { path } | Change::Forget { path } => {
                let tombstone = matches!(change, Change::Delete { .. });
                let (low, high) = subtree_range(path);
                let mut doomed: Vec<PathKey> = self
                    .objects
                    .range::<str, _>(bounds(&low, &high))
                    .map(|(key, _)| Arc::clone(key))
                    .collect();
                let rows_below = !doomed.is_empty();
                if let Some((key, _)) = self.objects.get_key_value(path.as_str()) {
                    doomed.push(Arc::clone(key));
                }
                for key in doomed {
                    let Some(row) = self.objects.remove(&*key) else {
                        continue;
                    };
                    if let Some(vmid) = guest_vmid(&key)
                        && self.guests.get(&vmid) == Some(&key)
                    {
                        self.guests.remove(&vmid);
                    }
                    if let Some(collection) = row.collection {
                        if let Some(set) = self.members.get_mut(&collection) {
                            set.remove(&key);
                        }
                        if tombstone && *key == **path {
                            self.tombstones
                                .insert(key.to_string(), collection.to_string());
                        }
                    }
                }
                let nested: Vec<PathKey> = self
                    .members
                    .range::<str, _>(bounds(&low, &high))
                    .map(|(key, _)| Arc::clone(key))
                    .collect();
                for collection in nested {
                    self.members.remove(&*collection);
                }
                return rows_below;
            }
            Change::Meta { key, value } => {
                self.meta.insert(key.clone(), value.clone());
            }
        }
        false
    }

    /// Drops the kept rows a change at `path` makes stale and moves [`Tables::access_rev`] when
    /// the access model may read it.
    fn before_change(&mut self, path: &str) {
        self.guest_rows.invalidate(path);
        self.node_rows.invalidate(path);
        if touches_access(path) {
            self.access_rev += 1;
        }
    }

    /// Stores an object's JSON text (compact, as [`Change::Put`] writes it or SQLite holds it)
    /// and keeps the member sets and the guest index in step. The caller has dropped the
    /// kept rows the put makes stale. Returns whether the path had a tombstone (now removed).
    ///
    /// One search of the object map whether the row is new or put again (the path is
    /// allocated first; a row put again keeps its key, the allocation shared with the member
    /// set and the guest index, and the new one is dropped).
    pub(super) fn put_text(
        &mut self,
        path: &str,
        collection: Option<&str>,
        body: Box<str>,
    ) -> bool {
        let cleared = !self.tombstones.is_empty() && self.tombstones.remove(path).is_some();
        let (key, old_collection) = match self.objects.entry(PathKey::from(path)) {
            Slot::Occupied(mut slot) => {
                let key = Arc::clone(slot.key());
                let row = slot.get_mut();
                let stays = match collection {
                    None => true,
                    Some(collection) => row.collection.as_deref() == Some(collection),
                };
                // A row put again in its own collection (a config or status change, the
                // usual put) keeps its membership.
                if stays {
                    row.body = body;
                    if collection.is_some()
                        && let Some(vmid) = guest_vmid(path)
                    {
                        self.guests.insert(vmid, key);
                    }
                    return cleared;
                }
                (key, row.collection.clone())
            }
            Slot::Vacant(slot) => {
                let key = Arc::clone(slot.key());
                let collection = collection
                    .map(|collection| join(&mut self.members, &mut self.guests, collection, &key));
                slot.insert(Row { body, collection });
                return cleared;
            }
        };
        let collection = match collection {
            // A put without a collection leaves the membership as it was.
            None => old_collection.clone(),
            Some(collection) => Some(join(&mut self.members, &mut self.guests, collection, &key)),
        };
        // A member put into another collection leaves the old one's set.
        if let Some(old) = old_collection
            && collection.as_deref() != Some(&*old)
            && let Some(set) = self.members.get_mut(&*old)
        {
            set.remove(path);
        }
        self.objects.insert(key, Row { body, collection });
        cleared
    }

    /// The whole state as JSON (for `GET /_mock/state`), hidden keys included.
    pub(crate) fn to_json(&self) -> Value {
        let objects: serde_json::Map<String, Value> = self
            .objects
            .iter()
            .map(|(path, row)| (path.to_string(), row.value()))
            .collect();
        let members: BTreeMap<&str, Vec<&str>> = self
            .members
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .map(|(key, set)| (&**key, set.iter().map(|path| &**path).collect()))
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

    fn put(path: &str, collection: Option<&str>, value: Value) -> Change {
        Change::Put {
            path: path.to_owned(),
            collection: collection.map(str::to_owned),
            value,
        }
    }

    /// A batch rendered once (what the SQLite writer is handed) leaves memory exactly as
    /// applying its changes one by one does, and its texts are the rows' texts.
    #[test]
    fn rendered_changes_apply_as_the_changes_do() {
        let changes = vec![
            put(
                "/a",
                None,
                serde_json::json!({"x": 1, "f": 0.1 + 0.2, "s": "é\"\n"}),
            ),
            put("/c/1", Some("/c"), serde_json::json!({"vmid": 1})),
            Change::Meta {
                key: "k".to_owned(),
                value: "v".to_owned(),
            },
            put(
                "/c/1",
                Some("/c"),
                serde_json::json!({"vmid": 1, "name": "again"}),
            ),
            put("/c/2", Some("/c"), serde_json::json!({"vmid": 2})),
            Change::Delete {
                path: "/c/2".to_owned(),
            },
        ];
        let mut one_by_one = Tables::default();
        for change in &changes {
            one_by_one.apply(change);
        }
        let mut rendered = Rendered::new(changes.clone());
        // The first put of `/c/1` is replaced by the second in the same batch.
        assert_eq!(rendered.len(), changes.len() - 1);
        let mut at_once = Tables::default();
        rendered.apply_to(&mut at_once);
        let mut puts = Vec::new();
        for written in rendered.iter() {
            match written {
                Written::Put { path, body, .. } => puts.push((path.to_owned(), body.to_owned())),
                Written::Change { change, .. } => {
                    assert!(!matches!(
                        change,
                        Change::Put { .. } | Change::PutText { .. }
                    ));
                }
            }
        }
        // Each put written once with its text; `/c/1` with the second one's.
        let text = |value: Value| compact(&value).to_string();
        assert_eq!(
            puts,
            [
                (
                    "/a".to_owned(),
                    text(serde_json::json!({"x": 1, "f": 0.1 + 0.2, "s": "é\"\n"}))
                ),
                (
                    "/c/1".to_owned(),
                    text(serde_json::json!({"vmid": 1, "name": "again"}))
                ),
                ("/c/2".to_owned(), text(serde_json::json!({"vmid": 2}))),
            ]
        );
        assert_eq!(at_once.row("/c/1"), one_by_one.row("/c/1"));
        assert_eq!(at_once.row("/a"), one_by_one.row("/a"));
        assert_eq!(at_once.row("/c/2"), None);
        assert!(at_once.is_tombstone("/c/2"));
        assert_eq!(at_once.meta, one_by_one.meta);
        assert_eq!(at_once.to_json(), one_by_one.to_json());
        assert_eq!(at_once.guests, one_by_one.guests);
    }

    /// A put is superseded only when a later put leaves the same row and membership behind, and
    /// nothing between them deletes the path or a parent of it.
    #[test]
    fn superseded_puts_leave_what_applying_them_leaves() {
        let item = "/nodes/pve1/qemu/100";
        let coll = Some("/nodes/pve1/qemu");
        let delete = |path: &str| Change::Delete {
            path: path.to_owned(),
        };
        let forget = |path: &str| Change::Forget {
            path: path.to_owned(),
        };
        let cases: Vec<(Vec<Change>, usize)> = vec![
            // A guest created with its lock, then its full config: one row written.
            (
                vec![
                    put(item, coll, serde_json::json!({"lock": "create"})),
                    put(
                        &format!("{item}/status/current"),
                        None,
                        serde_json::json!({}),
                    ),
                    put(item, coll, serde_json::json!({"name": "a"})),
                ],
                2,
            ),
            // The later put names no collection: the earlier one's membership is needed.
            (
                vec![
                    put(item, coll, serde_json::json!({"lock": "create"})),
                    put(item, None, serde_json::json!({"name": "a"})),
                ],
                2,
            ),
            // The earlier names none: the later one's membership wins either way.
            (
                vec![
                    put(item, None, serde_json::json!({"lock": "create"})),
                    put(item, coll, serde_json::json!({"name": "a"})),
                ],
                1,
            ),
            // Another collection: the earlier put's set would exist (empty) afterwards.
            (
                vec![
                    put("/x/1", Some("/x"), serde_json::json!({})),
                    put("/x/1", Some("/y"), serde_json::json!({})),
                ],
                2,
            ),
            // Deleted between (itself or a parent): the delete leaves a tombstone of it.
            (
                vec![
                    put(item, coll, serde_json::json!({})),
                    delete(item),
                    put(item, coll, serde_json::json!({})),
                ],
                3,
            ),
            (
                vec![
                    put(item, coll, serde_json::json!({})),
                    forget("/nodes/pve1"),
                    put(item, coll, serde_json::json!({})),
                ],
                3,
            ),
            // A sibling's delete, or one below the path, does not matter.
            (
                vec![
                    put(item, coll, serde_json::json!({})),
                    delete("/nodes/pve1/qemu/1000"),
                    delete(&format!("{item}/snapshot/s1")),
                    put(item, coll, serde_json::json!({"name": "b"})),
                ],
                3,
            ),
        ];
        for (changes, written) in cases {
            let mut seeded = Tables::default();
            seeded.apply(&put("/nodes/pve1/qemu/1000", coll, serde_json::json!({})));
            seeded.apply(&put(
                &format!("{item}/snapshot/s1"),
                Some(&format!("{item}/snapshot")),
                serde_json::json!({}),
            ));
            let mut one_by_one = seeded.clone();
            for change in &changes {
                one_by_one.apply(change);
            }
            let mut rendered = Rendered::new(changes.clone());
            assert_eq!(rendered.len(), written, "{changes:?}");
            let mut at_once = seeded.clone();
            rendered.apply_to(&mut at_once);
            assert_eq!(at_once.objects, one_by_one.objects, "{changes:?}");
            assert_eq!(at_once.members, one_by_one.members, "{changes:?}");
            assert_eq!(at_once.tombstones, one_by_one.tombstones, "{changes:?}");
            assert_eq!(at_once.guests, one_by_one.guests, "{changes:?}");
        }
    }

    /// A put is marked as clearing a tombstone exactly when memory held one for its path.
    #[test]
    fn puts_know_whether_they_clear_a_tombstone() {
        let mut tables = Tables::default();
        let mut first = Rendered::new(vec![
            put("/c/1", Some("/c"), serde_json::json!({})),
            put("/c/2", Some("/c"), serde_json::json!({})),
        ]);
        let clears = |rendered: &Rendered| -> Vec<bool> {
            rendered
                .iter()
                .map(|written| match written {
                    Written::Put {
                        clears_tombstone, ..
                    } => clears_tombstone,
                    Written::Change { .. } => unreachable!("only puts here"),
                })
                .collect()
        };
        // Before memory has seen them, every put is assumed to clear one.
        assert_eq!(clears(&first), [true, true]);
        first.apply_to(&mut tables);
        assert_eq!(clears(&first), [false, false]);
        tables.apply(&Change::Delete {
            path: "/c/1".to_owned(),
        });
        let mut second = Rendered::new(vec![
            put("/c/1", Some("/c"), serde_json::json!({"again": true})),
            put("/c/2", Some("/c"), serde_json::json!({"again": true})),
        ]);
        second.apply_to(&mut tables);
        assert_eq!(clears(&second), [true, false]);
        assert!(!tables.is_tombstone("/c/1"));
    }

    /// A delete or forget is marked as reaching below its path exactly when memory had rows
    /// there.
    #[test]
    fn deletes_know_whether_rows_lie_below() {
        let mut tables = Tables::default();
        for path in ["/g", "/g/status", "/t/1", "/t/10"] {
            tables.apply(&put(path, None, serde_json::json!({})));
        }
        let mut rendered = Rendered::new(vec![
            Change::Forget {
                path: "/t/1".to_owned(),
            },
            Change::Delete {
                path: "/g".to_owned(),
            },
            Change::Meta {
                key: "k".to_owned(),
                value: "v".to_owned(),
            },
        ]);
        let below = |rendered: &Rendered| -> Vec<bool> {
            rendered
                .iter()
                .map(|written| match written {
                    Written::Change { rows_below, .. } => rows_below,
                    Written::Put { .. } => unreachable!("no puts here"),
                })
                .collect()
        };
        assert_eq!(below(&rendered), [true, true, true]);
        rendered.apply_to(&mut tables);
        // `/t/10` is a sibling of `/t/1`, not below it.
        assert_eq!(below(&rendered), [false, true, false]);
        assert!(tables.exists("/t/10"));
        assert!(!tables.exists("/g/status"));
    }

    #[test]
    fn rows_read_back_as_they_were_put() {
        let values = [
            serde_json::json!({"name": "vm", "memory": 512, "z": null, "a": [1, -2, 3.5]}),
            serde_json::json!({"cpu": 0.1 + 0.2, "tiny": 1e-300, "big": u64::MAX, "neg": i64::MIN}),
            serde_json::json!({"cpu": 0.007_547_169_811_320_755, "third": 1.0 / 3.0, "e": 6.02e23}),
            serde_json::json!({"text": "line\n\"quoted\" \u{1F600} \\", "": "empty key"}),
            serde_json::json!(["not", "an", "object"]),
            serde_json::json!("a string"),
        ];
        let mut tables = Tables::default();
        for (index, value) in values.iter().enumerate() {
            tables.apply(&put(&format!("/r/{index}"), None, value.clone()));
        }
        for (index, value) in values.iter().enumerate() {
            let path = format!("/r/{index}");
            let read = tables.get(&path).unwrap();
            assert_eq!(&read, value, "{path}");
            // The key order of objects is kept, so replies are written the same.
            assert_eq!(read.to_string(), value.to_string(), "{path}");
        }
    }

    #[test]
    fn one_field_is_read_without_the_others() {
        let mut tables = Tables::default();
        let row = serde_json::json!({
            "status": "online", "nested": {"a": [1, {"b": 2}]}, "esc\"aped\n\u{e9}": "x", "n": 7
        });
        tables.apply(&put("/o", None, row.clone()));
        tables.apply(&put("/a", None, serde_json::json!([{"status": "x"}])));
        for key in ["status", "nested", "esc\"aped\n\u{e9}", "n", "missing"] {
            assert_eq!(tables.field("/o", key).as_ref(), row.get(key), "{key}");
        }
        assert_eq!(tables.field("/a", "status"), None);
        assert_eq!(tables.field("/none", "status"), None);

        #[derive(Debug, Default, PartialEq, serde::Deserialize)]
        struct Gate {
            #[serde(default)]
            status: Option<Value>,
            #[serde(default)]
            other: Option<Value>,
        }
        let gate: Gate = tables.row("/o").unwrap().fields();
        assert_eq!(gate.status, Some(serde_json::json!("online")));
        assert_eq!(gate.other, None);
        // A row that is not an object has no fields, as `Value::get` finds none.
        let gate: Gate = tables.row("/a").unwrap().fields();
        assert_eq!(gate, Gate::default());
    }

    #[test]
    fn a_path_is_allocated_once() {
        let mut tables = Tables::default();
        tables.apply(&put(
            "/nodes/pve1/qemu/100",
            Some("/nodes/pve1/qemu"),
            serde_json::json!({"name": "a"}),
        ));
        // Put again (a config change): the key stays the same allocation.
        tables.apply(&put(
            "/nodes/pve1/qemu/100",
            Some("/nodes/pve1/qemu"),
            serde_json::json!({"name": "b"}),
        ));
        let (key, row) = tables
            .objects
            .get_key_value("/nodes/pve1/qemu/100")
            .unwrap();
        let member = tables.members["/nodes/pve1/qemu"]
            .get("/nodes/pve1/qemu/100")
            .unwrap();
        assert!(Arc::ptr_eq(key, member));
        assert!(Arc::ptr_eq(key, &tables.guests[&100]));
        let (set_key, _) = tables.members.get_key_value("/nodes/pve1/qemu").unwrap();
        assert!(Arc::ptr_eq(set_key, row.collection.as_ref().unwrap()));
        assert_eq!(tables.get("/nodes/pve1/qemu/100").unwrap()["name"], "b");
    }

    #[test]
    fn members_follow_puts_and_deletes() {
        let mut tables = Tables::default();
        let item = "/nodes/pve1/qemu/100";
        tables.apply(&put(item, Some("/nodes/pve1/qemu"), serde_json::json!({})));
        tables.apply(&put(
            &format!("{item}/snapshot/s1"),
            Some(&format!("{item}/snapshot")),
            serde_json::json!({"snaptime": 1}),
        ));
        tables.apply(&put(
            &format!("{item}/status/current"),
            None,
            serde_json::json!({}),
        ));
        // A put without a collection keeps the row's membership.
        tables.apply(&put(item, None, serde_json::json!({"name": "x"})));
        assert_eq!(
            tables.members("/nodes/pve1/qemu").collect::<Vec<_>>(),
            [item]
        );
        assert_eq!(tables.collection_of(item), Some("/nodes/pve1/qemu"));
        assert_eq!(
            tables
                .subtree(item)
                .map(|(path, _)| path)
                .collect::<Vec<_>>(),
            [
                "/nodes/pve1/qemu/100/snapshot/s1",
                "/nodes/pve1/qemu/100/status/current"
            ]
        );
        // A member put into another collection leaves the old one.
        tables.apply(&put("/x/1", Some("/x"), serde_json::json!({})));
        tables.apply(&put("/x/1", Some("/y"), serde_json::json!({})));
        assert_eq!(tables.member_count("/x"), 0);
        assert_eq!(tables.member_count("/y"), 1);
        tables.apply(&Change::Delete {
            path: item.to_owned(),
        });
        assert!(tables.subtree(item).next().is_none());
        assert!(!tables.exists(item));
        assert_eq!(tables.member_count("/nodes/pve1/qemu"), 0);
        assert_eq!(tables.member_count(&format!("{item}/snapshot")), 0);
        assert!(tables.guests.is_empty());
        assert!(tables.is_tombstone(item));
        // Putting it again clears the tombstone.
        tables.apply(&put(item, Some("/nodes/pve1/qemu"), serde_json::json!({})));
        assert!(!tables.is_tombstone(item));
        assert_eq!(tables.guests.get(&100).map(|path| &**path), Some(item));
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
