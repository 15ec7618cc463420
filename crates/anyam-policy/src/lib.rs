//! The release decision: which principal may see which collection and object.
