"""Message ids: UUIDv7 (RFC 9562 §5.7) from a given time and fresh randomness.

Time-ordered ids sort in the order messages were created, which keeps
database indexes compact; the 74 random bits make them unguessable.  The
time is a parameter: the core never reads the clock.
"""

from __future__ import annotations

import os
import re
from datetime import datetime

from detente.core.timefmt import require_aware
from detente.errors import EncodingError

__all__ = ["check_uuid7", "uuid7"]

_UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def uuid7(now: datetime, rand: bytes | None = None) -> str:
    """A new UUIDv7 string whose timestamp is ``now`` (milliseconds).

    ``rand`` (10 bytes) lets a caller that already drew randomness reuse it.
    """
    millis = int(require_aware(now).timestamp() * 1000)
    if not 0 <= millis < 1 << 48:
        raise ValueError("time outside the UUIDv7 range")
    if rand is None:
        rand = os.urandom(10)
    elif len(rand) != 10:
        raise ValueError("uuid7 needs 10 random bytes")
    bits = int.from_bytes(rand, "big")
    value = (millis << 80) | (0x7 << 76) | ((bits >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (bits & ((1 << 62) - 1))
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def check_uuid7(value: object, *, field: str = "id") -> str:
    """Return ``value`` if it is a lower-case UUIDv7 string, else raise naming ``field``."""
    if not isinstance(value, str) or not _UUID7_RE.match(value):
        raise EncodingError(f"{field} must be a lower-case UUIDv7")
    return value
