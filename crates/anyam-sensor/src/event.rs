//! What a reader yields: events (an observation plus where it came from), malformed-line reports, skipped records, statistics; and the conversion of an event to STIX 2.1 objects.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyam_pattern::observations::Observation;
use serde_json::{Map, Value};

use crate::Error;
use crate::time::format_stix;

/// One sensor record as an observation, with where it was read.
#[derive(Debug, Clone)]
pub struct Event {
    /// The observation in the form the matcher takes. For Zeek and EVE
    /// records it is the STIX 2.0-style embedded form: `embedded: true`,
    /// `id: None`, objects keyed `"0"`, `"1"`, … with `*_ref(s)` naming those
    /// keys. For STIX input it is what `Observations::from_json` gives.
    pub observation: Observation,
    /// The input label, e.g. `zeek:/var/log/zeek/conn.log`.
    pub input: Arc<str>,
    /// The file actually read (`-` for standard input).
    pub file: Arc<str>,
    /// The 1-based line number in `file`.
    pub line: u64,
}

/// A line that could not be read as a record of its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub input: Arc<str>,
    pub file: Arc<str>,
    /// The 1-based line number; 0 for a read error, which no line holds.
    pub line: u64,
    /// What is wrong, naming the field and quoting the bad text.
    pub reason: String,
}

/// What a reader yields, in input order.
#[derive(Debug, Clone)]
pub enum Record {
    Event(Event),
    Malformed(Malformed),
    /// A well-formed record of a kind this crate does not map (a Zeek
    /// `weird.log` line, an EVE `stats` event, …): counted, not lost.
    Skipped {
        input: Arc<str>,
        file: Arc<str>,
        line: u64,
        /// The kind skipped, e.g. `zeek weird`, `eve stats`.
        what: String,
    },
}

impl Record {
    /// The event time used to merge inputs: `first` of the observation.
    /// Reports have none and go out as soon as they reach the head.
    pub fn time(&self) -> Option<i128> {
        match self {
            Record::Event(e) => Some(e.observation.first),
            _ => None,
        }
    }
}

/// Per-input counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every line read, headers and blank lines included.
    pub lines: u64,
    pub events: u64,
    pub malformed: u64,
    pub skipped: u64,
    /// Records and cache entries the Zeek joiner holds now.
    pub join_state: u64,
    /// The most it ever held.
    pub join_state_max: u64,
}

/// Shared counters, so statistics can be read while another thread drives
/// the reader (follow mode).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub lines: AtomicU64,
    pub events: AtomicU64,
    pub malformed: AtomicU64,
    pub skipped: AtomicU64,
    pub join_state: AtomicU64,
    pub join_state_max: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        Stats {
            lines: self.lines.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            join_state: self.join_state.load(Ordering::Relaxed),
            join_state_max: self.join_state_max.load(Ordering::Relaxed),
        }
    }

    pub fn count(&self, r: &Record) {
        let c = match r {
            Record::Event(_) => &self.events,
            Record::Malformed(_) => &self.malformed,
            Record::Skipped { .. } => &self.skipped,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_join_state(&self, n: u64) {
        self.join_state.store(n, Ordering::Relaxed);
        self.join_state_max.fetch_max(n, Ordering::Relaxed);
    }
}

/// Builds the embedded objects of one observation: keys `"0"`, `"1"`, …
/// in push order, addresses and domain names de-duplicated.
#[derive(Debug, Default)]
pub(crate) struct Objects {
    pub list: Vec<(String, Value)>,
}

/// A connection tuple, as sensors log it.
pub(crate) struct Traffic<'a> {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_port: Option<u64>,
    pub dst_port: Option<u64>,
    /// The transport, lowercase.
    pub proto: Option<String>,
    /// Application protocols, lowercase.
    pub apps: &'a [String],
}

/// Dotted-quad text without the formatting machinery (one per address).
fn v4_text(a: std::net::Ipv4Addr) -> String {
    let mut s = String::with_capacity(15);
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if o >= 100 {
            s.push((b'0' + o / 100) as char);
        }
        if o >= 10 {
            s.push((b'0' + (o / 10) % 10) as char);
        }
        s.push((b'0' + o % 10) as char);
    }
    s
}

/// The embedded key of the `i`th object: `"0"`, `"1"`, …
fn key_string(i: usize) -> String {
    const KEYS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match KEYS.get(i) {
        Some(k) => String::from(*k),
        None => i.to_string(),
    }
}

pub(crate) fn key_of(i: usize) -> Value {
    Value::String(key_string(i))
}

impl Objects {
    pub fn push(&mut self, obj: Map<String, Value>) -> usize {
        let i = self.list.len();
        self.list.push((key_string(i), Value::Object(obj)));
        i
    }

    fn find_value(&self, ty: &str, value: &str) -> Option<usize> {
        self.list.iter().position(|(_, o)| {
            o.get("type").and_then(Value::as_str) == Some(ty)
                && o.get("value").and_then(Value::as_str) == Some(value)
        })
    }

    fn valued(&mut self, ty: &'static str, value: &str) -> usize {
        if let Some(i) = self.find_value(ty, value) {
            return i;
        }
        let mut m = Map::new();
        m.insert("type".into(), Value::String(ty.into()));
        m.insert("value".into(), Value::String(value.into()));
        self.push(m)
    }

    /// An `ipv4-addr` or `ipv6-addr` (STIX 2.1 §6.8, §6.9) for a parsed address.
    pub fn ip(&mut self, ip: IpAddr) -> usize {
        match ip {
            IpAddr::V4(a) => self.valued("ipv4-addr", &v4_text(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                // An IPv4-mapped IPv6 address is the IPv4 host: indicators name it so.
                Some(v4) => self.valued("ipv4-addr", &v4_text(v4)),
                None => self.valued("ipv6-addr", &a.to_string()),
            },
        }
    }

    /// A `domain-name` (STIX 2.1 §6.4), or `None` when the text is not
    /// shaped like one (Zeek and Suricata log whatever a client asked for).
    pub fn domain(&mut self, name: &str) -> Option<usize> {
        is_domain(name).then(|| self.valued("domain-name", name))
    }

    /// A `url` (STIX 2.1 §6.15). Sensors log request targets as sent, and
    /// clients do send spaces and raw bytes; RFC 3986 §2.1 percent-encodes
    /// them, so the value is a URL indicators can name.
    pub fn url(&mut self, url: &str) -> usize {
        let clean = url.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
                )
        });
        if clean {
            return self.valued("url", url);
        }
        let mut enc = String::with_capacity(url.len() + 8);
        for b in url.bytes() {
            if b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
                )
            {
                enc.push(b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        self.valued("url", &enc)
    }

    /// Adds a network-traffic (STIX 2.1 §6.12) and its addresses; returns
    /// its index. `protocols` lists the IP version, the transport and the
    /// application protocols, lowercase, lowest layer first (§6.12).
    pub fn traffic(&mut self, t: Traffic<'_>) -> usize {
        let nt = self.push(Map::new());
        let mut m = Map::new();
        m.insert("type".into(), Value::String("network-traffic".into()));
        if let Some(a) = t.src {
            m.insert("src_ref".into(), key_of(self.ip(a)));
        }
        if let Some(a) = t.dst {
            m.insert("dst_ref".into(), key_of(self.ip(a)));
        }
        let mut protocols = Vec::with_capacity(2 + t.apps.len());
        let v6 = t.src.or(t.dst).is_some_and(|a| match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().is_none(),
            IpAddr::V4(_) => false,
        });
        protocols.push(Value::String(if v6 { "ipv6" } else { "ipv4" }.into()));
        let icmp = matches!(
            t.proto.as_deref(),
            Some("icmp" | "icmp6" | "ipv6-icmp" | "icmpv6")
        );
        if let Some(p) = t.proto {
            protocols.push(Value::String(p));
        }
        for a in t.apps {
            if !protocols.iter().any(|p| p.as_str() == Some(a.as_str())) {
                protocols.push(Value::String(a.clone()));
            }
        }
        if icmp {
            // ICMP has no ports: sensors log its type and code in the port
            // fields, and STIX has the icmp-ext for them (§6.12.3), in hex.
            if let (Some(ty), Some(code)) = (t.src_port, t.dst_port)
                && ty <= 255
                && code <= 255
            {
                let mut ext = Map::new();
                ext.insert("icmp_type_hex".into(), Value::String(format!("{ty:02x}")));
                ext.insert("icmp_code_hex".into(), Value::String(format!("{code:02x}")));
                let mut exts = Map::new();
                exts.insert("icmp-ext".into(), Value::Object(ext));
                m.insert("extensions".into(), Value::Object(exts));
            }
        } else {
            if let Some(p) = t.src_port {
                m.insert("src_port".into(), p.into());
            }
            if let Some(p) = t.dst_port {
                m.insert("dst_port".into(), p.into());
            }
        }
        m.insert("protocols".into(), Value::Array(protocols));
        if let Some(slot) = self.get_mut(nt) {
            *slot = m;
        }
        nt
    }

    /// Appends another observation's objects (used by the Zeek joins),
    /// renumbering their references. Plain addresses, domain names and
    /// URLs already present are reused rather than repeated: a file and its
    /// connection name the same hosts.
    pub fn append(&mut self, frag: &[Value]) {
        let base = self.list.len();
        let mut next = base;
        let mut map = Vec::with_capacity(frag.len());
        for obj in frag {
            let plain = obj.as_object().is_some_and(|m| m.len() == 2);
            let found = match (
                obj.get("type").and_then(Value::as_str),
                obj.get("value").and_then(Value::as_str),
            ) {
                (Some(t), Some(v)) if plain => self.find_value(t, v),
                _ => None,
            };
            map.push(found.unwrap_or_else(|| {
                next += 1;
                next - 1
            }));
        }
        for (j, obj) in frag.iter().enumerate() {
            if map[j] < base {
                continue;
            }
            let mut obj = obj.clone();
            renumber(&mut obj, &map);
            let i = self.list.len();
            self.list.push((key_string(i), obj));
        }
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Map<String, Value>> {
        self.list.get_mut(i).and_then(|(_, v)| v.as_object_mut())
    }
}

fn is_ref_key(k: &str) -> bool {
    k.ends_with("_ref") || k.ends_with("_refs")
}

/// Maps every embedded reference key `n` in `v` to `map[n]`.
fn renumber(v: &mut Value, map: &[usize]) {
    if let Value::Object(m) = v {
        for (k, val) in m.iter_mut() {
            if is_ref_key(k) {
                match val {
                    Value::String(s) => shift(s, map),
                    Value::Array(a) => {
                        for x in a {
                            if let Value::String(s) = x {
                                shift(s, map);
                            }
                        }
                    }
                    _ => {}
                }
            } else {
                renumber(val, map);
            }
        }
    }
}

fn shift(s: &mut String, map: &[usize]) {
    if let Some(m) = s.parse::<usize>().ok().and_then(|n| map.get(n)) {
        *s = m.to_string();
    }
}

/// The shape STIX 2.1 §6.4 asks of a domain name (RFC 1034): dot-separated
/// labels of 1 to 63 characters, at most 253 in all, no spaces, controls or
/// URL punctuation. IP literals are not domain names.
pub(crate) fn is_domain(s: &str) -> bool {
    let name = s.strip_suffix('.').unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<IpAddr>().is_err()
        && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
        && !name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | ':' | '\\' | '?' | '#')
        })
}

/// Describes a JSON error on `line` with the text just before where the
/// parser stopped, so the report shows the field at fault even when the
/// parser's own message names only a type ("expected u64").
pub(crate) fn json_error(what: &str, line: &str, e: &serde_json::Error) -> String {
    let col = e.column().min(line.len());
    let mut start = col.saturating_sub(40);
    while !line.is_char_boundary(start) {
        start += 1;
    }
    let mut end = col;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let near = line.get(start..end).unwrap_or("");
    format!("{what}: {e}, near {near:?}")
}

/// The identity and creation time given to the observed-data of
/// [`Event::to_stix21`].
#[derive(Debug, Clone, Default)]
pub struct StixOptions {
    /// The observed-data id; a fresh UUIDv4 id when `None`.
    pub id: Option<String>,
    /// `created_by_ref`, the node's identity.
    pub created_by_ref: Option<String>,
    /// `created` and `modified`, nanoseconds since the epoch; the wall clock when `None`.
    pub created: Option<i128>,
}

impl Event {
    /// The event as STIX 2.1 objects: first an observed-data (STIX 2.1
    /// §4.14) with `first_observed`, `last_observed`, `number_observed` and
    /// `object_refs`, then its SCOs with deterministic ids (§2.9) and their
    /// references rewritten to those ids. Sightings cite the observed-data in
    /// `observed_data_refs`.
    pub fn to_stix21(&self, opts: &StixOptions) -> Result<Vec<Value>, Error> {
        let obs = &self.observation;
        // Which entries are SCOs: an observed-data in the list is the 2.1
        // form's header (STIX input), not an observed object.
        let scos: Vec<(&str, &Value)> = obs
            .objects
            .iter()
            .filter(|(_, o)| o.get("type").and_then(Value::as_str) != Some("observed-data"))
            .map(|(k, o)| (k.as_str(), o))
            .collect();
        let mut ids: Vec<Option<String>> = vec![None; scos.len()];
        let key_index = |k: &str| scos.iter().position(|(key, _)| *key == k);
        // An SCO's id depends on the ids of what it references (network-traffic
        // `src_ref` is ID-contributing, §6.12), so ids are assigned leaves first.
        let mut progress = true;
        while progress {
            progress = false;
            for i in 0..scos.len() {
                if ids[i].is_some() {
                    continue;
                }
                let (key, obj) = scos[i];
                if !obs.embedded && obj.get("id").and_then(Value::as_str) == Some(key) {
                    ids[i] = Some(key.to_string());
                    progress = true;
                    continue;
                }
                let mut deps_ready = true;
                let mut rewritten = obj.clone();
                rewrite_refs(&mut rewritten, &mut |r| match key_index(r) {
                    Some(j) => match &ids[j] {
                        Some(id) => Some(id.clone()),
                        None => {
                            deps_ready = false;
                            None
                        }
                    },
                    None => None,
                });
                if deps_ready {
                    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
                    ids[i] = Some(anyam_stix::deterministic_sco_id(ty, &rewritten)?);
                    progress = true;
                }
            }
        }
        // Cycles cannot be ordered: fall back to random ids (§2.9 allows UUIDv4).
        for (i, id) in ids.iter_mut().enumerate() {
            if id.is_none() {
                let ty = scos[i].1.get("type").and_then(Value::as_str).unwrap_or("");
                *id = Some(format!("{ty}--{}", uuid::Uuid::new_v4()));
            }
        }
        let ids: Vec<String> = ids.into_iter().flatten().collect();
        let mut out = Vec::with_capacity(scos.len() + 1);
        // `created` and `modified` must carry at least milliseconds (STIX 2.1 §3.2).
        let mut created = format_stix(opts.created.unwrap_or_else(crate::time::wall_clock));
        if !created.contains('.') {
            created.insert_str(created.len() - 1, ".000");
        }
        let mut od = Map::new();
        od.insert("type".into(), "observed-data".into());
        od.insert("spec_version".into(), "2.1".into());
        let id = opts
            .id
            .clone()
            .unwrap_or_else(|| format!("observed-data--{}", uuid::Uuid::new_v4()));
        od.insert("id".into(), id.into());
        if let Some(c) = &opts.created_by_ref {
            od.insert("created_by_ref".into(), c.clone().into());
        }
        od.insert("created".into(), created.clone().into());
        od.insert("modified".into(), created.into());
        od.insert("first_observed".into(), format_stix(obs.first).into());
        od.insert("last_observed".into(), format_stix(obs.last).into());
        od.insert("number_observed".into(), obs.count.into());
        // Two embedded objects with the same content get the same
        // deterministic id: the STIX form lists it once.
        let mut unique: Vec<usize> = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if !ids[..i].contains(id) {
                unique.push(i);
            }
        }
        od.insert(
            "object_refs".into(),
            Value::Array(
                unique
                    .iter()
                    .map(|&i| Value::String(ids[i].clone()))
                    .collect(),
            ),
        );
        out.push(Value::Object(od));
        for i in unique {
            let obj = scos[i].1;
            let mut o = obj.clone();
            rewrite_refs(&mut o, &mut |r| key_index(r).map(|j| ids[j].clone()));
            if let Value::Object(m) = &mut o {
                m.insert("id".into(), ids[i].clone().into());
                m.entry("spec_version").or_insert_with(|| "2.1".into());
            }
            out.push(o);
        }
        Ok(out)
    }
}

/// Replaces each reference value `r` in `v` by `f(r)` when that is `Some`.
fn rewrite_refs(v: &mut Value, f: &mut dyn FnMut(&str) -> Option<String>) {
    if let Value::Object(m) = v {
        for (k, val) in m.iter_mut() {
            if k == "id" {
                continue;
            }
            if is_ref_key(k) {
                match val {
                    Value::String(s) => {
                        if let Some(n) = f(s) {
                            *s = n;
                        }
                    }
                    Value::Array(a) => {
                        for x in a {
                            if let Value::String(s) = x
                                && let Some(n) = f(s)
                            {
                                *s = n;
                            }
                        }
                    }
                    _ => {}
                }
            } else {
                rewrite_refs(val, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn v4_text_is_canonical() {
        for a in ["0.0.0.0", "192.0.2.10", "255.255.255.255", "10.100.9.99"] {
            assert_eq!(v4_text(a.parse().unwrap()), a);
        }
    }

    #[test]
    fn domain_shapes() {
        for (s, ok) in [
            ("example.com", true),
            ("_ldap._tcp.dc.example.com", true),
            ("example.com.", true),
            ("192.0.2.1", false),
            ("a b.com", false),
            ("", false),
            ("x..y", false),
            ("http://x", false),
        ] {
            assert_eq!(is_domain(s), ok, "{s}");
        }
    }

    #[test]
    fn append_renumbers_refs() {
        let mut o = Objects::default();
        o.domain("a.example");
        o.ip("192.0.2.9".parse().unwrap());
        o.append(&[
            serde_json::json!({"type": "ipv4-addr", "value": "192.0.2.1"}),
            serde_json::json!({"type": "ipv4-addr", "value": "192.0.2.9"}),
            serde_json::json!({"type": "network-traffic", "src_ref": "0", "dst_ref": "1",
                "protocols": ["tcp"], "extensions": {"x": {"body_ref": "0"}}}),
        ]);
        assert_eq!(o.list.len(), 4, "192.0.2.9 is reused");
        assert_eq!(o.list[3].1["src_ref"], "2");
        assert_eq!(o.list[3].1["dst_ref"], "1");
        assert_eq!(o.list[3].1["extensions"]["x"]["body_ref"], "2");
    }
}
