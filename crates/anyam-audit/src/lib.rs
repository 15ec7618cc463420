//! The node's tamper-evident audit log: every release, receipt, denial,
//! key event and agreement event, append-only, as the leaves of a Merkle
//! tree whose signed heads the node publishes.
//!
//! # What it is
//!
//! Each [`Event`] (who, what, when, why, and the partners concerned)
//! becomes an [`Entry`] with the next sequence number, stored in its own
//! SQLite file. The entry's leaf is its RFC 8785 canonical JSON (the
//! encoding is spelled out on [`Entry`]), and the entries are the leaves
//! of the Merkle tree of Certificate Transparency 2.0 (RFC 9162 §2.1). The
//! node signs [`SignedTreeHead`]s — tree size, time, root hash, key id —
//! with its Ed25519 key. Three things follow:
//!
//! - **Verification** ([`verify`]): anyone with the file and the node's
//!   public keys recomputes every hash and checks every head. Editing,
//!   deleting, reordering or cutting entries, or forging a head, is found,
//!   and the error ([`Tampered`]) names the first bad entry or head. The
//!   one thing the file cannot show is a cut back to an earlier head with
//!   every later head removed as well; heads kept elsewhere
//!   ([`verify_with`]) or held by partners catch that.
//! - **Partner exports** ([`AuditLog::export_for`], [`verify_export`]): a
//!   partner receives only the entries that name it, each with an
//!   inclusion proof against a signed head, and checks them with the
//!   node's public key alone, never seeing entries about anyone else.
//!   Consistency proofs show it that a later head extends one it saw
//!   before, so the node cannot rewrite history it already showed.
//! - **Throughput**: one entry may cover a batch (a whole response), a
//!   batch of entries is one transaction ([`AuditLog::append_batch`]), and
//!   the [`Appender`] queues events from any number of request handlers
//!   for one writer thread that commits them in groups. The tree cache
//!   (the hash of every perfect subtree, stored as it completes) makes a
//!   root or a proof O(log n) reads and an append O(1) writes amortized.
//!   Several processes may append to one file (the server and the
//!   administration commands beside it): each append and head takes the
//!   file's write lock (waiting up to ten seconds for it) and first
//!   catches up with entries the others appended.
//!
//! # Storage
//!
//! One SQLite file of its own (the node keeps it as `audit.db` in its data
//! directory), in WAL mode with `synchronous=FULL` unless the operator
//! chooses `NORMAL` ([`Synchronous`]), one writer connection, a pool of
//! readers, and a background checkpointer, as in the object store. Tables:
//! `entries` (sequence number, leaf bytes — zstd-compressed from
//! [`COMPRESS_FROM`] bytes on, see `stored.rs` —, leaf hash), `nodes` (the tree
//! cache: every perfect subtree's hash, the leaf level included, keyed by
//! its last leaf and height), `entry_parties` (which partners each entry
//! concerns, for exports) and `heads`. The cache is a convenience, never a
//! source of truth: [`verify`] recomputes it from the leaves, and its
//! second copy of each leaf hash is what lets `verify` name an entry that
//! was edited together with its stored hash.
//!
//! # What it is not
//!
//! Not a general event store or a log shipper: entries are small records
//! about decisions, not copies of the objects. Not the release decision:
//! `anyam-policy` decides, this crate records. It does not read the node's
//! private key: callers pass a [`ed25519_dalek::SigningKey`] to
//! [`AuditLog::sign_head`]. It offers no update or delete, and its
//! tables refuse them by trigger.
//!
//! # Key types
//!
//! - [`AuditLog`]: the file; append, sign heads, prove, export.
//! - [`Appender`] / [`Receipt`]: group commit from many threads.
//! - [`Event`], [`Entry`], [`Kind`], [`Subject`]: the records.
//! - [`TreeHead`], [`SignedTreeHead`], [`TrustedKeys`]: signed heads and
//!   the keys they are checked against.
//! - [`PartnerExport`]: what a partner receives.
//! - [`merkle`]: the RFC 9162 functions, pure.

mod appender;
mod entry;
mod export;
mod head;
mod log;
pub mod merkle;
mod stored;
mod verify;

pub use appender::{Appender, AppenderOptions, Receipt};
pub use entry::{Entry, Event, Hash, Kind, ObjectRef, Subject};
pub use export::{
    ConsistencyLink, EXPORT_FORMAT, ExportRequest, ExportedEntry, PartnerExport, VerifiedExport,
    verify_export, verify_heads_consistent,
};
pub use head::{HEAD_SIGNATURE_CONTEXT, SignedTreeHead, TreeHead, TrustedKeys, key_id};
pub use log::{AuditLog, AuditOptions, Synchronous};
pub use merkle::ProofFailure;
pub use stored::COMPRESS_FROM;
pub use verify::{HeadRef, Problem, Report, Tampered, verify, verify_with};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log was tampered with; [`Tampered`] says where and how.
    #[error("audit log tampered with: {0}")]
    Tampered(Box<Tampered>),
    /// Something received (an export, a head) does not verify.
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("the head's signature does not verify")]
    BadSignature,
    #[error("the head is signed by key {0}, which is not trusted")]
    UntrustedKey(String),
    /// A Merkle proof does not verify, or was asked for impossible sizes.
    #[error("{0}")]
    Proof(ProofFailure),
    #[error("no signed head{}", .0.map(|s| format!(" of tree size {s}")).unwrap_or_default())]
    NoSuchHead(Option<u64>),
    /// Input that is not what it should be (a hash, a size, a leaf).
    #[error("{0}")]
    Malformed(String),
    /// The file's tree cache lacks what its entries need: run `verify`.
    #[error("audit log damaged: {0}")]
    Damaged(String),
    /// Rows were removed behind this process's writer: appending stops
    /// rather than build on the cut log. (Entries another writer appended
    /// are not this: the writer catches up with them.)
    #[error("audit log changed behind the writer: {0}")]
    Diverged(String),
    #[error("the audit log was opened read-only")]
    ReadOnly,
    /// A group commit failed; the message is the batch's error.
    #[error("audit append failed: {0}")]
    Appender(String),
    #[error("audit database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("audit JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl AuditError {
    /// The tampering found, if that is what this error is.
    pub fn tampered(&self) -> Option<&Tampered> {
        match self {
            AuditError::Tampered(t) => Some(t),
            _ => None,
        }
    }
}
