"""Turn raw MQTT messages on log topics into log lines, or into typed ingest errors.

Accepted payloads, detected line by line:

- raw text: one line, or several separated by newlines (each non-blank line is a
  :class:`~oddwatch.records.LogLine`, stamped with the arrival time);
- BSD syslog without a priority (``Mmm dd hh:mm:ss HOST TAG[pid]: MSG``, as in syslog files);
- RFC 3164 syslog: ``<PRI>Mmm dd hh:mm:ss HOST TAG[pid]: MSG`` (the year is inferred from
  ``now``: the latest year that does not put the line more than a day in the future);
- RFC 5424 syslog: ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID STRUCTURED-DATA MSG``;
- JSON: an object ``{"ts", "msg" | "message", "level", "host", "app", ...}``, an array of
  such objects, or JSON lines (one object per line).

Host and app named by the payload override the topic's where allowed (*overrides*;
``[logs].payload_overrides``, none by default). The level comes from the syslog
severity, the JSON ``level`` key, or a level word near the start of a raw line
(``INFO``, ``WARN``, ``ERROR`` ...). Site, host and app lose control characters; one that
InfluxDB cannot store as a tag exactly is a ``bad_tag`` error. Nothing raises: bad input
comes back as an :class:`~oddwatch.records.IngestError` with the reasons of docs/schema.md
(``too_large``, ``bad_encoding``, ``empty``, ``bad_json``, ``bad_type``, ``bad_syslog``,
``bad_timestamp``, ``bad_tag``, ``ts_future``, ``ts_past``; ``parse_failed`` for an
exception nobody foresaw) and an excerpt of the payload.

>>> from datetime import datetime
>>> from oddwatch.records import Message, UTC
>>> now = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
>>> msg = Message("logs/s1/rtr-1/bgpd", b"<29>Nov 27 09:59:58 rtr-1 bgpd[812]: neighbor 10.0.0.2 Down", now)
>>> line, = parse_log_message(msg, site="s1", host="rtr-1", app="bgpd", now=now)
>>> line.ts.isoformat(), line.host, line.app, line.level, line.msg
('2026-11-27T09:59:58+00:00', 'rtr-1', 'bgpd', 'notice', 'neighbor 10.0.0.2 Down')
>>> parse_log_message(Message("logs/s1/h/a", b"\\xff\\xfe", now), site="s1", host="h", app="a")[0].reason
'bad_encoding'
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import orjson

from oddwatch.ingest.guard import failure
from oddwatch.ingest.timestamps import TimestampError, parse_timestamp
from oddwatch.ingest.topics import parse_topic, topic_problem
from oddwatch.lineproto import strip_control, tag_problem
from oddwatch.records import UTC, IngestError, LogLine, Message, excerpt, valid_text
from oddwatch.settings import LogSettings

STEP = "parse_log_message"

#: Syslog severities 0..7 as level names.
SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")

#: Level spellings mapped to the names above.
LEVEL_ALIASES = {
    "emerg": "emergency", "panic": "emergency", "crit": "critical", "fatal": "critical",
    "severe": "error", "err": "error", "warn": "warning", "information": "info",
    "informational": "info", "trace": "debug", "verbose": "debug",
}

MONTHS = {m: i + 1 for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
)}

_PRI = re.compile(r"<(\d{1,3})>")
_RFC5424 = re.compile(r"1 (\S+) (\S+) (\S+) (\S+) (\S+) ")
_BSD = re.compile(r"([A-Z][a-z]{2}) ([ \d]?\d) (\d\d):(\d\d):(\d\d) (\S+) ?(.*)", re.S)
_TAG = re.compile(r"([^\s\[\]:]+)(?:\[([^\]]*)\])?: ?(.*)", re.S)
_LEVELS = "TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRIT|CRITICAL|FATAL|SEVERE|EMERG|ALERT"
_LEVEL_WORD = re.compile(rf"\b({_LEVELS})\b|\[(?i:({_LEVELS}))\]")
_TS_KEYS = ("ts", "timestamp", "time", "@timestamp")
_MSG_KEYS = ("msg", "message")
_APP_KEYS = ("app", "appname", "program", "service")
_DEEP = 500  # brackets from which a JSON text is read by json, not orjson (json's depth limit)


def _loads(text: str) -> Any:
    """``json.loads(text)``, by orjson where it can: what orjson refuses (NaN, integers over 64
    bits, invalid JSON) goes to ``json``, so values and error messages are ``json``'s. A text
    with :data:`_DEEP` brackets or more, which may nest deeper than ``json`` reads, goes to
    ``json`` too."""
    if text.count("[") + text.count("{") >= _DEEP:
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def normalize_level(raw: str | int | None) -> str | None:
    """A level name from :data:`SEVERITIES`, or the lower-cased input when unknown.

    Numbers 0..7 are syslog severities.

    >>> normalize_level("WARN"), normalize_level("Err"), normalize_level(3), normalize_level(None)
    ('warning', 'error', 'error', None)
    """
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int) and 0 <= raw < len(SEVERITIES):
        return SEVERITIES[raw]
    low = str(raw).strip().lower()
    return LEVEL_ALIASES.get(low, low) or None


def sniff_level(text: str) -> str | None:
    """The first level word (upper case, or any case in brackets) in the first 120 characters.

    >>> sniff_level("081109 203530 147 INFO dfs.DataNode: Receiving block"), sniff_level("[error] x")
    ('info', 'error')
    >>> sniff_level("an error in lower case"), sniff_level("hello")
    (None, None)
    """
    m = _LEVEL_WORD.search(text, 0, 120)
    return normalize_level(m.group(1) or m.group(2)) if m else None


def parse_json_ts(raw: Any) -> datetime:
    """A UTC datetime from RFC 3339 text (naive means UTC) or epoch s / ms / us / ns.

    >>> parse_json_ts("2026-01-01T00:00:00Z").isoformat(), parse_json_ts(1767225600000).isoformat()
    ('2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')
    """
    try:
        return parse_timestamp(raw, naive_is_utc=True)
    except TimestampError as exc:
        raise _Reject(exc.reason, str(exc)) from None


def bsd_timestamp(month: str, day: int, hh: int, mm: int, ss: int, now: datetime) -> datetime:
    """A BSD syslog time (no year) placed in the latest year not over a day after *now*.

    >>> now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    >>> bsd_timestamp("Dec", 31, 23, 59, 0, now).isoformat()
    '2025-12-31T23:59:00+00:00'
    """
    if month not in MONTHS:
        raise _Reject("bad_syslog", f"month {month!r} is not one of {', '.join(MONTHS)}")
    for year in (now.year + 1, now.year, now.year - 1):
        try:
            ts = datetime(year, MONTHS[month], day, hh, mm, ss, tzinfo=UTC)
        except ValueError:
            continue  # 29 Feb in a non-leap year, or hour 25
        if ts <= now + timedelta(days=1):
            return ts
    raise _Reject("bad_syslog", f"timestamp {month} {day} {hh:02d}:{mm:02d}:{ss:02d} is not a valid date")


class _Ctx:
    """What one call needs: the message, topic defaults and limits."""

    def __init__(self, msg: Message, site: str, host: str, app: str, now: datetime,
                 max_future_s: float, max_past_s: float, overrides: Collection[str]) -> None:
        self.msg, self.site, self.host, self.app, self.now = msg, site, host, app, now
        self.overrides = overrides
        self.max_future = timedelta(seconds=max_future_s)
        self.max_past = timedelta(seconds=max_past_s)
        self.max_future_s, self.max_past_s = max_future_s, max_past_s
        self._tags: dict[tuple[str | None, str | None], tuple[str, str, str] | _Reject] = {}

    def error(self, reason: str, detail: str, payload: bytes | str) -> IngestError:
        return IngestError(stream="log", step=STEP, reason=reason, topic=self.msg.topic,
                           payload=excerpt(payload), detail=detail, ts=self.now)

    def line(self, msg: str, *, ts: datetime | None = None, level: str | None = None,
             host: str | None = None, app: str | None = None) -> LogLine:
        ts = self.now if ts is None else ts
        msg = valid_text(msg)  # JSON "\ud800" escapes: no encoder or tokenizer takes lone surrogates
        host = None if host is None else valid_text(host)
        app = None if app is None else valid_text(app)
        if ts - self.now > self.max_future:
            raise _Reject("ts_future", f"ts {ts.isoformat()} is {(ts - self.now).total_seconds():.0f} s ahead "
                                       f"of now; limit [logs].max_future_s = {self.max_future_s:g}")
        if self.now - ts > self.max_past:
            raise _Reject("ts_past", f"ts {ts.isoformat()} is {(self.now - ts).total_seconds():.0f} s old; "
                                     f"limit [logs].max_past_s = {self.max_past_s:g}")
        known = self._tags.get((host, app))
        if known is None:
            known = self._tags[(host, app)] = self._checked_tags(host, app)
        if isinstance(known, _Reject):
            raise known
        site, host, app = known
        return LogLine(site=site, host=host, app=app, ts=ts, msg=msg,
                       level=level, topic=self.msg.topic, received=self.msg.received)

    def _checked_tags(self, host: str | None, app: str | None) -> tuple[str, str, str] | _Reject:
        """Site, host and app of a line naming *host* and *app* (None: not named), or the reject."""
        tags = {"site": self.site,
                "host": host if host and "host" in self.overrides else self.host,
                "app": app if app and "app" in self.overrides else self.app}
        for name, raw in tags.items():
            value = tags[name] = strip_control(raw)
            problem = "is empty" if not value else tag_problem(value)
            if problem:
                return _Reject("bad_tag", f"{name} {value[:80]!r} (topic {self.msg.topic!r}) {problem}")
        return tags["site"], tags["host"], tags["app"]


def parse_log_message(
    msg: Message, *, site: str, host: str, app: str, now: datetime | None = None,
    max_payload_bytes: int = 65536, max_future_s: float = 300.0, max_past_s: float = 7 * 86400.0,
    overrides: Collection[str] = ("host", "app"),
) -> list[LogLine | IngestError]:
    """Log lines and errors from one MQTT message; never raises.

    Parameters
    ----------
    msg
        The raw message.
    site, host, app
        Defaults from the topic; ``host`` and ``app`` named in the payload override them.
    now
        The reference time for missing timestamps and the future/past limits; defaults to
        ``msg.received``.
    max_payload_bytes, max_future_s, max_past_s
        Limits, as in :class:`oddwatch.settings.LogSettings`.
    overrides
        Which of ``host`` and ``app`` the payload may set (``[logs].payload_overrides``).

    Returns
    -------
    list
        One :class:`LogLine` or :class:`IngestError` per line or JSON object, in order.
    """
    ctx = _Ctx(msg, site, host, app, msg.received if now is None else now, max_future_s, max_past_s, overrides)
    try:
        return _parse(ctx, max_payload_bytes)
    except Exception as exc:  # the last resort: one message never stops the flow
        return [failure("log", STEP, msg, exc)]


def _parse(ctx: _Ctx, max_payload_bytes: int) -> list[LogLine | IngestError]:
    msg = ctx.msg
    size = len(msg.payload)
    if size > max_payload_bytes:
        return [ctx.error("too_large", f"payload is {size} bytes, over [logs].max_payload_bytes = "
                                       f"{max_payload_bytes}", msg.payload)]
    try:
        text = msg.payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [ctx.error("bad_encoding", f"payload is not UTF-8: {exc}", msg.payload)]
    text = text.lstrip("\ufeff").strip()
    if not text:
        return [ctx.error("empty", "payload is empty or blank", msg.payload)]
    if text[0] in "{[":
        whole = _whole_json(ctx, text)
        if whole is not None:
            return whole
    out: list[LogLine | IngestError] = []
    for raw in text.splitlines():
        raw = raw.strip("\r\n\ufeff")
        if raw.strip():
            out.append(_one_line(ctx, raw))
    return out


def parse_log(msg: Message, settings: LogSettings, now: datetime | None = None) -> list[LogLine | IngestError]:
    """:func:`parse_log_message` with site/host/app from the topic by ``settings.subscriptions``.

    A topic that matches no subscription, or gives no site, is an ``unknown_topic`` error; a
    missing host or app level becomes ``unknown`` (the payload may still name them).

    >>> from oddwatch.records import UTC
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> parse_log(Message("logs/s1/web-1/nginx", b"GET / 200", now), LogSettings())[0].key
    's1/web-1/nginx'
    >>> parse_log(Message("other/x", b"hi", now), LogSettings())[0].reason
    'unknown_topic'
    """
    now = msg.received if now is None else now
    tags = parse_topic(msg.topic, settings.subscriptions)
    if tags is None or not tags.get("site"):
        known = ", ".join(f"{s.topic} ({s.tags})" for s in settings.subscriptions)
        reason, detail = (topic_problem(msg.topic, settings.subscriptions) if tags is None
                          else ("unknown_topic", f"topic {msg.topic!r} gives no 'site' (subscriptions: {known})"))
        return [IngestError(stream="log", step=STEP, reason=reason, topic=msg.topic,
                            payload=excerpt(msg.payload), detail=detail, ts=now)]
    return parse_log_message(msg, site=tags["site"], host=tags.get("host") or "unknown",
                             app=tags.get("app") or "unknown", now=now,
                             max_payload_bytes=settings.max_payload_bytes,
                             max_future_s=settings.max_future_s, max_past_s=settings.max_past_s,
                             overrides=settings.payload_overrides)


def _whole_json(ctx: _Ctx, text: str) -> list[LogLine | IngestError] | None:
    """The payload as one JSON document, or None to go on line by line."""
    try:
        doc = _loads(text)
    except RecursionError:
        return [ctx.error("bad_json", "payload JSON is nested too deeply", text)]
    except ValueError as exc:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if text[0] == "[" or (len(lines) > 1 and all(ln.lstrip().startswith("{") for ln in lines)):
            return None  # a raw line such as "[Sun Dec 04 ...] [error] ..." or JSON lines
        return [ctx.error("bad_json", f"payload is not valid JSON: {exc}", text)]
    if isinstance(doc, dict):
        return [_from_object(ctx, doc, text)]
    if isinstance(doc, list):
        if not doc:
            return [ctx.error("empty", "payload is an empty JSON array", text)]
        return [_from_object(ctx, item, None) for item in doc]
    return None  # unreachable: text starting with { or [ parses to a dict or a list


def _from_object(ctx: _Ctx, doc: Any, raw: str | None) -> LogLine | IngestError:
    """The line of one JSON object; *raw* is its text for error excerpts (None: ``json.dumps(doc)``)."""
    try:
        if not isinstance(doc, dict):
            raise _Reject("bad_type", f"expected a JSON object with 'msg' or 'message', got {doc!r:.80}")
        key = next((k for k in _MSG_KEYS if k in doc), None)
        if key is None:
            raise _Reject("bad_json", f"JSON object has no 'msg' or 'message' key (keys: {sorted(doc)})")
        body = doc[key]
        if not isinstance(body, str):
            raise _Reject("bad_type", f"JSON key {key!r} must be a string, got {body!r:.80}")
        if not body.strip():
            raise _Reject("empty", f"JSON key {key!r} is blank")
        ts_key = next((k for k in _TS_KEYS if doc.get(k) is not None), None)
        ts = parse_json_ts(doc[ts_key]) if ts_key else None
        app_key = next((k for k in _APP_KEYS if doc.get(k)), None)
        level = doc.get("level", doc.get("severity"))
        return ctx.line(body, ts=ts, level=normalize_level(level if isinstance(level, (int, str)) else None),
                        host=str(doc["host"]) if doc.get("host") else None,
                        app=str(doc[app_key]) if app_key else None)
    except _Reject as rej:
        return ctx.error(rej.reason, rej.detail, json.dumps(doc) if raw is None else raw)
    except (ArithmeticError, ValueError, RecursionError) as exc:
        return ctx.error("parse_failed", f"{STEP} raised {type(exc).__name__} for this line: {str(exc)[:200]}",
                         json.dumps(doc) if raw is None else raw)


def _one_line(ctx: _Ctx, raw: str) -> LogLine | IngestError:
    try:
        if raw.startswith("{"):
            try:
                doc = _loads(raw)
            except RecursionError:
                raise _Reject("bad_json", "line JSON is nested too deeply") from None
            except ValueError as exc:
                raise _Reject("bad_json", f"line is not valid JSON: {exc}") from None
            return _from_object(ctx, doc, raw)
        pri = _PRI.match(raw)
        if pri:
            return _syslog(ctx, raw, int(pri.group(1)), raw[pri.end():])
        bsd = _BSD.fullmatch(raw)
        if bsd and bsd.group(1) in MONTHS:
            return _bsd(ctx, bsd, level=None)
        return ctx.line(raw, level=sniff_level(raw))
    except _Reject as rej:
        return ctx.error(rej.reason, rej.detail, raw)
    except (ArithmeticError, ValueError, RecursionError) as exc:
        return ctx.error("parse_failed", f"{STEP} raised {type(exc).__name__} for this line: {str(exc)[:200]}", raw)


def _syslog(ctx: _Ctx, raw: str, pri: int, rest: str) -> LogLine:
    if pri > 191:
        raise _Reject("bad_syslog", f"priority <{pri}> is over 191 (facility 23, severity 7)")
    level = SEVERITIES[pri % 8]
    if rest.startswith("1 "):
        return _rfc5424(ctx, rest, level)
    bsd = _BSD.fullmatch(rest)
    if bsd is None:
        raise _Reject("bad_syslog", "after <PRI> expected '1 TIMESTAMP HOST APP ...' (RFC 5424) "
                                    "or 'Mmm dd hh:mm:ss HOST TAG: MSG' (RFC 3164)")
    return _bsd(ctx, bsd, level=level)


def _bsd(ctx: _Ctx, m: re.Match[str], *, level: str | None) -> LogLine:
    month, day, hh, mm, ss, host, rest = m.groups()
    ts = bsd_timestamp(month, int(day), int(hh), int(mm), int(ss), ctx.now)
    tag = _TAG.fullmatch(rest)
    app, body = (tag.group(1), tag.group(3)) if tag else (None, rest)
    if not body.strip():
        raise _Reject("empty", "syslog line has no message")
    return ctx.line(body, ts=ts, level=level or sniff_level(body), host=host, app=app)


def _rfc5424(ctx: _Ctx, rest: str, level: str) -> LogLine:
    m = _RFC5424.match(rest)
    if m is None:
        raise _Reject("bad_syslog", "RFC 5424 header needs 'VERSION TIMESTAMP HOST APP PROCID MSGID'")
    stamp, host, app, _procid, _msgid = m.groups()
    ts = None
    if stamp != "-":
        try:
            ts = datetime.fromisoformat(stamp)
        except ValueError:
            raise _Reject("bad_syslog", f"RFC 5424 timestamp {stamp!r} is not RFC 3339") from None
        try:
            ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        except OverflowError:
            raise _Reject("bad_timestamp", f"RFC 5424 timestamp {stamp!r} is outside the years 1..9999 in UTC") from None
    body = _skip_structured_data(rest[m.end():]).lstrip("\ufeff")
    if not body.strip():
        raise _Reject("empty", "RFC 5424 line has no message")
    return ctx.line(body, ts=ts, level=level, host=None if host == "-" else host,
                    app=None if app == "-" else app)


def _skip_structured_data(text: str) -> str:
    """The message after RFC 5424 STRUCTURED-DATA (``-`` or ``[id k="v"]...``).

    >>> _skip_structured_data('[ex@1 a="x\\\\]y"][b@2] hello')
    'hello'
    >>> _skip_structured_data("- hi")
    'hi'
    """
    if text.startswith("-"):
        return text[2:] if text.startswith("- ") else text[1:]
    i, n = 0, len(text)
    while i < n and text[i] == "[":
        quoted = False
        i += 1
        while i < n:
            ch = text[i]
            if ch == "\\" and quoted:
                i += 2
                continue
            if ch == '"':
                quoted = not quoted
            elif ch == "]" and not quoted:
                break
            i += 1
        if i >= n:
            raise _Reject("bad_syslog", "RFC 5424 structured data has no closing ']'")
        i += 1
    if i == 0:
        raise _Reject("bad_syslog", f"RFC 5424 structured data must be '-' or '[...]', got {text[:20]!r}")
    return text[i + 1:] if text[i:i + 1] == " " else text[i:]
