"""What a party's log records, and the keys its checkpoints are signed with.

Each node keeps an append-only RFC 9162 Merkle log (:mod:`detente.core.merkle`)
of every envelope it sent or received and every receipt it issued or got.  A
leaf is ``detente/v1/leaf`` ‖ NUL ‖ canonical JSON of a small entry naming the
object by its hash plus the routing facts an auditor needs without the
content (who, to whom, which channel position) — the payload stays in the
store, encrypted; the log proves it existed, in that order, at that size.

A log's checkpoints (:mod:`detente.core.checkpoint`) are signed under the key
name ``detente.log/<party id>`` with the party's Ed25519 key (type 0x01, so
any C2SP verifier or witness can check them) and its ML-DSA-65 key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detente.core.canonical import signing_input
from detente.core.keys import PartyKeys, ed25519_public, mldsa65_public
from detente.core.merkle import leaf_hash
from detente.core.note import (
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    MLDSA65NoteSigner,
    MLDSA65NoteVerifier,
    NoteSigner,
    NoteVerifier,
)

if TYPE_CHECKING:
    from detente.core.envelope import Envelope
    from detente.core.party import PartyCard
    from detente.core.receipt import Receipt

__all__ = [
    "entry_leaf_hash",
    "envelope_entry",
    "log_signers",
    "log_verifiers",
    "receipt_entry",
]

_LEAF_DOMAIN = "leaf"


def envelope_entry(envelope: Envelope) -> dict[str, Any]:
    """The log entry for an envelope sent or received."""
    return {
        "kind": "envelope",
        "hash": envelope.hash(),
        "id": envelope.id,
        "agreement": envelope.agreement,
        "from": envelope.from_,
        "to": envelope.to,
        "seq": envelope.seq,
        "type": envelope.type,
        "exercise": envelope.exercise,
    }


def receipt_entry(receipt: Receipt) -> dict[str, Any]:
    """The log entry for a receipt issued or got."""
    return {
        "kind": "receipt",
        "hash": receipt.hash(),
        "message_id": receipt.message_id,
        "envelope_hash": receipt.envelope_hash,
        "from": receipt.from_,
        "to": receipt.to,
        "log_index": receipt.log_index,
    }


def entry_bytes(entry: dict[str, Any]) -> bytes:
    """The leaf data of a log entry."""
    return signing_input(_LEAF_DOMAIN, entry)


def entry_leaf_hash(entry: dict[str, Any]) -> bytes:
    """RFC 9162 leaf hash of a log entry."""
    return leaf_hash(entry_bytes(entry))


def log_origin(party_id: str) -> str:
    return f"detente.log/{party_id}"


def log_signers(party_id: str, keys: PartyKeys) -> tuple[NoteSigner, ...]:
    """The note signers of ``party_id``'s log: Ed25519 then ML-DSA-65."""
    origin = log_origin(party_id)
    return (Ed25519NoteSigner(origin, keys.ed25519), MLDSA65NoteSigner(origin, keys.mldsa65))


def log_verifiers(card: PartyCard) -> tuple[NoteVerifier, ...]:
    """The note verifiers for ``card``'s log (both must verify, see checkpoint.py)."""
    origin = log_origin(card.id)
    return (
        Ed25519NoteVerifier(origin, ed25519_public(card.keys.ed25519)),
        MLDSA65NoteVerifier(origin, mldsa65_public(card.keys.mldsa65)),
    )
