//! Integration tests of anyam-sensor through its public API: fixtures in every supported format against expected records, STIX validity of every event, follow mode across rotation, merging, and the real Zeek sample logs.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyam_sensor::{
    Error, Format, InputSpec, Options, Record, StixOptions, format_stix, merge, open,
};
use serde_json::{Map, Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixed clock: bare SCOs on STIX lines are observed "now".
fn options() -> Options {
    Options {
        clock: Arc::new(|| 1_767_225_600_000_000_000),
        ..Options::default()
    }
}

fn spec(format: &str, rel: &str) -> InputSpec {
    format!("{format}:{}", fixtures().join(rel).display())
        .parse()
        .unwrap()
}

/// One record as a JSON line: file (relative to the fixtures), line, and
/// either the observation or the report.
fn render(r: &Record) -> Value {
    let rel = |f: &str| {
        f.strip_prefix(&format!("{}/", fixtures().display()))
            .unwrap_or(f)
            .to_string()
    };
    match r {
        Record::Event(e) => {
            let o = &e.observation;
            let objects: Map<String, Value> = o.objects.iter().cloned().collect();
            json!({"file": rel(&e.file), "line": e.line, "first": format_stix(o.first),
                   "last": format_stix(o.last), "count": o.count, "embedded": o.embedded,
                   "objects": objects})
        }
        Record::Malformed(m) => {
            json!({"file": rel(&m.file), "line": m.line, "malformed": m.reason})
        }
        Record::Skipped {
            file, line, what, ..
        } => json!({"file": rel(file), "line": line, "skipped": what}),
    }
}

/// Every object of every event's STIX 2.1 form passes `check_object`, and
/// references resolve inside the output.
fn assert_valid_stix(r: &Record) {
    let Record::Event(e) = r else { return };
    let opts = StixOptions {
        id: None,
        created_by_ref: Some("identity--f431f809-377b-45e0-aa1c-6a4751cae5ff".into()),
        created: Some(1_767_225_600_000_000_000),
    };
    let objs = e.to_stix21(&opts).unwrap();
    let ids: Vec<&str> = objs.iter().filter_map(|o| o["id"].as_str()).collect();
    for o in &objs {
        if let Err(err) = anyam_stix::check_object(o) {
            panic!("{}:{}: {err}\n{o:#}", e.file, e.line);
        }
    }
    let refs = objs[0]["object_refs"].as_array().unwrap();
    assert_eq!(refs.len(), objs.len() - 1);
    for o in &objs[1..] {
        for (k, v) in o.as_object().unwrap() {
            if k.ends_with("_ref") {
                assert!(ids.contains(&v.as_str().unwrap()), "{k} dangles in {o}");
            }
            if k.ends_with("_refs") {
                for x in v.as_array().unwrap() {
                    assert!(ids.contains(&x.as_str().unwrap()), "{k} dangles in {o}");
                }
            }
        }
    }
    // Deterministic: the same event gives the same SCO ids again.
    let again = e.to_stix21(&opts).unwrap();
    assert_eq!(objs[1..], again[1..]);
}

/// Reads `spec` and compares the rendered records with
/// `expected/NAME.jsonl` (regenerated when `UPDATE_EXPECT` is set).
fn check(format: &str, rel: &str, name: &str) -> Vec<Record> {
    let input = open(&spec(format, rel), &options()).unwrap();
    let records: Vec<Record> = input.collect();
    let mut got = String::new();
    for r in &records {
        assert_valid_stix(r);
        got.push_str(&serde_json::to_string(&render(r)).unwrap());
        got.push('\n');
    }
    let path = fixtures().join("expected").join(format!("{name}.jsonl"));
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_EXPECT=1)", path.display()));
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    for (i, (a, b)) in w.iter().zip(&g).enumerate() {
        assert_eq!(a, b, "{name}: record {i} differs");
    }
    assert_eq!(w.len(), g.len(), "{name}: record count");
    records
}

#[test]
fn fixtures_map_to_expected_records() {
    let cases: &[(&str, &str, &str)] = &[
        ("zeek", "zeek-tsv/conn.log", "zeek-tsv-conn"),
        (
            "zeek",
            "zeek-tsv/conn.2025-12-31-23-00-00.log.gz",
            "zeek-tsv-conn-gz",
        ),
        ("zeek", "zeek-tsv/dns.log", "zeek-tsv-dns"),
        ("zeek", "zeek-tsv/http.log", "zeek-tsv-http"),
        ("zeek", "zeek-tsv/ssl.log", "zeek-tsv-ssl"),
        ("zeek", "zeek-tsv/x509.log", "zeek-tsv-x509"),
        ("zeek", "zeek-tsv/files.log", "zeek-tsv-files"),
        ("zeek", "zeek-tsv/weird.log", "zeek-tsv-weird"),
        ("zeek", "zeek-tsv", "zeek-tsv-dir"),
        ("zeek", "zeek-json", "zeek-json-dir"),
        ("zeek", "zeek-mixed.json", "zeek-mixed"),
        ("eve", "eve.json", "eve"),
        ("stix", "stix.jsonl", "stix"),
    ];
    for (format, rel, name) in cases {
        check(format, rel, name);
    }
}

fn objects_of_type<'a>(r: &'a Record, ty: &str) -> Vec<&'a Value> {
    match r {
        Record::Event(e) => e
            .observation
            .objects
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o["type"] == ty)
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn zeek_joins_ssl_with_certificates_and_files_with_connections() {
    for dir in ["zeek-tsv", "zeek-json"] {
        let records: Vec<Record> = open(&spec("zeek", dir), &options()).unwrap().collect();
        let ssl = records
            .iter()
            .find(|r| matches!(r, Record::Event(e) if e.file.ends_with("ssl.log") && e.line <= 10))
            .unwrap();
        assert_eq!(objects_of_type(ssl, "x509-certificate").len(), 2, "{dir}");
        assert_eq!(objects_of_type(ssl, "domain-name").len(), 1, "{dir}");
        assert_eq!(objects_of_type(ssl, "network-traffic").len(), 1, "{dir}");
        let file = records
            .iter()
            .find(
                |r| matches!(r, Record::Event(e) if e.file.ends_with("files.log") && e.line <= 10),
            )
            .unwrap();
        let nt = objects_of_type(file, "network-traffic");
        assert_eq!(nt.len(), 1, "{dir}: the file event carries its connection");
        assert!(
            nt[0].get("src_byte_count").is_some(),
            "{dir}: from conn.log"
        );
        // Claimed certificates are not emitted again on their own.
        let alone: Vec<_> = records
            .iter()
            .filter(|r| matches!(r, Record::Event(e) if e.file.ends_with("x509.log")))
            .collect();
        assert!(alone.len() <= 1, "{dir}");
    }
}

#[test]
fn zeek_join_state_is_bounded_and_reported() {
    let opts = Options {
        join_cache: 1,
        join_delay: Duration::from_secs(0),
        ..options()
    };
    let input = open(&spec("zeek", "zeek-tsv"), &opts).unwrap();
    let h = input.stats_handle();
    let n = input.count();
    let s = h.stats();
    assert_eq!(s.events + s.malformed + s.skipped, n as u64);
    assert!(s.join_state_max <= 2, "{s:?}");
    assert_eq!(s.join_state, 1, "the last provider stays cached: {s:?}");
}

#[test]
fn stats_count_every_line_and_record() {
    let input = open(&spec("zeek", "zeek-tsv/conn.log"), &options()).unwrap();
    let h = input.stats_handle();
    let records: Vec<Record> = input.collect();
    let s = h.stats();
    let text = std::fs::read_to_string(fixtures().join("zeek-tsv/conn.log")).unwrap();
    assert_eq!(s.lines, text.lines().count() as u64);
    assert_eq!(s.events, 5);
    assert_eq!(s.malformed, 4);
    assert_eq!(s.skipped, 0);
    assert_eq!(records.len(), 9);
}

#[test]
fn input_specs() {
    let ok: &[(&str, Format, Option<&str>)] = &[
        ("zeek:/var/log/zeek", Format::Zeek, Some("/var/log/zeek")),
        ("zeek:-", Format::Zeek, None),
        ("eve:eve.json", Format::Eve, Some("eve.json")),
        ("stix:C:/x.jsonl", Format::Stix, Some("C:/x.jsonl")),
    ];
    for (s, format, path) in ok {
        let spec: InputSpec = s.parse().unwrap();
        assert_eq!(spec.format, *format);
        assert_eq!(spec.path.as_deref(), path.map(Path::new));
        assert_eq!(spec.to_string(), *s);
    }
    for bad in ["zeek", "snort:x", "eve:"] {
        assert!(
            matches!(bad.parse::<InputSpec>(), Err(Error::Spec(_))),
            "{bad}"
        );
    }
    let missing = open(&"eve:/nonexistent/eve.json".parse().unwrap(), &options());
    assert!(matches!(missing, Err(Error::Open { .. })));
}

#[test]
fn merge_orders_finite_inputs_by_event_time() {
    let inputs = vec![
        open(&spec("eve", "eve.json"), &options()).unwrap(),
        open(&spec("zeek", "zeek-json"), &options()).unwrap(),
        open(&spec("zeek", "zeek-tsv/conn.log"), &options()).unwrap(),
    ];
    let expected: usize = [
        ("eve", "eve.json"),
        ("zeek", "zeek-json"),
        ("zeek", "zeek-tsv/conn.log"),
    ]
    .iter()
    .map(|(f, p)| open(&spec(f, p), &options()).unwrap().count())
    .sum();
    let merged = merge(inputs);
    let handles = merged.stats();
    let records: Vec<Record> = merged.collect();
    assert_eq!(records.len(), expected);
    // Per input, events come out in the order that input gave them; across
    // inputs, the earliest head goes first.
    let times: Vec<i128> = records.iter().filter_map(Record::time).collect();
    let inversions = times.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(inversions <= 3, "{inversions} inversions in {times:?}");
    assert_eq!(handles.len(), 3);
    let total: u64 = handles
        .iter()
        .map(|h| {
            let s = h.stats();
            s.events + s.malformed + s.skipped
        })
        .sum();
    assert_eq!(total, expected as u64);
}

/// Follow mode: a file that is appended to, renamed away and recreated
/// (twice), and finally truncated, yields every line exactly once.
#[test]
fn follow_survives_rotation_without_loss_or_duplication() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eve.json");
    let line = |i: u32| {
        format!(
            "{{\"timestamp\":\"2026-01-02T00:00:{:02}.{i:06}Z\",\"event_type\":\"flow\",\"src_ip\":\"192.0.2.1\",\"src_port\":{},\"dest_ip\":\"198.51.100.1\",\"dest_port\":80,\"proto\":\"TCP\"}}\n",
            i % 60,
            1000 + i
        )
    };
    let write = |p: &Path, from: u32, to: u32, append: bool| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(p)
            .unwrap();
        for i in from..to {
            f.write_all(line(i).as_bytes()).unwrap();
        }
        f.flush().unwrap();
    };
    write(&path, 0, 50, false);
    let shutdown = Arc::new(AtomicBool::new(false));
    let opts = Options {
        follow: true,
        shutdown: shutdown.clone(),
        poll_interval: Duration::from_millis(20),
        ..options()
    };
    let spec: InputSpec = format!("eve:{}", path.display()).parse().unwrap();
    let input = open(&spec, &opts).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for r in input {
            if tx.send(r).is_err() {
                break;
            }
        }
    });
    let mut ports = Vec::new();
    let wait_for = |n: usize, ports: &mut Vec<u64>| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while ports.len() < n && Instant::now() < deadline {
            if let Ok(r) = rx.recv_timeout(Duration::from_millis(100)) {
                match r {
                    Record::Event(e) => {
                        let nt = &e.observation.objects[0].1;
                        ports.push(nt["src_port"].as_u64().unwrap());
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    };
    wait_for(50, &mut ports);
    // Append, then write more before renaming: the reader must finish the
    // old file after it notices the rotation.
    write(&path, 50, 80, true);
    let rotated = dir.path().join("eve.json.1");
    std::fs::rename(&path, &rotated).unwrap();
    write(&rotated, 80, 90, true);
    write(&path, 90, 120, false);
    wait_for(120, &mut ports);
    // A second rotation, the new file appearing a little later.
    std::fs::rename(&path, dir.path().join("eve.json.2")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    write(&path, 120, 150, false);
    wait_for(150, &mut ports);
    // Truncation in place, then new content.
    write(&path, 150, 155, false);
    wait_for(155, &mut ports);
    shutdown.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    while let Ok(Record::Event(e)) = rx.try_recv() {
        ports.push(e.observation.objects[0].1["src_port"].as_u64().unwrap());
    }
    let want: Vec<u64> = (0..155).map(|i| 1000 + i).collect();
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, want, "every line exactly once");
    // Lines of one file come in order, and files in rotation order.
    assert_eq!(ports[..90], want[..90]);
}

/// The real Zeek logs beside the repository (`shared/samples/zeek`): every
/// file must read without a malformed line, and every conn record must
/// become an event.
#[test]
fn real_zeek_samples_read_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples/zeek");
    assert!(
        root.is_dir(),
        "the shared Zeek samples are missing: expected them at {} \
         (the `shared` folder beside the repository root)",
        root.display()
    );
    let mut seen = 0;
    for sub in ["tsv", "json"] {
        let dir = root.join(sub);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no logs in {}", dir.display());
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let data_lines = text
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count() as u64;
            let spec: InputSpec = format!("zeek:{}", f.display()).parse().unwrap();
            let input = open(&spec, &options()).unwrap();
            let h = input.stats_handle();
            let records: Vec<Record> = input.collect();
            for r in &records {
                assert_valid_stix(r);
                if let Record::Malformed(m) = r {
                    panic!("{}:{}: {}", m.file, m.line, m.reason);
                }
            }
            let s = h.stats();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            assert_eq!(s.malformed, 0, "{name}");
            assert_eq!(s.lines, text.lines().count() as u64, "{name}");
            assert_eq!(s.events + s.skipped, data_lines, "{sub}/{name}: {s:?}");
            match name.split(['.', '_']).next().unwrap() {
                "conn" | "dns" | "http" | "ssl" | "x509" => {
                    assert_eq!(s.events, data_lines, "{sub}/{name}: every record an event")
                }
                "weird" | "dhcp" | "notice" | "smtp" => {
                    assert_eq!(s.skipped, data_lines, "{sub}/{name}")
                }
                _ => assert!(s.events > 0, "{sub}/{name}"),
            }
            seen += 1;
        }
        // The directory as one input: joins across its logs.
        let input = open(
            &format!("zeek:{}", dir.display()).parse().unwrap(),
            &options(),
        )
        .unwrap();
        let h = input.stats_handle();
        let n = input.filter(|r| matches!(r, Record::Malformed(_))).count();
        assert_eq!(n, 0);
        assert!(h.stats().events > 0);
    }
    assert!(seen >= 10);
}

/// A followed Zeek directory: an ssl record joins the certificate logged
/// after it; one whose certificate never comes is emitted once the input
/// has been quiet for the join delay; the shutdown flag ends the input.
#[test]
fn follow_zeek_directory_joins_and_flushes_when_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let ssl = dir.path().join("ssl.log");
    let x509 = dir.path().join("x509.log");
    std::fs::write(&ssl, "").unwrap();
    std::fs::write(&x509, "").unwrap();
    let shutdown = Arc::new(AtomicBool::new(false));
    let opts = Options {
        follow: true,
        shutdown: shutdown.clone(),
        poll_interval: Duration::from_millis(20),
        join_delay: Duration::from_secs(2),
        ..options()
    };
    let input = open(
        &format!("zeek:{}", dir.path().display()).parse().unwrap(),
        &opts,
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for r in input {
            if tx.send(r).is_err() {
                break;
            }
        }
    });
    let append = |p: &Path, line: &str| {
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(line.as_bytes()).unwrap();
    };
    append(
        &ssl,
        "{\"ts\":1767230000.0,\"uid\":\"Cf1\",\"id.orig_h\":\"192.0.2.1\",\"id.orig_p\":5000,\"id.resp_h\":\"198.51.100.1\",\"id.resp_p\":443,\"server_name\":\"a.example.com\",\"cert_chain_fps\":[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}\n",
    );
    std::thread::sleep(Duration::from_millis(50));
    append(
        &x509,
        "{\"ts\":1767230000.1,\"fingerprint\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"certificate.serial\":\"01\"}\n",
    );
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(
        objects_of_type(&first, "x509-certificate").len(),
        1,
        "{first:?}"
    );
    append(
        &ssl,
        "{\"ts\":1767230001.0,\"uid\":\"Cf2\",\"id.orig_h\":\"192.0.2.1\",\"id.orig_p\":5001,\"id.resp_h\":\"198.51.100.1\",\"id.resp_p\":443,\"cert_chain_fps\":[\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"]}\n",
    );
    let second = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        matches!(&second, Record::Event(e) if e.line == 2),
        "{second:?}"
    );
    assert_eq!(objects_of_type(&second, "x509-certificate").len(), 0);
    shutdown.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(rx.try_recv().is_err(), "nothing else");
}

#[test]
fn shutdown_stops_a_finite_input() {
    let opts = options();
    opts.shutdown.store(true, Ordering::Relaxed);
    let n = open(&spec("zeek", "zeek-tsv"), &opts).unwrap().count();
    assert_eq!(n, 0);
}

/// The events are what the matcher reads: indicators' patterns match the
/// embedded form (Zeek, EVE) and the STIX 2.1 form (STIX input) alike.
#[test]
fn the_matcher_finds_indicators_in_events() {
    use anyam_pattern::{Matcher, Observations, StixVersion};
    let cases: &[(&str, &str, &str, usize)] = &[
        (
            "zeek",
            "zeek-tsv/conn.log",
            "[network-traffic:dst_ref.value = '198.51.100.20' AND network-traffic:dst_port = 443]",
            1,
        ),
        (
            "zeek",
            "zeek-tsv/conn.log",
            "[ipv4-addr:value = '192.0.2.10']",
            3,
        ),
        (
            "zeek",
            "zeek-tsv/conn.log",
            "[network-traffic:protocols[*] = 'icmp']",
            1,
        ),
        (
            "zeek",
            "zeek-tsv/dns.log",
            "[domain-name:resolves_to_refs[*].value = '198.51.100.21']",
            1,
        ),
        (
            "zeek",
            "zeek-tsv/http.log",
            "[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent' = 'Agent/1.0 (test)']",
            1,
        ),
        (
            "zeek",
            "zeek-tsv/http.log",
            "[url:value = 'http://www.example.com/download/tool.exe?x=1']",
            1,
        ),
        (
            "zeek",
            "zeek-tsv",
            // Only the ssl event: the x509 record was joined into it.
            "[x509-certificate:serial_number = '0A1B2C3D4E5F']",
            1,
        ),
        (
            "zeek",
            "zeek-tsv",
            "[file:hashes.MD5 = '5d41402abc4b2a76b9719d911017c592' AND file:name = 'tool.exe']",
            1,
        ),
        (
            "zeek",
            "zeek-json",
            "[x509-certificate:hashes.'SHA-256' = '3f1c2a4b5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708']",
            1,
        ),
        (
            "eve",
            "eve.json",
            "[x509-certificate:hashes.'SHA-1' = '123456789abcdef0123456789abcdef012345678']",
            1,
        ),
        (
            "eve",
            "eve.json",
            "[domain-name:value = 'shop.example.com' AND domain-name:resolves_to_refs[*].value = 'shop.cdn.example.net']",
            1,
        ),
        (
            "stix",
            "stix.jsonl",
            "[domain-name:value = 'bundle.example.com']",
            1,
        ),
        (
            "stix",
            "stix.jsonl",
            "[domain-name:value = 'twice.example.org']",
            2,
        ),
        (
            "stix",
            "stix.jsonl",
            "[network-traffic:dst_ref.value = '198.51.100.4']",
            1,
        ),
        ("eve", "eve.json", "[ipv4-addr:value = '203.0.113.254']", 0),
    ];
    for (format, rel, pattern, want) in cases {
        let m = Matcher::new(pattern, StixVersion::V2_1).unwrap();
        let n = open(&spec(format, rel), &options())
            .unwrap()
            .filter_map(|r| match r {
                Record::Event(e) => Some(e.observation),
                _ => None,
            })
            .filter(|o| {
                let one = Observations {
                    observations: vec![o.clone()],
                };
                m.matches(&one).unwrap()
            })
            .count();
        assert_eq!(n, *want, "{rel}: {pattern}");
        // The STIX 2.1 form of each event (what sightings cite) matches alike.
        let n21 = open(&spec(format, rel), &options())
            .unwrap()
            .filter_map(|r| match r {
                Record::Event(e) => Some(e.to_stix21(&StixOptions::default()).unwrap()),
                _ => None,
            })
            .filter(|objs| {
                let obs = Observations::from_json(&Value::Array(objs.clone()), StixVersion::V2_1)
                    .unwrap();
                m.matches(&obs).unwrap()
            })
            .count();
        assert_eq!(n21, *want, "STIX 2.1 form, {rel}: {pattern}");
    }
}
