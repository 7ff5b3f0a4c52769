"""Read side of the workflow: cases, the points-of-contact directory, ping rounds."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, select

from detente.core.agreement import Agreement
from detente.core.timefmt import format_time
from detente.node.clock import from_ms
from detente.node.queries import Node, NotFoundError
from detente.store.schema import case_events, messages, receipts, tracked

__all__ = ["case_detail", "case_list", "directory", "ping_report"]


def _t(ms: int | None) -> str | None:
    return None if ms is None else format_time(from_ms(ms))


def _tracked_json(row: Any, now_ms: int) -> dict[str, Any]:
    overdue = [
        name
        for name, due_col, done_col in (
            ("ack", "ack_due", "acked_at"),
            ("answer", "answer_due", "answered_at"),
        )
        if getattr(row, due_col) is not None
        and getattr(row, done_col) is None
        and getattr(row, due_col) <= now_ms
        and row.state not in ("declined", "completed")
    ]
    return {
        "message": row.message_id,
        "direction": row.direction,
        "counterparty": row.counterparty,
        "agreement": row.agreement,
        "type": row.type,
        "subject": row.subject,
        "severity": row.severity,
        "urgency": row.urgency,
        "exercise": bool(row.exercise),
        "state": row.state,
        "level": row.level,
        "sent": _t(row.sent_at),
        "delivered": _t(row.delivered_at),
        "ack_due": _t(row.ack_due),
        "acknowledged": _t(row.acked_at),
        "acknowledged_by": row.ack_officer,
        "answer_due": _t(row.answer_due),
        "answered": _t(row.answered_at),
        "answer_status": row.answer_status,
        "preserved_until": _t(row.preserved_until),
        "overdue": overdue,
    }


def case_list(
    node: Node,
    now_ms: int,
    *,
    open_only: bool = False,
    exercise: bool | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Cases, newest first: what each one waits for or owes, and the next deadline."""
    t = tracked.c
    query = select(tracked).order_by(t.sent_at.desc())
    if exercise is not None:
        query = query.where(t.exercise == exercise)
    with node.engine.connect() as conn:
        rows = conn.execute(query.limit(limit * 20)).all()
    cases: dict[str, dict[str, Any]] = {}
    for row in rows:
        item = _tracked_json(row, now_ms)
        case = cases.setdefault(
            row.case_id,
            {
                "case": row.case_id,
                "opened": item["sent"],
                "type": row.type,
                "subject": row.subject,
                "exercise": bool(row.exercise),
                "counterparties": [],
                "states": {},
                "level": row.level,
                "next_deadline": None,
                "overdue": 0,
                "closed": True,
            },
        )
        case["opened"] = min(case["opened"], item["sent"])
        if row.counterparty not in case["counterparties"]:
            case["counterparties"].append(row.counterparty)
        case["states"][row.state] = case["states"].get(row.state, 0) + 1
        levels = ("technical", "senior", "hotline")
        if levels.index(row.level) > levels.index(case["level"]):
            case["level"] = row.level
        case["overdue"] += len(item["overdue"])
        if row.state not in ("declined", "completed") and row.type != "ping":
            case["closed"] = False
        for due_col, done_col in (("ack_due", "acked_at"), ("answer_due", "answered_at")):
            due, done = getattr(row, due_col), getattr(row, done_col)
            if due is not None and done is None and due > now_ms:
                current = case["next_deadline"]
                when = _t(due)
                case["next_deadline"] = when if current is None else min(current, when)
    found = list(cases.values())
    if open_only:
        found = [c for c in found if not c["closed"]]
    return found[:limit]


def case_detail(node: Node, case_id: str, now_ms: int) -> dict[str, Any]:
    """One case: its tracked messages with deadlines, every message in it, its events."""
    with node.engine.connect() as conn:
        items = conn.execute(
            select(tracked).where(tracked.c.case_id == case_id).order_by(tracked.c.sent_at)
        ).all()
        if not items:
            raise NotFoundError(f"no case {case_id}")
        m = messages.c
        msgs = conn.execute(
            select(
                m.id,
                m.direction,
                m.sender,
                m.recipient,
                m.type,
                m.tlp,
                m.created,
                m.reply_to,
                m.exercise,
                receipts.c.direction.label("receipt"),
            )
            .outerjoin(receipts, receipts.c.message_id == m.id)
            .where(m.case_id == case_id)
            .order_by(m.created, m.id)
        ).all()
        events = conn.execute(
            select(case_events)
            .where(case_events.c.case_id == case_id)
            .order_by(case_events.c.at, case_events.c.id)
        ).all()
    return {
        "case": case_id,
        "exercise": any(bool(r.exercise) for r in items),
        "tracked": [_tracked_json(r, now_ms) for r in items],
        "messages": [
            {
                "id": r.id,
                "direction": r.direction,
                "from": r.sender,
                "to": r.recipient,
                "type": r.type,
                "tlp": r.tlp,
                "created": r.created,
                "reply_to": r.reply_to,
                "receipt": r.receipt is not None,
            }
            for r in msgs
        ],
        "events": [
            {
                "at": _t(e.at),
                "kind": e.kind,
                "message": e.message_id,
                "detail": e.detail,
            }
            for e in events
        ],
    }


def directory(agreements: Iterable[Agreement], lang: str = "en") -> list[dict[str, Any]]:
    """Points of contact per agreement: who, role, languages, hours, and the ladder."""
    out = []
    for agreement in agreements:
        ladder = [{"level": r.level, "after": r.after} for r in agreement.policy.ladder]
        out.append(
            {
                "agreement": agreement.id,
                "version": agreement.version,
                "title": agreement.titles.get(lang) or next(iter(agreement.titles.values())),
                "ladder": ladder,
                "contacts": [
                    {
                        "party": card.id,
                        "name": card.name(lang),
                        "country": card.country,
                        "role": card.role,
                        "languages": list(card.languages),
                        "hours": card.availability,
                        "endpoint": card.endpoint,
                        "levels": [r["level"] for r in ladder],
                    }
                    for card in agreement.members
                ],
            }
        )
    return out


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def ping_report(
    node: Node, now_ms: int, *, round_id: str | None = None, since_ms: int | None = None
) -> dict[str, Any]:
    """Per party: pings sent, answered by a person (pong), answer time median/p90, unanswered.

    A ping still inside its answer time is ``pending``, not unanswered.
    """
    t = tracked.c
    query = select(tracked).where(and_(t.type == "ping", t.direction == "out"))
    if round_id is not None:
        query = query.where(t.subject == round_id)
    if since_ms is not None:
        query = query.where(t.sent_at >= since_ms)
    with node.engine.connect() as conn:
        rows = conn.execute(query.order_by(t.counterparty, t.sent_at)).all()
    parties: dict[str, dict[str, Any]] = {}
    times: dict[str, list[float]] = {}
    for row in rows:
        p = parties.setdefault(
            row.counterparty,
            {"party": row.counterparty, "sent": 0, "answered": 0, "unanswered": 0, "pending": 0},
        )
        p["sent"] += 1
        if row.answered_at is not None:
            p["answered"] += 1
            times.setdefault(row.counterparty, []).append((row.answered_at - row.sent_at) / 1000)
        elif row.answer_due is not None and row.answer_due <= now_ms:
            p["unanswered"] += 1
        else:
            p["pending"] += 1
    for party, p in parties.items():
        answered = sorted(times.get(party, []))
        p["answer_seconds_median"] = statistics.median(answered) if answered else None
        p["answer_seconds_p90"] = _quantile(answered, 0.9)
    rounds = sorted({row.subject for row in rows})
    return {"rounds": rounds, "parties": list(parties.values())}
