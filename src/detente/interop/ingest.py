"""Ingest STIX 2.1: a bundle file (streamed, any size) or objects in memory, into the store.

:func:`import_file` reads a bundle twice: a first pass checks every object
(:func:`~detente.interop.validate.check_object`, patterns included) and
stores nothing, so a bad bundle — a malformed pattern on object 900,000 —
is refused whole with the object's position, id and property; a second
pass stores the objects in short transactions of :data:`BATCH` rows, so the
node (which shares the database) is never blocked for long and memory stays
flat.  Both passes hold one chunk and one object at a time.

:func:`check_objects` and :func:`rows_for` serve the in-memory paths (TAXII
writes, notifications indexed by :mod:`.index`).  Not here: who may read the
objects (:mod:`.access`), the CLI's progress bar (:mod:`detente.cli.interop`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from detente.errors import EncodingError
from detente.interop.store import insert_rows, make_row
from detente.interop.stream import BundleReader
from detente.interop.tlp import TLP_MARKING_IDS, marking_tlp
from detente.interop.validate import StixError, check_object
from detente.store.db import mapped_errors, migrate, open_engine

__all__ = [
    "BATCH",
    "ImportResult",
    "check_objects",
    "import_engine",
    "import_file",
    "rows_for",
    "scan_file",
]

BATCH = 20_000
MAX_LOCAL_MARKINGS = 10_000

Progress = Callable[[int], None]  # bytes read so far


@dataclass
class ImportResult:
    objects: int = 0
    stored: int = 0
    duplicates: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_tlp: dict[str, int] = field(default_factory=dict)
    bundle_id: str | None = None
    seconds_checking: float = 0.0
    seconds_storing: float = 0.0
    local_markings: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle_id,
            "objects": self.objects,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "by_type": dict(sorted(self.by_type.items())),
            "by_tlp": self.by_tlp,
            "seconds": round(self.seconds_checking + self.seconds_storing, 3),
        }


def import_engine(db_url: str) -> Engine:
    """An engine for an import into the node's database (migrated; the node may run).

    On SQLite its commits do not wait for the disk (``synchronous=NORMAL``, still
    safe from corruption in WAL mode): an import interrupted by a power cut is run
    again, and re-importing stores only what is missing.  The node's own
    connections keep ``FULL`` — its receipts promise durability.
    """
    engine = open_engine(db_url)
    if engine.dialect.name == "sqlite":

        def normal(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        event.listen(engine, "connect", normal)
    migrate(engine)
    return engine


def _note_marking(obj: Mapping[str, Any], local: dict[str, str]) -> None:
    if obj["type"] == "marking-definition" and obj["id"] not in TLP_MARKING_IDS:
        label = marking_tlp(obj)
        if label is not None:
            if len(local) >= MAX_LOCAL_MARKINGS:
                raise StixError("bundle", None, f"defines over {MAX_LOCAL_MARKINGS} TLP markings")
            local[obj["id"]] = label


def scan_file(
    path: Path, *, progress: Progress | None = None, max_bytes: int | None = None
) -> ImportResult:
    """The checking pass: every object checked, nothing stored."""
    result = ImportResult()
    started = time.perf_counter()
    with path.open("rb") as f:
        reader = BundleReader(f, max_bytes=max_bytes)
        by_type = result.by_type
        last_report = 0
        for i, obj in enumerate(reader):
            spec = check_object(obj, f"objects[{i}]")
            obj_type = obj["type"]
            by_type[obj_type] = by_type.get(obj_type, 0) + 1
            if spec.kind == "meta":
                _note_marking(obj, result.local_markings)
            if progress is not None and reader.bytes_read - last_report >= 1 << 22:
                last_report = reader.bytes_read
                progress(reader.bytes_read)
        result.objects = reader.count
        result.bundle_id = reader.bundle_id
        if progress is not None:
            progress(reader.bytes_read)
    result.seconds_checking = time.perf_counter() - started
    return result


def import_file(
    engine: Engine,
    path: Path,
    *,
    scope: str,
    source: str,
    default_tlp: str = "AMBER",
    case_id: str | None = None,
    now_us: Callable[[], int],
    progress: Callable[[str, int], None] | None = None,
    max_bytes: int | None = None,
) -> ImportResult:
    """Check the whole bundle at ``path``, then store it in batches (see the module doc)."""
    result = scan_file(
        path,
        progress=(lambda n: progress("checking", n)) if progress else None,
        max_bytes=max_bytes,
    )
    started = time.perf_counter()
    by_tlp = result.by_tlp
    local = result.local_markings or None
    with path.open("rb") as f:
        reader = BundleReader(f, max_bytes=max_bytes)
        batch: list[dict[str, Any]] = []
        last_report = 0
        for obj in reader:
            row = make_row(
                obj,
                scope=scope,
                source=source,
                default_tlp=default_tlp,
                local_markings=local,
                case_id=case_id,
            )
            by_tlp[row["tlp"]] = by_tlp.get(row["tlp"], 0) + 1
            batch.append(row)
            if len(batch) >= BATCH:
                _store(engine, batch, now_us(), result)
                batch = []
                if progress is not None and reader.bytes_read - last_report >= 1 << 22:
                    last_report = reader.bytes_read
                    progress("storing", reader.bytes_read)
        if batch:
            _store(engine, batch, now_us(), result)
        if progress is not None:
            progress("storing", reader.bytes_read)
    result.seconds_storing = time.perf_counter() - started
    return result


def _store(engine: Engine, rows: list[dict[str, Any]], now_us: int, result: ImportResult) -> None:
    with mapped_errors("storing STIX objects"), engine.begin() as conn:
        done = insert_rows(conn, rows, now_us)
    result.stored += done.stored
    result.duplicates += done.duplicates


def check_objects(objects: Any, where: str = "objects") -> dict[str, str]:
    """Check a list of objects in memory; the TLP markings it defines (id -> label)."""
    if not isinstance(objects, list):
        raise EncodingError(f"{where}: must be a list of STIX objects")
    local: dict[str, str] = {}
    for i, obj in enumerate(objects):
        spec = check_object(obj, f"{where}[{i}]")
        if spec.kind == "meta":
            _note_marking(obj, local)
    return local


def rows_for(
    objects: Iterable[Mapping[str, Any]],
    local: Mapping[str, str],
    **row_args: Any,
) -> list[dict[str, Any]]:
    """Rows for checked objects (``row_args``: see :func:`~detente.interop.store.make_row`)."""
    return [make_row(obj, local_markings=local or None, **row_args) for obj in objects]
