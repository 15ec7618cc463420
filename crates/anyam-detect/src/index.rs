//! The index: anchors by (object type, object path, key), looked up per observation.
//!
//! Layout: object type → the registered paths of that type → per path a
//! hash map of strings, a hash map of integers, two prefix tries (IPv4 and
//! IPv6 blocks), a multi-string automaton of substrings, and a list of
//! brackets that only need the path to reach a value; per type also a list
//! of brackets that only need an object of the type. Looking up an
//! observation walks each object's registered paths once and collects the
//! targets (indicator slot, bracket number) of every anchor that holds.
//!
//! Removal is exact for every structure except the automaton, which is
//! immutable: a removed substring keeps its place in the automaton but
//! loses its targets, and the automaton is rebuilt once enough of it is
//! stale or enough new substrings wait in the small pending list that is
//! searched directly.

use crate::anchor::{Anchor, Key};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use anyam_pattern::{IpNet, Observation, PathStep, visit_path};
use foldhash::HashMap;
use prefix_trie::PrefixMap;
use serde_json::Value;
use unicode_normalization::UnicodeNormalization as _;

/// A bracket of an indicator: what an anchor points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Target {
    pub slot: u32,
    pub leaf: u16,
    /// See [`Anchor::Path::exact`].
    pub exact: bool,
}

type Postings = Vec<Target>;

fn remove_target(list: &mut Postings, slot: u32) {
    list.retain(|t| t.slot != slot);
}

#[derive(Default)]
struct Substrings {
    /// Every substring ever added since the last rebuild, by automaton
    /// pattern id; the postings of removed ones are empty.
    lits: Vec<(Box<[u8]>, Postings)>,
    /// Position of each substring in `lits`.
    by_lit: HashMap<Box<[u8]>, usize>,
    /// Automaton over `lits[..built]`.
    ac: Option<AhoCorasick>,
    built: usize,
    /// Substrings whose postings became empty since the last rebuild.
    stale: usize,
}

impl Substrings {
    fn add(&mut self, lit: &[u8], t: Target) {
        match self.by_lit.get(lit) {
            Some(&i) => {
                if self.lits[i].1.is_empty() {
                    self.stale = self.stale.saturating_sub(1);
                }
                self.lits[i].1.push(t);
            }
            None => {
                self.by_lit.insert(lit.into(), self.lits.len());
                self.lits.push((lit.into(), vec![t]));
            }
        }
    }

    fn remove(&mut self, lit: &[u8], slot: u32) {
        if let Some(&i) = self.by_lit.get(lit) {
            let list = &mut self.lits[i].1;
            let was = list.is_empty();
            remove_target(list, slot);
            if !was && list.is_empty() {
                self.stale += 1;
            }
        }
    }

    /// Rebuilds the automaton when the pending tail or the stale part has
    /// grown past a fraction of it, so that the cost of rebuilding is
    /// amortised over many changes.
    fn maintain(&mut self) {
        let pending = self.lits.len() - self.built;
        if pending > 256 || self.stale > 256.max(self.built / 2) {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.lits.retain(|(_, p)| !p.is_empty());
        self.by_lit = self
            .lits
            .iter()
            .enumerate()
            .map(|(i, (l, _))| (l.clone(), i))
            .collect();
        self.stale = 0;
        self.built = self.lits.len();
        self.ac = if self.lits.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(self.lits.iter().map(|(l, _)| &l[..]))
                .ok()
        };
        if self.ac.is_none() {
            // Building failed (it does not for byte strings of sane size);
            // everything stays in the directly searched tail.
            self.built = 0;
        }
    }

    fn is_empty(&self) -> bool {
        self.lits.is_empty()
    }

    fn lookup(&self, hay: &[u8], out: &mut Vec<Target>) {
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(hay) {
                out.extend_from_slice(&self.lits[m.pattern().as_usize()].1);
            }
        }
        for (lit, p) in &self.lits[self.built..] {
            if !p.is_empty() && contains(hay, lit) {
                out.extend_from_slice(p);
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A blocked Bloom filter over the string keys of one path: one 64-bit
/// word per probe, two bits in it. Most values an observation carries are
/// in no indicator; at a million indicators the key tables are far larger
/// than the processor's caches, so a probe of this small filter (8 to 10
/// bits per key, about 5% false positives, sized to stay in the second-level
/// cache) saves a memory access per value. Removed keys leave their bits
/// (a false positive costs one table lookup); the filter is rebuilt, 25%
/// larger, when keys pass 8 bits each.
#[derive(Default)]
struct Filter {
    words: Vec<u64>,
    keys: usize,
}

fn key_hash(s: &[u8]) -> u64 {
    use std::hash::BuildHasher as _;
    foldhash::fast::FixedState::with_seed(0x5eed_a11a_9e37_79b9).hash_one(s)
}

impl Filter {
    fn bits(h: u64) -> u64 {
        (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63))
    }

    /// The word of a hash: its high half scaled to the number of words.
    fn word(&self, h: u64) -> usize {
        (((h >> 32) * self.words.len() as u64) >> 32) as usize
    }

    fn insert(&mut self, h: u64) {
        let i = self.word(h);
        if let Some(w) = self.words.get_mut(i) {
            *w |= Self::bits(h);
        }
        self.keys += 1;
    }

    fn may_contain(&self, h: u64) -> bool {
        match self.words.get(self.word(h)) {
            Some(w) => w & Self::bits(h) == Self::bits(h),
            None => true,
        }
    }

    fn full(&self) -> bool {
        self.keys * 8 >= self.words.len() * 64
    }

    /// Sized for `n` keys at 10 bits each (at least 64 words).
    fn rebuild<'a>(&mut self, n: usize, keys: impl Iterator<Item = &'a [u8]>) {
        self.words = vec![0; (n * 10).div_ceil(64).max(64)];
        self.keys = 0;
        for k in keys {
            self.insert(key_hash(k));
        }
    }
}

/// Which /16 and which /24 blocks of the IPv4 space some indexed block
/// overlaps: one bit each, 8 KiB and 2 MiB. A value whose /16 or /24 has no
/// bit set lies in no indexed block, which spares the trie walk for nearly
/// every address seen; the small level answers most values from the
/// first-level cache.
struct V4Cover {
    by16: Vec<u64>,
    bits: Vec<u64>,
}

impl V4Cover {
    fn new() -> V4Cover {
        V4Cover {
            by16: vec![0; (1 << 16) / 64],
            bits: vec![0; (1 << 24) / 64],
        }
    }

    fn add(&mut self, addr: u32, prefix: u8) {
        let first16 = (addr >> 16) as usize;
        let count16: usize = if prefix >= 16 { 1 } else { 1 << (16 - prefix) };
        for i in first16..first16 + count16 {
            self.by16[i / 64] |= 1 << (i % 64);
        }
        self.add24(addr, prefix);
    }

    fn add24(&mut self, addr: u32, prefix: u8) {
        let first = (addr >> 8) as usize;
        let count: usize = if prefix >= 24 { 1 } else { 1 << (24 - prefix) };
        if count >= 64 {
            // Blocks of /18 or wider cover whole words.
            for w in &mut self.bits[first / 64..(first + count) / 64] {
                *w = u64::MAX;
            }
        } else {
            for i in first..first + count {
                self.bits[i / 64] |= 1 << (i % 64);
            }
        }
    }

    fn may_cover(&self, addr: u32) -> bool {
        let j = (addr >> 16) as usize;
        if self.by16[j / 64] & (1 << (j % 64)) == 0 {
            return false;
        }
        let i = (addr >> 8) as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }
}

/// Expressions with no useful literal, run together as one set automaton
/// ([`regex::RegexSet`]): one pass over a value finds which of them match,
/// instead of one evaluation per expression. Like [`Substrings`], the set is
/// immutable: new expressions wait in a tail whose brackets are candidates
/// for every value until the next rebuild, and removed ones keep their
/// place with no targets.
#[derive(Default)]
struct RegexSets {
    exprs: Vec<(Box<str>, Postings)>,
    by_expr: HashMap<Box<str>, usize>,
    set: Option<regex::RegexSet>,
    built: usize,
    stale: usize,
}

impl RegexSets {
    fn add(&mut self, e: &str, t: Target) {
        match self.by_expr.get(e) {
            Some(&i) => {
                if self.exprs[i].1.is_empty() {
                    self.stale = self.stale.saturating_sub(1);
                }
                self.exprs[i].1.push(t);
            }
            None => {
                self.by_expr.insert(e.into(), self.exprs.len());
                self.exprs.push((e.into(), vec![t]));
            }
        }
    }

    fn remove(&mut self, e: &str, slot: u32) {
        if let Some(&i) = self.by_expr.get(e) {
            let list = &mut self.exprs[i].1;
            let was = list.is_empty();
            remove_target(list, slot);
            if !was && list.is_empty() {
                self.stale += 1;
            }
        }
    }

    fn maintain(&mut self) {
        let pending = self.exprs.len() - self.built;
        if pending > 64 || self.stale > 64.max(self.built / 2) {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        self.exprs.retain(|(_, p)| !p.is_empty());
        self.by_expr = self
            .exprs
            .iter()
            .enumerate()
            .map(|(i, (e, _))| (e.clone(), i))
            .collect();
        self.stale = 0;
        self.set = if self.exprs.is_empty() {
            None
        } else {
            regex::RegexSetBuilder::new(self.exprs.iter().map(|(e, _)| &**e))
                .size_limit(256 << 20)
                .dfa_size_limit(32 << 20)
                .build()
                .ok()
        };
        // A set that does not build (too large) leaves every expression in
        // the tail: candidates for every value, decided one by one.
        self.built = if self.set.is_some() {
            self.exprs.len()
        } else {
            0
        };
    }

    fn is_empty(&self) -> bool {
        self.exprs.is_empty()
    }

    fn lookup(&self, hay: &str, out: &mut Vec<Target>) {
        if let Some(set) = &self.set {
            for i in set.matches(hay).iter() {
                out.extend_from_slice(&self.exprs[i].1);
            }
        }
        for (_, p) in &self.exprs[self.built..] {
            out.extend_from_slice(p);
        }
    }
}

#[derive(Default)]
struct PathIndex {
    steps: Vec<PathStep>,
    strs: HashMap<Box<str>, Postings>,
    filter: Filter,
    v4_cover: Option<Box<V4Cover>>,
    ints: HashMap<i64, Postings>,
    v4: PrefixMap<(u32, u8), Postings>,
    v6: PrefixMap<(u128, u8), Postings>,
    n_cidr: usize,
    subs: Substrings,
    regexes: RegexSets,
    any: Postings,
}

impl PathIndex {
    /// Looks a value up in everything but the string table, and says
    /// whether the string table is to be probed (see [`Index::lookup`]).
    fn lookup<'a>(
        &self,
        v: &'a Value,
        any_seen: &mut bool,
        out: &mut Vec<Target>,
    ) -> Option<&'a str> {
        if !*any_seen {
            *any_seen = true;
            out.extend_from_slice(&self.any);
        }
        match v {
            Value::String(s) => {
                if self.n_cidr > 0
                    && let Some(net) = IpNet::parse(s)
                {
                    self.lookup_net(net, out);
                }
                if !self.subs.is_empty() || !self.regexes.is_empty() {
                    let nfc: std::borrow::Cow<'_, str> = if s.is_ascii() {
                        std::borrow::Cow::Borrowed(s.as_str())
                    } else {
                        std::borrow::Cow::Owned(s.nfc().collect())
                    };
                    if !self.subs.is_empty() {
                        self.subs.lookup(nfc.as_bytes(), out);
                    }
                    if !self.regexes.is_empty() {
                        self.regexes.lookup(&nfc, out);
                    }
                }
                (!self.strs.is_empty()).then_some(s.as_str())
            }
            Value::Number(n) if !self.ints.is_empty() => {
                let i = n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                });
                if let Some(p) = i.and_then(|i| self.ints.get(&i)) {
                    out.extend_from_slice(p);
                }
                None
            }
            _ => None,
        }
    }

    /// Every block containing the value's block (STIX 2.1 §9.4, ISSUBSET).
    fn lookup_net(&self, net: IpNet, out: &mut Vec<Target>) {
        if net.v6 {
            for p in self.v6.cover_values(&(net.masked(net.prefix), net.prefix)) {
                out.extend_from_slice(p);
            }
        } else {
            let addr = u32::try_from(net.masked(net.prefix)).unwrap_or(0);
            if self.v4_cover.as_ref().is_some_and(|c| !c.may_cover(addr)) {
                return;
            }
            for p in self.v4.cover_values(&(addr, net.prefix)) {
                out.extend_from_slice(p);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.strs.is_empty()
            && self.ints.is_empty()
            && self.n_cidr == 0
            && self.subs.is_empty()
            && self.regexes.is_empty()
            && self.any.is_empty()
    }
}

#[derive(Default)]
struct TypeIndex {
    paths: Vec<u32>,
    any: Postings,
}

/// The index over all loaded brackets.
#[derive(Default)]
pub(crate) struct Index {
    types: HashMap<String, TypeIndex>,
    paths: Vec<PathIndex>,
    path_ids: HashMap<(String, Vec<PathStep>), u32>,
}

fn v4_key(net: &IpNet) -> (u32, u8) {
    (
        u32::try_from(net.masked(net.prefix)).unwrap_or(0),
        net.prefix,
    )
}

impl Index {
    fn path_id(&mut self, ty: &str, steps: &[PathStep]) -> u32 {
        if let Some(&id) = self.path_ids.get(&(ty.to_string(), steps.to_vec())) {
            return id;
        }
        let id = u32::try_from(self.paths.len()).unwrap_or(u32::MAX);
        self.paths.push(PathIndex {
            steps: steps.to_vec(),
            ..PathIndex::default()
        });
        self.path_ids.insert((ty.to_string(), steps.to_vec()), id);
        self.types.entry(ty.to_string()).or_default().paths.push(id);
        id
    }

    pub fn add(&mut self, a: &Anchor, slot: u32, leaf: u16) {
        match a {
            Anchor::Type(ty) => self.types.entry(ty.clone()).or_default().any.push(Target {
                slot,
                leaf,
                exact: false,
            }),
            Anchor::Path {
                object_type,
                steps,
                key,
                exact,
            } => {
                let id = self.path_id(object_type, steps);
                let t = Target {
                    slot,
                    leaf,
                    exact: *exact,
                };
                let p = &mut self.paths[id as usize];
                match key {
                    Key::Str(s) => {
                        let list = p.strs.entry(s.clone()).or_default();
                        if list.is_empty() {
                            if p.filter.full() {
                                let n = p.strs.len();
                                p.filter
                                    .rebuild(n + n / 4, p.strs.keys().map(|k| k.as_bytes()));
                            } else {
                                p.filter.insert(key_hash(s.as_bytes()));
                            }
                        }
                        if let Some(list) = p.strs.get_mut(s) {
                            list.push(t);
                        }
                    }
                    Key::Int(i) => p.ints.entry(*i).or_default().push(t),
                    Key::Cidr(net) => {
                        p.n_cidr += 1;
                        if net.v6 {
                            p.v6.entry((net.masked(net.prefix), net.prefix))
                                .or_default()
                                .push(t);
                        } else {
                            let (addr, len) = v4_key(net);
                            p.v4_cover
                                .get_or_insert_with(|| Box::new(V4Cover::new()))
                                .add(addr, len);
                            p.v4.entry((addr, len)).or_default().push(t);
                        }
                    }
                    Key::Substr(b) => p.subs.add(b, t),
                    Key::Regex(e) => p.regexes.add(e, t),
                    Key::Any => p.any.push(t),
                }
            }
        }
    }

    pub fn remove(&mut self, a: &Anchor, slot: u32) {
        match a {
            Anchor::Type(ty) => {
                if let Some(ti) = self.types.get_mut(ty) {
                    remove_target(&mut ti.any, slot);
                }
            }
            Anchor::Path {
                object_type,
                steps,
                key,
                ..
            } => {
                let Some(&id) = self.path_ids.get(&(object_type.clone(), steps.clone())) else {
                    return;
                };
                let p = &mut self.paths[id as usize];
                match key {
                    Key::Str(s) => {
                        if let Some(list) = p.strs.get_mut(&**s) {
                            remove_target(list, slot);
                            if list.is_empty() {
                                p.strs.remove(&**s);
                            }
                        }
                    }
                    Key::Int(i) => {
                        if let Some(list) = p.ints.get_mut(i) {
                            remove_target(list, slot);
                            if list.is_empty() {
                                p.ints.remove(i);
                            }
                        }
                    }
                    Key::Cidr(net) => {
                        let emptied = if net.v6 {
                            let k = (net.masked(net.prefix), net.prefix);
                            let e = p.v6.get_mut(&k).map(|l| {
                                let before = l.len();
                                remove_target(l, slot);
                                (before - l.len(), l.is_empty())
                            });
                            if let Some((_, true)) = e {
                                p.v6.remove(&k);
                            }
                            e
                        } else {
                            let k = v4_key(net);
                            let e = p.v4.get_mut(&k).map(|l| {
                                let before = l.len();
                                remove_target(l, slot);
                                (before - l.len(), l.is_empty())
                            });
                            if let Some((_, true)) = e {
                                p.v4.remove(&k);
                            }
                            e
                        };
                        if let Some((n, _)) = emptied {
                            p.n_cidr = p.n_cidr.saturating_sub(n);
                        }
                    }
                    Key::Substr(b) => p.subs.remove(b, slot),
                    Key::Regex(e) => p.regexes.remove(e, slot),
                    Key::Any => remove_target(&mut p.any, slot),
                }
            }
        }
    }

    /// Collects the targets of every anchor that holds for the observation
    /// (unsorted, possibly repeated).
    ///
    /// String-table probes are gathered and made together at the end: at a
    /// million indicators the Bloom filters live outside the first-level
    /// caches, and independent loads issued back to back overlap their
    /// latency, where loads interleaved with walking the observation's
    /// objects would wait one after another.
    pub fn lookup(&self, ob: &Observation, out: &mut Vec<Target>) {
        const BATCH: usize = 32;
        let mut probes: [(u32, &str, u64); BATCH] = [(0, "", 0); BATCH];
        let mut n = 0;
        for (_, obj) in &ob.objects {
            let Some(ty) = obj.get("type").and_then(Value::as_str) else {
                continue;
            };
            let Some(ti) = self.types.get(ty) else {
                continue;
            };
            out.extend_from_slice(&ti.any);
            for &pid in &ti.paths {
                let p = &self.paths[pid as usize];
                if p.is_empty() {
                    continue;
                }
                let mut any_seen = false;
                visit_path(&p.steps, obj, ob, &mut |v| {
                    if let Some(s) = p.lookup(v, &mut any_seen, out) {
                        if n == BATCH {
                            self.probe(&probes, out);
                            n = 0;
                        }
                        probes[n] = (pid, s, key_hash(s.as_bytes()));
                        n += 1;
                    }
                });
            }
        }
        self.probe(&probes[..n], out);
    }

    /// The string-table part of [`Index::lookup`]: all filter probes first,
    /// then the tables for the values that passed.
    fn probe(&self, probes: &[(u32, &str, u64)], out: &mut Vec<Target>) {
        let mut pass = 0u32;
        for (i, &(pid, _, h)) in probes.iter().enumerate() {
            if self.paths[pid as usize].filter.may_contain(h) {
                pass |= 1 << i;
            }
        }
        while pass != 0 {
            let i = pass.trailing_zeros() as usize;
            pass &= pass - 1;
            let (pid, s, _) = probes[i];
            if let Some(list) = self.paths[pid as usize].strs.get(s) {
                out.extend_from_slice(list);
            }
        }
    }

    /// After a batch of changes: rebuilds the substring automata whose
    /// directly searched tail or stale part has grown too large. The cost
    /// of a rebuild is thus paid once per batch, not per indicator.
    pub fn maintain(&mut self) {
        for p in &mut self.paths {
            p.subs.maintain();
            p.regexes.maintain();
        }
    }

    /// Rebuilds every substring automaton that has pending entries, so
    /// that a freshly loaded index searches only automata.
    pub fn compact(&mut self) {
        for p in &mut self.paths {
            if p.subs.built != p.subs.lits.len() || p.subs.stale > 0 {
                p.subs.rebuild();
            }
            if p.regexes.built != p.regexes.exprs.len() || p.regexes.stale > 0 {
                p.regexes.rebuild();
            }
        }
    }

    /// Number of registered (type, path) pairs.
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }
}
