//! `anyam audit`: check the node's tamper-evident audit log, sign a tree head, export a partner's entries;
//! and how the rest of the CLI opens the log and records operator events in it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyam_audit::{
    AuditLog, AuditOptions, Event, ExportRequest, Kind, PartnerExport, Synchronous, TrustedKeys,
};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;

use crate::config::{self, FileConfig};
use crate::{DataArgs, EXIT_REJECTED, identity};

/// The audit log's file in the data directory.
pub const AUDIT_FILE: &str = "audit.db";

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check the whole log against its signed tree heads; names the first
    /// bad entry or head. Exit code 3 when tampering is found.
    Verify(VerifyArgs),
    /// Sign a tree head over the log as it is now and print it.
    Head {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write the entries that concern one partner, with inclusion proofs
    /// against a signed tree head and consistency proofs from heads the
    /// partner saw before.
    Export(ExportArgs),
    /// Check an export as a partner does, with the node's public key alone.
    /// Exit code 3 when it does not verify.
    VerifyExport {
        /// The export (JSON).
        file: PathBuf,
        /// The exporting node's public key (SPKI PEM, its `keys/node.pub`);
        /// repeat for keys it rotated through.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Also trust these public keys (SPKI PEM); the node's own keys (all
    /// but revoked ones, from its key history) are always trusted.
    #[arg(long = "key")]
    keys: Vec<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The partner (node id as recorded in entries' parties).
    #[arg(long)]
    partner: String,
    /// Tree sizes of heads the partner already holds, to prove the new
    /// head extends them.
    #[arg(long = "since")]
    since: Vec<u64>,
    /// Only entries from this sequence number on.
    #[arg(long, default_value_t = 0)]
    from_seq: u64,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

/// How the node opens its audit log for writing: as durable as the store
/// (`store.synchronous`), since an audit record should survive whatever
/// the release or change it records survives.
pub fn write_options(cfg: &FileConfig) -> AuditOptions {
    AuditOptions {
        synchronous: match cfg.store.synchronous {
            config::Synchronous::Full => Synchronous::Full,
            config::Synchronous::Normal => Synchronous::Normal,
        },
        ..AuditOptions::default()
    }
}

/// Open (creating it if absent) the audit log of the node in `dir` for
/// appending. The server and administration commands may both have it
/// open: each append takes SQLite's write lock, waiting up to ten seconds
/// for the other, and catches up with what the other appended.
pub fn open_for_append(dir: &Path, cfg: &FileConfig) -> Result<AuditLog> {
    let path = dir.join(AUDIT_FILE);
    AuditLog::open(&path, write_options(cfg))
        .with_context(|| format!("opening the audit log {}", path.display()))
}

/// Who runs an administration command: the local operator, as the OS
/// account (`$USER`, else `$LOGNAME`, else the numeric user id) on this
/// host, e.g. `operator:alice@cert-node-1`. The environment can claim any
/// name, so this records what the operator's shell said, not a proof; the
/// node's own users are authenticated, operators are trusted with the data
/// directory already.
pub fn operator() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .or_else(|| {
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            Some(format!("uid{}", uid.split_whitespace().next()?))
        })
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".into());
    format!("operator:{user}@{host}")
}

/// Record one operator event of `kind` (an administration change, a key or
/// agreement event) and wait until it is durable: the command reports
/// success only once its change is both made and audited.
pub fn record_operator_event(
    dir: &Path,
    cfg: &FileConfig,
    kind: Kind,
    build: impl FnOnce(&mut Event),
) -> Result<u64> {
    let mut event = Event::new(kind, operator());
    build(&mut event);
    let log = open_for_append(dir, cfg)?;
    log.append(&event)
        .context("recording the change in the audit log (the change itself was made)")
}

fn open(dir: &Path, read_only: bool) -> Result<AuditLog> {
    let path = dir.join(AUDIT_FILE);
    if !path.exists() {
        bail!(
            "{} holds no audit log ({AUDIT_FILE} is created when the node first starts)",
            dir.display()
        );
    }
    AuditLog::open(
        &path,
        AuditOptions {
            read_only,
            ..AuditOptions::default()
        },
    )
    .with_context(|| format!("opening {}", path.display()))
}

fn read_public(path: &Path) -> Result<VerifyingKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    VerifyingKey::from_public_key_pem(&pem)
        .with_context(|| format!("{} is not an Ed25519 public key (SPKI PEM)", path.display()))
}

/// The node's keys that vouch for its heads: every key of its history
/// that was not revoked (a head signed with a key the node revoked after a
/// compromise could be the thief's; after recovery, `anyam audit head`
/// signs a fresh head with the new key), else its current public key.
fn trusted(dir: &Path, extra: &[PathBuf]) -> Result<TrustedKeys> {
    let history = identity::node_key_history(dir)?;
    let mut keys: Vec<VerifyingKey> = history
        .iter()
        .filter(|k| !matches!(k.status, anyam_trust::KeyStatus::Revoked))
        .map(|k| k.key)
        .collect();
    if keys.is_empty() {
        let (_, public) = identity::key_paths(dir);
        keys.push(read_public(&public)?);
    }
    for p in extra {
        keys.push(read_public(p)?);
    }
    Ok(TrustedKeys::new(keys))
}

pub fn run(cmd: AuditCmd) -> Result<ExitCode> {
    match cmd {
        AuditCmd::Verify(a) => {
            let log = open(&a.data.data_dir, true)?;
            let keys = trusted(&a.data.data_dir, &a.keys)?;
            match anyam_audit::verify(&log, &keys) {
                Ok(report) => {
                    println!("{}", serde_json::to_string(&report)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) if e.tampered().is_some() => {
                    eprintln!("anyam: audit log does not verify: {e}");
                    Ok(ExitCode::from(EXIT_REJECTED))
                }
                Err(e) => Err(e).context("verifying the audit log"),
            }
        }
        AuditCmd::Head { data } => {
            let log = open(&data.data_dir, false)?;
            let key = identity::load_signing_key(&data.data_dir)?;
            let head = log.sign_head(&key, jiff::Timestamp::now())?;
            println!("{}", serde_json::to_string(&head)?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Export(a) => {
            let log = open(&a.data.data_dir, false)?;
            // Export against a head covering everything logged so far.
            let key = identity::load_signing_key(&a.data.data_dir)?;
            log.sign_head(&key, jiff::Timestamp::now())?;
            let export = log.export_for(
                &a.partner,
                &ExportRequest {
                    head_size: None,
                    since: a.since.clone(),
                    from_seq: a.from_seq,
                },
            )?;
            let text = serde_json::to_string_pretty(&export)?;
            match &a.out {
                Some(p) => std::fs::write(p, text + "\n")
                    .with_context(|| format!("writing {}", p.display()))?,
                None => println!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::VerifyExport { file, keys } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let export: PartnerExport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an audit export", file.display()))?;
            let keys = TrustedKeys::new(
                keys.iter()
                    .map(|p| read_public(p))
                    .collect::<Result<Vec<_>>>()?,
            );
            match anyam_audit::verify_export(&export, &keys) {
                Ok(v) => {
                    let summary = serde_json::json!({
                        "verified": true,
                        "partner": export.partner,
                        "entries": v.entries.len(),
                        "head": v.head,
                    });
                    println!("{summary}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("anyam: export does not verify: {e}");
                    Ok(ExitCode::from(EXIT_REJECTED))
                }
            }
        }
    }
}
