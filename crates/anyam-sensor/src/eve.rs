//! Suricata EVE JSON records (flow, dns, http, tls, fileinfo, alert) mapped to STIX 2.1 SCOs.
//!
//! Each line is read into borrowed structs holding only the fields mapped;
//! every other field is skipped by the JSON parser without being copied.
//! The app-layer objects (`dns`, `http`, `tls`, `fileinfo`) are mapped
//! whatever the `event_type`, so an alert carries whatever its record
//! carries (Suricata adds the app-layer metadata to alerts when asked).

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::event::{Objects, Traffic, json_error, key_of};
use crate::time::{format_stix, parse_iso};
use crate::zeek::{OptV, V};

type S<'a> = Option<Cow<'a, str>>;

#[derive(Deserialize)]
struct Eve<'a> {
    #[serde(borrow)]
    timestamp: S<'a>,
    #[serde(borrow)]
    event_type: S<'a>,
    #[serde(borrow)]
    src_ip: S<'a>,
    #[serde(borrow)]
    dest_ip: S<'a>,
    #[serde(borrow)]
    src_port: Option<OptV<'a>>,
    #[serde(borrow)]
    dest_port: Option<OptV<'a>>,
    #[serde(borrow)]
    proto: Option<OptV<'a>>,
    #[serde(borrow)]
    app_proto: S<'a>,
    #[serde(borrow)]
    icmp_type: Option<OptV<'a>>,
    #[serde(borrow)]
    icmp_code: Option<OptV<'a>>,
    #[serde(borrow)]
    flow: Option<Flow<'a>>,
    #[serde(borrow)]
    dns: Option<Dns<'a>>,
    #[serde(borrow)]
    http: Option<Http<'a>>,
    #[serde(borrow)]
    tls: Option<Tls<'a>>,
    #[serde(borrow)]
    fileinfo: Option<FileInfo<'a>>,
}

#[derive(Deserialize)]
struct Flow<'a> {
    #[serde(borrow)]
    start: S<'a>,
    #[serde(borrow)]
    end: S<'a>,
    #[serde(borrow)]
    bytes_toserver: Option<OptV<'a>>,
    #[serde(borrow)]
    bytes_toclient: Option<OptV<'a>>,
    #[serde(borrow)]
    pkts_toserver: Option<OptV<'a>>,
    #[serde(borrow)]
    pkts_toclient: Option<OptV<'a>>,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    rrname: S<'a>,
    #[serde(borrow)]
    rrtype: S<'a>,
    #[serde(borrow)]
    rdata: Option<OptV<'a>>,
}

#[derive(Deserialize)]
struct Grouped<'a> {
    #[serde(borrow, rename = "A")]
    a: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, rename = "AAAA")]
    aaaa: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, rename = "CNAME")]
    cname: Option<Vec<Cow<'a, str>>>,
}

/// All three DNS layouts: version 1 (one answer per record: `rrname`,
/// `rrtype`, `rdata`), version 2 (`answers` and/or `grouped`), and the
/// layout with a `queries` list.
#[derive(Deserialize)]
struct Dns<'a> {
    #[serde(borrow)]
    rrname: S<'a>,
    #[serde(borrow)]
    rrtype: S<'a>,
    #[serde(borrow)]
    rdata: Option<OptV<'a>>,
    #[serde(borrow)]
    queries: Option<Vec<Answer<'a>>>,
    #[serde(borrow)]
    answers: Option<Vec<Answer<'a>>>,
    #[serde(borrow)]
    grouped: Option<Grouped<'a>>,
}

#[derive(Deserialize)]
struct Http<'a> {
    #[serde(borrow)]
    hostname: S<'a>,
    #[serde(borrow)]
    url: S<'a>,
    #[serde(borrow)]
    http_user_agent: S<'a>,
    #[serde(borrow)]
    http_method: S<'a>,
    #[serde(borrow)]
    protocol: S<'a>,
    #[serde(borrow)]
    http_refer: S<'a>,
    #[serde(borrow)]
    http_port: Option<OptV<'a>>,
}

#[derive(Deserialize)]
struct Tls<'a> {
    #[serde(borrow)]
    subject: S<'a>,
    #[serde(borrow)]
    issuerdn: S<'a>,
    #[serde(borrow)]
    serial: S<'a>,
    #[serde(borrow)]
    fingerprint: S<'a>,
    #[serde(borrow)]
    sni: S<'a>,
    #[serde(borrow)]
    notbefore: S<'a>,
    #[serde(borrow)]
    notafter: S<'a>,
}

#[derive(Deserialize)]
struct FileInfo<'a> {
    #[serde(borrow)]
    filename: S<'a>,
    #[serde(borrow)]
    md5: S<'a>,
    #[serde(borrow)]
    sha1: S<'a>,
    #[serde(borrow)]
    sha256: S<'a>,
    #[serde(borrow)]
    size: Option<OptV<'a>>,
    /// Not written by Suricata itself, but by pipelines that add a MIME
    /// type; `magic` (libmagic's description) is not a MIME type and stays out.
    #[serde(borrow)]
    mimetype: S<'a>,
}

/// The result of reading one EVE line.
pub(crate) enum Eved {
    Event {
        first: i128,
        last: i128,
        objs: Objects,
    },
    Skip(String),
}

fn nonempty<'b>(s: &'b S<'_>) -> Option<&'b str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn shown(v: &V<'_>) -> String {
    v.to_string()
}

fn count(name: &str, v: &Option<OptV<'_>>) -> Result<Option<u64>, String> {
    match v.as_ref().and_then(|o| o.0.as_ref()) {
        None => Ok(None),
        Some(V::U(n)) => Ok(Some(*n)),
        Some(V::S(s)) if s.bytes().all(|c| c.is_ascii_digit()) && !s.is_empty() => s
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}: not a count: {s:?}")),
        Some(other) => Err(format!("{name}: not a count: {}", shown(other))),
    }
}

fn port(name: &str, v: &Option<OptV<'_>>) -> Result<Option<u64>, String> {
    match count(name, v) {
        Ok(Some(p)) if p <= 65535 => Ok(Some(p)),
        Ok(None) => Ok(None),
        _ => {
            let text = v
                .as_ref()
                .and_then(|o| o.0.as_ref())
                .map_or_else(String::new, shown);
            Err(format!("{name}: not a port number: {text}"))
        }
    }
}

fn ip(name: &str, v: &S<'_>) -> Result<Option<IpAddr>, String> {
    match nonempty(v) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}: not an IP address: {s:?}")),
    }
}

fn time(name: &str, v: &S<'_>) -> Result<Option<i128>, String> {
    match v.as_deref() {
        None => Ok(None),
        Some(s) => parse_iso(s)
            .map(Some)
            .ok_or_else(|| format!("{name}: not a timestamp: {s:?}")),
    }
}

fn hashes(pairs: &[(&str, &str, usize, Option<&str>)]) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for (field, name, len, v) in pairs {
        if let Some(raw) = v {
            // Suricata writes fingerprints as colon-separated hex pairs.
            let h: String = raw.chars().filter(|c| *c != ':').collect();
            if h.len() != *len || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("{field}: not a hex {name} digest: {raw:?}"));
            }
            m.insert((*name).into(), Value::String(h.to_ascii_lowercase()));
        }
    }
    Ok(m)
}

/// The record's transport protocol name, lowercase.
fn proto_name(v: &Option<OptV<'_>>) -> Option<String> {
    match v.as_ref().and_then(|o| o.0.as_ref()) {
        Some(V::S(s)) if !s.is_empty() => Some(s.to_ascii_lowercase()),
        Some(V::U(n)) => Some(n.to_string()),
        _ => None,
    }
}

const KINDS: &[&str] = &["flow", "dns", "http", "tls", "fileinfo", "alert"];

/// Reads one EVE line.
pub(crate) fn read_line(text: &str) -> Result<Eved, String> {
    let e: Eve<'_> =
        serde_json::from_str(text).map_err(|err| json_error("not an EVE record", text, &err))?;
    let Some(kind) = nonempty(&e.event_type) else {
        return Err("event_type: missing".into());
    };
    if !KINDS.contains(&kind) {
        return Ok(Eved::Skip(format!("eve {kind}")));
    }
    let ts = time("timestamp", &e.timestamp)?.ok_or("timestamp: missing")?;
    let (mut first, mut last) = (ts, ts);
    let mut objs = Objects::default();
    let src = ip("src_ip", &e.src_ip)?;
    let dst = ip("dest_ip", &e.dest_ip)?;
    let mut sp = port("src_port", &e.src_port)?;
    let mut dp = port("dest_port", &e.dest_port)?;
    if src.is_none() && dst.is_none() {
        return Err("src_ip: missing".into());
    }
    let proto = proto_name(&e.proto);
    if matches!(proto.as_deref(), Some("icmp" | "ipv6-icmp" | "icmpv6")) {
        sp = count("icmp_type", &e.icmp_type)?;
        dp = count("icmp_code", &e.icmp_code)?;
    }
    let mut apps: Vec<String> = Vec::with_capacity(2);
    if let Some(a) = nonempty(&e.app_proto)
        && !matches!(a, "failed" | "unknown")
    {
        apps.push(a.to_ascii_lowercase());
    }
    if matches!(kind, "dns" | "http" | "tls") && !apps.iter().any(|a| a == kind) {
        apps.push(kind.to_string());
    }
    let nt = objs.traffic(Traffic {
        src,
        dst,
        src_port: sp,
        dst_port: dp,
        proto,
        apps: &apps,
    });
    if let Some(f) = &e.flow {
        let start = time("flow.start", &f.start)?;
        let end = time("flow.end", &f.end)?;
        let mut props = Vec::new();
        for (name, k, v) in [
            ("flow.bytes_toserver", "src_byte_count", &f.bytes_toserver),
            ("flow.bytes_toclient", "dst_byte_count", &f.bytes_toclient),
            ("flow.pkts_toserver", "src_packets", &f.pkts_toserver),
            ("flow.pkts_toclient", "dst_packets", &f.pkts_toclient),
        ] {
            if let Some(n) = count(name, v)? {
                props.push((k, Value::from(n)));
            }
        }
        if kind == "flow" {
            if let Some(s) = start {
                props.push(("start", Value::String(format_stix(s))));
                first = s;
            }
            if let Some(en) = end {
                props.push(("end", Value::String(format_stix(en))));
                last = en.max(first);
            }
        }
        if let Some(m) = objs.get_mut(nt) {
            for (k, v) in props {
                m.insert(k.into(), v);
            }
        }
    }
    if let Some(d) = &e.dns {
        dns(d, &mut objs)?;
    }
    if let Some(h) = &e.http {
        http(h, nt, &mut objs)?;
    }
    if let Some(t) = &e.tls {
        tls(t, &mut objs)?;
    }
    if let Some(f) = &e.fileinfo {
        fileinfo(f, &mut objs)?;
    }
    Ok(Eved::Event { first, last, objs })
}

fn dns(d: &Dns<'_>, objs: &mut Objects) -> Result<(), String> {
    let qname = nonempty(&d.rrname).or_else(|| {
        d.queries
            .as_ref()
            .and_then(|q| q.first())
            .and_then(|q| nonempty(&q.rrname))
    });
    let Some(qi) = qname.and_then(|q| objs.domain(q)) else {
        return Ok(());
    };
    let mut answers: Vec<(&str, &str)> = Vec::new();
    let rdata = |v: &Option<OptV<'_>>| -> Option<String> {
        match v.as_ref().and_then(|o| o.0.as_ref()) {
            Some(V::S(s)) => Some(s.to_string()),
            _ => None,
        }
    };
    let mut owned: Vec<(String, String)> = Vec::new();
    if let Some(list) = &d.answers {
        for a in list {
            if let (Some(t), Some(r)) = (nonempty(&a.rrtype), rdata(&a.rdata)) {
                owned.push((t.to_string(), r));
            }
        }
    } else if let Some(g) = &d.grouped {
        for (t, list) in [("A", &g.a), ("AAAA", &g.aaaa), ("CNAME", &g.cname)] {
            for r in list.iter().flatten() {
                answers.push((t, r));
            }
        }
    } else if let (Some(t), Some(r)) = (nonempty(&d.rrtype), rdata(&d.rdata)) {
        owned.push((t.to_string(), r));
    }
    answers.extend(owned.iter().map(|(t, r)| (t.as_str(), r.as_str())));
    let mut refs: Vec<Value> = Vec::new();
    for (t, r) in answers {
        let i = match t {
            "A" | "AAAA" => match r.parse::<IpAddr>() {
                Ok(a) => Some(objs.ip(a)),
                Err(_) => return Err(format!("dns answer {t}: not an IP address: {r:?}")),
            },
            "CNAME" => objs.domain(r),
            _ => None,
        };
        if let Some(i) = i
            && i != qi
            && !refs.contains(&key_of(i))
        {
            refs.push(key_of(i));
        }
    }
    if !refs.is_empty()
        && let Some(m) = objs.get_mut(qi)
    {
        m.insert("resolves_to_refs".into(), Value::Array(refs));
    }
    Ok(())
}

fn http(h: &Http<'_>, nt: usize, objs: &mut Objects) -> Result<(), String> {
    let host = nonempty(&h.hostname);
    if let Some(name) = host {
        objs.domain(name);
    }
    let path = nonempty(&h.url);
    // Suricata logs the Host header's port apart (`http_port`) when the
    // client gave one; the flow's ports say nothing about the URL (a
    // fileinfo record may run server to client).
    let port = port("http.http_port", &h.http_port)?;
    if let Some(u) = path {
        let url = if u.starts_with("http://") || u.starts_with("https://") {
            Some(u.to_string())
        } else {
            host.map(|hn| {
                let port_part = match port {
                    Some(p) if p != 80 => format!(":{p}"),
                    _ => String::new(),
                };
                let slash = if u.starts_with('/') { "" } else { "/" };
                format!("http://{hn}{port_part}{slash}{u}")
            })
        };
        if let Some(url) = url {
            objs.url(&url);
        }
    }
    if let (Some(method), Some(u)) = (nonempty(&h.http_method), path) {
        // http-request-ext (STIX 2.1 §6.12.2).
        let mut ext = Map::new();
        ext.insert("request_method".into(), Value::String(method.into()));
        ext.insert("request_value".into(), Value::String(u.into()));
        if let Some(p) = nonempty(&h.protocol) {
            ext.insert(
                "request_version".into(),
                Value::String(p.to_ascii_lowercase()),
            );
        }
        let mut headers = Map::new();
        for (name, v) in [
            ("Host", host),
            ("User-Agent", nonempty(&h.http_user_agent)),
            ("Referer", nonempty(&h.http_refer)),
        ] {
            if let Some(v) = v {
                headers.insert(name.into(), Value::String(v.into()));
            }
        }
        if !headers.is_empty() {
            ext.insert("request_header".into(), Value::Object(headers));
        }
        if let Some(m) = objs.get_mut(nt) {
            let mut exts = Map::new();
            exts.insert("http-request-ext".into(), Value::Object(ext));
            m.insert("extensions".into(), Value::Object(exts));
        }
    }
    Ok(())
}

fn tls(t: &Tls<'_>, objs: &mut Objects) -> Result<(), String> {
    if let Some(sni) = nonempty(&t.sni) {
        objs.domain(sni);
    }
    let mut m = Map::new();
    let h = hashes(&[("tls.fingerprint", "SHA-1", 40, nonempty(&t.fingerprint))])?;
    if !h.is_empty() {
        m.insert("hashes".into(), Value::Object(h));
    }
    for (k, v) in [
        ("serial_number", &t.serial),
        ("subject", &t.subject),
        ("issuer", &t.issuerdn),
    ] {
        if let Some(v) = nonempty(v) {
            m.insert(k.into(), Value::String(v.into()));
        }
    }
    for (name, k, v) in [
        ("tls.notbefore", "validity_not_before", &t.notbefore),
        ("tls.notafter", "validity_not_after", &t.notafter),
    ] {
        if let Some(ts) = time(name, v)? {
            m.insert(k.into(), Value::String(format_stix(ts)));
        }
    }
    if !m.is_empty() {
        m.insert("type".into(), Value::String("x509-certificate".into()));
        objs.push(m);
    }
    Ok(())
}

fn fileinfo(f: &FileInfo<'_>, objs: &mut Objects) -> Result<(), String> {
    let mut m = Map::new();
    let h = hashes(&[
        ("fileinfo.md5", "MD5", 32, nonempty(&f.md5)),
        ("fileinfo.sha1", "SHA-1", 40, nonempty(&f.sha1)),
        ("fileinfo.sha256", "SHA-256", 64, nonempty(&f.sha256)),
    ])?;
    if !h.is_empty() {
        m.insert("hashes".into(), Value::Object(h));
    }
    if let Some(n) = nonempty(&f.filename) {
        m.insert("name".into(), Value::String(n.into()));
    }
    // STIX 2.1 §6.7: a file needs hashes or a name.
    if m.is_empty() {
        return Ok(());
    }
    if let Some(n) = count("fileinfo.size", &f.size)? {
        m.insert("size".into(), n.into());
    }
    if let Some(t) = nonempty(&f.mimetype) {
        m.insert("mime_type".into(), Value::String(t.into()));
    }
    m.insert("type".into(), Value::String("file".into()));
    objs.push(m);
    Ok(())
}
