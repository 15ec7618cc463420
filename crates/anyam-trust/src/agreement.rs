//! Sharing agreements: the document, its versions and terminations, the
//! decision whether one is in force, and the view the policy engine reads.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::descriptor::NodeDescriptor;
use crate::error::{Result, TrustError};
use crate::keyring::Keyring;
use crate::signed::{Document, SCHEMA_VERSION, SigCheck, Signed, format_time, parse_time};

/// Keyrings of the nodes an evaluation may meet, by node id (the local
/// node's own keyring included).
pub type Keyrings = BTreeMap<String, Keyring>;

/// TLP 2.0 labels, least to most restrictive, so that `max_tlp` compares
/// with `<=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tlp {
    #[serde(rename = "clear")]
    Clear,
    #[serde(rename = "green")]
    Green,
    #[serde(rename = "amber")]
    Amber,
    #[serde(rename = "amber+strict")]
    AmberStrict,
    #[serde(rename = "red")]
    Red,
}

/// FIRST Permissible Actions Protocol levels, least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pap {
    Clear,
    Green,
    Amber,
    Red,
}

/// What may flow under the agreement. At least one of `collections` and
/// `object_types` is given; when both are, an object must match both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub collections: Vec<String>,
    #[serde(default)]
    pub object_types: Vec<String>,
    /// The most restrictive TLP that may flow.
    pub max_tlp: Tlp,
    /// The PAP under which received data may be acted on.
    pub pap: Pap,
}

/// Who a receiving party may pass the data on to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case", deny_unknown_fields)]
pub enum Redistribution {
    /// To no one.
    None,
    /// To the other parties of this agreement only.
    Parties,
    /// To the parties and these others (node ids or STIX identity ids).
    Named { recipients: Vec<String> },
}

/// Consent to send sightings of a party's indicators back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sightings {
    pub send_to_originator: bool,
    /// Whether sightings must be stripped of who saw them.
    pub anonymized: bool,
}

/// What receivers do with received data once the agreement ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Retention {
    Delete,
    /// Keep for `days` days, or indefinitely when absent.
    Keep {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        days: Option<u32>,
    },
}

/// The version an amendment replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replaces {
    pub version: u32,
    /// [`Signed::digest`] of the replaced version's document.
    pub digest: String,
}

/// One version of a sharing agreement. With more than two parties it is a
/// sharing group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    /// `agreement--<uuid>`, the same for every version.
    pub id: String,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Replaces>,
    pub created: String,
    pub title: String,
    /// The parties' node descriptors (the documents, without signatures:
    /// whether a party signed is decided with its keyring, not with keys
    /// copied into the agreement).
    pub parties: Vec<NodeDescriptor>,
    pub scope: Scope,
    pub redistribution: Redistribution,
    pub sightings: Sightings,
    pub retention_after_termination: Retention,
    pub notice_period_days: u32,
    pub valid_from: String,
    pub valid_until: String,
}

impl Document for Agreement {
    const TYPE: &'static str = "anyam-sharing-agreement";
}

/// The negotiable terms, for drafting and amending.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    pub title: String,
    pub scope: Scope,
    pub redistribution: Redistribution,
    pub sightings: Sightings,
    pub retention_after_termination: Retention,
    pub notice_period_days: u32,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
}

impl Agreement {
    /// Version 1 of a new agreement.
    pub fn draft(parties: Vec<NodeDescriptor>, terms: Terms, now: Timestamp) -> Result<Self> {
        let a = Self::build(
            format!("agreement--{}", uuid::Uuid::new_v4()),
            1,
            None,
            parties,
            terms,
            now,
        );
        a.check()?;
        Ok(a)
    }

    /// The next version, replacing `previous` (whose envelope is given so
    /// its digest is recorded). Every party signs it again.
    pub fn amend(
        previous: &Signed,
        parties: Vec<NodeDescriptor>,
        terms: Terms,
        now: Timestamp,
    ) -> Result<Self> {
        let prev: Agreement = previous.parse()?;
        let a = Self::build(
            prev.id.clone(),
            prev.version + 1,
            Some(Replaces {
                version: prev.version,
                digest: previous.digest(),
            }),
            parties,
            terms,
            now,
        );
        a.check()?;
        Ok(a)
    }

    fn build(
        id: String,
        version: u32,
        replaces: Option<Replaces>,
        parties: Vec<NodeDescriptor>,
        t: Terms,
        now: Timestamp,
    ) -> Self {
        Agreement {
            doc_type: Self::TYPE.into(),
            schema_version: SCHEMA_VERSION,
            id,
            version,
            replaces,
            created: format_time(now),
            title: t.title,
            parties,
            scope: t.scope,
            redistribution: t.redistribution,
            sightings: t.sightings,
            retention_after_termination: t.retention_after_termination,
            notice_period_days: t.notice_period_days,
            valid_from: format_time(t.valid_from),
            valid_until: format_time(t.valid_until),
        }
    }

    /// The terms of this version (to amend from).
    pub fn terms(&self) -> Result<Terms> {
        Ok(Terms {
            title: self.title.clone(),
            scope: self.scope.clone(),
            redistribution: self.redistribution.clone(),
            sightings: self.sightings,
            retention_after_termination: self.retention_after_termination,
            notice_period_days: self.notice_period_days,
            valid_from: parse_time("valid_from", &self.valid_from)?,
            valid_until: parse_time("valid_until", &self.valid_until)?,
        })
    }

    /// Format rules that need no keys.
    pub fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(TrustError::Malformed(format!("agreement: {m}")));
        let uuid_ok = self
            .id
            .strip_prefix("agreement--")
            .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok());
        if !uuid_ok {
            return bad("id must be agreement--<uuid>");
        }
        if self.version == 0 {
            return bad("version starts at 1");
        }
        match (&self.replaces, self.version) {
            (None, 1) => {}
            (Some(r), v) if v > 1 && r.version < v => {}
            _ => return bad("version 1 replaces nothing; a later version replaces an earlier one"),
        }
        if self.title.trim().is_empty() {
            return bad("title is empty");
        }
        if self.parties.len() < 2 {
            return bad("an agreement needs at least two parties");
        }
        let mut ids = BTreeSet::new();
        for p in &self.parties {
            p.check()?;
            if !ids.insert(p.node_id.as_str()) {
                return bad(&format!("party {} is listed twice", p.node_id));
            }
        }
        if self.scope.collections.is_empty() && self.scope.object_types.is_empty() {
            return bad("scope names no collection and no object type");
        }
        if let Redistribution::Named { recipients } = &self.redistribution
            && recipients.is_empty()
        {
            return bad("redistribution to named others names no one");
        }
        let from = parse_time("valid_from", &self.valid_from)?;
        let until = parse_time("valid_until", &self.valid_until)?;
        if from >= until {
            return bad("valid_from must precede valid_until");
        }
        parse_time("created", &self.created)?;
        Ok(())
    }

    pub fn party_ids(&self) -> impl Iterator<Item = &str> {
        self.parties.iter().map(|p| p.node_id.as_str())
    }

    /// The notice period as a duration.
    pub fn notice_period(&self) -> SignedDuration {
        SignedDuration::from_hours(i64::from(self.notice_period_days) * 24)
    }
}

/// A party's notice that it ends an agreement. It takes effect when the
/// notice period of the terminated version has run from `notice_given`,
/// and ends that version and every earlier one (a later version, signed
/// again by every party, is a fresh commitment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Termination {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    pub agreement_id: String,
    pub agreement_version: u32,
    /// The terminating party's node id.
    pub by: String,
    pub notice_given: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Document for Termination {
    const TYPE: &'static str = "anyam-agreement-termination";
}

impl Termination {
    /// A termination notice signed by `key` on behalf of node `by`.
    pub fn sign(
        agreement: &Agreement,
        by: &str,
        key: &SigningKey,
        now: Timestamp,
        reason: Option<String>,
    ) -> Result<Signed> {
        if !agreement.party_ids().any(|p| p == by) {
            return Err(TrustError::Inconsistent(format!(
                "node {by} is not a party to {}",
                agreement.id
            )));
        }
        let t = Termination {
            doc_type: Self::TYPE.into(),
            schema_version: SCHEMA_VERSION,
            agreement_id: agreement.id.clone(),
            agreement_version: agreement.version,
            by: by.into(),
            notice_given: format_time(now),
            reason,
        };
        let mut s = Signed::new(&t)?;
        s.sign(key);
        Ok(s)
    }
}

/// The removal of a party from an agreement (a sharing group), signed by
/// another party. It takes effect on each node as soon as the node holds
/// it: the removed node is no longer a party of that version or any
/// earlier one (nothing flows to or from it under them), and a node that
/// is itself removed holds the agreement as not in force. A later
/// version signed again by every party it names is a fresh commitment.
/// Removing the only other party of a bilateral agreement ends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Removal {
    #[serde(rename = "type")]
    pub doc_type: String,
    pub schema_version: u32,
    pub agreement_id: String,
    pub agreement_version: u32,
    /// The node removed.
    pub removed: String,
    /// The party removing it.
    pub by: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Document for Removal {
    const TYPE: &'static str = "anyam-agreement-removal";
}

impl Removal {
    /// A removal of `removed`, signed by `key` on behalf of party `by`.
    pub fn sign(
        agreement: &Agreement,
        by: &str,
        removed: &str,
        key: &SigningKey,
        now: Timestamp,
        reason: Option<String>,
    ) -> Result<Signed> {
        let r = Removal {
            doc_type: Self::TYPE.into(),
            schema_version: SCHEMA_VERSION,
            agreement_id: agreement.id.clone(),
            agreement_version: agreement.version,
            removed: removed.into(),
            by: by.into(),
            time: format_time(now),
            reason,
        };
        r.check(agreement)?;
        let mut s = Signed::new(&r)?;
        s.sign(key);
        Ok(s)
    }

    /// Both nodes are parties of `agreement`, and distinct.
    pub fn check(&self, agreement: &Agreement) -> Result<()> {
        if agreement.id != self.agreement_id {
            return Err(TrustError::Inconsistent(format!(
                "the removal is of {}, not {}",
                self.agreement_id, agreement.id
            )));
        }
        if self.by == self.removed {
            return Err(TrustError::Inconsistent(
                "a party cannot remove itself (it terminates instead)".into(),
            ));
        }
        for n in [&self.by, &self.removed] {
            if !agreement.party_ids().any(|p| p == n) {
                return Err(TrustError::Inconsistent(format!(
                    "node {n} is not a party to {}",
                    agreement.id
                )));
            }
        }
        Ok(())
    }
}

/// Apply the removals held to a view of the agreements in force at the
/// node `local`: removed parties leave the parties of the versions the
/// removal covers; an agreement that removed `local`, or that is left
/// with `local` alone, is no longer in force there.
pub fn apply_removals(view: &mut AgreementsInForce, removals: &[Removal], local: &str) {
    view.agreements.retain_mut(|a| {
        let gone: Vec<&str> = removals
            .iter()
            .filter(|r| r.agreement_id == a.id && r.agreement_version >= a.version)
            .map(|r| r.removed.as_str())
            .collect();
        if gone.contains(&local) {
            return false;
        }
        a.parties.retain(|p| !gone.contains(&p.node_id.as_str()));
        a.sharing_group = a.parties.len() > 2;
        a.parties.iter().any(|p| p.node_id != local)
    });
}

/// A termination notice as held by a node: the signed notice and when it
/// reached this node. The notice period runs from the later of the two
/// times, so a party cannot shorten it by dating its notice in the past.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub signed: Signed,
    /// `None` trusts the notice's own date (as its author does).
    pub received_at: Option<Timestamp>,
}

impl From<Signed> for Notice {
    fn from(signed: Signed) -> Self {
        Notice {
            signed,
            received_at: None,
        }
    }
}

/// Why an agreement version is not in force. Serialized with a `reason`
/// tag for JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotInForce {
    Malformed {
        detail: String,
    },
    /// A party whose keyring is unknown here (its descriptor was never
    /// imported), so its signature cannot be checked.
    UnknownParty {
        node_id: String,
    },
    MissingSignature {
        node_id: String,
    },
    BadSignature {
        node_id: String,
        key_id: String,
    },
    /// The party signed with a key that is revoked or was retired before
    /// the agreement was created.
    KeyRejected {
        node_id: String,
        key_id: String,
        detail: String,
    },
    NotYetValid {
        valid_from: String,
    },
    Expired {
        valid_until: String,
    },
    Terminated {
        by: String,
        effective: String,
    },
    Superseded {
        by_version: u32,
    },
}

impl std::fmt::Display for NotInForce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotInForce::Malformed { detail } => write!(f, "malformed: {detail}"),
            NotInForce::UnknownParty { node_id } => {
                write!(f, "party {node_id} is unknown here (import its descriptor)")
            }
            NotInForce::MissingSignature { node_id } => {
                write!(f, "no signature of party {node_id}")
            }
            NotInForce::BadSignature { node_id, key_id } => {
                write!(f, "bad signature of party {node_id} (key {key_id})")
            }
            NotInForce::KeyRejected {
                node_id,
                key_id,
                detail,
            } => write!(f, "party {node_id} signed with key {key_id}: {detail}"),
            NotInForce::NotYetValid { valid_from } => write!(f, "not valid before {valid_from}"),
            NotInForce::Expired { valid_until } => write!(f, "expired at {valid_until}"),
            NotInForce::Terminated { by, effective } => {
                write!(f, "terminated by {by}, effective {effective}")
            }
            NotInForce::Superseded { by_version } => {
                write!(f, "superseded by version {by_version}")
            }
        }
    }
}

/// An agreement version found in force.
#[derive(Debug, Clone, PartialEq)]
pub struct InForce {
    pub agreement: Agreement,
    pub digest: String,
    /// When a termination notice takes effect, if one was given.
    pub terminating_at: Option<Timestamp>,
}

/// Whether every party signed `signed` with a key its keyring accepts for
/// a document created at the agreement's `created` time.
pub fn check_signatures(
    signed: &Signed,
    keyrings: &Keyrings,
    now: Timestamp,
) -> Result<Agreement, NotInForce> {
    let a: Agreement = signed.parse().map_err(|e| NotInForce::Malformed {
        detail: e.to_string(),
    })?;
    a.check().map_err(|e| NotInForce::Malformed {
        detail: e.to_string(),
    })?;
    let created = parse_time("created", &a.created).map_err(|e| NotInForce::Malformed {
        detail: e.to_string(),
    })?;
    for party in &a.parties {
        let Some(ring) = keyrings.get(&party.node_id) else {
            return Err(NotInForce::UnknownParty {
                node_id: party.node_id.clone(),
            });
        };
        party_signed(signed, &party.node_id, ring, created, now)?;
    }
    Ok(a)
}

/// The party's signature: one by a key of its keyring that verifies and
/// that the keyring accepts. When there is none, the most telling reason.
fn party_signed(
    signed: &Signed,
    node_id: &str,
    ring: &Keyring,
    doc_time: Timestamp,
    now: Timestamp,
) -> Result<(), NotInForce> {
    let mut failure = NotInForce::MissingSignature {
        node_id: node_id.into(),
    };
    for sig in &signed.signatures {
        let Some(rec) = ring.get(&sig.key_id) else {
            continue;
        };
        match signed.check(&rec.key) {
            SigCheck::Valid => match ring.accept(&sig.key_id, doc_time, now) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    failure = NotInForce::KeyRejected {
                        node_id: node_id.into(),
                        key_id: sig.key_id.clone(),
                        detail: match e {
                            TrustError::KeyRejected { reason, .. } => reason,
                            other => other.to_string(),
                        },
                    }
                }
            },
            SigCheck::Bad | SigCheck::Absent => {
                if !matches!(failure, NotInForce::KeyRejected { .. }) {
                    failure = NotInForce::BadSignature {
                        node_id: node_id.into(),
                        key_id: sig.key_id.clone(),
                    };
                }
            }
        }
    }
    Err(failure)
}

/// Whether the agreement version `signed` is in force at `now`, given the
/// parties' keyrings, the termination notices and the other versions of
/// agreements known here (those of other agreements are ignored).
///
/// In force means, in this order of checking: well formed; signed by every
/// party with a key its keyring accepts; `valid_from <= now < valid_until`;
/// not replaced by a later version that is itself signed by all its
/// parties and has begun; not ended by a termination notice of a party
/// whose notice period has run (counted from the notice's date, or from
/// its receipt when that is later).
pub fn in_force(
    signed: &Signed,
    keyrings: &Keyrings,
    now: Timestamp,
    terminations: &[Notice],
    versions: &[Signed],
) -> Result<InForce, NotInForce> {
    let a = check_signatures(signed, keyrings, now)?;
    let malformed = |e: TrustError| NotInForce::Malformed {
        detail: e.to_string(),
    };
    let from = parse_time("valid_from", &a.valid_from).map_err(malformed)?;
    let until = parse_time("valid_until", &a.valid_until).map_err(malformed)?;
    if now < from {
        return Err(NotInForce::NotYetValid {
            valid_from: a.valid_from.clone(),
        });
    }
    if now >= until {
        return Err(NotInForce::Expired {
            valid_until: a.valid_until.clone(),
        });
    }
    for v in versions {
        let Ok(newer) = v.parse::<Agreement>() else {
            continue;
        };
        if newer.id != a.id || newer.version <= a.version {
            continue;
        }
        let Ok(newer) = check_signatures(v, keyrings, now) else {
            continue;
        };
        let begun = parse_time("valid_from", &newer.valid_from).is_ok_and(|t| t <= now);
        if begun {
            return Err(NotInForce::Superseded {
                by_version: newer.version,
            });
        }
    }
    let mut terminating_at: Option<(Timestamp, String)> = None;
    for notice in terminations {
        let t = &notice.signed;
        let Ok(n) = t.parse::<Termination>() else {
            continue;
        };
        if n.agreement_id != a.id || n.agreement_version < a.version {
            continue;
        }
        if !a.party_ids().any(|p| p == n.by) {
            continue;
        }
        let Some(ring) = keyrings.get(&n.by) else {
            continue;
        };
        let Ok(given) = parse_time("notice_given", &n.notice_given) else {
            continue;
        };
        if party_signed(t, &n.by, ring, given, now).is_err() {
            continue;
        }
        let start = notice.received_at.map_or(given, |r| r.max(given));
        let Ok(effective) = start.checked_add(a.notice_period()) else {
            continue;
        };
        if terminating_at.as_ref().is_none_or(|(e, _)| effective < *e) {
            terminating_at = Some((effective, n.by.clone()));
        }
    }
    if let Some((effective, by)) = &terminating_at
        && now >= *effective
    {
        return Err(NotInForce::Terminated {
            by: by.clone(),
            effective: format_time(*effective),
        });
    }
    Ok(InForce {
        digest: signed.digest(),
        agreement: a,
        terminating_at: terminating_at.map(|(e, _)| e),
    })
}

/// One party as the policy engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyView {
    pub node_id: String,
    pub node_name: String,
    /// The STIX identity id of the party's organization.
    pub identity_id: String,
    /// The keys that speak for the party now (normally one).
    pub key_ids: Vec<String>,
    pub taxii_url: String,
}

/// One agreement in force, flattened for the release decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementView {
    pub id: String,
    pub version: u32,
    pub digest: String,
    pub title: String,
    /// More than two parties: the member list is confidential to the
    /// parties (never released to constituents or other partners).
    pub sharing_group: bool,
    pub parties: Vec<PartyView>,
    pub scope: Scope,
    pub redistribution: Redistribution,
    pub sightings: Sightings,
    pub retention_after_termination: Retention,
    pub notice_period_days: u32,
    pub valid_from: String,
    pub valid_until: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating_at: Option<String>,
}

/// The machine-readable view of every agreement in force, for the policy
/// decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementsInForce {
    pub schema_version: u32,
    pub evaluated_at: String,
    pub agreements: Vec<AgreementView>,
}

impl AgreementsInForce {
    /// The agreements in force between the local node and `partner`.
    pub fn with_party<'a>(&'a self, partner: &'a str) -> impl Iterator<Item = &'a AgreementView> {
        self.agreements
            .iter()
            .filter(move |a| a.parties.iter().any(|p| p.node_id == partner))
    }
}

/// Build the view from evaluated agreements.
pub fn view(in_force: &[InForce], keyrings: &Keyrings, now: Timestamp) -> AgreementsInForce {
    let agreements = in_force
        .iter()
        .map(|f| {
            let a = &f.agreement;
            let parties = a
                .parties
                .iter()
                .map(|p| PartyView {
                    node_id: p.node_id.clone(),
                    node_name: p.node_name.clone(),
                    identity_id: p.identity_id().to_string(),
                    key_ids: keyrings
                        .get(&p.node_id)
                        .map(|r| {
                            r.keys()
                                .filter(|(id, _)| {
                                    r.status_at(id, now) == crate::keyring::KeyStatus::Active
                                })
                                .map(|(id, _)| id.to_string())
                                .collect()
                        })
                        .unwrap_or_default(),
                    taxii_url: p.taxii_url.clone(),
                })
                .collect();
            AgreementView {
                id: a.id.clone(),
                version: a.version,
                digest: f.digest.clone(),
                title: a.title.clone(),
                sharing_group: a.parties.len() > 2,
                parties,
                scope: a.scope.clone(),
                redistribution: a.redistribution.clone(),
                sightings: a.sightings,
                retention_after_termination: a.retention_after_termination,
                notice_period_days: a.notice_period_days,
                valid_from: a.valid_from.clone(),
                valid_until: a.valid_until.clone(),
                terminating_at: f.terminating_at.map(format_time),
            }
        })
        .collect();
    AgreementsInForce {
        schema_version: SCHEMA_VERSION,
        evaluated_at: format_time(now),
        agreements,
    }
}
