//! The regular-expression dialect of `MATCHES` and the translation of `LIKE` (STIX 2.1 §9.4).
//!
//! The specification names PCRE. We implement the dialect the OASIS matcher
//! accepts (Python's `re`, itself close to PCRE) on two engines:
//!
//! * the linear-time `regex` crate, used for every pattern it can express —
//!   no catastrophic backtracking from a foreign indicator;
//! * `fancy-regex`, only for patterns that need lookaround or
//!   backreferences, with a backtrack limit: a match that would exceed it is
//!   an evaluation error, never an unbounded run.
//!
//! Before compiling, a pattern is translated: `$` (outside classes, without
//! the `m` flag) also matches before a final newline, as in PCRE and Python;
//! `\Z` means end of text; `[` `&` `~` inside a class are literal (the `regex`
//! crate would read nested classes and set operations); a `{` that does not
//! start a valid counted repetition is literal, and `{,n}` means `{0,n}`.
//! Values and patterns are compared in Unicode NFC. Binary values (from
//! `_hex`/`_bin` properties) are searched byte-wise when every character of
//! the pattern is below U+0100, each character standing for its byte.
//! Known remaining differences from PCRE: no possessive quantifiers, atomic
//! groups or recursion; `\w`, `\d`, `\s` are Unicode-aware on text values.

use unicode_normalization::UnicodeNormalization as _;

/// Upper bound on backtracking steps for a pattern that needs the
/// backtracking engine.
pub const BACKTRACK_LIMIT: usize = 100_000;

/// The compiled-size limit of the linear engine: `regex::Regex::new`'s
/// default, named here so that validation ([`Compiled::check`]) applies the
/// same limit as matching.
const LINEAR_SIZE_LIMIT: usize = 10 * (1 << 20);

/// A compiled `MATCHES` operand.
#[derive(Debug)]
pub struct Compiled {
    text: Engine,
    /// The byte-wise form, when every pattern character is below U+0100.
    bytes: Option<BytesEngine>,
}

#[derive(Debug)]
enum Engine {
    Linear(regex::Regex),
    Backtrack(fancy_regex::Regex),
}

#[derive(Debug)]
enum BytesEngine {
    Linear(regex::bytes::Regex),
    /// Bytes are mapped one-to-one onto U+0000..U+00FF and searched as text.
    Backtrack(fancy_regex::Regex),
}

/// Why a pattern did not compile, or an evaluation that hit the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexError(pub String);

impl std::fmt::Display for RegexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn has_multiline_flag(p: &str) -> bool {
    let b = p.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == b'(' && b[i + 1] == b'?' {
            let mut j = i + 2;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                if b[j] == b'm' {
                    return true;
                }
                j += 1;
            }
        }
        i += 1;
    }
    false
}

/// Translates the Python/PCRE-style pattern into `regex`-crate syntax.
/// With `bytes`, characters above ASCII become `\xHH` byte escapes.
fn translate(p: &str, bytes: bool) -> String {
    let multiline = has_multiline_flag(p);
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut in_class = false;
    let mut class_start = false;
    let mut i = 0;
    let push_char = |out: &mut String, c: char| {
        if bytes && !c.is_ascii() {
            out.push_str(&format!("\\x{:02X}", c as u32));
        } else {
            out.push(c);
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let at_class_start = class_start;
        class_start = false;
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    out.push('\\');
                    break;
                };
                if !n.is_ascii() {
                    push_char(&mut out, n);
                } else if n == 'Z' && !in_class {
                    out.push_str("\\z");
                } else {
                    out.push('\\');
                    out.push(n);
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                i += 1;
                // A `]` first in a class is literal in both dialects.
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            '[' | '&' | '~' if in_class => out.push('\\'),
            ']' if in_class && !at_class_start => in_class = false,
            '$' if !in_class && !multiline => {
                out.push_str("(?:\\n?\\z)");
                i += 1;
                continue;
            }
            '{' if !in_class => {
                let rest: String = chars[i + 1..].iter().take(24).collect();
                if let Some(end) = rest.find('}') {
                    let body = &rest[..end];
                    let (lo, hi) = body.split_once(',').unwrap_or((body, ""));
                    let valid = body.bytes().all(|b| b.is_ascii_digit() || b == b',')
                        && body.matches(',').count() <= 1
                        && (!lo.is_empty() || (body.contains(',') && !hi.is_empty()));
                    if valid {
                        out.push('{');
                        if lo.is_empty() {
                            out.push('0');
                        }
                        out.push_str(body);
                        out.push('}');
                        i += end + 2;
                        continue;
                    }
                }
                out.push_str("\\{");
                i += 1;
                continue;
            }
            '}' if !in_class => {
                out.push_str("\\}");
                i += 1;
                continue;
            }
            _ => {}
        }
        push_char(&mut out, c);
        i += 1;
    }
    out
}

impl Compiled {
    /// Compiles a `MATCHES` operand (NFC-normalised first).
    pub fn new(pattern: &str) -> Result<Compiled, RegexError> {
        let nfc: String = pattern.nfc().collect();
        let text = Self::engine(&translate(&nfc, false))?;
        let bytes = if nfc.chars().all(|c| (c as u32) < 256) {
            let t = format!("(?-u){}", translate(&nfc, true));
            match regex::bytes::Regex::new(&t) {
                Ok(r) => Some(BytesEngine::Linear(r)),
                Err(_) => Some(BytesEngine::Backtrack(Self::fancy(&translate(
                    &nfc, false,
                ))?)),
            }
        } else {
            None
        };
        Ok(Compiled { text, bytes })
    }

    /// Whether a `MATCHES` operand compiles, as [`Compiled::new`] would
    /// decide, without building what matching needs. The linear engine's
    /// verdict comes from its parser and its NFA compiler with the same
    /// syntax settings and size limit as `regex::Regex::new` (no DFA is
    /// built: determinizing is most of a compile's cost and cannot fail
    /// once the NFA is built), so validating an indicator costs
    /// microseconds, not a full compile.
    pub fn check(pattern: &str) -> Result<(), RegexError> {
        let nfc: String = pattern.nfc().collect();
        let t = translate(&nfc, false);
        let linear = regex_automata::meta::Regex::builder()
            .configure(
                regex_automata::meta::Config::new()
                    .nfa_size_limit(Some(LINEAR_SIZE_LIMIT))
                    .onepass(false)
                    .backtrack(false)
                    .hybrid(false)
                    .dfa(false),
            )
            .build(&t);
        match linear {
            Ok(_) => Ok(()),
            Err(linear_err) => match Self::fancy(&t) {
                Ok(_) => Ok(()),
                Err(_) => Err(RegexError(linear_err.to_string())),
            },
        }
    }

    fn fancy(t: &str) -> Result<fancy_regex::Regex, RegexError> {
        fancy_regex::RegexBuilder::new(t)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
            .map_err(|e| RegexError(e.to_string()))
    }

    fn engine(t: &str) -> Result<Engine, RegexError> {
        match regex::RegexBuilder::new(t)
            .size_limit(LINEAR_SIZE_LIMIT)
            .build()
        {
            Ok(r) => Ok(Engine::Linear(r)),
            Err(linear_err) => match Self::fancy(t) {
                Ok(r) => Ok(Engine::Backtrack(r)),
                Err(_) => Err(RegexError(linear_err.to_string())),
            },
        }
    }

    /// Searches a text value (NFC-normalised first).
    pub fn search_str(&self, value: &str) -> Result<bool, RegexError> {
        let nfc: String = value.nfc().collect();
        match &self.text {
            Engine::Linear(r) => Ok(r.is_match(&nfc)),
            Engine::Backtrack(r) => r
                .is_match(&nfc)
                .map_err(|e| RegexError(format!("MATCHES evaluation: {e}"))),
        }
    }

    /// Searches a binary value; `None` when the pattern has characters
    /// beyond U+00FF and so cannot apply to bytes.
    pub fn search_bytes(&self, value: &[u8]) -> Result<Option<bool>, RegexError> {
        match &self.bytes {
            None => Ok(None),
            Some(BytesEngine::Linear(r)) => Ok(Some(r.is_match(value))),
            Some(BytesEngine::Backtrack(r)) => {
                let latin1: String = value.iter().map(|&b| char::from(b)).collect();
                r.is_match(&latin1)
                    .map(Some)
                    .map_err(|e| RegexError(format!("MATCHES evaluation: {e}")))
            }
        }
    }
}

/// The expression a `MATCHES` operand runs as on text values (NFC-normalised
/// and translated, see the module docs), when the linear-time engine takes
/// it; `None` when it needs the backtracking engine. An indexed engine
/// compiles many of these into one set automaton.
pub fn linear_text(pattern: &str) -> Option<String> {
    let nfc: String = pattern.nfc().collect();
    let t = translate(&nfc, false);
    regex_syntax::ParserBuilder::new()
        .build()
        .parse(&t)
        .is_ok()
        .then_some(t)
}

/// Whether a `MATCHES` operand is valid for the linear-time engine, by
/// parsing alone. `false` does not mean invalid: the pattern may need the
/// backtracking engine.
pub fn syntax_ok(pattern: &str) -> bool {
    let nfc: String = pattern.nfc().collect();
    regex_syntax::ParserBuilder::new()
        .build()
        .parse(&translate(&nfc, false))
        .is_ok()
}

/// Substrings of which every text value a `MATCHES` operand matches
/// contains at least one, or `None` when no useful set is known (the
/// pattern needs the backtracking engine, may match the empty string, or
/// the set would be too large). An indexed engine searches values for these
/// with a multi-string automaton before running the full expression. The
/// literals are those of the translated, NFC-normalised expression, so they
/// are to be searched for in NFC-normalised values.
///
/// Three sources are tried and the most selective set kept (the one whose
/// shortest literal is longest): the prefixes every match starts with, the
/// suffixes every match ends with, and literals required anywhere inside
/// (`^https?://(www\.)?evil\.[a-z]+/` must contain `evil.`, which neither
/// its prefixes nor its suffixes show).
pub fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let nfc: String = pattern.nfc().collect();
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(&translate(&nfc, false))
        .ok()?;
    let mut candidates: Vec<Vec<Vec<u8>>> = Vec::new();
    // A match starts with one of the prefix literals (or ends with one of
    // the suffix literals), so one of them occurs in the value; an empty
    // literal would prove nothing.
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let mut seq = Extractor::new().kind(kind).extract(&hir);
        seq.optimize_for_prefix_by_preference();
        let Some(lits) = seq.literals() else { continue };
        if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
            continue;
        }
        candidates.push(lits.iter().map(|l| l.as_bytes().to_vec()).collect());
    }
    if let Some(inner) = inner_literals(&hir) {
        candidates.push(inner);
    }
    let score = |set: &Vec<Vec<u8>>| {
        (
            set.iter().map(Vec::len).min().unwrap_or(0),
            std::cmp::Reverse(set.len()),
        )
    };
    candidates
        .into_iter()
        .filter(|set| !set.is_empty() && set.len() <= 64)
        .max_by_key(score)
}

/// Literals one of which every match of `h` contains, found by structure:
/// a literal is required; a concatenation requires what any of its parts
/// requires (the best part is kept); an alternation requires one of what
/// each branch requires; a repetition at least once requires what its body
/// requires. Classes, anchors and optional parts require nothing.
fn inner_literals(h: &regex_syntax::hir::Hir) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::HirKind;
    match h.kind() {
        HirKind::Literal(l) => (!l.0.is_empty()).then(|| vec![l.0.to_vec()]),
        HirKind::Capture(c) => inner_literals(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => inner_literals(&r.sub),
        HirKind::Concat(parts) => parts.iter().filter_map(inner_literals).max_by_key(|set| {
            (
                set.iter().map(Vec::len).min().unwrap_or(0),
                std::cmp::Reverse(set.len()),
            )
        }),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(inner_literals(b)?);
                if all.len() > 64 {
                    return None;
                }
            }
            Some(all)
        }
        _ => None,
    }
}

/// A compiled `LIKE` operand: `%` any run, `_` any one character, anchored
/// at both ends (STIX 2.1 §9.4). As in the reference, neither wildcard
/// crosses a newline, and a single final newline in the value is ignored.
#[derive(Debug)]
pub struct Like {
    re: regex::Regex,
    /// Whether every pattern character is below U+0100 (binary values are
    /// then decoded as UTF-8 and compared as text).
    pub applies_to_bytes: bool,
}

impl Like {
    pub fn new(pattern: &str) -> Result<Like, RegexError> {
        let nfc: String = pattern.nfc().collect();
        let mut re = String::from("\\A(?:");
        for c in nfc.chars() {
            match c {
                '%' => re.push_str(".*"),
                '_' => re.push('.'),
                c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
        }
        re.push_str(")\\n?\\z");
        let applies_to_bytes = nfc.chars().all(|c| (c as u32) < 256);
        let re = regex::RegexBuilder::new(&re)
            .size_limit(1 << 24)
            .build()
            .map_err(|e| RegexError(e.to_string()))?;
        Ok(Like {
            re,
            applies_to_bytes,
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        let nfc: String = value.nfc().collect();
        self.re.is_match(&nfc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validation's cheap check and the full compile agree: on plain,
    /// backtracking-only, malformed and oversized expressions.
    #[test]
    fn check_agrees_with_compile() {
        for p in [
            "^abc$",
            "a{,2}b",
            "[[]",
            "(?<=a)b",
            r"(a)\1",
            r"^https?://(www\.)?evil\.[a-z]+/",
            "(unclosed",
            "a**",
            r"(?<=a+)b",
            "(a{1000}){1000}",
            r"\p{Greek}+\w{100}",
            "",
        ] {
            let full = Compiled::new(p).map(|_| ()).map_err(|e| e.0);
            let cheap = Compiled::check(p).map_err(|e| e.0);
            assert_eq!(
                full.is_ok(),
                cheap.is_ok(),
                "{p:?}: compile {full:?}, check {cheap:?}"
            );
        }
        assert!(
            Compiled::check("(a{1000}){1000}").is_err(),
            "the size limit applies"
        );
        assert!(Compiled::check("(unclosed").is_err());
    }

    #[test]
    fn dialect() {
        let m = |p: &str, v: &str| Compiled::new(p).unwrap().search_str(v).unwrap();
        assert!(m("^abc$", "abc\n"));
        assert!(!m("^abc$", "abc\n\n"));
        assert!(m("a{,2}b", "aab"));
        assert!(m("a{b", "a{b"));
        assert!(m("[[]", "["));
        assert!(m("(?<=a)b", "ab"));
        assert!(!m("(?<=a)b", "cb"));
        assert!(m(r"(\w)\1", "xx"));
        assert!(m(r"abc\Z", "xabc"));
        let lits = |p: &str| required_literals(p);
        assert_eq!(lits("evil\\.com$"), Some(vec![b"evil.com".to_vec()]));
        assert!(lits("^(a|b)+").is_some());
        assert_eq!(lits(".*"), None);
        // Required inside, where prefixes and suffixes say little.
        let inner = |p: &str| {
            lits(p).map(|v| {
                v.iter()
                    .map(|x| String::from_utf8_lossy(x).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            inner("^https?://(www\\.)?evil-c9e348\\.[a-z]+/"),
            Some(vec!["evil-c9e348.".to_string()])
        );
        assert_eq!(
            inner("^([a-z]+\\.)?service-8695[0-9a-f]{2}\\."),
            Some(vec!["service-8695".to_string()])
        );
        // Whatever the source, a set holds literals every match contains.
        let set = inner("[0-9]+x(foo|barbaz)").unwrap();
        for m in ["7xfoo", "12xbarbaz", "a90xfoo!"] {
            assert!(set.iter().any(|l| m.contains(l.as_str())), "{m}: {set:?}");
        }
        assert_eq!(lits("(?<=a)b"), None);
        let l = Like::new("he%o_").unwrap();
        assert!(l.matches("hello!"));
        assert!(!l.matches("hell"));
    }
}
