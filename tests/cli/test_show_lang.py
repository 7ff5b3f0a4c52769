"""`detente show --lang` end to end: two real node processes, the reader's language.

The Russian node is created with Russian as its working language, so `show`
without --lang renders in Russian; --lang picks another catalogue; --json
stays machine-readable.  Nodes are started as tests/cli/test_cli.py does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from detente.cli.demo import free_port

FORM = {
    "category": "ransomware",
    "severity": 4,
    "observed": "2026-11-24T12:00:00.000Z",
    "activity": {"lang": "en", "text": "C2 servers of a ransomware operation at 203.0.113.7"},
    "concern": "infrastructure-in-your-jurisdiction",
    "requested_actions": ["takedown"],
}


def detente(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "detente", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert result.returncode == 0, f"detente {' '.join(args)}: {result.stderr}"
    return result


def detente_json(*args: str) -> Any:
    return json.loads(detente(*args, "--json").stdout)


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[dict[str, Path]]:
    homes = {}
    for pid, name, lang in (
        ("US-CISA", "en=CISA", "en"),
        ("RU-NCCC", "ru=НКЦКИ", "ru"),
    ):
        home = tmp_path / pid
        detente(
            "init",
            "--home",
            str(home),
            "--id",
            pid,
            "--name",
            name,
            "--country",
            pid[:2],
            "--lang",
            lang,
            "--port",
            str(free_port()),
        )
        homes[pid] = home
    cards = []
    for pid, home in homes.items():
        card = tmp_path / f"{pid}.card.json"
        card.write_text(detente("card", "--home", str(home), "--json").stdout)
        cards.append(card)
    agreement = tmp_path / "agreement.json"
    detente(
        "agreement",
        "create",
        "--id",
        "us-ru-2013",
        "--title",
        "en=Cyber CBMs",
        "--title",
        "ru=Меры доверия",
        "--member",
        str(cards[0]),
        "--member",
        str(cards[1]),
        "--out",
        str(agreement),
    )
    for home in homes.values():
        detente("agreement", "sign", str(agreement), "--home", str(home))
    for home in homes.values():
        detente("agreement", "install", str(agreement), "--home", str(home))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "detente", "serve", "--home", str(home)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for home in homes.values()
    ]
    try:
        for home in homes.values():
            port = json.loads((home / "config.json").read_text())["listen_port"]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
        yield homes
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def test_show_in_the_readers_language(two_nodes: dict[str, Path]) -> None:
    us, ru = str(two_nodes["US-CISA"]), str(two_nodes["RU-NCCC"])
    sent = detente_json(
        "send", "--home", us, "--agreement", "us-ru-2013", "--type", "notification",
        "--tlp", "AMBER", "--body", json.dumps(FORM),
    )  # fmt: skip
    message_id = sent[0]["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if detente_json("show", message_id, "--home", us)["delivery"] == "delivered":
            break
        time.sleep(0.2)

    # The Russian node's first language is Russian: the default.
    out = detente("show", message_id, "--home", ru).stdout
    assert "Программа-вымогатель" in out and "(ransomware)" in out
    assert "Серьёзный" in out
    assert "Входящее" in out
    assert "TLP:AMBER" in out
    assert FORM["activity"]["text"] in out  # type: ignore[index]
    assert "язык оригинала, без перевода: английский [en]" in out

    # Another reader on the same node.
    out = detente("show", message_id, "--home", ru, "--lang", "zh-Hans").stdout
    assert "勒索软件" in out and "英语 [en]" in out
    out = detente("show", message_id, "--home", ru, "--lang", "ar").stdout
    assert "برمجيات الفدية" in out and "TLP:AMBER" in out

    # The sender's node reads its own copy in English; JSON stays codes.
    out = detente("show", message_id, "--home", us).stdout
    assert "Ransomware" in out and "Delivered (receipt received)" in out
    shown = detente_json("show", message_id, "--home", ru, "--lang", "ru")
    assert shown["content"]["body"] == FORM
    assert shown["type"] == "notification"
