//! Detection hits aggregated into STIX 2.1 sightings (§5.7) stored in a collection of the node.
//!
//! One sighting per (indicator, where sighted): each hit adds one to
//! `count` and widens `first_seen`/`last_seen`; changed sightings are
//! written as new versions (a new `modified`) at most every few seconds and
//! at the end of a run, so a busy sensor does not write a version per hit.
//! Which sighting belongs to an indicator is remembered in the store's
//! metadata, so later runs continue counting. `count` may not pass
//! 999,999,999 (STIX 2.1 §5.7); a sighting about to pass it is left as it is
//! and a new one starts.
//!
//! Sightings reveal the node's own telemetry, so they are written to a
//! collection only the host organization is granted, and marked with TLP
//! 2.0 AMBER+STRICT by default (recipients' own organization only), which
//! an operator may change.
//!
//! Every write is a receipt of objects into the node, and is recorded as a
//! `receipt` entry of the audit log ([`SightingsAudit`]): the versions it
//! stored, by the detect process acting for the node's identity. An entry
//! that cannot be appended stays queued and is retried with the next
//! flush; the final flush of a run fails if it still cannot be recorded.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyam_audit::{AuditLog, Kind, ObjectRef};
use anyam_detect::Hit;
use anyam_sensor::{Event, StixOptions};
use anyam_store::{Access, Collection, Grant, PutOutcome, Store};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{audit, node};

/// TLP 2.0 AMBER+STRICT (the OASIS TLP 2.0 marking definition).
pub const TLP_AMBER_STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";

/// STIX 2.1 §5.7: `count` is at most 999,999,999.
const MAX_COUNT: u64 = 999_999_999;

/// How often changed sightings are written.
const FLUSH: Duration = Duration::from_secs(5);

/// At most this many observed-data references per sighting version.
const MAX_OBSERVED_REFS: usize = 100;

struct State {
    id: String,
    created: String,
    count: u64,
    first: i128,
    last: i128,
    observed: Vec<String>,
    last_modified: i64,
}

/// Where sighting writes are recorded, and as whom.
pub struct SightingsAudit {
    pub log: AuditLog,
    /// Who writes: the detect process acting for the node's identity.
    pub actor: String,
    /// The operator who started the process ([`audit::operator`]), kept in
    /// the entries' details.
    pub operator: String,
}

/// Called with every sighting version stored.
pub type Reporter = Box<dyn FnMut(&Value)>;

pub struct Sightings {
    store: Arc<dyn Store>,
    audit: SightingsAudit,
    /// Versions stored but not yet recorded in the audit log.
    unaudited: Vec<ObjectRef>,
    collection: String,
    identity: String,
    where_sighted: String,
    markings: Vec<String>,
    keep_observed: bool,
    state: HashMap<String, State>,
    dirty: HashSet<String>,
    pending: Vec<Value>,
    last_flush: Instant,
    /// The most hits one sighting counts ([`MAX_COUNT`]; lower in tests).
    max_count: u64,
    pub versions_written: u64,
    /// Called with every sighting version stored (sends sightings of
    /// partners' indicators back to them, where agreed).
    reporter: Option<Reporter>,
}

/// Microseconds, rendered the way STIX timestamps are written.
fn ts(micros: i64) -> String {
    anyam_sensor::format_stix(i128::from(micros) * 1000)
}

fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// Finds the sightings collection by id or alias in the default API root,
/// creating it (granted to the host organization only) when absent.
fn collection(store: &dyn Store, wanted: &str) -> Result<String> {
    let all = store.collections(node::DEFAULT_API_ROOT)?;
    if let Some(c) = all
        .iter()
        .find(|c| c.id == wanted || c.alias.as_deref() == Some(wanted))
    {
        return Ok(c.id.clone());
    }
    if uuid::Uuid::parse_str(wanted).is_ok() {
        bail!(
            "no collection {wanted} in API root {}",
            node::DEFAULT_API_ROOT
        );
    }
    let c = Collection {
        id: uuid::Uuid::new_v4().to_string(),
        api_root: node::DEFAULT_API_ROOT.into(),
        title: "sightings".into(),
        description: Some("Sightings of indicators by this node's sensors.".into()),
        alias: Some(wanted.to_string()),
    };
    store.create_collection(&c)?;
    store.set_grant(&Grant {
        org: node::HOST_ORG.into(),
        collection: c.id.clone(),
        access: Access {
            read: true,
            write: true,
        },
    })?;
    Ok(c.id)
}

/// Stores the node's STIX identity (the one its descriptor carries) in the
/// sightings collection, so that references to it resolve there, and
/// returns its id.
/// Returns its id and, when this run stored it for the first time, its
/// version, to be audited.
fn identity(
    store: &dyn Store,
    collection: &str,
    identity: &Value,
) -> Result<(String, Vec<ObjectRef>)> {
    let id = identity
        .get("id")
        .and_then(Value::as_str)
        .context("the node's identity object has no id")?
        .to_string();
    let (refs, outcomes) = put(store, collection, std::slice::from_ref(identity))?;
    // Stored by an earlier run, and audited then: not a new receipt.
    let refs = if outcomes.iter().any(|o| matches!(o, PutOutcome::Added(_))) {
        refs
    } else {
        Vec::new()
    };
    Ok((id, refs))
}

/// Validates and stores `objects` in one transaction; returns the versions
/// stored, for the audit log, and each object's outcome.
fn put(
    store: &dyn Store,
    collection: &str,
    objects: &[Value],
) -> Result<(Vec<ObjectRef>, Vec<PutOutcome>)> {
    let mut prepared = Vec::with_capacity(objects.len());
    for o in objects {
        let raw = serde_json::to_string(o)?;
        let n = anyam_taxii::ingest::prepare_value(o, raw)
            .map_err(|r| anyhow::anyhow!("{}", r.message))
            .context("a sighting failed validation")?;
        prepared.push(n);
    }
    let outcomes = store.put_objects(collection, &prepared)?;
    Ok((audit::stored_refs(&prepared, &outcomes), outcomes))
}

impl Sightings {
    pub fn open(
        store: Arc<dyn Store>,
        collection_name: &str,
        node_identity: &Value,
        where_sighted: Option<String>,
        markings: Vec<String>,
        keep_observed: bool,
        audit: SightingsAudit,
    ) -> Result<Sightings> {
        let collection = collection(store.as_ref(), collection_name)?;
        let (identity, unaudited) = identity(store.as_ref(), &collection, node_identity)?;
        Ok(Sightings {
            where_sighted: where_sighted.unwrap_or_else(|| identity.clone()),
            store,
            audit,
            unaudited,
            collection,
            identity,
            markings,
            keep_observed,
            state: HashMap::new(),
            dirty: HashSet::new(),
            pending: Vec::new(),
            last_flush: Instant::now(),
            max_count: MAX_COUNT,
            versions_written: 0,
            reporter: None,
        })
    }

    /// Call `f` with every sighting version once it is stored.
    pub fn set_reporter(&mut self, f: Reporter) {
        self.reporter = Some(f);
    }

    fn reported(&mut self, objs: &[Value]) {
        if let Some(r) = self.reporter.as_mut() {
            for o in objs
                .iter()
                .filter(|o| o.get("type").and_then(Value::as_str) == Some("sighting"))
            {
                r(o);
            }
        }
    }

    pub fn collection_id(&self) -> &str {
        &self.collection
    }

    fn meta_key(&self, indicator: &str) -> String {
        format!("sighting:{indicator}:{}", self.where_sighted)
    }

    /// Continues the sighting a previous run wrote, if any.
    fn load(&self, indicator: &str) -> Result<Option<State>> {
        let Some(id) = self.store.meta(&self.meta_key(indicator))? else {
            return Ok(None);
        };
        let Some(raw) = self.store.latest_version(&id)? else {
            return Ok(None);
        };
        let v: Value = serde_json::from_str(&raw)?;
        let micros = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .and_then(|s| anyam_stix::parse_timestamp(s).ok())
                .map(|t| t.micros())
        };
        Ok(Some(State {
            id,
            created: v
                .get("created")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            count: v.get("count").and_then(Value::as_u64).unwrap_or(0),
            first: micros("first_seen").map_or(i128::MAX, |m| i128::from(m) * 1000),
            last: micros("last_seen").map_or(i128::MIN, |m| i128::from(m) * 1000),
            observed: v
                .get("observed_data_refs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            last_modified: micros("modified").unwrap_or(0),
        }))
    }

    fn fresh(&self) -> State {
        let now = now_micros();
        State {
            id: format!("sighting--{}", uuid::Uuid::new_v4()),
            created: ts(now),
            count: 0,
            first: i128::MAX,
            last: i128::MIN,
            observed: Vec::new(),
            last_modified: 0,
        }
    }

    /// Counts one hit.
    pub fn record(&mut self, hit: &Hit<Arc<Event>>) -> Result<()> {
        let key = hit.indicator.id.clone();
        if !self.state.contains_key(&key) {
            let s = match self.load(&key)? {
                Some(s) => s,
                None => self.fresh(),
            };
            self.state.insert(key.clone(), s);
        }
        if self
            .state
            .get(&key)
            .is_some_and(|s| s.count >= self.max_count)
        {
            // Close the full sighting and start the next one.
            if self.dirty.contains(&key) {
                self.flush_one(&key)?;
            }
            let s = self.fresh();
            self.state.insert(key.clone(), s);
        }
        let mut observed = Vec::new();
        if self.keep_observed
            && self
                .state
                .get(&key)
                .is_some_and(|s| s.observed.len() < MAX_OBSERVED_REFS)
        {
            for ev in &hit.observations {
                let objs = ev.to_stix21(&StixOptions {
                    id: None,
                    created_by_ref: Some(self.identity.clone()),
                    created: None,
                })?;
                if let Some(id) = objs
                    .first()
                    .and_then(|o| o.get("id"))
                    .and_then(Value::as_str)
                {
                    observed.push(id.to_string());
                }
                self.pending.extend(objs);
            }
        }
        if let Some(s) = self.state.get_mut(&key) {
            s.count += 1;
            for ev in &hit.observations {
                s.first = s.first.min(ev.observation.first);
                s.last = s.last.max(ev.observation.last);
            }
            for id in observed {
                if s.observed.len() < MAX_OBSERVED_REFS {
                    s.observed.push(id);
                }
            }
        }
        self.dirty.insert(key);
        if self.last_flush.elapsed() >= FLUSH {
            self.flush_or_warn();
        }
        Ok(())
    }

    fn object(&mut self, indicator: &str) -> Option<Value> {
        let s = self.state.get_mut(indicator)?;
        // Versions are ordered by `modified`: strictly later than the last.
        let modified = now_micros().max(s.last_modified + 1);
        s.last_modified = modified;
        let mut o = json!({
            "type": "sighting",
            "spec_version": "2.1",
            "id": s.id,
            "created": s.created,
            "modified": ts(modified),
            "created_by_ref": self.identity,
            "sighting_of_ref": indicator,
            "count": s.count,
            "first_seen": anyam_sensor::format_stix(s.first),
            "last_seen": anyam_sensor::format_stix(s.last),
            "where_sighted_refs": [self.where_sighted],
        });
        if !s.observed.is_empty() {
            o["observed_data_refs"] = json!(s.observed);
        }
        if !self.markings.is_empty() {
            o["object_marking_refs"] = json!(self.markings);
        }
        Some(o)
    }

    fn flush_one(&mut self, indicator: &str) -> Result<()> {
        let mut objs = self.pending.clone();
        if let Some(o) = self.object(indicator) {
            objs.push(o);
        }
        let (refs, _) = put(self.store.as_ref(), &self.collection, &objs)?;
        self.reported(&objs);
        // Recorded with the next flush, which follows shortly.
        self.unaudited.extend(refs);
        self.pending.clear();
        if let Some(s) = self.state.get(indicator) {
            self.store.set_meta(&self.meta_key(indicator), &s.id)?;
        }
        self.dirty.remove(indicator);
        self.versions_written += 1;
        Ok(())
    }

    /// [`Sightings::flush`] during a run: a failure is reported and retried
    /// at the next flush rather than ending detection.
    pub fn flush_or_warn(&mut self) {
        if let Err(e) = self.flush() {
            eprintln!(
                "{}",
                json!({"warning": format!("writing sightings failed, will retry: {e:#}")})
            );
        }
    }

    /// Writes every changed sighting (and the observed-data they cite) in
    /// one transaction. On failure (e.g. the database stayed locked by
    /// another writer past the busy timeout) nothing is forgotten: the
    /// changes stay pending and the next flush writes them.
    pub fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if !self.dirty.is_empty() || !self.pending.is_empty() {
            let mut keys: Vec<String> = self.dirty.iter().cloned().collect();
            keys.sort();
            let mut objs = self.pending.clone();
            for k in &keys {
                if let Some(o) = self.object(k) {
                    objs.push(o);
                }
            }
            let (refs, _) = put(self.store.as_ref(), &self.collection, &objs)?;
            self.reported(&objs);
            self.unaudited.extend(refs);
            self.pending.clear();
            for k in &keys {
                self.dirty.remove(k);
                if let Some(s) = self.state.get(k) {
                    self.store.set_meta(&self.meta_key(k), &s.id)?;
                }
            }
            self.versions_written += keys.len() as u64;
        }
        self.record_receipt()
    }

    /// Appends the `receipt` entry (or entries, for a very large write) of
    /// the versions stored since the last one. On failure they stay queued.
    fn record_receipt(&mut self) -> Result<()> {
        if self.unaudited.is_empty() {
            return Ok(());
        }
        let mut e = anyam_audit::Event::new(Kind::Receipt, self.audit.actor.clone());
        e.parties.push(node::HOST_ORG.to_string());
        e.what.collection = Some(self.collection.clone());
        e.why = "sightings of indicators by this node's sensors (`anyam detect`)".into();
        e.details = json!({
            "command": "detect",
            "operator": self.audit.operator,
            // Strings: audit details are canonicalized as doubles.
            "pid": std::process::id().to_string(),
            "where_sighted": self.where_sighted,
        });
        let events = audit::split_by_objects(&e, self.unaudited.clone());
        self.audit.log.append_batch(&events).context(
            "recording sighting writes in the audit log (the sightings were stored; the record is retried at the next flush)",
        )?;
        self.unaudited.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use anyam_detect::IndicatorInfo;
    use anyam_pattern::Observation;
    use anyam_store::{ApiRoot, Organization, SqliteOptions, SqliteStore};

    fn hit(indicator: &str, at_secs: i128) -> Hit<Arc<Event>> {
        let t = (1_767_225_600 + at_secs) * 1_000_000_000;
        let ev = Event {
            observation: Observation {
                id: None,
                index: 0,
                first: t,
                last: t,
                count: 1,
                objects: vec![(
                    "0".into(),
                    json!({"type": "ipv4-addr", "value": "198.51.100.1"}),
                )],
                embedded: true,
            },
            input: Arc::from("zeek:conn.log"),
            file: Arc::from("conn.log"),
            line: 9,
        };
        Hit {
            indicator: Arc::new(IndicatorInfo {
                id: indicator.into(),
                modified: None,
                name: None,
                created_by_ref: None,
                pattern: "[ipv4-addr:value = '198.51.100.1']".into(),
            }),
            observations: vec![Arc::new(ev)],
        }
    }

    #[test]
    fn a_full_sighting_gives_way_to_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("node.db"), SqliteOptions::default()).unwrap(),
        );
        store
            .create_org(&Organization {
                name: node::HOST_ORG.into(),
                title: "host".into(),
            })
            .unwrap();
        store
            .create_api_root(&ApiRoot {
                name: node::DEFAULT_API_ROOT.into(),
                title: "root".into(),
                description: None,
                max_content_length: 1 << 20,
            })
            .unwrap();
        let ind = "indicator--11111111-1111-4111-8111-111111111111";
        let node_identity = json!({
            "type": "identity", "spec_version": "2.1",
            "id": "identity--5a2e2c5f-8a4b-4f4e-9d8e-0f0e7a1b2c3d",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": "Test node", "identity_class": "organization",
        });
        let audit_path = dir.path().join("audit.db");
        let mut s = Sightings::open(
            store.clone(),
            "sightings",
            &node_identity,
            None,
            vec![TLP_AMBER_STRICT.into()],
            true,
            SightingsAudit {
                log: AuditLog::open(&audit_path, anyam_audit::AuditOptions::default()).unwrap(),
                actor: "detect:test".into(),
                operator: "operator:test@host".into(),
            },
        )
        .unwrap();
        s.max_count = 3;
        for i in 0..7 {
            s.record(&hit(ind, i)).unwrap();
        }
        s.flush().unwrap();
        let collection = s.collection_id().to_string();
        let all = store
            .objects(
                &collection,
                &anyam_store::Query {
                    limit: 1000,
                    ..anyam_store::Query::default()
                },
            )
            .unwrap();
        let mut counts: Vec<(String, u64, String, String)> = all
            .items
            .iter()
            .map(|o| serde_json::from_str::<Value>(&o.raw).unwrap())
            .filter(|v| v["type"] == "sighting")
            .map(|v| {
                (
                    v["id"].as_str().unwrap().to_string(),
                    v["count"].as_u64().unwrap(),
                    v["first_seen"].as_str().unwrap().to_string(),
                    v["last_seen"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        counts.sort_by(|a, b| a.2.cmp(&b.2));
        let ids: HashSet<&String> = counts.iter().map(|c| &c.0).collect();
        assert_eq!(ids.len(), 3, "{counts:?}");
        assert_eq!(counts.iter().map(|c| c.1).collect::<Vec<_>>(), [3, 3, 1]);
        assert!(counts[1].2.starts_with("2026-01-01T00:00:03"));
        assert!(counts[1].3.starts_with("2026-01-01T00:00:05"));
        // Observed-data cited, at most the configured number, and stored.
        let observed = all
            .items
            .iter()
            .filter(|o| o.raw.contains("\"type\":\"observed-data\""))
            .count();
        assert!(observed >= 1);
        // The newest sighting is the one a later run continues.
        let current = store
            .meta(&format!("sighting:{ind}:{}", s.where_sighted))
            .unwrap()
            .unwrap();
        assert_eq!(current, counts[2].0);

        // Every version stored in the collection, and nothing else, is
        // listed by a receipt entry of the detect process.
        let every = store
            .objects(
                &collection,
                &anyam_store::Query {
                    limit: 1000,
                    versions: vec![anyam_store::VersionSel::All],
                    ..anyam_store::Query::default()
                },
            )
            .unwrap();
        let stored: HashSet<(String, String)> = every
            .items
            .iter()
            .map(|o| (o.id.clone(), o.version.clone()))
            .collect();
        let log = AuditLog::open(
            &audit_path,
            anyam_audit::AuditOptions {
                read_only: true,
                ..anyam_audit::AuditOptions::default()
            },
        )
        .unwrap();
        let entries = log.entries(0..log.size().unwrap()).unwrap();
        assert!(!entries.is_empty());
        let mut audited = HashSet::new();
        for e in &entries {
            assert_eq!(e.event.kind, Kind::Receipt);
            assert_eq!(e.event.actor, "detect:test");
            assert_eq!(
                e.event.what.collection.as_deref(),
                Some(collection.as_str())
            );
            assert_eq!(e.event.parties, [node::HOST_ORG]);
            for o in &e.event.what.objects {
                audited.insert((o.id.clone(), o.version.clone()));
            }
        }
        assert_eq!(audited, stored);
        // Nothing is left to record: another flush appends nothing.
        s.flush().unwrap();
        assert_eq!(log.size().unwrap(), entries.len() as u64);
    }
}
