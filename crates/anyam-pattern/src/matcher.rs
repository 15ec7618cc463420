//! The reference matcher (STIX 2.1 §9.5–§9.7).
use crate::{Error, Observations, StixVersion};

/// Default step budget of the binding search.
pub const DEFAULT_BUDGET: u64 = 5_000_000;

/// One binding.
#[derive(Debug, Clone, Default)]
pub struct Binding {}

/// A compiled pattern.
#[derive(Debug)]
pub struct Matcher {}

impl Matcher {
    pub fn new(pattern: &str, version: StixVersion) -> Result<Matcher, Error> {
        crate::parse(pattern, version)?;
        Ok(Matcher {})
    }
    pub fn matches(&self, _obs: &Observations) -> Result<bool, Error> {
        Err(Error::Evaluation("not yet implemented".into()))
    }
}
