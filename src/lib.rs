//! vitalgate: a home patient gateway.
//!
//! Wearables and bedside devices stream vitals to the gateway over serial
//! ports and MQTT; it decodes each device's wire format into normalized
//! [`Reading`](vitalgate_devices::Reading)s, checks and counts them, and
//! hands them to storage, acknowledging a device's message only once
//! storage has it. MQTT devices publish either to the gateway's own MQTT
//! server (`source::mqtt::server`) or to a broker the gateway subscribes
//! to.
//!
//! The pipeline, one folder or file per stage:
//!
//! ```text
//! source::{serial, mqtt} ──Batch──▶ ingest ──StoreRequest──▶ store
//!        (decode, bind)          (replays, counts)     (group commit, then ack)
//! ```
//!
//! Stages are tasks joined by bounded channels; one cancellation token
//! stops the sources, and the rest drains behind them. See
//! `docs/ARCHITECTURE.md`.

pub mod alert;
pub mod anchor;
pub mod capture;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod demo;
pub mod detect;
pub mod fhir;
pub mod gateway;
pub mod health;
pub mod http;
pub mod http_client;
pub mod ingest;
pub mod source;
pub mod store;
pub mod view;

pub use config::Config;
pub use gateway::Gateway;
