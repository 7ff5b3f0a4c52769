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
:func:`level_due` says which rung an unacknowledged case should be on after
so many seconds.  Every event is kept in the case's history with its time.

Pure: the node stores cases and feeds events with the times it observed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from detente.core.policy import LEVELS, Policy
from detente.core.timefmt import require_aware
from detente.errors import CaseTransitionError

__all__ = ["Case", "CaseEvent", "CaseState", "level_due"]


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


def level_due(policy: Policy, unacknowledged_for: float) -> str:
    """The ladder rung a case should be on after ``unacknowledged_for`` seconds."""
    level = policy.ladder[0].level
    for rung in policy.ladder:
        if unacknowledged_for >= rung.after:
            level = rung.level
    return level
