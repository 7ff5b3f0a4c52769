"""Live updates: a cheap version of what the console shows, for server-sent events.

Everything a console page shows changes with one of: the log growing (a
message or a receipt committed), a case event (acknowledgement, answer,
reminder, missed deadline, escalation), an alarm raised or acknowledged, a
witness's cosignature or a peer's checkpoint witnessed.  :func:`snapshot`
reads those as a handful of indexed maxima — microseconds — so each open
console can poll it a few times a second without a hook in the workflow, and
:class:`ChangeFeed` shares one reading among all open consoles.

The browser gets the parts as JSON (``event: change``) and refetches the
page's live regions when a part it shows has moved.

Not here: rendering (the page is re-rendered by its own route).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
from sqlalchemy import func, select

from detente.node.service import Node
from detente.store.schema import (
    alarms,
    case_events,
    console_actions,
    cosignatures,
    peer_checkpoints,
)

__all__ = ["POLL_SECONDS", "ChangeFeed", "snapshot"]

POLL_SECONDS = 0.2  # a message shows in an open console well within a second


def alarm_version(conn: Any) -> tuple[int, int]:
    """The newest alarm and the newest acknowledgement of one: both index look-ups."""
    row = conn.execute(
        select(
            select(func.max(alarms.c.id)).scalar_subquery(),
            select(func.max(console_actions.c.id))
            .where(console_actions.c.action == "alarm-ack")
            .scalar_subquery(),
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


def snapshot(node: Node) -> dict[str, int]:
    """The parts whose change means a page may need refreshing."""
    with node.engine.connect() as conn:
        row = conn.execute(
            select(
                select(func.max(case_events.c.id)).scalar_subquery(),
                select(func.max(cosignatures.c.size)).scalar_subquery(),
                select(func.max(peer_checkpoints.c.received_at)).scalar_subquery(),
            )
        ).one()
        raised, acked = alarm_version(conn)
    events, cosigned, witnessed = (int(v or 0) for v in row)
    return {
        "log": node.log.committed_size,
        "events": events,
        "alarms": raised * 1_000_000 + acked,
        "witness": cosigned * 1_000_000 + witnessed % 1_000_000,
    }


class ChangeFeed:
    """One :func:`snapshot` per poll interval, however many consoles are open."""

    def __init__(self, node: Callable[[], Node], interval: float = POLL_SECONDS) -> None:
        self._node = node
        self.interval = interval
        self._value: dict[str, int] | None = None
        self._read_at = 0.0
        self._lock: anyio.Lock | None = None

    def invalidate(self) -> None:
        """Read again at the next :meth:`current` (after this process changed something)."""
        self._read_at = 0.0

    @property
    def last(self) -> dict[str, int] | None:
        """The latest reading, without reading again (None before the first)."""
        return self._value

    async def current(self) -> dict[str, int]:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._value is None or time.monotonic() - self._read_at >= self.interval:
                self._value = await anyio.to_thread.run_sync(snapshot, self._node())
                self._read_at = time.monotonic()
            return self._value
