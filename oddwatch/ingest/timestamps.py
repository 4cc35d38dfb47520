"""Timestamps in payloads: RFC 3339 text or epoch numbers in s, ms, µs or ns.

>>> parse_timestamp(1700000000).isoformat(), parse_timestamp(1700000000123).isoformat()
('2023-11-14T22:13:20+00:00', '2023-11-14T22:13:20.123000+00:00')
>>> parse_timestamp("2026-01-01T01:00:00+01:00").isoformat()
'2026-01-01T00:00:00+00:00'
>>> parse_timestamp("2026-01-01T00:00:00", naive_is_utc=True).isoformat()
'2026-01-01T00:00:00+00:00'
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


class TimestampError(ValueError):
    """A payload timestamp oddwatch cannot use; the message says why and shows the value.

    ``reason`` is the ``ingest_error`` reason: ``bad_type`` for text or types that are no
    timestamp, ``bad_timestamp`` for a timestamp outside what a datetime can hold.
    """

    def __init__(self, detail: str, reason: str = "bad_type") -> None:
        super().__init__(detail)
        self.reason = reason


def parse_timestamp(raw: Any, *, naive_is_utc: bool = False) -> datetime:
    """A timezone-aware UTC datetime; epoch units are inferred from the magnitude.

    Text without an offset is UTC when *naive_is_utc*, else an error (sensor payloads must
    say which time they mean). Never raises anything but :class:`TimestampError`.

    >>> parse_timestamp("9999-12-31T23:59:59-01:00")
    Traceback (most recent call last):
    ...
    oddwatch.ingest.timestamps.TimestampError: ts '9999-12-31T23:59:59-01:00' is outside the years 1..9999 in UTC
    """
    try:
        return _parse(raw, naive_is_utc)
    except TimestampError:
        raise
    except (OverflowError, OSError, ValueError):
        raise TimestampError(f"ts {_show(raw)} is outside the years 1..9999 in UTC", "bad_timestamp") from None


def _show(raw: Any) -> str:
    text = repr(raw) if not isinstance(raw, int) or raw.bit_length() < 200 else f"<{raw.bit_length()}-bit integer>"
    return text if len(text) <= 80 else text[:77] + "..."


def _parse(raw: Any, naive_is_utc: bool) -> datetime:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise TimestampError(f"ts {raw!r} is not finite")
        magnitude = abs(raw)
        scale = 1.0 if magnitude < 1e11 else 1e3 if magnitude < 1e14 else 1e6 if magnitude < 1e17 else 1e9
        return datetime.fromtimestamp(raw / scale, UTC)
    if isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise TimestampError(f"ts {_show(raw)} is not RFC 3339 (e.g. 2026-01-01T00:00:00Z)") from None
        if ts.tzinfo is None:
            if not naive_is_utc:
                raise TimestampError(f"ts {_show(raw)} has no timezone; add Z or an offset")
            return ts.replace(tzinfo=UTC)
        return ts.astimezone(UTC)
    raise TimestampError(f"ts must be RFC 3339 text or an epoch number, got {_show(raw)}")
