//! The host's Bluetooth stack: BlueZ over D-Bus, through btleplug.
//!
//! btleplug reports events by BlueZ object (`PeripheralId`) and delivers
//! notifications on one stream per peripheral; this module turns both into
//! the one address-keyed [`Events`] channel the transport reads. Two kinds
//! of forwarding task feed it: one per scan (discoveries, disconnections,
//! and a watchdog that notices the adapter vanishing, which BlueZ does not
//! announce as an event) and one per connection (its notifications, stopped
//! when the connection's handle is dropped). Each ends when the transport
//! drops the receiver.
//!
//! Errors are sorted into the [`CentralError`]s an installer can act on:
//! no system bus or no bluetoothd, no adapter, adapter powered off, access
//! refused.

use super::central::{Central, CentralError, CentralEvent, EVENTS_CAPACITY, Events, Peripheral};
use btleplug::api::bleuuid::{BleUuid, uuid_from_u16};
use btleplug::api::{
    Central as _, CentralEvent as BtEvent, CentralState, Manager as _, Peripheral as _, ScanFilter,
    ValueNotification,
};
use btleplug::platform::{Adapter, Manager, PeripheralId};
use futures::stream::{Stream, StreamExt};
use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use vitalgate_devices::gatt::Address;

/// How often the scan's task checks that the adapter is still there.
const ADAPTER_WATCHDOG: Duration = Duration::from_secs(10);

/// The host's Bluetooth adapter through BlueZ. [`BluezCentral::new`] is a
/// handle that has reached nothing yet; [`Central::scan`] reaches the
/// system bus and the first adapter and returns a handle bound to it.
#[derive(Clone, Debug, Default)]
pub struct BluezCentral {
    bound: Option<Bound>,
}

#[derive(Clone, Debug)]
struct Bound {
    adapter: Adapter,
    events: mpsc::Sender<CentralEvent>,
}

impl BluezCentral {
    /// A handle on the host's Bluetooth stack; nothing is reached until
    /// the first scan, so this cannot fail.
    pub fn new() -> BluezCentral {
        BluezCentral::default()
    }
}

impl Central for BluezCentral {
    type Peripheral = BluezPeripheral;

    async fn scan(&self, services: &[u16]) -> Result<(Self, Events), CentralError> {
        // Anything failing before an adapter is listed is BlueZ or D-Bus
        // not being there (no system bus socket, bluetoothd not running).
        let reach = |e: btleplug::Error| match classify(e) {
            e @ (CentralError::PermissionDenied | CentralError::Dbus(_)) => e,
            CentralError::Other(message) => CentralError::Dbus(message),
            other => CentralError::Dbus(other.to_string()),
        };
        let manager = Manager::new().await.map_err(reach)?;
        let adapter = manager
            .adapters()
            .await
            .map_err(reach)?
            .into_iter()
            .next()
            .ok_or(CentralError::NoAdapter)?;
        if adapter.adapter_state().await.map_err(classify)? == CentralState::PoweredOff {
            return Err(CentralError::PoweredOff);
        }
        let stream = adapter.events().await.map_err(classify)?;
        adapter
            .start_scan(ScanFilter {
                services: services.iter().map(|&s| uuid_from_u16(s)).collect(),
            })
            .await
            .map_err(classify)?;
        let (tx, rx) = mpsc::channel(EVENTS_CAPACITY);
        tokio::spawn(forward_adapter_events(adapter.clone(), stream, tx.clone()));
        Ok((
            BluezCentral {
                bound: Some(Bound {
                    adapter,
                    events: tx,
                }),
            },
            rx,
        ))
    }

    async fn connect(&self, address: Address) -> Result<BluezPeripheral, CentralError> {
        let Some(bound) = &self.bound else {
            return Err(CentralError::NoAdapter);
        };
        let peripheral = bound
            .adapter
            .peripherals()
            .await
            .map_err(classify)?
            .into_iter()
            .find(|p| p.address().into_inner() == address.0)
            .ok_or(CentralError::NotFound(address))?;
        peripheral.connect().await.map_err(classify)?;
        // Listen before subscribing, so the first value is not missed.
        let values = match peripheral.notifications().await {
            Ok(values) => values,
            Err(e) => {
                let _ = peripheral.disconnect().await;
                return Err(classify(e));
            }
        };
        let stop = CancellationToken::new();
        tokio::spawn(forward_values(
            address,
            values,
            bound.events.clone(),
            stop.clone(),
        ));
        Ok(BluezPeripheral {
            peripheral,
            address,
            _stop: stop.drop_guard(),
        })
    }
}

/// One connection to a peripheral through BlueZ; dropping it stops the
/// forwarding of its notifications.
pub struct BluezPeripheral {
    peripheral: btleplug::platform::Peripheral,
    address: Address,
    _stop: DropGuard,
}

impl BluezPeripheral {
    fn characteristic(&self, uuid: u16) -> Result<btleplug::api::Characteristic, CentralError> {
        self.peripheral
            .characteristics()
            .into_iter()
            .find(|c| c.uuid.to_ble_u16() == Some(uuid))
            .ok_or(CentralError::NoSuchCharacteristic {
                address: self.address,
                characteristic: uuid,
            })
    }
}

impl Peripheral for BluezPeripheral {
    async fn discover_services(&self) -> Result<Vec<u16>, CentralError> {
        self.peripheral
            .discover_services()
            .await
            .map_err(classify)?;
        Ok(self
            .peripheral
            .characteristics()
            .iter()
            .filter_map(|c| c.uuid.to_ble_u16())
            .collect())
    }

    async fn subscribe(&self, characteristic: u16) -> Result<(), CentralError> {
        let c = self.characteristic(characteristic)?;
        self.peripheral.subscribe(&c).await.map_err(classify)
    }

    async fn read(&self, characteristic: u16) -> Result<Vec<u8>, CentralError> {
        let c = self.characteristic(characteristic)?;
        self.peripheral.read(&c).await.map_err(classify)
    }

    async fn disconnect(&self) -> Result<(), CentralError> {
        self.peripheral.disconnect().await.map_err(classify)
    }
}

type BtStream<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// Turn the adapter's events into address-keyed [`CentralEvent`]s until
/// the transport drops the receiver or the adapter goes.
async fn forward_adapter_events(
    adapter: Adapter,
    mut stream: BtStream<BtEvent>,
    tx: mpsc::Sender<CentralEvent>,
) {
    // BlueZ object → address, learnt as devices are seen, so a device
    // whose object is already gone can still be reported disconnected.
    let mut addresses: HashMap<PeripheralId, Address> = HashMap::new();
    let mut watchdog = tokio::time::interval(ADAPTER_WATCHDOG);
    watchdog.tick().await;
    loop {
        let event = tokio::select! {
            _ = tx.closed() => return,
            _ = watchdog.tick() => match adapter.adapter_info().await {
                Ok(_) => continue,
                Err(e) => Some(CentralEvent::AdapterGone {
                    reason: format!("the adapter no longer answers ({})", classify(e)),
                }),
            },
            event = stream.next() => match event {
                None => Some(CentralEvent::AdapterGone {
                    reason: "BlueZ ended the adapter's event stream".into(),
                }),
                Some(BtEvent::StateUpdate(CentralState::PoweredOff)) => {
                    Some(CentralEvent::AdapterGone {
                        reason: "the adapter was powered off".into(),
                    })
                }
                Some(BtEvent::DeviceDiscovered(id))
                | Some(BtEvent::ServicesAdvertisement { id, .. }) => {
                    discovered(&adapter, &id, &mut addresses).await
                }
                Some(BtEvent::DeviceConnected(id)) => {
                    let _ = address_of(&adapter, &id, &mut addresses).await;
                    None
                }
                Some(BtEvent::DeviceDisconnected(id)) => address_of(&adapter, &id, &mut addresses)
                    .await
                    .map(|address| CentralEvent::Disconnected { address }),
                Some(_) => None,
            },
        };
        let Some(event) = event else { continue };
        let gone = matches!(event, CentralEvent::AdapterGone { .. });
        if tx.send(event).await.is_err() || gone {
            return;
        }
    }
}

/// A discovery event for `id`, with the services it advertises.
async fn discovered(
    adapter: &Adapter,
    id: &PeripheralId,
    addresses: &mut HashMap<PeripheralId, Address>,
) -> Option<CentralEvent> {
    let peripheral = adapter.peripheral(id).await.ok()?;
    let address = Address(peripheral.address().into_inner());
    addresses.insert(id.clone(), address);
    let services = match peripheral.properties().await {
        Ok(Some(p)) => p.services.iter().filter_map(|s| s.to_ble_u16()).collect(),
        _ => Vec::new(),
    };
    Some(CentralEvent::Discovered { address, services })
}

/// The address behind a BlueZ object: remembered, asked of BlueZ, or read
/// from the object's name (`hci0/dev_C4_7C_8D_6A_01_02`) when BlueZ has
/// already removed it.
async fn address_of(
    adapter: &Adapter,
    id: &PeripheralId,
    addresses: &mut HashMap<PeripheralId, Address>,
) -> Option<Address> {
    if let Some(a) = addresses.get(id) {
        return Some(*a);
    }
    let address = match adapter.peripheral(id).await {
        Ok(p) => Some(Address(p.address().into_inner())),
        Err(_) => address_from_object(&id.to_string()),
    }?;
    addresses.insert(id.clone(), address);
    Some(address)
}

/// `…/dev_C4_7C_8D_6A_01_02` → `C4:7C:8D:6A:01:02`.
fn address_from_object(path: &str) -> Option<Address> {
    let (_, tail) = path.rsplit_once("dev_")?;
    tail.get(..17)?.replace('_', ":").parse().ok()
}

/// Forward one connection's notifications until it is dropped or the
/// transport stops reading.
async fn forward_values(
    address: Address,
    mut values: BtStream<ValueNotification>,
    tx: mpsc::Sender<CentralEvent>,
    stop: CancellationToken,
) {
    loop {
        let value = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tx.closed() => return,
            value = values.next() => match value {
                Some(v) => v,
                None => return,
            },
        };
        // The health characteristics all have 16-bit SIG UUIDs.
        let Some(characteristic) = value.uuid.to_ble_u16() else {
            continue;
        };
        let event = CentralEvent::Value {
            address,
            characteristic,
            value: value.value,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            sent = tx.send(event) => if sent.is_err() { return },
        }
    }
}

/// Sort a btleplug error into what an installer can act on.
fn classify(e: btleplug::Error) -> CentralError {
    use btleplug::Error;
    match e {
        Error::PermissionDenied => CentralError::PermissionDenied,
        Error::NoAdapterAvailable => CentralError::NoAdapter,
        Error::TimedOut(_) => CentralError::TimedOut,
        Error::Other(inner) => match inner.downcast_ref::<bluez_async::BluetoothError>() {
            Some(bluez_async::BluetoothError::DbusError(d)) => {
                classify_dbus(d.name().unwrap_or_default(), &inner.to_string())
            }
            _ => CentralError::Other(inner.to_string()),
        },
        other => CentralError::Other(other.to_string()),
    }
}

/// Sort a D-Bus error by its name.
fn classify_dbus(name: &str, message: &str) -> CentralError {
    match name {
        "org.freedesktop.DBus.Error.AccessDenied"
        | "org.bluez.Error.NotAuthorized"
        | "org.bluez.Error.NotPermitted" => CentralError::PermissionDenied,
        "org.bluez.Error.NotReady" => CentralError::PoweredOff,
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner"
        | "org.freedesktop.DBus.Error.NoServer"
        | "org.freedesktop.DBus.Error.FileNotFound"
        | "org.freedesktop.DBus.Error.Disconnected" => CentralError::Dbus(message.to_owned()),
        "org.freedesktop.DBus.Error.UnknownObject" => {
            // The adapter's object vanished under us.
            CentralError::NoAdapter
        }
        _ => CentralError::Other(message.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True when this machine has a D-Bus system bus to talk to.
    fn system_bus_exists() -> bool {
        std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some()
            || std::path::Path::new("/run/dbus/system_bus_socket").exists()
            || std::path::Path::new("/var/run/dbus/system_bus_socket").exists()
    }

    #[tokio::test]
    async fn without_a_system_bus_scanning_is_a_clear_error_not_a_panic() {
        if system_bus_exists() {
            eprintln!(
                "skipped: this machine has a D-Bus system bus, so the no-bus error cannot be provoked here"
            );
            return;
        }
        let Err(e) = BluezCentral::new().scan(&[0x180D]).await else {
            panic!("a scan without a system bus succeeded");
        };
        assert!(matches!(e, CentralError::Dbus(_)), "{e:?}");
        let message = e.to_string();
        assert!(
            message.starts_with("cannot reach BlueZ over D-Bus: is bluetoothd running?"),
            "{message}"
        );
        assert_eq!(message.matches("bluetoothd").count(), 1, "{message}");
    }

    #[tokio::test]
    async fn connecting_before_any_scan_says_there_is_no_adapter() {
        let e = BluezCentral::new()
            .connect("C4:7C:8D:6A:01:02".parse().unwrap_or(Address([0; 6])))
            .await
            .err();
        assert_eq!(e, Some(CentralError::NoAdapter));
    }

    #[test]
    fn an_address_is_read_from_a_bluez_object_name() {
        assert_eq!(
            address_from_object("hci0/dev_C4_7C_8D_6A_01_02"),
            "C4:7C:8D:6A:01:02".parse().ok()
        );
        assert_eq!(
            address_from_object("/org/bluez/hci1/dev_00_11_22_33_44_55"),
            "00:11:22:33:44:55".parse().ok()
        );
        assert_eq!(address_from_object("hci0"), None);
        assert_eq!(address_from_object("hci0/dev_C4_7C"), None);
    }

    #[test]
    fn dbus_errors_are_sorted_for_the_installer() {
        assert!(matches!(
            classify_dbus("org.freedesktop.DBus.Error.ServiceUnknown", "x"),
            CentralError::Dbus(_)
        ));
        assert_eq!(
            classify_dbus("org.bluez.Error.NotReady", "x"),
            CentralError::PoweredOff
        );
        assert_eq!(
            classify_dbus("org.freedesktop.DBus.Error.AccessDenied", "x"),
            CentralError::PermissionDenied
        );
        assert!(matches!(
            classify_dbus("org.bluez.Error.Failed", "x"),
            CentralError::Other(_)
        ));
    }
}
