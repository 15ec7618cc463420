//! Optional normalisation of values, applied to indicators and observations alike.
//!
//! STIX patterning compares strings exactly (STIX 2.1 §9.4), and so does the
//! reference matcher: a hash written in upper case does not equal the same
//! hash in lower case, `EXAMPLE.com` is not `example.com`, and
//! `2001:DB8:0::1` is not `2001:db8::1`. The specification is silent on
//! whether these should be equal; sensors and partners disagree on how
//! they write them. This module lets an operator choose to fold them, by
//! rewriting both sides before the engine sees them, so that verdicts stay
//! those of the reference matcher on the rewritten values:
//!
//! * `hashes`: every value of a `hashes` dictionary, and comparisons on a
//!   path through `hashes`, in lower case (hex digests are case-free).
//! * `domains`: `domain-name:value` (and values of comparisons on it) in
//!   lower case, without a trailing dot (DNS names are case-insensitive,
//!   RFC 4343).
//! * `ipv6`: `ipv6-addr:value` in the RFC 5952 text form.
//!
//! Only `=`, `!=` and `IN` literals are rewritten in patterns; `LIKE` and
//! `MATCHES` operands are left as written (an operator who folds case
//! should write them in lower case).

use anyam_pattern::{
    CompOp, ComparisonExpr, Literal, ObjectPath, Observation, ObservationExpr, PathStep,
    StixVersion,
};
use serde_json::Value;

/// Which normalisations to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Normalize {
    pub hashes: bool,
    pub domains: bool,
    pub ipv6: bool,
}

impl Normalize {
    /// Parses a comma-separated list of `hashes`, `domains`, `ipv6`
    /// (or `all`, or `none`).
    pub fn parse(s: &str) -> Result<Normalize, String> {
        let mut n = Normalize::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "hashes" => n.hashes = true,
                "domains" => n.domains = true,
                "ipv6" => n.ipv6 = true,
                "all" => {
                    n = Normalize {
                        hashes: true,
                        domains: true,
                        ipv6: true,
                    }
                }
                "none" => n = Normalize::default(),
                other => {
                    return Err(format!(
                        "unknown normalisation {other:?} (hashes, domains, ipv6, all, none)"
                    ));
                }
            }
        }
        Ok(n)
    }

    pub fn is_off(&self) -> bool {
        *self == Normalize::default()
    }

    fn domain(s: &str) -> String {
        s.strip_suffix('.').unwrap_or(s).to_lowercase()
    }

    fn ipv6(s: &str) -> Option<String> {
        s.parse::<std::net::Ipv6Addr>().ok().map(|a| a.to_string())
    }

    /// How a string on this path is rewritten, if at all.
    fn rewrite(&self, path: &ObjectPath, s: &str) -> Option<String> {
        let first_key = match path.steps.first() {
            Some(PathStep::Key(k)) => k.as_str(),
            _ => "",
        };
        let via_hashes = path
            .steps
            .iter()
            .any(|st| matches!(st, PathStep::Key(k) if k == "hashes"));
        if self.hashes && via_hashes {
            return Some(s.to_lowercase());
        }
        let single_value = first_key == "value" && path.steps.len() == 1;
        match path.object_type.as_str() {
            "domain-name" if self.domains && single_value => Some(Self::domain(s)),
            "ipv6-addr" if self.ipv6 && single_value => Self::ipv6(s),
            _ => None,
        }
    }

    fn literal(&self, path: &ObjectPath, l: &mut Literal) {
        if let Literal::Str(s) = l
            && let Some(n) = self.rewrite(path, s)
        {
            *s = n;
        }
    }

    fn comparison(&self, c: &mut ComparisonExpr) {
        match c {
            ComparisonExpr::And(v) | ComparisonExpr::Or(v) => {
                for x in v {
                    self.comparison(x);
                }
            }
            ComparisonExpr::Group(inner) => self.comparison(inner),
            ComparisonExpr::Test(t) => match &mut t.op {
                CompOp::Eq(l) | CompOp::Neq(l) => self.literal(&t.path, l),
                CompOp::In(set) => {
                    for l in set {
                        self.literal(&t.path, l);
                    }
                }
                _ => {}
            },
        }
    }

    fn observation_expr(&self, e: &mut ObservationExpr) {
        match e {
            ObservationExpr::Observation(c) => self.comparison(c),
            ObservationExpr::Group(inner) | ObservationExpr::Qualified(inner, _) => {
                self.observation_expr(inner)
            }
            ObservationExpr::And(v) | ObservationExpr::Or(v) | ObservationExpr::FollowedBy(v) => {
                for x in v {
                    self.observation_expr(x);
                }
            }
        }
    }

    /// The pattern with its literals normalised (in canonical form), or the
    /// pattern unchanged when it does not parse (the engine then reports it).
    pub fn pattern(&self, pattern: &str) -> String {
        if self.is_off() {
            return pattern.to_string();
        }
        match anyam_pattern::parse(pattern, StixVersion::V2_1) {
            Ok(mut p) => {
                self.observation_expr(&mut p.root);
                p.to_string()
            }
            Err(_) => pattern.to_string(),
        }
    }

    /// Normalises an observation's objects in place.
    pub fn observation(&self, ob: &mut Observation) {
        if self.is_off() {
            return;
        }
        for (_, obj) in &mut ob.objects {
            let ty = obj
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if self.hashes
                && let Some(Value::Object(h)) = obj.get_mut("hashes")
            {
                for v in h.values_mut() {
                    if let Value::String(s) = v {
                        *s = s.to_lowercase();
                    }
                }
            }
            let Some(Value::String(v)) = obj.get_mut("value") else {
                continue;
            };
            match ty.as_str() {
                "domain-name" if self.domains => *v = Self::domain(v),
                "ipv6-addr" if self.ipv6 => {
                    if let Some(n) = Self::ipv6(v) {
                        *v = n;
                    }
                }
                _ => {}
            }
        }
    }
}
