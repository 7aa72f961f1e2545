//! A store that keeps nothing: it accepts readings and forgets them.

use super::{ReadingStore, StoreError};
use vitalgate_devices::Reading;

/// Accepts every reading and keeps none of it. For tests and benchmarks
/// of the pipeline in front of storage; the daemon always stores in the
/// ledger.
#[derive(Debug, Default)]
pub struct VolatileStore;

impl ReadingStore for VolatileStore {
    fn append(&mut self, _batches: &[&[Reading]]) -> Result<(), StoreError> {
        Ok(())
    }
}
