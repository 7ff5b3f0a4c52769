"""The duty officer's console: the hotline in a browser, in eight languages.

Server-rendered pages (Jinja2) on the node's own ASGI app under ``/console``,
with progressive enhancement: every page works with plain links and forms;
a small script of our own (``static/console.js``, no third-party code) adds
live updates over server-sent events and deadline countdowns.

- :mod:`.accounts` — officer accounts (Argon2id), lock-out, sessions, the
  record of what each officer did;
- :mod:`.views` — what the pages show: inbox groups and next steps, cases
  with their timeline, proof status, ladder; directory; log status;
- :mod:`.compose` — form fields to message bodies, errors to fields;
- :mod:`.live` — the change feed behind live updates;
- :mod:`.web` — routes, cookies, CSRF, security headers.

The console uses the REST API's service layer (:class:`detente.node.service.Node`)
and the CLI's catalogues (:mod:`detente.i18n`); no business rule lives in a
template.  Officer accounts are made with ``detente officer add``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detente.node.service import Node

__all__ = ["install_console"]


def install_console(app: Any, node: Callable[[], Node], state: Mapping[str, Any]) -> None:
    """Mount the console at ``/console`` on the node's app (``api.app.create_app``).

    Imported on call, so that ``detente officer`` and other commands that
    only need :mod:`.accounts` do not load the web stack.
    """
    from detente.console.web import install_console as install  # noqa: PLC0415

    install(app, node, state)
