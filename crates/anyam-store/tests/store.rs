//! Integration tests of `SqliteStore` through the public `Store` API, on real
//! SQLite files in temporary directories.

// Test helpers (not only `#[test]` functions) may unwrap: a failure is a
// failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyam_store::*;

// --- fixtures ---------------------------------------------------------------

const COLL: &str = "91a7b528-80eb-42ed-a74d-c6fbd5a26116";

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).unwrap()
}

/// A fresh store with one API root and one collection.
fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir.path().join("node.db"));
    setup(&s);
    (dir, s)
}

fn setup(s: &SqliteStore) {
    s.create_api_root(&ApiRoot {
        name: "root".into(),
        title: "Root".into(),
        description: None,
        max_content_length: 10_000_000,
    })
    .unwrap();
    s.create_collection(&Collection {
        id: COLL.into(),
        api_root: "root".into(),
        title: "Intel".into(),
        description: Some("shared".into()),
        alias: None,
    })
    .unwrap();
}

fn digest(text: &str) -> [u8; 32] {
    // A stand-in for the canonical-JSON SHA-256: any function of the content
    // serves, the store only compares digests.
    let mut d = [0u8; 32];
    for (i, b) in text.bytes().enumerate() {
        d[i % 32] = d[i % 32].wrapping_mul(31).wrapping_add(b);
    }
    d[31] ^= text.len() as u8;
    d
}

/// An object `id` at version `v` (micros; `None` = versionless) with content
/// tag `tag` (a different tag = a different digest).
fn obj_full(id: &str, ty: &str, spec: &str, v: Option<Micros>, tag: &str) -> NewObject {
    let version = v.map(|m| format!("v{m}"));
    let raw = format!(
        r#"{{"type":"{ty}","id":"{id}","spec_version":"{spec}","modified":"{version:?}","x":"{tag}"}}"#
    );
    NewObject {
        id: id.into(),
        object_type: ty.into(),
        spec_version: spec.into(),
        version,
        version_micros: v,
        digest: digest(&raw),
        raw,
        release_label: String::new(),
        observables: Vec::new(),
        name: None,
        description: None,
    }
}

/// A second collection beside `COLL`, in the same API root; its id.
fn second_collection(s: &SqliteStore) -> &'static str {
    let other = "0c5a6fd5-52a1-4bde-9a3f-3b2f6f0e2a11";
    s.create_collection(&Collection {
        id: other.into(),
        api_root: "root".into(),
        title: "B".into(),
        description: None,
        alias: None,
    })
    .unwrap();
    other
}

fn obj(id: &str, v: i64) -> NewObject {
    obj_full(id, "indicator", "2.1", Some(v), "a")
}

fn q() -> Query {
    Query {
        limit: 1000,
        ..Query::default()
    }
}

/// Short labels for the filter tables: `a10` is object `indicator--a` at
/// version 10; a versionless object is its letter alone.
fn label(id: &str, version: &str) -> String {
    let letter = id.rsplit("--").next().unwrap_or(id);
    match version.strip_prefix('v') {
        Some(v) => format!("{letter}{v}"),
        None => letter.to_string(),
    }
}

fn labels_m(p: &Page<ManifestEntry>) -> String {
    p.items
        .iter()
        .map(|e| label(&e.id, &e.version))
        .collect::<Vec<_>>()
        .join(" ")
}

fn labels_o(p: &Page<StoredObject>) -> String {
    p.items
        .iter()
        .map(|e| label(&e.id, &e.version))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The shared data set of the filter tables, posted one object per batch so
/// `date_added` order is the order below:
/// a10 b15 c a20 d40 a30(spec 2.0) d5.
/// First/last: a 10/30, b 15, c (one version), d 5/40.
fn filter_fixture() -> (tempfile::TempDir, SqliteStore, BTreeMap<String, Micros>) {
    let (d, s) = fresh();
    let posts = [
        obj_full("indicator--a", "indicator", "2.1", Some(10), "x"),
        obj_full("malware--b", "malware", "2.1", Some(15), "x"),
        obj_full("file--c", "file", "2.1", None, "x"),
        obj_full("indicator--a", "indicator", "2.1", Some(20), "x"),
        obj_full("indicator--d", "indicator", "2.1", Some(40), "x"),
        obj_full("indicator--a", "indicator", "2.0", Some(30), "x"),
        obj_full("indicator--d", "indicator", "2.1", Some(5), "x"),
    ];
    let mut added = BTreeMap::new();
    for o in posts {
        let out = s.put_objects(COLL, std::slice::from_ref(&o)).unwrap();
        let PutOutcome::Added(at) = out[0] else {
            panic!("{out:?}")
        };
        added.insert(label(&o.id, o.version.as_deref().unwrap_or("")), at);
    }
    (d, s, added)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// --- filters --------------------------------------------------------------

#[test]
fn objects_and_manifest_filters() {
    use VersionSel::*;
    let (_d, s, added) = filter_fixture();
    let ind = "indicator--";
    // (what, query, expected labels in date_added order)
    let cases: Vec<(&str, Query, &str)> = vec![
        ("default is last", q(), "b15 c d40 a30"),
        (
            "last",
            Query {
                versions: vec![Last],
                ..q()
            },
            "b15 c d40 a30",
        ),
        (
            "first",
            Query {
                versions: vec![First],
                ..q()
            },
            "a10 b15 c d5",
        ),
        (
            "all",
            Query {
                versions: vec![All],
                ..q()
            },
            "a10 b15 c a20 d40 a30 d5",
        ),
        (
            "first,last union",
            Query {
                versions: vec![First, Last],
                ..q()
            },
            "a10 b15 c d40 a30 d5",
        ),
        (
            "all absorbs the rest",
            Query {
                versions: vec![First, All],
                ..q()
            },
            "a10 b15 c a20 d40 a30 d5",
        ),
        (
            "exact",
            Query {
                versions: vec![At(20)],
                ..q()
            },
            "a20",
        ),
        (
            "exact list",
            Query {
                versions: vec![At(20), At(5)],
                ..q()
            },
            "a20 d5",
        ),
        (
            "exact and last",
            Query {
                versions: vec![At(20), Last],
                ..q()
            },
            "b15 c a20 d40 a30",
        ),
        (
            "exact of no version",
            Query {
                versions: vec![At(11)],
                ..q()
            },
            "",
        ),
        (
            "versionless exact by date_added",
            Query {
                versions: vec![At(added["c"])],
                ..q()
            },
            "c",
        ),
        (
            "type",
            Query {
                types: strs(&["malware"]),
                ..q()
            },
            "b15",
        ),
        (
            "type list",
            Query {
                types: strs(&["indicator", "file"]),
                ..q()
            },
            "c d40 a30",
        ),
        (
            "type unknown",
            Query {
                types: strs(&["tool"]),
                ..q()
            },
            "",
        ),
        (
            "id",
            Query {
                ids: vec![format!("{ind}a")],
                ..q()
            },
            "a30",
        ),
        (
            "id all",
            Query {
                ids: vec![format!("{ind}a")],
                versions: vec![All],
                ..q()
            },
            "a10 a20 a30",
        ),
        (
            "id list first",
            Query {
                ids: vec![format!("{ind}a"), format!("{ind}d")],
                versions: vec![First],
                ..q()
            },
            "a10 d5",
        ),
        (
            "id unknown",
            Query {
                ids: strs(&["indicator--zz"]),
                ..q()
            },
            "",
        ),
        (
            "spec 2.0 all",
            Query {
                spec_versions: strs(&["2.0"]),
                versions: vec![All],
                ..q()
            },
            "a30",
        ),
        // A row filter: a's last version is 2.0, so 2.1 readers see no a.
        (
            "spec 2.1 last",
            Query {
                spec_versions: strs(&["2.1"]),
                ..q()
            },
            "b15 c d40",
        ),
        (
            "spec list",
            Query {
                spec_versions: strs(&["2.0", "2.1"]),
                ..q()
            },
            "b15 c d40 a30",
        ),
        (
            "added_after is exclusive",
            Query {
                added_after: Some(added["a20"]),
                versions: vec![All],
                ..q()
            },
            "d40 a30 d5",
        ),
        (
            "added_after with last",
            Query {
                added_after: Some(added["a20"]),
                ..q()
            },
            "d40 a30",
        ),
        (
            "added_after before all",
            Query {
                added_after: Some(0),
                ..q()
            },
            "b15 c d40 a30",
        ),
        (
            "added_after past the end",
            Query {
                added_after: Some(added["d5"]),
                versions: vec![All],
                ..q()
            },
            "",
        ),
        (
            "everything at once",
            Query {
                ids: vec![format!("{ind}a"), format!("{ind}d"), "malware--b".into()],
                types: strs(&["indicator"]),
                versions: vec![First, At(20)],
                spec_versions: strs(&["2.1"]),
                added_after: Some(added["a10"]),
                ..q()
            },
            "a20 d5",
        ),
    ];
    for (what, query, want) in cases {
        let m = s.manifest(COLL, &query).unwrap();
        assert_eq!(labels_m(&m), want, "manifest: {what}");
        assert_eq!(m.next, None, "{what}");
        let o = s.objects(COLL, &query).unwrap();
        assert_eq!(labels_o(&o), want, "objects: {what}");
        // Both endpoints describe the same rows.
        for (e, o) in m.items.iter().zip(&o.items) {
            assert_eq!(
                (
                    &e.id,
                    &e.version,
                    e.date_added,
                    &e.spec_version,
                    e.object_type.as_str()
                ),
                (
                    &o.id,
                    &o.version,
                    o.date_added,
                    &o.spec_version,
                    o.object_type()
                )
            );
        }
    }
}

#[test]
fn versions_endpoint_filters() {
    use VersionSel::*;
    let (_d, s, added) = filter_fixture();
    let cases: Vec<(&str, &str, Query, &str)> = vec![
        ("default is all", "indicator--a", q(), "a10 a20 a30"),
        (
            "last",
            "indicator--a",
            Query {
                versions: vec![Last],
                ..q()
            },
            "a30",
        ),
        (
            "first",
            "indicator--a",
            Query {
                versions: vec![First],
                ..q()
            },
            "a10",
        ),
        (
            "first inserted last",
            "indicator--d",
            Query {
                versions: vec![First],
                ..q()
            },
            "d5",
        ),
        (
            "date_added order, not version order",
            "indicator--d",
            q(),
            "d40 d5",
        ),
        (
            "exact",
            "indicator--a",
            Query {
                versions: vec![At(20), At(30)],
                ..q()
            },
            "a20 a30",
        ),
        (
            "spec",
            "indicator--a",
            Query {
                spec_versions: strs(&["2.1"]),
                ..q()
            },
            "a10 a20",
        ),
        (
            "added_after",
            "indicator--a",
            Query {
                added_after: Some(added["a10"]),
                ..q()
            },
            "a20 a30",
        ),
        ("single version", "malware--b", q(), "b15"),
        ("unknown object", "indicator--zz", q(), ""),
    ];
    for (what, id, query, want) in cases {
        let p = s.versions(COLL, id, &query).unwrap();
        assert_eq!(labels_m(&p), want, "{what}");
    }
    // An object without a version is versioned by its date_added, rendered
    // with microseconds (TAXII 2.1 §3.2).
    let c = s.versions(COLL, "file--c", &q()).unwrap();
    assert_eq!(c.items.len(), 1);
    let v = &c.items[0].version;
    assert!(
        v.len() == 27 && v.ends_with('Z') && v.as_bytes()[19] == b'.',
        "{v}"
    );
    let secs = c.items[0].date_added / 1_000_000;
    assert!(
        v.starts_with(if secs > 1_700_000_000 { "20" } else { "19" }),
        "{v}"
    );
    assert_eq!(
        &v[20..26],
        &format!("{:06}", c.items[0].date_added % 1_000_000)
    );
}

#[test]
fn raw_text_is_kept_exactly() {
    let (_d, s) = fresh();
    let mut o = obj("indicator--raw", 1);
    o.raw = "{ \"type\" : \"indicator\",\n  \"name\": \"caf\u{e9} \\u00e9\" }".into();
    s.put_objects(COLL, &[o.clone()]).unwrap();
    let p = s.objects(COLL, &q()).unwrap();
    assert_eq!(p.items[0].raw, o.raw);
}

#[test]
fn objects_come_back_with_their_digest_and_whether_they_state_a_version() {
    let (_d, s) = fresh();
    let versioned = obj("indicator--dv", 7);
    let versionless = obj_full("ipv4-addr--dl", "ipv4-addr", "2.1", None, "b");
    assert_ne!(versioned.digest, versionless.digest);
    s.put_objects(COLL, &[versioned.clone(), versionless.clone()])
        .unwrap();
    let p = s.objects(COLL, &q()).unwrap();
    let got: Vec<_> = p
        .items
        .iter()
        .map(|o| (o.id.as_str(), o.digest, o.versionless))
        .collect();
    assert_eq!(
        got,
        vec![
            ("indicator--dv", versioned.digest, false),
            ("ipv4-addr--dl", versionless.digest, true)
        ]
    );
    // A versionless object's served version is its date_added.
    assert!(p.items[1].version.ends_with('Z'));
}

#[test]
fn search_finds_by_word_and_by_value_whole_objects() {
    let (_d, s) = fresh();
    let mut named = obj("indicator--sw", 3);
    named.raw = r#"{"type":"indicator","id":"indicator--sw","name":"Ransomware dropper"}"#.into();
    named.digest = digest(&named.raw);
    named.name = Some("Ransomware dropper".into());
    let mut valued = obj("indicator--sv", 4);
    valued.observables = vec!["198.51.100.7".into()];
    s.put_objects(COLL, &[named.clone(), valued.clone()])
        .unwrap();
    let visible = [ClassScope {
        class: 0,
        types: TypeScope::Any,
    }];
    let by_word = s
        .search(
            COLL,
            &visible,
            &Search {
                words: vec!["ransomware".into()],
                limit: 10,
                ..Search::default()
            },
        )
        .unwrap();
    assert_eq!(by_word.len(), 1);
    assert_eq!(
        (
            by_word[0].raw.as_str(),
            by_word[0].digest,
            by_word[0].versionless
        ),
        (named.raw.as_str(), named.digest, false)
    );
    let by_value = s
        .search(
            COLL,
            &visible,
            &Search {
                value: Some("198.51.100.7".into()),
                limit: 10,
                ..Search::default()
            },
        )
        .unwrap();
    assert_eq!(by_value.len(), 1);
    assert_eq!(
        (by_value[0].id.as_str(), by_value[0].digest),
        ("indicator--sv", valued.digest)
    );
}

// --- writes -----------------------------------------------------------------

/// A versioned row may share its instant with a versionless row of the
/// same object (whose version is its `date_added`): the later added is
/// then the last, the earlier the first, and a third version moves the
/// right flags.
#[test]
fn versions_of_one_instant_are_ordered_by_date_added() {
    let (_d, s) = fresh();
    let bare = obj_full("file--t", "file", "2.1", None, "a");
    let PutOutcome::Added(t) = s.put_objects(COLL, &[bare]).unwrap()[0] else {
        panic!("not added")
    };
    let stated = obj_full("file--t", "file", "2.1", Some(t), "b");
    let later = obj_full("file--t", "file", "2.1", Some(t + 1), "c");
    let earlier = obj_full("file--t", "file", "2.1", Some(t - 1), "d");
    let tags = |v: VersionSel| -> Vec<String> {
        let page = s
            .objects(
                COLL,
                &Query {
                    versions: vec![v],
                    ..q()
                },
            )
            .unwrap();
        page.items
            .iter()
            .map(|o| {
                o.raw
                    .split("\"x\":\"")
                    .nth(1)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    assert!(matches!(
        s.put_objects(COLL, &[stated]).unwrap()[0],
        PutOutcome::Added(_)
    ));
    assert_eq!(tags(VersionSel::Last), ["b\"}"]);
    assert_eq!(tags(VersionSel::First), ["a\"}"]);
    s.put_objects(COLL, &[later]).unwrap();
    assert_eq!(tags(VersionSel::Last), ["c\"}"]);
    assert_eq!(tags(VersionSel::First), ["a\"}"]);
    s.put_objects(COLL, &[earlier]).unwrap();
    assert_eq!(tags(VersionSel::Last), ["c\"}"]);
    assert_eq!(tags(VersionSel::First), ["d\"}"]);
    assert_eq!(tags(VersionSel::All).len(), 4);
}

#[test]
fn conflicts_and_idempotence() {
    let (_d, s) = fresh();
    let a1 = obj_full("indicator--x", "indicator", "2.1", Some(1), "a");
    let a1b = obj_full("indicator--x", "indicator", "2.1", Some(1), "b");
    let a2 = obj_full("indicator--x", "indicator", "2.1", Some(2), "a");
    let y = obj_full("file--y", "file", "2.1", None, "a");
    let yb = obj_full("file--y", "file", "2.1", None, "b");

    let out = s.put_objects(COLL, &[a1.clone(), y.clone()]).unwrap();
    let (PutOutcome::Added(t_a1), PutOutcome::Added(t_y)) = (out[0].clone(), out[1].clone()) else {
        panic!("{out:?}")
    };
    assert!(t_a1 < t_y);

    // (what, batch, expected outcomes; U(x) = Unchanged at that date)
    let out = s
        .put_objects(COLL, &[a1.clone(), a1b.clone(), y.clone(), yb.clone()])
        .unwrap();
    assert_eq!(
        out,
        vec![
            PutOutcome::Unchanged(t_a1),
            PutOutcome::Conflict,
            PutOutcome::Unchanged(t_y),
            PutOutcome::Conflict
        ]
    );
    assert_eq!(
        s.count_objects(COLL).unwrap(),
        2,
        "re-posting creates no row"
    );

    // Duplicates inside one batch behave as if posted one after another.
    let z = obj_full("indicator--z", "indicator", "2.1", Some(7), "a");
    let zb = obj_full("indicator--z", "indicator", "2.1", Some(7), "b");
    let w = obj_full("file--w", "file", "2.1", None, "a");
    let wb = obj_full("file--w", "file", "2.1", None, "b");
    let out = s
        .put_objects(
            COLL,
            &[z.clone(), z.clone(), zb, a2.clone(), w.clone(), wb, w],
        )
        .unwrap();
    let PutOutcome::Added(t_z) = out[0] else {
        panic!("{out:?}")
    };
    let PutOutcome::Added(t_a2) = out[3] else {
        panic!("{out:?}")
    };
    let PutOutcome::Added(t_w) = out[4] else {
        panic!("{out:?}")
    };
    assert_eq!(
        out,
        vec![
            PutOutcome::Added(t_z),
            PutOutcome::Unchanged(t_z),
            PutOutcome::Conflict,
            PutOutcome::Added(t_a2),
            PutOutcome::Added(t_w),
            PutOutcome::Conflict,
            PutOutcome::Unchanged(t_w),
        ]
    );
    assert!(
        t_y < t_z && t_z < t_a2 && t_a2 < t_w,
        "date_added increases in input order"
    );
    assert_eq!(s.count_objects(COLL).unwrap(), 5);
    let stored = s
        .objects(
            COLL,
            &Query {
                ids: vec!["indicator--z".into()],
                ..q()
            },
        )
        .unwrap();
    assert_eq!(
        stored.items[0].raw, z.raw,
        "the conflicting post wrote nothing"
    );

    // An empty batch is fine; inconsistent version fields and unknown
    // collections are refused as a whole.
    assert_eq!(s.put_objects(COLL, &[]).unwrap(), vec![]);
    let mut bad = obj("indicator--bad", 1);
    bad.version_micros = None;
    assert!(matches!(
        s.put_objects(COLL, &[obj("indicator--ok", 1), bad]),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.put_objects("no-such-collection", &[obj("indicator--ok", 1)]),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.count_objects(COLL).unwrap(), 5, "nothing half-written");
}

#[test]
fn date_added_strictly_increases_across_batches_and_deletes() {
    let (_d, s) = fresh();
    let mut last = 0;
    for i in 0..50 {
        let batch: Vec<_> = (0..20)
            .map(|j| obj(&format!("indicator--{i}-{j}"), 1))
            .collect();
        for o in s.put_objects(COLL, &batch).unwrap() {
            let PutOutcome::Added(t) = o else {
                panic!("{o:?}")
            };
            assert!(t > last);
            last = t;
        }
        // Deleting the newest object must not let the next date_added reuse
        // its timestamp: a client may already hold it as a cursor.
        assert_eq!(
            s.delete_object(COLL, &format!("indicator--{i}-19"), &[], &[], None)
                .unwrap(),
            1
        );
    }
}

#[test]
fn delete_versions_and_repair_flags() {
    use VersionSel::*;
    // (what, versions, spec_versions, deleted, remaining versions, first, last)
    type Case = (
        &'static str,
        Vec<VersionSel>,
        Vec<&'static str>,
        u64,
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("everything by default", vec![], vec![], 3, "", "", ""),
        ("all", vec![All], vec![], 3, "", "", ""),
        ("last", vec![Last], vec![], 1, "a10 a20", "a10", "a20"),
        ("first", vec![First], vec![], 1, "a20 a30", "a20", "a30"),
        (
            "first and last",
            vec![First, Last],
            vec![],
            2,
            "a20",
            "a20",
            "a20",
        ),
        ("middle", vec![At(20)], vec![], 1, "a10 a30", "a10", "a30"),
        (
            "absent version",
            vec![At(99)],
            vec![],
            0,
            "a10 a20 a30",
            "a10",
            "a30",
        ),
        (
            "by spec version",
            vec![],
            vec!["2.0"],
            1,
            "a10 a20",
            "a10",
            "a20",
        ),
        (
            "last, but spec does not match",
            vec![Last],
            vec!["2.1"],
            0,
            "a10 a20 a30",
            "a10",
            "a30",
        ),
        (
            "first with spec",
            vec![First],
            vec!["2.1"],
            1,
            "a20 a30",
            "a20",
            "a30",
        ),
    ];
    for (what, versions, specs, n, remaining, first, last) in cases {
        let (_d, s, _) = filter_fixture();
        let specs = strs(&specs);
        assert_eq!(
            s.delete_object(COLL, "indicator--a", &versions, &specs, None)
                .unwrap(),
            n,
            "{what}"
        );
        let only_a = |v: Vec<VersionSel>| Query {
            ids: strs(&["indicator--a"]),
            versions: v,
            ..q()
        };
        assert_eq!(
            labels_m(&s.versions(COLL, "indicator--a", &q()).unwrap()),
            remaining,
            "{what}"
        );
        // The flags drive the partial-index scans, so check them that way too.
        let scan = |v: VersionSel| {
            s.manifest(
                COLL,
                &Query {
                    versions: vec![v],
                    ..q()
                },
            )
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.id == "indicator--a")
            .map(|e| label(&e.id, &e.version))
            .collect::<Vec<_>>()
            .join(" ")
        };
        assert_eq!(scan(First), first, "{what}: first");
        assert_eq!(scan(Last), last, "{what}: last");
        assert_eq!(
            labels_m(&s.manifest(COLL, &only_a(vec![First])).unwrap()),
            first,
            "{what}"
        );
        assert_eq!(
            labels_o(&s.objects(COLL, &only_a(vec![])).unwrap()),
            last,
            "{what}"
        );
        assert_eq!(s.count_objects(COLL).unwrap(), 7 - n, "{what}");
        // Other objects are untouched.
        assert_eq!(
            labels_m(&s.versions(COLL, "indicator--d", &q()).unwrap()),
            "d40 d5",
            "{what}"
        );
    }
    let (_d, s, added) = filter_fixture();
    assert_eq!(
        s.delete_object(COLL, "indicator--zz", &[], &[], None)
            .unwrap(),
        0
    );
    assert!(matches!(
        s.delete_object("nope", "indicator--a", &[], &[], None),
        Err(StoreError::NotFound(_))
    ));
    // A deleted version can be posted again; it is new, with a new date_added.
    assert_eq!(
        s.delete_object(COLL, "indicator--a", &[At(20)], &[], None)
            .unwrap(),
        1
    );
    let out = s
        .put_objects(
            COLL,
            &[obj_full("indicator--a", "indicator", "2.1", Some(20), "x")],
        )
        .unwrap();
    let PutOutcome::Added(t) = out[0] else {
        panic!("{out:?}")
    };
    assert!(t > added["d5"]);
    assert_eq!(
        labels_m(&s.versions(COLL, "indicator--a", &q()).unwrap()),
        "a10 a30 a20"
    );
    assert_eq!(
        labels_m(
            &s.manifest(
                COLL,
                &Query {
                    ids: strs(&["indicator--a"]),
                    ..q()
                }
            )
            .unwrap()
        ),
        "a30"
    );
}

#[test]
fn many_versions_in_any_order_keep_one_first_and_one_last() {
    use VersionSel::*;
    let (_d, s) = fresh();
    // 300 versions posted in a scrambled order, some twice, in batches.
    let order: Vec<i64> = (0..300).map(|i| (i * 137) % 300 + 1).collect();
    for chunk in order.chunks(41) {
        let mut batch: Vec<_> = chunk.iter().map(|v| obj("indicator--m", *v)).collect();
        batch.push(obj("indicator--m", chunk[0]));
        let out = s.put_objects(COLL, &batch).unwrap();
        assert!(matches!(out.last(), Some(PutOutcome::Unchanged(_))));
    }
    let one = |v: VersionSel| {
        labels_m(
            &s.manifest(
                COLL,
                &Query {
                    versions: vec![v],
                    ..q()
                },
            )
            .unwrap(),
        )
    };
    assert_eq!(one(First), "m1");
    assert_eq!(one(Last), "m300");
    assert_eq!(
        s.versions(
            COLL,
            "indicator--m",
            &Query {
                versions: vec![First, Last],
                ..q()
            }
        )
        .unwrap()
        .items
        .len(),
        2
    );
    assert_eq!(s.count_objects(COLL).unwrap(), 300);
    // Peel versions off both ends; first and last follow.
    for k in 0..10 {
        assert_eq!(
            s.delete_object(COLL, "indicator--m", &[First, Last], &[], None)
                .unwrap(),
            2
        );
        assert_eq!(one(First), format!("m{}", k + 2));
        assert_eq!(one(Last), format!("m{}", 299 - k));
    }
}

/// The manifest of `COLL` under one version filter, as labels.
fn manifest_of(s: &SqliteStore, v: VersionSel) -> String {
    labels_m(
        &s.manifest(
            COLL,
            &Query {
                versions: vec![v],
                ..q()
            },
        )
        .unwrap(),
    )
}

/// Outcomes without their dates (two stores assign different ones).
fn kinds(out: &[PutOutcome]) -> Vec<&'static str> {
    out.iter()
        .map(|o| match o {
            PutOutcome::Added(_) => "added",
            PutOutcome::Unchanged(_) => "unchanged",
            PutOutcome::Conflict => "conflict",
        })
        .collect()
}

#[test]
fn a_bulk_load_stores_exactly_what_plain_puts_store() {
    use VersionSel::*;
    let (_d1, plain) = fresh();
    let (_d2, bulk) = fresh();
    let v = |id: &str, m: i64, tag: &str| obj_full(id, "indicator", "2.1", Some(m), tag);
    let batches = [
        // New ids, a repeat inside the batch, a later version of an id
        // stored earlier in the same batch.
        vec![
            v("indicator--a", 10, "x"),
            v("indicator--b", 5, "x"),
            obj_full("file--c", "file", "2.1", None, "x"),
            v("indicator--a", 10, "x"),
            v("indicator--a", 20, "x"),
        ],
        // Versions of ids of the first batch: between two, the same, a
        // changed copy, a newest; and a new id.
        vec![
            v("indicator--a", 15, "x"),
            v("indicator--b", 5, "x"),
            v("indicator--b", 5, "y"),
            obj_full("file--c", "file", "2.1", None, "y"),
            v("indicator--d", 1, "x"),
            v("indicator--a", 30, "x"),
        ],
        // An older first version, and new ids again.
        vec![
            v("indicator--e", 1, "x"),
            v("indicator--a", 5, "x"),
            v("indicator--d", 2, "x"),
        ],
    ];
    let mut load = BulkLoad::new();
    for batch in &batches {
        let want = plain.put_objects(COLL, batch).unwrap();
        let got = bulk.put_objects_bulk(COLL, batch, &mut load).unwrap();
        assert_eq!(kinds(&got), kinds(&want));
    }
    for sel in [First, Last, All] {
        assert_eq!(manifest_of(&bulk, sel.clone()), manifest_of(&plain, sel));
    }
    assert_eq!(manifest_of(&bulk, First), "b5 c d1 e1 a5");
    assert_eq!(manifest_of(&bulk, Last), "b5 c a30 e1 d2");
    assert_eq!(
        kinds(
            &bulk
                .put_objects_bulk(COLL, &[v("indicator--b", 5, "z")], &mut load)
                .unwrap()
        ),
        ["conflict"]
    );
}

#[test]
fn a_bulk_load_looks_up_ids_once_another_writer_added_or_the_collection_held_objects() {
    use VersionSel::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    let s = open(&path);
    setup(&s);
    let mut load = BulkLoad::new();
    s.put_objects_bulk(COLL, &[obj("indicator--x", 10)], &mut load)
        .unwrap();
    // Another writer (here another connection to the file, as a command
    // run on a live node's data directory would be) adds an object the
    // load has never seen; the load then stores a newer version of it.
    let other = open(&path);
    other.put_objects(COLL, &[obj("indicator--y", 10)]).unwrap();
    s.put_objects_bulk(COLL, &[obj("indicator--y", 20)], &mut load)
        .unwrap();
    assert_eq!(manifest_of(&s, First), "x10 y10");
    assert_eq!(manifest_of(&s, Last), "x10 y20");

    // A load into a collection that already holds objects.
    let mut load = BulkLoad::new();
    s.put_objects_bulk(
        COLL,
        &[obj("indicator--x", 5), obj("indicator--z", 1)],
        &mut load,
    )
    .unwrap();
    assert_eq!(manifest_of(&s, First), "y10 x5 z1");
    assert_eq!(manifest_of(&s, Last), "x10 y20 z1");
    assert_eq!(s.count_objects(COLL).unwrap(), 5);
}

#[test]
fn collections_are_independent() {
    let (_d, s) = fresh();
    let other = second_collection(&s);
    // The same id and version with different content is no conflict across
    // collections.
    let a = obj_full("indicator--x", "indicator", "2.1", Some(1), "a");
    let b = obj_full("indicator--x", "indicator", "2.1", Some(1), "b");
    assert!(matches!(
        s.put_objects(COLL, std::slice::from_ref(&a)).unwrap()[0],
        PutOutcome::Added(_)
    ));
    assert!(matches!(
        s.put_objects(other, std::slice::from_ref(&b)).unwrap()[0],
        PutOutcome::Added(_)
    ));
    s.put_objects(other, &[obj("indicator--x", 2), obj("indicator--y", 1)])
        .unwrap();
    assert_eq!(labels_m(&s.manifest(COLL, &q()).unwrap()), "x1");
    assert_eq!(labels_m(&s.manifest(other, &q()).unwrap()), "x2 y1");
    assert_eq!(s.objects(COLL, &q()).unwrap().items[0].raw, a.raw);
    assert_eq!(
        s.delete_object(other, "indicator--x", &[], &[], None)
            .unwrap(),
        2
    );
    assert_eq!(s.count_objects(COLL).unwrap(), 1);
    assert_eq!(s.count_objects(other).unwrap(), 1);
    assert_eq!(
        labels_m(&s.versions(COLL, "indicator--x", &q()).unwrap()),
        "x1"
    );
}

// --- paging -------------------------------------------------------------------

/// Follow `next` to the end; returns every item and the number of pages.
fn page_all<T>(
    limit: usize,
    base: Query,
    mut get: impl FnMut(&Query) -> Page<T>,
) -> (Vec<T>, usize) {
    let mut query = Query { limit, ..base };
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let p = get(&query);
        pages += 1;
        assert!(p.items.len() <= limit);
        let done = p.next.is_none();
        if !done {
            assert_eq!(p.items.len(), limit, "a page with a next token is full");
        }
        all.extend(p.items);
        match p.next {
            Some(n) => query.next = Some(n),
            None => break,
        }
    }
    (all, pages)
}

#[test]
fn paging_has_no_gap_and_no_duplicate() {
    let (_d, s) = fresh();
    let n: usize = 5000;
    let mut expected = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(997) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| {
                let ty = if i % 3 == 0 { "malware" } else { "indicator" };
                obj_full(
                    &format!("{ty}--{i:05}"),
                    ty,
                    "2.1",
                    Some(1000 + (i % 2) as i64),
                    "a",
                )
            })
            .collect();
        expected.extend(batch.iter().map(|o| o.id.clone()));
        s.put_objects(COLL, &batch).unwrap();
    }
    for limit in [7, 13, 64, 100, 4999, 5000, 5001] {
        let (items, pages) = page_all(limit, Query::default(), |q| s.objects(COLL, q).unwrap());
        let got: Vec<_> = items.iter().map(|o| o.id.clone()).collect();
        assert_eq!(got, expected, "objects, limit {limit}");
        assert_eq!(pages, n.div_ceil(limit), "limit {limit}");
        assert!(items.windows(2).all(|w| w[0].date_added < w[1].date_added));
        let (items, _) = page_all(limit, Query::default(), |q| s.manifest(COLL, q).unwrap());
        assert_eq!(items.len(), n, "manifest, limit {limit}");
    }
    // Paging with added_after alone (how TAXII clients poll) sees the same.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let p = s
            .manifest(
                COLL,
                &Query {
                    added_after: after,
                    limit: 77,
                    ..Query::default()
                },
            )
            .unwrap();
        if p.items.is_empty() {
            break;
        }
        after = p.items.last().map(|e| e.date_added);
        seen.extend(p.items.into_iter().map(|e| e.id));
    }
    assert_eq!(seen, expected);
    // With a filter the token keeps its place among the filtered rows.
    let want: Vec<_> = expected
        .iter()
        .filter(|i| i.starts_with("malware"))
        .cloned()
        .collect();
    let (items, _) = page_all(
        10,
        Query {
            types: strs(&["malware"]),
            ..Query::default()
        },
        |q| s.manifest(COLL, q).unwrap(),
    );
    assert_eq!(items.into_iter().map(|e| e.id).collect::<Vec<_>>(), want);
}

#[test]
fn garbage_cursor_is_bad_cursor() {
    let (_d, s) = fresh();
    s.put_objects(COLL, &[obj("indicator--1", 1), obj("indicator--2", 1)])
        .unwrap();
    let good = s
        .manifest(
            COLL,
            &Query {
                limit: 1,
                ..Query::default()
            },
        )
        .unwrap()
        .next
        .unwrap();
    let mut tampered = good.clone().into_bytes();
    tampered[10] = if tampered[10] == b'1' { b'2' } else { b'1' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [
        "",
        "garbage",
        "0",
        "../../etc",
        &format!("{good}x"),
        &tampered,
        "ffffffffffffffffff",
    ] {
        let query = Query {
            limit: 10,
            next: Some(bad.to_string()),
            ..Query::default()
        };
        assert!(
            matches!(s.objects(COLL, &query), Err(StoreError::BadCursor)),
            "objects {bad:?}"
        );
        assert!(
            matches!(s.manifest(COLL, &query), Err(StoreError::BadCursor)),
            "manifest {bad:?}"
        );
        assert!(
            matches!(
                s.versions(COLL, "indicator--1", &query),
                Err(StoreError::BadCursor)
            ),
            "versions {bad:?}"
        );
    }
    let p = s
        .manifest(
            COLL,
            &Query {
                limit: 1,
                next: Some(good),
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(p.items[0].id, "indicator--2");
    assert_eq!(p.next, None);
}

#[test]
fn huge_filter_lists_are_invalid_not_a_backend_failure() {
    let (_d, s) = fresh();
    s.put_objects(COLL, &[obj("indicator--5", 1)]).unwrap();
    let many: Vec<String> = (0..20_000).map(|i| format!("indicator--{i}")).collect();
    // Large but allowed: answered from the id index.
    let p = s
        .objects(
            COLL,
            &Query {
                ids: many.clone(),
                ..q()
            },
        )
        .unwrap();
    assert_eq!(labels_o(&p), "51");
    let too_many = Query {
        ids: many.clone(),
        types: many,
        ..q()
    };
    assert!(matches!(
        s.objects(COLL, &too_many),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.manifest(COLL, &too_many),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn unknown_collection_is_not_found() {
    let (_d, s) = fresh();
    assert!(matches!(
        s.objects("nope", &q()),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.manifest("nope", &q()),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.versions("nope", "x--1", &q()),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.count_objects("nope"),
        Err(StoreError::NotFound(_))
    ));
}

// --- concurrency ----------------------------------------------------------------

#[test]
fn concurrent_writers_and_a_polling_reader_see_each_object_once() {
    let (_d, s) = fresh();
    let s = Arc::new(s);
    let writers = 4;
    let batches = 40;
    let per_batch = 25;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..writers {
        let (s, done) = (s.clone(), done.clone());
        handles.push(std::thread::spawn(move || {
            for b in 0..batches {
                let batch: Vec<_> = (0..per_batch)
                    .map(|i| obj(&format!("indicator--{w}-{b}-{i}"), 1))
                    .collect();
                s.put_objects(COLL, &batch).unwrap();
            }
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    let reader = {
        let (s, done) = (s.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = HashSet::new();
            let mut after = None;
            loop {
                // Read the flag before the page: if every writer was done
                // before this page was read, an empty page means the end.
                let finished = done.load(std::sync::atomic::Ordering::SeqCst) == writers;
                let p = s
                    .objects(
                        COLL,
                        &Query {
                            added_after: after,
                            limit: 33,
                            ..Query::default()
                        },
                    )
                    .unwrap();
                if p.items.is_empty() && finished {
                    return seen;
                }
                for o in &p.items {
                    assert!(seen.insert(o.id.clone()), "{} seen twice", o.id);
                    assert!(Some(o.date_added) > after);
                }
                after = p.items.last().map(|o| o.date_added).or(after);
            }
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    let seen = reader.join().unwrap();
    assert_eq!(
        seen.len(),
        writers * batches * per_batch,
        "every object seen exactly once"
    );
}

#[test]
fn reads_proceed_while_a_write_transaction_is_open() {
    // Many readers from many threads at once, each on its own pooled
    // connection, while a writer keeps committing.
    let (_d, s) = fresh();
    let s = Arc::new(s);
    s.put_objects(
        COLL,
        &(0..100)
            .map(|i| obj(&format!("indicator--{i}"), 1))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let w = {
        let s = s.clone();
        std::thread::spawn(move || {
            for b in 0..30 {
                s.put_objects(
                    COLL,
                    &(0..100)
                        .map(|i| obj(&format!("indicator--w{b}-{i}"), 1))
                        .collect::<Vec<_>>(),
                )
                .unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let p = s
                        .objects(
                            COLL,
                            &Query {
                                limit: 50,
                                ..Query::default()
                            },
                        )
                        .unwrap();
                    assert_eq!(p.items.len(), 50);
                }
            })
        })
        .collect();
    w.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(s.count_objects(COLL).unwrap(), 3100);
}

#[test]
fn reads_never_wait_for_an_open_write_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    // Use the store through the trait object the server holds.
    let s: Arc<dyn Store> = Arc::new(open(&path));
    s.create_api_root(&ApiRoot {
        name: "root".into(),
        title: "R".into(),
        description: None,
        max_content_length: 1,
    })
    .unwrap();
    s.create_collection(&Collection {
        id: COLL.into(),
        api_root: "root".into(),
        title: "C".into(),
        description: None,
        alias: None,
    })
    .unwrap();
    s.put_objects(COLL, &[obj("indicator--1", 1)]).unwrap();
    // Another connection takes the write lock and keeps it.
    let mut other = rusqlite::Connection::open(&path).unwrap();
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    tx.execute("INSERT INTO meta (key, value) VALUES ('held', 'yes')", [])
        .unwrap();
    let t = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(s.objects(COLL, &q()).unwrap().items.len(), 1);
        assert_eq!(
            s.meta("held").unwrap(),
            None,
            "uncommitted data is invisible"
        );
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(2),
        "reads waited for the writer"
    );
    tx.commit().unwrap();
    assert_eq!(s.meta("held").unwrap().as_deref(), Some("yes"));
}

// --- records ------------------------------------------------------------------

fn user(name: &str, org: &str) -> User {
    User {
        name: name.into(),
        org: org.into(),
        password_phc: Some("$argon2id$v=19$x".into()),
        is_admin: false,
        generation: 1,
        disabled: false,
    }
}

fn token(id: &str, user: &str, b: u8) -> Token {
    Token {
        id: id.into(),
        user: user.into(),
        sha256: [b; 32],
        label: format!("{id} label"),
        created: 5,
        expires: Some(99),
        scope: TokenScope::ReadOnly,
        revoked: false,
    }
}

#[test]
fn api_roots_and_collections() {
    let (_d, s) = fresh();
    let second = ApiRoot {
        name: "exercise".into(),
        title: "Exercise".into(),
        description: Some("drills".into()),
        max_content_length: 1,
    };
    s.create_api_root(&second).unwrap();
    assert!(matches!(
        s.create_api_root(&second),
        Err(StoreError::AlreadyExists(_))
    ));
    let roots = s.api_roots().unwrap();
    assert_eq!(
        roots.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["root", "exercise"]
    );
    assert_eq!(s.api_root("exercise").unwrap(), Some(second));
    assert_eq!(s.api_root("missing").unwrap(), None);

    let c = |id: &str, root: &str| Collection {
        id: id.into(),
        api_root: root.into(),
        title: format!("t {id}"),
        description: None,
        alias: Some(format!("a-{id}")),
    };
    for id in ["c3", "c1", "c2"] {
        s.create_collection(&c(id, "exercise")).unwrap();
    }
    assert!(matches!(
        s.create_collection(&c("c1", "exercise")),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.create_collection(&c("c9", "missing")),
        Err(StoreError::NotFound(_))
    ));
    let got = s.collections("exercise").unwrap();
    assert_eq!(
        got.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["c3", "c1", "c2"],
        "creation order"
    );
    assert_eq!(s.collections("root").unwrap().len(), 1);
    assert_eq!(
        s.collection("exercise", "c1").unwrap(),
        Some(c("c1", "exercise"))
    );
    assert_eq!(
        s.collection("root", "c1").unwrap(),
        None,
        "a collection lives under one root"
    );
    assert_eq!(s.count_objects("c1").unwrap(), 0);
}

#[test]
fn orgs_users_tokens_grants_meta_status() {
    let (_d, s) = fresh();
    s.create_org(&Organization {
        name: "cert-id".into(),
        title: "CERT".into(),
    })
    .unwrap();
    s.create_org(&Organization {
        name: "cert-my".into(),
        title: "MyCERT".into(),
    })
    .unwrap();
    assert!(matches!(
        s.create_org(&Organization {
            name: "cert-id".into(),
            title: "x".into()
        }),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        s.orgs()
            .unwrap()
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>(),
        ["cert-id", "cert-my"]
    );

    // Users.
    s.create_user(&user("ana", "cert-id")).unwrap();
    s.create_user(&User {
        password_phc: None,
        is_admin: true,
        ..user("budi", "cert-my")
    })
    .unwrap();
    assert!(matches!(
        s.create_user(&user("ana", "cert-id")),
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.create_user(&user("eve", "no-org")),
        Err(StoreError::NotFound(_))
    ));
    s.set_password("ana", "$argon2id$v=19$new").unwrap();
    let ana = s.user("ana").unwrap().unwrap();
    assert_eq!(
        (ana.password_phc.as_deref(), ana.generation),
        (Some("$argon2id$v=19$new"), 2)
    );
    s.set_user_disabled("ana", true).unwrap();
    assert!(s.user("ana").unwrap().unwrap().disabled);
    s.set_user_disabled("ana", false).unwrap();
    assert!(!s.user("ana").unwrap().unwrap().disabled);
    assert!(matches!(
        s.set_password("nobody", "x"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.set_user_disabled("nobody", true),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.user("nobody").unwrap(), None);
    assert_eq!(
        s.users()
            .unwrap()
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        ["ana", "budi"]
    );
    assert_eq!(
        s.user("budi").unwrap().unwrap(),
        User {
            password_phc: None,
            is_admin: true,
            ..user("budi", "cert-my")
        }
    );

    // Tokens.
    s.create_token(&token("t1", "ana", 1)).unwrap();
    s.create_token(&Token {
        scope: TokenScope::Full,
        expires: None,
        ..token("t2", "budi", 2)
    })
    .unwrap();
    s.create_token(&Token {
        scope: TokenScope::WriteOnly,
        ..token("t3", "ana", 3)
    })
    .unwrap();
    assert!(
        matches!(
            s.create_token(&token("t4", "ana", 1)),
            Err(StoreError::AlreadyExists(_))
        ),
        "hash is unique"
    );
    assert!(
        matches!(
            s.create_token(&token("t1", "ana", 9)),
            Err(StoreError::AlreadyExists(_))
        ),
        "id is unique"
    );
    assert!(matches!(
        s.create_token(&token("t5", "nobody", 5)),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.token_by_hash(&[1; 32]).unwrap(),
        Some(token("t1", "ana", 1))
    );
    assert_eq!(
        s.token_by_hash(&[2; 32]).unwrap().unwrap().scope,
        TokenScope::Full
    );
    assert_eq!(s.token_by_hash(&[7; 32]).unwrap(), None);
    assert_eq!(
        s.tokens(Some("ana"))
            .unwrap()
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["t1", "t3"]
    );
    assert_eq!(s.tokens(None).unwrap().len(), 3);
    s.revoke_token("t1").unwrap();
    assert!(s.token_by_hash(&[1; 32]).unwrap().unwrap().revoked);
    assert!(matches!(
        s.revoke_token("nope"),
        Err(StoreError::NotFound(_))
    ));

    // Grants: set, change, remove with the default access.
    let g = |org: &str, read, write| Grant {
        org: org.into(),
        collection: COLL.into(),
        access: Access { read, write },
    };
    s.set_grant(&g("cert-id", true, false)).unwrap();
    s.set_grant(&g("cert-my", true, true)).unwrap();
    s.set_grant(&g("cert-id", true, true)).unwrap();
    assert_eq!(
        s.grants(None).unwrap(),
        vec![g("cert-id", true, true), g("cert-my", true, true)]
    );
    s.set_grant(&g("cert-my", false, false)).unwrap();
    assert_eq!(s.grants(Some("cert-my")).unwrap(), vec![]);
    assert_eq!(
        s.grants(Some("cert-id")).unwrap(),
        vec![g("cert-id", true, true)]
    );
    assert!(matches!(
        s.set_grant(&g("no-org", true, false)),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.set_grant(&Grant {
            collection: "no-coll".into(),
            ..g("cert-id", true, false)
        }),
        Err(StoreError::NotFound(_))
    ));

    // Meta.
    assert_eq!(s.meta("node.name").unwrap(), None);
    s.set_meta("node.name", "id-1").unwrap();
    s.set_meta("node.name", "id-2").unwrap();
    assert_eq!(s.meta("node.name").unwrap().as_deref(), Some("id-2"));

    // Status: written, replaced, per API root.
    let mut st = status("s1");
    s.put_status(&st).unwrap();
    st.status = "complete".into();
    st.pendings.clear();
    s.put_status(&st).unwrap();
    assert_eq!(s.status("root", "s1").unwrap(), Some(st));
    assert_eq!(s.status("other", "s1").unwrap(), None);
}

/// A batch and its status are one transaction: the status sees the
/// batch's outcomes and is stored with it, and a status that cannot be made
/// leaves neither the objects nor the status behind.
#[test]
fn a_batch_and_its_status_are_stored_together_or_not_at_all() {
    let (_d, s) = fresh();
    s.put_objects(COLL, &[obj("indicator--1", 1)]).unwrap();
    let batch = [obj("indicator--1", 1), obj("indicator--2", 1)];
    let (outcomes, st) = s
        .put_objects_with_status(
            COLL,
            &batch,
            Box::new(|outcomes: &[PutOutcome]| {
                let mut st = status("with-batch");
                st.status = "complete".into();
                st.total_count = outcomes.len() as u64;
                st.successes = outcomes
                    .iter()
                    .zip(["indicator--1", "indicator--2"])
                    .map(|(o, id)| StatusDetail {
                        id: id.into(),
                        version: "2024-01-01T00:00:00.000Z".into(),
                        message: matches!(o, PutOutcome::Unchanged(_)).then(|| "unchanged".into()),
                    })
                    .collect();
                st.failures.clear();
                st.pendings.clear();
                Ok(Some(st))
            }),
        )
        .unwrap();
    let st = st.unwrap();
    assert!(matches!(
        outcomes[..],
        [PutOutcome::Unchanged(_), PutOutcome::Added(_)]
    ));
    assert_eq!(st.successes[0].message.as_deref(), Some("unchanged"));
    assert_eq!(st.successes[1].message, None);
    assert_eq!(s.status("root", "with-batch").unwrap(), Some(st));
    assert_eq!(s.count_objects(COLL).unwrap(), 2);

    // Declined: the objects are stored, no status is.
    let (outcomes, st) = s
        .put_objects_with_status(
            COLL,
            &[obj("indicator--4", 1)],
            Box::new(|_: &[PutOutcome]| Ok(None)),
        )
        .unwrap();
    assert!(matches!(outcomes[..], [PutOutcome::Added(_)]));
    assert_eq!(st, None);
    assert_eq!(s.count_objects(COLL).unwrap(), 3);

    let err = s
        .put_objects_with_status(
            COLL,
            &[obj("indicator--3", 1)],
            Box::new(|_: &[PutOutcome]| Err(StoreError::Invalid("no status".into()))),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(s.count_objects(COLL).unwrap(), 3);
    let mut q = q();
    q.ids = strs(&["indicator--3"]);
    assert!(s.objects(COLL, &q).unwrap().items.is_empty());
}

fn status(id: &str) -> Status {
    let d = |id: &str, m: Option<&str>| StatusDetail {
        id: id.into(),
        version: "2024-01-01T00:00:00.000Z".into(),
        message: m.map(Into::into),
    };
    Status {
        id: id.into(),
        api_root: "root".into(),
        owner_org: "cert-id".into(),
        status: "pending".into(),
        request_timestamp: 1_700_000_000_000_000,
        total_count: 3,
        successes: vec![d("indicator--1", None)],
        failures: vec![d("indicator--2", Some("conflict"))],
        pendings: vec![d("indicator--3", None)],
    }
}

// --- lifecycle ------------------------------------------------------------------

#[test]
fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    let last;
    {
        let s = open(&path);
        setup(&s);
        s.create_org(&Organization {
            name: "o".into(),
            title: "O".into(),
        })
        .unwrap();
        s.create_user(&user("u", "o")).unwrap();
        s.create_token(&token("t", "u", 4)).unwrap();
        s.set_grant(&Grant {
            org: "o".into(),
            collection: COLL.into(),
            access: Access {
                read: true,
                write: false,
            },
        })
        .unwrap();
        s.set_meta("k", "v").unwrap();
        s.put_status(&status("s")).unwrap();
        let out = s
            .put_objects(
                COLL,
                &[
                    obj("indicator--1", 1),
                    obj("indicator--1", 2),
                    obj("indicator--2", 1),
                ],
            )
            .unwrap();
        let PutOutcome::Added(t) = out[2] else {
            panic!()
        };
        last = t;
    }
    let s = open(&path);
    assert_eq!(s.api_roots().unwrap().len(), 1);
    assert_eq!(s.collections("root").unwrap().len(), 1);
    assert_eq!(s.orgs().unwrap().len(), 1);
    assert_eq!(s.user("u").unwrap(), Some(user("u", "o")));
    assert_eq!(s.token_by_hash(&[4; 32]).unwrap(), Some(token("t", "u", 4)));
    assert_eq!(s.grants(None).unwrap().len(), 1);
    assert_eq!(s.meta("k").unwrap().as_deref(), Some("v"));
    assert_eq!(s.status("root", "s").unwrap(), Some(status("s")));
    assert_eq!(s.count_objects(COLL).unwrap(), 3);
    assert_eq!(labels_m(&s.manifest(COLL, &q()).unwrap()), "12 21");
    // date_added keeps increasing after a restart.
    let out = s.put_objects(COLL, &[obj("indicator--3", 1)]).unwrap();
    assert!(matches!(out[0], PutOutcome::Added(t) if t > last));
}

#[test]
fn migrations_on_a_fresh_file_and_refusal_of_newer_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    drop(open(&path));
    let version = |p: &Path| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&path), SqliteStore::schema_version());
    assert!(SqliteStore::schema_version() >= 1);
    let journal: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    // Opening again applies nothing and keeps the data.
    {
        let s = open(&path);
        setup(&s);
    }
    let s = open(&path);
    assert_eq!(s.api_roots().unwrap().len(), 1);
    drop(s);
    // A file from a newer program is refused, untouched.
    let newer = SqliteStore::schema_version() + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    match SqliteStore::open(&path, SqliteOptions::default()) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (newer, SqliteStore::schema_version()))
        }
        other => panic!("{:?}", other.err()),
    }
    assert_eq!(version(&path), newer);
    // Not a database at all: a clear backend error, not a panic.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database file, not at all, no").unwrap();
    assert!(matches!(
        SqliteStore::open(&junk, SqliteOptions::default()),
        Err(StoreError::Backend(_))
    ));
}

#[test]
fn synchronous_normal_is_an_option() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    let s = SqliteStore::open(
        &path,
        SqliteOptions {
            synchronous: Synchronous::Normal,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    setup(&s);
    s.put_objects(COLL, &[obj("indicator--1", 1)]).unwrap();
    assert_eq!(s.count_objects(COLL).unwrap(), 1);
}

#[test]
fn backup_while_writing_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir.path().join("node.db")));
    setup(&s);
    s.put_objects(
        COLL,
        &(0..2000)
            .map(|i| obj(&format!("indicator--seed-{i}"), 1))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut b = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // Each batch adds an object and a second version of it, so a
                // torn copy would show a version without its object's flags.
                s.put_objects(
                    COLL,
                    &[
                        obj(&format!("indicator--w{b}"), 1),
                        obj(&format!("indicator--w{b}"), 2),
                    ],
                )
                .unwrap();
                b += 1;
            }
            b
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = s.count_objects(COLL).unwrap();
    let copy = dir.path().join("copy.db");
    s.backup(&copy).unwrap();
    let after = s.count_objects(COLL).unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let batches = writer.join().unwrap();
    assert!(batches > 0);
    assert!(matches!(s.backup(&copy), Err(StoreError::AlreadyExists(_))));

    let c = open(&copy);
    let n = c.count_objects(COLL).unwrap();
    assert!(before <= n && n <= after, "{before} <= {n} <= {after}");
    assert_eq!(n % 2, 0, "whole batches only");
    let (all, _) = page_all(
        500,
        Query {
            versions: vec![VersionSel::All],
            ..Query::default()
        },
        |q| c.manifest(COLL, q).unwrap(),
    );
    assert_eq!(all.len() as u64, n);
    let (last, _) = page_all(500, Query::default(), |q| c.objects(COLL, q).unwrap());
    assert_eq!(
        last.len() as u64,
        2000 + (n - 2000) / 2,
        "one last version per object"
    );
    assert!(
        last.iter()
            .filter(|o| o.id.contains("--w"))
            .all(|o| o.version == "v2")
    );
    // The copy is a working node database.
    c.put_objects(COLL, &[obj("indicator--after", 1)]).unwrap();
    assert_eq!(c.collections("root").unwrap().len(), 1);
}

// --- property test against an in-memory oracle ------------------------------------

/// The semantics of the object store written as plainly as possible: a list
/// of rows, with first/last computed on demand. The property test drives the
/// real store and this model with the same operations and compares every
/// answer.
mod oracle {
    use super::*;
    use proptest::prelude::*;

    const IDS: [&str; 5] = [
        "indicator--p0",
        "malware--p1",
        "indicator--p2",
        "file--p3",
        "malware--p4",
    ];
    const SPECS: [&str; 2] = ["2.0", "2.1"];

    fn object_type(id: &str) -> &str {
        id.split("--").next().unwrap_or(id)
    }

    /// Release labels the posts carry; the store interns each as a class.
    const LABELS: [&str; 3] = ["", "L1", "L2"];
    const TYPES: [&str; 3] = ["indicator", "malware", "file"];

    #[derive(Debug, Clone)]
    pub struct Post {
        id: usize,
        version: Option<i64>,
        tag: u8,
        spec: usize,
        label: usize,
    }

    /// What a reader may see: per label, no type limit (0), only one type
    /// (1) or all but one type (2).
    type Visible = Option<Vec<(usize, u8, usize)>>;

    impl Post {
        fn new_object(&self) -> NewObject {
            let id = IDS[self.id];
            NewObject {
                release_label: LABELS[self.label].to_string(),
                ..obj_full(
                    id,
                    object_type(id),
                    SPECS[self.spec],
                    self.version,
                    &self.tag.to_string(),
                )
            }
        }
    }

    #[derive(Debug, Clone)]
    pub struct Filter {
        added_after: Option<usize>,
        ids: Vec<usize>,
        types: Vec<&'static str>,
        versions: Vec<VersionSel>,
        specs: Vec<usize>,
        limit: usize,
        visible: Visible,
    }

    #[derive(Debug, Clone)]
    pub enum Op {
        Put(Vec<Post>),
        Delete {
            id: usize,
            versions: Vec<VersionSel>,
            specs: Vec<usize>,
            visible: Visible,
        },
        Query(Filter),
    }

    #[derive(Debug, Clone)]
    struct Row {
        id: String,
        version: Option<i64>,
        date: Micros,
        spec: String,
        digest: [u8; 32],
        label: String,
    }

    impl Row {
        fn key(&self) -> (Micros, Micros) {
            (self.version.unwrap_or(self.date), self.date)
        }
    }

    #[derive(Default)]
    struct Model {
        rows: Vec<Row>,
        last_date: Micros,
    }

    impl Model {
        /// First and last are the reader's: among the versions it may see.
        fn is_first(&self, r: &Row, visible: &Visible) -> bool {
            self.rows
                .iter()
                .filter(|o| o.id == r.id && sees(visible, o))
                .all(|o| o.key() >= r.key())
        }
        fn is_last(&self, r: &Row, visible: &Visible) -> bool {
            self.rows
                .iter()
                .filter(|o| o.id == r.id && sees(visible, o))
                .all(|o| o.key() <= r.key())
        }
        fn selected(&self, r: &Row, sels: &[VersionSel], visible: &Visible) -> bool {
            sels.iter().any(|s| match s {
                VersionSel::All => true,
                VersionSel::First => self.is_first(r, visible),
                VersionSel::Last => self.is_last(r, visible),
                VersionSel::At(m) => r.version.unwrap_or(r.date) == *m,
            })
        }

        /// Apply a put given the dates the store assigned (checked to be
        /// exactly the ones the model expects to be new).
        fn put(&mut self, posts: &[NewObject], got: &[PutOutcome]) -> Vec<PutOutcome> {
            let mut want = Vec::new();
            for (o, g) in posts.iter().zip(got) {
                let same = self.rows.iter().find(|r| {
                    r.id == o.id
                        && match o.version_micros {
                            None => r.version.is_none(),
                            Some(v) => r.version == Some(v),
                        }
                });
                match same {
                    Some(r) if r.digest == o.digest => want.push(PutOutcome::Unchanged(r.date)),
                    Some(_) => want.push(PutOutcome::Conflict),
                    None => {
                        // The date is the store's to choose; the model only
                        // demands that it increase.
                        let date = match g {
                            PutOutcome::Added(d) if *d > self.last_date => *d,
                            _ => self.last_date + 1,
                        };
                        self.last_date = date;
                        self.rows.push(Row {
                            id: o.id.clone(),
                            version: o.version_micros,
                            date,
                            spec: o.spec_version.clone(),
                            digest: o.digest,
                            label: o.release_label.clone(),
                        });
                        want.push(PutOutcome::Added(date));
                    }
                }
            }
            want
        }

        fn delete(
            &mut self,
            id: &str,
            sels: &[VersionSel],
            specs: &[String],
            visible: &Visible,
        ) -> u64 {
            let all = [VersionSel::All];
            let sels = if sels.is_empty() { &all[..] } else { sels };
            let gone: Vec<bool> = self
                .rows
                .iter()
                .map(|r| {
                    r.id == id
                        && sees(visible, r)
                        && self.selected(r, sels, visible)
                        && (specs.is_empty() || specs.contains(&r.spec))
                })
                .collect();
            let n = gone.iter().filter(|g| **g).count();
            let mut i = 0;
            self.rows.retain(|_| {
                i += 1;
                !gone[i - 1]
            });
            n as u64
        }

        /// `(id, version micros, date_added)` of every row a query selects, in
        /// date_added order.
        fn query(
            &self,
            q: &Query,
            visible: &Visible,
            id: Option<&str>,
            default: VersionSel,
        ) -> Vec<(String, Micros, Micros)> {
            let def = [default];
            let sels = if q.versions.is_empty() {
                &def[..]
            } else {
                &q.versions[..]
            };
            let mut out: Vec<_> = self
                .rows
                .iter()
                .filter(|r| q.added_after.is_none_or(|a| r.date > a))
                .filter(|r| id.is_none_or(|i| r.id == i))
                .filter(|r| q.ids.is_empty() || q.ids.contains(&r.id))
                .filter(|r| q.types.is_empty() || q.types.iter().any(|t| t == object_type(&r.id)))
                .filter(|r| q.spec_versions.is_empty() || q.spec_versions.contains(&r.spec))
                .filter(|r| sees(visible, r))
                .filter(|r| self.selected(r, sels, visible))
                .map(|r| (r.id.clone(), r.version.unwrap_or(r.date), r.date))
                .collect();
            out.sort_by_key(|x| x.2);
            out
        }
    }

    fn sees(visible: &Visible, r: &Row) -> bool {
        let Some(v) = visible else { return true };
        let ty = object_type(&r.id);
        v.iter().any(|(l, mode, t)| {
            LABELS[*l] == r.label
                && match mode {
                    0 => true,
                    1 => ty == TYPES[*t],
                    _ => ty != TYPES[*t],
                }
        })
    }

    /// The store's form of a reader's visibility: labels become the classes
    /// the store interned (a label never stored has no class and so
    /// contributes nothing).
    fn scopes(s: &SqliteStore, visible: &Visible) -> Option<Vec<ClassScope>> {
        let v = visible.as_ref()?;
        let classes = s.release_classes(COLL).unwrap();
        Some(
            v.iter()
                .filter_map(|(l, mode, t)| {
                    let class = classes.iter().find(|c| c.label == LABELS[*l])?.class;
                    let types = match mode {
                        0 => TypeScope::Any,
                        1 => TypeScope::Only(vec![TYPES[*t].to_string()]),
                        _ => TypeScope::Except(vec![TYPES[*t].to_string()]),
                    };
                    Some(ClassScope { class, types })
                })
                .collect(),
        )
    }

    fn visible() -> impl Strategy<Value = Visible> {
        prop::option::of(prop::collection::vec(
            (0..LABELS.len(), 0u8..3, 0..TYPES.len()),
            0..3,
        ))
    }

    /// Version micros of a manifest entry: the test objects' version strings
    /// are `v<micros>`; versionless ones are their date_added.
    fn entry_key(id: &str, version: &str, date: Micros) -> (String, Micros, Micros) {
        let vm = version
            .strip_prefix('v')
            .and_then(|v| v.parse().ok())
            .unwrap_or(date);
        (id.to_string(), vm, date)
    }

    fn sel() -> impl Strategy<Value = VersionSel> {
        prop_oneof![
            Just(VersionSel::First),
            Just(VersionSel::Last),
            Just(VersionSel::All),
            (0i64..5).prop_map(VersionSel::At)
        ]
    }

    fn post() -> impl Strategy<Value = Post> {
        (
            0..IDS.len(),
            prop::option::weighted(0.8, 0i64..5),
            0u8..2,
            0..2usize,
            0..LABELS.len(),
        )
            .prop_map(|(id, version, tag, spec, label)| Post {
                id,
                version,
                tag,
                spec,
                label,
            })
    }

    fn op() -> impl Strategy<Value = Op> {
        let filter = (
            prop::option::of(0usize..64),
            prop::collection::vec(0..IDS.len(), 0..3),
            prop::collection::vec(
                prop::sample::select(vec!["indicator", "malware", "file", "tool"]),
                0..3,
            ),
            prop::collection::vec(sel(), 0..3),
            prop::collection::vec(0..2usize, 0..2),
            1usize..6,
            visible(),
        )
            .prop_map(
                |(added_after, ids, types, versions, specs, limit, visible)| Filter {
                    added_after,
                    ids,
                    types,
                    versions,
                    specs,
                    limit,
                    visible,
                },
            );
        prop_oneof![
            4 => prop::collection::vec(post(), 1..8).prop_map(Op::Put),
            1 => (0..IDS.len(), prop::collection::vec(sel(), 0..3), prop::collection::vec(0..2usize, 0..2), visible()).prop_map(|(id, versions, specs, visible)| Op::Delete { id, versions, specs, visible }),
            2 => filter.prop_map(Op::Query),
        ]
    }

    fn check_queries(s: &SqliteStore, m: &Model, f: &Filter) {
        let dates: Vec<Micros> = m.rows.iter().map(|r| r.date).collect();
        let q = Query {
            added_after: f.added_after.and_then(|i| {
                if dates.is_empty() {
                    None
                } else {
                    Some(dates[i % dates.len()])
                }
            }),
            ids: f.ids.iter().map(|i| IDS[*i].to_string()).collect(),
            types: f.types.iter().map(|t| t.to_string()).collect(),
            versions: f.versions.clone(),
            spec_versions: f.specs.iter().map(|i| SPECS[*i].to_string()).collect(),
            limit: f.limit,
            next: None,
            visible: scopes(s, &f.visible),
            rating: None,
        };
        let want = m.query(&q, &f.visible, None, VersionSel::Last);
        let (objects, _) = page_all(f.limit, q.clone(), |q| s.objects(COLL, q).unwrap());
        let got: Vec<_> = objects
            .iter()
            .map(|o| entry_key(&o.id, &o.version, o.date_added))
            .collect();
        assert_eq!(got, want, "objects {q:?}");
        let (manifest, _) = page_all(f.limit, q.clone(), |q| s.manifest(COLL, q).unwrap());
        let got: Vec<_> = manifest
            .iter()
            .map(|e| entry_key(&e.id, &e.version, e.date_added))
            .collect();
        assert_eq!(got, want, "manifest {q:?}");
        for id in IDS {
            let want = m.query(&q, &f.visible, Some(id), VersionSel::All);
            let (versions, _) = page_all(f.limit, q.clone(), |q| s.versions(COLL, id, q).unwrap());
            let got: Vec<_> = versions
                .iter()
                .map(|e| entry_key(&e.id, &e.version, e.date_added))
                .collect();
            assert_eq!(got, want, "versions of {id} {q:?}");
        }
    }

    proptest! {
        // 64 cases by default; `PROPTEST_CASES=n` runs a deeper search.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
            ..ProptestConfig::default()
        })]

        #[test]
        fn store_matches_the_oracle(ops in prop::collection::vec(op(), 1..40)) {
            let (_d, s) = fresh();
            let mut m = Model::default();
            for op in &ops {
                match op {
                    Op::Put(posts) => {
                        let objs: Vec<_> = posts.iter().map(Post::new_object).collect();
                        let got = s.put_objects(COLL, &objs).unwrap();
                        let want = m.put(&objs, &got);
                        prop_assert_eq!(got, want);
                    }
                    Op::Delete { id, versions, specs, visible } => {
                        let specs: Vec<String> = specs.iter().map(|i| SPECS[*i].to_string()).collect();
                        let sc = scopes(&s, visible);
                        let got = s.delete_object(COLL, IDS[*id], versions, &specs, sc.as_deref()).unwrap();
                        prop_assert_eq!(got, m.delete(IDS[*id], versions, &specs, visible));
                    }
                    Op::Query(f) => check_queries(&s, &m, f),
                }
                prop_assert_eq!(s.count_objects(COLL).unwrap(), m.rows.len() as u64);
            }
            // A final sweep with the plain filters.
            for versions in [vec![], vec![VersionSel::All], vec![VersionSel::First], vec![VersionSel::First, VersionSel::Last]] {
                check_queries(&s, &m, &Filter { added_after: None, ids: vec![], types: vec![], versions: versions.clone(), specs: vec![], limit: 3, visible: None });
                check_queries(&s, &m, &Filter { added_after: None, ids: vec![], types: vec![], versions, specs: vec![], limit: 2, visible: Some(vec![(1, 0, 0), (2, 2, 0)]) });
            }
        }
    }
}

/// Observable values point at the version that carries them, whatever
/// else the write records for it (an indicator adds a change-sequence row
/// in the same transaction): an exact-value search finds that version and
/// no other.
#[test]
fn observable_values_index_their_own_versions() {
    let (_d, s) = fresh();
    let with = |mut o: NewObject, values: &[&str]| {
        o.observables = values.iter().map(|v| v.to_string()).collect();
        o
    };
    s.put_objects(
        COLL,
        &[
            with(obj("indicator--a", 1), &["10.0.0.1"]),
            with(
                obj_full("malware--m", "malware", "2.1", Some(1), "a"),
                &["10.0.0.2"],
            ),
            with(obj("indicator--c", 1), &["evil.example", "10.0.0.3"]),
        ],
    )
    .unwrap();
    let classes = s.release_classes(COLL).unwrap();
    let visible: Vec<ClassScope> = classes
        .iter()
        .map(|c| ClassScope {
            class: c.class,
            types: TypeScope::Any,
        })
        .collect();
    let found = |v: &str| {
        let hits = s
            .search(
                COLL,
                &visible,
                &Search {
                    value: Some(v.into()),
                    limit: 10,
                    ..Search::default()
                },
            )
            .unwrap();
        hits.into_iter().map(|o| o.id).collect::<Vec<_>>()
    };
    assert_eq!(found("10.0.0.1"), ["indicator--a"]);
    assert_eq!(found("10.0.0.2"), ["malware--m"]);
    assert_eq!(found("EVIL.example"), ["indicator--c"]);
    assert_eq!(found("10.0.0.3"), ["indicator--c"]);
    assert!(found("10.0.0.4").is_empty());

    // A value is matched whole, whatever characters it holds: not by a
    // word of it, not by a prefix, and a value made of the same words
    // in another arrangement is another value.
    s.put_objects(
        COLL,
        &[
            with(
                obj("indicator--u", 1),
                &["http://evil.example/a b?c=d&e", "c:\\windows\\évil.exe"],
            ),
            with(obj("indicator--w", 1), &["http://evil.example/a"]),
        ],
    )
    .unwrap();
    assert_eq!(found("http://evil.example/a b?c=d&e"), ["indicator--u"]);
    assert_eq!(found("C:\\Windows\\évil.exe"), ["indicator--u"]);
    assert_eq!(found("http://evil.example/a"), ["indicator--w"]);
    for part in [
        "http",
        "evil",
        "example",
        "b?c=d&e",
        "a b",
        "évil.exe",
        "\"quoted\" OR x",
    ] {
        assert!(found(part).is_empty(), "{part:?} is not a value stored");
    }

    // Deleting an object takes its values out of the index.
    s.delete_object(COLL, "indicator--u", &[], &[], None)
        .unwrap();
    assert!(found("http://evil.example/a b?c=d&e").is_empty());
    assert_eq!(found("http://evil.example/a"), ["indicator--w"]);
}

#[test]
fn indicator_change_sequence_follows_every_write() {
    let (_d, s) = fresh();
    let other = second_collection(&s);
    assert_eq!(s.indicator_seq().unwrap(), 0);
    s.put_objects(COLL, &[obj("indicator--a", 1), obj("indicator--b", 1)])
        .unwrap();
    // Other types do not enter the sequence.
    s.put_objects(
        COLL,
        &[obj_full("malware--m", "malware", "2.1", Some(1), "a")],
    )
    .unwrap();
    s.put_objects(other, &[obj("indicator--a", 5)]).unwrap();
    // An idempotent re-post changes nothing and logs nothing.
    s.put_objects(COLL, &[obj("indicator--b", 1)]).unwrap();
    let ids = |v: Vec<(i64, String)>| v.into_iter().map(|(_, id)| id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.indicator_changes(0, 100).unwrap()),
        ["indicator--a", "indicator--b", "indicator--a"]
    );
    let seq = s.indicator_seq().unwrap();
    // The newest version over all collections wins.
    assert!(
        s.latest_version("indicator--a")
            .unwrap()
            .unwrap()
            .contains("v5")
    );
    let mut seen = Vec::new();
    assert_eq!(
        s.latest_indicators(&mut |raw| seen.push(raw.to_string()))
            .unwrap(),
        seq
    );
    assert_eq!(seen.len(), 2);
    let a: Vec<&String> = seen.iter().filter(|r| r.contains("indicator--a")).collect();
    assert_eq!(a.len(), 1, "{seen:?}");
    assert!(a[0].contains("v5"), "{seen:?}");
    assert!(seen.iter().any(|r| r.contains("indicator--b")), "{seen:?}");
    // A deletion is a change too; the id's newest version is then the older one.
    s.delete_object(other, "indicator--a", &[], &[], None)
        .unwrap();
    let after = s.indicator_changes(seq, 100).unwrap();
    assert_eq!(ids(after.clone()), ["indicator--a"]);
    assert!(after[0].0 > seq);
    assert!(
        s.latest_version("indicator--a")
            .unwrap()
            .unwrap()
            .contains("v1")
    );
    s.delete_object(COLL, "indicator--a", &[], &[], None)
        .unwrap();
    assert_eq!(s.latest_version("indicator--a").unwrap(), None);
    // Sequence numbers are never reused, even after the newest row goes.
    let last = s.indicator_seq().unwrap();
    s.put_objects(COLL, &[obj("indicator--c", 1)]).unwrap();
    assert!(s.indicator_seq().unwrap() > last);
}

/// The snapshot takes the newest version of each indicator by version,
/// whichever collection holds it and whichever was stored first; other
/// types and older versions stay out.
#[test]
fn the_indicator_snapshot_is_the_newest_version_of_each_indicator() {
    let (_d, s) = fresh();
    let other = second_collection(&s);
    // Newest first, then an older version elsewhere; then the reverse.
    s.put_objects(COLL, &[obj("indicator--d", 90), obj("indicator--e", 10)])
        .unwrap();
    s.put_objects(other, &[obj("indicator--d", 30), obj("indicator--e", 70)])
        .unwrap();
    s.put_objects(COLL, &[obj("indicator--e", 40)]).unwrap();
    s.put_objects(
        COLL,
        &[obj_full("malware--m", "malware", "2.1", Some(99), "a")],
    )
    .unwrap();
    let mut seen = Vec::new();
    s.latest_indicators(&mut |raw| seen.push(raw.to_string()))
        .unwrap();
    seen.sort();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].contains("indicator--d") && seen[0].contains("v90"),
        "{seen:?}"
    );
    assert!(
        seen[1].contains("indicator--e") && seen[1].contains("v70"),
        "{seen:?}"
    );
}

#[test]
fn relabelling_recomputes_the_readers_first_and_last() {
    let (_d, s) = fresh();
    // Stored before labels: every version in class 0.
    s.put_objects(
        COLL,
        &[
            obj_full("indicator--r", "indicator", "2.1", Some(1), "old"),
            obj_full("indicator--r", "indicator", "2.1", Some(2), "new"),
        ],
    )
    .unwrap();
    let n = s
        .relabel_unlabelled(
            &mut |raw| {
                if raw.contains("\"old\"") {
                    "OLD".into()
                } else {
                    "NEW".into()
                }
            },
            1,
        )
        .unwrap();
    assert_eq!(n, 2);
    let classes = s.release_classes(COLL).unwrap();
    let class = |l: &str| classes.iter().find(|c| c.label == l).unwrap().class;
    let only = |l: &str| {
        Some(vec![ClassScope {
            class: class(l),
            types: TypeScope::Any,
        }])
    };
    let last_for = |visible| {
        s.objects(
            COLL,
            &Query {
                limit: 10,
                visible,
                ..Query::default()
            },
        )
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.version)
        .collect::<Vec<_>>()
    };
    // Each reader's last is the newest version it may see.
    assert_eq!(last_for(only("OLD")), ["v1"]);
    assert_eq!(last_for(only("NEW")), ["v2"]);
    assert_eq!(last_for(None), ["v2"]);
    // Nothing is left unlabelled, so a second pass changes nothing.
    assert_eq!(s.relabel_unlabelled(&mut |_| "X".into(), 10).unwrap(), 0);
}

#[test]
fn concurrent_writers_each_get_their_own_outcomes() {
    // Writers released together, round after round: each gets exactly what
    // it would alone, a batch that fails leaves the others stored, and
    // every collection's `date_added` stays strictly increasing.
    let (_d, s) = fresh();
    let other = second_collection(&s);
    let s = Arc::new(s);
    let (threads, rounds, per_batch) = (6, 25, 20);
    let gate = Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (s, gate) = (s.clone(), gate.clone());
            std::thread::spawn(move || {
                for r in 0..rounds {
                    gate.wait();
                    match t % 3 {
                        0 => {
                            let batch: Vec<_> = (0..per_batch)
                                .map(|i| obj(&format!("indicator--{t}-{r}-{i}"), 1))
                                .collect();
                            let out = s.put_objects(COLL, &batch).unwrap();
                            assert_eq!(out.len(), per_batch);
                            assert!(out.iter().all(|o| matches!(o, PutOutcome::Added(_))));
                        }
                        1 => {
                            let err = s
                                .put_objects("no-such-collection", &[obj("indicator--x", 1)])
                                .unwrap_err();
                            assert!(matches!(err, StoreError::NotFound(_)), "{err}");
                        }
                        _ => {
                            // A new object, the previous round's again
                            // (unchanged), and a conflicting copy of it.
                            let id = |r: usize| format!("indicator--{t}-other-{r}");
                            let mut batch =
                                vec![obj_full(&id(r), "indicator", "2.1", Some(1), "a")];
                            if r > 0 {
                                batch.push(obj_full(&id(r - 1), "indicator", "2.1", Some(1), "a"));
                                batch.push(obj_full(&id(r - 1), "indicator", "2.1", Some(1), "b"));
                            }
                            let out = s.put_objects(other, &batch).unwrap();
                            assert!(matches!(out[0], PutOutcome::Added(_)), "{out:?}");
                            if r > 0 {
                                assert!(matches!(out[1], PutOutcome::Unchanged(_)), "{out:?}");
                                assert!(matches!(out[2], PutOutcome::Conflict), "{out:?}");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for (c, n) in [(COLL, 2 * rounds * per_batch), (other, 2 * rounds)] {
        let (all, _) = page_all(1000, q(), |q| s.objects(c, q).unwrap());
        assert_eq!(all.len(), n, "{c}");
        assert!(all.windows(2).all(|w| w[0].date_added < w[1].date_added));
    }
}

// --- the catalog across processes ---------------------------------------------

/// The store keeps the catalog tables in memory; another process writing the
/// same file (the command line beside a serving node) is seen from the very
/// next read: new records, a revoked token, a changed password, a withdrawn
/// grant, a new release class, a policy setting.
#[test]
fn catalog_changes_made_by_another_connection_count_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    let node = open(&path);
    setup(&node);
    let cli = open(&path);
    let generation = || -> i64 {
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT gen FROM catalog_generation", [], |r| r.get(0))
            .unwrap()
    };

    // The node has read (and kept) every catalog table.
    assert_eq!(node.orgs().unwrap(), []);
    assert_eq!(node.user("ana").unwrap(), None);
    assert_eq!(node.token_by_hash(&[7; 32]).unwrap(), None);
    assert_eq!(node.grants(None).unwrap(), []);
    assert_eq!(node.collections("root").unwrap().len(), 1);
    assert_eq!(node.release_classes(COLL).unwrap(), []);
    assert_eq!(node.meta("policy.accepted").unwrap(), None);

    cli.create_org(&Organization {
        name: "cert-id".into(),
        title: "CERT".into(),
    })
    .unwrap();
    cli.create_user(&user("ana", "cert-id")).unwrap();
    cli.create_token(&token("t7", "ana", 7)).unwrap();
    let other = second_collection(&cli);
    cli.set_grant(&Grant {
        org: "cert-id".into(),
        collection: other.into(),
        access: Access {
            read: true,
            write: false,
        },
    })
    .unwrap();
    cli.set_meta("policy.accepted", "{}").unwrap();
    let mut labelled = obj("indicator--00000000-0000-4000-8000-000000000001", 1);
    labelled.release_label = "tlp:green".into();
    cli.put_objects(COLL, &[labelled]).unwrap();

    assert_eq!(node.orgs().unwrap().len(), 1);
    assert_eq!(node.user("ana").unwrap(), Some(user("ana", "cert-id")));
    assert_eq!(node.token_by_hash(&[7; 32]).unwrap().unwrap().id, "t7");
    assert_eq!(node.grants(Some("cert-id")).unwrap().len(), 1);
    assert_eq!(node.collection("root", other).unwrap().unwrap().title, "B");
    assert_eq!(
        node.release_classes(COLL)
            .unwrap()
            .iter()
            .map(|c| c.label.as_str())
            .collect::<Vec<_>>(),
        ["tlp:green"]
    );
    assert_eq!(node.meta("policy.accepted").unwrap().as_deref(), Some("{}"));

    cli.revoke_token("t7").unwrap();
    assert!(node.token_by_hash(&[7; 32]).unwrap().unwrap().revoked);
    cli.set_password("ana", "$argon2id$v=19$new").unwrap();
    assert_eq!(node.user("ana").unwrap().unwrap().generation, 2);
    cli.set_user_disabled("ana", true).unwrap();
    assert!(node.user("ana").unwrap().unwrap().disabled);
    cli.set_grant(&Grant {
        org: "cert-id".into(),
        collection: other.into(),
        access: Access::default(),
    })
    .unwrap();
    assert_eq!(node.grants(Some("cert-id")).unwrap(), []);

    // What is not the catalog leaves its generation alone: more objects of
    // a class the collection already holds (and the collection's counters
    // they move), a status, other meta keys.
    let before = generation();
    let mut more = obj("indicator--00000000-0000-4000-8000-000000000002", 1);
    more.release_label = "tlp:green".into();
    cli.put_objects(COLL, &[more]).unwrap();
    cli.put_status(&status("s-1")).unwrap();
    cli.set_meta("sighting:x", "y").unwrap();
    assert_eq!(generation(), before);
    cli.set_meta("policy.accepted", "{\"a\":1}").unwrap();
    assert_eq!(generation(), before + 1);
    assert_eq!(
        node.meta("policy.accepted").unwrap().as_deref(),
        Some("{\"a\":1}")
    );
    assert_eq!(node.meta("sighting:x").unwrap().as_deref(), Some("y"));
}
