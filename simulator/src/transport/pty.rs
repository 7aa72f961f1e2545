//! Serial devices on a pseudo-terminal pair.
//!
//! The simulator keeps the master side and writes the device's bytes to
//! it; the gateway opens the slave side by its path (printed for the user)
//! exactly as it would open `/dev/ttyUSB0`. Protocols where the host must
//! speak first (Contec V7's "start real-time data") are honoured: nothing
//! is sent until the start command has been read from the gateway.

use super::{Link, LinkError};
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_serial::{SerialPort, SerialStream};
use tokio_util::sync::CancellationToken;
use vitalgate_devices::format::HostCommands;

/// An open pseudo-terminal for one virtual device.
pub struct PtyDevice {
    /// The path the gateway opens (`/dev/pts/N`).
    pub path: PathBuf,
    master: SerialStream,
    // Held open so the master never sees a hang-up while the gateway
    // re-opens the port.
    _slave: SerialStream,
}

impl PtyDevice {
    /// Create a pseudo-terminal pair.
    pub fn open() -> Result<PtyDevice, LinkError> {
        let (master, slave) = SerialStream::pair().map_err(|e| LinkError::Pty(e.to_string()))?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| LinkError::Pty("the pseudo-terminal has no name".into()))?;
        Ok(PtyDevice {
            path,
            master,
            _slave: slave,
        })
    }

    /// Start the writer task; returns the link to send the device's output
    /// into.
    pub fn spawn(self, commands: HostCommands, cancel: CancellationToken) -> Link {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(write_loop(self, commands, rx, cancel));
        Link { tx }
    }
}

async fn write_loop(
    mut dev: PtyDevice,
    commands: HostCommands,
    mut rx: mpsc::Receiver<Vec<u8>>,
    cancel: CancellationToken,
) {
    let mut started = commands.on_open.is_empty();
    let mut heard: Vec<u8> = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            read = dev.master.read(&mut buf) => {
                // The host's commands: look for the start command.
                match read {
                    Ok(n) if n > 0 => {
                        heard.extend_from_slice(&buf[..n]);
                        if !started && contains(&heard, &commands.on_open) {
                            started = true;
                            tracing::info!(path = %dev.path.display(), "host sent the start command; streaming");
                        }
                        if heard.len() > 4096 {
                            heard.drain(..heard.len() - 64);
                        }
                    }
                    // Nobody has the slave open right now (EIO): wait.
                    _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
            bytes = rx.recv() => {
                let Some(bytes) = bytes else { return };
                if started {
                    if let Err(e) = dev.master.write_all(&bytes).await {
                        tracing::debug!(path = %dev.path.display(), error = %e, "pty write failed");
                    }
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
