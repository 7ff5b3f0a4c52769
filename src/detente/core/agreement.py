"""Agreements: the signed documents under which anything flows.

An agreement lists its members (party cards), its policy and its validity, and
carries one signature per member over the canonical document, each made with
both the member's Ed25519 and ML-DSA-65 keys.  It is valid only when *every*
member signed (DESIGN.md principle 2): nobody can be bound, or claim another
was bound, without signing.

Versions chain like TUF root metadata (TUF spec §5.3.4): version N+1 names the
digest of version N and must be signed by every member of N who stays in N+1,
with the keys N knew them by (so a stolen new key cannot rewrite the
membership), as well as by every member of N+1 with its current keys.  This is
how keys rotate, members join and members leave.

:class:`AgreementSet` is the pure, in-memory trust state a node keeps: it
installs a first version (trusted out of band: compare fingerprints by phone),
accepts only valid successors, and answers "which agreement governs this
message" — refusing unknown, superseded and expired versions.  Persisting it
is the store's job.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from detente.core.canonical import b64d, b64e, canonical, signing_input
from detente.core.keys import PartyKeys, verify_ed25519, verify_mldsa65
from detente.core.party import PartyCard
from detente.core.policy import Policy
from detente.core.timefmt import format_time, parse_time, require_aware
from detente.errors import (
    AgreementExpiredError,
    AgreementSignatureError,
    AgreementSuccessionError,
    EncodingError,
    NotAMemberError,
    SignatureError,
    SupersededAgreementError,
    UnknownAgreementError,
)

__all__ = [
    "Agreement",
    "AgreementSet",
    "AgreementSignature",
    "other_members",
    "parse_ref",
    "verify_succession",
]

AGREEMENT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,63}$")
_DOMAIN = "agreement"
_FIELDS = {
    "v",
    "id",
    "version",
    "titles",
    "members",
    "policy",
    "valid_from",
    "valid_until",
    "previous",
    "signatures",
}


def parse_ref(ref: object) -> tuple[str, int]:
    """Split ``id@version`` (the envelope's ``agreement`` field)."""
    if not isinstance(ref, str) or "@" not in ref:
        raise EncodingError(f"agreement reference {ref!r} is not of the form id@version")
    agreement_id, _, version = ref.rpartition("@")
    if not AGREEMENT_ID_RE.match(agreement_id) or not version.isdigit() or version[0] == "0":
        raise EncodingError(f"agreement reference {ref!r} is not of the form id@version")
    return agreement_id, int(version)


@dataclass(frozen=True, slots=True)
class AgreementSignature:
    """One member's signatures over the agreement body, naming the key pair used."""

    party: str
    key_id: str
    ed25519: bytes
    mldsa65: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "key_id": self.key_id,
            "ed25519": b64e(self.ed25519),
            "mldsa65": b64e(self.mldsa65),
        }

    @classmethod
    def from_json(cls, obj: Any) -> AgreementSignature:
        if not isinstance(obj, dict) or set(obj) != {"party", "key_id", "ed25519", "mldsa65"}:
            raise EncodingError("agreement signature must be {party, key_id, ed25519, mldsa65}")
        if not isinstance(obj["party"], str) or not isinstance(obj["key_id"], str):
            raise EncodingError("agreement signature party and key_id must be strings")
        return cls(
            party=obj["party"],
            key_id=obj["key_id"],
            ed25519=b64d(obj["ed25519"], field="signature.ed25519"),
            mldsa65=b64d(obj["mldsa65"], field="signature.mldsa65"),
        )


@dataclass(frozen=True, slots=True)
class Agreement:
    """A (possibly not yet fully signed) agreement document."""

    id: str
    version: int
    titles: Mapping[str, str]
    members: tuple[PartyCard, ...]
    policy: Policy
    valid_from: datetime
    valid_until: datetime
    previous: str | None = None
    signatures: tuple[AgreementSignature, ...] = ()
    # The body's digest, computed once (the body is immutable; signing adds signatures only).
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not AGREEMENT_ID_RE.match(self.id):
            raise EncodingError(f"agreement id {self.id!r} must be a lower-case slug")
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise EncodingError("agreement version must be an integer >= 1")
        if (self.version == 1) != (self.previous is None):
            raise EncodingError("agreement 'previous' is required exactly when version > 1")
        if not self.titles:
            raise EncodingError("agreement titles must give at least one language")
        ids = [m.id for m in self.members]
        if len(ids) < 2:
            raise EncodingError("an agreement needs at least two members")
        if len(set(ids)) != len(ids):
            raise EncodingError("agreement lists a member twice")
        require_aware(self.valid_from, "valid_from")
        if require_aware(self.valid_until, "valid_until") <= self.valid_from:
            raise EncodingError("agreement valid_until must be after valid_from")

    # -- identity -------------------------------------------------------------

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def body(self) -> dict[str, Any]:
        """The signed document: everything but the signatures."""
        return {
            "v": 1,
            "id": self.id,
            "version": self.version,
            "titles": dict(self.titles),
            "members": [m.to_json() for m in self.members],
            "policy": self.policy.to_json(),
            "valid_from": format_time(self.valid_from),
            "valid_until": format_time(self.valid_until),
            "previous": self.previous,
        }

    def signed_bytes(self) -> bytes:
        """What members sign: the agreement's digest, domain-separated.

        Signing the SHA-256 of the canonical body rather than the body keeps a
        verification constant-cost: an agreement of 200 members carries about
        a megabyte of public keys, and every member verifies every signature.
        """
        return signing_input(_DOMAIN, {"digest": self.digest()})

    def digest(self) -> str:
        """Hex SHA-256 of the canonical body: what the next version's ``previous`` names."""
        if self._digest is None:
            object.__setattr__(self, "_digest", hashlib.sha256(canonical(self.body())).hexdigest())
        assert self._digest is not None  # noqa: S101 - for the type checker
        return self._digest

    def member(self, party_id: str) -> PartyCard:
        for card in self.members:
            if card.id == party_id:
                return card
        raise NotAMemberError(f"{party_id} is not a member of agreement {self.ref}")

    def is_member(self, party_id: str) -> bool:
        return any(card.id == party_id for card in self.members)

    # -- signing and verification --------------------------------------------

    def sign(self, party_id: str, keys: PartyKeys) -> Agreement:
        """Return a copy with ``party_id``'s signature (by ``keys``) added."""
        data = self.signed_bytes()
        sig = AgreementSignature(
            party=party_id,
            key_id=keys.public.key_id,
            ed25519=keys.sign_ed25519(data),
            mldsa65=keys.sign_mldsa65(data),
        )
        kept = tuple(s for s in self.signatures if (s.party, s.key_id) != (sig.party, sig.key_id))
        signed = replace(self, signatures=(*kept, sig))
        object.__setattr__(signed, "_digest", self._digest)  # same body, same digest
        return signed

    def _check_signed_by(self, card: PartyCard, data: bytes) -> None:
        key_id = card.keys.key_id
        for sig in self.signatures:
            if sig.party == card.id and sig.key_id == key_id:
                try:
                    verify_ed25519(card.keys.ed25519, sig.ed25519, data, what=f"{card.id}")
                    verify_mldsa65(card.keys.mldsa65, sig.mldsa65, data, what=f"{card.id}")
                except SignatureError as exc:
                    raise AgreementSignatureError(
                        f"agreement {self.ref}: signature of {exc} (key {key_id[:16]})"
                    ) from exc
                return
        raise AgreementSignatureError(
            f"agreement {self.ref} is not signed by member {card.id} (key {key_id[:16]})"
        )

    def verify_signatures(self) -> None:
        """Raise unless every member signed with both of its current keys."""
        data = self.signed_bytes()
        for card in self.members:
            self._check_signed_by(card, data)

    def check_valid_at(self, now: datetime) -> None:
        now = require_aware(now)
        if now < self.valid_from:
            raise AgreementExpiredError(
                f"agreement {self.ref} is not valid before {format_time(self.valid_from)}"
            )
        if now >= self.valid_until:
            raise AgreementExpiredError(
                f"agreement {self.ref} expired at {format_time(self.valid_until)}"
            )

    # -- wire -----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signatures": [s.to_json() for s in self.signatures]}

    def to_bytes(self) -> bytes:
        return canonical(self.to_json())

    @classmethod
    def from_json(cls, obj: Any) -> Agreement:
        if not isinstance(obj, dict):
            raise EncodingError("agreement must be a JSON object")
        unknown, missing = set(obj) - _FIELDS, _FIELDS - set(obj)
        if unknown:
            raise EncodingError(f"agreement has unknown fields: {', '.join(sorted(unknown))}")
        if missing:
            raise EncodingError(f"agreement lacks fields: {', '.join(sorted(missing))}")
        if obj["v"] != 1:
            raise EncodingError("agreement format version must be 1")
        titles, members, sigs = obj["titles"], obj["members"], obj["signatures"]
        if not isinstance(titles, dict) or not all(isinstance(t, str) for t in titles.values()):
            raise EncodingError("agreement titles must map languages to strings")
        if not isinstance(members, list) or not isinstance(sigs, list):
            raise EncodingError("agreement members and signatures must be lists")
        previous = obj["previous"]
        if previous is not None and (
            not isinstance(previous, str) or not re.fullmatch(r"[0-9a-f]{64}", previous)
        ):
            raise EncodingError("agreement previous must be a hex SHA-256 digest or null")
        return cls(
            id=obj["id"],
            version=obj["version"],
            titles=MappingProxyType(dict(titles)),
            members=tuple(PartyCard.from_json(m) for m in members),
            policy=Policy.from_json(obj["policy"]),
            valid_from=parse_time(obj["valid_from"], field="valid_from"),
            valid_until=parse_time(obj["valid_until"], field="valid_until"),
            previous=previous,
            signatures=tuple(AgreementSignature.from_json(s) for s in sigs),
        )


def verify_succession(trusted: Agreement, new: Agreement) -> None:
    """Raise unless ``new`` is a valid next version of the ``trusted`` one.

    The TUF root-rotation rule (TUF spec §5.3.4): ``new`` must be fully signed
    by its own members with their current keys, and also signed — with the
    keys ``trusted`` lists — by every member of ``trusted`` who stays.

    One rule more than "every member who stays": a strict majority of the
    members of ``trusted`` must sign with their old keys.  Without it, one
    member of a nine-state agreement could issue a version that drops the
    other eight (they do not stay, so their consent would not be needed) and
    take over the agreement's name.  A member who wants to leave can still be
    let go by the others, and can leave by signing its own departure.
    """
    if new.id != trusted.id:
        raise AgreementSuccessionError(f"agreement {new.ref} does not succeed {trusted.ref}")
    if new.version != trusted.version + 1:
        raise AgreementSuccessionError(
            f"agreement {new.ref}: expected version {trusted.version + 1} after {trusted.ref}"
        )
    if new.previous != trusted.digest():
        raise AgreementSuccessionError(
            f"agreement {new.ref} does not name {trusted.ref} as its previous version"
        )
    new.verify_signatures()
    data = new.signed_bytes()
    consenting = 0
    for old_card in trusted.members:
        try:
            new._check_signed_by(old_card, data)
        except AgreementSignatureError as exc:
            if new.is_member(old_card.id):
                raise AgreementSuccessionError(
                    f"agreement {new.ref} is not signed by staying member {old_card.id} "
                    f"with the key {trusted.ref} lists"
                ) from exc
            continue  # leaving without signing: allowed if the majority agrees
        consenting += 1
    if 2 * consenting <= len(trusted.members):
        raise AgreementSuccessionError(
            f"agreement {new.ref} is signed by {consenting} of the {len(trusted.members)} "
            f"members of {trusted.ref}; a majority is required"
        )


def other_members(agreements: Iterable[Agreement], party_id: str) -> dict[str, PartyCard]:
    """Every member of ``agreements`` but ``party_id``: a node's peers."""
    return {
        card.id: card
        for agreement in agreements
        for card in agreement.members
        if card.id != party_id
    }


class AgreementSet:
    """The agreements a node trusts: the latest verified version of each."""

    def __init__(self, agreements: Iterable[Agreement] = ()) -> None:
        self._current: dict[str, Agreement] = {}
        for agreement in agreements:
            self.install(agreement)

    def install(self, agreement: Agreement) -> Agreement:
        """Install a first version, or a valid successor of the installed one.

        A first version is trusted on its members' signatures alone: whoever
        installs it must have checked the members' fingerprints out of band.
        Installing the same version again is a no-op if it is the same document.
        """
        current = self._current.get(agreement.id)
        if current is None:
            agreement.verify_signatures()
        elif agreement.version == current.version and agreement.digest() == current.digest():
            return current
        elif agreement.version <= current.version:
            raise SupersededAgreementError(
                f"agreement {agreement.ref} is not newer than installed {current.ref}"
            )
        else:
            verify_succession(current, agreement)
        self._current[agreement.id] = agreement
        return agreement

    def current(self, agreement_id: str) -> Agreement:
        try:
            return self._current[agreement_id]
        except KeyError:
            raise UnknownAgreementError(f"no agreement {agreement_id!r} is installed") from None

    def get(self, ref: str) -> Agreement:
        """The agreement an envelope names, refusing unknown or superseded versions."""
        agreement_id, version = parse_ref(ref)
        current = self.current(agreement_id)
        if version < current.version:
            raise SupersededAgreementError(
                f"agreement {ref} is superseded by version {current.version}"
            )
        if version > current.version:
            raise UnknownAgreementError(
                f"agreement {ref} is not installed (installed: {current.ref})"
            )
        return current

    def __iter__(self) -> Any:
        return iter(self._current.values())

    def __len__(self) -> int:
        return len(self._current)
