"""Times on the wire: RFC 3339 UTC strings with millisecond precision.

``2026-11-24T19:54:49.123Z`` — always ``Z``, always three fractional digits,
so every time has exactly one spelling and canonical JSON stays canonical.
The core never reads the clock: callers pass ``now`` (an aware datetime).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from detente.errors import EncodingError

__all__ = ["format_time", "parse_time", "parse_user_time", "require_aware"]

_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def require_aware(now: datetime, what: str = "now") -> datetime:
    """Return ``now`` in UTC; naive datetimes are a programming error."""
    if now.tzinfo is UTC:
        return now
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return now.astimezone(UTC)


def format_time(when: datetime) -> str:
    """The one wire spelling of ``when`` (truncated to the millisecond)."""
    when = require_aware(when, "time")
    # f-string, not strftime: this runs on every seal, and strftime is 4x slower.
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}T"
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}.{when.microsecond // 1000:03d}Z"
    )


def parse_time(text: object, *, field: str = "time") -> datetime:
    """Parse the wire spelling strictly; the error names the field."""
    match = _TIME_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise EncodingError(f"{field} must be an RFC 3339 UTC time like 2026-01-31T12:00:00.000Z")
    try:
        # The regex fixed the one spelling; fromisoformat (C) checks the calendar.
        return datetime.fromisoformat(text[:-1] + "+00:00")  # type: ignore[index]
    except ValueError as exc:
        raise EncodingError(f"{field} is not a valid date and time") from exc


_LOOSE_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?$"
)


def parse_user_time(text: object, *, field: str = "time") -> datetime:
    """A time a person typed: RFC 3339 with any precision and offset, or a date (UTC
    midnight).  Never for the wire, where :func:`parse_time` keeps one spelling."""
    if not isinstance(text, str) or not _LOOSE_RE.match(text):
        raise EncodingError(
            f"{field} must be a date (2026-01-31) or an RFC 3339 time (2026-01-31T12:00:00Z)"
        )
    value = text if "T" in text else text + "T00:00:00Z"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError as exc:
        raise EncodingError(f"{field} is not a valid date and time") from exc
