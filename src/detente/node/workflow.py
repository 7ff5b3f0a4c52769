"""The hotline workflow in the node: cases, deadlines, reminders, escalation.

Every notification, request, consultation, escalation and ping the node sends
or receives becomes a ``tracked`` row — one per envelope, grouped by the
envelope's ``case`` — with the deadlines the agreement's policy sets for it
(:func:`detente.core.case.due`).  Replies (``ack``, ``response``, ``pong``,
``escalation``, ``sighting``) name the message they answer; they move its row
along the core's state machine (:class:`detente.core.case.Case`) in the same
transaction that commits the reply, so the record and the case never
disagree.

Direction matters: on an ``out`` row this node waits for the other side; on
an ``in`` row it owes.  A reply this node sends must fit (an impossible
transition — ``completed`` before ``acknowledged`` — is refused and nothing is
sent); a reply it receives is committed whatever it says (it is evidence) and
an impossible transition is recorded in the case instead of applied.

:func:`due_work` is the scheduler's part: reminders when ``reminder_percent``
of the time to a deadline has passed (a notice for the officers of the side
that owes), the deadline missed (``overdue``), and — on the waiting side —
escalation along the agreement's ladder with a signed ``escalation`` message
to the other side, which raises the case to the same rung there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, select, update

from detente.core.agreement import Agreement
from detente.core.case import (
    REPLY_FIELDS,
    TRACKED_TYPES,
    Case,
    CaseState,
    due,
    level_due,
)
from detente.core.envelope import Envelope
from detente.core.forms import FormError
from detente.core.policy import LEVELS
from detente.core.timefmt import format_time, parse_time
from detente.errors import CaseTransitionError
from detente.node.clock import from_ms, to_ms
from detente.store.schema import alarms, case_events, tracked

if TYPE_CHECKING:
    from detente.node.writer import Tx

__all__ = [
    "FLAG_ACK_OVERDUE",
    "FLAG_ANSWER_OVERDUE",
    "DueResult",
    "Escalation",
    "Item",
    "apply_items",
    "due_work",
    "mark_delivered",
]

FLAG_ACK_REMINDED = 1
FLAG_ANSWER_REMINDED = 2
FLAG_ACK_OVERDUE = 4
FLAG_ANSWER_OVERDUE = 8
FLAG_KEEP_REMINDED = 16
FLAG_KEEP_EXPIRED = 32
_ESCALATING = frozenset({"notification", "request", "consultation"})
_INSERT_TRACKED = insert(tracked)
_INSERT_EVENTS = insert(case_events)
DUE_BATCH = 500


@dataclass(frozen=True)
class Item:
    """A message the workflow sees: its envelope, its form, and who sent it here."""

    envelope: Envelope
    body: Mapping[str, Any]
    direction: str  # out | in
    agreement: Agreement
    by: str | None = None  # the API user (officer) who sent it; None: the node itself


@dataclass(frozen=True)
class Escalation:
    """An escalation the scheduler must send: ``message`` to ``to_level``."""

    message_id: str
    counterparty: str
    agreement: str
    case_id: str
    from_level: str
    to_level: str
    reason: str
    exercise: bool


def _subject(env_type: str, body: Mapping[str, Any]) -> str:
    key = {
        "notification": "category",
        "request": "kind",
        "consultation": "level",
        "escalation": "to_level",
        "ping": "round",
    }[env_type]
    return str(body.get(key, ""))[:64]


def _ms(when: datetime | None) -> int | None:
    return None if when is None else to_ms(when)


def _event(case_id: str, message_id: str | None, at: int, kind: str, detail: str) -> dict[str, Any]:
    return {"case_id": case_id, "message_id": message_id, "at": at, "kind": kind, "detail": detail}


def _remind_ms(sent_ms: int, due_ms: int, percent: int) -> int:
    """:func:`~detente.core.case.reminder_time` in store milliseconds."""
    return sent_ms + (due_ms - sent_ms) * percent // 100


def _next_check(row: Mapping[str, Any], percent: int, policy_keep: int) -> int | None:
    """The next time the scheduler has something to do for this row, if any."""
    times: list[int] = []
    flags, sent = row["flags"], row["sent_at"]
    closed = row["state"] in (CaseState.DECLINED, CaseState.COMPLETED)
    if row["ack_due"] is not None and row["acked_at"] is None and not closed:
        if not flags & FLAG_ACK_REMINDED:
            times.append(_remind_ms(sent, row["ack_due"], percent))
        if not flags & FLAG_ACK_OVERDUE:
            times.append(row["ack_due"])
    if row["answer_due"] is not None and row["answered_at"] is None and not closed:
        if not flags & FLAG_ANSWER_REMINDED:
            times.append(_remind_ms(sent, row["answer_due"], percent))
        if not flags & FLAG_ANSWER_OVERDUE:
            times.append(row["answer_due"])
    until = row["preserved_until"]
    if until is not None:
        if not flags & FLAG_KEEP_REMINDED:
            times.append(until - policy_keep * 1000 * (100 - percent) // 100)
        if not flags & FLAG_KEEP_EXPIRED:
            times.append(until)
    if row["missed_at"] is not None and row["direction"] == "out" and _outstanding(row):
        times.append(row["missed_at"])  # the ladder: recomputed each look
    return min(times) if times else None


def _outstanding(row: Mapping[str, Any]) -> bool:
    """A missed deadline is still unmet (the ladder keeps climbing)."""
    if row["state"] in (CaseState.DECLINED, CaseState.COMPLETED) or row["type"] not in _ESCALATING:
        return False
    ack_missed = row["flags"] & FLAG_ACK_OVERDUE and row["acked_at"] is None
    answer_missed = row["flags"] & FLAG_ANSWER_OVERDUE and row["answered_at"] is None
    return bool(ack_missed or answer_missed)


def _case(row: Mapping[str, Any]) -> Case:
    return Case(row["case_id"], CaseState(row["state"]), row["level"])


class _Rows:
    """Tracked rows read for one batch, updated in memory, written back at the end."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.rows: dict[str, dict[str, Any]] = {}
        self.changed: set[str] = set()

    def get(self, message_id: str) -> dict[str, Any] | None:
        if message_id not in self.rows:
            found = self.tx.conn.execute(
                select(tracked).where(tracked.c.message_id == message_id)
            ).first()
            if found is None:
                return None
            self.rows[message_id] = dict(found._mapping)
        return self.rows[message_id]

    def set(self, message_id: str, **values: Any) -> None:
        self.rows[message_id].update(values)
        self.changed.add(message_id)

    def flush(self, percent_of: Mapping[str, tuple[int, int]]) -> None:
        for message_id in self.changed:
            row = self.rows[message_id]
            percent, keep = percent_of.get(row["agreement"], (75, 0))
            row["next_check"] = _next_check(row, percent, keep)
            values = {k: v for k, v in row.items() if k != "message_id"}
            self.tx.conn.execute(
                update(tracked).where(tracked.c.message_id == message_id).values(**values)
            )


def apply_items(tx: Tx, me: str, items: Sequence[Item]) -> None:
    """Track what ``items`` open and apply what they answer (inside the writer's job).

    Raises :class:`FormError` / :class:`CaseTransitionError` for a reply this
    node sends that names nothing it may answer or does not fit the case.
    """
    new_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    rows = _Rows(tx)
    policies: dict[str, tuple[int, int]] = {}
    for item in items:
        env, body = item.envelope, item.body
        policy = item.agreement.policy
        policies[item.agreement.id] = (policy.reminder_percent, policy.preservation_keep)
        sent = parse_time(env.created)
        counterparty = env.to if item.direction == "out" else env.from_
        if env.type in REPLY_FIELDS:
            _apply_reply(tx, rows, events, item, counterparty, sent)
        if env.type not in TRACKED_TYPES:
            continue
        deadlines = due(policy, env.type, body, sent, strict=item.direction == "out")
        level = body["to_level"] if env.type == "escalation" else policy.ladder[0].level
        row: dict[str, Any] = {
            "message_id": env.id,
            "case_id": env.case or env.id,
            "direction": item.direction,
            "counterparty": counterparty,
            "agreement": item.agreement.id,
            "type": env.type,
            "subject": _subject(env.type, body),
            "refers": body.get("extends") if env.type == "request" else None,
            "severity": body.get("severity") if env.type == "notification" else None,
            "urgency": body.get("urgency") if env.type == "request" else None,
            "exercise": env.exercise,
            "sent_at": to_ms(sent),
            "state": (CaseState.OPEN if item.direction == "out" else CaseState.DELIVERED).value,
            "level": level,
            "delivered_at": None if item.direction == "out" else tx.now_ms,
            "ack_due": _ms(deadlines.ack),
            "acked_at": None,
            "ack_message": None,
            "ack_officer": None,
            "answer_due": _ms(deadlines.answer),
            "answered_at": None,
            "answer_message": None,
            "answer_status": None,
            "preserved_until": None,
            "missed_at": None,
            "flags": 0,
        }
        row["next_check"] = _next_check(row, policy.reminder_percent, policy.preservation_keep)
        new_rows.append(row)
    if new_rows:
        tx.conn.execute(_INSERT_TRACKED, new_rows)
    rows.flush(policies)
    if events:
        tx.conn.execute(_INSERT_EVENTS, events)


def _apply_reply(
    tx: Tx,
    rows: _Rows,
    events: list[dict[str, Any]],
    item: Item,
    counterparty: str,
    at: datetime,
) -> None:
    env, body, out = item.envelope, item.body, item.direction == "out"
    field = REPLY_FIELDS[env.type]
    ref = body[field]
    row = rows.get(ref)
    # An escalation names the escalating side's own message; the rest answer the other's.
    want_direction = item.direction if env.type == "escalation" else ("in" if out else "out")
    if row is None or row["direction"] != want_direction or row["counterparty"] != counterparty:
        if out:
            whose = "this node sent to" if want_direction == "out" else "this node received from"
            raise FormError(field, f"{ref} is not a message {whose} {counterparty}")
        events.append(
            _event(
                env.case or ref,
                env.id,
                tx.now_ms,
                "unmatched",
                f"{env.type} from {counterparty} names {ref}, which this node did not send them",
            )
        )
        return
    case_id, at_ms = row["case_id"], to_ms(at)
    who = f" by {item.by}" if item.by else ""
    try:
        if env.type == "ack":
            _ack(rows, row, at_ms, env.id, body["officer"])
            events.append(_event(case_id, ref, at_ms, "ack", f"read by {body['officer']}{who}"))
        elif env.type == "pong":
            _ack(rows, row, at_ms, env.id, body["officer"])
            rows.set(ref, answered_at=row["answered_at"] or at_ms, answer_message=env.id)
            events.append(_event(case_id, ref, at_ms, "pong", f"answered by {body['officer']}"))
        elif env.type == "response":
            _respond(rows, row, at_ms, env.id, body["status"])
            detail = body["status"] + who
            events.append(_event(case_id, ref, at_ms, f"response:{body['status']}", detail))
            if body["status"] in ("action-taken", "completed"):
                _preserve(tx, rows, events, row, item.agreement, at_ms)
        elif env.type == "escalation":
            moved = _case(row).escalate(body["to_level"], at)
            rows.set(ref, level=moved.level)
            reason = body["reason"]
            if not out:
                _notice(
                    tx,
                    "escalation",
                    counterparty,
                    f"{counterparty} escalated {row['type']} {ref} to {moved.level} ({reason})",
                )
            events.append(
                _event(
                    case_id,
                    ref,
                    at_ms,
                    f"escalation:{moved.level}",
                    f"{env.from_} escalated to {moved.level} ({reason}){who}",
                )
            )
        elif env.type == "sighting":
            where = f" at {body['where']}" if body.get("where") else ""
            events.append(
                _event(
                    case_id,
                    ref,
                    at_ms,
                    "sighting",
                    f"{env.from_}: {body['indicator']} seen {body['count']} time(s){where}, "
                    f"{body['first_seen']} to {body['last_seen']}",
                )
            )
    except CaseTransitionError as exc:
        if out:
            raise
        events.append(_event(case_id, env.id, at_ms, "refused-transition", str(exc)))


def _notice(tx: Tx, kind: str, peer: str, detail: str) -> None:
    """A notice for the duty officers (``detente alarms``)."""
    tx.conn.execute(
        insert(alarms).values(kind=kind, peer=peer, detail=detail, created_at=tx.now_ms)
    )


def _ack(rows: _Rows, row: dict[str, Any], at_ms: int, message_id: str, officer: str) -> None:
    case = _case(row)
    if case.acknowledged:
        return  # a second acknowledgement is kept as a message, the first one counts
    at = from_ms(at_ms)
    if case.state is CaseState.OPEN:
        # The acknowledgement proves delivery even if its receipt is not recorded yet.
        case = case.receipt(at)
        rows.set(row["message_id"], delivered_at=row["delivered_at"] or at_ms)
    case = case.ack(at)
    rows.set(
        row["message_id"],
        state=case.state.value,
        acked_at=at_ms,
        ack_message=message_id,
        ack_officer=officer,
    )


def _respond(rows: _Rows, row: dict[str, Any], at_ms: int, message_id: str, status: str) -> None:
    case, at = _case(row), from_ms(at_ms)
    if status == "acknowledged" and case.state is CaseState.OPEN:
        case = case.receipt(at)
    moved = case.response(status, at)
    values: dict[str, Any] = {"state": moved.state.value}
    if status == "acknowledged":
        if row["acked_at"] is None:
            values.update(acked_at=at_ms, ack_message=message_id)
    else:
        values.update(answer_message=message_id, answer_status=status)
        if row["answered_at"] is None:
            values["answered_at"] = at_ms
    rows.set(row["message_id"], **values)


def _preserve(
    tx: Tx,
    rows: _Rows,
    events: list[dict[str, Any]],
    row: dict[str, Any],
    agreement: Agreement,
    at_ms: int,
) -> None:
    """Preservation done: keep until +keep; an extension done: the original's +extend."""
    policy = agreement.policy
    if row["type"] != "request":
        return
    if row["subject"] == "preservation" and row["preserved_until"] is None:
        until = at_ms + policy.preservation_keep * 1000
        rows.set(row["message_id"], preserved_until=until)
        events.append(
            _event(row["case_id"], row["message_id"], at_ms, "preserved", f"until {_t(until)}")
        )
    elif row["subject"] == "preservation-extension" and row["refers"]:
        original = rows.get(row["refers"])
        if original is None or original["preserved_until"] is None:
            return
        until = original["preserved_until"] + policy.preservation_extend * 1000
        flags = original["flags"] & ~(FLAG_KEEP_REMINDED | FLAG_KEEP_EXPIRED)
        rows.set(original["message_id"], preserved_until=until, flags=flags)
        events.append(
            _event(
                original["case_id"],
                original["message_id"],
                at_ms,
                "preservation-extended",
                f"until {_t(until)}",
            )
        )


def _t(ms: int) -> str:
    return format_time(from_ms(ms))


def mark_delivered(tx: Tx, message_ids: Sequence[str]) -> None:
    """Receipts got: the tracked rows among ``message_ids`` are delivered."""
    if not message_ids:
        return
    t = tracked.c
    tx.conn.execute(
        update(tracked)
        .where(and_(t.message_id.in_(list(message_ids)), t.state == CaseState.OPEN.value))
        .values(state=CaseState.DELIVERED.value, delivered_at=tx.now_ms)
    )


# -- the scheduler's part ---------------------------------------------------------


@dataclass
class DueResult:
    escalations: list[Escalation]
    notices: list[tuple[str, str, str]]  # (kind, peer, detail), also in the alarms table
    looked_at: int


def due_work(tx: Tx, agreements: Mapping[str, Agreement]) -> DueResult:
    """Reminders, missed deadlines and escalations that are due now (one batch)."""
    now = tx.now_ms
    found = tx.conn.execute(
        select(tracked)
        .where(and_(tracked.c.next_check.is_not(None), tracked.c.next_check <= now))
        .order_by(tracked.c.next_check)
        .limit(DUE_BATCH)
    ).all()
    events: list[dict[str, Any]] = []
    result = DueResult([], [], len(found))
    for raw in found:
        row = dict(raw._mapping)
        agreement = agreements.get(row["agreement"])
        if agreement is None:
            tx.conn.execute(
                update(tracked)
                .where(tracked.c.message_id == row["message_id"])
                .values(next_check=None)
            )
            continue
        policy = agreement.policy
        _look(row, now, policy.reminder_percent, policy.preservation_keep, events, result)
        if row["direction"] == "out" and row["missed_at"] is not None and _outstanding(row):
            target = level_due(policy, (now - row["missed_at"]) / 1000)
            if LEVELS.index(target) > LEVELS.index(row["level"]):
                reason = (
                    "ack-overdue"
                    if row["flags"] & FLAG_ACK_OVERDUE and row["acked_at"] is None
                    else "response-overdue"
                )
                result.escalations.append(
                    Escalation(
                        row["message_id"],
                        row["counterparty"],
                        row["agreement"],
                        row["case_id"],
                        row["level"],
                        target,
                        reason,
                        row["exercise"],
                    )
                )
        row["next_check"] = _next_check(row, policy.reminder_percent, policy.preservation_keep)
        if row["next_check"] is not None and row["next_check"] <= now:
            # Only the ladder is left and its next rung is later: look again then.
            row["next_check"] = _next_rung(row, policy, now)
        tx.conn.execute(
            update(tracked)
            .where(tracked.c.message_id == row["message_id"])
            .values(flags=row["flags"], missed_at=row["missed_at"], next_check=row["next_check"])
        )
    if events:
        tx.conn.execute(_INSERT_EVENTS, events)
    for kind, peer, detail in result.notices:
        _notice(tx, kind, peer, detail)
    return result


def _next_rung(row: Mapping[str, Any], policy: Any, now: int) -> int | None:
    current = LEVELS.index(row["level"])
    for rung in policy.ladder[1:]:
        at = row["missed_at"] + rung.after * 1000
        if LEVELS.index(rung.level) > current and at > now:
            return int(at)
        if LEVELS.index(rung.level) > current:
            return now + 1000  # due now: the escalation being sent moves the level
    return None


def _look(
    row: dict[str, Any],
    now: int,
    percent: int,
    keep: int,
    events: list[dict[str, Any]],
    result: DueResult,
) -> None:
    case_id, mid, sent = row["case_id"], row["message_id"], row["sent_at"]
    owe = row["direction"] == "in"
    closed = row["state"] in (CaseState.DECLINED, CaseState.COMPLETED)
    what = f"{row['type']} {mid} {'from' if owe else 'to'} {row['counterparty']}"
    for due_col, done_col, reminded, overdue, label in (
        ("ack_due", "acked_at", FLAG_ACK_REMINDED, FLAG_ACK_OVERDUE, "acknowledgement"),
        ("answer_due", "answered_at", FLAG_ANSWER_REMINDED, FLAG_ANSWER_OVERDUE, "answer"),
    ):
        deadline = row[due_col]
        if deadline is None or row[done_col] is not None or closed:
            continue
        remind_at = _remind_ms(sent, deadline, percent)
        if not row["flags"] & reminded and now >= remind_at and now < deadline:
            row["flags"] |= reminded
            kind = "reminder:ack" if label == "acknowledgement" else "reminder:answer"
            text = f"{label} of {what} due at {_t(deadline)}"
            events.append(_event(case_id, mid, now, kind, text))
            if owe:
                result.notices.append(("reminder", row["counterparty"], text))
        if not row["flags"] & overdue and now >= deadline:
            row["flags"] |= overdue | reminded
            row["missed_at"] = min(row["missed_at"] or deadline, deadline)
            kind = "overdue:ack" if label == "acknowledgement" else "overdue:answer"
            text = f"{label} of {what} was due at {_t(deadline)}"
            events.append(_event(case_id, mid, now, kind, text))
            result.notices.append(("overdue", row["counterparty"], text))
    until = row["preserved_until"]
    if until is not None:
        if (
            not row["flags"] & FLAG_KEEP_REMINDED
            and now >= until - keep * 1000 * (100 - percent) // 100
        ):
            row["flags"] |= FLAG_KEEP_REMINDED
            text = f"data preserved for {what} is kept until {_t(until)}: extend or let it lapse"
            events.append(_event(case_id, mid, now, "reminder:preservation", text))
            result.notices.append(("reminder", row["counterparty"], text))
        if not row["flags"] & FLAG_KEEP_EXPIRED and now >= until:
            row["flags"] |= FLAG_KEEP_EXPIRED | FLAG_KEEP_REMINDED
            text = f"preservation for {what} lapsed at {_t(until)}"
            events.append(_event(case_id, mid, now, "preservation-lapsed", text))
