"""Turn raw MQTT messages on sensor topics into readings, or into typed ingest errors.

Accepted payloads (docs: README "Topics and payloads"):

- JSON ``{"ts": ..., "value": ..., "unit"?: ..., "quality"?: ...}`` where ``ts`` is RFC 3339
  or epoch seconds / milliseconds / microseconds / nanoseconds; a missing ``ts`` means arrival
  time. A JSON list of such objects is accepted too.
- a bare number, e.g. ``21.5``;
- InfluxDB line protocol, one or more lines. Tags ``site``, ``asset``, ``sensor`` override the
  topic's only where ``[sensors].payload_overrides`` names them (none by default: whoever may
  publish on a topic cannot write into another site's series); every numeric field is one
  reading: the field ``value`` keeps the sensor name, any other field ``f`` becomes sensor
  ``<sensor>.<f>`` (or ``f`` when no sensor is named).

Tag values (topic levels, overrides) lose control characters; one that InfluxDB cannot
store exactly (too long, a backslash at its end or before ``,`` ``=`` or a space) is a
``bad_tag`` error. Nothing raises: bad input comes back as
:class:`~oddwatch.records.IngestError`, and an exception nobody foresaw as ``parse_failed``.

>>> from oddwatch.records import Message, UTC
>>> from datetime import datetime
>>> now = datetime(2026, 1, 1, tzinfo=UTC)
>>> p = SensorParser(SensorSettings())
>>> p.parse(Message("plant/s1/p1/temp", b'{"ts": "2026-01-01T00:00:00Z", "value": 3}', now), now)
[Reading(site='s1', asset='p1', sensor='temp', ts=datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), value=3.0, unit=None, quality=None, topic='plant/s1/p1/temp', received=datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc))]
>>> p.parse(Message("plant/s1/p1/temp", b'nan', now), now)[0].reason
'non_finite'
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

import orjson

from oddwatch.ingest.guard import failure
from oddwatch.ingest.timestamps import TimestampError, parse_timestamp
from oddwatch.ingest.topics import parse_topic, topic_problem
from oddwatch.lineproto import parse_lines, strip_control, tag_problem
from oddwatch.records import UTC, IngestError, Message, Reading, excerpt, spread_errors, valid_text
from oddwatch.settings import SensorSettings

STEP = "parse_reading"
TOPIC_CACHE = 100_000  # topics whose tags are kept (the cache restarts when full)


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_ts(raw: Any) -> datetime:
    """A timezone-aware UTC datetime (see :func:`oddwatch.ingest.timestamps.parse_timestamp`)."""
    try:
        return parse_timestamp(raw)
    except TimestampError as exc:
        raise _Reject(exc.reason, str(exc)) from None


def parse_value(raw: Any, what: str = "value") -> float:
    """A finite float, rejecting booleans, strings and non-finite numbers."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise _Reject("bad_type", f"{what} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except OverflowError:
        raise _Reject("bad_value", f"{what} is an integer of {len(str(raw))} digits, too large for a float") from None
    if not math.isfinite(value):
        raise _Reject("non_finite", f"{what} is {raw!r}; only finite numbers are scored")
    return value


class SensorParser:
    """Parses sensor messages with the limits of :class:`~oddwatch.settings.SensorSettings`."""

    def __init__(self, settings: SensorSettings) -> None:
        self.settings = settings
        self._max_future = timedelta(seconds=settings.max_future_s)
        self._max_past = timedelta(seconds=settings.max_past_s)
        self._topic_tags: dict[str, dict[str, str] | None] = {}  # read-only tags per topic seen

    def parse(self, msg: Message, now: datetime | None = None) -> list[Reading | IngestError]:
        """Readings and errors from one message; never raises."""
        now = now or msg.received
        try:
            tags = self._tags(msg.topic)
            return spread_errors(self._parse_payload(msg, tags, now))  # type: ignore[return-value]
        except _Reject as rej:
            return [self._error(msg, rej.reason, rej.detail, now)]
        except Exception as exc:  # the last resort: one message never stops the flow
            return [failure("sensor", STEP, msg, exc)]

    def _error(self, msg: Message, reason: str, detail: str, now: datetime) -> IngestError:
        return IngestError(
            stream="sensor", step=STEP, reason=reason, topic=msg.topic,
            payload=excerpt(msg.payload), detail=detail, ts=now,
        )

    def _tags(self, topic: str) -> dict[str, str]:
        try:
            tags = self._topic_tags[topic]
        except KeyError:
            if len(self._topic_tags) >= TOPIC_CACHE:
                self._topic_tags.clear()
            tags = self._topic_tags[topic] = parse_topic(topic, self.settings.subscriptions)
        if tags is None:
            raise _Reject(*topic_problem(topic, self.settings.subscriptions))
        return tags

    def _parse_payload(self, msg: Message, tags: dict[str, str], now: datetime) -> list[Reading | IngestError]:
        size = len(msg.payload)
        if size > self.settings.max_payload_bytes:
            raise _Reject(
                "too_large",
                f"payload is {size} bytes, over [sensors].max_payload_bytes = {self.settings.max_payload_bytes}",
            )
        try:
            text = msg.payload.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise _Reject("bad_encoding", f"payload is not UTF-8: {exc}") from None
        if not text:
            raise _Reject("empty", "payload is empty")
        if text[0] in '{["':
            return self._from_json(msg, text, tags, now)
        try:
            number = float(text)
        except ValueError:
            return self._from_line_protocol(msg, text, tags, now)
        return [self._reading(msg, tags, now, value=parse_value(number), ts=now)]

    def _from_json(self, msg: Message, text: str, tags: dict[str, str], now: datetime) -> list[Reading | IngestError]:
        try:
            doc = orjson.loads(text)  # several times faster than json.loads on small objects
        except orjson.JSONDecodeError:
            try:  # what orjson refuses and json reads (NaN, big integers) keeps json's reading
                doc = json.loads(text)
            except ValueError as exc:
                raise _Reject("bad_json", f"payload is not valid JSON: {exc}") from None
            except RecursionError:
                raise _Reject("bad_json", "payload JSON is nested too deeply") from None
        if doc == []:
            raise _Reject("empty", "payload is an empty JSON array; send one or more readings")
        docs = doc if isinstance(doc, list) else [doc]
        out: list[Reading | IngestError] = []
        for item in docs:
            try:
                if not isinstance(item, dict):
                    raise _Reject("bad_type", f"expected a JSON object with 'value', got {_short(item)}")
                if "value" not in item:
                    raise _Reject("bad_type", f"JSON object has no 'value' key (keys: {_short(sorted(item))})")
                value = parse_value(item["value"])
                ts = parse_ts(item["ts"]) if item.get("ts") is not None else now
                unit = item.get("unit")
                quality = item.get("quality")
                out.append(self._reading(
                    msg, tags, now, value=value, ts=ts,
                    unit=None if unit is None else valid_text(str(unit)[:64]),
                    quality=None if quality is None else valid_text(str(quality)[:64]),
                ))
            except _Reject as rej:
                out.append(self._error(msg, rej.reason, rej.detail, now))
            except (ArithmeticError, ValueError, RecursionError) as exc:
                out.append(self._error(msg, "bad_value", f"reading {_short(item)} cannot be used: {exc}", now))
        return out

    def _from_line_protocol(self, msg: Message, text: str, tags: dict[str, str], now: datetime) -> list[Reading | IngestError]:
        try:
            lines = parse_lines(text)
        except ValueError as exc:
            raise _Reject("bad_line_protocol", f"payload is neither a number, JSON nor line protocol: {exc}") from None
        if not lines:
            raise _Reject("empty", "payload holds only line-protocol comments or blank lines; send one or more readings")
        out: list[Reading | IngestError] = []
        overrides = self.settings.payload_overrides
        for _measurement, lp_tags, fields, ts_ns in lines:
            merged = {**tags, **{k: v for k, v in lp_tags.items() if k in overrides}}
            base = merged.get("sensor", "")
            try:
                ts = _ns_to_datetime(ts_ns) if ts_ns is not None else now
            except _Reject as rej:
                out.append(self._error(msg, rej.reason, rej.detail, now))
                continue
            for name, raw in fields.items():
                try:
                    value = parse_value(raw, f"field {name!r}")
                    sensor = base if name == "value" else (f"{base}.{name}" if base else name)
                    out.append(self._reading(msg, {**merged, "sensor": sensor}, now, value=value, ts=ts))
                except _Reject as rej:
                    out.append(self._error(msg, rej.reason, rej.detail, now))
        return out

    def _reading(
        self, msg: Message, tags: dict[str, str], now: datetime, *, value: float, ts: datetime,
        unit: str | None = None, quality: str | None = None,
    ) -> Reading:
        clean = {name: strip_control(tags.get(name) or "") for name in ("site", "asset", "sensor")}
        for name, tag in clean.items():
            if not tag:
                raise _Reject("unknown_topic", f"topic {msg.topic!r} gives no {name!r} (empty or missing level)")
            problem = tag_problem(tag)
            if problem:
                raise _Reject("bad_tag", f"{name} {_short(tag)} (topic {msg.topic!r}) {problem}; rename it")
        if ts - now > self._max_future:
            raise _Reject(
                "ts_future",
                f"ts {ts.isoformat()} is {(ts - now).total_seconds():.0f} s ahead of now; "
                f"limit [sensors].max_future_s = {self.settings.max_future_s:g}",
            )
        if now - ts > self._max_past:
            raise _Reject(
                "ts_past",
                f"ts {ts.isoformat()} is {(now - ts).total_seconds():.0f} s old; "
                f"limit [sensors].max_past_s = {self.settings.max_past_s:g} (raise it to replay history)",
            )
        return Reading(
            site=clean["site"], asset=clean["asset"], sensor=clean["sensor"], ts=ts, value=value,
            unit=unit, quality=quality, topic=msg.topic, received=msg.received,
        )


def _ns_to_datetime(ts_ns: int) -> datetime:
    """A line-protocol timestamp (ns since the epoch) as a UTC datetime."""
    try:
        return datetime.fromtimestamp(ts_ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        raise _Reject("bad_timestamp", f"line protocol timestamp {_short(ts_ns)} ns is outside the years 1..9999") from None


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to *limit* characters (payload values can be huge or deep)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
