"""A self-check of the trust core, in memory: what ``detente demo`` shows first.

Two agencies get keys, sign an agreement, and one sends the other a
notification; the recipient opens it, logs it, returns a signed receipt with a
checkpoint and inclusion proof; the sender verifies all of it, then checks
that tampering is caught.  Every step prints what it proved.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from detente.core.agreement import Agreement, AgreementSet
from detente.core.checkpoint import Checkpoint, sign_checkpoint
from detente.core.envelope import Content, Envelope, Opened, open_, seal, verify_disclosure
from detente.core.keys import PartyKeys, format_fingerprint
from detente.core.logentry import entry_bytes, envelope_entry, log_signers
from detente.core.merkle import MerkleTree, verify_consistency
from detente.core.party import PartyCard
from detente.core.policy import MESSAGE_TYPES, Policy
from detente.core.receipt import issue_receipt, verify_receipt
from detente.errors import DetenteError


def run_selfcheck(report: Callable[[str, str], None]) -> None:
    """Run every step, calling ``report(step, result)``; raise on any failure."""
    now = datetime.now(UTC)

    def timed(label: str, fn: Callable[[], str]) -> None:
        start = time.perf_counter()
        result = fn()
        report(label, f"{result}  [{(time.perf_counter() - start) * 1000:.1f} ms]")

    us_keys, ru_keys = PartyKeys.generate(), PartyKeys.generate()
    us = PartyCard.create(
        id="US-CISA",
        names={"en": "Cybersecurity and Infrastructure Security Agency"},
        country="US",
        role="technical",
        keys=us_keys.public,
        endpoint="https://detente.cisa.example",
    )
    ru = PartyCard.create(
        id="RU-NCCC",
        names={"ru": "Национальный координационный центр по компьютерным инцидентам"},
        country="RU",
        role="technical",
        keys=ru_keys.public,
        endpoint="https://detente.nccc.example",
        languages=("ru", "en"),
    )
    report("keys US-CISA", format_fingerprint(us.keys.fingerprint))
    report("keys RU-NCCC", format_fingerprint(ru.keys.fingerprint))

    agreement = Agreement(
        id="us-ru-2013-cbm",
        version=1,
        titles={"en": "Cyber confidence-building measures", "ru": "Меры доверия в киберсфере"},
        members=(us, ru),
        policy=Policy(message_types=frozenset(MESSAGE_TYPES), max_tlp="AMBER"),
        valid_from=now - timedelta(minutes=1),
        valid_until=now + timedelta(days=365),
    )
    agreement = agreement.sign(us.id, us_keys).sign(ru.id, ru_keys)
    trust = AgreementSet([agreement])
    report("agreement", f"{agreement.ref} signed by both members (Ed25519 + ML-DSA-65)")

    content = Content(
        "notification",
        "AMBER",
        {
            "category": "ransomware",
            "severity": 4,
            "text": {
                "lang": "en",
                "value": "C2 servers for a ransomware operation in your jurisdiction",
            },
        },
    )
    holder: dict[str, object] = {}

    def do_seal() -> str:
        env = seal(
            content,
            sender=us.id,
            sender_keys=us_keys,
            recipient=ru.id,
            agreement=agreement,
            seq=1,
            now=now,
        )
        holder["env"] = env
        return f"envelope {env.id}, {len(env.to_bytes())} bytes, ML-KEM-768+X25519 HPKE"

    timed("seal", do_seal)
    env = holder["env"]
    assert isinstance(env, Envelope)  # noqa: S101 - set by do_seal just above
    wire = env.to_bytes()

    def do_open() -> str:
        opened = open_(
            Envelope.from_bytes(wire), me=ru.id, my_keys=ru_keys, agreements=trust, now=now
        )
        holder["opened"] = opened
        return f"signature, policy, decryption and content hash verified: {opened.content.type}"

    timed("deliver + open", do_open)

    tree = MerkleTree()
    for i in range(1000):
        tree.append(f"earlier traffic {i}".encode())
    old_size, old_root = tree.size, tree.root()
    index = tree.append(entry_bytes(envelope_entry(env)))
    signers = log_signers(ru.id, ru_keys)
    note = sign_checkpoint(Checkpoint(ru.log_origin, tree.size, tree.root()), signers)
    receipt = issue_receipt(
        env,
        me=ru.id,
        my_keys=ru_keys,
        received=now,
        log_index=index,
        checkpoint=note,
        inclusion=tree.inclusion_proof(index),
    )
    report("receipt", f"log index {index}, checkpoint signed Ed25519 + ML-DSA-65")

    def do_verify() -> str:
        cp = verify_receipt(receipt, env, agreement, note)
        return f"receipt signature, checkpoint and inclusion proof verified (tree size {cp.size})"

    timed("verify receipt", do_verify)
    verify_consistency(old_size, tree.size, tree.consistency_proof(old_size), old_root, tree.root())
    report("log consistency", f"tree {old_size} is a prefix of tree {tree.size}")
    opened = holder["opened"]
    assert isinstance(opened, Opened)  # noqa: S101 - set by do_open above
    verify_disclosure(env, opened.plaintext, agreement)
    report("disclosure", "an arbiter can check what US-CISA signed from the plaintext")

    tampered = dataclasses.replace(env, to="RU-NCCC", tlp="GREEN")
    try:
        open_(tampered, me=ru.id, my_keys=ru_keys, agreements=trust, now=now)
    except DetenteError as exc:
        report("tamper check", f"relabelled envelope refused: {type(exc).__name__}")
    else:
        raise DetenteError("self-check failed: a tampered envelope was accepted")
