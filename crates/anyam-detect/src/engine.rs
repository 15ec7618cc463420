//! The engine: indicators loaded into the index, observations matched, stream state kept.

use crate::Error;
use crate::anchor::{Anchor, anchors};
use crate::index::{Index, Target};
use crate::indicator::{Indicator, IndicatorInfo};
use anyam_pattern::{
    Matcher, Number, ObsTime, Observation, ObservationExpr, Pattern, Qualifier, StixVersion,
};
use foldhash::{HashMap, HashSet};
use std::collections::VecDeque;
use std::sync::Arc;

const NANOS: i128 = 1_000_000_000;

/// Which instant an indicator's validity window (`valid_from`,
/// `valid_until`, STIX 2.1 §4.7) is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validity {
    /// The observation's own time span (the default): replaying old logs
    /// hunts with the indicators that were valid then.
    #[default]
    ObservationTime,
    /// The wall clock at the moment of matching.
    WallClock,
    /// Not checked.
    Ignore,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// The longest span of time over which a pattern across several
    /// observations is matched: the window of every pattern without a
    /// top-level `WITHIN`, and the cap of those with a longer one.
    /// Observations older than a pattern's window are forgotten.
    pub max_window_secs: u64,
    /// The most observations kept per multi-observation pattern; the oldest
    /// are dropped first (and counted).
    pub max_buffered_per_pattern: usize,
    /// How many compiled patterns are kept for evaluation; others are
    /// compiled again when next needed.
    pub compile_cache: usize,
    pub validity: Validity,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_window_secs: 3600,
            max_buffered_per_pattern: 10_000,
            compile_cache: 10_000,
            validity: Validity::ObservationTime,
        }
    }
}

/// Counters, for the summary and for benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Indicators loaded.
    pub indicators: usize,
    /// Of which span several observations.
    pub multi_observation: usize,
    /// Distinct (object type, object path) pairs indexed.
    pub paths: usize,
    pub observations: u64,
    /// Brackets the index proposed.
    pub candidates: u64,
    /// Brackets evaluated by the matcher (the rest were exact lookups).
    pub evaluations: u64,
    pub hits: u64,
    /// Evaluations that failed (e.g. a malformed value for a timestamp
    /// comparison, a regex past its backtrack limit); counted as no match.
    pub eval_errors: u64,
    /// Observations currently held for multi-observation patterns.
    pub buffered: usize,
    /// Observations dropped because they fell out of a pattern's window.
    pub evicted_window: u64,
    /// Observations dropped because a pattern held too many.
    pub evicted_cap: u64,
}

/// A match: the indicator and the observations that satisfy its pattern
/// (their tags, as given to [`Engine::observe`]).
#[derive(Debug, Clone)]
pub struct Hit<T> {
    pub indicator: Arc<IndicatorInfo>,
    pub observations: Vec<T>,
}

/// What [`Engine::upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Replaced,
    /// The same version was already loaded.
    Unchanged,
}

struct Entry {
    info: Arc<IndicatorInfo>,
    valid_from: i128,
    valid_until: i128,
    /// `Some(window)` for a pattern over several observations.
    window: Option<i128>,
}

/// A pattern checked and analysed, ready to load.
struct Prepared {
    /// (bracket number, anchor).
    anchors: Vec<(u16, Anchor)>,
    window: Option<i128>,
}

struct Buffered<T> {
    time: ObsTime,
    leaves: Box<[u16]>,
    tag: T,
}

/// The observations a multi-observation pattern holds, with how many match
/// each bracket (kept as they come and go, for [`Matcher::could_bind`]).
struct Stream<T> {
    buf: VecDeque<Buffered<T>>,
    counts: Vec<usize>,
}

impl<T> Default for Stream<T> {
    fn default() -> Stream<T> {
        Stream {
            buf: VecDeque::new(),
            counts: Vec::new(),
        }
    }
}

impl<T> Stream<T> {
    fn count(&mut self, b: &Buffered<T>, up: bool) {
        for &l in b.leaves.iter() {
            let l = usize::from(l);
            if self.counts.len() <= l {
                self.counts.resize(l + 1, 0);
            }
            if up {
                self.counts[l] += 1;
            } else {
                self.counts[l] = self.counts[l].saturating_sub(1);
            }
        }
    }

    fn push(&mut self, b: Buffered<T>) {
        self.count(&b, true);
        self.buf.push_back(b);
    }

    fn pop_front(&mut self) -> Option<Buffered<T>> {
        let b = self.buf.pop_front()?;
        self.count(&b, false);
        Some(b)
    }

    fn remove(&mut self, pos: usize) -> Option<Buffered<T>> {
        let b = self.buf.remove(pos)?;
        self.count(&b, false);
        Some(b)
    }
}

/// The engine: load indicators with [`Engine::upsert`], feed observations in
/// time order with [`Engine::observe`].
pub struct Engine<T> {
    opts: Options,
    index: Index,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_id: HashMap<String, u32>,
    creators: HashSet<Arc<str>>,
    cache: HashMap<u32, Matcher>,
    streams: HashMap<u32, Stream<T>>,
    cands: Vec<Target>,
    stats: Stats,
    since_sweep: u32,
}

/// The brackets of a pattern in the matcher's numbering (the order they
/// appear in the text).
fn leaves<'p>(e: &'p ObservationExpr, out: &mut Vec<&'p anyam_pattern::ComparisonExpr>) {
    match e {
        ObservationExpr::Observation(c) => out.push(c),
        ObservationExpr::Group(inner) | ObservationExpr::Qualified(inner, _) => leaves(inner, out),
        ObservationExpr::And(v) | ObservationExpr::Or(v) | ObservationExpr::FollowedBy(v) => {
            for x in v {
                leaves(x, out);
            }
        }
    }
}

fn strip(e: &ObservationExpr) -> &ObservationExpr {
    match e {
        ObservationExpr::Group(inner) => strip(inner),
        other => other,
    }
}

/// The window of a multi-observation pattern, or `None` for a pattern over
/// one observation.
fn window(p: &Pattern, max: i128) -> Option<i128> {
    match strip(&p.root) {
        ObservationExpr::Observation(_) => None,
        ObservationExpr::Qualified(_, Qualifier::Within(n)) => {
            let secs = match n {
                Number::Int(i) => i128::from(*i) * NANOS,
                Number::Float(f) => (f * 1e9) as i128,
            };
            Some(secs.min(max))
        }
        _ => Some(max),
    }
}

fn wall_clock() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl<T: Clone> Engine<T> {
    pub fn new(opts: Options) -> Engine<T> {
        Engine {
            opts,
            index: Index::default(),
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::default(),
            creators: HashSet::default(),
            cache: HashMap::default(),
            streams: HashMap::default(),
            cands: Vec::new(),
            stats: Stats::default(),
            since_sweep: 0,
        }
    }

    fn max_window(&self) -> i128 {
        i128::from(self.opts.max_window_secs) * NANOS
    }

    /// Parses and compiles a pattern, and derives its anchors per bracket.
    fn prepare(&self, ind: &Indicator) -> Result<Prepared, Error> {
        let bad = |message: String| Error::Pattern {
            id: ind.info.id.clone(),
            message,
        };
        let p = anyam_pattern::parse(&ind.info.pattern, StixVersion::V2_1)
            .map_err(|e| bad(e.to_string()))?;
        Matcher::check(&p, StixVersion::V2_1).map_err(|e| bad(e.to_string()))?;
        let mut ls = Vec::new();
        leaves(&p.root, &mut ls);
        if ls.len() > usize::from(u16::MAX) {
            return Err(bad(format!(
                "pattern has {} observation expressions; at most {} are supported",
                ls.len(),
                u16::MAX
            )));
        }
        let mut out = Vec::new();
        for (i, c) in ls.iter().enumerate() {
            for a in anchors(c, StixVersion::V2_1) {
                out.push((i as u16, a));
            }
        }
        Ok(Prepared {
            anchors: out,
            window: window(&p, self.max_window()),
        })
    }

    /// Loads an indicator, or replaces the loaded version of the same id.
    /// A pattern that does not parse or compile is refused (the loaded
    /// version, if any, stays).
    pub fn upsert(&mut self, mut ind: Indicator) -> Result<Change, Error> {
        if let Some(&slot) = self.by_id.get(&ind.info.id)
            && let Some(e) = &self.slots[slot as usize]
            && e.info.modified == ind.info.modified
            && e.info.pattern == ind.info.pattern
        {
            return Ok(Change::Unchanged);
        }
        let Prepared { anchors, window } = self.prepare(&ind)?;
        let replaced = self.remove(&ind.info.id);
        if let Some(c) = ind.info.created_by_ref.take() {
            let interned = match self.creators.get(&c) {
                Some(x) => x.clone(),
                None => {
                    self.creators.insert(c.clone());
                    c
                }
            };
            ind.info.created_by_ref = Some(interned);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).map_err(|_| Error::Capacity)?
            }
        };
        for (leaf, a) in &anchors {
            self.index.add(a, slot, *leaf);
        }
        // Candidates are compiled on demand into a bounded cache, which
        // keeps memory per indicator small and loading fast.
        self.by_id.insert(ind.info.id.clone(), slot);
        if window.is_some() {
            self.stats.multi_observation += 1;
        }
        self.slots[slot as usize] = Some(Entry {
            info: Arc::new(ind.info),
            valid_from: ind.valid_from.unwrap_or(i128::MIN),
            valid_until: ind.valid_until.unwrap_or(i128::MAX),
            window,
        });
        self.stats.indicators += 1;
        Ok(if replaced {
            Change::Replaced
        } else {
            Change::Added
        })
    }

    /// Unloads an indicator (revoked, deleted, or replaced); its stream
    /// state goes with it. Returns whether it was loaded.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(slot) = self.by_id.remove(id) else {
            return false;
        };
        let Some(entry) = self.slots[slot as usize].take() else {
            return false;
        };
        // The anchors are derived again rather than stored: the derivation
        // is deterministic and storing them would double the memory per
        // indicator.
        if let Ok(p) = anyam_pattern::parse(&entry.info.pattern, StixVersion::V2_1) {
            let mut ls = Vec::new();
            leaves(&p.root, &mut ls);
            for c in ls {
                for a in anchors(c, StixVersion::V2_1) {
                    self.index.remove(&a, slot);
                }
            }
        }
        self.cache.remove(&slot);
        self.streams.remove(&slot);
        if entry.window.is_some() {
            self.stats.multi_observation -= 1;
        }
        self.stats.indicators -= 1;
        self.free.push(slot);
        true
    }

    /// Call after a batch of [`Engine::upsert`]/[`Engine::remove`]: keeps
    /// the substring automata current at a cost paid once per batch.
    pub fn commit(&mut self) {
        self.index.maintain();
    }

    /// Call after a bulk load: builds every automaton.
    pub fn compact(&mut self) {
        self.index.compact();
    }

    /// The loaded version of an indicator.
    pub fn get(&self, id: &str) -> Option<&Arc<IndicatorInfo>> {
        let slot = *self.by_id.get(id)?;
        self.slots[slot as usize].as_ref().map(|e| &e.info)
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.paths = self.index.path_count();
        s.buffered = self.streams.values().map(|st| st.buf.len()).sum();
        s
    }

    fn matcher(&mut self, slot: u32) -> Option<&Matcher> {
        if !self.cache.contains_key(&slot) {
            let e = self.slots[slot as usize].as_ref()?;
            let m = Matcher::new(&e.info.pattern, StixVersion::V2_1).ok()?;
            if self.cache.len() >= self.opts.compile_cache {
                // Forget an arbitrary half: simple, and the hot patterns
                // come back on their next use.
                let drop: Vec<u32> = self.cache.keys().copied().step_by(2).collect();
                for k in drop {
                    self.cache.remove(&k);
                }
            }
            self.cache.insert(slot, m);
        }
        self.cache.get(&slot)
    }

    /// Matches one observation; hits are appended to `hits`. Observations
    /// should arrive in time order (per source): patterns across several
    /// observations keep those within their window.
    pub fn observe(&mut self, ob: &Observation, tag: &T, hits: &mut Vec<Hit<T>>) {
        self.stats.observations += 1;
        self.since_sweep += 1;
        if self.since_sweep >= 1 << 16 {
            self.since_sweep = 0;
            self.sweep(ob.first);
        }
        let mut cands = std::mem::take(&mut self.cands);
        cands.clear();
        self.index.lookup(ob, &mut cands);
        if cands.is_empty() {
            self.cands = cands;
            return;
        }
        cands.sort_unstable();
        cands.dedup();
        self.stats.candidates += cands.len() as u64;
        let now = match self.opts.validity {
            Validity::WallClock => Some(wall_clock()),
            _ => None,
        };
        let mut i = 0;
        while i < cands.len() {
            let slot = cands[i].slot;
            let mut j = i;
            while j < cands.len() && cands[j].slot == slot {
                j += 1;
            }
            self.candidate(slot, &cands[i..j], ob, now, tag, hits);
            i = j;
        }
        self.cands = cands;
    }

    fn valid(&self, e: &Entry, ob: &Observation, now: Option<i128>) -> bool {
        match self.opts.validity {
            Validity::Ignore => true,
            Validity::WallClock => {
                let t = now.unwrap_or_else(wall_clock);
                e.valid_from <= t && t < e.valid_until
            }
            // The observation's span overlaps [valid_from, valid_until).
            Validity::ObservationTime => ob.last >= e.valid_from && ob.first < e.valid_until,
        }
    }

    /// Decides the brackets of one indicator proposed for an observation.
    fn candidate(
        &mut self,
        slot: u32,
        targets: &[Target],
        ob: &Observation,
        now: Option<i128>,
        tag: &T,
        hits: &mut Vec<Hit<T>>,
    ) {
        let Some(e) = self.slots[slot as usize].as_ref() else {
            return;
        };
        if !self.valid(e, ob, now) {
            return;
        }
        let window = e.window;
        let info = e.info.clone();
        // Brackets matched, each decided once (targets are sorted by leaf).
        let mut matched: Vec<u16> = Vec::new();
        let mut k = 0;
        while k < targets.len() {
            let leaf = targets[k].leaf;
            let mut exact = false;
            while k < targets.len() && targets[k].leaf == leaf {
                exact |= targets[k].exact;
                k += 1;
            }
            let ok = if exact {
                true
            } else {
                self.stats.evaluations += 1;
                match self
                    .matcher(slot)
                    .map(|m| m.leaf_matches(usize::from(leaf), ob))
                {
                    Some(Ok(b)) => b,
                    Some(Err(_)) | None => {
                        self.stats.eval_errors += 1;
                        false
                    }
                }
            };
            if ok {
                matched.push(leaf);
            }
        }
        if matched.is_empty() {
            return;
        }
        match window {
            None => {
                self.stats.hits += 1;
                hits.push(Hit {
                    indicator: info,
                    observations: vec![tag.clone()],
                });
            }
            Some(w) => self.stream(slot, w, matched, ob, tag, info, hits),
        }
    }

    /// Adds an observation to a multi-observation pattern's state and
    /// searches for a binding. A binding found is reported once and its
    /// observations leave the state, so each observation contributes to at
    /// most one hit of a pattern. A binding exists over everything seen
    /// within the window exactly when the matcher would find one over the
    /// same observations: the state only grows until a hit.
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &mut self,
        slot: u32,
        window: i128,
        matched: Vec<u16>,
        ob: &Observation,
        tag: &T,
        info: Arc<IndicatorInfo>,
        hits: &mut Vec<Hit<T>>,
    ) {
        let cap = self.opts.max_buffered_per_pattern.max(1);
        let st = self.streams.entry(slot).or_default();
        while st
            .buf
            .front()
            .is_some_and(|f| f.time.last < ob.first - window)
        {
            st.pop_front();
            self.stats.evicted_window += 1;
        }
        while st.buf.len() >= cap {
            st.pop_front();
            self.stats.evicted_cap += 1;
        }
        st.push(Buffered {
            time: ObsTime::from(ob),
            leaves: matched.into_boxed_slice(),
            tag: tag.clone(),
        });
        if self.matcher(slot).is_none() {
            self.stats.eval_errors += 1;
            return;
        }
        self.stream_search(slot, info, hits);
    }

    fn stream_search(&mut self, slot: u32, info: Arc<IndicatorInfo>, hits: &mut Vec<Hit<T>>) {
        let Some(st) = self.streams.get(&slot) else {
            return;
        };
        let Some(m) = self.cache.get(&slot) else {
            return;
        };
        // Most of the time a pattern waits for a bracket nothing matched
        // yet: no search, and no input built for it.
        if !m.could_bind(&st.counts) {
            return;
        }
        let buf = &st.buf;
        let times: Vec<ObsTime> = buf.iter().map(|b| b.time).collect();
        let mut leaf_obs = vec![Vec::new(); m.leaf_count()];
        for (pos, b) in buf.iter().enumerate() {
            for &l in b.leaves.iter() {
                if let Some(v) = leaf_obs.get_mut(usize::from(l)) {
                    v.push(pos);
                }
            }
        }
        self.stats.evaluations += 1;
        let found = match m.solve(&times, &leaf_obs) {
            Ok(f) => f,
            Err(_) => {
                self.stats.eval_errors += 1;
                None
            }
        };
        let Some(binding) = found else { return };
        let Some(st) = self.streams.get_mut(&slot) else {
            return;
        };
        let observations = binding
            .iter()
            .filter_map(|&p| st.buf.get(p))
            .map(|b| b.tag.clone())
            .collect();
        for &p in binding.iter().rev() {
            st.remove(p);
        }
        if st.buf.is_empty() {
            self.streams.remove(&slot);
        }
        self.stats.hits += 1;
        hits.push(Hit {
            indicator: info,
            observations,
        });
    }

    /// Drops stream state older than each pattern's window at time `now`.
    pub fn sweep(&mut self, now: i128) {
        let mut evicted = 0u64;
        let slots = &self.slots;
        self.streams.retain(|slot, st| {
            let Some(Some(e)) = slots.get(*slot as usize) else {
                return false;
            };
            let w = e.window.unwrap_or(0);
            while st.buf.front().is_some_and(|f| f.time.last < now - w) {
                st.pop_front();
                evicted += 1;
            }
            !st.buf.is_empty()
        });
        self.stats.evicted_window += evicted;
    }
}
