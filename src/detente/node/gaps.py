"""Gaps: ask a sender to resend the sequence numbers a channel lacks.

The receiving side notices a gap when a message arrives whose seq is more than
one past the last contiguous one (it is still accepted: a hotline does not
hold an urgent message hostage to an earlier one).  The delivery answer tells
the sender at once; this worker also asks, in a signed ``resend`` request,
for every channel that still has a gap, in case the sender's node restarted
or the answer was lost.
"""

from __future__ import annotations

import logging

import anyio
import httpx

from detente.core.canonical import canonical
from detente.core.fedrequest import sign_request
from detente.node.service import Node

__all__ = ["GapWorker"]

log = logging.getLogger(__name__)


class GapWorker:
    def __init__(self, node: Node, client: httpx.AsyncClient) -> None:
        self.node = node
        self.client = client

    async def round(self) -> None:
        gaps = await anyio.to_thread.run_sync(self.node.open_gaps)
        for sender, seqs in gaps.items():
            card = self.node.peers().get(sender)
            if card is None:
                continue
            request = sign_request(
                "resend",
                {"seqs": seqs},
                sender=self.node.id,
                keys=self.node.keys,
                to=sender,
                now=self.node.clock.now(),
            )
            try:
                await self.client.post(
                    card.endpoint.rstrip("/") + "/federation/v1/resend",
                    content=canonical(request),
                    headers={"content-type": "application/json"},
                )
            except httpx.HTTPError as exc:
                log.info("asking %s to resend %d message(s): %s", sender, len(seqs), exc)
