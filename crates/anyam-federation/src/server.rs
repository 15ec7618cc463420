//! The partner listener: TAXII 2.1 read paths and the live stream, served
//! to partner nodes only, over mutual TLS pinned to their node keys.
//!
//! # Paths
//!
//! - `GET /taxii2/` — discovery; `GET /{root}/` — the API root;
//! - `GET /{root}/collections/`, `GET /{root}/collections/{id}/` — the
//!   collections in the scope of an agreement in force with the caller;
//! - `GET /{root}/collections/{id}/objects/?added_after=&limit=` — one
//!   signed page ([`crate::page`]), every version, oldest first, with
//!   `X-TAXII-Date-Added-First`/`-Last`;
//! - `GET /anyam/stream/` — server-sent events ([`crate::stream`]);
//! - `GET /anyam/notices/?after=SEQ` — the signed documents (agreement
//!   versions, terminations) queued for the caller ([`crate::state`]).
//!
//! Only the node's federated API root is served (the one received
//! collections are kept in). The caller is the partner whose key the TLS
//! handshake proved; there are no passwords or tokens on this listener.
//! The pins are asked again on every request, so a key revoked or an
//! agreement ended while a connection is open stops the next request.
//! Every page is cut by the release decision for that partner through
//! the [`Gate`] and recorded in the audit log as a release naming it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyam_audit::{Event, Kind, ObjectRef};
use anyam_policy::{Gate, Path as ReleasePath};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use ed25519_dalek::SigningKey;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::page::{self, PageRequest, format_micros, parse_micros};
use crate::receive::AuditSink;
use crate::state::FederationDb;
use crate::tls::{KeyPins, Peer, peer_node};

/// TAXII 2.1 media type of every answer but the stream.
pub const TAXII_21: &str = "application/taxii+json;version=2.1";
/// Largest page a partner may ask for.
pub const MAX_PAGE: usize = 5000;

/// The node key that signs pages, read when signing (a rotation while
/// the node serves signs the next page with the new key).
pub type KeySource = Arc<dyn Fn() -> Result<SigningKey, String> + Send + Sync>;

/// What the partner handlers reach.
#[derive(Clone)]
pub struct PartnerApi {
    pub gate: Gate,
    pub db: Arc<FederationDb>,
    pub key: KeySource,
    pub pins: Arc<dyn KeyPins>,
    pub audit: Option<Arc<dyn AuditSink>>,
    /// The API root served to partners.
    pub api_root: String,
    pub title: String,
    /// Bumped whenever objects are stored; live streams wait on it.
    pub changes: watch::Receiver<u64>,
    /// Live streams open per partner (at most
    /// [`crate::stream::MAX_STREAMS_PER_PARTNER`]).
    pub streams: Arc<crate::stream::StreamSlots>,
}

/// The router of the partner listener. Every request must carry the
/// [`Peer`] of its connection as an extension ([`serve`] adds it).
pub fn router(api: PartnerApi) -> Router {
    Router::new()
        .route("/taxii2/", get(discovery))
        .route("/anyam/stream/", get(crate::stream::serve_stream))
        .route("/anyam/notices/", get(notices))
        .route("/{root}/", get(api_root))
        .route("/{root}/collections/", get(collections))
        .route("/{root}/collections/{id}/", get(collection))
        .route("/{root}/collections/{id}/objects/", get(objects))
        .with_state(api)
}

/// An error as a TAXII error message.
pub(crate) fn error(status: StatusCode, title: &str, description: Option<String>) -> Response {
    let mut body = json!({ "title": title, "http_status": status.as_u16().to_string() });
    if let Some(d) = description {
        body["description"] = json!(d);
    }
    taxii(status, body.to_string())
}

fn taxii(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TAXII_21));
    r
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found", None)
}

/// A refusal, answered as a TAXII error message.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    title: &'static str,
    description: Option<String>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.status, self.title, self.description)
    }
}

/// The caller, checked again against the pins now.
pub(crate) fn caller(api: &PartnerApi, peer: &Peer) -> Result<String, Refusal> {
    if api.pins.accepts(&peer.node_id, &peer.key_id) {
        Ok(peer.node_id.clone())
    } else {
        Err(Refusal {
            status: StatusCode::FORBIDDEN,
            title: "Forbidden",
            description: Some("this node key is no longer accepted".into()),
        })
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Refusal {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        title: "Internal error",
        description: Some(e.to_string()),
    })
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("https://{host}")
}

async fn discovery(
    State(api): State<PartnerApi>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = caller(&api, &peer) {
        return r.into_response();
    }
    let root = format!("{}/{}/", base_url(&headers), api.api_root);
    taxii(
        StatusCode::OK,
        json!({ "title": api.title, "default": root, "api_roots": [root] }).to_string(),
    )
}

async fn api_root(
    State(api): State<PartnerApi>,
    Extension(peer): Extension<Peer>,
    Path(root): Path<String>,
) -> Response {
    if let Err(r) = caller(&api, &peer) {
        return r.into_response();
    }
    if root != api.api_root {
        return not_found();
    }
    taxii(
        StatusCode::OK,
        json!({
            "title": api.title,
            "versions": [TAXII_21],
            "max_content_length": 0
        })
        .to_string(),
    )
}

fn collection_json(c: &anyam_store::Collection) -> serde_json::Value {
    let mut v = json!({
        "id": c.id,
        "title": c.title,
        "can_read": true,
        "can_write": false,
        "media_types": ["application/stix+json;version=2.1"],
    });
    if let Some(d) = &c.description {
        v["description"] = json!(d);
    }
    v
}

/// The collections of the served API root that the caller may read from.
async fn caller_collections(
    api: &PartnerApi,
    peer: &Peer,
    root: &str,
) -> Result<Vec<anyam_store::Collection>, Response> {
    let partner = caller(api, peer).map_err(IntoResponse::into_response)?;
    if root != api.api_root {
        return Err(not_found());
    }
    let gate = api.gate.clone();
    let root = api.api_root.clone();
    match blocking(move || gate.partner_collections(&partner, &root)).await {
        Err(r) => Err(r.into_response()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "listing a partner's collections failed");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                None,
            ))
        }
        Ok(Ok(list)) => Ok(list),
    }
}

async fn collections(
    State(api): State<PartnerApi>,
    Extension(peer): Extension<Peer>,
    Path(root): Path<String>,
) -> Response {
    match caller_collections(&api, &peer, &root).await {
        Err(r) => r,
        Ok(list) => {
            let items: Vec<_> = list.iter().map(collection_json).collect();
            let body = if items.is_empty() {
                json!({})
            } else {
                json!({ "collections": items })
            };
            taxii(StatusCode::OK, body.to_string())
        }
    }
}

async fn collection(
    State(api): State<PartnerApi>,
    Extension(peer): Extension<Peer>,
    Path((root, id)): Path<(String, String)>,
) -> Response {
    match caller_collections(&api, &peer, &root).await {
        Err(r) => r,
        Ok(list) => match list.iter().find(|c| c.id == id) {
            Some(c) => taxii(StatusCode::OK, collection_json(c).to_string()),
            None => not_found(),
        },
    }
}

#[derive(serde::Deserialize)]
struct NoticesParams {
    after: Option<i64>,
}

/// Largest batch of notices per request.
pub const MAX_NOTICES: usize = 100;

/// How long a notice is kept once its partner has applied it (asked for
/// later ones): a partner restoring its federation database from a backup
/// of that age still finds what it had applied since.
pub const NOTICE_RETENTION: jiff::SignedDuration = jiff::SignedDuration::from_hours(30 * 24);

/// The signed documents queued for the caller (and for no one else),
/// after `after`, oldest first: `{"notices": [{"seq", "kind",
/// "document"}], "more": bool}`.
async fn notices(
    State(api): State<PartnerApi>,
    Extension(peer): Extension<Peer>,
    Query(params): Query<NoticesParams>,
) -> Response {
    let partner = match caller(&api, &peer) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let db = api.db.clone();
    let after = params.after.unwrap_or(0);
    match blocking(move || {
        // Asking for notices after `after` says those up to it are applied.
        if after > 0 {
            let before = jiff::Timestamp::now() - NOTICE_RETENTION;
            match db.prune_delivered(&partner, after, before) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(partner = %partner, removed = n, "delivered notices removed")
                }
                Err(e) => tracing::warn!(error = %e, "removing delivered notices failed"),
            }
        }
        db.notices_for(&partner, after, MAX_NOTICES + 1)
    })
    .await
    {
        Err(r) => r.into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading the outbox failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", None)
        }
        Ok(Ok(mut list)) => {
            let more = list.len() > MAX_NOTICES;
            list.truncate(MAX_NOTICES);
            let items: Vec<_> = list
                .into_iter()
                .map(|n| {
                    let mut v = json!({ "seq": n.seq, "kind": n.kind, "document": n.document });
                    if !n.objects.is_empty() {
                        // The objects as JSON (digests are over their
                        // canonical form, so the text may be re-encoded).
                        let objects: Vec<serde_json::Value> = n
                            .objects
                            .iter()
                            .filter_map(|t| serde_json::from_str(t).ok())
                            .collect();
                        v["objects"] = json!(objects);
                    }
                    v
                })
                .collect();
            taxii(
                StatusCode::OK,
                json!({ "notices": items, "more": more }).to_string(),
            )
        }
    }
}

#[derive(serde::Deserialize)]
struct ObjectsParams {
    added_after: Option<String>,
    limit: Option<usize>,
}

async fn objects(
    State(api): State<PartnerApi>,
    Extension(peer): Extension<Peer>,
    Path((root, id)): Path<(String, String)>,
    Query(params): Query<ObjectsParams>,
) -> Response {
    let partner = match caller(&api, &peer) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    if root != api.api_root {
        return not_found();
    }
    let added_after = match params.added_after.as_deref().map(parse_micros) {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad request",
                Some("added_after is not an RFC 3339 timestamp".into()),
            );
        }
    };
    let limit = params.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let api2 = api.clone();
    let built = blocking(move || {
        let key = (api2.key)().map_err(crate::FederationError::Policy)?;
        page::build(
            &api2.gate,
            &api2.db,
            &key,
            &PageRequest {
                partner: &partner,
                collection: &id,
                added_after,
                limit,
                via: ReleasePath::Sync,
            },
        )
        .map(|b| (b, partner, id))
    })
    .await;
    let (built, partner, id) = match built {
        Err(r) => return r.into_response(),
        // A collection outside every agreement does not exist for the
        // partner, whatever the reason the policy gives.
        Ok(Err(crate::FederationError::Policy(_))) => return not_found(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "building a page for a partner failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", None);
        }
        Ok(Ok(b)) => b,
    };
    record_release(&api, &partner, &id, &built, "sync");
    let body = match serde_json::to_string(&built.envelope) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                Some(e.to_string()),
            );
        }
    };
    let mut r = taxii(StatusCode::OK, body);
    for (name, t) in [
        ("x-taxii-date-added-first", built.first),
        ("x-taxii-date-added-last", built.last),
    ] {
        if let Some(t) = t
            && let Ok(v) = HeaderValue::from_str(&format_micros(t))
        {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

/// Record a page released to a partner.
pub(crate) fn record_release(
    api: &PartnerApi,
    partner: &str,
    collection: &str,
    built: &page::Built,
    how: &str,
) {
    if built.released.is_empty() {
        return;
    }
    if let Some(a) = &api.audit {
        let mut e = Event::new(Kind::Release, partner);
        e.parties = vec![partner.to_string()];
        e.what.collection = Some(collection.to_string());
        e.what.objects = built
            .released
            .iter()
            .map(|(id, version)| ObjectRef {
                id: id.clone(),
                version: version.clone(),
            })
            .collect();
        e.why = format!(
            "{how} to partner {partner} under agreement {} version {}",
            built.agreement.id, built.agreement.version
        );
        a.record(e);
    }
}

/// Serve the partner listener on `listener` until `shutdown` resolves:
/// every connection is a TLS 1.3 handshake with a client certificate the
/// pins accept; requests carry the peer it proved to be. At shutdown,
/// requests in flight get five seconds to finish (live streams are then
/// cut; partners resume them from their cursors).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    pins: Arc<dyn KeyPins>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (tcp, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a partner connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                conns.spawn(connection(acceptor.clone(), pins.clone(), app.clone(), tcp, addr));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

async fn connection(
    acceptor: TlsAcceptor,
    pins: Arc<dyn KeyPins>,
    app: Router,
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%addr, error = %e, "partner TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::warn!(%addr, "partner TLS handshake timed out");
            return;
        }
    };
    let peer = match peer_node(tls.get_ref().1.peer_certificates(), pins.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "partner refused");
            return;
        }
    };
    tracing::debug!(%addr, partner = %peer.node_id, "partner connected");
    let svc = TowerToHyperService::new(app.layer(Extension(peer)));
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), svc)
        .await
    {
        tracing::debug!(%addr, error = %e, "partner connection ended");
    }
}
