"""C2SP signed notes (https://c2sp.org/signed-note): Ed25519 and ML-DSA-65 signature lines.

A signed note is UTF-8 text ending in a newline, a blank line, then one or
more signature lines ``— <key name> <base64(key id || signature)>``.  This
module signs and opens such notes, computes key ids, and reads and writes
verifier keys (``name+hexkeyid+base64(type || public key)``), byte for byte as
golang.org/x/mod/sumdb/note does for Ed25519 (checked against its example).

Signature types:

* ``0x01`` Ed25519 over the note text (signed-note §"Ed25519 signatures").
* ``0x04`` timestamped Ed25519 witness cosignatures (c2sp.org/tlog-cosignature);
  the verifier class lives here so that :func:`open_note` can check them, the
  signing side is :func:`detente.core.checkpoint.cosign`.
* ML-DSA-65 (FIPS 204, pure mode, empty context) over the note text.  C2SP
  signed-note assigns no identifier byte to ML-DSA-65 note signatures (its
  list stops at ``0x01``-``0x05``; the newer ML-DSA-44 *cosignatures* of
  tlog-cosignature sign a binary ``subtree/v1`` message, not the note text,
  and are a different parameter set).  So we use the escape the spec provides:
  ``0xff`` "reserved for signature types without an identifier byte assigned by
  this specification ... RECOMMENDED that this byte be followed by a longer
  identifier", i.e. the type is ``0xff || b"detente/ML-DSA-65"``
  (:data:`MLDSA65_TYPE`).  The key id and verifier key use the whole type
  string, so these keys can never be mistaken for Ed25519 ones.  If C2SP ever
  assigns a byte, only this constant changes (with a key-id migration).

Détente's own message signatures cover ``detente/v1/<domain>\\x00...`` (see
:mod:`detente.core.canonical`); note text can never contain NUL, so a note
signature and a message signature made with one key cannot be confused.

What it deliberately does not do: decide which keys to trust (callers pass
verifiers), parse the note text (see :mod:`detente.core.checkpoint`), or read
any clock.  Every failure raises :class:`~detente.errors.NoteError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

from detente.errors import NoteError

__all__ = [
    "COSIGNATURE_V1_TYPE",
    "ED25519_TYPE",
    "MAX_SIGNATURES",
    "MLDSA65_TYPE",
    "CosignatureV1Verifier",
    "Ed25519NoteSigner",
    "Ed25519NoteVerifier",
    "MLDSA65NoteSigner",
    "MLDSA65NoteVerifier",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignedNote",
    "check_key_name",
    "check_note_text",
    "cosignature_message",
    "key_id",
    "open_note",
    "parse_signature_line",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
    "signature_line",
    "signer_key",
    "split_note",
    "strict_b64decode",
    "verifier_key",
]

ED25519_TYPE = b"\x01"
COSIGNATURE_V1_TYPE = b"\x04"
MLDSA65_TYPE = b"\xff" + b"detente/ML-DSA-65"

#: signed-note: verifiers "MUST accept at least up to 16 signatures"; the Go
#: reference stops at 100, and so do we (bounds the work an attacker can cause).
MAX_SIGNATURES = 100
#: Largest signature blob we accept: ML-DSA-87 (4627 bytes) plus the key id,
#: so a huge base64 line is refused before decoding.
_MAX_SIG_BYTES = 4 + 4627

#: signed-note §Format: no "ASCII control characters (those below U+0020)
#: other than newline".  DEL (U+007F) is not in that definition, so it passes.
_CONTROLS = bytes(range(0x20)).replace(b"\n", b"")
_SIG_PREFIX = "\u2014 "  # em dash U+2014, space
_COSIGNATURE_HEADER = b"cosignature/v1\n"
_ED25519_PUB = 32
_MLDSA65_PUB = 1952
_MAX_U63 = 2**63 - 1


def strict_b64decode(text: str, what: str) -> bytes:
    """Strict, canonical standard base64 (RFC 4648 §4): one encoding per byte string."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    # Refuse non-zero padding bits, so a flipped character can never decode to
    # the same bytes (a note has exactly one valid encoding).
    if base64.b64encode(data).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return data


def check_key_name(name: str) -> None:
    """signed-note §Format: non-empty, no Unicode spaces, no '+' (and no control characters)."""
    if not name:
        raise NoteError("key name is empty")
    if "+" in name or any(c.isspace() or c < "\x20" for c in name):
        raise NoteError(f"key name {name!r} contains a space, '+' or a control character")


def key_id(name: str, sig_type: bytes, public_key: bytes) -> bytes:
    """signed-note: ``SHA-256(name || 0x0A || type || public key)[:4]`` (big-endian uint32)."""
    check_key_name(name)
    return hashlib.sha256(name.encode("utf-8") + b"\n" + sig_type + public_key).digest()[:4]


def check_note_text(text: str) -> bytes:
    """Return the UTF-8 bytes of a valid note text or raise :class:`NoteError`.

    signed-note §Format: the text ends in a newline and contains no ASCII
    control character other than newline.
    """
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError("note text is not encodable as UTF-8") from exc
    _check_controls(data, "note text")
    return data


def _check_controls(data: bytes, what: str) -> None:
    # In UTF-8 a byte below 0x80 is always that ASCII character, so deleting
    # the control bytes (in C) and comparing lengths is an exact check.
    if len(data.translate(None, _CONTROLS)) != len(data):
        bad = next(b for b in data if b in _CONTROLS)
        raise NoteError(f"{what} contains control character U+{bad:04X}")


# -- signers and verifiers ----------------------------------------------------


@runtime_checkable
class NoteSigner(Protocol):
    """Something that signs note text under a key name and key id."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> bytes: ...
    def sign(self, text: bytes) -> bytes:
        """Return the signature bytes (without the key id) over ``text``."""
        ...


@runtime_checkable
class NoteVerifier(Protocol):
    """Something that verifies a signature from one (name, key id) over note text."""

    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> bytes: ...
    def verify(self, text: bytes, signature: bytes) -> None:
        """Raise :class:`NoteError` unless ``signature`` is valid over ``text``."""
        ...


def _vkey(name: str, kid: bytes, sig_type: bytes, public_key: bytes) -> str:
    return f"{name}+{kid.hex()}+{base64.b64encode(sig_type + public_key).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class Ed25519NoteSigner:
    """Signs note text with Ed25519 (signature type ``0x01``)."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        pub = self.private_key.public_key().public_bytes_raw()
        object.__setattr__(self, "key_id", key_id(self.name, ED25519_TYPE, pub))

    def sign(self, text: bytes) -> bytes:
        return self.private_key.sign(text)

    def verifier(self) -> Ed25519NoteVerifier:
        return Ed25519NoteVerifier(self.name, self.private_key.public_key())


@dataclass(frozen=True, slots=True)
class Ed25519NoteVerifier:
    """Verifies Ed25519 note signatures (signature type ``0x01``)."""

    name: str
    public_key: Ed25519PublicKey
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        pub = self.public_key.public_bytes_raw()
        object.__setattr__(self, "key_id", key_id(self.name, ED25519_TYPE, pub))

    def verify(self, text: bytes, signature: bytes) -> None:
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature as exc:
            raise NoteError(f"Ed25519 signature from {self.name} does not verify") from exc

    def vkey(self) -> str:
        """The verifier key string ``name+keyid+base64(0x01 || pubkey)``."""
        pub = self.public_key.public_bytes_raw()
        return _vkey(self.name, self.key_id, ED25519_TYPE, pub)


@dataclass(frozen=True, slots=True)
class MLDSA65NoteSigner:
    """Signs note text with ML-DSA-65 (type :data:`MLDSA65_TYPE`), pure mode, empty context."""

    name: str
    private_key: MLDSA65PrivateKey = field(repr=False)
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        pub = self.private_key.public_key().public_bytes_raw()
        object.__setattr__(self, "key_id", key_id(self.name, MLDSA65_TYPE, pub))

    def sign(self, text: bytes) -> bytes:
        return self.private_key.sign(text)

    def verifier(self) -> MLDSA65NoteVerifier:
        return MLDSA65NoteVerifier(self.name, self.private_key.public_key())


@dataclass(frozen=True, slots=True)
class MLDSA65NoteVerifier:
    """Verifies ML-DSA-65 note signatures (type :data:`MLDSA65_TYPE`)."""

    name: str
    public_key: MLDSA65PublicKey
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        pub = self.public_key.public_bytes_raw()
        object.__setattr__(self, "key_id", key_id(self.name, MLDSA65_TYPE, pub))

    def verify(self, text: bytes, signature: bytes) -> None:
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature as exc:
            raise NoteError(f"ML-DSA-65 signature from {self.name} does not verify") from exc

    def vkey(self) -> str:
        """The verifier key string ``name+keyid+base64(MLDSA65_TYPE || pubkey)``."""
        pub = self.public_key.public_bytes_raw()
        return _vkey(self.name, self.key_id, MLDSA65_TYPE, pub)


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """tlog-cosignature §"Signed message": header line, time line, then the note text."""
    if not 0 <= timestamp <= _MAX_U63:
        raise NoteError(f"cosignature timestamp {timestamp} is out of range")
    return _COSIGNATURE_HEADER + b"time %d\n" % timestamp + text


@dataclass(frozen=True, slots=True)
class CosignatureV1Verifier:
    """Verifies a witness's ``cosignature/v1`` (type ``0x04``, c2sp.org/tlog-cosignature).

    The signature blob is the 72-byte ``timestamped_signature``: a big-endian
    u64 timestamp followed by the Ed25519 signature over
    :func:`cosignature_message`.
    """

    name: str
    public_key: Ed25519PublicKey
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        pub = self.public_key.public_bytes_raw()
        object.__setattr__(self, "key_id", key_id(self.name, COSIGNATURE_V1_TYPE, pub))

    @staticmethod
    def timestamp_of(signature: bytes) -> int:
        """The timestamp carried in a ``timestamped_signature`` (not verified by itself)."""
        if len(signature) != 72:
            raise NoteError(f"cosignature is {len(signature)} bytes, expected 72")
        (timestamp,) = struct.unpack(">Q", signature[:8])
        return int(timestamp)

    def verify(self, text: bytes, signature: bytes) -> None:
        timestamp = self.timestamp_of(signature)
        try:
            self.public_key.verify(signature[8:], cosignature_message(text, timestamp))
        except InvalidSignature as exc:
            raise NoteError(f"cosignature from witness {self.name} does not verify") from exc

    def vkey(self) -> str:
        """The verifier key string ``name+keyid+base64(0x04 || pubkey)``."""
        pub = self.public_key.public_bytes_raw()
        return _vkey(self.name, self.key_id, COSIGNATURE_V1_TYPE, pub)


def verifier_key(name: str, public_key: Ed25519PublicKey | MLDSA65PublicKey) -> str:
    """The C2SP verifier key string for an Ed25519 or ML-DSA-65 note key."""
    if isinstance(public_key, Ed25519PublicKey):
        return Ed25519NoteVerifier(name, public_key).vkey()
    return MLDSA65NoteVerifier(name, public_key).vkey()


def parse_verifier_key(
    vkey: str,
) -> Ed25519NoteVerifier | MLDSA65NoteVerifier | CosignatureV1Verifier:
    """Parse ``name+keyidhex+base64(type || pubkey)`` and check the key id matches."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise NoteError("verifier key must be name+keyid+key")
    name, hex_id, b64 = parts
    check_key_name(name)
    if len(hex_id) != 8 or hex_id.lower() != hex_id:
        raise NoteError("verifier key id must be 8 lowercase hex digits")
    try:
        kid = bytes.fromhex(hex_id)
    except ValueError as exc:
        raise NoteError("verifier key id is not hex") from exc
    blob = strict_b64decode(b64, "verifier key")
    verifier: Ed25519NoteVerifier | MLDSA65NoteVerifier | CosignatureV1Verifier
    try:
        if blob[:1] == ED25519_TYPE and len(blob) == 1 + _ED25519_PUB:
            verifier = Ed25519NoteVerifier(name, Ed25519PublicKey.from_public_bytes(blob[1:]))
        elif blob[:1] == COSIGNATURE_V1_TYPE and len(blob) == 1 + _ED25519_PUB:
            verifier = CosignatureV1Verifier(name, Ed25519PublicKey.from_public_bytes(blob[1:]))
        elif blob.startswith(MLDSA65_TYPE) and len(blob) == len(MLDSA65_TYPE) + _MLDSA65_PUB:
            pub = MLDSA65PublicKey.from_public_bytes(blob[len(MLDSA65_TYPE) :])
            verifier = MLDSA65NoteVerifier(name, pub)
        else:
            raise NoteError("verifier key has an unsupported signature type or length")
    except ValueError as exc:
        raise NoteError("verifier key holds an invalid public key") from exc
    if verifier.key_id != kid:
        raise NoteError("verifier key id does not match its name and key")
    return verifier


def signer_key(name: str, private_key: Ed25519PrivateKey | MLDSA65PrivateKey) -> str:
    """``PRIVATE+KEY+name+keyid+base64(type || seed)`` as the Go note package writes it.

    The result is secret; store it as a key file, never log it.
    """
    if isinstance(private_key, Ed25519PrivateKey):
        kid = Ed25519NoteSigner(name, private_key).key_id
        sig_type, seed = ED25519_TYPE, private_key.private_bytes_raw()
    else:
        kid = MLDSA65NoteSigner(name, private_key).key_id
        sig_type, seed = MLDSA65_TYPE, private_key.private_bytes_raw()
    return "PRIVATE+KEY+" + _vkey(name, kid, sig_type, seed)


def parse_signer_key(skey: str) -> Ed25519NoteSigner | MLDSA65NoteSigner:
    """Parse a :func:`signer_key` string; the key id must match the derived public key."""
    prefix = "PRIVATE+KEY+"
    if not skey.startswith(prefix):
        raise NoteError("signer key must start with PRIVATE+KEY+")
    parts = skey[len(prefix) :].split("+", 2)
    if len(parts) != 3:
        raise NoteError("signer key must be PRIVATE+KEY+name+keyid+key")
    name, hex_id, b64 = parts
    check_key_name(name)
    blob = strict_b64decode(b64, "signer key")
    signer: Ed25519NoteSigner | MLDSA65NoteSigner
    try:
        if blob[:1] == ED25519_TYPE and len(blob) == 33:
            signer = Ed25519NoteSigner(name, Ed25519PrivateKey.from_private_bytes(blob[1:]))
        elif blob.startswith(MLDSA65_TYPE) and len(blob) == len(MLDSA65_TYPE) + 32:
            signer = MLDSA65NoteSigner(
                name, MLDSA65PrivateKey.from_seed_bytes(blob[len(MLDSA65_TYPE) :])
            )
        else:
            raise NoteError("signer key has an unsupported signature type or length")
    except ValueError as exc:
        raise NoteError("signer key holds an invalid private key") from exc
    if signer.key_id.hex() != hex_id:
        raise NoteError("signer key id does not match its name and key")
    return signer


# -- notes ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 4-byte key id, and the signature after the id."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The signature line, with its final newline."""
        return signature_line(self.name, self.key_id, self.signature)


@dataclass(frozen=True, slots=True)
class SignedNote:
    """An opened note: its text, the signatures that verified, and the ignored ones."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...] = ()

    def verified_by(self, verifier: NoteVerifier) -> NoteSignature | None:
        """The verified signature from ``verifier``'s key, if there is one."""
        for sig in self.signatures:
            if sig.name == verifier.name and sig.key_id == verifier.key_id:
                return sig
        return None


def signature_line(name: str, kid: bytes, signature: bytes) -> str:
    """``— <name> <base64(key id || signature)>`` with the final newline."""
    check_key_name(name)
    if len(kid) != 4:
        raise NoteError("key id must be 4 bytes")
    return f"{_SIG_PREFIX}{name} {base64.b64encode(kid + signature).decode('ascii')}\n"


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """Sign ``text`` with every signer; return the signed note bytes."""
    data = check_note_text(text)
    if not signers:
        raise NoteError("a note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signers")
    lines = [signature_line(s.name, s.key_id, s.sign(data)) for s in signers]
    return data + b"\n" + "".join(lines).encode("utf-8")


def parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise NoteError("signature line does not start with an em dash and a space")
    rest = line[len(_SIG_PREFIX) :]
    name, sep, b64 = rest.partition(" ")
    if not sep:
        raise NoteError("signature line has no signature")
    check_key_name(name)
    if len(b64) > (_MAX_SIG_BYTES + 2) // 3 * 4:
        raise NoteError(f"signature from {name} is too long")
    blob = strict_b64decode(b64, f"signature from {name}")
    if len(blob) < 5:
        raise NoteError(f"signature from {name} is too short")
    return NoteSignature(name, blob[:4], blob[4:])


def split_note(msg: bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and (unverified) signature lines."""
    try:
        whole = msg.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("signed note is not valid UTF-8") from exc
    _check_controls(msg, "signed note")
    if not whole.endswith("\n"):
        raise NoteError("signed note does not end with a newline")
    # signed-note §Format: the text is separated from the signatures by the
    # *last* empty line; the text keeps its final newline.
    split = whole.rfind("\n\n")
    if split < 0:
        raise NoteError("signed note has no blank line before its signatures")
    text = whole[: split + 1]
    sig_block = whole[split + 2 :]
    if not sig_block:
        raise NoteError("signed note has no signature lines")
    raw_lines = sig_block[:-1].split("\n")
    if len(raw_lines) > MAX_SIGNATURES:
        raise NoteError(f"signed note has more than {MAX_SIGNATURES} signatures")
    return text, [parse_signature_line(line) for line in raw_lines]


def open_note(msg: bytes, verifiers: Sequence[NoteVerifier]) -> SignedNote:
    """Verify a signed note against trusted ``verifiers`` and return it.

    signed-note §Signatures: lines whose (name, key id) match no verifier are
    ignored (kept in ``unverified``); a line from a known key MUST be verified,
    and if it fails the whole note is rejected (we take the SHOULD); if no
    known key signed, the note is rejected.  A known key's repeated line is
    verified too, so a note carries no bytes that no check looked at.
    """
    text, sigs = split_note(msg)
    data = text.encode("utf-8")
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in sigs:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            unverified.append(sig)
            continue
        v.verify(data, sig.signature)
        if (sig.name, sig.key_id) not in seen:
            seen.add((sig.name, sig.key_id))
            verified.append(sig)
    if not verified:
        raise NoteError("note is not signed by any trusted key")
    return SignedNote(text, tuple(verified), tuple(unverified))
