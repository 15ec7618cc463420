//! Node configuration: a TOML file in the data directory, each setting
//! overridable by environment variables and command-line flags (flags win
//! over the environment, which wins over the file).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The name of the configuration file inside the data directory.
pub const CONFIG_FILE: &str = "anyam.toml";

/// Settings from the TOML file. Every field has a default, so an empty file
/// is a valid configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Address to listen on, e.g. `127.0.0.1:8443` or `0.0.0.0:443`.
    pub listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS. Only for loopback and tests:
    /// TAXII 2.1 requires HTTPS.
    pub plain_http: bool,
    /// Name of this node, shown in TAXII discovery.
    pub node_name: String,
    /// Base URL clients reach this node at, for links in discovery; derived
    /// from each request's Host header when empty.
    pub public_url: Option<String>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `anyam_taxii=debug,info`.
    pub log_level: String,
    pub tls: TlsConfig,
    pub store: StoreConfig,
    pub api: ApiConfig,
    pub audit: AuditConfig,
    pub policy: PolicyConfig,
    pub federation: FederationConfig,
}

/// Federation with partner nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Address of the partner listener (mutual TLS with partners' pinned
    /// node keys; partners only). Unset: the node neither serves partners
    /// nor syncs from them. The node descriptor's TAXII URL points here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Seconds between pull rounds while a partner's live stream is down.
    pub interval_secs: u64,
    /// Follow partners' live streams (else pull only).
    pub live: bool,
    /// Objects asked of a partner per page when pulling (1 to 5,000).
    /// Larger pages spread the per-page work (a signature, a commit) over
    /// more objects.
    pub page_size: usize,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            listen: None,
            interval_secs: 5,
            live: true,
            page_size: 5000,
        }
    }
}

/// The release policy's node-wide settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The TLP level of data that carries no TLP marking: `clear`,
    /// `green`, `amber` or `amber+strict`. The default, `amber+strict`,
    /// releases unmarked data to the host organization (and to the
    /// organization that submitted it) and to no one else. `red` is not
    /// allowed: TLP:RED needs named recipients, which unmarked data lacks.
    pub unmarked: anyam_trust::Tlp,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            unmarked: anyam_trust::Tlp::AmberStrict,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; relative paths are inside the data directory.
    /// A self-signed pair is generated at first start when these files do
    /// not exist.
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `full` (default): an acknowledged object survives power loss.
    /// `normal`: it survives a crash of the node process, but the last
    /// transactions before a power loss or kernel crash may be lost; writes
    /// are faster because a commit does not wait for the disk.
    pub synchronous: Synchronous,
    /// Read connections kept open; a read that finds all of them busy
    /// waits for one (up to 100 ms, then opens an extra one).
    pub max_idle_readers: usize,
    /// SQLite page cache per connection, in KiB. The data lives on disk and
    /// the operating system caches it too, so a modest cache keeps the
    /// node's memory small even with millions of objects.
    pub cache_kib: i64,
    /// How much of the database each reader maps into memory, in MiB.
    /// Mapping saves CPU on reads; the mapped file pages count in the
    /// node's resident memory. 0 turns mapping off.
    pub mmap_mib: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub description: Option<String>,
    pub contact: Option<String>,
    /// Page size when a client gives no `limit`.
    pub default_limit: usize,
    /// Largest page returned, whatever `limit` asks for.
    pub max_limit: usize,
}

/// The audit log (`audit.db`). Its durability follows `store.synchronous`:
/// an audit record should survive whatever the release it records survives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often the running node signs a tree head over its audit log, in
    /// seconds (only when entries were added since the last head). It also
    /// signs one at graceful shutdown. Smaller means a tighter bound on what
    /// a partner holding the heads could fail to notice being cut.
    pub head_interval_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            head_interval_secs: 300,
        }
    }
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            plain_http: false,
            node_name: "Anyam node".into(),
            public_url: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            tls: TlsConfig::default(),
            store: StoreConfig::default(),
            api: ApiConfig::default(),
            audit: AuditConfig::default(),
            policy: PolicyConfig::default(),
            federation: FederationConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: PathBuf::from("tls/cert.pem"),
            key: PathBuf::from("tls/key.pem"),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            synchronous: Synchronous::Full,
            max_idle_readers: 8,
            cache_kib: 8 * 1024,
            mmap_mib: 128,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            description: None,
            contact: None,
            default_limit: 1000,
            max_limit: 10_000,
        }
    }
}

impl FileConfig {
    /// Read the file at `path`; a missing file is the default configuration.
    /// A malformed file is an error naming the file, line and column.
    pub fn load(path: &Path) -> Result<FileConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let c: FileConfig = toml::from_str(&text)
                    .with_context(|| format!("configuration file {}", path.display()))?;
                c.check()
                    .with_context(|| format!("configuration file {}", path.display()))?;
                Ok(c)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Rules the types alone do not enforce.
    pub fn check(&self) -> Result<()> {
        if self.policy.unmarked == anyam_trust::Tlp::Red {
            anyhow::bail!(
                "policy.unmarked = \"red\" is not allowed: TLP:RED needs named recipients, which unmarked data lacks"
            );
        }
        if !(1..=5000).contains(&self.federation.page_size) {
            anyhow::bail!(
                "federation.page_size = {} is out of range: 1 to 5000",
                self.federation.page_size
            );
        }
        Ok(())
    }

    /// The file written at first start: every setting, at its default.
    pub fn render_default() -> Result<String> {
        let body = toml::to_string_pretty(&FileConfig::default())?;
        Ok(format!(
            "# Anyam node configuration. Every setting can be overridden by an\n\
             # environment variable or a command-line flag (see `anyam serve --help`).\n\n{body}"
        ))
    }

    /// Resolve a path setting against the data directory.
    pub fn resolve(data_dir: &Path, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            data_dir.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_round_trips() {
        let text = FileConfig::render_default().unwrap();
        let parsed: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(parsed.listen, FileConfig::default().listen);
        assert_eq!(parsed.store.synchronous, Synchronous::Full);
        assert_eq!(parsed.audit.head_interval_secs, 300);
        assert!(text.contains("[audit]"), "{text}");
    }

    #[test]
    fn files_written_before_the_audit_section_still_load() {
        let parsed: FileConfig = toml::from_str("[store]\nsynchronous = \"normal\"\n").unwrap();
        assert_eq!(parsed.audit.head_interval_secs, 300);
        let parsed: FileConfig = toml::from_str("[audit]\nhead_interval_secs = 5\n").unwrap();
        assert_eq!(parsed.audit.head_interval_secs, 5);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("anyam.toml");
        std::fs::write(&p, "listne = \"1.2.3.4:5\"\n").unwrap();
        let err = format!("{:#}", FileConfig::load(&p).unwrap_err());
        assert!(
            err.contains("anyam.toml") && err.contains("listne"),
            "{err}"
        );
    }
}
