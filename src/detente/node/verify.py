"""``detente log verify``: the node's self-audit, read straight from the store.

It rebuilds the log's tree from the stored leaves and checks it against every
checkpoint the node signed and every receipt it got:

1. leaves are numbered 0, 1, 2, ... with no gap, and each stored leaf hash is
   ``SHA-256(0x00 || entry)`` of its stored entry;
2. each entry matches the object it names: the stored envelope (its hash and
   routing columns), the stored receipt (its hash; issued receipts are signed
   by this node and name the stored envelope), the installed agreement (its
   digest); and every stored message and receipt is in the log;
3. every stored complete-subtree node equals the rebuilt tree's;
4. every stored checkpoint verifies under this node's Ed25519 *and* ML-DSA-65
   log keys and its root is the rebuilt tree's root at its size;
5. every receipt got verifies (:func:`~detente.core.receipt.verify_receipt`)
   against the stored envelope it names.

It only reads, in one snapshot (a deferred SQLite transaction, a read-only
REPEATABLE READ one on PostgreSQL), so it can run while the node is serving.
Problems are collected, not raised: the report names every entry at fault
(up to :data:`MAX_PROBLEMS`, then how many more).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy import Connection, Engine, and_, create_engine, event, func, select
from sqlalchemy.pool import NullPool

from detente.core.agreement import Agreement
from detente.core.canonical import SIGNING_PREFIX, parse
from detente.core.checkpoint import Checkpoint, verify_checkpoint
from detente.core.envelope import Envelope
from detente.core.keys import ed25519_public
from detente.core.logentry import log_origin, log_verifiers
from detente.core.merkle import MerkleTree
from detente.core.party import PartyCard
from detente.core.receipt import Receipt, verify_receipt
from detente.errors import DetenteError
from detente.node.config import NodeHome
from detente.store.db import mapped_errors, open_engine
from detente.store.schema import agreements as agreements_t
from detente.store.schema import checkpoints, log_leaves, log_nodes, messages, receipts

__all__ = ["MAX_PROBLEMS", "VerifyReport", "verify_home", "verify_log"]

#: problems listed in full; beyond this the report says how many more there were.
MAX_PROBLEMS = 100
_CHUNK = 50_000
_LEAF_PREFIX = SIGNING_PREFIX + b"leaf\x00"
_RECEIPT_PREFIX = SIGNING_PREFIX + b"receipt\x00"

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VerifyReport:
    """What ``log verify`` found; :attr:`ok` when :attr:`problems` is empty."""

    size: int
    checkpoints_checked: int
    receipts_checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class _Problems:
    def __init__(self, cap: int = MAX_PROBLEMS) -> None:
        self.items: list[str] = []
        self.cap = cap
        self.dropped = 0

    def add(self, text: str) -> None:
        if len(self.items) < self.cap:
            self.items.append(text)
        else:
            self.dropped += 1

    def result(self) -> list[str]:
        if self.dropped:
            return [*self.items, f"... and {self.dropped} more problem(s)"]
        return list(self.items)


def _sha256_tagged(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection seeing one consistent state of the store.

    The node's SQLite engine begins every transaction with ``BEGIN IMMEDIATE``
    (the write lock), which would stall the serving node for the whole audit;
    so on SQLite a private engine on the same file takes a deferred ``BEGIN``
    (a WAL read snapshot) with ``query_only`` set.
    """
    if engine.dialect.name == "sqlite":
        reader = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 10})

        @event.listens_for(reader, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        @event.listens_for(reader, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        try:
            with reader.connect() as conn:
                yield conn
        finally:
            reader.dispose()
        return
    with engine.connect() as plain:
        if engine.dialect.name == "postgresql":
            yield plain.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            yield plain


def _leaf_name(idx: int, kind: str, ref: str) -> str:
    return f"leaf {idx} ({kind} {ref})"


class _Verifier:
    def __init__(
        self,
        conn: Connection,
        card: PartyCard,
        agreements: Mapping[str, Agreement],
        progress: Progress | None,
    ) -> None:
        self.conn = conn
        self.card = card
        self.agreements = agreements
        self.progress = progress
        self.problems = _Problems()
        self.ed25519 = ed25519_public(card.keys.ed25519)
        self.receipt_cache: dict[str, Checkpoint] = {}
        self.receipts_checked = 0
        self.checkpoints_checked = 0
        self.envelopes_matched = 0
        self.receipts_matched = 0

    # -- 1 and 2: leaves and the objects they name ---------------------------

    def scan_leaves(self, total: int) -> list[bytes]:
        conn = self.conn
        agreement_digests = {
            f"{row.id}@{row.version}": row.digest
            for row in conn.execute(
                select(agreements_t.c.id, agreements_t.c.version, agreements_t.c.digest)
            )
        }
        m, r, lv = messages, receipts, log_leaves
        query = (
            select(
                lv.c.idx,
                lv.c.leaf_hash,
                lv.c.entry,
                lv.c.kind,
                lv.c.ref,
                m.c.id,
                m.c.direction,
                m.c.agreement,
                m.c.sender,
                m.c.recipient,
                m.c.seq,
                m.c.type,
                m.c.exercise,
                m.c.envelope_hash,
                m.c.envelope,
                m.c.log_index,
                r.c.direction,
                r.c.receipt_hash,
                r.c.receipt,
                r.c.log_index,
            )
            .select_from(
                lv.outerjoin(m, m.c.id == lv.c.ref).outerjoin(
                    r, and_(r.c.message_id == lv.c.ref, lv.c.kind == "receipt")
                )
            )
            .order_by(lv.c.idx)
        )
        hashes: list[bytes] = []
        expected = 0
        hi_idx = conn.execute(select(func.max(lv.c.idx))).scalar_one_or_none()
        top = -1 if hi_idx is None else int(hi_idx)
        lo = 0
        while lo <= top:
            rows = conn.execute(query.where(and_(lv.c.idx >= lo, lv.c.idx < lo + _CHUNK))).all()
            for row in rows:
                idx = row[0]
                if idx != expected:
                    if idx > expected:
                        self.problems.add(f"leaves {expected}..{idx - 1} are missing from the log")
                    expected = idx
                expected += 1
                hashes.append(self.check_leaf(row, agreement_digests))
            lo += _CHUNK
            if self.progress is not None:
                self.progress(min(lo, top + 1), total)
        return hashes

    def check_leaf(self, row: Any, agreement_digests: Mapping[str, str]) -> bytes:
        idx, stored_hash, entry, kind, ref = row[:5]
        entry = bytes(entry)
        computed = hashlib.sha256(b"\x00" + entry).digest()
        name = _leaf_name(idx, kind, ref)
        if bytes(stored_hash) != computed:
            self.problems.add(f"{name}: stored leaf hash does not match its entry")
        if not entry.startswith(_LEAF_PREFIX):
            self.problems.add(f"{name}: entry lacks the detente/v1/leaf prefix")
            return computed
        try:
            obj = json.loads(entry[len(_LEAF_PREFIX) :])
        except ValueError:
            self.problems.add(f"{name}: entry is not JSON")
            return computed
        if not isinstance(obj, dict) or obj.get("kind") != kind:
            self.problems.add(f"{name}: entry kind does not match the leaf's kind column")
            return computed
        if kind == "envelope":
            self.check_envelope(name, idx, ref, obj, row)
        elif kind == "receipt":
            self.check_receipt(name, idx, ref, obj, row)
        elif kind == "agreement":
            if obj.get("ref") != ref:
                self.problems.add(f"{name}: entry names agreement {obj.get('ref')}")
            digest = agreement_digests.get(ref)
            if digest is None:
                self.problems.add(f"{name}: agreement {ref} is not stored")
            elif digest != obj.get("digest"):
                self.problems.add(f"{name}: stored agreement digest does not match its log entry")
        else:
            self.problems.add(f"{name}: unknown leaf kind {kind!r}")
        return computed

    def check_envelope(self, name: str, idx: int, ref: str, obj: dict[str, Any], row: Any) -> None:
        m_id, m_dir, agreement, sender, recipient, seq, type_, exercise, env_hash = row[5:14]
        envelope, m_log_index = row[14], row[15]
        name = f"leaf {idx} (envelope {ref})"
        if m_id is None:
            self.problems.add(f"{name}: message {ref} is not stored")
            return
        if m_log_index != idx:
            self.problems.add(f"{name}: message {ref} is stored at log index {m_log_index}")
        else:
            self.envelopes_matched += 1
        h = obj.get("hash")
        if _sha256_tagged(bytes(envelope)) != h:
            self.problems.add(f"{name}: stored envelope does not match its log entry")
        if (
            obj.get("id") != m_id
            or obj.get("agreement") != agreement
            or obj.get("from") != sender
            or obj.get("to") != recipient
            or obj.get("seq") != seq
            or obj.get("type") != type_
            or obj.get("exercise") is not bool(exercise)
            or env_hash != h
        ):
            self.problems.add(f"{name}: stored message columns do not match its log entry")
        me = self.card.id
        if (m_dir == "out" and sender != me) or (m_dir == "in" and recipient != me):
            self.problems.add(
                f"{name}: message direction {m_dir!r} does not fit {sender}->{recipient}"
            )

    def check_receipt(self, name: str, idx: int, ref: str, obj: dict[str, Any], row: Any) -> None:
        m_id, sender, recipient, env_hash, envelope, m_log_index = (
            row[5],
            row[8],
            row[9],
            row[13],
            row[14],
            row[15],
        )
        r_dir, r_hash, r_bytes, r_log_index = row[16:20]
        name = f"leaf {idx} (receipt for {ref})"
        if r_dir is None:
            self.problems.add(f"{name}: receipt for {ref} is not stored")
            return
        if r_log_index != idx:
            self.problems.add(f"{name}: receipt for {ref} is stored at log index {r_log_index}")
        else:
            self.receipts_matched += 1
        data = bytes(r_bytes)
        h = obj.get("hash")
        if _sha256_tagged(data) != h or r_hash != h:
            self.problems.add(f"{name}: stored receipt does not match its log entry")
            return
        if obj.get("message_id") != ref:
            self.problems.add(f"{name}: entry names message {obj.get('message_id')}")
        if m_id is None:
            self.problems.add(f"{name}: message {ref} is not stored")
            return
        if obj.get("envelope_hash") != env_hash:
            self.problems.add(f"{name}: receipt names a different envelope than the stored one")
        me = self.card.id
        if r_dir == "issued":
            if (
                obj.get("from") != me
                or obj.get("to") != sender
                or recipient != me
                or obj.get("log_index") != m_log_index
            ):
                self.problems.add(f"{name}: issued receipt does not fit the stored message")
            self.check_issued_signature(name, data)
        elif r_dir == "got":
            if obj.get("to") != me or obj.get("from") != recipient or sender != me:
                self.problems.add(f"{name}: receipt got does not fit the stored message")
            self.check_got(name, ref, data, bytes(envelope))
        else:
            self.problems.add(f"{name}: unknown receipt direction {r_dir!r}")

    def check_issued_signature(self, name: str, data: bytes) -> None:
        # The stored bytes are canonical JSON, where "sig" sorts between
        # "received" and "to": dropping that member gives the signed body
        # without re-encoding (a quote inside a string is escaped, so the
        # pattern cannot occur inside a value).
        start = data.find(b',"sig":"')
        end = data.find(b'"', start + 8) if start >= 0 else -1
        if end < 0:
            self.problems.add(f"{name}: issued receipt has no signature")
            return
        try:
            sig = base64.b64decode(data[start + 8 : end], validate=True)
            self.ed25519.verify(sig, _RECEIPT_PREFIX + data[:start] + data[end + 1 :])
        except (InvalidSignature, ValueError):
            self.problems.add(f"{name}: issued receipt is not signed by {self.card.id}")
        self.receipts_checked += 1

    def check_got(self, name: str, ref: str, data: bytes, envelope_bytes: bytes) -> None:
        self.receipts_checked += 1
        try:
            receipt = Receipt.from_bytes(data)
            envelope = Envelope.from_bytes(envelope_bytes)
            agreement = self.agreements.get(envelope.agreement)
            if agreement is None:
                self.problems.add(
                    f"receipt for {ref}: agreement {envelope.agreement} is not loaded"
                )
                return
            verify_receipt(receipt, envelope, agreement, checkpoint_cache=self.receipt_cache)
        except DetenteError as exc:
            self.problems.add(f"receipt for {ref}: {exc}")

    # -- every stored message and receipt is in the log -----------------------

    def check_orphans(self) -> None:
        conn, lv = self.conn, log_leaves
        n_messages = conn.execute(select(func.count()).select_from(messages)).scalar_one()
        if n_messages != self.envelopes_matched:
            rows = conn.execute(
                select(messages.c.id, messages.c.log_index)
                .select_from(
                    messages.outerjoin(
                        lv,
                        and_(
                            lv.c.idx == messages.c.log_index,
                            lv.c.kind == "envelope",
                            lv.c.ref == messages.c.id,
                        ),
                    )
                )
                .where(lv.c.idx.is_(None))
                .order_by(messages.c.log_index)
                .limit(MAX_PROBLEMS)
            )
            for mid, index in rows:
                self.problems.add(f"message {mid} is not in the log (log index {index})")
        n_receipts = conn.execute(select(func.count()).select_from(receipts)).scalar_one()
        if n_receipts != self.receipts_matched:
            rows = conn.execute(
                select(receipts.c.message_id, receipts.c.log_index)
                .select_from(
                    receipts.outerjoin(
                        lv,
                        and_(
                            lv.c.idx == receipts.c.log_index,
                            lv.c.kind == "receipt",
                            lv.c.ref == receipts.c.message_id,
                        ),
                    )
                )
                .where(lv.c.idx.is_(None))
                .order_by(receipts.c.log_index)
                .limit(MAX_PROBLEMS)
            )
            for mid, index in rows:
                self.problems.add(f"receipt for {mid} is not in the log (log index {index})")

    # -- 3: stored tree nodes ---------------------------------------------------

    def check_nodes(self, tree: MerkleTree) -> None:
        levels = tree.levels
        seen = [0] * len(levels)
        lo_level = 1
        last: tuple[int, int] = (0, -1)
        while True:
            rows = self.conn.execute(
                select(log_nodes.c.level, log_nodes.c.idx, log_nodes.c.hash)
                .where(
                    (log_nodes.c.level > last[0])
                    | and_(log_nodes.c.level == last[0], log_nodes.c.idx > last[1])
                )
                .order_by(log_nodes.c.level, log_nodes.c.idx)
                .limit(_CHUNK)
            ).all()
            if not rows:
                break
            for level, idx, digest in rows:
                if level < lo_level or level >= len(levels) or not 0 <= idx < len(levels[level]):
                    self.problems.add(
                        f"tree node level {level} index {idx} is outside the rebuilt tree"
                    )
                    continue
                seen[level] += 1
                if bytes(digest) != levels[level][idx]:
                    self.problems.add(
                        f"tree node level {level} index {idx} differs from the recomputed tree"
                    )
            last = (rows[-1][0], rows[-1][1])
        for level in range(1, len(levels)):
            if seen[level] != len(levels[level]):
                missing = len(levels[level]) - seen[level]
                self.problems.add(f"tree level {level}: {missing} stored node(s) missing")

    # -- 4: checkpoints ---------------------------------------------------------

    def check_checkpoints(self, tree: MerkleTree) -> None:
        origin = log_origin(self.card.id)
        verifiers = log_verifiers(self.card)
        verified: dict[bytes, Checkpoint] = {}
        rows = self.conn.execute(
            select(checkpoints.c.size, checkpoints.c.note).order_by(checkpoints.c.size)
        )
        for size, raw in rows:
            note = bytes(raw)
            name = f"checkpoint at size {size}"
            self.checkpoints_checked += 1
            cp = verified.get(note)
            if cp is None:
                try:
                    cp = verify_checkpoint(note, origin, verifiers)
                except DetenteError as exc:
                    self.problems.add(f"{name}: signature does not verify ({exc})")
                    try:
                        text = note.decode("utf-8").split("\n\n", 1)[0] + "\n"
                        cp = Checkpoint.from_text(text)
                    except (DetenteError, UnicodeDecodeError):
                        self.problems.add(f"{name}: not a checkpoint")
                        continue
                else:
                    verified[note] = cp
            if cp.size != size:
                self.problems.add(f"{name}: the note says size {cp.size}")
            if cp.size > tree.size:
                self.problems.add(f"{name}: beyond the log's {tree.size} leaves")
            elif cp.root != tree.root(cp.size):
                self.problems.add(f"{name}: root does not match the log rebuilt from stored leaves")


def verify_log(
    engine: Engine,
    card: PartyCard,
    agreements: Mapping[str, Agreement],
    *,
    progress: Progress | None = None,
) -> VerifyReport:
    """Audit the log in ``engine``'s store of the party ``card``; never raises on a finding.

    ``agreements`` maps ``id@version`` to every installed agreement version
    (to verify receipts got).  ``progress(done, total)`` is called as leaves
    are checked.
    """
    with mapped_errors("verifying the log"), _snapshot(engine) as conn:
        total = conn.execute(select(func.count()).select_from(log_leaves)).scalar_one()
        v = _Verifier(conn, card, agreements, progress)
        hashes = v.scan_leaves(int(total))
        v.check_orphans()
        tree = MerkleTree.from_leaf_hashes(hashes)
        del hashes
        v.check_nodes(tree)
        v.check_checkpoints(tree)
    return VerifyReport(
        size=tree.size,
        checkpoints_checked=v.checkpoints_checked,
        receipts_checked=v.receipts_checked,
        problems=v.problems.result(),
    )


def load_agreements(engine: Engine) -> dict[str, Agreement]:
    """Every installed agreement version, by ``id@version``."""
    with mapped_errors("loading agreements"), _snapshot(engine) as conn:
        docs = conn.execute(select(agreements_t.c.document)).scalars().all()
    found: dict[str, Agreement] = {}
    for doc in docs:
        agreement = Agreement.from_json(parse(bytes(doc)))
        found[agreement.ref] = agreement
    return found


def verify_home(home: NodeHome, progress: Progress | None = None) -> VerifyReport:
    """``detente log verify`` for the node at ``home`` (running or stopped)."""
    engine = open_engine(home.config().db_url)
    try:
        return verify_log(engine, home.card(), load_agreements(engine), progress=progress)
    finally:
        engine.dispose()
