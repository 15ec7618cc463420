//! Store benchmarks: a page of 100 at random depths of a large collection,
//! and ingest throughput in batches of 1,000, on a real SQLite file with
//! the default (`synchronous=FULL`) durability.
//!
//! `cargo bench -p anyam-store --bench store`; set `ANYAM_BENCH_SIZES`
//! (comma list, default `100000,1000000`) to choose the collection sizes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyam_store::{
    ApiRoot, Collection, Micros, NewObject, Query, SqliteOptions, SqliteStore, Store, VersionSel,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const COLL: &str = "5f0c3b2e-9c1d-4d4e-8a7b-2f3e4d5c6b7a";

/// A small deterministic generator, so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn uuid_like(n: u64, salt: u64) -> String {
    let a = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    let b = a.rotate_left(29).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// A realistic indicator of about 500 bytes.
fn indicator(n: u64) -> NewObject {
    let id = format!("indicator--{}", uuid_like(n, 1));
    let ip = format!(
        "{}.{}.{}.{}",
        10 + (n >> 24) % 200,
        (n >> 16) & 255,
        (n >> 8) & 255,
        n & 255
    );
    let secs = 1_700_000_000 + n as i64;
    let modified = format!(
        "2023-11-{:02}T{:02}:{:02}:{:02}.000Z",
        14 + (n / 86_400) % 14,
        (n / 3600) % 24,
        (n / 60) % 60,
        n % 60
    );
    let raw = format!(
        concat!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"{id}","created":"{m}","modified":"{m}","#,
            r#""created_by_ref":"identity--{ident}","name":"C2 server {ip}","#,
            r#""description":"Command and control server observed in an ongoing phishing campaign against government networks.","#,
            r#""indicator_types":["malicious-activity"],"pattern":"[ipv4-addr:value = '{ip}']","pattern_type":"stix","#,
            r#""valid_from":"{m}","confidence":80,"labels":["c2","phishing"],"#,
            r#""object_marking_refs":["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]}}"#
        ),
        id = id,
        m = modified,
        ident = uuid_like(7, 2),
        ip = ip
    );
    let mut digest = [0u8; 32];
    let mut h = n.wrapping_mul(0x2545_F491_4F6C_DD1D);
    for chunk in digest.chunks_mut(8) {
        h = h.rotate_left(17).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    NewObject {
        id,
        object_type: "indicator".into(),
        spec_version: "2.1".into(),
        version: Some(modified),
        version_micros: Some(secs * 1_000_000),
        digest,
        raw,
        release_label: String::new(),
        observables: Vec::new(),
        name: Some(format!("C2 server {ip}")),
        description: Some(
            "Command and control server observed in an ongoing phishing campaign against government networks."
                .into(),
        ),
    }
}

/// CPU seconds this process used so far (all threads, user + system), on
/// Linux; the machine running the benchmark may be shared, so objects per
/// CPU-second is reported beside objects per wall-second.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of those, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn sizes() -> Vec<u64> {
    std::env::var("ANYAM_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000])
}

/// A store holding `n` indicators, and their `date_added` values.
fn filled(dir: &std::path::Path, n: u64) -> (SqliteStore, Vec<Micros>) {
    let s = SqliteStore::open(&dir.join(format!("bench-{n}.db")), SqliteOptions::default())
        .expect("open");
    s.create_api_root(&ApiRoot {
        name: "root".into(),
        title: "Root".into(),
        description: None,
        max_content_length: 1 << 26,
    })
    .expect("api root");
    s.create_collection(&Collection {
        id: COLL.into(),
        api_root: "root".into(),
        title: "Bench".into(),
        description: None,
        alias: None,
    })
    .expect("collection");
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let mut dates = Vec::with_capacity(n as usize);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + 1000).min(n)).map(indicator).collect();
        for o in s.put_objects(COLL, &batch).expect("put") {
            if let anyam_store::PutOutcome::Added(d) = o {
                dates.push(d);
            }
        }
        i += batch.len() as u64;
    }
    let t = start.elapsed();
    let cpu = cpu_seconds().zip(cpu_start).map(|(b, a)| b - a);
    eprintln!(
        "filled {n} objects in {:.1} s: {:.0} objects/s (batches of 1,000, synchronous=FULL){}",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64(),
        cpu.map(|c| format!("; {c:.1} CPU-s, {:.0} objects per CPU-second", n as f64 / c))
            .unwrap_or_default()
    );
    (s, dates)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in sizes() {
        let (s, dates) = filled(dir.path(), n);
        let mut g = c.benchmark_group(format!("page100/{n}"));
        g.throughput(Throughput::Elements(100));
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let cases: [(&str, Vec<VersionSel>); 3] = [
            ("objects-last", vec![]),
            ("objects-all", vec![VersionSel::All]),
            ("manifest-last", vec![]),
        ];
        for (name, versions) in cases {
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    // A random depth, leaving room for a full page.
                    let at = dates[(rng.next() % (dates.len() as u64 - 101)) as usize];
                    let q = Query {
                        added_after: Some(at),
                        limit: 100,
                        versions: versions.clone(),
                        ..Query::default()
                    };
                    if name.starts_with("manifest") {
                        let p = s.manifest(COLL, &q).expect("manifest");
                        assert_eq!(p.items.len(), 100);
                        black_box(p);
                    } else {
                        let p = s.objects(COLL, &q).expect("objects");
                        assert_eq!(p.items.len(), 100);
                        black_box(p);
                    }
                })
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("ingest/{n}"));
        g.throughput(Throughput::Elements(1000));
        g.sample_size(30);
        let mut next = n + 10_000_000;
        g.bench_function(BenchmarkId::from_parameter("batch1000"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let batch: Vec<_> = (next..next + 1000).map(indicator).collect();
                    next += 1000;
                    let t = Instant::now();
                    black_box(s.put_objects(COLL, &batch).expect("put"));
                    total += t.elapsed();
                }
                total
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
