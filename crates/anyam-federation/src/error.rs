//! The crate's one error type.

use anyam_trust::KeyStatus;
use thiserror::Error;

/// Everything that can go wrong in this crate. The refusals of a peer
/// (the first six variants) are distinct so that a caller, a log line or a
/// test can say exactly why a handshake was refused.
#[derive(Debug, Error)]
pub enum FederationError {
    /// The peer's key is not a key of any pinned partner, in any state.
    #[error("peer key {key_id} is not a pinned key of any partner")]
    UnknownKey { key_id: String },
    /// The peer's key was a key of `node_id`, revoked after a compromise.
    #[error("peer key {key_id} of node {node_id} is revoked")]
    RevokedKey { node_id: String, key_id: String },
    /// The peer's key is a key of `node_id` but not its active one now
    /// (retired by a rotation, or not yet valid).
    #[error("peer key {key_id} of node {node_id} is not active now ({status:?})")]
    InactiveKey {
        node_id: String,
        key_id: String,
        status: KeyStatus,
    },
    /// The peer's key belongs to another node than the one we meant to
    /// reach.
    #[error("expected node {expected}, but peer key {key_id} is a key of node {found}")]
    WrongNode {
        expected: String,
        found: String,
        key_id: String,
    },
    /// The certificate's public key (or the handshake signature) is not
    /// Ed25519; `algorithm` names what it is.
    #[error("peer key is not Ed25519 (found {algorithm})")]
    NotEd25519 { algorithm: String },
    /// The certificate does not parse as X.509 or its public key does not
    /// decode.
    #[error("malformed peer certificate: {0}")]
    MalformedCertificate(String),
    /// The connection carries no peer certificate (asked of a connection
    /// whose handshake has not completed).
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// Making the local node's certificate failed.
    #[error("cannot make the node certificate: {0}")]
    Certificate(String),
    /// Building a TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The federation database failed.
    #[error("federation database: {0}")]
    Db(#[from] rusqlite::Error),
    /// `federation.db` was written by a newer program, whose schema this
    /// one does not know.
    #[error(
        "federation database has schema version {found}; this program knows up to {supported}: use a newer anyam"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] anyam_store::StoreError),
    /// The release policy could not be evaluated.
    #[error("release policy: {0}")]
    Policy(String),
    /// A partner answered something this protocol does not allow.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A batch failed verification (signature, digest, entitlement).
    #[error("rejected batch from {partner}: {detail}")]
    Rejected { partner: String, detail: String },
    /// The connection to a partner failed or the partner answered an
    /// error status.
    #[error("transport to {partner}: {detail}")]
    Transport { partner: String, detail: String },
    /// Network I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl FederationError {
    /// True for refusals of a peer, false for local failures.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            FederationError::NoCertificate
                | FederationError::Certificate(_)
                | FederationError::Tls(_)
                | FederationError::Db(_)
                | FederationError::Store(_)
                | FederationError::Policy(_)
                | FederationError::Protocol(_)
                | FederationError::Rejected { .. }
                | FederationError::Transport { .. }
                | FederationError::Io(_)
        )
    }
}

pub type Result<T, E = FederationError> = std::result::Result<T, E>;
