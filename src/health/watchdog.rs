//! The service manager's side: `READY=1` once storage is open and the
//! sources are started, `WATCHDOG=1` while the pipeline runs, a one-line
//! `STATUS=` for `systemctl status`, `STOPPING=1` on the way out
//! (sd_notify(3)). Outside systemd (no `NOTIFY_SOCKET`) every message is
//! a no-op.
//!
//! The watchdog is petted only while [`Health::alive`] holds: a stage
//! that died or storage stuck in a write stops the pets, and systemd
//! restarts the daemon after `WatchdogSec=`. A hung tokio runtime stops
//! them too, since this loop runs on it.

use super::Health;
use sd_notify::NotifyState;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the status line is refreshed when there is no watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Tell the service manager the gateway is ready.
pub fn ready(health: &Health) {
    let status = status_line(health);
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tell the service manager the gateway is stopping (sealing the open
/// block may take a moment).
pub fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: sealing the open block"),
    ]);
}

/// Pet the watchdog (when systemd asked for one) and refresh the status
/// line until `cancel` fires.
pub async fn run(health: Health, cancel: CancellationToken) {
    let mut usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
    // Twice per period, as sd_watchdog_enabled(3) recommends.
    let every = if watchdog {
        Duration::from_micros(usec / 2).max(Duration::from_millis(100))
    } else {
        STATUS_EVERY
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = String::new();
    let mut withheld = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let status = status_line(&health);
        if status != last_status {
            notify(&[NotifyState::Status(&status)]);
            last_status = status;
        }
        if !watchdog {
            continue;
        }
        match health.alive() {
            Ok(()) => {
                if withheld {
                    tracing::info!("the pipeline runs again; petting the watchdog again");
                    withheld = false;
                }
                notify(&[NotifyState::Watchdog]);
            }
            Err(why) => {
                if !withheld {
                    tracing::error!(reason = %why, "not petting the service watchdog: systemd will restart the gateway unless this clears");
                    withheld = true;
                }
            }
        }
    }
}

/// `ready: 4 devices, 3 links up` or `not ready: disk: ...`.
fn status_line(health: &Health) -> String {
    let r = health.readiness();
    if r.ready {
        format!(
            "ready: {} devices, {}",
            health.settings.devices,
            r.checks
                .iter()
                .find(|c| c.name == "sources")
                .map_or(String::new(), |c| c.detail.clone())
        )
    } else {
        format!("not ready: {}", r.failures())
    }
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "cannot notify the service manager");
    }
}
