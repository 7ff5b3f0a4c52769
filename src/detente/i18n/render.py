"""A received form in the reader's language (DESIGN.md principle 5, "Nobody misreads").

:func:`render_message` turns a message's structured part into rows a person
reads: each field's label and each code's label come from the catalogues
(never from machine translation), times are formatted for the reader's locale
and always in UTC, ids are shown as they are.  Free text is shown exactly as
the sender wrote it, with its language tag and a note that it is the original
(or, when the sender gave a translation, that it is one and from which
language) — it is never silently translated.  A code the catalogues do not
know (a newer peer's) is shown as the code itself.

TLP labels are not translated (FIRST TLP 2.0 wants them in English capitals in
every language): :func:`tlp_label` only spells them.

Not here: Rich tables or any other output (``cli``), fetching messages (``node``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from babel import Locale
from babel.dates import format_skeleton
from babel.numbers import format_decimal

from detente.core.forms import FORMS
from detente.core.timefmt import parse_time
from detente.errors import EncodingError
from detente.i18n import vocab
from detente.i18n.catalogue import best_language, has_message, language_name, translator

__all__ = [
    "Row",
    "code_label",
    "field_label",
    "format_time_for",
    "render_message",
    "tlp_label",
]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a rendered form.

    ``label`` and ``value`` are what a person reads.  ``code`` is what
    travelled on the wire behind ``value`` (a code, a time, a bundle id), so a
    reader can quote it to the other side whatever their languages.  For
    free text, ``lang`` is its BCP 47 tag, ``original`` says whether it is in
    the language it was written in, ``translated_from`` names the original's
    language when the sender gave a translation, and ``note`` says all that in
    the reader's language.
    """

    field: str
    label: str
    value: str
    kind: str
    code: str | None = None
    lang: str | None = None
    original: bool | None = None
    translated_from: str | None = None
    note: str | None = None


def tlp_label(label: str) -> str:
    """``TLP:AMBER`` — the same in every language (TLP 2.0)."""
    return label if label.startswith("TLP:") else f"TLP:{label}"


def code_label(vocabulary: str, code: object, lang: str) -> str:
    """The catalogue label of ``code`` in ``vocabulary``; the code itself if unknown."""
    key = f"{vocabulary}:{code}"
    if isinstance(code, bool) or not has_message(key):
        return str(code)
    return translator(lang)(key)


def field_label(name: str, lang: str) -> str:
    """A form field's label; the field name itself if the catalogues lack it."""
    key = f"field:{name}"
    return translator(lang)(key) if has_message(key) else name


def format_time_for(value: str, lang: str) -> str:
    """A wire time for a reader: the locale's date, a 24-hour clock, and "UTC".

    Always UTC, so two officers in different time zones read out the same
    time on the phone; anything that is not a wire time is returned as it is.
    """
    try:
        when = parse_time(value)
    except EncodingError:
        return str(value)
    locale = Locale.parse(best_language(lang))
    date = format_skeleton("yMMMd", when, tzinfo=UTC, locale=locale)
    clock = format_skeleton("Hms", when, tzinfo=UTC, locale=locale)
    return f"{locale.datetime_formats['medium'].format(clock, date)} UTC"


def _free_text(name: str, label: str, value: Any, lang: str) -> Row:
    if not isinstance(value, Mapping) or not isinstance(value.get("text"), str):
        return _other(name, label, value)
    t = translator(lang)
    tag = str(value.get("lang") or "und")
    source = value.get("translated_from")
    if isinstance(source, str) and source:
        note = t(
            "translated by the sender; original language: {source} [{source_tag}]; "
            "this text: {language} [{tag}]"
        ).format(
            source=language_name(source, lang),
            source_tag=source,
            language=language_name(tag, lang),
            tag=tag,
        )
        return Row(name, label, value["text"], vocab.TEXT, None, tag, False, source, note)
    note = t("original language, not translated: {language} [{tag}]").format(
        language=language_name(tag, lang), tag=tag
    )
    return Row(name, label, value["text"], vocab.TEXT, None, tag, True, None, note)


def _other(name: str, label: str, value: Any) -> Row:
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return Row(name, label, shown, "other", shown)


def _row(name: str, value: Any, lang: str) -> Row:
    label = field_label(name, lang)
    kind, vocabulary = vocab.FIELD_KINDS.get(name, ("other", None))
    t = translator(lang)
    if kind == vocab.CODE and vocabulary is not None and not isinstance(value, (dict, list)):
        return Row(name, label, code_label(vocabulary, value, lang), kind, str(value))
    if kind == vocab.CODES and vocabulary is not None and isinstance(value, list):
        labels = [code_label(vocabulary, v, lang) for v in value]
        codes = ", ".join(str(v) for v in value)
        # Labels are separated, not joined into a sentence: each starts with a capital.
        return Row(name, label, "; ".join(labels), kind, codes)
    if kind == vocab.TIME and isinstance(value, str):
        return Row(name, label, format_time_for(value, lang), kind, value)
    if kind == vocab.ID and isinstance(value, str):
        return Row(name, label, value, kind, value)
    if kind == vocab.NUMBER and isinstance(value, int) and not isinstance(value, bool):
        shown = format_decimal(value, locale=best_language(lang))
        return Row(name, label, shown, kind, str(value))
    if kind == vocab.TEXT:
        return _free_text(name, label, value, lang)
    if kind == vocab.WRITTEN and isinstance(value, str):
        return Row(name, label, value, kind, None, note=t("as written by the sender"))
    if kind == vocab.WRITTEN_LIST and isinstance(value, list):
        shown = "; ".join(str(v) for v in value)
        return Row(name, label, shown, kind, None, note=t("as written by the sender"))
    if kind == vocab.STIX and isinstance(value, Mapping):
        objects = value.get("objects")
        count = len(objects) if isinstance(objects, list) else 0
        bundle_id = str(value.get("id", ""))
        shown = t("STIX 2.1 bundle {id}; objects: {count}").format(
            id=bundle_id, count=format_decimal(count, locale=best_language(lang))
        )
        return Row(name, label, shown, kind, bundle_id)
    if isinstance(value, Mapping) and "text" in value and "lang" in value:
        return _free_text(name, label, value, lang)  # free text in a field we do not know
    return _other(name, label, value)


def render_message(message_type: str, body: Mapping[str, Any], lang: str) -> list[Row]:
    """The rows of a form for a reader of ``lang``, in the form's field order.

    Fields the form does not define (or every field, for a type we do not
    know) follow, rendered by their shape: free text stays free text, anything
    else is shown as JSON.
    """
    order: list[str] = [name for name in FORMS.get(message_type, {}) if name in body]
    order += [name for name in body if name not in order]
    return [_row(name, body[name], lang) for name in order]
