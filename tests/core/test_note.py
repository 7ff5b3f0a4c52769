"""C2SP signed notes: the Go reference example byte for byte, round trips, attacks."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.core.note import (
    ED25519_TYPE,
    MAX_SIGNATURES,
    MLDSA65_TYPE,
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    MLDSA65NoteSigner,
    MLDSA65NoteVerifier,
    key_id,
    open_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    signature_line,
    signer_key,
    verifier_key,
)
from detente.errors import NoteError

GO_EXAMPLE: dict[str, Any] = json.loads(
    (
        Path(__file__).parent.parent / "vectors" / "signed-note" / "go-sumdb-note-example.json"
    ).read_text(encoding="utf-8")
)
TEXT = "example.org/hotline\n42\nsome text\n"

_ED = Ed25519NoteSigner("example.org/log", Ed25519PrivateKey.generate())
_PQ = MLDSA65NoteSigner("example.org/log", MLDSA65PrivateKey.generate())
_BOTH = sign_note(TEXT, [_ED, _PQ])


# -- the reference example ------------------------------------------------------


def test_go_example_key_id() -> None:
    signer = parse_signer_key(GO_EXAMPLE["signer_key"])
    assert signer.key_id.hex() == GO_EXAMPLE["key_id_hex"]
    assert isinstance(signer, Ed25519NoteSigner)
    pub = signer.private_key.public_key()
    assert key_id("PeterNeumann", ED25519_TYPE, pub.public_bytes_raw()).hex() == "c74f20a3"


def test_go_example_verifier_and_signer_key_strings() -> None:
    signer = parse_signer_key(GO_EXAMPLE["signer_key"])
    assert isinstance(signer, Ed25519NoteSigner)
    assert verifier_key(signer.name, signer.private_key.public_key()) == GO_EXAMPLE["verifier_key"]
    assert signer_key(signer.name, signer.private_key) == GO_EXAMPLE["signer_key"]
    verifier = parse_verifier_key(GO_EXAMPLE["verifier_key"])
    assert isinstance(verifier, Ed25519NoteVerifier)
    assert verifier.key_id == signer.key_id


def test_go_example_signed_note_byte_for_byte() -> None:
    signer = parse_signer_key(GO_EXAMPLE["signer_key"])
    signed = sign_note(GO_EXAMPLE["text"], [signer])
    assert signed == GO_EXAMPLE["signed_note"].encode("utf-8")
    sig_line = GO_EXAMPLE["signed_note"].split("\n\n")[-1]
    assert signature_line(signer.name, signer.key_id, signer.sign(GO_EXAMPLE["text"].encode())) == (
        sig_line
    )


def test_go_example_opens() -> None:
    verifier = parse_verifier_key(GO_EXAMPLE["verifier_key"])
    note = open_note(GO_EXAMPLE["signed_note"].encode("utf-8"), [verifier])
    assert note.text == GO_EXAMPLE["text"]
    assert [s.name for s in note.signatures] == ["PeterNeumann"]


# -- round trips ------------------------------------------------------------------


def test_round_trip_with_ed25519_and_mldsa65() -> None:
    note = open_note(_BOTH, [_ED.verifier(), _PQ.verifier()])
    assert note.text == TEXT
    assert len(note.signatures) == 2
    assert note.unverified == ()


def test_mldsa65_verifier_key_round_trip() -> None:
    vkey = _PQ.verifier().vkey()
    name, hex_id, b64 = vkey.split("+", 2)
    assert name == "example.org/log"
    assert hex_id == _PQ.key_id.hex()
    assert base64.b64decode(b64).startswith(MLDSA65_TYPE)
    parsed = parse_verifier_key(vkey)
    assert isinstance(parsed, MLDSA65NoteVerifier)
    open_note(_BOTH, [parsed])


def test_mldsa65_signer_key_round_trip() -> None:
    parsed = parse_signer_key(signer_key(_PQ.name, _PQ.private_key))
    assert parsed.key_id == _PQ.key_id


def test_same_key_name_gives_different_ids_per_signature_type() -> None:
    assert _ED.key_id != _PQ.key_id


def test_text_with_blank_lines_round_trips() -> None:
    text = "first\n\nthird after a blank line\n\n"
    note = open_note(sign_note(text, [_ED]), [_ED.verifier()])
    assert note.text == text


# -- what C2SP requires of verifiers ----------------------------------------------


def test_note_signature_from_unknown_key_is_ignored() -> None:
    stranger = Ed25519NoteSigner("stranger.example", Ed25519PrivateKey.generate())
    signed = sign_note(TEXT, [stranger, _ED])
    note = open_note(signed, [_ED.verifier()])
    assert [s.name for s in note.signatures] == [_ED.name]
    assert [s.name for s in note.unverified] == ["stranger.example"]


def test_note_signature_sharing_name_but_not_key_id_is_ignored() -> None:
    impostor = Ed25519NoteSigner(_ED.name, Ed25519PrivateKey.generate())
    signed = sign_note(TEXT, [impostor, _ED])
    assert len(open_note(signed, [_ED.verifier()]).unverified) == 1


def test_note_signed_only_by_unknown_keys_rejected() -> None:
    stranger = Ed25519NoteSigner("stranger.example", Ed25519PrivateKey.generate())
    with pytest.raises(NoteError, match="not signed by any trusted key"):
        open_note(sign_note(TEXT, [stranger]), [_ED.verifier()])


def test_note_with_forged_signature_from_known_key_rejected() -> None:
    # Same name and key id as the trusted key, but a signature made over other text.
    forged_sig = _ED.sign(b"other text\n")
    line = signature_line(_ED.name, _ED.key_id, forged_sig)
    signed = TEXT.encode() + b"\n" + line.encode() + _BOTH.split(b"\n\n", 1)[1]
    with pytest.raises(NoteError, match="does not verify"):
        open_note(signed, [_ED.verifier(), _PQ.verifier()])


def test_note_key_id_collision_gives_only_a_verification_failure() -> None:
    # An attacker chooses a line with the trusted (name, key id) but its own key.
    attacker = Ed25519PrivateKey.generate()
    line = signature_line(_ED.name, _ED.key_id, attacker.sign(TEXT.encode()))
    with pytest.raises(NoteError):
        open_note(TEXT.encode() + b"\n" + line.encode(), [_ED.verifier()])


def test_note_with_too_many_signatures_rejected() -> None:
    stranger = Ed25519NoteSigner("s.example", Ed25519PrivateKey.generate())
    line = signature_line(stranger.name, stranger.key_id, stranger.sign(TEXT.encode()))
    signed = sign_note(TEXT, [_ED]) + line.encode() * MAX_SIGNATURES
    with pytest.raises(NoteError, match="more than"):
        open_note(signed, [_ED.verifier()])


@pytest.mark.parametrize(
    "text",
    ["no final newline", "tab\there\n", "carriage\r\n", "nul\x00\n"],
)
def test_note_text_with_control_characters_refused(text: str) -> None:
    with pytest.raises(NoteError):
        sign_note(text, [_ED])


@pytest.mark.parametrize("name", ["", "has space", "plus+sign", "nbsp\u00a0name", "tab\tname"])
def test_invalid_key_names_refused(name: str) -> None:
    with pytest.raises(NoteError):
        Ed25519NoteSigner(name, Ed25519PrivateKey.generate())


def test_non_canonical_base64_signature_rejected() -> None:
    # The 68-byte Ed25519 blob leaves 2 unused bits in the last base64 digit:
    # setting them must not yield a second valid encoding of the same note.
    signed = sign_note(TEXT, [_ED]).decode()
    body, sig_line = signed.rsplit("\n\n", 1)
    b64 = sig_line.rstrip("\n").rsplit(" ", 1)[1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = b64.rstrip("=")[-1]
    tweaked = alphabet[alphabet.index(last) | 1]
    assert tweaked != last
    bad = b64.rstrip("=")[:-1] + tweaked + "=" * b64.count("=")
    assert base64.b64decode(bad) == base64.b64decode(b64)
    with pytest.raises(NoteError, match="canonical"):
        open_note(f"{body}\n\n{sig_line.replace(b64, bad)}".encode(), [_ED.verifier()])


def test_verifier_key_with_wrong_key_id_rejected() -> None:
    name, _, b64 = _ED.verifier().vkey().split("+", 2)
    with pytest.raises(NoteError, match="does not match"):
        parse_verifier_key(f"{name}+00000000+{b64}")


def test_verifier_key_renamed_rejected() -> None:
    _, hex_id, b64 = _ED.verifier().vkey().split("+", 2)
    with pytest.raises(NoteError, match="does not match"):
        parse_verifier_key(f"evil.example+{hex_id}+{b64}")


@pytest.mark.parametrize("vkey", ["", "a+b", "a+zzzzzzzz+AQ==", "a+00000000+AQ==", "a+0+x"])
def test_malformed_verifier_keys_rejected(vkey: str) -> None:
    with pytest.raises(NoteError):
        parse_verifier_key(vkey)


@pytest.mark.parametrize(
    "msg",
    [
        b"",
        b"text\n",
        b"text\n\n",
        b"text\n\nnot a signature line\n",
        "text\n\n\u2014 name\n".encode(),
        "text\n\n\u2014 name AAAA\n".encode(),
        "text\n\n\u2014 name !!!!\n".encode(),
        b"\xff\xfe\n\n",
    ],
)
def test_malformed_notes_rejected(msg: bytes) -> None:
    with pytest.raises(NoteError):
        open_note(msg, [_ED.verifier()])


# -- any flipped byte ---------------------------------------------------------------

_ED_ONLY = sign_note(TEXT, [_ED])


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(min_value=0, max_value=len(_ED_ONLY) - 1), bit=st.integers(0, 7))
def test_note_with_any_flipped_bit_rejected(pos: int, bit: int) -> None:
    msg = bytearray(_ED_ONLY)
    msg[pos] ^= 1 << bit
    with pytest.raises(NoteError):
        open_note(bytes(msg), [_ED.verifier()])


@settings(max_examples=100, deadline=None)
@given(pos=st.integers(min_value=0, max_value=len(_BOTH) - 1), bit=st.integers(0, 7))
def test_hybrid_note_with_any_flipped_bit_loses_a_signature(pos: int, bit: int) -> None:
    # A flip in a line's name or key id turns it into an "unknown key" line,
    # which C2SP says to ignore; the note may still open on the other key, but
    # never with both signatures (checkpoint.verify_checkpoint requires both).
    msg = bytearray(_BOTH)
    msg[pos] ^= 1 << bit
    try:
        note = open_note(bytes(msg), [_ED.verifier(), _PQ.verifier()])
    except NoteError:
        return
    assert len(note.signatures) == 1
    assert len(note.unverified) == 1


@settings(max_examples=50, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=80
    ).map(lambda s: s + "\n")
)
def test_any_valid_text_round_trips(text: str) -> None:
    assert open_note(sign_note(text, [_ED]), [_ED.verifier()]).text == text
