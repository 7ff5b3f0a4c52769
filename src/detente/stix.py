"""STIX 2.1 bundles in forms, checked with the ``stix2`` library before anything is sent.

A ``notification`` carries ``indicators`` and a ``request`` carries ``evidence``,
each a STIX 2.1 bundle.  :mod:`detente.core.forms` checks only their shape,
because the pure core must not import ``stix2`` (it pulls in ``requests``).
This module checks the content, one object at a time so that an error names
the object: ``indicators.objects[2] (indicator--…).pattern: …``.

Each object goes through ``stix2.parse(obj, allow_custom=False, version="2.1")``,
which checks required properties, property values and vocabularies, references,
the mandated TLP marking definitions and, for ``pattern_type: "stix"``, the
pattern grammar (``stix2-patterns``).  The library is written for producers and
is lenient where a receiver must not be, so around it we also refuse
(STIX 2.1 OASIS Standard, sections named in brackets):

* a missing ``id``, ``spec_version``, ``created``, ``modified`` or ``valid_from``,
  which the library would silently fill in ["Common Properties", "Indicator"];
* an identifier that is not ``<type>--<uuid>`` in RFC 4122 text form; the
  library also takes ``{uuid}``, ``urn:uuid:…`` and unhyphenated forms
  ["Identifier"];
* a top-level timestamp that is not RFC 3339 in UTC with ``Z``; the library
  takes ``2026-1-1T0:0:0Z`` ["Timestamp"];
* object types the library does not know, even when an ``extension-definition``
  declares them: ``stix2.parse`` returns those unchecked;
* custom content, and property names the library would take as its own
  keywords (``custom_properties`` switches ``allow_custom`` back on).
  Properties added by a ``toplevel-property-extension`` are the standard
  extension mechanism and pass ["Customizing STIX"];
* the same ``id`` twice.  STIX lets a bundle carry several versions of one
  object; a hotline message carries one, so no reader wonders which they saw;
* more than :data:`MAX_OBJECTS` objects or :data:`MAX_DEPTH` levels of nesting,
  which bound our time and the library's recursion.

Every failure is a :class:`~detente.core.forms.FormError`; nothing the library
raises on bad input escapes as anything else, and ids, property names and the
library's messages are cut short and have control characters escaped.
``stix2`` takes about 0.2 s to import (it pulls in ``requests``), so it is
imported on first use.

Not here: whether an agreement allows the bundle's TLP (``core.policy``), and
``stix2-validator``'s best-practice advice beyond the specification's MUSTs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from detente.core.forms import FormError

__all__ = ["MAX_DEPTH", "MAX_OBJECTS", "STIX_FIELDS", "validate_bundle", "validate_form_stix"]

MAX_OBJECTS = 10_000
# Bundle -> objects -> object -> extensions -> extension -> ... : real content is
# under ten levels deep; the bound keeps the library's recursive cleaning and
# deep-copying far from Python's recursion limit.
MAX_DEPTH = 32
# Which form field carries a bundle, by message type (core.forms.FORMS).
STIX_FIELDS: Mapping[str, str] = {"notification": "indicators", "request": "evidence"}

_MAX_PROBLEM = 300
_MAX_SHOWN = 100
_ID_RE = re.compile(
    r"(?P<type>[a-z0-9-]+)--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
# STIX 2.1 property names: ASCII letters, digits and underscore, at most 250.
_NAME_RE = re.compile(r"[A-Za-z0-9_]{1,250}")
# Keywords of the library's constructors: passed through **obj they would not be
# properties but switches; custom_properties turns allow_custom back on.
_LIBRARY_KEYWORDS = frozenset({"allow_custom", "interoperability", "custom_properties"})
# Properties the library supplies a default for, where a received object must
# carry its own; spec_version is optional on cyber-observable objects only.
_DEFAULTED_REQUIRED = ("id", "spec_version", "created", "modified", "valid_from")


def validate_form_stix(message_type: str, body: Mapping[str, Any]) -> None:
    """Check the STIX bundle a form carries, if its type carries one and it is present."""
    field = STIX_FIELDS.get(message_type)
    if field is not None and field in body:
        validate_bundle(body[field], field)


def validate_bundle(bundle: Any, field: str) -> None:
    """Raise :class:`FormError` naming ``field`` and the first bad object of ``bundle``."""
    if not isinstance(bundle, Mapping):
        raise FormError(field, "must be a STIX 2.1 bundle (a JSON object)")
    if bundle.get("type") != "bundle":
        raise FormError(f"{field}.type", 'must be "bundle"')
    objects = bundle.get("objects", [])
    if not isinstance(objects, list):
        raise FormError(f"{field}.objects", "must be a list of STIX objects")
    if len(objects) > MAX_OBJECTS:
        raise FormError(f"{field}.objects", f"holds {len(objects)} objects; at most {MAX_OBJECTS}")
    _check_depth(bundle, field)

    # The bundle's own properties, without its objects, which are checked
    # one by one below so that an error can say which.
    _check_object({k: v for k, v in bundle.items() if k != "objects"}, field)
    seen: set[str] = set()
    for i, obj in enumerate(objects):
        where = f"{field}.objects[{i}]"
        if not isinstance(obj, Mapping) or not isinstance(obj.get("type"), str):
            raise FormError(where, "must be a STIX object with a type")
        obj_id = obj.get("id")
        if isinstance(obj_id, str):
            where = f"{where} ({_safe(obj_id, _MAX_SHOWN)})"
            # UUIDs compare case-insensitively (RFC 4122 section 3).
            if obj_id.lower() in seen:
                raise FormError(f"{where}.id", "appears twice in the bundle")
            seen.add(obj_id.lower())
        if obj["type"] == "bundle":
            raise FormError(f"{where}.type", "a bundle cannot contain a bundle")
        _check_object(obj, where)


def _check_depth(value: Any, field: str) -> None:
    # Iterative, so that depth itself cannot exhaust our stack.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            raise FormError(field, f"is nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children)


def _check_object(obj: Mapping[str, Any], where: str) -> None:
    from stix2.base import _Observable  # type: ignore[import-untyped]  # noqa: PLC0415
    from stix2.properties import TimestampProperty  # type: ignore[import-untyped]  # noqa: PLC0415
    from stix2.registry import class_for_type  # type: ignore[import-untyped]  # noqa: PLC0415

    obj_type = _safe(str(obj.get("type")), _MAX_SHOWN)
    obj_id = obj.get("id")
    if "id" not in obj:
        raise FormError(f"{where}.id", "is required")
    match = _ID_RE.fullmatch(obj_id) if isinstance(obj_id, str) else None
    if match is None or match["type"] != obj.get("type"):
        raise FormError(f"{where}.id", f"must be {obj_type}--<UUID in RFC 4122 text form>")
    # stix2.parse would hand back an object of a type it does not know (one an
    # extension-definition declares) as it came, unchecked.
    cls = class_for_type(obj["type"], "2.1", "objects") or class_for_type(
        obj["type"], "2.1", "observables"
    )
    if cls is None:
        raise FormError(f"{where}.type", f"{obj_type!r} is not a STIX 2.1 type this node can check")
    for name, value in obj.items():
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise FormError(f"{where}.{_safe(str(name), _MAX_SHOWN)}", "is not a property name")
        if name in _LIBRARY_KEYWORDS:
            raise FormError(f"{where}.{name}", "is not a STIX 2.1 property of this object")
        if isinstance(cls._properties.get(name), TimestampProperty) and not _is_timestamp(value):
            raise FormError(f"{where}.{name}", "must be a UTC time like 2026-01-31T12:00:00Z")

    parsed = _parse(obj, where)

    # Unreachable while _LIBRARY_KEYWORDS holds custom_properties and nested
    # objects refuse custom content; kept because it is the library's own answer.
    if parsed.has_custom:
        raise FormError(where, "custom properties are not accepted")
    for name in _DEFAULTED_REQUIRED:
        if name in parsed and name not in obj:
            if name == "spec_version" and isinstance(parsed, _Observable):
                continue
            raise FormError(f"{where}.{name}", "is required")
    # The library checks a STIX pattern against the grammar its pattern_version
    # names; we receive 2.1 objects, so their patterns must be 2.1 patterns too.
    if (
        obj["type"] == "indicator"
        and obj.get("pattern_type") == "stix"
        and obj.get("pattern_version", "2.1") != "2.1"
    ):
        _check_pattern_21(obj["pattern"], where)


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str) or not _TIMESTAMP_RE.fullmatch(value):
        return False
    try:
        # Only the ranges (month 13, hour 25); the zone is the Z the pattern matched.
        datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


def _parse(obj: Mapping[str, Any], where: str) -> Any:
    import stix2  # type: ignore[import-untyped]  # noqa: PLC0415

    try:
        return stix2.parse(dict(obj), allow_custom=False, version="2.1")
    except RecursionError as exc:
        # Only the pattern grammar can still recurse this deep: MAX_DEPTH
        # bounds everything else.  Long chains of OR recurse once per term.
        prop = ".pattern" if obj.get("type") == "indicator" else ""
        raise FormError(f"{where}{prop}", "is too complex to check") from exc
    # The library's property cleaners raise ValueError, TypeError, KeyError and
    # its own STIXError subclasses, and surface whatever stix2-patterns raises;
    # this is the boundary where all of them become a FormError.
    except Exception as exc:
        name, problem = _explain(exc)
        raise FormError(f"{where}.{_safe(name, _MAX_SHOWN)}" if name else where, problem) from exc


def _check_pattern_21(pattern: Any, where: str) -> None:
    from stix2patterns.validator import run_validator  # type: ignore[import-untyped]  # noqa: PLC0415

    try:
        errors = run_validator(pattern, stix_version="2.1")
    except RecursionError as exc:
        raise FormError(f"{where}.pattern", "is too complex to check") from exc
    except Exception as exc:  # the library's boundary, as in _parse
        raise FormError(f"{where}.pattern", _one_line(str(exc))) from exc
    if errors:
        raise FormError(f"{where}.pattern", _one_line(str(errors[0])))


def _explain(exc: Exception) -> tuple[str | None, str]:
    """The property an exception from ``stix2`` names, if any, and a readable problem."""
    import stix2.exceptions as e  # type: ignore[import-untyped]  # noqa: PLC0415

    if isinstance(exc, e.InvalidValueError | e.InvalidObjRefError):
        return str(exc.prop_name), _one_line(str(exc.reason))
    if isinstance(exc, e.MissingPropertiesError):
        first, *rest = exc.properties
        also = f" (and {', '.join(rest)})" if rest else ""
        return str(first), _one_line(f"is required{also}")
    if isinstance(exc, e.ExtraPropertiesError):
        first, *rest = exc.properties
        also = f" (and {', '.join(rest)})" if rest else ""
        return str(first), _one_line(f"is not a STIX 2.1 property of this object{also}")
    return None, _one_line(str(exc) or type(exc).__name__)


def _one_line(text: str) -> str:
    return _safe(" ".join(text.split()).removeprefix("FAIL: "), _MAX_PROBLEM)


def _safe(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with control and bidi characters escaped.

    Ids, property names and the library's messages echo what a peer sent; unescaped,
    a newline or U+202E in them could rewrite the error line an officer reads.
    """
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cut)
