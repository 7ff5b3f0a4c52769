"""The scheduler, driven by hand with a fake clock: retries, backoff, then delivery.

Two in-process nodes; the sender's HTTP goes through an httpx MockTransport
that can fail (peer down) or hand the request to the recipient's service.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
from sqlalchemy import select

from detente.cli.demo import free_port
from detente.core.agreement import Agreement
from detente.core.envelope import Content
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.node.clock import FakeClock
from detente.node.config import NodeHome
from detente.node.delivery import backoff_ms
from detente.node.scheduler import Scheduler
from detente.node.service import Node
from detente.store.schema import outbox
from forms_examples import notification

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    for failures in range(12):
        delay = backoff_ms(failures, base_ms=500, cap_ms=300_000)
        ceiling = min(300_000, 500 * 2**failures)
        assert ceiling // 2 <= delay <= ceiling
    assert len({backoff_ms(5) for _ in range(50)}) > 1  # jitter


def test_outbox_retries_with_backoff_then_delivers(
    tmp_path: Path, db_url_factory: Callable[[str], str]
) -> None:
    clock = FakeClock(START)
    homes = {}
    for pid in ("US-CISA", "RU-NCCC"):
        homes[pid] = NodeHome.init(
            tmp_path / pid,
            party_id=pid,
            names={"en": pid},
            country=pid[:2],
            listen_port=free_port(),
            db_url=db_url_factory(pid.lower().replace("-", "_")),
        )
    agreement = Agreement(
        id="drive",
        version=1,
        titles={"en": "t"},
        members=(homes["US-CISA"].card(), homes["RU-NCCC"].card()),
        policy=Policy(frozenset(MESSAGE_TYPES)),
        valid_from=START - timedelta(days=1),
        valid_until=START + timedelta(days=30),
    )
    for pid, home in homes.items():
        agreement = agreement.sign(pid, home.keys())
    us, ru = Node(homes["US-CISA"], clock=clock), Node(homes["RU-NCCC"], clock=clock)
    up = {"ru": False}
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if not up["ru"]:
            raise httpx.ConnectError("peer down", request=request)
        if request.url.path == "/federation/v1/deliver":
            body = json.loads(request.content)
            result = ru.receive(body["envelopes"], body["known_size"])
            return httpx.Response(200, json=result.to_json())
        return httpx.Response(404)

    def state() -> tuple[str, int, int]:
        with us.engine.connect() as conn:
            row = conn.execute(
                select(outbox.c.state, outbox.c.attempts, outbox.c.next_attempt_at)
            ).one()
        return row.state, row.attempts, row.next_attempt_at

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            scheduler = Scheduler(us, client, witness_every=1e9, gaps_every=1e9)
            await scheduler.tick()  # nothing queued: nothing delivered (a witness round runs)
            assert "/federation/v1/deliver" not in calls
            us.send(Content("notification", "GREEN", notification()), None, "drive")
            await scheduler.tick()  # peer down: first failure, backoff 0.25..0.5 s
            first = state()
            assert first[:2] == ("pending", 1)
            assert 250 <= first[2] - int(START.timestamp() * 1000) <= 500
            attempts = calls.count("/federation/v1/deliver")
            await scheduler.tick()  # not due yet: no new attempt
            assert state()[1] == 1
            assert calls.count("/federation/v1/deliver") == attempts
            clock.advance(0.6)
            await scheduler.tick()  # due, still down: second failure, longer backoff
            second = state()
            assert second[1] == 2
            assert 500 <= second[2] - int(clock.now().timestamp() * 1000) <= 1000
            up["ru"] = True
            clock.advance(1.1)
            await scheduler.tick()
            assert state()[0] == "delivered"

    try:
        us.install_agreement(agreement)
        ru.install_agreement(agreement)
        anyio.run(scenario)
    finally:
        us.close()
        ru.close()
