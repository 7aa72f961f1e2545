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
    /// A connection of the source came up or went down. It travels with
    /// the data, in order, so the counters never show a reading from a
    /// link that is still marked down.
    pub link: Option<LinkEvent>,
}

impl Batch {
    /// True when there is nothing to check, count or store.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
            && self.statuses.is_empty()
            && self.rejections.is_empty()
            && self.link.is_none()
    }

    /// A batch that only reports a link's state.
    pub fn link(link: LinkEvent) -> Batch {
        Batch {
            link: Some(link),
            ..Batch::default()
        }
    }
}

/// A source's connection came up or went down: a serial port opened or
/// lost, the MQTT broker connected or gone, the gateway's MQTT server
/// listening, the Bluetooth adapter ready or gone. Readiness (`/readyz`)
/// wants every link up; `/metrics` counts how often each came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// Which link, e.g. `serial:ox-bedroom`, `mqtt:broker.local:1883`.
    pub link: Arc<str>,
    /// Up or down.
    pub up: bool,
    /// Why it went down (an error message; never vital values).
    pub detail: Option<String>,
}

impl LinkEvent {
    /// `link` is up.
    pub fn up(link: &Arc<str>) -> LinkEvent {
        LinkEvent {
            link: Arc::clone(link),
            up: true,
            detail: None,
        }
    }

    /// `link` is down, because of `why`.
    pub fn down(link: &Arc<str>, why: impl ToString) -> LinkEvent {
        LinkEvent {
            link: Arc::clone(link),
            up: false,
            detail: Some(why.to_string()),
        }
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
