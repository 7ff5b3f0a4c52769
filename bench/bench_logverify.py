"""Benchmark ``log verify`` (detente.node.verify): a real small log and a 1M-entry one.

Run: .venv/bin/python bench/bench_logverify.py [entries] [real_messages]

Part 1 (REAL): two in-process nodes (X25519 KEM agreement, so envelopes are
small) exchange ``real_messages`` messages through the real send / receive /
record-receipts path; ``verify_log`` is timed on both stores (the sender's
holds envelopes out and receipts got, verified with ``verify_receipt``; the
recipient's holds envelopes in and receipts issued, signature-checked), and
the per-entry costs are extrapolated to a 1M-entry log.

Part 2 (SYNTHETIC store, real verification): a SQLite store of ``entries``
(default 1,000,000) log leaves written directly: consistent messages rows with
small fake envelope bytes (~250 bytes, not sealed; envelopes are only hashed
by the audit), their real log entries, leaf hashes, every complete-subtree
node row from MerkleTree, and a checkpoint every 500 leaves signed with the
node's real Ed25519 and ML-DSA-65 keys.  No receipts (part 1 gives their
cost).  ``verify_log`` is then timed on it against the 10 s target, and
compared with a reference measured in the same run: raw hashlib SHA-256 of
1M 200-byte inputs.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from detente.core.agreement import Agreement
from detente.core.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from detente.core.envelope import Content, Envelope
from detente.core.ids import uuid7
from detente.core.keys import verify_ed25519
from detente.core.logentry import entry_bytes, log_origin, log_signers, log_verifiers
from detente.core.merkle import MerkleTree
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.core.receipt import Receipt, verify_receipt
from detente.node.clock import SystemClock
from detente.node.config import NodeHome
from detente.node.service import Node
from detente.node.verify import load_agreements, verify_home
from detente.store.db import migrate, open_engine
from detente.store.schema import checkpoints, messages, receipts
from detente.store.schema import notes as notes_t
from forms_examples import notification

TARGET_S = 10.0
CHECKPOINT_EVERY = 500


def reference_sha256(n: int = 1_000_000) -> float:
    data = [os.urandom(200) for _ in range(1000)]
    sha = hashlib.sha256
    t0 = time.perf_counter()
    for i in range(n):
        sha(data[i % 1000]).digest()
    return time.perf_counter() - t0


def _timed_verify(home: NodeHome) -> tuple[float, int, bool, list[str]]:
    t0 = time.perf_counter()
    report = verify_home(home)
    return time.perf_counter() - t0, report.size, report.ok, report.problems[:3]


def part_real(tmp: Path, n_messages: int) -> dict[str, float]:
    print(f"== Part 1 (REAL envelopes and receipts): {n_messages} messages A -> B, in process")
    ha = NodeHome.init(
        tmp / "a", party_id="US-CISA", names={"en": "CISA"}, country="US", listen_port=18201
    )
    hb = NodeHome.init(
        tmp / "b", party_id="RU-NCCC", names={"ru": "НКЦКИ"}, country="RU", listen_port=18202
    )
    now = SystemClock().now()
    ag = Agreement(
        id="us-ru",
        version=1,
        titles={"en": "bench"},
        members=(ha.card(), hb.card()),
        policy=Policy(frozenset(MESSAGE_TYPES), kem="X25519"),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
    ).sign("US-CISA", ha.keys())
    ag = ag.sign("RU-NCCC", hb.keys())
    a, b = Node(ha), Node(hb)
    t0 = time.perf_counter()
    try:
        a.install_agreement(ag)
        b.install_agreement(ag)
        batch = 200
        for start in range(0, n_messages, batch):
            for i in range(start, min(start + batch, n_messages)):
                a.send(Content("notification", "AMBER", notification(f"msg {i}")), None, "us-ru")
            envs = a.pending_batch("RU-NCCC", batch)
            res = b.receive([e.to_json() for e in envs], None)
            a.record_receipts(
                list(zip(envs, [r.to_json() for r in res.receipts], strict=True)), res.checkpoint
            )
            a.latest_checkpoint()  # as the scheduler does: cover sends and receipts got
    finally:
        a.close()
        b.close()
    print(f"   built in {time.perf_counter() - t0:.1f} s")
    for label, home in (("sender: envelopes out + receipts got", ha), ("recipient", hb)):
        t1 = time.perf_counter()
        report = verify_home(home)
        secs = time.perf_counter() - t1
        per = secs / report.size * 1e6
        print(
            f"   verify_log, {label}: {report.size} entries, "
            f"{report.checkpoints_checked} checkpoints, {report.receipts_checked} receipts "
            f"in {secs:.3f} s = {per:.0f} us/entry; ok={report.ok} {report.problems[:3]}"
        )
        t1 = time.perf_counter()
        fast = verify_home(home, deep=False)
        secs = time.perf_counter() - t1
        print(
            f"   verify_log --fast, {label}: {fast.size} entries in {secs:.3f} s = "
            f"{secs / fast.size * 1e6:.0f} us/entry (x1M = {secs / fast.size * 1e6:.0f} s); "
            f"ok={fast.ok}"
        )
    costs = unit_costs(ha, hb)
    for what, us in costs.items():
        print(f"   one {what}: {us:.0f} us (one thread)")
    return costs


def unit_costs(ha: NodeHome, hb: NodeHome) -> dict[str, float]:
    """Serial per-object costs of the audit's signature checks, on the real stored objects."""
    engine_a, engine_b = open_engine(ha.config().db_url), open_engine(hb.config().db_url)
    try:
        agreements = load_agreements(engine_a)
        with engine_a.connect() as conn:
            notes = [bytes(n) for n in conn.execute(select(checkpoints.c.note)).scalars()][:300]
            got = conn.execute(
                select(receipts.c.receipt, messages.c.envelope, notes_t.c.note)
                .join(messages, messages.c.id == receipts.c.message_id)
                .join(notes_t, notes_t.c.hash == receipts.c.checkpoint_hash)
                .limit(300)
            ).all()
        with engine_b.connect() as conn:
            issued = [bytes(r) for r in conn.execute(select(receipts.c.receipt)).scalars()][:300]
    finally:
        engine_a.dispose()
        engine_b.dispose()
    card_a, card_b = ha.card(), hb.card()
    verifiers = log_verifiers(card_a)
    t0 = time.perf_counter()
    for note in notes:
        verify_checkpoint(note, card_a.log_origin, verifiers)
    cp_us = (time.perf_counter() - t0) / len(notes) * 1e6
    cache: dict[str, Checkpoint] = {}
    t0 = time.perf_counter()
    for r, e, n in got:
        env = Envelope.from_bytes(bytes(e))
        verify_receipt(
            Receipt.from_bytes(bytes(r)),
            env,
            agreements[env.agreement],
            bytes(n),
            checkpoint_cache=cache,
        )
    got_us = (time.perf_counter() - t0) / len(got) * 1e6
    t0 = time.perf_counter()
    for data in issued:
        rc = Receipt.from_bytes(data)
        verify_ed25519(card_b.keys.ed25519, rc.sig, rc.signed_bytes(), what="receipt")
    issued_us = (time.perf_counter() - t0) / len(issued) * 1e6
    return {
        "checkpoint (Ed25519 + ML-DSA-65)": cp_us,
        "receipt got (verify_receipt, batch checkpoint cached)": got_us,
        "receipt issued (parse + Ed25519)": issued_us,
    }


def build_synthetic(tmp: Path, n: int) -> NodeHome:
    path = tmp / "synthetic.db"
    home = NodeHome.init(
        tmp / "s",
        party_id="US-CISA",
        names={"en": "CISA"},
        country="US",
        listen_port=18203,
        db_url=f"sqlite:///{path}",
    )
    engine = open_engine(home.config().db_url)
    migrate(engine)
    engine.dispose()
    keys, card = home.keys(), home.card()
    signers = log_signers(card.id, keys)
    origin = log_origin(card.id)
    base = datetime(2026, 11, 24, tzinfo=UTC)
    created = "2026-11-24T12:00:00Z"
    agreement = "us-ru@1"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    tree = MerkleTree()
    leaf_hashes: list[bytes] = []
    msg_rows: list[tuple[object, ...]] = []
    leaf_rows: list[tuple[object, ...]] = []
    cp_rows: list[tuple[object, ...]] = []
    sha = hashlib.sha256
    for i in range(n):
        mid = uuid7(base + timedelta(microseconds=i * 10), os.urandom(10))
        # Fake envelope bytes: the shape and size of a small canonical envelope.
        env = (
            b'{"agreement":"us-ru@1","case":null,"content_hash":"sha256:'
            + sha(mid.encode()).hexdigest().encode()
            + b'","created":"2026-11-24T12:00:00Z","ct":"SYNTHETIC'
            + os.urandom(24).hex().encode()
            + b'","from":"US-CISA","id":"'
            + mid.encode()
            + b'","seq":'
            + str(i + 1).encode()
            + b',"to":"RU-NCCC","type":"notification"}'
        )
        h = "sha256:" + sha(env).hexdigest()
        entry = {
            "kind": "envelope",
            "hash": h,
            "id": mid,
            "agreement": agreement,
            "from": "US-CISA",
            "to": "RU-NCCC",
            "seq": i + 1,
            "type": "notification",
            "exercise": False,
        }
        data = entry_bytes(entry)
        lh = sha(b"\x00" + data).digest()
        leaf_hashes.append(lh)
        msg_rows.append(
            (mid, "out", agreement, "US-CISA", "RU-NCCC", i + 1, created, "notification", "AMBER",
             None, None, 0, h, env, None, i, 0)
        )  # fmt: skip
        leaf_rows.append((i, lh, data, "envelope", mid))
        if len(leaf_rows) >= 50_000 or i == n - 1:
            db.executemany(
                "INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", msg_rows
            )
            db.executemany("INSERT INTO log_leaves VALUES (?,?,?,?,?)", leaf_rows)
            msg_rows, leaf_rows = [], []
    tree.extend_leaf_hashes(leaf_hashes)
    for k, level in enumerate(tree.levels):
        if k:
            db.executemany(
                "INSERT INTO log_nodes VALUES (?,?,?)", [(k, j, hh) for j, hh in enumerate(level)]
            )
    for size in [*range(CHECKPOINT_EVERY, n + 1, CHECKPOINT_EVERY), n]:
        note = sign_checkpoint(Checkpoint(origin, size, tree.root(size)), signers)
        cp_rows.append((size, note, 0))
    db.executemany("INSERT OR IGNORE INTO checkpoints VALUES (?,?,?)", cp_rows)
    db.execute("COMMIT")
    db.close()
    return home


def part_synthetic(tmp: Path, n: int) -> float:
    print(f"== Part 2 (SYNTHETIC store, real verify_log): {n:,} log entries")
    t0 = time.perf_counter()
    home = build_synthetic(tmp, n)
    size_mb = (tmp / "synthetic.db").stat().st_size / 1e6
    print(f"   built in {time.perf_counter() - t0:.1f} s ({size_mb:.0f} MB SQLite file)")
    secs, size, ok, problems = _timed_verify(home)
    ref = reference_sha256()
    print(
        f"   verify_log: {size:,} entries in {secs:.2f} s = {size / secs:,.0f} entries/s; ok={ok}"
    )
    if problems:
        print(f"   problems: {problems}")
    scaled = secs * 1_000_000 / size
    verdict = "MEETS" if scaled <= TARGET_S else "MISSES"
    print(f"   scaled to 1M entries: {scaled:.2f} s -> {verdict} the {TARGET_S:.0f} s target")
    print(f"   reference: raw SHA-256 of 1M 200-byte inputs: {ref:.3f} s")
    print(f"   ratio verify(1M) / reference: {scaled / ref:.1f}x")
    return secs / size


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_real = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        costs = part_real(tmp, n_real) if n_real else {}
        per_leaf = part_synthetic(tmp, n)
    if costs:
        threads = os.cpu_count() or 1
        cp, got, issued = costs.values()
        print(
            f"== Estimate (REAL unit costs x counts), 1M entries, signatures on {threads} thread(s)"
        )
        for label, receipt_us in (("sender (500k got)", got), ("recipient (500k issued)", issued)):
            for every in (2, 500):
                n_cp = 1_000_000 // every
                sig_s = (500_000 * receipt_us + n_cp * cp) / 1e6 / min(threads, 2)
                print(
                    f"   {label}, a checkpoint every {every} entries: "
                    f"part-2 checks ~{per_leaf * 1e6:.0f} s"
                    f" + signatures ~{sig_s:.0f} s = ~{per_leaf * 1e6 + sig_s:.0f} s"
                )


if __name__ == "__main__":
    main()
