//! The `anyam` command: run a node and administer it.
//!
//! Exit codes: 0 success; 1 failure; 2 bad usage; 3 the command ran but
//! rejected some input (for example `import` with invalid objects).

mod admin;
mod audit;
mod config;
mod detect;
mod federation;
mod identity;
mod input;
mod node;
mod serve;
mod sightings;
mod transfer;
mod trust;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit code for "ran, but rejected part of the input".
pub const EXIT_REJECTED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "anyam",
    version,
    about = "Anyam: federated sharing of cyber threat intelligence (STIX 2.1 / TAXII 2.1)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the node keeps its data.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// The node's data directory (database, keys, configuration).
    #[arg(long, env = "ANYAM_DATA_DIR", default_value = "anyam-data")]
    pub data_dir: PathBuf,
    /// Configuration file [default: <data-dir>/anyam.toml].
    #[arg(long, env = "ANYAM_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node: the TAXII 2.1 server. Creates the node on first start.
    Serve(serve::ServeArgs),
    /// Import STIX objects (a bundle, a TAXII envelope, a JSON array or JSON
    /// lines) from a file or standard input into a collection.
    Import(transfer::ImportArgs),
    /// Export objects of a collection as a STIX bundle.
    Export(transfer::ExportArgs),
    /// Write a consistent copy of the database while the node keeps serving.
    Backup(admin::BackupArgs),
    /// Manage users.
    #[command(subcommand)]
    User(admin::UserCmd),
    /// Manage organizations.
    #[command(subcommand, name = "org")]
    Org(admin::OrgCmd),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(admin::TokenCmd),
    /// Manage API roots.
    #[command(subcommand, name = "api-root")]
    ApiRoot(admin::ApiRootCmd),
    /// Manage collections.
    #[command(subcommand)]
    Collection(admin::CollectionCmd),
    /// Manage organizations' read/write grants on collections.
    #[command(subcommand)]
    Grant(admin::GrantCmd),
    /// Data markings: the ones recognized by id, and what the operator
    /// accepted others as.
    #[command(subcommand)]
    Marking(admin::MarkingCmd),
    /// Match sensor events (Zeek, Suricata EVE, STIX) against every
    /// indicator and write alerts as JSON lines.
    Detect(detect::DetectArgs),
    /// The tamper-evident audit log: verify, sign a head, export for a partner.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Federation with partner nodes: sync state.
    #[command(subcommand)]
    Sync(federation::SyncCmd),
    /// STIX patterning: validate, match and check patterns.
    #[command(subcommand)]
    Pattern(transfer::PatternCmd),
    /// The node's keys: show, rotate, revoke after a compromise.
    #[command(subcommand)]
    Key(trust::KeyCmd),
    /// The node's signed descriptor, for partners.
    #[command(subcommand)]
    Descriptor(trust::DescriptorCmd),
    /// Partner nodes: import their descriptors, list, show.
    #[command(subcommand)]
    Partner(trust::PartnerCmd),
    /// Sharing agreements: draft, sign, countersign, verify, amend, terminate.
    #[command(subcommand)]
    Agreement(trust::AgreementCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Import(a) => transfer::import(a),
        Command::Export(a) => transfer::export(a),
        Command::Backup(a) => admin::backup(a),
        Command::User(c) => admin::user(c),
        Command::Org(c) => admin::org(c),
        Command::Token(c) => admin::token(c),
        Command::ApiRoot(c) => admin::api_root(c),
        Command::Collection(c) => admin::collection(c),
        Command::Grant(c) => admin::grant(c),
        Command::Marking(c) => admin::marking(c),
        Command::Pattern(c) => transfer::pattern(c),
        Command::Sync(c) => federation::run(c),
        Command::Detect(a) => detect::run(a),
        Command::Key(c) => trust::key(c),
        Command::Descriptor(c) => trust::descriptor(c),
        Command::Partner(c) => trust::partner(c),
        Command::Agreement(c) => trust::agreement(c),
        Command::Audit(c) => audit::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("anyam: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
