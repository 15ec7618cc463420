//! Integration tests of anyam-trust through its public API: signed
//! envelopes, key histories, descriptors, agreements in force or not, the
//! trust database and the Admiralty code.

use anyam_trust::admiralty::{
    self, Admiralty, AdmiraltyFilter, Credibility, RELIABILITY_EXTENSION_ID, Reliability,
};
use anyam_trust::{
    Agreement, DescriptorExport, KeyStatus, Keyring, Keyrings, NodeDescriptor, NotInForce, Pap,
    Redistribution, Retention, Scope, SigCheck, Sightings, Signed, Termination, Terms, Tlp,
    TrustError, TrustStore, descriptor, in_force, key_id, keyring, view,
};
use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("test time")
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// A test node: its recovery key, current node key and key statements.
struct TestNode {
    name: String,
    recovery: SigningKey,
    node: SigningKey,
    statements: Vec<Signed>,
}

impl TestNode {
    fn new(name: &str, at: Timestamp) -> Self {
        let recovery = key();
        let node = key();
        let enrollment = keyring::enroll(&recovery, &node, at).expect("enroll");
        TestNode {
            name: name.into(),
            recovery,
            node,
            statements: vec![enrollment],
        }
    }

    fn id(&self) -> String {
        key_id(&self.recovery.verifying_key())
    }

    fn identity(&self) -> serde_json::Value {
        json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": format!("identity--{}", uuid::Uuid::new_v4()),
            "created": "2026-01-01T00:00:00.000Z",
            "modified": "2026-01-01T00:00:00.000Z",
            "name": format!("{} CERT", self.name),
            "identity_class": "organization"
        })
    }

    fn descriptor(&self, at: Timestamp) -> NodeDescriptor {
        NodeDescriptor::new(
            &self.name,
            self.identity(),
            &self.node.verifying_key(),
            &self.recovery.verifying_key(),
            &format!("https://{}.example/taxii2/", self.name),
            at,
        )
    }

    fn export(&self, at: Timestamp) -> DescriptorExport {
        let d = self
            .descriptor(at)
            .sign(&self.node)
            .expect("sign descriptor");
        DescriptorExport::new(d, self.statements.clone())
    }

    fn rotate(&mut self, at: Timestamp) -> SigningKey {
        let new = key();
        let s = keyring::rotate(&self.id(), &self.node, &new, at).expect("rotate");
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

fn rings(nodes: &[&TestNode]) -> Keyrings {
    nodes.iter().map(|n| (n.id(), n.keyring())).collect()
}

fn terms(from: Timestamp, until: Timestamp) -> Terms {
    Terms {
        title: "Ransomware indicators".into(),
        scope: Scope {
            collections: vec!["ransomware".into()],
            object_types: vec!["indicator".into(), "malware".into()],
            max_tlp: Tlp::Amber,
            pap: Pap::Green,
        },
        redistribution: Redistribution::Parties,
        sightings: Sightings {
            send_to_originator: true,
            anonymized: true,
        },
        retention_after_termination: Retention::Keep { days: Some(90) },
        notice_period_days: 30,
        valid_from: from,
        valid_until: until,
    }
}

const T0: &str = "2026-01-01T00:00:00Z";

fn draft(parties: &[&TestNode], created: Timestamp) -> Agreement {
    let ds = parties.iter().map(|n| n.descriptor(created)).collect();
    let mut a =
        Agreement::draft(ds, terms(t(T0), t("2027-01-01T00:00:00Z")), created).expect("draft");
    a.created = anyam_trust::format_time(created);
    a
}

fn signed_by(a: &Agreement, keys: &[&SigningKey]) -> Signed {
    let mut s = Signed::new(a).expect("envelope");
    for k in keys {
        s.sign(k);
    }
    s
}

#[test]
fn envelope_signatures_cover_the_canonical_document() {
    let k = key();
    let mut s = Signed {
        document: json!({"type": "x", "b": 1, "a": [1, 2]}),
        signatures: vec![],
    };
    s.sign(&k);
    assert_eq!(s.check(&k.verifying_key()), SigCheck::Valid);
    // Member order does not matter: the canonical form is signed.
    let reordered: Signed = Signed::from_json(
        &serde_json::to_string(&json!({
            "document": {"a": [1, 2], "b": 1, "type": "x"},
            "signatures": s.signatures,
        }))
        .expect("json"),
    )
    .expect("parse");
    assert_eq!(reordered.check(&k.verifying_key()), SigCheck::Valid);
    let mut tampered = s.clone();
    tampered.document["b"] = json!(2);
    assert_eq!(tampered.check(&k.verifying_key()), SigCheck::Bad);
    assert_eq!(s.check(&key().verifying_key()), SigCheck::Absent);
    // A document of one type cannot be read as another.
    let err = s.parse::<Agreement>().expect_err("wrong type");
    assert!(matches!(err, TrustError::WrongType { .. }), "{err}");
}

#[test]
fn key_id_is_sha256_of_raw_key() {
    let k = key();
    let id = key_id(&k.verifying_key());
    assert_eq!(id.len(), 64);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    use sha2::Digest;
    assert_eq!(
        id,
        hex::encode(sha2::Sha256::digest(k.verifying_key().as_bytes()))
    );
}

#[test]
fn descriptor_import_and_tampering() {
    let now = t("2026-02-01T00:00:00Z");
    let a = TestNode::new("alpha", t(T0));
    let good = a.export(now);
    let (ring, d) = descriptor::import(None, &good, now).expect("good descriptor imports");
    assert_eq!(d.node_id, a.id());
    assert_eq!(
        ring.active().map(|(id, _)| id.to_string()),
        Some(d.node_key.key_id.clone())
    );

    type Tamper = fn(&mut DescriptorExport, &TestNode);
    let cases: Vec<(&str, Tamper)> = vec![
        ("name changed after signing", |e, _| {
            e.descriptor.document["node_name"] = json!("mallory")
        }),
        ("taxii url changed after signing", |e, _| {
            e.descriptor.document["taxii_url"] = json!("https://evil.example/taxii2/")
        }),
        ("signature removed", |e, _| e.descriptor.signatures.clear()),
        ("signed by another key", |e, _| {
            e.descriptor.signatures.clear();
            e.descriptor.sign(&key());
        }),
        ("node key swapped and re-signed by it", |e, n| {
            // A thief with a key of its own cannot pass it off as the node's.
            let k = key();
            let mut d: NodeDescriptor = e.descriptor.parse().expect("parse");
            d.node_key = anyam_trust::PublicKeyInfo::new(&k.verifying_key());
            let _ = n;
            e.descriptor = d.sign(&k).expect("sign");
        }),
        ("no enrollment", |e, _| e.key_statements.clear()),
        ("node id not the recovery key id", |e, n| {
            let mut d: NodeDescriptor = e.descriptor.parse().expect("parse");
            d.node_id = key_id(&key().verifying_key());
            e.descriptor = d.sign(&n.node).expect("sign");
        }),
        ("identity not valid STIX", |e, n| {
            let mut d: NodeDescriptor = e.descriptor.parse().expect("parse");
            d.identity["identity_class"] = json!(12);
            e.descriptor = d.sign(&n.node).expect("sign");
        }),
        ("unknown field", |e, n| {
            e.descriptor.document["extra"] = json!(true);
            e.descriptor.signatures.clear();
            e.descriptor.sign(&n.node);
        }),
        ("enrollment not signed by the recovery key", |e, n| {
            let fake_recovery = key();
            let mut s = keyring::enroll(&fake_recovery, &n.node, t(T0)).expect("enroll");
            s.document["node_id"] = json!(n.id());
            s.signatures
                .retain(|x| x.key_id != key_id(&fake_recovery.verifying_key()));
            e.key_statements = vec![s];
        }),
    ];
    for (name, tamper) in cases {
        let mut e = a.export(now);
        tamper(&mut e, &a);
        let r = descriptor::import(None, &e, now);
        assert!(r.is_err(), "{name}: accepted");
    }

    // Pinned node id: a known node's keyring refuses another node's export.
    let b = TestNode::new("bravo", t(T0));
    let err = descriptor::import(Some(&ring), &b.export(now), now).expect_err("other node");
    assert!(matches!(err, TrustError::Inconsistent(_)), "{err}");
}

#[test]
fn rotation_keeps_old_signatures_and_moves_the_node_on() {
    let mut a = TestNode::new("alpha", t(T0));
    let first = a.node.clone();
    let first_id = key_id(&first.verifying_key());
    let mut ring = a.keyring();
    let old_export = a.export(t("2026-01-02T00:00:00Z"));
    descriptor::import(None, &old_export, t("2026-01-02T00:00:00Z")).expect("first");

    a.rotate(t("2026-03-01T00:00:00Z"));
    for s in &a.statements {
        ring.apply(s).expect("apply");
    }
    let new_id = key_id(&a.node.verifying_key());
    let now = t("2026-04-01T00:00:00Z");
    assert_eq!(ring.status_at(&first_id, now), KeyStatus::Retired);
    assert_eq!(ring.status_at(&new_id, now), KeyStatus::Active);
    assert_eq!(
        ring.status_at(&first_id, t("2026-02-01T00:00:00Z")),
        KeyStatus::Active
    );
    // Documents dated before the rotation still verify with the old key;
    // documents dated after it do not.
    assert!(
        ring.accept(&first_id, t("2026-02-01T00:00:00Z"), now)
            .is_ok()
    );
    assert!(
        ring.accept(&first_id, t("2026-03-02T00:00:00Z"), now)
            .is_err()
    );
    // A partner that knew the old key follows the rotation on re-import.
    let (known, _) = descriptor::import(None, &old_export, now).expect("old");
    let (after, d) = descriptor::import(Some(&known), &a.export(now), now).expect("rotated");
    assert_eq!(d.node_key.key_id, new_id);
    assert_eq!(after.active().map(|(k, _)| k.to_string()), Some(new_id));
    // A descriptor signed by the retired key after the rotation is refused.
    let stale = {
        let mut d = a.descriptor(now);
        d.node_key = anyam_trust::PublicKeyInfo::new(&first.verifying_key());
        DescriptorExport::new(d.sign(&first).expect("sign"), a.statements.clone())
    };
    assert!(descriptor::import(Some(&known), &stale, now).is_err());
    // The retired key cannot rotate again.
    let fork = keyring::rotate(&a.id(), &first, &key(), now).expect("statement");
    assert!(ring.clone().apply(&fork).is_err());
    // Applying the same statement twice is a no-op.
    assert!(!ring.apply(&a.statements[1]).expect("again"));
}

#[test]
fn compromise_recovery_end_to_end() {
    let created = t("2026-01-10T00:00:00Z");
    let mut a = TestNode::new("alpha", t(T0));
    let b = TestNode::new("bravo", t(T0));
    let stolen = a.node.clone();
    let stolen_id = key_id(&stolen.verifying_key());

    // B knows A; both sign an agreement with their first keys.
    let (ring_a_at_b, _) = descriptor::import(None, &a.export(created), created).expect("import");
    let agreement = draft(&[&a, &b], created);
    let signed = signed_by(&agreement, &[&a.node, &b.node]);
    let before = t("2026-02-01T00:00:00Z");
    let mut keyrings = Keyrings::new();
    keyrings.insert(a.id(), ring_a_at_b.clone());
    keyrings.insert(b.id(), b.keyring());
    assert!(in_force(&signed, &keyrings, before, &[], &[]).is_ok());

    // The thief rotates the stolen key to one of its own and signs with it.
    let thief = key();
    let thief_rotation = keyring::rotate(&a.id(), &stolen, &thief, t("2026-02-10T00:00:00Z"))
        .expect("thief rotation");

    // A recovers with its offline recovery key.
    let revoked_at = t("2026-03-01T00:00:00Z");
    a.statements.push(thief_rotation.clone());
    a.node = thief.clone();
    let new = key();
    let revocation = keyring::revoke(
        &a.recovery,
        &stolen_id,
        &new,
        revoked_at,
        Some("laptop stolen".into()),
    )
    .expect("revocation");
    a.statements.push(revocation);
    a.node = new.clone();

    // B imports A's new export: the chain applies and the new key is active.
    let after = t("2026-03-02T00:00:00Z");
    let (ring, d) = descriptor::import(Some(&ring_a_at_b), &a.export(after), after)
        .expect("recovery export imports");
    assert_eq!(d.node_key.key_id, key_id(&new.verifying_key()));
    assert_eq!(ring.status_at(&stolen_id, after), KeyStatus::Revoked);
    assert_eq!(
        ring.status_at(&key_id(&thief.verifying_key()), after),
        KeyStatus::Revoked,
        "keys introduced by the stolen key are revoked with it"
    );
    keyrings.insert(a.id(), ring.clone());

    // Everything signed by the revoked key is refused after the revocation,
    // including the agreement signed before, and forged backdated docs.
    match in_force(&signed, &keyrings, after, &[], &[]) {
        Err(NotInForce::KeyRejected {
            node_id, key_id, ..
        }) => {
            assert_eq!(node_id, a.id());
            assert_eq!(key_id, stolen_id);
        }
        other => panic!("expected a rejected key, got {other:?}"),
    }
    let forged = DescriptorExport::new(
        {
            let mut dd = a.descriptor(before);
            dd.node_key = anyam_trust::PublicKeyInfo::new(&stolen.verifying_key());
            dd.sign(&stolen).expect("sign")
        },
        a.statements.clone(),
    );
    assert!(descriptor::import(Some(&ring), &forged, after).is_err());
    // A descriptor signed by the thief's key is refused too.
    let thief_desc = DescriptorExport::new(
        {
            let mut dd = a.descriptor(after);
            dd.node_key = anyam_trust::PublicKeyInfo::new(&thief.verifying_key());
            dd.sign(&thief).expect("sign")
        },
        a.statements.clone(),
    );
    assert!(descriptor::import(Some(&ring), &thief_desc, after).is_err());
    // Re-signed with the new key, the agreement is in force again.
    let mut resigned = signed.clone();
    resigned.sign(&new);
    assert!(in_force(&resigned, &keyrings, after, &[], &[]).is_ok());
    // A revocation not signed by the recovery key is refused.
    let fake = keyring::revoke(&key(), &stolen_id, &key(), after, None).expect("statement");
    assert!(ring.clone().apply(&fake).is_err());
}

#[test]
fn agreements_in_force_or_not() {
    let created = t("2026-01-05T00:00:00Z");
    let a = TestNode::new("alpha", t(T0));
    let b = TestNode::new("bravo", t(T0));
    let c = TestNode::new("charlie", t(T0));
    let all = rings(&[&a, &b, &c]);
    let base = draft(&[&a, &b], created);
    let now = t("2026-06-01T00:00:00Z");

    let good = signed_by(&base, &[&a.node, &b.node]);
    let v2 = {
        let mut x = Agreement::amend(
            &good,
            base.parties.clone(),
            base.terms().expect("terms"),
            created,
        )
        .expect("amend");
        x.title = "Ransomware indicators, amended".into();
        x
    };
    let v2_signed = signed_by(&v2, &[&a.node, &b.node]);
    let v2_half = signed_by(&v2, &[&a.node]);
    let v2_future = {
        let mut x = v2.clone();
        x.valid_from = "2026-09-01T00:00:00Z".into();
        signed_by(&x, &[&a.node, &b.node])
    };
    let term_at = |by: &TestNode, at: &str| {
        Termination::sign(&base, &by.id(), &by.node, t(at), None).expect("termination")
    };
    let forged_term = {
        let mut s = term_at(&b, "2026-01-10T00:00:00Z");
        s.signatures.clear();
        s.sign(&c.node);
        s
    };

    struct Case {
        name: &'static str,
        doc: Signed,
        at: Timestamp,
        terminations: Vec<anyam_trust::Notice>,
        versions: Vec<Signed>,
        expect: Result<(), fn(&NotInForce) -> bool>,
    }
    let ok = Ok(());
    let cases = vec![
        Case {
            name: "signed by both, in its dates",
            doc: good.clone(),
            at: now,
            terminations: vec![],
            versions: vec![],
            expect: ok,
        },
        Case {
            name: "missing a party's signature",
            doc: signed_by(&base, &[&a.node]),
            at: now,
            terminations: vec![],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::MissingSignature { .. })),
        },
        Case {
            name: "no signatures",
            doc: signed_by(&base, &[]),
            at: now,
            terminations: vec![],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::MissingSignature { .. })),
        },
        Case {
            name: "bad signature",
            doc: {
                let mut s = good.clone();
                s.signatures[1].signature = s.signatures[0].signature.clone();
                s
            },
            at: now,
            terminations: vec![],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::BadSignature { .. })),
        },
        Case {
            name: "tampered after signing",
            doc: {
                let mut s = good.clone();
                s.document["scope"]["max_tlp"] = json!("red");
                s
            },
            at: now,
            terminations: vec![],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::BadSignature { .. })),
        },
        Case {
            name: "wrong party signed",
            doc: signed_by(&base, &[&a.node, &c.node]),
            at: now,
            terminations: vec![],
            versions: vec![],
            expect: Err(
                |r| matches!(r, NotInForce::MissingSignature { node_id } if !node_id.is_empty()),
            ),
        },
        Case {
            name: "party signed with its recovery key",
            doc: signed_by(&base, &[&a.node, &b.recovery]),
            at: now,
            terminations: vec![],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::MissingSignature { .. })),
        },
        Case {
            name: "not yet valid",
            doc: good.clone(),
            at: t("2025-12-31T23:59:59Z"),
            terminations: vec![],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::NotYetValid { .. })),
        },
        Case {
            name: "expired",
            doc: good.clone(),
            at: t("2027-01-01T00:00:00Z"),
            terminations: vec![],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::Expired { .. })),
        },
        Case {
            name: "terminated, notice period running",
            doc: good.clone(),
            at: t("2026-02-05T00:00:00Z"),
            terminations: vec![term_at(&b, "2026-01-10T00:00:00Z").into()],
            versions: vec![],
            expect: ok,
        },
        Case {
            name: "terminated, notice period over",
            doc: good.clone(),
            at: t("2026-02-09T00:00:00Z"),
            terminations: vec![term_at(&b, "2026-01-10T00:00:00Z").into()],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::Terminated { .. })),
        },
        Case {
            name: "backdated notice runs from its receipt",
            doc: good.clone(),
            at: t("2026-06-01T00:00:00Z"),
            terminations: vec![anyam_trust::Notice {
                signed: term_at(&b, "2026-01-10T00:00:00Z"),
                received_at: Some(t("2026-05-20T00:00:00Z")),
            }],
            versions: vec![],
            expect: ok,
        },
        Case {
            name: "termination by a non-party is ignored",
            doc: good.clone(),
            at: now,
            terminations: vec![forged_term.clone().into()],
            versions: vec![],
            expect: ok,
        },
        Case {
            name: "amended: old version superseded",
            doc: good.clone(),
            at: now,
            terminations: vec![],
            versions: vec![good.clone(), v2_signed.clone()],
            expect: Err(|r| matches!(r, NotInForce::Superseded { by_version: 2 })),
        },
        Case {
            name: "amended: new version in force",
            doc: v2_signed.clone(),
            at: now,
            terminations: vec![],
            versions: vec![good.clone(), v2_signed.clone()],
            expect: ok,
        },
        Case {
            name: "amendment not signed by all: old stays",
            doc: good.clone(),
            at: now,
            terminations: vec![],
            versions: vec![good.clone(), v2_half.clone()],
            expect: ok,
        },
        Case {
            name: "amendment not signed by all is not in force",
            doc: v2_half.clone(),
            at: now,
            terminations: vec![],
            versions: vec![good.clone(), v2_half.clone()],
            expect: Err(|r| matches!(r, NotInForce::MissingSignature { .. })),
        },
        Case {
            name: "amendment not begun: old stays",
            doc: good.clone(),
            at: now,
            terminations: vec![],
            versions: vec![good.clone(), v2_future.clone()],
            expect: ok,
        },
        Case {
            name: "termination of v1 does not end v2",
            doc: v2_signed.clone(),
            at: t("2026-06-01T00:00:00Z"),
            terminations: vec![term_at(&b, "2026-01-10T00:00:00Z").into()],
            versions: vec![],
            expect: ok,
        },
        Case {
            name: "unknown party",
            doc: signed_by(
                &draft(&[&a, &TestNode::new("delta", t(T0))], created),
                &[&a.node],
            ),
            at: now,
            terminations: vec![],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::UnknownParty { .. })),
        },
        Case {
            name: "malformed: one party",
            doc: {
                let mut x = base.clone();
                x.parties.truncate(1);
                signed_by(&x, &[&a.node])
            },
            at: now,
            terminations: vec![],
            versions: vec![],
            expect: Err(|r| matches!(r, NotInForce::Malformed { .. })),
        },
    ];
    let mut failures = Vec::new();
    for c in cases {
        let got = in_force(&c.doc, &all, c.at, &c.terminations, &c.versions);
        let pass = match (&got, &c.expect) {
            (Ok(_), Ok(())) => true,
            (Err(r), Err(f)) => f(r),
            _ => false,
        };
        if !pass {
            failures.push(format!("{}: got {:?}", c.name, got.map(|f| f.digest)));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // The notice period is reported while it runs.
    let running = in_force(
        &good,
        &all,
        t("2026-02-05T00:00:00Z"),
        &[term_at(&b, "2026-01-10T00:00:00Z").into()],
        &[],
    )
    .expect("in force");
    assert_eq!(
        running.terminating_at,
        Some(t("2026-01-10T00:00:00Z") + days(30))
    );
}

#[test]
fn view_lists_agreements_for_the_policy() {
    let created = t("2026-01-05T00:00:00Z");
    let a = TestNode::new("alpha", t(T0));
    let b = TestNode::new("bravo", t(T0));
    let c = TestNode::new("charlie", t(T0));
    let all = rings(&[&a, &b, &c]);
    let pair = signed_by(&draft(&[&a, &b], created), &[&a.node, &b.node]);
    let group = signed_by(&draft(&[&a, &b, &c], created), &[&a.node, &b.node, &c.node]);
    let now = t("2026-06-01T00:00:00Z");
    let forces: Vec<_> = [&pair, &group]
        .into_iter()
        .map(|s| in_force(s, &all, now, &[], &[]).expect("in force"))
        .collect();
    let v = view(&forces, &all, now);
    assert_eq!(v.agreements.len(), 2);
    assert!(!v.agreements[0].sharing_group);
    assert!(v.agreements[1].sharing_group);
    assert_eq!(v.with_party(&c.id()).count(), 1);
    let p = &v.agreements[0].parties[0];
    assert_eq!(p.key_ids, vec![key_id(&a.node.verifying_key())]);
    assert_eq!(v.agreements[0].scope.max_tlp, Tlp::Amber);
    // It round-trips through JSON for the policy engine.
    let text = serde_json::to_string(&v).expect("json");
    let back: anyam_trust::AgreementsInForce = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, v);
    assert!(Tlp::Amber < Tlp::AmberStrict && Tlp::AmberStrict < Tlp::Red);
}

#[test]
fn trust_store_keeps_versions_signatures_partners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trust.db");
    let created = t("2026-01-05T00:00:00Z");
    let mut a = TestNode::new("alpha", t(T0));
    let b = TestNode::new("bravo", t(T0));
    let now = t("2026-06-01T00:00:00Z");

    let mut store = TrustStore::open(&path).expect("open");
    let node_id = store
        .init_self(&a.recovery.verifying_key(), &a.statements[0])
        .expect("init");
    assert_eq!(node_id, a.id());
    // Importing one's own descriptor is refused; a partner's is accepted.
    assert!(store.import_partner(&a.export(now), None, now).is_err());
    let wrong_pin = store.import_partner(&b.export(now), Some(&a.id()), now);
    assert!(wrong_pin.is_err());
    let imported = store
        .import_partner(&b.export(now), Some(&b.id()), now)
        .expect("import");
    assert!(imported.new);
    assert_eq!(store.partners().expect("partners").len(), 1);
    let again = store
        .import_partner(&b.export(now), None, now)
        .expect("again");
    assert!(!again.new);
    assert_eq!(again.new_statements, 0);

    // Each side signs and the store merges the signatures.
    let agreement = draft(&[&a, &b], created);
    let only_a = signed_by(&agreement, &[&a.node]);
    let only_b = signed_by(&agreement, &[&b.node]);
    store.put_agreement(&only_a, now).expect("store a");
    assert!(matches!(
        store.evaluate(&agreement.id, None, now).expect("eval"),
        Err(NotInForce::MissingSignature { .. })
    ));
    store.put_agreement(&only_b, now).expect("store b");
    assert!(
        store
            .evaluate(&agreement.id, None, now)
            .expect("eval")
            .is_ok()
    );
    // A bad signature by a known key is refused, and stores nothing.
    let mut bad = only_b.clone();
    bad.signatures[0].signature = only_a.signatures[0].signature.clone();
    assert!(matches!(
        store.put_agreement(&bad, now),
        Err(TrustError::BadSignature { .. })
    ));
    // The same version with other content is refused.
    let mut other = agreement.clone();
    other.title = "something else".into();
    assert!(
        store
            .put_agreement(&signed_by(&other, &[&a.node]), now)
            .is_err()
    );

    // An amendment signed by both supersedes version 1; both are kept.
    let v1 = store.agreement(&agreement.id, Some(1)).expect("v1");
    let v2 = Agreement::amend(
        &v1,
        agreement.parties.clone(),
        agreement.terms().expect("terms"),
        now,
    )
    .expect("amend");
    store
        .put_agreement(&signed_by(&v2, &[&a.node, &b.node]), now)
        .expect("v2");
    assert!(matches!(
        store.evaluate(&agreement.id, Some(1), now).expect("eval"),
        Err(NotInForce::Superseded { by_version: 2 })
    ));
    assert!(
        store
            .evaluate(&agreement.id, None, now)
            .expect("eval")
            .is_ok()
    );
    assert_eq!(store.agreements().expect("all").len(), 2);
    let view = store.in_force_view(now).expect("view");
    assert_eq!(view.agreements.len(), 1);
    assert_eq!(view.agreements[0].version, 2);

    // Termination by B, stored, effective after the notice period.
    let tn = Termination::sign(&v2, &b.id(), &b.node, now, Some("policy change".into()))
        .expect("termination");
    store.put_termination(&tn, now).expect("store termination");
    let later = now + days(31);
    assert!(matches!(
        store.evaluate(&agreement.id, None, later).expect("eval"),
        Err(NotInForce::Terminated { .. })
    ));
    // A termination signed by someone else is refused.
    let mut forged = tn.clone();
    forged.signatures.clear();
    forged.sign(&a.node);
    assert!(store.put_termination(&forged, now).is_err());

    // Own rotation is recorded and survives reopening.
    let old = a.node.clone();
    a.rotate(now);
    let rotation = a.statements.last().expect("rotation").clone();
    store.add_own_statement(&rotation).expect("own rotation");
    drop(store);
    let store = TrustStore::open(&path).expect("reopen");
    let ring = store.own_keyring().expect("own");
    assert_eq!(
        ring.status_at(&key_id(&old.verifying_key()), later),
        KeyStatus::Retired
    );
    assert_eq!(store.statements(&a.id()).expect("statements").len(), 2);

    // A backup holds everything and opens as a trust database.
    let copy = dir.path().join("backup.db");
    store.backup_to(&copy).expect("backup");
    let restored = TrustStore::open(&copy).expect("open backup");
    assert_eq!(restored.self_node_id().expect("self"), Some(a.id()));
    assert_eq!(restored.agreements().expect("all").len(), 2);
    assert_eq!(restored.terminations().expect("notices").len(), 1);
    assert_eq!(restored.partners().expect("partners").len(), 1);
}

#[test]
fn credibility_maps_to_stix_confidence() {
    // STIX 2.1 Appendix A, Admiralty Credibility.
    let table: [(u8, Option<u8>); 6] = [
        (1, Some(90)),
        (2, Some(70)),
        (3, Some(50)),
        (4, Some(30)),
        (5, Some(10)),
        (6, None),
    ];
    for (c, conf) in table {
        let cred = Credibility::new(c).expect("1..6");
        assert_eq!(cred.to_confidence(), conf, "credibility {c}");
        assert_eq!(
            Credibility::from_confidence(conf.map(u64::from)),
            Some(cred)
        );
    }
    let ranges: [(Option<u64>, Option<u8>); 12] = [
        (Some(0), Some(5)),
        (Some(19), Some(5)),
        (Some(20), Some(4)),
        (Some(39), Some(4)),
        (Some(40), Some(3)),
        (Some(59), Some(3)),
        (Some(60), Some(2)),
        (Some(79), Some(2)),
        (Some(80), Some(1)),
        (Some(100), Some(1)),
        (None, Some(6)),
        (Some(101), None),
    ];
    for (conf, c) in ranges {
        assert_eq!(
            Credibility::from_confidence(conf).map(|x| x.value()),
            c,
            "{conf:?}"
        );
    }
    assert!(Credibility::new(0).is_none() && Credibility::new(7).is_none());
}

#[test]
fn reliability_extension_is_valid_stix() {
    let def = admiralty::extension_definition();
    anyam_stix::check_object(&def).expect("extension-definition is valid STIX");
    let mut ind = json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '198.51.100.1']",
        "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z"
    });
    assert_eq!(admiralty::source_reliability(&ind).expect("read"), None);
    admiralty::set_source_reliability(&mut ind, Some(Reliability::B)).expect("set");
    admiralty::set_credibility(&mut ind, Credibility::new(2).expect("2")).expect("set");
    anyam_stix::check_object(&ind).expect("object with the extension is valid STIX");
    assert_eq!(
        ind["extensions"][RELIABILITY_EXTENSION_ID]["source_reliability"],
        "B"
    );
    assert_eq!(ind["confidence"], 70);
    let code = Admiralty::of(&ind).expect("rating");
    assert_eq!(code.to_string(), "B2");
    assert_eq!(Admiralty::parse("b2"), Some(code));

    let filters = [
        (AdmiraltyFilter::default(), true),
        (
            AdmiraltyFilter {
                min_reliability: Some(Reliability::B),
                min_credibility: None,
            },
            true,
        ),
        (
            AdmiraltyFilter {
                min_reliability: Some(Reliability::A),
                min_credibility: None,
            },
            false,
        ),
        (
            AdmiraltyFilter {
                min_reliability: None,
                min_credibility: Credibility::new(2),
            },
            true,
        ),
        (
            AdmiraltyFilter {
                min_reliability: None,
                min_credibility: Credibility::new(1),
            },
            false,
        ),
    ];
    for (f, expect) in filters {
        assert_eq!(f.accepts(&ind), expect, "{f:?}");
    }

    // Removing leaves no empty extensions dictionary behind (STIX 2.1 §3.2).
    admiralty::set_source_reliability(&mut ind, None).expect("remove");
    admiralty::set_credibility(&mut ind, Credibility::CANNOT_BE_JUDGED).expect("6");
    assert!(ind.get("extensions").is_none() && ind.get("confidence").is_none());
    anyam_stix::check_object(&ind).expect("still valid");
    assert_eq!(Admiralty::of(&ind).expect("rating").to_string(), "F6");

    // A bad letter is reported, not guessed.
    let mut bad = ind.clone();
    bad["extensions"] = json!({RELIABILITY_EXTENSION_ID: {"extension_type": "property-extension", "source_reliability": "Z"}});
    assert!(admiralty::source_reliability(&bad).is_err());
}

#[test]
fn admiralty_text_forms_and_source_fallback() {
    let cases: [(&str, Option<&str>); 6] = [
        (
            "A1",
            Some("A1 (completely reliable, confirmed by other sources)"),
        ),
        ("c3", Some("C3 (fairly reliable, possibly true)")),
        (
            "F6",
            Some("F6 (reliability cannot be judged, truth cannot be judged)"),
        ),
        ("G1", None),
        ("A7", None),
        ("", None),
    ];
    for (text, expect) in cases {
        assert_eq!(
            Admiralty::parse(text).map(|a| a.describe()).as_deref(),
            expect,
            "{text:?}"
        );
    }
    let f = AdmiraltyFilter::from_params(Some("b"), Some("3")).expect("params");
    assert_eq!(f.min_reliability, Some(Reliability::B));
    assert_eq!(f.min_credibility, Credibility::new(3));
    assert!(AdmiraltyFilter::from_params(Some("Z"), None).is_err());
    assert!(AdmiraltyFilter::from_params(None, Some("0")).is_err());

    let mut source = json!({
        "type": "identity", "spec_version": "2.1",
        "id": "identity--0b9d4fa2-3a4c-4c2e-9a53-1c5b1f7c4d11",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "name": "Sensor team", "identity_class": "organization"
    });
    admiralty::set_source_reliability(&mut source, Some(Reliability::C)).expect("set");
    anyam_stix::check_object(&source).expect("identity with the extension is valid");
    let obj = json!({"type": "indicator", "created_by_ref": source["id"], "confidence": 70});
    let lookup = |id: &str| (id == source["id"]).then_some(&source);
    let a = Admiralty::of_with_source(&obj, lookup).expect("rating");
    assert_eq!(a.to_string(), "C2");
    // The object's own grade wins over its source's.
    let mut own = obj.clone();
    admiralty::set_source_reliability(&mut own, Some(Reliability::A)).expect("set");
    assert_eq!(
        Admiralty::of_with_source(&own, lookup)
            .expect("rating")
            .to_string(),
        "A2"
    );
}

proptest::proptest! {
    /// Round trip through the file format keeps a signature valid; any
    /// change of content breaks it.
    #[test]
    fn signatures_survive_round_trips_and_catch_changes(
        title in "\\PC{0,40}",
        other in "\\PC{0,40}",
        n in 0u32..100_000,
    ) {
        let k = SigningKey::from_bytes(&[7u8; 32]);
        let mut s = Signed {
            document: json!({"type": "anyam-test", "schema_version": 1, "title": title, "n": n}),
            signatures: vec![],
        };
        s.sign(&k);
        let back = Signed::from_json(&s.to_json_pretty()).expect("round trip");
        proptest::prop_assert_eq!(back.check(&k.verifying_key()), SigCheck::Valid);
        proptest::prop_assert_eq!(back.digest(), s.digest());
        let mut changed = back.clone();
        changed.document["title"] = json!(other.clone());
        let expect = if other == title { SigCheck::Valid } else { SigCheck::Bad };
        proptest::prop_assert_eq!(changed.check(&k.verifying_key()), expect);
        changed.document["n"] = json!(n + 1);
        proptest::prop_assert_eq!(changed.check(&k.verifying_key()), SigCheck::Bad);
    }
}

#[test]
fn enrollment_only_introduces_the_first_key() {
    let a = TestNode::new("alpha", t(T0));
    let mut ring = a.keyring();
    // The same key enrolled again (a node that re-created its trust
    // database) changes nothing; another key cannot be enrolled.
    let again = keyring::enroll(&a.recovery, &a.node, t("2026-02-01T00:00:00Z")).expect("enroll");
    assert!(!ring.apply(&again).expect("same key again"));
    let other = keyring::enroll(&a.recovery, &key(), t("2026-02-01T00:00:00Z")).expect("enroll");
    assert!(matches!(
        ring.apply(&other),
        Err(TrustError::Inconsistent(_))
    ));
    // A partner holding the first enrollment accepts an export carrying
    // the second one.
    let now = t("2026-03-01T00:00:00Z");
    let (known, _) = descriptor::import(None, &a.export(now), now).expect("first");
    let redone = DescriptorExport::new(a.descriptor(now).sign(&a.node).expect("sign"), vec![again]);
    assert!(descriptor::import(Some(&known), &redone, now).is_ok());
    // Statements of another node are refused.
    let b = TestNode::new("bravo", t(T0));
    assert!(ring.apply(&b.statements[0]).is_err());
}

#[test]
fn a_revoked_key_is_good_before_its_revocation_only() {
    let mut a = TestNode::new("alpha", t(T0));
    let old = a.node.clone();
    let old_id = key_id(&old.verifying_key());
    let revoked_at = t("2026-03-01T00:00:00Z");
    let new = key();
    a.statements
        .push(keyring::revoke(&a.recovery, &old_id, &new, revoked_at, None).expect("revocation"));
    let ring = a.keyring();
    let doc_time = t("2026-01-15T00:00:00Z");
    let cases = [
        (
            "checked before the revocation",
            t("2026-02-28T23:59:59Z"),
            true,
        ),
        ("checked at the revocation", revoked_at, false),
        (
            "checked after the revocation",
            t("2026-06-01T00:00:00Z"),
            false,
        ),
    ];
    for (name, now, ok) in cases {
        assert_eq!(ring.accept(&old_id, doc_time, now).is_ok(), ok, "{name}");
    }
    assert!(
        ring.accept(
            &key_id(&new.verifying_key()),
            doc_time,
            t("2026-06-01T00:00:00Z")
        )
        .is_ok()
    );
    assert!(
        ring.accept(&key_id(&key().verifying_key()), doc_time, revoked_at)
            .is_err()
    );
}
