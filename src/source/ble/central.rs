//! What the direct Bluetooth transport needs from the host's Bluetooth
//! stack, and nothing more: scan for the health services, connect to an
//! address, find its characteristics, subscribe, read, disconnect, and one
//! stream of events.
//!
//! Two traits, shaped like BlueZ's own objects: a [`Central`] (the adapter)
//! hands out a [`Peripheral`] per connection. The peripheral is its own
//! value because the stack keeps per-connection state (BlueZ's object
//! paths of the characteristics discovered on *that* connection); holding
//! it in the connection's owner needs no shared map and no lock.
//!
//! The traits are generic (`async fn` in traits, static dispatch), not
//! object-safe: the gateway has exactly one implementation
//! ([`super::bluez`], over btleplug) and the tests one stand-in
//! (`memory`), both known at compile time, so a `dyn` with boxed futures
//! would buy nothing. The futures are `Send` so connections can be set up
//! in their own tasks while the other devices keep streaming.

use std::future::Future;
use tokio::sync::mpsc;
use vitalgate_devices::gatt::Address;

/// The events of one scan: discoveries, values, disconnections, the
/// adapter going away. Bounded: a stalled consumer slows the stack's
/// forwarding down instead of growing a queue.
pub type Events = mpsc::Receiver<CentralEvent>;

/// Room in an [`Events`] channel: a few seconds of notifications from a
/// handful of devices.
pub const EVENTS_CAPACITY: usize = 256;

/// Something the Bluetooth stack reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CentralEvent {
    /// A peripheral was seen advertising (or is already known to the
    /// adapter), with the 16-bit service UUIDs it advertises.
    Discovered {
        /// Its address.
        address: Address,
        /// The services it advertises (16-bit SIG UUIDs; others left out).
        services: Vec<u16>,
    },
    /// A notified or indicated characteristic value.
    Value {
        /// The peripheral that sent it.
        address: Address,
        /// The characteristic's 16-bit UUID.
        characteristic: u16,
        /// The raw value.
        value: Vec<u8>,
    },
    /// A connected peripheral disconnected (switched off, out of range,
    /// link supervision timeout).
    Disconnected {
        /// Its address.
        address: Address,
    },
    /// The adapter is gone (unplugged, powered off, bluetoothd or D-Bus
    /// stopped); every connection with it is lost. Scan again to go on.
    AdapterGone {
        /// Why, for the log.
        reason: String,
    },
}

/// Why a Bluetooth operation failed, worded for whoever installs the
/// gateway in a patient's home.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CentralError {
    /// The system D-Bus or bluetoothd cannot be reached.
    #[error(
        "cannot reach BlueZ over D-Bus: is bluetoothd running? (`systemctl status bluetooth`; {0})"
    )]
    Dbus(String),
    /// BlueZ runs but has no adapter.
    #[error(
        "no Bluetooth adapter found: check that the adapter is plugged in and enabled (`bluetoothctl list`, `rfkill list`)"
    )]
    NoAdapter,
    /// The adapter is there but switched off.
    #[error("the Bluetooth adapter is powered off: run `bluetoothctl power on`")]
    PoweredOff,
    /// BlueZ refused the gateway's user.
    #[error(
        "BlueZ refused access: the gateway's user must be allowed to use Bluetooth over D-Bus (member of group `bluetooth`, or a D-Bus policy for it)"
    )]
    PermissionDenied,
    /// The adapter does not know the peripheral (never seen advertising,
    /// or forgotten since).
    #[error(
        "{0} is not known to the Bluetooth adapter (out of range, switched off, or not advertising)"
    )]
    NotFound(Address),
    /// The peripheral does not offer a characteristic the transport asked for.
    #[error("{address} has no characteristic {characteristic:04X}")]
    NoSuchCharacteristic {
        /// The peripheral.
        address: Address,
        /// The characteristic's 16-bit UUID.
        characteristic: u16,
    },
    /// An operation took too long (connecting to a peripheral out of range).
    #[error("Bluetooth operation timed out")]
    TimedOut,
    /// Anything else the stack reported.
    #[error("Bluetooth: {0}")]
    Other(String),
}

impl CentralError {
    /// True when the error is about the adapter or the stack as a whole,
    /// not about one peripheral: every device is affected, and it is
    /// worth one warning, not one per device.
    pub fn is_adapter_level(&self) -> bool {
        matches!(
            self,
            CentralError::Dbus(_)
                | CentralError::NoAdapter
                | CentralError::PoweredOff
                | CentralError::PermissionDenied
        )
    }
}

/// The host's Bluetooth adapter.
///
/// A `Central` is cheap to clone (a handle); a clone is handed to each
/// connection attempt so a slow connect never holds up the event loop.
pub trait Central: Clone + Send + Sync + 'static {
    /// One connection to a peripheral.
    type Peripheral: Peripheral;

    /// Reach the adapter and start scanning for peripherals advertising
    /// any of `services` (16-bit UUIDs). Returns a handle bound to that
    /// adapter, on which [`Central::connect`] works, and the scan's events.
    /// Called again after [`CentralEvent::AdapterGone`] or a failure.
    fn scan(
        &self,
        services: &[u16],
    ) -> impl Future<Output = Result<(Self, Events), CentralError>> + Send;

    /// Connect to the peripheral at `address`. Values it later notifies
    /// arrive on the scan's [`Events`] while the returned [`Peripheral`]
    /// is held; dropping it stops them.
    fn connect(
        &self,
        address: Address,
    ) -> impl Future<Output = Result<Self::Peripheral, CentralError>> + Send;
}

/// One connection to a peripheral.
pub trait Peripheral: Send + Sync + 'static {
    /// Discover the peripheral's services; the 16-bit UUIDs of the
    /// characteristics it offers.
    fn discover_services(&self) -> impl Future<Output = Result<Vec<u16>, CentralError>> + Send;

    /// Ask for the characteristic's notifications or indications (the
    /// stack writes the Client Characteristic Configuration descriptor
    /// and confirms indications).
    fn subscribe(
        &self,
        characteristic: u16,
    ) -> impl Future<Output = Result<(), CentralError>> + Send;

    /// Read the characteristic's value.
    fn read(
        &self,
        characteristic: u16,
    ) -> impl Future<Output = Result<Vec<u8>, CentralError>> + Send;

    /// Disconnect.
    fn disconnect(&self) -> impl Future<Output = Result<(), CentralError>> + Send;
}
