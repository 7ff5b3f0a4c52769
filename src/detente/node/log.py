"""The node's own log: an RFC 9162 tree kept in memory and in the store.

Appends go to the in-memory :class:`~detente.core.merkle.MerkleTree` and are
queued as rows (the leaf, and every complete subtree it closes); the writer
flushes the rows in the same transaction as the objects they record, so the
log and the store cannot disagree after a crash.  If the transaction fails,
:meth:`NodeLog.rollback` truncates the tree back to what was committed.

Checkpoints are C2SP notes signed with the party's Ed25519 and ML-DSA-65 keys
under the key name ``detente.log/<party id>``.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from detente.core.checkpoint import Checkpoint, sign_checkpoint
from detente.core.keys import PartyKeys
from detente.core.logentry import entry_bytes, log_origin, log_signers
from detente.core.merkle import MerkleTree
from detente.core.note import NoteSigner
from detente.store.schema import checkpoints, log_leaves, log_nodes

__all__ = ["NodeLog"]


class NodeLog:
    """Append-only log with durable rows; every method runs under :attr:`lock`."""

    def __init__(self, engine: Engine, party_id: str, keys: PartyKeys) -> None:
        self.lock = threading.RLock()
        self.origin = log_origin(party_id)
        self._signers: tuple[NoteSigner, ...] = log_signers(party_id, keys)
        self._pending_leaves: list[dict[str, Any]] = []
        self._pending_nodes: list[dict[str, Any]] = []
        self.tree = self._load(engine)
        self.committed_size = self.tree.size

    @staticmethod
    def _load(engine: Engine) -> MerkleTree:
        with engine.connect() as conn:
            size = conn.execute(select(func.count()).select_from(log_leaves)).scalar_one()
            if not size:
                return MerkleTree()
            levels: list[list[bytes]] = [
                list(
                    conn.execute(
                        select(log_leaves.c.leaf_hash).order_by(log_leaves.c.idx)
                    ).scalars()
                )
            ]
            rows = conn.execute(
                select(log_nodes.c.level, log_nodes.c.hash).order_by(
                    log_nodes.c.level, log_nodes.c.idx
                )
            )
            for level, digest in rows:
                while len(levels) <= level:
                    levels.append([])
                levels[level].append(digest)
        return MerkleTree.from_levels(levels)

    @property
    def size(self) -> int:
        return self.tree.size

    def append(self, kind: str, ref: str, entry: dict[str, Any]) -> int:
        """Append a log entry; its rows are written by :meth:`flush`."""
        data = entry_bytes(entry)
        with self.lock:
            index = self.tree.append(data)
            nodes = list(self.tree.completed_nodes(index))
        leaf_hash = nodes[0][2]
        self._pending_leaves.append(
            {"idx": index, "leaf_hash": leaf_hash, "entry": data, "kind": kind, "ref": ref}
        )
        self._pending_nodes.extend(
            {"level": level, "idx": idx, "hash": digest} for level, idx, digest in nodes[1:]
        )
        return index

    def flush(self, conn: Connection) -> None:
        if self._pending_leaves:
            conn.execute(insert(log_leaves), self._pending_leaves)
        if self._pending_nodes:
            conn.execute(insert(log_nodes), self._pending_nodes)
        self._pending_leaves, self._pending_nodes = [], []

    def committed(self) -> None:
        """The transaction holding the flushed rows committed."""
        self.committed_size = self.tree.size

    def rollback(self) -> None:
        """The transaction failed: forget what it appended."""
        with self.lock:
            self.tree.truncate(self.committed_size)
        self._pending_leaves, self._pending_nodes = [], []

    def sign_checkpoint(self, conn: Connection, now_ms: int) -> bytes:
        """Sign a checkpoint of the tree as it is now and store it (in ``conn``'s transaction)."""
        with self.lock:
            cp = Checkpoint(self.origin, self.tree.size, self.tree.root())
        existing = conn.execute(
            select(checkpoints.c.note).where(checkpoints.c.size == cp.size)
        ).scalar_one_or_none()
        if existing is not None:
            return bytes(existing)  # nothing appended since: the same tree head
        note = sign_checkpoint(cp, self._signers)
        conn.execute(insert(checkpoints).values(size=cp.size, note=note, signed_at=now_ms))
        return note

    def mark(self) -> tuple[int, int, int]:
        """A point to :meth:`rewind` to if one job of a batch fails."""
        return (self.tree.size, len(self._pending_leaves), len(self._pending_nodes))

    def rewind(self, mark: tuple[int, int, int]) -> None:
        size, leaves, nodes = mark
        with self.lock:
            self.tree.truncate(size)
        del self._pending_leaves[leaves:]
        del self._pending_nodes[nodes:]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with self.lock:
            return self.tree.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self.lock:
            return self.tree.consistency_proof(size1, size2)

    def root(self, size: int) -> bytes:
        with self.lock:
            return self.tree.root(size)
