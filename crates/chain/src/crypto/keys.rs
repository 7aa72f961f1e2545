//! Key pairs and their files.
