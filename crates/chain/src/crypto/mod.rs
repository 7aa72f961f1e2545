//! Keys and COSE (RFC 9052/9053) structures.

pub mod backup;
pub mod cose;
pub mod keys;
