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
//! # What it is not
//!
//! Not a STIX validator, not an access-control layer, not a cache.

mod codec;
mod model;
mod objects;
mod schema;
mod sqlite;

pub use model::*;
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
}

pub type Result<T> = std::result::Result<T, StoreError>;

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
    /// `date_added` values in input order.
    fn put_objects(&self, collection: &str, objects: &[NewObject]) -> Result<Vec<PutOutcome>>;
    /// The objects endpoint (TAXII 2.1 §5.4): default version filter `last`.
    fn objects(&self, collection: &str, q: &Query) -> Result<Page<StoredObject>>;
    /// The manifest endpoint (§5.3): same filters as `objects`.
    fn manifest(&self, collection: &str, q: &Query) -> Result<Page<ManifestEntry>>;
    /// The versions endpoint (§5.7): every version of one object; honours
    /// `added_after`, `spec_versions`, `limit`, `next`. Default version
    /// filter is `all`.
    fn versions(&self, collection: &str, id: &str, q: &Query) -> Result<Page<ManifestEntry>>;
    /// Delete the selected versions of one object (§5.6); no version
    /// selector deletes all versions. Returns how many versions went.
    fn delete_object(
        &self,
        collection: &str,
        id: &str,
        versions: &[VersionSel],
        spec_versions: &[String],
    ) -> Result<u64>;
    /// How many object versions a collection holds.
    fn count_objects(&self, collection: &str) -> Result<u64>;

    // --- Status resources ---------------------------------------------

    fn put_status(&self, s: &Status) -> Result<()>;
    fn status(&self, api_root: &str, id: &str) -> Result<Option<Status>>;

    // --- Organizations, users, tokens, grants ---------------------------

    fn create_org(&self, org: &Organization) -> Result<()>;
    fn orgs(&self) -> Result<Vec<Organization>>;
    fn create_user(&self, user: &User) -> Result<()>;
    fn user(&self, name: &str) -> Result<Option<User>>;
    fn users(&self) -> Result<Vec<User>>;
    /// Replace a user's password hash and bump its generation.
    fn set_password(&self, name: &str, password_phc: &str) -> Result<()>;
    fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<()>;
    fn create_token(&self, t: &Token) -> Result<()>;
    fn token_by_hash(&self, sha256: &[u8; 32]) -> Result<Option<Token>>;
    fn tokens(&self, user: Option<&str>) -> Result<Vec<Token>>;
    fn revoke_token(&self, id: &str) -> Result<()>;
    /// Set (or, with `Access::default()`, remove) an organization's grant.
    fn set_grant(&self, g: &Grant) -> Result<()>;
    fn grants(&self, org: Option<&str>) -> Result<Vec<Grant>>;

    // --- Node metadata and maintenance -----------------------------------

    fn meta(&self, key: &str) -> Result<Option<String>>;
    fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// Write a consistent copy of the whole database to `dest` while the
    /// node keeps serving.
    fn backup(&self, dest: &Path) -> Result<()>;
}
