"""End-to-end throughput and latency between two real nodes on loopback.

Two ``detente serve`` processes (SQLite files by default; ``--db postgresql``
uses a throw-away PostgreSQL cluster or DETENTE_TEST_PG_URL).  Figures:

1. crypto ceiling, measured in this run: the per-message cost of the raw
   ``cryptography`` calls one message needs end to end — HPKE seal + Ed25519
   sign (sender), Ed25519 verify + HPKE open (recipient), Ed25519 sign
   (receipt), Ed25519 verify (receipt check) — as messages/s on one core;
2. sustained throughput: N messages queued through the client API (batches
   of 500), until every one is durably committed on both sides with a
   verified receipt committed at the sender; reported as messages/s and as
   a fraction of the ceiling;
3. latency at a fixed rate (default 200 msg/s, one message per API call):
   from the sender's commit of the sealed message to its commit of the
   verified receipt, p50 and p99 (both times from the sender's store).

Benchmarks are not tests: nothing here asserts; it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx
from cryptography.hazmat.primitives import hpke
from sqlalchemy import select

from detente.core.keys import PartyKeys
from detente.store.db import open_engine
from detente.store.schema import messages, outbox
from forms_examples import notification
from node.cluster import NodeProc, make_cluster


def crypto_ceiling(rounds: int = 400) -> float:
    """Messages/s one core could do if each message cost only its raw crypto."""
    a, b = PartyKeys.generate(), PartyKeys.generate()
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    public = hpke.MLKEM768X25519PublicKey(b.mlkem768.public_key(), b.x25519.public_key())
    private = b.hybrid_private
    plaintext = os.urandom(300)
    header = os.urandom(400)
    a_pub, b_pub = a.ed25519.public_key(), b.ed25519.public_key()
    start = time.process_time()
    for _ in range(rounds):
        ct = suite.encrypt(plaintext, public, info=header[:48])
        sig = a.ed25519.sign(header)
        a_pub.verify(sig, header)
        suite.decrypt(ct, private, info=header[:48])
        rsig = b.ed25519.sign(header)
        b_pub.verify(rsig, header)
    per_message = (time.process_time() - start) / rounds
    return 1 / per_message


def spec(agreement: str, i: int) -> dict[str, object]:
    return {
        "agreement": agreement,
        "to": ["RU-NCCC"],
        "type": "notification",
        "tlp": "AMBER",
        "body": notification(f"flood from 198.51.100.{i % 250}"),
    }


def sender_rows(node: NodeProc) -> list[tuple[int, int | None, str]]:
    engine = open_engine(node.home.config().db_url)
    try:
        with engine.connect() as conn:
            return [
                (r.stored_at, r.delivered_at, r.state)
                for r in conn.execute(
                    select(messages.c.stored_at, outbox.c.delivered_at, outbox.c.state).join(
                        outbox, outbox.c.message_id == messages.c.id
                    )
                )
            ]
    finally:
        engine.dispose()


def wait_delivered(node: NodeProc, total: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = sender_rows(node)
        done = sum(1 for r in rows if r[2] == "delivered")
        if done >= total:
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"only {done} of {total} delivered within {timeout} s")


def throughput(us: NodeProc, n: int, batch: int = 500) -> float:
    client = httpx.Client(
        base_url=us.base, timeout=120, headers={"authorization": f"Bearer {us.home.cli_token()}"}
    )
    already = len(sender_rows(us))
    start = time.monotonic()
    for first in range(0, n, batch):
        body = [spec("bench", i) for i in range(first, min(n, first + batch))]
        response = client.post("/api/v1/messages/batch", json=body)
        response.raise_for_status()
    end = wait_delivered(us, already + n, timeout=600)
    client.close()
    return n / (end - start)


def latency(us: NodeProc, rate: float, seconds: float) -> tuple[float, float, int]:
    client = httpx.Client(
        base_url=us.base, timeout=30, headers={"authorization": f"Bearer {us.home.cli_token()}"}
    )
    before = {r[0] for r in sender_rows(us)}
    count = int(rate * seconds)
    interval = 1 / rate
    start = time.monotonic()
    for i in range(count):
        target = start + i * interval
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        client.post("/api/v1/messages", json=spec("bench", i)).raise_for_status()
    client.close()
    total = len(before) + count
    wait_delivered(us, total, timeout=120)
    rows = sender_rows(us)[-count:]
    lat = sorted((d - s) for s, d, _ in rows if d is not None)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return p50, p99, len(lat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()

    ceiling = crypto_ceiling()
    print(f"crypto ceiling (raw seal+open+receipt sign+verify, one core): {ceiling:8.0f} msg/s")

    workdir = Path(tempfile.mkdtemp(prefix="detente-bench-"))
    with contextlib.ExitStack() as stack:
        new_db = None
        if args.db == "postgresql":
            from db import make_db_url, start_cluster  # tests/db.py

            admin = os.environ.get("DETENTE_TEST_PG_URL") or stack.enter_context(start_cluster())
            new_db = stack.enter_context(make_db_url("postgresql", workdir, admin))
        run(workdir, new_db, args, ceiling)


def run(workdir: Path, new_db: object, args: argparse.Namespace, ceiling: float) -> None:
    from detente.core.policy import MESSAGE_TYPES, Policy

    nodes, _ = make_cluster(
        workdir,
        ["US-CISA", "RU-NCCC"],
        new_db,  # type: ignore[arg-type]
        policy=Policy(frozenset(MESSAGE_TYPES)),
        agreement_id="bench",
    )
    us, ru = nodes["US-CISA"], nodes["RU-NCCC"]
    try:
        ru.start()
        us.start()
        throughput(us, 500)  # warm-up
        rate = throughput(us, args.messages)
        print(
            f"sustained throughput ({args.db}, {args.messages} messages, committed on both "
            f"sides, receipts verified): {rate:8.0f} msg/s = {rate / ceiling:.0%} of the "
            "crypto ceiling"
        )
        p50, p99, n = latency(us, args.rate, args.seconds)
        print(
            f"latency at {args.rate:.0f} msg/s ({n} messages, send commit -> verified receipt "
            f"commit): p50 {p50:.0f} ms, p99 {p99:.0f} ms"
        )
        print("targets: >= 1,000 msg/s on SQLite, >= 30% of the ceiling; p99 <= 100 ms")
    finally:
        us.stop()
        ru.stop()


if __name__ == "__main__":
    main()
