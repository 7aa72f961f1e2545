//! Anchoring: the gateway's signed tree heads published on the hospital's
//! consultation chain, so anyone can check that its records existed at a
//! time and that its history was only appended to (docs/ANCHORING.md).

pub mod account;
pub mod backend;
pub mod evm;
pub mod registry;
