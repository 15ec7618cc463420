//! The schema as an ordered list of migrations, applied by `PRAGMA user_version`.
//!
//! Migration `n` (1-based) moves a database from `user_version = n - 1` to
//! `n`. Scripts are append-only: once a script has shipped it is never
//! edited, because databases in the field already ran it; a change is a new
//! script at the end. Each script runs in its own transaction together with
//! the `user_version` bump, so a crash leaves the file at a whole version.

use rusqlite::Connection;

use crate::{Ctx, Result, StoreError};

/// Every migration, oldest first. `MIGRATIONS.len()` is the schema version
/// this program writes.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9];

/// The schema version this program understands.
pub(crate) fn supported() -> i64 {
    MIGRATIONS.len() as i64
}

/// Version 1: the node's records and the object table.
///
/// The object table's page indexes lead with `(cid, release_class)` and end
/// with `date_added`: every TAXII page is one range scan of one of them
/// (see the crate documentation). `is_first` and `is_last` are maintained
/// by the writer so that the default `match[version]=last` reads a partial
/// index holding exactly one entry per object.
const V1: &str = r#"
CREATE TABLE api_roots (
    seq                INTEGER PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    title              TEXT NOT NULL,
    description        TEXT,
    max_content_length INTEGER NOT NULL
);

CREATE TABLE collections (
    cid         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    api_root    TEXT NOT NULL REFERENCES api_roots(name),
    title       TEXT NOT NULL,
    description TEXT,
    alias       TEXT,
    -- The largest date_added ever assigned in this collection, kept even
    -- when that object is deleted, so date_added never goes backwards.
    last_added  INTEGER NOT NULL DEFAULT 0,
    -- Number of object versions, so counting is O(1).
    n_objects   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX collections_by_root ON collections(api_root, cid);

CREATE TABLE objects (
    rid            INTEGER PRIMARY KEY,
    cid            INTEGER NOT NULL REFERENCES collections(cid),
    -- Visibility class: which set of readers may see this version. Every
    -- object is class 0 until markings and agreements are enforced here.
    release_class  INTEGER NOT NULL DEFAULT 0,
    date_added     INTEGER NOT NULL,
    id             TEXT NOT NULL,
    type           TEXT NOT NULL,
    spec_version   TEXT NOT NULL,
    -- The version served to clients: modified, else created, else the
    -- date_added rendered as RFC 3339.
    version        TEXT NOT NULL,
    -- 1 when the object had neither modified nor created.
    versionless    INTEGER NOT NULL,
    -- The version as microseconds (date_added when versionless); versions
    -- of one object are ordered by (version_micros, date_added).
    version_micros INTEGER NOT NULL,
    is_first       INTEGER NOT NULL,
    is_last        INTEGER NOT NULL,
    digest         BLOB NOT NULL,
    raw            TEXT NOT NULL
);
CREATE UNIQUE INDEX objects_all ON objects(cid, release_class, date_added);
CREATE INDEX objects_last  ON objects(cid, release_class, date_added) WHERE is_last = 1;
CREATE INDEX objects_first ON objects(cid, release_class, date_added) WHERE is_first = 1;
CREATE INDEX objects_by_id ON objects(cid, id, version_micros);

CREATE TABLE statuses (
    api_root TEXT NOT NULL,
    id       TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (api_root, id)
) WITHOUT ROWID;

CREATE TABLE orgs (
    seq   INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL
);

CREATE TABLE users (
    seq          INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    org          TEXT NOT NULL REFERENCES orgs(name),
    password_phc TEXT,
    is_admin     INTEGER NOT NULL,
    generation   INTEGER NOT NULL,
    disabled     INTEGER NOT NULL
);

CREATE TABLE tokens (
    seq     INTEGER PRIMARY KEY,
    id      TEXT NOT NULL UNIQUE,
    user    TEXT NOT NULL REFERENCES users(name),
    sha256  BLOB NOT NULL UNIQUE,
    label   TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER,
    scope   TEXT NOT NULL,
    revoked INTEGER NOT NULL
);
CREATE INDEX tokens_by_user ON tokens(user, seq);

CREATE TABLE grants (
    org        TEXT NOT NULL REFERENCES orgs(name),
    collection TEXT NOT NULL REFERENCES collections(id),
    can_read   INTEGER NOT NULL,
    can_write  INTEGER NOT NULL,
    PRIMARY KEY (org, collection)
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Version 2: a change sequence of indicators, for detection engines that
/// follow the store (in the server's process or another one).
///
/// Triggers write it in the same transaction as the object change, so no
/// code path can change an indicator without a sequence entry, and a reader
/// sees entries exactly for the changes it can see. `AUTOINCREMENT` keeps
/// sequence numbers from ever being reused, even after the newest row is
/// deleted. An entry names only the id: a follower reads the id's newest
/// version again, which covers new versions, revocations and deletions
/// alike.
const V2: &str = r#"
CREATE TABLE indicator_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id  TEXT NOT NULL
);
CREATE TRIGGER indicator_added AFTER INSERT ON objects
    WHEN NEW.type = 'indicator'
    BEGIN INSERT INTO indicator_changes (id) VALUES (NEW.id); END;
CREATE TRIGGER indicator_deleted AFTER DELETE ON objects
    WHEN OLD.type = 'indicator'
    BEGIN INSERT INTO indicator_changes (id) VALUES (OLD.id); END;
CREATE INDEX objects_by_type ON objects(type, id) WHERE type = 'indicator';
"#;

/// Version 3: release classes.
///
/// A release class is one distinct release label (markings, named
/// recipients, source; the label's text is produced and read by the
/// policy layer, the store only interns it). `objects.release_class`
/// names the class of each version. `collection_classes` lists which
/// classes occur in which collection, so a reader's visible classes are
/// found without reading objects. Versions written before this migration
/// keep class 0, whose label is empty: the policy releases them to no one
/// until `Store::relabel_unlabelled` gave them their real class.
const V3: &str = r#"
CREATE TABLE release_classes (
    class INTEGER PRIMARY KEY,
    label TEXT NOT NULL UNIQUE
);
INSERT INTO release_classes (class, label) VALUES (0, '');
CREATE TABLE collection_classes (
    cid   INTEGER NOT NULL REFERENCES collections(cid),
    class INTEGER NOT NULL REFERENCES release_classes(class),
    PRIMARY KEY (cid, class)
) WITHOUT ROWID;
INSERT INTO collection_classes (cid, class) SELECT DISTINCT cid, 0 FROM objects;

-- First and last version of an object *within its class*, and whether
-- the object has versions in more than one class. A reader's first and
-- last versions are the first and last of the versions it may see: the
-- class flags find them through the indexes below, and only objects
-- spread over several classes need a look at their other versions.
ALTER TABLE objects ADD COLUMN is_class_first INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN is_class_last INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN in_many_classes INTEGER NOT NULL DEFAULT 0;
UPDATE objects SET is_class_first = is_first, is_class_last = is_last;
DROP INDEX objects_last;
DROP INDEX objects_first;
-- The flag is also a column, so that the bound of a page over several
-- classes is read from the index alone (SQLite checks a partial index's
-- condition on the row unless the index holds the column).
CREATE INDEX objects_class_last ON objects(cid, release_class, date_added, is_class_last) WHERE is_class_last = 1;
CREATE INDEX objects_class_first ON objects(cid, release_class, date_added, is_class_first) WHERE is_class_first = 1;
-- The newest version of every object regardless of class, for the reader
-- who may see every class of a collection (the default `last` is then one
-- range scan, however many classes there are).
CREATE INDEX objects_last_by_date ON objects(cid, date_added, is_last) WHERE is_last = 1;
"#;

/// Version 4: search.
///
/// `objects_text` is a full-text index (FTS5, contentless: the text stays
/// in `objects.raw`) over each version's `name` and `description`. The
/// writer fills it as it adds each row, with the text validation took
/// from the object (an insert trigger would make FTS5 flush its buffer at
/// every row's statement savepoint; a plain one-row insert opens none); a
/// trigger removes deleted rows. `observable_values` maps
/// exact observable values (IP addresses, domains, URLs, hashes…, folded
/// to lower case) to the versions that carry them, in their own
/// properties or in the comparisons of their STIX pattern; the ingest
/// pipeline derives them, the writer stores them, a trigger removes them.
const V4: &str = r#"
CREATE VIRTUAL TABLE objects_text USING fts5(
    name, description,
    content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO objects_text (rowid, name, description)
    SELECT rid, json_extract(raw, '$.name'), json_extract(raw, '$.description') FROM objects
    WHERE CASE WHEN json_valid(raw)
               THEN json_type(raw, '$.name') = 'text' OR json_type(raw, '$.description') = 'text'
               ELSE 0 END;
CREATE TRIGGER objects_text_deleted AFTER DELETE ON objects
    BEGIN DELETE FROM objects_text WHERE rowid = OLD.rid; END;

CREATE TABLE observable_values (
    value TEXT NOT NULL,
    rid   INTEGER NOT NULL,
    PRIMARY KEY (value, rid)
) WITHOUT ROWID;
CREATE INDEX observable_values_by_rid ON observable_values(rid);
CREATE TRIGGER observable_values_deleted AFTER DELETE ON objects
    BEGIN DELETE FROM observable_values WHERE rid = OLD.rid; END;
"#;

/// Version 5: the writer records added indicators itself.
///
/// An `AFTER INSERT` trigger on `objects` made every object insert a
/// multi-row statement, for which SQLite keeps a statement journal: each
/// page the insert touched was copied once more, about a tenth of the cost
/// of ingest. The writer now inserts the `indicator_changes` row in the
/// same transaction as the indicator (the store is the only writer of
/// `objects`, and a program older than this schema refuses the file). The
/// delete trigger stays: deletes are rare and may remove many rows.
const V5: &str = r#"
DROP TRIGGER indicator_added;
"#;

/// Version 6: indicators are found by row, not by id.
///
/// `objects_by_type` was keyed by id, which is random: every indicator
/// stored touched another page of it, and each commit wrote those pages
/// out again (at 1,000,000 objects, a quarter of the pages a commit wrote
/// for the random-keyed indexes). Reading the newest version of every
/// indicator (`Store::latest_indicators`) needs the indicators, not their
/// order; an index of their row ids grows at its end only.
const V6: &str = r#"
DROP INDEX objects_by_type;
CREATE INDEX objects_indicators ON objects(rid) WHERE type = 'indicator';
"#;

/// Version 7: a generation number of the catalog.
///
/// The catalog is what every request reads before its page: API roots,
/// collections and the release classes they hold, organizations, users,
/// tokens, grants and the `policy.` settings. The store keeps it in memory
/// and reads it again only when `catalog_generation.gen` changed. Triggers
/// bump it in the same transaction as any change to those tables, by this
/// process or another (the command line writes the same file while a node
/// serves), so a revoked token or a withdrawn grant counts from the next
/// request on. Counters a collection keeps (`last_added`, `n_objects`)
/// change with every write and are not part of the catalog.
const V7: &str = r#"
CREATE TABLE catalog_generation (gen INTEGER NOT NULL);
INSERT INTO catalog_generation (gen) VALUES (1);

CREATE TRIGGER api_roots_catalog_i AFTER INSERT ON api_roots
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER api_roots_catalog_u AFTER UPDATE ON api_roots
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER api_roots_catalog_d AFTER DELETE ON api_roots
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;

CREATE TRIGGER collections_catalog_i AFTER INSERT ON collections
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER collections_catalog_u AFTER UPDATE OF id, api_root, title, description, alias ON collections
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER collections_catalog_d AFTER DELETE ON collections
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;

CREATE TRIGGER collection_classes_catalog_i AFTER INSERT ON collection_classes
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER collection_classes_catalog_u AFTER UPDATE ON collection_classes
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER collection_classes_catalog_d AFTER DELETE ON collection_classes
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;

CREATE TRIGGER release_classes_catalog_i AFTER INSERT ON release_classes
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER release_classes_catalog_u AFTER UPDATE ON release_classes
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER release_classes_catalog_d AFTER DELETE ON release_classes
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;

CREATE TRIGGER orgs_catalog_i AFTER INSERT ON orgs
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER orgs_catalog_u AFTER UPDATE ON orgs
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER orgs_catalog_d AFTER DELETE ON orgs
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;

CREATE TRIGGER users_catalog_i AFTER INSERT ON users
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER users_catalog_u AFTER UPDATE ON users
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER users_catalog_d AFTER DELETE ON users
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;

CREATE TRIGGER tokens_catalog_i AFTER INSERT ON tokens
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER tokens_catalog_u AFTER UPDATE ON tokens
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER tokens_catalog_d AFTER DELETE ON tokens
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;

CREATE TRIGGER grants_catalog_i AFTER INSERT ON grants
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER grants_catalog_u AFTER UPDATE ON grants
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER grants_catalog_d AFTER DELETE ON grants
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;

CREATE TRIGGER meta_catalog_i AFTER INSERT ON meta WHEN NEW.key LIKE 'policy.%'
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER meta_catalog_u AFTER UPDATE ON meta
    WHEN NEW.key LIKE 'policy.%' OR OLD.key LIKE 'policy.%'
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
CREATE TRIGGER meta_catalog_d AFTER DELETE ON meta WHEN OLD.key LIKE 'policy.%'
    BEGIN UPDATE catalog_generation SET gen = gen + 1; END;
"#;

/// Version 8: observable values in a full-text index of their own.
///
/// `observable_values` was a B-tree keyed by value: values are random, so
/// each one stored dirtied another leaf page, and every commit wrote each
/// such page whole to the WAL and again to the file at the checkpoint. At
/// 1,000,000 objects that was most of what ingest wrote (about 50 KB per
/// object) and half of its time. `objects_observables` is an FTS5 index
/// (contentless, rowids only): a commit writes its values as one new
/// sorted segment, and FTS5 merges segments in the background of later
/// writes, so a value costs a few bytes written a few times instead of a
/// page. Each value is one token, the hexadecimal of its UTF-8 bytes (the
/// tokenizer splits on anything but letters and digits, and a value may
/// hold any character); values are at most 2,048 bytes, well inside the
/// tokenizer's limit, so a match is exact. The writer fills it once per
/// write transaction, like `objects_text`; a trigger removes deleted rows.
const V8: &str = r#"
CREATE VIRTUAL TABLE objects_observables USING fts5(
    value_tokens,
    content = '', contentless_delete = 1, detail = none,
    tokenize = 'unicode61'
);
INSERT INTO objects_observables (rowid, value_tokens)
    SELECT rid, group_concat(hex(value), ' ') FROM observable_values GROUP BY rid;
DROP TRIGGER observable_values_deleted;
DROP TABLE observable_values;
CREATE TRIGGER objects_observables_deleted AFTER DELETE ON objects
    BEGIN DELETE FROM objects_observables WHERE rowid = OLD.rid; END;
"#;

/// Version 9: the full-text indexes merge their segments sixteen at a time.
///
/// FTS5 writes the tokens of each commit (and of each megabyte pending
/// within one) as a new segment. Once a level holds `automerge` segments
/// (4 by default), later writes merge them into one segment of the next
/// level, a bounded amount of work per write; a level that still reaches
/// `crisismerge` segments (16 by default) is merged whole at once by the
/// write that completes it. A merge writes its segments' content again,
/// so a token is rewritten once for each level it climbs: at 16 there are
/// half as many levels as at 4. `crisismerge` goes to 64 with it, so that
/// merging stays gradual: at 16 both, every merge would be a whole level
/// merged inside the commit that completed it, and the largest such
/// commits would grow with the index. A lookup reads more segments: at
/// 1,000,000 objects one observable value took about 23 microseconds
/// instead of 12. The settings are kept in each index's `_config` table.
const V9: &str = r#"
INSERT INTO objects_text (objects_text, rank) VALUES ('automerge', 16);
INSERT INTO objects_text (objects_text, rank) VALUES ('crisismerge', 64);
INSERT INTO objects_observables (objects_observables, rank) VALUES ('automerge', 16);
INSERT INTO objects_observables (objects_observables, rank) VALUES ('crisismerge', 64);
"#;

/// Bring `conn` up to the newest schema, or refuse a file written by a newer
/// program (opening it could corrupt what that program relies on).
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .ctx("reading schema version")?;
    if found > supported() {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: supported(),
        });
    }
    if found < 0 {
        return Err(StoreError::Backend(format!(
            "schema version {found} is invalid"
        )));
    }
    for (i, script) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = i as i64 + 1;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .ctx("starting a migration")?;
        // Re-check inside the exclusive transaction: another process may have
        // migrated the file between our read and our lock.
        let now: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx("reading schema version")?;
        if now >= to {
            continue;
        }
        tx.execute_batch(script)
            .ctx(&format!("applying schema migration {to}"))?;
        tx.pragma_update(None, "user_version", to)
            .ctx("recording schema version")?;
        tx.commit()
            .ctx(&format!("committing schema migration {to}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OptionalExtension;

    /// A file as a program of schema `version` left it, holding API root
    /// `r` and collection 1 (`c`).
    fn file_at(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for (i, script) in MIGRATIONS[..version].iter().enumerate() {
            conn.execute_batch(script).unwrap();
            conn.pragma_update(None, "user_version", i as i64 + 1)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO api_roots (name, title, max_content_length) VALUES ('r', 'R', 1000);
             INSERT INTO collections (cid, id, api_root, title) VALUES (1, 'c', 'r', 'C');",
        )
        .unwrap();
        conn
    }

    /// A file of schema version 5, with an
    /// indicator stored, moves to version 6: the id-keyed index of
    /// indicators is gone, and the row index that replaces it lists the
    /// indicators already stored and only them.
    #[test]
    fn version_5_files_get_the_row_index_of_their_indicators() {
        let mut conn = file_at(5);
        conn.execute_batch(
            "INSERT INTO objects (cid, date_added, id, type, spec_version, version, versionless,
                                  version_micros, is_first, is_last, digest, raw)
             VALUES (1, 1, 'indicator--a', 'indicator', '2.1', 'v', 0, 1, 1, 1, x'00', '{}'),
                    (1, 2, 'malware--m', 'malware', '2.1', 'v', 0, 1, 1, 1, x'00', '{}');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, supported());
        let index = |name: &str| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(index("objects_by_type"), 0);
        assert_eq!(index("objects_indicators"), 1);
        let ids: Vec<String> = conn
            .prepare(
                "SELECT id FROM objects INDEXED BY objects_indicators
                 WHERE type = 'indicator' ORDER BY rid",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids, ["indicator--a"]);
    }

    /// A version 7 file's observable values move into the full-text index
    /// of version 8, under the very tokens the writer gives new values,
    /// and the old table is gone.
    #[test]
    fn version_7_observable_values_are_found_after_migration() {
        let mut conn = file_at(7);
        conn.execute_batch(
            "INSERT INTO objects (rid, cid, date_added, id, type, spec_version, version, versionless,
                                  version_micros, is_first, is_last, digest, raw)
             VALUES (7, 1, 1, 'indicator--a', 'indicator', '2.1', 'v', 0, 1, 1, 1, x'00', '{}'),
                    (9, 1, 2, 'url--u', 'url', '2.1', 'v', 1, 2, 1, 1, x'00', '{}');
             INSERT INTO observable_values (value, rid) VALUES
                 ('10.0.0.1', 7), ('évil.example', 7), ('http://x.example/a b', 9);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows = |value: &str| -> Vec<i64> {
            conn.prepare(
                "SELECT rowid FROM objects_observables WHERE objects_observables MATCH ?1
                 ORDER BY rowid",
            )
            .unwrap()
            .query_map(
                [format!("\"{}\"", crate::objects::value_token(value))],
                |r| r.get(0),
            )
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
        };
        assert_eq!(rows("10.0.0.1"), [7]);
        assert_eq!(rows("évil.example"), [7]);
        assert_eq!(rows("http://x.example/a b"), [9]);
        assert!(rows("http://x.example/a").is_empty());
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'observable_values'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        // Deleting the object removes its values.
        conn.execute("DELETE FROM objects WHERE rid = 9", [])
            .unwrap();
        assert!(rows("http://x.example/a b").is_empty());
    }

    /// A version 8 file's full-text indexes merge sixteen segments at a
    /// time after migration (sixty-four only when merging falls behind),
    /// and what they held is still found.
    #[test]
    fn version_8_full_text_indexes_merge_sixteen_at_a_time() {
        let mut conn = file_at(8);
        conn.execute_batch(
            "INSERT INTO objects_text (rowid, name, description) VALUES (3, 'Sandworm loader', NULL);
             INSERT INTO objects_observables (rowid, value_tokens) VALUES (3, '3130');",
        )
        .unwrap();
        let setting = |conn: &Connection, table: &str, key: &str| -> Option<i64> {
            conn.query_row(
                &format!("SELECT v FROM {table}_config WHERE k = ?1"),
                [key],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
        };
        assert_eq!(setting(&conn, "objects_text", "automerge"), None);
        migrate(&mut conn).unwrap();
        for table in ["objects_text", "objects_observables"] {
            assert_eq!(setting(&conn, table, "automerge"), Some(16), "{table}");
            assert_eq!(setting(&conn, table, "crisismerge"), Some(64), "{table}");
        }
        let found = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            found("SELECT rowid FROM objects_text WHERE objects_text MATCH 'sandworm'"),
            3
        );
        assert_eq!(
            found(
                "SELECT rowid FROM objects_observables WHERE objects_observables MATCH '\"3130\"'"
            ),
            3
        );
    }
}
