"""A gap in a channel's sequence numbers is detected, reported, and filled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import select

from detente.core.canonical import canonical
from detente.core.envelope import Content
from detente.core.fedrequest import sign_request
from detente.node.clock import SystemClock
from detente.node.service import Node
from detente.store.db import open_engine
from detente.store.schema import messages
from forms_examples import notification
from node.cluster import delivered, make_cluster, send, wait_until


def _seqs(db_url: str, sender: str) -> list[int]:
    engine = open_engine(db_url, reads_only=True)
    try:
        with engine.connect() as conn:
            return sorted(
                conn.execute(
                    select(messages.c.seq).where(
                        (messages.c.sender == sender) & (messages.c.direction == "in")
                    )
                ).scalars()
            )
    finally:
        engine.dispose()


def test_gap_is_reported_and_filled(tmp_path: Path, db_url_factory: Callable[[str], str]) -> None:
    nodes, _ = make_cluster(tmp_path, ["US-CISA", "RU-NCCC"], db_url_factory)
    us, ru = nodes["US-CISA"], nodes["RU-NCCC"]
    # US queues five messages while its node is not serving (nothing delivers them).
    node = Node(us.home)
    try:
        sent = [
            node.send(
                Content("notification", "GREEN", notification(f"event {i}")),
                ["RU-NCCC"],
                "test-agreement",
            )[0]
            for i in range(1, 6)
        ]
    finally:
        node.close()
    try:
        ru.start()
        # The fifth arrives first (say, through a relay that reordered them).
        response = httpx.post(
            ru.base + "/federation/v1/deliver",
            content=canonical({"envelopes": [sent[4].to_json()], "known_size": None}),
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["statuses"] == ["accepted"]  # not held hostage to the missing ones
        assert answer["missing"] == {"US-CISA": [1, 2, 3, 4]}
        alarms = ru.call("GET", "/api/v1/alarms")
        assert [a["kind"] for a in alarms] == ["gap"]
        assert alarms[0]["evidence"] == {"missing": [1, 2, 3, 4]}
        ru_db = ru.home.config().db_url
        assert _seqs(ru_db, "US-CISA") == [5]
        # The fourth arrives too: the gap narrows, still reported, not alarmed again.
        response = httpx.post(
            ru.base + "/federation/v1/deliver",
            content=canonical({"envelopes": [sent[3].to_json()], "known_size": None}),
        )
        assert response.json()["missing"] == {"US-CISA": [1, 2, 3]}
        assert len(ru.call("GET", "/api/v1/alarms")) == 1

        # US comes up: its outbox (and RU's signed resend requests) fill the gap.
        us.start()
        wait_until(lambda: _seqs(ru_db, "US-CISA") == [1, 2, 3, 4, 5], 60, "the gap to fill")
        wait_until(
            lambda: all(
                us.call("GET", f"/api/v1/messages/{e.id}")["delivery"] == "delivered" for e in sent
            ),
            60,
            "every receipt",
        )
    finally:
        us.stop()
        ru.stop()


def test_resend_request_requeues_what_the_sender_holds(
    tmp_path: Path, db_url_factory: Callable[[str], str]
) -> None:
    nodes, _ = make_cluster(tmp_path, ["US-CISA", "RU-NCCC"], db_url_factory)
    us, ru = nodes["US-CISA"], nodes["RU-NCCC"]
    try:
        us.start()
        ru.start()
        (m,) = send(us, "test-agreement", ["RU-NCCC"])
        wait_until(lambda: delivered(us, m["id"]), 30, "delivery")
        request = sign_request(
            "resend",
            {"seqs": [1, 99]},
            sender="RU-NCCC",
            keys=ru.home.keys(),
            to="US-CISA",
            now=SystemClock().now(),
        )
        response = httpx.post(us.base + "/federation/v1/resend", content=canonical(request))
        assert response.status_code == 200, response.text
        assert response.json() == {"requeued": 1}  # seq 1 is ours; 99 never existed
        # Delivered again, RU answers with the original receipt: still one message.
        wait_until(lambda: delivered(us, m["id"]), 30, "the second delivery")
        assert _seqs(ru.home.config().db_url, "US-CISA") == [1]
    finally:
        us.stop()
        ru.stop()
