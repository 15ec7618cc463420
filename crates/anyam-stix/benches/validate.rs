//! Criterion benchmark: objects per second validated (and digested) on a realistic mix of indicators, SCOs and relationships.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;

/// A deterministic UUIDv4-shaped string for object `i`.
fn uuid(i: usize) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        i,
        i % 0xffff,
        i % 0xfff,
        (i * 7) % 0xfff,
        i * 31
    )
}

const TLP_GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";

/// The mix a national CERT typically posts: per 10 objects, 4 indicators,
/// 4 SCOs (ipv4, domain, url, file with hashes) and 2 relationships.
fn mix(n: usize) -> Vec<Value> {
    let identity = format!("identity--{}", uuid(999_999));
    (0..n)
        .map(|i| {
            let created = format!("2025-0{}-1{}T08:{:02}:17.{:03}Z", 1 + i % 9, i % 10, i % 60, i % 1000);
            match i % 10 {
                0..=3 => json!({
                    "type": "indicator",
                    "spec_version": "2.1",
                    "id": format!("indicator--{}", uuid(i)),
                    "created_by_ref": identity,
                    "created": created,
                    "modified": created,
                    "name": format!("C2 server {i}"),
                    "description": "Command and control server observed in a phishing campaign against government networks.",
                    "indicator_types": ["malicious-activity"],
                    "pattern": format!("[ipv4-addr:value = '198.51.{}.{}']", i % 256, (i / 256) % 256),
                    "pattern_type": "stix",
                    "pattern_version": "2.1",
                    "valid_from": created,
                    "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}],
                    "labels": ["c2", "apt"],
                    "confidence": 80,
                    "external_references": [{"source_name": "cert-report", "url": format!("https://cert.example/r/{i}")}],
                    "object_marking_refs": [TLP_GREEN],
                }),
                4 => json!({
                    "type": "ipv4-addr", "spec_version": "2.1",
                    "id": format!("ipv4-addr--{}", uuid(i)),
                    "value": format!("203.0.{}.{}", i % 256, (i / 256) % 256),
                }),
                5 => json!({
                    "type": "domain-name", "spec_version": "2.1",
                    "id": format!("domain-name--{}", uuid(i)),
                    "value": format!("c2-{i}.example.net"),
                    "resolves_to_refs": [format!("ipv4-addr--{}", uuid(i - 1))],
                }),
                6 => json!({
                    "type": "url", "spec_version": "2.1",
                    "id": format!("url--{}", uuid(i)),
                    "value": format!("https://c2-{i}.example.net/gate.php?id={i}"),
                }),
                7 => json!({
                    "type": "file", "spec_version": "2.1",
                    "id": format!("file--{}", uuid(i)),
                    "name": format!("invoice_{i}.pdf.exe"),
                    "size": 73_728 + i,
                    "hashes": {
                        "MD5": format!("{:032x}", i * 7919),
                        "SHA-256": format!("{:064x}", i * 104_729),
                    },
                }),
                _ => json!({
                    "type": "relationship",
                    "spec_version": "2.1",
                    "id": format!("relationship--{}", uuid(i)),
                    "created_by_ref": identity,
                    "created": created,
                    "modified": created,
                    "relationship_type": "indicates",
                    "source_ref": format!("indicator--{}", uuid(i - 8)),
                    "target_ref": format!("malware--{}", uuid(i + 1_000_000)),
                    "object_marking_refs": [TLP_GREEN],
                }),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let objects = mix(10_000);
    for o in &objects {
        if let Err(e) = anyam_stix::check_object(o) {
            panic!("benchmark object is invalid: {e}");
        }
    }
    let texts: Vec<String> = objects.iter().map(Value::to_string).collect();

    let mut g = c.benchmark_group("mix-10k");
    g.throughput(Throughput::Elements(objects.len() as u64));
    g.sample_size(30);
    g.bench_function("check_object", |b| {
        b.iter(|| {
            for o in &objects {
                black_box(anyam_stix::check_object(black_box(o)).is_ok());
            }
        })
    });
    g.bench_function("check_object+canonical_digest", |b| {
        b.iter(|| {
            for o in &objects {
                black_box(anyam_stix::check_object(black_box(o)).is_ok());
                black_box(anyam_stix::canonical_digest(o));
            }
        })
    });
    g.bench_function("parse+check_object+canonical_digest", |b| {
        b.iter(|| {
            for t in &texts {
                let v: Value = serde_json::from_str(black_box(t)).unwrap_or(Value::Null);
                black_box(anyam_stix::check_object(&v).is_ok());
                black_box(anyam_stix::canonical_digest(&v));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
