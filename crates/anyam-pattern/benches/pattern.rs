//! Benchmarks: patterns parsed per second, and single pattern × single observation evaluations per second, against the reference.
//!
//! `cargo bench -p anyam-pattern` runs the criterion benchmarks, then times
//! this engine and the OASIS `stix2-matcher` (through
//! `tests/reference/bench_reference.py`, interpreter from `ANYAM_PYTHON` or
//! the workspace `.venv`) on the same workload in the same run, and prints
//! the ratios. Evaluation reuses a compiled pattern on both sides; an
//! observation set is one STIX 2.1 bundle with one observed-data.

use anyam_pattern::{Matcher, Observations, StixVersion, parse};
use criterion::{Criterion, Throughput};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn workload() -> (Vec<String>, Vec<Value>) {
    let patterns = vec![
        "[file:name = 'evil.exe']".to_string(),
        "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']".to_string(),
        "[ipv4-addr:value ISSUBSET '198.51.100.0/24']".to_string(),
        "[network-traffic:dst_ref.value = '198.51.100.7' AND network-traffic:dst_port IN (80, 443, 8080)]".to_string(),
        "[file:name LIKE '%.exe' OR file:name MATCHES '^inv[0-9]+\\\\.pdf$']".to_string(),
        "[file:size > 1000 AND file:size <= 5000000]".to_string(),
        "[domain-name:value = 'example.com'] WITHIN 300 SECONDS".to_string(),
        "[file:name = 'a.exe'] FOLLOWEDBY [network-traffic:dst_port = 443]".to_string(),
    ];
    let mut obs = Vec::new();
    for i in 0..8 {
        let t = format!("2020-01-01T00:00:{:02}Z", i * 5);
        let port = [80, 443, 22][i % 3];
        obs.push(json!([{"type": "bundle", "id": "bundle--0", "objects": [
            {"type": "observed-data", "id": format!("observed-data--{i}"), "number_observed": 1,
             "first_observed": t, "last_observed": t,
             "object_refs": ["file--1", "ipv4-addr--1", "network-traffic--1", "domain-name--1"]},
            {"type": "file", "id": "file--1", "name": if i % 2 == 0 { "evil.exe" } else { "inv42.pdf" },
             "size": 1000 * i, "hashes": {"SHA-256": "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"}},
            {"type": "ipv4-addr", "id": "ipv4-addr--1", "value": format!("198.51.{}.7", 99 + i % 3)},
            {"type": "network-traffic", "id": "network-traffic--1", "dst_ref": "ipv4-addr--1", "dst_port": port,
             "protocols": ["tcp"]},
            {"type": "domain-name", "id": "domain-name--1", "value": "example.com"}]}]));
    }
    (patterns, obs)
}

fn rate(budget: Duration, mut f: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        n += f();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let (patterns, obs_json) = workload();
    let obs: Vec<Observations> = obs_json
        .iter()
        .map(|o| Observations::from_json(o, StixVersion::V2_1).expect("workload"))
        .collect();
    let matchers: Vec<Matcher> = patterns
        .iter()
        .map(|p| Matcher::new(p, StixVersion::V2_1).expect("workload"))
        .collect();

    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3));
    let mut g = c.benchmark_group("pattern");
    g.throughput(Throughput::Elements(patterns.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            for p in &patterns {
                black_box(parse(p, StixVersion::V2_1).ok());
            }
        })
    });
    g.throughput(Throughput::Elements((matchers.len() * obs.len()) as u64));
    g.bench_function("evaluate", |b| {
        b.iter(|| {
            for m in &matchers {
                for o in &obs {
                    black_box(m.matches(o).ok());
                }
            }
        })
    });
    g.finish();
    c.final_summary();

    // The ratio against the reference, measured in this run.
    let budget = Duration::from_secs(3);
    let ours_parse = rate(budget, || {
        for p in &patterns {
            black_box(parse(p, StixVersion::V2_1).ok());
        }
        patterns.len() as u64
    });
    let ours_eval = rate(budget, || {
        for m in &matchers {
            for o in &obs {
                black_box(m.matches(o).ok());
            }
        }
        (matchers.len() * obs.len()) as u64
    });
    println!("anyam-pattern: {ours_parse:.0} parses/s, {ours_eval:.0} evaluations/s");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("ANYAM_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../../.venv/bin/python"));
    if !python.exists() {
        println!("reference: Python environment missing (run `cargo xtask venv`); no ratio");
        return;
    }
    let work =
        std::env::temp_dir().join(format!("anyam-pattern-bench-{}.json", std::process::id()));
    let body = json!({"patterns": patterns, "observations": obs_json.iter().map(|o| o[0].clone()).collect::<Vec<_>>(), "stix_version": "2.1"});
    if std::fs::write(&work, body.to_string()).is_err() {
        println!("reference: could not write the workload file; no ratio");
        return;
    }
    let out = std::process::Command::new(&python)
        .arg(root.join("tests/reference/bench_reference.py"))
        .arg(&work)
        .arg(budget.as_secs().to_string())
        .output();
    let _ = std::fs::remove_file(&work);
    let Some(r) = out
        .ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
    else {
        println!("reference: benchmark script failed; no ratio");
        return;
    };
    let (rp, re) = (
        r["parses_per_sec"].as_f64().unwrap_or(f64::NAN),
        r["evals_per_sec"].as_f64().unwrap_or(f64::NAN),
    );
    println!("stix2-matcher: {rp:.0} parses/s, {re:.0} evaluations/s");
    println!(
        "ratio: parse {:.0}x, evaluate {:.0}x",
        ours_parse / rp,
        ours_eval / re
    );
}
