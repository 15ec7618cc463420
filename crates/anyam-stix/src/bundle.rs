//! Bundles (STIX 2.1 §8): the envelope is checked, then each object on its own.

use serde_json::Value;

use crate::error::{Invalid, Violation};
use crate::ident::parse_id;
use crate::validate::{ObjectInfo, check_object};

const SECTION: &str = crate::validate::sec::BUNDLE;

/// A bundle whose envelope is valid, with one result per object, in order:
/// one bad object does not sink the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleCheck {
    /// The bundle's id (`bundle--UUID`).
    pub id: String,
    /// One result per element of `objects`, in order; empty when the bundle has no `objects`.
    pub objects: Vec<Result<ObjectInfo, Invalid>>,
}

impl BundleCheck {
    /// How many objects are valid.
    pub fn valid_count(&self) -> usize {
        self.objects.iter().filter(|r| r.is_ok()).count()
    }
}

/// Check a bundle (§8): `type` is "bundle", `id` is `bundle--UUID`, and
/// `objects`, when present, is a non-empty list; then every object is
/// checked with [`check_object`]. An invalid envelope is an `Err`; invalid
/// objects are reported per object inside the `Ok`.
pub fn check_bundle(value: &Value) -> Result<BundleCheck, Invalid> {
    let mut violations = Vec::new();
    let mut report = |path: &str, message: &str| {
        violations.push(Violation {
            path: path.to_owned(),
            message: message.to_owned(),
            section: SECTION,
        });
    };
    let Some(map) = value.as_object() else {
        report("", "a bundle must be a JSON object");
        return Err(Invalid {
            id: None,
            total: violations.len(),
            violations,
        });
    };
    match map.get("type") {
        Some(Value::String(t)) if t == "bundle" => {}
        Some(_) => report("/type", "must be \"bundle\""),
        None => report("/type", "required property is missing"),
    }
    let id = map.get("id").and_then(Value::as_str);
    match map.get("id") {
        None => report("/id", "required property is missing"),
        Some(Value::String(s)) => match parse_id(s) {
            Ok(("bundle", _)) => {}
            Ok(_) => report("/id", "must be bundle--UUID"),
            Err(p) => report("/id", p.describe()),
        },
        Some(_) => report("/id", "must be an identifier string"),
    }
    let objects = match map.get("objects") {
        None => None,
        Some(Value::Array(a)) if a.is_empty() => {
            report("/objects", "must not be an empty list");
            None
        }
        Some(Value::Array(a)) => Some(a),
        Some(_) => {
            report("/objects", "must be a list of STIX objects");
            None
        }
    };
    if !violations.is_empty() {
        return Err(Invalid {
            id: id.map(str::to_owned),
            total: violations.len(),
            violations,
        });
    }
    Ok(BundleCheck {
        id: id.unwrap_or_default().to_owned(),
        objects: objects
            .map(|a| a.iter().map(check_object).collect())
            .unwrap_or_default(),
    })
}
