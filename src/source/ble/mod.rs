//! Bluetooth LE wearables: the bound devices by address, and the two ways
//! their characteristic values arrive — the gateway's own adapter
//! ([`direct`]) or a BLE proxy relaying them over MQTT (read by the MQTT
//! source, see [`crate::source::mqtt`]).
//!
//! Both ways end in [`BleDevices::decode`], so a value is bound, decoded
//! and rejected the same whichever way it came.

#[cfg(all(feature = "ble", target_os = "linux"))]
pub mod bluez;
pub mod central;
pub mod direct;
#[cfg(test)]
pub mod memory;

use crate::config::{BleLink, Device};
use crate::ingest::{Batch, Rejection};
use crate::source::bind;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vitalgate_devices::format::ble_gatt;
use vitalgate_devices::gatt::{Address, Characteristic};
use vitalgate_devices::{Reject, Timestamp};

/// One characteristic value as it arrived, before it is bound to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GattValue {
    /// The peripheral that sent it.
    pub address: Address,
    /// The characteristic's 16-bit UUID.
    pub uuid: u16,
    /// The raw value.
    pub value: Vec<u8>,
    /// The sender's time for it (a proxy with a synchronised clock), if
    /// any; the gateway's receive time otherwise.
    pub time: Option<Timestamp>,
}

/// A bound Bluetooth LE device and what its profile takes from it.
#[derive(Debug, Clone)]
pub struct BleDevice {
    /// The binding.
    pub device: Device,
    /// The characteristics its profile takes (subscribed directly,
    /// accepted from a proxy).
    pub characteristics: Vec<Characteristic>,
    /// How it is reached.
    pub link: BleLink,
}

/// The bound Bluetooth LE devices, by address.
#[derive(Debug, Clone, Default)]
pub struct BleDevices {
    by_address: HashMap<Address, BleDevice>,
}

impl BleDevices {
    /// The Bluetooth LE devices among `devices` reached by `link`.
    pub fn new(devices: &[Device], link: BleLink) -> BleDevices {
        let by_address = devices
            .iter()
            .filter_map(|d| {
                let ble = d.ble.filter(|b| b.link == link)?;
                let characteristics = d.profile.format_options().characteristics;
                Some((
                    ble.address,
                    BleDevice {
                        device: d.clone(),
                        characteristics,
                        link,
                    },
                ))
            })
            .collect();
        BleDevices { by_address }
    }

    /// True when none is bound.
    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }

    /// The bound devices.
    pub fn iter(&self) -> impl Iterator<Item = &BleDevice> {
        self.by_address.values()
    }

    /// The device bound to `address`.
    pub fn get(&self, address: &Address) -> Option<&BleDevice> {
        self.by_address.get(address)
    }

    /// Bind and decode one value: its device's readings, statuses and
    /// rejections, or an [`Reject::UnknownDevice`] rejection for an
    /// address no device is bound to. `index` numbers the value among
    /// those its transport received (the offset of its decode events).
    pub fn decode(&self, value: &GattValue, received: Timestamp, index: u64) -> Batch {
        let mut batch = Batch::default();
        let Some(d) = self.by_address.get(&value.address) else {
            batch.rejections.push(Rejection {
                device: None,
                reason: Reject::UnknownDevice,
                detail: format!(
                    "Bluetooth device {} is not bound in the configuration (characteristic {:04X}); bind it with address = \"{}\"",
                    value.address, value.uuid, value.address
                ),
            });
            return batch;
        };
        ble_gatt::report_value(
            &d.characteristics,
            value.uuid,
            &value.value,
            value.time,
            index,
            &mut |decoded| bind(decoded, &d.device, received, &mut batch),
        );
        batch
    }
}

/// Run the direct transport for `devices` on the host's Bluetooth stack
/// (BlueZ) until cancelled.
#[cfg(all(feature = "ble", target_os = "linux"))]
pub async fn run_direct(
    devices: BleDevices,
    batches: mpsc::Sender<Batch>,
    cancel: CancellationToken,
) {
    direct::run(bluez::BluezCentral::new(), devices, batches, cancel).await
}

/// In a build without direct Bluetooth (the `ble` cargo feature off, or
/// not Linux): say so once, clearly, and let the rest of the gateway run.
#[cfg(not(all(feature = "ble", target_os = "linux")))]
pub async fn run_direct(
    devices: BleDevices,
    batches: mpsc::Sender<Batch>,
    _cancel: CancellationToken,
) {
    let ids: Vec<String> = devices.iter().map(|d| d.device.id.to_string()).collect();
    tracing::error!(
        devices = ?ids,
        "this build of vitalgate has no direct Bluetooth (built without the `ble` feature, or not for Linux); devices bound with link = \"direct\" will not be read: rebuild with the default features, or bind them through a BLE proxy (link = \"proxy\")"
    );
    let link = std::sync::Arc::from("ble:adapter");
    let _ = batches
        .send(Batch::link(crate::ingest::LinkEvent::down(
            &link,
            "this build has no direct Bluetooth",
        )))
        .await;
}
