"""An agreement's policy, as composable checks on a message header.

What may flow under an agreement: message types, the highest TLP 2.0 label,
whether personal data may be sent, whether exercise traffic is allowed, which
HPKE KEM protects payloads, the deadline for a human acknowledgement and for
answers to requests by urgency, and the escalation ladder between the three
channel levels of the 2013 US–Russia package (technical, senior, hotline).

Checks are small objects (in the manner of sigstore's verification policies)
so that an agreement's rules read as a list and each failure raises its own
:class:`~detente.errors.PolicyError` subclass naming the rule.  This module
does not decide *when* a deadline fires; the node's scheduler does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from detente.errors import (
    EncodingError,
    ExerciseNotAllowedError,
    MessageTypeNotAllowedError,
    PersonalDataNotAllowedError,
    TLPNotAllowedError,
)

__all__ = [
    "KEMS",
    "LEVELS",
    "MESSAGE_TYPES",
    "TLP_LABELS",
    "Header",
    "Policy",
    "Rung",
    "tlp_rank",
]

# TLP 2.0 (FIRST), from least to most restricted.
TLP_LABELS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
MESSAGE_TYPES = (
    "notification",
    "request",
    "response",
    "ack",
    "consultation",
    "escalation",
    "ping",
    "pong",
    "sighting",
)
LEVELS = ("technical", "senior", "hotline")
KEMS = ("MLKEM768_X25519", "X25519")
URGENCIES = ("normal", "urgent", "emergency")


def tlp_rank(label: str) -> int:
    """Position of a TLP 2.0 label in the order CLEAR < … < RED."""
    try:
        return TLP_LABELS.index(label)
    except ValueError:
        raise EncodingError(f"{label!r} is not a TLP 2.0 label ({', '.join(TLP_LABELS)})") from None


@dataclass(frozen=True, slots=True)
class Header:
    """What policy looks at before anything is decrypted."""

    type: str
    tlp: str
    exercise: bool
    personal_data: bool | None = None  # known only after decryption (or when sealing)


class Check(Protocol):
    def __call__(self, header: Header, policy: Policy) -> None: ...


def _type_allowed(header: Header, policy: Policy) -> None:
    if header.type not in policy.message_types:
        raise MessageTypeNotAllowedError(
            f"message type {header.type!r} is not allowed by the agreement"
        )


def _tlp_at_most(header: Header, policy: Policy) -> None:
    if tlp_rank(header.tlp) > tlp_rank(policy.max_tlp):
        raise TLPNotAllowedError(
            f"TLP:{header.tlp} is above the agreement's highest label TLP:{policy.max_tlp}"
        )


def _exercise_allowed(header: Header, policy: Policy) -> None:
    if header.exercise and not policy.exercise:
        raise ExerciseNotAllowedError("the agreement does not allow exercise traffic")


def _personal_data(header: Header, policy: Policy) -> None:
    if header.personal_data and not policy.personal_data:
        raise PersonalDataNotAllowedError(
            "the content declares personal data and the agreement forbids it"
        )


# Order matters only for which error a multiply-bad message reports first.
DEFAULT_CHECKS: tuple[Check, ...] = (
    _type_allowed,
    _tlp_at_most,
    _exercise_allowed,
    _personal_data,
)


@dataclass(frozen=True, slots=True)
class Rung:
    """One step of the escalation ladder.

    The first rung is where every case starts (``after`` 0); each later rung
    is reached ``after`` seconds past a missed deadline (an acknowledgement or
    an answer that did not come in time).
    """

    level: str
    after: int

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise EncodingError(f"ladder level {self.level!r} is not one of {', '.join(LEVELS)}")
        if not isinstance(self.after, int) or isinstance(self.after, bool) or self.after < 0:
            raise EncodingError("ladder 'after' must be a non-negative number of seconds")


def _seconds(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise EncodingError(f"policy {name} must be a positive number of seconds")
    return value


def _frozen(mapping: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(mapping))


DAY = 24 * 3600
SEVERITY_KEYS = ("0", "1", "2", "3", "4", "5")


@dataclass(frozen=True, slots=True)
class Policy:
    """What an agreement allows (DESIGN.md principle 2), and its clocks.

    Deadlines are seconds after the message was sent (its ``created`` time):

    - ``ack_deadline``: a person on duty acknowledges a notification, request,
      consultation or escalation; shorter by the notification's severity
      (``ack_by_severity``, keys "0".."5") or the request's urgency
      (``ack_by_urgency``), whichever is given;
    - ``request_deadlines``: a request is answered, by urgency (a consultation
      counts as ``urgent``); the sender may set an earlier deadline in the
      form if ``sender_may_shorten``, never a later one;
    - ``preservation_keep`` / ``preservation_extend``: how long data preserved
      on request is kept, and what one extension adds;
    - ``pong_deadline``: a person answers a ping; ``ping_every`` schedules
      ping rounds (0: only by hand);
    - ``reminder_percent``: the owing side is reminded when that share of the
      time to a deadline has passed.
    """

    message_types: frozenset[str]
    max_tlp: str = "AMBER"
    personal_data: bool = False
    exercise: bool = True
    kem: str = "MLKEM768_X25519"
    ack_deadline: int = 4 * 3600
    ack_by_severity: Mapping[str, int] = field(
        default_factory=lambda: _frozen({"5": 15 * 60, "4": 3600, "3": 2 * 3600})
    )
    ack_by_urgency: Mapping[str, int] = field(
        default_factory=lambda: _frozen({"emergency": 15 * 60, "urgent": 3600})
    )
    request_deadlines: Mapping[str, int] = field(
        default_factory=lambda: _frozen(
            {"normal": 10 * DAY, "urgent": 8 * 3600, "emergency": 2 * 3600}
        )
    )
    sender_may_shorten: bool = True
    preservation_keep: int = 60 * DAY
    preservation_extend: int = 30 * DAY
    pong_deadline: int = 3600
    ping_every: int = 0
    reminder_percent: int = 75
    ladder: tuple[Rung, ...] = (
        Rung("technical", 0),
        Rung("senior", 0),
        Rung("hotline", 4 * 3600),
    )

    def __post_init__(self) -> None:
        unknown = set(self.message_types) - set(MESSAGE_TYPES)
        if unknown:
            raise EncodingError(f"policy names unknown message types: {', '.join(sorted(unknown))}")
        tlp_rank(self.max_tlp)
        if self.kem not in KEMS:
            raise EncodingError(f"policy kem {self.kem!r} is not one of {', '.join(KEMS)}")
        if set(self.request_deadlines) != set(URGENCIES):
            raise EncodingError(f"request_deadlines must give {', '.join(URGENCIES)}")
        if not set(self.ack_by_severity) <= set(SEVERITY_KEYS):
            raise EncodingError('ack_by_severity keys must be severities "0" to "5"')
        if not set(self.ack_by_urgency) <= set(URGENCIES):
            raise EncodingError(f"ack_by_urgency keys must be among {', '.join(URGENCIES)}")
        _seconds(self.ack_deadline, "ack_deadline")
        for name, table in (
            ("request_deadlines", self.request_deadlines),
            ("ack_by_severity", self.ack_by_severity),
            ("ack_by_urgency", self.ack_by_urgency),
        ):
            for key, value in table.items():
                _seconds(value, f"{name}.{key}")
        for name in ("preservation_keep", "preservation_extend", "pong_deadline"):
            _seconds(getattr(self, name), name)
        if not isinstance(self.ping_every, int) or isinstance(self.ping_every, bool):
            raise EncodingError("policy ping_every must be seconds (0: pings only by hand)")
        if self.ping_every < 0:
            raise EncodingError("policy ping_every must not be negative")
        pct = self.reminder_percent
        if not isinstance(pct, int) or isinstance(pct, bool) or not 1 <= pct <= 99:
            raise EncodingError("policy reminder_percent must be an integer from 1 to 99")
        afters = [r.after for r in self.ladder]
        levels = [LEVELS.index(r.level) for r in self.ladder]
        if not self.ladder or afters[0] != 0:
            raise EncodingError("escalation ladder must start with a rung at 'after' 0")
        if afters[1:] != sorted(afters[1:]) or levels != sorted(set(levels)):
            raise EncodingError(
                "escalation ladder must climb (technical, senior, hotline) with "
                "non-decreasing 'after'"
            )

    def check(self, header: Header, checks: Iterable[Check] = DEFAULT_CHECKS) -> None:
        """Raise the first :class:`PolicyError` a check finds."""
        for check in checks:
            check(header, self)

    def to_json(self) -> dict[str, Any]:
        return {
            "message_types": sorted(self.message_types),
            "max_tlp": self.max_tlp,
            "personal_data": self.personal_data,
            "exercise": self.exercise,
            "kem": self.kem,
            "ack_deadline": self.ack_deadline,
            "ack_by_severity": dict(self.ack_by_severity),
            "ack_by_urgency": dict(self.ack_by_urgency),
            "request_deadlines": dict(self.request_deadlines),
            "sender_may_shorten": self.sender_may_shorten,
            "preservation_keep": self.preservation_keep,
            "preservation_extend": self.preservation_extend,
            "pong_deadline": self.pong_deadline,
            "ping_every": self.ping_every,
            "reminder_percent": self.reminder_percent,
            "ladder": [{"level": r.level, "after": r.after} for r in self.ladder],
        }

    @classmethod
    def from_json(cls, obj: Any) -> Policy:
        fields = set(_FIELDS)
        if not isinstance(obj, dict) or set(obj) != fields:
            raise EncodingError(f"policy must have exactly the fields {', '.join(sorted(fields))}")
        if not isinstance(obj["message_types"], list) or not isinstance(obj["ladder"], list):
            raise EncodingError("policy message_types and ladder must be lists")
        for flag in ("personal_data", "exercise", "sender_may_shorten"):
            if not isinstance(obj[flag], bool):
                raise EncodingError(f"policy {flag} must be true or false")
        for table in ("request_deadlines", "ack_by_severity", "ack_by_urgency"):
            if not isinstance(obj[table], dict):
                raise EncodingError(f"policy {table} must be an object")
        ladder = []
        for rung in obj["ladder"]:
            if not isinstance(rung, dict) or set(rung) != {"level", "after"}:
                raise EncodingError("each ladder rung must be {level, after}")
            ladder.append(Rung(rung["level"], rung["after"]))
        return cls(
            message_types=frozenset(obj["message_types"]),
            max_tlp=obj["max_tlp"],
            personal_data=obj["personal_data"],
            exercise=obj["exercise"],
            kem=obj["kem"],
            ack_deadline=obj["ack_deadline"],
            ack_by_severity=_frozen(obj["ack_by_severity"]),
            ack_by_urgency=_frozen(obj["ack_by_urgency"]),
            request_deadlines=_frozen(obj["request_deadlines"]),
            sender_may_shorten=obj["sender_may_shorten"],
            preservation_keep=obj["preservation_keep"],
            preservation_extend=obj["preservation_extend"],
            pong_deadline=obj["pong_deadline"],
            ping_every=obj["ping_every"],
            reminder_percent=obj["reminder_percent"],
            ladder=tuple(ladder),
        )


_FIELDS = (
    "message_types",
    "max_tlp",
    "personal_data",
    "exercise",
    "kem",
    "ack_deadline",
    "ack_by_severity",
    "ack_by_urgency",
    "request_deadlines",
    "sender_may_shorten",
    "preservation_keep",
    "preservation_extend",
    "pong_deadline",
    "ping_every",
    "reminder_percent",
    "ladder",
)
