"""The outbox worker: deliver pending envelopes, in channel order, until receipted.

Per recipient, one batch is in flight at a time, lowest sequence numbers
first, so a channel's order holds across retries and restarts (the outbox is
in the store).  A batch is done only when every receipt in the answer
verifies (signature, checkpoint, inclusion proof); then the receipts are
committed to our log.  Failures back off exponentially with jitter.  A
refusal naming one envelope (4xx with an ``index``) marks that one rejected
and raises an alarm; the rest are sent again at once.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import anyio
import httpx

from detente.core.canonical import b64d, parse
from detente.core.envelope import Envelope
from detente.errors import DetenteError
from detente.node.clock import to_ms
from detente.node.service import Node

__all__ = ["DeliveryWorker", "backoff_ms"]

log = logging.getLogger(__name__)
DELIVER_PATH = "/federation/v1/deliver"


def backoff_ms(failures: int, *, base_ms: int = 500, cap_ms: int = 300_000) -> int:
    """Exponential backoff with jitter: half to all of ``base * 2**failures``, capped."""
    ceiling = min(cap_ms, base_ms * 2 ** min(failures, 30))
    return int(ceiling * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not secrecy


class _Result:
    """A one-shot boolean an async task hands back."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.value = False

    def set(self, value: bool) -> None:
        self.value = value
        self._event.set()

    async def wait(self) -> bool:
        await self._event.wait()
        return self.value


class DeliveryWorker:
    def __init__(self, node: Node, client: httpx.AsyncClient, batch_size: int = 500) -> None:
        self.node = node
        self.client = client
        self.batch_size = batch_size
        self._busy: set[str] = set()
        self._failures: dict[str, int] = {}

    async def deliver_due(self) -> None:
        now_ms = to_ms(self.node.clock.now())
        channels = await anyio.to_thread.run_sync(self.node.due_channels, now_ms)
        async with anyio.create_task_group() as tg:
            for recipient in channels:
                if recipient not in self._busy:
                    self._busy.add(recipient)
                    tg.start_soon(self._channel, recipient)

    async def settle(self, timeout: float = 30.0) -> None:
        """Deliver what is due and wait for deliveries already in flight to finish.

        For a clock a test or an exercise moves by hand: after a step, every
        receipt is recorded at that step's time, not the next one's.
        """
        with anyio.move_on_after(timeout):
            while True:
                await self.deliver_due()
                if not self._busy:
                    return
                await anyio.sleep(0.005)

    async def _channel(self, recipient: str) -> None:
        """Deliver a channel's backlog, pipelined.

        The next batch goes out as soon as the peer has answered the previous
        one, while that answer's receipts are verified and committed here:
        the peer still sees batches strictly in order (it answered k before
        it gets k+1), and we keep one verification in hand at a time.  Any
        failure drains the pipeline and restarts from the lowest pending seq.
        """
        after: int | None = None
        recording: Any = None
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    sent = await self._one_batch(recipient, after)
                    if recording is not None:
                        ok = await recording.wait()
                        recording = None
                        if not ok:
                            after = None
                    if sent is None:
                        break
                    envelopes, answer = sent
                    if answer is None:  # refused or failed: start again from the lowest
                        after = None
                        continue
                    after = envelopes[-1].seq
                    recording = _Result()
                    tg.start_soon(self._record, recipient, envelopes, answer, recording)
        except Exception:  # a worker must outlive any one peer's misbehaviour
            log.exception("delivery to %s failed unexpectedly", recipient)
        finally:
            self._busy.discard(recipient)

    async def _fail(self, recipient: str, ids: list[str], error: str) -> None:
        failures = self._failures.get(recipient, 0)
        self._failures[recipient] = failures + 1
        delay = backoff_ms(failures)
        log.warning("delivery to %s failed (%s); retry in %.1f s", recipient, error, delay / 1000)
        await anyio.to_thread.run_sync(self.node.delivery_failed, ids, error, delay)

    async def _one_batch(
        self, recipient: str, after: int | None
    ) -> tuple[list[Envelope], dict[str, Any] | None] | None:
        """Send one batch.  None: nothing (more) to send now; else the envelopes
        and the peer's answer (None if refused, to be sent again at once)."""
        node = self.node
        envelopes = await anyio.to_thread.run_sync(
            node.pending_batch, recipient, self.batch_size, after
        )
        if not envelopes:
            return None
        ids = [e.id for e in envelopes]
        card = node.peers().get(recipient)
        if card is None:
            await self._fail(recipient, ids, f"{recipient} is in no installed agreement")
            return None
        known = await anyio.to_thread.run_sync(node.known_peer_size, recipient)
        # The stored envelopes are canonical JSON already: splice, don't re-encode.
        body = b"".join(
            (
                b'{"envelopes":[',
                b",".join(e.to_bytes() for e in envelopes),
                b'],"known_size":',
                b"null" if known is None else str(known).encode(),
                b"}",
            )
        )
        try:
            response = await self.client.post(
                card.endpoint.rstrip("/") + DELIVER_PATH,
                content=body,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            await self._fail(recipient, ids, f"cannot reach {card.endpoint}: {type(exc).__name__}")
            return None
        if response.status_code == 200:
            try:
                answer = parse(response.content)
                if not isinstance(answer, dict):
                    raise DetenteError("delivery answer is not a JSON object")
            except DetenteError as exc:
                await self._fail(recipient, ids, f"unreadable answer: {exc}")
                return None
            return envelopes, answer
        problem: dict[str, Any] = {}
        try:
            problem = parse(response.content)
        except DetenteError:
            problem = {}
        index = problem.get("index") if isinstance(problem, dict) else None
        detail = str(problem.get("detail", response.reason_phrase))[:300]
        if 400 <= response.status_code < 500 and isinstance(index, int) and 0 <= index < len(ids):
            await anyio.to_thread.run_sync(node.delivery_rejected, ids[index], recipient, detail)
            return envelopes, None  # the others were not stored either: send them again now
        await self._fail(recipient, ids, f"HTTP {response.status_code}: {detail}")
        return None

    async def _record(
        self, recipient: str, envelopes: list[Envelope], answer: dict[str, Any], result: _Result
    ) -> None:
        ok = False
        try:
            ok = await self._accepted(recipient, envelopes, answer)
        finally:
            result.set(ok)

    async def _accepted(
        self, recipient: str, envelopes: list[Envelope], answer: dict[str, Any]
    ) -> bool:
        node = self.node
        ids = [e.id for e in envelopes]
        try:
            receipts = answer["receipts"]
            if not isinstance(receipts, list) or len(receipts) != len(envelopes):
                raise DetenteError("answer does not hold one receipt per envelope")
            notes = [str(answer["checkpoint"]).encode()]
            older = answer.get("notes") or {}
            if not isinstance(older, dict):
                raise DetenteError("answer notes must be an object")
            notes += [str(n).encode() for n in older.values()]
            proof = [b64d(h, field="consistency") for h in answer.get("consistency") or []]
            proof_from = answer.get("proof_from")
            if proof_from is not None and not isinstance(proof_from, int):
                raise DetenteError("answer proof_from must be an integer or null")
            # The answer's checkpoint is witnessed in the same commit as the receipts.
            witness = (recipient, notes[0], proof, proof_from)
            await anyio.to_thread.run_sync(
                lambda: node.record_receipts(
                    list(zip(envelopes, receipts, strict=True)), *notes, witness=witness
                )
            )
        except (DetenteError, KeyError, TypeError) as exc:
            await anyio.to_thread.run_sync(
                node.raise_alarm, "bad-receipt", recipient, f"receipt from {recipient}: {exc}"
            )
            await self._fail(recipient, ids, f"bad receipt: {exc}")
            return False
        self._failures.pop(recipient, None)
        missing = answer.get("missing", {}).get(node.id)
        if missing:
            await anyio.to_thread.run_sync(node.requeue, recipient, missing)
        return True
