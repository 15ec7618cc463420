//! Sightings back to the originator.
//!
//! When this node sights an indicator it received from the partner that
//! originated it, [`report`] sends the sighting back to that partner if
//! the agreement the indicator came under consents
//! (`sightings.send_to_originator`), stripped of who saw it when the
//! agreement says `anonymized`, and only as far as the release decision
//! allows (`anyam_policy::decide_sighting_report`: within the agreement's
//! highest TLP and PAP; `anyam detect` marks sightings AMBER+STRICT
//! unless told otherwise, so an agreement up to AMBER receives them only
//! if detect marks them AMBER or lower). The sighting travels
//! as a notice: a manifest signed by this node covering exactly the
//! sighting, queued for the originator, which fetches it on its next
//! round.
//!
//! The originator ([`apply`]) accepts a report only under an agreement in
//! force here that consents, only into one of its own collections, and
//! only after the same verification as any page (signature, digest,
//! agreement, STIX validity); it stores the sighting with the reporting
//! node as its originator.
//!
//! An anonymized sighting keeps what was seen and when (`sighting_of_ref`,
//! `count`, `first_seen`, `last_seen`, markings) and drops
//! `created_by_ref`, `where_sighted_refs`, `observed_data_refs` and
//! `description`; its id is derived from the original's (UUIDv5), so its
//! versions stay one object at the originator.

use anyam_policy::{Gate, Label, decide_sighting_report};
use anyam_trust::provenance::Manifest;
use anyam_trust::{AgreementRef, Signed};
use ed25519_dalek::SigningKey;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{FederationError, Result};
use crate::page::{Envelope, format_micros};
use crate::receive::{Receiver, RemoteCollection};
use crate::state::FederationDb;

/// Namespace of anonymized sighting ids.
const ANONYMIZED: uuid::Uuid = uuid::Uuid::from_u128(0x6b1e_0c55_9d1a_4f0e_8a52_3c4f_7d2e_91a0);

/// The sighting without who saw it, under an id of its own.
pub fn anonymize(sighting: &Value) -> Value {
    let mut o = sighting.clone();
    if let Some(m) = o.as_object_mut() {
        for k in [
            "created_by_ref",
            "where_sighted_refs",
            "observed_data_refs",
            "description",
        ] {
            m.remove(k);
        }
        if let Some(id) = sighting.get("id").and_then(Value::as_str) {
            let u = uuid::Uuid::new_v5(&ANONYMIZED, id.as_bytes());
            m.insert("id".into(), Value::String(format!("sighting--{u}")));
        }
    }
    o
}

/// Send `sighting` (stored here with release label `label`) back to the
/// originator of the indicator it sights, if that partner sent the
/// indicator here itself, under an agreement in force that consents, and
/// the release decision allows it. Returns the partner it was queued for.
pub fn report(
    gate: &Gate,
    db: &FederationDb,
    key: &SigningKey,
    label: &Label,
    sighting: &Value,
) -> Result<Option<String>> {
    if sighting.get("type").and_then(Value::as_str) != Some("sighting") {
        return Ok(None);
    }
    let Some(indicator) = sighting.get("sighting_of_ref").and_then(Value::as_str) else {
        return Ok(None);
    };
    let rules = gate
        .rules(true)
        .map_err(|e| FederationError::Policy(e.to_string()))?;
    let held = db.held(indicator)?;
    let Some(h) = held
        .iter()
        .find(|h| h.originator == h.from_node && h.originator != rules.node_id)
    else {
        return Ok(None);
    };
    let Some(a) = rules.agreements.agreements.iter().find(|a| {
        a.id == h.agreement
            && a.parties.iter().any(|p| p.node_id == h.originator)
            && a.parties.iter().any(|p| p.node_id == rules.node_id)
    }) else {
        return Ok(None);
    };
    if let Err(w) = decide_sighting_report(label, &h.originator, a, &rules) {
        tracing::debug!(indicator, reason = %w, "sighting not sent back");
        return Ok(None);
    }
    let object = if a.sightings.anonymized {
        anonymize(sighting)
    } else {
        sighting.clone()
    };
    let text = serde_json::to_string(&object)
        .map_err(|e| FederationError::Protocol(format!("sighting: {e}")))?;
    let mut m = Manifest::new(
        &rules.node_id,
        &h.collection,
        AgreementRef {
            id: a.id.clone(),
            version: a.version,
        },
        jiff::Timestamp::now(),
    );
    m.push_own(&text, a.redistribution.clone())
        .map_err(|e| FederationError::Protocol(e.to_string()))?;
    let signed = m
        .sign(key)
        .map_err(|e| FederationError::Protocol(e.to_string()))?;
    db.queue_with(&h.originator, "sighting", &signed, &[text])?;
    Ok(Some(h.originator.clone()))
}

/// Accept sightings partner `from` reports of this node's indicators.
pub(crate) fn apply(
    r: &Receiver,
    from: &str,
    doc: &Signed,
    objects: &[String],
) -> std::result::Result<String, String> {
    let m: Manifest = doc.parse().map_err(|e| e.to_string())?;
    let in_force = r.trust.in_force()?;
    let Some(a) = in_force.agreements.iter().find(|a| a.id == m.agreement.id) else {
        return Err(format!(
            "sightings under agreement {}, which is not in force here",
            m.agreement.id
        ));
    };
    if !a.sightings.send_to_originator {
        return Err(format!(
            "agreement {} does not consent to sightings being sent back",
            a.id
        ));
    }
    if r.store
        .collection(&r.api_root, &m.collection)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Err(format!(
            "sightings for collection {}, which is not a collection of this node",
            m.collection
        ));
    }
    let mut raws = Vec::with_capacity(objects.len());
    for o in objects {
        let v: Value = serde_json::from_str(o).map_err(|e| format!("not JSON: {e}"))?;
        if v.get("type").and_then(Value::as_str) != Some("sighting") {
            return Err("a sighting report carries an object that is not a sighting".into());
        }
        let ind = v
            .get("sighting_of_ref")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ours = r.db.held(ind).map_err(|e| e.to_string())?.is_empty()
            && r.store
                .latest_version(ind)
                .map_err(|e| e.to_string())?
                .is_some();
        if !ours {
            return Err(format!("{ind} is not an indicator this node originated"));
        }
        raws.push(RawValue::from_string(o.clone()).map_err(|e| e.to_string())?);
    }
    let envelope = Envelope {
        more: false,
        next: None,
        objects: raws,
        x_anyam_provenance: doc.clone(),
        x_anyam_originator_manifests: Vec::new(),
        x_anyam_date_added_last: Some(format_micros(jiff::Timestamp::now().as_microsecond())),
    };
    let got = r
        .receive_into_own(
            from,
            &RemoteCollection {
                id: m.collection.clone(),
                title: String::new(),
            },
            &envelope,
        )
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{} sighting versions of this node's indicators reported by partner {from} ({} already held)",
        got.counts.received, got.counts.unchanged
    ))
}
