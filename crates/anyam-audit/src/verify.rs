//! [`verify`]: read the whole log, recompute every hash, check every signed
//! head, and name the first entry or head that is not what it should be.

use std::fmt;

use serde::Serialize;

use crate::log::{read_heads, stored_size};
use crate::merkle::{self, node_hash};
use crate::stored;
use crate::{AuditError, AuditLog, Entry, Hash, SignedTreeHead, TrustedKeys};

/// What `verify` found when all is well.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Entries checked (`0..entries`).
    pub entries: u64,
    /// Signed heads checked (stored and given).
    pub heads: usize,
    /// The largest checked head.
    pub latest_head: Option<SignedTreeHead>,
    /// Entries after the latest head. Their leaf hashes and the tree cache
    /// agree, but no signature covers them yet: a truncation of these
    /// cannot be told from the file alone until the next head.
    pub unsigned_entries: u64,
}

/// Which head a problem is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HeadRef {
    /// A head stored in the log, by its row id (1 is the first head ever
    /// signed).
    Stored { id: i64, tree_size: u64 },
    /// One of the heads given to [`verify_with`], by position.
    Given { index: usize, tree_size: u64 },
}

impl fmt::Display for HeadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadRef::Stored { id, tree_size } => write!(f, "head #{id} (tree size {tree_size})"),
            HeadRef::Given { index, tree_size } => {
                write!(f, "given head {index} (tree size {tree_size})")
            }
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Problem {
    /// The entry is absent: deleted, or the log was cut before it.
    Missing,
    /// The entry's bytes are not the canonical JSON of an entry.
    Unreadable(String),
    /// The entry is at the wrong place: it says it is entry `found`
    /// (reordered rows, or an entry copied over another).
    WrongSeq { found: u64 },
    /// The stored leaf hash is not SHA-256(0x00 || leaf): the entry was
    /// edited.
    LeafHashMismatch,
    /// The entry and its stored leaf hash agree but the tree cache's copy
    /// of the leaf hash does not: the entry was edited together with its
    /// leaf hash.
    CacheLeafMismatch,
    /// A cached subtree hash disagrees with its recomputation from the
    /// leaves (the cache, not an entry, was altered).
    CacheNodeMismatch { level: u32, last: u64 },
    /// The partner index disagrees with the entry's `parties`: an export
    /// would leave the entry out or hand it to the wrong partner.
    PartiesIndexMismatch,
    /// A head covers more entries than the log holds: the log was cut
    /// (truncation). The first missing entry is named.
    Truncated { log_size: u64 },
    /// The head's signature does not verify.
    BadSignature,
    /// The head is signed by a key that is not trusted.
    UntrustedKey(String),
    /// The head is older or smaller than the head before it.
    OutOfOrder,
    /// The root of the first `until` entries is not the head's root.
    /// Every one of those entries agreed with its stored leaf hash and the
    /// tree cache, so either entries, hashes and cache were all rewritten
    /// consistently — then the change lies in `since..until`, `since`
    /// being the size of the last head that matched — or the head itself
    /// was made wrongly by a holder of a trusted key. Without an authentic
    /// record below the signed root nothing narrows it further.
    RootMismatch { since: u64, until: u64 },
    /// A stored head row cannot be read at all.
    UnreadableHead(String),
}

/// Proof of tampering: the first bad entry (when one can be named) and the
/// head involved (when a head is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tampered {
    pub first_bad_entry: Option<u64>,
    pub head: Option<HeadRef>,
    pub problem: Problem,
}

impl fmt::Display for Tampered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.first_bad_entry, &self.head) {
            (Some(seq), Some(h)) => write!(f, "entry {seq} ({h}): ")?,
            (Some(seq), None) => write!(f, "entry {seq}: ")?,
            (None, Some(h)) => write!(f, "{h}: ")?,
            (None, None) => {}
        }
        match &self.problem {
            Problem::Missing => f.write_str("missing"),
            Problem::Unreadable(e) => write!(f, "not a canonical entry ({e})"),
            Problem::WrongSeq { found } => write!(f, "holds entry {found} (reordered or copied)"),
            Problem::LeafHashMismatch => f.write_str("content does not match its leaf hash"),
            Problem::CacheLeafMismatch => {
                f.write_str("content and leaf hash were changed (the tree cache disagrees)")
            }
            Problem::CacheNodeMismatch { level, last } => write!(
                f,
                "the cached subtree of height {level} ending at entry {last} is wrong"
            ),
            Problem::PartiesIndexMismatch => f.write_str("the partner index disagrees with it"),
            Problem::Truncated { log_size } => {
                write!(f, "the log was cut: it has {log_size} entries")
            }
            Problem::BadSignature => f.write_str("the signature does not verify"),
            Problem::UntrustedKey(k) => write!(f, "signed by an untrusted key {k}"),
            Problem::OutOfOrder => f.write_str("older or smaller than the head before it"),
            Problem::RootMismatch { since, until } => write!(
                f,
                "the root does not match the log: an entry in {since}..{until} was rewritten \
                 along with its hashes, or the head was signed wrongly"
            ),
            Problem::UnreadableHead(e) => write!(f, "unreadable head row ({e})"),
        }
    }
}

/// Check the whole log against its stored signed heads. See
/// [`verify_with`].
pub fn verify(log: &AuditLog, trusted: &TrustedKeys) -> Result<Report, AuditError> {
    verify_with(log, trusted, &[])
}

fn tampered(first_bad_entry: Option<u64>, head: Option<HeadRef>, problem: Problem) -> AuditError {
    AuditError::Tampered(Box::new(Tampered {
        first_bad_entry,
        head,
        problem,
    }))
}

/// Check the whole log against its stored signed heads and the heads in
/// `known` (heads kept outside the file: published, held by partners,
/// noted by the operator). Fails with [`AuditError::Tampered`] naming the
/// first bad entry or head; other errors mean the check could not run.
///
/// In order:
///
/// 1. Every head: signed by a trusted key, signature valid
///    ([`Problem::UntrustedKey`], [`Problem::BadSignature`]); stored heads
///    in row order never shrink or go back in time ([`Problem::OutOfOrder`]).
/// 2. Every entry, in sequence order, from 0 with no gap
///    ([`Problem::Missing`]); its stored leaf hash is SHA-256(0x00 ||
///    leaf) ([`Problem::LeafHashMismatch`]); it is canonical JSON of an
///    entry ([`Problem::Unreadable`]) carrying its own sequence number
///    ([`Problem::WrongSeq`]); the tree cache's copy of its leaf hash
///    agrees ([`Problem::CacheLeafMismatch`]), and so does every cached
///    subtree it completes ([`Problem::CacheNodeMismatch`]); the partner
///    index lists exactly its parties.
/// 3. At each head's tree size, the root recomputed from the leaves is the
///    head's root ([`Problem::RootMismatch`]).
/// 4. No head covers more entries than the log holds, and no cache node
///    or index row outlives the last entry ([`Problem::Truncated`],
///    [`Problem::Missing`]).
///
/// What cannot be caught from the file alone: removing the newest entries
/// together with every head, cache node and index row that covers them,
/// the newest heads included. The remaining log is a valid older log.
/// Likewise, the stored heads are the file's only anchors: whoever
/// removes every head covering an entry can then rewrite that entry, its
/// hashes and the cache undetected. Both are caught by anyone holding a
/// later head: pass it in `known`, or let partners check consistency
/// against the heads they received. Entries appended after the latest
/// head are checked only for internal agreement (leaf hash, cache) until
/// the next head signs them ([`Report::unsigned_entries`]).
pub fn verify_with(
    log: &AuditLog,
    trusted: &TrustedKeys,
    known: &[SignedTreeHead],
) -> Result<Report, AuditError> {
    let conn = log.inner.reader()?;
    let tx = conn.unchecked_transaction()?;

    // Step 1: the heads on their own.
    let stored = match read_heads(&tx) {
        Ok(h) => h,
        Err(AuditError::Damaged(e)) => {
            return Err(tampered(None, None, Problem::UnreadableHead(e)));
        }
        Err(e) => return Err(e),
    };
    let mut checks: Vec<(u64, Hash, HeadRef)> = Vec::new();
    let mut previous: Option<&SignedTreeHead> = None;
    for (id, h) in &stored {
        let r = HeadRef::Stored {
            id: *id,
            tree_size: h.head.tree_size,
        };
        check_signature(h, trusted, &r)?;
        if let Some(p) = previous
            && (h.head.tree_size < p.head.tree_size || h.head.timestamp < p.head.timestamp)
        {
            return Err(tampered(None, Some(r), Problem::OutOfOrder));
        }
        previous = Some(h);
        checks.push((h.head.tree_size, h.head.root_hash, r));
    }
    for (index, h) in known.iter().enumerate() {
        let r = HeadRef::Given {
            index,
            tree_size: h.head.tree_size,
        };
        check_signature(h, trusted, &r)?;
        checks.push((h.head.tree_size, h.head.root_hash, r));
    }
    // Stable: among heads of one size the stored (older) ones come first.
    checks.sort_by_key(|c| c.0);
    let latest_head = stored
        .iter()
        .map(|(_, h)| h)
        .chain(known)
        .max_by_key(|h| h.head.tree_size)
        .cloned();

    // Steps 2 and 3: one pass over entries, cache and index together, all
    // three in sequence order.
    let mut entries = tx.prepare("SELECT seq, leaf, leaf_hash FROM entries ORDER BY seq")?;
    let mut entries = entries.query([])?;
    let mut nodes = tx.prepare("SELECT last, level, hash FROM nodes ORDER BY last, level")?;
    let mut nodes = Peek::new(nodes.query([])?, |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    });
    let mut parties = tx.prepare("SELECT seq, party FROM entry_parties ORDER BY seq, party")?;
    let mut parties = Peek::new(parties.query([])?, |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    });

    let mut frontier: Vec<(u32, Hash)> = Vec::new();
    let mut next_check = 0usize;
    let mut matched_size = 0u64;
    let mut count = 0u64;
    let mut check_heads = |count: u64, frontier: &[(u32, Hash)], next: &mut usize| {
        while let Some((size, root, r)) = checks.get(*next) {
            if *size != count {
                break;
            }
            if root_of(frontier) != *root {
                return Err(tampered(
                    None,
                    Some(r.clone()),
                    Problem::RootMismatch {
                        since: matched_size,
                        until: count,
                    },
                ));
            }
            matched_size = *size;
            *next += 1;
        }
        Ok(())
    };
    check_heads(0, &frontier, &mut next_check)?;
    while let Some(row) = entries.next()? {
        let seq: i64 = row.get(0)?;
        if seq != count as i64 {
            return Err(tampered(Some(count), None, Problem::Missing));
        }
        let leaf = stored::leaf_of(row.get(1)?)
            .map_err(|e| tampered(Some(count), None, Problem::Unreadable(e)))?;
        let stored_hash: Vec<u8> = row.get(2)?;
        let h = merkle::leaf_hash(&leaf);
        if Hash::from_slice(&stored_hash) != Some(h) {
            return Err(tampered(Some(count), None, Problem::LeafHashMismatch));
        }
        let entry = Entry::from_leaf(&leaf)
            .map_err(|e| tampered(Some(count), None, Problem::Unreadable(e.to_string())))?;
        if entry.seq != count {
            return Err(tampered(
                Some(count),
                None,
                Problem::WrongSeq { found: entry.seq },
            ));
        }
        // The cache rows completed by this leaf: heights 0 up to the number
        // of trailing zeros of count + 1.
        frontier.push((0, h));
        let mut level = 0u32;
        loop {
            let (_, computed) = frontier[frontier.len() - 1];
            let ok = match nodes.peek()? {
                Some((last, l, _)) if *last == count as i64 && *l == level => {
                    nodes
                        .take()
                        .and_then(|(_, _, hash)| Hash::from_slice(&hash))
                        == Some(computed)
                }
                _ => false,
            };
            if !ok {
                return Err(if level == 0 {
                    tampered(Some(count), None, Problem::CacheLeafMismatch)
                } else {
                    tampered(
                        None,
                        None,
                        Problem::CacheNodeMismatch { level, last: count },
                    )
                });
            }
            match frontier[..] {
                [.., (lh, l), (rh, r)] if lh == rh => {
                    frontier.truncate(frontier.len() - 2);
                    frontier.push((lh + 1, node_hash(&l, &r)));
                    level += 1;
                }
                _ => break,
            }
        }
        // The partner index rows of this entry.
        let mut want: Vec<&str> = entry.event.parties.iter().map(String::as_str).collect();
        want.sort_unstable();
        want.dedup();
        let mut got: Vec<String> = Vec::new();
        while let Some((s, _)) = parties.peek()? {
            let s = *s;
            if s > count as i64 {
                break;
            }
            let Some((_, p)) = parties.take() else { break };
            if s < count as i64 {
                // A row for an entry that does not exist.
                return Err(tampered(
                    Some(s.max(0) as u64),
                    None,
                    Problem::PartiesIndexMismatch,
                ));
            }
            got.push(p);
        }
        if want != got {
            return Err(tampered(Some(count), None, Problem::PartiesIndexMismatch));
        }
        count += 1;
        check_heads(count, &frontier, &mut next_check)?;
    }

    // Step 4: anything reaching past the last entry.
    if let Some((_, _, r)) = checks.get(next_check) {
        return Err(tampered(
            Some(count),
            Some(r.clone()),
            Problem::Truncated { log_size: count },
        ));
    }
    if nodes.peek()?.is_some() || parties.peek()?.is_some() {
        return Err(tampered(Some(count), None, Problem::Missing));
    }
    debug_assert_eq!(stored_size(&tx)?, count);
    drop(entries);
    let heads = checks.len();
    let unsigned_entries = count - latest_head.as_ref().map_or(0, |h| h.head.tree_size);
    Ok(Report {
        entries: count,
        heads,
        latest_head,
        unsigned_entries,
    })
}

fn check_signature(
    h: &SignedTreeHead,
    trusted: &TrustedKeys,
    r: &HeadRef,
) -> Result<(), AuditError> {
    match h.verify(trusted) {
        Ok(()) => Ok(()),
        Err(AuditError::UntrustedKey(k)) => {
            Err(tampered(None, Some(r.clone()), Problem::UntrustedKey(k)))
        }
        Err(AuditError::BadSignature | AuditError::Malformed(_)) => {
            Err(tampered(None, Some(r.clone()), Problem::BadSignature))
        }
        Err(e) => Err(e),
    }
}

fn root_of(frontier: &[(u32, Hash)]) -> Hash {
    let mut it = frontier.iter().rev();
    match it.next() {
        None => merkle::empty_root(),
        Some((_, last)) => it.fold(*last, |acc, (_, left)| node_hash(left, &acc)),
    }
}

/// A cursor that can look at its next row without taking it.
struct Peek<'s, T> {
    rows: rusqlite::Rows<'s>,
    map: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    next: Option<T>,
    done: bool,
}

impl<'s, T> Peek<'s, T> {
    fn new(rows: rusqlite::Rows<'s>, map: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Self {
        Peek {
            rows,
            map,
            next: None,
            done: false,
        }
    }

    fn peek(&mut self) -> Result<Option<&T>, AuditError> {
        if self.next.is_none() && !self.done {
            match self.rows.next()? {
                Some(row) => self.next = Some((self.map)(row)?),
                None => self.done = true,
            }
        }
        Ok(self.next.as_ref())
    }

    fn take(&mut self) -> Option<T> {
        self.next.take()
    }
}
