"""The log's sequencer: one writer thread, group commit.

Every change to the node's state that touches its log goes through
:meth:`Writer.run` as a :class:`Job`.  The writer thread takes all jobs
waiting (up to ``max_batch``) and runs them in **one** database transaction:

1. each job's :meth:`Job.apply` (inside a savepoint: a job that raises a
   :class:`~detente.errors.DetenteError` is undone alone, its log appends
   rewound, and the others go on);
2. if any job needs one (``needs_checkpoint``: deliveries, whose receipts
   name it), one checkpoint is signed over the log as it now stands;
3. each job's :meth:`Job.complete`, given that checkpoint (receipts are
   signed here, with inclusion proofs against it);
4. the log's rows are flushed and the transaction commits — only then is
   any caller answered.

So a burst of deliveries shares one fsync and one checkpoint signature (an
ML-DSA-65 signature costs about a millisecond: sends and recorded receipts
do not pay it; their leaves are covered by the next checkpoint, signed when
a delivery, a witness or an officer asks, or by the scheduler), and a
receipt is never returned for anything not durably committed (DESIGN.md
"Receipt").  On PostgreSQL with several API workers the same serialisation
would move into the database (an advisory lock around the batch); one
writer per node process is what this version runs.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from detente.errors import DetenteError, StorageError
from detente.node.clock import Clock, to_ms
from detente.node.log import NodeLog

__all__ = ["Job", "Tx", "Writer"]

log = logging.getLogger(__name__)


@dataclass
class Tx:
    """What a job sees: the open transaction, the log, and the batch's time."""

    conn: Connection
    log: NodeLog
    now: datetime
    now_ms: int


class Job(Protocol):
    #: True for jobs whose complete() needs a checkpoint covering their appends.
    needs_checkpoint: bool

    def apply(self, tx: Tx) -> None:
        """Validate, then write; raise a DetenteError before writing to refuse."""

    def complete(self, tx: Tx, checkpoint: bytes) -> Any:
        """After the batch's checkpoint is signed: finish and return the result."""


class Writer:
    def __init__(self, engine: Engine, node_log: NodeLog, clock: Clock, max_batch: int = 512):
        self._engine = engine
        self._log = node_log
        self._clock = clock
        self._max_batch = max_batch
        self._queue: queue.Queue[tuple[Job, Future[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="detente-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def submit(self, job: Job) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((job, future))
        return future

    def run(self, job: Job) -> Any:
        """Run ``job`` in the next batch and return its result once committed."""
        return self.submit(job).result()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[tuple[Job, Future[Any]]]) -> None:
        results: list[Any] = [None] * len(batch)
        errors: list[BaseException | None] = [None] * len(batch)
        node_log = self._log
        now = self._clock.now()
        try:
            with self._engine.begin() as conn:
                tx = Tx(conn, node_log, now, to_ms(now))
                for i, (job, _) in enumerate(batch):
                    mark = node_log.mark()
                    savepoint = conn.begin_nested()
                    try:
                        job.apply(tx)
                    except DetenteError as exc:
                        savepoint.rollback()
                        node_log.rewind(mark)
                        errors[i] = exc
                    else:
                        savepoint.commit()
                checkpoint = b""
                if any(
                    errors[i] is None and getattr(job, "needs_checkpoint", False)
                    for i, (job, _) in enumerate(batch)
                ):
                    checkpoint = node_log.sign_checkpoint(conn, tx.now_ms)
                for i, (job, _) in enumerate(batch):
                    if errors[i] is None:
                        results[i] = job.complete(tx, checkpoint)
                node_log.flush(conn)
        except (SQLAlchemyError, OSError) as exc:
            node_log.rollback()
            log.exception("batch of %d jobs failed; nothing committed", len(batch))
            failure = StorageError(f"the store could not commit: {type(exc).__name__}")
            errors = [failure] * len(batch)
        except Exception as exc:  # a bug: fail the batch loudly, keep the writer alive
            node_log.rollback()
            log.exception("batch of %d jobs failed on a bug; nothing committed", len(batch))
            errors = [exc] * len(batch)
        else:
            node_log.committed()
        for (_, future), result, error in zip(batch, results, errors, strict=True):
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
