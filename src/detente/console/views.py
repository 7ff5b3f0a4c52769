"""What the console shows, as plain data: inbox, case, directory, log status, exercises.

Read-side only, on the node's own read engine and the same queries the REST
API answers with (:mod:`detente.node.cases`, :mod:`detente.node.queries`):
the templates only lay these values out.  The decisions a duty officer needs
at a glance are made here, in one place, from the workflow's records:

- which group an item belongs to, most urgent first — a deadline passed
  unmet (*overdue*), above the first rung of the ladder (*escalated*),
  arrived and not yet acknowledged by a person (*new*), owed by us, waited
  for, settled;
- the next step (acknowledge, answer, answer the ping, wait);
- the next deadline and how far it is;
- where each receipt stands as proof (verified now; in the counterparty's
  log as this node witnessed it, or cosigned by witnesses for our own).

Not here: HTTP, sessions, forms (:mod:`detente.console.web`), or any write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, func, not_, or_, select

from detente.core.envelope import Envelope
from detente.core.policy import LEVELS, TLP_LABELS
from detente.core.receipt import Receipt, verify_receipt
from detente.core.timefmt import parse_time
from detente.errors import DetenteError
from detente.interop.tlp import marking_tlp, object_tlp
from detente.node import cases, queries
from detente.node.clock import to_ms
from detente.node.service import Node
from detente.store.schema import (
    alarms,
    cosignatures,
    messages,
    peer_checkpoints,
    tracked,
)

__all__ = [
    "GROUPS",
    "InboxFilters",
    "case_view",
    "directory_view",
    "exercise_report",
    "exercise_reports",
    "fork_alarms",
    "inbox",
    "log_status",
]

# Most urgent first: the inbox is sorted by group, then newest first.
GROUPS = ("overdue", "escalated", "new", "owed", "waiting", "settled")
INBOX_TYPES = ("notification", "request", "consultation", "escalation", "ping")
_CLOSED = ("declined", "completed")
_CASE_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_PARTY_RE = re.compile(r"^[A-Z0-9]{2,8}-[A-Z0-9-]{1,23}$")


@dataclass(frozen=True)
class InboxFilters:
    counterparty: str | None = None
    type: str | None = None
    severity: int | None = None
    case: str | None = None
    exercise: str = "all"  # all | real | exercise
    direction: str = "all"  # all | in | out
    group: str | None = None
    offset: int = 0
    limit: int = 100

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> InboxFilters:
        """Filters from a query string; values that are not allowed are ignored."""

        def pick(name: str, allowed: tuple[str, ...]) -> str | None:
            value = q.get(name) or None
            return value if value in allowed else None

        severity = q.get("severity", "")
        offset = q.get("offset", "0")
        party = q.get("counterparty") or None
        case_id = (q.get("case") or "").strip() or None
        return cls(
            counterparty=party if party and _PARTY_RE.match(party) else None,
            type=pick("type", INBOX_TYPES),
            severity=int(severity) if severity in ("0", "1", "2", "3", "4", "5") else None,
            case=case_id if case_id and _CASE_RE.match(case_id) else None,
            exercise=pick("exercise", ("real", "exercise")) or "all",
            direction=pick("direction", ("in", "out")) or "all",
            group=pick("group", GROUPS),
            offset=min(int(offset), 1_000_000) if offset.isdigit() else 0,
        )

    def query(self, **changes: Any) -> dict[str, str]:
        """These filters (with ``changes``) as query parameters, for links."""
        values = {
            "counterparty": self.counterparty,
            "type": self.type,
            "severity": self.severity,
            "case": self.case,
            "exercise": None if self.exercise == "all" else self.exercise,
            "direction": None if self.direction == "all" else self.direction,
            "group": self.group,
            "offset": self.offset or None,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v is not None}


def _group_expr(now_ms: int) -> Any:
    t = tracked.c
    closed = t.state.in_(_CLOSED)
    settled = or_(
        closed,
        and_(t.type == "ping", t.answered_at.is_not(None)),
        and_(t.acked_at.is_not(None), or_(t.answer_due.is_(None), t.answered_at.is_not(None))),
    )
    overdue = and_(
        not_(closed),
        or_(
            and_(t.ack_due.is_not(None), t.acked_at.is_(None), t.ack_due <= now_ms),
            and_(t.answer_due.is_not(None), t.answered_at.is_(None), t.answer_due <= now_ms),
        ),
    )
    return case(
        (overdue, 0),
        (and_(not_(settled), t.level != LEVELS[0]), 1),
        (and_(not_(settled), t.direction == "in", t.acked_at.is_(None)), 2),
        (and_(not_(settled), t.direction == "in"), 3),
        (not_(settled), 4),
        else_=5,
    )


def group_of(row: Mapping[str, Any], now_ms: int) -> str:
    """The inbox group of one tracked row: what :func:`_group_expr` computes in SQL."""
    closed = row["state"] in _CLOSED
    settled = (
        closed
        or (row["type"] == "ping" and row["answered_at"] is not None)
        or (
            row["acked_at"] is not None
            and (row["answer_due"] is None or row["answered_at"] is not None)
        )
    )
    overdue = not closed and any(
        row[due] is not None and row[done] is None and row[due] <= now_ms
        for due, done in (("ack_due", "acked_at"), ("answer_due", "answered_at"))
    )
    if overdue:
        return "overdue"
    if settled:
        return "settled"
    if row["level"] != LEVELS[0]:
        return "escalated"
    if row["direction"] == "in":
        return "new" if row["acked_at"] is None else "owed"
    return "waiting"


def _where(f: InboxFilters) -> list[Any]:
    t = tracked.c
    where: list[Any] = []
    if f.counterparty:
        where.append(t.counterparty == f.counterparty)
    if f.type:
        where.append(t.type == f.type)
    if f.severity is not None:
        where.append(t.severity == f.severity)
    if f.case:
        where.append(t.case_id == f.case)
    if f.exercise != "all":
        where.append(t.exercise == (f.exercise == "exercise"))
    if f.direction != "all":
        where.append(t.direction == f.direction)
    return where


def next_step(row: Mapping[str, Any], group: str) -> str:
    """What the duty officer does next about one item (a code the catalogue labels)."""
    if group == "settled":
        return "none"
    ping = row["type"] == "ping"
    if row["direction"] == "in":
        if ping:
            return "pong"
        if row["acked_at"] is None:
            return "acknowledge"
        return "answer" if row["answer_due"] is not None else "none"
    if row["acked_at"] is None:
        return "await-pong" if ping else "await-ack"
    return "await-answer"


def actions(row: Mapping[str, Any], step: str) -> list[str]:
    """What an officer may do about an item from its case page (replies this node owes)."""
    if row["direction"] != "in":
        return []
    found = []
    if step == "acknowledge":
        found.append("ack")
    if row["type"] == "ping" and row["answered_at"] is None:
        found.append("pong")
    if row["type"] in ("request", "notification", "consultation") and row["state"] not in _CLOSED:
        found.append("respond")
    return found


def next_deadline(row: Mapping[str, Any]) -> int | None:
    """The earliest deadline of the item still unmet (ms), if any."""
    if row["state"] in _CLOSED:
        return None
    dues = [
        row[due]
        for due, done in (("ack_due", "acked_at"), ("answer_due", "answered_at"))
        if row[due] is not None and row[done] is None
    ]
    return min(dues) if dues else None


def inbox(node: Node, now_ms: int, f: InboxFilters) -> dict[str, Any]:
    """The inbox: counts per group and the page of items ``f`` selects, most urgent first."""
    t = tracked.c
    group = _group_expr(now_ms).label("grp")
    where = _where(f)
    counts_q = select(group, func.count()).group_by(group)
    rows_q = select(
        t.message_id,
        t.case_id,
        t.direction,
        t.counterparty,
        t.agreement,
        t.type,
        t.subject,
        t.severity,
        t.urgency,
        t.exercise,
        t.sent_at,
        t.state,
        t.level,
        t.ack_due,
        t.acked_at,
        t.ack_officer,
        t.answer_due,
        t.answered_at,
        t.answer_status,
        group,
    )
    if where:
        counts_q = counts_q.where(*where)
        rows_q = rows_q.where(*where)
    if f.group is not None:
        rows_q = rows_q.where(_group_expr(now_ms) == GROUPS.index(f.group))
    rows_q = rows_q.order_by(group, t.sent_at.desc(), t.message_id).limit(f.limit).offset(f.offset)
    with node.engine.connect() as conn:
        counts = {GROUPS[g]: int(n) for g, n in conn.execute(counts_q)}
        rows = conn.execute(rows_q).all()
        parties = list(
            conn.execute(select(t.counterparty).distinct().order_by(t.counterparty)).scalars()
        )
    items = []
    for r in rows:
        row = dict(r._mapping)
        name = GROUPS[row.pop("grp")]
        row["group"] = name
        row["exercise"] = bool(row["exercise"])
        row["next_step"] = next_step(row, name)
        row["next_due"] = next_deadline(row)
        row["escalated"] = row["level"] != LEVELS[0]
        items.append(row)
    total = sum(counts.values())
    shown = counts.get(f.group, 0) if f.group else total
    return {
        "counts": {g: counts.get(g, 0) for g in GROUPS},
        "total": total,
        "matching": shown,
        "items": items,
        "counterparties": parties,
        "offset": f.offset,
        "limit": f.limit,
        "has_more": f.offset + len(items) < shown,
        "exercise_shown": any(i["exercise"] for i in items),
    }


# -- one case -----------------------------------------------------------------------------


@dataclass
class Proof:
    """Where one message's receipt stands as evidence."""

    direction: str
    receipt: bool = False
    verified: bool | None = None  # out: the counterparty's receipt checked again now
    error: str | None = None
    received: str | None = None
    log_index: int | None = None
    witnessed_size: int | None = None  # out: their checkpoint we hold that covers it
    witnessed_at: int | None = None
    cosigned_by: list[str] = field(default_factory=list)  # in: witnesses of our log


def _proof(node: Node, detail: Mapping[str, Any]) -> Proof:
    proof = Proof(detail["direction"])
    raw = detail.get("receipt")
    if raw is None:
        return proof
    proof.receipt = True
    try:
        receipt = Receipt.from_json(raw)
    except DetenteError as exc:
        proof.verified, proof.error = False, str(exc)
        return proof
    proof.received, proof.log_index = receipt.received, receipt.log_index
    with node.engine.connect() as conn:
        if detail["direction"] == "out":
            env = Envelope.from_json(detail["envelope"])
            note = detail.get("receipt_checkpoint")
            try:
                verify_receipt(
                    receipt,
                    env,
                    node.agreement(env.agreement),
                    (note or "").encode(),
                    checkpoint_cache=node.checkpoint_cache,
                )
                proof.verified = True
            except DetenteError as exc:
                proof.verified, proof.error = False, str(exc)
            seen = conn.execute(
                select(peer_checkpoints.c.size, peer_checkpoints.c.received_at)
                .where(
                    and_(
                        peer_checkpoints.c.peer == env.to,
                        peer_checkpoints.c.size > receipt.log_index,
                    )
                )
                .order_by(peer_checkpoints.c.size)
                .limit(1)
            ).first()
            if seen is not None:
                proof.witnessed_size, proof.witnessed_at = int(seen.size), int(seen.received_at)
        else:
            proof.cosigned_by = sorted(
                conn.execute(
                    select(cosignatures.c.witness)
                    .where(cosignatures.c.size > receipt.log_index)
                    .distinct()
                ).scalars()
            )
    return proof


def stix_rows(bundle: Any, message_tlp: str) -> list[dict[str, Any]]:
    """A STIX bundle's objects as table rows, each with its TLP label.

    An object without a TLP marking of its own carries the message's label.
    """
    if not isinstance(bundle, Mapping) or not isinstance(bundle.get("objects"), list):
        return []
    objects = [o for o in bundle["objects"] if isinstance(o, Mapping)]
    local = {
        str(o.get("id")): label
        for o in objects
        if o.get("type") == "marking-definition" and (label := marking_tlp(o)) is not None
    }
    rows = []
    for obj in objects:
        if obj.get("type") == "marking-definition":
            continue
        own = object_tlp(obj, local)
        value = obj.get("pattern") or obj.get("value") or obj.get("name") or ""
        rows.append(
            {
                "type": str(obj.get("type")),
                "id": str(obj.get("id", "")),
                "name": str(obj.get("name", "")),
                "value": str(value)[:500],
                "tlp": own or message_tlp,
                "tlp_own": own is not None,
                "valid_from": obj.get("valid_from"),
            }
        )
    return rows


def _ladder(node: Node, row: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """The escalation ladder of one item: rungs, the current one, when the next is due."""
    try:
        policy = node.agreements.current(str(row["agreement"])).policy
    except DetenteError:
        return {"rungs": [], "current": row["level"], "next_at": None, "next_level": None}
    current = LEVELS.index(row["level"])
    rungs = [
        {"level": r.level, "after": r.after, "reached": LEVELS.index(r.level) <= current}
        for r in policy.ladder
    ]
    next_at = next_level = None
    missed = row.get("missed_at")
    if missed is not None and row["state"] not in _CLOSED:
        for r in policy.ladder:
            if LEVELS.index(r.level) > current:
                next_at, next_level = int(missed) + r.after * 1000, r.level
                break
    return {"rungs": rungs, "current": row["level"], "next_at": next_at, "next_level": next_level}


def case_view(node: Node, case_id: str, now_ms: int) -> dict[str, Any]:
    """Everything about one case: its items, messages (with content and proof), timeline."""
    detail = cases.case_detail(node, case_id, now_ms)
    with node.engine.connect() as conn:
        raw_rows = {
            r.message_id: dict(r._mapping)
            for r in conn.execute(select(tracked).where(tracked.c.case_id == case_id))
        }
    items = []
    for item in detail["tracked"]:
        row = raw_rows[item["message"]]
        group_row = {**row, "exercise": bool(row["exercise"])}
        group = group_of(row, now_ms)
        items.append(
            {
                **item,
                "row": group_row,
                "group": group,
                "next_step": next_step(row, group),
                "actions": actions(row, next_step(row, group)),
                "next_due": next_deadline(row),
                "ladder": _ladder(node, row, now_ms),
            }
        )
    shown = []
    timeline: list[dict[str, Any]] = []
    for m in detail["messages"]:
        full = queries.message_detail(node, m["id"])
        content = full.get("content")
        body = content["body"] if content else None
        proof = _proof(node, full)
        indicators: list[dict[str, Any]] = []
        if body is not None:
            for name in ("indicators", "evidence"):
                indicators += stix_rows(body.get(name), str(full["tlp"]))
        shown.append(
            {
                "id": m["id"],
                "direction": m["direction"],
                "from": m["from"],
                "to": m["to"],
                "type": m["type"],
                "tlp": m["tlp"],
                "created": m["created"],
                "reply_to": m["reply_to"],
                "exercise": bool(full["exercise"]),
                "personal_data": bool(content and content["personal_data"]),
                "body": body,
                "pap": body.get("pap") if body else None,
                "handling": list(body.get("handling") or []) if body else [],
                "indicators": indicators,
                "proof": proof,
                "log_index": full.get("log_index"),
                "delivery": full.get("delivery"),
            }
        )
        timeline.append({**m, "at": m["created"], "kind": "message", "message": m["id"]})
        if proof.receipt and proof.received:
            timeline.append(
                {
                    "at": proof.received,
                    "kind": "receipt",
                    "message": m["id"],
                    "direction": m["direction"],
                    "from": m["from"],
                    "to": m["to"],
                    "log_index": proof.log_index,
                }
            )
    timeline.extend({**e, "kind": "event", "event": e["kind"]} for e in detail["events"])
    order = {"message": 0, "receipt": 1, "event": 2}
    timeline.sort(key=lambda e: (parse_time(e["at"]), order[e["kind"]]))
    agreements = sorted({str(r["agreement"]) for r in raw_rows.values()})
    return {
        "case": case_id,
        "exercise": detail["exercise"],
        "agreements": agreements,
        "counterparties": sorted({str(r["counterparty"]) for r in raw_rows.values()}),
        "items": items,
        "messages": shown,
        "timeline": timeline,
    }


def reply_target(node: Node, message_id: str) -> dict[str, Any] | None:
    """The tracked item a reply would answer (its case, type, TLP, exercise flag)."""
    with node.engine.connect() as conn:
        row = conn.execute(
            select(
                tracked.c.message_id,
                tracked.c.case_id,
                tracked.c.type,
                tracked.c.direction,
                tracked.c.counterparty,
                tracked.c.exercise,
                tracked.c.acked_at,
                messages.c.tlp,
            )
            .join(messages, messages.c.id == tracked.c.message_id)
            .where(tracked.c.message_id == message_id)
        ).first()
    return None if row is None else {**row._mapping, "exercise": bool(row.exercise)}


# -- directory, log, alarms ---------------------------------------------------------------


def directory_view(node: Node, now_ms: int, lang: str) -> list[dict[str, Any]]:
    """Points of contact per agreement, each with its ping-test record."""
    report = cases.ping_report(node, now_ms)
    stats = {p["party"]: p for p in report["parties"]}
    t = tracked.c
    with node.engine.connect() as conn:
        last = {
            str(party): int(at)
            for party, at in conn.execute(
                select(t.counterparty, func.max(t.sent_at))
                .where(and_(t.type == "ping", t.direction == "out"))
                .group_by(t.counterparty)
            )
        }
    out = cases.directory(node.agreements, lang)
    for agreement in out:
        for contact in agreement["contacts"]:
            contact["self"] = contact["party"] == node.id
            contact["ping"] = stats.get(contact["party"])
            contact["last_ping"] = last.get(contact["party"])
    return out


def log_status(node: Node) -> dict[str, Any]:
    """The log's latest signed checkpoint and cosignatures, the witnessed peers, alarms."""
    info = queries.checkpoint_info(node)
    c = cosignatures.c
    with node.engine.connect() as conn:
        latest = select(c.witness, func.max(c.size).label("size")).group_by(c.witness).subquery()
        witnesses = [
            {"witness": r.witness, "size": int(r.size), "timestamp": int(r.timestamp)}
            for r in conn.execute(
                select(c.witness, c.size, c.timestamp)
                .join(latest, and_(latest.c.witness == c.witness, latest.c.size == c.size))
                .order_by(c.witness)
            )
        ]
    return {
        "checkpoint": info,
        "witnesses": witnesses,
        "peers": queries.peer_list(node),
        "alarms": queries.alarm_list(node),
        "acknowledged": queries.alarm_list(node, include_acknowledged=True)[:50],
    }


def fork_alarms(node: Node) -> list[dict[str, Any]]:
    """Fork alarms no supervisor has acknowledged: shown in red on every page."""
    a = alarms.c
    with node.engine.connect() as conn:
        rows = conn.execute(
            select(a.id, a.peer, a.detail, a.created_at)
            .where(and_(a.kind == "fork", a.acknowledged_at.is_(None)))
            .order_by(a.id.desc())
            .limit(20)
        ).all()
    return [dict(r._mapping) for r in rows]


def alarm_role(kind: str) -> str:
    """Who may acknowledge an alarm: a fork (evidence that a peer rewrote its log) needs a
    supervisor; any officer may acknowledge a notice (a reminder, a gap, an escalation)."""
    return "supervisor" if kind == "fork" else "officer"


def alarm_kind(node: Node, alarm_id: int) -> str | None:
    with node.engine.connect() as conn:
        kind = conn.execute(
            select(alarms.c.kind).where(alarms.c.id == alarm_id)
        ).scalar_one_or_none()
    return None if kind is None else str(kind)


def acknowledge_alarm(node: Node, alarm_id: int, now_ms: int) -> dict[str, Any] | None:
    """Mark an alarm acknowledged; the alarm (kind, peer, detail) or None if already done."""
    a = alarms.c
    with node.write_engine.begin() as conn:
        row = conn.execute(
            select(a.id, a.kind, a.peer, a.detail).where(
                and_(a.id == alarm_id, a.acknowledged_at.is_(None))
            )
        ).first()
        if row is None:
            return None
        conn.execute(alarms.update().where(a.id == alarm_id).values(acknowledged_at=now_ms))
    return dict(row._mapping)


# -- exercises ----------------------------------------------------------------------------

_REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
CHARTS = ("timeline.png", "times.png", "deadlines.png")


def exercise_dir(node: Node) -> Path:
    """Where after-action reports are kept: ``HOME/exercises/NAME/`` (``detente exercise
    run --out HOME/exercises/NAME``)."""
    return node.home.path / "exercises"


def exercise_reports(node: Node) -> list[dict[str, Any]]:
    root = exercise_dir(node)
    found = []
    if root.is_dir():
        for path in sorted(root.iterdir()):
            report = path / "report.json"
            if not _REPORT_NAME.match(path.name) or not report.is_file():
                continue
            try:
                data = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            found.append(
                {
                    "name": path.name,
                    "scenario": str(data.get("scenario", path.name)),
                    "start": data.get("start"),
                    "parties": list(data.get("parties", [])),
                    "messages_sent": data.get("messages_sent"),
                    "audit_ok": bool(data.get("audit", {}).get("ok")),
                }
            )
    return found


def exercise_report(node: Node, name: str) -> dict[str, Any] | None:
    if not _REPORT_NAME.match(name):
        return None
    path = exercise_dir(node) / name
    try:
        data: dict[str, Any] = json.loads((path / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    data["name"] = name
    data["charts"] = [c for c in CHARTS if (path / c).is_file()]
    return data


def exercise_chart(node: Node, name: str, chart: str) -> Path | None:
    if not _REPORT_NAME.match(name) or chart not in CHARTS:
        return None
    path = exercise_dir(node) / name / chart
    return path if path.is_file() else None


def node_now_ms(node: Node) -> int:
    return to_ms(node.clock.now())


def tlp_class(label: str) -> str:
    """The CSS class of a TLP (or PAP) label: its colour (FIRST TLP 2.0)."""
    label = label.removeprefix("TLP:").removeprefix("PAP:")
    return "amber" if label == "AMBER+STRICT" else label.lower() if label in TLP_LABELS else ""
