"""Sightings back: report that an indicator was seen, as a signed message to its source.

An officer (``detente sighting``) or a tool (``POST /api/v1/interop/sightings``)
names the indicator — its STIX id as served over TAXII, or a value together
with the notification it came in.  :func:`report` finds the received
notification that carried it (from the STIX index, :mod:`.index`) and sends a
``sighting`` message (core form ``sighting``) under that notification's
agreement, case and TLP: it is signed, receipted and logged like every
message, and on arrival the source's node indexes it as a STIX Sighting on
its TAXII collection (:func:`detente.interop.index.sighting_object`).
"""

from __future__ import annotations

from sqlalchemy import and_, select

from detente.core.envelope import Content, Envelope
from detente.core.forms import FormError
from detente.core.timefmt import format_time, parse_user_time
from detente.node.service import Node
from detente.store.schema import messages, stix_objects

__all__ = ["report"]


def _source_notification(node: Node, indicator: str) -> str:
    with node.engine.connect() as conn:
        found = conn.execute(
            select(messages.c.id)
            .join(stix_objects, stix_objects.c.message_id == messages.c.id)
            .where(
                and_(
                    stix_objects.c.stix_id == indicator,
                    messages.c.direction == "in",
                    messages.c.type.in_(("notification", "request")),
                )
            )
            .order_by(messages.c.stored_at.desc())
            .limit(1)
        ).scalar_one_or_none()
    if found is None:
        raise FormError(
            "notification",
            f"no received notification carries {indicator[:100]}; name the notification",
        )
    return str(found)


def report(
    node: Node,
    indicator: str,
    *,
    count: int,
    first_seen: str,
    last_seen: str,
    where: str | None = None,
    notification: str | None = None,
    by: str | None = None,
) -> list[Envelope]:
    """Send a ``sighting`` of ``indicator`` to the party whose notification carried it."""
    if notification is None:
        notification = _source_notification(node, indicator)
    with node.engine.connect() as conn:
        tlp = conn.execute(
            select(messages.c.tlp).where(messages.c.id == notification)
        ).scalar_one_or_none()
    if tlp is None:
        raise FormError("notification", f"{notification} is not a message on this node")
    body: dict[str, object] = {
        "notification": notification,
        "indicator": indicator,
        "first_seen": format_time(parse_user_time(first_seen, field="first_seen")),
        "last_seen": format_time(parse_user_time(last_seen, field="last_seen")),
        "count": count,
    }
    if where:
        body["where"] = where
    return node.send(Content("sighting", str(tlp), body), None, None, by=by)
