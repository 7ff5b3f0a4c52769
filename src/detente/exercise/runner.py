"""``detente exercise run``: a scenario played by real node processes on 127.0.0.1.

Each party gets its own node (keys, SQLite store, ``detente serve`` process);
the agreement is created from the scenario, signed by every party and
installed.  Every node runs on a manual clock that only this runner moves
(``POST /api/v1/clock``), all together: time is compressed (``--speed 60``:
one scenario minute per real second; 0: as fast as the machine goes), and
between events the runner steps to the next thing any node has due
(a reminder, a deadline, a rung of the ladder), so reminders and escalations
happen at their scenario times, not at the next inject.

The simulated duty officers act through the client API with their own
tokens, as a person would: they notice what arrived, acknowledge it after a
delay drawn from the scenario, answer requests and consultations, answer
pings — or, with the scenario's probability, stay silent.  Everything is
exercise traffic (marked EXERCISE in every envelope).
"""

from __future__ import annotations

import heapq
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from detente.cli.demo import create_node, free_port, wait_healthy
from detente.core.agreement import Agreement
from detente.core.case import REPLY_FIELDS
from detente.core.timefmt import format_time, parse_user_time
from detente.errors import DeliveryError
from detente.exercise.scenario import Delay, Inject, Scenario, resolve_times
from detente.node.clock import SystemClock
from detente.node.config import NodeHome

__all__ = ["ExerciseRun", "RunResult"]

MAX_STEP = 3600.0  # scenario seconds between looks, at most (flat out)
ANSWERED_TYPES = ("request", "consultation")


@dataclass
class _NodeRun:
    party: str
    home: NodeHome
    proc: subprocess.Popen[bytes] | None = None
    admin: httpx.Client | None = None
    officer: httpx.Client | None = None

    @property
    def base(self) -> str:
        config = self.home.config()
        return f"http://{config.listen_host}:{config.listen_port}"


@dataclass
class RunResult:
    scenario: Scenario
    start: datetime
    end: datetime
    agreement: Agreement
    nodes: dict[str, dict[str, Any]]  # per party: cases (detail), messages, alarms
    reports: dict[str, Any]  # "A->B": audit verdict summary
    injected: list[dict[str, Any]]  # what was sent for each inject
    officer_actions: list[dict[str, Any]]
    wall_seconds: float


def _call(client: httpx.Client, method: str, path: str, **kw: Any) -> Any:
    response = client.request(method, path, **kw)
    if response.status_code >= 400:
        raise DeliveryError(f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


class ExerciseRun:
    def __init__(
        self,
        scenario: Scenario,
        workdir: Path,
        *,
        speed: float = 0.0,
        seed: int | None = None,
        on_progress: Callable[[float, dict[str, int]], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.speed = speed
        # A simulation, not security: a seeded generator makes runs repeatable.
        self.random = random.Random(scenario.seed if seed is None else seed)  # noqa: S311
        self.on_progress = on_progress
        start = scenario.start
        self.t0 = (
            parse_user_time(start, field="start")
            if start
            else SystemClock().now().replace(microsecond=0)
        )
        self.now = self.t0
        self.nodes: dict[str, _NodeRun] = {}
        self.agreement: Agreement | None = None
        self.queue: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self.injected: list[dict[str, Any]] = []
        self.sent_by_inject: dict[int, dict[str, Any]] = {}
        self.actions: list[dict[str, Any]] = []
        self.answers: dict[str, Inject] = {}  # message id -> the inject it came from
        self.counters = {"injected": 0, "acks": 0, "answers": 0, "pongs": 0}
        self.seen: dict[str, set[str]] = {}  # per party: messages its officer has looked at

    # -- set-up -------------------------------------------------------------------

    def setup(self) -> None:
        s = self.scenario
        for p in s.parties:
            home = create_node(
                self.workdir / p.id, p.id, dict(p.names), p.country, list(p.languages), free_port()
            )
            self.nodes[p.id] = _NodeRun(p.id, home)
        agreement = self._agreement([n.home.card() for n in self.nodes.values()])
        for pid, n in self.nodes.items():
            agreement = agreement.sign(pid, n.home.keys())
        self.agreement = agreement
        from detente.node.service import Node  # noqa: PLC0415 - heavy, only here

        for n in self.nodes.values():
            node = Node(n.home)
            try:
                node.install_agreement(agreement)
                token = node.add_token(f"officer-{n.party}", "officer")
            finally:
                node.close()
            n.officer = httpx.Client(
                base_url=n.base, timeout=60, headers={"authorization": f"Bearer {token}"}
            )
        for n in self.nodes.values():
            log = (self.workdir / f"{n.party}.log").open("ab")
            n.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "detente",
                    "serve",
                    "--home",
                    str(n.home.path),
                    "--manual-clock",
                    format_time(self.t0),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
        for n in self.nodes.values():
            wait_healthy(n.base, n.proc, timeout=60)
            n.admin = httpx.Client(
                base_url=n.base,
                timeout=60,
                headers={"authorization": f"Bearer {n.home.cli_token()}"},
            )
        self._schedule_injects()

    def _agreement(self, members: list[Any]) -> Agreement:
        """The scenario's agreement between ``members`` (cards), not yet signed."""
        s = self.scenario
        return Agreement(
            id=s.agreement.id,
            version=1,
            titles=dict(s.agreement.title),
            members=tuple(members),
            policy=s.policy(),
            valid_from=self.t0 - timedelta(days=1),
            valid_until=self.t0 + timedelta(seconds=s.duration) + timedelta(days=400),
        )

    def _party_ids(self) -> list[str]:
        return [p.id for p in self.scenario.parties]

    def _schedule_injects(self) -> None:
        for index, inject in enumerate(self.scenario.injects):
            self._push(inject.at, "inject", (index, inject))

    def stop(self) -> None:
        for n in self.nodes.values():
            for client in (n.admin, n.officer):
                if client is not None:
                    client.close()
            if n.proc is not None and n.proc.poll() is None:
                n.proc.terminate()
        for n in self.nodes.values():
            if n.proc is not None:
                try:
                    n.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    n.proc.kill()
                    n.proc.wait(timeout=10)

    # -- the clock ------------------------------------------------------------------

    def _push(self, at: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self.queue, (at, self._seq, kind, payload))

    def _offset(self) -> float:
        return (self.now - self.t0).total_seconds()

    def _advance_to(self, offset: float) -> int | None:
        """Move every node's clock to ``t0 + offset``; run what fell due; next due (ms)."""
        step = max(0.0, offset - self._offset())
        for n in self.nodes.values():
            assert n.admin is not None  # noqa: S101 - set up
            _call(n.admin, "POST", "/api/v1/clock", json={"advance": step, "tick": False})
        self.now = self.t0 + timedelta(seconds=offset)
        dues: list[int] = []
        for _ in range(2):  # the second pass delivers what the first one's work queued
            for n in self.nodes.values():
                assert n.admin is not None  # noqa: S101
                answer = _call(n.admin, "POST", "/api/v1/clock", json={"advance": 0})
                if answer.get("next_due_ms") is not None:
                    dues.append(int(answer["next_due_ms"]))
        return min(dues) if dues else None

    # -- the run ----------------------------------------------------------------------

    def run(self) -> RunResult:
        started = time.monotonic()
        end = self.scenario.duration
        next_due: float | None = None
        while True:
            # Between events and deadlines nothing happens; at a set speed, look
            # about once a real second so the progress display moves.
            step = MAX_STEP if self.speed <= 0 else max(1.0, min(MAX_STEP, self.speed))
            candidates = [end, self._offset() + step]
            if self.queue:
                candidates.append(self.queue[0][0])
            if next_due is not None:
                candidates.append(next_due)
            target = max(self._offset(), min(candidates))
            if self.speed > 0:
                lag = target / self.speed - (time.monotonic() - started)
                if lag > 0:
                    time.sleep(lag)
            due_ms = self._advance_to(target)
            acted = False
            while self.queue and self.queue[0][0] <= target:
                _, _, kind, payload = heapq.heappop(self.queue)
                acted = True
                if kind == "inject":
                    self._inject(*payload)
                else:
                    self._act(kind, payload)
            if acted:
                due_ms = self._advance_to(target)  # deliver what was just sent
            self._officers_look()
            next_due = None
            if due_ms is not None:
                next_due = max(
                    self._offset(), (due_ms - int(self.t0.timestamp() * 1000)) / 1000.0 + 0.001
                )
            if self.on_progress is not None:
                self.on_progress(min(1.0, target / end) if end else 1.0, self.counters)
            if target >= end and not (self.queue and self.queue[0][0] <= end):
                break
        return self._collect(time.monotonic() - started)

    def _inject(self, index: int, inject: Inject) -> None:
        body = resolve_times(dict(inject.body), self.t0)
        if inject.answers is not None:
            earlier = self.sent_by_inject[inject.answers]
            received = [m["id"] for m in earlier["messages"] if m["to"] == inject.from_]
            body[REPLY_FIELDS[inject.type]] = received[0]
        sent = self._send(
            inject.from_,
            {
                "agreement": self.scenario.agreement.id,
                "to": self.scenario.recipients(inject),
                "type": inject.type,
                "tlp": inject.tlp,
                "body": body,
                "exercise": True,
            },
        )
        for m in sent:
            self.answers[m["id"]] = inject
        self.counters["injected"] += len(sent)
        self.sent_by_inject[index] = record = {
            "at": self._offset(),
            "from": inject.from_,
            "type": inject.type,
            "messages": [{"id": m["id"], "to": m["to"]} for m in sent],
        }
        self.injected.append(record)

    def _draw(self, delay: Delay) -> float:
        return self.random.uniform(delay.low, delay.high)

    def _officers_look(self) -> None:
        """Each officer looks at what arrived and plans when to read and answer it."""
        for party in self._party_ids():
            officer = self.scenario.party(party).officer
            seen = self.seen.setdefault(party, set())
            for m in sorted(self._incoming(party), key=lambda r: r["stored"]):
                if m["id"] in seen:
                    continue
                seen.add(m["id"])
                kind = m["type"]
                if kind not in ("notification", "request", "consultation", "ping", "escalation"):
                    continue
                if self.random.random() < officer.silent:
                    self.actions.append(
                        {"party": party, "action": "silent", "message": m["id"], "at": None}
                    )
                    continue
                now = self._offset()
                if kind == "ping":
                    self._push(now + self._draw(officer.pong), "pong", (party, m))
                    continue
                ack_at = now + self._draw(officer.ack)
                self._push(ack_at, "ack", (party, m))
                if kind in ANSWERED_TYPES:
                    self._push(ack_at + self._draw(officer.answer), "answer", (party, m))

    def _act(self, kind: str, payload: tuple[str, dict[str, Any]]) -> None:
        party, m = payload
        officer = self.scenario.party(party).officer
        name = f"{officer.name} ({party})"
        if kind == "ack":
            body: dict[str, Any] = {
                "message": m["id"],
                "officer": name,
                "read_at": format_time(self.now),
            }
            msg_type = "ack"
            self.counters["acks"] += 1
        elif kind == "pong":
            body = {"ping": m["id"], "officer": name}
            msg_type = "pong"
            self.counters["pongs"] += 1
        else:
            inject = self.answers.get(m["id"])
            answer = inject.answer if inject is not None else None
            body = {"request": m["id"], "status": answer.status if answer else "completed"}
            if answer is not None and answer.details:
                body["details"] = dict(answer.details)
            msg_type = "response"
            self.counters["answers"] += 1
        try:
            self._send(party, {"type": msg_type, "tlp": m["tlp"], "body": body, "exercise": True})
            outcome = "sent"
        except DeliveryError as exc:
            outcome = f"refused: {exc}"
        self.actions.append(
            {
                "party": party,
                "action": kind,
                "message": m["id"],
                "at": self._offset(),
                "outcome": outcome,
            }
        )

    # -- how the runner reaches the nodes: HTTP (InProcessRun: function calls) ----------

    def _send(self, party: str, request: dict[str, Any]) -> list[dict[str, Any]]:
        """What the party's officer sends through the client API: [{id, to, ...}]."""
        officer = self.nodes[party].officer
        assert officer is not None  # noqa: S101
        sent: list[dict[str, Any]] = _call(officer, "POST", "/api/v1/messages", json=request)
        return sent

    def _incoming(self, party: str) -> list[dict[str, Any]]:
        officer = self.nodes[party].officer
        assert officer is not None  # noqa: S101
        rows: list[dict[str, Any]] = _call(
            officer, "GET", "/api/v1/messages", params={"direction": "in", "limit": 1000}
        )
        return rows

    def _node_record(self, party: str) -> dict[str, Any]:
        admin = self.nodes[party].admin
        assert admin is not None  # noqa: S101
        cases = _call(admin, "GET", "/api/v1/cases", params={"exercise": True, "limit": 1000})
        details = [_call(admin, "GET", f"/api/v1/cases/{c['case']}") for c in cases]
        messages: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = _call(admin, "GET", "/api/v1/messages", params={"limit": 1000, "offset": offset})
            messages.extend(page)
            if len(page) < 1000:
                break
            offset += 1000
        alarms = _call(admin, "GET", "/api/v1/alarms")
        return {"cases": details, "messages": messages, "alarms": alarms}

    def _report(self, party: str, other: str, since: str) -> dict[str, Any]:
        admin = self.nodes[party].admin
        assert admin is not None  # noqa: S101
        bundle: dict[str, Any] = _call(
            admin,
            "GET",
            "/api/v1/report",
            params={"counterparty": other, "since": since, "exercise": True},
        )
        return bundle

    # -- what happened ------------------------------------------------------------------

    def _collect(self, wall: float) -> RunResult:
        from detente.audit import audit_report  # noqa: PLC0415

        assert self.agreement is not None  # noqa: S101
        nodes = {pid: self._node_record(pid) for pid in self._party_ids()}
        reports: dict[str, Any] = {}
        since = format_time(self.t0 - timedelta(seconds=1))
        for pid in self._party_ids():
            partners = {m["to"] for m in nodes[pid]["messages"] if m["direction"] == "out"}
            for other in sorted(partners):
                result = audit_report(self._report(pid, other, since), [self.agreement])
                reports[f"{pid}->{other}"] = {
                    "ok": result.ok,
                    "items": len(result.items),
                    "problems": result.problems,
                    "findings": result.findings,
                    "counts": result.counts,
                }
        end = self.t0 + timedelta(seconds=self.scenario.duration)
        return RunResult(
            self.scenario,
            self.t0,
            end,
            self.agreement,
            nodes,
            reports,
            self.injected,
            self.actions,
            wall,
        )
