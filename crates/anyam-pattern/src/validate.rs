//! Semantic checks beyond the grammar (STIX 2.1 §9 and the object rules of §3, §6).
//!
//! Errors make a pattern invalid; warnings point at things a pattern may
//! legitimately do but that are probably mistakes. The line between them is
//! drawn so that every pattern the OASIS validator accepts and the
//! specification allows stays valid (see REFERENCE-DIFFERENCES.md):
//!
//! * errors: syntax; a hash value of the wrong form for a known algorithm;
//!   the same qualifier kind twice on one observation (§9.7); `WITHIN` not
//!   positive, `REPEATS 0`, `START` not before `STOP` (§9.7); a `MATCHES`
//!   regex that does not compile; an `ISSUBSET`/`ISSUPERSET` operand that is
//!   not an IP address or CIDR block.
//! * warnings: object type and property names of the wrong form (§3.1),
//!   unknown hash algorithms, literal kinds that cannot compare with a
//!   well-known property, timestamps that name no real instant, negative list
//!   indexes, empty or mixed-kind `IN` sets.

use crate::ast::*;
use crate::lexer::Span;
use crate::{StixVersion, parse};
use std::fmt;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    /// 1-based column of the construct, when known.
    pub column: Option<usize>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(c) => write!(f, "column {c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The outcome of [`crate::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Hash algorithms with a fixed value form, keyed by name upper-cased with
/// hyphens removed (the hash-algorithm-ov of STIX 2.1 §10.11 plus the older
/// names the OASIS validator knows).
/// A hash algorithm's display name and its value check.
type HashForm = (&'static str, fn(&str) -> bool);

fn hash_form(name: &str) -> Option<HashForm> {
    fn hexlen(s: &str, n: &[usize]) -> bool {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
    }
    Some(match name {
        "MD5" => ("MD5", |s| hexlen(s, &[32])),
        "MD6" => ("MD6", |s| hexlen(s, &[32, 40, 56, 64, 96, 128])),
        "RIPEMD160" => ("RIPEMD-160", |s| hexlen(s, &[40])),
        "SHA1" => ("SHA-1", |s| hexlen(s, &[40])),
        "SHA224" => ("SHA-224", |s| hexlen(s, &[56])),
        "SHA256" => ("SHA-256", |s| hexlen(s, &[64])),
        "SHA384" => ("SHA-384", |s| hexlen(s, &[96])),
        "SHA512" => ("SHA-512", |s| hexlen(s, &[128])),
        "SHA3224" => ("SHA3-224", |s| hexlen(s, &[56])),
        "SHA3256" => ("SHA3-256", |s| hexlen(s, &[64])),
        "SHA3384" => ("SHA3-384", |s| hexlen(s, &[96])),
        "SHA3512" => ("SHA3-512", |s| hexlen(s, &[128])),
        "WHIRLPOOL" => ("WHIRLPOOL", |s| hexlen(s, &[128])),
        "SSDEEP" => ("SSDEEP", |s| {
            (1..=128).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/+:.".contains(&b))
        }),
        "TLSH" => ("TLSH", |s| hexlen(s, &[70, 72])),
        _ => return None,
    })
}

/// Properties whose values are integers (STIX 2.1 §6).
const INTEGER_PROPS: &[&str] = &[
    "size",
    "src_port",
    "dst_port",
    "src_byte_count",
    "dst_byte_count",
    "src_packets",
    "dst_packets",
    "number_of_subkeys",
    "pid",
    "number_observed",
];
/// Properties whose values are timestamps (STIX 2.1 §6).
const TIMESTAMP_PROPS: &[&str] = &[
    "created",
    "modified",
    "ctime",
    "mtime",
    "atime",
    "date",
    "start",
    "end",
    "created_time",
    "modified_time",
    "account_created",
    "account_expires",
    "credential_last_changed",
    "account_first_login",
    "account_last_login",
    "validity_not_before",
    "validity_not_after",
    "first_observed",
    "last_observed",
];

struct Checker<'a> {
    src: &'a str,
    version: StixVersion,
    out: Validation,
}

impl Checker<'_> {
    fn col(&self, span: Span) -> Option<usize> {
        let before = self.src.get(..span.start)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Some(before[line_start..].chars().count() + 1)
    }
    fn error(&mut self, span: Option<Span>, message: String) {
        let column = span.and_then(|s| self.col(s));
        self.out.errors.push(Diagnostic { message, column });
    }
    fn warn(&mut self, span: Option<Span>, message: String) {
        let column = span.and_then(|s| self.col(s));
        self.out.warnings.push(Diagnostic { message, column });
    }

    fn observation(&mut self, e: &ObservationExpr) {
        match e {
            ObservationExpr::Observation(c) => self.comparison(c),
            ObservationExpr::Group(inner) => self.observation(inner),
            ObservationExpr::And(v) | ObservationExpr::Or(v) | ObservationExpr::FollowedBy(v) => {
                for e in v {
                    self.observation(e);
                }
            }
            ObservationExpr::Qualified(..) => {
                // Walk the chain of qualifiers down to what they qualify.
                let mut quals = Vec::new();
                let mut cur = e;
                while let ObservationExpr::Qualified(inner, q) = cur {
                    quals.push(q);
                    cur = inner;
                }
                if matches!(cur, ObservationExpr::Observation(_)) {
                    // STIX 2.1 §9.7: one qualifier of each kind on an observation.
                    for (i, q) in quals.iter().enumerate() {
                        let kind = std::mem::discriminant(*q);
                        if quals[i + 1..]
                            .iter()
                            .any(|p| std::mem::discriminant(*p) == kind)
                        {
                            let name = match q {
                                Qualifier::Within(_) => "WITHIN",
                                Qualifier::Repeats(_) => "REPEATS",
                                Qualifier::StartStop(..) => "START/STOP",
                            };
                            let msg = format!(
                                "qualifier {name} applied twice to the same observation expression"
                            );
                            if self.version == StixVersion::V2_1 {
                                self.error(None, msg);
                            } else {
                                self.warn(None, msg);
                            }
                            break;
                        }
                    }
                }
                for q in quals {
                    self.qualifier(q);
                }
                self.observation(cur);
            }
        }
    }

    fn qualifier(&mut self, q: &Qualifier) {
        match q {
            Qualifier::Within(n) if n.as_f64() <= 0.0 => {
                self.error(
                    None,
                    format!(
                        "WITHIN {} SECONDS: the duration must be positive",
                        n.as_f64()
                    ),
                );
            }
            Qualifier::Repeats(0) => self.error(
                None,
                "REPEATS 0 TIMES: the count must be positive".to_string(),
            ),
            Qualifier::StartStop(a, b) => {
                for t in [a, b] {
                    self.timestamp(t);
                }
                if a.nanos_since_epoch() >= b.nanos_since_epoch() {
                    self.error(None, format!("START {a} is not before STOP {b}"));
                }
            }
            _ => {}
        }
    }

    fn timestamp(&mut self, t: &Timestamp) {
        if !t.real {
            self.warn(
                None,
                format!(
                    "timestamp {t} names no real instant (calendar date, leap second or year 0)"
                ),
            );
        }
    }

    fn comparison(&mut self, c: &ComparisonExpr) {
        match c {
            ComparisonExpr::And(v) | ComparisonExpr::Or(v) => {
                for e in v {
                    self.comparison(e);
                }
            }
            ComparisonExpr::Group(e) => self.comparison(e),
            ComparisonExpr::Test(t) => self.prop_test(t),
        }
    }

    fn prop_test(&mut self, t: &PropTest) {
        let sp = Some(t.span);
        let ty = &t.path.object_type;
        // STIX 2.1 §3.1 (type names).
        let ty_ok = (3..=250).contains(&ty.len())
            && ty
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ty.starts_with('-')
            && !ty.ends_with('-')
            && !ty.contains("--");
        if !ty_ok {
            self.warn(
                sp,
                format!(
                    "object type '{ty}' is not of the form STIX requires (3-250 characters: a-z, 0-9 and single inner hyphens)"
                ),
            );
        }
        if let Some(PathStep::Key(first)) = t.path.steps.first()
            && !(first.len() <= 250
                && !first.is_empty()
                && first
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            self.warn(
                sp,
                format!(
                    "property name '{first}' is not of the form STIX requires (a-z, A-Z, 0-9, _)"
                ),
            );
        }
        for step in &t.path.steps {
            if let PathStep::Index(n) = step
                && *n < 0
            {
                self.warn(
                    sp,
                    format!("list index {n} is negative and never selects an element"),
                );
            }
        }
        let last_key = match t.path.steps.last() {
            Some(PathStep::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        let in_hashes = t
            .path
            .steps
            .iter()
            .any(|s| matches!(s, PathStep::Key(k) if k == "hashes"));
        // Hash values (STIX 2.1 §2.7 hashes, §10.11 hash-algorithm-ov).
        if in_hashes && let Some(alg) = last_key {
            let norm = alg.to_ascii_uppercase().replace(['-', '\''], "");
            match hash_form(&norm) {
                Some((name, ok)) => {
                    let values: Vec<&Literal> = match &t.op {
                        CompOp::Eq(l) | CompOp::Neq(l) => vec![l],
                        CompOp::In(set) => set.iter().collect(),
                        _ => vec![],
                    };
                    for v in values {
                        match v {
                            Literal::Str(s) if !ok(s) => self.error(sp, format!("'{s}' is not a valid {name} hash")),
                            Literal::Str(_) => {}
                            other => self.error(
                                sp,
                                format!("a {} literal is not a valid {name} hash (hash values are strings)", other.kind()),
                            ),
                        }
                    }
                }
                None => self.warn(
                    sp,
                    format!("'{alg}' is not a hash algorithm of the STIX vocabulary"),
                ),
            }
        }
        // Literal kinds that cannot compare with the property.
        let literals: Vec<&Literal> = match &t.op {
            CompOp::Eq(l)
            | CompOp::Neq(l)
            | CompOp::Lt(l)
            | CompOp::Le(l)
            | CompOp::Gt(l)
            | CompOp::Ge(l) => vec![l],
            CompOp::In(set) => set.iter().collect(),
            _ => vec![],
        };
        for l in &literals {
            if let Literal::Timestamp(ts) = l {
                self.timestamp(ts);
            }
        }
        if let Some(k) = last_key {
            let want = if INTEGER_PROPS.contains(&k) {
                Some("integer")
            } else if TIMESTAMP_PROPS.contains(&k) {
                Some("timestamp")
            } else if k.ends_with("_ref") {
                Some("identifier string")
            } else {
                None
            };
            if let Some(want) = want {
                for l in &literals {
                    let fits = match want {
                        "integer" => matches!(l, Literal::Int(_) | Literal::Float(_)),
                        "timestamp" => matches!(l, Literal::Timestamp(_)),
                        _ => matches!(l, Literal::Str(_)),
                    };
                    if !fits {
                        self.warn(
                            sp,
                            format!(
                                "'{k}' holds a {want}; a {} literal never compares equal to it",
                                l.kind()
                            ),
                        );
                    }
                }
            }
        }
        match &t.op {
            CompOp::In(set) if set.is_empty() => {
                self.warn(sp, "IN () is an empty set and never matches".to_string())
            }
            CompOp::In(set) => {
                let numeric = |l: &Literal| matches!(l, Literal::Int(_) | Literal::Float(_));
                let same = set
                    .iter()
                    .all(|l| std::mem::discriminant(l) == std::mem::discriminant(&set[0]));
                if !same && !set.iter().all(numeric) {
                    self.warn(sp, "IN set mixes literal kinds".to_string());
                }
            }
            CompOp::Matches(re) => {
                if let Err(e) = crate::regex_dialect::Compiled::check(re) {
                    self.error(sp, format!("MATCHES regex does not compile: {e}"));
                }
            }
            CompOp::IsSubset(s) | CompOp::IsSuperset(s)
                if crate::net::IpNet::parse(s).is_none() =>
            {
                self.error(
                    sp,
                    format!("'{s}' is not an IPv4 or IPv6 address or CIDR block"),
                );
            }
            _ => {}
        }
    }
}

/// See [`crate::validate`].
pub fn validate(pattern: &str, version: StixVersion) -> Validation {
    validate_parsed(pattern, version).1
}

/// [`validate`], also handing back the parsed tree (when it parsed) so that
/// a caller needing both parses once.
pub fn validate_parsed(pattern: &str, version: StixVersion) -> (Option<Pattern>, Validation) {
    let tree = match parse(pattern, version) {
        Ok(t) => t,
        Err(e) => {
            let v = Validation {
                // The column travels in `column`; the message says the rest,
                // so the rendered diagnostic names the location once.
                errors: vec![Diagnostic {
                    message: if e.line > 1 {
                        format!(
                            "on line {}: found {}, expected {}",
                            e.line, e.found, e.expected
                        )
                    } else {
                        format!("found {}, expected {}", e.found, e.expected)
                    },
                    column: Some(e.column),
                }],
                warnings: vec![],
            };
            return (None, v);
        }
    };
    let mut c = Checker {
        src: pattern,
        version,
        out: Validation::default(),
    };
    c.observation(&tree.root);
    (Some(tree), c.out)
}
