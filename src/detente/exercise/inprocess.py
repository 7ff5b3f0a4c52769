"""Scale by simulation: many parties' nodes in one process.

Each party still has its own keys, its own SQLite store and its own node
(service layer, writer, log); what is simulated is the network: envelopes go
from one node's outbox to the other's ``receive`` by a function call instead
of HTTP, and the receipts come back the same way and are verified
(``record_receipts``) as the delivery worker would.  Officers act through the
service layer the client API calls (``Node.spec``/``send``), one by one.

:func:`run_scale` rehearses, under one multilateral agreement, the UN
points-of-contact communication check — a ping to every member, a pong from
every member's officer — and a notification to all with an acknowledgement
from each, and reports how long each took and the process's peak memory.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from detente.core.agreement import Agreement
from detente.core.envelope import Content, Envelope
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.core.timefmt import format_time, parse_time
from detente.errors import DeliveryError, DetenteError
from detente.exercise.runner import ExerciseRun
from detente.node import cases, queries
from detente.node.clock import FakeClock, SystemClock, to_ms
from detente.node.config import NodeHome
from detente.node.report import build_report
from detente.node.service import Node

__all__ = ["UN_MEMBER_STATES", "InProcessRun", "ScaleResult", "party_ids", "run_scale"]

# ISO 3166-1 alpha-2 codes of the 193 UN member states.
# fmt: off
UN_MEMBER_STATES = (
    "AF", "AL", "DZ", "AD", "AO", "AG", "AR", "AM", "AU", "AT", "AZ", "BS", "BH", "BD",
    "BB", "BY", "BE", "BZ", "BJ", "BT", "BO", "BA", "BW", "BR", "BN", "BG", "BF", "BI",
    "CV", "KH", "CM", "CA", "CF", "TD", "CL", "CN", "CO", "KM", "CG", "CR", "CI", "HR",
    "CU", "CY", "CZ", "KP", "CD", "DK", "DJ", "DM", "DO", "EC", "EG", "SV", "GQ", "ER",
    "EE", "SZ", "ET", "FJ", "FI", "FR", "GA", "GM", "GE", "DE", "GH", "GR", "GD", "GT",
    "GN", "GW", "GY", "HT", "HN", "HU", "IS", "IN", "ID", "IR", "IQ", "IE", "IL", "IT",
    "JM", "JP", "JO", "KZ", "KE", "KI", "KW", "KG", "LA", "LV", "LB", "LS", "LR", "LY",
    "LI", "LT", "LU", "MG", "MW", "MY", "MV", "ML", "MT", "MH", "MR", "MU", "MX", "FM",
    "MC", "MN", "ME", "MA", "MZ", "MM", "NA", "NR", "NP", "NL", "NZ", "NI", "NE", "NG",
    "MK", "NO", "OM", "PK", "PW", "PA", "PG", "PY", "PE", "PH", "PL", "PT", "QA", "KR",
    "MD", "RO", "RU", "RW", "KN", "LC", "VC", "WS", "SM", "ST", "SA", "SN", "RS", "SC",
    "SL", "SG", "SK", "SI", "SB", "SO", "ZA", "SS", "ES", "LK", "SD", "SR", "SE", "CH",
    "SY", "TJ", "TH", "TL", "TG", "TO", "TT", "TN", "TR", "TM", "TV", "UG", "UA", "AE",
    "GB", "TZ", "US", "UY", "UZ", "VU", "VE", "VN", "YE", "ZM", "ZW",
)
# fmt: on
REGIONAL_BODIES = ("SCO-RATS", "EU-CERT", "AU-CYBER", "ASEAN-CERT", "OSCE-CBM", "OAS-CICTE")
COORDINATOR = "UN-ODA"


def party_ids(n: int) -> list[str]:
    """``n`` parties: the directory's keeper, the 193 member states, then regional bodies."""
    pool = [COORDINATOR] + [f"{c}-POC" for c in UN_MEMBER_STATES] + list(REGIONAL_BODIES)
    if not 2 <= n <= len(pool):
        raise ValueError(f"between 2 and {len(pool)} parties")
    return pool[:n]


@dataclass
class ScaleResult:
    parties: int
    setup_s: float
    ping_round_s: float
    pongs: int
    notification_round_s: float
    acks: int
    receipts_verified: int
    peak_rss_mb: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _deliver(src: Node, dst: Node) -> int:
    """Everything pending from ``src`` to ``dst``; returns receipts verified."""
    done = 0
    while True:
        envs = src.pending_batch(dst.id, 500)
        if not envs:
            return done
        result = dst.receive([e.to_json() for e in envs], src.known_peer_size(dst.id))
        src.record_receipts(
            list(zip(envs, [r.to_json() for r in result.receipts], strict=True)),
            result.checkpoint,
            *result.notes.values(),
            witness=(dst.id, result.checkpoint, result.consistency, result.proof_from),
        )
        done += len(envs)


def run_scale(
    workdir: Path,
    n_parties: int,
    *,
    notify: bool = True,
    threads: int = 4,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScaleResult:
    """A ping round (and a notification round) across ``n_parties`` nodes in this process."""
    say = progress or (lambda _what, _done, _total: None)
    t0 = time.perf_counter()
    ids = party_ids(n_parties)
    homes = [
        NodeHome.init(
            workdir / pid,
            party_id=pid,
            names={"en": pid},
            country=pid[:2] if pid.endswith("-POC") else None,
            listen_port=1,  # never listens: the network is simulated
        )
        for pid in ids
    ]
    now = SystemClock().now()
    agreement = Agreement(
        id="un-poc-directory",
        version=1,
        titles={"en": "UN points-of-contact directory (exercise)"},
        members=tuple(h.card() for h in homes),
        policy=Policy(frozenset(MESSAGE_TYPES), max_tlp="GREEN", exercise=True),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
    )
    for h in homes:
        agreement = agreement.sign(h.config().party_id, h.keys())
    nodes: dict[str, Node] = {}
    try:
        for i, h in enumerate(homes):
            node = Node(h)
            nodes[node.id] = node
            node.install_agreement(agreement)
            say("setting up nodes", i + 1, n_parties)
        coordinator = nodes[COORDINATOR]
        others = [nodes[pid] for pid in ids[1:]]
        setup = time.perf_counter() - t0
        pool = ThreadPoolExecutor(threads)
        try:
            t1 = time.perf_counter()
            _, pings = coordinator.ping(agreement.id, None, exercise=True)
            verified, report = _round(
                pool,
                coordinator,
                others,
                pings,
                "pong",
                lambda ping_id: {"ping": ping_id, "officer": "Duty"},
                "answered_at",
            )
            ping_s = time.perf_counter() - t1
            say("ping round", n_parties, n_parties)

            notify_s, acks = 0.0, 0
            if notify:
                t2 = time.perf_counter()
                body = {
                    "category": "malware-hosting",
                    "severity": 2,
                    "observed": format_time(now),
                    "activity": {"lang": "en", "text": "EXERCISE: a botnet's C2 servers"},
                    "concern": "infrastructure-in-your-jurisdiction",
                }
                sent = coordinator.send(
                    Content("notification", "GREEN", body), None, agreement.id, exercise=True
                )
                read_at = format_time(now)
                done, acks = _round(
                    pool,
                    coordinator,
                    others,
                    sent,
                    "ack",
                    lambda msg_id: {"message": msg_id, "officer": "Duty", "read_at": read_at},
                    "acked_at",
                )
                verified += done
                notify_s = time.perf_counter() - t2
                say("notification round", n_parties, n_parties)
        finally:
            pool.shutdown()
    finally:
        for node in nodes.values():
            node.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return ScaleResult(n_parties, setup, ping_s, report, notify_s, acks, verified, peak)


def _round(
    pool: ThreadPoolExecutor,
    coordinator: Node,
    others: list[Node],
    sent: list[Envelope],
    reply_type: str,
    reply_body: Callable[[str], dict[str, Any]],
    column: str,
) -> tuple[int, int]:
    """Deliver ``sent`` to everyone, have each officer reply, bring the replies back.

    Returns (receipts verified, how many of ``sent`` have ``column`` set at the end).
    """
    verified = _fan_out(pool, coordinator, others)
    by_recipient = {e.to: e.id for e in sent}

    def reply(node: Node) -> None:
        node.send(
            Content(reply_type, sent[0].tlp, reply_body(by_recipient[node.id])),
            None,
            None,
            exercise=True,
            by=f"officer-{node.id}",
        )

    list(pool.map(reply, others))
    verified += _fan_in(pool, others, coordinator)
    return verified, _count_done(coordinator, by_recipient.values(), column)


def _fan_out(pool: ThreadPoolExecutor, src: Node, dsts: list[Node]) -> int:
    return sum(pool.map(lambda d: _deliver(src, d), dsts))


def _fan_in(pool: ThreadPoolExecutor, srcs: list[Node], dst: Node) -> int:
    return sum(pool.map(lambda s: _deliver(s, dst), srcs))


def _count_done(coordinator: Node, message_ids: Iterable[str], column: str) -> int:
    """How many of ``message_ids`` (tracked at the coordinator) have ``column`` set."""
    from sqlalchemy import and_, func, select  # noqa: PLC0415

    from detente.store.schema import tracked  # noqa: PLC0415

    ids = list(message_ids)
    with coordinator.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    and_(tracked.c.message_id.in_(ids), tracked.c[column].is_not(None))
                )
            ).scalar_one()
        )


# -- any scenario, in one process ------------------------------------------------------


class InProcessRun(ExerciseRun):
    """``detente exercise run SCENARIO --in-process``: the same scenario, officers and
    report as :class:`~detente.exercise.runner.ExerciseRun`, with every party's node
    in this process on one shared clock; officers act through the service layer the
    client API calls, and envelopes and receipts travel by function call."""

    def setup(self) -> None:
        s = self.scenario
        self.clock = FakeClock(self.t0)
        self.local: dict[str, Node] = {}
        homes = [
            NodeHome.init(
                self.workdir / p.id,
                party_id=p.id,
                names=dict(p.names),
                country=p.country,
                languages=list(p.languages),
                listen_port=1,  # never listens: the network is simulated
            )
            for p in s.parties
        ]
        agreement = self._agreement([h.card() for h in homes])
        for h in homes:
            agreement = agreement.sign(h.config().party_id, h.keys())
        self.agreement = agreement
        for h in homes:
            node = Node(h, clock=self.clock)
            node.install_agreement(agreement)
            self.local[node.id] = node
        self._schedule_injects()

    def stop(self) -> None:
        for node in getattr(self, "local", {}).values():
            node.close()

    def _advance_to(self, offset: float) -> int | None:
        step = max(0.0, offset - self._offset())
        self.clock.advance(step)
        self.now = self.t0 + timedelta(seconds=offset)
        for _ in range(2):  # the second pass delivers what the first one's work queued
            for node in self.local.values():
                node.workflow_tick()
            self._deliver_all()
        dues = [d for n in self.local.values() if (d := n.next_workflow_due_ms()) is not None]
        return min(dues) if dues else None

    def _deliver_all(self) -> None:
        moved = True
        while moved:
            moved = False
            for src in self.local.values():
                for dst in self.local.values():
                    if dst is not src and _deliver(src, dst):
                        moved = True

    def _send(self, party: str, request: dict[str, Any]) -> list[dict[str, Any]]:
        node = self.local[party]
        try:
            sent = node.send(
                Content(request["type"], request["tlp"], request["body"]),
                request.get("to"),
                request.get("agreement"),
                exercise=True,
                by=f"officer-{party}",
            )
        except DetenteError as exc:
            raise DeliveryError(str(exc)) from exc
        self._deliver_all()
        return [{"id": e.id, "to": e.to, "seq": e.seq} for e in sent]

    def _incoming(self, party: str) -> list[dict[str, Any]]:
        return queries.message_list(self.local[party], direction="in", limit=1000)

    def _node_record(self, party: str) -> dict[str, Any]:
        node = self.local[party]
        now_ms = to_ms(self.clock.now())
        listed = cases.case_list(node, now_ms, exercise=True, limit=1000)
        details = [cases.case_detail(node, c["case"], now_ms) for c in listed]
        messages: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = queries.message_list(node, limit=1000, offset=offset)
            messages.extend(page)
            if len(page) < 1000:
                break
            offset += 1000
        return {"cases": details, "messages": messages, "alarms": queries.alarm_list(node)}

    def _report(self, party: str, other: str, since: str) -> dict[str, Any]:
        node = self.local[party]
        node.latest_checkpoint()
        return build_report(
            node,
            node.keys,
            other,
            since_ms=to_ms(parse_time(since)),
            until_ms=to_ms(self.clock.now()) + 1,
            exercise=True,
        )
