//! Integration tests of `SqliteStore` through the public `Store` API, on real
//! SQLite files in temporary directories.

use std::collections::{BTreeMap, BTreeSet, HashSet};
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
    let raw = format!(r#"{{"type":"{ty}","id":"{id}","spec_version":"{spec}","modified":"{version:?}","x":"{tag}"}}"#);
    NewObject {
        id: id.into(),
        object_type: ty.into(),
        spec_version: spec.into(),
        version,
        version_micros: v,
        digest: digest(&raw),
        raw,
    }
}

fn obj(id: &str, v: i64) -> NewObject {
    obj_full(id, "indicator", "2.1", Some(v), "a")
}

fn q() -> Query {
    Query { limit: 1000, ..Query::default() }
}

/// `(id, version_micros-as-string)` of a manifest page, for compact asserts.
fn ids_versions(p: &Page<ManifestEntry>) -> Vec<(String, String)> {
    p.items.iter().map(|e| (e.id.clone(), e.version.clone())).collect()
}

// --- smoke --------------------------------------------------------------------

#[test]
fn put_then_read_back() {
    let (_d, s) = fresh();
    let out = s.put_objects(COLL, &[obj("indicator--1", 10), obj("indicator--1", 20)]).unwrap();
    assert!(matches!(out[..], [PutOutcome::Added(a), PutOutcome::Added(b)] if a < b));
    let page = s.objects(COLL, &q()).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].version, "v20");
    assert_eq!(s.count_objects(COLL).unwrap(), 2);
    let v = s.versions(COLL, "indicator--1", &q()).unwrap();
    assert_eq!(ids_versions(&v), vec![("indicator--1".into(), "v10".into()), ("indicator--1".into(), "v20".into())]);
}
