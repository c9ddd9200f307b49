//! The SQLite backend: schema, loading, the writer thread with group commit, and the resync of
//! memory after a failed commit. Nothing outside the store module sees a connection.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::tables::{Change, Rendered, Tables, Written, compact, subtree_range};
use super::{META_FINGERPRINT, StoreError};
use crate::telemetry::metrics::CommitMetrics;

fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { context, source }
}

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`), in WAL mode
/// (<https://www.sqlite.org/pragma.html#pragma_synchronous>).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// `synchronous=NORMAL`: the WAL is synced at checkpoints, not at each commit. A commit
    /// survives a crash of the mock process (the WAL is in the OS's page cache) but the last
    /// commits before a power loss or an OS crash may be lost; the database stays consistent.
    #[default]
    Normal,
    /// `synchronous=FULL`: the WAL is synced at every commit, so a reply (which waits for its
    /// commit) also survives a power loss or an OS crash. Writes cost an `fsync` each (group
    /// commit shares one between the requests that commit together).
    Full,
}

impl Synchronous {
    /// The pragma value.
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// SQLite's default `wal_autocheckpoint` (pages).
const WAL_AUTOCHECKPOINT: i64 = 1000;

/// Sets up a connection: WAL, the durability level (unless `None`: left as set), the busy
/// timeout.
fn configure(conn: &Connection, synchronous: Option<Synchronous>) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite("enable WAL"))?;
    if let Some(synchronous) = synchronous {
        conn.pragma_update(None, "synchronous", synchronous.pragma())
            .map_err(sqlite("set synchronous"))?;
    }
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite("set busy timeout"))
}

/// Whether the database has no schema yet (a new file): reading it writes nothing.
fn is_empty(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|count| count == 0)
    .map_err(sqlite("read the schema"))
}

/// A job for the writer thread.
pub(super) enum Job {
    Batch(Rendered, oneshot::Sender<Result<(), StoreError>>),
    Reset(Vec<Change>, oneshot::Sender<Result<(), StoreError>>),
    Close(oneshot::Sender<()>),
}

/// Opens (and if needed creates or resets) the database, loads it into memory and starts the
/// writer thread. Returns the tables the writer keeps honest and the writer's queue.
pub(super) fn open(
    path: &Path,
    synchronous: Synchronous,
    fingerprint: &str,
    seed: impl FnOnce() -> Vec<Change>,
    metrics: Arc<CommitMetrics>,
) -> Result<(Arc<RwLock<Tables>>, mpsc::Sender<Job>), StoreError> {
    restrict_permissions(path)?;
    let mut conn = Connection::open(path).map_err(sqlite("open database"))?;
    // A new database at `Normal` is seeded in memory at once and written by the writer thread
    // as its first job (the tables, the seed and the fingerprint, in one transaction: about a
    // millisecond of file creation and writes that no longer hold the start-up). Every later
    // commit queues behind it, so nothing acknowledged can be lost or reordered; if writing it
    // fails, the error is logged and the writes that follow fail too (the reads answer from
    // memory). An existing database is prepared (kept, or reset when its fingerprint
    // differs) and loaded here.
    let (tables, first) = if synchronous == Synchronous::Normal && is_empty(&conn)? {
        let mut changes = seed();
        changes.push(Change::Meta {
            key: META_FINGERPRINT.to_owned(),
            value: fingerprint.to_owned(),
        });
        let mut tables = Tables::default();
        for change in &changes {
            tables.apply(change);
        }
        (tables, Some((fingerprint.to_owned(), changes)))
    } else {
        prepare(&mut conn, synchronous, fingerprint, seed)?;
        (load(&conn)?, None)
    };
    let tables = Arc::new(RwLock::new(tables));
    let checkpointer = match Checkpointer::start(path, synchronous, Arc::clone(&metrics)) {
        Ok(checkpointer) => {
            // The writer no longer checkpoints when its commits fill the WAL (unless the
            // checkpoint thread turns out to have no connection: `Writer::checkpoint_due`).
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(sqlite("hand checkpoints over"))?;
            Some(checkpointer)
        }
        Err(error) => {
            tracing::warn!(%error, "no checkpoint thread; the writer checkpoints as it commits");
            None
        }
    };
    let (sender, receiver) = mpsc::channel();
    let mut writer = Writer {
        conn,
        receiver,
        tables: Arc::clone(&tables),
        backlog: VecDeque::new(),
        metrics,
        checkpointer,
    };
    std::thread::Builder::new()
        .name("mock-store-writer".to_owned())
        .spawn(move || {
            if let Some((fingerprint, changes)) = first {
                writer.create(synchronous, &fingerprint, changes);
            }
            writer.run();
        })
        .map_err(|_| StoreError::Closed)?;
    Ok((tables, sender))
}

/// Runs the WAL's checkpoints on a connection and thread of its own, so that no commit waits
/// for one. With the writer checkpointing itself (SQLite's default, when a commit leaves 1,000
/// pages or more in the WAL), the request whose commit crosses that mark waits while the WAL
/// is copied into the database and the database synced: a few milliseconds, the slowest
/// creates of a run. A `PASSIVE` checkpoint here copies what it can without blocking the
/// writer, which starts the WAL over once a checkpoint has copied all of it (nothing else reads
/// the database); the writer wakes this thread after about as many row changes as
/// [`WAL_AUTOCHECKPOINT`] has pages.
struct Checkpointer {
    wake: mpsc::SyncSender<()>,
    /// Row changes committed since the thread was last woken.
    pending: usize,
}

impl Checkpointer {
    /// Starts the thread, which opens its own connection when it is first woken (not during
    /// the start-up, whose two cores it would share: opening and configuring a second
    /// connection takes about 0.4 ms, and a state may never fill its WAL). A thread that
    /// cannot open one logs why and ends; the writer finds out on its next wake-up and
    /// checkpoints itself again.
    fn start(
        path: &Path,
        synchronous: Synchronous,
        metrics: Arc<CommitMetrics>,
    ) -> Result<Checkpointer, StoreError> {
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("mock-store-checkpoint".to_owned())
            .spawn(move || {
                if woken.recv().is_err() {
                    return;
                }
                let opened = Connection::open(&path)
                    .map_err(sqlite("open the checkpoint connection"))
                    .and_then(|conn| configure(&conn, Some(synchronous)).map(|()| conn));
                let conn = match opened {
                    Ok(conn) => conn,
                    Err(error) => {
                        tracing::warn!(
                            %error,
                            "no checkpoint connection; the writer checkpoints as it commits"
                        );
                        return;
                    }
                };
                loop {
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        row.get::<_, i64>(0)
                    });
                    match done {
                        Ok(_) => {
                            metrics
                                .checkpoints
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(error) => tracing::warn!(%error, "WAL checkpoint failed"),
                    }
                    if woken.recv().is_err() {
                        return;
                    }
                }
            })
            .map_err(|source| StoreError::Io {
                context: "starting the checkpoint thread".to_owned(),
                source,
            })?;
        Ok(Checkpointer { wake, pending: 0 })
    }

    /// Counts committed row changes; wakes the thread (unless it is already due to run) once
    /// enough have gathered. `false` when the thread is gone (it found no connection).
    fn committed(&mut self, changes: usize) -> bool {
        self.pending += changes;
        if self.pending as i64 >= WAL_AUTOCHECKPOINT {
            self.pending = 0;
            if let Err(mpsc::TrySendError::Disconnected(())) = self.wake.try_send(()) {
                return false;
            }
        }
        true
    }
}

/// Sets up the connection and creates, resets (when the fingerprint differs) or keeps the
/// state.
fn prepare(
    conn: &mut Connection,
    synchronous: Synchronous,
    fingerprint: &str,
    seed: impl FnOnce() -> Vec<Change>,
) -> Result<(), StoreError> {
    // A new database holds nothing to lose until it is seeded, so at `Normal` it is created
    // and seeded without an fsync each (rollback journal and database for the switch to WAL,
    // the WAL header and its directory: four to six fsyncs of 1-4 ms here, most of the
    // start-up): a crash of the process still loses nothing (the writes are in the OS's page
    // cache), and a power loss at that moment leaves an empty or partly written new file.
    // Checkpoints stay off until `synchronous` is back at `Normal`, so the first checkpoint
    // syncs the WAL (and its directory) before it copies anything into the database, as every
    // later one does. `Full` syncs the creation too.
    let fresh = synchronous == Synchronous::Normal && is_empty(conn)?;
    if fresh {
        conn.pragma_update(None, "synchronous", "OFF")
            .map_err(sqlite("set synchronous"))?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sqlite("pause checkpoints"))?;
    }
    configure(conn, if fresh { None } else { Some(synchronous) })?;
    // One transaction creates the tables, and seeds them when the state is new or its
    // fingerprint changed: one commit instead of one per statement (each a round of WAL
    // writes and locks; a new state took five).
    let tx = conn.transaction().map_err(sqlite("begin preparing"))?;
    // Databases written before issue 15's round 6 have an index of `objects` by collection:
    // no statement reads by collection (the state is loaded whole and members are kept in
    // memory), so it only cost every write of a row an index update (and its pages in the
    // WAL); it is dropped. An older build creates it again, and reads the rows as they are.
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS objects (
             path TEXT PRIMARY KEY, collection TEXT, body TEXT NOT NULL);
         DROP INDEX IF EXISTS objects_by_collection;
         CREATE TABLE IF NOT EXISTS tombstones (path TEXT PRIMARY KEY, collection TEXT NOT NULL);",
    )
    .map_err(sqlite("create tables"))?;
    let stored: Option<String> = tx
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
        let mut changes = seed();
        changes.push(Change::Meta {
            key: META_FINGERPRINT.to_owned(),
            value: fingerprint.to_owned(),
        });
        replace_all(&tx, &changes)?;
    }
    tx.commit().map_err(sqlite("commit preparing"))?;
    if fresh {
        conn.pragma_update(None, "synchronous", synchronous.pragma())
            .map_err(sqlite("set synchronous"))?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)
            .map_err(sqlite("resume checkpoints"))?;
    }
    Ok(())
}

/// Creates the database file readable and writable by its owner only (0600), or takes group and
/// world access away from an existing one: it holds password hashes and the key that signs
/// tickets. SQLite gives the `-wal` and `-shm` files the mode of the database file.
fn restrict_permissions(path: &Path) -> Result<(), StoreError> {
    let io = |source: std::io::Error| StoreError::Io {
        context: format!("restricting the permissions of {}", path.display()),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        for file in [
            path.to_path_buf(),
            sidecar(path, "-wal"),
            sidecar(path, "-shm"),
        ] {
            match std::fs::metadata(&file) {
                Ok(metadata) if metadata.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, io);
    Ok(())
}

/// `state.db-wal` beside `state.db`.
#[cfg(unix)]
fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
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
        // Kept as stored (every row was written as compact JSON), once it is known to parse.
        serde_json::from_str::<serde::de::IgnoredAny>(&body)
            .map_err(|_| StoreError::Corrupt(path.clone()))?;
        let _ = tables.put_text(&path, collection.as_deref(), body.into_boxed_str());
    }
    let tombstones = load_pairs(
        conn,
        "SELECT path, collection FROM tombstones",
        "load tombstones",
    )?;
    tables.tombstones.extend(tombstones);
    let meta = load_pairs(conn, "SELECT key, value FROM meta", "load meta")?;
    tables.meta.extend(meta);
    Ok(tables)
}

/// Every row of a two-column text query (`tombstones`, `meta`).
fn load_pairs(
    conn: &Connection,
    query: &str,
    context: &'static str,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut statement = conn.prepare(query).map_err(sqlite("prepare load"))?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(sqlite(context))?;
    rows.collect::<Result<_, _>>().map_err(sqlite(context))
}

/// Writes changes: puts with their text ([`Written::Put`], from a [`Rendered`] batch) or as
/// made ([`Written::Change`], rendered here). A put deletes its path's tombstone only when it
/// may have one ([`Written::Put`]'s `clears_tombstone`), and a delete or forget reaches below
/// its path only when rows may be there ([`Written::Change`]'s `rows_below`), unless
/// `trust_notes` is off (then each does, as when memory's view of the batch may be out of
/// date). The put statements are taken from the statement cache once per call, not once per
/// change.
fn write_changes<'c>(
    conn: &Connection,
    changes: impl IntoIterator<Item = Written<'c>>,
    trust_notes: bool,
) -> Result<(), StoreError> {
    let mut upsert = None;
    let mut clear = None;
    for written in changes {
        let rendered;
        let (path, collection, body, clears_tombstone) = match written {
            Written::Put {
                path,
                collection,
                body,
                clears_tombstone,
            } => (path, collection, body, clears_tombstone),
            Written::Change {
                change:
                    Change::Put {
                        path,
                        collection,
                        value,
                    },
                ..
            } => {
                rendered = compact(value);
                (path.as_str(), collection.as_deref(), &*rendered, true)
            }
            Written::Change {
                change:
                    Change::PutText {
                        path,
                        collection,
                        body,
                    },
                ..
            } => (path.as_str(), collection.as_deref(), &**body, true),
            Written::Change { change, rows_below } => {
                write_other(conn, change, rows_below || !trust_notes)?;
                continue;
            }
        };
        let statement = match &mut upsert {
            Some(statement) => statement,
            None => upsert.insert(
                conn.prepare_cached(
                    "INSERT INTO objects (path, collection, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT(path) DO UPDATE SET collection = excluded.collection, body = excluded.body",
                )
                .map_err(sqlite("write object"))?,
            ),
        };
        statement
            .execute(params![path, collection, body])
            .map_err(sqlite("write object"))?;
        if clears_tombstone || !trust_notes {
            let statement = match &mut clear {
                Some(statement) => statement,
                None => clear.insert(
                    conn.prepare_cached("DELETE FROM tombstones WHERE path = ?1")
                        .map_err(sqlite("clear tombstone"))?,
                ),
            };
            statement
                .execute([path])
                .map_err(sqlite("clear tombstone"))?;
        }
    }
    Ok(())
}

/// Writes a change that is not a put (a delete, a forget, a metadata value); a delete or forget
/// of a path with no rows below it (`rows_below` off) deletes its own row alone, a plain look-up
/// of the primary key instead of a range.
fn write_other(conn: &Connection, change: &Change, rows_below: bool) -> Result<(), StoreError> {
    match change {
        Change::Put { .. } | Change::PutText { .. } => {
            write_changes(conn, [Written::as_made(change)], false)
        }
        Change::Delete { path } | Change::Forget { path } => {
            let tombstone = matches!(change, Change::Delete { .. });
            // Only a tombstone needs the collection (pruned history leaves none).
            let collection: Option<Option<String>> = if tombstone {
                conn.prepare_cached("SELECT collection FROM objects WHERE path = ?1")
                    .and_then(|mut s| s.query_row([path], |row| row.get(0)).optional())
                    .map_err(sqlite("read member"))?
            } else {
                None
            };
            if rows_below {
                let (low, high) = subtree_range(path);
                conn.prepare_cached(
                    "DELETE FROM objects WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
                )
                .and_then(|mut s| s.execute(params![path, low, high]))
                .map_err(sqlite("delete objects"))?;
            } else {
                conn.prepare_cached("DELETE FROM objects WHERE path = ?1")
                    .and_then(|mut s| s.execute([path]))
                    .map_err(sqlite("delete objects"))?;
            }
            if let Some(Some(collection)) = collection {
                conn.prepare_cached(
                    "INSERT INTO tombstones (path, collection) VALUES (?1, ?2)
                     ON CONFLICT(path) DO UPDATE SET collection = excluded.collection",
                )
                .and_then(|mut s| s.execute(params![path, collection]))
                .map_err(sqlite("write tombstone"))?;
            }
            Ok(())
        }
        Change::Meta { key, value } => conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute(params![key, value]))
            .map(|_| ())
            .map_err(sqlite("write meta")),
    }
}

fn write_reset(conn: &mut Connection, changes: &[Change]) -> Result<(), StoreError> {
    let tx = conn.transaction().map_err(sqlite("begin reset"))?;
    replace_all(&tx, changes)?;
    tx.commit().map_err(sqlite("commit reset"))
}

/// Empties the tables and writes `changes`, inside the caller's transaction.
fn replace_all(tx: &Connection, changes: &[Change]) -> Result<(), StoreError> {
    tx.execute_batch("DELETE FROM objects; DELETE FROM tombstones; DELETE FROM meta;")
        .map_err(sqlite("clear tables"))?;
    write_changes(tx, changes.iter().map(Written::as_made), false)
}

/// Runs `write` in a transaction: `BEGIN` and `COMMIT` come from the statement cache (a
/// `rusqlite::Transaction` prepares both again for every commit); on any failure the
/// transaction is rolled back.
fn in_transaction(
    conn: &Connection,
    write: impl FnOnce(&Connection) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    conn.prepare_cached("BEGIN")
        .and_then(|mut s| s.execute([]))
        .map_err(sqlite("begin"))?;
    let done = write(conn).and_then(|()| {
        conn.prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
            .map_err(sqlite("commit"))
    });
    if done.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
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
    /// Commit latency and batch sizes, for `/metrics`.
    metrics: Arc<CommitMetrics>,
    /// Runs the checkpoints (`None`: the writer's own automatic checkpoints).
    checkpointer: Option<Checkpointer>,
}

type Batch = (Rendered, oneshot::Sender<Result<(), StoreError>>);

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

    /// Writes a new database: its tables and the seed already in memory (see [`open`]).
    fn create(&mut self, synchronous: Synchronous, fingerprint: &str, changes: Vec<Change>) {
        match prepare(&mut self.conn, synchronous, fingerprint, || changes) {
            Ok(()) => {
                if self.checkpointer.is_some()
                    && let Err(error) = self.conn.pragma_update(None, "wal_autocheckpoint", 0)
                {
                    tracing::warn!(%error, "the writer could not hand checkpoints over");
                }
            }
            Err(error) => tracing::error!(
                %error,
                "the new state could not be written; the writes that follow will fail"
            ),
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
                        } else {
                            self.checkpoint_due(changes.len());
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
        let started = std::time::Instant::now();
        let results = commit_batches(&mut self.conn, &batches);
        self.metrics.latency.observe_duration(started.elapsed());
        self.metrics.batch_sizes.observe(batches.len() as u64);
        if results.iter().any(Result::is_err) {
            self.resync();
        }
        self.checkpoint_due(batches.iter().map(|(rendered, _)| rendered.len()).sum());
        for ((_, ack), result) in batches.into_iter().zip(results) {
            let _ = ack.send(result);
        }
    }

    /// Tells the checkpoint thread about committed row changes; when it is gone, takes
    /// checkpoints back (SQLite's automatic ones, at [`WAL_AUTOCHECKPOINT`] pages).
    fn checkpoint_due(&mut self, changes: usize) {
        let Some(checkpointer) = &mut self.checkpointer else {
            return;
        };
        if !checkpointer.committed(changes) {
            self.checkpointer = None;
            if let Err(error) =
                self.conn
                    .pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)
            {
                tracing::warn!(%error, "the writer could not take WAL checkpoints back");
            }
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
                let access_rev = tables.access_rev + 1;
                *tables = fresh;
                tables.access_rev = access_rev;
                // Applied again to the reloaded memory, which also records afresh which of
                // their puts remove a tombstone.
                for job in &mut self.backlog {
                    match job {
                        Job::Batch(rendered, _) => rendered.apply_to(&mut tables),
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
///
/// The batches' notes of which puts clear a tombstone were taken from memory as each batch was
/// applied after the ones before it, so they hold for the batches committed in order and
/// together; when batches are retried one by one (some fail), every put clears its tombstone.
fn commit_batches(conn: &mut Connection, batches: &[Batch]) -> Vec<Result<(), StoreError>> {
    let commit = |conn: &mut Connection, batches: &[Batch], trust_notes: bool| {
        in_transaction(conn, |conn| {
            let written = batches.iter().flat_map(|(rendered, _)| rendered.iter());
            write_changes(conn, written, trust_notes)
        })
    };
    match commit(conn, batches, true) {
        Ok(()) => batches.iter().map(|_| Ok(())).collect(),
        Err(error) => {
            tracing::error!(error = %error, "group commit failed; retrying batches one by one");
            batches
                .iter()
                .map(|batch| commit(conn, std::slice::from_ref(batch), false))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn put(path: &str, collection: Option<&str>, value: serde_json::Value) -> Change {
        Change::Put {
            path: path.to_owned(),
            collection: collection.map(str::to_owned),
            value,
        }
    }

    /// Commits batches as the writer does, after applying them to `tables` as `submit` does.
    fn commit(
        conn: &mut Connection,
        tables: &mut Tables,
        batches: Vec<Vec<Change>>,
    ) -> Vec<Result<(), StoreError>> {
        let batches: Vec<Batch> = batches
            .into_iter()
            .map(|changes| {
                let mut rendered = Rendered::new(changes);
                rendered.apply_to(tables);
                (rendered, oneshot::channel().0)
            })
            .collect();
        commit_batches(conn, &batches)
    }

    /// A put clears its path's tombstone in SQLite when memory had one, also when the batch
    /// that memory saw clear it first fails and a later one is retried alone.
    #[test]
    fn tombstones_are_cleared_as_memory_saw_them() {
        let dir = std::env::temp_dir().join(format!("mock-tomb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        let _ = std::fs::remove_file(&path);
        let mut conn = Connection::open(&path).unwrap();
        prepare(&mut conn, Synchronous::Normal, "fp", Vec::new).unwrap();
        let mut tables = load(&conn).unwrap();
        let delete = |path: &str| Change::Delete {
            path: path.to_owned(),
        };
        let results = commit(
            &mut conn,
            &mut tables,
            vec![vec![
                put("/c/1", Some("/c"), serde_json::json!({})),
                put("/c/2", Some("/c"), serde_json::json!({})),
            ]],
        );
        assert!(results.iter().all(Result::is_ok));
        commit(
            &mut conn,
            &mut tables,
            vec![vec![delete("/c/1"), delete("/c/2")]],
        );
        assert_eq!(load(&conn).unwrap().tombstones.len(), 2);
        // Put again in one group: each put clears its tombstone.
        let results = commit(
            &mut conn,
            &mut tables,
            vec![vec![put("/c/1", Some("/c"), serde_json::json!({"n": 1}))]],
        );
        assert!(results.iter().all(Result::is_ok));
        let stored = load(&conn).unwrap();
        assert!(!stored.tombstones.contains_key("/c/1"));
        assert!(stored.tombstones.contains_key("/c/2"));
        // The first batch removes `/c/2`'s tombstone in memory and fails; the second, which
        // memory saw clear nothing, is retried alone and must clear it.
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON objects WHEN NEW.path = '/refused'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
        let results = commit(
            &mut conn,
            &mut tables,
            vec![
                vec![
                    put("/c/2", Some("/c"), serde_json::json!({"n": 2})),
                    put("/refused", None, serde_json::json!({})),
                ],
                vec![put("/c/2", Some("/c"), serde_json::json!({"n": 3}))],
            ],
        );
        assert!(results[0].is_err());
        assert!(results[1].is_ok());
        let stored = load(&conn).unwrap();
        assert_eq!(stored.get("/c/2").unwrap()["n"], 3);
        assert!(stored.tombstones.is_empty(), "{:?}", stored.tombstones);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A delete or forget reaches below its path when memory had rows there, also when the
    /// batch that memory saw remove them first fails and a later one is retried alone.
    #[test]
    fn deletes_reach_the_rows_below_them() {
        let dir = std::env::temp_dir().join(format!("mock-below-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        let _ = std::fs::remove_file(&path);
        let mut conn = Connection::open(&path).unwrap();
        prepare(&mut conn, Synchronous::Normal, "fp", Vec::new).unwrap();
        let mut tables = load(&conn).unwrap();
        let forget = |path: &str| Change::Forget {
            path: path.to_owned(),
        };
        let stored = |conn: &Connection| -> Vec<String> {
            let tables = load(conn).unwrap();
            tables.objects.keys().map(|key| key.to_string()).collect()
        };
        commit(
            &mut conn,
            &mut tables,
            vec![vec![
                put("/g", Some("/c"), serde_json::json!({})),
                put("/g/status", None, serde_json::json!({})),
                put("/t/1", Some("/t"), serde_json::json!({})),
                put("/x", None, serde_json::json!({})),
                put("/x/child", None, serde_json::json!({})),
            ]],
        );
        // A leaf and a guest with a row below it, in one batch.
        let results = commit(
            &mut conn,
            &mut tables,
            vec![vec![
                forget("/t/1"),
                Change::Delete {
                    path: "/g".to_owned(),
                },
            ]],
        );
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(stored(&conn), ["/x", "/x/child"]);
        assert!(load(&conn).unwrap().is_tombstone("/g"));
        // Memory forgets `/x/child` in a batch that fails; the forget of `/x`, which memory saw
        // with nothing below it, is retried alone and must still reach `/x/child`.
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON objects WHEN NEW.path = '/refused'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
        let results = commit(
            &mut conn,
            &mut tables,
            vec![
                vec![
                    forget("/x/child"),
                    put("/refused", None, serde_json::json!({})),
                ],
                vec![forget("/x")],
            ],
        );
        assert!(results[0].is_err());
        assert!(results[1].is_ok());
        assert!(stored(&conn).is_empty(), "{:?}", stored(&conn));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A database written before round 6 (with an index of objects by collection) loads the
    /// same state, loses the index, and takes the writer's statements.
    #[test]
    fn an_older_database_is_upgraded() {
        let dir = std::env::temp_dir().join(format!("mock-upgrade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        let _ = std::fs::remove_file(&path);
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE objects (path TEXT PRIMARY KEY, collection TEXT, body TEXT NOT NULL);
             CREATE INDEX objects_by_collection ON objects (collection);
             CREATE TABLE tombstones (path TEXT PRIMARY KEY, collection TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_sha256', 'fp');
             INSERT INTO objects VALUES ('/c', NULL, '{\"n\":0}');
             INSERT INTO objects VALUES ('/c/1', '/c', '{\"n\":1}');
             INSERT INTO objects VALUES ('/c/2', '/c', '[2]');
             INSERT INTO tombstones VALUES ('/c/3', '/c');",
        )
        .unwrap();
        drop(old);
        let definition = |conn: &Connection| -> String {
            conn.query_row(
                "SELECT group_concat(sql, ';') FROM sqlite_master WHERE tbl_name = 'objects'",
                [],
                |row| row.get(0),
            )
            .unwrap()
        };
        for round in ["upgrade", "current"] {
            let mut conn = Connection::open(&path).unwrap();
            prepare(&mut conn, Synchronous::Normal, "fp", || {
                unreachable!("the fingerprint matches: no reset")
            })
            .unwrap();
            let sql = definition(&conn);
            assert!(!sql.contains("objects_by_collection"), "{round}: {sql}");
            let tables = load(&conn).unwrap();
            assert_eq!(
                tables.get("/c"),
                Some(serde_json::json!({"n": 0})),
                "{round}"
            );
            assert_eq!(tables.get("/c/2"), Some(serde_json::json!([2])), "{round}");
            assert_eq!(tables.members("/c").collect::<Vec<_>>(), ["/c/1", "/c/2"]);
            assert!(tables.is_tombstone("/c/3"), "{round}");
            // The writer's statements work on the upgraded table.
            let mut tables = tables;
            let results = commit(
                &mut conn,
                &mut tables,
                vec![vec![put("/c/1", Some("/c"), serde_json::json!({"n": 11}))]],
            );
            assert!(results.iter().all(Result::is_ok), "{round}");
            assert_eq!(load(&conn).unwrap().get("/c/1").unwrap()["n"], 11);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The chosen level reaches the connection (`PRAGMA synchronous`: 1 is NORMAL, 2 FULL).
    #[test]
    fn synchronous_reaches_the_pragma() {
        let dir = std::env::temp_dir().join(format!("mock-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (level, expected) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            let conn = Connection::open(dir.join(format!("{expected}.db"))).unwrap();
            configure(&conn, Some(level)).unwrap();
            let value: i64 = conn
                .query_row("PRAGMA synchronous", [], |row| row.get(0))
                .unwrap();
            assert_eq!(value, expected, "{level:?}");
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    /// A new database is created with fsyncs off and checkpoints paused, and left at the
    /// chosen level with checkpoints on; an existing one is opened at the chosen level.
    #[test]
    fn creation_leaves_the_chosen_level() {
        let dir = std::env::temp_dir().join(format!("mock-create-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pragma = |conn: &Connection, name: &str| -> i64 {
            conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
                .unwrap()
        };
        for (level, expected) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            let path = dir.join(format!("create-{expected}.db"));
            for round in ["new", "existing"] {
                let mut conn = Connection::open(&path).unwrap();
                let seed = || {
                    vec![Change::Meta {
                        key: "k".to_owned(),
                        value: "v".to_owned(),
                    }]
                };
                prepare(&mut conn, level, "fp", seed).unwrap();
                assert_eq!(pragma(&conn, "synchronous"), expected, "{level:?} {round}");
                assert_eq!(
                    pragma(&conn, "wal_autocheckpoint"),
                    WAL_AUTOCHECKPOINT,
                    "{level:?} {round}"
                );
                let tables = load(&conn).unwrap();
                assert_eq!(tables.meta.get("k").map(String::as_str), Some("v"));
                assert_eq!(
                    tables.meta.get(META_FINGERPRINT).map(String::as_str),
                    Some("fp")
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A checkpoint thread that cannot open its connection ends, and the writer learns it on
    /// the next wake-up (so it can take its checkpoints back); a live one is woken.
    #[test]
    fn a_checkpointer_without_a_connection_is_noticed() {
        let metrics = Arc::new(CommitMetrics::default());
        let unopenable = std::env::temp_dir()
            .join(format!("mock-no-such-dir-{}", std::process::id()))
            .join("state.db");
        let mut gone = Checkpointer::start(&unopenable, Synchronous::Normal, metrics).unwrap();
        let mut noticed = false;
        for _ in 0..500 {
            if !gone.committed(WAL_AUTOCHECKPOINT as usize) {
                noticed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(noticed, "the ended thread was never noticed");

        let (wake, woken) = mpsc::sync_channel(1);
        let mut live = Checkpointer { wake, pending: 0 };
        assert!(live.committed(1));
        assert!(woken.try_recv().is_err(), "woken before enough changes");
        assert!(live.committed(WAL_AUTOCHECKPOINT as usize));
        assert!(woken.try_recv().is_ok());
    }
}
