"""Compose: an HTML form's fields into a message form body, and errors back to fields.

The console checks a message exactly as ``detente send`` does — it builds the
body and hands it to :meth:`detente.node.service.Node.spec`, which validates
the form (:func:`detente.core.forms.validate`), the STIX bundles (the
``stix2`` library) and personal data, and works out case, reply and
recipients.  Before that, each field is run through the same per-field check
the form uses, so that every bad field is named at once, next to its input,
instead of only the first.

Personal data: :func:`detente.core.forms.personal_data_findings` is the same
detector that makes the node refuse an undeclared finding; the console shows
every finding before anything is sent, and the officer removes the data or
declares it (then the agreement decides).

Not here: HTTP and rendering (:mod:`detente.console.web`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detente.core.canonical import parse
from detente.core.forms import FORMS, FormError, PersonalDataFinding, personal_data_findings
from detente.core.policy import TLP_LABELS
from detente.core.timefmt import format_time
from detente.errors import (
    CaseTransitionError,
    DetenteError,
    ExerciseNotAllowedError,
    MessageTypeNotAllowedError,
    NotAMemberError,
    PersonalDataNotAllowedError,
    SupersededAgreementError,
    TLPNotAllowedError,
    UnknownAgreementError,
)

__all__ = [
    "COMPOSE_TYPES",
    "NEW_TYPES",
    "REPLY_TYPES",
    "Draft",
    "build",
    "error_field",
]

COMPOSE_TYPES = ("notification", "request", "response", "ack", "consultation", "pong")
NEW_TYPES = ("notification", "request", "consultation")  # open a case: agreement and recipients
REPLY_TYPES = {"response": "request", "ack": "message", "pong": "ping"}  # field naming the answered
TEXT_FIELDS = ("activity", "facts", "data_sought", "details", "topic")
TIME_FIELDS = ("observed", "deadline", "action_at", "window_start", "window_end")
STIX_FIELDS = ("indicators", "evidence")
MAX_BUNDLE = 4 * 1024 * 1024
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")


@dataclass
class Draft:
    """A message being written: what the officer typed, the body it makes, what is wrong."""

    type: str
    values: dict[str, list[str]]  # input name -> values, to fill the form again
    body: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # input group -> message
    findings: list[PersonalDataFinding] = field(default_factory=list)
    tlp: str = "AMBER"
    agreement: str | None = None
    to: list[str] = field(default_factory=list)
    exercise: bool = False
    personal_data: bool = False
    ref: str | None = None  # the message a reply answers

    @property
    def ok(self) -> bool:
        return not self.errors

    def one(self, name: str, default: str = "") -> str:
        """The value of an input, to fill the form again."""
        values = self.values.get(name)
        return values[0] if values else default

    def many(self, name: str) -> list[str]:
        return list(self.values.get(name, []))


def _one(form: Mapping[str, Sequence[str]], name: str) -> str:
    values = form.get(name) or []
    return values[0].strip() if values else ""


def _many(form: Mapping[str, Sequence[str]], name: str) -> list[str]:
    return [v.strip() for v in form.get(name) or [] if v.strip()]


def local_to_wire(value: str) -> str:
    """A ``datetime-local`` value, read as UTC, as a wire time (``…T12:00:00.000Z``)."""
    if not _LOCAL_TIME.match(value):
        raise ValueError(value)
    return format_time(datetime.fromisoformat(value).replace(tzinfo=UTC))


def wire_to_local(value: str | None) -> str:
    """A wire time for a ``datetime-local`` input (UTC, to the minute)."""
    return (value or "")[:16]


def build(
    msg_type: str,
    form: Mapping[str, Sequence[str]],
    files: Mapping[str, bytes],
    *,
    officer_full_name: str,
    now: datetime,
) -> Draft:
    """The draft the fields make: body, header options, and every field error found."""
    draft = Draft(msg_type, {k: list(v) for k, v in form.items()})
    if msg_type not in COMPOSE_TYPES:
        draft.errors["type"] = f"{msg_type!r} cannot be composed here"
        return draft
    draft.tlp = _one(form, "tlp") or "AMBER"
    if draft.tlp not in TLP_LABELS:
        draft.errors["tlp"] = f"{draft.tlp!r} is not a TLP 2.0 label"
    draft.exercise = _one(form, "exercise") == "1"
    draft.personal_data = _one(form, "personal_data") == "1"
    if msg_type in NEW_TYPES:
        draft.agreement = _one(form, "agreement") or None
        draft.to = _many(form, "to")
    body: dict[str, Any] = {}
    spec = FORMS[msg_type]

    for name in spec:
        if name in REPLY_TYPES.values() and msg_type in REPLY_TYPES:
            draft.ref = _one(form, name)
            if draft.ref:
                body[name] = draft.ref
        elif name == "officer":
            body[name] = officer_full_name  # the signed-in officer signs it
        elif name == "read_at":
            body[name] = format_time(now)
        elif name in TEXT_FIELDS:
            text = (form.get(f"{name}_text") or [""])[0].strip()
            if text:
                body[name] = {"lang": _one(form, f"{name}_lang") or "en", "text": text}
        elif name in TIME_FIELDS:
            raw = _one(form, name)
            if raw:
                try:
                    body[name] = local_to_wire(raw)
                except ValueError:
                    draft.errors[name] = "must be a date and time (UTC), e.g. 2026-11-24T12:00"
        elif name in STIX_FIELDS:
            _bundle(draft, body, name, form, files)
        elif name in ("severity", "information_accuracy"):
            raw = _one(form, name)
            if raw:
                body[name] = int(raw) if raw.isdigit() else raw
        elif name in ("requested_actions", "handling"):
            chosen = _many(form, name)
            if chosen:
                body[name] = chosen
        elif name == "legal_basis":
            lines = [line.strip() for line in _one(form, name).splitlines() if line.strip()]
            if lines:
                body[name] = lines
        else:
            raw = _one(form, name)
            if raw:
                body[name] = raw
    draft.body = body
    # Every field through the form's own check, so that all errors show at once.
    for name, rule in spec.items():
        if name in draft.errors:
            continue
        if name not in body:
            if rule.required:
                draft.errors[name] = "is required"
            continue
        try:
            rule.check(body[name], name)
        except FormError as exc:
            draft.errors[error_field(exc.field)] = _problem(exc)
    if not draft.personal_data:
        draft.findings = personal_data_findings(body, msg_type)
        for finding in draft.findings:
            draft.errors.setdefault(
                error_field(finding.field), f"looks like personal data ({finding.kind})"
            )
    return draft


def _bundle(
    draft: Draft,
    body: dict[str, Any],
    name: str,
    form: Mapping[str, Sequence[str]],
    files: Mapping[str, bytes],
) -> None:
    pasted = (form.get(f"{name}_json") or [""])[0].strip()
    uploaded = files.get(f"{name}_file") or b""
    if pasted and uploaded:
        draft.errors[name] = "paste a bundle or upload one, not both"
        return
    raw = pasted.encode() if pasted else uploaded
    if not raw:
        return
    if len(raw) > MAX_BUNDLE:
        draft.errors[name] = f"a bundle is limited to {MAX_BUNDLE // (1024 * 1024)} MiB"
        return
    try:
        body[name] = parse(raw)
    except DetenteError as exc:
        draft.errors[name] = f"not valid JSON: {exc}"
        return
    # Show what was uploaded in the text area, so the officer sees what is checked.
    draft.values[f"{name}_json"] = [raw.decode("utf-8", errors="replace")]


def _problem(exc: FormError) -> str:
    detail = str(exc).removeprefix(f"{exc.field}: ")
    return detail if exc.field == error_field(exc.field) else f"{exc.field}: {detail}"


def error_field(path: str) -> str:
    """The form input group a field path belongs to: ``indicators.objects[2]…`` → indicators."""
    match = re.match(r"[a-z_]+", path)
    return match.group() if match else "form"


def error_of(exc: DetenteError) -> tuple[str, str]:
    """Where an error of :meth:`Node.spec` or of sealing belongs on the form, and its text."""
    if isinstance(exc, FormError):
        return error_field(exc.field), _problem(exc)
    if isinstance(exc, PersonalDataNotAllowedError):
        path = str(exc).split(":", 1)[0]
        named = error_field(path)
        return (named if named in _ALL_FIELDS else "personal_data"), str(exc)
    table: list[tuple[type[DetenteError], str]] = [
        (TLPNotAllowedError, "tlp"),
        (ExerciseNotAllowedError, "exercise"),
        (MessageTypeNotAllowedError, "type"),
        (NotAMemberError, "to"),
        (UnknownAgreementError, "agreement"),
        (SupersededAgreementError, "agreement"),
        (CaseTransitionError, "form"),
    ]
    for kind, name in table:
        if isinstance(exc, kind):
            return name, str(exc)
    return "form", str(exc)


_ALL_FIELDS = frozenset(name for spec in FORMS.values() for name in spec)
