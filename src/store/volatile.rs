//! A store that keeps nothing: it accepts readings and forgets them.

use super::{ReadingStore, StoreError};
use vitalgate_devices::Reading;

/// Accepts every reading and keeps none of it, so nothing — least of all a
/// plaintext vital — touches the disk. It stands behind [`ReadingStore`]
/// until the encrypted chain lands; until then an acknowledgement means
/// "counted and handed on", not "durable", and the README says so.
/// (The storage stage counts what it committed; nothing to keep here.)
#[derive(Debug, Default)]
pub struct VolatileStore;

impl ReadingStore for VolatileStore {
    fn append(&mut self, _readings: &[Reading]) -> Result<(), StoreError> {
        Ok(())
    }
}
