"""Cases: the state machine refuses impossible transitions; the ladder by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detente.core.case import Case, CaseState, level_due
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.errors import CaseTransitionError

T = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_the_usual_path_and_its_history() -> None:
    case = Case("RW-1").receipt(T).ack(T + timedelta(minutes=5))
    case = case.response("in-progress", T + timedelta(hours=1))
    case = case.response("action-taken", T + timedelta(hours=5))
    case = case.response("completed", T + timedelta(days=1))
    assert case.state is CaseState.COMPLETED
    assert case.closed
    assert [e.kind for e in case.history] == [
        "receipt",
        "ack",
        "response:in-progress",
        "response:action-taken",
        "response:completed",
    ]
    assert case.history[1].before == "delivered"
    assert case.history[1].after == "acknowledged"


def test_completed_before_acknowledged_refused() -> None:
    with pytest.raises(CaseTransitionError, match="cannot go from delivered to completed"):
        Case("RW-2").receipt(T).response("completed", T)


def test_ack_before_receipt_refused() -> None:
    with pytest.raises(CaseTransitionError, match="from open to acknowledged"):
        Case("RW-3").ack(T)


def test_nothing_after_a_final_state() -> None:
    declined = Case("RW-4").receipt(T).ack(T).response("declined", T)
    with pytest.raises(CaseTransitionError):
        declined.response("in-progress", T)
    with pytest.raises(CaseTransitionError, match="nothing to escalate"):
        declined.escalate("senior", T)


def test_response_acknowledged_counts_as_the_ack() -> None:
    case = Case("RW-5").receipt(T).response("acknowledged", T)
    assert case.acknowledged
    again = case.response("acknowledged", T)  # repeated: kept in history, state unchanged
    assert again.state is CaseState.ACKNOWLEDGED
    assert len(again.history) == 3


def test_escalation_climbs_only() -> None:
    case = Case("RW-6").receipt(T).escalate("senior", T).escalate("hotline", T)
    assert case.level == "hotline"
    assert case.state is CaseState.DELIVERED
    with pytest.raises(CaseTransitionError, match="from hotline to senior"):
        case.escalate("senior", T)


def test_unknown_response_status_refused() -> None:
    with pytest.raises(CaseTransitionError, match="unknown response status"):
        Case("RW-7").receipt(T).ack(T).response("ignored", T)


def test_level_due_follows_the_ladder() -> None:
    policy = Policy(frozenset(MESSAGE_TYPES))  # technical; senior at once; hotline 4 h later
    assert level_due(policy, None) == "technical"
    assert level_due(policy, -1) == "technical"
    assert level_due(policy, 0) == "senior"
    assert level_due(policy, 4 * 3600 - 1) == "senior"
    assert level_due(policy, 4 * 3600) == "hotline"
