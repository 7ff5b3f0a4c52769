"""Envelopes: seal/open round trips and one test per attack, named for it."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.core.agreement import Agreement, AgreementSet
from detente.core.canonical import b64e, parse
from detente.core.envelope import Content, Envelope, open_, seal, verify_disclosure
from detente.core.policy import Policy
from detente.errors import (
    AgreementExpiredError,
    ContentHashError,
    DecryptionError,
    DetenteError,
    EncodingError,
    MessageTypeNotAllowedError,
    NotAMemberError,
    PersonalDataNotAllowedError,
    SignatureError,
    SupersededAgreementError,
    TLPNotAllowedError,
    UnknownAgreementError,
    WrongRecipientError,
)
from parties import NOW, Party, make_agreement

BODY = {
    "category": "ransomware",
    "severity": 4,
    "text": "Активность C2 с адресов в вашей юрисдикции",
}


def _seal(
    sender: Party,
    recipient: Party,
    agreement: Agreement,
    *,
    content: Content | None = None,
    seq: int = 1,
    **kw: object,
) -> Envelope:
    return seal(
        content or Content("notification", "AMBER", BODY),
        sender=sender.id,
        sender_keys=sender.keys,
        recipient=recipient.id,
        agreement=agreement,
        seq=seq,
        now=NOW,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def sealed(us: Party, ru: Party, agreement: Agreement) -> Envelope:
    return _seal(us, ru, agreement)


def _open(env: Envelope, me: Party, trust: AgreementSet) -> Content:
    return open_(env, me=me.id, my_keys=me.keys, agreements=trust, now=NOW).content


def test_seal_open_round_trip_through_bytes(us: Party, ru: Party, agreement, trust) -> None:
    env = _seal(us, ru, agreement, case="CASE-1")
    wire = env.to_bytes()
    assert "Активность".encode() not in wire and b"ransomware" not in wire
    again = Envelope.from_bytes(wire)
    assert again == env and again.hash() == env.hash()
    content = _open(again, ru, trust)
    assert content.body == BODY and content.tlp == "AMBER"


def test_x25519_suite_when_the_agreement_chooses_it(us: Party, ru: Party) -> None:
    agreement = make_agreement([us, ru], policy=Policy(frozenset({"notification"}), kem="X25519"))
    env = _seal(us, ru, agreement)
    assert len(env.enc) == 32
    assert _open(env, ru, AgreementSet([agreement])).body == BODY


def test_hybrid_pq_kem_is_the_default(us: Party, ru: Party, agreement) -> None:
    assert len(_seal(us, ru, agreement).enc) == 1120  # ML-KEM-768 (1088) + X25519 (32)


def test_content_hash_is_salted(us: Party, ru: Party, agreement) -> None:
    one, two = _seal(us, ru, agreement), _seal(us, ru, agreement)
    assert one.content_hash != two.content_hash


def test_forged_signature_rejected(us: Party, ru: Party, agreement, trust) -> None:
    env = _seal(us, ru, agreement)
    forged = dataclasses.replace(env, sig=bytes(64))
    with pytest.raises(SignatureError, match="Ed25519"):
        _open(forged, ru, trust)


def test_signature_by_another_member_rejected(us: Party, ru: Party, cn: Party) -> None:
    agreement = make_agreement([us, ru, cn])
    env = _seal(cn, ru, agreement)
    claimed = dataclasses.replace(env, from_="US-CISA")  # CN signs, claims to be US
    with pytest.raises(SignatureError):
        _open(claimed, ru, AgreementSet([agreement]))


def test_envelope_readdressed_to_another_recipient_rejected(
    us: Party, ru: Party, cn: Party
) -> None:
    agreement = make_agreement([us, ru, cn])
    env = _seal(us, ru, agreement)
    readdressed = dataclasses.replace(env, to="CN-CNCERT")
    with pytest.raises((SignatureError, DecryptionError)):
        _open(readdressed, cn, AgreementSet([agreement]))
    with pytest.raises(WrongRecipientError):
        _open(env, cn, AgreementSet([agreement]))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 2),
        ("type", "request"),
        ("tlp", "GREEN"),
        ("case", "OTHER"),
        ("exercise", True),
        ("created", "2026-11-24T11:00:00.000Z"),
    ],
)
def test_header_changed_after_signing_rejected(
    us: Party, ru: Party, agreement, trust, field: str, value: object
) -> None:
    env = _seal(us, ru, agreement)
    changed = dataclasses.replace(env, **{field: value})
    with pytest.raises(SignatureError):
        _open(changed, ru, trust)


def test_header_changed_and_resigned_by_sender_fails_decryption(
    us: Party, ru: Party, agreement, trust
) -> None:
    """Even the sender cannot re-label a sealed payload: the header is in HPKE info."""
    env = _seal(us, ru, agreement)
    changed = dataclasses.replace(env, tlp="GREEN")
    resigned = dataclasses.replace(changed, sig=us.keys.sign_ed25519(changed.signed_bytes()))
    with pytest.raises(DecryptionError):
        _open(resigned, ru, trust)


def test_ciphertext_tampered_rejected(us: Party, ru: Party, agreement, trust) -> None:
    env = _seal(us, ru, agreement)
    ct = bytearray(env.ct)
    ct[10] ^= 1
    with pytest.raises(SignatureError):
        _open(dataclasses.replace(env, ct=bytes(ct)), ru, trust)


def test_replayed_envelope_exposes_id_and_channel_seq(us: Party, ru: Party, agreement) -> None:
    """Replay detection needs memory (the store's); the core gives what to key on."""
    env = _seal(us, ru, agreement, seq=7)
    replay = Envelope.from_bytes(env.to_bytes())
    assert (replay.id, replay.channel, replay.seq) == (env.id, ("US-CISA", "RU-NCCC"), 7)
    assert replay.hash() == env.hash()


def test_sender_not_in_agreement_rejected(us: Party, ru: Party, cn: Party, trust) -> None:
    other = make_agreement([cn, ru])
    env = _seal(cn, ru, other)
    renamed = dataclasses.replace(env, agreement="us-ru-2013-cbm@1")
    with pytest.raises(NotAMemberError, match="CN-CNCERT is not a member"):
        _open(renamed, ru, trust)


def test_sealing_as_a_non_member_refused(cn: Party, ru: Party, agreement) -> None:
    with pytest.raises(NotAMemberError):
        _seal(cn, ru, agreement)


def test_tlp_above_the_agreements_refused_on_both_sides(us: Party, ru: Party, trust) -> None:
    strict = make_agreement([us, ru], policy=Policy(frozenset({"notification"}), max_tlp="GREEN"))
    with pytest.raises(TLPNotAllowedError, match="TLP:AMBER is above"):
        _seal(us, ru, strict)
    loose = make_agreement(
        [us, ru], policy=Policy(frozenset({"notification"}), max_tlp="RED"), agreement_id="loose"
    )
    env = _seal(us, ru, loose, content=Content("notification", "RED", BODY))
    sneaky = AgreementSet([make_agreement([us, ru], policy=strict.policy, agreement_id="loose")])
    with pytest.raises(TLPNotAllowedError):
        _open(env, ru, sneaky)


def test_message_type_not_allowed_refused(us: Party, ru: Party) -> None:
    only_pings = make_agreement([us, ru], policy=Policy(frozenset({"ping", "pong"})))
    with pytest.raises(MessageTypeNotAllowedError, match="'notification' is not allowed"):
        _seal(us, ru, only_pings)
    allowed = make_agreement([us, ru], agreement_id="pings")
    env = _seal(us, ru, allowed)
    restricted = AgreementSet(
        [make_agreement([us, ru], policy=only_pings.policy, agreement_id="pings")]
    )
    with pytest.raises(MessageTypeNotAllowedError):
        _open(env, ru, restricted)


def test_personal_data_refused_when_the_agreement_forbids_it(
    us: Party, ru: Party, agreement
) -> None:
    with pytest.raises(PersonalDataNotAllowedError):
        _seal(us, ru, agreement, content=Content("request", "AMBER", BODY, personal_data=True))


def test_expired_agreement_refused(us: Party, ru: Party) -> None:
    expired = make_agreement([us, ru], valid_until=NOW - timedelta(seconds=1))
    with pytest.raises(AgreementExpiredError, match="expired"):
        _seal(us, ru, expired)
    live = make_agreement([us, ru])
    env = _seal(us, ru, live)
    later = open_
    with pytest.raises(AgreementExpiredError):
        later(
            env,
            me=ru.id,
            my_keys=ru.keys,
            agreements=AgreementSet([live]),
            now=live.valid_until + timedelta(seconds=1),
        )


def test_unknown_agreement_refused(us: Party, ru: Party, agreement) -> None:
    env = _seal(us, ru, agreement)
    with pytest.raises(UnknownAgreementError):
        _open(env, ru, AgreementSet())


def test_superseded_agreement_refused(us: Party, ru: Party, agreement) -> None:
    env = _seal(us, ru, agreement)
    v2 = make_agreement([us, ru], version=2, previous=agreement.digest())
    trust = AgreementSet([agreement])
    trust.install(v2)
    with pytest.raises(SupersededAgreementError, match="superseded by version 2"):
        _open(env, ru, trust)


def test_disclosure_proves_what_the_sender_signed(us: Party, ru: Party, agreement, trust) -> None:
    env = _seal(us, ru, agreement)
    opened = open_(env, me=ru.id, my_keys=ru.keys, agreements=trust, now=NOW)
    assert verify_disclosure(env, opened.plaintext, agreement).body == BODY
    lie = opened.plaintext.replace(b"ransomware", b"ddos-attack")
    with pytest.raises(ContentHashError):
        verify_disclosure(env, lie, agreement)


def test_unknown_envelope_field_rejected(us: Party, ru: Party, agreement) -> None:
    obj = _seal(us, ru, agreement).to_json()
    obj["priority"] = 1
    with pytest.raises(EncodingError, match="unknown fields: priority"):
        Envelope.from_json(obj)


def test_float_in_envelope_rejected(us: Party, ru: Party, agreement) -> None:
    wire = _seal(us, ru, agreement).to_bytes().replace(b'"seq":1', b'"seq":1.0')
    with pytest.raises(EncodingError, match="float"):
        Envelope.from_bytes(wire)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_of_an_envelope_is_rejected(
    data: st.DataObject, us: Party, ru: Party, agreement: Agreement, sealed: Envelope
) -> None:
    trust = AgreementSet([agreement])
    env = sealed
    obj = env.to_json()
    field = data.draw(st.sampled_from(sorted(obj)))
    raw = _field_bytes(obj[field])
    pos = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(raw)
    flipped[pos] ^= 1 << bit
    obj[field] = _field_value(obj[field], bytes(flipped))
    with pytest.raises(DetenteError):
        candidate = Envelope.from_json(obj)
        _open(candidate, ru, trust)


def _field_bytes(value: object) -> bytes:
    if isinstance(value, str):
        try:
            from detente.core.canonical import b64d

            return b64d(value)
        except EncodingError:
            return value.encode()
    return repr(value).encode()


def _field_value(original: object, flipped: bytes) -> object:
    if isinstance(original, str):
        try:
            from detente.core.canonical import b64d

            b64d(original)
            return b64e(flipped)
        except EncodingError:
            return flipped.decode("utf-8", "replace")
    if isinstance(original, bool):
        return not original
    if isinstance(original, int):
        return original ^ 1
    return parse(b"null") if original is not None else "x"


@pytest.mark.parametrize("kem", ["MLKEM768_X25519", "X25519"])
def test_sealed_envelope_passes_validation(us: Party, ru: Party, kem: str) -> None:
    """seal() skips re-validation of what it built; the validating constructor agrees."""
    agreement = make_agreement([us, ru], policy=Policy(frozenset({"notification"}), kem=kem))
    env = _seal(us, ru, agreement, case="CASE-7", reply_to=None, exercise=True)
    rebuilt = Envelope(
        **{f.name: getattr(env, f.name) for f in dataclasses.fields(Envelope) if f.init}
    )
    assert rebuilt == env
    assert Envelope.from_bytes(env.to_bytes()) == env


@given(
    body=st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=5,
    ),
    personal=st.booleans(),
    salt=st.binary(min_size=16, max_size=16),
)
def test_plaintext_assembly_is_canonical_json(
    body: dict[str, object], personal: bool, salt: bytes
) -> None:
    from detente.core.canonical import canonical

    content = Content("sighting", "AMBER+STRICT", body, personal_data=personal)
    expected = canonical(
        {
            "v": 1,
            "salt": b64e(salt),
            "type": "sighting",
            "tlp": "AMBER+STRICT",
            "personal_data": personal,
            "body": body,
        }
    )
    assert content.to_plaintext(salt) == expected
    assert Content.from_plaintext(expected) == content


@given(
    case=st.none() | st.text(min_size=1, max_size=64),
    reply=st.booleans(),
    seq=st.integers(1, 2**53 - 1),
    exercise=st.booleans(),
)
def test_formatted_header_is_canonical_json(
    case: str | None, reply: bool, seq: int, exercise: bool
) -> None:
    from detente.core.canonical import canonical
    from detente.core.envelope import _header_bytes

    header = {
        "v": 1,
        "id": "01a20f2b-a293-7ce7-a69b-64aba22eea5d",
        "agreement": "us-ru-2013-cbm@1",
        "from": "US-CISA",
        "to": "RU-NCCC",
        "seq": seq,
        "created": "2026-11-24T12:00:00.000Z",
        "type": "notification",
        "tlp": "AMBER+STRICT",
        "case": case,
        "reply_to": "01a20f2b-a293-7ce7-a69b-64aba22eea5e" if reply else None,
        "exercise": exercise,
        "content_hash": "sha256:" + "ab" * 32,
    }
    assert _header_bytes(header) == canonical(header)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"seq": 0}, "seq must be an integer >= 1"),
        ({"seq": True}, "seq must be an integer >= 1"),
        ({"case": "x" * 65}, "case must be a printable string"),
        ({"case": "line\nbreak"}, "case must be a printable string"),
        ({"reply_to": "not-a-uuid"}, "reply_to must be a lower-case UUIDv7"),
        ({"exercise": "yes"}, "exercise must be true or false"),
    ],
)
def test_seal_refuses_a_bad_header_value(
    us: Party, ru: Party, agreement: Agreement, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(EncodingError, match=message):
        _seal(us, ru, agreement, **kw)
