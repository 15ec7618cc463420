//! The recursive-descent parser (STIX 2.1 §9, grammar of the OASIS patterning language).
//!
//! Precedence, loosest first: `FOLLOWEDBY`, `OR`, `AND` between observation
//! expressions, qualifiers binding tightest (STIX 2.1 §9.6); `OR` then `AND`
//! inside `[…]` (§9.4). All binary operators are left-associative. The first
//! error stops the parse; it names the line and column, what was found and
//! what was expected.
//!
//! Hostile input is bounded: the text may be at most [`Limits::max_len`]
//! bytes and nest at most [`Limits::max_depth`] deep (brackets, parentheses
//! and qualifiers; operator chains are flat), so parsing is linear in the
//! input and nothing downstream recurses deeper than that.

use crate::StixVersion;
use crate::ast::*;
use crate::lexer::{Keyword, Lexer, Span, Tok, Token};
use std::fmt;

/// Bounds on what the parser accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest pattern text, in bytes.
    pub max_len: usize,
    /// Deepest nesting of brackets, parentheses and qualifiers. Chains of
    /// `AND`/`OR`/`FOLLOWEDBY` are flat in the tree and do not count.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 1 << 20,
            max_depth: 64,
        }
    }
}

/// A syntax error, or a pattern over the size or depth limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: found {found}, expected {expected}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset in the pattern.
    pub offset: usize,
    /// What was found there.
    pub found: String,
    /// What the grammar allows there.
    pub expected: String,
}

impl ParseError {
    pub(crate) fn at(
        src: &str,
        offset: usize,
        found: String,
        expected: impl Into<String>,
    ) -> ParseError {
        let offset = offset.min(src.len());
        let before = src.get(..offset).unwrap_or(src);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        ParseError {
            line,
            column,
            offset,
            found,
            expected: expected.into(),
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    limits: Limits,
    version: StixVersion,
}

type PResult<T> = Result<T, ParseError>;

/// Parses with explicit limits; see [`crate::parse`].
pub fn parse_with_limits(src: &str, version: StixVersion, limits: Limits) -> PResult<Pattern> {
    if src.len() > limits.max_len {
        return Err(ParseError::at(
            src,
            limits.max_len,
            format!("a pattern of {} bytes", src.len()),
            format!("at most {} bytes", limits.max_len),
        ));
    }
    let mut lexer = Lexer::new(src, version == StixVersion::V2_1);
    let mut toks = Vec::new();
    loop {
        let t = lexer.next_token();
        let eof = t.tok == Tok::Eof;
        toks.push(t);
        if eof {
            break;
        }
    }
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        limits,
        version,
    };
    let root = p.obs_followed_by(0)?;
    p.expect_eof()?;
    Ok(Pattern { root })
}

const LITERAL: &str = "a literal (string, number, boolean, h'…', b'…' or t'…')";

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].tok
    }

    fn span(&self) -> Span {
        self.toks[self.pos.min(self.toks.len() - 1)].span
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn err<T>(&self, expected: impl Into<String>) -> PResult<T> {
        let sp = self.span();
        let text = &self.src[sp.start..sp.end];
        Err(ParseError::at(
            self.src,
            sp.start,
            self.peek().describe(text),
            expected,
        ))
    }

    fn is_kw(&self, k: Keyword) -> bool {
        *self.peek() == Tok::Kw(k)
    }

    fn expect_kw(&mut self, k: Keyword) -> PResult<()> {
        if self.is_kw(k) {
            self.bump();
            Ok(())
        } else {
            self.err(k.as_str())
        }
    }

    fn expect(&mut self, t: Tok, what: &str) -> PResult<()> {
        if *self.peek() == t {
            self.bump();
            Ok(())
        } else {
            self.err(what)
        }
    }

    fn expect_eof(&mut self) -> PResult<()> {
        if *self.peek() == Tok::Eof {
            Ok(())
        } else {
            self.err("AND, OR, FOLLOWEDBY, a qualifier or end of pattern")
        }
    }

    fn check_depth(&self, depth: usize, at: Span) -> PResult<()> {
        if depth > self.limits.max_depth {
            return Err(ParseError::at(
                self.src,
                at.start,
                format!("nesting deeper than {}", self.limits.max_depth),
                format!(
                    "at most {} levels of brackets, parentheses and qualifiers",
                    self.limits.max_depth
                ),
            ));
        }
        Ok(())
    }

    // ---- observation expressions (STIX 2.1 §9.5, §9.6) ----

    /// One level of left-associative binary operators, kept flat.
    fn obs_binary(
        &mut self,
        depth: usize,
        kw: Keyword,
        next: fn(&mut Self, usize) -> PResult<ObservationExpr>,
        make: fn(Vec<ObservationExpr>) -> ObservationExpr,
    ) -> PResult<ObservationExpr> {
        let first = next(self, depth)?;
        if !self.is_kw(kw) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.is_kw(kw) {
            self.bump();
            items.push(next(self, depth)?);
        }
        Ok(make(items))
    }

    fn obs_followed_by(&mut self, depth: usize) -> PResult<ObservationExpr> {
        self.obs_binary(
            depth,
            Keyword::FollowedBy,
            Self::obs_or,
            ObservationExpr::FollowedBy,
        )
    }

    fn obs_or(&mut self, depth: usize) -> PResult<ObservationExpr> {
        self.obs_binary(depth, Keyword::Or, Self::obs_and, ObservationExpr::Or)
    }

    fn obs_and(&mut self, depth: usize) -> PResult<ObservationExpr> {
        self.obs_binary(depth, Keyword::And, Self::obs_unit, ObservationExpr::And)
    }

    fn obs_unit(&mut self, depth: usize) -> PResult<ObservationExpr> {
        let at = self.span();
        self.check_depth(depth + 1, at)?;
        let mut e = match self.peek() {
            Tok::LBrack => {
                self.bump();
                let c = self.cmp_or(depth + 1)?;
                self.expect(Tok::RBrack, "AND, OR or ']'")?;
                ObservationExpr::Observation(c)
            }
            Tok::LParen => {
                self.bump();
                let inner = self.obs_followed_by(depth + 1)?;
                self.expect(Tok::RParen, "AND, OR, FOLLOWEDBY, a qualifier or ')'")?;
                ObservationExpr::Group(Box::new(inner))
            }
            _ => return self.err("'[' or '('"),
        };
        let mut d = depth + 1;
        while let Some(q) = self.qualifier()? {
            d += 1;
            self.check_depth(d, at)?;
            e = ObservationExpr::Qualified(Box::new(e), q);
        }
        Ok(e)
    }

    /// A qualifier after an observation expression (STIX 2.1 §9.7).
    fn qualifier(&mut self) -> PResult<Option<Qualifier>> {
        let q = match self.peek() {
            Tok::Kw(Keyword::Within) => {
                self.bump();
                let n = self.positive_number()?;
                self.expect_kw(Keyword::Seconds)?;
                Qualifier::Within(n)
            }
            Tok::Kw(Keyword::Repeats) => {
                self.bump();
                let n = match self.positive_number()? {
                    Number::Int(n) => n,
                    Number::Float(_) => {
                        self.pos -= 1;
                        return self.err("a positive integer");
                    }
                };
                self.expect_kw(Keyword::Times)?;
                Qualifier::Repeats(n)
            }
            Tok::Kw(Keyword::Start) => {
                self.bump();
                let a = self.timestamp()?;
                self.expect_kw(Keyword::Stop)?;
                let b = self.timestamp()?;
                Qualifier::StartStop(a, b)
            }
            _ => return Ok(None),
        };
        Ok(Some(q))
    }

    fn positive_number(&mut self) -> PResult<Number> {
        let sp = self.span();
        let negative = self.src[sp.start..sp.end].starts_with('-');
        let n = match self.peek() {
            Tok::Int(Some(v)) if !negative => Number::Int(*v),
            Tok::Float(v) if !negative => Number::Float(*v),
            Tok::Int(None) => return self.err("an integer that fits in 64 bits"),
            _ => return self.err("a positive integer or float"),
        };
        self.bump();
        Ok(n)
    }

    fn timestamp(&mut self) -> PResult<Timestamp> {
        if let Tok::Timestamp(t) = self.peek() {
            let t = t.clone();
            self.bump();
            Ok(t)
        } else {
            self.err("a timestamp literal t'YYYY-MM-DDTHH:MM:SS[.s]Z'")
        }
    }

    // ---- comparison expressions (STIX 2.1 §9.4) ----

    fn cmp_or(&mut self, depth: usize) -> PResult<ComparisonExpr> {
        let first = self.cmp_and(depth)?;
        if !self.is_kw(Keyword::Or) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.is_kw(Keyword::Or) {
            self.bump();
            items.push(self.cmp_and(depth)?);
        }
        Ok(ComparisonExpr::Or(items))
    }

    fn cmp_and(&mut self, depth: usize) -> PResult<ComparisonExpr> {
        let first = self.prop_test(depth)?;
        if !self.is_kw(Keyword::And) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.is_kw(Keyword::And) {
            self.bump();
            items.push(self.prop_test(depth)?);
        }
        Ok(ComparisonExpr::And(items))
    }

    fn prop_test(&mut self, depth: usize) -> PResult<ComparisonExpr> {
        let start = self.span();
        if *self.peek() == Tok::LParen {
            self.check_depth(depth + 1, start)?;
            self.bump();
            let inner = self.cmp_or(depth + 1)?;
            self.expect(Tok::RParen, "AND, OR or ')'")?;
            return Ok(ComparisonExpr::Group(Box::new(inner)));
        }
        let exists_kw = self.version == StixVersion::V2_1;
        // `[NOT] EXISTS path` (STIX 2.1 only).
        if exists_kw && (self.is_kw(Keyword::Exists) || self.is_kw(Keyword::Not)) {
            let negated = self.is_kw(Keyword::Not);
            if negated {
                self.bump();
            }
            self.expect_kw(Keyword::Exists)?;
            let path = self.object_path()?;
            let span = Span {
                start: start.start,
                end: self.toks[self.pos.saturating_sub(1)].span.end,
            };
            return Ok(ComparisonExpr::Test(PropTest {
                path,
                negated,
                op: CompOp::Exists,
                span,
            }));
        }
        let path = self.object_path()?;
        let negated = self.is_kw(Keyword::Not);
        if negated {
            self.bump();
        }
        let op = match self.peek().clone() {
            Tok::Eq => {
                self.bump();
                CompOp::Eq(self.literal(true)?)
            }
            Tok::Neq => {
                self.bump();
                CompOp::Neq(self.literal(true)?)
            }
            Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge => {
                let t = self.bump().tok;
                let l = self.literal(false)?;
                match t {
                    Tok::Lt => CompOp::Lt(l),
                    Tok::Le => CompOp::Le(l),
                    Tok::Gt => CompOp::Gt(l),
                    _ => CompOp::Ge(l),
                }
            }
            Tok::Kw(Keyword::In) => {
                self.bump();
                CompOp::In(self.set_literal()?)
            }
            Tok::Kw(
                k @ (Keyword::Like | Keyword::Matches | Keyword::IsSubset | Keyword::IsSuperset),
            ) => {
                self.bump();
                let s = match self.peek() {
                    Tok::Str(s) => s.clone(),
                    _ => return self.err("a string literal"),
                };
                self.bump();
                match k {
                    Keyword::Like => CompOp::Like(s),
                    Keyword::Matches => CompOp::Matches(s),
                    Keyword::IsSubset => CompOp::IsSubset(s),
                    _ => CompOp::IsSuperset(s),
                }
            }
            _ => {
                return self.err(if negated {
                    "a comparison operator"
                } else {
                    "a comparison operator (=, !=, <, <=, >, >=, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET) or NOT"
                });
            }
        };
        let span = Span {
            start: start.start,
            end: self.toks[self.pos.saturating_sub(1)].span.end,
        };
        Ok(ComparisonExpr::Test(PropTest {
            path,
            negated,
            op,
            span,
        }))
    }

    fn literal(&mut self, allow_bool: bool) -> PResult<Literal> {
        let l = match self.peek() {
            Tok::Int(Some(v)) => Literal::Int(*v),
            Tok::Int(None) => return self.err("an integer that fits in 64 bits"),
            Tok::Float(v) => Literal::Float(*v),
            Tok::Str(s) => Literal::Str(s.clone()),
            Tok::Bool(b) if allow_bool => Literal::Bool(*b),
            Tok::Binary(b) => Literal::Binary(b.clone()),
            Tok::Hex(b) => Literal::Hex(b.clone()),
            Tok::Timestamp(t) => Literal::Timestamp(t.clone()),
            _ if allow_bool => return self.err(LITERAL),
            _ => return self.err("an orderable literal (string, number, h'…', b'…' or t'…')"),
        };
        self.bump();
        Ok(l)
    }

    fn set_literal(&mut self) -> PResult<Vec<Literal>> {
        self.expect(Tok::LParen, "'('")?;
        let mut out = Vec::new();
        if *self.peek() == Tok::RParen {
            self.bump();
            return Ok(out);
        }
        loop {
            out.push(self.literal(true)?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    return Ok(out);
                }
                _ => return self.err("',' or ')'"),
            }
        }
    }

    /// `type:first(.key | .'key' | [n] | [*])*` (STIX 2.1 §9.3).
    fn object_path(&mut self) -> PResult<ObjectPath> {
        let object_type = match self.peek() {
            Tok::Ident(s) | Tok::IdentHyphen(s) => s.clone(),
            _ => return self.err("an object path (object-type:property)"),
        };
        self.bump();
        self.expect(Tok::Colon, "':'")?;
        let first = match self.peek() {
            Tok::Ident(s) | Tok::Str(s) => s.clone(),
            _ => {
                return self
                    .err("a property name (identifier without hyphens, or a quoted string)");
            }
        };
        self.bump();
        let mut steps = vec![PathStep::Key(first)];
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    match self.peek() {
                        Tok::Ident(s) | Tok::Str(s) => {
                            let s = s.clone();
                            self.bump();
                            steps.push(PathStep::Key(s));
                        }
                        _ => {
                            return self.err(
                                "a property name (identifier without hyphens, or a quoted string)",
                            );
                        }
                    }
                }
                Tok::LBrack => {
                    self.bump();
                    match self.peek() {
                        Tok::Int(Some(n)) => {
                            let n = *n;
                            self.bump();
                            steps.push(PathStep::Index(n));
                        }
                        Tok::Asterisk => {
                            self.bump();
                            steps.push(PathStep::AnyIndex);
                        }
                        _ => return self.err("a list index (an integer or '*')"),
                    }
                    self.expect(Tok::RBrack, "']'")?;
                }
                _ => break,
            }
        }
        Ok(ObjectPath { object_type, steps })
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at most {} bytes, depth {}",
            self.max_len, self.max_depth
        )
    }
}
