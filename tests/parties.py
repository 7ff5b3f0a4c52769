"""Parties with real keys and agreements between them, for the core's tests (no I/O).

A plain module, not the conftest: several test directories have a conftest.py,
and importing names from "conftest" would pick whichever was loaded first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from detente.core.agreement import Agreement
from detente.core.keys import PartyKeys
from detente.core.party import PartyCard
from detente.core.policy import MESSAGE_TYPES, Policy

__all__ = ["NOW", "Party", "make_agreement", "make_party"]

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Party:
    card: PartyCard
    keys: PartyKeys

    @property
    def id(self) -> str:
        return self.card.id


def make_party(party_id: str, keys: PartyKeys | None = None, port: int = 8000) -> Party:
    keys = keys or PartyKeys.generate()
    country = party_id.split("-", maxsplit=1)[0]
    card = PartyCard.create(
        id=party_id,
        names={"en": party_id},
        country=country if len(country) == 2 else None,
        role="technical",
        keys=keys.public,
        endpoint=f"http://127.0.0.1:{port}",
        languages=("en",),
    )
    return Party(card, keys)


def make_agreement(
    parties: list[Party],
    *,
    policy: Policy | None = None,
    version: int = 1,
    previous: str | None = None,
    agreement_id: str = "us-ru-2013-cbm",
    signers: list[Party] | None = None,
    valid_until: datetime | None = None,
) -> Agreement:
    agreement = Agreement(
        id=agreement_id,
        version=version,
        titles={"en": "Cyber confidence-building measures", "ru": "Меры доверия"},
        members=tuple(p.card for p in parties),
        policy=policy or Policy(message_types=frozenset(MESSAGE_TYPES), max_tlp="AMBER"),
        valid_from=NOW - timedelta(days=30),
        valid_until=valid_until or NOW + timedelta(days=365),
        previous=previous,
    )
    for signer in parties if signers is None else signers:
        agreement = agreement.sign(signer.id, signer.keys)
    return agreement
