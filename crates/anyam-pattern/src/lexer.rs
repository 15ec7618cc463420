//! The lexer: turns a pattern's text into tokens with byte spans (STIX 2.1 §9.2, §9.3).
//!
//! It follows the longest-match rule of the OASIS grammar: at each position
//! the longest token wins, and between equally long candidates keywords and
//! literals win over identifiers. A literal that starts like `h'`, `b'` or
//! `t'` but is malformed falls back to the identifier `h`/`b`/`t` followed by
//! whatever comes next, exactly as the grammar's lexer does; the parser then
//! reports the error at that spot.

use crate::ast::Timestamp;

/// A half-open byte range in the pattern text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// Spans never take part in tree equality: a tree printed and parsed again
/// compares equal to the original although its spans differ.
impl PartialEq for Span {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// The keywords of STIX 2.1 §9. `EXISTS` is a keyword only in 2.1; in 2.0 it
/// is an ordinary identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    And,
    Or,
    Not,
    FollowedBy,
    Like,
    Matches,
    IsSuperset,
    IsSubset,
    Exists,
    Last,
    In,
    Start,
    Stop,
    Seconds,
    Within,
    Repeats,
    Times,
}

impl Keyword {
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::And => "AND",
            Keyword::Or => "OR",
            Keyword::Not => "NOT",
            Keyword::FollowedBy => "FOLLOWEDBY",
            Keyword::Like => "LIKE",
            Keyword::Matches => "MATCHES",
            Keyword::IsSuperset => "ISSUPERSET",
            Keyword::IsSubset => "ISSUBSET",
            Keyword::Exists => "EXISTS",
            Keyword::Last => "LAST",
            Keyword::In => "IN",
            Keyword::Start => "START",
            Keyword::Stop => "STOP",
            Keyword::Seconds => "SECONDS",
            Keyword::Within => "WITHIN",
            Keyword::Repeats => "REPEATS",
            Keyword::Times => "TIMES",
        }
    }

    /// The keyword spelled by `word`, if any (keywords are case-sensitive).
    pub fn from_word(word: &str, exists_is_keyword: bool) -> Option<Keyword> {
        Some(match word {
            "AND" => Keyword::And,
            "OR" => Keyword::Or,
            "NOT" => Keyword::Not,
            "FOLLOWEDBY" => Keyword::FollowedBy,
            "LIKE" => Keyword::Like,
            "MATCHES" => Keyword::Matches,
            "ISSUPERSET" => Keyword::IsSuperset,
            "ISSUBSET" => Keyword::IsSubset,
            "EXISTS" if exists_is_keyword => Keyword::Exists,
            "LAST" => Keyword::Last,
            "IN" => Keyword::In,
            "START" => Keyword::Start,
            "STOP" => Keyword::Stop,
            "SECONDS" => Keyword::Seconds,
            "WITHIN" => Keyword::Within,
            "REPEATS" => Keyword::Repeats,
            "TIMES" => Keyword::Times,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An integer literal; `None` when it does not fit in 64 bits.
    Int(Option<i64>),
    Float(f64),
    Hex(Vec<u8>),
    Binary(Vec<u8>),
    Str(String),
    Bool(bool),
    Timestamp(Timestamp),
    Kw(Keyword),
    /// `[a-zA-Z_][a-zA-Z0-9_]*`
    Ident(String),
    /// `[a-zA-Z_][a-zA-Z0-9_-]*` with at least one hyphen.
    IdentHyphen(String),
    Eq,
    Neq,
    Lt,
    Le,
    Gt,
    Ge,
    Colon,
    Dot,
    Comma,
    LParen,
    RParen,
    LBrack,
    RBrack,
    Asterisk,
    /// A token the grammar knows but never accepts (`'`, `+`, `-`, `^`, `/`)
    /// or a character it does not know at all.
    Stray(char),
    Eof,
}

impl Tok {
    /// How the token is named in "expected …"/"found …" messages.
    pub fn describe(&self, text: &str) -> String {
        match self {
            Tok::Eof => "end of pattern".to_string(),
            Tok::Kw(k) => format!("keyword {}", k.as_str()),
            Tok::Stray(c) if c.is_control() || c.is_whitespace() => format!("character {c:?}"),
            _ => {
                let mut shown: String = text.chars().take(40).collect();
                if text.chars().count() > 40 {
                    shown.push('…');
                }
                format!("'{shown}'")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Whitespace as the grammar defines it (its `WS` rule).
fn is_ws(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\r'
            | '\n'
            | '\u{0B}'
            | '\u{0C}'
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

pub struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    exists_is_keyword: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, exists_is_keyword: bool) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            pos: 0,
            exists_is_keyword,
        }
    }

    fn peek_at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    /// Skips whitespace and comments. An unterminated `/*` is not a comment
    /// (the grammar's lexer then sees `/` and `*`).
    fn skip_trivia(&mut self) {
        loop {
            let rest = &self.src[self.pos..];
            if let Some(c) = rest.chars().next()
                && is_ws(c)
            {
                self.pos += c.len_utf8();
                continue;
            }
            if rest.starts_with("//") {
                let len = rest.find(['\r', '\n']).unwrap_or(rest.len());
                self.pos += len;
                continue;
            }
            if rest.starts_with("/*")
                && let Some(end) = rest[2..].find("*/")
            {
                self.pos += end + 4;
                continue;
            }
            return;
        }
    }

    pub fn next_token(&mut self) -> Token {
        self.skip_trivia();
        let start = self.pos;
        let tok = self.scan();
        Token {
            tok,
            span: Span {
                start,
                end: self.pos,
            },
        }
    }

    fn scan(&mut self) -> Tok {
        let start = self.pos;
        let Some(c) = self.src[start..].chars().next() else {
            return Tok::Eof;
        };
        let b = self.bytes[start];
        match b {
            b'0'..=b'9' | b'.' | b'+' | b'-' => {
                if let Some(t) = self.number() {
                    return t;
                }
            }
            b'\'' => {
                if let Some((s, end)) = self.string_at(start) {
                    self.pos = end;
                    return Tok::Str(s);
                }
            }
            b'h' | b'b' | b't' if self.peek_at(start + 1) == Some(b'\'') => {
                let lit = match b {
                    b'h' => self.hex(),
                    b'b' => self.binary(),
                    _ => self.timestamp(),
                };
                if let Some(t) = lit {
                    return t;
                }
            }
            _ => {}
        }
        if b.is_ascii_alphabetic() || b == b'_' {
            let mut end = start + 1;
            let mut hyphen = false;
            while let Some(&x) = self.bytes.get(end) {
                if x.is_ascii_alphanumeric() || x == b'_' {
                    end += 1;
                } else if x == b'-' {
                    hyphen = true;
                    end += 1;
                } else {
                    break;
                }
            }
            self.pos = end;
            let word = &self.src[start..end];
            if hyphen {
                return Tok::IdentHyphen(word.to_string());
            }
            if let Some(k) = Keyword::from_word(word, self.exists_is_keyword) {
                return Tok::Kw(k);
            }
            return match word {
                "true" => Tok::Bool(true),
                "false" => Tok::Bool(false),
                _ => Tok::Ident(word.to_string()),
            };
        }
        let two = self.src[start..].get(..2);
        let (tok, len) = match (b, two) {
            (_, Some("==")) => (Tok::Eq, 2),
            (_, Some("!=")) | (_, Some("<>")) => (Tok::Neq, 2),
            (_, Some("<=")) => (Tok::Le, 2),
            (_, Some(">=")) => (Tok::Ge, 2),
            (b'=', _) => (Tok::Eq, 1),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', _) => (Tok::Gt, 1),
            (b':', _) => (Tok::Colon, 1),
            (b'.', _) => (Tok::Dot, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBrack, 1),
            (b']', _) => (Tok::RBrack, 1),
            (b'*', _) => (Tok::Asterisk, 1),
            _ => (Tok::Stray(c), c.len_utf8()),
        };
        self.pos = start + len;
        tok
    }

    /// `IntPos`, `IntNeg`, `FloatPos`, `FloatNeg`: an optional sign, then
    /// either `0`/`[1-9][0-9]*` or `[0-9]*.[0-9]+` (the longer wins).
    fn number(&mut self) -> Option<Tok> {
        let start = self.pos;
        let mut i = start;
        if matches!(self.peek_at(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits_start = i;
        while matches!(self.peek_at(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        let int_digits = &self.src[digits_start..i];
        // Float: digits, '.', at least one digit.
        if self.peek_at(i) == Some(b'.') && matches!(self.peek_at(i + 1), Some(b'0'..=b'9')) {
            let mut j = i + 1;
            while matches!(self.peek_at(j), Some(b'0'..=b'9')) {
                j += 1;
            }
            let v: f64 = self.src[start..j].parse().ok()?;
            self.pos = j;
            return Some(Tok::Float(v));
        }
        if int_digits.is_empty() {
            return None;
        }
        // Integer: `0` alone, or no leading zero.
        let len = if int_digits.starts_with('0') {
            1
        } else {
            int_digits.len()
        };
        let end = digits_start + len;
        self.pos = end;
        Some(Tok::Int(self.src[start..end].parse::<i64>().ok()))
    }

    /// A string literal starting at `start` (a quote): only `\'` and `\\` are
    /// escapes (STIX 2.1 §9.3); any other backslash makes it no string.
    /// Returns the decoded text and the end offset.
    fn string_at(&self, start: usize) -> Option<(String, usize)> {
        let mut out = String::new();
        let mut i = start + 1;
        loop {
            let c = self.src[i..].chars().next()?;
            match c {
                '\'' => return Some((out, i + 1)),
                '\\' => match self.peek_at(i + 1) {
                    Some(b'\'') => {
                        out.push('\'');
                        i += 2;
                    }
                    Some(b'\\') => {
                        out.push('\\');
                        i += 2;
                    }
                    _ => return None,
                },
                _ => {
                    out.push(c);
                    i += c.len_utf8();
                }
            }
        }
    }

    fn quoted_ascii(&self) -> Option<(&'a str, usize)> {
        let open = self.pos + 2;
        let close = open + self.src[open..].find('\'')?;
        Some((&self.src[open..close], close + 1))
    }

    fn hex(&mut self) -> Option<Tok> {
        let (body, end) = self.quoted_ascii()?;
        if body.len() % 2 != 0 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let bytes = hex::decode(body).ok()?;
        self.pos = end;
        Some(Tok::Hex(bytes))
    }

    fn binary(&mut self) -> Option<Tok> {
        use base64::Engine as _;
        let (body, end) = self.quoted_ascii()?;
        let b = body.as_bytes();
        // At least one group of four; only the last may carry padding.
        if b.is_empty() || b.len() % 4 != 0 {
            return None;
        }
        let pad = b.iter().rev().take_while(|&&x| x == b'=').count();
        if pad > 2 || !b[..b.len() - pad].iter().all(|&x| is_b64(x)) {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()
            .or_else(|| {
                // The grammar does not demand canonical padding bits; decode leniently.
                base64::engine::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::GeneralPurposeConfig::new()
                        .with_decode_allow_trailing_bits(true),
                )
                .decode(body)
                .ok()
            })?;
        self.pos = end;
        Some(Tok::Binary(bytes))
    }

    fn timestamp(&mut self) -> Option<Tok> {
        let (body, end) = self.quoted_ascii()?;
        let ts = Timestamp::parse_literal(body)?;
        self.pos = end;
        Some(Tok::Timestamp(ts))
    }
}
