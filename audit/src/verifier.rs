//! An independent verifier of RFC 6962 / RFC 9162 proofs.
//!
//! Written from the iterative algorithms of RFC 9162 §2.1.3.2 (verifying an
//! inclusion proof) and §2.1.4.2 (verifying a consistency proof), and
//! deliberately sharing no code with the writer's [`crate::merkle`]: a bug
//! in the recursive proof construction there is then caught here instead of
//! being mirrored. Only ring's SHA-256 is shared, behind this module's own
//! tiny helper.
//!
//! Hashes are taken as byte slices, not `[u8; 32]`, because auditors hand
//! in whatever they decoded: a hash of the wrong length is rejected, not
//! truncated or padded.

use ring::digest;

/// Length of every hash in the tree (SHA-256).
const HASH_LEN: usize = 32;

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange {
        /// The leaf index given.
        index: u64,
        /// The tree size given.
        size: u64,
    },
    /// A hash (leaf, proof element or root) is not 32 bytes long.
    #[error("{what} is {len} bytes long, a SHA-256 hash is 32")]
    HashLength {
        /// Which hash.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The proof has more elements than the tree sizes allow.
    #[error("the proof has more elements than the tree sizes allow")]
    TooLong,
    /// The proof has fewer elements than the tree sizes need.
    #[error("the proof has fewer elements than the tree sizes need")]
    TooShort,
    /// The second tree is smaller than the first.
    #[error("the second tree size {size2} is smaller than the first {size1}")]
    SizesDecrease {
        /// The first tree size.
        size1: u64,
        /// The second tree size.
        size2: u64,
    },
    /// RFC 9162 defines consistency only from a non-empty tree: any tree
    /// extends the empty one, so such a proof proves nothing.
    #[error("a consistency proof from the empty tree proves nothing")]
    EmptyFirstTree,
    /// Equal tree sizes need an empty proof.
    #[error("the tree sizes are equal but the proof is not empty")]
    UnexpectedProof,
    /// The hashes computed from the proof differ from the roots given.
    #[error("the proof does not lead to the given root hash")]
    RootMismatch,
}

/// SHA-256(0x01 || left || right): RFC 9162's `HASH(0x01 || left || right)`.
fn hash_children(left: &[u8], right: &[u8]) -> [u8; HASH_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn check_len(what: &'static str, hash: &[u8]) -> Result<(), ProofError> {
    if hash.len() == HASH_LEN {
        Ok(())
    } else {
        Err(ProofError::HashLength {
            what,
            len: hash.len(),
        })
    }
}

/// Verifies that the leaf with hash `leaf_hash` is at `index` in the tree of
/// `tree_size` leaves whose root is `root`, given the inclusion proof
/// (audit path) `proof` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion<P: AsRef<[u8]>>(
    leaf_hash: &[u8],
    index: u64,
    tree_size: u64,
    proof: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    // 1. leaf_index must be below tree_size.
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            index,
            size: tree_size,
        });
    }
    check_len("the leaf hash", leaf_hash)?;
    check_len("the root hash", root)?;
    for p in proof {
        check_len("a proof element", p.as_ref())?;
    }
    // 2. fn = leaf_index, sn = tree_size - 1.
    let mut fnum = index;
    let mut snum = tree_size - 1;
    // 3. r = hash.
    let mut r = [0u8; HASH_LEN];
    r.copy_from_slice(leaf_hash);
    // 4. For each p in the inclusion path:
    for p in proof {
        let p = p.as_ref();
        if snum == 0 {
            return Err(ProofError::TooLong);
        }
        if fnum & 1 == 1 || fnum == snum {
            r = hash_children(p, &r);
            if fnum & 1 == 0 {
                while fnum & 1 == 0 && fnum != 0 {
                    fnum >>= 1;
                    snum >>= 1;
                }
            }
        } else {
            r = hash_children(&r, p);
        }
        fnum >>= 1;
        snum >>= 1;
    }
    // 5. sn must be 0 and r must equal the root.
    if snum != 0 {
        return Err(ProofError::TooShort);
    }
    if r.as_slice() != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `size2` leaves with root `root2` extends the
/// tree of `size1` leaves with root `root1`, given the consistency proof
/// `proof` (RFC 9162 §2.1.4.2).
///
/// Equal sizes are consistent with an empty proof exactly when the roots are
/// equal. A first size of 0 is rejected ([`ProofError::EmptyFirstTree`]):
/// RFC 9162 defines the check for `0 < size1 < size2` only.
pub fn verify_consistency<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(ProofError::SizesDecrease { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::EmptyFirstTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::UnexpectedProof);
        }
        // The same tree: nothing to hash, the roots must simply be equal.
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // 1. An empty consistency path fails.
    if proof.is_empty() {
        return Err(ProofError::TooShort);
    }
    check_len("the first root hash", root1)?;
    check_len("the second root hash", root2)?;
    for p in proof {
        check_len("a proof element", p.as_ref())?;
    }
    // 2. If first is an exact power of 2, prepend first_hash to the path.
    let mut path: Vec<&[u8]> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(root1);
    }
    path.extend(proof.iter().map(|p| p.as_ref()));
    // 3. fn = first - 1, sn = second - 1.
    let mut fnum = size1 - 1;
    let mut snum = size2 - 1;
    // 4. If LSB(fn) is set, right-shift both until it is not.
    while fnum & 1 == 1 {
        fnum >>= 1;
        snum >>= 1;
    }
    // 5. fr and sr start as the first value of the path.
    let mut fr = [0u8; HASH_LEN];
    fr.copy_from_slice(path[0]);
    let mut sr = fr;
    // 6. For each subsequent value c:
    for c in &path[1..] {
        if snum == 0 {
            return Err(ProofError::TooLong);
        }
        if fnum & 1 == 1 || fnum == snum {
            fr = hash_children(c, &fr);
            sr = hash_children(c, &sr);
            if fnum & 1 == 0 {
                while fnum & 1 == 0 && fnum != 0 {
                    fnum >>= 1;
                    snum >>= 1;
                }
            }
        } else {
            sr = hash_children(&sr, c);
        }
        fnum >>= 1;
        snum >>= 1;
    }
    // 7. fr must equal first_hash, sr second_hash, and sn must be 0.
    if snum != 0 {
        return Err(ProofError::TooShort);
    }
    if fr.as_slice() != root1 || sr.as_slice() != root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-256(0x00 || data), written out here rather than borrowed from the
    /// writer.
    fn leaf(data: &[u8]) -> [u8; 32] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&[0x00]);
        ctx.update(data);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    #[test]
    fn three_leaf_tree_by_hand() {
        // MTH of {a, b, c} = H(H(a, b), c), computed by hand.
        let (a, b, c) = (leaf(b"a"), leaf(b"b"), leaf(b"c"));
        let ab = hash_children(&a, &b);
        let root3 = hash_children(&ab, &c);
        verify_inclusion(&a, 0, 3, &[b, c], &root3).unwrap();
        verify_inclusion(&b, 1, 3, &[a, c], &root3).unwrap();
        verify_inclusion(&c, 2, 3, &[ab], &root3).unwrap();
        assert_eq!(
            verify_inclusion(&c, 2, 3, &[a], &root3),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_inclusion(&c, 2, 3, &[ab, ab], &root3),
            Err(ProofError::TooLong)
        );
        assert_eq!(
            verify_inclusion(&a, 0, 3, &[b], &root3),
            Err(ProofError::TooShort)
        );
        // {a, b} -> {a, b, c}: size 2 is a power of two, so root1 is implied.
        verify_consistency(2, 3, &[c], &ab, &root3).unwrap();
        // {a} -> {a, b, c}: PROOF(1, D[3]) = {b, c}.
        verify_consistency(1, 3, &[b, c], &a, &root3).unwrap();
        assert!(verify_consistency(1, 3, &[c, b], &a, &root3).is_err());
        assert_eq!(
            verify_consistency::<[u8; 32]>(0, 3, &[], &a, &root3),
            Err(ProofError::EmptyFirstTree)
        );
    }
}
