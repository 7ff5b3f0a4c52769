"""The hotline workflow end to end: real node processes on loopback, a clock the test drives.

One test per mechanism the states agreed on: a CERT-to-CERT notification with
a STIX bundle and a sighting back; a ransomware request answered with action
taken; a preservation request and its extension; a platform query whose
deadline passes (reminder, escalation); a consultation; a ping round with a
party that does not answer.  Every node runs ``detente serve --manual-clock``:
time moves only when the test says (``POST /api/v1/clock``), so deadlines are
reached without sleeping.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detente.audit import audit_report
from detente.core.agreement import Agreement
from detente.core.canonical import canonical
from detente.core.checkpoint import Checkpoint, sign_checkpoint, unverified_checkpoint
from detente.core.logentry import log_signers
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.core.timefmt import format_time, parse_time
from detente.i18n import translator
from detente.node.clock import SystemClock
from forms_examples import OBSERVED, notification, stix_bundle
from node.cluster import NodeProc, delivered, make_cluster, send, wait_until

AGREEMENT = "test-agreement"
HOUR = 3600
DAY = 24 * HOUR


class Hotline:
    def __init__(self, nodes: dict[str, NodeProc], agreement: Agreement) -> None:
        self.nodes = nodes
        self.agreement = agreement
        self.us, self.ru, self.cn = nodes["US-CISA"], nodes["RU-NCCC"], nodes["CN-CNCERT"]

    def advance(self, seconds: float) -> None:
        """Move every node's clock together, then let each run what fell due."""
        running = [n for n in self.nodes.values() if n.proc is not None]
        for n in running:
            n.call("POST", "/api/v1/clock", json={"advance": seconds, "tick": False})
        for _ in range(2):  # a second pass delivers what the first one's work sent
            for n in running:
                n.call("POST", "/api/v1/clock", json={"advance": 0})

    def now(self) -> str:
        return str(self.us.call("POST", "/api/v1/clock", json={"advance": 0, "tick": False})["now"])

    def tracked(self, node: NodeProc, message_id: str) -> dict[str, Any]:
        detail = self.case_of(node, message_id)
        return next(t for t in detail["tracked"] if t["message"] == message_id)

    def case_of(self, node: NodeProc, message_id: str) -> dict[str, Any]:
        for case in node.call("GET", "/api/v1/cases", params={"limit": 1000}):
            detail: dict[str, Any] = node.call("GET", f"/api/v1/cases/{case['case']}")
            if any(t["message"] == message_id for t in detail["tracked"]):
                return detail
        raise AssertionError(f"{message_id} is in no case on {node.party_id}")

    def reached(self, node: NodeProc, message_id: str) -> None:
        """The message is committed on ``node`` (its receipt is back at the sender)."""
        wait_until(
            lambda: any(
                m["id"] == message_id
                for m in node.call("GET", "/api/v1/messages", params={"direction": "in"})
            ),
            30,
            f"{message_id} at {node.party_id}",
        )


@pytest.fixture(scope="module")
def hotline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hotline]:
    policy = Policy(
        message_types=frozenset(MESSAGE_TYPES),
        max_tlp="AMBER",
        ack_deadline=4 * HOUR,
        pong_deadline=HOUR,
    )
    workdir = tmp_path_factory.mktemp("workflow")
    nodes, agreement = make_cluster(
        workdir, ["US-CISA", "RU-NCCC", "CN-CNCERT"], policy=policy, valid_for=timedelta(days=365)
    )
    start = format_time(SystemClock().now())
    for n in nodes.values():
        n.extra_args = ["--manual-clock", start]
        n.start()
    try:
        yield Hotline(nodes, agreement)
    finally:
        for n in nodes.values():
            n.stop()


def post(
    node: NodeProc,
    msg_type: str,
    body: dict[str, Any],
    to: list[str] | None = None,
    tlp: str = "AMBER",
) -> list[dict[str, Any]]:
    return send(node, AGREEMENT, to, msg_type=msg_type, body=body, tlp=tlp)


def ack(node: NodeProc, message_id: str, officer: str) -> None:
    post(node, "ack", {"message": message_id, "officer": officer, "read_at": OBSERVED})


def request(kind: str, urgency: str = "normal", **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "legal_basis": ["2013 US-RU cyber CBM package, art. 2"],
        "facts": {"lang": "en", "text": "ransomware operators control 198.51.100.23"},
        "urgency": urgency,
        **extra,
    }


def response(request_id: str, status: str, text: str = "done") -> dict[str, Any]:
    return {"request": request_id, "status": status, "details": {"lang": "en", "text": text}}


def test_notification_with_stix_and_a_sighting_back(hotline: Hotline) -> None:
    us, ru = hotline.us, hotline.ru
    body = {**notification("C2 traffic to your networks", severity=5), "indicators": stix_bundle()}
    (sent,) = post(us, "notification", body, ["RU-NCCC"])
    hotline.reached(ru, sent["id"])
    wait_until(lambda: delivered(us, sent["id"]), 30, "receipt")
    mine = hotline.tracked(us, sent["id"])
    assert mine["state"] == "delivered"
    # Severity 5: acknowledgement within 15 minutes (the policy's default table).
    assert mine["ack_due"] is not None
    theirs = hotline.tracked(ru, sent["id"])
    assert theirs["direction"] == "in" and theirs["ack_due"] == mine["ack_due"]

    ack(ru, sent["id"], "Duty officer Ivanova")
    sighting = {
        "notification": sent["id"],
        "indicator": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        "first_seen": OBSERVED,
        "last_seen": OBSERVED,
        "count": 3,
        "where": "RU backbone",
    }
    (seen,) = post(ru, "sighting", sighting)
    assert seen["to"] == "US-CISA"  # a reply goes to the one who sent what it names
    hotline.advance(1)
    wait_until(lambda: delivered(ru, seen["id"]), 30, "receipt for the sighting")
    case = hotline.case_of(us, sent["id"])
    kinds = [e["kind"] for e in case["events"]]
    assert "ack" in kinds and "sighting" in kinds
    assert hotline.tracked(us, sent["id"])["acknowledged_by"] == "Duty officer Ivanova"
    assert {m["type"] for m in case["messages"]} == {"notification", "ack", "sighting"}


def test_ransomware_request_answered_with_action_taken(hotline: Hotline) -> None:
    us, ru = hotline.us, hotline.ru
    (req,) = post(us, "request", request("takedown", "urgent"), ["RU-NCCC"])
    hotline.reached(ru, req["id"])
    # Completed before acknowledged: the case refuses it, nothing is sent.
    refused = ru.api.post(
        "/api/v1/messages",
        json={
            "agreement": AGREEMENT,
            "type": "response",
            "tlp": "AMBER",
            "body": response(req["id"], "completed"),
        },
    )
    assert refused.status_code == 409, refused.text
    assert "cannot go from delivered to completed" in refused.json()["detail"]

    ack(ru, req["id"], "Duty officer Sokolov")
    post(ru, "response", response(req["id"], "action-taken", "C2 servers seized"))
    hotline.advance(1)
    wait_until(lambda: hotline.tracked(us, req["id"])["state"] == "action-taken", 30, "answer")
    mine = hotline.tracked(us, req["id"])
    assert mine["answer_status"] == "action-taken" and mine["overdue"] == []
    assert hotline.tracked(ru, req["id"])["state"] == "action-taken"


def test_preservation_request_and_its_extension(hotline: Hotline) -> None:
    us, ru = hotline.us, hotline.ru
    (req,) = post(
        us, "request", request("preservation", data_location="RU hosting provider"), ["RU-NCCC"]
    )
    hotline.reached(ru, req["id"])
    ack(ru, req["id"], "Duty officer Sokolov")
    post(ru, "response", response(req["id"], "action-taken", "data preserved"))
    hotline.advance(1)
    wait_until(lambda: hotline.tracked(us, req["id"])["preserved_until"] is not None, 30, "kept")
    first_until = hotline.tracked(us, req["id"])["preserved_until"]

    # 46 days on (75 % of 60): both sides are reminded to extend or let it lapse.
    hotline.advance(46 * DAY)
    case = hotline.case_of(us, req["id"])
    assert "reminder:preservation" in [e["kind"] for e in case["events"]]

    ext_body = request("preservation-extension", extends=req["id"])
    (ext,) = post(us, "request", ext_body, ["RU-NCCC"])
    hotline.reached(ru, ext["id"])
    ack(ru, ext["id"], "Duty officer Sokolov")
    post(ru, "response", response(ext["id"], "action-taken", "kept 30 more days"))
    hotline.advance(1)
    wait_until(
        lambda: hotline.tracked(us, req["id"])["preserved_until"] != first_until, 30, "extension"
    )
    events = [e["kind"] for e in hotline.case_of(us, req["id"])["events"]]
    assert "preservation-extended" in events
    assert hotline.case_of(us, ext["id"])["case"] == hotline.case_of(us, req["id"])["case"]


def test_platform_query_deadline_passes_reminder_escalation_overdue(hotline: Hotline) -> None:
    us, cn = hotline.us, hotline.cn
    # A query with a fixed reply date two days out (shorter than the policy's ten).
    now = hotline.now()
    deadline = format_time(parse_time(now) + timedelta(days=2))
    (q,) = post(us, "request", request("information", deadline=deadline), ["CN-CNCERT"])
    hotline.reached(cn, q["id"])
    assert hotline.tracked(us, q["id"])["answer_due"] == deadline
    ack(cn, q["id"], "Duty officer Li")
    hotline.advance(1)

    hotline.advance(int(1.6 * DAY))  # past 75 % of the time: the owing side is reminded
    owed = hotline.case_of(cn, q["id"])
    assert "reminder:answer" in [e["kind"] for e in owed["events"]]
    assert any(a["kind"] == "reminder" for a in cn.call("GET", "/api/v1/alarms"))

    hotline.advance(int(0.5 * DAY))  # past the deadline: overdue, and the ladder climbs
    mine = hotline.tracked(us, q["id"])
    assert mine["overdue"] == ["answer"]
    assert mine["level"] == "senior"
    kinds = [e["kind"] for e in hotline.case_of(us, q["id"])["events"]]
    assert "overdue:answer" in kinds and "escalation:senior" in kinds
    # The signed escalation reached the other side and raised the case there too.
    wait_until(lambda: hotline.tracked(cn, q["id"])["level"] == "senior", 30, "escalation at CN")
    assert any(a["kind"] == "escalation" for a in cn.call("GET", "/api/v1/alarms"))

    hotline.advance(4 * HOUR)  # the policy's next rung: the hotline
    assert hotline.tracked(us, q["id"])["level"] == "hotline"


def test_a_later_deadline_than_the_policy_allows_is_refused(hotline: Hotline) -> None:
    late = format_time(parse_time(hotline.now()) + timedelta(days=30))
    refused = hotline.us.api.post(
        "/api/v1/messages",
        json={
            "agreement": AGREEMENT,
            "to": ["CN-CNCERT"],
            "type": "request",
            "tlp": "AMBER",
            "body": request("information", deadline=late),
        },
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["detail"].startswith("deadline: is later than the agreement allows")


def test_consultation(hotline: Hotline) -> None:
    us, ru = hotline.us, hotline.ru
    now = hotline.now()
    body = {
        "topic": {"lang": "en", "text": "scanning of our grid operators, to avoid misperception"},
        "level": "senior",
        "window_start": now,
        "window_end": format_time(parse_time(now) + timedelta(days=1)),
    }
    (c,) = post(ru, "consultation", body, ["US-CISA"])
    hotline.reached(us, c["id"])
    ack(us, c["id"], "Senior official Smith")
    post(us, "response", response(c["id"], "completed", "call held"))
    hotline.advance(1)
    wait_until(lambda: hotline.tracked(ru, c["id"])["state"] == "completed", 30, "consultation")


def test_ping_round_with_a_party_that_does_not_answer(hotline: Hotline) -> None:
    us, ru, cn = hotline.us, hotline.ru, hotline.cn
    result = us.call("POST", "/api/v1/ping", json={"agreement": AGREEMENT})
    pings = {s["to"]: s["id"] for s in result["sent"]}
    assert set(pings) == {"RU-NCCC", "CN-CNCERT"}
    hotline.reached(ru, pings["RU-NCCC"])
    hotline.advance(120)
    post(ru, "pong", {"ping": pings["RU-NCCC"], "officer": "Duty officer Orlov"})
    hotline.advance(1)
    hotline.advance(2 * HOUR)  # CN never answers
    report = us.call("GET", "/api/v1/ping/report", params={"round": result["round"]})
    by_party = {p["party"]: p for p in report["parties"]}
    assert by_party["RU-NCCC"]["answered"] == 1
    assert by_party["RU-NCCC"]["answer_seconds_median"] == pytest.approx(120, abs=2)
    assert by_party["CN-CNCERT"]["unanswered"] == 1 and by_party["CN-CNCERT"]["answered"] == 0
    assert cn.call("GET", "/api/v1/cases")  # CN holds the ping it never answered


# -- the accountability record -------------------------------------------------------


def _report(node: NodeProc, counterparty: str) -> dict[str, Any]:
    bundle: dict[str, Any] = node.call(
        "GET",
        "/api/v1/report",
        params={"counterparty": counterparty, "since": "2026-01-01T00:00:00Z"},
    )
    return bundle


def _audit(bundle: dict[str, Any], agreement: Any) -> Any:
    return audit_report(copy.deepcopy(bundle), [agreement])


def _item(bundle: dict[str, Any], message_id: str) -> dict[str, Any]:
    return next(i for i in bundle["report"]["items"] if i["message"] == message_id)


def test_report_and_audit_honest_and_tampered(hotline: Hotline) -> None:
    us, ru = hotline.us, hotline.ru
    (plain,) = post(us, "notification", notification("port scans from your AS"), ["RU-NCCC"])
    hotline.reached(ru, plain["id"])
    wait_until(lambda: delivered(us, plain["id"]), 30, "receipt")
    (acked,) = post(us, "request", request("information"), ["RU-NCCC"])
    hotline.reached(ru, acked["id"])
    ack(ru, acked["id"], "Duty officer Volkova")
    post(ru, "response", response(acked["id"], "declined", "no jurisdiction"))
    hotline.advance(1)
    wait_until(lambda: hotline.tracked(us, acked["id"])["state"] == "declined", 30, "declined")
    for n in hotline.nodes.values():
        n.call("POST", "/api/v1/peers/witness")

    bundle = _report(us, "RU-NCCC")
    agreement = hotline.agreement
    honest = _audit(bundle, agreement)
    assert honest.ok, honest.problems
    assert honest.findings == []
    verdicts = {v.message: v.verdict for v in honest.items}
    assert verdicts[plain["id"]].startswith("delivered at ")
    assert "never acknowledged" in verdicts[plain["id"]]
    assert (
        "acknowledged at" in verdicts[acked["id"]]
        and "by Duty officer Volkova" in (verdicts[acked["id"]])
    )
    assert "answered (declined)" in verdicts[acked["id"]]
    counts = bundle["report"]["counts"]
    assert counts["request"]["declined"] >= 1
    assert honest.counts == counts

    # A receipt removed: the item is no longer proven delivered.
    t1 = copy.deepcopy(bundle)
    _item(t1, plain["id"])["receipt"] = None
    r1 = _audit(t1, agreement)
    assert not r1.ok and not r1.report_signed
    v1 = next(v for v in r1.items if v.message == plain["id"])
    assert v1.verdict.startswith("never delivered: no receipt")
    assert any("claims delivered" in p for p in v1.problems)

    # The entry removed from the author's own log (its proof dropped or altered).
    t2 = copy.deepcopy(bundle)
    _item(t2, plain["id"])["log"]["proof"] = list(reversed(_item(t2, plain["id"])["log"]["proof"]))
    _item(t2, plain["id"])["log"]["leaf_index"] += 1
    r2 = _audit(t2, agreement)
    assert any(
        "own log" in p for p in next(v for v in r2.items if v.message == plain["id"]).problems
    )

    # A forged acknowledgement: a reply that RU-NCCC did not sign.
    t3 = copy.deepcopy(bundle)
    target = _item(t3, plain["id"])
    forged = copy.deepcopy(_item(t3, acked["id"])["replies"][0])
    forged["envelope"]["reply_to"] = plain["id"]
    target["replies"].append(forged)
    target["claimed"]["acknowledged"] = OBSERVED
    r3 = _audit(t3, agreement)
    v3 = next(v for v in r3.items if v.message == plain["id"])
    assert any("forged acknowledgement" in p for p in v3.problems)
    assert any("claims acknowledged" in p for p in v3.problems)
    assert "never acknowledged" in v3.verdict

    # Counts that do not match the items.
    t4 = copy.deepcopy(bundle)
    t4["report"]["counts"]["request"]["sent"] += 45
    r4 = _audit(t4, agreement)
    assert any("counts do not match" in p for p in r4.problems)

    # The recipient rewrote its log: a checkpoint it signed later, at the size
    # the receipt names, has another root -> the receipt stands against it.
    t5 = copy.deepcopy(bundle)
    digest = _item(t5, plain["id"])["receipt"]["checkpoint_hash"]
    receipt_note = t5["report"]["receipt_checkpoints"][digest].encode()
    cp = unverified_checkpoint(receipt_note)
    rewritten = sign_checkpoint(
        Checkpoint(cp.origin, cp.size, b"\x07" * 32), log_signers("RU-NCCC", ru.home.keys())
    )
    t5["report"]["their_log"] = [
        {"size": cp.size, "note": rewritten.decode(), "proof_from": None, "proof": []}
    ]
    r5 = _audit(t5, agreement)
    v5 = next(v for v in r5.items if v.message == plain["id"])
    assert any(
        "receipt present but log entry missing: the recipient's log is inconsistent" in f
        for f in v5.findings
    )


def detente_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m detente ARGS`` (wide output, so sentences are not wrapped)."""
    return subprocess.run(
        [sys.executable, "-m", "detente", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "400"},
    )


def test_report_never_delivered_and_the_cli(hotline: Hotline, tmp_path: Path) -> None:
    us, cn = hotline.us, hotline.cn
    cn.stop()
    try:
        (lost,) = post(us, "request", request("information"), ["CN-CNCERT"])
        hotline.advance(0)
        out = tmp_path / "report.json"
        run = detente_cli(
            "report",
            "--home",
            str(us.home.path),
            "--counterparty",
            "CN-CNCERT",
            "--since",
            "2026-01-01",
            "--out",
            str(out),
            "--json",
        )
        assert run.returncode == 0, run.stderr
        agreement_file = tmp_path / "agreement.json"
        agreement_file.write_bytes(canonical(hotline.agreement.to_json()))
        audit = detente_cli("audit", str(out), "--agreement", str(agreement_file), "--json")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        result = json.loads(audit.stdout)
        verdict = next(i for i in result["items"] if i["message"] == lost["id"])
        assert verdict["verdict"].startswith("never delivered: no receipt")

        # The same verdict, read in Russian (codes and sentences from the catalogue).
        in_russian = detente_cli(
            "audit", str(out), "--agreement", str(agreement_file), "--lang", "ru"
        )
        assert in_russian.returncode == 0, in_russian.stderr
        ru = translator("ru")
        assert ru("never delivered: no receipt") in in_russian.stdout
        assert ru("never delivered: no receipt") != "never delivered: no receipt"
        assert ru("VERDICT: the report is authentic and every claim in it is proven") in (
            in_russian.stdout
        )

        bundle = json.loads(out.read_text())
        bundle["report"]["counts"]["request"]["sent"] += 1
        out.write_text(json.dumps(bundle))
        tampered = detente_cli("audit", str(out), "--agreement", str(agreement_file))
        assert tampered.returncode == 1
        assert "counts do not match" in tampered.stdout
    finally:
        cn.start()


def test_report_withholds_content_its_handling_labels_forbid(hotline: Hotline) -> None:
    us, ru = hotline.us, hotline.ru
    (req,) = post(us, "request", request("investigation"), ["RU-NCCC"])
    hotline.reached(ru, req["id"])
    ack(ru, req["id"], "Duty officer Volkova")
    restricted = {**response(req["id"], "in-progress", "suspects identified"), "handling": ["H2"]}
    post(ru, "response", restricted)
    hotline.advance(1)
    wait_until(lambda: hotline.tracked(us, req["id"])["state"] == "in-progress", 30, "answer")
    bundle = _report(us, "RU-NCCC")
    replies = _item(bundle, req["id"])["replies"]
    shown = {r["envelope"]["type"]: "plaintext" in r for r in replies}
    assert shown == {"ack": True, "response": False}  # the H2 answer is not passed on
    result = _audit(bundle, hotline.agreement)
    assert result.ok, result.problems
    verdict = next(v for v in result.items if v.message == req["id"]).verdict
    assert "withheld under its handling labels" in verdict
