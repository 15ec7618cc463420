//! Group fsync of the WAL, off the writer's critical path.
//!
//! With [`Synchronous::Full`](crate::Synchronous::Full) SQLite fsyncs the
//! WAL inside every commit, while the writer connection is held: the next
//! transaction waits for the disk. Object writes instead commit with
//! `synchronous=NORMAL` (SQLite writes the frames without syncing), note
//! the commit here while still holding the writer, release the writer, and
//! then wait here until an fsync of the WAL file that started after their
//! commit has finished. Only then is the write acknowledged. The next
//! transaction runs while the disk flushes, and one fsync covers every
//! commit made before it started, however many callers wait for it.
//!
//! Why that is as durable as `FULL` for what is acknowledged: the WAL is
//! written sequentially and an fsync flushes the whole file, so once it
//! returns every frame written before it began (the commit's own frames
//! and its commit record included) is on stable storage, and recovery
//! replays them. Should the WAL start over from its beginning in between,
//! it can only do so once a checkpoint has copied those frames into the
//! database file and fsynced it (SQLite syncs the WAL before and the
//! database after a checkpoint, and the WAL header when it starts over,
//! at `NORMAL` too). A WAL file newly created is made durable in its
//! directory the first time it is synced here.
//!
//! What it gives up: readers see a commit a moment before it is durable.
//! A power loss in that window can take back objects a reader already
//! saw, though never an acknowledged one (see the crate's "Durability").
//!
//! The argument rests on every process that checkpoints this database
//! doing so at `synchronous=NORMAL` or above, as ours do: one at `OFF`
//! (an operator's shell, say) would not sync the database file at its
//! checkpoint, and the WAL could then start over on frames this fsync had
//! not yet covered.
//!
//! An fsync that fails may have dropped the dirty pages it could not
//! write, and a later one would then succeed without them, so the first
//! failure is final: every later wait fails with it, and the store
//! refuses every further object write, before its transaction, until it
//! is opened again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::{Result, StoreError};

/// The WAL file of a database, and how far it is known durable.
pub(crate) struct WalSync {
    wal: PathBuf,
    state: Mutex<State>,
    synced: Condvar,
}

/// An open WAL file and what identifies it on its file system (none where
/// the platform does not say: it is then opened again for every fsync).
type Open = (File, Option<(u64, u64)>);

#[derive(Default)]
struct State {
    /// Commits noted so far; the number of the latest.
    committed: u64,
    /// Every commit up to this number is durable.
    durable: u64,
    /// An fsync is under way (by one of the waiters).
    syncing: bool,
    /// The open WAL file, taken out while syncing.
    file: Option<Open>,
    /// Why the WAL could not be made durable, once it could not.
    failed: Option<String>,
    /// fsyncs done, for tests.
    syncs: u64,
}

/// Held by the waiter that syncs: should the sync panic, the state is left
/// failed and the other waiters woken, instead of waiting for ever on an
/// fsync that no one is doing.
struct Syncing<'a> {
    ws: &'a WalSync,
    done: bool,
}

impl Drop for Syncing<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut s = self.ws.lock();
            s.syncing = false;
            s.failed = Some("the fsync was interrupted by a panic".into());
            self.ws.synced.notify_all();
        }
    }
}

impl WalSync {
    /// For the database file `db` as SQLite names it (its WAL is `db` with
    /// `-wal` appended). Take the name from the connection, not from the
    /// caller: SQLite resolves symbolic links and makes the path absolute,
    /// and the WAL lies beside the file it resolved to.
    pub(crate) fn new(db: &Path) -> WalSync {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        WalSync {
            wal: PathBuf::from(wal),
            state: Mutex::new(State::default()),
            synced: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failure(&self, why: &str) -> StoreError {
        StoreError::Backend(format!(
            "the write-ahead log {} could not be made durable ({why}); \
             no object write is taken until the store is opened again",
            self.wal.display()
        ))
    }

    /// Refuse an object write once an fsync has failed: it would commit
    /// objects that could never be acknowledged.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.lock().failed {
            Some(why) => Err(self.failure(why)),
            None => Ok(()),
        }
    }

    /// Note a commit made without fsync; call it while still holding the
    /// writer, so that numbers follow commit order. Returns the number to
    /// wait for.
    pub(crate) fn note_commit(&self) -> u64 {
        let mut s = self.lock();
        s.committed += 1;
        s.committed
    }

    /// Wait until commit `ticket` is durable: join the fsync under way if
    /// it started after that commit, else start one.
    pub(crate) fn wait(&self, ticket: u64) -> Result<()> {
        let mut s = self.lock();
        loop {
            if let Some(why) = &s.failed {
                return Err(self.failure(why));
            }
            if s.durable >= ticket {
                return Ok(());
            }
            if s.syncing {
                s = self.synced.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Every commit noted so far wrote its frames before this point.
            let target = s.committed;
            let file = s.file.take();
            s.syncing = true;
            drop(s);
            let mut guard = Syncing {
                ws: self,
                done: false,
            };
            let outcome = sync(&self.wal, file);
            s = self.lock();
            guard.done = true;
            s.syncing = false;
            s.syncs += 1;
            match outcome {
                Ok(file) => {
                    s.file = Some(file);
                    s.durable = s.durable.max(target);
                }
                Err(why) => s.failed = Some(why),
            }
            self.synced.notify_all();
        }
    }

    /// The WAL file it syncs.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.wal
    }

    /// fsyncs done so far.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        self.lock().syncs
    }
}

/// What identifies the file behind `meta`: (device, inode).
#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// fsync the WAL at `wal` through `file` if that is still the file at that
/// path, else through a newly opened one (and then its directory too).
fn sync(wal: &Path, file: Option<Open>) -> std::result::Result<Open, String> {
    let now = std::fs::metadata(wal).map_err(|e| format!("reading its metadata: {e}"))?;
    let now = identity(&now);
    let file = match file {
        Some((f, Some(id))) if now == Some(id) => (f, Some(id)),
        _ => {
            let f = File::options()
                .write(true)
                .open(wal)
                .map_err(|e| format!("opening it: {e}"))?;
            let meta = f
                .metadata()
                .map_err(|e| format!("reading its metadata: {e}"))?;
            // The directory entry of a WAL created since the last sync.
            if let Some(dir) = wal.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                sync_dir(dir).map_err(|e| format!("syncing its directory: {e}"))?;
            }
            (f, identity(&meta))
        }
    };
    file.0
        .sync_data()
        .map_err(|e| format!("fsync failed: {e}"))?;
    Ok(file)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Elsewhere a directory cannot be opened as a file; the file system keeps
/// the entry with the file.
#[cfg(not(unix))]
fn sync_dir(_: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn one_fsync_covers_every_commit_noted_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        let mut wal = File::create(dir.path().join("x.db-wal")).expect("wal");
        let ws = WalSync::new(&db);
        wal.write_all(b"frames").expect("write");
        let a = ws.note_commit();
        let b = ws.note_commit();
        ws.wait(b).expect("durable");
        assert_eq!(ws.syncs(), 1);
        // Already covered: no second fsync.
        ws.wait(a).expect("durable");
        assert_eq!(ws.syncs(), 1);
        let c = ws.note_commit();
        ws.wait(c).expect("durable");
        assert_eq!(ws.syncs(), 2);
    }

    #[test]
    fn concurrent_waiters_all_return_and_share_fsyncs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        File::create(dir.path().join("x.db-wal")).expect("wal");
        let ws = Arc::new(WalSync::new(&db));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let ws = Arc::clone(&ws);
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let t = ws.note_commit();
                        ws.wait(t).expect("durable");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let s = ws.lock();
        assert_eq!(s.committed, 400);
        assert_eq!(s.durable, 400);
        assert!(s.syncs <= 400 && s.syncs >= 1, "{} fsyncs", s.syncs);
    }

    #[test]
    fn a_failed_sync_refuses_every_later_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        let ws = WalSync::new(&db);
        // No WAL file: the sync fails.
        let t = ws.note_commit();
        let e = ws.wait(t).expect_err("no WAL to sync").to_string();
        assert!(
            e.contains("x.db-wal") && e.contains("could not be made durable"),
            "{e}"
        );
        // The file appearing later does not make the store trust it again,
        // and no further object write is taken.
        File::create(dir.path().join("x.db-wal")).expect("wal");
        let t = ws.note_commit();
        assert!(ws.wait(t).is_err());
        assert!(ws.check().is_err());
    }

    #[test]
    fn a_sync_that_panics_fails_the_others_instead_of_leaving_them_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        File::create(dir.path().join("x.db-wal")).expect("wal");
        let ws = WalSync::new(&db);
        assert!(ws.check().is_ok());
        // What a waiter holds while it syncs, dropped without finishing.
        ws.lock().syncing = true;
        drop(Syncing {
            ws: &ws,
            done: false,
        });
        let t = ws.note_commit();
        let e = ws.wait(t).expect_err("failed").to_string();
        assert!(e.contains("panic"), "{e}");
    }

    #[test]
    fn a_replaced_wal_file_is_opened_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        let path = dir.path().join("x.db-wal");
        File::create(&path).expect("wal");
        let ws = WalSync::new(&db);
        let t = ws.note_commit();
        ws.wait(t).expect("durable");
        let first = ws.lock().file.as_ref().and_then(|f| f.1);
        std::fs::remove_file(&path).expect("remove");
        File::create(&path).expect("wal again");
        let t = ws.note_commit();
        ws.wait(t).expect("durable");
        let second = ws.lock().file.as_ref().and_then(|f| f.1);
        let now = identity(&std::fs::metadata(&path).expect("meta"));
        assert_eq!(second, now);
        assert_ne!(first, second);
    }
}
