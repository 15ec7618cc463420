//! The ingest pipeline shared by TAXII POST and `anyam import`: one STIX
//! object in, either a [`NewObject`] ready for the store or a rejection that
//! names what is wrong.

use anyam_pattern::StixVersion;
use anyam_store::NewObject;
use serde_json::Value;

/// Why one object was not accepted. `id` and `version` are what the object
/// claimed, as far as they could be read, for the status resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub id: String,
    pub version: String,
    pub message: String,
}

fn claimed(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Validate one object (STIX 2.1 object rules, and for indicators with
/// `pattern_type: stix` the pattern itself, STIX 2.1 §9) and prepare it for
/// storage. `raw` is the object's JSON text exactly as received; it is what
/// the store keeps and serves.
///
/// The version's release label (`anyam_policy::label_of`) names the host
/// organization as its source; [`prepare_from`] names another.
pub fn prepare(raw: &str) -> Result<NewObject, Rejection> {
    prepare_from(raw, None, None)
}

/// [`prepare`] for a version submitted by `org` (`None`: the host
/// organization) and `user`.
pub fn prepare_from(
    raw: &str,
    org: Option<&str>,
    user: Option<&str>,
) -> Result<NewObject, Rejection> {
    let value: Value = serde_json::from_str(raw).map_err(|e| Rejection {
        id: String::new(),
        version: String::new(),
        message: format!("not valid JSON: {e}"),
    })?;
    let mut o = prepare_value(&value, raw.to_string())?;
    o.release_label = anyam_policy::label_of(&value).with_source(org, user).key();
    Ok(o)
}

/// [`prepare`] for an already parsed value; `raw` must be its text. The
/// source is the host organization.
pub fn prepare_value(value: &Value, raw: String) -> Result<NewObject, Rejection> {
    prepare_digested(value, raw, None)
}

/// [`prepare_value`] for a caller that already computed the value's
/// canonical digest (`anyam_stix::canonical_digest`), which is then not
/// computed again.
pub fn prepare_value_digested(
    value: &Value,
    raw: String,
    digest: [u8; 32],
) -> Result<NewObject, Rejection> {
    prepare_digested(value, raw, Some(digest))
}

/// A property's text, when it is a string (what search by word reads).
fn text_of(value: &Value, property: &str) -> Option<String> {
    value
        .get(property)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn prepare_digested(
    value: &Value,
    raw: String,
    digest: Option<[u8; 32]>,
) -> Result<NewObject, Rejection> {
    let reject = |message: String| Rejection {
        id: claimed(value, "id"),
        version: {
            let m = claimed(value, "modified");
            if m.is_empty() {
                claimed(value, "created")
            } else {
                m
            }
        },
        message,
    };
    if !value.is_object() {
        return Err(reject("a STIX object must be a JSON object".into()));
    }
    let info = anyam_stix::check_object(value).map_err(|e| reject(e.to_string()))?;
    let version = if info.spec_version == "2.0" {
        StixVersion::V2_0
    } else {
        StixVersion::V2_1
    };
    let mut tree = None;
    if info.object_type == "indicator"
        && value.get("pattern_type").and_then(Value::as_str) == Some("stix")
    {
        let pattern = value.get("pattern").and_then(Value::as_str).unwrap_or("");
        let (parsed, v) = anyam_pattern::validate_parsed(pattern, version);
        if !v.is_valid() {
            let errors: Vec<String> = v.errors.iter().map(ToString::to_string).collect();
            return Err(reject(format!(
                "{}: /pattern: invalid STIX pattern: {} (STIX 2.1 §9)",
                info.id,
                errors.join("; ")
            )));
        }
        tree = parsed;
    }
    let observables =
        crate::observables::observable_values(value, &info.object_type, tree.as_ref());
    Ok(NewObject {
        digest: digest.unwrap_or_else(|| anyam_stix::canonical_digest(value)),
        version: info.version().map(str::to_string),
        version_micros: info.version_micros(),
        id: info.id,
        object_type: info.object_type,
        spec_version: info.spec_version,
        raw,
        release_label: anyam_policy::label_of(value).key(),
        observables,
        name: text_of(value, "name"),
        description: text_of(value, "description"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What search by word reads is the object's name and description as
    /// text (JSON escapes decoded), and only when they are strings.
    #[test]
    fn name_and_description_are_kept_as_text_when_strings() {
        let base = r#""type":"x-anyam-test","spec_version":"2.1","id":"x-anyam-test--6b0a3f6e-31a4-4f7e-9a43-0c4f8f1b2a11","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-01T00:00:00.000Z""#;
        let o = prepare(&format!(
            r#"{{{base},"name":"Charge d\u00e9tect\u00e9e","description":"ligne \"1\"\n"}}"#
        ))
        .map_err(|r| r.message)
        .expect("valid");
        assert_eq!(o.name.as_deref(), Some("Charge détectée"));
        assert_eq!(o.description.as_deref(), Some("ligne \"1\"\n"));
        let o = prepare(&format!(r#"{{{base},"name":7,"description":["a"]}}"#))
            .map_err(|r| r.message)
            .expect("valid");
        assert_eq!((o.name, o.description), (None, None));
    }
}
