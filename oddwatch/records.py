"""Records that travel through the dataflows.

Every timestamp is timezone-aware UTC. Records are frozen so that a step can never change a
record another step still holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

UTC = UTC
EXCERPT_CHARS = 256


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def excerpt(payload: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """A printable, bounded excerpt of a payload for error records.

    >>> excerpt(b"abc")
    'abc'
    >>> len(excerpt("x" * 1000))
    259
    """
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True, slots=True)
class Message:
    """A raw MQTT message as it arrived."""

    topic: str
    payload: bytes
    received: datetime
    qos: int = 1


@dataclass(frozen=True, slots=True)
class Reading:
    """One sensor reading."""

    site: str
    asset: str
    sensor: str
    ts: datetime
    value: float
    unit: str | None = None
    quality: str | None = None
    topic: str = ""
    received: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.site}/{self.asset}/{self.sensor}"


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line."""

    site: str
    host: str
    app: str
    ts: datetime
    msg: str
    level: str | None = None
    topic: str = ""
    received: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.site}/{self.host}/{self.app}"


@dataclass(frozen=True, slots=True)
class IngestError:
    """Input that could not be used, with the reason, kept so nothing is silently dropped."""

    stream: str
    step: str
    reason: str
    topic: str
    payload: str
    detail: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class Point:
    """One InfluxDB point."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, float | int | bool | str]
    ts: datetime


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message to publish."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert transition (open, close or summary) with its explanation."""

    alert_id: str
    source: str  # "sensor" | "log"
    kind: str  # "open" | "close" | "summary"
    severity: str  # "warning" | "critical"
    site: str
    subject: str  # asset (sensors) or host/app (logs)
    title: str
    text: str
    score: float
    threshold: float
    opened_at: datetime
    ts: datetime
    details: dict[str, object] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return "closed" if self.kind == "close" else "open"


def spread_errors(items: Sequence[object]) -> list[object]:
    """Give the errors of one message distinct timestamps (1 µs apart, by position).

    Errors of one message share topic, reason and arrival time; InfluxDB would keep only the
    last of several points with the same series and timestamp.
    """
    return [
        dataclasses.replace(x, ts=x.ts + timedelta(microseconds=i)) if i and isinstance(x, IngestError) else x
        for i, x in enumerate(items)
    ]
