"""Party cards: who an agency is, how to reach it, and its public keys.

A card is what one agency hands another (and what an agreement lists for each
member).  Cards are not signed on their own: an agreement binds them, and every
member signs the agreement, which also proves possession of the keys.

Party ids are ``CC-AGENCY``: an ISO 3166 alpha-2 country code or an
organisation code (``SCO``, ``UN``, ``EU``), a dash, and an agency code —
``US-CISA``, ``RU-NCCC``, ``IN-CERTIN``, ``SCO-RATS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from detente.core.keys import PublicKeys
from detente.errors import EncodingError

__all__ = ["PARTY_ID_RE", "ROLES", "PartyCard", "check_party_id"]

PARTY_ID_RE = re.compile(r"^[A-Z][A-Z0-9]{1,7}-[A-Z0-9][A-Z0-9]{0,15}$")
ROLES = frozenset({"technical", "senior", "hotline", "law-enforcement", "platform"})
_LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_CARD_FIELDS = {
    "v",
    "id",
    "names",
    "country",
    "role",
    "keys",
    "endpoint",
    "languages",
    "availability",
}


def check_party_id(value: object, *, field: str = "party id") -> str:
    """Return ``value`` if it is a well-formed party id, else raise naming ``field``."""
    if not isinstance(value, str) or not PARTY_ID_RE.match(value):
        raise EncodingError(f"{field} {value!r} is not of the form CC-AGENCY (e.g. US-CISA)")
    return value


def _check_lang(value: object, field: str) -> str:
    if not isinstance(value, str) or not _LANG_RE.match(value):
        raise EncodingError(f"{field} {value!r} is not a BCP 47 language tag")
    return value


@dataclass(frozen=True, slots=True)
class PartyCard:
    """One agency's public card (DESIGN.md, "Party card")."""

    id: str
    names: MappingProxyType[str, str]
    country: str | None
    role: str
    keys: PublicKeys
    endpoint: str
    languages: tuple[str, ...]
    availability: str

    def __post_init__(self) -> None:
        check_party_id(self.id, field="card.id")
        if not self.names:
            raise EncodingError(f"card {self.id}: names must give at least one language")
        for lang, name in self.names.items():
            _check_lang(lang, f"card {self.id}: names key")
            if not isinstance(name, str) or not name.strip():
                raise EncodingError(f"card {self.id}: name in {lang} is empty")
        if self.country is not None and not _COUNTRY_RE.match(self.country):
            raise EncodingError(f"card {self.id}: country must be ISO 3166 alpha-2 or null")
        if self.role not in ROLES:
            raise EncodingError(
                f"card {self.id}: role {self.role!r} is not one of {', '.join(sorted(ROLES))}"
            )
        if not isinstance(self.endpoint, str) or not re.match(r"^https?://[^\s/]+", self.endpoint):
            raise EncodingError(f"card {self.id}: endpoint must be an http(s) URL")
        if not self.languages:
            raise EncodingError(f"card {self.id}: languages must not be empty")
        for lang in self.languages:
            _check_lang(lang, f"card {self.id}: language")
        if not isinstance(self.availability, str) or not self.availability:
            raise EncodingError(f"card {self.id}: availability must be '24/7' or opening hours")

    @classmethod
    def create(
        cls,
        *,
        id: str,  # noqa: A002 - the wire name
        names: dict[str, str],
        country: str | None,
        role: str,
        keys: PublicKeys,
        endpoint: str,
        languages: tuple[str, ...] | list[str] = ("en",),
        availability: str = "24/7",
    ) -> PartyCard:
        return cls(
            id=id,
            names=MappingProxyType(dict(names)),
            country=country,
            role=role,
            keys=keys,
            endpoint=endpoint,
            languages=tuple(languages),
            availability=availability,
        )

    @property
    def log_origin(self) -> str:
        """The C2SP origin (and note key name) of this party's log."""
        return f"detente.log/{self.id}"

    def log_verifier_keys(self) -> tuple[str, str]:
        """The signed-note verifier keys of this party's log (Ed25519, ML-DSA-65).

        Any C2SP tool or witness can check the party's checkpoints with the
        first, without Détente's code.
        """
        from detente.core.logentry import log_verifiers  # noqa: PLC0415 - avoids a cycle

        ed, ml = log_verifiers(self)
        return ed.vkey(), ml.vkey()  # type: ignore[attr-defined]

    def name(self, lang: str) -> str:
        """The party's name in ``lang``, else in its first listed language."""
        return self.names.get(lang) or next(iter(self.names.values()))

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "id": self.id,
            "names": dict(self.names),
            "country": self.country,
            "role": self.role,
            "keys": self.keys.to_json(),
            "endpoint": self.endpoint,
            "languages": list(self.languages),
            "availability": self.availability,
        }

    @classmethod
    def from_json(cls, obj: Any) -> PartyCard:
        if not isinstance(obj, dict):
            raise EncodingError("party card must be a JSON object")
        unknown = set(obj) - _CARD_FIELDS
        missing = _CARD_FIELDS - set(obj)
        if unknown:
            raise EncodingError(f"party card has unknown fields: {', '.join(sorted(unknown))}")
        if missing:
            raise EncodingError(f"party card lacks fields: {', '.join(sorted(missing))}")
        if obj["v"] != 1:
            raise EncodingError("party card version must be 1")
        if not isinstance(obj["names"], dict) or not isinstance(obj["languages"], list):
            raise EncodingError("party card names must be an object and languages a list")
        return cls(
            id=obj["id"],
            names=MappingProxyType(dict(obj["names"])),
            country=obj["country"],
            role=obj["role"],
            keys=PublicKeys.from_json(obj["keys"]),
            endpoint=obj["endpoint"],
            languages=tuple(obj["languages"]),
            availability=obj["availability"],
        )
