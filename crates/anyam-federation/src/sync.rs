//! The receiving side: for every partner with an agreement in force, pull
//! its collections over TAXII 2.1 with a persisted cursor, then follow its
//! live stream; when the stream is down, pull again on an interval, with
//! back-off while the partner fails.
//!
//! One task per partner ([`run`] starts and stops them as agreements come
//! into and go out of force, every few seconds). A round:
//!
//! 1. `GET` the partner's discovery URL (its descriptor's `taxii_url`),
//!    then its API root's collections (only those in the scope of an
//!    agreement with this node are listed);
//! 2. for each collection, pages of every version after the cursor, each
//!    verified and stored ([`crate::receive`]) before the cursor moves;
//!    when the agreements in force with the partner changed since the
//!    cursor was set (a scope widened), the collection is read again from
//!    the start so that what is newly in scope arrives;
//! 3. then the live stream, from the same cursors, until it ends.
//!
//! Connections are mutual TLS pinned to the partner's node key
//! ([`crate::tls::client_config`]); a partner whose key the pins do not
//! accept is never talked to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyam_trust::AgreementsInForce;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{FederationError, Result};
use crate::page::Envelope;
use crate::receive::{Receiver, RemoteCollection};
use crate::state::{Counts, Cursor};
use crate::stream::{Cursors, PageEvent, encode_cursors};
use crate::tls::{KeyPins, KeyringPins, LocalCertificate, NodeCertificate, client_config};

/// Page size asked of partners unless configured otherwise (the most a
/// partner listener serves, [`crate::server::MAX_PAGE`]).
pub const PULL_PAGE: usize = 5000;

/// Most verified pages stored in one transaction during a pull (see
/// [`pull_round`]): 15,000 objects at the default page size. Three pages
/// may wait while three have their provenance kept and three are stored;
/// more would save little time per object and cost about 20 MB of memory
/// per page (measured on a backlog of 1,000,000 objects).
const COMMIT_PAGES: usize = 3;

/// How syncing behaves.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Pause between pull rounds while the live stream is down.
    pub interval: Duration,
    /// Longest back-off after failures.
    pub max_backoff: Duration,
    /// Whether to follow partners' live streams (else pull only).
    pub live: bool,
    /// Objects asked for per page.
    pub page_size: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
            live: true,
            page_size: PULL_PAGE,
        }
    }
}

/// A partner to sync with, from the agreements in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerTarget {
    pub node_id: String,
    pub name: String,
    /// Its TAXII discovery URL on its partner listener.
    pub url: String,
}

/// Everything the sync tasks share.
pub struct Syncer {
    pub receiver: Receiver,
    /// The node's certificate, following its key.
    pub cert: Arc<LocalCertificate>,
    pub pins: Arc<KeyringPins>,
    pub settings: SyncSettings,
}

/// The partners of the agreements in force (this node left out).
pub fn targets(in_force: &AgreementsInForce, local: &str) -> BTreeMap<String, PartnerTarget> {
    let mut out = BTreeMap::new();
    for a in &in_force.agreements {
        if !a.parties.iter().any(|p| p.node_id == local) {
            continue;
        }
        for p in a.parties.iter().filter(|p| p.node_id != local) {
            out.entry(p.node_id.clone()).or_insert(PartnerTarget {
                node_id: p.node_id.clone(),
                name: p.node_name.clone(),
                url: p.taxii_url.clone(),
            });
        }
    }
    out
}

/// A fingerprint of the agreements in force with `partner`: their ids,
/// versions and digests.
pub fn fingerprint(in_force: &AgreementsInForce, local: &str, partner: &str) -> String {
    let mut parts: Vec<String> = in_force
        .with_party(partner)
        .filter(|a| a.parties.iter().any(|p| p.node_id == local))
        .map(|a| format!("{}:{}:{}", a.id, a.version, a.digest))
        .collect();
    parts.sort();
    parts.join(",")
}

/// Pin the keyrings of every partner whose descriptor this node holds
/// (never this node's own), and return them: notices (agreement
/// proposals among them) flow between partners before any agreement is
/// in force; objects flow only under one ([`pull_round`], and the
/// partner listener's release decision).
pub fn refresh_pins(syncer: &Syncer) -> Result<BTreeMap<String, PartnerTarget>> {
    let trust = &syncer.receiver.trust;
    let local = &syncer.receiver.local_node;
    let targets: BTreeMap<String, PartnerTarget> = trust
        .partners()
        .map_err(FederationError::Policy)?
        .into_iter()
        .filter(|(id, _, url)| id != local && !url.is_empty())
        .map(|(node_id, name, url)| (node_id.clone(), PartnerTarget { node_id, name, url }))
        .collect();
    let rings = trust.keyrings().map_err(FederationError::Policy)?;
    let pinned = rings
        .into_iter()
        .filter(|(id, _)| id != local && targets.contains_key(id))
        .collect();
    syncer.pins.replace(pinned);
    Ok(targets)
}

/// Whether an agreement with `partner` is in force here.
fn in_force_with(syncer: &Syncer, partner: &str) -> Result<bool> {
    let in_force = syncer
        .receiver
        .trust
        .in_force()
        .map_err(FederationError::Policy)?;
    Ok(!fingerprint(&in_force, &syncer.receiver.local_node, partner).is_empty())
}

/// Start, follow and stop the per-partner tasks until `stop` turns true.
pub async fn run(syncer: Arc<Syncer>, mut stop: watch::Receiver<bool>) {
    let mut tasks: BTreeMap<String, (PartnerTarget, JoinHandle<()>)> = BTreeMap::new();
    loop {
        let s = syncer.clone();
        match tokio::task::spawn_blocking(move || refresh_pins(&s)).await {
            Ok(Ok(targets)) => {
                tasks.retain(|id, (t, h)| {
                    let keep = targets.get(id) == Some(t) && !h.is_finished();
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                for (id, t) in targets {
                    tasks.entry(id).or_insert_with(|| {
                        let h = tokio::spawn(partner_loop(syncer.clone(), t.clone(), stop.clone()));
                        (t, h)
                    });
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "reading the agreements in force failed"),
            Err(e) => tracing::error!(error = %e, "reading the agreements in force failed"),
        }
        let s = syncer.clone();
        match tokio::task::spawn_blocking(move || crate::retention::apply(&s.receiver)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(versions = n, "retention applied after agreements ended"),
            Ok(Err(e)) => tracing::error!(error = %e, "applying retention failed"),
            Err(e) => tracing::error!(error = %e, "applying retention failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    for (_, (_, h)) in tasks {
        h.abort();
    }
}

/// The loop of one partner: catch up by pulling, then stream; pull on an
/// interval while the stream is down; back off while the partner fails.
async fn partner_loop(syncer: Arc<Syncer>, target: PartnerTarget, stop: watch::Receiver<bool>) {
    let db = syncer.receiver.db.clone();
    let mut backoff = Duration::from_secs(1);
    // The client presents the node key as it was when the client was made:
    // after a rotation, it is made again for the new key.
    let mut pooled: Option<(String, reqwest::Client)> = None;
    while !*stop.borrow() {
        let cert = syncer.cert.current();
        let made = match pooled.take() {
            Some((key, c)) if key == cert.key_id() => Ok((key, c)),
            _ => http_client(&syncer, &cert, &target.node_id, false)
                .map(|c| (cert.key_id().to_string(), c)),
        };
        let client = match made {
            Ok((key, c)) => &pooled.insert((key, c)).1,
            Err(e) => {
                let _ = db.record_error(&target.node_id, &e.to_string(), false);
                return;
            }
        };
        // Notices first: a termination or a new version must be known
        // here before anything else flows.
        let round = async {
            pull_notices(&syncer, client, &target).await?;
            if in_force_with(&syncer, &target.node_id)? {
                pull_round(&syncer, client, &target).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let pulled = match round.await {
            Ok(p) => {
                backoff = Duration::from_secs(1);
                if let Some(counts) = p {
                    let _ = db.record_success(&target.node_id, counts);
                }
                p.is_some()
            }
            Err(e) => {
                tracing::warn!(partner = %target.node_id, error = %e, "sync round failed");
                if !matches!(e, FederationError::Rejected { .. }) {
                    let _ = db.record_error(&target.node_id, &e.to_string(), false);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(syncer.settings.max_backoff);
                continue;
            }
        };
        if pulled && syncer.settings.live {
            match http_client(&syncer, &syncer.cert.current(), &target.node_id, true) {
                Ok(live) => {
                    let ended = tokio::select! {
                        r = follow_stream(&syncer, &live, &target) => r,
                        r = notices_while_streaming(&syncer, client, &target) => r,
                    };
                    if let Err(e) = ended {
                        tracing::info!(partner = %target.node_id, error = %e, "live stream ended");
                        if !matches!(e, FederationError::Rejected { .. }) {
                            let _ = db.record_error(&target.node_id, &e.to_string(), false);
                        }
                    }
                    let _ = db.set_stream_up(&target.node_id, false);
                }
                Err(e) => {
                    let _ = db.record_error(&target.node_id, &e.to_string(), false);
                }
            }
        }
        tokio::time::sleep(syncer.settings.interval).await;
    }
}

/// While the live stream runs: fetch notices every interval; returns
/// when the agreements in force with the partner changed (the stream is
/// then reopened under the new ones, or not at all).
async fn notices_while_streaming(
    syncer: &Arc<Syncer>,
    client: &reqwest::Client,
    target: &PartnerTarget,
) -> Result<()> {
    let before = current_fingerprint(syncer, &target.node_id)?;
    loop {
        tokio::time::sleep(syncer.settings.interval).await;
        pull_notices(syncer, client, target).await?;
        if current_fingerprint(syncer, &target.node_id)? != before {
            return Ok(());
        }
    }
}

#[derive(serde::Deserialize)]
struct NoticesDoc {
    #[serde(default)]
    notices: Vec<NoticeDoc>,
    #[serde(default)]
    more: bool,
}

#[derive(serde::Deserialize)]
struct NoticeDoc {
    seq: i64,
    kind: String,
    document: anyam_trust::Signed,
    #[serde(default)]
    objects: Vec<Box<serde_json::value::RawValue>>,
}

/// Fetch and apply the partner's notices for this node, in order; the
/// notice cursor moves after each one. A notice that fails verification
/// is refused (audited as a `rejection`) and passed over.
pub async fn pull_notices(
    syncer: &Arc<Syncer>,
    client: &reqwest::Client,
    target: &PartnerTarget,
) -> Result<()> {
    let partner = target.node_id.as_str();
    let base = partner_url(&target.url, "/anyam/notices/")?;
    loop {
        let after = syncer.receiver.db.notice_cursor(partner)?;
        let doc: NoticesDoc = get_json(client, partner, &format!("{base}?after={after}")).await?;
        for n in &doc.notices {
            let s = syncer.clone();
            let (p, kind, document) = (partner.to_string(), n.kind.clone(), n.document.clone());
            let objects: Vec<String> = n.objects.iter().map(|o| o.get().to_string()).collect();
            tokio::task::spawn_blocking(move || {
                s.receiver.apply_notice(&p, &kind, &document, &objects)
            })
            .await
            .map_err(|e| FederationError::Protocol(format!("notice task failed: {e}")))??;
            syncer.receiver.db.set_notice_cursor(partner, n.seq)?;
        }
        if !doc.more || doc.notices.is_empty() {
            return Ok(());
        }
    }
}

/// A client for `partner`, presenting `cert`.
fn http_client(
    syncer: &Syncer,
    cert: &NodeCertificate,
    partner: &str,
    live: bool,
) -> Result<reqwest::Client> {
    let pins: Arc<dyn KeyPins> = syncer.pins.clone();
    let tls = client_config(cert, pins, partner)?;
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30));
    if !live {
        b = b.timeout(Duration::from_secs(120));
    }
    b.build().map_err(|e| FederationError::Transport {
        partner: partner.to_string(),
        detail: e.to_string(),
    })
}

fn transport(partner: &str, e: impl std::fmt::Display) -> FederationError {
    FederationError::Transport {
        partner: partner.to_string(),
        detail: e.to_string(),
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    partner: &str,
    url: &str,
) -> Result<T> {
    let r = client
        .get(url)
        .header("accept", crate::server::TAXII_21)
        .send()
        .await
        .map_err(|e| transport(partner, format!("GET {url}: {e}")))?;
    let status = r.status();
    let body = r
        .bytes()
        .await
        .map_err(|e| transport(partner, format!("GET {url}: {e}")))?;
    if !status.is_success() {
        return Err(transport(
            partner,
            format!(
                "GET {url}: {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| FederationError::Protocol(format!("GET {url}: not the expected JSON: {e}")))
}

#[derive(serde::Deserialize)]
struct Discovery {
    default: Option<String>,
    #[serde(default)]
    api_roots: Vec<String>,
}

#[derive(serde::Deserialize)]
struct CollectionsDoc {
    #[serde(default)]
    collections: Vec<CollectionDoc>,
}

#[derive(serde::Deserialize)]
struct CollectionDoc {
    id: String,
    title: String,
}

/// The partner's API root URL (ending in `/`) and its collections.
async fn list(
    client: &reqwest::Client,
    target: &PartnerTarget,
) -> Result<(String, Vec<RemoteCollection>)> {
    let d: Discovery = get_json(client, &target.node_id, &target.url).await?;
    let root = d
        .default
        .or_else(|| d.api_roots.into_iter().next())
        .ok_or_else(|| FederationError::Protocol("the partner lists no API root".into()))?;
    let root = if root.ends_with('/') {
        root
    } else {
        format!("{root}/")
    };
    let c: CollectionsDoc =
        get_json(client, &target.node_id, &format!("{root}collections/")).await?;
    Ok((
        root,
        c.collections
            .into_iter()
            .map(|c| RemoteCollection {
                id: c.id,
                title: c.title,
            })
            .collect(),
    ))
}

/// The cursor to start a collection from, given the agreements' fingerprint.
fn start(syncer: &Syncer, partner: &str, collection: &str, fp: &str) -> Result<Option<i64>> {
    Ok(syncer
        .receiver
        .db
        .cursor(partner, collection)?
        .filter(|c| c.fingerprint == fp)
        .and_then(|c| c.added_after))
}

fn save_cursor(
    syncer: &Syncer,
    partner: &str,
    api_root: &str,
    collection: &str,
    at: Option<i64>,
    fp: &str,
) -> Result<()> {
    syncer.receiver.db.set_cursor(&Cursor {
        partner: partner.to_string(),
        collection: collection.to_string(),
        api_root: api_root.to_string(),
        added_after: at,
        fingerprint: fp.to_string(),
        updated: String::new(),
    })
}

fn current_fingerprint(syncer: &Syncer, partner: &str) -> Result<String> {
    let in_force = syncer
        .receiver
        .trust
        .in_force()
        .map_err(FederationError::Policy)?;
    Ok(fingerprint(&in_force, &syncer.receiver.local_node, partner))
}

/// One pull round over every collection the partner shares.
pub async fn pull_round(
    syncer: &Arc<Syncer>,
    client: &reqwest::Client,
    target: &PartnerTarget,
) -> Result<Counts> {
    let partner = target.node_id.as_str();
    let (root, collections) = list(client, target).await?;
    let fp = current_fingerprint(syncer, partner)?;
    let mut total = Counts::default();
    for c in collections {
        let mut at = start(syncer, partner, &c.id, &fp)?;
        // Four stages at once: the next page is fetched (its URL only
        // needs the page's claimed last `date_added`) and verified while
        // the pages before it are committed, and a commit is two steps on
        // two files: the provenance of a group of pages is kept in
        // `federation.db` while the group before it is stored. Each step
        // runs one group at a time, in order; a group is stored only after
        // its provenance was kept, and the cursor moves only after it was
        // stored. Pages verified while the steps run wait for the next
        // group and go together (at most `COMMIT_PAGES`), so that when
        // committing is the slower stage its cost per object falls.
        let size = syncer.settings.page_size.clamp(1, crate::server::MAX_PAGE);
        let mut next = Some(fetch_page(client, partner, &root, &c.id, at, size));
        let mut recording: Option<JoinHandle<Result<crate::receive::Recorded>>> = None;
        let mut storing: Option<JoinHandle<Result<crate::receive::Received>>> = None;
        let mut pending: Vec<crate::receive::Verified> = Vec::new();
        let mut done = |got: crate::receive::Received, at: &mut Option<i64>| -> Result<()> {
            total.received += got.counts.received;
            total.unchanged += got.counts.unchanged;
            total.conflicts += got.counts.conflicts;
            if got.last.is_some() {
                *at = got.last;
            }
            save_cursor(syncer, partner, &root, &c.id, *at, &fp)
        };
        let record = |pages: Vec<crate::receive::Verified>| {
            let (s, t, cc) = (syncer.clone(), target.clone(), c.clone());
            tokio::task::spawn_blocking(move || {
                s.receiver.keep_provenance(&t.node_id, &t.name, &cc, pages)
            })
        };
        let store = |recorded: crate::receive::Recorded| {
            let s = syncer.clone();
            tokio::task::spawn_blocking(move || s.receiver.store_kept(recorded))
        };
        // Once a step failed, nothing after it is stored (the cursor would
        // pass the pages that failed).
        let mut failed = false;
        let outcome: Result<()> = async {
            while let Some(fetching) = next.take() {
                let envelope = fetching.await.map_err(|e| {
                    FederationError::Protocol(format!("fetching task failed: {e}"))
                })??;
                let claimed = envelope
                    .x_anyam_date_added_last
                    .as_deref()
                    .and_then(crate::page::parse_micros);
                if envelope.more
                    && let Some(t) = claimed
                {
                    next = Some(fetch_page(client, partner, &root, &c.id, Some(t), size));
                }
                let (s, t, cc) = (syncer.clone(), target.clone(), c.clone());
                let verified = joined(
                    tokio::task::spawn_blocking(move || {
                        s.receiver.verify(&t.node_id, &cc, envelope)
                    })
                    .await,
                )?;
                if verified.last().is_none()
                    && let Some(n) = next.take()
                {
                    n.abort();
                }
                pending.push(verified);
                // Move the groups on when both steps are free, or wait for
                // them when enough is waiting: the group recorded goes to
                // be stored, and what is pending to be recorded.
                let free = recording.as_ref().is_none_or(JoinHandle::is_finished)
                    && storing.as_ref().is_none_or(JoinHandle::is_finished);
                if free || pending.len() >= COMMIT_PAGES {
                    if let Some(h) = storing.take() {
                        let got = joined(h.await);
                        failed = got.is_err();
                        done(got?, &mut at)?;
                    }
                    if let Some(h) = recording.take() {
                        let got = joined(h.await);
                        failed = got.is_err();
                        storing = Some(store(got?));
                    }
                    recording = Some(record(std::mem::take(&mut pending)));
                }
            }
            Ok(())
        }
        .await;
        if let Some(n) = next.take() {
            n.abort();
        }
        // A step under way finishes, and the cursor of what was stored is
        // kept, whatever happened to the page after it; pages verified
        // before a page that failed verification are stored too.
        let tail: Result<()> = async {
            if let Some(h) = storing.take() {
                let got = joined(h.await);
                failed |= got.is_err();
                done(got?, &mut at)?;
            }
            if let Some(h) = recording.take() {
                let got = joined(h.await);
                failed |= got.is_err();
                let recorded = got?;
                if !failed {
                    done(joined(store(recorded).await)?, &mut at)?;
                }
            }
            if !pending.is_empty() && !failed {
                let recorded = joined(record(std::mem::take(&mut pending)).await)?;
                done(joined(store(recorded).await)?, &mut at)?;
            }
            Ok(())
        }
        .await;
        outcome?;
        tail?;
    }
    Ok(total)
}

/// The result of a blocking task.
fn joined<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    r.map_err(|e| FederationError::Protocol(format!("receiving task failed: {e}")))?
}

/// Start fetching one page of a partner collection.
fn fetch_page(
    client: &reqwest::Client,
    partner: &str,
    root: &str,
    collection: &str,
    after: Option<i64>,
    size: usize,
) -> JoinHandle<Result<Envelope>> {
    let mut url = format!("{root}collections/{collection}/objects/?limit={size}");
    if let Some(t) = after {
        url.push_str("&added_after=");
        url.extend(form_urlencoded::byte_serialize(
            crate::page::format_micros(t).as_bytes(),
        ));
    }
    let (client, partner) = (client.clone(), partner.to_string());
    tokio::spawn(async move { get_json(&client, &partner, &url).await })
}

async fn receive(
    syncer: &Arc<Syncer>,
    target: &PartnerTarget,
    c: &RemoteCollection,
    envelope: Envelope,
) -> Result<crate::receive::Received> {
    let s = syncer.clone();
    let (t, c) = (target.clone(), c.clone());
    tokio::task::spawn_blocking(move || s.receiver.receive(&t.node_id, &t.name, &c, &envelope))
        .await
        .map_err(|e| FederationError::Protocol(format!("receiving task failed: {e}")))?
}

/// Follow the partner's live stream until it ends.
async fn follow_stream(
    syncer: &Arc<Syncer>,
    client: &reqwest::Client,
    target: &PartnerTarget,
) -> Result<()> {
    let partner = target.node_id.as_str();
    let (root, collections) = list(client, target).await?;
    let fp = current_fingerprint(syncer, partner)?;
    let mut cursors = Cursors::new();
    for c in &collections {
        if let Some(t) = start(syncer, partner, &c.id, &fp)? {
            cursors.insert(c.id.clone(), t);
        }
    }
    let url = partner_url(&target.url, "/anyam/stream/")?;
    let r = client
        .get(&url)
        .header("accept", "text/event-stream")
        .header("last-event-id", encode_cursors(&cursors))
        .send()
        .await
        .map_err(|e| transport(partner, format!("GET {url}: {e}")))?;
    if !r.status().is_success() {
        return Err(transport(partner, format!("GET {url}: {}", r.status())));
    }
    syncer.receiver.db.set_stream_up(partner, true)?;
    let mut events = eventsource_stream::EventStream::new(r.bytes_stream());
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| transport(partner, format!("live stream: {e}")))?;
        if ev.event != "page" {
            continue;
        }
        let page: PageEvent = serde_json::from_str(&ev.data)
            .map_err(|e| FederationError::Protocol(format!("live stream event: {e}")))?;
        let envelope: Envelope = serde_json::from_str(page.envelope.get())
            .map_err(|e| FederationError::Protocol(format!("live stream page: {e}")))?;
        let c = RemoteCollection {
            id: page.collection.id,
            title: page.collection.title,
        };
        let got = receive(syncer, target, &c, envelope).await?;
        if got.last.is_some() {
            save_cursor(syncer, partner, &root, &c.id, got.last, &fp)?;
        }
        syncer.receiver.db.record_success(partner, got.counts)?;
    }
    Ok(())
}

/// A path on the partner listener of a discovery URL.
fn partner_url(discovery: &str, path: &str) -> Result<String> {
    let u = reqwest::Url::parse(discovery)
        .map_err(|e| FederationError::Protocol(format!("partner URL {discovery}: {e}")))?;
    u.join(path)
        .map(|u| u.to_string())
        .map_err(|e| FederationError::Protocol(format!("partner URL {discovery}: {e}")))
}
