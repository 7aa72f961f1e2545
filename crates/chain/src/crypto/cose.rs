//! COSE structures.
