//! Keys, key ids and the signed-document envelope every other document
//! of this crate travels in.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Result, TrustError};

/// Version of the document formats of this crate. A document whose
/// `schema_version` differs is refused rather than guessed at.
pub const SCHEMA_VERSION: u32 = 1;

/// The key id: lowercase hex SHA-256 of the 32 raw Ed25519 public key
/// bytes. The audit log names keys the same way, so an id seen in one
/// place can be looked up in the other.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A public key as carried in documents: its id and its 32 raw bytes in
/// standard base64. Both are given so that a reader can index by id
/// without decoding; [`PublicKeyInfo::verifying_key`] checks they agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyInfo {
    pub key_id: String,
    pub public_key: String,
}

impl PublicKeyInfo {
    pub fn new(key: &VerifyingKey) -> Self {
        PublicKeyInfo {
            key_id: key_id(key),
            public_key: B64.encode(key.as_bytes()),
        }
    }

    /// The key, after checking the encoding and that `key_id` is its id.
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        let bytes = B64
            .decode(&self.public_key)
            .map_err(|_| TrustError::Malformed("public_key: not base64".into()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| TrustError::Malformed("public_key: not 32 bytes".into()))?;
        let key = VerifyingKey::from_bytes(&arr)
            .map_err(|_| TrustError::Malformed("public_key: not an Ed25519 point".into()))?;
        if key_id(&key) != self.key_id {
            return Err(TrustError::Malformed(format!(
                "key_id {} is not the id of the given public key",
                self.key_id
            )));
        }
        Ok(key)
    }
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub key_id: String,
    /// Standard base64 of the 64-byte Ed25519 signature over the RFC 8785
    /// canonical JSON of `document`.
    pub signature: String,
}

/// A document and its signatures. The signatures cover the canonical JSON
/// (RFC 8785) of the document exactly as it appears here, so the envelope
/// keeps the document as a JSON value rather than a typed struct: a field
/// this version does not know would otherwise be dropped and break every
/// signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    pub document: Value,
    #[serde(default)]
    pub signatures: Vec<Signature>,
}

/// Outcome of looking for one key's signature in an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigCheck {
    Valid,
    /// A signature with this key id is there but does not verify.
    Bad,
    Absent,
}

/// A document type of this crate: its `type` string and its fields.
pub trait Document: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    /// The `schema_version` this type is written and read at.
    const VERSION: u32 = SCHEMA_VERSION;
}

impl Signed {
    /// Wrap a typed document, unsigned.
    pub fn new<D: Document>(doc: &D) -> Result<Self> {
        let document = serde_json::to_value(doc)?;
        Ok(Signed {
            document,
            signatures: Vec::new(),
        })
    }

    /// Parse an envelope from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| TrustError::Malformed(format!("envelope: {e}")))
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The bytes every signature covers.
    pub fn signing_input(&self) -> Vec<u8> {
        anyam_stix::canonical_json(&self.document).into_bytes()
    }

    /// Lowercase hex SHA-256 of the canonical document: names one version
    /// of a document independently of its signatures.
    pub fn digest(&self) -> String {
        hex::encode(anyam_stix::canonical_digest(&self.document))
    }

    /// The document's `type` member.
    pub fn doc_type(&self) -> Option<&str> {
        self.document.get("type").and_then(Value::as_str)
    }

    /// Add (or replace) the signature of `key`.
    pub fn sign(&mut self, key: &SigningKey) {
        let id = key_id(&key.verifying_key());
        let sig = key.sign(&self.signing_input());
        self.signatures.retain(|s| s.key_id != id);
        self.signatures.push(Signature {
            key_id: id,
            signature: B64.encode(sig.to_bytes()),
        });
    }

    /// Whether `key` signed the document. Strict verification rejects
    /// small-order keys and non-canonical signatures, so one signature
    /// cannot be made to verify under two keys.
    pub fn check(&self, key: &VerifyingKey) -> SigCheck {
        let id = key_id(key);
        let mut seen = false;
        let input = self.signing_input();
        for s in self.signatures.iter().filter(|s| s.key_id == id) {
            seen = true;
            let Ok(bytes) = B64.decode(&s.signature) else {
                continue;
            };
            let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else {
                continue;
            };
            if key.verify_strict(&input, &sig).is_ok() {
                return SigCheck::Valid;
            }
        }
        if seen {
            SigCheck::Bad
        } else {
            SigCheck::Absent
        }
    }

    /// [`Signed::check`] as a `Result`.
    pub fn require(&self, key: &VerifyingKey) -> Result<()> {
        match self.check(key) {
            SigCheck::Valid => Ok(()),
            SigCheck::Bad => Err(TrustError::BadSignature {
                key_id: key_id(key),
            }),
            SigCheck::Absent => Err(TrustError::MissingSignature {
                key_id: key_id(key),
            }),
        }
    }

    /// The typed document, after checking its `type` and `schema_version`.
    pub fn parse<D: Document>(&self) -> Result<D> {
        let found = self.doc_type().unwrap_or("");
        if found != D::TYPE {
            return Err(TrustError::WrongType {
                expected: D::TYPE.into(),
                found: found.into(),
            });
        }
        let version = self.document.get("schema_version").and_then(Value::as_u64);
        if version != Some(u64::from(D::VERSION)) {
            return Err(TrustError::Malformed(format!(
                "{}: schema_version must be {}",
                D::TYPE,
                D::VERSION
            )));
        }
        serde_json::from_value(self.document.clone())
            .map_err(|e| TrustError::Malformed(format!("{}: {e}", D::TYPE)))
    }
}

/// Parse an RFC 3339 time of a document field, naming the field on error.
pub fn parse_time(field: &str, text: &str) -> Result<Timestamp> {
    text.parse::<Timestamp>()
        .map_err(|e| TrustError::Malformed(format!("{field}: not an RFC 3339 time: {e}")))
}

/// A time as documents write it: RFC 3339 UTC, truncated to microseconds.
/// Not to whole seconds: a rotation and a document made within the same
/// second must still compare in the order they happened, or the document
/// would look signed by a key already retired.
pub fn format_time(t: Timestamp) -> String {
    let round = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Microsecond)
        .mode(jiff::RoundMode::Trunc);
    t.round(round)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| t.to_string())
}
