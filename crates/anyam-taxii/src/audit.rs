//! What the API releases, receives and refuses, recorded in the node's
//! tamper-evident audit log ([`anyam_audit`]) without making a request wait
//! for the disk.
//!
//! One entry per request, never one per object: a response of a thousand
//! objects is one `release` entry listing a thousand (id, version) pairs,
//! so auditing costs one small row per request. Handlers hand events to an
//! [`Auditor`], which queues them on the log's group-commit
//! [`Appender`](anyam_audit::Appender) and returns at once; a watcher
//! thread waits for each batch's outcome, counts committed entries
//! (`anyam_audit_entries_total`) and makes failures loud: an error log
//! line and `anyam_audit_failures_total`. A failing audit writer never
//! fails or delays a response; a writer that falls far behind (8,192
//! queued entries) slows requests down rather than drop their records,
//! and that wait happens on the blocking pool, not on the async threads.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyam_audit::{
    Appender, AppenderOptions, AuditError, AuditLog, Event, Kind, ObjectRef, Receipt,
    SignedTreeHead,
};
use anyam_policy::Principal;
use serde_json::{Value, json};

/// Most entries waiting for the writer. A release entry of a page of 100
/// objects is about 10 KB, so this bounds the queue near 80 MB should the
/// disk stall, and is still two seconds of a busy node's entries; past it,
/// requests wait for the writer rather than lose their records.
const MAX_QUEUED: usize = 8192;

/// Signs a head over the whole log as it is now. The CLI supplies it, so
/// that the node's private key is read by its identity module only; its
/// error is a message (reading the key, or the log's error).
pub type HeadSigner = Arc<dyn Fn(&AuditLog) -> Result<SignedTreeHead, String> + Send + Sync>;

/// The API's handle on the audit log. Shared by every handler (through
/// [`crate::AppState`]) and by the server's periodic head signer.
pub struct Auditor {
    log: Arc<AuditLog>,
    appender: Appender,
    /// Receipts of queued events, for the watcher. `Option` only so that
    /// `drop` can close the channel before joining the watcher.
    receipts: Option<mpsc::Sender<Receipt>>,
    watcher: Option<JoinHandle<()>>,
    signer: Option<HeadSigner>,
}

impl Auditor {
    /// Start recording into `log`. `signer` makes heads on demand
    /// (`POST /audit/head`, [`Auditor::sign_head`]); without one, only
    /// heads signed elsewhere are served.
    pub fn new(log: Arc<AuditLog>, signer: Option<HeadSigner>) -> Result<Auditor, AuditError> {
        let appender = log.appender(AppenderOptions {
            max_queued: MAX_QUEUED,
            ..AppenderOptions::default()
        })?;
        // Export the counters from the start, at zero, so that a scrape
        // (and a rate) needs no first entry or failure.
        metrics::counter!("anyam_audit_entries_total").increment(0);
        metrics::counter!("anyam_audit_failures_total").increment(0);
        let (tx, rx) = mpsc::channel::<Receipt>();
        let watcher = std::thread::Builder::new()
            .name("anyam-audit-watch".into())
            .spawn(move || watch(&rx))
            .map_err(|e| AuditError::Appender(format!("starting the audit watcher: {e}")))?;
        Ok(Auditor {
            log,
            appender,
            receipts: Some(tx),
            watcher: Some(watcher),
            signer,
        })
    }

    /// Queue an event; returns without waiting for it to be durable. Blocks
    /// only while the appender's queue is full (back-pressure), so call it
    /// from blocking code.
    pub fn record(&self, event: Event) {
        let receipt = self.appender.append(event);
        if let Some(tx) = &self.receipts {
            // The watcher only stops when this `Auditor` is dropped.
            let _ = tx.send(receipt);
        }
    }

    /// Wait until everything queued so far is committed; fails if a batch
    /// failed since the previous flush.
    pub fn flush(&self) -> Result<(), AuditError> {
        self.appender.flush()
    }

    /// The log, for reads (heads, entries, verification).
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Commit what is queued, then sign a head over the whole log. Fails
    /// when no signer was given. Failures count in
    /// `anyam_audit_head_failures_total`.
    pub fn sign_head(&self) -> Result<SignedTreeHead, String> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| "this server signs no audit heads".to_string())?;
        // A batch that failed earlier was already reported by the watcher;
        // the head covers whatever is in the log.
        let _ = self.appender.flush();
        let signed = signer(&self.log);
        if signed.is_err() {
            metrics::counter!("anyam_audit_head_failures_total").increment(1);
        }
        signed
    }

    /// Sign a head if one is due ([`AuditLog::heads_due`]): entries were
    /// added since the latest head and it is at least `interval` old.
    pub fn sign_head_if_due(&self, interval: Duration) -> Result<Option<SignedTreeHead>, String> {
        let due = self
            .log
            .heads_due(interval, jiff::Timestamp::now())
            .map_err(|e| {
                metrics::counter!("anyam_audit_head_failures_total").increment(1);
                e.to_string()
            })?;
        if due {
            self.sign_head().map(Some)
        } else {
            Ok(None)
        }
    }
}

impl Drop for Auditor {
    fn drop(&mut self) {
        // Closing the channel ends the watcher once it has seen every
        // receipt; the appender then commits what is left as it drops.
        self.receipts.take();
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

/// Least time between two error lines about failed audit appends; the
/// failures in between are counted in the next line (and all of them in
/// the metric), so a broken disk cannot flood the log.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

fn watch(rx: &mpsc::Receiver<Receipt>) {
    let mut last_error: Option<Instant> = None;
    let mut unlogged = 0u64;
    // Batches commit in queue order, so waiting on each receipt in turn
    // costs one wait per batch, not per entry.
    while let Ok(receipt) = rx.recv() {
        match receipt.wait() {
            Ok(_) => metrics::counter!("anyam_audit_entries_total").increment(1),
            Err(e) => {
                metrics::counter!("anyam_audit_failures_total").increment(1);
                unlogged += 1;
                if last_error.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL) {
                    tracing::error!(
                        error = %e,
                        lost_entries = unlogged,
                        "audit entries could not be written; the requests were answered regardless"
                    );
                    last_error = Some(Instant::now());
                    unlogged = 0;
                }
            }
        }
    }
}

// --- Entry shapes ---------------------------------------------------------------
//
// The actor of an API entry is the authenticated user; its organization is
// the entry's party, so that `anyam audit export --partner <org>` hands an
// organization exactly the entries about what it received, sent and was
// refused.

/// What a request was about: its collection (as named in the path: the
/// id, or the alias the client used), path and query.
pub(crate) struct Target<'a> {
    pub collection: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

fn base(kind: Kind, p: &Principal, t: &Target<'_>) -> Event {
    let mut e = Event::new(kind, p.user.clone());
    e.parties.push(p.org.clone());
    e.what.collection = t.collection.map(str::to_string);
    e.what.path = Some(t.path.to_string());
    e
}

fn with_query(mut details: Value, t: &Target<'_>) -> Value {
    if let Some(q) = t.query.filter(|q| !q.is_empty()) {
        details["query"] = json!(q);
    }
    details
}

/// A successful read: the (id, version) pairs the response lists.
pub(crate) fn release(p: &Principal, t: &Target<'_>, objects: Vec<ObjectRef>, more: bool) -> Event {
    let mut e = base(Kind::Release, p, t);
    e.what.objects = objects;
    e.why = format!("read grant of organization {}", p.org);
    e.details = with_query(json!({ "more": more }), t);
    e
}

/// A POST: the versions stored (added or already present), the status
/// resource, and how many objects were refused.
pub(crate) fn receipt(
    p: &Principal,
    t: &Target<'_>,
    stored: Vec<ObjectRef>,
    status_id: &str,
    counts: ReceiptCounts,
) -> Event {
    let mut e = base(Kind::Receipt, p, t);
    e.what.objects = stored;
    e.why = format!("write grant of organization {}", p.org);
    e.details = json!({
        "status_id": status_id,
        "total": counts.total,
        "added": counts.added,
        "unchanged": counts.unchanged,
        "rejected": counts.rejected,
    });
    e
}

pub(crate) struct ReceiptCounts {
    pub total: u64,
    pub added: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

/// A DELETE that removed versions of one object.
pub(crate) fn deletion(p: &Principal, t: &Target<'_>, object: &str, removed: u64) -> Event {
    let mut e = base(Kind::Other("deletion".into()), p, t);
    e.why = format!("read and write grants of organization {}", p.org);
    e.details = with_query(json!({ "object": object, "versions_removed": removed }), t);
    e
}

/// A request the release decision refused. `reason` is the real one even
/// where the client was told only "not found".
pub(crate) fn denial(p: &Principal, t: &Target<'_>, reason: String, http_status: u16) -> Event {
    let mut e = base(Kind::Denial, p, t);
    e.why = reason;
    e.details = with_query(json!({ "http_status": http_status }), t);
    e
}

/// A refusal answered "not found" to hide what exists (a collection the
/// caller holds no right on, another organization's status resource).
/// The caller's organization is not a party: an entry that partner exports
/// hand to that organization would tell it the hidden thing exists. Its
/// name stays in the details for the operator.
pub(crate) fn hidden_denial(p: &Principal, t: &Target<'_>, reason: String) -> Event {
    let mut e = denial(p, t, reason, 404);
    e.parties.clear();
    e.details["caller_org"] = json!(p.org);
    e
}

/// A request refused at authentication. No principal exists: the actor is
/// `unauthenticated` and the claimed user name (never the password or
/// token) is kept in the details, with the client address.
pub(crate) fn auth_denial(
    path: &str,
    claimed_user: Option<String>,
    scheme: &str,
    client: &str,
    reason: String,
    http_status: u16,
) -> Event {
    let mut e = Event::new(Kind::Denial, "unauthenticated");
    e.what.path = Some(path.to_string());
    e.why = reason;
    let mut details = json!({ "http_status": http_status, "scheme": scheme, "client": client });
    if let Some(u) = claimed_user {
        details["claimed_user"] = json!(u);
    }
    e.details = details;
    e
}
