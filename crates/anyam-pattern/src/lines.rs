//! The line protocols of `anyam pattern validate|match|check`, over generic readers and writers.
//!
//! `validate_lines` reads JSON lines `{"pattern": "...", "stix_version": "2.1"}`
//! and writes one JSON line per input line: `{"valid": true}` or
//! `{"valid": false, "error": "..."}`, with a `warnings` array when there are
//! any. `match_lines` reads `{"pattern": "...", "observations": [...],
//! "stix_version": "2.1"}` and writes `match`, `nomatch` or `error: <message>`.
//! A malformed input line (not JSON, no `pattern`) still gets exactly one
//! output line naming its line number; nothing is skipped. Blank lines are
//! input lines too and get an error line.

use crate::{Error, Matcher, StixVersion, validate};
use std::io::{BufRead, Write};

/// Counts over one run of a line protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Input lines read.
    pub lines: u64,
    /// Lines whose answer was positive (`valid: true`, `match`).
    pub ok: u64,
    /// Lines answered negatively (`valid: false`, `nomatch`).
    pub negative: u64,
    /// Lines answered with an error (malformed input, or `error:` in match).
    pub errors: u64,
}

struct Request {
    pattern: String,
    version: StixVersion,
    observations: Option<serde_json::Value>,
}

fn read_request(line: &str, n: u64, want_observations: bool) -> Result<Request, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("line {n}: not a JSON object: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("line {n}: not a JSON object"))?;
    let pattern = match obj.get("pattern") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("line {n}: \"pattern\" is not a string")),
        None => return Err(format!("line {n}: missing \"pattern\"")),
    };
    let version = match obj.get("stix_version") {
        None | Some(serde_json::Value::Null) => StixVersion::V2_1,
        Some(serde_json::Value::String(s)) => StixVersion::parse(s)
            .ok_or_else(|| format!("line {n}: unsupported \"stix_version\" {s:?} (2.0 or 2.1)"))?,
        Some(_) => return Err(format!("line {n}: \"stix_version\" is not a string")),
    };
    let observations = if want_observations {
        match obj.get("observations") {
            Some(o) => Some(o.clone()),
            None => return Err(format!("line {n}: missing \"observations\"")),
        }
    } else {
        None
    };
    Ok(Request {
        pattern,
        version,
        observations,
    })
}

/// Reads lines, tolerating invalid UTF-8 (reported as a malformed line).
fn for_each_line(
    mut input: impl BufRead,
    mut f: impl FnMut(u64, Result<&str, String>) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(n);
        }
        n += 1;
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        match std::str::from_utf8(&buf) {
            Ok(s) => f(n, Ok(s))?,
            Err(e) => f(n, Err(format!("line {n}: not UTF-8: {e}")))?,
        }
    }
}

/// `anyam pattern validate`.
pub fn validate_lines(input: impl BufRead, mut output: impl Write) -> std::io::Result<Summary> {
    let mut s = Summary::default();
    s.lines = for_each_line(input, |n, line| {
        let out = match line.and_then(|l| read_request(l, n, false)) {
            Err(msg) => {
                s.errors += 1;
                serde_json::json!({"valid": false, "error": msg})
            }
            Ok(req) => {
                let v = validate(&req.pattern, req.version);
                let mut o = serde_json::Map::new();
                o.insert("valid".into(), v.is_valid().into());
                if v.is_valid() {
                    s.ok += 1;
                } else {
                    s.negative += 1;
                    let msg: Vec<String> = v.errors.iter().map(ToString::to_string).collect();
                    o.insert("error".into(), msg.join("; ").into());
                }
                if !v.warnings.is_empty() {
                    let w: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
                    o.insert("warnings".into(), w.into());
                }
                serde_json::Value::Object(o)
            }
        };
        writeln!(output, "{out}")
    })?;
    output.flush()?;
    Ok(s)
}

/// Decides one match request; the line protocol's answer without the newline.
pub fn match_one(
    pattern: &str,
    observations: &serde_json::Value,
    version: StixVersion,
) -> Result<bool, Error> {
    let m = Matcher::new(pattern, version)?;
    let obs = crate::Observations::from_json(observations, version)?;
    m.matches(&obs)
}

/// `anyam pattern match`.
pub fn match_lines(input: impl BufRead, mut output: impl Write) -> std::io::Result<Summary> {
    let mut s = Summary::default();
    s.lines = for_each_line(input, |n, line| {
        let answer = match line.and_then(|l| read_request(l, n, true)) {
            Err(msg) => Err(msg),
            Ok(req) => match_one(
                &req.pattern,
                req.observations
                    .as_ref()
                    .unwrap_or(&serde_json::Value::Null),
                req.version,
            )
            .map_err(|e| e.to_string()),
        };
        match answer {
            Ok(true) => {
                s.ok += 1;
                writeln!(output, "match")
            }
            Ok(false) => {
                s.negative += 1;
                writeln!(output, "nomatch")
            }
            Err(msg) => {
                s.errors += 1;
                // One line per input line, whatever the message holds.
                writeln!(output, "error: {}", msg.replace(['\n', '\r'], " "))
            }
        }
    })?;
    output.flush()?;
    Ok(s)
}

/// `anyam pattern check`: the canonical pattern and any warnings, or the
/// error with a caret under its column.
pub fn check(pattern: &str, version: StixVersion) -> (String, bool) {
    match crate::parse(pattern, version) {
        Err(e) => {
            let line_text = pattern.lines().nth(e.line.saturating_sub(1)).unwrap_or("");
            let caret = format!("{}^", " ".repeat(e.column.saturating_sub(1)));
            (format!("{line_text}\n{caret}\nerror: {e}\n"), false)
        }
        Ok(tree) => {
            let v = validate(pattern, version);
            let mut out = format!("{tree}\n");
            for d in &v.errors {
                out.push_str(&format!("error: {d}\n"));
            }
            for d in &v.warnings {
                out.push_str(&format!("warning: {d}\n"));
            }
            if v.is_valid() {
                out.push_str("valid\n");
            }
            (out, v.is_valid())
        }
    }
}
