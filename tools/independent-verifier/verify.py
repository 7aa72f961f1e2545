#!/usr/bin/env python3
"""An independent verifier for vitalgate's ledger proofs.

Written from docs/FORMAT.md (and the RFCs it cites) alone, with ordinary
libraries: cbor2 for CBOR, cryptography for Ed25519, X25519, HKDF, AES key
wrap and ChaCha20/Poly1305. Nothing here is shared with the Rust code; each
function names the FORMAT.md section it implements, so a disagreement between
this program and `vitalgate check-proof` is a disagreement with the document.

    verify.py vectors
        checks FORMAT.md's ledger test vectors.
    verify.py proof --gateway-key GATEWAY.pub [--identity RECIPIENT.key] PROOF.json...
        checks each proof as FORMAT.md "Proofs" says (a record proof of
        readings or of an alert message, by the record's content type); with
        --identity, also unwraps the block's content key, derives the record
        key, and checks it is the disclosed one.

Exit status: 0 when everything holds, 1 when something does not, 2 on usage
or I/O errors.
"""

import base64
import decimal
import hashlib
import io
import json
import math
import re
import struct
import sys
from datetime import datetime, timedelta, timezone

try:
    import cbor2
    from cryptography.exceptions import InvalidSignature, InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.keywrap import (
        InvalidUnwrap,
        aes_key_unwrap,
        aes_key_wrap,
    )
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
except ImportError as missing:  # pragma: no cover - environment problem
    sys.stderr.write(
        "verify.py needs python3-cbor2 and python3-cryptography "
        f"(apt-get install python3-cbor2 python3-cryptography): {missing}\n"
    )
    sys.exit(2)


class Invalid(Exception):
    """The input does not follow FORMAT.md; the message says where."""


def need(condition, message):
    if not condition:
        raise Invalid(message)


def sha256(data):
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------------------
# FORMAT.md "Common values"
# ---------------------------------------------------------------------------

# (name, LOINC, UCUM unit); the packing's vital code is the 1-based position
# (FORMAT.md "Packed readings", Shapes: vital codes 1-10).
VITALS = [
    ("heart_rate", "8867-4", "/min"),
    ("pulse_rate", "8889-8", "/min"),
    ("spo2", "59408-5", "%"),
    ("respiratory_rate", "9279-1", "/min"),
    ("body_temperature", "8310-5", "Cel"),
    ("systolic_bp", "8480-6", "mm[Hg]"),
    ("diastolic_bp", "8462-4", "mm[Hg]"),
    ("mean_arterial_pressure", "8478-0", "mm[Hg]"),
    ("perfusion_index", "61006-3", "%"),
    ("rr_interval", "8637-4", "ms"),
]
VITAL_CODE = {name: i + 1 for i, (name, _, _) in enumerate(VITALS)}

QUALITY_FLAGS = [
    "impossible",
    "sensor_off",
    "searching",
    "low_perfusion",
    "artifact",
    "low_signal",
    "device_alarm",
    "device_fault",
    "stale",
    "clock_unsynced",
]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def format_time(ms):
    """FORMAT.md "Common values", Time: ms since the epoch -> YYYY-MM-DDTHH:MM:SS.mmmZ."""
    try:
        t = EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise Invalid(f"time {ms} ms is outside the years 1-9999") from None
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(text):
    """FORMAT.md "Common values", Time: RFC 3339 (any offset) -> ms since the epoch."""
    m = _RFC3339.match(text) if isinstance(text, str) else None
    need(m, f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, offset = m.group(7) or ".0", m.group(8)
    tz = timezone.utc
    if offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        t = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError as e:
        raise Invalid(f"not an RFC 3339 time: {text!r} ({e})") from None
    millis = decimal.Decimal(fraction) * 1000
    need(millis == millis.to_integral_value(), f"time {text!r} is finer than a millisecond")
    delta = t - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + int(millis)


def quality_names(bits):
    """FORMAT.md "Common values", Quality: bits -> flag names in bit order."""
    need(0 <= bits < 1 << len(QUALITY_FLAGS), f"quality bits {bits:#x} name no known flag")
    return [name for i, name in enumerate(QUALITY_FLAGS) if bits >> i & 1]


# ---------------------------------------------------------------------------
# FORMAT.md "Keys"
# ---------------------------------------------------------------------------

P = 2**255 - 19  # the field of Curve25519 / edwards25519
ED_D = -121665 * pow(121666, P - 2, P) % P
ED_L = 2**252 + 27742317777372353535851937790883648493  # the group order
SQRT_M1 = pow(2, (P - 1) // 4, P)

X25519_SMALL_ORDER = {
    0,
    1,
    P - 1,
    int.from_bytes(
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), "little"
    ),
    int.from_bytes(
        bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"), "little"
    ),
}

PKCS8_PREFIX = {
    "ed25519": bytes.fromhex("302e020100300506032b657004220420"),
    "x25519": bytes.fromhex("302e020100300506032b656e04220420"),
}


def kid(public_key):
    """FORMAT.md "Key id (kid)": the first 16 bytes of SHA-256 over the raw public key."""
    need(len(public_key) == 32, "a public key is 32 bytes")
    return sha256(public_key)[:16]


def b64url_encode(raw):
    """RFC 4648 §5 base64url without padding (FORMAT.md "Public keys as text", "Record keys")."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode_32(text):
    """Strict unpadded base64url of exactly 32 bytes: one text per key (43 characters)."""
    need(isinstance(text, str) and re.fullmatch(r"[A-Za-z0-9_-]{43}", text), "not 43 base64url characters")
    raw = base64.urlsafe_b64decode(text + "=")
    need(b64url_encode(raw) == text, "non-zero unused bits in the last base64url character")
    return raw


def ed25519_decode_point(encoded):
    """RFC 8032 §5.1.3 point decoding, refusing non-canonical encodings
    (y >= p, or x = 0 with the sign bit set), as FORMAT.md "Public keys as text" asks.
    Returns affine (x, y)."""
    need(len(encoded) == 32, "an Ed25519 point is 32 bytes")
    y = int.from_bytes(encoded, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    need(y < P, "non-canonical Ed25519 point (y >= p)")
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        need(sign == 0, "non-canonical Ed25519 point (x = 0 with the sign bit set)")
        return (0, y)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    need((x * x - x2) % P == 0, "not an Ed25519 curve point")
    if x & 1 != sign:
        x = P - x
    return (x, y)


def _ed25519_add(a, b):
    (x1, y1), (x2, y2) = a, b
    t = ED_D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P
    return (x3, y3)


def ed25519_is_small_order(point):
    """True for the 8 points of order dividing 8 (8 × point is the identity)."""
    for _ in range(3):
        point = _ed25519_add(point, point)
    return point == (0, 1)


def parse_ed25519_public_text(text):
    """FORMAT.md "Public keys as text": `ed25519:` + 43 base64url characters."""
    need(isinstance(text, str) and text.startswith("ed25519:"), "an identity key's text starts with 'ed25519:'")
    raw = b64url_decode_32(text[len("ed25519:"):])
    need(not ed25519_is_small_order(ed25519_decode_point(raw)), "Ed25519 public key of small order")
    return raw


def check_x25519_public(raw):
    """FORMAT.md "Public keys as text" (X25519 rules, also applied to ephemeral keys):
    bit 255 clear, u < 2^255 - 19, not one of the points of small order."""
    need(len(raw) == 32, "an X25519 public key is 32 bytes")
    u = int.from_bytes(raw, "little")
    need(u >> 255 == 0, "X25519 public key with bit 255 set")
    need(u < P, "X25519 public key >= 2^255 - 19")
    need(u not in X25519_SMALL_ORDER, "X25519 public key of small order")
    return raw


def parse_x25519_public_text(text):
    """FORMAT.md "Public keys as text": `x25519:` + 43 base64url characters."""
    need(isinstance(text, str) and text.startswith("x25519:"), "a recipient key's text starts with 'x25519:'")
    return check_x25519_public(b64url_decode_32(text[len("x25519:"):]))


def public_key_text(kind, raw):
    """FORMAT.md "Public keys as text"."""
    return f"{kind}:{b64url_encode(raw)}"


def parse_private_key_file(text, kind):
    """FORMAT.md "Private key files": three lines of PEM around the 48 DER bytes of
    PKCS#8 v1; returns the 32-byte seed (Ed25519) or scalar (X25519)."""
    if text.endswith("\n"):
        text = text[:-1]
    lines = text.split("\n")
    need(len(lines) == 3, "a private key file is exactly three lines")
    need(lines[0] == "-----BEGIN PRIVATE KEY-----" and lines[2] == "-----END PRIVATE KEY-----",
         "a private key file is a PEM 'PRIVATE KEY'")
    need(re.fullmatch(r"[A-Za-z0-9+/]{64}", lines[1]), "a private key file's base64 line is 64 characters")
    der = base64.b64decode(lines[1], validate=True)
    need(der[:16] == PKCS8_PREFIX[kind], f"not an unencrypted PKCS#8 v1 {kind} key")
    return der[16:]


def private_key_file_text(kind, raw):
    """FORMAT.md "Private key files": the 119-byte file for a 32-byte private key."""
    b64 = base64.b64encode(PKCS8_PREFIX[kind] + raw).decode("ascii")
    return f"-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"


def ed25519_public(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_public(scalar):
    return X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# ---------------------------------------------------------------------------
# FORMAT.md "COSE structures": deterministic CBOR
# ---------------------------------------------------------------------------


def cbor_encode(obj):
    """RFC 8949 §4.2.1 deterministic encoding. cbor2's canonical mode sorts map
    keys length-first (RFC 7049); every map in this profile has one-byte keys
    only (0-11, -1, -2), for which that is the same as RFC 8949's bytewise order."""
    return cbor2.dumps(obj, canonical=True)


def cbor_decode_strict(data, what):
    """Decode exactly one CBOR item and refuse it unless re-encoding gives the same
    bytes (FORMAT.md "COSE structures": "re-encode what was parsed and compare")."""
    stream = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(stream).decode()
    except Exception as e:  # cbor2 raises several types on malformed input
        raise Invalid(f"{what}: not CBOR ({e})") from None
    need(stream.tell() == len(data), f"{what}: bytes after the CBOR item")
    need(cbor_encode(obj) == data, f"{what}: not the deterministic encoding")
    return obj


def is_uint(x):
    return type(x) is int and x >= 0


def is_int(x):
    return type(x) is int


def is_bstr(x, length=None):
    return type(x) is bytes and (length is None or len(x) == length)


# ---------------------------------------------------------------------------
# FORMAT.md "Block signature (COSE_Sign1)"
# ---------------------------------------------------------------------------

SIGN1_PROTECTED = bytes.fromhex("a10132")  # {1: -19}


def sig_structure(payload):
    """RFC 9052 §4.4 Sig_structure with empty external_aad (FORMAT.md "Block signature")."""
    return cbor_encode(["Signature1", SIGN1_PROTECTED, b"", payload])


def cose_sign1(seed, payload):
    """Sign `payload` as FORMAT.md "Block signature (COSE_Sign1)" (used for the vectors)."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    signature = key.sign(sig_structure(payload))
    return cbor_encode(cbor2.CBORTag(18, [SIGN1_PROTECTED, {4: kid(ed25519_public(seed))}, payload, signature]))


def ed25519_verify_strict(public_key, signature, message):
    """RFC 8032 verification with FORMAT.md's strict rules: S < L, canonical R,
    R and A not of small order; then the signature equation (cryptography)."""
    need(len(signature) == 64, "an Ed25519 signature is 64 bytes")
    need(int.from_bytes(signature[32:], "little") < ED_L, "bad signature (S >= L)")
    try:
        r_point = ed25519_decode_point(signature[:32])
    except Invalid as e:
        raise Invalid(f"bad signature (R: {e})") from None
    need(not ed25519_is_small_order(r_point), "bad signature (R of small order)")
    need(not ed25519_is_small_order(ed25519_decode_point(public_key)), "Ed25519 public key of small order")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        raise Invalid("bad signature") from None


def cose_sign1_verify(message, public_key, what):
    """FORMAT.md "Block signature (COSE_Sign1)", Verifying: returns the payload."""
    obj = cbor_decode_strict(message, what)
    need(isinstance(obj, cbor2.CBORTag) and obj.tag == 18, f"{what}: not a tagged COSE_Sign1")
    need(isinstance(obj.value, list) and len(obj.value) == 4, f"{what}: a COSE_Sign1 is 4 items")
    protected, unprotected, payload, signature = obj.value
    need(protected == SIGN1_PROTECTED, f"{what}: protected header is not {{1: -19}} (Ed25519)")
    need(isinstance(unprotected, dict) and list(unprotected) == [4], f"{what}: unprotected header is not {{4: kid}}")
    need(is_bstr(unprotected[4], 16), f"{what}: kid is not 16 bytes")
    need(is_bstr(payload), f"{what}: payload is not an embedded byte string")
    need(is_bstr(signature, 64), f"{what}: signature is not 64 bytes")
    need(unprotected[4] == kid(public_key), f"{what}: signed by kid {unprotected[4].hex()}, not the gateway key's")
    try:
        ed25519_verify_strict(public_key, signature, sig_structure(payload))
    except Invalid as e:
        raise Invalid(f"{what}: {e}") from None
    return payload


# ---------------------------------------------------------------------------
# FORMAT.md "Block header" and "Signed tree head"
# ---------------------------------------------------------------------------

BLOCK_KIND = "vitalgate/block/1"
TREE_HEAD_KIND = "vitalgate/tree-head/1"
BLOCK_FIELDS = ["kind", "gateway", "height", "prev", "first", "last", "readings",
                "records", "records_root", "recipients", "sealed_at", "reason"]
TREE_HEAD_FIELDS = ["kind", "gateway", "size", "root", "time"]
REASONS = ("size", "age", "shutdown", "recovery")


def encode_block_header(h):
    """FORMAT.md "Block header": the deterministic CBOR map, keys 0-11."""
    values = [h[name] for name in BLOCK_FIELDS]
    values[BLOCK_FIELDS.index("recipients")] = [cbor2.loads(r) for r in h["recipients"]]
    return cbor_encode(dict(enumerate(values)))


def decode_block_header(payload):
    """FORMAT.md "Block header": decode and check every field's type."""
    m = cbor_decode_strict(payload, "block header")
    need(isinstance(m, dict) and list(m) == list(range(12)), "block header: keys are not exactly 0-11")
    h = {name: m[i] for i, name in enumerate(BLOCK_FIELDS)}
    need(h["kind"] == BLOCK_KIND, f"block header: kind is {h['kind']!r}")
    need(is_bstr(h["gateway"], 16), "block header: gateway is not a 16-byte kid")
    need(is_uint(h["height"]), "block header: height is not a uint")
    need(is_bstr(h["prev"], 32), "block header: prev is not 32 bytes")
    need(is_int(h["first"]) and is_int(h["last"]), "block header: first/last are not ints")
    need(is_uint(h["readings"]), "block header: readings is not a uint")
    need(is_uint(h["records"]) and h["records"] < 2**32, "block header: records is not a uint < 2^32")
    need(is_bstr(h["records_root"], 32), "block header: records root is not 32 bytes")
    need(isinstance(h["recipients"], list), "block header: recipients is not an array")
    need(is_int(h["sealed_at"]), "block header: sealed at is not an int")
    need(h["reason"] in REASONS, f"block header: reason {h['reason']!r}")
    # Each recipient is kept as its own bytes (its encoding is part of the
    # header's, which was checked to be deterministic as a whole).
    h["recipients"] = [cbor_encode(r) for r in h["recipients"]]
    return h


def block_hash(header_cose):
    """FORMAT.md "Block header": SHA-256 over the complete COSE_Sign1 bytes."""
    return sha256(header_cose)


def encode_tree_head(t):
    """FORMAT.md "Signed tree head": the deterministic CBOR map, keys 0-4."""
    return cbor_encode({i: t[name] for i, name in enumerate(TREE_HEAD_FIELDS)})


def decode_tree_head(payload):
    """FORMAT.md "Signed tree head": decode and check every field's type."""
    m = cbor_decode_strict(payload, "tree head")
    need(isinstance(m, dict) and list(m) == list(range(5)), "tree head: keys are not exactly 0-4")
    t = {name: m[i] for i, name in enumerate(TREE_HEAD_FIELDS)}
    need(t["kind"] == TREE_HEAD_KIND, f"tree head: kind is {t['kind']!r}")
    need(is_bstr(t["gateway"], 16), "tree head: gateway is not a 16-byte kid")
    need(is_uint(t["size"]), "tree head: size is not a uint")
    need(is_bstr(t["root"], 32), "tree head: root is not 32 bytes")
    need(is_int(t["time"]), "tree head: time is not an int")
    return t


# ---------------------------------------------------------------------------
# FORMAT.md "Content key and recipients (COSE_recipient)"
# ---------------------------------------------------------------------------

RECIPIENT_PROTECTED = bytes.fromhex("a101381e")  # {1: -31}, ECDH-ES + A256KW


def kdf_context():
    """RFC 9053 §5.2 COSE_KDF_Context for A256KW (AlgorithmID -5), 256 bits,
    the recipient's protected header (FORMAT.md step 2)."""
    return cbor_encode([-5, [None, None, None], [None, None, None], [256, RECIPIENT_PROTECTED]])


def key_encryption_key(z):
    """FORMAT.md step 2: HKDF-SHA-256, salt none (32 zero bytes), info = context, L = 32."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=kdf_context()).derive(z)


def x25519(scalar, u):
    """RFC 7748 X25519, refusing an all-zero result (FORMAT.md step 1)."""
    try:
        z = X25519PrivateKey.from_private_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(u))
    except ValueError:
        raise Invalid("X25519 gives all zeros") from None
    need(z != bytes(32), "X25519 gives all zeros")
    return z


def wrap_recipient(cek, recipient_public, ephemeral_secret):
    """FORMAT.md "Content key and recipients": one COSE_recipient (used for the vectors)."""
    z = x25519(ephemeral_secret, recipient_public)
    wrapped = aes_key_wrap(key_encryption_key(z), cek)
    ephemeral = {1: 1, -1: 4, -2: x25519_public(ephemeral_secret)}
    return cbor_encode([RECIPIENT_PROTECTED, {4: kid(recipient_public), -1: ephemeral}, wrapped])


def decode_recipient(data):
    """FORMAT.md "Content key and recipients": decode one COSE_recipient strictly;
    returns (kid, ephemeral public key, wrapped CEK)."""
    obj = cbor_decode_strict(data, "COSE_recipient")
    need(isinstance(obj, list) and len(obj) == 3, "COSE_recipient: not 3 items")
    protected, unprotected, wrapped = obj
    need(protected == RECIPIENT_PROTECTED, "COSE_recipient: protected header is not {1: -31}")
    need(isinstance(unprotected, dict) and list(unprotected) == [4, -1], "COSE_recipient: unprotected is not {4, -1}")
    need(is_bstr(unprotected[4], 16), "COSE_recipient: kid is not 16 bytes")
    key = unprotected[-1]
    need(isinstance(key, dict) and list(key) == [1, -1, -2] and key[1] == 1 and key[-1] == 4
         and type(key[1]) is int and type(key[-1]) is int,
         "COSE_recipient: ephemeral key is not an X25519 OKP key")
    need(is_bstr(key[-2], 32), "COSE_recipient: ephemeral key is not 32 bytes")
    need(is_bstr(wrapped, 40), "COSE_recipient: wrapped key is not 40 bytes")
    need(len(data) == 108, "COSE_recipient: not 108 bytes")
    return unprotected[4], key[-2], wrapped


def unwrap_content_key(recipients, recipient_secret):
    """FORMAT.md "Content key and recipients", Unwrapping: the first recipient
    that decodes strictly and names our kid; check its ephemeral key, X25519,
    KEK, AES-256-KW unwrap."""
    my_kid = kid(x25519_public(recipient_secret))
    for r in recipients:
        try:
            their_kid, ephemeral, wrapped = decode_recipient(r)
        except Invalid:
            continue  # another reader's business
        if their_kid == my_kid:
            break
    else:
        raise Invalid(f"the block is not wrapped for recipient kid {my_kid.hex()}")
    check_x25519_public(ephemeral)
    try:
        return aes_key_unwrap(key_encryption_key(x25519(recipient_secret, ephemeral)), wrapped)
    except InvalidUnwrap:
        raise Invalid("AES key unwrap failed (not wrapped for this key, or altered)") from None


# ---------------------------------------------------------------------------
# FORMAT.md "Record keys" and "Records (COSE_Encrypt0)"
# ---------------------------------------------------------------------------

ENCRYPT0_PROTECTED = bytes.fromhex("a1011818")  # {1: 24}, ChaCha20/Poly1305


def record_key_info(height, index):
    """FORMAT.md "Record keys": "vitalgate/record/v1" || u64 BE height || u32 BE index."""
    return b"vitalgate/record/v1" + struct.pack(">QI", height, index)


def record_key(cek, height, index):
    """FORMAT.md "Record keys": HKDF-SHA-256 to 44 bytes -> (key, iv)."""
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=None, info=record_key_info(height, index)).derive(cek)
    return okm[:32], okm[32:]


def record_aad(gateway_kid, height, index):
    """FORMAT.md "Records": the Enc_structure ["Encrypt0", protected, external_aad]."""
    external_aad = cbor_encode([gateway_kid, height, index])
    return cbor_encode(["Encrypt0", ENCRYPT0_PROTECTED, external_aad])


def encrypt_record(key, iv, gateway_kid, height, index, plaintext):
    """FORMAT.md "Records (COSE_Encrypt0)" (used for the vectors)."""
    ciphertext = ChaCha20Poly1305(key).encrypt(iv, plaintext, record_aad(gateway_kid, height, index))
    return cbor_encode(cbor2.CBORTag(16, [ENCRYPT0_PROTECTED, {5: iv}, ciphertext]))


def decrypt_record(record, key, gateway_kid, height, index, derived_iv=None):
    """FORMAT.md "Records", Decrypting: strict decoding, then ChaCha20/Poly1305 with
    the record's IV (which must equal the derived IV when the key was derived)."""
    obj = cbor_decode_strict(record, "record")
    need(isinstance(obj, cbor2.CBORTag) and obj.tag == 16, "record: not a tagged COSE_Encrypt0")
    need(isinstance(obj.value, list) and len(obj.value) == 3, "record: a COSE_Encrypt0 is 3 items")
    protected, unprotected, ciphertext = obj.value
    need(protected == ENCRYPT0_PROTECTED, "record: protected header is not {1: 24}")
    need(isinstance(unprotected, dict) and list(unprotected) == [5], "record: unprotected header is not {5: iv}")
    iv = unprotected[5]
    need(is_bstr(iv, 12), "record: IV is not 12 bytes")
    need(is_bstr(ciphertext) and len(ciphertext) >= 16, "record: ciphertext shorter than its tag")
    need(derived_iv is None or iv == derived_iv, "record: IV is not the derived IV")
    try:
        return ChaCha20Poly1305(key).decrypt(iv, ciphertext, record_aad(gateway_kid, height, index))
    except InvalidTag:
        raise Invalid("record: decryption failed (wrong key, or the record or its place altered)") from None


# ---------------------------------------------------------------------------
# FORMAT.md "Record contents"
# ---------------------------------------------------------------------------

CONTENT_READINGS = 0x02  # the plaintext, whole, is "Packed readings"
CONTENT_ALERT = 0x20  # an alert record
MAX_ALERT_BYTES = 65536
MAX_ALERT_DEPTH = 32


def _refuse_json_constant(name):
    # Python's json accepts NaN, Infinity and -Infinity, which are not JSON.
    raise Invalid(f"alert message: {name} is not JSON")


def check_alert_message(message):
    """FORMAT.md "Alert record", rules 1-6 for the message. Returns it as text."""
    need(len(message) <= MAX_ALERT_BYTES, f"alert message: {len(message)} bytes, over {MAX_ALERT_BYTES}")
    try:
        text = message.decode("utf-8")  # strict: no overlong forms, surrogates or values over U+10FFFF
    except UnicodeDecodeError as e:
        raise Invalid(f"alert message: not UTF-8 (byte {e.start})") from None
    need(message[:1] == b"{" and message[-1:] == b"}", "alert message: does not start with { and end with }")
    need(b"\n" not in message and b"\r" not in message, "alert message: holds a line break")
    # Rule 5: depth, counting { and [ outside strings.
    depth, in_string, escaped = 0, False, False
    for i, b in enumerate(message):
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x7B, 0x5B):
            depth += 1
            need(depth <= MAX_ALERT_DEPTH, f"alert message: nested deeper than {MAX_ALERT_DEPTH} at byte {i}")
        elif b in (0x7D, 0x5D):
            depth -= 1
    # Rule 6: the grammar only. Numbers are kept as text (no conversion can
    # fail or lose anything), constants refused.
    try:
        value = json.loads(text, parse_int=str, parse_float=str, parse_constant=_refuse_json_constant)
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise Invalid(f"alert message: not JSON: {e}") from None
    need(isinstance(value, dict), "alert message: not a JSON object")
    return text


def encode_alert_record(time_ms, message):
    """FORMAT.md "Alert record": 0x20 || time (i64 BE) || message."""
    return bytes([CONTENT_ALERT]) + struct.pack(">q", time_ms) + message


def decode_record_content(plaintext, stats=None):
    """FORMAT.md "Record contents": dispatch on the first byte.
    Returns ("readings", [Reading]) or ("alert", (time ms, message bytes))."""
    need(len(plaintext) > 0, "record content: empty plaintext")
    kind = plaintext[0]
    if kind == CONTENT_READINGS:
        readings = unpack_readings(plaintext, stats)
        need(pack_readings(readings) == plaintext, "packed readings: decoded, but re-encode to other bytes")
        return "readings", readings
    if kind == CONTENT_ALERT:
        need(len(plaintext) >= 9, "alert record: too short for its time")
        (time_ms,) = struct.unpack(">q", plaintext[1:9])
        message = plaintext[9:]
        check_alert_message(message)
        return "alert", (time_ms, message)
    raise Invalid(f"record content: unknown content type 0x{kind:02x}")


# ---------------------------------------------------------------------------
# FORMAT.md "Packed readings"
# ---------------------------------------------------------------------------

U64 = 1 << 64
CODE_ORDER = [0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
RAW = 11
POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]  # exact binary64 values
RR_UNIT = 0.9765625  # 1/1024 s in ms, exact


def wrap64(n):
    """Signed 64-bit two's complement wrap (FORMAT.md "Running state")."""
    n %= U64
    return n - U64 if n >= 1 << 63 else n


def f64_bits(v):
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def mantissa_range(code):
    """FORMAT.md "Value codes": |m| <= 2^53 (codes 0-9), 2^46 (code 10)."""
    return 2**46 if code == 10 else 2**53


def value_of(code, m):
    """FORMAT.md "Value codes": m / 10^k (one rounded division) or m × 0.9765625."""
    return float(m) * RR_UNIT if code == 10 else float(m) / POW10[code]


def mantissa(v, code):
    """FORMAT.md "Value codes": the mantissa of v under a numeric code, or None."""
    x = v / RR_UNIT if code == 10 else v * POW10[code]
    if math.isnan(x) or abs(x) > mantissa_range(code):
        return None
    # Round to the nearest integer, halves away from zero, exactly.
    m = int(decimal.Decimal(x).to_integral_value(rounding=decimal.ROUND_HALF_UP))
    return m if f64_bits(value_of(code, m)) == f64_bits(v) else None


def column_code(values):
    """FORMAT.md "Value codes": the first code of 0, 10, 1..9, 11 that fits every value."""
    for code in CODE_ORDER:
        if code == RAW or all(mantissa(v, code) is not None for v in values):
            return code
    raise AssertionError("unreachable")


def write_varint(out, u):
    """FORMAT.md "Integers": unsigned LEB128 of a 64-bit value."""
    assert 0 <= u < U64
    while u >= 0x80:
        out.append(u & 0x7F | 0x80)
        u >>= 7
    out.append(u)


def zigzag(n):
    """FORMAT.md "Integers", svarint: (n << 1) XOR (n >> 63), 64-bit."""
    return ((n << 1) ^ (n >> 63)) % U64


def unzigzag(u):
    """FORMAT.md "Integers", svarint back: (u >> 1) XOR -(u AND 1)."""
    return (u >> 1) ^ -(u & 1)


class Reader:
    """A cursor over a packed record that rejects reading past its end."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        need(n <= self.remaining(), "packed readings: input ends inside a field")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self):
        return self.take(1)[0]

    def varint(self):
        """FORMAT.md "Integers": canonical varint (shortest, at most 10 bytes, 64 bits)."""
        u = 0
        for i in range(10):
            b = self.u8()
            u |= (b & 0x7F) << (7 * i)
            if b & 0x80 == 0:
                need(b != 0 or i == 0, "packed readings: varint not in its shortest form")
                need(i < 9 or b == 1, "packed readings: varint over 64 bits")
                return u
        raise Invalid("packed readings: varint over 10 bytes")

    def svarint(self):
        return unzigzag(self.varint())

    def count(self, bytes_each, what):
        n = self.varint()
        need(n * bytes_each <= self.remaining(), f"packed readings: {what} count {n} larger than the input")
        return n


class Reading:
    """One reading: FORMAT.md "Reading (JSON lines)" without unit and LOINC (implied by the vital)."""

    __slots__ = ("device", "patient", "vital", "value", "gateway_time", "device_time", "quality")

    def __init__(self, device, patient, vital, value, gateway_time, device_time, quality):
        self.device, self.patient, self.vital, self.value = device, patient, vital, value
        self.gateway_time, self.device_time, self.quality = gateway_time, device_time, quality

    def key(self):
        """Comparable form; the value by its 64 bits, so -0.0 != 0.0 and NaN payloads count."""
        return (self.device, self.patient, self.vital, f64_bits(self.value),
                self.gateway_time, self.device_time, self.quality)

    def row_key(self):
        """FORMAT.md "Rows": what readings of one row share."""
        return (self.device, self.patient, self.gateway_time, self.device_time, self.quality)

    def __repr__(self):
        return (f"{self.device}/{self.patient} {self.vital}={self.value!r} "
                f"gw={self.gateway_time} dev={self.device_time} q={self.quality}")


class TimeState:
    """FORMAT.md "Running state" and "Times": per source, the previous time and step."""

    def __init__(self):
        self.last = None
        self.step = 0

    def encode(self, t, first_reference):
        if self.last is None:
            delta = wrap64(t - first_reference)
        else:
            delta = wrap64(wrap64(t - self.last) - self.step)
            self.step = wrap64(t - self.last)
        self.last = t
        return delta

    def decode(self, delta, first_reference):
        if self.last is None:
            t = wrap64(first_reference + delta)
        else:
            self.step = wrap64(self.step + delta)
            t = wrap64(self.last + self.step)
        self.last = t
        return t


def pack_readings(readings):
    """FORMAT.md "Packed readings", "Layout": the one encoding of a list of readings."""
    # Rows: consecutive readings sharing device, patient, times and quality.
    rows = []
    for r in readings:
        if rows and rows[-1][0].row_key() == r.row_key():
            rows[-1].append(r)
        else:
            rows.append([r])

    def row_source(row):
        return (row[0].device, row[0].patient)

    def row_shape(row):
        return (row_source(row), tuple(VITAL_CODE[r.vital] for r in row))

    def row_flags(row):
        return (1 if row[0].device_time is not None else 0) | (2 if row[0].quality else 0)

    # Runs: maximal stretches of rows with one shape and one set of flags.
    runs = []
    for row in rows:
        if runs and runs[-1][0] == (row_shape(row), row_flags(row)):
            runs[-1][1].append(row)
        else:
            runs.append(((row_shape(row), row_flags(row)), [row]))

    # Tables, each in order of first use by the next one.
    shapes = list(dict.fromkeys(shape for (shape, _), _ in runs))
    sources = list(dict.fromkeys(source for source, _ in shapes))
    strings = list(dict.fromkeys(s for source in sources for s in source))

    out = bytearray([2])
    write_varint(out, len(strings))
    for s in strings:
        b = s.encode("utf-8")
        write_varint(out, len(b))
        out += b
    write_varint(out, len(sources))
    for device, patient in sources:
        write_varint(out, strings.index(device))
        write_varint(out, strings.index(patient))
    write_varint(out, len(shapes))
    for source, vitals in shapes:
        write_varint(out, sources.index(source))
        write_varint(out, len(vitals))
        out += bytes(vitals)

    times = {source: (TimeState(), TimeState()) for source in sources}
    series = {}
    previous_row_time = 0
    write_varint(out, len(runs))
    for (shape, flags), run_rows in runs:
        source, vitals = shape
        codes = [column_code([row[j].value for row in run_rows]) for j in range(len(vitals))]
        out.append(flags)
        write_varint(out, shapes.index(shape))
        write_varint(out, len(run_rows))
        out += bytes(codes)
        gateway_state, device_state = times[source]
        for row in run_rows:
            first = row[0]
            write_varint(out, zigzag(gateway_state.encode(first.gateway_time, previous_row_time)))
            previous_row_time = first.gateway_time
            if flags & 1:
                write_varint(out, zigzag(device_state.encode(first.device_time, first.gateway_time)))
            if flags & 2:
                write_varint(out, first.quality)
            for code, r in zip(codes, row):
                key = (source, r.vital)
                if code == RAW:
                    out += struct.pack("<d", r.value)
                    series[key] = None
                    continue
                m = mantissa(r.value, code)
                prev = series.get(key)
                write_varint(out, zigzag(m - prev[1] if prev and prev[0] == code else m))
                series[key] = (code, m)
    return bytes(out)


def unpack_readings(data, stats=None):
    """FORMAT.md "Packed readings", "Layout" and "Reading a record": decode
    version 2, rejecting every byte string that is not the one encoding.
    `stats`, when given, collects the value codes used and the number of
    runs with quality bits (for the report)."""
    r = Reader(data)
    need(r.u8() == 2, "packed readings: version is not 2")

    strings = []
    for _ in range(r.count(2, "string")):
        raw = r.take(r.varint())
        need(raw, "packed readings: empty string")
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("packed readings: string is not UTF-8") from None
        need(s not in strings, f"packed readings: string {s!r} twice")
        strings.append(s)

    def in_first_use_order(index, used, size, what):
        need(index < size, f"packed readings: {what} index out of range")
        need(index <= used, f"packed readings: {what} not in first-use order")
        return max(used, index + 1)

    sources, used = [], 0
    for _ in range(r.count(2, "source")):
        device = r.varint()
        used = in_first_use_order(device, used, len(strings), "string")
        patient = r.varint()
        used = in_first_use_order(patient, used, len(strings), "string")
        need((device, patient) not in sources, "packed readings: repeated source")
        sources.append((device, patient))
    need(used == len(strings), "packed readings: a string is never used")

    shapes, used = [], 0
    for _ in range(r.count(3, "shape")):
        source = r.varint()
        used = in_first_use_order(source, used, len(sources), "source")
        vital_count = r.varint()
        need(vital_count <= r.remaining(), "packed readings: vital count larger than the input")
        need(vital_count >= 1, "packed readings: shape without vitals")
        vitals = tuple(r.take(vital_count))
        need(all(1 <= v <= 10 for v in vitals), "packed readings: reserved vital code")
        need((source, vitals) not in shapes, "packed readings: repeated shape")
        shapes.append((source, vitals))
    need(used == len(sources), "packed readings: a source is never used")

    readings = []
    times = [(TimeState(), TimeState()) for _ in sources]
    series = {}
    previous_row_time = 0
    previous_run = previous_row = None
    used = 0
    for _ in range(r.count(6, "run")):
        flags = r.u8()
        need(flags & ~3 == 0, "packed readings: reserved flag bits")
        shape = r.varint()
        used = in_first_use_order(shape, used, len(shapes), "shape")
        need((shape, flags) != previous_run, "packed readings: run with the shape and flags of the run before")
        previous_run = (shape, flags)
        source, vitals = shapes[shape]
        row_count = r.count(1 + len(vitals), "row")
        need(row_count >= 1, "packed readings: run without rows")
        codes = list(r.take(len(vitals)))
        need(all(c <= 11 for c in codes), "packed readings: value code above 11")
        device, patient = (strings[i] for i in sources[source])
        gateway_state, device_state = times[source]
        columns = [[] for _ in vitals]
        for _ in range(row_count):
            gateway_time = gateway_state.decode(r.svarint(), previous_row_time)
            previous_row_time = gateway_time
            device_time = device_state.decode(r.svarint(), gateway_time) if flags & 1 else None
            quality = 0
            if flags & 2:
                quality = r.varint()
                need(1 <= quality <= 0xFFFF, "packed readings: quality zero or over 16 bits")
            row = (source, gateway_time, device_time, quality)
            need(row != previous_row, "packed readings: a row with the source, times and quality of the row before")
            previous_row = row
            for j, (vital, code) in enumerate(zip(vitals, codes)):
                value = read_value(r, series, (source, vital), code)
                columns[j].append(value)
                readings.append(Reading(device, patient, VITALS[vital - 1][0], value,
                                        gateway_time, device_time, quality))
        for code, column in zip(codes, columns):
            need(column_code(column) == code, "packed readings: a column's code is not the first that fits")
        if stats is not None:
            stats.setdefault("codes", set()).update(codes)
            stats["quality_runs"] = stats.get("quality_runs", 0) + (flags >> 1 & 1)
    need(used == len(shapes), "packed readings: a shape is never used")
    need(r.remaining() == 0, "packed readings: bytes after the last run")
    return readings


def read_value(r, series, key, code):
    """FORMAT.md "Values": one value of a series under its column's code."""
    if code == RAW:
        series[key] = None
        return struct.unpack("<d", r.take(8))[0]
    delta = r.svarint()
    prev = series.get(key)
    m = prev[1] + delta if prev and prev[0] == code else delta
    need(-(2**63) <= m < 2**63, "packed readings: mantissa addition overflows")
    need(abs(m) <= mantissa_range(code), "packed readings: mantissa out of range")
    value = value_of(code, m)
    need(mantissa(value, code) == m, "packed readings: mantissa is not its value's mantissa")
    series[key] = (code, m)
    return value


# ---------------------------------------------------------------------------
# FORMAT.md "Merkle tree (RFC 9162 §2.1)"
# ---------------------------------------------------------------------------

EMPTY_ROOT = sha256(b"")


def leaf_hash(entry):
    """FORMAT.md "Hashes": SHA-256(0x00 || e)."""
    return sha256(b"\x00" + entry)


def node_hash(left, right):
    """FORMAT.md "Hashes": SHA-256(0x01 || l || r)."""
    return sha256(b"\x01" + left + right)


def split_point(n):
    """The largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_hash(leaves):
    """FORMAT.md "Tree hash": MTH over leaf hashes."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(tree_hash(leaves[:k]), tree_hash(leaves[k:]))


def inclusion_path(m, leaves):
    """FORMAT.md "Proofs": RFC 9162 PATH(m, D[n]) (used for the vectors)."""
    if len(leaves) == 1:
        return []
    k = split_point(len(leaves))
    if m < k:
        return inclusion_path(m, leaves[:k]) + [tree_hash(leaves[k:])]
    return inclusion_path(m - k, leaves[k:]) + [tree_hash(leaves[:k])]


def consistency_proof(m, leaves):
    """FORMAT.md "Proofs": RFC 9162 PROOF(m, D[n]) (used for the vectors)."""

    def subproof(m, leaves, complete):
        n = len(leaves)
        if m == n:
            return [] if complete else [tree_hash(leaves)]
        k = split_point(n)
        if m <= k:
            return subproof(m, leaves[:k], complete) + [tree_hash(leaves[k:])]
        return subproof(m - k, leaves[k:], False) + [tree_hash(leaves[:k])]

    return [] if m == len(leaves) or m == 0 else subproof(m, leaves, True)


def verify_inclusion(leaf, m, n, proof, root):
    """FORMAT.md "Verification", Inclusion (RFC 9162 §2.1.3.2), step for step."""
    if m >= n:
        return False
    fn, sn, r = m, n - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(m, root1, n, root2, proof):
    """FORMAT.md "Verification", Consistency (RFC 9162 §2.1.4.2), with FORMAT.md's
    rules outside 0 < m < n."""
    if m > n:
        return False
    if m == n:
        return not proof and root1 == root2
    if m == 0:
        return not proof and root1 == EMPTY_ROOT
    if not proof:
        return False
    path = [root1] + list(proof) if m & (m - 1) == 0 else list(proof)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root1 and sr == root2


# ---------------------------------------------------------------------------
# FORMAT.md "Proofs (`vitalgate prove`, JSON)"
# ---------------------------------------------------------------------------


def hex_bytes(value, what, length=None):
    """Proof JSON byte strings are lowercase hex."""
    need(isinstance(value, str) and re.fullmatch(r"(?:[0-9a-f]{2})*", value), f"{what}: not lowercase hex")
    raw = bytes.fromhex(value)
    need(length is None or len(raw) == length, f"{what}: not {length} bytes")
    return raw


def hash_list(value, what):
    need(isinstance(value, list), f"{what}: not a list of hashes")
    return [hex_bytes(h, f"{what}[{i}]", 32) for i, h in enumerate(value)]


def json_uint(value, what):
    need(type(value) is int and value >= 0, f"{what}: not a non-negative integer")
    return value


def signed_tree_head(hex_text, gateway_key, what):
    """Proofs step 1: a tree head verified with the gateway key; its kid field must name that key."""
    t = decode_tree_head(cose_sign1_verify(hex_bytes(hex_text, what), gateway_key, what))
    need(t["gateway"] == kid(gateway_key), f"{what}: names gateway kid {t['gateway'].hex()}")
    return t


def check_block(proof, gateway_key):
    """Proofs steps 1-2: the tree head, the header, and the header's inclusion in the log.
    Returns (tree head, header fields)."""
    need(isinstance(proof.get("block"), dict), "no block")
    head = signed_tree_head(proof.get("tree_head"), gateway_key, "tree_head")
    block = proof["block"]
    header_bytes = hex_bytes(block.get("header"), "block.header")
    header = decode_block_header(cose_sign1_verify(header_bytes, gateway_key, "block header"))
    need(header["gateway"] == kid(gateway_key), f"block header names gateway kid {header['gateway'].hex()}")
    height = json_uint(block.get("height"), "block.height")
    need(height == header["height"], f"block.height {height} is not the signed header's height {header['height']}")
    inclusion = hash_list(block.get("inclusion"), "block.inclusion")
    leaf = leaf_hash(block_hash(header_bytes))
    need(verify_inclusion(leaf, height, head["size"], inclusion, head["root"]),
         f"block {height} is not in the signed log of size {head['size']} (inclusion proof fails)")
    return head, header


def reading_from_json(obj, i):
    """FORMAT.md "Reading (JSON lines)": one listed reading, checked and parsed."""
    what = f"record.readings[{i}]"
    need(isinstance(obj, dict), f"{what}: not an object")
    allowed = ["device", "patient", "vital", "value", "unit", "loinc", "device_time", "gateway_time", "quality"]
    need(list(obj) == [k for k in allowed if k in obj] and set(allowed) - set(obj) <= {"device_time"},
         f"{what}: fields are not the Reading fields in order")
    vital = obj["vital"]
    need(vital in VITAL_CODE, f"{what}: unknown vital {vital!r}")
    _, loinc, unit = VITALS[VITAL_CODE[vital] - 1]
    need(obj["unit"] == unit and obj["loinc"] == loinc, f"{what}: unit/LOINC are not {vital}'s")
    value = obj["value"]
    need(value is not None, f"{what}: value is null (a NaN or infinite value, which JSON cannot carry, "
                            "so it cannot be compared with the record's)")
    need(type(value) in (int, float), f"{what}: value is not a number")
    flags = obj["quality"]
    need(isinstance(flags, list) and all(f in QUALITY_FLAGS for f in flags), f"{what}: unknown quality flag")
    bits = sum(1 << QUALITY_FLAGS.index(f) for f in flags)
    need(quality_names(bits) == flags, f"{what}: quality flags repeated or out of bit order")
    device_time = parse_time(obj["device_time"]) if "device_time" in obj else None
    need(isinstance(obj["device"], str) and isinstance(obj["patient"], str), f"{what}: device/patient not strings")
    return Reading(obj["device"], obj["patient"], vital, float(value), parse_time(obj["gateway_time"]),
                   device_time, bits)


def check_record(proof, header, recipient_secret):
    """Proofs step 3 (and, with a recipient key, the key's derivation).
    Returns ("readings", readings, stats) or ("alert", (time ms, message bytes), None)."""
    record = proof.get("record")
    need(isinstance(record, dict), "no record")
    index = json_uint(record.get("index"), "record.index")
    record_bytes = hex_bytes(record.get("bytes"), "record.bytes")
    inclusion = hash_list(record.get("inclusion"), "record.inclusion")
    need(verify_inclusion(leaf_hash(record_bytes), index, header["records"], inclusion, header["records_root"]),
         f"record {index} is not in block {header['height']}'s records tree (inclusion proof fails)")
    try:
        key = b64url_decode_32(record.get("key"))
    except Invalid as e:
        raise Invalid(f"record.key: {e}") from None
    derived_iv = None
    if recipient_secret is not None:
        cek = unwrap_content_key(header["recipients"], recipient_secret)
        derived_key, derived_iv = record_key(cek, header["height"], index)
        need(derived_key == key, "record.key is not the key derived from the block's content key")
    plaintext = decrypt_record(record_bytes, key, header["gateway"], header["height"], index, derived_iv)
    stats = {}
    kind, content = decode_record_content(plaintext, stats)
    gives = [member for member in ("readings", "alert") if member in record]
    if kind == "alert":
        need(gives == ["alert"], f"the record holds an alert message, but the proof gives {gives or 'neither'}")
        return "alert", check_listed_alert(record["alert"], *content), None
    need(gives == ["readings"], f"the record holds readings, but the proof gives {gives or 'neither'}")
    readings = content
    listed = record.get("readings")
    need(isinstance(listed, list), "record.readings: not a list")
    listed = [reading_from_json(obj, i) for i, obj in enumerate(listed)]
    need(len(listed) == len(readings), f"record holds {len(readings)} readings, the proof lists {len(listed)}")
    for i, (a, b) in enumerate(zip(readings, listed)):
        need(a.key() == b.key(), f"record.readings[{i}] is not the record's reading: {b!r} vs {a!r}")
    return "readings", readings, stats


def check_listed_alert(listed, time_ms, message):
    """Proofs: `alert` is {time, message}; the same instant, and the message's UTF-8 the record's bytes."""
    need(isinstance(listed, dict) and sorted(listed) == ["message", "time"],
         "record.alert: not an object of exactly time and message")
    need(parse_time(listed["time"]) == time_ms, f"record.alert.time {listed['time']!r} is not the record's time")
    text = listed["message"]
    need(isinstance(text, str), "record.alert.message: not a string")
    try:
        given = text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("record.alert.message: holds a lone surrogate, which no UTF-8 message can") from None
    need(given == message, "record.alert.message is not the message the record holds (compared byte for byte)")
    return time_ms, message


def check_consistency(proof, gateway_key):
    """Proofs steps 1 and 4."""
    old = signed_tree_head(proof.get("old"), gateway_key, "old")
    new = signed_tree_head(proof.get("new"), gateway_key, "new")
    hashes_ = hash_list(proof.get("proof"), "proof")
    need(verify_consistency(old["size"], old["root"], new["size"], new["root"], hashes_),
         f"the log of size {old['size']} is not a prefix of the log of size {new['size']}")
    return old, new


def check_proof(proof, gateway_key, recipient_secret):
    """Dispatch on FORMAT.md's three proof kinds; returns a one-line description."""
    need(isinstance(proof, dict), "not a JSON object")
    kind = proof.get("kind")
    if kind == "vitalgate/proof/block/1":
        head, header = check_block(proof, gateway_key)
        return f"block {header['height']} in the log of size {head['size']}"
    if kind == "vitalgate/proof/record/1":
        head, header = check_block(proof, gateway_key)
        kind, content, stats = check_record(proof, header, recipient_secret)
        unwrapped = ", key unwrapped and derived" if recipient_secret is not None else ""
        if kind == "alert":
            time_ms, message = content
            return (f"record {proof['record']['index']} of block {header['height']} in the log of size "
                    f"{head['size']}: alert message of {len(message)} bytes recorded {format_time(time_ms)} "
                    f"decrypted and equal{unwrapped}")
        readings = content
        codes = ",".join(str(c) for c in sorted(stats.get("codes", ())))
        return (f"record {proof['record']['index']} of block {header['height']} in the log of size "
                f"{head['size']}: {len(readings)} readings decrypted and equal{unwrapped} "
                f"(value codes {codes}; runs with quality {stats.get('quality_runs', 0)})")
    if kind == "vitalgate/proof/consistency/1":
        old, new = check_consistency(proof, gateway_key)
        return f"log of size {old['size']} is a prefix of size {new['size']}"
    raise Invalid(f"unknown kind {kind!r}")


# ---------------------------------------------------------------------------
# FORMAT.md test vectors, transcribed
# ---------------------------------------------------------------------------


def vector_keys():
    """FORMAT.md "Test vectors (keys)"."""
    # Identity key = RFC 8032 §7.1 TEST 1.
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    text = "ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    key_file = ("-----BEGIN PRIVATE KEY-----\n"
                "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
                "-----END PRIVATE KEY-----\n")
    need(ed25519_public(seed) == public, "RFC 8032 TEST 1 public key")
    need(public_key_text("ed25519", public) == text and len(text) == 51, "identity key text")
    need(parse_ed25519_public_text(text) == public, "identity key text parses back")
    need(kid(public).hex() == "21fe31dfa154a261626bf854046fd227", "identity kid")
    need(private_key_file_text("ed25519", seed) == key_file and len(key_file) == 119, "identity key file")
    need(parse_private_key_file(key_file, "ed25519") == seed, "identity key file parses back")
    need(parse_private_key_file(key_file[:-1], "ed25519") == seed, "key file without final newline")
    # Recipient keys = RFC 7748 §6.1 Alice and Bob.
    people = [
        ("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
         "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
         "x25519:hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo", "300c9c9603b92a4b39ed3958bf924011",
         "MC4CAQAwBQYDK2VuBCIEIHcHbQpzGKV9PBbBclGyZkXfTC+H68CZKrF3+6UduSwq"),
        ("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
         "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
         "x25519:3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08", "f35e5616160a30bf3c6e79fa73c576d4", None),
    ]
    for private, public, text, kid_hex, file_b64 in people:
        private, public = bytes.fromhex(private), bytes.fromhex(public)
        need(x25519_public(private) == public, "RFC 7748 public key")
        need(public_key_text("x25519", public) == text and len(text) == 50, "recipient key text")
        need(parse_x25519_public_text(text) == public, "recipient key text parses back")
        need(kid(public).hex() == kid_hex, "recipient kid")
        if file_b64:
            key_file = f"-----BEGIN PRIVATE KEY-----\n{file_b64}\n-----END PRIVATE KEY-----\n"
            need(private_key_file_text("x25519", private) == key_file, "recipient key file")
            need(parse_private_key_file(key_file, "x25519") == private, "recipient key file parses back")
    # The refusals the section lists.
    for u in X25519_SMALL_ORDER | {P, P + 1, 2**255 + 9}:
        raw = (u % 2**256).to_bytes(32, "little")
        need(refuses(lambda: check_x25519_public(raw)), f"X25519 key {raw.hex()} refused")
    for bad in ["ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp",
                "x25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "ed25519:" + b64url_encode(bytes(32)),
                "ed25519:" + b64url_encode((1).to_bytes(32, "little")),
                "ed25519:" + b64url_encode((P + 1).to_bytes(32, "little"))]:
        need(refuses(lambda: parse_ed25519_public_text(bad)), f"identity text {bad!r} refused")
    return 11



# ---------------------------------------------------------------------------
# FORMAT.md "Key backup"
# ---------------------------------------------------------------------------

KEY_BACKUP_KIND = "vitalgate/key-backup/1"


def key_backup_aad():
    """FORMAT.md "Key backup": the Enc_structure ["Encrypt", h'a1011818', h'']."""
    return cbor_encode(["Encrypt", ENCRYPT0_PROTECTED, b""])


def key_backup_plaintext(seed, account_address, account_secret, created, software):
    """FORMAT.md "Key backup": the plaintext map, keys 0 to 6."""
    return cbor_encode({0: KEY_BACKUP_KIND, 1: kid(ed25519_public(seed)), 2: seed,
                        3: account_address, 4: account_secret, 5: created, 6: software})


def encrypt_key_backup(plaintext, cek, iv, escrow_publics, ephemeral_secrets):
    """FORMAT.md "Key backup": a tagged COSE_Encrypt (96) to the escrow keys (used for the vector)."""
    ciphertext = ChaCha20Poly1305(cek).encrypt(iv, plaintext, key_backup_aad())
    recipients = [cbor2.loads(wrap_recipient(cek, public, ephemeral))
                  for public, ephemeral in zip(escrow_publics, ephemeral_secrets)]
    return cbor_encode(cbor2.CBORTag(96, [ENCRYPT0_PROTECTED, {5: iv}, ciphertext, recipients]))


def open_key_backup(data, escrow_secret):
    """FORMAT.md "Key backup", Restoring: strict decoding, our recipient, the CEK,
    ChaCha20/Poly1305, the plaintext map, and the identity against its kid.
    Returns the plaintext map."""
    obj = cbor_decode_strict(data, "key backup")
    need(isinstance(obj, cbor2.CBORTag) and obj.tag == 96, "key backup: not a tagged COSE_Encrypt")
    need(isinstance(obj.value, list) and len(obj.value) == 4, "key backup: a COSE_Encrypt is 4 items")
    protected, unprotected, ciphertext, recipients = obj.value
    need(protected == ENCRYPT0_PROTECTED, "key backup: protected header is not {1: 24}")
    need(isinstance(unprotected, dict) and list(unprotected) == [5], "key backup: unprotected header is not {5: iv}")
    need(is_bstr(unprotected[5], 12), "key backup: iv is not 12 bytes")
    need(is_bstr(ciphertext) and len(ciphertext) >= 16, "key backup: ciphertext shorter than its tag")
    need(isinstance(recipients, list) and 1 <= len(recipients) <= 16, "key backup: not 1 to 16 recipients")
    encoded = [cbor_encode(r) for r in recipients]
    for r in encoded:
        decode_recipient(r)
    cek = unwrap_content_key(encoded, escrow_secret)
    try:
        plaintext = ChaCha20Poly1305(cek).decrypt(unprotected[5], ciphertext, key_backup_aad())
    except InvalidTag:
        raise Invalid("key backup: authenticated decryption failed (altered)") from None
    p = cbor_decode_strict(plaintext, "key backup plaintext")
    need(isinstance(p, dict) and list(p) == list(range(7)), "key backup plaintext: keys are not 0 to 6")
    need(p[0] == KEY_BACKUP_KIND, "key backup plaintext: another kind")
    need(is_bstr(p[1], 16) and is_bstr(p[2], 32) and is_bstr(p[3], 20) and is_bstr(p[4], 32),
         "key backup plaintext: a key field has the wrong length")
    need(is_int(p[5]) and isinstance(p[6], str) and len(p[6].encode()) <= 64,
         "key backup plaintext: created or software of the wrong type")
    need(kid(ed25519_public(p[2])) == p[1], "key backup: the identity is not the gateway it records")
    return p


def refuses(f):
    try:
        f()
    except Invalid:
        return True
    return False


HEADER_VECTOR_SEED = bytes([7] * 32)


def vector_header_and_tree_head():
    """FORMAT.md "Test vectors (header and tree head)"."""
    public = ed25519_public(HEADER_VECTOR_SEED)
    need(kid(public).hex() == "fe812c12f3ab4ce6ac5db69ac352f906", "seed 07 kid")
    header = {"kind": BLOCK_KIND, "gateway": kid(public), "height": 1, "prev": bytes([0xAB] * 32),
              "first": 1700000000000, "last": 1700000059000, "readings": 180, "records": 60,
              "records_root": bytes([0xCD] * 32), "recipients": [], "sealed_at": 1700000060000, "reason": "age"}
    payload = bytes.fromhex(  # the "hex:" line, verbatim
        "ac0071766974616c676174652f626c6f636b2f310150fe812c12f3ab4ce6ac5db69ac352f9060201035820abababababababababababababababababababababababababababababababab041b0000018bcfe56800051b0000018bcfe64e780618b407183c085820cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd09800a1b0000018bcfe652600b63616765"  # noqa: E501
    )
    need(len(payload) == 153 and encode_block_header(header) == payload, "header payload bytes")
    need(decode_block_header(payload) == header, "header payload decodes")
    sign1 = bytes.fromhex("d28443a10132a10450fe812c12f3ab4ce6ac5db69ac352f9065899") + payload + bytes.fromhex(
        "5840a78c2c7fd8da996a7c06f2d44f2d6b125ba26c7d16cbe3adaac64423aeaaa0fbb747d17ec46c96f31896b30b58475b"
        "ae6c05f55f83b365421978351d2cc6e10b")
    need(cose_sign1(HEADER_VECTOR_SEED, payload) == sign1, "header COSE_Sign1 bytes")
    need(cose_sign1_verify(sign1, public, "header") == payload, "header COSE_Sign1 verifies")
    need(block_hash(sign1).hex() == "15308c458671f8157b6bd28db20137611f0cb2718eb146e68f8ae5a75c1957d8", "block hash")

    head = {"kind": TREE_HEAD_KIND, "gateway": kid(public), "size": 2, "root": bytes([0xEF] * 32),
            "time": 1700000060000}
    payload = bytes.fromhex(  # verbatim
        "a50075766974616c676174652f747265652d686561642f310150fe812c12f3ab4ce6ac5db69ac352f9060202035820efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef041b0000018bcfe65260"  # noqa: E501
    )
    need(encode_tree_head(head) == payload and decode_tree_head(payload) == head, "tree head payload bytes")
    sign1 = bytes.fromhex("d28443a10132a10450fe812c12f3ab4ce6ac5db69ac352f9065859") + payload + bytes.fromhex(
        "5840d77a279c71e28b9681e496904420c01f17b929ee7c0bcd352e80e836f9014710d456c14a85f7ddb67f360b8490dfb7"
        "9fea596f83c7be538d15fbd6ee389bca06")
    need(cose_sign1(HEADER_VECTOR_SEED, payload) == sign1, "tree head COSE_Sign1 bytes")
    need(cose_sign1_verify(sign1, public, "tree head") == payload, "tree head COSE_Sign1 verifies")
    # A header is never a tree head (key 0), and a flipped bit never verifies.
    need(refuses(lambda: decode_tree_head(encode_block_header(header))), "a header is not a tree head")
    tampered = bytearray(sign1)
    tampered[-1] ^= 1
    need(refuses(lambda: cose_sign1_verify(bytes(tampered), public, "x")), "a flipped signature bit fails")
    return 6


RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
CEK_0_31 = bytes(range(32))
ALICE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
BOB = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")


def vector_cose():
    """FORMAT.md "Test vectors (COSE)"."""
    # COSE_Sign1.
    content = b"This is the content."
    need(sig_structure(content).hex() == "846a5369676e61747572653143a101324054546869732069732074686520636f6e74656e742e",
         "Sig_structure")
    sign1 = bytes.fromhex(
        "d28443a10132a1045021fe31dfa154a261626bf854046fd22754546869732069732074686520"
        "636f6e74656e742e5840d492f52368492eefde152b706cced7c257bade0d041020909154f68b"
        "9b375ccc058a5ebf6da9e526a7e56abdfdefce6f73dc08fb4bd7667e471986c12f81c705")
    need(len(sign1) == 112 and cose_sign1(RFC8032_SEED, content) == sign1, "COSE_Sign1 bytes")
    need(cose_sign1_verify(sign1, ed25519_public(RFC8032_SEED), "vector") == content, "COSE_Sign1 verifies")

    # COSE_recipient.
    bob_public = x25519_public(BOB)
    z = x25519(ALICE, bob_public)
    need(z.hex() == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", "Z")
    need(kdf_context().hex() == "842483f6f6f683f6f6f68219010044a101381e", "COSE_KDF_Context")
    kek = key_encryption_key(z)
    need(kek.hex() == "568fdb5c15ba0f0b3532324850bfc6a79f18041718d9f2a197f425e9157802c1", "KEK")
    need(aes_key_wrap(kek, CEK_0_31).hex() ==
         "7d314b2f425c6f6969151a7da32f480b42118f7eca591bd471281230ece0c4e0c5cbdeeed17b565b", "wrapped CEK")
    recipient = bytes.fromhex(
        "8344a101381ea20450f35e5616160a30bf3c6e79fa73c576d420a3010120042158208520f009"
        "8930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a58287d314b2f425c6f69"
        "69151a7da32f480b42118f7eca591bd471281230ece0c4e0c5cbdeeed17b565b")
    need(len(recipient) == 108 and wrap_recipient(CEK_0_31, bob_public, ALICE) == recipient, "COSE_recipient bytes")
    need(unwrap_content_key([recipient], BOB) == CEK_0_31, "Bob unwraps the CEK")
    need(refuses(lambda: unwrap_content_key([recipient], ALICE)), "Alice is not a recipient")

    # Record key.
    need(record_key_info(1000, 7).hex() == "766974616c676174652f7265636f72642f763100000000000003e800000007", "info")
    key, iv = record_key(CEK_0_31, 1000, 7)
    need(key.hex() == "5c0ac3a91bfd11979808e764a21e0cbe5203606f2e8f364fb652d2347bbd99d0", "record key")
    need(iv.hex() == "f4178347c0ef10a26291279b", "record IV")
    need(b64url_encode(key) == "XArDqRv9EZeYCOdkoh4MvlIDYG8ujzZPtlLSNHu9mdA", "disclosed key")
    need(b64url_decode_32("XArDqRv9EZeYCOdkoh4MvlIDYG8ujzZPtlLSNHu9mdA") == key, "disclosed key parses")

    # Record.
    gateway_kid = bytes.fromhex("21fe31dfa154a261626bf854046fd227")
    need(cbor_encode([gateway_kid, 1000, 7]).hex() == "835021fe31dfa154a261626bf854046fd2271903e807", "external_aad")
    need(record_aad(gateway_kid, 1000, 7).hex() ==
         "8368456e63727970743044a101181856835021fe31dfa154a261626bf854046fd2271903e807", "Enc_structure")
    record = bytes.fromhex(
        "d08344a1011818a1054cf4178347c0ef10a26291279b5824deba09ec6cdb52ba1ab1e874d714"
        "ad7aa0ec44197540b7698798a7086ef797f5bef541b3")
    need(len(record) == 60 and encrypt_record(key, iv, gateway_kid, 1000, 7, content) == record, "record bytes")
    need(decrypt_record(record, key, gateway_kid, 1000, 7, iv) == content, "record decrypts")
    need(refuses(lambda: decrypt_record(record, key, gateway_kid, 1000, 8)), "record bound to its index")
    return 20


def vector_key_backup():
    """FORMAT.md "Key backup", "Test vector (key backup)"."""
    seed = bytes([7] * 32)
    account = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
    address = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
    need(kid(ed25519_public(seed)).hex() == "fe812c12f3ab4ce6ac5db69ac352f906", "gateway kid")
    plaintext = key_backup_plaintext(seed, address, account, 1700000000000, "0.1.0")
    need(plaintext.hex() == (
        "a70076766974616c676174652f6b65792d6261636b75702f310150fe812c12f3ab4ce6ac5db6"
        "9ac352f906025820070707070707070707070707070707070707070707070707070707070707"
        "07070354f39fd6e51aad88f6f4ce6ab8827279cfffb92266045820ac0974bec39a17e36ba4a6"
        "b4d238ff944bacb478cbed5efcae784d7bf4f2ff80051b0000018bcfe568000665302e312e30"), "plaintext")
    need(key_backup_aad().hex() == "8367456e637279707444a101181840", "Enc_structure")
    backup = bytes.fromhex(
        "d8608444a1011818a1054ca0a1a2a3a4a5a6a7a8a9aaab58a8abab0e292492a3c1c76e8771d3"
        "919882b03cb2dc281f108c85d98b4ff04ed1ffc7ccf026f37f65499435f3bf45717f414dc34d"
        "3f0e0b6c8620530c474b2da2cfb6fc60493fee95f725f7d58e0ab7aa2af306d90606111e568f"
        "e620380cbed97463fe45c68b034d59a634dea10ed7f89eec6407876daf7eee0458d8985fce4c"
        "900760870a7b587bc61eb5df3cf17af27199d464d9581924610f53af54ee0bfd7452478d051d"
        "cd21b8818344a101381ea20450f35e5616160a30bf3c6e79fa73c576d420a301012004215820"
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a58287d314b2f"
        "425c6f6969151a7da32f480b42118f7eca591bd471281230ece0c4e0c5cbdeeed17b565b")
    iv = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaab")
    need(len(backup) == 302 and encrypt_key_backup(plaintext, CEK_0_31, iv, [x25519_public(BOB)], [ALICE]) == backup,
         "backup bytes")
    opened = open_key_backup(backup, BOB)
    need(opened[2] == seed and opened[4] == account and opened[3] == address, "Bob opens it")
    need(refuses(lambda: open_key_backup(backup, ALICE)), "Alice cannot open it")
    altered = bytearray(backup)
    altered[30] ^= 1
    need(refuses(lambda: open_key_backup(bytes(altered), BOB)), "an altered backup is refused")
    return 5


def vector_packing():
    """FORMAT.md "Packed readings", "Test vector"."""
    t = 1700000000000
    need(format_time(t) == "2023-11-14T22:13:20.000Z", "T as text")
    ox, hr, th = ("ox-1", "p-7"), ("hr-2", "p-7"), ("th-3", "p-9")
    rows = [  # (source, vital, value, gateway time, device time, quality)
        (ox, "spo2", 97.0, t, None, 0), (ox, "pulse_rate", 72.0, t, None, 0),
        (ox, "perfusion_index", 3.25, t, None, 0),
        (ox, "spo2", 96.0, t + 1000, None, 0), (ox, "pulse_rate", 74.0, t + 1000, None, 0),
        (ox, "perfusion_index", 3.5, t + 1000, None, 0),
        (hr, "heart_rate", 64.0, t + 1020, t + 1000, 0), (hr, "rr_interval", 937.5, t + 1020, t + 1000, 0),
        (ox, "spo2", 95.0, t + 2010, None, 8), (ox, "pulse_rate", 75.0, t + 2010, None, 8),
        (ox, "perfusion_index", 0.1 + 0.2, t + 2010, None, 8),
        (hr, "heart_rate", 65.0, t + 2015, t + 2000, 0), (hr, "rr_interval", 923.828125, t + 2015, t + 2000, 0),
        (th, "body_temperature", 36.6, t + 2500, None, 0),
    ]
    readings = [Reading(s[0], s[1], v, x, g, d, q) for s, v, x, g, d, q in rows]
    packed = bytes.fromhex(" ".join([  # the vector's lines, hex columns only
        "02",
        "05",
        "04 6f 78 2d 31",
        "03 70 2d 37",
        "04 68 72 2d 32",
        "04 74 68 2d 33",
        "03 70 2d 39",
        "03",
        "00 01",
        "02 01",
        "03 04",
        "03",
        "00 03 03 02 09",
        "01 02 01 0a",
        "02 01 05",
        "05",
        "00 00 02 00 00 02",
        "80 a0 ab fe f9 62 c2 01 90 01 8a 05",
        "d0 0f 01 04 32",
        "01 01 01 00 0a",
        "28 27 80 01 80 0f",
        "02 00 01 00 00 0b",
        "14 08 01 02 34 33 33 33 33 33 d3 3f",
        "01 01 01 00 0a",
        "c6 0f d0 0f 02 1b",
        "00 02 01 01",
        "ca 07 dc 05",
    ]))
    need(len(packed) == 117, "the vector is 117 bytes")
    need(f64_bits(0.1 + 0.2) == 0x3FD3333333333334, "0.1 + 0.2")
    decoded = unpack_readings(packed)
    need([r.key() for r in decoded] == [r.key() for r in readings], "the vector decodes to the listed readings")
    need(pack_readings(readings) == packed, "the listed readings encode to the vector")
    need(pack_readings([]) == bytes.fromhex("0200000000") and unpack_readings(bytes.fromhex("0200000000")) == [],
         "the empty record")
    # Value codes named in "Value codes".
    for column, code in [([97.0], 0), ([937.5, 923.828125], 10), ([36.6], 1), ([3.25], 2),
                         ([0.1 + 0.2], 11), ([1e-12], 11), ([-0.0], 11), ([math.nan], 11), ([math.inf], 11)]:
        need(column_code(column) == code, f"value code of {column}")
    # Every single-byte change of the vector is either rejected or decodes to
    # readings that re-encode to the changed bytes (one encoding per list).
    for i in range(len(packed)):
        for bit in range(8):
            changed = bytearray(packed)
            changed[i] ^= 1 << bit
            try:
                back = pack_readings(unpack_readings(bytes(changed)))
            except Invalid:
                continue
            need(back == bytes(changed), f"byte {i} bit {bit}: a second encoding accepted")
    return 5


def vector_record_contents():
    """FORMAT.md "Record contents", "Test vector (alert record)", and the refusals the section lists."""
    t = 1700000000000
    message = '{"event":"raised","patient":"p-7","text":"SpO₂ 84 %"}'.encode("utf-8")
    need(len(message) == 55 and "₂".encode("utf-8") == bytes.fromhex("e28282"), "the message is 55 bytes")
    plaintext = bytes.fromhex(
        "200000018bcfe568007b226576656e74223a22726169736564222c2270617469656e74223a22702d37222c2274657874"
        "223a2253704fe282822038342025227d")
    need(len(plaintext) == 64 and encode_alert_record(t, message) == plaintext, "alert record plaintext")
    need(decode_record_content(plaintext) == ("alert", (t, message)), "alert record decodes")
    key, iv = record_key(CEK_0_31, 1000, 7)
    gateway_kid = bytes.fromhex("21fe31dfa154a261626bf854046fd227")
    record = bytes.fromhex(
        "d08344a1011818a1054cf4178347c0ef10a26291279b5850aad2609ec77dc4f26ea2af31"
        "c21ead7ae7b81245ee5354212790dafcee0dc7543427528c7f7f155c5f30a6c13e2eaf56"
        "1af84aee0c1ab642f103040392ddc592d462e825d9fb272e1b9795297eea72ba")
    need(len(record) == 104 and encrypt_record(key, iv, gateway_kid, 1000, 7, plaintext) == record,
         "alert record bytes")
    need(decrypt_record(record, key, gateway_kid, 1000, 7, iv) == plaintext, "alert record decrypts")
    # Dispatch: 0x02 is packed readings (the empty record), anything else
    # but 0x20 is refused, and so is nothing at all.
    need(decode_record_content(bytes.fromhex("0200000000")) == ("readings", []), "0x02 is packed readings")
    for first in (0x00, 0x01, 0x03, 0x1F, 0x21, 0x7B, 0xFF):
        need(refuses(lambda: decode_record_content(bytes([first]) + plaintext[1:])), f"content type {first:#04x}")
    need(refuses(lambda: decode_record_content(b"")), "an empty plaintext")
    need(refuses(lambda: decode_record_content(plaintext[:8])), "an alert record without its whole time")
    # Any 64-bit time.
    for time_ms in (-2**63, -1, 0, 2**63 - 1):
        need(decode_record_content(encode_alert_record(time_ms, b"{}")) == ("alert", (time_ms, b"{}")), "any time")
    # The message rules, 1 to 6.
    def filler(n):
        return b'{"x":"' + b"a" * (n - 8) + b'"}'
    def nested(depth):
        return b'{"a":' + b"[" * (depth - 1) + b"1" + b"]" * (depth - 1) + b"}"
    accepted = [filler(MAX_ALERT_BYTES), nested(MAX_ALERT_DEPTH), b"{}", b'{"a":"\\n is escaped"}',
                b'{"tab":\t1 }', b'{"big":1e400,"lone":"\\ud800","long":123456789012345678901234567890}',
                b'{"a":1,"a":2}', b'{"s":"' + b"[" * 40 + b'\\"' + b"{" * 40 + b'"}']
    refused = [filler(MAX_ALERT_BYTES + 1), b'{"a":\xff}', b'{"a":"\xed\xa0\x80"}', b'{"a":"\xc0\xaf"}',
               b"", b"[]", b" {}", b"{} ", b'"{}"', b"{\n}", b'{"a":1}\r\n{}', nested(MAX_ALERT_DEPTH + 1),
               b'{"a":1}{"b":2}', b"{a:1}", b'{"a":01}', b'{"a":NaN}', b'{"a":-Infinity}', b'{"a":"\\x"}',
               b'{"a":"\x01"}', b'{"a":1,}', b"{'a':1}", b'{"a":1 /* c */}']
    for m in accepted:
        check_alert_message(m)
    for m in refused:
        need(refuses(lambda: check_alert_message(m)), f"alert message {m[:40]!r} refused")
    return 6 + len(accepted) + len(refused)


MERKLE_ENTRIES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
MERKLE_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H_96A2 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
H_5F08 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
H_6B47 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
H_BC1A = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
H_CA85 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
MERKLE_INCLUSION = [  # (leaf, size, proof)
    (0, 8, [H_96A2, H_5F08, H_6B47]),
    (5, 8, [H_BC1A, H_CA85, MERKLE_ROOTS[4]]),
    (2, 3, [MERKLE_ROOTS[2]]),
    (1, 5, [MERKLE_ROOTS[1], H_5F08, H_BC1A]),
]
MERKLE_CONSISTENCY = [  # (old size, new size, proof)
    (1, 8, [H_96A2, H_5F08, H_6B47]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", H_CA85, MERKLE_ROOTS[4]]),
    (2, 5, [H_5F08, H_BC1A]),
    (1, 1, []),
]


def vector_merkle():
    """FORMAT.md "Merkle tree", "Test vectors"."""
    leaves = [leaf_hash(bytes.fromhex(e)) for e in MERKLE_ENTRIES]
    for size, root in enumerate(MERKLE_ROOTS):
        need(tree_hash(leaves[:size]).hex() == root, f"root of size {size}")
    roots = [bytes.fromhex(r) for r in MERKLE_ROOTS]
    for m, n, proof in MERKLE_INCLUSION:
        proof = [bytes.fromhex(h) for h in proof]
        need(inclusion_path(m, leaves[:n]) == proof, f"inclusion path of leaf {m}, size {n}")
        need(verify_inclusion(leaves[m], m, n, proof, roots[n]), f"inclusion of leaf {m}, size {n} verifies")
        need(not verify_inclusion(leaves[m], m, n, proof[:-1], roots[n]), "a short inclusion proof fails")
        need(not verify_inclusion(leaves[m], m, n, proof + [proof[0]], roots[n]), "a long inclusion proof fails")
    for m, n, proof in MERKLE_CONSISTENCY:
        proof = [bytes.fromhex(h) for h in proof]
        need(consistency_proof(m, leaves[:n]) == proof, f"consistency proof {m} -> {n}")
        need(verify_consistency(m, roots[m], n, roots[n], proof), f"consistency {m} -> {n} verifies")
        if proof:
            need(not verify_consistency(m, roots[m], n, roots[n], proof[:-1]), "a short consistency proof fails")
    # Every pair of sizes, both ways, against this implementation's own proofs.
    for n in range(len(leaves) + 1):
        for m in range(n + 1):
            proof = consistency_proof(m, leaves[:n])
            need(verify_consistency(m, roots[m], n, roots[n], proof), f"consistency {m} -> {n}")
            if m < n:
                need(not verify_consistency(n, roots[n], m, roots[m], proof), f"consistency {n} -> {m} fails")
            if m < n:
                need(verify_inclusion(leaves[m], m, n, inclusion_path(m, leaves[:n]), roots[n]), f"inclusion {m}/{n}")
    # The edge cases of "Proofs": m = 0, m = n, m > n.
    need(verify_consistency(0, EMPTY_ROOT, 5, roots[5], []), "consistency 0 -> 5")
    need(not verify_consistency(0, roots[1], 5, roots[5], []), "consistency 0 -> 5 with a non-empty old root")
    need(not verify_consistency(3, roots[3], 3, roots[4], []), "consistency 3 -> 3 with two roots")
    return 9 + len(MERKLE_INCLUSION) + len(MERKLE_CONSISTENCY)


def run_vectors():
    sections = [
        ("Test vectors (keys)", vector_keys),
        ("Test vectors (header and tree head)", vector_header_and_tree_head),
        ("Test vectors (COSE)", vector_cose),
        ("Key backup: Test vector", vector_key_backup),
        ("Record contents: Test vector (alert record)", vector_record_contents),
        ("Packed readings: Test vector", vector_packing),
        ("Merkle tree: Test vectors", vector_merkle),
    ]
    failed = 0
    for name, check in sections:
        try:
            count = check()
            print(f"ok {name} ({count} vectors)")
        except Invalid as e:
            failed += 1
            print(f"FAIL {name}: {e}")
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

USAGE = ("usage: verify.py vectors\n"
         "       verify.py proof --gateway-key GATEWAY.pub [--identity RECIPIENT.key] PROOF.json...\n")


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None


class UsageError(Exception):
    pass


def read_public_key_file(path):
    """FORMAT.md "Public keys as text": a `.pub` file is the text form and one `\n`."""
    text = read_text(path)
    return text[:-1] if text.endswith("\n") else text


def run_proofs(args):
    gateway_path = identity_path = None
    files = []
    while args:
        arg = args.pop(0)
        if arg in ("--gateway-key", "--identity"):
            if not args:
                raise UsageError(f"{arg} needs a file")
            if arg == "--gateway-key":
                gateway_path = args.pop(0)
            else:
                identity_path = args.pop(0)
        elif arg.startswith("-"):
            raise UsageError(f"unknown option {arg}")
        else:
            files.append(arg)
    if gateway_path is None or not files:
        raise UsageError("proof needs --gateway-key and at least one proof file")
    try:
        gateway_key = parse_ed25519_public_text(read_public_key_file(gateway_path))
    except Invalid as e:
        raise UsageError(f"{gateway_path}: not a gateway public key: {e}") from None
    recipient_secret = None
    if identity_path is not None:
        try:
            recipient_secret = parse_private_key_file(read_text(identity_path), "x25519")
        except Invalid as e:
            raise UsageError(f"{identity_path}: not a recipient private key: {e}") from None

    failed = 0
    for path in files:
        text = read_text(path)
        try:
            try:
                proof = json.loads(text)
            except json.JSONDecodeError as e:
                raise Invalid(f"not JSON: {e}") from None
            print(f"ok {path}: {check_proof(proof, gateway_key, recipient_secret)}")
        except Invalid as e:
            failed += 1
            print(f"FAIL {path}: {e}")
    return 1 if failed else 0


def main(argv):
    try:
        if argv[:1] == ["vectors"] and len(argv) == 1:
            return run_vectors()
        if argv[:1] == ["proof"]:
            return run_proofs(list(argv[1:]))
        raise UsageError("unknown command")
    except UsageError as e:
        sys.stderr.write(f"verify.py: {e}\n{USAGE}")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
