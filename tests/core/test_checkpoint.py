"""C2SP tlog-checkpoint and tlog-cosignature: parsing, hybrid signing, witnesses, attacks."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.core.checkpoint import (
    Checkpoint,
    cosign,
    open_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
    verify_cosignature,
)
from detente.core.merkle import MerkleTree, verify_consistency
from detente.core.note import (
    CosignatureV1Verifier,
    Ed25519NoteSigner,
    MLDSA65NoteSigner,
    cosignature_message,
    open_note,
    parse_verifier_key,
)
from detente.errors import NoteError

ORIGIN = "detente.example/US-CISA/log"
_ED = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
_PQ = MLDSA65NoteSigner(ORIGIN, MLDSA65PrivateKey.generate())
_LOG_KEYS = [_ED.verifier(), _PQ.verifier()]
_WITNESS_KEY = Ed25519PrivateKey.generate()
_WITNESS = CosignatureV1Verifier("witness.example/RU-NCCC", _WITNESS_KEY.public_key())

_TREE = MerkleTree()
for _i in range(20):
    _TREE.append(b"entry %d" % _i)
CP = Checkpoint(ORIGIN, 20, _TREE.root())
SIGNED = sign_checkpoint(CP, [_ED, _PQ])


# -- the text format ---------------------------------------------------------------


def test_checkpoint_text_matches_the_spec_layout() -> None:
    root_b64 = base64.b64encode(CP.root).decode()
    assert CP.to_text() == f"{ORIGIN}\n20\n{root_b64}\n"


def test_checkpoint_text_round_trip_with_extensions() -> None:
    cp = Checkpoint(ORIGIN, 0, bytes(32), ("ext one", "— ext two"))
    assert Checkpoint.from_text(cp.to_text()) == cp


def test_spec_example_checkpoint_parses() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.from_text(text)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert cp.to_text() == text


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("o\n20\n", "needs origin"),
        ("\n20\n" + base64.b64encode(bytes(32)).decode() + "\n", "origin"),
        ("o\n020\n" + base64.b64encode(bytes(32)).decode() + "\n", "leading zero"),
        ("o\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n", "decimal"),
        ("o\n+1\n" + base64.b64encode(bytes(32)).decode() + "\n", "decimal"),
        ("o\n1 \n" + base64.b64encode(bytes(32)).decode() + "\n", "decimal"),
        ("o\n\u0661\n" + base64.b64encode(bytes(32)).decode() + "\n", "decimal"),
        ("o\n" + "9" * 21 + "\n" + base64.b64encode(bytes(32)).decode() + "\n", "decimal"),
        ("o\n18446744073709551616\n" + base64.b64encode(bytes(32)).decode() + "\n", "range"),
        ("o\n1\n" + base64.b64encode(bytes(31)).decode() + "\n", "31 bytes"),
        ("o\n1\nnot base64\n", "base64"),
        ("o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n", "non-empty"),
        ("o\n1\n" + base64.b64encode(bytes(32)).decode(), "newline"),
    ],
)
def test_malformed_checkpoint_text_rejected(text: str, match: str) -> None:
    with pytest.raises(NoteError, match=match):
        Checkpoint.from_text(text)


def test_checkpoint_refuses_a_short_root() -> None:
    with pytest.raises(NoteError):
        Checkpoint(ORIGIN, 1, b"short")


def test_checkpoint_refuses_a_newline_in_the_origin() -> None:
    # An origin with a newline would let a log smuggle a different size line.
    with pytest.raises(NoteError):
        Checkpoint("a\n5", 1, bytes(32))


# -- signing and verifying -----------------------------------------------------------


def test_hybrid_checkpoint_round_trip() -> None:
    assert verify_checkpoint(SIGNED, ORIGIN, _LOG_KEYS) == CP


def test_hybrid_checkpoint_verifies_for_a_plain_c2sp_client() -> None:
    # The ML-DSA line is an unknown key to an Ed25519-only client, so ignored.
    assert verify_checkpoint(SIGNED, ORIGIN, [_ED.verifier()], require="any") == CP


def test_checkpoint_with_only_ed25519_refused_when_pq_required() -> None:
    classical = sign_checkpoint(CP, [_ED])
    with pytest.raises(NoteError, match="lacks a valid signature"):
        verify_checkpoint(classical, ORIGIN, _LOG_KEYS)
    assert verify_checkpoint(classical, ORIGIN, _LOG_KEYS, require="any") == CP


def test_checkpoint_with_only_mldsa_refused_when_both_required() -> None:
    with pytest.raises(NoteError, match="lacks a valid signature"):
        verify_checkpoint(sign_checkpoint(CP, [_PQ]), ORIGIN, _LOG_KEYS)


def test_checkpoint_from_another_origin_rejected() -> None:
    # A log's signature on someone else's origin line must not pass as its own.
    other = Checkpoint("detente.example/other/log", CP.size, CP.root)
    with pytest.raises(NoteError, match="origin"):
        verify_checkpoint(sign_checkpoint(other, [_ED, _PQ]), ORIGIN, _LOG_KEYS)


def test_checkpoint_signed_by_an_impostor_key_rejected() -> None:
    impostor = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(NoteError):
        verify_checkpoint(sign_checkpoint(CP, [impostor]), ORIGIN, _LOG_KEYS)


def test_checkpoint_with_garbage_text_but_valid_signatures_rejected() -> None:
    from detente.core.note import sign_note

    with pytest.raises(NoteError):
        verify_checkpoint(sign_note("just a note\n", [_ED, _PQ]), ORIGIN, _LOG_KEYS)


def test_consistent_checkpoints_link_by_proof() -> None:
    old = verify_checkpoint(
        sign_checkpoint(Checkpoint(ORIGIN, 7, _TREE.root(7)), [_ED, _PQ]), ORIGIN, _LOG_KEYS
    )
    new = verify_checkpoint(SIGNED, ORIGIN, _LOG_KEYS)
    verify_consistency(old.size, new.size, _TREE.consistency_proof(7, 20), old.root, new.root)


@settings(max_examples=150, deadline=None)
@given(pos=st.integers(min_value=0, max_value=len(SIGNED) - 1), bit=st.integers(0, 7))
def test_hybrid_checkpoint_with_any_flipped_bit_rejected(pos: int, bit: int) -> None:
    msg = bytearray(SIGNED)
    msg[pos] ^= 1 << bit
    with pytest.raises(NoteError):
        verify_checkpoint(bytes(msg), ORIGIN, _LOG_KEYS)


# -- witness cosignatures ------------------------------------------------------------


def test_cosignature_round_trip() -> None:
    line = cosign(CP, _WITNESS.name, _WITNESS_KEY, 1679315147)
    assert line.startswith(f"\u2014 {_WITNESS.name} ")
    assert line.endswith("\n")
    assert verify_cosignature(CP, line, _WITNESS) == 1679315147


def test_cosignature_signs_the_spec_message() -> None:
    # tlog-cosignature: "cosignature/v1\ntime <t>\n" || checkpoint note text,
    # and the blob is u64 big-endian timestamp || 64-byte Ed25519 signature.
    line = cosign(CP, _WITNESS.name, _WITNESS_KEY, 1679315147)
    blob = base64.b64decode(line.split(" ")[-1])
    assert blob[:4] == _WITNESS.key_id
    assert len(blob) == 4 + 72
    assert int.from_bytes(blob[4:12], "big") == 1679315147
    msg = b"cosignature/v1\ntime 1679315147\n" + CP.to_text().encode()
    assert cosignature_message(CP.to_text().encode(), 1679315147) == msg
    _WITNESS_KEY.public_key().verify(blob[12:], msg)


def test_cosigned_note_opens_for_log_keys_and_witness() -> None:
    line = cosign(CP, _WITNESS.name, _WITNESS_KEY, 1700000000)
    cosigned = SIGNED + line.encode()
    cp, others = open_checkpoint(cosigned, ORIGIN, _LOG_KEYS)
    assert cp == CP
    assert others == (line,)
    assert verify_cosignature(cp, others[0], _WITNESS) == 1700000000
    assert open_note(cosigned, [_WITNESS]).signatures[0].name == _WITNESS.name


def test_cosignature_vkey_round_trip() -> None:
    parsed = parse_verifier_key(_WITNESS.vkey())
    assert isinstance(parsed, CosignatureV1Verifier)
    assert parsed.key_id == _WITNESS.key_id


def test_cosignature_with_altered_timestamp_rejected() -> None:
    # Backdating a cosignature: the timestamp is inside the signed message.
    line = cosign(CP, _WITNESS.name, _WITNESS_KEY, 1700000000)
    head, b64 = line.rstrip("\n").rsplit(" ", 1)
    blob = bytearray(base64.b64decode(b64))
    blob[4:12] = (1600000000).to_bytes(8, "big")
    forged = f"{head} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignature(CP, forged, _WITNESS)


def test_cosignature_over_another_tree_head_rejected() -> None:
    line = cosign(CP, _WITNESS.name, _WITNESS_KEY, 1700000000)
    split_view = Checkpoint(ORIGIN, CP.size, bytes(32))
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignature(split_view, line, _WITNESS)


def test_cosignature_from_another_witness_rejected() -> None:
    other_key = Ed25519PrivateKey.generate()
    line = cosign(CP, _WITNESS.name, other_key, 1700000000)
    with pytest.raises(NoteError, match="not from witness"):
        verify_cosignature(CP, line, _WITNESS)


def test_log_signature_replayed_as_cosignature_rejected() -> None:
    # The log's own Ed25519 line has another key id (type 0x01, not 0x04).
    log_line = SIGNED.decode().split("\n\n")[-1].split("\n")[0]
    with pytest.raises(NoteError):
        verify_cosignature(
            CP, log_line, CosignatureV1Verifier(ORIGIN, _ED.private_key.public_key())
        )


@settings(max_examples=100, deadline=None)
@given(data=st.data(), bit=st.integers(0, 7))
def test_cosignature_with_any_flipped_bit_rejected(data: st.DataObject, bit: int) -> None:
    line = cosign(CP, _WITNESS.name, _WITNESS_KEY, 1700000000).encode()
    pos = data.draw(st.integers(min_value=0, max_value=len(line) - 2))
    raw = bytearray(line)
    raw[pos] ^= 1 << bit
    try:
        tampered = raw.decode("utf-8")
    except UnicodeDecodeError:
        return  # not even a line of text
    with pytest.raises(NoteError):
        verify_cosignature(CP, tampered, _WITNESS)


@pytest.mark.parametrize("timestamp", [-1, 2**63])
def test_cosignature_timestamp_out_of_range_refused(timestamp: int) -> None:
    with pytest.raises(NoteError):
        cosign(CP, _WITNESS.name, _WITNESS_KEY, timestamp)
