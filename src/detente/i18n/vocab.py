"""What each form field holds, for rendering: a code of which vocabulary, a time,
a message id, free text …

The forms themselves (:mod:`detente.core.forms`) check values; this table says
how a reader sees them.  Each code vocabulary is the prefix of its catalogue
keys (``category:ransomware``).  A test checks that every field of every form
and every code of every vocabulary has its catalogue entry, so a field or code
added to the core without a label fails the build, not a duty officer.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from detente.core import forms
from detente.core.case import CaseState
from detente.core.policy import LEVELS, MESSAGE_TYPES

__all__ = ["EVENT_KINDS", "FIELD_KINDS", "VOCABULARIES", "FieldKind"]

# How a field's value is rendered.
FieldKind = str
CODE = "code"  # one code of a vocabulary: its label from the catalogue
CODES = "codes"  # a list of codes
TIME = "time"  # an RFC 3339 UTC time: formatted for the reader, in UTC
ID = "id"  # a message id: shown as is
TEXT = "text"  # free text {lang, text[, translated_from]}: never translated
WRITTEN = "as-written"  # a short string without a language tag: shown as is
WRITTEN_LIST = "as-written-list"
NUMBER = "number"
STIX = "stix"  # a STIX 2.1 bundle: summarised

# vocabulary -> its codes, as they travel on the wire (strings: catalogue keys).
VOCABULARIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "type": MESSAGE_TYPES,
        "category": forms.CATEGORIES,
        "severity": tuple(str(i) for i in range(len(forms.SEVERITIES))),
        "concern": forms.CONCERNS,
        "request-kind": forms.REQUEST_KINDS,
        "urgency": forms.URGENCIES,
        "status": forms.RESPONSE_STATUSES,
        "level": LEVELS,
        "escalation-reason": ("ack-overdue", "response-overdue", "officer-decision"),
        "handling": forms.HANDLING_CODES,
        "reliability": forms.RELIABILITY,
        "accuracy": tuple(str(a) for a in forms.ACCURACY),
        "pap": forms.PAP_LABELS,
        "state": tuple(s.value for s in CaseState),
        "direction": ("in", "out"),
        "delivery": ("pending", "delivered", "rejected"),
        "owed": ("ack", "answer"),
    }
)

# Case event kinds the node records (node/workflow.py, core/case.py).
EVENT_KINDS: tuple[str, ...] = (
    "receipt",
    "ack",
    *(f"response:{s}" for s in forms.RESPONSE_STATUSES),
    *(f"escalation:{level}" for level in LEVELS),
    "reminder:ack",
    "reminder:answer",
    "overdue:ack",
    "overdue:answer",
    "preserved",
    "preservation-extended",
    "reminder:preservation",
    "preservation-lapsed",
    "sighting",
    "pong",
    "unmatched",
    "refused-transition",
)

# field name -> (kind, vocabulary for codes).  A field name means the same in
# every form that has it (core/forms.py keeps it so).
FIELD_KINDS: Mapping[str, tuple[FieldKind, str | None]] = MappingProxyType(
    {
        "category": (CODE, "category"),
        "severity": (CODE, "severity"),
        "observed": (TIME, None),
        "activity": (TEXT, None),
        "concern": (CODE, "concern"),
        "indicators": (STIX, None),
        "requested_actions": (CODES, "request-kind"),
        "pap": (CODE, "pap"),
        "handling": (CODES, "handling"),
        "source_reliability": (CODE, "reliability"),
        "information_accuracy": (CODE, "accuracy"),
        "kind": (CODE, "request-kind"),
        "legal_basis": (WRITTEN_LIST, None),
        "facts": (TEXT, None),
        "data_sought": (TEXT, None),
        "data_location": (WRITTEN, None),
        "urgency": (CODE, "urgency"),
        "deadline": (TIME, None),
        "follow_up": (WRITTEN, None),
        "extends": (ID, None),
        "evidence": (STIX, None),
        "request": (ID, None),
        "status": (CODE, "status"),
        "details": (TEXT, None),
        "action_at": (TIME, None),
        "message": (ID, None),
        "officer": (WRITTEN, None),
        "read_at": (TIME, None),
        "topic": (TEXT, None),
        "level": (CODE, "level"),
        "window_start": (TIME, None),
        "window_end": (TIME, None),
        "from_level": (CODE, "level"),
        "to_level": (CODE, "level"),
        "reason": (CODE, "escalation-reason"),
        "note": (TEXT, None),
        "round": (WRITTEN, None),
        "ping": (ID, None),
        "notification": (ID, None),
        "indicator": (WRITTEN, None),
        "first_seen": (TIME, None),
        "last_seen": (TIME, None),
        "count": (NUMBER, None),
        "where": (WRITTEN, None),
    }
)
