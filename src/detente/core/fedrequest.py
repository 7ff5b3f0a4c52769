"""Signed federation requests: a node asking another node to do something.

Deliveries and checkpoints authenticate themselves (they are signed objects);
a *request* — "resend these sequence numbers" — is not, so the asking node
signs it: ``{"kind", "from", "to", "time", "body", "sig"}`` with its Ed25519
key over the domain ``request/<kind>``.  The receiver checks the signer is a
member of an agreement with it, the request is addressed to it, and the time
is fresh (replays of an old request can only ask for a resend again, which
is harmless, but a window keeps logs clean).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from detente.core.canonical import b64d, b64e, signing_input
from detente.core.keys import PartyKeys, verify_ed25519
from detente.core.party import PartyCard, check_party_id
from detente.core.timefmt import format_time, parse_time, require_aware
from detente.errors import EncodingError, VerificationError, WrongRecipientError

__all__ = ["sign_request", "verify_request"]

MAX_AGE = timedelta(minutes=5)
_FIELDS = {"kind", "from", "to", "time", "body", "sig"}


def sign_request(
    kind: str, body: dict[str, Any], *, sender: str, keys: PartyKeys, to: str, now: datetime
) -> dict[str, Any]:
    unsigned = {"kind": kind, "from": sender, "to": to, "time": format_time(now), "body": body}
    sig = keys.sign_ed25519(signing_input(f"request/{kind}", unsigned))
    return {**unsigned, "sig": b64e(sig)}


def verify_request(
    obj: Any, *, kind: str, me: str, sender_card: PartyCard, now: datetime
) -> dict[str, Any]:
    """Return the request body if ``obj`` is a fresh ``kind`` request to ``me``."""
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        raise EncodingError(f"request must have exactly {', '.join(sorted(_FIELDS))}")
    if obj["kind"] != kind:
        raise EncodingError(f"request kind is {obj['kind']!r}, expected {kind!r}")
    check_party_id(obj["from"], field="request from")
    if obj["from"] != sender_card.id:
        raise VerificationError(f"request from {obj['from']} checked against {sender_card.id}")
    if obj["to"] != me:
        raise WrongRecipientError(f"request is addressed to {obj['to']}, not {me}")
    if not isinstance(obj["body"], dict):
        raise EncodingError("request body must be an object")
    when = parse_time(obj["time"], field="request time")
    if abs(require_aware(now) - when) > MAX_AGE:
        raise VerificationError(f"request time {obj['time']} is not within 5 minutes of now")
    unsigned = {k: obj[k] for k in ("kind", "from", "to", "time", "body")}
    verify_ed25519(
        sender_card.keys.ed25519,
        b64d(obj["sig"], field="request sig"),
        signing_input(f"request/{kind}", unsigned),
        what=f"{kind} request from {obj['from']}",
    )
    body: dict[str, Any] = obj["body"]
    return body
