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

/// Objects of every STIX 2.1 type (and every predefined extension) built
/// by the OASIS Python `stix2` library, which checks them as it builds them;
/// `fixtures/make_reference_objects.py` regenerates the file.
#[test]
fn reference_library_objects_validate() {
    let text = include_str!("fixtures/reference_objects.json");
    let objects: Vec<Value> = serde_json::from_str(text).unwrap();
    let mut types = std::collections::BTreeSet::new();
    for o in &objects {
        if let Err(e) = check_object(o) {
            panic!("{e}\n{o}");
        }
        types.insert(o["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(types.len(), 42, "{types:?}");
}

// ---------------------------------------------------------------------------
// Table-driven rule cases: a valid base object per type, a JSON merge patch
// (RFC 7386: null removes a property), and the expected outcome.

use anyam_stix::{
    Invalid, ObjectInfo, canonical_digest, canonical_json, deterministic_sco_id, parse_timestamp,
};
use serde_json::json;

const UUID: &str = "6ba7b810-9dad-41d1-80b4-00c04fd430c8";
const T0: &str = "2024-01-01T00:00:00.000Z";
const ID_IDENTITY: &str = "identity--6ba7b810-9dad-41d1-80b4-00c04fd430c8";
const ID_MARKING: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
const ID_IPV4: &str = "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4";
const ID_MALWARE: &str = "malware--6ba7b810-9dad-41d1-80b4-00c04fd430c8";
const ID_FILE: &str = "file--06ce4029-bd3e-524d-bc97-61a81394c0d6";
const EXT_DEF: &str = "extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e";

/// A minimal valid object of each STIX 2.1 type.
fn base(ty: &str) -> Value {
    let id = format!("{ty}--{UUID}");
    let sdo = |extra: Value| {
        let mut o =
            json!({"type": ty, "spec_version": "2.1", "id": id, "created": T0, "modified": T0});
        merge(&mut o, &extra);
        o
    };
    let sco = |extra: Value| {
        let mut o = json!({"type": ty, "spec_version": "2.1", "id": id});
        merge(&mut o, &extra);
        o
    };
    match ty {
        "attack-pattern" | "campaign" | "course-of-action" | "identity" | "incident"
        | "infrastructure" | "intrusion-set" | "threat-actor" | "tool" | "vulnerability" => {
            sdo(json!({"name": "n"}))
        }
        "grouping" => sdo(json!({"context": "suspicious-activity", "object_refs": [ID_MALWARE]})),
        "indicator" => sdo(
            json!({"pattern": "[ipv4-addr:value = '198.51.100.3']", "pattern_type": "stix", "valid_from": T0}),
        ),
        "location" => sdo(json!({"country": "ID"})),
        "malware" => sdo(json!({"is_family": false})),
        "malware-analysis" => sdo(json!({"product": "sandbox", "result": "malicious"})),
        "note" => sdo(json!({"content": "c", "object_refs": [ID_MALWARE]})),
        "observed-data" => sdo(
            json!({"first_observed": T0, "last_observed": T0, "number_observed": 1, "object_refs": [ID_IPV4]}),
        ),
        "opinion" => sdo(json!({"opinion": "agree", "object_refs": [ID_MALWARE]})),
        "report" => sdo(json!({"name": "r", "published": T0, "object_refs": [ID_MALWARE]})),
        "relationship" => sdo(
            json!({"relationship_type": "uses", "source_ref": ID_MALWARE, "target_ref": ID_IPV4}),
        ),
        "sighting" => sdo(json!({"sighting_of_ref": ID_MALWARE})),
        "language-content" => {
            sdo(json!({"object_ref": ID_MALWARE, "contents": {"id": {"name": "nama"}}}))
        }
        "extension-definition" => sdo(
            json!({"created_by_ref": ID_IDENTITY, "name": "e", "schema": "https://example.org/s", "version": "1.0", "extension_types": ["property-extension"]}),
        ),
        "marking-definition" => {
            json!({"type": ty, "spec_version": "2.1", "id": id, "created": T0, "definition_type": "statement", "definition": {"statement": "Copyright"}})
        }
        "artifact" => sco(json!({"payload_bin": "aGVsbG8="})),
        "autonomous-system" => sco(json!({"number": 15139})),
        "directory" => sco(json!({"path": "C:\\Users\\Public"})),
        "domain-name" => sco(json!({"value": "example.com"})),
        "email-addr" => sco(json!({"value": "john@example.com"})),
        "email-message" => sco(json!({"is_multipart": false, "body": "hi"})),
        "file" => sco(json!({"name": "a.exe"})),
        "ipv4-addr" => sco(json!({"value": "198.51.100.3"})),
        "ipv6-addr" => sco(json!({"value": "2001:db8::1"})),
        "mac-addr" => sco(json!({"value": "00:11:22:33:44:55"})),
        "mutex" | "software" => sco(json!({"name": "n"})),
        "network-traffic" => sco(json!({"src_ref": ID_IPV4, "protocols": ["tcp"]})),
        "process" => sco(json!({"pid": 4})),
        "url" => sco(json!({"value": "http://example.com/a"})),
        "user-account" => sco(json!({"user_id": "1001"})),
        "windows-registry-key" => sco(json!({"key": "HKEY_LOCAL_MACHINE\\Software"})),
        "x509-certificate" => sco(json!({"serial_number": "01"})),
        other => sdo(json!({"x_note": other})),
    }
}

const ALL_TYPES: &[&str] = &[
    "attack-pattern",
    "campaign",
    "course-of-action",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "location",
    "malware",
    "malware-analysis",
    "note",
    "observed-data",
    "opinion",
    "report",
    "threat-actor",
    "tool",
    "vulnerability",
    "relationship",
    "sighting",
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
    "marking-definition",
    "language-content",
    "extension-definition",
    "x-acme-widget",
];

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

enum E {
    Ok,
    /// A violation at this path citing this section (other violations may accompany it).
    At(&'static str, &'static str),
}

/// Check one case: the patched base must be valid, or carry the expected violation.
fn check(name: &str, input: &Value, expect: &E) -> Result<(), String> {
    let result = check_object(input);
    match (expect, &result) {
        (E::Ok, Ok(_)) => Ok(()),
        (E::Ok, Err(e)) => Err(format!("{name}: expected valid, got: {e}")),
        (E::At(path, section), Err(e)) if e.has(path, section) => Ok(()),
        (E::At(path, section), Err(e)) => Err(format!(
            "{name}: expected violation at {path:?} ({section}), got: {e}"
        )),
        (E::At(path, section), Ok(_)) => Err(format!(
            "{name}: expected violation at {path:?} ({section}), got valid"
        )),
    }
}

const S32: &str = "STIX 2.1 §3.2";

/// (base type, patch, expected outcome)
fn cases() -> Vec<(&'static str, Value, E)> {
    use E::*;
    let ext_key = format!("/extensions/{EXT_DEF}/extension_type");
    let ext_key: &'static str = Box::leak(ext_key.into_boxed_str());
    vec![
        // --- reference targets, language tags (§5.2, §3.2, §7.1)
        (
            "sighting",
            json!({"sighting_of_ref": ID_IPV4}),
            At("/sighting_of_ref", "STIX 2.1 §5.2"),
        ),
        (
            "sighting",
            json!({"sighting_of_ref": format!("x-acme-widget--{UUID}")}),
            Ok,
        ),
        (
            "indicator",
            json!({"lang": "english language"}),
            At("/lang", S32),
        ),
        ("indicator", json!({"lang": "zh-Hans"}), Ok),
        (
            "attack-pattern",
            json!({"granular_markings": [{"selectors": ["name"], "lang": "en_US"}]}),
            At("/granular_markings/0/lang", "STIX 2.1 §7.2.3"),
        ),
        (
            "language-content",
            json!({"contents": {"en_US": {"name": "x"}}}),
            At("/contents/en_US", "STIX 2.1 §7.1"),
        ),
        // --- rules found by comparing with the OASIS validator
        (
            "email-addr",
            json!({"value": "John <john@example.com>"}),
            At("/value", "STIX 2.1 §6.5"),
        ),
        (
            "email-addr",
            json!({"value": "example.com"}),
            At("/value", "STIX 2.1 §6.5"),
        ),
        (
            "software",
            json!({"languages": ["en", "en_GB"]}),
            At("/languages/1", "STIX 2.1 §6.14"),
        ),
        (
            "language-content",
            json!({"contents": {"de": {"Name": "x"}}}),
            At("/contents/de/Name", "STIX 2.1 §7.1"),
        ),
        (
            "marking-definition",
            json!({"object_marking_refs": [format!("marking-definition--{UUID}")]}),
            At("/object_marking_refs/0", "STIX 2.1 §7.2.2"),
        ),
        (
            "marking-definition",
            json!({"id": ID_MARKING, "name": "TLP:GREEN", "definition_type": "tlp", "definition": {"tlp": "green", "statement": null}}),
            At("/created", "STIX 2.1 §7.2.1"),
        ),
        (
            "marking-definition",
            json!({"id": ID_MARKING, "created": "2017-01-20T00:00:00.000Z", "name": "green", "definition_type": "tlp", "definition": {"tlp": "green", "statement": null}}),
            At("/name", "STIX 2.1 §7.2.1"),
        ),
        (
            "process",
            json!({"id": "process--0a58d0c1-59e6-5afd-8252-dcd3f13e5622"}),
            At("/id", "STIX 2.1 §2.9"),
        ),
        (
            "file",
            json!({"name": null, "size": 3, "hashes": null, "id": ID_FILE}),
            At("/id", "STIX 2.1 §2.9"),
        ),
        ("file", json!({"id": ID_FILE}), Ok),
        (
            "software",
            json!({"cpe": "cpe:2.3:a:microsoft:word:2000:*:*:*:*:*:*:*"}),
            Ok,
        ),
        (
            "software",
            json!({"cpe": "cpe:2.3:a:acme:tool\\:x:1.0:*:*:*:*:*:*:*"}),
            Ok,
        ),
        (
            "software",
            json!({"cpe": "cpe:/a:microsoft:word:2000"}),
            At("/cpe", "STIX 2.1 §6.14"),
        ),
        (
            "domain-name",
            json!({"value": ""}),
            At("/value", "STIX 2.1 §6.4"),
        ),
        (
            "domain-name",
            json!({"value": "http://example.com/"}),
            At("/value", "STIX 2.1 §6.4"),
        ),
        (
            "domain-name",
            json!({"value": "a..example.com"}),
            At("/value", "STIX 2.1 §6.4"),
        ),
        (
            "domain-name",
            json!({"value": "_dmarc.xn--bcher-kva.example."}),
            Ok,
        ),
        (
            "marking-definition",
            json!({"id": ID_MARKING, "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "definition": {"tlp": "green", "statement": null}}),
            At("/name", "STIX 2.1 §7.2.1"),
        ),
        (
            "indicator",
            json!({"_x_acme": 1}),
            At("/_x_acme", "STIX 2.1 §11.1"),
        ),
        (
            "x-acme-widget",
            json!({"type": "9-acme", "id": format!("9-acme--{UUID}")}),
            At("/type", "STIX 2.1 §3.1"),
        ),
        // --- type and id (§3.1, §2.9)
        ("indicator", json!({"type": null}), At("/type", S32)),
        ("indicator", json!({"type": 5}), At("/type", S32)),
        (
            "x-acme-widget",
            json!({"type": "X-Acme", "id": format!("X-Acme--{UUID}")}),
            At("/type", "STIX 2.1 §3.1"),
        ),
        (
            "x-acme-widget",
            json!({"type": "xy", "id": format!("xy--{UUID}")}),
            At("/type", "STIX 2.1 §3.1"),
        ),
        ("indicator", json!({"id": null}), At("/id", S32)),
        (
            "indicator",
            json!({"id": ID_MALWARE}),
            At("/id", "STIX 2.1 §2.9"),
        ),
        (
            "indicator",
            json!({"id": "indicator--1234"}),
            At("/id", "STIX 2.1 §2.9"),
        ),
        (
            "indicator",
            json!({"id": "indicator--00000000-0000-0000-0000-000000000000"}),
            At("/id", "STIX 2.1 §2.9"),
        ),
        (
            "indicator",
            json!({"id": format!("indicator-{UUID}")}),
            At("/id", "STIX 2.1 §2.9"),
        ),
        (
            "indicator",
            json!({"id": format!("indicator--{}", UUID.to_uppercase())}),
            Ok,
        ),
        // --- spec_version, created, modified (§3.2, §2.15)
        (
            "indicator",
            json!({"spec_version": "2.0"}),
            At("/spec_version", S32),
        ),
        (
            "indicator",
            json!({"spec_version": null}),
            At("/spec_version", S32),
        ),
        ("ipv4-addr", json!({"spec_version": null}), Ok),
        (
            "ipv4-addr",
            json!({"spec_version": "2.0"}),
            At("/spec_version", S32),
        ),
        ("indicator", json!({"created": null}), At("/created", S32)),
        ("indicator", json!({"modified": null}), At("/modified", S32)),
        (
            "indicator",
            json!({"created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z"}),
            At("/created", S32),
        ),
        (
            "indicator",
            json!({"created": "2024-01-01T00:00:00.1Z", "modified": "2024-01-01T00:00:00.1Z"}),
            At("/modified", S32),
        ),
        (
            "indicator",
            json!({"created": "2024-01-01T00:00:00.123456Z", "modified": "2024-01-01T00:00:00.123456789Z"}),
            Ok,
        ),
        (
            "indicator",
            json!({"created": "2024-01-01t00:00:00.000Z"}),
            At("/created", "STIX 2.1 §2.15"),
        ),
        (
            "indicator",
            json!({"created": "2024-01-01T00:00:00.000+00:00"}),
            At("/created", "STIX 2.1 §2.15"),
        ),
        (
            "indicator",
            json!({"created": "2024-02-30T00:00:00.000Z"}),
            At("/created", "STIX 2.1 §2.15"),
        ),
        (
            "indicator",
            json!({"created": 1_700_000_000}),
            At("/created", "STIX 2.1 §2.15"),
        ),
        (
            "indicator",
            json!({"modified": "2023-12-31T23:59:59.999Z"}),
            At("/modified", S32),
        ),
        (
            "indicator",
            json!({"modified": "2024-01-01T00:00:00.001Z"}),
            Ok,
        ),
        // marking-definition `created` has no millisecond rule in the schema
        (
            "marking-definition",
            json!({"created": "2024-01-01T00:00:00Z"}),
            Ok,
        ),
        // --- other common properties (§3.2)
        (
            "indicator",
            json!({"revoked": "yes"}),
            At("/revoked", "STIX 2.1 §2.2"),
        ),
        ("indicator", json!({"revoked": true}), Ok),
        (
            "indicator",
            json!({"labels": []}),
            At("/labels", "STIX 2.1 §2.12"),
        ),
        (
            "indicator",
            json!({"labels": [1]}),
            At("/labels/0", "STIX 2.1 §2.14"),
        ),
        ("indicator", json!({"labels": ["a"]}), Ok),
        (
            "indicator",
            json!({"confidence": 101}),
            At("/confidence", "STIX 2.1 §2.10"),
        ),
        (
            "indicator",
            json!({"confidence": -1}),
            At("/confidence", "STIX 2.1 §2.10"),
        ),
        (
            "indicator",
            json!({"confidence": 1.5}),
            At("/confidence", "STIX 2.1 §2.10"),
        ),
        ("indicator", json!({"confidence": 100}), Ok),
        (
            "indicator",
            json!({"lang": 5}),
            At("/lang", "STIX 2.1 §2.14"),
        ),
        ("indicator", json!({"lang": "id"}), Ok),
        (
            "indicator",
            json!({"created_by_ref": ID_MALWARE}),
            At("/created_by_ref", "STIX 2.1 §3.2"),
        ),
        (
            "indicator",
            json!({"created_by_ref": "identity--nope"}),
            At("/created_by_ref", "STIX 2.1 §2.9"),
        ),
        ("indicator", json!({"created_by_ref": ID_IDENTITY}), Ok),
        (
            "indicator",
            json!({"object_marking_refs": [ID_IDENTITY]}),
            At("/object_marking_refs/0", "STIX 2.1 §3.2"),
        ),
        (
            "indicator",
            json!({"object_marking_refs": []}),
            At("/object_marking_refs", "STIX 2.1 §2.12"),
        ),
        (
            "indicator",
            json!({"object_marking_refs": ID_MARKING}),
            At("/object_marking_refs", "STIX 2.1 §2.12"),
        ),
        (
            "ipv4-addr",
            json!({"object_marking_refs": [ID_MARKING], "defanged": true}),
            Ok,
        ),
        (
            "ipv4-addr",
            json!({"defanged": "no"}),
            At("/defanged", "STIX 2.1 §2.2"),
        ),
        // --- external references (§2.5)
        (
            "indicator",
            json!({"external_references": [{"source_name": "x", "url": "https://example.org"}]}),
            Ok,
        ),
        (
            "indicator",
            json!({"external_references": [{"source_name": "x"}]}),
            At("/external_references/0", "STIX 2.1 §2.5"),
        ),
        (
            "indicator",
            json!({"external_references": [{"url": "https://example.org"}]}),
            At("/external_references/0/source_name", "STIX 2.1 §2.5"),
        ),
        (
            "indicator",
            json!({"external_references": [{"source_name": 3, "external_id": "a"}]}),
            At("/external_references/0/source_name", "STIX 2.1 §2.14"),
        ),
        (
            "indicator",
            json!({"external_references": []}),
            At("/external_references", "STIX 2.1 §2.12"),
        ),
        (
            "indicator",
            json!({"external_references": ["x"]}),
            At("/external_references/0", "STIX 2.1 §2.5"),
        ),
        (
            "vulnerability",
            json!({"external_references": [{"source_name": "cve", "external_id": "CVE-2021-44228"}]}),
            Ok,
        ),
        (
            "vulnerability",
            json!({"external_references": [{"source_name": "cve", "external_id": "log4shell"}]}),
            At("/external_references/0/external_id", "STIX 2.1 §4.19"),
        ),
        (
            "attack-pattern",
            json!({"external_references": [{"source_name": "capec", "external_id": "163"}]}),
            At("/external_references/0/external_id", "STIX 2.1 §4.1"),
        ),
        (
            "indicator",
            json!({"external_references": [{"source_name": "x", "url": "u", "hashes": {"MD5": "abc"}}]}),
            At("/external_references/0/hashes/MD5", "STIX 2.1 §2.7"),
        ),
        // --- granular markings (§7.2.3)
        (
            "attack-pattern",
            json!({"granular_markings": [{"selectors": ["name"], "marking_ref": ID_MARKING}]}),
            Ok,
        ),
        (
            "attack-pattern",
            json!({"kill_chain_phases": [{"kill_chain_name": "k", "phase_name": "p"}], "granular_markings": [{"selectors": ["kill_chain_phases.[0].phase_name"], "lang": "en"}]}),
            Ok,
        ),
        (
            "attack-pattern",
            json!({"granular_markings": [{"selectors": ["description"], "marking_ref": ID_MARKING}]}),
            At("/granular_markings/0/selectors/0", "STIX 2.1 §7.2.3"),
        ),
        (
            "attack-pattern",
            json!({"granular_markings": [{"selectors": ["name.[0]"], "marking_ref": ID_MARKING}]}),
            At("/granular_markings/0/selectors/0", "STIX 2.1 §7.2.3"),
        ),
        (
            "attack-pattern",
            json!({"granular_markings": [{"selectors": ["name"], "marking_ref": ID_MARKING, "lang": "en"}]}),
            At("/granular_markings/0/lang", "STIX 2.1 §7.2.3"),
        ),
        (
            "attack-pattern",
            json!({"granular_markings": [{"selectors": ["name"]}]}),
            At("/granular_markings/0/marking_ref", "STIX 2.1 §7.2.3"),
        ),
        (
            "attack-pattern",
            json!({"granular_markings": [{"selectors": [], "marking_ref": ID_MARKING}]}),
            At("/granular_markings/0/selectors", "STIX 2.1 §2.12"),
        ),
        (
            "attack-pattern",
            json!({"granular_markings": [{"selectors": ["name"], "marking_ref": ID_IDENTITY}]}),
            At("/granular_markings/0/marking_ref", "STIX 2.1 §7.2.3"),
        ),
        (
            "attack-pattern",
            json!({"granular_markings": []}),
            At("/granular_markings", "STIX 2.1 §2.12"),
        ),
        // --- custom properties (§11.1)
        (
            "indicator",
            json!({"x_acme_score": 7, "x_acme_tags": ["a"], "x_acme_meta": {"k": "v"}}),
            Ok,
        ),
        (
            "indicator",
            json!({"X-Acme": 1}),
            At("/X-Acme", "STIX 2.1 §11.1"),
        ),
        ("indicator", json!({"xa": 1}), At("/xa", "STIX 2.1 §11.1")),
        (
            "indicator",
            json!({"x_acme_list": []}),
            At("/x_acme_list", "STIX 2.1 §2.12"),
        ),
        ("indicator", json!({"x_acme_none": null}), Ok), // null in a merge patch removes: see custom_null below
        (
            "indicator",
            json!({"x_acme_ref": "nope"}),
            At("/x_acme_ref", "STIX 2.1 §2.9"),
        ),
        ("indicator", json!({"x_acme_refs": [ID_MALWARE]}), Ok),
        (
            "indicator",
            json!({"x_acme_refs": "x"}),
            At("/x_acme_refs", "STIX 2.1 §2.12"),
        ),
        (
            "indicator",
            json!({"x_acme_bin": "###"}),
            At("/x_acme_bin", "STIX 2.1 §2.1"),
        ),
        (
            "indicator",
            json!({"x_acme_hex": "abc"}),
            At("/x_acme_hex", "STIX 2.1 §2.8"),
        ),
        ("indicator", json!({"x_acme_hex": "0aFF"}), Ok),
        // --- extensions (§7.3)
        (
            "indicator",
            json!({"extensions": {EXT_DEF: {"extension_type": "property-extension", "rank": 1}}}),
            Ok,
        ),
        (
            "indicator",
            json!({"extensions": {EXT_DEF: {"rank": 1}}}),
            At(ext_key, "STIX 2.1 §7.3"),
        ),
        (
            "indicator",
            json!({"extensions": {EXT_DEF: {"extension_type": "new-thing"}}}),
            At(ext_key, "STIX 2.1 §7.3"),
        ),
        (
            "indicator",
            json!({"extensions": {"acme": {"a": 1}}}),
            At("/extensions/acme", "STIX 2.1 §7.3"),
        ),
        (
            "indicator",
            json!({"extensions": {"x-acme-ext": {"x_rank": 1}}}),
            Ok,
        ),
        (
            "indicator",
            json!({"extensions": {"x-acme-ext": {"a": 1}}}),
            At("/extensions/x-acme-ext/a", "STIX 2.1 §11.1"),
        ),
        (
            "indicator",
            json!({"extensions": {"x-acme-ext": {}}}),
            At("/extensions/x-acme-ext", "STIX 2.1 §7.3"),
        ),
        (
            "indicator",
            json!({"extensions": {}}),
            At("/extensions", "STIX 2.1 §7.3"),
        ),
        (
            "indicator",
            json!({"extensions": {"extension-definition--1234": {"extension_type": "property-extension"}}}),
            At("/extensions/extension-definition--1234", "STIX 2.1 §2.9"),
        ),
        // --- custom objects (§11.2)
        ("x-acme-widget", json!({}), Ok),
        (
            "x-acme-widget",
            json!({"modified": null}),
            At("/modified", S32),
        ),
        (
            "x-acme-widget",
            json!({"created": null, "modified": null, "spec_version": null}),
            Ok,
        ),
        (
            "x-acme-widget",
            json!({"created": null, "modified": null, "extensions": {EXT_DEF: {"extension_type": "new-sdo"}}}),
            At("/created", S32),
        ),
        // --- SDOs (§4)
        (
            "attack-pattern",
            json!({"name": null}),
            At("/name", "STIX 2.1 §4.1"),
        ),
        (
            "attack-pattern",
            json!({"kill_chain_phases": [{"kill_chain_name": "k"}]}),
            At("/kill_chain_phases/0/phase_name", "STIX 2.1 §2.11"),
        ),
        (
            "attack-pattern",
            json!({"kill_chain_phases": [{"kill_chain_name": "k", "phase_name": "p"}], "aliases": ["a"]}),
            Ok,
        ),
        (
            "campaign",
            json!({"first_seen": "2024-02-01T00:00:00Z", "last_seen": "2024-01-01T00:00:00Z"}),
            At("/last_seen", "STIX 2.1 §4.2"),
        ),
        (
            "campaign",
            json!({"first_seen": "2024-01-01T00:00:00Z", "last_seen": "2024-01-01T00:00:00Z"}),
            Ok,
        ),
        (
            "course-of-action",
            json!({"name": null}),
            At("/name", "STIX 2.1 §4.3"),
        ),
        (
            "grouping",
            json!({"context": null}),
            At("/context", "STIX 2.1 §4.4"),
        ),
        (
            "grouping",
            json!({"object_refs": []}),
            At("/object_refs", "STIX 2.1 §2.12"),
        ),
        (
            "identity",
            json!({"name": null}),
            At("/name", "STIX 2.1 §4.5"),
        ),
        (
            "identity",
            json!({"roles": "admin"}),
            At("/roles", "STIX 2.1 §2.12"),
        ),
        (
            "identity",
            json!({"identity_class": "organization", "sectors": ["government"]}),
            Ok,
        ),
        (
            "incident",
            json!({"name": null}),
            At("/name", "STIX 2.1 §4.6"),
        ),
        (
            "indicator",
            json!({"pattern": null}),
            At("/pattern", "STIX 2.1 §4.7"),
        ),
        (
            "indicator",
            json!({"pattern_type": null}),
            At("/pattern_type", "STIX 2.1 §4.7"),
        ),
        (
            "indicator",
            json!({"valid_from": null}),
            At("/valid_from", "STIX 2.1 §4.7"),
        ),
        (
            "indicator",
            json!({"valid_until": T0}),
            At("/valid_until", "STIX 2.1 §4.7"),
        ),
        (
            "indicator",
            json!({"valid_until": "2024-01-01T00:00:00.001Z"}),
            Ok,
        ),
        (
            "indicator",
            json!({"pattern_type": "sigma", "indicator_types": ["malicious-activity"]}),
            Ok,
        ),
        (
            "infrastructure",
            json!({"first_seen": "2024-02-01T00:00:00Z", "last_seen": "2024-01-01T00:00:00Z"}),
            At("/last_seen", "STIX 2.1 §4.8"),
        ),
        (
            "intrusion-set",
            json!({"name": null}),
            At("/name", "STIX 2.1 §4.9"),
        ),
        (
            "intrusion-set",
            json!({"first_seen": "2024-02-01T00:00:00Z", "last_seen": "2024-01-01T00:00:00Z"}),
            At("/last_seen", "STIX 2.1 §4.9"),
        ),
        (
            "location",
            json!({"country": null}),
            At("", "STIX 2.1 §4.10"),
        ),
        (
            "location",
            json!({"country": null, "region": "south-eastern-asia"}),
            Ok,
        ),
        (
            "location",
            json!({"country": null, "latitude": -6.2, "longitude": 106.8, "precision": 1000.0}),
            Ok,
        ),
        (
            "location",
            json!({"latitude": -6.2}),
            At("/longitude", "STIX 2.1 §4.10"),
        ),
        (
            "location",
            json!({"latitude": 91, "longitude": 0}),
            At("/latitude", "STIX 2.1 §2.6"),
        ),
        (
            "location",
            json!({"precision": 10.0}),
            At("/precision", "STIX 2.1 §4.10"),
        ),
        (
            "malware",
            json!({"is_family": null}),
            At("/is_family", "STIX 2.1 §4.11"),
        ),
        (
            "malware",
            json!({"is_family": true}),
            At("/name", "STIX 2.1 §4.11"),
        ),
        (
            "malware",
            json!({"is_family": true, "name": "PoisonIvy"}),
            Ok,
        ),
        (
            "malware",
            json!({"is_family": "true"}),
            At("/is_family", "STIX 2.1 §2.2"),
        ),
        (
            "malware",
            json!({"operating_system_refs": [ID_FILE]}),
            At("/operating_system_refs/0", "STIX 2.1 §4.11"),
        ),
        ("malware", json!({"sample_refs": [ID_FILE]}), Ok),
        (
            "malware",
            json!({"first_seen": "2024-02-01T00:00:00Z", "last_seen": "2024-01-01T00:00:00Z"}),
            At("/last_seen", "STIX 2.1 §4.11"),
        ),
        (
            "malware-analysis",
            json!({"result": null}),
            At("", "STIX 2.1 §4.12"),
        ),
        (
            "malware-analysis",
            json!({"result": null, "analysis_sco_refs": [ID_FILE]}),
            Ok,
        ),
        (
            "malware-analysis",
            json!({"analysis_sco_refs": [ID_MALWARE]}),
            At("/analysis_sco_refs/0", "STIX 2.1 §4.12"),
        ),
        (
            "malware-analysis",
            json!({"sample_ref": ID_MALWARE}),
            At("/sample_ref", "STIX 2.1 §4.12"),
        ),
        (
            "malware-analysis",
            json!({"product": null}),
            At("/product", "STIX 2.1 §4.12"),
        ),
        (
            "note",
            json!({"content": null}),
            At("/content", "STIX 2.1 §4.13"),
        ),
        (
            "note",
            json!({"object_refs": null}),
            At("/object_refs", "STIX 2.1 §4.13"),
        ),
        (
            "observed-data",
            json!({"number_observed": 0}),
            At("/number_observed", "STIX 2.1 §2.10"),
        ),
        (
            "observed-data",
            json!({"number_observed": 1_000_000_000}),
            At("/number_observed", "STIX 2.1 §2.10"),
        ),
        ("observed-data", json!({"number_observed": 999_999_999}), Ok),
        (
            "observed-data",
            json!({"last_observed": "2023-01-01T00:00:00Z"}),
            At("/last_observed", "STIX 2.1 §4.14"),
        ),
        (
            "observed-data",
            json!({"objects": {"0": {"type": "ipv4-addr", "value": "198.51.100.3"}}}),
            At("/objects", "STIX 2.1 §4.14"),
        ),
        (
            "observed-data",
            json!({"object_refs": null}),
            At("/object_refs", "STIX 2.1 §4.14"),
        ),
        (
            "observed-data",
            json!({"object_refs": null, "objects": {"0": {"type": "ipv4-addr", "value": "198.51.100.3"}}}),
            Ok,
        ),
        (
            "observed-data",
            json!({"object_refs": [ID_MALWARE]}),
            At("/object_refs/0", "STIX 2.1 §4.14"),
        ),
        (
            "opinion",
            json!({"opinion": "maybe"}),
            At("/opinion", "STIX 2.1 §4.15"),
        ),
        (
            "report",
            json!({"published": null}),
            At("/published", "STIX 2.1 §4.16"),
        ),
        (
            "threat-actor",
            json!({"name": null}),
            At("/name", "STIX 2.1 §4.17"),
        ),
        (
            "threat-actor",
            json!({"first_seen": "2024-02-01T00:00:00Z", "last_seen": "2024-01-01T00:00:00Z"}),
            At("/last_seen", "STIX 2.1 §4.17"),
        ),
        ("tool", json!({"name": null}), At("/name", "STIX 2.1 §4.18")),
        (
            "vulnerability",
            json!({"name": null}),
            At("/name", "STIX 2.1 §4.19"),
        ),
        // --- SROs (§5)
        (
            "relationship",
            json!({"source_ref": null}),
            At("/source_ref", "STIX 2.1 §5.1"),
        ),
        (
            "relationship",
            json!({"target_ref": null}),
            At("/target_ref", "STIX 2.1 §5.1"),
        ),
        (
            "relationship",
            json!({"relationship_type": null}),
            At("/relationship_type", "STIX 2.1 §5.1"),
        ),
        (
            "relationship",
            json!({"source_ref": format!("sighting--{UUID}")}),
            At("/source_ref", "STIX 2.1 §5.1"),
        ),
        (
            "relationship",
            json!({"relationship_type": "Uses It"}),
            At("/relationship_type", "STIX 2.1 §5.1"),
        ),
        (
            "relationship",
            json!({"start_time": T0, "stop_time": T0}),
            At("/stop_time", "STIX 2.1 §5.1"),
        ),
        (
            "relationship",
            json!({"start_time": T0, "stop_time": "2024-01-02T00:00:00Z"}),
            Ok,
        ),
        (
            "sighting",
            json!({"sighting_of_ref": null}),
            At("/sighting_of_ref", "STIX 2.1 §5.2"),
        ),
        (
            "sighting",
            json!({"sighting_of_ref": format!("relationship--{UUID}")}),
            At("/sighting_of_ref", "STIX 2.1 §5.2"),
        ),
        (
            "sighting",
            json!({"count": -1}),
            At("/count", "STIX 2.1 §2.10"),
        ),
        (
            "sighting",
            json!({"where_sighted_refs": [ID_MALWARE]}),
            At("/where_sighted_refs/0", "STIX 2.1 §5.2"),
        ),
        (
            "sighting",
            json!({"observed_data_refs": [ID_MALWARE]}),
            At("/observed_data_refs/0", "STIX 2.1 §5.2"),
        ),
        (
            "sighting",
            json!({"first_seen": "2024-02-01T00:00:00Z", "last_seen": "2024-01-01T00:00:00Z"}),
            At("/last_seen", "STIX 2.1 §5.2"),
        ),
        (
            "sighting",
            json!({"count": 3, "where_sighted_refs": [ID_IDENTITY], "summary": false}),
            Ok,
        ),
        // --- SCOs (§6)
        (
            "artifact",
            json!({"url": "https://example.org/a"}),
            At("/url", "STIX 2.1 §6.1"),
        ),
        (
            "artifact",
            json!({"payload_bin": null}),
            At("", "STIX 2.1 §6.1"),
        ),
        (
            "artifact",
            json!({"payload_bin": null, "url": "https://example.org/a"}),
            At("/hashes", "STIX 2.1 §6.1"),
        ),
        (
            "artifact",
            json!({"payload_bin": null, "url": "https://example.org/a", "hashes": {"SHA-256": "fe90a7e910cb3a4739bed9180e807e93fa70c90f25a8915476f5e4bfbac681db"}}),
            Ok,
        ),
        (
            "artifact",
            json!({"payload_bin": "not base64!"}),
            At("/payload_bin", "STIX 2.1 §2.1"),
        ),
        (
            "artifact",
            json!({"decryption_key": "k"}),
            At("/decryption_key", "STIX 2.1 §6.1"),
        ),
        (
            "artifact",
            json!({"encryption_algorithm": "rot13"}),
            At("/encryption_algorithm", "STIX 2.1 §6.1"),
        ),
        (
            "artifact",
            json!({"encryption_algorithm": "AES-256-GCM", "decryption_key": "k"}),
            Ok,
        ),
        (
            "autonomous-system",
            json!({"number": null}),
            At("/number", "STIX 2.1 §6.2"),
        ),
        (
            "autonomous-system",
            json!({"number": "AS1"}),
            At("/number", "STIX 2.1 §2.10"),
        ),
        (
            "directory",
            json!({"path": null}),
            At("/path", "STIX 2.1 §6.3"),
        ),
        (
            "directory",
            json!({"contains_refs": [format!("process--{UUID}")]}),
            At("/contains_refs/0", "STIX 2.1 §6.3"),
        ),
        (
            "domain-name",
            json!({"value": null}),
            At("/value", "STIX 2.1 §6.4"),
        ),
        ("domain-name", json!({"resolves_to_refs": [ID_IPV4]}), Ok),
        (
            "domain-name",
            json!({"resolves_to_refs": [format!("url--{UUID}")]}),
            At("/resolves_to_refs/0", "STIX 2.1 §6.4"),
        ),
        (
            "email-addr",
            json!({"belongs_to_ref": ID_IDENTITY}),
            At("/belongs_to_ref", "STIX 2.1 §6.5"),
        ),
        (
            "email-message",
            json!({"is_multipart": null}),
            At("/is_multipart", "STIX 2.1 §6.6"),
        ),
        (
            "email-message",
            json!({"is_multipart": true}),
            At("/body", "STIX 2.1 §6.6"),
        ),
        (
            "email-message",
            json!({"body_multipart": [{"body": "x"}]}),
            At("/body_multipart", "STIX 2.1 §6.6"),
        ),
        (
            "email-message",
            json!({"is_multipart": true, "body": null, "body_multipart": [{"content_type": "text/plain"}]}),
            At("/body_multipart/0", "STIX 2.1 §6.6.2"),
        ),
        (
            "email-message",
            json!({"is_multipart": true, "body": null, "body_multipart": [{"body": "x"}, {"body_raw_ref": ID_FILE}]}),
            Ok,
        ),
        (
            "email-message",
            json!({"to_refs": [format!("url--{UUID}")]}),
            At("/to_refs/0", "STIX 2.1 §6.6"),
        ),
        (
            "email-message",
            json!({"additional_header_fields": {"X Mailer": "a"}}),
            At("/additional_header_fields/X Mailer", "STIX 2.1 §2.3"),
        ),
        ("file", json!({"name": null}), At("", "STIX 2.1 §6.7")),
        (
            "file",
            json!({"name": null, "hashes": {"SHA-256": "fe90a7e910cb3a4739bed9180e807e93fa70c90f25a8915476f5e4bfbac681db"}}),
            Ok,
        ),
        (
            "file",
            json!({"hashes": {"SHA-256": "fe90"}}),
            At("/hashes/SHA-256", "STIX 2.1 §2.7"),
        ),
        (
            "file",
            json!({"hashes": {}}),
            At("/hashes", "STIX 2.1 §2.3"),
        ),
        ("file", json!({"hashes": {"x-custom-hash": "anything"}}), Ok),
        ("file", json!({"size": -1}), At("/size", "STIX 2.1 §2.10")),
        (
            "file",
            json!({"magic_number_hex": "xyz"}),
            At("/magic_number_hex", "STIX 2.1 §2.8"),
        ),
        (
            "file",
            json!({"parent_directory_ref": ID_FILE}),
            At("/parent_directory_ref", "STIX 2.1 §6.7"),
        ),
        (
            "file",
            json!({"extensions": {"archive-ext": {"comment": "c"}}}),
            At("/extensions/archive-ext/contains_refs", "STIX 2.1 §6.7.2"),
        ),
        (
            "file",
            json!({"extensions": {"archive-ext": {"contains_refs": [ID_FILE]}}}),
            Ok,
        ),
        (
            "file",
            json!({"extensions": {"ntfs-ext": {"x_other": 1}}}),
            At("/extensions/ntfs-ext", "STIX 2.1 §6.7.3"),
        ),
        (
            "file",
            json!({"extensions": {"windows-pebinary-ext": {"pe_type": "exe", "sections": [{"name": ".text", "entropy": 7.1}]}}}),
            Ok,
        ),
        (
            "file",
            json!({"extensions": {"windows-pebinary-ext": {"sections": [{"entropy": 7.1}]}}}),
            At(
                "/extensions/windows-pebinary-ext/sections/0/name",
                "STIX 2.1 §6.7.6.2",
            ),
        ),
        (
            "ipv4-addr",
            json!({"value": "256.1.1.1"}),
            At("/value", "STIX 2.1 §6.8"),
        ),
        (
            "ipv4-addr",
            json!({"value": "10.0.0.0/33"}),
            At("/value", "STIX 2.1 §6.8"),
        ),
        ("ipv4-addr", json!({"value": "10.0.0.0/8"}), Ok),
        (
            "ipv4-addr",
            json!({"resolves_to_refs": [ID_IPV4]}),
            At("/resolves_to_refs/0", "STIX 2.1 §6.8"),
        ),
        (
            "ipv6-addr",
            json!({"value": "zz::1"}),
            At("/value", "STIX 2.1 §6.9"),
        ),
        ("ipv6-addr", json!({"value": "2001:db8::/32"}), Ok),
        (
            "mac-addr",
            json!({"value": "AA:BB:CC:DD:EE:FF"}),
            At("/value", "STIX 2.1 §6.10"),
        ),
        (
            "mac-addr",
            json!({"value": "0:1:2:3:4:5"}),
            At("/value", "STIX 2.1 §6.10"),
        ),
        (
            "mutex",
            json!({"name": null}),
            At("/name", "STIX 2.1 §6.11"),
        ),
        (
            "network-traffic",
            json!({"protocols": null}),
            At("/protocols", "STIX 2.1 §6.12"),
        ),
        (
            "network-traffic",
            json!({"src_ref": null}),
            At("", "STIX 2.1 §6.12"),
        ),
        (
            "network-traffic",
            json!({"src_port": 70000}),
            At("/src_port", "STIX 2.1 §2.10"),
        ),
        (
            "network-traffic",
            json!({"is_active": true, "end": T0}),
            At("/end", "STIX 2.1 §6.12"),
        ),
        (
            "network-traffic",
            json!({"start": "2024-01-02T00:00:00Z", "end": T0}),
            At("/end", "STIX 2.1 §6.12"),
        ),
        (
            "network-traffic",
            json!({"src_ref": format!("url--{UUID}")}),
            At("/src_ref", "STIX 2.1 §6.12"),
        ),
        (
            "network-traffic",
            json!({"extensions": {"socket-ext": {"address_family": "AF_X"}}}),
            At("/extensions/socket-ext/address_family", "STIX 2.1 §6.12.4"),
        ),
        (
            "network-traffic",
            json!({"extensions": {"http-request-ext": {"request_method": "get"}}}),
            At(
                "/extensions/http-request-ext/request_value",
                "STIX 2.1 §6.12.2",
            ),
        ),
        (
            "network-traffic",
            json!({"extensions": {"http-request-ext": {"request_method": "get", "request_value": "/"}, "tcp-ext": {"src_flags_hex": "02"}}}),
            Ok,
        ),
        ("process", json!({"pid": null}), At("", "STIX 2.1 §6.13")),
        (
            "process",
            json!({"extensions": {"windows-process-ext": {"integrity_level": "ultra"}}}),
            At(
                "/extensions/windows-process-ext/integrity_level",
                "STIX 2.1 §6.13.2",
            ),
        ),
        (
            "process",
            json!({"pid": null, "extensions": {"windows-service-ext": {"service_name": "svc", "start_type": "SERVICE_AUTO_START"}}}),
            Ok,
        ),
        (
            "software",
            json!({"name": null}),
            At("/name", "STIX 2.1 §6.14"),
        ),
        (
            "url",
            json!({"value": "not a url"}),
            At("/value", "STIX 2.1 §6.15"),
        ),
        (
            "url",
            json!({"value": "example.com/a"}),
            At("/value", "STIX 2.1 §6.15"),
        ),
        (
            "user-account",
            json!({"user_id": null}),
            At("", "STIX 2.1 §6.16"),
        ),
        (
            "user-account",
            json!({"extensions": {"unix-account-ext": {"groups": []}}}),
            At("/extensions/unix-account-ext/groups", "STIX 2.1 §2.12"),
        ),
        (
            "windows-registry-key",
            json!({"key": "HKLM\\Software"}),
            At("/key", "STIX 2.1 §6.17"),
        ),
        (
            "windows-registry-key",
            json!({"values": [{"name": "a", "data_type": "REG_FOO"}]}),
            At("/values/0/data_type", "STIX 2.1 §6.17.2"),
        ),
        (
            "windows-registry-key",
            json!({"key": null}),
            At("", "STIX 2.1 §6.17"),
        ),
        (
            "x509-certificate",
            json!({"serial_number": null}),
            At("", "STIX 2.1 §6.18"),
        ),
        (
            "x509-certificate",
            json!({"x509_v3_extensions": {"key_usage": 5}}),
            At("/x509_v3_extensions/key_usage", "STIX 2.1 §2.14"),
        ),
        // --- meta objects (§7)
        (
            "marking-definition",
            json!({"definition_type": null}),
            At("/definition_type", "STIX 2.1 §7.2.1"),
        ),
        (
            "marking-definition",
            json!({"definition": {"statement": null, "text": "x"}}),
            At("/definition/statement", "STIX 2.1 §7.2.1"),
        ),
        (
            "marking-definition",
            json!({"created": null}),
            At("/created", "STIX 2.1 §7.2.1"),
        ),
        (
            "marking-definition",
            json!({"definition_type": null, "definition": null, "extensions": {EXT_DEF: {"extension_type": "property-extension", "tlp_2_0": "amber"}}}),
            Ok,
        ),
        (
            "marking-definition",
            json!({"id": ID_MARKING, "created": "2017-01-20T00:00:00.000Z", "name": "TLP:GREEN", "definition_type": "tlp", "definition": {"tlp": "green", "statement": null}}),
            Ok,
        ),
        (
            "marking-definition",
            json!({"definition_type": "tlp", "definition": {"tlp": "green", "statement": null}}),
            At("/id", "STIX 2.1 §7.2.1"),
        ),
        (
            "marking-definition",
            json!({"id": ID_MARKING, "definition_type": "tlp", "definition": {"tlp": "purple", "statement": null}}),
            At("/definition/tlp", "STIX 2.1 §7.2.1"),
        ),
        (
            "language-content",
            json!({"contents": null}),
            At("/contents", "STIX 2.1 §7.1"),
        ),
        (
            "language-content",
            json!({"object_ref": format!("bundle--{UUID}")}),
            At("/object_ref", "STIX 2.1 §7.1"),
        ),
        (
            "language-content",
            json!({"contents": {"de": "x"}}),
            At("/contents/de", "STIX 2.1 §7.1"),
        ),
        ("language-content", json!({"object_modified": T0}), Ok),
        (
            "extension-definition",
            json!({"created_by_ref": null}),
            At("/created_by_ref", "STIX 2.1 §7.3"),
        ),
        (
            "extension-definition",
            json!({"extension_types": ["new-widget"]}),
            At("/extension_types/0", "STIX 2.1 §7.3"),
        ),
        (
            "extension-definition",
            json!({"extension_properties": ["x_a"]}),
            At("/extension_properties", "STIX 2.1 §7.3"),
        ),
        (
            "extension-definition",
            json!({"extension_types": ["toplevel-property-extension"], "extension_properties": ["x_a"]}),
            Ok,
        ),
    ]
}

#[test]
fn every_base_object_is_valid() {
    for ty in ALL_TYPES {
        let v = base(ty);
        if let Err(e) = check_object(&v) {
            panic!("base {ty}: {e}");
        }
    }
}

#[test]
fn rule_table() {
    let mut failures = Vec::new();
    let all = cases();
    for (i, (ty, patch, expect)) in all.iter().enumerate() {
        let mut v = base(ty);
        merge(&mut v, patch);
        if let Err(f) = check(&format!("case {i} ({ty} + {patch})"), &v, expect) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn custom_null_and_non_object() {
    let mut v = base("indicator");
    v["x_acme_none"] = Value::Null;
    let e = check_object(&v).unwrap_err();
    assert!(e.has("/x_acme_none", "STIX 2.1 §11.1"), "{e}");
    let e = check_object(&json!([1, 2])).unwrap_err();
    assert!(e.has("", S32), "{e}");
    assert_eq!(
        e.to_string(),
        "(no id): (object): a STIX object must be a JSON object (STIX 2.1 §3.2)"
    );
}

#[test]
fn all_violations_are_reported_and_display_is_bounded() {
    let v = json!({
        "type": "indicator", "spec_version": "2.1", "id": format!("indicator--{UUID}"),
        "created": "2024-01-01T00:00:00Z", "modified": "2023-01-01T00:00:00.000Z",
        "confidence": 500, "labels": [], "pattern_type": "stix", "valid_from": "yesterday",
    });
    let e = check_object(&v).unwrap_err();
    assert_eq!(e.id.as_deref(), Some(format!("indicator--{UUID}").as_str()));
    for (path, section) in [
        ("/created", S32),
        ("/confidence", "STIX 2.1 §2.10"),
        ("/labels", "STIX 2.1 §2.12"),
        ("/valid_from", "STIX 2.1 §2.15"),
        ("/pattern", "STIX 2.1 §4.7"),
    ] {
        assert!(e.has(path, section), "missing {path}: {e}");
    }
    let text = e.to_string();
    assert!(text.starts_with(&format!("indicator--{UUID}: ")), "{text}");
    assert!(
        text.contains("/confidence: must be an integer from 0 to 100 (STIX 2.1 §2.10)"),
        "{text}"
    );

    // Thousands of bad references: counted, kept bounded, displayed bounded.
    let refs: Vec<Value> = (0..5000).map(|i| json!(format!("bad-{i}"))).collect();
    let mut v = base("report");
    v["object_refs"] = Value::Array(refs);
    let e = check_object(&v).unwrap_err();
    assert_eq!(e.total, 5000);
    assert_eq!(e.violations.len(), anyam_stix::KEEP_LIMIT);
    let text = e.to_string();
    assert!(
        text.ends_with(&format!("; and {} more", 5000 - anyam_stix::DISPLAY_LIMIT)),
        "{text}"
    );
    assert!(text.len() < 2000, "display too long: {}", text.len());

    // Foreign property names are clipped in the text too.
    let mut v = base("indicator");
    v["X".repeat(100_000)] = json!(1);
    v["labels"] = json!([]);
    let text = check_object(&v).unwrap_err().to_string();
    assert!(text.len() < 1000, "display too long: {}", text.len());
}

#[test]
fn invalid_is_a_std_error() {
    fn takes(_: &dyn std::error::Error) {}
    let e: Invalid = check_object(&json!({})).unwrap_err();
    takes(&e);
    let wrapped: anyam_stix::Error = e.into();
    assert!(
        wrapped
            .to_string()
            .starts_with("(no id): /type: required property is missing")
    );
}

#[test]
fn object_info_fields_and_versions() {
    let mut v = base("indicator");
    merge(
        &mut v,
        &json!({"modified": "2024-03-01T10:00:00.123456Z", "revoked": true, "created_by_ref": ID_IDENTITY,
        "object_marking_refs": [ID_MARKING], "granular_markings": [{"selectors": ["pattern"], "marking_ref": ID_MARKING}]}),
    );
    let info: ObjectInfo = check_object(&v).unwrap();
    assert_eq!(info.id, format!("indicator--{UUID}"));
    assert_eq!(info.object_type, "indicator");
    assert_eq!(info.spec_version, "2.1");
    assert!(info.revoked);
    assert!(!info.custom);
    assert_eq!(info.kind, anyam_stix::ObjectKind::Sdo);
    assert_eq!(info.version(), Some("2024-03-01T10:00:00.123456Z"));
    assert_eq!(info.version_micros(), Some(1_709_287_200_123_456));
    assert_eq!(info.created.as_ref().map(|t| t.as_str()), Some(T0));
    assert_eq!(info.created_by_ref.as_deref(), Some(ID_IDENTITY));
    assert_eq!(info.object_marking_refs, vec![ID_MARKING.to_owned()]);
    assert_eq!(info.granular_marking_refs, vec![ID_MARKING.to_owned()]);
    assert_eq!(info.marking_refs(), vec![ID_MARKING]);

    // A marking-definition has no `modified`: its version is `created`.
    let info = check_object(&base("marking-definition")).unwrap();
    assert_eq!(info.version(), Some(T0));
    assert_eq!(info.kind, anyam_stix::ObjectKind::MarkingDefinition);

    // An SCO has neither; spec_version defaults to 2.1.
    let mut v = base("ipv4-addr");
    v.as_object_mut().unwrap().remove("spec_version");
    let info = check_object(&v).unwrap();
    assert_eq!((info.version(), info.version_micros()), (None, None));
    assert_eq!(info.spec_version, "2.1");
    assert_eq!(info.kind, anyam_stix::ObjectKind::Sco);

    let info = check_object(&base("x-acme-widget")).unwrap();
    assert!(info.custom);
    assert_eq!(info.kind, anyam_stix::ObjectKind::Sdo);
}

#[test]
fn validation_never_rewrites_the_value() {
    for ty in ALL_TYPES {
        let v = base(ty);
        let before = serde_json::to_string(&v).unwrap();
        let _ = check_object(&v);
        assert_eq!(before, serde_json::to_string(&v).unwrap());
    }
}

// ---------------------------------------------------------------------------
// Bundles (§8)

#[test]
fn bundles() {
    let good = base("indicator");
    let mut bad = base("malware");
    bad.as_object_mut().unwrap().remove("is_family");
    let b = json!({"type": "bundle", "id": format!("bundle--{UUID}"), "objects": [good, bad, base("ipv4-addr")]});
    let checked = check_bundle(&b).unwrap();
    assert_eq!(checked.id, format!("bundle--{UUID}"));
    assert_eq!(checked.objects.len(), 3);
    assert_eq!(checked.valid_count(), 2);
    let err = checked.objects[1].as_ref().unwrap_err();
    assert!(err.has("/is_family", "STIX 2.1 §4.11"), "{err}");

    let empty = json!({"type": "bundle", "id": format!("bundle--{UUID}")});
    assert_eq!(check_bundle(&empty).unwrap().objects.len(), 0);

    for (patch, path) in [
        (json!({"type": "report"}), "/type"),
        (json!({"id": format!("report--{UUID}")}), "/id"),
        (json!({"id": "bundle--x"}), "/id"),
        (json!({"id": null}), "/id"),
        (json!({"objects": []}), "/objects"),
        (json!({"objects": {"a": 1}}), "/objects"),
    ] {
        let mut b = b.clone();
        merge(&mut b, &patch);
        let e = check_bundle(&b).unwrap_err();
        assert!(e.has(path, "STIX 2.1 §8"), "{patch}: {e}");
    }
    assert!(check_bundle(&json!("bundle")).is_err());
}

// ---------------------------------------------------------------------------
// Canonical digest (RFC 8785)

#[test]
fn digest_ignores_member_order_and_whitespace_only() {
    let a: Value =
        serde_json::from_str(r#"{"b": 1, "a": [true, null, "x"], "c": {"z": 1.5, "y": 1e3}}"#)
            .unwrap();
    let b: Value =
        serde_json::from_str(r#"{"c":{"y":1000,"z":1.50},"a":[true,null,"x"],"b":1.0}"#).unwrap();
    assert_eq!(canonical_digest(&a), canonical_digest(&b));
    assert_eq!(
        canonical_json(&a),
        r#"{"a":[true,null,"x"],"b":1,"c":{"y":1000,"z":1.5}}"#
    );
    let c: Value =
        serde_json::from_str(r#"{"b": 2, "a": [true, null, "x"], "c": {"z": 1.5, "y": 1e3}}"#)
            .unwrap();
    assert_ne!(canonical_digest(&a), canonical_digest(&c));
}

/// Property names the rule tables know, for the property-value fuzz test.
const PROPERTY_NAMES: &[&str] = &[
    "type",
    "id",
    "spec_version",
    "created",
    "modified",
    "created_by_ref",
    "revoked",
    "labels",
    "confidence",
    "lang",
    "external_references",
    "object_marking_refs",
    "granular_markings",
    "extensions",
    "defanged",
    "name",
    "description",
    "aliases",
    "kill_chain_phases",
    "first_seen",
    "last_seen",
    "object_refs",
    "pattern",
    "pattern_type",
    "valid_from",
    "valid_until",
    "latitude",
    "longitude",
    "precision",
    "is_family",
    "sample_ref",
    "number_observed",
    "objects",
    "opinion",
    "published",
    "relationship_type",
    "source_ref",
    "target_ref",
    "start_time",
    "stop_time",
    "sighting_of_ref",
    "count",
    "where_sighted_refs",
    "payload_bin",
    "url",
    "hashes",
    "number",
    "contains_refs",
    "value",
    "resolves_to_refs",
    "is_multipart",
    "body",
    "body_multipart",
    "size",
    "parent_directory_ref",
    "protocols",
    "src_ref",
    "src_port",
    "is_active",
    "end",
    "pid",
    "environment_variables",
    "languages",
    "cpe",
    "key",
    "values",
    "x509_v3_extensions",
    "definition_type",
    "definition",
    "contents",
    "object_ref",
    "extension_types",
    "extension_properties",
    "x_custom",
    "x_custom_ref",
    "x_custom_bin",
];

fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        "[\\x00-\\x7f]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 512,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// Our streaming canonicalizer produces exactly what the serde_jcs crate does.
    #[test]
    fn canonical_json_matches_serde_jcs(v in arb_json()) {
        let ours = canonical_json(&v);
        let theirs = serde_jcs::to_string(&v).unwrap();
        proptest::prop_assert_eq!(ours, theirs);
    }

    /// Strings long enough to be scanned a word at a time, with characters
    /// to escape at every position (inside and across eight-byte words).
    #[test]
    fn canonical_strings_match_serde_jcs(
        s in "([a-z0-9:.-]{0,9}|[\\x00-\\x1f\"\\\\]|\\PC){0,24}"
    ) {
        let v = Value::String(s);
        proptest::prop_assert_eq!(canonical_json(&v), serde_jcs::to_string(&v).unwrap());
    }

    /// Arbitrary JSON never panics the validator or the bundle checker.
    #[test]
    fn validation_is_total(v in arb_json()) {
        let _ = check_object(&v);
        let _ = check_bundle(&v);
        let _ = deterministic_sco_id("file", &v);
    }

    /// Arbitrary values in the properties the tables know never panic, and
    /// an invalid result always names at least one violation.
    #[test]
    fn arbitrary_property_values_are_judged(
        ty in proptest::sample::select(ALL_TYPES),
        key in proptest::sample::select(PROPERTY_NAMES),
        value in arb_json(),
    ) {
        let mut v = base(ty);
        v[key] = value;
        if let Err(e) = check_object(&v) {
            proptest::prop_assert!(!e.violations.is_empty() && e.total >= e.violations.len());
            proptest::prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Any text that is not a timestamp is rejected without panicking.
    #[test]
    fn timestamp_parser_total(s in "\\PC{0,40}") {
        let _ = parse_timestamp(&s);
    }

    /// Timestamps round-trip: text kept exactly; the instant agrees with jiff.
    #[test]
    fn timestamp_round_trip(
        secs in -62_135_596_800i64..253_402_300_799,
        frac in proptest::option::of("[0-9]{1,9}"),
    ) {
        let base = jiff::Timestamp::from_second(secs).unwrap();
        let whole = base.strftime("%Y-%m-%dT%H:%M:%S").to_string();
        let text = match &frac { Some(f) => format!("{whole}.{f}Z"), None => format!("{whole}Z") };
        let t = parse_timestamp(&text).unwrap();
        proptest::prop_assert_eq!(t.as_str(), text.as_str());
        proptest::prop_assert_eq!(t.fraction_digits(), frac.as_ref().map_or(0, String::len));
        // jiff reads at most nine fractional digits, as generated here.
        let jiff_ts: jiff::Timestamp = text.parse().unwrap();
        proptest::prop_assert_eq!(t.nanos(), jiff_ts.as_nanosecond());
        // Microseconds are the floor, so ordering by them never inverts two instants.
        proptest::prop_assert_eq!(i128::from(t.micros()), jiff_ts.as_nanosecond().div_euclid(1000));
        // Longer fractions: the first nine digits decide the instant.
        let nine = format!("{:0<9}", frac.as_deref().unwrap_or(""));
        let longer = parse_timestamp(&format!("{whole}.{nine}987Z")).unwrap();
        proptest::prop_assert_eq!(longer.micros(), t.micros());
        let again = parse_timestamp(&anyam_stix::format_micros(t.micros(), 6)).unwrap();
        proptest::prop_assert_eq!(again.micros(), t.micros());
    }
}

// ---------------------------------------------------------------------------
// Deterministic SCO ids (§2.9)

/// Expected ids computed once with the OASIS Python `stix2` library (v3):
/// `stix2.parse(dict(type=T, spec_version="2.1", **props), version="2.1").id`.
#[test]
fn deterministic_ids_match_the_reference_library() {
    let cases = [
        (
            "ipv4-addr",
            json!({"value": "198.51.100.3"}),
            "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4",
        ),
        (
            "ipv6-addr",
            json!({"value": "2001:db8::1"}),
            "ipv6-addr--6469e3a9-b053-5e34-a025-9396ae051d26",
        ),
        (
            "domain-name",
            json!({"value": "example.com"}),
            "domain-name--bedb4899-d24b-5401-bc86-8f6b4cc18ec7",
        ),
        (
            "url",
            json!({"value": "http://example.com/a?b=1"}),
            "url--a75aaa3c-cd2e-5783-833a-e9e9aeb98402",
        ),
        (
            "email-addr",
            json!({"value": "john@example.com"}),
            "email-addr--7165e2a9-671f-585d-b1e1-ca59c671d934",
        ),
        (
            "mac-addr",
            json!({"value": "00:11:22:33:44:55"}),
            "mac-addr--56c46416-7118-5199-a206-1d701ab3f69f",
        ),
        (
            "mutex",
            json!({"name": "__CLEANSWEEP__"}),
            "mutex--f93fe911-e545-5239-b9b0-597840d0c871",
        ),
        (
            "autonomous-system",
            json!({"number": 15139}),
            "autonomous-system--3aa27478-50b5-5ab8-9da9-cdc12b657fff",
        ),
        (
            "directory",
            json!({"path": "C:\\Windows\\System32"}),
            "directory--0a58d0c1-59e6-5afd-8252-dcd3f13e5622",
        ),
        (
            "file",
            json!({"name": "malware.exe", "hashes": {"SHA-256": "fe90a7e910cb3a4739bed9180e807e93fa70c90f25a8915476f5e4bfbac681db", "MD5": "0123456789abcdef0123456789abcdef"}}),
            "file--566efae5-5803-5956-b1f6-38adb3a9b26a",
        ),
        (
            "file",
            json!({"name": "qwerty.dll"}),
            "file--06ce4029-bd3e-524d-bc97-61a81394c0d6",
        ),
        (
            "software",
            json!({"name": "Word", "vendor": "Microsoft", "version": "2002", "cpe": "cpe:2.3:a:microsoft:word:2000:*:*:*:*:*:*:*"}),
            "software--710b0b41-d4d0-5d6c-a400-fc9254554ffc",
        ),
        (
            "user-account",
            json!({"account_type": "unix", "user_id": "1001", "account_login": "jdoe"}),
            "user-account--f94d689e-707d-58c3-b803-c720bb6ed096",
        ),
        (
            "windows-registry-key",
            json!({"key": "HKEY_LOCAL_MACHINE\\System\\Foo\\Bar", "values": [{"name": "Foo", "data": "qwerty", "data_type": "REG_SZ"}]}),
            "windows-registry-key--a485b5d9-834c-5558-9a81-be947e91b3ec",
        ),
        (
            "x509-certificate",
            json!({"serial_number": "36:f7:d4:32:f4:ab:70:ea:d3:ce:98:6e:ea:99:93:49:32:0a:b7:06"}),
            "x509-certificate--bf86f034-2390-54d7-8426-d08433db3fbe",
        ),
        (
            "email-message",
            json!({"is_multipart": false, "subject": "Hi \u{e9}t\u{e9}", "body": "x\ny", "from_ref": "email-addr--2d77a846-6264-5d51-b586-e43822ea1ea3"}),
            "email-message--60c8d9a1-e7d0-5e89-94b4-6ab51ecc4197",
        ),
        (
            "network-traffic",
            json!({"src_ref": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd", "dst_ref": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd", "src_port": 2487, "dst_port": 1723, "protocols": ["ipv4", "pptp"]}),
            "network-traffic--7beeb2d1-16ad-525c-a5a4-fe541cfdc19a",
        ),
        (
            "artifact",
            json!({"payload_bin": "VBORw0KGgoAAAANSUhEUgAAADI==", "mime_type": "image/jpeg"}),
            "artifact--30db9816-3444-5ab6-8e93-f9262c146d34",
        ),
    ];
    for (ty, props, expected) in cases {
        assert_eq!(
            deterministic_sco_id(ty, &props).unwrap(),
            expected,
            "{ty} {props}"
        );
    }
}

#[test]
fn deterministic_id_fallbacks_and_errors() {
    // No ID-contributing property: a random UUIDv4 (§2.9); process always.
    let a = deterministic_sco_id("process", &json!({"pid": 4})).unwrap();
    let b = deterministic_sco_id("process", &json!({"pid": 4})).unwrap();
    assert_ne!(a, b);
    assert_eq!(&a[..9], "process--");
    assert_eq!(a.as_bytes()[9 + 14], b'4');
    let c = deterministic_sco_id("file", &json!({"size": 3})).unwrap();
    assert_eq!(c.as_bytes()[6 + 14], b'4');
    // The generated ids validate.
    let mut v = base("file");
    v["id"] = json!(deterministic_sco_id("file", &v).unwrap());
    check_object(&v).unwrap();
    assert!(matches!(
        deterministic_sco_id("indicator", &json!({})),
        Err(anyam_stix::Error::NotAnSco(_))
    ));
    assert!(matches!(
        deterministic_sco_id("url", &json!("x")),
        Err(anyam_stix::Error::NotAnObject)
    ));
}
