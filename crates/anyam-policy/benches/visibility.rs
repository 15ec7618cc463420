//! Page rate of GET objects through the release decision when the reader
//! may see 1% of a large collection, against a reader who may see all of
//! it: the pages must stay within a factor of two.
//!
//! `cargo bench -p anyam-policy --bench visibility`; `ANYAM_BENCH_OBJECTS`
//! sets the collection size (default 1,000,000), `ANYAM_BENCH_PAGES` the
//! pages read per reader (default 2,000). The collection is built once per
//! run in a temporary directory, with the default durability.
//!
//! 99% of the objects carry no TLP marking (so the default, AMBER+STRICT,
//! keeps them with the host organization), 1% are TLP:GREEN. The host
//! administrator sees everything (two release classes, merged); a user of
//! a constituent organization sees the GREEN 1% (one class). Each page is
//! `limit=100` from a random `added_after`, through `Gate::objects`
//! exactly as the TAXII handler calls it.

use std::sync::Arc;
use std::time::Instant;

use anyam_policy::{Gate, Label, NoAgreements, PolicyConfig, Principal};
use anyam_store::{
    Access, ApiRoot, Collection, Grant, NewObject, Organization, Query, SqliteOptions, SqliteStore,
    Store, TokenScope, User,
};
use anyam_trust::Tlp;

const ROOT: &str = "bench";
const COLL: &str = "5f0c3b2e-9c1d-4d4e-8a7b-2f3e4d5c6b7a";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// An indicator of about 450 bytes; every hundredth is TLP:GREEN.
fn object(n: u64, green: &str, unmarked: &str) -> NewObject {
    let id = format!(
        "indicator--{:08x}-0000-4000-8000-{:012x}",
        n >> 32,
        n & 0xffff_ffff_ffff
    );
    let is_green = n.is_multiple_of(100);
    let marking = if is_green {
        r#","object_marking_refs":["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]"#
    } else {
        ""
    };
    let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    let raw = format!(
        concat!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"{id}","created":"2024-01-01T00:00:00.000Z","#,
            r#""modified":"2024-01-01T00:00:00.000Z","name":"C2 server {ip}","#,
            r#""description":"Command and control server observed in a phishing campaign.","#,
            r#""pattern":"[ipv4-addr:value = '{ip}']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"{m}}}"#
        ),
        id = id,
        ip = ip,
        m = marking
    );
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&n.to_le_bytes());
    NewObject {
        id,
        object_type: "indicator".into(),
        spec_version: "2.1".into(),
        version: Some("2024-01-01T00:00:00.000Z".into()),
        version_micros: Some(1_704_067_200_000_000),
        digest,
        raw,
        release_label: if is_green { green } else { unmarked }.to_string(),
        observables: vec![ip],
        name: None,
        description: None,
    }
}

fn principal(user: &str, org: &str) -> Principal {
    Principal {
        user: user.into(),
        org: org.into(),
        is_admin: false,
        scope: TokenScope::Full,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let total = env("ANYAM_BENCH_OBJECTS", 1_000_000) as u64;
    let pages = env("ANYAM_BENCH_PAGES", 2_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("bench.db"), SqliteOptions::default())
            .expect("opening the store"),
    );
    store
        .create_api_root(&ApiRoot {
            name: ROOT.into(),
            title: "bench".into(),
            description: None,
            max_content_length: 1 << 20,
        })
        .expect("api root");
    store
        .create_collection(&Collection {
            id: COLL.into(),
            api_root: ROOT.into(),
            title: "bench".into(),
            description: None,
            alias: None,
        })
        .expect("collection");
    for (org, user) in [("host", "admin"), ("cert-a", "a1")] {
        store
            .create_org(&Organization {
                name: org.into(),
                title: org.into(),
            })
            .expect("org");
        store
            .create_user(&User {
                name: user.into(),
                org: org.into(),
                password_phc: None,
                is_admin: false,
                generation: 0,
                disabled: false,
            })
            .expect("user");
        store
            .set_grant(&Grant {
                org: org.into(),
                collection: COLL.into(),
                access: Access {
                    read: true,
                    write: false,
                },
            })
            .expect("grant");
    }
    let green = Label {
        tlp: Some(Tlp::Green),
        ..Label::default()
    }
    .key();
    let unmarked = Label::default().key();
    let started = Instant::now();
    let mut n = 0u64;
    while n < total {
        let batch: Vec<NewObject> = (n..(n + 1000).min(total))
            .map(|i| object(i, &green, &unmarked))
            .collect();
        store.put_objects(COLL, &batch).expect("ingest");
        n += batch.len() as u64;
    }
    eprintln!(
        "built {total} objects in {:.1} s ({:.0} objects/s with the search indexes)",
        started.elapsed().as_secs_f64(),
        total as f64 / started.elapsed().as_secs_f64()
    );
    let gate = Gate::new(
        store.clone(),
        PolicyConfig {
            node_id: "0".repeat(64),
            host_org: "host".into(),
            unmarked: Tlp::AmberStrict,
        },
        Arc::new(NoAgreements),
    );
    // The range of date_added values, to start pages at random depths.
    let head = store
        .manifest(
            COLL,
            &Query {
                limit: 1,
                ..Query::default()
            },
        )
        .expect("first");
    let first = head.items.first().map_or(0, |m| m.date_added);
    let last = {
        let mut after = first;
        loop {
            let page = store
                .manifest(
                    COLL,
                    &Query {
                        added_after: Some(after),
                        limit: 10_000,
                        ..Query::default()
                    },
                )
                .expect("manifest");
            match page.items.last() {
                Some(m) if page.next.is_some() => after = m.date_added,
                Some(m) => break m.date_added,
                None => break after,
            }
        }
    };
    let mut results = Vec::new();
    for (who, p) in [
        ("host admin (sees 100%)", principal("admin", "host")),
        ("constituent user (sees 1%)", principal("a1", "cert-a")),
    ] {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut objects = 0usize;
        let t = Instant::now();
        for _ in 0..pages {
            let at = first + (rng.next() % (last - first).max(1) as u64) as i64;
            let page = gate
                .objects(
                    &p,
                    ROOT,
                    COLL,
                    &Query {
                        added_after: Some(at),
                        limit: 100,
                        ..Query::default()
                    },
                )
                .expect("page");
            objects += page.items.len();
            std::hint::black_box(&page);
        }
        let secs = t.elapsed().as_secs_f64();
        let rate = pages as f64 / secs;
        println!(
            "{who}: {rate:.0} pages/s ({:.0} objects/page, {:.2} ms/page)",
            objects as f64 / pages as f64,
            1000.0 / rate
        );
        results.push(rate);
    }
    // What the decision itself costs a request: reading the rules and
    // deciding each class of the collection.
    let reader = anyam_policy::Reader::Local {
        user: "a1",
        org: "cert-a",
        access: Access {
            read: true,
            write: false,
        },
    };
    let t = Instant::now();
    let rounds = 10_000;
    for _ in 0..rounds {
        let rules = gate.rules(false).expect("rules");
        let v = gate
            .visible(&rules, &reader, COLL, anyam_policy::Path::Objects)
            .expect("visible");
        std::hint::black_box(v);
    }
    println!(
        "release decision per request (rules and classes): {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    );
    if let [all, some] = results[..] {
        println!(
            "restricted / unrestricted page rate: {:.2} (goal: at least 0.50)",
            some / all
        );
    }
}
