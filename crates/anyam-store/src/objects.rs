//! Objects: the write path (put, delete, with first/last flag upkeep), the
//! keyset page queries behind the objects, manifest and versions endpoints,
//! and the online backup.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

use crate::codec::{decode_cursor, encode_cursor, now_micros, rfc3339_micros};
use crate::{
    Ctx, ManifestEntry, Micros, NewObject, Page, PutOutcome, Query, Result, SqliteStore,
    StoreError, StoredObject, VersionSel,
};

/// The visibility class every object has until markings and agreements are
/// enforced in the store (see the crate documentation, "Visibility").
const PUBLIC_CLASS: i64 = 0;

/// One stored version of an object, as the writer needs it to decide what a
/// delete does.
struct Existing {
    rid: i64,
    version_micros: Micros,
    date_added: Micros,
    spec_version: String,
    is_first: bool,
    is_last: bool,
}

impl Existing {
    /// Versions of one object are ordered by their version timestamp; the
    /// later-added wins a tie (only possible between an object without a
    /// version, whose version is its `date_added`, and one whose
    /// `modified` happens to be that same microsecond).
    fn key(&self) -> (Micros, Micros) {
        (self.version_micros, self.date_added)
    }
}

/// Every stored version of `id` in collection `cid`.
fn load_versions(conn: &Connection, cid: i64, id: &str) -> Result<Vec<Existing>> {
    let mut st = conn
        .prepare_cached(
            "SELECT rid, version_micros, date_added, spec_version, is_first, is_last
             FROM objects INDEXED BY objects_by_id WHERE cid = ?1 AND id = ?2",
        )
        .ctx("preparing version lookup")?;
    st.query_map(params![cid, id], |r| {
        Ok(Existing {
            rid: r.get(0)?,
            version_micros: r.get(1)?,
            date_added: r.get(2)?,
            spec_version: r.get(3)?,
            is_first: r.get(4)?,
            is_last: r.get(5)?,
        })
    })
    .ctx("looking up versions")?
    .collect::<rusqlite::Result<_>>()
    .ctx("reading versions")
}

/// The stored version a post would duplicate, if any, as its
/// `(date_added, digest)`: the same id and version timestamp, or for an
/// object without a version, the same id without a version.
fn same_version(conn: &Connection, cid: i64, o: &NewObject) -> Result<Option<(Micros, Vec<u8>)>> {
    let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
    match o.version_micros {
        Some(vm) => conn
            .prepare_cached(
                "SELECT date_added, digest FROM objects INDEXED BY objects_by_id
                 WHERE cid = ?1 AND id = ?2 AND version_micros = ?3 AND versionless = 0 LIMIT 1",
            )
            .ctx("preparing version lookup")?
            .query_row(params![cid, o.id, vm], row),
        None => conn
            .prepare_cached(
                "SELECT date_added, digest FROM objects INDEXED BY objects_by_id
                 WHERE cid = ?1 AND id = ?2 AND versionless = 1 LIMIT 1",
            )
            .ctx("preparing version lookup")?
            .query_row(params![cid, o.id], row),
    }
    .optional()
    .ctx("looking up a stored version")
}

#[derive(Clone, Copy)]
enum Edge {
    First,
    Last,
}

/// The current first or last version of an object.
#[derive(Clone, Copy)]
struct EdgeRow {
    rid: i64,
    key: (Micros, Micros),
    is_first: bool,
    is_last: bool,
}

fn edge(conn: &Connection, cid: i64, id: &str, which: Edge) -> Result<Option<EdgeRow>> {
    let sql = match which {
        Edge::First => {
            "SELECT rid, version_micros, date_added, is_first, is_last FROM objects INDEXED BY objects_by_id
             WHERE cid = ?1 AND id = ?2 ORDER BY version_micros, date_added LIMIT 1"
        }
        Edge::Last => {
            "SELECT rid, version_micros, date_added, is_first, is_last FROM objects INDEXED BY objects_by_id
             WHERE cid = ?1 AND id = ?2 ORDER BY version_micros DESC, date_added DESC LIMIT 1"
        }
    };
    conn.prepare_cached(sql)
        .ctx("preparing version order lookup")?
        .query_row(params![cid, id], |r| {
            Ok(EdgeRow {
                rid: r.get(0)?,
                key: (r.get(1)?, r.get(2)?),
                is_first: r.get(3)?,
                is_last: r.get(4)?,
            })
        })
        .optional()
        .ctx("looking up the first or last version")
}

fn collection_key(conn: &Connection, collection: &str) -> Result<(i64, Micros)> {
    let mut st = conn
        .prepare_cached("SELECT cid, last_added FROM collections WHERE id = ?1")
        .ctx("preparing collection lookup")?;
    st.query_row([collection], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .ctx("looking up collection")?
        .ok_or_else(|| StoreError::NotFound(format!("collection {collection:?}")))
}

fn set_flags(conn: &Connection, rid: i64, is_first: bool, is_last: bool) -> Result<()> {
    conn.prepare_cached("UPDATE objects SET is_first = ?2, is_last = ?3 WHERE rid = ?1")
        .ctx("preparing flag update")?
        .execute(params![rid, is_first, is_last])
        .ctx("updating version flags")?;
    Ok(())
}

/// `match[version]` reduced to what the SQL needs (TAXII 2.1 §3.4.1: the
/// values of a comma list are combined as a union).
struct VersionFilter {
    all: bool,
    first: bool,
    last: bool,
    at: Vec<Micros>,
}

impl VersionFilter {
    fn new(sels: &[VersionSel], default: VersionSel) -> VersionFilter {
        let mut f = VersionFilter {
            all: false,
            first: false,
            last: false,
            at: Vec::new(),
        };
        let defaulted = [default];
        let sels = if sels.is_empty() {
            &defaulted[..]
        } else {
            sels
        };
        for s in sels {
            match s {
                VersionSel::All => f.all = true,
                VersionSel::First => f.first = true,
                VersionSel::Last => f.last = true,
                VersionSel::At(m) => f.at.push(*m),
            }
        }
        f.at.sort_unstable();
        f.at.dedup();
        f
    }

    /// Whether a stored version is selected, given its current flags.
    fn selects(&self, e: &Existing) -> bool {
        self.all
            || (self.first && e.is_first)
            || (self.last && e.is_last)
            || self.at.contains(&e.version_micros)
    }
}

/// Which columns a page query returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Objects,
    Manifest,
}

/// Build the keyset page query. Every page is
/// `WHERE cid = ? AND release_class = ? AND date_added > ? … ORDER BY
/// date_added LIMIT n+1` over one index whose leading columns are exactly
/// those, so SQLite seeks to the cursor and reads forward: the cost is the
/// page size (plus rows rejected by residual filters), independent of the
/// collection size and the depth. `INDEXED BY` pins the choice so a stale
/// planner estimate can never turn a page into a sort of the collection.
fn page_sql(
    shape: Shape,
    q: &Query,
    id: Option<&str>,
    vf: &VersionFilter,
    cid: i64,
    after: Micros,
) -> (String, Vec<Value>) {
    let cols = match shape {
        Shape::Objects => "id, type, spec_version, version, date_added, raw",
        Shape::Manifest => "id, type, spec_version, version, date_added",
    };
    let by_id = id.is_some() || !q.ids.is_empty();
    let index = if by_id {
        // A handful of ids: read their versions and sort them; bounded by the
        // number of versions of those ids, not by the collection.
        "objects_by_id"
    } else if vf.all {
        "objects_all"
    } else if vf.last && !vf.first && vf.at.is_empty() {
        "objects_last"
    } else if vf.first && !vf.last && vf.at.is_empty() {
        "objects_first"
    } else {
        "objects_all"
    };
    let mut sql = format!(
        "SELECT {cols} FROM objects INDEXED BY {index} WHERE cid = ?1 AND release_class = ?2 AND date_added > ?3"
    );
    let mut args: Vec<Value> = vec![
        Value::Integer(cid),
        Value::Integer(PUBLIC_CLASS),
        Value::Integer(after),
    ];
    let mut push_in = |sql: &mut String, col: &str, vals: &mut dyn Iterator<Item = Value>| {
        sql.push_str(" AND ");
        sql.push_str(col);
        sql.push_str(" IN (");
        let mut first = true;
        for v in vals {
            if !first {
                sql.push_str(", ");
            }
            first = false;
            args.push(v);
            sql.push_str(&format!("?{}", args.len()));
        }
        sql.push(')');
    };
    if let Some(id) = id {
        push_in(
            &mut sql,
            "id",
            &mut std::iter::once(Value::Text(id.to_owned())),
        );
    }
    if !q.ids.is_empty() {
        push_in(
            &mut sql,
            "id",
            &mut q.ids.iter().map(|s| Value::Text(s.clone())),
        );
    }
    if !q.types.is_empty() {
        push_in(
            &mut sql,
            "type",
            &mut q.types.iter().map(|s| Value::Text(s.clone())),
        );
    }
    if !q.spec_versions.is_empty() {
        push_in(
            &mut sql,
            "spec_version",
            &mut q.spec_versions.iter().map(|s| Value::Text(s.clone())),
        );
    }
    if !vf.all {
        // Literal `= 1` terms, so the partial indexes qualify.
        let mut alts: Vec<String> = Vec::new();
        if vf.first {
            alts.push("is_first = 1".into());
        }
        if vf.last {
            alts.push("is_last = 1".into());
        }
        if !vf.at.is_empty() {
            let mut s = String::from("version_micros IN (");
            for (i, m) in vf.at.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                args.push(Value::Integer(*m));
                s.push_str(&format!("?{}", args.len()));
            }
            s.push(')');
            alts.push(s);
        }
        sql.push_str(" AND (");
        sql.push_str(&alts.join(" OR "));
        sql.push(')');
    }
    let limit = q.limit.max(1);
    args.push(Value::Integer(
        i64::try_from(limit)
            .unwrap_or(i64::MAX - 1)
            .saturating_add(1),
    ));
    sql.push_str(&format!(" ORDER BY date_added LIMIT ?{}", args.len()));
    (sql, args)
}

/// SQLite binds at most 32,766 values per statement; refuse a query string
/// with more filter values than that as the client's error, not ours.
const MAX_FILTER_VALUES: usize = 30_000;

fn check_filter_size(q: &Query) -> Result<()> {
    let n = q.ids.len() + q.types.len() + q.spec_versions.len() + q.versions.len();
    if n > MAX_FILTER_VALUES {
        return Err(StoreError::Invalid(format!(
            "{n} filter values; at most {MAX_FILTER_VALUES} are supported"
        )));
    }
    Ok(())
}

/// Where the page starts: strictly after both `added_after` (TAXII 2.1
/// §3.4.1: "added after", exclusive) and the continuation token.
fn start_after(q: &Query) -> Result<Micros> {
    let cursor = match &q.next {
        Some(t) => decode_cursor(t)?,
        None => i64::MIN,
    };
    Ok(cursor.max(q.added_after.unwrap_or(i64::MIN)))
}

/// Cut the `limit + 1` rows read into a page and its continuation token.
fn into_page<T>(mut items: Vec<T>, limit: usize, date_added: impl Fn(&T) -> Micros) -> Page<T> {
    let limit = limit.max(1);
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(|t| encode_cursor(date_added(t)));
        Page { items, next }
    } else {
        Page { items, next: None }
    }
}

impl SqliteStore {
    pub(crate) fn put_objects_impl(
        &self,
        collection: &str,
        objects: &[NewObject],
    ) -> Result<Vec<PutOutcome>> {
        for o in objects {
            if o.version.is_some() != o.version_micros.is_some() {
                return Err(StoreError::Invalid(format!(
                    "object {:?}: version and version_micros must be given together",
                    o.id
                )));
            }
        }
        let mut w = self.writer();
        let tx = w
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting write transaction")?;
        let (cid, mut last_added) = collection_key(&tx, collection)?;
        let now = now_micros();
        let mut added = 0i64;
        let mut outcomes = Vec::with_capacity(objects.len());
        for o in objects {
            // The current last version; none means a new object, which
            // needs no further lookup (the common case when ingesting).
            let last = edge(&tx, cid, &o.id, Edge::Last)?;
            if last.is_some()
                && let Some((at, digest)) = same_version(&tx, cid, o)?
            {
                outcomes.push(if digest[..] == o.digest[..] {
                    PutOutcome::Unchanged(at)
                } else {
                    PutOutcome::Conflict
                });
                continue;
            }
            // date_added = max(now, last + 1): strictly increasing per
            // collection even if the clock steps back, and assigned under
            // the writer lock so commit order is date_added order.
            let date_added = now.max(last_added.saturating_add(1));
            last_added = date_added;
            let vm = o.version_micros.unwrap_or(date_added);
            let key = (vm, date_added);
            // Only the current first and last versions can lose their flag,
            // so a few index seeks suffice however many versions exist.
            let (is_first, is_last) = match last {
                None => (true, true),
                Some(last) => {
                    let first = edge(&tx, cid, &o.id, Edge::First)?.unwrap_or(last);
                    let is_last = key > last.key;
                    let is_first = key < first.key;
                    if is_last {
                        set_flags(&tx, last.rid, last.is_first, false)?;
                    }
                    if is_first {
                        set_flags(&tx, first.rid, false, first.is_last)?;
                    }
                    (is_first, is_last)
                }
            };
            let version = match &o.version {
                Some(v) => v.clone(),
                None => rfc3339_micros(date_added),
            };
            tx.prepare_cached(
                "INSERT INTO objects (cid, release_class, date_added, id, type, spec_version, version, versionless,
                                      version_micros, is_first, is_last, digest, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .ctx("preparing object insert")?
            .execute(params![
                cid,
                PUBLIC_CLASS,
                date_added,
                o.id,
                o.object_type,
                o.spec_version,
                version,
                o.version.is_none(),
                vm,
                is_first,
                is_last,
                &o.digest[..],
                o.raw
            ])
            .ctx("inserting object")?;
            added += 1;
            outcomes.push(PutOutcome::Added(date_added));
        }
        if added > 0 {
            tx.prepare_cached(
                "UPDATE collections SET last_added = ?2, n_objects = n_objects + ?3 WHERE cid = ?1",
            )
            .ctx("preparing collection update")?
            .execute(params![cid, last_added, added])
            .ctx("updating collection")?;
        }
        tx.commit().ctx("committing objects")?;
        if added > 0 {
            self.committed();
        }
        Ok(outcomes)
    }

    pub(crate) fn delete_object_impl(
        &self,
        collection: &str,
        id: &str,
        versions: &[VersionSel],
        spec_versions: &[String],
    ) -> Result<u64> {
        let vf = VersionFilter::new(versions, VersionSel::All);
        let mut w = self.writer();
        let tx = w
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting delete transaction")?;
        let (cid, _) = collection_key(&tx, collection)?;
        let existing = load_versions(&tx, cid, id)?;
        let (gone, kept): (Vec<Existing>, Vec<Existing>) = existing.into_iter().partition(|e| {
            vf.selects(e) && (spec_versions.is_empty() || spec_versions.contains(&e.spec_version))
        });
        if gone.is_empty() {
            return Ok(0);
        }
        for e in &gone {
            tx.prepare_cached("DELETE FROM objects WHERE rid = ?1")
                .ctx("preparing object delete")?
                .execute([e.rid])
                .ctx("deleting object")?;
        }
        // Repair the flags: the survivors' first and last may have changed.
        let first = kept.iter().min_by_key(|e| e.key()).map(|e| e.rid);
        let last = kept.iter().max_by_key(|e| e.key()).map(|e| e.rid);
        for e in &kept {
            let (f, l) = (Some(e.rid) == first, Some(e.rid) == last);
            if (f, l) != (e.is_first, e.is_last) {
                set_flags(&tx, e.rid, f, l)?;
            }
        }
        let n = gone.len() as i64;
        tx.prepare_cached("UPDATE collections SET n_objects = n_objects - ?2 WHERE cid = ?1")
            .ctx("preparing collection update")?
            .execute(params![cid, n])
            .ctx("updating collection")?;
        tx.commit().ctx("committing delete")?;
        self.committed();
        Ok(n as u64)
    }

    pub(crate) fn objects_impl(&self, collection: &str, q: &Query) -> Result<Page<StoredObject>> {
        check_filter_size(q)?;
        let after = start_after(q)?;
        let vf = VersionFilter::new(&q.versions, VersionSel::Last);
        let r = self.reader()?;
        let (cid, _) = collection_key(&r, collection)?;
        let (sql, args) = page_sql(Shape::Objects, q, None, &vf, cid, after);
        let mut st = r.prepare_cached(&sql).ctx("preparing objects page")?;
        let items = st
            .query_map(params_from_iter(args), |r| {
                Ok(StoredObject {
                    id: r.get(0)?,
                    object_type: r.get(1)?,
                    spec_version: r.get(2)?,
                    version: r.get(3)?,
                    date_added: r.get(4)?,
                    raw: r.get(5)?,
                })
            })
            .ctx("reading objects page")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("reading objects page")?;
        Ok(into_page(items, q.limit, |o| o.date_added))
    }

    /// The manifest endpoint, or with `id` the versions endpoint (whose
    /// default `match[version]` is `all`, TAXII 2.1 §5.7).
    pub(crate) fn manifest_impl(
        &self,
        collection: &str,
        id: Option<&str>,
        q: &Query,
    ) -> Result<Page<ManifestEntry>> {
        check_filter_size(q)?;
        let after = start_after(q)?;
        let default = if id.is_some() {
            VersionSel::All
        } else {
            VersionSel::Last
        };
        let vf = VersionFilter::new(&q.versions, default);
        let r = self.reader()?;
        let (cid, _) = collection_key(&r, collection)?;
        let (sql, args) = page_sql(Shape::Manifest, q, id, &vf, cid, after);
        let mut st = r.prepare_cached(&sql).ctx("preparing manifest page")?;
        let items = st
            .query_map(params_from_iter(args), |r| {
                Ok(ManifestEntry {
                    id: r.get(0)?,
                    object_type: r.get(1)?,
                    spec_version: r.get(2)?,
                    version: r.get(3)?,
                    date_added: r.get(4)?,
                })
            })
            .ctx("reading manifest page")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("reading manifest page")?;
        Ok(into_page(items, q.limit, |e| e.date_added))
    }

    /// `VACUUM INTO` reads the database inside one read transaction, so the
    /// copy is the snapshot of one instant; in WAL mode that transaction
    /// does not block the writer, so the node keeps ingesting meanwhile.
    /// SQLite does not fsync the copy, so we do, before reporting success.
    pub(crate) fn backup_impl(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(StoreError::AlreadyExists(format!(
                "backup file {}",
                dest.display()
            )));
        }
        let dest_str = dest.to_str().ok_or_else(|| {
            StoreError::Invalid(format!("backup path {} is not UTF-8", dest.display()))
        })?;
        let conn = Connection::open(self.path()).ctx("opening backup connection")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .ctx("setting busy timeout")?;
        conn.execute("VACUUM INTO ?1", [dest_str])
            .ctx(&format!("writing backup {}", dest.display()))?;
        drop(conn);
        let io = |e: std::io::Error| {
            StoreError::Backend(format!("syncing backup {}: {e}", dest.display()))
        };
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the new directory entry durable too (best effort where
            // directories cannot be opened, e.g. some platforms).
            if let Ok(d) = std::fs::File::open(dir) {
                d.sync_all().map_err(io)?;
            }
        }
        Ok(())
    }
}
