//! The Zeek joiner: reunites records Zeek splits across logs (a TLS session and its certificates, a file and its connection) within a bounded delay of log time.
//!
//! Two roles meet here. *Providers* are records others refer to: an
//! `x509.log` certificate (by file id in older Zeek, by fingerprint in
//! newer) and a `conn.log` connection (by `uid`). *Waiters* are records that
//! refer to providers: an `ssl.log` session (`cert_chain_fuids` or
//! `cert_chain_fps`) and a `files.log` file (`conn_uids`).
//!
//! Zeek writes each log when its own record completes, so either side can
//! come first: a connection is logged when it ends, after the files it
//! carried; a certificate is logged during the handshake, before the
//! session. Hence:
//!
//! - a provider is cached (the last `cache` of them, oldest evicted first);
//! - a waiter whose references are all cached is completed at once, else it
//!   waits until log time (the largest `ts` seen so far) passes its own `ts`
//!   plus `delay`, and is then emitted with what it has;
//! - a certificate no session claimed within `delay` is emitted on its own,
//!   once; a connection is always emitted on its own as soon as it is read.
//!
//! Memory is bounded by `cache` providers plus the waiters of one `delay`
//! of log time (and never more than `cache` waiters).

use std::collections::{HashMap, VecDeque};

use serde_json::Value;

use crate::event::Objects;
use crate::zeek::{Conn, Staged};

/// What a provider contributes to a waiter's observation.
pub(crate) enum Frag {
    /// Objects as they are (certificates).
    Values(Vec<Value>),
    /// A connection, built into objects only when claimed.
    Conn(Box<Conn>),
}

impl Frag {
    fn values(&self) -> Vec<Value> {
        match self {
            Frag::Values(v) => v.clone(),
            Frag::Conn(c) => {
                let mut objs = Objects::default();
                c.objects(&mut objs);
                objs.list.into_iter().map(|(_, v)| v).collect()
            }
        }
    }
}

struct Provided {
    frag: Frag,
    /// A certificate not yet claimed by a session: emitted alone on expiry.
    alone: Option<Staged>,
    seq: u64,
}

struct Waiter {
    staged: Staged,
    keys: Vec<String>,
    got: Vec<Option<Vec<Value>>>,
    missing: usize,
}

pub(crate) struct Join {
    delay: i128,
    cap: usize,
    now: i128,
    seq: u64,
    cache: HashMap<String, Provided, foldhash::fast::RandomState>,
    cache_order: VecDeque<(String, u64)>,
    unclaimed: VecDeque<(String, u64, i128)>,
    waiting: VecDeque<Option<Waiter>>,
    /// The id of `waiting[0]`.
    base: u64,
    live: usize,
    index: HashMap<String, Vec<u64>, foldhash::fast::RandomState>,
}

impl Join {
    pub fn new(delay_nanos: i128, cap: usize) -> Join {
        Join {
            delay: delay_nanos,
            cap: cap.max(1),
            now: i128::MIN,
            seq: 0,
            cache: HashMap::default(),
            cache_order: VecDeque::new(),
            unclaimed: VecDeque::new(),
            waiting: VecDeque::new(),
            base: 0,
            live: 0,
            index: HashMap::default(),
        }
    }

    /// Records and cache entries held now.
    pub fn size(&self) -> usize {
        self.cache.len() + self.live
    }

    /// Advances log time to `ts` and emits whatever expired.
    pub fn tick(&mut self, ts: i128, out: &mut Vec<Staged>) {
        if ts > self.now {
            self.now = ts;
        }
        self.expire(out, false);
    }

    fn expire(&mut self, out: &mut Vec<Staged>, all: bool) {
        let limit = self.now.saturating_sub(self.delay);
        while let Some(front) = self.waiting.front() {
            let due = match front {
                None => true,
                Some(w) => all || w.staged.first < limit || self.live > self.cap,
            };
            if !due {
                break;
            }
            if let Some(Some(w)) = self.waiting.pop_front() {
                self.live -= 1;
                self.finish(w, out);
            }
            self.base += 1;
        }
        while let Some((_, _, ts)) = self.unclaimed.front() {
            if !all && *ts >= limit {
                break;
            }
            if let Some((key, seq, _)) = self.unclaimed.pop_front()
                && let Some(p) = self.cache.get_mut(&key)
                && p.seq == seq
                && let Some(s) = p.alone.take()
            {
                out.push(s);
            }
        }
    }

    fn finish(&mut self, mut w: Waiter, out: &mut Vec<Staged>) {
        for (key, got) in w.keys.iter().zip(&w.got) {
            if got.is_none()
                && let Some(ids) = self.index.get_mut(key)
            {
                let id = self.base;
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.index.remove(key);
                }
            }
        }
        for frag in w.got.into_iter().flatten() {
            w.staged.objs.append(&frag);
        }
        out.push(w.staged);
    }

    /// Emits every waiter and unclaimed certificate now (end of input, or a
    /// followed input that has gone quiet).
    pub fn flush(&mut self, out: &mut Vec<Staged>) {
        self.expire(out, true);
    }

    /// Caches a provider. `alone` is the record to emit on its own if no
    /// waiter claims it within the delay (certificates).
    pub fn provide(
        &mut self,
        key: String,
        frag: Frag,
        alone: Option<Staged>,
        out: &mut Vec<Staged>,
    ) {
        self.seq += 1;
        let seq = self.seq;
        let mut claimed = false;
        if let Some(ids) = self.index.remove(&key) {
            let values = frag.values();
            for id in ids {
                let Some(slot) = id
                    .checked_sub(self.base)
                    .and_then(|i| self.waiting.get_mut(i as usize))
                else {
                    continue;
                };
                let Some(w) = slot.as_mut() else { continue };
                for (k, g) in w.keys.iter().zip(w.got.iter_mut()) {
                    if *k == key && g.is_none() {
                        *g = Some(values.clone());
                        w.missing -= 1;
                        claimed = true;
                    }
                }
                if w.missing == 0
                    && let Some(w) = slot.take()
                {
                    self.live -= 1;
                    let mut staged = w.staged;
                    for f in w.got.into_iter().flatten() {
                        staged.objs.append(&f);
                    }
                    out.push(staged);
                }
            }
        }
        let alone = if claimed { None } else { alone };
        if let Some(s) = &alone {
            self.unclaimed.push_back((key.clone(), seq, s.first));
        }
        if let Some(old) = self
            .cache
            .insert(key.clone(), Provided { frag, alone, seq })
            && let Some(s) = old.alone
        {
            out.push(s);
        }
        self.cache_order.push_back((key, seq));
        while self.cache.len() > self.cap {
            let Some((k, s)) = self.cache_order.pop_front() else {
                break;
            };
            if self.cache.get(&k).is_some_and(|p| p.seq == s)
                && let Some(p) = self.cache.remove(&k)
                && let Some(a) = p.alone
            {
                out.push(a);
            }
        }
        // Stale order entries (re-provided keys) would otherwise pile up.
        if self.cache_order.len() > 2 * self.cap {
            let cache = &self.cache;
            self.cache_order
                .retain(|(k, s)| cache.get(k).is_some_and(|p| p.seq == *s));
        }
    }

    /// Takes a waiter: completes it from the cache when it can, else holds it.
    pub fn wait(&mut self, mut staged: Staged, keys: Vec<String>, out: &mut Vec<Staged>) {
        let mut got = Vec::with_capacity(keys.len());
        let mut missing = 0;
        for k in &keys {
            match self.cache.get_mut(k) {
                Some(p) => {
                    // Claimed: the certificate is part of this session now.
                    p.alone = None;
                    got.push(Some(p.frag.values()));
                }
                None => {
                    got.push(None);
                    missing += 1;
                }
            }
        }
        if missing == 0 {
            for f in got.into_iter().flatten() {
                staged.objs.append(&f);
            }
            out.push(staged);
            return;
        }
        let id = self.base + self.waiting.len() as u64;
        for (k, g) in keys.iter().zip(&got) {
            if g.is_none() {
                let ids = self.index.entry(k.clone()).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        self.waiting.push_back(Some(Waiter {
            staged,
            keys,
            got,
            missing,
        }));
        self.live += 1;
        if self.live > self.cap {
            self.expire(out, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    const S: i128 = 1_000_000_000;

    fn staged(t: i128, line: u64) -> Staged {
        Staged {
            first: t * S,
            last: t * S,
            objs: Objects::default(),
            file: Arc::from("f"),
            line,
        }
    }

    fn cert(serial: &str) -> Frag {
        Frag::Values(vec![
            json!({"type": "x509-certificate", "serial_number": serial}),
        ])
    }

    /// (line, number of objects) of what came out.
    fn lines(out: &[Staged]) -> Vec<(u64, usize)> {
        out.iter().map(|s| (s.line, s.objs.list.len())).collect()
    }

    #[test]
    fn either_order_joins_and_claimed_certificates_stay_quiet() {
        // Certificate first, then the session.
        let mut j = Join::new(10 * S, 100);
        let mut out = Vec::new();
        j.tick(S, &mut out);
        j.provide("x:a".into(), cert("01"), Some(staged(1, 1)), &mut out);
        j.wait(staged(1, 2), vec!["x:a".into()], &mut out);
        assert_eq!(lines(&out), [(2, 1)]);
        // Session first, then its two certificates.
        j.wait(staged(2, 3), vec!["x:b".into(), "x:c".into()], &mut out);
        j.provide("x:b".into(), cert("02"), Some(staged(2, 4)), &mut out);
        assert_eq!(out.len(), 1, "still waiting for x:c");
        j.provide("x:c".into(), cert("03"), Some(staged(2, 5)), &mut out);
        assert_eq!(lines(&out), [(2, 1), (3, 2)]);
        // Long after: nothing was left unclaimed.
        j.tick(100 * S, &mut out);
        j.flush(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn waiters_expire_after_the_delay_and_lone_certificates_surface() {
        let mut j = Join::new(10 * S, 100);
        let mut out = Vec::new();
        j.wait(staged(1, 1), vec!["x:missing".into()], &mut out);
        j.provide("x:lone".into(), cert("04"), Some(staged(2, 2)), &mut out);
        j.tick(11 * S, &mut out);
        assert!(out.is_empty(), "within the delay");
        j.tick(12 * S, &mut out);
        assert_eq!(
            lines(&out),
            [(1, 0)],
            "expired: older than log time minus the delay"
        );
        j.tick(13 * S, &mut out);
        assert_eq!(lines(&out), [(1, 0), (2, 0)]);
        assert_eq!(
            j.size(),
            1,
            "the certificate stays cached for later sessions"
        );
        j.wait(staged(13, 3), vec!["x:lone".into()], &mut out);
        assert_eq!(lines(&out)[2], (3, 1));
    }

    #[test]
    fn state_is_bounded_by_the_cache_size() {
        let mut j = Join::new(1_000 * S, 3);
        let mut out = Vec::new();
        for i in 0..10u64 {
            j.provide(format!("c:{i}"), cert("05"), None, &mut out);
            j.wait(staged(1, i), vec![format!("x:never{i}")], &mut out);
            assert!(j.size() <= 6, "{}", j.size());
        }
        assert_eq!(out.len(), 7, "the oldest waiters were let go");
        j.flush(&mut out);
        assert_eq!(out.len(), 10);
    }
}
