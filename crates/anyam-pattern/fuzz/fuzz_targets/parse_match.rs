//! Fuzz target: parse, print, re-parse, validate and match arbitrary input; nothing may panic.
#![no_main]

use anyam_pattern::{Matcher, Observations, StixVersion, parse, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let obs_json = serde_json::json!([{"type": "bundle", "id": "bundle--1", "objects": [
        {"type": "observed-data", "id": "observed-data--1", "number_observed": 2,
         "first_observed": "2020-01-01T00:00:00Z", "last_observed": "2020-01-01T00:00:05Z",
         "object_refs": ["file--1"]},
        {"type": "file", "id": "file--1", "name": "a", "parent_ref": "file--1", "list": [1, "a"]}]}]);
    for version in [StixVersion::V2_1, StixVersion::V2_0] {
        if let Ok(tree) = parse(text, version) {
            assert_eq!(parse(&tree.to_string(), version).ok(), Some(tree));
        }
        let _ = validate(text, version);
        if let (Ok(m), Ok(o)) = (Matcher::new(text, version), Observations::from_json(&obs_json, version)) {
            let _ = m.matches(&o);
        }
    }
});
