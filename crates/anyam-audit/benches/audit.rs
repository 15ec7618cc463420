//! Audit log throughput: appends (single, batched, through the group-commit
//! appender, with synchronous FULL and NORMAL), and head signing and proof
//! generation on a log of a million entries.
//!
//! `AUDIT_BENCH_ENTRIES` sets the size of the big log (default 1 000 000);
//! building it is timed once and printed, as is one full `verify` of it.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyam_audit::{
    AppenderOptions, AuditLog, AuditOptions, Event, ExportRequest, Kind, ObjectRef, Synchronous,
    TrustedKeys, verify,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;

/// A typical release entry: one response of ten object versions to one
/// partner.
fn event(i: u64) -> Event {
    let mut e = Event::new(Kind::Release, "token:sync-node-b");
    e.parties.push(if i.is_multiple_of(100) {
        "node-c".into()
    } else {
        "node-b".into()
    });
    e.what.collection = Some("91a7b528-80eb-42ed-a74d-c6fbd5a26116".into());
    e.what.path = Some("/api1/collections/91a7b528/objects/".into());
    e.what.objects = (0..10)
        .map(|j| ObjectRef {
            id: format!("indicator--{:08x}-1111-4111-8111-{:012x}", i, j),
            version: "2026-01-02T03:04:05.678Z".into(),
        })
        .collect();
    e.why = "agreement 7, grant read".into();
    e
}

fn name(sync: Synchronous) -> &'static str {
    match sync {
        Synchronous::Full => "full",
        Synchronous::Normal => "normal",
    }
}

fn open(dir: &tempfile::TempDir, sync: Synchronous) -> AuditLog {
    AuditLog::open(
        &dir.path().join("audit.db"),
        AuditOptions {
            synchronous: sync,
            ..AuditOptions::default()
        },
    )
    .unwrap()
}

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir, sync);
        let ev = event(1);
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("single", name(sync)), |b| {
            b.iter(|| log.append(black_box(&ev)).unwrap())
        });
        for batch in [100u64, 1000] {
            let events: Vec<Event> = (0..batch).map(event).collect();
            g.throughput(Throughput::Elements(batch));
            g.bench_function(BenchmarkId::new(format!("batch{batch}"), name(sync)), |b| {
                b.iter(|| log.append_batch(black_box(&events)).unwrap())
            });
        }
    }
    g.finish();
}

/// Request handlers as they will use it: each appends and waits for its
/// record to be durable; the writer thread groups whatever is waiting.
fn appender(c: &mut Criterion) {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 200;
    let mut g = c.benchmark_group("appender");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(THREADS * PER_THREAD));
    for sync in [Synchronous::Full, Synchronous::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(&dir, sync);
        let appender = log.appender(AppenderOptions::default()).unwrap();
        g.bench_function(
            BenchmarkId::new(format!("{THREADS}threads_wait_each"), name(sync)),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::thread::scope(|s| {
                            for t in 0..THREADS {
                                let a = appender.clone();
                                s.spawn(move || {
                                    for i in 0..PER_THREAD {
                                        a.append(event(t * PER_THREAD + i)).wait().unwrap();
                                    }
                                });
                            }
                        });
                    }
                    start.elapsed()
                })
            },
        );
        g.bench_function(
            BenchmarkId::new(format!("{THREADS}threads_flush_at_end"), name(sync)),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::thread::scope(|s| {
                            for t in 0..THREADS {
                                let a = appender.clone();
                                s.spawn(move || {
                                    for i in 0..PER_THREAD {
                                        drop(a.append(event(t * PER_THREAD + i)));
                                    }
                                });
                            }
                        });
                        appender.flush().unwrap();
                    }
                    start.elapsed()
                })
            },
        );
    }
    g.finish();
}

/// A deterministic spread of indices, no RNG needed.
fn spread(i: u64, n: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n
}

/// Whether the command line's filter (if any) can select a benchmark of
/// the big-log group, so that filtering for the append benchmarks does
/// not pay for building a million entries. Criterion's filter is a
/// regular expression; a plain substring test is close enough here.
fn big_log_wanted(n: u64) -> bool {
    let names = [
        "sign_head",
        "inclusion_proof",
        "consistency_proof",
        "root_at",
        "export_last_100k_for_one_partner",
        "verify_export_last_100k",
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty()
        || filters.iter().any(|f| {
            names
                .iter()
                .any(|name| format!("at_{n}/{name}").contains(f.as_str()))
        })
}

fn at_scale(c: &mut Criterion) {
    let n: u64 = std::env::var("AUDIT_BENCH_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    if !big_log_wanted(n) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    {
        let log = open(&dir, Synchronous::Normal);
        let mut next = 0;
        while next < n {
            let batch: Vec<Event> = (next..n.min(next + 10_000)).map(event).collect();
            next = log.append_batch(&batch).unwrap().end;
        }
    }
    let built = start.elapsed();
    eprintln!(
        "built a log of {n} entries in {built:.1?} ({:.0} entries/s, batches of 10000, synchronous NORMAL)",
        n as f64 / built.as_secs_f64()
    );
    let log = open(&dir, Synchronous::Full);
    let keys = [
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    ];
    let head = log.sign_head(&keys[0], jiff::Timestamp::now()).unwrap();
    let file = std::fs::metadata(dir.path().join("audit.db")).map_or(0, |m| m.len());
    eprintln!("file size {} MiB", file >> 20);
    let start = Instant::now();
    let trusted = TrustedKeys::new(keys.iter().map(|k| k.verifying_key()));
    let report = verify(&log, &trusted).unwrap();
    let took = start.elapsed();
    eprintln!(
        "verify of {} entries took {took:.1?} ({:.0} entries/s)",
        report.entries,
        report.entries as f64 / took.as_secs_f64()
    );

    let mut g = c.benchmark_group(format!("at_{n}"));
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    // Two keys taking turns, so every call signs and stores a new head
    // (signing is idempotent for an unchanged tree and the same key).
    let mut turn = 0usize;
    g.bench_function("sign_head", |b| {
        b.iter(|| {
            turn += 1;
            log.sign_head(&keys[turn % 2], jiff::Timestamp::now())
                .unwrap()
        })
    });
    let mut i = 0u64;
    g.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            i += 1;
            log.inclusion_proof(spread(i, n), n).unwrap()
        })
    });
    g.bench_function("consistency_proof", |b| {
        b.iter(|| {
            i += 1;
            log.consistency_proof(spread(i, n) + 1, n).unwrap()
        })
    });
    g.bench_function("root_at", |b| {
        b.iter(|| {
            i += 1;
            log.root_at(spread(i, n) + 1).unwrap()
        })
    });
    // One partner's share: every hundredth entry, each with its proof.
    let req = ExportRequest {
        head_size: Some(head.head.tree_size),
        since: vec![n / 2],
        from_seq: n - n.min(100_000),
    };
    let x = log.export_for("node-c", &req).unwrap();
    g.throughput(Throughput::Elements(x.entries.len() as u64));
    g.bench_function("export_last_100k_for_one_partner", |b| {
        b.iter(|| log.export_for("node-c", &req).unwrap())
    });
    g.bench_function("verify_export_last_100k", |b| {
        b.iter(|| anyam_audit::verify_export(&x, &trusted).unwrap())
    });
    g.finish();
}

criterion_group!(benches, appends, appender, at_scale);
criterion_main!(benches);
