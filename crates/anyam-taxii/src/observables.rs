//! The exact observable values an object carries, for search by value:
//! the identifying properties of cyber-observable objects, the `hashes` of
//! any object, and the values an indicator's STIX pattern compares
//! against (`=`, `IN`, `ISSUBSET`; not negated ones, which name what is
//! *not* sought).

use std::collections::BTreeSet;

use anyam_pattern::ast::{CompOp, ComparisonExpr, Literal, ObservationExpr, Pattern};
use serde_json::Value;

/// At most this many values are indexed per object, each at most
/// [`MAX_VALUE_LEN`] bytes: search is for indicators of compromise, not
/// for bulk text.
pub const MAX_VALUES: usize = 1_000;
pub const MAX_VALUE_LEN: usize = 2_048;

/// The identifying property of each cyber-observable type that has one
/// (STIX 2.1 §6), besides `hashes`.
const SCO_KEYS: &[(&str, &[&str])] = &[
    ("ipv4-addr", &["value"]),
    ("ipv6-addr", &["value"]),
    ("domain-name", &["value"]),
    ("url", &["value"]),
    ("email-addr", &["value"]),
    ("mac-addr", &["value"]),
    ("autonomous-system", &["number"]),
    ("file", &["name"]),
    ("mutex", &["name"]),
    ("directory", &["path"]),
    ("windows-registry-key", &["key"]),
    ("user-account", &["user_id", "account_login"]),
    ("x509-certificate", &["serial_number"]),
];

/// The values of one valid object, trimmed and in lower case, each once.
/// `pattern` is the parsed STIX pattern of an indicator.
pub fn observable_values(
    object: &Value,
    object_type: &str,
    pattern: Option<&Pattern>,
) -> Vec<String> {
    let mut out = BTreeSet::new();
    if let Some(hashes) = object.get("hashes").and_then(Value::as_object) {
        for h in hashes.values() {
            add_json(&mut out, h);
        }
    }
    if let Some((_, keys)) = SCO_KEYS.iter().find(|(t, _)| *t == object_type) {
        for k in *keys {
            if let Some(v) = object.get(*k) {
                add_json(&mut out, v);
            }
        }
    }
    if let Some(p) = pattern {
        observation(&mut out, &p.root);
    }
    out.into_iter().take(MAX_VALUES).collect()
}

fn add(out: &mut BTreeSet<String>, s: &str) {
    let s = s.trim();
    if !s.is_empty() && s.len() <= MAX_VALUE_LEN {
        out.insert(s.to_lowercase());
    }
}

fn add_json(out: &mut BTreeSet<String>, v: &Value) {
    match v {
        Value::String(s) => add(out, s),
        Value::Number(n) => add(out, &n.to_string()),
        _ => {}
    }
}

fn add_literal(out: &mut BTreeSet<String>, l: &Literal) {
    match l {
        Literal::Str(s) => add(out, s),
        Literal::Int(i) => add(out, &i.to_string()),
        _ => {}
    }
}

fn observation(out: &mut BTreeSet<String>, e: &ObservationExpr) {
    match e {
        ObservationExpr::Observation(c) => comparison(out, c),
        ObservationExpr::Group(e) | ObservationExpr::Qualified(e, _) => observation(out, e),
        ObservationExpr::And(es) | ObservationExpr::Or(es) | ObservationExpr::FollowedBy(es) => {
            for e in es {
                observation(out, e);
            }
        }
    }
}

fn comparison(out: &mut BTreeSet<String>, c: &ComparisonExpr) {
    match c {
        ComparisonExpr::And(cs) | ComparisonExpr::Or(cs) => {
            for c in cs {
                comparison(out, c);
            }
        }
        ComparisonExpr::Group(c) => comparison(out, c),
        ComparisonExpr::Test(t) if !t.negated => match &t.op {
            CompOp::Eq(l) => add_literal(out, l),
            CompOp::In(ls) => {
                for l in ls {
                    add_literal(out, l);
                }
            }
            CompOp::IsSubset(s) => add(out, s),
            _ => {}
        },
        ComparisonExpr::Test(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyam_pattern::StixVersion;
    use serde_json::json;

    fn values(o: &Value) -> Vec<String> {
        let t = o["type"].as_str().unwrap_or("");
        let p = o["pattern"]
            .as_str()
            .and_then(|p| anyam_pattern::parse(p, StixVersion::V2_1).ok());
        observable_values(o, t, p.as_ref())
    }

    #[test]
    fn values_of_observables_and_patterns() {
        let f = json!({"type": "file", "name": "Evil.EXE", "hashes": {"SHA-256": "ABCDEF"}});
        assert_eq!(values(&f), ["abcdef", "evil.exe"]);
        let i = json!({"type": "indicator", "pattern_type": "stix",
            "pattern": "[ipv4-addr:value = '198.51.100.7' OR domain-name:value IN ('A.example', 'b.example')] AND [network-traffic:dst_port NOT = 22] AND [ipv4-addr:value ISSUBSET '10.0.0.0/8']"});
        assert_eq!(
            values(&i),
            ["10.0.0.0/8", "198.51.100.7", "a.example", "b.example"]
        );
        let other = json!({"type": "indicator", "pattern_type": "sigma", "pattern": "x"});
        assert!(observable_values(&other, "indicator", None).is_empty());
    }
}
