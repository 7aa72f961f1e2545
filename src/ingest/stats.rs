//! Ingest counters and the latest values, owned by the ingest task alone
//! and published as snapshots (no shared mutable state).

use super::LinkEvent;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vitalgate_devices::{Quality, Reading, Reject, Timestamp, Vital};

/// Counters and latest values, as of one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSnapshot {
    /// Readings decoded from devices (valid or not).
    pub received: u64,
    /// Readings outside the vital's possible range: stored flagged, never
    /// used clinically.
    pub invalid: u64,
    /// Frames without a value (sensor off, searching, ...).
    pub statuses: u64,
    /// Rejected frames, messages and readings, per reason (not stored).
    pub rejected: BTreeMap<Reject, u64>,
    /// Per device.
    pub devices: BTreeMap<Arc<str>, DeviceView>,
    /// The sources' connections (serial ports, MQTT broker and server,
    /// Bluetooth adapter), by name.
    pub links: BTreeMap<Arc<str>, LinkView>,
}

/// What the gateway knows of one source connection.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkView {
    /// Up now.
    pub up: bool,
    /// Times it came up.
    pub connects: u64,
    /// Times it came up again after going down: reconnects.
    pub reconnects: u64,
    /// Times it went down.
    pub disconnects: u64,
    /// Why it last went down.
    pub last_error: Option<String>,
}

impl IngestSnapshot {
    /// All rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// What the gateway knows of one device.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceView {
    /// Patient the device is bound to (empty for unknown devices).
    pub patient: Arc<str>,
    /// Readings received.
    pub received: u64,
    /// Readings flagged impossible.
    pub invalid: u64,
    /// Rejections attributed to this device.
    pub rejected: u64,
    /// The same, per reason.
    pub rejected_by: BTreeMap<Reject, u64>,
    /// Status frames.
    pub statuses: u64,
    /// When the gateway last heard anything from it.
    pub last_seen: Option<Timestamp>,
    /// The last status flags reported, cleared by the next value.
    pub status: Quality,
    /// Latest value per vital.
    pub latest: BTreeMap<Vital, Latest>,
}

/// The latest value of one vital.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latest {
    /// Value in the vital's unit.
    pub value: f64,
    /// Its flags.
    pub quality: Quality,
    /// Measurement time.
    pub time: Timestamp,
}

/// The name under which rejections without a trusted device id count.
pub const UNKNOWN_DEVICE: &str = "(unknown)";

/// The counters, mutated only by the ingest task.
#[derive(Default)]
pub struct IngestStats {
    snapshot: IngestSnapshot,
}

impl IngestStats {
    fn device(&mut self, id: &Arc<str>) -> &mut DeviceView {
        self.snapshot.devices.entry(Arc::clone(id)).or_default()
    }

    /// Count a reading that passed the replay check.
    pub fn reading(&mut self, r: &Reading) {
        self.snapshot.received += 1;
        let invalid = r.quality.contains(Quality::IMPOSSIBLE);
        if invalid {
            self.snapshot.invalid += 1;
        }
        let d = self.device(&r.device);
        if d.patient.is_empty() {
            d.patient = Arc::clone(&r.patient);
        }
        d.received += 1;
        d.last_seen = Some(r.gateway_time);
        d.status = Quality::NONE;
        if invalid {
            d.invalid += 1;
        } else {
            d.latest.insert(
                r.vital,
                Latest {
                    value: r.value,
                    quality: r.quality,
                    time: r.time(),
                },
            );
        }
    }

    /// Count a status frame.
    pub fn status(&mut self, device: &Arc<str>, patient: &Arc<str>, q: Quality, at: Timestamp) {
        self.snapshot.statuses += 1;
        let d = self.device(device);
        if d.patient.is_empty() {
            d.patient = Arc::clone(patient);
        }
        d.statuses += 1;
        d.status = q;
        d.last_seen = Some(at);
    }

    /// Count a rejection.
    pub fn rejected(&mut self, device: Option<&Arc<str>>, reason: Reject) {
        *self.snapshot.rejected.entry(reason).or_default() += 1;
        let d = match device {
            Some(id) => self.device(id),
            // Unknown topics can arrive in floods: no allocation per count.
            None => {
                if !self.snapshot.devices.contains_key(UNKNOWN_DEVICE) {
                    self.snapshot
                        .devices
                        .insert(Arc::from(UNKNOWN_DEVICE), DeviceView::default());
                }
                match self.snapshot.devices.get_mut(UNKNOWN_DEVICE) {
                    Some(d) => d,
                    None => return,
                }
            }
        };
        d.rejected += 1;
        *d.rejected_by.entry(reason).or_default() += 1;
    }

    /// Note a source connection coming up or going down.
    pub fn link(&mut self, event: &LinkEvent) {
        let view = match self.snapshot.links.get_mut(&event.link) {
            Some(v) => v,
            None => self
                .snapshot
                .links
                .entry(Arc::clone(&event.link))
                .or_default(),
        };
        match (view.up, event.up) {
            (false, true) => {
                view.up = true;
                if view.connects > 0 {
                    view.reconnects += 1;
                }
                view.connects += 1;
            }
            (true, false) => {
                view.up = false;
                view.disconnects += 1;
                view.last_error.clone_from(&event.detail);
            }
            // Still down: a new reason to show.
            (false, false) => view.last_error.clone_from(&event.detail),
            (true, true) => {}
        }
    }

    /// A copy of the current counters.
    pub fn snapshot(&self) -> IngestSnapshot {
        self.snapshot.clone()
    }
}

type RejectKey = (Option<Arc<str>>, Reject);

/// Logs rejections without flooding the journal: the first of each
/// (device, reason) is logged, then at most one line per interval with the
/// number suppressed meanwhile. A device streaming garbage at full line
/// speed costs a log line every ten seconds, not thousands a second.
pub struct RejectLog {
    interval: Duration,
    /// (device, reason) → (last logged, suppressed since).
    last: HashMap<RejectKey, (Instant, u64)>,
}

impl RejectLog {
    /// Log at most once per `interval` per (device, reason).
    pub fn new(interval: Duration) -> Self {
        RejectLog {
            interval,
            last: HashMap::new(),
        }
    }

    /// Log `message` at warn for this (device, reason) unless a line was
    /// logged within the interval; the line carries how many were
    /// suppressed since the last one. The message is only built when
    /// logged.
    pub fn warn(
        &mut self,
        device: Option<&Arc<str>>,
        reason: Reject,
        now: Instant,
        message: impl FnOnce() -> String,
    ) {
        if let Some(suppressed) = self.should_log(device, reason, now) {
            tracing::warn!(
                device = device.map_or(UNKNOWN_DEVICE, |d| &**d),
                reason = %reason,
                suppressed,
                "{}",
                message()
            );
        }
    }

    /// Record a rejection; returns how many were suppressed since the last
    /// line when this one should be logged, `None` when it should not.
    pub fn should_log(
        &mut self,
        device: Option<&Arc<str>>,
        reason: Reject,
        now: Instant,
    ) -> Option<u64> {
        let key = (device.cloned(), reason);
        match self.last.get_mut(&key) {
            None => {
                self.last.insert(key, (now, 0));
                Some(0)
            }
            Some((at, suppressed)) if now.duration_since(*at) >= self.interval => {
                let n = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(n)
            }
            Some((_, suppressed)) => {
                *suppressed += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_logged_first_then_at_most_once_per_interval() {
        let mut log = RejectLog::new(Duration::from_secs(10));
        let dev: Arc<str> = "ox".into();
        let t0 = Instant::now();
        assert_eq!(log.should_log(Some(&dev), Reject::Garbage, t0), Some(0));
        assert_eq!(log.should_log(Some(&dev), Reject::Garbage, t0), None);
        assert_eq!(log.should_log(Some(&dev), Reject::Garbage, t0), None);
        assert_eq!(log.should_log(Some(&dev), Reject::BadChecksum, t0), Some(0));
        assert_eq!(log.should_log(None, Reject::Garbage, t0), Some(0));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(log.should_log(Some(&dev), Reject::Garbage, later), Some(2));
    }

    #[test]
    fn invalid_readings_count_but_do_not_become_the_latest_value() {
        let mut s = IngestStats::default();
        let mut r = Reading {
            device: "ox".into(),
            patient: "p".into(),
            vital: Vital::Spo2,
            value: 97.0,
            device_time: None,
            gateway_time: Timestamp(5),
            quality: Quality::NONE,
        };
        s.reading(&r);
        r.value = 127.0;
        r.quality = Quality::IMPOSSIBLE;
        s.reading(&r);
        let snap = s.snapshot();
        assert_eq!((snap.received, snap.invalid), (2, 1));
        assert_eq!(snap.devices["ox"].latest[&Vital::Spo2].value, 97.0);
    }
}
