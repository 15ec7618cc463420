//! The signed page: what a node serves a partner, on a pull (a TAXII
//! envelope) and on the live stream (the same envelope in an event).
//!
//! # Wire format
//!
//! A TAXII 2.1 envelope (§3.7) whose `objects` are the objects exactly as
//! stored, with three properties of ours beside `more` and `next`:
//!
//! ```json
//! {
//!   "more": false,
//!   "objects": [ { "type": "indicator", "id": "indicator--…", … } ],
//!   "x_anyam_provenance": { "document": { "type": "anyam-provenance-manifest", … },
//!                           "signatures": [ … ] },
//!   "x_anyam_originator_manifests": [ { "document": { … }, "signatures": [ … ] } ],
//!   "x_anyam_date_added_last": "2026-03-01T12:00:00.123456Z"
//! }
//! ```
//!
//! `x_anyam_provenance` is the publisher's signed manifest of exactly the
//! objects of the page (`anyam_trust::provenance`), under the agreement it
//! published them under (signed over its head, `anyam_trust::provenance`).
//! `x_anyam_originator_manifests` holds, for the objects the publisher
//! relays, the heads of the originators' own signed manifests: each
//! relayed entry carries its inclusion proof in its originator's, so the
//! receiver learns nothing of the originator's other entries.
//! `x_anyam_date_added_last` is the publisher's `date_added` of the last
//! object (also sent as `X-TAXII-Date-Added-Last` on a pull): the
//! receiver's next `added_after`. A standard TAXII client reads the page
//! as an ordinary envelope.

use std::collections::BTreeMap;

use anyam_policy::{Gate, Path};
use anyam_store::{Micros, Query, VersionSel};
use anyam_trust::provenance::{InclusionProof, Manifest, ManifestTree, ObjectKey, Origin};
use anyam_trust::{AgreementRef, AgreementView, Redistribution, Signed};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{FederationError, Result};
use crate::state::{FederationDb, Provenance};

/// A signed page as it travels.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Box<RawValue>>,
    pub x_anyam_provenance: Signed,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub x_anyam_originator_manifests: Vec<Signed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_anyam_date_added_last: Option<String>,
}

/// A page built for a partner, with what the audit log records of it.
#[derive(Debug)]
pub struct Built {
    pub envelope: Envelope,
    /// `date_added` of the first and last object, if any.
    pub first: Option<Micros>,
    pub last: Option<Micros>,
    /// The objects released, as (id, version).
    pub released: Vec<(String, String)>,
    /// The agreement named in the manifest.
    pub agreement: AgreementRef,
}

/// What the page is for.
#[derive(Debug, Clone)]
pub struct PageRequest<'a> {
    pub partner: &'a str,
    pub collection: &'a str,
    pub added_after: Option<Micros>,
    pub limit: usize,
    pub via: Path,
}

/// The agreement a page for `partner` from `collection` is published
/// under: of the agreements in force between the two nodes that cover the
/// collection, the one with the most restrictive redistribution terms
/// (then the lowest id), so a receiver is never told it may pass on more
/// than every applicable agreement allows.
pub fn agreement_for<'a>(
    agreements: &'a anyam_trust::AgreementsInForce,
    local: &str,
    partner: &'a str,
    collection: &str,
) -> Option<&'a AgreementView> {
    agreements
        .with_party(partner)
        .filter(|a| a.parties.iter().any(|p| p.node_id == local))
        .filter(|a| {
            a.scope.collections.is_empty() || a.scope.collections.iter().any(|c| c == collection)
        })
        .min_by(|x, y| {
            rank(&x.redistribution)
                .cmp(&rank(&y.redistribution))
                .then_with(|| x.id.cmp(&y.id))
        })
}

fn rank(r: &Redistribution) -> u8 {
    match r {
        Redistribution::None => 0,
        Redistribution::Parties => 1,
        Redistribution::Named { .. } => 2,
    }
}

/// Build and sign one page of `collection` for a partner: the objects the
/// release decision gives it (through the [`Gate`], nothing else), every
/// version, in `date_added` order after `added_after`.
///
/// Objects this node received from another node are listed with their
/// originator's terms, the head of the originator's manifest and the
/// inclusion proof of the originator's entry; an object whose label says
/// it was received but whose provenance is not recorded here is never
/// presented as this node's own: it is withheld, and a warning logged.
pub fn build(
    gate: &Gate,
    db: &FederationDb,
    key: &SigningKey,
    req: &PageRequest<'_>,
) -> Result<Built> {
    let rules = gate
        .rules(true)
        .map_err(|e| FederationError::Policy(e.to_string()))?;
    let local = rules.node_id.as_str();
    let agreement = agreement_for(&rules.agreements, local, req.partner, req.collection)
        .ok_or_else(|| FederationError::Policy("no agreement covers the collection".into()))?;
    let aref = AgreementRef {
        id: agreement.id.clone(),
        version: agreement.version,
    };
    let q = Query {
        added_after: req.added_after,
        versions: vec![VersionSel::All],
        limit: req.limit,
        ..Query::default()
    };
    let page = gate
        .partner_objects(req.partner, req.collection, &q, req.via)
        .map_err(|e| FederationError::Policy(e.to_string()))?;
    // Which rows were received from another node: their labels say so.
    let labels = gate
        .class_labels(req.collection)
        .map_err(|e| FederationError::Policy(e.to_string()))?;
    let mut manifest = Manifest::new(local, req.collection, aref.clone(), jiff::Timestamp::now());
    let mut originators: BTreeMap<String, Signed> = BTreeMap::new();
    // The trees of originators' manifests received whole, built once a
    // page.
    let mut trees: BTreeMap<String, Option<ManifestTree>> = BTreeMap::new();
    let mut objects = Vec::with_capacity(page.items.len());
    let mut released = Vec::with_capacity(page.items.len());
    let (mut first, mut last) = (None, None);
    for o in page.items {
        // The cursor passes withheld rows too.
        first.get_or_insert(o.date_added);
        last = Some(o.date_added);
        // The digest the store computed from this very text when it stored
        // it: a page is signed without parsing its objects again. (Were the
        // text and its digest ever apart, the receiver's own digest of the
        // text would refuse the page.)
        let key_of = ObjectKey {
            id: o.id.clone(),
            version: (!o.versionless).then(|| o.version.clone()),
            digest: hex::encode(o.digest),
        };
        let received = labels
            .get(&o.release_class)
            .and_then(|l| l.origin.as_ref())
            .is_some_and(|origin| origin.node_id != local);
        let origin = if received {
            let p = db
                .provenance(&key_of.id, key_of.version.as_deref())?
                .filter(|p| p.digest == key_of.digest && p.originator != local);
            match p.and_then(|p| relayed_origin(db, &mut trees, p).transpose()) {
                Some(origin) => {
                    let (origin, head) = origin?;
                    if let Some(d) = &origin.manifest {
                        originators.entry(d.clone()).or_insert(head);
                    }
                    origin
                }
                None => {
                    // Never presented as this node's own, nor with terms
                    // it cannot prove: withheld.
                    tracing::warn!(
                        object = %o.id,
                        "a received version without recorded provenance (or recorded before \
                         inclusion proofs were kept) is withheld from partners"
                    );
                    continue;
                }
            }
        } else {
            Origin {
                node_id: local.to_string(),
                redistribution: agreement.redistribution.clone(),
                manifest: None,
                proof: None,
            }
        };
        manifest.push_key(key_of, origin);
        released.push((o.id, o.version));
        objects.push(
            RawValue::from_string(o.raw)
                .map_err(|e| FederationError::Protocol(format!("stored object: {e}")))?,
        );
    }
    let signed = manifest
        .sign(key)
        .map_err(|e| FederationError::Protocol(e.to_string()))?;
    let ids: Vec<&str> = released.iter().map(|(id, _)| id.as_str()).collect();
    db.record_released(req.partner, &ids)?;
    Ok(Built {
        envelope: Envelope {
            more: page.next.is_some(),
            next: None,
            objects,
            x_anyam_provenance: signed,
            x_anyam_originator_manifests: originators.into_values().collect(),
            x_anyam_date_added_last: last.map(format_micros),
        },
        first,
        last,
        released,
        agreement: aref,
    })
}

/// The origin to state for a received version when relaying it, and the
/// head of the originator's manifest to pass on with it: the recorded
/// terms, and the inclusion proof of the originator's entry (as received
/// with the object, or computed from the leaves of the originator's
/// manifest when it came from the originator). `None` when what it
/// needs was not recorded.
fn relayed_origin(
    db: &FederationDb,
    trees: &mut BTreeMap<String, Option<ManifestTree>>,
    p: Provenance,
) -> Result<Option<(Origin, Signed)>> {
    let Some(place) = p.place else {
        return Ok(None);
    };
    let proof = match place.path {
        Some(path) => InclusionProof {
            index: place.position,
            path,
            salt: place.salt,
        },
        None => {
            let tree = match trees.get(&p.manifest_digest) {
                Some(t) => t,
                None => {
                    let t = db
                        .manifest_leaves(&p.manifest_digest)?
                        .map(ManifestTree::new);
                    trees.entry(p.manifest_digest.clone()).or_insert(t)
                }
            };
            let Some(tree) = tree else {
                return Ok(None);
            };
            tree.proof(place.position, &place.salt)
                .map_err(|e| FederationError::Protocol(format!("stored manifest leaves: {e}")))?
        }
    };
    Ok(Some((
        Origin {
            node_id: p.originator,
            redistribution: place.terms,
            manifest: Some(p.manifest_digest),
            proof: Some(proof),
        },
        p.manifest,
    )))
}

/// A `date_added` as a TAXII timestamp with microseconds.
pub fn format_micros(m: Micros) -> String {
    anyam_taxii::params::fmt_micros(m)
}

/// A TAXII timestamp back to microseconds.
pub fn parse_micros(s: &str) -> Option<Micros> {
    anyam_taxii::params::parse_time(s)
}
