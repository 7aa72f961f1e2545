//! Decoding a raw capture file: the integrator's tool for a new device.
//!
//! Serial formats read the capture as one byte stream; message formats
//! (SenML, Open mHealth) read one message per line. Readings go out as JSON
//! lines; every rejected frame is reported with its byte offset and reason,
//! and decoding carries on.

use std::io::{BufRead, Read, Write};
use std::sync::Arc;
use vitalgate_devices::decode::Decoder;
use vitalgate_devices::profile::Profile;
use vitalgate_devices::{Decoded, Reading, Reject, Timestamp};

/// What a capture held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Readings written.
    pub readings: u64,
    /// Status frames (no value).
    pub statuses: u64,
    /// Rejections, per reason.
    pub rejected: std::collections::BTreeMap<Reject, u64>,
}

/// Options for [`decode`].
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Device id written into the readings.
    pub device: Arc<str>,
    /// Patient id written into the readings.
    pub patient: Arc<str>,
    /// Gateway receive time written into the readings (and the reference
    /// for SenML relative times).
    pub received: Timestamp,
    /// Also write status frames as JSON lines.
    pub statuses: bool,
}

/// Decode `input` with `profile`'s format, readings (and statuses) to
/// `out`, one report line per rejection to `report`.
pub fn decode(
    profile: &Profile,
    options: &CaptureOptions,
    input: &mut dyn Read,
    out: &mut dyn Write,
    report: &mut dyn Write,
) -> std::io::Result<CaptureSummary> {
    let mut summary = CaptureSummary::default();
    let mut io_result = Ok(());
    let mut emit = |d: Decoded, summary: &mut CaptureSummary| {
        if io_result.is_err() {
            return;
        }
        io_result = emit_one(d, options, out, report, summary);
    };
    match profile.format.decoder(&profile.format_options()) {
        Decoder::Stream(mut decoder) => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                decoder.feed(&buf[..n], &mut |d| emit(d, &mut summary));
            }
            decoder.finish(&mut |d| emit(d, &mut summary));
        }
        Decoder::Message(mut decoder) => {
            let mut reader = std::io::BufReader::new(input);
            let mut line = Vec::new();
            let mut offset = 0u64;
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 {
                    break;
                }
                let msg = trim_line_end(&line);
                if !msg.iter().all(u8::is_ascii_whitespace) {
                    decoder.decode(msg, offset, options.received, &mut |d| {
                        emit(d, &mut summary)
                    });
                }
                offset += n as u64;
            }
        }
    }
    io_result?;
    Ok(summary)
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

fn emit_one(
    d: Decoded,
    options: &CaptureOptions,
    out: &mut dyn Write,
    report: &mut dyn Write,
    summary: &mut CaptureSummary,
) -> std::io::Result<()> {
    match d {
        Decoded::Measurement(m) => {
            let r =
                Reading::from_measurement(&m, &options.device, &options.patient, options.received);
            serde_json::to_writer(&mut *out, &r)?;
            out.write_all(b"\n")?;
            summary.readings += 1;
        }
        Decoded::Status(s) => {
            summary.statuses += 1;
            if options.statuses {
                let line = serde_json::json!({
                    "device": &*options.device,
                    "status": s.quality,
                    "vital": s.vital,
                    "device_time": s.device_time,
                    "offset": s.offset,
                });
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        Decoded::Error(e) => {
            *summary.rejected.entry(e.reason).or_default() += 1;
            writeln!(report, "{e}")?;
        }
    }
    Ok(())
}
