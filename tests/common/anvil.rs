//! A local EVM node of the test's own: anvil, from the `@foundry-rs/anvil`
//! npm packages that `.ci/run` installs under `contracts/node_modules`
//! (`npm ci --prefix contracts`). Outside CI a test is skipped, with a
//! message, when it is not installed. `VITALGATE_ANVIL` names another
//! binary.

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vitalgate::anchor::account::AccountKey;

fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VITALGATE_ANVIL") {
        return Some(PathBuf::from(path));
    }
    let platform = match std::env::consts::ARCH {
        "aarch64" => "anvil-linux-arm64",
        _ => "anvil-linux-amd64",
    };
    let bundled = super::root()
        .join("contracts/node_modules/@foundry-rs")
        .join(platform)
        .join("bin/anvil");
    if bundled.exists() {
        return Some(bundled);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("anvil"))
            .find(|p| p.exists())
    })
}

/// A running node, stopped when dropped.
pub struct Anvil {
    child: Child,
    /// Its JSON-RPC port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Anvil {
    /// Its JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A provider with no account (reads only).
    pub fn reader(&self) -> DynProvider {
        ProviderBuilder::new()
            .connect_http(self.url().parse().unwrap())
            .erased()
    }

    /// A provider sending from `account`. Its nonce is the node's pending
    /// count at every send: alloy's default (cached) nonce manager takes a
    /// nonce even for a call that fails gas estimation — a refused anchor —
    /// and every later transaction then waits behind the gap forever.
    pub fn wallet(&self, account: &AccountKey) -> DynProvider {
        ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(account.signer().clone()))
            .connect_http(self.url().parse().unwrap())
            .erased()
    }

    /// A new account the test generates, given 100 ether to pay for gas.
    pub async fn funded_account(&self) -> AccountKey {
        let account = AccountKey::generate();
        self.fund(account.address()).await;
        account
    }

    /// Give `address` 100 ether (anvil_setBalance).
    pub async fn fund(&self, address: Address) {
        let wei = U256::from(100u64) * U256::from(10u64).pow(U256::from(18u64));
        let _: serde_json::Value = self
            .reader()
            .raw_request("anvil_setBalance".into(), (address, wei))
            .await
            .unwrap();
    }

    /// Start another node on the same port (after `stop`), to bring the
    /// "consultation chain" back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start one (None, after a message, when anvil is missing outside CI).
/// Blocks are mined as transactions arrive.
pub fn start() -> Option<Anvil> {
    start_on(super::free_port())
}

/// Start one on `port`.
pub fn start_on(port: u16) -> Option<Anvil> {
    let Some(bin) = binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "anvil is not installed; .ci/run installs it (npm ci --prefix contracts)"
        );
        eprintln!("SKIPPED: anvil is not installed (npm ci --prefix contracts)");
        return None;
    };
    let node = Anvil {
        child: Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start anvil"),
        port,
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(node);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("anvil did not start listening on {port}");
}

impl Anvil {
    /// Mine one block now.
    pub async fn mine(&self) {
        let _: serde_json::Value = self
            .reader()
            .raw_request("evm_mine".into(), ())
            .await
            .unwrap();
    }

    /// Mine a block per transaction as it arrives (the default), or only
    /// on [`Anvil::mine`] (transactions wait in the pool).
    pub async fn automine(&self, on: bool) {
        let _: serde_json::Value = self
            .reader()
            .raw_request("evm_setAutomine".into(), (on,))
            .await
            .unwrap();
    }

    /// Take a snapshot of the chain, to reorganise back to.
    pub async fn snapshot(&self) -> serde_json::Value {
        self.reader()
            .raw_request("evm_snapshot".into(), ())
            .await
            .unwrap()
    }

    /// Return the chain to `snapshot` (dropping every block since, as a
    /// reorganisation onto a branch without them would).
    pub async fn revert(&self, snapshot: serde_json::Value) {
        let ok: bool = self
            .reader()
            .raw_request("evm_revert".into(), (snapshot,))
            .await
            .unwrap();
        assert!(ok, "evm_revert");
    }
}
