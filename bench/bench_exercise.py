"""Benchmark the in-process exercise mode: ping and notification rounds at 10, 50, 200 parties.

Run: .venv/bin/python bench/bench_exercise.py [sizes...]   (default: 10 50 200)

Each size runs in its own process (``detente exercise scale --parties N
--json``) so peak memory is that size's alone.  Every party has its own
keys, SQLite store and node; a ping goes to every party and every party's
officer pongs; then a notification to all, each acknowledged by an officer.
Every receipt is verified by the sender (``record_receipts``), as the
delivery worker does.  Target: the 200-party ping round, pongs and receipt
verification included, in ≤ 30 s.

Reference, measured in the same run: the raw ``cryptography`` cost of one
message's crypto (HPKE ML-KEM-768+X25519 seal and open, Ed25519 sign and
verify of the envelope and of the receipt, one ML-DSA-65 checkpoint signature
and its verification); a ping round moves 2 messages per party.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from detente.core.keys import PartyKeys, hybrid_public

TARGET_S = 30.0


def raw_message_crypto_s(n: int = 200) -> float:
    """Seconds of raw crypto per message (see the module docstring)."""
    recipient = PartyKeys.generate()
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    public = recipient.public
    pub = hybrid_public(public.mlkem768, public.x25519)
    priv = recipient.hybrid_private
    ed = Ed25519PrivateKey.generate()
    ml = MLDSA65PrivateKey.generate()
    body = b"x" * 600
    t0 = time.perf_counter()
    for _ in range(n):
        sealed = suite.encrypt(body, pub, info=b"detente")
        suite.decrypt(sealed, priv, info=b"detente")
        for _ in range(2):
            sig = ed.sign(body)
            ed.public_key().verify(sig, body)
        msig = ml.sign(body)
        ml.public_key().verify(msig, body)
    return (time.perf_counter() - t0) / n


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10, 50, 200]
    per_message = raw_message_crypto_s()
    print(f"reference: raw crypto of one message {per_message * 1e3:.2f} ms (one core)")
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "detente", "exercise", "scale", "--parties", str(n), "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - t0
        r = json.loads(out.stdout)
        rows.append(r)
        floor = 2 * (n - 1) * per_message
        print(
            f"{n:>4} parties: set-up {r['setup_s']:6.1f} s | ping round {r['ping_round_s']:6.2f} s "
            f"({r['pongs']} pongs; {r['ping_round_s'] / (n - 1) * 1e3:.1f} ms/party; "
            f"{r['ping_round_s'] / floor:.1f}x the raw crypto) | notification round "
            f"{r['notification_round_s']:6.2f} s ({r['acks']} acks) | "
            f"{r['receipts_verified']} receipts verified | peak {r['peak_rss_mb']:.0f} MB "
            f"({r['peak_rss_mb'] / n:.1f} MB/party) | process {wall:.1f} s"
        )
    big = [r for r in rows if r["parties"] >= 200]
    for r in big:
        verdict = "meets" if r["ping_round_s"] <= TARGET_S else "MISSES"
        print(
            f"200-party ping round: {r['ping_round_s']:.1f} s -> {verdict} the "
            f"{TARGET_S:.0f} s target"
        )


if __name__ == "__main__":
    main()
