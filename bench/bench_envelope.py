"""Seal and open of a 4 KiB message vs the raw cryptography operations, same run.

seal  = hybrid HPKE encrypt + Ed25519 sign + everything Détente adds
open  = Ed25519 verify + HPKE decrypt + every check (agreement, policy, hash)
Targets (issue 2): each ≤ 1.3x its raw equivalent. One core, best of N rounds.
"""

from __future__ import annotations

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

N = 2000
ROUNDS = 7


def per_op(fn: Callable[[], object]) -> float:
    """Best-of-ROUNDS mean time per call, in microseconds."""
    results = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(N):
            fn()
        results.append((time.perf_counter() - start) / N * 1e6)
    return min(results)


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
    text = os.urandom(3072).hex()[: 4096 - 200]
    content = Content("notification", "AMBER", {"text": text})
    plaintext = content.to_plaintext(os.urandom(16))
    size = len(plaintext)

    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    public = hpke.MLKEM768X25519PublicKey(kb.mlkem768.public_key(), kb.x25519.public_key())
    private = kb.hybrid_private
    info = b"x" * 48
    sig_input = b"y" * 600  # a signed header is about this size
    ct = suite.encrypt(plaintext, public, info=info)
    sig = ka.ed25519.sign(sig_input)
    ed_pub = ka.ed25519.public_key()

    raw_seal = per_op(
        lambda: (suite.encrypt(plaintext, public, info=info), ka.ed25519.sign(sig_input))
    )
    raw_open = per_op(
        lambda: (ed_pub.verify(sig, sig_input), suite.decrypt(ct, private, info=info))
    )

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
    our_seal = per_op(do_seal)
    our_open = per_op(lambda: open_(env, me="RU-NCCC", my_keys=kb, agreements=trust, now=now))
    our_open_wire = per_op(
        lambda: open_(
            Envelope.from_bytes(wire), me="RU-NCCC", my_keys=kb, agreements=trust, now=now
        )
    )
    our_to_bytes = per_op(env.to_bytes)

    print(
        f"plaintext {size} bytes, envelope {len(wire)} bytes on the wire, {N} ops x {ROUNDS} rounds"
    )
    print(f"raw  HPKE(MLKEM768_X25519) encrypt + Ed25519 sign : {raw_seal:8.1f} us")
    print(f"raw  Ed25519 verify + HPKE decrypt                : {raw_open:8.1f} us")
    print(
        f"seal                                              : {our_seal:8.1f} us  "
        f"ratio {our_seal / raw_seal:.2f}x (target <= 1.30x)"
    )
    print(
        f"open  (parsed envelope)                           : {our_open:8.1f} us  "
        f"ratio {our_open / raw_open:.2f}x (target <= 1.30x)"
    )
    print(
        f"open  (from wire bytes, incl. JSON parse)         : {our_open_wire:8.1f} us  "
        f"ratio {our_open_wire / raw_open:.2f}x"
    )
    print(f"serialise envelope to canonical bytes             : {our_to_bytes:8.1f} us")
    _ = statistics  # keep import for future percentile output


if __name__ == "__main__":
    main()
