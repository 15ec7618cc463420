//! The syntax tree of a STIX pattern (STIX 2.1 §9.2–§9.7) and its canonical printer.
//!
//! The tree keeps the pattern's structure exactly as written, parentheses
//! included (they matter: a qualifier on a parenthesised group applies to the
//! group). `Display` prints the canonical text: single spaces, keywords in
//! upper case, literals in one fixed spelling. Printing a tree and parsing the
//! text again gives an equal tree.

use crate::lexer::{Keyword, Span};
use std::fmt::{self, Write as _};

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// The top observation expression.
    pub root: ObservationExpr,
}

/// An observation expression (STIX 2.1 §9.5, §9.6).
#[derive(Debug, Clone, PartialEq)]
pub enum ObservationExpr {
    /// `[ comparison ]`: one observation.
    Observation(ComparisonExpr),
    /// `( … )`.
    Group(Box<ObservationExpr>),
    /// `a AND b AND …` (two or more operands, left-associative): all, on
    /// distinct observations.
    And(Vec<ObservationExpr>),
    /// `a OR b OR …` (two or more operands).
    Or(Vec<ObservationExpr>),
    /// `a FOLLOWEDBY b FOLLOWEDBY …` (two or more operands, left-associative):
    /// each operand's observations not earlier than the ones before.
    FollowedBy(Vec<ObservationExpr>),
    /// An expression with a qualifier (STIX 2.1 §9.7).
    Qualified(Box<ObservationExpr>, Qualifier),
}

/// A qualifier (STIX 2.1 §9.7).
#[derive(Debug, Clone, PartialEq)]
pub enum Qualifier {
    /// `WITHIN n SECONDS`: written as an integer or a float.
    Within(Number),
    /// `REPEATS n TIMES`.
    Repeats(i64),
    /// `START t'…' STOP t'…'`.
    StartStop(Timestamp, Timestamp),
}

/// A number as written in a qualifier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// A comparison expression: the inside of `[…]` (STIX 2.1 §9.4).
#[derive(Debug, Clone, PartialEq)]
pub enum ComparisonExpr {
    /// Two or more operands; chains are kept flat so that a long list of
    /// alternatives does not make a deep tree.
    And(Vec<ComparisonExpr>),
    /// Two or more operands.
    Or(Vec<ComparisonExpr>),
    Group(Box<ComparisonExpr>),
    Test(PropTest),
}

/// One comparison: `path [NOT] op value`, or `[NOT] EXISTS path`.
#[derive(Debug, Clone, PartialEq)]
pub struct PropTest {
    pub path: ObjectPath,
    /// `NOT` written before the operator.
    pub negated: bool,
    pub op: CompOp,
    /// Where the comparison was written (not part of tree equality).
    pub span: Span,
}

/// The comparison operators (STIX 2.1 §9.4, table of comparison operators).
#[derive(Debug, Clone, PartialEq)]
pub enum CompOp {
    Eq(Literal),
    Neq(Literal),
    Lt(Literal),
    Le(Literal),
    Gt(Literal),
    Ge(Literal),
    In(Vec<Literal>),
    Like(String),
    Matches(String),
    IsSubset(String),
    IsSuperset(String),
    Exists,
}

impl CompOp {
    /// The operator as written in a pattern (`=`, `IN`, …).
    pub fn symbol(&self) -> &'static str {
        match self {
            CompOp::Eq(_) => "=",
            CompOp::Neq(_) => "!=",
            CompOp::Lt(_) => "<",
            CompOp::Le(_) => "<=",
            CompOp::Gt(_) => ">",
            CompOp::Ge(_) => ">=",
            CompOp::In(_) => "IN",
            CompOp::Like(_) => "LIKE",
            CompOp::Matches(_) => "MATCHES",
            CompOp::IsSubset(_) => "ISSUBSET",
            CompOp::IsSuperset(_) => "ISSUPERSET",
            CompOp::Exists => "EXISTS",
        }
    }
}

/// An object path: `type:prop.sub[0].'quoted key'[*]` (STIX 2.1 §9.3).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectPath {
    pub object_type: String,
    /// At least one step; the first is always a key.
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathStep {
    Key(String),
    Index(i64),
    AnyIndex,
}

/// A literal value (STIX 2.1 §9.3, literal kinds).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Binary(Vec<u8>),
    Hex(Vec<u8>),
    Timestamp(Timestamp),
}

impl Literal {
    /// The literal kind, as named in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Literal::Int(_) => "integer",
            Literal::Float(_) => "float",
            Literal::Str(_) => "string",
            Literal::Bool(_) => "boolean",
            Literal::Binary(_) => "binary",
            Literal::Hex(_) => "hex",
            Literal::Timestamp(_) => "timestamp",
        }
    }
}

/// A timestamp in the grammar's form `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
///
/// The text is kept as written (STIX keeps a timestamp's given precision);
/// the instant is computed with nanosecond precision. `real` is false for
/// text the grammar accepts but that names no real instant (February 30, a
/// leap second, year 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Timestamp {
    pub text: String,
    /// Seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds within the second (digits past the ninth are dropped).
    pub nanos: u32,
    pub real: bool,
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |a, &d| a * 10 + i64::from(d - b'0')))
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
/// Out-of-range days simply roll over, which is what lets the grammar's
/// "February 30" still get an instant; `real` records that it is not one.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

impl Timestamp {
    /// Parses the body of a `t'…'` literal, with the grammar's field ranges
    /// (month 01–12, day 01–31, hour 00–23, minute 00–59, second 00–60).
    pub fn parse_literal(body: &str) -> Option<Timestamp> {
        let ts = Self::parse_fields(body)?;
        let (_, mo, d, h, mi, s) = ts.0;
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        Some(ts.1)
    }

    /// Parses a timestamp string from observed data, as strictly as STIX 2.1
    /// §3.2 (RFC 3339, upper-case `T` and `Z`, UTC). Unlike a literal, it must
    /// name a real instant.
    pub fn parse_json(text: &str) -> Option<Timestamp> {
        let ts = Self::parse_literal(text)?;
        ts.real.then_some(ts)
    }

    #[allow(clippy::type_complexity)]
    fn parse_fields(body: &str) -> Option<((i64, i64, i64, i64, i64, i64), Timestamp)> {
        let b = body.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        if *b.last()? != b'Z' {
            return None;
        }
        let y = digits(&b[0..4])?;
        let mo = digits(&b[5..7])?;
        let d = digits(&b[8..10])?;
        let h = digits(&b[11..13])?;
        let mi = digits(&b[14..16])?;
        let s = digits(&b[17..19])?;
        let rest = &b[19..b.len() - 1];
        let mut nanos = 0u32;
        if !rest.is_empty() {
            if rest[0] != b'.' || rest.len() < 2 || !rest[1..].iter().all(u8::is_ascii_digit) {
                return None;
            }
            for (i, &c) in rest[1..].iter().take(9).enumerate() {
                nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
            }
        }
        let real = y >= 1
            && s <= 59
            && i8::try_from(mo)
                .ok()
                .zip(i8::try_from(d).ok())
                .is_some_and(|(mo, d)| {
                    i16::try_from(y).is_ok_and(|y| jiff::civil::Date::new(y, mo, d).is_ok())
                });
        let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
        Some((
            (y, mo, d, h, mi, s),
            Timestamp {
                text: body.to_string(),
                secs,
                nanos,
                real,
            },
        ))
    }

    /// The instant in nanoseconds since the epoch.
    pub fn nanos_since_epoch(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }
}

/// True when `s` can be written as a bare identifier in an object path: the
/// grammar's identifier without hyphen that is not a keyword or boolean.
pub(crate) fn is_bare_key(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && Keyword::from_word(s, true).is_none()
        && s != "true"
        && s != "false"
}

/// Writes `s` as a pattern string literal, escaping `'` and `\`.
pub(crate) fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('\'')?;
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('\'')
}

fn write_float(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    let s = format!("{v}");
    if s.contains('.') {
        f.write_str(&s)
    } else {
        write!(f, "{s}.0")
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use base64::Engine as _;
        match self {
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(v) => write_float(f, *v),
            Literal::Str(s) => write_quoted(f, s),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Binary(b) => write!(
                f,
                "b'{}'",
                base64::engine::general_purpose::STANDARD.encode(b)
            ),
            Literal::Hex(b) => write!(f, "h'{}'", hex::encode(b)),
            Literal::Timestamp(t) => write!(f, "{t}"),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t'{}'", self.text)
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.object_type)?;
        f.write_char(':')?;
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                PathStep::Key(k) => {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    if is_bare_key(k) {
                        f.write_str(k)?
                    } else {
                        write_quoted(f, k)?
                    }
                }
                PathStep::Index(n) => write!(f, "[{n}]")?,
                PathStep::AnyIndex => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for PropTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = if self.negated { "NOT " } else { "" };
        if let CompOp::Exists = self.op {
            return write!(f, "{not}EXISTS {}", self.path);
        }
        write!(f, "{} {not}{} ", self.path, self.op.symbol())?;
        match &self.op {
            CompOp::Eq(l)
            | CompOp::Neq(l)
            | CompOp::Lt(l)
            | CompOp::Le(l)
            | CompOp::Gt(l)
            | CompOp::Ge(l) => {
                write!(f, "{l}")
            }
            CompOp::In(set) => {
                f.write_char('(')?;
                for (i, l) in set.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{l}")?;
                }
                f.write_char(')')
            }
            CompOp::Like(s) | CompOp::Matches(s) | CompOp::IsSubset(s) | CompOp::IsSuperset(s) => {
                write_quoted(f, s)
            }
            CompOp::Exists => Ok(()),
        }
    }
}

impl ComparisonExpr {
    fn prec(&self) -> u8 {
        match self {
            ComparisonExpr::Or(..) => 0,
            ComparisonExpr::And(..) => 1,
            _ => 2,
        }
    }
    /// Prints `self` in a position that needs a precedence above `min - 1`;
    /// adds parentheses only for trees that were not built by the parser
    /// (an operand of the same operator, or a looser one).
    fn fmt_prec(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.prec() < min {
            return write!(f, "({self})");
        }
        write!(f, "{self}")
    }
}

impl fmt::Display for ComparisonExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComparisonExpr::Or(v) | ComparisonExpr::And(v) => {
                let (op, p) = if matches!(self, ComparisonExpr::Or(_)) {
                    (" OR ", 1)
                } else {
                    (" AND ", 2)
                };
                for (i, e) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    e.fmt_prec(f, p)?;
                }
                Ok(())
            }
            ComparisonExpr::Group(e) => write!(f, "({e})"),
            ComparisonExpr::Test(t) => write!(f, "{t}"),
        }
    }
}

impl ObservationExpr {
    fn prec(&self) -> u8 {
        match self {
            ObservationExpr::FollowedBy(..) => 0,
            ObservationExpr::Or(..) => 1,
            ObservationExpr::And(..) => 2,
            _ => 3,
        }
    }
    fn fmt_prec(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.prec() < min {
            return write!(f, "({self})");
        }
        write!(f, "{self}")
    }
}

impl fmt::Display for ObservationExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (v, op, p) = match self {
            ObservationExpr::FollowedBy(v) => (v, " FOLLOWEDBY ", 1),
            ObservationExpr::Or(v) => (v, " OR ", 2),
            ObservationExpr::And(v) => (v, " AND ", 3),
            ObservationExpr::Observation(c) => return write!(f, "[{c}]"),
            ObservationExpr::Group(e) => return write!(f, "({e})"),
            ObservationExpr::Qualified(e, q) => {
                e.fmt_prec(f, 3)?;
                return write!(f, " {q}");
            }
        };
        for (i, e) in v.iter().enumerate() {
            if i > 0 {
                f.write_str(op)?;
            }
            e.fmt_prec(f, p)?;
        }
        Ok(())
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Within(Number::Int(i)) => write!(f, "WITHIN {i} SECONDS"),
            Qualifier::Within(Number::Float(v)) => {
                f.write_str("WITHIN ")?;
                write_float(f, *v)?;
                f.write_str(" SECONDS")
            }
            Qualifier::Repeats(n) => write!(f, "REPEATS {n} TIMES"),
            Qualifier::StartStop(a, b) => write!(f, "START {a} STOP {b}"),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root)
    }
}
