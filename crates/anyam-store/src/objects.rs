//! Objects: the write path (put, delete, with first/last flag upkeep), the
//! keyset page queries behind the objects, manifest and versions endpoints,
//! and the online backup.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

use crate::codec::{decode_cursor, encode_cursor, now_micros, rfc3339_micros};
use crate::{
    ClassScope, Ctx, ManifestEntry, Micros, NewObject, Page, PutOutcome, Query, RatingFilter,
    Result, Search, SqliteStore, Status, StatusOf, StoreError, StoredObject, TypeScope, VersionSel,
};

/// What a bulk load into one collection (`anyam import`) knows between its
/// transactions, so that it can skip the lookup of an object's stored
/// versions when none can exist.
///
/// Storing an object first looks up the current first and last versions of
/// its id, an index seek that finds nothing for almost every object of a
/// bulk load into a new collection. If the collection held no object when
/// the load began, and no other writer has added to it since (its
/// `last_added` is still what this load's last commit left), then the only
/// ids stored in it are those this load stored. The load keeps a hash of
/// each, and an id whose hash it has not kept is certainly new. A hash it
/// has kept (the id itself, or another id with the same hash) is looked up
/// as usual, and so is every id once the collection was found not empty at
/// the start or written by someone else: the hint never changes an outcome
/// or a flag, only saves a seek. About 16 bytes per object stored.
#[derive(Debug, Default)]
pub struct BulkLoad {
    state: BulkState,
    hasher: std::hash::RandomState,
}

#[derive(Debug, Default)]
enum BulkState {
    /// Nothing stored yet: whether the collection is empty is not known.
    #[default]
    Unknown,
    /// The collection `cid` was empty when the load began, and its
    /// `last_added` is still `last_added`, set by this load's last commit.
    Fresh {
        cid: i64,
        last_added: Micros,
        stored: std::collections::HashSet<u64>,
    },
    /// Every id is looked up, to the end of the load.
    LookUp,
}

impl BulkLoad {
    pub fn new() -> Self {
        Self::default()
    }

    /// At the start of a transaction on collection `cid`, whose stored
    /// `last_added` is `last_added`: may ids not kept be taken as new?
    fn begin(&mut self, conn: &Connection, cid: i64, last_added: Micros) -> Result<bool> {
        match &self.state {
            BulkState::Fresh {
                cid: c,
                last_added: l,
                ..
            } if *c == cid && *l == last_added => return Ok(true),
            BulkState::Fresh { .. } | BulkState::LookUp => {
                self.state = BulkState::LookUp;
                return Ok(false);
            }
            BulkState::Unknown => {}
        }
        let held: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM objects WHERE cid = ?1)")
            .ctx("preparing the emptiness check")?
            .query_row([cid], |r| r.get(0))
            .ctx("checking whether the collection is empty")?;
        self.state = if held {
            BulkState::LookUp
        } else {
            BulkState::Fresh {
                cid,
                last_added,
                stored: std::collections::HashSet::new(),
            }
        };
        Ok(!held)
    }

    /// Whether `id` may be stored already (only asked after `begin` said
    /// yes).
    fn may_hold(&self, id: &str) -> bool {
        match &self.state {
            BulkState::Fresh { stored, .. } => {
                use std::hash::BuildHasher;
                stored.contains(&self.hasher.hash_one(id))
            }
            _ => true,
        }
    }

    /// `id` was stored in the open transaction. Kept even if that
    /// transaction then fails: a hash kept for nothing only costs a seek.
    fn stored(&mut self, id: &str) {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(id);
        if let BulkState::Fresh { stored, .. } = &mut self.state {
            stored.insert(h);
        }
    }

    /// The transaction committed, leaving the collection's `last_added`.
    fn committed(&mut self, now: Micros) {
        if let BulkState::Fresh { last_added, .. } = &mut self.state {
            *last_added = now;
        }
    }
}

/// One stored version of an object, as the writer needs it to decide what a
/// delete does.
struct Existing {
    rid: i64,
    release_class: i64,
    object_type: String,
    version_micros: Micros,
    date_added: Micros,
    spec_version: String,
    is_first: bool,
    is_last: bool,
    is_class_first: bool,
    is_class_last: bool,
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

/// Whether a version is inside the given classes and types.
fn sees(visible: &[ClassScope], e: &Existing) -> bool {
    admits(visible, e.release_class, &e.object_type)
}

fn admits(visible: &[ClassScope], class: i64, object_type: &str) -> bool {
    visible.iter().any(|s| {
        s.class == class
            && match &s.types {
                TypeScope::Any => true,
                TypeScope::Only(t) => t.iter().any(|x| x == object_type),
                TypeScope::Except(t) => !t.iter().any(|x| x == object_type),
            }
    })
}

/// For a candidate row of an object spread over several classes: is it
/// really the first (or last) of the versions the reader may see, as the
/// filter asks? The class flags only say it is first or last within its
/// own class.
fn edge_for_reader(
    conn: &Connection,
    cid: i64,
    id: &str,
    key: (Micros, Micros),
    vf: &VersionFilter,
    visible: &[ClassScope],
) -> Result<bool> {
    if vf.all || vf.at.contains(&key.0) {
        return Ok(true);
    }
    let mut st = conn
        .prepare_cached(
            "SELECT version_micros, date_added, release_class, type
             FROM objects INDEXED BY objects_by_id WHERE cid = ?1 AND id = ?2",
        )
        .ctx("preparing version lookup")?;
    let rows = st
        .query_map(params![cid, id], |r| {
            Ok((
                (r.get::<_, Micros>(0)?, r.get::<_, Micros>(1)?),
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .ctx("looking up versions")?;
    let (mut first, mut last) = (None::<(Micros, Micros)>, None::<(Micros, Micros)>);
    for row in rows {
        let (k, class, ty) = row.ctx("reading versions")?;
        if admits(visible, class, &ty) {
            first = Some(first.map_or(k, |f| f.min(k)));
            last = Some(last.map_or(k, |l| l.max(k)));
        }
    }
    Ok((vf.first && first == Some(key)) || (vf.last && last == Some(key)))
}

/// Every stored version of `id` in collection `cid`.
fn load_versions(conn: &Connection, cid: i64, id: &str) -> Result<Vec<Existing>> {
    let mut st = conn
        .prepare_cached(
            "SELECT rid, version_micros, date_added, spec_version, is_first, is_last, release_class, type,
                    is_class_first, is_class_last
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
            release_class: r.get(6)?,
            object_type: r.get(7)?,
            is_class_first: r.get(8)?,
            is_class_last: r.get(9)?,
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

/// The current first or last version of an object, or of its versions in
/// one class.
#[derive(Clone, Copy)]
struct EdgeRow {
    rid: i64,
    key: (Micros, Micros),
    is_first: bool,
    is_last: bool,
    is_class_first: bool,
    is_class_last: bool,
    in_many_classes: bool,
}

fn edge(
    conn: &Connection,
    cid: i64,
    id: &str,
    which: Edge,
    class: Option<i64>,
) -> Result<Option<EdgeRow>> {
    const COLS: &str = "rid, version_micros, date_added, is_first, is_last, is_class_first, is_class_last, in_many_classes";
    // The index orders by version instant only. Ordering by `date_added`
    // too (two rows of one object may share an instant: a versionless
    // row and a versioned one) made SQLite sort through a temporary
    // B-tree at every lookup, a tenth of an import's writing time; the
    // rows of the edge instant are compared here instead.
    let order = match which {
        Edge::First => "version_micros",
        Edge::Last => "version_micros DESC",
    };
    let in_class = if class.is_some() {
        " AND release_class = ?3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLS} FROM objects INDEXED BY objects_by_id
         WHERE cid = ?1 AND id = ?2{in_class} ORDER BY {order}"
    );
    let mut st = conn
        .prepare_cached(&sql)
        .ctx("preparing version order lookup")?;
    let mut rows = match class {
        Some(c) => st.query(params![cid, id, c]),
        None => st.query(params![cid, id]),
    }
    .ctx("looking up the first or last version")?;
    let mut edge: Option<EdgeRow> = None;
    while let Some(r) = rows.next().ctx("reading the first or last version")? {
        let row = EdgeRow {
            rid: r.get(0).ctx("reading a version")?,
            key: (
                r.get(1).ctx("reading a version")?,
                r.get(2).ctx("reading a version")?,
            ),
            is_first: r.get(3).ctx("reading a version")?,
            is_last: r.get(4).ctx("reading a version")?,
            is_class_first: r.get(5).ctx("reading a version")?,
            is_class_last: r.get(6).ctx("reading a version")?,
            in_many_classes: r.get(7).ctx("reading a version")?,
        };
        match &edge {
            Some(e) if e.key.0 != row.key.0 => break,
            Some(e) => {
                let beyond = match which {
                    Edge::First => row.key.1 < e.key.1,
                    Edge::Last => row.key.1 > e.key.1,
                };
                if beyond {
                    edge = Some(row);
                }
            }
            None => edge = Some(row),
        }
    }
    Ok(edge)
}

fn set_class_flags(conn: &Connection, rid: i64, first: bool, last: bool) -> Result<()> {
    conn.prepare_cached(
        "UPDATE objects SET is_class_first = ?2, is_class_last = ?3 WHERE rid = ?1",
    )
    .ctx("preparing class flag update")?
    .execute(params![rid, first, last])
    .ctx("updating class flags")?;
    Ok(())
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

    /// Whether a stored version is selected, given whether it is the
    /// first and the last of the versions in question.
    fn selects_with(&self, e: &Existing, first: bool, last: bool) -> bool {
        self.all
            || (self.first && first)
            || (self.last && last)
            || self.at.contains(&e.version_micros)
    }
}

/// Which columns a page query returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Objects,
    Manifest,
    /// Only `date_added`: the first phase of a page over several classes.
    Dates,
}

/// Build the keyset page query over one release class. Every page is
/// `WHERE cid = ? AND release_class = ? AND date_added > ? … ORDER BY
/// date_added LIMIT n+1` over one index whose leading columns are exactly
/// those, so SQLite seeks to the cursor and reads forward: the cost is the
/// page size (plus rows rejected by residual filters), independent of the
/// collection size and the depth. `until` bounds the range from above (the
/// second phase of a page over several classes). `INDEXED BY` pins the
/// choice so a stale planner estimate can never turn a page into a sort of
/// the collection.
#[allow(clippy::too_many_arguments)]
fn page_sql(
    shape: Shape,
    q: &Query,
    id: Option<&str>,
    vf: &VersionFilter,
    cid: i64,
    after: Micros,
    scope: Option<&ClassScope>,
    until: Option<Micros>,
) -> (String, Vec<Value>) {
    // Every shape has, from `tail_at`, what the reader-relative first/last
    // check needs: `id, version_micros, date_added, in_many_classes`, and
    // the row's class; the objects shape then adds the digest and the
    // versionless flag.
    let cols = match shape {
        Shape::Objects => OBJECT_COLUMNS,
        Shape::Manifest => {
            "id, type, spec_version, version, date_added, id, version_micros, date_added, in_many_classes, release_class"
        }
        // The index alone: (cid, release_class, date_added).
        Shape::Dates => "date_added",
    };
    let by_id = id.is_some() || !q.ids.is_empty();
    let index = if scope.is_none() {
        // Every class: only for the default `last` (see `read_page`).
        "objects_last_by_date"
    } else if by_id {
        // A handful of ids: read their versions and sort them; bounded by the
        // number of versions of those ids, not by the collection.
        "objects_by_id"
    } else if vf.all {
        "objects_all"
    } else if vf.last && !vf.first && vf.at.is_empty() {
        "objects_class_last"
    } else if vf.first && !vf.last && vf.at.is_empty() {
        "objects_class_first"
    } else {
        "objects_all"
    };
    let (mut sql, mut args) = match scope {
        Some(s) => (
            format!(
                "SELECT {cols} FROM objects INDEXED BY {index} WHERE cid = ?1 AND release_class = ?2 AND date_added > ?3"
            ),
            vec![
                Value::Integer(cid),
                Value::Integer(s.class),
                Value::Integer(after),
            ],
        ),
        None => (
            format!(
                "SELECT {cols} FROM objects INDEXED BY {index} WHERE cid = ?1 AND date_added > ?2"
            ),
            vec![Value::Integer(cid), Value::Integer(after)],
        ),
    };
    let types = scope.map_or(&TypeScope::Any, |s| &s.types);
    if let Some(u) = until {
        args.push(Value::Integer(u));
        sql.push_str(&format!(" AND date_added <= ?{}", args.len()));
    }
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
    match types {
        TypeScope::Any => {}
        TypeScope::Only(types) => push_in(
            &mut sql,
            "type",
            &mut types.iter().map(|s| Value::Text(s.clone())),
        ),
        TypeScope::Except(types) if types.is_empty() => {}
        TypeScope::Except(types) => push_in(
            &mut sql,
            "type NOT",
            &mut types.iter().map(|s| Value::Text(s.clone())),
        ),
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
        // Candidates: first or last within their class; for an object
        // spread over classes, `read_page` then checks the reader's view.
        if vf.first {
            alts.push("is_class_first = 1".into());
        }
        if vf.last && scope.is_none() {
            alts.push("is_last = 1".into());
        } else if vf.last {
            alts.push("is_class_last = 1".into());
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
    if let Some(f) = &q.rating {
        sql.push_str(" AND ");
        sql.push_str(&rating_sql(f, "", &mut args));
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

/// Whether `scopes` admit every type of every class the collection holds
/// now: the reader's newest version of an object is then its newest
/// version of all.
fn sees_every_class(conn: &Connection, cid: i64, scopes: &[ClassScope]) -> Result<bool> {
    if !scopes.iter().all(|s| matches!(&s.types, TypeScope::Any)) {
        return Ok(false);
    }
    let mut st = conn
        .prepare_cached("SELECT class FROM collection_classes WHERE cid = ?1")
        .ctx("preparing class list")?;
    let classes = st
        .query_map([cid], |r| r.get::<_, i64>(0))
        .ctx("listing classes")?;
    for c in classes {
        let c = c.ctx("listing classes")?;
        if !scopes.iter().any(|s| s.class == c) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The classes a query reads: the reader's visible classes, or for the
/// node's own processing every class present in the collection.
fn scopes_of(conn: &Connection, cid: i64, q: &Query) -> Result<Vec<ClassScope>> {
    if let Some(v) = &q.visible {
        return Ok(v.clone());
    }
    let mut st = conn
        .prepare_cached("SELECT class FROM collection_classes WHERE cid = ?1 ORDER BY class")
        .ctx("preparing class list")?;
    st.query_map([cid], |r| {
        Ok(ClassScope {
            class: r.get(0)?,
            types: TypeScope::Any,
        })
    })
    .ctx("listing classes")?
    .collect::<rusqlite::Result<_>>()
    .ctx("listing classes")
}

/// A row of the objects shape.
/// The columns [`stored_object`] reads, in its order: those of the
/// objects shape of a page, and of search.
const OBJECT_COLUMNS: &str = "id, spec_version, version, date_added, raw, id, version_micros, date_added, in_many_classes, release_class, digest, versionless";

fn stored_object(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredObject> {
    Ok(StoredObject {
        id: r.get(0)?,
        spec_version: r.get(1)?,
        version: r.get(2)?,
        date_added: r.get(3)?,
        raw: r.get(4)?,
        // After the shape's trailing columns (see `page_sql`).
        release_class: r.get(9)?,
        digest: r.get(10)?,
        versionless: r.get(11)?,
    })
}

/// Where a shape's trailing `id, version_micros, date_added,
/// in_many_classes` columns start.
fn tail_at(shape: Shape) -> usize {
    // Every shape leads with five columns (dates never go through `scan`).
    match shape {
        Shape::Objects | Shape::Manifest | Shape::Dates => 5,
    }
}

/// Rows reserved up front for a page (its `limit + 1`, at most this many):
/// growing a page's vectors by doubling cost a tenth of a page's time in
/// reallocations; a huge `limit` still grows as rows come.
const MAX_PREALLOCATED_ROWS: usize = 1024;

/// One row of a page query: the shape's value and its trailing columns.
struct PageRow<T> {
    item: T,
    /// The object id, read only when the reader's first/last check needs
    /// it (an object spread over several classes); empty otherwise.
    id: String,
    key: (Micros, Micros),
    many: bool,
    class: i64,
}

/// Run one page query over one class, keeping the rows the reader's
/// first/last check admits (`expected`: how many rows the query may return,
/// reserved up front). Returns the kept rows, how many rows the query
/// returned, and the last `date_added` it returned.
#[allow(clippy::too_many_arguments)]
fn scan<T>(
    conn: &Connection,
    shape: Shape,
    (sql, args): (String, Vec<Value>),
    cid: i64,
    vf: &VersionFilter,
    visible: &[ClassScope],
    every_class: bool,
    map: &impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    expected: usize,
) -> Result<(Vec<PageRow<T>>, usize, Option<Micros>)> {
    let at = tail_at(shape);
    let check = !vf.all && (vf.first || vf.last);
    let mut st = conn.prepare_cached(&sql).ctx("preparing page")?;
    let rows = st
        .query_map(params_from_iter(args), |r| {
            let many: bool = r.get(at + 3)?;
            Ok(PageRow {
                item: map(r)?,
                id: if check && many && !every_class {
                    r.get(at)?
                } else {
                    String::new()
                },
                key: (r.get(at + 1)?, r.get(at + 2)?),
                many,
                class: r.get(at + 4)?,
            })
        })
        .ctx("reading page")?;
    let mut kept = Vec::with_capacity(expected.min(MAX_PREALLOCATED_ROWS));
    let (mut n, mut last) = (0usize, None);
    for r in rows {
        let r = r.ctx("reading page")?;
        n += 1;
        last = Some(r.key.1);
        if every_class {
            // Read without a class condition: a row of a class the reader
            // was not given (one created since the reader's classes were
            // decided) is not for it. The global flags are the reader's,
            // since it may see every other class.
            if visible.iter().any(|s| s.class == r.class) {
                kept.push(r);
            }
            continue;
        }
        if check && r.many && !edge_for_reader(conn, cid, &r.id, r.key, vf, visible)? {
            continue;
        }
        kept.push(r);
    }
    Ok((kept, n, last))
}

/// One page (`limit + 1` rows at most, in `date_added` order) over the
/// given classes, inside the caller's read transaction.
///
/// One class is one range scan. Several classes take two phases, so that
/// no more than a page of rows is ever read in full however many classes
/// there are: first each class's next `limit + 1` `date_added` values
/// (from the index alone when no residual filter needs the row), whose
/// `(limit + 1)`-th smallest bounds the page; then each class's rows up to
/// that bound, merged. A query by id is bounded by that id's versions and
/// needs no first phase.
///
/// `first`/`last` are the reader's: a row flagged first or last within its
/// class, of an object whose versions are spread over several classes, is
/// kept only if it is first or last among the versions the reader may see.
/// Rows so dropped can leave a round short; then the next round continues
/// from where every class had been read to.
///
/// The statements of a page need no common snapshot: a writer only adds
/// rows above every `date_added` handed out, so a later statement sees the
/// same rows below a bound as an earlier one, or fewer (a delete); a round
/// that comes out short because of a delete is followed by another from
/// its bound, exactly as for rows the first/last check dropped.
#[allow(clippy::too_many_arguments)]
fn read_page<T>(
    conn: &Connection,
    shape: Shape,
    q: &Query,
    id: Option<&str>,
    vf: &VersionFilter,
    cid: i64,
    after: Micros,
    scopes: &[ClassScope],
    every_class: bool,
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    date_added: impl Fn(&T) -> Micros,
) -> Result<Vec<T>> {
    let limit = q.limit.max(1);
    let by_id = id.is_some() || !q.ids.is_empty();
    if every_class {
        // One range scan of the newest versions of every class.
        let mut after = after;
        let mut items: Vec<T> = Vec::with_capacity((limit + 1).min(MAX_PREALLOCATED_ROWS));
        loop {
            let sql = page_sql(shape, q, id, vf, cid, after, None, None);
            let (rows, n, last) = scan(conn, shape, sql, cid, vf, scopes, true, &map, limit + 1)?;
            items.extend(rows.into_iter().map(|r| r.item));
            match last {
                Some(l) if n > limit && items.len() <= limit => after = l,
                _ => break,
            }
        }
        items.truncate(limit + 1);
        return Ok(items);
    }
    let mut after = after;
    let mut items: Vec<T> = Vec::new();
    loop {
        // The bound counts candidates before the reader's first/last check
        // (which needs the rows): rows the check then drops only make the
        // round short, and the next round continues from the bound.
        let until = if scopes.len() > 1 && !by_id {
            let mut dates: Vec<Micros> = Vec::new();
            for s in scopes {
                let (sql, args) = page_sql(Shape::Dates, q, id, vf, cid, after, Some(s), None);
                let mut st = conn.prepare_cached(&sql).ctx("preparing page bound")?;
                let rows = st
                    .query_map(params_from_iter(args), |r| r.get::<_, Micros>(0))
                    .ctx("reading page bound")?;
                for d in rows {
                    dates.push(d.ctx("reading page bound")?);
                }
            }
            // A class listed twice (with different types) yields a row twice.
            dates.sort_unstable();
            dates.dedup();
            dates.get(limit).copied()
        } else {
            None
        };
        // How far every class has been read: rows beyond it may be
        // preceded by rows of another class not read yet.
        let mut reached: Option<Micros> = until;
        let mut round = Vec::new();
        // One statement per class: a single `release_class IN (…)` statement
        // would have SQLite sort the rows it collects from the several
        // ranges, copying each whole row, which measured slower.
        for s in scopes {
            let sql = page_sql(shape, q, id, vf, cid, after, Some(s), until);
            let (rows, n, last) = scan(conn, shape, sql, cid, vf, scopes, false, &map, limit + 1)?;
            if n > limit
                && let Some(l) = last
            {
                reached = Some(reached.map_or(l, |r| r.min(l)));
            }
            round.extend(rows.into_iter().map(|r| r.item));
        }
        round.sort_by_key(&date_added);
        // `date_added` is unique in a collection: equal values are one row
        // met through two scopes of the same class.
        round.dedup_by_key(|t| date_added(t));
        if let Some(r) = reached {
            round.retain(|t| date_added(t) <= r);
        }
        items.extend(round);
        match reached {
            Some(r) if items.len() <= limit => after = r,
            _ => break,
        }
    }
    items.truncate(limit + 1);
    Ok(items)
}

/// The SQL condition of an Admiralty filter over `{t}raw` (`t` the table
/// alias with its dot, or empty), binding its values into `args`.
fn rating_sql(f: &RatingFilter, t: &str, args: &mut Vec<Value>) -> String {
    let mut arg = |v: Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    let ext = arg(Value::Text(format!(
        "$.extensions.\"{}\"",
        f.reliability_extension.replace('"', "")
    )));
    let rel = arg(Value::Text(format!(
        "$.extensions.\"{}\".source_reliability",
        f.reliability_extension.replace('"', "")
    )));
    let raw = format!("{t}raw");
    let conf_int = format!("json_type({raw}, '$.confidence') IS 'integer'");
    let conf = format!("json_extract({raw}, '$.confidence')");
    let letter = format!(
        "CASE WHEN json_type({raw}, {ext}) IS NULL THEN 'F' \
         WHEN json_type({raw}, {rel}) = 'text' THEN upper(json_extract({raw}, {rel})) ELSE '' END"
    );
    let mut conds = vec![
        // Readable: a letter A–F (or no extension), a confidence of at most 100.
        format!("({letter}) IN ('A', 'B', 'C', 'D', 'E', 'F')"),
        format!("NOT ({conf_int} AND {conf} > 100)"),
    ];
    if let Some(m) = f.max_reliability {
        let allowed: Vec<String> = ['A', 'B', 'C', 'D', 'E', 'F']
            .into_iter()
            .filter(|c| *c <= m.to_ascii_uppercase())
            .map(|c| format!("'{c}'"))
            .collect();
        conds.push(format!("({letter}) IN ({})", allowed.join(", ")));
    }
    if let Some(c) = f.max_credibility {
        let least = match c {
            0 | 1 => Some(80),
            2 => Some(60),
            3 => Some(40),
            4 => Some(20),
            5 => Some(0),
            _ => None,
        };
        if let Some(least) = least {
            conds.push(format!("({conf_int} AND {conf} >= {least})"));
        }
    }
    // Stored texts are valid JSON; should one not be, it passes no filter
    // rather than failing the whole page.
    format!(
        "(CASE WHEN json_valid({raw}) THEN {} ELSE 0 END)",
        conds.join(" AND ")
    )
}

/// The full-text token of one observable value: the hexadecimal of its
/// bytes, so that it is one token whatever characters it holds (schema
/// version 8, where the migration computes the same with SQL's `hex`; the
/// tokenizer folds case, so upper and lower case digits are one token).
pub(crate) fn value_token(value: &str) -> String {
    hex::encode(value.as_bytes())
}

/// The tokens of an object's observable values, one per value.
fn value_tokens(values: &[String]) -> String {
    values
        .iter()
        .map(|v| value_token(v))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words of a search as an FTS5 query: each word a quoted phrase (so
/// no character of it is query syntax), a trailing `*` kept as a prefix
/// search, all words required. `None` when no word has a letter or digit.
fn fts_query(words: &[String]) -> Option<String> {
    let mut parts = Vec::new();
    for w in words {
        let (body, prefix) = match w.strip_suffix('*') {
            Some(b) => (b, true),
            None => (w.as_str(), false),
        };
        if !body.chars().any(char::is_alphanumeric) {
            continue;
        }
        let quoted = format!("\"{}\"", body.replace('"', "\"\""));
        parts.push(if prefix { format!("{quoted}*") } else { quoted });
    }
    (!parts.is_empty()).then(|| parts.join(" "))
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

/// Release classes interned during one write transaction, and which of
/// them are already recorded for which collection.
#[derive(Default)]
struct ClassCache {
    classes: std::collections::HashMap<String, i64>,
    recorded: std::collections::HashSet<(i64, i64)>,
}

impl ClassCache {
    /// The class of `label` in collection `cid`, creating the class and
    /// recording it for the collection as needed.
    fn intern(&mut self, conn: &Connection, cid: i64, label: &str) -> Result<i64> {
        let class = match self.classes.get(label) {
            Some(c) => *c,
            None => {
                let found: Option<i64> = conn
                    .prepare_cached("SELECT class FROM release_classes WHERE label = ?1")
                    .ctx("preparing class lookup")?
                    .query_row([label], |r| r.get(0))
                    .optional()
                    .ctx("looking up a release class")?;
                let c = match found {
                    Some(c) => c,
                    None => {
                        conn.prepare_cached("INSERT INTO release_classes (label) VALUES (?1)")
                            .ctx("preparing class insert")?
                            .execute([label])
                            .ctx("adding a release class")?;
                        conn.last_insert_rowid()
                    }
                };
                self.classes.insert(label.to_string(), c);
                c
            }
        };
        if self.recorded.insert((cid, class)) {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO collection_classes (cid, class) VALUES (?1, ?2)",
            )
            .ctx("preparing collection class insert")?
            .execute(params![cid, class])
            .ctx("recording a collection's class")?;
        }
        Ok(class)
    }
}

impl SqliteStore {
    /// The row id of a collection, for reads (cached; see `cids`).
    fn cid(&self, conn: &Connection, collection: &str) -> Result<i64> {
        if let Some(c) = self
            .cids
            .lock()
            .ok()
            .and_then(|m| m.get(collection).copied())
        {
            return Ok(c);
        }
        let (cid, _) = collection_key(conn, collection)?;
        if let Ok(mut m) = self.cids.lock() {
            m.insert(collection.to_string(), cid);
        }
        Ok(cid)
    }

    /// Store `objects` in one transaction; with `status`, also the status
    /// resource it makes of the outcomes (unless it declines), before the
    /// commit.
    pub(crate) fn put_objects_impl(
        &self,
        collection: &str,
        objects: &[NewObject],
        status: Option<StatusOf<'_>>,
        mut bulk: Option<&mut BulkLoad>,
    ) -> Result<(Vec<PutOutcome>, Option<Status>)> {
        for o in objects {
            if o.version.is_some() != o.version_micros.is_some() {
                return Err(StoreError::Invalid(format!(
                    "object {:?}: version and version_micros must be given together",
                    o.id
                )));
            }
        }
        let (mut w, deferred) = self.object_writer()?;
        let tx = w
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting write transaction")?;
        let (cid, mut last_added) = collection_key(&tx, collection)?;
        let fresh = match bulk.as_deref_mut() {
            Some(b) => b.begin(&tx, cid, last_added)?,
            None => false,
        };
        let now = now_micros();
        let mut added = 0i64;
        let mut classes = ClassCache::default();
        let mut outcomes = Vec::with_capacity(objects.len());
        // (row, tokens) of the observable values to index at the end.
        let mut observables: Vec<(i64, String)> = Vec::new();
        for o in objects {
            // The current last version; none means a new object, which
            // needs no further lookup (the common case when ingesting).
            let known_new = fresh && bulk.as_deref().is_some_and(|b| !b.may_hold(&o.id));
            let last = if known_new {
                None
            } else {
                edge(&tx, cid, &o.id, Edge::Last, None)?
            };
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
                    let first = edge(&tx, cid, &o.id, Edge::First, None)?.unwrap_or(last);
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
            let class = classes.intern(&tx, cid, &o.release_label)?;
            // The same within the version's class; an object that gains a
            // class is marked on every row as spread over several.
            let (is_class_first, is_class_last, many) = match last {
                None => (true, true, false),
                Some(global) => match edge(&tx, cid, &o.id, Edge::Last, Some(class))? {
                    None => {
                        tx.prepare_cached(
                            "UPDATE objects SET in_many_classes = 1
                             WHERE cid = ?1 AND id = ?2 AND in_many_classes = 0",
                        )
                        .ctx("preparing class spread update")?
                        .execute(params![cid, o.id])
                        .ctx("marking an object spread over classes")?;
                        (true, true, true)
                    }
                    Some(cl) => {
                        let cf = edge(&tx, cid, &o.id, Edge::First, Some(class))?.unwrap_or(cl);
                        let l = key > cl.key;
                        let f = key < cf.key;
                        if l {
                            set_class_flags(&tx, cl.rid, cl.is_class_first, false)?;
                        }
                        if f {
                            set_class_flags(&tx, cf.rid, false, cf.is_class_last)?;
                        }
                        (f, l, global.in_many_classes)
                    }
                },
            };
            tx.prepare_cached(
                "INSERT INTO objects (cid, release_class, date_added, id, type, spec_version, version, versionless,
                                      version_micros, is_first, is_last, digest, raw,
                                      is_class_first, is_class_last, in_many_classes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )
            .ctx("preparing object insert")?
            .execute(params![
                cid,
                class,
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
                o.raw,
                is_class_first,
                is_class_last,
                many
            ])
            .ctx("inserting object")?;
            // Before any other insert: it is the connection's last rowid.
            let rid = tx.last_insert_rowid();
            if o.object_type == "indicator" {
                // What the dropped insert trigger did (schema version 5).
                tx.prepare_cached("INSERT INTO indicator_changes (id) VALUES (?1)")
                    .ctx("preparing indicator change insert")?
                    .execute([&o.id])
                    .ctx("recording an indicator change")?;
            }
            if o.name.is_some() || o.description.is_some() {
                tx.prepare_cached(
                    "INSERT INTO objects_text (rowid, name, description) VALUES (?1, ?2, ?3)",
                )
                .ctx("preparing the full-text insert")?
                .execute(params![rid, o.name, o.description])
                .ctx("updating the full-text index")?;
            }
            if !o.observables.is_empty() {
                observables.push((rid, value_tokens(&o.observables)));
            }
            if fresh && let Some(b) = bulk.as_deref_mut() {
                b.stored(&o.id);
            }
            added += 1;
            outcomes.push(PutOutcome::Added(date_added));
        }
        if added > 0 {
            if !observables.is_empty() {
                // One statement for the whole transaction.
                let rows = serde_json::to_string(&observables)
                    .map_err(|e| StoreError::Backend(format!("encoding observable values: {e}")))?;
                tx.prepare_cached(
                    "INSERT INTO objects_observables (rowid, value_tokens)
                     SELECT value ->> 0, value ->> 1 FROM json_each(?1)",
                )
                .ctx("preparing the observable index update")?
                .execute([rows])
                .ctx("updating the observable index")?;
            }
            tx.prepare_cached(
                "UPDATE collections SET last_added = ?2, n_objects = n_objects + ?3 WHERE cid = ?1",
            )
            .ctx("preparing collection update")?
            .execute(params![cid, last_added, added])
            .ctx("updating collection")?;
        }
        let status = match status {
            Some(make) => make(&outcomes)?,
            None => None,
        };
        if let Some(s) = &status {
            crate::sqlite::write_status(&tx, s, &crate::sqlite::encode_status(s)?)?;
        }
        tx.commit().ctx("committing objects")?;
        // Numbered even when nothing was added: an `Unchanged` outcome may
        // rest on another write's commit that is not durable yet, and
        // waiting for a later number waits for that one too.
        let ticket = deferred.then(|| self.note_commit());
        drop(w);
        if let Some(b) = bulk {
            b.committed(last_added);
        }
        if added > 0 {
            self.committed();
        }
        if let Some(ticket) = ticket
            && let Err(e) = self.durable(ticket)
        {
            return Err(StoreError::NotDurable {
                reason: match e {
                    StoreError::Backend(m) => m,
                    other => other.to_string(),
                },
                outcomes,
            });
        }
        Ok((outcomes, status))
    }

    pub(crate) fn delete_object_impl(
        &self,
        collection: &str,
        id: &str,
        versions: &[VersionSel],
        spec_versions: &[String],
        visible: Option<&[ClassScope]>,
    ) -> Result<u64> {
        let vf = VersionFilter::new(versions, VersionSel::All);
        let mut w = self.writer()?;
        let tx = w
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting delete transaction")?;
        let (cid, _) = collection_key(&tx, collection)?;
        // Versions the caller may not see are not there for it: neither
        // deleted nor counted, and they keep their place among the versions.
        // `first` and `last` are the caller's: the first and last of the
        // versions it may see.
        let existing = load_versions(&tx, cid, id)?;
        let seen = |e: &Existing| visible.is_none_or(|v| sees(v, e));
        let first_seen = existing.iter().filter(|e| seen(e)).map(Existing::key).min();
        let last_seen = existing.iter().filter(|e| seen(e)).map(Existing::key).max();
        let (gone, kept): (Vec<Existing>, Vec<Existing>) = existing.into_iter().partition(|e| {
            seen(e)
                && vf.selects_with(e, Some(e.key()) == first_seen, Some(e.key()) == last_seen)
                && (spec_versions.is_empty() || spec_versions.contains(&e.spec_version))
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
        // Repair the flags: the survivors' first and last may have changed,
        // over all versions and within each class.
        let first = kept.iter().min_by_key(|e| e.key()).map(|e| e.rid);
        let last = kept.iter().max_by_key(|e| e.key()).map(|e| e.rid);
        let mut edges: std::collections::HashMap<i64, (&Existing, &Existing)> =
            std::collections::HashMap::new();
        for e in &kept {
            let slot = edges.entry(e.release_class).or_insert((e, e));
            if e.key() < slot.0.key() {
                slot.0 = e;
            }
            if e.key() > slot.1.key() {
                slot.1 = e;
            }
        }
        for e in &kept {
            let (f, l) = (Some(e.rid) == first, Some(e.rid) == last);
            if (f, l) != (e.is_first, e.is_last) {
                set_flags(&tx, e.rid, f, l)?;
            }
            if let Some((cf, cl)) = edges.get(&e.release_class) {
                let (f, l) = (e.rid == cf.rid, e.rid == cl.rid);
                if (f, l) != (e.is_class_first, e.is_class_last) {
                    set_class_flags(&tx, e.rid, f, l)?;
                }
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
        self.page(collection, None, q, Shape::Objects, stored_object, |o| {
            o.date_added
        })
    }

    /// The manifest endpoint, or with `id` the versions endpoint (whose
    /// default `match[version]` is `all`, TAXII 2.1 §5.7).
    pub(crate) fn manifest_impl(
        &self,
        collection: &str,
        id: Option<&str>,
        q: &Query,
    ) -> Result<Page<ManifestEntry>> {
        self.page(
            collection,
            id,
            q,
            Shape::Manifest,
            |r| {
                Ok(ManifestEntry {
                    id: r.get(0)?,
                    object_type: r.get(1)?,
                    spec_version: r.get(2)?,
                    version: r.get(3)?,
                    date_added: r.get(4)?,
                })
            },
            |e| e.date_added,
        )
    }

    /// One page of a collection (of one object's versions with `id`).
    fn page<T>(
        &self,
        collection: &str,
        id: Option<&str>,
        q: &Query,
        shape: Shape,
        map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        date_added: impl Fn(&T) -> Micros + Copy,
    ) -> Result<Page<T>> {
        check_filter_size(q)?;
        let after = start_after(q)?;
        let default = if id.is_some() {
            VersionSel::All
        } else {
            VersionSel::Last
        };
        let vf = VersionFilter::new(&q.versions, default);
        let r = self.reader()?;
        // No read transaction is needed around the statements of a page:
        // see `read_page`.
        let cid = self.cid(&r, collection)?;
        let scopes = scopes_of(&r, cid, q)?;
        let every_class = vf.last
            && !vf.first
            && !vf.all
            && vf.at.is_empty()
            && id.is_none()
            && q.ids.is_empty()
            && scopes.len() > 1
            && sees_every_class(&r, cid, &scopes)?;
        let items = read_page(
            &r,
            shape,
            q,
            id,
            &vf,
            cid,
            after,
            &scopes,
            every_class,
            map,
            date_added,
        )?;
        Ok(into_page(items, q.limit, date_added))
    }

    /// The newest versions in `collection` that match `s` and lie inside
    /// `visible`, newest first, at most `s.limit + 1` (the extra one only
    /// says that more exist).
    pub(crate) fn search_impl(
        &self,
        collection: &str,
        visible: &[ClassScope],
        s: &Search,
    ) -> Result<Vec<StoredObject>> {
        let text = fts_query(&s.words);
        if visible.is_empty() || (text.is_none() && s.value.is_none()) {
            return Ok(Vec::new());
        }
        let r = self.reader()?;
        // Rounds read downwards from the newest; what is added meanwhile is
        // newer still, so no read transaction is needed (see `read_page`).
        let tx: &Connection = &r;
        let cid = self.cid(tx, collection)?;
        let columns: Vec<String> = OBJECT_COLUMNS
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect();
        let mut sql = format!("SELECT {} FROM objects o", columns.join(", "));
        // ?2: read below this date_added (the next round of a short page).
        let mut args: Vec<Value> = vec![Value::Integer(cid), Value::Integer(i64::MAX)];
        // The newest version the caller may see: newest within its class,
        // checked against the other classes where the object is spread.
        let mut conds = vec![
            "o.cid = ?1".to_string(),
            "o.date_added < ?2".to_string(),
            "o.is_class_last = 1".to_string(),
        ];
        let arg = |args: &mut Vec<Value>, v: Value| {
            args.push(v);
            format!("?{}", args.len())
        };
        if let Some(v) = &s.value {
            let a = arg(
                &mut args,
                Value::Text(format!("\"{}\"", value_token(&v.to_lowercase()))),
            );
            conds.push(format!(
                "o.rid IN (SELECT rowid FROM objects_observables WHERE objects_observables MATCH {a})"
            ));
        }
        if let Some(t) = text {
            let a = arg(&mut args, Value::Text(t));
            conds.push(format!(
                "o.rid IN (SELECT rowid FROM objects_text WHERE objects_text MATCH {a})"
            ));
        }
        let list = |args: &mut Vec<Value>, vals: &[String]| -> String {
            vals.iter()
                .map(|t| arg(args, Value::Text(t.clone())))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !s.types.is_empty() {
            let l = list(&mut args, &s.types);
            conds.push(format!("o.type IN ({l})"));
        }
        if let Some(f) = &s.rating {
            conds.push(rating_sql(f, "o.", &mut args));
        }
        let mut alts = Vec::new();
        for sc in visible {
            let c = arg(&mut args, Value::Integer(sc.class));
            alts.push(match &sc.types {
                TypeScope::Any => format!("o.release_class = {c}"),
                TypeScope::Except(t) if t.is_empty() => format!("o.release_class = {c}"),
                TypeScope::Only(t) => {
                    let l = list(&mut args, t);
                    format!("(o.release_class = {c} AND o.type IN ({l}))")
                }
                TypeScope::Except(t) => {
                    let l = list(&mut args, t);
                    format!("(o.release_class = {c} AND o.type NOT IN ({l}))")
                }
            });
        }
        conds.push(format!("({})", alts.join(" OR ")));
        let limit = i64::try_from(s.limit.max(1)).unwrap_or(i64::MAX - 1);
        let l = arg(&mut args, Value::Integer(limit.saturating_add(1)));
        sql.push_str(&format!(
            " WHERE {} ORDER BY o.date_added DESC LIMIT {l}",
            conds.join(" AND ")
        ));
        let vf = VersionFilter::new(&[], VersionSel::Last);
        let want = s.limit.max(1) + 1;
        let mut found = Vec::new();
        loop {
            let (rows, n, last) = scan(
                tx,
                Shape::Objects,
                (sql.clone(), args.clone()),
                cid,
                &vf,
                visible,
                false,
                &stored_object,
                want,
            )?;
            found.extend(rows.into_iter().map(|r| r.item));
            match last {
                Some(l) if n >= want && found.len() < want => args[1] = Value::Integer(l),
                _ => break,
            }
        }
        found.truncate(want);
        Ok(found)
    }

    /// Give versions stored before release labels existed (class 0) the
    /// class of the label `f` computes from their text, `batch` versions
    /// per transaction. Returns how many versions were relabelled.
    pub(crate) fn relabel_unlabelled_impl(
        &self,
        f: &mut dyn FnMut(&str) -> String,
        batch: usize,
    ) -> Result<u64> {
        let mut done = 0u64;
        loop {
            let mut w = self.writer()?;
            let tx = w
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .ctx("starting relabel transaction")?;
            let rows: Vec<(i64, i64, String)> = tx
                .prepare_cached(
                    "SELECT rid, cid, raw FROM objects WHERE release_class = 0 LIMIT ?1",
                )
                .ctx("preparing relabel scan")?
                .query_map([i64::try_from(batch.max(1)).unwrap_or(1000)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .ctx("scanning unlabelled versions")?
                .collect::<rusqlite::Result<_>>()
                .ctx("scanning unlabelled versions")?;
            if rows.is_empty() {
                if done > 0 {
                    // Versions of one object may now sit in several classes:
                    // recompute the class flags from scratch.
                    tx.execute_batch(
                        "UPDATE objects SET
                           is_class_last = NOT EXISTS (SELECT 1 FROM objects o2 INDEXED BY objects_by_id
                             WHERE o2.cid = objects.cid AND o2.id = objects.id
                               AND o2.release_class = objects.release_class
                               AND (o2.version_micros, o2.date_added) > (objects.version_micros, objects.date_added)),
                           is_class_first = NOT EXISTS (SELECT 1 FROM objects o2 INDEXED BY objects_by_id
                             WHERE o2.cid = objects.cid AND o2.id = objects.id
                               AND o2.release_class = objects.release_class
                               AND (o2.version_micros, o2.date_added) < (objects.version_micros, objects.date_added)),
                           in_many_classes = EXISTS (SELECT 1 FROM objects o2 INDEXED BY objects_by_id
                             WHERE o2.cid = objects.cid AND o2.id = objects.id
                               AND o2.release_class <> objects.release_class);",
                    )
                    .ctx("recomputing class flags")?;
                }
                tx.commit().ctx("committing relabel")?;
                return Ok(done);
            }
            let mut classes = ClassCache::default();
            for (rid, cid, raw) in &rows {
                let label = f(raw);
                let class = classes.intern(&tx, *cid, &label)?;
                tx.prepare_cached("UPDATE objects SET release_class = ?2 WHERE rid = ?1")
                    .ctx("preparing relabel")?
                    .execute(params![rid, class])
                    .ctx("relabelling a version")?;
            }
            tx.commit().ctx("committing relabel")?;
            done += rows.len() as u64;
        }
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
