//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in this crate. Rejections of outside input
/// (a bad signature, a malformed document, a key statement that does not
/// follow from the keyring) are distinct variants so that callers can tell
/// "rejected" from "failed".
#[derive(Debug, Error)]
pub enum TrustError {
    /// The document does not parse or breaks a rule of its format; the
    /// message names the field.
    #[error("malformed document: {0}")]
    Malformed(String),
    /// A document of another type was given where this one was expected.
    #[error("expected a document of type {expected:?}, found {found:?}")]
    WrongType { expected: String, found: String },
    /// A signature required by the document's rules is absent.
    #[error("missing signature by key {key_id}")]
    MissingSignature { key_id: String },
    /// A signature is present but does not verify (strict Ed25519).
    #[error("bad signature by key {key_id}")]
    BadSignature { key_id: String },
    /// A key is not acceptable for the node at the time asked about.
    #[error("key {key_id} rejected: {reason}")]
    KeyRejected { key_id: String, reason: String },
    /// A key statement or descriptor contradicts what is already known.
    #[error("inconsistent: {0}")]
    Inconsistent(String),
    /// Something asked for is not stored.
    #[error("not found: {0}")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl TrustError {
    /// True when the error is about the input being unacceptable (the CLI
    /// exits 3), false for failures of the node itself (exit 1).
    pub fn is_rejection(&self) -> bool {
        !matches!(self, TrustError::Db(_) | TrustError::NotFound(_))
    }
}

pub type Result<T, E = TrustError> = std::result::Result<T, E>;
