//! The writer's Merkle tree, exactly as RFC 6962 §2.1 defines it.
//!
//! * leaf hash: `SHA-256(0x00 || entry)`, node hash: `SHA-256(0x01 || left || right)`;
//! * `MTH({})` is `SHA-256()` (the hash of nothing), `MTH({d0}) = leaf_hash(d0)`,
//!   and for `n > 1`, with `k` the largest power of two smaller than `n`,
//!   `MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))`;
//! * the audit path `PATH(m, D[n])` (inclusion proof, §2.1.1) and
//!   `PROOF(m, D[n])` (consistency proof, §2.1.2) are the RFC's recursive
//!   definitions, transcribed once (`path`, `subproof`) over any
//!   source of subtree hashes.
//!
//! Two sources exist: the plain functions [`root`], [`inclusion_proof`] and
//! [`consistency_proof`] recompute everything from a slice of leaf hashes
//! (O(n), the reference), and [`Tree`] keeps the hashes of complete aligned
//! subtrees so roots cost O(log n) and proofs O(log² n) hashes at millions
//! of leaves. Proofs made here are checked by the independent
//! [`crate::verifier`], which shares no code with this module.

use ring::digest;

/// A SHA-256 output: leaf hashes, node hashes and tree roots.
pub type Hash = [u8; 32];

/// Domain separation prefix of a leaf hash (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of an interior node hash (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// The lowest level of complete subtrees that [`Tree`] stores. Levels 1..=3
/// (subtrees of 2, 4 and 8 leaves) are recomputed from the leaves when
/// needed (at most 7 hashes), which cuts the memory for interior nodes from
/// ~32 to ~4 bytes per leaf while keeping roots and proofs logarithmic.
const STORED_FROM_LEVEL: u32 = 4;

fn finish(d: digest::Digest) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `SHA-256(0x00 || entry)`: the hash of one log entry (RFC 6962 §2.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[LEAF_PREFIX]);
    ctx.update(entry);
    finish(ctx.finish())
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous buffer and one digest call: this runs about once per
    // leaf when trees are rebuilt, so it is worth avoiding a Context.
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    finish(digest::digest(&digest::SHA256, &buf))
}

/// `MTH({})`: the root of the empty tree, SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    finish(digest::digest(&digest::SHA256, b""))
}

/// The `k` of RFC 6962 §2.1: the largest power of two smaller than `n`
/// (`n > 1`).
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// `PATH(m, D[start:end])` (RFC 6962 §2.1.1), `m` relative to `start`,
/// appended to `out`. `mth(a, b)` must return `MTH(D[a:b])`.
fn path(m: u64, start: u64, end: u64, mth: &impl Fn(u64, u64) -> Hash, out: &mut Vec<Hash>) {
    let n = end - start;
    // PATH(0, {d0}) = {}
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
        path(m, start, start + k, mth, out);
        out.push(mth(start + k, end));
    } else {
        // PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
        path(m - k, start + k, end, mth, out);
        out.push(mth(start, start + k));
    }
}

/// `SUBPROOF(m, D[start:end], complete)` (RFC 6962 §2.1.2), `m` relative to
/// `start`, appended to `out`.
fn subproof(
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    mth: &impl Fn(u64, u64) -> Hash,
    out: &mut Vec<Hash>,
) {
    let n = end - start;
    if m == n {
        // SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
        if !complete {
            out.push(mth(start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        // SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
        subproof(m, start, start + k, complete, mth, out);
        out.push(mth(start + k, end));
    } else {
        // SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
        subproof(m - k, start + k, end, false, mth, out);
        out.push(mth(start, start + k));
    }
}

/// `MTH(D[start:end])` recomputed from the leaf hashes (the reference).
fn slice_mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&slice_mth(&leaves[..k]), &slice_mth(&leaves[k..]))
        }
    }
}

/// `MTH(D[n])` of these leaf hashes, recomputed from scratch in O(n).
pub fn root(leaves: &[Hash]) -> Hash {
    slice_mth(leaves)
}

/// `PATH(index, D[n])` over these leaf hashes (n = `leaves.len()`), or
/// `None` when `index >= n`. Recomputes every subtree: for tests and small
/// trees; [`Tree::inclusion_proof`] is the fast equivalent.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Option<Vec<Hash>> {
    let n = leaves.len() as u64;
    if index >= n {
        return None;
    }
    let mut out = Vec::new();
    let mth = |a: u64, b: u64| slice_mth(&leaves[a as usize..b as usize]);
    path(index, 0, n, &mth, &mut out);
    Some(out)
}

/// `PROOF(old_size, D[n])` over these leaf hashes (n = `leaves.len()`), or
/// `None` unless `0 < old_size <= n` (RFC 6962 defines no proof from the
/// empty tree). Recomputes every subtree; [`Tree::consistency_proof`] is the
/// fast equivalent.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Option<Vec<Hash>> {
    let n = leaves.len() as u64;
    if old_size == 0 || old_size > n {
        return None;
    }
    let mut out = Vec::new();
    let mth = |a: u64, b: u64| slice_mth(&leaves[a as usize..b as usize]);
    subproof(old_size, 0, n, true, &mth, &mut out);
    Some(out)
}

/// An append-only Merkle tree over leaf hashes that answers roots and
/// proofs for any earlier size in logarithmic time.
///
/// Keeps every leaf hash (32 bytes per leaf) and the hashes of complete,
/// aligned subtrees of 16 leaves or more (about 4 bytes per leaf).
#[derive(Debug, Default, Clone)]
pub struct Tree {
    leaves: Vec<Hash>,
    /// `upper[j]` holds the roots of the complete subtrees of level
    /// `STORED_FROM_LEVEL + j` (2^level leaves each), left to right.
    upper: Vec<Vec<Hash>>,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Reserves memory for `additional` more leaves.
    pub fn reserve(&mut self, additional: usize) {
        self.leaves.reserve(additional);
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The leaf hash at `index`, if the tree has it.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.leaves.get(i))
            .copied()
    }

    /// All leaf hashes, in order.
    pub fn leaves(&self) -> &[Hash] {
        &self.leaves
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.leaves.push(leaf);
        let n = self.leaves.len() as u64;
        let block = 1u64 << STORED_FROM_LEVEL;
        if !n.is_multiple_of(block) {
            return;
        }
        // A subtree of 16 leaves just completed: store its root, then every
        // larger subtree it completes in turn.
        let index = n / block - 1;
        let below = STORED_FROM_LEVEL - 1;
        let mut hash = node_hash(
            &self.complete(below, 2 * index),
            &self.complete(below, 2 * index + 1),
        );
        let mut level = 0;
        loop {
            if self.upper.len() == level {
                self.upper.push(Vec::new());
            }
            let row = &mut self.upper[level];
            row.push(hash);
            let len = row.len();
            if !len.is_multiple_of(2) {
                break;
            }
            hash = node_hash(&row[len - 2], &row[len - 1]);
            level += 1;
        }
    }

    /// Root of the complete subtree of `2^level` leaves at position `index`
    /// (leaves `index * 2^level ..`). The caller guarantees it exists.
    fn complete(&self, level: u32, index: u64) -> Hash {
        if level == 0 {
            self.leaves[index as usize]
        } else if level >= STORED_FROM_LEVEL {
            self.upper[(level - STORED_FROM_LEVEL) as usize][index as usize]
        } else {
            node_hash(
                &self.complete(level - 1, 2 * index),
                &self.complete(level - 1, 2 * index + 1),
            )
        }
    }

    /// `MTH(D[start:end])`, `end <= len`. Ranges met in the RFC recursions
    /// decompose into complete aligned subtrees, which are looked up.
    fn mth(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && start.is_multiple_of(n) {
            return self.complete(n.trailing_zeros(), start / n);
        }
        let k = split(n);
        node_hash(&self.mth(start, start + k), &self.mth(start + k, end))
    }

    /// `MTH` of the first `size` leaves, or `None` when `size > len`.
    pub fn root(&self, size: u64) -> Option<Hash> {
        (size <= self.len()).then(|| self.mth(0, size))
    }

    /// `PATH(index, D[size])`: the inclusion proof of leaf `index` in the
    /// tree of the first `size` leaves, or `None` unless
    /// `index < size <= len`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.len() {
            return None;
        }
        let mut out = Vec::new();
        path(index, 0, size, &|a, b| self.mth(a, b), &mut out);
        Some(out)
    }

    /// `PROOF(old_size, D[new_size])`: the consistency proof between the
    /// trees of the first `old_size` and `new_size` leaves, or `None` unless
    /// `0 < old_size <= new_size <= len`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Option<Vec<Hash>> {
        if old_size == 0 || old_size > new_size || new_size > self.len() {
            return None;
        }
        let mut out = Vec::new();
        subproof(
            old_size,
            0,
            new_size,
            true,
            &|a, b| self.mth(a, b),
            &mut out,
        );
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The eight leaves of the RFC 6962 reference tests (certificate
    /// transparency's and transparency-dev/merkle's test data) and the
    /// roots of their first 1..=8.
    const RFC_LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    const RFC_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(root(&[]), empty_root());
        assert_eq!(Tree::new().root(0), Some(empty_root()));
    }

    #[test]
    fn reference_roots_match_rfc_test_data() {
        let leaves: Vec<Hash> = RFC_LEAVES.iter().map(|e| leaf_hash(e)).collect();
        let mut tree = Tree::new();
        for (i, leaf) in leaves.iter().enumerate() {
            tree.push(*leaf);
            assert_eq!(hex(&root(&leaves[..=i])), RFC_ROOTS[i], "size {}", i + 1);
            assert_eq!(hex(&tree.root(i as u64 + 1).unwrap()), RFC_ROOTS[i]);
        }
    }

    #[test]
    fn tree_agrees_with_reference_across_stored_levels() {
        // Sizes past several multiples of 16 exercise the stored levels.
        let leaves: Vec<Hash> = (0u32..300).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut tree = Tree::new();
        for leaf in &leaves {
            tree.push(*leaf);
        }
        for n in [
            0u64, 1, 2, 15, 16, 17, 31, 32, 33, 64, 100, 255, 256, 257, 300,
        ] {
            assert_eq!(
                tree.root(n).unwrap(),
                root(&leaves[..n as usize]),
                "root {n}"
            );
        }
        for (m, n) in [
            (0u64, 1u64),
            (5, 17),
            (16, 33),
            (200, 300),
            (299, 300),
            (255, 256),
        ] {
            assert_eq!(
                tree.inclusion_proof(m, n),
                inclusion_proof(&leaves[..n as usize], m),
                "path {m} {n}"
            );
        }
        for (m, n) in [
            (1u64, 1u64),
            (1, 300),
            (16, 17),
            (17, 256),
            (100, 257),
            (299, 300),
        ] {
            assert_eq!(
                tree.consistency_proof(m, n),
                consistency_proof(&leaves[..n as usize], m),
                "proof {m} {n}"
            );
        }
        assert_eq!(tree.root(301), None);
        assert_eq!(tree.inclusion_proof(300, 300), None);
        assert_eq!(tree.consistency_proof(0, 3), None);
        assert_eq!(tree.consistency_proof(4, 3), None);
    }
}
