//! Handler tests: the real router over a real SQLite store and a real audit
//! log in a temporary directory, driven in process (no socket). The
//! end-to-end suite drives the real binary over HTTP with the OASIS clients.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyam_audit::{AuditLog, AuditOptions, Entry, Kind, ObjectRef, TrustedKeys};
use anyam_store::{
    Access, ApiRoot, Collection, Grant, Organization, SqliteOptions, SqliteStore, Store, Token,
    TokenScope, User,
};
use anyam_taxii::audit::{Auditor, HeadSigner};
use anyam_taxii::{ApiSettings, AppState, app, auth};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const TAXII: &str = "application/taxii+json;version=2.1";
const COLL: &str = "9b3e3e0c-5d57-4a0e-8f29-3a2b1f6c0001";
const WO_COLL: &str = "9b3e3e0c-5d57-4a0e-8f29-3a2b1f6c0002";
const HIDDEN_COLL: &str = "9b3e3e0c-5d57-4a0e-8f29-3a2b1f6c0003";

struct Node {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    audit: Arc<Auditor>,
    router: axum::Router,
}

/// The key the test node signs audit heads with.
fn head_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

/// One Prometheus recorder for the whole test binary, so that the audit
/// counters can be read back (they are global, like the server's).
fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap()
    })
}

/// A counter's value in the rendered metrics.
fn counter(name: &str) -> f64 {
    metrics()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn user(store: &dyn Store, name: &str, org: &str, password: &str) {
    store
        .create_user(&User {
            name: name.into(),
            org: org.into(),
            password_phc: Some(auth::hash_password(password).unwrap()),
            is_admin: false,
            generation: 0,
            disabled: false,
        })
        .unwrap();
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap());
    store
        .create_api_root(&ApiRoot {
            name: "r".into(),
            title: "Root".into(),
            description: None,
            max_content_length: 100_000,
        })
        .unwrap();
    for (id, title) in [
        (COLL, "main"),
        (WO_COLL, "drop box"),
        (HIDDEN_COLL, "hidden"),
    ] {
        store
            .create_collection(&Collection {
                id: id.into(),
                api_root: "r".into(),
                title: title.into(),
                description: None,
                alias: None,
            })
            .unwrap();
    }
    for org in ["host", "sensor"] {
        store
            .create_org(&Organization {
                name: org.into(),
                title: org.into(),
            })
            .unwrap();
    }
    user(&*store, "alice", "host", "alice-pw");
    user(&*store, "bob", "sensor", "bob-pw");
    let rw = Access {
        read: true,
        write: true,
    };
    store
        .set_grant(&Grant {
            org: "host".into(),
            collection: COLL.into(),
            access: rw,
        })
        .unwrap();
    store
        .set_grant(&Grant {
            org: "host".into(),
            collection: WO_COLL.into(),
            access: Access {
                read: false,
                write: true,
            },
        })
        .unwrap();
    store
        .set_grant(&Grant {
            org: "sensor".into(),
            collection: COLL.into(),
            access: Access {
                read: false,
                write: true,
            },
        })
        .unwrap();
    let settings = ApiSettings {
        default_api_root: Some("r".into()),
        default_limit: 50,
        max_limit: 100,
        ..ApiSettings::default()
    };
    let log =
        Arc::new(AuditLog::open(&dir.path().join("audit.db"), AuditOptions::default()).unwrap());
    let signer: HeadSigner = Arc::new(|log: &AuditLog| {
        log.sign_head(&head_key(), jiff::Timestamp::now())
            .map_err(|e| e.to_string())
    });
    let audit = Arc::new(Auditor::new(log, Some(signer)).unwrap());
    metrics();
    let gate = anyam_policy::Gate::new(
        store.clone(),
        anyam_policy::PolicyConfig {
            node_id: "0".repeat(64),
            host_org: "host".into(),
            unmarked: anyam_trust::Tlp::AmberStrict,
        },
        Arc::new(anyam_policy::NoAgreements),
    );
    let router = app(AppState::new(store.clone(), gate, settings, None).with_audit(audit.clone()));
    Node {
        dir,
        store,
        audit,
        router,
    }
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Node {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        authz: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, TAXII);
        if let Some(a) = authz {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = match body {
            Some((ct, bytes)) => req
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(bytes))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// The audit entries from sequence number `from` on, once everything
    /// queued so far is committed.
    fn entries(&self, from: u64) -> Vec<Entry> {
        self.audit.flush().unwrap();
        self.audit.log().entries(from..u64::MAX / 2).unwrap()
    }

    fn audit_size(&self) -> u64 {
        self.audit.flush().unwrap();
        self.audit.log().size().unwrap()
    }

    async fn get(&self, uri: &str) -> Resp {
        self.call(Method::GET, uri, Some(&basic("alice", "alice-pw")), None)
            .await
    }

    async fn post_objects(&self, who: &str, objects: Vec<Value>) -> Resp {
        let body = serde_json::to_vec(&json!({ "objects": objects })).unwrap();
        self.call(
            Method::POST,
            &format!("/r/collections/{COLL}/objects/"),
            Some(who),
            Some((TAXII, body)),
        )
        .await
    }
}

fn indicator(n: u32, modified: &str) -> Value {
    json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": format!("indicator--00000000-0000-4000-8000-{n:012}"),
        "created": "2024-01-01T00:00:00.000Z",
        "modified": modified,
        "name": format!("bad ip {n}"),
        "pattern": format!("[ipv4-addr:value = '198.51.100.{}']", n % 250),
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z",
        "x_custom": { "kept": [1, 2, 3] }
    })
}

fn assert_taxii_error(r: &Resp, status: u16) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], TAXII);
    assert_eq!(
        r.body["http_status"],
        status.to_string(),
        "body: {}",
        r.body
    );
    assert!(r.body["title"].is_string());
}

#[tokio::test]
async fn authentication_failures_are_401_with_challenge() {
    let n = node();
    for authz in [
        None,
        Some(basic("alice", "nope")),
        Some(basic("nobody", "x")),
        Some("Bearer anyam_nope".to_string()),
        Some("Digest x".into()),
    ] {
        let r = n
            .call(Method::GET, "/taxii2/", authz.as_deref(), None)
            .await;
        assert_taxii_error(&r, 401);
        assert!(r.headers.contains_key(header::WWW_AUTHENTICATE));
    }
}

#[tokio::test]
async fn discovery_root_and_collection_listing_follow_grants() {
    let n = node();
    let d = n.get("/taxii2/").await;
    assert_eq!(d.status, 200);
    assert_eq!(d.headers[header::CONTENT_TYPE], TAXII);
    assert_eq!(d.body["default"], "http://localhost/r/");
    let r = n.get("/r/").await;
    assert_eq!(r.body["versions"], json!([TAXII]));
    assert_eq!(r.body["max_content_length"], 100_000);

    let list = n.get("/r/collections/").await;
    let cols = list.body["collections"].as_array().unwrap();
    let ids: Vec<&str> = cols.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [COLL, WO_COLL],
        "the collection without a grant is not listed"
    );
    assert_eq!(cols[1]["can_read"], false);
    assert_eq!(cols[1]["can_write"], true);

    // No grant: indistinguishable from a collection that does not exist.
    let hidden = n.get(&format!("/r/collections/{HIDDEN_COLL}/")).await;
    let missing = n
        .get("/r/collections/00000000-0000-4000-8000-000000000000/")
        .await;
    assert_taxii_error(&hidden, 404);
    assert_eq!(hidden.body, missing.body);
    // Write-only: listed, but reading is forbidden.
    assert_eq!(
        n.get(&format!("/r/collections/{WO_COLL}/")).await.status,
        200
    );
    assert_taxii_error(
        &n.get(&format!("/r/collections/{WO_COLL}/objects/")).await,
        403,
    );
    assert_taxii_error(&n.get("/nope/").await, 404);
}

#[tokio::test]
async fn post_then_read_back_exactly() {
    let n = node();
    let objs: Vec<Value> = (1..=3)
        .map(|i| indicator(i, "2024-01-02T00:00:00.000Z"))
        .collect();
    let r = n
        .post_objects(&basic("alice", "alice-pw"), objs.clone())
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "complete");
    assert_eq!(r.body["success_count"], 3);
    assert_eq!(r.body["failure_count"], 0);
    let status_id = r.body["id"].as_str().unwrap().to_string();

    let got = n.get(&format!("/r/collections/{COLL}/objects/")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["objects"], json!(objs));
    assert_eq!(got.body["more"], false);
    assert!(got.headers.contains_key("x-taxii-date-added-first"));
    assert!(got.headers.contains_key("x-taxii-date-added-last"));

    let one = n
        .get(&format!(
            "/r/collections/{COLL}/objects/{}/",
            objs[1]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(one.body["objects"], json!([objs[1]]));

    let st = n.get(&format!("/r/status/{status_id}/")).await;
    assert_eq!(st.body["total_count"], 3);
    // Another organization cannot see the status resource.
    let other = n
        .call(
            Method::GET,
            &format!("/r/status/{status_id}/"),
            Some(&basic("bob", "bob-pw")),
            None,
        )
        .await;
    assert_taxii_error(&other, 404);
}

#[tokio::test]
async fn invalid_objects_fail_alone_and_conflicts_are_reported() {
    let n = node();
    let good = indicator(1, "2024-01-02T00:00:00.000Z");
    let mut bad_pattern = indicator(2, "2024-01-02T00:00:00.000Z");
    bad_pattern["pattern"] = json!("[ipv4-addr:value = '1.2.3.4'");
    let mut bad_time = indicator(3, "2024-01-02T00:00:00.000Z");
    bad_time["modified"] = json!("2023-01-01T00:00:00.000Z");
    let first = n
        .post_objects(
            &basic("alice", "alice-pw"),
            vec![good.clone(), bad_pattern, bad_time],
        )
        .await;
    assert_eq!(first.status, 202);
    assert_eq!(first.body["success_count"], 1);
    assert_eq!(first.body["failure_count"], 2);
    let failures = first.body["failures"].as_array().unwrap();
    assert!(
        failures[0]["message"].as_str().unwrap().contains("pattern"),
        "{}",
        failures[0]
    );
    assert!(
        failures[1]["message"]
            .as_str()
            .unwrap()
            .contains("modified"),
        "{}",
        failures[1]
    );
    for id in [
        "indicator--00000000-0000-4000-8000-000000000002",
        "indicator--00000000-0000-4000-8000-000000000003",
    ] {
        assert_taxii_error(
            &n.get(&format!("/r/collections/{COLL}/objects/{id}/")).await,
            404,
        );
    }

    // Same object again: a success. Same id and version, other content: a conflict.
    let again = n
        .post_objects(&basic("alice", "alice-pw"), vec![good.clone()])
        .await;
    assert_eq!(again.body["success_count"], 1);
    let mut changed = good.clone();
    changed["name"] = json!("changed");
    let conflict = n
        .post_objects(&basic("alice", "alice-pw"), vec![changed])
        .await;
    assert_eq!(conflict.body["failure_count"], 1);
    assert!(
        conflict.body["failures"][0]["message"]
            .as_str()
            .unwrap()
            .contains("conflict")
    );
    let stored = n
        .get(&format!(
            "/r/collections/{COLL}/objects/{}/",
            good["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(stored.body["objects"], json!([good]));

    // The same within one envelope: the second copy meets the first, and
    // the status says so as it would across two envelopes.
    let fresh = indicator(4, "2024-01-02T00:00:00.000Z");
    let mut fresh_changed = fresh.clone();
    fresh_changed["name"] = json!("changed");
    let r = n
        .post_objects(
            &basic("alice", "alice-pw"),
            vec![fresh.clone(), fresh.clone(), fresh_changed],
        )
        .await;
    assert_eq!(r.body["success_count"], 2, "{}", r.body);
    assert_eq!(r.body["successes"][0].get("message"), None, "{}", r.body);
    assert_eq!(
        r.body["successes"][1]["message"],
        "already stored with identical content"
    );
    assert_eq!(r.body["failure_count"], 1);
    assert!(
        r.body["failures"][0]["message"]
            .as_str()
            .unwrap()
            .contains("version conflict"),
        "{}",
        r.body
    );
    // Either way (inside the objects' transaction when all were added,
    // after it otherwise) the status is stored as it was answered.
    for status in [&first.body, &r.body, &conflict.body] {
        let id = status["id"].as_str().unwrap();
        let read = n.get(&format!("/r/status/{id}/")).await;
        assert_eq!(read.status, 200);
        assert_eq!(&read.body, status);
    }
}

#[tokio::test]
async fn bad_requests_are_rejected_whole() {
    let n = node();
    let a = basic("alice", "alice-pw");
    let uri = format!("/r/collections/{COLL}/objects/");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (TAXII, b"{not json".to_vec(), 400),
        (TAXII, b"[1,2]".to_vec(), 400),
        (TAXII, b"{\"foo\": 1}".to_vec(), 400),
        ("application/json", b"{\"objects\": []}".to_vec(), 415),
        (TAXII, vec![b' '; 150_000], 413),
    ];
    for (ct, body, status) in cases {
        let r = n.call(Method::POST, &uri, Some(&a), Some((ct, body))).await;
        assert_taxii_error(&r, status);
    }
    assert_eq!(n.store.count_objects(COLL).unwrap(), 0);

    let mut req = Request::builder()
        .uri("/taxii2/")
        .header(header::ACCEPT, "application/xml");
    req = req.header(header::AUTHORIZATION, &a);
    let resp = n
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 406);

    // A sensor with write-only access can post but not read.
    let r = n
        .post_objects(
            &basic("bob", "bob-pw"),
            vec![indicator(9, "2024-01-02T00:00:00.000Z")],
        )
        .await;
    assert_eq!(r.status, 202);
    let r = n
        .call(Method::GET, &uri, Some(&basic("bob", "bob-pw")), None)
        .await;
    assert_taxii_error(&r, 403);
    for q in [
        "?limit=0",
        "?added_after=soon",
        "?match[version]=newest",
        "?match[colour]=red",
        "?next=garbage",
    ] {
        assert_taxii_error(&n.get(&format!("{uri}{q}")).await, 400);
    }
    assert_taxii_error(&n.call(Method::PUT, &uri, Some(&a), None).await, 405);
}

#[tokio::test]
async fn versions_filters_and_paging() {
    let n = node();
    let a = basic("alice", "alice-pw");
    let versions = [
        "2024-01-02T00:00:00.000Z",
        "2024-01-03T00:00:00.000Z",
        "2024-01-04T00:00:00.000Z",
    ];
    for v in versions {
        n.post_objects(&a, vec![indicator(1, v)]).await;
    }
    let objs: Vec<Value> = (2..=120)
        .map(|i| indicator(i, "2024-01-02T00:00:00.000Z"))
        .collect();
    n.post_objects(&a, objs).await;
    let id = "indicator--00000000-0000-4000-8000-000000000001";
    let base = format!("/r/collections/{COLL}/objects/{id}/");
    let mods = |r: &Resp| -> Vec<String> {
        r.body["objects"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| o["modified"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(mods(&n.get(&base).await), [versions[2]]);
    assert_eq!(
        mods(&n.get(&format!("{base}?match[version]=first")).await),
        [versions[0]]
    );
    assert_eq!(
        mods(&n.get(&format!("{base}?match[version]=all")).await),
        versions
    );
    assert_eq!(
        mods(&n.get(&format!("{base}?match[version]=first,last")).await),
        [versions[0], versions[2]]
    );
    assert_eq!(
        mods(
            &n.get(&format!("{base}?match[version]=2024-01-03T00:00:00Z"))
                .await
        ),
        [versions[1]]
    );
    let vs = n.get(&format!("{base}versions/")).await;
    assert_eq!(vs.body["versions"], json!(versions));

    // Page through everything with limit and next: no gap, no duplicate.
    let mut seen = Vec::new();
    let mut uri = format!("/r/collections/{COLL}/objects/?match[version]=all&limit=7");
    loop {
        let page = n.get(&uri).await;
        for o in page.body["objects"].as_array().unwrap() {
            seen.push((
                o["id"].as_str().unwrap().to_string(),
                o["modified"].as_str().unwrap().to_string(),
            ));
        }
        if page.body["more"] == true {
            uri = format!(
                "/r/collections/{COLL}/objects/?match[version]=all&limit=7&next={}",
                page.body["next"].as_str().unwrap()
            );
        } else {
            break;
        }
    }
    assert_eq!(seen.len(), 3 + 119);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len());
    // A limit above the server's maximum is lowered to it.
    let big = n
        .get(&format!("/r/collections/{COLL}/objects/?limit=100000"))
        .await;
    assert_eq!(big.body["objects"].as_array().unwrap().len(), 100);
    assert_eq!(big.body["more"], true);

    let m = n
        .get(&format!(
            "/r/collections/{COLL}/manifest/?match[type]=indicator&limit=2"
        ))
        .await;
    let first = &m.body["objects"][0];
    assert_eq!(first["media_type"], "application/stix+json;version=2.1");
    assert!(first["date_added"].as_str().unwrap().ends_with('Z'));

    // DELETE without a version filter removes every version.
    let del = n.call(Method::DELETE, &base, Some(&a), None).await;
    assert_eq!(del.status, 200);
    assert_taxii_error(&n.get(&base).await, 404);
}

#[tokio::test]
async fn tokens_scopes_revocation_and_password_change_take_effect_at_once() {
    let n = node();
    let (secret, sha256) = auth::new_token();
    n.store
        .create_token(&Token {
            id: "t1".into(),
            user: "alice".into(),
            sha256,
            label: String::new(),
            created: 0,
            expires: None,
            scope: TokenScope::ReadOnly,
            revoked: false,
        })
        .unwrap();
    let bearer = format!("Bearer {secret}");
    let r = n
        .call(
            Method::GET,
            &format!("/r/collections/{COLL}/objects/"),
            Some(&bearer),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    // Read-only token: the collection is readable but not writable.
    let r = n
        .post_objects(&bearer, vec![indicator(1, "2024-01-02T00:00:00.000Z")])
        .await;
    assert_taxii_error(&r, 403);
    n.store.revoke_token("t1").unwrap();
    assert_taxii_error(
        &n.call(Method::GET, "/taxii2/", Some(&bearer), None).await,
        401,
    );

    assert_eq!(n.get("/taxii2/").await.status, 200);
    n.store
        .set_password("alice", &auth::hash_password("new-pw").unwrap())
        .unwrap();
    assert_taxii_error(&n.get("/taxii2/").await, 401);
    let r = n
        .call(
            Method::GET,
            "/taxii2/",
            Some(&basic("alice", "new-pw")),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn repeated_failures_are_throttled() {
    let n = node();
    let mut last = StatusCode::OK;
    for _ in 0..8 {
        last = n
            .call(
                Method::GET,
                "/taxii2/",
                Some(&basic("alice", "wrong")),
                None,
            )
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // Even the right password is refused while the lockout lasts.
    let r = n
        .call(
            Method::GET,
            "/taxii2/",
            Some(&basic("alice", "alice-pw")),
            None,
        )
        .await;
    assert_taxii_error(&r, 429);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
}

// --- The audit log ------------------------------------------------------------------

const V2: &str = "2024-01-02T00:00:00.000Z";
const V3: &str = "2024-01-03T00:00:00.000Z";

fn ind_id(n: u32) -> String {
    format!("indicator--00000000-0000-4000-8000-{n:012}")
}

fn refs(pairs: &[(String, &str)]) -> Vec<ObjectRef> {
    pairs
        .iter()
        .map(|(id, v)| ObjectRef {
            id: id.clone(),
            version: (*v).to_string(),
        })
        .collect()
}

/// The (id, modified) pairs of the objects a response served.
fn served(r: &Resp) -> Vec<ObjectRef> {
    r.body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| ObjectRef {
            id: o["id"].as_str().unwrap().into(),
            version: o["modified"].as_str().unwrap().into(),
        })
        .collect()
}

/// Objects committed whose write-ahead log could not then be made durable
/// (here: the file removed from under the store): the client gets a 500
/// error message, never a status; the objects are in the collection, and
/// the receipt records them as received but not acknowledged. Nothing
/// more is taken until the store is opened again.
#[tokio::test]
async fn objects_stored_but_not_durable_are_audited_and_not_acknowledged() {
    let n = node();
    let a = basic("alice", "alice-pw");
    assert_eq!(n.post_objects(&a, vec![indicator(1, V2)]).await.status, 202);
    std::fs::remove_file(n.dir.path().join("t.db-wal")).unwrap();
    let r = n.post_objects(&a, vec![indicator(2, V2)]).await;
    assert_taxii_error(&r, 500);
    let e = n.entries(1);
    assert_eq!(e.len(), 1, "{e:?}");
    let rec = &e[0].event;
    assert_eq!(rec.kind, Kind::Receipt);
    assert_eq!(rec.what.objects, refs(&[(ind_id(2), V2)]));
    assert_eq!(rec.details["status_id"], "");
    assert_eq!(rec.details["added"], 1);
    assert_eq!(
        rec.details["not_acknowledged"],
        "the objects were stored but could not be made durable"
    );
    let r = n.post_objects(&a, vec![indicator(3, V2)]).await;
    assert_taxii_error(&r, 500);
    assert_eq!(n.audit_size(), 2, "nothing stored, no receipt");
    let object = |i| format!("/r/collections/{COLL}/objects/{}/", ind_id(i));
    assert_eq!(n.get(&object(2)).await.status, 200);
    assert_eq!(n.get(&object(3)).await.status, 404);
}

#[tokio::test]
async fn audit_records_one_entry_per_release_and_receipt_with_exact_versions() {
    let n = node();
    let a = basic("alice", "alice-pw");
    let objs: Vec<Value> = (1..=3).map(|i| indicator(i, V2)).collect();
    let r = n.post_objects(&a, objs).await;
    assert_eq!(r.status, 202);
    let e = n.entries(0);
    assert_eq!(e.len(), 1, "{e:?}");
    let rec = &e[0].event;
    assert_eq!(rec.kind, Kind::Receipt);
    assert_eq!(rec.actor, "alice");
    assert_eq!(rec.parties, ["host"]);
    assert_eq!(rec.what.collection.as_deref(), Some(COLL));
    assert_eq!(
        rec.what.path.as_deref(),
        Some(&*format!("/r/collections/{COLL}/objects/"))
    );
    assert_eq!(
        rec.what.objects,
        refs(&[(ind_id(1), V2), (ind_id(2), V2), (ind_id(3), V2)])
    );
    assert_eq!(rec.why, "write grant of organization host");
    assert_eq!(
        rec.details,
        json!({"status_id": r.body["id"], "total": 3, "added": 3, "unchanged": 0, "rejected": 0})
    );

    // One already stored, one new version, one invalid: the entry lists
    // the two stored versions and counts the rest.
    let mut bad = indicator(4, V2);
    bad["pattern"] = json!("[nonsense");
    let r = n
        .post_objects(&a, vec![indicator(1, V2), indicator(1, V3), bad])
        .await;
    let e = n.entries(1);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].seq, 1);
    assert_eq!(
        e[0].event.what.objects,
        refs(&[(ind_id(1), V2), (ind_id(1), V3)])
    );
    assert_eq!(
        e[0].event.details,
        json!({"status_id": r.body["id"], "total": 3, "added": 1, "unchanged": 1, "rejected": 1})
    );

    // Each successful read is one release entry listing exactly what the
    // response carried.
    let objects = format!("/r/collections/{COLL}/objects/");
    let all = n.get(&format!("{objects}?match[version]=all")).await;
    assert_eq!(
        served(&all),
        refs(&[
            (ind_id(1), V2),
            (ind_id(2), V2),
            (ind_id(3), V2),
            (ind_id(1), V3)
        ])
    );
    let one = n
        .get(&format!("{objects}{}/?match[version]=all", ind_id(1)))
        .await;
    let versions = n.get(&format!("{objects}{}/versions/", ind_id(1))).await;
    assert_eq!(versions.body["versions"], json!([V2, V3]));
    let manifest = n
        .get(&format!("/r/collections/{COLL}/manifest/?limit=2"))
        .await;
    assert_eq!(manifest.body["more"], true);
    // An absent object in a readable collection releases nothing and
    // refuses nothing: no entry.
    assert_taxii_error(&n.get(&format!("{objects}{}/", ind_id(99))).await, 404);

    let e = n.entries(2);
    assert_eq!(e.len(), 4, "{e:?}");
    for (entry, path) in e.iter().zip([
        objects.clone(),
        format!("{objects}{}/", ind_id(1)),
        format!("{objects}{}/versions/", ind_id(1)),
        format!("/r/collections/{COLL}/manifest/"),
    ]) {
        let ev = &entry.event;
        assert_eq!(ev.kind, Kind::Release);
        assert_eq!(ev.actor, "alice");
        assert_eq!(ev.parties, ["host"]);
        assert_eq!(ev.what.collection.as_deref(), Some(COLL));
        assert_eq!(ev.what.path.as_deref(), Some(&*path));
        assert_eq!(ev.why, "read grant of organization host");
    }
    assert_eq!(e[0].event.what.objects, served(&all));
    assert_eq!(
        e[0].event.details,
        json!({"more": false, "query": "match[version]=all"})
    );
    assert_eq!(e[1].event.what.objects, served(&one));
    assert_eq!(
        e[1].event.what.objects,
        refs(&[(ind_id(1), V2), (ind_id(1), V3)])
    );
    assert_eq!(
        e[2].event.what.objects,
        refs(&[(ind_id(1), V2), (ind_id(1), V3)])
    );
    // The manifest lists the latest version of each object, by date added.
    assert_eq!(
        e[3].event.what.objects,
        refs(&[(ind_id(2), V2), (ind_id(3), V2)])
    );
    assert_eq!(
        e[3].event.details,
        json!({"more": true, "query": "limit=2"})
    );

    // The entries are in the tamper-evident log proper: a signed head over
    // them verifies.
    n.audit.sign_head().unwrap();
    let report = anyam_audit::verify(
        n.audit.log(),
        &TrustedKeys::new([head_key().verifying_key()]),
    )
    .unwrap();
    assert_eq!(report.entries, 6);
}

#[tokio::test]
async fn audit_records_every_refusal_with_its_real_reason() {
    let n = node();
    let a = basic("alice", "alice-pw");
    let bob = basic("bob", "bob-pw");
    let posted = n.post_objects(&a, vec![indicator(1, V2)]).await;
    let status_id = posted.body["id"].as_str().unwrap().to_string();
    let (secret, sha256) = auth::new_token();
    n.store
        .create_token(&Token {
            id: "ro".into(),
            user: "alice".into(),
            sha256,
            label: String::new(),
            created: 0,
            expires: None,
            scope: TokenScope::ReadOnly,
            revoked: false,
        })
        .unwrap();
    let from = n.audit_size();
    let missing = "00000000-0000-4000-8000-000000000000";

    // bob's organization may write COLL but not read it: 403.
    let r = n
        .call(
            Method::GET,
            &format!("/r/collections/{COLL}/objects/"),
            Some(&bob),
            None,
        )
        .await;
    assert_taxii_error(&r, 403);
    // No grant at all on HIDDEN_COLL: the same 404 as a collection that
    // does not exist, but the log says which it was.
    let hidden = n
        .call(
            Method::GET,
            &format!("/r/collections/{HIDDEN_COLL}/manifest/"),
            Some(&bob),
            None,
        )
        .await;
    let absent = n
        .call(
            Method::GET,
            &format!("/r/collections/{missing}/manifest/"),
            Some(&bob),
            None,
        )
        .await;
    assert_taxii_error(&hidden, 404);
    assert_eq!(hidden.body, absent.body);
    let hidden_post = n
        .call(
            Method::POST,
            &format!("/r/collections/{HIDDEN_COLL}/objects/"),
            Some(&bob),
            Some((TAXII, b"{\"objects\": []}".to_vec())),
        )
        .await;
    assert_taxii_error(&hidden_post, 404);
    // Another organization's status resource.
    let st = n
        .call(
            Method::GET,
            &format!("/r/status/{status_id}/"),
            Some(&bob),
            None,
        )
        .await;
    assert_taxii_error(&st, 404);
    // A read-only token writing.
    let r = n
        .post_objects(&format!("Bearer {secret}"), vec![indicator(2, V2)])
        .await;
    assert_taxii_error(&r, 403);
    // Authentication failures, with and without credentials.
    let r = n
        .call(
            Method::GET,
            "/taxii2/",
            Some(&basic("alice", "not-the-password")),
            None,
        )
        .await;
    assert_taxii_error(&r, 401);
    assert_taxii_error(&n.call(Method::GET, "/r/", None, None).await, 401);

    let e = n.entries(from);
    let got: Vec<(String, String, Option<String>, String, Value)> = e
        .iter()
        .map(|x| {
            let ev = &x.event;
            assert_eq!(ev.kind, Kind::Denial, "{x:?}");
            (
                ev.actor.clone(),
                ev.parties.join(","),
                ev.what.collection.clone(),
                ev.why.clone(),
                ev.details["http_status"].clone(),
            )
        })
        .collect();
    let hidden_why = format!(
        "hidden: organization sensor holds no grant on collection {HIDDEN_COLL} (answered 404, as for an absent collection)"
    );
    let want: Vec<(String, String, Option<String>, String, Value)> = vec![
        (
            "bob".into(),
            "sensor".into(),
            Some(COLL.into()),
            "forbidden: the caller may not read this collection".into(),
            json!(403),
        ),
        // A hiding 404 names no party (a partner export must not tell the
        // caller that what it was refused exists).
        (
            "bob".into(),
            String::new(),
            Some(HIDDEN_COLL.into()),
            hidden_why.clone(),
            json!(404),
        ),
        // (the absent collection is no refusal: no entry)
        (
            "bob".into(),
            String::new(),
            Some(HIDDEN_COLL.into()),
            hidden_why,
            json!(404),
        ),
        (
            "bob".into(),
            String::new(),
            None,
            "hidden: status resource of organization host (answered 404, as for an absent one)"
                .into(),
            json!(404),
        ),
        (
            "alice".into(),
            "host".into(),
            Some(COLL.into()),
            "forbidden: the caller may not write to this collection".into(),
            json!(403),
        ),
        (
            "unauthenticated".into(),
            String::new(),
            None,
            "authentication failed: unknown user, wrong password, disabled user, or an unknown, revoked or expired token".into(),
            json!(401),
        ),
        (
            "unauthenticated".into(),
            String::new(),
            None,
            "authentication failed: no credentials".into(),
            json!(401),
        ),
    ];
    assert_eq!(got, want);
    assert_eq!(
        e[3].event.what.path.as_deref(),
        Some(&*format!("/r/status/{status_id}/"))
    );
    assert_eq!(e[1].event.details["caller_org"], "sensor");
    assert_eq!(e[5].event.details["claimed_user"], "alice");
    assert_eq!(e[5].event.details["scheme"], "basic");
    assert_eq!(e[6].event.details["scheme"], "none");
    // Secrets never reach the log.
    let text = serde_json::to_string(&e).unwrap();
    assert!(!text.contains("not-the-password") && !text.contains(&secret));
}

#[tokio::test]
async fn audit_heads_are_served_and_signed_on_demand() {
    let n = node();
    let head_url = "/audit/head";
    // Authentication is required, and there is no head before one is signed.
    assert_taxii_error(&n.call(Method::GET, head_url, None, None).await, 401);
    assert_taxii_error(&n.get(head_url).await, 404);
    // Only node administrators sign on demand; the refusal is recorded.
    let r = n
        .call(
            Method::POST,
            head_url,
            Some(&basic("alice", "alice-pw")),
            None,
        )
        .await;
    assert_taxii_error(&r, 403);
    n.store
        .create_user(&User {
            name: "root".into(),
            org: "host".into(),
            password_phc: Some(auth::hash_password("root-pw").unwrap()),
            is_admin: true,
            generation: 0,
            disabled: false,
        })
        .unwrap();
    let r = n
        .call(
            Method::POST,
            head_url,
            Some(&basic("root", "root-pw")),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
    let size = n.audit_size();
    assert_eq!(size, 2, "two denials (401, 403) and nothing else");
    assert_eq!(r.body["tree_size"], size);
    let head: anyam_audit::SignedTreeHead = serde_json::from_value(r.body.clone()).unwrap();
    head.verify(&TrustedKeys::new([head_key().verifying_key()]))
        .unwrap();
    assert_eq!(head.head.root_hash, n.audit.log().root_at(size).unwrap());
    let latest = n.get(head_url).await;
    assert_eq!(latest.status, 200);
    assert_eq!(latest.body, r.body);
}

#[tokio::test]
async fn a_failing_audit_writer_is_loud_but_never_fails_a_request() {
    let n = node();
    n.post_objects(&basic("alice", "alice-pw"), vec![indicator(1, V2)])
        .await;
    assert_eq!(n.audit_size(), 1);
    let failures = counter("anyam_audit_failures_total");
    // Cut the log behind the writer (as an attacker with the file would):
    // every append from now on fails.
    let raw = rusqlite::Connection::open(n.dir.path().join("audit.db")).unwrap();
    raw.execute_batch("DROP TRIGGER entries_append_only_d; DELETE FROM entries;")
        .unwrap();
    for _ in 0..3 {
        let r = n.get(&format!("/r/collections/{COLL}/objects/")).await;
        assert_eq!(
            r.status, 200,
            "the response does not depend on the audit log"
        );
        assert_eq!(r.body["objects"].as_array().unwrap().len(), 1);
    }
    assert!(n.audit.flush().is_err());
    // The watcher counts each lost entry (and logs an error).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counter("anyam_audit_failures_total") < failures + 3.0 {
        assert!(std::time::Instant::now() < deadline, "no failure counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counter("anyam_audit_entries_total") >= 1.0);
}

#[tokio::test]
async fn authentication_refusals_are_summarized_past_a_bound() {
    use anyam_taxii::audit::AUTH_EACH;
    let n = node();
    let from = n.audit_size();
    let total = AUTH_EACH as usize + 30;
    for _ in 0..total {
        let r = n.call(Method::GET, "/r/", None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // The first ones one by one; the rest are counted, not yet written.
    let e = n.entries(from);
    assert_eq!(e.len(), AUTH_EACH as usize);
    assert!(e.iter().all(|x| x.event.kind == Kind::Denial));
    // Closing the window writes one summary holding the rest.
    n.audit.flush_auth_denials(true);
    let e = n.entries(from);
    assert_eq!(e.len(), AUTH_EACH as usize + 1);
    let summary = &e[AUTH_EACH as usize].event;
    assert_eq!(summary.actor, "unauthenticated");
    assert_eq!(summary.details["count"], "30");
    assert_eq!(summary.details["scheme"], "none");
    assert!(summary.why.contains("no credentials"), "{}", summary.why);
    // A new window records one by one again.
    n.call(Method::GET, "/r/", None, None).await;
    assert_eq!(n.entries(from).len(), AUTH_EACH as usize + 2);
}
