//! Differential test against the OASIS reference matcher on random cases.
//!
//! A seeded generator builds patterns (every comparison operator and its
//! `NOT` form, `AND`/`OR` in brackets, `AND`/`OR`/`FOLLOWEDBY` between
//! observations, every qualifier, every literal kind, reference paths, list
//! indexes and `[*]`) and observations whose values come from small pools so
//! that a good share of cases match. Both engines decide each case; the
//! verdicts (match, nomatch, error) must be identical. The generator stays
//! clear of the documented differences (REFERENCE-DIFFERENCES.md): no IPv6 or
//! /0 blocks, no plain-address ISSUPERSET values, no EXISTS, whole-second
//! timestamps.
//!
//! `ANYAM_DIFF_CASES` (default 10000) and `ANYAM_DIFF_SEED` set the run; a
//! soak is the same test with more cases, e.g.
//! `ANYAM_DIFF_CASES=1000000 cargo test --release -p anyam-pattern --test pattern differential`.

use crate::python;
use anyam_pattern::{StixVersion, lines::match_one};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn pick<'a, T: ?Sized>(r: &mut StdRng, xs: &[&'a T]) -> &'a T {
    xs[r.gen_range(0..xs.len())]
}

const NAMES: &[&str] = &[
    "alice",
    "bob",
    "Alice",
    "a%b",
    "h\u{e9}llo",
    "",
    "al\\ice",
    "it's",
    "x\u{1e0d}\u{307}",
];
const TIMES: &[&str] = &[
    "2020-01-01T00:00:00Z",
    "2020-01-01T00:00:01Z",
    "2020-01-01T00:00:03Z",
    "2020-01-01T00:00:10Z",
    "2020-01-01T00:01:00Z",
];
const IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.200",
    "192.168.1.7",
    "10.1.0.0/16",
    "10.0.0.0/24",
];
const NETS: &[&str] = &[
    "10.0.0.0/8",
    "10.0.0.0/24",
    "192.168.0.0/16",
    "10.0.0.1/32",
    "0.0.0.0/1",
];
const BINS: &[&[u8]] = &[b"alice", b"\x01\x02\x03", b"", b"h\xe9"];
const TYPES: &[&str] = &["file", "ipv4-addr", "x-thing"];

struct Gen {
    r: StdRng,
    /// STIX 2.0 mode: no START/STOP (the reference matcher cannot evaluate
    /// it in 2.0 mode; see REFERENCE-DIFFERENCES.md).
    v20: bool,
}

impl Gen {
    fn scalar(&mut self) -> Value {
        match self.r.gen_range(0..7) {
            0 => json!(pick(&mut self.r, NAMES)),
            1 => json!(self.r.gen_range(-2..6)),
            2 => json!([1.0, 2.5, 5.0, -0.5][self.r.gen_range(0..4)]),
            3 => json!(self.r.gen_bool(0.5)),
            4 => json!(pick(&mut self.r, TIMES)),
            5 => Value::Null,
            _ => json!(pick(&mut self.r, IPS)),
        }
    }

    fn object(&mut self, ty: &str, id: String, ids: &[String], embedded: bool) -> Value {
        use base64::Engine as _;
        let mut o = serde_json::Map::new();
        o.insert("type".into(), json!(ty));
        if !embedded {
            o.insert("id".into(), json!(id));
        }
        for key in [
            "name",
            "size",
            "flag",
            "when",
            "value",
            "net",
            "tags",
            "payload_bin",
            "data_hex",
            "nested",
            "parent_ref",
            "child_refs",
        ] {
            if self.r.gen_bool(0.35) {
                continue;
            }
            let v = match key {
                "name" => json!(pick(&mut self.r, NAMES)),
                "size" => {
                    if self.r.gen_bool(0.7) {
                        json!(self.r.gen_range(-1..6))
                    } else {
                        json!([1.0, 2.5, 5.0][self.r.gen_range(0..3)])
                    }
                }
                "flag" => json!(self.r.gen_bool(0.5)),
                "when" => json!(pick(&mut self.r, TIMES)),
                "value" => json!(pick(&mut self.r, IPS)),
                "net" => json!(pick(&mut self.r, NETS)),
                "tags" => {
                    let n = self.r.gen_range(0..4);
                    Value::Array((0..n).map(|_| self.scalar()).collect())
                }
                "payload_bin" => json!(
                    base64::engine::general_purpose::STANDARD
                        .encode(BINS[self.r.gen_range(0..BINS.len())])
                ),
                "data_hex" => json!(hex::encode(BINS[self.r.gen_range(0..BINS.len())])),
                "nested" => json!({"k": self.scalar(), "list": [self.scalar(), self.scalar()]}),
                "parent_ref" if !ids.is_empty() => json!(ids[self.r.gen_range(0..ids.len())]),
                "child_refs" if !ids.is_empty() => {
                    let n = self.r.gen_range(0..3);
                    Value::Array(
                        (0..n)
                            .map(|_| json!(ids[self.r.gen_range(0..ids.len())]))
                            .collect(),
                    )
                }
                _ => continue,
            };
            o.insert(key.into(), v);
        }
        Value::Object(o)
    }

    fn observations(&mut self, version: StixVersion) -> Value {
        let n_obs = self.r.gen_range(1..4);
        let mut out = Vec::new();
        let mut bundle_objects = Vec::new();
        for i in 0..n_obs {
            let a = self.r.gen_range(0..TIMES.len());
            let b = self.r.gen_range(a..TIMES.len());
            let n_objs = self.r.gen_range(1..4);
            let ids: Vec<String> = match version {
                StixVersion::V2_0 => (0..n_objs).map(|j| j.to_string()).collect(),
                StixVersion::V2_1 => (0..n_objs)
                    .map(|j| format!("x--00000000-0000-4000-8000-{:012}", i * 10 + j))
                    .collect(),
            };
            let mut od = json!({
                "type": "observed-data",
                "id": format!("observed-data--00000000-0000-4000-8000-{i:012}"),
                "first_observed": TIMES[a],
                "last_observed": TIMES[b],
                "number_observed": self.r.gen_range(1..4),
            });
            let objs: Vec<Value> = ids
                .iter()
                .map(|id| {
                    let ty = pick(&mut self.r, TYPES);
                    self.object(ty, id.clone(), &ids, version == StixVersion::V2_0)
                })
                .collect();
            match version {
                StixVersion::V2_0 => {
                    od["objects"] = Value::Object(ids.iter().cloned().zip(objs).collect());
                    out.push(od);
                }
                StixVersion::V2_1 => {
                    od["object_refs"] = json!(ids);
                    bundle_objects.push(od);
                    bundle_objects.extend(objs);
                }
            }
        }
        match version {
            StixVersion::V2_0 => Value::Array(out),
            StixVersion::V2_1 => {
                json!([{"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": bundle_objects}])
            }
        }
    }

    fn literal(&mut self, orderable: bool) -> String {
        use base64::Engine as _;
        let q = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        match self.r.gen_range(0..if orderable { 7 } else { 8 }) {
            0 | 1 => q(pick(&mut self.r, NAMES)),
            2 => self.r.gen_range(-2..6).to_string(),
            3 => ["1.0", "2.5", "-0.5", "5.0"][self.r.gen_range(0..4)].to_string(),
            4 => format!("h'{}'", hex::encode(BINS[self.r.gen_range(0..BINS.len())])),
            5 => {
                let b = BINS[self.r.gen_range(0..BINS.len() - 1)];
                let b = if b.is_empty() { &b"a"[..] } else { b };
                format!("b'{}'", base64::engine::general_purpose::STANDARD.encode(b))
            }
            6 if self.r.gen_bool(0.3) => format!("t'{}'", pick(&mut self.r, TIMES)),
            6 => q(pick(&mut self.r, NAMES)),
            _ => if self.r.gen_bool(0.5) {
                "true"
            } else {
                "false"
            }
            .to_string(),
        }
    }

    fn path(&mut self, ty: &str) -> String {
        let prop = match self.r.gen_range(0..14) {
            0 | 1 => "name".to_string(),
            2 => "size".to_string(),
            3 => "flag".to_string(),
            4 => "when".to_string(),
            5 => "value".to_string(),
            6 => format!("tags[{}]", ["*", "0", "1", "-1"][self.r.gen_range(0..4)]),
            7 => "payload_bin".to_string(),
            8 => "data_hex".to_string(),
            9 => format!(
                "nested.{}",
                ["k", "list[*]", "list[0]", "'k'"][self.r.gen_range(0..4)]
            ),
            10 => format!(
                "parent_ref.{}",
                ["name", "size", "value"][self.r.gen_range(0..3)]
            ),
            11 => format!("child_refs[{}].name", ["*", "0"][self.r.gen_range(0..2)]),
            12 => "'name'".to_string(),
            _ => "missing".to_string(),
        };
        format!("{ty}:{prop}")
    }

    fn test(&mut self, ty: &str) -> String {
        let not = if self.r.gen_bool(0.2) { "NOT " } else { "" };
        let path = self.path(ty);
        if path.ends_with(":when") && self.r.gen_bool(0.6) {
            let op = ["=", "!=", "<", "<=", ">", ">="][self.r.gen_range(0..6)];
            return format!("{path} {not}{op} t'{}'", pick(&mut self.r, TIMES));
        }
        match self.r.gen_range(0..12) {
            0..=2 => format!(
                "{path} {not}{} {}",
                ["=", "!="][self.r.gen_range(0..2)],
                self.literal(false)
            ),
            3..=4 => format!(
                "{path} {not}{} {}",
                ["<", "<=", ">", ">="][self.r.gen_range(0..4)],
                self.literal(true)
            ),
            5 => {
                // A set of one kind, or of numbers.
                let n = self.r.gen_range(0..4);
                let first = self.literal(false);
                let numeric = first.starts_with(|c: char| c.is_ascii_digit() || c == '-');
                let kind = first.chars().next().unwrap_or(' ');
                let mut items = vec![first];
                for _ in 1..n.max(1) {
                    let l = loop {
                        let l = self.literal(false);
                        let ln = l.starts_with(|c: char| c.is_ascii_digit() || c == '-');
                        if (numeric && ln) || (!numeric && l.starts_with(kind) && !ln) {
                            break l;
                        }
                    };
                    items.push(l);
                }
                if n == 0 {
                    items.clear();
                }
                format!("{path} {not}IN ({})", items.join(", "))
            }
            6 | 7 => {
                let p = [
                    "a%",
                    "%e",
                    "_lice",
                    "%",
                    "h_llo",
                    "al\\\\ice",
                    "%'%",
                    "A%",
                    "",
                ][self.r.gen_range(0..9)];
                format!("{path} {not}LIKE '{p}'")
            }
            8 | 9 => {
                let p = [
                    "^a",
                    "e$",
                    "l+",
                    "[aeiou]{2}",
                    "^$",
                    ".*",
                    "\u{e9}",
                    "^[0-9]",
                    "\\\\",
                    "x\u{1e0d}",
                ][self.r.gen_range(0..10)];
                format!("{path} {not}MATCHES '{p}'")
            }
            10 => format!("{ty}:value {not}ISSUBSET '{}'", pick(&mut self.r, NETS)),
            _ => format!("{ty}:net {not}ISSUPERSET '{}'", pick(&mut self.r, IPS)),
        }
    }

    fn comparison(&mut self, depth: u32) -> String {
        let ty = pick(&mut self.r, TYPES);
        let n = if depth > 1 || self.r.gen_bool(0.5) {
            1
        } else {
            self.r.gen_range(2..4)
        };
        let mut s = self.test(ty);
        for _ in 1..n {
            let op = if self.r.gen_bool(0.5) {
                " AND "
            } else {
                " OR "
            };
            let rhs = if self.r.gen_bool(0.2) {
                format!("({})", self.comparison(depth + 1))
            } else {
                self.test(ty)
            };
            s = format!("{s}{op}{rhs}");
        }
        s
    }

    fn observation(&mut self, depth: u32) -> String {
        let mut s = if depth < 2 && self.r.gen_bool(0.35) {
            let n = self.r.gen_range(2..4);
            let op = [" AND ", " OR ", " FOLLOWEDBY "][self.r.gen_range(0..3)];
            let parts: Vec<String> = (0..n).map(|_| self.observation(depth + 1)).collect();
            format!("({})", parts.join(op))
        } else {
            format!("[{}]", self.comparison(0))
        };
        if self.r.gen_bool(0.3) {
            s = match self.r.gen_range(0..if self.v20 { 2 } else { 3 }) {
                0 => format!(
                    "{s} WITHIN {} SECONDS",
                    ["1", "2", "5", "0.5", "60"][self.r.gen_range(0..5)]
                ),
                1 => format!("{s} REPEATS {} TIMES", self.r.gen_range(1..4)),
                _ => {
                    let a = self.r.gen_range(0..TIMES.len());
                    let b = self.r.gen_range(0..TIMES.len());
                    format!("{s} START t'{}' STOP t'{}'", TIMES[a], TIMES[b])
                }
            };
        }
        s
    }

    fn pattern(&mut self) -> String {
        let n = self.r.gen_range(1..3);
        let op = [" AND ", " OR ", " FOLLOWEDBY "][self.r.gen_range(0..3)];
        (0..n)
            .map(|_| self.observation(0))
            .collect::<Vec<_>>()
            .join(op)
    }
}

#[test]
fn differential_against_reference_matcher() {
    let cases: usize = std::env::var("ANYAM_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("ANYAM_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261126);
    let mut g = Gen {
        r: StdRng::seed_from_u64(seed),
        v20: false,
    };
    let mut requests = Vec::with_capacity(cases);
    for _ in 0..cases {
        let version = if g.r.gen_bool(0.75) {
            StixVersion::V2_1
        } else {
            StixVersion::V2_0
        };
        g.v20 = version == StixVersion::V2_0;
        let obs = g.observations(version);
        let pattern = g.pattern();
        requests.push((pattern, obs, version));
    }
    let mut child = Command::new(python::interpreter())
        .arg(python::script("matcher_worker.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the reference matcher worker");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines: Vec<String> = requests
        .iter()
        .map(|(p, o, v)| {
            let sv = if *v == StixVersion::V2_0 {
                "2.0"
            } else {
                "2.1"
            };
            json!({"pattern": p, "observations": o, "stix_version": sv}).to_string()
        })
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
    assert_eq!(
        reference.len(),
        requests.len(),
        "worker answered {} of {}",
        reference.len(),
        requests.len()
    );
    let mut counts = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for ((pattern, obs, version), theirs) in requests.iter().zip(&reference) {
        let ours = match match_one(pattern, obs, *version) {
            Ok(true) => "match",
            Ok(false) => "nomatch",
            Err(_) => "error",
        };
        *counts.entry(theirs.clone()).or_insert(0usize) += 1;
        if ours != theirs {
            failures.push(format!(
                "{version:?} {pattern}\n  reference {theirs}, ours {ours}\n  {}",
                obs.to_string().chars().take(3000).collect::<String>()
            ));
        }
    }
    eprintln!(
        "differential: {cases} cases (seed {seed}), reference verdicts {counts:?}, {} disagreements",
        failures.len()
    );
    let shown: Vec<_> = failures.iter().take(15).collect();
    assert!(
        failures.is_empty(),
        "{} disagreements, first ones:\n{}",
        failures.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let matched = counts.get("match").copied().unwrap_or(0);
    assert!(
        matched * 10 >= cases,
        "too few matching cases ({matched}) to be a useful test"
    );
}
