//! [`AuditLog`]: the log's SQLite file — entries, the tree cache that
//! makes roots and proofs O(log n) reads, signed tree heads — and the one
//! writer that appends to it.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::entry::micros;
use crate::head::key_id;
use crate::merkle::{self, node_hash};
use crate::stored;
use crate::{AuditError, Entry, Event, Hash, SignedTreeHead, TreeHead};

/// How hard a commit works to survive a power loss, as in the object
/// store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `PRAGMA synchronous=FULL`: the WAL is fsynced at every commit, so an
    /// appended entry survives a crash of the process, the OS or the power.
    /// The default: an audit record that can vanish after the release it
    /// records is worth little.
    #[default]
    Full,
    /// `PRAGMA synchronous=NORMAL`: fsync only at checkpoints. Survives a
    /// process crash; a power loss may drop the latest commits (never
    /// corrupts the file). The WAL keeps commits in order, so a lost head
    /// goes with the entries it covered; if that head had already been
    /// handed to a partner, their copy shows the loss as truncation.
    Normal,
}

/// Tuning knobs of [`AuditLog::open`]. `Default` is the safe choice.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub synchronous: Synchronous,
    /// Open an existing file for reading only (verification, export from a
    /// copy): no file is created and appending or signing fails.
    pub read_only: bool,
    /// Page cache per connection, in KiB.
    pub cache_kib: i64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            synchronous: Synchronous::Full,
            read_only: false,
            cache_kib: 16 * 1024,
        }
    }
}

/// The schema version this build writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// `entries` holds the leaves as appended. `nodes` is the tree cache: the
/// hash of every complete perfect subtree, keyed by its last leaf and its
/// height (level 0 is a second copy of each leaf hash). Keying by the last
/// leaf puts the nodes in the order appending completes them, which is the
/// order `verify` streams them in. `entry_parties` indexes entries by the
/// partners they concern, for exports. The triggers make the API's
/// append-only promise hold for any program using this file through
/// SQLite's normal paths; they are no defence against someone who edits
/// the file (that is what `verify` and the signed heads are for).
const SCHEMA: &str = "
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE TABLE nodes (
    last INTEGER NOT NULL,
    level INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (last, level)
) WITHOUT ROWID;
CREATE TABLE entry_parties (
    seq INTEGER NOT NULL,
    party TEXT NOT NULL,
    PRIMARY KEY (seq, party)
) WITHOUT ROWID;
CREATE INDEX entry_parties_by_party ON entry_parties (party, seq);
CREATE TABLE heads (
    id INTEGER PRIMARY KEY,
    tree_size INTEGER NOT NULL,
    timestamp_us INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TRIGGER entries_append_only_u BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER entries_append_only_d BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER nodes_append_only_u BEFORE UPDATE ON nodes
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER nodes_append_only_d BEFORE DELETE ON nodes
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER parties_append_only_u BEFORE UPDATE ON entry_parties
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER parties_append_only_d BEFORE DELETE ON entry_parties
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER heads_append_only_u BEFORE UPDATE ON heads
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER heads_append_only_d BEFORE DELETE ON heads
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// Statements kept prepared per connection.
const STATEMENT_CACHE: usize = 32;

/// The audit log. Every method takes `&self` and may be called from any
/// thread; appends are serialized on one writer connection, reads use a
/// pool of WAL readers that see the last committed state and never wait
/// for the writer.
pub struct AuditLog {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    path: PathBuf,
    opts: AuditOptions,
    /// `None` when opened read-only.
    writer: Option<Mutex<Writer>>,
    readers: Mutex<Vec<Connection>>,
    /// Copies committed WAL frames into the database file on its own
    /// thread, so that a commit costs a WAL append (and an fsync), not
    /// now and then a checkpoint too. `None` when read-only.
    checkpointer: Option<Checkpointer>,
}

/// The writer connection and what it knows about the tree, so that an
/// append or a head costs no reads.
struct Writer {
    conn: Connection,
    /// Entries committed so far.
    size: u64,
    /// The perfect subtrees that make up the tree of `size` leaves, biggest
    /// (leftmost) first: one per set bit of `size` (RFC 9162 §2.1.1's
    /// recursion always splits off the largest power of two on the left).
    frontier: Vec<(u32, Hash)>,
}

fn open_conn(path: &Path, opts: &AuditOptions, create: bool) -> Result<Connection, AuditError> {
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX;
    flags |= if opts.read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else if create {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -opts.cache_kib)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

impl AuditLog {
    /// Open (creating unless read-only) the audit log at `path`. Refuses a
    /// file of a newer schema, and a file whose tree cache does not cover
    /// its entries (then run [`crate::verify`] to see what happened).
    pub fn open(path: &Path, opts: AuditOptions) -> Result<AuditLog, AuditError> {
        if opts.read_only && !path.exists() {
            return Err(AuditError::Malformed(format!(
                "no audit log at {}",
                path.display()
            )));
        }
        let mut conn = open_conn(path, &opts, true)?;
        if !opts.read_only {
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(AuditError::Malformed(format!(
                    "database refused WAL mode (journal_mode is {mode})"
                )));
            }
            conn.pragma_update(None, "synchronous", sync_pragma(opts.synchronous))?;
            // The background checkpointer does the work; this is the
            // backstop should it fall behind (64 MiB of WAL at 4 KiB pages).
            conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
            migrate(&mut conn)?;
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != SCHEMA_VERSION {
            return Err(AuditError::Malformed(format!(
                "audit log schema {version}, this program reads {SCHEMA_VERSION}"
            )));
        }
        let inner = if opts.read_only {
            Inner {
                path: path.to_path_buf(),
                opts,
                writer: None,
                readers: Mutex::new(vec![conn]),
                checkpointer: None,
            }
        } else {
            // One read transaction, so that the entry count, the cache and
            // the frontier come from the same snapshot: another process
            // (the server, an administration command) may commit between
            // separate reads, and a cache row of its new entry would look
            // like a cut log.
            let snapshot = conn.unchecked_transaction()?;
            let size = stored_size(&snapshot)?;
            // Cache rows past the last entry mean entries were cut from the
            // file: appending would build on the cut log (and collide with
            // those rows). Refuse, and let `verify` say what happened.
            let last: Option<i64> =
                snapshot.query_row("SELECT max(last) FROM nodes", [], |r| r.get(0))?;
            if last.is_some_and(|l| l as u64 >= size) {
                return Err(AuditError::Damaged(format!(
                    "the tree cache reaches past the last of {size} entries: entries were removed"
                )));
            }
            let frontier = load_frontier(&snapshot, size)?;
            snapshot.commit()?;
            let ck = open_conn(path, &opts, false)?;
            // The checkpointer makes the database file durable: it must
            // fsync like the writer does.
            ck.pragma_update(None, "synchronous", sync_pragma(opts.synchronous))?;
            let checkpointer = Some(Checkpointer::start(ck)?);
            Inner {
                path: path.to_path_buf(),
                opts,
                writer: Some(Mutex::new(Writer {
                    conn,
                    size,
                    frontier,
                })),
                readers: Mutex::new(Vec::new()),
                checkpointer,
            }
        };
        Ok(AuditLog {
            inner: Arc::new(inner),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Append one event; returns its sequence number once committed.
    pub fn append(&self, event: &Event) -> Result<u64, AuditError> {
        Ok(self.inner.append(std::slice::from_ref(event))?.start)
    }

    /// Append events in one transaction: all of them or none. Returns their
    /// sequence numbers, consecutive and in the given order.
    pub fn append_batch(&self, events: &[Event]) -> Result<Range<u64>, AuditError> {
        self.inner.append(events)
    }

    /// Writes a consistent copy of the log to `dest`, which must not exist
    /// (`anyam backup`): one read transaction, so the copy is whole while
    /// the node keeps appending, and it verifies like the original.
    pub fn backup_to(&self, dest: &Path) -> Result<(), AuditError> {
        let d = dest
            .to_str()
            .ok_or_else(|| AuditError::Malformed(format!("backup path {dest:?} is not UTF-8")))?;
        let conn = Connection::open_with_flags(
            &self.inner.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute("VACUUM INTO ?1", [d])?;
        Ok(())
    }

    /// How many entries the log holds (the next sequence number).
    pub fn size(&self) -> Result<u64, AuditError> {
        let r = self.inner.reader()?;
        stored_size(&r)
    }

    /// The root of the tree of the first `size` entries: O(log n) reads.
    pub fn root_at(&self, size: u64) -> Result<Hash, AuditError> {
        let r = self.inner.reader()?;
        let tx = r.unchecked_transaction()?;
        check_size(&tx, size)?;
        let root = mth(&tx, 0, size)?;
        tx.finish()?;
        Ok(root)
    }

    /// RFC 9162 §2.1.3.1 inclusion proof of entry `index` in the tree of the
    /// first `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        let r = self.inner.reader()?;
        let tx = r.unchecked_transaction()?;
        check_size(&tx, size)?;
        let proof = inclusion_proof(&tx, index, size)?;
        tx.finish()?;
        Ok(proof)
    }

    /// RFC 9162 §2.1.4.1 consistency proof from the tree of the first
    /// `first` entries to that of the first `second`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, AuditError> {
        let r = self.inner.reader()?;
        let tx = r.unchecked_transaction()?;
        check_size(&tx, second)?;
        let proof = consistency_proof(&tx, first, second)?;
        tx.finish()?;
        Ok(proof)
    }

    /// The entries with sequence numbers in `range`, as stored.
    pub fn entries(&self, range: Range<u64>) -> Result<Vec<Entry>, AuditError> {
        let r = self.inner.reader()?;
        let mut stmt =
            r.prepare_cached("SELECT leaf FROM entries WHERE seq >= ?1 AND seq < ?2 ORDER BY seq")?;
        let mut rows = stmt.query(params![to_sql(range.start)?, to_sql(range.end)?])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let leaf = stored::leaf_of(row.get(0)?).map_err(AuditError::Malformed)?;
            out.push(Entry::from_leaf(&leaf)?);
        }
        Ok(out)
    }

    /// Every signed head, oldest first.
    pub fn heads(&self) -> Result<Vec<SignedTreeHead>, AuditError> {
        let r = self.inner.reader()?;
        Ok(read_heads(&r)?.into_iter().map(|(_, h)| h).collect())
    }

    /// The most recent signed head.
    pub fn latest_head(&self) -> Result<Option<SignedTreeHead>, AuditError> {
        let r = self.inner.reader()?;
        latest_head(&r)
    }

    /// Whether a periodic head is due: entries were added since the latest
    /// head and it is at least `interval` old (or there is none). The
    /// server calls this on a timer and [`AuditLog::sign_head`] when true.
    pub fn heads_due(&self, interval: Duration, now: Timestamp) -> Result<bool, AuditError> {
        let r = self.inner.reader()?;
        let size = stored_size(&r)?;
        Ok(match latest_head(&r)? {
            None => true,
            Some(h) => {
                let age = now.as_microsecond() - h.head.timestamp.as_microsecond();
                size > h.head.tree_size && age >= interval.as_micros() as i64
            }
        })
    }

    /// Sign a head for the whole log as it is now, store it and return it.
    /// Idempotent: when nothing was appended since the latest head and it
    /// was signed by the same key, that head is returned and nothing is
    /// stored. Head timestamps never go backwards: a `now` earlier than
    /// the latest head's time (a clock step) is raised to it.
    pub fn sign_head(
        &self,
        key: &SigningKey,
        now: Timestamp,
    ) -> Result<SignedTreeHead, AuditError> {
        let mut guard = self.inner.writer()?;
        let w = &mut *guard;
        let kid = key_id(&key.verifying_key());
        // Take the file's write lock first: another process (the CLI beside
        // the server) may have appended or signed since this writer last
        // looked, and the head must cover the file as it is.
        let tx = w
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (size, frontier) = match catch_up(&tx, w.size)? {
            Some(caught_up) => caught_up,
            None => (w.size, w.frontier.clone()),
        };
        let latest = latest_head(&tx)?;
        if let Some(h) = &latest
            && h.head.tree_size == size
            && h.head.key_id == kid
        {
            let h = h.clone();
            tx.finish()?;
            w.size = size;
            w.frontier = frontier;
            return Ok(h);
        }
        let mut timestamp = micros::truncate(now);
        if let Some(h) = &latest {
            timestamp = timestamp.max(h.head.timestamp);
        }
        let head = TreeHead {
            tree_size: size,
            timestamp,
            root_hash: root_of(&frontier),
            key_id: kid,
        }
        .sign(key)?;
        tx.execute(
            "INSERT INTO heads (tree_size, timestamp_us, root_hash, key_id, signature)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                to_sql(head.head.tree_size)?,
                head.head.timestamp.as_microsecond(),
                &head.head.root_hash.0[..],
                &head.head.key_id,
                &head.signature,
            ],
        )?;
        tx.commit()?;
        w.size = size;
        w.frontier = frontier;
        drop(guard);
        self.inner.committed();
        Ok(head)
    }
}

/// The root of the tree whose perfect subtrees are `frontier`, biggest
/// first.
fn root_of(frontier: &[(u32, Hash)]) -> Hash {
    let mut it = frontier.iter().rev();
    match it.next() {
        None => merkle::empty_root(),
        Some((_, last)) => it.fold(*last, |acc, (_, left)| node_hash(left, &acc)),
    }
}

impl Inner {
    fn writer(&self) -> Result<MutexGuard<'_, Writer>, AuditError> {
        let w = self.writer.as_ref().ok_or(AuditError::ReadOnly)?;
        // A panic while the lock was held leaves no transaction open
        // (rusqlite rolls back on drop) and the in-memory state is only
        // updated after a commit, so a poisoned lock is safe to take over.
        Ok(w.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn reader(&self) -> Result<Reader<'_>, AuditError> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = open_conn(&self.path, &self.opts, false)?;
                if !self.opts.read_only {
                    c.pragma_update(None, "query_only", true)?;
                }
                c
            }
        };
        Ok(Reader {
            inner: self,
            conn: Some(conn),
        })
    }

    /// Tell the checkpointer the WAL grew.
    fn committed(&self) {
        if let Some(c) = &self.checkpointer {
            c.poke();
        }
    }

    /// Fails unless the log was opened for writing.
    pub(crate) fn check_writable(&self) -> Result<(), AuditError> {
        self.writer().map(drop)
    }

    /// Append `events` in one transaction.
    pub(crate) fn append(&self, events: &[Event]) -> Result<Range<u64>, AuditError> {
        let mut guard = self.writer()?;
        let w = &mut *guard;
        if events.is_empty() {
            return Ok(w.size..w.size);
        }
        let tx = w
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The immediate transaction holds the file's write lock, so the
        // file cannot change again before the commit: catch up with any
        // entries another writer appended since.
        let (start, mut frontier) = match catch_up(&tx, w.size)? {
            Some(caught_up) => caught_up,
            None => (w.size, w.frontier.clone()),
        };
        let mut size = start;
        {
            let mut put_entry = tx
                .prepare_cached("INSERT INTO entries (seq, leaf, leaf_hash) VALUES (?1, ?2, ?3)")?;
            let mut put_node =
                tx.prepare_cached("INSERT INTO nodes (last, level, hash) VALUES (?1, ?2, ?3)")?;
            let mut put_party = tx.prepare_cached(
                "INSERT OR IGNORE INTO entry_parties (seq, party) VALUES (?1, ?2)",
            )?;
            for event in events {
                let seq = to_sql(size)?;
                let leaf = crate::entry::leaf_bytes(size, event);
                let h = merkle::leaf_hash(&leaf);
                put_entry.execute(params![seq, stored::store_form(&leaf).as_ref(), &h.0[..]])?;
                put_node.execute(params![seq, 0, &h.0[..]])?;
                for p in &event.parties {
                    put_party.execute(params![seq, p])?;
                }
                // Fold the new leaf into the frontier: every pair of equal
                // heights is a perfect subtree completed by this leaf.
                frontier.push((0, h));
                while let [.., (lh, l), (rh, r)] = frontier[..] {
                    if lh != rh {
                        break;
                    }
                    let parent = node_hash(&l, &r);
                    frontier.truncate(frontier.len() - 2);
                    frontier.push((lh + 1, parent));
                    put_node.execute(params![seq, lh + 1, &parent.0[..]])?;
                }
                size += 1;
            }
        }
        tx.commit()?;
        w.size = size;
        w.frontier = frontier;
        drop(guard);
        self.committed();
        Ok(start..size)
    }
}

/// A pooled reader connection, returned to the pool on drop.
pub(crate) struct Reader<'a> {
    inner: &'a Inner,
    conn: Option<Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Only taken in `drop`.
        match &self.conn {
            Some(c) => c,
            None => unreachable!("reader used after drop"),
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            let mut pool = self.inner.readers.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < 8 {
                pool.push(c);
            }
        }
    }
}

fn sync_pragma(s: Synchronous) -> &'static str {
    match s {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    }
}

/// Least time between background checkpoints: one checkpoint after many
/// commits writes each changed page once.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Default)]
struct CheckpointState {
    dirty: bool,
    stop: bool,
}

/// A thread with its own connection, woken after commits. `PASSIVE`
/// checkpoints never block the writer or readers; they copy what they can
/// and leave the rest for the next round.
struct Checkpointer {
    state: Arc<(Mutex<CheckpointState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Result<Checkpointer, AuditError> {
        let state = Arc::new((Mutex::new(CheckpointState::default()), Condvar::new()));
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("anyam-audit-checkpoint".into())
            .spawn(move || checkpoint_loop(&conn, &shared))
            .map_err(|e| AuditError::Malformed(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            state,
            thread: Some(thread),
        })
    }

    fn poke(&self) {
        let (lock, cv) = &*self.state;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !st.dirty {
            st.dirty = true;
            cv.notify_one();
        }
    }
}

fn checkpoint_loop(conn: &Connection, state: &(Mutex<CheckpointState>, Condvar)) {
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
        // A failed round (the database busy) is harmless: the next commit
        // pokes again, and the writer's autocheckpoint is the backstop.
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

fn migrate(conn: &mut Connection) -> Result<(), AuditError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

/// SQLite integers are signed; sequence numbers and sizes never get near
/// 2^63, but a caller-supplied one might.
pub(crate) fn to_sql(n: u64) -> Result<i64, AuditError> {
    i64::try_from(n).map_err(|_| AuditError::Malformed(format!("{n} is out of range")))
}

/// Entries in the file: one past the largest sequence number. (Not a
/// count: with a row deleted the two differ, and `verify` names the gap.)
pub(crate) fn stored_size(conn: &Connection) -> Result<u64, AuditError> {
    // Cached: the writer asks before every append.
    let max: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM entries")?
        .query_row([], |r| r.get(0))?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}

/// The perfect subtrees of a tree, biggest (leftmost) first, with their
/// heights.
type Frontier = Vec<(u32, Hash)>;

/// Where this writer stands against the file, read inside a transaction
/// that holds the write lock. `None` when the file holds the `known`
/// entries this writer last wrote or saw. When another writer (a second
/// process on the same file, such as an administration command beside the
/// running server) appended since, the new size and the frontier read
/// from its tree cache, exactly as [`AuditLog::open`] reads them. Fewer
/// entries than `known` means rows were cut behind this writer: appending
/// would build on the cut log, so that is refused.
fn catch_up(conn: &Connection, known: u64) -> Result<Option<(u64, Frontier)>, AuditError> {
    let size = stored_size(conn)?;
    if size == known {
        return Ok(None);
    }
    if size < known {
        return Err(AuditError::Diverged(format!(
            "expected at least {known} entries in the file, found {size}"
        )));
    }
    let last: Option<i64> = conn.query_row("SELECT max(last) FROM nodes", [], |r| r.get(0))?;
    if last.is_some_and(|l| l as u64 >= size) {
        return Err(AuditError::Damaged(format!(
            "the tree cache reaches past the last of {size} entries: entries were removed"
        )));
    }
    Ok(Some((size, load_frontier(conn, size)?)))
}

fn check_size(conn: &Connection, size: u64) -> Result<(), AuditError> {
    let have = stored_size(conn)?;
    if size > have {
        return Err(AuditError::Malformed(format!(
            "the log has {have} entries, not {size}"
        )));
    }
    Ok(())
}

/// The stored hash of the perfect subtree of `2^level` leaves starting at
/// leaf `index << level`.
pub(crate) fn perfect(conn: &Connection, level: u32, index: u64) -> Result<Hash, AuditError> {
    let last = ((index + 1) << level) - 1;
    let mut stmt = conn.prepare_cached("SELECT hash FROM nodes WHERE last = ?1 AND level = ?2")?;
    let h: Option<Vec<u8>> = stmt
        .query_row(params![to_sql(last)?, level], |r| r.get(0))
        .optional()?;
    h.as_deref().and_then(Hash::from_slice).ok_or_else(|| {
        AuditError::Damaged(format!(
            "the tree cache lacks the node of height {level} ending at entry {last}"
        ))
    })
}

pub(crate) fn mth(conn: &Connection, start: u64, end: u64) -> Result<Hash, AuditError> {
    merkle::mth_from_perfect(start, end, &mut |level, index| perfect(conn, level, index))
}

pub(crate) fn inclusion_proof(
    conn: &Connection,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, AuditError> {
    merkle::inclusion_proof_with(index, size, &mut |s, e| mth(conn, s, e))
}

pub(crate) fn consistency_proof(
    conn: &Connection,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, AuditError> {
    merkle::consistency_proof_with(first, second, &mut |s, e| mth(conn, s, e))
}

/// The frontier of the tree of `size` leaves, read from the cache.
fn load_frontier(conn: &Connection, size: u64) -> Result<Vec<(u32, Hash)>, AuditError> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for level in (0..64u32).rev() {
        if size & (1u64 << level) != 0 {
            out.push((level, perfect(conn, level, start >> level)?));
            start += 1u64 << level;
        }
    }
    Ok(out)
}

/// Heads with their row ids, oldest first.
pub(crate) fn read_heads(conn: &Connection) -> Result<Vec<(i64, SignedTreeHead)>, AuditError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, tree_size, timestamp_us, root_hash, key_id, signature FROM heads ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push((row.get(0)?, head_from_row(row)?));
    }
    Ok(out)
}

fn latest_head(conn: &Connection) -> Result<Option<SignedTreeHead>, AuditError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, tree_size, timestamp_us, root_hash, key_id, signature
         FROM heads ORDER BY id DESC LIMIT 1",
    )?;
    let mut rows = stmt.query([])?;
    match rows.next()? {
        Some(row) => Ok(Some(head_from_row(row)?)),
        None => Ok(None),
    }
}

fn head_from_row(row: &rusqlite::Row<'_>) -> Result<SignedTreeHead, AuditError> {
    let size: i64 = row.get(1)?;
    let ts: i64 = row.get(2)?;
    let root: Vec<u8> = row.get(3)?;
    Ok(SignedTreeHead {
        head: TreeHead {
            tree_size: u64::try_from(size)
                .map_err(|_| AuditError::Damaged(format!("a head has tree size {size}")))?,
            timestamp: Timestamp::from_microsecond(ts)
                .map_err(|_| AuditError::Damaged(format!("a head has timestamp {ts}")))?,
            root_hash: Hash::from_slice(&root)
                .ok_or_else(|| AuditError::Damaged("a head's root is not 32 bytes".into()))?,
            key_id: row.get(4)?,
        },
        signature: row.get(5)?,
    })
}
