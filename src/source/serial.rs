//! Serial devices: one task per port.
//!
//! The task opens the port with the profile's line settings, sends what the
//! protocol asks of the host (a start command, keep-alives), and feeds
//! whatever arrives to the profile's stream decoder. An unplugged device
//! (read error, end of file) or one that is not there yet is re-opened with
//! backoff, forever: a patient unplugging an oximeter overnight is normal.

use super::backoff::Backoff;
use crate::config::Device;
use crate::ingest::{Batch, LinkEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_serial::{DataBits, Parity, SerialPortBuilderExt, SerialStream, StopBits};
use tokio_util::sync::CancellationToken;
use vitalgate_devices::decode::{Decoder, StreamDecoder};
use vitalgate_devices::profile::{self, SerialSettings};

/// Read buffer size: a few frames' worth at 115200 baud per wake-up.
const READ_BUFFER: usize = 4096;

/// Run one serial device until cancelled.
pub async fn run(device: Device, batches: mpsc::Sender<Batch>, cancel: CancellationToken) {
    let (Some(port), Some(settings)) = (device.port.clone(), device.profile.serial.clone()) else {
        tracing::error!(device = %device.id, "serial device without a port or serial settings; not started");
        return;
    };
    let Decoder::Stream(mut decoder) = device
        .profile
        .format
        .decoder(&device.profile.format_options())
    else {
        tracing::error!(device = %device.id, format = %device.profile.format, "format is not a byte stream; not started");
        return;
    };
    let commands = device.profile.format.host_commands();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let path = port.display().to_string();
    let link: Arc<str> = Arc::from(format!("serial:{}", device.id));
    loop {
        if cancel.is_cancelled() {
            return;
        }
        match open(&path, &settings) {
            Ok(mut stream) => {
                tracing::info!(device = %device.id, port = %path, baud = settings.baud, "serial port open");
                if !send(&batches, Batch::link(LinkEvent::up(&link)), &cancel).await {
                    return;
                }
                let outcome = read_until_closed(
                    &device,
                    &mut stream,
                    decoder.as_mut(),
                    &commands,
                    &batches,
                    &cancel,
                    &mut backoff,
                )
                .await;
                let mut batch = Batch::default();
                let now = crate::clock::now();
                decoder.finish(&mut |d| super::bind(d, &device, now, &mut batch));
                let _ = send(&batches, batch, &cancel).await;
                match outcome {
                    Closed::Cancelled => return,
                    Closed::Lost(why) => {
                        tracing::warn!(device = %device.id, port = %path, "serial device lost ({why}); re-opening");
                        if !send(&batches, Batch::link(LinkEvent::down(&link, why)), &cancel).await
                        {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                // Loud on the first failure, then quiet until it recovers.
                if backoff.attempts() == 0 {
                    tracing::warn!(device = %device.id, port = %path, error = %e, "cannot open serial port; retrying with backoff");
                    if !send(&batches, Batch::link(LinkEvent::down(&link, &e)), &cancel).await {
                        return;
                    }
                } else {
                    tracing::debug!(device = %device.id, port = %path, error = %e, "cannot open serial port");
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

enum Closed {
    Cancelled,
    Lost(String),
}

async fn read_until_closed(
    device: &Device,
    stream: &mut SerialStream,
    decoder: &mut dyn StreamDecoder,
    commands: &vitalgate_devices::format::HostCommands,
    batches: &mpsc::Sender<Batch>,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
) -> Closed {
    if !commands.on_open.is_empty() {
        if let Err(e) = stream.write_all(&commands.on_open).await {
            return Closed::Lost(format!("writing the start command: {e}"));
        }
    }
    let keepalive_every = commands
        .keepalive
        .as_ref()
        .map(|(every, _)| *every)
        .unwrap_or(Duration::from_secs(3600));
    let mut keepalive = tokio::time::interval(keepalive_every);
    keepalive.tick().await;
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Closed::Cancelled,
            _ = keepalive.tick(), if commands.keepalive.is_some() => {
                if let Some((_, bytes)) = &commands.keepalive {
                    if let Err(e) = stream.write_all(bytes).await {
                        return Closed::Lost(format!("writing the keep-alive: {e}"));
                    }
                }
            }
            read = stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return Closed::Lost("end of file".into()),
                    Ok(n) => n,
                    Err(e) => return Closed::Lost(e.to_string()),
                };
                backoff.reset();
                let now = crate::clock::now();
                let mut batch = Batch::default();
                decoder.feed(&buf[..n], &mut |d| super::bind(d, device, now, &mut batch));
                if !batch.is_empty() && !send(batches, batch, cancel).await {
                    return Closed::Cancelled;
                }
            }
        }
    }
}

/// Send a batch unless cancelled first; false when the pipeline is gone.
async fn send(batches: &mpsc::Sender<Batch>, batch: Batch, cancel: &CancellationToken) -> bool {
    if batch.is_empty() {
        return true;
    }
    tokio::select! {
        r = batches.send(batch) => r.is_ok(),
        _ = cancel.cancelled() => false,
    }
}

fn open(path: &str, s: &SerialSettings) -> Result<SerialStream, tokio_serial::Error> {
    tokio_serial::new(path, s.baud)
        .data_bits(match s.data_bits {
            7 => DataBits::Seven,
            _ => DataBits::Eight,
        })
        .parity(match s.parity {
            profile::Parity::None => Parity::None,
            profile::Parity::Odd => Parity::Odd,
            profile::Parity::Even => Parity::Even,
        })
        .stop_bits(match s.stop_bits {
            2 => StopBits::Two,
            _ => StopBits::One,
        })
        .open_native_async()
}
