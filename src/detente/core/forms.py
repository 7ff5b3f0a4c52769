"""Forms: the structured, language-neutral bodies of Détente messages.

Every field that decides something is a code (an enum value, a time, a
reference), so a Russian reader and an English reader see the same fact, each
rendered in their language; free text travels as ``{"lang": tag, "text": …}``
in its original language and a translation must say so
(``"translated_from": tag``) — nothing is silently translated.

Codes follow public standards where they exist: severity is the US National
Cyber Incident Scoring System's 0–5 (Baseline … Emergency), TLP is FIRST TLP
2.0, PAP is the FIRST/MISP Permissible Actions Protocol, handling codes are
Europol's H0–H3, source reliability and information accuracy the 4x4 (A, B,
C, X / 1–4) grading.

:func:`validate` checks a body against its message type and raises
:class:`FormError` naming the first bad field by its JSON path
(``requested_actions[1]``).  :func:`personal_data_findings` is the
detector that warns, before sending, of e-mail addresses, telephone numbers
and national-id-like numbers in free text.

Not here: STIX 2.1 bundle validation (it needs the ``stix2`` library, which
does network I/O in other parts; the node checks bundles), and rendering in a
reader's language (the catalogues).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from detente.core.ids import check_uuid7
from detente.core.timefmt import parse_time
from detente.errors import EncodingError

__all__ = [
    "CATEGORIES",
    "HANDLING_CODES",
    "PAP_LABELS",
    "REQUEST_KINDS",
    "RESPONSE_STATUSES",
    "SEVERITIES",
    "FormError",
    "PersonalDataFinding",
    "personal_data_findings",
    "validate",
]

CATEGORIES = (
    "ransomware",
    "ddos",
    "intrusion-critical-infrastructure",
    "intrusion-government",
    "malware-hosting",
    "phishing",
    "botnet-c2",
    "data-breach",
    "terrorist-use-of-internet",
    "spyware-against-citizens",
    "vulnerability",
    "other",
)
# NCISS levels 0-5.
SEVERITIES = ("baseline", "low", "medium", "high", "severe", "emergency")
PAP_LABELS = ("CLEAR", "GREEN", "AMBER", "RED")
HANDLING_CODES = ("H0", "H1", "H2", "H3")
RELIABILITY = ("A", "B", "C", "X")
ACCURACY = (1, 2, 3, 4)
REQUEST_KINDS = (
    "information",
    "preservation",
    "mitigation",
    "takedown",
    "investigation",
    "subscriber-information",
    "preservation-extension",
)
URGENCIES = ("normal", "urgent", "emergency")
RESPONSE_STATUSES = (
    "acknowledged",
    "need-more-information",
    "in-progress",
    "action-taken",
    "declined",
    "completed",
)
LEVELS = ("technical", "senior", "hotline")
CONCERNS = (
    "infrastructure-in-your-jurisdiction",
    "actor-in-your-jurisdiction",
    "victims-in-your-jurisdiction",
    "traffic-through-your-networks",
    "other",
)
_LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_TEXT = 20_000


class FormError(EncodingError):
    """A form field is missing, of the wrong type, or not an allowed value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


# -- field checkers: (value, path) -> None, raising FormError ------------------------

Check = Callable[[Any, str], None]


def _enum(allowed: tuple[Any, ...]) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or value not in allowed:
            shown = ", ".join(str(a) for a in allowed)
            raise FormError(path, f"{value!r} is not one of {shown}")

    return check


def _int_range(low: int, high: int) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise FormError(path, f"must be an integer from {low} to {high}")

    return check


def _time(value: Any, path: str) -> None:
    try:
        parse_time(value, field=path)
    except EncodingError as exc:
        raise FormError(path, "must be a time like 2026-01-31T12:00:00.000Z") from exc


def _message_id(value: Any, path: str) -> None:
    try:
        check_uuid7(value, field=path)
    except EncodingError as exc:
        raise FormError(path, "must be a message id (UUIDv7)") from exc


def _short(value: Any, path: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise FormError(path, "must be a non-empty string of at most 200 characters")


def _text(value: Any, path: str) -> None:
    """Free text in its original language: {lang, text[, translated_from]}."""
    if not isinstance(value, Mapping):
        raise FormError(path, 'must be {"lang": "<BCP 47 tag>", "text": "..."}')
    extra = set(value) - {"lang", "text", "translated_from"}
    if extra:
        raise FormError(f"{path}.{sorted(extra)[0]}", "unknown field")
    lang = value.get("lang")
    if not isinstance(lang, str) or not _LANG_RE.match(lang):
        raise FormError(f"{path}.lang", "must be a BCP 47 language tag like en, ru, zh-Hans")
    text = value.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FormError(f"{path}.text", "must be non-empty text")
    if len(text) > MAX_TEXT:
        raise FormError(f"{path}.text", f"is longer than {MAX_TEXT} characters")
    source = value.get("translated_from")
    if source is not None and (not isinstance(source, str) or not _LANG_RE.match(source)):
        raise FormError(f"{path}.translated_from", "must be the original's language tag")


def _list_of(item: Check, *, min_items: int = 0, max_items: int = 1000) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise FormError(path, "must be a list")
        if not min_items <= len(value) <= max_items:
            raise FormError(path, f"must hold {min_items} to {max_items} items")
        for i, element in enumerate(value):
            item(element, f"{path}[{i}]")

    check.item = item  # type: ignore[attr-defined]  # what the list holds (_free_text reads it)
    return check


def _object(value: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        raise FormError(path, "must be an object")


def _bool(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise FormError(path, "must be true or false")


def _stix_bundle_shape(value: Any, path: str) -> None:
    # The shape only; the node validates the bundle with the stix2 library.
    if not isinstance(value, Mapping) or value.get("type") != "bundle":
        raise FormError(path, 'must be a STIX 2.1 bundle ({"type": "bundle", ...})')
    bundle_id = value.get("id")
    if not isinstance(bundle_id, str) or not bundle_id.startswith("bundle--"):
        raise FormError(f"{path}.id", "must be a STIX bundle id (bundle--<uuid>)")
    objects = value.get("objects", [])
    if not isinstance(objects, list):
        raise FormError(f"{path}.objects", "must be a list of STIX objects")
    for i, obj in enumerate(objects):
        if not isinstance(obj, Mapping) or not isinstance(obj.get("type"), str):
            raise FormError(f"{path}.objects[{i}]", "must be a STIX object with a type")


@dataclass(frozen=True)
class _Field:
    check: Check
    required: bool = True


_HANDLING = {
    "pap": _Field(_enum(PAP_LABELS), required=False),
    "handling": _Field(_list_of(_enum(HANDLING_CODES), max_items=4), required=False),
    "source_reliability": _Field(_enum(RELIABILITY), required=False),
    "information_accuracy": _Field(_enum(ACCURACY), required=False),
}

FORMS: dict[str, dict[str, _Field]] = {
    "notification": {
        "category": _Field(_enum(CATEGORIES)),
        "severity": _Field(_int_range(0, 5)),
        "observed": _Field(_time),
        "activity": _Field(_text),
        "concern": _Field(_enum(CONCERNS)),
        "indicators": _Field(_stix_bundle_shape, required=False),
        "requested_actions": _Field(_list_of(_enum(REQUEST_KINDS), max_items=7), required=False),
        **_HANDLING,
    },
    "request": {
        "kind": _Field(_enum(REQUEST_KINDS)),
        "legal_basis": _Field(_list_of(_short, min_items=1, max_items=10)),
        "facts": _Field(_text),
        "data_sought": _Field(_text, required=False),
        "data_location": _Field(_short, required=False),
        "urgency": _Field(_enum(URGENCIES)),
        "deadline": _Field(_time, required=False),
        "follow_up": _Field(_short, required=False),
        "extends": _Field(_message_id, required=False),
        "evidence": _Field(_stix_bundle_shape, required=False),
        **_HANDLING,
    },
    "response": {
        "request": _Field(_message_id),
        "status": _Field(_enum(RESPONSE_STATUSES)),
        "details": _Field(_text, required=False),
        "action_at": _Field(_time, required=False),
        **_HANDLING,
    },
    "ack": {
        "message": _Field(_message_id),
        "officer": _Field(_short),
        "read_at": _Field(_time),
    },
    "consultation": {
        "topic": _Field(_text),
        "level": _Field(_enum(LEVELS)),
        "window_start": _Field(_time),
        "window_end": _Field(_time),
    },
    "escalation": {
        "message": _Field(_message_id),
        "from_level": _Field(_enum(LEVELS)),
        "to_level": _Field(_enum(LEVELS)),
        "reason": _Field(_enum(("ack-overdue", "response-overdue", "officer-decision"))),
        "note": _Field(_text, required=False),
    },
    "ping": {"round": _Field(_short)},
    "pong": {"ping": _Field(_message_id), "officer": _Field(_short)},
    "sighting": {
        "notification": _Field(_message_id),
        "indicator": _Field(_short),
        "first_seen": _Field(_time),
        "last_seen": _Field(_time),
        "count": _Field(_int_range(1, 2**31)),
        "where": _Field(_short, required=False),
    },
}

# Consistency rules across fields, after each field passed.
_CROSS: dict[str, list[Callable[[Mapping[str, Any]], None]]] = {}


def _window_ordered(body: Mapping[str, Any]) -> None:
    if parse_time(body["window_end"]) <= parse_time(body["window_start"]):
        raise FormError("window_end", "must be after window_start")


def _seen_ordered(body: Mapping[str, Any]) -> None:
    if parse_time(body["last_seen"]) < parse_time(body["first_seen"]):
        raise FormError("last_seen", "must not be before first_seen")


def _levels_climb(body: Mapping[str, Any]) -> None:
    if LEVELS.index(body["to_level"]) <= LEVELS.index(body["from_level"]):
        raise FormError("to_level", "an escalation must go up the ladder")


def _extension_names_its_request(body: Mapping[str, Any]) -> None:
    if body["kind"] == "preservation-extension" and "extends" not in body:
        raise FormError("extends", "is required: the preservation request to extend")
    if "extends" in body and body["kind"] != "preservation-extension":
        raise FormError("extends", "only a preservation-extension extends a request")


_CROSS["request"] = [_extension_names_its_request]
_CROSS["consultation"] = [_window_ordered]
_CROSS["sighting"] = [_seen_ordered]
_CROSS["escalation"] = [_levels_climb]


def validate(message_type: str, body: Any) -> None:
    """Raise :class:`FormError` naming the first bad field of ``body``."""
    form = FORMS.get(message_type)
    if form is None:
        raise FormError("type", f"{message_type!r} has no form")
    if not isinstance(body, Mapping):
        raise FormError("body", "must be an object")
    for name in body:
        if name not in form:
            raise FormError(str(name), f"is not a field of a {message_type}")
    for name, spec in form.items():
        if name not in body:
            if spec.required:
                raise FormError(name, "is required")
            continue
        spec.check(body[name], name)
    for rule in _CROSS.get(message_type, []):
        rule(body)


@dataclass(frozen=True)
class PersonalDataFinding:
    field: str
    kind: str  # email | phone | national-id
    excerpt: str  # masked: enough to find it, not to copy it


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w.-])\+?\d[\d ()./-]{7,}\d(?![\w.])")
_NATIONAL_ID = re.compile(
    r"\b(\d{3}-\d{2}-\d{4}"  # US SSN
    r"|\d{3}-\d{3}-\d{3} ?\d{2}"  # RU SNILS
    r"|\d{17}[\dXx]"  # CN resident id
    r"|\d{4} ?\d{4} ?\d{4})\b"  # IN Aadhaar
)
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def _mask(text: str) -> str:
    return text[:2] + "…" + text[-2:] if len(text) > 4 else "…"


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in _strings(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{path}[{i}]")]
    return []


_FREE_TEXT_CHECKS = {_text, _short}


def _free_text(message_type: str | None, body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The strings of ``body`` a person wrote: free text and short descriptions.

    Codes, times, message ids and STIX bundles are not free text (a UUID's
    digit runs are not a national id); with an unknown type every string is.
    """
    form = FORMS.get(message_type or "")
    if form is None:
        return _strings(body, "")
    out: list[tuple[str, str]] = []
    for name, value in body.items():
        spec = form.get(name)
        check = spec.check if spec is not None else None
        if check in _FREE_TEXT_CHECKS or getattr(check, "item", None) in _FREE_TEXT_CHECKS:
            out.extend(_strings(value, name))
    return out


def personal_data_findings(
    body: Mapping[str, Any], message_type: str | None = None
) -> list[PersonalDataFinding]:
    """E-mail addresses, telephone numbers and national-id-like numbers in ``body``.

    Only the free text of a ``message_type`` form is read (all strings if the
    type is not given).  A warning, not a proof: it errs towards flagging (an
    IP address is not flagged as a phone number; a long digit run may be).
    The officer either removes the data or declares it, and the agreement
    decides.
    """
    found: list[PersonalDataFinding] = []
    for path, text in _free_text(message_type, body):
        found.extend(
            PersonalDataFinding(path, "email", _mask(m.group())) for m in _EMAIL.finditer(text)
        )
        ids = {m.group() for m in _NATIONAL_ID.finditer(text)}
        found.extend(PersonalDataFinding(path, "national-id", _mask(i)) for i in sorted(ids))
        for m in _PHONE.finditer(text):
            candidate = m.group()
            digits = re.sub(r"\D", "", candidate)
            if _IPV4.match(candidate) or candidate in ids or not 8 <= len(digits) <= 15:
                continue
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", candidate):
                continue  # a date, not a number to call
            found.append(PersonalDataFinding(path, "phone", _mask(candidate)))
    return found
