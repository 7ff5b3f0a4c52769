"""render_message: codes through the catalogues, free text untouched with its tag."""

from __future__ import annotations

from typing import Any

import pytest

from detente.core.forms import validate
from detente.i18n import (
    SUPPORTED,
    Row,
    best_language,
    is_rtl,
    pick,
    render_message,
    tlp_label,
    translator,
    verdict_sentence,
)

REQUEST_ID = "019a5f3e-8b7c-7d21-9f00-1234567890ab"
NOTIFICATION: dict[str, Any] = {
    "category": "ransomware",
    "severity": 4,
    "observed": "2026-11-24T12:00:00.000Z",
    "activity": {"lang": "en", "text": "C2 servers of a ransomware operation at 203.0.113.7"},
    "concern": "infrastructure-in-your-jurisdiction",
    "requested_actions": ["takedown", "preservation"],
    "pap": "AMBER",
    "handling": ["H1", "H2"],
    "source_reliability": "B",
    "information_accuracy": 2,
}
REQUEST: dict[str, Any] = {
    "kind": "preservation",
    "legal_basis": ["Budapest Convention, art. 29", "MLAT 1999, art. 7"],
    "facts": {
        "lang": "en",
        "text": "Вымогатели использовали сервер 203.0.113.7 с 20 ноября.",
        "translated_from": "ru",
    },
    "data_sought": {"lang": "fr", "text": "Journaux de connexion du serveur"},
    "urgency": "urgent",
    "deadline": "2026-11-25T08:30:00.000Z",
}
READERS = ("ru", "ar", "hi", "zh")

# What each reader must see for the codes above (the catalogues' labels).
EXPECTED = {
    "ru": {
        "category": "Программа-вымогатель",
        "severity": "Серьёзный",
        "kind": "Обеспечение сохранности данных",
        "urgency": "Срочная",
        "original": "английский",
    },
    "ar": {
        "category": "برمجيات الفدية",
        "severity": "شديد",
        "kind": "حفظ البيانات",
        "urgency": "عاجلة",
        "original": "الإنجليزية",
    },
    "hi": {
        "category": "रैनसमवेयर",
        "severity": "गंभीर",
        "kind": "डेटा का संरक्षण",
        "urgency": "तत्काल",
        "original": "अंग्रेज़ी",
    },
    "zh": {
        "category": "勒索软件",
        "severity": "严重",
        "kind": "数据保全",
        "urgency": "紧急",
        "original": "英语",
    },
}


def _by_field(rows: list[Row]) -> dict[str, Row]:
    return {row.field: row for row in rows}


def test_the_examples_are_valid_forms() -> None:
    validate("notification", NOTIFICATION)
    validate("request", REQUEST)


@pytest.mark.parametrize("lang", READERS)
def test_notification_codes_in_the_readers_language(lang: str) -> None:
    rows = render_message("notification", NOTIFICATION, lang)
    t = translator(lang)
    assert [r.field for r in rows] == list(NOTIFICATION)  # the form's order
    by = _by_field(rows)
    assert by["category"].value == EXPECTED[lang]["category"]
    assert by["category"].code == "ransomware"  # the code is kept beside its label
    assert by["category"].label == t("field:category") != "Category"
    assert by["severity"].value == EXPECTED[lang]["severity"]
    assert by["severity"].code == "4"
    assert by["concern"].value == t("concern:infrastructure-in-your-jurisdiction")
    assert by["requested_actions"].value == "; ".join(
        [t("request-kind:takedown"), t("request-kind:preservation")]
    )
    assert by["requested_actions"].code == "takedown, preservation"
    assert by["handling"].value.startswith("H1")  # the code leads its meaning
    assert by["pap"].value.startswith("PAP:AMBER")
    assert by["source_reliability"].value.startswith("B")
    assert by["information_accuracy"].code == "2"
    for row in rows:
        if row.kind in ("code", "codes"):
            assert row.value != row.code
    # Time: the reader's locale, 24-hour clock, UTC; the wire time kept.
    observed = by["observed"]
    assert observed.code == "2026-11-24T12:00:00.000Z"
    assert observed.value.endswith("UTC") and "2026" in observed.value
    assert "12:00:00" in observed.value


@pytest.mark.parametrize("lang", READERS)
def test_notification_free_text_is_untouched_with_its_tag(lang: str) -> None:
    activity = _by_field(render_message("notification", NOTIFICATION, lang))["activity"]
    assert activity.value == NOTIFICATION["activity"]["text"]
    assert activity.kind == "text"
    assert activity.lang == "en"
    assert activity.original is True
    assert activity.translated_from is None
    assert activity.note is not None
    assert "[en]" in activity.note
    assert EXPECTED[lang]["original"] in activity.note  # the language named in the reader's
    assert activity.note == translator(lang)(
        "original language, not translated: {language} [{tag}]"
    ).format(language=EXPECTED[lang]["original"], tag="en")


@pytest.mark.parametrize("lang", READERS)
def test_request_in_the_readers_language(lang: str) -> None:
    rows = render_message("request", REQUEST, lang)
    by = _by_field(rows)
    assert by["kind"].value == EXPECTED[lang]["kind"]
    assert by["kind"].code == "preservation"
    assert by["urgency"].value == EXPECTED[lang]["urgency"]
    # Legal basis: as the sender wrote it, never translated.
    assert by["legal_basis"].value == "Budapest Convention, art. 29; MLAT 1999, art. 7"
    assert by["legal_basis"].note == translator(lang)("as written by the sender")
    # A translation the sender made: shown as such, naming the original's language.
    facts = by["facts"]
    assert facts.value == REQUEST["facts"]["text"]
    assert facts.lang == "en"
    assert facts.original is False
    assert facts.translated_from == "ru"
    assert facts.note is not None and "[ru]" in facts.note and "[en]" in facts.note
    # Free text in a third language, untouched.
    sought = by["data_sought"]
    assert (sought.value, sought.lang, sought.original) == (
        "Journaux de connexion du serveur",
        "fr",
        True,
    )
    assert by["deadline"].code == "2026-11-25T08:30:00.000Z"
    assert "08:30:00" in by["deadline"].value


def test_every_language_renders_every_field() -> None:
    for lang in SUPPORTED:
        for message_type, body in (("notification", NOTIFICATION), ("request", REQUEST)):
            for row in render_message(message_type, body, lang):
                assert row.label and row.value
                assert not row.label.startswith("field:")


def test_unknown_codes_and_fields_are_shown_as_they_are() -> None:
    body = {
        **NOTIFICATION,
        "category": "quantum-intrusion",
        "severity": 9,
        "handling": ["H9"],
        "novelty": {"x": 1},
        "remark": {"lang": "de", "text": "Neue Art"},
    }
    by = _by_field(render_message("notification", body, "ru"))
    assert by["category"].value == "quantum-intrusion"
    assert by["severity"].value == "9"
    assert by["handling"].value == "H9"
    assert by["novelty"].label == "novelty"
    assert by["novelty"].value == '{"x": 1}'
    assert by["remark"].value == "Neue Art"
    assert by["remark"].lang == "de" and by["remark"].original is True
    assert by["remark"].note is not None and "немецкий" in by["remark"].note
    # A type no form describes: every field by its shape.
    rows = render_message("future-type", {"a": "b"}, "zh")
    assert [(r.label, r.value) for r in rows] == [("a", "b")]


def test_other_forms() -> None:
    escalation = {
        "message": REQUEST_ID,
        "from_level": "technical",
        "to_level": "hotline",
        "reason": "ack-overdue",
    }
    by = _by_field(render_message("escalation", escalation, "ru"))
    assert by["message"].value == REQUEST_ID  # ids as they are
    assert by["to_level"].value == "Прямая линия руководителей"
    assert by["reason"].value == "Просрочено подтверждение прочтения"
    sighting = {
        "notification": REQUEST_ID,
        "indicator": "203.0.113.7",
        "first_seen": "2026-11-24T12:00:00.000Z",
        "last_seen": "2026-11-24T13:00:00.000Z",
        "count": 12345,
        "where": "AS64500",
    }
    by = _by_field(render_message("sighting", sighting, "fr"))
    assert by["count"].code == "12345"
    assert by["count"].value.replace("\u202f", " ").replace("\xa0", " ") == "12 345"
    assert by["indicator"].value == "203.0.113.7"
    bundle = {"type": "bundle", "id": "bundle--1", "objects": [{"type": "indicator"}] * 3}
    by = _by_field(render_message("notification", {**NOTIFICATION, "indicators": bundle}, "es"))
    assert by["indicators"].value == "Paquete STIX 2.1 bundle--1; objetos: 3"


def test_tlp_is_never_translated() -> None:
    assert tlp_label("AMBER+STRICT") == "TLP:AMBER+STRICT"
    assert tlp_label("TLP:RED") == "TLP:RED"


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("zh-Hans", "zh"),
        ("zh-Hans-CN", "zh"),
        ("zh-TW", "zh"),
        ("ar-EG", "ar"),
        ("AR_eg", "ar"),
        ("ru", "ru"),
        ("hi-IN", "hi"),
        ("vi-VN", "vi"),
        ("es-419", "es"),
        ("fr-CA", "fr"),
        ("de-DE", "en"),
        ("", "en"),
        (None, "en"),
        (["de", "fr-BE", "ru"], "fr"),
    ],
)
def test_best_language(requested: Any, expected: str) -> None:
    assert best_language(requested) == expected


def test_best_language_against_other_lists() -> None:
    assert best_language("zh", ["en", "zh-Hans"]) == "zh-Hans"
    assert best_language("pt-BR", ["ru", "ar"]) == "ru"  # no English: the first
    assert best_language("sr-Latn-RS", ["sr-Latn", "sr"]) == "sr-Latn"
    with pytest.raises(ValueError, match="no languages"):
        best_language("en", [])


def test_is_rtl() -> None:
    assert is_rtl("ar")
    assert is_rtl("ar-EG")
    assert is_rtl("fa")
    assert not any(is_rtl(lang) for lang in SUPPORTED if lang != "ar")
    assert not is_rtl("not a tag")


def test_pick_party_names_and_titles() -> None:
    names = {"ru": "НКЦКИ", "en": "National Computer Incident Coordination Center"}
    assert pick(names, "ru") == "НКЦКИ"
    assert pick(names, "ru-RU") == "НКЦКИ"
    assert pick(names, "ar") == "National Computer Incident Coordination Center"
    assert pick({"zh-Hans": "网络安全", "fr": "Cyber"}, "zh") == "网络安全"
    assert pick({"fr": "Mesures de confiance", "ru": "Меры доверия"}, "ar") == (
        "Mesures de confiance"
    )
    assert pick({}, "en") == ""


def test_verdict_sentence() -> None:
    proven = {
        "delivered": "2026-11-24T12:00:01.000Z",
        "acknowledged": "2026-11-24T12:05:00.000Z",
        "answered": "2026-11-24T14:00:00.000Z",
        "status": "action-taken",
    }
    en = verdict_sentence(proven, "Duty officer Ivanova", "en")
    assert en.startswith("delivered at Nov 24, 2026, 12:00:01 UTC; acknowledged at")
    assert "by Duty officer Ivanova" in en
    assert "answered (Action taken) at Nov 24, 2026, 14:00:00 UTC" in en
    ru = verdict_sentence(proven, "Иванова", "ru")
    assert "Меры приняты" in ru and "Иванова" in ru
    never = verdict_sentence({"delivered": None}, None, "ar", ack_due="2026-11-24T13:00:00.000Z")
    assert never.startswith(translator("ar")("never delivered: no receipt"))
