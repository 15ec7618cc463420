//! The one release decision: may this object version go to this reader,
//! through this path? ([`decide_release`])
//!
//! # The rules
//!
//! A node serves its **host organization** (the one that runs it) and the
//! organizations it serves, its **constituents**; together they are the
//! *local* organizations, each with users. Data on the node was shared
//! with the host organization: in TLP 2.0 terms the host organization is
//! the recipient and the constituents are its clients. **Partners** are
//! other nodes, bound by sharing agreements.
//!
//! First the version's effective level (`effective`): the most
//! restrictive of its recognized TLP markings and of the markings the
//! operator accepted ([`Accepted`]); any marking nobody recognized denies
//! release to everyone; no TLP marking at all takes the node's default for
//! unmarked data ([`Rules::unmarked`], AMBER+STRICT unless the operator
//! chose otherwise: nothing leaves the host organization).
//!
//! A local user, whose organization holds the read right on the
//! collection, receives:
//! - CLEAR, GREEN, AMBER: yes (AMBER: "the recipient organization and its
//!   clients", and every local organization is one of those);
//! - AMBER+STRICT: users of the host organization and of the organization
//!   that submitted the version;
//! - RED: only the named recipients (`user` on this node), and the user
//!   who submitted the version (kept for versions marked RED, or marked
//!   with a marking the operator may accept as RED; unmarked data with RED
//!   as the node's default, which the configuration refuses, goes to no
//!   one).
//!
//! A partner node receives a version only under an agreement in force to
//! which both it and this node are parties, whose scope covers the
//! collection and the object type, whose highest TLP is at least the
//! version's level and whose PAP is at least the version's PAP; and then:
//! - CLEAR, GREEN, AMBER: yes;
//! - AMBER+STRICT: only what the host organization itself originated
//!   (a recipient passes AMBER+STRICT on to no one);
//! - RED: only when one of the named recipients is on that node.
//!
//! A version this node **received from a partner** ([`Label::origin`]:
//! the originator and its signed redistribution terms) has the host
//! organization as its source, so local users get it by the rules above
//! (AMBER+STRICT: the host organization only; RED: the named users). To
//! another partner it goes only if, before any agreement of this node is
//! looked at, the partner is not its originator, it is CLEAR or GREEN
//! (TLP 2.0 lets a recipient share AMBER only within its organization and
//! with its clients), and the originator's terms allow that node
//! (`none`; `parties` of the originator's agreement; `named` by node id
//! or organization identity). It never counts as originated by the host.
//!
//! Partners read only through the `Sync` and `Stream` paths. Sightings
//! go back to an indicator's originator through their own decision,
//! [`decide_sighting_report`].
//!
//! Versions that are standard marking definitions ([`Label::public`]) are
//! CLEAR, so a recipient can always resolve the markings it is shown.

use std::collections::{BTreeMap, BTreeSet};

use anyam_store::Access;
use anyam_trust::{AgreementsInForce, Pap, Scope, Tlp};
use serde::{Deserialize, Serialize};

use crate::marking::{Label, Origin};

/// What the operator declared an unrecognized marking id to mean
/// (`anyam marking accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "as", content = "level", rename_all = "snake_case")]
pub enum Accepted {
    /// A statement (copyright, terms of use): carried with the object,
    /// restricts nothing.
    Statement,
    /// Means this TLP level (a platform's variant of a TLP marking).
    Tlp(Tlp),
    /// Means this PAP level.
    Pap(Pap),
}

/// Everything besides the object and the reader that the decision reads.
#[derive(Debug, Clone)]
pub struct Rules {
    /// This node's id (its recovery key id): TLP:RED recipients on this
    /// node are named with it.
    pub node_id: String,
    /// The organization that runs the node.
    pub host_org: String,
    /// Every local organization: the host and its constituents.
    pub local_orgs: BTreeSet<String>,
    /// The level of data without a TLP marking.
    pub unmarked: Tlp,
    /// Marking ids the operator declared, beyond the recognized ones.
    pub accepted: BTreeMap<String, Accepted>,
    /// The agreements in force (only partners' releases read them).
    pub agreements: AgreementsInForce,
}

/// To whom a version would be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader<'a> {
    /// A user of a local organization, with its organization's effective
    /// right on the collection (grant narrowed by the token's scope).
    Local {
        user: &'a str,
        org: &'a str,
        access: Access,
    },
    /// A partner node.
    Partner { node_id: &'a str },
}

/// The way out of the node. The rules are the same on every path; the
/// path only rules out combinations that do not exist (a local user does
/// not sync) and names the path in the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Path {
    /// TAXII get objects / get an object.
    Objects,
    /// TAXII manifest.
    Manifest,
    /// TAXII object versions.
    Versions,
    /// Deleting (the caller must see what it deletes).
    Delete,
    /// `anyam export`.
    Export,
    /// Search.
    Search,
    /// A live stream.
    Stream,
    /// Partner sync.
    Sync,
    /// The node's own detection (the host organization's use of
    /// indicators).
    Detection,
}

/// One object version, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    /// `None`: the version's label could not be read (for instance a
    /// version stored before labels existed): released to no one.
    pub label: Option<&'a Label>,
    /// The collection's id.
    pub collection: &'a str,
    pub object_type: &'a str,
}

/// Why a version is withheld. Never shown to the reader (to whom the
/// version simply does not exist); written to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Withheld {
    #[error("the version carries no readable release label")]
    Unlabelled,
    #[error("its markings cannot be read: {0}")]
    Malformed(String),
    #[error("it carries marking {0}, which this node does not recognize")]
    UnknownMarking(String),
    #[error("the organization holds no read right on the collection")]
    NoReadRight,
    #[error("organization {0} is not a local organization of this node")]
    NotLocal(String),
    #[error("TLP:AMBER+STRICT: only the host organization and the submitting organization")]
    AmberStrict,
    #[error("TLP:RED: the reader is not a named recipient")]
    NotRecipient,
    #[error("no agreement in force with partner {0}")]
    NoAgreement(String),
    #[error("outside the scope of every agreement in force with the partner ({0})")]
    OutOfScope(String),
    #[error("TLP:AMBER+STRICT data that this node did not originate is never passed on")]
    NeverOnward,
    #[error("the partner originated the version")]
    Originator,
    #[error("the agreement does not consent to sending sightings back")]
    NoSightingsConsent,
    #[error("TLP {0:?} data received from a partner is never passed on to another node")]
    NotOnward(Tlp),
    #[error("the terms of its originator {0} do not allow passing it on to this node")]
    OriginatorTerms(String),
    #[error("path {0:?} is not open to this kind of reader")]
    WrongPath(Path),
}

/// The effective TLP and PAP of a version, or why it is released to no one.
pub fn effective(label: &Label, rules: &Rules) -> Result<(Tlp, Option<Pap>), Withheld> {
    if let Some(m) = &label.malformed {
        return Err(Withheld::Malformed(m.clone()));
    }
    if label.public {
        return Ok((Tlp::Clear, None));
    }
    let (mut tlp, mut pap) = (label.tlp, label.pap);
    for id in &label.other {
        match rules.accepted.get(id) {
            Some(Accepted::Statement) => {}
            Some(Accepted::Tlp(t)) => tlp = Some(tlp.map_or(*t, |l| l.max(*t))),
            Some(Accepted::Pap(p)) => pap = Some(pap.map_or(*p, |l| l.max(*p))),
            None => return Err(Withheld::UnknownMarking(id.clone())),
        }
    }
    Ok((tlp.unwrap_or(rules.unmarked), pap))
}

/// The one decision: may `v` be released to `to` through `via`?
pub fn decide_release(v: &Version, to: &Reader, via: Path, rules: &Rules) -> Result<(), Withheld> {
    let label = v.label.ok_or(Withheld::Unlabelled)?;
    match *to {
        Reader::Local { user, org, access } => {
            if matches!(via, Path::Sync) {
                return Err(Withheld::WrongPath(via));
            }
            if !access.read {
                return Err(Withheld::NoReadRight);
            }
            if !rules.local_orgs.contains(org) {
                return Err(Withheld::NotLocal(org.to_string()));
            }
            let (tlp, _) = effective(label, rules)?;
            let source_org = label.source.org.as_deref().unwrap_or(&rules.host_org);
            match tlp {
                Tlp::Clear | Tlp::Green | Tlp::Amber => Ok(()),
                Tlp::AmberStrict if org == rules.host_org || org == source_org => Ok(()),
                Tlp::AmberStrict => Err(Withheld::AmberStrict),
                Tlp::Red => {
                    let named = label
                        .recipients
                        .iter()
                        .any(|r| r.node_id == rules.node_id && r.user == user);
                    let submitter = org == source_org && label.source.user.as_deref() == Some(user);
                    if named || submitter {
                        Ok(())
                    } else {
                        Err(Withheld::NotRecipient)
                    }
                }
            }
        }
        Reader::Partner { node_id } => {
            if !matches!(via, Path::Sync | Path::Stream) {
                return Err(Withheld::WrongPath(via));
            }
            let (tlp, pap) = effective(label, rules)?;
            let received = label.origin.as_ref().filter(|o| o.node_id != rules.node_id);
            if let Some(o) = received {
                onward(o, tlp, node_id, rules)?;
            }
            let from_host = received.is_none()
                && label
                    .source
                    .org
                    .as_deref()
                    .is_none_or(|o| o == rules.host_org);
            let mut why = None;
            let mut any = false;
            for a in rules.agreements.with_party(node_id) {
                if !a.parties.iter().any(|p| p.node_id == rules.node_id) {
                    continue;
                }
                any = true;
                if let Err(w) = within_scope(&a.scope, v, tlp, pap) {
                    why.get_or_insert(Withheld::OutOfScope(format!("{}: {w}", a.id)));
                    continue;
                }
                let ok = match tlp {
                    Tlp::Clear | Tlp::Green | Tlp::Amber => Ok(()),
                    Tlp::AmberStrict if from_host => Ok(()),
                    Tlp::AmberStrict => Err(Withheld::NeverOnward),
                    Tlp::Red if label.recipients.iter().any(|r| r.node_id == node_id) => Ok(()),
                    Tlp::Red => Err(Withheld::NotRecipient),
                };
                match ok {
                    Ok(()) => return Ok(()),
                    Err(w) => {
                        why.get_or_insert(w);
                    }
                }
            }
            if !any {
                return Err(Withheld::NoAgreement(node_id.to_string()));
            }
            Err(why.unwrap_or_else(|| Withheld::NoAgreement(node_id.to_string())))
        }
    }
}

/// May a sighting version (with label `label`) of an indicator that
/// partner `originator` sent this node under `agreement` be sent back to
/// it? Only if the agreement consents (`sightings.send_to_originator`),
/// within its highest TLP and PAP, and only the node's own sightings: not
/// sightings it received from another node, not a constituent's
/// AMBER+STRICT, not TLP:RED unless a named recipient is on the
/// originator's node, never with a marking nobody recognized.
pub fn decide_sighting_report(
    label: &Label,
    originator: &str,
    agreement: &anyam_trust::AgreementView,
    rules: &Rules,
) -> Result<(), Withheld> {
    if !agreement.sightings.send_to_originator {
        return Err(Withheld::NoSightingsConsent);
    }
    if label
        .origin
        .as_ref()
        .is_some_and(|o| o.node_id != rules.node_id)
    {
        return Err(Withheld::NeverOnward);
    }
    let (tlp, pap) = effective(label, rules)?;
    if tlp > agreement.scope.max_tlp {
        return Err(Withheld::OutOfScope(format!(
            "{}: {tlp:?} above the highest TLP {:?}",
            agreement.id, agreement.scope.max_tlp
        )));
    }
    if let Some(p) = pap
        && p > agreement.scope.pap
    {
        return Err(Withheld::OutOfScope(format!(
            "{}: PAP {p:?} above the agreement's PAP {:?}",
            agreement.id, agreement.scope.pap
        )));
    }
    let from_host = label
        .source
        .org
        .as_deref()
        .is_none_or(|o| o == rules.host_org);
    match tlp {
        Tlp::Clear | Tlp::Green | Tlp::Amber => Ok(()),
        Tlp::AmberStrict if from_host => Ok(()),
        Tlp::AmberStrict => Err(Withheld::NeverOnward),
        Tlp::Red if label.recipients.iter().any(|r| r.node_id == originator) => Ok(()),
        Tlp::Red => Err(Withheld::NotRecipient),
    }
}

/// The originator's control over a version this node received from a
/// partner, applied before any agreement of this node is looked at:
/// - it never goes back to its originator (which holds it already);
/// - only TLP:CLEAR and TLP:GREEN go on to another node: TLP 2.0 lets a
///   recipient share AMBER only with its own organization and its
///   clients, and AMBER+STRICT and RED not even that far;
/// - the originator's signed redistribution terms must allow the partner
///   ([`anyam_trust::provenance::may_pass_on`], with the parties of the
///   agreement the originator published under, as far as that agreement
///   is in force here).
fn onward(o: &Origin, tlp: Tlp, to: &str, rules: &Rules) -> Result<(), Withheld> {
    if to == o.node_id {
        return Err(Withheld::Originator);
    }
    if tlp > Tlp::Green {
        return Err(Withheld::NotOnward(tlp));
    }
    let parties: Vec<&str> = rules
        .agreements
        .agreements
        .iter()
        .filter(|a| a.id == o.agreement)
        .flat_map(|a| a.parties.iter().map(|p| p.node_id.as_str()))
        .collect();
    // Recipients may be named by node id or by the STIX identity of the
    // node's organization (as the agreements in force here know it).
    let named_identity = match &o.redistribution {
        anyam_trust::Redistribution::Named { recipients } => rules
            .agreements
            .agreements
            .iter()
            .flat_map(|a| a.parties.iter())
            .filter(|p| p.node_id == to)
            .any(|p| recipients.contains(&p.identity_id)),
        _ => false,
    };
    if named_identity
        || anyam_trust::provenance::may_pass_on_terms(
            &o.redistribution,
            &o.node_id,
            &rules.node_id,
            to,
            &parties,
        )
    {
        Ok(())
    } else {
        Err(Withheld::OriginatorTerms(o.node_id.clone()))
    }
}

/// Whether an agreement's scope admits a version: collection, object
/// type, highest TLP, PAP.
fn within_scope(s: &Scope, v: &Version, tlp: Tlp, pap: Option<Pap>) -> Result<(), String> {
    if !s.collections.is_empty() && !s.collections.iter().any(|c| c == v.collection) {
        return Err(format!("collection {} not in scope", v.collection));
    }
    if !s.object_types.is_empty() && !s.object_types.iter().any(|t| t == v.object_type) {
        return Err(format!("object type {} not in scope", v.object_type));
    }
    if tlp > s.max_tlp {
        return Err(format!("{tlp:?} above the highest TLP {:?}", s.max_tlp));
    }
    if let Some(p) = pap
        && p > s.pap
    {
        return Err(format!("PAP {p:?} above the agreement's PAP {:?}", s.pap));
    }
    Ok(())
}

/// The object types the decision can tell apart for `to` in a collection:
/// the types named in the scopes of its agreements. Any other type is
/// decided like [`OTHER_TYPE`].
pub fn distinguished_types(to: &Reader, rules: &Rules) -> BTreeSet<String> {
    match to {
        Reader::Local { .. } => BTreeSet::new(),
        Reader::Partner { node_id } => rules
            .agreements
            .with_party(node_id)
            .flat_map(|a| a.scope.object_types.iter().cloned())
            .collect(),
    }
}

/// A type name no STIX object has (types are never empty), standing for
/// "any type not named in a scope".
pub const OTHER_TYPE: &str = "";
