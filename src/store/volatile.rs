//! A store that keeps nothing: it accepts readings and forgets them.

use super::{ReadingStore, StoreError};
use vitalgate_devices::Reading;

/// Accepts every reading and keeps none of it, so nothing — least of all a
/// plaintext vital — touches the disk. It stands behind [`ReadingStore`]
/// until the encrypted chain lands; until then an acknowledgement means
/// "counted and handed on", not "durable", and the README says so.
#[derive(Debug, Default)]
pub struct VolatileStore {
    appended: u64,
}

impl VolatileStore {
    /// Readings accepted so far.
    pub fn appended(&self) -> u64 {
        self.appended
    }
}

impl ReadingStore for VolatileStore {
    fn append(&mut self, readings: &[Reading]) -> Result<(), StoreError> {
        self.appended += readings.len() as u64;
        Ok(())
    }
}
