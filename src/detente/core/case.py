"""Cases: the messages about one incident, and the states the core allows them.

A case moves only along these transitions (anything else raises
:class:`~detente.errors.CaseTransitionError`, e.g. ``completed`` before
``acknowledged``)::

    open ──receipt──▶ delivered ──ack──▶ acknowledged ──▶ in-progress
                                                     ├──▶ need-more-information ◀─┐
                                                     ├──▶ action-taken ───────────┤
                                                     ├──▶ declined (final)        │
                                                     └──▶ completed (final) ◀─────┘

A ``response`` with status ``acknowledged`` counts as the person-on-duty
acknowledgement when no ``ack`` came first.  Escalation moves the case up the
agreement's ladder (technical → senior → hotline) without changing its state;
:func:`level_due` says which rung a case should be on so many seconds after
it missed a deadline, and :func:`due` computes the deadlines a message sets
from the agreement's policy.  Every event is kept in the case's history with its time.

Pure: the node stores cases and feeds events with the times it observed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from detente.core.forms import FormError
from detente.core.policy import LEVELS, Policy
from detente.core.timefmt import format_time, parse_time, require_aware
from detente.errors import CaseTransitionError

__all__ = [
    "REPLY_FIELDS",
    "TRACKED_TYPES",
    "Case",
    "CaseEvent",
    "CaseState",
    "Due",
    "due",
    "level_due",
    "reminder_time",
]


class CaseState(StrEnum):
    OPEN = "open"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in-progress"
    NEED_INFO = "need-more-information"
    ACTION_TAKEN = "action-taken"
    DECLINED = "declined"
    COMPLETED = "completed"


_WORKING = {
    CaseState.IN_PROGRESS,
    CaseState.NEED_INFO,
    CaseState.ACTION_TAKEN,
    CaseState.DECLINED,
    CaseState.COMPLETED,
}
TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    CaseState.OPEN: frozenset({CaseState.DELIVERED}),
    CaseState.DELIVERED: frozenset({CaseState.ACKNOWLEDGED}),
    CaseState.ACKNOWLEDGED: frozenset(_WORKING),
    CaseState.IN_PROGRESS: frozenset(_WORKING - {CaseState.IN_PROGRESS}),
    CaseState.NEED_INFO: frozenset(_WORKING - {CaseState.NEED_INFO}),
    CaseState.ACTION_TAKEN: frozenset({CaseState.IN_PROGRESS, CaseState.COMPLETED}),
    CaseState.DECLINED: frozenset(),
    CaseState.COMPLETED: frozenset(),
}

# Response statuses (core.forms.RESPONSE_STATUSES) and the state each leads to.
RESPONSE_STATES = {
    "acknowledged": CaseState.ACKNOWLEDGED,
    "in-progress": CaseState.IN_PROGRESS,
    "need-more-information": CaseState.NEED_INFO,
    "action-taken": CaseState.ACTION_TAKEN,
    "declined": CaseState.DECLINED,
    "completed": CaseState.COMPLETED,
}


@dataclass(frozen=True, slots=True)
class CaseEvent:
    at: datetime
    kind: str  # receipt | ack | response:<status> | escalation:<level>
    message_id: str | None
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    state: CaseState = CaseState.OPEN
    level: str = LEVELS[0]
    history: tuple[CaseEvent, ...] = ()

    def _move(self, to: CaseState, kind: str, at: datetime, message_id: str | None) -> Case:
        require_aware(at, "event time")
        if to not in TRANSITIONS[self.state]:
            raise CaseTransitionError(
                f"case {self.id}: cannot go from {self.state} to {to} ({kind})"
            )
        event = CaseEvent(at, kind, message_id, self.state.value, to.value)
        return replace(self, state=to, history=(*self.history, event))

    def receipt(self, at: datetime, message_id: str | None = None) -> Case:
        """The machine receipt for the case's opening message arrived."""
        return self._move(CaseState.DELIVERED, "receipt", at, message_id)

    def ack(self, at: datetime, message_id: str | None = None) -> Case:
        """A person on duty acknowledged it."""
        return self._move(CaseState.ACKNOWLEDGED, "ack", at, message_id)

    def response(self, status: str, at: datetime, message_id: str | None = None) -> Case:
        try:
            to = RESPONSE_STATES[status]
        except KeyError:
            raise CaseTransitionError(
                f"case {self.id}: unknown response status {status!r}"
            ) from None
        if to is CaseState.ACKNOWLEDGED and self.state is not CaseState.DELIVERED:
            # A repeated "acknowledged" after the ack is a no-op on the state, but kept.
            event = CaseEvent(at, f"response:{status}", message_id, self.state, self.state)
            return replace(self, history=(*self.history, event))
        return self._move(to, f"response:{status}", at, message_id)

    def escalate(self, to_level: str, at: datetime, message_id: str | None = None) -> Case:
        """Move up the ladder; the state stays where it is."""
        require_aware(at, "event time")
        if to_level not in LEVELS or LEVELS.index(to_level) <= LEVELS.index(self.level):
            raise CaseTransitionError(
                f"case {self.id}: cannot escalate from {self.level} to {to_level}"
            )
        if self.state in (CaseState.DECLINED, CaseState.COMPLETED):
            raise CaseTransitionError(f"case {self.id} is {self.state}: nothing to escalate")
        event = CaseEvent(at, f"escalation:{to_level}", message_id, self.state, self.state)
        return replace(self, level=to_level, history=(*self.history, event))

    @property
    def acknowledged(self) -> bool:
        return self.state not in (CaseState.OPEN, CaseState.DELIVERED)

    @property
    def closed(self) -> bool:
        return self.state in (CaseState.DECLINED, CaseState.COMPLETED)


def level_due(policy: Policy, overdue_for: float | None) -> str:
    """The ladder rung a case should be on, ``overdue_for`` seconds after it missed a
    deadline (None: no deadline missed, the first rung)."""
    level = policy.ladder[0].level
    if overdue_for is None or overdue_for < 0:
        return level
    for rung in policy.ladder[1:]:
        if overdue_for >= rung.after:
            level = rung.level
    return level


@dataclass(frozen=True, slots=True)
class Due:
    """When the other side owes a person's acknowledgement and an answer."""

    ack: datetime | None = None
    answer: datetime | None = None


# Message types that open (or continue) an obligation on the recipient.
TRACKED_TYPES = frozenset({"notification", "request", "consultation", "escalation", "ping"})
# Reply types, and the form field naming the message they answer.
REPLY_FIELDS = {
    "ack": "message",
    "response": "request",
    "escalation": "message",
    "pong": "ping",
    "sighting": "notification",
}


def due(
    policy: Policy,
    message_type: str,
    body: Mapping[str, Any],
    sent: datetime,
    *,
    strict: bool = True,
) -> Due:
    """The deadlines a message sets, from the agreement's policy and the form.

    A request's own ``deadline`` is used if the policy lets the sender shorten
    it; a later one, or a shorter one the policy does not allow, raises
    :class:`~detente.core.forms.FormError` naming ``deadline`` when ``strict``
    (the sender), and is ignored otherwise (the recipient keeps the policy's).
    """
    require_aware(sent, "sent time")

    def after(seconds: int) -> datetime:
        return sent + timedelta(seconds=seconds)

    if message_type == "notification":
        seconds = policy.ack_by_severity.get(str(body.get("severity")), policy.ack_deadline)
        return Due(ack=after(seconds))
    if message_type == "request":
        urgency = body.get("urgency", "normal")
        ack = after(policy.ack_by_urgency.get(urgency, policy.ack_deadline))
        answer = after(policy.request_deadlines.get(urgency, policy.request_deadlines["normal"]))
        asked = body.get("deadline")
        if isinstance(asked, str):
            wanted = parse_time(asked, field="deadline")
            problem = None
            if wanted > answer:
                problem = f"is later than the agreement allows ({format_time(answer)})"
            elif wanted < answer and not policy.sender_may_shorten:
                problem = "may not be set: the agreement fixes the reply time"
            elif wanted <= sent:
                problem = "has already passed"
            if problem is None:
                answer = wanted
            elif strict:
                raise FormError("deadline", problem)
        return Due(ack=min(ack, answer), answer=answer)
    if message_type == "consultation":
        answer = after(policy.request_deadlines["urgent"])
        start = body.get("window_start")
        if isinstance(start, str):
            answer = max(sent, min(answer, parse_time(start, field="window_start")))
        return Due(ack=min(after(policy.ack_deadline), answer), answer=answer)
    if message_type == "escalation":
        return Due(ack=after(policy.ack_by_urgency.get("urgent", policy.ack_deadline)))
    if message_type == "ping":
        return Due(answer=after(policy.pong_deadline))
    return Due()


def reminder_time(sent: datetime, deadline: datetime, percent: int) -> datetime:
    """When the owing side is reminded: ``percent`` of the way from sent to deadline."""
    return sent + (deadline - sent) * percent / 100
