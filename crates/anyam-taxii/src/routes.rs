//! The TAXII 2.1 endpoints (TAXII 2.1 §4 and §5) and the few routes outside
//! the TAXII tree (`/metrics`, `/healthz`, `/audit/head`).
//!
//! Every handler that releases objects records one `release` entry in the
//! audit log per response, every POST one `receipt` entry, and every
//! refusal (authentication, 403, and the 404 that hides a collection or
//! status resource from a caller without rights) one `denial` entry with
//! the real reason. The recording happens inside the blocking closure that
//! made the decision, right after it, so no path answers without it.

use std::net::SocketAddr;

use anyam_audit::ObjectRef;
use anyam_policy::{Action, Denied, Principal};
use anyam_store::{Micros, Page, Query, Status, StatusDetail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::AppState;
use crate::audit::{self, ReceiptCounts, Target};
use crate::auth::AuthFailure;
use crate::error::ApiError;
use crate::ingest;
use crate::media::{STIX_21, TAXII_21, accepts_taxii, is_taxii_body};
use crate::params::{Endpoint, fmt_micros, parse_query};

/// Build the node's router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/taxii2/", get(discovery))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/audit/head", get(audit_head).post(sign_audit_head))
        .route("/{root}/", get(api_root))
        .route("/{root}/status/{id}/", get(status))
        .route("/{root}/search/", get(search))
        .route("/{root}/collections/", get(collections))
        .route("/{root}/collections/{cid}/", get(collection))
        .route("/{root}/collections/{cid}/manifest/", get(manifest))
        .route(
            "/{root}/collections/{cid}/objects/",
            get(objects).post(add_objects),
        )
        .route(
            "/{root}/collections/{cid}/objects/{oid}/",
            get(object).delete(delete_object),
        )
        .route(
            "/{root}/collections/{cid}/objects/{oid}/versions/",
            get(versions),
        )
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                .with_description("This endpoint does not support the request's method.")
        })
        .layer(axum::middleware::from_fn(observe))
        .with_state(state)
}

/// Count and time every request for `/metrics`, and log it at debug level
/// (the method and status only; paths may name collections and objects,
/// which are not for the logs of a busy node).
async fn observe(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut resp = next.run(req).await;
    // A request refused before its body was read leaves unread bytes on the
    // connection; say so, so that the client opens a fresh connection
    // instead of finding this one closed under it (RFC 9112 §9.6).
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status().as_u16().to_string();
    let elapsed = started.elapsed();
    metrics::counter!("anyam_http_requests_total", "method" => method.to_string(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("anyam_http_request_seconds").record(elapsed.as_secs_f64());
    tracing::debug!(%method, status, micros = elapsed.as_micros() as u64, "request");
    resp
}

/// Run blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// An authenticated caller. Extracting it performs authentication (401,
/// 429) and records a refusal in the audit log.
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Authenticated, ApiError> {
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "local".into());
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let path = parts.uri.path().to_string();
        let st = state.clone();
        blocking(move || {
            let failure = match st.auth.authenticate(authorization.as_deref(), &client) {
                Ok(p) => return Ok(Authenticated(p)),
                Err(f) => f,
            };
            let (reason, err) = match failure {
                AuthFailure::Invalid => {
                    metrics::counter!("anyam_auth_failures_total").increment(1);
                    let reason = if authorization.is_some() {
                        "authentication failed: unknown user, wrong password, disabled user, or an unknown, revoked or expired token"
                    } else {
                        "authentication failed: no credentials"
                    };
                    (reason.to_string(), ApiError::unauthorized())
                }
                AuthFailure::Throttled(secs) => {
                    let mut e =
                        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many failed logins")
                            .with_description(format!("Retry in {secs} seconds."));
                    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                        e.headers.push((header::RETRY_AFTER, v));
                    }
                    (
                        format!("throttled after repeated failed logins, for {secs} more seconds"),
                        e,
                    )
                }
                AuthFailure::Internal(e) => return Err(ApiError::internal(e)),
            };
            let (scheme, claimed) = claimed_identity(authorization.as_deref());
            if let Some(a) = &st.audit {
                let key = audit::AuthKey {
                    client: client.clone(),
                    scheme,
                    claimed_user: claimed.clone(),
                    reason: reason.clone(),
                    http_status: err.status.as_u16(),
                };
                a.record_auth_denial(key, || {
                    audit::auth_denial(&path, claimed, scheme, &client, reason, err.status.as_u16())
                });
            }
            Err(err)
        })
        .await
    }
}

/// The scheme of an `Authorization` header and, for Basic, the user name it
/// claims: who tried, for the audit log. Never the password or token.
fn claimed_identity(authorization: Option<&str>) -> (&'static str, Option<String>) {
    let Some(value) = authorization else {
        return ("none", None);
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return ("bearer", None);
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return ("other", None);
    }
    let user = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        // Whoever sends the header chooses this text: keep a bounded prefix.
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, _)| u.chars().take(128).collect())
        });
    ("basic", user)
}

/// An authenticated caller whose `Accept` header admits a TAXII response.
/// Extracting it performs authentication (401/429) and negotiation (406).
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        if !accepts_taxii(&parts.headers) {
            return Err(ApiError::new(StatusCode::NOT_ACCEPTABLE, "Not acceptable")
                .with_description(format!("This server answers with `{TAXII_21}`; the request's Accept header does not admit it.")));
        }
        Ok(Caller(principal))
    }
}

/// Turn a refusal of the release decision into the client's answer, after
/// recording the real reason in the audit log. A "not found" is recorded
/// only when the collection exists and the caller holds no right on it
/// (it was hidden); one for a collection that does not exist is no
/// refusal.
fn refuse(st: &AppState, p: &Principal, root: &str, t: &Target<'_>, d: Denied) -> ApiError {
    if st.audit.is_some() {
        match &d {
            Denied::Forbidden(why) => {
                st.record(|| audit::denial(p, t, format!("forbidden: {why}"), 403));
            }
            Denied::NotFound => {
                if let Some(reason) = t.collection.and_then(|c| st.gate.why_hidden(p, root, c)) {
                    st.record(|| audit::hidden_denial(p, t, reason));
                }
            }
            Denied::Store(_) | Denied::Policy(_) => {}
        }
    }
    d.into()
}

fn taxii_json(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut resp = (status, body.into()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TAXII_21));
    resp
}

fn taxii_value(v: &Value) -> Response {
    taxii_json(StatusCode::OK, serde_json::to_vec(v).unwrap_or_default())
}

/// Absolute base URL for links in discovery. Over HTTP/2 the host travels
/// in the `:authority` pseudo-header, which reaches handlers as the URI's
/// authority rather than as a `Host` header.
fn base_url(state: &AppState, headers: &HeaderMap, uri: &Uri) -> String {
    if let Some(u) = &state.settings.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let scheme = if state.settings.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

// --- Discovery and API roots (TAXII 2.1 §4.1, §4.2) --------------------------

async fn discovery(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Caller(_): Caller,
) -> Result<Response, ApiError> {
    let store = st.store.clone();
    let roots = blocking(move || Ok(store.api_roots()?)).await?;
    let base = base_url(&st, &headers, &uri);
    let urls: Vec<String> = roots
        .iter()
        .map(|r| format!("{base}/{}/", r.name))
        .collect();
    let mut body = json!({ "title": st.settings.title });
    if let Some(d) = &st.settings.description {
        body["description"] = json!(d);
    }
    if let Some(c) = &st.settings.contact {
        body["contact"] = json!(c);
    }
    if let Some(def) = &st.settings.default_api_root
        && roots.iter().any(|r| &r.name == def)
    {
        body["default"] = json!(format!("{base}/{def}/"));
    }
    if !urls.is_empty() {
        body["api_roots"] = json!(urls);
    }
    Ok(taxii_value(&body))
}

async fn load_root(st: &AppState, root: String) -> Result<anyam_store::ApiRoot, ApiError> {
    let store = st.store.clone();
    blocking(move || store.api_root(&root)?.ok_or_else(ApiError::not_found)).await
}

async fn api_root(
    State(st): State<AppState>,
    Path(root): Path<String>,
    Caller(_): Caller,
) -> Result<Response, ApiError> {
    let r = load_root(&st, root).await?;
    let mut body = json!({
        "title": r.title,
        "versions": [TAXII_21],
        "max_content_length": r.max_content_length,
    });
    if let Some(d) = r.description {
        body["description"] = json!(d);
    }
    Ok(taxii_value(&body))
}

// --- Status (TAXII 2.1 §4.3) ----------------------------------------------------

fn status_json(s: &Status) -> Value {
    let details = |d: &[StatusDetail]| -> Value {
        Value::Array(
            d.iter()
                .map(|x| {
                    let mut v = json!({ "id": x.id, "version": x.version });
                    if let Some(m) = &x.message {
                        v["message"] = json!(m);
                    }
                    v
                })
                .collect(),
        )
    };
    let mut v = json!({
        "id": s.id,
        "status": s.status,
        "request_timestamp": fmt_micros(s.request_timestamp),
        "total_count": s.total_count,
        "success_count": s.successes.len(),
        "failure_count": s.failures.len(),
        "pending_count": s.pendings.len(),
    });
    if !s.successes.is_empty() {
        v["successes"] = details(&s.successes);
    }
    if !s.failures.is_empty() {
        v["failures"] = details(&s.failures);
    }
    if !s.pendings.is_empty() {
        v["pendings"] = details(&s.pendings);
    }
    v
}

async fn status(
    State(st): State<AppState>,
    Path((root, id)): Path<(String, String)>,
    uri: Uri,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    let s = blocking(move || match st.gate.status(&p, &root, &id) {
        Err(Denied::NotFound) => {
            // Record a status resource hidden because another organization
            // made the request; one that does not exist is no refusal.
            if st.audit.is_some()
                && let Some(owner) = st.gate.status_owner(&root, &id)
            {
                let t = Target {
                    collection: None,
                    path: uri.path(),
                    query: None,
                };
                st.record(|| {
                    audit::hidden_denial(
                        &p,
                        &t,
                        format!(
                            "hidden: status resource of organization {owner} (answered 404, as for an absent one)"
                        ),
                    )
                });
            }
            Err(ApiError::not_found())
        }
        other => Ok(other?),
    })
    .await?;
    Ok(taxii_value(&status_json(&s)))
}

// --- Collections (TAXII 2.1 §5.1, §5.2) -------------------------------------------

fn collection_json(c: &anyam_store::Collection, access: anyam_store::Access) -> Value {
    let mut v = json!({
        "id": c.id,
        "title": c.title,
        "can_read": access.read,
        "can_write": access.write,
        "media_types": [STIX_21],
    });
    if let Some(d) = &c.description {
        v["description"] = json!(d);
    }
    if let Some(a) = &c.alias {
        v["alias"] = json!(a);
    }
    v
}

async fn collections(
    State(st): State<AppState>,
    Path(root): Path<String>,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    load_root(&st, root.clone()).await?;
    let gate = st.gate.clone();
    let list = blocking(move || Ok(gate.collections(&p, &root)?)).await?;
    let mut body = json!({});
    if !list.is_empty() {
        body["collections"] =
            Value::Array(list.iter().map(|(c, a)| collection_json(c, *a)).collect());
    }
    Ok(taxii_value(&body))
}

/// Resolve `{cid}`, which may be a collection's id or its alias.
async fn collection(
    State(st): State<AppState>,
    Path((root, cid)): Path<(String, String)>,
    uri: Uri,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    let (c, a) = blocking(move || {
        // Any right at all makes the collection visible (TAXII 2.1 §5.2).
        let decided = match st.gate.collection(&p, &root, &cid, Action::Read) {
            Err(Denied::Forbidden(_)) => st.gate.collection(&p, &root, &cid, Action::Write),
            other => other,
        };
        decided.map_err(|d| {
            let t = Target {
                collection: Some(&cid),
                path: uri.path(),
                query: None,
            };
            refuse(&st, &p, &root, &t, d)
        })
    })
    .await?;
    Ok(taxii_value(&collection_json(&c, a)))
}

// --- Object listings (TAXII 2.1 §5.3, §5.4, §5.5, §5.7) ------------------------

/// The filters of one request, with the server's page sizes.
fn query(st: &AppState, raw: &Option<String>, endpoint: Endpoint) -> Result<Query, ApiError> {
    parse_query(
        raw.as_deref(),
        endpoint,
        st.settings.default_limit,
        st.settings.max_limit,
    )
}

/// Attach the `X-TAXII-Date-Added-First`/`-Last` headers (TAXII 2.1 §3.3.1).
fn date_headers(resp: &mut Response, first: Option<Micros>, last: Option<Micros>) {
    for (name, v) in [
        ("x-taxii-date-added-first", first),
        ("x-taxii-date-added-last", last),
    ] {
        if let Some(m) = v
            && let Ok(hv) = HeaderValue::from_str(&fmt_micros(m))
        {
            resp.headers_mut().insert(name, hv);
        }
    }
}

/// An envelope (TAXII 2.1 §3.7) spliced from stored object texts.
fn envelope(page: &Page<anyam_store::StoredObject>) -> Response {
    let size: usize = page.items.iter().map(|o| o.raw.len() + 1).sum();
    let mut body = String::with_capacity(size + 128);
    body.push_str("{\"more\":");
    body.push_str(if page.next.is_some() { "true" } else { "false" });
    if let Some(n) = &page.next {
        body.push_str(",\"next\":");
        body.push_str(&Value::String(n.clone()).to_string());
    }
    if !page.items.is_empty() {
        body.push_str(",\"objects\":[");
        for (i, o) in page.items.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&o.raw);
        }
        body.push(']');
    }
    body.push('}');
    let mut resp = taxii_json(StatusCode::OK, body);
    date_headers(
        &mut resp,
        page.items.first().map(|o| o.date_added),
        page.items.last().map(|o| o.date_added),
    );
    resp
}

/// A page of objects released: its envelope, built before the release is
/// recorded and returned only after. The page is consumed, its ids and
/// versions moved into the audit entry rather than copied.
fn release_page(
    st: &AppState,
    p: &Principal,
    t: &Target<'_>,
    page: Page<anyam_store::StoredObject>,
) -> (Response, usize) {
    let resp = envelope(&page);
    let (n, more) = (page.items.len(), page.next.is_some());
    st.record(|| {
        let refs = page
            .items
            .into_iter()
            .map(|o| ObjectRef {
                id: o.id,
                version: o.version,
            })
            .collect();
        audit::release(p, t, refs, more)
    });
    (resp, n)
}

/// The (id, version) pairs a manifest or versions page lists.
fn manifest_refs(items: &[anyam_store::ManifestEntry]) -> Vec<ObjectRef> {
    items
        .iter()
        .map(|m| ObjectRef {
            id: m.id.clone(),
            version: m.version.clone(),
        })
        .collect()
}

async fn objects(
    State(st): State<AppState>,
    Path((root, cid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    let q = query(&st, &raw, Endpoint::Listing)?;
    let (resp, n) = blocking(move || {
        let t = Target {
            collection: Some(&cid),
            path: uri.path(),
            query: raw.as_deref(),
        };
        let page = st
            .gate
            .objects(&p, &root, &cid, &q)
            .map_err(|d| refuse(&st, &p, &root, &t, d))?;
        Ok(release_page(&st, &p, &t, page))
    })
    .await?;
    metrics::counter!("anyam_objects_served_total").increment(n as u64);
    Ok(resp)
}

async fn object(
    State(st): State<AppState>,
    Path((root, cid, oid)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    let mut q = query(&st, &raw, Endpoint::Object)?;
    q.ids = vec![oid];
    let first_page = q.next.is_none();
    let (resp, n) = blocking(move || {
        let t = Target {
            collection: Some(&cid),
            path: uri.path(),
            query: raw.as_deref(),
        };
        let page = st
            .gate
            .objects(&p, &root, &cid, &q)
            .map_err(|d| refuse(&st, &p, &root, &t, d))?;
        // An object the caller cannot see, or that no version matches, does
        // not exist for this request (TAXII 2.1 §5.5): nothing released.
        if page.items.is_empty() && first_page {
            return Err(ApiError::not_found());
        }
        Ok(release_page(&st, &p, &t, page))
    })
    .await?;
    metrics::counter!("anyam_objects_served_total").increment(n as u64);
    Ok(resp)
}

fn manifest_json(page: &Page<anyam_store::ManifestEntry>, key: &str) -> Response {
    let mut body = json!({ "more": page.next.is_some() });
    if let Some(n) = &page.next {
        body["next"] = json!(n);
    }
    if !page.items.is_empty() {
        body[key] = if key == "versions" {
            Value::Array(page.items.iter().map(|m| json!(m.version)).collect())
        } else {
            Value::Array(
                page.items
                    .iter()
                    .map(|m| {
                        json!({
                            "id": m.id,
                            "date_added": fmt_micros(m.date_added),
                            "version": m.version,
                            "media_type": STIX_21,
                        })
                    })
                    .collect(),
            )
        };
    }
    let mut resp = taxii_value(&body);
    date_headers(
        &mut resp,
        page.items.first().map(|m| m.date_added),
        page.items.last().map(|m| m.date_added),
    );
    resp
}

async fn manifest(
    State(st): State<AppState>,
    Path((root, cid)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    let q = query(&st, &raw, Endpoint::Listing)?;
    let page = blocking(move || {
        let t = Target {
            collection: Some(&cid),
            path: uri.path(),
            query: raw.as_deref(),
        };
        let page = st
            .gate
            .manifest(&p, &root, &cid, &q)
            .map_err(|d| refuse(&st, &p, &root, &t, d))?;
        st.record(|| audit::release(&p, &t, manifest_refs(&page.items), page.next.is_some()));
        Ok(page)
    })
    .await?;
    Ok(manifest_json(&page, "objects"))
}

async fn versions(
    State(st): State<AppState>,
    Path((root, cid, oid)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    let q = query(&st, &raw, Endpoint::Versions)?;
    let first_page = q.next.is_none();
    let page = blocking(move || {
        let t = Target {
            collection: Some(&cid),
            path: uri.path(),
            query: raw.as_deref(),
        };
        let page = st
            .gate
            .versions(&p, &root, &cid, &oid, &q)
            .map_err(|d| refuse(&st, &p, &root, &t, d))?;
        if page.items.is_empty() && first_page {
            return Err(ApiError::not_found());
        }
        st.record(|| audit::release(&p, &t, manifest_refs(&page.items), page.next.is_some()));
        Ok(page)
    })
    .await?;
    Ok(manifest_json(&page, "versions"))
}

async fn delete_object(
    State(st): State<AppState>,
    Path((root, cid, oid)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    let q = parse_query(raw.as_deref(), Endpoint::Delete, 1, 1)?;
    blocking(move || {
        let t = Target {
            collection: Some(&cid),
            path: uri.path(),
            query: raw.as_deref(),
        };
        // With a delete hook, the versions the caller sees before and
        // after tell which went.
        let listing = |st: &AppState| -> Option<Vec<String>> {
            let q = Query {
                versions: vec![anyam_store::VersionSel::All],
                limit: 100_000,
                ..Query::default()
            };
            match st.gate.versions(&p, &root, &cid, &oid, &q) {
                Ok(page) => Some(page.items.into_iter().map(|e| e.version).collect()),
                Err(Denied::NotFound) => Some(Vec::new()),
                Err(_) => None,
            }
        };
        let before = st.on_delete.as_ref().and_then(|_| listing(&st));
        let removed = st
            .gate
            .delete(&p, &root, &cid, &oid, &q.versions, &q.spec_versions)
            .map_err(|d| refuse(&st, &p, &root, &t, d))?;
        st.record(|| audit::deletion(&p, &t, &oid, removed));
        if let (Some(hook), Some(before)) = (&st.on_delete, before) {
            let after = listing(&st).unwrap_or_default();
            let collection = st
                .gate
                .collection(&p, &root, &cid, Action::Read)
                .map(|(c, _)| c.id)
                .unwrap_or_else(|_| cid.clone());
            hook(&crate::Deleted {
                collection,
                object_id: oid.clone(),
                versions: before.into_iter().filter(|v| !after.contains(v)).collect(),
                all: after.is_empty(),
                user: p.user.clone(),
            });
        }
        Ok(())
    })
    .await?;
    // TAXII 2.1 §5.6: success is 200 with no body.
    Ok(StatusCode::OK.into_response())
}

// --- Adding objects (TAXII 2.1 §5.4.2) ---------------------------------------------

/// The request envelope. Object texts are borrowed from the body so that
/// each is stored exactly as received.
#[derive(Deserialize)]
struct InEnvelope<'a> {
    #[serde(borrow)]
    objects: Option<Vec<&'a RawValue>>,
}

async fn add_objects(
    State(st): State<AppState>,
    Path((root, cid)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Caller(p): Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let r = load_root(&st, root.clone()).await?;
    let st2 = st.clone();
    let (p2, root2, cid2, uri2) = (p.clone(), root.clone(), cid.clone(), uri.clone());
    let (coll, _) = blocking(move || {
        st2.gate
            .collection(&p2, &root2, &cid2, Action::Write)
            .map_err(|d| {
                let t = Target {
                    collection: Some(&cid2),
                    path: uri2.path(),
                    query: None,
                };
                refuse(&st2, &p2, &root2, &t, d)
            })
    })
    .await?;
    if !is_taxii_body(&headers) {
        return Err(
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type")
                .with_description(format!("Send the envelope as `{TAXII_21}`.")),
        );
    }
    let limit = usize::try_from(r.max_content_length).unwrap_or(usize::MAX);
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request too large").with_description(format!(
            "This API root takes bodies of at most {limit} bytes (max_content_length)."
        ))
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > r.max_content_length
    {
        return Err(too_large());
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let status = blocking(move || {
        let store = &st.store;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))?;
        let env: InEnvelope<'_> = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("the body is not a TAXII envelope: {e}")))?;
        let objects = env.objects.ok_or_else(|| ApiError::bad_request("the envelope has no `objects` list"))?;
        let request_timestamp = jiff::Timestamp::now().as_microsecond();
        let mut failures = Vec::new();
        let mut ready = Vec::with_capacity(objects.len());
        let (source_org, source_user) = st.gate.source_of(&p);
        for raw in &objects {
            match ingest::prepare_from(raw.get(), source_org.as_deref(), source_user.as_deref()) {
                Ok(o) => ready.push(o),
                Err(r) => failures.push(StatusDetail { id: r.id, version: r.version, message: Some(r.message) }),
            }
        }
        let make_status = |outcomes: &[anyam_store::PutOutcome]| {
            let mut successes = Vec::with_capacity(ready.len());
            let mut failures = failures.clone();
            for (o, outcome) in ready.iter().zip(outcomes) {
                let version = |added: Micros| o.version.clone().unwrap_or_else(|| fmt_micros(added));
                match *outcome {
                    anyam_store::PutOutcome::Added(m) => {
                        successes.push(StatusDetail { id: o.id.clone(), version: version(m), message: None })
                    }
                    anyam_store::PutOutcome::Unchanged(m) => successes.push(StatusDetail {
                        id: o.id.clone(),
                        version: version(m),
                        // Said only to a caller who may see the stored version.
                        message: sees_stored_version(&st, &p, &root, &cid, o)
                            .then(|| "already stored with identical content".into()),
                    }),
                    anyam_store::PutOutcome::Conflict => failures.push(StatusDetail {
                        id: o.id.clone(),
                        version: o.version.clone().unwrap_or_default(),
                        message: Some(if sees_stored_version(&st, &p, &root, &cid, o) {
                            format!(
                                "{}: version conflict: this id and version are already stored with different content; publish a new version with a later `modified` instead",
                                o.id
                            )
                        } else {
                            // The stored version is invisible to the caller: say
                            // no more than that this one was not taken.
                            format!("{}: not accepted; publish a new version with a later `modified`", o.id)
                        }),
                    }),
                }
            }
            Status {
                id: uuid::Uuid::new_v4().to_string(),
                api_root: root.clone(),
                owner_org: p.org.clone(),
                status: "complete".into(),
                request_timestamp,
                total_count: objects.len() as u64,
                successes,
                failures,
                pendings: Vec::new(),
            }
        };
        // Only a batch stored whole is answered inside its transaction. Any
        // other outcome's message rests on a read, through the policy, of
        // the stored version: done after the commit, not while holding the
        // writer (and a version the same envelope stored shows only then).
        let put = store.put_objects_with_status(
            &coll.id,
            &ready,
            Box::new(|outcomes: &[anyam_store::PutOutcome]| {
                Ok(outcomes
                    .iter()
                    .all(|o| matches!(o, anyam_store::PutOutcome::Added(_)))
                    .then(|| make_status(outcomes)))
            }),
        );
        // Objects stored but not durable are not acknowledged (a 500), yet
        // they are in the collection: they are announced, counted and
        // audited as received like any others, below.
        let (outcomes, status, unsynced) = match put {
            Ok((outcomes, status)) => (outcomes, status, None),
            Err(anyam_store::StoreError::NotDurable { reason, outcomes }) => (outcomes, None, Some(reason)),
            Err(e) => return Err(e.into()),
        };
        let (mut added, mut unchanged, mut conflicts) = (0u64, 0u64, 0u64);
        let mut sightings = Vec::new();
        for (o, outcome) in ready.iter().zip(&outcomes) {
            match outcome {
                anyam_store::PutOutcome::Added(_) => {
                    added += 1;
                    if o.object_type == "sighting" {
                        sightings.push(o);
                    }
                }
                anyam_store::PutOutcome::Unchanged(_) => unchanged += 1,
                anyam_store::PutOutcome::Conflict => conflicts += 1,
            }
        }
        // What is committed is announced at once, whatever happens to the
        // status after.
        if added > 0 {
            st.wrote();
        }
        metrics::counter!("anyam_objects_added_total").increment(added + unchanged);
        metrics::counter!("anyam_objects_rejected_total").increment(failures.len() as u64 + conflicts);
        // The collection as named in the path, like every other entry.
        let t = Target { collection: Some(&cid), path: uri.path(), query: None };
        // What went wrong after the objects were committed, if anything: the
        // client then gets an error, not the status, and the receipt says so.
        let (status, unacknowledged) = match (unsynced, status) {
            (Some(reason), _) => {
                let status = make_status(&outcomes);
                (status, Some(anyam_store::StoreError::NotDurable { reason, outcomes }))
            }
            (None, Some(status)) => (status, None),
            (None, None) => {
                let status = make_status(&outcomes);
                let failed = store.put_status(&status).err();
                (status, failed)
            }
        };
        st.record(|| {
            let stored = status
                .successes
                .iter()
                .map(|d| ObjectRef { id: d.id.clone(), version: d.version.clone() })
                .collect();
            let counts = ReceiptCounts {
                total: status.total_count,
                added: status.successes.len() as u64 - unchanged,
                unchanged,
                rejected: status.failures.len() as u64,
            };
            let sent = if unacknowledged.is_none() { status.id.as_str() } else { "" };
            let mut e = audit::receipt(&p, &t, stored, sent, counts);
            // A fixed text: the entry may be exported to the poster's
            // organization, and the store's error names files of this
            // machine (the error itself goes to the node's log).
            if let Some(why) = &unacknowledged {
                let what = match why {
                    anyam_store::StoreError::NotDurable { .. } => {
                        "the objects were stored but could not be made durable"
                    }
                    _ => "the objects were stored but their status resource could not be",
                };
                e.details["not_acknowledged"] = serde_json::Value::String(what.into());
            }
            e
        });
        if let Some(hook) = &st.on_sighting {
            for o in sightings {
                hook(&crate::StoredSighting { raw: &o.raw, release_label: &o.release_label });
            }
        }
        match unacknowledged {
            Some(e) => Err(e.into()),
            None => Ok(status),
        }
    })
    .await?;
    Ok(taxii_json(
        StatusCode::ACCEPTED,
        serde_json::to_vec(&status_json(&status)).unwrap_or_default(),
    ))
}

/// Whether `p` may see the stored version a post of `o` conflicted with
/// (read through the gate like any release; nothing is released here).
fn sees_stored_version(
    st: &AppState,
    p: &Principal,
    root: &str,
    cid: &str,
    o: &anyam_store::NewObject,
) -> bool {
    let q = Query {
        versions: vec![match o.version_micros {
            Some(vm) => anyam_store::VersionSel::At(vm),
            None => anyam_store::VersionSel::All,
        }],
        limit: 1,
        ..Query::default()
    };
    st.gate
        .versions(p, root, cid, &o.id, &q)
        .is_ok_and(|page| !page.items.is_empty())
}

// --- Search (outside TAXII 2.1, inside an API root) -----------------------------------

/// `GET /{root}/search/?q=words&value=v&type=t1,t2&limit=n`: the newest
/// version of every object the caller may see, in the collections of the
/// root it may read, whose name or description holds every word of `q`
/// (a word ending in `*` is a prefix) and/or that carries the exact
/// observable value `value` (an IP address, domain, URL, hash…, in any
/// letter case; indicators carry the values their pattern compares
/// against). Newest first.
async fn search(
    State(st): State<AppState>,
    Path(root): Path<String>,
    RawQuery(raw): RawQuery,
    uri: Uri,
    Caller(p): Caller,
) -> Result<Response, ApiError> {
    load_root(&st, root.clone()).await?;
    let mut s = anyam_store::Search {
        limit: st.settings.default_limit.min(100),
        ..anyam_store::Search::default()
    };
    let (mut min_reliability, mut min_credibility) = (None, None);
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "q" => s.words.extend(value.split_whitespace().map(str::to_string)),
            "value" if !value.trim().is_empty() => s.value = Some(value.trim().to_string()),
            "value" => {}
            "type" => s.types.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            ),
            "min_reliability" => min_reliability = Some(value.into_owned()),
            "min_credibility" => min_credibility = Some(value.into_owned()),
            "limit" => {
                s.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("limit: `{value}` is not a positive integer"))
                    })?
                    .min(st.settings.max_limit)
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown search parameter `{other}`; use q, value, type, min_reliability, min_credibility and limit"
                )));
            }
        }
    }
    s.rating =
        crate::params::rating_filter(min_reliability.as_deref(), min_credibility.as_deref())?;
    if s.words
        .iter()
        .all(|w| !w.chars().any(char::is_alphanumeric))
        && s.value.is_none()
    {
        return Err(ApiError::bad_request(
            "give `q` (words of a name or description) and/or `value` (an observable value)",
        ));
    }
    let (hits, more) = blocking(move || {
        let t = Target {
            collection: None,
            path: uri.path(),
            query: raw.as_deref(),
        };
        let (hits, more) = st
            .gate
            .search(&p, &root, &s)
            .map_err(|d| refuse(&st, &p, &root, &t, d))?;
        st.record(|| {
            let refs = hits
                .iter()
                .map(|h| ObjectRef {
                    id: h.object.id.clone(),
                    version: h.object.version.clone(),
                })
                .collect();
            audit::release(&p, &t, refs, more)
        });
        Ok((hits, more))
    })
    .await?;
    let mut body = String::with_capacity(hits.iter().map(|h| h.object.raw.len() + 128).sum());
    body.push_str("{\"more\":");
    body.push_str(if more { "true" } else { "false" });
    body.push_str(",\"results\":[");
    for (i, h) in hits.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str("{\"collection\":");
        body.push_str(&Value::String(h.collection.clone()).to_string());
        body.push_str(",\"date_added\":");
        body.push_str(&Value::String(fmt_micros(h.object.date_added)).to_string());
        body.push_str(",\"object\":");
        body.push_str(&h.object.raw);
        body.push('}');
    }
    body.push_str("]}");
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

// --- Outside the TAXII tree ---------------------------------------------------------

fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response {
    let mut resp = (status, serde_json::to_vec(v).unwrap_or_default()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `GET /audit/head`: the latest signed tree head of the audit log, for
/// any authenticated caller (partners keep the heads they saw, which is
/// what makes a later rewrite of the log detectable).
async fn audit_head(
    State(st): State<AppState>,
    Authenticated(_): Authenticated,
) -> Result<Response, ApiError> {
    let Some(a) = st.audit.clone() else {
        return Err(ApiError::not_found());
    };
    let head = blocking(move || a.log().latest_head().map_err(ApiError::internal)).await?;
    match head {
        Some(h) => Ok(json_response(StatusCode::OK, &h)),
        None => Err(ApiError::not_found()
            .with_description("The node has not signed an audit tree head yet.")),
    }
}

/// `POST /audit/head`: sign a head over everything recorded so far, now
/// (node administrators only; each head costs a signature and a commit).
async fn sign_audit_head(
    State(st): State<AppState>,
    uri: Uri,
    Authenticated(p): Authenticated,
) -> Result<Response, ApiError> {
    let Some(a) = st.audit.clone() else {
        return Err(ApiError::not_found());
    };
    let head = blocking(move || {
        if !p.is_admin {
            let t = Target {
                collection: None,
                path: uri.path(),
                query: None,
            };
            st.record(|| {
                audit::denial(
                    &p,
                    &t,
                    "forbidden: only node administrators sign audit heads on demand".into(),
                    403,
                )
            });
            return Err(ApiError::forbidden(
                "Only node administrators sign audit heads on demand.",
            ));
        }
        a.sign_head().map_err(ApiError::internal)
    })
    .await?;
    Ok(json_response(StatusCode::OK, &head))
}

async fn metrics(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(h) => {
            let mut resp = h.render().into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        None => (StatusCode::NOT_FOUND, "metrics are not enabled").into_response(),
    }
}
