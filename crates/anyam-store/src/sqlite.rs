//! [`SqliteStore`]: the embedded backend — one writer connection behind a
//! mutex, a pool of WAL reader connections, and the node's small records.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use crate::catalog::{Catalog, CatalogCache, POLICY_META_PREFIX};
use crate::walsync::WalSync;
use crate::{
    Access, ApiRoot, BulkLoad, ClassScope, Collection, Ctx, Grant, ManifestEntry, NewObject,
    Organization, Page, PutOutcome, Query, ReleaseClass, Result, Search, Status, StatusOf, Store,
    StoreError, StoredObject, Token, TokenScope, User, VersionSel, schema,
};

/// How hard a commit works to survive a power loss. See the crate
/// documentation, "Durability", for what each level risks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `PRAGMA synchronous=FULL`: the WAL is fsynced before a write
    /// returns, so an acknowledged write survives a crash of the process,
    /// the OS or the power. The default. Writes of objects fsync after
    /// releasing the writer, one fsync for every commit made meanwhile
    /// (see the crate documentation, "Durability").
    #[default]
    Full,
    /// `PRAGMA synchronous=NORMAL`: the WAL is fsynced only at checkpoints.
    /// Survives a crash of the process; a power loss or OS crash may roll
    /// back the most recent acknowledged commits (never corrupts the file).
    Normal,
}

/// Tuning knobs of [`SqliteStore::open`]. `Default` is the safe choice.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    /// Reader connections kept open. A read that finds every one of them
    /// busy waits for one to come back, up to [`READER_WAIT`]; only then is
    /// an extra connection opened for it, and closed after use. Opening a
    /// connection costs its pragmas, the schema parse and every statement
    /// prepared again, and each connection maps the file anew (see
    /// `mmap_bytes`), so a read waits rather than opens while the pool is
    /// merely busy.
    pub max_idle_readers: usize,
    /// Page cache per connection, in KiB.
    pub cache_kib: i64,
    /// How much of the database file each reader connection maps into
    /// memory (`PRAGMA mmap_size`). Mapped reads skip a system call and a
    /// copy per page, about a third of the CPU time of a page of 100
    /// objects. The prices: the mapped pages count in the process's resident
    /// memory (they are the operating system's file cache, shared and
    /// reclaimable, but monitoring sees them), and a disk read error inside
    /// the mapped range ends the process with a signal instead of returning
    /// an error. Acknowledged data is not at risk either way: the writer and
    /// the checkpointer never map.
    pub mmap_bytes: i64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            max_idle_readers: 16,
            cache_kib: 64 * 1024,
            mmap_bytes: 128 << 20,
        }
    }
}

/// The embedded store. Cheap to share behind an `Arc`; every method may be
/// called from any thread.
pub struct SqliteStore {
    path: PathBuf,
    opts: SqliteOptions,
    /// The only connection that writes. SQLite allows one writer at a time
    /// anyway; holding it behind our own mutex also makes "read the
    /// collection's last `date_added`, then assign the next ones, then
    /// commit" one atomic step, which is what keeps `date_added` strictly
    /// increasing in commit order.
    writer: Mutex<Connection>,
    /// Read-only connections. In WAL mode readers see the last committed
    /// snapshot and never wait for the writer.
    readers: Mutex<ReaderPool>,
    /// Signalled when a reader goes back to the pool or is closed.
    reader_back: Condvar,
    /// Copies committed WAL frames into the database file on its own
    /// thread, so a writer's commit costs one WAL append and one fsync, not
    /// also a checkpoint (which rewrites the pages and fsyncs the database).
    checkpointer: Checkpointer,
    /// With [`Synchronous::Full`], object writes commit without fsync and
    /// wait here for a group fsync of the WAL after releasing the writer
    /// (see `walsync.rs`).
    wal_sync: WalSync,
    /// The writer connection is set to `synchronous=NORMAL` for an object
    /// write: [`SqliteStore::writer`] sets it back to the configured level
    /// before anything else writes, even after an object write that
    /// returned early.
    writer_deferred: AtomicBool,
    /// Collection ids to their row ids, for reads: collections are never
    /// deleted and an id never changes its row, so a mapping once read
    /// stays true.
    pub(crate) cids: Mutex<std::collections::HashMap<String, i64>>,
    /// The catalog tables as last read (see `catalog.rs`).
    catalog: CatalogCache,
}

/// The reader connections: those idle (with how many reads each served),
/// and how many are open in all.
#[derive(Default)]
struct ReaderPool {
    idle: Vec<(Connection, u32)>,
    open: usize,
}

/// Reads a reader connection serves before its mapping of the file is
/// dropped. Each page a connection reads through its mapping stays mapped,
/// and counted in the node's resident size, until the mapping goes: kept
/// forever, eight connections on a 240 MB database showed 410 to 600 MB
/// resident, 360 to 550 MB of it the same file pages counted once per
/// connection. Every this many reads the connection unmaps the file
/// (`mmap_size` set to 0, then back, so it maps again lazily on its next
/// read), which keeps that near the size of the pages in use. The
/// connection itself stays open, with its parsed schema and prepared
/// statements: reopening it instead had cost 3% of the node's CPU under a
/// GET load.
pub const READER_USES: u32 = 256;

/// How long a read waits for a busy pool before opening an extra
/// connection. It bounds the wait of a caller that already holds a reader
/// and asks for another while every other one is taken.
pub const READER_WAIT: Duration = Duration::from_millis(100);

/// WAL size (pages) at which the writer checkpoints by itself: a safety net
/// in case the background checkpointer falls behind. At 4 KiB pages this is
/// 256 MiB of WAL (the file then holds that plus the transaction that
/// crossed it, and keeps that size on disk).
///
/// Under a steady write load the background checkpointer is always a few
/// commits behind, so the WAL never starts over from its beginning and
/// grows until the writer checkpoints what is left, holding every write
/// meanwhile. At 64 MiB that was 6% of the CPU time of a POST load at
/// 1,000,000 objects; at 256 MiB it happens a quarter as often (POST of
/// 100,000 objects: 22,500 -> 23,600 objects/s). A larger WAL costs no
/// read: a reader looks up only frames the checkpointer has not copied.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 65_536;

/// Minimum time between background checkpoints: batching several commits
/// into one checkpoint writes pages that changed in each of them only once.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Default)]
struct CheckpointState {
    dirty: bool,
    stop: bool,
}

/// The background checkpointer: a thread with its own connection, woken
/// after commits. `PASSIVE` checkpoints never block the writer or readers;
/// they copy what they can and leave the rest for the next round.
struct Checkpointer {
    state: Arc<(Mutex<CheckpointState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Result<Checkpointer> {
        let state = Arc::new((Mutex::new(CheckpointState::default()), Condvar::new()));
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("anyam-store-checkpoint".into())
            .spawn(move || checkpoint_loop(conn, &shared))
            .map_err(|e| StoreError::Backend(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            state,
            thread: Some(thread),
        })
    }

    /// Tell the checkpointer that the WAL grew.
    fn poke(&self) {
        let (lock, cv) = &*self.state;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !st.dirty {
            st.dirty = true;
            cv.notify_one();
        }
    }
}

fn checkpoint_loop(conn: Connection, state: &(Mutex<CheckpointState>, Condvar)) {
    let (lock, cv) = state;
    loop {
        {
            let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
            while !st.dirty && !st.stop {
                st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.stop {
                return;
            }
            st.dirty = false;
        }
        // A failed round (e.g. the database is busy) is harmless: the next
        // commit pokes again, and the writer's own autocheckpoint is the
        // backstop.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        let st = lock.lock().unwrap_or_else(|e| e.into_inner());
        let _ = cv.wait_timeout_while(st, CHECKPOINT_INTERVAL, |st| !st.stop);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.state;
            lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Statement cache per connection: the page queries are built from a few
/// shapes, and the record queries are fixed.
const STATEMENT_CACHE: usize = 128;

impl SqliteStore {
    /// Open (creating if absent) the database at `path`, apply pending
    /// schema migrations, and refuse a file made by a newer program
    /// ([`StoreError::SchemaTooNew`]).
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<SqliteStore> {
        let mut writer = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ctx(&format!("opening database {}", path.display()))?;
        writer
            .busy_timeout(Duration::from_secs(10))
            .ctx("setting busy timeout")?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .ctx("switching to WAL mode")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "database refused WAL mode (journal_mode is {mode})"
            )));
        }
        let sync = match opts.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        writer
            .pragma_update(None, "synchronous", sync)
            .ctx("setting synchronous")?;
        writer
            .pragma_update(None, "foreign_keys", true)
            .ctx("enabling foreign keys")?;
        writer
            .pragma_update(None, "cache_size", -opts.cache_kib)
            .ctx("setting cache size")?;
        writer
            .pragma_update(None, "temp_store", "MEMORY")
            .ctx("setting temp store")?;
        writer
            .pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
            .ctx("setting the WAL autocheckpoint")?;
        stable_plans(&writer)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&mut writer)?;
        let ck = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ctx("opening the checkpoint connection")?;
        ck.busy_timeout(Duration::from_secs(1))
            .ctx("setting busy timeout")?;
        // The checkpoint connection must fsync like the writer does: it is
        // the one that makes the database file durable.
        ck.pragma_update(None, "synchronous", sync)
            .ctx("setting synchronous")?;
        // The file SQLite opened (links resolved, absolute): its WAL lies
        // beside it.
        let opened = writer
            .path()
            .map(PathBuf::from)
            .filter(|p| !p.as_os_str().is_empty());
        let wal_sync = WalSync::new(opened.as_deref().unwrap_or(path));
        Ok(SqliteStore {
            path: path.to_path_buf(),
            opts,
            writer: Mutex::new(writer),
            readers: Mutex::new(ReaderPool::default()),
            reader_back: Condvar::new(),
            checkpointer: Checkpointer::start(ck)?,
            wal_sync,
            writer_deferred: AtomicBool::new(false),
            cids: Mutex::new(std::collections::HashMap::new()),
            catalog: CatalogCache::default(),
        })
    }

    /// The catalog as of now (see `catalog.rs`).
    fn catalog(&self) -> Result<Arc<Catalog>> {
        let r = self.reader()?;
        self.catalog.current(&r)
    }

    /// Called after every commit that added WAL frames.
    pub(crate) fn committed(&self) {
        self.checkpointer.poke();
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this build writes and reads.
    pub fn schema_version() -> i64 {
        schema::supported()
    }

    /// The writer connection, syncing at the configured level. A panic
    /// while it was held leaves no open transaction behind (rusqlite rolls
    /// back on drop), so a poisoned lock is safe to take over.
    pub(crate) fn writer(&self) -> Result<MutexGuard<'_, Connection>> {
        let w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Under the writer's lock, so no one else changes it meanwhile.
        if self.writer_deferred.load(Ordering::Relaxed) {
            w.pragma_update(None, "synchronous", "FULL")
                .ctx("setting synchronous back to FULL")?;
            self.writer_deferred.store(false, Ordering::Relaxed);
        }
        Ok(w)
    }

    /// The writer connection for a write of objects, and whether its commit
    /// must be followed by [`SqliteStore::durable`] before the write is
    /// acknowledged: with [`Synchronous::Full`] the commit does not fsync
    /// (`synchronous=NORMAL`), and the fsync happens after the writer is
    /// released, shared with any other commit made meanwhile.
    pub(crate) fn object_writer(&self) -> Result<(MutexGuard<'_, Connection>, bool)> {
        let w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.opts.synchronous != Synchronous::Full {
            return Ok((w, false));
        }
        self.wal_sync.check()?;
        if !self.writer_deferred.load(Ordering::Relaxed) {
            // Flag first: should the pragma fail half-way, the next
            // `writer` sets FULL again.
            self.writer_deferred.store(true, Ordering::Relaxed);
            w.pragma_update(None, "synchronous", "NORMAL")
                .ctx("setting synchronous to NORMAL for an object write")?;
        }
        Ok((w, true))
    }

    /// Number a commit made through [`SqliteStore::object_writer`]; call it
    /// before releasing the writer.
    pub(crate) fn note_commit(&self) -> u64 {
        self.wal_sync.note_commit()
    }

    /// Return once the commit numbered `ticket` is durable.
    pub(crate) fn durable(&self, ticket: u64) -> Result<()> {
        self.wal_sync.wait(ticket)
    }

    /// A reader connection for the duration of the returned guard: an idle
    /// one, a new one while fewer than `max_idle_readers` are open, else
    /// the first to come back within [`READER_WAIT`], else an extra one.
    pub(crate) fn reader(&self) -> Result<Reader<'_>> {
        let max = self.opts.max_idle_readers.max(1);
        let mut deadline = None;
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some((conn, uses)) = pool.idle.pop() {
                return Ok(Reader {
                    store: self,
                    conn: Some(conn),
                    uses: uses + 1,
                });
            }
            let now = Instant::now();
            let until = *deadline.get_or_insert(now + READER_WAIT);
            if pool.open < max || now >= until {
                pool.open += 1;
                drop(pool);
                return match self.open_reader() {
                    Ok(conn) => Ok(Reader {
                        store: self,
                        conn: Some(conn),
                        uses: 1,
                    }),
                    Err(e) => {
                        self.readers.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
                        self.reader_back.notify_one();
                        Err(e)
                    }
                };
            }
            pool = self
                .reader_back
                .wait_timeout(pool, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn open_reader(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ctx("opening a reader connection")?;
        conn.busy_timeout(Duration::from_secs(10))
            .ctx("setting busy timeout")?;
        // Readers never write; query_only makes that a guarantee rather
        // than a habit.
        conn.pragma_update(None, "query_only", true)
            .ctx("setting query_only")?;
        conn.pragma_update(None, "cache_size", -(self.opts.cache_kib / 4).max(1024))
            .ctx("setting cache size")?;
        conn.pragma_update(None, "temp_store", "MEMORY")
            .ctx("setting temp store")?;
        stable_plans(&conn)?;
        conn.pragma_update(None, "mmap_size", self.opts.mmap_bytes)
            .ctx("setting mmap size")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    /// Drop an idle reader's mapping of the file, and with it the pages it
    /// holds resident; it maps the file again on its next read. SQLite
    /// unmaps when the limit changes and nothing it fetched is still held,
    /// which is so between transactions. Returns whether both steps worked
    /// (the caller closes a connection that could not).
    fn unmap(&self, conn: &Connection) -> bool {
        if self.opts.mmap_bytes <= 0 {
            return true;
        }
        conn.pragma_update(None, "mmap_size", 0).is_ok()
            && conn
                .pragma_update(None, "mmap_size", self.opts.mmap_bytes)
                .is_ok()
    }
}

/// Turn on the query planner stability guarantee. Without it SQLite lets the
/// plan depend on bound values (e.g. the `LIMIT ?`), marks such statements
/// to expire whenever a new value is bound, and re-prepares a cached page
/// statement on every call. Our plans are pinned with `INDEXED BY` anyway.
fn stable_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .ctx("enabling the query planner stability guarantee")?;
    Ok(())
}

/// A checked-out reader; goes back to the pool on drop.
pub(crate) struct Reader<'a> {
    store: &'a SqliteStore,
    conn: Option<Connection>,
    /// Reads this connection served, this one included.
    uses: u32,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // The option is only emptied in drop.
        match &self.conn {
            Some(c) => c,
            None => unreachable!("reader used after drop"),
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut pool = self.store.readers.lock().unwrap_or_else(|e| e.into_inner());
            if pool.open > self.store.opts.max_idle_readers.max(1) {
                // An extra connection: closed, outside the lock.
                pool.open -= 1;
                drop(pool);
                drop(conn);
            } else if self.uses >= READER_USES {
                drop(pool);
                // Outside the lock. A connection that cannot unmap is
                // closed instead, which unmaps too.
                let remapped = self.store.unmap(&conn);
                let mut pool = self.store.readers.lock().unwrap_or_else(|e| e.into_inner());
                if remapped {
                    pool.idle.push((conn, 0));
                    drop(pool);
                } else {
                    pool.open -= 1;
                    drop(pool);
                    drop(conn);
                }
            } else {
                pool.idle.push((conn, self.uses));
                drop(pool);
            }
            self.store.reader_back.notify_one();
        }
    }
}

/// Map a uniqueness violation on insert to `AlreadyExists`; anything else
/// is a backend failure, with what was being inserted.
fn on_insert(e: rusqlite::Error, what: impl Fn() -> String) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == ErrorCode::ConstraintViolation
        && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    {
        return StoreError::AlreadyExists(what());
    }
    StoreError::Backend(format!("inserting {}: {e}", what()))
}

fn exists(conn: &Connection, sql: &str, key: &str) -> Result<bool> {
    let mut st = conn.prepare_cached(sql).ctx("preparing existence check")?;
    st.exists([key]).ctx("checking existence")
}

fn scope_str(s: TokenScope) -> &'static str {
    match s {
        TokenScope::Full => "full",
        TokenScope::ReadOnly => "read",
        TokenScope::WriteOnly => "write",
    }
}

fn scope_from(s: &str) -> rusqlite::Result<TokenScope> {
    match s {
        "full" => Ok(TokenScope::Full),
        "read" => Ok(TokenScope::ReadOnly),
        "write" => Ok(TokenScope::WriteOnly),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown token scope {other:?}").into(),
        )),
    }
}

pub(crate) fn api_root_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiRoot> {
    let max: i64 = r.get(3)?;
    Ok(ApiRoot {
        name: r.get(0)?,
        title: r.get(1)?,
        description: r.get(2)?,
        max_content_length: max.max(0) as u64,
    })
}

pub(crate) fn collection_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Collection> {
    Ok(Collection {
        id: r.get(0)?,
        api_root: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        alias: r.get(4)?,
    })
}

pub(crate) fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        name: r.get(0)?,
        org: r.get(1)?,
        password_phc: r.get(2)?,
        is_admin: r.get(3)?,
        generation: r.get(4)?,
        disabled: r.get(5)?,
    })
}

pub(crate) fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    let scope: String = r.get(6)?;
    Ok(Token {
        id: r.get(0)?,
        user: r.get(1)?,
        sha256: r.get(2)?,
        label: r.get(3)?,
        created: r.get(4)?,
        expires: r.get(5)?,
        scope: scope_from(&scope)?,
        revoked: r.get(7)?,
    })
}

pub(crate) fn grant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        org: r.get(0)?,
        collection: r.get(1)?,
        access: Access {
            read: r.get(2)?,
            write: r.get(3)?,
        },
    })
}

pub(crate) const USER_COLS: &str =
    "SELECT name, org, password_phc, is_admin, generation, disabled FROM users";
pub(crate) const TOKEN_COLS: &str =
    "SELECT id, user, sha256, label, created, expires, scope, revoked FROM tokens";

/// A status resource as stored.
pub(crate) fn encode_status(s: &Status) -> Result<String> {
    serde_json::to_string(s).map_err(|e| StoreError::Backend(format!("encoding status: {e}")))
}

/// Store (or replace) status `s`, encoded as `body`, on `conn`, in its
/// transaction if one is open.
pub(crate) fn write_status(conn: &Connection, s: &Status, body: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO statuses (api_root, id, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (api_root, id) DO UPDATE SET body = excluded.body",
    )
    .ctx("preparing status upsert")?
    .execute(params![s.api_root, s.id, body])
    .ctx("writing status")?;
    Ok(())
}

impl Store for SqliteStore {
    fn create_api_root(&self, root: &ApiRoot) -> Result<()> {
        let max = i64::try_from(root.max_content_length)
            .map_err(|_| StoreError::Invalid("max_content_length is too large".into()))?;
        let w = self.writer()?;
        w.prepare_cached("INSERT INTO api_roots (name, title, description, max_content_length) VALUES (?1, ?2, ?3, ?4)")
            .ctx("preparing api root insert")?
            .execute(params![root.name, root.title, root.description, max])
            .map_err(|e| on_insert(e, || format!("API root {:?}", root.name)))?;
        Ok(())
    }

    fn api_roots(&self) -> Result<Vec<ApiRoot>> {
        Ok(self.catalog()?.api_roots.clone())
    }

    fn api_root(&self, name: &str) -> Result<Option<ApiRoot>> {
        Ok(self.catalog()?.api_root(name))
    }

    fn create_collection(&self, c: &Collection) -> Result<()> {
        let w = self.writer()?;
        if !exists(&w, "SELECT 1 FROM api_roots WHERE name = ?1", &c.api_root)? {
            return Err(StoreError::NotFound(format!("API root {:?}", c.api_root)));
        }
        w.prepare_cached(
            "INSERT INTO collections (id, api_root, title, description, alias) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .ctx("preparing collection insert")?
        .execute(params![c.id, c.api_root, c.title, c.description, c.alias])
        .map_err(|e| on_insert(e, || format!("collection {:?}", c.id)))?;
        Ok(())
    }

    fn collections(&self, api_root: &str) -> Result<Vec<Collection>> {
        Ok(self.catalog()?.collections(api_root))
    }

    fn collection(&self, api_root: &str, id: &str) -> Result<Option<Collection>> {
        Ok(self.catalog()?.collection(api_root, id))
    }

    fn put_objects(&self, collection: &str, objects: &[NewObject]) -> Result<Vec<PutOutcome>> {
        Ok(self.put_objects_impl(collection, objects, None, None)?.0)
    }

    fn put_objects_bulk(
        &self,
        collection: &str,
        objects: &[NewObject],
        load: &mut BulkLoad,
    ) -> Result<Vec<PutOutcome>> {
        Ok(self
            .put_objects_impl(collection, objects, None, Some(load))?
            .0)
    }

    fn put_objects_with_status(
        &self,
        collection: &str,
        objects: &[NewObject],
        status: StatusOf<'_>,
    ) -> Result<(Vec<PutOutcome>, Option<Status>)> {
        self.put_objects_impl(collection, objects, Some(status), None)
    }

    fn objects(&self, collection: &str, q: &Query) -> Result<Page<StoredObject>> {
        self.objects_impl(collection, q)
    }

    fn manifest(&self, collection: &str, q: &Query) -> Result<Page<ManifestEntry>> {
        self.manifest_impl(collection, None, q)
    }

    fn versions(&self, collection: &str, id: &str, q: &Query) -> Result<Page<ManifestEntry>> {
        self.manifest_impl(collection, Some(id), q)
    }

    fn delete_object(
        &self,
        collection: &str,
        id: &str,
        versions: &[VersionSel],
        spec_versions: &[String],
        visible: Option<&[ClassScope]>,
    ) -> Result<u64> {
        self.delete_object_impl(collection, id, versions, spec_versions, visible)
    }

    fn search(
        &self,
        collection: &str,
        visible: &[ClassScope],
        s: &Search,
    ) -> Result<Vec<StoredObject>> {
        self.search_impl(collection, visible, s)
    }

    fn release_classes(&self, collection: &str) -> Result<Vec<ReleaseClass>> {
        self.catalog()?.release_classes(collection)
    }

    fn relabel_unlabelled(&self, f: &mut dyn FnMut(&str) -> String, batch: usize) -> Result<u64> {
        self.relabel_unlabelled_impl(f, batch)
    }

    fn count_objects(&self, collection: &str) -> Result<u64> {
        let r = self.reader()?;
        let mut st = r
            .prepare_cached("SELECT n_objects FROM collections WHERE id = ?1")
            .ctx("preparing count")?;
        let n: Option<i64> = st
            .query_row([collection], |r| r.get(0))
            .optional()
            .ctx("counting objects")?;
        match n {
            Some(n) => Ok(n.max(0) as u64),
            None => Err(StoreError::NotFound(format!("collection {collection:?}"))),
        }
    }

    fn indicator_seq(&self) -> Result<i64> {
        let r = self.reader()?;
        r.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM indicator_changes")
            .ctx("preparing indicator sequence")?
            .query_row([], |r| r.get(0))
            .ctx("reading indicator sequence")
    }

    fn indicator_changes(&self, after: i64, limit: usize) -> Result<Vec<(i64, String)>> {
        let r = self.reader()?;
        let mut st = r
            .prepare_cached(
                "SELECT seq, id FROM indicator_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .ctx("preparing indicator changes")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st
            .query_map(params![after, limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("reading indicator changes")?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .ctx("reading indicator changes")
    }

    fn latest_version(&self, id: &str) -> Result<Option<String>> {
        let r = self.reader()?;
        // One probe of the (cid, id, version_micros) index per collection.
        let mut st = r
            .prepare_cached(
                "SELECT o.raw FROM collections c JOIN objects o
                   ON o.rid = (SELECT rid FROM objects WHERE cid = c.cid AND id = ?1
                               ORDER BY version_micros DESC, date_added DESC LIMIT 1)
                 ORDER BY o.version_micros DESC, o.date_added DESC LIMIT 1",
            )
            .ctx("preparing latest version")?;
        st.query_row([id], |r| r.get(0))
            .optional()
            .ctx("reading latest version")
    }

    fn latest_indicators(&self, f: &mut dyn FnMut(&str)) -> Result<i64> {
        let r = self.reader()?;
        let tx = r
            .unchecked_transaction()
            .ctx("starting the indicator snapshot")?;
        let seq: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM indicator_changes",
                [],
                |r| r.get(0),
            )
            .ctx("reading indicator sequence")?;
        {
            // Pass 1, in row order: the newest version of each id, over
            // every collection (by version, then date added), without its
            // text. Pass 2 reads the texts of those rows, in row order too.
            let mut newest: std::collections::HashMap<String, (i64, i64, i64)> =
                std::collections::HashMap::new();
            let mut st = tx
                .prepare(
                    "SELECT id, version_micros, date_added, rid FROM objects
                     INDEXED BY objects_indicators WHERE type = 'indicator' ORDER BY rid",
                )
                .ctx("preparing the indicator snapshot")?;
            let mut rows = st.query([]).ctx("reading indicators")?;
            while let Some(row) = rows.next().ctx("reading indicators")? {
                let key: (i64, i64, i64) = (
                    row.get(1).ctx("reading indicators")?,
                    row.get(2).ctx("reading indicators")?,
                    row.get(3).ctx("reading indicators")?,
                );
                let id = row.get_ref(0).ctx("reading indicators")?;
                let id = id
                    .as_str()
                    .map_err(|e| StoreError::Backend(format!("reading indicators: {e}")))?;
                match newest.get_mut(id) {
                    Some(best) if (key.0, key.1) > (best.0, best.1) => *best = key,
                    Some(_) => {}
                    None => {
                        newest.insert(id.to_string(), key);
                    }
                }
            }
            drop(rows);
            let mut winners: Vec<i64> = newest.into_values().map(|(_, _, rid)| rid).collect();
            winners.sort_unstable();
            let mut text = tx
                .prepare_cached("SELECT raw FROM objects WHERE rid = ?1")
                .ctx("preparing the indicator snapshot")?;
            for rid in winners {
                let raw: String = text
                    .query_row([rid], |r| r.get(0))
                    .ctx("reading an indicator")?;
                f(&raw);
            }
        }
        tx.commit().ctx("ending the indicator snapshot")?;
        Ok(seq)
    }

    fn put_status(&self, s: &Status) -> Result<()> {
        // Encoded before the writer is taken.
        let body = encode_status(s)?;
        write_status(&*self.writer()?, s, &body)
    }

    fn status(&self, api_root: &str, id: &str) -> Result<Option<Status>> {
        let r = self.reader()?;
        let mut st = r
            .prepare_cached("SELECT body FROM statuses WHERE api_root = ?1 AND id = ?2")
            .ctx("preparing status")?;
        let body: Option<String> = st
            .query_row([api_root, id], |r| r.get(0))
            .optional()
            .ctx("reading status")?;
        body.map(|b| {
            serde_json::from_str(&b)
                .map_err(|e| StoreError::Backend(format!("decoding status {id:?}: {e}")))
        })
        .transpose()
    }

    fn create_org(&self, org: &Organization) -> Result<()> {
        let w = self.writer()?;
        w.prepare_cached("INSERT INTO orgs (name, title) VALUES (?1, ?2)")
            .ctx("preparing org insert")?
            .execute(params![org.name, org.title])
            .map_err(|e| on_insert(e, || format!("organization {:?}", org.name)))?;
        Ok(())
    }

    fn orgs(&self) -> Result<Vec<Organization>> {
        Ok(self.catalog()?.orgs.clone())
    }

    fn create_user(&self, user: &User) -> Result<()> {
        let w = self.writer()?;
        if !exists(&w, "SELECT 1 FROM orgs WHERE name = ?1", &user.org)? {
            return Err(StoreError::NotFound(format!("organization {:?}", user.org)));
        }
        w.prepare_cached(
            "INSERT INTO users (name, org, password_phc, is_admin, generation, disabled) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .ctx("preparing user insert")?
        .execute(params![user.name, user.org, user.password_phc, user.is_admin, user.generation, user.disabled])
        .map_err(|e| on_insert(e, || format!("user {:?}", user.name)))?;
        Ok(())
    }

    fn user(&self, name: &str) -> Result<Option<User>> {
        Ok(self.catalog()?.users.get(name).cloned())
    }

    fn users(&self) -> Result<Vec<User>> {
        let r = self.reader()?;
        let mut st = r
            .prepare_cached(&format!("{USER_COLS} ORDER BY seq"))
            .ctx("preparing users")?;
        st.query_map([], user_row)
            .ctx("listing users")?
            .collect::<rusqlite::Result<_>>()
            .ctx("reading users")
    }

    fn set_password(&self, name: &str, password_phc: &str) -> Result<()> {
        let w = self.writer()?;
        let n = w
            .prepare_cached(
                "UPDATE users SET password_phc = ?2, generation = generation + 1 WHERE name = ?1",
            )
            .ctx("preparing password update")?
            .execute(params![name, password_phc])
            .ctx("updating password")?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {name:?}")));
        }
        Ok(())
    }

    fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let w = self.writer()?;
        let n = w
            .prepare_cached("UPDATE users SET disabled = ?2 WHERE name = ?1")
            .ctx("preparing user update")?
            .execute(params![name, disabled])
            .ctx("updating user")?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {name:?}")));
        }
        Ok(())
    }

    fn create_token(&self, t: &Token) -> Result<()> {
        let w = self.writer()?;
        if !exists(&w, "SELECT 1 FROM users WHERE name = ?1", &t.user)? {
            return Err(StoreError::NotFound(format!("user {:?}", t.user)));
        }
        w.prepare_cached(
            "INSERT INTO tokens (id, user, sha256, label, created, expires, scope, revoked)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .ctx("preparing token insert")?
        .execute(params![
            t.id,
            t.user,
            t.sha256,
            t.label,
            t.created,
            t.expires,
            scope_str(t.scope),
            t.revoked
        ])
        .map_err(|e| on_insert(e, || format!("token {:?}", t.id)))?;
        Ok(())
    }

    fn token_by_hash(&self, sha256: &[u8; 32]) -> Result<Option<Token>> {
        Ok(self.catalog()?.tokens.get(sha256).cloned())
    }

    fn tokens(&self, user: Option<&str>) -> Result<Vec<Token>> {
        let r = self.reader()?;
        let mut st = r
            .prepare_cached(&format!(
                "{TOKEN_COLS} WHERE ?1 IS NULL OR user = ?1 ORDER BY seq"
            ))
            .ctx("preparing tokens")?;
        st.query_map([user], token_row)
            .ctx("listing tokens")?
            .collect::<rusqlite::Result<_>>()
            .ctx("reading tokens")
    }

    fn revoke_token(&self, id: &str) -> Result<()> {
        let w = self.writer()?;
        let n = w
            .prepare_cached("UPDATE tokens SET revoked = 1 WHERE id = ?1")
            .ctx("preparing token revoke")?
            .execute([id])
            .ctx("revoking token")?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("token {id:?}")));
        }
        Ok(())
    }

    fn set_grant(&self, g: &Grant) -> Result<()> {
        let w = self.writer()?;
        if g.access == Access::default() {
            w.prepare_cached("DELETE FROM grants WHERE org = ?1 AND collection = ?2")
                .ctx("preparing grant delete")?
                .execute([&g.org, &g.collection])
                .ctx("removing grant")?;
            return Ok(());
        }
        if !exists(&w, "SELECT 1 FROM orgs WHERE name = ?1", &g.org)? {
            return Err(StoreError::NotFound(format!("organization {:?}", g.org)));
        }
        if !exists(&w, "SELECT 1 FROM collections WHERE id = ?1", &g.collection)? {
            return Err(StoreError::NotFound(format!(
                "collection {:?}",
                g.collection
            )));
        }
        w.prepare_cached(
            "INSERT INTO grants (org, collection, can_read, can_write) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (org, collection) DO UPDATE SET can_read = excluded.can_read, can_write = excluded.can_write",
        )
        .ctx("preparing grant upsert")?
        .execute(params![g.org, g.collection, g.access.read, g.access.write])
        .ctx("writing grant")?;
        Ok(())
    }

    fn grants(&self, org: Option<&str>) -> Result<Vec<Grant>> {
        Ok(self.catalog()?.grants(org))
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        if key.starts_with(POLICY_META_PREFIX) {
            return Ok(self.catalog()?.policy_meta.get(key).cloned());
        }
        let r = self.reader()?;
        let mut st = r
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .ctx("preparing meta")?;
        st.query_row([key], |r| r.get(0))
            .optional()
            .ctx("reading meta")
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let w = self.writer()?;
        w.prepare_cached(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .ctx("preparing meta upsert")?
        .execute([key, value])
        .ctx("writing meta")?;
        Ok(())
    }

    fn backup(&self, dest: &Path) -> Result<()> {
        self.backup_impl(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(max: usize) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let opts = SqliteOptions {
            max_idle_readers: max,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open(&dir.path().join("r.db"), opts).unwrap();
        (dir, store)
    }

    fn counts(s: &SqliteStore) -> (usize, usize) {
        let p = s.readers.lock().unwrap();
        (p.open, p.idle.len())
    }

    /// Readers are reused, never more than the pool holds while callers
    /// give them back in time, and every connection is accounted for.
    #[test]
    fn readers_are_pooled_and_counted() {
        let (_dir, store) = open(2);
        {
            let a = store.reader().unwrap();
            let b = store.reader().unwrap();
            let n: i64 = a.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
            assert_eq!(n, 1);
            assert_eq!(counts(&store), (2, 0));
            drop(b);
        }
        assert_eq!(counts(&store), (2, 2));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let r = store.reader().unwrap();
                        let _: i64 = r.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
                    }
                });
            }
        });
        // Extra connections opened under contention (a wait longer than
        // READER_WAIT on a loaded machine) were closed when given back, as
        // were those that served READER_USES reads.
        let (open, idle) = counts(&store);
        assert!(open <= 2 && open == idle, "{open} open, {idle} idle");
    }

    /// A caller holding the only reader and asking for another is not
    /// stuck: after the wait it gets an extra connection, closed after use.
    #[test]
    fn a_second_reader_while_the_pool_is_taken_comes_after_the_wait() {
        let (_dir, store) = open(1);
        let first = store.reader().unwrap();
        let t = Instant::now();
        let second = store.reader().unwrap();
        assert!(t.elapsed() >= READER_WAIT);
        assert_eq!(counts(&store), (2, 0));
        drop(second);
        assert_eq!(counts(&store), (1, 0));
        drop(first);
        assert_eq!(counts(&store), (1, 1));
    }

    /// A reader given back wakes one waiting for it, before the wait ends.
    #[test]
    fn a_waiting_read_takes_the_reader_given_back() {
        let (_dir, store) = open(1);
        let held = store.reader().unwrap();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let r = store.reader().unwrap();
                let _: i64 = r.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
            });
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
            waiter.join().unwrap();
        });
        // The waiter used the pooled connection rather than an extra one.
        assert_eq!(counts(&store), (1, 1));
    }

    /// Resident KiB of this process's mappings of `path` (Linux smaps).
    #[cfg(target_os = "linux")]
    fn mapped_kib(path: &std::path::Path) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let name = path.to_str().unwrap();
        let mut ours = false;
        let mut kib = 0;
        for line in smaps.lines() {
            if let Some(rss) = line.strip_prefix("Rss:") {
                if ours {
                    kib += rss
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap();
                }
            } else if line.split_whitespace().count() >= 5
                && line
                    .split_whitespace()
                    .next()
                    .is_some_and(|r| r.contains('-'))
            {
                // A mapping's header line: range, perms, offset, dev, inode[, path].
                ours = line.ends_with(name);
            }
        }
        kib
    }

    /// After READER_USES reads a connection drops the pages its mapping of
    /// the file holds resident, stays open and pooled, and maps the file
    /// again on its next read.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_reader_drops_its_mapping_after_its_reads() {
        let (dir, store) = open(1);
        let path = dir.path().join("r.db");
        {
            let w = store.writer().unwrap();
            w.execute_batch(
                "CREATE TABLE pad (b BLOB NOT NULL);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64)
                 INSERT INTO pad SELECT randomblob(65536) FROM n;
                 PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .unwrap();
        }
        // Reads every byte of the 4 MiB of blobs, through the mapping.
        let read_all = || {
            let r = store.reader().unwrap();
            let _: i64 = r
                .query_row(
                    "SELECT sum(instr(b, x'00ff00ff00ff00ff')) FROM pad",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
        };
        read_all();
        let before = mapped_kib(&path);
        assert!(
            before >= 4096,
            "{before} KiB resident after reading 4 MiB through the mapping"
        );
        for _ in 1..READER_USES - 1 {
            drop(store.reader().unwrap());
        }
        assert_eq!(counts(&store), (1, 1));
        assert!(mapped_kib(&path) >= before);
        // The read that reaches READER_USES: the mapping goes, the
        // connection stays.
        read_all();
        assert_eq!(counts(&store), (1, 1));
        let after = mapped_kib(&path);
        assert!(
            after < 1024,
            "{after} KiB still resident after the unmapping"
        );
        // Mapped again on the next read.
        read_all();
        assert!(mapped_kib(&path) >= 4096);
        assert_eq!(counts(&store), (1, 1));
    }

    fn with_collection(opts: SqliteOptions) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db"), opts).unwrap();
        add_collection(&store);
        (dir, store)
    }

    /// An API root `root` with a collection `c`.
    fn add_collection(store: &SqliteStore) {
        store
            .create_api_root(&ApiRoot {
                name: "root".into(),
                title: "Root".into(),
                description: None,
                max_content_length: 1_000_000,
            })
            .unwrap();
        store
            .create_collection(&Collection {
                id: "c".into(),
                api_root: "root".into(),
                title: "C".into(),
                description: None,
                alias: None,
            })
            .unwrap();
    }

    fn object(id: &str) -> NewObject {
        let raw = format!(r#"{{"type":"file","id":"{id}","spec_version":"2.1"}}"#);
        NewObject {
            id: id.into(),
            object_type: "file".into(),
            spec_version: "2.1".into(),
            version: None,
            version_micros: None,
            digest: [7; 32],
            raw,
            release_label: String::new(),
            observables: Vec::new(),
            name: None,
            description: None,
        }
    }

    /// `PRAGMA synchronous` of the writer connection as it is, without the
    /// reset that `writer` does.
    fn level_as_left(store: &SqliteStore) -> i64 {
        let w = store.writer.lock().unwrap();
        w.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    }

    /// A write of something else than objects (an organization named
    /// `name`); returns the writer's `PRAGMA synchronous` after it.
    fn other_write(store: &SqliteStore, name: &str) -> i64 {
        store
            .create_org(&Organization {
                name: name.into(),
                title: name.into(),
            })
            .unwrap();
        level_as_left(store)
    }

    /// Object writes commit at `synchronous=NORMAL` and fsync the WAL
    /// themselves before they return; every other write finds the writer
    /// syncing fully again, also after an object write that failed.
    #[test]
    fn only_object_writes_defer_their_fsync() {
        let (_dir, store) = with_collection(SqliteOptions::default());
        assert_eq!(level_as_left(&store), 2, "FULL after opening");
        let out = store
            .put_objects("c", &[object("file--00000000-0000-4000-8000-000000000001")])
            .unwrap();
        assert!(matches!(out[..], [PutOutcome::Added(_)]));
        assert_eq!(store.wal_sync.syncs(), 1, "the write waited for one fsync");
        assert_eq!(
            level_as_left(&store),
            1,
            "NORMAL while only objects are written"
        );
        // Another kind of write puts FULL back first.
        assert_eq!(other_write(&store, "org"), 2);
        // An object write that fails before it commits.
        store
            .put_objects(
                "no-such-collection",
                &[object("file--00000000-0000-4000-8000-000000000002")],
            )
            .unwrap_err();
        assert_eq!(level_as_left(&store), 1);
        assert_eq!(
            store.wal_sync.syncs(),
            1,
            "nothing committed, nothing synced"
        );
        assert_eq!(other_write(&store, "org2"), 2);
        // Writing nothing new still waits: an unchanged object may rest on
        // a commit that is not durable yet.
        store
            .put_objects("c", &[object("file--00000000-0000-4000-8000-000000000001")])
            .unwrap();
        assert_eq!(store.wal_sync.syncs(), 2);
    }

    /// With `Synchronous::Normal` nothing fsyncs at commit, by choice.
    #[test]
    fn normal_sync_defers_nothing() {
        let (_dir, store) = with_collection(SqliteOptions {
            synchronous: Synchronous::Normal,
            ..SqliteOptions::default()
        });
        store
            .put_objects("c", &[object("file--00000000-0000-4000-8000-000000000001")])
            .unwrap();
        assert_eq!(store.wal_sync.syncs(), 0);
        assert_eq!(level_as_left(&store), 1);
    }

    fn rows(store: &SqliteStore) -> i64 {
        let w = store.writer.lock().unwrap();
        w.query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
            .unwrap()
    }

    /// A database opened through a symbolic link has its WAL beside the
    /// file the link points to, and that is the file synced: not a file
    /// (missing, or stale) beside the link.
    #[cfg(unix)]
    #[test]
    fn the_wal_synced_is_the_one_sqlite_writes() {
        let real = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::File::create(real.path().join("r.db")).unwrap();
        std::os::unix::fs::symlink(real.path().join("r.db"), data.path().join("r.db")).unwrap();
        // A stale WAL beside the link, which SQLite does not use.
        std::fs::write(data.path().join("r.db-wal"), b"stale").unwrap();
        let store = SqliteStore::open(&data.path().join("r.db"), SqliteOptions::default()).unwrap();
        add_collection(&store);
        store
            .put_objects("c", &[object("file--00000000-0000-4000-8000-000000000001")])
            .unwrap();
        assert_eq!(store.wal_sync.syncs(), 1);
        let real_wal = real.path().canonicalize().unwrap().join("r.db-wal");
        assert!(real_wal.exists());
        assert_eq!(store.wal_sync.path(), real_wal);
        assert_eq!(
            std::fs::read(data.path().join("r.db-wal")).unwrap(),
            b"stale"
        );
    }

    /// Once the WAL could not be synced, an object write is refused before
    /// its transaction: nothing is stored that could not be acknowledged.
    #[test]
    fn after_a_failed_sync_no_object_is_stored() {
        let (dir, store) = with_collection(SqliteOptions::default());
        store
            .put_objects("c", &[object("file--00000000-0000-4000-8000-000000000001")])
            .unwrap();
        // The WAL gone from under the store: the next sync cannot find it.
        std::fs::remove_file(dir.path().join("r.db-wal")).unwrap();
        let e = store
            .put_objects("c", &[object("file--00000000-0000-4000-8000-000000000002")])
            .unwrap_err();
        // Committed, and said so, but not acknowledged.
        assert!(
            matches!(&e, StoreError::NotDurable { outcomes, .. } if matches!(outcomes[..], [PutOutcome::Added(_)])),
            "{e:?}"
        );
        assert!(e.to_string().contains("could not be made durable"), "{e}");
        assert_eq!(
            rows(&store),
            2,
            "that write committed before its sync failed"
        );
        let e = store
            .put_objects("c", &[object("file--00000000-0000-4000-8000-000000000003")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("could not be made durable"), "{e}");
        assert_eq!(rows(&store), 2, "the next one was refused before it began");
        // Other writes still work, at FULL.
        assert_eq!(other_write(&store, "org"), 2);
    }
}
