"""Benchmark hybrid checkpoint signing against raw Ed25519 + ML-DSA-65 signing of the same bytes.

Run: .venv/bin/python bench/bench_checkpoint.py [iterations]
"""

from __future__ import annotations

import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

from detente.core.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from detente.core.note import Ed25519NoteSigner, MLDSA65NoteSigner


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    origin = "detente.example/US-CISA/log"
    ed = Ed25519PrivateKey.generate()
    pq = MLDSA65PrivateKey.generate()
    signers = [Ed25519NoteSigner(origin, ed), MLDSA65NoteSigner(origin, pq)]
    verifiers = [s.verifier() for s in signers]
    cp = Checkpoint(origin, 1_000_000, bytes(range(32)))
    text = cp.to_text().encode()

    for _ in range(50):  # warm up
        ed.sign(text)
        pq.sign(text)
        sign_checkpoint(cp, signers)

    t0 = time.perf_counter()
    for _ in range(iterations):
        ed.sign(text)
        pq.sign(text)
    raw = (time.perf_counter() - t0) / iterations

    t0 = time.perf_counter()
    for _ in range(iterations):
        signed = sign_checkpoint(cp, signers)
    ours = (time.perf_counter() - t0) / iterations

    t0 = time.perf_counter()
    for _ in range(iterations):
        verify_checkpoint(signed, origin, verifiers)
    verify = (time.perf_counter() - t0) / iterations

    ped = ed.public_key()
    ppq = pq.public_key()
    sig_ed, sig_pq = ed.sign(text), pq.sign(text)
    t0 = time.perf_counter()
    for _ in range(iterations):
        ped.verify(sig_ed, text)
        ppq.verify(sig_pq, text)
    raw_verify = (time.perf_counter() - t0) / iterations

    print(f"raw ed25519 + mldsa65 sign   {raw * 1e6:10.1f} us")
    print(f"sign_checkpoint (hybrid)     {ours * 1e6:10.1f} us   ratio {ours / raw:.3f}x")
    print(f"raw ed25519 + mldsa65 verify {raw_verify * 1e6:10.1f} us")
    print(
        f"verify_checkpoint (hybrid)   {verify * 1e6:10.1f} us   ratio {verify / raw_verify:.3f}x"
    )
    print(f"signed checkpoint size       {len(signed):10d} bytes")


if __name__ == "__main__":
    main()
