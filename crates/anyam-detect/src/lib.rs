//! Early detection: an indexed engine that matches every loaded STIX indicator against each observation.
//!
//! # What this crate is
//!
//! The reference matcher of `anyam-pattern` decides one pattern against a
//! set of observations; trying every pattern on every observation costs
//! time proportional to the number of indicators, which a CERT holding a
//! million of them cannot afford at sensor rates. This engine makes the
//! cost per observation depend on the observation instead:
//!
//! 1. Each bracket (`[…]`) of each pattern yields **anchors**, necessary
//!    conditions that an index can look up ([`anchor`](crate) module docs):
//!    equality and `IN` on strings and integers through hash maps,
//!    `ISSUBSET` through prefix tries (IPv4 and IPv6), `LIKE` and
//!    `MATCHES` through a multi-string automaton over substrings every
//!    match must contain, and the rest (ordering, `!=`, `NOT`, `EXISTS`,
//!    regexes without a required substring) through "the path reaches a
//!    value" or "an object of the type is present".
//! 2. For an observation, the index walks each object's indexed paths once
//!    and collects the brackets whose anchor holds: the **candidates**.
//! 3. Candidates are decided by the reference matcher itself
//!    ([`anyam_pattern::Matcher::leaf_matches`]), except brackets that are a
//!    single string equality or `IN`, where the lookup is the verdict. The
//!    engine's verdicts are therefore the reference matcher's by
//!    construction; the property tests check it on random indicator sets
//!    and streams.
//! 4. Patterns over several observations (`AND`, `OR`, `FOLLOWEDBY` between
//!    brackets, `WITHIN`, `REPEATS`, `START`/`STOP`) keep, per pattern, the
//!    observations that matched one of their brackets within a window, and
//!    run the matcher's binding search ([`anyam_pattern::Matcher::solve`])
//!    when a new one arrives. The window is the pattern's top-level
//!    `WITHIN`, capped by [`Options::max_window_secs`] (one hour by
//!    default), which also applies to patterns without `WITHIN`; state is
//!    capped per pattern too, and its size is reported in [`Stats`].
//!
//! Indicators are loaded, replaced and removed one by one
//! ([`Engine::upsert`], [`Engine::remove`]) without rebuilding anything but
//! the substring automata, which are rebuilt per batch of changes
//! ([`Engine::commit`]). A validity window (`valid_from`, `valid_until`) is
//! checked against the observation's time by default, so replaying old logs
//! hunts with the indicators valid then ([`Validity`]).
//!
//! # What it is not
//!
//! No I/O: sensors are read by `anyam-sensor`, indicators come from the
//! store or a file through the `anyam detect` command. Values are compared
//! exactly as the reference matcher compares them (case-sensitive hashes
//! and domains, IPv6 as written); [`Normalize`] is the caller's option to
//! fold them, applied to indicators and observations alike before they
//! reach the engine.
//!
//! # Key types
//!
//! * [`Engine`], generic over a tag the caller attaches to each
//!   observation (its source and line) and gets back in each [`Hit`].
//! * [`Indicator`] (from a STIX object or a bare pattern), [`IndicatorInfo`]
//!   (what an alert names).
//! * [`Options`], [`Validity`], [`Stats`], [`Error`].

mod anchor;
mod engine;
mod index;
mod indicator;
mod normalize;

pub use engine::{Change, Engine, Hit, Options, Stats, Validity};
pub use indicator::{Indicator, IndicatorInfo, Skip};
pub use normalize::Normalize;

/// The crate's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pattern does not parse or compile.
    #[error("indicator {id}: pattern: {message}")]
    Pattern { id: String, message: String },
    /// The indicator object is malformed.
    #[error("indicator {id}: {message}")]
    Indicator { id: String, message: String },
    /// More indicators than the engine can number.
    #[error("too many indicators loaded")]
    Capacity,
}
