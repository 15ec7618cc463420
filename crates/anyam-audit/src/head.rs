//! Signed tree heads: the node's signed statement "my log had this many
//! entries and this root at this time", and the set of keys trusted to
//! make it.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::entry::micros;
use crate::{AuditError, Hash};

/// Domain separation for head signatures: the node's key signs other
/// things too (agreements, federation messages), and none of those can
/// start with these bytes.
pub const HEAD_SIGNATURE_CONTEXT: &[u8] = b"anyam-audit tree head v1\0";

/// A tree head before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// How many entries the tree holds (entries `0..tree_size`).
    pub tree_size: u64,
    /// When the head was made, to the microsecond; RFC 3339 on the wire.
    #[serde(with = "micros")]
    pub timestamp: Timestamp,
    /// MTH of the first `tree_size` leaves (RFC 9162 §2.1.1).
    pub root_hash: Hash,
    /// [`key_id`] of the key that signs it.
    pub key_id: String,
}

impl TreeHead {
    /// The exact bytes the signature covers:
    ///
    /// ```text
    /// "anyam-audit tree head v1" 0x00       (25 bytes, HEAD_SIGNATURE_CONTEXT)
    /// tree_size                              (8 bytes, unsigned big-endian)
    /// timestamp, microseconds since 1970     (8 bytes, signed big-endian)
    /// root_hash                              (32 bytes)
    /// key id, SHA-256 of the public key      (32 bytes)
    /// ```
    ///
    /// A fixed binary layout rather than JSON: nothing to canonicalize, and
    /// the key id inside means a head cannot be re-attributed to another key.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, AuditError> {
        let key = key_id_bytes(&self.key_id)?;
        let mut out = Vec::with_capacity(HEAD_SIGNATURE_CONTEXT.len() + 80);
        out.extend_from_slice(HEAD_SIGNATURE_CONTEXT);
        out.extend_from_slice(&self.tree_size.to_be_bytes());
        out.extend_from_slice(&self.timestamp.as_microsecond().to_be_bytes());
        out.extend_from_slice(&self.root_hash.0);
        out.extend_from_slice(&key);
        Ok(out)
    }

    /// Sign with `key`, whose id must be the head's `key_id`.
    pub fn sign(self, key: &SigningKey) -> Result<SignedTreeHead, AuditError> {
        if self.key_id != key_id(&key.verifying_key()) {
            return Err(AuditError::Malformed(
                "the head names another key than the one signing it".into(),
            ));
        }
        let signature = key.sign(&self.signed_bytes()?);
        Ok(SignedTreeHead {
            head: self,
            signature: hex::encode(signature.to_bytes()),
        })
    }
}

/// A tree head with the node's Ed25519 signature (RFC 8032) over
/// [`TreeHead::signed_bytes`], hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    #[serde(flatten)]
    pub head: TreeHead,
    pub signature: String,
}

impl SignedTreeHead {
    /// Check the signature against the trusted keys. `verify_strict`
    /// refuses the malleable and small-order edge cases of Ed25519, so one
    /// head has one valid signature per key.
    pub fn verify(&self, trusted: &TrustedKeys) -> Result<(), AuditError> {
        let key = trusted
            .get(&self.head.key_id)
            .ok_or_else(|| AuditError::UntrustedKey(self.head.key_id.clone()))?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig).map_err(|_| AuditError::BadSignature)?;
        let sig = Signature::from_bytes(&sig);
        key.verify_strict(&self.head.signed_bytes()?, &sig)
            .map_err(|_| AuditError::BadSignature)
    }
}

/// The id of a public key: lowercase hex of SHA-256 over its 32 bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn key_id_bytes(id: &str) -> Result<[u8; 32], AuditError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(id, &mut out)
        .map_err(|_| AuditError::Malformed(format!("not a key id: {id:?}")))?;
    Ok(out)
}

/// The public keys whose heads are believed. The node rotates its key, so
/// a log spans several keys: every key that ever signed a head stays here
/// (revocation of a compromised key is the caller's decision, by leaving
/// it out).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<String, VerifyingKey>,
}

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> TrustedKeys {
        let mut t = TrustedKeys::default();
        for k in keys {
            t.insert(k);
        }
        t
    }

    pub fn insert(&mut self, key: VerifyingKey) {
        self.keys.insert(key_id(&key), key);
    }

    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys.get(key_id)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
