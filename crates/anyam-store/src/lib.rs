//! Durable storage for an Anyam node: STIX objects by collection, and the
//! node's own records (API roots, collections, organizations, users, tokens,
//! grants, status resources).
//!
//! # Design
//!
//! The [`Store`] trait is what the rest of the node sees; [`SqliteStore`] is
//! the embedded backend (SQLite, WAL, `synchronous=FULL`). A PostgreSQL
//! backend can be added beside it without touching the API layer.
//!
//! The store does not parse STIX: the ingest pipeline (`anyam-stix`) hands it
//! [`NewObject`]s whose id, type, version and canonical digest it already
//! derived, and the store keeps the object's text exactly as received.
//!
//! Every version of every object is kept. `date_added` is assigned by the
//! store under its single writer, in microseconds, strictly increasing per
//! collection, so a client paging with `added_after` or `next` never skips or
//! repeats an object. Pages are found by keyset (never `OFFSET`), so a page
//! costs the same at any depth of any collection.
//!
//! The store decides nothing about who may see what: callers go through
//! `anyam-policy`, which turns a principal into the collection and object
//! filters this crate applies inside its indexes.
//!
//! # Code map
//!
//! - `sqlite.rs`: [`SqliteStore`] itself — opening, connections, the
//!   background checkpointer, and the small records (API roots,
//!   collections, statuses, organizations, users, tokens, grants, meta).
//! - `objects.rs`: the object write path, the page queries, backup.
//! - `catalog.rs`: the catalog tables every request reads, kept in memory
//!   while their generation number (bumped by triggers) stays the same.
//! - `schema.rs`: the schema, as an ordered list of migrations.
//! - `codec.rs`: continuation tokens and timestamp rendering.
//! - `walsync.rs`: the group fsync of the WAL that object writes wait for.
//!
//! # Connections
//!
//! One writer connection sits behind a mutex; every write is one
//! transaction on it. A pool of reader connections serves every read: in
//! WAL mode a reader sees the last committed snapshot and never waits for
//! the writer, and the writer never waits for readers. Statements are
//! prepared once per connection and cached. A background thread
//! checkpoints the WAL into the database file (`PASSIVE`, never blocking
//! anyone), so a commit normally costs one WAL append and one fsync. Under
//! sustained ingest the WAL cannot restart while the writer keeps
//! appending; when it reaches 256 MiB the writer checkpoints the remainder
//! itself between two transactions, which lets the WAL start over.
//!
//! # `date_added` and paging
//!
//! Inside the write transaction the writer assigns each added object
//! `date_added = max(now, last + 1)` in microseconds, where `last` is the
//! largest value the collection ever handed out (kept in the collection
//! row, so deleting the newest object cannot make a value come back). As
//! only one transaction writes at a time, commit order is `date_added`
//! order: a reader's snapshot always holds a prefix of the collection in
//! `date_added` order, and a client paging with `added_after` (exclusive,
//! TAXII 2.1 §3.4.1) or `next` never skips or repeats an object even while
//! others write.
//!
//! `date_added` is unique within a collection, so it alone is an exact
//! keyset position. A page is `… WHERE cid = ? AND release_class = ? AND
//! date_added > ? ORDER BY date_added LIMIT n + 1` over an index whose
//! leading columns are exactly those: SQLite seeks and reads forward, and a
//! page costs the same at any depth of any collection (never `OFFSET`).
//! The `(n + 1)`-th row only tells whether a `next` token is due. Tokens
//! are opaque to clients (hex of the last `date_added` plus a check byte);
//! a token we did not issue is [`StoreError::BadCursor`].
//!
//! # Versions, first and last
//!
//! Every version of an object is one row. The identity of a version is
//! `(collection, id, version timestamp)`; objects without `modified` or
//! `created` are one immutable version whose version is their
//! `date_added`. Posting an identity again with the same digest is
//! `Unchanged`, with another digest `Conflict`, and writes nothing either
//! way; a batch behaves as if its objects came one after another.
//!
//! Versions are ordered by `version_micros` (then `date_added`). First and
//! last are the *reader's*: the first and last of the versions it may see
//! (a newer version it may not see does not exist for it). The writer keeps
//! per row `is_first`/`is_last` (over all versions), `is_class_first`/
//! `is_class_last` (over the versions of the same release class) and
//! `in_many_classes` (the object has versions in more than one class),
//! correct for every `(collection, id)` after each insert and delete. Two
//! partial indexes hold only rows flagged first or last within their class,
//! so the default `match[version]=last` of the objects and manifest
//! endpoints (and `first`) is a range scan of an index with about one entry
//! per object and class, however many versions exist. A candidate of an
//! object spread over several classes is checked against that object's
//! other versions (`objects_by_id`) before it is returned; objects whose
//! versions all share one class, the usual case, need no check.
//!
//! Which index serves which query:
//!
//! | query | index |
//! |---|---|
//! | `match[id]` given (and the versions endpoint) | `objects_by_id (cid, id, version_micros)`, then sorted: bounded by that object's versions |
//! | only `last`, reader sees every class | `objects_last_by_date (cid, date_added) WHERE is_last` |
//! | only `last` | `objects_class_last (cid, release_class, date_added) WHERE is_class_last` |
//! | only `first` | `objects_class_first (cid, release_class, date_added) WHERE is_class_first` |
//! | anything else (`all`, unions, exact versions) | `objects_all (cid, release_class, date_added)` |
//!
//! `match[type]`, `match[spec_version]` and exact versions without
//! `match[id]` are residual filters checked on the rows the range scan
//! meets; a filter that rejects most rows (a rare type in a huge
//! collection) therefore reads more than one page of rows. If type polling
//! of huge collections becomes common, a later migration adds
//! `(cid, release_class, type, date_added)`.
//!
//! A put costs, per object, one index seek for the current last version
//! (none: a new object), for an existing object one more for the same
//! version and one for the first, and the insert — whatever the number of
//! versions already stored. What dominates ingest of a large collection is the id
//! index: ids are random UUIDs, so each new id dirties its own index page,
//! and a batch writes about one 4 KiB WAL page per new id on top of the
//! objects themselves.
//!
//! `cargo bench -p anyam-store --bench store` measures a page of 100 at
//! random depths and ingest in batches of 1,000 on collections of 100,000
//! and 1,000,000 indicators (`ANYAM_BENCH_SIZES` picks other sizes).
//!
//! # Filter semantics (TAXII 2.1 §3.4.1)
//!
//! All filters combine with AND; the values of one filter with OR.
//! `match[version]` values `first`, `last`, `all` and exact timestamps
//! select versions by union; the default is `last` for objects and
//! manifest and `all` for versions. An exact timestamp is compared as an
//! instant (microseconds). `match[spec_version]` selects rows whose
//! `spec_version` is listed, applied to the same rows as the other filters
//! (so `last` plus `spec_version=2.0` returns objects whose *last* version
//! is 2.0, not their newest 2.0 version).
//!
//! # Durability
//!
//! A write returns only after its transaction committed. With the default
//! [`Synchronous::Full`] every write returns only once the WAL holding its
//! commit is fsynced, so what the store acknowledged survives a crash of
//! the process, the operating system or the power.
//!
//! Writes of objects (`put_objects`, `put_objects_with_status`,
//! `put_objects_bulk`) commit without the fsync and sync the WAL after
//! releasing the writer (`walsync.rs`): the next transaction runs while
//! the disk flushes, and one fsync serves every commit made before it
//! started. Until that fsync returns (normally milliseconds, longer when
//! the disk stalls) the objects are committed but not durable, and
//! readers already see them: a TAXII client, a partner node pulling pages
//! (with their signed provenance) or a search. A power loss in that window
//! takes back only objects no one was told were stored, but whoever read
//! them keeps what it read. And should the clock after the restart be
//! earlier than the `date_added` a reader saw, objects added next could
//! sort before the position that reader pages from. An fsync that fails is
//! final: the write that waited for it fails, although its objects stay
//! committed, and every later object write is refused before its
//! transaction until the store is opened again.
//!
//! [`Synchronous::Normal`] skips that fsync (the WAL is synced at
//! checkpoints): the database stays consistent after any crash and loses
//! nothing when only the process dies, but a power loss or kernel crash may
//! roll back the last acknowledged commits — which for a TAXII node means a
//! client was told "success" for objects that are gone, and a partner that
//! already paged past them never learns. Choose it only where the sender
//! retries, or on storage that preserves write order through power loss.
//!
//! [`Store::backup`] uses `VACUUM INTO`: one read transaction copies a
//! snapshot of one instant while writers carry on, then the copy is
//! fsynced (SQLite does not) before the call returns.
//!
//! # Visibility
//!
//! Every object row carries `release_class`: the interned text of its
//! release label (markings, named recipients, submitter), which the policy
//! layer writes and reads and the store never interprets
//! (`release_classes`; `collection_classes` lists the classes each
//! collection holds). It is the second column of every page index, right
//! after the collection, so a reader's filter is applied *inside* the
//! index: `anyam-policy` turns a principal into the classes (and, for
//! partners, object types) it may see (`Query::visible`), and a page is one
//! range scan per visible class. With several classes a page takes two
//! phases: each class's next `limit + 1` `date_added` values (from the
//! index alone) bound the page, then each class's rows up to that bound
//! are read and merged. A reader who may see every class of the
//! collection reads the default `last` in one range scan of
//! `objects_last_by_date (cid, date_added) WHERE is_last`, dropping any
//! row of a class it was not given (one created meanwhile). Nothing invisible is read, and a page costs
//! about `classes × page size` index entries plus one page of rows, even
//! when the reader may see a sliver of a huge collection
//! (`cargo bench -p anyam-policy --bench visibility`). Tokens stay valid
//! because `date_added` is unique across classes. Changing what a class
//! may see changes policy inputs, not rows; a new version with other
//! markings is an ordinary insert into another class.
//!
//! # Search
//!
//! Two FTS5 indexes, one over `name` and `description` and one of exact
//! observable values (each value one token: the hexadecimal of its bytes),
//! serve `Store::search`, within the caller's visible classes; newest
//! versions only, newest first, costing in proportion to the matches. The
//! writer fills both once per write transaction and a trigger empties them
//! of deleted rows. Observable values were a B-tree keyed by value until
//! schema version 8: each value stored then dirtied a random page, which
//! at 1,000,000 objects made most of what ingest wrote; an FTS5 commit
//! writes one sorted segment instead (see `schema.rs`, version 8).
//!
//! # Schema changes
//!
//! `PRAGMA user_version` is the number of migrations applied; opening runs
//! the missing ones in order, each in its own transaction, and refuses a
//! file from a newer program ([`StoreError::SchemaTooNew`]).
//!
//! # What it is not
//!
//! Not a STIX validator, not an access-control layer, not a cache.

mod catalog;
mod codec;
mod model;
mod objects;
mod schema;
mod sqlite;
mod walsync;

pub use catalog::POLICY_META_PREFIX;
pub use model::*;
pub use objects::BulkLoad;
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};

use std::path::Path;

/// Everything that can go wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid continuation token")]
    BadCursor,
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("database schema version {found} is newer than this program supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("database error: {0}")]
    Backend(String),
    /// A write of objects committed, but the WAL holding its commit could
    /// not be fsynced: the objects are stored and readers see them, yet
    /// they may not survive a power loss, so the write must not be
    /// acknowledged. `outcomes` is what the write did, for the caller's
    /// records. The store takes no further object write until it is opened
    /// again.
    #[error("objects stored but not made durable: {reason}")]
    NotDurable {
        reason: String,
        outcomes: Vec<PutOutcome>,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// What [`Store::put_objects_with_status`] calls, once, with the outcomes
/// of a batch to make its status resource, or to decline (`None`).
pub type StatusOf<'a> = Box<dyn FnOnce(&[PutOutcome]) -> Result<Option<Status>> + 'a>;

/// Attach what the store was doing to a SQLite error, so a `Backend` error
/// in a log says which step failed.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, rusqlite::Error> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| StoreError::Backend(format!("{what}: {e}")))
    }
}

/// The storage interface of a node. All calls are blocking; async callers
/// run them on a blocking thread.
pub trait Store: Send + Sync + 'static {
    // --- API roots and collections -------------------------------------

    fn create_api_root(&self, root: &ApiRoot) -> Result<()>;
    fn api_roots(&self) -> Result<Vec<ApiRoot>>;
    fn api_root(&self, name: &str) -> Result<Option<ApiRoot>>;
    fn create_collection(&self, c: &Collection) -> Result<()>;
    /// Every collection of the root, in creation order.
    fn collections(&self, api_root: &str) -> Result<Vec<Collection>>;
    fn collection(&self, api_root: &str, id: &str) -> Result<Option<Collection>>;

    // --- Objects --------------------------------------------------------

    /// Store a batch in one durable transaction. Returns one outcome per
    /// input, in input order. Objects in the batch get increasing
    /// `date_added` values in input order. An unknown collection is
    /// `NotFound`; an object whose `version` and `version_micros` disagree
    /// (one set, one not) is `Invalid`; either refuses the whole batch.
    fn put_objects(&self, collection: &str, objects: &[NewObject]) -> Result<Vec<PutOutcome>>;
    /// [`Store::put_objects`] for one of the batches of a bulk load into
    /// one collection: `load` carries what the load knows between its
    /// batches (see [`BulkLoad`]), which can spare lookups; the outcomes
    /// and the versions stored are exactly those of `put_objects`.
    fn put_objects_bulk(
        &self,
        collection: &str,
        objects: &[NewObject],
        load: &mut BulkLoad,
    ) -> Result<Vec<PutOutcome>> {
        let _ = load;
        self.put_objects(collection, objects)
    }
    /// [`Store::put_objects`], and in the same transaction the status
    /// resource that `status` makes of the outcomes: the status is durable
    /// exactly when the objects are, at the cost of one commit for both.
    /// `status` runs while the batch is not yet committed and holds the
    /// writer; it may decline (`None`), and then only the objects are
    /// stored. An error from `status` stores nothing.
    fn put_objects_with_status(
        &self,
        collection: &str,
        objects: &[NewObject],
        status: StatusOf<'_>,
    ) -> Result<(Vec<PutOutcome>, Option<Status>)>;
    /// The objects endpoint (TAXII 2.1 §5.4): default version filter `last`.
    fn objects(&self, collection: &str, q: &Query) -> Result<Page<StoredObject>>;
    /// The manifest endpoint (§5.3): same filters as `objects`.
    fn manifest(&self, collection: &str, q: &Query) -> Result<Page<ManifestEntry>>;
    /// The versions endpoint (§5.7): every version of one object; honours
    /// `added_after`, `spec_versions`, `limit`, `next`. Default version
    /// filter is `all`. An object with no (matching) versions gives an
    /// empty page, not an error.
    fn versions(&self, collection: &str, id: &str, q: &Query) -> Result<Page<ManifestEntry>>;
    /// Delete the selected versions of one object (§5.6); no version
    /// selector deletes all versions; `first`/`last` mean the versions
    /// that are first/last before the delete. Returns how many versions
    /// went (0 when none matched). The remaining versions' first/last are
    /// repaired in the same transaction. With `visible`, versions outside
    /// those classes and types are neither deleted nor counted.
    fn delete_object(
        &self,
        collection: &str,
        id: &str,
        versions: &[VersionSel],
        spec_versions: &[String],
        visible: Option<&[ClassScope]>,
    ) -> Result<u64>;
    /// Search the newest version of every object of a collection by words
    /// of its name and description and/or an exact observable value,
    /// within `visible` (empty: nothing). Newest first, at most
    /// `s.limit + 1` results (the extra one only says that more exist).
    /// Costs in proportion to the matches, not to the collection.
    fn search(
        &self,
        collection: &str,
        visible: &[ClassScope],
        s: &Search,
    ) -> Result<Vec<StoredObject>>;
    /// The release classes occurring in a collection, with their labels.
    fn release_classes(&self, collection: &str) -> Result<Vec<ReleaseClass>>;
    /// Give every version stored before release labels existed (class 0)
    /// the class of the label `f` computes from its text, in transactions
    /// of `batch` versions. Returns how many versions changed class.
    fn relabel_unlabelled(&self, f: &mut dyn FnMut(&str) -> String, batch: usize) -> Result<u64>;
    /// How many object versions a collection holds.
    fn count_objects(&self, collection: &str) -> Result<u64>;

    // --- Status resources ---------------------------------------------

    fn put_status(&self, s: &Status) -> Result<()>;
    fn status(&self, api_root: &str, id: &str) -> Result<Option<Status>>;

    // --- Organizations, users, tokens, grants ---------------------------

    fn create_org(&self, org: &Organization) -> Result<()>;
    fn orgs(&self) -> Result<Vec<Organization>>;
    /// The user's organization must exist (`NotFound` otherwise).
    fn create_user(&self, user: &User) -> Result<()>;
    fn user(&self, name: &str) -> Result<Option<User>>;
    fn users(&self) -> Result<Vec<User>>;
    /// Replace a user's password hash and bump its generation.
    fn set_password(&self, name: &str, password_phc: &str) -> Result<()>;
    fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<()>;
    /// The token's user must exist (`NotFound`); ids and hashes are unique
    /// (`AlreadyExists`).
    fn create_token(&self, t: &Token) -> Result<()>;
    fn token_by_hash(&self, sha256: &[u8; 32]) -> Result<Option<Token>>;
    fn tokens(&self, user: Option<&str>) -> Result<Vec<Token>>;
    fn revoke_token(&self, id: &str) -> Result<()>;
    /// Set (or, with `Access::default()`, remove) an organization's grant.
    /// Setting one needs an existing organization and collection
    /// (`NotFound` otherwise).
    fn set_grant(&self, g: &Grant) -> Result<()>;
    fn grants(&self, org: Option<&str>) -> Result<Vec<Grant>>;

    // --- Indicators, for detection ---------------------------------------

    /// The newest entry of the indicator change sequence (0 when empty).
    fn indicator_seq(&self) -> Result<i64>;
    /// Entries of the indicator change sequence after `after`, oldest
    /// first, at most `limit`: (sequence number, indicator id). An id may
    /// appear several times.
    fn indicator_changes(&self, after: i64, limit: usize) -> Result<Vec<(i64, String)>>;
    /// The newest stored version of an object, over all collections (by
    /// version, then by date added), as stored.
    fn latest_version(&self, id: &str) -> Result<Option<String>>;
    /// Calls `f` with the newest version of every stored indicator (over
    /// all collections), in no particular order, and returns the change
    /// sequence number this snapshot includes, so that a follower
    /// continues from it. Runs in one read transaction.
    fn latest_indicators(&self, f: &mut dyn FnMut(&str)) -> Result<i64>;

    // --- Node metadata and maintenance -----------------------------------

    fn meta(&self, key: &str) -> Result<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// Write a consistent copy of the whole database to `dest` while the
    /// node keeps serving. `dest` must not exist yet (`AlreadyExists`); the
    /// copy is synced to disk before this returns.
    fn backup(&self, dest: &Path) -> Result<()>;
}
