//! The MQTT devices the gateway knows: topic → bound device → decoder,
//! and the BLE proxies' topic → relayed address → bound BLE device.
//!
//! Shared by both ways MQTT messages arrive (the gateway's own server and
//! a subscription to an external broker), so a message is judged the same
//! whichever way it came.

use crate::config::{BleLink, Device};
use crate::ingest::{Batch, Rejection};
use crate::source::ble::{BleDevices, GattValue};
use std::collections::HashMap;
use std::sync::Arc;
use vitalgate_devices::decode::{Decoder, MessageDecoder};
use vitalgate_devices::format::ble_gatt;
use vitalgate_devices::gatt::RelayedValue;
use vitalgate_devices::profile::{MqttSettings, Transport as DeviceTransport};
use vitalgate_devices::{Reject, Timestamp};

/// The MQTT devices, by id, with one decoder each.
pub struct Devices {
    by_id: HashMap<Arc<str>, (Device, Box<dyn MessageDecoder>)>,
    /// Distinct topic patterns of the bound profiles (and the proxies').
    patterns: Vec<MqttSettings>,
    /// Bluetooth LE devices whose values a BLE proxy relays.
    proxied: BleDevices,
}

/// Where BLE proxies publish: one level naming the proxy (its own choice,
/// e.g. `esp32-bedroom`); the device is the address inside each message.
pub const BLE_PROXY_TOPIC: &str = "vitalgate/ble/{device}";

/// A relayed message is one characteristic value (at most 512 bytes, 1 KiB
/// of hex) with its address and UUID; anything much larger is not one.
pub const BLE_PROXY_MAX_PAYLOAD: usize = 2048;

fn ble_proxy_topic() -> MqttSettings {
    MqttSettings {
        topic: BLE_PROXY_TOPIC.to_owned(),
        max_payload_bytes: BLE_PROXY_MAX_PAYLOAD,
    }
}

impl Devices {
    /// The MQTT devices among `devices`.
    pub fn new(devices: &[Device]) -> Self {
        let mut by_id = HashMap::new();
        let mut patterns: Vec<MqttSettings> = Vec::new();
        for d in devices
            .iter()
            .filter(|d| d.profile.transport == DeviceTransport::Mqtt)
        {
            let Some(settings) = &d.profile.mqtt else {
                continue;
            };
            if let Decoder::Message(decoder) = d.profile.format.decoder(&d.profile.format_options())
            {
                by_id.insert(Arc::clone(&d.id), (d.clone(), decoder));
                if !patterns.iter().any(|p| p.topic == settings.topic) {
                    patterns.push(settings.clone());
                }
            }
        }
        let proxied = BleDevices::new(devices, BleLink::Proxy);
        if !proxied.is_empty() {
            patterns.push(ble_proxy_topic());
        }
        Devices {
            by_id,
            patterns,
            proxied,
        }
    }

    /// True when no bound device speaks MQTT or is relayed over it.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.proxied.is_empty()
    }

    /// The distinct topic layouts of the bound devices' profiles.
    pub fn patterns(&self) -> &[MqttSettings] {
        &self.patterns
    }

    /// Decode one message into a batch, rejecting what does not belong.
    pub fn decode(&mut self, topic: &str, payload: &[u8], index: u64) -> Batch {
        let received = crate::clock::now();
        let mut batch = Batch::default();
        let reject =
            |batch: &mut Batch, device: Option<Arc<str>>, reason: Reject, detail: String| {
                batch.rejections.push(Rejection {
                    device,
                    reason,
                    detail,
                });
            };
        if !self.proxied.is_empty()
            && let Some(proxy) = ble_proxy_topic().device_in(topic)
        {
            return self.relayed(proxy, payload, index, received);
        }
        let Some(id) = self.patterns.iter().find_map(|p| p.device_in(topic)) else {
            reject(
                &mut batch,
                None,
                Reject::UnknownTopic,
                format!(
                    "message on topic `{}` matches no device profile",
                    printable(topic)
                ),
            );
            return batch;
        };
        let Some((device, decoder)) = self.by_id.get_mut(id) else {
            reject(
                &mut batch,
                None,
                Reject::UnknownDevice,
                format!(
                    "device `{}` (topic `{}`) is not bound in the configuration",
                    printable(id),
                    printable(topic)
                ),
            );
            return batch;
        };
        // A bound device must speak on its own profile's topic; the same id
        // on another model's topic is a spoof or a misconfiguration.
        let Some(settings) = device
            .profile
            .mqtt
            .as_ref()
            .filter(|s| s.device_in(topic).is_some())
        else {
            reject(
                &mut batch,
                Some(Arc::clone(&device.id)),
                Reject::UnknownTopic,
                format!(
                    "device `{}` is bound to a {} profile but sent on topic `{}`",
                    device.id,
                    device.profile.format,
                    printable(topic)
                ),
            );
            return batch;
        };
        if payload.len() > settings.max_payload_bytes {
            reject(
                &mut batch,
                Some(Arc::clone(&device.id)),
                Reject::TooLarge,
                format!(
                    "message {index} is {} bytes; the profile allows {}",
                    payload.len(),
                    settings.max_payload_bytes
                ),
            );
            return batch;
        }
        decoder.decode(payload, index, received, &mut |d| {
            crate::source::bind(d, device, received, &mut batch)
        });
        batch
    }
}

impl Devices {
    /// A characteristic value a BLE proxy relayed.
    fn relayed(&self, proxy: &str, payload: &[u8], index: u64, received: Timestamp) -> Batch {
        let refuse = |reason: Reject, detail: String| Batch {
            rejections: vec![Rejection {
                device: None,
                reason,
                detail: format!("BLE proxy `{}`: {detail}", printable(proxy)),
            }],
            ..Batch::default()
        };
        if payload.len() > BLE_PROXY_MAX_PAYLOAD {
            return refuse(
                Reject::TooLarge,
                format!(
                    "message {index} is {} bytes; a relayed value is at most {BLE_PROXY_MAX_PAYLOAD}",
                    payload.len()
                ),
            );
        }
        match RelayedValue::parse(payload) {
            Ok(r) => self.proxied.decode(
                &GattValue {
                    address: r.address,
                    uuid: r.uuid,
                    value: r.value,
                    time: r.time,
                },
                received,
                index,
            ),
            Err(e) => refuse(ble_gatt::relay_reject(&e), e.to_string()),
        }
    }
}

/// Topics come from the network: keep log lines one printable line.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(128)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
