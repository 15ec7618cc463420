//! Integration tests of the provenance module: signed batch manifests,
//! relayed objects carrying the originator's terms, and tombstones.

use anyam_trust::provenance::{
    Fault, ManifestTree, OriginatorHead, Versions, manifest_head, verify_relayed_head,
};
use anyam_trust::{
    AgreementRef, Keyring, Keyrings, Manifest, OriginTerms, ProvenanceError, Redistribution,
    SigCheck, Signature, Signed, Tombstone, VerifiedBatch, key_id, keyring, may_pass_on,
    verify_batch, verify_relayed,
};
use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sha2::{Digest, Sha256};

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("test time")
}

const T0: &str = "2026-01-01T00:00:00Z";
const NOW: &str = "2026-03-01T00:00:00Z";

/// A node with its recovery key, current node key and key statements.
struct Node {
    recovery: SigningKey,
    node: SigningKey,
    statements: Vec<Signed>,
}

impl Node {
    fn new() -> Self {
        let recovery = key();
        let node = key();
        let enrollment = keyring::enroll(&recovery, &node, t(T0)).expect("enroll");
        Node {
            recovery,
            node,
            statements: vec![enrollment],
        }
    }

    fn id(&self) -> String {
        key_id(&self.recovery.verifying_key())
    }

    /// Rotate to a new key at `at`; returns the old key.
    fn rotate(&mut self, at: Timestamp) -> SigningKey {
        let new = key();
        let s = keyring::rotate(&self.id(), &self.node, &new, at).expect("rotate");
        self.statements.push(s);
        std::mem::replace(&mut self.node, new)
    }

    /// Revoke the current key after a compromise at `at`; returns it.
    fn revoke(&mut self, at: Timestamp) -> SigningKey {
        let new = key();
        let stolen = key_id(&self.node.verifying_key());
        let s = keyring::revoke(&self.recovery, &stolen, &new, at, Some("stolen".into()))
            .expect("revoke");
        self.statements.push(s);
        std::mem::replace(&mut self.node, new)
    }

    fn keyring(&self) -> Keyring {
        let mut r = Keyring::new(self.recovery.verifying_key());
        for s in &self.statements {
            r.apply(s).expect("statement applies");
        }
        r
    }
}

fn rings(nodes: &[&Node]) -> Keyrings {
    nodes.iter().map(|n| (n.id(), n.keyring())).collect()
}

fn agreement() -> AgreementRef {
    AgreementRef {
        id: format!("agreement--{}", uuid::Uuid::new_v4()),
        version: 1,
    }
}

/// An indicator as JSON text, written the way a partner might serve it.
fn indicator(n: u32) -> String {
    format!(
        r#"{{"type": "indicator", "spec_version": "2.1",
  "id": "indicator--00000000-0000-4000-8000-{n:012}",
  "created": "2026-01-10T10:00:00.000Z", "modified": "2026-01-11T10:00:00.000Z",
  "pattern": "[ipv4-addr:value = '198.51.100.{n}']", "pattern_type": "stix",
  "valid_from": "2026-01-10T10:00:00Z"}}"#
    )
}

fn id_of(n: u32) -> String {
    format!("indicator--00000000-0000-4000-8000-{n:012}")
}

fn texts(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A signed manifest of `node`'s own objects, dated `created`.
fn publish(
    node: &Node,
    signer: &SigningKey,
    objects: &[String],
    terms: &Redistribution,
    created: Timestamp,
) -> Signed {
    Manifest::for_objects(
        &node.id(),
        "ransomware",
        agreement(),
        terms,
        &texts(objects),
        created,
    )
    .expect("manifest")
    .sign(signer)
    .expect("sign")
}

fn object_faults(e: ProvenanceError) -> Vec<(Option<String>, Fault)> {
    match e {
        ProvenanceError::Objects(p) => p.into_iter().map(|p| (p.id, p.fault)).collect(),
        other => panic!("expected object faults, got {other}"),
    }
}

#[test]
fn signed_batch_verifies_and_reports_missing_entries() {
    let a = Node::new();
    let objects: Vec<String> = (1..=3).map(indicator).collect();
    let signed = publish(
        &a,
        &a.node,
        &objects,
        &Redistribution::Parties,
        t("2026-02-01T00:00:00Z"),
    );
    let keyrings = rings(&[&a]);

    let batch = verify_batch(&signed, &texts(&objects), &a.id(), &keyrings, t(NOW))
        .expect("batch verifies");
    assert_eq!(batch.objects.len(), 3);
    assert!(batch.missing.is_empty());
    assert_eq!(batch.key_id, key_id(&a.node.verifying_key()));
    assert_eq!(
        batch.digest,
        manifest_head(&signed).expect("head").1.digest()
    );
    assert_eq!(batch.head, manifest_head(&signed).expect("head").1);
    let terms = batch.objects[0].terms.as_ref().expect("own object terms");
    assert_eq!(terms.originator, a.id());
    assert_eq!(terms.redistribution, Redistribution::Parties);
    assert_eq!(batch.relayed().count(), 0);
    assert_eq!(
        batch.objects[0].entry.version.as_deref(),
        Some("2026-01-11T10:00:00.000Z")
    );

    // Serving the same JSON with other whitespace and member order is
    // serving the same object: the canonical form is signed.
    let value: serde_json::Value = serde_json::from_str(&objects[0]).expect("json");
    let compact = serde_json::to_string(&value).expect("json");
    let reordered = [compact.as_str(), objects[1].as_str()];
    let batch =
        verify_batch(&signed, &reordered, &a.id(), &keyrings, t(NOW)).expect("same content");
    assert_eq!(batch.objects.len(), 2);
    assert_eq!(batch.missing.len(), 1);
    assert_eq!(batch.missing[0].id, id_of(3));

    // The envelope survives its JSON text.
    let again = Signed::from_json(&signed.to_json_pretty()).expect("parse");
    verify_batch(&again, &texts(&objects), &a.id(), &keyrings, t(NOW)).expect("round trip");
}

#[test]
fn wire_format_has_the_documented_shape() {
    let a = Node::new();
    let objects = vec![indicator(1)];
    let signed = publish(
        &a,
        &a.node,
        &objects,
        &Redistribution::Named {
            recipients: vec!["x".repeat(64)],
        },
        t("2026-02-01T00:00:00Z"),
    );
    let v = serde_json::to_value(&signed).expect("json");
    let d = &v["document"];
    assert_eq!(d["type"], "anyam-provenance-manifest");
    assert_eq!(d["schema_version"], 2);
    assert_eq!(d["publisher"], a.id().as_str());
    assert_eq!(d["collection"], "ransomware");
    assert_eq!(d["agreement"]["version"], 1);
    let e = &d["entries"][0];
    assert_eq!(e["id"], id_of(1).as_str());
    assert_eq!(e["version"], "2026-01-11T10:00:00.000Z");
    let value: serde_json::Value = serde_json::from_str(&objects[0]).expect("json");
    assert_eq!(
        e["digest"],
        hex::encode(anyam_stix::canonical_digest(&value)).as_str()
    );
    assert_eq!(
        e["origin"],
        json!({"node_id": a.id(), "redistribution": {"to": "named", "recipients": ["x".repeat(64)]}})
    );
    // Each entry's own 16 random bytes.
    let salt = e["salt"].as_str().expect("salt");
    assert!(salt.len() == 32 && hex::decode(salt).is_ok(), "{salt}");
    let again = publish(
        &a,
        &a.node,
        &objects,
        &Redistribution::Parties,
        t("2026-02-01T00:00:00Z"),
    );
    assert_ne!(again.document["entries"][0]["salt"], e["salt"]);
    assert_eq!(
        v["signatures"][0]["key_id"],
        key_id(&a.node.verifying_key()).as_str()
    );

    // The signature covers the head: the entries replaced by their count
    // and Merkle root, here the one leaf, SHA-256(0x00 || canonical entry).
    assert_eq!(signed.check(&a.node.verifying_key()), SigCheck::Bad);
    let (head, head_signed) = manifest_head(&signed).expect("head");
    let mut leaf = vec![0u8];
    leaf.extend_from_slice(anyam_stix::canonical_json(e).as_bytes());
    let root = hex::encode(Sha256::digest(&leaf));
    assert_eq!(
        head_signed.document["entries"],
        json!({"count": 1, "root": root})
    );
    assert_eq!(head.entries.count, 1);
    assert_eq!(head_signed.check(&a.node.verifying_key()), SigCheck::Valid);
    // The head is a signed form of the manifest in its own right, named by
    // the same digest whichever form it is given in.
    let (_, again) = manifest_head(&head_signed).expect("head of a head");
    assert_eq!(again, head_signed);
}

#[test]
fn one_changed_byte_names_the_object() {
    let a = Node::new();
    let objects: Vec<String> = (1..=3).map(indicator).collect();
    let signed = publish(
        &a,
        &a.node,
        &objects,
        &Redistribution::Parties,
        t("2026-02-01T00:00:00Z"),
    );
    let mut received = objects.clone();
    received[1] = received[1].replace("198.51.100.2", "198.51.100.9");
    assert_eq!(received[1].len(), objects[1].len());

    let err = verify_batch(&signed, &texts(&received), &a.id(), &rings(&[&a]), t(NOW))
        .expect_err("altered object");
    let msg = err.to_string();
    assert!(msg.contains(&id_of(2)), "{msg}");
    assert!(msg.contains("altered in transit"), "{msg}");
    let faults = object_faults(err);
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].0.as_deref(), Some(id_of(2).as_str()));
    assert!(matches!(faults[0].1, Fault::Altered { .. }));
}

#[test]
fn object_without_entry_is_unsigned() {
    let a = Node::new();
    let objects: Vec<String> = (1..=2).map(indicator).collect();
    let signed = publish(
        &a,
        &a.node,
        &objects,
        &Redistribution::Parties,
        t("2026-02-01T00:00:00Z"),
    );
    let keyrings = rings(&[&a]);

    // Another object slipped into the batch.
    let mut received = objects.clone();
    received.push(indicator(7));
    let faults = object_faults(
        verify_batch(&signed, &texts(&received), &a.id(), &keyrings, t(NOW))
            .expect_err("unsigned object"),
    );
    assert_eq!(faults, vec![(Some(id_of(7)), Fault::Unsigned)]);

    // A new version of a signed object is not covered by the old entry.
    let newer = objects[0].replace("2026-01-11T10:00:00.000Z", "2026-01-12T10:00:00.000Z");
    let faults = object_faults(
        verify_batch(&signed, &[&newer], &a.id(), &keyrings, t(NOW)).expect_err("new version"),
    );
    assert_eq!(faults, vec![(Some(id_of(1)), Fault::Unsigned)]);

    // The same object twice, and text that is no object.
    let twice = [objects[0].as_str(), objects[0].as_str(), "[1, 2]"];
    let faults = object_faults(
        verify_batch(&signed, &twice, &a.id(), &keyrings, t(NOW)).expect_err("duplicate"),
    );
    assert_eq!(faults.len(), 2);
    assert_eq!(faults[0], (Some(id_of(1)), Fault::Duplicate));
    assert!(matches!(faults[1], (None, Fault::Unparseable(_))));
}

#[test]
fn rotated_out_key_vouches_only_for_earlier_manifests() {
    let mut a = Node::new();
    let rotation = t("2026-02-01T00:00:00Z");
    let old = a.rotate(rotation);
    let keyrings = rings(&[&a]);
    let objects = vec![indicator(1)];
    let terms = Redistribution::Parties;

    // Signed by the old key while it was current: still valid.
    let before = publish(&a, &old, &objects, &terms, t("2026-01-20T00:00:00Z"));
    verify_batch(&before, &texts(&objects), &a.id(), &keyrings, t(NOW))
        .expect("signed before the rotation");

    // Signed by the old key after the rotation: refused.
    let after = publish(&a, &old, &objects, &terms, t("2026-02-10T00:00:00Z"));
    let err = verify_batch(&after, &texts(&objects), &a.id(), &keyrings, t(NOW))
        .expect_err("retired key");
    assert!(matches!(err, ProvenanceError::KeyRetired { .. }), "{err}");

    // The new key did not speak for the node before the rotation.
    let early = publish(&a, &a.node, &objects, &terms, t("2026-01-20T00:00:00Z"));
    let err = verify_batch(&early, &texts(&objects), &a.id(), &keyrings, t(NOW))
        .expect_err("key not yet valid");
    assert!(
        matches!(err, ProvenanceError::KeyNotYetValid { .. }),
        "{err}"
    );

    // The new key after the rotation is fine.
    let current = publish(&a, &a.node, &objects, &terms, t("2026-02-10T00:00:00Z"));
    verify_batch(&current, &texts(&objects), &a.id(), &keyrings, t(NOW)).expect("new key");
}

#[test]
fn revoked_key_is_refused_whatever_the_manifest_date() {
    let mut a = Node::new();
    let objects = vec![indicator(1)];
    let terms = Redistribution::Parties;
    // Signed well before the compromise was noticed.
    let signed = publish(&a, &a.node, &objects, &terms, t("2026-01-15T00:00:00Z"));
    let revocation = t("2026-02-01T00:00:00Z");
    a.revoke(revocation);
    let keyrings = rings(&[&a]);

    // Before the revocation takes effect, the signature holds.
    verify_batch(
        &signed,
        &texts(&objects),
        &a.id(),
        &keyrings,
        t("2026-01-20T00:00:00Z"),
    )
    .expect("not yet revoked");
    // Afterwards it is refused, although dated before.
    let err = verify_batch(&signed, &texts(&objects), &a.id(), &keyrings, t(NOW))
        .expect_err("revoked key");
    assert!(matches!(err, ProvenanceError::KeyRevoked { .. }), "{err}");

    // The replacement key signs again.
    let fresh = publish(&a, &a.node, &objects, &terms, t("2026-02-10T00:00:00Z"));
    verify_batch(&fresh, &texts(&objects), &a.id(), &keyrings, t(NOW)).expect("new key");
}

#[test]
fn wrong_publisher_and_bad_signatures_are_refused() {
    let a = Node::new();
    let b = Node::new();
    let keyrings = rings(&[&a, &b]);
    let objects = vec![indicator(1)];
    let terms = Redistribution::Parties;
    let created = t("2026-02-01T00:00:00Z");
    let texts = texts(&objects);

    // A's batch presented as coming from B.
    let by_a = publish(&a, &a.node, &objects, &terms, created);
    let err = verify_batch(&by_a, &texts, &b.id(), &keyrings, t(NOW)).expect_err("from B");
    assert!(
        matches!(&err, ProvenanceError::WrongPublisher { expected, found }
            if *expected == b.id() && *found == a.id()),
        "{err}"
    );

    // A manifest naming A as publisher but signed by B.
    let forged = publish(&a, &b.node, &objects, &terms, created);
    let err = verify_batch(&forged, &texts, &a.id(), &keyrings, t(NOW)).expect_err("B signed");
    assert!(
        matches!(&err, ProvenanceError::SignedByOtherNode { signer, .. } if *signer == b.id()),
        "{err}"
    );

    // Signed by a key nobody knows.
    let stranger = publish(&a, &key(), &objects, &terms, created);
    let err = verify_batch(&stranger, &texts, &a.id(), &keyrings, t(NOW)).expect_err("unknown");
    assert!(matches!(err, ProvenanceError::UnknownKey { .. }), "{err}");

    // Not signed at all.
    let mut unsigned = by_a.clone();
    unsigned.signatures.clear();
    let err = verify_batch(&unsigned, &texts, &a.id(), &keyrings, t(NOW)).expect_err("unsigned");
    assert!(matches!(err, ProvenanceError::Unsigned { .. }), "{err}");

    // The manifest changed after signing (its digest list or anything).
    let mut tampered = by_a.clone();
    tampered.document["collection"] = json!("other");
    let err = verify_batch(&tampered, &texts, &a.id(), &keyrings, t(NOW)).expect_err("tampered");
    assert!(matches!(err, ProvenanceError::BadSignature { .. }), "{err}");

    // A publisher whose keyring is not known here.
    let c = Node::new();
    let by_c = publish(&c, &c.node, &objects, &terms, created);
    let err = verify_batch(&by_c, &texts, &c.id(), &keyrings, t(NOW)).expect_err("unknown node");
    assert!(matches!(err, ProvenanceError::UnknownNode { .. }), "{err}");

    // Dated in the future beyond the allowed skew.
    let future = publish(
        &a,
        &a.node,
        &objects,
        &terms,
        t(NOW) + SignedDuration::from_hours(1),
    );
    let err = verify_batch(&future, &texts, &a.id(), &keyrings, t(NOW)).expect_err("future");
    assert!(matches!(err, ProvenanceError::FutureDated { .. }), "{err}");

    // Another type of document is not a manifest.
    let mut other = by_a.clone();
    other.document["type"] = json!("anyam-provenance-tombstone");
    let err = verify_batch(&other, &texts, &a.id(), &keyrings, t(NOW)).expect_err("type");
    assert!(matches!(err, ProvenanceError::Malformed { .. }), "{err}");
}

/// A publishes to B; B relays to C. Returns A's signed manifest, B's
/// verified terms for the object, and the object text.
fn relay_setup(a: &Node, b: &Node, terms: Redistribution) -> (Signed, OriginTerms, String) {
    let object = indicator(1);
    let by_a = publish(
        a,
        &a.node,
        std::slice::from_ref(&object),
        &terms,
        t("2026-02-01T00:00:00Z"),
    );
    let at_b = verify_batch(&by_a, &[&object], &a.id(), &rings(&[a, b]), t(NOW))
        .expect("B verifies A's batch");
    let own = at_b.objects[0].terms.clone().expect("A's own object");
    assert_eq!(own.proof, None);
    let origin_terms = at_b.with_proof(&own).expect("proof");
    (by_a, origin_terms, object)
}

fn relay(b: &Node, object: &str, origin: anyam_trust::provenance::Origin) -> Signed {
    let mut m = Manifest::new(&b.id(), "shared", agreement(), t("2026-02-02T00:00:00Z"));
    m.push(object, origin).expect("entry");
    m.sign(&b.node).expect("sign")
}

#[test]
fn relayed_object_yields_the_originators_terms() {
    let (a, b, c) = (Node::new(), Node::new(), Node::new());
    let keyrings = rings(&[&a, &b, &c]);
    let terms = Redistribution::Named {
        recipients: vec![c.id()],
    };
    let (by_a, at_b, object) = relay_setup(&a, &b, terms.clone());
    assert!(may_pass_on(&at_b, &b.id(), &c.id(), &[&a.id(), &b.id()]));

    let by_b = relay(&b, &object, at_b.origin());
    let at_c = verify_batch(&by_b, &[&object], &b.id(), &keyrings, t(NOW)).expect("B's batch");
    let relayed: Vec<_> = at_c.relayed().collect();
    assert_eq!(relayed.len(), 1);
    // What B passes on of A's manifest is its head.
    let (_, head_a) = manifest_head(&by_a).expect("head");
    assert!(head_a.document["entries"].is_object());
    let got = verify_relayed(&relayed[0].entry, &head_a, &keyrings, t(NOW)).expect("relayed");
    assert_eq!(got.originator, a.id());
    assert_eq!(got.redistribution, terms);
    assert_eq!(got.manifest, head_a.digest());
    assert_eq!(got, at_b);
    // The whole manifest serves as well.
    let whole = verify_relayed(&relayed[0].entry, &by_a, &keyrings, t(NOW)).expect("whole");
    assert_eq!(whole, got);
    // C may not pass it on to a fourth node, but may send it back to A.
    let d = Node::new();
    assert!(!may_pass_on(&got, &c.id(), &d.id(), &[]));
    assert!(may_pass_on(&got, &c.id(), &a.id(), &[]));

    // B altered the object and signed its own manifest over the change:
    // B's batch verifies, the originator's signature does not cover it.
    let altered = object.replace("198.51.100.1", "198.51.100.66");
    let by_b = relay(&b, &altered, at_b.origin());
    let at_c = verify_batch(&by_b, &[&altered], &b.id(), &keyrings, t(NOW)).expect("B signed");
    let err = verify_relayed(&at_c.objects[0].entry, &by_a, &keyrings, t(NOW))
        .expect_err("altered on the path");
    assert!(
        matches!(&err, ProvenanceError::NotInOriginatorManifest { id, .. } if *id == id_of(1)),
        "{err}"
    );

    // An object the originator never listed.
    let other = indicator(2);
    let by_b = relay(&b, &other, at_b.origin());
    let at_c = verify_batch(&by_b, &[&other], &b.id(), &keyrings, t(NOW)).expect("B signed");
    let err = verify_relayed(&at_c.objects[0].entry, &by_a, &keyrings, t(NOW))
        .expect_err("not the originator's");
    assert!(
        matches!(err, ProvenanceError::NotInOriginatorManifest { .. }),
        "{err}"
    );

    // A relayed entry without the originator's manifest.
    let mut bare = at_b.origin();
    bare.manifest = None;
    bare.proof = None;
    let by_b = relay(&b, &object, bare);
    let at_c = verify_batch(&by_b, &[&object], &b.id(), &keyrings, t(NOW)).expect("B signed");
    let err = verify_relayed(&at_c.objects[0].entry, &by_a, &keyrings, t(NOW))
        .expect_err("no originator signature");
    assert!(
        matches!(err, ProvenanceError::NoOriginatorManifest { .. }),
        "{err}"
    );
}

/// A publishes five indicators, to be passed on to the agreement's
/// parties: the objects, A's signed manifest, and what B verified of it.
fn five_from_a(a: &Node, keyrings: &Keyrings) -> (Vec<String>, Signed, VerifiedBatch) {
    let objects: Vec<String> = (1..=5).map(indicator).collect();
    let by_a = publish(
        a,
        &a.node,
        &objects,
        &Redistribution::Parties,
        t("2026-02-01T00:00:00Z"),
    );
    let at_b = verify_batch(&by_a, &texts(&objects), &a.id(), keyrings, t(NOW)).expect("B");
    (objects, by_a, at_b)
}

#[test]
fn a_relayed_object_shows_nothing_else_of_the_originators_batch() {
    let (a, b, c) = (Node::new(), Node::new(), Node::new());
    let keyrings = rings(&[&a, &b, &c]);
    let (objects, by_a, at_b) = five_from_a(&a, &keyrings);
    // B relays the fourth object only.
    let terms = at_b
        .with_proof(at_b.objects[3].terms.as_ref().expect("own"))
        .expect("proof");
    assert_eq!(terms.position, 3);
    let by_b = relay(&b, &objects[3], terms.origin());
    let (_, head_a) = manifest_head(&by_a).expect("head");
    // Everything C is given: B's manifest and A's head. No other object's
    // id or digest is in it.
    let given = format!(
        "{}{}",
        serde_json::to_string(&by_b).expect("json"),
        serde_json::to_string(&head_a).expect("json")
    );
    for (n, text) in objects.iter().enumerate() {
        let value: serde_json::Value = serde_json::from_str(text).expect("json");
        let digest = hex::encode(anyam_stix::canonical_digest(&value));
        assert_eq!(given.contains(&id_of(n as u32 + 1)), n == 3, "id {n}");
        assert_eq!(given.contains(&digest), n == 3, "digest {n}");
    }
    let at_c = verify_batch(&by_b, &[&objects[3]], &b.id(), &keyrings, t(NOW)).expect("C");
    let got = verify_relayed(&at_c.objects[0].entry, &head_a, &keyrings, t(NOW)).expect("ok");
    assert_eq!(got.originator, a.id());
    // Bytes B adds beside A's signature are neither kept nor passed on.
    let mut padded = head_a.clone();
    padded.signatures.push(Signature {
        key_id: "f".repeat(64),
        signature: "B's words".into(),
    });
    let (terms_c, kept) =
        verify_relayed_head(&at_c.objects[0].entry, &padded, &keyrings, t(NOW)).expect("ok");
    assert_eq!(terms_c, got);
    assert_eq!(kept, head_a);
    assert_eq!(kept.signatures.len(), 1);

    // The proof of another entry, or this one at another index, fails.
    for (index, proof_of) in [(3, 2), (2, 3)] {
        let mut origin = terms.origin();
        let mut proof = at_b.tree.proof(proof_of, &terms.salt).expect("proof");
        proof.index = index;
        origin.proof = Some(proof);
        let err = relay_refused(&b, &objects[3], origin, &head_a, &keyrings);
        assert!(
            matches!(err, ProvenanceError::NotInOriginatorManifest { .. }),
            "{err}"
        );
    }
    // The right path and index with another salt fail as well.
    let mut origin = terms.origin();
    if let Some(p) = origin.proof.as_mut() {
        p.salt = "0".repeat(32);
    }
    let err = relay_refused(&b, &objects[3], origin, &head_a, &keyrings);
    assert!(
        matches!(err, ProvenanceError::NotInOriginatorManifest { .. }),
        "{err}"
    );
    // A relayed entry without a proof fails the same way.
    let mut origin = terms.origin();
    origin.proof = None;
    let err = relay_refused(&b, &objects[3], origin, &head_a, &keyrings);
    assert!(
        matches!(err, ProvenanceError::NotInOriginatorManifest { .. }),
        "{err}"
    );
}

/// A page relaying several objects of one originator batch: the head is
/// verified once, and each entry's proof against it. An entry naming
/// another head, or a head whose signature fails, is refused.
#[test]
fn one_verified_head_checks_every_entry_relayed_from_it() {
    let (a, b, c) = (Node::new(), Node::new(), Node::new());
    let keyrings = rings(&[&a, &b, &c]);
    let (objects, by_a, at_b) = five_from_a(&a, &keyrings);
    let relayed = [0usize, 2, 4];
    let mut m = Manifest::new(&b.id(), "shared", agreement(), t("2026-02-02T00:00:00Z"));
    for &i in &relayed {
        let terms = at_b
            .with_proof(at_b.objects[i].terms.as_ref().expect("own"))
            .expect("proof");
        m.push(&objects[i], terms.origin()).expect("entry");
    }
    let by_b = m.sign(&b.node).expect("sign");
    let given: Vec<&str> = relayed.iter().map(|&i| objects[i].as_str()).collect();
    let at_c = verify_batch(&by_b, &given, &b.id(), &keyrings, t(NOW)).expect("C");
    let (_, head_a) = manifest_head(&by_a).expect("head");
    let head = OriginatorHead::verify(&head_a, &keyrings, t(NOW)).expect("head verifies");
    assert_eq!(head.signed, head_a);
    for (k, &i) in relayed.iter().enumerate() {
        let entry = &at_c.objects[k].entry;
        let got = head.terms_of(entry).expect("entry proven");
        assert_eq!(got.position, i as u64);
        assert_eq!(got.originator, a.id());
        // The same as checking head and entry together.
        let (alone, _) = verify_relayed_head(entry, &head_a, &keyrings, t(NOW)).expect("ok");
        assert_eq!(got, alone);
    }
    // An entry that names another head is refused by this one.
    let mut other = at_c.objects[0].entry.clone();
    other.origin.manifest = Some("0".repeat(64));
    assert!(matches!(
        head.terms_of(&other),
        Err(ProvenanceError::OriginatorManifestMismatch { .. })
    ));
    // A head signed by a key the keyrings do not hold for A is refused
    // before any entry is looked at.
    let mut forged = head_a.clone();
    forged.signatures = vec![Signature {
        key_id: "f".repeat(64),
        signature: "not A's".into(),
    }];
    assert!(OriginatorHead::verify(&forged, &keyrings, t(NOW)).is_err());
}

/// B relays `object` to C with `origin`: B's batch verifies at C, and the
/// relayed entry is refused against the originator's `manifest`.
fn relay_refused(
    b: &Node,
    object: &str,
    origin: anyam_trust::provenance::Origin,
    manifest: &Signed,
    keyrings: &Keyrings,
) -> ProvenanceError {
    let by_b = relay(b, object, origin);
    let at_c = verify_batch(&by_b, &[object], &b.id(), keyrings, t(NOW)).expect("B's batch");
    verify_relayed(&at_c.objects[0].entry, manifest, keyrings, t(NOW))
        .expect_err("the relayed entry is refused")
}

#[test]
fn manifest_tree_proofs_are_those_of_rfc_9162() {
    use anyam_audit::merkle;
    for n in 1..=70u64 {
        let leaves: Vec<_> = (0..n)
            .map(|i| merkle::leaf_hash(&i.to_le_bytes()))
            .collect();
        let tree = ManifestTree::new(leaves.clone());
        let root = merkle::root(&leaves);
        assert_eq!(tree.root(), root, "root of {n}");
        for i in 0..n {
            let got = tree.proof(i, "").expect("proof");
            let want = merkle::inclusion_proof(i, &leaves).expect("proof");
            let want: Vec<String> = want.iter().map(ToString::to_string).collect();
            assert_eq!(got.path, want, "leaf {i} of {n}");
            let path: Vec<_> = want.iter().map(|h| h.parse().expect("hex")).collect();
            merkle::verify_inclusion(&leaves[i as usize], i, n, &path, &root).expect("verifies");
        }
    }
}

#[test]
fn tampered_originator_terms_are_detected() {
    let (a, b, c) = (Node::new(), Node::new(), Node::new());
    let keyrings = rings(&[&a, &b, &c]);
    let (by_a, at_b, object) = relay_setup(&a, &b, Redistribution::None);
    assert!(!may_pass_on(&at_b, &b.id(), &c.id(), &[&a.id(), &b.id()]));

    // B states looser terms than A signed.
    let mut loose = at_b.origin();
    loose.redistribution = Redistribution::Named {
        recipients: vec![c.id()],
    };
    let by_b = relay(&b, &object, loose);
    let at_c = verify_batch(&by_b, &[&object], &b.id(), &keyrings, t(NOW)).expect("B signed");
    let err = verify_relayed(&at_c.objects[0].entry, &by_a, &keyrings, t(NOW))
        .expect_err("terms altered");
    assert!(
        matches!(&err, ProvenanceError::NotInOriginatorManifest { .. }),
        "{err}"
    );

    // B edits A's manifest itself: it is no longer the one referenced...
    let mut edited = by_a.clone();
    edited.document["entries"][0]["origin"]["redistribution"] = json!({"to": "parties"});
    let mut origin = at_b.origin();
    origin.redistribution = Redistribution::Parties;
    let by_b = relay(&b, &object, origin.clone());
    let at_c = verify_batch(&by_b, &[&object], &b.id(), &keyrings, t(NOW)).expect("B signed");
    let err = verify_relayed(&at_c.objects[0].entry, &edited, &keyrings, t(NOW))
        .expect_err("other manifest");
    assert!(
        matches!(err, ProvenanceError::OriginatorManifestMismatch { .. }),
        "{err}"
    );
    // ...and referencing the edited one instead breaks A's signature.
    origin.manifest = Some(manifest_head(&edited).expect("head").1.digest());
    let by_b = relay(&b, &object, origin);
    let at_c = verify_batch(&by_b, &[&object], &b.id(), &keyrings, t(NOW)).expect("B signed");
    let err = verify_relayed(&at_c.objects[0].entry, &edited, &keyrings, t(NOW))
        .expect_err("A's signature");
    assert!(
        matches!(&err, ProvenanceError::BadSignature { node_id, .. } if *node_id == a.id()),
        "{err}"
    );

    // B re-signs A's edited manifest with its own key: not A's signature.
    let mut resigned = edited.clone();
    resigned.signatures.clear();
    resigned.sign(&b.node);
    let err = verify_relayed(&at_c.objects[0].entry, &resigned, &keyrings, t(NOW))
        .expect_err("B's signature on A's manifest");
    assert!(
        matches!(err, ProvenanceError::SignedByOtherNode { .. }),
        "{err}"
    );
}

#[test]
fn tombstone_signs_verifies_and_detects_tampering() {
    let a = Node::new();
    let b = Node::new();
    let keyrings = rings(&[&a, &b]);
    let stone = Tombstone::new(
        &a.id(),
        &id_of(1),
        Versions::All,
        "false positive",
        t("2026-02-01T00:00:00Z"),
    );
    let signed = stone.sign(&a.node).expect("sign");
    assert_eq!(signed.document["versions"], "all");
    assert_eq!(signed.document["type"], "anyam-provenance-tombstone");

    let got = Tombstone::verify(&signed, &keyrings, t(NOW)).expect("verifies");
    assert_eq!(got, stone);
    assert!(got.is_from(&a.id()));
    assert!(!got.is_from(&b.id()));
    assert!(got.covers(&id_of(1), Some("2026-01-11T10:00:00.000Z")));
    assert!(got.covers(&id_of(1), None));
    assert!(!got.covers(&id_of(2), None));

    // Changing what is deleted breaks the signature.
    let mut tampered = signed.clone();
    tampered.document["object_id"] = json!(id_of(2));
    let err = Tombstone::verify(&tampered, &keyrings, t(NOW)).expect_err("tampered");
    assert!(matches!(err, ProvenanceError::BadSignature { .. }), "{err}");

    // B cannot delete in A's name.
    let forged = stone.sign(&b.node).expect("sign");
    let err = Tombstone::verify(&forged, &keyrings, t(NOW)).expect_err("forged");
    assert!(
        matches!(err, ProvenanceError::SignedByOtherNode { .. }),
        "{err}"
    );

    // Listed versions.
    let listed = Tombstone::new(
        &a.id(),
        &id_of(1),
        Versions::Listed(vec!["2026-01-11T10:00:00.000Z".into()]),
        "superseded",
        t("2026-02-01T00:00:00Z"),
    );
    let signed = listed.sign(&a.node).expect("sign");
    assert_eq!(
        signed.document["versions"],
        json!(["2026-01-11T10:00:00.000Z"])
    );
    let got = Tombstone::verify(&signed, &keyrings, t(NOW)).expect("verifies");
    assert!(got.covers(&id_of(1), Some("2026-01-11T10:00:00.000Z")));
    assert!(!got.covers(&id_of(1), Some("2026-01-12T10:00:00.000Z")));
    assert!(!got.covers(&id_of(1), None));

    // An empty list deletes nothing and is refused.
    let mut empty = signed.clone();
    empty.document["versions"] = json!([]);
    empty.signatures.clear();
    empty.sign(&a.node);
    let err = Tombstone::verify(&empty, &keyrings, t(NOW)).expect_err("empty list");
    assert!(matches!(err, ProvenanceError::Malformed { .. }), "{err}");
}

#[test]
fn may_pass_on_follows_the_redistribution_terms() {
    let (a, b, c, d) = (
        "a".repeat(64),
        "b".repeat(64),
        "c".repeat(64),
        "d".repeat(64),
    );
    let terms = |r: Redistribution| OriginTerms {
        originator: a.clone(),
        redistribution: r,
        agreement: agreement(),
        manifest: "0".repeat(64),
        position: 0,
        salt: "0".repeat(32),
        proof: None,
    };
    let none = terms(Redistribution::None);
    let parties = terms(Redistribution::Parties);
    let named = terms(Redistribution::Named {
        recipients: vec![d.clone()],
    });
    let group: &[&str] = &[&a, &b, &c];
    let pair: &[&str] = &[&a, &b];

    // (terms, from, to, parties, expected)
    let table: &[(&OriginTerms, &str, &str, &[&str], bool)] = &[
        (&none, &b, &c, group, false),
        (&none, &b, &d, group, false),
        (&none, &b, &a, pair, true),
        (&none, &b, &b, pair, false),
        (&parties, &b, &c, group, true),
        (&parties, &b, &c, pair, false),
        (&parties, &b, &d, group, false),
        (&parties, &d, &c, group, false),
        (&parties, &b, &a, &[], true),
        (&named, &b, &d, pair, true),
        (&named, &b, &c, group, true),
        (&named, &b, &c, pair, false),
        (&named, &c, &d, &[], true),
        (&named, &b, &b, group, false),
    ];
    for (i, (terms, from, to, parties, expected)) in table.iter().enumerate() {
        assert_eq!(
            may_pass_on(terms, from, to, parties),
            *expected,
            "row {i}: {:?} from {} to {}",
            terms.redistribution,
            &from[..1],
            &to[..1]
        );
    }
}

#[test]
fn batch_must_name_an_agreement_in_force_between_the_nodes() {
    let (a, b, c) = (Node::new(), Node::new(), Node::new());
    let objects = vec![indicator(1)];
    let signed = publish(
        &a,
        &a.node,
        &objects,
        &Redistribution::Parties,
        t("2026-02-01T00:00:00Z"),
    );
    let batch = verify_batch(
        &signed,
        &texts(&objects),
        &a.id(),
        &rings(&[&a, &b]),
        t(NOW),
    )
    .expect("batch");
    let named = &batch.manifest.agreement;
    let party = |id: String| {
        json!({"node_id": id, "node_name": "n", "identity_id": "identity--x",
               "key_ids": [], "taxii_url": "https://n.example/taxii2/"})
    };
    let view = |id: &str, version: u32, parties: Vec<serde_json::Value>| {
        serde_json::from_value::<anyam_trust::AgreementsInForce>(json!({
            "schema_version": 1,
            "evaluated_at": NOW,
            "agreements": [{
                "id": id, "version": version, "digest": "0".repeat(64), "title": "t",
                "sharing_group": false, "parties": parties,
                "scope": {"collections": ["ransomware"], "max_tlp": "amber", "pap": "green"},
                "redistribution": {"to": "parties"},
                "sightings": {"send_to_originator": false, "anonymized": true},
                "retention_after_termination": {"action": "delete"},
                "notice_period_days": 30,
                "valid_from": T0, "valid_until": "2027-01-01T00:00:00Z"
            }]
        }))
        .expect("view")
    };
    let good = view(&named.id, 1, vec![party(a.id()), party(b.id())]);
    let found = batch.check_agreement(&good, &b.id()).expect("in force");
    assert_eq!(found.id, named.id);
    let err = batch
        .check_agreement(&good, &c.id())
        .expect_err("C is no party");
    assert!(
        matches!(err, ProvenanceError::NotUnderAgreement { .. }),
        "{err}"
    );
    let other = view(&agreement().id, 1, vec![party(a.id()), party(b.id())]);
    batch
        .check_agreement(&other, &b.id())
        .expect_err("another agreement");
    let mut older = batch.clone();
    older.manifest.agreement.version = 2;
    older
        .check_agreement(&good, &b.id())
        .expect_err("version not in force here");
}
