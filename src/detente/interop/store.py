"""STIX objects in the node's database: rows from objects, idempotent inserts, TAXII reads.

One row per object version and scope (``stix_objects``; scope is an
agreement id, or ``local`` for imports not tied to a case).  Inserting the
same version again is a no-op (first one wins, so a re-import or a message
indexed twice changes nothing).  ``is_last`` marks the newest version of each
object in its scope, which is what TAXII serves by default
(``match[version]=last``).  ``date_added`` is strictly increasing per scope
(microseconds; a burst gets consecutive values) so TAXII's ``added_after``
never skips nor repeats an object.

The functions take an open SQLAlchemy connection and never commit: callers
decide the transaction (the node's writer for indexed messages, short
batches for a streamed import).  Not here: validation (:mod:`.validate`),
who may read what (:mod:`.access`).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from detente.core.policy import TLP_LABELS
from detente.interop.tlp import object_tlp
from detente.store.schema import stix_objects

__all__ = [
    "Query",
    "format_us",
    "insert_rows",
    "make_row",
    "parse_us",
    "query_objects",
    "ts_to_us",
]

_RANK = {label: i for i, label in enumerate(TLP_LABELS)}
# Built once: json.dumps with options builds an encoder per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
_IN_CHUNK = 500
_US_CACHE: dict[str, int] = {}


def ts_to_us(value: str) -> int:
    """Microseconds since the epoch of a checked STIX timestamp (cached: they repeat)."""
    cached = _US_CACHE.get(value)
    if cached is not None:
        return cached
    whole = datetime(
        int(value[0:4]),
        int(value[5:7]),
        int(value[8:10]),
        int(value[11:13]),
        int(value[14:16]),
        int(value[17:19]),
        tzinfo=UTC,
    )
    fraction = value[20:-1] if value[19] == "." else ""
    us = int(whole.timestamp()) * 1_000_000 + int((fraction + "000000")[:6])
    if len(_US_CACHE) > 4096:
        _US_CACHE.clear()
    _US_CACHE[value] = us
    return us


def format_us(us: int) -> str:
    """RFC 3339 UTC with microseconds, as TAXII's date_added and version headers."""
    seconds, micro = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micro:06d}Z"


def parse_us(value: str) -> int:
    """Microseconds of a client-given RFC 3339 time (``added_after``, ``match[version]``)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def make_row(
    obj: Mapping[str, Any],
    *,
    scope: str,
    source: str,
    floor_tlp: str | None = None,
    default_tlp: str = "AMBER",
    local_markings: Mapping[str, str] | None = None,
    case_id: str | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The row for a checked object.

    Its TLP is its most restrictive TLP marking, raised to ``floor_tlp`` (the
    label of the message it came in) if that is higher; an unmarked object
    takes ``floor_tlp``, else ``default_tlp``.
    """
    label = object_tlp(obj, local_markings)
    if floor_tlp is not None and (label is None or _RANK[floor_tlp] > _RANK[label]):
        label = floor_tlp
    tlp = label or default_tlp
    version = obj.get("modified") or obj.get("created")
    return {
        "scope": scope,
        "stix_id": obj["id"],
        "type": obj["type"],
        "version": version or "",
        "version_us": ts_to_us(version) if version else 0,
        "tlp": tlp,
        "case_id": case_id,
        "message_id": message_id,
        "source": source,
        "object": _ENCODE(obj).encode("utf-8"),
    }


_COLUMNS = (
    "scope",
    "stix_id",
    "type",
    "version",
    "version_us",
    "date_added",
    "is_last",
    "tlp",
    "case_id",
    "message_id",
    "source",
    "object",
)


_AS_TUPLE = operator.itemgetter(*_COLUMNS)


def _insert_sql(conn: Connection) -> str:
    # The driver's executemany, without SQLAlchemy's per-row parameter
    # processing (it costs more than SQLite's own insert); ON CONFLICT DO
    # NOTHING covers a concurrent writer that stored the same version first.
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO stix_objects ({', '.join(_COLUMNS)}) "  # noqa: S608 - constants only
        f"VALUES ({', '.join([mark] * len(_COLUMNS))}) "
        "ON CONFLICT (scope, stix_id, version_us) DO NOTHING"
    )


_CLEAR_LAST = (
    update(stix_objects)
    .where(
        and_(
            stix_objects.c.scope == bindparam("b_scope"),
            stix_objects.c.stix_id == bindparam("b_id"),
            stix_objects.c.version_us < bindparam("b_newest"),
            stix_objects.c.is_last.is_(True),
        )
    )
    .values(is_last=False)
)


@dataclass
class InsertResult:
    stored: int = 0
    duplicates: int = 0


def insert_rows(conn: Connection, rows: Sequence[dict[str, Any]], now_us: int) -> InsertResult:
    """Insert rows from :func:`make_row` (any scopes); skip versions already held."""
    result = InsertResult()
    by_scope: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_scope.setdefault(row["scope"], []).append(row)
    for scope, group in by_scope.items():
        _insert_scope(conn, scope, group, now_us, result)
    return result


def _insert_scope(
    conn: Connection, scope: str, rows: list[dict[str, Any]], now_us: int, result: InsertResult
) -> None:
    ids = list({row["stix_id"] for row in rows})
    held: dict[str, set[int]] = {}  # versions already stored, for the ids that have some
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        for stix_id, version_us in conn.execute(
            select(stix_objects.c.stix_id, stix_objects.c.version_us).where(
                and_(stix_objects.c.scope == scope, stix_objects.c.stix_id.in_(chunk))
            )
        ):
            held.setdefault(stix_id, set()).add(int(version_us))
    # The common case (new ids, one version each) costs a tuple and a set entry per row.
    fresh: list[dict[str, Any]] = []
    taken: set[tuple[str, int]] = set()
    newest: dict[str, int] = {}
    for row in rows:
        stix_id, version = row["stix_id"], row["version_us"]
        key = (stix_id, version)
        if key in taken or (stix_id in held and version in held[stix_id]):
            result.duplicates += 1
            continue
        taken.add(key)
        fresh.append(row)
        current = newest.get(stix_id)
        if current is None or version > current:
            newest[stix_id] = version
    if not fresh:
        return
    last_added = conn.execute(
        select(func.max(stix_objects.c.date_added)).where(stix_objects.c.scope == scope)
    ).scalar_one_or_none()
    added = max(now_us, int(last_added or 0) + 1)
    for row in fresh:
        stix_id, version = row["stix_id"], row["version_us"]
        before = held.get(stix_id)
        row["is_last"] = version == newest[stix_id] and (before is None or version > max(before))
        row["date_added"] = added
        if not row["version"]:
            row["version"] = format_us(added)
        added += 1
    conn.exec_driver_sql(_insert_sql(conn), list(map(_AS_TUPLE, fresh)))
    result.stored += len(fresh)
    # Older versions held before this batch stop being the newest.
    superseded = [
        {"b_scope": scope, "b_id": stix_id, "b_newest": version}
        for stix_id, version in newest.items()
        if stix_id in held and version > max(held[stix_id])
    ]
    if superseded:
        conn.execute(_CLEAR_LAST, superseded)


# -- reading (TAXII) --------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """What a TAXII request asks of one collection."""

    scope: str
    tlps: tuple[str, ...]  # the labels the reader may see (and the collection holds)
    after_seq: int = 0  # the `next` cursor
    added_after_us: int | None = None
    types: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    versions: tuple[str, ...] = ("last",)  # last | first | all | microsecond timestamps
    limit: int = 1000


def _conditions(q: Query) -> list[ColumnElement[bool]]:
    t = stix_objects.c
    where: list[ColumnElement[bool]] = [t.scope == q.scope, t.seq > q.after_seq]
    if len(q.tlps) < len(TLP_LABELS):
        where.append(t.tlp.in_(q.tlps))
    if q.added_after_us is not None:
        where.append(t.date_added > q.added_after_us)
    if q.types:
        where.append(t.type.in_(q.types))
    if q.ids:
        where.append(t.stix_id.in_(q.ids))
    if "all" not in q.versions:
        alternatives: list[ColumnElement[bool]] = []
        stamps = [int(v) for v in q.versions if v not in ("first", "last")]
        if "last" in q.versions:
            alternatives.append(t.is_last.is_(True))
        if "first" in q.versions:
            older = stix_objects.alias("older")
            alternatives.append(
                ~exists().where(
                    and_(
                        older.c.scope == t.scope,
                        older.c.stix_id == t.stix_id,
                        older.c.version_us < t.version_us,
                    )
                )
            )
        if stamps:
            alternatives.append(t.version_us.in_(stamps))
        where.append(or_(*alternatives))
    return where


def query_objects(conn: Connection, q: Query, *, with_objects: bool) -> tuple[list[Any], bool]:
    """Rows matching ``q`` in ``seq`` order, at most ``q.limit``, and whether more follow."""
    t = stix_objects.c
    columns = [t.seq, t.stix_id, t.date_added, t.version, t.type]
    if with_objects:
        columns.append(t.object)
    rows = list(
        conn.execute(select(*columns).where(*_conditions(q)).order_by(t.seq).limit(q.limit + 1))
    )
    more = len(rows) > q.limit
    return rows[: q.limit], more


def query_versions(conn: Connection, q: Query, stix_id: str) -> tuple[list[Any], bool]:
    """Every version of ``stix_id`` the reader may see (``match[version]`` ignored)."""
    full = Query(q.scope, q.tlps, q.after_seq, q.added_after_us, (), (stix_id,), ("all",), q.limit)
    return query_objects(conn, full, with_objects=False)


def object_exists(conn: Connection, scope: str, stix_id: str, tlps: Iterable[str]) -> bool:
    t = stix_objects.c
    return (
        conn.execute(
            select(t.seq)
            .where(and_(t.scope == scope, t.stix_id == stix_id, t.tlp.in_(list(tlps))))
            .limit(1)
        ).first()
        is not None
    )
