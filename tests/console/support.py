"""Helpers for the console tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from detente.core.agreement import Agreement
from node.cluster import NodeProc

AGREEMENT = "test-agreement"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account
HOUR = 3600
# name: (role, language, how they sign)
OFFICERS = {
    "sharma": ("officer", "hi", "Duty officer Sharma"),
    "amira": ("supervisor", "ar", "Amira Haddad"),
    "vikram": ("viewer", "en", "Vikram Rao"),
    "lockme": ("officer", "en", "Locked Out"),
    "tester": ("officer", "en", "Test Officer"),
    "looker": ("viewer", "fr", "Claire Martin"),
    "lockhttp": ("officer", "en", "Locked Over HTTP"),
}
USED_ARTEFACTS: list[Path] = []


def artefacts_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "detente-artefacts"
    root = Path(os.environ.get("DETENTE_ARTEFACTS") or default)
    path = root / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_path() -> str | None:
    """Debian's Chromium (or DETENTE_CHROMIUM); never a downloaded browser."""
    for candidate in (os.environ.get("DETENTE_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def add_officer(
    home: Path, name: str, role: str, lang: str, full_name: str
) -> subprocess.Popen[str]:
    """``detente officer add`` as an administrator types it (password on stdin)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "detente",
            "officer",
            "add",
            name,
            "--role",
            role,
            "--lang",
            lang,
            "--full-name",
            full_name,
            "--password-stdin",
            "--home",
            str(home),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(PASSWORD + "\n")
    proc.stdin.close()
    return proc


@dataclass
class Hotline:
    """Two real nodes on loopback with manual clocks; officers on IN-CERTIN's console."""

    us: NodeProc
    inn: NodeProc
    agreement: Agreement
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def console(self) -> str:
        return f"{self.inn.base}/console"

    def advance(self, seconds: float) -> None:
        """Move both clocks together, then let each run what fell due (twice: the
        second pass delivers what the first one's work sent)."""
        for n in (self.us, self.inn):
            n.call("POST", "/api/v1/clock", json={"advance": seconds, "tick": False})
        for _ in range(2):
            for n in (self.us, self.inn):
                n.call("POST", "/api/v1/clock", json={"advance": 0})

    def now(self) -> str:
        return str(self.us.call("POST", "/api/v1/clock", json={"advance": 0, "tick": False})["now"])

    def tracked(self, node: NodeProc, message_id: str) -> dict[str, Any] | None:
        for case in node.call("GET", "/api/v1/cases", params={"limit": 1000}):
            detail: dict[str, Any] = node.call("GET", f"/api/v1/cases/{case['case']}")
            for t in detail["tracked"]:
                if t["message"] == message_id:
                    return t
        return None


def sign_in(client: httpx.Client, base: str, name: str, password: str = PASSWORD) -> httpx.Response:
    """Sign in over plain HTTP (the browser-free tests): fetch the form, post it."""
    page = client.get(f"{base}/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None, page.text
    return client.post(
        f"{base}/console/login",
        data={"csrf": token.group(1), "name": name, "password": password, "next": "/console/inbox"},
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)
