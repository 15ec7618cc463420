//! Deterministic generator of realistic STIX 2.1 objects for benchmarks.
//!
//! The mix imitates a national CERT's feed: seven in ten objects are
//! indicators with STIX patterns over IPv4 addresses, domains, URLs and file
//! hashes; the rest are malware, relationships from indicators to malware,
//! a pool of producer identities and the SCOs the indicators talk about.
//! Objects average about 500 bytes of JSON. Everything flows from one seeded
//! RNG, so `gen --seed S --count N` writes the same bytes every time, and the
//! ids are UUIDv4 in form (STIX 2.1 §2.9) while being reproducible. SCO ids
//! are the deterministic UUIDv5 ids the spec asks for.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// How many identities produce the feed; they are the first objects out.
const IDENTITIES: usize = 12;
/// How many recent indicator and malware ids relationships may point at.
const RECENT: usize = 256;
/// 2023-01-01T00:00:00Z, the start of the `created` range.
const EPOCH_START: i64 = 1_672_531_200;
/// About three and a half years of seconds, the width of that range.
const EPOCH_SPAN: i64 = 110_000_000;

/// STIX 2.1 §7.2.1.4: the TLP 1.0 marking definitions every node knows.
const TLP_WHITE: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
const TLP_GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";

const WORDS: &[&str] = &[
    "campaign",
    "observed",
    "infrastructure",
    "phishing",
    "loader",
    "beacon",
    "staging",
    "exfiltration",
    "credential",
    "harvesting",
    "targeting",
    "ministry",
    "energy",
    "sector",
    "botnet",
    "sinkholed",
    "reported",
    "partner",
    "CERT",
    "spear",
    "attachment",
    "macro",
    "payload",
    "dropper",
    "persistence",
    "lateral",
    "movement",
    "scanning",
    "exploitation",
    "VPN",
    "appliance",
    "ransomware",
    "affiliate",
    "wiper",
    "telecom",
    "operator",
    "watering",
    "hole",
    "typosquatted",
    "domain",
    "certificate",
    "reuse",
    "overlap",
    "cluster",
];
const TLDS: &[&str] = &[
    "com", "net", "org", "info", "xyz", "top", "ru", "cn", "io", "biz",
];
const MALWARE_TYPES: &[&str] = &[
    "ransomware",
    "trojan",
    "backdoor",
    "dropper",
    "remote-access-trojan",
    "wiper",
    "bot",
    "spyware",
];
const MALWARE_NAMES: &[&str] = &[
    "Ember",
    "Nightjar",
    "Cobalt",
    "Tidewater",
    "Marlin",
    "Kestrel",
    "Basilisk",
    "Harrow",
    "Quill",
    "Sable",
    "Onyx",
    "Vesper",
    "Juniper",
    "Gale",
    "Umbra",
    "Rook",
];
const INDICATOR_TYPES: &[&str] = &[
    "malicious-activity",
    "anomalous-activity",
    "attribution",
    "compromised",
];
const PHASES: &[&str] = &[
    "reconnaissance",
    "initial-access",
    "execution",
    "persistence",
    "command-and-control",
    "exfiltration",
    "lateral-movement",
    "impact",
];
const SECTORS: &[&str] = &[
    "government-national",
    "defense",
    "energy",
    "telecommunications",
    "financial-services",
];
const COUNTRIES: &[&str] = &["ID", "MY", "SG", "PH", "TH", "VN", "AU", "JP"];
const FILE_EXT: &[&str] = &["exe", "dll", "docm", "xlsm", "js", "ps1", "lnk", "iso"];

/// Produces the object stream; call [`Generator::next_object`] repeatedly.
pub struct Generator {
    rng: StdRng,
    n: u64,
    /// Offset that keeps the IPv4 SCOs of different seeds apart.
    ip_base: u32,
    identities: Vec<String>,
    indicators: Vec<String>,
    malware: Vec<String>,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut rng = StdRng::seed_from_u64(seed);
        let identities = (0..IDENTITIES)
            .map(|_| format!("identity--{}", uuid4(&mut rng)))
            .collect();
        Generator {
            rng,
            n: 0,
            ip_base: (seed as u32).wrapping_mul(0x9E37_79B9),
            identities,
            indicators: Vec::with_capacity(RECENT),
            malware: Vec::with_capacity(RECENT),
        }
    }

    /// The next object of the stream.
    pub fn next_object(&mut self) -> Value {
        let i = self.n;
        self.n += 1;
        if (i as usize) < IDENTITIES {
            return self.identity(i as usize);
        }
        let roll = self.rng.gen_range(0..100u32);
        match roll {
            0..70 => self.indicator(),
            70..78 => self.malware(),
            78..88 if !self.indicators.is_empty() && !self.malware.is_empty() => {
                self.relationship()
            }
            78..88 => self.malware(),
            88..91 => self.sco_ipv4(),
            91..95 => self.sco_domain(),
            95..98 => self.sco_url(),
            _ => self.sco_file(),
        }
    }

    fn remember(list: &mut Vec<String>, rng: &mut StdRng, id: String) {
        if list.len() < RECENT {
            list.push(id);
        } else {
            let k = rng.gen_range(0..RECENT);
            list[k] = id;
        }
    }

    fn identity(&mut self, k: usize) -> Value {
        let id = self.identities[k].clone();
        let (created, modified) = self.times();
        let country = pick(&mut self.rng, COUNTRIES);
        json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": id,
            "created": created,
            "modified": modified,
            "name": format!("National CSIRT {country} feed {k}"),
            "description": self.sentence(12),
            "identity_class": "organization",
            "sectors": [pick(&mut self.rng, SECTORS)],
            "contact_information": format!("soc-{k}@cert.example"),
            "object_marking_refs": [TLP_WHITE],
        })
    }

    fn indicator(&mut self) -> Value {
        let id = format!("indicator--{}", uuid4(&mut self.rng));
        Self::remember(&mut self.indicators, &mut self.rng, id.clone());
        let (created, modified) = self.times();
        let (name, pattern) = match self.rng.gen_range(0..10u32) {
            0..3 => {
                let ip = self.ipv4();
                (
                    format!("Malicious IP {ip}"),
                    format!("[ipv4-addr:value = '{ip}']"),
                )
            }
            3 => {
                let ip = self.ipv4();
                let net = ip
                    .rsplit_once('.')
                    .map_or(ip.clone(), |(head, _)| format!("{head}.0/24"));
                (
                    format!("Hostile network {net}"),
                    format!("[ipv4-addr:value ISSUBSET '{net}']"),
                )
            }
            4..6 => {
                let d = self.domain();
                (
                    format!("C2 domain {d}"),
                    format!("[domain-name:value = '{d}']"),
                )
            }
            6 => {
                let u = self.url();
                (
                    String::from("Malicious URL"),
                    format!("[url:value = '{u}']"),
                )
            }
            7 => {
                let (ip, d) = (self.ipv4(), self.domain());
                (
                    format!("C2 pair {d}"),
                    format!("[domain-name:value = '{d}'] OR [ipv4-addr:value = '{ip}']"),
                )
            }
            8 => {
                let h = hex(&mut self.rng, 32);
                (
                    String::from("Malicious file (SHA-256)"),
                    format!("[file:hashes.'SHA-256' = '{h}']"),
                )
            }
            _ => {
                let h = hex(&mut self.rng, 16);
                let ext = pick(&mut self.rng, FILE_EXT);
                (
                    format!("Dropper .{ext}"),
                    format!(
                        "[file:hashes.MD5 = '{h}' AND file:name MATCHES '^[a-z0-9_]+\\\\.{ext}$']"
                    ),
                )
            }
        };
        let mut o = json!({
            "type": "indicator",
            "spec_version": "2.1",
            "id": id,
            "created_by_ref": pick_id(&mut self.rng, &self.identities),
            "created": created,
            "modified": modified,
            "name": name,
            "indicator_types": [pick(&mut self.rng, INDICATOR_TYPES)],
            "pattern": pattern,
            "pattern_type": "stix",
            "pattern_version": "2.1",
            "valid_from": created,
            "confidence": self.rng.gen_range(30..=95u32),
            "object_marking_refs": [if self.rng.gen_bool(0.7) { TLP_GREEN } else { TLP_WHITE }],
        });
        // Optional properties, present as often as in typical feeds.
        if let Some(map) = o.as_object_mut() {
            if self.rng.gen_bool(0.4) {
                map.insert("description".into(), Value::from(self.sentence(6)));
            }
            if self.rng.gen_bool(0.5) {
                let phase = pick(&mut self.rng, PHASES);
                map.insert(
                    "kill_chain_phases".into(),
                    json!([{"kill_chain_name": "mitre-attack", "phase_name": phase}]),
                );
            }
        }
        o
    }

    fn malware(&mut self) -> Value {
        let id = format!("malware--{}", uuid4(&mut self.rng));
        Self::remember(&mut self.malware, &mut self.rng, id.clone());
        let (created, modified) = self.times();
        let name = format!(
            "{}{}",
            pick(&mut self.rng, MALWARE_NAMES),
            self.rng.gen_range(1..999u32)
        );
        json!({
            "type": "malware",
            "spec_version": "2.1",
            "id": id,
            "created_by_ref": pick_id(&mut self.rng, &self.identities),
            "created": created,
            "modified": modified,
            "name": name,
            "description": self.sentence(14),
            "malware_types": [pick(&mut self.rng, MALWARE_TYPES)],
            "is_family": true,
            "aliases": [format!("{name}-{}", hex(&mut self.rng, 2))],
            "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": pick(&mut self.rng, PHASES)}],
            "object_marking_refs": [TLP_GREEN],
        })
    }

    fn relationship(&mut self) -> Value {
        let id = format!("relationship--{}", uuid4(&mut self.rng));
        let (created, modified) = self.times();
        json!({
            "type": "relationship",
            "spec_version": "2.1",
            "id": id,
            "created_by_ref": pick_id(&mut self.rng, &self.identities),
            "created": created,
            "modified": modified,
            "relationship_type": "indicates",
            "source_ref": pick_id(&mut self.rng, &self.indicators),
            "target_ref": pick_id(&mut self.rng, &self.malware),
            "description": self.sentence(8),
            "confidence": self.rng.gen_range(30..=95u32),
            "object_marking_refs": [TLP_GREEN],
        })
    }

    /// An SCO with the deterministic id of STIX 2.1 §2.9.
    fn sco(ty: &str, mut body: Value) -> Value {
        let id = anyam_stix::deterministic_sco_id(ty, &body)
            .unwrap_or_else(|_| format!("{ty}--{}", uuid::Uuid::nil()));
        if let Some(map) = body.as_object_mut() {
            map.insert("type".into(), Value::from(ty));
            map.insert("spec_version".into(), Value::from("2.1"));
            map.insert("id".into(), Value::from(id));
        }
        body
    }

    fn sco_ipv4(&mut self) -> Value {
        // A bijection of the object counter, so no two IPv4 SCOs of one
        // stream share a value (and hence an id).
        let v = (self.n as u32)
            .wrapping_add(self.ip_base)
            .wrapping_mul(2_654_435_761);
        let [a, b, c, d] = v.to_be_bytes();
        Self::sco("ipv4-addr", json!({"value": format!("{a}.{b}.{c}.{d}")}))
    }

    fn sco_domain(&mut self) -> Value {
        let d = self.domain();
        Self::sco("domain-name", json!({"value": d}))
    }

    fn sco_url(&mut self) -> Value {
        let u = self.url();
        Self::sco("url", json!({"value": u}))
    }

    fn sco_file(&mut self) -> Value {
        let ext = pick(&mut self.rng, FILE_EXT);
        let name = format!(
            "{}_{}.{ext}",
            pick(&mut self.rng, WORDS).to_lowercase(),
            self.rng.gen_range(1..9999u32)
        );
        let body = json!({
            "hashes": {"SHA-256": hex(&mut self.rng, 32), "MD5": hex(&mut self.rng, 16)},
            "name": name,
            "size": self.rng.gen_range(1_000..5_000_000u64),
        });
        Self::sco("file", body)
    }

    fn ipv4(&mut self) -> String {
        let [a, b, c, d]: [u8; 4] = self.rng.r#gen();
        format!("{}.{b}.{c}.{}", a.max(1), d.max(1))
    }

    fn domain(&mut self) -> String {
        let label = alnum(&mut self.rng, 10);
        let word = pick(&mut self.rng, WORDS).to_lowercase();
        format!(
            "{label}.{word}-{}.{}",
            self.rng.gen_range(1..99u32),
            pick(&mut self.rng, TLDS)
        )
    }

    fn url(&mut self) -> String {
        let d = self.domain();
        let path = alnum(&mut self.rng, 12);
        format!(
            "https://{d}/{}/{path}.php?id={}",
            pick(&mut self.rng, WORDS).to_lowercase(),
            self.rng.gen_range(1..99999u32)
        )
    }

    /// `created` and `modified` (a little later, sometimes equal), with the
    /// millisecond precision STIX producers commonly use.
    fn times(&mut self) -> (String, String) {
        let created_ms = (EPOCH_START + self.rng.gen_range(0..EPOCH_SPAN)) * 1000
            + self.rng.gen_range(0..1000i64);
        let modified_ms = if self.rng.gen_bool(0.5) {
            created_ms
        } else {
            created_ms + self.rng.gen_range(0..30 * 86_400_000i64)
        };
        (millis(created_ms), millis(modified_ms))
    }

    fn sentence(&mut self, words: usize) -> String {
        let mut s = String::with_capacity(words * 9);
        for k in 0..words {
            if k > 0 {
                s.push(' ');
            }
            s.push_str(pick(&mut self.rng, WORDS));
        }
        s.push('.');
        s
    }
}

/// A UUIDv4 (version and variant bits set) drawn from the seeded RNG.
fn uuid4(rng: &mut StdRng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid()
}

fn pick(rng: &mut StdRng, items: &[&'static str]) -> &'static str {
    items
        .get(rng.gen_range(0..items.len().max(1)))
        .copied()
        .unwrap_or("")
}

fn pick_id(rng: &mut StdRng, items: &[String]) -> String {
    items
        .get(rng.gen_range(0..items.len().max(1)))
        .cloned()
        .unwrap_or_default()
}

fn hex(rng: &mut StdRng, bytes: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let b: u8 = rng.r#gen();
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn alnum(rng: &mut StdRng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

/// RFC 3339 UTC with exactly three fractional digits.
fn millis(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => String::from("2024-01-01T00:00:00.000Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_every_object_is_valid() {
        let mut a = Generator::new(7);
        let mut b = Generator::new(7);
        let mut bytes = 0usize;
        let mut ids = std::collections::HashSet::new();
        let count = 5_000;
        for _ in 0..count {
            let (x, y) = (a.next_object(), b.next_object());
            assert_eq!(x, y);
            if let Err(e) = anyam_stix::check_object(&x) {
                panic!("generated an invalid object: {e}\n{x}");
            }
            if let Some(p) = x.get("pattern").and_then(Value::as_str) {
                let v = anyam_pattern::validate(p, anyam_pattern::StixVersion::V2_1);
                assert!(v.is_valid(), "invalid pattern {p}: {:?}", v.errors);
            }
            let id = x.get("id").and_then(Value::as_str).map(str::to_owned);
            assert!(ids.insert(id), "duplicate id in {x}");
            bytes += x.to_string().len();
        }
        let mean = bytes / count;
        assert!((350..700).contains(&mean), "mean object size {mean}");
    }

    #[test]
    fn ids_are_uuid_v4_in_form() {
        let mut g = Generator::new(1);
        for _ in 0..100 {
            let o = g.next_object();
            let id = o.get("id").and_then(Value::as_str).unwrap_or_default();
            let (_, u) = id.split_once("--").unwrap_or_default();
            let u = uuid::Uuid::parse_str(u).unwrap_or_default();
            assert!(matches!(u.get_version_num(), 4 | 5), "{id}");
        }
    }

    #[test]
    fn millis_has_three_digits() {
        assert_eq!(millis(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }
}
