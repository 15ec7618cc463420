//! Differential test of the grammar against the reference validator.
//!
//! Valid patterns are mutated (pieces of the language inserted, deleted or
//! replaced at random places) so that the cases sit on the edge of the
//! grammar; both validators judge each in STIX 2.0 and 2.1 mode. Verdicts
//! must agree, except where we reject a pattern for a documented semantic
//! reason (REFERENCE-DIFFERENCES.md V1–V6: our message then does not name a
//! line and column) or the reference crashes (V8). `ANYAM_VALDIFF_CASES`
//! (default 1500 patterns) runs longer.

use crate::python;
use anyam_pattern::{StixVersion, parse, validate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const SEEDS: &[&str] = &[
    "[file:size = 1280]",
    "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
    "[network-traffic:dst_ref.value = '10.0.0.1' AND network-traffic:dst_port IN (80, 443)]",
    "[file:name LIKE '%.exe' OR file:name MATCHES '^a']",
    "[a:b = 1] AND [c:d != 'x'] OR [e:f > 2.5] FOLLOWEDBY [g:h <= t'2020-01-01T00:00:00Z']",
    "([a:b = 1] AND [a:c = h'0a']) WITHIN 5 SECONDS REPEATS 2 TIMES",
    "[a:b = b'AQID'] START t'2016-06-01T01:30:00Z' STOP t'2016-06-01T02:20:00Z'",
    "[x:list[*].k NOT = true AND x:'q k'[0] >= -3]",
    "[(a:b = 1 OR a:c = 2) AND NOT EXISTS a:d]",
    "[ipv4-addr:value ISSUBSET '10.0.0.0/8' OR ipv4-addr:value NOT ISSUPERSET '10.0.0.1']",
];

const PIECES: &[&str] = &[
    "[",
    "]",
    "(",
    ")",
    "x-a",
    "a-",
    ":",
    "name",
    ".",
    "'k'",
    "[*]",
    "[0]",
    "[-1]",
    "[+1]",
    "=",
    "!=",
    "<",
    "<=",
    "<>",
    "==",
    " IN ",
    " LIKE ",
    " MATCHES ",
    " EXISTS ",
    " NOT ",
    " AND ",
    " OR ",
    " FOLLOWEDBY ",
    " WITHIN ",
    " SECONDS ",
    " REPEATS ",
    " TIMES ",
    " START ",
    " STOP ",
    "'a'",
    "1",
    "-1",
    "0.5",
    "+3",
    ".5",
    "-.5",
    "01",
    "true",
    "h'0a'",
    "h'0'",
    "b'AQ=='",
    "b''",
    "b'AQ'",
    "t'2020-01-01T00:00:00Z'",
    "t'2020-13-01T00:00:00Z'",
    ",",
    "/* c */",
    "// c\n",
    "'\\''",
    "'\\a'",
    "\u{e9}",
    "\u{a0}",
    "LAST",
    " ",
    "[a:b=1]",
    "EXISTS",
    "*",
    "99999",
];

#[test]
fn validator_agrees_on_mutated_patterns() {
    let n: usize = std::env::var("ANYAM_VALDIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let mut r = StdRng::seed_from_u64(11);
    let mut cases = Vec::new();
    while cases.len() < n {
        let mut s: Vec<char> = SEEDS[r.gen_range(0..SEEDS.len())].chars().collect();
        for _ in 0..r.gen_range(1..3) {
            let pos = r.gen_range(0..=s.len());
            let piece: Vec<char> = PIECES[r.gen_range(0..PIECES.len())].chars().collect();
            let cut = (pos + r.gen_range(1..4)).min(s.len());
            match r.gen_range(0..3) {
                0 => drop(s.splice(pos..pos, piece)),
                1 => drop(s.drain(pos..cut)),
                _ => drop(s.splice(pos..cut, piece)),
            }
        }
        let s: String = s.into_iter().collect();
        // V10: the reference's textual pre-check rejects a leading comment.
        if s.trim_start_matches(|c: char| c == '(' || c.is_whitespace())
            .starts_with('/')
            || s.is_empty()
        {
            continue;
        }
        cases.push(s);
    }
    let requests: Vec<(String, StixVersion)> = cases
        .iter()
        .flat_map(|p| {
            [
                (p.clone(), StixVersion::V2_1),
                (p.clone(), StixVersion::V2_0),
            ]
        })
        .collect();
    let mut child = Command::new(python::interpreter())
        .arg(python::script("validator_worker.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the reference validator worker");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines: Vec<String> = requests
        .iter()
        .map(|(p, v)| json!({"pattern": p, "stix_version": if *v == StixVersion::V2_0 { "2.0" } else { "2.1" }}).to_string())
        .collect();
    let writer = std::thread::spawn(move || {
        for l in lines {
            writeln!(stdin, "{l}").expect("write to worker");
        }
    });
    let reference: Vec<String> = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .map(|l| l.expect("read worker"))
        .collect();
    writer.join().expect("writer");
    assert!(child.wait().expect("worker exit").success());
    assert_eq!(reference.len(), requests.len());
    let (mut valid, mut failures) = (0, Vec::new());
    for ((p, v), theirs) in requests.iter().zip(&reference) {
        let ours = validate(p, *v);
        let semantic_only = !ours.is_valid() && parse(p, *v).is_ok();
        let ours_s = if ours.is_valid() { "valid" } else { "invalid" };
        valid += usize::from(theirs == "valid");
        if theirs == "crash" || ours_s == theirs || (semantic_only && theirs == "valid") {
            continue;
        }
        failures.push(format!(
            "{v:?} {p:?}: reference {theirs}, ours {ours_s} {:?}",
            ours.errors.first()
        ));
    }
    eprintln!(
        "validator differential: {} cases, {valid} valid by the reference, {} disagreements",
        requests.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(valid * 20 >= requests.len(), "too few valid cases: {valid}");
}
