"""RFC 8785 canonical JSON against the cyberphone/json-canonicalization vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detente.core.canonical import MAX_DEPTH, canonical, canonical_jcs, parse
from detente.errors import EncodingError, FloatNotAllowedError

VECTORS = Path(__file__).parent.parent / "vectors" / "jcs"
INPUTS = sorted((VECTORS / "input").glob("*.json"))


def test_vector_files_are_present() -> None:
    assert len(INPUTS) >= 6


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_jcs_vector(path: Path) -> None:
    value = json.loads(path.read_text(encoding="utf-8"))
    want = (VECTORS / "output" / path.name).read_bytes()
    assert canonical_jcs(value) == want


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: p.name)
def test_jcs_vector_outhex_agrees(path: Path) -> None:
    hex_text = (VECTORS / "outhex" / path.with_suffix(".txt").name).read_text()
    want = bytes.fromhex("".join(hex_text.split()))
    assert canonical_jcs(json.loads(path.read_text(encoding="utf-8"))) == want


def test_canonical_refuses_a_float() -> None:
    with pytest.raises(FloatNotAllowedError):
        canonical({"severity": 2.5})


def test_canonical_refuses_an_integer_beyond_ijson() -> None:
    with pytest.raises(EncodingError):
        canonical({"n": 2**53})


def test_parse_refuses_floats() -> None:
    with pytest.raises(FloatNotAllowedError):
        parse(b'{"severity": 1.0}')


def test_parse_refuses_duplicate_keys() -> None:
    # Two parsers reading different values from one signed document.
    with pytest.raises(EncodingError, match="duplicate"):
        parse(b'{"to": "US-CISA", "to": "RU-NCCC"}')


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"x": NaN}'])
def test_parse_refuses_nan_and_infinity(text: str) -> None:
    with pytest.raises(EncodingError):
        parse(text)


def test_parse_refuses_deep_nesting() -> None:
    # canonical.py counts the root as depth 0, so MAX_DEPTH + 2 nested arrays
    # is the first refused shape.
    with pytest.raises(EncodingError, match="deeper"):
        parse("[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2))
    with pytest.raises(EncodingError):
        parse("[" * 100_000)


def test_parse_accepts_nesting_at_the_limit() -> None:
    assert parse("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_parse_refuses_invalid_utf8() -> None:
    with pytest.raises(EncodingError):
        parse(b'{"a": "\xff"}')


def test_round_trip_of_integers_and_strings() -> None:
    doc = {"b": [1, -2, 3], "a": "\u20ac", "c": {"z": None, "y": True}}
    assert canonical(parse(canonical(doc))) == canonical(doc)
    assert canonical(doc) == b'{"a":"\xe2\x82\xac","b":[1,-2,3],"c":{"y":true,"z":null}}'
