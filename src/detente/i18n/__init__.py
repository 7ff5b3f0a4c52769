"""Languages: message catalogues and rendering in the reader's language.

Catalogues for the six UN languages (Arabic, Chinese, English, French,
Russian, Spanish) plus Hindi and Vietnamese (``SUPPORTED``), read at run time
from the ``.po`` files in ``locales/`` with Babel.  Forms carry
language-neutral codes; :func:`render_message` shows them in the reader's
language through the catalogues — never through machine translation — and
shows free text in its original language with its tag (DESIGN.md principle 5).

- :func:`translator` — ``gettext`` for a language, falling back to English;
- :func:`best_language` — BCP 47 matching (``zh-Hans`` → ``zh``, ``ar-EG`` → ``ar``);
- :func:`is_rtl` — right-to-left scripts;
- :func:`pick` — a per-language value (party names, agreement titles);
- :func:`render_message` → :class:`Row` — a form for a reader;
- :func:`verdict_sentence` — an audit verdict for a reader.

TLP labels are never translated (TLP 2.0): see :func:`tlp_label`.
"""

from __future__ import annotations

from detente.i18n.catalogue import (
    DOMAIN,
    FALLBACK,
    SUPPORTED,
    best_language,
    has_message,
    is_rtl,
    language_name,
    load_catalogue,
    pick,
    translator,
)
from detente.i18n.render import (
    Row,
    code_label,
    field_label,
    format_time_for,
    render_message,
    tlp_label,
)
from detente.i18n.verdict import verdict_sentence

__all__ = [
    "DOMAIN",
    "FALLBACK",
    "SUPPORTED",
    "Row",
    "best_language",
    "code_label",
    "field_label",
    "format_time_for",
    "has_message",
    "is_rtl",
    "language_name",
    "load_catalogue",
    "pick",
    "render_message",
    "tlp_label",
    "translator",
    "verdict_sentence",
]
