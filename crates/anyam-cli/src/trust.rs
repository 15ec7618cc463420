//! `anyam key`, `anyam descriptor`, `anyam partner` and `anyam agreement`:
//! the node's keys, its signed descriptor, partners, and sharing agreements.
//!
//! Documents move between nodes as files until federation arrives: export
//! a descriptor and hand it to a partner, draft an agreement and send the
//! file, countersign what comes back. Everything received is verified on
//! the way in; what fails verification is rejected with exit code 3.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyam_trust::{
    Agreement, DescriptorExport, NodeDescriptor, NotInForce, Pap, Redistribution, Retention, Scope,
    Sightings, Signed, Termination, Terms, Tlp, TrustError, TrustStore,
};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::node::{self, Node};
use crate::{DataArgs, EXIT_REJECTED, identity};

/// Print why input was rejected and give exit code 3.
fn reject(what: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("anyam: rejected: {what}");
    ExitCode::from(EXIT_REJECTED)
}

/// Unwrap a trust result: a rejection of the input ends the command with
/// exit code 3, any other error propagates (exit code 1).
macro_rules! accept {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) if TrustError::is_rejection(&e) => return Ok(reject(&e)),
            Err(e) => return Err(anyhow::Error::from(e)),
        }
    };
}

/// An open node with its trust database.
struct Ctx {
    node: Node,
    trust: TrustStore,
    node_id: String,
}

/// What a notice about agreement `id` (a termination, a removal) is made
/// from: the node, the agreement's newest version and the node's signing
/// key.
fn notice_context(
    data: &DataArgs,
    id: &str,
) -> Result<(Ctx, Agreement, ed25519_dalek::SigningKey)> {
    let ctx = open(data)?;
    let a: Agreement = ctx.trust.agreement(id, None)?.parse()?;
    let key = identity::load_signing_key(&ctx.node.dir)?;
    Ok((ctx, a, key))
}

fn open(data: &DataArgs) -> Result<Ctx> {
    let node = node::open_existing(&data.data_dir, data.config.as_deref())?;
    let trust = identity::open_trust(&node.dir)?;
    identity::complete_pending_key(&node.dir, &trust)?;
    let node_id = trust.self_node_id()?.with_context(|| {
        format!(
            "{} has no key history yet; start the node once with `anyam serve` (it creates the recovery key, or says what is missing)",
            node.dir.display()
        )
    })?;
    Ok(Ctx {
        node,
        trust,
        node_id,
    })
}

fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// Write a document to `out`, or to standard output.
fn write_output(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        Some(p) => std::fs::write(p, format!("{text}\n"))
            .with_context(|| format!("writing {}", p.display())),
        None => {
            use std::io::Write;
            // A reader that stops early (`| head`) is not an error.
            match writeln!(std::io::stdout().lock(), "{text}") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.context("writing to standard output"),
            }
        }
    }
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn parse_when(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>()
        .map_err(|e| format!("not an RFC 3339 time (like 2026-01-31T00:00:00Z): {e}"))
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(s.to_ascii_lowercase())).map_err(|_| format!("{s:?}"))
}

fn parse_tlp(s: &str) -> Result<Tlp, String> {
    parse_enum(s).map_err(|v| format!("{v} is not one of clear, green, amber, amber+strict, red"))
}

fn parse_pap(s: &str) -> Result<Pap, String> {
    parse_enum(s).map_err(|v| format!("{v} is not one of clear, green, amber, red"))
}

// ---------------------------------------------------------------- keys

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Show the node id, the active node key and the key history.
    Show {
        #[command(flatten)]
        data: DataArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace the node key: the old key signs the new one, which
    /// countersigns. Export the descriptor again and send it to partners.
    Rotate {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Recover from a compromised node key: the offline recovery key revokes
    /// it and installs a new node key. Partners reject everything signed by
    /// the revoked key once they import the new descriptor export.
    Revoke {
        #[command(flatten)]
        data: DataArgs,
        /// The recovery key file written at first start.
        #[arg(long)]
        recovery_key: PathBuf,
        /// The key id to revoke [default: the current node key].
        #[arg(long)]
        key_id: Option<String>,
        /// Why (kept in the signed revocation).
        #[arg(long)]
        reason: Option<String>,
    },
}

pub fn key(cmd: KeyCmd) -> Result<ExitCode> {
    match cmd {
        KeyCmd::Show { data, json } => {
            let ctx = open(&data)?;
            let ring = ctx.trust.own_keyring()?;
            let mut v = ring.to_json(Timestamp::now());
            let (rec_private, _) = identity::recovery_paths(&ctx.node.dir);
            v["recovery_key_file_present"] = json!(rec_private.exists());
            if json {
                write_output(None, &pretty(&v))?;
            } else {
                println!("node id:     {}", ring.node_id());
                if let Some((id, _)) = ring.active() {
                    println!("active key:  {id}");
                }
                // Oldest first, so the history reads as it happened.
                for h in identity::node_key_history(&ctx.node.dir)? {
                    let Some(r) = ring.get(&h.key_id) else {
                        continue;
                    };
                    let status = serde_json::to_value(h.status).unwrap_or(Value::Null);
                    println!(
                        "  {} {:<8} {} from {}{}{}",
                        h.key_id,
                        status.as_str().unwrap_or(""),
                        anyam_trust::PublicKeyInfo::new(&h.key).public_key,
                        anyam_trust::format_time(r.valid_from),
                        r.retired_at
                            .map(|t| format!(", retired {}", anyam_trust::format_time(t)))
                            .unwrap_or_default(),
                        r.revoked_at
                            .map(|t| format!(", REVOKED {}", anyam_trust::format_time(t)))
                            .unwrap_or_default(),
                    );
                }
                if rec_private.exists() {
                    println!(
                        "warning: the recovery key is still at {}; move it offline",
                        rec_private.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeyCmd::Rotate { data } => {
            let mut ctx = open(&data)?;
            let s = identity::rotate_node_key(&ctx.node.dir, &mut ctx.trust)?;
            let ring = ctx.trust.own_keyring()?;
            let new_key = ring.active().map(|(id, _)| id).unwrap_or("").to_string();
            record(
                &ctx,
                anyam_audit::Kind::Key,
                "key rotate",
                format!("key/{new_key}"),
                Vec::new(),
                json!({"command": "key rotate", "new_key_id": new_key, "statement": s.digest()}),
            )?;
            println!("node key rotated: {new_key} (statement {})", s.digest());
            println!(
                "export the descriptor again (`anyam descriptor export`) and send it to partners; restart a running node"
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCmd::Revoke {
            data,
            recovery_key,
            key_id,
            reason,
        } => {
            let mut ctx = open(&data)?;
            let (_, revoked) = identity::recover_node_key(
                &ctx.node.dir,
                &mut ctx.trust,
                &recovery_key,
                key_id,
                reason,
            )?;
            let ring = ctx.trust.own_keyring()?;
            let new_key = ring.active().map(|(id, _)| id).unwrap_or("").to_string();
            record(
                &ctx,
                anyam_audit::Kind::Key,
                "key revoke",
                format!("key/{revoked}"),
                Vec::new(),
                json!({"command": "key revoke", "revoked_key_id": revoked, "new_key_id": new_key}),
            )?;
            println!("revoked key:  {revoked}");
            println!("new node key: {new_key}");
            println!(
                "export the descriptor now (`anyam descriptor export`) and send it to every partner; put the recovery key back offline; restart a running node"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ---------------------------------------------------------- descriptor

#[derive(Subcommand)]
pub enum DescriptorCmd {
    /// Write the node's signed descriptor with its key history, for partners.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The TAXII discovery URL partners use (remembered for next time)
    /// [default: the partner listener `federation.listen`, else from
    /// `public_url`, else the listen address].
    #[arg(long)]
    taxii_url: Option<String>,
    /// A file holding the organization's STIX 2.1 identity object to use
    /// from now on [default: one made from `node_name` at first use].
    #[arg(long)]
    identity: Option<PathBuf>,
}

const META_IDENTITY: &str = "identity";
const META_TAXII_URL: &str = "taxii_url";

fn stix_now() -> String {
    let micros = Timestamp::now().as_microsecond();
    anyam_stix::format_micros(micros - micros.rem_euclid(1000), 3)
}

/// Records a key or agreement event in the audit log, naming the partner
/// nodes it concerns (so that `anyam audit export --partner NODE_ID` gives
/// each its part).
fn record(
    ctx: &Ctx,
    kind: anyam_audit::Kind,
    command: &str,
    path: String,
    parties: Vec<String>,
    details: Value,
) -> Result<()> {
    crate::audit::record_operator_event(&ctx.node.dir, &ctx.node.config, kind, |e| {
        e.what.path = Some(path);
        e.parties = parties;
        e.why = format!("operator command `anyam {command}`");
        e.details = details;
    })?;
    Ok(())
}

/// The other parties of an agreement (node ids).
fn others(ctx: &Ctx, a: &Agreement) -> Vec<String> {
    a.party_ids()
        .filter(|id| *id != ctx.node_id)
        .map(str::to_string)
        .collect()
}

/// The organization's identity: stored, or made once from the node name.
fn own_identity(ctx: &Ctx) -> Result<Value> {
    identity_in(&ctx.trust, &ctx.node.config.node_name)
}

fn identity_in(trust: &anyam_trust::TrustStore, node_name: &str) -> Result<Value> {
    if let Some(text) = trust.meta(META_IDENTITY)? {
        return serde_json::from_str(&text).context("the stored identity object");
    }
    let now = stix_now();
    let identity = json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": format!("identity--{}", uuid::Uuid::new_v4()),
        "created": now,
        "modified": now,
        "name": node_name,
        "identity_class": "organization",
    });
    trust.set_meta(META_IDENTITY, &serde_json::to_string(&identity)?)?;
    Ok(identity)
}

/// The host organization's STIX identity, the one the node descriptor
/// carries, for everything else the node writes in its own name
/// (sightings' `created_by_ref` and `where_sighted_refs`).
pub fn host_identity(dir: &Path, node_name: &str) -> Result<Value> {
    identity_in(&identity::open_trust(dir)?, node_name)
}

fn own_taxii_url(ctx: &Ctx) -> Result<String> {
    if let Some(u) = ctx.trust.meta(META_TAXII_URL)? {
        return Ok(u);
    }
    let cfg = &ctx.node.config;
    if let Some(l) = cfg.federation.listen {
        return Ok(format!("https://{l}/taxii2/"));
    }
    Ok(match &cfg.public_url {
        Some(u) => format!("{}/taxii2/", u.trim_end_matches('/')),
        None => {
            let scheme = if cfg.plain_http { "http" } else { "https" };
            format!("{scheme}://{}/taxii2/", cfg.listen)
        }
    })
}

/// The local node's descriptor as of now (unsigned), and its node key.
fn own_descriptor(ctx: &Ctx) -> Result<(NodeDescriptor, ed25519_dalek::SigningKey)> {
    let key = identity::load_signing_key(&ctx.node.dir)?;
    let ring = ctx.trust.own_keyring()?;
    let d = NodeDescriptor::new(
        &ctx.node.config.node_name,
        own_identity(ctx)?,
        &key.verifying_key(),
        ring.recovery_key(),
        &own_taxii_url(ctx)?,
        Timestamp::now(),
    );
    Ok((d, key))
}

pub fn descriptor(cmd: DescriptorCmd) -> Result<ExitCode> {
    let DescriptorCmd::Export(a) = cmd;
    let ctx = open(&a.data)?;
    if let Some(path) = &a.identity {
        let v: Value = serde_json::from_str(&read_input(path)?)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        if v.get("type").and_then(Value::as_str) != Some("identity") {
            return Ok(reject(&format!(
                "{}: not a STIX identity object",
                path.display()
            )));
        }
        if let Err(e) = anyam_stix::check_object(&v) {
            return Ok(reject(&format!("{}: {e}", path.display())));
        }
        ctx.trust
            .set_meta(META_IDENTITY, &serde_json::to_string(&v)?)?;
    }
    if let Some(u) = &a.taxii_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            bail!("--taxii-url must be an http(s) URL");
        }
        ctx.trust.set_meta(META_TAXII_URL, u)?;
    }
    let ring = ctx.trust.own_keyring()?;
    let (d, key) = own_descriptor(&ctx)?;
    if ring.active().map(|(id, _)| id) != Some(d.node_key.key_id.as_str()) {
        bail!(
            "keys/node.key ({}) is not the node's active key in its key history",
            d.node_key.key_id
        );
    }
    let signed = d.sign(&key)?;
    let export = DescriptorExport::new(signed, ctx.trust.statements(&ctx.node_id)?);
    write_output(a.out.as_deref(), &pretty(&export))?;
    if a.out.is_some() {
        eprintln!("descriptor of node {} exported", ctx.node_id);
    }
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------ partners

#[derive(Subcommand)]
pub enum PartnerCmd {
    /// Verify and store a partner's descriptor export (first contact, or an
    /// update after a key rotation or recovery). Exit 3 if it fails
    /// verification.
    Import {
        #[command(flatten)]
        data: DataArgs,
        /// The export file (`-` for standard input).
        file: PathBuf,
        /// The node id the partner gave you out of band; on first contact
        /// the import is refused unless it matches.
        #[arg(long)]
        expect_node_id: Option<String>,
    },
    /// List partners.
    List {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show a partner's descriptor and keys.
    Show {
        #[command(flatten)]
        data: DataArgs,
        node_id: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn partner(cmd: PartnerCmd) -> Result<ExitCode> {
    match cmd {
        PartnerCmd::Import {
            data,
            file,
            expect_node_id,
        } => {
            let mut ctx = open(&data)?;
            let export = accept!(DescriptorExport::from_json(&read_input(&file)?));
            let r = accept!(ctx.trust.import_partner(
                &export,
                expect_node_id.as_deref(),
                Timestamp::now()
            ));
            record(
                &ctx,
                anyam_audit::Kind::Key,
                "partner import",
                format!("partner/{}", r.node_id),
                vec![r.node_id.clone()],
                json!({"command": "partner import", "node_name": r.descriptor.node_name,
                       "new": r.new, "new_key_statements": r.new_statements}),
            )?;
            if r.new {
                println!("partner added: {} ({})", r.descriptor.node_name, r.node_id);
                if expect_node_id.is_none() {
                    println!(
                        "compare this node id with the partner by another channel before drafting agreements"
                    );
                }
            } else {
                println!(
                    "partner updated: {} ({}), {} new key statement(s)",
                    r.descriptor.node_name, r.node_id, r.new_statements
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PartnerCmd::List { data, json } => {
            let ctx = open(&data)?;
            let partners = ctx.trust.partners()?;
            if json {
                let v: Vec<Value> = partners
                    .iter()
                    .map(|p| {
                        json!({
                            "node_id": p.descriptor.node_id,
                            "node_name": p.descriptor.node_name,
                            "identity_id": p.descriptor.identity_id(),
                            "node_key_id": p.descriptor.node_key.key_id,
                            "taxii_url": p.descriptor.taxii_url,
                            "updated_at": p.updated_at,
                        })
                    })
                    .collect();
                write_output(None, &pretty(&v))?;
            } else {
                for p in &partners {
                    println!(
                        "{}  {}  {}",
                        p.descriptor.node_id, p.descriptor.node_name, p.descriptor.taxii_url
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PartnerCmd::Show {
            data,
            node_id,
            json,
        } => {
            let ctx = open(&data)?;
            let Some(p) = ctx.trust.partner(&node_id)? else {
                bail!("no partner with node id {node_id}");
            };
            let ring = ctx
                .trust
                .keyring(&node_id)?
                .context("the partner's key history")?;
            let v = json!({
                "descriptor": p.signed.document,
                "keys": ring.to_json(Timestamp::now()),
                "updated_at": p.updated_at,
            });
            if json {
                write_output(None, &pretty(&v))?;
            } else {
                let d = &p.descriptor;
                println!("node:       {} ({})", d.node_name, d.node_id);
                println!(
                    "identity:   {} ({})",
                    d.identity.get("name").and_then(Value::as_str).unwrap_or(""),
                    d.identity_id()
                );
                println!("taxii:      {}", d.taxii_url);
                println!("node key:   {}", d.node_key.key_id);
                println!("descriptor: {}", d.created);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ---------------------------------------------------------- agreements

/// Terms given on the command line; for `amend` every one is optional and
/// overrides the previous version's.
#[derive(Args, Clone)]
pub struct TermArgs {
    /// A short title.
    #[arg(long)]
    title: Option<String>,
    /// A partner's node id (repeat for a sharing group); the local node is
    /// always a party. For `amend`, replaces the partner list.
    #[arg(long = "party")]
    parties: Vec<String>,
    /// A collection (id or alias) in scope (repeatable).
    #[arg(long = "collection")]
    collections: Vec<String>,
    /// A STIX object type in scope (repeatable).
    #[arg(long = "object-type")]
    object_types: Vec<String>,
    /// The most restrictive TLP that may flow: clear, green, amber,
    /// amber+strict, red [draft default: amber].
    #[arg(long, value_parser = parse_tlp)]
    max_tlp: Option<Tlp>,
    /// PAP: clear, green, amber, red [draft default: green].
    #[arg(long, value_parser = parse_pap)]
    pap: Option<Pap>,
    /// Redistribution: none, parties, or named (with --recipient)
    /// [draft default: none].
    #[arg(long, value_parser = ["none", "parties", "named"])]
    redistribution: Option<String>,
    /// A node id or STIX identity id data may be passed on to
    /// (repeatable, with --redistribution named).
    #[arg(long = "recipient")]
    recipients: Vec<String>,
    /// Sightings back to the originator: no, yes, anonymized
    /// [draft default: no].
    #[arg(long, value_parser = ["no", "yes", "anonymized"])]
    sightings: Option<String>,
    /// After termination: delete, keep (indefinitely) or keep:DAYS
    /// [draft default: delete].
    #[arg(long)]
    retention: Option<String>,
    /// Notice period of a termination, in days [draft default: 30].
    #[arg(long)]
    notice_days: Option<u32>,
    /// Start of validity, RFC 3339 [draft default: now].
    #[arg(long, value_parser = parse_when)]
    valid_from: Option<Timestamp>,
    /// End of validity, RFC 3339 [draft default: one year after the start].
    #[arg(long, value_parser = parse_when)]
    valid_until: Option<Timestamp>,
}

fn parse_retention(s: &str) -> Result<Retention> {
    match s {
        "delete" => Ok(Retention::Delete),
        "keep" => Ok(Retention::Keep { days: None }),
        _ => match s.strip_prefix("keep:").map(str::parse::<u32>) {
            Some(Ok(d)) => Ok(Retention::Keep { days: Some(d) }),
            _ => bail!("--retention must be delete, keep or keep:DAYS, not {s:?}"),
        },
    }
}

impl TermArgs {
    /// Apply these arguments over `base` terms.
    fn apply(&self, mut t: Terms) -> Result<Terms> {
        if let Some(v) = &self.title {
            t.title = v.clone();
        }
        if !self.collections.is_empty() {
            t.scope.collections = self.collections.clone();
        }
        if !self.object_types.is_empty() {
            t.scope.object_types = self.object_types.clone();
        }
        if let Some(v) = self.max_tlp {
            t.scope.max_tlp = v;
        }
        if let Some(v) = self.pap {
            t.scope.pap = v;
        }
        match self.redistribution.as_deref() {
            Some("none") => t.redistribution = Redistribution::None,
            Some("parties") => t.redistribution = Redistribution::Parties,
            Some("named") => {
                t.redistribution = Redistribution::Named {
                    recipients: self.recipients.clone(),
                }
            }
            _ if !self.recipients.is_empty() => {
                bail!("--recipient needs --redistribution named")
            }
            _ => {}
        }
        if let Some(s) = self.sightings.as_deref() {
            t.sightings = Sightings {
                send_to_originator: s != "no",
                anonymized: s == "anonymized",
            };
        }
        if let Some(r) = &self.retention {
            t.retention_after_termination = parse_retention(r)?;
        }
        if let Some(d) = self.notice_days {
            t.notice_period_days = d;
        }
        if let Some(v) = self.valid_from {
            t.valid_from = v;
        }
        if let Some(v) = self.valid_until {
            t.valid_until = v;
        }
        Ok(t)
    }
}

#[derive(Subcommand)]
pub enum AgreementCmd {
    /// Draft version 1 of an agreement with partners; stores it and writes
    /// the unsigned document. Sign it with `sign`, then send it.
    Draft {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        terms: TermArgs,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show an agreement version, who signed it, and whether it is in force.
    Show {
        #[command(flatten)]
        data: DataArgs,
        id: String,
        /// The version [default: the latest].
        #[arg(long)]
        version: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Sign a stored version with the node key, write it with every
    /// signature held, and queue it for the other parties' nodes (they
    /// fetch it on their next sync round).
    Sign {
        #[command(flatten)]
        data: DataArgs,
        id: String,
        #[arg(long)]
        version: Option<u32>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify and store an agreement a partner sent (a file, or the id of
    /// one its node sent over federation), add the node's signature, store
    /// it, queue it for the other parties' nodes and write it. Exit 3 if
    /// it fails verification.
    Countersign {
        #[command(flatten)]
        data: DataArgs,
        /// The agreement file (`-` for standard input), or a stored
        /// agreement's id (its latest version).
        source: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Queue a stored version, with every signature held, for the other
    /// parties' nodes again (they fetch it on their next sync round).
    Send {
        #[command(flatten)]
        data: DataArgs,
        id: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Verify and store an agreement version or a termination notice
    /// without signing it (for example the fully signed copy coming back).
    Import {
        #[command(flatten)]
        data: DataArgs,
        file: PathBuf,
    },
    /// Whether an agreement (a file, or a stored id) is in force: exit 0
    /// if it is, 3 if not, with the reason.
    Verify {
        #[command(flatten)]
        data: DataArgs,
        /// An agreement file, or the id of a stored agreement.
        target: String,
        #[arg(long)]
        version: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// List every stored version with its status.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Only versions in force.
        #[arg(long)]
        in_force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Draft the next version of an agreement (every party signs again);
    /// options override the previous version's terms.
    Amend {
        #[command(flatten)]
        data: DataArgs,
        id: String,
        #[command(flatten)]
        terms: TermArgs,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Give notice: a signed termination that takes effect when the notice
    /// period has run; queued for the other parties' nodes.
    Terminate {
        #[command(flatten)]
        data: DataArgs,
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Remove a party from an agreement (a sharing group): a signed
    /// removal that this node enforces at once and queues for every other
    /// party, the removed one included; each enforces it on receipt.
    Remove {
        #[command(flatten)]
        data: DataArgs,
        id: String,
        /// The node id of the party to remove.
        #[arg(long)]
        party: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The agreements in force as JSON, for the release decision.
    InForce {
        #[command(flatten)]
        data: DataArgs,
    },
}

fn status_json(r: &Result<anyam_trust::InForce, NotInForce>) -> Value {
    match r {
        Ok(f) => json!({
            "in_force": true,
            "terminating_at": f.terminating_at.map(anyam_trust::format_time),
        }),
        Err(n) => {
            let mut v = serde_json::to_value(n).unwrap_or(Value::Null);
            v["in_force"] = json!(false);
            v["message"] = json!(n.to_string());
            v
        }
    }
}

fn status_text(r: &Result<anyam_trust::InForce, NotInForce>) -> String {
    match r {
        Ok(f) => match f.terminating_at {
            Some(t) => format!("in force (terminating {})", anyam_trust::format_time(t)),
            None => "in force".into(),
        },
        Err(n) => format!("not in force: {n}"),
    }
}

/// The local node's descriptor and the stored descriptors of `partners`.
fn parties(ctx: &Ctx, partners: &[String]) -> Result<Vec<NodeDescriptor>> {
    let (me, _) = own_descriptor(ctx)?;
    let mut out = vec![me];
    for id in partners {
        if *id == ctx.node_id {
            continue;
        }
        let Some(p) = ctx.trust.partner(id)? else {
            bail!(
                "no partner with node id {id}; import its descriptor first (`anyam partner import`)"
            );
        };
        out.push(p.descriptor);
    }
    Ok(out)
}

fn sign_and_store(ctx: &mut Ctx, mut s: Signed) -> Result<Signed> {
    let key = identity::load_signing_key(&ctx.node.dir)?;
    s.sign(&key);
    let a: Agreement = s.parse()?;
    ctx.trust.put_agreement(&s, Timestamp::now())?;
    ctx.trust
        .agreement(&a.id, Some(a.version))
        .map_err(Into::into)
}

/// After a signed notice (a termination or a removal) was stored: record
/// it in the audit log as `agreement <command>`, write it, and queue it
/// (as a `kind` notice) for the other parties' nodes. Returns how many.
fn issue_notice(
    ctx: &Ctx,
    a: &Agreement,
    command: &str,
    kind: &str,
    notice: &Signed,
    mut details: Value,
    out: Option<&Path>,
) -> Result<usize> {
    let command = format!("agreement {command}");
    details["command"] = json!(command);
    details["notice"] = json!(notice.digest());
    record(
        ctx,
        anyam_audit::Kind::Agreement,
        &command,
        format!("agreement/{}/{}", a.id, a.version),
        others(ctx, a),
        details,
    )?;
    write_output(out, &pretty(notice))?;
    crate::federation::queue_for_parties(&ctx.node.dir, kind, notice, &others(ctx, a))
}

/// Queue an agreement version for the other parties' nodes.
fn announce(ctx: &Ctx, s: &Signed, a: &Agreement) -> Result<()> {
    let n = crate::federation::queue_for_parties(&ctx.node.dir, "agreement", s, &others(ctx, a))?;
    eprintln!(
        "{} version {} queued for {n} partner nodes; they fetch it on their next sync",
        a.id, a.version
    );
    Ok(())
}

fn is_party(ctx: &Ctx, s: &Signed) -> bool {
    s.parse::<Agreement>()
        .is_ok_and(|a| a.party_ids().any(|p| p == ctx.node_id))
}

pub fn agreement(cmd: AgreementCmd) -> Result<ExitCode> {
    match cmd {
        AgreementCmd::Draft { data, terms, out } => {
            let mut ctx = open(&data)?;
            if terms.parties.is_empty() {
                bail!("name at least one partner with --party NODE_ID");
            }
            let now = Timestamp::now();
            let from = terms.valid_from.unwrap_or(now);
            let base = Terms {
                title: String::new(),
                scope: Scope {
                    collections: vec![],
                    object_types: vec![],
                    max_tlp: Tlp::Amber,
                    pap: Pap::Green,
                },
                redistribution: Redistribution::None,
                sightings: Sightings {
                    send_to_originator: false,
                    anonymized: false,
                },
                retention_after_termination: Retention::Delete,
                notice_period_days: 30,
                valid_from: from,
                valid_until: from
                    .checked_add(SignedDuration::from_hours(24 * 365))
                    .unwrap_or(from),
            };
            let t = terms.apply(base)?;
            let a = accept!(Agreement::draft(parties(&ctx, &terms.parties)?, t, now));
            let s = Signed::new(&a)?;
            accept!(ctx.trust.put_agreement(&s, now));
            record(
                &ctx,
                anyam_audit::Kind::Agreement,
                "agreement draft",
                format!("agreement/{}/1", a.id),
                others(&ctx, &a),
                json!({"command": "agreement draft", "digest": s.digest()}),
            )?;
            write_output(out.as_deref(), &pretty(&s))?;
            eprintln!(
                "drafted {} version 1; sign it with `anyam agreement sign {}`",
                a.id, a.id
            );
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::Show {
            data,
            id,
            version,
            json,
        } => {
            let ctx = open(&data)?;
            let s = ctx.trust.agreement(&id, version)?;
            let a: Agreement = s.parse()?;
            let status = ctx.trust.evaluate(&id, Some(a.version), Timestamp::now())?;
            let rings = ctx.trust.keyrings()?;
            let signers: Vec<Value> = a
                .parties
                .iter()
                .map(|p| {
                    let signed = rings.get(&p.node_id).is_some_and(|r| {
                        s.signatures.iter().any(|sig| {
                            r.get(&sig.key_id)
                                .is_some_and(|k| s.check(&k.key) == anyam_trust::SigCheck::Valid)
                        })
                    });
                    json!({"node_id": p.node_id, "node_name": p.node_name, "signed": signed})
                })
                .collect();
            if json {
                println!(
                    "{}",
                    pretty(&json!({
                        "agreement": s,
                        "digest": s.digest(),
                        "parties": signers,
                        "status": status_json(&status),
                    }))
                );
            } else {
                println!("{} version {}: {}", a.id, a.version, a.title);
                println!("status:          {}", status_text(&status));
                println!("digest:          {}", s.digest());
                if let Some(r) = &a.replaces {
                    println!("replaces:        version {} ({})", r.version, r.digest);
                }
                println!(
                    "kind:            {}",
                    if a.parties.len() > 2 {
                        "sharing group (member list confidential to the parties)"
                    } else {
                        "bilateral"
                    }
                );
                for p in &signers {
                    println!(
                        "party:           {} ({}) {}",
                        p["node_name"].as_str().unwrap_or(""),
                        p["node_id"].as_str().unwrap_or(""),
                        if p["signed"] == json!(true) {
                            "signed"
                        } else {
                            "NOT SIGNED"
                        }
                    );
                }
                println!("collections:     {}", a.scope.collections.join(", "));
                println!("object types:    {}", a.scope.object_types.join(", "));
                println!(
                    "max TLP:         {}",
                    pretty(&a.scope.max_tlp).trim_matches('"')
                );
                println!(
                    "PAP:             {}",
                    pretty(&a.scope.pap).trim_matches('"')
                );
                println!(
                    "redistribution:  {}",
                    match &a.redistribution {
                        Redistribution::None => "none".to_string(),
                        Redistribution::Parties => "to the parties".to_string(),
                        Redistribution::Named { recipients } =>
                            format!("to the parties and {}", recipients.join(", ")),
                    }
                );
                println!(
                    "sightings:       {}",
                    match (a.sightings.send_to_originator, a.sightings.anonymized) {
                        (false, _) => "not sent back",
                        (true, false) => "sent back to the originator",
                        (true, true) => "sent back to the originator, anonymized",
                    }
                );
                println!(
                    "retention:       {}",
                    match a.retention_after_termination {
                        Retention::Delete => "delete on termination".to_string(),
                        Retention::Keep { days: None } => "keep".to_string(),
                        Retention::Keep { days: Some(d) } => format!("keep {d} days"),
                    }
                );
                println!("notice period:   {} days", a.notice_period_days);
                println!("valid:           {} to {}", a.valid_from, a.valid_until);
            }
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::Sign {
            data,
            id,
            version,
            out,
        } => {
            let mut ctx = open(&data)?;
            let s = ctx.trust.agreement(&id, version)?;
            if !is_party(&ctx, &s) {
                return Ok(reject(&"this node is not a party to the agreement"));
            }
            let s = sign_and_store(&mut ctx, s)?;
            let a: Agreement = s.parse()?;
            record(
                &ctx,
                anyam_audit::Kind::Agreement,
                "agreement sign",
                format!("agreement/{}/{}", a.id, a.version),
                others(&ctx, &a),
                json!({"command": "agreement sign", "digest": s.digest()}),
            )?;
            write_output(out.as_deref(), &pretty(&s))?;
            announce(&ctx, &s, &a)?;
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::Countersign { data, source, out } => {
            let mut ctx = open(&data)?;
            let s = if source == "-" || Path::new(&source).exists() {
                accept!(Signed::from_json(&read_input(Path::new(&source))?))
            } else {
                ctx.trust.agreement(&source, None)?
            };
            if !is_party(&ctx, &s) {
                return Ok(reject(&"this node is not a party to the agreement"));
            }
            accept!(ctx.trust.put_agreement(&s, Timestamp::now()));
            let s = sign_and_store(&mut ctx, s)?;
            write_output(out.as_deref(), &pretty(&s))?;
            let a: Agreement = s.parse()?;
            let status = ctx
                .trust
                .evaluate(&a.id, Some(a.version), Timestamp::now())?;
            record(
                &ctx,
                anyam_audit::Kind::Agreement,
                "agreement countersign",
                format!("agreement/{}/{}", a.id, a.version),
                others(&ctx, &a),
                json!({"command": "agreement countersign", "digest": s.digest(),
                       "status": status_text(&status)}),
            )?;
            eprintln!("{} version {}: {}", a.id, a.version, status_text(&status));
            announce(&ctx, &s, &a)?;
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::Send { data, id, version } => {
            let ctx = open(&data)?;
            let s = ctx.trust.agreement(&id, version)?;
            let a: Agreement = s.parse()?;
            announce(&ctx, &s, &a)?;
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::Import { data, file } => {
            let mut ctx = open(&data)?;
            let s = accept!(Signed::from_json(&read_input(&file)?));
            let now = Timestamp::now();
            if s.doc_type() == Some(<Termination as anyam_trust::Document>::TYPE) {
                let t = accept!(ctx.trust.put_termination(&s, now));
                record(
                    &ctx,
                    anyam_audit::Kind::Agreement,
                    "agreement import",
                    format!("agreement/{}/{}", t.agreement_id, t.agreement_version),
                    vec![t.by.clone()],
                    json!({"command": "agreement import", "termination_by": t.by}),
                )?;
                println!(
                    "termination notice of {} by {} stored",
                    t.agreement_id, t.by
                );
                return Ok(ExitCode::SUCCESS);
            }
            if !is_party(&ctx, &s) {
                return Ok(reject(&"this node is not a party to the agreement"));
            }
            let a = accept!(ctx.trust.put_agreement(&s, now));
            let status = ctx.trust.evaluate(&a.id, Some(a.version), now)?;
            record(
                &ctx,
                anyam_audit::Kind::Agreement,
                "agreement import",
                format!("agreement/{}/{}", a.id, a.version),
                others(&ctx, &a),
                json!({"command": "agreement import", "digest": s.digest(),
                       "status": status_text(&status)}),
            )?;
            println!(
                "{} version {} stored: {}",
                a.id,
                a.version,
                status_text(&status)
            );
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::Verify {
            data,
            target,
            version,
            json,
        } => {
            let ctx = open(&data)?;
            let now = Timestamp::now();
            let status = if Path::new(&target).exists() {
                let s = accept!(Signed::from_json(&read_input(Path::new(&target))?));
                let mut versions = ctx.trust.agreements()?;
                versions.push(s.clone());
                anyam_trust::in_force(
                    &s,
                    &ctx.trust.keyrings()?,
                    now,
                    &ctx.trust.terminations()?,
                    &versions,
                )
            } else {
                ctx.trust.evaluate(&target, version, now)?
            };
            if json {
                write_output(None, &pretty(&status_json(&status)))?;
            } else {
                println!("{}", status_text(&status));
            }
            Ok(if status.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_REJECTED)
            })
        }
        AgreementCmd::List {
            data,
            in_force,
            json,
        } => {
            let ctx = open(&data)?;
            let all = ctx.trust.evaluate_all(Timestamp::now())?;
            let mut rows = Vec::new();
            for (s, status) in &all {
                if in_force && status.is_err() {
                    continue;
                }
                let Ok(a) = s.parse::<Agreement>() else {
                    continue;
                };
                rows.push((a, status));
            }
            if json {
                let v: Vec<Value> = rows
                    .iter()
                    .map(|(a, st)| {
                        json!({
                            "id": a.id,
                            "version": a.version,
                            "title": a.title,
                            "parties": a.parties.iter().map(|p| json!({"node_id": p.node_id, "node_name": p.node_name})).collect::<Vec<_>>(),
                            "status": status_json(st),
                        })
                    })
                    .collect();
                write_output(None, &pretty(&v))?;
            } else {
                for (a, st) in &rows {
                    let names: Vec<&str> = a.parties.iter().map(|p| p.node_name.as_str()).collect();
                    println!(
                        "{} v{}  {}  [{}]  {}",
                        a.id,
                        a.version,
                        a.title,
                        names.join(", "),
                        status_text(st)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::Amend {
            data,
            id,
            terms,
            out,
        } => {
            let mut ctx = open(&data)?;
            let prev = ctx.trust.agreement(&id, None)?;
            let pa: Agreement = prev.parse()?;
            let partner_ids: Vec<String> = if terms.parties.is_empty() {
                pa.party_ids().map(str::to_string).collect()
            } else {
                terms.parties.clone()
            };
            let t = terms.apply(pa.terms()?)?;
            let now = Timestamp::now();
            let a = accept!(Agreement::amend(
                &prev,
                parties(&ctx, &partner_ids)?,
                t,
                now
            ));
            let s = Signed::new(&a)?;
            accept!(ctx.trust.put_agreement(&s, now));
            record(
                &ctx,
                anyam_audit::Kind::Agreement,
                "agreement amend",
                format!("agreement/{}/{}", a.id, a.version),
                others(&ctx, &a),
                json!({"command": "agreement amend", "digest": s.digest()}),
            )?;
            write_output(out.as_deref(), &pretty(&s))?;
            eprintln!(
                "drafted {} version {}; every party signs it again (`anyam agreement sign {}`)",
                a.id, a.version, a.id
            );
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::Terminate {
            data,
            id,
            reason,
            out,
        } => {
            let (mut ctx, a, key) = notice_context(&data, &id)?;
            let now = Timestamp::now();
            let notice = accept!(Termination::sign(&a, &ctx.node_id, &key, now, reason));
            accept!(ctx.trust.put_termination(&notice, now));
            let n = issue_notice(
                &ctx,
                &a,
                "terminate",
                "termination",
                &notice,
                json!({}),
                out.as_deref(),
            )?;
            let effective = now.checked_add(a.notice_period()).unwrap_or(now);
            eprintln!(
                "notice given: {} ends {} (after {} days' notice); queued for {n} partner nodes",
                a.id,
                anyam_trust::format_time(effective),
                a.notice_period_days
            );
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::Remove {
            data,
            id,
            party,
            reason,
            out,
        } => {
            let (mut ctx, a, key) = notice_context(&data, &id)?;
            let now = Timestamp::now();
            let removal = accept!(anyam_trust::Removal::sign(
                &a,
                &ctx.node_id,
                &party,
                &key,
                now,
                reason
            ));
            accept!(ctx.trust.put_removal(&removal, now));
            let n = issue_notice(
                &ctx,
                &a,
                "remove",
                "removal",
                &removal,
                json!({"removed": party}),
                out.as_deref(),
            )?;
            eprintln!(
                "{party} removed from {} version {}; queued for {n} partner nodes",
                a.id, a.version
            );
            Ok(ExitCode::SUCCESS)
        }
        AgreementCmd::InForce { data } => {
            let ctx = open(&data)?;
            let v = ctx.trust.in_force_view(Timestamp::now())?;
            write_output(None, &pretty(&v))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
