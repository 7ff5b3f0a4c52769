"""The message catalogues: loading, the reader's language, per-language values.

One gettext catalogue per language (domain ``detente``) lives as a ``.po``
file in ``locales/<lang>/LC_MESSAGES/``.  The ``.po`` files are read at run
time with Babel — parsed with :func:`babel.messages.pofile.read_po`, compiled
in memory with :func:`babel.messages.mofile.write_mo` and opened as
:class:`babel.support.Translations` — once per language and cached, so an
installation needs no compile step and ships only the ``.po`` sources.

Every catalogue falls back to English, and English falls back to the msgid:
a message missing from (or fuzzy in) a catalogue is shown in English, never
machine-translated.  Codes have keys ``vocabulary:code`` (see the catalogue
header); :func:`has_message` says whether a key exists, so that an unknown
code can be shown as the code itself.

TLP labels are deliberately absent from the catalogues: FIRST TLP 2.0 requires
them in English capitals (``TLP:CLEAR``, ``TLP:GREEN``, ``TLP:AMBER``,
``TLP:AMBER+STRICT``, ``TLP:RED``) whatever the reader's language.

Not here: what a form's fields mean (:mod:`detente.i18n.render`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from io import BytesIO
from typing import IO

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

__all__ = [
    "DOMAIN",
    "FALLBACK",
    "SUPPORTED",
    "best_language",
    "has_message",
    "is_rtl",
    "language_name",
    "load_catalogue",
    "pick",
    "translations_from_po",
    "translator",
]

DOMAIN = "detente"
# The six UN languages, plus Hindi and Vietnamese.
SUPPORTED = ("ar", "zh", "en", "fr", "ru", "es", "hi", "vi")
FALLBACK = "en"


def _normalise(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def best_language(
    requested: str | Iterable[str] | None, available: Iterable[str] = SUPPORTED
) -> str:
    """The element of ``available`` that best serves a reader asking for ``requested``.

    ``requested`` is one BCP 47 tag or several in order of preference.  Each
    is matched by RFC 4647 lookup (drop subtags from the right: ``zh-Hans-CN``
    → ``zh-Hans`` → ``zh``; ``ar-EG`` → ``ar``), then by its primary language
    against a more specific available tag (``zh`` → ``zh-Hans``).  Matching is
    case-insensitive and accepts ``_`` for ``-``.  With no match: English if
    available, else the first available.
    """
    choices = list(available)
    if not choices:
        raise ValueError("no languages to choose from")
    by_tag = {_normalise(a): a for a in choices}
    wanted = [requested] if isinstance(requested, str) else list(requested or ())
    for tag in wanted:
        parts = _normalise(tag).split("-")
        if not parts[0]:
            continue
        for end in range(len(parts), 0, -1):
            found = by_tag.get("-".join(parts[:end]))
            if found is not None:
                return found
        for norm, original in by_tag.items():
            if norm.split("-")[0] == parts[0]:
                return original
    return by_tag.get(FALLBACK, choices[0])


def pick(values_by_lang: Mapping[str, str], lang: str) -> str:
    """A per-language value (a party's name, an agreement's title) for a reader.

    The reader's language if present (matched as :func:`best_language` does,
    so ``ru-RU`` finds ``ru``), else English, else the first value; ``""`` if
    there are none.
    """
    if not values_by_lang:
        return ""
    return values_by_lang[best_language(lang, values_by_lang.keys())]


def _locale(tag: str) -> Locale | None:
    try:
        return Locale.parse(tag.replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def is_rtl(lang: str) -> bool:
    """Whether ``lang`` is written right to left (Arabic, Persian, Hebrew, Urdu …).

    From the CLDR data Babel ships; an unknown tag is taken as left to right.
    """
    locale = _locale(lang)
    return locale is not None and locale.text_direction == "rtl"


def language_name(tag: str, reader: str) -> str:
    """The name of the language ``tag`` in the ``reader``'s language, from CLDR.

    The tag itself when CLDR does not know it (the tag is what travels).
    """
    locale, shown_in = _locale(tag), _locale(reader) or Locale.parse(FALLBACK)
    if locale is None:
        primary = _normalise(tag).split("-")[0]
        return str(shown_in.languages.get(primary, tag))
    return locale.get_display_name(shown_in) or tag


def _po_resource(lang: str) -> resources.abc.Traversable:
    return resources.files(__package__).joinpath("locales", lang, "LC_MESSAGES", f"{DOMAIN}.po")


def load_catalogue(lang: str) -> Catalog:
    """The parsed ``.po`` catalogue of a supported language (for checks and tools)."""
    if lang not in SUPPORTED:
        raise ValueError(f"no catalogue for {lang!r}; catalogues: {', '.join(SUPPORTED)}")
    with _po_resource(lang).open("rb") as po:
        return read_po(po, locale=lang, domain=DOMAIN)


def translations_from_po(po: IO[bytes], lang: str, fallback: Translations | None) -> Translations:
    """Compile a ``.po`` file in memory and open it; fuzzy and empty entries are left
    out (so they fall back to ``fallback``)."""
    catalogue = read_po(po, locale=lang, domain=DOMAIN)
    mo = BytesIO()
    write_mo(mo, catalogue, use_fuzzy=False)
    mo.seek(0)
    translations = Translations(mo, domain=DOMAIN)
    if fallback is not None:
        translations.add_fallback(fallback)
    return translations


@functools.cache
def _translations(lang: str) -> Translations:
    fallback = None if lang == FALLBACK else _translations(FALLBACK)
    with _po_resource(lang).open("rb") as po:
        return translations_from_po(po, lang, fallback)


@functools.cache
def _english_ids() -> frozenset[str]:
    return frozenset(str(m.id) for m in load_catalogue(FALLBACK) if m.id)


def has_message(msgid: str) -> bool:
    """Whether the catalogues know ``msgid`` (the English catalogue is the reference)."""
    return msgid in _english_ids()


def translator(lang: str) -> Callable[[str], str]:
    """``gettext`` for a reader: the best supported catalogue for ``lang``.

    ``translator("ru-RU")("type:request")`` is ``"Запрос"``; a message missing
    from the catalogue comes back in English, and one unknown to English as
    the msgid itself.
    """
    return _translations(best_language(lang)).gettext
