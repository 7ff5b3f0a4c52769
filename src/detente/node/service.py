"""The node's service layer: what the API, the CLI and the workers call.

One :class:`Node` per running party.  Everything that changes the log goes
through the :class:`~detente.node.writer.Writer` as a job; reads use their
own connections.  Decisions are the core's (``open_``, ``verify_receipt``,
agreement succession); this module stores and orders.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update

from detente.core.agreement import Agreement, AgreementSet, other_members, parse_ref
from detente.core.canonical import b64e, parse
from detente.core.case import REPLY_FIELDS, TRACKED_TYPES
from detente.core.checkpoint import Checkpoint, open_checkpoint, unverified_checkpoint
from detente.core.envelope import Content, Envelope, Opened, open_, seal_keeping_plaintext
from detente.core.forms import FormError, personal_data_findings
from detente.core.forms import validate as validate_form
from detente.core.ids import uuid7
from detente.core.logentry import envelope_entry, log_verifiers, receipt_entry
from detente.core.merkle import verify_consistency
from detente.core.party import PartyCard
from detente.core.receipt import Receipt, issue_receipt, note_hash, verify_receipt
from detente.core.timefmt import format_time
from detente.errors import (
    ConsistencyProofError,
    DetenteError,
    EncodingError,
    NotAMemberError,
    PersonalDataNotAllowedError,
    ReceiptError,
    ReplayError,
    UnknownAgreementError,
    VerificationError,
)
from detente.interop.index import index_items
from detente.node import workflow
from detente.node.clock import Clock, SystemClock, to_ms
from detente.node.config import NodeHome
from detente.node.log import NodeLog
from detente.node.writer import Tx, Writer
from detente.stix import validate_form_stix as validate_stix
from detente.store.db import mapped_errors, migrate, open_engine
from detente.store.schema import (
    agreements as agreements_t,
)
from detente.store.schema import (
    alarms,
    api_tokens,
    channels_in,
    channels_out,
    checkpoints,
    cosignatures,
    messages,
    node_info,
    notes,
    outbox,
    peer_checkpoints,
    receipts,
    tracked,
)

__all__ = ["ROLES", "DeliveryResult", "Node"]

log = logging.getLogger(__name__)
ROLES = ("viewer", "officer", "supervisor", "admin")
MAX_GAP_REPORT = 1000


@dataclass
class DeliveryResult:
    """What a delivery exchange answers: a receipt (or refusal) per envelope."""

    receipts: list[Receipt]
    statuses: list[str]  # accepted | duplicate | duplicate-seq
    checkpoint: bytes
    consistency: list[bytes]
    proof_from: int | None = None
    missing: dict[str, list[int]] = field(default_factory=dict)
    # Older checkpoint notes that original receipts (answers to duplicates) name.
    notes: dict[str, bytes] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "receipts": [r.to_json() for r in self.receipts],
            "statuses": self.statuses,
            "checkpoint": self.checkpoint.decode("utf-8"),
            "consistency": [b64e(h) for h in self.consistency],
            "proof_from": self.proof_from,
            "missing": self.missing,
            "notes": {digest: note.decode("utf-8") for digest, note in self.notes.items()},
        }


@dataclass(frozen=True)
class _Duplicate:
    """An envelope we already hold: answer with its original receipt."""

    receipt: Receipt
    status: str  # duplicate (same envelope) | duplicate-seq (same channel seq)
    note: bytes  # the checkpoint note the original receipt names


# -- jobs ---------------------------------------------------------------------


class _InstallAgreement:
    needs_checkpoint = False

    def __init__(self, node: Node, agreement: Agreement) -> None:
        self.node, self.agreement = node, agreement

    def apply(self, tx: Tx) -> None:
        agreement = self.agreement
        existing = tx.conn.execute(
            select(agreements_t.c.digest).where(
                and_(agreements_t.c.id == agreement.id, agreements_t.c.version == agreement.version)
            )
        ).scalar_one_or_none()
        if existing is not None:
            if existing != agreement.digest():
                raise VerificationError(
                    f"a different {agreement.ref} is already installed (digest {existing[:16]})"
                )
            self.new = False
            return
        self.new = True
        # Validate against a copy: the live set changes only after commit.
        trial = AgreementSet(self.node.agreements)
        trial.install(agreement)
        if not agreement.is_member(self.node.id):
            raise NotAMemberError(f"{self.node.id} is not a member of agreement {agreement.ref}")
        doc = agreement.to_bytes()
        tx.conn.execute(
            insert(agreements_t).values(
                id=agreement.id,
                version=agreement.version,
                digest=agreement.digest(),
                document=doc,
                installed_at=tx.now_ms,
            )
        )
        tx.log.append(
            "agreement",
            agreement.ref,
            {"kind": "agreement", "ref": agreement.ref, "digest": agreement.digest()},
        )

    def complete(self, tx: Tx, checkpoint: bytes) -> bool:
        return self.new


@dataclass(frozen=True)
class SendSpec:
    """One message to seal: content, recipients, agreement and header options."""

    content: Content
    recipients: tuple[str, ...]
    agreement: Agreement
    case: str | None = None
    reply_to: str | None = None
    exercise: bool = False
    by: str | None = None  # the officer (API user) sending it; None: the node itself


# Statements built once: SQLAlchemy's per-statement construction costs more
# than the row itself; executemany with these runs at the driver's speed.
_INSERT_MESSAGES = insert(messages)
_INSERT_OUTBOX = insert(outbox)
_INSERT_RECEIPTS = insert(receipts)
_UPDATE_CHANNEL_OUT = (
    update(channels_out)
    .where(channels_out.c.recipient == bindparam("b_recipient"))
    .values(next_seq=bindparam("b_next"))
)


class _Send:
    """Seal and commit messages: envelope, outbox row and log leaf, in one transaction."""

    needs_checkpoint = False

    def __init__(self, node: Node, specs: Sequence[SendSpec]) -> None:
        self.node, self.specs = node, specs
        self.sent: list[Envelope] = []

    def apply(self, tx: Tx) -> None:
        node, conn = self.node, tx.conn
        wanted = {r for spec in self.specs for r in spec.recipients}
        next_seq = dict(
            conn.execute(
                select(channels_out.c.recipient, channels_out.c.next_seq).where(
                    channels_out.c.recipient.in_(wanted)
                )
            ).all()
        )
        known = set(next_seq)
        message_rows, outbox_rows = [], []
        items: list[workflow.Item] = []
        for spec in self.specs:
            spec.agreement.check_valid_at(tx.now)
            for recipient in spec.recipients:
                seq = next_seq.get(recipient, 1)
                env, plaintext = seal_keeping_plaintext(
                    spec.content,
                    sender=node.id,
                    sender_keys=node.keys,
                    recipient=recipient,
                    agreement=spec.agreement,
                    seq=seq,
                    now=tx.now,
                    case=spec.case,
                    reply_to=spec.reply_to,
                    exercise=spec.exercise,
                )
                next_seq[recipient] = seq + 1
                index = tx.log.append("envelope", env.id, envelope_entry(env))
                message_rows.append(
                    {**_message_row(env, "out", index, tx.now_ms), "plaintext": plaintext}
                )
                outbox_rows.append(
                    {
                        "message_id": env.id,
                        "recipient": recipient,
                        "seq": seq,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": tx.now_ms,
                    }
                )
                self.sent.append(env)
                items.append(workflow.Item(env, spec.content.body, "out", spec.agreement, spec.by))
        conn.execute(_INSERT_MESSAGES, message_rows)
        conn.execute(_INSERT_OUTBOX, outbox_rows)
        workflow.apply_items(tx, node.id, items)
        index_items(tx, items)  # STIX content for the TAXII server (detente.interop)
        fresh = [{"recipient": r, "next_seq": n} for r, n in next_seq.items() if r not in known]
        if fresh:
            conn.execute(insert(channels_out), fresh)
        moved = [{"b_recipient": r, "b_next": n} for r, n in next_seq.items() if r in known]
        if moved:
            conn.execute(_UPDATE_CHANNEL_OUT, moved)

    def complete(self, tx: Tx, checkpoint: bytes) -> list[Envelope]:
        return self.sent


def _message_row(env: Envelope, direction: str, index: int, now_ms: int) -> dict[str, Any]:
    return {
        "id": env.id,
        "direction": direction,
        "agreement": env.agreement,
        "sender": env.from_,
        "recipient": env.to,
        "seq": env.seq,
        "created": env.created,
        "type": env.type,
        "tlp": env.tlp,
        "case_id": env.case,
        "reply_to": env.reply_to,
        "exercise": env.exercise,
        "envelope_hash": env.hash(),
        "envelope": env.to_bytes(),
        "log_index": index,
        "stored_at": now_ms,
    }


_GAP_SCAN = 5000  # stored seqs read past the contiguous prefix, at most, per look


def _scan_channel(
    conn: Any, sender: str, me: str, contiguous: int, max_seq: int
) -> tuple[int, list[int], int]:
    """Advance a channel's contiguous prefix; list (up to MAX_GAP_REPORT) and count
    the seqs missing below ``max_seq``.  Reads a bounded window, so a gap that
    lasts (a refused message) does not make every delivery slower."""
    window = (
        conn.execute(
            select(messages.c.seq)
            .where(
                and_(
                    messages.c.sender == sender,
                    messages.c.recipient == me,
                    messages.c.seq > contiguous,
                )
            )
            .order_by(messages.c.seq)
            .limit(_GAP_SCAN)
        )
        .scalars()
        .all()
    )
    missing: list[int] = []
    expect = contiguous + 1
    for seq in window:
        if seq == expect and not missing:
            contiguous = seq  # still the unbroken prefix
        else:
            while expect < seq and len(missing) < MAX_GAP_REPORT:
                missing.append(expect)
                expect += 1
        expect = seq + 1
    if len(window) < _GAP_SCAN:
        while expect < max_seq and len(missing) < MAX_GAP_REPORT:
            missing.append(expect)
            expect += 1
    stored = conn.execute(
        select(func.count()).where(
            and_(
                messages.c.sender == sender,
                messages.c.recipient == me,
                messages.c.seq > contiguous,
                messages.c.seq <= max_seq,
            )
        )
    ).scalar_one()
    return contiguous, missing, max(0, max_seq - contiguous - int(stored))


class _Receive:
    """Commit opened envelopes, then receipt them against the batch checkpoint."""

    needs_checkpoint = True

    def __init__(self, node: Node, items: list[Opened | _Duplicate], known_size: int | None):
        self.node, self.items, self.known_size = node, items, known_size
        self.indices: dict[int, int] = {}
        self.missing: dict[str, list[int]] = {}

    def apply(self, tx: Tx) -> None:
        conn = tx.conn
        fresh = [item.envelope for item in self.items if not isinstance(item, _Duplicate)]
        # Another batch may have committed some of these since they were checked.
        duplicates = self.node._find_duplicates(conn, fresh)
        rows = []
        items: list[workflow.Item] = []
        max_seq: dict[str, int] = {}
        seen_ids: set[str] = set()
        seen_seqs: set[tuple[str, int]] = set()
        for i, item in enumerate(self.items):
            if isinstance(item, _Duplicate):
                continue
            env = item.envelope
            if env.id in duplicates:
                self.items[i] = duplicates[env.id]
                continue
            if env.id in seen_ids or (env.from_, env.seq) in seen_seqs:
                raise ReplayError(
                    f"envelope {env.id} (seq {env.seq}) appears twice in one delivery"
                )
            seen_ids.add(env.id)
            seen_seqs.add((env.from_, env.seq))
            index = tx.log.append("envelope", env.id, envelope_entry(env))
            rows.append({**_message_row(env, "in", index, tx.now_ms), "plaintext": item.plaintext})
            self.indices[i] = index
            max_seq[env.from_] = max(max_seq.get(env.from_, 0), env.seq)
            items.append(workflow.Item(env, item.content.body, "in", item.agreement))
        if rows:
            conn.execute(_INSERT_MESSAGES, rows)
            workflow.apply_items(tx, self.node.id, items)
            index_items(tx, items)  # STIX content for the TAXII server (detente.interop)
        for sender, highest in max_seq.items():
            self._advance_channel(tx, sender, highest)

    def _advance_channel(self, tx: Tx, sender: str, highest: int) -> None:
        conn, me = tx.conn, self.node.id
        row = conn.execute(
            select(channels_in.c.contiguous, channels_in.c.max_seq).where(
                channels_in.c.sender == sender
            )
        ).first()
        contiguous, max_seq = (row[0], row[1]) if row else (0, 0)
        had_gap = max_seq > contiguous
        max_seq = max(max_seq, highest)
        contiguous, missing, missing_total = _scan_channel(conn, sender, me, contiguous, max_seq)
        values = {"contiguous": contiguous, "max_seq": max_seq}
        if row is not None:
            conn.execute(update(channels_in).where(channels_in.c.sender == sender).values(**values))
        else:
            conn.execute(insert(channels_in).values(sender=sender, **values))
        if missing_total:
            self.missing[sender] = missing
            if not had_gap:  # one alarm when a gap opens, not one per delivery while it lasts
                self.node._alarm(
                    conn,
                    tx.now_ms,
                    "gap",
                    sender,
                    f"channel {sender} -> {me}: {missing_total} message(s) missing below seq "
                    f"{max_seq}" + (f" (first {missing[0]})" if missing else ""),
                    {"missing": missing},
                )

    def complete(self, tx: Tx, checkpoint: bytes) -> DeliveryResult:
        node, conn = self.node, tx.conn
        cp_size = unverified_checkpoint(checkpoint).size
        out: list[Receipt] = []
        statuses: list[str] = []
        older: dict[str, bytes] = {}
        rows = []
        for i, item in enumerate(self.items):
            if isinstance(item, _Duplicate):
                out.append(item.receipt)
                statuses.append(item.status)
                older[item.receipt.checkpoint_hash] = item.note
                continue
            env = item.envelope
            index = self.indices[i]
            receipt = issue_receipt(
                env,
                me=node.id,
                my_keys=node.keys,
                received=tx.now,
                log_index=index,
                checkpoint=checkpoint,
                inclusion=tx.log.inclusion_proof(index, cp_size),
            )
            r_index = tx.log.append("receipt", env.id, receipt_entry(receipt))
            rows.append(
                {
                    "message_id": env.id,
                    "direction": "issued",
                    "receipt_hash": receipt.hash(),
                    "receipt": receipt.to_bytes(),
                    "checkpoint_hash": receipt.checkpoint_hash,
                    "log_index": r_index,
                }
            )
            out.append(receipt)
            statuses.append("accepted")
        if rows:
            conn.execute(_INSERT_RECEIPTS, rows)
            self.node._keep_note(conn, checkpoint)
        known = self.known_size
        consistency: list[bytes] = []
        if known is not None and 0 < known <= cp_size:
            consistency = tx.log.consistency_proof(known, cp_size)
        else:
            known = None
        older.pop(note_hash(checkpoint), None)
        return DeliveryResult(out, statuses, checkpoint, consistency, known, self.missing, older)


class _RecordReceipts:
    """The sender's side: store verified receipts, mark delivered, log them."""

    needs_checkpoint = False

    def __init__(
        self,
        node: Node,
        pairs: list[tuple[str, Receipt]],
        notes: set[bytes],
        witness: Callable[[Tx], Any] | None = None,
    ) -> None:
        self.node, self.pairs, self.notes, self.witness = node, pairs, notes, witness

    def apply(self, tx: Tx) -> None:
        conn = tx.conn
        ids = [message_id for message_id, _ in self.pairs]
        have = set(
            conn.execute(
                select(receipts.c.message_id).where(receipts.c.message_id.in_(ids))
            ).scalars()
        )
        rows = []
        for message_id, receipt in self.pairs:
            if message_id in have:
                continue
            have.add(message_id)
            index = tx.log.append("receipt", message_id, receipt_entry(receipt))
            rows.append(
                {
                    "message_id": message_id,
                    "direction": "got",
                    "receipt_hash": receipt.hash(),
                    "receipt": receipt.to_bytes(),
                    "checkpoint_hash": receipt.checkpoint_hash,
                    "log_index": index,
                }
            )
        if rows:
            conn.execute(_INSERT_RECEIPTS, rows)
            for note in self.notes:
                self.node._keep_note(conn, note)
        conn.execute(
            update(outbox)
            .where(outbox.c.message_id.in_(ids))
            .values(state="delivered", delivered_at=tx.now_ms, last_error=None)
        )
        workflow.mark_delivered(tx, ids)
        if self.witness is not None:
            self.witness(tx)

    def complete(self, tx: Tx, checkpoint: bytes) -> None:
        return None


class _Write:
    """A small write that does not touch the log (alarms, peer checkpoints, state)."""

    needs_checkpoint = False

    def __init__(self, fn: Callable[[Tx], Any]) -> None:
        self.fn = fn

    def apply(self, tx: Tx) -> None:
        self.result = self.fn(tx)

    def complete(self, tx: Tx, checkpoint: bytes) -> Any:
        return self.result


# -- the node -------------------------------------------------------------------


class Node:
    """One running party."""

    def __init__(self, home: NodeHome, *, clock: Clock | None = None) -> None:
        self.home = home
        self.config = home.config()
        self.keys = home.keys()
        self.card: PartyCard = home.card()
        self.id = self.config.party_id
        self.clock = clock or SystemClock()
        # Two engines on one database: the writer's, and one for reads that
        # never take SQLite's write lock (API queries, the delivery worker).
        self.write_engine = open_engine(self.config.db_url)
        migrate(self.write_engine)
        self.engine = open_engine(self.config.db_url, reads_only=True)
        self._check_identity()
        self.log = NodeLog(self.engine, self.id, self.keys)
        self.writer = Writer(self.write_engine, self.log, self.clock)
        self.agreements = AgreementSet()
        self.agreement_versions: dict[str, Agreement] = {}
        self._load_agreements()
        self.on_outbox: Callable[[], None] = lambda: None
        self.checkpoint_cache: dict[str, Checkpoint] = {}
        self._token_cache: dict[str, tuple[tuple[str, str], float]] = {}
        self.writer.start()

    def close(self) -> None:
        self.writer.stop()
        self.engine.dispose()
        self.write_engine.dispose()

    def _check_identity(self) -> None:
        with mapped_errors("checking the node identity"), self.write_engine.begin() as conn:
            stored = conn.execute(
                select(node_info.c.value).where(node_info.c.key == "party_id")
            ).scalar_one_or_none()
            if stored is None:
                conn.execute(insert(node_info).values(key="party_id", value=self.id))
            elif stored != self.id:
                raise DetenteError(f"database belongs to {stored}, not {self.id}")

    def _load_agreements(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(agreements_t.c.document).order_by(agreements_t.c.id, agreements_t.c.version)
            ).scalars()
            for doc in rows:
                agreement = Agreement.from_json(parse(bytes(doc)))
                self.agreements.install(agreement)
                self.agreement_versions[agreement.ref] = agreement

    # -- agreements ------------------------------------------------------------

    def install_agreement(self, agreement: Agreement) -> bool:
        """Install a (first or next) agreement version; True if it was new."""
        new = bool(self.writer.run(_InstallAgreement(self, agreement)))
        if new:
            self.agreements.install(agreement)
            self.agreement_versions[agreement.ref] = agreement
        return new

    def agreement(self, ref: str) -> Agreement:
        """An agreement by ``id`` (current version) or ``id@version`` (any installed)."""
        if "@" in ref:
            parse_ref(ref)
            try:
                return self.agreement_versions[ref]
            except KeyError:
                raise UnknownAgreementError(f"agreement {ref} is not installed") from None
        return self.agreements.current(ref)

    def peers(self) -> dict[str, PartyCard]:
        """Every other member of every current agreement."""
        return other_members(self.agreements, self.id)

    def agreements_member_check(self, party: str) -> None:
        """Raise :class:`NotAMemberError` unless ``party`` shares an agreement with us."""
        if party not in self.peers():
            raise NotAMemberError(f"{party} is not a member of any agreement installed here")

    # -- sending ---------------------------------------------------------------

    def send(
        self,
        content: Content,
        recipients: Sequence[str] | None,
        agreement_id: str | None,
        *,
        case: str | None = None,
        reply_to: str | None = None,
        exercise: bool = False,
        by: str | None = None,
    ) -> list[Envelope]:
        """Seal to each recipient (all other members if None), commit, queue for delivery."""
        return self.send_many(
            [
                self.spec(
                    content,
                    recipients,
                    agreement_id,
                    case=case,
                    reply_to=reply_to,
                    exercise=exercise,
                    by=by,
                )
            ]
        )

    def spec(
        self,
        content: Content,
        recipients: Sequence[str] | None,
        agreement_id: str | None,
        *,
        case: str | None = None,
        reply_to: str | None = None,
        exercise: bool = False,
        by: str | None = None,
    ) -> SendSpec:
        """Check the form, personal data and recipients; describe one send.

        The form must validate (:func:`detente.core.forms.validate`, and STIX
        bundles with the ``stix2`` library: the error names the field).  If
        the body looks like it holds personal data
        (:func:`~detente.core.forms.personal_data_findings`) but does not
        declare it, the send is refused naming the field: the officer removes
        it, or declares it — and then the agreement's policy decides.

        A reply (ack, response, pong, escalation, sighting) joins the case of
        the message it names, and its ``reply_to`` is that message; a new
        notification, request, consultation or ping opens a case unless one
        is given.
        """
        body = dict(content.body)
        validate_form(content.type, body)
        validate_stix(content.type, body)
        if not content.personal_data:
            findings = personal_data_findings(content.body, content.type)
            if findings:
                first = findings[0]
                raise PersonalDataNotAllowedError(
                    f"{first.field}: looks like personal data ({first.kind} {first.excerpt}); "
                    "remove it, or declare personal_data if the agreement allows it"
                )
        ref_field = REPLY_FIELDS.get(content.type)
        if content.type == "request" and "extends" in body:
            ref_field = "extends"  # an extension joins the case of the request it extends
        found = None
        if ref_field is not None:
            ref = body[ref_field]
            with self.engine.connect() as conn:
                found = conn.execute(
                    select(tracked.c.case_id, tracked.c.counterparty, tracked.c.agreement).where(
                        tracked.c.message_id == ref
                    )
                ).first()
            if found is None:
                raise FormError(ref_field, f"{ref} is not a message of any case on this node")
            if case is not None and case != found.case_id:
                raise FormError("case", f"{ref} belongs to case {found.case_id}, not {case}")
            if reply_to is not None and reply_to != ref:
                raise FormError("reply_to", f"must be {ref}, the message the {content.type} names")
            case, reply_to = found.case_id, ref
            if agreement_id is None:
                agreement_id = found.agreement
        elif content.type in TRACKED_TYPES and case is None:
            case = uuid7(self.clock.now())
        if agreement_id is None:
            raise FormError("agreement", "is required (only a reply takes its case's)")
        agreement = self.agreements.current(agreement_id)
        if recipients is None and found is not None:
            targets = [found.counterparty]
        else:
            targets = list(recipients or [m.id for m in agreement.members if m.id != self.id])
        for recipient in targets:
            agreement.member(recipient)
            if recipient == self.id:
                raise EncodingError("a node cannot send to itself")
        return SendSpec(
            content, tuple(dict.fromkeys(targets)), agreement, case, reply_to, exercise, by
        )

    def send_many(self, specs: Sequence[SendSpec]) -> list[Envelope]:
        """Seal and commit several sends together (all or nothing), then wake delivery."""
        sent: list[Envelope] = self.writer.run(_Send(self, specs))
        self.on_outbox()
        return sent

    # -- receiving -------------------------------------------------------------

    def _find_duplicates(self, conn: Any, envs: Sequence[Envelope]) -> dict[str, _Duplicate]:
        """Envelopes (by id) we already hold, by id or by channel seq, with their receipts."""
        if not envs:
            return {}
        by_id = {e.id: e for e in envs}
        by_seq = {(e.from_, e.seq): e for e in envs}
        senders = {e.from_ for e in envs}
        rows = conn.execute(
            select(
                messages.c.id, messages.c.envelope_hash, messages.c.sender, messages.c.seq
            ).where(
                messages.c.id.in_(list(by_id))
                | and_(
                    messages.c.sender.in_(senders),
                    messages.c.recipient == self.id,
                    messages.c.seq.in_([e.seq for e in envs]),
                )
            )
        ).all()
        matches: dict[str, tuple[str, str]] = {}  # new envelope id -> (stored id, status)
        for row in rows:
            env = by_id.get(row.id)
            if env is not None:
                if row.envelope_hash != env.hash():
                    raise ReplayError(
                        f"message id {env.id} was already used by a different envelope"
                    )
                matches[env.id] = (row.id, "duplicate")
                continue
            env = by_seq.get((row.sender, row.seq))
            if env is not None and env.id not in matches:
                matches[env.id] = (row.id, "duplicate-seq")
        if not matches:
            return {}
        stored = {m[0] for m in matches.values()}
        originals = {
            row.message_id: (bytes(row.receipt), bytes(row.note))
            for row in conn.execute(
                select(receipts.c.message_id, receipts.c.receipt, notes.c.note)
                .join(notes, notes.c.hash == receipts.c.checkpoint_hash)
                .where(and_(receipts.c.message_id.in_(stored), receipts.c.direction == "issued"))
            )
        }
        return {
            new_id: _Duplicate(
                Receipt.from_bytes(originals[old_id][0]), status, originals[old_id][1]
            )
            for new_id, (old_id, status) in matches.items()
        }

    def receive(self, raw: Sequence[Any], known_size: int | None = None) -> DeliveryResult:
        """Verify, commit and receipt a batch of envelopes (all or nothing on bad input).

        Raises :class:`DeliveryRefusedError` naming the first bad envelope; then
        nothing is stored.
        """
        envelopes: list[Envelope] = []
        seen_ids: set[str] = set()
        seen_seqs: set[tuple[str, int]] = set()
        for i, obj in enumerate(raw):
            try:
                env = Envelope.from_json(obj)
            except DetenteError as exc:
                raise DeliveryRefusedError(i, None, exc) from exc
            if env.id in seen_ids or (env.from_, env.seq) in seen_seqs:
                raise DeliveryRefusedError(
                    i, env.id, ReplayError(f"seq {env.seq} appears twice in one delivery")
                )
            seen_ids.add(env.id)
            seen_seqs.add((env.from_, env.seq))
            envelopes.append(env)
        items: list[Opened | _Duplicate] = []
        now = self.clock.now()
        with self.engine.connect() as conn:
            try:
                duplicates = self._find_duplicates(conn, envelopes)
            except ReplayError as exc:
                raise DeliveryRefusedError(0, None, exc) from exc
            for i, env in enumerate(envelopes):
                try:
                    dup = duplicates.get(env.id)
                    if dup is not None:
                        items.append(dup)
                        continue
                    opened = open_(
                        env, me=self.id, my_keys=self.keys, agreements=self.agreements, now=now
                    )
                    # The sender's node checked the form too; a peer that did not is refused.
                    validate_form(opened.content.type, dict(opened.content.body))
                    validate_stix(opened.content.type, opened.content.body)
                    items.append(opened)
                except DetenteError as exc:
                    raise DeliveryRefusedError(i, env.id, exc) from exc
        try:
            result: DeliveryResult = self.writer.run(_Receive(self, items, known_size))
        except ReplayError as exc:
            raise DeliveryRefusedError(0, None, exc) from exc
        return result

    # -- receipts (sender side) --------------------------------------------------

    def record_receipts(
        self,
        pairs: list[tuple[Envelope, dict[str, Any]]],
        *checkpoints: bytes,
        witness: tuple[str, bytes, Sequence[bytes], int | None] | None = None,
    ) -> list[Checkpoint]:
        """Verify receipts (each against the checkpoint note it names) and commit them.

        ``witness`` (peer, note, consistency proof, proof's first size): the
        answer's checkpoint, witnessed in the same commit as the receipts.
        """
        by_hash = {note_hash(note): note for note in checkpoints}
        verified: list[tuple[str, Receipt]] = []
        cps: list[Checkpoint] = []
        used: set[bytes] = set()
        for env, obj in pairs:
            receipt = Receipt.from_json(obj)
            agreement = self.agreement(env.agreement)
            note = by_hash.get(receipt.checkpoint_hash)
            if note is None:
                raise ReceiptError(f"receipt for {env.id}: the checkpoint it names was not sent")
            cps.append(
                verify_receipt(
                    receipt, env, agreement, note, checkpoint_cache=self.checkpoint_cache
                )
            )
            verified.append((env.id, receipt))
            used.add(note)
        step = None
        if witness is not None:
            peer, note, proof, proof_from = witness
            cp = self._verified_peer_checkpoint(peer, note)
            step = self._witness(peer, cp, note, proof, proof_from)
        if len(self.checkpoint_cache) > 1024:
            self.checkpoint_cache.clear()
        self.writer.run(_RecordReceipts(self, verified, used, step))
        return cps

    def _keep_note(self, conn: Any, note: bytes) -> None:
        digest = note_hash(note)
        if conn.execute(select(notes.c.hash).where(notes.c.hash == digest)).first() is None:
            conn.execute(insert(notes).values(hash=digest, note=note))

    # -- outbox ------------------------------------------------------------------

    def due_channels(self, now_ms: int) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(outbox.c.recipient)
                    .where(and_(outbox.c.state == "pending", outbox.c.next_attempt_at <= now_ms))
                    .distinct()
                ).scalars()
            )

    def next_wakeup_ms(self) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.min(outbox.c.next_attempt_at)).where(outbox.c.state == "pending")
            ).scalar_one_or_none()

    def pending_batch(
        self, recipient: str, limit: int, after_seq: int | None = None
    ) -> list[Envelope]:
        """The lowest-seq pending envelopes of a channel (past ``after_seq``), in order."""
        query = (
            select(messages.c.envelope)
            .join(outbox, outbox.c.message_id == messages.c.id)
            .where(and_(outbox.c.recipient == recipient, outbox.c.state == "pending"))
            .order_by(outbox.c.seq)
            .limit(limit)
        )
        if after_seq is not None:
            query = query.where(outbox.c.seq > after_seq)
        with self.engine.connect() as conn:
            return [Envelope.from_stored(bytes(r)) for r in conn.execute(query).scalars()]

    def delivery_failed(self, message_ids: Iterable[str], error: str, delay_ms: int) -> None:
        ids = list(message_ids)

        def fn(tx: Tx) -> None:
            tx.conn.execute(
                update(outbox)
                .where(outbox.c.message_id.in_(ids))
                .values(
                    attempts=outbox.c.attempts + 1,
                    next_attempt_at=tx.now_ms + delay_ms,
                    last_error=error[:500],
                )
            )

        self.writer.run(_Write(fn))

    def delivery_rejected(self, message_id: str, peer: str, error: str) -> None:
        def fn(tx: Tx) -> None:
            tx.conn.execute(
                update(outbox)
                .where(outbox.c.message_id == message_id)
                .values(state="rejected", last_error=error[:500])
            )
            self._alarm(
                tx.conn,
                tx.now_ms,
                "rejected",
                peer,
                f"{peer} refused message {message_id}: {error}",
            )

        self.writer.run(_Write(fn))

    def requeue(self, peer: str, seqs: Iterable[int]) -> int:
        """A peer says these seqs never arrived: deliver them again (if we hold them)."""
        wanted = list(seqs)[:MAX_GAP_REPORT]

        def fn(tx: Tx) -> int:
            result = tx.conn.execute(
                update(outbox)
                .where(
                    and_(
                        outbox.c.recipient == peer,
                        outbox.c.seq.in_(wanted),
                        outbox.c.state != "rejected",
                    )
                )
                .values(state="pending", next_attempt_at=tx.now_ms)
            )
            return int(result.rowcount or 0)

        count: int = self.writer.run(_Write(fn))
        if count:
            self.on_outbox()
        return count

    def open_gaps(self) -> dict[str, list[int]]:
        """Per sender, the seqs below the highest received that never arrived."""
        found: dict[str, list[int]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(channels_in.c.sender, channels_in.c.contiguous, channels_in.c.max_seq).where(
                    channels_in.c.max_seq > channels_in.c.contiguous
                )
            ).all()
            for sender, contiguous, max_seq in rows:
                _, missing, total = _scan_channel(conn, sender, self.id, contiguous, max_seq)
                if total:
                    found[sender] = missing
        return found

    # -- witnessing ---------------------------------------------------------------

    def latest_checkpoint(self) -> tuple[bytes, int]:
        """A signed checkpoint of the whole committed log (signing one if it grew)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(checkpoints.c.note, checkpoints.c.size)
                .order_by(checkpoints.c.size.desc())
                .limit(1)
            ).first()
        if row is not None and int(row.size) >= self.log.committed_size:
            return bytes(row.note), int(row.size)

        def sign(tx: Tx) -> tuple[bytes, int]:
            return tx.log.sign_checkpoint(tx.conn, tx.now_ms), tx.log.size

        result: tuple[bytes, int] = self.writer.run(_Write(sign))
        return result

    def known_peer_size(self, peer: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.max(peer_checkpoints.c.size)).where(peer_checkpoints.c.peer == peer)
            ).scalar_one_or_none()

    def _verified_peer_checkpoint(self, peer: str, note: bytes) -> Checkpoint:
        card = self.peers().get(peer)
        if card is None:
            raise NotAMemberError(f"{peer} is not a member of any installed agreement")
        cached = self.checkpoint_cache.get(note_hash(note))
        if cached is not None and cached.origin == card.log_origin:
            return cached  # verified moments ago, with the receipts that name it
        cp, _ = open_checkpoint(note, card.log_origin, log_verifiers(card))
        return cp

    def _witness(
        self, peer: str, cp: Checkpoint, note: bytes, proof: Sequence[bytes], proof_from: int | None
    ) -> Callable[[Tx], tuple[Checkpoint, bool]]:
        """The writer step of witnessing: check ``cp`` extends what we hold; store or alarm."""

        def fn(tx: Tx) -> tuple[Checkpoint, bool]:
            conn = tx.conn
            same = conn.execute(
                select(peer_checkpoints.c.root, peer_checkpoints.c.note).where(
                    and_(peer_checkpoints.c.peer == peer, peer_checkpoints.c.size == cp.size)
                )
            ).first()
            if same is not None:
                if bytes(same.root) != cp.root:
                    self._fork(tx, peer, bytes(same.note), note, "two roots for one tree size")
                    return cp, False
                return cp, True
            latest = conn.execute(
                select(peer_checkpoints.c.size, peer_checkpoints.c.root, peer_checkpoints.c.note)
                .where(and_(peer_checkpoints.c.peer == peer, peer_checkpoints.c.size < cp.size))
                .order_by(peer_checkpoints.c.size.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.size > 0:
                if proof_from != latest.size:
                    return cp, False  # no proof from what we hold: cannot extend our view
                try:
                    verify_consistency(latest.size, cp.size, proof, bytes(latest.root), cp.root)
                except ConsistencyProofError as exc:
                    self._fork(tx, peer, bytes(latest.note), note, str(exc))
                    return cp, False
            stored_from = int(latest.size) if latest is not None and latest.size > 0 else None
            conn.execute(
                insert(peer_checkpoints).values(
                    peer=peer,
                    size=cp.size,
                    root=cp.root,
                    note=note,
                    received_at=tx.now_ms,
                    proof_from=stored_from,
                    proof=b"".join(proof) if stored_from is not None else None,
                )
            )
            return cp, True

        return fn

    def observe_checkpoint(
        self, peer: str, note: bytes, proof: Sequence[bytes], proof_from: int | None
    ) -> tuple[Checkpoint, bool]:
        """Verify a peer's checkpoint; check it extends what we saw; store or alarm.

        A checkpoint that is not consistent with one we hold (a fork: the peer
        showed two different histories) raises an alarm and is kept, with the
        earlier one, as evidence.  Returns the checkpoint and whether it fit.
        """
        cp = self._verified_peer_checkpoint(peer, note)
        result: tuple[Checkpoint, bool] = self.writer.run(
            _Write(self._witness(peer, cp, note, proof, proof_from))
        )
        return result

    def _fork(self, tx: Tx, peer: str, old: bytes, new: bytes, why: str) -> None:
        log.error("FORK: %s presented inconsistent checkpoints: %s", peer, why)
        self._alarm(
            tx.conn,
            tx.now_ms,
            "fork",
            peer,
            f"{peer}'s log forked: {why}",
            {"earlier": old.decode(), "later": new.decode()},
        )

    def store_cosignature(self, witness: str, size: int, line: str, timestamp: int) -> None:
        def fn(tx: Tx) -> None:
            exists = tx.conn.execute(
                select(cosignatures.c.size).where(
                    and_(cosignatures.c.size == size, cosignatures.c.witness == witness)
                )
            ).first()
            if exists is None:
                tx.conn.execute(
                    insert(cosignatures).values(
                        size=size, witness=witness, line=line, timestamp=timestamp
                    )
                )

        self.writer.run(_Write(fn))

    # -- alarms --------------------------------------------------------------------

    # -- the workflow's clock -------------------------------------------------------

    def workflow_tick(self) -> workflow.DueResult:
        """Reminders, missed deadlines and escalations due now; scheduled ping rounds.

        Escalations are signed ``escalation`` messages to the other side,
        sent by the node itself; the case moves up the ladder when they are
        committed.
        """
        current = {a.id: a for a in self.agreements}
        total = workflow.DueResult([], [], 0)
        now_ms = to_ms(self.clock.now())
        with self.engine.connect() as conn:
            anything = conn.execute(
                select(tracked.c.message_id).where(tracked.c.next_check <= now_ms).limit(1)
            ).first()
        while anything is not None:
            result: workflow.DueResult = self.writer.run(
                _Write(lambda tx: workflow.due_work(tx, current))
            )
            total.notices.extend(result.notices)
            total.looked_at += result.looked_at
            for kind, peer, detail in result.notices:
                log.info("%s (%s): %s", kind, peer, detail)
            for esc in result.escalations:
                self._escalate(esc)
            total.escalations.extend(result.escalations)
            if result.looked_at < workflow.DUE_BATCH:
                break
        self._scheduled_pings(current)
        return total

    def next_workflow_due_ms(self) -> int | None:
        """When the workflow next has something to do (a reminder, a deadline, a rung)."""
        with self.engine.connect() as conn:
            due = conn.execute(select(func.min(tracked.c.next_check))).scalar_one_or_none()
        return None if due is None else int(due)

    def _escalate(self, esc: workflow.Escalation) -> None:
        with self.engine.connect() as conn:
            tlp = conn.execute(
                select(messages.c.tlp).where(messages.c.id == esc.message_id)
            ).scalar_one()
        body = {
            "message": esc.message_id,
            "from_level": esc.from_level,
            "to_level": esc.to_level,
            "reason": esc.reason,
        }
        try:
            self.send(
                Content("escalation", tlp, body),
                [esc.counterparty],
                esc.agreement,
                exercise=esc.exercise,
            )
        except DetenteError as exc:
            log.warning("escalation of %s failed: %s", esc.message_id, exc)
            self.raise_alarm("escalation-failed", esc.counterparty, f"{esc.message_id}: {exc}")
            return
        self.raise_alarm(
            "escalation",
            esc.counterparty,
            f"{esc.message_id} to {esc.counterparty} escalated to {esc.to_level} "
            f"({esc.reason}); the {esc.to_level} level on both sides is notified",
        )

    def _scheduled_pings(self, current: dict[str, Agreement]) -> None:
        now_ms = to_ms(self.clock.now())
        for agreement in current.values():
            every = agreement.policy.ping_every
            if every <= 0 or "ping" not in agreement.policy.message_types:
                continue
            key = f"ping:{agreement.id}"
            with self.engine.connect() as conn:
                last = conn.execute(
                    select(node_info.c.value).where(node_info.c.key == key)
                ).scalar_one_or_none()
            if last is not None and now_ms - int(last) < every * 1000:
                continue
            self.ping(agreement.id, None, scheduled=True)

    def ping(
        self,
        agreement_id: str,
        parties: Sequence[str] | None,
        *,
        scheduled: bool = False,
        by: str | None = None,
        exercise: bool = False,
    ) -> tuple[str, list[Envelope]]:
        """Send a ping round to ``parties`` (all other members if None); a person answers."""
        now = self.clock.now()
        round_id = ("sched-" if scheduled else "") + format_time(now)
        sent = self.send(
            Content("ping", "CLEAR", {"round": round_id}),
            parties,
            agreement_id,
            by=by,
            exercise=exercise,
        )
        key = f"ping:{agreement_id}"

        def fn(tx: Tx) -> None:
            value = str(tx.now_ms)
            done = tx.conn.execute(
                update(node_info).where(node_info.c.key == key).values(value=value)
            )
            if not done.rowcount:
                tx.conn.execute(insert(node_info).values(key=key, value=value))

        self.writer.run(_Write(fn))
        return round_id, sent

    def _alarm(
        self,
        conn: Any,
        now_ms: int,
        kind: str,
        peer: str | None,
        detail: str,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(
            insert(alarms).values(
                kind=kind,
                peer=peer,
                detail=detail,
                evidence=json.dumps(evidence).encode() if evidence is not None else None,
                created_at=now_ms,
            )
        )

    def raise_alarm(self, kind: str, peer: str | None, detail: str) -> None:
        self.writer.run(_Write(lambda tx: self._alarm(tx.conn, tx.now_ms, kind, peer, detail)))

    # -- tokens ----------------------------------------------------------------------

    def add_token(self, name: str, role: str) -> str:
        if role not in ROLES:
            raise EncodingError(f"role {role!r} is not one of {', '.join(ROLES)}")
        token = "dtk_" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        with mapped_errors("adding an API token"), self.write_engine.begin() as conn:
            if conn.execute(select(api_tokens.c.name).where(api_tokens.c.name == name)).first():
                raise EncodingError(f"a token named {name!r} already exists")
            conn.execute(
                insert(api_tokens).values(
                    name=name, role=role, token_hash=digest, created_at=to_ms(self.clock.now())
                )
            )
        return token

    def authenticate(self, token: str) -> tuple[str, str] | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._token_cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_tokens.c.name, api_tokens.c.role).where(
                    api_tokens.c.token_hash == digest
                )
            ).first()
        who = (str(row.name), str(row.role)) if row else None
        if who is not None:
            # Kept briefly: every API call authenticates; a token added is
            # usable at once, and a role change takes effect within a minute.
            if len(self._token_cache) > 1000:
                self._token_cache.clear()
            self._token_cache[digest] = (who, now + 60)
        return who


def init_node(path: Path, **settings: Any) -> NodeHome:
    """``detente init``: keys, configuration and card (see :meth:`NodeHome.init`),
    the database with its schema, and an admin token for the local CLI."""
    home = NodeHome.init(path, **settings)
    node = Node(home)
    try:
        home.save_cli_token(node.add_token("cli", "admin"))
    finally:
        node.close()
    return home


class DeliveryRefusedError(DetenteError):
    """A delivery batch was refused; ``index`` names the bad envelope."""

    def __init__(self, index: int, message_id: str | None, cause: DetenteError) -> None:
        where = f"envelope {index}" + (f" ({message_id})" if message_id else "")
        super().__init__(f"{where}: {cause}")
        self.index, self.message_id, self.cause = index, message_id, cause
