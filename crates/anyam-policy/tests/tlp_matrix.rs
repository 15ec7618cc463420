//! Table tests of the release decision through the `Gate` and a real store:
//! who receives a version, by its markings and its source, for local users
//! and partner nodes. The expectations are written out from the rules in
//! the documentation of `anyam_policy::decision`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use anyam_policy::{
    ACCEPTED_MARKINGS_KEY, AgreementSource, Denied, Gate, Origin, Path, PolicyConfig, Principal,
};
use anyam_store::{
    Access, ApiRoot, Collection, Grant, Organization, PutOutcome, Query, SqliteOptions,
    SqliteStore, Store, Synchronous, TokenScope, User, VersionSel,
};
use anyam_trust::{
    AgreementView, AgreementsInForce, Pap, PartyView, Redistribution, Retention, Scope, Sightings,
    Tlp,
};
use serde_json::{Value, json};

const NODE: &str = "node-self";
const HOST: &str = "host";
const ROOT: &str = "root";
/// Every organization reads it; acme may also write.
const C: &str = "11111111-1111-4111-8111-111111111111";
/// beta holds no grant on it.
const D: &str = "22222222-2222-4222-8222-222222222222";

const TLP2_CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
const TLP2_GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const TLP2_AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const TLP2_AMBER_STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
const TLP2_RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const TLP1_WHITE: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
const TLP1_GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
const TLP1_AMBER: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
const TLP1_RED: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";
const OPENCTI_AMBER_STRICT: &str = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37";
const PAP_RED: &str = "marking-definition--740d36e5-7714-4c30-961a-3ae632ceee0e";
const PAP_AMBER: &str = "marking-definition--60f8932b-e51e-4458-b265-a2e8be9a80ab";
const TLP2_EXT: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";
const RECIPIENTS_EXT: &str = "extension-definition--4e0cee20-b640-4553-9aad-1c16c0c90a79";
/// A marking definition of someone's own, named "TLP:CLEAR".
const SPOOF: &str = "marking-definition--5b0f5b0f-5b0f-4b0f-8b0f-5b0f5b0f5b0f";
const UNKNOWN: &str = "marking-definition--0d0e0a0d-0000-4000-8000-00000000000a";

/// Local users: (name, organization).
const USERS: [(&str, &str); 5] = [
    ("h1", HOST),
    ("h2", HOST),
    ("a1", "acme"),
    ("a2", "acme"),
    ("b1", "beta"),
];
/// Partner nodes: one under an agreement admitting every level, one under
/// an agreement up to GREEN, one without any agreement.
const P_RED: &str = "partner-red";
const P_GREEN: &str = "partner-green";
const P_NONE: &str = "partner-none";
const PARTNERS: [&str; 3] = [P_RED, P_GREEN, P_NONE];

struct Fixed(AgreementsInForce);

impl AgreementSource for Fixed {
    fn in_force(&self) -> Result<AgreementsInForce, String> {
        Ok(self.0.clone())
    }
}

fn agreement(n: usize, parties: &[&str], scope: Scope) -> AgreementView {
    AgreementView {
        id: format!("agreement--00000000-0000-4000-8000-{n:012}"),
        version: 1,
        digest: format!("digest-{n}"),
        title: format!("Agreement {n}"),
        sharing_group: parties.len() > 2,
        parties: parties
            .iter()
            .map(|p| PartyView {
                node_id: (*p).into(),
                node_name: (*p).into(),
                identity_id: "identity--00000000-0000-4000-8000-000000000001".into(),
                key_ids: vec![(*p).into()],
                taxii_url: format!("https://{p}.example/taxii2/"),
            })
            .collect(),
        scope,
        redistribution: Redistribution::Parties,
        sightings: Sightings {
            send_to_originator: false,
            anonymized: false,
        },
        retention_after_termination: Retention::Delete,
        notice_period_days: 30,
        valid_from: "2024-01-01T00:00:00Z".into(),
        valid_until: "2099-01-01T00:00:00Z".into(),
        terminating_at: None,
    }
}

fn any_scope(max_tlp: Tlp, pap: Pap) -> Scope {
    Scope {
        collections: Vec::new(),
        object_types: Vec::new(),
        max_tlp,
        pap,
    }
}

/// The usual agreements: P_RED up to RED, P_GREEN up to GREEN.
fn usual_agreements() -> Vec<AgreementView> {
    vec![
        agreement(1, &[NODE, P_RED], any_scope(Tlp::Red, Pap::Red)),
        agreement(2, &[NODE, P_GREEN], any_scope(Tlp::Green, Pap::Red)),
    ]
}

struct Fx {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    gate: Gate,
    n: usize,
}

fn fx_with(unmarked: Tlp, agreements: Vec<AgreementView>) -> Fx {
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
            name: ROOT.into(),
            title: "Root".into(),
            description: None,
            max_content_length: 10_000_000,
        })
        .unwrap();
    for c in [C, D] {
        store
            .create_collection(&Collection {
                id: c.into(),
                api_root: ROOT.into(),
                title: c.into(),
                description: None,
                alias: None,
            })
            .unwrap();
    }
    for o in [HOST, "acme", "beta"] {
        store
            .create_org(&Organization {
                name: o.into(),
                title: o.into(),
            })
            .unwrap();
    }
    for (name, org) in USERS {
        store
            .create_user(&User {
                name: name.into(),
                org: org.into(),
                password_phc: None,
                is_admin: false,
                generation: 0,
                disabled: false,
            })
            .unwrap();
    }
    let r = Access {
        read: true,
        write: false,
    };
    let rw = Access {
        read: true,
        write: true,
    };
    for (org, c, access) in [
        (HOST, C, r),
        ("acme", C, rw),
        ("beta", C, r),
        (HOST, D, r),
        ("acme", D, r),
    ] {
        store
            .set_grant(&Grant {
                org: org.into(),
                collection: c.into(),
                access,
            })
            .unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(store);
    let gate = Gate::new(
        store.clone(),
        PolicyConfig {
            node_id: NODE.into(),
            host_org: HOST.into(),
            unmarked,
        },
        Arc::new(Fixed(AgreementsInForce {
            schema_version: 1,
            evaluated_at: "2025-01-01T00:00:00Z".into(),
            agreements,
        })),
    );
    Fx {
        _dir: dir,
        store,
        gate,
        n: 0,
    }
}

fn fx() -> Fx {
    fx_with(Tlp::AmberStrict, usual_agreements())
}

fn principal(user: &str, scope: TokenScope) -> Principal {
    let org = USERS.iter().find(|(u, _)| *u == user).unwrap().1;
    Principal {
        user: user.into(),
        org: org.into(),
        is_admin: false,
        scope,
    }
}

/// An indicator with these object-level markings.
fn indicator(refs: &[&str]) -> Value {
    let mut o = json!({
        "type": "indicator", "spec_version": "2.1",
        "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
        "name": "probe", "pattern": "[ipv4-addr:value = '198.51.100.1']",
        "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z",
    });
    if !refs.is_empty() {
        o["object_marking_refs"] = json!(refs);
    }
    o
}

fn with_granular(mut o: Value, refs: &[&str]) -> Value {
    let g: Vec<Value> = refs
        .iter()
        .map(|r| json!({"marking_ref": r, "selectors": ["name"]}))
        .collect();
    o["granular_markings"] = json!(g);
    o
}

fn with_recipients(mut o: Value, recipients: &[(&str, &str)]) -> Value {
    let list: Vec<Value> = recipients
        .iter()
        .map(|(n, u)| json!({"node_id": n, "user": u}))
        .collect();
    o["extensions"] = json!({RECIPIENTS_EXT: {
        "extension_type": "property-extension", "recipients": list
    }});
    o
}

impl Fx {
    /// Store `o` (given a fresh id unless it has one) in `collection`, as
    /// submitted by `user` (`None`: the operator); the source is what the
    /// `Gate` gives a write by that user. Returns the id.
    fn post_in(&mut self, collection: &str, mut o: Value, user: Option<&str>) -> String {
        self.n += 1;
        if o.get("id").is_none() {
            let ty = o["type"].as_str().unwrap().to_string();
            o["id"] = json!(format!("{ty}--00000000-0000-4000-8000-{:012}", self.n));
        }
        let (org, user) = match user {
            None => (None, None),
            Some(u) => {
                let (org, user) = self.gate.source_of(&principal(u, TokenScope::Full));
                (org, user)
            }
        };
        let new =
            anyam_taxii::ingest::prepare_from(&o.to_string(), org.as_deref(), user.as_deref())
                .unwrap_or_else(|e| panic!("{}", e.message));
        let out = self.store.put_objects(collection, &[new]).unwrap();
        assert!(matches!(out[0], PutOutcome::Added(_)), "{out:?}");
        o["id"].as_str().unwrap().to_string()
    }

    fn post(&mut self, o: Value, user: Option<&str>) -> String {
        self.post_in(C, o, user)
    }

    /// Store a version with a source named explicitly (org, user).
    fn post_as(&mut self, mut o: Value, org: Option<&str>, user: Option<&str>) -> String {
        self.n += 1;
        let ty = o["type"].as_str().unwrap().to_string();
        o["id"] = json!(format!("{ty}--00000000-0000-4000-8000-{:012}", self.n));
        let new = anyam_taxii::ingest::prepare_from(&o.to_string(), org, user).unwrap();
        self.store.put_objects(C, &[new]).unwrap();
        o["id"].as_str().unwrap().to_string()
    }

    /// Store `o` (given a fresh id) in C as the partner sync stores a
    /// version received from a partner: labelled with its originator and
    /// the originator's terms. Returns the id.
    fn post_received(&mut self, mut o: Value, origin: Origin) -> String {
        self.n += 1;
        let ty = o["type"].as_str().unwrap().to_string();
        o["id"] = json!(format!("{ty}--00000000-0000-4000-8000-{:012}", self.n));
        let mut new = anyam_taxii::ingest::prepare_value(&o, o.to_string())
            .unwrap_or_else(|e| panic!("{}", e.message));
        new.release_label = anyam_policy::label_of(&o).received(origin).key();
        let out = self.store.put_objects(C, &[new]).unwrap();
        assert!(matches!(out[0], PutOutcome::Added(_)), "{out:?}");
        o["id"].as_str().unwrap().to_string()
    }

    fn accept(&self, accepted: Value) {
        self.store
            .set_meta(ACCEPTED_MARKINGS_KEY, &accepted.to_string())
            .unwrap();
    }

    /// Everyone (local users with full tokens, partner nodes) who receives
    /// object `id` of `collection`, checked on every read path: objects by
    /// id, the objects page, the manifest, the versions endpoint (and for
    /// partners their objects and manifest). The paths must agree.
    fn readers_in(&self, collection: &str, id: &str) -> BTreeSet<String> {
        let q = |ids: &[&str]| Query {
            ids: ids.iter().map(|s| (*s).to_string()).collect(),
            versions: vec![VersionSel::All],
            limit: 1000,
            ..Query::default()
        };
        let mut out = BTreeSet::new();
        for (user, _) in USERS {
            let p = principal(user, TokenScope::Full);
            let g = &self.gate;
            let answers = [
                g.objects(&p, ROOT, collection, &q(&[id]))
                    .map(|pg| pg.items.iter().any(|o| o.id == id)),
                g.objects(&p, ROOT, collection, &q(&[]))
                    .map(|pg| pg.items.iter().any(|o| o.id == id)),
                g.manifest(&p, ROOT, collection, &q(&[]))
                    .map(|pg| pg.items.iter().any(|o| o.id == id)),
                g.versions(&p, ROOT, collection, id, &q(&[]))
                    .map(|pg| !pg.items.is_empty()),
            ]
            .map(|r| match r {
                Ok(seen) => seen,
                // No read right: the collection does not exist for it.
                Err(Denied::NotFound) => false,
                Err(e) => panic!("{user}: {e}"),
            });
            assert!(
                answers.iter().all(|a| *a == answers[0]),
                "{user}: the read paths disagree on {id}: {answers:?}"
            );
            if answers[0] {
                out.insert(user.to_string());
            }
        }
        for node in PARTNERS {
            let g = &self.gate;
            let answers = [
                // A collection outside every agreement is not found.
                g.partner_objects(node, collection, &q(&[id]), Path::Sync)
                    .is_ok_and(|p| p.items.iter().any(|o| o.id == id)),
                g.partner_objects(node, collection, &q(&[]), Path::Stream)
                    .is_ok_and(|p| p.items.iter().any(|o| o.id == id)),
                g.partner_manifest(node, collection, &q(&[]), Path::Sync)
                    .is_ok_and(|p| p.items.iter().any(|o| o.id == id)),
            ];
            assert!(
                answers.iter().all(|a| *a == answers[0]),
                "{node}: the read paths disagree on {id}: {answers:?}"
            );
            if answers[0] {
                out.insert(node.to_string());
            }
        }
        out
    }

    fn readers(&self, id: &str) -> BTreeSet<String> {
        self.readers_in(C, id)
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_string()).collect()
}

const ALL_LOCAL: [&str; 5] = ["h1", "h2", "a1", "a2", "b1"];

fn all_local_and(partners: &[&str]) -> BTreeSet<String> {
    let mut s = set(&ALL_LOCAL);
    s.extend(partners.iter().map(|p| (*p).to_string()));
    s
}

// --- the TLP matrix -------------------------------------------------------------

/// CLEAR, GREEN, AMBER, AMBER+STRICT and RED × host users, the submitting
/// user and its colleague, another constituent, a partner whose agreement
/// admits the level, one whose agreement does not, one without agreement.
#[test]
fn tlp_matrix_for_a_constituents_version() {
    let mut f = fx();
    let cases: [(&str, &[&str]); 5] = [
        (TLP2_CLEAR, &["h1", "h2", "a1", "a2", "b1", P_RED, P_GREEN]),
        (TLP2_GREEN, &["h1", "h2", "a1", "a2", "b1", P_RED, P_GREEN]),
        (TLP2_AMBER, &["h1", "h2", "a1", "a2", "b1", P_RED]),
        // Host and submitting organization; a recipient passes
        // AMBER+STRICT on to no partner.
        (TLP2_AMBER_STRICT, &["h1", "h2", "a1", "a2"]),
        // Only the submitting user (no recipients named).
        (TLP2_RED, &["a1"]),
    ];
    for (marking, want) in cases {
        let id = f.post(indicator(&[marking]), Some("a1"));
        assert_eq!(f.readers(&id), set(want), "{marking} from a1 of acme");
    }
}

#[test]
fn tlp_matrix_for_a_host_version() {
    let mut f = fx();
    let cases: [(&str, &[&str]); 5] = [
        (TLP2_CLEAR, &["h1", "h2", "a1", "a2", "b1", P_RED, P_GREEN]),
        (TLP2_GREEN, &["h1", "h2", "a1", "a2", "b1", P_RED, P_GREEN]),
        (TLP2_AMBER, &["h1", "h2", "a1", "a2", "b1", P_RED]),
        // The host organization originated it: it may go to a partner
        // whose agreement admits AMBER+STRICT, but to no constituent.
        (TLP2_AMBER_STRICT, &["h1", "h2", P_RED]),
        (TLP2_RED, &["h1"]),
    ];
    for (marking, want) in cases {
        let id = f.post(indicator(&[marking]), Some("h1"));
        assert_eq!(f.readers(&id), set(want), "{marking} from h1 of the host");
    }
    // The operator's own import (no user): RED reaches no one unnamed.
    let id = f.post(indicator(&[TLP2_RED]), None);
    assert_eq!(f.readers(&id), set(&[]));
}

#[test]
fn tlp1_and_variant_ids_equal_tlp2() {
    let mut f = fx();
    for (old, new) in [
        (TLP1_WHITE, TLP2_CLEAR),
        (TLP1_GREEN, TLP2_GREEN),
        (TLP1_AMBER, TLP2_AMBER),
        (TLP1_RED, TLP2_RED),
        (OPENCTI_AMBER_STRICT, TLP2_AMBER_STRICT),
    ] {
        for submitter in [Some("a1"), Some("h2"), None] {
            let a = f.post(indicator(&[old]), submitter);
            let b = f.post(indicator(&[new]), submitter);
            assert_eq!(
                f.readers(&a),
                f.readers(&b),
                "{old} vs {new}, {submitter:?}"
            );
        }
    }
}

#[test]
fn unmarked_takes_the_configured_default() {
    for (unmarked, want) in [
        (Tlp::Clear, all_local_and(&[P_RED, P_GREEN])),
        (Tlp::Green, all_local_and(&[P_RED, P_GREEN])),
        (Tlp::Amber, all_local_and(&[P_RED])),
        (Tlp::AmberStrict, set(&["h1", "h2", "a1", "a2"])),
    ] {
        let mut f = fx_with(unmarked, usual_agreements());
        let id = f.post(indicator(&[]), Some("a2"));
        assert_eq!(f.readers(&id), want, "unmarked = {unmarked:?}");
    }
}

// --- conflicting, unknown and spoofed markings -------------------------------------

#[test]
fn most_restrictive_marking_wins() {
    let mut f = fx();
    let amber_strict = set(&["h1", "h2", "a1", "a2"]);
    // Two object-level markings.
    let id = f.post(indicator(&[TLP2_CLEAR, TLP2_AMBER_STRICT]), Some("a1"));
    assert_eq!(f.readers(&id), amber_strict);
    // TLP 1.0 and 2.0 ids mixed.
    let id = f.post(indicator(&[TLP1_WHITE, TLP2_AMBER]), Some("a1"));
    assert_eq!(f.readers(&id), all_local_and(&[P_RED]));
    // A granular marking counts for the whole object.
    let id = f.post(
        with_granular(indicator(&[TLP2_GREEN]), &[TLP2_AMBER_STRICT]),
        Some("a1"),
    );
    assert_eq!(f.readers(&id), amber_strict);
    let id = f.post(with_granular(indicator(&[]), &[TLP1_RED]), Some("a1"));
    assert_eq!(f.readers(&id), set(&["a1"]));
    // A granular marking less restrictive than the object's changes nothing.
    let id = f.post(
        with_granular(indicator(&[TLP2_AMBER]), &[TLP2_CLEAR]),
        Some("a1"),
    );
    assert_eq!(f.readers(&id), all_local_and(&[P_RED]));
    // A language marking says nothing about release.
    let mut o = indicator(&[TLP2_GREEN]);
    o["granular_markings"] = json!([{"lang": "fr", "selectors": ["name"]}]);
    let id = f.post(o, Some("a1"));
    assert_eq!(f.readers(&id), all_local_and(&[P_RED, P_GREEN]));
}

#[test]
fn an_unknown_marking_denies_everyone() {
    let mut f = fx();
    for o in [
        indicator(&[UNKNOWN]),
        indicator(&[TLP2_CLEAR, UNKNOWN]),
        with_granular(indicator(&[TLP2_CLEAR]), &[UNKNOWN]),
    ] {
        for submitter in [Some("a1"), Some("h1"), None] {
            let id = f.post(o.clone(), submitter);
            assert_eq!(f.readers(&id), set(&[]), "{o} from {submitter:?}");
        }
    }
}

fn spoof_definition() -> Value {
    json!({
        "type": "marking-definition", "spec_version": "2.1", "id": SPOOF,
        "created": "2022-10-01T00:00:00.000Z", "name": "TLP:CLEAR",
        "extensions": {TLP2_EXT: {"extension_type": "property-extension", "tlp_2_0": "clear"}}
    })
}

#[test]
fn a_spoofed_tlp_clear_definition_is_an_unknown_marking() {
    let mut f = fx();
    // The spoof itself is stored, by a partner's data arriving through acme.
    let def = f.post(spoof_definition(), Some("a1"));
    // It is not a standard definition: unmarked, so AMBER+STRICT here.
    assert_eq!(f.readers(&def), set(&["h1", "h2", "a1", "a2"]));
    let id = f.post(indicator(&[SPOOF]), Some("a1"));
    assert_eq!(f.readers(&id), set(&[]));
    let id = f.post(indicator(&[SPOOF, TLP2_GREEN]), Some("h1"));
    assert_eq!(f.readers(&id), set(&[]));
}

#[test]
fn an_accepted_marking_releases_per_its_meaning() {
    let mut f = fx();
    let bare = f.post(indicator(&[SPOOF]), Some("a1"));
    let green = f.post(indicator(&[SPOOF, TLP2_GREEN]), Some("a1"));
    let amber = f.post(
        with_granular(indicator(&[TLP2_AMBER]), &[SPOOF]),
        Some("a1"),
    );
    assert_eq!(f.readers(&bare), set(&[]));
    assert_eq!(f.readers(&green), set(&[]));

    // A statement restricts nothing: the TLP markings (or the default) decide.
    f.accept(json!({SPOOF: {"as": "statement"}}));
    assert_eq!(f.readers(&bare), set(&["h1", "h2", "a1", "a2"]));
    assert_eq!(f.readers(&green), all_local_and(&[P_RED, P_GREEN]));
    assert_eq!(f.readers(&amber), all_local_and(&[P_RED]));

    // Accepted as a TLP level: the most restrictive level wins.
    f.accept(json!({SPOOF: {"as": "tlp", "level": "green"}}));
    assert_eq!(f.readers(&bare), all_local_and(&[P_RED, P_GREEN]));
    assert_eq!(f.readers(&green), all_local_and(&[P_RED, P_GREEN]));
    assert_eq!(f.readers(&amber), all_local_and(&[P_RED]));
    f.accept(json!({SPOOF: {"as": "tlp", "level": "amber+strict"}}));
    assert_eq!(f.readers(&green), set(&["h1", "h2", "a1", "a2"]));

    // Accepted as a PAP level: partners whose agreement's PAP is lower
    // receive nothing.
    let mut f2 = fx_with(
        Tlp::AmberStrict,
        vec![
            agreement(1, &[NODE, P_RED], any_scope(Tlp::Red, Pap::Amber)),
            agreement(2, &[NODE, P_GREEN], any_scope(Tlp::Green, Pap::Red)),
        ],
    );
    f2.accept(json!({SPOOF: {"as": "pap", "level": "red"}}));
    let id = f2.post(indicator(&[SPOOF, TLP2_GREEN]), Some("a1"));
    assert_eq!(f2.readers(&id), all_local_and(&[P_GREEN]));
}

// --- TLP:RED recipients ------------------------------------------------------------

#[test]
fn red_goes_to_named_recipients_and_the_submitter() {
    let mut f = fx();
    // a1 submits, naming a colleague of another organization and a user on
    // the partner whose agreement admits RED.
    let id = f.post(
        with_recipients(indicator(&[TLP2_RED]), &[(NODE, "b1"), (P_RED, "someone")]),
        Some("a1"),
    );
    assert_eq!(f.readers(&id), set(&["a1", "b1", P_RED]));
    // Named on this node: a2; not the other user of its organization (a1
    // did not submit this one), nor the host.
    let id = f.post(
        with_recipients(indicator(&[TLP2_RED]), &[(NODE, "a2")]),
        Some("h1"),
    );
    assert_eq!(f.readers(&id), set(&["a2", "h1"]));
    // A recipient on a partner whose agreement stops at GREEN receives
    // nothing; a user of that name here is not the recipient either.
    let id = f.post(
        with_recipients(indicator(&[TLP2_RED]), &[(P_GREEN, "h2")]),
        None,
    );
    assert_eq!(f.readers(&id), set(&[]));
    // Recipients of a version below RED change nothing.
    let id = f.post(
        with_recipients(
            indicator(&[TLP2_AMBER_STRICT]),
            &[(NODE, "b1"), (P_RED, "x")],
        ),
        Some("a1"),
    );
    assert_eq!(f.readers(&id), set(&["h1", "h2", "a1", "a2"]));
}

/// RED from a marking the operator accepted as TLP:RED: the submitting
/// user keeps access to the RED version it sent.
#[test]
fn red_by_accepted_marking_keeps_the_submitter() {
    let mut f = fx();
    f.accept(json!({UNKNOWN: {"as": "tlp", "level": "red"}}));
    let id = f.post(indicator(&[UNKNOWN]), Some("a1"));
    assert_eq!(f.readers(&id), set(&["a1"]));
    // RED as the level of unmarked data (which the node's configuration
    // refuses) sends unmarked data to no one: no recipients are named and
    // the submitting user of unmarked data is not kept.
    let mut f = fx_with(Tlp::Red, usual_agreements());
    let id = f.post(indicator(&[]), Some("a1"));
    assert_eq!(f.readers(&id), set(&[]));
}

// --- partners -------------------------------------------------------------------------

#[test]
fn amber_strict_reaches_a_partner_only_from_the_host() {
    let mut f = fx();
    for (marking, org, user, want) in [
        (TLP2_AMBER_STRICT, None, None, true),
        (TLP2_AMBER_STRICT, None, Some("h1"), true),
        (TLP2_AMBER_STRICT, Some(HOST), Some("h1"), true),
        (TLP2_AMBER_STRICT, Some("acme"), Some("a1"), false),
        (OPENCTI_AMBER_STRICT, Some("beta"), Some("b1"), false),
        (OPENCTI_AMBER_STRICT, None, None, true),
    ] {
        let id = f.post_as(indicator(&[marking]), org, user);
        let readers = f.readers(&id);
        assert_eq!(readers.contains(P_RED), want, "{marking} from {org:?}");
        assert!(!readers.contains(P_GREEN) && !readers.contains(P_NONE));
    }
}

#[test]
fn agreement_scope_table() {
    let only_c_indicators = Scope {
        collections: vec![C.into()],
        object_types: vec!["indicator".into()],
        max_tlp: Tlp::Amber,
        pap: Pap::Amber,
    };
    let mut f = fx_with(
        Tlp::AmberStrict,
        vec![
            agreement(1, &[NODE, P_RED], only_c_indicators),
            // An agreement between two other nodes (this one is no party)
            // admits nothing here.
            agreement(2, &[P_GREEN, P_NONE], any_scope(Tlp::Red, Pap::Red)),
        ],
    );
    let malware = json!({
        "type": "malware", "spec_version": "2.1",
        "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
        "name": "probe", "is_family": false, "object_marking_refs": [TLP2_GREEN]
    });
    let cases: [(&str, Value, bool); 7] = [
        (C, indicator(&[TLP2_GREEN]), true),
        (C, indicator(&[TLP2_AMBER]), true),
        // Above the agreement's highest TLP.
        (C, indicator(&[TLP2_AMBER_STRICT]), false),
        // Outside its types, its collections.
        (C, malware, false),
        (D, indicator(&[TLP2_GREEN]), false),
        // PAP above the agreement's, at it.
        (C, indicator(&[TLP2_GREEN, PAP_RED]), false),
        (C, indicator(&[TLP2_GREEN, PAP_AMBER]), true),
    ];
    for (collection, o, want) in cases {
        let id = f.post_in(collection, o.clone(), Some("h1"));
        let readers = f.readers_in(collection, &id);
        assert_eq!(readers.contains(P_RED), want, "{collection} {o}");
        assert!(
            !readers.contains(P_GREEN) && !readers.contains(P_NONE),
            "{o}"
        );
    }
}

// --- data received from partners ------------------------------------------------------

/// The usual agreements, and a sharing group of this node, P_GREEN and
/// P_RED (agreement 3) that received data names as the agreement it was
/// published under.
fn group_agreements() -> Vec<AgreementView> {
    let mut a = usual_agreements();
    a.push(agreement(
        3,
        &[NODE, P_GREEN, P_RED],
        any_scope(Tlp::Red, Pap::Red),
    ));
    a
}

fn agreement_id(n: usize) -> String {
    format!("agreement--00000000-0000-4000-8000-{n:012}")
}

/// A version originated by `node`, published under agreement `n` with
/// these terms.
fn origin(node: &str, redistribution: Redistribution, n: usize) -> Origin {
    Origin {
        node_id: node.into(),
        redistribution,
        agreement: agreement_id(n),
    }
}

fn named(nodes: &[&str]) -> Redistribution {
    Redistribution::Named {
        recipients: nodes.iter().map(|n| (*n).to_string()).collect(),
    }
}

#[test]
fn received_green_goes_on_only_as_its_originators_terms_allow() {
    let mut f = fx_with(Tlp::AmberStrict, group_agreements());
    // P_GREEN's GREEN, published under the group agreement: P_RED is a
    // party of it (as this node is) and this node's agreement with P_RED
    // covers GREEN. Never back to P_GREEN; P_NONE has no agreement.
    let cases: [(Redistribution, usize, &[&str]); 9] = [
        (Redistribution::Parties, 3, &[P_RED]),
        (Redistribution::None, 3, &[]),
        (named(&[P_NONE]), 3, &[P_RED]),
        // Published under P_GREEN's bilateral agreement with this node:
        // P_RED is no party of it.
        (Redistribution::Parties, 2, &[]),
        (named(&[P_RED]), 2, &[P_RED]),
        // Named, but no agreement of this node covers P_NONE.
        (named(&[P_NONE]), 2, &[]),
        // An agreement not in force here (or unknown) has no parties.
        (Redistribution::Parties, 9, &[]),
        (named(&[P_RED]), 9, &[P_RED]),
        // Naming the originator itself changes nothing.
        (named(&[P_GREEN]), 2, &[]),
    ];
    for (terms, n, partners) in cases {
        for marking in [TLP2_GREEN, TLP2_CLEAR, TLP1_GREEN] {
            let id = f.post_received(indicator(&[marking]), origin(P_GREEN, terms.clone(), n));
            assert_eq!(
                f.readers(&id),
                all_local_and(partners),
                "{marking} from {P_GREEN}, {terms:?} under agreement {n}"
            );
        }
    }
    // The same GREEN, with this node's default for unmarked data GREEN.
    let mut f = fx_with(Tlp::Green, group_agreements());
    let id = f.post_received(indicator(&[]), origin(P_GREEN, Redistribution::Parties, 3));
    assert_eq!(f.readers(&id), all_local_and(&[P_RED]));
}

#[test]
fn received_amber_never_goes_on() {
    let mut f = fx_with(Tlp::AmberStrict, group_agreements());
    for terms in [
        Redistribution::Parties,
        named(&[P_RED, P_NONE]),
        Redistribution::None,
    ] {
        for marking in [TLP2_AMBER, TLP1_AMBER] {
            // Every local organization (the host's clients), no partner,
            // although the terms and the agreement with P_RED would admit
            // it.
            let id = f.post_received(indicator(&[marking]), origin(P_GREEN, terms.clone(), 3));
            assert_eq!(f.readers(&id), set(&ALL_LOCAL), "{marking} {terms:?}");
        }
    }
    // The same AMBER from the host goes to P_RED, and to P_GREEN under
    // the group agreement.
    let id = f.post(indicator(&[TLP2_AMBER]), Some("h1"));
    assert_eq!(f.readers(&id), all_local_and(&[P_RED, P_GREEN]));
}

#[test]
fn nothing_goes_back_to_its_originator() {
    let mut f = fx_with(Tlp::AmberStrict, group_agreements());
    // P_RED's CLEAR under the group agreement: P_GREEN (a party) receives
    // it, P_RED never, whatever the terms say and although this node's
    // agreement with P_RED covers it.
    for (terms, partners) in [
        (Redistribution::Parties, &[P_GREEN][..]),
        (named(&[P_RED, P_GREEN]), &[P_GREEN][..]),
        (Redistribution::None, &[][..]),
    ] {
        let id = f.post_received(indicator(&[TLP2_CLEAR]), origin(P_RED, terms.clone(), 3));
        assert_eq!(f.readers(&id), all_local_and(partners), "{terms:?}");
    }
    // RED naming a user on the originator's node: not back to it either.
    let id = f.post_received(
        with_recipients(indicator(&[TLP2_RED]), &[(P_RED, "x"), (NODE, "b1")]),
        origin(P_RED, Redistribution::Parties, 3),
    );
    assert_eq!(f.readers(&id), set(&["b1"]));
}

#[test]
fn received_amber_strict_stays_with_the_host_organization() {
    let mut f = fx_with(Tlp::AmberStrict, group_agreements());
    let host = set(&["h1", "h2"]);
    for o in [
        indicator(&[TLP2_AMBER_STRICT]),
        indicator(&[OPENCTI_AMBER_STRICT]),
        // Unmarked: the default, AMBER+STRICT.
        indicator(&[]),
        with_recipients(indicator(&[TLP2_AMBER_STRICT]), &[(P_RED, "x")]),
    ] {
        for terms in [Redistribution::Parties, named(&[P_RED])] {
            let id = f.post_received(o.clone(), origin(P_GREEN, terms.clone(), 3));
            assert_eq!(f.readers(&id), host, "{o} {terms:?}");
        }
    }
    // RED received: only the users named on this node, never onward.
    let id = f.post_received(
        with_recipients(indicator(&[TLP2_RED]), &[(NODE, "a2"), (P_RED, "x")]),
        origin(P_GREEN, Redistribution::Parties, 3),
    );
    assert_eq!(f.readers(&id), set(&["a2"]));
}

/// A label naming this node as the originator is this node's own data:
/// decided exactly as the host organization's.
#[test]
fn originated_here_is_host_data() {
    let mut f = fx_with(Tlp::AmberStrict, group_agreements());
    for marking in [TLP2_GREEN, TLP2_AMBER, TLP2_AMBER_STRICT, TLP2_RED] {
        let own = f.post_received(indicator(&[marking]), origin(NODE, Redistribution::None, 9));
        let host = f.post(indicator(&[marking]), None);
        assert_eq!(f.readers(&own), f.readers(&host), "{marking}");
    }
}

// --- standard definitions, grants, tokens ----------------------------------------------

#[test]
fn standard_marking_definitions_are_clear() {
    let mut f = fx();
    let defs = [
        json!({"type": "marking-definition", "spec_version": "2.1", "id": TLP1_RED,
               "created": "2017-01-20T00:00:00.000Z", "name": "TLP:RED",
               "definition_type": "tlp", "definition": {"tlp": "red"}}),
        json!({"type": "marking-definition", "spec_version": "2.1", "id": TLP2_RED,
               "created": "2022-10-01T00:00:00.000Z", "name": "TLP:RED",
               "extensions": {TLP2_EXT: {"extension_type": "property-extension", "tlp_2_0": "red"}}}),
        // Marked (as some producers do): still the public definition.
        json!({"type": "marking-definition", "spec_version": "2.1", "id": TLP2_AMBER_STRICT,
               "created": "2022-10-01T00:00:00.000Z", "name": "TLP:AMBER+STRICT",
               "object_marking_refs": [TLP2_RED],
               "extensions": {TLP2_EXT: {"extension_type": "property-extension",
                                         "tlp_2_0": "amber+strict"}}}),
    ];
    for d in defs {
        for (collection, want) in [
            (C, all_local_and(&[P_RED, P_GREEN])),
            // beta may not read D at all.
            (D, set(&["h1", "h2", "a1", "a2", P_RED, P_GREEN])),
        ] {
            let id = f.post_in(collection, d.clone(), Some("a1"));
            assert_eq!(f.readers_in(collection, &id), want, "{d}");
        }
    }
}

#[test]
fn no_read_grant_no_objects() {
    let mut f = fx();
    let id = f.post_in(D, indicator(&[TLP2_CLEAR]), Some("h1"));
    let b1 = principal("b1", TokenScope::Full);
    let q = Query {
        limit: 100,
        ..Query::default()
    };
    assert!(matches!(
        f.gate.objects(&b1, ROOT, D, &q),
        Err(Denied::NotFound)
    ));
    assert!(matches!(
        f.gate.manifest(&b1, ROOT, D, &q),
        Err(Denied::NotFound)
    ));
    assert!(matches!(
        f.gate.versions(&b1, ROOT, D, &id, &q),
        Err(Denied::NotFound)
    ));
    assert!(!f.readers_in(D, &id).contains("b1"));
    assert!(f.readers_in(D, &id).contains("h1"));
}

#[test]
fn a_write_only_token_sees_nothing() {
    let mut f = fx();
    let id = f.post(indicator(&[TLP2_CLEAR]), Some("a1"));
    let q = Query {
        limit: 100,
        ..Query::default()
    };
    // acme may read and write C; the token narrows it to writing.
    let a1 = principal("a1", TokenScope::WriteOnly);
    assert!(matches!(
        f.gate.objects(&a1, ROOT, C, &q),
        Err(Denied::Forbidden(_))
    ));
    assert!(matches!(
        f.gate.manifest(&a1, ROOT, C, &q),
        Err(Denied::Forbidden(_))
    ));
    assert!(matches!(
        f.gate.versions(&a1, ROOT, C, &id, &q),
        Err(Denied::Forbidden(_))
    ));
    // host only reads C: a write-only token leaves it no right at all.
    let h1 = principal("h1", TokenScope::WriteOnly);
    assert!(matches!(
        f.gate.objects(&h1, ROOT, C, &q),
        Err(Denied::NotFound)
    ));
    // The same users with read tokens see it.
    for u in ["a1", "h1"] {
        let p = principal(u, TokenScope::ReadOnly);
        let page = f.gate.objects(&p, ROOT, C, &q).unwrap();
        assert_eq!(page.items.len(), 1, "{u}");
    }
}
