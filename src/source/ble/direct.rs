//! The direct Bluetooth LE transport: the gateway's own adapter connects
//! to the bound wearables and subscribes to their health characteristics.
//!
//! One task for every directly bound device. It scans for the standard
//! services of the bound devices' profiles and connects only to bound
//! addresses: a neighbour's heart-rate strap advertising through the wall
//! is seen, noted once at debug level, and never connected. Connecting and
//! subscribing (which can take seconds, or time out when a device is out
//! of range) runs in its own task per device, so the others keep
//! streaming meanwhile; the connection handles come back to this loop,
//! which owns them, by message.
//!
//! A device that disconnects (switched off, walked out of range, a blood
//! pressure cuff that hangs up after each measurement) is reconnected with
//! its own jittered, capped backoff, reset once it delivers a value again.
//! An adapter that is missing, powered off or unreachable over D-Bus gets
//! one clear warning and is retried with backoff, forever: the rest of the
//! gateway never waits for Bluetooth.
//!
//! Values go through [`BleDevices::decode`], exactly as values relayed by
//! a proxy do. Logs name the device and its address, never a value.

use super::central::{Central, CentralError, CentralEvent, Events, Peripheral};
use super::{BleDevices, GattValue};
use crate::ingest::{Batch, LinkEvent};
use crate::source::backoff::Backoff;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::mem::Discriminant;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vitalgate_devices::gatt::{Address, Characteristic, Delivery};

/// First retry of a device after it dropped: soon, since a strap
/// re-seated on the chest is back within a second or two.
const DEVICE_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest wait between attempts on one device.
const DEVICE_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// First retry of a missing adapter.
const ADAPTER_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest wait between attempts on the adapter.
const ADAPTER_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Connecting, discovering and subscribing together: BlueZ gives up on a
/// connection by itself after a similar time; this bounds a stack that
/// does not.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long disconnecting may hold up shutdown.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Unbound advertisers remembered (to log each once): a block of flats
/// can be full of fitness trackers, the set must still stay small.
const MAX_UNBOUND_REMEMBERED: usize = 1024;

/// The 16-bit service UUIDs the bound devices' profiles use: what the scan
/// filters on.
pub fn scan_services(devices: &BleDevices) -> Vec<u16> {
    devices
        .iter()
        .flat_map(|d| d.characteristics.iter().map(|c| c.service().uuid()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Run the direct transport for `devices` until `cancel` fires.
pub async fn run<C: Central>(
    central: C,
    devices: BleDevices,
    batches: mpsc::Sender<Batch>,
    cancel: CancellationToken,
) {
    if devices.is_empty() {
        return;
    }
    let services = scan_services(&devices);
    let mut transport = Transport {
        devices,
        batches,
        cancel: cancel.clone(),
        index: 0,
        unbound: HashSet::new(),
    };
    let mut backoff = Backoff::new(ADAPTER_BACKOFF_BASE, ADAPTER_BACKOFF_MAX);
    let mut warned: Option<Discriminant<CentralError>> = None;
    let link: Arc<str> = Arc::from("ble:adapter");
    loop {
        let scanned = tokio::select! {
            _ = cancel.cancelled() => return,
            r = central.scan(&services) => r,
        };
        match scanned {
            Ok((adapter, events)) => {
                tracing::info!(
                    devices = transport.devices.iter().count(),
                    services = ?services.iter().map(|s| format!("{s:04X}")).collect::<Vec<_>>(),
                    failed_attempts = backoff.attempts(),
                    "Bluetooth adapter ready; scanning for the bound devices"
                );
                backoff.reset();
                warned = None;
                if !transport.report(LinkEvent::up(&link)).await {
                    return;
                }
                match transport.session(adapter, events).await {
                    Ended::Cancelled => return,
                    Ended::AdapterGone(reason) => {
                        tracing::warn!(
                            reason = %reason,
                            "Bluetooth adapter gone; every directly connected device is lost until it is back; retrying with backoff"
                        );
                        if !transport.report(LinkEvent::down(&link, reason)).await {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                // One warning per kind of trouble, not one per retry; a
                // different trouble (bluetoothd now runs, but there is no
                // adapter) is news worth a warning of its own.
                let kind = std::mem::discriminant(&e);
                if warned != Some(kind) {
                    tracing::warn!(
                        error = %e,
                        devices = transport.devices.iter().count(),
                        "direct Bluetooth is not available; retrying with backoff (the rest of the gateway runs)"
                    );
                    warned = Some(kind);
                    if !transport.report(LinkEvent::down(&link, &e)).await {
                        return;
                    }
                } else {
                    tracing::debug!(error = %e, "direct Bluetooth still not available");
                }
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// How one scan session ended.
enum Ended {
    Cancelled,
    AdapterGone(String),
}

/// Where one bound device stands within a scan session.
enum State<P> {
    /// Not seen since the scan started: waiting for the adapter to
    /// report it.
    Unseen,
    /// A connection attempt is running; `lost` when the stack reported a
    /// disconnection meanwhile (the attempt's handle is then stale).
    Connecting { lost: bool },
    /// Connected and subscribed; `live` once a value arrived.
    Connected { peripheral: P, live: bool },
    /// Waiting for the next attempt.
    Retrying { at: Instant },
}

struct Slot<P> {
    state: State<P>,
    backoff: Backoff,
}

/// What a finished connection attempt hands back.
struct Connection<P> {
    peripheral: P,
    subscribed: Vec<Characteristic>,
    missing: Vec<Characteristic>,
    reads: Vec<(Characteristic, Result<Vec<u8>, CentralError>)>,
}

struct Transport {
    devices: BleDevices,
    batches: mpsc::Sender<Batch>,
    cancel: CancellationToken,
    /// Values received so far: each value's offset for its decode events.
    index: u64,
    /// Unbound advertisers already noted.
    unbound: HashSet<Address>,
}

impl Transport {
    /// Connect to the bound devices on `adapter` and stream their values
    /// until the adapter goes or the task is cancelled.
    async fn session<C: Central>(&mut self, adapter: C, mut events: Events) -> Ended {
        let mut slots: HashMap<Address, Slot<C::Peripheral>> = self
            .devices
            .iter()
            .filter_map(|d| d.device.ble.map(|b| b.address))
            .map(|a| {
                (
                    a,
                    Slot {
                        state: State::Unseen,
                        backoff: Backoff::new(DEVICE_BACKOFF_BASE, DEVICE_BACKOFF_MAX),
                    },
                )
            })
            .collect();
        let mut attempts: JoinSet<Result<Connection<C::Peripheral>, CentralError>> = JoinSet::new();
        let mut attempting: HashMap<Id, Address> = HashMap::new();
        let ended = loop {
            let next_retry = slots
                .values()
                .filter_map(|s| match s.state {
                    State::Retrying { at } => Some(at),
                    _ => None,
                })
                .min();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break Ended::Cancelled,
                Some(done) = attempts.join_next_with_id() => {
                    let (id, result) = match done {
                        Ok((id, r)) => (id, r),
                        Err(e) => (e.id(), Err(CentralError::Other(format!("connection task failed: {e}")))),
                    };
                    if let Some(address) = attempting.remove(&id) {
                        if let Some(slot) = slots.get_mut(&address) {
                            self.connected(address, slot, result).await;
                        }
                    }
                }
                _ = sleep_until(next_retry) => {
                    let now = Instant::now();
                    for (address, slot) in slots.iter_mut() {
                        if matches!(slot.state, State::Retrying { at } if at <= now) {
                            self.attempt(&adapter, *address, slot, &mut attempts, &mut attempting);
                        }
                    }
                }
                event = events.recv() => match event {
                    None => break Ended::AdapterGone("the Bluetooth stack closed its event stream".into()),
                    Some(CentralEvent::AdapterGone { reason }) => break Ended::AdapterGone(reason),
                    Some(CentralEvent::Discovered { address, services }) => match slots.get_mut(&address) {
                        Some(slot) => {
                            if matches!(slot.state, State::Unseen) {
                                self.attempt(&adapter, address, slot, &mut attempts, &mut attempting);
                            }
                        }
                        None => self.unbound_seen(address, &services),
                    },
                    Some(CentralEvent::Disconnected { address }) => {
                        if let Some(slot) = slots.get_mut(&address) {
                            self.disconnected(address, slot);
                        }
                    }
                    Some(CentralEvent::Value { address, characteristic, value }) => {
                        if let Some(slot) = slots.get_mut(&address) {
                            if let State::Connected { live, .. } = &mut slot.state {
                                if !*live {
                                    *live = true;
                                    slot.backoff.reset();
                                }
                            }
                        }
                        if !self.deliver(address, characteristic, value).await {
                            break Ended::Cancelled;
                        }
                    }
                },
            }
        };
        // Attempts in flight are abandoned (dropping the set aborts them).
        attempts.abort_all();
        if let Ended::Cancelled = ended {
            // Hang up politely, so the devices advertise again for the next
            // start instead of waiting out a supervision timeout.
            let connected = slots.into_iter().filter_map(|(a, s)| match s.state {
                State::Connected { peripheral, .. } => Some((a, peripheral)),
                _ => None,
            });
            let hang_up = async {
                for (address, p) in connected {
                    if let Err(e) = p.disconnect().await {
                        tracing::debug!(%address, error = %e, "disconnecting at shutdown");
                    }
                }
            };
            let _ = tokio::time::timeout(DISCONNECT_TIMEOUT, hang_up).await;
        }
        ended
    }

    /// Start a connection attempt on `address` in its own task.
    fn attempt<C: Central>(
        &self,
        adapter: &C,
        address: Address,
        slot: &mut Slot<C::Peripheral>,
        attempts: &mut JoinSet<Result<Connection<C::Peripheral>, CentralError>>,
        attempting: &mut HashMap<Id, Address>,
    ) {
        let Some(d) = self.devices.get(&address) else {
            return;
        };
        tracing::debug!(device = %d.device.id, %address, attempt = slot.backoff.attempts() + 1, "connecting");
        let handle = attempts.spawn(connect(adapter.clone(), address, d.characteristics.clone()));
        attempting.insert(handle.id(), address);
        slot.state = State::Connecting { lost: false };
    }

    /// A connection attempt finished.
    async fn connected<P: Peripheral>(
        &mut self,
        address: Address,
        slot: &mut Slot<P>,
        result: Result<Connection<P>, CentralError>,
    ) {
        let Some(d) = self.devices.get(&address) else {
            return;
        };
        let id = d.device.id.clone();
        let lost = matches!(slot.state, State::Connecting { lost: true });
        match result {
            Ok(c) if !lost => {
                tracing::info!(
                    device = %id,
                    %address,
                    subscribed = ?names(&c.subscribed),
                    missing = ?names(&c.missing),
                    "Bluetooth device connected"
                );
                for (characteristic, read) in c.reads {
                    match read {
                        Ok(value) => {
                            // Cancellation shows in the main loop next.
                            let _ = self.deliver(address, characteristic.uuid(), value).await;
                        }
                        Err(e) => tracing::warn!(
                            device = %id, %address, characteristic = characteristic.name(), error = %e,
                            "cannot read a characteristic; going on without it"
                        ),
                    }
                }
                slot.state = State::Connected {
                    peripheral: c.peripheral,
                    live: false,
                };
            }
            Ok(_) => {
                let wait = retry(slot);
                tracing::info!(device = %id, %address, retry_in = ?wait, "Bluetooth device dropped while connecting; reconnecting with backoff");
            }
            Err(CentralError::NotFound(_)) => {
                // The adapter forgot it: only a fresh advertisement helps,
                // and that comes as a discovery.
                tracing::info!(device = %id, %address, "Bluetooth device not known to the adapter; waiting for it to advertise");
                slot.state = State::Unseen;
            }
            Err(e) => {
                let wait = retry(slot);
                // Loud on the first failure in a row, then quiet.
                if slot.backoff.attempts() <= 1 {
                    tracing::warn!(device = %id, %address, error = %e, retry_in = ?wait, "cannot connect to Bluetooth device; retrying with backoff");
                } else {
                    tracing::debug!(device = %id, %address, error = %e, retry_in = ?wait, "cannot connect to Bluetooth device");
                }
            }
        }
    }

    /// The stack reported `address` disconnected.
    fn disconnected<P>(&self, address: Address, slot: &mut Slot<P>) {
        let id = self
            .devices
            .get(&address)
            .map(|d| d.device.id.to_string())
            .unwrap_or_default();
        match &mut slot.state {
            State::Connected { .. } => {
                // Dropping the handle stops its notifications.
                let wait = retry(slot);
                tracing::info!(device = %id, %address, retry_in = ?wait, "Bluetooth device disconnected; reconnecting with backoff");
            }
            State::Connecting { lost } => *lost = true,
            State::Unseen | State::Retrying { .. } => {}
        }
    }

    /// Note an advertiser no device is bound to, once.
    fn unbound_seen(&mut self, address: Address, services: &[u16]) {
        if self.unbound.len() < MAX_UNBOUND_REMEMBERED && self.unbound.insert(address) {
            tracing::debug!(
                %address,
                services = ?services.iter().map(|s| format!("{s:04X}")).collect::<Vec<_>>(),
                unbound_seen = self.unbound.len(),
                "ignoring a Bluetooth health device that is not bound in the configuration"
            );
        }
    }

    /// Tell ingest the adapter came or went; false once cancelled or the
    /// pipeline is gone.
    async fn report(&self, event: LinkEvent) -> bool {
        tokio::select! {
            r = self.batches.send(Batch::link(event)) => r.is_ok(),
            _ = self.cancel.cancelled() => false,
        }
    }

    /// Decode one value and hand it to ingest; false once cancelled or
    /// the pipeline is gone.
    async fn deliver(&mut self, address: Address, characteristic: u16, value: Vec<u8>) -> bool {
        let value = GattValue {
            address,
            uuid: characteristic,
            value,
            time: None,
        };
        let batch = self.devices.decode(&value, crate::clock::now(), self.index);
        self.index += 1;
        if batch.is_empty() {
            return true;
        }
        tokio::select! {
            r = self.batches.send(batch) => r.is_ok(),
            _ = self.cancel.cancelled() => false,
        }
    }
}

/// Schedule the next attempt on a device after its backoff; the wait.
fn retry<P>(slot: &mut Slot<P>) -> Duration {
    let wait = slot.backoff.next_delay();
    slot.state = State::Retrying {
        at: Instant::now() + wait,
    };
    wait
}

/// Connect, discover, subscribe to what is notified or indicated and read
/// what is read; disconnect again if any of it fails.
async fn connect<C: Central>(
    central: C,
    address: Address,
    characteristics: Vec<Characteristic>,
) -> Result<Connection<C::Peripheral>, CentralError> {
    let attempt = async {
        let peripheral = central.connect(address).await?;
        match set_up(&peripheral, address, &characteristics).await {
            Ok((subscribed, missing, reads)) => Ok(Connection {
                peripheral,
                subscribed,
                missing,
                reads,
            }),
            Err(e) => {
                let _ = peripheral.disconnect().await;
                Err(e)
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or(Err(CentralError::TimedOut))
}

type SetUp = (
    Vec<Characteristic>,
    Vec<Characteristic>,
    Vec<(Characteristic, Result<Vec<u8>, CentralError>)>,
);

async fn set_up<P: Peripheral>(
    peripheral: &P,
    address: Address,
    characteristics: &[Characteristic],
) -> Result<SetUp, CentralError> {
    let offered = peripheral.discover_services().await?;
    let (mut subscribed, mut missing, mut reads) = (Vec::new(), Vec::new(), Vec::new());
    for &c in characteristics {
        if !offered.contains(&c.uuid()) {
            // Intermediate values are optional in every health profile.
            missing.push(c);
            continue;
        }
        match c.delivery() {
            Delivery::Notify | Delivery::Indicate => {
                peripheral.subscribe(c.uuid()).await?;
                subscribed.push(c);
            }
            Delivery::Read => reads.push((c, peripheral.read(c.uuid()).await)),
        }
    }
    if subscribed.is_empty() && reads.is_empty() {
        return Err(CentralError::Other(format!(
            "{address} offers none of its profile's characteristics ({})",
            names(characteristics).join(", ")
        )));
    }
    Ok((subscribed, missing, reads))
}

fn names(characteristics: &[Characteristic]) -> Vec<&'static str> {
    characteristics.iter().map(|c| c.name()).collect()
}

/// Sleep until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
