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
    """One step of the escalation ladder: go to ``level`` ``after`` seconds unacknowledged."""

    level: str
    after: int

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise EncodingError(f"ladder level {self.level!r} is not one of {', '.join(LEVELS)}")
        if not isinstance(self.after, int) or isinstance(self.after, bool) or self.after < 0:
            raise EncodingError("ladder 'after' must be a non-negative number of seconds")


@dataclass(frozen=True, slots=True)
class Policy:
    """What an agreement allows (DESIGN.md principle 2)."""

    message_types: frozenset[str]
    max_tlp: str = "AMBER"
    personal_data: bool = False
    exercise: bool = True
    kem: str = "MLKEM768_X25519"
    ack_deadline: int = 4 * 3600
    request_deadlines: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType(
            {"normal": 72 * 3600, "urgent": 24 * 3600, "emergency": 2 * 3600}
        )
    )
    sender_may_shorten: bool = True
    ladder: tuple[Rung, ...] = (
        Rung("technical", 0),
        Rung("senior", 4 * 3600),
        Rung("hotline", 24 * 3600),
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
        for value in (self.ack_deadline, *self.request_deadlines.values()):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise EncodingError("deadlines must be positive numbers of seconds")
        afters = [r.after for r in self.ladder]
        if not self.ladder or afters != sorted(afters) or len(set(afters)) != len(afters):
            raise EncodingError("escalation ladder must be non-empty with increasing 'after'")

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
            "request_deadlines": dict(self.request_deadlines),
            "sender_may_shorten": self.sender_may_shorten,
            "ladder": [{"level": r.level, "after": r.after} for r in self.ladder],
        }

    @classmethod
    def from_json(cls, obj: Any) -> Policy:
        fields = {
            "message_types",
            "max_tlp",
            "personal_data",
            "exercise",
            "kem",
            "ack_deadline",
            "request_deadlines",
            "sender_may_shorten",
            "ladder",
        }
        if not isinstance(obj, dict) or set(obj) != fields:
            raise EncodingError(f"policy must have exactly the fields {', '.join(sorted(fields))}")
        if not isinstance(obj["message_types"], list) or not isinstance(obj["ladder"], list):
            raise EncodingError("policy message_types and ladder must be lists")
        for flag in ("personal_data", "exercise", "sender_may_shorten"):
            if not isinstance(obj[flag], bool):
                raise EncodingError(f"policy {flag} must be true or false")
        if not isinstance(obj["request_deadlines"], dict):
            raise EncodingError("policy request_deadlines must be an object")
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
            request_deadlines=MappingProxyType(dict(obj["request_deadlines"])),
            sender_may_shorten=obj["sender_may_shorten"],
            ladder=tuple(ladder),
        )
