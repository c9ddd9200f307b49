//! The state store: the only module that opens SQLite, and the one write path.
//!
//! State is a set of rows, not a blob: *objects* (concrete API path -> JSON object, with the
//! collection the object is a member of, if any), an index of *collection members*, *tombstones*
//! (members that were deleted, so a second delete is an error) and *metadata* (the schema
//! fingerprint and the instance key). All of it lives in memory in [`Tables`] (`tables.rs`); the
//! SQLite backend (`sqlite.rs`) writes through to a database in WAL mode (`synchronous=NORMAL`,
//! or `FULL` as chosen with [`Synchronous`], busy timeout, prepared cached statements) from one
//! dedicated writer thread.
//!
//! # The write path
//!
//! Every write is one call, [`StateStore::transact`]: it takes the store's write gate, gives the
//! planner one consistent read of the tables, applies the [`Change`]s it returns to memory under
//! the tables' write lock, releases the gate and waits until SQLite has committed them. A planner
//! that fails changes nothing; a commit that fails changes nothing either: the writer then reloads
//! memory from the database before it answers. The writer thread drains every batch that is
//! waiting and commits them together (group commit), then acknowledges each batch; a request
//! replies only after its acknowledgement, so a reply means the change is durable. Reads
//! ([`StateStore::read`]) never touch SQLite.
//!
//! Caches that depend on rows follow the rows, not the URL of the request that changed them:
//! [`Tables::apply`] drops computed guest rows of a changed guest and moves
//! [`Tables::access_rev`] on any change to users, groups, tokens, roles, the ACL or pools.

mod sqlite;
mod tables;

pub use sqlite::Synchronous;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use tokio::sync::oneshot;

use crate::telemetry::metrics::CommitMetrics;
use sqlite::Job;
pub(crate) use tables::{Change, KeptRow, NodeTexts, Rendered, Tables, UPTIME_MARK};

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
    /// A file operation on the database failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A submitted batch whose durability can be awaited.
#[derive(Debug)]
struct Pending(Option<oneshot::Receiver<Result<(), StoreError>>>);

impl Pending {
    /// Waits until the batch is committed to SQLite (immediately for the memory backend).
    async fn durable(self) -> Result<(), StoreError> {
        match self.0 {
            None => Ok(()),
            Some(receiver) => receiver.await.map_err(|_| StoreError::Closed)?,
        }
    }
}

/// The state store (see the module docs).
pub(crate) struct StateStore {
    /// Shared with the writer thread, which reloads it after a failed commit.
    tables: Arc<RwLock<Tables>>,
    /// Serialises the read-plan-submit step of writes.
    gate: tokio::sync::Mutex<()>,
    writer: Option<mpsc::Sender<Job>>,
    path: Option<PathBuf>,
    /// The writer's commit latency and batch sizes (never moves with the memory backend).
    commit_metrics: Arc<CommitMetrics>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Key of the schema fingerprint in the metadata table.
pub(crate) const META_FINGERPRINT: &str = "schema_sha256";

impl StateStore {
    /// [`StateStore::open_with`] at the default durability.
    #[cfg(test)]
    pub(crate) fn open(
        store: &Store,
        fingerprint: &str,
        seed: Vec<Change>,
    ) -> Result<Arc<StateStore>, StoreError> {
        StateStore::open_with(store, Synchronous::default(), fingerprint, move || seed)
    }

    /// Opens a store (`synchronous` applies to SQLite only). When the stored schema fingerprint
    /// differs from `fingerprint` (or the database is new), the state is reset to the changes
    /// `seed` returns (called only then, after the database is open).
    pub(crate) fn open_with(
        store: &Store,
        synchronous: Synchronous,
        fingerprint: &str,
        seed: impl FnOnce() -> Vec<Change>,
    ) -> Result<Arc<StateStore>, StoreError> {
        let commit_metrics = Arc::new(CommitMetrics::default());
        let (tables, writer, path) = match store {
            Store::Memory => {
                let mut tables = Tables::default();
                for change in &seed() {
                    tables.apply(change);
                }
                tables.apply(&Change::Meta {
                    key: META_FINGERPRINT.to_owned(),
                    value: fingerprint.to_owned(),
                });
                (Arc::new(RwLock::new(tables)), None, None)
            }
            Store::Sqlite(path) => {
                let (tables, writer) = sqlite::open(
                    path,
                    synchronous,
                    fingerprint,
                    seed,
                    Arc::clone(&commit_metrics),
                )?;
                (tables, Some(writer), Some(path.clone()))
            }
        };
        Ok(Arc::new(StateStore {
            tables,
            gate: tokio::sync::Mutex::new(()),
            writer,
            path,
            commit_metrics,
        }))
    }

    /// The writer's commit latency and batch sizes.
    pub(crate) fn commit_metrics(&self) -> &CommitMetrics {
        &self.commit_metrics
    }

    /// The size of the SQLite write-ahead log (`state.db-wal`), if there is one.
    pub(crate) fn wal_bytes(&self) -> Option<u64> {
        let mut name = self.path.as_ref()?.as_os_str().to_owned();
        name.push("-wal");
        std::fs::metadata(PathBuf::from(name))
            .ok()
            .map(|meta| meta.len())
    }

    /// The SQLite file, if any.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A read guard on the tables; do not hold it across an `.await`.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A clone of the object at a path.
    #[cfg(test)]
    pub(crate) fn get(&self, path: &str) -> Option<serde_json::Value> {
        self.read().get(path)
    }

    /// A metadata value.
    pub(crate) fn meta(&self, key: &str) -> Option<String> {
        self.read().meta.get(key).cloned()
    }

    /// The one write path (see the module docs): under the write gate, `plan` reads one
    /// consistent snapshot and returns the changes to make and a value for the caller; the
    /// changes are applied atomically, and the call returns once they are durable. When `plan`
    /// fails, nothing is written and its error is returned.
    pub(crate) async fn transact<T, E>(
        &self,
        plan: impl FnOnce(&Tables) -> Result<(Vec<Change>, T), E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let (pending, value) = {
            let _gate = self.gate.lock().await;
            let (changes, value) = plan(&self.read())?;
            (self.submit(changes)?, value)
        };
        pending.durable().await?;
        Ok(value)
    }

    /// Applies changes atomically; returns once they are durable.
    pub(crate) async fn apply(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        self.transact(|_| Ok::<_, StoreError>((changes, ()))).await
    }

    /// Applies changes to memory and queues them for SQLite; the caller awaits
    /// [`Pending::durable`] after releasing the gate, so concurrent writers share one commit.
    fn submit(&self, changes: Vec<Change>) -> Result<Pending, StoreError> {
        if changes.is_empty() {
            return Ok(Pending(None));
        }
        // Rendered before memory is locked (the SQLite backend only).
        enum Prepared {
            Memory(Vec<Change>),
            Sqlite(Rendered),
        }
        let prepared = if self.writer.is_some() {
            Prepared::Sqlite(Rendered::new(changes))
        } else {
            Prepared::Memory(changes)
        };
        let receiver = {
            let mut tables = self
                .tables
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match prepared {
                Prepared::Memory(changes) => {
                    for change in &changes {
                        tables.apply(change);
                    }
                    None
                }
                Prepared::Sqlite(mut rendered) => {
                    rendered.apply_to(&mut tables);
                    // Queued while memory is still locked, so the writer commits in the order
                    // applied.
                    self.queue(|ack| Job::Batch(rendered, ack))?
                }
            }
        };
        Ok(Pending(receiver))
    }

    /// Hands a job to the SQLite writer thread; `None` for the memory backend.
    fn queue(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<(), StoreError>>) -> Job,
    ) -> Result<Option<oneshot::Receiver<Result<(), StoreError>>>, StoreError> {
        let Some(writer) = &self.writer else {
            return Ok(None);
        };
        let (ack, receiver) = oneshot::channel();
        writer.send(job(ack)).map_err(|_| StoreError::Closed)?;
        Ok(Some(receiver))
    }

    /// Replaces the whole state with a seed (keeps metadata), under the write gate;
    /// `before` runs under the gate first (the caller resets what lives beside the store).
    pub(crate) async fn reset(
        &self,
        seed: Vec<Change>,
        before: impl FnOnce(),
    ) -> Result<(), StoreError> {
        let _gate = self.gate.lock().await;
        before();
        let receiver = {
            let mut tables = self
                .tables
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let meta = std::mem::take(&mut tables.meta);
            *tables = Tables {
                meta: meta.clone(),
                access_rev: tables.access_rev + 1,
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
            self.queue(|ack| Job::Reset(changes, ack))?
        };
        Pending(receiver).durable().await
    }

    /// Flushes and closes the database (checkpointing the WAL).
    pub(crate) async fn close(&self) {
        if let Some(writer) = &self.writer {
            let (ack, receiver) = oneshot::channel();
            if writer.send(Job::Close(ack)).is_ok() {
                let _ = receiver.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rusqlite::Connection;
    use serde_json::{Value, json};
    use std::sync::atomic::Ordering;

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
            state.reset(vec![], || {}).await.unwrap();
            assert!(!state.read().exists("/nodes/pve1"));
            state.close().await;
        }
    }

    #[tokio::test]
    async fn forgotten_rows_leave_no_tombstone() {
        let path = temp_db("forget");
        let state = StateStore::open(&Store::Sqlite(path.clone()), "fp", vec![]).unwrap();
        state
            .apply(vec![
                put("/t/1", Some("/t"), json!({"a": 1})),
                put("/t/2", Some("/t"), json!({"a": 2})),
            ])
            .await
            .unwrap();
        state
            .apply(vec![
                Change::Forget {
                    path: "/t/1".to_owned(),
                },
                Change::Delete {
                    path: "/t/2".to_owned(),
                },
            ])
            .await
            .unwrap();
        {
            let tables = state.read();
            assert_eq!(tables.member_count("/t"), 0);
            assert!(!tables.is_tombstone("/t/1"));
            assert!(tables.is_tombstone("/t/2"));
        }
        state.close().await;
        let reopened = StateStore::open(&Store::Sqlite(path.clone()), "fp", vec![]).unwrap();
        assert!(!reopened.read().is_tombstone("/t/1"));
        assert!(reopened.read().is_tombstone("/t/2"));
        reopened.close().await;
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
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

    /// A new database is seeded in memory at once and written by the writer as its first job:
    /// the seed answers before anything is on disk, a write made right after opening commits
    /// after the seed, and both (with the fingerprint, or the seed would be reset) are there
    /// when the database is opened again.
    #[tokio::test]
    async fn sqlite_new_state_is_written_before_the_first_write() {
        let path = temp_db("first-job");
        let seed = vec![put("/s/seeded", Some("/s"), json!({"s": 1}))];
        let state = StateStore::open(&Store::Sqlite(path.clone()), "fp", seed).unwrap();
        assert_eq!(state.get("/s/seeded").unwrap()["s"], 1);
        assert_eq!(state.meta(META_FINGERPRINT).as_deref(), Some("fp"));
        state
            .apply(vec![put("/s/later", Some("/s"), json!({"l": 2}))])
            .await
            .unwrap();
        state.close().await;
        drop(state);
        let reopened = StateStore::open(&Store::Sqlite(path.clone()), "fp", vec![]).unwrap();
        assert_eq!(reopened.get("/s/seeded").unwrap()["s"], 1);
        assert_eq!(reopened.get("/s/later").unwrap()["l"], 2);
        assert_eq!(reopened.read().members("/s").count(), 2);
        reopened.close().await;
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// Checkpoints run on their own thread once the commits have filled the WAL, and the
    /// state stays whole through them.
    #[tokio::test]
    async fn sqlite_checkpoints_run_beside_the_writer() {
        let path = temp_db("checkpoints");
        let state = StateStore::open(&Store::Sqlite(path.clone()), "fp", vec![]).unwrap();
        assert_eq!(
            state.commit_metrics().checkpoints.load(Ordering::Relaxed),
            0
        );
        for batch in 0..30 {
            let changes = (0..100)
                .map(|index| {
                    let index = batch * 100 + index;
                    put(&format!("/c/{index}"), Some("/c"), json!({"i": index}))
                })
                .collect();
            state.apply(changes).await.unwrap();
        }
        // The thread is woken after every 1,000 row changes; wait for it (bounded).
        let mut waited = 0;
        while state.commit_metrics().checkpoints.load(Ordering::Relaxed) == 0 && waited < 1_000 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            waited += 1;
        }
        assert!(state.commit_metrics().checkpoints.load(Ordering::Relaxed) >= 1);
        state.close().await;
        drop(state);
        let reopened = StateStore::open(&Store::Sqlite(path.clone()), "fp", vec![]).unwrap();
        assert_eq!(reopened.get("/c/2999").unwrap()["i"], 2999);
        assert_eq!(reopened.read().members("/c").count(), 3_000);
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
