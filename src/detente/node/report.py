"""``detente report``: the accountability record towards one counterparty, signed.

For every notification, request, consultation and ping this node sent the
counterparty in a period, the report carries the evidence, not only the
claim:

- the envelope, as sent (signed by this party; envelopes and receipts are
  canonical JSON, so the objects reproduce the signed bytes);
- the counterparty's receipt for it (signed by them, with the inclusion
  proof) — or nothing, if none came; the checkpoints of their log that
  receipts name are kept once, by hash, in ``receipt_checkpoints``;
- every acknowledgement and response they sent about it: their signed
  envelope and its plaintext (a disclosure: the arbiter can check the
  counterparty signed exactly that, e.g. ``declined`` and its grounds) —
  unless the reply's own labels forbid passing it on (TLP:RED, handling H2
  or H3): then the signed envelope alone, which proves that and when;
- the envelope's inclusion proof in this node's own log, against the
  checkpoint the report carries;
- the counterparty's checkpoints this node witnessed over the period, with
  the consistency proofs between them (their log only grew).

Counts per message type sum up what the items claim.  The whole report is
signed with this party's Ed25519 and ML-DSA-65 keys (domain ``report``).
:mod:`detente.audit` checks it all offline, with only the agreement.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import Engine, and_, select

from detente.core.canonical import b64e, parse, signing_input
from detente.core.checkpoint import unverified_checkpoint
from detente.core.envelope import Content
from detente.core.keys import PartyKeys
from detente.core.party import PartyCard
from detente.core.receipt import note_hash
from detente.core.timefmt import format_time
from detente.node.clock import from_ms
from detente.node.log import NodeLog
from detente.store.schema import agreements as agreements_t
from detente.store.schema import messages, notes, peer_checkpoints, receipts, tracked

__all__ = ["REPORTED_TYPES", "REPORT_DOMAIN", "build_report", "count_items"]

REPORT_DOMAIN = "report"
REPORTED_TYPES = ("notification", "request", "consultation", "ping")
COUNTS = ("sent", "delivered", "acknowledged", "answered", "overdue", "declined")


class _Node(Protocol):
    engine: Engine
    card: PartyCard
    log: NodeLog

    def latest_checkpoint(self) -> tuple[bytes, int]: ...


def _t(ms: int | None) -> str | None:
    return None if ms is None else format_time(from_ms(ms))


def count_items(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The counts a report's items imply (per type): what ``audit`` recomputes too."""
    counts: dict[str, dict[str, int]] = {}
    for item in items:
        c = counts.setdefault(item["type"], dict.fromkeys(COUNTS, 0))
        claimed = item["claimed"]
        c["sent"] += 1
        c["delivered"] += claimed["delivered"] is not None
        c["acknowledged"] += claimed["acknowledged"] is not None
        c["answered"] += claimed["answered"] is not None
        c["overdue"] += bool(claimed["overdue"])
        c["declined"] += claimed["status"] == "declined"
    return counts


def build_report(
    node: _Node,
    keys: PartyKeys,
    counterparty: str,
    *,
    since_ms: int,
    until_ms: int,
    exercise: bool = False,
) -> dict[str, Any]:
    """The signed report of what this node sent ``counterparty`` in [since, until)."""
    me = node.card.id
    note, size = node.latest_checkpoint()
    t, m = tracked.c, messages.c
    with node.engine.connect() as conn:
        rows = conn.execute(
            select(
                tracked,
                m.envelope,
                m.log_index,
                receipts.c.receipt,
                notes.c.note,
            )
            .join(messages, m.id == t.message_id)
            .outerjoin(
                receipts,
                and_(receipts.c.message_id == t.message_id, receipts.c.direction == "got"),
            )
            .outerjoin(notes, notes.c.hash == receipts.c.checkpoint_hash)
            .where(
                and_(
                    t.direction == "out",
                    t.counterparty == counterparty,
                    t.type.in_(REPORTED_TYPES),
                    t.exercise == exercise,
                    t.sent_at >= since_ms,
                    t.sent_at < until_ms,
                )
            )
            .order_by(t.sent_at, t.message_id)
        ).all()
        ids = [r.message_id for r in rows]
        replies: dict[str, list[dict[str, str]]] = {}
        for chunk in range(0, len(ids), 500):
            for reply in conn.execute(
                select(m.reply_to, m.envelope, m.plaintext)
                .where(
                    and_(
                        m.reply_to.in_(ids[chunk : chunk + 500]),
                        m.direction == "in",
                        m.sender == counterparty,
                        m.type.in_(("ack", "response", "pong")),
                    )
                )
                .order_by(m.created, m.id)
            ):
                plaintext = bytes(reply.plaintext)
                entry: dict[str, Any] = {"envelope": parse(bytes(reply.envelope))}
                if _may_disclose(plaintext):
                    entry["plaintext"] = b64e(plaintext)
                replies.setdefault(reply.reply_to, []).append(entry)
        refs = sorted({r.agreement for r in rows})
        docs = {
            f"{a_id}@{version}": bytes(doc)
            for a_id, version, doc in conn.execute(
                select(agreements_t.c.id, agreements_t.c.version, agreements_t.c.document)
            )
        }
        chain = conn.execute(
            select(
                peer_checkpoints.c.size,
                peer_checkpoints.c.note,
                peer_checkpoints.c.proof_from,
                peer_checkpoints.c.proof,
            )
            .where(peer_checkpoints.c.peer == counterparty)
            .order_by(peer_checkpoints.c.size)
        ).all()
    items = []
    receipt_notes: dict[str, str] = {}  # shared by the receipts of one delivery: kept once
    for r in rows:
        overdue = any(
            due is not None and done is None and due <= until_ms
            for due, done in ((r.ack_due, r.acked_at), (r.answer_due, r.answered_at))
        ) and r.state not in ("declined", "completed")
        log_proof = None
        if r.log_index < size:
            log_proof = {
                "leaf_index": r.log_index,
                "proof": [b64e(h) for h in node.log.inclusion_proof(r.log_index, size)],
            }
        items.append(
            {
                "message": r.message_id,
                "case": r.case_id,
                "type": r.type,
                "subject": r.subject,
                "sent": _t(r.sent_at),
                "ack_due": _t(r.ack_due),
                "answer_due": _t(r.answer_due),
                "claimed": {
                    "delivered": _t(r.delivered_at),
                    "acknowledged": _t(r.acked_at),
                    "answered": _t(r.answered_at),
                    "status": r.answer_status,
                    "overdue": overdue,
                },
                "envelope": parse(bytes(r.envelope)),
                "receipt": None if r.receipt is None else parse(bytes(r.receipt)),
                "replies": replies.get(r.message_id, []),
                "log": log_proof,
            }
        )
        if r.note is not None:
            receipt_notes.setdefault(note_hash(bytes(r.note)), bytes(r.note).decode())
    # Their witnessed log: the checkpoints from the first one a receipt names on.
    first = min(
        (unverified_checkpoint(n.encode()).size for n in receipt_notes.values()), default=None
    )
    their_log = []
    for c_size, c_note, proof_from, proof in chain:
        if first is not None and c_size < first and c_size != chain[-1][0]:
            continue
        their_log.append(
            {
                "size": int(c_size),
                "note": bytes(c_note).decode(),
                "proof_from": proof_from,
                "proof": [b64e(bytes(proof[i : i + 32])) for i in range(0, len(proof or b""), 32)],
            }
        )
    report = {
        "v": 1,
        "party": me,
        "counterparty": counterparty,
        "since": _t(since_ms),
        "until": _t(until_ms),
        "exercise": exercise,
        "agreements": [
            parse(doc) for ref, doc in sorted(docs.items()) if ref.split("@")[0] in refs
        ],
        "counts": count_items(items),
        "items": items,
        "receipt_checkpoints": receipt_notes,
        "our_checkpoint": note.decode(),
        "their_log": their_log,
    }
    data = signing_input(REPORT_DOMAIN, report)
    return {
        "report": report,
        "signatures": {
            "ed25519": b64e(keys.sign_ed25519(data)),
            "ml_dsa_65": b64e(keys.sign_mldsa65(data)),
        },
    }


def _may_disclose(plaintext: bytes) -> bool:
    """Whether a reply's content may go into a report, under its own handling labels.

    TLP:RED, and Europol handling codes H2 (not to be passed on without
    permission) and H3 (other restrictions), keep the content out: the
    report then carries the signed envelope only, which proves that an
    answer came and when, not what it said.
    """
    content = Content.from_plaintext(plaintext)
    handling = content.body.get("handling", [])
    return content.tlp != "RED" and not {"H2", "H3"} & set(handling)
