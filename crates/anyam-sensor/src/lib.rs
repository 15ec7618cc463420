//! Sensor inputs for detection: Zeek logs, Suricata EVE JSON and STIX JSON lines, read as STIX 2.1 cyber-observable objects (SCOs).
//!
//! # What this crate is
//!
//! The detection engine matches shared indicators (STIX patterns) against
//! what the node's own sensors saw. This crate turns sensor records into
//! what the matcher reads: each record becomes an [`Event`], an
//! `anyam_pattern` [`Observation`](anyam_pattern::observations::Observation)
//! plus where it was read (input label, file, line). Zeek and EVE records
//! use the STIX 2.0-style embedded form the matcher understands (objects
//! keyed `"0"`, `"1"`, … and references naming those keys), because it
//! costs no identifier generation per record; [`Event::to_stix21`] turns one
//! event into a proper STIX 2.1 observed-data with deterministic SCO ids
//! (STIX 2.1 §2.9) when a sighting needs to cite it.
//!
//! SCO property names and types are those of STIX 2.1 §6: network-traffic
//! with `src_ref`/`dst_ref`, ports, lowercase `protocols` (§6.12), byte and
//! packet counts, the `http-request-ext` and `icmp-ext` extensions;
//! ipv4-addr/ipv6-addr; domain-name with `resolves_to_refs`; url; file with
//! `hashes` (`MD5`, `SHA-1`, `SHA-256`), `name`, `size`, `mime_type`;
//! x509-certificate. The mapping of every sensor field is tabulated in
//! this crate's `README.md`.
//!
//! # Design
//!
//! - **Formats** ([`Format`]): Zeek (TSV with `#` headers, or JSON lines;
//!   conn, dns, http, ssl, x509, files), Suricata EVE (flow, dns, http, tls,
//!   fileinfo, alert), STIX (bundles, arrays, observed-data, bare SCOs).
//!   Records of other kinds are [`Record::Skipped`], counted, not lost.
//! - **Sources**: a file (gzip recognised by its magic bytes), standard
//!   input, a directory of Zeek logs (all `*.log` and `*.log.gz`, merged by
//!   time), and follow mode, which reads like `tail -F` (polling every
//!   [`Options::poll_interval`], detecting rotation by inode and truncation
//!   by size, finishing the old file before the new one) until
//!   [`Options::shutdown`] is set.
//! - **Errors in the data are records, not failures**: a bad line yields a
//!   [`Malformed`] naming the file, line, field and bad text, and reading
//!   goes on. Only opening an input can fail ([`Error`]).
//! - **Zeek joins**: Zeek splits a TLS session (ssl.log) from its
//!   certificates (x509.log) and a file (files.log) from its connection
//!   (conn.log). An ssl event carries its network-traffic, the SNI
//!   domain-name and the x509-certificates; a files event carries its
//!   connection. Join state is bounded: a record waits at most
//!   [`Options::join_delay`] of log time (default 10 s) for its partner and
//!   is then emitted as it is; at most [`Options::join_cache`] connections
//!   and certificates are remembered. [`Stats::join_state`] reports the size.
//! - **Merging** ([`merge`]): finite inputs are merged by event time (k-way);
//!   followed inputs are delivered in arrival order.
//! - **Cost**: records are parsed into borrowed structs that keep only the
//!   mapped fields; TSV values are borrowed from the line. No JSON `Value`
//!   is built for a Zeek or EVE record except the output objects.
//!
//! ```
//! use anyam_sensor::{Options, Record, merge, open};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("eve.json");
//! # std::fs::write(&path, concat!(
//! #     r#"{"timestamp":"2026-01-02T03:04:05.000000+0100","event_type":"dns","src_ip":"192.0.2.1","#,
//! #     r#""src_port":5353,"dest_ip":"198.51.100.53","dest_port":53,"proto":"UDP","#,
//! #     r#""dns":{"type":"query","rrname":"example.com"}}"#, "\n",
//! #     "not json\n"))?;
//! let opts = Options::default();
//! let input = open(&format!("eve:{}", path.display()).parse()?, &opts)?;
//! let stats = input.stats_handle();
//! for record in merge(vec![input]) {
//!     match record {
//!         Record::Event(e) => assert_eq!(e.observation.objects.len(), 4),
//!         Record::Malformed(m) => assert_eq!((m.line, m.reason.starts_with("not an EVE record")), (2, true)),
//!         Record::Skipped { .. } => {}
//!     }
//! }
//! assert_eq!((stats.stats().events, stats.stats().malformed), (1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it is not
//!
//! Not a matcher (that is `anyam-pattern`, driven by `anyam-detect`), not a
//! sensor, not a log shipper: it does not watch for new files appearing in
//! a followed directory, does not remember read positions across runs, and
//! does not validate STIX input beyond what the matcher needs
//! (`anyam-stix` does that on ingest).
//!
//! # Key items
//!
//! [`InputSpec`] (`zeek:PATH`, `eve:PATH`, `stix:PATH`, `-` for stdin),
//! [`Options`], [`open`] → [`Input`] (an iterator of [`Record`]),
//! [`merge`] → [`Merged`], [`Event`], [`Malformed`], [`Stats`], [`Error`].

mod eve;
mod event;
mod input;
mod join;
mod merge;
mod source;
mod stixin;
mod time;
mod zeek;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use event::{Event, Malformed, Record, Stats, StixOptions};
pub use input::{Input, StatsHandle, open};
pub use merge::{Merged, merge};
pub use time::format_stix;

/// The crate's one error type: what can go wrong opening an input or
/// converting an event. Problems inside the data are [`Malformed`] records.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("input spec {0}")]
    Spec(String),
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no *.log or *.log.gz files in directory {0}")]
    NoLogs(String),
    #[error("STIX conversion: {0}")]
    Stix(#[from] anyam_stix::Error),
}

/// A sensor format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// STIX JSON lines.
    Stix,
    /// Zeek logs, TSV or JSON.
    Zeek,
    /// Suricata EVE JSON.
    Eve,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Stix => "stix",
            Format::Zeek => "zeek",
            Format::Eve => "eve",
        }
    }
}

/// What to read: a format and a path (`None` is standard input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub format: Format,
    pub path: Option<PathBuf>,
}

impl FromStr for InputSpec {
    type Err = Error;

    /// `zeek:PATH`, `eve:PATH`, `stix:PATH`; `PATH` `-` is standard input.
    fn from_str(s: &str) -> Result<InputSpec, Error> {
        let (fmt, path) = s.split_once(':').ok_or_else(|| {
            Error::Spec(format!(
                "{s:?} is not FORMAT:PATH (FORMAT one of zeek, eve, stix; PATH - for stdin)"
            ))
        })?;
        let format = match fmt {
            "zeek" => Format::Zeek,
            "eve" => Format::Eve,
            "stix" => Format::Stix,
            other => {
                return Err(Error::Spec(format!(
                    "unknown format {other:?} in {s:?} (zeek, eve or stix)"
                )));
            }
        };
        let path = match path {
            "" => return Err(Error::Spec(format!("no path in {s:?}"))),
            "-" => None,
            p => Some(PathBuf::from(p)),
        };
        Ok(InputSpec { format, path })
    }
}

impl fmt::Display for InputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}:{}", self.format.name(), p.display()),
            None => write!(f, "{}:-", self.format.name()),
        }
    }
}

/// How inputs are read.
#[derive(Clone)]
pub struct Options {
    /// Keep reading as files grow, across rotation, until `shutdown`.
    pub follow: bool,
    /// Set to end followed inputs (and stop finite ones early).
    pub shutdown: Arc<AtomicBool>,
    /// How long (in log time) a Zeek record waits for its join partner.
    /// A followed input that is quiet this long (wall time) emits what it holds.
    pub join_delay: Duration,
    /// How many Zeek connections and certificates are kept for joins
    /// (and the most records that may wait at once).
    pub join_cache: usize,
    /// How often a followed file is checked for new data or rotation.
    pub poll_interval: Duration,
    /// The time given to a bare SCO on a STIX line, in nanoseconds since
    /// the epoch: the wall clock by default.
    pub clock: Arc<dyn Fn() -> i128 + Send + Sync>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            follow: false,
            shutdown: Arc::new(AtomicBool::new(false)),
            join_delay: Duration::from_secs(10),
            join_cache: 65_536,
            poll_interval: Duration::from_millis(250),
            clock: Arc::new(time::wall_clock),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("follow", &self.follow)
            .field("shutdown", &self.shutdown)
            .field("join_delay", &self.join_delay)
            .field("join_cache", &self.join_cache)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}
