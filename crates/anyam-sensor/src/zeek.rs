//! Zeek logs (TSV with `#` headers, or JSON lines) mapped to STIX 2.1 SCOs: conn, dns, http, ssl, x509 and files, joined across logs.
//!
//! A record is first read into [`Rec`], a fixed table of the fields this
//! crate maps (everything else is skipped without being copied), from
//! either format; then one function per log turns it into objects. TSV
//! values stay borrowed from the line unless they carry `\xHH` escapes.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::event::{Objects, Traffic, json_error, key_of};
use crate::time::{format_stix, from_float_secs, parse_epoch, parse_iso};

macro_rules! fields {
    ($($v:ident = $n:literal),* $(,)?) => {
        /// The Zeek fields this crate reads.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum F { $($v),* }
        const NAMES: &[&str] = &[$($n),*];
        fn field(name: &str) -> Option<F> {
            match name { $($n => Some(F::$v),)* _ => None }
        }
    };
}

fields! {
    Ts = "ts", Uid = "uid", OrigH = "id.orig_h", OrigP = "id.orig_p", RespH = "id.resp_h",
    RespP = "id.resp_p", Proto = "proto", Service = "service", Duration = "duration",
    OrigBytes = "orig_bytes", RespBytes = "resp_bytes", OrigPkts = "orig_pkts",
    RespPkts = "resp_pkts", Query = "query", Answers = "answers", Method = "method",
    Host = "host", Uri = "uri", Version = "version", UserAgent = "user_agent",
    Referrer = "referrer", ServerName = "server_name", Subject = "subject", Issuer = "issuer",
    IssuerSubject = "issuer_subject", NotValidBefore = "not_valid_before",
    NotValidAfter = "not_valid_after", CertHash = "cert_hash", CertChainFuids = "cert_chain_fuids",
    CertChainFps = "cert_chain_fps", Id = "id", Fingerprint = "fingerprint",
    CertVersion = "certificate.version", CertSerial = "certificate.serial",
    CertSubject = "certificate.subject", CertIssuer = "certificate.issuer",
    CertNotBefore = "certificate.not_valid_before", CertNotAfter = "certificate.not_valid_after",
    CertKeyAlg = "certificate.key_alg", CertSigAlg = "certificate.sig_alg",
    CertExponent = "certificate.exponent", SanDns = "san.dns", ConnUids = "conn_uids",
    TxHosts = "tx_hosts", RxHosts = "rx_hosts", MimeType = "mime_type", Filename = "filename",
    TotalBytes = "total_bytes", Md5 = "md5", Sha1 = "sha1", Sha256 = "sha256", Source = "source",
    Path = "_path",
}

const NF: usize = NAMES.len();

impl F {
    fn name(self) -> &'static str {
        NAMES.get(self as usize).copied().unwrap_or("?")
    }
}

/// One field value, from TSV text or a JSON value.
#[derive(Debug, Clone)]
pub(crate) enum V<'a> {
    S(Cow<'a, str>),
    U(u64),
    I(i64),
    Fl(f64),
    B(bool),
    List(Vec<V<'a>>),
}

impl fmt::Display for V<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V::S(s) => write!(f, "{s:?}"),
            V::U(n) => write!(f, "{n}"),
            V::I(n) => write!(f, "{n}"),
            V::Fl(n) => write!(f, "{n}"),
            V::B(b) => write!(f, "{b}"),
            V::List(_) => f.write_str("a list"),
        }
    }
}

/// The fields of one record that this crate maps.
pub(crate) struct Rec<'a> {
    vals: [Option<V<'a>>; NF],
}

impl<'a> Rec<'a> {
    fn new() -> Rec<'a> {
        Rec {
            vals: [const { None }; NF],
        }
    }

    fn get(&self, f: F) -> Option<&V<'a>> {
        self.vals[f as usize].as_ref()
    }

    fn set(&mut self, f: F, v: V<'a>) {
        self.vals[f as usize] = Some(v);
    }

    /// A string field; an empty string counts as absent.
    fn str(&self, f: F) -> Option<&str> {
        match self.get(f) {
            Some(V::S(s)) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    fn time(&self, f: F) -> Result<Option<i128>, String> {
        let t = match self.get(f) {
            None => return Ok(None),
            Some(V::S(s)) => parse_epoch(s).or_else(|| parse_iso(s)),
            Some(V::Fl(x)) => from_float_secs(*x),
            Some(V::U(x)) => from_float_secs(*x as f64),
            Some(V::I(x)) => from_float_secs(*x as f64),
            Some(_) => None,
        };
        match t {
            Some(t) => Ok(Some(t)),
            None => Err(self.bad(f, "not a time")),
        }
    }

    fn bad(&self, f: F, what: &str) -> String {
        match self.get(f) {
            Some(v) => format!("{}: {what}: {v}", f.name()),
            None => format!("{}: missing", f.name()),
        }
    }

    fn count(&self, f: F) -> Result<Option<u64>, String> {
        match self.get(f) {
            None => Ok(None),
            Some(V::U(n)) => Ok(Some(*n)),
            Some(V::S(s)) => s.parse().map(Some).map_err(|_| self.bad(f, "not a count")),
            Some(V::Fl(x)) if x.fract() == 0.0 && *x >= 0.0 && *x < 1.8e19 => Ok(Some(*x as u64)),
            Some(_) => Err(self.bad(f, "not a count")),
        }
    }

    fn secs(&self, f: F) -> Result<Option<i128>, String> {
        match self.get(f) {
            None => Ok(None),
            Some(V::S(s)) => parse_epoch(s)
                .map(Some)
                .ok_or_else(|| self.bad(f, "not an interval")),
            Some(V::Fl(x)) => from_float_secs(*x)
                .map(Some)
                .ok_or_else(|| self.bad(f, "not an interval")),
            Some(V::U(x)) => Ok(Some(i128::from(*x) * 1_000_000_000)),
            Some(V::I(x)) => Ok(Some(i128::from(*x) * 1_000_000_000)),
            Some(_) => Err(self.bad(f, "not an interval")),
        }
    }

    fn port(&self, f: F) -> Result<Option<u64>, String> {
        match self.count(f) {
            Ok(Some(p)) if p <= 65535 => Ok(Some(p)),
            Ok(None) => Ok(None),
            _ => Err(self.bad(f, "not a port number")),
        }
    }

    fn ip(&self, f: F) -> Result<Option<IpAddr>, String> {
        match self.get(f) {
            None => Ok(None),
            Some(V::S(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| self.bad(f, "not an IP address")),
            Some(_) => Err(self.bad(f, "not an IP address")),
        }
    }

    /// The strings of a set or vector field (a lone string is a list of one).
    fn list(&self, f: F) -> Vec<&str> {
        match self.get(f) {
            Some(V::List(items)) => items
                .iter()
                .filter_map(|v| match v {
                    V::S(s) if !s.is_empty() => Some(s.as_ref()),
                    _ => None,
                })
                .collect(),
            Some(V::S(s)) if !s.is_empty() => vec![s.as_ref()],
            _ => Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// JSON: a map visitor that keeps only the mapped fields.

struct FieldKey(Option<F>);

impl<'de> de::Deserialize<'de> for FieldKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KV;
        impl Visitor<'_> for KV {
            type Value = FieldKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldKey, E> {
                Ok(FieldKey(field(v)))
            }
        }
        d.deserialize_str(KV)
    }
}

/// A JSON value as a [`V`]; `null` and nested objects become `None`.
pub(crate) struct OptV<'a>(pub Option<V<'a>>);

impl<'de: 'a, 'a> de::Deserialize<'de> for OptV<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct VV;
        impl<'de> Visitor<'de> for VV {
            type Value = OptV<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Zeek field value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(OptV(Some(V::S(Cow::Borrowed(v)))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OptV(Some(V::S(Cow::Owned(v.to_owned())))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(OptV(Some(V::S(Cow::Owned(v)))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(OptV(Some(V::U(v))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(OptV(Some(V::I(v))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(OptV(Some(V::Fl(v))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(OptV(Some(V::B(v))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OptV(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(OptV(v)) = seq.next_element::<OptV<'de>>()? {
                    items.extend(v);
                }
                Ok(OptV(Some(V::List(items))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(OptV(None))
            }
        }
        d.deserialize_any(VV)
    }
}

/// Reads a JSON object into a [`Rec`] the caller owns (a `Rec` is a
/// large table: filled in place, it is never moved).
struct RecSeed<'r, 'a>(&'r mut Rec<'a>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for RecSeed<'_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        struct RV<'r, 'a>(&'r mut Rec<'a>);
        impl<'de: 'a, 'a> Visitor<'de> for RV<'_, 'a> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Zeek JSON record (an object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while let Some(FieldKey(k)) = map.next_key::<FieldKey>()? {
                    match k {
                        Some(f) => {
                            if let OptV(Some(v)) = map.next_value::<OptV<'de>>()? {
                                self.0.set(f, v);
                            }
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(())
            }
        }
        d.deserialize_map(RV(self.0))
    }
}

fn parse_json<'a>(line: &'a str, rec: &mut Rec<'a>) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(line);
    RecSeed(rec)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| json_error("not a JSON record", line, &e))
}

// ---------------------------------------------------------------------------
// TSV headers.

/// The logs this crate maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Log {
    Conn,
    Dns,
    Http,
    Ssl,
    X509,
    Files,
}

/// The log a name designates; `Err` carries the name of a log not mapped.
fn log_named(name: &str) -> Result<Log, &str> {
    Ok(match name {
        "conn" => Log::Conn,
        "dns" => Log::Dns,
        "http" => Log::Http,
        "ssl" => Log::Ssl,
        "x509" => Log::X509,
        "files" => Log::Files,
        other => return Err(other),
    })
}

/// The log a file holds, by its name: `conn.log`,
/// `conn.2026-01-01-00-00-00.log.gz`, `conn_20260101.log` … all say `conn`.
pub(crate) fn log_of_file(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split(['.', '_']).next()?;
    (!stem.is_empty()).then(|| stem.to_string())
}

/// Decodes Zeek's `\xHH` escapes (used for separators and non-printable
/// bytes inside values); other backslashes are data.
fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains("\\x") {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1] == b'x'
            && let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3]))
        {
            out.push((h * 16 + l) as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The header state of one TSV file; a new `#fields` starts a new block.
pub(crate) struct Header {
    sep: String,
    set_sep: String,
    empty: String,
    unset: String,
    path: Option<String>,
    cols: Vec<Option<F>>,
    container: Vec<bool>,
    names: usize,
    has_fields: bool,
}

impl Default for Header {
    fn default() -> Header {
        Header {
            sep: "\t".into(),
            set_sep: ",".into(),
            empty: "(empty)".into(),
            unset: "-".into(),
            path: None,
            cols: Vec::new(),
            container: Vec::new(),
            names: 0,
            has_fields: false,
        }
    }
}

fn is_container(ty: &str) -> bool {
    ty.starts_with("set[") || ty.starts_with("table[") || ty.starts_with("vector[")
}

/// Fields that are sets or vectors, for TSV without `#types`.
fn default_container(f: F) -> bool {
    matches!(
        f,
        F::Answers
            | F::CertChainFuids
            | F::CertChainFps
            | F::SanDns
            | F::ConnUids
            | F::TxHosts
            | F::RxHosts
    )
}

impl Header {
    /// Reads one `#` line. Returns an error for a malformed header.
    fn line(&mut self, line: &str) -> Result<(), String> {
        if let Some(rest) = line.strip_prefix("#separator") {
            // The separator line itself is separated by a space (Zeek's
            // ASCII writer), its value hex-escaped: `#separator \x09`.
            let v = unescape(rest.trim_start_matches([' ', '\t']));
            if v.is_empty() {
                return Err(format!("#separator: no separator: {rest:?}"));
            }
            self.sep = v.into_owned();
            return Ok(());
        }
        let mut parts = line.split(self.sep.as_str());
        let key = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        let one = || rest.first().map(|s| unescape(s).into_owned());
        match key {
            "#set_separator" => {
                self.set_sep = one()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| format!("#set_separator: no value: {line:?}"))?;
            }
            "#empty_field" => self.empty = one().unwrap_or_default(),
            "#unset_field" => self.unset = one().unwrap_or_default(),
            "#path" => self.path = one(),
            "#fields" => {
                if rest.is_empty() {
                    return Err(format!("#fields: no field names: {line:?}"));
                }
                self.cols = rest.iter().map(|n| field(n)).collect();
                self.container = self
                    .cols
                    .iter()
                    .map(|f| f.is_some_and(default_container))
                    .collect();
                self.names = rest.len();
                self.has_fields = true;
            }
            "#types" => {
                if rest.len() != self.names {
                    return Err(format!(
                        "#types: {} types for {} fields",
                        rest.len(),
                        self.names
                    ));
                }
                for (i, t) in rest.iter().enumerate() {
                    if let Some(c) = self.container.get_mut(i) {
                        *c = is_container(t);
                    }
                }
            }
            // `#open`, `#close` and unknown headers carry nothing to map.
            _ => {}
        }
        Ok(())
    }

    fn parse<'a>(&self, line: &'a str, rec: &mut Rec<'a>) -> Result<(), String> {
        if !self.has_fields {
            return Err("data line before any #fields header".into());
        }
        // A one-byte separator (the tab, always in practice) is split on
        // as a char, which is a byte search rather than a substring search.
        let n = match self.sep.as_bytes() {
            [b] if b.is_ascii() => self.fill(line.split(*b as char), rec),
            _ => self.fill(line.split(self.sep.as_str()), rec),
        };
        if n != self.names {
            return Err(format!(
                "expected {} tab-separated fields (per #fields), found {n}",
                self.names
            ));
        }
        Ok(())
    }

    /// Stores the mapped columns of one line; returns the column count.
    fn fill<'a>(&self, fields: impl Iterator<Item = &'a str>, rec: &mut Rec<'a>) -> usize {
        let mut n = 0;
        for (i, text) in fields.enumerate() {
            n = i + 1;
            let Some(Some(f)) = self.cols.get(i) else {
                continue;
            };
            if text == self.unset {
                continue;
            }
            let v = if self.container.get(i).copied().unwrap_or(false) {
                if text == self.empty {
                    V::List(Vec::new())
                } else {
                    V::List(
                        text.split(self.set_sep.as_str())
                            .map(|t| V::S(unescape(t)))
                            .collect(),
                    )
                }
            } else if text == self.empty {
                V::S(Cow::Borrowed(""))
            } else {
                V::S(unescape(text))
            };
            rec.set(*f, v);
        }
        n
    }
}

// ---------------------------------------------------------------------------
// Mapping.

/// An event under construction: its time and objects, and where it was read.
#[derive(Debug)]
pub(crate) struct Staged {
    pub first: i128,
    pub last: i128,
    pub objs: Objects,
    pub file: Arc<str>,
    pub line: u64,
}

/// One mapped record, before joining.
pub(crate) enum Mapped {
    /// Complete on its own (dns, http, files that carry their connection).
    Ready(Staged),
    /// A connection: emitted, and cached under its `uid` for files.
    Conn(Staged, Option<(String, Box<Conn>)>),
    /// Refers to providers by these keys (ssl → certificates, files → conn).
    Wait(Staged, Vec<String>),
    /// A certificate, provided under this key.
    Cert(Staged, Option<String>),
    /// A well-formed record of a log not mapped.
    Skip(String),
}

impl Mapped {
    pub fn time(&self) -> Option<i128> {
        match self {
            Mapped::Ready(s) | Mapped::Conn(s, _) | Mapped::Wait(s, _) | Mapped::Cert(s, _) => {
                Some(s.first)
            }
            Mapped::Skip(_) => None,
        }
    }
}

/// Join keys live in one cache: prefixes keep connections and certificates apart.
pub(crate) fn conn_key(uid: &str) -> String {
    let mut k = String::with_capacity(uid.len() + 2);
    k.push_str("c:");
    k.push_str(uid);
    k
}

pub(crate) fn cert_key(fp: &str) -> String {
    let mut k = String::with_capacity(fp.len() + 2);
    k.push_str("x:");
    k.push_str(fp);
    k
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// The application protocol names used in `protocols`: lowercase (STIX 2.1
/// §6.12), and Zeek's `ssl` analyzer called `tls`, as Suricata does.
fn app_name(service: &str) -> String {
    let lower = service.to_ascii_lowercase();
    match lower.as_str() {
        "ssl" => "tls".to_string(),
        _ => lower,
    }
}

/// Adds a network-traffic (STIX 2.1 §6.12) for the connection tuple of `r`,
/// with its addresses; `None` when the record has no addresses.
fn net(r: &Rec<'_>, objs: &mut Objects, apps: &[String]) -> Result<Option<usize>, String> {
    let src = r.ip(F::OrigH)?;
    let dst = r.ip(F::RespH)?;
    let (sp, dp) = (r.port(F::OrigP)?, r.port(F::RespP)?);
    if src.is_none() && dst.is_none() {
        return Ok(None);
    }
    // http.log and ssl.log have no `proto` field: their analyzers run over TCP.
    let implied = apps
        .iter()
        .any(|a| a == "http" || a == "tls")
        .then(|| "tcp".to_string());
    let proto = r
        .str(F::Proto)
        .map(str::to_ascii_lowercase)
        .filter(|p| p != "unknown_transport")
        .or(implied);
    Ok(Some(objs.traffic(Traffic {
        src,
        dst,
        src_port: sp,
        dst_port: dp,
        proto,
        apps,
    })))
}

/// A conn.log connection, kept in this compact form in the join cache (a
/// cache of JSON objects would cost more than reading the line) and turned
/// into objects when a file claims it.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_port: Option<u64>,
    dst_port: Option<u64>,
    proto: Option<String>,
    apps: Vec<String>,
    start: i128,
    end: Option<i128>,
    /// src_byte_count, dst_byte_count, src_packets, dst_packets.
    counts: [Option<u64>; 4],
}

const COUNT_NAMES: [&str; 4] = [
    "src_byte_count",
    "dst_byte_count",
    "src_packets",
    "dst_packets",
];

impl Conn {
    fn from_rec(r: &Rec<'_>, ts: i128) -> Result<Conn, String> {
        let src = r.ip(F::OrigH)?;
        let dst = r.ip(F::RespH)?;
        if src.is_none() && dst.is_none() {
            return Err(r.bad(F::OrigH, "missing"));
        }
        let apps = r
            .list(F::Service)
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.is_empty())
            .map(app_name)
            .collect();
        let mut counts = [None; 4];
        for (c, f) in counts
            .iter_mut()
            .zip([F::OrigBytes, F::RespBytes, F::OrigPkts, F::RespPkts])
        {
            *c = r.count(f)?;
        }
        Ok(Conn {
            src,
            dst,
            src_port: r.port(F::OrigP)?,
            dst_port: r.port(F::RespP)?,
            proto: r
                .str(F::Proto)
                .map(str::to_ascii_lowercase)
                .filter(|p| p != "unknown_transport"),
            apps,
            start: ts,
            end: r.secs(F::Duration)?.map(|d| ts + d),
            counts,
        })
    }

    /// Adds the network-traffic (with start, end, byte and packet counts,
    /// STIX 2.1 §6.12) and its addresses.
    pub fn objects(&self, objs: &mut Objects) {
        let nt = objs.traffic(Traffic {
            src: self.src,
            dst: self.dst,
            src_port: self.src_port,
            dst_port: self.dst_port,
            proto: self.proto.clone(),
            apps: &self.apps,
        });
        if let Some(m) = objs.get_mut(nt) {
            m.insert("start".into(), Value::String(format_stix(self.start)));
            if let Some(end) = self.end {
                m.insert("end".into(), Value::String(format_stix(end)));
            }
            for (k, n) in COUNT_NAMES.iter().zip(self.counts) {
                if let Some(n) = n {
                    m.insert((*k).into(), n.into());
                }
            }
        }
    }
}

fn hash_name(hex: &str) -> Option<&'static str> {
    if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        32 => Some("MD5"),
        40 => Some("SHA-1"),
        64 => Some("SHA-256"),
        _ => None,
    }
}

/// An x509-certificate (STIX 2.1 §6.18) from an x509.log record.
fn cert_from_x509(r: &Rec<'_>) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    m.insert("type".into(), s("x509-certificate"));
    if let Some(fp) = r.str(F::Fingerprint) {
        let fp: String = fp.chars().filter(|c| *c != ':').collect();
        match hash_name(&fp) {
            Some(h) => {
                let mut hashes = Map::new();
                hashes.insert(h.into(), Value::String(fp.to_ascii_lowercase()));
                m.insert("hashes".into(), Value::Object(hashes));
            }
            None => return Err(r.bad(F::Fingerprint, "not an MD5, SHA-1 or SHA-256 digest")),
        }
    }
    if let Some(v) = r.count(F::CertVersion)? {
        m.insert("version".into(), Value::String(v.to_string()));
    }
    for (f, k) in [
        (F::CertSerial, "serial_number"),
        (F::CertSigAlg, "signature_algorithm"),
        (F::CertIssuer, "issuer"),
        (F::CertSubject, "subject"),
        (F::CertKeyAlg, "subject_public_key_algorithm"),
    ] {
        if let Some(v) = r.str(f) {
            m.insert(k.into(), s(v));
        }
    }
    for (f, k) in [
        (F::CertNotBefore, "validity_not_before"),
        (F::CertNotAfter, "validity_not_after"),
    ] {
        if let Some(t) = r.time(f)? {
            m.insert(k.into(), Value::String(format_stix(t)));
        }
    }
    if let Some(e) = r.count(F::CertExponent)? {
        m.insert("subject_public_key_exponent".into(), e.into());
    }
    let sans = r.list(F::SanDns);
    if !sans.is_empty() {
        let text = sans
            .iter()
            .map(|d| format!("DNS:{d}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut ext = Map::new();
        ext.insert("subject_alternative_name".into(), Value::String(text));
        m.insert("x509_v3_extensions".into(), Value::Object(ext));
    }
    Ok(m)
}

/// The certificate an ssl.log record describes itself (older Zeek logged
/// subject, issuer, validity and an MD5 `cert_hash` in ssl.log).
fn cert_from_ssl(r: &Rec<'_>) -> Result<Option<Map<String, Value>>, String> {
    let mut m = Map::new();
    if let Some(v) = r.str(F::Subject) {
        m.insert("subject".into(), s(v));
    }
    if let Some(v) = r.str(F::Issuer).or_else(|| r.str(F::IssuerSubject)) {
        m.insert("issuer".into(), s(v));
    }
    for (f, k) in [
        (F::NotValidBefore, "validity_not_before"),
        (F::NotValidAfter, "validity_not_after"),
    ] {
        if let Some(t) = r.time(f)? {
            m.insert(k.into(), Value::String(format_stix(t)));
        }
    }
    if let Some(h) = r.str(F::CertHash)
        && let Some(name) = hash_name(h)
    {
        let mut hashes = Map::new();
        hashes.insert(name.into(), Value::String(h.to_ascii_lowercase()));
        m.insert("hashes".into(), Value::Object(hashes));
    }
    if m.is_empty() {
        return Ok(None);
    }
    m.insert("type".into(), s("x509-certificate"));
    Ok(Some(m))
}

fn http(r: &Rec<'_>, objs: &mut Objects) -> Result<(), String> {
    let nt = net(r, objs, &["http".to_string()])?;
    let host = r.str(F::Host);
    if let Some(h) = host {
        let name = h.rsplit_once(':').map_or(h, |(n, p)| {
            if p.bytes().all(|c| c.is_ascii_digit()) {
                n
            } else {
                h
            }
        });
        objs.domain(name);
    }
    let uri = r.str(F::Uri);
    if let Some(u) = uri {
        let url = if u.starts_with("http://") || u.starts_with("https://") {
            Some(u.to_string())
        } else {
            // The Host header carries the port when it is not the default,
            // so host + target is the URL the client asked for.
            host.map(|h| {
                let slash = if u.starts_with('/') { "" } else { "/" };
                format!("http://{h}{slash}{u}")
            })
        };
        if let Some(url) = url {
            objs.url(&url);
        }
    }
    if let (Some(nt), Some(method), Some(u)) = (nt, r.str(F::Method), uri) {
        // http-request-ext (STIX 2.1 §6.12.2): the request line and headers.
        let mut ext = Map::new();
        ext.insert("request_method".into(), s(method));
        ext.insert("request_value".into(), s(u));
        if let Some(v) = r.str(F::Version) {
            ext.insert(
                "request_version".into(),
                Value::String(format!("http/{}", v.to_ascii_lowercase())),
            );
        }
        let mut headers = Map::new();
        for (f, name) in [
            (F::Host, "Host"),
            (F::UserAgent, "User-Agent"),
            (F::Referrer, "Referer"),
        ] {
            if let Some(v) = r.str(f) {
                headers.insert(name.into(), s(v));
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

/// Maps one record of `log`.
pub(crate) fn map(
    log: Log,
    r: &Rec<'_>,
    keep_conns: bool,
    file: &Arc<str>,
    line: u64,
) -> Result<Mapped, String> {
    let ts = r.time(F::Ts)?.ok_or_else(|| r.bad(F::Ts, "missing"))?;
    let mut st = Staged {
        first: ts,
        last: ts,
        objs: Objects::default(),
        file: file.clone(),
        line,
    };
    let objs = &mut st.objs;
    match log {
        Log::Conn => {
            let conn = Conn::from_rec(r, ts)?;
            conn.objects(objs);
            if let Some(end) = conn.end {
                st.last = end.max(ts);
            }
            let uid = r
                .str(F::Uid)
                .filter(|_| keep_conns)
                .map(|u| (conn_key(u), Box::new(conn)));
            Ok(Mapped::Conn(st, uid))
        }
        Log::Dns => {
            net(r, objs, &["dns".to_string()])?;
            if let Some(q) = r.str(F::Query)
                && let Some(qi) = objs.domain(q)
            {
                let mut refs = Vec::new();
                for a in r.list(F::Answers) {
                    let i = match a.parse::<IpAddr>() {
                        Ok(ip) => Some(objs.ip(ip)),
                        Err(_) => objs.domain(a),
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
            }
            Ok(Mapped::Ready(st))
        }
        Log::Http => {
            http(r, objs)?;
            Ok(Mapped::Ready(st))
        }
        Log::Ssl => {
            net(r, objs, &["tls".to_string()])?;
            if let Some(sni) = r.str(F::ServerName) {
                objs.domain(sni);
            }
            let fps = r.list(F::CertChainFps);
            let chain = if fps.is_empty() {
                r.list(F::CertChainFuids)
            } else {
                fps
            };
            if chain.is_empty() {
                if let Some(c) = cert_from_ssl(r)? {
                    objs.push(c);
                }
                return Ok(Mapped::Ready(st));
            }
            let keys = chain.iter().map(|k| cert_key(k)).collect();
            Ok(Mapped::Wait(st, keys))
        }
        Log::X509 => {
            let c = cert_from_x509(r)?;
            if c.len() == 1 {
                return Ok(Mapped::Skip("zeek x509 without certificate fields".into()));
            }
            objs.push(c);
            let key = r.str(F::Fingerprint).or_else(|| r.str(F::Id)).map(cert_key);
            Ok(Mapped::Cert(st, key))
        }
        Log::Files => {
            let mut m = Map::new();
            m.insert("type".into(), s("file"));
            let mut hashes = Map::new();
            for (f, name, len) in [
                (F::Md5, "MD5", 32),
                (F::Sha1, "SHA-1", 40),
                (F::Sha256, "SHA-256", 64),
            ] {
                if let Some(h) = r.str(f) {
                    if h.len() != len || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                        return Err(r.bad(f, &format!("not a hex {name} digest")));
                    }
                    hashes.insert(name.into(), Value::String(h.to_ascii_lowercase()));
                }
            }
            if !hashes.is_empty() {
                m.insert("hashes".into(), Value::Object(hashes));
            }
            if let Some(n) = r.str(F::Filename) {
                m.insert("name".into(), s(n));
            }
            if m.len() == 1 {
                return Ok(Mapped::Skip("zeek files without hashes or name".into()));
            }
            if let Some(n) = r.count(F::TotalBytes)? {
                m.insert("size".into(), n.into());
            }
            if let Some(t) = r.str(F::MimeType) {
                m.insert("mime_type".into(), s(t));
            }
            objs.push(m);
            // Zeek 5 and later log the connection in files.log itself.
            let app: Vec<String> = r.str(F::Source).map(app_name).into_iter().collect();
            if net(r, objs, &app)?.is_some() {
                return Ok(Mapped::Ready(st));
            }
            let uid = r
                .str(F::Uid)
                .or_else(|| r.list(F::ConnUids).first().copied());
            for f in [F::TxHosts, F::RxHosts] {
                for h in r.list(f) {
                    match h.parse::<IpAddr>() {
                        Ok(ip) => {
                            objs.ip(ip);
                        }
                        Err(_) => return Err(r.bad(f, "not a list of IP addresses")),
                    }
                }
            }
            match uid {
                Some(u) => Ok(Mapped::Wait(st, vec![conn_key(u)])),
                None => Ok(Mapped::Ready(st)),
            }
        }
    }
}

/// Reads one line of a Zeek log: a header (updates `h`, returns `None`), a
/// JSON record or a TSV record.
pub(crate) fn read_line(
    h: &mut Header,
    default_log: Option<&str>,
    keep_conns: bool,
    text: &str,
    file: &Arc<str>,
    line: u64,
) -> Option<Result<Mapped, String>> {
    if text.is_empty() {
        return None;
    }
    if text.starts_with('#') {
        return h.line(text).err().map(Err);
    }
    let mut rec = Rec::new();
    let parsed = if text.starts_with('{') {
        parse_json(text, &mut rec).map(|()| None)
    } else {
        h.parse(text, &mut rec).map(|()| h.path.as_deref())
    };
    let path_hint = match parsed {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let name = rec.str(F::Path).or(path_hint).or(default_log);
    let Some(name) = name else {
        return Some(Ok(Mapped::Skip(
            "zeek record of an unknown log (no _path, #path or log file name)".into(),
        )));
    };
    match log_named(name) {
        Ok(log) => Some(map(log, &rec, keep_conns, file, line)),
        Err(other) => Some(Ok(Mapped::Skip(format!("zeek {other}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes() {
        for (i, o) in [
            ("plain", "plain"),
            ("a\\x09b", "a\tb"),
            ("a\\x2cb", "a,b"),
            ("end\\x4", "end\\x4"),
            ("O=A\\, Inc.", "O=A\\, Inc."),
        ] {
            assert_eq!(unescape(i), o);
        }
    }

    #[test]
    fn headers_set_separators_and_blocks() {
        let file: Arc<str> = Arc::from("t");
        let mut h = Header::default();
        let mut read = |text: &str| {
            read_line(&mut h, None, true, text, &file, 1).map(|r| match r {
                Ok(Mapped::Ready(s)) | Ok(Mapped::Conn(s, _)) | Ok(Mapped::Wait(s, _)) => {
                    format!(
                        "{:?}",
                        s.objs
                            .list
                            .iter()
                            .map(|(_, o)| o.to_string())
                            .collect::<Vec<_>>()
                    )
                }
                Ok(Mapped::Cert(..)) => "cert".into(),
                Ok(Mapped::Skip(w)) => format!("skip {w}"),
                Err(e) => format!("error {e}"),
            })
        };
        let cases: &[(&str, Option<&str>)] = &[
            ("42\t1", Some("error data line before any #fields header")),
            ("#separator \\x7c", None),
            ("#set_separator|;", None),
            ("#unset_field|?", None),
            ("#empty_field|<none>", None),
            ("#path|dns", None),
            ("#fields|ts|id.orig_h|id.resp_h|query|answers", None),
            (
                "#types|time|addr|addr|string",
                Some("error #types: 4 types for 5 fields"),
            ),
            ("#types|time|addr|addr|string|vector[string]", None),
            ("#open|2026-01-01-00-00-00", None),
            (
                "1.5|192.0.2.1|192.0.2.2|a.example|b.example;192.0.2.3",
                Some(
                    r#"["{\"dst_ref\":\"2\",\"protocols\":[\"ipv4\",\"dns\"],\"src_ref\":\"1\",\"type\":\"network-traffic\"}", "{\"type\":\"ipv4-addr\",\"value\":\"192.0.2.1\"}", "{\"type\":\"ipv4-addr\",\"value\":\"192.0.2.2\"}", "{\"resolves_to_refs\":[\"4\",\"5\"],\"type\":\"domain-name\",\"value\":\"a.example\"}", "{\"type\":\"domain-name\",\"value\":\"b.example\"}", "{\"type\":\"ipv4-addr\",\"value\":\"192.0.2.3\"}"]"#,
                ),
            ),
            (
                "1.5|?|192.0.2.2|<none>|<none>",
                Some(
                    r#"["{\"dst_ref\":\"1\",\"protocols\":[\"ipv4\",\"dns\"],\"type\":\"network-traffic\"}", "{\"type\":\"ipv4-addr\",\"value\":\"192.0.2.2\"}"]"#,
                ),
            ),
            ("#close|2026-01-01-00-10-00", None),
            ("#path|weird", None),
            ("1.5|192.0.2.1|192.0.2.2|x|y", Some("skip zeek weird")),
            ("", None),
            (
                "{\"_path\":\"x509\",\"ts\":1,\"id\":\"F1\",\"certificate.serial\":\"0A\"}",
                Some("cert"),
            ),
            (
                "{\"_path\":\"dns\",\"ts\":true}",
                Some("error ts: not a time: true"),
            ),
        ];
        for (line, want) in cases {
            let line = line.replace("\\t", "\t");
            assert_eq!(read(&line).as_deref(), *want, "{line}");
        }
    }

    proptest::proptest! {
        /// No line, however mangled, panics a parser: each yields a record
        /// or a report. Lines are drawn from real-looking pieces so that
        /// deep paths are reached, not only "not JSON".
        #[test]
        fn no_line_panics(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                "{", "}", "[", "]", ",", ":", "\"", "\\x", "\t", "-", "(empty)", "1.5", "1e999",
                "\"ts\"", "\"timestamp\"", "\"event_type\"", "\"dns\"", "\"flow\"", "\"http\"",
                "\"tls\"", "\"fileinfo\"", "\"src_ip\"", "\"192.0.2.1\"", "\"2001:db8::1\"",
                "\"answers\"", "\"rdata\"", "\"rrtype\"", "\"A\"", "\"id.orig_h\"", "\"_path\"",
                "\"conn\"", "\"ssl\"", "\"x509\"", "\"files\"", "\"cert_chain_fps\"", "\"type\"",
                "\"observed-data\"", "\"bundle\"", "\"objects\"", "\"object_refs\"", "\"ipv4-addr\"",
                "\"value\"", "\"2026-01-02T03:04:05+0100\"", "65536", "-1", "null", "true", "é", "\u{0}",
            ]), 0..40)
        ) {
            let line: String = pieces.concat();
            let file: Arc<str> = Arc::from("t");
            let mut h = Header::default();
            let _ = h.line("#fields\tts\tid.orig_h\tid.resp_h\tanswers\tquery");
            let _ = read_line(&mut h, Some("dns"), true, &line, &file, 1);
            let _ = read_line(&mut Header::default(), None, true, &line, &file, 1);
            let _ = crate::eve::read_line(&line);
            let _ = crate::stixin::read_line(&line, || 0);
        }
    }

    #[test]
    fn file_names() {
        for (n, l) in [
            ("conn.log", "conn"),
            ("/x/y/conn.2026-01-01-00-00-00.log.gz", "conn"),
            ("ssl_20260101.log", "ssl"),
        ] {
            assert_eq!(log_of_file(Path::new(n)).as_deref(), Some(l));
        }
    }
}
