//! Whether the system clock is synchronised (NTP), asked the way the
//! system itself knows it.
//!
//! 1. The kernel: `adjtimex(2)` with no change requested reports
//!    `STA_UNSYNC` until a time daemon (systemd-timesyncd, chrony, ntpd)
//!    has disciplined the clock. This is what `timedatectl` shows as
//!    "System clock synchronized". The service's sandbox (`ProtectClock=`)
//!    denies the call, though, so:
//! 2. systemd-timesyncd, Debian's and Raspberry Pi OS's default, creates
//!    `/run/systemd/timesync/synchronized` once it has synchronised the
//!    clock; its folder without the file means "running, not yet".
//! 3. Otherwise the state is unknown, and readings are not flagged for it
//!    (the gateway cannot tell; the metric says so).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

/// What is known about the system clock's synchronisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Synchronised by a time daemon.
    Synchronised,
    /// Known not to be synchronised (e.g. just after a power cut).
    Unsynchronised,
    /// The gateway cannot tell.
    Unknown,
}

impl SyncState {
    /// The state as a gauge: 1 synchronised, 0 not, -1 unknown.
    pub fn gauge(self) -> i64 {
        match self {
            SyncState::Synchronised => 1,
            SyncState::Unsynchronised => 0,
            SyncState::Unknown => -1,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            SyncState::Unknown => 0,
            SyncState::Synchronised => 1,
            SyncState::Unsynchronised => 2,
        }
    }

    fn from_u8(v: u8) -> SyncState {
        match v {
            1 => SyncState::Synchronised,
            2 => SyncState::Unsynchronised,
            _ => SyncState::Unknown,
        }
    }
}

/// The last state [`ClockSync::probe`] found, for [`current`].
static CURRENT: AtomicU8 = AtomicU8::new(0);

/// The state last found by a probe (unknown before the first).
pub fn current() -> SyncState {
    SyncState::from_u8(CURRENT.load(Ordering::Relaxed))
}

/// Where to look.
#[derive(Debug, Clone)]
pub struct ClockSync {
    /// systemd-timesyncd's runtime folder.
    timesync: PathBuf,
    /// Whether to ask the kernel first.
    kernel: bool,
}

impl Default for ClockSync {
    fn default() -> Self {
        ClockSync {
            timesync: PathBuf::from("/run/systemd/timesync"),
            kernel: true,
        }
    }
}

impl ClockSync {
    /// Look for timesyncd's files under `folder` only (tests).
    pub fn timesync_only(folder: &Path) -> ClockSync {
        ClockSync {
            timesync: folder.to_path_buf(),
            kernel: false,
        }
    }

    /// Find the state now, and remember it for [`current`]; logs when it
    /// changes.
    pub fn probe(&self) -> SyncState {
        let state = self.state();
        let before = SyncState::from_u8(CURRENT.swap(state.to_u8(), Ordering::Relaxed));
        if before != state {
            match state {
                SyncState::Synchronised => tracing::info!("system clock synchronised"),
                SyncState::Unsynchronised => tracing::warn!(
                    "system clock not synchronised (no time sync since boot?): readings are flagged clock_unsynced until it is"
                ),
                SyncState::Unknown => tracing::info!(
                    "cannot tell whether the system clock is synchronised (no systemd-timesyncd, and the kernel cannot be asked here)"
                ),
            }
        }
        state
    }

    fn state(&self) -> SyncState {
        if self.kernel {
            if let Some(synced) = kernel_synchronised() {
                return if synced {
                    SyncState::Synchronised
                } else {
                    SyncState::Unsynchronised
                };
            }
        }
        if self.timesync.join("synchronized").exists() {
            SyncState::Synchronised
        } else if self.timesync.is_dir() {
            SyncState::Unsynchronised
        } else {
            SyncState::Unknown
        }
    }
}

/// How often the gateway looks again.
pub const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Probe every [`PROBE_EVERY`] until `cancel` fires (the first at once,
/// so the first readings are judged).
pub async fn watch(sync: ClockSync, cancel: tokio_util::sync::CancellationToken) {
    loop {
        sync.probe();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}

/// The kernel's view, or None when it cannot be asked (a seccomp filter,
/// another OS).
#[cfg(target_os = "linux")]
fn kernel_synchronised() -> Option<bool> {
    // SAFETY: `timex` is plain data, zeroed is a valid value, and with
    // `modes` 0 adjtimex only reads into it.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: a valid, exclusively borrowed `timex`.
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        return None;
    }
    Some(t.status & libc::STA_UNSYNC == 0)
}

#[cfg(not(target_os = "linux"))]
fn kernel_synchronised() -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timesyncd_files_tell_synchronised_not_yet_and_absent() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("timesync");
        let sync = ClockSync::timesync_only(&folder);
        assert_eq!(sync.state(), SyncState::Unknown, "no timesyncd");
        std::fs::create_dir(&folder).unwrap();
        assert_eq!(sync.state(), SyncState::Unsynchronised, "running, not yet");
        std::fs::write(folder.join("synchronized"), b"").unwrap();
        assert_eq!(sync.state(), SyncState::Synchronised);
    }

    #[test]
    fn the_kernel_answers_outside_a_sandbox() {
        // This machine's state is whatever it is; the call must work.
        assert!(kernel_synchronised().is_some());
    }
}
