//! Property kinds (the STIX 2.1 §2 data types) and the table-driven walk over an object's properties.

use serde_json::{Map, Value};

use super::ctx::{Ctx, Path};
use super::sec;
use super::types;
use crate::error::clip;
use crate::ident::{is_dict_key, is_property_name, parse_id};
use crate::timestamp::parse_timestamp;

/// Which object types a reference property may point to.
#[derive(Clone, Copy)]
pub(crate) enum Refs {
    /// Any object type.
    Any,
    /// Only these types.
    Only(&'static [&'static str]),
    /// Any type except these.
    Not(&'static [&'static str]),
}

impl Refs {
    fn allows(self, ty: &str) -> bool {
        match self {
            Refs::Any => true,
            Refs::Only(list) => list.contains(&ty),
            Refs::Not(list) => !list.contains(&ty),
        }
    }

    fn refusal(self, ty: &str) -> String {
        match self {
            Refs::Only(list) => format!("must reference {}, not {ty}", list.join(" or ")),
            Refs::Any | Refs::Not(_) => format!("must not reference a {ty}"),
        }
    }
}

/// The data type of a property, with the constraints the spec puts on it.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// string (§2.14)
    Str,
    /// boolean (§2.2)
    Bool,
    /// integer (§2.10) within an inclusive range
    Int(i64, i64),
    /// float (§2.6) within an inclusive range
    Float(f64, f64),
    /// timestamp (§2.15)
    Ts,
    /// timestamp precise to at least the millisecond (`created`, `modified`, §3.2)
    TsMillis,
    /// identifier (§2.9) of an allowed type
    Ref(Refs),
    /// non-empty list (§2.12) of identifiers of allowed types
    RefList(Refs),
    /// non-empty list of strings
    StrList,
    /// dictionary (§2.3)
    Dict,
    /// hashes (§2.7)
    Hashes,
    /// non-empty list of kill-chain-phase (§2.11)
    KillChain,
    /// hex (§2.8)
    Hex,
    /// binary, base64 (§2.1)
    Binary,
    /// a string from a closed enumeration (§2.4)
    Enum(&'static [&'static str]),
    /// a non-empty list of strings from a closed enumeration
    EnumList(&'static [&'static str]),
    /// a nested object with its own property table
    Nested(&'static Spec),
    /// a non-empty list of nested objects
    NestedList(&'static Spec),
    /// a list of nested objects that may be empty
    NestedListMaybeEmpty(&'static Spec),
    /// a non-empty JSON object whose inside is not checked
    Obj,
    /// `external_references` (§2.5)
    ExtRefs,
    /// `granular_markings` (§7.2.3)
    Granular,
    /// `extensions` (§7.3)
    Extensions,
    /// `spec_version`: the literal "2.1" (§3.2)
    SpecVersion,
    /// an RFC 5646 language tag (`lang`, §3.2)
    Lang,
}

/// A rule that looks across the properties of one (nested) object.
pub(crate) type Rule = fn(&Map<String, Value>, &Path, &mut Ctx);

/// The property table of an object type, an extension, or a nested structure.
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    /// The section defining this object, cited for its required properties and rules.
    pub(crate) section: &'static str,
    pub(crate) props: &'static [(&'static str, Kind)],
    pub(crate) required: &'static [&'static str],
    /// "MUST contain at least one property from this object/extension".
    pub(crate) at_least_one: bool,
    pub(crate) rule: Option<Rule>,
}

impl Spec {
    pub(crate) fn kind_of(&self, key: &str) -> Option<Kind> {
        self.props
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, kind)| *kind)
    }
}

/// Walk a nested object against its table (no common properties; unknown
/// keys are accepted, as producers may add custom ones).
pub(crate) fn check_nested(ctx: &mut Ctx, path: &Path, map: &Map<String, Value>, spec: &Spec) {
    for (k, v) in map {
        if let Some(kind) = spec.kind_of(k) {
            check_value(ctx, &path.key(k), v, kind, spec.section);
        }
    }
    check_required(ctx, path, map, spec);
    if let Some(rule) = spec.rule {
        rule(map, path, ctx);
    }
}

pub(crate) fn check_required(ctx: &mut Ctx, path: &Path, map: &Map<String, Value>, spec: &Spec) {
    for req in spec.required {
        if !map.contains_key(*req) {
            ctx.report(
                &path.key(req),
                format!("required property of {} is missing", spec.name),
                spec.section,
            );
        }
    }
    if spec.at_least_one && !spec.props.iter().any(|(k, _)| map.contains_key(*k)) {
        ctx.report(
            path,
            format!(
                "{} must contain at least one of its own properties",
                spec.name
            ),
            spec.section,
        );
    }
}

/// A custom property (§11.1): a valid name, and a value of a STIX type.
pub(crate) fn check_custom(ctx: &mut Ctx, path: &Path, key: &str, v: &Value) {
    let p = path.key(key);
    if !is_property_name(key) {
        ctx.report(
            &p,
            "property names must be 3-250 characters of a-z, 0-9 and _, starting with a letter",
            sec::CUSTOM_PROPERTIES,
        );
        return;
    }
    let kind = if key.ends_with("_refs") {
        Kind::RefList(Refs::Any)
    } else if key.ends_with("_ref") {
        Kind::Ref(Refs::Any)
    } else if key.ends_with("_bin") {
        Kind::Binary
    } else if key.ends_with("_hex") {
        Kind::Hex
    } else {
        check_custom_value(ctx, &p, v);
        return;
    };
    check_value(ctx, &p, v, kind, sec::CUSTOM_PROPERTIES);
}

/// A custom value may be any JSON value except null, and lists are not empty.
fn check_custom_value(ctx: &mut Ctx, path: &Path, v: &Value) {
    match v {
        Value::Null => ctx.report(
            path,
            "null is not a STIX value; omit the property",
            sec::CUSTOM_PROPERTIES,
        ),
        Value::Array(a) if a.is_empty() => ctx.report(path, "lists must not be empty", sec::LIST),
        _ => {}
    }
}

fn type_err(ctx: &mut Ctx, path: &Path, what: &str, section: &'static str) {
    ctx.report(path, format!("must be {what}"), section);
}

/// Check one value against its kind. `section` is the object's section,
/// cited for closed enumerations and nested tables.
pub(crate) fn check_value(
    ctx: &mut Ctx,
    path: &Path,
    v: &Value,
    kind: Kind,
    section: &'static str,
) {
    match kind {
        Kind::Str => {
            if !v.is_string() {
                type_err(ctx, path, "a string", sec::STRING);
            }
        }
        Kind::Bool => {
            if !v.is_boolean() {
                type_err(ctx, path, "a boolean", sec::BOOLEAN);
            }
        }
        Kind::Int(min, max) => {
            let n = v.as_i64().or_else(|| v.as_u64().map(|_| i64::MAX));
            match n {
                Some(n) if n >= min && n <= max => {}
                Some(_) => ctx.report(path, range_msg(min, max), sec::INTEGER),
                None => type_err(ctx, path, "an integer", sec::INTEGER),
            }
        }
        Kind::Float(min, max) => match v.as_f64() {
            Some(f) if f >= min && f <= max => {}
            Some(_) => ctx.report(
                path,
                format!("must be a number from {min} to {max}"),
                sec::FLOAT,
            ),
            None => type_err(ctx, path, "a number", sec::FLOAT),
        },
        Kind::Ts | Kind::TsMillis => match v.as_str() {
            None => type_err(ctx, path, "a timestamp string", sec::TIMESTAMP),
            Some(s) => match parse_timestamp(s) {
                Err(e) => ctx.report(
                    path,
                    format!("{:?} is not a valid timestamp: {}", clip(s, 40), e.reason),
                    sec::TIMESTAMP,
                ),
                Ok(t) if matches!(kind, Kind::TsMillis) && t.fraction_digits() < 3 => ctx.report(
                    path,
                    "must be precise to the millisecond (at least 3 fractional digits)",
                    sec::COMMON,
                ),
                Ok(_) => {}
            },
        },
        Kind::Ref(refs) => check_ref(ctx, path, v, refs, section),
        Kind::RefList(refs) => {
            if let Some(items) = list(ctx, path, v, true) {
                for (i, item) in items.iter().enumerate() {
                    check_ref(ctx, &path.index(i), item, refs, section);
                }
            }
        }
        Kind::StrList => {
            if let Some(items) = list(ctx, path, v, true) {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_string() {
                        type_err(ctx, &path.index(i), "a string", sec::STRING);
                    }
                }
            }
        }
        Kind::Dict => {
            dict(ctx, path, v);
        }
        Kind::Hashes => check_hashes(ctx, path, v),
        Kind::KillChain => {
            if let Some(items) = list(ctx, path, v, true) {
                for (i, item) in items.iter().enumerate() {
                    nested(ctx, &path.index(i), item, &types::KILL_CHAIN_PHASE);
                }
            }
        }
        Kind::Hex => match v.as_str() {
            Some(s) if s.len() % 2 == 0 && s.bytes().all(|c| c.is_ascii_hexdigit()) => {}
            _ => type_err(
                ctx,
                path,
                "a hex string (an even number of 0-9, a-f)",
                sec::HEX,
            ),
        },
        Kind::Binary => match v.as_str() {
            Some(s) if is_base64(s) => {}
            _ => type_err(ctx, path, "a base64 string (RFC 4648)", sec::BINARY),
        },
        Kind::Enum(values) => check_enum(ctx, path, v, values, section),
        Kind::EnumList(values) => {
            if let Some(items) = list(ctx, path, v, true) {
                for (i, item) in items.iter().enumerate() {
                    check_enum(ctx, &path.index(i), item, values, section);
                }
            }
        }
        Kind::Nested(spec) => nested(ctx, path, v, spec),
        Kind::NestedList(spec) | Kind::NestedListMaybeEmpty(spec) => {
            if let Some(items) = list(ctx, path, v, matches!(kind, Kind::NestedList(_))) {
                for (i, item) in items.iter().enumerate() {
                    nested(ctx, &path.index(i), item, spec);
                }
            }
        }
        Kind::Obj => match v.as_object() {
            Some(m) if !m.is_empty() => {}
            _ => type_err(ctx, path, "a non-empty object", section),
        },
        Kind::ExtRefs => {
            if let Some(items) = list(ctx, path, v, true) {
                for (i, item) in items.iter().enumerate() {
                    nested(ctx, &path.index(i), item, &types::EXTERNAL_REFERENCE);
                }
            }
        }
        Kind::Granular => super::markings::check_granular(ctx, path, v),
        Kind::Extensions => super::extensions::check_extensions(ctx, path, v),
        Kind::Lang => match v.as_str() {
            Some(s) if is_language_tag(s) => {}
            Some(_) => ctx.report(path, "must be an RFC 5646 language tag", section),
            None => type_err(ctx, path, "a string", sec::STRING),
        },
        Kind::SpecVersion => {
            if v.as_str() != Some("2.1") {
                ctx.report(path, "must be \"2.1\"", sec::COMMON);
            }
        }
    }
}

fn range_msg(min: i64, max: i64) -> String {
    if max == i64::MAX {
        format!("must be an integer of at least {min}")
    } else {
        format!("must be an integer from {min} to {max}")
    }
}

fn nested(ctx: &mut Ctx, path: &Path, v: &Value, spec: &'static Spec) {
    match v.as_object() {
        Some(m) => check_nested(ctx, path, m, spec),
        None => ctx.report(
            path,
            format!("must be a {} object", spec.name),
            spec.section,
        ),
    }
}

fn check_enum(ctx: &mut Ctx, path: &Path, v: &Value, values: &[&str], section: &'static str) {
    match v.as_str() {
        Some(s) if values.contains(&s) => {}
        _ => ctx.report(
            path,
            format!("must be one of: {}", values.join(", ")),
            section,
        ),
    }
}

/// A list value (§2.12): lists must not be empty where `non_empty`.
fn list<'v>(ctx: &mut Ctx, path: &Path, v: &'v Value, non_empty: bool) -> Option<&'v Vec<Value>> {
    match v.as_array() {
        Some(a) if non_empty && a.is_empty() => {
            ctx.report(path, "lists must not be empty", sec::LIST);
            None
        }
        Some(a) => Some(a),
        None => {
            type_err(ctx, path, "a list", sec::LIST);
            None
        }
    }
}

/// A dictionary (§2.3): a non-empty object whose keys are at most 250 ASCII
/// letters, digits, `_` or `-`, and whose values are not null.
pub(crate) fn dict<'v>(ctx: &mut Ctx, path: &Path, v: &'v Value) -> Option<&'v Map<String, Value>> {
    let Some(m) = v.as_object() else {
        type_err(ctx, path, "a dictionary (JSON object)", sec::DICTIONARY);
        return None;
    };
    if m.is_empty() {
        ctx.report(
            path,
            "a dictionary must have at least one entry",
            sec::DICTIONARY,
        );
    }
    for (k, val) in m {
        if !is_dict_key(k) {
            ctx.report(
                &path.key(k),
                "dictionary keys must be at most 250 ASCII letters, digits, _ or -",
                sec::DICTIONARY,
            );
        } else if val.is_null() {
            ctx.report(&path.key(k), "null is not a STIX value", sec::DICTIONARY);
        }
    }
    Some(m)
}

/// An identifier (§2.9) whose type the property's definition allows; a
/// disallowed type is a breach of the rule of the defining section.
fn check_ref(ctx: &mut Ctx, path: &Path, v: &Value, refs: Refs, section: &'static str) {
    let Some(s) = v.as_str() else {
        type_err(ctx, path, "an identifier string", sec::IDENTIFIER);
        return;
    };
    match parse_id(s) {
        Err(p) => ctx.report(
            path,
            format!("{:?}: {}", clip(s, 80), p.describe()),
            sec::IDENTIFIER,
        ),
        Ok((ty, _)) if !refs.allows(ty) => ctx.report(path, refs.refusal(ty), section),
        Ok(_) => {}
    }
}

/// Hashes (§2.7): a dictionary of algorithm name to hash value; the values of
/// the algorithms the hash-algorithm-ov names must have their proper form.
fn check_hashes(ctx: &mut Ctx, path: &Path, v: &Value) {
    let Some(m) = dict(ctx, path, v) else { return };
    for (k, val) in m {
        let p = path.key(k);
        let Some(s) = val.as_str() else {
            type_err(ctx, &p, "a string", sec::HASHES);
            continue;
        };
        let hex_len = match k.as_str() {
            "MD5" => 32,
            "SHA-1" => 40,
            "SHA-256" | "SHA3-256" => 64,
            "SHA-512" | "SHA3-512" => 128,
            "SSDEEP" => {
                if s.is_empty()
                    || s.len() > 148
                    || !s
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"/+:.".contains(&c))
                {
                    ctx.report(&p, "is not an SSDEEP fuzzy hash", sec::HASHES);
                }
                continue;
            }
            "TLSH" => {
                if !(70..=72).contains(&s.len()) || !s.bytes().all(|c| c.is_ascii_alphanumeric()) {
                    ctx.report(&p, "is not a TLSH hash", sec::HASHES);
                }
                continue;
            }
            _ => {
                if k.len() < 3 {
                    ctx.report(
                        &p,
                        "hash algorithm names must be at least 3 characters",
                        sec::HASHES,
                    );
                }
                continue;
            }
        };
        if s.len() != hex_len || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            ctx.report(
                &p,
                format!("a {k} hash must be {hex_len} hex digits"),
                sec::HASHES,
            );
        }
    }
}

/// Base64 per RFC 4648 §4, padding required.
pub(crate) fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return false;
    }
    b[..b.len() - pad]
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

/// The shape of an RFC 5646 language tag: subtags of 1-8 ASCII letters or
/// digits joined by hyphens, the first being 2-8 letters (a language) or the
/// singletons `x` / `i` (private use, grandfathered). Registry membership is
/// not checked: the spec asks for a well-formed tag.
pub(crate) fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let Some(first) = parts.next() else {
        return false;
    };
    let first_ok = ((2..=8).contains(&first.len())
        && first.bytes().all(|c| c.is_ascii_alphabetic()))
        || first.eq_ignore_ascii_case("x")
        || first.eq_ignore_ascii_case("i");
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for ok in [
            "en",
            "id",
            "en-US",
            "zh-Hans-CN",
            "sr-Latn",
            "x-klingon",
            "de-CH-1996",
        ] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in [
            "",
            "e",
            "en_US",
            "en--US",
            "english language",
            "123",
            "en-toolongsubtag",
        ] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn base64() {
        assert!(is_base64(""));
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64("aGVsbA=="));
        assert!(!is_base64("aGVsbA="));
        assert!(!is_base64("aGVs bG8="));
        assert!(!is_base64("a==="));
    }
}
