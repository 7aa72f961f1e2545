//! The live view: latest vitals per patient and device, with counters.
//!
//! On a terminal it redraws a compact table every second; otherwise (a
//! pipe, a CI log) it prints a block of plain lines every few seconds. It
//! shows vital values, so the daemon only runs it when asked (`demo`, or
//! `run --live`), never into the journal by default.

use crate::alert::AlertSnapshot;
use crate::ingest::{DeviceView, IngestSnapshot};
use crate::store::StoreSnapshot;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use vitalgate_devices::{Quality, Timestamp, Vital};

/// Columns of the table: header and vital.
const COLUMNS: [(&str, Vital); 9] = [
    ("SpO2%", Vital::Spo2),
    ("PR", Vital::PulseRate),
    ("HR", Vital::HeartRate),
    ("RR", Vital::RespiratoryRate),
    ("TEMP", Vital::BodyTemperature),
    ("SYS", Vital::SystolicBp),
    ("DIA", Vital::DiastolicBp),
    ("PI%", Vital::PerfusionIndex),
    ("RRi ms", Vital::RrInterval),
];

/// Render the view as text (one frame).
pub fn render(
    ingest: &IngestSnapshot,
    store: &StoreSnapshot,
    alerts: &AlertSnapshot,
    rate: f64,
    now: Timestamp,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "vitalgate  received {}  invalid {}  rejected {}  stored {}  ({rate:.1} readings/s)  blocks sealed {}{}",
        ingest.received,
        ingest.invalid,
        ingest.rejected_total(),
        store.stored,
        store.blocks,
        match &store.failing {
            Some(e) => format!("  STORAGE FAILING: {e}"),
            None => String::new(),
        }
    );
    let _ = write!(out, "{:<12} {:<10} {:>5}", "PATIENT", "DEVICE", "AGE");
    for (h, _) in COLUMNS {
        let _ = write!(out, " {h:>6}");
    }
    let _ = writeln!(out, "  {:>6} {:>6} {:>6}  STATUS", "RECV", "REJ", "STORED");
    let mut rows: Vec<(&str, &DeviceView)> =
        ingest.devices.iter().map(|(k, v)| (&**k, v)).collect();
    rows.sort_by(|a, b| (&*a.1.patient, a.0).cmp(&(&*b.1.patient, b.0)));
    for (id, d) in rows {
        let age = d
            .last_seen
            .map(|t| {
                format!(
                    "{:.0}s",
                    ((now.millis() - t.millis()).max(0) as f64) / 1000.0
                )
            })
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            out,
            "{:<12} {:<10} {:>5}",
            truncate(&d.patient, 12),
            truncate(id, 10),
            age
        );
        for (_, v) in COLUMNS {
            let cell = match d.latest.get(&v) {
                Some(l) if v == Vital::BodyTemperature || v == Vital::PerfusionIndex => {
                    format!("{:.1}", l.value)
                }
                Some(l) => format!("{:.0}", l.value),
                None => "·".into(),
            };
            let _ = write!(out, " {cell:>6}");
        }
        let status = if d.status.is_empty() {
            let flagged = d.latest.values().fold(Quality::NONE, |q, l| q | l.quality);
            flagged.to_string()
        } else {
            d.status.to_string()
        };
        let stored = store.devices.get(id).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:>6} {:>6} {:>6}  {}",
            d.received, d.rejected, stored, status
        );
    }
    if !ingest.rejected.is_empty() {
        let reasons: Vec<String> = ingest
            .rejected
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = writeln!(out, "rejected: {}", reasons.join(", "));
    }
    render_alerts(&mut out, alerts);
    out
}

/// The alerts part: what is open now, and the latest events.
fn render_alerts(out: &mut String, alerts: &AlertSnapshot) {
    let count = |name: &str| alerts.events.get(name).copied().unwrap_or(0);
    let _ = write!(
        out,
        "\nALERTS  open {}  raised {}  escalated {}  acknowledged {}  resolved {}  waiting for delivery {}",
        alerts.open.len(),
        count("raised") + count("reopened"),
        count("escalated"),
        count("acknowledged"),
        count("resolved"),
        alerts.outbox,
    );
    if alerts.unsaved {
        out.push_str("  OUTBOX NOT SAVED (disk)");
    }
    out.push('\n');
    for s in alerts.sinks.iter().filter(|s| s.failures > 0) {
        let _ = writeln!(
            out,
            "  sink {}: {} failed attempts: {}",
            s.name,
            s.failures,
            s.last_error.as_deref().unwrap_or("")
        );
    }
    for a in &alerts.open {
        let _ = writeln!(
            out,
            "  {:<6} {:<12} {:<22} {:<12} tier {}  since {}  {}",
            format!("{:?}", a.severity).to_uppercase(),
            truncate(&a.patient, 12),
            a.kind.name(),
            a.state,
            a.tier,
            a.since,
            a.summary
        );
    }
    if !alerts.recent.is_empty() {
        let _ = writeln!(out, "latest events:");
        for line in &alerts.recent {
            let _ = writeln!(out, "  {line}");
        }
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Show the view until cancelled.
pub async fn run(
    mut ingest: watch::Receiver<IngestSnapshot>,
    store: watch::Receiver<StoreSnapshot>,
    alerts: watch::Receiver<AlertSnapshot>,
    hint: Option<String>,
    cancel: CancellationToken,
) {
    let terminal = std::io::stdout().is_terminal();
    let every = if terminal {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let mut tick = tokio::time::interval(every);
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let snap = ingest.borrow_and_update().clone();
        let stored = store.borrow().clone();
        let now = Instant::now();
        let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let rate = (snap.received.saturating_sub(last.1)) as f64 / secs;
        last = (now, snap.received);
        let open = alerts.borrow().clone();
        let mut frame = render(&snap, &stored, &open, rate, Timestamp::now());
        if let Some(h) = &hint {
            frame.push_str(h);
            frame.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        let _ = if terminal {
            // Home the cursor and clear: a refreshing table.
            write!(stdout, "\x1b[H\x1b[2J{frame}")
        } else {
            writeln!(stdout, "{frame}")
        };
        let _ = stdout.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::IngestStats;
    use vitalgate_devices::Reading;

    #[test]
    fn the_view_shows_each_device_with_its_latest_values_and_counts() {
        let mut stats = IngestStats::default();
        for (vital, value) in [(Vital::Spo2, 97.0), (Vital::PulseRate, 72.0)] {
            stats.reading(&Reading {
                device: "ox-a1".into(),
                patient: "patient-a".into(),
                vital,
                value,
                device_time: None,
                gateway_time: Timestamp(1_000),
                quality: Quality::NONE,
            });
        }
        stats.rejected(
            Some(&"ox-a1".into()),
            vitalgate_devices::Reject::BadChecksum,
        );
        let text = render(
            &stats.snapshot(),
            &StoreSnapshot::default(),
            &AlertSnapshot::default(),
            2.0,
            Timestamp(3_000),
        );
        let row = text.lines().find(|l| l.starts_with("patient-a")).unwrap();
        assert!(row.contains("ox-a1"), "{text}");
        assert!(row.contains(" 97 ") && row.contains(" 72 "), "{text}");
        assert!(text.contains("rejected: bad_checksum 1"), "{text}");
        assert!(text.starts_with("vitalgate  received 2  invalid 0  rejected 1  stored 0"));
    }
}
