//! Receiving signed pages from partners, in process and with real parts:
//! a SQLite object store and a federation database in temporary
//! directories per node, Ed25519 keys and keyrings, agreements signed by
//! their parties and evaluated with `anyam_trust::in_force` and `view`.
//! Pages are built by signing manifests by hand (to forge every kind of
//! bad page) and, once, by the publisher's own page builder behind its
//! release gate.
//!
//! Every refusal is checked twice: the error, and that nothing was kept
//! (no collection or no object in the receiver's store, no provenance row
//! in its federation database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use anyam_audit::Event;
use anyam_federation::FederationError;
use anyam_federation::page::{self, Envelope, PageRequest, format_micros};
use anyam_federation::receive::{
    AuditSink, Ended, Received, Receiver, RemoteCollection, TrustSource,
};
use anyam_federation::state::FederationDb;
use anyam_federation::tombstone::{LocalDeletion, on_local_delete};
use anyam_policy::{AgreementSource, Gate, Label, Path, PolicyConfig};
use anyam_store::{
    ApiRoot, Collection, Organization, PutOutcome, Query, SqliteOptions, SqliteStore, Store,
    Synchronous, VersionSel,
};
use anyam_trust::provenance::{ManifestTree, Origin, Versions, manifest_head};
use anyam_trust::{
    Agreement, AgreementRef, AgreementsInForce, InForce, Keyring, Keyrings, Manifest,
    NodeDescriptor, Pap, Redistribution, Retention, Scope, Sightings, Signed, Terms, Tlp,
    Tombstone, in_force, key_id, keyring, view,
};
use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use serde_json::value::RawValue;

const API_ROOT: &str = "root";
const HOST: &str = "host";
const COLL: &str = "6f0d6b2e-3c1a-4c5e-9a55-1b7f3c2d9e10";
const TLP2_GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const V1: &str = "2026-01-01T00:00:00.000Z";
const V2: &str = "2026-01-02T00:00:00.000Z";

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn ago(d: SignedDuration) -> Timestamp {
    Timestamp::now().checked_sub(d).expect("a time in the past")
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

// ---------------------------------------------------------------------
// Nodes, keyrings, agreements
// ---------------------------------------------------------------------

/// A node as everyone knows it: recovery key, node key (enrolled an hour
/// ago) and the keyring built from its enrollment.
struct Node {
    name: String,
    recovery: SigningKey,
    key: SigningKey,
    ring: Keyring,
}

impl Node {
    fn new(name: &str) -> Node {
        let recovery = key();
        let key = key();
        let statement = keyring::enroll(&recovery, &key, ago(hours(1))).expect("enroll");
        let mut ring = Keyring::new(recovery.verifying_key());
        ring.apply(&statement).expect("apply enrollment");
        Node {
            name: name.into(),
            recovery,
            key,
            ring,
        }
    }

    fn id(&self) -> String {
        key_id(&self.recovery.verifying_key())
    }

    fn descriptor(&self) -> NodeDescriptor {
        let identity = json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": format!("identity--{}", uuid::Uuid::new_v4()),
            "created": "2026-01-01T00:00:00.000Z",
            "modified": "2026-01-01T00:00:00.000Z",
            "name": format!("{} CERT", self.name),
            "identity_class": "organization"
        });
        NodeDescriptor::new(
            &self.name,
            identity,
            &self.key.verifying_key(),
            &self.recovery.verifying_key(),
            &format!("https://{}.example/taxii2/", self.name),
            ago(hours(1)),
        )
    }
}

fn rings(nodes: &[&Node]) -> Keyrings {
    nodes.iter().map(|n| (n.id(), n.ring.clone())).collect()
}

/// An agreement between `parties` over the collection, up to TLP:AMBER,
/// signed by every party, valid from `from` to `until`.
fn agreement_between(
    parties: &[&Node],
    redistribution: Redistribution,
    from: Timestamp,
    until: Timestamp,
) -> Signed {
    let terms = Terms {
        title: "Ransomware indicators".into(),
        scope: Scope {
            collections: vec![COLL.into()],
            object_types: Vec::new(),
            max_tlp: Tlp::Amber,
            pap: Pap::Red,
        },
        redistribution,
        sightings: Sightings {
            send_to_originator: false,
            anonymized: false,
        },
        retention_after_termination: Retention::Delete,
        notice_period_days: 30,
        valid_from: from,
        valid_until: until,
    };
    let a = Agreement::draft(
        parties.iter().map(|n| n.descriptor()).collect(),
        terms,
        Timestamp::now(),
    )
    .expect("draft");
    let mut s = Signed::new(&a).expect("envelope");
    for n in parties {
        s.sign(&n.key);
    }
    s
}

/// An agreement in force now (valid since yesterday, for a year).
fn agreement(parties: &[&Node], redistribution: Redistribution) -> Signed {
    agreement_between(parties, redistribution, ago(days(1)), ago(days(-365)))
}

fn aref(a: &Signed) -> AgreementRef {
    let a: Agreement = a.parse().expect("agreement");
    AgreementRef {
        id: a.id,
        version: a.version,
    }
}

fn agreement_id(a: &Signed) -> String {
    aref(a).id
}

/// What a node trusts: fixed keyrings, and the agreements it holds,
/// evaluated when asked.
struct Trust {
    keyrings: Keyrings,
    agreements: Vec<Signed>,
}

impl Trust {
    fn view(&self) -> AgreementsInForce {
        let now = Timestamp::now();
        let found: Vec<InForce> = self
            .agreements
            .iter()
            .filter_map(|s| in_force(s, &self.keyrings, now, &[], &self.agreements).ok())
            .collect();
        view(&found, &self.keyrings, now)
    }
}

impl TrustSource for Trust {
    fn keyrings(&self) -> Result<Keyrings, String> {
        Ok(self.keyrings.clone())
    }

    fn in_force(&self) -> Result<AgreementsInForce, String> {
        Ok(self.view())
    }

    fn partners(&self) -> Result<Vec<(String, String, String)>, String> {
        Ok(Vec::new())
    }

    fn ended(&self) -> Result<Vec<Ended>, String> {
        Ok(Vec::new())
    }

    fn apply_notice(&self, _from: &str, _kind: &str, _doc: &Signed) -> Result<String, String> {
        Err("not used".into())
    }
}

impl AgreementSource for Trust {
    fn in_force(&self) -> Result<AgreementsInForce, String> {
        Ok(self.view())
    }
}

/// The audit events recorded.
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl AuditSink for Events {
    fn record(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Events {
    fn kinds(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind.as_str().to_string())
            .collect()
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

// ---------------------------------------------------------------------
// One node's local state
// ---------------------------------------------------------------------

struct Side {
    _dir: tempfile::TempDir,
    node_id: String,
    store: Arc<dyn Store>,
    db: Arc<FederationDb>,
    trust: Arc<Trust>,
    events: Arc<Events>,
}

impl Side {
    fn new(local: &Node, keyrings: Keyrings, agreements: Vec<Signed>) -> Side {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &dir.path().join("node.db"),
            SqliteOptions {
                synchronous: Synchronous::Normal,
                ..SqliteOptions::default()
            },
        )
        .unwrap();
        store
            .create_api_root(&ApiRoot {
                name: API_ROOT.into(),
                title: "Root".into(),
                description: None,
                max_content_length: 10_000_000,
            })
            .unwrap();
        store
            .create_org(&Organization {
                name: HOST.into(),
                title: "Host".into(),
            })
            .unwrap();
        let db = FederationDb::open(&dir.path().join("federation.db")).unwrap();
        Side {
            _dir: dir,
            node_id: local.id(),
            store: Arc::new(store),
            db: Arc::new(db),
            trust: Arc::new(Trust {
                keyrings,
                agreements,
            }),
            events: Arc::new(Events::default()),
        }
    }

    fn receiver(&self) -> Receiver {
        Receiver {
            store: self.store.clone(),
            db: self.db.clone(),
            trust: self.trust.clone(),
            audit: Some(self.events.clone()),
            local_node: self.node_id.clone(),
            api_root: API_ROOT.into(),
            host_org: HOST.into(),
            on_stored: Arc::new(|| {}),
        }
    }

    fn gate(&self) -> Gate {
        Gate::new(
            self.store.clone(),
            PolicyConfig {
                node_id: self.node_id.clone(),
                host_org: HOST.into(),
                unmarked: Tlp::AmberStrict,
            },
            self.trust.clone(),
        )
    }

    fn receive(&self, from: &Node, env: &Envelope) -> anyam_federation::Result<Received> {
        self.receiver().receive(
            &from.id(),
            &from.name,
            &RemoteCollection {
                id: COLL.into(),
                title: "Ransomware".into(),
            },
            env,
        )
    }

    /// Every version stored in the collection: (id, text).
    fn stored(&self) -> Vec<(String, String)> {
        let q = Query {
            versions: vec![VersionSel::All],
            limit: 1000,
            ..Query::default()
        };
        self.store
            .objects(COLL, &q)
            .unwrap()
            .items
            .into_iter()
            .map(|o| (o.id, o.raw))
            .collect()
    }

    /// Nothing of a refused page was kept: the collection is absent or
    /// holds none of `ids`, and no provenance row names them.
    fn assert_nothing_kept(&self, ids: &[String]) {
        if self.store.collection(API_ROOT, COLL).unwrap().is_some() {
            let stored = self.stored();
            for id in ids {
                assert!(
                    stored.iter().all(|(s, _)| s != id),
                    "{id} was stored: {stored:?}"
                );
            }
        }
        for id in ids {
            assert!(
                self.db.held(id).unwrap().is_empty(),
                "{id} has a provenance row"
            );
        }
    }

    /// Put objects into the collection as the host organization's own.
    fn put_own(&self, texts: &[String]) {
        if self.store.collection(API_ROOT, COLL).unwrap().is_none() {
            self.store
                .create_collection(&Collection {
                    id: COLL.into(),
                    api_root: API_ROOT.into(),
                    title: "Ransomware".into(),
                    description: None,
                    alias: None,
                })
                .unwrap();
        }
        let news: Vec<_> = texts
            .iter()
            .map(|t| anyam_taxii::ingest::prepare(t).unwrap_or_else(|e| panic!("{}", e.message)))
            .collect();
        for out in self.store.put_objects(COLL, &news).unwrap() {
            assert!(matches!(out, PutOutcome::Added(_)), "{out:?}");
        }
    }
}

// ---------------------------------------------------------------------
// Objects and pages
// ---------------------------------------------------------------------

fn id_of(n: u32) -> String {
    format!("indicator--00000000-0000-4000-8000-{n:012}")
}

/// A TLP:GREEN indicator, version `modified`.
fn indicator_at(n: u32, modified: &str, name: &str, pattern: &str) -> String {
    json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": id_of(n),
        "created": V1,
        "modified": modified,
        "name": name,
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
        "object_marking_refs": [TLP2_GREEN],
    })
    .to_string()
}

fn indicator(n: u32) -> String {
    indicator_at(
        n,
        V1,
        &format!("probe {n}"),
        "[ipv4-addr:value = '198.51.100.1']",
    )
}

/// A manifest of `publisher` under `agreement`, listing `entries`
/// (object text and origin), signed by `signer`.
fn signed_manifest(
    publisher: &str,
    agreement: &Signed,
    entries: &[(&str, Origin)],
    signer: &SigningKey,
) -> Signed {
    let mut m = Manifest::new(publisher, COLL, aref(agreement), Timestamp::now());
    for (text, origin) in entries {
        m.push(text, origin.clone()).expect("entry");
    }
    m.sign(signer).expect("sign manifest")
}

fn own(node: &Node, redistribution: Redistribution) -> Origin {
    Origin {
        node_id: node.id(),
        redistribution,
        manifest: None,
        proof: None,
    }
}

fn envelope(manifest: Signed, objects: &[String], originators: Vec<Signed>) -> Envelope {
    Envelope {
        more: false,
        next: None,
        objects: objects
            .iter()
            .map(|o| RawValue::from_string(o.clone()).unwrap())
            .collect(),
        x_anyam_provenance: manifest,
        x_anyam_originator_manifests: originators,
        x_anyam_date_added_last: Some(format_micros(Timestamp::now().as_microsecond())),
    }
}

/// A page of `publisher`'s own objects, all under the same terms, signed
/// by its key.
fn own_page(
    publisher: &Node,
    agreement: &Signed,
    redistribution: &Redistribution,
    objects: &[String],
) -> Envelope {
    let entries: Vec<(&str, Origin)> = objects
        .iter()
        .map(|o| (o.as_str(), own(publisher, redistribution.clone())))
        .collect();
    let m = signed_manifest(&publisher.id(), agreement, &entries, &publisher.key);
    envelope(m, objects, Vec::new())
}

/// The detail of a rejection; panics on anything else.
fn rejected(r: anyam_federation::Result<Received>) -> String {
    match r {
        Err(FederationError::Rejected { detail, .. }) => detail,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn ids(ns: &[u32]) -> Vec<String> {
    ns.iter().map(|n| id_of(*n)).collect()
}

// ---------------------------------------------------------------------
// 1. A valid page is stored, labelled with its origin
// ---------------------------------------------------------------------

#[test]
fn valid_page_is_stored_exactly_with_its_origin() {
    let (a, b, c) = (Node::new("a"), Node::new("b"), Node::new("c"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let bc = agreement(&[&b, &c], Redistribution::Parties);
    let side_b = Side::new(&b, rings(&[&a, &b, &c]), vec![ab.clone(), bc.clone()]);

    // Two GREEN objects: one A lets go to the parties of A–B only, one A
    // also names C for. Texts with unusual spacing, to check they are
    // kept as sent.
    let o1 = indicator(1).replace(",\"", ", \"");
    let o2 = indicator(2);
    let m = signed_manifest(
        &a.id(),
        &ab,
        &[
            (&o1, own(&a, Redistribution::Parties)),
            (
                &o2,
                own(
                    &a,
                    Redistribution::Named {
                        recipients: vec![c.id()],
                    },
                ),
            ),
        ],
        &a.key,
    );
    let (_, page_head) = manifest_head(&m).unwrap();
    let page_digest = page_head.digest();
    let env = envelope(m, &[o1.clone(), o2.clone()], Vec::new());
    let got = side_b.receive(&a, &env).expect("a valid page is accepted");
    assert_eq!(got.counts.received, 2);
    assert_eq!(got.counts.unchanged, 0);
    assert_eq!(got.counts.conflicts, 0);
    assert!(got.last.is_some());

    // The collection, with the same id, readable by the host organization.
    let coll = side_b
        .store
        .collection(API_ROOT, COLL)
        .unwrap()
        .expect("collection created");
    assert_eq!(coll.id, COLL);
    assert!(coll.title.contains("Ransomware"), "{}", coll.title);
    let grants = side_b.store.grants(Some(HOST)).unwrap();
    assert!(
        grants
            .iter()
            .any(|g| g.collection == COLL && g.access.read && !g.access.write),
        "{grants:?}"
    );

    // The objects exactly as sent.
    let mut stored = side_b.stored();
    stored.sort();
    assert_eq!(stored, vec![(id_of(1), o1), (id_of(2), o2)]);

    // Provenance rows: originator A, from A, under A–B.
    for id in ids(&[1, 2]) {
        let held = side_b.db.held(&id).unwrap();
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].originator, a.id());
        assert_eq!(held[0].from_node, a.id());
        assert_eq!(held[0].collection, COLL);
        assert_eq!(held[0].agreement, agreement_id(&ab));
        assert_eq!(held[0].version, V1);
        let p = side_b.db.provenance(&id, Some(V1)).unwrap().expect("prov");
        assert_eq!(p.manifest_digest, page_digest);
        // The head is kept, with the leaves of the whole manifest.
        assert_eq!(p.manifest, page_head);
        assert_eq!(p.place.expect("place").path, None);
    }
    let leaves = side_b
        .db
        .manifest_leaves(&page_digest)
        .unwrap()
        .expect("leaves");
    let entries = env.x_anyam_provenance.parse::<Manifest>().unwrap().entries;
    assert_eq!(leaves, ManifestTree::of_entries(&entries).unwrap().leaves());

    // The labels record the origin.
    let mut origins: Vec<anyam_policy::Origin> = side_b
        .store
        .release_classes(COLL)
        .unwrap()
        .iter()
        .map(|c| {
            Label::from_key(&c.label)
                .expect("label")
                .origin
                .expect("origin")
        })
        .collect();
    origins.sort_by_key(|o| format!("{:?}", o.redistribution));
    assert_eq!(origins.len(), 2, "{origins:?}");
    for o in &origins {
        assert_eq!(o.node_id, a.id());
        assert_eq!(o.agreement, agreement_id(&ab));
    }

    // B's release gate applies A's terms: C (a partner of B under an
    // agreement whose terms would let GREEN go) gets only the object A
    // named C for; A gets nothing back.
    let gate = side_b.gate();
    let q = Query {
        versions: vec![VersionSel::All],
        limit: 100,
        ..Query::default()
    };
    let to_c: Vec<String> = gate
        .partner_objects(&c.id(), COLL, &q, Path::Sync)
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(to_c, vec![id_of(2)]);
    let to_a = gate
        .partner_objects(&a.id(), COLL, &q, Path::Sync)
        .unwrap()
        .items;
    assert!(to_a.is_empty(), "{to_a:?}");

    let kinds = side_b.events.kinds();
    assert!(kinds.contains(&"receipt".to_string()), "{kinds:?}");
    assert!(!kinds.contains(&"rejection".to_string()), "{kinds:?}");
}

/// Pages verified one by one and committed together (as a pull does when
/// storing is the slower stage) are stored in one go, each object with
/// the manifest of its own page, each page with its own receipt, and the
/// cursor position is the last page's.
#[test]
fn pages_committed_together_keep_their_own_provenance_and_receipts() {
    let (a, b) = (Node::new("a"), Node::new("b"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let side_b = Side::new(&b, rings(&[&a, &b]), vec![ab.clone()]);
    let remote = RemoteCollection {
        id: COLL.into(),
        title: "Ransomware".into(),
    };
    let first = own_page(
        &a,
        &ab,
        &Redistribution::Parties,
        &[indicator(1), indicator(2)],
    );
    let mut second = own_page(&a, &ab, &Redistribution::Parties, &[indicator(3)]);
    let later = Timestamp::now().as_microsecond() + 5_000_000;
    second.x_anyam_date_added_last = Some(format_micros(later));
    let digests = [
        manifest_head(&first.x_anyam_provenance).unwrap().1.digest(),
        manifest_head(&second.x_anyam_provenance)
            .unwrap()
            .1
            .digest(),
    ];
    let rx = side_b.receiver();
    let pages = vec![
        rx.verify(&a.id(), &remote, first)
            .expect("first page verifies"),
        rx.verify(&a.id(), &remote, second)
            .expect("second page verifies"),
    ];
    assert!(
        side_b.events.kinds().is_empty(),
        "verifying records nothing"
    );
    let got = rx
        .commit(&a.id(), &a.name, &remote, pages)
        .expect("both pages are stored");
    assert_eq!(got.counts.received, 3);
    assert_eq!(got.last, Some(later));
    let mut stored: Vec<String> = side_b.stored().into_iter().map(|(id, _)| id).collect();
    stored.sort();
    assert_eq!(stored, ids(&[1, 2, 3]));
    for (n, digest) in [(1, &digests[0]), (2, &digests[0]), (3, &digests[1])] {
        let p = side_b
            .db
            .provenance(&id_of(n), Some(V1))
            .unwrap()
            .expect("provenance");
        assert_eq!(&p.manifest_digest, digest, "object {n}");
    }
    let receipts: Vec<usize> = side_b
        .events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind.as_str() == "receipt")
        .map(|e| e.what.objects.len())
        .collect();
    assert_eq!(receipts, vec![2, 1]);
}

/// The publisher's own page builder, behind its release gate, and the
/// receiver, end to end in process.
#[test]
fn page_built_by_the_publisher_is_received() {
    let (a, b) = (Node::new("a"), Node::new("b"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let all = rings(&[&a, &b]);
    let side_a = Side::new(&a, all.clone(), vec![ab.clone()]);
    let side_b = Side::new(&b, all, vec![ab.clone()]);

    let texts = vec![indicator(1), indicator(2)];
    side_a.put_own(&texts);
    let built = page::build(
        &side_a.gate(),
        &side_a.db,
        &a.key,
        &PageRequest {
            partner: &b.id(),
            collection: COLL,
            added_after: None,
            limit: 100,
            via: Path::Sync,
        },
    )
    .expect("page built");
    assert_eq!(built.agreement, aref(&ab));
    assert_eq!(built.released.len(), 2);
    assert_eq!(side_a.db.released_to(&id_of(1)).unwrap(), vec![b.id()]);

    // Through the wire format and back.
    let wire = serde_json::to_string(&built.envelope).unwrap();
    let env: Envelope = serde_json::from_str(&wire).unwrap();
    let got = side_b.receive(&a, &env).expect("accepted");
    assert_eq!(got.counts.received, 2);
    assert_eq!(got.last, built.last);
    let mut stored = side_b.stored();
    stored.sort();
    assert_eq!(
        stored,
        vec![(id_of(1), texts[0].clone()), (id_of(2), texts[1].clone())]
    );
    for id in ids(&[1, 2]) {
        let held = side_b.db.held(&id).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].originator, a.id());
    }
}

// ---------------------------------------------------------------------
// 2–4, 6, 7. Refusals of a direct page
// ---------------------------------------------------------------------

#[test]
fn one_changed_byte_rejects_the_page_naming_the_object() {
    let (a, b) = (Node::new("a"), Node::new("b"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let side_b = Side::new(&b, rings(&[&a, &b]), vec![ab.clone()]);

    let objects = vec![indicator(1), indicator(2)];
    let mut env = own_page(&a, &ab, &Redistribution::Parties, &objects);
    let altered = objects[1].replace("probe 2", "probe 3");
    assert_ne!(altered, objects[1]);
    env.objects[1] = RawValue::from_string(altered).unwrap();

    let detail = rejected(side_b.receive(&a, &env));
    assert!(detail.contains(&id_of(2)), "{detail}");
    assert!(!detail.contains(&id_of(1)), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1, 2]));
    assert!(side_b.store.collection(API_ROOT, COLL).unwrap().is_none());
    assert_eq!(side_b.events.kinds(), vec!["rejection"]);
    let status = side_b.db.statuses().unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].rejected, 1);
}

#[test]
fn manifest_not_signed_by_the_publisher_is_rejected() {
    let (a, b, c) = (Node::new("a"), Node::new("b"), Node::new("c"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let side_b = Side::new(&b, rings(&[&a, &b, &c]), vec![ab.clone()]);
    let objects = vec![indicator(1)];
    let entries = [(objects[0].as_str(), own(&a, Redistribution::Parties))];

    // A key nobody knows, claiming to be A.
    let stranger = key();
    let m = signed_manifest(&a.id(), &ab, &entries, &stranger);
    let detail = rejected(side_b.receive(&a, &envelope(m, &objects, Vec::new())));
    assert!(detail.contains("not a key of node"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1]));

    // C's key, claiming to be A.
    let m = signed_manifest(&a.id(), &ab, &entries, &c.key);
    let detail = rejected(side_b.receive(&a, &envelope(m, &objects, Vec::new())));
    assert!(
        detail.contains(&format!("signed by node {}", c.id())),
        "{detail}"
    );
    side_b.assert_nothing_kept(&ids(&[1]));

    // A's recovery key is not a node key either.
    let m = signed_manifest(&a.id(), &ab, &entries, &a.recovery);
    rejected(side_b.receive(&a, &envelope(m, &objects, Vec::new())));
    side_b.assert_nothing_kept(&ids(&[1]));

    // C's own manifest, handed over as A's page.
    let m = signed_manifest(
        &c.id(),
        &ab,
        &[(objects[0].as_str(), own(&c, Redistribution::Parties))],
        &c.key,
    );
    let detail = rejected(side_b.receive(&a, &envelope(m, &objects, Vec::new())));
    assert!(
        detail.contains(&format!("publisher {}", c.id())),
        "{detail}"
    );
    side_b.assert_nothing_kept(&ids(&[1]));
    assert!(side_b.store.collection(API_ROOT, COLL).unwrap().is_none());
    assert_eq!(side_b.events.kinds(), vec!["rejection"; 4]);
}

#[test]
fn page_outside_an_agreement_in_force_between_the_two_is_rejected() {
    let (a, b, c) = (Node::new("a"), Node::new("b"), Node::new("c"));
    let ac = agreement(&[&a, &c], Redistribution::Parties);
    let bc = agreement(&[&b, &c], Redistribution::Parties);
    let expired = agreement_between(
        &[&a, &b],
        Redistribution::Parties,
        ago(days(10)),
        ago(days(1)),
    );
    // B holds all three: A–C and B–C are in force, A–B has expired.
    let side_b = Side::new(
        &b,
        rings(&[&a, &b, &c]),
        vec![ac.clone(), bc.clone(), expired.clone()],
    );
    let in_force_here: Vec<String> = side_b
        .trust
        .view()
        .agreements
        .iter()
        .map(|v| v.id.clone())
        .collect();
    assert!(in_force_here.contains(&agreement_id(&ac)));
    assert!(in_force_here.contains(&agreement_id(&bc)));
    assert!(!in_force_here.contains(&agreement_id(&expired)));

    let objects = vec![indicator(1)];
    // A publishes to B under A–C: B is no party.
    let detail =
        rejected(side_b.receive(&a, &own_page(&a, &ac, &Redistribution::Parties, &objects)));
    assert!(detail.contains(&agreement_id(&ac)), "{detail}");
    assert!(detail.contains("not both parties"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1]));

    // A publishes to B under B–C: A is no party.
    let detail =
        rejected(side_b.receive(&a, &own_page(&a, &bc, &Redistribution::Parties, &objects)));
    assert!(detail.contains("not both parties"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1]));

    // A publishes to B under A–B, which has expired.
    let detail = rejected(side_b.receive(
        &a,
        &own_page(&a, &expired, &Redistribution::Parties, &objects),
    ));
    assert!(detail.contains(&agreement_id(&expired)), "{detail}");
    assert!(detail.contains("not in force"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1]));
    assert!(side_b.store.collection(API_ROOT, COLL).unwrap().is_none());
}

#[test]
fn manifest_listing_more_than_the_page_carries_is_rejected() {
    let (a, b) = (Node::new("a"), Node::new("b"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let side_b = Side::new(&b, rings(&[&a, &b]), vec![ab.clone()]);
    let (o1, o2) = (indicator(1), indicator(2));
    let m = signed_manifest(
        &a.id(),
        &ab,
        &[
            (&o1, own(&a, Redistribution::Parties)),
            (&o2, own(&a, Redistribution::Parties)),
        ],
        &a.key,
    );
    let detail = rejected(side_b.receive(&a, &envelope(m, &[o1], Vec::new())));
    assert!(detail.contains("does not carry"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1, 2]));
    assert!(side_b.store.collection(API_ROOT, COLL).unwrap().is_none());
}

#[test]
fn invalid_stix_rejects_the_whole_page() {
    let (a, b) = (Node::new("a"), Node::new("b"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let side_b = Side::new(&b, rings(&[&a, &b]), vec![ab.clone()]);
    let good = indicator(1);
    let bad = indicator_at(2, V1, "broken", "[ipv4-addr:value = ");
    assert!(anyam_taxii::ingest::prepare(&bad).is_err());
    let env = own_page(&a, &ab, &Redistribution::Parties, &[good, bad]);
    let detail = rejected(side_b.receive(&a, &env));
    assert!(detail.contains(&id_of(2)), "{detail}");
    assert!(detail.contains("invalid STIX"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1, 2]));
    assert!(side_b.store.collection(API_ROOT, COLL).unwrap().is_none());
}

// ---------------------------------------------------------------------
// 5. Relays
// ---------------------------------------------------------------------

/// What C receives from B when B relays an object A originated.
struct Relay {
    a: Node,
    b: Node,
    c: Node,
    /// The agreement A published under, and the one B publishes under.
    a_agreement: Signed,
    bc: Signed,
    object: String,
    /// A's signed manifest of the object.
    originator: Signed,
}

impl Relay {
    /// A publishes object 1 under `a_agreement` (A–B, or a group
    /// `group_with_c`) with terms `terms`.
    fn new(terms: Redistribution, group_with_c: bool) -> Relay {
        let (a, b, c) = (Node::new("a"), Node::new("b"), Node::new("c"));
        let a_agreement = if group_with_c {
            agreement(&[&a, &b, &c], Redistribution::Parties)
        } else {
            agreement(&[&a, &b], Redistribution::Parties)
        };
        let bc = agreement(&[&b, &c], Redistribution::Parties);
        let object = indicator(1);
        let originator =
            signed_manifest(&a.id(), &a_agreement, &[(&object, own(&a, terms))], &a.key);
        Relay {
            a,
            b,
            c,
            a_agreement,
            bc,
            object,
            originator,
        }
    }

    /// C's node: it holds B–C, and the group agreement when it is a party.
    fn side_c(&self, group_with_c: bool) -> Side {
        let mut held = vec![self.bc.clone()];
        if group_with_c {
            held.push(self.a_agreement.clone());
        }
        Side::new(&self.c, rings(&[&self.a, &self.b, &self.c]), held)
    }

    /// B's page to C: `object` with origin A, stated `terms`, referencing
    /// A's manifest (by its head) with the proof of its one entry, with
    /// `originators` attached.
    fn page(&self, object: &str, terms: Redistribution, originators: Vec<Signed>) -> Envelope {
        let entries = self.originator.parse::<Manifest>().unwrap().entries;
        let origin = Origin {
            node_id: self.a.id(),
            redistribution: terms,
            manifest: Some(manifest_head(&self.originator).unwrap().1.digest()),
            proof: Some(
                ManifestTree::of_entries(&entries)
                    .unwrap()
                    .proof(0, &entries[0].salt)
                    .unwrap(),
            ),
        };
        let m = signed_manifest(&self.b.id(), &self.bc, &[(object, origin)], &self.b.key);
        envelope(m, &[object.to_string()], originators)
    }
}

#[test]
fn relay_with_named_recipient_is_accepted() {
    // A names C among the recipients of an object it shares with B.
    let (a, b, c) = (Node::new("a"), Node::new("b"), Node::new("c"));
    let named = Redistribution::Named {
        recipients: vec![c.id()],
    };
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let bc = agreement(&[&b, &c], Redistribution::Parties);
    let object = indicator(1);
    let originator = signed_manifest(&a.id(), &ab, &[(&object, own(&a, named.clone()))], &a.key);
    let r = Relay {
        a,
        b,
        c,
        a_agreement: ab,
        bc,
        object,
        originator,
    };
    let side_c = r.side_c(false);
    let env = r.page(&r.object, named.clone(), vec![r.originator.clone()]);
    let got = side_c.receive(&r.b, &env).expect("relay accepted");
    assert_eq!(got.counts.received, 1);
    assert_eq!(side_c.stored(), vec![(id_of(1), r.object.clone())]);
    let held = side_c.db.held(&id_of(1)).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].originator, r.a.id());
    assert_eq!(held[0].from_node, r.b.id());
    assert_eq!(held[0].agreement, agreement_id(&r.bc));
    // The head of A's manifest is kept, to be passed on with the object,
    // and the object's place in it.
    let (_, head) = manifest_head(&r.originator).unwrap();
    let p = side_c.db.provenance(&id_of(1), Some(V1)).unwrap().unwrap();
    assert_eq!(p.manifest, head);
    assert_eq!(p.manifest_digest, head.digest());
    let place = p.place.expect("place");
    assert_eq!((place.terms, place.position), (named.clone(), 0));
    assert!(place.path.is_some());
    // The label names A and A's own agreement and terms.
    let labels = side_c.store.release_classes(COLL).unwrap();
    assert_eq!(labels.len(), 1);
    let origin = Label::from_key(&labels[0].label).unwrap().origin.unwrap();
    assert_eq!(origin.node_id, r.a.id());
    assert_eq!(origin.redistribution, named);
    assert_eq!(origin.agreement, agreement_id(&r.a_agreement));
}

#[test]
fn relay_to_a_party_of_the_originators_group_is_accepted() {
    let r = Relay::new(Redistribution::Parties, true);
    let side_c = r.side_c(true);
    let env = r.page(
        &r.object,
        Redistribution::Parties,
        vec![r.originator.clone()],
    );
    let got = side_c.receive(&r.b, &env).expect("relay accepted");
    assert_eq!(got.counts.received, 1);
    assert_eq!(side_c.stored(), vec![(id_of(1), r.object.clone())]);
    let held = side_c.db.held(&id_of(1)).unwrap();
    assert_eq!(held[0].originator, r.a.id());
}

#[test]
fn relay_refusals() {
    // A's terms: the parties of A–B only; C is not one.
    let r = Relay::new(Redistribution::Parties, false);
    let side_c = r.side_c(false);
    let detail = rejected(side_c.receive(
        &r.b,
        &r.page(
            &r.object,
            Redistribution::Parties,
            vec![r.originator.clone()],
        ),
    ));
    assert!(detail.contains("does not allow"), "{detail}");
    side_c.assert_nothing_kept(&ids(&[1]));

    // Without A's manifest (terms that would allow C otherwise).
    let r = Relay::new(Redistribution::Parties, true);
    let side_c = r.side_c(true);
    let detail = rejected(side_c.receive(
        &r.b,
        &r.page(&r.object, Redistribution::Parties, Vec::new()),
    ));
    assert!(detail.contains(&id_of(1)), "{detail}");
    assert!(detail.contains("originator's manifest"), "{detail}");
    side_c.assert_nothing_kept(&ids(&[1]));
    assert!(side_c.store.collection(API_ROOT, COLL).unwrap().is_none());

    // B states other terms than A signed (A: the parties of A–B; B
    // claims A named C).
    let r = Relay::new(Redistribution::Parties, false);
    let side_c = r.side_c(false);
    let claimed = Redistribution::Named {
        recipients: vec![r.c.id()],
    };
    let detail = rejected(side_c.receive(
        &r.b,
        &r.page(&r.object, claimed, vec![r.originator.clone()]),
    ));
    assert!(detail.contains(&id_of(1)), "{detail}");
    assert!(detail.contains("does not list it as its own"), "{detail}");
    side_c.assert_nothing_kept(&ids(&[1]));
    assert!(side_c.store.collection(API_ROOT, COLL).unwrap().is_none());

    // A's terms are `none`, even within a group C belongs to.
    let r = Relay::new(Redistribution::None, true);
    let side_c = r.side_c(true);
    let detail = rejected(side_c.receive(
        &r.b,
        &r.page(&r.object, Redistribution::None, vec![r.originator.clone()]),
    ));
    assert!(detail.contains("does not allow"), "{detail}");
    side_c.assert_nothing_kept(&ids(&[1]));
    assert!(side_c.store.collection(API_ROOT, COLL).unwrap().is_none());

    // B changed the object (and signed its own manifest over the change).
    let r = Relay::new(Redistribution::Parties, true);
    let side_c = r.side_c(true);
    let changed = r.object.replace("probe 1", "probe 9");
    let detail = rejected(side_c.receive(
        &r.b,
        &r.page(
            &changed,
            Redistribution::Parties,
            vec![r.originator.clone()],
        ),
    ));
    assert!(detail.contains(&id_of(1)), "{detail}");
    assert!(detail.contains("does not list it as its own"), "{detail}");
    side_c.assert_nothing_kept(&ids(&[1]));
    assert!(side_c.store.collection(API_ROOT, COLL).unwrap().is_none());
    assert_eq!(side_c.events.kinds(), vec!["rejection"]);
}

/// B receives from A, then B's own page builder relays to C with A's
/// manifest; C accepts when A named it.
#[test]
fn relay_built_by_the_relaying_node_is_accepted() {
    let (a, b, c) = (Node::new("a"), Node::new("b"), Node::new("c"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let bc = agreement(&[&b, &c], Redistribution::Parties);
    let all = rings(&[&a, &b, &c]);
    let side_b = Side::new(&b, all.clone(), vec![ab.clone(), bc.clone()]);
    let side_c = Side::new(&c, all, vec![bc.clone()]);
    let named = Redistribution::Named {
        recipients: vec![c.id()],
    };
    let (o1, o2) = (indicator(1), indicator(2));
    let m = signed_manifest(
        &a.id(),
        &ab,
        &[
            (&o1, own(&a, named.clone())),
            (&o2, own(&a, Redistribution::Parties)),
        ],
        &a.key,
    );
    let from_a = envelope(m.clone(), &[o1.clone(), o2.clone()], Vec::new());
    side_b.receive(&a, &from_a).expect("B accepts A's page");

    let built = page::build(
        &side_b.gate(),
        &side_b.db,
        &b.key,
        &PageRequest {
            partner: &c.id(),
            collection: COLL,
            added_after: None,
            limit: 100,
            via: Path::Sync,
        },
    )
    .expect("B's page for C");
    // Only what A allows C to have, with the head of A's manifest: nothing
    // of the other object A sent B is in the page.
    assert_eq!(built.released, vec![(id_of(1), V1.to_string())]);
    let (_, head) = manifest_head(&m).unwrap();
    assert_eq!(built.envelope.x_anyam_originator_manifests, vec![head]);
    let text = serde_json::to_string(&built.envelope).unwrap();
    let o2_value: serde_json::Value = serde_json::from_str(&o2).unwrap();
    let o2_digest = hex::encode(anyam_stix::canonical_digest(&o2_value));
    assert!(!text.contains(&id_of(2)), "{text}");
    assert!(!text.contains(&o2_digest), "{text}");
    let got = side_c.receive(&b, &built.envelope).expect("C accepts");
    assert_eq!(got.counts.received, 1);
    assert_eq!(side_c.stored(), vec![(id_of(1), o1)]);
    assert_eq!(side_c.db.held(&id_of(1)).unwrap()[0].originator, a.id());
    assert!(side_c.db.held(&id_of(2)).unwrap().is_empty());
}

// ---------------------------------------------------------------------
// 8. Idempotence and conflicts
// ---------------------------------------------------------------------

#[test]
fn the_same_page_twice_stores_nothing_new_and_conflicts_keep_the_stored() {
    let (a, b) = (Node::new("a"), Node::new("b"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let side_b = Side::new(&b, rings(&[&a, &b]), vec![ab.clone()]);
    let objects = vec![indicator(1), indicator(2)];
    let env = own_page(&a, &ab, &Redistribution::Parties, &objects);

    let first = side_b.receive(&a, &env).expect("first");
    assert_eq!(first.counts.received, 2);
    let second = side_b.receive(&a, &env).expect("second");
    assert_eq!(second.counts.received, 0);
    assert_eq!(second.counts.unchanged, 2);
    assert_eq!(second.counts.conflicts, 0);
    assert_eq!(side_b.store.count_objects(COLL).unwrap(), 2);
    for id in ids(&[1, 2]) {
        assert_eq!(side_b.db.held(&id).unwrap().len(), 1);
    }

    // Another object under the same id and version, correctly signed.
    let other = indicator_at(
        1,
        V1,
        "probe 1 (edited)",
        "[ipv4-addr:value = '198.51.100.2']",
    );
    side_b.events.clear();
    let env = own_page(
        &a,
        &ab,
        &Redistribution::Parties,
        std::slice::from_ref(&other),
    );
    let third = side_b
        .receive(&a, &env)
        .expect("a conflict is not a rejection");
    assert_eq!(third.counts.received, 0);
    assert_eq!(third.counts.unchanged, 0);
    assert_eq!(third.counts.conflicts, 1);
    assert_eq!(side_b.store.count_objects(COLL).unwrap(), 2);
    let stored = side_b.stored();
    let one: Vec<&String> = stored
        .iter()
        .filter(|(id, _)| *id == id_of(1))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(one, vec![&objects[0]]);
    assert_eq!(side_b.db.held(&id_of(1)).unwrap().len(), 1);
    assert_eq!(side_b.events.kinds(), vec!["conflict"]);
    let status = side_b.db.statuses().unwrap();
    assert!(
        status[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("conflict")),
        "{status:?}"
    );
}

// ---------------------------------------------------------------------
// 9. Tombstones
// ---------------------------------------------------------------------

#[test]
fn tombstones_delete_what_the_originator_deletes_and_nothing_else() {
    let (a, b, c) = (Node::new("a"), Node::new("b"), Node::new("c"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let all = rings(&[&a, &b, &c]);
    let side_a = Side::new(&a, all.clone(), vec![ab.clone()]);
    let side_b = Side::new(&b, all, vec![ab.clone()]);

    // Object 1 in two versions, object 2 in one, sent by A to B.
    let o1v1 = indicator(1);
    let o1v2 = indicator_at(1, V2, "probe 1", "[ipv4-addr:value = '198.51.100.1']");
    let o2 = indicator(2);
    let objects = vec![o1v1.clone(), o1v2.clone(), o2.clone()];
    side_b
        .receive(&a, &own_page(&a, &ab, &Redistribution::Parties, &objects))
        .expect("accepted");
    assert_eq!(side_b.db.held(&id_of(1)).unwrap().len(), 2);
    side_a
        .db
        .record_released(&b.id(), &[&id_of(1), &id_of(2)])
        .unwrap();
    // B passed object 1 on to C.
    side_b.db.record_released(&c.id(), &[&id_of(1)]).unwrap();
    side_b.events.clear();

    // A deletes version V1 of object 1: a tombstone is queued for B.
    let v1 = [V1.to_string()];
    let n = on_local_delete(
        &side_a.db,
        &a.key,
        &a.id(),
        &LocalDeletion {
            object_id: &id_of(1),
            versions: &v1,
            all: false,
            user: "h1",
        },
    )
    .unwrap();
    assert_eq!(n, 1);
    let notices = side_a.db.notices_for(&b.id(), 0, 10).unwrap();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].kind, "tombstone");
    let t: Tombstone = notices[0].document.parse().unwrap();
    assert_eq!(t.node_id, a.id());
    assert_eq!(t.versions, Versions::Listed(v1.to_vec()));

    side_b
        .receiver()
        .apply_notice(&a.id(), "tombstone", &notices[0].document, &[])
        .unwrap();
    let stored = side_b.stored();
    assert!(!stored.contains(&(id_of(1), o1v1.clone())), "{stored:?}");
    assert!(stored.contains(&(id_of(1), o1v2.clone())), "{stored:?}");
    let held = side_b.db.held(&id_of(1)).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].version, V2);
    assert_eq!(side_b.events.kinds(), vec!["deletion"]);
    // Passed on to C, to whom B relayed it.
    let for_c = side_b.db.notices_for(&c.id(), 0, 10).unwrap();
    assert_eq!(for_c.len(), 1);
    assert_eq!(for_c[0].document, notices[0].document);

    // C signs a tombstone of object 2, which A originated: refused.
    side_b.events.clear();
    let forged = Tombstone::new(
        &c.id(),
        &id_of(2),
        Versions::All,
        "not mine to delete",
        Timestamp::now(),
    )
    .sign(&c.key)
    .unwrap();
    side_b
        .receiver()
        .apply_notice(&c.id(), "tombstone", &forged, &[])
        .expect("a refused notice is audited, not an error");
    assert_eq!(side_b.events.kinds(), vec!["rejection"]);
    assert!(side_b.stored().contains(&(id_of(2), o2.clone())));
    assert_eq!(side_b.db.held(&id_of(2)).unwrap().len(), 1);

    // The same forgery relayed by A (C's signature, A's channel): refused.
    side_b.events.clear();
    side_b
        .receiver()
        .apply_notice(&a.id(), "tombstone", &forged, &[])
        .unwrap();
    assert_eq!(side_b.events.kinds(), vec!["rejection"]);
    assert_eq!(side_b.db.held(&id_of(2)).unwrap().len(), 1);

    // A tombstone claiming A but signed by C's key: refused.
    side_b.events.clear();
    let claimed = Tombstone::new(
        &a.id(),
        &id_of(2),
        Versions::All,
        "forged",
        Timestamp::now(),
    )
    .sign(&c.key)
    .unwrap();
    side_b
        .receiver()
        .apply_notice(&a.id(), "tombstone", &claimed, &[])
        .unwrap();
    assert_eq!(side_b.events.kinds(), vec!["rejection"]);
    assert_eq!(side_b.db.held(&id_of(2)).unwrap().len(), 1);

    // B deleting a received object locally sends no tombstone.
    let none = on_local_delete(
        &side_b.db,
        &b.key,
        &b.id(),
        &LocalDeletion {
            object_id: &id_of(2),
            versions: &[],
            all: true,
            user: "h1",
        },
    )
    .unwrap();
    assert_eq!(none, 0);

    // A deletes every version of both objects.
    side_b.events.clear();
    for n in [1, 2] {
        assert_eq!(
            on_local_delete(
                &side_a.db,
                &a.key,
                &a.id(),
                &LocalDeletion {
                    object_id: &id_of(n),
                    versions: &[],
                    all: true,
                    user: "h1",
                },
            )
            .unwrap(),
            1
        );
    }
    let notices = side_a.db.notices_for(&b.id(), 0, 10).unwrap();
    assert_eq!(notices.len(), 3);
    for notice in &notices[1..] {
        side_b
            .receiver()
            .apply_notice(&a.id(), &notice.kind, &notice.document, &[])
            .unwrap();
    }
    assert_eq!(side_b.events.kinds(), vec!["deletion", "deletion"]);
    assert!(side_b.stored().is_empty());
    assert!(side_b.db.held(&id_of(1)).unwrap().is_empty());
    assert!(side_b.db.held(&id_of(2)).unwrap().is_empty());
}

// ---------------------------------------------------------------------
// Further refusals of a page's framing
// ---------------------------------------------------------------------

#[test]
fn page_framing_refusals() {
    let (a, b) = (Node::new("a"), Node::new("b"));
    let ab = agreement(&[&a, &b], Redistribution::Parties);
    let side_b = Side::new(&b, rings(&[&a, &b]), vec![ab.clone()]);
    let objects = vec![indicator(1)];

    // The manifest is for another collection than the one asked.
    let mut m = Manifest::new(&a.id(), "another", aref(&ab), Timestamp::now());
    m.push_own(&objects[0], Redistribution::Parties).unwrap();
    let env = envelope(m.sign(&a.key).unwrap(), &objects, Vec::new());
    let detail = rejected(side_b.receive(&a, &env));
    assert!(detail.contains("another"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1]));

    // No x_anyam_date_added_last on a page with objects.
    let mut env = own_page(&a, &ab, &Redistribution::Parties, &objects);
    env.x_anyam_date_added_last = None;
    let detail = rejected(side_b.receive(&a, &env));
    assert!(detail.contains("x_anyam_date_added_last"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1]));

    // A manifest dated an hour ahead.
    let mut m = Manifest::new(&a.id(), COLL, aref(&ab), ago(hours(-1)));
    m.push_own(&objects[0], Redistribution::Parties).unwrap();
    let env = envelope(m.sign(&a.key).unwrap(), &objects, Vec::new());
    let detail = rejected(side_b.receive(&a, &env));
    assert!(detail.contains("later than now allows"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1]));

    // The same object given twice.
    let twice = vec![objects[0].clone(), objects[0].clone()];
    let m = signed_manifest(
        &a.id(),
        &ab,
        &[(&objects[0], own(&a, Redistribution::Parties))],
        &a.key,
    );
    let detail = rejected(side_b.receive(&a, &envelope(m, &twice, Vec::new())));
    assert!(detail.contains("given twice"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1]));

    // An object the manifest does not list.
    let extra = vec![objects[0].clone(), indicator(2)];
    let m = signed_manifest(
        &a.id(),
        &ab,
        &[(&objects[0], own(&a, Redistribution::Parties))],
        &a.key,
    );
    let detail = rejected(side_b.receive(&a, &envelope(m, &extra, Vec::new())));
    assert!(detail.contains(&id_of(2)), "{detail}");
    assert!(detail.contains("unsigned"), "{detail}");
    side_b.assert_nothing_kept(&ids(&[1, 2]));
    assert!(side_b.store.collection(API_ROOT, COLL).unwrap().is_none());

    // Every refusal is audited as a rejection naming the partner and why.
    let events = side_b.events.0.lock().unwrap();
    assert_eq!(events.len(), 5);
    for e in events.iter() {
        assert_eq!(e.kind.as_str(), "rejection");
        assert_eq!(e.parties, vec![a.id()]);
        assert_eq!(e.what.collection.as_deref(), Some(COLL));
        assert!(e.details["error"].as_str().is_some_and(|s| !s.is_empty()));
    }
    drop(events);
    assert_eq!(side_b.db.statuses().unwrap()[0].rejected, 5);
}
