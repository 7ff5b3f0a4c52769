"""Index messages as STIX for the TAXII server: bundles in forms, sightings reported back.

:func:`index_items` is called by the node's writer inside the transaction
that commits messages (``_Send.apply`` and ``_Receive.apply`` in
:mod:`detente.node.service`), so an object becomes visible over TAXII exactly
when its message is committed, and never without it:

* the STIX bundle of a ``notification`` (``indicators``) or ``request``
  (``evidence``), sent or received, goes to its agreement's collection, each
  object labelled with the more restrictive of its own TLP marking and the
  message's TLP, in the message's case;
* a ``sighting`` message becomes a STIX Sighting (its id derived from the
  message id, so a duplicate indexes once) of the indicator it names,
  ``where_sighted_refs`` the reporting party's identity — on the source's
  collection as on the reporter's.  A sighting that names a value rather than
  an indicator id is matched to the case's indicator whose pattern compares
  with that value.

Indexing never refuses a message: the message was already checked (form and
STIX, :mod:`detente.stix`); an object this stricter validator refuses is
left out and logged, and a failure of the index's own writes is rolled back
to a savepoint and logged, leaving the message's commit untouched.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, select

from detente.core.timefmt import format_time, parse_time
from detente.errors import DetenteError
from detente.interop.ingest import rows_for
from detente.interop.store import insert_rows, make_row
from detente.interop.tlp import TLP_MARKING_IDS, marking_tlp, tlp_marking_id
from detente.interop.validate import StixError, check_object
from detente.store.schema import stix_objects

if TYPE_CHECKING:
    from detente.core.agreement import Agreement
    from detente.node.workflow import Item
    from detente.node.writer import Tx

__all__ = [
    "BUNDLE_FIELDS",
    "identity_for",
    "index_items",
    "reindex",
    "sighting_object",
    "stable_uuid4",
]

log = logging.getLogger(__name__)

BUNDLE_FIELDS: Mapping[str, str] = {"notification": "indicators", "request": "evidence"}
_IDENTITY_TIME = "2020-01-01T00:00:00.000Z"  # one version per party identity
_REFERABLE = ("indicator--", "malware--", "infrastructure--", "observed-data--")


def stable_uuid4(seed: str) -> str:
    """A UUID in version 4 form derived from ``seed``: the same message always gives the
    same object id (so indexing twice stores once), and STIX tools that expect SDO ids
    to be UUIDv4 (STIX 2.1 section 2.9, stix2-validator's check 103) raise no warning."""
    digest = hashlib.sha256(b"detente/v1/stix-id\0" + seed.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def identity_for(party: str, agreement: Agreement) -> dict[str, Any]:
    """The STIX Identity standing for a party of ``agreement`` (deterministic id)."""
    try:
        names = agreement.member(party).names
        name = names.get("en") or next(iter(names.values()))
    except DetenteError:
        name = party
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": f"identity--{stable_uuid4('party:' + party)}",
        "created": _IDENTITY_TIME,
        "modified": _IDENTITY_TIME,
        "name": f"{name} ({party})",
        "identity_class": "organization",
        "external_references": [{"source_name": "detente", "external_id": party}],
    }


def _time(value: str) -> str:
    return format_time(parse_time(value))


def sighting_object(
    message_id: str,
    created: str,
    tlp: str,
    body: Mapping[str, Any],
    indicator_ref: str,
    identity: Mapping[str, Any],
) -> dict[str, Any]:
    """The STIX 2.1 Sighting a ``sighting`` message stands for."""
    sighting: dict[str, Any] = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--{stable_uuid4('sighting:' + message_id)}",
        "created": created,
        "modified": created,
        "created_by_ref": identity["id"],
        "sighting_of_ref": indicator_ref,
        "count": body["count"],
        "first_seen": _time(body["first_seen"]),
        "last_seen": _time(body["last_seen"]),
        "where_sighted_refs": [identity["id"]],
        "object_marking_refs": [tlp_marking_id(tlp)],
        "external_references": [
            {
                "source_name": "detente",
                "external_id": message_id,
                "description": f"sighting message about notification {body['notification']}",
            }
        ],
    }
    if body.get("where"):
        sighting["description"] = f"seen at {body['where']}"
    return sighting


def _tlp_markings(objects: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """TLP marking definitions the bundle defines itself (id -> label)."""
    found = {}
    for obj in objects:
        if obj["type"] == "marking-definition" and obj["id"] not in TLP_MARKING_IDS:
            label = marking_tlp(obj)
            if label is not None:
                found[obj["id"]] = label
    return found


def _indicator_ref(conn: Connection, scope: str, case: str | None, named: str) -> str | None:
    if named.startswith(_REFERABLE):
        return named
    if case is None:
        return None
    quoted = "'" + named.replace("\\", "\\\\").replace("'", "\\'") + "'"
    for stix_id, obj in conn.execute(
        select(stix_objects.c.stix_id, stix_objects.c.object).where(
            and_(
                stix_objects.c.scope == scope,
                stix_objects.c.case_id == case,
                stix_objects.c.type == "indicator",
            )
        )
    ):
        if quoted.encode() in bytes(obj):
            return str(stix_id)
    return None


def _rows(conn: Connection, item: Item) -> list[dict[str, Any]]:
    env, body, agreement = item.envelope, item.body, item.agreement
    common: dict[str, Any] = {
        "scope": agreement.id,
        "source": env.from_,
        "floor_tlp": env.tlp,
        "case_id": env.case,
        "message_id": env.id,
    }
    field = BUNDLE_FIELDS.get(env.type)
    if field is not None:
        bundle = body.get(field)
        if not isinstance(bundle, Mapping):
            return []
        good = []
        for i, obj in enumerate(bundle.get("objects", [])):
            try:
                check_object(obj, f"{field}.objects[{i}]")
            except StixError as exc:
                log.warning("message %s: %s; that object is not served", env.id, exc)
                continue
            good.append(obj)
        return rows_for(good, _tlp_markings(good), **common)
    if env.type == "sighting":
        ref = _indicator_ref(conn, agreement.id, env.case, str(body["indicator"]))
        if ref is None:
            log.info("sighting %s names %r, which no indicator of its case matches", env.id, body)
            return []
        identity = identity_for(env.from_, agreement)
        sighting = sighting_object(env.id, env.created, env.tlp, body, ref, identity)
        return [
            make_row(identity, **{**common, "floor_tlp": "CLEAR"}),
            make_row(sighting, **common),
        ]
    return []


def index_items(tx: Tx, items: Sequence[Item]) -> None:
    """Index the STIX content of messages being committed (see the module doc)."""
    try:
        rows: list[dict[str, Any]] = []
        for item in items:
            try:
                rows.extend(_rows(tx.conn, item))
            except DetenteError as exc:
                log.warning("message %s: STIX content not indexed: %s", item.envelope.id, exc)
        if not rows:
            return
        with tx.conn.begin_nested():
            insert_rows(tx.conn, rows, tx.now_ms * 1000)
    except Exception:  # a bug here must not refuse a message
        log.exception("indexing STIX content of %d message(s) failed", len(items))


def reindex(engine: Engine, *, batch: int = 200) -> int:
    """Index every stored message again (idempotent): for a node upgraded to this
    schema with messages already received, or after an indexing failure was logged.
    Returns the number of messages read."""
    from detente.core.agreement import Agreement  # noqa: PLC0415
    from detente.core.canonical import parse  # noqa: PLC0415
    from detente.core.envelope import Content, Envelope  # noqa: PLC0415
    from detente.node.workflow import Item  # noqa: PLC0415
    from detente.store.schema import agreements, messages  # noqa: PLC0415

    with engine.connect() as conn:
        known = {}
        for doc in conn.execute(select(agreements.c.document)).scalars():
            agreement = Agreement.from_json(parse(bytes(doc)))
            known[agreement.ref] = agreement
    done, after = 0, -1
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    messages.c.log_index,
                    messages.c.direction,
                    messages.c.envelope,
                    messages.c.plaintext,
                )
                .where(
                    and_(
                        messages.c.log_index > after,
                        messages.c.type.in_((*BUNDLE_FIELDS, "sighting")),
                        messages.c.plaintext.is_not(None),
                    )
                )
                .order_by(messages.c.log_index)
                .limit(batch)
            ).all()
        if not rows:
            return done
        after = int(rows[-1].log_index)
        items = []
        for row in rows:
            env = Envelope.from_stored(bytes(row.envelope))
            under = known.get(env.agreement)
            if under is not None:
                body = Content.from_plaintext(bytes(row.plaintext)).body
                items.append(Item(env, body, row.direction, under))
        with engine.begin() as conn:
            found: list[dict[str, Any]] = []
            for item in items:
                try:
                    found.extend(_rows(conn, item))
                except DetenteError as exc:
                    log.warning("message %s: not indexed: %s", item.envelope.id, exc)
            if found:
                insert_rows(conn, found, int(time.time() * 1_000_000))
        done += len(rows)
