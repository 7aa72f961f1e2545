//! Key pairs and their files.
//!
//! Two kinds of key pair, each with a public half that is written as one
//! line of text and a secret half that lives in a PKCS#8 PEM file:
//!
//! - the gateway's **identity** key (Ed25519, RFC 8032) signs block
//!   headers; its public key is written `ed25519:<base64url>`;
//! - a **recipient** key (X25519, RFC 7748) belongs to someone allowed to
//!   read the readings (the patient, a care team); its public key is
//!   written `x25519:<base64url>`.
//!
//! `<base64url>` is the 32 raw public-key bytes in base64url (RFC 4648 §5)
//! without padding: always 43 characters. A key is named by its [`KeyId`],
//! the first 16 bytes of SHA-256 over those 32 bytes.
//!
//! Private key files are the RFC 8410 PKCS#8 form that OpenSSL reads and
//! writes (`openssl pkey -in FILE -pubout` prints the public key), with
//! mode 0600. Parsing is strict: exactly the 48-byte DER that RFC 8410
//! describes, nothing else.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use getrandom::SysRng;
use getrandom::rand_core::TryRng as _;
use sha2::{Digest as _, Sha256};
use x25519_dalek::{PublicKey as X25519Public, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

/// A 16-byte key identifier: the first 16 bytes of SHA-256 over the raw
/// 32-byte public key.
///
/// It names keys in COSE headers (`kid`, label 4) so a reader can pick the
/// right key without trying them all. Displayed as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// Length of a key id in bytes.
    pub const LEN: usize = 16;

    /// The key id of a raw 32-byte public key (Ed25519 or X25519).
    pub fn of(raw_public_key: &[u8; 32]) -> KeyId {
        let digest = Sha256::digest(raw_public_key);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        KeyId(id)
    }

    /// The 16 id bytes, as they appear in COSE headers.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a key, key file or key text could not be used.
///
/// Messages name the file when there is one, and say how to fix what can be
/// fixed by the operator.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file does not exist.
    #[error("key file {} does not exist", .path.display())]
    NotFound {
        /// The file that was asked for.
        path: PathBuf,
    },
    /// Reading, creating or syncing the key file failed.
    #[error("key file {}: {source}", .path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// `save_new` never replaces a key: losing one loses access to data.
    #[error("key file {} already exists; refusing to overwrite it", .path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A secret key file that others can read is a leaked key.
    #[error(
        "key file {} is accessible by group or others (mode {mode:03o}); fix it with `chmod 600 {}`",
        .path.display(), .path.display()
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds a valid key of the other kind (or a public key).
    #[error("key file {} holds {found}, but {expected} is needed here", .path.display())]
    WrongKeyType {
        /// The key file.
        path: PathBuf,
        /// What the caller asked for.
        expected: &'static str,
        /// What the file holds.
        found: &'static str,
    },
    /// The file is not an RFC 8410 PKCS#8 PEM private key of the fixed form.
    #[error("key file {} is not a valid key file: {problem}", .path.display())]
    MalformedFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(getrandom::Error),
    /// A public key text does not start with the expected prefix.
    #[error("a {kind} public key must start with `{prefix}`")]
    MissingPrefix {
        /// `Ed25519` or `X25519`.
        kind: &'static str,
        /// The expected prefix, e.g. `ed25519:`.
        prefix: &'static str,
    },
    /// A public key text is a key of the other kind.
    #[error("expected an {expected} public key, found an {found} public key")]
    WrongPublicKeyType {
        /// What the caller asked for.
        expected: &'static str,
        /// What the text holds.
        found: &'static str,
    },
    /// The part after the prefix is not unpadded base64url.
    #[error(
        "{kind} public key: not unpadded base64url (alphabet A-Z a-z 0-9 - _, no `=`): {source}"
    )]
    BadBase64 {
        /// `Ed25519` or `X25519`.
        kind: &'static str,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// The decoded public key is not 32 bytes.
    #[error("{kind} public key: expected 32 bytes (43 base64url characters), found {found} bytes")]
    WrongLength {
        /// `Ed25519` or `X25519`.
        kind: &'static str,
        /// The decoded length.
        found: usize,
    },
    /// The 32 bytes are not an acceptable public key.
    #[error("{kind} public key: {problem}")]
    InvalidPublicKey {
        /// `Ed25519` or `X25519`.
        kind: &'static str,
        /// Why it is refused.
        problem: &'static str,
    },
}

/// The two key algorithms, with what differs between them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ed25519,
    X25519,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ed25519 => "Ed25519",
            Kind::X25519 => "X25519",
        }
    }

    fn text_prefix(self) -> &'static str {
        match self {
            Kind::Ed25519 => "ed25519:",
            Kind::X25519 => "x25519:",
        }
    }

    /// How a private key file of this kind is described in errors.
    fn secret_description(self) -> &'static str {
        match self {
            Kind::Ed25519 => "an Ed25519 identity (signing) key",
            Kind::X25519 => "an X25519 recipient (decryption) key",
        }
    }

    /// The fixed DER before the 32 key bytes (RFC 8410 §7): SEQUENCE {
    /// INTEGER 0, SEQUENCE { OID }, OCTET STRING { OCTET STRING (32) } }.
    fn pkcs8_prefix(self) -> &'static [u8; 16] {
        match self {
            Kind::Ed25519 => &PKCS8_ED25519_PREFIX,
            Kind::X25519 => &PKCS8_X25519_PREFIX,
        }
    }
}

/// RFC 8410 OneAsymmetricKey v1 for OID 1.3.101.112 (Ed25519), up to the key.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// RFC 8410 OneAsymmetricKey v1 for OID 1.3.101.110 (X25519), up to the key.
const PKCS8_X25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];
const PKCS8_LEN: usize = 48;
/// 48 DER bytes are exactly 64 base64 characters: one PEM line, no padding.
const PEM_BODY_LEN: usize = 64;
const PEM_BEGIN: &[u8] = b"-----BEGIN PRIVATE KEY-----";
const PEM_END: &[u8] = b"-----END PRIVATE KEY-----";
/// Far above the 119 bytes of a key file; stops us reading a wrong, huge file.
const MAX_KEY_FILE_LEN: usize = 4096;
/// Bits that must be clear on a key file: any access by group or others.
const GROUP_OTHER_BITS: u32 = 0o077;

/// The gateway's Ed25519 signing key. Zeroized on drop (by ed25519-dalek).
pub struct IdentityKey {
    key: SigningKey,
    kid: KeyId,
}

/// An Ed25519 public key: verifies what an [`IdentityKey`] signed.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityPublic {
    key: VerifyingKey,
    kid: KeyId,
}

/// A recipient's X25519 secret key: unwraps the block content keys wrapped
/// to it. Zeroized on drop (by x25519-dalek).
pub struct RecipientKey {
    secret: StaticSecret,
    public: RecipientPublic,
}

/// A recipient's X25519 public key: what the gateway wraps content keys to.
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientPublic {
    key: X25519Public,
    kid: KeyId,
}

/// 32 fresh bytes from the operating system's RNG, zeroized on drop.
pub(crate) fn random_32() -> Result<Zeroizing<[u8; 32]>, getrandom::Error> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SysRng.try_fill_bytes(&mut bytes[..])?;
    Ok(bytes)
}

impl IdentityKey {
    /// A new random identity key from the operating system's RNG.
    pub fn generate() -> Result<IdentityKey, KeyError> {
        let seed = random_32().map_err(KeyError::Rng)?;
        Ok(IdentityKey::from_seed(&seed))
    }

    /// The key with this RFC 8032 32-byte private key ("seed").
    ///
    /// For test vectors and importing keys; new keys come from
    /// [`IdentityKey::generate`].
    pub fn from_seed(seed: &[u8; 32]) -> IdentityKey {
        let key = SigningKey::from_bytes(seed);
        let kid = KeyId::of(key.verifying_key().as_bytes());
        IdentityKey { key, kid }
    }

    /// The public half.
    pub fn public(&self) -> IdentityPublic {
        IdentityPublic {
            key: self.key.verifying_key(),
            kid: self.kid,
        }
    }

    /// The key id of the public half.
    pub fn kid(&self) -> KeyId {
        self.kid
    }

    /// Writes the key to a new file `path` (mode 0600, PKCS#8 PEM), never
    /// replacing an existing file, and syncs it to disk.
    pub fn save_new(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        write_new_key_file(path.as_ref(), Kind::Ed25519, self.key.as_bytes())
    }

    /// Reads a key written by [`IdentityKey::save_new`] (or by `openssl
    /// genpkey -algorithm ed25519`). Refuses files that group or others can
    /// access.
    pub fn load(path: impl AsRef<Path>) -> Result<IdentityKey, KeyError> {
        let seed = read_key_file(path.as_ref(), Kind::Ed25519)?;
        Ok(IdentityKey::from_seed(&seed))
    }

    /// A 32-byte secret for another purpose of this gateway, derived from
    /// the identity's private key with HKDF-SHA256 (RFC 5869; salt
    /// `"vitalgate"`, `info` naming the purpose), so the gateway keeps one
    /// private key file and each use gets an independent key. The daemon
    /// seals its alert outbox with `info = "vitalgate/outbox-key/1"`.
    pub fn derive_secret(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(b"vitalgate"), self.key.as_bytes());
        // 32 bytes is far below HKDF-SHA256's limit of 255 × 32.
        if hkdf.expand(info, &mut out[..]).is_err() {
            unreachable!("HKDF-SHA256 can always expand 32 bytes");
        }
        out
    }

    /// The 32-byte private key (RFC 8032 seed), for the encrypted key
    /// backup only: it never leaves this crate except encrypted.
    pub(crate) fn seed(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Ed25519 signature (RFC 8032, pure) of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl IdentityPublic {
    /// The public key with these 32 bytes (RFC 8032 encoding); refuses
    /// invalid, non-canonical and small-order (weak) points.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<IdentityPublic, KeyError> {
        let invalid = |problem| KeyError::InvalidPublicKey {
            kind: Kind::Ed25519.name(),
            problem,
        };
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| invalid("not the encoding of a point on the Ed25519 curve"))?;
        // One key, one encoding, one kid: refuse the alternative encodings
        // (y >= p, or x = 0 with the sign bit set).
        if key.to_edwards().compress().to_bytes() != *bytes {
            return Err(invalid("non-canonical point encoding"));
        }
        // A small-order key makes signatures that verify for many messages.
        if key.is_weak() {
            return Err(invalid(
                "small-order point (a weak key that cannot sign securely)",
            ));
        }
        Ok(IdentityPublic {
            key,
            kid: KeyId::of(bytes),
        })
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key id.
    pub fn kid(&self) -> KeyId {
        self.kid
    }

    /// Strict RFC 8032 verification (canonical S and R, no small-order R).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key
            .verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

impl fmt::Display for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_public_text(f, Kind::Ed25519, self.key.as_bytes())
    }
}

impl fmt::Debug for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublic({self})")
    }
}

impl FromStr for IdentityPublic {
    type Err = KeyError;

    /// Parses `ed25519:` followed by 43 base64url characters.
    fn from_str(text: &str) -> Result<IdentityPublic, KeyError> {
        IdentityPublic::from_bytes(&parse_public_text(text, Kind::Ed25519)?)
    }
}

impl RecipientKey {
    /// A new random recipient key from the operating system's RNG.
    pub fn generate() -> Result<RecipientKey, KeyError> {
        let bytes = random_32().map_err(KeyError::Rng)?;
        Ok(RecipientKey::from_bytes(&bytes))
    }

    /// The key with this RFC 7748 32-byte private key (clamped when used).
    ///
    /// For test vectors and importing keys; new keys come from
    /// [`RecipientKey::generate`].
    pub fn from_bytes(bytes: &[u8; 32]) -> RecipientKey {
        let secret = StaticSecret::from(*bytes);
        let key = X25519Public::from(&secret);
        let public = RecipientPublic {
            kid: KeyId::of(key.as_bytes()),
            key,
        };
        RecipientKey { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> RecipientPublic {
        self.public.clone()
    }

    /// The key id of the public half.
    pub fn kid(&self) -> KeyId {
        self.public.kid
    }

    /// Writes the key to a new file `path` (mode 0600, PKCS#8 PEM), never
    /// replacing an existing file, and syncs it to disk.
    pub fn save_new(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        write_new_key_file(path.as_ref(), Kind::X25519, self.secret.as_bytes())
    }

    /// Reads a key written by [`RecipientKey::save_new`] (or by `openssl
    /// genpkey -algorithm x25519`). Refuses files that group or others can
    /// access.
    pub fn load(path: impl AsRef<Path>) -> Result<RecipientKey, KeyError> {
        let bytes = read_key_file(path.as_ref(), Kind::X25519)?;
        Ok(RecipientKey::from_bytes(&bytes))
    }

    /// X25519 with a peer's public key; the caller checks
    /// `was_contributory()`.
    pub(crate) fn diffie_hellman(&self, peer: &X25519Public) -> SharedSecret {
        self.secret.diffie_hellman(peer)
    }
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientKey")
            .field("kid", &self.public.kid)
            .finish()
    }
}

impl RecipientPublic {
    /// The public key with these 32 bytes (RFC 7748 u-coordinate); refuses
    /// non-canonical encodings and the small-order points, with which the
    /// Diffie-Hellman output would be all zero.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<RecipientPublic, KeyError> {
        check_x25519_public(bytes).map_err(|problem| KeyError::InvalidPublicKey {
            kind: Kind::X25519.name(),
            problem,
        })?;
        Ok(RecipientPublic {
            key: X25519Public::from(*bytes),
            kid: KeyId::of(bytes),
        })
    }

    /// A key without the checks, to test that wrapping refuses bad keys.
    #[cfg(test)]
    pub(crate) fn unchecked(bytes: [u8; 32]) -> RecipientPublic {
        RecipientPublic {
            kid: KeyId::of(&bytes),
            key: X25519Public::from(bytes),
        }
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key id.
    pub fn kid(&self) -> KeyId {
        self.kid
    }

    /// The x25519-dalek key, for the key agreement.
    pub(crate) fn x25519(&self) -> &X25519Public {
        &self.key
    }
}

impl fmt::Display for RecipientPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_public_text(f, Kind::X25519, self.key.as_bytes())
    }
}

impl fmt::Debug for RecipientPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientPublic({self})")
    }
}

impl FromStr for RecipientPublic {
    type Err = KeyError;

    /// Parses `x25519:` followed by 43 base64url characters.
    fn from_str(text: &str) -> Result<RecipientPublic, KeyError> {
        RecipientPublic::from_bytes(&parse_public_text(text, Kind::X25519)?)
    }
}

/// Why an X25519 public key is refused, if it is.
///
/// RFC 7748 §5 has receivers mask bit 255 and reduce values >= p; we refuse
/// those encodings instead, so that a key has exactly one text form and one
/// kid.
pub(crate) fn check_x25519_public(bytes: &[u8; 32]) -> Result<(), &'static str> {
    if bytes[31] & 0x80 != 0 {
        return Err("non-canonical encoding (bit 255 is set)");
    }
    // p = 2^255 - 19 is ed ff .. ff 7f little-endian; values >= p have all
    // bytes 1..=30 at 0xff, byte 31 at 0x7f and byte 0 >= 0xed.
    if bytes[31] == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed {
        return Err("non-canonical encoding (value is not below 2^255 - 19)");
    }
    // A clamped scalar is 8k with 2^251 <= k < 2^252, below both prime
    // subgroup orders, so the product is zero exactly for the points of
    // small order (on the curve or its twist), zero itself included.
    let mut probe = [0x55u8; 32];
    probe[0] = 0x58;
    if x25519_dalek::x25519(probe, *bytes) == [0u8; 32] {
        return Err("small-order point: Diffie-Hellman with it gives an all-zero shared secret");
    }
    Ok(())
}

fn write_public_text(f: &mut fmt::Formatter<'_>, kind: Kind, bytes: &[u8; 32]) -> fmt::Result {
    let mut text = [0u8; 43];
    // 32 bytes are exactly 43 unpadded base64url characters.
    match URL_SAFE_NO_PAD.encode_slice(bytes, &mut text) {
        Ok(43) => {}
        _ => return Err(fmt::Error),
    }
    let text = std::str::from_utf8(&text).map_err(|_| fmt::Error)?;
    write!(f, "{}{text}", kind.text_prefix())
}

fn parse_public_text(text: &str, kind: Kind) -> Result<[u8; 32], KeyError> {
    let Some(encoded) = text.strip_prefix(kind.text_prefix()) else {
        for other in [Kind::Ed25519, Kind::X25519] {
            if other != kind && text.starts_with(other.text_prefix()) {
                return Err(KeyError::WrongPublicKeyType {
                    expected: kind.name(),
                    found: other.name(),
                });
            }
        }
        return Err(KeyError::MissingPrefix {
            kind: kind.name(),
            prefix: kind.text_prefix(),
        });
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|source| KeyError::BadBase64 {
            kind: kind.name(),
            source,
        })?;
    let found = bytes.len();
    bytes.try_into().map_err(|_| KeyError::WrongLength {
        kind: kind.name(),
        found,
    })
}

/// The PEM text of a private key: BEGIN line, the 48-byte DER as one
/// 64-character base64 line, END line, each ended by `\n` (119 bytes).
fn encode_pem(kind: Kind, secret: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let mut der = Zeroizing::new([0u8; PKCS8_LEN]);
    der[..16].copy_from_slice(kind.pkcs8_prefix());
    der[16..].copy_from_slice(secret);

    let len = PEM_BEGIN.len() + 1 + PEM_BODY_LEN + 1 + PEM_END.len() + 1;
    // Allocated once at its final size, so no copy of the secret is left
    // behind by a reallocation.
    let mut pem = Zeroizing::new(Vec::with_capacity(len));
    pem.extend_from_slice(PEM_BEGIN);
    pem.push(b'\n');
    let body_start = pem.len();
    pem.resize(body_start + PEM_BODY_LEN, 0);
    let written = STANDARD.encode_slice(&der[..], &mut pem[body_start..]);
    debug_assert_eq!(written.ok(), Some(PEM_BODY_LEN));
    pem.push(b'\n');
    pem.extend_from_slice(PEM_END);
    pem.push(b'\n');
    pem
}

/// Why a key file's contents are refused.
enum PemProblem {
    Malformed(&'static str),
    WrongKind(&'static str),
}

/// Parses the PEM text of a private key of `kind` (strict: three lines,
/// a final `\n` optional, exactly the RFC 8410 DER).
fn decode_pem(data: &[u8], kind: Kind) -> Result<Zeroizing<[u8; 32]>, PemProblem> {
    if data.contains(&b'\r') {
        return Err(PemProblem::Malformed(
            "CRLF line ends; convert the file to LF line ends (e.g. with dos2unix)",
        ));
    }
    let text = data.strip_suffix(b"\n").unwrap_or(data);
    let mut lines = text.split(|&b| b == b'\n');
    let begin = lines.next().unwrap_or_default();
    if begin != PEM_BEGIN {
        return Err(if begin.starts_with(b"-----BEGIN PUBLIC KEY-----") {
            PemProblem::WrongKind("a public key")
        } else if begin.starts_with(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            PemProblem::Malformed("password-protected (encrypted) key files are not supported")
        } else if begin.starts_with(b"-----BEGIN") {
            PemProblem::Malformed("expected a PEM `PRIVATE KEY` (PKCS#8) block")
        } else {
            PemProblem::Malformed("expected a PEM file starting with `-----BEGIN PRIVATE KEY-----`")
        });
    }
    let (Some(body), Some(end), None) = (lines.next(), lines.next(), lines.next()) else {
        return Err(PemProblem::Malformed(
            "expected exactly three lines: BEGIN, one line of base64, END",
        ));
    };
    if end != PEM_END {
        return Err(PemProblem::Malformed(
            "expected `-----END PRIVATE KEY-----` after one line of base64",
        ));
    }
    if body.len() != PEM_BODY_LEN {
        return Err(PemProblem::Malformed(
            "the base64 line is not 64 characters (the 48-byte RFC 8410 key)",
        ));
    }
    let mut der = Zeroizing::new([0u8; PKCS8_LEN]);
    match STANDARD.decode_slice(body, &mut der[..]) {
        Ok(PKCS8_LEN) => {}
        _ => return Err(PemProblem::Malformed("the key is not valid base64")),
    }
    let (prefix, key) = der.split_at(16);
    if prefix != kind.pkcs8_prefix() {
        for other in [Kind::Ed25519, Kind::X25519] {
            if other != kind && prefix == other.pkcs8_prefix() {
                return Err(PemProblem::WrongKind(other.secret_description()));
            }
        }
        return Err(PemProblem::Malformed(
            "not an RFC 8410 Ed25519 or X25519 private key (OneAsymmetricKey v1, 48 bytes)",
        ));
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(key);
    Ok(secret)
}

fn io_error(path: &Path, source: io::Error) -> KeyError {
    KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_new_key_file(path: &Path, kind: Kind, secret: &[u8; 32]) -> Result<(), KeyError> {
    write_new_secret_file(path, &encode_pem(kind, secret))
}

/// Creates `path` holding `contents` (a private key, whatever its format),
/// as every key file of the gateway is created: never replacing an
/// existing file, mode 0600 from the start, synced to disk with its
/// directory entry. A failed write leaves no file behind.
pub fn write_new_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    // create_new: O_CREAT|O_EXCL, so an existing file (or a symlink planted
    // at the path) is never written through; the mode is set at creation,
    // so the key is never readable by others, not even for an instant.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => KeyError::AlreadyExists {
                path: path.to_path_buf(),
            },
            _ => io_error(path, source),
        })?;
    if let Err(source) = file.write_all(contents).and_then(|()| file.sync_all()) {
        drop(file);
        // Do not leave a truncated key behind that would block a retry.
        let _ = fs::remove_file(path);
        return Err(io_error(path, source));
    }
    // The new directory entry must be durable too, or a crash can lose the
    // key after we reported it saved.
    let parent = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| io_error(parent, source))
}

fn read_key_file(path: &Path, kind: Kind) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let data = read_secret_file(path)?;
    decode_pem(&data, kind).map_err(|problem| match problem {
        PemProblem::Malformed(problem) => KeyError::MalformedFile {
            path: path.to_path_buf(),
            problem,
        },
        PemProblem::WrongKind(found) => KeyError::WrongKeyType {
            path: path.to_path_buf(),
            expected: kind.secret_description(),
            found,
        },
    })
}

/// Reads a private key file's bytes (at most 4 KiB), refusing anything but
/// a regular file that neither group nor others may access. The caller
/// parses them.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => KeyError::NotFound {
            path: path.to_path_buf(),
        },
        _ => io_error(path, source),
    })?;
    // Checked on the open file, so the file we check is the file we read.
    let metadata = file.metadata().map_err(|source| io_error(path, source))?;
    if !metadata.is_file() {
        return Err(KeyError::MalformedFile {
            path: path.to_path_buf(),
            problem: "not a regular file",
        });
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & GROUP_OTHER_BITS != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    // Capacity above the read limit: the buffer never reallocates, so no
    // stray copy of the key is left in freed memory.
    let mut data = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN + 2));
    file.take(MAX_KEY_FILE_LEN as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|source| io_error(path, source))?;
    if data.len() > MAX_KEY_FILE_LEN {
        return Err(KeyError::MalformedFile {
            path: path.to_path_buf(),
            problem: "far too large to be a key file",
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len() % 2 == 0, "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    fn hex32(s: &str) -> [u8; 32] {
        hex(s).try_into().expect("32 bytes")
    }

    const RFC8032_TEST1_SECRET: &str =
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_TEST1_PUBLIC: &str =
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC7748_ALICE_SECRET: &str =
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const RFC7748_ALICE_PUBLIC: &str =
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const RFC7748_BOB_SECRET: &str =
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    const RFC7748_BOB_PUBLIC: &str =
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";

    /// The PEM of the RFC 8032 TEST 1 key; `openssl pkey -pubout` on it
    /// prints MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=.
    const TEST1_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";
    /// The PEM of the RFC 7748 Alice key.
    const ALICE_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VuBCIEIHcHbQpzGKV9PBbBclGyZkXfTC+H68CZKrF3+6UduSwq\n\
        -----END PRIVATE KEY-----\n";

    fn write_with_mode(path: &Path, contents: &[u8], mode: u32) {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .expect("create test file");
        file.write_all(contents).expect("write test file");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn kid_is_the_first_16_bytes_of_sha256_over_the_raw_public_key() {
        // sha256(d75a98...511a) = 21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9
        let kid = KeyId::of(&hex32(RFC8032_TEST1_PUBLIC));
        assert_eq!(kid.0.to_vec(), hex("21fe31dfa154a261626bf854046fd227"));
        assert_eq!(
            IdentityKey::from_seed(&hex32(RFC8032_TEST1_SECRET)).kid(),
            kid
        );
    }

    #[test]
    fn kid_displays_and_debugs_as_32_lowercase_hex_digits() {
        let kid = KeyId([
            0x00, 0x01, 0xab, 0xcd, 0xef, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90,
            0xa0, 0xff,
        ]);
        assert_eq!(kid.to_string(), "0001abcdef102030405060708090a0ff");
        assert_eq!(format!("{kid:?}"), "0001abcdef102030405060708090a0ff");
    }

    #[test]
    fn rfc8032_test_1_and_test_2_keys_and_signatures_match() {
        let cases = [
            (
                RFC8032_TEST1_SECRET,
                RFC8032_TEST1_PUBLIC,
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                 5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                 085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (secret, public, message, signature) in cases {
            let key = IdentityKey::from_seed(&hex32(secret));
            assert_eq!(key.public().to_bytes().to_vec(), hex(public));
            let message = hex(message);
            let signature = hex(&signature.replace(' ', ""));
            assert_eq!(key.sign(&message).to_vec(), signature);
            let signature: [u8; 64] = signature.try_into().expect("64 bytes");
            assert!(key.public().verify(&message, &signature));
            assert!(!key.public().verify(b"other", &signature));
        }
    }

    #[test]
    fn rfc7748_section_5_2_x25519_vectors_match() {
        let cases = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
        ];
        for (scalar, u, output) in cases {
            let key = RecipientKey::from_bytes(&hex32(scalar));
            let shared = key.diffie_hellman(&X25519Public::from(hex32(u)));
            assert_eq!(shared.as_bytes().to_vec(), hex(output));
        }
    }

    #[test]
    fn rfc7748_section_6_1_diffie_hellman_matches() {
        let alice = RecipientKey::from_bytes(&hex32(RFC7748_ALICE_SECRET));
        let bob = RecipientKey::from_bytes(&hex32(RFC7748_BOB_SECRET));
        assert_eq!(
            alice.public().to_bytes().to_vec(),
            hex(RFC7748_ALICE_PUBLIC)
        );
        assert_eq!(bob.public().to_bytes().to_vec(), hex(RFC7748_BOB_PUBLIC));
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        let from_alice = alice.diffie_hellman(bob.public().x25519());
        let from_bob = bob.diffie_hellman(alice.public().x25519());
        assert_eq!(from_alice.as_bytes().to_vec(), hex(shared));
        assert_eq!(from_bob.as_bytes().to_vec(), hex(shared));
        assert!(from_alice.was_contributory());
    }

    #[test]
    fn public_keys_have_a_one_line_text_form_that_round_trips() {
        let identity = IdentityKey::from_seed(&hex32(RFC8032_TEST1_SECRET)).public();
        let text = identity.to_string();
        assert_eq!(text, "ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(text.len(), "ed25519:".len() + 43);
        assert_eq!(text.parse::<IdentityPublic>().expect("parses"), identity);
        assert_eq!(
            format!("{identity:?}"),
            "IdentityPublic(ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo)"
        );

        let recipient = RecipientKey::from_bytes(&hex32(RFC7748_ALICE_SECRET)).public();
        let text = recipient.to_string();
        assert_eq!(text, "x25519:hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo");
        assert_eq!(text.parse::<RecipientPublic>().expect("parses"), recipient);

        for _ in 0..20 {
            let key = IdentityKey::generate().expect("rng").public();
            assert_eq!(
                key.to_string().parse::<IdentityPublic>().expect("parses"),
                key
            );
            let key = RecipientKey::generate().expect("rng").public();
            assert_eq!(
                key.to_string().parse::<RecipientPublic>().expect("parses"),
                key
            );
        }
    }

    #[test]
    fn public_key_text_errors_say_what_is_wrong() {
        let good_ed = "ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let good_x = "x25519:hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo";

        let err = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
            .parse::<IdentityPublic>()
            .unwrap_err();
        assert!(matches!(err, KeyError::MissingPrefix { .. }), "{err}");
        assert!(err.to_string().contains("ed25519:"), "{err}");

        let err = good_x.parse::<IdentityPublic>().unwrap_err();
        assert!(matches!(err, KeyError::WrongPublicKeyType { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "expected an Ed25519 public key, found an X25519 public key"
        );
        let err = good_ed.parse::<RecipientPublic>().unwrap_err();
        assert!(matches!(err, KeyError::WrongPublicKeyType { .. }), "{err}");

        // Padding, the standard alphabet, whitespace and non-canonical
        // trailing bits are all refused.
        for bad in [
            "ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "ed25519: 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp",
        ] {
            let err = bad.parse::<IdentityPublic>().unwrap_err();
            assert!(matches!(err, KeyError::BadBase64 { .. }), "{bad}: {err}");
        }

        for found in [0, 1, 31, 33, 64] {
            let bad = format!("ed25519:{}", URL_SAFE_NO_PAD.encode(vec![7u8; found]));
            let err = bad.parse::<IdentityPublic>().unwrap_err();
            assert!(
                matches!(err, KeyError::WrongLength { found: f, .. } if f == found),
                "{bad}: {err}"
            );
        }
    }

    fn ed25519_problem(bytes: [u8; 32]) -> String {
        match IdentityPublic::from_bytes(&bytes) {
            Err(KeyError::InvalidPublicKey { problem, .. }) => problem.to_string(),
            other => panic!("expected InvalidPublicKey, got {other:?}"),
        }
    }

    #[test]
    fn ed25519_public_keys_off_the_curve_non_canonical_or_weak_are_refused() {
        // y = 2 is not the y of any curve point.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert!(ed25519_problem(off_curve).contains("not the encoding of a point"));

        // y = p + 1 encodes y = 1 (the identity) non-canonically.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert!(ed25519_problem(non_canonical).contains("non-canonical"));

        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(ed25519_problem(identity).contains("small-order"));

        let text = format!("ed25519:{}", URL_SAFE_NO_PAD.encode(identity));
        let err = text.parse::<IdentityPublic>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Ed25519 public key: small-order"),
            "{err}"
        );
    }

    #[test]
    fn x25519_public_keys_of_small_order_or_non_canonical_are_refused() {
        let p_minus = |sub: u8| {
            let mut b = [0xffu8; 32];
            b[0] = 0xed - sub;
            b[31] = 0x7f;
            b
        };
        let p_plus = |add: u8| {
            let mut b = p_minus(0);
            b[0] = 0xed + add;
            b
        };
        let small_order = [
            [0u8; 32],
            {
                let mut one = [0u8; 32];
                one[0] = 1;
                one
            },
            hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            hex32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
            p_minus(1),
        ];
        for bytes in small_order {
            let err = RecipientPublic::from_bytes(&bytes).unwrap_err();
            assert!(err.to_string().contains("small-order"), "{err}");
        }
        for bytes in [p_minus(0), p_plus(1), p_plus(5), {
            let mut high = hex32(RFC7748_ALICE_PUBLIC);
            high[31] |= 0x80;
            high
        }] {
            let err = RecipientPublic::from_bytes(&bytes).unwrap_err();
            assert!(err.to_string().contains("non-canonical"), "{err}");
        }
        let text = format!("x25519:{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        let err = text.parse::<RecipientPublic>().unwrap_err();
        assert!(err.to_string().contains("all-zero shared secret"), "{err}");
        assert!(RecipientPublic::from_bytes(&hex32(RFC7748_BOB_PUBLIC)).is_ok());
    }

    #[test]
    fn private_key_pem_is_the_fixed_rfc8410_form() {
        let pem = encode_pem(Kind::Ed25519, &hex32(RFC8032_TEST1_SECRET));
        assert_eq!(std::str::from_utf8(&pem).expect("ascii"), TEST1_PEM);
        assert_eq!(pem.len(), 119);
        let pem = encode_pem(Kind::X25519, &hex32(RFC7748_ALICE_SECRET));
        assert_eq!(std::str::from_utf8(&pem).expect("ascii"), ALICE_PEM);

        let der = STANDARD
            .decode("MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g")
            .expect("base64");
        assert_eq!(der[..16], PKCS8_ED25519_PREFIX);
        assert_eq!(der[16..], hex(RFC8032_TEST1_SECRET));
    }

    #[test]
    fn save_new_creates_a_0600_file_that_load_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = IdentityKey::generate().expect("rng");
        let path = dir.path().join("identity.pem");
        identity.save_new(&path).expect("save");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = IdentityKey::load(&path).expect("load");
        assert_eq!(loaded.public(), identity.public());

        let recipient = RecipientKey::generate().expect("rng");
        let path = dir.path().join("recipient.pem");
        recipient.save_new(&path).expect("save");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            RecipientKey::load(&path).expect("load").public(),
            recipient.public()
        );
    }

    #[test]
    fn load_reads_the_fixed_vectors_and_a_file_without_a_final_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("test1.pem");
        write_with_mode(&path, TEST1_PEM.as_bytes(), 0o600);
        let key = IdentityKey::load(&path).expect("load");
        assert_eq!(key.public().to_bytes().to_vec(), hex(RFC8032_TEST1_PUBLIC));

        let path = dir.path().join("alice.pem");
        write_with_mode(&path, ALICE_PEM.trim_end().as_bytes(), 0o400);
        let key = RecipientKey::load(&path).expect("load");
        assert_eq!(key.public().to_bytes().to_vec(), hex(RFC7748_ALICE_PUBLIC));
    }

    #[test]
    fn save_new_refuses_to_overwrite_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        fs::write(&path, b"precious").expect("write");
        let err = IdentityKey::generate()
            .expect("rng")
            .save_new(&path)
            .unwrap_err();
        assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        assert_eq!(fs::read(&path).expect("read"), b"precious");

        let other = dir.path().join("other.pem");
        RecipientKey::generate()
            .expect("rng")
            .save_new(&other)
            .expect("save");
        let err = RecipientKey::generate()
            .expect("rng")
            .save_new(&other)
            .unwrap_err();
        assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err}");
    }

    #[test]
    fn load_refuses_a_key_file_that_group_or_others_can_access() {
        let dir = tempfile::tempdir().expect("tempdir");
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610] {
            let path = dir.path().join(format!("key-{mode:o}.pem"));
            write_with_mode(&path, TEST1_PEM.as_bytes(), mode);
            let err = IdentityKey::load(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::InsecurePermissions { mode: m, .. } if m == mode),
                "{err}"
            );
            let message = err.to_string();
            let shown = path.display().to_string();
            assert!(message.contains(&format!("chmod 600 {shown}")), "{message}");
            assert!(message.contains(&format!("mode {mode:03o}")), "{message}");
        }
    }

    #[test]
    fn load_names_the_key_type_when_given_the_other_kind_of_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let x25519 = dir.path().join("recipient.pem");
        write_with_mode(&x25519, ALICE_PEM.as_bytes(), 0o600);
        let err = IdentityKey::load(&x25519).unwrap_err();
        assert!(matches!(err, KeyError::WrongKeyType { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "key file {} holds an X25519 recipient (decryption) key, \
                 but an Ed25519 identity (signing) key is needed here",
                x25519.display()
            )
        );

        let ed25519 = dir.path().join("identity.pem");
        write_with_mode(&ed25519, TEST1_PEM.as_bytes(), 0o600);
        let err = RecipientKey::load(&ed25519).unwrap_err();
        assert!(
            err.to_string().contains("holds an Ed25519 identity"),
            "{err}"
        );

        let public = dir.path().join("public.pem");
        write_with_mode(
            &public,
            b"-----BEGIN PUBLIC KEY-----\n\
              MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n\
              -----END PUBLIC KEY-----\n",
            0o600,
        );
        let err = IdentityKey::load(&public).unwrap_err();
        assert!(err.to_string().contains("holds a public key"), "{err}");
    }

    #[test]
    fn load_reports_a_missing_file_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.pem");
        let err = RecipientKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }

    #[test]
    fn load_refuses_malformed_key_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g";
        // A PKCS#8 v2 (with public key) or a different OID changes the DER.
        let mut wrong_oid = STANDARD.decode(body).expect("base64");
        wrong_oid[11] = 0x71; // 1.3.101.113 = Ed448
        let wrong_oid = STANDARD.encode(&wrong_oid);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "expected a PEM file"),
            ("garbage".into(), "expected a PEM file"),
            (
                format!(
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}\n-----END ENCRYPTED PRIVATE KEY-----\n"
                ),
                "encrypted",
            ),
            (
                format!("-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----\n"),
                "PRIVATE KEY",
            ),
            (
                format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n\n"),
                "three lines",
            ),
            (
                format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\nextra\n"),
                "three lines",
            ),
            (
                format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PUBLIC KEY-----\n"),
                "-----END PRIVATE KEY-----",
            ),
            (
                format!(
                    "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                    &body[..60]
                ),
                "64 characters",
            ),
            (
                format!(
                    "-----BEGIN PRIVATE KEY-----\n{}*\n-----END PRIVATE KEY-----\n",
                    &body[..63]
                ),
                "not valid base64",
            ),
            (
                format!("-----BEGIN PRIVATE KEY-----\n{wrong_oid}\n-----END PRIVATE KEY-----\n"),
                "not an RFC 8410",
            ),
            ("x".repeat(MAX_KEY_FILE_LEN + 1), "too large"),
            (TEST1_PEM.replace('\n', "\r\n"), "CRLF"),
        ];
        for (i, (contents, expected)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("bad-{i}.pem"));
            write_with_mode(&path, contents.as_bytes(), 0o600);
            let err = IdentityKey::load(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::MalformedFile { .. }),
                "case {i}: {err}"
            );
            let message = err.to_string();
            assert!(message.contains(expected), "case {i}: {message}");
            assert!(
                message.contains(&*path.to_string_lossy()),
                "case {i}: {message}"
            );
        }

        let err = IdentityKey::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn debug_of_a_secret_key_shows_only_its_kid() {
        let identity = IdentityKey::from_seed(&hex32(RFC8032_TEST1_SECRET));
        assert_eq!(
            format!("{identity:?}"),
            "IdentityKey { kid: 21fe31dfa154a261626bf854046fd227 }"
        );
        let recipient = RecipientKey::from_bytes(&hex32(RFC7748_ALICE_SECRET));
        let shown = format!("{recipient:?}");
        assert_eq!(
            shown,
            format!("RecipientKey {{ kid: {} }}", recipient.kid())
        );
        assert!(!shown.contains("77076d"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = IdentityKey::generate().expect("rng");
        let b = IdentityKey::generate().expect("rng");
        assert_ne!(a.public(), b.public());
        let a = RecipientKey::generate().expect("rng");
        let b = RecipientKey::generate().expect("rng");
        assert_ne!(a.public(), b.public());
    }
}
