//! Records per second through the public API (open a file, iterate events) for Zeek TSV and JSON conn, EVE flow/dns/http and STIX lines, on generated input.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;

use anyam_sensor::{InputSpec, Options, Record, open};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const N: usize = 20_000;

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

fn zeek_tsv_conn() -> String {
    let mut s = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-01-01-00-00-00\n\
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n\
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n",
    );
    for i in 0..N {
        s.push_str(&format!(
            "{}.{:06}\tC{i:017}\t{}\t{}\t198.51.100.{}\t443\ttcp\tssl\t0.{:06}\t{}\t{}\tSF\tT\tF\t0\tShADadFf\t8\t849\t9\t4568\t(empty)\n",
            1_767_225_600 + i / 100,
            i % 1_000_000,
            ip(i),
            1024 + i % 60000,
            i % 250,
            i % 999_999,
            i * 3,
            i * 7
        ));
    }
    s
}

fn zeek_json_conn() -> String {
    let mut s = String::new();
    for i in 0..N {
        s.push_str(&format!(
            "{{\"ts\":{}.{:06},\"uid\":\"C{i:017}\",\"id.orig_h\":\"{}\",\"id.orig_p\":{},\"id.resp_h\":\"198.51.100.{}\",\"id.resp_p\":443,\"proto\":\"tcp\",\"service\":\"ssl\",\"duration\":0.5,\"orig_bytes\":{},\"resp_bytes\":{},\"conn_state\":\"SF\",\"missed_bytes\":0,\"history\":\"ShADadFf\",\"orig_pkts\":8,\"orig_ip_bytes\":849,\"resp_pkts\":9,\"resp_ip_bytes\":4568}}\n",
            1_767_225_600 + i / 100,
            i % 1_000_000,
            ip(i),
            1024 + i % 60000,
            i % 250,
            i * 3,
            i * 7
        ));
    }
    s
}

fn eve_mix() -> String {
    let mut s = String::new();
    for i in 0..N {
        let head = format!(
            "\"timestamp\":\"2026-01-02T03:04:{:02}.{:06}+0100\",\"flow_id\":{i},\"in_iface\":\"eth0\",\"src_ip\":\"{}\",\"src_port\":{},\"dest_ip\":\"198.51.100.{}\"",
            i % 60,
            i % 1_000_000,
            ip(i),
            1024 + i % 60000,
            i % 250
        );
        let line = match i % 3 {
            0 => format!(
                "{{{head},\"event_type\":\"flow\",\"dest_port\":443,\"proto\":\"TCP\",\"app_proto\":\"tls\",\"flow\":{{\"pkts_toserver\":10,\"pkts_toclient\":12,\"bytes_toserver\":1500,\"bytes_toclient\":9000,\"start\":\"2026-01-02T03:04:00.000000+0100\",\"end\":\"2026-01-02T03:04:05.000000+0100\",\"age\":5,\"state\":\"closed\",\"reason\":\"timeout\",\"alerted\":false}}}}\n"
            ),
            1 => format!(
                "{{{head},\"event_type\":\"dns\",\"dest_port\":53,\"proto\":\"UDP\",\"dns\":{{\"version\":2,\"type\":\"answer\",\"id\":{i},\"rrname\":\"host{i}.example.com\",\"rrtype\":\"A\",\"rcode\":\"NOERROR\",\"answers\":[{{\"rrname\":\"host{i}.example.com\",\"rrtype\":\"A\",\"ttl\":60,\"rdata\":\"{}\"}}]}}}}\n",
                ip(i + 7)
            ),
            _ => format!(
                "{{{head},\"event_type\":\"http\",\"dest_port\":80,\"proto\":\"TCP\",\"tx_id\":0,\"http\":{{\"hostname\":\"www{}.example.org\",\"url\":\"/path/{i}?q=1\",\"http_user_agent\":\"Mozilla/5.0 (X11; Linux x86_64)\",\"http_content_type\":\"text/html\",\"http_method\":\"GET\",\"protocol\":\"HTTP/1.1\",\"status\":200,\"length\":1234}}}}\n",
                i % 100
            ),
        };
        s.push_str(&line);
    }
    s
}

fn stix_lines() -> String {
    let mut s = String::new();
    for i in 0..N {
        s.push_str(&format!(
            "{{\"type\":\"observed-data\",\"spec_version\":\"2.1\",\"id\":\"observed-data--00000000-0000-4000-8000-{i:012}\",\"created\":\"2026-01-03T00:00:00.000Z\",\"modified\":\"2026-01-03T00:00:00.000Z\",\"first_observed\":\"2026-01-03T00:00:00Z\",\"last_observed\":\"2026-01-03T00:00:00Z\",\"number_observed\":1,\"objects\":{{\"0\":{{\"type\":\"ipv4-addr\",\"value\":\"{}\"}},\"1\":{{\"type\":\"network-traffic\",\"dst_ref\":\"0\",\"dst_port\":443,\"protocols\":[\"ipv4\",\"tcp\"]}}}}}}\n",
            ip(i)
        ));
    }
    s
}

fn run(spec: &InputSpec) -> usize {
    let input = open(spec, &Options::default()).unwrap();
    let mut n = 0;
    for r in input {
        if let Record::Event(e) = r {
            n += e.observation.objects.len();
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str, String); 4] = [
        ("zeek_tsv_conn", "zeek", "conn.log", zeek_tsv_conn()),
        ("zeek_json_conn", "zeek", "conn.json.log", zeek_json_conn()),
        ("eve_flow_dns_http", "eve", "eve.json", eve_mix()),
        ("stix_lines", "stix", "stix.jsonl", stix_lines()),
    ];
    let mut g = c.benchmark_group("parse");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    for (name, format, file, text) in &cases {
        let path = dir.path().join(file);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let spec: InputSpec = format!("{format}:{}", Path::new(&path).display())
            .parse()
            .unwrap();
        assert!(run(&spec) >= N, "{name}: every record an event");
        g.bench_function(*name, |b| b.iter(|| run(&spec)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
