"""Console tests: real node processes on loopback, officers made with the CLI, a real browser.

The browser is Debian's Chromium (``apt-get install chromium``; ``.ci/run``
installs it when missing), driven by Playwright for Python through
``executable_path`` — headless, no sandbox, and no browser download ever.
Without Chromium (or Playwright) the browser tests are skipped, saying why;
the HTTP-level tests run regardless.

Screenshots and other artefacts go to ``$DETENTE_ARTEFACTS/console`` (default:
``<tmp>/detente-artefacts/console``); the path is printed at the end of the run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from console.support import (
    HOUR,
    OFFICERS,
    USED_ARTEFACTS,
    Hotline,
    add_officer,
    artefacts_dir,
)
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.core.timefmt import format_time
from detente.node.clock import SystemClock
from node.cluster import make_cluster


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if USED_ARTEFACTS:
        names = ", ".join(sorted(p.name for p in USED_ARTEFACTS[0].iterdir()))
        terminalreporter.write_line(
            f"console screenshots and artefacts: {USED_ARTEFACTS[0]} ({names})"
        )


@pytest.fixture(scope="session")
def artefacts() -> Path:
    path = artefacts_dir()
    for old in path.glob("*.png"):
        old.unlink()
    USED_ARTEFACTS.append(path)
    return path


@pytest.fixture(scope="session")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hotline]:
    policy = Policy(
        message_types=frozenset(MESSAGE_TYPES),
        max_tlp="AMBER",
        ack_deadline=4 * HOUR,
        pong_deadline=HOUR,
    )
    workdir = tmp_path_factory.mktemp("console")
    nodes, agreement = make_cluster(
        workdir, ["US-CISA", "IN-CERTIN"], policy=policy, valid_for=timedelta(days=365)
    )
    us, inn = nodes["US-CISA"], nodes["IN-CERTIN"]
    procs = [
        add_officer(inn.home.path, name, role, lang, full)
        for name, (role, lang, full) in OFFICERS.items()
    ]
    for proc in procs:
        out = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
        assert proc.wait(timeout=60) == 0, out
        assert "sign in at /console" in re.sub(r"\s+", " ", out), out
    start = format_time(SystemClock().now())
    for n in (us, inn):
        n.extra_args = ["--manual-clock", start]
    try:
        for n in (us, inn):
            n.start()
        yield Hotline(us, inn, agreement)
    finally:
        for n in (us, inn):
            n.stop()
