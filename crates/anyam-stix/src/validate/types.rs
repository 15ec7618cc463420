//! The per-type rule tables: every SDO, SRO, SCO, meta object, predefined extension and nested type of STIX 2.1.
//!
//! Each table lists a type's specific properties with their kinds, its
//! required properties, and a function for the rules that look across
//! properties ("valid_until MUST be greater than valid_from"). Common
//! properties live in `super::COMMON_*`. Open vocabularies (§2.13) are
//! checked as strings only: their values are a SHOULD, not a MUST.

use serde_json::{Map, Value};

use super::ctx::{Ctx, Path};
use super::kinds::{Kind, Refs, Spec};
use super::sec;
use crate::timestamp::{Timestamp, parse_timestamp};

use Kind::*;

const NAT: Kind = Int(0, i64::MAX);
const ANY_INT: Kind = Int(i64::MIN, i64::MAX);

/// The STIX 2.1 SDO types (§4).
pub(crate) const SDO_TYPES: &[&str] = &[
    "attack-pattern",
    "campaign",
    "course-of-action",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "location",
    "malware",
    "malware-analysis",
    "note",
    "observed-data",
    "opinion",
    "report",
    "threat-actor",
    "tool",
    "vulnerability",
];

/// The STIX 2.1 SCO types (§6).
pub(crate) const SCO_TYPES: &[&str] = &[
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
];

/// Types a relationship's ends or a sighting's subject may not be (§5.1, §5.2).
const NOT_SDO_OR_SCO: &[&str] = &[
    "relationship",
    "sighting",
    "bundle",
    "marking-definition",
    "language-content",
    "extension-definition",
];

/// Types that are not SDOs: a sighting is of an SDO (§5.2); custom types pass.
const NOT_SDO: &[&str] = &[
    "relationship",
    "sighting",
    "bundle",
    "marking-definition",
    "language-content",
    "extension-definition",
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
];

/// Types that are not SCOs, for references that must point at SCOs
/// (malware-analysis `analysis_sco_refs`, file `contains_refs`); custom types pass.
const NOT_SCO: &[&str] = &[
    "attack-pattern",
    "campaign",
    "course-of-action",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "location",
    "malware",
    "malware-analysis",
    "note",
    "observed-data",
    "opinion",
    "report",
    "threat-actor",
    "tool",
    "vulnerability",
    "relationship",
    "sighting",
    "bundle",
    "marking-definition",
    "language-content",
    "extension-definition",
];

/// What observed-data `object_refs` may point to: SCOs and SROs (§4.14).
const NOT_SDO_OR_META: &[&str] = &[
    "attack-pattern",
    "campaign",
    "course-of-action",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "location",
    "malware",
    "malware-analysis",
    "note",
    "observed-data",
    "opinion",
    "report",
    "threat-actor",
    "tool",
    "vulnerability",
    "bundle",
    "marking-definition",
    "language-content",
    "extension-definition",
];

const SOFTWARE: Refs = Refs::Only(&["software"]);
const IP_MAC_DOMAIN: Refs = Refs::Only(&["ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"]);

const fn spec(
    name: &'static str,
    section: &'static str,
    props: &'static [(&'static str, Kind)],
    required: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        section,
        props,
        required,
        at_least_one: false,
        rule: None,
    }
}

const fn with_rule(mut s: Spec, rule: super::kinds::Rule) -> Spec {
    s.rule = Some(rule);
    s
}

const fn at_least_one(mut s: Spec) -> Spec {
    s.at_least_one = true;
    s
}

// ---------------------------------------------------------------------------
// Nested types (§2)

pub(crate) static EXTERNAL_REFERENCE: Spec = with_rule(
    spec(
        "external-reference",
        sec::EXTERNAL_REFERENCE,
        &[
            ("source_name", Str),
            ("description", Str),
            ("url", Str),
            ("hashes", Hashes),
            ("external_id", Str),
        ],
        &["source_name"],
    ),
    external_reference_rule,
);

pub(crate) static KILL_CHAIN_PHASE: Spec = spec(
    "kill-chain-phase",
    sec::KILL_CHAIN_PHASE,
    &[("kill_chain_name", Str), ("phase_name", Str)],
    &["kill_chain_name", "phase_name"],
);

// ---------------------------------------------------------------------------
// SDOs (§4)

static ATTACK_PATTERN: Spec = spec(
    "attack-pattern",
    "STIX 2.1 §4.1",
    &[
        ("name", Str),
        ("description", Str),
        ("aliases", StrList),
        ("kill_chain_phases", KillChain),
    ],
    &["name"],
);

static CAMPAIGN: Spec = with_rule(
    spec(
        "campaign",
        "STIX 2.1 §4.2",
        &[
            ("name", Str),
            ("description", Str),
            ("aliases", StrList),
            ("first_seen", Ts),
            ("last_seen", Ts),
            ("objective", Str),
        ],
        &["name"],
    ),
    seen_rule,
);

static COURSE_OF_ACTION: Spec = spec(
    "course-of-action",
    "STIX 2.1 §4.3",
    &[("name", Str), ("description", Str)],
    &["name"],
);

static GROUPING: Spec = spec(
    "grouping",
    "STIX 2.1 §4.4",
    &[
        ("name", Str),
        ("description", Str),
        ("context", Str),
        ("object_refs", RefList(Refs::Any)),
    ],
    &["context", "object_refs"],
);

static IDENTITY: Spec = spec(
    "identity",
    "STIX 2.1 §4.5",
    &[
        ("name", Str),
        ("description", Str),
        ("roles", StrList),
        ("identity_class", Str),
        ("sectors", StrList),
        ("contact_information", Str),
    ],
    &["name"],
);

static INCIDENT: Spec = spec(
    "incident",
    "STIX 2.1 §4.6",
    &[
        ("name", Str),
        ("description", Str),
        ("kill_chain_phases", KillChain),
    ],
    &["name"],
);

static INDICATOR: Spec = with_rule(
    spec(
        "indicator",
        "STIX 2.1 §4.7",
        &[
            ("name", Str),
            ("description", Str),
            ("indicator_types", StrList),
            ("pattern", Str),
            ("pattern_type", Str),
            ("pattern_version", Str),
            ("valid_from", Ts),
            ("valid_until", Ts),
            ("kill_chain_phases", KillChain),
        ],
        &["pattern", "pattern_type", "valid_from"],
    ),
    indicator_rule,
);

static INFRASTRUCTURE: Spec = with_rule(
    spec(
        "infrastructure",
        "STIX 2.1 §4.8",
        &[
            ("name", Str),
            ("description", Str),
            ("infrastructure_types", StrList),
            ("aliases", StrList),
            ("kill_chain_phases", KillChain),
            ("first_seen", Ts),
            ("last_seen", Ts),
        ],
        &["name"],
    ),
    seen_rule,
);

static INTRUSION_SET: Spec = with_rule(
    spec(
        "intrusion-set",
        "STIX 2.1 §4.9",
        &[
            ("name", Str),
            ("description", Str),
            ("aliases", StrList),
            ("first_seen", Ts),
            ("last_seen", Ts),
            ("goals", StrList),
            ("resource_level", Str),
            ("primary_motivation", Str),
            ("secondary_motivations", StrList),
        ],
        &["name"],
    ),
    seen_rule,
);

static LOCATION: Spec = with_rule(
    spec(
        "location",
        "STIX 2.1 §4.10",
        &[
            ("name", Str),
            ("description", Str),
            ("latitude", Float(-90.0, 90.0)),
            ("longitude", Float(-180.0, 180.0)),
            ("precision", Float(f64::MIN, f64::MAX)),
            ("region", Str),
            ("country", Str),
            ("administrative_area", Str),
            ("city", Str),
            ("street_address", Str),
            ("postal_code", Str),
        ],
        &[],
    ),
    location_rule,
);

static MALWARE: Spec = with_rule(
    spec(
        "malware",
        "STIX 2.1 §4.11",
        &[
            ("name", Str),
            ("description", Str),
            ("malware_types", StrList),
            ("is_family", Bool),
            ("aliases", StrList),
            ("kill_chain_phases", KillChain),
            ("first_seen", Ts),
            ("last_seen", Ts),
            ("operating_system_refs", RefList(SOFTWARE)),
            ("architecture_execution_envs", StrList),
            ("implementation_languages", StrList),
            ("capabilities", StrList),
            ("sample_refs", RefList(Refs::Only(&["file", "artifact"]))),
        ],
        &["is_family"],
    ),
    malware_rule,
);

static MALWARE_ANALYSIS: Spec = with_rule(
    spec(
        "malware-analysis",
        "STIX 2.1 §4.12",
        &[
            ("product", Str),
            ("version", Str),
            ("host_vm_ref", Ref(SOFTWARE)),
            ("operating_system_ref", Ref(SOFTWARE)),
            ("installed_software_refs", RefList(SOFTWARE)),
            ("configuration_version", Str),
            ("modules", StrList),
            ("analysis_engine_version", Str),
            ("analysis_definition_version", Str),
            ("submitted", Ts),
            ("analysis_started", Ts),
            ("analysis_ended", Ts),
            ("result_name", Str),
            ("result", Str),
            ("analysis_sco_refs", RefList(Refs::Not(NOT_SCO))),
            (
                "sample_ref",
                Ref(Refs::Only(&["file", "network-traffic", "artifact"])),
            ),
        ],
        &["product"],
    ),
    malware_analysis_rule,
);

static NOTE: Spec = spec(
    "note",
    "STIX 2.1 §4.13",
    &[
        ("abstract", Str),
        ("content", Str),
        ("authors", StrList),
        ("object_refs", RefList(Refs::Any)),
    ],
    &["content", "object_refs"],
);

static OBSERVED_DATA: Spec = with_rule(
    spec(
        "observed-data",
        "STIX 2.1 §4.14",
        &[
            ("first_observed", Ts),
            ("last_observed", Ts),
            ("number_observed", Int(1, 999_999_999)),
            ("objects", Obj),
            ("object_refs", RefList(Refs::Not(NOT_SDO_OR_META))),
        ],
        &["first_observed", "last_observed", "number_observed"],
    ),
    observed_data_rule,
);

static OPINION: Spec = spec(
    "opinion",
    "STIX 2.1 §4.15",
    &[
        ("explanation", Str),
        ("authors", StrList),
        (
            "opinion",
            Enum(&[
                "strongly-disagree",
                "disagree",
                "neutral",
                "agree",
                "strongly-agree",
            ]),
        ),
        ("object_refs", RefList(Refs::Any)),
    ],
    &["opinion", "object_refs"],
);

static REPORT: Spec = spec(
    "report",
    "STIX 2.1 §4.16",
    &[
        ("name", Str),
        ("description", Str),
        ("report_types", StrList),
        ("published", Ts),
        ("object_refs", RefList(Refs::Any)),
    ],
    &["name", "published", "object_refs"],
);

static THREAT_ACTOR: Spec = with_rule(
    spec(
        "threat-actor",
        "STIX 2.1 §4.17",
        &[
            ("name", Str),
            ("description", Str),
            ("threat_actor_types", StrList),
            ("aliases", StrList),
            ("first_seen", Ts),
            ("last_seen", Ts),
            ("roles", StrList),
            ("goals", StrList),
            ("sophistication", Str),
            ("resource_level", Str),
            ("primary_motivation", Str),
            ("secondary_motivations", StrList),
            ("personal_motivations", StrList),
        ],
        &["name"],
    ),
    seen_rule,
);

static TOOL: Spec = spec(
    "tool",
    "STIX 2.1 §4.18",
    &[
        ("name", Str),
        ("description", Str),
        ("tool_types", StrList),
        ("aliases", StrList),
        ("kill_chain_phases", KillChain),
        ("tool_version", Str),
    ],
    &["name"],
);

static VULNERABILITY: Spec = spec(
    "vulnerability",
    "STIX 2.1 §4.19",
    &[("name", Str), ("description", Str)],
    &["name"],
);

// ---------------------------------------------------------------------------
// SROs (§5)

static RELATIONSHIP: Spec = with_rule(
    spec(
        "relationship",
        "STIX 2.1 §5.1",
        &[
            ("relationship_type", Str),
            ("description", Str),
            ("source_ref", Ref(Refs::Not(NOT_SDO_OR_SCO))),
            ("target_ref", Ref(Refs::Not(NOT_SDO_OR_SCO))),
            ("start_time", Ts),
            ("stop_time", Ts),
        ],
        &["relationship_type", "source_ref", "target_ref"],
    ),
    relationship_rule,
);

static SIGHTING: Spec = with_rule(
    spec(
        "sighting",
        "STIX 2.1 §5.2",
        &[
            ("description", Str),
            ("first_seen", Ts),
            ("last_seen", Ts),
            ("count", Int(0, 999_999_999)),
            ("sighting_of_ref", Ref(Refs::Not(NOT_SDO))),
            (
                "observed_data_refs",
                RefList(Refs::Only(&["observed-data"])),
            ),
            (
                "where_sighted_refs",
                RefList(Refs::Only(&["identity", "location"])),
            ),
            ("summary", Bool),
        ],
        &["sighting_of_ref"],
    ),
    seen_rule,
);

// ---------------------------------------------------------------------------
// SCOs (§6)

static ARTIFACT: Spec = with_rule(
    spec(
        "artifact",
        "STIX 2.1 §6.1",
        &[
            ("mime_type", Str),
            ("payload_bin", Binary),
            ("url", Str),
            ("hashes", Hashes),
            (
                "encryption_algorithm",
                Enum(&["AES-256-GCM", "ChaCha20-Poly1305", "mime-type-indicated"]),
            ),
            ("decryption_key", Str),
        ],
        &[],
    ),
    artifact_rule,
);

static AUTONOMOUS_SYSTEM: Spec = spec(
    "autonomous-system",
    "STIX 2.1 §6.2",
    &[("number", ANY_INT), ("name", Str), ("rir", Str)],
    &["number"],
);

static DIRECTORY: Spec = spec(
    "directory",
    "STIX 2.1 §6.3",
    &[
        ("path", Str),
        ("path_enc", Str),
        ("ctime", Ts),
        ("mtime", Ts),
        ("atime", Ts),
        ("contains_refs", RefList(Refs::Only(&["file", "directory"]))),
    ],
    &["path"],
);

static DOMAIN_NAME: Spec = with_rule(
    spec(
        "domain-name",
        "STIX 2.1 §6.4",
        &[
            ("value", Str),
            (
                "resolves_to_refs",
                RefList(Refs::Only(&["ipv4-addr", "ipv6-addr", "domain-name"])),
            ),
        ],
        &["value"],
    ),
    domain_name_rule,
);

static EMAIL_ADDR: Spec = with_rule(
    spec(
        "email-addr",
        "STIX 2.1 §6.5",
        &[
            ("value", Str),
            ("display_name", Str),
            ("belongs_to_ref", Ref(Refs::Only(&["user-account"]))),
        ],
        &["value"],
    ),
    email_addr_rule,
);

static MIME_PART: Spec = with_rule(
    spec(
        "email MIME part",
        "STIX 2.1 §6.6.2",
        &[
            ("body", Str),
            ("body_raw_ref", Ref(Refs::Only(&["artifact", "file"]))),
            ("content_type", Str),
            ("content_disposition", Str),
        ],
        &[],
    ),
    mime_part_rule,
);

const EMAIL: Refs = Refs::Only(&["email-addr"]);

static EMAIL_MESSAGE: Spec = with_rule(
    spec(
        "email-message",
        "STIX 2.1 §6.6",
        &[
            ("is_multipart", Bool),
            ("date", Ts),
            ("content_type", Str),
            ("from_ref", Ref(EMAIL)),
            ("sender_ref", Ref(EMAIL)),
            ("to_refs", RefList(EMAIL)),
            ("cc_refs", RefList(EMAIL)),
            ("bcc_refs", RefList(EMAIL)),
            ("message_id", Str),
            ("subject", Str),
            ("received_lines", StrList),
            ("additional_header_fields", Dict),
            ("body", Str),
            ("body_multipart", NestedList(&MIME_PART)),
            ("raw_email_ref", Ref(Refs::Only(&["artifact"]))),
        ],
        &["is_multipart"],
    ),
    email_message_rule,
);

static FILE: Spec = with_rule(
    spec(
        "file",
        "STIX 2.1 §6.7",
        &[
            ("hashes", Hashes),
            ("size", NAT),
            ("name", Str),
            ("name_enc", Str),
            ("magic_number_hex", Hex),
            ("mime_type", Str),
            ("ctime", Ts),
            ("mtime", Ts),
            ("atime", Ts),
            ("parent_directory_ref", Ref(Refs::Only(&["directory"]))),
            ("contains_refs", RefList(Refs::Not(NOT_SCO))),
            ("content_ref", Ref(Refs::Only(&["artifact"]))),
        ],
        &[],
    ),
    file_rule,
);

static IPV4_ADDR: Spec = with_rule(
    spec(
        "ipv4-addr",
        "STIX 2.1 §6.8",
        &[
            ("value", Str),
            ("resolves_to_refs", RefList(Refs::Only(&["mac-addr"]))),
            (
                "belongs_to_refs",
                RefList(Refs::Only(&["autonomous-system"])),
            ),
        ],
        &["value"],
    ),
    ipv4_rule,
);

static IPV6_ADDR: Spec = with_rule(
    spec(
        "ipv6-addr",
        "STIX 2.1 §6.9",
        &[
            ("value", Str),
            ("resolves_to_refs", RefList(Refs::Only(&["mac-addr"]))),
            (
                "belongs_to_refs",
                RefList(Refs::Only(&["autonomous-system"])),
            ),
        ],
        &["value"],
    ),
    ipv6_rule,
);

static MAC_ADDR: Spec = with_rule(
    spec("mac-addr", "STIX 2.1 §6.10", &[("value", Str)], &["value"]),
    mac_rule,
);

static MUTEX: Spec = spec("mutex", "STIX 2.1 §6.11", &[("name", Str)], &["name"]);

static NETWORK_TRAFFIC: Spec = with_rule(
    spec(
        "network-traffic",
        "STIX 2.1 §6.12",
        &[
            ("start", Ts),
            ("end", Ts),
            ("is_active", Bool),
            ("src_ref", Ref(IP_MAC_DOMAIN)),
            ("dst_ref", Ref(IP_MAC_DOMAIN)),
            ("src_port", Int(0, 65535)),
            ("dst_port", Int(0, 65535)),
            ("protocols", StrList),
            ("src_byte_count", NAT),
            ("dst_byte_count", NAT),
            ("src_packets", NAT),
            ("dst_packets", NAT),
            ("ipfix", Dict),
            ("src_payload_ref", Ref(Refs::Only(&["artifact"]))),
            ("dst_payload_ref", Ref(Refs::Only(&["artifact"]))),
            (
                "encapsulates_refs",
                RefList(Refs::Only(&["network-traffic"])),
            ),
            ("encapsulated_by_ref", Ref(Refs::Only(&["network-traffic"]))),
        ],
        &["protocols"],
    ),
    network_traffic_rule,
);

static PROCESS: Spec = with_rule(
    spec(
        "process",
        "STIX 2.1 §6.13",
        &[
            ("is_hidden", Bool),
            ("pid", ANY_INT),
            ("created_time", Ts),
            ("cwd", Str),
            ("command_line", Str),
            ("environment_variables", Dict),
            (
                "opened_connection_refs",
                RefList(Refs::Only(&["network-traffic"])),
            ),
            ("creator_user_ref", Ref(Refs::Only(&["user-account"]))),
            ("image_ref", Ref(Refs::Only(&["file"]))),
            ("parent_ref", Ref(Refs::Only(&["process"]))),
            ("child_refs", RefList(Refs::Only(&["process"]))),
        ],
        &[],
    ),
    process_rule,
);

static SOFTWARE_SPEC: Spec = with_rule(
    spec(
        "software",
        "STIX 2.1 §6.14",
        &[
            ("name", Str),
            ("cpe", Str),
            ("swid", Str),
            ("languages", StrList),
            ("vendor", Str),
            ("version", Str),
        ],
        &["name"],
    ),
    software_rule,
);

static URL: Spec = with_rule(
    spec("url", "STIX 2.1 §6.15", &[("value", Str)], &["value"]),
    url_rule,
);

static USER_ACCOUNT: Spec = with_rule(
    spec(
        "user-account",
        "STIX 2.1 §6.16",
        &[
            ("user_id", Str),
            ("credential", Str),
            ("account_login", Str),
            ("account_type", Str),
            ("display_name", Str),
            ("is_service_account", Bool),
            ("is_privileged", Bool),
            ("can_escalate_privs", Bool),
            ("is_disabled", Bool),
            ("account_created", Ts),
            ("account_expires", Ts),
            ("credential_last_changed", Ts),
            ("account_first_login", Ts),
            ("account_last_login", Ts),
        ],
        &[],
    ),
    user_account_rule,
);

static REGISTRY_VALUE: Spec = spec(
    "windows-registry-value",
    "STIX 2.1 §6.17.2",
    &[
        ("name", Str),
        ("data", Str),
        (
            "data_type",
            Enum(&[
                "REG_NONE",
                "REG_SZ",
                "REG_EXPAND_SZ",
                "REG_BINARY",
                "REG_DWORD",
                "REG_DWORD_BIG_ENDIAN",
                "REG_DWORD_LITTLE_ENDIAN",
                "REG_LINK",
                "REG_MULTI_SZ",
                "REG_RESOURCE_LIST",
                "REG_FULL_RESOURCE_DESCRIPTION",
                "REG_RESOURCE_REQUIREMENTS_LIST",
                "REG_QWORD",
                "REG_INVALID_TYPE",
            ]),
        ),
    ],
    &[],
);

static WINDOWS_REGISTRY_KEY: Spec = with_rule(
    spec(
        "windows-registry-key",
        "STIX 2.1 §6.17",
        &[
            ("key", Str),
            ("values", NestedListMaybeEmpty(&REGISTRY_VALUE)),
            ("modified_time", Ts),
            ("creator_user_ref", Ref(Refs::Only(&["user-account"]))),
            ("number_of_subkeys", NAT),
        ],
        &[],
    ),
    registry_key_rule,
);

static X509_V3_EXTENSIONS: Spec = spec(
    "x509-v3-extensions",
    "STIX 2.1 §6.18.2",
    &[
        ("basic_constraints", Str),
        ("name_constraints", Str),
        ("policy_constraints", Str),
        ("key_usage", Str),
        ("extended_key_usage", Str),
        ("subject_key_identifier", Str),
        ("authority_key_identifier", Str),
        ("subject_alternative_name", Str),
        ("issuer_alternative_name", Str),
        ("subject_directory_attributes", Str),
        ("crl_distribution_points", Str),
        ("inhibit_any_policy", Str),
        ("private_key_usage_period_not_before", Ts),
        ("private_key_usage_period_not_after", Ts),
        ("certificate_policies", Str),
        ("policy_mappings", Str),
    ],
    &[],
);

static X509_CERTIFICATE: Spec = at_least_one(spec(
    "x509-certificate",
    "STIX 2.1 §6.18",
    &[
        ("is_self_signed", Bool),
        ("hashes", Hashes),
        ("version", Str),
        ("serial_number", Str),
        ("signature_algorithm", Str),
        ("issuer", Str),
        ("validity_not_before", Ts),
        ("validity_not_after", Ts),
        ("subject", Str),
        ("subject_public_key_algorithm", Str),
        ("subject_public_key_modulus", Str),
        ("subject_public_key_exponent", ANY_INT),
        ("x509_v3_extensions", Nested(&X509_V3_EXTENSIONS)),
    ],
    &[],
));

// ---------------------------------------------------------------------------
// Meta objects (§7)

static LANGUAGE_CONTENT: Spec = with_rule(
    spec(
        "language-content",
        sec::LANGUAGE_CONTENT,
        &[
            (
                "object_ref",
                Ref(Refs::Not(&["bundle", "language-content"])),
            ),
            ("object_modified", Ts),
            ("contents", Dict),
        ],
        &["object_ref", "contents"],
    ),
    language_content_rule,
);

static MARKING_DEFINITION: Spec = with_rule(
    spec("marking-definition", sec::MARKING_DEFINITION, &[], &[]),
    super::markings::marking_definition_rule,
);

static EXTENSION_DEFINITION: Spec = with_rule(
    spec(
        "extension-definition",
        sec::EXTENSION_DEFINITION,
        &[
            ("name", Str),
            ("description", Str),
            ("schema", Str),
            ("version", Str),
            (
                "extension_types",
                EnumList(super::extensions::EXTENSION_TYPES),
            ),
            ("extension_properties", StrList),
        ],
        &[
            "created_by_ref",
            "name",
            "schema",
            "version",
            "extension_types",
        ],
    ),
    extension_definition_rule,
);

/// What kind of object a type is, which decides its common properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// STIX Domain Object (§4), or a custom object that behaves as one.
    Sdo,
    /// STIX Relationship Object (§5), or a custom one.
    Sro,
    /// STIX Cyber-observable Object (§6), or a custom one.
    Sco,
    /// `marking-definition` (§7.2.1).
    MarkingDefinition,
    /// `language-content` (§7.1).
    LanguageContent,
    /// `extension-definition` (§7.3).
    ExtensionDefinition,
}

/// The table and kind of a type defined by STIX 2.1; `None` for custom types.
pub(crate) fn object_spec(ty: &str) -> Option<(&'static Spec, ObjectKind)> {
    use ObjectKind::*;
    Some(match ty {
        "attack-pattern" => (&ATTACK_PATTERN, Sdo),
        "campaign" => (&CAMPAIGN, Sdo),
        "course-of-action" => (&COURSE_OF_ACTION, Sdo),
        "grouping" => (&GROUPING, Sdo),
        "identity" => (&IDENTITY, Sdo),
        "incident" => (&INCIDENT, Sdo),
        "indicator" => (&INDICATOR, Sdo),
        "infrastructure" => (&INFRASTRUCTURE, Sdo),
        "intrusion-set" => (&INTRUSION_SET, Sdo),
        "location" => (&LOCATION, Sdo),
        "malware" => (&MALWARE, Sdo),
        "malware-analysis" => (&MALWARE_ANALYSIS, Sdo),
        "note" => (&NOTE, Sdo),
        "observed-data" => (&OBSERVED_DATA, Sdo),
        "opinion" => (&OPINION, Sdo),
        "report" => (&REPORT, Sdo),
        "threat-actor" => (&THREAT_ACTOR, Sdo),
        "tool" => (&TOOL, Sdo),
        "vulnerability" => (&VULNERABILITY, Sdo),
        "relationship" => (&RELATIONSHIP, Sro),
        "sighting" => (&SIGHTING, Sro),
        "artifact" => (&ARTIFACT, Sco),
        "autonomous-system" => (&AUTONOMOUS_SYSTEM, Sco),
        "directory" => (&DIRECTORY, Sco),
        "domain-name" => (&DOMAIN_NAME, Sco),
        "email-addr" => (&EMAIL_ADDR, Sco),
        "email-message" => (&EMAIL_MESSAGE, Sco),
        "file" => (&FILE, Sco),
        "ipv4-addr" => (&IPV4_ADDR, Sco),
        "ipv6-addr" => (&IPV6_ADDR, Sco),
        "mac-addr" => (&MAC_ADDR, Sco),
        "mutex" => (&MUTEX, Sco),
        "network-traffic" => (&NETWORK_TRAFFIC, Sco),
        "process" => (&PROCESS, Sco),
        "software" => (&SOFTWARE_SPEC, Sco),
        "url" => (&URL, Sco),
        "user-account" => (&USER_ACCOUNT, Sco),
        "windows-registry-key" => (&WINDOWS_REGISTRY_KEY, Sco),
        "x509-certificate" => (&X509_CERTIFICATE, Sco),
        "language-content" => (&LANGUAGE_CONTENT, LanguageContent),
        "marking-definition" => (&MARKING_DEFINITION, MarkingDefinition),
        "extension-definition" => (&EXTENSION_DEFINITION, ExtensionDefinition),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Predefined extensions (§6.7.2-6.7.6, §6.12.2-6.12.6, §6.13.2-6.13.3, §6.16.2)

static ARCHIVE_EXT: Spec = spec(
    "archive-ext",
    "STIX 2.1 §6.7.2",
    &[
        ("contains_refs", RefList(Refs::Only(&["file", "directory"]))),
        ("comment", Str),
    ],
    &["contains_refs"],
);

static ALTERNATE_DATA_STREAM: Spec = spec(
    "alternate-data-stream",
    "STIX 2.1 §6.7.3.1",
    &[("name", Str), ("hashes", Hashes), ("size", NAT)],
    &["name"],
);

static NTFS_EXT: Spec = at_least_one(spec(
    "ntfs-ext",
    "STIX 2.1 §6.7.3",
    &[
        ("sid", Str),
        ("alternate_data_streams", NestedList(&ALTERNATE_DATA_STREAM)),
    ],
    &[],
));

static PDF_EXT: Spec = at_least_one(spec(
    "pdf-ext",
    "STIX 2.1 §6.7.4",
    &[
        ("version", Str),
        ("is_optimized", Bool),
        ("document_info_dict", Dict),
        ("pdfid0", Str),
        ("pdfid1", Str),
    ],
    &[],
));

static RASTER_IMAGE_EXT: Spec = at_least_one(spec(
    "raster-image-ext",
    "STIX 2.1 §6.7.5",
    &[
        ("image_height", NAT),
        ("image_width", NAT),
        ("bits_per_pixel", NAT),
        ("exif_tags", Dict),
    ],
    &[],
));

static PE_SECTION: Spec = spec(
    "windows-pe-section",
    "STIX 2.1 §6.7.6.2",
    &[
        ("name", Str),
        ("size", NAT),
        ("entropy", Float(f64::MIN, f64::MAX)),
        ("hashes", Hashes),
    ],
    &["name"],
);

static PEBINARY_EXT: Spec = spec(
    "windows-pebinary-ext",
    "STIX 2.1 §6.7.6",
    &[
        ("pe_type", Str),
        ("imphash", Str),
        ("machine_hex", Hex),
        ("number_of_sections", NAT),
        ("time_date_stamp", Ts),
        ("pointer_to_symbol_table_hex", Hex),
        ("number_of_symbols", NAT),
        ("size_of_optional_header", NAT),
        ("characteristics_hex", Hex),
        ("file_header_hashes", Hashes),
        ("optional_header", Obj),
        ("sections", NestedList(&PE_SECTION)),
    ],
    &["pe_type"],
);

static HTTP_REQUEST_EXT: Spec = spec(
    "http-request-ext",
    "STIX 2.1 §6.12.2",
    &[
        ("request_method", Str),
        ("request_value", Str),
        ("request_version", Str),
        ("request_header", Dict),
        ("message_body_length", NAT),
        ("message_body_data_ref", Ref(Refs::Only(&["artifact"]))),
    ],
    &["request_method", "request_value"],
);

static ICMP_EXT: Spec = spec(
    "icmp-ext",
    "STIX 2.1 §6.12.3",
    &[("icmp_type_hex", Hex), ("icmp_code_hex", Hex)],
    &["icmp_type_hex", "icmp_code_hex"],
);

static SOCKET_EXT: Spec = spec(
    "socket-ext",
    "STIX 2.1 §6.12.4",
    &[
        (
            "address_family",
            Enum(&[
                "AF_UNSPEC",
                "AF_INET",
                "AF_IPX",
                "AF_APPLETALK",
                "AF_NETBIOS",
                "AF_INET6",
                "AF_IRDA",
                "AF_BTH",
            ]),
        ),
        ("is_blocking", Bool),
        ("is_listening", Bool),
        ("options", Dict),
        (
            "socket_type",
            Enum(&[
                "SOCK_STREAM",
                "SOCK_DGRAM",
                "SOCK_RAW",
                "SOCK_RDM",
                "SOCK_SEQPACKET",
            ]),
        ),
        ("socket_descriptor", NAT),
        ("socket_handle", ANY_INT),
    ],
    &["address_family"],
);

static TCP_EXT: Spec = at_least_one(spec(
    "tcp-ext",
    "STIX 2.1 §6.12.5",
    &[("src_flags_hex", Hex), ("dst_flags_hex", Hex)],
    &[],
));

static WINDOWS_PROCESS_EXT: Spec = at_least_one(spec(
    "windows-process-ext",
    "STIX 2.1 §6.13.2",
    &[
        ("aslr_enabled", Bool),
        ("dep_enabled", Bool),
        ("priority", Str),
        ("owner_sid", Str),
        ("window_title", Str),
        ("startup_info", Dict),
        (
            "integrity_level",
            Enum(&["low", "medium", "high", "system"]),
        ),
    ],
    &[],
));

static WINDOWS_SERVICE_EXT: Spec = at_least_one(spec(
    "windows-service-ext",
    "STIX 2.1 §6.13.3",
    &[
        ("service_name", Str),
        ("descriptions", StrList),
        ("display_name", Str),
        ("group_name", Str),
        (
            "start_type",
            Enum(&[
                "SERVICE_AUTO_START",
                "SERVICE_BOOT_START",
                "SERVICE_DEMAND_START",
                "SERVICE_DISABLED",
                "SERVICE_SYSTEM_ALERT",
            ]),
        ),
        ("service_dll_refs", RefList(Refs::Only(&["file"]))),
        (
            "service_type",
            Enum(&[
                "SERVICE_KERNEL_DRIVER",
                "SERVICE_FILE_SYSTEM_DRIVER",
                "SERVICE_WIN32_OWN_PROCESS",
                "SERVICE_WIN32_SHARE_PROCESS",
            ]),
        ),
        (
            "service_status",
            Enum(&[
                "SERVICE_CONTINUE_PENDING",
                "SERVICE_PAUSE_PENDING",
                "SERVICE_PAUSED",
                "SERVICE_RUNNING",
                "SERVICE_START_PENDING",
                "SERVICE_STOP_PENDING",
                "SERVICE_STOPPED",
            ]),
        ),
    ],
    &[],
));

static UNIX_ACCOUNT_EXT: Spec = at_least_one(spec(
    "unix-account-ext",
    "STIX 2.1 §6.16.2",
    &[
        ("gid", ANY_INT),
        ("groups", StrList),
        ("home_dir", Str),
        ("shell", Str),
    ],
    &[],
));

/// The predefined extension `name` of SCO type `object_type`, if there is one.
pub(crate) fn predefined_extension(object_type: &str, name: &str) -> Option<&'static Spec> {
    Some(match (object_type, name) {
        ("file", "archive-ext") => &ARCHIVE_EXT,
        ("file", "ntfs-ext") => &NTFS_EXT,
        ("file", "pdf-ext") => &PDF_EXT,
        ("file", "raster-image-ext") => &RASTER_IMAGE_EXT,
        ("file", "windows-pebinary-ext") => &PEBINARY_EXT,
        ("network-traffic", "http-request-ext") => &HTTP_REQUEST_EXT,
        ("network-traffic", "icmp-ext") => &ICMP_EXT,
        ("network-traffic", "socket-ext") => &SOCKET_EXT,
        ("network-traffic", "tcp-ext") => &TCP_EXT,
        ("process", "windows-process-ext") => &WINDOWS_PROCESS_EXT,
        ("process", "windows-service-ext") => &WINDOWS_SERVICE_EXT,
        ("user-account", "unix-account-ext") => &UNIX_ACCOUNT_EXT,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Cross-property rules

fn ts(m: &Map<String, Value>, key: &str) -> Option<Timestamp> {
    parse_timestamp(m.get(key)?.as_str()?).ok()
}

/// `later` must be at or after (or strictly after, when `strict`) `earlier`,
/// when both are present and valid (invalid ones were already reported).
fn order(
    m: &Map<String, Value>,
    path: &Path,
    ctx: &mut Ctx,
    earlier: &str,
    later: &str,
    strict: bool,
    section: &'static str,
) {
    if let (Some(a), Some(b)) = (ts(m, earlier), ts(m, later)) {
        if strict && b <= a {
            ctx.report(
                &path.key(later),
                format!("must be later than {earlier}"),
                section,
            );
        } else if !strict && b < a {
            ctx.report(
                &path.key(later),
                format!("must be later than or equal to {earlier}"),
                section,
            );
        }
    }
}

fn section_of(m: &Map<String, Value>) -> &'static str {
    m.get("type")
        .and_then(Value::as_str)
        .and_then(object_spec)
        .map_or(sec::COMMON, |(s, _)| s.section)
}

/// "last_seen MUST be greater than or equal to first_seen" (campaign §4.2,
/// infrastructure §4.8, intrusion-set §4.9, malware §4.11, threat-actor §4.17,
/// sighting §5.2).
fn seen_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    order(
        m,
        path,
        ctx,
        "first_seen",
        "last_seen",
        false,
        section_of(m),
    );
}

fn external_reference_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if !["description", "url", "external_id"]
        .iter()
        .any(|k| m.contains_key(*k))
    {
        ctx.report(
            path,
            "an external reference needs at least one of description, url or external_id",
            sec::EXTERNAL_REFERENCE,
        );
    }
    // For the "cve" and "capec" sources the external_id is the CVE or CAPEC
    // identifier (§4.19, §4.1).
    let src = m.get("source_name").and_then(Value::as_str);
    let id = m.get("external_id").and_then(Value::as_str);
    match (src, id) {
        (Some("cve"), Some(id)) if !is_cve(id) => ctx.report(
            &path.key("external_id"),
            "must be a CVE id (CVE-YYYY-NNNN)",
            "STIX 2.1 §4.19",
        ),
        (Some("capec"), Some(id)) if !is_capec(id) => ctx.report(
            &path.key("external_id"),
            "must be a CAPEC id (CAPEC-N)",
            "STIX 2.1 §4.1",
        ),
        _ => {}
    }
}

fn is_cve(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, num)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|c| c.is_ascii_digit())
        && num.len() >= 4
        && num.bytes().all(|c| c.is_ascii_digit())
}

fn is_capec(s: &str) -> bool {
    s.strip_prefix("CAPEC-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

fn indicator_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    order(
        m,
        path,
        ctx,
        "valid_from",
        "valid_until",
        true,
        "STIX 2.1 §4.7",
    );
}

fn location_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    const S: &str = "STIX 2.1 §4.10";
    let lat = m.contains_key("latitude");
    let lon = m.contains_key("longitude");
    if lat != lon {
        let missing = if lat { "longitude" } else { "latitude" };
        ctx.report(
            &path.key(missing),
            "latitude and longitude must be present together",
            S,
        );
    }
    if m.contains_key("precision") && !(lat && lon) {
        ctx.report(
            &path.key("precision"),
            "precision requires latitude and longitude",
            S,
        );
    }
    if !(m.contains_key("region") || m.contains_key("country") || (lat && lon)) {
        ctx.report(
            path,
            "a location needs region, country, or latitude and longitude",
            S,
        );
    }
}

fn malware_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if m.get("is_family") == Some(&Value::Bool(true)) && !m.contains_key("name") {
        ctx.report(
            &path.key("name"),
            "name is required when is_family is true",
            "STIX 2.1 §4.11",
        );
    }
    seen_rule(m, path, ctx);
}

fn malware_analysis_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if !m.contains_key("result") && !m.contains_key("analysis_sco_refs") {
        ctx.report(
            path,
            "a malware-analysis needs result or analysis_sco_refs",
            "STIX 2.1 §4.12",
        );
    }
}

fn observed_data_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    const S: &str = "STIX 2.1 §4.14";
    order(m, path, ctx, "first_observed", "last_observed", false, S);
    match (m.get("objects"), m.get("object_refs")) {
        (Some(_), Some(_)) => ctx.report(
            &path.key("objects"),
            "objects must not be present when object_refs is present",
            S,
        ),
        (None, None) => ctx.report(
            &path.key("object_refs"),
            "one of object_refs or objects is required",
            S,
        ),
        _ => {}
    }
    // The deprecated `objects` dictionary holds SCOs whose references are
    // local keys (STIX 2.0 style); each must at least name its type.
    if let Some(objs) = m.get("objects").and_then(Value::as_object) {
        let op = path.key("objects");
        for (k, o) in objs {
            if o.get("type").and_then(Value::as_str).is_none() {
                ctx.report(&op.key(k), "each observed object needs a type", S);
            }
        }
    }
}

fn relationship_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    const S: &str = "STIX 2.1 §5.1";
    if let Some(t) = m.get("relationship_type").and_then(Value::as_str)
        && (t.is_empty()
            || !t
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'))
    {
        ctx.report(
            &path.key("relationship_type"),
            "must be ASCII a-z, 0-9 and hyphen",
            S,
        );
    }
    order(m, path, ctx, "start_time", "stop_time", true, S);
}

fn artifact_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    const S: &str = "STIX 2.1 §6.1";
    match (m.contains_key("payload_bin"), m.contains_key("url")) {
        (true, true) => ctx.report(
            &path.key("url"),
            "url must not be present when payload_bin is present",
            S,
        ),
        (false, false) => ctx.report(path, "an artifact needs payload_bin or url", S),
        (false, true) if !m.contains_key("hashes") => ctx.report(
            &path.key("hashes"),
            "hashes are required when url is present",
            S,
        ),
        _ => {}
    }
    if m.contains_key("decryption_key") && !m.contains_key("encryption_algorithm") {
        ctx.report(
            &path.key("decryption_key"),
            "decryption_key must not be present without encryption_algorithm",
            S,
        );
    }
}

fn email_message_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    const S: &str = "STIX 2.1 §6.6";
    match m.get("is_multipart") {
        Some(Value::Bool(true)) if m.contains_key("body") => ctx.report(
            &path.key("body"),
            "body must not be present when is_multipart is true",
            S,
        ),
        Some(Value::Bool(false)) if m.contains_key("body_multipart") => ctx.report(
            &path.key("body_multipart"),
            "body_multipart must not be present when is_multipart is false",
            S,
        ),
        _ => {}
    }
}

fn mime_part_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    match (m.contains_key("body"), m.contains_key("body_raw_ref")) {
        (true, true) | (false, false) => ctx.report(
            path,
            "a MIME part needs exactly one of body or body_raw_ref",
            "STIX 2.1 §6.6.2",
        ),
        _ => {}
    }
}

/// Domain names conform to RFC 1034 / RFC 5890 (§6.4). We check the
/// shape: 1-253 bytes, dot-separated labels of 1-63 bytes, no spaces,
/// control characters or URL/email punctuation. Internationalized labels
/// are accepted as written; underscores are accepted because real DNS
/// names (`_dmarc.example.org`) carry them.
fn domain_name_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if let Some(v) = value_str(m) {
        let name = v.strip_suffix('.').unwrap_or(v);
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
            && !name.chars().any(|c| {
                c.is_whitespace()
                    || c.is_control()
                    || matches!(c, '/' | '@' | ':' | '\\' | '?' | '#')
            });
        if !ok {
            ctx.report(
                &path.key("value"),
                "must be a domain name (RFC 1034): dot-separated labels of 1-63 characters",
                "STIX 2.1 §6.4",
            );
        }
    }
}

/// A CPE 2.3 formatted string (§6.14): `cpe:2.3:` then 11 more components
/// separated by unescaped colons, the first being `a`, `o`, `h`, `*` or `-`.
fn is_cpe23(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("cpe:2.3:") else {
        return false;
    };
    let mut parts = 1;
    let mut escaped = false;
    for c in rest.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ':' => parts += 1,
            _ => {}
        }
    }
    parts == 11 && matches!(rest.split(':').next(), Some("a" | "o" | "h" | "*" | "-"))
}

/// An email address is an RFC 5322 addr-spec, without a display name (§6.5):
/// we check its shape (one `@` between a non-empty local part and domain,
/// no spaces or angle brackets), not every RFC 5322 production.
fn email_addr_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if let Some(v) = value_str(m) {
        let ok = v.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        }) && !v
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
        if !ok {
            ctx.report(
                &path.key("value"),
                "must be a single email address (local@domain), without a display name",
                "STIX 2.1 §6.5",
            );
        }
    }
}

/// Software `languages` are RFC 5646 language tags and `cpe` is a CPE 2.3
/// entry (§6.14).
fn software_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if let Some(cpe) = m.get("cpe").and_then(Value::as_str)
        && !is_cpe23(cpe)
    {
        ctx.report(
            &path.key("cpe"),
            "must be a CPE 2.3 formatted string (cpe:2.3:part:vendor:product:…)",
            "STIX 2.1 §6.14",
        );
    }
    if let Some(langs) = m.get("languages").and_then(Value::as_array) {
        let lp = path.key("languages");
        for (i, l) in langs.iter().enumerate() {
            if l.as_str()
                .is_some_and(|s| !super::kinds::is_language_tag(s))
            {
                ctx.report(
                    &lp.index(i),
                    "must be an RFC 5646 language tag",
                    "STIX 2.1 §6.14",
                );
            }
        }
    }
}

fn file_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if !m.contains_key("hashes") && !m.contains_key("name") {
        ctx.report(path, "a file needs hashes or name", "STIX 2.1 §6.7");
    }
}

fn value_str(m: &Map<String, Value>) -> Option<&str> {
    m.get("value").and_then(Value::as_str)
}

/// An address with an optional CIDR suffix of at most `max_prefix` bits.
fn split_cidr(s: &str, max_prefix: u8) -> Option<&str> {
    match s.split_once('/') {
        None => Some(s),
        Some((addr, bits)) => {
            let ok = !bits.is_empty()
                && bits.len() <= 3
                && bits.bytes().all(|c| c.is_ascii_digit())
                && bits.parse::<u8>().is_ok_and(|b| b <= max_prefix);
            ok.then_some(addr)
        }
    }
}

fn ipv4_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if let Some(v) = value_str(m)
        && split_cidr(v, 32)
            .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .is_none()
    {
        ctx.report(
            &path.key("value"),
            "must be an IPv4 address or CIDR block",
            "STIX 2.1 §6.8",
        );
    }
}

fn ipv6_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if let Some(v) = value_str(m)
        && split_cidr(v, 128)
            .and_then(|a| a.parse::<std::net::Ipv6Addr>().ok())
            .is_none()
    {
        ctx.report(
            &path.key("value"),
            "must be an IPv6 address or CIDR block",
            "STIX 2.1 §6.9",
        );
    }
}

/// "a single colon-delimited, lowercase MAC-48 address, which MUST include
/// leading zeros for each octet" (§6.10).
fn mac_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if let Some(v) = value_str(m) {
        let b = v.as_bytes();
        let ok = b.len() == 17
            && b.iter().enumerate().all(|(i, &c)| {
                if i % 3 == 2 {
                    c == b':'
                } else {
                    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
                }
            });
        if !ok {
            ctx.report(
                &path.key("value"),
                "must be a colon-delimited lowercase MAC-48 address with leading zeros",
                "STIX 2.1 §6.10",
            );
        }
    }
}

fn network_traffic_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    const S: &str = "STIX 2.1 §6.12";
    if !m.contains_key("src_ref") && !m.contains_key("dst_ref") {
        ctx.report(path, "network-traffic needs src_ref or dst_ref", S);
    }
    if m.get("is_active") == Some(&Value::Bool(true)) && m.contains_key("end") {
        ctx.report(
            &path.key("end"),
            "end must not be present when is_active is true",
            S,
        );
    }
    order(m, path, ctx, "start", "end", false, S);
}

fn process_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if !m.contains_key("extensions") && !PROCESS.props.iter().any(|(k, _)| m.contains_key(*k)) {
        ctx.report(
            path,
            "a process must contain at least one of its own properties or an extension",
            "STIX 2.1 §6.13",
        );
    }
}

/// URLs must conform to RFC 3986 (§6.15): we check for a scheme and the
/// absence of whitespace and control characters, which is what separates a
/// URL from free text; full RFC 3986 parsing is left to consumers.
fn url_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if let Some(v) = value_str(m) {
        let scheme_ok = v.split_once(':').is_some_and(|(scheme, _)| {
            let b = scheme.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphabetic()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        });
        if !scheme_ok || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            ctx.report(
                &path.key("value"),
                "must be a URL (RFC 3986) with a scheme and no spaces",
                "STIX 2.1 §6.15",
            );
        }
    }
}

fn user_account_has_any(m: &Map<String, Value>) -> bool {
    m.contains_key("extensions") || USER_ACCOUNT.props.iter().any(|(k, _)| m.contains_key(*k))
}

/// Registry keys are written in full: the hive abbreviations (HKLM, …) are
/// not allowed (§6.17).
fn registry_key_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    const S: &str = "STIX 2.1 §6.17";
    if let Some(k) = m.get("key").and_then(Value::as_str) {
        let hive = k.split('\\').next().unwrap_or("");
        if ["HKLM", "HKCC", "HKCR", "HKCU", "HKU"]
            .iter()
            .any(|a| hive.eq_ignore_ascii_case(a))
        {
            ctx.report(
                &path.key("key"),
                "the hive must be written in full (e.g. HKEY_LOCAL_MACHINE), not abbreviated",
                S,
            );
        }
    }
    if !WINDOWS_REGISTRY_KEY
        .props
        .iter()
        .any(|(k, _)| m.contains_key(*k))
        && !m.contains_key("extensions")
    {
        ctx.report(
            path,
            "a windows-registry-key must contain at least one of its own properties",
            S,
        );
    }
}

/// `contents` maps language tags to dictionaries of translated properties (§7.1).
fn language_content_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if let Some(c) = m.get("contents").and_then(Value::as_object) {
        let cp = path.key("contents");
        for (lang, v) in c {
            if !super::kinds::is_language_tag(lang) {
                ctx.report(
                    &cp.key(lang),
                    "the keys of contents must be RFC 5646 language tags",
                    sec::LANGUAGE_CONTENT,
                );
            } else if let Some(props) = v.as_object().filter(|o| !o.is_empty()) {
                // The inner keys name properties of the translated object.
                let lp = cp.key(lang);
                for k in props.keys() {
                    if !crate::ident::is_property_name(k) {
                        ctx.report(
                            &lp.key(k),
                            "must name a property of the object (3-250 characters of a-z, 0-9, _, starting with a letter)",
                            sec::LANGUAGE_CONTENT,
                        );
                    }
                }
            } else {
                ctx.report(
                    &cp.key(lang),
                    "each language must map to a non-empty dictionary of translated properties",
                    sec::LANGUAGE_CONTENT,
                );
            }
        }
    }
}

fn extension_definition_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    let toplevel = m
        .get("extension_types")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|t| t.as_str() == Some("toplevel-property-extension"))
        });
    if m.contains_key("extension_properties") && !toplevel {
        ctx.report(
            &path.key("extension_properties"),
            "only allowed when extension_types includes toplevel-property-extension",
            sec::EXTENSION_DEFINITION,
        );
    }
}

/// A user-account must say something about the account (the schema's
/// "at least one property" rule).
fn user_account_rule(m: &Map<String, Value>, path: &Path, ctx: &mut Ctx) {
    if !user_account_has_any(m) {
        ctx.report(
            path,
            "a user-account must contain at least one of its own properties",
            "STIX 2.1 §6.16",
        );
    }
}
