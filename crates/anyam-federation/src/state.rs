//! What federation remembers between runs, in a SQLite file of its own
//! (`federation.db` in the node's data directory; WAL, `synchronous=FULL`):
//!
//! - the sync cursor per partner and partner collection: the partner's
//!   `date_added` of the last object stored here, and the fingerprint of
//!   the agreements in force with that partner when the cursor was set
//!   (when they change, for instance a scope widens, the collection is
//!   read again from the start so that what is newly in scope is
//!   backfilled; receiving is idempotent, so nothing is stored twice);
//! - per partner: last success, last error, counts, and whether the live
//!   stream is up (`anyam sync status`);
//! - the outbox: signed documents (agreement versions, terminations,
//!   tombstones, sighting reports) queued for each partner, fetched by it
//!   before anything else on its next round and removed some time after
//!   it applied them ([`FederationDb::prune_delivered`]), and the cursor
//!   of what each partner's outbox delivered here;
//! - the provenance of every object version received: the originator, the
//!   partner it came from, the originator's terms for it, and the digest
//!   of the head of the originator's signed manifest, which is kept too,
//!   with what places the object in it (its leaf index, and its
//!   inclusion path when it came relayed, or the manifest's leaf hashes
//!   when it came from the originator itself), to pass on with the object
//!   when this node relays it.
//!
//! A cursor is written only after the objects it covers are committed to
//! the object store: a crash between the two makes the next round read
//! those objects again, which stores nothing new.

use std::path::Path;
use std::sync::Mutex;

use anyam_audit::Hash;
use anyam_trust::{Redistribution, Signed};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{FederationError, Result};

/// The first schema (version 0): what every file starts with. Changes
/// go into [`MIGRATIONS`], never here, so that a file of any age reaches
/// the same tables.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cursors (
    partner      TEXT NOT NULL,
    collection   TEXT NOT NULL,
    api_root     TEXT NOT NULL,
    added_after  INTEGER,
    fingerprint  TEXT NOT NULL,
    updated      TEXT NOT NULL,
    PRIMARY KEY (partner, collection)
);
CREATE TABLE IF NOT EXISTS partner_status (
    partner       TEXT PRIMARY KEY,
    last_success  TEXT,
    last_error    TEXT,
    last_error_at TEXT,
    received      INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    conflicts     INTEGER NOT NULL DEFAULT 0,
    rejected      INTEGER NOT NULL DEFAULT 0,
    stream_up     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS manifests (
    digest     TEXT PRIMARY KEY,
    publisher  TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS received (
    object_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    originator  TEXT NOT NULL,
    from_node   TEXT NOT NULL,
    manifest    TEXT NOT NULL REFERENCES manifests(digest),
    collection  TEXT NOT NULL,
    agreement   TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (object_id, version)
);
CREATE TABLE IF NOT EXISTS released_to (
    object_id  TEXT NOT NULL,
    partner    TEXT NOT NULL,
    PRIMARY KEY (object_id, partner)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS received_by_originator ON received (originator);
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    partner  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    digest   TEXT NOT NULL,
    body     TEXT NOT NULL,
    objects  TEXT,
    created  TEXT NOT NULL,
    UNIQUE (partner, digest)
);
CREATE TABLE IF NOT EXISTS mirrors (
    collection TEXT PRIMARY KEY,
    partner    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notice_cursors (
    partner  TEXT PRIMARY KEY,
    after    INTEGER NOT NULL
);
";

/// Schema changes after the first, oldest first: script `n` moves the
/// file from `user_version = n - 1` to `n`, in one transaction with the
/// version bump. Scripts that shipped are never edited.
const MIGRATIONS: &[&str] = &[RECEIVED_BY_SOURCE, RELAY_PROOFS, RELEASED_PAGES, RECEIPTS];

/// Version 4: the provenance of received versions is kept as receipts, in
/// the order they came. `received_versions` was a B-tree keyed by the
/// object id: ids are random, so each version received dirtied another of
/// its pages, and receiving a backlog of 1,000,000 objects spent a third
/// of its time writing them. Now a receipt is appended to `receipts` (row
/// ids in order), and its object id is one token (the hexadecimal of its
/// bytes) of `receipt_ids`, a contentless FTS5 index whose row ids are the
/// receipts': a transaction's receipts cost one sorted segment, merged
/// later with others. A version received again is a receipt again; the
/// receiver drops it once the store reports it held already
/// ([`FederationDb::drop_repeated`]), and the readers choose among
/// receipts of one version as the upsert on `received_versions` did
/// ([`chosen_receipt`]).
const RECEIPTS: &str = "
CREATE TABLE receipts (
    rid         INTEGER PRIMARY KEY,
    object_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    digest      BLOB NOT NULL,
    source      INTEGER NOT NULL REFERENCES sources(id),
    -- Microseconds since the Unix epoch.
    received_at INTEGER NOT NULL,
    terms       INTEGER REFERENCES terms(id),
    position    INTEGER,
    path        BLOB,
    salt        BLOB
);
CREATE VIRTUAL TABLE receipt_ids USING fts5(
    id,
    content = '', contentless_delete = 1, detail = none,
    tokenize = 'unicode61'
);
CREATE TRIGGER receipts_forgotten AFTER DELETE ON receipts BEGIN
    DELETE FROM receipt_ids WHERE rowid = old.rid;
END;
INSERT INTO receipts (object_id, version, digest, source, received_at, terms, position, path, salt)
    SELECT object_id, version, digest, source, received_at, terms, position, path, salt
    FROM received_versions ORDER BY received_at, object_id, version;
INSERT INTO receipt_ids (rowid, id) SELECT rid, hex(object_id) FROM receipts;
DROP TABLE received_versions;
";

/// Version 3: what was released to whom is kept by page. `released_to`
/// held one B-tree entry per (object, partner), keyed by the object's id:
/// ids are random, so each object released dirtied another page of it,
/// and building a page of 5,000 objects for a partner spent two thirds of
/// its time writing those pages (a backlog of 1,000,000 objects). Now each
/// page released is one row of `released_pages` (its partner) and one
/// document of `released_ids`, a contentless FTS5 index whose tokens are
/// the page's object ids, each the hexadecimal of its bytes (so an id is
/// one token, matched whole): a page costs one sorted segment, merged
/// later with others. The partners an object went to are those of the
/// pages whose document holds its token.
const RELEASED_PAGES: &str = "
CREATE TABLE released_pages (
    seq     INTEGER PRIMARY KEY,
    partner TEXT NOT NULL
);
CREATE VIRTUAL TABLE released_ids USING fts5(
    ids,
    content = '', contentless_delete = 1, detail = none,
    tokenize = 'unicode61'
);
INSERT INTO released_pages (partner) SELECT DISTINCT partner FROM released_to ORDER BY partner;
INSERT INTO released_ids (rowid, ids)
    SELECT p.seq, group_concat(hex(r.object_id), ' ')
    FROM released_to r JOIN released_pages p ON p.partner = r.partner
    GROUP BY p.seq;
DROP TABLE released_to;
";

/// Version 2: manifests are kept as their heads (the entries replaced by
/// their Merkle root), so that relaying an object passes on nothing else
/// of the originator's batch. A received version records the originator's
/// terms for it (by number: a node has few distinct terms), its leaf
/// index in the originator's manifest and the salt of its entry there; its inclusion path when it came
/// relayed (the path is all this node has of that manifest), else the
/// manifest keeps the leaf hashes of all its entries, 32 bytes each,
/// from which any entry's path is computed. Versions recorded before
/// have none of these and are not relayed (their manifests, kept whole,
/// are signed in the earlier form).
const RELAY_PROOFS: &str = "
ALTER TABLE manifests ADD COLUMN leaves BLOB;
CREATE TABLE terms (
    id   INTEGER PRIMARY KEY,
    json TEXT NOT NULL UNIQUE
);
ALTER TABLE received_versions ADD COLUMN terms INTEGER REFERENCES terms(id);
ALTER TABLE received_versions ADD COLUMN position INTEGER;
ALTER TABLE received_versions ADD COLUMN path BLOB;
ALTER TABLE received_versions ADD COLUMN salt BLOB;
";

/// Version 1: the provenance of a received version names its source (the
/// originator, the partner it came from, the originator's manifest, the
/// local collection and the agreement: the same for a whole page) by a
/// number, and its digest in binary, in a table without a row id. A
/// received version then costs one B-tree entry of about a hundred bytes
/// instead of two holding four hundred and fifty.
const RECEIVED_BY_SOURCE: &str = "
CREATE TABLE sources (
    id          INTEGER PRIMARY KEY,
    originator  TEXT NOT NULL,
    from_node   TEXT NOT NULL,
    manifest    TEXT NOT NULL REFERENCES manifests(digest),
    collection  TEXT NOT NULL,
    agreement   TEXT NOT NULL,
    UNIQUE (originator, from_node, manifest, collection, agreement)
);
CREATE INDEX sources_by_agreement ON sources (agreement);
CREATE TABLE received_versions (
    object_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    digest      BLOB NOT NULL,
    source      INTEGER NOT NULL REFERENCES sources(id),
    -- Microseconds since the Unix epoch.
    received_at INTEGER NOT NULL,
    PRIMARY KEY (object_id, version)
) WITHOUT ROWID;
INSERT INTO sources (originator, from_node, manifest, collection, agreement)
    SELECT DISTINCT originator, from_node, manifest, collection, agreement FROM received;
INSERT INTO received_versions (object_id, version, digest, source, received_at)
    SELECT r.object_id, r.version, unhex(r.digest), s.id,
           unixepoch(r.received_at) * 1000000
           + CASE WHEN instr(r.received_at, '.') > 0
                  THEN CAST(substr(replace(substr(r.received_at, instr(r.received_at, '.') + 1), 'Z', '')
                                   || '000000', 1, 6) AS INTEGER)
                  ELSE 0 END
    FROM received r JOIN sources s
      ON s.originator = r.originator AND s.from_node = r.from_node AND s.manifest = r.manifest
     AND s.collection = r.collection AND s.agreement = r.agreement;
DROP INDEX received_by_originator;
DROP TABLE received;
";

/// Bring the file to the newest schema, or refuse one written by a newer
/// program.
fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(FederationError::SchemaTooNew { found, supported });
    }
    for (n, script) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(script)?;
        tx.pragma_update(None, "user_version", n as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// One sync cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub partner: String,
    pub collection: String,
    pub api_root: String,
    /// The partner's `date_added` (microseconds) of the last object
    /// stored; `None`: from the start.
    pub added_after: Option<i64>,
    pub fingerprint: String,
    pub updated: String,
}

/// Per-partner sync state, for `anyam sync status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PartnerStatus {
    pub partner: String,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub received: u64,
    pub unchanged: u64,
    pub conflicts: u64,
    pub rejected: u64,
    pub stream_up: bool,
}

/// Counts of one stored batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub received: u64,
    pub unchanged: u64,
    pub conflicts: u64,
}

/// Where a received object version came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    pub originator: String,
    pub from_node: String,
    /// Digest of the object's canonical JSON.
    pub digest: String,
    /// The head of the originator's signed manifest covering it (a
    /// manifest kept before version 2 of this file: the whole manifest).
    pub manifest: Signed,
    pub manifest_digest: String,
    /// What relaying it needs; `None` for versions recorded before
    /// version 2 of this file.
    pub place: Option<Place>,
}

/// The originator's terms for a received version and where its entry
/// sits in the originator's manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub terms: Redistribution,
    pub position: u64,
    /// The salt of the originator's entry (32 hex digits).
    pub salt: String,
    /// Its inclusion path (lowercase hex, leaf side first) when it came
    /// relayed; `None` when the manifest's leaves are kept
    /// ([`FederationDb::manifest_leaves`]).
    pub path: Option<Vec<String>>,
}

/// A manifest to keep: its head (whose digest names it) and, for one
/// received whole, the leaf hashes of its entries.
#[derive(Debug, Clone, Copy)]
pub struct KeptManifest<'a> {
    pub digest: &'a str,
    pub head: &'a Signed,
    pub leaves: Option<&'a [Hash]>,
}

/// A received object version to remember.
#[derive(Debug, Clone)]
pub struct ReceivedVersion<'a> {
    /// The local collection it is kept in.
    pub collection: &'a str,
    /// The agreement the page it came in was published under.
    pub agreement: &'a str,
    pub object_id: &'a str,
    pub version: Option<&'a str>,
    pub digest: &'a str,
    pub originator: &'a str,
    pub manifest_digest: &'a str,
    /// The originator's terms for it.
    pub terms: &'a Redistribution,
    /// Its leaf index in the originator's manifest.
    pub position: u64,
    /// The salt of the originator's entry (32 hex digits).
    pub salt: &'a str,
    /// Its inclusion path, when it came relayed.
    pub path: Option<&'a [String]>,
}

/// A source of received versions within one call of
/// [`FederationDb::record_received`] (whose partner is the same for all):
/// originator, originator's manifest, local collection, agreement.
type SourceKey<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The federation database.
#[derive(Debug)]
pub struct FederationDb {
    conn: Mutex<Connection>,
}

fn now() -> String {
    anyam_trust::format_time(jiff::Timestamp::now())
}

/// The full-text token of an object id in `released_ids` and
/// `receipt_ids`: the hexadecimal of its bytes, as the migrations to
/// versions 3 and 4 compute it with SQL's `hex` (the tokenizer folds the
/// digits' case).
fn id_token(object_id: &str) -> String {
    hex::encode(object_id.as_bytes())
}

/// `id_token` as an FTS5 query: one token, matched whole.
fn id_query(object_id: &str) -> String {
    format!("\"{}\"", id_token(object_id))
}

/// One receipt of a version, as [`chosen_receipt`] weighs it.
struct Receipt {
    rid: i64,
    version: String,
    digest: Vec<u8>,
    has_terms: bool,
}

/// The receipts of an object (of one version of it, when given), oldest
/// first.
fn receipts_of(conn: &Connection, object_id: &str, version: Option<&str>) -> Result<Vec<Receipt>> {
    let mut st = conn.prepare_cached(
        "SELECT rid, version, digest, terms IS NOT NULL FROM receipts
         WHERE rid IN (SELECT rowid FROM receipt_ids WHERE receipt_ids MATCH ?1)
           AND object_id = ?2 AND (?3 IS NULL OR version = ?3)
         ORDER BY rid",
    )?;
    let rows = st.query_map(params![id_query(object_id), object_id, version], |r| {
        Ok(Receipt {
            rid: r.get(0)?,
            version: r.get(1)?,
            digest: r.get(2)?,
            has_terms: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Of the receipts of one version, oldest first, the one that gives its
/// provenance: the first receipt stays, unless it was recorded before
/// version 2 of this file (without the originator's terms and what places
/// the version in its manifest): then the first later receipt of the same
/// content that has them stands for it.
fn chosen_receipt<'r>(
    receipts: impl IntoIterator<Item = &'r Receipt> + Clone,
) -> Option<&'r Receipt> {
    let first = receipts.clone().into_iter().next()?;
    receipts
        .into_iter()
        .find(|r| r.has_terms && r.digest == first.digest)
        .or(Some(first))
}

impl FederationDb {
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut conn = conn;
        if conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? == 0 {
            // The first schema, as every file starts (or started) with.
            conn.execute_batch(SCHEMA)?;
        }
        migrate(&mut conn)?;
        Ok(FederationDb {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every
        // write is one statement or one transaction).
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write a consistent copy to `dest` (which must not exist), for
    /// `anyam backup`. Copy it after the object store: provenance then
    /// covers every received version in the store's copy (a version whose
    /// provenance is missing is withheld from partners, never relayed as
    /// the node's own).
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let dest = dest
            .to_str()
            .ok_or_else(|| FederationError::Protocol("backup path is not UTF-8".into()))?;
        self.conn().execute("VACUUM INTO ?1", [dest])?;
        Ok(())
    }

    /// Remember that `collection` was created here to keep what
    /// `partner` shares.
    pub fn add_mirror(&self, collection: &str, partner: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR IGNORE INTO mirrors (collection, partner) VALUES (?1, ?2)",
            params![collection, partner],
        )?;
        Ok(())
    }

    /// Whether `collection` was created here for a partner's data (rather
    /// than being one of this node's own).
    pub fn is_mirror(&self, collection: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM mirrors WHERE collection = ?1",
                params![collection],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The cursor of one partner collection.
    pub fn cursor(&self, partner: &str, collection: &str) -> Result<Option<Cursor>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT partner, collection, api_root, added_after, fingerprint, updated
                 FROM cursors WHERE partner = ?1 AND collection = ?2",
                params![partner, collection],
                row_cursor,
            )
            .optional()?)
    }

    /// Every cursor, by partner and collection.
    pub fn cursors(&self) -> Result<Vec<Cursor>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT partner, collection, api_root, added_after, fingerprint, updated
             FROM cursors ORDER BY partner, collection",
        )?;
        let rows = st.query_map([], row_cursor)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Move a cursor (after the objects up to it were committed).
    pub fn set_cursor(&self, c: &Cursor) -> Result<()> {
        self.conn().execute(
            "INSERT INTO cursors (partner, collection, api_root, added_after, fingerprint, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (partner, collection) DO UPDATE SET
               api_root = excluded.api_root, added_after = excluded.added_after,
               fingerprint = excluded.fingerprint, updated = excluded.updated",
            params![
                c.partner,
                c.collection,
                c.api_root,
                c.added_after,
                c.fingerprint,
                now()
            ],
        )?;
        Ok(())
    }

    /// Remember the originators' manifests and the provenance of the
    /// versions received, in one transaction. Returns the receipts' row
    /// ids, in the order of `versions`.
    pub fn record_received(
        &self,
        from_node: &str,
        manifests: &[KeptManifest<'_>],
        versions: &[ReceivedVersion<'_>],
    ) -> Result<Vec<i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut rids = Vec::with_capacity(versions.len());
        {
            let mut put_m = tx.prepare_cached(
                "INSERT INTO manifests (digest, publisher, body, leaves) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (digest) DO UPDATE SET leaves = coalesce(leaves, excluded.leaves)",
            )?;
            for m in manifests {
                let publisher = m
                    .head
                    .document
                    .get("publisher")
                    .and_then(|p| p.as_str())
                    .unwrap_or_default();
                let body = serde_json::to_string(m.head)
                    .map_err(|e| FederationError::Protocol(format!("manifest: {e}")))?;
                let leaves: Option<Vec<u8>> =
                    m.leaves.map(|l| l.iter().flat_map(|h| h.0).collect());
                put_m.execute(params![m.digest, publisher, body, leaves])?;
            }
            let mut put_terms =
                tx.prepare_cached("INSERT OR IGNORE INTO terms (json) VALUES (?1)")?;
            let mut get_terms = tx.prepare_cached("SELECT id FROM terms WHERE json = ?1")?;
            // A node meets a handful of distinct terms.
            let mut terms_ids: Vec<(&Redistribution, i64)> = Vec::new();
            let mut put_source = tx.prepare_cached(
                "INSERT OR IGNORE INTO sources (originator, from_node, manifest, collection, agreement)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut get_source = tx.prepare_cached(
                "SELECT id FROM sources WHERE originator = ?1 AND from_node = ?2 AND manifest = ?3
                   AND collection = ?4 AND agreement = ?5",
            )?;
            let mut put_r = tx.prepare_cached(
                "INSERT INTO receipts
                   (object_id, version, digest, source, received_at, terms, position, path, salt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut put_id =
                tx.prepare_cached("INSERT INTO receipt_ids (rowid, id) VALUES (?1, ?2)")?;
            let at = jiff::Timestamp::now().as_microsecond();
            // A page has a handful of sources at most.
            let mut sources: Vec<(SourceKey<'_>, i64)> = Vec::new();
            for v in versions {
                let key = (v.originator, v.manifest_digest, v.collection, v.agreement);
                let source = match sources.iter().find(|(k, _)| *k == key) {
                    Some((_, id)) => *id,
                    None => {
                        let p = params![
                            v.originator,
                            from_node,
                            v.manifest_digest,
                            v.collection,
                            v.agreement
                        ];
                        put_source.execute(p)?;
                        let id: i64 = get_source.query_row(p, |r| r.get(0))?;
                        sources.push((key, id));
                        id
                    }
                };
                let digest = hex::decode(v.digest).map_err(|e| {
                    FederationError::Protocol(format!(
                        "the digest of {} is not hex: {e}",
                        v.object_id
                    ))
                })?;
                let terms = match terms_ids.iter().find(|(t, _)| *t == v.terms) {
                    Some((_, id)) => *id,
                    None => {
                        let json = serde_json::to_string(v.terms)
                            .map_err(|e| FederationError::Protocol(format!("terms: {e}")))?;
                        put_terms.execute([&json])?;
                        let id: i64 = get_terms.query_row([&json], |r| r.get(0))?;
                        terms_ids.push((v.terms, id));
                        id
                    }
                };
                let path = match v.path {
                    Some(p) => {
                        let mut bytes = Vec::with_capacity(p.len() * 32);
                        for h in p {
                            let h: Hash = h.parse().map_err(|e| {
                                FederationError::Protocol(format!(
                                    "the inclusion path of {}: {e}",
                                    v.object_id
                                ))
                            })?;
                            bytes.extend_from_slice(&h.0);
                        }
                        Some(bytes)
                    }
                    None => None,
                };
                let salt = hex::decode(v.salt).map_err(|e| {
                    FederationError::Protocol(format!(
                        "the entry salt of {} is not hex: {e}",
                        v.object_id
                    ))
                })?;
                put_r.execute(params![
                    v.object_id,
                    v.version.unwrap_or(""),
                    digest,
                    source,
                    at,
                    terms,
                    i64::try_from(v.position).unwrap_or(i64::MAX),
                    path,
                    salt
                ])?;
                let rid = tx.last_insert_rowid();
                put_id.execute(params![rid, id_token(v.object_id)])?;
                rids.push(rid);
            }
        }
        tx.commit()?;
        Ok(rids)
    }

    /// Drop the receipts among `rids` that repeat an earlier receipt of
    /// the same version: the receiver passes those of versions the store
    /// reported it held already (unchanged, or a conflict). A receipt
    /// stays when it is the one [`chosen_receipt`] picks, that is, when
    /// it is the version's first, or the first carrying what relaying
    /// needs after receipts recorded before version 2 of this file.
    pub fn drop_repeated(&self, rids: &[i64]) -> Result<()> {
        if rids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut get =
                tx.prepare_cached("SELECT object_id, version FROM receipts WHERE rid = ?1")?;
            let mut drop = tx.prepare_cached("DELETE FROM receipts WHERE rid = ?1")?;
            for &rid in rids {
                let Some((id, version)) = get
                    .query_row([rid], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .optional()?
                else {
                    continue;
                };
                let all = receipts_of(&tx, &id, Some(&version))?;
                if chosen_receipt(&all).is_some_and(|c| c.rid != rid) {
                    drop.execute([rid])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The provenance of a received version, with the head of the
    /// originator's manifest.
    pub fn provenance(&self, object_id: &str, version: Option<&str>) -> Result<Option<Provenance>> {
        let conn = self.conn();
        let receipts = receipts_of(&conn, object_id, Some(version.unwrap_or("")))?;
        let Some(chosen) = chosen_receipt(&receipts) else {
            return Ok(None);
        };
        let mut st = conn.prepare_cached(
            "SELECT s.originator, s.from_node, r.digest, s.manifest, m.body, t.json, r.position, r.path,
                    r.salt
             FROM receipts r JOIN sources s ON s.id = r.source
             JOIN manifests m ON m.digest = s.manifest
             LEFT JOIN terms t ON t.id = r.terms
             WHERE r.rid = ?1",
        )?;
        type Row = (
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            Option<i64>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
        );
        let row: Option<Row> = st
            .query_row([chosen.rid], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    hex::encode(r.get::<_, Vec<u8>>(2)?),
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .optional()?;
        let Some((
            originator,
            from_node,
            digest,
            manifest_digest,
            body,
            terms,
            position,
            path,
            salt,
        )) = row
        else {
            return Ok(None);
        };
        let manifest = Signed::from_json(&body)
            .map_err(|e| FederationError::Protocol(format!("stored manifest: {e}")))?;
        let place = match (terms, position, salt) {
            (Some(terms), Some(position), Some(salt)) => Some(Place {
                terms: serde_json::from_str(&terms)
                    .map_err(|e| FederationError::Protocol(format!("stored terms: {e}")))?,
                position: u64::try_from(position).unwrap_or_default(),
                salt: hex::encode(salt),
                path: path.map(|p| p.chunks(32).map(hex::encode).collect::<Vec<String>>()),
            }),
            _ => None,
        };
        Ok(Some(Provenance {
            originator,
            from_node,
            digest,
            manifest,
            manifest_digest,
            place,
        }))
    }

    /// The leaf hashes of a manifest received whole, in entry order.
    pub fn manifest_leaves(&self, digest: &str) -> Result<Option<Vec<Hash>>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT leaves FROM manifests WHERE digest = ?1")?;
        let blob: Option<Option<Vec<u8>>> = st.query_row([digest], |r| r.get(0)).optional()?;
        Ok(blob
            .flatten()
            .map(|b| b.chunks_exact(32).filter_map(Hash::from_slice).collect()))
    }

    /// Record a successful round (or stream batch) with a partner.
    pub fn record_success(&self, partner: &str, counts: Counts) -> Result<()> {
        self.conn().execute(
            "INSERT INTO partner_status (partner, last_success, received, unchanged, conflicts)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (partner) DO UPDATE SET
               last_success = excluded.last_success,
               received = received + excluded.received,
               unchanged = unchanged + excluded.unchanged,
               conflicts = conflicts + excluded.conflicts",
            params![
                partner,
                now(),
                counts.received as i64,
                counts.unchanged as i64,
                counts.conflicts as i64
            ],
        )?;
        Ok(())
    }

    /// Record a failure; `rejected` counts a batch refused on verification.
    pub fn record_error(&self, partner: &str, error: &str, rejected: bool) -> Result<()> {
        self.conn().execute(
            "INSERT INTO partner_status (partner, last_error, last_error_at, rejected)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (partner) DO UPDATE SET
               last_error = excluded.last_error,
               last_error_at = excluded.last_error_at,
               rejected = rejected + excluded.rejected",
            params![partner, error, now(), i64::from(rejected)],
        )?;
        Ok(())
    }

    /// Whether the live stream from a partner is up.
    pub fn set_stream_up(&self, partner: &str, up: bool) -> Result<()> {
        self.conn().execute(
            "INSERT INTO partner_status (partner, stream_up) VALUES (?1, ?2)
             ON CONFLICT (partner) DO UPDATE SET stream_up = excluded.stream_up",
            params![partner, up],
        )?;
        Ok(())
    }

    /// Every partner's status.
    pub fn statuses(&self) -> Result<Vec<PartnerStatus>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT partner, last_success, last_error, last_error_at, received, unchanged,
                    conflicts, rejected, stream_up
             FROM partner_status ORDER BY partner",
        )?;
        let rows = st.query_map([], |r| {
            Ok(PartnerStatus {
                partner: r.get(0)?,
                last_success: r.get(1)?,
                last_error: r.get(2)?,
                last_error_at: r.get(3)?,
                received: r.get::<_, i64>(4)? as u64,
                unchanged: r.get::<_, i64>(5)? as u64,
                conflicts: r.get::<_, i64>(6)? as u64,
                rejected: r.get::<_, i64>(7)? as u64,
                stream_up: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A version of an object received here: its version key (empty for
/// objects without `modified`/`created`), originator, and local
/// collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldVersion {
    pub version: String,
    pub originator: String,
    pub collection: String,
    /// The partner it came from.
    pub from_node: String,
    /// The agreement the page it came in was published under.
    pub agreement: String,
}

impl FederationDb {
    /// Remember that the objects `ids` were released to `partner` (so a
    /// deletion by their originator reaches it): one page, one row and one
    /// full-text document (schema version 3).
    pub fn record_released(&self, partner: &str, ids: &[&str]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let tokens = ids
            .iter()
            .map(|id| id_token(id))
            .collect::<Vec<_>>()
            .join(" ");
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached("INSERT INTO released_pages (partner) VALUES (?1)")?
            .execute([partner])?;
        let page = tx.last_insert_rowid();
        tx.prepare_cached("INSERT INTO released_ids (rowid, ids) VALUES (?1, ?2)")?
            .execute(params![page, tokens])?;
        tx.commit()?;
        Ok(())
    }

    /// The partners an object was released to.
    pub fn released_to(&self, object_id: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT DISTINCT partner FROM released_pages
             WHERE seq IN (SELECT rowid FROM released_ids WHERE released_ids MATCH ?1)
             ORDER BY partner",
        )?;
        let rows = st.query_map([id_query(object_id)], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The versions of an object received here, each with the source of
    /// its chosen receipt ([`chosen_receipt`]), by version.
    pub fn held(&self, object_id: &str) -> Result<Vec<HeldVersion>> {
        let conn = self.conn();
        let receipts = receipts_of(&conn, object_id, None)?;
        let mut versions: Vec<&str> = receipts.iter().map(|r| r.version.as_str()).collect();
        versions.sort_unstable();
        versions.dedup();
        let mut st = conn.prepare_cached(
            "SELECT s.originator, s.collection, s.from_node, s.agreement
             FROM receipts r JOIN sources s ON s.id = r.source WHERE r.rid = ?1",
        )?;
        let mut held = Vec::with_capacity(versions.len());
        for v in versions {
            let Some(chosen) = chosen_receipt(receipts.iter().filter(|r| r.version == v)) else {
                continue;
            };
            held.push(st.query_row([chosen.rid], |r| {
                Ok(HeldVersion {
                    version: v.to_string(),
                    originator: r.get(0)?,
                    collection: r.get(1)?,
                    from_node: r.get(2)?,
                    agreement: r.get(3)?,
                })
            })?);
        }
        Ok(held)
    }

    /// Every version received under `agreement` (by its chosen receipt):
    /// (collection, object id, version key), in that order. Reads every
    /// receipt: it runs when an agreement ends.
    pub fn received_under(&self, agreement: &str) -> Result<Vec<(String, String, String)>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT r.object_id, r.version, r.rid, r.digest, r.terms IS NOT NULL,
                    s.collection, s.agreement
             FROM receipts r JOIN sources s ON s.id = r.source
             ORDER BY r.object_id, r.version, r.rid",
        )?;
        let mut rows = st.query([])?;
        let mut under = Vec::new();
        // The receipts of one version, oldest first, with their collection
        // and agreement.
        let mut group: Vec<(Receipt, String, String)> = Vec::new();
        let mut id = String::new();
        let mut take = |id: &str, group: &mut Vec<(Receipt, String, String)>| {
            if let Some(chosen) = chosen_receipt(group.iter().map(|(r, _, _)| r))
                && let Some((r, collection, a)) = group.iter().find(|(r, _, _)| r.rid == chosen.rid)
                && a == agreement
            {
                under.push((collection.clone(), id.to_string(), r.version.clone()));
            }
            group.clear();
        };
        while let Some(row) = rows.next()? {
            let object_id: String = row.get(0)?;
            let receipt = Receipt {
                rid: row.get(2)?,
                version: row.get(1)?,
                digest: row.get(3)?,
                has_terms: row.get(4)?,
            };
            let same = object_id == id
                && group
                    .first()
                    .is_some_and(|(r, _, _)| r.version == receipt.version);
            if !same {
                take(&id, &mut group);
                id = object_id;
            }
            group.push((receipt, row.get(5)?, row.get(6)?));
        }
        take(&id, &mut group);
        under.sort_unstable();
        Ok(under)
    }

    /// Forget received versions (after they were deleted here): every
    /// receipt of them.
    pub fn forget(&self, object_id: &str, versions: Option<&[String]>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let receipts = receipts_of(&tx, object_id, None)?;
        {
            let mut drop = tx.prepare_cached("DELETE FROM receipts WHERE rid = ?1")?;
            for r in &receipts {
                if versions.is_none_or(|vs| vs.contains(&r.version)) {
                    drop.execute([r.rid])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// A signed document queued for one partner ([`FederationDb::queue`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub seq: i64,
    pub kind: String,
    pub document: Signed,
    /// Objects the document covers (a sighting report's sightings).
    pub objects: Vec<String>,
}

impl FederationDb {
    /// Queue a signed document for `partner`, who fetches it on its next
    /// round. The same document is queued once per partner; returns
    /// whether it was new.
    pub fn queue(&self, partner: &str, kind: &str, doc: &Signed) -> Result<bool> {
        self.queue_with(partner, kind, doc, &[])
    }

    /// [`FederationDb::queue`] with the objects the document covers (JSON
    /// texts, sent as they are).
    pub fn queue_with(
        &self,
        partner: &str,
        kind: &str,
        doc: &Signed,
        objects: &[String],
    ) -> Result<bool> {
        let body = serde_json::to_string(doc)
            .map_err(|e| FederationError::Protocol(format!("notice: {e}")))?;
        let objects = (!objects.is_empty())
            .then(|| serde_json::to_string(objects))
            .transpose()
            .map_err(|e| FederationError::Protocol(format!("notice: {e}")))?;
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO outbox (partner, kind, digest, body, objects, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![partner, kind, doc.digest(), body, objects, now()],
        )?;
        Ok(n == 1)
    }

    /// The notices queued for `partner` after `after`, oldest first.
    pub fn notices_for(&self, partner: &str, after: i64, limit: usize) -> Result<Vec<Notice>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT seq, kind, body, objects FROM outbox WHERE partner = ?1 AND seq > ?2
             ORDER BY seq LIMIT ?3",
        )?;
        let rows = st.query_map(params![partner, after, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, body, objects) = row?;
            let bad = |e: &dyn std::fmt::Display| {
                FederationError::Protocol(format!("stored notice {seq}: {e}"))
            };
            let document = Signed::from_json(&body).map_err(|e| bad(&e))?;
            let objects = match objects {
                Some(o) => serde_json::from_str(&o).map_err(|e| bad(&e))?,
                None => Vec::new(),
            };
            out.push(Notice {
                seq,
                kind,
                document,
                objects,
            });
        }
        Ok(out)
    }

    /// Remove the notices `partner` has applied (those up to `through`,
    /// the `after` it asked for: it asks for later ones only once it has
    /// applied and recorded these) that were queued before `before`.
    /// Returns how many went. Kept for a while rather than at once, so a
    /// partner whose federation database was restored from a backup
    /// within that time fetches them again (applying a notice twice
    /// changes nothing).
    pub fn prune_delivered(&self, partner: &str, through: i64, before: Timestamp) -> Result<usize> {
        // `created` is RFC 3339 text, which orders as time to within a
        // second (the number of fractional digits varies): close enough
        // for a retention counted in days.
        let n = self.conn().execute(
            "DELETE FROM outbox WHERE partner = ?1 AND seq <= ?2 AND created < ?3",
            params![partner, through, anyam_trust::format_time(before)],
        )?;
        Ok(n)
    }

    /// The last notice of `partner` applied here.
    pub fn notice_cursor(&self, partner: &str) -> Result<i64> {
        Ok(self
            .conn()
            .query_row(
                "SELECT after FROM notice_cursors WHERE partner = ?1",
                params![partner],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    pub fn set_notice_cursor(&self, partner: &str, after: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO notice_cursors (partner, after) VALUES (?1, ?2)
             ON CONFLICT (partner) DO UPDATE SET after = excluded.after",
            params![partner, after],
        )?;
        Ok(())
    }
}

fn row_cursor(r: &rusqlite::Row<'_>) -> rusqlite::Result<Cursor> {
    Ok(Cursor {
        partner: r.get(0)?,
        collection: r.get(1)?,
        api_root: r.get(2)?,
        added_after: r.get(3)?,
        fingerprint: r.get(4)?,
        updated: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyam_trust::provenance::{AgreementRef, Manifest, manifest_head};

    /// A file of version 2 keeps what it released to whom through the
    /// move to pages (version 3), and pages recorded since count with it.
    /// An id is matched whole: not by a prefix, not by a part.
    #[test]
    fn released_objects_are_found_by_id_after_migration() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("federation.db");
        {
            let mut conn = Connection::open(&path).expect("open");
            conn.execute_batch(SCHEMA).expect("first schema");
            for (n, script) in MIGRATIONS[..2].iter().enumerate() {
                conn.execute_batch(script).expect("migration");
                conn.pragma_update(None, "user_version", n as i64 + 1)
                    .expect("version");
            }
            let tx = conn.transaction().expect("tx");
            for (id, partner) in [
                ("indicator--1", "node-b"),
                ("indicator--1", "node-c"),
                ("attack-pattern--2", "node-b"),
            ] {
                tx.execute(
                    "INSERT INTO released_to (object_id, partner) VALUES (?1, ?2)",
                    params![id, partner],
                )
                .expect("released");
            }
            tx.commit().expect("commit");
        }
        let db = FederationDb::open(&path).expect("migrate");
        assert_eq!(
            db.released_to("indicator--1").expect("read"),
            ["node-b", "node-c"]
        );
        assert_eq!(
            db.released_to("attack-pattern--2").expect("read"),
            ["node-b"]
        );
        db.record_released("node-d", &["attack-pattern--2", "indicator--10"])
            .expect("record");
        db.record_released("node-b", &["indicator--10"])
            .expect("record");
        assert_eq!(
            db.released_to("attack-pattern--2").expect("read"),
            ["node-b", "node-d"]
        );
        assert_eq!(
            db.released_to("indicator--10").expect("read"),
            ["node-b", "node-d"]
        );
        assert_eq!(
            db.released_to("indicator--1").expect("read"),
            ["node-b", "node-c"]
        );
        for other in [
            "indicator",
            "indicator--",
            "pattern--2",
            "attack",
            "\"x\" OR y",
        ] {
            assert!(db.released_to(other).expect("read").is_empty(), "{other}");
        }
        let old: i64 = db
            .conn()
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'released_to'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(old, 0);
    }

    const ORIGINATOR: &str = "aa00000000000000000000000000000000000000000000000000000000000000";
    const FROM: &str = "bb00000000000000000000000000000000000000000000000000000000000000";
    const AGREEMENT: &str = "agreement--6b0a3f6e-31a4-4f7e-9a43-0c4f8f1b2a11";

    static PARTIES: Redistribution = Redistribution::Parties;
    const SALT: &str = "0123456789abcdef0123456789abcdef";

    /// A signed manifest of the originator, whole.
    fn manifest() -> Signed {
        manifest_of("shared")
    }

    /// A signed manifest of the originator over `collection`.
    fn manifest_of(collection: &str) -> Signed {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        Manifest::new(
            ORIGINATOR,
            collection,
            AgreementRef {
                id: AGREEMENT.into(),
                version: 1,
            },
            jiff::Timestamp::now(),
        )
        .sign(&key)
        .expect("sign")
    }

    fn digest(n: u8) -> String {
        hex::encode([n; 32])
    }

    #[test]
    fn received_versions_are_kept_by_source() {
        let dir = tempfile::tempdir().expect("dir");
        let db = FederationDb::open(&dir.path().join("federation.db")).expect("open");
        let (_, m) = manifest_head(&manifest()).expect("head");
        let md = m.digest();
        let v = |id: &'static str, version: Option<&'static str>, collection: &'static str| {
            ReceivedVersion {
                collection,
                agreement: AGREEMENT,
                object_id: id,
                version,
                digest: "",
                originator: ORIGINATOR,
                manifest_digest: "",
                terms: &PARTIES,
                position: 0,
                path: None,
                salt: SALT,
            }
        };
        let leaves = [Hash([1; 32]), Hash([2; 32]), Hash([3; 32])];
        let kept = KeptManifest {
            digest: &md,
            head: &m,
            leaves: Some(&leaves),
        };
        let named = Redistribution::Named {
            recipients: vec![FROM.into()],
        };
        let path = [digest(8), digest(9)];
        let (d1, d2, d3) = (digest(1), digest(2), digest(3));
        let versions = [
            ReceivedVersion {
                digest: &d1,
                manifest_digest: &md,
                ..v("indicator--1", Some("2026-01-01T00:00:00.000Z"), "c1")
            },
            ReceivedVersion {
                digest: &d2,
                manifest_digest: &md,
                ..v("indicator--1", Some("2026-02-01T00:00:00.000Z"), "c1")
            },
            ReceivedVersion {
                digest: &d3,
                manifest_digest: &md,
                terms: &named,
                position: 2,
                path: Some(&path),
                ..v("ipv4-addr--2", None, "c2")
            },
        ];
        // First kept without its leaves (as relayed), then with them.
        let relayed = KeptManifest {
            leaves: None,
            ..kept
        };
        let first = db
            .record_received(FROM, &[relayed], &versions)
            .expect("record");
        assert_eq!(first.len(), versions.len());
        assert_eq!(db.manifest_leaves(&md).expect("leaves"), None);
        // Again: the first receipts stay what is read, and the leaves are
        // added.
        let second = db
            .record_received(FROM, &[kept], &versions)
            .expect("record again");
        assert_eq!(
            db.manifest_leaves(&md).expect("leaves"),
            Some(leaves.to_vec())
        );
        // A third receipt of the first version, with other content (a
        // conflict the store refuses), changes nothing of its provenance.
        let (d9, other) = (digest(9), Redistribution::Named { recipients: vec![] });
        let third = db
            .record_received(
                FROM,
                &[relayed],
                &[ReceivedVersion {
                    digest: &d9,
                    terms: &other,
                    ..versions[0]
                }],
            )
            .expect("record again");
        let first_again = db
            .provenance("indicator--1", Some("2026-01-01T00:00:00.000Z"))
            .expect("read")
            .expect("provenance");
        assert_eq!(first_again.digest, d1);
        assert_eq!(
            first_again.place.map(|p| p.terms),
            Some(Redistribution::Parties)
        );
        // The receiver drops the repeats once the store held the versions.
        let count = |db: &FederationDb| -> i64 {
            db.conn()
                .query_row("SELECT count(*) FROM receipts", [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(count(&db), 7);
        db.drop_repeated(&[second.as_slice(), &third].concat())
            .expect("drop");
        assert_eq!(count(&db), 3);
        // Dropping what is the chosen receipt, or a gone one, keeps it.
        db.drop_repeated(&[first.as_slice(), &third].concat())
            .expect("drop");
        assert_eq!(count(&db), 3);
        assert_eq!(
            db.manifest_leaves(&md).expect("leaves"),
            Some(leaves.to_vec()),
            "leaves once kept stay"
        );
        let p = db
            .provenance("indicator--1", Some("2026-02-01T00:00:00.000Z"))
            .expect("read")
            .expect("provenance");
        assert_eq!(
            (
                p.originator.as_str(),
                p.from_node.as_str(),
                p.digest.as_str()
            ),
            (ORIGINATOR, FROM, d2.as_str())
        );
        assert_eq!((p.manifest_digest.as_str(), &p.manifest), (md.as_str(), &m));
        assert_eq!(
            p.place,
            Some(Place {
                terms: Redistribution::Parties,
                position: 0,
                salt: SALT.into(),
                path: None
            })
        );
        let unversioned = db
            .provenance("ipv4-addr--2", None)
            .expect("read")
            .expect("kept");
        assert_eq!(unversioned.digest, d3);
        assert_eq!(
            unversioned.place,
            Some(Place {
                terms: named.clone(),
                position: 2,
                salt: SALT.into(),
                path: Some(path.to_vec())
            })
        );
        assert!(db.provenance("indicator--9", None).expect("read").is_none());
        // An id is matched whole.
        for part in [
            "indicator",
            "indicator--",
            "indicator--1 OR x",
            "ipv4-addr--2 NOT",
        ] {
            assert!(db.held(part).expect("held").is_empty(), "{part}");
        }
        // A receipt left behind (a crash before the repeats were dropped),
        // under another agreement and into another collection, is not what
        // is held: retention under that agreement leaves the version alone.
        db.record_received(
            FROM,
            &[kept],
            &[ReceivedVersion {
                agreement: "agreement--0b2f7a4c-8d1e-4f6a-9c3b-5e7d2a1f0c99",
                collection: "c9",
                ..versions[0]
            }],
        )
        .expect("record a leftover");
        assert!(
            db.received_under("agreement--0b2f7a4c-8d1e-4f6a-9c3b-5e7d2a1f0c99")
                .expect("under")
                .is_empty()
        );
        let held = db.held("indicator--1").expect("held");
        assert_eq!(held.len(), 2);
        assert!(held.iter().all(|h| h.collection == "c1"
            && h.from_node == FROM
            && h.agreement == AGREEMENT
            && h.originator == ORIGINATOR));
        assert_eq!(
            db.received_under(AGREEMENT).expect("under"),
            vec![
                (
                    "c1".into(),
                    "indicator--1".into(),
                    "2026-01-01T00:00:00.000Z".into()
                ),
                (
                    "c1".into(),
                    "indicator--1".into(),
                    "2026-02-01T00:00:00.000Z".into()
                ),
                ("c2".into(), "ipv4-addr--2".into(), String::new()),
            ]
        );
        db.forget("indicator--1", Some(&["2026-01-01T00:00:00.000Z".into()]))
            .expect("forget one");
        assert_eq!(db.held("indicator--1").expect("held").len(), 1);
        db.forget("indicator--1", None).expect("forget all");
        assert!(db.held("indicator--1").expect("held").is_empty());
        // A digest that is not hex is refused, and nothing of the call is kept.
        let bad = [ReceivedVersion {
            digest: "not hex",
            manifest_digest: &md,
            ..v("indicator--3", None, "c1")
        }];
        assert!(db.record_received(FROM, &[], &bad).is_err());
        assert!(db.held("indicator--3").expect("held").is_empty());
    }

    #[test]
    fn a_file_of_the_first_schema_is_migrated_with_its_provenance() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("federation.db");
        let m = manifest();
        let md = m.digest();
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(SCHEMA).expect("first schema");
            conn.execute(
                "INSERT INTO manifests (digest, publisher, body) VALUES (?1, ?2, ?3)",
                params![md, ORIGINATOR, serde_json::to_string(&m).expect("json")],
            )
            .expect("manifest");
            for (id, version, d, collection) in [
                ("indicator--1", "2026-01-01T00:00:00.000Z", digest(1), "c1"),
                ("indicator--2", "", digest(2), "c2"),
            ] {
                conn.execute(
                    "INSERT INTO received (object_id, version, digest, originator, from_node,
                        manifest, collection, agreement, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '2026-03-01T12:00:00.123456Z')",
                    params![id, version, d, ORIGINATOR, FROM, md, collection, AGREEMENT],
                )
                .expect("received");
            }
        }
        let db = FederationDb::open(&path).expect("migrate");
        let p = db
            .provenance("indicator--1", Some("2026-01-01T00:00:00.000Z"))
            .expect("read")
            .expect("kept");
        assert_eq!((&p.digest, &p.manifest), (&digest(1), &m));
        // Recorded before inclusion proofs were kept: not to be relayed.
        assert_eq!(p.place, None);
        assert_eq!(db.manifest_leaves(&md).expect("leaves"), None);
        // Received again, it gets what relaying needs; the other stays.
        let (_, head) = manifest_head(&m).expect("head");
        let hd = head.digest();
        let leaves = [Hash([4; 32])];
        let again = ReceivedVersion {
            collection: "c1",
            agreement: AGREEMENT,
            object_id: "indicator--1",
            version: Some("2026-01-01T00:00:00.000Z"),
            digest: &p.digest,
            originator: ORIGINATOR,
            manifest_digest: &hd,
            terms: &PARTIES,
            position: 0,
            path: None,
            salt: SALT,
        };
        let kept = KeptManifest {
            digest: &hd,
            head: &head,
            leaves: Some(&leaves),
        };
        let again = db.record_received(FROM, &[kept], &[again]).expect("again");
        // A receipt that brings what the first lacked is no repeat.
        db.drop_repeated(&again).expect("drop");
        let p = db
            .provenance("indicator--1", Some("2026-01-01T00:00:00.000Z"))
            .expect("read")
            .expect("kept");
        assert_eq!(
            (p.manifest_digest.as_str(), &p.manifest),
            (hd.as_str(), &head)
        );
        assert_eq!(p.place.map(|p| p.position), Some(0));
        let other = db
            .provenance("indicator--2", Some(""))
            .expect("read")
            .expect("kept");
        assert_eq!(other.place, None);
        assert_eq!(db.held("indicator--2").expect("held")[0].collection, "c2");
        let conn = db.conn();
        let (version, at): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT user_version FROM pragma_user_version), received_at
                 FROM receipts WHERE object_id = 'indicator--1' ORDER BY rid LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("row");
        assert_eq!(version, MIGRATIONS.len() as i64);
        let expected = "2026-03-01T12:00:00.123456Z"
            .parse::<jiff::Timestamp>()
            .expect("time")
            .as_microsecond();
        assert_eq!(at, expected);
        let old: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name IN ('received', 'received_versions')",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(old, 0);
    }

    #[test]
    fn a_file_of_a_newer_program_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("federation.db");
        drop(FederationDb::open(&path).expect("open"));
        Connection::open(&path)
            .expect("open")
            .pragma_update(None, "user_version", 99)
            .expect("bump");
        let e = FederationDb::open(&path).expect_err("newer");
        assert!(e.to_string().contains("schema version 99"), "{e}");
    }

    /// A notice is removed only once its partner applied it (asked for
    /// later ones) and its retention passed; other partners' notices and
    /// later ones stay, and a removed notice queued again is new again.
    #[test]
    fn delivered_notices_go_after_their_retention_only() {
        let dir = tempfile::tempdir().expect("dir");
        let db = FederationDb::open(&dir.path().join("federation.db")).expect("open");
        let doc = manifest_of;
        let first = doc("a");
        db.queue(FROM, "tombstone", &first).expect("queue");
        db.queue(FROM, "tombstone", &doc("b")).expect("queue");
        db.queue(FROM, "tombstone", &doc("c")).expect("queue");
        db.queue(ORIGINATOR, "tombstone", &first).expect("queue");
        let seqs = |p: &str| -> Vec<i64> {
            db.notices_for(p, 0, 10)
                .expect("notices")
                .iter()
                .map(|n| n.seq)
                .collect()
        };
        let queued = seqs(FROM);
        assert_eq!(queued.len(), 3);
        let day = jiff::SignedDuration::from_hours(24);
        // Applied up to the second, but queued after the cutoff: kept.
        assert_eq!(
            db.prune_delivered(FROM, queued[1], jiff::Timestamp::now() - day)
                .expect("prune"),
            0
        );
        assert_eq!(seqs(FROM), queued);
        // Past the retention: the applied ones go, the third stays, and
        // the other partner's copy is untouched.
        assert_eq!(
            db.prune_delivered(FROM, queued[1], jiff::Timestamp::now() + day)
                .expect("prune"),
            2
        );
        assert_eq!(seqs(FROM), [queued[2]]);
        assert_eq!(seqs(ORIGINATOR).len(), 1);
        assert!(db.queue(FROM, "tombstone", &first).expect("queue again"));
        assert_eq!(seqs(FROM).len(), 2);
    }
}
