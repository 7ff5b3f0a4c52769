"""Receipts: signed by the recipient over its committed log position."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.core.agreement import Agreement
from detente.core.canonical import parse
from detente.core.checkpoint import Checkpoint, sign_checkpoint
from detente.core.envelope import Content, Envelope, seal
from detente.core.logentry import entry_bytes, envelope_entry, log_signers
from detente.core.merkle import MerkleTree
from detente.core.receipt import Receipt, issue_receipt, note_hash, verify_receipt
from detente.errors import DetenteError, InclusionProofError, ReceiptError, SignatureError
from parties import NOW, Party, make_agreement


def _envelope(us: Party, ru: Party, agreement: Agreement, seq: int = 1) -> Envelope:
    return seal(
        Content("notification", "GREEN", {"text": "scan from 203.0.113.7"}),
        sender=us.id,
        sender_keys=us.keys,
        recipient=ru.id,
        agreement=agreement,
        seq=seq,
        now=NOW,
    )


def _receive(env: Envelope, ru: Party, tree: MerkleTree) -> tuple[Receipt, bytes]:
    """What a node does: append the leaf, sign a checkpoint, prove inclusion, sign."""
    index = tree.append(entry_bytes(envelope_entry(env)))
    cp = Checkpoint(f"detente.log/{ru.id}", tree.size, tree.root())
    note = sign_checkpoint(cp, log_signers(ru.id, ru.keys))
    receipt = issue_receipt(
        env,
        me=ru.id,
        my_keys=ru.keys,
        received=NOW,
        log_index=index,
        checkpoint=note,
        inclusion=tree.inclusion_proof(index),
    )
    return receipt, note


@pytest.fixture(scope="module")
def exchange(us: Party, ru: Party, agreement: Agreement) -> tuple[Envelope, Receipt, bytes]:
    tree = MerkleTree()
    for i in range(5):  # other traffic before ours
        tree.append(f"earlier {i}".encode())
    env = _envelope(us, ru, agreement)
    return (env, *_receive(env, ru, tree))


def test_receipt_verifies_and_round_trips(exchange, agreement: Agreement) -> None:
    env, receipt, note = exchange
    again = Receipt.from_bytes(receipt.to_bytes())
    assert again == receipt
    cp = verify_receipt(again, env, agreement, note)
    assert cp.size == 6 and again.log_index == 5


def test_receipt_for_another_envelope_rejected(exchange, us, ru, agreement) -> None:
    _, receipt, note = exchange
    other = _envelope(us, ru, agreement, seq=2)
    with pytest.raises(ReceiptError, match="names message"):
        verify_receipt(receipt, other, agreement, note)


def test_receipt_with_forged_signature_rejected(exchange, agreement) -> None:
    env, receipt, note = exchange
    with pytest.raises(SignatureError):
        verify_receipt(dataclasses.replace(receipt, sig=bytes(64)), env, agreement, note)


def test_receipt_backdated_after_signing_rejected(exchange, agreement) -> None:
    env, receipt, note = exchange
    with pytest.raises(SignatureError):
        verify_receipt(
            dataclasses.replace(receipt, received="2026-01-01T00:00:00.000Z"), env, agreement, note
        )


def test_receipt_signed_by_a_third_party_rejected(exchange, us, ru, cn) -> None:
    agreement = make_agreement([us, ru, cn])
    env = _envelope(us, ru, agreement)
    tree = MerkleTree()
    index = tree.append(entry_bytes(envelope_entry(env)))
    note = sign_checkpoint(
        Checkpoint("detente.log/RU-NCCC", tree.size, tree.root()), log_signers(ru.id, cn.keys)
    )
    receipt = issue_receipt(
        env,
        me=ru.id,
        my_keys=cn.keys,
        received=NOW,
        log_index=index,
        checkpoint=note,
        inclusion=tree.inclusion_proof(index),
    )
    with pytest.raises(SignatureError):
        verify_receipt(receipt, env, agreement, note)


def test_receipt_claiming_a_position_its_log_does_not_hold_rejected(
    exchange, ru: Party, agreement
) -> None:
    env, receipt, note = exchange
    moved = dataclasses.replace(receipt, log_index=4)
    moved = dataclasses.replace(moved, sig=ru.keys.sign_ed25519(moved.signed_bytes()))
    with pytest.raises(InclusionProofError):
        verify_receipt(moved, env, agreement, note)


def test_receipt_checkpoint_without_pq_signature_rejected(exchange, ru: Party, agreement) -> None:
    env, receipt, note = exchange
    text, _, _ = note.decode().partition("\n\n")
    ed_only = sign_checkpoint(Checkpoint.from_text(text + "\n"), log_signers(ru.id, ru.keys)[:1])
    weak = dataclasses.replace(receipt, checkpoint_hash=note_hash(ed_only))
    weak = dataclasses.replace(weak, sig=ru.keys.sign_ed25519(weak.signed_bytes()))
    with pytest.raises(ReceiptError, match="checkpoint does not verify"):
        verify_receipt(weak, env, agreement, ed_only)


def test_receipt_with_a_checkpoint_other_than_the_one_it_names_rejected(
    exchange, ru: Party, agreement
) -> None:
    env, receipt, note = exchange
    text, _, _ = note.decode().partition("\n\n")
    other = sign_checkpoint(Checkpoint.from_text(text + "\n"), log_signers(ru.id, ru.keys))
    with pytest.raises(ReceiptError, match="not the one the receipt names"):
        verify_receipt(receipt, env, agreement, other)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_of_a_receipt_is_rejected(
    data: st.DataObject, exchange, agreement
) -> None:
    env, receipt, note = exchange
    wire = receipt.to_bytes()
    pos = data.draw(st.integers(0, len(wire) - 1))
    flipped = bytearray(wire)
    flipped[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(DetenteError):
        verify_receipt(Receipt.from_json(parse(bytes(flipped))), env, agreement, note)
