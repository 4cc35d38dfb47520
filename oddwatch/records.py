"""Records that travel through the dataflows.

Every timestamp is timezone-aware UTC. Records are frozen so that a step can never change a
record another step still holds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

UTC = UTC
EXCERPT_CHARS = 256

# Closed vocabularies: the values the schema (docs/schema.md) and the dashboards rely on.
Stream = Literal["sensor", "log", "incident", "feedback"]  # ingest_error stream tag
AlertSource = Literal["sensor", "log", "incident"]
AlertKind = Literal["open", "close", "summary"]
Severity = Literal["warning", "critical"]
CRITICAL_SCORE = 0.9  # the default score from which an alert is critical


def alert_id(key: str, opened_at: datetime) -> str:
    """The id of the alert of *key* (``site/asset/sensor`` or ``site/host/app``) opened at *opened_at*.

    Operators answer alerts by this id (``oddwatch feedback``), so it is built here only.

    >>> alert_id("s1/pump1/temp", datetime(2026, 1, 1, tzinfo=UTC))
    's1/pump1/temp:1767225600'
    """
    return f"{key}:{int(opened_at.timestamp())}"


def severity(peak_score: float, critical_score: float = CRITICAL_SCORE) -> Severity:
    """``critical`` once an alert's peak score reaches *critical_score*, else ``warning``.

    >>> severity(0.95), severity(0.6)
    ('critical', 'warning')
    """
    return "critical" if peak_score >= critical_score else "warning"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    r"""*text* with each lone surrogate (U+D800..U+DFFF) replaced by U+FFFD.

    A JSON string may hold them as ``\u`` escapes (``"\ud800"`` is valid JSON and valid UTF-8
    on the wire), and Python's ``json`` keeps them, but nothing downstream can take them:
    UTF-8 encoding fails, and the Rust tokenizers of sentence-transformers raise ``TypeError:
    TextEncodeInput must be Union[...]``. Parsers pass every text they take from a payload
    through this.

    >>> valid_text("ok \ud800 \U0001f600")
    'ok \ufffd \U0001f600'
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def excerpt(payload: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """A printable, bounded excerpt of a payload for error records.

    >>> excerpt(b"abc")
    'abc'
    >>> len(excerpt("x" * 1000))
    259
    """
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else valid_text(payload)
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

    stream: Stream
    step: str
    reason: str
    topic: str
    payload: str
    detail: str
    ts: datetime

    def __post_init__(self) -> None:
        for name in ("topic", "payload", "detail"):  # a detail may quote a JSON "\ud800" escape
            text = getattr(self, name)
            if isinstance(text, str) and not text.isascii():
                object.__setattr__(self, name, valid_text(text))


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
    source: AlertSource
    kind: AlertKind
    severity: Severity
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
