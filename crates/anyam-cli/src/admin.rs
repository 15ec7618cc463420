//! Administration commands: users, organizations, tokens, API roots,
//! collections, grants and backups. They work on the data directory
//! directly, also while the node is serving; changes take effect at once.
//! Every change is recorded as an `admin` entry of the audit log, by the
//! local operator (see [`audit::operator`]), before the command reports
//! success.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyam_audit::{Event, Kind};
use anyam_store::{Access, ApiRoot, Collection, Grant, Organization, Token, TokenScope, User};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::node::{self, Node};
use crate::{DataArgs, audit};

fn open(d: &DataArgs) -> Result<Node> {
    node::open_existing(&d.data_dir, d.config.as_deref())
}

/// Record a change `anyam <command>` made in the node's audit log: the
/// resource changed (`path`), the organizations concerned (`parties`) and
/// what was set (`details`, never a password or token secret).
fn audited(
    n: &Node,
    command: &str,
    path: String,
    parties: Vec<String>,
    details: serde_json::Value,
    build: impl FnOnce(&mut Event),
) -> Result<()> {
    audit::record_operator_event(&n.dir, &n.config, Kind::Admin, |e| {
        e.what.path = Some(path);
        e.parties = parties;
        e.why = format!("operator command `anyam {command}`");
        let mut d = json!({ "command": command });
        if let (Some(d), serde_json::Value::Object(more)) = (d.as_object_mut(), details) {
            d.extend(more);
        }
        e.details = d;
        build(e);
    })?;
    Ok(())
}

/// The organization of user `name`, for the parties of an entry.
fn org_of(n: &Node, name: &str) -> Result<Vec<String>> {
    Ok(n.store.user(name)?.map(|u| vec![u.org]).unwrap_or_default())
}

/// Where a new password comes from; never a prompt, so every command is
/// scriptable.
#[derive(Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "password_env")]
    password_stdin: bool,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
}

impl PasswordArgs {
    /// The chosen password, or `None` to generate one.
    fn read(&self) -> Result<Option<String>> {
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let p = line.trim_end_matches(['\r', '\n']).to_string();
            if p.is_empty() {
                bail!("the password read from standard input is empty");
            }
            return Ok(Some(p));
        }
        if let Some(var) = &self.password_env {
            let p = std::env::var(var)
                .with_context(|| format!("environment variable {var} is not set"))?;
            if p.is_empty() {
                bail!("environment variable {var} is empty");
            }
            return Ok(Some(p));
        }
        Ok(None)
    }
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user; prints a generated password unless one is given.
    Add {
        name: String,
        /// The user's organization.
        #[arg(long)]
        org: String,
        /// Make the user a node administrator.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Set a user's password (takes effect at once, also on a running node).
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Disable a user: every login and token of the user stops working.
    Disable {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Enable a disabled user.
    Enable {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List users.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

pub fn user(cmd: UserCmd) -> Result<ExitCode> {
    match cmd {
        UserCmd::Add {
            name,
            org,
            admin,
            password,
            data,
        } => {
            let n = open(&data)?;
            if !n.store.orgs()?.iter().any(|o| o.name == org) {
                bail!("no organization named `{org}`; create it with `anyam org add {org}`");
            }
            if n.store.user(&name)?.is_some() {
                bail!("a user named `{name}` exists already");
            }
            validate_name("user name", &name)?;
            let given = password.read()?;
            let generated = given.is_none();
            let pw = given.unwrap_or_else(node::random_password);
            let phc = anyam_taxii::auth::hash_password(&pw).map_err(anyhow::Error::msg)?;
            n.store.create_user(&User {
                name: name.clone(),
                org: org.clone(),
                password_phc: Some(phc),
                is_admin: admin,
                generation: 0,
                disabled: false,
            })?;
            audited(
                &n,
                "user add",
                format!("user/{name}"),
                vec![org.clone()],
                json!({ "user": name, "org": org, "admin": admin }),
                |_| {},
            )?;
            println!("created user {name}");
            if generated {
                println!("password: {pw}");
            }
        }
        UserCmd::Passwd {
            name,
            password,
            data,
        } => {
            let n = open(&data)?;
            if n.store.user(&name)?.is_none() {
                bail!("no user named `{name}`");
            }
            let given = password.read()?;
            let generated = given.is_none();
            let pw = given.unwrap_or_else(node::random_password);
            let phc = anyam_taxii::auth::hash_password(&pw).map_err(anyhow::Error::msg)?;
            n.store.set_password(&name, &phc)?;
            audited(
                &n,
                "user passwd",
                format!("user/{name}"),
                org_of(&n, &name)?,
                json!({ "user": name }),
                |_| {},
            )?;
            println!("password of {name} changed");
            if generated {
                println!("password: {pw}");
            }
        }
        UserCmd::Disable { name, data } => {
            let n = open(&data)?;
            n.store.set_user_disabled(&name, true)?;
            audited(
                &n,
                "user disable",
                format!("user/{name}"),
                org_of(&n, &name)?,
                json!({ "user": name }),
                |_| {},
            )?;
            println!("disabled user {name}");
        }
        UserCmd::Enable { name, data } => {
            let n = open(&data)?;
            n.store.set_user_disabled(&name, false)?;
            audited(
                &n,
                "user enable",
                format!("user/{name}"),
                org_of(&n, &name)?,
                json!({ "user": name }),
                |_| {},
            )?;
            println!("enabled user {name}");
        }
        UserCmd::List { data } => {
            for u in open(&data)?.store.users()? {
                let mut flags = Vec::new();
                if u.is_admin {
                    flags.push("admin");
                }
                if u.disabled {
                    flags.push("disabled");
                }
                println!("{}\t{}\t{}", u.name, u.org, flags.join(","));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Names of users, organizations and API roots appear in URLs and logs:
/// keep them to a safe alphabet.
fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("{what} `{name}` must be 1 to 64 characters of letters, digits, `-`, `_` or `.`");
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum OrgCmd {
    /// Create an organization served by this node (a constituent: in TLP
    /// terms, a client of the host organization).
    Add {
        name: String,
        /// Human-readable name [default: the name].
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List organizations.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

pub fn org(cmd: OrgCmd) -> Result<ExitCode> {
    match cmd {
        OrgCmd::Add { name, title, data } => {
            validate_name("organization name", &name)?;
            let n = open(&data)?;
            let title = title.unwrap_or_else(|| name.clone());
            n.store.create_org(&Organization {
                title: title.clone(),
                name: name.clone(),
            })?;
            audited(
                &n,
                "org add",
                format!("org/{name}"),
                vec![name.clone()],
                json!({ "org": name, "title": title }),
                |_| {},
            )?;
            println!("created organization {name}");
        }
        OrgCmd::List { data } => {
            for o in open(&data)?.store.orgs()? {
                let role = if o.name == node::HOST_ORG {
                    "host"
                } else {
                    "constituent"
                };
                println!("{}\t{}\t{}", o.name, role, o.title);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum MarkingCmd {
    /// Say what a marking definition this node does not recognize means.
    /// Until then every object carrying it is released to no one.
    Accept {
        /// The marking definition's id (`marking-definition--<uuid>`).
        id: String,
        /// `statement` (carried, restricts nothing), `tlp:<level>` (clear,
        /// green, amber, amber+strict, red) or `pap:<level>` (clear, green,
        /// amber, red).
        #[arg(long = "as", value_name = "MEANING")]
        meaning: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Forget what a marking was accepted as (objects carrying it are then
    /// released to no one again).
    Remove {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// The markings recognized by id (built in) and accepted by the operator.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
}

fn parse_meaning(s: &str) -> Result<anyam_policy::Accepted> {
    use anyam_policy::Accepted;
    use anyam_trust::{Pap, Tlp};
    let lower = s.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "statement" => Accepted::Statement,
        "tlp:clear" | "tlp:white" => Accepted::Tlp(Tlp::Clear),
        "tlp:green" => Accepted::Tlp(Tlp::Green),
        "tlp:amber" => Accepted::Tlp(Tlp::Amber),
        "tlp:amber+strict" => Accepted::Tlp(Tlp::AmberStrict),
        "tlp:red" => Accepted::Tlp(Tlp::Red),
        "pap:clear" | "pap:white" => Accepted::Pap(Pap::Clear),
        "pap:green" => Accepted::Pap(Pap::Green),
        "pap:amber" => Accepted::Pap(Pap::Amber),
        "pap:red" => Accepted::Pap(Pap::Red),
        _ => bail!(
            "--as {s:?}: expected statement, tlp:clear|green|amber|amber+strict|red or pap:clear|green|amber|red"
        ),
    })
}

fn meaning_name(a: &anyam_policy::Accepted) -> String {
    match a {
        anyam_policy::Accepted::Statement => "statement".into(),
        anyam_policy::Accepted::Tlp(t) => format!("tlp:{}", tlp_name(*t)),
        anyam_policy::Accepted::Pap(p) => format!("pap:{}", format!("{p:?}").to_lowercase()),
    }
}

fn tlp_name(t: anyam_trust::Tlp) -> &'static str {
    match t {
        anyam_trust::Tlp::Clear => "clear",
        anyam_trust::Tlp::Green => "green",
        anyam_trust::Tlp::Amber => "amber",
        anyam_trust::Tlp::AmberStrict => "amber+strict",
        anyam_trust::Tlp::Red => "red",
    }
}

fn save_accepted(
    n: &Node,
    accepted: &std::collections::BTreeMap<String, anyam_policy::Accepted>,
) -> Result<()> {
    n.store.set_meta(
        anyam_policy::ACCEPTED_MARKINGS_KEY,
        &serde_json::to_string(accepted)?,
    )?;
    Ok(())
}

pub fn marking(cmd: MarkingCmd) -> Result<ExitCode> {
    match cmd {
        MarkingCmd::Accept { id, meaning, data } => {
            let meaning = parse_meaning(&meaning)?;
            let uuid = id.strip_prefix("marking-definition--").unwrap_or("");
            if uuid::Uuid::parse_str(uuid).is_err() {
                bail!("{id:?} is not a marking definition id (marking-definition--<uuid>)");
            }
            if let Some(k) = anyam_policy::marking::known(&id) {
                bail!("{id} is recognized by id already ({k:?}); it cannot be redefined");
            }
            let n = open(&data)?;
            let mut accepted = anyam_policy::accepted_markings(n.store.as_ref())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            accepted.insert(id.clone(), meaning);
            save_accepted(&n, &accepted)?;
            audited(
                &n,
                "marking accept",
                format!("marking/{id}"),
                vec![],
                json!({ "marking": id, "as": meaning_name(&meaning) }),
                |_| {},
            )?;
            println!("accepted {id} as {}", meaning_name(&meaning));
        }
        MarkingCmd::Remove { id, data } => {
            let n = open(&data)?;
            let mut accepted = anyam_policy::accepted_markings(n.store.as_ref())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if accepted.remove(&id).is_none() {
                bail!("{id} is not an accepted marking (see `anyam marking list`)");
            }
            save_accepted(&n, &accepted)?;
            audited(
                &n,
                "marking remove",
                format!("marking/{id}"),
                vec![],
                json!({ "marking": id }),
                |_| {},
            )?;
            println!("removed {id}; objects carrying it are released to no one");
        }
        MarkingCmd::List {
            json: as_json,
            data,
        } => {
            let n = open(&data)?;
            let accepted = anyam_policy::accepted_markings(n.store.as_ref())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let builtin: Vec<_> = anyam_policy::marking::known_ids()
                .map(|(id, k)| {
                    let meaning = match k {
                        anyam_policy::marking::Known::Tlp(t) => format!("tlp:{}", tlp_name(t)),
                        anyam_policy::marking::Known::Pap(p) => {
                            format!("pap:{}", format!("{p:?}").to_lowercase())
                        }
                    };
                    json!({ "id": id, "as": meaning })
                })
                .collect();
            let acc: Vec<_> = accepted
                .iter()
                .map(|(id, a)| json!({ "id": id, "as": meaning_name(a) }))
                .collect();
            if as_json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "builtin": builtin, "accepted": acc }))?
                );
            } else {
                for (title, list) in [("built in", &builtin), ("accepted", &acc)] {
                    println!("{title}:");
                    for m in list {
                        println!(
                            "  {}\t{}",
                            m["id"].as_str().unwrap_or(""),
                            m["as"].as_str().unwrap_or("")
                        );
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    /// The user's full rights.
    Full,
    /// Reading only.
    Read,
    /// Writing only (sensors, partners pushing data).
    Write,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create an API token for a user; prints the secret once.
    Create {
        user: String,
        #[arg(long, default_value = "")]
        label: String,
        /// Days until the token expires [default: never].
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[arg(long, value_enum, default_value = "full")]
        scope: ScopeArg,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a token (takes effect at once).
    Revoke {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

pub fn token(cmd: TokenCmd) -> Result<ExitCode> {
    match cmd {
        TokenCmd::Create {
            user,
            label,
            expires_in_days,
            scope,
            data,
        } => {
            let n = open(&data)?;
            if n.store.user(&user)?.is_none() {
                bail!("no user named `{user}`");
            }
            let (secret, sha256) = anyam_taxii::auth::new_token();
            let now = jiff::Timestamp::now().as_microsecond();
            let t = Token {
                id: uuid::Uuid::new_v4().to_string(),
                user: user.clone(),
                sha256,
                label,
                created: now,
                expires: expires_in_days.map(|d| now + i64::from(d) * 86_400_000_000),
                scope: match scope {
                    ScopeArg::Full => TokenScope::Full,
                    ScopeArg::Read => TokenScope::ReadOnly,
                    ScopeArg::Write => TokenScope::WriteOnly,
                },
                revoked: false,
            };
            n.store.create_token(&t)?;
            audited(
                &n,
                "token create",
                format!("token/{}", t.id),
                org_of(&n, &user)?,
                json!({
                    "token": t.id,
                    "user": user,
                    "label": t.label,
                    "scope": scope_name(t.scope),
                    "expires": t.expires.map(anyam_taxii::params::fmt_micros),
                }),
                |_| {},
            )?;
            println!("token id: {}", t.id);
            println!("secret:   {secret}");
            println!("(shown once; send it as `Authorization: Bearer <secret>`)");
        }
        TokenCmd::List { user, data } => {
            for t in open(&data)?.store.tokens(user.as_deref())? {
                let expires = t
                    .expires
                    .map_or_else(|| "never".to_string(), anyam_taxii::params::fmt_micros);
                let scope = scope_name(t.scope);
                let state = if t.revoked { "revoked" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{}\texpires {}\t{}",
                    t.id, t.user, scope, state, expires, t.label
                );
            }
        }
        TokenCmd::Revoke { id, data } => {
            let n = open(&data)?;
            n.store.revoke_token(&id)?;
            let user = n
                .store
                .tokens(None)?
                .into_iter()
                .find(|t| t.id == id)
                .map(|t| t.user);
            let parties = match &user {
                Some(u) => org_of(&n, u)?,
                None => Vec::new(),
            };
            audited(
                &n,
                "token revoke",
                format!("token/{id}"),
                parties,
                json!({ "token": id, "user": user }),
                |_| {},
            )?;
            println!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn scope_name(s: TokenScope) -> &'static str {
    match s {
        TokenScope::Full => "full",
        TokenScope::ReadOnly => "read",
        TokenScope::WriteOnly => "write",
    }
}

#[derive(Subcommand)]
pub enum ApiRootCmd {
    /// Create an API root, served at /<name>/.
    Add {
        name: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Largest request body, in bytes.
        #[arg(long, default_value_t = node::DEFAULT_MAX_CONTENT)]
        max_content_length: u64,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List API roots.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

pub fn api_root(cmd: ApiRootCmd) -> Result<ExitCode> {
    match cmd {
        ApiRootCmd::Add {
            name,
            title,
            description,
            max_content_length,
            data,
        } => {
            validate_name("API root name", &name)?;
            if anyam_taxii::RESERVED_ROOT_NAMES.contains(&name.as_str()) {
                bail!("`{name}` is a reserved path of the server; choose another API root name");
            }
            if max_content_length == 0 {
                bail!("--max-content-length must be positive");
            }
            let n = open(&data)?;
            let title = title.unwrap_or_else(|| name.clone());
            n.store.create_api_root(&ApiRoot {
                title: title.clone(),
                name: name.clone(),
                description,
                max_content_length,
            })?;
            audited(
                &n,
                "api-root add",
                format!("api-root/{name}"),
                Vec::new(),
                // A string: audit details are canonicalized as doubles.
                json!({ "api_root": name, "title": title, "max_content_length": max_content_length.to_string() }),
                |_| {},
            )?;
            println!("created API root /{name}/");
        }
        ApiRootCmd::List { data } => {
            for r in open(&data)?.store.api_roots()? {
                println!(
                    "{}\t{}\tmax_content_length={}",
                    r.name, r.title, r.max_content_length
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum CollectionCmd {
    /// Create a collection; prints its id.
    Add {
        title: String,
        #[arg(long, default_value = node::DEFAULT_API_ROOT)]
        api_root: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        alias: Option<String>,
        /// Use this UUID as the id [default: a random one].
        #[arg(long)]
        id: Option<uuid::Uuid>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List collections of an API root.
    List {
        #[arg(long, default_value = node::DEFAULT_API_ROOT)]
        api_root: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

pub fn collection(cmd: CollectionCmd) -> Result<ExitCode> {
    match cmd {
        CollectionCmd::Add {
            title,
            api_root,
            description,
            alias,
            id,
            data,
        } => {
            let n = open(&data)?;
            if n.store.api_root(&api_root)?.is_none() {
                bail!("no API root named `{api_root}`");
            }
            let c = Collection {
                id: id.unwrap_or_else(uuid::Uuid::new_v4).to_string(),
                api_root,
                title,
                description,
                alias,
            };
            n.store.create_collection(&c)?;
            audited(
                &n,
                "collection add",
                format!("collection/{}", c.id),
                Vec::new(),
                json!({ "api_root": c.api_root, "title": c.title, "alias": c.alias }),
                |e| e.what.collection = Some(c.id.clone()),
            )?;
            println!("{}", c.id);
        }
        CollectionCmd::List { api_root, data } => {
            let n = open(&data)?;
            for c in n.store.collections(&api_root)? {
                let count = n.store.count_objects(&c.id)?;
                println!("{}\t{}\t{} object versions", c.id, c.title, count);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum GrantCmd {
    /// Give an organization read and/or write on a collection; with neither
    /// flag, remove its grant.
    Set {
        org: String,
        /// Collection id.
        collection: String,
        #[arg(long)]
        read: bool,
        #[arg(long)]
        write: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List grants.
    List {
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
}

pub fn grant(cmd: GrantCmd) -> Result<ExitCode> {
    match cmd {
        GrantCmd::Set {
            org,
            collection,
            read,
            write,
            data,
        } => {
            let n = open(&data)?;
            if !n.store.orgs()?.iter().any(|o| o.name == org) {
                bail!("no organization named `{org}`");
            }
            let exists = n.store.api_roots()?.iter().try_fold(false, |found, r| {
                Ok::<bool, anyam_store::StoreError>(
                    found || n.store.collection(&r.name, &collection)?.is_some(),
                )
            })?;
            if !exists {
                bail!("no collection with id `{collection}`");
            }
            n.store.set_grant(&Grant {
                org: org.clone(),
                collection: collection.clone(),
                access: Access { read, write },
            })?;
            audited(
                &n,
                "grant set",
                format!("grant/{org}/{collection}"),
                vec![org.clone()],
                json!({ "org": org, "read": read, "write": write }),
                |e| e.what.collection = Some(collection.clone()),
            )?;
            println!("{org} on {collection}: read={read} write={write}");
        }
        GrantCmd::List { org, data } => {
            for g in open(&data)?.store.grants(org.as_deref())? {
                println!(
                    "{}\t{}\tread={}\twrite={}",
                    g.org, g.collection, g.access.read, g.access.write
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct BackupArgs {
    /// Where to write the copy of the object database (a new SQLite
    /// file). The trust database, the federation database and the audit
    /// log are copied beside it, as STEM.trust.db, STEM.federation.db and
    /// STEM.audit.db (STEM: DEST without its extension). Private keys are not copied: keep the recovery key
    /// offline, and back up keys/ separately if you must.
    dest: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

/// `DEST` with its extension replaced by `.{what}.db`.
fn beside(dest: &std::path::Path, what: &str) -> PathBuf {
    let stem = dest
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    dest.with_file_name(format!("{stem}.{what}.db"))
}

pub fn backup(a: BackupArgs) -> Result<ExitCode> {
    let trust_dest = beside(&a.dest, "trust");
    let audit_dest = beside(&a.dest, "audit");
    let federation_dest = beside(&a.dest, "federation");
    for p in [&a.dest, &trust_dest, &audit_dest, &federation_dest] {
        if p.exists() {
            bail!("{} exists already; choose a new file", p.display());
        }
    }
    let n = open(&a.data)?;
    n.store
        .backup(&a.dest)
        .with_context(|| format!("backing up to {}", a.dest.display()))?;
    println!("backed up the object database to {}", a.dest.display());
    if n.dir.join("trust.db").exists() {
        crate::identity::open_trust(&n.dir)?
            .backup_to(&trust_dest)
            .with_context(|| {
                format!("backing up the trust database to {}", trust_dest.display())
            })?;
        println!("backed up the trust database to {}", trust_dest.display());
    }
    // After the object store (see `FederationDb::backup_to`).
    let federation_path = n.dir.join(crate::federation::FEDERATION_DB);
    if federation_path.exists() {
        anyam_federation::state::FederationDb::open(&federation_path)?
            .backup_to(&federation_dest)
            .with_context(|| {
                format!(
                    "backing up the federation database to {}",
                    federation_dest.display()
                )
            })?;
        println!(
            "backed up the federation database to {}",
            federation_dest.display()
        );
    }
    let audit_path = n.dir.join(audit::AUDIT_FILE);
    if audit_path.exists() {
        let log = anyam_audit::AuditLog::open(
            &audit_path,
            anyam_audit::AuditOptions {
                read_only: true,
                ..anyam_audit::AuditOptions::default()
            },
        )?;
        log.backup_to(&audit_dest)
            .with_context(|| format!("backing up the audit log to {}", audit_dest.display()))?;
        println!("backed up the audit log to {}", audit_dest.display());
    }
    Ok(ExitCode::SUCCESS)
}
