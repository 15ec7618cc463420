//! The crate's error enum and the report of an invalid object (`Invalid`, `Violation`).

use std::fmt;

/// How many violations `Invalid`'s `Display` lists before it says "and N more".
/// The text goes verbatim into TAXII status failure messages, so it must stay
/// readable and bounded whatever the input.
pub const DISPLAY_LIMIT: usize = 8;

/// How many violations one object keeps at most. A hostile object can hold a
/// million bad references; we count them all but keep only the first ones.
pub const KEEP_LIMIT: usize = 256;

/// Everything this crate reports as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A STIX object (or a bundle envelope) breaks one or more rules.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A timestamp string is not a STIX 2.1 timestamp.
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    /// `deterministic_sco_id` was asked for a type that is not a STIX 2.1
    /// Cyber-observable Object type, so its ID-contributing properties are unknown.
    #[error("{0:?} is not a STIX 2.1 cyber-observable object type (STIX 2.1 §2.9)")]
    NotAnSco(String),
    /// `deterministic_sco_id` was given properties that are not a JSON object.
    #[error("the properties of an SCO must be a JSON object")]
    NotAnObject,
}

/// A string that is not a STIX 2.1 timestamp (STIX 2.1 §2.15).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a STIX timestamp: {reason}")]
pub struct TimestampError {
    /// The offending text, cut to a bounded length.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl TimestampError {
    pub(crate) fn new(text: &str, reason: &'static str) -> Self {
        TimestampError {
            text: clip(text, 64),
            reason,
        }
    }
}

/// One broken rule: where, what, and which section of the specification says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON-pointer-like path of the offending value, e.g.
    /// `/external_references/0/source_name`; empty for a rule about the
    /// object as a whole (e.g. "one of a or b must be present").
    pub path: String,
    /// What is wrong, in one sentence without a trailing period.
    pub message: String,
    /// The section that states the rule, e.g. `STIX 2.1 §3.2`.
    pub section: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths hold foreign property names, which may be arbitrarily long.
        let path = if self.path.is_empty() {
            String::from("(object)")
        } else {
            clip(&self.path, 200)
        };
        write!(f, "{path}: {} ({})", clip(&self.message, 300), self.section)
    }
}

/// An invalid object: every violation found, not only the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The object's `id` when it has a string one.
    pub id: Option<String>,
    /// The violations, in the order found, at most [`KEEP_LIMIT`] of them.
    pub violations: Vec<Violation>,
    /// How many violations were found in all (may exceed `violations.len()`).
    pub total: usize,
}

impl Invalid {
    /// Whether some violation sits at `path` and cites `section`.
    pub fn has(&self, path: &str, section: &str) -> bool {
        self.violations
            .iter()
            .any(|v| v.path == path && v.section == section)
    }
}

impl fmt::Display for Invalid {
    /// `<id or (no id)>: <path>: <message> (<section>); <path>: …; and N more`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{}: ", clip(id, 300))?,
            None => f.write_str("(no id): ")?,
        }
        for (i, v) in self.violations.iter().take(DISPLAY_LIMIT).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        let shown = self.violations.len().min(DISPLAY_LIMIT);
        if self.total > shown {
            write!(f, "; and {} more", self.total - shown)?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// Cut `s` to at most `max` characters, marking the cut, so that messages
/// quoting foreign text stay bounded.
pub(crate) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}
