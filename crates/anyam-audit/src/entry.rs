//! The wire types of one audit record ([`Event`] before it is appended,
//! [`Entry`] after) and their leaf encoding, plus [`Hash`].

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AuditError;

/// A SHA-256 value: a leaf hash, a node hash or a root. Lowercase hex on
/// the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// From exactly 32 bytes, as read back from storage.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl FromStr for Hash {
    type Err = AuditError;
    fn from_str(s: &str) -> Result<Hash, AuditError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| AuditError::Malformed(format!("not a hex SHA-256 value: {s:?}")))?;
        Ok(Hash(out))
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What kind of event an entry records. An open set: the named kinds are
/// the ones the node writes today, anything else travels as
/// [`Kind::Other`] with its string intact, so an older verifier still
/// reads a newer log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Objects left the node (a TAXII response, a sync push, an export).
    Release,
    /// Objects arrived (a POST, a sync pull).
    Receipt,
    /// A request was refused by the release decision.
    Denial,
    /// A key was created, rotated, revoked or pinned.
    Key,
    /// A sharing agreement was proposed, signed, amended or ended.
    Agreement,
    /// An administrative change (users, grants, collections, settings).
    Admin,
    /// Any other kind, by name.
    Other(String),
}

impl Kind {
    /// The string form used on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Kind::Release => "release",
            Kind::Receipt => "receipt",
            Kind::Denial => "denial",
            Kind::Key => "key",
            Kind::Agreement => "agreement",
            Kind::Admin => "admin",
            Kind::Other(s) => s,
        }
    }
}

impl From<&str> for Kind {
    fn from(s: &str) -> Kind {
        match s {
            "release" => Kind::Release,
            "receipt" => Kind::Receipt,
            "denial" => Kind::Denial,
            "key" => Kind::Key,
            "agreement" => Kind::Agreement,
            "admin" => Kind::Admin,
            other => Kind::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Kind::from(&*s))
    }
}

/// One STIX object version, as released or received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub id: String,
    /// The `modified` timestamp (or `created` for unversioned objects), as
    /// it appears in the object.
    pub version: String,
}

/// What an event was about. Every part is optional so that one shape
/// serves a release of a batch of objects, a key event and a change of a
/// grant alike.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Subject {
    /// The collection concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// The request path or resource concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The object versions concerned: one entry covers a whole response,
    /// so that auditing costs one row per request, not one per object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectRef>,
}

/// An event to record: who did what, when and why. The log turns it into
/// an [`Entry`] by giving it the next sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, kept to the microsecond.
    #[serde(with = "micros")]
    pub time: Timestamp,
    pub kind: Kind,
    /// Who: a user name, token owner or node identity.
    pub actor: String,
    /// The partner nodes or organizations the event concerns. A partner's
    /// export holds exactly the entries whose `parties` name it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parties: Vec<String>,
    /// What.
    #[serde(default)]
    pub what: Subject,
    /// Why: the rule, grant, agreement or operator reason behind it.
    #[serde(default)]
    pub why: String,
    /// Anything else, free-form. Numbers here are IEEE 754 doubles once
    /// canonicalized (RFC 8785 §3.2.2.3): put large integers in strings.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl Event {
    /// An event of `kind` by `actor`, happening now, with everything else
    /// empty.
    pub fn new(kind: Kind, actor: impl Into<String>) -> Event {
        Event {
            time: Timestamp::now(),
            kind,
            actor: actor.into(),
            parties: Vec::new(),
            what: Subject::default(),
            why: String::new(),
            details: serde_json::Value::Null,
        }
    }
}

/// One record of the log: an [`Event`] with its sequence number, which is
/// also its leaf index in the Merkle tree.
///
/// # Leaf encoding
///
/// The Merkle leaf of an entry is the RFC 8785 canonical JSON (UTF-8) of
/// its JSON object, for example
///
/// ```text
/// {"actor":"alice","kind":"release","parties":["node-b"],"seq":7,
///  "time":"2026-01-02T03:04:05.000006Z","what":{"collection":"c1",
///  "objects":[{"id":"indicator--…","version":"…"}]},"why":"grant 3"}
/// ```
///
/// (one line, no spaces): members sorted by their UTF-16 code units,
/// `time` in RFC 3339 UTC with exactly six fractional digits, `seq` a JSON
/// number, empty `parties`, `what` members and null `details` left out.
/// Its leaf hash is `SHA-256(0x00 || leaf)` (RFC 9162 §2.1.1). Anyone can
/// recompute it from the JSON object with any RFC 8785 implementation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

impl Entry {
    /// The leaf bytes: RFC 8785 canonical JSON of the entry.
    pub fn leaf(&self) -> Result<Vec<u8>, AuditError> {
        Ok(leaf_bytes(self.seq, &self.event))
    }

    /// Read an entry back from its leaf bytes, refusing bytes that are not
    /// exactly the canonical form (so that one entry has one leaf).
    pub fn from_leaf(leaf: &[u8]) -> Result<Entry, AuditError> {
        let value: serde_json::Value = serde_json::from_slice(leaf)?;
        if anyam_stix::canonical_json(&value).as_bytes() != leaf {
            return Err(AuditError::Malformed(
                "the leaf is not in RFC 8785 canonical form".into(),
            ));
        }
        Ok(serde_json::from_value(value)?)
    }
}

/// The leaf of entry `seq` recording `event`: the RFC 8785 canonical JSON
/// of `Entry { seq, event }`, written directly in its member order instead
/// of through a `serde_json::Value` (building that tree for the objects
/// of a page was most of the cost of auditing a read). The
/// `leaf_is_the_canonical_json_of_the_entry` property test holds it equal
/// to `canonical_json(to_value(entry))`; the order below is the byte order
/// of the member names, which are ASCII.
pub(crate) fn leaf_bytes(seq: u64, event: &Event) -> Vec<u8> {
    use anyam_stix::{write_canonical, write_canonical_str};
    let mut out = Vec::with_capacity(256 + 96 * event.what.objects.len());
    let key = |out: &mut Vec<u8>, first: bool, k: &str| {
        if !first {
            out.push(b',');
        }
        write_canonical_str(out, k);
        out.push(b':');
    };
    out.push(b'{');
    key(&mut out, true, "actor");
    write_canonical_str(&mut out, &event.actor);
    if !event.details.is_null() {
        key(&mut out, false, "details");
        write_canonical(&mut out, &event.details);
    }
    key(&mut out, false, "kind");
    write_canonical_str(&mut out, event.kind.as_str());
    if !event.parties.is_empty() {
        key(&mut out, false, "parties");
        out.push(b'[');
        for (i, p) in event.parties.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_canonical_str(&mut out, p);
        }
        out.push(b']');
    }
    key(&mut out, false, "seq");
    write_canonical(&mut out, &serde_json::Value::from(seq));
    key(&mut out, false, "time");
    write_canonical_str(&mut out, &micros::format(&event.time));
    key(&mut out, false, "what");
    out.push(b'{');
    let mut first = true;
    if let Some(c) = &event.what.collection {
        key(&mut out, first, "collection");
        write_canonical_str(&mut out, c);
        first = false;
    }
    if !event.what.objects.is_empty() {
        key(&mut out, first, "objects");
        out.push(b'[');
        for (i, o) in event.what.objects.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            key(&mut out, true, "id");
            write_canonical_str(&mut out, &o.id);
            key(&mut out, false, "version");
            write_canonical_str(&mut out, &o.version);
            out.push(b'}');
        }
        out.push(b']');
        first = false;
    }
    if let Some(p) = &event.what.path {
        key(&mut out, first, "path");
        write_canonical_str(&mut out, p);
    }
    out.push(b'}');
    key(&mut out, false, "why");
    write_canonical_str(&mut out, &event.why);
    out.push(b'}');
    out
}

/// RFC 3339 UTC with exactly six fractional digits: fixed width, so the
/// canonical leaf of an entry does not depend on how round its time is.
pub(crate) mod micros {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(t: &Timestamp) -> String {
        format!("{:.6}", truncate(*t))
    }

    pub fn truncate(t: Timestamp) -> Timestamp {
        Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
    }

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse::<Timestamp>().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn leaf_is_canonical_and_round_trips() {
        let mut e = Event::new(Kind::Release, "alice");
        e.time = "2026-01-02T03:04:05.0000061Z".parse().unwrap();
        e.parties = vec!["node-b".into()];
        e.what.collection = Some("c1".into());
        e.what.objects.push(ObjectRef {
            id: "indicator--1".into(),
            version: "2026-01-01T00:00:00.000Z".into(),
        });
        e.why = "grant 3".into();
        let entry = Entry { seq: 7, event: e };
        let leaf = entry.leaf().unwrap();
        assert_eq!(
            String::from_utf8(leaf.clone()).unwrap(),
            r#"{"actor":"alice","kind":"release","parties":["node-b"],"seq":7,"time":"2026-01-02T03:04:05.000006Z","what":{"collection":"c1","objects":[{"id":"indicator--1","version":"2026-01-01T00:00:00.000Z"}]},"why":"grant 3"}"#
        );
        let back = Entry::from_leaf(&leaf).unwrap();
        assert_eq!(back.leaf().unwrap(), leaf);
        assert_eq!(back.event.kind, Kind::Release);
        let spaced = String::from_utf8(leaf).unwrap().replace(',', ", ");
        assert!(Entry::from_leaf(spaced.as_bytes()).is_err());
    }

    proptest::proptest! {
        /// The direct leaf writer and the generic path (the entry as a JSON
        /// value, then RFC 8785) give the same bytes, for every shape: empty
        /// and present optional parts, non-ASCII and control characters,
        /// nested free-form details, large sequence numbers.
        #[test]
        fn leaf_is_the_canonical_json_of_the_entry(
            seq in any::<u64>(),
            micros in 0i64..4_000_000_000_000_000,
            kind in "[a-z]{1,9}",
            actor in "\\PC{0,12}|[\\x00-\\x1f\"\\\\é😀]{0,6}",
            parties in proptest::collection::vec("\\PC{0,10}", 0..3),
            collection in proptest::option::of("[a-z0-9-]{0,12}"),
            path in proptest::option::of("\\PC{0,16}"),
            objects in proptest::collection::vec(("\\PC{0,20}", "\\PC{0,12}"), 0..4),
            why in "\\PC{0,12}",
            details in proptest::option::of(proptest::collection::btree_map(
                "\\PC{0,6}",
                proptest::prop_oneof![
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<bool>().prop_map(serde_json::Value::from),
                    "\\PC{0,8}".prop_map(serde_json::Value::from),
                    proptest::collection::vec("\\PC{0,4}", 0..3).prop_map(serde_json::Value::from),
                ],
                0..4,
            )),
        ) {
            let mut e = Event::new(Kind::from(kind.as_str()), actor);
            e.time = Timestamp::from_microsecond(micros).unwrap();
            e.parties = parties;
            e.what.collection = collection;
            e.what.path = path;
            e.what.objects = objects
                .into_iter()
                .map(|(id, version)| ObjectRef { id, version })
                .collect();
            e.why = why;
            e.details = details
                .map(|m| serde_json::Value::Object(m.into_iter().collect()))
                .unwrap_or(serde_json::Value::Null);
            let entry = Entry { seq, event: e };
            let generic = anyam_stix::canonical_json(&serde_json::to_value(&entry).unwrap());
            let direct = String::from_utf8(entry.leaf().unwrap()).unwrap();
            proptest::prop_assert_eq!(&direct, &generic);
            let back = Entry::from_leaf(direct.as_bytes()).unwrap();
            proptest::prop_assert_eq!(back.leaf().unwrap(), direct.into_bytes());
        }
    }

    #[test]
    fn kinds_are_open() {
        for k in [
            "release",
            "receipt",
            "denial",
            "key",
            "agreement",
            "admin",
            "sync",
        ] {
            let kind = Kind::from(k);
            assert_eq!(serde_json::to_value(&kind).unwrap(), k);
        }
        assert_eq!(Kind::from("sync"), Kind::Other("sync".into()));
    }

    #[test]
    fn whole_seconds_keep_six_digits() {
        let t: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(micros::format(&t), "2026-01-02T03:04:05.000000Z");
    }
}
