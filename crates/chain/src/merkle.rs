//! RFC 9162 Merkle tree.
