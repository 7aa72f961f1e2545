//! How the running gateway is doing, for the people and programs that
//! watch it: liveness (for the systemd watchdog), readiness (`/readyz`)
//! and metrics (`/metrics`, Prometheus text).
//!
//! Everything is read from the snapshots the stages publish on their
//! `watch` channels; nothing here holds state of its own beyond the
//! settings, so asking is free of side effects and can be done as often
//! as a scraper likes.

pub mod disk;
pub mod exposition;
pub mod metrics;
pub mod watchdog;

use crate::alert::AlertSnapshot;
use crate::anchor::AnchorSnapshot;
use crate::detect::DetectSnapshot;
use crate::ingest::IngestSnapshot;
use crate::store::StoreSnapshot;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use vitalgate_devices::Timestamp;

/// How long the storage stage may go without coming round to its timed
/// work (it does every second) before the gateway counts as hung: long
/// enough for a slow SD card's fsync under load, short enough that
/// systemd's watchdog restarts a stuck daemon within a minute.
pub const STALL_LIMIT: Duration = Duration::from_secs(20);

/// The stages' published snapshots.
#[derive(Clone)]
pub struct Observed {
    /// Ingest counters, latest values and source links.
    pub ingest: watch::Receiver<IngestSnapshot>,
    /// Storage counters.
    pub store: watch::Receiver<StoreSnapshot>,
    /// Detection counters.
    pub detect: watch::Receiver<DetectSnapshot>,
    /// Alerts and their delivery.
    pub alerts: watch::Receiver<AlertSnapshot>,
    /// Anchoring, when configured.
    pub anchors: Option<watch::Receiver<AnchorSnapshot>>,
}

/// What health needs to know besides the snapshots.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// The ledger's folder (its file system's free space is watched).
    pub ledger: PathBuf,
    /// Free bytes below which the gateway is not ready.
    pub disk_floor: u64,
    /// How many source links the configuration implies (serial ports,
    /// MQTT broker, MQTT server, Bluetooth adapter).
    pub expected_links: usize,
    /// Devices configured.
    pub devices: usize,
}

/// The gateway's health, read from its stages.
#[derive(Clone)]
pub struct Health {
    observed: Observed,
    settings: HealthSettings,
    started: Instant,
    started_wall: Timestamp,
}

/// One readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `pipeline`, `storage`, `disk`, `sources`.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (never health data).
    pub detail: String,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// True when every check passed.
    pub ready: bool,
    /// The checks, in a fixed order.
    pub checks: Vec<Check>,
}

impl Readiness {
    /// The failed checks' details, `; `-separated (for logs and the
    /// service status).
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Health {
    /// Health over `observed`.
    pub fn new(observed: Observed, settings: HealthSettings) -> Health {
        Health {
            observed,
            settings,
            started: Instant::now(),
            started_wall: crate::clock::now(),
        }
    }

    /// The snapshots.
    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    /// Whether the pipeline runs: every stage is still there and storage
    /// is not stuck in a write. What the systemd watchdog is petted on.
    pub fn alive(&self) -> Result<(), String> {
        let o = &self.observed;
        for (stage, gone) in [
            ("ingest", o.ingest.has_changed().is_err()),
            ("storage", o.store.has_changed().is_err()),
            ("detection", o.detect.has_changed().is_err()),
            ("alerts", o.alerts.has_changed().is_err()),
        ] {
            if gone {
                return Err(format!("the {stage} stage has stopped"));
            }
        }
        let since = o.store.borrow().alive_at.unwrap_or(self.started);
        let quiet = since.elapsed();
        if quiet > STALL_LIMIT {
            return Err(format!(
                "storage has not come round for {} s (stuck in a write?)",
                quiet.as_secs()
            ));
        }
        Ok(())
    }

    /// Free bytes on the ledger's file system.
    pub fn disk_available(&self) -> std::io::Result<u64> {
        disk::available(disk::existing_ancestor(&self.settings.ledger))
    }

    /// Every readiness check, now.
    pub fn readiness(&self) -> Readiness {
        let mut checks = Vec::with_capacity(4);
        checks.push(match self.alive() {
            Ok(()) => Check {
                name: "pipeline",
                ok: true,
                detail: "running".into(),
            },
            Err(e) => Check {
                name: "pipeline",
                ok: false,
                detail: e,
            },
        });
        let failing = self.observed.store.borrow().failing.clone();
        checks.push(Check {
            name: "storage",
            ok: failing.is_none(),
            detail: failing.unwrap_or_else(|| "writable".into()),
        });
        let floor = self.settings.disk_floor;
        checks.push(match self.disk_available() {
            Ok(free) => Check {
                name: "disk",
                ok: free >= floor,
                detail: format!("{} MiB free, floor {} MiB", free >> 20, floor >> 20),
            },
            Err(e) => Check {
                name: "disk",
                ok: false,
                detail: format!("cannot read the free space: {e}"),
            },
        });
        checks.push(self.sources());
        Readiness {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// Every configured link has reported, and is up.
    fn sources(&self) -> Check {
        let ingest = self.observed.ingest.borrow();
        let down: Vec<String> = ingest
            .links
            .iter()
            .filter(|(_, v)| !v.up)
            .map(|(name, v)| match &v.last_error {
                Some(e) => format!("{name} down ({e})"),
                None => format!("{name} down"),
            })
            .collect();
        let expected = self.settings.expected_links;
        let reported = ingest.links.len();
        if !down.is_empty() {
            Check {
                name: "sources",
                ok: false,
                detail: down.join(", "),
            }
        } else if reported < expected {
            Check {
                name: "sources",
                ok: false,
                detail: format!("{reported} of {expected} links have reported; starting"),
            }
        } else {
            Check {
                name: "sources",
                ok: true,
                detail: format!("{reported} links up"),
            }
        }
    }

    /// The `/metrics` page.
    pub fn metrics(&self) -> String {
        metrics::render(self)
    }
}
