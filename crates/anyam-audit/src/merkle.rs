//! The Merkle tree of RFC 9162 §2.1: leaf and node hashes, tree roots,
//! inclusion and consistency proofs. Pure functions, no I/O.
//!
//! Proof generation is written once, against a source of subtree hashes
//! (a closure `mth(start, end)` giving `MTH(D[start:end])`), so the same code
//! serves an in-memory list of leaf hashes (tests, small trees) and the
//! stored tree (where every such range is a few stored perfect subtrees).
//! The ranges asked for are always those of the RFC's recursion: `end -
//! start` is a power of two and `start` a multiple of it, except for the
//! right part of a split, which is decomposed further by
//! [`mth_from_perfect`].

use sha2::{Digest, Sha256};

use std::fmt;

use crate::{AuditError, Hash};

/// RFC 9162 §2.1.1: the hash of a leaf, `SHA-256(0x00 || leaf)`. The
/// prefix byte keeps leaves and interior nodes apart, so that no interior
/// node can be passed off as a leaf (second preimage attack).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(leaf);
    Hash(h.finalize().into())
}

/// RFC 9162 §2.1.1: an interior node, `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// RFC 9162 §2.1.1: the hash of the empty tree, `SHA-256()` of no input.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The largest power of two strictly smaller than `n` (RFC 9162 §2.1.1's
/// `k`). Only called with `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of a list of leaf hashes, by the recursion of RFC 9162 §2.1.1.
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    slice_mth(leaves)
}

fn slice_mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&slice_mth(&leaves[..k]), &slice_mth(&leaves[k..]))
        }
    }
}

/// `MTH(D[start:end])` of a tree whose perfect subtrees can be looked up:
/// `perfect(level, index)` is the hash of the subtree of `2^level` leaves
/// starting at leaf `index << level` (level 0 is the leaf hash). Any range
/// of the RFC's recursion is a run of such subtrees, biggest first,
/// combined from the right (RFC 9162 §2.1.1 with k taken repeatedly).
pub fn mth_from_perfect(
    start: u64,
    end: u64,
    perfect: &mut impl FnMut(u32, u64) -> Result<Hash, AuditError>,
) -> Result<Hash, AuditError> {
    if start >= end {
        return Ok(empty_root());
    }
    let len = end - start;
    if len.is_power_of_two() && start.is_multiple_of(len) {
        let level = len.trailing_zeros();
        return perfect(level, start >> level);
    }
    let k = split_point(len);
    let left = mth_from_perfect(start, start + k, perfect)?;
    let right = mth_from_perfect(start + k, end, perfect)?;
    Ok(node_hash(&left, &right))
}

/// Why a proof was refused or could not be made; carried by
/// [`AuditError::Proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofFailure {
    IndexOutOfRange { index: u64, size: u64 },
    SizesOutOfOrder { first: u64, second: u64 },
    WrongLength,
    RootMismatch,
}

impl fmt::Display for ProofFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofFailure::IndexOutOfRange { index, size } => {
                write!(f, "leaf index {index} is not below tree size {size}")
            }
            ProofFailure::SizesOutOfOrder { first, second } => {
                write!(f, "tree size {first} is larger than tree size {second}")
            }
            ProofFailure::WrongLength => f.write_str("the proof has the wrong number of hashes"),
            ProofFailure::RootMismatch => {
                f.write_str("the proof does not lead to the expected root hash")
            }
        }
    }
}

fn fail<T>(why: ProofFailure) -> Result<T, AuditError> {
    Err(AuditError::Proof(why))
}

/// RFC 9162 §2.1.3.1: the inclusion path `PATH(m, D[0:n])` of leaf `index`
/// in the tree of the first `size` leaves, leaf side first.
pub fn inclusion_proof_with(
    index: u64,
    size: u64,
    mth: &mut impl FnMut(u64, u64) -> Result<Hash, AuditError>,
) -> Result<Vec<Hash>, AuditError> {
    if index >= size {
        return fail(ProofFailure::IndexOutOfRange { index, size });
    }
    let mut path = Vec::new();
    path_rec(index, 0, size, mth, &mut path)?;
    Ok(path)
}

/// `PATH(m, D[start:end])`: recurse into the half holding m, then append the
/// other half's MTH, so the result lists siblings from the leaf upwards.
fn path_rec(
    m: u64,
    start: u64,
    end: u64,
    mth: &mut impl FnMut(u64, u64) -> Result<Hash, AuditError>,
    out: &mut Vec<Hash>,
) -> Result<(), AuditError> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path_rec(m, start, start + k, mth, out)?;
        out.push(mth(start + k, end)?);
    } else {
        path_rec(m - k, start + k, end, mth, out)?;
        out.push(mth(start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1: the consistency proof `PROOF(m, D[0:n])` between the
/// tree of the first `first` leaves and that of the first `second`. Empty
/// when `first` is 0 or equal to `second` (nothing to prove).
pub fn consistency_proof_with(
    first: u64,
    second: u64,
    mth: &mut impl FnMut(u64, u64) -> Result<Hash, AuditError>,
) -> Result<Vec<Hash>, AuditError> {
    if first > second {
        return fail(ProofFailure::SizesOutOfOrder { first, second });
    }
    let mut proof = Vec::new();
    if first > 0 && first < second {
        subproof_rec(first, 0, second, true, mth, &mut proof)?;
    }
    Ok(proof)
}

/// SUBPROOF(m, D[start:end], b) of RFC 9162 §2.1.4.1. `b` says whether the
/// subtree is the old tree's root itself, whose hash the verifier knows.
fn subproof_rec(
    m: u64,
    start: u64,
    end: u64,
    known: bool,
    mth: &mut impl FnMut(u64, u64) -> Result<Hash, AuditError>,
    out: &mut Vec<Hash>,
) -> Result<(), AuditError> {
    let n = end - start;
    if m == n {
        if !known {
            out.push(mth(start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof_rec(m, start, start + k, known, mth, out)?;
        out.push(mth(start + k, end)?);
    } else {
        subproof_rec(m - k, start + k, end, false, mth, out)?;
        out.push(mth(start, start + k)?);
    }
    Ok(())
}

fn slice_source(leaves: &[Hash]) -> impl FnMut(u64, u64) -> Result<Hash, AuditError> {
    move |start, end| {
        leaves
            .get(start as usize..end as usize)
            .map(root)
            .ok_or_else(|| AuditError::Malformed(format!("no leaves {start}..{end}")))
    }
}

/// [`inclusion_proof_with`] over a list of leaf hashes; the tree size is
/// the list's length.
pub fn inclusion_proof(index: u64, leaves: &[Hash]) -> Result<Vec<Hash>, AuditError> {
    inclusion_proof_with(index, leaves.len() as u64, &mut slice_source(leaves))
}

/// [`consistency_proof_with`] over a list of leaf hashes: from the tree of
/// the first `first` leaves to the tree of all of them.
pub fn consistency_proof(first: u64, leaves: &[Hash]) -> Result<Vec<Hash>, AuditError> {
    consistency_proof_with(first, leaves.len() as u64, &mut slice_source(leaves))
}

/// Shift `fn` and `sn` right together until `fn`'s low bit is set or it
/// is 0 (the "right-shift equally" steps of RFC 9162 §2.1.3.2 and
/// §2.1.4.2).
fn shift_while_even(f: &mut u64, s: &mut u64) {
    while *f != 0 && *f & 1 == 0 {
        *f >>= 1;
        *s >>= 1;
    }
}

/// RFC 9162 §2.1.3.2: check that `leaf` (a leaf hash) is leaf `index` of
/// the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), AuditError> {
    if index >= size {
        return fail(ProofFailure::IndexOutOfRange { index, size });
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return fail(ProofFailure::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                shift_while_even(&mut f, &mut s);
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return fail(ProofFailure::WrongLength);
    }
    if r != *root {
        return fail(ProofFailure::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: check that the tree of `second` leaves with root
/// `second_root` extends the tree of `first` leaves with root
/// `first_root`. The RFC's algorithm covers `0 < first < second`; the
/// edge cases are decided here: every tree extends the empty tree, and a
/// tree extends itself only with the same root and an empty proof.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), AuditError> {
    if first > second {
        return fail(ProofFailure::SizesOutOfOrder { first, second });
    }
    if first == 0 {
        if !proof.is_empty() {
            return fail(ProofFailure::WrongLength);
        }
        return if *first_root == empty_root() {
            Ok(())
        } else {
            fail(ProofFailure::RootMismatch)
        };
    }
    if first == second {
        if !proof.is_empty() {
            return fail(ProofFailure::WrongLength);
        }
        return if first_root == second_root {
            Ok(())
        } else {
            fail(ProofFailure::RootMismatch)
        };
    }
    // Step 1: a non-trivial proof is never empty.
    if proof.is_empty() {
        return fail(ProofFailure::WrongLength);
    }
    // Step 2: when the old tree is a perfect subtree of the new one, its
    // root is the first node of the path and the proof leaves it out.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    // Steps 3 and 4.
    let mut f = first - 1;
    let mut s = second - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // Step 5.
    let mut fr = path[0];
    let mut sr = path[0];
    // Step 6.
    for c in &path[1..] {
        if s == 0 {
            return fail(ProofFailure::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                shift_while_even(&mut f, &mut s);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    // Step 7.
    if s != 0 {
        return fail(ProofFailure::WrongLength);
    }
    if fr != *first_root || sr != *second_root {
        return fail(ProofFailure::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// The perfect-subtree source over a list, as the stored tree sees it.
    fn perfect_of(leaves: &[Hash]) -> impl FnMut(u32, u64) -> Result<Hash, AuditError> + '_ {
        move |level, index| {
            let start = (index << level) as usize;
            let end = start + (1usize << level);
            if end > leaves.len() {
                return Err(AuditError::Damaged("no such subtree".into()));
            }
            Ok(root(&leaves[start..end]))
        }
    }

    #[test]
    fn known_answers() {
        // The empty tree and a single leaf, straight from RFC 9162 §2.1.1.
        assert_eq!(
            empty_root().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            leaf_hash(b"").to_string(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        let l = leaves(5);
        let left = node_hash(&node_hash(&l[0], &l[1]), &node_hash(&l[2], &l[3]));
        assert_eq!(root(&l), node_hash(&left, &l[4]));
    }

    #[test]
    fn split_points() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 40, 1 << 39),
        ] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn proof_shapes() {
        let l = leaves(7);
        // Leaf 6 of 7: its siblings are the pair (4,5) and then 0..4.
        let p = inclusion_proof(6, &l).unwrap();
        assert_eq!(p, vec![node_hash(&l[4], &l[5]), root(&l[..4])]);
        // RFC 9162 §2.1.4.3's example: PROOF(3, D[7]) = [c, d, g, l].
        let p = consistency_proof(3, &l).unwrap();
        assert_eq!(p, vec![l[2], l[3], node_hash(&l[0], &l[1]), root(&l[4..7])]);
        // PROOF(4, D[7]) = [l], the old root being a perfect subtree.
        assert_eq!(consistency_proof(4, &l).unwrap(), vec![root(&l[4..7])]);
        assert!(consistency_proof(7, &l).unwrap().is_empty());
    }

    #[test]
    fn edge_cases() {
        let l = leaves(4);
        let r = root(&l);
        assert!(verify_inclusion(&l[0], 4, 4, &[], &r).is_err());
        assert!(verify_consistency(0, 4, &empty_root(), &r, &[]).is_ok());
        assert!(verify_consistency(0, 4, &r, &r, &[]).is_err());
        assert!(verify_consistency(4, 4, &r, &r, &[]).is_ok());
        assert!(verify_consistency(4, 4, &r, &r, &[r]).is_err());
        assert!(verify_consistency(5, 4, &r, &r, &[]).is_err());
        assert!(verify_consistency(2, 4, &root(&l[..2]), &r, &[]).is_err());
        // A single leaf tree: empty path.
        assert!(verify_inclusion(&l[0], 0, 1, &[], &l[0]).is_ok());
    }

    proptest! {
        #[test]
        fn stored_source_agrees(n in 1u64..300, end in 0u64..300) {
            let l = leaves(n);
            let end = end % (n + 1);
            // Every prefix is one of the RFC's ranges.
            let got = mth_from_perfect(0, end, &mut perfect_of(&l)).unwrap();
            prop_assert_eq!(got, root(&l[..end as usize]));
        }

        #[test]
        fn inclusion_proofs_verify(n in 1u64..400, i in 0u64..400) {
            let l = leaves(n);
            let i = i % n;
            let r = root(&l);
            let p = inclusion_proof(i, &l).unwrap();
            prop_assert!(verify_inclusion(&l[i as usize], i, n, &p, &r).is_ok());
            // The stored-tree path gives the same proof.
            let mut perfect = perfect_of(&l);
            let p2 = inclusion_proof_with(i, n, &mut |s, e| mth_from_perfect(s, e, &mut perfect))
                .unwrap();
            prop_assert_eq!(&p, &p2);
            // A wrong leaf, index, size, root or any altered proof hash fails.
            let other = leaf_hash(b"other");
            prop_assert!(verify_inclusion(&other, i, n, &p, &r).is_err());
            for j in 0..n {
                if j != i && l[j as usize] != l[i as usize] {
                    prop_assert!(verify_inclusion(&l[i as usize], j, n, &p, &r).is_err());
                }
            }
            // The size is bound to the root by the signed head, so a wrong
            // size is checked against the root of a tree of that size.
            let bigger = leaves(n + 1);
            prop_assert!(verify_inclusion(&l[i as usize], i, n + 1, &p, &root(&bigger)).is_err());
            if i < n - 1 {
                let smaller = root(&l[..n as usize - 1]);
                prop_assert!(verify_inclusion(&l[i as usize], i, n - 1, &p, &smaller).is_err());
            }
            prop_assert!(verify_inclusion(&l[i as usize], i, n, &p, &other).is_err());
            for k in 0..p.len() {
                let mut bad = p.clone();
                bad[k].0[k % 32] ^= 1;
                prop_assert!(verify_inclusion(&l[i as usize], i, n, &bad, &r).is_err());
            }
            let mut longer = p.clone();
            longer.push(other);
            prop_assert!(verify_inclusion(&l[i as usize], i, n, &longer, &r).is_err());
            if !p.is_empty() {
                prop_assert!(verify_inclusion(&l[i as usize], i, n, &p[1..], &r).is_err());
            }
        }

        #[test]
        fn consistency_proofs_verify(n in 1u64..400, m in 0u64..400) {
            let l = leaves(n);
            let m = m % (n + 1);
            let (r1, r2) = (root(&l[..m as usize]), root(&l));
            let p = consistency_proof(m, &l).unwrap();
            prop_assert!(verify_consistency(m, n, &r1, &r2, &p).is_ok());
            let mut perfect = perfect_of(&l);
            let p2 = consistency_proof_with(m, n, &mut |s, e| mth_from_perfect(s, e, &mut perfect))
                .unwrap();
            prop_assert_eq!(&p, &p2);
            let other = leaf_hash(b"other");
            prop_assert!(verify_consistency(m, n, &other, &r2, &p).is_err());
            prop_assert!(verify_consistency(m, n, &r1, &other, &p).is_err() || m == 0);
            for k in 0..p.len() {
                let mut bad = p.clone();
                bad[k].0[(k * 7) % 32] ^= 0x80;
                prop_assert!(verify_consistency(m, n, &r1, &r2, &bad).is_err());
            }
            if 0 < m && m < n {
                let shorter = root(&l[..m as usize - 1]);
                prop_assert!(verify_consistency(m - 1, n, &shorter, &r2, &p).is_err());
                let longer = root(&leaves(n + 1));
                prop_assert!(verify_consistency(m, n + 1, &r1, &longer, &p).is_err());
                let later = root(&l[..m as usize + 1]);
                prop_assert!(verify_consistency(m + 1, n, &later, &r2, &p).is_err());
                // A forked tree: same size, one old leaf changed.
                let mut fork = l.clone();
                fork[0] = other;
                let pf = consistency_proof(m, &fork).unwrap();
                prop_assert!(verify_consistency(m, n, &r1, &root(&fork), &pf).is_err());
            }
        }
    }
}
