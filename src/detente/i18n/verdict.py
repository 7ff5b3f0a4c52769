"""An audit verdict in the reader's language.

:mod:`detente.audit` judges a report and states each item's verdict in
English; :func:`verdict_sentence` says the same thing in any catalogue
language from the same proven facts, clause by clause, so that no sentence is
assembled from fragments whose order only suits English.  Times are formatted
for the reader (in UTC) and a response status is shown by its catalogue label.

Not here: the judging (``audit``), which never depends on a language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detente.i18n.catalogue import translator
from detente.i18n.render import code_label, format_time_for

__all__ = ["verdict_sentence"]


def verdict_sentence(
    proven: Mapping[str, Any],
    officer: str | None,
    lang: str,
    *,
    ack_due: str | None = None,
    answer_due: str | None = None,
    receipt_ok: bool = True,
    withheld: bool = False,
) -> str:
    """What ``proven`` (``delivered``, ``acknowledged``, ``answered``, ``status``)
    establishes about one item, as clauses joined by "; "."""
    t = translator(lang)

    def when(value: Any) -> str:
        return format_time_for(str(value), lang)

    clauses: list[str] = []
    if proven.get("delivered") is None:
        clauses.append(t("never delivered: no receipt"))
        if ack_due:
            clauses.append(t("acknowledgement was due {due}").format(due=when(ack_due)))
        return "; ".join(clauses)
    clauses.append(t("delivered at {at}").format(at=when(proven["delivered"])))
    if not receipt_ok:
        clauses.append(t("no receipt; an answer proves delivery"))
    if proven.get("acknowledged") is not None:
        at = when(proven["acknowledged"])
        clauses.append(
            t("acknowledged at {at} by {officer}").format(at=at, officer=officer)
            if officer
            else t("acknowledged at {at}").format(at=at)
        )
    else:
        clauses.append(t("never acknowledged"))
        if ack_due:
            clauses.append(t("due {due}").format(due=when(ack_due)))
    if proven.get("answered") is not None:
        status = proven.get("status")
        shown = code_label("status", status, lang) if status else t("answered")
        clauses.append(
            t("answered ({status}) at {at}").format(status=shown, at=when(proven["answered"]))
        )
    elif answer_due:
        clauses.append(t("no answer (due {due})").format(due=when(answer_due)))
    if withheld:
        clauses.append(t("the answer's content is withheld under its handling labels"))
    return "; ".join(clauses)
