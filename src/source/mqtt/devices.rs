//! The MQTT devices the gateway knows: topic → bound device → decoder.
//!
//! Shared by both ways MQTT messages arrive (the gateway's own server and
//! a subscription to an external broker), so a message is judged the same
//! whichever way it came.

use crate::config::Device;
use crate::ingest::{Batch, Rejection};
use std::collections::HashMap;
use std::sync::Arc;
use vitalgate_devices::decode::{Decoder, MessageDecoder};
use vitalgate_devices::profile::{MqttSettings, Transport as DeviceTransport};
use vitalgate_devices::{Reject, Timestamp};

/// The MQTT devices, by id, with one decoder each.
pub struct Devices {
    by_id: HashMap<Arc<str>, (Device, Box<dyn MessageDecoder>)>,
    /// Distinct topic patterns of the bound profiles.
    patterns: Vec<MqttSettings>,
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
        Devices { by_id, patterns }
    }

    /// True when no bound device speaks MQTT.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The distinct topic layouts of the bound devices' profiles.
    pub fn patterns(&self) -> &[MqttSettings] {
        &self.patterns
    }

    /// Decode one message into a batch, rejecting what does not belong.
    pub fn decode(&mut self, topic: &str, payload: &[u8], index: u64) -> Batch {
        let received = Timestamp::now();
        let mut batch = Batch::default();
        let reject =
            |batch: &mut Batch, device: Option<Arc<str>>, reason: Reject, detail: String| {
                batch.rejections.push(Rejection {
                    device,
                    reason,
                    detail,
                });
            };
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

/// Topics come from the network: keep log lines one printable line.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(128)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
