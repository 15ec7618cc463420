//! The node descriptor: who a node is and how to reach it, signed by the
//! node's key, and the export that carries it with the node's key history.

use ed25519_dalek::{SigningKey, VerifyingKey};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, TrustError};
use crate::keyring::Keyring;
use crate::signed::{Document, PublicKeyInfo, SCHEMA_VERSION, Signed, format_time, parse_time};

/// A node's self-description. `node_id` is the id of the recovery key,
/// which never changes; `node_key` is the key that signs for the node now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDescriptor {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    pub node_id: String,
    pub node_name: String,
    /// The operating organization's STIX 2.1 `identity` object (§4.5).
    pub identity: Value,
    pub node_key: PublicKeyInfo,
    pub recovery_key: PublicKeyInfo,
    pub taxii_url: String,
    pub created: String,
}

impl Document for NodeDescriptor {
    const TYPE: &'static str = "anyam-node-descriptor";
}

impl NodeDescriptor {
    pub fn new(
        node_name: &str,
        identity: Value,
        node_key: &VerifyingKey,
        recovery_key: &VerifyingKey,
        taxii_url: &str,
        created: Timestamp,
    ) -> Self {
        let recovery = PublicKeyInfo::new(recovery_key);
        NodeDescriptor {
            doc_type: Self::TYPE.into(),
            schema_version: SCHEMA_VERSION,
            node_id: recovery.key_id.clone(),
            node_name: node_name.into(),
            identity,
            node_key: PublicKeyInfo::new(node_key),
            recovery_key: recovery,
            taxii_url: taxii_url.into(),
            created: format_time(created),
        }
    }

    /// The descriptor signed by the node key.
    pub fn sign(&self, node_key: &SigningKey) -> Result<Signed> {
        if PublicKeyInfo::new(&node_key.verifying_key()) != self.node_key {
            return Err(TrustError::Inconsistent(
                "the signing key is not the descriptor's node key".into(),
            ));
        }
        let mut s = Signed::new(self)?;
        s.sign(node_key);
        Ok(s)
    }

    /// Rules that need no keyring: keys decode and match their ids, the
    /// node id is the recovery key's id, the identity is a valid STIX
    /// identity, the URL and time parse.
    pub fn check(&self) -> Result<()> {
        self.node_key.verifying_key()?;
        self.recovery_key.verifying_key()?;
        if self.node_id != self.recovery_key.key_id {
            return Err(TrustError::Malformed(
                "node_id must be the recovery key's id".into(),
            ));
        }
        if self.node_key.key_id == self.recovery_key.key_id {
            return Err(TrustError::Malformed(
                "the node key and the recovery key must differ".into(),
            ));
        }
        if self.node_name.trim().is_empty() {
            return Err(TrustError::Malformed("node_name is empty".into()));
        }
        if self.identity.get("type").and_then(Value::as_str) != Some("identity") {
            return Err(TrustError::Malformed(
                "identity must be a STIX identity object".into(),
            ));
        }
        anyam_stix::check_object(&self.identity)
            .map_err(|e| TrustError::Malformed(format!("identity: {e}")))?;
        if !(self.taxii_url.starts_with("https://") || self.taxii_url.starts_with("http://")) {
            return Err(TrustError::Malformed(
                "taxii_url must be an http(s) URL".into(),
            ));
        }
        parse_time("created", &self.created)?;
        Ok(())
    }

    /// The STIX id of the organization's identity.
    pub fn identity_id(&self) -> &str {
        self.identity
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// Parse a signed descriptor and check it on its own: format rules and the
/// node key's signature. Whether that key still speaks for the node is the
/// keyring's question ([`import`]).
pub fn verify_self(signed: &Signed) -> Result<NodeDescriptor> {
    let d: NodeDescriptor = signed.parse()?;
    d.check()?;
    signed.require(&d.node_key.verifying_key()?)?;
    Ok(d)
}

/// What `anyam descriptor export` writes: the signed descriptor and every
/// key statement of the node, oldest first, so that a partner can follow
/// the node's key history from its recovery key to the key that signed
/// the descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorExport {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub descriptor: Signed,
    pub key_statements: Vec<Signed>,
}

impl DescriptorExport {
    pub const TYPE: &'static str = "anyam-descriptor-export";

    pub fn new(descriptor: Signed, key_statements: Vec<Signed>) -> Self {
        DescriptorExport {
            doc_type: Self::TYPE.into(),
            descriptor,
            key_statements,
        }
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let e: DescriptorExport = serde_json::from_str(text)
            .map_err(|e| TrustError::Malformed(format!("descriptor export: {e}")))?;
        if e.doc_type != Self::TYPE {
            return Err(TrustError::WrongType {
                expected: Self::TYPE.into(),
                found: e.doc_type,
            });
        }
        Ok(e)
    }
}

/// Verify an export against what is known of the node (`known`, `None` on
/// first contact) and return the updated keyring and the descriptor.
///
/// On first contact the keyring starts from the recovery key the
/// descriptor names; the operator is expected to compare the node id with
/// the partner out of band (as with an SSH host key). Afterwards the node
/// id is pinned: an export naming another recovery key is refused, and
/// new node keys are accepted only through statements that follow from
/// the keys already known.
pub fn import(
    known: Option<&Keyring>,
    export: &DescriptorExport,
    now: Timestamp,
) -> Result<(Keyring, NodeDescriptor)> {
    let d = verify_self(&export.descriptor)?;
    let mut ring = match known {
        Some(k) => {
            if k.node_id() != d.node_id {
                return Err(TrustError::Inconsistent(format!(
                    "descriptor of node {}, expected node {}",
                    d.node_id,
                    k.node_id()
                )));
            }
            k.clone()
        }
        None => Keyring::new(d.recovery_key.verifying_key()?),
    };
    for s in &export.key_statements {
        ring.apply(s)?;
    }
    let Some((active, _)) = ring.active() else {
        return Err(TrustError::Inconsistent(
            "no key enrollment: the node's key is not introduced by its recovery key".into(),
        ));
    };
    if active != d.node_key.key_id {
        return Err(TrustError::Inconsistent(format!(
            "descriptor signed by {}, but the node's active key is {active}",
            d.node_key.key_id
        )));
    }
    ring.accept(&d.node_key.key_id, parse_time("created", &d.created)?, now)?;
    Ok((ring, d))
}
