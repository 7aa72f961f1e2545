//! Transports: where bytes come from.
//!
//! Each source owns its connection, decodes with the device's profile,
//! binds what it decoded to the configured device and patient, and hands
//! one [`Batch`] per message or read to ingest over a bounded channel, so a
//! slow store slows the sources down instead of growing a queue.

pub mod backoff;
pub mod ble;
pub mod mqtt;
pub mod serial;

use crate::config::Device;
use crate::ingest::{Batch, DeviceStatus, Rejection};
use std::sync::Arc;
use vitalgate_devices::{Decoded, Reading, Timestamp};

/// Add one decoder event for `device` to `batch`.
pub fn bind(decoded: Decoded, device: &Device, received: Timestamp, batch: &mut Batch) {
    match decoded {
        Decoded::Measurement(m) => {
            batch.readings.push(Reading::from_measurement(
                &m,
                &device.id,
                &device.patient,
                received,
            ));
        }
        Decoded::Status(status) => batch.statuses.push(DeviceStatus {
            device: Arc::clone(&device.id),
            patient: Arc::clone(&device.patient),
            status,
            received,
        }),
        Decoded::Error(e) => batch.rejections.push(Rejection {
            device: Some(Arc::clone(&device.id)),
            reason: e.reason,
            detail: format!("{} ({})", e, device.profile.format),
        }),
    }
}
