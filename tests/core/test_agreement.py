"""Agreements: every member signs; versions chain by the TUF root-rotation rule."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detente.core.agreement import Agreement, AgreementSet, verify_succession
from detente.core.canonical import canonical, parse
from detente.core.keys import PartyKeys
from detente.errors import (
    AgreementExpiredError,
    AgreementSignatureError,
    AgreementSuccessionError,
    DetenteError,
    EncodingError,
    SupersededAgreementError,
)
from parties import NOW, Party, make_agreement, make_party


def test_fully_signed_agreement_round_trips(agreement: Agreement) -> None:
    again = Agreement.from_json(parse(agreement.to_bytes()))
    assert again == agreement
    again.verify_signatures()
    assert AgreementSet([again]).get("us-ru-2013-cbm@1") == agreement


def test_agreement_signed_by_only_some_members_rejected(us: Party, ru: Party, cn: Party) -> None:
    partial = make_agreement([us, ru, cn], signers=[us, ru])
    with pytest.raises(AgreementSignatureError, match="not signed by member CN-CNCERT"):
        partial.verify_signatures()
    with pytest.raises(AgreementSignatureError):
        AgreementSet([partial])


def test_agreement_signature_by_wrong_key_rejected(us: Party, ru: Party) -> None:
    agreement = make_agreement([us, ru], signers=[us])
    impostor = PartyKeys.generate()
    sig = agreement.sign("RU-NCCC", impostor).signatures[-1]
    forged = dataclasses.replace(
        agreement,
        signatures=(*agreement.signatures, dataclasses.replace(sig, key_id=ru.card.keys.key_id)),
    )
    with pytest.raises(AgreementSignatureError, match="RU-NCCC"):
        forged.verify_signatures()


def test_agreement_changed_after_signing_rejected(agreement: Agreement) -> None:
    changed = dataclasses.replace(agreement, titles={"en": "Something else"})
    with pytest.raises(AgreementSignatureError):
        changed.verify_signatures()


def test_key_rotation_signed_by_old_and_new_keys_accepted(us: Party, ru: Party, agreement) -> None:
    ru2 = make_party("RU-NCCC", PartyKeys.generate())
    v2 = make_agreement([us, ru2], version=2, previous=agreement.digest())
    with pytest.raises(AgreementSuccessionError, match="staying member RU-NCCC"):
        verify_succession(agreement, v2)
    v2 = v2.sign("RU-NCCC", ru.keys)  # the old key consents to its replacement
    verify_succession(agreement, v2)
    trust = AgreementSet([agreement])
    assert trust.install(v2).version == 2


def test_joining_member_needs_every_old_member(us: Party, ru: Party, cn: Party, agreement) -> None:
    v2 = make_agreement([us, ru, cn], version=2, previous=agreement.digest(), signers=[us, cn])
    with pytest.raises(AgreementSignatureError, match="RU-NCCC"):
        verify_succession(agreement, v2)
    verify_succession(
        agreement, make_agreement([us, ru, cn], version=2, previous=agreement.digest())
    )


def test_version_n_plus_1_signed_by_removed_member_rejected(
    us: Party, ru: Party, cn: Party
) -> None:
    """A removed member's signature counts for nothing, in the version that removes it and later."""
    v1 = make_agreement([us, ru, cn])
    # v2 removes CN; CN signs it, but RU (who stays) does not.
    v2 = make_agreement([us, ru], version=2, previous=v1.digest(), signers=[us, cn])
    with pytest.raises(AgreementSignatureError, match="RU-NCCC"):
        verify_succession(v1, v2)
    good_v2 = make_agreement([us, ru], version=2, previous=v1.digest())
    verify_succession(v1, good_v2)
    # v3 by RU and the removed CN, dropping US: RU is the only old member who
    # signed, 1 of 2 is no majority.
    v3 = make_agreement([ru, cn], version=3, previous=good_v2.digest(), signers=[ru, cn])
    with pytest.raises(AgreementSuccessionError, match="1 of the 2 members"):
        verify_succession(good_v2, v3)
    # v3 re-admitting CN without US's signature: US is a member and did not sign.
    readmit = make_agreement([us, ru, cn], version=3, previous=good_v2.digest(), signers=[ru, cn])
    with pytest.raises(AgreementSignatureError, match="US-CISA"):
        verify_succession(good_v2, readmit)


def test_one_member_cannot_expel_the_majority(us: Party, ru: Party, cn: Party) -> None:
    india = make_party("IN-CERTIN")
    v1 = make_agreement([us, ru, cn, india])
    coup = make_agreement([ru, india], version=2, previous=v1.digest())
    with pytest.raises(AgreementSuccessionError, match="majority"):
        verify_succession(v1, coup)


def test_leaving_member_cannot_block_its_removal(us: Party, ru: Party, cn: Party) -> None:
    v1 = make_agreement([us, ru, cn])
    v2 = make_agreement([us, ru], version=2, previous=v1.digest())
    verify_succession(v1, v2)  # CN did not sign; US and RU are 2 of 3


def test_version_skip_and_broken_chain_rejected(us: Party, ru: Party, agreement) -> None:
    with pytest.raises(AgreementSuccessionError, match="expected version 2"):
        verify_succession(
            agreement, make_agreement([us, ru], version=3, previous=agreement.digest())
        )
    with pytest.raises(AgreementSuccessionError, match="previous version"):
        verify_succession(agreement, make_agreement([us, ru], version=2, previous="0" * 64))


def test_older_version_cannot_be_installed_again(us: Party, ru: Party, agreement) -> None:
    trust = AgreementSet([agreement])
    trust.install(make_agreement([us, ru], version=2, previous=agreement.digest()))
    with pytest.raises(SupersededAgreementError):
        trust.install(agreement)
    with pytest.raises(SupersededAgreementError):
        trust.get(agreement.ref)


def test_expired_agreement_refused(us: Party, ru: Party, agreement) -> None:
    agreement.check_valid_at(NOW)
    with pytest.raises(AgreementExpiredError, match="expired"):
        agreement.check_valid_at(agreement.valid_until)
    with pytest.raises(AgreementExpiredError, match="not valid before"):
        agreement.check_valid_at(agreement.valid_from.replace(year=2000))


def test_unknown_agreement_field_rejected(agreement: Agreement) -> None:
    obj = agreement.to_json()
    obj["annex"] = "secret protocol"
    with pytest.raises(EncodingError, match="unknown fields: annex"):
        Agreement.from_json(obj)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_of_an_agreement_is_rejected(data: st.DataObject, agreement) -> None:
    wire = canonical(agreement.to_json())
    pos = data.draw(st.integers(0, len(wire) - 1))
    flipped = bytearray(wire)
    flipped[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(DetenteError):
        candidate = Agreement.from_json(parse(bytes(flipped)))
        candidate.verify_signatures()
        if candidate == agreement:  # a flip in a JSON-insignificant spot is not possible
            raise AssertionError("unreachable")
