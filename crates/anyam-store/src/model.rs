//! Wire-neutral records the store reads and writes, shared by every backend.

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch, UTC. Every `date_added` the node assigns
/// is one of these; the TAXII layer renders it as RFC 3339 with six fractional
/// digits.
pub type Micros = i64;

/// One API root (TAXII 2.1 §4.2). `name` is the URL path segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRoot {
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    /// Largest request body the root accepts, in bytes (TAXII 2.1 §4.2.1).
    pub max_content_length: u64,
}

/// One collection (TAXII 2.1 §5.2). `id` is a UUID string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    pub id: String,
    pub api_root: String,
    pub title: String,
    pub description: Option<String>,
    pub alias: Option<String>,
}

/// What the ingest pipeline learned about one valid object before storing it.
/// The store never parses STIX itself; it trusts these fields, which
/// `anyam-stix` derived from `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewObject {
    pub id: String,
    pub object_type: String,
    pub spec_version: String,
    /// `modified`, else `created`, exactly as written in the object; `None`
    /// for objects with neither (most SCOs), whose version is then the
    /// `date_added` of their first storage and which are immutable.
    pub version: Option<String>,
    /// The version as microseconds, for ordering versions (first/last).
    pub version_micros: Option<Micros>,
    /// SHA-256 of the RFC 8785 canonical JSON: two posts of the same
    /// id and version are "the same object" exactly when these are equal.
    pub digest: [u8; 32],
    /// The object's JSON text exactly as received.
    pub raw: String,
    /// The version's release label, as the policy layer wrote it; the
    /// store interns it as a release class and never reads it. Empty
    /// means unlabelled (released to no one).
    pub release_label: String,
    /// Exact observable values the version carries (lower case), for
    /// search by value.
    pub observables: Vec<String>,
    /// Its `name` and `description`, each when it is a string: what the
    /// full-text index keeps for search by word (an object with neither
    /// is not in it).
    pub name: Option<String>,
    pub description: Option<String>,
}

/// A search over one collection (see `Store::search`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Search {
    /// Words that must all occur in the name or description; a word
    /// ending in `*` matches as a prefix.
    pub words: Vec<String>,
    /// An exact observable value (compared in lower case).
    pub value: Option<String>,
    /// Object types; empty means any.
    pub types: Vec<String>,
    pub rating: Option<RatingFilter>,
    pub limit: usize,
}

/// Which versions of one release class a reader may see: a class, and the
/// object types within it (the policy decides; the store applies it inside
/// its page indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassScope {
    pub class: i64,
    pub types: TypeScope,
}

/// Object types admitted within one release class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeScope {
    Any,
    Only(Vec<String>),
    Except(Vec<String>),
}

/// One release class of a collection: its id and the label it interns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseClass {
    pub class: i64,
    pub label: String,
}

/// One stored version of one object in one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub id: String,
    pub spec_version: String,
    /// The version string served in manifests and `match[version]`
    /// (TAXII 2.1 §3.4.1): `modified`, else `created`, else `date_added`.
    pub version: String,
    pub date_added: Micros,
    pub raw: String,
    /// The version's release class (its label: [`crate::Store::release_classes`]).
    pub release_class: i64,
    /// SHA-256 of the RFC 8785 canonical JSON, as computed when it was
    /// stored ([`NewObject::digest`]).
    pub digest: [u8; 32],
    /// The object has neither `modified` nor `created`: `version` is then
    /// its `date_added`, not a version the object itself states.
    pub versionless: bool,
}

impl StoredObject {
    /// The object's type: the part of its id before `--`, which STIX 2.1
    /// §2.9 requires to be the type (checked when the object was stored),
    /// so a page need not read and allocate it for every row.
    pub fn object_type(&self) -> &str {
        self.id.split_once("--").map_or(&self.id, |(t, _)| t)
    }
}

/// A manifest record (TAXII 2.1 §5.7) without the object body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub id: String,
    pub date_added: Micros,
    pub version: String,
    pub spec_version: String,
    pub object_type: String,
}

/// `match[version]` (TAXII 2.1 §3.4.1): a comma list of these; a version
/// matches when any element selects it. The default is `[Last]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSel {
    First,
    Last,
    All,
    /// An exact version timestamp, as the client wrote it; compared as an
    /// instant, so `2020-01-01T00:00:00Z` equals `2020-01-01T00:00:00.000Z`.
    At(Micros),
}

/// Filters of the objects, manifest and versions endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub added_after: Option<Micros>,
    /// `match[id]`; empty means any.
    pub ids: Vec<String>,
    /// `match[type]`; empty means any.
    pub types: Vec<String>,
    /// `match[version]`; empty means the endpoint's default.
    pub versions: Vec<VersionSel>,
    /// `match[spec_version]`; empty means the latest spec version present for
    /// each object (TAXII 2.1 §3.4.1), which for this node is every object.
    pub spec_versions: Vec<String>,
    /// Page size, already clamped by the caller.
    pub limit: usize,
    /// Opaque continuation from a previous page's `next`.
    pub next: Option<String>,
    /// The release classes the reader may see, each with the object types
    /// it may see there. `None`: every class (for the node's own
    /// processing, never for a release: the policy gate always sets it).
    /// `Some(empty)`: nothing.
    pub visible: Option<Vec<ClassScope>>,
    /// Only objects rated at least this well on the Admiralty code.
    pub rating: Option<RatingFilter>,
}

/// An Admiralty-code filter, applied to the stored text: the source
/// reliability (a letter A–F in the property extension
/// `reliability_extension`, property `source_reliability`; absent counts
/// as F) at most `max_reliability`, and the information credibility (1–6,
/// from STIX `confidence` by the ranges 80–100→1, 60–79→2, 40–59→3,
/// 20–39→4, 0–19→5, absent→6) at most `max_credibility`. An object whose
/// rating cannot be read (a letter outside A–F, a confidence above 100)
/// passes no filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingFilter {
    pub reliability_extension: String,
    pub max_reliability: Option<char>,
    pub max_credibility: Option<u8>,
}

/// One page of results in `date_added` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Set when more items follow; pass it back as `Query::next`.
    pub next: Option<String>,
}

/// Outcome for one object of a write batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored now, with this `date_added`.
    Added(Micros),
    /// The same id, version and content were already stored: not an error.
    Unchanged(Micros),
    /// The id and version are stored with different content.
    Conflict,
}

/// A status resource (TAXII 2.1 §4.3.1) as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    pub api_root: String,
    /// Which principal created it: only that principal's organization may
    /// read it back.
    pub owner_org: String,
    pub status: String,
    pub request_timestamp: Micros,
    pub total_count: u64,
    pub successes: Vec<StatusDetail>,
    pub failures: Vec<StatusDetail>,
    pub pendings: Vec<StatusDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetail {
    pub id: String,
    pub version: String,
    pub message: Option<String>,
}

/// A user account. Passwords are argon2id PHC strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub org: String,
    pub password_phc: Option<String>,
    pub is_admin: bool,
    /// Bumped on every password change so caches of verified credentials can
    /// tell that they are stale.
    pub generation: i64,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub name: String,
    pub title: String,
}

/// An API token. Only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub user: String,
    pub sha256: [u8; 32],
    pub label: String,
    pub created: Micros,
    pub expires: Option<Micros>,
    /// `None` means the user's full rights; `Some` narrows them to reading
    /// and/or writing only.
    pub scope: TokenScope,
    pub revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    Full,
    ReadOnly,
    WriteOnly,
}

/// What an organization may do with a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    pub read: bool,
    pub write: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub org: String,
    pub collection: String,
    pub access: Access,
}
