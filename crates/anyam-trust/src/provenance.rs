//! Provenance of published objects: signed batch manifests, the
//! originator's terms travelling with relayed objects, and signed
//! tombstones.
//!
//! # Why detached signatures
//!
//! Objects are served exactly as they were received: a signature inside a
//! STIX object would change it (and its digest), and a relaying node could
//! not pass on the originator's signature without also passing on its own
//! edits. So a node signs a *manifest* per batch it publishes to a
//! partner: for every object its id, its version and the lowercase hex
//! SHA-256 of its RFC 8785 canonical JSON (`anyam_stix::canonical_digest`
//! of the object parsed as JSON). The manifest travels in the ordinary
//! [`Signed`] envelope of this crate, signed by the publishing node's key.
//!
//! # Why the signature covers a Merkle root
//!
//! A relaying node must pass the originator's signature on, and the
//! originator signed a whole batch, of which the relaying node may pass
//! on one object to a node entitled to nothing else of it. So the
//! signatures of a manifest cover its *head*: the manifest with its
//! `entries` replaced by their number and the RFC 9162 §2.1 Merkle tree
//! root over them (each leaf the RFC 8785 canonical JSON of one entry).
//! A direct receiver gets the whole manifest and recomputes the root; a
//! third node gets the originator's head and, in the relayed entry, the
//! entry's inclusion proof (RFC 9162 §2.1.3), and learns of the other
//! entries only how many there were.
//!
//! # Wire format
//!
//! A signed manifest:
//!
//! ```json
//! {
//!   "document": {
//!     "type": "anyam-provenance-manifest",
//!     "schema_version": 2,
//!     "publisher": "<node id of the publisher>",
//!     "created": "2026-03-01T12:00:00.123456Z",
//!     "collection": "ransomware",
//!     "agreement": { "id": "agreement--<uuid>", "version": 2 },
//!     "entries": [
//!       {
//!         "id": "indicator--<uuid>",
//!         "version": "2026-02-28T09:00:00.000Z",
//!         "digest": "<64 hex digits>",
//!         "origin": { "node_id": "<publisher>", "redistribution": { "to": "parties" } },
//!         "salt": "<32 hex digits>"
//!       },
//!       {
//!         "id": "malware--<uuid>",
//!         "version": "2026-02-20T09:00:00.000Z",
//!         "digest": "<64 hex digits>",
//!         "origin": {
//!           "node_id": "<originator's node id>",
//!           "redistribution": { "to": "named", "recipients": ["<node id>"] },
//!           "manifest": "<digest of the head of the originator's manifest>",
//!           "proof": { "index": 17, "path": ["<64 hex digits>", …], "salt": "<32 hex digits>" }
//!         },
//!         "salt": "<32 hex digits>"
//!       }
//!     ]
//!   },
//!   "signatures": [ { "key_id": "<publisher key id>", "signature": "<base64>" } ]
//! }
//! ```
//!
//! The signatures are over the canonical JSON of the head, which is the
//! same document with `entries` replaced by
//! `{ "count": <number of entries>, "root": "<64 hex digits>" }`; the
//! head, with the same signatures, is itself a valid signed form of the
//! manifest ([`manifest_head`]), and the digest of the head names the
//! manifest.
//!
//! `version` is the object's `modified`, else its `created`, exactly as
//! written (the TAXII version string); it is absent for objects with
//! neither, whose single version the digest names. `collection` is the
//! collection as the publisher names it. `origin` carries the
//! originator's terms: its node id and its [`Redistribution`] (the type of
//! the sharing agreement). For the publisher's own objects `origin.node_id`
//! is the publisher and `manifest` is absent. For a relayed object
//! `manifest` is the [`Signed::digest`] of the head of the originator's
//! own signed manifest, which the relaying node passes on (the head only)
//! next to its own, and `proof` places the originator's own entry for the
//! object in it; the originator's signature thus travels with the object
//! through every hop, and nothing else of the originator's batch does.
//!
//! A tombstone (a signed deletion):
//!
//! ```json
//! {
//!   "document": {
//!     "type": "anyam-provenance-tombstone",
//!     "schema_version": 1,
//!     "node_id": "<node id of the originator>",
//!     "object_id": "indicator--<uuid>",
//!     "versions": "all",
//!     "reason": "false positive",
//!     "time": "2026-03-02T08:00:00Z"
//!   },
//!   "signatures": [ { "key_id": "<key id>", "signature": "<base64>" } ]
//! }
//! ```
//!
//! `versions` is `"all"` or a non-empty list of version strings.
//!
//! # What the checks guarantee
//!
//! [`verify_batch`], for a batch received from node `from`:
//!
//! - the manifest is well formed and names `from` as its publisher
//!   ([`ProvenanceError::WrongPublisher`] otherwise: a node cannot present
//!   another's batch as its own, nor its own as another's);
//! - it carries a valid strict Ed25519 signature by a key of the
//!   publisher's keyring, which was the publisher's key at the manifest's
//!   `created` time (not retired by rotation before it, not introduced
//!   after it) and is not revoked as of `now`: a revocation after a
//!   compromise refuses everything the key signed, whatever its date, as
//!   [`Keyring::accept`](crate::Keyring::accept) decides; a manifest dated
//!   more than [`MAX_FUTURE_SKEW`] after `now` is refused;
//! - every object received parses, and its (id, version, digest) matches
//!   exactly one entry: a changed byte anywhere in an object's content
//!   shows as a digest mismatch naming the object, an object without an
//!   entry is unsigned, an object given twice is refused. Any of these
//!   refuses the whole batch ([`ProvenanceError::Objects`] lists every
//!   object at fault): a path that altered one object is not trusted for
//!   the others;
//! - entries without objects are reported ([`VerifiedBatch::missing`]),
//!   not refused: a publisher may list more than one page carries.
//!
//! [`verify_relayed`], for an entry whose originator is not the
//! publisher: the originator's signed head given is the one the entry
//! references (by digest), is signed by the originator as above, and the
//! entry's inclusion proof leads from the originator's own entry for the
//! object, with the same (id, version, digest) and the very terms the
//! relaying node claims, to the signed root. It returns those terms,
//! so that a node can enforce them ([`may_pass_on`]) without seeing the
//! agreement between the originator and the relaying node.
//!
//! [`Tombstone::verify`]: the tombstone is well formed and signed by a key
//! of its `node_id` valid at its `time` and not revoked now. Whether that
//! node may delete the object (it must be the object's originator) is the
//! caller's check, against the terms recorded when the object came in
//! ([`Tombstone::is_from`]).
//!
//! # What they do not guarantee
//!
//! Digests are over the canonical JSON of the parsed object, so two texts
//! that parse to the same JSON value (whitespace, member order, escapes)
//! are the same object. Whether the publisher was entitled to publish
//! under the agreement it names is answered from the agreements in force
//! ([`VerifiedBatch::check_agreement`]). A relayed object's proof shows
//! the third node the number of entries of the originator's batch and
//! the hashes on the path; every entry being salted with 16 random bytes,
//! it cannot test guesses of the other entries against those hashes. When
//! a relayed entry fails, the third node cannot tell whether the object,
//! its terms or the listing was changed: only that the originator did not
//! sign what it was given.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use anyam_audit::merkle;
use anyam_audit::{AuditError, Hash};

use crate::agreement::{AgreementView, AgreementsInForce, Keyrings, Redistribution};
use crate::error::TrustError;
use crate::signed::{Document, SCHEMA_VERSION, SigCheck, Signed, format_time, parse_time};

/// How far in the future a signed provenance document may be dated
/// (clock skew between nodes) before it is refused.
pub const MAX_FUTURE_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// The agreement (id and version) a batch is published under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementRef {
    pub id: String,
    pub version: u32,
}

/// The originator of an object and its terms, as a manifest entry states
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The originator's node id.
    pub node_id: String,
    /// Who the object may be passed on to, as the originator set it.
    pub redistribution: Redistribution,
    /// [`Signed::digest`] of the head of the originator's signed manifest
    /// covering the object ([`manifest_head`]); absent when the publisher
    /// is the originator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Where the originator's own entry for the object sits in that
    /// manifest; present exactly when `manifest` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<InclusionProof>,
}

/// The position of an entry in its manifest and its RFC 9162 §2.1.3
/// inclusion path: the sibling hashes (lowercase hex, leaf side first)
/// that lead from the entry's leaf hash to the root the manifest's head
/// signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub index: u64,
    pub path: Vec<String>,
    /// The salt of the originator's entry ([`Entry::salt`]), without
    /// which its leaf cannot be rebuilt.
    pub salt: String,
}

/// One object of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    /// `modified`, else `created`, as written; absent when neither is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Lowercase hex SHA-256 of the object's RFC 8785 canonical JSON.
    pub digest: String,
    pub origin: Origin,
    /// 16 random bytes in lowercase hex, drawn by the publisher for this
    /// entry: its leaf hash then says nothing to whoever sees it without
    /// the entry (a third node holding a sibling hash cannot test guesses
    /// of the neighbouring entry against it).
    pub salt: String,
}

/// A publisher's signed list of the objects of one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    /// The publishing node's id.
    pub publisher: String,
    pub created: String,
    /// The collection as the publisher names it.
    pub collection: String,
    pub agreement: AgreementRef,
    pub entries: Vec<Entry>,
}

impl Document for Manifest {
    const TYPE: &'static str = "anyam-provenance-manifest";
    const VERSION: u32 = MANIFEST_VERSION;
}

/// The `schema_version` of manifests: 2 since signatures cover the head
/// (the entries' Merkle root) rather than the entries themselves.
pub const MANIFEST_VERSION: u32 = 2;

/// A manifest as its signatures cover it: every member of the
/// [`Manifest`] but the entries, which are replaced by their number and
/// their Merkle tree root ([`EntriesRoot`]). The head is what a node
/// passes on with relayed objects, each with its [`InclusionProof`]: the
/// third node learns nothing of the other entries but their number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestHead {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    pub publisher: String,
    pub created: String,
    pub collection: String,
    pub agreement: AgreementRef,
    pub entries: EntriesRoot,
}

impl Document for ManifestHead {
    const TYPE: &'static str = "anyam-provenance-manifest";
    const VERSION: u32 = MANIFEST_VERSION;
}

/// The entries of a manifest, as its head states them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntriesRoot {
    pub count: u64,
    /// Lowercase hex RFC 9162 §2.1.1 Merkle tree hash over the entries in
    /// their order, each leaf being the RFC 8785 canonical JSON of one
    /// entry.
    pub root: String,
}

/// The leaf hash of one entry: RFC 9162 `SHA-256(0x00 || canonical JSON)`.
pub fn entry_leaf(e: &Entry) -> Result<Hash, ProvenanceError> {
    let v = serde_json::to_value(e).map_err(|err| malformed("manifest entry", err.to_string()))?;
    Ok(merkle::leaf_hash(anyam_stix::canonical_json(&v).as_bytes()))
}

/// The Merkle tree over a manifest's entries, kept whole so that the
/// inclusion proof of any entry costs at most a few hashes (along the
/// right edge of a tree whose size is not a power of two): every perfect
/// subtree's hash is stored, level by level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestTree {
    /// `levels[l][j]`: the hash of the perfect subtree of `2^l` leaves
    /// starting at leaf `j << l`.
    levels: Vec<Vec<Hash>>,
}

impl ManifestTree {
    pub fn new(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(top) = levels.last()
            && top.len() > 1
        {
            let up = top
                .chunks_exact(2)
                .map(|p| merkle::node_hash(&p[0], &p[1]))
                .collect();
            levels.push(up);
        }
        ManifestTree { levels }
    }

    /// The tree of a list of entries.
    pub fn of_entries(entries: &[Entry]) -> Result<Self, ProvenanceError> {
        Ok(Self::new(
            entries.iter().map(entry_leaf).collect::<Result<_, _>>()?,
        ))
    }

    pub fn leaves(&self) -> &[Hash] {
        &self.levels[0]
    }

    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    fn perfect(&self, level: u32, index: u64) -> Result<Hash, AuditError> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or_else(|| AuditError::Malformed(format!("no subtree {level}/{index}")))
    }

    pub fn root(&self) -> Hash {
        merkle::mth_from_perfect(0, self.size(), &mut |l, i| self.perfect(l, i))
            .unwrap_or_else(|_| merkle::empty_root())
    }

    /// The inclusion proof of leaf `index`, whose entry has `salt`.
    pub fn proof(&self, index: u64, salt: &str) -> Result<InclusionProof, ProvenanceError> {
        let path = merkle::inclusion_proof_with(index, self.size(), &mut |a, b| {
            merkle::mth_from_perfect(a, b, &mut |l, i| self.perfect(l, i))
        })
        .map_err(|e| malformed("manifest tree", e.to_string()))?;
        Ok(InclusionProof {
            index,
            path: path.iter().map(|h| h.to_string()).collect(),
            salt: salt.to_string(),
        })
    }
}

/// The head of a signed manifest, given whole (with its entries) or as a
/// head already: the head parsed and checked, and the head as a signed
/// document carrying the manifest's signatures. Its [`Signed::digest`]
/// names the manifest, whichever form it came in.
pub fn manifest_head(signed: &Signed) -> Result<(ManifestHead, Signed), ProvenanceError> {
    let head = if signed.document.get("entries").is_some_and(Value::is_array) {
        let m = parse_manifest(signed)?;
        let tree = ManifestTree::of_entries(&m.entries)?;
        m.head(&tree)
    } else {
        let h: ManifestHead = signed.parse().map_err(|e| parse_error("manifest", e))?;
        check_header(
            &h.doc_type,
            h.schema_version,
            &h.publisher,
            &h.created,
            &h.collection,
            &h.agreement,
        )?;
        if !is_hex64(&h.entries.root) {
            return Err(malformed(
                "manifest",
                "entries.root must be 64 lowercase hex digits",
            ));
        }
        h
    };
    let document = serde_json::to_value(&head).map_err(|e| malformed("manifest", e.to_string()))?;
    Ok((
        head,
        Signed {
            document,
            signatures: signed.signatures.clone(),
        },
    ))
}

/// An object's id, version and digest, read from its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey {
    pub id: String,
    pub version: Option<String>,
    pub digest: String,
}

impl ObjectKey {
    /// Parse `text` as JSON and read the id, the version (`modified`, else
    /// `created`) and the canonical digest.
    pub fn of(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
        Self::of_value(&value)
    }

    /// As [`ObjectKey::of`], for an already parsed object.
    pub fn of_value(value: &Value) -> Result<Self, String> {
        Self::of_digested(value, &anyam_stix::canonical_digest(value))
    }

    /// [`ObjectKey::of_value`] with the value's canonical digest already
    /// computed.
    pub fn of_digested(value: &Value, digest: &[u8; 32]) -> Result<Self, String> {
        if !value.is_object() {
            return Err("not a JSON object".into());
        }
        let Some(id) = value.get("id").and_then(Value::as_str) else {
            return Err("no string \"id\"".into());
        };
        let version = value
            .get("modified")
            .or_else(|| value.get("created"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(ObjectKey {
            id: id.to_string(),
            version,
            digest: hex::encode(digest),
        })
    }
}

impl Manifest {
    /// An empty manifest of `publisher` for a batch of `collection` under
    /// `agreement`.
    pub fn new(
        publisher: &str,
        collection: &str,
        agreement: AgreementRef,
        created: Timestamp,
    ) -> Self {
        Manifest {
            doc_type: Self::TYPE.into(),
            schema_version: MANIFEST_VERSION,
            publisher: publisher.into(),
            created: format_time(created),
            collection: collection.into(),
            agreement,
            entries: Vec::new(),
        }
    }

    /// A manifest of the publisher's own objects, given as the JSON texts
    /// served, all under the same redistribution terms.
    pub fn for_objects(
        publisher: &str,
        collection: &str,
        agreement: AgreementRef,
        redistribution: &Redistribution,
        objects: &[&str],
        created: Timestamp,
    ) -> Result<Self, ProvenanceError> {
        let mut m = Self::new(publisher, collection, agreement, created);
        for text in objects {
            m.push_own(text, redistribution.clone())?;
        }
        Ok(m)
    }

    /// Add one of the publisher's own objects.
    pub fn push_own(
        &mut self,
        text: &str,
        redistribution: Redistribution,
    ) -> Result<(), ProvenanceError> {
        let origin = Origin {
            node_id: self.publisher.clone(),
            redistribution,
            manifest: None,
            proof: None,
        };
        self.push(text, origin)
    }

    /// Add an object with the given origin: for a relayed object, the one
    /// [`OriginTerms::origin`] gives after [`verify_relayed`].
    pub fn push(&mut self, text: &str, origin: Origin) -> Result<(), ProvenanceError> {
        let key = ObjectKey::of(text).map_err(|detail| {
            ProvenanceError::Objects(vec![ObjectProblem {
                index: self.entries.len(),
                id: None,
                version: None,
                fault: Fault::Unparseable(detail),
            }])
        })?;
        self.push_key(key, origin);
        Ok(())
    }

    /// [`Manifest::push`] for an object whose key is already known (for
    /// example from the digest the store computed when it stored it).
    pub fn push_key(&mut self, key: ObjectKey, origin: Origin) {
        self.entries.push(Entry {
            id: key.id,
            version: key.version,
            digest: key.digest,
            origin,
            salt: hex::encode(rand::random::<[u8; 16]>()),
        });
    }

    /// Format rules that need no keys.
    pub fn check(&self) -> Result<(), ProvenanceError> {
        let bad = |m: String| Err(malformed("manifest", m));
        check_header(
            &self.doc_type,
            self.schema_version,
            &self.publisher,
            &self.created,
            &self.collection,
            &self.agreement,
        )?;
        let mut seen = BTreeSet::new();
        for e in &self.entries {
            let name = &e.id;
            if !e.id.contains("--") {
                return bad(format!("entry {name}: id is not a STIX id"));
            }
            if e.version.as_deref().is_some_and(str::is_empty) {
                return bad(format!("entry {name}: version is empty"));
            }
            if !is_hex64(&e.digest) {
                return bad(format!(
                    "entry {name}: digest must be 64 lowercase hex digits"
                ));
            }
            if !is_lower_hex(&e.salt, 32) {
                return bad(format!(
                    "entry {name}: salt must be 32 lowercase hex digits"
                ));
            }
            if !seen.insert((e.id.as_str(), e.version.as_deref())) {
                return bad(format!("entry {name}: listed twice for the same version"));
            }
            check_origin(&e.origin, &self.publisher)
                .map_err(|m| malformed("manifest", format!("entry {name}: {m}")))?;
        }
        Ok(())
    }

    /// The head of this manifest, whose entries make `tree`.
    pub fn head(&self, tree: &ManifestTree) -> ManifestHead {
        ManifestHead {
            doc_type: self.doc_type.clone(),
            schema_version: self.schema_version,
            publisher: self.publisher.clone(),
            created: self.created.clone(),
            collection: self.collection.clone(),
            agreement: self.agreement.clone(),
            entries: EntriesRoot {
                count: tree.size(),
                root: tree.root().to_string(),
            },
        }
    }

    /// The manifest signed with the publisher's node key: the document is
    /// the whole manifest, the signature covers its head.
    pub fn sign(&self, key: &SigningKey) -> Result<Signed, ProvenanceError> {
        self.check()?;
        let tree = ManifestTree::of_entries(&self.entries)?;
        let mut head =
            Signed::new(&self.head(&tree)).map_err(|e| malformed("manifest", e.to_string()))?;
        head.sign(key);
        let document =
            serde_json::to_value(self).map_err(|e| malformed("manifest", e.to_string()))?;
        Ok(Signed {
            document,
            signatures: head.signatures,
        })
    }

    /// The entry for `id` at `version`, if any.
    pub fn entry(&self, id: &str, version: Option<&str>) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.id == id && e.version.as_deref() == version)
    }
}

/// The format rules of a manifest's members other than its entries.
fn check_header(
    doc_type: &str,
    schema_version: u32,
    publisher: &str,
    created: &str,
    collection: &str,
    agreement: &AgreementRef,
) -> Result<(), ProvenanceError> {
    let bad = |m: String| Err(malformed("manifest", m));
    if doc_type != Manifest::TYPE {
        return bad(format!("type must be {}", Manifest::TYPE));
    }
    if schema_version != MANIFEST_VERSION {
        return bad(format!("schema_version must be {MANIFEST_VERSION}"));
    }
    if !is_hex64(publisher) {
        return bad("publisher must be a node id (64 hex digits)".into());
    }
    parse_time("created", created).map_err(|e| malformed("manifest", e.to_string()))?;
    if collection.trim().is_empty() {
        return bad("collection is empty".into());
    }
    let uuid_ok = agreement
        .id
        .strip_prefix("agreement--")
        .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok());
    if !uuid_ok || agreement.version == 0 {
        return bad("agreement must be agreement--<uuid> with a version from 1".into());
    }
    Ok(())
}

fn check_origin(o: &Origin, publisher: &str) -> Result<(), String> {
    if !is_hex64(&o.node_id) {
        return Err("origin.node_id must be a node id (64 hex digits)".into());
    }
    if let Redistribution::Named { recipients } = &o.redistribution
        && recipients.is_empty()
    {
        return Err("redistribution to named others names no one".into());
    }
    if o.proof.is_some() && o.manifest.is_none() {
        return Err("origin.proof without origin.manifest".into());
    }
    match (&o.manifest, o.node_id == publisher) {
        (None, true) => Ok(()),
        (Some(_), true) => Err("an own object references no originator manifest".into()),
        (Some(d), false) if is_hex64(d) => Ok(()),
        (Some(_), false) => Err("origin.manifest must be 64 lowercase hex digits".into()),
        // A relayed entry may lack the originator's manifest; it then
        // fails [`verify_relayed`], and its receiver refuses it.
        (None, false) => Ok(()),
    }
}

fn is_hex64(s: &str) -> bool {
    is_lower_hex(s, 64)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn malformed(what: &str, detail: impl Into<String>) -> ProvenanceError {
    ProvenanceError::Malformed {
        what: what.into(),
        detail: detail.into(),
    }
}

/// What is wrong with one object of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The text is not a JSON object with a string `id`.
    Unparseable(String),
    /// The manifest's entry for the object's id and version has another
    /// digest: the object was altered after it was signed.
    Altered { signed: String, received: String },
    /// No entry for the object's id and version: nobody signed it.
    Unsigned,
    /// The same object version was given twice.
    Duplicate,
}

/// One object at fault, by its position in the batch and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectProblem {
    /// Position in the objects as received.
    pub index: usize,
    pub id: Option<String>,
    pub version: Option<String>,
    pub fault: Fault,
}

impl std::fmt::Display for ObjectProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{id}")?,
            None => write!(f, "object #{}", self.index)?,
        }
        if let Some(v) = &self.version {
            write!(f, " (version {v})")?;
        }
        match &self.fault {
            Fault::Unparseable(d) => write!(f, ": unreadable: {d}"),
            Fault::Altered { signed, received } => write!(
                f,
                ": altered in transit: digest {received}, signed digest {signed}"
            ),
            Fault::Unsigned => write!(f, ": not in the signed manifest (unsigned)"),
            Fault::Duplicate => write!(f, ": given twice"),
        }
    }
}

/// Why a batch, a relayed object or a tombstone is refused. Every variant
/// is a rejection of outside input, to be refused and audited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvenanceError {
    #[error("malformed {what}: {detail}")]
    Malformed { what: String, detail: String },
    /// The manifest names another publisher than the node it came from.
    #[error("manifest of publisher {found}, but the batch came from node {expected}")]
    WrongPublisher { expected: String, found: String },
    /// No keyring is known for the node that should have signed.
    #[error("node {node_id} is unknown here (import its descriptor)")]
    UnknownNode { node_id: String },
    /// The document carries no signature at all.
    #[error("no signature of node {node_id}")]
    Unsigned { node_id: String },
    /// Signed only by keys no known node has.
    #[error("signed by key {key_id}, which is not a key of node {node_id}")]
    UnknownKey { node_id: String, key_id: String },
    /// Signed by a key of another known node, not of the one named.
    #[error("signed by node {signer} (key {key_id}), not by node {node_id}")]
    SignedByOtherNode {
        node_id: String,
        signer: String,
        key_id: String,
    },
    #[error("bad signature by key {key_id} of node {node_id}")]
    BadSignature { node_id: String, key_id: String },
    /// A compromise revocation: refused whatever date the document claims.
    #[error("key {key_id} of node {node_id} is revoked since {at}")]
    KeyRevoked {
        node_id: String,
        key_id: String,
        at: String,
    },
    /// Retired by rotation before the document's time.
    #[error("key {key_id} of node {node_id} was retired at {at}, before the document's time")]
    KeyRetired {
        node_id: String,
        key_id: String,
        at: String,
    },
    /// The key only speaks for the node after the document's time.
    #[error(
        "key {key_id} of node {node_id} speaks for it only from {from}, after the document's time"
    )]
    KeyNotYetValid {
        node_id: String,
        key_id: String,
        from: String,
    },
    #[error("dated {time}, later than now allows")]
    FutureDated { time: String },
    /// Objects of a batch at fault; the whole batch is refused.
    #[error("{}", join_problems(.0))]
    Objects(Vec<ObjectProblem>),
    /// A relayed entry without the originator's manifest reference.
    #[error("{id}: relayed from originator {originator} without the originator's signed manifest")]
    NoOriginatorManifest { id: String, originator: String },
    /// The originator's manifest given is not the one the entry names.
    #[error("{id}: originator manifest {found} given, the entry references {expected}")]
    OriginatorManifestMismatch {
        id: String,
        expected: String,
        found: String,
    },
    /// The originator's signed manifest does not list the object, at this
    /// version and digest, as its own under the terms stated: it was
    /// altered on the path, its terms were, or the originator never
    /// listed it. (The head alone cannot tell which: that is what keeps
    /// the originator's other entries from the third node.)
    #[error(
        "{id}: the originator's signed manifest does not list it as its own with this version, digest and terms ({detail})"
    )]
    NotInOriginatorManifest {
        id: String,
        version: Option<String>,
        detail: String,
    },
    /// The batch names an agreement not in force between the two nodes.
    #[error("agreement {id} version {version}: {detail}")]
    NotUnderAgreement {
        id: String,
        version: u32,
        detail: String,
    },
}

fn join_problems(p: &[ObjectProblem]) -> String {
    let mut out = format!("{} object(s) refused: ", p.len());
    for (i, x) in p.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&x.to_string());
    }
    out
}

/// An originator's terms for one object, established by a signature of
/// the originator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginTerms {
    pub originator: String,
    pub redistribution: Redistribution,
    /// The agreement the originator published the object under (whose
    /// parties `Redistribution::Parties` refers to).
    pub agreement: AgreementRef,
    /// Digest of the head of the originator's signed manifest, to
    /// reference when relaying the object.
    pub manifest: String,
    /// The index of the originator's entry for the object in that
    /// manifest.
    pub position: u64,
    /// That entry's salt.
    pub salt: String,
    /// Its inclusion proof, when the object came relayed (from a batch
    /// verified here, the batch's [`ManifestTree`] gives it:
    /// [`VerifiedBatch::with_proof`]).
    pub proof: Option<InclusionProof>,
}

impl OriginTerms {
    /// The origin to state when relaying the object.
    pub fn origin(&self) -> Origin {
        Origin {
            node_id: self.originator.clone(),
            redistribution: self.redistribution.clone(),
            manifest: Some(self.manifest.clone()),
            proof: self.proof.clone(),
        }
    }
}

/// One object of a verified batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedObject {
    /// Position in the objects as received.
    pub index: usize,
    pub entry: Entry,
    /// The originator's terms when the publisher is the originator (its
    /// signature on the manifest is the originator's). `None` for relayed
    /// objects: [`verify_relayed`] establishes their terms.
    pub terms: Option<OriginTerms>,
}

/// A batch whose manifest and objects verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBatch {
    pub manifest: Manifest,
    /// The manifest's head with its signatures ([`manifest_head`]): what
    /// to keep, and to pass on with relayed objects.
    pub head: Signed,
    /// The Merkle tree of the manifest's entries.
    pub tree: ManifestTree,
    /// [`Signed::digest`] of the head.
    pub digest: String,
    /// The publisher's key that signed.
    pub key_id: String,
    pub objects: Vec<VerifiedObject>,
    /// Entries for which no object was received.
    pub missing: Vec<Entry>,
}

impl VerifiedBatch {
    /// The relayed objects, which need [`verify_relayed`] before their
    /// terms are known.
    pub fn relayed(&self) -> impl Iterator<Item = &VerifiedObject> {
        self.objects.iter().filter(|o| o.terms.is_none())
    }

    /// `terms` (of an object of this batch) with the inclusion proof of
    /// its entry, ready to relay.
    pub fn with_proof(&self, terms: &OriginTerms) -> Result<OriginTerms, ProvenanceError> {
        Ok(OriginTerms {
            proof: Some(self.tree.proof(terms.position, &terms.salt)?),
            ..terms.clone()
        })
    }

    /// The agreement in force named by the manifest, with the publisher
    /// and `local` among its parties, at the manifest's version or a later
    /// one.
    pub fn check_agreement<'a>(
        &self,
        in_force: &'a AgreementsInForce,
        local: &str,
    ) -> Result<&'a AgreementView, ProvenanceError> {
        let r = &self.manifest.agreement;
        let fail = |detail: &str| ProvenanceError::NotUnderAgreement {
            id: r.id.clone(),
            version: r.version,
            detail: detail.into(),
        };
        let Some(a) = in_force.agreements.iter().find(|a| a.id == r.id) else {
            return Err(fail("not in force here"));
        };
        if a.version < r.version {
            return Err(fail(&format!(
                "version {} is the one in force here",
                a.version
            )));
        }
        let party = |n: &str| a.parties.iter().any(|p| p.node_id == n);
        if !party(&self.manifest.publisher) || !party(local) {
            return Err(fail("the publisher and this node are not both parties"));
        }
        Ok(a)
    }
}

/// Verify a batch received from node `from`: the signed manifest and the
/// objects exactly as received (JSON texts). See the module docs for what
/// is checked.
pub fn verify_batch(
    signed: &Signed,
    objects: &[&str],
    from: &str,
    keyrings: &Keyrings,
    now: Timestamp,
) -> Result<VerifiedBatch, ProvenanceError> {
    let keys: Vec<Result<ObjectKey, String>> = objects.iter().map(|t| ObjectKey::of(t)).collect();
    verify_batch_keys(signed, &keys, from, keyrings, now)
}

/// [`verify_batch`] for objects the caller already parsed: each one's
/// [`ObjectKey`] (or why it could not be read), in the order received.
pub fn verify_batch_keys(
    signed: &Signed,
    objects: &[Result<ObjectKey, String>],
    from: &str,
    keyrings: &Keyrings,
    now: Timestamp,
) -> Result<VerifiedBatch, ProvenanceError> {
    let manifest = parse_manifest(signed)?;
    if manifest.publisher != from {
        return Err(ProvenanceError::WrongPublisher {
            expected: from.into(),
            found: manifest.publisher,
        });
    }
    let created = doc_time("manifest", "created", &manifest.created, now)?;
    let tree = ManifestTree::of_entries(&manifest.entries)?;
    let head = Signed {
        document: serde_json::to_value(manifest.head(&tree))
            .map_err(|e| malformed("manifest", e.to_string()))?,
        signatures: signed.signatures.clone(),
    };
    let key_id = check_signer(&head, &manifest.publisher, created, keyrings, now)?;
    // The head is kept and passed on: with the one signature that
    // verified, and nothing else a sender added beside it.
    let mut head = head;
    head.signatures.retain(|s| s.key_id == key_id);

    let mut index: BTreeMap<(&str, Option<&str>), usize> = BTreeMap::new();
    for (i, e) in manifest.entries.iter().enumerate() {
        index.insert((e.id.as_str(), e.version.as_deref()), i);
    }
    let mut used = vec![false; manifest.entries.len()];
    let mut found = Vec::with_capacity(objects.len());
    let mut problems = Vec::new();
    for (i, key) in objects.iter().enumerate() {
        let key = match key {
            Ok(k) => k,
            Err(detail) => {
                problems.push(ObjectProblem {
                    index: i,
                    id: None,
                    version: None,
                    fault: Fault::Unparseable(detail.clone()),
                });
                continue;
            }
        };
        let problem = |fault| ObjectProblem {
            index: i,
            id: Some(key.id.clone()),
            version: key.version.clone(),
            fault,
        };
        let Some(&n) = index.get(&(key.id.as_str(), key.version.as_deref())) else {
            problems.push(problem(Fault::Unsigned));
            continue;
        };
        let entry = &manifest.entries[n];
        if entry.digest != key.digest {
            problems.push(problem(Fault::Altered {
                signed: entry.digest.clone(),
                received: key.digest.clone(),
            }));
            continue;
        }
        if std::mem::replace(&mut used[n], true) {
            problems.push(problem(Fault::Duplicate));
            continue;
        }
        found.push((i, n));
    }
    if !problems.is_empty() {
        return Err(ProvenanceError::Objects(problems));
    }
    let digest = head.digest();
    let objects = found
        .into_iter()
        .map(|(i, n)| {
            let entry = manifest.entries[n].clone();
            let terms = (entry.origin.node_id == manifest.publisher).then(|| OriginTerms {
                originator: manifest.publisher.clone(),
                redistribution: entry.origin.redistribution.clone(),
                agreement: manifest.agreement.clone(),
                manifest: digest.clone(),
                position: n as u64,
                salt: entry.salt.clone(),
                proof: None,
            });
            VerifiedObject {
                index: i,
                entry,
                terms,
            }
        })
        .collect();
    let missing = manifest
        .entries
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(e, _)| e.clone())
        .collect();
    Ok(VerifiedBatch {
        manifest,
        head,
        tree,
        digest,
        key_id,
        objects,
        missing,
    })
}

/// Verify a relayed object's provenance: `entry` (from a verified batch of
/// the relaying node) against `originator_manifest`, the head of the
/// originator's own signed manifest passed on with the batch (or the
/// whole manifest). The entry's inclusion proof must lead from the
/// originator's own entry for the object, with the terms the relaying
/// node states, to the root the originator signed. Returns the
/// originator's signed terms.
pub fn verify_relayed(
    entry: &Entry,
    originator_manifest: &Signed,
    keyrings: &Keyrings,
    now: Timestamp,
) -> Result<OriginTerms, ProvenanceError> {
    verify_relayed_head(entry, originator_manifest, keyrings, now).map(|(terms, _)| terms)
}

/// [`verify_relayed`], also returning the originator's head to keep and
/// pass on: with only the originator's signature that verified, so that
/// no byte a relaying node added travels further.
pub fn verify_relayed_head(
    entry: &Entry,
    originator_manifest: &Signed,
    keyrings: &Keyrings,
    now: Timestamp,
) -> Result<(OriginTerms, Signed), ProvenanceError> {
    let Some(expected) = &entry.origin.manifest else {
        return Err(ProvenanceError::NoOriginatorManifest {
            id: entry.id.clone(),
            originator: entry.origin.node_id.clone(),
        });
    };
    // What the entry names is checked before the signature, so that a
    // manifest edited on the way is reported as not the one referenced.
    let (head, signed) = manifest_head(originator_manifest)?;
    let digest = signed.digest();
    if &digest != expected {
        return Err(ProvenanceError::OriginatorManifestMismatch {
            id: entry.id.clone(),
            expected: expected.clone(),
            found: digest,
        });
    }
    if head.publisher != entry.origin.node_id {
        return Err(ProvenanceError::WrongPublisher {
            expected: entry.origin.node_id.clone(),
            found: head.publisher,
        });
    }
    let head = OriginatorHead::verify_parsed(head, signed, digest, keyrings, now)?;
    let terms = head.terms_of(entry)?;
    Ok((terms, head.signed))
}

/// The head of an originator's manifest whose signature verified: what
/// every relayed entry of that manifest is checked against. A page that
/// relays many objects of one originator batch verifies its head once
/// ([`OriginatorHead::verify`]) and then each entry's proof
/// ([`OriginatorHead::terms_of`]).
#[derive(Debug, Clone)]
pub struct OriginatorHead {
    head: ManifestHead,
    root: Hash,
    /// The digest of the head, which relayed entries name.
    pub digest: String,
    /// The head with only the originator's signature that verified, to
    /// keep and pass on.
    pub signed: Signed,
}

impl OriginatorHead {
    /// Verify the head of an originator's manifest (or the whole
    /// manifest): its form, its time, and the signature of its publisher
    /// by a key valid then.
    pub fn verify(
        originator_manifest: &Signed,
        keyrings: &Keyrings,
        now: Timestamp,
    ) -> Result<OriginatorHead, ProvenanceError> {
        let (head, signed) = manifest_head(originator_manifest)?;
        let digest = signed.digest();
        Self::verify_parsed(head, signed, digest, keyrings, now)
    }

    /// [`OriginatorHead::verify`] of a head already parsed, with its digest.
    fn verify_parsed(
        head: ManifestHead,
        mut signed: Signed,
        digest: String,
        keyrings: &Keyrings,
        now: Timestamp,
    ) -> Result<OriginatorHead, ProvenanceError> {
        let created = doc_time("manifest", "created", &head.created, now)?;
        let key_id = check_signer(&signed, &head.publisher, created, keyrings, now)?;
        signed.signatures.retain(|s| s.key_id == key_id);
        let root: Hash = head
            .entries
            .root
            .parse()
            .map_err(|e| malformed("manifest", format!("entries.root: {e}")))?;
        Ok(OriginatorHead {
            digest,
            head,
            root,
            signed,
        })
    }

    /// The originator's signed terms for a relayed `entry` (from a
    /// verified batch of the relaying node): the entry must name this
    /// head and its publisher, and its inclusion proof must lead from the
    /// originator's own entry for the object, with the terms the relaying
    /// node states, to the root the originator signed.
    pub fn terms_of(&self, entry: &Entry) -> Result<OriginTerms, ProvenanceError> {
        let id = &entry.id;
        let Some(expected) = &entry.origin.manifest else {
            return Err(ProvenanceError::NoOriginatorManifest {
                id: id.clone(),
                originator: entry.origin.node_id.clone(),
            });
        };
        if expected != &self.digest {
            return Err(ProvenanceError::OriginatorManifestMismatch {
                id: id.clone(),
                expected: expected.clone(),
                found: self.digest.clone(),
            });
        }
        if self.head.publisher != entry.origin.node_id {
            return Err(ProvenanceError::WrongPublisher {
                expected: entry.origin.node_id.clone(),
                found: self.head.publisher.clone(),
            });
        }
        let not_covered = |detail: String| ProvenanceError::NotInOriginatorManifest {
            id: id.clone(),
            version: entry.version.clone(),
            detail,
        };
        let Some(proof) = &entry.origin.proof else {
            return Err(not_covered("the entry carries no inclusion proof".into()));
        };
        // The originator's own entry, as it must have signed it: the same
        // object, its own, under the terms the relaying node states.
        let own = Entry {
            id: id.clone(),
            version: entry.version.clone(),
            digest: entry.digest.clone(),
            origin: Origin {
                node_id: self.head.publisher.clone(),
                redistribution: entry.origin.redistribution.clone(),
                manifest: None,
                proof: None,
            },
            salt: proof.salt.clone(),
        };
        let path = proof
            .path
            .iter()
            .map(|h| h.parse::<Hash>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| not_covered(format!("inclusion path: {e}")))?;
        merkle::verify_inclusion(
            &entry_leaf(&own)?,
            proof.index,
            self.head.entries.count,
            &path,
            &self.root,
        )
        .map_err(|e| not_covered(e.to_string()))?;
        Ok(OriginTerms {
            originator: self.head.publisher.clone(),
            redistribution: entry.origin.redistribution.clone(),
            agreement: self.head.agreement.clone(),
            manifest: self.digest.clone(),
            position: proof.index,
            salt: proof.salt.clone(),
            proof: Some(proof.clone()),
        })
    }
}

/// Whether node `from`, holding an object under the originator's `terms`,
/// may pass it on to node `to`. `agreement_parties` are the node ids of
/// the parties to the agreement the originator published under
/// (`terms.agreement`), as far as they are known to the caller; an
/// unknown agreement is an empty list, which only `Named` can overcome.
///
/// - back to the originator: always;
/// - to itself: never (that is not passing on);
/// - `None`: to no one else;
/// - `Parties`: to a party of that agreement, when `from` is one too;
/// - `Named`: as `Parties`, and also to a node whose id is among the
///   recipients. Recipients named by STIX identity id match when the
///   caller passes that identity id as `to`.
pub fn may_pass_on(terms: &OriginTerms, from: &str, to: &str, agreement_parties: &[&str]) -> bool {
    may_pass_on_terms(
        &terms.redistribution,
        &terms.originator,
        from,
        to,
        agreement_parties,
    )
}

/// [`may_pass_on`] for terms held apart from a verified [`OriginTerms`]
/// (for instance in a stored release label).
pub fn may_pass_on_terms(
    redistribution: &Redistribution,
    originator: &str,
    from: &str,
    to: &str,
    agreement_parties: &[&str],
) -> bool {
    if to == from {
        return false;
    }
    if to == originator {
        return true;
    }
    let among_parties = agreement_parties.contains(&from) && agreement_parties.contains(&to);
    match redistribution {
        Redistribution::None => false,
        Redistribution::Parties => among_parties,
        Redistribution::Named { recipients } => among_parties || recipients.iter().any(|r| r == to),
    }
}

/// Which versions of an object a tombstone deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Versions {
    /// Every version (on the wire: `"all"`).
    All,
    /// These versions (on the wire: a non-empty list of version strings).
    Listed(Vec<String>),
}

impl Serialize for Versions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Versions::All => s.serialize_str("all"),
            Versions::Listed(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Versions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if s == "all" => Ok(Versions::All),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(v) if !v.is_empty() => out.push(v),
                        _ => {
                            return Err(D::Error::custom(
                                "versions: each version is a non-empty string",
                            ));
                        }
                    }
                }
                if out.is_empty() {
                    return Err(D::Error::custom("versions: an empty list deletes nothing"));
                }
                Ok(Versions::Listed(out))
            }
            _ => Err(D::Error::custom(
                "versions: \"all\" or a list of version strings",
            )),
        }
    }
}

/// A signed deletion of an object (some or all of its versions) by the
/// node that originated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    /// The deleting node (the object's originator).
    pub node_id: String,
    pub object_id: String,
    pub versions: Versions,
    pub reason: String,
    pub time: String,
}

impl Document for Tombstone {
    const TYPE: &'static str = "anyam-provenance-tombstone";
}

impl Tombstone {
    pub fn new(
        node_id: &str,
        object_id: &str,
        versions: Versions,
        reason: &str,
        time: Timestamp,
    ) -> Self {
        Tombstone {
            doc_type: Self::TYPE.into(),
            schema_version: SCHEMA_VERSION,
            node_id: node_id.into(),
            object_id: object_id.into(),
            versions,
            reason: reason.into(),
            time: format_time(time),
        }
    }

    /// Format rules that need no keys.
    pub fn check(&self) -> Result<(), ProvenanceError> {
        let bad = |m: &str| Err(malformed("tombstone", m));
        if self.doc_type != Self::TYPE {
            return bad("wrong type");
        }
        if self.schema_version != SCHEMA_VERSION {
            return bad("unknown schema_version");
        }
        if !is_hex64(&self.node_id) {
            return bad("node_id must be a node id (64 hex digits)");
        }
        if !self.object_id.contains("--") {
            return bad("object_id is not a STIX id");
        }
        if let Versions::Listed(v) = &self.versions
            && (v.is_empty() || v.iter().any(String::is_empty))
        {
            return bad("versions lists nothing or an empty version");
        }
        parse_time("time", &self.time).map_err(|e| malformed("tombstone", e.to_string()))?;
        Ok(())
    }

    /// The tombstone signed with the node's key.
    pub fn sign(&self, key: &SigningKey) -> Result<Signed, ProvenanceError> {
        self.check()?;
        let mut s = Signed::new(self).map_err(|e| malformed("tombstone", e.to_string()))?;
        s.sign(key);
        Ok(s)
    }

    /// Parse and verify a signed tombstone: well formed, signed by a key
    /// of `node_id` valid at `time` and not revoked at `now`. The caller
    /// still checks [`Tombstone::is_from`] the object's originator.
    pub fn verify(
        signed: &Signed,
        keyrings: &Keyrings,
        now: Timestamp,
    ) -> Result<Tombstone, ProvenanceError> {
        let t: Tombstone = signed.parse().map_err(|e| parse_error("tombstone", e))?;
        t.check()?;
        let time = doc_time("tombstone", "time", &t.time, now)?;
        check_signer(signed, &t.node_id, time, keyrings, now)?;
        Ok(t)
    }

    /// Whether the tombstone was issued by `originator`.
    pub fn is_from(&self, originator: &str) -> bool {
        self.node_id == originator
    }

    /// Whether it deletes `id` at `version` (objects without a version
    /// are deleted only by `All`).
    pub fn covers(&self, id: &str, version: Option<&str>) -> bool {
        if id != self.object_id {
            return false;
        }
        match (&self.versions, version) {
            (Versions::All, _) => true,
            (Versions::Listed(v), Some(x)) => v.iter().any(|y| y == x),
            (Versions::Listed(_), None) => false,
        }
    }
}

fn parse_error(what: &str, e: TrustError) -> ProvenanceError {
    match e {
        TrustError::Malformed(d) => malformed(what, d),
        other => malformed(what, other.to_string()),
    }
}

fn parse_manifest(signed: &Signed) -> Result<Manifest, ProvenanceError> {
    let m: Manifest = signed.parse().map_err(|e| parse_error("manifest", e))?;
    m.check()?;
    Ok(m)
}

/// A document's time, refused when dated beyond the allowed clock skew.
fn doc_time(
    what: &str,
    field: &str,
    text: &str,
    now: Timestamp,
) -> Result<Timestamp, ProvenanceError> {
    let t = parse_time(field, text).map_err(|e| parse_error(what, e))?;
    let limit = now.checked_add(MAX_FUTURE_SKEW).unwrap_or(now);
    if t > limit {
        return Err(ProvenanceError::FutureDated { time: text.into() });
    }
    Ok(t)
}

/// The key of `node_id` whose valid signature the document carries and
/// which speaks for the node at `doc_time` (and is not revoked at `now`).
/// When there is none, the most telling reason.
fn check_signer(
    signed: &Signed,
    node_id: &str,
    doc_time: Timestamp,
    keyrings: &Keyrings,
    now: Timestamp,
) -> Result<String, ProvenanceError> {
    let Some(ring) = keyrings.get(node_id) else {
        return Err(ProvenanceError::UnknownNode {
            node_id: node_id.into(),
        });
    };
    // Rank of a failure: the higher, the more it says.
    let mut failure: Option<(u8, ProvenanceError)> = None;
    let mut note = |rank: u8, e: ProvenanceError| {
        if failure.as_ref().is_none_or(|(r, _)| rank > *r) {
            failure = Some((rank, e));
        }
    };
    for sig in &signed.signatures {
        let key_id = sig.key_id.clone();
        let Some(rec) = ring.get(&sig.key_id) else {
            match keyrings
                .iter()
                .find(|(n, r)| n.as_str() != node_id && r.get(&sig.key_id).is_some())
            {
                Some((other, _)) => note(
                    2,
                    ProvenanceError::SignedByOtherNode {
                        node_id: node_id.into(),
                        signer: other.clone(),
                        key_id,
                    },
                ),
                None => note(
                    1,
                    ProvenanceError::UnknownKey {
                        node_id: node_id.into(),
                        key_id,
                    },
                ),
            }
            continue;
        };
        if signed.check(&rec.key) != SigCheck::Valid {
            note(
                3,
                ProvenanceError::BadSignature {
                    node_id: node_id.into(),
                    key_id,
                },
            );
            continue;
        }
        if ring.accept(&sig.key_id, doc_time, now).is_err() {
            let e = match (rec.revoked_at.filter(|at| *at <= now), rec.retired_at) {
                (Some(at), _) => ProvenanceError::KeyRevoked {
                    node_id: node_id.into(),
                    key_id,
                    at: format_time(at),
                },
                (None, Some(at)) => ProvenanceError::KeyRetired {
                    node_id: node_id.into(),
                    key_id,
                    at: format_time(at),
                },
                (None, None) => ProvenanceError::KeyRetired {
                    node_id: node_id.into(),
                    key_id,
                    at: String::from("an unknown time"),
                },
            };
            note(4, e);
            continue;
        }
        if doc_time < rec.valid_from {
            note(
                4,
                ProvenanceError::KeyNotYetValid {
                    node_id: node_id.into(),
                    key_id,
                    from: format_time(rec.valid_from),
                },
            );
            continue;
        }
        return Ok(sig.key_id.clone());
    }
    Err(failure.map_or(
        ProvenanceError::Unsigned {
            node_id: node_id.into(),
        },
        |(_, e)| e,
    ))
}
