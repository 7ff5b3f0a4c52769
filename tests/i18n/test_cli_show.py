"""`detente show --lang`, in process: the node's client API answered by a stand-in.

The end-to-end run against real node processes is tests/cli/test_show_lang.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ru_home import russian_home
from typer.testing import CliRunner

import detente.cli.main as cli

MESSAGE_ID = "019a5f3e-8b7c-7d21-9f00-1234567890ab"
BODY = {
    "category": "ransomware",
    "severity": 4,
    "observed": "2026-11-24T12:00:00.000Z",
    "activity": {"lang": "en", "text": "C2 servers [bold]at[/bold] 203.0.113.7"},
    "concern": "infrastructure-in-your-jurisdiction",
    "requested_actions": ["takedown"],
}
DETAIL: dict[str, Any] = {
    "id": MESSAGE_ID,
    "direction": "in",
    "agreement": "us-ru-2013@1",
    "from": "US-CISA",
    "to": "RU-NCCC",
    "seq": 1,
    "created": "2026-11-24T12:00:00.500Z",
    "type": "notification",
    "tlp": "AMBER",
    "case": MESSAGE_ID,
    "reply_to": None,
    "exercise": True,
    "log_index": 3,
    "stored": "2026-11-24T12:00:01.000Z",
    "delivery": None,
    "envelope_hash": "ab" * 32,
    "content": {"type": "notification", "tlp": "AMBER", "personal_data": False, "body": BODY},
    "receipt": {"received": "2026-11-24T12:00:01.000Z", "log_index": 3},
}


class FakeApi:
    def __init__(self, home: Path) -> None:
        self.home = home

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        assert (method, path) == ("GET", f"/api/v1/messages/{MESSAGE_ID}")
        return DETAIL


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node home whose first language is Russian (only its config is read)."""
    monkeypatch.setattr(cli, "ApiClient", FakeApi)
    monkeypatch.setenv("COLUMNS", "200")
    return russian_home(tmp_path)


def show(home: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli.app, ["show", MESSAGE_ID, "--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result


def test_default_is_the_nodes_first_language(home: Path) -> None:
    out = show(home).stdout
    assert "Сообщение " + MESSAGE_ID in out
    assert "Программа-вымогатель" in out and "(ransomware)" in out
    assert "Серьёзный" in out and "(4)" in out
    assert "Входящее" in out
    assert "TLP:AMBER" in out  # never translated
    assert "EXERCISE / УЧЕНИЯ" in out
    # Free text exactly as sent (Rich markup in it is not interpreted), with its tag.
    assert "C2 servers [bold]at[/bold] 203.0.113.7" in out
    assert "язык оригинала, без перевода: английский [en]" in out
    # The receipt's time, for a Russian reader (CLDR puts a narrow no-break space before "г.").
    assert "получено 24 нояб. 2026\u202fг., 12:00:01 UTC" in out
    assert "Category" not in out


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("ar", ["برمجيات الفدية", "الإنجليزية [en]", "TLP:AMBER"]),
        ("hi", ["रैनसमवेयर", "अंग्रेज़ी [en]", "गंभीर"]),
        ("zh-Hans", ["勒索软件", "英语 [en]", "严重"]),
        ("en", ["Ransomware", "English [en]", "Severe", "EXERCISE"]),
    ],
)
def test_lang_option(home: Path, lang: str, words: list[str]) -> None:
    out = show(home, "--lang", lang).stdout
    for word in words:
        assert word in out
    assert "C2 servers [bold]at[/bold] 203.0.113.7" in out


def test_unknown_language_says_so_and_shows_english(home: Path) -> None:
    result = show(home, "--lang", "tlh")
    assert "Ransomware" in result.stdout
    assert "no catalogue for tlh; shown in en" in result.stderr


def test_json_is_unchanged(home: Path) -> None:
    out = show(home, "--lang", "ru", "--json").stdout
    assert json.loads(out) == DETAIL  # codes, as on the wire
