//! Deterministic SCO identifiers (STIX 2.1 §2.9 and each SCO's "ID Contributing Properties" in §6).

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::canonical::canonical_json;
use crate::error::Error;
use crate::validate::is_sco_type;

/// The namespace STIX 2.1 §2.9 fixes for UUIDv5 SCO identifiers.
pub const SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00ab_edb4_aa42_466c_9c01_fed2_3315_a9b7);

/// The ID-contributing properties of each STIX 2.1 SCO type, in the order
/// the spec lists them (the order does not matter: the canonical JSON sorts them).
pub(crate) fn contributing(object_type: &str) -> Option<&'static [&'static str]> {
    Some(match object_type {
        "artifact" => &["hashes", "payload_bin"],
        "autonomous-system" => &["number"],
        "directory" => &["path"],
        "domain-name" | "email-addr" | "ipv4-addr" | "ipv6-addr" | "mac-addr" | "url" => &["value"],
        "email-message" => &["from_ref", "subject", "body"],
        "file" => &["hashes", "name", "extensions", "parent_directory_ref"],
        "mutex" => &["name"],
        "network-traffic" => &[
            "start",
            "end",
            "src_ref",
            "dst_ref",
            "src_port",
            "dst_port",
            "protocols",
            "extensions",
        ],
        // §6.13: a process has no ID-contributing properties, so its id is always UUIDv4.
        "process" => &[],
        "software" => &["name", "cpe", "swid", "vendor", "version"],
        "user-account" => &["account_type", "user_id", "account_login"],
        "windows-registry-key" => &["key", "values"],
        "x509-certificate" => &["hashes", "serial_number"],
        _ => return None,
    })
}

/// The identifier an SCO of `object_type` with these `properties` should
/// have (STIX 2.1 §2.9): `type--UUIDv5` in [`SCO_NAMESPACE`] over the RFC 8785
/// canonical JSON of the type's ID-contributing properties that are present.
/// When none is present (and always for `process`), the spec falls back to
/// a random UUIDv4.
///
/// `hashes` contributes a single hash (§2.9): the first of MD5, SHA-1,
/// SHA-256, SHA-512 present; else the first key in sorted order (the spec
/// leaves this choice to the producer; sorting makes it reproducible).
pub fn deterministic_sco_id(object_type: &str, properties: &Value) -> Result<String, Error> {
    if !is_sco_type(object_type) {
        return Err(Error::NotAnSco(crate::error::clip(object_type, 64)));
    }
    let names = contributing(object_type).ok_or_else(|| Error::NotAnSco(object_type.to_owned()))?;
    let props = properties.as_object().ok_or(Error::NotAnObject)?;
    let mut picked = Map::new();
    for &name in names {
        let Some(v) = props.get(name) else { continue };
        if name == "hashes" {
            if let Some(h) = choose_hash(v) {
                picked.insert(name.to_owned(), h);
            }
        } else {
            picked.insert(name.to_owned(), v.clone());
        }
    }
    let uuid = if picked.is_empty() {
        Uuid::new_v4()
    } else {
        Uuid::new_v5(
            &SCO_NAMESPACE,
            canonical_json(&Value::Object(picked)).as_bytes(),
        )
    };
    Ok(format!("{object_type}--{uuid}"))
}

fn choose_hash(hashes: &Value) -> Option<Value> {
    let m = hashes.as_object()?;
    let (k, v) = ["MD5", "SHA-1", "SHA-256", "SHA-512"]
        .iter()
        .find_map(|k| m.get_key_value(*k))
        .or_else(|| {
            m.iter()
                .min_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()))
        })?;
    let mut one = Map::new();
    one.insert(k.clone(), v.clone());
    Some(Value::Object(one))
}
