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

/// Least time between two commits of the log under load (see
/// `AppenderOptions::linger`): a node answering thousands of requests a
/// second commits their entries in a few hundred batches, not thousands.
/// No response waits for its entry's commit.
const LINGER: std::time::Duration = std::time::Duration::from_millis(4);

/// Signs a head over the whole log as it is now. The CLI supplies it, so
/// that the node's private key is read by its identity module only; its
/// error is a message (reading the key, or the log's error).
pub type HeadSigner = Arc<dyn Fn(&AuditLog) -> Result<SignedTreeHead, String> + Send + Sync>;

/// The API's handle on the audit log. Shared by every handler (through
/// [`crate::AppState`]) and by the server's periodic head signer.
pub struct Auditor {
    log: Arc<AuditLog>,
    appender: Appender,
    /// Authentication refusals beyond the first few of each window,
    /// counted rather than recorded one by one.
    auth: std::sync::Mutex<AuthDenials>,
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
            linger: LINGER,
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
            auth: std::sync::Mutex::new(AuthDenials::new()),
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

    /// Record a refusal at authentication. Anyone can cause these at no
    /// cost, from any number of addresses, so they must not grow the log
    /// at the rate an attacker chooses: in each window of
    /// [`AUTH_WINDOW`], the first [`AUTH_EACH`] are recorded one by one;
    /// the rest are counted per (client, scheme, claimed user, reason),
    /// at most [`AUTH_KEYS`] of those plus one count for everything else,
    /// and recorded as summary entries when the window closes
    /// ([`Auditor::flush_auth_denials`], also at the next refusal). Nothing
    /// is dropped uncounted.
    pub fn record_auth_denial(&self, key: AuthKey, make: impl FnOnce() -> Event) {
        let (closed, individual) = {
            let mut a = match self.auth.lock() {
                Ok(a) => a,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            let closed = if now.duration_since(a.started) >= AUTH_WINDOW {
                a.close(now)
            } else {
                Vec::new()
            };
            (closed, a.count(key))
        };
        for e in closed {
            self.record(e);
        }
        if individual {
            self.record(make());
        }
    }

    /// Record the summaries of the current window of authentication
    /// refusals if it is over (`force`: now, whatever its age; at
    /// shutdown).
    pub fn flush_auth_denials(&self, force: bool) {
        let closed = {
            let mut a = match self.auth.lock() {
                Ok(a) => a,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            if force || now.duration_since(a.started) >= AUTH_WINDOW {
                a.close(now)
            } else {
                Vec::new()
            }
        };
        for e in closed {
            self.record(e);
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

/// Length of a window of authentication refusals.
pub const AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Authentication refusals recorded one by one in each window.
pub const AUTH_EACH: u32 = 50;
/// Distinct (client, scheme, claimed user, reason) counted per window;
/// refusals beyond are counted together.
pub const AUTH_KEYS: usize = 200;

/// What tells authentication refusals apart in a summary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuthKey {
    pub client: String,
    pub scheme: &'static str,
    pub claimed_user: Option<String>,
    pub reason: String,
    pub http_status: u16,
}

/// The current window of authentication refusals.
struct AuthDenials {
    started: Instant,
    started_at: jiff::Timestamp,
    recorded: u32,
    counts: std::collections::BTreeMap<AuthKey, u64>,
    others: u64,
}

impl AuthDenials {
    fn new() -> AuthDenials {
        AuthDenials {
            started: Instant::now(),
            started_at: jiff::Timestamp::now(),
            recorded: 0,
            counts: std::collections::BTreeMap::new(),
            others: 0,
        }
    }

    /// Count one refusal; true when it is to be recorded on its own.
    fn count(&mut self, key: AuthKey) -> bool {
        if self.recorded < AUTH_EACH {
            self.recorded += 1;
            return true;
        }
        if let Some(n) = self.counts.get_mut(&key) {
            *n += 1;
        } else if self.counts.len() < AUTH_KEYS {
            self.counts.insert(key, 1);
        } else {
            self.others += 1;
        }
        false
    }

    /// End the window: its summary entries, and a new window from `now`.
    fn close(&mut self, now: Instant) -> Vec<Event> {
        let until = jiff::Timestamp::now();
        let from = self.started_at.to_string();
        let to = until.to_string();
        let mut out = Vec::new();
        for (k, n) in std::mem::take(&mut self.counts) {
            let mut e = Event::new(Kind::Denial, "unauthenticated");
            e.why = format!("{} ({n} times in this window, summarized)", k.reason);
            let mut d = json!({
                "http_status": k.http_status, "scheme": k.scheme, "client": k.client,
                "count": n.to_string(), "window_from": from, "window_to": to,
            });
            if let Some(u) = k.claimed_user {
                d["claimed_user"] = json!(u);
            }
            e.details = d;
            out.push(e);
        }
        if self.others > 0 {
            let mut e = Event::new(Kind::Denial, "unauthenticated");
            e.why = format!(
                "authentication refused {} more times from further clients or names (summarized)",
                self.others
            );
            e.details = json!({
                "count": self.others.to_string(), "window_from": from, "window_to": to,
            });
            out.push(e);
        }
        self.started = now;
        self.started_at = until;
        self.recorded = 0;
        self.others = 0;
        out
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> AuthKey {
        AuthKey {
            client: format!("192.0.2.{}", n % 250),
            scheme: "basic",
            claimed_user: Some(format!("user{n}")),
            reason: "authentication failed".into(),
            http_status: 401,
        }
    }

    #[test]
    fn a_window_of_refusals_is_bounded_and_counts_everything() {
        let mut w = AuthDenials::new();
        let each = AUTH_EACH as usize;
        let individual = (0..each + AUTH_KEYS + 75)
            .filter(|n| w.count(key(*n)))
            .count();
        assert_eq!(individual, each);
        // The same key again is counted on its existing line.
        assert!(!w.count(key(each)));
        let summaries = w.close(Instant::now());
        assert_eq!(summaries.len(), AUTH_KEYS + 1);
        let counted: u64 = summaries
            .iter()
            .map(|e| {
                e.details["count"]
                    .as_str()
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(counted, (AUTH_KEYS + 75 + 1) as u64);
        assert!(summaries[AUTH_KEYS].why.contains("75 more times"));
        // The next window starts empty.
        assert!(w.count(key(0)));
        assert!(w.close(Instant::now()).is_empty());
    }
}
