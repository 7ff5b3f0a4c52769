"""Seal and open of a 4 KiB message vs the raw cryptography operations, same run.

seal = what ``detente.core.envelope.seal`` does: policy checks, canonical
       plaintext with salt, HPKE (ML-KEM-768 + X25519) encrypt, Ed25519 sign;
       raw  = HPKE encrypt of the same plaintext + Ed25519 sign of a header.
open = ``open_``: agreement, membership, policy, Ed25519 verify, HPKE decrypt,
       content hash, strict parse of the plaintext;
       raw  = Ed25519 verify + HPKE decrypt.
Targets (issue 2): each <= 1.3x its raw equivalent, one core.

The machine is shared and noisy, so raw and ours are measured in alternating
rounds and the median of the per-round ratios is reported.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cryptography.hazmat.primitives import hpke

from detente.core.agreement import Agreement, AgreementSet
from detente.core.envelope import Content, Envelope, open_, seal
from detente.core.keys import PartyKeys
from detente.core.party import PartyCard
from detente.core.policy import MESSAGE_TYPES, Policy

N = 1000
ROUNDS = 15


def per_op(fn: Callable[[], object]) -> float:
    """Mean CPU time per call over N calls, in microseconds.

    CPU time of this thread (not wall time), with the cyclic GC paused, so
    that other tenants of a shared machine distort the figures less.
    """
    gc.collect()
    gc.disable()
    try:
        start = time.thread_time()
        for _ in range(N):
            fn()
        return (time.thread_time() - start) / N * 1e6
    finally:
        gc.enable()


def compare(name: str, raw: Callable[[], object], ours: Callable[[], object]) -> None:
    raws, oursv, ratios = [], [], []
    for _ in range(ROUNDS):
        r, o = per_op(raw), per_op(ours)
        raws.append(r)
        oursv.append(o)
        ratios.append(o / r)
    print(
        f"{name:42s} raw {statistics.median(raws):7.1f} us  ours {statistics.median(oursv):7.1f} us"
        f"  ratio median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, "
        f"max {max(ratios):.2f})"
    )


def main() -> None:
    now = datetime.now(UTC)
    ka, kb = PartyKeys.generate(), PartyKeys.generate()
    cards = [
        PartyCard.create(
            id=pid,
            names={"en": pid},
            country=pid[:2],
            role="technical",
            keys=k.public,
            endpoint="https://x.example",
        )
        for pid, k in (("US-CISA", ka), ("RU-NCCC", kb))
    ]
    agreement = (
        Agreement(
            id="bench",
            version=1,
            titles={"en": "bench"},
            members=tuple(cards),
            policy=Policy(frozenset(MESSAGE_TYPES)),
            valid_from=now - timedelta(days=1),
            valid_until=now + timedelta(days=1),
        )
        .sign("US-CISA", ka)
        .sign("RU-NCCC", kb)
    )
    trust = AgreementSet([agreement])
    body = {"text": os.urandom(4096).hex()[: 4096 - 130]}
    content = Content("notification", "AMBER", body)
    plaintext = content.to_plaintext(os.urandom(16))

    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    public = hpke.MLKEM768X25519PublicKey(kb.mlkem768.public_key(), kb.x25519.public_key())
    private = kb.hybrid_private
    info = b"x" * 48
    sig_input = b"y" * 400  # a signed envelope header is about this size
    ct = suite.encrypt(plaintext, public, info=info)
    sig = ka.ed25519.sign(sig_input)
    ed_pub = ka.ed25519.public_key()

    def do_seal() -> Envelope:
        return seal(
            content,
            sender="US-CISA",
            sender_keys=ka,
            recipient="RU-NCCC",
            agreement=agreement,
            seq=1,
            now=now,
        )

    env = do_seal()
    wire = env.to_bytes()
    print(
        f"plaintext {len(plaintext)} bytes (4 KiB), envelope {len(wire)} bytes on the wire; "
        f"{ROUNDS} alternating rounds of {N} ops, one core"
    )
    compare(
        "seal  vs HPKE encrypt + Ed25519 sign",
        lambda: (suite.encrypt(plaintext, public, info=info), ka.ed25519.sign(sig_input)),
        do_seal,
    )
    compare(
        "new Content + seal (body canonicalised too)",
        lambda: (suite.encrypt(plaintext, public, info=info), ka.ed25519.sign(sig_input)),
        lambda: seal(
            Content("notification", "AMBER", body),
            sender="US-CISA",
            sender_keys=ka,
            recipient="RU-NCCC",
            agreement=agreement,
            seq=1,
            now=now,
        ),
    )
    compare(
        "open  vs Ed25519 verify + HPKE decrypt",
        lambda: (ed_pub.verify(sig, sig_input), suite.decrypt(ct, private, info=info)),
        lambda: open_(env, me="RU-NCCC", my_keys=kb, agreements=trust, now=now),
    )
    compare(
        "open from wire bytes (incl. JSON parse)",
        lambda: (ed_pub.verify(sig, sig_input), suite.decrypt(ct, private, info=info)),
        lambda: open_(
            Envelope.from_bytes(wire), me="RU-NCCC", my_keys=kb, agreements=trust, now=now
        ),
    )
    print("targets: seal <= 1.30x, open <= 1.30x (seal of a Content already canonicalised:")
    print("a message to several recipients is canonicalised once, sealed once per recipient)")


if __name__ == "__main__":
    main()
