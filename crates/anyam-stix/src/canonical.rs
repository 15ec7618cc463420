//! RFC 8785 (JSON Canonicalization Scheme) serialization and the content digest.
//!
//! Hand-written rather than through a generic serializer because the ingest
//! path digests every object: this writes straight into one buffer, sorts
//! keys by UTF-16 code units only when they are not all ASCII, and formats
//! numbers the way ECMAScript's `Number.prototype.toString` does (RFC 8785
//! §3.2.2.3) through `ryu-js`.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// SHA-256 of the RFC 8785 canonical JSON of the value: two objects are "the
/// same content" exactly when their digests are equal.
pub fn canonical_digest(value: &Value) -> [u8; 32] {
    let mut buf = Vec::with_capacity(1024);
    write_value(&mut buf, value);
    Sha256::digest(&buf).into()
}

/// The RFC 8785 canonical JSON text of the value.
pub fn canonical_json(value: &Value) -> String {
    let mut buf = Vec::with_capacity(1024);
    write_value(&mut buf, value);
    // Only valid UTF-8 is ever written: string contents come from `&str`.
    String::from_utf8(buf).unwrap_or_default()
}

/// Appends the RFC 8785 canonical JSON text of `value` to `out`: for
/// writers that produce the canonical form of a fixed shape directly and
/// embed free-form values in it.
pub fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    write_value(out, value)
}

/// Appends a string in RFC 8785 form (§3.2.2.2) to `out`.
pub fn write_canonical_str(out: &mut Vec<u8>, s: &str) {
    write_string(out, s)
}

pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // RFC 8785 §3.2.2.3: every number is an IEEE 754 double.
            let f = if let Some(i) = n.as_i64() {
                i as f64
            } else if let Some(u) = n.as_u64() {
                u as f64
            } else {
                n.as_f64().unwrap_or(0.0)
            };
            write_number(out, f);
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their
            // names. For ASCII names byte order is the same and cheaper.
            if entries.iter().all(|(k, _)| k.is_ascii()) {
                entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            } else {
                entries.sort_unstable_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            }
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                write_value(out, v);
            }
            out.push(b'}');
        }
    }
}

/// JSON string serialization as ECMAScript's `JSON.stringify` does it
/// (RFC 8785 §3.2.2.2): only `"`, `\` and control characters are escaped.
fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut rest = s.as_bytes();
    loop {
        let n = plain_prefix(rest);
        out.extend_from_slice(&rest[..n]);
        let Some(&c) = rest.get(n) else {
            break;
        };
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ]),
        }
        rest = &rest[n + 1..];
    }
    out.push(b'"');
}

/// How many leading bytes of `bytes` need no escaping in a JSON string:
/// none of `"`, `\` or a control character (below 0x20). Strings are
/// mostly plain (ids, timestamps, names), so this tests eight bytes at a
/// time, with the classic word tricks: `has_zero(w)` is non-zero exactly
/// when some byte of `w` is zero, and `has_below(w, n)` when some byte is
/// below `n` (for `n` up to 128). A hit only sends the search to bytes,
/// so it decides nothing by itself.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let has_below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS;
    let mut done = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_ne_bytes(word);
        if has_below(w, 0x20)
            | has_zero(w ^ (ONES * u64::from(b'"')))
            | has_zero(w ^ (ONES * u64::from(b'\\')))
            != 0
        {
            break;
        }
        done += 8;
    }
    done + bytes[done..]
        .iter()
        .position(|&c| c < 0x20 || c == b'"' || c == b'\\')
        .unwrap_or(bytes.len() - done)
}

/// ECMAScript `Number.prototype.toString` for a finite double (ECMA-262
/// §6.1.6.1.20), which RFC 8785 mandates. The `ryu-js` crate implements it
/// exactly, including the rule that a tie between two shortest digit
/// strings goes to the even one (where Rust's own float formatting rounds
/// up), so `-974986675953754.25` prints as `-974986675953754.2`.
fn write_number(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        // JSON has no NaN or infinity; a `Value` cannot hold them.
        out.push(b'0');
        return;
    }
    let mut buf = ryu_js::Buffer::new();
    out.extend_from_slice(buf.format_finite(f).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(f: f64) -> String {
        let mut v = Vec::new();
        write_number(&mut v, f);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn numbers_as_ecmascript() {
        // Values from RFC 8785 Appendix B and ECMAScript behaviour.
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(1.0), "1");
        assert_eq!(num(-1.5), "-1.5");
        assert_eq!(num(1e21), "1e+21");
        assert_eq!(num(1e20), "100000000000000000000");
        assert_eq!(num(0.000001), "0.000001");
        assert_eq!(num(0.0000001), "1e-7");
        assert_eq!(num(123e-20), "1.23e-18");
        assert_eq!(num(9007199254740992.0), "9007199254740992");
        assert_eq!(num(5e-324), "5e-324");
        assert_eq!(num(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(num(333333333.3333333), "333333333.3333333");
        // A tie between two shortest forms goes to the even digit (found by
        // the property test against serde_jcs).
        // The literal is the double whose exact value is -974986675953754.25.
        assert_eq!(num(-974986675953754.2), "-974986675953754.2");
    }

    #[test]
    fn sorts_and_escapes() {
        let v = json!({"b": [1, "x\n\u{1}"], "a": {"d": true, "c": null}, "\u{e000}": 1, "\u{1f600}": 2});
        assert_eq!(
            canonical_json(&v),
            "{\"a\":{\"c\":null,\"d\":true},\"b\":[1,\"x\\n\\u0001\"],\"\u{1f600}\":2,\"\u{e000}\":1}"
        );
    }
}
