//! The node's Ed25519 signing key. This module is the only code that reads
//! the private key file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};

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
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the node key")?;
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
