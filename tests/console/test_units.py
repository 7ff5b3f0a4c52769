"""The console's parts in process: accounts and lock-out, the inbox's groups, compose.

No server, no browser: officers on a fresh database with an injected wall
clock; two in-process nodes exchanging messages by function call (as
``detente exercise scale`` does) for the inbox; compose's form handling on
plain values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from detente.cli.main import app as cli
from detente.console import compose, views
from detente.console.accounts import LOCK_SECONDS, MAX_FAILURES, SESSION_SECONDS, Officers
from detente.core.agreement import Agreement
from detente.core.envelope import Content
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.errors import EncodingError
from detente.exercise.inprocess import _deliver
from detente.node.clock import FakeClock, to_ms
from detente.node.config import NodeHome
from detente.node.service import Node
from detente.store.db import migrate, open_engine
from detente.store.schema import officers as officers_t
from detente.store.schema import tracked
from forms_examples import notification

PASSWORD = "a long enough password"  # noqa: S105 - a test account


class Wall:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def accounts(db_url_factory: Callable[[str], str]) -> Iterator[tuple[Officers, Wall]]:
    engine = open_engine(db_url_factory("officers"))
    migrate(engine)
    wall = Wall()
    try:
        yield Officers(engine, now=wall), wall
    finally:
        engine.dispose()


def test_passwords_are_argon2id_and_accounts_are_checked(accounts: tuple[Officers, Wall]) -> None:
    officers, _ = accounts
    officers.add("ivanova", "Duty officer Ivanova", "officer", "ru", PASSWORD)
    with officers.engine.connect() as conn:
        stored = conn.execute(select(officers_t.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    for bad in (
        lambda: officers.add("ivanova", "x", "officer", "en", PASSWORD),  # exists
        lambda: officers.add("Bad Name", "x", "officer", "en", PASSWORD),
        lambda: officers.add("li", "x", "general", "en", PASSWORD),
        lambda: officers.add("li", "x", "officer", "de", PASSWORD),
        lambda: officers.add("li", "x", "officer", "en", "short"),
    ):
        with pytest.raises(EncodingError):
            bad()


def test_sign_in_sessions_and_lockout(accounts: tuple[Officers, Wall]) -> None:
    officers, wall = accounts
    officers.add("sokolov", "Duty officer Sokolov", "supervisor", "ru", PASSWORD)
    ok = officers.sign_in("sokolov", PASSWORD)
    assert ok.outcome == "ok" and ok.token is not None
    found = officers.session(ok.token)
    assert found is not None and found[0].full_name == "Duty officer Sokolov" and found[1]
    assert officers.session("not-a-token") is None

    results = [officers.sign_in("sokolov", f"wrong {i}") for i in range(MAX_FAILURES)]
    assert [r.outcome for r in results] == ["wrong"] * (MAX_FAILURES - 1) + ["locked"]
    assert [r.failures_left for r in results[:2]] == [MAX_FAILURES - 1, MAX_FAILURES - 2]
    assert officers.session(ok.token) is None  # locking ends the sessions
    assert officers.sign_in("sokolov", PASSWORD).outcome == "locked"
    wall.t += LOCK_SECONDS + 1
    again = officers.sign_in("sokolov", PASSWORD)
    assert again.outcome == "ok" and again.token is not None

    # A role change is seen at the next request; a session ends after a shift.
    officers.set_role("sokolov", "viewer")
    session = officers.session(again.token)
    assert session is not None and session[0].role == "viewer"
    wall.t += SESSION_SECONDS + 1
    assert officers.session(again.token) is None

    # An admin lifts a lock at once; disabling ends sessions and refuses sign-in.
    for i in range(MAX_FAILURES):
        officers.sign_in("sokolov", f"wrong again {i}")
    officers.unlock("sokolov")
    fresh = officers.sign_in("sokolov", PASSWORD)
    assert fresh.outcome == "ok" and fresh.token is not None
    officers.set_disabled("sokolov", True)
    assert officers.session(fresh.token) is None
    assert officers.sign_in("sokolov", PASSWORD).outcome == "disabled"
    assert officers.sign_in("nobody", PASSWORD).outcome == "wrong"
    actions = [a["action"] for a in officers.actions("sokolov")]
    assert {"sign-in", "sign-in-failed", "locked", "account-changed"} <= set(actions)


def test_officer_cli(tmp_path: Path) -> None:
    NodeHome.init(tmp_path / "node", party_id="RU-NCCC", names={"en": "NCCC"}, country="RU")
    home = ["--home", str(tmp_path / "node")]
    runner = CliRunner()
    added = runner.invoke(
        cli,
        [
            "officer",
            "add",
            "li",
            "--role",
            "officer",
            "--full-name",
            "Li Wei",
            "--lang",
            "zh",
            "--password-stdin",
            *home,
        ],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert "officer li (Li Wei), role officer, language zh" in " ".join(added.output.split())
    short = runner.invoke(cli, ["officer", "add", "x1", "--password-stdin", *home], input="x\n")
    assert short.exit_code != 0
    assert runner.invoke(cli, ["officer", "set-role", "li", "supervisor", *home]).exit_code == 0
    listed = runner.invoke(cli, ["officer", "list", "--json", *home])
    rows = json.loads(listed.output)
    assert [(r["name"], r["role"], r["lang"], r["locked"]) for r in rows] == [
        ("li", "supervisor", "zh", False)
    ]


# -- the inbox ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Node, FakeClock]]:
    root = tmp_path_factory.mktemp("pair")
    clock = FakeClock(datetime(2026, 11, 24, 12, tzinfo=UTC))
    homes = [
        NodeHome.init(root / pid, party_id=pid, names={"en": pid}, country=pid[:2], listen_port=1)
        for pid in ("US-CISA", "IN-CERTIN")
    ]
    agreement = Agreement(
        id="pair",
        version=1,
        titles={"en": "pair"},
        members=tuple(h.card() for h in homes),
        policy=Policy(frozenset(MESSAGE_TYPES), max_tlp="AMBER"),
        valid_from=clock.now() - timedelta(days=1),
        valid_until=clock.now() + timedelta(days=30),
    )
    for h in homes:
        agreement = agreement.sign(h.config().party_id, h.keys())
    us, inn = (Node(h, clock=clock) for h in homes)
    try:
        for n in (us, inn):
            n.install_agreement(agreement)
        yield us, inn, clock
    finally:
        us.close()
        inn.close()


def _rows(node: Node) -> list[dict[str, Any]]:
    with node.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(tracked))]


def test_inbox_groups_sort_and_filter(pair: tuple[Node, Node, FakeClock]) -> None:
    us, inn, clock = pair
    sent = {}
    for name, severity in (("low", 1), ("urgent", 5), ("acked", 3)):
        (env,) = us.send(
            Content("notification", "AMBER", notification(name, severity=severity)),
            ["IN-CERTIN"],
            "pair",
        )
        sent[name] = env.id
    (ping,) = us.send(Content("ping", "CLEAR", {"round": "r1"}), ["IN-CERTIN"], "pair")
    (drill,) = us.send(
        Content("notification", "GREEN", notification("drill")),
        ["IN-CERTIN"],
        "pair",
        exercise=True,
    )
    _deliver(us, inn)
    inn.send(
        Content(
            "ack",
            "AMBER",
            {"message": sent["acked"], "officer": "Sharma", "read_at": "2026-11-24T12:00:00.000Z"},
        ),
        None,
        None,
    )
    (mine,) = inn.send(Content("notification", "AMBER", notification("ours")), ["US-CISA"], "pair")
    _deliver(inn, us)
    now = to_ms(clock.now())

    page = views.inbox(inn, now, views.InboxFilters())
    groups = {i["message_id"]: i["group"] for i in page["items"]}
    assert groups[sent["low"]] == groups[sent["urgent"]] == "new"
    assert groups[sent["acked"]] == "settled"
    assert groups[mine.id] == "waiting"
    steps = {i["message_id"]: i["next_step"] for i in page["items"]}
    assert steps[ping.id] == "pong" and steps[sent["low"]] == "acknowledge"
    assert steps[mine.id] == "await-ack" and steps[sent["acked"]] == "none"
    order = [views.GROUPS.index(i["group"]) for i in page["items"]]
    assert order == sorted(order)  # most urgent first

    # Twenty minutes on: severity 5 had 15 minutes, so it is overdue, and comes first.
    later = now + 20 * 60 * 1000
    page = views.inbox(inn, later, views.InboxFilters())
    assert page["items"][0]["message_id"] == sent["urgent"]
    assert page["items"][0]["group"] == "overdue" and page["counts"]["overdue"] == 1
    # The SQL grouping and the Python one (the case view's) agree on every row, any time.
    for at in (now, later, now + 5 * 24 * 3600 * 1000):
        sql = {
            i["message_id"]: i["group"] for i in views.inbox(inn, at, views.InboxFilters())["items"]
        }
        for row in _rows(inn):
            assert views.group_of(row, at) == sql[row["message_id"]], row["message_id"]

    def ids(**q: str) -> set[str]:
        f = views.InboxFilters.from_query(q)
        return {i["message_id"] for i in views.inbox(inn, now, f)["items"]}

    assert ids(type="ping") == {ping.id}
    assert ids(exercise="exercise") == {drill.id}
    assert drill.id not in ids(exercise="real")
    assert ids(direction="out") == {mine.id}
    assert ids(severity="5") == {sent["urgent"]}
    assert ids(counterparty="US-CISA") == ids() and ids(counterparty="XX-NONE") == set()
    assert ids(group="settled") == {sent["acked"]}
    assert ids(case=mine.case or "") == {mine.id}
    assert ids(severity="9", type="telegram") == ids()  # unknown values are ignored

    view = views.case_view(inn, mine.case or "", later)
    assert view["items"][0]["direction"] == "out"
    assert view["messages"][0]["proof"].verified is True  # IN-CERTIN's receipt from US-CISA


# -- compose --------------------------------------------------------------------------------

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _build(msg_type: str, **fields: str | list[str]) -> compose.Draft:
    form = {k: v if isinstance(v, list) else [v] for k, v in fields.items()}
    return compose.build(msg_type, form, {}, officer_full_name="Officer Li", now=NOW)


def test_compose_builds_bodies_and_names_every_bad_field() -> None:
    draft = _build(
        "notification",
        agreement="pair",
        to=["US-CISA"],
        tlp="GREEN",
        category="ddos",
        severity="3",
        observed="2026-11-24T11:30",
        activity_text="botnet C2 at 203.0.113.9",
        activity_lang="en",
        concern="other",
        requested_actions=["takedown", "mitigation"],
        handling=["H1"],
        pap="GREEN",
        exercise="1",
    )
    assert draft.ok, draft.errors
    assert draft.body == {
        "category": "ddos",
        "severity": 3,
        "observed": "2026-11-24T11:30:00.000Z",
        "activity": {"lang": "en", "text": "botnet C2 at 203.0.113.9"},
        "concern": "other",
        "requested_actions": ["takedown", "mitigation"],
        "pap": "GREEN",
        "handling": ["H1"],
    }
    assert (draft.tlp, draft.agreement, draft.to, draft.exercise) == (
        "GREEN",
        "pair",
        ["US-CISA"],
        True,
    )

    bad = _build(
        "notification",
        category="fire",
        severity="9",
        observed="noon",
        concern="other",
        activity_text="write to duty@example.org",
        tlp="BLUE",
    )
    assert set(bad.errors) >= {"category", "severity", "observed", "activity", "tlp"}
    assert bad.findings and bad.findings[0].kind == "email"
    declared = _build("notification", activity_text="write to duty@example.org", personal_data="1")
    assert not declared.findings and "activity" not in declared.errors

    ack = _build("ack", message="01a20fe5-db62-74c1-a9c7-00aff2c2ed1b")
    assert ack.ok and ack.body["officer"] == "Officer Li"  # the signed-in officer signs it
    assert ack.body["read_at"] == "2026-11-24T12:00:00.000Z"
    assert ack.ref == "01a20fe5-db62-74c1-a9c7-00aff2c2ed1b"
    response = _build("response", request="not-an-id", status="action-taken")
    assert "request" in response.errors
    both = compose.build(
        "request",
        {"evidence_json": ['{"type": "bundle"}']},
        {"evidence_file": b'{"type": "bundle"}'},
        officer_full_name="x",
        now=NOW,
    )
    assert both.errors["evidence"] == "paste a bundle or upload one, not both"
    legal = _build("request", legal_basis="art. 2\n\n art. 5 ")
    assert legal.body["legal_basis"] == ["art. 2", "art. 5"]
    assert compose.error_field("indicators.objects[2] (indicator--x).pattern") == "indicators"
    assert compose.wire_to_local("2026-11-24T12:34:56.000Z") == "2026-11-24T12:34"
