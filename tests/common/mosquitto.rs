//! A Mosquitto broker of the test's own, on a loopback port. `.ci/run`
//! installs Mosquitto from Debian's packages; outside CI a test is skipped
//! (with a message) when it is not installed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn binary() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A running broker, stopped when dropped.
pub struct Mosquitto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start one (None, after a message, when Mosquitto is missing outside CI).
pub fn start() -> Option<Mosquitto> {
    let Some(bin) = binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "mosquitto is not installed; .ci/run installs it (apt-get install mosquitto)"
        );
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = super::free_port();
    let conf = dir.path().join("mosquitto.conf");
    // The settings the gateway relies on (docs/ARCHITECTURE.md): persistent
    // sessions keep unacknowledged QoS 1 messages for the gateway while it
    // is away, with a queue deep enough not to drop them silently.
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 100\nlog_dest stderr\nuser root\n"
        ),
    )
    .unwrap();
    let broker = Mosquitto {
        child: Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto"),
        port,
        _dir: dir,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(broker);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("mosquitto did not start listening on {port}");
}
