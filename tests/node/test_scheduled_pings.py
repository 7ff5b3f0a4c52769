"""Scheduled ping rounds per policy (``ping_every``), driven by a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from detente.core.agreement import Agreement
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.node.clock import FakeClock
from detente.node.config import NodeHome
from detente.node.service import Node
from detente.store.schema import tracked


def _pings(node: Node) -> int:
    with node.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(tracked).where(tracked.c.type == "ping")
            ).scalar_one()
        )


def test_ping_rounds_follow_the_policy(tmp_path: Path) -> None:
    start = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    homes = [
        NodeHome.init(tmp_path / pid, party_id=pid, names={"en": pid}, country=None, listen_port=1)
        for pid in ("UN-ODA", "VN-VNCERT", "FR-ANSSI")
    ]
    agreement = Agreement(
        id="poc",
        version=1,
        titles={"en": "POC directory"},
        members=tuple(h.card() for h in homes),
        policy=Policy(frozenset(MESSAGE_TYPES), ping_every=3600),
        valid_from=start - timedelta(days=1),
        valid_until=start + timedelta(days=30),
    )
    for h in homes:
        agreement = agreement.sign(h.config().party_id, h.keys())
    clock = FakeClock(start)
    node = Node(homes[0], clock=clock)
    try:
        node.install_agreement(agreement)
        node.workflow_tick()
        assert _pings(node) == 2  # a round to each other member at once
        clock.advance(1800)
        node.workflow_tick()
        assert _pings(node) == 2  # not yet due
        clock.advance(1801)
        node.workflow_tick()
        assert _pings(node) == 4  # the next round, an hour after the first
        # Nobody answers (pongs are sent by people): the rounds stay unanswered.
        clock.advance(3 * 3600)
        node.workflow_tick()
        with node.engine.connect() as conn:
            answered = conn.execute(
                select(func.count()).select_from(tracked).where(tracked.c.answered_at.is_not(None))
            ).scalar_one()
        assert answered == 0
    finally:
        node.close()
