//! Partner exports: the entries that concern one partner, each with an
//! inclusion proof against a signed tree head, plus consistency proofs
//! from heads the partner saw before — and the check the partner runs.

use serde::{Deserialize, Serialize};

use crate::log::{consistency_proof, inclusion_proof, mth, read_heads, to_sql};
use crate::merkle;
use crate::{AuditError, AuditLog, Entry, Hash, SignedTreeHead, TrustedKeys};

/// The `format` of exports this build writes and reads.
pub const EXPORT_FORMAT: &str = "anyam-audit-export/1";

/// What a partner receives. JSON on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartnerExport {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// The partner the export is for: every entry names it in `parties`.
    pub partner: String,
    /// The signed head every proof is against.
    pub head: SignedTreeHead,
    /// The entries concerning `partner` below `head.tree_size`, in order.
    pub entries: Vec<ExportedEntry>,
    /// Proofs that `head` extends earlier trees the partner knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<ConsistencyLink>,
}

/// One entry with its RFC 9162 §2.1.3 inclusion proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedEntry {
    /// The leaf index, equal to the entry's `seq`.
    pub index: u64,
    /// The entry's JSON object. Its leaf is the RFC 8785 canonical form
    /// of this object (see [`Entry`]); the leaf hash is SHA-256(0x00 ||
    /// leaf).
    pub entry: serde_json::Value,
    /// The inclusion path, from the leaf's sibling upwards.
    pub inclusion_proof: Vec<Hash>,
}

/// An RFC 9162 §2.1.4 consistency proof from the tree of the first
/// `from_size` entries (whose root the node computes as `from_root`) to
/// the export's head. The partner compares `from_root` with the root of
/// the head of that size it kept: a difference means the node's log was
/// rewritten (a fork).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyLink {
    pub from_size: u64,
    pub from_root: Hash,
    pub proof: Vec<Hash>,
}

/// Which export to make.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    /// Prove against the latest stored head of this tree size; `None`
    /// takes the latest head.
    pub head_size: Option<u64>,
    /// Tree sizes of heads the partner saw before: one consistency proof
    /// each.
    pub since: Vec<u64>,
    /// Leave out entries below this sequence number (the partner has
    /// them already).
    pub from_seq: u64,
}

impl AuditLog {
    /// The export for `partner`. Only entries whose `parties` name the
    /// partner are read and included; an entry the partner index lists
    /// but whose own `parties` do not name the partner (an altered index)
    /// is left out, never exported.
    pub fn export_for(
        &self,
        partner: &str,
        req: &ExportRequest,
    ) -> Result<PartnerExport, AuditError> {
        let conn = self.inner.reader()?;
        let tx = conn.unchecked_transaction()?;
        let head = read_heads(&tx)?
            .into_iter()
            .rev()
            .map(|(_, h)| h)
            .find(|h| req.head_size.is_none_or(|s| s == h.head.tree_size))
            .ok_or(AuditError::NoSuchHead(req.head_size))?;
        let size = head.head.tree_size;
        let mut entries = Vec::new();
        {
            // Pinned to the partner index: with a wide sequence range the
            // planner may otherwise walk the (seq, party) key over the
            // whole log instead of the partner's few rows.
            let mut stmt = tx.prepare_cached(
                "SELECT e.seq, e.leaf
                 FROM entry_parties p INDEXED BY entry_parties_by_party
                 JOIN entries e ON e.seq = p.seq
                 WHERE p.party = ?1 AND p.seq >= ?2 AND p.seq < ?3 ORDER BY p.seq",
            )?;
            let mut rows = stmt.query(rusqlite::params![
                partner,
                to_sql(req.from_seq)?,
                to_sql(size)?
            ])?;
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                let leaf: Vec<u8> = row.get(1)?;
                let entry = Entry::from_leaf(&leaf)?;
                if entry.seq != seq as u64 || !entry.event.parties.iter().any(|p| p == partner) {
                    continue;
                }
                entries.push(ExportedEntry {
                    index: entry.seq,
                    entry: serde_json::from_slice(&leaf)?,
                    inclusion_proof: inclusion_proof(&tx, entry.seq, size)?,
                });
            }
        }
        let mut consistency = Vec::new();
        for &from_size in &req.since {
            if from_size > size {
                return Err(AuditError::Malformed(format!(
                    "tree size {from_size} is beyond the head's {size}"
                )));
            }
            consistency.push(ConsistencyLink {
                from_size,
                from_root: mth(&tx, 0, from_size)?,
                proof: consistency_proof(&tx, from_size, size)?,
            });
        }
        tx.finish()?;
        Ok(PartnerExport {
            format: EXPORT_FORMAT.into(),
            partner: partner.into(),
            head,
            entries,
            consistency,
        })
    }
}

fn rejected(what: String, e: AuditError) -> AuditError {
    AuditError::Rejected(format!("{what}: {e}"))
}

/// What a verified export holds.
#[derive(Debug, Clone)]
pub struct VerifiedExport {
    pub head: SignedTreeHead,
    pub entries: Vec<Entry>,
}

/// The partner's check, needing only the node's public keys: the head's
/// signature; for every entry, that it concerns the partner, sits at its
/// own index, and that its recomputed leaf hash is included in the head's
/// tree; and every consistency proof. Any failure is
/// [`AuditError::Rejected`] (or the head's signature error).
pub fn verify_export(
    export: &PartnerExport,
    trusted: &TrustedKeys,
) -> Result<VerifiedExport, AuditError> {
    if export.format != EXPORT_FORMAT {
        return Err(AuditError::Rejected(format!(
            "unknown export format {:?}",
            export.format
        )));
    }
    let head = &export.head.head;
    export.head.verify(trusted)?;
    let mut entries = Vec::with_capacity(export.entries.len());
    let mut previous: Option<u64> = None;
    for x in &export.entries {
        if previous.is_some_and(|p| x.index <= p) {
            return Err(AuditError::Rejected(format!(
                "entry {} is out of order or repeated",
                x.index
            )));
        }
        previous = Some(x.index);
        let leaf = anyam_stix::canonical_json(&x.entry);
        let entry: Entry = serde_json::from_value(x.entry.clone()).map_err(|e| {
            AuditError::Rejected(format!("entry {} is not an audit entry: {e}", x.index))
        })?;
        if entry.seq != x.index {
            return Err(AuditError::Rejected(format!(
                "entry at index {} says it is entry {}",
                x.index, entry.seq
            )));
        }
        if !entry.event.parties.contains(&export.partner) {
            return Err(AuditError::Rejected(format!(
                "entry {} does not concern {}",
                x.index, export.partner
            )));
        }
        merkle::verify_inclusion(
            &merkle::leaf_hash(leaf.as_bytes()),
            x.index,
            head.tree_size,
            &x.inclusion_proof,
            &head.root_hash,
        )
        .map_err(|e| rejected(format!("entry {}", x.index), e))?;
        entries.push(entry);
    }
    for c in &export.consistency {
        merkle::verify_consistency(
            c.from_size,
            head.tree_size,
            &c.from_root,
            &head.root_hash,
            &c.proof,
        )
        .map_err(|e| rejected(format!("consistency from tree size {}", c.from_size), e))?;
    }
    Ok(VerifiedExport {
        head: export.head.clone(),
        entries,
    })
}

impl PartnerExport {
    /// Check that this export's head extends `earlier`, a head the partner
    /// kept from before: signed by a trusted key, and either the same tree
    /// or covered by a consistency link whose old root is `earlier`'s
    /// root and whose proof verifies. Run [`verify_export`] as well.
    pub fn check_extends(
        &self,
        earlier: &SignedTreeHead,
        trusted: &TrustedKeys,
    ) -> Result<(), AuditError> {
        earlier.verify(trusted)?;
        let (old, new) = (&earlier.head, &self.head.head);
        if old.tree_size == new.tree_size {
            return if old.root_hash == new.root_hash {
                Ok(())
            } else {
                Err(AuditError::Rejected(format!(
                    "two signed heads of tree size {} with different roots: the log forked",
                    old.tree_size
                )))
            };
        }
        let link = self
            .consistency
            .iter()
            .find(|c| c.from_size == old.tree_size)
            .ok_or_else(|| {
                AuditError::Rejected(format!(
                    "no consistency proof from tree size {}",
                    old.tree_size
                ))
            })?;
        verify_heads_consistent(earlier, &self.head, &link.proof, trusted)
    }
}

/// Check that the signed head `later` extends the signed head `earlier`
/// with an RFC 9162 §2.1.4 consistency proof (as from
/// [`AuditLog::consistency_proof`]).
pub fn verify_heads_consistent(
    earlier: &SignedTreeHead,
    later: &SignedTreeHead,
    proof: &[Hash],
    trusted: &TrustedKeys,
) -> Result<(), AuditError> {
    earlier.verify(trusted)?;
    later.verify(trusted)?;
    let (a, b) = (&earlier.head, &later.head);
    merkle::verify_consistency(a.tree_size, b.tree_size, &a.root_hash, &b.root_hash, proof).map_err(
        |e| {
            rejected(
                format!(
                    "tree size {} does not extend tree size {}",
                    b.tree_size, a.tree_size
                ),
                e,
            )
        },
    )
}
