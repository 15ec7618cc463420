//! Integration tests of the audit log through its public API, on real
//! SQLite files: tampering of every kind, partner exports, consistency,
//! the group-commit appender.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyam_audit::merkle::{leaf_hash, node_hash};
use anyam_audit::{
    AppenderOptions, AuditError, AuditLog, AuditOptions, COMPRESS_FROM, Event, ExportRequest, Hash,
    HeadRef, Kind, ObjectRef, PartnerExport, Synchronous, Tampered, TreeHead, TrustedKeys, key_id,
    verify, verify_export, verify_heads_consistent, verify_with,
};
use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use rusqlite::{Connection, params};
use tempfile::TempDir;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn trusted(keys: &[&SigningKey]) -> TrustedKeys {
    TrustedKeys::new(keys.iter().map(|k| k.verifying_key()))
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

/// Entry `i`: a release concerning node-a (even i), node-b (multiples of
/// 3), both, or nobody; a batch of object versions in each.
fn event(i: u64) -> Event {
    let mut e = Event::new(Kind::Release, format!("user-{}", i % 4));
    e.time = at(i as i64);
    if i.is_multiple_of(2) {
        e.parties.push("node-a".into());
    }
    if i.is_multiple_of(3) {
        e.parties.push("node-b".into());
    }
    e.what.collection = Some("c1".into());
    e.what.objects = (0..3)
        .map(|j| ObjectRef {
            id: format!("indicator--{i}-{j}"),
            version: "2026-01-01T00:00:00.000Z".into(),
        })
        .collect();
    e.why = format!("secret reason {i}");
    e.details = serde_json::json!({ "request": i });
    e
}

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    key: SigningKey,
}

/// A log of `n` entries with heads signed when the log reached each of
/// `heads`.
fn fixture(n: u64, heads: &[u64]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let key = key(1);
    let log = AuditLog::open(&path, AuditOptions::default()).unwrap();
    for i in 0..n {
        assert_eq!(log.append(&event(i)).unwrap(), i);
        if heads.contains(&(i + 1)) {
            log.sign_head(&key, at(1000 + i as i64)).unwrap();
        }
    }
    Fixture {
        _dir: dir,
        path,
        key,
    }
}

fn read_only(path: &Path) -> AuditLog {
    AuditLog::open(
        path,
        AuditOptions {
            read_only: true,
            ..AuditOptions::default()
        },
    )
    .unwrap()
}

/// A connection that can do what the API never does: the triggers that
/// refuse updates and deletes go first, as an attacker's would.
fn raw(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    let triggers: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!triggers.is_empty());
    for t in triggers {
        c.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
    }
    c
}

fn leaf(c: &Connection, seq: u64) -> Vec<u8> {
    c.query_row(
        "SELECT leaf FROM entries WHERE seq = ?1",
        [seq as i64],
        |r| r.get(0),
    )
    .unwrap()
}

/// Rewrite entry `seq`'s reason, keeping it canonical JSON.
fn edited(c: &Connection, seq: u64) -> Vec<u8> {
    let text = String::from_utf8(leaf(c, seq)).unwrap();
    let out = text.replace("secret reason", "harmless reason");
    assert_ne!(out, text);
    out.into_bytes()
}

fn set_leaf(c: &Connection, seq: u64, bytes: &[u8]) {
    c.execute(
        "UPDATE entries SET leaf = ?2 WHERE seq = ?1",
        params![seq as i64, bytes],
    )
    .unwrap();
}

fn set_leaf_hash(c: &Connection, seq: u64, bytes: &[u8]) {
    c.execute(
        "UPDATE entries SET leaf_hash = ?2 WHERE seq = ?1",
        params![seq as i64, &leaf_hash(bytes).0[..]],
    )
    .unwrap();
}

/// Recompute the whole tree cache from the entries' leaf hashes, as an
/// attacker covering their tracks would.
fn rebuild_cache(c: &Connection) {
    c.execute("DELETE FROM nodes", []).unwrap();
    let hashes: Vec<Vec<u8>> = c
        .prepare("SELECT leaf_hash FROM entries ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut frontier: Vec<(u32, Hash)> = Vec::new();
    for (seq, h) in hashes.iter().enumerate() {
        let h = Hash::from_slice(h).unwrap();
        let put = |level: u32, h: &Hash| {
            c.execute(
                "INSERT INTO nodes (last, level, hash) VALUES (?1, ?2, ?3)",
                params![seq as i64, level, &h.0[..]],
            )
            .unwrap();
        };
        put(0, &h);
        frontier.push((0, h));
        while let [.., (a, l), (b, r)] = frontier[..] {
            if a != b {
                break;
            }
            frontier.truncate(frontier.len() - 2);
            let p = node_hash(&l, &r);
            put(a + 1, &p);
            frontier.push((a + 1, p));
        }
    }
}

fn delete_from(c: &Connection, seq: u64) {
    c.execute("DELETE FROM entries WHERE seq >= ?1", [seq as i64])
        .unwrap();
}

fn delete_cache_from(c: &Connection, seq: u64) {
    c.execute("DELETE FROM nodes WHERE last >= ?1", [seq as i64])
        .unwrap();
    c.execute("DELETE FROM entry_parties WHERE seq >= ?1", [seq as i64])
        .unwrap();
}

fn delete_head_of_size(c: &Connection, size: u64) {
    c.execute("DELETE FROM heads WHERE tree_size = ?1", [size as i64])
        .unwrap();
}

fn problem_name(t: &Tampered) -> String {
    let s = format!("{:?}", t.problem);
    s.split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

fn head_size(h: &HeadRef) -> u64 {
    match h {
        HeadRef::Stored { tree_size, .. } | HeadRef::Given { tree_size, .. } => *tree_size,
    }
}

/// A head for the log's current content at `size`, with any root, signed
/// by `key`, stored as the node would.
fn insert_head(c: &Connection, size: u64, root: Hash, key: &SigningKey, secs: i64) {
    let h = TreeHead {
        tree_size: size,
        timestamp: at(secs),
        root_hash: root,
        key_id: key_id(&key.verifying_key()),
    }
    .sign(key)
    .unwrap();
    c.execute(
        "INSERT INTO heads (tree_size, timestamp_us, root_hash, key_id, signature)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            size as i64,
            h.head.timestamp.as_microsecond(),
            &h.head.root_hash.0[..],
            h.head.key_id,
            h.signature
        ],
    )
    .unwrap();
}

struct Case {
    name: &'static str,
    tamper: fn(&Connection, &SigningKey),
    /// Also check against the latest head as published before tampering.
    with_published_head: bool,
    /// Expected first bad entry, head tree size and problem.
    entry: Option<u64>,
    head: Option<u64>,
    problem: &'static str,
}

const N: u64 = 24;
const HEADS: &[u64] = &[5, 12, 20];

#[test]
fn every_kind_of_tampering_is_found_and_named() {
    let cases = [
        Case {
            name: "edit an entry",
            tamper: |c, _| set_leaf(c, 7, &edited(c, 7)),
            with_published_head: false,
            entry: Some(7),
            head: None,
            problem: "LeafHashMismatch",
        },
        Case {
            name: "edit an entry after the latest head",
            tamper: |c, _| set_leaf(c, 22, &edited(c, 22)),
            with_published_head: false,
            entry: Some(22),
            head: None,
            problem: "LeafHashMismatch",
        },
        Case {
            name: "edit an entry and its leaf hash",
            tamper: |c, _| {
                let e = edited(c, 7);
                set_leaf(c, 7, &e);
                set_leaf_hash(c, 7, &e);
            },
            with_published_head: false,
            entry: Some(7),
            head: None,
            problem: "CacheLeafMismatch",
        },
        Case {
            name: "edit an entry, its leaf hash and the whole tree cache",
            tamper: |c, _| {
                let e = edited(c, 7);
                set_leaf(c, 7, &e);
                set_leaf_hash(c, 7, &e);
                rebuild_cache(c);
            },
            with_published_head: false,
            // Only the signature pins it: the first head covering entry 7,
            // which narrows it to entries 5..12.
            entry: None,
            head: Some(12),
            problem: "RootMismatch",
        },
        Case {
            name: "delete a middle row",
            tamper: |c, _| {
                c.execute("DELETE FROM entries WHERE seq = 9", []).unwrap();
            },
            with_published_head: false,
            entry: Some(9),
            head: None,
            problem: "Missing",
        },
        Case {
            name: "delete a middle row with its cache and index rows",
            tamper: |c, _| {
                c.execute("DELETE FROM entries WHERE seq = 9", []).unwrap();
                c.execute("DELETE FROM nodes WHERE last = 9", []).unwrap();
                c.execute("DELETE FROM entry_parties WHERE seq = 9", [])
                    .unwrap();
            },
            with_published_head: false,
            entry: Some(9),
            head: None,
            problem: "Missing",
        },
        Case {
            name: "swap two rows",
            tamper: |c, _| {
                let (a, b) = (leaf(c, 3), leaf(c, 4));
                set_leaf(c, 3, &b);
                set_leaf_hash(c, 3, &b);
                set_leaf(c, 4, &a);
                set_leaf_hash(c, 4, &a);
            },
            with_published_head: false,
            entry: Some(3),
            head: None,
            problem: "WrongSeq",
        },
        Case {
            name: "swap two rows and renumber them",
            tamper: |c, _| {
                let renumber = |bytes: Vec<u8>, from: u64, to: u64| {
                    String::from_utf8(bytes)
                        .unwrap()
                        .replace(&format!("\"seq\":{from},"), &format!("\"seq\":{to},"))
                        .into_bytes()
                };
                let a = renumber(leaf(c, 3), 3, 4);
                let b = renumber(leaf(c, 4), 4, 3);
                set_leaf(c, 3, &b);
                set_leaf_hash(c, 3, &b);
                set_leaf(c, 4, &a);
                set_leaf_hash(c, 4, &a);
            },
            with_published_head: false,
            entry: Some(3),
            head: None,
            problem: "CacheLeafMismatch",
        },
        Case {
            name: "truncate the tail, keeping the heads",
            tamper: |c, _| delete_from(c, 15),
            with_published_head: false,
            entry: Some(15),
            head: Some(20),
            problem: "Truncated",
        },
        Case {
            name: "truncate the tail and the latest head",
            tamper: |c, _| {
                delete_from(c, 15);
                delete_head_of_size(c, 20);
            },
            with_published_head: false,
            // The tree cache still holds the cut entries' hashes.
            entry: Some(15),
            head: None,
            problem: "Missing",
        },
        Case {
            name: "truncate the tail, its cache and the heads past an older head",
            tamper: |c, _| {
                delete_from(c, 10);
                delete_cache_from(c, 10);
                delete_head_of_size(c, 20);
            },
            with_published_head: false,
            entry: Some(10),
            head: Some(12),
            problem: "Truncated",
        },
        Case {
            name: "truncate the tail, its cache and the latest head, with the published head",
            tamper: |c, _| {
                delete_from(c, 15);
                delete_cache_from(c, 15);
                delete_head_of_size(c, 20);
            },
            with_published_head: true,
            entry: Some(15),
            head: Some(20),
            problem: "Truncated",
        },
        Case {
            name: "forge a head's signature",
            tamper: |c, _| {
                let sig: String = c
                    .query_row("SELECT signature FROM heads WHERE id = 2", [], |r| r.get(0))
                    .unwrap();
                let forged = format!(
                    "{}{}",
                    if sig.starts_with('0') { "1" } else { "0" },
                    &sig[1..]
                );
                c.execute("UPDATE heads SET signature = ?1 WHERE id = 2", [forged])
                    .unwrap();
            },
            with_published_head: false,
            entry: None,
            head: Some(12),
            problem: "BadSignature",
        },
        Case {
            name: "edit a head's root",
            tamper: |c, _| {
                c.execute("UPDATE heads SET root_hash = zeroblob(32) WHERE id = 2", [])
                    .unwrap();
            },
            with_published_head: false,
            entry: None,
            head: Some(12),
            problem: "BadSignature",
        },
        Case {
            name: "edit a head's size",
            tamper: |c, _| {
                c.execute("UPDATE heads SET tree_size = 11 WHERE id = 2", [])
                    .unwrap();
            },
            with_published_head: false,
            entry: None,
            head: Some(11),
            problem: "BadSignature",
        },
        Case {
            name: "a head signed by an unknown key",
            tamper: |c, _| {
                let root = root_of(c, 24);
                insert_head(c, 24, root, &key(9), 5000);
            },
            with_published_head: false,
            entry: None,
            head: Some(24),
            problem: "UntrustedKey",
        },
        Case {
            name: "a validly signed head with a wrong root",
            tamper: |c, k| insert_head(c, 22, leaf_hash(b"wrong"), k, 5000),
            with_published_head: false,
            entry: None,
            head: Some(22),
            problem: "RootMismatch",
        },
        Case {
            name: "reorder the heads",
            tamper: |c, _| {
                c.execute_batch(
                    "UPDATE heads SET id = 100 WHERE id = 1;
                     UPDATE heads SET id = 1 WHERE id = 2;
                     UPDATE heads SET id = 2 WHERE id = 100;",
                )
                .unwrap();
            },
            with_published_head: false,
            entry: None,
            head: Some(5),
            problem: "OutOfOrder",
        },
        Case {
            name: "hide an entry from a partner's export",
            tamper: |c, _| {
                c.execute(
                    "DELETE FROM entry_parties WHERE seq = 6 AND party = 'node-a'",
                    [],
                )
                .unwrap();
            },
            with_published_head: false,
            entry: Some(6),
            head: None,
            problem: "PartiesIndexMismatch",
        },
        Case {
            name: "edit a cached subtree",
            tamper: |c, _| {
                c.execute(
                    "UPDATE nodes SET hash = zeroblob(32) WHERE last = 7 AND level = 2",
                    [],
                )
                .unwrap();
            },
            with_published_head: false,
            entry: None,
            head: None,
            problem: "CacheNodeMismatch",
        },
    ];
    for case in &cases {
        let f = fixture(N, HEADS);
        let published = AuditLog::open(&f.path, AuditOptions::default())
            .unwrap()
            .latest_head()
            .unwrap()
            .unwrap();
        let t = trusted(&[&f.key]);
        assert!(
            verify(&read_only(&f.path), &t).is_ok(),
            "{}: clean log",
            case.name
        );
        (case.tamper)(&raw(&f.path), &f.key);
        let log = read_only(&f.path);
        let known = if case.with_published_head {
            vec![published]
        } else {
            vec![]
        };
        let err = match verify_with(&log, &t, &known) {
            Ok(report) => panic!("{}: not detected ({report:?})", case.name),
            Err(e) => e,
        };
        let Some(found) = err.tampered() else {
            panic!("{}: not a tampering error: {err}", case.name)
        };
        assert_eq!(found.first_bad_entry, case.entry, "{}: {found}", case.name);
        assert_eq!(
            found.head.as_ref().map(head_size),
            case.head,
            "{}: {found}",
            case.name
        );
        assert_eq!(problem_name(found), case.problem, "{}: {found}", case.name);
        // The message names what it found.
        let text = err.to_string();
        if let Some(e) = case.entry {
            assert!(
                text.contains(&format!("entry {e}")),
                "{}: {text}",
                case.name
            );
        }
    }
}

fn root_of(c: &Connection, size: u64) -> Hash {
    let hashes: Vec<Hash> = c
        .prepare("SELECT leaf FROM entries WHERE seq < ?1 ORDER BY seq")
        .unwrap()
        .query_map([size as i64], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|l| leaf_hash(&l.unwrap()))
        .collect();
    anyam_audit::merkle::root(&hashes)
}

#[test]
fn what_the_file_alone_cannot_show_is_documented_and_caught_by_a_kept_head() {
    // Cutting the unsigned tail together with its cache rows leaves a valid
    // shorter log: nothing signed ever covered those entries.
    let f = fixture(N, HEADS);
    let t = trusted(&[&f.key]);
    let c = raw(&f.path);
    delete_from(&c, 21);
    delete_cache_from(&c, 21);
    let report = verify(&read_only(&f.path), &t).unwrap();
    assert_eq!(report.entries, 21);
    assert_eq!(report.unsigned_entries, 1);
    // Cutting back to an older head with every later head gone is the same
    // from inside the file; a head kept elsewhere catches it.
    let published = read_only(&f.path).latest_head().unwrap().unwrap();
    delete_from(&c, 12);
    delete_cache_from(&c, 12);
    delete_head_of_size(&c, 20);
    assert_eq!(verify(&read_only(&f.path), &t).unwrap().entries, 12);
    let err = verify_with(&read_only(&f.path), &t, &[published]).unwrap_err();
    assert_eq!(err.tampered().unwrap().first_bad_entry, Some(12));
}

#[test]
fn a_clean_log_verifies_and_reports() {
    let f = fixture(N, HEADS);
    let log = AuditLog::open(&f.path, AuditOptions::default()).unwrap();
    let report = verify(&log, &trusted(&[&f.key])).unwrap();
    assert_eq!(report.entries, N);
    assert_eq!(report.heads, 3);
    assert_eq!(report.unsigned_entries, 4);
    assert_eq!(report.latest_head.unwrap().head.tree_size, 20);
    // The stored entries read back as appended.
    let entries = log.entries(0..N).unwrap();
    assert_eq!(entries.len() as u64, N);
    assert_eq!(entries[7].event.why, "secret reason 7");
    assert_eq!(entries[7].seq, 7);
    // Roots from the cache agree with a recomputation from the leaves.
    let c = raw(&f.path);
    for size in [0, 1, 5, 12, 17, 24] {
        assert_eq!(log.root_at(size).unwrap(), root_of(&c, size));
    }
    assert!(log.root_at(N + 1).is_err());
    // An empty log with a head of size 0 verifies too.
    let dir = tempfile::tempdir().unwrap();
    let empty = AuditLog::open(&dir.path().join("a.db"), AuditOptions::default()).unwrap();
    let h = empty.sign_head(&f.key, at(0)).unwrap();
    assert_eq!(h.head.tree_size, 0);
    assert_eq!(verify(&empty, &trusted(&[&f.key])).unwrap().entries, 0);
}

/// The entry of a page of 100 objects is stored as a zstd frame a third
/// of its size or less, and reads back, hashes and verifies as its
/// canonical JSON; a byte changed inside the frame is found at that entry.
#[test]
fn a_page_sized_entry_is_stored_compressed_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let log = AuditLog::open(&path, AuditOptions::default()).unwrap();
    log.append(&event(0)).unwrap();
    let mut page = event(1);
    page.what.objects = (0..100u32)
        .map(|j| ObjectRef {
            id: format!(
                "indicator--{:08x}-7d2c-4b9e-9a51-{:012x}",
                j.wrapping_mul(2_654_435_761),
                j
            ),
            version: format!(
                "2025-{:02}-{:02}T{:02}:17:45.{:03}Z",
                j % 12 + 1,
                j % 28 + 1,
                j % 24,
                j
            ),
        })
        .collect();
    log.append(&page).unwrap();
    let key = key(1);
    log.sign_head(&key, at(5)).unwrap();

    let c = raw(&path);
    let (small, big) = (leaf(&c, 0), leaf(&c, 1));
    assert!(
        small.len() < COMPRESS_FROM && small.starts_with(b"{"),
        "a small entry stays as it is"
    );
    let entry = &log.entries(1..2).unwrap()[0];
    assert_eq!(entry.event, page);
    let canonical = entry.leaf().unwrap();
    assert!(canonical.len() >= COMPRESS_FROM);
    assert!(big.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]), "a zstd frame");
    assert!(
        big.len() * 3 <= canonical.len(),
        "{} stored for {}",
        big.len(),
        canonical.len()
    );
    // The hash and the tree are over the canonical JSON.
    let stored_hash: Vec<u8> = c
        .query_row("SELECT leaf_hash FROM entries WHERE seq = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored_hash, leaf_hash(&canonical).0);
    assert_eq!(verify(&log, &trusted(&[&key])).unwrap().entries, 2);

    let mut bent = big.clone();
    let mid = bent.len() / 2;
    bent[mid] ^= 0x40;
    set_leaf(&c, 1, &bent);
    let e = verify(&log, &trusted(&[&key])).unwrap_err();
    let t = e.tampered().expect("tampering found");
    assert_eq!(t.first_bad_entry, Some(1), "{e}");
}

#[test]
fn a_backup_is_whole_and_verifies() {
    let f = fixture(N, HEADS);
    let log = AuditLog::open(&f.path, AuditOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("copy.db");
    log.backup_to(&dest).unwrap();
    let copy = read_only(&dest);
    let report = verify(&copy, &trusted(&[&f.key])).unwrap();
    assert_eq!(report.entries, N);
    assert_eq!(report.heads, 3);
    // Never over an existing file.
    assert!(log.backup_to(&dest).is_err());
}

#[test]
fn heads_are_idempotent_ordered_and_rotate_keys() {
    let f = fixture(10, &[]);
    let log = AuditLog::open(&f.path, AuditOptions::default()).unwrap();
    assert!(log.heads_due(Duration::from_secs(60), at(0)).unwrap());
    let h1 = log.sign_head(&f.key, at(100)).unwrap();
    let again = log.sign_head(&f.key, at(200)).unwrap();
    assert_eq!(h1, again);
    assert_eq!(log.heads().unwrap().len(), 1);
    assert!(!log.heads_due(Duration::from_secs(60), at(1000)).unwrap());
    log.append(&event(10)).unwrap();
    assert!(!log.heads_due(Duration::from_secs(60), at(130)).unwrap());
    assert!(log.heads_due(Duration::from_secs(60), at(160)).unwrap());
    // A clock that stepped back does not make a head older than the last.
    let h2 = log.sign_head(&f.key, at(50)).unwrap();
    assert_eq!(h2.head.timestamp, h1.head.timestamp);
    // Rotation: the new key signs the same tree again.
    let new_key = key(2);
    log.append(&event(11)).unwrap();
    let h3 = log.sign_head(&new_key, at(300)).unwrap();
    let h4 = log.sign_head(&new_key, at(301)).unwrap();
    assert_eq!(h3, h4);
    assert_ne!(h3.head.key_id, h2.head.key_id);
    assert!(verify(&log, &trusted(&[&f.key, &new_key])).is_ok());
    let err = verify(&log, &trusted(&[&new_key])).unwrap_err();
    assert_eq!(problem_name(err.tampered().unwrap()), "UntrustedKey");
    // Consistency between two heads, as a partner checks it.
    let proof = log
        .consistency_proof(h1.head.tree_size, h3.head.tree_size)
        .unwrap();
    let both = trusted(&[&f.key, &new_key]);
    verify_heads_consistent(&h1, &h3, &proof, &both).unwrap();
    assert!(verify_heads_consistent(&h1, &h3, &proof[1..], &both).is_err());
}

#[test]
fn read_only_and_diverged_logs_refuse_to_append() {
    let f = fixture(6, &[6]);
    let ro = read_only(&f.path);
    assert!(matches!(ro.append(&event(6)), Err(AuditError::ReadOnly)));
    assert!(matches!(
        ro.sign_head(&f.key, at(0)),
        Err(AuditError::ReadOnly)
    ));
    let missing = f.path.with_file_name("absent.db");
    assert!(
        AuditLog::open(
            &missing,
            AuditOptions {
                read_only: true,
                ..AuditOptions::default()
            }
        )
        .is_err()
    );
    assert!(!missing.exists());
    // The tables refuse updates and deletes, whoever asks through SQLite.
    let c = Connection::open(&f.path).unwrap();
    assert!(c.execute("UPDATE entries SET leaf = x'00'", []).is_err());
    assert!(c.execute("DELETE FROM heads", []).is_err());
    // The running writer notices rows cut behind its back.
    let log = AuditLog::open(&f.path, AuditOptions::default()).unwrap();
    delete_from(&raw(&f.path), 5);
    assert!(matches!(
        log.append(&event(6)),
        Err(AuditError::Diverged(_))
    ));
    // Nor does a restarted one build on a cut log.
    drop(log);
    assert!(matches!(
        AuditLog::open(&f.path, AuditOptions::default()),
        Err(AuditError::Damaged(_))
    ));
}

#[test]
fn batches_are_atomic_and_numbered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let log = AuditLog::open(&path, AuditOptions::default()).unwrap();
    let batch: Vec<Event> = (0..100).map(event).collect();
    assert_eq!(log.append_batch(&batch).unwrap(), 0..100);
    assert_eq!(log.append_batch(&[]).unwrap(), 100..100);
    assert_eq!(log.append_batch(&batch[..10]).unwrap(), 100..110);
    drop(log);
    // Reopening picks up where it was, cache and all.
    let log = AuditLog::open(&path, AuditOptions::default()).unwrap();
    assert_eq!(log.size().unwrap(), 110);
    assert_eq!(log.append(&event(0)).unwrap(), 110);
    let k = key(1);
    log.sign_head(&k, at(0)).unwrap();
    assert_eq!(verify(&log, &trusted(&[&k])).unwrap().entries, 111);
}

#[test]
fn the_appender_commits_from_many_threads() {
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let log = AuditLog::open(
            &path,
            AuditOptions {
                synchronous: sync,
                ..AuditOptions::default()
            },
        )
        .unwrap();
        let appender = log
            .appender(AppenderOptions {
                max_batch: 64,
                max_queued: 100,
                ..AppenderOptions::default()
            })
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let a = appender.clone();
                std::thread::spawn(move || {
                    let receipts: Vec<_> =
                        (0..250).map(|i| a.append(event(t * 1000 + i))).collect();
                    receipts
                        .into_iter()
                        .map(|r| r.wait().unwrap())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..1000).collect::<Vec<_>>());
        // Direct appends interleave with the appender's.
        assert_eq!(log.append(&event(5000)).unwrap(), 1000);
        let r = appender.append(event(5001));
        appender.flush().unwrap();
        assert_eq!(r.try_seq().unwrap().unwrap(), 1001);
        drop(appender);
        let k = key(1);
        log.sign_head(&k, at(0)).unwrap();
        drop(log);
        let log = read_only(&path);
        assert_eq!(verify(&log, &trusted(&[&k])).unwrap().entries, 1002);
    }
}

/// Under a steady stream of events, a lingering appender commits at most
/// once per `linger` (and so far fewer times than one that does not
/// linger), and every event is in the log.
#[test]
fn a_lingering_appender_commits_at_most_once_per_linger() {
    let run = |linger: Duration| -> (u64, Duration) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(
            &dir.path().join("audit.db"),
            AuditOptions {
                synchronous: Synchronous::Normal,
                ..AuditOptions::default()
            },
        )
        .unwrap();
        let appender = log
            .appender(AppenderOptions {
                linger,
                ..AppenderOptions::default()
            })
            .unwrap();
        let start = std::time::Instant::now();
        for i in 0..300 {
            drop(appender.append(event(i)));
            std::thread::sleep(Duration::from_micros(500));
        }
        appender.flush().unwrap();
        let elapsed = start.elapsed();
        assert_eq!(log.size().unwrap(), 300);
        (appender.batches(), elapsed)
    };
    let linger = Duration::from_millis(25);
    let (lingering, elapsed) = run(linger);
    // One commit per started `linger`, and the first.
    let bound = (elapsed.as_micros() / linger.as_micros()) as u64 + 2;
    assert!(lingering <= bound, "{lingering} commits in {elapsed:?}");
    let (eager, _) = run(Duration::ZERO);
    assert!(
        eager > lingering,
        "{eager} commits without lingering, {lingering} with"
    );
}

#[test]
fn the_appender_reports_failed_batches() {
    let f = fixture(6, &[]);
    assert!(matches!(
        read_only(&f.path).appender(AppenderOptions::default()),
        Err(AuditError::ReadOnly)
    ));
    let log = AuditLog::open(&f.path, AuditOptions::default()).unwrap();
    let appender = log.appender(AppenderOptions::default()).unwrap();
    assert_eq!(appender.append(event(6)).wait().unwrap(), 6);
    appender.flush().unwrap();
    // Rows cut behind the writer: the next batch fails as a whole, its
    // receipts and the next flush say so, and nothing is written.
    delete_from(&raw(&f.path), 5);
    let r = appender.append(event(7));
    assert!(matches!(r.wait(), Err(AuditError::Appender(_))));
    assert!(appender.flush().is_err());
    appender.flush().unwrap();
    assert_eq!(log.size().unwrap(), 5);
}

#[test]
fn two_writers_on_one_file_interleave_and_verify() {
    // Two logs opened on one file stand for two processes (the server and
    // an administration command): separate connections, separate
    // in-memory frontiers, one SQLite write lock between them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let a = AuditLog::open(&path, AuditOptions::default()).unwrap();
    let b = AuditLog::open(&path, AuditOptions::default()).unwrap();
    let k = key(1);
    assert_eq!(a.append(&event(0)).unwrap(), 0);
    // `b` opened before `a` appended, and catches up before its own append.
    assert_eq!(b.append(&event(1)).unwrap(), 1);
    assert_eq!(a.append_batch(&[event(2), event(3)]).unwrap(), 2..4);
    // A head by either covers what both appended.
    assert_eq!(b.sign_head(&k, at(10)).unwrap().head.tree_size, 4);
    assert_eq!(a.append(&event(4)).unwrap(), 4);
    let h = a.sign_head(&k, at(11)).unwrap();
    assert_eq!(h.head.tree_size, 5);
    assert_eq!(h.head.root_hash, b.root_at(5).unwrap());
    // Concurrently: an appender on each, plus direct appends, from threads.
    let (pa, pb) = (
        a.appender(AppenderOptions::default()).unwrap(),
        b.appender(AppenderOptions::default()).unwrap(),
    );
    let threads: Vec<_> = [pa.clone(), pb.clone()]
        .into_iter()
        .enumerate()
        .map(|(t, p)| {
            std::thread::spawn(move || {
                (0..200)
                    .map(|i| p.append(event(100 + t as u64 * 1000 + i)))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|r| r.wait().unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    for i in 0..20 {
        b.append(&event(50 + i)).unwrap();
    }
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    pa.flush().unwrap();
    pb.flush().unwrap();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        400,
        "every entry got a sequence number of its own"
    );
    assert_eq!(a.size().unwrap(), 425);
    a.sign_head(&k, at(12)).unwrap();
    drop((pa, pb, a, b));
    let report = verify(&read_only(&path), &trusted(&[&k])).unwrap();
    assert_eq!(report.entries, 425);
    assert_eq!(report.unsigned_entries, 0);
}

fn export_fixture() -> (Fixture, AuditLog) {
    let f = fixture(N, HEADS);
    let log = AuditLog::open(&f.path, AuditOptions::default()).unwrap();
    (f, log)
}

#[test]
fn a_partner_export_holds_its_entries_only_and_verifies() {
    let (f, log) = export_fixture();
    let t = trusted(&[&f.key]);
    let x = log.export_for("node-b", &ExportRequest::default()).unwrap();
    assert_eq!(x.head.head.tree_size, 20);
    let indices: Vec<u64> = x.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, vec![0, 3, 6, 9, 12, 15, 18]);
    // Nothing about anyone else: no entry of node-a alone, in any form.
    let json = serde_json::to_string(&x).unwrap();
    for i in (0..N).filter(|i| i % 3 != 0) {
        assert!(
            !json.contains(&format!("secret reason {i}\"")),
            "entry {i} leaked"
        );
    }
    // Over the wire and back, then the partner's check.
    let back: PartnerExport = serde_json::from_str(&json).unwrap();
    let v = verify_export(&back, &t).unwrap();
    assert_eq!(v.entries.len(), 7);
    assert!(
        v.entries
            .iter()
            .all(|e| e.event.parties.contains(&"node-b".to_string()))
    );
    // Another key does not verify it.
    assert!(verify_export(&back, &trusted(&[&key(3)])).is_err());
    // Incremental, at an older head.
    let x = log
        .export_for(
            "node-a",
            &ExportRequest {
                head_size: Some(12),
                since: vec![5],
                from_seq: 5,
            },
        )
        .unwrap();
    assert_eq!(
        x.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![6, 8, 10]
    );
    verify_export(&x, &t).unwrap();
    // Nobody's export is empty but valid.
    let x = log.export_for("node-z", &ExportRequest::default()).unwrap();
    assert!(x.entries.is_empty());
    verify_export(&x, &t).unwrap();
    assert!(matches!(
        log.export_for(
            "node-a",
            &ExportRequest {
                head_size: Some(7),
                ..ExportRequest::default()
            }
        ),
        Err(AuditError::NoSuchHead(Some(7)))
    ));
}

fn insert_in_order(x: &mut PartnerExport, e: anyam_audit::ExportedEntry) {
    let at = x.entries.partition_point(|y| y.index < e.index);
    x.entries.insert(at, e);
}

#[test]
fn any_alteration_of_an_export_fails_verification() {
    let (f, log) = export_fixture();
    let t = trusted(&[&f.key]);
    let good = log
        .export_for(
            "node-a",
            &ExportRequest {
                since: vec![5, 12],
                ..ExportRequest::default()
            },
        )
        .unwrap();
    verify_export(&good, &t).unwrap();
    let other = log.export_for("node-b", &ExportRequest::default()).unwrap();
    type Alter = fn(&mut PartnerExport, &PartnerExport);
    let alterations: &[(&str, Alter)] = &[
        ("edit an entry's reason", |x, _| {
            x.entries[2].entry["why"] = "nothing to see".into();
        }),
        ("edit an entry's time", |x, _| {
            x.entries[2].entry["time"] = "2020-01-01T00:00:00.000000Z".into();
        }),
        ("drop an entry's object", |x, _| {
            x.entries[2].entry["what"]["objects"]
                .as_array_mut()
                .unwrap()
                .pop();
        }),
        ("edit an entry's details", |x, _| {
            x.entries[2].entry["details"]["request"] = 99.into();
        }),
        ("change an index", |x, _| x.entries[2].index += 2),
        ("change an index and seq together", |x, _| {
            x.entries[2].index += 2;
            x.entries[2].entry["seq"] = x.entries[2].index.into();
        }),
        ("swap two entries' indices", |x, _| {
            let (a, b) = (x.entries[1].index, x.entries[2].index);
            x.entries[1].index = b;
            x.entries[1].entry["seq"] = b.into();
            x.entries[2].index = a;
            x.entries[2].entry["seq"] = a.into();
            x.entries.swap(1, 2);
        }),
        ("alter a proof hash", |x, _| {
            x.entries[2].inclusion_proof[1].0[0] ^= 1;
        }),
        ("drop a proof hash", |x, _| {
            x.entries[2].inclusion_proof.pop();
        }),
        ("repeat an entry", |x, _| {
            let e = x.entries[2].clone();
            x.entries.insert(2, e);
        }),
        ("slip in another partner's entry", |x, o| {
            let e = o.entries.iter().find(|e| e.index == 9).unwrap().clone();
            insert_in_order(x, e);
        }),
        ("claim another partner's entry as ours", |x, o| {
            let mut e = o.entries.iter().find(|e| e.index == 9).unwrap().clone();
            e.entry["parties"] = serde_json::json!(["node-a", "node-b"]);
            insert_in_order(x, e);
        }),
        ("change the head's size", |x, _| x.head.head.tree_size = 24),
        ("change the head's root", |x, _| {
            x.head.head.root_hash.0[31] ^= 1;
        }),
        ("change the head's time", |x, _| {
            x.head.head.timestamp = at(5);
        }),
        ("change the head's signature", |x, _| {
            let mut s = x.head.signature.clone().into_bytes();
            s[0] = if s[0] == b'a' { b'b' } else { b'a' };
            x.head.signature = String::from_utf8(s).unwrap();
        }),
        ("alter a consistency proof", |x, _| {
            x.consistency[0].proof[0].0[3] ^= 1;
        }),
        ("alter a consistency old root", |x, _| {
            x.consistency[1].from_root.0[3] ^= 1;
        }),
        ("change a consistency size", |x, _| {
            x.consistency[0].from_size = 6;
        }),
    ];
    for (name, alter) in alterations {
        let mut x = good.clone();
        alter(&mut x, &other);
        assert!(verify_export(&x, &t).is_err(), "{name}: not detected");
    }
}

#[test]
fn consistency_shows_a_later_head_extends_an_earlier_and_a_fork_does_not() {
    let k = key(1);
    let t = trusted(&[&k]);
    let dir = tempfile::tempdir().unwrap();
    let honest = AuditLog::open(&dir.path().join("a.db"), AuditOptions::default()).unwrap();
    let forked = AuditLog::open(&dir.path().join("b.db"), AuditOptions::default()).unwrap();
    for i in 0..5 {
        honest.append(&event(i)).unwrap();
        // The forked log rewrites entry 3 before it is shown again.
        let mut e = event(i);
        if i == 3 {
            e.why = "rewritten".into();
        }
        forked.append(&e).unwrap();
    }
    let seen = honest.sign_head(&k, at(10)).unwrap();
    for i in 5..20 {
        honest.append(&event(i)).unwrap();
        forked.append(&event(i)).unwrap();
    }
    let later = honest.sign_head(&k, at(20)).unwrap();
    let fork_head = forked.sign_head(&k, at(20)).unwrap();
    let req = ExportRequest {
        since: vec![5],
        ..ExportRequest::default()
    };
    // The honest log's later export extends what the partner saw.
    let x = honest.export_for("node-a", &req).unwrap();
    verify_export(&x, &t).unwrap();
    x.check_extends(&seen, &t).unwrap();
    x.check_extends(&later, &t).unwrap();
    let proof = honest.consistency_proof(5, 20).unwrap();
    verify_heads_consistent(&seen, &later, &proof, &t).unwrap();
    // The forked log's export is self-consistent but does not extend it.
    let y = forked.export_for("node-a", &req).unwrap();
    verify_export(&y, &t).unwrap();
    assert!(y.check_extends(&seen, &t).is_err());
    let proof = forked.consistency_proof(5, 20).unwrap();
    assert!(verify_heads_consistent(&seen, &fork_head, &proof, &t).is_err());
    // Two heads of one size with different roots are a fork by themselves.
    let forked_seen = forked.export_for(
        "node-a",
        &ExportRequest {
            head_size: Some(20),
            ..ExportRequest::default()
        },
    );
    assert!(forked_seen.unwrap().check_extends(&later, &t).is_err());
    // A head that went backwards is never "extended".
    let z = honest
        .export_for(
            "node-a",
            &ExportRequest {
                head_size: Some(5),
                ..ExportRequest::default()
            },
        )
        .unwrap();
    assert!(z.check_extends(&later, &t).is_err());
}
