//! Compact plaintext encoding of readings.
