//! What sources hand to the ingest stage.

use crate::store::Commit;
use std::sync::Arc;
use tokio::sync::oneshot;
use vitalgate_devices::{Reading, Reject, Status};

/// Everything decoded from one MQTT message or one serial read, handed to
/// ingest in one piece so it is checked, counted and stored together and
/// (for MQTT) acknowledged once storage has it.
#[derive(Debug, Default)]
pub struct Batch {
    /// Readings bound to their device and patient.
    pub readings: Vec<Reading>,
    /// Frames that carried no value (sensor off, searching, ...).
    pub statuses: Vec<DeviceStatus>,
    /// What was rejected on the way.
    pub rejections: Vec<Rejection>,
    /// The transport says this is a redelivery (MQTT DUP): storage checks
    /// it against what it stored before a restart.
    pub redelivered: bool,
    /// Completed once the batch's readings are stored; an MQTT source
    /// acknowledges the message only then.
    pub stored: Option<oneshot::Sender<Commit>>,
}

impl Batch {
    /// True when there is nothing to check, count or store.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty() && self.statuses.is_empty() && self.rejections.is_empty()
    }
}

/// A device status report bound to its device.
#[derive(Debug, Clone)]
pub struct DeviceStatus {
    /// Device id.
    pub device: Arc<str>,
    /// Patient id.
    pub patient: Arc<str>,
    /// What the device said.
    pub status: Status,
    /// When the gateway received it.
    pub received: vitalgate_devices::Timestamp,
}

/// One rejected frame, message or reading.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The device, when known (an unknown topic has none we trust).
    pub device: Option<Arc<str>>,
    /// The counter it goes to.
    pub reason: Reject,
    /// Where and what, for the log line (never vital values of a known
    /// patient at the default log level: see `docs/ARCHITECTURE.md`).
    pub detail: String,
}
