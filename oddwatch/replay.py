"""Replay recorded data over MQTT: NAB series as sensor readings, log files as log lines.

Formats (``fmt``):

- ``nab``: ``timestamp,value`` CSV (one file or a folder of them, searched recursively);
  each row becomes a JSON reading ``{"ts", "value"}`` on ``plant/nab/{category}/{name}``
  (category: the file's folder, name: its stem);
- ``hdfs``, ``bgl``, ``thunderbird``, ``syslog``, ``jsonl``, ``raw``: one message per
  non-blank line on ``logs/{site}/{host}/{app}`` (site ``replay``, host the file stem, app
  the format). Timestamps are read for pacing from HDFS (``yymmdd hhmmss``), BGL and
  Thunderbird (epoch field; the label field is stripped so the ground truth never reaches
  the flows), syslog (RFC 3164/5424 or BSD) and JSON lines (``ts``); raw lines have none and
  are paced by ``rate_limit`` only.

Topic templates may use ``{category}``, ``{name}``, ``{site}``, ``{host}``, ``{app}`` and
``{fmt}``. Several files are merged in time order.

``shift_to_now`` re-stamps what the flows will read so that old data is accepted as live:
with ``speed`` each item is stamped with the time it is due to be published, and without it
with the time it is published. The JSON ``ts`` of readings and JSON lines and the syslog
timestamp are rewritten; HDFS, BGL and raw lines are parsed as raw text, stamped on arrival.
Series in a folder then all start together. With ``loop`` the data repeats until Ctrl-C or
``max_messages``.

>>> encode(ReplayItem("plant/nab/x/y", None, "nab", 1.5, ts=datetime(2014, 1, 1, 0, 5, tzinfo=UTC)), None)
b'{"ts": "2014-01-01T00:05:00Z", "value": 1.5}'
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from oddwatch.evaluation.corpora import iter_series, parse_log_line
from oddwatch.ingest.logs import parse_json_ts, parse_log_message
from oddwatch.observe.progress import Progress, Publisher, publish_stream
from oddwatch.records import UTC, LogLine, Message, utcnow
from oddwatch.settings import Settings

FORMATS = ("nab", "hdfs", "bgl", "thunderbird", "syslog", "jsonl", "raw")
DEFAULT_TOPICS = {"nab": "plant/nab/{category}/{name}"} | {
    f: "logs/{site}/{host}/{app}" for f in FORMATS if f != "nab"
}
_SYSLOG_3164_TS = re.compile(r"(<\d{1,3}>)?([A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d)( )")
_SYSLOG_5424_TS = re.compile(r"(<\d{1,3}>1 )(\S+)( )")
_TOPIC_BAD = re.compile(r"[/+#\s\x00]+")


class ReplayError(ValueError):
    """The replay cannot start: the message names the path, format or setting at fault."""


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One message to replay.

    ``key`` is seconds since the file's first dated item and ``at`` the item's time, both
    inherited from the line before when a line has no timestamp of its own (``ts`` None).
    """

    topic: str
    key: float | None
    fmt: str
    data: float | str
    ts: datetime | None = None
    at: datetime | None = None


def topic_level(text: str) -> str:
    """A string made safe as one MQTT topic level.

    >>> topic_level("ec2 cpu/util+#1")
    'ec2_cpu_util_1'
    """
    return _TOPIC_BAD.sub("_", text).strip("_") or "_"


def line_ts(fmt: str, line: str, now: datetime) -> datetime | None:
    """The timestamp of a log line of format *fmt*, or None when it has none.

    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> line_ts("hdfs", "081109 203530 147 INFO dfs.DataNode: x", now).isoformat()
    '2008-11-09T20:35:30+00:00'
    >>> line_ts("bgl", "- 1117838570 2005.06.03 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL INFO x", now).year
    2005
    >>> line_ts("syslog", "Jun 14 15:16:01 combo sshd[19939]: x", now).isoformat()
    '2025-06-14T15:16:01+00:00'
    >>> line_ts("raw", "anything", now) is None
    True
    """
    try:
        if fmt in ("hdfs", "bgl", "thunderbird"):
            return datetime.fromtimestamp(parse_log_line(line, fmt).ts, UTC)
        if fmt == "jsonl":
            doc = json.loads(line)
            raw = next((doc[k] for k in ("ts", "timestamp", "time", "@timestamp") if doc.get(k) is not None), None)
            return None if raw is None else parse_json_ts(raw)
        if fmt == "syslog":
            (out,) = parse_log_message(Message("logs/r/h/a", line.encode(), now), site="r", host="h", app="a",
                                       max_future_s=400 * 86400.0, max_past_s=100 * 365 * 86400.0)
            return out.ts if isinstance(out, LogLine) and out.ts != now else None
    except Exception:  # a line we cannot date is replayed undated, never an error
        return None
    return None


def restamp(item: ReplayItem, ts: datetime) -> str:
    """The line of a syslog or JSON-lines item with its timestamp replaced by *ts*.

    >>> t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    >>> restamp(ReplayItem("t", 0.0, "syslog", "<13>Jun 14 15:16:01 h sshd: x"), t)
    '<13>Jan  2 03:04:05 h sshd: x'
    >>> restamp(ReplayItem("t", 0.0, "syslog", "<13>1 2005-06-14T15:16:01Z h app - - - x"), t)
    '<13>1 2026-01-02T03:04:05.000Z h app - - - x'
    """
    line = str(item.data)
    if item.fmt == "jsonl":
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            return line  # sent as is; the log flow reports it as bad_json
        if not isinstance(doc, dict):
            return line
        key = next((k for k in ("ts", "timestamp", "time", "@timestamp") if k in doc), "ts")
        doc[key] = _rfc3339(ts)
        return json.dumps(doc)
    if item.fmt == "syslog":
        m5 = _SYSLOG_5424_TS.match(line)
        if m5:
            stamp = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return m5.group(1) + stamp + line[m5.end(2):]
        m3 = _SYSLOG_3164_TS.match(line)
        if m3:
            return (m3.group(1) or "") + f"{ts:%b} {ts.day:>2} {ts:%H:%M:%S}" + line[m3.end(2):]
    return line


def _rfc3339(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def encode(item: ReplayItem, new_ts: datetime | None) -> bytes:
    """The MQTT payload of an item, re-stamped with *new_ts* when given."""
    if item.fmt == "nab":
        ts = new_ts or item.ts
        doc: dict[str, Any] = {"ts": _rfc3339(ts)} if ts is not None else {}
        return json.dumps({**doc, "value": item.data}).encode()
    if new_ts is not None and item.fmt in ("syslog", "jsonl"):
        return restamp(item, new_ts).encode()
    return str(item.data).encode()


def _files(path: Path, fmt: str) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        pattern = "*.csv" if fmt == "nab" else "*"
        files = sorted(p for p in path.rglob(pattern) if p.is_file() and not p.name.startswith("."))
        if fmt != "nab":
            files = [p for p in files if p.suffix.lower() in (".log", ".txt", ".jsonl", ".json", "")]
        if files:
            return files
        raise ReplayError(f"replay path {str(path)!r} holds no {'*.csv' if fmt == 'nab' else 'log'} files")
    raise ReplayError(f"replay path {str(path)!r} does not exist")


def _topic(template: str, path: Path, fmt: str, site: str) -> str:
    fields = {"category": topic_level(path.parent.name), "name": topic_level(path.stem), "site": topic_level(site),
              "host": topic_level(path.stem), "app": fmt, "fmt": fmt}
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise ReplayError(f"topic_template {template!r} is invalid ({exc!r}); use "
                          f"{{category}} {{name}} {{site}} {{host}} {{app}} {{fmt}}") from None


def read_file(path: Path, fmt: str, topic: str, now: datetime) -> Iterator[ReplayItem]:
    """The items of one file, in file order; ``key`` is seconds since the file's first dated item."""
    first: datetime | None = None
    ts: datetime | None
    if fmt == "nab":
        try:
            for row in iter_series(path):
                first = first or row.ts
                yield ReplayItem(topic, (row.ts - first).total_seconds(), fmt, row.value, row.ts, row.ts)
        except ValueError as exc:
            raise ReplayError(f"NAB file {str(path)!r}: {exc} (a NAB file is a 'timestamp,value' CSV)") from None
        return
    last: datetime | None = None
    with path.open(encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            ts = line_ts(fmt, line, now)
            if fmt in ("bgl", "thunderbird"):
                line = line.split(" ", 1)[1] if " " in line else line  # drop the label field
            if ts is not None:
                first, last = first or ts, ts
            key = None if last is None or first is None else (last - first).total_seconds()
            yield ReplayItem(topic, key, fmt, line, ts, last)


def _count(files: list[Path]) -> int:
    total = 0
    for f in files:
        with f.open("rb") as fh:
            total += sum(1 for ln in fh if ln.strip())
    return total - (len(files) if files and files[0].suffix == ".csv" else 0)


def replay_items(files: list[Path], *, fmt: str, topic_template: str, site: str, shift_to_now: bool,
                 now: datetime) -> Iterator[ReplayItem]:
    """Every file's items merged in time order (relative time when shifting, absolute otherwise)."""
    streams = [read_file(f, fmt, _topic(topic_template, f, fmt, site), now) for f in files]
    if len(streams) == 1:
        return streams[0]
    if fmt == "raw":
        return itertools.chain.from_iterable(streams)

    def absolute(item: ReplayItem) -> float:
        return item.at.timestamp() if item.at is not None else float("-inf")

    def relative(item: ReplayItem) -> float:
        return item.key if item.key is not None else 0.0

    return heapq.merge(*streams, key=relative if shift_to_now else absolute)


def _looped(make: Any, loop: bool) -> Iterator[tuple[int, ReplayItem]]:
    for rounds in itertools.count():
        yield from ((rounds, it) for it in make())
        if not loop:
            return


def replay(path: str | Path, settings: Settings, *, fmt: str = "nab", topic_template: str | None = None,
           speed: float | None = None, rate_limit: float | None = None, shift_to_now: bool = True,
           loop: bool = False, progress: bool = False, site: str = "replay", max_messages: int | None = None,
           client_id: str | None = None, publisher: Publisher | None = None) -> dict[str, Any]:
    """Publish a recorded file or folder over MQTT; returns counts.

    Parameters
    ----------
    path
        A file, or a folder searched recursively (``*.csv`` for NAB; ``*.log``, ``*.txt``,
        ``*.jsonl``, ``*.json`` or extension-less files for logs).
    settings
        ``settings.mqtt`` says where to publish, with QoS ``settings.mqtt.qos``.
    fmt
        One of :data:`FORMATS`.
    topic_template
        Default :data:`DEFAULT_TOPICS` for the format.
    speed
        N times real time against the data's timestamps; None: as fast as ``rate_limit``.
    rate_limit
        Most messages per second (None: unlimited).
    shift_to_now
        Re-stamp the data as live (see the module docstring); off, the original times are sent.
    loop
        Start over at the end, until Ctrl-C or ``max_messages``.
    progress
        Draw a progress bar with rate and ETA on stderr.
    site
        The ``{site}`` of log topics.
    publisher
        Use this instead of a new :class:`~oddwatch.connectors.mqtt.MqttPublisher` (not closed).

    Returns
    -------
    dict
        ``published``, ``bytes``, ``elapsed_s``, ``rate``, ``interrupted``, ``flushed``,
        ``files``, ``topics`` (distinct topics), ``first_ts`` and ``last_ts`` (as sent, or None).
    """
    if fmt not in FORMATS:
        raise ReplayError(f"replay fmt {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
    if speed is not None and not speed > 0:
        raise ReplayError(f"replay speed {speed!r} must be > 0, or None for as fast as rate_limit allows")
    files = _files(Path(path).expanduser(), fmt)
    template = topic_template or DEFAULT_TOPICS[fmt]
    now = utcnow()
    total = None if loop else _count(files)
    if max_messages is not None:
        total = max_messages if total is None else min(total, max_messages)
    topics: set[str] = set()
    seen: dict[str, datetime | None] = {"first": None, "last": None}
    period = {"lo": float("inf"), "hi": float("-inf")}  # time keys of the first round
    wall0: list[datetime] = []

    def items() -> Iterator[tuple[ReplayItem, float | None, datetime | None]]:
        """(item, time key in seconds for pacing, the timestamp to send or None)."""
        for rounds, item in _looped(lambda: replay_items(files, fmt=fmt, topic_template=template, site=site,
                                                          shift_to_now=shift_to_now, now=now), loop):
            base = item.key if shift_to_now else (None if item.at is None else item.at.timestamp())
            if base is not None and rounds == 0:
                period["lo"], period["hi"] = min(period["lo"], base), max(period["hi"], base)
            offset = rounds * (period["hi"] - period["lo"] + 1.0) if rounds else 0.0
            key = None if base is None else base + offset
            if not shift_to_now:
                sent = None if item.ts is None else item.ts + timedelta(seconds=offset)
            elif item.ts is None and fmt != "nab":
                sent = None  # an undated line is sent as it is
            elif speed is not None and key is not None:
                if not wall0:
                    wall0.append(utcnow() - timedelta(seconds=key / speed))
                sent = wall0[0] + timedelta(seconds=key / speed)
            else:
                sent = utcnow()
            yield item, key, sent

    def pace_ts(triple: tuple[ReplayItem, float | None, datetime | None]) -> datetime | None:
        return None if triple[1] is None else datetime.fromtimestamp(triple[1], UTC)

    def payload(triple: tuple[ReplayItem, float | None, datetime | None]) -> bytes:
        item, _key, sent = triple
        topics.add(item.topic)
        if sent is not None:
            seen["first"] = seen["first"] or sent
            seen["last"] = sent
        if not shift_to_now and sent is not None and fmt == "nab":
            return encode(replace(item, ts=sent), None)
        return encode(item, sent if shift_to_now else None)

    if publisher is None:
        from oddwatch.connectors.mqtt import MqttPublisher  # imported late: the only paho user

        pub: Publisher = MqttPublisher(settings.mqtt, client_id=client_id or f"{settings.mqtt.client_id}-replay")
    else:
        pub = publisher
    try:
        stats = publish_stream(items(), pub, topic_of=lambda triple: triple[0].topic, payload_of=payload,
                               ts_of=pace_ts, speed=speed, rate_limit=rate_limit, qos=settings.mqtt.qos,
                               progress=Progress(total, label=f"replay {fmt}", enabled=progress),
                               max_items=max_messages)
    finally:
        if publisher is None:
            pub.close()
    return {**stats, "files": len(files), "topics": len(topics),
            "first_ts": _rfc3339(seen["first"]) if seen["first"] else None,
            "last_ts": _rfc3339(seen["last"]) if seen["last"] else None}


def iter_payloads(path: str | Path, *, fmt: str = "nab", topic_template: str | None = None,
                  site: str = "replay") -> Iterable[tuple[str, bytes]]:
    """``(topic, payload)`` pairs of a replay with original timestamps, without MQTT (for tests)."""
    files = _files(Path(path).expanduser(), fmt)
    template = topic_template or DEFAULT_TOPICS[fmt]
    for item in replay_items(files, fmt=fmt, topic_template=template, site=site, shift_to_now=False, now=utcnow()):
        yield item.topic, encode(item, None)
