//! The gateway's account on the consultation chain: a secp256k1 key, apart
//! from its Ed25519 identity, because an EVM chain only accepts
//! transactions signed that way. The hospital registers the account's
//! address for the gateway's identity in the anchor registry.
//!
//! File format: one line, `0x` and the 32-byte private key in 64 lowercase
//! hex digits (the format of Hyperledger Besu's `--node-private-key-file`
//! and of `cast wallet new`), created and read with the same discipline as
//! the identity key (create-new, mode 0600, refused when group or others
//! may read it).

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use std::fmt;
use std::path::{Path, PathBuf};
use vitalgate_chain::crypto::keys::{self, KeyError};
use zeroize::Zeroizing;

/// The account key could not be created or used.
#[derive(Debug, thiserror::Error)]
pub enum AccountKeyError {
    /// The file could not be created or read (missing, exists, permissions).
    #[error(transparent)]
    File(#[from] KeyError),
    /// The file is not one `0x` + 64 hex digits line.
    #[error(
        "{}: not a consultation-chain account key (expected one line: 0x and 64 hex digits)",
        .path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// 64 hex digits, but not a secp256k1 private key (0, or not below the
    /// group order).
    #[error(
        "{}: not a valid secp256k1 private key (zero, or not below the curve order)",
        .path.display()
    )]
    OutOfRange {
        /// The file.
        path: PathBuf,
    },
}

/// The gateway's consultation-chain account (a secp256k1 signer).
#[derive(Clone)]
pub struct AccountKey {
    signer: PrivateKeySigner,
}

impl AccountKey {
    /// A new random account.
    pub fn generate() -> AccountKey {
        AccountKey {
            signer: PrivateKeySigner::random(),
        }
    }

    /// The account with this private key; `None` when the bytes are not a
    /// secp256k1 private key.
    pub fn from_bytes(secret: &[u8; 32]) -> Option<AccountKey> {
        PrivateKeySigner::from_bytes(&(*secret).into())
            .ok()
            .map(|signer| AccountKey { signer })
    }

    /// Its address, where the hospital's registry knows it.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The signer alloy signs transactions with.
    pub fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }

    /// The 32-byte private key, wiped when dropped: for the key backup,
    /// which encrypts it at once (`vitalgate backup`). Never print or log it.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signer.to_bytes().0)
    }

    /// Write the key to a new file `path` (mode 0600, never replacing a
    /// file), synced to disk.
    pub fn save_new(&self, path: &Path) -> Result<(), AccountKeyError> {
        let secret = self.secret_bytes();
        let mut line = Zeroizing::new(String::with_capacity(67));
        line.push_str("0x");
        line.push_str(&alloy::hex::encode(secret.as_slice()));
        line.push('\n');
        keys::write_new_secret_file(path, line.as_bytes())?;
        Ok(())
    }

    /// Read a key written by [`AccountKey::save_new`] (or any `0x` + 64 hex
    /// line, trailing newline optional).
    pub fn load(path: &Path) -> Result<AccountKey, AccountKeyError> {
        let data = keys::read_secret_file(path)?;
        let malformed = || AccountKeyError::Malformed {
            path: path.to_path_buf(),
        };
        let text = std::str::from_utf8(&data).map_err(|_| malformed())?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let digits = text.strip_prefix("0x").ok_or_else(malformed)?;
        if digits.len() != 64 {
            return Err(malformed());
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        alloy::hex::decode_to_slice(digits, secret.as_mut_slice()).map_err(|_| malformed())?;
        AccountKey::from_bytes(&secret).ok_or_else(|| AccountKeyError::OutOfRange {
            path: path.to_path_buf(),
        })
    }
}

impl fmt::Debug for AccountKey {
    // Never the private key: the address says which account it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("address", &self.address())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_saved_account_key_is_0600_and_loads_back_to_the_same_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("account.key");
        let key = AccountKey::generate();
        key.save_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("0x") && text.len() == 67, "{}", text.len());
        assert_eq!(AccountKey::load(&path).unwrap().address(), key.address());
        // Never overwritten.
        assert!(matches!(
            AccountKey::generate().save_new(&path),
            Err(AccountKeyError::File(KeyError::AlreadyExists { .. }))
        ));
    }

    #[test]
    fn the_address_of_a_known_key_is_the_one_every_ethereum_tool_derives() {
        // Anvil's first development account (public test key, documented
        // by Foundry; never used for anything real).
        let secret: [u8; 32] =
            alloy::hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap()
                .try_into()
                .unwrap();
        let key = AccountKey::from_bytes(&secret).unwrap();
        assert_eq!(
            key.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        assert!(!format!("{key:?}").contains("ac0974"), "no secret in Debug");
    }

    #[test]
    fn malformed_or_exposed_account_key_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let zero = format!("0x{}\n", "0".repeat(64));
        let order = "0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141\n";
        for (name, text, mode, want) in [
            ("short", "0x1234\n", 0o600, "expected one line"),
            (
                "nohex",
                &format!("{}\n", "a".repeat(64)),
                0o600,
                "expected one line",
            ),
            ("zero", zero.as_str(), 0o600, "not a valid secp256k1"),
            ("order", order, 0o600, "not a valid secp256k1"),
            (
                "open",
                &format!("0x{}\n", "1".repeat(64)),
                0o644,
                "group or others",
            ),
        ] {
            let err = AccountKey::load(&write(name, text, mode))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }
}
