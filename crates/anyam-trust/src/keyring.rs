//! Key statements (enrollment, rotation, compromise revocation) and the
//! keyring that applies them: which keys speak for a node, and when.

use std::collections::BTreeMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Result, TrustError};
use crate::signed::{
    Document, PublicKeyInfo, SCHEMA_VERSION, Signed, format_time, key_id, parse_time,
};

/// The recovery key introduces the node's first key. Made at first start,
/// while the recovery key's private half is still on the machine; signed by
/// the recovery key and by the enrolled key (proof of possession).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEnrollment {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    pub node_id: String,
    pub key: PublicKeyInfo,
    pub time: String,
}

impl Document for KeyEnrollment {
    const TYPE: &'static str = "anyam-key-enrollment";
}

/// Routine rotation: the old key hands over to the new one. Signed by both
/// (the new key's signature proves its holder has it). From `time` on,
/// the old key signs nothing new; what it signed before stays valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    pub node_id: String,
    pub old_key_id: String,
    pub new_key: PublicKeyInfo,
    pub time: String,
}

impl Document for KeyRotation {
    const TYPE: &'static str = "anyam-key-rotation";
}

/// Compromise recovery: the offline recovery key revokes a node key and
/// names its replacement. Signed by the recovery key and the new key. From
/// `time` on, nothing signed by the revoked key — whenever it claims to
/// have been signed — is accepted, nor anything signed by keys the revoked
/// key introduced (a thief's rotation to a key of its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRevocation {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    pub node_id: String,
    pub revoked_key_id: String,
    pub new_key: PublicKeyInfo,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Document for KeyRevocation {
    const TYPE: &'static str = "anyam-key-revocation";
}

/// The statement that makes the recovery key introduce `node`.
pub fn enroll(recovery: &SigningKey, node: &SigningKey, time: Timestamp) -> Result<Signed> {
    let doc = KeyEnrollment {
        doc_type: KeyEnrollment::TYPE.into(),
        schema_version: SCHEMA_VERSION,
        node_id: key_id(&recovery.verifying_key()),
        key: PublicKeyInfo::new(&node.verifying_key()),
        time: format_time(time),
    };
    let mut s = Signed::new(&doc)?;
    s.sign(recovery);
    s.sign(node);
    Ok(s)
}

/// The statement by which `old` hands over to `new`.
pub fn rotate(
    node_id: &str,
    old: &SigningKey,
    new: &SigningKey,
    time: Timestamp,
) -> Result<Signed> {
    let doc = KeyRotation {
        doc_type: KeyRotation::TYPE.into(),
        schema_version: SCHEMA_VERSION,
        node_id: node_id.into(),
        old_key_id: key_id(&old.verifying_key()),
        new_key: PublicKeyInfo::new(&new.verifying_key()),
        time: format_time(time),
    };
    let mut s = Signed::new(&doc)?;
    s.sign(old);
    s.sign(new);
    Ok(s)
}

/// The statement by which the recovery key revokes `revoked_key_id` and
/// installs `new`.
pub fn revoke(
    recovery: &SigningKey,
    revoked_key_id: &str,
    new: &SigningKey,
    time: Timestamp,
    reason: Option<String>,
) -> Result<Signed> {
    let doc = KeyRevocation {
        doc_type: KeyRevocation::TYPE.into(),
        schema_version: SCHEMA_VERSION,
        node_id: key_id(&recovery.verifying_key()),
        revoked_key_id: revoked_key_id.into(),
        new_key: PublicKeyInfo::new(&new.verifying_key()),
        time: format_time(time),
        reason,
    };
    let mut s = Signed::new(&doc)?;
    s.sign(recovery);
    s.sign(new);
    Ok(s)
}

/// Who introduced a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introducer {
    Recovery,
    Key(String),
}

/// One node key as the keyring knows it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key: VerifyingKey,
    pub introduced_by: Introducer,
    pub valid_from: Timestamp,
    /// Set by a rotation away from this key (or a revocation of another).
    pub retired_at: Option<Timestamp>,
    /// Set by a revocation of this key or of the key that introduced it.
    pub revoked_at: Option<Timestamp>,
}

/// The state of a key at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Retired,
    Revoked,
    NotYetValid,
    Unknown,
}

/// Every key of one node, built by applying its key statements in order.
///
/// The root of trust is the recovery key: the node id *is* the recovery
/// key's id, operators compare it out of band once, and every node key
/// must be reachable from it through enrollment, rotations and
/// revocations. A node key alone can therefore never introduce itself.
#[derive(Debug, Clone)]
pub struct Keyring {
    recovery: VerifyingKey,
    node_id: String,
    keys: BTreeMap<String, KeyRecord>,
    active: Option<String>,
    applied: Vec<String>,
}

impl Keyring {
    pub fn new(recovery: VerifyingKey) -> Self {
        Keyring {
            node_id: key_id(&recovery),
            recovery,
            keys: BTreeMap::new(),
            active: None,
            applied: Vec::new(),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn recovery_key(&self) -> &VerifyingKey {
        &self.recovery
    }

    /// The key that signs for the node now (the newest one).
    pub fn active(&self) -> Option<(&str, &KeyRecord)> {
        let id = self.active.as_deref()?;
        self.keys.get(id).map(|r| (id, r))
    }

    pub fn keys(&self) -> impl Iterator<Item = (&str, &KeyRecord)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, key_id: &str) -> Option<&KeyRecord> {
        self.keys.get(key_id)
    }

    /// Digests of the statements applied, in order.
    pub fn applied(&self) -> &[String] {
        &self.applied
    }

    /// Apply one statement. Returns `false` when it was applied before (a
    /// re-import), `true` when it changed the keyring. A statement that
    /// does not follow from the keyring is rejected and changes nothing.
    pub fn apply(&mut self, statement: &Signed) -> Result<bool> {
        let digest = statement.digest();
        if self.applied.contains(&digest) {
            return Ok(false);
        }
        match statement.doc_type() {
            Some(KeyEnrollment::TYPE) => {
                let doc: KeyEnrollment = statement.parse()?;
                self.check_node(&doc.node_id)?;
                let time = parse_time("time", &doc.time)?;
                let key = doc.key.verifying_key()?;
                statement.require(&self.recovery)?;
                statement.require(&key)?;
                // The same key enrolled again (a node that lost its trust
                // database and re-enrolled) adds nothing.
                let first = self
                    .keys
                    .values()
                    .filter(|r| r.introduced_by == Introducer::Recovery)
                    .min_by_key(|r| r.valid_from);
                if first.is_some_and(|r| r.key == key) {
                    return Ok(false);
                }
                if !self.keys.is_empty() {
                    return Err(TrustError::Inconsistent(
                        "an enrollment can only introduce a node's first key; later keys come by rotation or revocation".into(),
                    ));
                }
                self.insert(key, Introducer::Recovery, time)?;
            }
            Some(KeyRotation::TYPE) => {
                let doc: KeyRotation = statement.parse()?;
                self.check_node(&doc.node_id)?;
                let time = parse_time("time", &doc.time)?;
                let new = doc.new_key.verifying_key()?;
                let Some((active_id, active)) = self.active() else {
                    return Err(TrustError::Inconsistent(
                        "a rotation needs an enrolled key to rotate from".into(),
                    ));
                };
                if active_id != doc.old_key_id {
                    return Err(TrustError::Inconsistent(format!(
                        "rotation from {} but the node's active key is {active_id}",
                        doc.old_key_id
                    )));
                }
                let old = active.key;
                if time < active.valid_from {
                    return Err(TrustError::Inconsistent(
                        "rotation time precedes the old key's start".into(),
                    ));
                }
                statement.require(&old)?;
                statement.require(&new)?;
                let old_id = doc.old_key_id.clone();
                self.insert(new, Introducer::Key(old_id.clone()), time)?;
                if let Some(r) = self.keys.get_mut(&old_id) {
                    r.retired_at = Some(time);
                }
            }
            Some(KeyRevocation::TYPE) => {
                let doc: KeyRevocation = statement.parse()?;
                self.check_node(&doc.node_id)?;
                let time = parse_time("time", &doc.time)?;
                let new = doc.new_key.verifying_key()?;
                statement.require(&self.recovery)?;
                statement.require(&new)?;
                if !self.keys.contains_key(&doc.revoked_key_id) {
                    return Err(TrustError::Inconsistent(format!(
                        "revocation of {}, which is not a key of node {}",
                        doc.revoked_key_id, self.node_id
                    )));
                }
                let previous = self.active.clone();
                self.insert(new, Introducer::Recovery, time)?;
                self.revoke_tree(&doc.revoked_key_id, time);
                if let Some(r) = previous.and_then(|p| self.keys.get_mut(&p)) {
                    r.retired_at = Some(r.retired_at.map_or(time, |t| t.min(time)));
                }
            }
            other => {
                return Err(TrustError::WrongType {
                    expected: "a key statement".into(),
                    found: other.unwrap_or("").into(),
                });
            }
        }
        self.applied.push(digest);
        Ok(true)
    }

    fn check_node(&self, node_id: &str) -> Result<()> {
        if node_id != self.node_id {
            return Err(TrustError::Inconsistent(format!(
                "statement for node {node_id}, keyring of node {}",
                self.node_id
            )));
        }
        Ok(())
    }

    fn insert(&mut self, key: VerifyingKey, by: Introducer, time: Timestamp) -> Result<()> {
        let id = key_id(&key);
        if self.keys.contains_key(&id) || key == self.recovery {
            // Re-introducing a known key would revive a retired or revoked
            // one; the recovery key must never double as a node key.
            return Err(TrustError::Inconsistent(format!(
                "key {id} is already known for node {}",
                self.node_id
            )));
        }
        self.keys.insert(
            id.clone(),
            KeyRecord {
                key,
                introduced_by: by,
                valid_from: time,
                retired_at: None,
                revoked_at: None,
            },
        );
        self.active = Some(id);
        Ok(())
    }

    /// Revoke a key and every key it introduced, transitively.
    fn revoke_tree(&mut self, root: &str, time: Timestamp) {
        let mut pending = vec![root.to_string()];
        while let Some(id) = pending.pop() {
            if let Some(r) = self.keys.get_mut(&id) {
                r.revoked_at = Some(r.revoked_at.map_or(time, |t| t.min(time)));
            }
            for (child, rec) in &self.keys {
                if rec.introduced_by == Introducer::Key(id.clone()) {
                    pending.push(child.clone());
                }
            }
        }
    }

    /// The state of `key_id` at time `t`.
    pub fn status_at(&self, key_id: &str, t: Timestamp) -> KeyStatus {
        let Some(r) = self.keys.get(key_id) else {
            return KeyStatus::Unknown;
        };
        if r.revoked_at.is_some_and(|x| x <= t) {
            KeyStatus::Revoked
        } else if r.retired_at.is_some_and(|x| x <= t) {
            KeyStatus::Retired
        } else if t < r.valid_from {
            KeyStatus::NotYetValid
        } else {
            KeyStatus::Active
        }
    }

    /// Whether a signature by `key_id` on a document dated `doc_time` is
    /// acceptable when checked at `now`. A revoked key is refused for
    /// everything once its revocation took effect, since a thief can date
    /// a document as it likes. A key retired by rotation was not stolen,
    /// so what it signed while current (documents dated before the
    /// rotation) stays valid.
    pub fn accept(&self, key_id: &str, doc_time: Timestamp, now: Timestamp) -> Result<()> {
        let reject = |reason: String| TrustError::KeyRejected {
            key_id: key_id.to_string(),
            reason,
        };
        let Some(r) = self.keys.get(key_id) else {
            return Err(reject(format!("not a key of node {}", self.node_id)));
        };
        if let Some(at) = r.revoked_at.filter(|at| *at <= now) {
            return Err(reject(format!("revoked at {}", format_time(at))));
        }
        if let Some(at) = r.retired_at.filter(|at| *at <= doc_time) {
            return Err(reject(format!(
                "retired at {}, before the document's time",
                format_time(at)
            )));
        }
        Ok(())
    }

    /// A JSON summary (for `anyam key show` and `anyam partner show`).
    pub fn to_json(&self, now: Timestamp) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(id, r)| {
                json!({
                    "key_id": id,
                    "public_key": PublicKeyInfo::new(&r.key).public_key,
                    "introduced_by": match &r.introduced_by {
                        Introducer::Recovery => "recovery".to_string(),
                        Introducer::Key(k) => k.clone(),
                    },
                    "valid_from": format_time(r.valid_from),
                    "retired_at": r.retired_at.map(format_time),
                    "revoked_at": r.revoked_at.map(format_time),
                    "status": self.status_at(id, now),
                })
            })
            .collect();
        json!({
            "node_id": self.node_id,
            "recovery_key": PublicKeyInfo::new(&self.recovery),
            "active_key_id": self.active,
            "keys": keys,
        })
    }
}
