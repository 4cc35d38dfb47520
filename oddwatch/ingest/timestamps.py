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
    """A payload timestamp oddwatch cannot use; the message says why and shows the value."""


def parse_timestamp(raw: Any, *, naive_is_utc: bool = False) -> datetime:
    """A timezone-aware UTC datetime; epoch units are inferred from the magnitude.

    Text without an offset is UTC when *naive_is_utc*, else an error (sensor payloads must
    say which time they mean).
    """
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if not math.isfinite(raw):
            raise TimestampError(f"ts {raw!r} is not finite")
        magnitude = abs(raw)
        scale = 1.0 if magnitude < 1e11 else 1e3 if magnitude < 1e14 else 1e6 if magnitude < 1e17 else 1e9
        try:
            return datetime.fromtimestamp(raw / scale, UTC)
        except (OverflowError, OSError, ValueError):
            raise TimestampError(f"ts {raw!r} is out of range") from None
    if isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise TimestampError(f"ts {raw!r} is not RFC 3339 (e.g. 2026-01-01T00:00:00Z)") from None
        if ts.tzinfo is None:
            if not naive_is_utc:
                raise TimestampError(f"ts {raw!r} has no timezone; add Z or an offset")
            return ts.replace(tzinfo=UTC)
        return ts.astimezone(UTC)
    raise TimestampError(f"ts must be RFC 3339 text or an epoch number, got {raw!r}")
