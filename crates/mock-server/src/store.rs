//! The state store: the only module that opens SQLite.
//!
//! State is a set of rows, not a blob: *objects* (concrete API path -> JSON object, with the
//! collection the object is a member of, if any), an index of *collection members*, *tombstones*
//! (members that were deleted, so a second delete is an error) and *metadata* (the schema
//! fingerprint and the instance key). All of it lives in memory in [`Tables`]; the SQLite
//! backend writes through to a database in WAL mode (`synchronous=NORMAL`, busy timeout, prepared
//! cached statements) from one dedicated writer thread.
//!
//! A request computes its complete list of [`Change`]s first and applies them with
//! [`StateStore::apply`]: in memory under one write lock, and in SQLite in one transaction. A
//! request that fails before that point changes nothing, and one whose commit fails changes
//! nothing either: the writer then reloads memory from the database before it answers (see
//! `Writer`). The writer thread drains every batch
//! that is waiting and commits them together (group commit), then acknowledges each batch; a
//! request replies only after its acknowledgement, so a reply means the change is durable.
//! Reads never touch SQLite.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

/// Which backend keeps the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// An SQLite database file (WAL) at the given path.
    Sqlite(PathBuf),
    /// Memory only; lost on exit.
    Memory,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("SQLite operation failed: {context}")]
    Sqlite {
        /// What was being done.
        context: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored row is not valid JSON.
    #[error("stored row '{0}' is not valid JSON")]
    Corrupt(String),
    /// The writer thread has stopped.
    #[error("the store writer has stopped")]
    Closed,
}

fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { context, source }
}

/// One change to the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
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
pub struct Tables {
    /// Objects by concrete path (ordered, so a subtree is one range).
    pub objects: BTreeMap<String, Value>,
    /// For each member: its collection.
    pub member_of: HashMap<String, String>,
    /// Collection -> member paths.
    pub members: BTreeMap<String, BTreeSet<String>>,
    /// Deleted members -> their collection.
    pub tombstones: BTreeMap<String, String>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// Guest index: VM ID -> item path (`/nodes/{node}/qemu|lxc/{vmid}`), kept by [`Tables::apply`]
    /// so that ID look-ups and `/cluster/nextid` need no scan over nodes or guests.
    pub guests: BTreeMap<u32, String>,
    /// Computed guest rows of `/cluster/resources`, by item path; an entry is dropped by
    /// [`Tables::apply`] whenever a change touches the guest (its config, status or anything
    /// under it), so it never outlives the rows it was computed from.
    pub guest_rows: GuestRows,
}

/// Cached computed guest rows (see [`Tables::guest_rows`]): item path -> (key of everything
/// else the row depends on, the row). A clone of [`Tables`] starts with an empty cache.
#[derive(Debug, Default)]
pub struct GuestRows(std::sync::Mutex<HashMap<String, (u64, Value)>>);

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
    pub fn get(&self, item: &str, key: u64) -> Option<Value> {
        self.lock()
            .get(item)
            .filter(|(stored, _)| *stored == key)
            .map(|(_, row)| row.clone())
    }

    /// Caches the row computed for a guest item under `key`.
    pub fn insert(&self, item: &str, key: u64, row: Value) {
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

/// The VM ID of a guest item path (`/nodes/{node}/qemu/{vmid}` or `.../lxc/{vmid}`).
pub fn guest_vmid(path: &str) -> Option<u32> {
    let mut segments = path.strip_prefix("/nodes/")?.split('/');
    let (_node, kind, vmid) = (segments.next()?, segments.next()?, segments.next()?);
    if segments.next().is_some() || !matches!(kind, "qemu" | "lxc") {
        return None;
    }
    vmid.parse().ok()
}

impl Tables {
    /// The object at a path.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.objects.get(path)
    }

    /// Whether a path holds an object.
    pub fn exists(&self, path: &str) -> bool {
        self.objects.contains_key(path)
    }

    /// The member paths of a collection, sorted.
    pub fn members(&self, collection: &str) -> impl Iterator<Item = &String> {
        self.members.get(collection).into_iter().flatten()
    }

    /// Whether a path was deleted.
    pub fn is_tombstone(&self, path: &str) -> bool {
        self.tombstones.contains_key(path)
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::Put { path, .. } | Change::Delete { path } => {
                self.guest_rows.invalidate(path);
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
            Change::Delete { path } => {
                let prefix = format!("{path}/");
                let high = format!("{path}0");
                let mut doomed: Vec<String> = self
                    .objects
                    .range(prefix.clone()..high.clone())
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
                        if key == *path {
                            self.tombstones.insert(key.clone(), collection);
                        }
                    }
                }
                let nested: Vec<String> = self
                    .members
                    .range(prefix..high)
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
    pub fn to_json(&self) -> Value {
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

/// A submitted batch whose durability can be awaited.
#[derive(Debug)]
pub struct Pending(Option<oneshot::Receiver<Result<(), StoreError>>>);

impl Pending {
    /// Waits until the batch is committed to SQLite (immediately for the memory backend).
    pub async fn durable(self) -> Result<(), StoreError> {
        match self.0 {
            None => Ok(()),
            Some(receiver) => receiver.await.map_err(|_| StoreError::Closed)?,
        }
    }
}

enum Job {
    Batch(Vec<Change>, oneshot::Sender<Result<(), StoreError>>),
    Reset(Vec<Change>, oneshot::Sender<Result<(), StoreError>>),
    Close(oneshot::Sender<()>),
}

/// The state store (see the module docs).
pub struct StateStore {
    /// Shared with the writer thread, which reloads it after a failed commit.
    tables: Arc<RwLock<Tables>>,
    writer: Option<mpsc::Sender<Job>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Key of the schema fingerprint in the metadata table.
pub const META_FINGERPRINT: &str = "schema_sha256";

impl StateStore {
    /// Opens a store. When the stored schema fingerprint differs from `fingerprint` (or the
    /// database is new), the state is reset to `seed`.
    pub fn open(
        store: &Store,
        fingerprint: &str,
        seed: Vec<Change>,
    ) -> Result<Arc<StateStore>, StoreError> {
        match store {
            Store::Memory => {
                let mut tables = Tables::default();
                for change in &seed {
                    tables.apply(change);
                }
                tables.apply(&Change::Meta {
                    key: META_FINGERPRINT.to_owned(),
                    value: fingerprint.to_owned(),
                });
                Ok(Arc::new(StateStore {
                    tables: Arc::new(RwLock::new(tables)),
                    writer: None,
                    path: None,
                }))
            }
            Store::Sqlite(path) => Self::open_sqlite(path, fingerprint, seed),
        }
    }

    fn open_sqlite(
        path: &Path,
        fingerprint: &str,
        seed: Vec<Change>,
    ) -> Result<Arc<StateStore>, StoreError> {
        let mut conn = Connection::open(path).map_err(sqlite("open database"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite("set synchronous"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite("set busy timeout"))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS objects (
                 path TEXT PRIMARY KEY, collection TEXT, body TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS objects_by_collection ON objects (collection);
             CREATE TABLE IF NOT EXISTS tombstones (path TEXT PRIMARY KEY, collection TEXT NOT NULL);",
        )
        .map_err(sqlite("create tables"))?;
        let stored: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [META_FINGERPRINT],
                |row| row.get(0),
            )
            .optional()
            .map_err(sqlite("read fingerprint"))?;
        if stored.as_deref() != Some(fingerprint) {
            if stored.is_some() {
                tracing::info!("schema fingerprint changed; resetting the mock state");
            }
            let mut changes = seed;
            changes.push(Change::Meta {
                key: META_FINGERPRINT.to_owned(),
                value: fingerprint.to_owned(),
            });
            write_reset(&mut conn, &changes)?;
        }
        let tables = Arc::new(RwLock::new(load(&conn)?));
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            conn,
            receiver,
            tables: Arc::clone(&tables),
            backlog: VecDeque::new(),
        };
        std::thread::Builder::new()
            .name("mock-store-writer".to_owned())
            .spawn(move || writer.run())
            .map_err(|_| StoreError::Closed)?;
        Ok(Arc::new(StateStore {
            tables,
            writer: Some(sender),
            path: Some(path.to_owned()),
        }))
    }

    /// The SQLite file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A read guard on the tables; do not hold it across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A clone of the object at a path.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.read().get(path).cloned()
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<String> {
        self.read().meta.get(key).cloned()
    }

    /// Applies changes atomically; returns once they are durable.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        self.submit(changes)?.durable().await
    }

    /// Applies changes to memory and queues them for SQLite; await [`Pending::durable`] before
    /// replying. Callers that serialise writes release their lock between the two steps, so
    /// concurrent writers share one SQLite commit.
    pub fn submit(&self, changes: Vec<Change>) -> Result<Pending, StoreError> {
        if changes.is_empty() {
            return Ok(Pending(None));
        }
        let receiver = {
            let mut tables = self
                .tables
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for change in &changes {
                tables.apply(change);
            }
            match &self.writer {
                None => return Ok(Pending(None)),
                Some(writer) => {
                    let (ack, receiver) = oneshot::channel();
                    writer
                        .send(Job::Batch(changes, ack))
                        .map_err(|_| StoreError::Closed)?;
                    receiver
                }
            }
        };
        Ok(Pending(Some(receiver)))
    }

    /// Replaces the whole state with a seed (keeps metadata).
    pub async fn reset(&self, seed: Vec<Change>) -> Result<(), StoreError> {
        let receiver = {
            let mut tables = self
                .tables
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let meta = std::mem::take(&mut tables.meta);
            *tables = Tables {
                meta: meta.clone(),
                ..Tables::default()
            };
            for change in &seed {
                tables.apply(change);
            }
            let mut changes = seed;
            changes.extend(
                meta.into_iter()
                    .map(|(key, value)| Change::Meta { key, value }),
            );
            match &self.writer {
                None => return Ok(()),
                Some(writer) => {
                    let (ack, receiver) = oneshot::channel();
                    writer
                        .send(Job::Reset(changes, ack))
                        .map_err(|_| StoreError::Closed)?;
                    receiver
                }
            }
        };
        receiver.await.map_err(|_| StoreError::Closed)?
    }

    /// Flushes and closes the database (checkpointing the WAL).
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            let (ack, receiver) = oneshot::channel();
            if writer.send(Job::Close(ack)).is_ok() {
                let _ = receiver.await;
            }
        }
    }
}

fn load(conn: &Connection) -> Result<Tables, StoreError> {
    let mut tables = Tables::default();
    let mut statement = conn
        .prepare("SELECT path, collection, body FROM objects")
        .map_err(sqlite("prepare load"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .map_err(sqlite("load objects"))?;
    for row in rows {
        let (path, collection, body) = row.map_err(sqlite("load objects"))?;
        let value: Value =
            serde_json::from_str(&body).map_err(|_| StoreError::Corrupt(path.clone()))?;
        tables.apply(&Change::Put {
            path,
            collection,
            value,
        });
    }
    let mut statement = conn
        .prepare("SELECT path, collection FROM tombstones")
        .map_err(sqlite("prepare load"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(sqlite("load tombstones"))?;
    for row in rows {
        let (path, collection) = row.map_err(sqlite("load tombstones"))?;
        tables.tombstones.insert(path, collection);
    }
    let mut statement = conn
        .prepare("SELECT key, value FROM meta")
        .map_err(sqlite("prepare load"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(sqlite("load meta"))?;
    for row in rows {
        let (key, value) = row.map_err(sqlite("load meta"))?;
        tables.meta.insert(key, value);
    }
    Ok(tables)
}

fn write_changes(tx: &rusqlite::Transaction<'_>, changes: &[Change]) -> Result<(), StoreError> {
    for change in changes {
        match change {
            Change::Put {
                path,
                collection,
                value,
            } => {
                let body = value.to_string();
                tx.prepare_cached(
                    "INSERT INTO objects (path, collection, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT(path) DO UPDATE SET collection = excluded.collection, body = excluded.body",
                )
                .and_then(|mut s| s.execute(params![path, collection, body]))
                .map_err(sqlite("write object"))?;
                tx.prepare_cached("DELETE FROM tombstones WHERE path = ?1")
                    .and_then(|mut s| s.execute([path]))
                    .map_err(sqlite("clear tombstone"))?;
            }
            Change::Delete { path } => {
                let collection: Option<Option<String>> = tx
                    .prepare_cached("SELECT collection FROM objects WHERE path = ?1")
                    .and_then(|mut s| s.query_row([path], |row| row.get(0)).optional())
                    .map_err(sqlite("read member"))?;
                // Everything strictly below `path/`: the range ['path/', 'path0').
                let low = format!("{path}/");
                let high = format!("{path}0");
                tx.prepare_cached(
                    "DELETE FROM objects WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
                )
                .and_then(|mut s| s.execute(params![path, low, high]))
                .map_err(sqlite("delete objects"))?;
                if let Some(Some(collection)) = collection {
                    tx.prepare_cached(
                        "INSERT INTO tombstones (path, collection) VALUES (?1, ?2)
                         ON CONFLICT(path) DO UPDATE SET collection = excluded.collection",
                    )
                    .and_then(|mut s| s.execute(params![path, collection]))
                    .map_err(sqlite("write tombstone"))?;
                }
            }
            Change::Meta { key, value } => {
                tx.prepare_cached(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut s| s.execute(params![key, value]))
                .map_err(sqlite("write meta"))?;
            }
        }
    }
    Ok(())
}

fn write_reset(conn: &mut Connection, changes: &[Change]) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(sqlite("begin reset"))?;
    tx.execute_batch("DELETE FROM objects; DELETE FROM tombstones; DELETE FROM meta;")
        .map_err(sqlite("clear tables"))?;
    write_changes(&tx, changes)?;
    tx.commit().map_err(sqlite("commit reset"))
}

/// The writer thread: commits batches to SQLite (group commit) and keeps memory honest.
///
/// Memory is changed when a request submits its changes, before SQLite commits them. When a
/// commit fails (disk full, I/O error), memory would be ahead of the database, so the writer
/// reloads memory from the database (the durable truth) and re-applies the jobs submitted
/// meanwhile, all before it acknowledges anything: the failed request answers with an error and
/// its change is visible to nobody, which keeps writes transactional.
struct Writer {
    conn: Connection,
    receiver: mpsc::Receiver<Job>,
    tables: Arc<RwLock<Tables>>,
    /// Jobs taken off the channel during a resync, handled before new ones.
    backlog: VecDeque<Job>,
}

type Batch = (Vec<Change>, oneshot::Sender<Result<(), StoreError>>);

impl Writer {
    fn next_job(&mut self, wait: bool) -> Option<Job> {
        if let Some(job) = self.backlog.pop_front() {
            return Some(job);
        }
        if wait {
            self.receiver.recv().ok()
        } else {
            self.receiver.try_recv().ok()
        }
    }

    fn run(mut self) {
        while let Some(job) = self.next_job(true) {
            let mut batches = Vec::new();
            let mut next = Some(job);
            // Group commit: take every batch that is already waiting.
            while let Some(job) = next.take() {
                match job {
                    Job::Batch(changes, ack) => {
                        batches.push((changes, ack));
                        if batches.len() < 512 {
                            next = self.next_job(false);
                        }
                    }
                    Job::Reset(changes, ack) => {
                        self.flush(std::mem::take(&mut batches));
                        let result = write_reset(&mut self.conn, &changes);
                        if result.is_err() {
                            self.resync();
                        }
                        let _ = ack.send(result);
                    }
                    Job::Close(ack) => {
                        self.flush(std::mem::take(&mut batches));
                        let _ = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
                        let _ = ack.send(());
                        return;
                    }
                }
            }
            self.flush(batches);
        }
    }

    /// Commits batches, resyncs memory if any failed, then acknowledges each.
    fn flush(&mut self, batches: Vec<Batch>) {
        if batches.is_empty() {
            return;
        }
        let results = commit_batches(&mut self.conn, &batches);
        if results.iter().any(Result::is_err) {
            self.resync();
        }
        for ((_, ack), result) in batches.into_iter().zip(results) {
            let _ = ack.send(result);
        }
    }

    /// Reloads memory from the database and re-applies the jobs that were submitted (and so
    /// applied to memory) but not yet committed.
    fn resync(&mut self) {
        let mut tables = self
            .tables
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // With the write lock held nobody can submit; whatever was submitted is in the channel.
        while let Ok(job) = self.receiver.try_recv() {
            self.backlog.push_back(job);
        }
        match load(&self.conn) {
            Ok(fresh) => {
                *tables = fresh;
                for job in &self.backlog {
                    match job {
                        Job::Batch(changes, _) => {
                            for change in changes {
                                tables.apply(change);
                            }
                        }
                        Job::Reset(changes, _) => {
                            *tables = Tables::default();
                            for change in changes {
                                tables.apply(change);
                            }
                        }
                        Job::Close(_) => {}
                    }
                }
                tracing::warn!("a commit failed; memory reloaded from the database");
            }
            Err(error) => {
                tracing::error!(error = %error, "a commit failed and the database cannot be reloaded; memory may be ahead of it");
            }
        }
    }
}

/// Commits all batches in one transaction; when that fails, each batch alone, so one bad batch
/// fails only its own request. Returns one result per batch.
fn commit_batches(conn: &mut Connection, batches: &[Batch]) -> Vec<Result<(), StoreError>> {
    let commit = |conn: &mut Connection, batches: &[Batch]| -> Result<(), StoreError> {
        let tx = conn.transaction().map_err(sqlite("begin"))?;
        for (changes, _) in batches {
            write_changes(&tx, changes)?;
        }
        tx.commit().map_err(sqlite("commit"))
    };
    match commit(conn, batches) {
        Ok(()) => batches.iter().map(|_| Ok(())).collect(),
        Err(error) => {
            tracing::error!(error = %error, "group commit failed; retrying batches one by one");
            batches
                .iter()
                .map(|batch| commit(conn, std::slice::from_ref(batch)))
                .collect()
        }
    }
}

/// Convenience: a JSON object from a map.
pub fn object(map: Map<String, Value>) -> Value {
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn put(path: &str, collection: Option<&str>, value: Value) -> Change {
        Change::Put {
            path: path.to_owned(),
            collection: collection.map(str::to_owned),
            value,
        }
    }

    fn temp_db(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mock-server-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("state.db")
    }

    async fn exercise(store: Store) {
        let seed = vec![put(
            "/nodes/pve1",
            Some("/nodes"),
            json!({"status": "online"}),
        )];
        let state = StateStore::open(&store, "fp1", seed.clone()).unwrap();
        state
            .apply(vec![
                put(
                    "/nodes/pve1/qemu/100",
                    Some("/nodes/pve1/qemu"),
                    json!({"cores": 2}),
                ),
                put(
                    "/nodes/pve1/qemu/100/status/current",
                    None,
                    json!({"status": "running"}),
                ),
            ])
            .await
            .unwrap();
        {
            let tables = state.read();
            assert_eq!(tables.members("/nodes/pve1/qemu").count(), 1);
            assert_eq!(tables.get("/nodes/pve1/qemu/100").unwrap()["cores"], 2);
        }
        state
            .apply(vec![Change::Delete {
                path: "/nodes/pve1/qemu/100".to_owned(),
            }])
            .await
            .unwrap();
        {
            let tables = state.read();
            assert_eq!(tables.members("/nodes/pve1/qemu").count(), 0);
            assert!(!tables.exists("/nodes/pve1/qemu/100/status/current"));
            assert!(tables.is_tombstone("/nodes/pve1/qemu/100"));
        }
        state
            .apply(vec![put(
                "/nodes/pve1/qemu/101",
                Some("/nodes/pve1/qemu"),
                json!({"cores": 1}),
            )])
            .await
            .unwrap();
        state.close().await;
        drop(state);
        if let Store::Sqlite(_) = store {
            // Reopening with the same fingerprint keeps rows; a new fingerprint resets.
            let state = StateStore::open(&store, "fp1", seed.clone()).unwrap();
            {
                let tables = state.read();
                assert!(tables.exists("/nodes/pve1/qemu/101"));
                assert!(tables.is_tombstone("/nodes/pve1/qemu/100"));
                assert_eq!(tables.members("/nodes/pve1/qemu").count(), 1);
            }
            state.close().await;
            drop(state);
            let state = StateStore::open(&store, "fp2", seed).unwrap();
            assert!(!state.read().exists("/nodes/pve1/qemu/101"));
            assert!(state.read().exists("/nodes/pve1"));
            state.reset(vec![]).await.unwrap();
            assert!(!state.read().exists("/nodes/pve1"));
            state.close().await;
        }
    }

    #[tokio::test]
    async fn memory_backend() {
        exercise(Store::Memory).await;
    }

    #[tokio::test]
    async fn sqlite_backend() {
        let path = temp_db("backend");
        exercise(Store::Sqlite(path.clone())).await;
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn a_failed_commit_leaves_memory_as_the_database() {
        let path = temp_db("failed-commit");
        let state = StateStore::open(&Store::Sqlite(path.clone()), "fp", vec![]).unwrap();
        state
            .apply(vec![put("/kept", None, json!({"a": 1}))])
            .await
            .unwrap();
        // Make SQLite refuse one path, as a full disk or an I/O error would refuse a commit.
        let sabotage = Connection::open(&path).unwrap();
        sabotage
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON objects WHEN NEW.path = '/refused'
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            )
            .unwrap();
        drop(sabotage);
        let error = state
            .apply(vec![
                put("/kept", None, json!({"a": 2})),
                put("/refused", None, json!({"b": 1})),
            ])
            .await
            .expect_err("the commit fails");
        assert!(error.to_string().contains("SQLite"), "{error}");
        // Neither change of the failed request is visible: memory is what the database holds.
        assert_eq!(state.get("/refused"), None);
        assert_eq!(state.get("/kept").unwrap()["a"], 1);
        // The store keeps working for other requests.
        state
            .apply(vec![put("/later", None, json!({"c": 3}))])
            .await
            .unwrap();
        assert_eq!(state.get("/later").unwrap()["c"], 3);
        state.close().await;
        let reopened = StateStore::open(&Store::Sqlite(path.clone()), "fp", vec![]).unwrap();
        assert_eq!(reopened.get("/kept").unwrap()["a"], 1);
        assert_eq!(reopened.get("/refused"), None);
        assert_eq!(reopened.get("/later").unwrap()["c"], 3);
        reopened.close().await;
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn sqlite_concurrent_writes_are_all_durable() {
        let path = temp_db("concurrent");
        let state = StateStore::open(&Store::Sqlite(path.clone()), "fp", vec![]).unwrap();
        let mut handles = Vec::new();
        for index in 0..200 {
            let state = state.clone();
            handles.push(tokio::spawn(async move {
                state
                    .apply(vec![put(
                        &format!("/c/{index}"),
                        Some("/c"),
                        json!({"i": index}),
                    )])
                    .await
            }));
        }
        for handle in handles {
            handle.await.unwrap().unwrap();
        }
        state.close().await;
        drop(state);
        let conn = Connection::open(&path).unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 200);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
