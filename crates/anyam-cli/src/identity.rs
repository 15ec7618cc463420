//! The node's Ed25519 keys: the node key that signs for it and the offline
//! recovery key. This module is the only code that reads private key files;
//! it hands `SigningKey`s to `anyam-trust`, which never touches files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};

/// A private key as PKCS#8 v1 PEM (RFC 5208 as profiled by RFC 8410: the
/// 32-byte seed, no public key), the form OpenSSL and other tools read;
/// the v2 form with the public key is not readable by every OpenSSL
/// version. Keys are read back in either form.
fn private_pem(
    key: &SigningKey,
) -> Result<ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing<String>> {
    let bytes = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    Ok(bytes.to_pkcs8_pem(LineEnding::LF)?)
}

pub fn key_paths(dir: &Path) -> (PathBuf, PathBuf) {
    let keys = dir.join("keys");
    (keys.join("node.key"), keys.join("node.pub"))
}

/// Create the node key pair if it does not exist: the private key as PKCS#8
/// PEM readable by its owner only, the public key as SPKI PEM.
pub fn ensure_node_key(dir: &Path) -> Result<()> {
    let (private, public) = key_paths(dir);
    if private.exists() {
        // Fail early on a damaged key rather than at first signature.
        load_signing_key(dir)?;
        return Ok(());
    }
    crate::node::create_private_dir(&dir.join("keys"))?;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = private_pem(&key).context("encoding the node key")?;
    anyam_taxii::server::write_private(&private, pem.as_bytes())
        .with_context(|| format!("writing {}", private.display()))?;
    let pub_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the node public key")?;
    std::fs::write(&public, pub_pem).with_context(|| format!("writing {}", public.display()))?;
    Ok(())
}

/// Read the node's signing key.
pub fn load_signing_key(dir: &Path) -> Result<SigningKey> {
    let (private, _) = key_paths(dir);
    let pem = std::fs::read_to_string(&private)
        .with_context(|| format!("reading {}", private.display()))?;
    SigningKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("{} is not an Ed25519 PKCS#8 key", private.display()))
}

/// The trust database inside the data directory (key history, partners,
/// agreements). Backups must include it along with `keys/`.
pub const TRUST_DB: &str = "trust.db";

/// Where first start writes the recovery key's private half, once, for the
/// operator to move offline; and its public half, which stays.
pub fn recovery_paths(dir: &Path) -> (PathBuf, PathBuf) {
    let keys = dir.join("keys");
    (keys.join("recovery.key"), keys.join("recovery.pub"))
}

/// What creating the recovery key produced, to tell the operator once.
pub struct RecoveryCreated {
    pub private_path: PathBuf,
    pub node_id: String,
}

pub fn open_trust(dir: &Path) -> Result<anyam_trust::TrustStore> {
    let path = dir.join(TRUST_DB);
    anyam_trust::TrustStore::open(&path).with_context(|| format!("opening {}", path.display()))
}

/// Create the node's recovery key if the node has none yet: write its
/// private half to `keys/recovery.key` (owner-only), have it enroll the
/// current node key, record both in the trust database, then write the
/// public half. Runs at every start; it does something only on the first
/// (or on the first start after an upgrade from a version without
/// recovery keys). A start interrupted half-way reuses the recovery key
/// file it already wrote, so no second recovery key is ever made.
pub fn ensure_recovery_key(dir: &Path) -> Result<Option<RecoveryCreated>> {
    let mut trust = open_trust(dir)?;
    complete_pending_key(dir, &trust)?;
    if trust.self_node_id()?.is_some() {
        return Ok(None);
    }
    let (private, public) = recovery_paths(dir);
    let recovery = if private.exists() {
        read_key_file(&private)?
    } else if public.exists() {
        // The node has a recovery key, kept offline, but no key history:
        // the trust database was lost. Making a new recovery key would
        // silently give the node a new identity that partners reject.
        anyhow::bail!(
            "{} exists but {} holds no key history; restore {TRUST_DB} from a backup, \
             or put the recovery key back at {} to enroll the node key again",
            public.display(),
            dir.join(TRUST_DB).display(),
            private.display()
        );
    } else {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let pem = private_pem(&key).context("encoding the recovery key")?;
        anyam_taxii::server::write_private(&private, pem.as_bytes())
            .with_context(|| format!("writing {}", private.display()))?;
        key
    };
    let node = load_signing_key(dir)?;
    let enrollment = anyam_trust::keyring::enroll(&recovery, &node, jiff::Timestamp::now())
        .context("enrolling the node key")?;
    let node_id = trust
        .init_self(&recovery.verifying_key(), &enrollment)
        .context("recording the node's keys")?;
    write_public(&public, &recovery.verifying_key())?;
    Ok(Some(RecoveryCreated {
        private_path: private,
        node_id,
    }))
}

fn write_public(path: &Path, key: &ed25519_dalek::VerifyingKey) -> Result<()> {
    let pem = key
        .to_public_key_pem(LineEnding::LF)
        .context("encoding a public key")?;
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))
}

/// Read an Ed25519 PKCS#8 PEM private key file (the node key, or the
/// recovery key the operator brings back for `anyam key revoke`).
pub fn read_key_file(path: &Path) -> Result<SigningKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("{} is not an Ed25519 PKCS#8 key", path.display()))
}

fn next_key_path(dir: &Path) -> PathBuf {
    dir.join("keys").join("node.key.next")
}

/// Finish a key change interrupted between recording the statement and
/// installing the key file: the new key is installed if the trust database
/// made it the active key, and discarded otherwise.
pub fn complete_pending_key(dir: &Path, trust: &anyam_trust::TrustStore) -> Result<()> {
    let next = next_key_path(dir);
    if !next.exists() {
        return Ok(());
    }
    let key = read_key_file(&next)?;
    let active = match trust.self_node_id()? {
        Some(_) => trust.own_keyring()?.active().map(|(id, _)| id.to_string()),
        None => None,
    };
    if active.as_deref() == Some(anyam_trust::key_id(&key.verifying_key()).as_str()) {
        install_key(dir, &key)?;
    } else {
        std::fs::remove_file(&next).with_context(|| format!("removing {}", next.display()))?;
    }
    Ok(())
}

fn install_key(dir: &Path, key: &SigningKey) -> Result<()> {
    let (private, public) = key_paths(dir);
    let next = next_key_path(dir);
    std::fs::rename(&next, &private)
        .with_context(|| format!("installing {} as {}", next.display(), private.display()))?;
    write_public(&public, &key.verifying_key())
}

/// Replace the node key by a new one under a key statement made by
/// `statement(new_key)`: the new key is written beside the old one first,
/// the statement recorded (which checks it follows from the key history),
/// and only then the new key installed, so a crash at any point leaves a
/// key that matches the recorded history.
fn replace_node_key(
    dir: &Path,
    trust: &mut anyam_trust::TrustStore,
    statement: impl FnOnce(&SigningKey) -> Result<anyam_trust::Signed>,
) -> Result<(anyam_trust::Signed, SigningKey)> {
    let new = SigningKey::generate(&mut rand::rngs::OsRng);
    let s = statement(&new)?;
    let pem = private_pem(&new).context("encoding the new node key")?;
    let next = next_key_path(dir);
    anyam_taxii::server::write_private(&next, pem.as_bytes())
        .with_context(|| format!("writing {}", next.display()))?;
    if let Err(e) = trust.add_own_statement(&s) {
        let _ = std::fs::remove_file(&next);
        return Err(e.into());
    }
    install_key(dir, &new)?;
    Ok((s, new))
}

/// Routine rotation: the current node key signs the hand-over to a new
/// one, which countersigns. Returns the statement.
pub fn rotate_node_key(
    dir: &Path,
    trust: &mut anyam_trust::TrustStore,
) -> Result<anyam_trust::Signed> {
    complete_pending_key(dir, trust)?;
    let old = load_signing_key(dir)?;
    let node_id = trust
        .self_node_id()?
        .context("the node has no key history yet; start it once with `anyam serve`")?;
    let (s, _) = replace_node_key(dir, trust, |new| {
        Ok(anyam_trust::keyring::rotate(
            &node_id,
            &old,
            new,
            jiff::Timestamp::now(),
        )?)
    })?;
    Ok(s)
}

/// Compromise recovery: the recovery key (read from the file the operator
/// brings back) revokes `revoked` (the current node key when `None`) and
/// installs a new node key. The compromised key file is overwritten.
pub fn recover_node_key(
    dir: &Path,
    trust: &mut anyam_trust::TrustStore,
    recovery_file: &Path,
    revoked: Option<String>,
    reason: Option<String>,
) -> Result<(anyam_trust::Signed, String)> {
    complete_pending_key(dir, trust)?;
    let recovery = read_key_file(recovery_file)?;
    let ring = trust.own_keyring()?;
    if anyam_trust::key_id(&recovery.verifying_key()) != ring.node_id() {
        anyhow::bail!(
            "{} is not this node's recovery key (node id {})",
            recovery_file.display(),
            ring.node_id()
        );
    }
    let revoked = match revoked {
        Some(k) => k,
        None => ring
            .active()
            .map(|(id, _)| id.to_string())
            .context("the node has no key to revoke")?,
    };
    let (s, _) = replace_node_key(dir, trust, |new| {
        Ok(anyam_trust::keyring::revoke(
            &recovery,
            &revoked,
            new,
            jiff::Timestamp::now(),
            reason,
        )?)
    })?;
    Ok((s, revoked))
}

/// One node key of the node's history.
pub struct HistoricKey {
    pub key_id: String,
    pub key: ed25519_dalek::VerifyingKey,
    /// Its state now (active, retired by rotation, revoked).
    pub status: anyam_trust::KeyStatus,
}

/// Every node key the node has had, oldest first: what a verifier of
/// things the node signed over time (audit log heads, for one) needs after
/// a rotation. Keys of a revoked branch are included with status `Revoked`
/// so the caller decides. Empty for a node not started since recovery keys
/// existed; its only key is then `keys/node.pub`.
pub fn node_key_history(dir: &Path) -> Result<Vec<HistoricKey>> {
    let trust = open_trust(dir)?;
    if trust.self_node_id()?.is_none() {
        return Ok(Vec::new());
    }
    let ring = trust.own_keyring()?;
    let now = jiff::Timestamp::now();
    let mut keys: Vec<_> = ring.keys().collect();
    keys.sort_by_key(|(_, r)| r.valid_from);
    Ok(keys
        .into_iter()
        .map(|(id, r)| HistoricKey {
            key_id: id.to_string(),
            key: r.key,
            status: ring.status_at(id, now),
        })
        .collect())
}
