//! Engine benchmark: a realistic indicator mix at several scales against generated sensor observations.
//!
//! ```text
//! cargo bench -p anyam-detect --bench engine -- [--indicators 1000,100000,1000000]
//!     [--observations 10000000] [--seed N]
//! ```
//!
//! The indicator mix follows what a national CERT receives from partners:
//! about 70% equality on an IP, domain, URL or file hash; 10% `IN` lists;
//! 10% CIDR `ISSUBSET`; 5% `LIKE`; 5% `MATCHES`; and a few hundred patterns
//! across observations (`FOLLOWEDBY … WITHIN`). Observations are already
//! parsed (connections, DNS answers, HTTP requests, files), drawn so that a
//! small share hits. A second thread hands the events to the engine in
//! chunks of freshly allocated copies, as a parser would (replaying one
//! large pre-built set instead would measure cache misses on the events
//! themselves). Reported per scale: index build time, memory per indicator
//! (resident-set growth while loading), observations per second of the
//! matching thread's CPU time (`obs/cpu_s`: one core's rate, insensitive to
//! other processes taking the processor; `wall_obs/s` is bounded by the
//! copying thread and by the machine's load), and the latency of one live
//! update (add + commit, remove + commit).

use anyam_detect::{Engine, Indicator, Options, Validity};
use anyam_pattern::Observation;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Events matched per timed run: about what a parser batch holds.
const CHUNK: usize = 1000;

const T0: i128 = 1_767_225_600 * 1_000_000_000; // 2026-01-01

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// CPU time of the calling thread (user + system), from procfs, in
/// seconds; clock-tick resolution, fine over runs of seconds. Unlike wall
/// time it does not count time the thread waited for a busy processor.
fn thread_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// The value spaces indicators and observations draw from. Indicators use
/// `ip(r, k)` etc. with k below the indicator count; observations mostly
/// draw from a far larger space so that hits are rare, as on a real wire.
fn ip(k: u64) -> String {
    // Spread over the unicast space, skipping 10/8 (kept for CIDR blocks).
    let x = (k.wrapping_mul(2_654_435_761) % 3_000_000_000) as u32 + 184_549_376;
    std::net::Ipv4Addr::from(x).to_string()
}
fn domain(k: u64) -> String {
    format!("h{k:x}.d{}.example", k % 9973)
}
fn url(k: u64) -> String {
    format!("http://{}/p/{:x}/index.php", domain(k), k.wrapping_mul(31))
}
fn sha256(k: u64) -> String {
    format!(
        "{:064x}",
        u128::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}
fn word(k: u64) -> String {
    format!("w{:x}z", k.wrapping_mul(0x5851_f42d) % 100_000_000)
}

fn indicator_pattern(r: &mut StdRng, k: u64) -> String {
    let roll = r.gen_range(0..100);
    match roll {
        0..=19 => format!("[ipv4-addr:value = '{}']", ip(k)),
        20..=39 => format!("[domain-name:value = '{}']", domain(k)),
        40..=54 => format!("[url:value = '{}']", url(k)),
        55..=69 => format!("[file:hashes.'SHA-256' = '{}']", sha256(k)),
        70..=79 => {
            let n = r.gen_range(2..6);
            let items: Vec<String> = (0..n).map(|i| format!("'{}'", ip(k * 7 + i))).collect();
            format!("[ipv4-addr:value IN ({})]", items.join(", "))
        }
        80..=89 => {
            let len = r.gen_range(22..=30);
            format!(
                "[ipv4-addr:value ISSUBSET '10.{}.{}.0/{len}']",
                (k >> 8) % 256,
                k % 256
            )
        }
        90..=94 => format!("[domain-name:value LIKE '%.{}.example']", word(k)),
        _ => format!("[url:value MATCHES '^https?://[a-z0-9.]*{}\\\\.']", word(k)),
    }
}

fn multi_pattern(k: u64) -> String {
    format!(
        "([ipv4-addr:value = '{}'] FOLLOWEDBY [domain-name:value = '{}']) WITHIN 300 SECONDS",
        ip(k),
        domain(k)
    )
}

fn obs(index: usize, at: i128, objects: Value) -> Observation {
    let objects = objects
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Observation {
        id: None,
        index,
        first: at,
        last: at,
        count: 1,
        objects,
        embedded: true,
    }
}

/// One sensor event; `k` picks values, `hit_space` is how many values of
/// each kind indicators were drawn from.
fn observation(r: &mut StdRng, index: usize, at: i128, hit_space: u64) -> Observation {
    // One in 1,000 events uses values from the indicators' space.
    let k = if r.gen_ratio(1, 1000) {
        r.gen_range(0..hit_space)
    } else {
        r.gen_range(1u64 << 40..1u64 << 41)
    };
    let src = format!("192.168.{}.{}", r.gen_range(0..256), r.gen_range(1..255));
    match r.gen_range(0..10) {
        0..=4 => obs(
            index,
            at,
            json!({
                "0": {"type": "ipv4-addr", "value": src},
                "1": {"type": "ipv4-addr", "value": if r.gen_ratio(1, 50) { format!("10.{}.{}.{}", r.gen_range(0..256), r.gen_range(0..256), r.gen_range(0..256)) } else { ip(k) }},
                "2": {"type": "network-traffic", "src_ref": "0", "dst_ref": "1", "src_port": r.gen_range(1024..65535), "dst_port": 443, "protocols": ["ipv4", "tcp"]}
            }),
        ),
        5..=6 => obs(
            index,
            at,
            json!({
                "0": {"type": "ipv4-addr", "value": ip(k)},
                "1": {"type": "domain-name", "value": if r.gen_ratio(1, 20) { format!("x.{}.example", word(r.gen_range(0..hit_space))) } else { domain(k) }, "resolves_to_refs": ["0"]}
            }),
        ),
        7..=8 => obs(
            index,
            at,
            json!({
                "0": {"type": "url", "value": url(k)},
                "1": {"type": "domain-name", "value": domain(k)},
                "2": {"type": "network-traffic", "dst_port": 80, "protocols": ["ipv4", "tcp", "http"]}
            }),
        ),
        _ => obs(
            index,
            at,
            json!({
                "0": {"type": "file", "name": "f.bin", "size": 1000, "hashes": {"SHA-256": sha256(k)}}
            }),
        ),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<u64> = arg(&args, "--indicators")
        .unwrap_or_else(|| "1000,100000,1000000".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let n_obs: usize = arg(&args, "--observations")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let seed: u64 = arg(&args, "--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);

    // Observations are generated once (100,000 distinct events, replayed
    // with advancing time) so generation does not count.
    let distinct = 100_000.min(n_obs.max(1));
    println!(
        "{:>10} {:>9} {:>10} {:>12} {:>12} {:>10} {:>9} {:>12} {:>12}",
        "indicators",
        "build_s",
        "B/indic",
        "obs/cpu_s",
        "wall_obs/s",
        "hits",
        "evals",
        "upd_add_ms",
        "upd_rm_ms"
    );
    for &n in &sizes {
        let mut r = StdRng::seed_from_u64(seed);
        let events: Vec<Observation> = (0..distinct)
            .map(|i| observation(&mut r, i, T0 + i as i128 * 1_000_000, n))
            .collect();
        let before = rss_bytes();
        let started = Instant::now();
        let mut e: Engine<u32> = Engine::new(Options {
            validity: Validity::ObservationTime,
            ..Options::default()
        });
        let multi = 300.min(n / 100).max(1);
        for k in 0..n {
            let p = if k < multi {
                multi_pattern(k)
            } else {
                indicator_pattern(&mut r, k)
            };
            if let Err(err) = e.upsert(Indicator::from_pattern(format!("indicator--{k}"), p)) {
                eprintln!("{err}");
            }
        }
        e.compact();
        let build = started.elapsed();
        let mem = rss_bytes().saturating_sub(before);

        // Matching, single thread.
        let mut hits = Vec::new();
        let mut n_hits = 0u64;
        // A producer thread hands over chunks of freshly allocated copies
        // of the events, as a parser would, and frees the chunks that come
        // back; this thread only matches, so its CPU time is the engine's.
        let (to_engine, chunks) = std::sync::mpsc::sync_channel::<Vec<Observation>>(4);
        let (to_producer, used) = std::sync::mpsc::channel::<Vec<Observation>>();
        let producer = std::thread::spawn(move || {
            let mut events = events;
            let mut done = 0usize;
            while done < n_obs {
                let start = done % distinct;
                let take = CHUNK.min(n_obs - done).min(distinct - start);
                let chunk: Vec<Observation> = events[start..start + take].to_vec();
                done += take;
                if start + take == distinct {
                    // Replays keep time moving forward.
                    let shift = distinct as i128 * 1_000_000;
                    for ev in &mut events {
                        ev.first += shift;
                        ev.last += shift;
                    }
                }
                while let Ok(old) = used.try_recv() {
                    drop(old);
                }
                if to_engine.send(chunk).is_err() {
                    break;
                }
            }
        });
        let cpu_before = thread_cpu_secs();
        let started = Instant::now();
        let mut done = 0usize;
        for chunk in chunks {
            for ev in &chunk {
                e.observe(ev, &(done as u32), &mut hits);
                n_hits += hits.len() as u64;
                hits.clear();
                done += 1;
            }
            let _ = to_producer.send(chunk);
        }
        let elapsed = started.elapsed();
        let cpu = thread_cpu_secs() - cpu_before;
        let _ = producer.join();
        let cpu_rate = if cpu > 0.0 {
            n_obs as f64 / cpu
        } else {
            f64::NAN
        };
        let rate = n_obs as f64 / elapsed.as_secs_f64();

        // Live updates: add then remove single indicators of each kind.
        let mut add = Duration::ZERO;
        let mut rm = Duration::ZERO;
        let rounds = 200u64;
        for j in 0..rounds {
            let k = n + 1_000_000 + j;
            let p = indicator_pattern(&mut r, k);
            let t = Instant::now();
            let _ = e.upsert(Indicator::from_pattern(format!("indicator--u{j}"), p));
            e.commit();
            add += t.elapsed();
            let t = Instant::now();
            e.remove(&format!("indicator--u{j}"));
            e.commit();
            rm += t.elapsed();
        }
        let s = e.stats();
        println!(
            "{:>10} {:>9.2} {:>10} {:>12.0} {:>12.0} {:>10} {:>9} {:>12.3} {:>12.3}",
            n,
            build.as_secs_f64(),
            mem / n.max(1),
            cpu_rate,
            rate,
            n_hits,
            s.evaluations,
            add.as_secs_f64() * 1000.0 / rounds as f64,
            rm.as_secs_f64() * 1000.0 / rounds as f64,
        );
        drop(e);
    }
}
