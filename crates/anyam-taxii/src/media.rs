//! Content negotiation (TAXII 2.1 §1.6.8): the TAXII media type with and
//! without its version parameter, 406 for an `Accept` we cannot satisfy and
//! 415 for a body we do not take.

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};

/// The media type of every TAXII response of this server.
pub const TAXII_21: &str = "application/taxii+json;version=2.1";
/// The media type of STIX objects in manifests.
pub const STIX_21: &str = "application/stix+json;version=2.1";

/// One parsed media range: type/subtype and its `version` parameter.
struct Range<'a> {
    essence: String,
    version: Option<&'a str>,
}

fn parse_ranges(value: &str) -> impl Iterator<Item = Range<'_>> {
    value.split(',').filter_map(|item| {
        let mut parts = item.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        if essence.is_empty() {
            return None;
        }
        let mut version = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("version")
            {
                version = Some(v.trim().trim_matches('"'));
            }
        }
        Some(Range { essence, version })
    })
}

/// Whether a range names TAXII 2.1: the bare type means the latest version
/// the server supports, which is 2.1 (TAXII 2.1 §1.6.8.1).
fn is_taxii21(r: &Range<'_>) -> bool {
    r.essence == "application/taxii+json" && r.version.is_none_or(|v| v == "2.1")
}

/// Whether the client accepts a TAXII 2.1 response. A request without an
/// `Accept` header accepts anything (RFC 9110 §12.5.1).
pub fn accepts_taxii(headers: &HeaderMap) -> bool {
    let mut any_header = false;
    for value in headers.get_all(ACCEPT) {
        any_header = true;
        let Ok(value) = value.to_str() else { continue };
        if parse_ranges(value)
            .any(|r| is_taxii21(&r) || r.essence == "*/*" || r.essence == "application/*")
        {
            return true;
        }
    }
    !any_header
}

/// Whether a request body is declared as TAXII 2.1.
pub fn is_taxii_body(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_ranges(v).next())
        .is_some_and(|r| is_taxii21(&r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(name: axum::http::HeaderName, v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn accept_table() {
        for (accept, ok) in [
            ("application/taxii+json;version=2.1", true),
            ("application/taxii+json", true),
            ("application/taxii+json; version=\"2.1\"", true),
            ("Application/TAXII+json;version=2.1", true),
            ("application/taxii+json;version=2.0", false),
            ("application/json", false),
            ("text/html, */*;q=0.1", true),
            ("application/xml", false),
            ("application/stix+json;version=2.1", false),
        ] {
            assert_eq!(accepts_taxii(&h(ACCEPT, accept)), ok, "{accept}");
        }
        assert!(accepts_taxii(&HeaderMap::new()));
    }

    #[test]
    fn content_type_table() {
        for (ct, ok) in [
            ("application/taxii+json;version=2.1", true),
            ("application/taxii+json", true),
            ("application/json", false),
            ("application/taxii+json;version=2.0", false),
            ("text/plain", false),
        ] {
            assert_eq!(is_taxii_body(&h(CONTENT_TYPE, ct)), ok, "{ct}");
        }
        assert!(!is_taxii_body(&HeaderMap::new()));
    }
}
