//! Playing a simulation out through real transports, at real time or
//! accelerated.
//!
//! The simulation itself runs on simulated time and is deterministic; this
//! loop only decides *when* on the wall clock each sample is sent (its
//! simulated offset divided by the speed-up) and writes the ground-truth
//! labels as events finish.

use crate::label::Label;
use crate::simulation::Simulation;
use crate::transport::Link;
use std::io::Write;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vitalgate_devices::Timestamp;
use vitalgate_devices::decode::Encoder;

/// How fast simulated time passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// `speed` simulated seconds per wall-clock second (1.0 = real time).
    Speed(f64),
    /// As fast as the links accept the output.
    Unpaced,
}

/// One simulated device's way out.
pub struct Output {
    /// Turns its snapshots into its wire format.
    pub encoder: Box<dyn Encoder>,
    /// Where the bytes go.
    pub link: Link,
}

/// Totals of a played simulation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Played {
    /// Snapshots sent.
    pub samples: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Labels written.
    pub labels: u64,
}

/// Play `sim` until it ends or `cancel` fires. `outputs[i]` belongs to the
/// simulation's device `i`; a `None` output is a device not played.
/// Labels go to `labels` (JSON lines) as their events end.
pub async fn play(
    mut sim: Simulation,
    mut outputs: Vec<Option<Output>>,
    pace: Pace,
    mut labels: Option<&mut (dyn Write + Send)>,
    cancel: CancellationToken,
) -> std::io::Result<Played> {
    let wall_start = Instant::now();
    let mut sim_start: Option<Timestamp> = None;
    let mut played = Played::default();
    let mut buf = Vec::with_capacity(4096);
    while let Some(sample) = sim.next() {
        if cancel.is_cancelled() {
            break;
        }
        let start = *sim_start.get_or_insert(sample.snapshot.time);
        if let Pace::Speed(speed) = pace {
            let offset_ms = (sample.snapshot.time.millis() - start.millis()).max(0) as f64 / speed;
            let due = wall_start + Duration::from_secs_f64(offset_ms / 1000.0);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
        }
        if let Some(Some(out)) = outputs.get_mut(sample.device) {
            buf.clear();
            out.encoder.encode(&sample.snapshot, &mut buf);
            played.samples += 1;
            // A device with nothing to say (sensor off, for the message
            // formats) sends nothing, rather than an empty message.
            if buf.is_empty() {
                continue;
            }
            played.bytes += buf.len() as u64;
            let sent = tokio::select! {
                r = out.link.tx.send(buf.clone()) => r.is_ok(),
                _ = cancel.cancelled() => false,
            };
            if !sent {
                break;
            }
        }
        if let Some(w) = labels.as_deref_mut() {
            played.labels += write_labels(w, sim.drain_labels())?;
        }
    }
    if let Some(w) = labels {
        played.labels += write_labels(w, sim.finish_labels())?;
        w.flush()?;
    }
    Ok(played)
}

fn write_labels(w: &mut (dyn Write + Send), labels: Vec<Label>) -> std::io::Result<u64> {
    let n = labels.len() as u64;
    for l in labels {
        serde_json::to_writer(&mut *w, &l)?;
        w.write_all(b"\n")?;
    }
    Ok(n)
}

/// Parse a duration as people write it on a command line: `90s`, `10m`,
/// `2h`, `1d`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 10m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use ms, s, m, h or d)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
