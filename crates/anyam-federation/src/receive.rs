//! Receiving a signed page from a partner: verify everything, then store.
//!
//! A page is accepted whole or not at all. Before anything is stored:
//!
//! 1. the manifest is the partner's, signed by a key its keyring accepts,
//!    and every object matches its entry byte for byte (by canonical
//!    digest) — `anyam_trust::provenance::verify_batch`;
//! 2. the agreement the manifest names is in force here, with the partner
//!    and this node among its parties;
//! 3. every relayed object comes with the head of its originator's signed
//!    manifest and an inclusion proof that the originator listed it as
//!    its own with the same digest and the same terms (each head's
//!    signature checked once per page, `OriginatorHead::verify`, then each
//!    entry's proof, `OriginatorHead::terms_of`), and those terms allow the
//!    partner to pass it on to this node (`may_pass_on`);
//! 4. every object is valid STIX 2.1 by the same rules as a TAXII POST,
//!    and within the scope of the agreement the page names, as far as its
//!    markings tell (collection, object type, highest TLP, PAP).
//!
//! A page failing any of these is rejected, recorded in the audit log as a
//! `rejection` naming the partner and the reason, and the cursor does not
//! move. An accepted page is stored with a release label that records the
//! originator and its terms (`anyam_policy::Label::received`), so that
//! every later release from this node applies them.

use std::collections::{BTreeMap, btree_map};
use std::sync::Arc;

use anyam_audit::{Event, Hash, Kind, ObjectRef};
use anyam_store::{Access, Collection, Grant, Micros, NewObject, PutOutcome, Store, StoreError};
use anyam_trust::provenance::{
    ObjectKey, OriginTerms, OriginatorHead, manifest_head, may_pass_on, verify_batch_keys,
};
use anyam_trust::{AgreementsInForce, Keyrings, Signed};
use serde_json::Value;

use crate::error::{FederationError, Result};
use crate::page::{Envelope, parse_micros};
use crate::state::{Counts, FederationDb, KeptManifest, ReceivedVersion};

/// Where the receiving side reads what it trusts now.
pub trait TrustSource: Send + Sync {
    /// Every known node's keyring (partners' and this node's).
    fn keyrings(&self) -> std::result::Result<Keyrings, String>;
    /// The agreements in force now.
    fn in_force(&self) -> std::result::Result<AgreementsInForce, String>;
    /// Every partner whose descriptor this node holds: node id, name,
    /// TAXII URL of its partner listener.
    fn partners(&self) -> std::result::Result<Vec<(String, String, String)>, String>;
    /// The agreements that were in force once and have ended (terminated
    /// or expired; no version in force now), with their retention terms.
    fn ended(&self) -> std::result::Result<Vec<Ended>, String>;
    /// Apply a signed document a partner sent (`kind` `agreement` or
    /// `termination`): verify and store it. `Ok` describes what was done,
    /// `Err` why it was refused.
    fn apply_notice(
        &self,
        from: &str,
        kind: &str,
        document: &Signed,
    ) -> std::result::Result<String, String>;
}

/// An agreement that has ended, and what its terms say to do with what
/// was received under it.
#[derive(Debug, Clone)]
pub struct Ended {
    pub id: String,
    pub retention: anyam_trust::Retention,
    /// When it ended.
    pub at: jiff::Timestamp,
}

/// Records audit events; the node's auditor in production.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: Event);
}

impl AuditSink for anyam_taxii::audit::Auditor {
    fn record(&self, event: Event) {
        anyam_taxii::audit::Auditor::record(self, event);
    }
}

/// A partner collection as the partner lists it.
#[derive(Debug, Clone)]
pub struct RemoteCollection {
    pub id: String,
    pub title: String,
}

/// Everything receiving needs.
#[derive(Clone)]
pub struct Receiver {
    pub store: Arc<dyn Store>,
    pub db: Arc<FederationDb>,
    pub trust: Arc<dyn TrustSource>,
    pub audit: Option<Arc<dyn AuditSink>>,
    /// This node's id.
    pub local_node: String,
    /// The local API root received collections are kept in.
    pub api_root: String,
    /// The host organization, which gets read access to them.
    pub host_org: String,
    /// Called after objects were stored (wakes this node's live streams).
    pub on_stored: Arc<dyn Fn() + Send + Sync>,
}

/// What one accepted page did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Received {
    pub counts: Counts,
    /// The partner's `date_added` of the page's last object.
    pub last: Option<Micros>,
}

impl Receiver {
    /// Verify and store one page of `collection` from `partner`
    /// (blocking: call it on a blocking thread).
    ///
    /// Pages go into collections kept for partners: one of this node's
    /// own collections is never written by a partner's page (a partner
    /// naming one is refused), except by [`Receiver::receive_into_own`].
    pub fn receive(
        &self,
        partner: &str,
        partner_name: &str,
        collection: &RemoteCollection,
        envelope: &Envelope,
    ) -> Result<Received> {
        self.receive_as(partner, partner_name, collection, envelope, false)
    }

    /// [`Receiver::receive`] into one of this node's own collections (a
    /// partner's sightings of this node's indicators).
    pub(crate) fn receive_into_own(
        &self,
        partner: &str,
        collection: &RemoteCollection,
        envelope: &Envelope,
    ) -> Result<Received> {
        self.receive_as(partner, partner, collection, envelope, true)
    }

    fn receive_as(
        &self,
        partner: &str,
        partner_name: &str,
        collection: &RemoteCollection,
        envelope: &Envelope,
        own: bool,
    ) -> Result<Received> {
        let checked = self.verify_as(partner, collection, envelope, own)?;
        self.store_pages(partner, partner_name, collection, vec![checked])
    }

    /// The first half of [`Receiver::receive`]: every check, nothing
    /// stored (a refusal is audited as there). Verifying the next page
    /// while this one is committed ([`Receiver::commit`]) keeps both
    /// halves busy.
    pub fn verify(
        &self,
        partner: &str,
        collection: &RemoteCollection,
        envelope: Envelope,
    ) -> Result<Verified> {
        // The objects' texts and the manifests' heads are in `checked`:
        // nothing else of the envelope is kept (verified pages may wait
        // for a commit).
        let checked = self.verify_as(partner, collection, &envelope, false)?;
        Ok(Verified { checked })
    }

    /// The second half of [`Receiver::receive`]: store verified pages of
    /// one collection, in order, in one transaction. `last` of the result
    /// is that of the last page that had one. The same as
    /// [`Receiver::keep_provenance`] then [`Receiver::store_kept`].
    pub fn commit(
        &self,
        partner: &str,
        partner_name: &str,
        collection: &RemoteCollection,
        pages: Vec<Verified>,
    ) -> Result<Received> {
        let recorded = self.keep_provenance(partner, partner_name, collection, pages)?;
        self.store_kept(recorded)
    }

    /// The first step of [`Receiver::commit`]: keep the provenance of the
    /// verified pages' objects (one transaction of `federation.db`),
    /// nothing stored yet. Pass the result to [`Receiver::store_kept`]; until
    /// then the pages' objects are not in the store, so a sync may record
    /// the next pages while the ones before are stored, as long as it
    /// stores in the order it recorded.
    pub fn keep_provenance(
        &self,
        partner: &str,
        partner_name: &str,
        collection: &RemoteCollection,
        pages: Vec<Verified>,
    ) -> Result<Recorded> {
        let pages: Vec<Checked> = pages.into_iter().map(|v| v.checked).collect();
        self.record_pages(partner, partner_name, collection, pages)
    }

    /// The second step of [`Receiver::commit`]: store the objects of pages
    /// whose provenance [`Receiver::keep_provenance`] kept.
    pub fn store_kept(&self, recorded: Recorded) -> Result<Received> {
        self.store_recorded(recorded)
    }

    fn verify_as(
        &self,
        partner: &str,
        collection: &RemoteCollection,
        envelope: &Envelope,
        own: bool,
    ) -> Result<Checked> {
        let checked = self.check(partner, collection, envelope).and_then(|c| {
            // Pages with nothing to store (empty, or only this node's own
            // objects coming back) store nowhere.
            let stores = c
                .objects
                .iter()
                .any(|o| o.terms.originator != self.local_node);
            if own || !stores {
                return Ok(c);
            }
            match self.db.is_mirror(&collection.id) {
                Ok(true) => Ok(c),
                Ok(false) => match self.store.collection(&self.api_root, &collection.id) {
                    Ok(None) => Ok(c),
                    Ok(Some(_)) => Err(format!(
                        "collection {} is one of this node's own, not one kept for partners",
                        collection.id
                    )),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            }
        });
        checked.map_err(|detail| {
            self.record(|| {
                let mut e = Event::new(Kind::Other("rejection".into()), partner);
                e.parties = vec![partner.to_string()];
                e.what.collection = Some(collection.id.clone());
                e.why = format!("a page received from partner {partner} failed verification");
                e.details = serde_json::json!({ "error": detail });
                e
            });
            let _ = self.db.record_error(partner, &detail, true);
            FederationError::Rejected {
                partner: partner.to_string(),
                detail,
            }
        })
    }

    /// Apply one notice of `partner` (see [`TrustSource::apply_notice`]),
    /// recording it in the audit log either way.
    pub fn apply_notice(
        &self,
        partner: &str,
        kind: &str,
        document: &Signed,
        objects: &[String],
    ) -> Result<()> {
        let (outcome, audit_kind) = match kind {
            "agreement" | "termination" | "removal" => (
                self.trust.apply_notice(partner, kind, document),
                Kind::Agreement,
            ),
            "tombstone" => (
                crate::tombstone::apply(self, partner, document),
                Kind::Other("deletion".into()),
            ),
            "sighting" => (
                crate::sightings::apply(self, partner, document, objects),
                Kind::Receipt,
            ),
            other => (
                Err(format!("unknown notice kind {other:?}")),
                Kind::Other("rejection".into()),
            ),
        };
        match outcome {
            Ok(what) => {
                self.record(|| {
                    let mut e = Event::new(audit_kind, partner);
                    e.parties = vec![partner.to_string()];
                    e.why = what;
                    e.details = serde_json::json!({
                        "notice": kind, "digest": document.digest(), "from": partner,
                    });
                    e
                });
                Ok(())
            }
            Err(why) => {
                tracing::warn!(partner, kind, error = %why, "notice refused");
                self.record(|| {
                    let mut e = Event::new(Kind::Other("rejection".into()), partner);
                    e.parties = vec![partner.to_string()];
                    e.why = format!("a {kind} notice from partner {partner} was refused: {why}");
                    e.details = serde_json::json!({ "notice": kind, "digest": document.digest() });
                    e
                });
                let _ =
                    self.db
                        .record_error(partner, &format!("{kind} notice refused: {why}"), true);
                Ok(())
            }
        }
    }

    fn record(&self, make: impl FnOnce() -> Event) {
        if let Some(a) = &self.audit {
            a.record(make());
        }
    }

    /// Steps 1–4 of the module docs; the reason of a refusal.
    fn check(
        &self,
        partner: &str,
        collection: &RemoteCollection,
        envelope: &Envelope,
    ) -> std::result::Result<Checked, String> {
        let now = jiff::Timestamp::now();
        let keyrings = self.trust.keyrings()?;
        let in_force = self.trust.in_force()?;
        let texts: Vec<&str> = envelope.objects.iter().map(|o| o.get()).collect();
        // Each object is parsed once and its canonical digest computed
        // once: for checking it against the manifest and for storing.
        let values: Vec<Result<(Value, [u8; 32]), String>> = texts
            .iter()
            .map(|t| {
                serde_json::from_str(t)
                    .map(|v| {
                        let d = anyam_stix::canonical_digest(&v);
                        (v, d)
                    })
                    .map_err(|e| format!("not a JSON object: {e}"))
            })
            .collect();
        let keys: Vec<Result<ObjectKey, String>> = values
            .iter()
            .map(|v| {
                v.as_ref()
                    .map_err(Clone::clone)
                    .and_then(|(v, d)| ObjectKey::of_digested(v, d))
            })
            .collect();
        let batch = verify_batch_keys(&envelope.x_anyam_provenance, &keys, partner, &keyrings, now)
            .map_err(|e| e.to_string())?;
        if batch.manifest.collection != collection.id {
            return Err(format!(
                "the manifest is for collection {}, the page was asked of {}",
                batch.manifest.collection, collection.id
            ));
        }
        let agreement = batch
            .check_agreement(&in_force, &self.local_node)
            .map_err(|e| e.to_string())?;
        // This node's organization identity, by which an originator may
        // have named it as a recipient.
        let local_identity = in_force
            .agreements
            .iter()
            .flat_map(|a| a.parties.iter())
            .find(|p| p.node_id == self.local_node)
            .map(|p| p.identity_id.clone());
        if !batch.missing.is_empty() {
            return Err(format!(
                "the manifest lists {} objects the page does not carry",
                batch.missing.len()
            ));
        }
        // The originators' manifests given, by the digest of their heads
        // (a head is all a relaying node passes on).
        let given: BTreeMap<String, Signed> = envelope
            .x_anyam_originator_manifests
            .iter()
            .enumerate()
            .map(|(i, m)| {
                manifest_head(m)
                    .map(|(_, head)| (head.digest(), head))
                    .map_err(|e| format!("x_anyam_originator_manifests[{i}]: {e}"))
            })
            .collect::<Result<_, String>>()?;
        // Each originator head this page relays from, verified once.
        let mut heads: BTreeMap<String, OriginatorHead> = BTreeMap::new();
        let mut objects = Vec::with_capacity(batch.objects.len());
        for vo in &batch.objects {
            let terms = match &vo.terms {
                Some(t) => t.clone(),
                None => {
                    let digest = vo.entry.origin.manifest.as_deref().unwrap_or_default();
                    let Some(m) = given.get(digest) else {
                        return Err(format!(
                            "{}: relayed without its originator's manifest",
                            vo.entry.id
                        ));
                    };
                    let head = match heads.entry(digest.to_string()) {
                        btree_map::Entry::Occupied(o) => o.into_mut(),
                        btree_map::Entry::Vacant(v) => v.insert(
                            OriginatorHead::verify(m, &keyrings, now).map_err(|e| e.to_string())?,
                        ),
                    };
                    let t = head.terms_of(&vo.entry).map_err(|e| e.to_string())?;
                    let parties: Vec<&str> = in_force
                        .agreements
                        .iter()
                        .filter(|a| a.id == t.agreement.id)
                        .flat_map(|a| a.parties.iter().map(|p| p.node_id.as_str()))
                        .collect();
                    let named_identity = matches!(
                        &t.redistribution,
                        anyam_trust::Redistribution::Named { recipients }
                            if local_identity.as_ref().is_some_and(|i| recipients.contains(i))
                    );
                    if !named_identity && !may_pass_on(&t, partner, &self.local_node, &parties) {
                        return Err(format!(
                            "{}: its originator {} does not allow {partner} to pass it on to this node",
                            vo.entry.id, t.originator
                        ));
                    }
                    t
                }
            };
            let text = texts[vo.index];
            let (value, digest) = values[vo.index]
                .as_ref()
                .map_err(|e| format!("{}: {e}", vo.entry.id))?;
            let mut new =
                anyam_taxii::ingest::prepare_value_digested(value, text.to_string(), *digest)
                    .map_err(|r| format!("{}: invalid STIX: {}", vo.entry.id, r.message))?;
            let label = anyam_policy::label_of(value);
            in_scope(&agreement.scope, &collection.id, &new.object_type, &label)
                .map_err(|e| format!("{}: outside agreement {}: {e}", vo.entry.id, agreement.id))?;
            new.release_label = label
                .received(anyam_policy::Origin {
                    node_id: terms.originator.clone(),
                    redistribution: terms.redistribution.clone(),
                    agreement: terms.agreement.id.clone(),
                })
                .key();
            objects.push(CheckedObject {
                new,
                version: vo.entry.version.clone(),
                digest: vo.entry.digest.clone(),
                terms,
            });
        }
        let last = match &envelope.x_anyam_date_added_last {
            Some(t) => Some(
                parse_micros(t)
                    .ok_or_else(|| format!("x_anyam_date_added_last is not a timestamp: {t}"))?,
            ),
            None if objects.is_empty() => None,
            None => return Err("a page with objects carries no x_anyam_date_added_last".into()),
        };
        Ok(Checked {
            agreement: batch.manifest.agreement.id.clone(),
            manifest_digest: batch.digest,
            head: batch.head,
            leaves: batch.tree.leaves().to_vec(),
            originators: heads.into_iter().map(|(d, h)| (d, h.signed)).collect(),
            objects,
            last,
        })
    }

    /// Store verified pages of one collection, in their order, in one
    /// transaction of the store (and one of `federation.db`): a commit
    /// writes out every index page its objects touched, so a few pages
    /// stored together cost much less per object than each on its own
    /// once the collection is large. Each page keeps its own receipt in
    /// the audit log.
    fn store_pages(
        &self,
        partner: &str,
        partner_name: &str,
        collection: &RemoteCollection,
        pages: Vec<Checked>,
    ) -> Result<Received> {
        let recorded = self.record_pages(partner, partner_name, collection, pages)?;
        self.store_recorded(recorded)
    }

    /// The provenance half of [`Receiver::store_pages`].
    fn record_pages(
        &self,
        partner: &str,
        partner_name: &str,
        collection: &RemoteCollection,
        mut pages: Vec<Checked>,
    ) -> Result<Recorded> {
        let last = pages.iter().rev().find_map(|p| p.last);
        // The objects go to the store (moved, not copied); what the
        // provenance and the receipts need of each stays by page, with
        // the object's place in `news`. Objects that originated here come
        // back only by mistake: never stored again under a partner's
        // label.
        let mut news: Vec<NewObject> = Vec::new();
        let mut objects: Vec<Vec<Kept>> = Vec::with_capacity(pages.len());
        for page in &mut pages {
            let mut kept = Vec::new();
            for o in std::mem::take(&mut page.objects) {
                if o.terms.originator == self.local_node {
                    continue;
                }
                kept.push(Kept {
                    at: news.len(),
                    receipt: 0,
                    version: o.version,
                    digest: o.digest,
                    terms: o.terms,
                });
                news.push(o.new);
            }
            objects.push(kept);
        }
        let mut recorded = Recorded {
            partner: partner.to_string(),
            collection: collection.id.clone(),
            news: Vec::new(),
            objects: Vec::new(),
            last,
        };
        if objects.iter().all(Vec::is_empty) {
            return Ok(recorded);
        }
        self.ensure_collection(partner, partner_name, collection)?;
        // Provenance first: an object in the store labelled as received
        // always has its originator's manifest here to be relayed with.
        let mut manifests: BTreeMap<&str, KeptManifest<'_>> = BTreeMap::new();
        for (page, objects) in pages.iter().zip(&objects) {
            for o in objects {
                let d = o.terms.manifest.as_str();
                let kept = if d == page.manifest_digest {
                    // From the originator itself: the page's own manifest,
                    // whose leaves give any entry's proof later.
                    KeptManifest {
                        digest: d,
                        head: &page.head,
                        leaves: Some(&page.leaves),
                    }
                } else {
                    let Some(head) = page.originators.get(d) else {
                        return Err(FederationError::Protocol(format!(
                            "{}: its originator's manifest {d} was not kept",
                            news[o.at].id
                        )));
                    };
                    KeptManifest {
                        digest: d,
                        head,
                        leaves: None,
                    }
                };
                match manifests.get(d) {
                    Some(k) if k.leaves.is_some() || kept.leaves.is_none() => {}
                    _ => {
                        manifests.insert(d, kept);
                    }
                }
            }
        }
        let manifests: Vec<KeptManifest<'_>> = manifests.into_values().collect();
        let versions: Vec<ReceivedVersion<'_>> = pages
            .iter()
            .zip(&objects)
            .flat_map(|(page, objects)| {
                objects.iter().map(|o| ReceivedVersion {
                    collection: &collection.id,
                    agreement: &page.agreement,
                    object_id: &news[o.at].id,
                    version: o.version.as_deref(),
                    digest: &o.digest,
                    originator: &o.terms.originator,
                    manifest_digest: &o.terms.manifest,
                    terms: &o.terms.redistribution,
                    position: o.terms.position,
                    salt: &o.terms.salt,
                    path: o.terms.proof.as_ref().map(|p| p.path.as_slice()),
                })
            })
            .collect();
        let rids = self.db.record_received(partner, &manifests, &versions)?;
        drop(versions);
        for (o, rid) in objects.iter_mut().flatten().zip(rids) {
            o.receipt = rid;
        }
        recorded.news = news;
        recorded.objects = objects;
        Ok(recorded)
    }

    /// The store half of [`Receiver::store_pages`].
    fn store_recorded(&self, recorded: Recorded) -> Result<Received> {
        let Recorded {
            partner,
            collection,
            news,
            objects,
            last,
        } = recorded;
        let partner = partner.as_str();
        if news.is_empty() {
            return Ok(Received {
                counts: Counts::default(),
                last,
            });
        }
        // Objects committed but not made durable are stored all the same:
        // their receipts are recorded, and the batch then fails (the sync
        // position does not move past them).
        let (outcomes, unsynced) = match self.store.put_objects(&collection, &news) {
            Ok(outcomes) => (outcomes, None),
            Err(StoreError::NotDurable { reason, outcomes }) => (outcomes, Some(reason)),
            Err(e) => return Err(e.into()),
        };
        let mut counts = Counts::default();
        let mut each = outcomes.iter();
        let mut any_stored = false;
        // Receipts of versions the store held already repeat an earlier
        // receipt, unless the provenance kept so far lacks what this one
        // brings.
        let mut repeated = Vec::new();
        for page in &objects {
            let mut stored = Vec::new();
            let mut conflicts = Vec::new();
            for (o, out) in page.iter().zip(each.by_ref()) {
                let r = ObjectRef {
                    id: news[o.at].id.clone(),
                    version: o.version.clone().unwrap_or_default(),
                };
                match out {
                    PutOutcome::Added(_) => {
                        counts.received += 1;
                        stored.push(r);
                    }
                    PutOutcome::Unchanged(_) => {
                        counts.unchanged += 1;
                        repeated.push(o.receipt);
                    }
                    PutOutcome::Conflict => {
                        counts.conflicts += 1;
                        conflicts.push(r);
                        repeated.push(o.receipt);
                    }
                }
            }
            if !stored.is_empty() {
                any_stored = true;
                self.record(|| {
                    let mut e = Event::new(Kind::Receipt, partner);
                    e.parties = vec![partner.to_string()];
                    e.what.collection = Some(collection.clone());
                    e.what.objects = stored;
                    e.why = format!("sync from partner {partner}");
                    e
                });
            }
            if !conflicts.is_empty() {
                let n = conflicts.len();
                self.record(|| {
                    let mut e = Event::new(Kind::Other("conflict".into()), partner);
                    e.parties = vec![partner.to_string()];
                    e.what.collection = Some(collection.clone());
                    e.what.objects = conflicts;
                    e.why = format!(
                        "{n} object versions from partner {partner} differ from the versions stored \
                         here under the same id and version; the stored ones were kept"
                    );
                    e
                });
                let _ = self.db.record_error(
                    partner,
                    &format!(
                        "{n} version conflicts in collection {} (stored versions kept)",
                        collection
                    ),
                    false,
                );
            }
        }
        // The objects are stored: a repeat left behind is harmless (readers
        // take each version's chosen receipt), so a failure here does not
        // fail the batch.
        if let Err(e) = self.db.drop_repeated(&repeated) {
            tracing::warn!(partner, error = %e, "repeated receipts were not dropped");
        }
        if any_stored {
            (self.on_stored)();
        }
        if let Some(reason) = unsynced {
            return Err(StoreError::NotDurable { reason, outcomes }.into());
        }
        Ok(Received { counts, last })
    }

    /// The local collection that keeps a partner collection: the same id,
    /// made on first receipt, readable by the host organization.
    fn ensure_collection(
        &self,
        partner: &str,
        partner_name: &str,
        c: &RemoteCollection,
    ) -> Result<()> {
        if self.store.collection(&self.api_root, &c.id)?.is_some() {
            return Ok(());
        }
        self.db.add_mirror(&c.id, partner)?;
        self.store.create_collection(&Collection {
            id: c.id.clone(),
            api_root: self.api_root.clone(),
            title: format!("{partner_name}: {}", c.title),
            description: Some(format!(
                "Received from partner node {partner_name} ({partner})"
            )),
            alias: None,
        })?;
        self.store.set_grant(&Grant {
            org: self.host_org.clone(),
            collection: c.id.clone(),
            access: Access {
                read: true,
                write: false,
            },
        })?;
        self.record(|| {
            let mut e = Event::new(Kind::Admin, partner);
            e.parties = vec![partner.to_string()];
            e.what.collection = Some(c.id.clone());
            e.why = format!(
                "collection created for what partner {partner} shares; host organization may read"
            );
            e
        });
        Ok(())
    }
}

/// Whether an object received under an agreement is within its scope,
/// as far as its own markings tell (unmarked data is judged by the
/// publisher, whose default level for it the receiver does not know).
fn in_scope(
    scope: &anyam_trust::Scope,
    collection: &str,
    object_type: &str,
    label: &anyam_policy::Label,
) -> std::result::Result<(), String> {
    if !scope.collections.is_empty() && !scope.collections.iter().any(|c| c == collection) {
        return Err(format!("collection {collection} is not in scope"));
    }
    if !label.public
        && !scope.object_types.is_empty()
        && !scope.object_types.iter().any(|t| t == object_type)
    {
        return Err(format!("object type {object_type} is not in scope"));
    }
    if let Some(t) = label.tlp
        && !label.public
        && t > scope.max_tlp
    {
        return Err(format!(
            "marked {t:?}, above the highest TLP {:?}",
            scope.max_tlp
        ));
    }
    if let Some(p) = label.pap
        && p > scope.pap
    {
        return Err(format!(
            "marked PAP {p:?}, above the agreement's PAP {:?}",
            scope.pap
        ));
    }
    Ok(())
}

struct CheckedObject {
    new: NewObject,
    version: Option<String>,
    digest: String,
    terms: OriginTerms,
}

/// A checked object once its [`NewObject`] went to the store's batch:
/// where it is there, and the rest.
struct Kept {
    at: usize,
    /// Its receipt in the federation database, once recorded.
    receipt: i64,
    version: Option<String>,
    digest: String,
    terms: OriginTerms,
}

/// Pages whose provenance [`Receiver::keep_provenance`] kept, with their
/// objects, ready to [`Receiver::store_kept`].
pub struct Recorded {
    partner: String,
    /// The local collection the objects go to.
    collection: String,
    /// The objects to store, in order (this node's own left out).
    news: Vec<NewObject>,
    /// By page, what the receipts need of each object in `news`.
    objects: Vec<Vec<Kept>>,
    last: Option<Micros>,
}

/// A page that passed every check, ready to [`Receiver::commit`].
pub struct Verified {
    checked: Checked,
}

impl Verified {
    /// The partner's `date_added` of the page's last object.
    pub fn last(&self) -> Option<Micros> {
        self.checked.last
    }
}

struct Checked {
    /// The digest of the head of the publisher's manifest.
    manifest_digest: String,
    /// That head, with the publisher's signatures.
    head: Signed,
    /// The leaf hashes of the manifest's entries.
    leaves: Vec<Hash>,
    /// The heads of the originators' manifests of the relayed objects, by
    /// digest.
    originators: BTreeMap<String, Signed>,
    /// The agreement the page was published under.
    agreement: String,
    objects: Vec<CheckedObject>,
    last: Option<Micros>,
}
