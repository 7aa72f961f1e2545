//! MQTT devices (Wi-Fi wearables, BLE proxies), reached two ways:
//!
//! - [`server`]: the gateway's own MQTT server, which devices publish to
//!   directly (the out-of-the-box setup). It answers each PUBLISH only once
//!   the readings in it are committed to the ledger, so a device's own
//!   PUBACK means "durable".
//! - [`client`]: a subscription to an external broker (Mosquitto, the
//!   hospital's), with manual acknowledgements: the broker holds what the
//!   gateway has not acknowledged.
//!
//! Both decode with the same [`Devices`] table, so a message is judged the
//! same whichever way it came.

pub mod client;
mod connection;
mod devices;
pub mod server;

pub use client::{MqttSetupError, broker_options, options, run};
pub use devices::{BLE_PROXY_MAX_PAYLOAD, BLE_PROXY_TOPIC, Devices, printable};

/// Largest MQTT packet the gateway accepts. A larger one closes the
/// connection it came on (with a persistent session at a broker it would
/// be delivered again, forever), so an external broker should be
/// configured with the same limit; profiles reject smaller "too large"
/// payloads politely.
pub const MAX_PACKET_BYTES: usize = 1024 * 1024;
