//! Deletions across nodes: signed tombstones.
//!
//! When an object that originated on this node is deleted here (TAXII
//! DELETE), [`on_local_delete`] signs a tombstone
//! (`anyam_trust::provenance::Tombstone`) naming the versions deleted
//! (or all of them) and queues it for every partner the object was
//! released to. A receiver ([`apply`]) verifies the signature with the
//! originator's keyring, checks that the signer is the originator it
//! recorded when the object came in (nobody else may delete it), deletes
//! the versions from the collection it keeps them in, and queues the same
//! signed tombstone for every partner it relayed the object to, so the
//! deletion reaches every node that holds the object, including one that
//! was offline (it fetches its notices first when it reconnects).
//! Deleting a received object locally deletes it here only.

use anyam_store::VersionSel;
use anyam_trust::Signed;
use anyam_trust::provenance::{Tombstone, Versions};
use ed25519_dalek::SigningKey;

use crate::error::{FederationError, Result};
use crate::page::parse_micros;
use crate::receive::Receiver;
use crate::state::FederationDb;

/// What a local deletion removed.
#[derive(Debug, Clone)]
pub struct LocalDeletion<'a> {
    pub object_id: &'a str,
    /// The versions removed (TAXII version strings).
    pub versions: &'a [String],
    /// No version is left.
    pub all: bool,
    pub user: &'a str,
}

/// After a local deletion: if this node originated the object and
/// released it to partners, sign a tombstone and queue it for them.
/// Returns how many partners it was queued for.
pub fn on_local_delete(
    db: &FederationDb,
    key: &SigningKey,
    local: &str,
    d: &LocalDeletion<'_>,
) -> Result<usize> {
    if db.held(d.object_id)?.iter().any(|h| h.originator != local) {
        // Received from another node: deleted here only.
        return Ok(0);
    }
    let partners = db.released_to(d.object_id)?;
    if partners.is_empty() || (!d.all && d.versions.is_empty()) {
        return Ok(0);
    }
    let versions = if d.all {
        Versions::All
    } else {
        Versions::Listed(d.versions.to_vec())
    };
    let t = Tombstone::new(
        local,
        d.object_id,
        versions,
        &format!("deleted by {} on the originating node", d.user),
        jiff::Timestamp::now(),
    );
    let signed = t
        .sign(key)
        .map_err(|e| FederationError::Protocol(e.to_string()))?;
    for p in &partners {
        db.queue(p, "tombstone", &signed)?;
    }
    Ok(partners.len())
}

/// Apply a tombstone partner `from` sent; `Ok` says what was done.
pub(crate) fn apply(r: &Receiver, from: &str, doc: &Signed) -> std::result::Result<String, String> {
    let keyrings = r.trust.keyrings()?;
    let t = Tombstone::verify(doc, &keyrings, jiff::Timestamp::now()).map_err(|e| e.to_string())?;
    let held = r.db.held(&t.object_id).map_err(|e| e.to_string())?;
    if held.is_empty() {
        return Ok(format!(
            "tombstone of {} by {}: nothing of it is held here",
            t.object_id, t.node_id
        ));
    }
    if let Some(h) = held.iter().find(|h| !t.is_from(&h.originator)) {
        return Err(format!(
            "tombstone of {} signed by {}, but its originator is {}",
            t.object_id, t.node_id, h.originator
        ));
    }
    let (selectors, forget): (Vec<VersionSel>, Option<Vec<String>>) = match &t.versions {
        Versions::All => (Vec::new(), None),
        Versions::Listed(vs) => {
            let instants: Vec<i64> = vs.iter().filter_map(|v| parse_micros(v)).collect();
            let keys = held
                .iter()
                .filter(|h| parse_micros(&h.version).is_some_and(|m| instants.contains(&m)))
                .map(|h| h.version.clone())
                .collect();
            (
                instants.into_iter().map(VersionSel::At).collect(),
                Some(keys),
            )
        }
    };
    if selectors.is_empty() && forget.is_some() {
        return Ok(format!("tombstone of {}: no version named", t.object_id));
    }
    let mut collections: Vec<&str> = held.iter().map(|h| h.collection.as_str()).collect();
    collections.sort_unstable();
    collections.dedup();
    let mut removed = 0;
    for c in collections {
        removed += r
            .store
            .delete_object(c, &t.object_id, &selectors, &[], None)
            .map_err(|e| e.to_string())?;
    }
    r.db.forget(&t.object_id, forget.as_deref())
        .map_err(|e| e.to_string())?;
    let mut relayed = 0;
    for p in r.db.released_to(&t.object_id).map_err(|e| e.to_string())? {
        if p != from && p != t.node_id {
            r.db.queue(&p, "tombstone", doc)
                .map_err(|e| e.to_string())?;
            relayed += 1;
        }
    }
    Ok(format!(
        "tombstone of {} by its originator {} (via {from}): {removed} versions deleted, passed on to {relayed} partners",
        t.object_id, t.node_id
    ))
}
