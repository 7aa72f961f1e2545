//! Shared pieces of the integration tests.
#![allow(dead_code)]

pub mod anvil;
pub mod mosquitto;
pub mod publisher;
pub mod python;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use vitalgate::config::{AlertsConfig, ChainConfig, Config, Device, IngestConfig, MqttConfig};
use vitalgate::store::{ReadingStore, StoreError};
use vitalgate_chain::SealPolicy;
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};
use vitalgate_devices::Reading;
use vitalgate_devices::profile::Profile;

/// For benches: log the gateway's lines at `VITALGATE_LOG` (else
/// `default_level`) to stderr, and a runtime of two workers, as on a Pi.
pub fn bench_runtime(default_level: &str) -> tokio::runtime::Runtime {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VITALGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Write a new secret file (mode 0600), as an operator would.
pub fn write_secret(path: &Path, secret: &[u8]) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, secret).unwrap();
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Load a bundled profile by file name.
pub fn profile(name: &str) -> Arc<Profile> {
    let path = root().join("device-profiles").join(name);
    Arc::new(Profile::load(&path).unwrap_or_else(|e| panic!("{e}")))
}

/// A device bound to a patient.
pub fn device(id: &str, patient: &str, profile_name: &str, port: Option<&Path>) -> Device {
    Device {
        id: id.into(),
        patient: patient.into(),
        profile: profile(profile_name),
        profile_path: root().join("device-profiles").join(profile_name),
        port: port.map(Path::to_owned),
        ble: None,
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A configuration for the given devices, subscribing to a broker on
/// `mqtt_port` (set `mqtt_server` to serve devices directly instead).
pub fn config(devices: Vec<Device>, mqtt_port: u16, client_id: &str) -> Config {
    Config {
        file: PathBuf::from("(test)"),
        mqtt: Some(MqttConfig {
            host: "127.0.0.1".into(),
            port: mqtt_port,
            client_id: client_id.into(),
            username: None,
            password_file: None,
            tls: None,
            keep_alive: Duration::from_secs(10),
            inflight: 100,
        }),
        mqtt_server: None,
        ingest: IngestConfig::default(),
        chain: unused_chain(),
        devices,
        detect: Default::default(),
        alerts: AlertsConfig {
            gateway_id: Some("test-gateway".into()),
            ..AlertsConfig::default()
        },
        http: None,
        anchor: None,
    }
}

/// A `[chain]` no test opens (for tests whose store is not the ledger).
pub fn unused_chain() -> ChainConfig {
    ChainConfig {
        directory: PathBuf::from("/nonexistent/ledger"),
        identity: PathBuf::from("/nonexistent/identity.key"),
        recipients: vec![RecipientKey::generate().unwrap().public()],
        seal: SealPolicy::default(),
        disk_floor: 0,
    }
}

/// A `[chain]` for a ledger in `dir/ledger`, creating `dir/identity.key`
/// and `dir/recipient.key` (the one recipient).
pub fn ledger_chain(dir: &Path) -> ChainConfig {
    std::fs::create_dir_all(dir).unwrap();
    let identity = dir.join("identity.key");
    IdentityKey::generate()
        .unwrap()
        .save_new(&identity)
        .unwrap();
    let recipient = RecipientKey::generate().unwrap();
    recipient.save_new(dir.join("recipient.key")).unwrap();
    ChainConfig {
        directory: dir.join("ledger"),
        identity,
        recipients: vec![recipient.public()],
        seal: SealPolicy::default(),
        disk_floor: 0,
    }
}

/// Wait until `pred` holds for the watched value, or panic after `secs`.
pub async fn wait_for<T: Clone + std::fmt::Debug>(
    rx: &mut watch::Receiver<T>,
    secs: u64,
    what: &str,
    mut pred: impl FnMut(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        {
            let v = rx.borrow_and_update();
            if pred(&v) {
                return v.clone();
            }
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            let v = rx.borrow().clone();
            panic!("timed out after {secs} s waiting for {what}; last value: {v:#?}");
        }
    }
}

/// A store that refuses everything, as a full disk would.
pub struct FullDisk;

impl ReadingStore for FullDisk {
    fn append(&mut self, _: &[&[Reading]]) -> Result<(), StoreError> {
        Err(StoreError::Full("test: no space left".into()))
    }
}

/// `vitalgate keygen KIND PATH` with the real binary; the public key (or
/// account address) it prints.
pub fn keygen(kind: &str, path: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vitalgate"))
        .args(["keygen", kind])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keygen {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Whether the test can make a private mount namespace for a small real
/// disk (`unshare --user --map-root-user --mount`, util-linux, no
/// privileges). In CI it must; elsewhere the test says it skipped.
pub fn private_mounts() -> bool {
    let works = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            std::env::var_os("CI").is_none(),
            "unshare (util-linux) with user namespaces is needed"
        );
        eprintln!("SKIPPED: cannot create a private mount namespace here");
    }
    works
}
