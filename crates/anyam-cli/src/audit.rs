//! `anyam audit`: check the node's tamper-evident audit log, sign a tree head, export a partner's entries;
//! and how the rest of the CLI opens the log and records operator events in it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyam_audit::{
    AuditLog, AuditOptions, Event, ExportRequest, Kind, ObjectRef, PartnerExport, Synchronous,
    TrustedKeys,
};
use anyam_store::{NewObject, PutOutcome};
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

/// Most (id, version) pairs one entry lists: a run that moves more objects
/// is recorded as several entries, appended together, so that no single
/// leaf grows without bound.
pub const MAX_OBJECTS_PER_ENTRY: usize = 5000;

/// The object versions a store write kept (added, or already present with
/// the same content), as the API's receipts list them: an object without
/// `modified` or `created` is named by the `date_added` of its first
/// storage, the version the store serves for it. Conflicts were not stored
/// and are left out.
pub fn stored_refs(objects: &[NewObject], outcomes: &[PutOutcome]) -> Vec<ObjectRef> {
    objects
        .iter()
        .zip(outcomes)
        .filter_map(|(o, outcome)| {
            let added = match outcome {
                PutOutcome::Added(m) | PutOutcome::Unchanged(m) => *m,
                PutOutcome::Conflict => return None,
            };
            Some(ObjectRef {
                id: o.id.clone(),
                version: o
                    .version
                    .clone()
                    .unwrap_or_else(|| anyam_taxii::params::fmt_micros(added)),
            })
        })
        .collect()
}

/// One event per [`MAX_OBJECTS_PER_ENTRY`] objects, each a copy of
/// `template` listing its share; `template` alone when there are none.
/// Each entry's details say which part of how many it is.
pub fn split_by_objects(template: &Event, objects: Vec<ObjectRef>) -> Vec<Event> {
    if objects.len() <= MAX_OBJECTS_PER_ENTRY {
        let mut e = template.clone();
        e.what.objects = objects;
        return vec![e];
    }
    let chunks: Vec<&[ObjectRef]> = objects.chunks(MAX_OBJECTS_PER_ENTRY).collect();
    let parts = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut e = template.clone();
            e.what.objects = chunk.to_vec();
            if let serde_json::Value::Object(d) = &mut e.details {
                // Strings: audit details are canonicalized as doubles.
                d.insert(
                    "part".into(),
                    serde_json::json!(format!("{}/{parts}", i + 1)),
                );
            }
            e
        })
        .collect()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A valid object through the ingest pipeline, so that the test does
    /// not depend on every field the store keeps.
    fn new_object(id: &str, version: Option<&str>) -> NewObject {
        let raw = match version {
            Some(v) => serde_json::json!({
                "type": "indicator", "spec_version": "2.1", "id": id,
                "created": v, "modified": v, "pattern_type": "stix",
                "pattern": "[ipv4-addr:value = '198.51.100.1']",
                "valid_from": "2026-01-01T00:00:00Z",
            }),
            None => serde_json::json!({
                "type": "ipv4-addr", "spec_version": "2.1", "id": id, "value": "198.51.100.1",
            }),
        };
        anyam_taxii::ingest::prepare(&raw.to_string())
            .map_err(|r| r.message)
            .unwrap()
    }

    #[test]
    fn stored_refs_list_what_was_kept() {
        let objects = [
            new_object(
                "indicator--11111111-1111-4111-8111-111111111111",
                Some("2026-01-01T00:00:00.000Z"),
            ),
            new_object("ipv4-addr--22222222-2222-5222-8222-222222222222", None),
            new_object(
                "indicator--33333333-3333-4333-8333-333333333333",
                Some("2026-01-02T00:00:00.000Z"),
            ),
            new_object(
                "indicator--44444444-4444-4444-8444-444444444444",
                Some("2026-01-03T00:00:00.000Z"),
            ),
        ];
        let outcomes = [
            PutOutcome::Added(1),
            PutOutcome::Unchanged(1_767_225_600_000_000),
            PutOutcome::Conflict,
            PutOutcome::Unchanged(5),
        ];
        let got: Vec<(String, String)> = stored_refs(&objects, &outcomes)
            .into_iter()
            .map(|r| (r.id, r.version))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "indicator--11111111-1111-4111-8111-111111111111".into(),
                    "2026-01-01T00:00:00.000Z".into()
                ),
                (
                    "ipv4-addr--22222222-2222-5222-8222-222222222222".into(),
                    anyam_taxii::params::fmt_micros(1_767_225_600_000_000)
                ),
                (
                    "indicator--44444444-4444-4444-8444-444444444444".into(),
                    "2026-01-03T00:00:00.000Z".into()
                ),
            ]
        );
    }

    #[test]
    fn large_batches_are_split_into_parts() {
        let refs = |n: usize| -> Vec<ObjectRef> {
            (0..n)
                .map(|i| ObjectRef {
                    id: format!("indicator--{i}"),
                    version: "v".into(),
                })
                .collect()
        };
        let mut template = Event::new(Kind::Release, "someone");
        template.details = serde_json::json!({ "command": "export" });
        // (objects, entries, objects in the last entry, parts named)
        for (n, entries, last, parts) in [
            (0, 1, 0, false),
            (MAX_OBJECTS_PER_ENTRY, 1, MAX_OBJECTS_PER_ENTRY, false),
            (MAX_OBJECTS_PER_ENTRY + 1, 2, 1, true),
            (3 * MAX_OBJECTS_PER_ENTRY, 3, MAX_OBJECTS_PER_ENTRY, true),
        ] {
            let got = split_by_objects(&template, refs(n));
            assert_eq!(got.len(), entries, "{n}");
            assert_eq!(got.last().unwrap().what.objects.len(), last, "{n}");
            let listed: usize = got.iter().map(|e| e.what.objects.len()).sum();
            assert_eq!(listed, n);
            if parts {
                assert_eq!(got[0].details["part"], format!("1/{entries}"));
            } else {
                assert!(got[0].details.get("part").is_none());
            }
            assert!(got.iter().all(|e| e.kind == Kind::Release));
        }
    }
}
