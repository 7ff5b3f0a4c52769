"""The other commands' human output in the reader's language; the after-action report too.

The node's client API is answered by a stand-in (as in test_cli_show.py);
``init``, ``card`` and ``agreement`` run for real on temporary homes.
"""

from __future__ import annotations

import json
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ru_home import russian_home
from typer.testing import CliRunner

import detente.cli.main as cli
from detente.exercise import aar as aar_module
from detente.exercise.scenario import Expect
from detente.i18n import code_label, translator

MESSAGE_ID = "019a5f3e-8b7c-7d21-9f00-1234567890ab"
ROW = {
    "id": MESSAGE_ID,
    "from": "US-CISA",
    "to": "RU-NCCC",
    "type": "notification",
    "tlp": "AMBER",
    "case": MESSAGE_ID,
    "created": "2026-11-24T12:00:00.500Z",
    "delivery": "delivered",
    "exercise": True,
}
ALARM = {
    "kind": "fork",
    "peer": "US-CISA",
    "created": "2026-11-24T12:00:00.000Z",
    "detail": "two checkpoints of size 7",
}
ROUTES: dict[tuple[str, str], Any] = {
    ("GET", "/api/v1/messages"): [ROW],
    ("GET", "/api/v1/peers"): [
        {
            "id": "US-CISA",
            "name": "CISA",
            "role": "technical",
            "endpoint": "http://127.0.0.1:2",
            "witnessed_size": 7,
            "pending": 0,
        }
    ],
    ("GET", "/api/v1/alarms"): [ALARM],
    ("GET", "/api/v1/directory"): [
        {
            "agreement": "us-ru-2013",
            "version": 1,
            "title": "Соглашение",
            "ladder": [{"level": "technical", "after": None}, {"level": "senior", "after": 3600}],
            "contacts": [
                {
                    "party": "US-CISA",
                    "name": "CISA",
                    "role": "technical",
                    "languages": ["en"],
                    "hours": "24/7",
                    "endpoint": "http://127.0.0.1:2",
                }
            ],
        }
    ],
    ("POST", "/api/v1/ping"): {"round": "r1", "sent": [{"to": "US-CISA"}]},
    ("GET", "/api/v1/ping/report"): {
        "parties": [
            {
                "party": "US-CISA",
                "sent": 1,
                "answered": 1,
                "answer_seconds_median": 42.0,
                "answer_seconds_p90": 42.0,
                "unanswered": 0,
                "pending": 0,
            }
        ]
    },
    ("POST", "/api/v1/messages"): [{"id": MESSAGE_ID, "to": "US-CISA", "seq": 3}],
    ("POST", "/api/v1/tokens"): {"token": "s3cret"},
}


class FakeApi:
    def __init__(self, home: Path) -> None:
        self.home = home

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return ROUTES[(method, path)]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A node home whose first language is Russian (only its config is read)."""
    monkeypatch.setattr(cli, "ApiClient", FakeApi)
    monkeypatch.setenv("COLUMNS", "250")
    return russian_home(tmp_path)


def run(*args: str) -> str:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_inbox_in_russian_by_default(home: Path) -> None:
    out = run("inbox", "--home", str(home))
    ru = translator("ru")
    for heading in ("Inbox", "From", "Type", "Created", "Delivery"):
        assert ru(heading) in out
    assert "TLP:AMBER" in out  # never translated
    assert code_label("type", "notification", "ru") in out
    assert code_label("delivery", "delivered", "ru") in out
    assert "24 нояб. 2026\u202fг., 12:00:00 UTC" in out
    assert "Inbox" not in out and "notification" not in out


def test_inbox_in_arabic(home: Path) -> None:
    out = run("inbox", "--outgoing", "--home", str(home), "--lang", "ar")
    assert "الرسائل المرسلة" in out  # "Sent messages"
    assert code_label("type", "notification", "ar") in out
    assert "تمرين" in out  # EXERCISE


def test_json_stays_codes(home: Path) -> None:
    out = run("inbox", "--home", str(home), "--lang", "ar", "--json")
    assert json.loads(out) == [ROW]


@pytest.mark.parametrize("lang", ["ru", "ar"])
def test_peers_alarms_directory_ping(home: Path, lang: str) -> None:
    t = translator(lang)
    out = run("peers", "--home", str(home), "--lang", lang)
    for heading in ("Peers", "Name", "Endpoint", "Witnessed size", "Pending", "ALARM"):
        assert t(heading) in out
    out = run("alarms", "--home", str(home), "--lang", lang)
    assert "fork" in out and "two checkpoints of size 7" in out  # code and record as they are
    out = run("directory", "--home", str(home), "--lang", lang)
    for heading in ("Party", "Languages", "Hours"):
        assert t(heading) in out
    assert code_label("level", "senior", lang) in out
    assert "Соглашение" in out
    out = run("ping", "--agreement", "us-ru-2013", "--home", str(home), "--lang", lang)
    assert t("ping round {round} sent to: {parties}").format(round="r1", parties="US-CISA") in out
    out = run("ping", "--agreement", "x", "--report", "r1", "--home", str(home), "--lang", lang)
    for heading in ("Ping round {round}", "Median (s)", "Unanswered"):
        assert t(heading).format(round="r1") in out


def test_replies_send_and_token(home: Path) -> None:
    out = run("pong", MESSAGE_ID, "--officer", "Ivanov", "--home", str(home))
    assert f"{code_label('type', 'pong', 'ru')} {MESSAGE_ID}" in out
    assert "поставлено в очередь" in out
    out = run("ack", MESSAGE_ID, "--officer", "Ali", "--home", str(home), "--lang", "ar")
    assert code_label("type", "ack", "ar") in out
    # respond's --lang is the details' language; the reader's is --reader-lang.
    out = run(
        "respond", MESSAGE_ID, "--status", "completed", "--details", "done", "--lang", "en",
        "--home", str(home), "--reader-lang", "zh",
    )  # fmt: skip
    assert f"{code_label('type', 'response', 'zh')} {MESSAGE_ID} 已排队发送给 US-CISA" in out
    out = run("send", "--agreement", "a", "--type", "ping", "--body", "{}", "--home", str(home))
    assert "порядковый номер 3" in out
    out = run("token", "add", "Ivanov", "--home", str(home), "--lang", "ar")
    assert code_label("role", "officer", "ar") in out and "s3cret" in out


def test_init_card_and_agreement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    one, two = tmp_path / "one", tmp_path / "two"
    out = run("init", "--id", "RU-NCCC", "--name", "ru=НКЦКИ", "--lang", "ru", "--home", str(one))
    assert "узел RU-NCCC создан" in out and "Отпечаток ключа" in out
    run("init", "--id", "US-CISA", "--name", "en=CISA", "--home", str(two))
    out = run("card", "--home", str(one), "--lang", "ar")
    assert "بطاقة الطرف RU-NCCC" in out and "البصمة" in out
    agreement = tmp_path / "a.json"
    out = run(
        "agreement", "create", "--id", "us-ru", "--title", "en=Hotline", "--title",
        "ru=Горячая линия", "--member", str(one / "card.json"), "--member",
        str(two / "card.json"), "--out", str(agreement), "--lang", "hi",
    )  # fmt: skip
    assert "हर सदस्य" in out
    out = run("agreement", "sign", str(agreement), "--home", str(one))
    assert "ещё должны подписать: US-CISA" in out
    out = run("agreement", "show", str(agreement), "--lang", "ru")
    assert "us-ru@1: Горячая линия" in out  # the title in the reader's language
    assert "Участник" in out and "Подписано" in out and "наивысший TLP: TLP:AMBER" in out
    out = run("agreement", "show", str(agreement), "--lang", "vi")
    assert "us-ru@1: Hotline" in out and "Thành viên" in out


# -- the after-action report -------------------------------------------------------------

START = "2021-11-04T08:00:00.000Z"


def _result() -> Any:
    """A RunResult from made-up figures: two parties, one notification, one escalation."""
    scenario = types.SimpleNamespace(
        name="UN points-of-contact ping test",
        source="seeds/003",
        parties=[types.SimpleNamespace(id="UN-ODA"), types.SimpleNamespace(id="RU-NCCC")],
        expect=Expect(lost=0, escalations=1, ack_met=1),  # ack_met: not met, on purpose
    )
    tracked = {
        "message": "m1",
        "type": "notification",
        "direction": "out",
        "counterparty": "RU-NCCC",
        "sent": START,
        "delivered": "2021-11-04T08:00:00.040Z",
        "acknowledged": "2021-11-04T08:40:00.000Z",
        "answered": None,
        "ack_due": "2021-11-04T08:30:00.000Z",
        "answer_due": None,
    }
    event = {
        "at": "2021-11-04T08:31:00.000Z",
        "kind": "escalation:senior",
        "detail": "UN-ODA escalated to senior (ack-overdue)",
    }
    nodes = {
        "UN-ODA": {
            "cases": [{"case": "c1", "tracked": [tracked], "events": [event]}],
            "messages": [
                {"id": "m1", "direction": "out", "to": "RU-NCCC", "type": "notification",
                 "created": START}
            ],
        },
        "RU-NCCC": {
            "cases": [],
            "messages": [
                {"id": "m1", "direction": "in", "to": "RU-NCCC", "type": "notification",
                 "created": START}
            ],
        },
    }  # fmt: skip
    return types.SimpleNamespace(
        scenario=scenario,
        start=datetime(2021, 11, 4, 8, tzinfo=UTC),
        end=datetime(2021, 11, 4, 11, tzinfo=UTC),
        nodes=nodes,
        reports={"UN-ODA->RU-NCCC": {"ok": True, "items": 1}},
        injected=[],
        officer_actions=[],
        wall_seconds=41.3,
    )


def test_aar_in_russian(tmp_path: Path) -> None:
    data, failures = aar_module.write_aar(_result(), tmp_path, lang="ru")
    assert failures  # the made-up expectation
    t = translator("ru")
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "# EXERCISE / УЧЕНИЯ — "
        + t("After-action report: {scenario}").format(scenario="UN points-of-contact ping test"),
        "## " + t("Escalations"),
        "## " + t("Audit per report"),
        "## " + t("Expectations"),
        "## " + t("Charts"),
    ]
    for label in (
        "Measure",
        "Messages lost",
        "Acknowledgements in time / late or missing",
        "Time from sending to",
        "a person's acknowledgement",
        "Exercise traffic only; nothing here is a real incident.",
    ):
        assert t(label) in text
    assert t("Not met: {failure}").format(failure=failures[0]) in text
    assert "4 нояб. 2021\u202fг., 08:31:00 UTC UN-ODA escalated to senior" in text
    assert "40,0 мин" in text  # the time to acknowledgement, in Russian units and decimals
    assert "| measure |" not in text and "Escalations" not in text
    # report.json stays language-neutral.
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["escalation_list"][0]["kind"] == "escalation:senior"
    assert saved["start"] == data["start"] == START
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "timeline.png",
        "times.png",
        "deadlines.png",
    }


@pytest.mark.parametrize("lang", ["ar", "zh", "hi", "vi", "en"])
def test_aar_other_languages_draw_without_missing_glyphs(tmp_path: Path, lang: str) -> None:
    # pytest turns warnings into errors: a glyph matplotlib's font lacks would fail here.
    aar_module.write_aar(_result(), tmp_path, lang=lang)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    t = translator(lang)
    assert text.startswith("# EXERCISE")
    assert f"## {t('Audit per report')}" in text
    assert aar_module.chart_language(lang) == (lang if lang in ("vi", "en") else "en")
