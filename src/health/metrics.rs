//! The `/metrics` page: every counter a hospital engineer watches a fleet
//! of gateways by, named `vitalgate_*`, listed with their meaning in
//! `docs/OPERATIONS.md`.
//!
//! Labels carry device ids, source link names, reasons and sink names:
//! never a patient id, never a value.

use super::Health;
use super::exposition::{Exposition, Kind};
use vitalgate_detect::{Category, Severity};

/// Render the page from `health`'s snapshots, now.
pub fn render(health: &Health) -> String {
    let mut page = Exposition::default();
    let now = crate::clock::now();
    page.family(
        "vitalgate_build_info",
        Kind::Gauge,
        "The running software's version (always 1).",
    )
    .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1u64);
    page.family(
        "vitalgate_start_time_seconds",
        Kind::Gauge,
        "When the daemon started (Unix time, gateway clock).",
    )
    .value(health.started_wall.millis() as f64 / 1000.0);

    ingest(&mut page, health);
    store(&mut page, health);
    detection(&mut page, health);
    alerts(&mut page, health, now.millis());
    anchors(&mut page, health, now.millis());
    clock(&mut page);
    page.finish()
}

fn ingest(page: &mut Exposition, health: &Health) {
    let s = health.observed.ingest.borrow();
    let mut f = page.family(
        "vitalgate_readings_received_total",
        Kind::Counter,
        "Readings decoded from each device (valid or flagged).",
    );
    for (id, d) in &s.devices {
        if d.received > 0 || d.rejected == 0 {
            f.sample(&[("device", id)], d.received);
        }
    }
    let mut f = page.family(
        "vitalgate_readings_invalid_total",
        Kind::Counter,
        "Readings outside the vital's possible range: stored flagged, never used clinically.",
    );
    for (id, d) in &s.devices {
        if d.received > 0 || d.rejected == 0 {
            f.sample(&[("device", id)], d.invalid);
        }
    }
    let mut f = page.family(
        "vitalgate_readings_rejected_total",
        Kind::Counter,
        "Frames, messages and readings rejected before storage, by device and reason (device \"(unknown)\": no trusted device id).",
    );
    for (id, d) in &s.devices {
        for (reason, n) in &d.rejected_by {
            f.sample(&[("device", id), ("reason", reason.name())], *n);
        }
    }
    let mut f = page.family(
        "vitalgate_status_frames_total",
        Kind::Counter,
        "Frames without a value (sensor off, searching) from each device.",
    );
    for (id, d) in &s.devices {
        if d.statuses > 0 {
            f.sample(&[("device", id)], d.statuses);
        }
    }
    let mut f = page.family(
        "vitalgate_device_last_seen_timestamp_seconds",
        Kind::Gauge,
        "When the gateway last heard from each device (Unix time).",
    );
    for (id, d) in &s.devices {
        if let Some(t) = d.last_seen {
            f.sample(&[("device", id)], t.millis() as f64 / 1000.0);
        }
    }
    let mut f = page.family(
        "vitalgate_source_up",
        Kind::Gauge,
        "Whether each source link (serial port, MQTT broker or server, Bluetooth adapter) is up.",
    );
    for (link, v) in &s.links {
        f.sample(&[("link", link)], v.up);
    }
    let mut f = page.family(
        "vitalgate_source_connects_total",
        Kind::Counter,
        "Times each source link came up.",
    );
    for (link, v) in &s.links {
        f.sample(&[("link", link)], v.connects);
    }
    let mut f = page.family(
        "vitalgate_source_reconnects_total",
        Kind::Counter,
        "Times each source link came up again after going down.",
    );
    for (link, v) in &s.links {
        f.sample(&[("link", link)], v.reconnects);
    }
    let mut f = page.family(
        "vitalgate_source_disconnects_total",
        Kind::Counter,
        "Times each source link went down.",
    );
    for (link, v) in &s.links {
        f.sample(&[("link", link)], v.disconnects);
    }
}

fn store(page: &mut Exposition, health: &Health) {
    let s = health.observed.store.borrow().clone();
    let mut f = page.family(
        "vitalgate_readings_stored_total",
        Kind::Counter,
        "Readings committed to the ledger, by device.",
    );
    for (id, n) in &s.devices {
        f.sample(&[("device", id)], *n);
    }
    page.family(
        "vitalgate_readings_duplicate_total",
        Kind::Counter,
        "Readings dropped because they were stored before (a device or broker sending again).",
    )
    .value(s.duplicates);
    page.family(
        "vitalgate_store_commits_total",
        Kind::Counter,
        "Group commits (each one fsync).",
    )
    .value(s.commits);
    page.family(
        "vitalgate_store_failures_total",
        Kind::Counter,
        "Group commits storage refused (disk full, I/O error).",
    )
    .value(s.failures);
    page.family(
        "vitalgate_store_writable",
        Kind::Gauge,
        "1 while storage takes readings, 0 while it refuses them.",
    )
    .value(s.failing.is_none());
    page.family(
        "vitalgate_blocks_sealed_total",
        Kind::Counter,
        "Blocks sealed (signed and logged) since the start.",
    )
    .value(s.sealed);
    page.family(
        "vitalgate_chain_height",
        Kind::Gauge,
        "Blocks in the ledger.",
    )
    .value(s.blocks);
    page.family(
        "vitalgate_store_bytes",
        Kind::Gauge,
        "Bytes the ledger occupies on disk.",
    )
    .value(s.bytes);
    page.family(
        "vitalgate_alert_records_total",
        Kind::Counter,
        "Alert messages and delivery receipts recorded in the ledger (audit trail).",
    )
    .value(s.alert_records);
    if let Ok(free) = health.disk_available() {
        page.family(
            "vitalgate_disk_free_bytes",
            Kind::Gauge,
            "Bytes the service may still write on the ledger's file system.",
        )
        .value(free);
    }
    page.family(
        "vitalgate_disk_floor_bytes",
        Kind::Gauge,
        "Free bytes below which the gateway reports itself not ready (chain.disk_floor_mb).",
    )
    .value(health.settings.disk_floor);
}

fn detection(page: &mut Exposition, health: &Health) {
    let s = health.observed.detect.borrow().clone();
    page.family(
        "vitalgate_detect_readings_total",
        Kind::Counter,
        "Readings judged by detection.",
    )
    .value(s.readings);
    page.family(
        "vitalgate_detect_conditions_total",
        Kind::Counter,
        "Conditions reported by detection (raised, changed or cleared).",
    )
    .value(s.conditions);
    page.family(
        "vitalgate_patients_watched",
        Kind::Gauge,
        "Patients detection keeps state for.",
    )
    .value(s.patients);
}

fn category(c: Category) -> &'static str {
    match c {
        Category::Clinical => "clinical",
        Category::Technical => "technical",
    }
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
    }
}

fn alerts(page: &mut Exposition, health: &Health, now_ms: i64) {
    let s = health.observed.alerts.borrow().clone();
    let mut open = std::collections::BTreeMap::<(&str, &str), u64>::new();
    for a in &s.open {
        *open
            .entry((category(a.category), severity(a.severity)))
            .or_default() += 1;
    }
    let mut f = page.family(
        "vitalgate_alerts_open",
        Kind::Gauge,
        "Open alerts, by category and highest severity reached.",
    );
    for ((c, sev), n) in &open {
        f.sample(&[("category", c), ("severity", sev)], *n);
    }
    let mut f = page.family(
        "vitalgate_alert_events_total",
        Kind::Counter,
        "Alert lifecycle events (raised, escalated, acknowledged, resolved, ...).",
    );
    for (event, n) in &s.events {
        f.sample(&[("event", event)], *n);
    }
    page.family(
        "vitalgate_alert_outbox_depth",
        Kind::Gauge,
        "Alert messages waiting in the outbox for a sink.",
    )
    .value(s.outbox);
    page.family(
        "vitalgate_alert_outbox_oldest_age_seconds",
        Kind::Gauge,
        "Age of the oldest message waiting in the alert outbox (0 when empty).",
    )
    .value(
        s.oldest_waiting_since
            .map_or(0.0, |t| (now_ms - t.millis()).max(0) as f64 / 1000.0),
    );
    page.family(
        "vitalgate_alert_outbox_unsaved",
        Kind::Gauge,
        "1 while the alert outbox cannot be written to disk (waiting alerts live in memory only).",
    )
    .value(s.unsaved);
    let mut f = page.family(
        "vitalgate_alert_deliveries_total",
        Kind::Counter,
        "Alert messages delivered, by sink.",
    );
    for sink in &s.sinks {
        f.sample(&[("sink", &sink.name)], sink.delivered);
    }
    let mut f = page.family(
        "vitalgate_alert_sink_failures",
        Kind::Gauge,
        "Failed delivery attempts in a row, by sink (0 when the last one worked).",
    );
    for sink in &s.sinks {
        f.sample(&[("sink", &sink.name)], u64::from(sink.failures));
    }
    page.family(
        "vitalgate_acks_total",
        Kind::Counter,
        "Acknowledgements taken.",
    )
    .value(s.acks);
    let mut f = page.family(
        "vitalgate_acks_refused_total",
        Kind::Counter,
        "Acknowledgements refused, by reason.",
    );
    for (reason, n) in &s.acks_refused {
        f.sample(&[("reason", reason)], *n);
    }
}

fn anchors(page: &mut Exposition, health: &Health, now_ms: i64) {
    let Some(anchors) = &health.observed.anchors else {
        return;
    };
    let a = anchors.borrow().clone();
    let height = health.observed.store.borrow().blocks;
    page.family(
        "vitalgate_anchor_confirmed_size",
        Kind::Gauge,
        "Tree size of the newest anchor confirmed on the consultation chain (0: none yet).",
    )
    .value(a.anchored_size);
    page.family(
        "vitalgate_anchor_lag_blocks",
        Kind::Gauge,
        "Blocks sealed since the newest confirmed anchor.",
    )
    .value(height.saturating_sub(a.anchored_size));
    if let Some(at) = a.anchored_at {
        page.family(
            "vitalgate_anchor_lag_seconds",
            Kind::Gauge,
            "Time since the newest anchor was confirmed (absent before the first).",
        )
        .value((now_ms - at).max(0) as f64 / 1000.0);
    }
    let mut f = page.family(
        "vitalgate_anchor_events_total",
        Kind::Counter,
        "Anchor transactions by outcome.",
    );
    for (event, n) in [
        ("sent", a.sent),
        ("replaced", a.replaced),
        ("confirmed", a.confirmed),
        ("lost", a.lost),
        ("reorganised", a.reorganised),
        ("superseded", a.superseded),
    ] {
        f.sample(&[("event", event)], n);
    }
    page.family(
        "vitalgate_anchor_failures_total",
        Kind::Counter,
        "Failed attempts to reach the consultation chain.",
    )
    .value(a.failures);
}

fn clock(page: &mut Exposition) {
    page.family(
        "vitalgate_clock_synchronised",
        Kind::Gauge,
        "The system clock: 1 synchronised (NTP), 0 not (readings are flagged clock_unsynced), -1 cannot tell.",
    )
    .value(crate::clock::sync::current().gauge());
    page.family(
        "vitalgate_clock_ahead_seconds",
        Kind::Gauge,
        "How far the gateway's time runs ahead of the system clock while it absorbs a backward step.",
    )
    .value(crate::clock::ahead_ms() as f64 / 1000.0);
    page.family(
        "vitalgate_clock_backward_steps_total",
        Kind::Counter,
        "Times the system clock went back by more than a second.",
    )
    .value(crate::clock::backward_steps());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HealthSettings, Observed};
    use tokio::sync::watch;

    /// Every family the page can show, with anchoring on.
    fn page() -> String {
        let observed = Observed {
            ingest: watch::channel(Default::default()).1,
            store: watch::channel(Default::default()).1,
            detect: watch::channel(Default::default()).1,
            alerts: watch::channel(Default::default()).1,
            anchors: Some(
                watch::channel(crate::anchor::AnchorSnapshot {
                    anchored_at: Some(0),
                    ..Default::default()
                })
                .1,
            ),
        };
        let settings = HealthSettings {
            ledger: std::env::temp_dir(),
            disk_floor: 0,
            expected_links: 0,
            devices: 0,
        };
        render(&Health::new(observed, settings))
    }

    #[test]
    fn every_family_on_the_page_is_documented_in_operations_md() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/OPERATIONS.md"),
        )
        .unwrap();
        let page = page();
        let families: Vec<&str> = page
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(families.len() > 30, "{families:?}");
        for family in families {
            assert!(
                doc.contains(&format!("| `{family}` |")),
                "{family} is not in docs/OPERATIONS.md's metrics table"
            );
        }
    }
}
