//! Where a virtual device's bytes go: a pseudo-terminal (serial devices)
//! or an MQTT broker (Wi-Fi devices).
//!
//! Each link is a task that receives the device's encoded output over a
//! bounded channel and writes it, the way the real device would.

pub mod mqtt;
pub mod pty;

use tokio::sync::mpsc;

/// The sending side of one device's link.
#[derive(Debug, Clone)]
pub struct Link {
    /// Encoded output of one snapshot period.
    pub tx: mpsc::Sender<Vec<u8>>,
}

/// Errors setting up a link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The pseudo-terminal could not be created.
    #[error("cannot create a pseudo-terminal: {0}")]
    Pty(String),
}
