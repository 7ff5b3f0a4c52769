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
A large log is scanned in ranges by worker processes (:mod:`detente.node.logscan`),
each in its own snapshot of the same kind: leaves, messages, receipts, tree
nodes and checkpoints are only ever appended, so bounding every range by the
last leaf of this snapshot makes them read the same rows.  There the database
compares each entry with the columns of its rows and Python hashes the bytes;
any row not vouched for that way comes back here for the detailed checks.
Problems are collected, not raised: the report names every entry at fault
(up to :data:`MAX_PROBLEMS`, then how many more).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy import (
    Connection,
    Engine,
    LargeBinary,
    Select,
    and_,
    bindparam,
    case,
    cast,
    create_engine,
    event,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.pool import NullPool

from detente.core.agreement import Agreement
from detente.core.canonical import SIGNING_PREFIX, parse
from detente.core.checkpoint import Checkpoint, unverified_checkpoint, verify_checkpoint
from detente.core.envelope import Envelope
from detente.core.keys import ed25519_public
from detente.core.logentry import log_origin, log_verifiers
from detente.core.merkle import HASH_SIZE, MerkleTree
from detente.core.party import PartyCard
from detente.core.receipt import Receipt, verify_receipt
from detente.errors import DetenteError
from detente.node.config import NodeHome
from detente.node.logscan import (
    ENVELOPE,
    ISSUED,
    LEAF_PREFIX,
    RECEIPT_GOT,
    ChunkResult,
    Query,
    Scanner,
    ScanSpec,
    envelope_entry_bytes,
    init_worker,
    scan_in_worker,
)
from detente.store.db import mapped_errors, open_engine
from detente.store.schema import agreements as agreements_t
from detente.store.schema import checkpoints, log_leaves, log_nodes, messages, notes, receipts

__all__ = ["MAX_PROBLEMS", "VerifyReport", "load_agreements", "verify_home", "verify_log"]

#: problems listed in full; beyond this the report says how many more there were.
MAX_PROBLEMS = 100
_CHUNK = 50_000
#: leaves per scanned range (2**14): a range's subtrees up to that height are the tree's.
_CHUNK_BITS = 14
#: ranges from which worker processes pay for their start (some 0.5 s of CPU each,
#: against 6 us a leaf); receipts' signatures use threads here in any case.
_PROCESSES_FROM = 16
_CHECKPOINT_CHUNK = 1_000
_RECEIPT_CACHE = 1_024
_LEAF_PREFIX = LEAF_PREFIX
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


_sha256 = hashlib.sha256


def _sha256_tagged(data: bytes) -> str:
    return "sha256:" + _sha256(data).hexdigest()


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection seeing one consistent state of the store.

    The node's SQLite engine begins every transaction with ``BEGIN IMMEDIATE``
    (the write lock), which would stall the serving node for the whole audit;
    so on SQLite a private engine on the same file takes a deferred ``BEGIN``
    (a WAL read snapshot) with ``query_only`` set.
    """
    if engine.dialect.name == "sqlite":
        reader = create_engine(
            engine.url,
            poolclass=NullPool,
            connect_args={"timeout": 10},
        )

        @event.listens_for(reader, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only=ON")
            # Read the file through a memory map: the audit reads all of it once.
            cursor.execute("PRAGMA mmap_size=17179869184")
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


class _Scanned:
    """The scanners' results in index order, until the tree is rebuilt from them."""

    def __init__(self, chunk_bits: int) -> None:
        self.chunk_bits = chunk_bits
        self.complete = True  # no index was missing: each range's subtrees are the tree's
        self.levels: list[list[bytes]] = [[] for _ in range(chunk_bits + 1)]
        self.diffs: dict[int, list[int]] = {}
        self.seen = [0] * (chunk_bits + 1)

    def add(self, result: ChunkResult) -> None:
        for level, blob in enumerate(result.levels):
            self.levels[level].extend(
                blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)
            )
        for level, idx in result.node_diffs:
            self.diffs.setdefault(level, []).append(idx)
        for level, seen in enumerate(result.nodes_seen):
            self.seen[level] += seen

    def tree(self) -> tuple[MerkleTree, dict[int, tuple[list[int], int]]]:
        """The rebuilt tree, and what the scanners found of the stored nodes, by level."""
        if not self.complete:
            return MerkleTree.from_leaf_hashes(self.levels[0]), {}
        # The ranges' subtrees are the tree's lower levels; the levels above are
        # a tree over the ranges' roots.
        upper = MerkleTree.from_leaf_hashes(self.levels[-1]).levels[1:]
        tree = MerkleTree.from_levels([*self.levels, *upper])
        scanned = {
            level: (sorted(self.diffs.get(level, [])), self.seen[level])
            for level in range(1, self.chunk_bits + 1)
        }
        return tree, scanned


class _Verifier:
    def __init__(
        self,
        conn: Connection,
        card: PartyCard,
        agreements: Mapping[str, Agreement],
        progress: Progress | None,
        workers: int,
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
        self.pending: list[Callable[[], str | None]] = []
        self.workers = workers
        self.pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self.deep = True

    @functools.cached_property
    def notes_by_hash(self) -> dict[str, bytes]:
        """Checkpoint notes receipts name, by hash (one per delivery batch): read when
        the first receipt got is checked in detail."""
        return {
            digest: bytes(note)
            for digest, note in self.conn.execute(select(notes.c.hash, notes.c.note))
        }

    # -- 1 and 2: leaves and the objects they name ---------------------------

    def agreement_digests(self) -> dict[str, str]:
        digests: dict[str, str] = {}
        for a_id, version, digest, document in self.conn.execute(
            select(
                agreements_t.c.id,
                agreements_t.c.version,
                agreements_t.c.digest,
                agreements_t.c.document,
            )
        ):
            ref = f"{a_id}@{version}"
            digests[ref] = digest
            try:
                stored = Agreement.from_json(parse(bytes(document)))
            except DetenteError as exc:
                self.problems.add(f"agreement {ref}: stored document does not parse ({exc})")
                continue
            if stored.ref != ref or stored.digest() != digest:
                self.problems.add(f"agreement {ref}: stored document does not match its digest")
        return digests

    def scan(self, total: int, chunk_bits: int) -> _Scanned:
        """Check every leaf, in ranges of ``2**chunk_bits`` (in worker processes if large).

        The scanners (:mod:`~detente.node.logscan`) vouch for the rows whose
        bytes are exactly what they should be, and rebuild and compare the
        complete subtrees inside their ranges; every other row is re-read here
        and checked in detail, in index order.
        """
        conn = self.conn
        digests = self.agreement_digests()
        hi_idx = conn.execute(select(func.max(log_leaves.c.idx))).scalar_one_or_none()
        top = -1 if hi_idx is None else int(hi_idx)
        size = 1 << chunk_bits
        # Leaves are append-only: a worker's later snapshot holds the same rows
        # up to ``top``, the last index this snapshot sees.
        ranges = [(lo, min(lo + size, top + 1)) for lo in range(0, top + 1, size)]
        spec = self.scan_spec()
        detail = _raw_query(conn, self.detail_query())
        scanned = _Scanned(chunk_bits)
        expected = 0
        for lo, hi, result in self.run_scanners(spec, ranges, chunk_bits):
            if not result.complete:
                # A missing index shifts every later leaf: check this range the
                # old way (it names the gap) and rebuild the tree from all leaves.
                scanned.complete = False
                rows = detail({"lo": lo, "hi": hi})
                expected = self.check_rows(rows, expected, scanned.levels[0], digests)
            else:
                if expected != lo:
                    self.problems.add(f"leaves {expected}..{lo - 1} are missing from the log")
                expected = hi
                self.envelopes_matched += result.envelopes
                self.receipts_matched += result.receipts
                self.receipts_checked += result.receipts
                if result.suspects:
                    self.check_suspects(detail, result.suspects, digests)
                scanned.add(result)
            self.drain()
            if self.progress is not None:
                self.progress(hi, total)
        return scanned

    def run_scanners(
        self, spec: ScanSpec, ranges: list[tuple[int, int]], chunk_bits: int
    ) -> Iterator[tuple[int, int, ChunkResult]]:
        """Scan each range, in order: on worker processes (one per core) when there
        are several ranges and the store can be opened again, else on this connection."""
        workers = min(self.workers, len(ranges))
        done = 0
        if spec.driver and workers > 1 and len(ranges) >= _PROCESSES_FROM:
            # spawn, not fork: the caller may have threads (this pool, a progress bar).
            pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(spec,),
            )
            try:
                results = pool.map(
                    scan_in_worker,
                    [lo for lo, _ in ranges],
                    [hi for _, hi in ranges],
                    [chunk_bits] * len(ranges),
                )
                for (lo, hi), result in zip(ranges, results, strict=True):
                    yield lo, hi, result
                    done += 1
            except BrokenProcessPool:
                # A worker could not start or died (say, the program's main module
                # cannot be imported again): the rest is scanned here.
                pass
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        if done < len(ranges):
            scanner = Scanner(spec, self.conn.connection.dbapi_connection, self.pool, self.workers)
            for lo, hi in ranges[done:]:
                yield lo, hi, scanner.scan(lo, hi, chunk_bits)

    def scan_spec(self) -> ScanSpec:
        engine_url = self.conn.engine.url
        dialect = self.conn.dialect
        driver = ""
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = {}
        if dialect.name == "sqlite" and engine_url.database not in (None, "", ":memory:"):
            driver = "sqlite3.dbapi2"
            cargs, cparams = dialect.create_connect_args(engine_url)
            args, kwargs = tuple(cargs), {**cparams, "timeout": 10}
        elif dialect.name == "postgresql" and dialect.driver == "psycopg":
            driver = "psycopg"
            cargs, cparams = dialect.create_connect_args(engine_url)
            # SQLAlchemy's adapters map is not needed (and not picklable).
            args = tuple(cargs)
            kwargs = {k: v for k, v in cparams.items() if k != "context"}
        members = {
            (ref, card.id): card.to_json()
            for ref, agreement in self.agreements.items()
            for card in agreement.members
        }
        ln = log_nodes
        in_range = and_(
            ln.c.level == bindparam("level"),
            ln.c.idx >= bindparam("lo"),
            ln.c.idx < bindparam("hi"),
        )
        return ScanSpec(
            driver=driver,
            connect_args=args,
            connect_kwargs=kwargs,
            leaves=_compiled(
                dialect, _scan_query(dialect.name, self.card.id, self.deep), "lo", "hi"
            ),
            nodes=_compiled(
                dialect,
                select(ln.c.hash).where(in_range).order_by(ln.c.idx),
                "level",
                "lo",
                "hi",
            ),
            node_rows=_compiled(
                dialect,
                select(ln.c.idx, ln.c.hash).where(in_range).order_by(ln.c.idx),
                "level",
                "lo",
                "hi",
            ),
            note=_compiled(
                dialect, select(notes.c.note).where(notes.c.hash == bindparam("hash")), "hash"
            ),
            my_ed25519=self.card.keys.ed25519,
            deep=self.deep,
            members=members,
        )

    def detail_query(self) -> Select[Any]:
        """Every column the detailed checks look at, for ``lo <= idx < hi``."""
        m, r, lv = messages, receipts, log_leaves
        return (
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
                # A receipt leaf needs its message's columns, not its bytes
                # (unless receipts got are re-verified): don't read them twice.
                m.c.envelope
                if self.deep
                else case((lv.c.kind == "envelope", m.c.envelope), else_=None),
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
            .where(and_(lv.c.idx >= bindparam("lo"), lv.c.idx < bindparam("hi")))
            .order_by(lv.c.idx)
        )

    def check_suspects(
        self,
        detail: Callable[[dict[str, Any]], list[Any]],
        suspects: list[int],
        digests: Mapping[str, str],
    ) -> None:
        """The detailed checks, on the rows a scanner did not vouch for."""
        if len(suspects) > 64:  # many: one read of their span
            wanted = set(suspects)
            rows = [
                row
                for row in detail({"lo": suspects[0], "hi": suspects[-1] + 1})
                if row[0] in wanted
            ]
        else:
            rows = [row for idx in suspects for row in detail({"lo": idx, "hi": idx + 1})]
        for row in rows:
            self.check_row(row, _sha256(b"\x00" + bytes(row[2])).digest(), digests)

    def check_rows(
        self,
        rows: list[Any],
        expected: int,
        hashes: list[bytes],
        agreement_digests: Mapping[str, str],
    ) -> int:
        sha, append = _sha256, hashes.append
        for row in rows:
            idx = row[0]
            if idx != expected:
                if idx > expected:
                    self.problems.add(f"leaves {expected}..{idx - 1} are missing from the log")
                expected = idx
            expected += 1
            computed = sha(b"\x00" + row[2]).digest()
            append(computed)
            self.check_row(row, computed, agreement_digests)
        return expected

    def check_row(self, row: Any, computed: bytes, agreement_digests: Mapping[str, str]) -> None:
        idx = row[0]
        if row[1] == computed:
            if row[3] == "envelope" and self.envelope_fast(idx, row):
                return
            if row[3] == "receipt" and not self.deep and self.receipt_fast(idx, row):
                return
        self.check_leaf(row, computed, agreement_digests)

    def check_leaf(self, row: Any, computed: bytes, agreement_digests: Mapping[str, str]) -> None:
        idx, stored_hash, entry, kind, ref = row[:5]
        entry = bytes(entry)
        if bytes(stored_hash) != computed:
            self.problems.add(
                f"{_leaf_name(idx, kind, ref)}: stored leaf hash does not match its entry"
            )
        if kind == "envelope" and self.envelope_fast(idx, row):
            return
        name = _leaf_name(idx, kind, ref)
        if not entry.startswith(_LEAF_PREFIX):
            self.problems.add(f"{name}: entry lacks the detente/v1/leaf prefix")
            return
        try:
            obj = json.loads(entry[len(_LEAF_PREFIX) :])
        except ValueError:
            self.problems.add(f"{name}: entry is not JSON")
            return
        if not isinstance(obj, dict) or obj.get("kind") != kind:
            self.problems.add(f"{name}: entry kind does not match the leaf's kind column")
            return
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

    def receipt_fast(self, idx: int, row: Any) -> bool:
        """Like :meth:`envelope_fast` for a receipt leaf (used when signatures are not
        re-verified): the entry must be byte for byte what the rows imply."""
        m_id, sender, recipient, env_hash, m_log_index = row[5], row[8], row[9], row[13], row[15]
        r_dir, r_hash, r_bytes, r_log_index = row[16:20]
        if m_id is None or r_dir is None or r_log_index != idx or m_id != row[4]:
            return False
        if r_hash != "sha256:" + _sha256(r_bytes).hexdigest():
            return False
        me = self.card.id
        entry = bytes(row[2])
        if r_dir == "issued" and recipient == me:
            frm, to, log_index = me, sender, m_log_index
        elif r_dir == "got" and sender == me:
            # The index is in the peer's log: read it from the entry; everything
            # else in the entry must then match the rows byte for byte.
            start = entry.find(b'"log_index":')
            end = entry.find(b",", start)
            digits = entry[start + 12 : end] if start >= 0 and end > start else b""
            if not digits.isdigit():
                return False
            frm, to, log_index = recipient, me, int(digits)
        else:
            return False
        text = env_hash + frm + r_hash + m_id + to
        if not _PLAIN(text):
            return False
        expected = (
            _LEAF_PREFIX
            + (
                f'{{"envelope_hash":"{env_hash}","from":"{frm}","hash":"{r_hash}",'
                f'"kind":"receipt","log_index":{log_index},"message_id":"{m_id}","to":"{to}"}}'
            ).encode()
        )
        if entry != expected:
            return False
        self.receipts_matched += 1
        self.receipts_checked += 1
        return True

    def envelope_fast(self, idx: int, row: Any) -> bool:
        """True if the entry is byte for byte the one the message row implies.

        The common case, without parsing JSON; anything else (a mismatch, or a
        value the plain formatting cannot express) takes the detailed path.
        """
        m_id, m_dir, agreement, sender, recipient, seq, type_, exercise, env_hash, envelope = row[
            5:15
        ]
        if m_id is None or row[15] != idx or m_id != row[4]:
            return False
        if env_hash != "sha256:" + _sha256(envelope).hexdigest():
            return False
        me = self.card.id
        if (m_dir != "out" or sender != me) and (m_dir != "in" or recipient != me):
            return False
        expected = _envelope_entry_bytes(
            env_hash, m_id, agreement, sender, recipient, seq, type_, bool(exercise)
        )
        if expected is None or row[2] != expected:
            return False
        self.envelopes_matched += 1
        return True

    # -- signatures, verified in a thread pool (the crypto releases the GIL) ----

    def defer(self, task: Callable[[], str | None]) -> None:
        self.pending.append(task)

    def drain(self) -> None:
        tasks, self.pending = self.pending, []
        if not tasks:
            return
        if self.pool is None or len(tasks) < 64:
            results: list[str | None] = [t() for t in tasks]
        else:
            n = self.workers
            slices = [tasks[i::n] for i in range(n)]
            parts = list(self.pool.map(_run_all, slices))
            results = [None] * len(tasks)
            for i, part in enumerate(parts):
                results[i::n] = part
        for problem in results:
            if problem is not None:
                self.problems.add(problem)

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
        if (m_dir != "out" or sender != me) and (m_dir != "in" or recipient != me):
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
            self.receipts_checked += 1
            if self.deep:
                self.defer(functools.partial(self.check_issued_signature, name, data))
        elif r_dir == "got":
            if obj.get("to") != me or obj.get("from") != recipient or sender != me:
                self.problems.add(f"{name}: receipt got does not fit the stored message")
            self.receipts_checked += 1
            if self.deep:
                _ = self.notes_by_hash  # read here: the check runs on the thread pool
                self.defer(functools.partial(self.check_got, ref, data, bytes(envelope)))
        else:
            self.problems.add(f"{name}: unknown receipt direction {r_dir!r}")

    def check_issued_signature(self, name: str, data: bytes) -> str | None:
        # The stored bytes are canonical JSON, where "sig" sorts between
        # "received" and "to": dropping that member gives the signed body
        # without re-encoding (a quote inside a string is escaped, so the
        # pattern cannot occur inside a value).
        start = data.find(b',"sig":"')
        end = data.find(b'"', start + 8) if start >= 0 else -1
        if end < 0:
            return f"{name}: issued receipt has no signature"
        try:
            sig = base64.b64decode(data[start + 8 : end], validate=True)
            self.ed25519.verify(sig, _RECEIPT_PREFIX + data[:start] + data[end + 1 :])
        except (InvalidSignature, ValueError):
            return f"{name}: issued receipt is not signed by {self.card.id}"
        return None

    def check_got(self, ref: str, data: bytes, envelope_bytes: bytes) -> str | None:
        try:
            receipt = Receipt.from_bytes(data)
            envelope = Envelope.from_bytes(envelope_bytes)
            agreement = self.agreements.get(envelope.agreement)
            if agreement is None:
                return f"receipt for {ref}: agreement {envelope.agreement} is not loaded"
            note = self.notes_by_hash.get(receipt.checkpoint_hash)
            if note is None:
                return (
                    f"receipt for {ref}: the checkpoint it names ({receipt.checkpoint_hash[:23]}…) "
                    "is not stored"
                )
            if len(self.receipt_cache) > _RECEIPT_CACHE:
                self.receipt_cache.clear()
            verify_receipt(receipt, envelope, agreement, note, checkpoint_cache=self.receipt_cache)
        except DetenteError as exc:
            return f"receipt for {ref}: {exc}"
        return None

    def check_notes(self) -> None:
        """Every receipt's checkpoint note is stored (a receipt without it proves nothing)."""
        missing = self.conn.execute(
            select(receipts.c.message_id, receipts.c.checkpoint_hash)
            .outerjoin(notes, notes.c.hash == receipts.c.checkpoint_hash)
            .where(notes.c.hash.is_(None))
            .limit(MAX_PROBLEMS + 1)
        ).all()
        for message_id, digest in missing:
            self.problems.add(
                f"receipt for {message_id}: the checkpoint it names ({digest[:23]}…) is not stored"
            )

    # -- every stored message and receipt is in the log -----------------------

    def check_orphans(self) -> None:
        conn, lv = self.conn, log_leaves
        for table, key, kind, matched, label in (
            (messages, messages.c.id, "envelope", self.envelopes_matched, "message {}"),
            (receipts, receipts.c.message_id, "receipt", self.receipts_matched, "receipt for {}"),
        ):
            if conn.execute(select(func.count()).select_from(table)).scalar_one() == matched:
                continue  # every row was met by its leaf during the scan
            rows = conn.execute(
                select(key, table.c.log_index)
                .select_from(
                    table.outerjoin(
                        lv,
                        and_(lv.c.idx == table.c.log_index, lv.c.kind == kind, lv.c.ref == key),
                    )
                )
                .where(lv.c.idx.is_(None))
                .order_by(table.c.log_index)
                .limit(MAX_PROBLEMS)
            )
            for ref, index in rows:
                self.problems.add(f"{label.format(ref)} is not in the log (log index {index})")

    # -- 3: stored tree nodes ---------------------------------------------------

    def check_nodes(self, tree: MerkleTree, scanned: Mapping[int, tuple[list[int], int]]) -> None:
        """Compare the stored nodes with ``tree``; ``scanned`` gives, by level, what the
        scanners found inside their ranges (differing indices, nodes read)."""
        levels = tree.levels
        ln = log_nodes
        # Rows the rebuilt tree has no place for (a level-0 row, or beyond the size).
        outside = self.conn.execute(
            select(ln.c.level, ln.c.idx)
            .where(ln.c.level < 1)
            .union_all(select(ln.c.level, ln.c.idx).where(ln.c.level >= len(levels)))
            .limit(MAX_PROBLEMS)
        ).all()
        for level, idx in outside:
            self.problems.add(f"tree node level {level} index {idx} is outside the rebuilt tree")
        fetch = _raw_query(
            self.conn,
            select(ln.c.idx, ln.c.hash)
            .where(
                and_(
                    ln.c.level == bindparam("level"),
                    ln.c.idx >= bindparam("lo"),
                    ln.c.idx < bindparam("hi"),
                )
            )
            .order_by(ln.c.idx),
        )
        for level in range(1, len(levels)):
            want = levels[level]
            n = len(want)
            seen = 0
            lo = 0
            if level in scanned:
                diffs, seen = scanned[level]
                for idx in diffs:
                    self.problems.add(
                        f"tree node level {level} index {idx} differs from the recomputed tree"
                    )
                lo = n
            while lo < n:
                for idx, digest in fetch({"level": level, "lo": lo, "hi": min(lo + _CHUNK, n)}):
                    seen += 1
                    if digest != want[idx] and bytes(digest) != want[idx]:
                        self.problems.add(
                            f"tree node level {level} index {idx} differs from the recomputed tree"
                        )
                lo += _CHUNK
            beyond = self.conn.execute(
                select(ln.c.idx)
                .where(and_(ln.c.level == level, (ln.c.idx < 0) | (ln.c.idx >= n)))
                .limit(MAX_PROBLEMS)
            ).scalars()
            for idx in beyond:
                self.problems.add(
                    f"tree node level {level} index {idx} is outside the rebuilt tree"
                )
            if seen != n:
                self.problems.add(f"tree level {level}: {n - seen} stored node(s) missing")

    # -- 4: checkpoints ---------------------------------------------------------

    def start_checkpoints(self) -> Callable[[MerkleTree], None]:
        """Read the checkpoints and start verifying their signatures on the pool.

        The signatures do not need the tree, so they are checked while the
        leaves are scanned; the returned function compares the roots once the
        tree is rebuilt.
        """
        origin = log_origin(self.card.id)
        verifiers = log_verifiers(self.card)

        def check(notes: list[bytes]) -> list[Checkpoint | str]:
            out: list[Checkpoint | str] = []
            for note in notes:
                try:
                    out.append(verify_checkpoint(note, origin, verifiers))
                except DetenteError as exc:
                    out.append(str(exc))
            return out

        # Notes are read in chunks and dropped once submitted: a busy log holds
        # one checkpoint per writer batch, and each is ~3.4 kB (ML-DSA-65).
        rows: list[tuple[int, bytes]] = []  # (size, SHA-256 of the note)
        keys: list[bytes] = []  # unique note digests, in submission order
        parts: list[Future[list[Checkpoint | str]] | list[Checkpoint | str]] = []
        seen: set[bytes] = set()
        fetch = _raw_query(
            self.conn,
            select(checkpoints.c.size, checkpoints.c.note)
            .where(checkpoints.c.size > bindparam("after"))
            .order_by(checkpoints.c.size)
            .limit(_CHECKPOINT_CHUNK),
        )
        after = -1
        while True:
            chunk = fetch({"after": after})
            if not chunk:
                break
            after = int(chunk[-1][0])
            batch: list[bytes] = []
            for size, raw in chunk:
                note = bytes(raw)
                key = _sha256(note).digest()
                rows.append((int(size), key))
                if key not in seen:
                    seen.add(key)
                    keys.append(key)
                    batch.append(note)
            if self.pool is None:
                parts.append(check(batch))
            else:
                parts.append(self.pool.submit(check, batch))

        def finish(tree: MerkleTree) -> None:
            outcomes = [
                o for part in parts for o in (part if isinstance(part, list) else part.result())
            ]
            verified = dict(zip(keys, outcomes, strict=True))
            self.compare_checkpoints(rows, verified, tree)

        return finish

    def compare_checkpoints(
        self,
        rows: list[tuple[int, bytes]],
        verified: Mapping[bytes, Checkpoint | str],  # by SHA-256 of the note
        tree: MerkleTree,
    ) -> None:
        for size, key in rows:
            name = f"checkpoint at size {size}"
            self.checkpoints_checked += 1
            outcome = verified[key]
            if isinstance(outcome, str):
                self.problems.add(f"{name}: signature does not verify ({outcome})")
                note = self.conn.execute(
                    select(checkpoints.c.note).where(checkpoints.c.size == size)
                ).scalar_one()
                try:
                    cp = unverified_checkpoint(bytes(note))
                except DetenteError:
                    self.problems.add(f"{name}: not a checkpoint")
                    continue
            else:
                cp = outcome
            if cp.size != size:
                self.problems.add(f"{name}: the note says size {cp.size}")
            if cp.size > tree.size:
                self.problems.add(f"{name}: beyond the log's {tree.size} leaves")
            elif cp.root != tree.root(cp.size):
                self.problems.add(f"{name}: root does not match the log rebuilt from stored leaves")


def _run_all(tasks: list[Callable[[], str | None]]) -> list[str | None]:
    return [t() for t in tasks]


_envelope_entry_bytes = envelope_entry_bytes
_PLAIN = re.compile(r'[^"\\\x00-\x1f]*').fullmatch


def _scan_query(dialect: str, me: str, deep: bool) -> Select[Any]:
    """The leaves ``lo <= idx < hi`` for :class:`~detente.node.logscan.Scanner`, flagged.

    Columns: stored leaf hash, entry, the stored envelope or receipt and its
    stored hash, and a flag (:data:`~detente.node.logscan.ENVELOPE`, ``ISSUED``,
    ``RECEIPT_GOT``) when the database finds the entry byte for byte the one
    the rows imply — the formatting of :func:`envelope_entry_bytes`, done in SQL
    so that no other column reaches Python; 0 otherwise.  Deep mode adds the
    envelope of a receipt got.  The flag assumes values need no JSON escape;
    the scanner checks that on the entry (see ``logscan._entry_plain``).
    """
    m, r, lv = messages, receipts, log_leaves
    pg = dialect == "postgresql"
    length = func.length

    def template(fmt: str, *values: Any) -> Any:
        # One printf (SQLite) or format (PostgreSQL) call, not a chain of ||
        # (a fifth of the scan's SQL time); UTF-8 bytes, without escapes: a
        # PostgreSQL text-to-bytea cast would read backslashes.
        if pg:
            return func.convert_to(func.format(literal(fmt), *values), literal("UTF8"))
        return cast(func.printf(literal(fmt), *values), LargeBinary)

    body = func.substr(lv.c.entry, len(LEAF_PREFIX) + 1)
    # One template per row: a CASE on the kind, so that SQL evaluates only its own.
    envelope_ok = and_(
        m.c.log_index == lv.c.idx,
        or_(
            and_(m.c.direction == "out", m.c.sender == me),
            and_(m.c.direction == "in", m.c.recipient == me),
        ),
        body
        == template(
            '{"agreement":"%s","exercise":%s,"from":"%s","hash":"%s","id":"%s",'
            '"kind":"envelope","seq":%s,"to":"%s","type":"%s"}',
            m.c.agreement,
            case((m.c.exercise, "true"), else_="false"),
            m.c.sender,
            m.c.envelope_hash,
            m.c.id,
            m.c.seq,
            m.c.recipient,
            m.c.type,
        ),
    )
    issued_ok = and_(
        m.c.recipient == me,
        r.c.log_index == lv.c.idx,
        body
        == template(
            '{"envelope_hash":"%s","from":"%s","hash":"%s","kind":"receipt","log_index":%s,'
            '"message_id":"%s","to":"%s"}',
            m.c.envelope_hash,
            literal(me),
            r.c.receipt_hash,
            m.c.log_index,
            m.c.id,
            m.c.sender,
        ),
    )
    # A receipt got's entry holds the index in the peer's log, which no column
    # has: the text around it must match (the scanner checks the number).
    head = template(
        '{"envelope_hash":"%s","from":"%s","hash":"%s","kind":"receipt","log_index":',
        m.c.envelope_hash,
        m.c.recipient,
        r.c.receipt_hash,
    )
    tail = template(',"message_id":"%s","to":"%s"}', m.c.id, literal(me))
    got_ok = and_(
        m.c.sender == me,
        r.c.log_index == lv.c.idx,
        func.substr(body, 1, length(head)) == head,
        func.substr(body, length(body) - length(tail) + 1) == tail,
    )

    def flagged(ok: Any, value: int) -> Any:
        return case((ok, value), else_=0)

    flag = case(
        (func.substr(lv.c.entry, 1, len(LEAF_PREFIX)) != literal(LEAF_PREFIX, LargeBinary), 0),
        (lv.c.kind == "envelope", flagged(envelope_ok, ENVELOPE)),
        (lv.c.kind != "receipt", 0),
        (r.c.direction == "issued", flagged(issued_ok, ISSUED)),
        (r.c.direction == "got", flagged(got_ok, RECEIPT_GOT)),
        else_=0,
    )
    is_envelope = lv.c.kind == "envelope"
    columns = [
        lv.c.leaf_hash,
        lv.c.entry,
        case((is_envelope, m.c.envelope), else_=r.c.receipt),
        case((is_envelope, m.c.envelope_hash), else_=r.c.receipt_hash),
        flag,
    ]
    if deep:
        columns.append(case((r.c.direction == "got", m.c.envelope), else_=None))
    return (
        select(*columns)
        .select_from(
            lv.outerjoin(m, m.c.id == lv.c.ref).outerjoin(
                r, and_(r.c.message_id == lv.c.ref, lv.c.kind == "receipt")
            )
        )
        .where(and_(lv.c.idx >= bindparam("lo"), lv.c.idx < bindparam("hi")))
        .order_by(lv.c.idx)
    )


def _compiled(dialect: Any, stmt: Select[Any], *names: str) -> Query:
    """``stmt`` for a bare DBAPI cursor; ``names`` are the values given per call."""
    compiled = stmt.compile(dialect=dialect)
    return Query(
        sql=str(compiled),
        params=dict(compiled.construct_params(dict.fromkeys(names))),
        positional=tuple(compiled.positiontup or ()) if compiled.positional else None,
    )


def _raw_query(conn: Connection, stmt: Select[Any]) -> Callable[[dict[str, Any]], list[Any]]:
    """Run a compiled Core statement on the DBAPI cursor: plain tuples, no Row objects.

    The audit reads every row of the store once; SQLAlchemy's result
    processing would be a large part of its time.  Same transaction as ``conn``.
    """
    compiled = stmt.compile(dialect=conn.dialect)
    sql = str(compiled)
    cursor = conn.connection.cursor()

    def run(params: dict[str, Any]) -> list[Any]:
        bound = compiled.construct_params(params)
        args: Any = (
            tuple(bound[k] for k in compiled.positiontup or ()) if compiled.positional else bound
        )
        cursor.execute(sql, args)
        return list(cursor.fetchall())

    return run


def _cpus() -> int:
    """The CPUs this process may run on (not the machine's, in a container or under taskset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def verify_log(
    engine: Engine,
    card: PartyCard,
    agreements: Mapping[str, Agreement],
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    deep: bool = True,
) -> VerifyReport:
    """Audit the log in ``engine``'s store of the party ``card``; never raises on a finding.

    ``agreements`` maps ``id@version`` to every installed agreement version
    (to verify receipts got).  ``progress(done, total)`` is called as leaves
    are checked.  ``workers`` (default: one per CPU this process may use) is
    how many processes share the scan of a large log (from
    ``_PROCESSES_FROM`` ranges of ``2**_CHUNK_BITS`` leaves), each in its own
    read snapshot bounded by the last leaf of this one's (leaves, messages
    and receipts are only appended); they are spawned, so a program calling
    this must guard its ``__main__`` code.  It is also how many threads here
    verify signatures (the checkpoints', and the receipts' of a log scanned
    here): ``cryptography`` releases the GIL while it verifies.

    Every check binds the store to this node's own signed checkpoints: each
    stored envelope and receipt must hash to its leaf, each leaf to the tree,
    each tree size to a checkpoint whose Ed25519 and ML-DSA-65 signatures
    verify.  ``deep`` (the default) also re-verifies, one by one, every
    receipt's signature — the peers' on receipts got (with their checkpoint
    notes and inclusion proofs) and ours on receipts issued.  Those bytes are
    already fixed by the hash chain above, and receipts got were verified
    before they were committed, so ``deep=False`` (``log verify --fast``)
    still detects any change to the store; what it skips is re-proving that
    what was committed then was genuine, which costs an Ed25519 verification
    per receipt — most of the time on a large log.
    """
    n_workers = max(1, workers if workers is not None else _cpus())
    with mapped_errors("verifying the log"), _snapshot(engine) as conn:
        total = conn.execute(select(func.count()).select_from(log_leaves)).scalar_one()
        v = _Verifier(conn, card, agreements, progress, n_workers)
        v.deep = deep
        try:
            finish_checkpoints = v.start_checkpoints()
            scanned = v.scan(int(total), _CHUNK_BITS)
            v.check_orphans()
            v.check_notes()
            tree, scanned_nodes = scanned.tree()
            del scanned
            v.check_nodes(tree, scanned_nodes)
            finish_checkpoints(tree)
        finally:
            if v.pool is not None:
                v.pool.shutdown()
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


def verify_home(
    home: NodeHome, progress: Progress | None = None, *, deep: bool = True
) -> VerifyReport:
    """``detente log verify`` for the node at ``home`` (running or stopped)."""
    engine = open_engine(home.config().db_url, reads_only=True)
    try:
        return verify_log(
            engine, home.card(), load_agreements(engine), progress=progress, deep=deep
        )
    finally:
        engine.dispose()
