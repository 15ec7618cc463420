//! Anchors: necessary conditions of a bracket that an index can look up.
//!
//! For every bracket (`[…]`) of a pattern we derive a set of anchors such
//! that whenever the bracket matches an observation, at least one anchor
//! holds for that observation. Anchors are therefore a *prefilter*: the
//! engine looks them up, and only brackets with a holding anchor are
//! evaluated by the reference matcher, whose verdict is final. A comparison
//! that cannot be looked up still yields an anchor, just a weaker one
//! ("the path reaches some value", "an object of the type is present"), so
//! no bracket is ever missed.
//!
//! The derivation follows the matcher's semantics (STIX 2.1 §9.4, §9.5):
//!
//! * a test (other than `NOT EXISTS`) holds only for an object of the path's
//!   type on which the path reaches at least one value;
//! * `AND` inside a bracket holds only if each operand does, so the anchors
//!   of any one operand suffice — we take the most selective;
//! * `OR` holds if one operand does, so the anchors of all operands are
//!   needed.

use anyam_pattern::{
    CompOp, ComparisonExpr, IpNet, Literal, ObjectPath, PathStep, PropTest, StixVersion,
    regex_dialect, selectable_type,
};
use unicode_normalization::UnicodeNormalization as _;

/// A lookup key, on an object path of an object type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    /// The path reaches this string.
    Str(Box<str>),
    /// The path reaches a number equal to this integer.
    Int(i64),
    /// The path reaches an address or block inside this block.
    Cidr(IpNet),
    /// The path reaches a string (NFC-normalised) containing these bytes.
    Substr(Box<[u8]>),
    /// The path reaches a string (NFC-normalised) this expression (in the
    /// linear engine's syntax) finds something in.
    Regex(Box<str>),
    /// The path reaches some value.
    Any,
}

/// One anchor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Anchor {
    /// A key on a path.
    Path {
        object_type: String,
        steps: Vec<PathStep>,
        key: Key,
        /// Whether the anchor holding *is* the bracket matching, so that no
        /// evaluation is needed (a bracket that is one plain equality or
        /// `IN` over strings on a path of plain keys).
        exact: bool,
    },
    /// An object of the type is present.
    Type(String),
}

impl Anchor {
    /// Lower is more selective.
    fn cost(&self) -> u32 {
        match self {
            Anchor::Path { key, .. } => match key {
                Key::Str(_) | Key::Int(_) => 1,
                Key::Cidr(_) => 2,
                Key::Substr(b) if b.len() >= 4 => 3,
                Key::Substr(_) => 10,
                Key::Regex(_) => 20,
                Key::Any => 50,
            },
            Anchor::Type(_) => 100,
        }
    }
}

/// The cost of a disjunction of anchors: its weakest member, then its size.
fn set_cost(set: &[Anchor]) -> (u32, usize) {
    (set.iter().map(Anchor::cost).max().unwrap_or(0), set.len())
}

/// The anchors of one bracket's comparison expression.
pub(crate) fn anchors(c: &ComparisonExpr, version: StixVersion) -> Vec<Anchor> {
    let mut out = derive(c);
    // A bracket that is a single plain test may skip evaluation.
    if let ComparisonExpr::Test(t) = strip(c) {
        let plain = plain_path(&t.path) && selectable_type(&t.path.object_type, version);
        let single = matches!(&t.op, CompOp::Eq(Literal::Str(_)))
            || matches!(&t.op, CompOp::In(set) if set.iter().all(|l| matches!(l, Literal::Str(_))));
        if plain && single && !t.negated {
            for a in &mut out {
                if let Anchor::Path {
                    key: Key::Str(_),
                    exact,
                    ..
                } = a
                {
                    *exact = true;
                }
            }
        }
    }
    out
}

fn strip(c: &ComparisonExpr) -> &ComparisonExpr {
    match c {
        ComparisonExpr::Group(inner) => strip(inner),
        other => other,
    }
}

fn derive(c: &ComparisonExpr) -> Vec<Anchor> {
    match c {
        ComparisonExpr::Group(inner) => derive(inner),
        ComparisonExpr::Or(v) => v.iter().flat_map(derive).collect(),
        ComparisonExpr::And(v) => v
            .iter()
            .map(derive)
            .min_by_key(|set| set_cost(set))
            .unwrap_or_default(),
        ComparisonExpr::Test(t) => test(t),
    }
}

/// Whether the path has only dictionary keys, none of them binary or a
/// reference: the values it reaches are exactly what the index sees.
fn plain_path(p: &ObjectPath) -> bool {
    p.steps.iter().all(|s| match s {
        PathStep::Key(k) => !is_binary(k) && !k.ends_with("_ref") && !k.ends_with("_refs"),
        _ => false,
    })
}

fn is_binary(key: &str) -> bool {
    key.ends_with("_hex") || key.ends_with("_bin")
}

/// Whether the index can see the values the matcher compares on this path:
/// binary properties are decoded by the matcher, and a path ending in a
/// `*_refs` list compares the resolved list itself.
fn visitable(p: &ObjectPath) -> bool {
    let binary = p
        .steps
        .iter()
        .any(|s| matches!(s, PathStep::Key(k) if is_binary(k)));
    let ends_in_refs = matches!(p.steps.last(), Some(PathStep::Key(k)) if k.ends_with("_refs"));
    !binary && !ends_in_refs
}

fn test(t: &PropTest) -> Vec<Anchor> {
    let ty = &t.path.object_type;
    if !visitable(&t.path) || (t.negated && matches!(t.op, CompOp::Exists)) {
        return vec![Anchor::Type(ty.clone())];
    }
    let path = |key: Key| Anchor::Path {
        object_type: ty.clone(),
        steps: t.path.steps.clone(),
        key,
        exact: false,
    };
    let any = || vec![path(Key::Any)];
    if t.negated {
        return any();
    }
    match &t.op {
        CompOp::Eq(Literal::Str(s)) => vec![path(Key::Str(s.as_str().into()))],
        CompOp::Eq(Literal::Int(i)) => vec![path(Key::Int(*i))],
        CompOp::Eq(Literal::Float(f)) => match integral(*f) {
            Some(i) => vec![path(Key::Int(i))],
            None => any(),
        },
        CompOp::In(set) if set.iter().all(|l| matches!(l, Literal::Str(_))) => set
            .iter()
            .filter_map(|l| match l {
                Literal::Str(s) => Some(path(Key::Str(s.as_str().into()))),
                _ => None,
            })
            .collect(),
        CompOp::IsSubset(s) => match IpNet::parse(s) {
            Some(net) => vec![path(Key::Cidr(net))],
            None => any(),
        },
        CompOp::Like(p) => {
            // `%` and `_` are the only wildcards; the matcher compares in NFC.
            let nfc: String = p.nfc().collect();
            match nfc.split(['%', '_']).max_by_key(|f| f.len()) {
                Some(f) if !f.is_empty() => vec![path(Key::Substr(f.as_bytes().into()))],
                _ => any(),
            }
        }
        CompOp::Matches(p) => match regex_dialect::required_literals(p) {
            // A literal of six bytes or more narrows the candidates; a
            // shorter one (`/` or `http`, which every URL holds) would not.
            Some(lits) if lits.iter().all(|l| l.len() >= 6) => lits
                .into_iter()
                .map(|l| path(Key::Substr(l.into_boxed_slice())))
                .collect(),
            // Otherwise the expression itself joins a set automaton that
            // runs all of a path's expressions in one pass.
            _ => match regex_dialect::linear_text(p) {
                Some(t) => vec![path(Key::Regex(t.into_boxed_str()))],
                None => any(),
            },
        },
        _ => any(),
    }
}

/// The integer a float literal equals, when it is one.
fn integral(f: f64) -> Option<i64> {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Some(f as i64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_leaf(p: &str) -> Vec<Anchor> {
        let pat = anyam_pattern::parse(p, StixVersion::V2_1).unwrap();
        let mut c = &pat.root;
        while let anyam_pattern::ObservationExpr::Group(inner) = c {
            c = inner;
        }
        let anyam_pattern::ObservationExpr::Observation(cmp) = c else {
            panic!("not a bracket")
        };
        anchors(cmp, StixVersion::V2_1)
    }

    fn keys(p: &str) -> Vec<String> {
        first_leaf(p)
            .iter()
            .map(|a| match a {
                Anchor::Path { key, exact, .. } => {
                    format!("{key:?}{}", if *exact { "!" } else { "" })
                }
                Anchor::Type(t) => format!("type {t}"),
            })
            .collect()
    }

    #[test]
    fn derivation() {
        let cases: &[(&str, &[&str])] = &[
            ("[ipv4-addr:value = '1.2.3.4']", &["Str(\"1.2.3.4\")!"]),
            (
                "[ipv4-addr:value IN ('a', 'b')]",
                &["Str(\"a\")!", "Str(\"b\")!"],
            ),
            (
                "[ipv4-addr:value ISSUBSET '10.0.0.0/8']",
                &["Cidr(IpNet { v6: false, addr: 167772160, prefix: 8 })"],
            ),
            (
                "[url:value LIKE '%evil.com/%']",
                &["Substr([101, 118, 105, 108, 46, 99, 111, 109, 47])"],
            ),
            ("[file:size > 10]", &["Any"]),
            ("[file:name NOT = 'a']", &["Any"]),
            ("[NOT EXISTS file:name]", &["type file"]),
            ("[file:payload_bin = 'aGk=']", &["type file"]),
            ("[file:name = 'a' AND file:size > 3]", &["Str(\"a\")"]),
            ("[file:name = 'a' OR file:size > 3]", &["Str(\"a\")", "Any"]),
            (
                "[network-traffic:dst_ref.value = '1.2.3.4']",
                &["Str(\"1.2.3.4\")"],
            ),
            ("[indicator:name = 'x']", &["Str(\"x\")"]),
            ("[file:size = 3.0]", &["Int(3)"]),
            // No literal: the expression joins the path's set automaton.
            (
                "[domain-name:value MATCHES '^[a-z]+\\\\.[a-z]{2,3}$']",
                &["Regex(\"^[a-z]+\\\\.[a-z]{2,3}(?:\\\\n?\\\\z)\")"],
            ),
            // A literal required inside the regex, not at its ends.
            (
                "[url:value MATCHES '^https?://(www\\\\.)?evil-c9\\\\.[a-z]+/']",
                &["Substr([101, 118, 105, 108, 45, 99, 57, 46])"],
            ),
        ];
        for (p, want) in cases {
            assert_eq!(
                keys(p),
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{p}"
            );
        }
    }
}
