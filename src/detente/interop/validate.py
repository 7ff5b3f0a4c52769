"""A fast STIX 2.1 object validator for ingest: the specification's MUSTs, per object.

The ``stix2`` library builds a Python object per STIX object and checks it on
the way (about 2,000–3,000 indicators a second here); :mod:`detente.stix`
uses it for the bundles in forms.  Ingest — ``detente indicators import``,
TAXII writes, notifications indexed for the TAXII server — needs to check a
million indicators in a minute, so this module checks the plain JSON
(``dict``) directly, driven by a table of object types:

* common properties (STIX 2.1 OASIS Standard, section 3): ``type``,
  ``spec_version`` (exactly ``"2.1"``; optional on cyber-observables),
  ``id`` (``<type>--<RFC 4122 UUID>``, section 2.9), ``created`` /
  ``modified`` (RFC 3339 UTC timestamps, section 2.13, ``modified`` not
  before ``created``), references of the right object type (section 2.11),
  ``object_marking_refs``, ``granular_markings``, ``external_references``,
  ``kill_chain_phases``, ``confidence`` 0–100, ``extensions``;
* the required properties and the co-constraints of each SDO, SRO,
  marking definition and cyber-observable of sections 4–7 (a malware family
  has a name; ``valid_until`` after ``valid_from``; a sighting's count in
  0–999,999,999; a location has a region, a country or coordinates …);
* an indicator's ``pattern`` with :mod:`detente.interop.pattern` when its
  ``pattern_type`` is ``stix`` (other pattern languages are not checked);
* property names (ASCII letters, digits and ``_``, 3–250 characters) and
  type names of objects this module does not know (custom objects pass with
  their common properties checked, so an OpenCTI export with ``x_opencti_*``
  properties imports as it is).

Every failure is a :class:`StixError` naming the object (its position and id)
and the property.  Values are echoed cut short with control characters
escaped.  Not here: vocabularies (open vocabularies are advisory), and
whether an agreement allows an object's TLP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from detente.errors import EncodingError
from detente.interop.pattern import PatternError, check_pattern

__all__ = ["MAX_DEPTH", "StixError", "check_object", "ts_key"]

MAX_DEPTH = 32

_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
_ID_RE = re.compile(rf"([a-z][a-z0-9-]*[a-z0-9])--{_UUID}")
_TYPE_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_PROP_RE = re.compile(r"[A-Za-z0-9_]{3,250}")
_TS_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.\d+)?Z")
_ALLOWED_SPEC = "2.1"


class StixError(EncodingError):
    """A STIX object that does not meet the specification; names object and property."""

    def __init__(self, where: str, prop: str | None, problem: str) -> None:
        self.where, self.prop, self.problem = where, prop, problem
        super().__init__(f"{where}{'.' + prop if prop else ''}: {problem}")


class _Bad(Exception):  # noqa: N818 - internal, always re-raised as StixError
    """A property's value is wrong (``prop`` overrides the property named)."""

    def __init__(self, problem: str, prop: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.prop = problem, prop


def safe(text: str, limit: int = 100) -> str:
    """``text`` cut to ``limit`` characters with control and bidi characters escaped."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cut)


# -- value checkers: (value) -> None, raising _Bad ----------------------------------

Check = Callable[[Any], None]

# Timestamps repeat a lot in real bundles (created, modified, valid_from of a
# batch); a bounded set of ones already checked makes the repeats free.
_TS_SEEN: set[str] = set()


def _ts(value: Any) -> None:
    if type(value) is str and value in _TS_SEEN:
        return
    m = _TS_RE.fullmatch(value) if type(value) is str else None
    if m is None:
        raise _Bad("must be an RFC 3339 UTC timestamp like 2026-01-31T12:00:00.000Z")
    try:
        datetime(int(m[1]), int(m[2]), int(m[3]))  # day of month, leap years
    except ValueError:
        raise _Bad(f"{safe(value)} is not a real date") from None
    if len(_TS_SEEN) > 4096:
        _TS_SEEN.clear()
    _TS_SEEN.add(value)


def _ts_ms(value: Any) -> None:
    # created and modified "MUST be precise to the nearest millisecond" (section 3.2):
    # at least three digits of fraction, as stix2-validator reads it.
    _ts(value)
    if len(value) < 24 or value[19] != ".":
        raise _Bad("must be precise to the millisecond: YYYY-MM-DDTHH:MM:SS.sssZ")


def ts_key(value: str) -> str:
    """A string that sorts like the instant ``value`` names (fraction padded)."""
    fraction = value[20:-1] if value[19:20] == "." else ""
    return value[:19] + fraction.ljust(9, "0")


def _string(value: Any) -> None:
    if type(value) is not str:
        raise _Bad("must be a string")


def _bool(value: Any) -> None:
    if type(value) is not bool:
        raise _Bad("must be true or false")


def _int_range(low: int, high: int) -> Check:
    def check(value: Any) -> None:
        if type(value) is not int or not low <= value <= high:
            raise _Bad(f"must be an integer from {low} to {high}")

    return check


def _number_range(low: float, high: float) -> Check:
    def check(value: Any) -> None:
        if type(value) not in (int, float) or not low <= value <= high:
            raise _Bad(f"must be a number from {low} to {high}")

    return check


def _strings(value: Any) -> None:
    if type(value) is not list or not value:
        raise _Bad("must be a non-empty list of strings")
    for item in value:
        if type(item) is not str:
            raise _Bad("must be a non-empty list of strings")


def _dict(value: Any) -> None:
    if type(value) is not dict:
        raise _Bad("must be an object")
    if _too_deep(value):
        raise _Bad(f"is nested more than {MAX_DEPTH} levels deep")


def _check_id(value: Any, types: frozenset[str] | None) -> None:
    m = _ID_RE.fullmatch(value) if type(value) is str else None
    if m is None:
        raise _Bad("must be an identifier <type>--<RFC 4122 UUID>")
    if types is not None and m[1] not in types:
        shown = " or ".join(sorted(types)) if len(types) < 4 else "the right type"
        raise _Bad(f"must refer to {shown}, not {m[1]}")


def _ref(*types: str) -> Check:
    allowed = frozenset(types) if types else None

    def check(value: Any) -> None:
        _check_id(value, allowed)

    return check


def _refs(*types: str) -> Check:
    allowed = frozenset(types) if types else None

    def check(value: Any) -> None:
        if type(value) is not list or not value:
            raise _Bad("must be a non-empty list of identifiers")
        for item in value:
            _check_id(item, allowed)

    return check


def _kill_chain(value: Any) -> None:
    if type(value) is not list or not value:
        raise _Bad("must be a non-empty list of kill chain phases")
    for phase in value:
        if (
            type(phase) is not dict
            or type(phase.get("kill_chain_name")) is not str
            or type(phase.get("phase_name")) is not str
        ):
            raise _Bad("each phase must have kill_chain_name and phase_name strings")


def _hashes(value: Any) -> None:
    if type(value) is not dict or not value:
        raise _Bad("must be a non-empty object of hash algorithm to value")
    for name, digest in value.items():
        if type(digest) is not str or not 3 <= len(name) <= 250:
            raise _Bad("each hash must be a string under a name of 3 to 250 characters")


def _external_references(value: Any) -> None:
    if type(value) is not list or not value:
        raise _Bad("must be a non-empty list of external references")
    for ref in value:
        if type(ref) is not dict or type(ref.get("source_name")) is not str:
            raise _Bad("each external reference must have a source_name string")
        for key in ("description", "url", "external_id"):
            if key in ref and type(ref[key]) is not str:
                raise _Bad(f"an external reference's {key} must be a string")
        if "hashes" in ref:
            _hashes(ref["hashes"])


def _granular_markings(value: Any) -> None:
    if type(value) is not list or not value:
        raise _Bad("must be a non-empty list of granular markings")
    for marking in value:
        if type(marking) is not dict:
            raise _Bad("each granular marking must be an object")
        if ("lang" in marking) == ("marking_ref" in marking):
            raise _Bad("each granular marking must have exactly one of lang and marking_ref")
        if "marking_ref" in marking:
            _check_id(marking["marking_ref"], _MARKING)
        elif type(marking["lang"]) is not str:
            raise _Bad("a granular marking's lang must be a string")
        selectors = marking.get("selectors")
        if type(selectors) is not list or not selectors:
            raise _Bad("each granular marking must have a non-empty list of selectors")
        for selector in selectors:
            if type(selector) is not str:
                raise _Bad("selectors must be strings")


def _extensions(value: Any) -> None:
    if type(value) is not dict or not value:
        raise _Bad("must be a non-empty object of extensions")
    if _too_deep(value):
        raise _Bad(f"is nested more than {MAX_DEPTH} levels deep")
    for name, ext in value.items():
        if type(ext) is not dict:
            raise _Bad(f"extension {safe(name)} must be an object")
        if name.startswith("extension-definition--"):
            _check_id(name, None)
        elif not _TYPE_RE.fullmatch(name) or not name.endswith("-ext"):
            raise _Bad(f"{safe(name)} is neither an extension-definition id nor a predefined -ext")


_MARKING = frozenset({"marking-definition"})
_IDENTITY = ("identity",)

# -- the types (sections 4-7) ------------------------------------------------------------

SDO, SRO, META, SCO = "sdo", "sro", "meta", "sco"

_COMMON: dict[str, Check] = {
    "spec_version": _string,
    "created_by_ref": _ref(*_IDENTITY),
    "created": _ts_ms,
    "modified": _ts_ms,
    "revoked": _bool,
    "labels": _strings,
    "confidence": _int_range(0, 100),
    "lang": _string,
    "external_references": _external_references,
    "object_marking_refs": _refs("marking-definition"),
    "granular_markings": _granular_markings,
    "extensions": _extensions,
}
_SCO_COMMON: dict[str, Check] = {
    "spec_version": _string,
    "object_marking_refs": _refs("marking-definition"),
    "granular_markings": _granular_markings,
    "defanged": _bool,
    "extensions": _extensions,
}


class TypeSpec:
    __slots__ = ("kind", "props", "required", "rule")

    def __init__(
        self,
        kind: str,
        required: tuple[str, ...],
        props: Mapping[str, Check],
        rule: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        base = _SCO_COMMON if kind == SCO else _COMMON
        self.kind = kind
        common_required: tuple[str, ...] = (
            ("type", "id") if kind == SCO else ("type", "spec_version", "id")
        )
        if kind in (SDO, SRO):
            common_required += ("created", "modified")
        self.required = common_required + required
        self.props = {**base, **props}
        self.rule = rule


def _ordered(first: str, last: str, strict: bool = False) -> Callable[[dict[str, Any]], None]:
    def rule(obj: dict[str, Any]) -> None:
        if first in obj and last in obj:
            a, b = ts_key(obj[first]), ts_key(obj[last])
            if b < a or (strict and b == a):
                raise _Bad(f"must be {'after' if strict else 'at or after'} {first}", last)

    return rule


def _all(*rules: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def rule(obj: dict[str, Any]) -> None:
        for r in rules:
            r(obj)

    return rule


def _indicator(obj: dict[str, Any]) -> None:
    if "valid_until" in obj and ts_key(obj["valid_until"]) <= ts_key(obj["valid_from"]):
        raise _Bad("must be after valid_from", "valid_until")
    if obj["pattern_type"] == "stix":
        version = obj.get("pattern_version", "2.1")
        if version not in ("2.1", "2.0"):
            raise _Bad("a STIX pattern must be version 2.1 (or 2.0)", "pattern_version")
        try:
            check_pattern(obj["pattern"], version=version)
        except PatternError as exc:
            raise _Bad(str(exc), "pattern") from None


def _malware(obj: dict[str, Any]) -> None:
    if obj["is_family"] and "name" not in obj:
        raise _Bad("is required when is_family is true", "name")


def _location(obj: dict[str, Any]) -> None:
    has_lat, has_long = "latitude" in obj, "longitude" in obj
    if has_lat != has_long:
        raise _Bad("latitude and longitude must be given together", "latitude")
    if "precision" in obj and not has_lat:
        raise _Bad("needs latitude and longitude", "precision")
    if not (has_lat or "region" in obj or "country" in obj):
        raise _Bad("one of region, country, or latitude and longitude is required", "region")


def _malware_analysis(obj: dict[str, Any]) -> None:
    if "result" not in obj and "analysis_sco_refs" not in obj:
        raise _Bad("one of result or analysis_sco_refs is required", "result")


def _observed_data(obj: dict[str, Any]) -> None:
    if ("objects" in obj) == ("object_refs" in obj):
        raise _Bad("exactly one of objects and object_refs is required", "object_refs")


def _marking(obj: dict[str, Any]) -> None:
    if "definition_type" in obj or "definition" in obj or "extensions" not in obj:
        for name in ("definition_type", "definition"):
            if name not in obj:
                raise _Bad("is required (without extensions, or with the other)", name)
        kind, definition = obj["definition_type"], obj["definition"]
        if kind == "tlp" and definition.get("tlp") not in ("white", "green", "amber", "red"):
            raise _Bad("tlp must be white, green, amber or red", "definition")
        if kind == "statement" and type(definition.get("statement")) is not str:
            raise _Bad("a statement marking needs a statement string", "definition")


def _opinion(obj: dict[str, Any]) -> None:
    if obj["opinion"] not in (
        "strongly-disagree",
        "disagree",
        "neutral",
        "agree",
        "strongly-agree",
    ):
        raise _Bad("is not a value of opinion-enum", "opinion")


def _at_least_one(*names: str) -> Callable[[dict[str, Any]], None]:
    def rule(obj: dict[str, Any]) -> None:
        if not any(n in obj for n in names):
            raise _Bad(f"one of {', '.join(names)} is required", names[0])

    return rule


def _artifact(obj: dict[str, Any]) -> None:
    if ("payload_bin" in obj) == ("url" in obj):
        raise _Bad("exactly one of payload_bin and url is required", "payload_bin")
    if "url" in obj and "hashes" not in obj:
        raise _Bad("is required with url", "hashes")


def _beyond_type_and_id(obj: dict[str, Any]) -> None:
    if len(set(obj) - {"type", "id", "spec_version"}) == 0:
        raise _Bad("must have at least one property besides type and id")


_SIGHTING_OF = (
    "attack-pattern",
    "campaign",
    "course-of-action",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "location",
    "malware",
    "malware-analysis",
    "note",
    "observed-data",
    "opinion",
    "report",
    "threat-actor",
    "tool",
    "vulnerability",
)
_any_ref = _ref()
_ts_first_last = _ordered("first_seen", "last_seen")
_name = {"name": _string, "description": _string}

SPECS: dict[str, TypeSpec] = {
    "attack-pattern": TypeSpec(
        SDO, ("name",), {**_name, "aliases": _strings, "kill_chain_phases": _kill_chain}
    ),
    "campaign": TypeSpec(
        SDO,
        ("name",),
        {**_name, "aliases": _strings, "first_seen": _ts, "last_seen": _ts, "objective": _string},
        _ts_first_last,
    ),
    "course-of-action": TypeSpec(SDO, ("name",), _name),
    "grouping": TypeSpec(
        SDO, ("context", "object_refs"), {**_name, "context": _string, "object_refs": _refs()}
    ),
    "identity": TypeSpec(
        SDO,
        ("name",),
        {**_name, "roles": _strings, "identity_class": _string, "sectors": _strings},
    ),
    "incident": TypeSpec(SDO, ("name",), {**_name, "kill_chain_phases": _kill_chain}),
    "indicator": TypeSpec(
        SDO,
        ("pattern", "pattern_type", "valid_from"),
        {
            **_name,
            "indicator_types": _strings,
            "pattern": _string,
            "pattern_type": _string,
            "pattern_version": _string,
            "valid_from": _ts,
            "valid_until": _ts,
            "kill_chain_phases": _kill_chain,
        },
        _indicator,
    ),
    "infrastructure": TypeSpec(
        SDO,
        ("name",),
        {
            **_name,
            "infrastructure_types": _strings,
            "aliases": _strings,
            "kill_chain_phases": _kill_chain,
            "first_seen": _ts,
            "last_seen": _ts,
        },
        _ts_first_last,
    ),
    "intrusion-set": TypeSpec(
        SDO,
        ("name",),
        {**_name, "aliases": _strings, "goals": _strings, "first_seen": _ts, "last_seen": _ts},
        _ts_first_last,
    ),
    "location": TypeSpec(
        SDO,
        (),
        {
            **_name,
            "latitude": _number_range(-90, 90),
            "longitude": _number_range(-180, 180),
            "precision": _number_range(0, float("inf")),
            "region": _string,
            "country": _string,
        },
        _location,
    ),
    "malware": TypeSpec(
        SDO,
        ("is_family",),
        {
            **_name,
            "is_family": _bool,
            "malware_types": _strings,
            "aliases": _strings,
            "kill_chain_phases": _kill_chain,
            "first_seen": _ts,
            "last_seen": _ts,
            "operating_system_refs": _refs("software"),
            "sample_refs": _refs("file", "artifact"),
        },
        _all(_malware, _ts_first_last),
    ),
    "malware-analysis": TypeSpec(
        SDO,
        ("product",),
        {
            "product": _string,
            "result": _string,
            "analysis_sco_refs": _refs(),
            "sample_ref": _ref(),
            "submitted": _ts,
            "analysis_started": _ts,
            "analysis_ended": _ts,
        },
        _malware_analysis,
    ),
    "note": TypeSpec(SDO, ("content", "object_refs"), {"content": _string, "object_refs": _refs()}),
    "observed-data": TypeSpec(
        SDO,
        ("first_observed", "last_observed", "number_observed"),
        {
            "first_observed": _ts,
            "last_observed": _ts,
            "number_observed": _int_range(1, 999_999_999),
            "object_refs": _refs(),
            "objects": _dict,
        },
        _all(_observed_data, _ordered("first_observed", "last_observed")),
    ),
    "opinion": TypeSpec(
        SDO,
        ("opinion", "object_refs"),
        {"opinion": _string, "object_refs": _refs(), "explanation": _string},
        _opinion,
    ),
    "report": TypeSpec(
        SDO,
        ("name", "published", "object_refs"),
        {**_name, "published": _ts, "object_refs": _refs(), "report_types": _strings},
    ),
    "threat-actor": TypeSpec(
        SDO,
        ("name",),
        {**_name, "aliases": _strings, "first_seen": _ts, "last_seen": _ts},
        _ts_first_last,
    ),
    "tool": TypeSpec(SDO, ("name",), {**_name, "kill_chain_phases": _kill_chain}),
    "vulnerability": TypeSpec(SDO, ("name",), _name),
    "relationship": TypeSpec(
        SRO,
        ("relationship_type", "source_ref", "target_ref"),
        {
            "relationship_type": _string,
            "description": _string,
            "source_ref": _any_ref,
            "target_ref": _any_ref,
            "start_time": _ts,
            "stop_time": _ts,
        },
        _ordered("start_time", "stop_time", strict=True),
    ),
    "sighting": TypeSpec(
        SRO,
        ("sighting_of_ref",),
        {
            "description": _string,
            "first_seen": _ts,
            "last_seen": _ts,
            "count": _int_range(0, 999_999_999),
            "sighting_of_ref": _ref(*_SIGHTING_OF),
            "observed_data_refs": _refs("observed-data"),
            "where_sighted_refs": _refs("identity", "location"),
            "summary": _bool,
        },
        _ts_first_last,
    ),
    "marking-definition": TypeSpec(
        META,
        ("created",),
        {"name": _string, "definition_type": _string, "definition": _dict},
        _marking,
    ),
    "extension-definition": TypeSpec(
        META,
        ("created", "modified", "created_by_ref", "name", "schema", "version", "extension_types"),
        {**_name, "schema": _string, "version": _string, "extension_types": _strings},
    ),
    "language-content": TypeSpec(
        META,
        ("created", "modified", "object_ref", "contents"),
        {"object_ref": _any_ref, "object_modified": _ts, "contents": _dict},
    ),
    # Cyber-observable objects (section 6).
    "artifact": TypeSpec(
        SCO,
        (),
        {"mime_type": _string, "payload_bin": _string, "url": _string, "hashes": _hashes},
        _artifact,
    ),
    "autonomous-system": TypeSpec(
        SCO, ("number",), {"number": _int_range(0, 2**32 - 1), "name": _string}
    ),
    "directory": TypeSpec(SCO, ("path",), {"path": _string}),
    "domain-name": TypeSpec(SCO, ("value",), {"value": _string, "resolves_to_refs": _refs()}),
    "email-addr": TypeSpec(SCO, ("value",), {"value": _string, "display_name": _string}),
    "email-message": TypeSpec(SCO, ("is_multipart",), {"is_multipart": _bool, "date": _ts}),
    "file": TypeSpec(
        SCO,
        (),
        {"hashes": _hashes, "name": _string, "size": _int_range(0, 2**63 - 1)},
        _at_least_one("hashes", "name"),
    ),
    "ipv4-addr": TypeSpec(SCO, ("value",), {"value": _string, "resolves_to_refs": _refs()}),
    "ipv6-addr": TypeSpec(SCO, ("value",), {"value": _string, "resolves_to_refs": _refs()}),
    "mac-addr": TypeSpec(SCO, ("value",), {"value": _string}),
    "mutex": TypeSpec(SCO, ("name",), {"name": _string}),
    "network-traffic": TypeSpec(
        SCO,
        ("protocols",),
        {"protocols": _strings, "start": _ts, "end": _ts, "src_ref": _any_ref, "dst_ref": _any_ref},
        _at_least_one("src_ref", "dst_ref"),
    ),
    "process": TypeSpec(SCO, (), {"pid": _int_range(0, 2**63 - 1)}, _beyond_type_and_id),
    "software": TypeSpec(SCO, ("name",), {"name": _string}),
    "url": TypeSpec(SCO, ("value",), {"value": _string}),
    "user-account": TypeSpec(SCO, (), {}, _beyond_type_and_id),
    "windows-registry-key": TypeSpec(SCO, (), {"key": _string}, _beyond_type_and_id),
    "x509-certificate": TypeSpec(SCO, (), {"hashes": _hashes}, _beyond_type_and_id),
}
_CUSTOM = TypeSpec(SCO, (), {})  # an unknown type: only what every object has
_KNOWN_NAMES = frozenset(
    name for spec in SPECS.values() for name in (*spec.props, *spec.required)
) | {"type", "id"}


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if type(item) is dict:
            stack.extend((v, depth + 1) for v in item.values() if type(v) in (dict, list))
        else:
            stack.extend((v, depth + 1) for v in item if type(v) in (dict, list))
    return False


def check_object(obj: Any, where: str = "object") -> TypeSpec:
    """Raise :class:`StixError` unless ``obj`` is a valid STIX 2.1 object; its type's spec.

    ``where`` names the object in errors (``objects[3]``); its id is added.
    """
    if type(obj) is not dict:
        raise StixError(where, None, "must be a STIX object (a JSON object)")
    try:
        return _check(obj)
    except StixError as exc:
        obj_id = obj.get("id")
        named = f"{where} ({safe(obj_id)})" if type(obj_id) is str else where
        raise StixError(named, exc.prop, exc.problem) from None


def _check(obj: dict[str, Any]) -> TypeSpec:
    where = ""
    obj_type = obj.get("type")
    obj_id = obj.get("id")
    spec = SPECS.get(obj_type)  # type: ignore[arg-type]
    if spec is None:
        if type(obj_type) is not str:
            raise StixError(where, "type", "is required: a STIX object type")
        if obj_type == "bundle":
            raise StixError(where, "type", "a bundle cannot contain a bundle")
        if not (3 <= len(obj_type) <= 250 and _TYPE_RE.fullmatch(obj_type)):
            raise StixError(where, "type", "is not a STIX type name (a-z, 0-9, hyphen; 3-250)")
        spec = _CUSTOM
    for required in spec.required:
        if required not in obj:
            raise StixError(where, required, "is required")
    m = _ID_RE.fullmatch(obj_id) if type(obj_id) is str else None
    if m is None or m[1] != obj_type:
        raise StixError(where, "id", f"must be {safe(str(obj_type))}--<RFC 4122 UUID>")
    if "spec_version" in obj and obj["spec_version"] != _ALLOWED_SPEC:
        raise StixError(
            where,
            "spec_version",
            f"must be {_ALLOWED_SPEC!r}, not {safe(repr(obj['spec_version']))}",
        )
    props = spec.props
    name: Any = None
    try:
        for name, value in obj.items():
            check = props.get(name)
            if check is not None:
                check(value)
            elif name not in _KNOWN_NAMES:
                if type(name) is not str or not _PROP_RE.fullmatch(name):
                    raise _Bad("is not a STIX property name (A-Z, a-z, 0-9, _; 3-250)")
                if type(value) in (dict, list) and _too_deep(value):
                    raise _Bad(f"is nested more than {MAX_DEPTH} levels deep")
        name = None
        if (
            "modified" in obj
            and "created" in obj
            and ts_key(obj["modified"]) < ts_key(obj["created"])
        ):
            raise _Bad("must not be before created", "modified")
        if spec.rule is not None:
            spec.rule(obj)
    except _Bad as exc:
        prop = exc.prop or name
        raise StixError(where, safe(prop) if prop else None, exc.problem) from None
    return spec
