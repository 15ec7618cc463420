//! Integration tests of anyam-stix through its public API: rule tables, OASIS examples, properties.

// Test helpers outside `#[test]` functions unwrap too; clippy.toml only covers the latter.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use anyam_stix::{check_bundle, check_object};
use serde_json::Value;

/// The OASIS STIX 2.1 examples, read from the shared reference folder beside the repository.
fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/stix/examples")
}

fn json_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

#[test]
fn oasis_examples_validate() {
    let dir = examples_dir();
    assert!(
        dir.is_dir(),
        "the OASIS STIX examples folder is absent: expected shared/stix/examples beside the repository ({})",
        dir.display()
    );
    let mut files = Vec::new();
    json_files(&dir, &mut files);
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the OASIS example files, found {}",
        files.len()
    );
    let mut objects = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let list: Vec<Value> = if value["type"] == "bundle" {
            let checked =
                check_bundle(&value).unwrap_or_else(|e| panic!("{name}: bundle envelope: {e}"));
            assert_eq!(
                checked.objects.len(),
                value["objects"].as_array().unwrap().len()
            );
            value["objects"].as_array().unwrap().clone()
        } else {
            vec![value]
        };
        for obj in &list {
            objects += 1;
            if let Err(e) = check_object(obj) {
                panic!("{name}: {e}");
            }
        }
    }
    assert!(
        objects > 250,
        "only {objects} objects found in the examples"
    );
}
