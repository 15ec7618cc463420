//! Federation in the running node (the partner listener and the sync
//! tasks) and `anyam sync status`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyam_federation::receive::{AuditSink, Receiver, TrustSource};
use anyam_federation::server::{PartnerApi, router};
use anyam_federation::state::FederationDb;
use anyam_federation::sync::{SyncSettings, Syncer, refresh_pins};
use anyam_federation::tls::{
    KeyLoader, KeyPins, KeyringPins, LocalCertificate, NodeCertificate, server_config_following,
};
use anyam_taxii::audit::Auditor;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tokio::sync::watch;

use crate::config::FileConfig;
use crate::node::{self, Node};
use crate::{DataArgs, identity};

/// The federation database inside the data directory.
pub const FEDERATION_DB: &str = "federation.db";

/// Keyrings and agreements in force, read from the trust database. What
/// was read is reused while nothing was committed to the database (by
/// this or another process: a partner imported, an agreement signed) and
/// for at most [`TRUST_CACHE`], since whether an agreement is in force
/// also changes with time (expiry, a notice period running out).
pub struct TrustView {
    store: std::sync::Mutex<anyam_trust::TrustStore>,
    cache: std::sync::Mutex<Option<TrustCache>>,
}

/// How long an evaluation of the trust database is reused at most.
pub const TRUST_CACHE: Duration = Duration::from_millis(500);

struct TrustCache {
    data_version: i64,
    at: std::time::Instant,
    keyrings: anyam_trust::Keyrings,
    in_force: anyam_trust::AgreementsInForce,
}

impl TrustView {
    pub fn open(dir: &Path) -> Result<TrustView> {
        Ok(Self::from_store(identity::open_trust(dir)?))
    }

    pub fn from_store(store: anyam_trust::TrustStore) -> TrustView {
        TrustView {
            store: std::sync::Mutex::new(store),
            cache: std::sync::Mutex::new(None),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, anyam_trust::TrustStore>, String> {
        self.store
            .lock()
            .map_err(|_| "the trust database lock is poisoned".to_string())
    }

    /// The keyrings and the agreements in force, from the cache when it
    /// still holds.
    fn current(&self) -> Result<(anyam_trust::Keyrings, anyam_trust::AgreementsInForce), String> {
        let trust = self.lock()?;
        let version = trust.data_version().map_err(|e| e.to_string())?;
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| "the trust cache lock is poisoned")?;
        if let Some(c) = cache.as_ref()
            && c.data_version == version
            && c.at.elapsed() < TRUST_CACHE
        {
            return Ok((c.keyrings.clone(), c.in_force.clone()));
        }
        let keyrings = trust
            .keyrings()
            .map_err(|e| format!("reading keyrings: {e}"))?;
        let in_force = trust
            .in_force_view(jiff::Timestamp::now())
            .map_err(|e| format!("evaluating the agreements in force: {e}"))?;
        *cache = Some(TrustCache {
            data_version: version,
            at: std::time::Instant::now(),
            keyrings: keyrings.clone(),
            in_force: in_force.clone(),
        });
        Ok((keyrings, in_force))
    }

    /// Forget the cache (after a write through this connection).
    fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = None;
        }
    }
}

impl TrustSource for TrustView {
    fn keyrings(&self) -> Result<anyam_trust::Keyrings, String> {
        self.current().map(|(k, _)| k)
    }

    fn in_force(&self) -> Result<anyam_trust::AgreementsInForce, String> {
        self.current().map(|(_, v)| v)
    }

    fn partners(&self) -> Result<Vec<(String, String, String)>, String> {
        self.partners_list()
    }

    fn ended(&self) -> Result<Vec<anyam_federation::receive::Ended>, String> {
        use anyam_trust::NotInForce;
        let all = self
            .lock()?
            .evaluate_all(jiff::Timestamp::now())
            .map_err(|e| format!("evaluating agreements: {e}"))?;
        // Per agreement id: whether a version is in force, and the latest
        // version that ended (terminated or expired) with its terms.
        let mut by_id: std::collections::BTreeMap<
            String,
            (bool, Option<(u32, anyam_federation::receive::Ended)>),
        > = std::collections::BTreeMap::new();
        for (s, status) in &all {
            let Ok(a) = s.parse::<anyam_trust::Agreement>() else {
                continue;
            };
            let entry = by_id.entry(a.id.clone()).or_insert((false, None));
            let at = match status {
                Ok(_) => {
                    entry.0 = true;
                    continue;
                }
                Err(NotInForce::Terminated { effective, .. }) => effective,
                Err(NotInForce::Expired { valid_until }) => valid_until,
                Err(_) => continue,
            };
            let Ok(at) = at.parse::<jiff::Timestamp>() else {
                continue;
            };
            if entry.1.as_ref().is_none_or(|(v, _)| *v < a.version) {
                entry.1 = Some((
                    a.version,
                    anyam_federation::receive::Ended {
                        id: a.id.clone(),
                        retention: a.retention_after_termination,
                        at,
                    },
                ));
            }
        }
        Ok(by_id
            .into_values()
            .filter(|(live, _)| !live)
            .filter_map(|(_, e)| e.map(|(_, e)| e))
            .collect())
    }

    fn apply_notice(
        &self,
        from: &str,
        kind: &str,
        document: &anyam_trust::Signed,
    ) -> Result<String, String> {
        let r = self.apply(from, kind, document);
        self.invalidate();
        r
    }
}

/// Queue a signed agreement document for every other party's node: each
/// fetches it on its next sync round (`/anyam/notices/`). Returns how
/// many partners it was queued for.
pub fn queue_for_parties(
    dir: &Path,
    kind: &str,
    doc: &anyam_trust::Signed,
    parties: &[String],
) -> Result<usize> {
    let db =
        FederationDb::open(&dir.join(FEDERATION_DB)).context("opening the federation database")?;
    let mut n = 0;
    for p in parties {
        db.queue(p, kind, doc)?;
        n += 1;
    }
    Ok(n)
}

impl TrustView {
    fn partners_list(&self) -> Result<Vec<(String, String, String)>, String> {
        Ok(self
            .lock()?
            .partners()
            .map_err(|e| format!("reading partners: {e}"))?
            .into_iter()
            .map(|p| {
                (
                    p.descriptor.node_id,
                    p.descriptor.node_name,
                    p.descriptor.taxii_url,
                )
            })
            .collect())
    }

    /// Verify and store an agreement version or termination sent by
    /// partner `from`: it must come from a party, and name this node as
    /// one (documents of agreements this node is not party to are never
    /// stored).
    fn apply(&self, from: &str, kind: &str, doc: &anyam_trust::Signed) -> Result<String, String> {
        let now = jiff::Timestamp::now();
        let mut trust = self.lock()?;
        let me = trust
            .self_node_id()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        match kind {
            "agreement" => {
                let a: anyam_trust::Agreement = doc.parse().map_err(|e| e.to_string())?;
                if !a.party_ids().any(|p| p == from) || !a.party_ids().any(|p| p == me) {
                    return Err(format!(
                        "agreement {} version {} does not name both the sender and this node",
                        a.id, a.version
                    ));
                }
                trust.put_agreement(doc, now).map_err(|e| e.to_string())?;
                let status = match trust.evaluate(&a.id, Some(a.version), now) {
                    Ok(Ok(_)) => "in force".to_string(),
                    Ok(Err(n)) => format!("not in force: {n}"),
                    Err(e) => format!("not evaluated: {e}"),
                };
                Ok(format!(
                    "agreement {} version {} received from partner {from} ({status})",
                    a.id, a.version
                ))
            }
            "termination" => {
                let t: anyam_trust::Termination = doc.parse().map_err(|e| e.to_string())?;
                if t.by != from {
                    return Err(format!(
                        "a termination by {} was sent by {from}, not by the terminating party",
                        t.by
                    ));
                }
                trust.put_termination(doc, now).map_err(|e| e.to_string())?;
                Ok(format!(
                    "termination of agreement {} version {} by partner {from} received",
                    t.agreement_id, t.agreement_version
                ))
            }
            "removal" => {
                let r: anyam_trust::Removal = doc.parse().map_err(|e| e.to_string())?;
                if r.by != from {
                    return Err(format!(
                        "a removal by {} was sent by {from}, not by the removing party",
                        r.by
                    ));
                }
                trust.put_removal(doc, now).map_err(|e| e.to_string())?;
                Ok(format!(
                    "removal of {} from agreement {} version {} by partner {from} received",
                    r.removed, r.agreement_id, r.agreement_version
                ))
            }
            other => Err(format!("unknown notice kind {other:?}")),
        }
    }
}

impl anyam_policy::AgreementSource for TrustView {
    fn in_force(&self) -> Result<anyam_trust::AgreementsInForce, String> {
        TrustSource::in_force(self)
    }
}

/// What `serve` needs to run federation.
pub struct Running {
    pub server: tokio::task::JoinHandle<()>,
    pub sync: tokio::task::JoinHandle<()>,
    pub stop: watch::Sender<bool>,
}

/// Start the partner listener on `listen` and the sync tasks. `changes`
/// is bumped by every local write; `bump` bumps it.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    node: &Node,
    cfg: &FileConfig,
    listen: SocketAddr,
    auditor: Arc<Auditor>,
    changes: watch::Receiver<u64>,
    bump: Arc<dyn Fn() + Send + Sync>,
) -> Result<Running> {
    let dir = node.dir.clone();
    let trust = Arc::new(TrustView::open(&dir)?);
    let node_id = trust
        .lock()
        .map_err(anyhow::Error::msg)?
        .self_node_id()?
        .context("the node has no identity yet")?;
    // The node key as it is at each use: a key rotated while the node
    // serves signs the next page and is presented from the next
    // connection on.
    let key_dir = dir.clone();
    let load_key: KeyLoader =
        Arc::new(move || identity::load_signing_key(&key_dir).map_err(|e| format!("{e:#}")));
    let cert_dir = dir.clone();
    let cert = Arc::new(
        LocalCertificate::new(
            &node_id,
            load_key.clone(),
            Box::new(move |c: &NodeCertificate| {
                if let Err(e) = write_certificate(&cert_dir, c) {
                    tracing::error!(error = %format!("{e:#}"), "writing the partner certificate failed");
                }
            }),
        )
        .context("making the partner certificate")?,
    );
    write_certificate(&dir, cert.current().as_ref())?;
    let db = Arc::new(
        FederationDb::open(&dir.join(FEDERATION_DB)).context("opening the federation database")?,
    );
    let api_root = node
        .store
        .meta("default_api_root")?
        .unwrap_or_else(|| node::DEFAULT_API_ROOT.to_string());
    let audit: Arc<dyn AuditSink> = auditor;
    let pins = Arc::new(KeyringPins::default());
    let syncer = Arc::new(Syncer {
        receiver: Receiver {
            store: node.store.clone(),
            db: db.clone(),
            trust: trust.clone(),
            audit: Some(audit.clone()),
            local_node: node_id.clone(),
            api_root: api_root.clone(),
            host_org: node::HOST_ORG.to_string(),
            on_stored: bump,
        },
        cert: cert.clone(),
        pins: pins.clone(),
        settings: SyncSettings {
            interval: Duration::from_secs(cfg.federation.interval_secs.max(1)),
            live: cfg.federation.live,
            page_size: cfg.federation.page_size,
            ..SyncSettings::default()
        },
    });
    // Pin the partners in force before the first connection is accepted.
    refresh_pins(&syncer).context("reading the partners in force")?;
    let dyn_pins: Arc<dyn KeyPins> = pins.clone();
    let tls = Arc::new(server_config_following(cert, dyn_pins.clone())?);
    let app = router(PartnerApi {
        gate: node.gate()?,
        db,
        key: load_key,
        pins: dyn_pins.clone(),
        audit: Some(audit),
        api_root,
        title: cfg.node_name.clone(),
        changes,
        streams: Arc::default(),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the partner listener to {listen}"))?;
    let bound = listener.local_addr()?;
    println!("anyam: partner listener on https://{bound}/taxii2/ (node id {node_id})");
    tracing::info!(%bound, node_id, "partner listener up");
    let (stop, stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(anyam_federation::server::serve(
        listener,
        tls,
        dyn_pins,
        app,
        async move {
            let _ = server_stop.wait_for(|s| *s).await;
        },
    ));
    let sync = tokio::spawn(anyam_federation::sync::run(syncer, stop_rx));
    Ok(Running { server, sync, stop })
}

/// The hook the TAXII server calls after a DELETE: deletions of objects
/// this node originated and released to partners become signed
/// tombstones queued for those partners.
pub fn delete_hook(node: &Node) -> Result<anyam_taxii::DeleteHook> {
    let dir = node.dir.clone();
    let db = Arc::new(
        FederationDb::open(&dir.join(FEDERATION_DB)).context("opening the federation database")?,
    );
    let node_id = identity::open_trust(&dir)?
        .self_node_id()?
        .context("the node has no identity yet")?;
    Ok(Arc::new(move |d: &anyam_taxii::Deleted| {
        let key = match identity::load_signing_key(&dir) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, object = %d.object_id, "no tombstone: the node key cannot be read");
                return;
            }
        };
        let deletion = anyam_federation::tombstone::LocalDeletion {
            object_id: &d.object_id,
            versions: &d.versions,
            all: d.all,
            user: &d.user,
        };
        match anyam_federation::tombstone::on_local_delete(&db, &key, &node_id, &deletion) {
            Ok(0) => {}
            Ok(n) => tracing::info!(object = %d.object_id, partners = n, "tombstone queued"),
            Err(e) => {
                tracing::error!(error = %e, object = %d.object_id, "queueing a tombstone failed")
            }
        }
    }))
}

/// Queue `sighting` (stored here with `label`) for the originator of the
/// indicator it sights, where the agreement consents
/// (`anyam_federation::sightings::report`).
fn report_sighting(
    gate: &anyam_policy::Gate,
    db: &FederationDb,
    dir: &Path,
    label: &anyam_policy::Label,
    sighting: &serde_json::Value,
) -> std::result::Result<Option<String>, String> {
    let key = identity::load_signing_key(dir).map_err(|e| format!("{e:#}"))?;
    anyam_federation::sightings::report(gate, db, &key, label, sighting).map_err(|e| e.to_string())
}

/// What `anyam detect` calls with every sighting it stores: sightings of
/// indicators a partner sent are queued for that partner where the
/// agreement consents (`anyam_federation::sightings`). Failures are
/// reported on standard error and never stop detection.
pub fn sighting_reporter(node: &Node) -> Result<crate::sightings::Reporter> {
    let db = FederationDb::open(&node.dir.join(FEDERATION_DB))
        .context("opening the federation database")?;
    let gate = node.gate()?;
    let dir = node.dir.clone();
    Ok(Box::new(move |sighting: &serde_json::Value| {
        // Stored by this node for itself: the host organization's label.
        let label = anyam_policy::label_of(sighting).with_source(None, None);
        if let Err(e) = report_sighting(&gate, &db, &dir, &label, sighting) {
            eprintln!(
                "{}",
                serde_json::json!({"warning": format!("sending a sighting back to its originator failed: {e}")})
            );
        }
    }))
}

/// What the TAXII server calls with every sighting a POST stored: the
/// same as [`sighting_reporter`] for a sighting an analyst (or another
/// tool) posted, under the label it was stored with. Failures are logged
/// and never fail the POST, whose objects are stored by then.
pub fn sighting_hook(node: &Node) -> Result<anyam_taxii::SightingHook> {
    let db = FederationDb::open(&node.dir.join(FEDERATION_DB))
        .context("opening the federation database")?;
    let gate = node.gate()?;
    let dir = node.dir.clone();
    Ok(Arc::new(move |s: &anyam_taxii::StoredSighting<'_>| {
        let sent = anyam_policy::Label::from_key(s.release_label)
            .ok_or_else(|| "its stored release label does not parse".to_owned())
            .and_then(|label| {
                let sighting: serde_json::Value =
                    serde_json::from_str(s.raw).map_err(|e| format!("it does not parse: {e}"))?;
                report_sighting(&gate, &db, &dir, &label, &sighting)
            });
        match sent {
            Ok(Some(partner)) => {
                tracing::info!(partner = %partner, "posted sighting queued for the indicator's originator")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "sending a posted sighting back to its originator failed")
            }
        }
    }))
}

/// Where the partner certificate of the running node is written (public;
/// for operators comparing what partners see).
pub const PARTNER_CERT: &str = "tls/partner-cert.pem";

fn write_certificate(dir: &Path, cert: &NodeCertificate) -> Result<()> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.der().as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let path = dir.join(PARTNER_CERT);
    if let Some(parent) = path.parent() {
        node::create_private_dir(parent)?;
    }
    std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))
}

#[derive(Subcommand)]
pub enum SyncCmd {
    /// Per partner: cursors, lag, last success, last error, counts, and
    /// whether the live stream is up.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: SyncCmd) -> Result<ExitCode> {
    match cmd {
        SyncCmd::Status(a) => status(a),
    }
}

fn age(t: Option<&str>, now: jiff::Timestamp) -> Option<f64> {
    let t: jiff::Timestamp = t?.parse().ok()?;
    Some((now - t).get_milliseconds() as f64 / 1000.0)
}

fn status(a: StatusArgs) -> Result<ExitCode> {
    let n = node::open_existing(&a.data.data_dir, a.data.config.as_deref())?;
    let db = FederationDb::open(&n.dir.join(FEDERATION_DB))?;
    let trust = TrustView::open(&n.dir)?;
    let names: std::collections::BTreeMap<String, String> = trust
        .lock()
        .map_err(anyhow::Error::msg)?
        .partners()?
        .into_iter()
        .map(|p| (p.descriptor.node_id.clone(), p.descriptor.node_name.clone()))
        .collect();
    let now = jiff::Timestamp::now();
    let statuses = db.statuses()?;
    let cursors = db.cursors()?;
    let mut partners: Vec<String> = statuses.iter().map(|s| s.partner.clone()).collect();
    partners.extend(cursors.iter().map(|c| c.partner.clone()));
    partners.sort();
    partners.dedup();
    let mut out = Vec::new();
    for p in &partners {
        let st = statuses
            .iter()
            .find(|s| &s.partner == p)
            .cloned()
            .unwrap_or_default();
        let cs: Vec<serde_json::Value> = cursors
            .iter()
            .filter(|c| &c.partner == p)
            .map(|c| {
                serde_json::json!({
                    "collection": c.collection,
                    "api_root": c.api_root,
                    "added_after": c.added_after.map(anyam_federation::page::format_micros),
                    "updated": c.updated,
                })
            })
            .collect();
        out.push(serde_json::json!({
            "partner": p,
            "name": names.get(p),
            "stream_up": st.stream_up,
            "last_success": st.last_success,
            "lag_seconds": age(st.last_success.as_deref(), now),
            "last_error": st.last_error,
            "last_error_at": st.last_error_at,
            "received": st.received,
            "unchanged": st.unchanged,
            "conflicts": st.conflicts,
            "rejected_batches": st.rejected,
            "cursors": cs,
        }));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if out.is_empty() {
        println!("no partner has been synced with yet");
    }
    for p in &out {
        let s = |k: &str| match &p[k] {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        println!("partner {} ({})", s("partner"), s("name"));
        println!(
            "  stream:        {}",
            if p["stream_up"] == true { "up" } else { "down" }
        );
        println!(
            "  last success:  {} (lag {} s)",
            s("last_success"),
            s("lag_seconds")
        );
        println!(
            "  last error:    {} at {}",
            s("last_error"),
            s("last_error_at")
        );
        println!(
            "  received:      {} new, {} unchanged, {} conflicts, {} rejected batches",
            s("received"),
            s("unchanged"),
            s("conflicts"),
            s("rejected_batches")
        );
        if let Some(cs) = p["cursors"].as_array() {
            for c in cs {
                println!(
                    "  cursor:        {} after {}",
                    c["collection"].as_str().unwrap_or("-"),
                    c["added_after"].as_str().unwrap_or("(start)")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
