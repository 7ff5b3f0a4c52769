"""C2SP tlog-checkpoint tree heads and tlog-cosignature witness cosignatures.

A checkpoint (https://c2sp.org/tlog-checkpoint §"Note text") is the note text
``origin\\nsize\\nbase64(root)\\n`` plus optional non-empty extension lines,
signed as a C2SP signed note (:mod:`detente.core.note`).  Détente logs sign it
twice: Ed25519 (type ``0x01``) so every C2SP tool can check it, and ML-DSA-65
so the record stays provable after Ed25519 falls (DESIGN.md, "Checkpoint").
:func:`verify_checkpoint` takes the policy as a parameter: ``require="all"``
(Détente) needs every given log key to have signed; ``require="any"`` is the
plain C2SP rule (one trusted signature suffices).

Witness cosignatures follow https://c2sp.org/tlog-cosignature: signature type
``0x04``, a 72-byte ``timestamped_signature`` (big-endian u64 seconds, then an
Ed25519 signature over ``"cosignature/v1\\ntime <t>\\n" || note text``).  The
timestamp is passed in; nothing here reads a clock.

What it deliberately does not do: check consistency between checkpoints (the
caller uses :func:`detente.core.merkle.verify_consistency`), keep witness
state, decide freshness of a timestamp, or fetch anything.  Every failure
raises :class:`~detente.errors.NoteError`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from detente.core.merkle import HASH_SIZE
from detente.core.note import (
    COSIGNATURE_V1_TYPE,
    CosignatureV1Verifier,
    NoteSigner,
    NoteVerifier,
    cosignature_message,
    key_id,
    open_note,
    parse_signature_line,
    sign_note,
    signature_line,
    split_note,
    strict_b64decode,
)
from detente.errors import NoteError

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "cosign",
    "open_checkpoint",
    "sign_checkpoint",
    "unverified_checkpoint",
    "verify_checkpoint",
    "verify_cosignature",
]

#: tree sizes are uint64 on the wire (RFC 9162, C2SP tlog-tiles); refuse more.
MAX_TREE_SIZE = 2**64 - 1
_MAX_U63 = 2**63 - 1


def _check_line(value: str, what: str) -> None:
    if not value:
        raise NoteError(f"checkpoint {what} is empty")
    if "\n" in value or any(c < "\x20" for c in value):
        raise NoteError(f"checkpoint {what} contains a newline or control character")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, tree size and root hash, plus opaque extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size {self.size} is out of range")
        if len(self.root) != HASH_SIZE:
            raise NoteError(f"checkpoint root is {len(self.root)} bytes, expected {HASH_SIZE}")
        for ext in self.extensions:
            _check_line(ext, "extension line")

    def to_text(self) -> str:
        """The note text: origin, size, base64 root, extensions, each ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse note text strictly (tlog-checkpoint §"Note text")."""
        if not text.endswith("\n"):
            raise NoteError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint text needs origin, size and root lines")
        origin, size_line, root_line, *extensions = lines
        _check_line(origin, "origin")
        # "ASCII decimal ... with no leading zeroes (unless the tree is empty)".
        if not size_line or len(size_line) > 20 or not all("0" <= c <= "9" for c in size_line):
            raise NoteError("checkpoint tree size is not an ASCII decimal number")
        if size_line != "0" and size_line.startswith("0"):
            raise NoteError("checkpoint tree size has a leading zero")
        size = int(size_line)
        root = strict_b64decode(root_line, "checkpoint root hash")
        for ext in extensions:
            if not ext:
                raise NoteError("checkpoint extension lines must be non-empty")
        return cls(origin, size, root, tuple(extensions))


def unverified_checkpoint(note: bytes) -> Checkpoint:
    """The checkpoint in a signed note, signatures NOT checked.

    Only for notes this node signed and holds itself (to read a size or root
    back); anything from outside goes through :func:`verify_checkpoint`.
    """
    text, _ = split_note(note)
    return Checkpoint.from_text(text)


def sign_checkpoint(cp: Checkpoint, signers: Sequence[NoteSigner]) -> bytes:
    """Sign a checkpoint with every signer (Détente: the log's Ed25519 and ML-DSA-65 keys)."""
    return sign_note(cp.to_text(), signers)


def open_checkpoint(
    note: bytes,
    origin: str,
    verifiers: Sequence[NoteVerifier],
    *,
    require: Literal["all", "any"] = "all",
) -> tuple[Checkpoint, tuple[str, ...]]:
    """Like :func:`verify_checkpoint`, also returning the ignored signature lines.

    The ignored lines are where witness cosignatures travel; check them with
    :func:`verify_cosignature`.
    """
    if not verifiers:
        raise NoteError("no log keys given to verify the checkpoint with")
    opened = open_note(note, verifiers)
    if require == "all":
        missing = [
            f"{v.name} (key {v.key_id.hex()})" for v in verifiers if opened.verified_by(v) is None
        ]
        if missing:
            # A Détente checkpoint must carry the post-quantum signature too:
            # accepting Ed25519 alone would let a future forger of Ed25519
            # rewrite the record (DESIGN.md, "Checkpoint").
            raise NoteError(f"checkpoint lacks a valid signature from {', '.join(missing)}")
    elif require != "any":
        raise ValueError("require must be 'all' or 'any'")
    cp = Checkpoint.from_text(opened.text)
    if cp.origin != origin:
        raise NoteError(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    return cp, tuple(sig.line() for sig in opened.unverified)


def verify_checkpoint(
    note: bytes,
    origin: str,
    verifiers: Sequence[NoteVerifier],
    *,
    require: Literal["all", "any"] = "all",
) -> Checkpoint:
    """Open a signed checkpoint from the log ``origin`` and return it.

    ``require="all"`` (Détente): every verifier given must have a valid
    signature line, e.g. the log owner's Ed25519 *and* ML-DSA-65 keys.
    ``require="any"``: the C2SP rule, one trusted signature suffices.
    Signatures from unknown keys (witnesses, rotated keys) are ignored.
    """
    return open_checkpoint(note, origin, verifiers, require=require)[0]


def cosign(
    cp: Checkpoint, witness_name: str, private_key: Ed25519PrivateKey, timestamp: int
) -> str:
    """A witness's ``cosignature/v1`` signature line over ``cp`` at ``timestamp``.

    The line ends in a newline, so ``signed_note + line.encode()`` is the
    cosigned note.  The witness must have checked consistency first; this
    function only signs.
    """
    if isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_U63:
        raise NoteError(f"cosignature timestamp {timestamp} is out of range")
    pub = private_key.public_key().public_bytes_raw()
    kid = key_id(witness_name, COSIGNATURE_V1_TYPE, pub)
    text = cp.to_text().encode("utf-8")
    sig = private_key.sign(cosignature_message(text, timestamp))
    return signature_line(witness_name, kid, timestamp.to_bytes(8, "big") + sig)


def verify_cosignature(cp: Checkpoint, line: str, witness: CosignatureV1Verifier) -> int:
    """Verify one cosignature line from ``witness`` over ``cp``; return its timestamp.

    The line may or may not end in its newline.  Raises :class:`NoteError` if
    the line is not from this witness's name and key id, or does not verify.
    """
    sig = parse_signature_line(line.removesuffix("\n"))
    if sig.name != witness.name or sig.key_id != witness.key_id:
        raise NoteError(f"cosignature line is not from witness {witness.name}")
    witness.verify(cp.to_text().encode("utf-8"), sig.signature)
    return witness.timestamp_of(sig.signature)
