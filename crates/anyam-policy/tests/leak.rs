//! Randomized leak test of the release decision, end to end: a real store,
//! the real ingest pipeline, the `Gate`, and an independent model of the
//! rules.
//!
//! Each case builds a node (the host organization and 1–4 constituents,
//! their users, 1–3 collections with random grants, token scopes, the
//! operator's accepted markings, the default level of unmarked data),
//! partner nodes with agreements (in force or not: expired, terminated and
//! unsigned agreements are generated too, and are simply absent from the
//! in-force view the node is given), and random object versions with random
//! markings, TLP:RED recipients and submitters. Some versions are
//! *received*: stored as the partner sync stores them, labelled with
//! `Label::received` and an originator (a partner, the stranger, or this
//! node itself, which makes them this node's own data again), the
//! originator's redistribution terms (none, the parties of its agreement,
//! or those and named nodes) and the agreement it published under (one of
//! the generated agreements, in force or not, or an id nobody knows).
//! Then, for every local user
//! and every read path (objects with `last`, `first` and `all`, manifest,
//! versions of each id, a single id, export, search, paging with a small
//! `limit` to the end) and for every partner (objects and manifest, the
//! same variants), the set of (id, version) released must equal the set the
//! model permits, in both directions. Local users and partners are two
//! tests (run in parallel), each over its own random nodes.
//!
//! The model (`mod model`) is written from the rules stated in the
//! documentation of `anyam_policy::decision`, as plain tables over the TLP
//! level × the reader's relationship to the version × the agreement scope.
//! It never calls the policy crate: the crate is used here only to build
//! the inputs (the store and the `Gate`).
//!
//! Soak (more cases, optimized build; `PROPTEST_CASES` is the number of
//! cases of each of the two tests):
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test -p anyam-policy --release --test leak
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyam_policy::{
    ACCEPTED_MARKINGS_KEY, AgreementSource, Denied, Gate, Origin, Path, PolicyConfig, Principal,
};
use anyam_store::{
    Access, ApiRoot, Collection, Grant, ManifestEntry, Organization, Page, PutOutcome, Query,
    Search, SqliteOptions, SqliteStore, Store, StoredObject, Synchronous, TokenScope, User,
    VersionSel,
};
use anyam_trust::{
    AgreementView, AgreementsInForce, Pap, PartyView, Redistribution, Retention, Scope, Sightings,
    Tlp,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};
use serde_json::{Value, json};

/// In the description of every version, so that a search finds them all.
const SEARCH_WORD: &str = "leakprobe";

/// Cases per run unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 1_000;

const NODE: &str = "node-self";
const HOST: &str = "host";
const API_ROOT: &str = "root";
const CONSTITUENTS: [&str; 4] = ["acme", "beta", "gamma", "delta"];
const COLLECTIONS: [&str; 3] = [
    "0b5ef5d4-1a53-4c36-8f0f-2d9c1c3c5a01",
    "6a3c1c2e-5d1e-4f9b-a0d2-8f7e9b1c3d02",
    "c4f1e2d3-7b8a-4c5d-9e6f-0a1b2c3d4e03",
];
/// An id that agreements may name but that does not exist on the node.
const ABSENT_COLLECTION: &str = "ffffffff-ffff-4fff-bfff-ffffffffffff";
const PARTNERS: [&str; 3] = ["partner-1", "partner-2", "partner-3"];
/// A node named in recipients lists and in agreements that are not in
/// force, never in one that is.
const STRANGER: &str = "partner-stranger";
const TYPES: [&str; 5] = [
    "indicator",
    "malware",
    "report",
    "identity",
    "marking-definition",
];
const MARKING_DEFINITION: usize = 4;

const TLP2_EXT: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";
const PAP_EXT: &str = "extension-definition--f8d78575-edfd-406e-8e84-6162a8450f5b";
const RECIPIENTS_EXT: &str = "extension-definition--4e0cee20-b640-4553-9aad-1c16c0c90a79";

const UNKNOWN_A: &str = "marking-definition--0d0e0a0d-0000-4000-8000-00000000000a";
const UNKNOWN_B: &str = "marking-definition--0d0e0a0d-0000-4000-8000-00000000000b";
const UNKNOWN_C: &str = "marking-definition--0d0e0a0d-0000-4000-8000-00000000000c";
/// A marking definition of its own that calls itself "TLP:CLEAR".
const SPOOF: &str = "marking-definition--5b0f5b0f-5b0f-4b0f-8b0f-5b0f5b0f5b0f";

/// The marking ids versions are marked with, and what the rules say each
/// means. The recognized ids are the ones fixed by the standards (TLP 2.0,
/// the TLP 1.0 definitions of STIX 2.1, the OASIS PAP definitions) and the
/// variants OpenCTI emits; written out here, not taken from the crate.
const MARKS: [(&str, Means); 17] = [
    (
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Means::Tlp(CLEAR),
    ),
    (
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Means::Tlp(GREEN),
    ),
    (
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Means::Tlp(AMBER),
    ),
    (
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Means::Tlp(AMBER_STRICT),
    ),
    (
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        Means::Tlp(RED),
    ),
    (
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        Means::Tlp(CLEAR),
    ),
    (
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        Means::Tlp(GREEN),
    ),
    (
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        Means::Tlp(AMBER),
    ),
    (
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        Means::Tlp(RED),
    ),
    (
        "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37",
        Means::Tlp(AMBER_STRICT),
    ),
    (
        "marking-definition--740d36e5-7714-4c30-961a-3ae632ceee0e",
        Means::Pap(PAP_RED),
    ),
    (
        "marking-definition--a3bea94c-b469-41dc-9cfe-d6e7daba7730",
        Means::Pap(PAP_CLEAR),
    ),
    (
        "marking-definition--a6f20d4d-0360-59b6-ba22-3b48707828b1",
        Means::Pap(PAP_AMBER),
    ),
    (
        "marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9",
        Means::Pap(PAP_GREEN),
    ),
    (UNKNOWN_A, Means::Unknown),
    (UNKNOWN_B, Means::Unknown),
    (SPOOF, Means::Unknown),
];
/// Marking ids the operator may accept.
const ACCEPTABLE: [&str; 4] = [UNKNOWN_A, UNKNOWN_B, SPOOF, UNKNOWN_C];

// TLP levels, least to most restrictive; PAP levels likewise.
const CLEAR: u8 = 0;
const GREEN: u8 = 1;
const AMBER: u8 = 2;
const AMBER_STRICT: u8 = 3;
const RED: u8 = 4;
const PAP_CLEAR: u8 = 0;
const PAP_GREEN: u8 = 1;
const PAP_AMBER: u8 = 2;
const PAP_RED: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Means {
    Tlp(u8),
    Pap(u8),
    Unknown,
}

/// What the operator declared an accepted id to mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptAs {
    Statement,
    Tlp(u8),
    Pap(u8),
}

// --- the independent model --------------------------------------------------

/// The rules of `anyam_policy::decision`, restated as tables. Nothing here
/// calls the policy crate.
mod model {
    use super::*;

    /// What a version's markings mean once read (before any reader).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Effective {
        /// A marking nobody recognized: released to no one.
        Nobody,
        Level {
            tlp: u8,
            pap: Option<u8>,
        },
    }

    /// One stored version, as the model knows it.
    #[derive(Debug, Clone)]
    pub struct MVersion {
        pub id: String,
        pub object_type: &'static str,
        pub collection: &'static str,
        /// Orders the versions of one id (first/last).
        pub order: i64,
        pub version: String,
        /// Every marking id referenced (object-level and granular).
        pub marks: Vec<&'static str>,
        /// The version is itself one of the standard marking definitions.
        pub standard_definition: bool,
        pub recipients: BTreeSet<(String, String)>,
        /// The submitting organization; `None`: the host organization.
        pub source_org: Option<String>,
        pub source_user: Option<String>,
        /// Set on versions received from a partner node (and on versions
        /// labelled with this node as their originator, which are this
        /// node's own).
        pub origin: Option<MOrigin>,
    }

    /// The originator's redistribution terms.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Terms {
        /// To no one.
        Nobody,
        /// To the parties of the agreement it was published under.
        Parties,
        /// To those parties and these nodes.
        Named(BTreeSet<String>),
    }

    /// Who originated a version received from a partner, and its terms.
    #[derive(Debug, Clone)]
    pub struct MOrigin {
        pub node: String,
        pub terms: Terms,
        /// The agreement id the originator published it under.
        pub agreement: String,
    }

    /// An agreement as the model knows it, in force or not.
    #[derive(Debug, Clone)]
    pub struct MAgreement {
        pub id: String,
        pub in_force: bool,
        pub parties: BTreeSet<String>,
        /// Empty: any collection.
        pub collections: BTreeSet<String>,
        /// Empty: any type.
        pub types: BTreeSet<String>,
        pub max_tlp: u8,
        pub pap: u8,
    }

    pub struct Model {
        pub unmarked: u8,
        pub accepted: BTreeMap<&'static str, AcceptAs>,
        pub agreements: Vec<MAgreement>,
    }

    /// A local reader's relationships to a version; the columns of
    /// [`LOCAL`].
    const HOST_ORG: usize = 0;
    const SUBMITTING_ORG: usize = 1;
    const OTHER_CONSTITUENT: usize = 2;
    const NAMED_RECIPIENT: usize = 3;
    const SUBMITTING_USER: usize = 4;

    const Y: bool = true;
    const N: bool = false;

    /// Local users whose organization holds the read right: who receives
    /// what, by TLP level (rows) and relationship (columns: host org,
    /// submitting org, other constituent, named recipient on this node,
    /// submitting user). A reader receives a version when any of its
    /// relationships says yes.
    const LOCAL: [[bool; 5]; 5] = [
        /* CLEAR        */ [Y, Y, Y, Y, Y],
        /* GREEN        */ [Y, Y, Y, Y, Y],
        /* AMBER        */ [Y, Y, Y, Y, Y],
        /* AMBER+STRICT */ [Y, Y, N, N, Y],
        /* RED          */ [N, N, N, Y, Y],
    ];

    /// Partner nodes, once an agreement in force with both nodes as parties
    /// covers the collection, the type, the TLP level and the PAP: by TLP
    /// level (rows) and relationship (columns: the host organization
    /// originated the version, a constituent did, a named recipient is on
    /// the partner node).
    const FROM_HOST: usize = 0;
    const FROM_CONSTITUENT: usize = 1;
    const RECIPIENT_THERE: usize = 2;
    const PARTNER: [[bool; 3]; 5] = [
        /* CLEAR        */ [Y, Y, Y],
        /* GREEN        */ [Y, Y, Y],
        /* AMBER        */ [Y, Y, Y],
        /* AMBER+STRICT */ [Y, N, N],
        /* RED          */ [N, N, Y],
    ];

    impl Model {
        /// The version's effective level: the most restrictive of its
        /// recognized and accepted markings; unrecognized and unaccepted
        /// denies everyone; no TLP at all takes the default for unmarked
        /// data. Standard marking definitions are CLEAR.
        pub fn effective(&self, v: &MVersion) -> Effective {
            if v.standard_definition {
                return Effective::Level {
                    tlp: CLEAR,
                    pap: None,
                };
            }
            let (mut tlp, mut pap): (Option<u8>, Option<u8>) = (None, None);
            for id in &v.marks {
                let means = MARKS
                    .iter()
                    .find(|(m, _)| m == id)
                    .map(|(_, means)| *means)
                    .unwrap_or(Means::Unknown);
                let means = match means {
                    Means::Unknown => match self.accepted.get(id) {
                        None => return Effective::Nobody,
                        Some(AcceptAs::Statement) => continue,
                        Some(AcceptAs::Tlp(t)) => Means::Tlp(*t),
                        Some(AcceptAs::Pap(p)) => Means::Pap(*p),
                    },
                    known => known,
                };
                match means {
                    Means::Tlp(t) => tlp = Some(tlp.map_or(t, |x| x.max(t))),
                    Means::Pap(p) => pap = Some(pap.map_or(p, |x| x.max(p))),
                    Means::Unknown => unreachable!(),
                }
            }
            Effective::Level {
                tlp: tlp.unwrap_or(self.unmarked),
                pap,
            }
        }

        /// May local user `user` of `org`, whose organization's effective
        /// right on the collection includes reading iff `read`, see `v`?
        pub fn local_sees(&self, user: &str, org: &str, read: bool, v: &MVersion) -> bool {
            if !read {
                return false;
            }
            let Effective::Level { tlp, .. } = self.effective(v) else {
                return false;
            };
            let source_org = v.source_org.as_deref().unwrap_or(HOST);
            let mut rel = [false; 5];
            rel[HOST_ORG] = org == HOST;
            rel[SUBMITTING_ORG] = org == source_org;
            rel[OTHER_CONSTITUENT] = org != HOST && org != source_org;
            rel[NAMED_RECIPIENT] = v.recipients.contains(&(NODE.to_string(), user.to_string()));
            rel[SUBMITTING_USER] = org == source_org && v.source_user.as_deref() == Some(user);
            LOCAL[usize::from(tlp)]
                .iter()
                .zip(rel)
                .any(|(allowed, has)| *allowed && has)
        }

        /// Do the terms of `o` let this node pass its version on to
        /// partner `to`? `Parties` means the parties of the agreement the
        /// originator published under, as far as that agreement is in
        /// force here (none otherwise), this node and `to` both among them.
        fn terms_allow(&self, o: &MOrigin, to: &str) -> bool {
            if to == NODE {
                return false;
            }
            if to == o.node {
                return true;
            }
            let parties: BTreeSet<&str> = self
                .agreements
                .iter()
                .filter(|a| a.in_force && a.id == o.agreement)
                .flat_map(|a| a.parties.iter().map(String::as_str))
                .collect();
            let among_parties = parties.contains(NODE) && parties.contains(to);
            match &o.terms {
                Terms::Nobody => false,
                Terms::Parties => among_parties,
                Terms::Named(named) => among_parties || named.contains(to),
            }
        }

        /// May partner node `node` receive `v`?
        pub fn partner_sees(&self, node: &str, v: &MVersion) -> bool {
            let Effective::Level { tlp, pap } = self.effective(v) else {
                return false;
            };
            // A version received from another node: never back to its
            // originator, only CLEAR and GREEN onward, and only as its
            // originator's terms allow; then this node's agreements as for
            // any other version (received data is never the host
            // organization's own).
            let received = v.origin.as_ref().filter(|o| o.node != NODE);
            if let Some(o) = received
                && (node == o.node || tlp > GREEN || !self.terms_allow(o, node))
            {
                return false;
            }
            let covered = self.agreements.iter().any(|a| {
                a.in_force
                    && a.parties.contains(node)
                    && a.parties.contains(NODE)
                    && (a.collections.is_empty() || a.collections.contains(v.collection))
                    && (a.types.is_empty() || a.types.contains(v.object_type))
                    && tlp <= a.max_tlp
                    && pap.is_none_or(|p| p <= a.pap)
            });
            if !covered {
                return false;
            }
            let from_host = received.is_none() && v.source_org.as_deref().is_none_or(|o| o == HOST);
            let mut rel = [false; 3];
            rel[FROM_HOST] = from_host;
            rel[FROM_CONSTITUENT] = !from_host;
            rel[RECIPIENT_THERE] = v.recipients.iter().any(|(n, _)| n == node);
            PARTNER[usize::from(tlp)]
                .iter()
                .zip(rel)
                .any(|(allowed, has)| *allowed && has)
        }
    }
}

use model::{MAgreement, MOrigin, MVersion, Model};

// --- the generated world ------------------------------------------------------

#[derive(Debug, Clone)]
struct UserSpec {
    org: Index,
    /// 0 full, 1 read-only, 2 write-only.
    scope: u8,
    admin: bool,
}

#[derive(Debug, Clone)]
struct AgreementSpec {
    /// 0 in force, 1 in force but terminating (notice running), 2 expired,
    /// 3 terminated, 4 not signed by every party.
    status: u8,
    /// Bits over `PARTNERS`.
    partners: u8,
    with_this_node: bool,
    with_stranger: bool,
    /// Bits over `COLLECTIONS` and `ABSENT_COLLECTION`; 0: any.
    collections: u8,
    /// Bits over `TYPES`; 0: any.
    types: u8,
    max_tlp: u8,
    pap: u8,
}

#[derive(Debug, Clone)]
struct VersionSpec {
    t: u8,
    collection: Index,
    /// (index into `MARKS`, granular rather than object-level)
    marks: Vec<(usize, bool)>,
    lang_marking: bool,
    /// (node: 0 this node, 1..=3 partners, 4 the stranger; user index,
    /// past the users: a name nobody has)
    recipients: Vec<(u8, Index)>,
    /// `None`: the operator (no user); else a user of the node.
    submitter: Option<Index>,
    /// For submissions by the host organization: name it rather than leave
    /// it implicit.
    host_named: bool,
    /// Posting order key.
    post: u8,
    /// Stored as received from a partner rather than as submitted.
    received: Option<ReceivedSpec>,
}

#[derive(Debug, Clone)]
struct ReceivedSpec {
    /// 0 this node, 1..=3 partners, 4 the stranger.
    originator: u8,
    /// 0 none, 1 the agreement's parties, 2 those and named nodes.
    redistribution: u8,
    /// Bits over `PARTNERS` and `STRANGER`.
    named: u8,
    /// Over the generated agreements and, past them, an unknown id.
    agreement: Index,
}

#[derive(Debug, Clone)]
struct ObjectSpec {
    object_type: usize,
    /// For marking definitions: a standard id (index into `MARKS` below 14),
    /// the spoofed "TLP:CLEAR" one, or one of its own.
    definition: u8,
    versions: Vec<VersionSpec>,
}

#[derive(Debug, Clone)]
struct World {
    constituents: usize,
    users: Vec<UserSpec>,
    collections: usize,
    /// Per (organization, collection): 0 none, 1 r, 2 w, 3 rw.
    grants: Vec<u8>,
    unmarked: u8,
    accepted: Vec<(usize, AcceptAs)>,
    agreements: Vec<AgreementSpec>,
    objects: Vec<ObjectSpec>,
    page_limit: usize,
}

fn accept_as() -> impl Strategy<Value = AcceptAs> {
    prop_oneof![
        Just(AcceptAs::Statement),
        (0u8..=RED).prop_map(AcceptAs::Tlp),
        (0u8..=PAP_RED).prop_map(AcceptAs::Pap),
    ]
}

fn version_spec() -> impl Strategy<Value = VersionSpec> {
    (
        0u8..6,
        any::<Index>(),
        prop::collection::vec((0..MARKS.len(), any::<bool>()), 0..=3),
        prop::bool::weighted(0.2),
        prop::collection::vec((0u8..5, any::<Index>()), 0..=3),
        prop::option::weighted(0.85, any::<Index>()),
        any::<bool>(),
        any::<u8>(),
        prop::option::weighted(0.35, received_spec()),
    )
        .prop_map(
            |(
                t,
                collection,
                marks,
                lang_marking,
                recipients,
                submitter,
                host_named,
                post,
                received,
            )| {
                VersionSpec {
                    t,
                    collection,
                    marks,
                    lang_marking,
                    recipients,
                    submitter,
                    host_named,
                    post,
                    received,
                }
            },
        )
}

fn received_spec() -> impl Strategy<Value = ReceivedSpec> {
    (
        prop_oneof![1 => Just(0u8), 4 => 1u8..=3, 1 => Just(4u8)],
        0u8..3,
        0u8..16,
        any::<Index>(),
    )
        .prop_map(
            |(originator, redistribution, named, agreement)| ReceivedSpec {
                originator,
                redistribution,
                named,
                agreement,
            },
        )
}

/// The id of generated agreement `i` (in force or not).
fn agreement_id(i: usize) -> String {
    format!("agreement--00000000-0000-4000-8000-{i:012}")
}

/// An agreement id no generated agreement has.
const UNKNOWN_AGREEMENT: &str = "agreement--ffffffff-ffff-4fff-bfff-ffffffffffff";

fn object_spec() -> impl Strategy<Value = ObjectSpec> {
    (
        0..TYPES.len(),
        0u8..16,
        prop::collection::vec(version_spec(), 1..=4),
    )
        .prop_map(|(object_type, definition, versions)| ObjectSpec {
            object_type,
            definition,
            versions,
        })
}

fn agreement_spec() -> impl Strategy<Value = AgreementSpec> {
    (
        prop_oneof![3 => 0u8..2, 1 => 2u8..5],
        1u8..8,
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.2),
        prop_oneof![1 => Just(0u8), 2 => 0u8..16],
        prop_oneof![1 => Just(0u8), 2 => 0u8..32],
        0u8..=RED,
        0u8..=PAP_RED,
    )
        .prop_map(
            |(
                status,
                partners,
                with_this_node,
                with_stranger,
                collections,
                types,
                max_tlp,
                pap,
            )| {
                AgreementSpec {
                    status,
                    partners,
                    with_this_node,
                    with_stranger,
                    collections,
                    types,
                    max_tlp,
                    pap,
                }
            },
        )
}

fn world() -> impl Strategy<Value = World> {
    (
        1usize..=4,
        prop::collection::vec(
            (
                any::<Index>(),
                prop_oneof![3 => Just(0u8), 1 => 1u8..3],
                prop::bool::weighted(0.2),
            )
                .prop_map(|(org, scope, admin)| UserSpec { org, scope, admin }),
            1..=6,
        ),
        1usize..=3,
        prop::collection::vec(
            prop_oneof![1 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8), 3 => Just(3u8)],
            15,
        ),
        0u8..=AMBER_STRICT,
        prop::collection::vec((0..ACCEPTABLE.len(), accept_as()), 0..=3),
        prop::collection::vec(agreement_spec(), 0..=4),
        prop::collection::vec(object_spec(), 1..=8),
        1usize..=3,
    )
        .prop_map(
            |(
                constituents,
                users,
                collections,
                grants,
                unmarked,
                accepted,
                agreements,
                objects,
                page_limit,
            )| {
                World {
                    constituents,
                    users,
                    collections,
                    grants,
                    unmarked,
                    accepted,
                    agreements,
                    objects,
                    page_limit,
                }
            },
        )
}

// --- building the node --------------------------------------------------------

fn tlp(l: u8) -> Tlp {
    [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ][usize::from(l)]
}

fn pap(l: u8) -> Pap {
    [Pap::Clear, Pap::Green, Pap::Amber, Pap::Red][usize::from(l)]
}

const TLP_NAMES: [&str; 5] = ["clear", "green", "amber", "amber+strict", "red"];
const PAP_NAMES: [&str; 4] = ["clear", "green", "amber", "red"];

/// Agreements in force, as the trust database would give them.
struct Fixed(AgreementsInForce);

impl AgreementSource for Fixed {
    fn in_force(&self) -> Result<AgreementsInForce, String> {
        Ok(self.0.clone())
    }
}

struct LocalUser {
    principal: Principal,
    /// The organization's grant narrowed by the token, per collection.
    access: BTreeMap<&'static str, Access>,
}

struct Node {
    _dir: tempfile::TempDir,
    gate: Gate,
    model: Model,
    users: Vec<LocalUser>,
    collections: Vec<&'static str>,
    /// Every stored version, by (collection, id).
    stored: BTreeMap<(&'static str, String), Vec<MVersion>>,
    /// Every id posted (to ask for each one in every collection).
    ids: BTreeSet<String>,
    /// Labels and bodies of stored versions, for failure messages.
    notes: BTreeMap<(&'static str, String, String), String>,
    page_limit: usize,
}

fn user_name(i: usize) -> String {
    format!("user{i}")
}

fn object_id(ty: &str, i: usize) -> String {
    format!("{ty}--00000000-0000-4000-8000-{i:012}")
}

fn modified(t: u8) -> String {
    format!("2024-01-01T00:00:{t:02}.000Z")
}

/// The STIX object of one version.
#[allow(clippy::too_many_arguments)]
fn stix_object(
    ty: &str,
    id: &str,
    definition: Option<usize>,
    t: u8,
    refs: &[(&str, bool)],
    lang_marking: bool,
    recipients: &[(String, String)],
    n: usize,
) -> Value {
    let mut o = json!({"type": ty, "spec_version": "2.1", "id": id});
    let mut extensions = serde_json::Map::new();
    match ty {
        "marking-definition" => match definition {
            // TLP 1.0 definitions are fixed by STIX 2.1 §7.2.1.4.
            Some(i @ 5..=8) => {
                let level = ["white", "green", "amber", "red"][i - 5];
                o["created"] = json!("2017-01-20T00:00:00.000Z");
                o["name"] = json!(format!("TLP:{}", level.to_uppercase()));
                o["definition_type"] = json!("tlp");
                o["definition"] = json!({"tlp": level});
            }
            Some(i @ 0..=4) => {
                let level = TLP_NAMES[i];
                o["created"] = json!("2022-10-01T00:00:00.000Z");
                o["name"] = json!(format!("TLP:{}", level.to_uppercase()));
                extensions.insert(
                    TLP2_EXT.into(),
                    json!({"extension_type": "property-extension", "tlp_2_0": level}),
                );
            }
            Some(9) => {
                o["created"] = json!("2022-10-01T00:00:00.000Z");
                o["name"] = json!("TLP:AMBER+STRICT");
                o["definition_type"] = json!("TLP");
                o["definition"] = json!({"TLP": "TLP:AMBER+STRICT"});
            }
            Some(i @ 10..=13) => {
                let level = ["red", "white", "amber", "green"][i - 10];
                o["created"] = json!("2022-10-01T00:00:00.000Z");
                o["name"] = json!(format!("PAP:{}", level.to_uppercase()));
                extensions.insert(
                    PAP_EXT.into(),
                    json!({"extension_type": "property-extension", "pap": level}),
                );
            }
            Some(_) => {
                // The spoof: named and shaped like TLP:CLEAR, with an id of
                // its own.
                o["created"] = json!(modified(t));
                o["name"] = json!("TLP:CLEAR");
                extensions.insert(
                    TLP2_EXT.into(),
                    json!({"extension_type": "property-extension", "tlp_2_0": "clear"}),
                );
            }
            None => {
                o["created"] = json!(modified(t));
                o["name"] = json!(format!("Statement {n}"));
                o["definition_type"] = json!("statement");
                o["definition"] = json!({"statement": format!("Copyright {n}")});
            }
        },
        _ => {
            o["created"] = json!("2024-01-01T00:00:00.000Z");
            o["modified"] = json!(modified(t));
            o["name"] = json!(format!("{ty} {n}"));
            match ty {
                "indicator" => {
                    o["pattern"] = json!(format!("[ipv4-addr:value = '198.51.100.{}']", n % 250));
                    o["pattern_type"] = json!("stix");
                    o["valid_from"] = json!("2024-01-01T00:00:00Z");
                }
                "malware" => o["is_family"] = json!(false),
                "report" => {
                    o["published"] = json!("2024-01-01T00:00:00Z");
                    o["object_refs"] = json!(["identity--00000000-0000-4000-8000-ffffffffffff"]);
                }
                "identity" => o["identity_class"] = json!("organization"),
                _ => unreachable!(),
            }
        }
    }
    // A word every version carries, for the search path.
    o["description"] = json!(format!("{SEARCH_WORD} {n}"));
    let object_refs: Vec<&str> = refs.iter().filter(|r| !r.1).map(|r| r.0).collect();
    if !object_refs.is_empty() {
        o["object_marking_refs"] = json!(object_refs);
    }
    let mut granular: Vec<Value> = refs
        .iter()
        .filter(|r| r.1)
        .map(|r| json!({"marking_ref": r.0, "selectors": ["name"]}))
        .collect();
    if lang_marking {
        granular.push(json!({"lang": "fr", "selectors": ["name"]}));
    }
    if !granular.is_empty() {
        o["granular_markings"] = json!(granular);
    }
    if !recipients.is_empty() {
        let list: Vec<Value> = recipients
            .iter()
            .map(|(n, u)| json!({"node_id": n, "user": u}))
            .collect();
        extensions.insert(
            RECIPIENTS_EXT.into(),
            json!({"extension_type": "property-extension", "recipients": list}),
        );
    }
    if !extensions.is_empty() {
        o["extensions"] = Value::Object(extensions);
    }
    o
}

fn build(w: &World) -> Node {
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
    let collections: Vec<&'static str> = COLLECTIONS[..w.collections].to_vec();
    for c in &collections {
        store
            .create_collection(&Collection {
                id: (*c).into(),
                api_root: API_ROOT.into(),
                title: format!("Collection {c}"),
                description: None,
                alias: None,
            })
            .unwrap();
    }
    let mut orgs = vec![HOST];
    orgs.extend(&CONSTITUENTS[..w.constituents]);
    for o in &orgs {
        store
            .create_org(&Organization {
                name: (*o).into(),
                title: (*o).into(),
            })
            .unwrap();
    }
    let grant_of = |org: usize, c: usize| {
        let g = w.grants[org * COLLECTIONS.len() + c];
        Access {
            read: g & 1 != 0,
            write: g & 2 != 0,
        }
    };
    for (oi, o) in orgs.iter().enumerate() {
        for (ci, c) in collections.iter().enumerate() {
            let access = grant_of(oi, ci);
            if access != Access::default() {
                store
                    .set_grant(&Grant {
                        org: (*o).into(),
                        collection: (*c).into(),
                        access,
                    })
                    .unwrap();
            }
        }
    }
    let mut users = Vec::new();
    for (i, u) in w.users.iter().enumerate() {
        let oi = u.org.index(orgs.len());
        let name = user_name(i);
        store
            .create_user(&User {
                name: name.clone(),
                org: orgs[oi].into(),
                password_phc: None,
                is_admin: u.admin,
                generation: 0,
                disabled: false,
            })
            .unwrap();
        let scope = [
            TokenScope::Full,
            TokenScope::ReadOnly,
            TokenScope::WriteOnly,
        ][usize::from(u.scope)];
        let access = collections
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                let g = grant_of(oi, ci);
                // The token's scope narrows the organization's grant.
                let eff = match scope {
                    TokenScope::Full => g,
                    TokenScope::ReadOnly => Access {
                        read: g.read,
                        write: false,
                    },
                    TokenScope::WriteOnly => Access {
                        read: false,
                        write: g.write,
                    },
                };
                (*c, eff)
            })
            .collect();
        users.push(LocalUser {
            principal: Principal {
                user: name,
                org: orgs[oi].into(),
                is_admin: u.admin,
                scope,
            },
            access,
        });
    }

    // The operator's accepted markings, in the documented form.
    let mut accepted = BTreeMap::new();
    for (i, a) in &w.accepted {
        accepted.insert(ACCEPTABLE[*i], *a);
    }
    if !accepted.is_empty() {
        let map: serde_json::Map<String, Value> = accepted
            .iter()
            .map(|(id, a)| {
                let v = match a {
                    AcceptAs::Statement => json!({"as": "statement"}),
                    AcceptAs::Tlp(l) => json!({"as": "tlp", "level": TLP_NAMES[usize::from(*l)]}),
                    AcceptAs::Pap(l) => json!({"as": "pap", "level": PAP_NAMES[usize::from(*l)]}),
                };
                ((*id).to_string(), v)
            })
            .collect();
        store
            .set_meta(ACCEPTED_MARKINGS_KEY, &Value::Object(map).to_string())
            .unwrap();
    }

    // Agreements: the model knows them all; the node is given only those in
    // force.
    let mut magreements = Vec::new();
    let mut views = Vec::new();
    for (i, a) in w.agreements.iter().enumerate() {
        let mut parties: Vec<&str> = PARTNERS
            .iter()
            .enumerate()
            .filter(|(b, _)| a.partners & (1 << b) != 0)
            .map(|(_, p)| *p)
            .collect();
        if a.with_this_node {
            parties.insert(0, NODE);
        }
        let in_force = a.status <= 1;
        if a.with_stranger && !in_force {
            parties.push(STRANGER);
        }
        let scope_collections: Vec<String> = COLLECTIONS
            .iter()
            .chain([&ABSENT_COLLECTION])
            .enumerate()
            .filter(|(b, _)| a.collections & (1 << b) != 0)
            .map(|(_, c)| (*c).to_string())
            .collect();
        let scope_types: Vec<String> = TYPES
            .iter()
            .enumerate()
            .filter(|(b, _)| a.types & (1 << b) != 0)
            .map(|(_, t)| (*t).to_string())
            .collect();
        magreements.push(MAgreement {
            id: agreement_id(i),
            in_force,
            parties: parties.iter().map(|p| (*p).to_string()).collect(),
            collections: scope_collections.iter().cloned().collect(),
            types: scope_types.iter().cloned().collect(),
            max_tlp: a.max_tlp,
            pap: a.pap,
        });
        if in_force {
            views.push(AgreementView {
                id: agreement_id(i),
                version: 1,
                digest: format!("digest-{i}"),
                title: format!("Agreement {i}"),
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
                scope: Scope {
                    collections: scope_collections,
                    object_types: scope_types,
                    max_tlp: tlp(a.max_tlp),
                    pap: pap(a.pap),
                },
                redistribution: Redistribution::Parties,
                sightings: Sightings {
                    send_to_originator: false,
                    anonymized: false,
                },
                retention_after_termination: Retention::Delete,
                notice_period_days: 30,
                valid_from: "2024-01-01T00:00:00Z".into(),
                valid_until: "2099-01-01T00:00:00Z".into(),
                terminating_at: (a.status == 1).then(|| "2099-01-01T00:00:00Z".to_string()),
            });
        }
    }
    let unmarked = w.unmarked;
    let model = Model {
        unmarked,
        accepted,
        agreements: magreements,
    };

    // The versions, in a random posting order.
    let mut posts = Vec::new();
    for (oi, o) in w.objects.iter().enumerate() {
        let ty = TYPES[o.object_type];
        let definition = (o.object_type == MARKING_DEFINITION).then(|| {
            let d = usize::from(o.definition);
            if d < 14 {
                Some(d)
            } else if d == 14 {
                Some(14)
            } else {
                None
            }
        });
        let id = match definition {
            Some(Some(d)) if d < 14 => MARKS[d].0.to_string(),
            Some(Some(_)) => SPOOF.to_string(),
            _ => object_id(ty, oi),
        };
        // A marking definition has one version (it has no `modified`).
        let versions = if definition.is_some() {
            &o.versions[..1]
        } else {
            &o.versions[..]
        };
        for (vi, v) in versions.iter().enumerate() {
            posts.push((v.post, oi, vi, ty, id.clone(), definition.flatten(), v));
        }
    }
    posts.sort_by_key(|p| (p.0, p.1, p.2));

    let store: Arc<dyn Store> = Arc::new(store);
    let mut stored: BTreeMap<(&'static str, String), Vec<MVersion>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    let mut notes = BTreeMap::new();
    for (n, (_, _, _, ty, id, definition, v)) in posts.into_iter().enumerate() {
        let collection = collections[v.collection.index(collections.len())];
        let mut refs: Vec<(&'static str, bool)> = Vec::new();
        for (m, granular) in &v.marks {
            let mid = MARKS[*m].0;
            // A marking definition must not mark itself (STIX 2.1 §7.2.2).
            if mid != id && !refs.iter().any(|r| r.0 == mid) {
                refs.push((mid, *granular));
            }
        }
        let mut recipients: Vec<(String, String)> = Vec::new();
        for (node, u) in &v.recipients {
            let node = match node {
                0 => NODE,
                1..=3 => PARTNERS[usize::from(*node) - 1],
                _ => STRANGER,
            };
            let ui = u.index(w.users.len() + 1);
            let r = (node.to_string(), user_name(ui));
            if !recipients.contains(&r) {
                recipients.push(r);
            }
        }
        let origin = v.received.as_ref().map(|r| {
            let node = match r.originator {
                0 => NODE,
                1..=3 => PARTNERS[usize::from(r.originator) - 1],
                _ => STRANGER,
            };
            let named: BTreeSet<String> = PARTNERS
                .iter()
                .chain([&STRANGER])
                .enumerate()
                .filter(|(b, _)| r.named & (1 << b) != 0)
                .map(|(_, n)| (*n).to_string())
                .collect();
            let terms = match r.redistribution {
                0 => model::Terms::Nobody,
                1 => model::Terms::Parties,
                _ => model::Terms::Named(named),
            };
            let a = r.agreement.index(w.agreements.len() + 1);
            let agreement = if a < w.agreements.len() {
                agreement_id(a)
            } else {
                UNKNOWN_AGREEMENT.to_string()
            };
            MOrigin {
                node: node.to_string(),
                terms,
                agreement,
            }
        });
        let (source_org, source_user) = match v.submitter {
            // Received: the partner shared it with the host organization;
            // no submitting user.
            _ if origin.is_some() => (None, None),
            None => (None, None),
            Some(u) => {
                let lu = &users[u.index(users.len())].principal;
                let org = if lu.org == HOST && !v.host_named {
                    None
                } else {
                    Some(lu.org.clone())
                };
                (org, Some(lu.user.clone()))
            }
        };
        let object = stix_object(
            ty,
            &id,
            definition,
            v.t,
            &refs,
            v.lang_marking,
            &recipients,
            n,
        );
        let raw = object.to_string();
        let mut new =
            anyam_taxii::ingest::prepare_from(&raw, source_org.as_deref(), source_user.as_deref())
                .unwrap_or_else(|e| panic!("generated object rejected: {} {raw}", e.message));
        if let Some(o) = &origin {
            // As the partner sync stores what it received.
            new.release_label = anyam_policy::label_of(&object)
                .received(Origin {
                    node_id: o.node.clone(),
                    redistribution: match &o.terms {
                        model::Terms::Nobody => Redistribution::None,
                        model::Terms::Parties => Redistribution::Parties,
                        model::Terms::Named(n) => Redistribution::Named {
                            recipients: n.iter().cloned().collect(),
                        },
                    },
                    agreement: o.agreement.clone(),
                })
                .key();
        }
        let version = new
            .version
            .clone()
            .expect("every generated object has a version");
        let order = new
            .version_micros
            .expect("every generated object has a version");
        let label = new.release_label.clone();
        let out = store
            .put_objects(collection, std::slice::from_ref(&new))
            .unwrap();
        let key = (collection, id.clone());
        let dup = stored
            .get(&key)
            .is_some_and(|vs| vs.iter().any(|s| s.version == version));
        ids.insert(id.clone());
        if dup {
            // The same id and version again: nothing is stored.
            assert!(
                !matches!(out[0], PutOutcome::Added(_)),
                "a repeated version was stored again: {out:?}"
            );
            continue;
        }
        assert!(matches!(out[0], PutOutcome::Added(_)), "{out:?}");
        notes.insert(
            (collection, id.clone(), version.clone()),
            format!("label {label} object {raw}"),
        );
        stored.entry(key).or_default().push(MVersion {
            id: id.clone(),
            object_type: ty,
            collection,
            order,
            version,
            marks: refs.iter().map(|r| r.0).collect(),
            standard_definition: matches!(definition, Some(d) if d < 14),
            recipients: recipients.into_iter().collect(),
            source_org,
            source_user,
            origin,
        });
    }

    let gate = Gate::new(
        store,
        PolicyConfig {
            node_id: NODE.into(),
            host_org: HOST.into(),
            unmarked: tlp(unmarked),
        },
        Arc::new(Fixed(AgreementsInForce {
            schema_version: 1,
            evaluated_at: "2025-01-01T00:00:00Z".into(),
            agreements: views,
        })),
    );
    Node {
        _dir: dir,
        gate,
        model,
        users,
        collections,
        stored,
        ids,
        notes,
        page_limit: w.page_limit,
    }
}

// --- checking -------------------------------------------------------------------

type Released = BTreeSet<(String, String)>;

fn query(versions: &[VersionSel], ids: &[&str], limit: usize) -> Query {
    Query {
        ids: ids.iter().map(|s| (*s).to_string()).collect(),
        versions: versions.to_vec(),
        limit,
        ..Query::default()
    }
}

/// Which versions of one id a version filter selects, among the versions
/// the reader may see: `first` and `last` are the reader's own (a newer
/// version it may not see does not exist for it).
fn selected<'a>(vs: &'a [MVersion], sel: Option<&VersionSel>) -> Vec<&'a MVersion> {
    match sel {
        Some(VersionSel::All) => vs.iter().collect(),
        Some(VersionSel::First) => vs.iter().min_by_key(|v| v.order).into_iter().collect(),
        Some(VersionSel::Last) | None => vs.iter().max_by_key(|v| v.order).into_iter().collect(),
        Some(VersionSel::At(_)) => unreachable!(),
    }
}

impl Node {
    fn expected(
        &self,
        collection: &str,
        id: Option<&str>,
        sel: Option<&VersionSel>,
        sees: &dyn Fn(&MVersion) -> bool,
    ) -> Released {
        self.stored
            .iter()
            .filter(|((c, i), _)| *c == collection && id.is_none_or(|id| id == i))
            .flat_map(|(_, vs)| {
                let visible: Vec<MVersion> = vs.iter().filter(|v| sees(v)).cloned().collect();
                selected(&visible, sel)
                    .into_iter()
                    .map(|v| (v.id.clone(), v.version.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn compare(
        &self,
        who: &str,
        what: &str,
        collection: &str,
        got: &Released,
        want: &Released,
    ) -> Result<(), TestCaseError> {
        if got == want {
            return Ok(());
        }
        let mut msg = format!("{who}, {what}, collection {collection}:\n");
        for (id, v) in got.difference(want) {
            msg.push_str(&format!(
                "  LEAKED {id} {v}: {}\n",
                self.notes
                    .get(&(
                        *COLLECTIONS.iter().find(|c| **c == collection).unwrap(),
                        id.clone(),
                        v.clone()
                    ))
                    .map_or("?", String::as_str)
            ));
        }
        for (id, v) in want.difference(got) {
            msg.push_str(&format!(
                "  WITHHELD {id} {v}: {}\n",
                self.notes
                    .get(&(
                        *COLLECTIONS.iter().find(|c| **c == collection).unwrap(),
                        id.clone(),
                        v.clone()
                    ))
                    .map_or("?", String::as_str)
            ));
        }
        Err(TestCaseError::fail(msg))
    }
}

fn set_o(p: &Page<StoredObject>) -> Released {
    p.items
        .iter()
        .map(|o| (o.id.clone(), o.version.clone()))
        .collect()
}

fn set_m(p: &Page<ManifestEntry>) -> Released {
    p.items
        .iter()
        .map(|o| (o.id.clone(), o.version.clone()))
        .collect()
}

/// Follow `next` to the end; every page in `date_added` order, no repeats.
fn paged<T>(
    mut fetch: impl FnMut(Option<String>) -> Result<Page<T>, Denied>,
    key: impl Fn(&T) -> ((String, String), i64),
    limit: usize,
) -> Result<Released, TestCaseError> {
    let mut out = Released::new();
    let mut last = i64::MIN;
    let mut next = None;
    for _ in 0..10_000 {
        let page = fetch(next.take()).map_err(|e| TestCaseError::fail(format!("paging: {e}")))?;
        prop_assert!(page.items.len() <= limit, "a page longer than its limit");
        for item in &page.items {
            let (k, at) = key(item);
            prop_assert!(at > last, "pages out of date_added order");
            last = at;
            prop_assert!(out.insert(k), "an item repeated across pages");
        }
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok(out),
        }
    }
    Err(TestCaseError::fail("paging does not end"))
}

const BIG: usize = 100_000;

fn check_local(node: &Node, u: &LocalUser) -> Result<(), TestCaseError> {
    let g = &node.gate;
    let p = &u.principal;
    let who = format!("local {} of {} ({:?})", p.user, p.org, p.scope);
    for &c in &node.collections {
        let access = u.access[c];
        let sees = |v: &MVersion| node.model.local_sees(&p.user, &p.org, access.read, v);
        if !access.read {
            // No read right: the collection is not found (no right at all)
            // or forbidden (it may write); nothing is released either way.
            for r in [
                g.objects(p, API_ROOT, c, &query(&[], &[], BIG)).map(|_| ()),
                g.objects(p, API_ROOT, c, &query(&[VersionSel::All], &[], BIG))
                    .map(|_| ()),
                g.manifest(p, API_ROOT, c, &query(&[], &[], BIG))
                    .map(|_| ()),
                g.versions(
                    p,
                    API_ROOT,
                    c,
                    "indicator--00000000-0000-4000-8000-000000000000",
                    &query(&[], &[], BIG),
                )
                .map(|_| ()),
            ] {
                match r {
                    Err(Denied::NotFound) => {
                        prop_assert!(!access.write, "{who}: {c} not found despite a write right")
                    }
                    Err(Denied::Forbidden(_)) => {
                        prop_assert!(access.write, "{who}: {c} forbidden without any right")
                    }
                    Ok(()) => prop_assert!(false, "{who}: read {c} without the read right"),
                    Err(e) => prop_assert!(false, "{who}: {e}"),
                }
            }
            continue;
        }
        let fail = |e: Denied| TestCaseError::fail(format!("{who}: {c}: {e}"));
        for (name, sel) in [
            ("objects (default last)", None),
            ("objects last", Some(VersionSel::Last)),
            ("objects first", Some(VersionSel::First)),
            ("objects all", Some(VersionSel::All)),
        ] {
            let sels: Vec<VersionSel> = sel.iter().cloned().collect();
            let got = set_o(
                &g.objects(p, API_ROOT, c, &query(&sels, &[], BIG))
                    .map_err(fail)?,
            );
            node.compare(
                &who,
                name,
                c,
                &got,
                &node.expected(c, None, sel.as_ref(), &sees),
            )?;
        }
        for (name, sel) in [
            ("manifest (default last)", None),
            ("manifest all", Some(VersionSel::All)),
        ] {
            let sels: Vec<VersionSel> = sel.iter().cloned().collect();
            let got = set_m(
                &g.manifest(p, API_ROOT, c, &query(&sels, &[], BIG))
                    .map_err(fail)?,
            );
            node.compare(
                &who,
                name,
                c,
                &got,
                &node.expected(c, None, sel.as_ref(), &sees),
            )?;
        }
        let got = set_o(
            &g.objects_via(
                p,
                API_ROOT,
                c,
                &query(&[VersionSel::All], &[], BIG),
                Path::Export,
            )
            .map_err(fail)?,
        );
        node.compare(
            &who,
            "export all",
            c,
            &got,
            &node.expected(c, None, Some(&VersionSel::All), &sees),
        )?;
        for id in &node.ids {
            let got = set_m(
                &g.versions(p, API_ROOT, c, id, &query(&[], &[], BIG))
                    .map_err(fail)?,
            );
            node.compare(
                &who,
                &format!("versions of {id}"),
                c,
                &got,
                &node.expected(c, Some(id), Some(&VersionSel::All), &sees),
            )?;
            let got = set_o(
                &g.objects(p, API_ROOT, c, &query(&[], &[id], BIG))
                    .map_err(fail)?,
            );
            node.compare(
                &who,
                &format!("object {id}"),
                c,
                &got,
                &node.expected(c, Some(id), None, &sees),
            )?;
            let got = set_o(
                &g.objects(p, API_ROOT, c, &query(&[VersionSel::All], &[id], BIG))
                    .map_err(fail)?,
            );
            node.compare(
                &who,
                &format!("object {id}, all versions"),
                c,
                &got,
                &node.expected(c, Some(id), Some(&VersionSel::All), &sees),
            )?;
        }
        let limit = node.page_limit;
        let got = paged(
            |next| {
                let mut q = query(&[VersionSel::All], &[], limit);
                q.next = next;
                g.objects(p, API_ROOT, c, &q)
            },
            |o: &StoredObject| ((o.id.clone(), o.version.clone()), o.date_added),
            limit,
        )?;
        node.compare(
            &who,
            &format!("objects all, pages of {limit}"),
            c,
            &got,
            &node.expected(c, None, Some(&VersionSel::All), &sees),
        )?;
        let got = paged(
            |next| {
                let mut q = query(&[], &[], limit);
                q.next = next;
                g.manifest(p, API_ROOT, c, &q)
            },
            |e: &ManifestEntry| ((e.id.clone(), e.version.clone()), e.date_added),
            limit,
        )?;
        node.compare(
            &who,
            &format!("manifest, pages of {limit}"),
            c,
            &got,
            &node.expected(c, None, None, &sees),
        )?;
    }
    // Search spans every collection the user may read, newest versions only
    // (the same `last` as above).
    let (hits, more) = g
        .search(
            p,
            API_ROOT,
            &Search {
                words: vec![SEARCH_WORD.into()],
                limit: BIG,
                ..Search::default()
            },
        )
        .map_err(|e| TestCaseError::fail(format!("{who}: search: {e}")))?;
    prop_assert!(!more);
    for &c in &node.collections {
        let access = u.access[c];
        let sees = |v: &MVersion| node.model.local_sees(&p.user, &p.org, access.read, v);
        let got: Released = hits
            .iter()
            .filter(|h| h.collection == c)
            .map(|h| (h.object.id.clone(), h.object.version.clone()))
            .collect();
        node.compare(
            &who,
            "search",
            c,
            &got,
            &node.expected(c, None, None, &sees),
        )?;
    }
    Ok(())
}

/// A collection outside every agreement with the partner does not exist
/// for it (not found): for the comparison, it released nothing.
fn absent_as_empty<T>(r: Result<Page<T>, Denied>) -> Result<Page<T>, Denied> {
    match r {
        Err(Denied::NotFound) => Ok(Page {
            items: Vec::new(),
            next: None,
        }),
        other => other,
    }
}

fn check_partner(node: &Node, partner: &str) -> Result<(), TestCaseError> {
    let g = &node.gate;
    let who = format!("partner {partner}");
    let sees = |v: &MVersion| node.model.partner_sees(partner, v);
    for &c in &node.collections {
        let fail = |e: Denied| TestCaseError::fail(format!("{who}: {c}: {e}"));
        for (name, sel) in [
            ("objects (default last)", None),
            ("objects first", Some(VersionSel::First)),
            ("objects all", Some(VersionSel::All)),
        ] {
            let sels: Vec<VersionSel> = sel.iter().cloned().collect();
            let got = set_o(
                &absent_as_empty(g.partner_objects(
                    partner,
                    c,
                    &query(&sels, &[], BIG),
                    Path::Sync,
                ))
                .map_err(fail)?,
            );
            node.compare(
                &who,
                name,
                c,
                &got,
                &node.expected(c, None, sel.as_ref(), &sees),
            )?;
        }
        for (name, sel) in [
            ("manifest (default last)", None),
            ("manifest all", Some(VersionSel::All)),
        ] {
            let sels: Vec<VersionSel> = sel.iter().cloned().collect();
            let got = set_m(
                &absent_as_empty(g.partner_manifest(
                    partner,
                    c,
                    &query(&sels, &[], BIG),
                    Path::Sync,
                ))
                .map_err(fail)?,
            );
            node.compare(
                &who,
                name,
                c,
                &got,
                &node.expected(c, None, sel.as_ref(), &sees),
            )?;
        }
        for id in &node.ids {
            let got = set_o(
                &absent_as_empty(g.partner_objects(
                    partner,
                    c,
                    &query(&[VersionSel::All], &[id], BIG),
                    Path::Sync,
                ))
                .map_err(fail)?,
            );
            node.compare(
                &who,
                &format!("object {id}, all versions"),
                c,
                &got,
                &node.expected(c, Some(id), Some(&VersionSel::All), &sees),
            )?;
        }
        let limit = node.page_limit;
        let got = paged(
            |next| {
                let mut q = query(&[VersionSel::All], &[], limit);
                q.next = next;
                absent_as_empty(g.partner_objects(partner, c, &q, Path::Stream))
            },
            |o: &StoredObject| ((o.id.clone(), o.version.clone()), o.date_added),
            limit,
        )?;
        node.compare(
            &who,
            &format!("objects all, pages of {limit}"),
            c,
            &got,
            &node.expected(c, None, Some(&VersionSel::All), &sees),
        )?;
        let got = paged(
            |next| {
                let mut q = query(&[], &[], limit);
                q.next = next;
                absent_as_empty(g.partner_manifest(partner, c, &q, Path::Sync))
            },
            |e: &ManifestEntry| ((e.id.clone(), e.version.clone()), e.date_added),
            limit,
        )?;
        node.compare(
            &who,
            &format!("manifest, pages of {limit}"),
            c,
            &got,
            &node.expected(c, None, None, &sees),
        )?;
    }
    Ok(())
}

fn check_locals(w: &World) -> Result<(), TestCaseError> {
    let node = build(w);
    for u in &node.users {
        check_local(&node, u)?;
    }
    Ok(())
}

fn check_partners(w: &World) -> Result<(), TestCaseError> {
    let node = build(w);
    for p in PARTNERS.iter().chain([&STRANGER]) {
        check_partner(&node, p)?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

proptest! {
    #![proptest_config(Config {
        cases: cases(),
        // A failure prints its minimal case; nothing is written to the tree.
        failure_persistence: None,
        ..Config::default()
    })]

    /// Every local user, every read path.
    #[test]
    fn released_to_local_users_is_exactly_permitted(w in world()) {
        check_locals(&w)?;
    }

    /// Every partner node, every read path.
    #[test]
    fn released_to_partners_is_exactly_permitted(w in world()) {
        check_partners(&w)?;
    }
}
