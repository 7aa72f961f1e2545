//! RFC 9162 Merkle tree (§2.1; identical to RFC 6962 §2.1).
//!
//! The gateway uses one tree shape twice: the block log (one leaf per sealed
//! block, up to millions over years) and the records inside one block (up to
//! a few thousand). Everything here is pure computation over hashes already
//! in memory.
//!
//! * Hashes are SHA-256. A leaf is `SHA-256(0x00 || entry)`, an inner node
//!   `SHA-256(0x01 || left || right)`; the prefixes keep a leaf from ever
//!   being mistaken for an inner node (second-preimage resistance).
//! * The Merkle Tree Hash of the empty tree is `SHA-256("")`; of one leaf,
//!   its leaf hash; of `n > 1` leaves, the node hash of the first `k` leaves'
//!   tree and the remaining `n - k` leaves' tree, where `k` is the largest
//!   power of two strictly smaller than `n`.
//! * A proof is a plain list of hashes in the RFC's order (§2.1.3.1 PATH and
//!   §2.1.4.1 PROOF), bottom of the tree first. The verifiers are the RFC's
//!   §2.1.3.2 and §2.1.4.2 algorithms step by step, so an independent
//!   verifier written from the RFC agrees with this one bit for bit.
//!
//! Functions taking `leaves` take *leaf hashes* ([`leaf_hash`] of each
//! entry), never raw entries. Proof generation is O(n) hashing with
//! recursion depth at most 64 and no allocation per node; [`Frontier`] keeps
//! a growing log's root current in O(log n) per append.

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, an inner node hash or a tree root.
pub type Hash = [u8; 32];

/// Merkle Tree Hash of the empty tree: SHA-256 of the empty string
/// (RFC 9162 §2.1.1), so an empty log still has a well-defined root.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Domain-separation byte hashed before a leaf's entry.
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation byte hashed before an inner node's two children.
const NODE_PREFIX: u8 = 0x01;

/// Why a proof could not be produced or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// An inclusion proof was asked of or checked against a tree with no
    /// leaves: nothing can be included in it.
    #[error("the tree is empty: no leaf can be included in it")]
    EmptyTree,
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is out of range for a tree of {size} leaves")]
    IndexOutOfRange {
        /// The 0-based leaf index asked for.
        index: u64,
        /// The number of leaves in the tree.
        size: u64,
    },
    /// A consistency proof was asked between an older tree that is larger
    /// than the newer one: a log only grows.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNew {
        /// The claimed older tree size.
        old_size: u64,
        /// The claimed newer tree size.
        new_size: u64,
    },
    /// The proof does not have exactly as many hashes as the RFC algorithm
    /// consumes for these sizes (it was truncated, extended, or is for other
    /// sizes).
    #[error("proof has {got} hashes but must have exactly {expected}")]
    WrongProofLength {
        /// The number of hashes supplied.
        got: usize,
        /// The number of hashes these sizes require.
        expected: usize,
    },
    /// The inclusion proof leads to a root other than the one expected.
    #[error("the inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// The consistency proof does not reproduce the older tree's root.
    #[error("the consistency proof does not lead to the old root")]
    OldRootMismatch,
    /// The consistency proof does not reproduce the newer tree's root.
    #[error("the consistency proof does not lead to the new root")]
    NewRootMismatch,
    /// Two tree heads of the same size name different roots: the log forked.
    #[error("two trees of the same size {size} have different roots")]
    SameSizeDifferentRoots {
        /// The common tree size.
        size: u64,
    },
    /// The older tree is empty but its root is not SHA-256 of the empty
    /// string.
    #[error("the root of an empty tree must be SHA-256 of the empty string")]
    EmptyTreeRootMismatch,
}

/// Hash one log entry into a leaf: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// Hash two child nodes into their parent: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Merkle Tree Hash (RFC 9162 §2.1.1) over already-hashed leaves
/// ([`leaf_hash`] of each entry); [`EMPTY_ROOT`] for no leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    subtree_root(leaves)
}

/// Audit path `PATH(index, D[n])` of RFC 9162 §2.1.3.1 over `leaves`
/// (`n = leaves.len()`): the sibling subtree roots from the leaf up to the
/// root, the leaf's own sibling first. Empty for a one-leaf tree.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = len_u64(leaves);
    if size == 0 {
        return Err(ProofError::EmptyTree);
    }
    let out_of_range = ProofError::IndexOutOfRange { index, size };
    let mut m = usize::try_from(index).map_err(|_| out_of_range.clone())?;
    if m >= leaves.len() {
        return Err(out_of_range);
    }
    // Walk down from the root, collecting the sibling at each level; the RFC
    // lists them bottom-up, so reverse at the end.
    let mut path = Vec::with_capacity(64);
    let mut subtree = leaves;
    while subtree.len() > 1 {
        let k = split_point(subtree.len());
        let (left, right) = subtree.split_at(k);
        if m < k {
            path.push(subtree_root(right));
            subtree = left;
        } else {
            path.push(subtree_root(left));
            subtree = right;
            m -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// Consistency proof `PROOF(old_size, D[n])` of RFC 9162 §2.1.4.1 over
/// `leaves` (`n = leaves.len()`), in the RFC's order.
///
/// The RFC defines it for `0 < old_size < n`. For `old_size == n` this
/// returns the empty proof (`SUBPROOF(n, D[n], true)`, what the recursion
/// gives) and for `old_size == 0` also the empty proof (the empty tree is a
/// prefix of every tree); [`verify_consistency`] accepts exactly those.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let new_size = len_u64(leaves);
    let too_big = ProofError::OldSizeExceedsNew { old_size, new_size };
    let mut m = usize::try_from(old_size).map_err(|_| too_big.clone())?;
    if m > leaves.len() {
        return Err(too_big);
    }
    if m == 0 || m == leaves.len() {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D, b) unrolled: walk down, collecting the subtree not
    // containing the old tree's right edge; `complete` is the RFC's `b`.
    let mut proof = Vec::with_capacity(65);
    let mut subtree = leaves;
    let mut complete = true;
    loop {
        if m == subtree.len() {
            // The old tree's last node is this whole subtree; the verifier
            // already has it as the old root only when it never went right.
            if !complete {
                proof.push(subtree_root(subtree));
            }
            break;
        }
        let k = split_point(subtree.len());
        let (left, right) = subtree.split_at(k);
        if m <= k {
            proof.push(subtree_root(right));
            subtree = left;
        } else {
            proof.push(subtree_root(left));
            subtree = right;
            m -= k;
            complete = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Number of hashes in an inclusion proof for leaf `index` of a tree of
/// `size` leaves: exactly what the §2.1.3.2 algorithm consumes, so a decoder
/// can reject a proof of the wrong length before hashing anything.
pub fn inclusion_proof_len(index: u64, size: u64) -> Result<usize, ProofError> {
    if size == 0 {
        return Err(ProofError::EmptyTree);
    }
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The index bookkeeping of §2.1.3.2 step 4, without the hashing.
    let (mut f, mut s) = (index, size - 1);
    let mut steps = 0;
    while s != 0 {
        if f & 1 == 1 || f == s {
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        }
        f >>= 1;
        s >>= 1;
        steps += 1;
    }
    Ok(steps)
}

/// Number of hashes in a consistency proof from a tree of `old_size` leaves
/// to one of `new_size`: exactly what the §2.1.4.2 algorithm consumes (0 when
/// `old_size` is 0 or equals `new_size`).
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> Result<usize, ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(0);
    }
    // The index bookkeeping of §2.1.4.2 steps 3, 4 and 6, without hashing.
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut steps = 0;
    while s != 0 {
        if f & 1 == 1 || f == s {
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        }
        f >>= 1;
        s >>= 1;
        steps += 1;
    }
    // The walk consumes every path element but the first; step 2 supplies
    // that first element (the old root) itself when old_size is a power of
    // two. Then steps >= 1, as s starts at (new_size - 1) >> log2(old_size).
    Ok(if old_size.is_power_of_two() {
        steps
    } else {
        steps + 1
    })
}

/// Check that `leaf` (a leaf hash) is leaf number `index` (0-based) of the
/// tree of `size` leaves whose root is `root`, with the RFC 9162 §2.1.3.2
/// algorithm exactly as written.
///
/// The length is checked first (against [`inclusion_proof_len`], which the
/// RFC's own `sn` checks enforce anyway) so errors say what is wrong.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // Step 1 (and the empty tree, where no index can be below the size).
    let expected = inclusion_proof_len(index, size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            expected,
        });
    }
    let wrong_length = ProofError::WrongProofLength {
        got: proof.len(),
        expected,
    };
    // Step 2: fn and sn (`fn` is a keyword).
    let (mut f, mut s) = (index, size - 1);
    // Step 3.
    let mut r = *leaf;
    // Step 4.
    for p in proof {
        // 4a.
        if s == 0 {
            return Err(wrong_length);
        }
        // 4b.
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        // 4c.
        f >>= 1;
        s >>= 1;
    }
    // Step 5.
    if s != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Check that the tree of `old_size` leaves with root `old_root` is a prefix
/// of the tree of `new_size` leaves with root `new_root`, with the RFC 9162
/// §2.1.4.2 algorithm exactly as written for `0 < old_size < new_size`.
///
/// The RFC defines the algorithm for that range only; outside it:
/// * `old_size > new_size` fails: a log only grows;
/// * `old_size == new_size` needs an empty proof and equal roots (the
///   recursion's `PROOF(n, D[n])` is empty; equal sizes with different roots
///   mean the log forked);
/// * `old_size == 0` needs an empty proof and `old_root` equal to
///   [`EMPTY_ROOT`]; any new tree extends the empty one, so `new_root` is
///   then checked only if `new_size` is also 0.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let expected = consistency_proof_len(old_size, new_size)?;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            got: proof.len(),
            expected,
        });
    }
    if old_size == 0 || old_size == new_size {
        if old_size == 0 && *old_root != EMPTY_ROOT {
            return Err(ProofError::EmptyTreeRootMismatch);
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::SameSizeDifferentRoots { size: old_size });
        }
        return Ok(());
    }
    let wrong_length = ProofError::WrongProofLength {
        got: proof.len(),
        expected,
    };
    // Step 1.
    if proof.is_empty() {
        return Err(wrong_length);
    }
    // Steps 2 and 5: the path is `old_root` followed by the proof when
    // old_size is a power of two, else the proof itself; fr and sr both
    // start at its first element and the walk consumes the rest.
    let (first, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(wrong_length),
        }
    };
    // Step 3.
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    // Step 4.
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (first, first);
    // Step 6.
    for c in rest {
        // 6a.
        if s == 0 {
            return Err(wrong_length);
        }
        // 6b.
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        // 6c.
        f >>= 1;
        s >>= 1;
    }
    // Step 7.
    if s != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// The right edge of a growing tree (one perfect-subtree root per set bit of
/// size): append in O(log n), root in O(log n), so sealing a block never
/// rehashes the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    /// Leaves appended so far.
    size: u64,
    /// Roots of the perfect subtrees the leaves decompose into, largest
    /// (leftmost) first: one per set bit of `size`, from the highest bit.
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append one leaf hash ([`leaf_hash`] of the entry).
    pub fn push(&mut self, leaf: Hash) {
        // Binary increment: each trailing 1 bit of the size is a perfect
        // subtree of the new leaf's height, which merges with it.
        let mut carry = leaf;
        let mut bits = self.size;
        while bits & 1 == 1 {
            // One node per set bit is the invariant, so this always pops.
            let Some(left) = self.nodes.pop() else { break };
            carry = node_hash(&left, &carry);
            bits >>= 1;
        }
        self.nodes.push(carry);
        // Cannot overflow: 2^64 appends are out of reach of any machine.
        self.size += 1;
    }

    /// Merkle Tree Hash of all leaves appended so far; equals
    /// [`root`] over the same leaves.
    pub fn root(&self) -> Hash {
        // MTH splits at the largest power of two, which is the leftmost
        // perfect subtree; the right part recursively splits the same way,
        // so fold from the smallest (rightmost) subtree leftwards.
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return EMPTY_ROOT;
        };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }

    /// The perfect-subtree roots, largest first (what is persisted).
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Restore a persisted frontier; `None` when the node count does not
    /// match the size (one node per set bit).
    pub fn from_nodes(size: u64, nodes: Vec<Hash>) -> Option<Self> {
        (nodes.len() == size.count_ones() as usize).then_some(Frontier { size, nodes })
    }

    /// Rebuild from leaf hashes (for start-up).
    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut frontier = Self::new();
        for leaf in leaves {
            frontier.push(*leaf);
        }
        frontier
    }
}

/// The number of leaves as a tree size (`usize` is at most 64 bits on every
/// supported target, so this is lossless).
fn len_u64(leaves: &[Hash]) -> u64 {
    leaves.len() as u64
}

/// Largest power of two strictly smaller than `n`; callers pass `n >= 2`.
fn split_point(n: usize) -> usize {
    // `n - 1 >= 1`, so its highest set bit is the answer.
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH over a slice of leaf hashes; recursion depth is log2 of its length.
fn subtree_root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => EMPTY_ROOT,
        [leaf] => *leaf,
        _ => {
            let (left, right) = leaves.split_at(split_point(leaves.len()));
            node_hash(&subtree_root(left), &subtree_root(right))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hx(s: &str) -> Hash {
        let bytes: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    fn sha256(parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    // Known-answer data: the RFC 6962 reference tree used by the Certificate
    // Transparency project, google/certificate-transparency
    // src/merkletree/merkle_tree_test.cc (kInputs, kSHA256Roots,
    // kSHA256Paths, kSHA256Proofs; note its leaf numbers there are 1-based)
    // and transparency-dev/merkle testonly/constants.go (LeafInputs,
    // NodeHashes, RootHashes) and testonly/reference_test.go
    // (TestRefInclusionProof, TestRefConsistencyProof).
    const INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// Roots of the reference tree for sizes 0 to 8.
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Leaf hashes of the eight inputs (NodeHashes level 0).
    const LEAF_HASHES: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ];

    /// (index, size, path), indices 0-based.
    const PATHS: [(u64, usize, &[&str]); 7] = [
        (0, 1, &[]),
        (
            0,
            2,
            &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
        ),
        (
            1,
            2,
            &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    /// (old_size, new_size, proof).
    const PROOFS: [(u64, usize, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    fn reference_leaves() -> Vec<Hash> {
        INPUTS
            .iter()
            .map(|s| {
                let bytes: Vec<u8> = (0..s.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                    .collect();
                leaf_hash(&bytes)
            })
            .collect()
    }

    /// Distinct leaves for the exhaustive tests.
    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn flip(h: &Hash, bit: usize) -> Hash {
        let mut h = *h;
        h[(bit / 8) % 32] ^= 1 << (bit % 8);
        h
    }

    // The RFC's recursive definitions, written as literally as possible, to
    // hold the unrolled generators to.

    fn ref_k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn ref_mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => sha256(&[]),
            1 => d[0],
            n => {
                let k = ref_k(n);
                let mut buf = vec![0x01];
                buf.extend_from_slice(&ref_mth(&d[..k]));
                buf.extend_from_slice(&ref_mth(&d[k..]));
                sha256(&[&buf])
            }
        }
    }

    fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let k = ref_k(n);
        let (mut path, sibling) = if m < k {
            (ref_path(m, &d[..k]), ref_mth(&d[k..]))
        } else {
            (ref_path(m - k, &d[k..]), ref_mth(&d[..k]))
        };
        path.push(sibling);
        path
    }

    fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![ref_mth(d)] };
        }
        let k = ref_k(n);
        let (mut proof, other) = if m <= k {
            (ref_subproof(m, &d[..k], b), ref_mth(&d[k..]))
        } else {
            (ref_subproof(m - k, &d[k..], false), ref_mth(&d[..k]))
        };
        proof.push(other);
        proof
    }

    /// Which side each inclusion proof element is hashed on (true: left),
    /// from the §2.1.3.2 bookkeeping alone.
    fn inclusion_walk(index: u64, size: u64) -> Vec<bool> {
        let (mut f, mut s) = (index, size - 1);
        let mut walk = vec![];
        while s != 0 {
            let left = f & 1 == 1 || f == s;
            if left {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
            walk.push(left);
            f >>= 1;
            s >>= 1;
        }
        walk
    }

    /// Whether the old root is prepended, and which branch of step 6b each
    /// further element takes, from the §2.1.4.2 bookkeeping alone.
    fn consistency_walk(old: u64, new: u64) -> (bool, Vec<bool>) {
        let (mut f, mut s) = (old - 1, new - 1);
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        let mut walk = vec![];
        while s != 0 {
            let both = f & 1 == 1 || f == s;
            if both {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
            walk.push(both);
            f >>= 1;
            s >>= 1;
        }
        (old.is_power_of_two(), walk)
    }

    #[test]
    fn empty_tree_root_is_sha256_of_the_empty_string() {
        assert_eq!(EMPTY_ROOT, hx(ROOTS[0]));
        assert_eq!(EMPTY_ROOT, sha256(&[]));
        assert_eq!(root(&[]), EMPTY_ROOT);
        assert_eq!(Frontier::new().root(), EMPTY_ROOT);
    }

    #[test]
    fn leaf_and_node_hashes_are_prefixed_with_0x00_and_0x01() {
        assert_eq!(leaf_hash(b"abc"), sha256(&[&[0x00], b"abc"]));
        let (l, r) = (leaf_hash(b"l"), leaf_hash(b"r"));
        assert_eq!(node_hash(&l, &r), sha256(&[&[0x01], &l, &r]));
        assert_ne!(node_hash(&l, &r), node_hash(&r, &l));
    }

    #[test]
    fn leaf_hashes_match_the_reference_tree() {
        for (leaf, want) in reference_leaves().iter().zip(LEAF_HASHES) {
            assert_eq!(*leaf, hx(want));
        }
    }

    #[test]
    fn roots_match_the_reference_tree_for_every_size_from_0_to_8() {
        let leaves = reference_leaves();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), hx(ROOTS[0]));
        for n in 1..=8 {
            assert_eq!(root(&leaves[..n]), hx(ROOTS[n]), "size {n}");
            frontier.push(leaves[n - 1]);
            assert_eq!(frontier.root(), hx(ROOTS[n]), "frontier size {n}");
            assert_eq!(Frontier::from_leaves(&leaves[..n]).root(), hx(ROOTS[n]));
        }
    }

    #[test]
    fn inclusion_paths_match_the_reference_vectors_and_verify() {
        let leaves = reference_leaves();
        for (index, size, want) in PATHS {
            let want: Vec<Hash> = want.iter().map(|s| hx(s)).collect();
            let got = inclusion_proof(&leaves[..size], index).unwrap();
            assert_eq!(got, want, "PATH({index}, D[{size}])");
            let leaf = &leaves[index as usize];
            verify_inclusion(leaf, index, size as u64, &got, &hx(ROOTS[size])).unwrap();
        }
    }

    #[test]
    fn consistency_proofs_match_the_reference_vectors_and_verify() {
        let leaves = reference_leaves();
        for (old, new, want) in PROOFS {
            let want: Vec<Hash> = want.iter().map(|s| hx(s)).collect();
            let got = consistency_proof(&leaves[..new], old).unwrap();
            assert_eq!(got, want, "PROOF({old}, D[{new}])");
            let (old_root, new_root) = (hx(ROOTS[old as usize]), hx(ROOTS[new]));
            verify_consistency(old, new as u64, &old_root, &new_root, &got).unwrap();
        }
    }

    #[test]
    fn rfc_9162_section_2_1_5_examples_hold_for_seven_leaves() {
        // The seven-leaf tree of RFC 9162 §2.1.5: leaves a..f and j hash
        // d0..d6; g, h, i, k, l are the inner nodes of its figure.
        let d = reference_leaves();
        let [a, b, c, dd, e, f, j, _]: [Hash; 8] = d.as_slice().try_into().unwrap();
        let (g, h, i) = (node_hash(&a, &b), node_hash(&c, &dd), node_hash(&e, &f));
        let (k, l) = (node_hash(&g, &h), node_hash(&i, &j));
        let d7 = &d[..7];
        assert_eq!(root(d7), node_hash(&k, &l));
        assert_eq!(inclusion_proof(d7, 0).unwrap(), [b, h, l]);
        assert_eq!(inclusion_proof(d7, 3).unwrap(), [c, g, l]);
        assert_eq!(inclusion_proof(d7, 4).unwrap(), [f, j, k]);
        assert_eq!(inclusion_proof(d7, 6).unwrap(), [i, k]);
        assert_eq!(consistency_proof(d7, 3).unwrap(), [c, dd, g, l]);
        assert_eq!(consistency_proof(d7, 4).unwrap(), [l]);
        assert_eq!(consistency_proof(d7, 6).unwrap(), [i, j, k]);
    }

    #[test]
    fn generated_proofs_equal_the_rfc_recursive_definitions_up_to_64_leaves() {
        let all = leaves(64);
        for n in 1..=64 {
            let d = &all[..n];
            assert_eq!(root(d), ref_mth(d), "MTH(D[{n}])");
            for m in 0..n {
                assert_eq!(inclusion_proof(d, m as u64).unwrap(), ref_path(m, d));
            }
            for m in 1..=n {
                let want = ref_subproof(m, d, true);
                assert_eq!(consistency_proof(d, m as u64).unwrap(), want, "{m} {n}");
            }
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_for_every_size_up_to_64() {
        let all = leaves(64);
        for n in 1..=64 {
            let d = &all[..n];
            let r = root(d);
            for (i, leaf) in d.iter().enumerate() {
                let proof = inclusion_proof(d, i as u64).unwrap();
                assert_eq!(
                    proof.len(),
                    inclusion_proof_len(i as u64, n as u64).unwrap()
                );
                verify_inclusion(leaf, i as u64, n as u64, &proof, &r).unwrap();
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_for_every_pair_of_sizes_up_to_64() {
        let all = leaves(64);
        let roots: Vec<Hash> = (0..=64).map(|n| root(&all[..n])).collect();
        for n in 0..=64 {
            for m in 0..=n {
                let proof = consistency_proof(&all[..n], m as u64).unwrap();
                let (m64, n64) = (m as u64, n as u64);
                assert_eq!(proof.len(), consistency_proof_len(m64, n64).unwrap());
                verify_consistency(m64, n64, &roots[m], &roots[n], &proof).unwrap();
            }
        }
    }

    #[test]
    fn frontier_root_equals_root_at_every_size() {
        let all = leaves(1100);
        let mut frontier = Frontier::new();
        for n in 1..=all.len() {
            frontier.push(all[n - 1]);
            assert_eq!(frontier.size(), n as u64);
            if n <= 64 || n % 97 == 0 || n.is_power_of_two() || n == all.len() {
                assert_eq!(frontier.root(), root(&all[..n]), "size {n}");
                assert_eq!(Frontier::from_leaves(&all[..n]), frontier);
            }
            // One subtree root per set bit of the size.
            assert_eq!(frontier.nodes.len(), n.count_ones() as usize);
        }
    }

    #[test]
    fn proof_lengths_follow_the_closed_forms_given_in_the_format_docs() {
        // docs/FORMAT.md states these bit-arithmetic forms; they must agree
        // with what the RFC algorithms consume.
        fn bit_len(x: u64) -> u32 {
            u64::BITS - x.leading_zeros()
        }
        fn inclusion(m: u64, n: u64) -> usize {
            let inner = bit_len(m ^ (n - 1));
            (inner + m.checked_shr(inner).unwrap_or(0).count_ones()) as usize
        }
        fn consistency(m: u64, n: u64) -> usize {
            let inner = bit_len((m - 1) ^ (n - 1));
            let border = (m - 1).checked_shr(inner).unwrap_or(0).count_ones();
            let seed = usize::from(!m.is_power_of_two());
            (inner - m.trailing_zeros() + border) as usize + seed
        }
        let mut sizes: Vec<u64> = (1..=300).collect();
        for shift in [31, 32, 33, 62, 63] {
            let p = 1u64 << shift;
            sizes.extend([p - 1, p, p + 1, p + 12345]);
        }
        sizes.extend([u64::MAX - 1, u64::MAX]);
        for &n in &sizes {
            let mut olds: Vec<u64> = (0..300.min(n)).collect();
            olds.extend(
                [n / 3, n / 2, n.saturating_sub(2), n - 1]
                    .into_iter()
                    .filter(|&m| m < n),
            );
            for m in olds {
                assert_eq!(inclusion_proof_len(m, n), Ok(inclusion(m, n)), "{m} {n}");
                if m > 0 {
                    let got = consistency_proof_len(m, n);
                    assert_eq!(got, Ok(consistency(m, n)), "{m} {n}");
                }
            }
        }
    }

    #[test]
    fn a_persisted_frontier_restores_to_the_same_root_and_keeps_growing() {
        let leaves: Vec<Hash> = (0u32..37).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let f = Frontier::from_leaves(&leaves[..21]);
        let mut restored = Frontier::from_nodes(f.size(), f.nodes().to_vec()).unwrap();
        assert_eq!(restored, f);
        for l in &leaves[21..] {
            restored.push(*l);
        }
        assert_eq!(restored.root(), root(&leaves));
        assert!(Frontier::from_nodes(21, f.nodes()[1..].to_vec()).is_none());
    }

    #[test]
    fn frontier_default_is_the_empty_tree() {
        assert_eq!(Frontier::default(), Frontier::new());
        assert_eq!(Frontier::from_leaves(&[]), Frontier::new());
        assert_eq!(Frontier::new().size(), 0);
    }

    #[test]
    fn inclusion_proof_fails_for_a_flipped_bit_in_the_leaf_or_any_proof_element() {
        let all = leaves(32);
        for n in 1..=32 {
            let d = &all[..n];
            let r = root(d);
            for (i, leaf) in d.iter().enumerate() {
                let (i64_, n64) = (i as u64, n as u64);
                let proof = inclusion_proof(d, i64_).unwrap();
                for bit in [0, 7, 100, 255, i * 13 + n] {
                    let bad = flip(leaf, bit);
                    let got = verify_inclusion(&bad, i64_, n64, &proof, &r);
                    assert_eq!(got, Err(ProofError::RootMismatch));
                }
                for e in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[e] = flip(&bad[e], e * 31 + i);
                    let got = verify_inclusion(leaf, i64_, n64, &bad, &r);
                    assert_eq!(got, Err(ProofError::RootMismatch), "{i} {n} {e}");
                }
            }
        }
    }

    #[test]
    fn inclusion_proof_fails_for_a_different_index() {
        let all = leaves(32);
        for n in 1..=32 {
            let d = &all[..n];
            let r = root(d);
            for i in 0..n {
                let proof = inclusion_proof(d, i as u64).unwrap();
                for j in (0..n + 2).filter(|&j| j != i) {
                    // The right leaf claimed at the wrong index, and the leaf
                    // at the wrong index with the right proof.
                    let got = verify_inclusion(&d[i], j as u64, n as u64, &proof, &r);
                    assert!(got.is_err(), "leaf {i} as {j} of {n}");
                    if j < n {
                        let got = verify_inclusion(&d[j], i as u64, n as u64, &proof, &r);
                        assert!(got.is_err(), "leaf {j} with proof of {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn inclusion_proof_fails_for_a_different_size_unless_the_rfc_walk_is_identical() {
        // §2.1.3.2 hashes in an order fixed by (index, size); two sizes that
        // give the same order (leaf 0 of 3 and of 4 leaves, say) recompute
        // the same root, so the size is bound only by the signed tree head
        // that carries size and root together. Everything else must fail.
        let all = leaves(32);
        let mut identical_walks = 0;
        for n in 1..=32 {
            let d = &all[..n];
            let r = root(d);
            for i in 0..n {
                let (i64_, n64) = (i as u64, n as u64);
                let proof = inclusion_proof(d, i64_).unwrap();
                for other in (0..=40u64).filter(|&s| s != n64) {
                    let got = verify_inclusion(&d[i], i64_, other, &proof, &r);
                    if other > i64_ && inclusion_walk(i64_, other) == inclusion_walk(i64_, n64) {
                        assert_eq!(got, Ok(()));
                        identical_walks += 1;
                    } else {
                        assert!(got.is_err(), "leaf {i} of {n} as of {other}");
                    }
                }
            }
        }
        assert!(identical_walks > 0);
    }

    #[test]
    fn inclusion_proof_fails_when_truncated_or_extended() {
        let all = leaves(32);
        for n in 1..=32 {
            let d = &all[..n];
            let r = root(d);
            for i in 0..n {
                let (i64_, n64) = (i as u64, n as u64);
                let proof = inclusion_proof(d, i64_).unwrap();
                let expected = proof.len();
                for cut in 0..expected {
                    let got = verify_inclusion(&d[i], i64_, n64, &proof[..cut], &r);
                    let want = ProofError::WrongProofLength { got: cut, expected };
                    assert_eq!(got, Err(want));
                }
                for extra in [r, d[i], [0; 32]] {
                    for at in [0, expected] {
                        let mut longer = proof.clone();
                        longer.insert(at, extra);
                        let got = verify_inclusion(&d[i], i64_, n64, &longer, &r);
                        let len = expected + 1;
                        let want = ProofError::WrongProofLength { got: len, expected };
                        assert_eq!(got, Err(want));
                    }
                }
            }
        }
    }

    #[test]
    fn inclusion_proof_fails_for_a_different_root() {
        let all = leaves(16);
        let roots: Vec<Hash> = (0..=16).map(|n| root(&all[..n])).collect();
        for n in 1..=16 {
            for i in 0..n {
                let proof = inclusion_proof(&all[..n], i as u64).unwrap();
                for (other, r) in roots.iter().enumerate().filter(|(o, _)| *o != n) {
                    let got = verify_inclusion(&all[i], i as u64, n as u64, &proof, r);
                    assert_eq!(got, Err(ProofError::RootMismatch), "{i} {n} {other}");
                }
            }
        }
    }

    #[test]
    fn inclusion_in_an_empty_tree_or_beyond_the_last_leaf_fails() {
        let leaf = leaf_hash(b"x");
        let got = verify_inclusion(&leaf, 0, 0, &[], &EMPTY_ROOT);
        assert_eq!(got, Err(ProofError::EmptyTree));
        let got = verify_inclusion(&leaf, 1, 1, &[], &leaf);
        assert_eq!(got, Err(ProofError::IndexOutOfRange { index: 1, size: 1 }));
        assert_eq!(inclusion_proof(&[], 0), Err(ProofError::EmptyTree));
        let out = ProofError::IndexOutOfRange { index: 3, size: 3 };
        assert_eq!(inclusion_proof(&leaves(3), 3), Err(out));
        let out = ProofError::IndexOutOfRange {
            index: u64::MAX,
            size: 3,
        };
        assert_eq!(inclusion_proof(&leaves(3), u64::MAX), Err(out));
        assert_eq!(verify_inclusion(&leaf, 0, 1, &[], &leaf), Ok(()));
    }

    #[test]
    fn consistency_proof_fails_for_a_flipped_bit_in_any_proof_element_or_root() {
        let all = leaves(32);
        let roots: Vec<Hash> = (0..=32).map(|n| root(&all[..n])).collect();
        for n in 2..=32 {
            for m in 1..n {
                let (m64, n64) = (m as u64, n as u64);
                let proof = consistency_proof(&all[..n], m64).unwrap();
                for e in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[e] = flip(&bad[e], e * 29 + m);
                    let got = verify_consistency(m64, n64, &roots[m], &roots[n], &bad);
                    assert!(got.is_err(), "element {e} of PROOF({m}, D[{n}])");
                }
                let bad_old = flip(&roots[m], m);
                let got = verify_consistency(m64, n64, &bad_old, &roots[n], &proof);
                assert!(got.is_err());
                let bad_new = flip(&roots[n], n);
                let got = verify_consistency(m64, n64, &roots[m], &bad_new, &proof);
                assert_eq!(got, Err(ProofError::NewRootMismatch));
            }
        }
    }

    #[test]
    fn consistency_proof_fails_when_truncated_or_extended() {
        let all = leaves(32);
        let roots: Vec<Hash> = (0..=32).map(|n| root(&all[..n])).collect();
        for n in 1..=32 {
            for m in 0..=n {
                let (m64, n64) = (m as u64, n as u64);
                let (old, new) = (&roots[m], &roots[n]);
                let proof = consistency_proof(&all[..n], m64).unwrap();
                let expected = proof.len();
                for cut in 0..expected {
                    let got = verify_consistency(m64, n64, old, new, &proof[..cut]);
                    let want = ProofError::WrongProofLength { got: cut, expected };
                    assert_eq!(got, Err(want));
                }
                for at in [0, expected] {
                    let mut longer = proof.clone();
                    longer.insert(at, *old);
                    let got = verify_consistency(m64, n64, old, new, &longer);
                    let len = expected + 1;
                    let want = ProofError::WrongProofLength { got: len, expected };
                    assert_eq!(got, Err(want));
                }
            }
        }
    }

    #[test]
    fn consistency_proof_fails_with_swapped_roots() {
        let all = leaves(32);
        let roots: Vec<Hash> = (0..=32).map(|n| root(&all[..n])).collect();
        for n in 1..=32 {
            for m in 1..n {
                let (m64, n64) = (m as u64, n as u64);
                let proof = consistency_proof(&all[..n], m64).unwrap();
                let got = verify_consistency(m64, n64, &roots[n], &roots[m], &proof);
                assert!(got.is_err(), "PROOF({m}, D[{n}]) with swapped roots");
                // And with the sizes swapped too.
                let got = verify_consistency(n64, m64, &roots[n], &roots[m], &proof);
                let want = ProofError::OldSizeExceedsNew {
                    old_size: n64,
                    new_size: m64,
                };
                assert_eq!(got, Err(want));
            }
        }
    }

    #[test]
    fn consistency_proof_fails_for_different_sizes_unless_the_rfc_walk_is_identical() {
        // As for inclusion: sizes whose §2.1.4.2 walk is the same recompute
        // the same roots (old 1 to new 3 and to new 4, say); the signed tree
        // heads bind the sizes to the roots. Everything else must fail.
        let all = leaves(20);
        let roots: Vec<Hash> = (0..=20).map(|n| root(&all[..n])).collect();
        let mut identical_walks = 0;
        for n in 2..=20u64 {
            for m in 1..n {
                let proof = consistency_proof(&all[..n as usize], m).unwrap();
                let (old, new) = (&roots[m as usize], &roots[n as usize]);
                for m2 in 0..=22u64 {
                    for n2 in m2..=22u64 {
                        if (m2, n2) == (m, n) {
                            continue;
                        }
                        let got = verify_consistency(m2, n2, old, new, &proof);
                        let same =
                            0 < m2 && m2 < n2 && consistency_walk(m2, n2) == consistency_walk(m, n);
                        if same {
                            assert_eq!(got, Ok(()));
                            identical_walks += 1;
                        } else {
                            assert!(got.is_err(), "PROOF({m}, D[{n}]) as ({m2}, {n2})");
                        }
                    }
                }
            }
        }
        assert!(identical_walks > 0);
    }

    #[test]
    fn consistency_between_equal_sizes_needs_an_empty_proof_and_equal_roots() {
        let all = leaves(5);
        let r5 = root(&all);
        let r4 = root(&all[..4]);
        assert_eq!(verify_consistency(5, 5, &r5, &r5, &[]), Ok(()));
        assert_eq!(
            verify_consistency(5, 5, &r4, &r5, &[]),
            Err(ProofError::SameSizeDifferentRoots { size: 5 })
        );
        assert_eq!(
            verify_consistency(5, 5, &r5, &r5, &[r5]),
            Err(ProofError::WrongProofLength {
                got: 1,
                expected: 0
            })
        );
        assert_eq!(consistency_proof(&all, 5), Ok(vec![]));
    }

    #[test]
    fn consistency_from_the_empty_tree_needs_an_empty_proof_and_the_empty_root() {
        let all = leaves(5);
        let r5 = root(&all);
        assert_eq!(consistency_proof(&all, 0), Ok(vec![]));
        assert_eq!(consistency_proof(&[], 0), Ok(vec![]));
        assert_eq!(verify_consistency(0, 5, &EMPTY_ROOT, &r5, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]),
            Ok(())
        );
        assert_eq!(
            verify_consistency(0, 5, &r5, &r5, &[]),
            Err(ProofError::EmptyTreeRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 0, &EMPTY_ROOT, &r5, &[]),
            Err(ProofError::SameSizeDifferentRoots { size: 0 })
        );
        assert_eq!(
            verify_consistency(0, 5, &EMPTY_ROOT, &r5, &[r5]),
            Err(ProofError::WrongProofLength {
                got: 1,
                expected: 0
            })
        );
    }

    #[test]
    fn consistency_fails_when_the_old_size_exceeds_the_new() {
        let all = leaves(5);
        let r = root(&all);
        let want = ProofError::OldSizeExceedsNew {
            old_size: 6,
            new_size: 5,
        };
        assert_eq!(consistency_proof(&all, 6), Err(want.clone()));
        assert_eq!(verify_consistency(6, 5, &r, &r, &[]), Err(want));
        let want = ProofError::OldSizeExceedsNew {
            old_size: u64::MAX,
            new_size: 5,
        };
        assert_eq!(consistency_proof(&all, u64::MAX), Err(want));
    }

    #[test]
    fn verification_with_sizes_near_u64_max_does_not_panic() {
        let leaf = leaf_hash(b"x");
        let junk: Vec<Hash> = (0..200u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let max = u64::MAX;
        let pairs = [
            (0, max),
            (1, max),
            (max - 1, max),
            (max / 2, max),
            (max / 2 + 1, max),
            (1 << 63, max),
            (max - 1, max - 1),
            (max, max),
            (0, 1 << 63),
            ((1 << 63) - 1, 1 << 63),
        ];
        for (a, b) in pairs {
            for len in [0, 1, 63, 64, 65, 128, 200] {
                let proof = &junk[..len];
                let inclusion = verify_inclusion(&leaf, a, b, proof, &leaf);
                let consistency = verify_consistency(a, b, &leaf, &leaf, proof);
                assert!(inclusion.is_err(), "inclusion {a} {b} {len}");
                if a != b {
                    assert!(consistency.is_err(), "consistency {a} {b} {len}");
                }
                // The reverse order is rejected up front.
                if a != b {
                    assert!(verify_consistency(b, a, &leaf, &leaf, proof).is_err());
                }
            }
            if a < b {
                let want = inclusion_proof_len(a, b).unwrap();
                assert!(want <= 64, "inclusion length {want} for {a} {b}");
                let got = verify_inclusion(&leaf, a, b, &junk[..want], &leaf);
                assert_eq!(got, Err(ProofError::RootMismatch));
            }
            if 0 < a && a < b {
                let want = consistency_proof_len(a, b).unwrap();
                assert!(want <= 65, "consistency length {want} for {a} {b}");
                let got = verify_consistency(a, b, &leaf, &leaf, &junk[..want]);
                assert!(matches!(
                    got,
                    Err(ProofError::OldRootMismatch | ProofError::NewRootMismatch)
                ));
            }
        }
        // The last leaf sits on the right edge, 63 levels down; leaf 0 sits 64 down.
        assert_eq!(inclusion_proof_len(max - 1, max), Ok(63));
        assert_eq!(inclusion_proof_len(0, max), Ok(64));
    }
}
