"""Benchmark ``detente report`` and ``detente audit`` over 10,000 requests.

Run: .venv/bin/python bench/bench_report.py [requests]

Two in-process nodes (US-CISA, RU-NCCC; the default ML-KEM-768+X25519
agreement) go through the real send / receive / record-receipts path:
US sends ``requests`` (default 10,000) requests; RU acknowledges each by a
named officer and answers each (one in ten declined); US receives those
replies; US witnesses RU's checkpoints from every delivery.  Then:

- ``build_report`` (what ``GET /api/v1/report`` and ``detente report`` run)
  over all of them, against the 10 s target;
- ``detente audit``'s work: the strict JSON parse of the bundle, then
  ``audit_report`` (signature checks on one thread per CPU), against the
  10 s target;
- the reference, measured in the same run: raw ``cryptography`` Ed25519
  verifications per second.  The audit checks four Ed25519 signatures per
  request (the envelope, the receipt, the acknowledgement, the answer), so
  ``4 x requests / raw rate`` is its crypto floor on one core; the ratio to
  that floor is printed (below 1 means more than one core was used).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from detente.audit import audit_report
from detente.core.agreement import Agreement
from detente.core.canonical import parse
from detente.core.envelope import Content
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.core.timefmt import format_time
from detente.node.clock import SystemClock, to_ms
from detente.node.config import NodeHome
from detente.node.report import build_report
from detente.node.service import Node

TARGET_S = 10.0
BATCH = 500


def raw_ed25519_verify_per_s(n: int = 20_000) -> float:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    data = b"x" * 300
    sig = key.sign(data)
    t0 = time.perf_counter()
    for _ in range(n):
        pub.verify(sig, data)
    return n / (time.perf_counter() - t0)


def deliver(src: Node, dst: Node) -> None:
    """Everything pending from ``src`` to ``dst``, through receive and record_receipts."""
    while True:
        envs = src.pending_batch(dst.id, BATCH)
        if not envs:
            return
        known = src.known_peer_size(dst.id)
        res = dst.receive([e.to_json() for e in envs], known)
        src.record_receipts(
            list(zip(envs, [r.to_json() for r in res.receipts], strict=True)),
            res.checkpoint,
            *res.notes.values(),
            witness=(dst.id, res.checkpoint, res.consistency, res.proof_from),
        )


def build(tmp: Path, n: int) -> tuple[Node, Node, Agreement]:
    hu = NodeHome.init(
        tmp / "us", party_id="US-CISA", names={"en": "CISA"}, country="US", listen_port=18301
    )
    hr = NodeHome.init(
        tmp / "ru", party_id="RU-NCCC", names={"ru": "НКЦКИ"}, country="RU", listen_port=18302
    )
    now = SystemClock().now()
    agreement = Agreement(
        id="us-ru",
        version=1,
        titles={"en": "US-Russia ICT CBM"},
        members=(hu.card(), hr.card()),
        policy=Policy(frozenset(MESSAGE_TYPES)),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
    )
    agreement = agreement.sign("US-CISA", hu.keys()).sign("RU-NCCC", hr.keys())
    us, ru = Node(hu), Node(hr)
    us.install_agreement(agreement)
    ru.install_agreement(agreement)
    body = {
        "kind": "takedown",
        "legal_basis": ["2013 US-RU ICT CBM package"],
        "facts": {"lang": "en", "text": "ransomware C2 at 198.51.100.23 in your jurisdiction"},
        "urgency": "urgent",
    }
    ids: list[str] = []
    for start in range(0, n, BATCH):
        specs = [
            us.spec(Content("request", "AMBER", body), ["RU-NCCC"], "us-ru")
            for _ in range(min(BATCH, n - start))
        ]
        ids.extend(e.id for e in us.send_many(specs))
        deliver(us, ru)
    read_at = format_time(now)
    for start in range(0, n, BATCH):
        chunk = ids[start : start + BATCH]
        acks = [
            ru.spec(
                Content(
                    "ack", "AMBER", {"message": m, "officer": "Duty officer", "read_at": read_at}
                ),
                None,
                None,
            )
            for m in chunk
        ]
        answers = [
            ru.spec(
                Content(
                    "response",
                    "AMBER",
                    {"request": m, "status": "declined" if i % 10 == 0 else "action-taken"},
                ),
                None,
                None,
            )
            for i, m in enumerate(chunk)
        ]
        ru.send_many(acks)
        ru.send_many(answers)
        deliver(ru, us)
    us.latest_checkpoint()
    ru.latest_checkpoint()
    deliver(us, ru)
    return us, ru, agreement


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    raw = raw_ed25519_verify_per_s()
    print(f"reference: raw Ed25519 verify {raw:,.0f}/s on one core")
    with tempfile.TemporaryDirectory(prefix="detente-bench-") as tmp:
        t0 = time.perf_counter()
        us, ru, agreement = build(Path(tmp), n)
        print(
            f"built {n:,} requests, acknowledged and answered, in {time.perf_counter() - t0:.1f} s"
        )
        try:
            t1 = time.perf_counter()
            bundle = build_report(
                us,
                us.keys,
                "RU-NCCC",
                since_ms=0,
                until_ms=to_ms(SystemClock().now()) + 1,
            )
            text = json.dumps(bundle)
            report_s = time.perf_counter() - t1
            items = len(bundle["report"]["items"])
            print(
                f"report: {items:,} items, {len(text) / 1e6:.1f} MB of JSON in {report_s:.2f} s "
                f"-> {'meets' if report_s <= TARGET_S else 'MISSES'} the {TARGET_S:.0f} s target"
            )
            t2 = time.perf_counter()
            parsed = parse(text.encode())  # as detente audit reads the file: strictly
            parse_s = time.perf_counter() - t2
            result = audit_report(parsed, [agreement])
            audit_s = time.perf_counter() - t2
            print(f"audit reads the bundle (strict JSON parse) in {parse_s:.2f} s")
            floor = 4 * items / raw
            print(
                f"audit (parse + judge): {items:,} items in {audit_s:.2f} s, ok={result.ok}, "
                f"problems={result.problems[:2]} -> "
                f"{'meets' if audit_s <= TARGET_S else 'MISSES'} the {TARGET_S:.0f} s target"
            )
            print(
                f"audit / crypto floor (4 Ed25519 verifications per item at the raw rate, "
                f"{floor:.2f} s): {audit_s / floor:.1f}x"
            )
            print(f"counts: {json.dumps(bundle['report']['counts'])}")
        finally:
            us.close()
            ru.close()


if __name__ == "__main__":
    main()
