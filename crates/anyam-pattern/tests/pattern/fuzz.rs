//! Stable-toolchain fuzzing of the parser, validator and matcher.
//!
//! Random inputs — raw strings, and token soups built from the pattern
//! language's own pieces so that many inputs get deep into the parser and
//! matcher — must never panic, and each must finish within a time bound
//! (parse + validate + match of one input under `TIME_BOUND` in a debug
//! build). Memory is bounded by construction: the parser's size and depth
//! limits and the matcher's step budget. `ANYAM_FUZZ_CASES` (default 3000)
//! runs longer, e.g. `ANYAM_FUZZ_CASES=1000000 cargo test --release -p
//! anyam-pattern --test pattern fuzz`.

use anyam_pattern::{Matcher, Observations, StixVersion, parse, validate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::{Duration, Instant};

const TIME_BOUND: Duration = Duration::from_secs(2);

const PIECES: &[&str] = &[
    "[",
    "]",
    "(",
    ")",
    "file",
    "x-a",
    ":",
    "name",
    ".",
    "'k'",
    "[*]",
    "[0]",
    "[-1]",
    "_ref",
    "parent_ref",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "<>",
    "==",
    " IN ",
    " LIKE ",
    " MATCHES ",
    " ISSUBSET ",
    " ISSUPERSET ",
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
    "'%a_'",
    "'(a+)+$'",
    "'(?<=a)b'",
    "'10.0.0.0/8'",
    "'::1/128'",
    "1",
    "-1",
    "0.5",
    "+3",
    "true",
    "h'0a'",
    "b'AQ=='",
    "t'2020-01-01T00:00:00Z'",
    "t'2020-02-30T00:00:60Z'",
    ",",
    "/* c */",
    "// c\n",
    "'\\''",
    "'\\\\'",
    "\u{e9}",
    "99999999999999999999",
    "\n",
    "*",
];

fn observations() -> serde_json::Value {
    json!([{"type": "bundle", "id": "bundle--1", "objects": [
        {"type": "observed-data", "id": "observed-data--1", "number_observed": 3,
         "first_observed": "2020-01-01T00:00:00Z", "last_observed": "2020-01-01T00:00:05Z",
         "object_refs": ["file--1", "file--2"]},
        {"type": "file", "id": "file--1", "name": "a", "k": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "parent_ref": "file--2",
         "payload_bin": "AQ==", "x_hex": "0a", "list": [1, "a", null, {"name": "a"}]},
        {"type": "x-a", "id": "file--2", "name": "10.0.0.1", "k": 1}]}])
}

fn exercise(input: &str, obs: &Observations) {
    let start = Instant::now();
    for version in [StixVersion::V2_1, StixVersion::V2_0] {
        if let Ok(tree) = parse(input, version) {
            // The canonical form parses back to the same tree.
            let printed = tree.to_string();
            assert_eq!(
                parse(&printed, version).as_ref(),
                Ok(&tree),
                "round trip of {input:?} via {printed:?}"
            );
        }
        let _ = validate(input, version);
        if let Ok(m) = Matcher::new(input, version) {
            let _ = m.matches(obs);
        }
    }
    assert!(
        start.elapsed() < TIME_BOUND,
        "{input:?} took {:?}",
        start.elapsed()
    );
}

#[test]
fn fuzz_parser_validator_matcher() {
    let cases: usize = std::env::var("ANYAM_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let mut r = StdRng::seed_from_u64(7);
    let obs = Observations::from_json(&observations(), StixVersion::V2_1).unwrap();
    for i in 0..cases {
        let input: String = if i % 4 == 0 {
            let n = r.gen_range(0..40);
            (0..n)
                .map(|_| char::from_u32(r.gen_range(0..0x300)).unwrap_or('x'))
                .collect()
        } else {
            let n = r.gen_range(1..30);
            (0..n)
                .map(|_| PIECES[r.gen_range(0..PIECES.len())])
                .collect()
        };
        exercise(&input, &obs);
    }
    // Shapes a hostile pattern might take.
    let hostile = [
        format!("{}[a:b=1]{}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("[{}a:b=1{}]", "(".repeat(100_000), ")".repeat(100_000)),
        vec!["[file:name = 'a']"; 40].join(" AND "),
        format!(
            "([file:name = 'a'] AND [file:name MATCHES '(a+)+$']) REPEATS {} TIMES",
            1000
        ),
        "[file:k MATCHES '(a|a)*(?=c)']".to_string(),
        "[file:k MATCHES '^(a+)+$\\\\1']".to_string(),
    ];
    for h in &hostile {
        exercise(h, &obs);
    }
}
