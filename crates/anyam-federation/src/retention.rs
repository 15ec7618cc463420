//! Retention after an agreement ends.
//!
//! Once no version of an agreement is in force (a termination took
//! effect, or it expired), what this node received under it is deleted or
//! kept as the agreement's `retention_after_termination` says: `delete`
//! at once, `keep` for the days given (counted from the end), or `keep`
//! indefinitely. Deletions are recorded in the audit log as `retention`
//! entries listing the versions deleted. A version received under two
//! agreements is attributed to the first one it arrived under.

use std::collections::BTreeMap;

use anyam_audit::{Event, Kind, ObjectRef};
use anyam_store::VersionSel;
use anyam_trust::Retention;

use crate::error::{FederationError, Result};
use crate::page::parse_micros;
use crate::receive::Receiver;

/// Apply the retention terms of every ended agreement that are due now.
/// Returns how many versions were deleted.
pub fn apply(r: &Receiver) -> Result<u64> {
    let now = jiff::Timestamp::now();
    let ended = r.trust.ended().map_err(FederationError::Policy)?;
    let mut total = 0;
    for e in ended {
        let due = match e.retention {
            Retention::Delete => true,
            Retention::Keep { days: None } => false,
            Retention::Keep { days: Some(d) } => {
                let keep = jiff::SignedDuration::from_hours(24 * i64::from(d));
                e.at.checked_add(keep).is_ok_and(|until| until <= now)
            }
        };
        if !due {
            continue;
        }
        let rows = r.db.received_under(&e.id)?;
        if rows.is_empty() {
            continue;
        }
        let mut by_object: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (c, id, v) in rows {
            by_object.entry((c, id)).or_default().push(v);
        }
        let mut deleted = Vec::new();
        for ((collection, id), versions) in by_object {
            let selectors: Vec<VersionSel> = if versions.iter().any(String::is_empty) {
                Vec::new()
            } else {
                versions
                    .iter()
                    .filter_map(|v| parse_micros(v))
                    .map(VersionSel::At)
                    .collect()
            };
            r.store
                .delete_object(&collection, &id, &selectors, &[], None)?;
            r.db.forget(&id, Some(&versions))?;
            deleted.extend(versions.into_iter().map(|version| ObjectRef {
                id: id.clone(),
                version,
            }));
        }
        total += deleted.len() as u64;
        if let Some(a) = &r.audit {
            let mut ev = Event::new(Kind::Other("retention".into()), r.local_node.clone());
            ev.what.objects = deleted;
            ev.why = format!(
                "agreement {} ended at {}; its retention terms say delete what was received under it",
                e.id,
                anyam_trust::format_time(e.at)
            );
            a.record(ev);
        }
    }
    Ok(total)
}
