//! STIX JSON lines: bundles, arrays of objects, observed-data (embedded `objects` or `object_refs`), and bare SCOs, read as the matcher reads them.
//!
//! Observed-data are read by `anyam_pattern::Observations::from_json` in
//! STIX 2.1 mode, the function the matcher's own tools use, so a line means
//! the same here as it does to `anyam pattern match`. A bare SCO has no
//! time of its own: it is observed when it is read (the reader's clock,
//! by default the wall clock), once.

use anyam_pattern::StixVersion;
use anyam_pattern::observations::{Observation, Observations};
use serde_json::{Map, Value};

use crate::event::json_error;
use crate::time::format_stix;

pub(crate) enum Stixed {
    Observations(Vec<Observation>),
    Skip(String),
}

fn type_of(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

/// Reads one line. `now` is the time given to a bare SCO.
pub(crate) fn read_line(text: &str, now: impl FnOnce() -> i128) -> Result<Stixed, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| json_error("not JSON", text, &e))?;
    let input = match &v {
        Value::Array(_) => v,
        Value::Object(_) => match type_of(&v) {
            Some("bundle" | "observed-data") => v,
            Some(ty)
                if anyam_stix::deterministic_sco_id(ty, &Value::Object(Map::new())).is_ok() =>
            {
                bare_sco(v, now)?
            }
            Some(ty) => return Ok(Stixed::Skip(format!("stix {ty}"))),
            None => return Err("type: missing".into()),
        },
        _ => return Err("not a STIX object, bundle or array of objects".into()),
    };
    let obs = Observations::from_json(&input, StixVersion::V2_1).map_err(|e| e.to_string())?;
    if obs.observations.is_empty() {
        return Ok(Stixed::Skip("stix line without observed-data".into()));
    }
    Ok(Stixed::Observations(obs.observations))
}

/// Wraps a bare SCO in an observed-data observed once, now.
fn bare_sco(mut sco: Value, now: impl FnOnce() -> i128) -> Result<Value, String> {
    let ty = type_of(&sco).unwrap_or_default().to_string();
    let id = match sco.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(other) => return Err(format!("id: not a string: {other}")),
        None => {
            let id = anyam_stix::deterministic_sco_id(&ty, &sco).map_err(|e| e.to_string())?;
            if let Value::Object(m) = &mut sco {
                m.insert("id".into(), Value::String(id.clone()));
            }
            id
        }
    };
    // STIX timestamps here carry microseconds: the matcher's precision.
    let t = format_stix(now() / 1000 * 1000);
    let od = serde_json::json!({
        "type": "observed-data",
        "first_observed": t,
        "last_observed": t,
        "number_observed": 1,
        "object_refs": [id],
    });
    Ok(Value::Array(vec![od, sco]))
}
