//! Indicators as the engine loads them: the pattern and what an alert names (STIX 2.1 §4.7).

use crate::Error;
use anyam_pattern::Timestamp;
use serde_json::Value;
use std::sync::Arc;

/// What an alert says about the indicator that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorInfo {
    pub id: String,
    /// The version (`modified`) that was loaded.
    pub modified: Option<String>,
    pub name: Option<String>,
    /// The identity that created it: the originating organization.
    pub created_by_ref: Option<Arc<str>>,
    pub pattern: String,
}

/// An indicator ready to load.
#[derive(Debug, Clone)]
pub struct Indicator {
    pub info: IndicatorInfo,
    /// `valid_from`, nanoseconds since the epoch.
    pub valid_from: Option<i128>,
    /// `valid_until`, nanoseconds since the epoch (exclusive).
    pub valid_until: Option<i128>,
}

/// Why a STIX object is not loaded although it is well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not an indicator.
    NotIndicator,
    /// `revoked: true` (STIX 2.1 §3.6): no longer to be used.
    Revoked,
    /// A `pattern_type` other than `stix` (e.g. snort, yara, sigma).
    OtherPatternType,
}

fn ts(v: &Value, key: &str, id: &str) -> Result<Option<i128>, Error> {
    match v.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Timestamp::parse_json(s)
            .map(|t| Some(t.nanos_since_epoch()))
            .ok_or_else(|| Error::Indicator {
                id: id.to_string(),
                message: format!("{key} {s:?} is not a STIX timestamp"),
            }),
        Some(other) => Err(Error::Indicator {
            id: id.to_string(),
            message: format!("{key} is not a string: {other}"),
        }),
    }
}

impl Indicator {
    /// Reads an indicator object. `Ok(Err(skip))` for objects that are
    /// well formed but not to be matched.
    pub fn from_stix(v: &Value) -> Result<Result<Indicator, Skip>, Error> {
        if v.get("type").and_then(Value::as_str) != Some("indicator") {
            return Ok(Err(Skip::NotIndicator));
        }
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Indicator {
                id: String::new(),
                message: "indicator without a string \"id\"".to_string(),
            })?;
        if v.get("revoked").and_then(Value::as_bool) == Some(true) {
            return Ok(Err(Skip::Revoked));
        }
        if v.get("pattern_type").and_then(Value::as_str) != Some("stix") {
            return Ok(Err(Skip::OtherPatternType));
        }
        let pattern = v
            .get("pattern")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Indicator {
                id: id.to_string(),
                message: "indicator without a string \"pattern\"".to_string(),
            })?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Ok(Indicator {
            info: IndicatorInfo {
                id: id.to_string(),
                modified: s("modified"),
                name: s("name"),
                created_by_ref: v
                    .get("created_by_ref")
                    .and_then(Value::as_str)
                    .map(Arc::from),
                pattern: pattern.to_string(),
            },
            valid_from: ts(v, "valid_from", id)?,
            valid_until: ts(v, "valid_until", id)?,
        }))
    }

    /// An indicator from a bare pattern, valid at all times (for tests and
    /// benchmarks).
    pub fn from_pattern(id: impl Into<String>, pattern: impl Into<String>) -> Indicator {
        Indicator {
            info: IndicatorInfo {
                id: id.into(),
                modified: None,
                name: None,
                created_by_ref: None,
                pattern: pattern.into(),
            },
            valid_from: None,
            valid_until: None,
        }
    }
}
