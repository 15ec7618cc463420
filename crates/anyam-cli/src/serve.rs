//! `anyam serve`: start (and on first start, create) a node.
//!
//! Besides the TAXII server it runs the audit log's upkeep: every release,
//! receipt and denial goes to `audit.db` through an
//! [`Auditor`](anyam_taxii::audit::Auditor), a tree head is signed every
//! `audit.head_interval_secs` when entries were added, and one more at
//! graceful shutdown, after the last entries are committed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyam_audit::AuditLog;
use anyam_taxii::audit::{Auditor, HeadSigner};
use anyam_taxii::server::{Transport, generate_self_signed};
use anyam_taxii::{ApiSettings, AppState};
use anyhow::{Context, Result};
use clap::Args;

use crate::DataArgs;
use crate::config::{FileConfig, LogFormat};
use crate::{audit, federation, identity, node};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Address to listen on [config: listen; default 127.0.0.1:8443].
    #[arg(long, env = "ANYAM_LISTEN")]
    listen: Option<SocketAddr>,
    /// Serve plain HTTP (loopback and tests only; TAXII requires HTTPS) [config: plain_http].
    #[arg(long, env = "ANYAM_PLAIN_HTTP", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    plain_http: Option<bool>,
    /// TLS certificate chain (PEM) [config: tls.cert].
    #[arg(long, env = "ANYAM_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) [config: tls.key].
    #[arg(long, env = "ANYAM_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Log format [config: log_format].
    #[arg(long, env = "ANYAM_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `debug` [config: log_level].
    #[arg(long, env = "ANYAM_LOG")]
    log_level: Option<String>,
    /// Base URL clients reach the node at, for discovery links [config: public_url].
    #[arg(long, env = "ANYAM_PUBLIC_URL")]
    public_url: Option<String>,
    /// Seconds between signed tree heads of the audit log [config:
    /// audit.head_interval_secs; default 300].
    #[arg(long, env = "ANYAM_AUDIT_HEAD_INTERVAL_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    audit_head_interval_secs: Option<u64>,
    /// Address of the partner listener (mutual TLS, partner nodes only);
    /// unset: no federation [config: federation.listen].
    #[arg(long, env = "ANYAM_FEDERATION_LISTEN")]
    federation_listen: Option<SocketAddr>,
    /// Password of the `admin` user created on first start (instead of a
    /// generated one, so that setup can be scripted). Ignored afterwards.
    #[arg(long, env = "ANYAM_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

fn init_logging(format: LogFormat, filter: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("log filter `{filter}`"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let (node, created) = node::open_or_init(
        &a.data.data_dir,
        a.data.config.as_deref(),
        a.admin_password.clone(),
    )?;
    let mut cfg: FileConfig = node.config.clone();
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(p) = a.plain_http {
        cfg.plain_http = p;
    }
    if let Some(c) = a.tls_cert {
        cfg.tls.cert = c;
    }
    if let Some(k) = a.tls_key {
        cfg.tls.key = k;
    }
    if let Some(f) = a.log_format {
        cfg.log_format = f;
    }
    if let Some(l) = a.log_level {
        cfg.log_level = l;
    }
    if let Some(u) = a.public_url {
        cfg.public_url = Some(u);
    }
    if let Some(l) = a.federation_listen {
        cfg.federation.listen = Some(l);
    }
    if let Some(s) = a.audit_head_interval_secs {
        cfg.audit.head_interval_secs = s;
    }
    init_logging(cfg.log_format, &cfg.log_level)?;

    let cert = FileConfig::resolve(&node.dir, &cfg.tls.cert);
    let key = FileConfig::resolve(&node.dir, &cfg.tls.key);
    if !cfg.plain_http && !cert.exists() && !key.exists() {
        if let Some(parent) = cert.parent() {
            node::create_private_dir(parent)?;
        }
        let mut names = vec!["localhost".to_string(), cfg.listen.ip().to_string()];
        names.dedup();
        generate_self_signed(&cert, &key, names)
            .context("generating a self-signed TLS certificate")?;
        tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    }

    let scheme = if cfg.plain_http { "http" } else { "https" };
    if let Some(c) = &created {
        println!("Anyam node created in {}", node.dir.display());
        match (&c.admin_password, c.password_from_env) {
            (Some(_), true) => {
                println!("  admin user:     admin (password from ANYAM_ADMIN_PASSWORD)")
            }
            (Some(p), false) => {
                println!("  admin user:     admin");
                println!("  admin password: {p}");
                println!("  (shown once; change it with `anyam user passwd admin`)");
            }
            (None, _) => println!("  admin user:     admin (already existed)"),
        }
        println!("  API root:       /{}/", node::DEFAULT_API_ROOT);
        println!("  collection:     default ({})", c.collection_id);
    }

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let default_root = node.store.meta("default_api_root")?;
    let settings = ApiSettings {
        title: cfg.node_name.clone(),
        description: cfg.api.description.clone(),
        contact: cfg.api.contact.clone(),
        default_api_root: default_root,
        default_limit: cfg.api.default_limit.max(1),
        max_limit: cfg.api.max_limit.max(1),
        public_url: cfg.public_url.clone(),
        tls: !cfg.plain_http,
    };
    let auditor = open_auditor(&node.dir, &cfg)?;
    let head_interval = Duration::from_secs(cfg.audit.head_interval_secs.max(1));
    let gate = node.gate()?;
    // Bumped after every write, so partner live streams send at once.
    let (changes_tx, changes_rx) = tokio::sync::watch::channel(0u64);
    let bump: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        changes_tx.send_modify(|n| *n = n.wrapping_add(1));
    });
    let mut state = AppState::new(node.store.clone(), gate, settings, metrics)
        .with_audit(auditor.clone())
        .with_write_hook(bump.clone());
    if cfg.federation.listen.is_some() {
        state = state
            .with_delete_hook(federation::delete_hook(&node)?)
            .with_sighting_hook(federation::sighting_hook(&node)?);
    }
    let app = anyam_taxii::app(state);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let heads = runtime.spawn(sign_heads_periodically(auditor.clone(), head_interval));
    let federation = match cfg.federation.listen {
        Some(listen) => Some(runtime.block_on(federation::start(
            &node,
            &cfg,
            listen,
            auditor.clone(),
            changes_rx,
            bump,
        ))?),
        None => None,
    };
    runtime.block_on(async move {
        let transport = if cfg.plain_http {
            Transport::Plain
        } else {
            Transport::Tls {
                cert: &cert,
                key: &key,
            }
        };
        anyam_taxii::server::serve(app, cfg.listen, transport, shutdown_signal(), |addr| {
            println!("anyam: listening on {scheme}://{addr}/taxii2/");
            tracing::info!(%addr, scheme, "listening");
        })
        .await
    })?;
    heads.abort();
    if let Some(f) = federation {
        let _ = f.stop.send(true);
        runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(10), f.server).await;
            f.sync.abort();
        });
    }
    drop(runtime);
    // Every request has been answered: commit what they recorded and sign
    // a head over it, so the log ends on a signature.
    auditor.flush_auth_denials(true);
    if let Err(e) = auditor.flush() {
        tracing::error!(error = %e, "audit entries were lost before shutdown");
    }
    match auditor.sign_head() {
        Ok(h) => tracing::info!(tree_size = h.head.tree_size, "signed the audit tree head"),
        Err(e) => tracing::error!(error = %e, "signing the audit tree head at shutdown failed"),
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The audit log and its auditor. Heads are signed with the node key as it
/// is at signing time, read through the identity module each time, so a
/// key rotated while the node serves signs the next head.
fn open_auditor(dir: &Path, cfg: &FileConfig) -> Result<Arc<Auditor>> {
    let log = audit::open_for_append(dir, cfg)?;
    let key_dir = dir.to_path_buf();
    let signer: HeadSigner = Arc::new(move |log: &AuditLog| {
        let key = identity::load_signing_key(&key_dir).map_err(|e| format!("{e:#}"))?;
        log.sign_head(&key, jiff::Timestamp::now())
            .map_err(|e| e.to_string())
    });
    let auditor = Auditor::new(Arc::new(log), Some(signer)).context("starting the audit writer")?;
    Ok(Arc::new(auditor))
}

/// Sign a head whenever one is due: entries were added since the latest
/// head and it is `interval` old. Checking every tenth of the interval
/// (between 1 and 30 seconds) keeps heads close to the interval at the
/// cost of one small read per check.
async fn sign_heads_periodically(auditor: Arc<Auditor>, interval: Duration) {
    let check = (interval / 10).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut timer = tokio::time::interval(check);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let a = auditor.clone();
        let signed = tokio::task::spawn_blocking(move || {
            // A closed window of authentication refusals goes in first.
            a.flush_auth_denials(false);
            a.sign_head_if_due(interval)
        })
        .await;
        match signed {
            Ok(Ok(Some(h))) => {
                tracing::debug!(tree_size = h.head.tree_size, "signed an audit tree head");
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "signing an audit tree head failed"),
            Err(e) => tracing::error!(error = %e, "the audit head task failed"),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
