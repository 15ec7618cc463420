//! The Admiralty filter of the API (`min_reliability`, `min_credibility`),
//! which the store applies in SQL over the stored text, agrees with
//! `AdmiraltyFilter::accepts` on every combination of grades and on
//! objects whose rating is absent, odd or unreadable.

use anyam_store::{ApiRoot, Collection, NewObject, Query, SqliteOptions, SqliteStore, Store};
use anyam_trust::admiralty::{AdmiraltyFilter, RELIABILITY_EXTENSION_ID};
use serde_json::{Value, json};

const COLL: &str = "0b1f5d2a-3c4e-4f60-8a1b-2c3d4e5f6a7b";

fn objects() -> Vec<Value> {
    let confidences = [
        None,
        Some(json!(0)),
        Some(json!(19)),
        Some(json!(20)),
        Some(json!(39)),
        Some(json!(40)),
        Some(json!(59)),
        Some(json!(60)),
        Some(json!(79)),
        Some(json!(80)),
        Some(json!(100)),
        Some(json!(101)),
        Some(json!(55.5)),
        Some(json!(-3)),
    ];
    let reliabilities = [
        None,
        Some(json!({"extension_type": "property-extension", "source_reliability": "A"})),
        Some(json!({"extension_type": "property-extension", "source_reliability": "b"})),
        Some(json!({"extension_type": "property-extension", "source_reliability": "D"})),
        Some(json!({"extension_type": "property-extension", "source_reliability": "F"})),
        Some(json!({"extension_type": "property-extension", "source_reliability": "Z"})),
        Some(json!({"extension_type": "property-extension", "source_reliability": "AB"})),
        Some(json!({"extension_type": "property-extension", "source_reliability": 7})),
        Some(json!({"extension_type": "property-extension"})),
    ];
    let mut out = Vec::new();
    for (i, c) in confidences.iter().enumerate() {
        for (j, r) in reliabilities.iter().enumerate() {
            let mut o = json!({
                "type": "indicator",
                "spec_version": "2.1",
                "id": format!("indicator--00000000-0000-4000-8000-{:06}{:06}", i, j),
                "created": "2024-01-01T00:00:00.000Z",
                "modified": "2024-01-01T00:00:00.000Z",
            });
            if let Some(c) = c {
                o["confidence"] = c.clone();
            }
            if let Some(r) = r {
                o["extensions"] = json!({ RELIABILITY_EXTENSION_ID: r });
            }
            out.push(o);
        }
    }
    out
}

#[test]
fn store_filter_agrees_with_the_admiralty_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db"), SqliteOptions::default()).unwrap();
    store
        .create_api_root(&ApiRoot {
            name: "r".into(),
            title: "r".into(),
            description: None,
            max_content_length: 1 << 20,
        })
        .unwrap();
    store
        .create_collection(&Collection {
            id: COLL.into(),
            api_root: "r".into(),
            title: "c".into(),
            description: None,
            alias: None,
        })
        .unwrap();
    let objs = objects();
    let batch: Vec<NewObject> = objs
        .iter()
        .enumerate()
        .map(|(n, o)| NewObject {
            id: o["id"].as_str().unwrap().into(),
            object_type: "indicator".into(),
            spec_version: "2.1".into(),
            version: Some("2024-01-01T00:00:00.000Z".into()),
            version_micros: Some(1_704_067_200_000_000),
            digest: [n as u8; 32],
            raw: o.to_string(),
            release_label: String::new(),
            observables: Vec::new(),
            name: o["name"].as_str().map(str::to_string),
            description: None,
        })
        .collect();
    store.put_objects(COLL, &batch).unwrap();
    let reliabilities = [
        None,
        Some("A"),
        Some("B"),
        Some("C"),
        Some("D"),
        Some("E"),
        Some("F"),
    ];
    let credibilities = [
        None,
        Some("1"),
        Some("2"),
        Some("3"),
        Some("4"),
        Some("5"),
        Some("6"),
    ];
    let mut checked = 0;
    for r in reliabilities {
        for c in credibilities {
            let Some(rating) = anyam_taxii::params::rating_filter(r, c).unwrap() else {
                continue;
            };
            let filter = AdmiraltyFilter::from_params(r, c).unwrap();
            let want: Vec<&str> = objs
                .iter()
                .filter(|o| filter.accepts(o))
                .map(|o| o["id"].as_str().unwrap())
                .collect();
            let page = store
                .objects(
                    COLL,
                    &Query {
                        limit: 1000,
                        rating: Some(rating),
                        ..Query::default()
                    },
                )
                .unwrap();
            let got: Vec<&str> = page.items.iter().map(|o| o.id.as_str()).collect();
            assert_eq!(got, want, "min_reliability {r:?} min_credibility {c:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 48);
}

#[test]
fn bad_grades_are_the_clients_error() {
    assert!(anyam_taxii::params::rating_filter(Some("G"), None).is_err());
    assert!(anyam_taxii::params::rating_filter(None, Some("7")).is_err());
    assert!(
        anyam_taxii::params::rating_filter(None, None)
            .unwrap()
            .is_none()
    );
}
