"""Who may read what over TAXII: the highest TLP served to each API user.

The rule (one per user, checked on every TAXII request):

* the user's **role** gives a default: ``viewer`` is served TLP:CLEAR and
  TLP:GREEN; ``officer``, ``supervisor`` and ``admin`` also TLP:AMBER and
  TLP:AMBER+STRICT (the receiving organisation's own staff and tools);
* **TLP:RED is never served by default**: RED is for the named recipients of
  a message, and a feed is further distribution; an administrator can grant
  it to one user (``detente taxii grant NAME --max-tlp RED``), as they can
  lower any user's ceiling (``--max-tlp GREEN`` for a partner tool);
* an object's label is its own most restrictive TLP marking, never below the
  label of the message it came in (:mod:`.tlp`); a user is served an object
  only if its label is at or below the user's ceiling.  A per-TLP collection
  whose label is above the ceiling answers 403.

Not here: authentication itself (the node's API tokens, hashed at rest, via
:meth:`detente.node.service.Node.authenticate`).
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, insert, select, update

from detente.core.policy import TLP_LABELS, tlp_rank
from detente.store.db import mapped_errors
from detente.store.schema import api_tokens, taxii_grants

__all__ = ["ROLE_MAX_TLP", "grant", "max_tlp_for", "readable"]

ROLE_MAX_TLP = {
    "viewer": "GREEN",
    "officer": "AMBER+STRICT",
    "supervisor": "AMBER+STRICT",
    "admin": "AMBER+STRICT",
}


def max_tlp_for(conn: Connection, name: str, role: str) -> str:
    """The highest TLP the TAXII server serves the API user ``name``."""
    granted = conn.execute(
        select(taxii_grants.c.max_tlp).where(taxii_grants.c.name == name)
    ).scalar_one_or_none()
    return str(granted) if granted is not None else ROLE_MAX_TLP.get(role, "CLEAR")


def readable(max_tlp: str) -> tuple[str, ...]:
    """The labels at or below ``max_tlp``."""
    return TLP_LABELS[: tlp_rank(max_tlp) + 1]


def grant(engine: Engine, name: str, max_tlp: str, now_ms: int) -> None:
    """Set user ``name``'s TAXII ceiling (the user must hold an API token)."""
    from detente.errors import EncodingError  # noqa: PLC0415 - keep the import list short

    tlp_rank(max_tlp)
    with mapped_errors("granting a TLP ceiling"), engine.begin() as conn:
        if conn.execute(select(api_tokens.c.name).where(api_tokens.c.name == name)).first() is None:
            raise EncodingError(f"no API user named {name!r} (detente token add first)")
        done = conn.execute(
            update(taxii_grants)
            .where(taxii_grants.c.name == name)
            .values(max_tlp=max_tlp, updated_at=now_ms)
        )
        if not done.rowcount:
            conn.execute(insert(taxii_grants).values(name=name, max_tlp=max_tlp, updated_at=now_ms))
