//! Observations: the matcher's input normalised (STIX 2.1 §4.14 observed-data, §9.6).
use crate::{Error, StixVersion};

/// Observations ready for matching.
#[derive(Debug, Default)]
pub struct Observations {}

impl Observations {
    /// Reads the input the OASIS matcher takes.
    pub fn from_json(_v: &serde_json::Value, _version: StixVersion) -> Result<Observations, Error> {
        Err(Error::Observations("not yet implemented".into()))
    }
}
