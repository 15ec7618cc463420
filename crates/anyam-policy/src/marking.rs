//! Markings: what an object version's data markings say about who may
//! receive it, read once at ingest into a [`Label`].
//!
//! A marking definition is trusted by its **id**, never by its name or its
//! content: a partner's marking-definition named "TLP:CLEAR" with an id of
//! its own is not TLP:CLEAR, it is an unknown marking. The ids recognized
//! here are the ones fixed by the standards (the TLP 1.0 definitions of
//! STIX 2.1 §7.2.1.4, the OASIS TLP 2.0 and PAP definitions) and the
//! variant ids other platforms emit for the same levels. Any other id is
//! kept in [`Label::other`] and decided at release time against the
//! operator's accepted markings ([`Accepted`]); an id nobody accepted
//! denies release.
//!
//! Objects are served exactly as received, so a part of an object cannot
//! be withheld: granular markings (§7.2.3) with a `marking_ref` count for
//! the whole object, and the most restrictive marking wins. Granular
//! markings with only `lang` say nothing about release and are ignored.

use std::collections::BTreeSet;

use anyam_trust::{Pap, Tlp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a recognized marking id means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Tlp(Tlp),
    Pap(Pap),
}

/// The OASIS TLP 2.0 marking definitions (extension
/// `extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d`).
pub const TLP2_CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
pub const TLP2_GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
pub const TLP2_AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
pub const TLP2_AMBER_STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
pub const TLP2_RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";

/// The TLP 1.0 marking definitions of STIX 2.1 §7.2.1.4. TLP 1.0 WHITE
/// is TLP 2.0 CLEAR.
pub const TLP1_WHITE: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
pub const TLP1_GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
pub const TLP1_AMBER: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
pub const TLP1_RED: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";

/// Every recognized marking id and its meaning. Variants other platforms
/// emit map to the level they stand for.
const KNOWN: &[(&str, Known)] = &[
    (TLP2_CLEAR, Known::Tlp(Tlp::Clear)),
    (TLP2_GREEN, Known::Tlp(Tlp::Green)),
    (TLP2_AMBER, Known::Tlp(Tlp::Amber)),
    (TLP2_AMBER_STRICT, Known::Tlp(Tlp::AmberStrict)),
    (TLP2_RED, Known::Tlp(Tlp::Red)),
    (TLP1_WHITE, Known::Tlp(Tlp::Clear)),
    (TLP1_GREEN, Known::Tlp(Tlp::Green)),
    (TLP1_AMBER, Known::Tlp(Tlp::Amber)),
    (TLP1_RED, Known::Tlp(Tlp::Red)),
    // OpenCTI's TLP:AMBER+STRICT (it uses the TLP 1.0 ids for the others,
    // and the TLP 1.0 WHITE id for CLEAR).
    (
        "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37",
        Known::Tlp(Tlp::AmberStrict),
    ),
    // The OASIS PAP marking definitions (extension
    // `extension-definition--f8d78575-edfd-406e-8e84-6162a8450f5b`); the
    // legacy PAP:WHITE is PAP:CLEAR.
    (
        "marking-definition--ad15a0cd-55b6-4588-a14c-a66105329b92",
        Known::Pap(Pap::Clear),
    ),
    (
        "marking-definition--a3bea94c-b469-41dc-9cfe-d6e7daba7730",
        Known::Pap(Pap::Clear),
    ),
    (
        "marking-definition--c43594d1-4b11-4c59-93ab-1c9b14d53ce9",
        Known::Pap(Pap::Green),
    ),
    (
        "marking-definition--60f8932b-e51e-4458-b265-a2e8be9a80ab",
        Known::Pap(Pap::Amber),
    ),
    (
        "marking-definition--740d36e5-7714-4c30-961a-3ae632ceee0e",
        Known::Pap(Pap::Red),
    ),
    // OpenCTI's PAP definitions (ids derived from their definitions).
    (
        "marking-definition--4cdff7eb-acb8-543f-8573-829eb9fe8b34",
        Known::Pap(Pap::Clear),
    ),
    (
        "marking-definition--89484dde-e3d2-547f-a6c6-d14824429eb1",
        Known::Pap(Pap::Green),
    ),
    (
        "marking-definition--a6f20d4d-0360-59b6-ba22-3b48707828b1",
        Known::Pap(Pap::Amber),
    ),
    (
        "marking-definition--4e4e3b84-de45-53df-9d9b-b21207699fd8",
        Known::Pap(Pap::Red),
    ),
];

/// What a marking id means, if it is one of the ids fixed by a standard or
/// emitted by a known platform.
pub fn known(id: &str) -> Option<Known> {
    KNOWN.iter().find(|(k, _)| *k == id).map(|(_, m)| *m)
}

/// The ids [`known`] recognizes, for documentation and tests.
pub fn known_ids() -> impl Iterator<Item = (&'static str, Known)> {
    KNOWN.iter().copied()
}

/// The extension-definition through which an object names its TLP:RED
/// recipients: a property extension with one property, `recipients`, a
/// list of `{"node_id": <node id>, "user": <user name on that node>}`.
pub const RECIPIENTS_EXTENSION_ID: &str =
    "extension-definition--4e0cee20-b640-4553-9aad-1c16c0c90a79";

/// One named recipient of TLP:RED data: a user on a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Recipient {
    pub node_id: String,
    pub user: String,
}

/// Who put this version into the node. `org: None` is the host
/// organization itself (the operator's imports, the node's own sightings).
/// `user` is kept only for TLP:RED, where the submitting user (and nobody
/// else of its organization) keeps access to what it sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Everything the release decision needs to know about one object version,
/// derived from its markings and its source. Its canonical JSON
/// ([`Label::key`]) is what the store interns as the version's release
/// class, so every version with the same label shares one class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// The most restrictive recognized TLP marking; `None` when there is
    /// none (the node's default for unmarked data then applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<Tlp>,
    /// The most restrictive recognized PAP marking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pap: Option<Pap>,
    /// Marking ids not recognized by id, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<String>,
    /// TLP:RED recipients named by the object, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<Recipient>,
    /// The object is itself one of the recognized marking definitions: it
    /// defines a public standard and is releasable to anyone entitled to
    /// its collection, so recipients can resolve the markings they see.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// The markings could not be read (a property of the wrong shape); the
    /// version is released to no one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
    #[serde(default)]
    pub source: Source,
    /// Set on versions received from a partner node: who originated the
    /// version and the terms it was published under, as established by the
    /// originator's signature. Absent for data that entered through this
    /// node (it originated here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// The originator of a version received from a partner node, and its
/// signed redistribution terms (see `anyam_trust::provenance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The originating node's id.
    pub node_id: String,
    /// Who the originator allows the version to be passed on to.
    pub redistribution: anyam_trust::Redistribution,
    /// The agreement the originator published it under (whose parties
    /// `Redistribution::Parties` means).
    pub agreement: String,
}

impl Label {
    /// The canonical text of the label: fields in declaration order, lists
    /// sorted, so equal labels have equal keys.
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read a key back. A key that does not parse (for instance the empty
    /// label of versions stored before labels existed) is `None`, which the
    /// decision treats as releasable to no one.
    pub fn from_key(key: &str) -> Option<Label> {
        serde_json::from_str(key).ok()
    }

    /// The same label for a version received from a partner node: its
    /// source is the host organization (the partner shared it with the
    /// organization that runs this node), and `origin` records whose it
    /// is and the originator's terms.
    pub fn received(self, origin: Origin) -> Label {
        let mut l = self.with_source(None, None);
        l.origin = Some(origin);
        l
    }

    /// The same label with another source. The submitting user is kept
    /// only where it can matter: TLP:RED, and markings not recognized by
    /// id, which the operator may later accept as TLP:RED. (It is not kept
    /// for unmarked data, so that unmarked data of many users shares one
    /// class; the node refuses RED as the level of unmarked data.)
    pub fn with_source(mut self, org: Option<&str>, user: Option<&str>) -> Label {
        let keep_user = self.tlp == Some(Tlp::Red) || !self.other.is_empty();
        self.source = Source {
            org: org.map(str::to_string),
            user: if keep_user {
                user.map(str::to_string)
            } else {
                None
            },
        };
        self
    }
}

/// Read the markings of one STIX object: `object_marking_refs`, the
/// `marking_ref` of every granular marking, and the recipients extension.
/// The source is the host organization; see [`Label::with_source`].
pub fn label_of(object: &Value) -> Label {
    let mut label = Label::default();
    let mut other = BTreeSet::new();
    let mut consider = |id: &str, label: &mut Label| match known(id) {
        Some(Known::Tlp(t)) => label.tlp = Some(label.tlp.map_or(t, |l| l.max(t))),
        Some(Known::Pap(p)) => label.pap = Some(label.pap.map_or(p, |l| l.max(p))),
        None => {
            other.insert(id.to_string());
        }
    };
    let mut malformed = Vec::new();
    match object.get("object_marking_refs") {
        None => {}
        Some(Value::Array(refs)) => {
            for r in refs {
                match r.as_str() {
                    Some(id) => consider(id, &mut label),
                    None => malformed.push("object_marking_refs holds a non-string"),
                }
            }
        }
        Some(_) => malformed.push("object_marking_refs is not a list"),
    }
    match object.get("granular_markings") {
        None => {}
        Some(Value::Array(gms)) => {
            for g in gms {
                match g.get("marking_ref") {
                    None if g.get("lang").is_some() => {}
                    Some(Value::String(id)) => consider(id, &mut label),
                    _ => malformed.push("a granular marking has neither marking_ref nor lang"),
                }
            }
        }
        Some(_) => malformed.push("granular_markings is not a list"),
    }
    if let Some(ext) = object
        .get("extensions")
        .and_then(|e| e.get(RECIPIENTS_EXTENSION_ID))
    {
        match ext
            .get("recipients")
            .map(|r| serde_json::from_value::<Vec<Recipient>>(r.clone()))
        {
            Some(Ok(mut rs)) => {
                rs.sort();
                rs.dedup();
                label.recipients = rs;
            }
            _ => malformed.push(
                "the recipients extension needs `recipients`: a list of {node_id, user} objects",
            ),
        }
    }
    label.other = other.into_iter().collect();
    if object.get("type").and_then(Value::as_str) == Some("marking-definition")
        && object
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| known(id).is_some())
    {
        label.public = true;
    }
    if !malformed.is_empty() {
        label.malformed = Some(malformed.join("; "));
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn most_restrictive_of_object_and_granular_markings() {
        let o = json!({
            "type": "indicator",
            "object_marking_refs": [TLP2_GREEN],
            "granular_markings": [
                {"marking_ref": TLP1_AMBER, "selectors": ["description"]},
                {"lang": "fr", "selectors": ["name"]}
            ]
        });
        let l = label_of(&o);
        assert_eq!(l.tlp, Some(Tlp::Amber));
        assert!(l.other.is_empty());
        assert!(l.malformed.is_none());
    }

    #[test]
    fn unknown_ids_are_kept_names_are_ignored() {
        let o = json!({
            "type": "indicator",
            "object_marking_refs": [
                "marking-definition--00000000-0000-4000-8000-000000000001",
                TLP2_CLEAR
            ]
        });
        let l = label_of(&o);
        assert_eq!(l.tlp, Some(Tlp::Clear));
        assert_eq!(
            l.other,
            vec!["marking-definition--00000000-0000-4000-8000-000000000001"]
        );
    }

    #[test]
    fn recipients_and_source() {
        let o = json!({
            "type": "report",
            "object_marking_refs": [TLP2_RED],
            "extensions": {RECIPIENTS_EXTENSION_ID: {
                "extension_type": "property-extension",
                "recipients": [{"node_id": "b", "user": "u2"}, {"node_id": "a", "user": "u1"}]
            }}
        });
        let l = label_of(&o).with_source(Some("org1"), Some("alice"));
        assert_eq!(l.recipients[0].node_id, "a");
        assert_eq!(l.source.user.as_deref(), Some("alice"));
        assert_eq!(Label::from_key(&l.key()), Some(l.clone()));
        // The submitting user is dropped below RED: it decides nothing there.
        let g = label_of(&json!({"object_marking_refs": [TLP2_GREEN]}))
            .with_source(Some("org1"), Some("alice"));
        assert_eq!(g.source.user, None);
    }

    #[test]
    fn malformed_markings_are_flagged() {
        for o in [
            json!({"object_marking_refs": "x"}),
            json!({"object_marking_refs": [1]}),
            json!({"granular_markings": [{"selectors": ["a"]}]}),
            json!({"extensions": {RECIPIENTS_EXTENSION_ID: {"recipients": ["bob"]}}}),
        ] {
            assert!(label_of(&o).malformed.is_some(), "{o}");
        }
        assert!(Label::from_key("").is_none());
    }

    #[test]
    fn pap_is_read_beside_tlp() {
        let o = json!({"object_marking_refs": [
            TLP2_GREEN,
            "marking-definition--740d36e5-7714-4c30-961a-3ae632ceee0e",
            "marking-definition--89484dde-e3d2-547f-a6c6-d14824429eb1"
        ]});
        let l = label_of(&o);
        assert_eq!((l.tlp, l.pap), (Some(Tlp::Green), Some(Pap::Red)));
        assert!(l.other.is_empty());
    }

    #[test]
    fn standard_definitions_are_public() {
        let d = json!({"type": "marking-definition", "id": TLP2_AMBER});
        assert!(label_of(&d).public);
        let spoof = json!({"type": "marking-definition",
            "id": "marking-definition--00000000-0000-4000-8000-000000000002", "name": "TLP:CLEAR"});
        assert!(!label_of(&spoof).public);
    }
}
