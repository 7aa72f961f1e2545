//! Deterministic resource ids: UUIDv8 (RFC 9562 §5.8) from a SHA-256 of
//! the gateway's key id and where each reading of the observation is stored.
//!
//! A record's place in the ledger never changes (blocks are signed and
//! hash-linked), so the same reading gets the same id in every export,
//! whatever the time window or the recipient key; the gateway key id keeps
//! two gateways' ledgers apart.

use sha2::{Digest, Sha256};
use vitalgate_chain::crypto::keys::KeyId;

/// Domain separation for the hash input.
const DOMAIN: &[u8] = b"vitalgate/fhir/observation/1\0";

/// Where one reading is stored: block height, record index, position in
/// the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// Block height.
    pub block: u64,
    /// Record index within the block.
    pub record: u32,
    /// Position of the reading within the record.
    pub index: u32,
}

/// The UUID (lowercase, hyphenated) of the observation made of the
/// readings at `places`, in component order:
/// `SHA-256(DOMAIN || kid || for each place: block u64 BE || record u32 BE
/// || index u32 BE)`, its first 16 bytes with the version nibble set to 8
/// and the variant bits to `10`.
pub fn observation_uuid(gateway: &KeyId, places: &[Place]) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(gateway.0);
    for p in places {
        h.update(p.block.to_be_bytes());
        h.update(p.record.to_be_bytes());
        h.update(p.index.to_be_bytes());
    }
    uuid_v8(h)
}

/// A UUIDv8 from everything `hash` has taken in: the first 16 bytes of
/// its SHA-256 digest with the version nibble set to 8 and the variant
/// bits to `10` (RFC 9562 §5.8), lowercase and hyphenated.
pub fn uuid_v8(hash: Sha256) -> String {
    let digest = hash.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: Place = Place {
        block: 1,
        record: 2,
        index: 3,
    };

    #[test]
    fn the_uuid_is_a_version_8_rfc_9562_uuid_and_matches_the_test_vector() {
        let id = observation_uuid(&KeyId([0x11; 16]), &[PLACE]);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "{id}");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        // The vector in docs/FORMAT.md ("FHIR export").
        assert_eq!(id, "215ddaf1-bb56-8d3a-8c02-ac967156775a");
    }

    #[test]
    fn places_gateways_and_component_order_all_change_the_uuid() {
        let kid = KeyId([0x11; 16]);
        let other = Place { index: 4, ..PLACE };
        let base = observation_uuid(&kid, &[PLACE]);
        assert_eq!(base, observation_uuid(&kid, &[PLACE]));
        assert_ne!(base, observation_uuid(&kid, &[other]));
        assert_ne!(base, observation_uuid(&KeyId([0x22; 16]), &[PLACE]));
        assert_ne!(
            observation_uuid(&kid, &[PLACE, other]),
            observation_uuid(&kid, &[other, PLACE])
        );
    }
}
