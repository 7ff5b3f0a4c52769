"""Forms: every message type validates; a bad field is named; personal data is flagged."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from detente.core.forms import FORMS, FormError, personal_data_findings, validate

MID = "01a20f2b-a293-7ce7-a69b-64aba22eea5d"
T0, T1 = "2026-11-24T12:00:00.000Z", "2026-11-24T14:00:00.000Z"

VALID: dict[str, dict[str, Any]] = {
    "notification": {
        "category": "ransomware",
        "severity": 4,
        "observed": T0,
        "activity": {"lang": "en", "text": "C2 servers of a ransomware operation"},
        "concern": "infrastructure-in-your-jurisdiction",
        "indicators": {"type": "bundle", "id": "bundle--1", "objects": [{"type": "indicator"}]},
        "requested_actions": ["takedown", "information"],
        "pap": "AMBER",
        "handling": ["H1", "H2"],
        "source_reliability": "B",
        "information_accuracy": 2,
    },
    "request": {
        "kind": "preservation",
        "legal_basis": ["agreement art. 5", "Budapest Convention art. 29"],
        "facts": {"lang": "ru", "text": "Атака на инфраструктуру"},
        "urgency": "urgent",
        "deadline": T1,
        "follow_up": "mutual legal assistance request",
    },
    "response": {
        "request": MID,
        "status": "action-taken",
        "action_at": T1,
        "details": {"lang": "en", "text": "servers seized", "translated_from": "ru"},
    },
    "ack": {"message": MID, "officer": "duty officer 7", "read_at": T0},
    "consultation": {
        "topic": {"lang": "zh", "text": "误判风险"},
        "level": "senior",
        "window_start": T0,
        "window_end": T1,
    },
    "escalation": {
        "message": MID,
        "from_level": "technical",
        "to_level": "senior",
        "reason": "ack-overdue",
    },
    "ping": {"round": "2026-Q4"},
    "pong": {"ping": MID, "officer": "duty officer 3"},
    "sighting": {
        "notification": MID,
        "indicator": "ipv4-addr:203.0.113.7",
        "first_seen": T0,
        "last_seen": T1,
        "count": 12,
    },
}


def test_every_form_has_a_valid_example() -> None:
    assert set(VALID) == set(FORMS)


@pytest.mark.parametrize("message_type", sorted(VALID))
def test_valid_form_passes(message_type: str) -> None:
    validate(message_type, VALID[message_type])


@pytest.mark.parametrize("message_type", sorted(VALID))
def test_each_missing_required_field_is_named(message_type: str) -> None:
    for name, spec in FORMS[message_type].items():
        if not spec.required:
            continue
        body = copy.deepcopy(VALID[message_type])
        del body[name]
        with pytest.raises(FormError, match=f"^{name}: is required") as err:
            validate(message_type, body)
        assert err.value.field == name


@pytest.mark.parametrize(
    ("message_type", "field", "value", "path"),
    [
        ("notification", "category", "cyberwar", "category"),
        ("notification", "severity", 6, "severity"),
        ("notification", "severity", True, "severity"),
        ("notification", "observed", "yesterday", "observed"),
        ("notification", "activity", "plain text", "activity"),
        ("notification", "activity", {"lang": "english", "text": "x"}, "activity.lang"),
        ("notification", "requested_actions", ["takedown", "nuke"], r"requested_actions\[1\]"),
        ("notification", "handling", ["H9"], r"handling\[0\]"),
        ("notification", "indicators", {"type": "indicator"}, "indicators"),
        ("notification", "pap", "WHITE", "pap"),
        ("request", "urgency", "asap", "urgency"),
        ("request", "legal_basis", [], "legal_basis"),
        ("response", "request", "not-an-id", "request"),
        ("response", "status", "ignored", "status"),
        ("sighting", "count", 0, "count"),
    ],
)
def test_wrong_value_is_named(message_type: str, field: str, value: Any, path: str) -> None:
    body = copy.deepcopy(VALID[message_type])
    body[field] = value
    with pytest.raises(FormError, match=f"^{path}: "):
        validate(message_type, body)


def test_unknown_field_is_refused() -> None:
    body = {**VALID["ping"], "priority": "high"}
    with pytest.raises(FormError, match=r"^priority: is not a field of a ping"):
        validate("ping", body)


def test_cross_field_rules() -> None:
    with pytest.raises(FormError, match=r"^window_end: must be after window_start"):
        validate("consultation", {**VALID["consultation"], "window_end": T0})
    with pytest.raises(FormError, match=r"^last_seen: "):
        validate("sighting", {**VALID["sighting"], "first_seen": T1, "last_seen": T0})
    with pytest.raises(FormError, match=r"^to_level: an escalation must go up"):
        validate("escalation", {**VALID["escalation"], "to_level": "technical"})


def test_unknown_type_and_non_object_body() -> None:
    with pytest.raises(FormError, match=r"^type: "):
        validate("gossip", {})
    with pytest.raises(FormError, match=r"^body: "):
        validate("ping", ["round"])


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to ivan.petrov@example.ru today", "email"),
        ("call +7 495 123-45-67 after noon", "phone"),
        ("SSN 123-45-6789 of the victim", "national-id"),
        ("Aadhaar 1234 5678 9012", "national-id"),
        ("resident id 11010519491231002X", "national-id"),
    ],
)
def test_personal_data_detector_flags(text: str, kind: str) -> None:
    findings = personal_data_findings({"facts": {"lang": "en", "text": text}})
    assert [f.kind for f in findings] == [kind]
    assert findings[0].field == "facts.text"
    assert findings[0].excerpt not in text  # masked, not copied


@pytest.mark.parametrize(
    "text",
    [
        "scanning from 203.0.113.7 and 198.51.100.23",
        "observed 2026-11-24T12:00:00.000Z, 4 hosts, port 443",
        "CVE-2024-3400 exploited",
    ],
)
def test_personal_data_detector_leaves_technical_data_alone(text: str) -> None:
    assert personal_data_findings({"activity": {"lang": "en", "text": text}}) == []


def test_personal_data_detector_reads_free_text_not_codes() -> None:
    # Message ids and times are codes: their digit runs are not national ids.
    ack = {
        "message": "01a20fb5-7365-7123-8123-456789012345",
        "officer": "Duty officer",
        "read_at": "2026-11-24T12:00:00.000Z",
    }
    validate("ack", ack)
    assert personal_data_findings(ack, "ack") == []
    # The same number in free text is flagged.
    body = {"facts": {"lang": "en", "text": "subscriber 7365 1234 5678"}}
    assert [f.kind for f in personal_data_findings(body, "request")] == ["national-id"]
    # A short free-text field is read too.
    where = {"data_location": "mailbox ivan.petrov@example.ru"}
    assert [f.field for f in personal_data_findings(where, "request")] == ["data_location"]
