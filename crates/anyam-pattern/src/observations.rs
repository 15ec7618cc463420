//! Observations: the matcher's input, normalised into observed-data instances (STIX 2.1 §4.14, §9.6).
//!
//! The input is what the OASIS matcher takes: a JSON list. In STIX 2.1 mode
//! its items are bundles (their `objects` are pooled; an observed-data's
//! `object_refs` resolve to the SCOs of that pool) or bare STIX objects
//! (pooled the same way); an observed-data may instead carry the embedded
//! `objects` dictionary of STIX 2.0, which 2.1 deprecates but allows. In
//! STIX 2.0 mode the items are observed-data objects with embedded `objects`.
//!
//! Each observed-data becomes one [`Observation`]: its interval, its
//! `number_observed` (it stands for that many observations, §4.14), and the
//! objects a pattern can reach from it, keyed by id (2.1) or by the
//! dictionary key (2.0), in which `*_ref`/`*_refs` values resolve.

use crate::ast::Timestamp;
use crate::{Error, StixVersion};
use serde_json::Value;

/// One observed-data object, ready for matching.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The observed-data `id`, when it has one.
    pub id: Option<String>,
    /// Position of the observed-data in the input (counting pooled objects
    /// in input order).
    pub index: usize,
    /// `first_observed`, nanoseconds since the epoch.
    pub first: i128,
    /// `last_observed`, nanoseconds since the epoch.
    pub last: i128,
    /// `number_observed`.
    pub count: u64,
    /// The reachable objects: (key, object). In 2.1 the key is the object id
    /// and the observed-data itself comes first; in 2.0 it is the key of the
    /// embedded dictionary.
    pub objects: Vec<(String, Value)>,
    /// Whether `*_ref` values are keys of an embedded dictionary (2.0 style).
    pub embedded: bool,
}

/// Observations ready for matching.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub observations: Vec<Observation>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Observations(msg.into())
}

fn timestamp(sdo: &Value, key: &str) -> Result<i128, Error> {
    match sdo.get(key) {
        Some(Value::String(s)) => Timestamp::parse_json(s)
            .map(|t| t.nanos_since_epoch())
            .ok_or_else(|| {
                bad(format!(
                    "{key} {s:?} is not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.s]Z)"
                ))
            }),
        Some(other) => Err(bad(format!("{key} is not a string: {other}"))),
        None => Err(bad(format!("observed-data without {key}"))),
    }
}

/// Reads `first_observed`, `last_observed`, `number_observed` (STIX 2.1 §4.14).
fn header(sdo: &Value) -> Result<(i128, i128, u64), Error> {
    if ["number_observed", "first_observed", "last_observed"]
        .iter()
        .any(|k| sdo.get(k).is_none())
    {
        return Err(bad(
            "observed-data must have all of number_observed, first_observed, last_observed",
        ));
    }
    let first = timestamp(sdo, "first_observed")?;
    let last = timestamp(sdo, "last_observed")?;
    let count = match sdo.get("number_observed").and_then(Value::as_u64) {
        Some(n) if n >= 1 => n,
        _ => {
            return Err(bad(format!(
                "number_observed must be an integer of at least 1, got {}",
                sdo.get("number_observed").unwrap_or(&Value::Null)
            )));
        }
    };
    if first > last {
        return Err(bad("first_observed is later than last_observed"));
    }
    Ok((first, last, count))
}

fn embedded_objects(sdo: &Value) -> Result<Vec<(String, Value)>, Error> {
    match sdo.get("objects") {
        None => Ok(Vec::new()),
        Some(Value::Object(m)) => Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(_) => Err(bad("observed-data \"objects\" is not a dictionary")),
    }
}

impl Observations {
    /// Reads the input the OASIS matcher takes (see the module docs). A
    /// single object is taken as a list of one.
    pub fn from_json(v: &Value, version: StixVersion) -> Result<Observations, Error> {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            Value::Object(_) => vec![v],
            _ => return Err(bad("observations must be a list of JSON objects")),
        };
        match version {
            StixVersion::V2_0 => Self::v20(&items),
            StixVersion::V2_1 => Self::v21(&items),
        }
    }

    fn v20(items: &[&Value]) -> Result<Observations, Error> {
        let mut out = Vec::new();
        for (index, sdo) in items.iter().enumerate() {
            if !sdo.is_object() {
                return Err(bad("observations must be a list of JSON objects"));
            }
            let (first, last, count) = header(sdo)?;
            out.push(Observation {
                id: sdo.get("id").and_then(Value::as_str).map(str::to_string),
                index,
                first,
                last,
                count,
                objects: embedded_objects(sdo)?,
                embedded: true,
            });
        }
        Ok(Observations { observations: out })
    }

    fn v21(items: &[&Value]) -> Result<Observations, Error> {
        // Pool every object: the items of bundles, and bare objects.
        let mut pool: Vec<&Value> = Vec::new();
        for item in items {
            if !item.is_object() {
                return Err(bad("observations must be a list of JSON objects"));
            }
            let is_bundle = item.get("type").and_then(Value::as_str) == Some("bundle")
                || (item.get("type").is_none() && item.get("objects").is_some());
            if is_bundle {
                match item.get("objects") {
                    Some(Value::Array(objs)) => pool.extend(objs.iter()),
                    Some(_) => return Err(bad("bundle \"objects\" is not a list")),
                    None => {}
                }
            } else {
                pool.push(item);
            }
        }
        let mut by_id: std::collections::HashMap<&str, &Value> = std::collections::HashMap::new();
        for obj in &pool {
            let ty = obj
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("object without a \"type\""))?;
            if ty != "observed-data" {
                let id = obj
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("object without an \"id\""))?;
                by_id.insert(id, obj);
            }
        }
        let mut out = Vec::new();
        for (index, sdo) in pool.iter().enumerate() {
            if sdo.get("type").and_then(Value::as_str) != Some("observed-data") {
                continue;
            }
            let (first, last, count) = header(sdo)?;
            let id = sdo.get("id").and_then(Value::as_str).map(str::to_string);
            let (objects, embedded) = match (sdo.get("object_refs"), sdo.get("objects")) {
                (Some(Value::Array(refs)), _) => {
                    let mut objects = vec![(id.clone().unwrap_or_default(), (*sdo).clone())];
                    for r in refs {
                        let r = r
                            .as_str()
                            .ok_or_else(|| bad("object_refs holds a non-string"))?;
                        if let Some(o) = by_id.get(r) {
                            objects.push((r.to_string(), (*o).clone()));
                        }
                    }
                    (objects, false)
                }
                (Some(_), _) => return Err(bad("object_refs is not a list")),
                // The STIX 2.0 form, deprecated in 2.1 but allowed (STIX 2.1 §4.14).
                (None, Some(_)) => (embedded_objects(sdo)?, true),
                (None, None) => return Err(bad("observed-data without object_refs or objects")),
            };
            out.push(Observation {
                id,
                index,
                first,
                last,
                count,
                objects,
                embedded,
            });
        }
        Ok(Observations { observations: out })
    }
}
