//! vitalgate's clinical detection: turning readings into a judgement about
//! the patient.
//!
//! This crate is pure — readings and times in, scores out, no clock, no
//! I/O — so that replaying a recorded day at any speed gives the same
//! answers as living through it, and every rule can be tested on plain
//! values.
//!
//! * [`news2`]: the Royal College of Physicians' National Early Warning
//!   Score 2, and the window of latest valid readings it is computed from.

pub mod news2;
