//! The TAXII 2.1 HTTP server of a node.
//!
//! # Design
//!
//! [`app`] builds the whole router from an [`AppState`], so handler tests
//! drive it in process and end-to-end tests bind `127.0.0.1:0`. Every TAXII
//! request is authenticated ([`auth`]), content-negotiated ([`media`]) and
//! answered with TAXII media types; every failure is a TAXII error message
//! ([`error`]).
//!
//! Reads go through [`anyam_policy::Gate`] only: the handlers have no other
//! way to read objects, collections or status resources, so the one release
//! decision applies to every read path. Writes go through [`ingest`], which
//! validates each object on its own before anything is stored.
//!
//! Store calls block (SQLite), so handlers run them on tokio's blocking pool.
//! Object bodies are never re-serialized: the store keeps each object's text
//! as received and the handlers splice those texts into the envelope.
//!
//! # What it is not
//!
//! Not the node's CLI or configuration loader (`anyam-cli`), not storage.

pub mod audit;
pub mod auth;
pub mod error;
pub mod ingest;
pub mod media;
pub mod observables;
pub mod params;
mod routes;
pub mod server;

use std::sync::Arc;

use anyam_policy::Gate;
use anyam_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

pub use routes::app;

/// Settings of the TAXII service that the handlers need.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Discovery `title` (TAXII 2.1 §4.1.1).
    pub title: String,
    pub description: Option<String>,
    pub contact: Option<String>,
    /// The API root named as `default` in discovery.
    pub default_api_root: Option<String>,
    /// Page size when the client gives no `limit`.
    pub default_limit: usize,
    /// Largest page the server returns.
    pub max_limit: usize,
    /// Base URL for absolute links in discovery, e.g. `https://cert.example:8443`.
    /// When unset, it is derived from the request's `Host` and the scheme.
    pub public_url: Option<String>,
    /// Whether the server speaks TLS (for derived URLs).
    pub tls: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            title: "Anyam node".into(),
            description: None,
            contact: None,
            default_api_root: None,
            default_limit: 1000,
            max_limit: 10_000,
            public_url: None,
            tls: false,
        }
    }
}

/// Everything a handler can reach. Each field is here for one reason:
#[derive(Clone)]
pub struct AppState {
    /// Writes (POST, status resources) and authentication lookups. Reads for
    /// release never use it: they go through `gate`.
    pub store: Arc<dyn Store>,
    /// The one door for reads, applying the release decision.
    pub gate: Gate,
    /// Credentials to principals, with throttling and a verified-login cache.
    pub auth: Arc<auth::Authenticator>,
    pub settings: Arc<ApiSettings>,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// The audit log every release, receipt and denial is recorded in.
    /// `None` only in handler tests that do not look at auditing; the
    /// server always has one.
    pub audit: Option<Arc<audit::Auditor>>,
    /// Called after a write stored something (wakes the partner live
    /// streams).
    pub on_write: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Called after a DELETE removed object versions (partners that
    /// received them are sent a signed tombstone).
    pub on_delete: Option<DeleteHook>,
    /// Called with every sighting a POST stored (a sighting of a
    /// partner's indicator goes back to its originator where the agreement
    /// consents).
    pub on_sighting: Option<SightingHook>,
}

/// Called with every sighting a POST stored, once its status is durable.
pub type SightingHook = Arc<dyn Fn(&StoredSighting<'_>) + Send + Sync>;

/// A sighting a POST stored.
#[derive(Debug, Clone, Copy)]
pub struct StoredSighting<'a> {
    /// The object's JSON text, as stored.
    pub raw: &'a str,
    /// The version's release label, as stored (`anyam_policy::Label` key).
    pub release_label: &'a str,
}

/// Called after a DELETE removed object versions.
pub type DeleteHook = Arc<dyn Fn(&Deleted) + Send + Sync>;

/// What a DELETE removed.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The collection's id.
    pub collection: String,
    pub object_id: String,
    /// The versions removed (TAXII version strings).
    pub versions: Vec<String>,
    /// No version of the object is left (as far as the caller could see).
    pub all: bool,
    /// Who deleted.
    pub user: String,
}

impl AppState {
    /// `gate` must read the same store as `store`.
    pub fn new(
        store: Arc<dyn Store>,
        gate: Gate,
        settings: ApiSettings,
        metrics: Option<PrometheusHandle>,
    ) -> AppState {
        AppState {
            gate,
            auth: Arc::new(auth::Authenticator::new(store.clone())),
            store,
            settings: Arc::new(settings),
            metrics,
            audit: None,
            on_write: None,
            on_delete: None,
            on_sighting: None,
        }
    }

    /// Call `hook` after every write that stored something.
    pub fn with_write_hook(mut self, hook: Arc<dyn Fn() + Send + Sync>) -> AppState {
        self.on_write = Some(hook);
        self
    }

    /// Call `hook` after every DELETE that removed something.
    pub fn with_delete_hook(mut self, hook: DeleteHook) -> AppState {
        self.on_delete = Some(hook);
        self
    }

    /// Call `hook` with every sighting a POST stored.
    pub fn with_sighting_hook(mut self, hook: SightingHook) -> AppState {
        self.on_sighting = Some(hook);
        self
    }

    pub(crate) fn wrote(&self) {
        if let Some(h) = &self.on_write {
            h();
        }
    }

    /// Record every release, receipt and denial in `auditor`.
    pub fn with_audit(mut self, auditor: Arc<audit::Auditor>) -> AppState {
        self.audit = Some(auditor);
        self
    }

    /// Queue the event `make` builds, if auditing is on (the event is not
    /// even built otherwise). Never waits for the disk.
    pub(crate) fn record(&self, make: impl FnOnce() -> anyam_audit::Event) {
        if let Some(a) = &self.audit {
            a.record(make());
        }
    }
}

/// Names an API root may not take, because the server uses those paths.
pub const RESERVED_ROOT_NAMES: &[&str] = &["taxii2", "metrics", "healthz", "audit"];
