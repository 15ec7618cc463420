//! The `extensions` property (STIX 2.1 §7.3) and the predefined SCO extensions (§6).

use serde_json::Value;

use super::ctx::{Ctx, Path};
use super::kinds::{Kind, check_custom, check_nested, check_value};
use super::sec;
use super::types;
use crate::ident::{is_type_name, parse_id};

/// The values `extension_type` may take (§7.3).
pub(crate) const EXTENSION_TYPES: &[&str] = &[
    "new-sdo",
    "new-sco",
    "new-sro",
    "property-extension",
    "toplevel-property-extension",
];

/// `extensions`: a non-empty dictionary whose keys are either the id of an
/// extension-definition (whose value then names its `extension_type`) or the
/// name of a predefined extension, ending in `-ext`.
pub(crate) fn check_extensions(ctx: &mut Ctx, path: &Path, v: &Value) {
    let Some(m) = v.as_object() else {
        ctx.report(path, "must be a dictionary of extensions", sec::EXTENSIONS);
        return;
    };
    if m.is_empty() {
        ctx.report(path, "must have at least one extension", sec::EXTENSIONS);
    }
    let object_type = ctx.root.get("type").and_then(Value::as_str).unwrap_or("");
    for (k, ext) in m {
        let p = path.key(k);
        let Some(em) = ext.as_object() else {
            ctx.report(&p, "an extension must be an object", sec::EXTENSIONS);
            continue;
        };
        if k.starts_with("extension-definition--") {
            match parse_id(k) {
                Ok(("extension-definition", _)) => {}
                _ => ctx.report(
                    &p,
                    "not a valid extension-definition identifier",
                    sec::IDENTIFIER,
                ),
            }
            match em.get("extension_type") {
                Some(t) => check_value(
                    ctx,
                    &p.key("extension_type"),
                    t,
                    Kind::Enum(EXTENSION_TYPES),
                    sec::EXTENSIONS,
                ),
                None => ctx.report(
                    &p.key("extension_type"),
                    "an extension defined by an extension-definition must state its extension_type",
                    sec::EXTENSIONS,
                ),
            }
            for (ek, ev) in em {
                if ek != "extension_type" {
                    check_custom(ctx, &p, ek, ev);
                }
            }
        } else if let Some(spec) = types::predefined_extension(object_type, k) {
            if em.is_empty() {
                ctx.report(&p, "an extension must not be empty", sec::EXTENSIONS);
            }
            check_nested(ctx, &p, em, spec);
            // Producers may add their own properties to a predefined extension;
            // they follow the custom-property rules (§11.1).
            for (ek, ev) in em {
                if spec.kind_of(ek).is_none() {
                    check_custom(ctx, &p, ek, ev);
                }
            }
        } else if k.strip_suffix("-ext").is_some_and(|stem| !stem.is_empty()) && is_type_name(k) {
            // A custom extension in the STIX 2.0 style (§7.3 deprecates but
            // still allows it): its properties follow the custom-property rules.
            if em.is_empty() {
                ctx.report(&p, "an extension must not be empty", sec::EXTENSIONS);
            }
            for (ek, ev) in em {
                check_custom(ctx, &p, ek, ev);
            }
        } else {
            ctx.report(
                &p,
                "extension names must be an extension-definition id or a predefined extension name ending in -ext",
                sec::EXTENSIONS,
            );
        }
    }
}

/// The `extension_type` of the first extension-definition extension that
/// makes this object a new object type, for custom objects (§7.3, §11.2).
pub(crate) fn new_object_kind(v: Option<&Value>) -> Option<&str> {
    v?.as_object()?.values().find_map(|e| {
        let t = e.get("extension_type")?.as_str()?;
        matches!(t, "new-sdo" | "new-sco" | "new-sro").then_some(t)
    })
}
