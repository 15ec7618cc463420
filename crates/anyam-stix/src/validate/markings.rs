//! Granular markings (STIX 2.1 §7.2.3) and marking-definition rules (§7.2.1), including TLP.

use serde_json::{Map, Value};

use super::ctx::{Ctx, Path};
use super::kinds::{Kind, Refs, check_value};
use super::sec;

/// The four TLP 1.0 marking definitions are fixed by the spec (§7.2.1.4):
/// a `tlp` marking-definition must be one of them exactly: level, id, name
/// and creation time together.
const TLP: [(&str, &str, &str); 4] = [
    (
        "white",
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        "TLP:WHITE",
    ),
    (
        "green",
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        "TLP:GREEN",
    ),
    (
        "amber",
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        "TLP:AMBER",
    ),
    (
        "red",
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        "TLP:RED",
    ),
];

/// The `created` of the four TLP marking definitions (§7.2.1.4).
const TLP_CREATED: &str = "2017-01-20T00:00:00.000Z";

/// `granular_markings`: a non-empty list; each has non-empty `selectors` that
/// resolve inside this object, and exactly one of `marking_ref` or `lang`.
pub(crate) fn check_granular(ctx: &mut Ctx, path: &Path, v: &Value) {
    let Some(items) = v.as_array() else {
        ctx.report(path, "must be a list of granular markings", sec::GRANULAR);
        return;
    };
    if items.is_empty() {
        ctx.report(path, "lists must not be empty", sec::LIST);
    }
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        let Some(m) = item.as_object() else {
            ctx.report(&p, "must be a granular-marking object", sec::GRANULAR);
            continue;
        };
        match (m.get("marking_ref"), m.get("lang")) {
            (Some(r), None) => check_value(
                ctx,
                &p.key("marking_ref"),
                r,
                Kind::Ref(Refs::Only(&["marking-definition"])),
                sec::GRANULAR,
            ),
            (None, Some(l)) => check_value(ctx, &p.key("lang"), l, Kind::Lang, sec::GRANULAR),
            (Some(_), Some(_)) => ctx.report(
                &p.key("lang"),
                "lang must not be present when marking_ref is present",
                sec::GRANULAR,
            ),
            (None, None) => ctx.report(
                &p.key("marking_ref"),
                "one of marking_ref or lang is required",
                sec::GRANULAR,
            ),
        }
        let sp = p.key("selectors");
        match m.get("selectors").map(Value::as_array) {
            None => ctx.report(
                &sp,
                "required property of granular-marking is missing",
                sec::GRANULAR,
            ),
            Some(None) => ctx.report(&sp, "must be a list of selector strings", sec::GRANULAR),
            Some(Some(sels)) if sels.is_empty() => {
                ctx.report(&sp, "lists must not be empty", sec::LIST)
            }
            Some(Some(sels)) => {
                for (j, s) in sels.iter().enumerate() {
                    let root = ctx.root;
                    match s.as_str() {
                        Some(sel) if resolves(root, sel) => {}
                        Some(_) => ctx.report(
                            &sp.index(j),
                            "selector does not resolve to a property of this object",
                            sec::GRANULAR,
                        ),
                        None => {
                            ctx.report(&sp.index(j), "must be a selector string", sec::GRANULAR)
                        }
                    }
                }
            }
        }
    }
}

/// Whether a selector (§7.2.3.1: property names and `[index]` steps joined by
/// dots) points at something that exists in the object. A marking whose
/// selector points nowhere would silently mark nothing, so it is refused.
fn resolves(root: &Map<String, Value>, selector: &str) -> bool {
    let mut steps = selector.split('.');
    let Some(first) = steps.next() else {
        return false;
    };
    let Some(mut cur) = root.get(first) else {
        return false;
    };
    for step in steps {
        let next = if let Some(idx) = step.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            match (idx.parse::<usize>(), cur.as_array()) {
                (Ok(i), Some(a)) if idx.bytes().all(|c| c.is_ascii_digit()) => a.get(i),
                _ => None,
            }
        } else {
            cur.as_object().and_then(|m| m.get(step))
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    true
}

/// Marking definitions (§7.2.1): `definition_type` and `definition` are
/// required unless the marking is defined by `extensions`; the two predefined
/// types `statement` and `tlp` have fixed shapes.
pub(crate) fn marking_definition_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    // §7.2.2: a marking definition must not mark itself.
    if let (Some(id), Some(refs)) = (
        m.get("id").and_then(Value::as_str),
        m.get("object_marking_refs").and_then(Value::as_array),
    ) {
        for (i, r) in refs.iter().enumerate() {
            if r.as_str() == Some(id) {
                ctx.report(
                    &path.key("object_marking_refs").index(i),
                    "a marking definition must not reference itself",
                    "STIX 2.1 §7.2.2",
                );
            }
        }
    }
    let dt = m.get("definition_type");
    let def = m.get("definition");
    if !m.contains_key("extensions") {
        if dt.is_none() {
            ctx.report(
                &path.key("definition_type"),
                "required unless the marking is defined by extensions",
                sec::MARKING_DEFINITION,
            );
        }
        if def.is_none() {
            ctx.report(
                &path.key("definition"),
                "required unless the marking is defined by extensions",
                sec::MARKING_DEFINITION,
            );
        }
    }
    let (Some(dt), Some(def)) = (dt.and_then(Value::as_str), def) else {
        return;
    };
    let dp = path.key("definition");
    match dt {
        "statement" => match def.get("statement") {
            Some(Value::String(_)) => {}
            _ => ctx.report(
                &dp.key("statement"),
                "a statement marking needs a statement string",
                sec::MARKING_DEFINITION,
            ),
        },
        "tlp" => {
            let level = def.get("tlp").and_then(Value::as_str);
            let id = m.get("id").and_then(Value::as_str);
            let Some((_, tlp_id, tlp_name)) = TLP.iter().find(|(l, _, _)| Some(*l) == level) else {
                ctx.report(
                    &dp.key("tlp"),
                    "must be one of white, green, amber, red",
                    sec::MARKING_DEFINITION,
                );
                return;
            };
            if Some(*tlp_id) != id {
                ctx.report(
                    &path.key("id"),
                    format!("a TLP marking must use the predefined id {tlp_id}"),
                    sec::MARKING_DEFINITION,
                );
            }
            if m.get("created").and_then(Value::as_str) != Some(TLP_CREATED) {
                ctx.report(
                    &path.key("created"),
                    format!("a TLP marking must be the predefined one, created {TLP_CREATED}"),
                    sec::MARKING_DEFINITION,
                );
            }
            if m.get("name").and_then(Value::as_str) != Some(*tlp_name) {
                ctx.report(
                    &path.key("name"),
                    format!("the predefined TLP marking is named {tlp_name}"),
                    sec::MARKING_DEFINITION,
                );
            }
        }
        _ => {}
    }
}
