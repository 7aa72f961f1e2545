//! The gateway's key backup: its two private keys — the Ed25519 identity
//! and the consultation-chain account (secp256k1) — encrypted to the
//! hospital's key-escrow key, so a gateway that dies can be replaced
//! without re-enrolling it, and no private key is ever written in the
//! clear outside its own key file.
//!
//! The backup is a COSE_Encrypt ([`cose::encrypt`]) whose recipients are
//! wrapped exactly as a block's content key is (ECDH-ES + A256KW over
//! X25519), to an ordinary recipient key (`vitalgate keygen recipient`):
//! no cryptography of its own. Its plaintext is a deterministic CBOR map;
//! the byte layout and a test vector are in `docs/FORMAT.md` ("Key
//! backup").
//!
//! This crate does not know secp256k1: the account key travels as its 32
//! secret bytes beside the address recorded for it, and the caller checks
//! that one derives the other (`vitalgate restore` does).

use std::fmt;

use zeroize::Zeroizing;

use super::cose::{self, CoseError, MAJOR_MAP, MAJOR_TSTR, Reader, put_bstr, put_head, put_int};
use super::keys::{IdentityKey, KeyId, RecipientKey, RecipientPublic};

/// The `kind` of a key backup's plaintext (key 0): format and version.
pub const KIND: &str = "vitalgate/key-backup/1";
/// Longest software version text a backup records.
pub const MAX_SOFTWARE_LEN: usize = 64;
/// Far above a backup's size (about 300 bytes for one escrow key, 16
/// recipients at most): a reader stops at this many bytes.
pub const MAX_BACKUP_LEN: usize = 4096;

/// Labels of the plaintext map, in order.
const LABEL_KIND: i64 = 0;
const LABEL_GATEWAY: i64 = 1;
const LABEL_IDENTITY: i64 = 2;
const LABEL_ADDRESS: i64 = 3;
const LABEL_ACCOUNT: i64 = 4;
const LABEL_CREATED: i64 = 5;
const LABEL_SOFTWARE: i64 = 6;
const FIELDS: u64 = 7;

const STRUCTURE: &str = "key backup";

/// Why a key backup could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The backup was encrypted to another escrow key.
    #[error(
        "the backup is encrypted to escrow key {backup_for}, not to the given key {given}; use the private key of {backup_for}"
    )]
    NotForKey {
        /// The kid of (the first) escrow key the backup is encrypted to.
        backup_for: KeyId,
        /// The kid of the key given.
        given: KeyId,
    },
    /// Malformed, altered, or not a key backup at all.
    #[error("not a valid key backup (damaged or altered): {0}")]
    Cose(CoseError),
    /// A valid COSE message whose plaintext is not a key backup.
    #[error("the decrypted message is not a key backup (kind {found:?}, expected {KIND:?})")]
    WrongKind {
        /// The kind found.
        found: String,
    },
    /// The identity key inside does not derive the gateway id recorded
    /// beside it.
    #[error(
        "the backup's identity key is gateway {derived}, but the backup records gateway {recorded}"
    )]
    IdentityMismatch {
        /// The gateway id (identity kid) recorded in the backup.
        recorded: KeyId,
        /// The kid of the identity key in the backup.
        derived: KeyId,
    },
    /// The software version text is too long to record.
    #[error("the software version text is longer than {MAX_SOFTWARE_LEN} bytes")]
    SoftwareTooLong,
    /// The file is far larger than any key backup.
    #[error("{0} bytes: far larger than a key backup (at most {MAX_BACKUP_LEN})")]
    TooLarge(usize),
}

impl From<CoseError> for BackupError {
    fn from(e: CoseError) -> BackupError {
        match e {
            CoseError::WrongKey {
                expected, found, ..
            } => BackupError::NotForKey {
                backup_for: found,
                given: expected,
            },
            other => BackupError::Cose(other),
        }
    }
}

/// What a key backup holds: both private keys of one gateway and what
/// identifies them.
pub struct KeyBackup {
    /// The gateway's identity (signing) key.
    pub identity: IdentityKey,
    /// The consultation-chain account's secp256k1 private key (32 bytes,
    /// big-endian), wiped when dropped.
    pub account_secret: Zeroizing<[u8; 32]>,
    /// The account's address (20 bytes), as registered by the hospital.
    pub account_address: [u8; 20],
    /// When the keys were created, ms since the Unix epoch (the enrolment
    /// record's `created`).
    pub created: i64,
    /// The vitalgate version that made the backup.
    pub software: String,
}

impl fmt::Debug for KeyBackup {
    // Never the private keys: the ids say which gateway it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBackup")
            .field("gateway", &self.identity.kid())
            .field("account_address", &hex(&self.account_address))
            .field("created", &self.created)
            .field("software", &self.software)
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyBackup {
    /// The plaintext: deterministic CBOR `{0: kind, 1: gateway kid, 2:
    /// identity seed, 3: account address, 4: account secret, 5: created,
    /// 6: software}`, in a buffer wiped when dropped.
    fn plaintext(&self) -> Result<Zeroizing<Vec<u8>>, BackupError> {
        if self.software.len() > MAX_SOFTWARE_LEN {
            return Err(BackupError::SoftwareTooLong);
        }
        // Allocated once at its final size: no reallocation leaves a copy
        // of a key behind in freed memory.
        let mut out = Zeroizing::new(Vec::with_capacity(
            1 + 24 + 18 + 35 + 22 + 35 + 10 + 3 + MAX_SOFTWARE_LEN,
        ));
        put_head(&mut out, MAJOR_MAP, FIELDS);
        put_int(&mut out, LABEL_KIND);
        put_tstr(&mut out, KIND);
        put_int(&mut out, LABEL_GATEWAY);
        put_bstr(&mut out, self.identity.kid().as_bytes());
        put_int(&mut out, LABEL_IDENTITY);
        put_bstr(&mut out, self.identity.seed());
        put_int(&mut out, LABEL_ADDRESS);
        put_bstr(&mut out, &self.account_address);
        put_int(&mut out, LABEL_ACCOUNT);
        put_bstr(&mut out, &self.account_secret[..]);
        put_int(&mut out, LABEL_CREATED);
        put_int(&mut out, self.created);
        put_int(&mut out, LABEL_SOFTWARE);
        put_tstr(&mut out, &self.software);
        Ok(out)
    }

    /// Encrypts the backup to the escrow keys `to` (a COSE_Encrypt, tag
    /// 96): only their private keys open it.
    pub fn seal(&self, to: &[RecipientPublic]) -> Result<Vec<u8>, BackupError> {
        Ok(cose::encrypt(&self.plaintext()?, to)?)
    }

    /// [`KeyBackup::seal`] with the content key, IV and ephemeral secrets
    /// given, for the test vector.
    #[cfg(test)]
    fn seal_with(
        &self,
        to: &[RecipientPublic],
        cek: &cose::ContentKey,
        iv: &[u8; 12],
        ephemerals: &[Zeroizing<[u8; 32]>],
    ) -> Result<Vec<u8>, BackupError> {
        Ok(cose::encrypt_with(
            &self.plaintext()?,
            to,
            cek,
            iv,
            ephemerals,
        )?)
    }

    /// Decrypts a backup made by [`KeyBackup::seal`] with an escrow
    /// private key, and checks that the identity key inside is the
    /// gateway recorded beside it. (The account's address is the caller's
    /// to check: see the module documentation.)
    pub fn open(bytes: &[u8], key: &RecipientKey) -> Result<KeyBackup, BackupError> {
        if bytes.len() > MAX_BACKUP_LEN {
            return Err(BackupError::TooLarge(bytes.len()));
        }
        let plaintext = cose::decrypt(bytes, key)?;
        KeyBackup::parse(&plaintext)
    }

    /// Strict decode of the plaintext: exactly the seven fields in order,
    /// the kind, and the deterministic encoding (re-encoded and compared).
    fn parse(plaintext: &[u8]) -> Result<KeyBackup, BackupError> {
        let mut r = Reader::new(plaintext, STRUCTURE);
        let fields = r.map("map")?;
        if fields != FIELDS {
            return Err(r
                .malformed("map", format!("expected {FIELDS} fields, found {fields}"))
                .into());
        }
        label(&mut r, LABEL_KIND, "kind")?;
        let kind = r.tstr("kind")?;
        if kind != KIND {
            return Err(BackupError::WrongKind {
                found: kind.to_owned(),
            });
        }
        label(&mut r, LABEL_GATEWAY, "gateway")?;
        let recorded = KeyId(r.bstr_of::<{ KeyId::LEN }>("gateway")?);
        label(&mut r, LABEL_IDENTITY, "identity")?;
        let seed = secret_32(&mut r, "identity")?;
        label(&mut r, LABEL_ADDRESS, "account address")?;
        let account_address = r.bstr_of::<20>("account address")?;
        label(&mut r, LABEL_ACCOUNT, "account")?;
        let account_secret = secret_32(&mut r, "account")?;
        label(&mut r, LABEL_CREATED, "created")?;
        let created = r.int("created")?;
        label(&mut r, LABEL_SOFTWARE, "software")?;
        let software = r.tstr("software")?.to_owned();
        r.finish()?;
        let backup = KeyBackup {
            identity: IdentityKey::from_seed(&seed),
            account_secret,
            account_address,
            created,
            software,
        };
        // First the identity, because the re-encoding writes the kid
        // derived from it.
        let derived = backup.identity.kid();
        if derived != recorded {
            return Err(BackupError::IdentityMismatch { recorded, derived });
        }
        if backup.plaintext()?.as_slice() != plaintext {
            return Err(BackupError::Cose(CoseError::NotDeterministic {
                structure: STRUCTURE,
                what: "the bytes differ from the deterministic re-encoding",
            }));
        }
        Ok(backup)
    }
}

/// Reads a map label that must be `expected` (the fields come in order).
fn label(r: &mut Reader<'_>, expected: i64, field: &'static str) -> Result<(), CoseError> {
    let found = r.int("label")?;
    if found == expected {
        Ok(())
    } else {
        Err(r.malformed(
            field,
            format!("expected label {expected} here, found {found}"),
        ))
    }
}

fn put_tstr(out: &mut Vec<u8>, text: &str) {
    put_head(out, MAJOR_TSTR, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// A 32-byte byte string copied straight into a buffer wiped on drop.
fn secret_32(r: &mut Reader<'_>, field: &'static str) -> Result<Zeroizing<[u8; 32]>, CoseError> {
    let bytes = r.bstr(field)?;
    let mut secret = Zeroizing::new([0u8; 32]);
    if bytes.len() != secret.len() {
        return Err(r.malformed(
            field,
            format!("expected 32 bytes, found {} bytes", bytes.len()),
        ));
    }
    secret.copy_from_slice(bytes);
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_bytes(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    fn hex_n<const N: usize>(s: &str) -> [u8; N] {
        hex_bytes(s).try_into().expect("length")
    }

    const RFC7748_ALICE_SECRET: &str =
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const RFC7748_BOB_SECRET: &str =
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    /// Anvil's first development account (a public test key) and its
    /// address.
    const ACCOUNT_SECRET: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const ACCOUNT_ADDRESS: &str = "f39fd6e51aad88f6f4ce6ab8827279cfffb92266";

    const PLAINTEXT_VECTOR: &str = "a70076766974616c676174652f6b65792d6261636b75702f310150fe812c12f3ab4ce6ac5db6\
        9ac352f906025820070707070707070707070707070707070707070707070707070707070707\
        07070354f39fd6e51aad88f6f4ce6ab8827279cfffb92266045820ac0974bec39a17e36ba4a6\
        b4d238ff944bacb478cbed5efcae784d7bf4f2ff80051b0000018bcfe568000665302e312e30";
    const BACKUP_VECTOR: &str = "d8608444a1011818a1054ca0a1a2a3a4a5a6a7a8a9aaab58a8abab0e292492a3c1c76e8771d3\
        919882b03cb2dc281f108c85d98b4ff04ed1ffc7ccf026f37f65499435f3bf45717f414dc34d\
        3f0e0b6c8620530c474b2da2cfb6fc60493fee95f725f7d58e0ab7aa2af306d90606111e568f\
        e620380cbed97463fe45c68b034d59a634dea10ed7f89eec6407876daf7eee0458d8985fce4c\
        900760870a7b587bc61eb5df3cf17af27199d464d9581924610f53af54ee0bfd7452478d051d\
        cd21b8818344a101381ea20450f35e5616160a30bf3c6e79fa73c576d420a301012004215820\
        8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a58287d314b2f\
        425c6f6969151a7da32f480b42118f7eca591bd471281230ece0c4e0c5cbdeeed17b565b";

    fn bob() -> RecipientKey {
        RecipientKey::from_bytes(&hex_n(RFC7748_BOB_SECRET))
    }

    /// The FORMAT.md vector's backup: identity seed 32 × 0x07, the anvil
    /// account, created 1700000000000, software "0.1.0".
    fn vector_backup() -> KeyBackup {
        KeyBackup {
            identity: IdentityKey::from_seed(&[7; 32]),
            account_secret: Zeroizing::new(hex_n(ACCOUNT_SECRET)),
            account_address: hex_n(ACCOUNT_ADDRESS),
            created: 1_700_000_000_000,
            software: "0.1.0".into(),
        }
    }

    fn vector_sealed(backup: &KeyBackup) -> Vec<u8> {
        let mut cek = [0u8; 32];
        for (i, b) in cek.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut iv = [0u8; 12];
        for (i, b) in iv.iter_mut().enumerate() {
            *b = 0xa0 + i as u8;
        }
        backup
            .seal_with(
                &[bob().public()],
                &cose::ContentKey::from_bytes(&cek),
                &iv,
                &[Zeroizing::new(hex_n(RFC7748_ALICE_SECRET))],
            )
            .expect("seal")
    }

    fn to_hex(bytes: &[u8]) -> String {
        hex(bytes)
    }

    #[test]
    fn the_format_documents_key_backup_vector_is_reproduced_and_shown() {
        let backup = vector_backup();
        let plaintext = backup.plaintext().expect("plaintext");
        let sealed = vector_sealed(&backup);
        assert_eq!(to_hex(&plaintext), PLAINTEXT_VECTOR);
        assert_eq!(to_hex(&sealed), BACKUP_VECTOR);
        // The document shows exactly these bytes (its hex is wrapped over
        // lines: compare without whitespace).
        let doc = include_str!("../../../../docs/FORMAT.md");
        let section = doc
            .split("## Key backup")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("docs/FORMAT.md has a \"Key backup\" section");
        let compact: String = section.chars().filter(|c| !c.is_whitespace()).collect();
        for shown in [
            PLAINTEXT_VECTOR,
            BACKUP_VECTOR,
            "8367456e637279707444a101181840",
        ] {
            assert!(compact.contains(shown), "docs/FORMAT.md lacks {shown}");
        }
    }

    #[test]
    fn the_vector_opens_with_the_escrow_key_to_the_same_keys() {
        let opened = KeyBackup::open(&hex_bytes(BACKUP_VECTOR), &bob()).expect("open");
        let want = vector_backup();
        assert_eq!(opened.identity.public(), want.identity.public());
        assert_eq!(*opened.account_secret, *want.account_secret);
        assert_eq!(opened.account_address, want.account_address);
        assert_eq!(opened.created, 1_700_000_000_000);
        assert_eq!(opened.software, "0.1.0");
        // And it is the block recipient of the COSE test vectors: the
        // same wrapping, nothing new.
        let sealed = hex_bytes(BACKUP_VECTOR);
        assert_eq!(
            to_hex(&sealed[sealed.len() - 108..]),
            "8344a101381ea20450f35e5616160a30bf3c6e79fa73c576d420a3010120042158208520f009\
             8930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a58287d314b2f425c6f69\
             69151a7da32f480b42118f7eca591bd471281230ece0c4e0c5cbdeeed17b565b"
        );
    }

    #[test]
    fn a_fresh_backup_round_trips_and_differs_each_time() {
        let backup = KeyBackup {
            identity: IdentityKey::generate().expect("rng"),
            ..vector_backup()
        };
        let escrow = RecipientKey::generate().expect("rng");
        let a = backup.seal(&[escrow.public()]).expect("seal");
        let b = backup.seal(&[escrow.public()]).expect("seal");
        assert_ne!(a, b, "fresh content key, IV and ephemeral key");
        for sealed in [a, b] {
            let opened = KeyBackup::open(&sealed, &escrow).expect("open");
            assert_eq!(opened.identity.public(), backup.identity.public());
            assert_eq!(*opened.account_secret, *backup.account_secret);
        }
    }

    #[test]
    fn any_of_several_escrow_keys_opens_a_backup() {
        let first = RecipientKey::generate().expect("rng");
        let second = RecipientKey::generate().expect("rng");
        let sealed = vector_backup()
            .seal(&[first.public(), second.public()])
            .expect("seal");
        assert_eq!(sealed.len(), 302 + 108);
        for key in [&first, &second] {
            let opened = KeyBackup::open(&sealed, key).expect("open");
            assert_eq!(opened.identity.kid(), vector_backup().identity.kid());
        }
        assert!(vector_backup().seal(&[]).is_err(), "no escrow key");
    }

    #[test]
    fn a_backup_for_another_escrow_key_is_refused_naming_both_keys() {
        let other = RecipientKey::generate().expect("rng");
        let err = KeyBackup::open(&hex_bytes(BACKUP_VECTOR), &other).unwrap_err();
        match &err {
            BackupError::NotForKey { backup_for, given } => {
                assert_eq!(*backup_for, bob().kid());
                assert_eq!(*given, other.kid());
            }
            other => panic!("expected NotForKey, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.starts_with(
                "the backup is encrypted to escrow key f35e5616160a30bf3c6e79fa73c576d4, not to the given key"
            ),
            "{message}"
        );
    }

    #[test]
    fn every_altered_or_cut_byte_is_refused() {
        let sealed = hex_bytes(BACKUP_VECTOR);
        for at in 0..sealed.len() {
            for flip in [0x01, 0x80] {
                let mut bytes = sealed.clone();
                bytes[at] ^= flip;
                assert!(
                    KeyBackup::open(&bytes, &bob()).is_err(),
                    "byte {at} ^ {flip:#x} accepted"
                );
            }
        }
        for len in 0..sealed.len() {
            assert!(
                KeyBackup::open(&sealed[..len], &bob()).is_err(),
                "cut at {len}"
            );
        }
        let longer = [&sealed[..], &[0]].concat();
        assert!(KeyBackup::open(&longer, &bob()).is_err());
        let huge = vec![0u8; MAX_BACKUP_LEN + 1];
        assert!(matches!(
            KeyBackup::open(&huge, &bob()),
            Err(BackupError::TooLarge(_))
        ));
    }

    /// Seals `plaintext` (not necessarily a valid backup) as the vector does.
    fn sealed_plaintext(plaintext: &[u8]) -> Vec<u8> {
        cose::encrypt_with(
            plaintext,
            &[bob().public()],
            &cose::ContentKey::from_bytes(&[5; 32]),
            &[6; 12],
            &[Zeroizing::new(hex_n(RFC7748_ALICE_SECRET))],
        )
        .expect("encrypt")
    }

    #[test]
    fn a_plaintext_that_is_not_exactly_a_backup_is_refused() {
        let good = hex_bytes(PLAINTEXT_VECTOR);
        assert!(KeyBackup::open(&sealed_plaintext(&good), &bob()).is_ok());

        // The gateway id recorded for another identity.
        let mut wrong_kid = good.clone();
        wrong_kid[27] ^= 1;
        assert!(matches!(
            KeyBackup::open(&sealed_plaintext(&wrong_kid), &bob()),
            Err(BackupError::IdentityMismatch { .. })
        ));
        // Another kind ("vitalgate/key-backup/2").
        let mut kind = good.clone();
        kind[24] = b'2';
        assert!(matches!(
            KeyBackup::open(&sealed_plaintext(&kind), &bob()),
            Err(BackupError::WrongKind { .. })
        ));
        // created in a longer head than its shortest.
        let small = KeyBackup {
            created: 1,
            ..vector_backup()
        }
        .plaintext()
        .expect("plaintext");
        let one_at = small.len() - 8;
        assert_eq!(small[one_at], 0x01, "created 1 is one byte");
        let long_one = [&small[..one_at], &[0x18, 0x01][..], &small[one_at + 1..]].concat();
        assert!(matches!(
            KeyBackup::open(&sealed_plaintext(&long_one), &bob()),
            Err(BackupError::Cose(CoseError::NotDeterministic { .. }))
        ));
        // A field missing, a field out of order, a trailing byte.
        let mut six = good.clone();
        six[0] = 0xa6;
        assert!(KeyBackup::open(&sealed_plaintext(&six), &bob()).is_err());
        let trailing = [&good[..], &[0]].concat();
        assert!(KeyBackup::open(&sealed_plaintext(&trailing), &bob()).is_err());
        // A 31-byte identity key.
        let mut short = good.clone();
        let at = 43; // 02 58 20 <seed>
        assert_eq!(&short[at..at + 3], &[0x02, 0x58, 0x20]);
        short[at + 2] = 0x1f;
        short.remove(at + 3);
        assert!(KeyBackup::open(&sealed_plaintext(&short), &bob()).is_err());
    }

    #[test]
    fn the_private_keys_appear_nowhere_in_a_backup_or_its_debug_text() {
        let backup = vector_backup();
        let sealed = backup.seal(&[bob().public()]).expect("seal");
        for secret in [&[7u8; 32][..], &hex_bytes(ACCOUNT_SECRET)] {
            for piece in secret.windows(8) {
                assert!(!sealed.windows(8).any(|w| w == piece));
            }
        }
        let shown = format!("{backup:?}");
        assert!(
            !shown.contains("ac0974") && !shown.contains("0707070707"),
            "{shown}"
        );
        assert!(
            shown.contains("fe812c12f3ab4ce6ac5db69ac352f906"),
            "{shown}"
        );
    }

    #[test]
    fn coset_reads_the_backup_as_a_cose_encrypt_and_encodes_it_identically() {
        use coset::{CborSerializable as _, TaggedCborSerializable as _};
        let sealed = hex_bytes(BACKUP_VECTOR);
        let parsed = coset::CoseEncrypt::from_tagged_slice(&sealed).expect("coset decode");
        assert_eq!(parsed.recipients.len(), 1);
        assert_eq!(parsed.unprotected.iv, hex_bytes("a0a1a2a3a4a5a6a7a8a9aaab"));
        assert_eq!(
            parsed.recipients[0].unprotected.key_id,
            bob().kid().as_bytes()
        );
        assert_eq!(parsed.to_tagged_vec().expect("coset encode"), sealed);
        let _ = coset::CoseEncrypt::from_slice(&sealed[2..]).expect("untagged");
    }
}
