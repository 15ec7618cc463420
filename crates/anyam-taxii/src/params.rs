//! URL query parameters of the TAXII endpoints (TAXII 2.1 §3.4): parsed
//! strictly, so that a malformed filter is a 400 naming the parameter, never
//! a silently different result.

use anyam_store::{Micros, Query, VersionSel};

use crate::error::ApiError;

/// Which filters an endpoint accepts (TAXII 2.1 §3.4.2 lists them per
/// endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// objects and manifest: every filter.
    Listing,
    /// one object by id: `added_after`, `limit`, `next`, `match[version]`,
    /// `match[spec_version]`.
    Object,
    /// versions of one object: `added_after`, `limit`, `next`,
    /// `match[spec_version]`.
    Versions,
    /// DELETE of one object: `match[version]`, `match[spec_version]`.
    Delete,
}

/// Parse an RFC 3339 timestamp into microseconds since the epoch.
pub fn parse_time(s: &str) -> Option<Micros> {
    s.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_microsecond())
}

/// Render a server timestamp with microsecond precision (TAXII 2.1 §3.2:
/// `date_added` is precise to the microsecond).
pub fn fmt_micros(m: Micros) -> String {
    match jiff::Timestamp::from_microsecond(m) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        Err(_) => "1970-01-01T00:00:00.000000Z".to_string(),
    }
}

fn push_list(dst: &mut Vec<String>, value: &str) {
    dst.extend(
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from),
    );
}

/// Parse the query string of one endpoint. `default_limit` and `max_limit`
/// are the server's page sizes: a larger `limit` is lowered to the maximum
/// (TAXII 2.1 §3.4.1 lets the server return fewer objects than asked).
pub fn parse_query(
    raw: Option<&str>,
    endpoint: Endpoint,
    default_limit: usize,
    max_limit: usize,
) -> Result<Query, ApiError> {
    let mut q = Query {
        limit: default_limit,
        ..Query::default()
    };
    let Some(raw) = raw else { return Ok(q) };
    let allowed = |name: &str| -> bool {
        match endpoint {
            Endpoint::Listing => true,
            Endpoint::Object => !matches!(name, "match[id]" | "match[type]"),
            Endpoint::Versions => !matches!(name, "match[id]" | "match[type]" | "match[version]"),
            Endpoint::Delete => matches!(name, "match[version]" | "match[spec_version]"),
        }
    };
    let (mut min_reliability, mut min_credibility) = (None, None);
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let key = key.as_ref();
        // Not TAXII's: the Admiralty code (source reliability A–F,
        // information credibility 1–6), on every reading endpoint.
        match key {
            "min_reliability" | "min_credibility" if endpoint == Endpoint::Delete => {
                return Err(ApiError::bad_request(format!(
                    "`{key}` is not a filter of this endpoint"
                )));
            }
            "min_reliability" => {
                min_reliability = Some(value.into_owned());
                continue;
            }
            "min_credibility" => {
                min_credibility = Some(value.into_owned());
                continue;
            }
            _ => {}
        }
        let known = matches!(
            key,
            "added_after"
                | "limit"
                | "next"
                | "match[id]"
                | "match[type]"
                | "match[version]"
                | "match[spec_version]"
        );
        if !known {
            if key.starts_with("match[") {
                return Err(ApiError::bad_request(format!("unsupported filter `{key}`")));
            }
            // Other parameters are not TAXII's and do not change the answer.
            continue;
        }
        if !allowed(key) {
            return Err(ApiError::bad_request(format!(
                "`{key}` is not a filter of this endpoint"
            )));
        }
        match key {
            "added_after" => {
                q.added_after = Some(parse_time(&value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "added_after: `{value}` is not an RFC 3339 timestamp"
                    ))
                })?);
            }
            "limit" => {
                let n: usize = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::bad_request(format!("limit: `{value}` is not a positive integer"))
                })?;
                q.limit = n.min(max_limit);
            }
            "next" => q.next = Some(value.into_owned()),
            "match[id]" => push_list(&mut q.ids, &value),
            "match[type]" => push_list(&mut q.types, &value),
            "match[spec_version]" => push_list(&mut q.spec_versions, &value),
            "match[version]" => {
                for v in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    q.versions.push(match v {
                        "first" => VersionSel::First,
                        "last" => VersionSel::Last,
                        "all" => VersionSel::All,
                        ts => VersionSel::At(parse_time(ts).ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "match[version]: `{ts}` is neither first, last, all nor an RFC 3339 timestamp"
                            ))
                        })?),
                    });
                }
            }
            _ => {}
        }
    }
    q.rating = rating_filter(min_reliability.as_deref(), min_credibility.as_deref())?;
    Ok(q)
}

/// The store's form of an Admiralty filter given as `min_reliability`
/// (A–F) and `min_credibility` (1–6); `None` when neither is given.
pub fn rating_filter(
    min_reliability: Option<&str>,
    min_credibility: Option<&str>,
) -> Result<Option<anyam_store::RatingFilter>, ApiError> {
    if min_reliability.is_none() && min_credibility.is_none() {
        return Ok(None);
    }
    let f = anyam_trust::admiralty::AdmiraltyFilter::from_params(min_reliability, min_credibility)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Some(anyam_store::RatingFilter {
        reliability_extension: anyam_trust::admiralty::RELIABILITY_EXTENSION_ID.to_string(),
        max_reliability: f.min_reliability.map(|r| r.letter()),
        max_credibility: f.min_credibility.map(|c| c.value()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_filter() {
        let q = parse_query(
            Some("added_after=2020-01-01T00:00:00Z&limit=5&next=abc&match[id]=a,b&match[id]=c&match[type]=indicator&match[version]=first,2021-01-01T00:00:00.5Z&match[spec_version]=2.1"),
            Endpoint::Listing,
            100,
            1000,
        )
        .unwrap();
        assert_eq!(q.added_after, Some(1_577_836_800_000_000));
        assert_eq!(q.limit, 5);
        assert_eq!(q.next.as_deref(), Some("abc"));
        assert_eq!(q.ids, ["a", "b", "c"]);
        assert_eq!(q.types, ["indicator"]);
        assert_eq!(
            q.versions,
            [VersionSel::First, VersionSel::At(1_609_459_200_500_000)]
        );
        assert_eq!(q.spec_versions, ["2.1"]);
    }

    #[test]
    fn rejects_bad_values() {
        for raw in [
            "limit=0",
            "limit=-1",
            "limit=x",
            "added_after=yesterday",
            "match[version]=latest",
            "match[foo]=1",
        ] {
            let e = parse_query(Some(raw), Endpoint::Listing, 100, 1000).unwrap_err();
            assert_eq!(e.status, 400, "{raw}");
        }
        assert!(parse_query(Some("match[type]=x"), Endpoint::Versions, 1, 1).is_err());
        assert!(parse_query(Some("match[id]=x"), Endpoint::Object, 1, 1).is_err());
        assert_eq!(
            parse_query(Some("limit=99999"), Endpoint::Listing, 100, 1000)
                .unwrap()
                .limit,
            1000
        );
    }

    #[test]
    fn formats_micros() {
        assert_eq!(
            fmt_micros(1_577_836_800_000_001),
            "2020-01-01T00:00:00.000001Z"
        );
    }
}
