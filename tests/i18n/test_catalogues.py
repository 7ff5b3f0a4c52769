"""The catalogues: complete, not fuzzy, placeholders kept, every code of the core labelled.

The English catalogue is the reference: every other catalogue must translate
every one of its msgids (a missing one would silently fall back to English),
keep each ``{placeholder}``, and add nothing English does not have.
"""

from __future__ import annotations

import ast
import io
import pathlib
import re
import string

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from detente.core import forms
from detente.core.case import CaseState
from detente.core.policy import MESSAGE_TYPES, TLP_LABELS
from detente.i18n import SUPPORTED, has_message, load_catalogue, translator
from detente.i18n.catalogue import translations_from_po
from detente.i18n.vocab import EVENT_KINDS, FIELD_KINDS, VOCABULARIES

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "detente"
OTHERS = [lang for lang in SUPPORTED if lang != "en"]


def _messages(catalogue: Catalog) -> dict[str, str]:
    return {str(m.id): str(m.string) for m in catalogue if m.id}


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_eight_languages() -> None:
    assert SUPPORTED == ("ar", "zh", "en", "fr", "ru", "es", "hi", "vi")


@pytest.mark.parametrize("lang", SUPPORTED)
def test_catalogue_is_complete_and_not_fuzzy(lang: str) -> None:
    english = _messages(load_catalogue("en"))
    catalogue = load_catalogue(lang)
    assert not catalogue.fuzzy, f"{lang}: the header is fuzzy"
    messages = _messages(catalogue)
    assert set(english) - set(messages) == set(), f"{lang}: missing msgids"
    assert set(messages) - set(english) == set(), f"{lang}: msgids English does not have"
    fuzzy = [str(m.id) for m in catalogue if m.id and m.fuzzy]
    assert fuzzy == [], f"{lang}: fuzzy entries"
    empty = [msgid for msgid, text in messages.items() if not text.strip()]
    assert empty == [], f"{lang}: untranslated entries"
    assert list(catalogue.obsolete) == [], f"{lang}: obsolete entries"
    assert catalogue.locale is not None and str(catalogue.locale) == lang


@pytest.mark.parametrize("lang", OTHERS)
def test_placeholders_are_kept(lang: str) -> None:
    english = _messages(load_catalogue("en"))
    for msgid, text in _messages(load_catalogue(lang)).items():
        assert _placeholders(text) == _placeholders(msgid), f"{lang}: {msgid!r} -> {text!r}"
        assert _placeholders(english[msgid]) == _placeholders(msgid)


@pytest.mark.parametrize("lang", OTHERS)
def test_translations_are_in_the_language_script(lang: str) -> None:
    # A label left in English by mistake would pass the completeness test.
    scripts = {
        "ar": r"[\u0600-\u06FF]",
        "ru": r"[\u0400-\u04FF]",
        "hi": r"[\u0900-\u097F]",
        "zh": r"[\u4E00-\u9FFF]",
    }
    english = _messages(load_catalogue("en"))
    copied = []
    for msgid, text in _messages(load_catalogue(lang)).items():
        if lang in scripts:
            # Codes and acronyms in a label are fine; a label with none of the script is not.
            if not re.search(scripts[lang], text) and _words(text):
                copied.append(msgid)
        elif text == english[msgid] and len(_words(text)) > 1:
            copied.append(msgid)
    assert copied == [], f"{lang}: looks untranslated"


def _words(text: str) -> list[str]:
    stripped = re.sub(
        r"\{[a-z_]+\}|\b(?:[A-Z0-9+:]{2,}|STIX|NCISS|PAP|TLP|CERT|DDoS|C2)\b", "", text
    )
    return re.findall(r"[A-Za-z]{3,}", stripped)


def test_every_form_field_and_code_has_a_label() -> None:
    for fields in forms.FORMS.values():
        for name in fields:
            assert name in FIELD_KINDS, f"form field {name} has no rendering"
            assert has_message(f"field:{name}"), f"form field {name} has no label"
    for vocabulary, codes in VOCABULARIES.items():
        for code in codes:
            assert has_message(f"{vocabulary}:{code}"), f"{vocabulary}:{code} has no label"
    for kind in EVENT_KINDS:
        assert has_message(f"event:{kind}"), f"event {kind} has no label"
    # The vocabularies are the core's own.
    assert VOCABULARIES["type"] == MESSAGE_TYPES
    assert VOCABULARIES["state"] == tuple(s.value for s in CaseState)
    assert VOCABULARIES["severity"] == ("0", "1", "2", "3", "4", "5")


def test_ncis_severity_names_in_english() -> None:
    t = translator("en")
    assert [t(f"severity:{i}") for i in range(6)] == [
        "Baseline",
        "Low",
        "Medium",
        "High",
        "Severe",
        "Emergency",
    ]


def _event_kinds_in(path: pathlib.Path) -> set[str]:
    """Event kinds a module records: the 4th argument of its _event() calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assigned: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                assigned.setdefault(target.id, []).append(node.value)

    def values(expr: ast.expr) -> set[str]:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            return values(expr.body) | values(expr.orelse)
        if isinstance(expr, ast.Name):
            return {v for e in assigned.get(expr.id, []) for v in values(e)}
        if isinstance(expr, ast.JoinedStr):  # f"response:{...}": the prefix, expanded below
            head = expr.values[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str):
                return {head.value + "*"}
        return set()

    kinds: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "_event"
            and len(node.args) >= 4
        ):
            kinds |= values(node.args[3])
    return kinds


def test_every_event_kind_the_workflow_records_has_a_label() -> None:
    kinds = _event_kinds_in(SRC / "node" / "workflow.py")
    assert "ack" in kinds and "reminder:ack" in kinds and "response:*" in kinds
    for kind in kinds:
        if kind.endswith("*"):
            assert any(k.startswith(kind[:-1]) for k in EVENT_KINDS), kind
        else:
            assert kind in EVENT_KINDS, f"event {kind} is not in vocab.EVENT_KINDS"


def test_tlp_labels_are_not_translated() -> None:
    # TLP 2.0: the labels are English capitals in every language.
    for lang in SUPPORTED:
        ids = _messages(load_catalogue(lang))
        assert not any(msgid.lower().startswith("tlp:") for msgid in ids)
        for label in TLP_LABELS:
            assert not has_message(f"tlp:{label}")


def test_a_missing_message_falls_back_to_english() -> None:
    po = io.BytesIO()
    partial = Catalog(locale="ru", domain="detente", fuzzy=False)
    partial.add("type:request", "Запрос")
    partial.add("type:response", "Ответ (черновик)", flags=["fuzzy"])
    write_po(po, partial)
    po.seek(0)
    english = translator("en").__self__  # type: ignore[attr-defined]
    t = translations_from_po(po, "ru", english).gettext
    assert t("type:request") == "Запрос"
    assert t("type:response") == "Response"  # fuzzy: not used
    assert t("type:notification") == "Notification"  # missing: English
    assert t("no such message") == "no such message"


def test_translator_is_cached_and_matches_tags() -> None:
    # One compiled catalogue per language, whatever the tag asked for.
    assert translator("ru").__self__ is translator("ru-RU").__self__  # type: ignore[attr-defined]
    assert translator("zh-Hans")("type:request") == "请求"
    assert translator("ar-EG")("type:request") == "طلب"
    assert translator("xx")("type:request") == "Request"
