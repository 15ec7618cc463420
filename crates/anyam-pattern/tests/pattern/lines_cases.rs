//! The line protocols of `anyam pattern validate|match|check`, and bindings.

use anyam_pattern::lines::{check, match_lines, validate_lines};
use anyam_pattern::{Matcher, Observations, StixVersion};
use serde_json::json;

fn run(
    f: fn(&[u8], &mut Vec<u8>) -> std::io::Result<anyam_pattern::lines::Summary>,
    input: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    f(input.as_bytes(), &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn v(i: &[u8], o: &mut Vec<u8>) -> std::io::Result<anyam_pattern::lines::Summary> {
    validate_lines(i, o)
}
fn m(i: &[u8], o: &mut Vec<u8>) -> std::io::Result<anyam_pattern::lines::Summary> {
    match_lines(i, o)
}

#[test]
fn validate_protocol() {
    let input = [
        r#"{"pattern": "[file:size = 1]"}"#,
        r#"{"pattern": "[file:size = ]", "stix_version": "2.1"}"#,
        "not json",
        r#"{"stix_version": "2.0"}"#,
        "",
        r#"{"pattern": "[x:EXISTS = 1]", "stix_version": "2.0"}"#,
        r#"{"pattern": "[a:b = 1]", "stix_version": "3.0"}"#,
    ]
    .join("\n");
    let out = run(v, &input);
    assert_eq!(out.len(), 7, "{out:?}");
    let parsed: Vec<serde_json::Value> = out
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed[0]["valid"], true);
    assert_eq!(parsed[1]["valid"], false);
    assert!(parsed[1]["error"].as_str().unwrap().contains("column 14"));
    assert!(parsed[2]["error"].as_str().unwrap().starts_with("line 3:"));
    assert!(
        parsed[3]["error"]
            .as_str()
            .unwrap()
            .starts_with("line 4: missing \"pattern\"")
    );
    assert!(parsed[4]["error"].as_str().unwrap().starts_with("line 5:"));
    assert_eq!(parsed[5]["valid"], true);
    assert!(parsed[5]["warnings"].is_array());
    assert!(
        parsed[6]["error"]
            .as_str()
            .unwrap()
            .contains("stix_version")
    );
}

#[test]
fn match_protocol() {
    let obs = json!([{"type": "bundle", "id": "bundle--1", "objects": [
        {"type": "observed-data", "id": "observed-data--1", "number_observed": 1,
         "first_observed": "2020-01-01T00:00:00Z", "last_observed": "2020-01-01T00:00:00Z",
         "object_refs": ["file--1"]},
        {"type": "file", "id": "file--1", "name": "a.exe"}]}]);
    let lines = [
        json!({"pattern": "[file:name = 'a.exe']", "observations": obs}).to_string(),
        json!({"pattern": "[file:name = 'b.exe']", "observations": obs}).to_string(),
        json!({"pattern": "[file:name = ", "observations": obs}).to_string(),
        json!({"pattern": "[file:name = 'a']"}).to_string(),
        "{".to_string(),
    ];
    let out = run(m, &lines.join("\n"));
    assert_eq!(out[0], "match");
    assert_eq!(out[1], "nomatch");
    assert!(out[2].starts_with("error: line 1, column 14"), "{}", out[2]);
    assert!(
        out[3].starts_with("error: line 4: missing \"observations\""),
        "{}",
        out[3]
    );
    assert!(out[4].starts_with("error: line 5:"), "{}", out[4]);
    assert_eq!(out.len(), 5);
}

#[test]
fn check_shows_caret() {
    let (text, ok) = check("[file:size = ]", StixVersion::V2_1);
    assert!(!ok);
    assert!(text.contains("[file:size = ]\n             ^\n"), "{text}");
    let (text, ok) = check("[file:size==1]", StixVersion::V2_1);
    assert!(ok);
    assert!(text.starts_with("[file:size = 1]\n"), "{text}");
}

#[test]
fn binding_names_the_observations() {
    let mk = |id: &str, t: &str, name: &str| {
        json!({"type": "observed-data", "id": id, "number_observed": 1, "first_observed": t, "last_observed": t,
               "objects": {"0": {"type": "file", "name": name}}})
    };
    let obs = json!([
        mk("od--a", "2020-01-01T00:00:05Z", "b"),
        mk("od--b", "2020-01-01T00:00:01Z", "a"),
        mk("od--c", "2020-01-01T00:00:09Z", "c"),
    ]);
    let o = Observations::from_json(&obs, StixVersion::V2_0).unwrap();
    let m = Matcher::new(
        "[file:name = 'a'] FOLLOWEDBY [file:name = 'b']",
        StixVersion::V2_0,
    )
    .unwrap();
    let b = m.find_binding(&o).unwrap().unwrap();
    assert_eq!(
        b.ids,
        vec![Some("od--a".to_string()), Some("od--b".to_string())]
    );
    let m = Matcher::new(
        "[file:name = 'b'] FOLLOWEDBY [file:name = 'a']",
        StixVersion::V2_0,
    )
    .unwrap();
    assert!(m.find_binding(&o).unwrap().is_none());
    let m = Matcher::new(
        "([file:name = 'a'] AND [file:name = 'c']) WITHIN 5 SECONDS",
        StixVersion::V2_0,
    )
    .unwrap();
    assert!(!m.matches(&o).unwrap());
    let m = Matcher::new(
        "([file:name = 'a'] AND [file:name = 'c']) WITHIN 8 SECONDS",
        StixVersion::V2_0,
    )
    .unwrap();
    assert!(m.matches(&o).unwrap());
    // Spec semantics where the reference differs (REFERENCE-DIFFERENCES.md M1, M2, M5).
    let v4 = json!([{"type": "observed-data", "number_observed": 1, "first_observed": "2020-01-01T00:00:00Z",
        "last_observed": "2020-01-01T00:00:00Z",
        "objects": {"0": {"type": "ipv6-addr", "value": "2001:db8::1"}, "1": {"type": "ipv4-addr", "value": "10.0.0.1"}}}]);
    let o = Observations::from_json(&v4, StixVersion::V2_0).unwrap();
    for (p, want) in [
        ("[ipv6-addr:value ISSUBSET '2001:db8::/32']", true),
        ("[ipv4-addr:value ISSUPERSET '10.0.0.1']", true),
        ("[ipv4-addr:value ISSUBSET '0.0.0.0/0']", true),
        ("[ipv4-addr:name NOT EXISTS]", false),
    ] {
        if let Ok(m) = Matcher::new(p, StixVersion::V2_1) {
            let o21 = Observations::from_json(&v4, StixVersion::V2_1).unwrap();
            assert_eq!(m.matches(&o21).unwrap(), want, "{p}");
        }
    }
    let m = Matcher::new("[NOT EXISTS ipv4-addr:name]", StixVersion::V2_1).unwrap();
    assert!(
        m.matches(&Observations::from_json(&v4, StixVersion::V2_1).unwrap())
            .unwrap()
    );
    let m = Matcher::new("[EXISTS ipv4-addr:name]", StixVersion::V2_1).unwrap();
    assert!(
        !m.matches(&Observations::from_json(&v4, StixVersion::V2_1).unwrap())
            .unwrap()
    );
    let _ = o;
}
