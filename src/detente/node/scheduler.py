"""One scheduler for the node's background work, which tests can drive by hand.

Jobs: deliver the outbox (at once when something is queued, else when a
retry falls due), witness peers' logs, ask senders to resend what a gap
lacks, sign a checkpoint when the log has grown since the last one, and the
workflow's clock (reminders, missed deadlines, escalations, scheduled pings).
:meth:`Scheduler.tick` runs whatever is due once; :meth:`run` loops until
stopped.  Time comes from the node's injected clock.
"""

from __future__ import annotations

import logging
from datetime import datetime

import anyio
import httpx

from detente.node.clock import to_ms
from detente.node.delivery import DeliveryWorker
from detente.node.gaps import GapWorker
from detente.node.service import Node
from detente.node.witness import WitnessWorker

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        node: Node,
        client: httpx.AsyncClient,
        *,
        witness_every: float = 15.0,
        gaps_every: float = 10.0,
        checkpoint_every: float = 10.0,
        workflow_every: float = 5.0,
        idle_poll: float = 1.0,
    ) -> None:
        self.node = node
        self.delivery = DeliveryWorker(node, client)
        self.witness = WitnessWorker(node, client)
        self.gaps = GapWorker(node, client)
        self.witness_every = witness_every
        self.gaps_every = gaps_every
        self.checkpoint_every = checkpoint_every
        self.workflow_every = workflow_every
        self._last_workflow: datetime | None = None
        self._last_checkpoint: datetime | None = None
        self.idle_poll = idle_poll
        self._wake = anyio.Event()
        self._last_witness: datetime | None = None
        self._last_gaps: datetime | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None

    def wake(self) -> None:
        """Called from any thread when the outbox has something new."""
        if self._token is not None:
            anyio.from_thread.run_sync(self._wake.set, token=self._token)

    def _due(self, last: datetime | None, every: float, now: datetime) -> bool:
        return last is None or (now - last).total_seconds() >= every

    async def tick(self) -> None:
        """Run every job that is due, once."""
        now = self.node.clock.now()
        await self.delivery.deliver_due()
        if self._due(self._last_witness, self.witness_every, now):
            self._last_witness = now
            await self.witness.round()
        if self._due(self._last_gaps, self.gaps_every, now):
            self._last_gaps = now
            await self.gaps.round()
        if self._due(self._last_checkpoint, self.checkpoint_every, now):
            # Sends and recorded receipts do not sign a checkpoint each; this
            # covers them within checkpoint_every seconds even if nobody asks.
            self._last_checkpoint = now
            await anyio.to_thread.run_sync(self.node.latest_checkpoint)
        if self._due(self._last_workflow, self.workflow_every, now):
            self._last_workflow = now
            await anyio.to_thread.run_sync(self.node.workflow_tick)
            await self.delivery.deliver_due()  # escalations it queued go out now

    async def run(self) -> None:
        self._token = anyio.lowlevel.current_token()
        self.node.on_outbox = self.wake
        while True:
            # A fresh event before the tick: a wake() during the tick is not lost.
            self._wake = anyio.Event()
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            next_ms = await anyio.to_thread.run_sync(self.node.next_wakeup_ms)
            delay = self.idle_poll
            if next_ms is not None:
                delay = max(0.0, min(delay, (next_ms - to_ms(self.node.clock.now())) / 1000))
            with anyio.move_on_after(delay):
                await self._wake.wait()
