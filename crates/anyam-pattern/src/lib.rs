//! STIX patterning (STIX 2.1 §9): lexer, parser, validator and reference matcher. Does no I/O.
//!
//! # What this crate is
//!
//! The STIX patterning language as a library: [`parse`] turns a pattern into
//! a syntax tree ([`Pattern`]) whose `Display` is the canonical text;
//! [`validate`] adds the semantic checks the grammar cannot express, keeping
//! errors apart from warnings; [`Matcher`] decides whether a pattern matches
//! a set of observations and can name one binding of observations that
//! satisfies it. [`lines`] holds the line protocols behind the
//! `anyam pattern validate|match|check` commands, over generic readers and
//! writers, so the binary only passes its standard streams.
//!
//! Exactness is the point: the matcher follows the specification's full
//! semantics (reference traversal, list semantics, type coercions, `LIKE`,
//! `MATCHES`, CIDR sets for IPv4 and IPv6, binary and timestamp values, and
//! across observations `AND`, `OR`, `FOLLOWEDBY`, `number_observed`,
//! `WITHIN`, `REPEATS`, `START`/`STOP`), and is tested for identical
//! verdicts against the OASIS reference implementations; where we depart
//! from them the reason is in `REFERENCE-DIFFERENCES.md`.
//!
//! # What it is not
//!
//! Not an indexed engine for matching millions of indicators at line rate
//! (that is a later crate, checked against this one); it reads and writes no
//! files and opens no sockets. It does not parse STIX objects beyond what
//! matching needs: observations arrive as `serde_json::Value`.
//!
//! # Key types
//!
//! * [`Pattern`], [`ObservationExpr`], [`ComparisonExpr`], [`PropTest`],
//!   [`Literal`]: the tree. Parentheses are kept, spans are not compared.
//! * [`ParseError`]: line, column, what was found, what was expected.
//! * [`Validation`] with [`Diagnostic`]s.
//! * [`Matcher`] (a compiled pattern) and [`Observations`] (the input
//!   normalised into observed-data instances with their objects).
//! * [`Error`]: the crate's one error enum.
//!
//! # Bounds
//!
//! Every input is bounded in time and memory: patterns by [`Limits`] (size
//! and depth), regular expressions by a linear-time engine (or a backtrack
//! limit where lookaround or backreferences force backtracking), and the
//! search over observation bindings by a step budget
//! ([`matcher::DEFAULT_BUDGET`]); running out is an error, never a hang.
//!
//! # Regular-expression dialect
//!
//! The specification names PCRE for `MATCHES`. We accept the dialect of the
//! reference matcher (Python `re`, close to PCRE): the pattern runs on the
//! linear-time `regex` crate when it can, and on `fancy-regex` with a
//! backtrack limit only when it needs lookaround or backreferences. See
//! [`regex_dialect`] for the translation and the remaining differences.

pub mod ast;
mod lexer;
pub mod lines;
pub mod matcher;
pub mod net;
pub mod observations;
mod parser;
pub mod regex_dialect;
mod validate;

pub use ast::{
    CompOp, ComparisonExpr, Literal, Number, ObjectPath, ObservationExpr, PathStep, Pattern,
    PropTest, Qualifier, Timestamp,
};
pub use lexer::Span;
pub use matcher::{Binding, Matcher, ObsTime, selectable_type, visit_path};
pub use net::IpNet;
pub use observations::{Observation, Observations};
pub use parser::{Limits, ParseError, parse_with_limits};
pub use validate::{Diagnostic, Validation};

/// The STIX version whose patterning grammar applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StixVersion {
    /// STIX 2.0: no `EXISTS`; observations carry an embedded `objects` dictionary.
    V2_0,
    /// STIX 2.1 (the default).
    #[default]
    V2_1,
}

impl StixVersion {
    /// `"2.0"` or `"2.1"`.
    pub fn parse(s: &str) -> Option<StixVersion> {
        match s {
            "2.0" => Some(StixVersion::V2_0),
            "2.1" => Some(StixVersion::V2_1),
            _ => None,
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pattern does not parse.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// The pattern parses but cannot be evaluated (a bad regex, an invalid
    /// CIDR, a qualifier out of range, a timestamp that names no instant).
    #[error("{0}")]
    Compile(String),
    /// The observations are malformed.
    #[error("invalid observations: {0}")]
    Observations(String),
    /// Evaluation met a value it cannot handle (e.g. a malformed timestamp
    /// string compared with a timestamp literal).
    #[error("{0}")]
    Evaluation(String),
    /// The search over observation bindings ran out of its step budget.
    #[error("evaluation budget of {0} steps exhausted")]
    Budget(u64),
}

/// Parses a pattern with the default [`Limits`].
pub fn parse(pattern: &str, version: StixVersion) -> Result<Pattern, ParseError> {
    parser::parse_with_limits(pattern, version, Limits::default())
}

/// Parses and checks a pattern; see [`Validation`].
pub fn validate(pattern: &str, version: StixVersion) -> Validation {
    validate::validate(pattern, version)
}

/// [`validate`], also handing back the tree when the pattern parsed.
pub fn validate_parsed(pattern: &str, version: StixVersion) -> (Option<Pattern>, Validation) {
    validate::validate_parsed(pattern, version)
}
