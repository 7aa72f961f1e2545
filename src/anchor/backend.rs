//! What every consultation-chain backend does with a tree head, so the
//! anchor stage drives an EVM chain and a plain HTTPS service the same way.
//!
//! A backend *submits* a head and then reports the submission's
//! [`Progress`] until it is anchored (with a [`Receipt`] kept beside the
//! head) or lost (sent again). Backends do no scheduling of their own:
//! retries, backoff and coalescing are the stage's.

use serde::{Deserialize, Serialize};
use vitalgate_chain::TreeHead;
use vitalgate_chain::block::HeaderError;
use vitalgate_chain::crypto::keys::IdentityPublic;

/// A signed tree head of this gateway's log, ready to anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The gateway: its Ed25519 identity public key (32 bytes), which also
    /// verifies `signed`.
    #[serde(with = "hex32")]
    pub gateway: [u8; 32],
    /// The log's size (blocks).
    pub size: u64,
    /// The RFC 9162 root of the log at that size.
    #[serde(with = "hex32")]
    pub root: [u8; 32],
    /// When the gateway signed it, ms since the Unix epoch.
    pub time: i64,
    /// The COSE_Sign1 signed tree head (docs/FORMAT.md, "Signed tree
    /// head").
    #[serde(with = "hex_vec")]
    pub signed: Vec<u8>,
}

impl Head {
    /// The head `signed` by the gateway `key`, checked.
    pub fn open(signed: Vec<u8>, key: &IdentityPublic) -> Result<Head, HeaderError> {
        let head = TreeHead::open(&signed, key)?;
        Ok(Head {
            gateway: key.to_bytes(),
            size: head.size,
            root: head.root,
            time: head.time.0,
            signed,
        })
    }
}

/// Proof that a head was anchored, stored beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The anchored size.
    pub size: u64,
    /// The transaction (EVM: its hash, hex) or the service's receipt id.
    pub id: String,
    /// EVM: the block that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_number: Option<u64>,
    /// EVM: that block's hash (a reorganisation changes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_hash: Option<String>,
    /// EVM: gas the transaction used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas_used: Option<u64>,
    /// EVM: what the gas cost, wei per gas (a decimal string in JSON:
    /// wei amounts exceed what a JSON number holds exactly elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "wei::option")]
    pub gas_price: Option<u128>,
    /// Confirmations when it was taken as anchored.
    pub confirmations: u64,
    /// When it was taken as anchored (gateway clock, ms since the epoch).
    pub at: i64,
}

/// Where a submission stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Sent; not in a block yet, or in one with fewer confirmations than
    /// asked for.
    Waiting {
        /// Blocks on top of (and including) its block so far; 0: pending.
        confirmations: u64,
    },
    /// Anchored with enough confirmations.
    Anchored(Receipt),
    /// The chain no longer has it — dropped from the pool, or its block
    /// was reorganised away — and it was not anchored: send again.
    Lost,
    /// The registry already holds this size or a larger one (a newer head
    /// commits to this one): nothing to send.
    Superseded {
        /// The registry's latest size.
        latest: u64,
    },
}

/// A backend failed to talk to the consultation chain.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// Unreachable, timed out, or an error answer: worth retrying later.
    #[error("consultation chain {url}: {message}")]
    Unavailable {
        /// Where (credentials removed).
        url: String,
        /// What happened.
        message: String,
    },
    /// Refused for a reason retrying will not fix until someone acts
    /// (not registered, wrong chain id, no funds).
    #[error("consultation chain {url}: {message}")]
    Refused {
        /// Where (credentials removed).
        url: String,
        /// What happened, and what to do.
        message: String,
    },
}

impl AnchorError {
    /// Whether a retry may succeed without anyone acting.
    pub fn is_transient(&self) -> bool {
        matches!(self, AnchorError::Unavailable { .. })
    }
}

/// Wei amounts as decimal strings in JSON.
pub(crate) mod wei {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer, de::Error};

        pub fn serialize<S: Serializer>(v: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => s.serialize_str(&v.to_string()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| t.parse().map_err(D::Error::custom))
                .transpose()
        }
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&alloy::hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        alloy::hex::decode_to_slice(&text, &mut out).map_err(D::Error::custom)?;
        Ok(out)
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&alloy::hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        alloy::hex::decode(String::deserialize(d)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_chain::crypto::keys::IdentityKey;
    use vitalgate_devices::Timestamp;

    #[test]
    fn a_head_opens_only_under_its_gateways_key_and_round_trips_through_json() {
        let key = IdentityKey::generate().unwrap();
        let signed = TreeHead {
            gateway: key.kid(),
            size: 5,
            root: [9; 32],
            time: Timestamp(1_700_000_000_000),
        }
        .sign(&key);
        let head = Head::open(signed.clone(), &key.public()).unwrap();
        assert_eq!(
            (head.size, head.root, head.time),
            (5, [9; 32], 1_700_000_000_000)
        );
        assert_eq!(head.gateway, key.public().to_bytes());
        let json = serde_json::to_string(&head).unwrap();
        assert!(json.contains(&"09".repeat(32)), "{json}");
        assert_eq!(serde_json::from_str::<Head>(&json).unwrap(), head);
        let other = IdentityKey::generate().unwrap();
        assert!(Head::open(signed, &other.public()).is_err());
    }
}
