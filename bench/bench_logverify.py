"""Benchmark ``log verify`` (detente.node.verify): a real log, and a synthetic 1M-entry one.

Run: .venv/bin/python bench/bench_logverify.py [entries] [real_messages]

Part 1 (REAL): two in-process nodes (X25519 KEM agreement, so envelopes are
small) exchange ``real_messages`` messages through the real send / receive /
record-receipts path; ``verify_log`` is timed on both stores, fast
(``deep=False``, ``log verify --fast``) and deep (the default: every receipt's
signature too) — the sender's store holds envelopes out and receipts got (the
peer's signature, checkpoint and inclusion proof), the recipient's envelopes
in and receipts issued (our signature).  Per-entry costs are extrapolated to a
1M-entry log, and the deep cost per receipt is compared with a raw
``cryptography`` Ed25519 verification measured in the same run.

Part 2 (SYNTHETIC store, real verification): a SQLite store of ``entries``
(default 1,000,000) log leaves written directly: consistent messages rows with
small fake envelope bytes (~250 bytes, not sealed; envelopes are only hashed
by the audit), their real log entries, leaf hashes, every complete-subtree
node row from MerkleTree, and a checkpoint every 500 leaves signed with the
node's real Ed25519 and ML-DSA-65 keys.  No receipts (part 1 gives their
cost).  ``verify_log`` is then timed on it against the 10 s target.

Each audit is timed in wall seconds and in CPU seconds (this process, its
threads and its worker processes): the machine may be shared, and CPU time
is what a busy neighbour does not inflate.  References, measured in the same
run: SHA-256 of 1M 200-byte inputs on one thread; one Ed25519 verification on
one thread, and the time per verification on 2 threads and on 2 processes
(``cryptography`` releases the GIL while it verifies, so threads share the
signatures of a log too small for worker processes).

Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from detente.core.agreement import Agreement
from detente.core.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from detente.core.envelope import Content, Envelope
from detente.core.ids import uuid7
from detente.core.logentry import entry_bytes, log_origin, log_signers, log_verifiers
from detente.core.merkle import MerkleTree
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.core.receipt import Receipt, verify_receipt
from detente.node.clock import SystemClock
from detente.node.config import NodeHome
from detente.node.logscan import Scanner
from detente.node.service import Node
from detente.node.verify import VerifyReport, _snapshot, _Verifier, load_agreements, verify_home
from detente.store.db import migrate, open_engine
from detente.store.schema import checkpoints, messages, receipts
from detente.store.schema import notes as notes_t
from forms_examples import notification

TARGET_S = 10.0
CHECKPOINT_EVERY = 500
MILLION = 1_000_000

# -- references ---------------------------------------------------------------------

_KEY = Ed25519PrivateKey.generate()
_MSG = os.urandom(900)  # about a receipt's signed bytes
_SIG = _KEY.sign(_MSG)
_PUB = _KEY.public_key()


def _ed25519_verify(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        _PUB.verify(_SIG, _MSG)
    return time.perf_counter() - t0


def reference_sha256(n: int = MILLION) -> float:
    """CPU seconds for SHA-256 of ``n`` 200-byte inputs on one thread."""
    data = [os.urandom(200) for _ in range(1000)]
    sha = hashlib.sha256
    t0 = time.process_time()
    for i in range(n):
        sha(data[i % 1000]).digest()
    return time.process_time() - t0


def reference_ed25519(n: int = 4000) -> dict[str, float]:
    """Microseconds per Ed25519 verification: CPU on one thread; wall on two threads
    and on two processes (per verification, so 2x faster is half the one-thread time)."""
    t0 = time.process_time()
    _ed25519_verify(n)
    one = (time.process_time() - t0) / n * 1e6
    with ThreadPoolExecutor(2) as pool:
        t0 = time.perf_counter()
        list(pool.map(_ed25519_verify, [n // 2, n // 2]))
        threads = (time.perf_counter() - t0) / n * 1e6
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_ed25519_verify, [1, 1]))  # started
        t0 = time.perf_counter()
        list(pool.map(_ed25519_verify, [n // 2, n // 2]))
        procs = (time.perf_counter() - t0) / n * 1e6
    return {"1 thread": one, "2 threads": threads, "2 processes": procs}


@dataclass
class Timed:
    seconds: float  # wall
    cpu: float  # this process (all threads) and its worker processes
    report: VerifyReport

    @property
    def per_entry_us(self) -> float:
        return self.seconds / self.report.size * 1e6

    @property
    def cpu_per_entry_us(self) -> float:
        return self.cpu / self.report.size * 1e6


def _cpu() -> float:
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _timed(home: NodeHome, *, deep: bool) -> Timed:
    c0, t0 = _cpu(), time.perf_counter()
    report = verify_home(home, deep=deep)
    return Timed(time.perf_counter() - t0, _cpu() - c0, report)


def _best(fn: Callable[[], Timed], runs: int = 2) -> Timed:
    return min((fn() for _ in range(runs)), key=lambda t: t.seconds)


# -- part 1: a real log ---------------------------------------------------------------


def build_real(tmp: Path, n_messages: int) -> tuple[NodeHome, NodeHome]:
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
    return ha, hb


def part_real(ha: NodeHome, hb: NodeHome) -> dict[str, dict[str, float]]:
    """Fast and deep audits of both stores (best of two): per entry, per receipt."""
    out: dict[str, dict[str, float]] = {}
    for label, home in (
        ("sender (envelopes out + receipts got)", ha),
        ("recipient (envelopes in + receipts issued)", hb),
    ):
        fast = _best(lambda home=home: _timed(home, deep=False))
        deep = _best(lambda home=home: _timed(home, deep=True))
        receipts = deep.report.receipts_checked
        for mode, t in (("fast", fast), ("deep", deep)):
            print(
                f"   verify_log {mode:4}, {label}: {t.report.size} entries "
                f"({t.report.checkpoints_checked} checkpoints, {t.report.receipts_checked} "
                f"receipts) in {t.seconds:.3f} s (CPU {t.cpu:.3f} s) = {t.per_entry_us:.2f} us/entry"
                f" (CPU {t.cpu_per_entry_us:.2f}); ok={t.report.ok} {t.report.problems[:3]}"
            )
        wall = (deep.seconds - fast.seconds) / receipts * 1e6 if receipts else 0.0
        cpu = (deep.cpu - fast.cpu) / receipts * 1e6 if receipts else 0.0
        print(f"   deep minus fast, per receipt: {wall:.0f} us wall, {cpu:.0f} us CPU")
        out[label] = {
            "fast": fast.per_entry_us,
            "fast_cpu": fast.cpu_per_entry_us,
            "deep": deep.per_entry_us,
            "deep_cpu": deep.cpu_per_entry_us,
            "receipt": wall,
            "receipt_cpu": cpu,
        }
    return out


def unit_costs(ha: NodeHome, hb: NodeHome) -> dict[str, float]:
    """Per-object CPU costs of the deep checks on one thread, on the real stored objects (us)."""
    engine_a, engine_b = open_engine(ha.config().db_url), open_engine(hb.config().db_url)
    try:
        agreements = load_agreements(engine_a)
        with engine_a.connect() as conn:
            notes = [bytes(n) for n in conn.execute(select(checkpoints.c.note)).scalars()][:300]
            got = [
                (bytes(r), bytes(e), bytes(n))
                for r, e, n in conn.execute(
                    select(receipts.c.receipt, messages.c.envelope, notes_t.c.note)
                    .join(messages, messages.c.id == receipts.c.message_id)
                    .join(notes_t, notes_t.c.hash == receipts.c.checkpoint_hash)
                    .limit(1000)
                )
            ]
        with engine_b.connect() as conn:
            issued = [bytes(r) for r in conn.execute(select(receipts.c.receipt)).scalars()][:1000]
        # The audit's own scanners, on one connection each (a fresh checkpoint cache).
        scanners = []
        for home, engine in ((ha, engine_a), (hb, engine_b)):
            with _snapshot(engine) as conn:
                v = _Verifier(conn, home.card(), load_agreements(engine), None, 1)
                spec = v.scan_spec()
            scanners.append(Scanner(spec, sqlite3.connect(spec.connect_args[0])))
    finally:
        engine_a.dispose()
        engine_b.dispose()
    card_a = ha.card()
    verifiers = log_verifiers(card_a)
    t0 = time.process_time()
    for note in notes:
        verify_checkpoint(note, card_a.log_origin, verifiers)
    cp_us = (time.process_time() - t0) / len(notes) * 1e6
    cache: dict[str, Checkpoint] = {}
    t0 = time.process_time()
    for r, e, n in got:
        env = Envelope.from_bytes(e)
        verify_receipt(
            Receipt.from_bytes(r), env, agreements[env.agreement], n, checkpoint_cache=cache
        )
    full_us = (time.process_time() - t0) / len(got) * 1e6
    got_ok, issued_ok = scanners[0].got_ok, scanners[1].issued_ok
    t0 = time.process_time()
    assert all(got_ok(r, e) for r, e, _ in got)
    got_us = (time.process_time() - t0) / len(got) * 1e6
    t0 = time.process_time()
    assert all(issued_ok(data) for data in issued)
    issued_us = (time.process_time() - t0) / len(issued) * 1e6
    return {
        "checkpoint of our log (Ed25519 + ML-DSA-65)": cp_us,
        "receipt got, full verify_receipt (parse both, checkpoint cached)": full_us,
        "receipt got, the audit's check (logscan.got_ok)": got_us,
        "receipt issued, the audit's check (logscan.issued_ok)": issued_us,
    }


# -- part 2: a synthetic 1M-entry store ----------------------------------------------


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


def part_synthetic(tmp: Path, n: int) -> list[Timed]:
    print(f"== Part 2 (SYNTHETIC store, real verify_log): {n:,} log entries")
    t0 = time.perf_counter()
    home = build_synthetic(tmp, n)
    size_mb = (tmp / "synthetic.db").stat().st_size / 1e6
    print(f"   built in {time.perf_counter() - t0:.1f} s ({size_mb:.0f} MB SQLite file)")
    runs = []
    for run in (1, 2):
        t = _timed(home, deep=True)
        print(
            f"   verify_log (run {run}): {t.report.size:,} entries in {t.seconds:.2f} s"
            f" (CPU {t.cpu:.2f} s) = {t.per_entry_us:.2f} us/entry; ok={t.report.ok}"
            f" {t.report.problems[:3]}"
        )
        runs.append(t)
    return runs


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else MILLION
    n_real = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000
    cpus = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        real: dict[str, dict[str, float]] = {}
        costs: dict[str, float] = {}
        if n_real:
            ha, hb = build_real(tmp, n_real)
            real = part_real(ha, hb)
            costs = unit_costs(ha, hb)
            for what, us in costs.items():
                print(f"   one {what}: {us:.0f} us CPU (one thread)")
        synthetic = part_synthetic(tmp, n)
    sha_s = reference_sha256()
    sha_us = sha_s * 1e6 / MILLION
    ed = reference_ed25519()
    one = ed["1 thread"]
    print(f"== References (same run, {cpus} CPUs; load average {os.getloadavg()[0]:.1f})")
    print(f"   SHA-256 of 1M 200-byte inputs, one thread: {sha_s:.3f} s CPU")
    for how, us in ed.items():
        kind = "CPU" if how == "1 thread" else "wall"
        print(f"   Ed25519 verify, {how}: {us:.0f} us {kind} per verification")
    print("== Summary (CPU: this process and its workers; /cores: if nothing else ran)")
    for i, t in enumerate(synthetic, 1):
        scaled = t.seconds * MILLION / t.report.size
        verdict = "MEETS" if scaled <= TARGET_S else "MISSES"
        print(
            f"   SYNTHETIC 1M (envelopes only), run {i}: {scaled:.2f} s -> {verdict} the"
            f" {TARGET_S:.0f} s target; CPU {t.cpu_per_entry_us:.2f} us/entry ="
            f" {t.cpu_per_entry_us / sha_us:.1f}x one SHA-256 (200 B)"
        )
    for label, r in real.items():
        print(f"   REAL {label}:")
        for mode in ("fast", "deep"):
            wall, cpu = r[mode], r[f"{mode}_cpu"]
            print(
                f"      {mode}: {wall:.2f} us/entry wall, {cpu:.2f} CPU -> 1M entries ~{wall:.1f} s"
                f" as measured, ~{cpu / cpus:.1f} s CPU/{cpus} cores;"
                f" CPU {cpu / sha_us:.1f}x one SHA-256"
            )
        if r["receipt_cpu"]:
            print(
                f"      deep extra per receipt: {r['receipt']:.0f} us wall, {r['receipt_cpu']:.0f}"
                f" us CPU = {r['receipt_cpu'] / one:.2f}x one Ed25519 verify"
            )
    if costs:
        got = costs["receipt got, the audit's check (logscan.got_ok)"]
        full = costs["receipt got, full verify_receipt (parse both, checkpoint cached)"]
        print(
            f"   one receipt got, one thread, CPU: the audit's check {got:.0f} us = {got / one:.2f}x one"
            f" Ed25519 verify; full verify_receipt {full:.0f} us = {full / one:.2f}x"
        )


if __name__ == "__main__":
    main()
