//! STIX 2.1 object model: validation of every STIX 2.1 object, bundles, timestamps, content digests, deterministic SCO ids. Does no I/O.
//!
//! # What this crate is
//!
//! The gate every object passes on its way into a node. The ingest pipeline
//! parses a request body into `serde_json::Value`s and calls
//! [`check_object`] on each (or [`check_bundle`] on a bundle). A valid object
//! yields an [`ObjectInfo`]: its id, type, spec version, `created` and
//! `modified` as [`Timestamp`]s, and the TAXII version string
//! ([`ObjectInfo::version`]). [`canonical_digest`] gives the SHA-256 of the
//! object's RFC 8785 canonical JSON, which the store uses to tell a repeated
//! post of the same content from a conflicting one.
//!
//! An invalid object yields an [`Invalid`] listing *every* rule it breaks,
//! each as a [`Violation`] with a JSON-pointer path, a sentence, and the
//! section of the STIX 2.1 specification that states the rule. Its `Display`
//! is bounded and goes verbatim into TAXII status messages.
//!
//! # Design
//!
//! Validation must cost a few microseconds per object (the node ingests tens
//! of thousands of objects per second on two cores), so there is no JSON
//! Schema interpretation and no regex at run time. Each STIX type has a
//! static table (`validate::types`) of its properties and their kinds (the
//! data types of STIX 2.1 §2, with ranges and allowed reference types), its
//! required properties, and one function for the rules that span
//! properties. The walk visits each property once, looks it up in the common
//! table of the object's kind and then in the type's table; anything else is
//! a custom property (§11.1). Paths to violations are a linked list on the
//! stack and are only rendered when something is wrong.
//!
//! Objects are never rewritten: the functions take `&Value`, and timestamps
//! keep their original text, because the text *is* the TAXII version.
//!
//! Types STIX 2.1 does not define are custom objects (§11.2): only their
//! common properties and property names are checked. Open vocabularies are
//! SHOULDs and are not enforced; closed enumerations are.
//!
//! ```
//! let obj = serde_json::json!({
//!     "type": "indicator", "spec_version": "2.1",
//!     "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
//!     "created": "2024-05-01T10:00:00.000Z", "modified": "2024-05-02T10:00:00.000Z",
//!     "pattern": "[ipv4-addr:value = '198.51.100.3']", "pattern_type": "stix",
//!     "valid_from": "2024-05-01T10:00:00Z",
//! });
//! let info = anyam_stix::check_object(&obj).expect("valid");
//! assert_eq!(info.version(), Some("2024-05-02T10:00:00.000Z"));
//!
//! let mut bad = obj.clone();
//! bad["confidence"] = serde_json::json!(150);
//! let err = anyam_stix::check_object(&bad).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f: /confidence: must be an integer from 0 to 100 (STIX 2.1 §2.10)"
//! );
//! ```
//!
//! # Judgement calls
//!
//! Where the specification, its JSON schemas and the OASIS tools disagree,
//! we chose as follows (found by running the same objects through the
//! OASIS validator and the OASIS `stix2` library):
//!
//! - Only `spec_version` "2.1" is accepted: this is a STIX 2.1 node.
//! - A granular marking carries exactly one of `marking_ref` or `lang`
//!   (§7.2.3, as the `stix2` library reads it; the schema demands `marking_ref`).
//! - Selectors must resolve inside the object: a marking that marks nothing
//!   would silently leave content unmarked.
//! - Reference properties must point at the types the spec names for them
//!   (`created_by_ref` at an identity, `sighting_of_ref` at an SDO, SCO
//!   references at their SCO types), and custom `_ref`/`_refs` properties
//!   must hold identifiers.
//! - Lists must not be empty (§2.12), custom properties' lists included.
//! - `lang` and language-content keys must be well-formed RFC 5646 tags;
//!   membership in the language registry is not checked.
//! - Formats with a MUST (IPv4/IPv6 with CIDR, MAC-48, URL scheme, domain
//!   name shape, email addr-spec shape, CPE 2.3, hashes of the named
//!   algorithms) are checked by hand for shape; SHOULDs (open
//!   vocabularies, IANA MIME types) are not enforced.
//! - The STIX pattern of an indicator is not parsed here (`anyam-pattern`
//!   does it).
//!
//! # What it is not
//!
//! Not a STIX patterning parser (that is `anyam-pattern`: an indicator's
//! `pattern` is checked here only as a string), not a typed object model for
//! building STIX, not a store, and it does no I/O. It judges one object at a
//! time: it does not check that references resolve to objects that exist.
//!
//! # Key items
//!
//! - [`check_object`], [`ObjectInfo`], [`Invalid`], [`Violation`]
//! - [`check_bundle`], [`BundleCheck`]
//! - [`Timestamp`], [`parse_timestamp`]
//! - [`canonical_digest`], [`canonical_json`]
//! - [`deterministic_sco_id`]
//! - [`Error`], the crate's one error enum.

mod bundle;
mod canonical;
mod error;
mod ident;
mod sco_id;
mod timestamp;
mod validate;

pub use bundle::{BundleCheck, check_bundle};
pub use canonical::{canonical_digest, canonical_json, write_canonical, write_canonical_str};
pub use error::{DISPLAY_LIMIT, Error, Invalid, KEEP_LIMIT, TimestampError, Violation};
pub use sco_id::{SCO_NAMESPACE, deterministic_sco_id};
pub use timestamp::{Timestamp, format_micros, parse_timestamp};
pub use validate::{ObjectInfo, ObjectKind, check_object, is_sdo_type};
