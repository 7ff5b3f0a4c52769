"""Exercise scenarios: a YAML file, checked against a schema, errors with line numbers.

A scenario names the parties, the agreement they rehearse under, how each
party's simulated duty officer behaves, and the injects — at offset T, party
X sends form F to party Y (or to all)::

    name: US-Russia ransomware request
    source: seeds/001 (Putin-Biden call, 2021)
    duration: 12h
    agreement:
      id: us-ru-ict-2013
      title: {en: "US-Russia ICT CBMs", ru: "Меры доверия в сфере ИКТ"}
      policy: {ack_deadline: 3600}
    parties:
      - id: US-CISA
        names: {en: CISA}
        country: US
        officer: {ack: 10m..30m, answer: 2h..4h, language: en}
    injects:
      - at: 10m
        from: US-CISA
        to: [RU-NCCC]
        type: request
        body: {...the form...}
        answer: {status: action-taken}
    expect: {ack_missed: 1}

Durations are ``90s``, ``15m``, ``4h``, ``2d`` or seconds.  In a form,
``{{T}}``, ``{{T+2h}}`` or ``{{T-30m}}`` is a time relative to the start.  An officer's
delay is a fixed duration or a range ``min..max`` (uniform); ``silent`` is
the chance they never answer.  The form bodies are checked with the same
validation the node applies, so a scenario with a bad form fails here,
naming the line, not half-way through a run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from detente.core.case import REPLY_FIELDS
from detente.core.forms import FormError
from detente.core.forms import validate as validate_form
from detente.core.party import check_party_id
from detente.core.policy import MESSAGE_TYPES, TLP_LABELS, Policy
from detente.core.timefmt import format_time
from detente.errors import ConfigError, EncodingError

__all__ = ["Inject", "OfficerSpec", "PartySpec", "Scenario", "load_scenario", "parse_duration"]

PLACEHOLDER_ID = "01a20fb5-0000-7000-8000-000000000000"
_RELATIVE = re.compile(r"^\{\{\s*T\s*(?:([+-])\s*(\d+(?:\.\d+)?[smhd]))?\s*\}\}$")


def resolve_times(value: Any, start: datetime) -> Any:
    """Replace ``{{T}}``, ``{{T+2h}}``, ``{{T-30m}}`` in a form with wire times from ``start``.

    Scenarios without a fixed date say when things happen relative to their start.
    """
    if isinstance(value, str):
        match = _RELATIVE.match(value)
        if match is None:
            return value
        offset = parse_duration(match.group(2)) if match.group(2) else 0.0
        sign = -1 if match.group(1) == "-" else 1
        return format_time(start + timedelta(seconds=sign * offset))
    if isinstance(value, dict):
        return {k: resolve_times(v, start) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_times(v, start) for v in value]
    return value


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """``90s``, ``15m``, ``4h``, ``2d`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is like 90s, 15m, 4h or 2d")  # noqa: TRY004 - pydantic
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"{value!r} is not a duration like 90s, 15m, 4h or 2d")


@dataclass(frozen=True)
class Delay:
    """A delay drawn uniformly from [low, high] seconds."""

    low: float
    high: float


def _delay(value: Any) -> Delay:
    if isinstance(value, str) and ".." in value:
        low, high = (parse_duration(v.strip()) for v in value.split("..", 1))
        if high < low:
            raise ValueError(f"{value!r}: the range must go from low to high")
        return Delay(low, high)
    seconds = parse_duration(value)
    return Delay(seconds, seconds)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class OfficerSpec(_Model):
    """How a party's simulated duty officer behaves."""

    name: str = "Duty officer"
    ack: Delay = Field(default=Delay(300, 900), description="read and acknowledge after")
    answer: Delay = Field(default=Delay(3600, 3 * 3600), description="answer requests after")
    pong: Delay = Field(default=Delay(60, 600), description="answer a ping after")
    silent: float = Field(default=0.0, ge=0.0, le=1.0, description="chance of no answer at all")
    language: str = "en"

    @field_validator("ack", "answer", "pong", mode="before")
    @classmethod
    def _delays(cls, value: Any) -> Delay:
        return value if isinstance(value, Delay) else _delay(value)


class PartySpec(_Model):
    id: str
    names: dict[str, str]
    country: str | None = None
    role: Literal["technical", "senior", "hotline", "law-enforcement", "platform"] = "technical"
    languages: list[str] = Field(default_factory=lambda: ["en"])
    officer: OfficerSpec = Field(default_factory=OfficerSpec)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        try:
            return check_party_id(value, field="id")
        except EncodingError as exc:
            raise ValueError(str(exc)) from None


class AgreementSpec(_Model):
    id: str
    title: dict[str, str]
    policy: dict[str, Any] = Field(default_factory=dict)


class Answer(_Model):
    """How the recipients' officers answer this inject (requests, consultations)."""

    status: Literal[
        "acknowledged",
        "need-more-information",
        "in-progress",
        "action-taken",
        "declined",
        "completed",
    ] = "action-taken"
    details: dict[str, str] | None = None


class Inject(_Model):
    at: float
    from_: str = Field(alias="from")
    to: list[str] | Literal["all"] = "all"
    type: str
    tlp: str = "AMBER"
    body: dict[str, Any]
    answer: Answer = Field(default_factory=Answer)
    answers: int | None = Field(
        default=None,
        description="a reply (sighting, response, ...) to the message inject N sent this party",
    )

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in MESSAGE_TYPES:
            raise ValueError(f"{value!r} is not one of {', '.join(MESSAGE_TYPES)}")
        return value

    @field_validator("tlp")
    @classmethod
    def _tlp(cls, value: str) -> str:
        if value not in TLP_LABELS:
            raise ValueError(f"{value!r} is not a TLP 2.0 label ({', '.join(TLP_LABELS)})")
        return value


class Expect(_Model):
    """What the run must show (checked by the report; CI asserts it)."""

    lost: int = 0
    ack_met: int | None = None
    ack_missed: int | None = None
    answer_met: int | None = None
    answer_missed: int | None = None
    escalations: int | None = None
    pongs: int | None = None


class Scenario(_Model):
    name: str
    source: str = Field(description="the public reporting this scenario renders")
    start: str | None = None
    duration: float
    seed: int = 1
    agreement: AgreementSpec
    parties: list[PartySpec] = Field(min_length=2)
    injects: list[Inject] = Field(min_length=1)
    expect: Expect = Field(default_factory=Expect)

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        if isinstance(value, datetime):  # YAML reads an unquoted timestamp as one
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value.isoformat().replace("+00:00", "Z")
        return value

    def party(self, party_id: str) -> PartySpec:
        for p in self.parties:
            if p.id == party_id:
                return p
        raise KeyError(party_id)

    def recipients(self, inject: Inject) -> list[str]:
        if inject.answers is not None:
            return [self.injects[inject.answers].from_]
        if inject.to == "all":
            return [p.id for p in self.parties if p.id != inject.from_]
        return list(inject.to)

    def policy(self) -> Policy:
        obj = Policy(frozenset(MESSAGE_TYPES)).to_json()
        obj.update(self.agreement.policy)
        obj["exercise"] = True
        return Policy.from_json(obj)


# -- loading, with line numbers ------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """Keeps each mapping's and sequence item's line, for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        str(k): v for k, v in loader.construct_mapping(node, deep=True).items()
    }
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    mapping["__lines__"] = lines
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in ("__lines__", "__line__")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _line_of(doc: Any, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node ``loc`` reaches in the loaded document."""
    line = 1
    node = doc
    for key in loc:
        if isinstance(node, dict):
            lines = node.get("__lines__", {})
            name = "from" if key == "from_" else str(key)
            line = lines.get(name, node.get("__line__", line))
            node = node.get(name)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
            if isinstance(node, dict):
                line = node.get("__line__", line)
        else:
            break
    return int(line)


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario; :class:`ConfigError` names the file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no scenario at {path}") from None
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}:1: a scenario is a mapping (name, parties, injects, ...)")
    try:
        scenario = Scenario.model_validate(_strip(doc))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in loc) or "scenario"
        raise ConfigError(f"{path}:{_line_of(doc, loc)}: {field}: {first['msg']}") from None
    _check_semantics(path, doc, scenario)
    return scenario


def _check_semantics(path: Path, doc: Mapping[str, Any], scenario: Scenario) -> None:
    ids = [p.id for p in scenario.parties]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}:{_line_of(doc, ('parties',))}: parties: an id appears twice")
    try:
        scenario.policy()
    except EncodingError as exc:
        raise ConfigError(
            f"{path}:{_line_of(doc, ('agreement', 'policy'))}: agreement.policy: {exc}"
        ) from None
    for i, inject in enumerate(scenario.injects):
        line = _line_of(doc, ("injects", i))
        if inject.from_ not in ids:
            raise ConfigError(f"{path}:{line}: injects.{i}.from: {inject.from_} is not a party")
        for recipient in scenario.recipients(inject):
            if recipient not in ids or recipient == inject.from_:
                raise ConfigError(
                    f"{path}:{line}: injects.{i}.to: {recipient} is not another party"
                )
        if inject.at > scenario.duration:
            raise ConfigError(f"{path}:{line}: injects.{i}.at: after the scenario's end")
        body = resolve_times(dict(inject.body), datetime.now(UTC))
        if inject.answers is not None:
            ref_field = REPLY_FIELDS.get(inject.type)
            earlier = scenario.injects[inject.answers] if 0 <= inject.answers < i else None
            if ref_field is None or earlier is None:
                raise ConfigError(
                    f"{path}:{line}: injects.{i}.answers: a reply type naming an earlier inject"
                )
            if inject.from_ not in scenario.recipients(earlier) or inject.at < earlier.at:
                raise ConfigError(
                    f"{path}:{line}: injects.{i}.answers: {inject.from_} did not receive "
                    f"inject {inject.answers} before this"
                )
            body[ref_field] = PLACEHOLDER_ID  # the runner puts the real message id here
        try:
            validate_form(inject.type, body)
        except FormError as exc:
            body_line = _line_of(doc, ("injects", i, "body", exc.field.split(".")[0].split("[")[0]))
            raise ConfigError(f"{path}:{body_line}: injects.{i}.body.{exc}") from None
