"""Receipts: the recipient's signed word that it committed an envelope, and where.

A receipt names the envelope (message id and envelope hash), the time the
recipient received it, the index of the envelope's leaf in the recipient's
log, the hash of a checkpoint of that log signed with Ed25519 and ML-DSA-65,
and the inclusion proof of the leaf in that checkpoint; the recipient signs
it all with Ed25519 (domain ``receipt``).

The checkpoint travels beside the receipts, not inside each one: a batch's
receipts share one checkpoint note (about 4.6 KB with its ML-DSA-65
signature), and the receipt binds it by SHA-256 of the note's bytes.  Evidence
for an arbiter is the receipt plus that note; :func:`verify_receipt` needs both.

The node returns receipts in the same HTTP exchange that delivered the
envelopes, after committing durably (DESIGN.md "Receipt"), so "was it
received, and when" is settled for good:

- the signature binds the recipient to the time and position it claims;
- the inclusion proof lets the sender check at once that the envelope is in
  the recipient's log at that position;
- the checkpoint, kept by the sender and cross-checked by witnesses for
  consistency, stops the recipient from later rewriting its log.

:func:`verify_receipt` checks all of that from bytes, with no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from detente.core.agreement import Agreement, parse_ref
from detente.core.canonical import b64d, b64e, canonical, parse, signing_input
from detente.core.checkpoint import Checkpoint, verify_checkpoint
from detente.core.envelope import Envelope
from detente.core.ids import check_uuid7
from detente.core.keys import PartyKeys, verify_ed25519
from detente.core.logentry import entry_leaf_hash, envelope_entry, log_verifiers
from detente.core.merkle import verify_inclusion
from detente.core.party import check_party_id
from detente.core.timefmt import format_time, parse_time
from detente.errors import EncodingError, NoteError, ReceiptError

__all__ = ["Receipt", "issue_receipt", "note_hash", "verify_receipt"]

_DOMAIN = "receipt"
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_FIELDS = {
    "v",
    "message_id",
    "envelope_hash",
    "agreement",
    "from",
    "to",
    "received",
    "log_index",
    "checkpoint_hash",
    "inclusion",
    "sig",
}
_MAX_PROOF = 64


@dataclass(frozen=True, slots=True)
class Receipt:
    """A signed receipt (DESIGN.md, "Receipt"); ``from_`` is the recipient who signs."""

    v: int
    message_id: str
    envelope_hash: str
    agreement: str
    from_: str
    to: str
    received: str
    log_index: int
    checkpoint_hash: str
    inclusion: tuple[bytes, ...]
    sig: bytes
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.v != 1:
            raise EncodingError(f"receipt version {self.v!r} is not supported")
        check_uuid7(self.message_id, field="receipt message_id")
        if not isinstance(self.envelope_hash, str) or not _HASH_RE.match(self.envelope_hash):
            raise EncodingError("receipt envelope_hash must be sha256:<64 hex digits>")
        parse_ref(self.agreement)
        check_party_id(self.from_, field="receipt from")
        check_party_id(self.to, field="receipt to")
        parse_time(self.received, field="receipt received")
        if not isinstance(self.log_index, int) or isinstance(self.log_index, bool):
            raise EncodingError("receipt log_index must be an integer")
        if self.log_index < 0:
            raise EncodingError("receipt log_index must be >= 0")
        if not isinstance(self.checkpoint_hash, str) or not _HASH_RE.match(self.checkpoint_hash):
            raise EncodingError("receipt checkpoint_hash must be sha256:<64 hex digits>")
        if len(self.inclusion) > _MAX_PROOF or any(len(h) != 32 for h in self.inclusion):
            raise EncodingError("receipt inclusion proof must be a list of SHA-256 hashes")
        if len(self.sig) != 64:
            raise EncodingError("receipt sig must be a 64-byte Ed25519 signature")

    def body(self) -> dict[str, Any]:
        return {
            "v": self.v,
            "message_id": self.message_id,
            "envelope_hash": self.envelope_hash,
            "agreement": self.agreement,
            "from": self.from_,
            "to": self.to,
            "received": self.received,
            "log_index": self.log_index,
            "checkpoint_hash": self.checkpoint_hash,
            "inclusion": [b64e(h) for h in self.inclusion],
        }

    def signed_bytes(self) -> bytes:
        return signing_input(_DOMAIN, self.body())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "sig": b64e(self.sig)}

    def to_bytes(self) -> bytes:
        """Canonical JSON of the receipt (computed once)."""
        if self._wire is None:
            object.__setattr__(self, "_wire", canonical(self.to_json()))
        assert self._wire is not None  # noqa: S101 - for the type checker
        return self._wire

    def hash(self) -> str:
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_json(cls, obj: Any) -> Receipt:
        if not isinstance(obj, dict):
            raise EncodingError("receipt must be a JSON object")
        unknown, missing = set(obj) - _FIELDS, _FIELDS - set(obj)
        if unknown:
            raise EncodingError(f"receipt has unknown fields: {', '.join(sorted(unknown))}")
        if missing:
            raise EncodingError(f"receipt lacks fields: {', '.join(sorted(missing))}")
        if not isinstance(obj["inclusion"], list):
            raise EncodingError("receipt inclusion must be a list")
        return cls(
            v=obj["v"],
            message_id=obj["message_id"],
            envelope_hash=obj["envelope_hash"],
            agreement=obj["agreement"],
            from_=obj["from"],
            to=obj["to"],
            received=obj["received"],
            log_index=obj["log_index"],
            checkpoint_hash=obj["checkpoint_hash"],
            inclusion=tuple(b64d(h, field="receipt inclusion") for h in obj["inclusion"]),
            sig=b64d(obj["sig"], field="receipt sig"),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        return cls.from_json(parse(data))


def issue_receipt(
    envelope: Envelope,
    *,
    me: str,
    my_keys: PartyKeys,
    received: datetime,
    log_index: int,
    checkpoint: bytes,
    inclusion: Sequence[bytes],
) -> Receipt:
    """Sign a receipt for ``envelope`` once it is committed at ``log_index``.

    ``checkpoint`` is a signed checkpoint of ``me``'s log that includes the
    leaf, and ``inclusion`` the leaf's inclusion proof in it.
    """
    if envelope.to != me:
        raise ReceiptError(
            f"cannot receipt envelope {envelope.id}: it is addressed to {envelope.to}"
        )
    unsigned = Receipt(
        v=1,
        message_id=envelope.id,
        envelope_hash=envelope.hash(),
        agreement=envelope.agreement,
        from_=me,
        to=envelope.from_,
        received=format_time(received),
        log_index=log_index,
        checkpoint_hash=note_hash(checkpoint),
        inclusion=tuple(inclusion),
        sig=bytes(64),
    )
    sig = my_keys.sign_ed25519(unsigned.signed_bytes())
    return replace(unsigned, sig=sig)


def note_hash(note: bytes) -> str:
    """How a receipt names the signed checkpoint note it was issued against."""
    return "sha256:" + hashlib.sha256(note).hexdigest()


def verify_receipt(
    receipt: Receipt,
    envelope: Envelope,
    agreement: Agreement,
    checkpoint: bytes,
    *,
    checkpoint_cache: MutableMapping[str, Checkpoint] | None = None,
) -> Checkpoint:
    """Check that ``receipt`` is the recipient's valid receipt for ``envelope``.

    ``checkpoint`` is the signed note the receipt names by hash.  Returns the
    recipient's checkpoint (for the sender to keep and witness).
    ``agreement`` must be the verified agreement the envelope names.
    ``checkpoint_cache`` (note hash -> checkpoint) lets a caller verify the
    ML-DSA-65 signature of a checkpoint shared by a batch of receipts once.
    """
    what = f"receipt for {envelope.id}"
    if receipt.agreement != envelope.agreement or agreement.ref != envelope.agreement:
        raise ReceiptError(f"{what}: agreement {receipt.agreement} differs from the envelope's")
    if (receipt.from_, receipt.to) != (envelope.to, envelope.from_):
        raise ReceiptError(f"{what}: issued by {receipt.from_} to {receipt.to}, not the parties")
    if receipt.message_id != envelope.id:
        raise ReceiptError(f"{what}: names message {receipt.message_id}")
    if receipt.envelope_hash != envelope.hash():
        raise ReceiptError(f"{what}: names a different envelope (hash mismatch)")
    recipient = agreement.member(envelope.to)
    verify_ed25519(recipient.keys.ed25519, receipt.sig, receipt.signed_bytes(), what=what)
    if note_hash(checkpoint) != receipt.checkpoint_hash:
        raise ReceiptError(f"{what}: the checkpoint given is not the one the receipt names")
    cp = checkpoint_cache.get(receipt.checkpoint_hash) if checkpoint_cache is not None else None
    if cp is not None and cp.origin != recipient.log_origin:
        cp = None  # verified for another log: verify again under this recipient's keys
    if cp is None:
        try:
            cp = verify_checkpoint(checkpoint, recipient.log_origin, log_verifiers(recipient))
        except NoteError as exc:
            raise ReceiptError(f"{what}: checkpoint does not verify: {exc}") from exc
        if checkpoint_cache is not None:
            checkpoint_cache[receipt.checkpoint_hash] = cp
    if receipt.log_index >= cp.size:
        raise ReceiptError(f"{what}: log index {receipt.log_index} is outside the checkpoint")
    verify_inclusion(
        entry_leaf_hash(envelope_entry(envelope)),
        receipt.log_index,
        cp.size,
        receipt.inclusion,
        cp.root,
    )
    return cp
