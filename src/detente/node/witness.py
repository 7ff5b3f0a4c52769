"""Witnessing: fetch each peer's checkpoint, check it extends what we saw, cosign it.

Every node is a witness for the logs of its agreements' other members.  A
round asks each peer for its latest checkpoint with a consistency proof from
the newest one we hold, verifies both (signatures: Ed25519 *and* ML-DSA-65;
proof: RFC 9162 §2.1.4), stores it, and sends back a C2SP ``cosignature/v1``
line.  Two checkpoints of one peer that do not fit one history are a fork:
:meth:`detente.node.service.Node.observe_checkpoint` keeps both and alarms.
"""

from __future__ import annotations

import logging

import anyio
import httpx

from detente.core.canonical import b64d, canonical, parse
from detente.core.checkpoint import cosign
from detente.errors import DetenteError
from detente.node.clock import to_ms
from detente.node.service import Node

__all__ = ["WitnessWorker", "witness_name"]

log = logging.getLogger(__name__)


def witness_name(party_id: str) -> str:
    """The key name a party cosigns with (C2SP tlog-cosignature)."""
    return f"detente.witness/{party_id}"


class WitnessWorker:
    def __init__(self, node: Node, client: httpx.AsyncClient) -> None:
        self.node = node
        self.client = client

    async def round(self) -> None:
        async with anyio.create_task_group() as tg:
            for peer in self.node.peers():
                tg.start_soon(self.witness, peer)

    async def witness(self, peer: str) -> bool:
        """Check and cosign ``peer``'s latest checkpoint; True if it was consistent."""
        node = self.node
        card = node.peers()[peer]
        base = card.endpoint.rstrip("/")
        known = await anyio.to_thread.run_sync(node.known_peer_size, peer)
        try:
            response = await self.client.get(
                base + "/federation/v1/checkpoint", params={"since": known or 0}
            )
            response.raise_for_status()
            answer = parse(response.content)
            proof = [b64d(h, field="consistency") for h in answer["consistency"]]
            note = str(answer["checkpoint"]).encode()
            cp, consistent = await anyio.to_thread.run_sync(
                node.observe_checkpoint, peer, note, proof, answer.get("proof_from")
            )
        except (httpx.HTTPError, DetenteError, KeyError, TypeError) as exc:
            log.info("witnessing %s: %s", peer, exc)
            return False
        if not consistent:
            return False
        timestamp = to_ms(node.clock.now()) // 1000
        line = cosign(cp, witness_name(node.id), node.keys.ed25519, timestamp)
        try:
            await self.client.post(
                base + "/federation/v1/cosign",
                content=canonical(
                    {"witness": node.id, "size": cp.size, "line": line, "timestamp": timestamp}
                ),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.info("sending a cosignature to %s: %s", peer, exc)
        return True
