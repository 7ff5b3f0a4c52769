"""Streaming bundles into the store: no loss, nothing stored from a bad bundle, bounded input."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

import detente.interop.stream as stream_module
from detente.interop.ingest import import_engine, import_file
from detente.interop.store import Query, query_objects
from detente.interop.stream import BundleReader
from detente.interop.tlp import tlp_marking_id
from detente.interop.validate import StixError
from detente.store.schema import stix_objects
from interop.stix_examples import NOW, bundle_of, indicator, library_bundle


@pytest.fixture
def engine(db_url_factory: Callable[[str], str]) -> Iterator[Engine]:
    """A fresh node database, on SQLite and on PostgreSQL (tests/conftest.py)."""
    e = import_engine(db_url_factory("interop"))
    yield e
    e.dispose()


def _now() -> int:
    return int(time.time() * 1_000_000)


def _write(tmp_path: Path, bundle: Any, name: str = "bundle.json") -> Path:
    path = tmp_path / name
    path.write_text(bundle if isinstance(bundle, str) else json.dumps(bundle, indent=1))
    return path


def _import(engine: Engine, path: Path, **kw: Any) -> Any:
    args: dict[str, Any] = {"scope": "local", "source": "local:test", "now_us": _now}
    return import_file(engine, path, **{**args, **kw})


def _stored(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows, _ = query_objects(
            conn,
            Query(
                "local",
                ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"),
                versions=("all",),
                limit=100_000,
            ),
            with_objects=True,
        )
    return [json.loads(bytes(r.object)) for r in rows]


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(stix_objects)).scalar_one())


def test_a_stix2_library_bundle_imports_without_loss(engine: Engine, tmp_path: Path) -> None:
    bundle = library_bundle()
    result = _import(engine, _write(tmp_path, bundle))
    assert result.objects == result.stored == len(bundle["objects"])
    stored = {o["id"]: o for o in _stored(engine)}
    assert stored == {o["id"]: o for o in bundle["objects"]}
    # Labels: the TLP:AMBER 1.0 marking and the TLP:GREEN 2.0 marking are read; the
    # unmarked objects take the import's default.
    with engine.connect() as conn:
        labels = dict(conn.execute(select(stix_objects.c.stix_id, stix_objects.c.tlp)).all())
    by_name = {o.get("name"): o["id"] for o in bundle["objects"]}
    assert labels[by_name["C2 server"]] == "AMBER"
    assert labels[by_name["Dropper"]] == "GREEN"
    assert labels[by_name["Example locker"]] == "AMBER"  # the default
    assert labels[tlp_marking_id("GREEN")] == "CLEAR"  # definitions are public


def test_the_second_import_stores_nothing_new_and_versions_are_tracked(
    engine: Engine, tmp_path: Path
) -> None:
    first = indicator(1)
    path = _write(tmp_path, bundle_of([first]))
    assert _import(engine, path).stored == 1
    again = _import(engine, path)
    assert (again.stored, again.duplicates) == (0, 1)
    newer = {**first, "modified": "2026-11-25T12:00:00.000Z", "name": "renamed"}
    assert _import(engine, _write(tmp_path, bundle_of([newer]), "v2.json")).stored == 1
    with engine.connect() as conn:
        last, _ = query_objects(conn, Query("local", ("AMBER",)), with_objects=True)
        every, _ = query_objects(
            conn, Query("local", ("AMBER",), versions=("all",)), with_objects=True
        )
        oldest, _ = query_objects(
            conn, Query("local", ("AMBER",), versions=("first",)), with_objects=True
        )
    assert [json.loads(bytes(r.object))["name"] for r in last] == ["renamed"]
    assert len(every) == 2
    assert [json.loads(bytes(r.object))["name"] for r in oldest] == ["C2 server 1"]


def test_a_local_tlp_marking_definition_labels_its_objects(engine: Engine, tmp_path: Path) -> None:
    red = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
        "created": NOW,
        "definition_type": "tlp",
        "definition": {"tlp": "red"},
    }
    marked = indicator(1, object_marking_refs=[red["id"]])
    _import(engine, _write(tmp_path, bundle_of([marked, red])), default_tlp="GREEN")
    with engine.connect() as conn:
        label = conn.execute(
            select(stix_objects.c.tlp).where(stix_objects.c.stix_id == marked["id"])
        ).scalar_one()
    assert label == "RED"


@pytest.mark.parametrize(
    ("mutate", "where", "words"),
    [
        (lambda o: o.update(pattern="[ipv4-addr:value = '1.2.3.4'"), "pattern", "expected"),
        (lambda o: o.pop("valid_from"), "valid_from", "is required"),
        (lambda o: o.update(spec_version="2.0"), "spec_version", "must be '2.1'"),
        (lambda o: o.update(id="indicator--not-a-uuid"), "id", "RFC 4122"),
    ],
)
def test_one_bad_object_in_thousands_stores_nothing(
    engine: Engine, tmp_path: Path, mutate: Any, where: str, words: str
) -> None:
    objects = [indicator(i) for i in range(3000)]
    mutate(objects[2500])
    with pytest.raises(StixError) as caught:
        _import(engine, _write(tmp_path, bundle_of(objects)))
    assert str(caught.value).startswith("objects[2500] (indicator--")
    assert caught.value.prop == where and words in caught.value.problem
    assert _count(engine) == 0


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            '{"type": "bundle", "id": "bundle--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061", "objects": [',
            "truncated",
        ),
        (
            '{"type": "bundle", "id": "bundle--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061", '
            '"objects": [{"type": "indicator", "x": tru}]}',
            "not valid JSON",
        ),
        (
            '{"type": "bundle", "id": "bundle--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061", '
            '"objects": [{"type": "indicator", "x": NaN}]}',
            "NaN is not JSON",
        ),
        (
            '{"type": "bundle", "id": "bundle--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061", '
            '"objects": [{"x": ' + "[" * 100_000 + "]" * 100_000 + "}]}",
            "nested too deeply",
        ),
        ('{"type": "bundle", "spec_version": "2.0", "objects": []}', "STIX 2.1 bundle has none"),
        ('{"type": "bundle", "objects": []}', "id: is required"),
        (
            '{"type": "report", "id": "bundle--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"}',
            'must be "bundle"',
        ),
        (
            '{"type": "bundle", "id": "bundle--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061"} trailing',
            "after the bundle",
        ),
        ('{"type": "bundle", "type": "bundle"}', "appears twice"),
        (
            '{"type": "bundle", "id": "bundle--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061", '
            '"objects": ["not an object"]}',
            "must be a JSON object",
        ),
        ("[]", "a STIX bundle"),
    ],
)
def test_malformed_bundles_are_refused_with_a_clear_error(
    engine: Engine, tmp_path: Path, text: str, words: str
) -> None:
    with pytest.raises(StixError, match=None) as caught:
        _import(engine, _write(tmp_path, text))
    assert words in str(caught.value)
    assert _count(engine) == 0


def test_not_utf8_and_a_size_limit(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"type": "bundle", "id": "\xe9"}')
    with pytest.raises(StixError, match="UTF-8"):
        _import(engine, path)
    big = _write(tmp_path, bundle_of([indicator(i) for i in range(200)]))
    with pytest.raises(StixError, match="larger than 1000 bytes"):
        _import(engine, big, max_bytes=1000)
    assert _count(engine) == 0


def test_an_object_over_the_size_limit_is_refused(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "MAX_OBJECT_CHARS", 10_000)
    monkeypatch.setattr(stream_module, "_CHUNK", 4096)
    huge = indicator(1, description="x" * 50_000)
    with pytest.raises(StixError, match="larger than 10000 characters"):
        _import(engine, _write(tmp_path, bundle_of([huge])))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(min_value=1, max_value=700), st.sampled_from(["", " ", "\n  ", "\t"]))
def test_any_chunking_reads_the_same_objects(chunk: int, ws: str) -> None:
    objects = [indicator(i, labels=["é", "日本"]) for i in range(8)] + [{"type": "x", "n": 12345}]
    text = json.dumps(
        bundle_of(objects), separators=(ws + "," + ws, ws + ":" + ws), ensure_ascii=False
    )
    original = stream_module._CHUNK
    stream_module._CHUNK = chunk
    try:
        read = list(BundleReader(io.BytesIO(ws.encode() + text.encode() + ws.encode())))
    finally:
        stream_module._CHUNK = original
    assert read == objects


def test_memory_holds_one_chunk_not_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemalloc

    import detente.interop.ingest as ingest_module

    monkeypatch.setattr(ingest_module, "BATCH", 500)
    engine = import_engine(f"sqlite:///{tmp_path / 'memory.db'}")

    def peak(n: int) -> int:
        path = _write(tmp_path, bundle_of([indicator(i) for i in range(n)]), f"b{n}.json")
        tracemalloc.start()
        try:
            _import(engine, path)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    try:
        small, large = peak(1000), peak(10_000)
    finally:
        engine.dispose()
    # Ten times the objects: nowhere near ten times the memory (batches are bounded).
    assert large < small * 3, (small, large)
