"""A read-only view of a node's store, for audits with the node stopped or running.

``detente log checkpoint`` and ``log prove`` use it: they read what the node
committed (SQLite's WAL lets them read while the node writes) and never write.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from detente.core.agreement import Agreement, other_members
from detente.core.canonical import parse
from detente.core.party import PartyCard
from detente.errors import ConfigError
from detente.node import queries
from detente.node.config import NodeHome
from detente.node.log import NodeLog
from detente.store.db import has_schema, open_engine
from detente.store.schema import agreements, checkpoints

__all__ = ["StoreView", "checkpoint_offline", "proof_offline"]


class StoreView:
    def __init__(self, home: NodeHome) -> None:
        config = home.config()
        self.id = config.party_id
        self.card: PartyCard = home.card()
        self.engine = open_engine(config.db_url, reads_only=True)
        if not has_schema(self.engine):
            raise ConfigError(f"no Détente database at {config.db_url.split('@')[-1]}")
        self.log = NodeLog(self.engine, self.id, home.keys())

    def latest_checkpoint(self) -> tuple[bytes, int]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(checkpoints.c.note, checkpoints.c.size)
                .order_by(checkpoints.c.size.desc())
                .limit(1)
            ).first()
        if row is None:
            raise ConfigError("the log has no signed checkpoint yet")
        return bytes(row.note), int(row.size)

    def agreements(self) -> dict[str, Agreement]:
        with self.engine.connect() as conn:
            docs = conn.execute(select(agreements.c.document)).scalars()
            found = [Agreement.from_json(parse(bytes(d))) for d in docs]
        return {a.ref: a for a in found}

    def peers(self) -> dict[str, PartyCard]:
        return other_members(self.agreements().values(), self.id)

    def close(self) -> None:
        self.engine.dispose()


def checkpoint_offline(home: NodeHome) -> dict[str, Any]:
    view = StoreView(home)
    try:
        return queries.checkpoint_info(view)
    finally:
        view.close()


def proof_offline(home: NodeHome, message_id: str) -> dict[str, Any]:
    view = StoreView(home)
    try:
        return queries.proof_for(view, message_id)
    finally:
        view.close()
