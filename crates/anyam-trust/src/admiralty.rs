//! The Admiralty code: information credibility (1–6) carried as STIX
//! `confidence`, source reliability (A–F) carried in a property extension
//! of our own.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{Result, TrustError};

/// Id of the extension-definition for source reliability. Fixed, so that
/// every node (and every tool that knows the definition) names the same
/// extension.
pub const RELIABILITY_EXTENSION_ID: &str =
    "extension-definition--2e2ab2c2-eecf-4d4b-83ed-a9348fbb68c6";

/// The identity that authors the extension-definition (the Anyam project,
/// not any one node).
pub const EXTENSION_AUTHOR_ID: &str = "identity--eab2b8df-3c2d-4fb2-94b8-057c11b3be3a";

/// The property of the extension that holds the letter.
pub const RELIABILITY_PROPERTY: &str = "source_reliability";

/// Source reliability, A (completely reliable) to F (cannot be judged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reliability {
    A,
    B,
    C,
    D,
    E,
    F,
}

impl Reliability {
    pub const ALL: [Reliability; 6] = [
        Reliability::A,
        Reliability::B,
        Reliability::C,
        Reliability::D,
        Reliability::E,
        Reliability::F,
    ];

    pub fn letter(self) -> char {
        match self {
            Reliability::A => 'A',
            Reliability::B => 'B',
            Reliability::C => 'C',
            Reliability::D => 'D',
            Reliability::E => 'E',
            Reliability::F => 'F',
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Reliability::A => "completely reliable",
            Reliability::B => "usually reliable",
            Reliability::C => "fairly reliable",
            Reliability::D => "not usually reliable",
            Reliability::E => "unreliable",
            Reliability::F => "reliability cannot be judged",
        }
    }

    /// Parse a letter, either case.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| s.len() == 1 && s.eq_ignore_ascii_case(&r.letter().to_string()))
    }
}

/// Information credibility, 1 (confirmed by other sources) to 6 (truth
/// cannot be judged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Credibility(u8);

impl TryFrom<u8> for Credibility {
    type Error = String;
    fn try_from(n: u8) -> std::result::Result<Self, String> {
        Credibility::new(n).ok_or_else(|| format!("credibility must be 1 to 6, not {n}"))
    }
}

impl From<Credibility> for u8 {
    fn from(c: Credibility) -> u8 {
        c.0
    }
}

impl Credibility {
    pub const CANNOT_BE_JUDGED: Credibility = Credibility(6);

    pub fn new(n: u8) -> Option<Self> {
        (1..=6).contains(&n).then_some(Credibility(n))
    }

    pub fn value(self) -> u8 {
        self.0
    }

    pub fn label(self) -> &'static str {
        match self.0 {
            1 => "confirmed by other sources",
            2 => "probably true",
            3 => "possibly true",
            4 => "doubtful",
            5 => "improbable",
            _ => "truth cannot be judged",
        }
    }

    /// The STIX `confidence` value for this credibility, per the Admiralty
    /// Credibility table of the STIX 2.1 confidence scales (Appendix A):
    /// 1→90, 2→70, 3→50, 4→30, 5→10, and 6 ("truth cannot be judged")
    /// means the property is not present.
    pub fn to_confidence(self) -> Option<u8> {
        match self.0 {
            1 => Some(90),
            2 => Some(70),
            3 => Some(50),
            4 => Some(30),
            5 => Some(10),
            _ => None,
        }
    }

    /// The credibility a STIX `confidence` value stands for, by the ranges
    /// of the same table (80–100→1, 60–79→2, 40–59→3, 20–39→4, 0–19→5);
    /// an absent value is 6. Values above 100 are invalid STIX (§2.10) and
    /// give `None`.
    pub fn from_confidence(confidence: Option<u64>) -> Option<Self> {
        Some(Credibility(match confidence {
            None => 6,
            Some(0..=19) => 5,
            Some(20..=39) => 4,
            Some(40..=59) => 3,
            Some(60..=79) => 2,
            Some(80..=100) => 1,
            Some(_) => return None,
        }))
    }
}

/// A full Admiralty rating such as `B2`; either half may be unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admiralty {
    pub reliability: Option<Reliability>,
    pub credibility: Credibility,
}

impl std::fmt::Display for Admiralty {
    /// `B2`; an unknown reliability shows as `F` (cannot be judged).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.reliability.unwrap_or(Reliability::F);
        write!(f, "{}{}", r.letter(), self.credibility.value())
    }
}

impl Admiralty {
    /// Parse `B2`, `b2`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut chars = s.chars();
        let r = Reliability::parse(&chars.next()?.to_string())?;
        let rest: String = chars.collect();
        let c = Credibility::new(rest.parse().ok()?)?;
        Some(Admiralty {
            reliability: Some(r),
            credibility: c,
        })
    }

    /// The rating an object carries.
    pub fn of(object: &Value) -> Result<Self> {
        let confidence = object.get("confidence").and_then(Value::as_u64);
        let credibility = Credibility::from_confidence(confidence)
            .ok_or_else(|| TrustError::Malformed("confidence must be 0 to 100".into()))?;
        Ok(Admiralty {
            reliability: source_reliability(object)?,
            credibility,
        })
    }
}

/// The extension-definition object (STIX 2.1 §7.3) for source
/// reliability: a property extension, valid for any object that may carry
/// `extensions`. Publish it alongside objects that use it.
pub fn extension_definition() -> Value {
    json!({
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": RELIABILITY_EXTENSION_ID,
        "created_by_ref": EXTENSION_AUTHOR_ID,
        "created": "2026-11-26T00:00:00.000Z",
        "modified": "2026-11-26T00:00:00.000Z",
        "name": "Admiralty source reliability",
        "description": "The reliability of the source of the object (or, on an identity, of that identity as a source), graded A to F by the Admiralty code. Information credibility is carried by the standard confidence property.",
        "schema": "A property extension with one property, source_reliability: a string, one of \"A\" (completely reliable), \"B\" (usually reliable), \"C\" (fairly reliable), \"D\" (not usually reliable), \"E\" (unreliable), \"F\" (reliability cannot be judged).",
        "version": "1.0.0",
        "extension_types": ["property-extension"]
    })
}

/// The source reliability an object carries in our extension, if any.
pub fn source_reliability(object: &Value) -> Result<Option<Reliability>> {
    let Some(ext) = object
        .get("extensions")
        .and_then(|e| e.get(RELIABILITY_EXTENSION_ID))
    else {
        return Ok(None);
    };
    let value = ext.get(RELIABILITY_PROPERTY).and_then(Value::as_str);
    match value.and_then(Reliability::parse) {
        Some(r) => Ok(Some(r)),
        None => Err(TrustError::Malformed(format!(
            "extensions.{RELIABILITY_EXTENSION_ID}.{RELIABILITY_PROPERTY} must be one of A to F"
        ))),
    }
}

/// Set (or with `None` remove) the source reliability of an object. The
/// caller is responsible for versioning the object (a new `modified`) if
/// it was already shared.
pub fn set_source_reliability(object: &mut Value, r: Option<Reliability>) -> Result<()> {
    let obj = object
        .as_object_mut()
        .ok_or_else(|| TrustError::Malformed("not a JSON object".into()))?;
    match r {
        Some(r) => {
            let exts = obj
                .entry("extensions")
                .or_insert_with(|| Value::Object(Map::new()));
            let exts = exts
                .as_object_mut()
                .ok_or_else(|| TrustError::Malformed("extensions is not an object".into()))?;
            exts.insert(
                RELIABILITY_EXTENSION_ID.into(),
                json!({
                    "extension_type": "property-extension",
                    RELIABILITY_PROPERTY: r.letter().to_string(),
                }),
            );
        }
        None => {
            let now_empty = match obj.get_mut("extensions").and_then(Value::as_object_mut) {
                Some(exts) => {
                    exts.remove(RELIABILITY_EXTENSION_ID);
                    exts.is_empty()
                }
                None => false,
            };
            // STIX 2.1 §3.2 forbids an empty `extensions` dictionary.
            if now_empty {
                obj.remove("extensions");
            }
        }
    }
    Ok(())
}

/// Set the information credibility of an object as its `confidence`
/// (credibility 6 removes the property).
pub fn set_credibility(object: &mut Value, c: Credibility) -> Result<()> {
    let obj = object
        .as_object_mut()
        .ok_or_else(|| TrustError::Malformed("not a JSON object".into()))?;
    match c.to_confidence() {
        Some(v) => {
            obj.insert("confidence".into(), json!(v));
        }
        None => {
            obj.remove("confidence");
        }
    }
    Ok(())
}

/// A filter for the API and export: objects at least as reliable and as
/// credible as the given grades (A is best, 1 is best). An object without
/// a reliability counts as F; without a confidence as 6.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmiraltyFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reliability: Option<Reliability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_credibility: Option<Credibility>,
}

impl AdmiraltyFilter {
    /// Whether `object` passes. An object whose rating cannot be read
    /// (a bad extension value) does not pass a filter that asks for one.
    pub fn accepts(&self, object: &Value) -> bool {
        if self.min_reliability.is_none() && self.min_credibility.is_none() {
            return true;
        }
        let Ok(a) = Admiralty::of(object) else {
            return false;
        };
        let r = a.reliability.unwrap_or(Reliability::F);
        self.min_reliability.is_none_or(|m| r <= m)
            && self.min_credibility.is_none_or(|m| a.credibility <= m)
    }
}

impl std::fmt::Display for Reliability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl std::str::FromStr for Reliability {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<Self> {
        Reliability::parse(s).ok_or_else(|| {
            TrustError::Malformed(format!("source reliability must be A to F, not {s:?}"))
        })
    }
}

impl std::fmt::Display for Credibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Credibility {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<Self> {
        s.parse::<u8>()
            .ok()
            .and_then(Credibility::new)
            .ok_or_else(|| {
                TrustError::Malformed(format!("information credibility must be 1 to 6, not {s:?}"))
            })
    }
}

impl Admiralty {
    /// `B2 (usually reliable, probably true)`, for CLI output.
    pub fn describe(&self) -> String {
        let r = self.reliability.unwrap_or(Reliability::F);
        format!("{self} ({}, {})", r.label(), self.credibility.label())
    }

    /// The rating of an object, where the reliability falls back to that of
    /// the identity named by its `created_by_ref` when the object carries
    /// none itself: a source graded once grades what it publishes.
    /// `identity` looks an identity object up by id.
    pub fn of_with_source<'a>(
        object: &Value,
        identity: impl Fn(&str) -> Option<&'a Value>,
    ) -> Result<Self> {
        let mut a = Admiralty::of(object)?;
        if a.reliability.is_none() {
            let creator = object.get("created_by_ref").and_then(Value::as_str);
            if let Some(id) = creator.and_then(identity) {
                a.reliability = source_reliability(id)?;
            }
        }
        Ok(a)
    }
}

impl AdmiraltyFilter {
    /// A filter from the text of two request parameters (for example
    /// `min_reliability=B` and `min_credibility=3`), either absent.
    pub fn from_params(
        min_reliability: Option<&str>,
        min_credibility: Option<&str>,
    ) -> Result<Self> {
        Ok(AdmiraltyFilter {
            min_reliability: min_reliability.map(str::parse).transpose()?,
            min_credibility: min_credibility.map(str::parse).transpose()?,
        })
    }
}
