"""Canonical JSON (RFC 8785, JCS) and the domain-separated signing input.

Every Détente signature covers ``b"detente/v1/" + domain + b"\\x00"`` followed
by the RFC 8785 canonical bytes of the object.  The NUL byte can never occur in
a C2SP signed note (whose text excludes control characters), so a message
signature can never be replayed as a note signature made with the same key,
and the per-type domain keeps an envelope signature from passing as a receipt.

Floats are refused on the wire (STYLE.md rule 3): all numbers are integers
within the I-JSON safe range; times are RFC 3339 strings.  Parsing is strict:
duplicate keys, NaN/Infinity, floats and deep nesting are errors.

This module does not decide *what* is signed; the wire objects do.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import rfc8785

from detente.errors import EncodingError, FloatNotAllowedError

__all__ = [
    "MAX_DEPTH",
    "b64d",
    "b64e",
    "canonical",
    "parse",
    "signing_input",
]

SIGNING_PREFIX = b"detente/v1/"
MAX_DEPTH = 32
_MAX_SAFE_INT = 2**53 - 1
# One encoder, built once: json.dumps would build a new one per call.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _check(value: Any, depth: int = 0) -> bool:
    """Refuse what the wire forbids; return True when every object key is ASCII.

    This walk runs on every seal and open, so it is written for speed: exact
    type tests first, and the JSON path of a bad value is built only when an
    error propagates (each container level prefixes its key on the way out).
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            raise EncodingError("integer out of the I-JSON range at $")
        return True
    if depth >= MAX_DEPTH:
        raise EncodingError(f"JSON nested deeper than {MAX_DEPTH} levels at $")
    if kind is dict or isinstance(value, Mapping):
        ascii_keys = True
        for key, item in value.items():
            if type(key) is not str:
                raise EncodingError("non-string object key at $")
            if not key.isascii():
                ascii_keys = False
            item_kind = type(item)
            if item_kind is str or item_kind is bool or item is None:
                continue  # the common case, without a call
            try:
                if not _check(item, depth + 1):
                    ascii_keys = False
            except EncodingError as exc:
                raise type(exc)(str(exc).replace(" at $", f" at $.{key}", 1)) from None
        return ascii_keys
    if kind is list or kind is tuple:
        ascii_keys = True
        for i, item in enumerate(value):
            item_kind = type(item)
            if item_kind is str or item_kind is bool or item is None:
                continue
            try:
                if not _check(item, depth + 1):
                    ascii_keys = False
            except EncodingError as exc:
                raise type(exc)(str(exc).replace(" at $", f" at $[{i}]", 1)) from None
        return ascii_keys
    if kind is float or isinstance(value, float):
        raise FloatNotAllowedError("float not allowed on the wire at $")
    if isinstance(value, int):  # int subclasses other than bool
        return _check(int(value), depth)
    raise EncodingError(f"{kind.__name__} cannot be encoded as JSON at $")


def canonical(value: Any) -> bytes:
    """Return the RFC 8785 canonical bytes of ``value`` (floats refused).

    Without floats, RFC 8785 output is what ``json.dumps`` writes with sorted
    keys, no whitespace and no ASCII escaping: JCS escapes exactly the
    characters ``"``, ``\\`` and U+0000..U+001F, with the same short forms and
    lowercase ``\\u00xx`` (RFC 8785 §3.2.2.2, ECMA-262 JSON.stringify), and
    integers print the same.  The one difference is key order, which JCS takes
    over UTF-16 code units (§3.2.3) and Python over code points; they agree
    whenever every key is ASCII.  So that case takes the C encoder (3x faster
    than the pure-Python ``rfc8785`` on a sealed envelope, which matters on the
    seal/open hot path) and everything else goes to ``rfc8785``.  A hypothesis
    test in ``tests/core/test_canonical.py`` checks the two agree.
    """
    if _check(value):
        try:
            return _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogate: not valid I-JSON
            raise EncodingError("string is not valid Unicode (lone surrogate)") from exc
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise EncodingError(f"cannot canonicalise: {exc}") from exc


def canonical_jcs(value: Any) -> bytes:
    """RFC 8785 bytes allowing floats: only for checking the external JCS vectors."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise EncodingError(f"cannot canonicalise: {exc}") from exc


def signing_input(domain: str, value: Any) -> bytes:
    """The bytes a signature of type ``domain`` covers: prefix, NUL, canonical JSON."""
    if not domain or not domain.isascii() or "\x00" in domain:
        raise ValueError("signing domain must be non-empty ASCII without NUL")
    return SIGNING_PREFIX + domain.encode("ascii") + b"\x00" + canonical(value)


def _no_float(text: str) -> Any:
    raise FloatNotAllowedError(f"float not allowed on the wire: {text}")


def _no_constant(text: str) -> Any:
    raise EncodingError(f"{text} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EncodingError(f"duplicate key {key!r} in JSON object")
        out[key] = value
    return out


def parse(data: bytes | str) -> Any:
    """Parse untrusted JSON strictly (no floats, duplicates, constants, deep nesting)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EncodingError("JSON is not valid UTF-8") from exc
    else:
        text = data
    try:
        value = json.loads(
            text,
            parse_float=_no_float,
            parse_constant=_no_constant,
            object_pairs_hook=_no_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise EncodingError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} col {exc.colno}"
        ) from exc
    except RecursionError as exc:
        # The C scanner guards its recursion; deep nesting is an attack, not data.
        raise EncodingError(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    _check(value)
    return value


def b64e(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 §4), as C2SP notes use."""
    return base64.b64encode(data).decode("ascii")


def b64d(text: str, *, field: str = "value") -> bytes:
    """Strict standard base64 decoding; the error names the field."""
    if not isinstance(text, str):
        raise EncodingError(f"{field} must be a base64 string")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncodingError(f"{field} is not valid base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise EncodingError(f"{field} is not canonical base64")
    return data
