"""Read-side queries: what officers and tools look at (no writes, no log changes)."""

from __future__ import annotations

import json
from typing import Any, Protocol

from sqlalchemy import Engine, and_, select

from detente.core.canonical import b64e, parse
from detente.core.envelope import Content
from detente.core.party import PartyCard
from detente.core.timefmt import format_time
from detente.errors import EncodingError
from detente.node.clock import from_ms
from detente.node.log import NodeLog
from detente.store.schema import (
    alarms,
    checkpoints,
    cosignatures,
    log_leaves,
    messages,
    notes,
    outbox,
    peer_checkpoints,
    receipts,
)

__all__ = [
    "alarm_list",
    "checkpoint_info",
    "message_detail",
    "message_list",
    "peer_list",
    "proof_for",
]


class NotFoundError(EncodingError):
    """The thing asked for does not exist here."""


class Node(Protocol):
    """What these queries need: a running :class:`~detente.node.service.Node`,
    or the read-only view :class:`~detente.node.offline.StoreView`."""

    engine: Engine
    card: PartyCard
    log: NodeLog

    def latest_checkpoint(self) -> tuple[bytes, int]: ...

    def peers(self) -> dict[str, PartyCard]: ...


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "direction": row.direction,
        "agreement": row.agreement,
        "from": row.sender,
        "to": row.recipient,
        "seq": row.seq,
        "created": row.created,
        "type": row.type,
        "tlp": row.tlp,
        "case": row.case_id,
        "reply_to": row.reply_to,
        "exercise": row.exercise,
        "log_index": row.log_index,
        "stored": format_time(from_ms(row.stored_at)),
        "delivery": getattr(row, "state", None),
    }


def message_list(
    node: Node, *, direction: str | None = None, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    query = (
        select(messages, outbox.c.state)
        .outerjoin(outbox, outbox.c.message_id == messages.c.id)
        .order_by(messages.c.stored_at.desc(), messages.c.id.desc())
        .limit(min(max(limit, 1), 1000))
        .offset(max(offset, 0))
    )
    if direction is not None:
        if direction not in ("in", "out"):
            raise EncodingError("direction must be 'in' or 'out'")
        query = query.where(messages.c.direction == direction)
    with node.engine.connect() as conn:
        return [_summary(row) for row in conn.execute(query)]


def message_detail(node: Node, message_id: str) -> dict[str, Any]:
    with node.engine.connect() as conn:
        row = conn.execute(
            select(messages, outbox.c.state, outbox.c.attempts, outbox.c.last_error)
            .outerjoin(outbox, outbox.c.message_id == messages.c.id)
            .where(messages.c.id == message_id)
        ).first()
        if row is None:
            raise NotFoundError(f"no message {message_id}")
        receipt = conn.execute(
            select(receipts.c.receipt, receipts.c.direction, notes.c.note)
            .outerjoin(notes, notes.c.hash == receipts.c.checkpoint_hash)
            .where(receipts.c.message_id == message_id)
        ).first()
    detail = _summary(row)
    content = Content.from_plaintext(bytes(row.plaintext)) if row.plaintext else None
    detail.update(
        envelope=parse(bytes(row.envelope)),
        envelope_hash=row.envelope_hash,
        content=None
        if content is None
        else {
            "type": content.type,
            "tlp": content.tlp,
            "personal_data": content.personal_data,
            "body": dict(content.body),
        },
        receipt=parse(bytes(receipt.receipt)) if receipt else None,
        receipt_checkpoint=bytes(receipt.note).decode() if receipt and receipt.note else None,
        attempts=row.attempts,
        last_error=row.last_error,
    )
    return detail


def checkpoint_info(node: Node) -> dict[str, Any]:
    note, size = node.latest_checkpoint()
    with node.engine.connect() as conn:
        lines = list(
            conn.execute(
                select(cosignatures.c.witness, cosignatures.c.line, cosignatures.c.timestamp)
                .where(cosignatures.c.size == size)
                .order_by(cosignatures.c.witness)
            )
        )
    ed, ml = node.card.log_verifier_keys()
    return {
        "origin": node.card.log_origin,
        "size": size,
        "checkpoint": note.decode(),
        "cosigned": note.decode() + "".join(line.line for line in lines),
        "cosignatures": [
            {"witness": w.witness, "line": w.line, "timestamp": w.timestamp} for w in lines
        ],
        "verifier_keys": {"ed25519": ed, "mldsa65": ml},
    }


def proof_for(node: Node, message_id: str) -> dict[str, Any]:
    """Everything an independent RFC 9162 / C2SP verifier needs for one message."""
    note, size = node.latest_checkpoint()
    with node.engine.connect() as conn:
        leaf = conn.execute(
            select(log_leaves.c.idx, log_leaves.c.entry, log_leaves.c.leaf_hash).where(
                and_(log_leaves.c.ref == message_id, log_leaves.c.kind == "envelope")
            )
        ).first()
    if leaf is None:
        raise NotFoundError(f"message {message_id} is not in this log")
    if leaf.idx >= size:
        raise NotFoundError(f"message {message_id} is not yet under a signed checkpoint")
    proof = node.log.inclusion_proof(leaf.idx, size)
    ed, ml = node.card.log_verifier_keys()
    return {
        "message_id": message_id,
        "leaf_index": leaf.idx,
        "tree_size": size,
        "leaf_data": b64e(bytes(leaf.entry)),
        "leaf_hash": b64e(bytes(leaf.leaf_hash)),
        "inclusion_proof": [b64e(h) for h in proof],
        "checkpoint": note.decode(),
        "verifier_keys": {"ed25519": ed, "mldsa65": ml},
    }


def alarm_list(node: Node, *, include_acknowledged: bool = False) -> list[dict[str, Any]]:
    query = select(alarms).order_by(alarms.c.id.desc()).limit(500)
    if not include_acknowledged:
        query = query.where(alarms.c.acknowledged_at.is_(None))
    with node.engine.connect() as conn:
        return [
            {
                "id": row.id,
                "kind": row.kind,
                "peer": row.peer,
                "detail": row.detail,
                "evidence": json.loads(row.evidence) if row.evidence else None,
                "created": format_time(from_ms(row.created_at)),
                "acknowledged": row.acknowledged_at is not None,
            }
            for row in conn.execute(query)
        ]


def peer_list(node: Node) -> list[dict[str, Any]]:
    out = []
    with node.engine.connect() as conn:
        for peer, card in sorted(node.peers().items()):
            latest = conn.execute(
                select(peer_checkpoints.c.size, peer_checkpoints.c.received_at)
                .where(peer_checkpoints.c.peer == peer)
                .order_by(peer_checkpoints.c.size.desc())
                .limit(1)
            ).first()
            pending = conn.execute(
                select(outbox.c.message_id).where(
                    and_(outbox.c.recipient == peer, outbox.c.state == "pending")
                )
            ).all()
            out.append(
                {
                    "id": peer,
                    "name": card.name("en"),
                    "role": card.role,
                    "endpoint": card.endpoint,
                    "witnessed_size": latest.size if latest else None,
                    "witnessed_at": format_time(from_ms(latest.received_at)) if latest else None,
                    "pending": len(pending),
                }
            )
    return out


def checkpoint_note(node: Node, size: int) -> bytes:
    """The checkpoint this node signed at ``size``."""
    with node.engine.connect() as conn:
        note = conn.execute(
            select(checkpoints.c.note).where(checkpoints.c.size == size)
        ).scalar_one_or_none()
    if note is None:
        raise NotFoundError(f"this node signed no checkpoint of size {size}")
    return bytes(note)
