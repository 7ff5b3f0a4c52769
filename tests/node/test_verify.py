"""``log verify``: the node's self-audit passes on honest stores and names every tampered entry."""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select, update

import db
from detente.core.agreement import Agreement
from detente.core.envelope import Content, Envelope
from detente.core.logentry import entry_bytes, envelope_entry, log_verifiers
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.node import logscan, verify
from detente.node.clock import SystemClock
from detente.node.config import NodeHome
from detente.node.logscan import RECEIPT_GOT, Scanner, _entry_plain
from detente.node.service import Node
from detente.node.verify import (
    VerifyReport,
    _envelope_entry_bytes,
    load_agreements,
    verify_home,
    verify_log,
)
from detente.store.db import open_engine
from detente.store.schema import agreements as agreements_t
from detente.store.schema import (
    checkpoints,
    log_leaves,
    log_nodes,
    messages,
    notes,
    outbox,
    receipts,
    tracked,
)
from forms_examples import notification

N_MESSAGES = 20


@dataclass
class Pair:
    a: NodeHome  # US-CISA: sent the messages, got the receipts
    b: NodeHome  # RU-NCCC: received them, issued the receipts
    sent: list[str]  # message ids, in order


def _build(tmp: pathlib.Path, new_db: db.NewDb) -> Pair:
    ha = NodeHome.init(
        tmp / "a",
        party_id="US-CISA",
        names={"en": "CISA"},
        country="US",
        listen_port=18101,
        db_url=new_db("verify_a"),
    )
    hb = NodeHome.init(
        tmp / "b",
        party_id="RU-NCCC",
        names={"ru": "НКЦКИ"},
        country="RU",
        listen_port=18102,
        db_url=new_db("verify_b"),
    )
    now = SystemClock().now()
    ag = Agreement(
        id="us-ru",
        version=1,
        titles={"en": "test"},
        members=(ha.card(), hb.card()),
        policy=Policy(frozenset(MESSAGE_TYPES)),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
    )
    ag = ag.sign("US-CISA", ha.keys()).sign("RU-NCCC", hb.keys())
    a, b = Node(ha), Node(hb)
    try:
        a.install_agreement(ag)
        b.install_agreement(ag)
        sent: list[str] = []
        # Two delivery rounds, so the logs hold several batches and checkpoints.
        for half in range(2):
            for i in range(N_MESSAGES // 2):
                a.send(
                    Content("notification", "AMBER", notification(f"msg {half}.{i}")),
                    None,
                    "us-ru",
                )
            envs = a.pending_batch("RU-NCCC", 100)
            res = b.receive([e.to_json() for e in envs], None)
            a.record_receipts(
                list(zip(envs, [r.to_json() for r in res.receipts], strict=True)), res.checkpoint
            )
            sent += [e.id for e in envs]
            # What the scheduler does: cover the sends and recorded receipts.
            a.latest_checkpoint()
            b.latest_checkpoint()
    finally:
        a.close()
        b.close()
    return Pair(ha, hb, sent)


@pytest.fixture
def pair(tmp_path: pathlib.Path, db_url_factory: db.NewDb) -> Pair:
    return _build(tmp_path, db_url_factory)


def _tamper(home: NodeHome, fn: Callable[[Any], None]) -> None:
    engine = open_engine(home.config().db_url)
    try:
        with engine.begin() as conn:
            fn(conn)
    finally:
        engine.dispose()


def _engine(home: NodeHome) -> Engine:
    return open_engine(home.config().db_url)


def _failed(home: NodeHome) -> VerifyReport:
    """The full audit fails — and so does the fast one (`log verify --fast`):
    every tampering is caught by the hash chain up to our signed checkpoints."""
    report = verify_home(home)
    assert not report.ok
    fast = verify_home(home, deep=False)
    assert not fast.ok, "log verify --fast missed the tampering"
    return report


def _mldsa_key_id(home: NodeHome) -> str:
    return log_verifiers(home.card())[1].key_id.hex()


def _any(report: VerifyReport, *parts: str) -> bool:
    return any(all(p in problem for p in parts) for problem in report.problems)


# -- honest stores ----------------------------------------------------------------


def test_verify_passes_on_both_nodes(pair: Pair) -> None:
    ra, rb = verify_home(pair.a), verify_home(pair.b)
    assert ra.ok, ra.problems
    assert rb.ok, rb.problems
    # agreement + 20 envelopes + 20 receipts on each side.
    assert ra.size == rb.size == 1 + 2 * N_MESSAGES
    assert ra.receipts_checked == rb.receipts_checked == N_MESSAGES
    assert ra.checkpoints_checked >= 2  # one per round: sends do not sign their own
    assert rb.checkpoints_checked >= 3


def test_verify_log_reports_progress(pair: Pair) -> None:
    engine = _engine(pair.a)
    seen: list[tuple[int, int]] = []
    try:
        report = verify_log(
            engine,
            pair.a.card(),
            load_agreements(engine),
            progress=lambda done, total: seen.append((done, total)),
        )
    finally:
        engine.dispose()
    assert report.ok, report.problems
    assert seen
    assert seen[-1] == (report.size, report.size)


def test_verify_while_the_node_is_running(pair: Pair) -> None:
    """The audit reads one snapshot and does not block the serving node's writer."""
    node = Node(pair.a)
    sent_during: list[str] = []

    def progress(done: int, total: int) -> None:
        # Mid-audit (inside its read transaction): the node commits a send.
        envs = node.send(Content("notification", "AMBER", notification("during")), None, "us-ru")
        sent_during.extend(e.id for e in envs)

    try:
        engine = _engine(pair.a)
        try:
            t0 = time.monotonic()
            report = verify_log(engine, pair.a.card(), load_agreements(engine), progress=progress)
            elapsed = time.monotonic() - t0
        finally:
            engine.dispose()
        after = verify_home(pair.a)
    finally:
        node.close()
    assert sent_during
    assert elapsed < 5  # the writer did not wait for a lock the audit held
    assert report.ok, report.problems
    assert report.size == 1 + 2 * N_MESSAGES  # the snapshot, without the send made during it
    assert after.ok, after.problems
    assert after.size == report.size + 1


# -- tampering --------------------------------------------------------------------


def test_flipped_byte_in_stored_envelope(pair: Pair) -> None:
    victim = pair.sent[3]

    def fn(conn: Any) -> None:
        env = bytes(
            conn.execute(select(messages.c.envelope).where(messages.c.id == victim)).scalar_one()
        )
        i = env.index(b'"ct":"') + 10
        flipped = env[:i] + bytes([env[i] ^ 0x01]) + env[i + 1 :]
        conn.execute(update(messages).where(messages.c.id == victim).values(envelope=flipped))

    _tamper(pair.a, fn)
    report = _failed(pair.a)
    assert _any(report, victim, "stored envelope does not match its log entry")
    assert _any(report, f"receipt for {victim}")  # the receipt got names the real envelope
    # The other side is untouched.
    assert verify_home(pair.b).ok


def test_changed_message_seq(pair: Pair) -> None:
    victim = pair.sent[5]
    _tamper(
        pair.b,
        lambda conn: conn.execute(update(messages).where(messages.c.id == victim).values(seq=999)),
    )
    report = _failed(pair.b)
    assert _any(report, victim, "stored message columns do not match its log entry")


def test_changed_message_recipient(pair: Pair) -> None:
    victim = pair.sent[6]
    _tamper(
        pair.a,
        lambda conn: conn.execute(
            update(messages).where(messages.c.id == victim).values(recipient="CN-CNCERT")
        ),
    )
    report = _failed(pair.a)
    assert _any(report, victim, "stored message columns do not match its log entry")


def test_changed_log_entry(pair: Pair) -> None:
    def fn(conn: Any) -> None:
        entry = bytes(
            conn.execute(select(log_leaves.c.entry).where(log_leaves.c.idx == 7)).scalar_one()
        )
        forged = entry.replace(b'"seq":', b'"seq":1')
        assert forged != entry
        conn.execute(update(log_leaves).where(log_leaves.c.idx == 7).values(entry=forged))

    _tamper(pair.a, fn)
    report = _failed(pair.a)
    assert _any(report, "leaf 7 ", "stored leaf hash does not match its entry")
    assert _any(report, "leaf 7 ", "stored envelope does not match its log entry") or _any(
        report, "leaf 7 ", "columns do not match"
    )


def test_changed_log_entry_with_matching_leaf_hash(pair: Pair) -> None:
    """A forger who also fixes the leaf hash is caught by the tree and the checkpoints."""

    def fn(conn: Any) -> None:
        entry = bytes(
            conn.execute(select(log_leaves.c.entry).where(log_leaves.c.idx == 8)).scalar_one()
        )
        forged = entry.replace(b'"type":"notification"', b'"type":"request"')
        assert forged != entry
        conn.execute(
            update(log_leaves)
            .where(log_leaves.c.idx == 8)
            .values(entry=forged, leaf_hash=hashlib.sha256(b"\x00" + forged).digest())
        )

    _tamper(pair.a, fn)
    report = _failed(pair.a)
    assert _any(report, "leaf 8 ", "columns do not match its log entry")
    assert _any(report, "checkpoint at size", "root does not match")
    assert _any(report, "tree node level 1 index 4 differs from the recomputed tree")


def test_changed_leaf_hash(pair: Pair) -> None:
    _tamper(
        pair.b,
        lambda conn: conn.execute(
            update(log_leaves).where(log_leaves.c.idx == 12).values(leaf_hash=bytes(32))
        ),
    )
    report = _failed(pair.b)
    assert _any(report, "leaf 12 ", "stored leaf hash does not match its entry")


def test_changed_tree_node(pair: Pair) -> None:
    _tamper(
        pair.a,
        lambda conn: conn.execute(
            update(log_nodes)
            .where((log_nodes.c.level == 2) & (log_nodes.c.idx == 1))
            .values(hash=bytes(32))
        ),
    )
    report = _failed(pair.a)
    assert report.problems == ["tree node level 2 index 1 differs from the recomputed tree"]


def test_changed_receipt_got(pair: Pair) -> None:
    victim = pair.sent[9]

    def fn(conn: Any) -> None:
        data = bytes(
            conn.execute(
                select(receipts.c.receipt).where(receipts.c.message_id == victim)
            ).scalar_one()
        )
        forged = data.replace(b'"received":"20', b'"received":"19')
        assert forged != data
        conn.execute(update(receipts).where(receipts.c.message_id == victim).values(receipt=forged))

    _tamper(pair.a, fn)
    report = _failed(pair.a)
    assert _any(report, victim, "stored receipt does not match its log entry")


def _forge_receipt_got(victim: str) -> Callable[[Any], None]:
    """Receipt bytes, hash column and leaf all rewritten, consistently."""

    def fn(conn: Any) -> None:
        data = bytes(
            conn.execute(
                select(receipts.c.receipt).where(receipts.c.message_id == victim)
            ).scalar_one()
        )
        forged = data.replace(b'"received":"20', b'"received":"19')
        new_hash = "sha256:" + hashlib.sha256(forged).hexdigest()
        old_hash = "sha256:" + hashlib.sha256(data).hexdigest()
        idx = conn.execute(
            select(receipts.c.log_index).where(receipts.c.message_id == victim)
        ).scalar_one()
        entry = bytes(
            conn.execute(select(log_leaves.c.entry).where(log_leaves.c.idx == idx)).scalar_one()
        )
        entry = entry.replace(old_hash.encode(), new_hash.encode())
        conn.execute(
            update(receipts)
            .where(receipts.c.message_id == victim)
            .values(receipt=forged, receipt_hash=new_hash)
        )
        conn.execute(
            update(log_leaves)
            .where(log_leaves.c.idx == idx)
            .values(entry=entry, leaf_hash=hashlib.sha256(b"\x00" + entry).digest())
        )

    return fn


def test_forged_receipt_got_consistent_with_its_leaf(pair: Pair) -> None:
    """Receipt bytes, hash column and leaf all rewritten: the receipt's signature fails."""
    victim = pair.sent[10]
    _tamper(pair.a, _forge_receipt_got(victim))
    report = _failed(pair.a)
    assert _any(report, f"receipt for {victim}:", "signature does not verify")


def test_changed_receipt_issued(pair: Pair) -> None:
    victim = pair.sent[11]

    def fn(conn: Any) -> None:
        data = bytes(
            conn.execute(
                select(receipts.c.receipt).where(receipts.c.message_id == victim)
            ).scalar_one()
        )
        forged = data.replace(b'"received":"20', b'"received":"19')
        conn.execute(update(receipts).where(receipts.c.message_id == victim).values(receipt=forged))

    _tamper(pair.b, fn)
    report = _failed(pair.b)
    assert _any(report, victim, "stored receipt does not match its log entry")


def test_deleted_log_leaf(pair: Pair) -> None:
    _tamper(pair.a, lambda conn: conn.execute(delete(log_leaves).where(log_leaves.c.idx == 15)))
    report = _failed(pair.a)
    assert _any(report, "leaves 15..15 are missing from the log")
    assert _any(report, "is not in the log (log index 15)")
    assert _any(report, "checkpoint at size", "root does not match")


def test_deleted_message_row_of_a_leaf(pair: Pair) -> None:
    victim = pair.sent[0]

    def fn(conn: Any) -> None:
        conn.execute(delete(receipts).where(receipts.c.message_id == victim))
        conn.execute(delete(tracked).where(tracked.c.message_id == victim))
        conn.execute(delete(messages).where(messages.c.id == victim))

    # The outbox row references the message: drop the foreign key's holder first.
    _tamper(pair.a, lambda conn: conn.execute(delete(outbox).where(outbox.c.message_id == victim)))
    _tamper(pair.a, fn)
    report = _failed(pair.a)
    assert _any(report, victim, "is not stored")


def test_checkpoint_with_another_root(pair: Pair) -> None:
    def fn(conn: Any) -> None:
        size, note = conn.execute(
            select(checkpoints.c.size, checkpoints.c.note)
            .order_by(checkpoints.c.size.desc())
            .limit(1)
        ).one()
        text = bytes(note).decode()
        lines = text.split("\n")
        other = "A" * 43 + "="  # base64 of 32 zero bytes
        assert lines[2] != other
        lines[2] = other
        conn.execute(
            update(checkpoints)
            .where(checkpoints.c.size == size)
            .values(note="\n".join(lines).encode())
        )

    _tamper(pair.b, fn)
    report = _failed(pair.b)
    size = verify_home(pair.b).size
    assert _any(report, f"checkpoint at size {size}: signature does not verify")
    assert _any(report, f"checkpoint at size {size}: root does not match")


def test_checkpoint_without_mldsa_signature(pair: Pair) -> None:
    stripped_size: list[int] = []

    def fn(conn: Any) -> None:
        size, note = conn.execute(
            select(checkpoints.c.size, checkpoints.c.note).order_by(checkpoints.c.size).limit(1)
        ).one()
        body, sigs = bytes(note).decode().split("\n\n", 1)
        lines = [line for line in sigs.split("\n") if line]
        assert len(lines) == 2
        # Ed25519 signatures are 4 + 64 bytes; the ML-DSA-65 one is far longer.
        kept = [line for line in lines if len(line) < 200]
        assert len(kept) == 1
        stripped = body + "\n\n" + kept[0] + "\n"
        conn.execute(
            update(checkpoints).where(checkpoints.c.size == size).values(note=stripped.encode())
        )
        stripped_size.append(size)

    _tamper(pair.a, fn)
    report = _failed(pair.a)
    assert report.problems == [
        f"checkpoint at size {stripped_size[0]}: signature does not verify (checkpoint lacks "
        f"a valid signature from detente.log/US-CISA (key {_mldsa_key_id(pair.a)}))"
    ]
    assert not _any(report, "root does not match")


def test_fast_entry_formatting_is_the_canonical_entry(pair: Pair) -> None:
    """The audit's no-JSON fast path builds exactly ``entry_bytes(envelope_entry(env))``."""
    engine = _engine(pair.b)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(messages.c.envelope)).scalars().all()
    finally:
        engine.dispose()
    assert rows
    for raw in rows:
        env = Envelope.from_bytes(bytes(raw))
        for exercise in (False, True):
            env = dataclasses.replace(env, exercise=exercise)
            assert _envelope_entry_bytes(
                env.hash(), env.id, env.agreement, env.from_, env.to, env.seq, env.type, exercise
            ) == entry_bytes(envelope_entry(env))
    assert _envelope_entry_bytes("h", "i", 'a"b', "f", "t", 1, "x", False) is None
    assert _envelope_entry_bytes("h", "i", "a\\b", "f", "t", 1, "x", False) is None


def test_single_worker_finds_the_same(pair: Pair) -> None:
    victim = pair.sent[2]
    _tamper(
        pair.a,
        lambda conn: conn.execute(update(messages).where(messages.c.id == victim).values(seq=77)),
    )
    engine = _engine(pair.a)
    try:
        agreements = load_agreements(engine)
        one = verify_log(engine, pair.a.card(), agreements, workers=1)
        many = verify_log(engine, pair.a.card(), agreements, workers=4)
    finally:
        engine.dispose()
    assert one.problems == many.problems
    assert _any(one, victim, "columns do not match")


def test_changed_agreement_digest(pair: Pair) -> None:
    _tamper(pair.b, lambda conn: conn.execute(update(agreements_t).values(digest="0" * 64)))
    report = _failed(pair.b)
    assert _any(report, "leaf 0 (agreement us-ru@1)", "digest does not match its log entry")
    assert _any(report, "agreement us-ru@1: stored document does not match its digest")


def test_receipt_whose_checkpoint_note_was_deleted(pair: Pair) -> None:
    def fn(conn: Any) -> None:
        conn.execute(delete(notes))

    _tamper(pair.a, fn)
    report = _failed(pair.a)
    assert _any(report, "the checkpoint it names", "is not stored")


# -- the scan: worker processes and the database's byte-for-byte flag ---------------


def _verify(home: NodeHome, *, workers: int, deep: bool = True) -> VerifyReport:
    engine = _engine(home)
    try:
        return verify_log(engine, home.card(), load_agreements(engine), workers=workers, deep=deep)
    finally:
        engine.dispose()


def _tamper_several(pair: Pair) -> None:
    """Faults in several ranges of 8 leaves, of several kinds, on the sender's store."""

    def fn(conn: Any) -> None:
        conn.execute(update(messages).where(messages.c.id == pair.sent[1]).values(seq=99))
        env = bytes(
            conn.execute(
                select(messages.c.envelope).where(messages.c.id == pair.sent[12])
            ).scalar_one()
        )
        i = env.index(b'"ct":"') + 10
        conn.execute(
            update(messages)
            .where(messages.c.id == pair.sent[12])
            .values(envelope=env[:i] + bytes([env[i] ^ 0x01]) + env[i + 1 :])
        )
        conn.execute(
            update(log_nodes)
            .where((log_nodes.c.level == 1) & (log_nodes.c.idx == 9))
            .values(hash=bytes(32))
        )

    _tamper(pair.a, fn)


def _small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of 8 leaves, on worker processes from 2 ranges on."""
    monkeypatch.setattr(verify, "_CHUNK_BITS", 3)
    monkeypatch.setattr(verify, "_PROCESSES_FROM", 2)


@pytest.mark.parametrize("deep", [True, False])
def test_worker_processes_find_the_same(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, deep: bool
) -> None:
    """Ranges of 8 leaves on two worker processes: the same report as on one connection."""
    inline = _verify(pair.a, workers=1, deep=deep)
    assert inline.ok, inline.problems
    _small_ranges(monkeypatch)
    # No range is scanned on this connection (as it would be if the workers failed).
    monkeypatch.setattr(verify, "Scanner", None)
    honest = _verify(pair.a, workers=2, deep=deep)
    assert honest == inline
    _tamper_several(pair)
    two = _verify(pair.a, workers=2, deep=deep)
    monkeypatch.undo()
    _small_ranges(monkeypatch)
    one = _verify(pair.a, workers=1, deep=deep)
    assert one.problems == two.problems
    assert _any(one, pair.sent[1], "columns do not match")
    assert _any(one, pair.sent[12], "stored envelope does not match its log entry")
    assert _any(one, "tree node level 1 index 9 differs from the recomputed tree")
    assert _any(one, f"receipt for {pair.sent[12]}") == deep
    monkeypatch.undo()
    assert sorted(_verify(pair.a, workers=1, deep=deep).problems) == sorted(one.problems)


def test_signatures_on_threads_find_the_same(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Receipts' signatures verified on the thread pool: the same report as on one thread."""
    victim = pair.sent[10]
    _tamper(pair.a, _forge_receipt_got(victim))
    one = _verify(pair.a, workers=1)
    monkeypatch.setattr(logscan, "_THREADS_FROM", 1)
    assert _verify(pair.a, workers=2) == one
    assert _any(one, f"receipt for {victim}:", "signature does not verify")
    assert _verify(pair.b, workers=2).ok


def test_worker_processes_with_a_missing_leaf(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gap shifts every later leaf: the tree is rebuilt from all of them, as on one range."""
    _tamper(pair.b, lambda conn: conn.execute(delete(log_leaves).where(log_leaves.c.idx == 8)))
    _small_ranges(monkeypatch)
    two = _verify(pair.b, workers=2)
    assert two.problems == _verify(pair.b, workers=1).problems
    assert _any(two, "leaves 8..8 are missing from the log")
    assert _any(two, "checkpoint at size", "root does not match")


def test_scan_vouches_for_every_honest_leaf(pair: Pair) -> None:
    """The database's flag matches every honest envelope and receipt leaf, on both
    sides; only the agreement leaf is left to the detailed checks (a drift between
    the SQL template and ``entry_bytes`` would pass the tests above, but slowly)."""
    for home in (pair.a, pair.b):
        engine = _engine(home)
        try:
            with verify._snapshot(engine) as conn:
                for deep in (False, True):
                    v = verify._Verifier(conn, home.card(), load_agreements(engine), None, 1)
                    v.deep = deep
                    spec = v.scan_spec()
                    result = Scanner(spec, conn.connection.dbapi_connection).scan(0, 64, 6)
                    assert result.suspects == [0]
                    assert result.envelopes == result.receipts == N_MESSAGES
        finally:
            engine.dispose()


def test_value_needing_a_json_escape_is_not_vouched_for(pair: Pair) -> None:
    """A forger who rewrites a column, the entry and its leaf hash with a value that
    holds a quote: the SQL template matches, the detailed checks name the leaf."""
    victim = pair.sent[4]
    forged = 'us-ru@1","agreement":"us-ru@1'

    def fn(conn: Any) -> None:
        idx = conn.execute(select(messages.c.log_index).where(messages.c.id == victim)).scalar_one()
        entry = bytes(
            conn.execute(select(log_leaves.c.entry).where(log_leaves.c.idx == idx)).scalar_one()
        )
        entry = entry.replace(b'"agreement":"us-ru@1"', f'"agreement":"{forged}"'.encode())
        conn.execute(update(messages).where(messages.c.id == victim).values(agreement=forged))
        conn.execute(
            update(log_leaves)
            .where(log_leaves.c.idx == idx)
            .values(entry=entry, leaf_hash=hashlib.sha256(b"\x00" + entry).digest())
        )

    _tamper(pair.b, fn)
    report = _failed(pair.b)
    assert _any(report, victim, "columns do not match its log entry")


def test_entry_plain() -> None:
    good = b'detente/v1/leaf\x00{"envelope_hash":"h","from":"f","hash":"x","kind":"receipt",'
    assert _entry_plain(good + b'"log_index":12,"message_id":"m","to":"t"}', RECEIPT_GOT)
    for bad in (b"012", b"-1", b"1.0", b"", b"1 "):
        assert not _entry_plain(
            good + b'"log_index":' + bad + b',"message_id":"m","to":"t"}', RECEIPT_GOT
        )
    assert not _entry_plain(good + b'"log_index":1,"message_id":"m\\n","to":"t"}', RECEIPT_GOT)
    assert not _entry_plain(good + b'"log_index":1,"message_id":"m\x01","to":"t"}', RECEIPT_GOT)
