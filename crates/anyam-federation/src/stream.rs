//! The live stream: server-sent events (the WHATWG HTML "server-sent
//! events" format, `text/event-stream`) carrying signed pages to one
//! partner as soon as they are releasable to it.
//!
//! # Events
//!
//! ```text
//! id: <cursor map>
//! event: page
//! data: {"collection":{"id":"…","title":"…"},"envelope":{ …a signed page… }}
//! ```
//!
//! The event id is the cursor map after the event: for every collection
//! streamed so far, the `date_added` (microseconds) of the last object
//! sent, as JSON `{"<collection id>": <micros>, …}` in unpadded base64url.
//! A client resumes by sending its own cursors the same way in
//! `Last-Event-ID`; collections it does not name start from the
//! beginning. A receiver's cursors move only when a page is stored, so
//! resuming from them loses nothing, and storing is idempotent on (id,
//! version, digest), so nothing is stored twice.
//!
//! The server sends, for each collection in the partner's scope in turn,
//! pages of up to [`STREAM_PAGE`] objects until it has caught up, then
//! waits until something is stored on the node (or a second has passed,
//! for writes by other processes such as `anyam import`) and looks again.
//! An idle stream carries a comment every 15 seconds.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use anyam_policy::Path as ReleasePath;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::page::{self, PageRequest};
use crate::server::{PartnerApi, blocking, caller, record_release};
use crate::tls::Peer;

/// Largest page on the stream.
pub const STREAM_PAGE: usize = 500;
/// How long the stream waits for a write before looking again.
const POLL: Duration = Duration::from_secs(1);

/// Live streams one partner may hold open at once; more are answered
/// 429 (a partner needs one; a few allow reconnects that overlap).
pub const MAX_STREAMS_PER_PARTNER: usize = 4;

/// Counts of open live streams per partner.
#[derive(Debug, Default)]
pub struct StreamSlots(std::sync::Mutex<BTreeMap<String, usize>>);

/// One open stream; frees its slot when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    slots: std::sync::Arc<StreamSlots>,
    partner: String,
}

impl StreamSlots {
    /// A slot for `partner`, if it holds fewer than the maximum.
    pub fn take(self: &std::sync::Arc<Self>, partner: &str) -> Option<StreamSlot> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(partner.to_string()).or_insert(0);
        if *n >= MAX_STREAMS_PER_PARTNER {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            slots: self.clone(),
            partner: partner.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut m = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.partner) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Cursor per collection id, in microseconds.
pub type Cursors = BTreeMap<String, i64>;

/// Encode cursors as an event id.
pub fn encode_cursors(c: &Cursors) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

/// Decode an event id; `None` if it is not one of ours.
pub fn decode_cursors(s: &str) -> Option<Cursors> {
    let bytes = URL_SAFE_NO_PAD.decode(s.trim()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The collection an event is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventCollection {
    pub id: String,
    pub title: String,
}

/// The data of a `page` event.
#[derive(Debug, Serialize, Deserialize)]
pub struct PageEvent {
    pub collection: EventCollection,
    pub envelope: Box<RawValue>,
}

struct Streaming {
    api: PartnerApi,
    peer: Peer,
    cursors: Cursors,
    _slot: StreamSlot,
}

pub(crate) async fn serve_stream(
    State(api): State<PartnerApi>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let partner = match caller(&api, &peer) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let Some(slot) = api.streams.take(&partner) else {
        return crate::server::error(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "Too many live streams",
            Some(format!(
                "at most {MAX_STREAMS_PER_PARTNER} live streams per partner at once"
            )),
        );
    };
    let cursors = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(decode_cursors)
        .unwrap_or_default();
    let state = Streaming {
        api,
        peer,
        cursors,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(state, |mut s| async move {
        next_event(&mut s)
            .await
            .map(|e| (Ok::<Event, Infallible>(e), s))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The next page for the partner, waiting for one; `None` ends the
/// stream (the partner is no longer accepted).
async fn next_event(s: &mut Streaming) -> Option<Event> {
    let mut changes = s.api.changes.clone();
    loop {
        let partner = caller(&s.api, &s.peer).ok()?;
        changes.borrow_and_update();
        let api = s.api.clone();
        let cursors = s.cursors.clone();
        let found = blocking(move || -> Result<Option<_>, crate::FederationError> {
            let list = api
                .gate
                .partner_collections(&partner, &api.api_root)
                .map_err(|e| crate::FederationError::Policy(e.to_string()))?;
            let key = (api.key)().map_err(crate::FederationError::Policy)?;
            for c in list {
                let built = page::build(
                    &api.gate,
                    &api.db,
                    &key,
                    &PageRequest {
                        partner: &partner,
                        collection: &c.id,
                        added_after: cursors.get(&c.id).copied(),
                        limit: STREAM_PAGE,
                        via: ReleasePath::Stream,
                    },
                )?;
                if !built.released.is_empty() {
                    return Ok(Some((c, built, partner)));
                }
            }
            Ok(None)
        })
        .await
        .ok()?;
        match found {
            Ok(Some((c, built, partner))) => {
                if let Some(last) = built.last {
                    s.cursors.insert(c.id.clone(), last);
                }
                record_release(&s.api, &partner, &c.id, &built, "stream");
                let envelope = serde_json::value::to_raw_value(&built.envelope).ok()?;
                let data = serde_json::to_string(&PageEvent {
                    collection: EventCollection {
                        id: c.id,
                        title: c.title,
                    },
                    envelope,
                })
                .ok()?;
                return Some(
                    Event::default()
                        .id(encode_cursors(&s.cursors))
                        .event("page")
                        .data(data),
                );
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "building a stream page failed; retrying");
            }
        }
        let _ = tokio::time::timeout(POLL, changes.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_partner_holds_a_bounded_number_of_streams() {
        let slots = Arc::new(StreamSlots::default());
        let mut held: Vec<StreamSlot> = (0..MAX_STREAMS_PER_PARTNER)
            .map(|_| slots.take("p").expect("a free slot"))
            .collect();
        assert!(slots.take("p").is_none());
        assert!(slots.take("q").is_some(), "other partners are not affected");
        held.pop();
        assert!(slots.take("p").is_some(), "a closed stream frees its slot");
    }

    #[test]
    fn cursors_round_trip_as_event_ids() {
        let mut c = Cursors::new();
        c.insert(
            "0b5ef5d4-1a53-4c36-8f0f-2d9c1c3c5a01".into(),
            1_700_000_000_123_456,
        );
        let id = encode_cursors(&c);
        assert!(!id.contains('\n') && !id.contains(':'));
        assert_eq!(decode_cursors(&id), Some(c));
        assert_eq!(decode_cursors("not ours"), None);
    }
}
