"""A party's keys: what it signs with, what others encrypt to, and fingerprints.

Each party holds four key pairs (DESIGN.md, "Party card"):

- **Ed25519** signs every envelope and receipt (fast, per message) and the
  classic line of its log checkpoints (what every C2SP tool verifies);
- **ML-DSA-65** (FIPS 204) signs agreements and checkpoints, so the record
  stays provable after Ed25519 falls to a quantum computer: every envelope and
  receipt is bound by hashes into PQ-signed checkpoints;
- **ML-KEM-768 + X25519** is the hybrid HPKE recipient key (RFC 9180 with the
  ``MLKEM768_X25519`` KEM); an agreement may choose plain X25519 instead, which
  uses the X25519 half alone.

One Ed25519 key signs both messages and notes.  That is safe because every
Détente signature input starts with ``detente/v1/<type>`` and a NUL byte
(:mod:`detente.core.canonical`), and C2SP note text cannot contain a NUL.

The fingerprint is SHA-256 over both signing keys, shown as sixteen groups of
four hex digits to be read aloud over a telephone when agencies first
exchange cards (the out-of-band check TUF's root of trust also needs).

This module does not store keys; ``detente.node`` writes :meth:`PartyKeys.to_json`
to a file readable by the node's user only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from detente.core.canonical import b64d, b64e
from detente.errors import ConfigError, EncodingError, SignatureError

__all__ = [
    "ED25519_PUBLIC_SIZE",
    "MLDSA65_PUBLIC_SIZE",
    "MLKEM768_PUBLIC_SIZE",
    "PartyKeys",
    "PublicKeys",
    "ed25519_public",
    "fingerprint",
    "format_fingerprint",
    "verify_ed25519",
    "verify_mldsa65",
]

ED25519_PUBLIC_SIZE = 32
MLDSA65_PUBLIC_SIZE = 1952
MLKEM768_PUBLIC_SIZE = 1184
X25519_PUBLIC_SIZE = 32
_FINGERPRINT_DOMAIN = b"detente/v1/fingerprint\x00"


@lru_cache(maxsize=4096)
def ed25519_public(raw: bytes) -> Ed25519PublicKey:
    """Load (and cache: cards are verified against many times) an Ed25519 key."""
    return Ed25519PublicKey.from_public_bytes(raw)


@lru_cache(maxsize=1024)
def mldsa65_public(raw: bytes) -> MLDSA65PublicKey:
    """Load (and cache) an ML-DSA-65 public key."""
    return MLDSA65PublicKey.from_public_bytes(raw)


@lru_cache(maxsize=1024)
def hybrid_public(mlkem_raw: bytes, x25519_raw: bytes) -> hpke.MLKEM768X25519PublicKey:
    """Load (and cache) the hybrid HPKE recipient key."""
    return hpke.MLKEM768X25519PublicKey(
        MLKEM768PublicKey.from_public_bytes(mlkem_raw),
        X25519PublicKey.from_public_bytes(x25519_raw),
    )


@lru_cache(maxsize=1024)
def x25519_public(raw: bytes) -> X25519PublicKey:
    """Load (and cache) an X25519 public key."""
    return X25519PublicKey.from_public_bytes(raw)


def verify_ed25519(public: bytes, signature: bytes, data: bytes, *, what: str) -> None:
    """Raise :class:`SignatureError` naming ``what`` unless the signature verifies."""
    try:
        ed25519_public(public).verify(signature, data)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError(f"{what}: Ed25519 signature does not verify") from exc


def verify_mldsa65(public: bytes, signature: bytes, data: bytes, *, what: str) -> None:
    """Raise :class:`SignatureError` naming ``what`` unless the signature verifies."""
    try:
        mldsa65_public(public).verify(signature, data)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureError(f"{what}: ML-DSA-65 signature does not verify") from exc


def fingerprint(ed25519_key: bytes, mldsa65_key: bytes) -> bytes:
    """SHA-256 over both signing keys (domain-separated)."""
    return hashlib.sha256(_FINGERPRINT_DOMAIN + ed25519_key + mldsa65_key).digest()


def format_fingerprint(digest: bytes) -> str:
    """Sixteen groups of four upper-case hex digits, for reading aloud."""
    text = digest.hex().upper()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


@dataclass(frozen=True, slots=True)
class PublicKeys:
    """The public half of a party's keys, as published on its card."""

    ed25519: bytes
    mldsa65: bytes
    mlkem768: bytes
    x25519: bytes

    def __post_init__(self) -> None:
        for name, value, size in (
            ("ed25519", self.ed25519, ED25519_PUBLIC_SIZE),
            ("mldsa65", self.mldsa65, MLDSA65_PUBLIC_SIZE),
            ("mlkem768", self.mlkem768, MLKEM768_PUBLIC_SIZE),
            ("x25519", self.x25519, X25519_PUBLIC_SIZE),
        ):
            if not isinstance(value, bytes) or len(value) != size:
                raise EncodingError(f"keys.{name} must be {size} bytes")

    @property
    def fingerprint(self) -> bytes:
        return fingerprint(self.ed25519, self.mldsa65)

    @property
    def key_id(self) -> str:
        """Hex fingerprint: names the signing keys in agreement signatures."""
        return self.fingerprint.hex()

    def to_json(self) -> dict[str, Any]:
        return {
            "ed25519": b64e(self.ed25519),
            "mldsa65": b64e(self.mldsa65),
            "mlkem768": b64e(self.mlkem768),
            "x25519": b64e(self.x25519),
        }

    @classmethod
    def from_json(cls, obj: Any) -> PublicKeys:
        if not isinstance(obj, dict) or set(obj) != {"ed25519", "mldsa65", "mlkem768", "x25519"}:
            raise EncodingError("keys must have exactly ed25519, mldsa65, mlkem768, x25519")
        return cls(
            ed25519=b64d(obj["ed25519"], field="keys.ed25519"),
            mldsa65=b64d(obj["mldsa65"], field="keys.mldsa65"),
            mlkem768=b64d(obj["mlkem768"], field="keys.mlkem768"),
            x25519=b64d(obj["x25519"], field="keys.x25519"),
        )


@dataclass(frozen=True, slots=True)
class PartyKeys:
    """A party's private keys. Never leaves the node; never logged."""

    ed25519: Ed25519PrivateKey
    mldsa65: MLDSA65PrivateKey
    mlkem768: MLKEM768PrivateKey
    x25519: X25519PrivateKey
    public: PublicKeys

    @classmethod
    def generate(cls) -> PartyKeys:
        return cls._from_private(
            Ed25519PrivateKey.generate(),
            MLDSA65PrivateKey.generate(),
            MLKEM768PrivateKey.generate(),
            X25519PrivateKey.generate(),
        )

    @classmethod
    def _from_private(
        cls,
        ed: Ed25519PrivateKey,
        ml: MLDSA65PrivateKey,
        kem: MLKEM768PrivateKey,
        xk: X25519PrivateKey,
    ) -> PartyKeys:
        public = PublicKeys(
            ed25519=ed.public_key().public_bytes_raw(),
            mldsa65=ml.public_key().public_bytes_raw(),
            mlkem768=kem.public_key().public_bytes_raw(),
            x25519=xk.public_key().public_bytes_raw(),
        )
        return cls(ed, ml, kem, xk, public)

    @property
    def hybrid_private(self) -> hpke.MLKEM768X25519PrivateKey:
        return hpke.MLKEM768X25519PrivateKey(self.mlkem768, self.x25519)

    def sign_ed25519(self, data: bytes) -> bytes:
        return self.ed25519.sign(data)

    def sign_mldsa65(self, data: bytes) -> bytes:
        return self.mldsa65.sign(data)

    def to_json(self) -> dict[str, Any]:
        """Private seeds, for the node's key file (mode 0600)."""
        return {
            "kind": "detente-party-keys",
            "v": 1,
            "ed25519": b64e(self.ed25519.private_bytes_raw()),
            "mldsa65": b64e(self.mldsa65.private_bytes_raw()),
            "mlkem768": b64e(self.mlkem768.private_bytes_raw()),
            "x25519": b64e(self.x25519.private_bytes_raw()),
        }

    @classmethod
    def from_json(cls, obj: Any) -> PartyKeys:
        expected = {"kind", "v", "ed25519", "mldsa65", "mlkem768", "x25519"}
        if not isinstance(obj, dict) or set(obj) != expected:
            raise ConfigError("key file must be a detente-party-keys object")
        if obj["kind"] != "detente-party-keys" or obj["v"] != 1:
            raise ConfigError("key file is not a version 1 detente-party-keys file")
        try:
            return cls._from_private(
                Ed25519PrivateKey.from_private_bytes(b64d(obj["ed25519"], field="ed25519")),
                MLDSA65PrivateKey.from_seed_bytes(b64d(obj["mldsa65"], field="mldsa65")),
                MLKEM768PrivateKey.from_seed_bytes(b64d(obj["mlkem768"], field="mlkem768")),
                X25519PrivateKey.from_private_bytes(b64d(obj["x25519"], field="x25519")),
            )
        except (EncodingError, ValueError) as exc:
            raise ConfigError(f"key file holds an invalid key: {exc}") from exc
