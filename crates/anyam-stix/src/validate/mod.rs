//! `check_object`: validation of one STIX 2.1 object against the common and per-type rule tables.

mod ctx;
mod extensions;
mod kinds;
mod markings;
pub(crate) mod types;

use serde_json::{Map, Value};

use crate::error::{Invalid, Violation};
use crate::ident::{is_type_name, parse_id};
use crate::timestamp::{Timestamp, parse_timestamp};
use ctx::{Ctx, Path};
use kinds::{Kind, Refs, Spec, check_custom, check_required, check_value};
pub use types::ObjectKind;

/// The sections of STIX 2.1 (OASIS Standard, 10 June 2021) that violations cite.
pub(crate) mod sec {
    pub const BINARY: &str = "STIX 2.1 §2.1";
    pub const BOOLEAN: &str = "STIX 2.1 §2.2";
    pub const DICTIONARY: &str = "STIX 2.1 §2.3";
    pub const EXTERNAL_REFERENCE: &str = "STIX 2.1 §2.5";
    pub const FLOAT: &str = "STIX 2.1 §2.6";
    pub const HASHES: &str = "STIX 2.1 §2.7";
    pub const HEX: &str = "STIX 2.1 §2.8";
    pub const IDENTIFIER: &str = "STIX 2.1 §2.9";
    pub const INTEGER: &str = "STIX 2.1 §2.10";
    pub const KILL_CHAIN_PHASE: &str = "STIX 2.1 §2.11";
    pub const LIST: &str = "STIX 2.1 §2.12";
    pub const STRING: &str = "STIX 2.1 §2.14";
    pub const TIMESTAMP: &str = "STIX 2.1 §2.15";
    pub const NAMES: &str = "STIX 2.1 §3.1";
    pub const COMMON: &str = "STIX 2.1 §3.2";
    pub const LANGUAGE_CONTENT: &str = "STIX 2.1 §7.1";
    pub const MARKING_DEFINITION: &str = "STIX 2.1 §7.2.1";
    pub const GRANULAR: &str = "STIX 2.1 §7.2.3";
    pub const EXTENSION_DEFINITION: &str = "STIX 2.1 §7.3";
    pub const EXTENSIONS: &str = "STIX 2.1 §7.3";
    pub const BUNDLE: &str = "STIX 2.1 §8";
    pub const CUSTOM_PROPERTIES: &str = "STIX 2.1 §11.1";
}

const MARKING_REFS: Kind = Kind::RefList(Refs::Only(&["marking-definition"]));

/// Common properties of SDOs, SROs, language-content and extension-definition (§3.2).
static COMMON_SDO: Spec = Spec {
    name: "STIX domain and relationship objects",
    section: sec::COMMON,
    props: &[
        ("spec_version", Kind::SpecVersion),
        ("created_by_ref", Kind::Ref(Refs::Only(&["identity"]))),
        ("created", Kind::TsMillis),
        ("modified", Kind::TsMillis),
        ("revoked", Kind::Bool),
        ("labels", Kind::StrList),
        ("confidence", Kind::Int(0, 100)),
        ("lang", Kind::Lang),
        ("external_references", Kind::ExtRefs),
        ("object_marking_refs", MARKING_REFS),
        ("granular_markings", Kind::Granular),
        ("extensions", Kind::Extensions),
    ],
    required: &["spec_version", "created", "modified"],
    at_least_one: false,
    rule: None,
};

/// Common properties of SCOs (§3.2, §6).
static COMMON_SCO: Spec = Spec {
    name: "STIX cyber-observable objects",
    section: sec::COMMON,
    props: &[
        ("spec_version", Kind::SpecVersion),
        ("object_marking_refs", MARKING_REFS),
        ("granular_markings", Kind::Granular),
        ("defanged", Kind::Bool),
        ("extensions", Kind::Extensions),
    ],
    required: &[],
    at_least_one: false,
    rule: None,
};

/// Properties of marking-definition (§7.2.1): it has `created` but no `modified`.
static COMMON_MARKING: Spec = Spec {
    name: "marking-definition",
    section: sec::MARKING_DEFINITION,
    props: &[
        ("spec_version", Kind::SpecVersion),
        ("created_by_ref", Kind::Ref(Refs::Only(&["identity"]))),
        ("created", Kind::Ts),
        ("external_references", Kind::ExtRefs),
        ("object_marking_refs", MARKING_REFS),
        ("granular_markings", Kind::Granular),
        ("extensions", Kind::Extensions),
        ("name", Kind::Str),
        ("definition_type", Kind::Str),
        ("definition", Kind::Obj),
    ],
    required: &["spec_version", "created"],
    at_least_one: false,
    rule: None,
};

/// What the ingest pipeline needs to know about a valid object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub id: String,
    pub object_type: String,
    /// `spec_version` as written; "2.1" for SCOs that omit it.
    pub spec_version: String,
    /// `created` (SDOs, SROs, meta objects); `None` for SCOs.
    pub created: Option<Timestamp>,
    /// `modified` (SDOs, SROs, language-content, extension-definition); `None`
    /// for SCOs and marking-definitions.
    pub modified: Option<Timestamp>,
    pub revoked: bool,
    /// The object's kind; for custom objects, the kind it behaves as.
    pub kind: ObjectKind,
    /// Whether the type is not one STIX 2.1 defines (§11.2).
    pub custom: bool,
    pub created_by_ref: Option<String>,
    /// `object_marking_refs` (§7.2.2), in order.
    pub object_marking_refs: Vec<String>,
    /// Every `marking_ref` of `granular_markings` (§7.2.3), in order, with repeats.
    pub granular_marking_refs: Vec<String>,
}

impl ObjectInfo {
    /// `modified`, else `created`, exactly as written in the object (the
    /// TAXII version string); `None` for objects with neither.
    pub fn version(&self) -> Option<&str> {
        self.version_timestamp().map(Timestamp::as_str)
    }

    /// The version as microseconds since the Unix epoch, for ordering versions.
    pub fn version_micros(&self) -> Option<i64> {
        self.version_timestamp().map(Timestamp::micros)
    }

    /// Every marking-definition this object references, object-level first,
    /// then granular, without repeats: what a release policy must honour.
    pub fn marking_refs(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in self
            .object_marking_refs
            .iter()
            .chain(&self.granular_marking_refs)
        {
            if !out.contains(&r.as_str()) {
                out.push(r);
            }
        }
        out
    }

    fn version_timestamp(&self) -> Option<&Timestamp> {
        self.modified.as_ref().or(self.created.as_ref())
    }
}

/// Validate one STIX object: any SDO, SRO, SCO, marking-definition,
/// language-content, extension-definition, or custom object (§11.2: custom
/// types get their common properties checked). Does not validate bundles.
/// Collects every violation, not only the first. Never modifies the value.
pub fn check_object(value: &Value) -> Result<ObjectInfo, Invalid> {
    let Some(map) = value.as_object() else {
        return Err(Invalid {
            id: None,
            violations: vec![Violation {
                path: String::new(),
                message: String::from("a STIX object must be a JSON object"),
                section: sec::COMMON,
            }],
            total: 1,
        });
    };
    let mut ctx = Ctx::new(map);
    let root = Path::Root;

    let ty = match map.get("type") {
        Some(Value::String(t)) => {
            if !is_type_name(t) {
                ctx.report(
                    &root.key("type"),
                    "object types must be 3-250 characters of a-z, 0-9 and single hyphens, starting with a letter",
                    sec::NAMES,
                );
            }
            Some(t.as_str())
        }
        Some(_) => {
            ctx.report(&root.key("type"), "must be a string", sec::COMMON);
            None
        }
        None => {
            ctx.report(
                &root.key("type"),
                "required property is missing",
                sec::COMMON,
            );
            None
        }
    };
    let known = ty.and_then(types::object_spec);
    let (spec, kind) = match known {
        Some((s, k)) => (Some(s), k),
        None => (None, custom_kind(map)),
    };

    let id = check_id(&mut ctx, map, ty);
    if let (Some(id), Some(t)) = (id, ty) {
        check_sco_uuid_version(&mut ctx, map, t, id);
    }

    let common = match kind {
        ObjectKind::Sco => &COMMON_SCO,
        ObjectKind::MarkingDefinition => &COMMON_MARKING,
        _ => &COMMON_SDO,
    };
    for (k, v) in map {
        if k == "type" || k == "id" {
            continue;
        }
        let p = root.key(k);
        if let Some(kd) = common.kind_of(k) {
            check_value(&mut ctx, &p, v, kd, common.section);
        } else if let Some((s, kd)) = spec.and_then(|s| s.kind_of(k).map(|kd| (s, kd))) {
            check_value(&mut ctx, &p, v, kd, s.section);
        } else {
            check_custom(&mut ctx, &root, k, v);
        }
    }
    check_required(&mut ctx, &root, map, common);
    if let Some(s) = spec {
        check_required(&mut ctx, &root, map, s);
        if let Some(rule) = s.rule {
            rule(map, &root, &mut ctx);
        }
    }

    let stamp = |key: &str| {
        common
            .kind_of(key)
            .and_then(|_| map.get(key)?.as_str())
            .and_then(|s| parse_timestamp(s).ok())
    };
    let created = stamp("created");
    let modified = stamp("modified");
    // §3.2: "modified MUST be later than or equal to created".
    if let (Some(c), Some(m)) = (&created, &modified)
        && m < c
    {
        ctx.report(
            &root.key("modified"),
            "must be later than or equal to created",
            sec::COMMON,
        );
    }

    if ctx.total > 0 {
        return Err(Invalid {
            id: id.map(str::to_owned),
            violations: ctx.violations,
            total: ctx.total,
        });
    }
    let strings = |key: &str| -> Vec<String> {
        map.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let granular_marking_refs = map
        .get("granular_markings")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.get("marking_ref")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(ObjectInfo {
        id: id.unwrap_or_default().to_owned(),
        object_type: ty.unwrap_or_default().to_owned(),
        spec_version: map
            .get("spec_version")
            .and_then(Value::as_str)
            .unwrap_or("2.1")
            .to_owned(),
        created,
        modified,
        revoked: map.get("revoked") == Some(&Value::Bool(true)),
        kind,
        custom: known.is_none(),
        created_by_ref: map
            .get("created_by_ref")
            .and_then(Value::as_str)
            .map(str::to_owned),
        object_marking_refs: strings("object_marking_refs"),
        granular_marking_refs,
    })
}

/// The `id` (§2.9): `type--UUID` whose type part is the object's `type`.
fn check_id<'m>(ctx: &mut Ctx, map: &'m Map<String, Value>, ty: Option<&str>) -> Option<&'m str> {
    let p = Path::Root;
    let p = p.key("id");
    match map.get("id") {
        None => {
            ctx.report(&p, "required property is missing", sec::COMMON);
            None
        }
        Some(Value::String(id)) => {
            match parse_id(id) {
                Err(problem) => ctx.report(&p, problem.describe(), sec::IDENTIFIER),
                Ok((prefix, _)) => {
                    if let Some(t) = ty
                        && prefix != t
                    {
                        ctx.report(
                            &p,
                            format!("the identifier's type part {prefix:?} must equal the object's type {t:?}"),
                            sec::IDENTIFIER,
                        );
                    }
                }
            }
            Some(id.as_str())
        }
        Some(_) => {
            ctx.report(&p, "must be an identifier string", sec::IDENTIFIER);
            None
        }
    }
}

/// §2.9: an SCO whose ID-contributing properties are all absent (and a
/// process, which has none) gets a random UUIDv4: any other version would
/// claim a derivation that cannot have happened.
fn check_sco_uuid_version(ctx: &mut Ctx, map: &Map<String, Value>, ty: &str, id: &str) {
    let Some(names) = crate::sco_id::contributing(ty) else {
        return;
    };
    if names.iter().any(|n| map.contains_key(*n)) {
        return;
    }
    // The version digit of `type--xxxxxxxx-xxxx-Vxxx-…`; ids that are not
    // well formed were already reported.
    let version = id
        .len()
        .checked_sub(22)
        .and_then(|at| id.as_bytes().get(at));
    if version.is_some_and(|&v| v != b'4') && parse_id(id).is_ok() {
        ctx.report(
            &Path::Root.key("id"),
            "an SCO without ID-contributing properties must use a UUIDv4",
            sec::IDENTIFIER,
        );
    }
}

/// How a custom object behaves (§11.2): as its extension-definition says
/// (`new-sdo`, `new-sro`, `new-sco`), else as an SDO when it carries
/// `created` or `modified`, else as an SCO.
fn custom_kind(map: &Map<String, Value>) -> ObjectKind {
    match extensions::new_object_kind(map.get("extensions")) {
        Some("new-sdo") => ObjectKind::Sdo,
        Some("new-sro") => ObjectKind::Sro,
        Some(_) => ObjectKind::Sco,
        None if map.contains_key("created") || map.contains_key("modified") => ObjectKind::Sdo,
        None => ObjectKind::Sco,
    }
}

/// Whether `ty` is one of the SCO types STIX 2.1 defines.
pub(crate) fn is_sco_type(ty: &str) -> bool {
    types::SCO_TYPES.contains(&ty)
}

/// Whether `ty` is one of the SDO types STIX 2.1 defines.
pub fn is_sdo_type(ty: &str) -> bool {
    types::SDO_TYPES.contains(&ty)
}
