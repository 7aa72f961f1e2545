//! A test double: an in-memory Bluetooth adapter and peripherals behind
//! the same [`Central`] trait as BlueZ.
//!
//! The machines this gateway is built and tested on have no Bluetooth
//! radio, so the direct transport's tests drive this stand-in instead: it
//! is the one place in the project where a fake is right, since the thing
//! it replaces cannot be had here. It models what the transport relies on
//! — scanning with a service filter, connecting only to peripherals in
//! range, per-connection subscriptions, disconnections, the adapter coming
//! and going — and records what the transport did, so tests can check it
//! (for instance that an unbound advertiser was never connected).
//!
//! Test code, so one mutex over the whole world keeps it simple; nothing
//! holds it across an `.await`.

use super::central::{Central, CentralError, CentralEvent, EVENTS_CAPACITY, Events, Peripheral};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use vitalgate_devices::gatt::Address;

/// How long connecting to a peripheral out of range takes to fail, as
/// BlueZ's page timeout does.
pub const OUT_OF_RANGE_CONNECT: Duration = Duration::from_secs(2);

/// The in-memory adapter (a handle: clones share one world).
#[derive(Clone, Default)]
pub struct MemoryCentral {
    world: Arc<Mutex<World>>,
}

#[derive(Default)]
struct World {
    adapter: bool,
    /// The current scan's filter and event sender.
    scan: Option<(Vec<u16>, mpsc::Sender<CentralEvent>)>,
    scans: usize,
    failed_scans: usize,
    peripherals: HashMap<Address, Device>,
    /// Connection generations, so a stale handle does nothing.
    next_connection: u64,
}

#[derive(Default)]
struct Device {
    advertised: Vec<u16>,
    characteristics: Vec<u16>,
    reads: HashMap<u16, Vec<u8>>,
    in_range: bool,
    connection: Option<u64>,
    subscribed: HashSet<u16>,
    connect_attempts: usize,
    disconnects: usize,
}

impl World {
    fn emit(&self, event: CentralEvent) {
        if let Some((_, tx)) = &self.scan {
            // Control calls come from the test between the transport's
            // reads; the channel has room (and a full one is a test bug).
            let _ = tx.try_send(event);
        }
    }

    fn advertise(&self, address: Address) {
        let (Some((filter, _)), Some(d)) = (&self.scan, self.peripherals.get(&address)) else {
            return;
        };
        if d.in_range && d.connection.is_none() && d.advertised.iter().any(|s| filter.contains(s)) {
            self.emit(CentralEvent::Discovered {
                address,
                services: d.advertised.clone(),
            });
        }
    }
}

impl MemoryCentral {
    /// A world with an adapter and no peripherals.
    pub fn new() -> MemoryCentral {
        let central = MemoryCentral::default();
        central.world().adapter = true;
        central
    }

    /// A world whose adapter is not plugged in yet.
    pub fn without_adapter() -> MemoryCentral {
        MemoryCentral::default()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A peripheral in range advertising `services` and offering
    /// `characteristics`.
    pub fn add_peripheral(&self, address: Address, services: &[u16], characteristics: &[u16]) {
        let mut w = self.world();
        w.peripherals.insert(
            address,
            Device {
                advertised: services.to_vec(),
                characteristics: characteristics.to_vec(),
                in_range: true,
                ..Device::default()
            },
        );
        w.advertise(address);
    }

    /// Give a readable characteristic a value.
    pub fn set_read_value(&self, address: Address, characteristic: u16, value: &[u8]) {
        if let Some(d) = self.world().peripherals.get_mut(&address) {
            d.reads.insert(characteristic, value.to_vec());
        }
    }

    /// The peripheral notifies (or indicates) a value; true when it went
    /// out (connected and subscribed).
    pub async fn notify(&self, address: Address, characteristic: u16, value: &[u8]) -> bool {
        let tx = {
            let w = self.world();
            let Some(d) = w.peripherals.get(&address) else {
                return false;
            };
            if d.connection.is_none() || !d.subscribed.contains(&characteristic) {
                return false;
            }
            match &w.scan {
                Some((_, tx)) => tx.clone(),
                None => return false,
            }
        };
        tx.send(CentralEvent::Value {
            address,
            characteristic,
            value: value.to_vec(),
        })
        .await
        .is_ok()
    }

    /// The peripheral walks out of range: its connection drops.
    pub fn go_out_of_range(&self, address: Address) {
        let mut w = self.world();
        let Some(d) = w.peripherals.get_mut(&address) else {
            return;
        };
        d.in_range = false;
        d.subscribed.clear();
        if d.connection.take().is_some() {
            w.emit(CentralEvent::Disconnected { address });
        }
    }

    /// The peripheral is back in range and advertising.
    pub fn come_back(&self, address: Address) {
        let mut w = self.world();
        if let Some(d) = w.peripherals.get_mut(&address) {
            d.in_range = true;
        }
        w.advertise(address);
    }

    /// Plug the adapter in: the next scan works.
    pub fn plug_adapter(&self) {
        self.world().adapter = true;
    }

    /// Unplug the adapter: every connection drops and the scan's events
    /// report it gone.
    pub fn unplug_adapter(&self) {
        let mut w = self.world();
        w.adapter = false;
        w.emit(CentralEvent::AdapterGone {
            reason: "adapter unplugged".into(),
        });
        w.scan = None;
        for d in w.peripherals.values_mut() {
            d.connection = None;
            d.subscribed.clear();
        }
    }

    /// Scans started successfully.
    pub fn scans(&self) -> usize {
        self.world().scans
    }

    /// Scans refused for want of an adapter.
    pub fn failed_scans(&self) -> usize {
        self.world().failed_scans
    }

    /// The current scan's service filter.
    pub fn scan_filter(&self) -> Option<Vec<u16>> {
        self.world().scan.as_ref().map(|(f, _)| f.clone())
    }

    /// Connection attempts on `address`, successful or not.
    pub fn connect_attempts(&self, address: Address) -> usize {
        self.world()
            .peripherals
            .get(&address)
            .map_or(0, |d| d.connect_attempts)
    }

    /// Times the transport disconnected `address` itself.
    pub fn disconnects(&self, address: Address) -> usize {
        self.world()
            .peripherals
            .get(&address)
            .map_or(0, |d| d.disconnects)
    }

    /// True when `address` is connected.
    pub fn is_connected(&self, address: Address) -> bool {
        self.world()
            .peripherals
            .get(&address)
            .is_some_and(|d| d.connection.is_some())
    }

    /// True when `address` is connected and subscribed to `characteristic`.
    pub fn is_subscribed(&self, address: Address, characteristic: u16) -> bool {
        self.world()
            .peripherals
            .get(&address)
            .is_some_and(|d| d.connection.is_some() && d.subscribed.contains(&characteristic))
    }
}

impl Central for MemoryCentral {
    type Peripheral = MemoryPeripheral;

    async fn scan(&self, services: &[u16]) -> Result<(Self, Events), CentralError> {
        let mut w = self.world();
        if !w.adapter {
            w.failed_scans += 1;
            return Err(CentralError::NoAdapter);
        }
        let (tx, rx) = mpsc::channel(EVENTS_CAPACITY);
        w.scan = Some((services.to_vec(), tx));
        w.scans += 1;
        let known: Vec<Address> = w.peripherals.keys().copied().collect();
        for address in known {
            w.advertise(address);
        }
        Ok((self.clone(), rx))
    }

    async fn connect(&self, address: Address) -> Result<MemoryPeripheral, CentralError> {
        let in_range = {
            let mut w = self.world();
            if !w.adapter {
                return Err(CentralError::NoAdapter);
            }
            let d = w
                .peripherals
                .get_mut(&address)
                .ok_or(CentralError::NotFound(address))?;
            d.connect_attempts += 1;
            d.in_range
        };
        if !in_range {
            tokio::time::sleep(OUT_OF_RANGE_CONNECT).await;
            return Err(CentralError::TimedOut);
        }
        let mut w = self.world();
        w.next_connection += 1;
        let connection = w.next_connection;
        let d = w
            .peripherals
            .get_mut(&address)
            .ok_or(CentralError::NotFound(address))?;
        d.connection = Some(connection);
        d.subscribed.clear();
        Ok(MemoryPeripheral {
            world: Arc::clone(&self.world),
            address,
            connection,
        })
    }
}

/// A connection to an in-memory peripheral.
pub struct MemoryPeripheral {
    world: Arc<Mutex<World>>,
    address: Address,
    connection: u64,
}

impl MemoryPeripheral {
    /// The peripheral, while this connection is its current one.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Device) -> Result<T, CentralError>,
    ) -> Result<T, CentralError> {
        let mut w = self.world.lock().unwrap_or_else(|e| e.into_inner());
        match w.peripherals.get_mut(&self.address) {
            Some(d) if d.connection == Some(self.connection) => f(d),
            _ => Err(CentralError::Other(format!(
                "{} is not connected",
                self.address
            ))),
        }
    }
}

impl Peripheral for MemoryPeripheral {
    async fn discover_services(&self) -> Result<Vec<u16>, CentralError> {
        self.with(|d| Ok(d.characteristics.clone()))
    }

    async fn subscribe(&self, characteristic: u16) -> Result<(), CentralError> {
        let address = self.address;
        self.with(|d| {
            if !d.characteristics.contains(&characteristic) {
                return Err(CentralError::NoSuchCharacteristic {
                    address,
                    characteristic,
                });
            }
            d.subscribed.insert(characteristic);
            Ok(())
        })
    }

    async fn read(&self, characteristic: u16) -> Result<Vec<u8>, CentralError> {
        let address = self.address;
        self.with(|d| {
            d.reads
                .get(&characteristic)
                .cloned()
                .ok_or(CentralError::NoSuchCharacteristic {
                    address,
                    characteristic,
                })
        })
    }

    async fn disconnect(&self) -> Result<(), CentralError> {
        self.with(|d| {
            d.connection = None;
            d.subscribed.clear();
            d.disconnects += 1;
            Ok(())
        })
    }
}

impl Drop for MemoryPeripheral {
    /// Dropping the handle stops its values, as the trait promises.
    fn drop(&mut self) {
        let _ = self.with(|d| {
            d.subscribed.clear();
            Ok(())
        });
    }
}
