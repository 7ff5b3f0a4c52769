"""Envelopes: one signed, end-to-end encrypted message to one recipient.

Implements DESIGN.md "Envelope" with HPKE (RFC 9180) base mode from
``cryptography.hazmat.primitives.hpke``.  The default suite is the hybrid
post-quantum KEM ML-KEM-768 + X25519 with HKDF-SHA256 and ChaCha20-Poly1305,
so traffic recorded today stays unreadable to a future quantum computer; an
agreement may choose plain X25519.

Binding the header.  The public HPKE API has no AAD argument, so the header is
bound through HPKE's ``info`` (RFC 9180 §5.1: it enters the key schedule):
``info = "detente/v1/hpke" ‖ NUL ‖ SHA-256(canonical header)``.  Any change to
a header field — recipient, sequence number, type, TLP, case — changes the key
and decryption fails, even if an attacker could also forge the signature.

Signing.  The sender's Ed25519 signature covers
``"detente/v1/envelope" ‖ NUL ‖ canonical header ‖ SHA-256(enc ‖ ct)``
(the digest is fixed-length and ``enc`` has the fixed size of the
agreement's KEM, so the encoding is unambiguous).  Hashing
the bulk fields first is as binding as signing them (SHA-256 collision
resistance), keeps canonicalisation off kilobytes of base64 on the hot path,
and lets one canonical header serve both the signature and HPKE ``info``.

Content.  The plaintext is canonical JSON holding a random 128-bit salt, the
type and TLP (which must match the header), the personal-data declaration and
the form body.  ``content_hash`` is SHA-256 of exactly those bytes; the salt
means the hash reveals nothing even for short, guessable forms, and a
recipient can prove to an arbiter what the sender signed by revealing the
plaintext (:func:`verify_disclosure`).

:func:`open_` checks in this order, each failure its own error class:
known agreement and version → agreement in force → sender is a member →
recipient is me → signature → policy (type, TLP, exercise) → decryption →
content hash → content agrees with the header and the personal-data policy.

Replays and duplicates are a store's business (it needs memory); this module
gives it what to key on: :attr:`Envelope.id` and :attr:`Envelope.channel` + seq.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke

from detente.core.agreement import Agreement, AgreementSet, parse_ref
from detente.core.canonical import SIGNING_PREFIX, b64d, b64e, canonical, parse
from detente.core.ids import check_uuid7, uuid7
from detente.core.keys import PartyKeys, hybrid_public, verify_ed25519, x25519_public
from detente.core.party import check_party_id
from detente.core.policy import MESSAGE_TYPES, Header, tlp_rank
from detente.core.timefmt import format_time, parse_time, require_aware
from detente.errors import (
    ContentHashError,
    DecryptionError,
    EncodingError,
    NotAMemberError,
    VerificationError,
    WrongRecipientError,
)

__all__ = [
    "Content",
    "Envelope",
    "Opened",
    "check_disclosed_content",
    "open_",
    "seal",
    "seal_keeping_plaintext",
    "verify_disclosure",
]

ENVELOPE_VERSION = 1
_SIGN_PREFIX = SIGNING_PREFIX + b"envelope\x00"
_INFO_PREFIX = b"detente/v1/hpke\x00"
_SUITES = {
    "MLKEM768_X25519": hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305
    ),
    "X25519": hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
}
# Nenc (RFC 9180 §7.1; draft-ietf-hpke-pq for the hybrid): 1088 + 32 bytes.
_ENC_SIZE = {"MLKEM768_X25519": 1120, "X25519": 32}
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_FIELDS = (
    "v",
    "id",
    "agreement",
    "from",
    "to",
    "seq",
    "created",
    "type",
    "tlp",
    "case",
    "reply_to",
    "exercise",
    "content_hash",
    "enc",
    "ct",
    "sig",
)
_CONTENT_FIELDS = {"v", "salt", "type", "tlp", "personal_data", "body"}
# A sender's clock may run ahead of ours by this much before we refuse.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def _check_seq(seq: object) -> None:
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise EncodingError("envelope seq must be an integer >= 1")


def _check_case(case: object) -> None:
    if case is not None and not (
        isinstance(case, str) and 0 < len(case) <= 64 and case.isprintable()
    ):
        raise EncodingError("envelope case must be a printable string of 1-64 characters")


_PLAIN_ASCII = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but " and \\


def _header_bytes(header: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of a header :func:`seal` built: by formatting when every
    string is plain printable ASCII (members in JCS order, no escapes needed),
    else through :func:`~detente.core.canonical.canonical`.  A test checks
    the two agree."""
    case, reply_to = header["case"], header["reply_to"]
    if case is not None and not _PLAIN_ASCII.fullmatch(case):
        return canonical(header)
    return (
        f'{{"agreement":"{header["agreement"]}","case":'
        f"{'null' if case is None else chr(34) + case + chr(34)},"
        f'"content_hash":"{header["content_hash"]}","created":"{header["created"]}",'
        f'"exercise":{"true" if header["exercise"] else "false"},"from":"{header["from"]}",'
        f'"id":"{header["id"]}","reply_to":'
        f"{'null' if reply_to is None else chr(34) + reply_to + chr(34)},"
        f'"seq":{header["seq"]},"tlp":"{header["tlp"]}","to":"{header["to"]}",'
        f'"type":"{header["type"]}","v":{header["v"]}}}'
    ).encode("ascii")


def _sha256_tagged(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Content:
    """What the sender says: a form body with its type, TLP and personal-data flag.

    The body is canonicalised once, on first seal, and kept: a message to
    several recipients is sealed once per recipient, and the canonical body
    is the costly part of the plaintext.
    """

    type: str
    tlp: str
    body: Mapping[str, Any]
    personal_data: bool = False
    _body_bytes: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.type not in MESSAGE_TYPES:
            raise EncodingError(f"content type {self.type!r} is not a Détente message type")
        tlp_rank(self.tlp)
        if not isinstance(self.body, Mapping):
            raise EncodingError("content body must be a JSON object")
        if not isinstance(self.personal_data, bool):
            raise EncodingError("content personal_data must be true or false")

    @property
    def body_bytes(self) -> bytes:
        """Canonical JSON of the body, computed on first use and kept."""
        if self._body_bytes is None:
            object.__setattr__(self, "_body_bytes", canonical(dict(self.body)))
        assert self._body_bytes is not None  # noqa: S101 - for the type checker
        return self._body_bytes

    def to_plaintext(self, salt: bytes) -> bytes:
        """Canonical JSON of the content with ``salt`` (RFC 8785 key order).

        Assembled around the pre-canonicalised body; every other member is a
        fixed ASCII token, so the concatenation is exactly what
        :func:`~detente.core.canonical.canonical` would produce (a test checks).
        """
        return b"".join(
            (
                b'{"body":',
                self.body_bytes,
                b',"personal_data":',
                b"true" if self.personal_data else b"false",
                b',"salt":"',
                b64e(salt).encode("ascii"),
                b'","tlp":"',
                self.tlp.encode("ascii"),
                b'","type":"',
                self.type.encode("ascii"),
                b'","v":1}',
            )
        )

    @classmethod
    def from_plaintext(cls, data: bytes) -> Content:
        obj = parse(data)
        if not isinstance(obj, dict) or set(obj) != _CONTENT_FIELDS or obj["v"] != 1:
            raise EncodingError("plaintext is not a version 1 Détente content object")
        salt = b64d(obj["salt"], field="content.salt")
        if len(salt) < 16:
            raise EncodingError("content salt must be at least 16 bytes")
        if not isinstance(obj["body"], dict):
            raise EncodingError("content body must be a JSON object")
        return cls(
            type=obj["type"], tlp=obj["tlp"], body=obj["body"], personal_data=obj["personal_data"]
        )


@dataclass(frozen=True, slots=True)
class Envelope:
    """One sealed message (DESIGN.md, "Envelope"). Immutable; checks its shape."""

    v: int
    id: str
    agreement: str
    from_: str
    to: str
    seq: int
    created: str
    type: str
    tlp: str
    case: str | None
    reply_to: str | None
    exercise: bool
    content_hash: str
    enc: bytes
    ct: bytes
    sig: bytes
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.v != ENVELOPE_VERSION:
            raise EncodingError(f"envelope version {self.v!r} is not supported")
        check_uuid7(self.id, field="envelope id")
        parse_ref(self.agreement)
        check_party_id(self.from_, field="envelope from")
        check_party_id(self.to, field="envelope to")
        if self.from_ == self.to:
            raise EncodingError("envelope is addressed to its sender")
        _check_seq(self.seq)
        parse_time(self.created, field="envelope created")
        if self.type not in MESSAGE_TYPES:
            raise EncodingError(f"envelope type {self.type!r} is not a Détente message type")
        tlp_rank(self.tlp)
        _check_case(self.case)
        if self.reply_to is not None:
            check_uuid7(self.reply_to, field="envelope reply_to")
        if not isinstance(self.exercise, bool):
            raise EncodingError("envelope exercise must be true or false")
        if not isinstance(self.content_hash, str) or not _HASH_RE.match(self.content_hash):
            raise EncodingError("envelope content_hash must be sha256:<64 hex digits>")
        if len(self.enc) not in _ENC_SIZE.values():
            raise EncodingError("envelope enc has the size of no supported KEM")
        if len(self.ct) < 16:
            raise EncodingError("envelope ct is shorter than an AEAD tag")
        if len(self.sig) != 64:
            raise EncodingError("envelope sig must be a 64-byte Ed25519 signature")

    @classmethod
    def _unchecked(cls, **fields: Any) -> Envelope:
        """Build from fields :func:`seal` just made and checked, skipping re-validation.

        Validation costs more than a tenth of a seal; ``seal``'s inputs were
        checked on the way in.  ``test_sealed_envelope_passes_validation``
        keeps this honest.
        """
        envelope = object.__new__(cls)
        for name, value in fields.items():
            object.__setattr__(envelope, name, value)
        object.__setattr__(envelope, "_wire", None)
        return envelope

    # -- what stores and receipts key on --------------------------------------

    @property
    def channel(self) -> tuple[str, str]:
        """The (sender, recipient) channel whose ``seq`` numbers run from 1."""
        return (self.from_, self.to)

    def header(self) -> dict[str, Any]:
        """The fields bound into HPKE ``info``: everything but enc, ct and sig."""
        return {
            "v": self.v,
            "id": self.id,
            "agreement": self.agreement,
            "from": self.from_,
            "to": self.to,
            "seq": self.seq,
            "created": self.created,
            "type": self.type,
            "tlp": self.tlp,
            "case": self.case,
            "reply_to": self.reply_to,
            "exercise": self.exercise,
            "content_hash": self.content_hash,
        }

    def header_bytes(self) -> bytes:
        """Canonical JSON of :meth:`header`."""
        return canonical(self.header())

    def signed_bytes(self) -> bytes:
        return _signed_bytes(self.header_bytes(), self.enc + self.ct)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.header(),
            "enc": b64e(self.enc),
            "ct": b64e(self.ct),
            "sig": b64e(self.sig),
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON of the envelope (computed once: stores, logs and receipts use it)."""
        if self._wire is None:
            object.__setattr__(self, "_wire", canonical(self.to_json()))
        assert self._wire is not None  # noqa: S101 - for the type checker
        return self._wire

    def hash(self) -> str:
        """``sha256:<hex>`` of the canonical envelope: what receipts and logs name."""
        return _sha256_tagged(self.to_bytes())

    @classmethod
    def from_json(cls, obj: Any) -> Envelope:
        if not isinstance(obj, dict):
            raise EncodingError("envelope must be a JSON object")
        unknown = set(obj) - set(_FIELDS)
        missing = set(_FIELDS) - set(obj)
        if unknown:
            raise EncodingError(f"envelope has unknown fields: {', '.join(sorted(unknown))}")
        if missing:
            raise EncodingError(f"envelope lacks fields: {', '.join(sorted(missing))}")
        return cls(
            v=obj["v"],
            id=obj["id"],
            agreement=obj["agreement"],
            from_=obj["from"],
            to=obj["to"],
            seq=obj["seq"],
            created=obj["created"],
            type=obj["type"],
            tlp=obj["tlp"],
            case=obj["case"],
            reply_to=obj["reply_to"],
            exercise=obj["exercise"],
            content_hash=obj["content_hash"],
            enc=b64d(obj["enc"], field="envelope enc"),
            ct=b64d(obj["ct"], field="envelope ct"),
            sig=b64d(obj["sig"], field="envelope sig"),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        return cls.from_json(parse(data))

    @classmethod
    def from_stored(cls, data: bytes) -> Envelope:
        """Load canonical bytes this node stored itself (checked, but kept as they are).

        Every field is still validated; the bytes become the envelope's wire
        form without being re-encoded, and a mismatch (a store edited by hand)
        is refused rather than silently re-canonicalised.
        """
        envelope = cls.from_json(parse(data))
        object.__setattr__(envelope, "_wire", data)
        return envelope


def _signed_bytes(header_bytes: bytes, sealed: bytes) -> bytes:
    """What the sender signs; ``sealed`` is ``enc ‖ ct`` as HPKE returns it."""
    return _SIGN_PREFIX + header_bytes + hashlib.sha256(sealed).digest()


def _info(header_bytes: bytes) -> bytes:
    return _INFO_PREFIX + hashlib.sha256(header_bytes).digest()


def seal(
    content: Content,
    **kwargs: Any,
) -> Envelope:
    """Encrypt ``content`` to ``recipient`` and sign it, as ``agreement`` allows.

    Keyword arguments as :func:`seal_keeping_plaintext`, which also returns
    the plaintext (with its salt) for the sender's own records.
    """
    return seal_keeping_plaintext(content, **kwargs)[0]


def seal_keeping_plaintext(
    content: Content,
    *,
    sender: str,
    sender_keys: PartyKeys,
    recipient: str,
    agreement: Agreement,
    seq: int,
    now: datetime,
    case: str | None = None,
    reply_to: str | None = None,
    exercise: bool = False,
) -> tuple[Envelope, bytes]:
    """Seal ``content`` to ``recipient``; return the envelope and its plaintext.

    The sender keeps the plaintext so it can later prove what it sent
    (:func:`verify_disclosure` works for either party).  The sender's side
    enforces the same policy the recipient will, so nothing the agreement
    forbids ever leaves (DESIGN.md principle 2).
    """
    now = require_aware(now)
    agreement.check_valid_at(now)
    sender_card = agreement.member(sender)
    if sender_card.keys.ed25519 != sender_keys.public.ed25519:
        raise NotAMemberError(f"the keys given are not {sender}'s keys in {agreement.ref}")
    recipient_card = agreement.member(recipient)
    if recipient == sender:
        raise EncodingError("envelope is addressed to its sender")
    _check_seq(seq)
    _check_case(case)
    if reply_to is not None:
        check_uuid7(reply_to, field="envelope reply_to")
    if not isinstance(exercise, bool):
        raise EncodingError("envelope exercise must be true or false")
    agreement.policy.check(Header(content.type, content.tlp, exercise, content.personal_data))
    kem = agreement.policy.kem
    randomness = os.urandom(26)  # one call: 16 bytes of salt, 10 for the UUIDv7
    plaintext = content.to_plaintext(randomness[:16])
    message_id, created = uuid7(now, randomness[16:]), format_time(now)
    content_hash = _sha256_tagged(plaintext)
    header: dict[str, Any] = {
        "v": ENVELOPE_VERSION,
        "id": message_id,
        "agreement": agreement.ref,
        "from": sender,
        "to": recipient,
        "seq": seq,
        "created": created,
        "type": content.type,
        "tlp": content.tlp,
        "case": case,
        "reply_to": reply_to,
        "exercise": exercise,
        "content_hash": content_hash,
    }
    keys = recipient_card.keys
    public: Any = (
        hybrid_public(keys.mlkem768, keys.x25519) if kem != "X25519" else x25519_public(keys.x25519)
    )
    header_bytes = _header_bytes(header)
    sealed = _SUITES[kem].encrypt(plaintext, public, info=_info(header_bytes))
    enc, ct = sealed[: _ENC_SIZE[kem]], sealed[_ENC_SIZE[kem] :]
    sig = sender_keys.sign_ed25519(_signed_bytes(header_bytes, sealed))
    envelope = Envelope._unchecked(
        v=ENVELOPE_VERSION,
        id=message_id,
        agreement=agreement.ref,
        from_=sender,
        to=recipient,
        seq=seq,
        created=created,
        type=content.type,
        tlp=content.tlp,
        case=case,
        reply_to=reply_to,
        exercise=exercise,
        content_hash=content_hash,
        enc=enc,
        ct=ct,
        sig=sig,
    )
    return envelope, plaintext


@dataclass(frozen=True, slots=True)
class Opened:
    """A verified, decrypted envelope."""

    envelope: Envelope
    content: Content
    plaintext: bytes
    agreement: Agreement


def _verify_header(
    envelope: Envelope, agreement: Agreement, now: datetime, header_bytes: bytes, sealed: bytes
) -> None:
    """Sender's clock sane, KEM as agreed, signature valid."""
    sender_card = agreement.member(envelope.from_)
    created = parse_time(envelope.created, field="envelope created")
    if created > now + MAX_CLOCK_SKEW:
        raise VerificationError(
            f"envelope {envelope.id} was created {envelope.created}, in the future"
        )
    if len(envelope.enc) != _ENC_SIZE[agreement.policy.kem]:
        raise DecryptionError(
            f"envelope {envelope.id}: enc is not a {agreement.policy.kem} encapsulation"
        )
    verify_ed25519(
        sender_card.keys.ed25519,
        envelope.sig,
        _signed_bytes(header_bytes, sealed),
        what=f"envelope {envelope.id} from {envelope.from_}",
    )


def check_disclosed_content(envelope: Envelope, plaintext: bytes) -> Content:
    """The content ``plaintext`` holds, if it is what ``envelope``'s signed header names.

    Only the content hash and type/TLP are checked here: the caller verifies
    the envelope's signature (:func:`verify_disclosure` does both).
    """
    if _sha256_tagged(plaintext) != envelope.content_hash:
        raise ContentHashError(f"envelope {envelope.id}: plaintext does not match content_hash")
    content = Content.from_plaintext(plaintext)
    if (content.type, content.tlp) != (envelope.type, envelope.tlp):
        raise VerificationError(
            f"envelope {envelope.id}: content type/TLP differ from the signed header"
        )
    return content


def open_(
    envelope: Envelope,
    *,
    me: str,
    my_keys: PartyKeys,
    agreements: AgreementSet,
    now: datetime,
) -> Opened:
    """Verify and decrypt an envelope addressed to ``me`` (order: module docstring)."""
    now = require_aware(now)
    agreement = agreements.get(envelope.agreement)
    agreement.check_valid_at(now)
    agreement.member(envelope.from_)  # a non-member is named before any other check
    if envelope.to != me:
        raise WrongRecipientError(f"envelope {envelope.id} is addressed to {envelope.to}, not {me}")
    agreement.member(me)
    header_bytes = envelope.header_bytes()
    sealed = envelope.enc + envelope.ct
    _verify_header(envelope, agreement, now, header_bytes, sealed)
    agreement.policy.check(Header(envelope.type, envelope.tlp, envelope.exercise))
    kem = agreement.policy.kem
    private: Any = my_keys.hybrid_private if kem != "X25519" else my_keys.x25519
    try:
        plaintext = _SUITES[kem].decrypt(sealed, private, info=_info(header_bytes))
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError(
            f"envelope {envelope.id}: decryption failed (wrong key, changed header or tampering)"
        ) from exc
    content = check_disclosed_content(envelope, plaintext)
    agreement.policy.check(
        Header(envelope.type, envelope.tlp, envelope.exercise, content.personal_data)
    )
    return Opened(envelope=envelope, content=content, plaintext=plaintext, agreement=agreement)


def verify_disclosure(envelope: Envelope, plaintext: bytes, agreement: Agreement) -> Content:
    """Prove to an arbiter that the sender signed exactly ``plaintext``.

    The recipient hands over the envelope and the plaintext it decrypted; the
    arbiter needs only the agreement (checked here: every member signed) to
    confirm who sent it, to whom, when they said, and what it said.
    """
    agreement.verify_signatures()
    if envelope.agreement != agreement.ref:
        raise VerificationError(f"envelope names {envelope.agreement}, not {agreement.ref}")
    sender_card = agreement.member(envelope.from_)
    agreement.member(envelope.to)
    verify_ed25519(
        sender_card.keys.ed25519,
        envelope.sig,
        envelope.signed_bytes(),
        what=f"envelope {envelope.id} from {envelope.from_}",
    )
    return check_disclosed_content(envelope, plaintext)
