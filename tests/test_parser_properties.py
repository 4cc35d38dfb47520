"""Property-based tests: no input makes a parser raise, and what the parsers and the
line-protocol writer produce is always usable (finite values, UTC times, storable tags)."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from oddwatch.core.feedback import Feedback, parse_feedback
from oddwatch.ingest.logs import parse_log, parse_log_message
from oddwatch.ingest.sensors import SensorParser
from oddwatch.ingest.timestamps import TimestampError, parse_timestamp
from oddwatch.ingest.topics import matches, parse_topic
from oddwatch.lineproto import MAX_TAG_CHARS, parse_lines, strip_control, tag_problem, to_line
from oddwatch.records import UTC, IngestError, LogLine, Message, Point, Reading
from oddwatch.settings import LogSettings, SensorSettings, Subscription

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REASONS = {"bad_json", "bad_type", "bad_value", "bad_timestamp", "bad_tag", "non_finite", "ts_future", "ts_past",
           "unknown_topic", "bad_topic", "too_large", "bad_line_protocol", "bad_encoding", "bad_syslog", "empty"}
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies
huge_ints = st.integers(min_value=-(10**400), max_value=10**400)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), huge_ints)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
any_datetimes = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                             timezones=st.one_of(st.none(), offsets))
edge_datetimes = st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z",
                                  "9999-12-31T23:59:59.999999Z", "2026-03-01T12:00:00Z", "2026-02-30T00:00:00Z"])
timestamps = st.one_of(numbers, any_datetimes.map(lambda d: d.isoformat()), edge_datetimes, st.text(max_size=30),
                       st.none(), st.booleans())
json_leaf = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                           max_leaves=20)
readings = st.fixed_dictionaries({"value": st.one_of(numbers, json_values)},
                                 optional={"ts": timestamps, "unit": json_values, "quality": json_values})
weird = st.sampled_from(["\\", " ", ",", "=", '"', "\n", "\r", "\x00", "\t", "#", "/", "+", "é", "\x7f", "\x85"])
names = st.lists(st.one_of(weird, st.text(alphabet="abc-_.", min_size=1, max_size=3)), min_size=0, max_size=6).map("".join)
long_names = st.integers(min_value=200, max_value=400).map(lambda n: "x" * n)
topic_levels = st.one_of(names, long_names)
lp_lines = st.builds(
    lambda m, tags, fields, ts: m + "".join(f",{k}={v}" for k, v in tags) + " "
    + ",".join(f"{k}={v}" for k, v in fields) + ("" if ts is None else f" {ts}"),
    names, st.lists(st.tuples(st.sampled_from(["site", "asset", "sensor", "x"]), names), max_size=3),
    st.lists(st.tuples(names, st.one_of(numbers.map(str), st.sampled_from(["1i", "t", '"s"', "1u", "x"]))),
             max_size=3),
    st.one_of(st.none(), huge_ints, st.integers()),
)
sensor_payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    readings.map(lambda r: json.dumps(r).encode()),
    st.lists(readings, max_size=4).map(lambda r: json.dumps(r).encode()),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: b'{"value":' * n + b"1" + b"}" * n),
    numbers.map(lambda x: str(x).encode()),
    st.lists(lp_lines, min_size=1, max_size=3).map(lambda ls: "\n".join(ls).encode()),
)
syslog_lines = st.builds(
    lambda pri, ts, host, app, body: f"<{pri}>1 {ts} {host or '-'} {app or '-'} - - - {body}",
    st.integers(min_value=0, max_value=300), st.one_of(edge_datetimes, any_datetimes.map(lambda d: d.isoformat())),
    st.text(alphabet="abc\\-", max_size=5), st.text(alphabet="abc\\-", max_size=5), st.text(max_size=20),
)
log_objects = st.fixed_dictionaries({"msg": st.one_of(st.text(max_size=20), json_values)},
                                    optional={"ts": timestamps, "host": json_values, "app": json_values,
                                              "level": json_values})
log_payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    log_objects.map(lambda o: json.dumps(o).encode()),
    st.lists(log_objects, max_size=4).map(lambda o: json.dumps(o).encode()),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.lists(syslog_lines, min_size=1, max_size=3).map(lambda ls: "\n".join(ls).encode()),
    st.text(max_size=100).map(str.encode),
)


def _check_tag(value: str) -> None:
    assert value and tag_problem(value) is None, value
    assert len(value) <= MAX_TAG_CHARS


def _check_error(err: IngestError, stream: str) -> None:
    assert err.reason in REASONS, (err.reason, err.detail)
    assert err.stream == stream and err.detail and err.ts.tzinfo is not None
    assert len(err.payload) <= 260


# ------------------------------------------------------------------ sensors
@PROPS
@given(payload=sensor_payloads, levels=st.lists(topic_levels, min_size=3, max_size=3),
       overrides=st.sampled_from([[], ["site", "asset", "sensor"]]))
def test_sensor_parser_never_raises(payload: bytes, levels: list[str], overrides: list[str]) -> None:
    parser = SensorParser(SensorSettings(max_past_s=1e13, max_future_s=1e13, payload_overrides=overrides,
                                         subscriptions=[Subscription("plant/#", "_/site/asset/sensor")]))
    out = parser.parse(Message("plant/" + "/".join(levels), payload, NOW), NOW)
    assert out
    for item in out:
        if isinstance(item, IngestError):
            _check_error(item, "sensor")
            continue
        assert isinstance(item, Reading)
        assert math.isfinite(item.value) and item.ts.utcoffset() == timedelta(0)
        for tag in (item.site, item.asset, item.sensor):
            _check_tag(tag)


@PROPS
@given(raw=timestamps, naive=st.booleans())
def test_parse_timestamp_returns_utc_or_raises_timestamp_error(raw: Any, naive: bool) -> None:
    try:
        ts = parse_timestamp(raw, naive_is_utc=naive)
    except TimestampError as exc:
        assert exc.reason in ("bad_type", "bad_timestamp") and str(exc)
    else:
        assert ts.tzinfo is UTC or ts.utcoffset() == timedelta(0)


@PROPS
@given(topic=st.lists(topic_levels, max_size=6).map("/".join),
       flt=st.lists(st.one_of(st.sampled_from(["+", "#"]), names), min_size=1, max_size=5).map("/".join))
def test_topic_matching_never_raises(topic: str, flt: str) -> None:
    tags = parse_topic(topic, [Subscription(flt, "/".join(["x"] * len(flt.split("/"))))])
    assert (tags is not None) == matches(flt, topic)


# ------------------------------------------------------------------ logs
@PROPS
@given(payload=log_payloads, levels=st.lists(topic_levels, min_size=3, max_size=3),
       overrides=st.sampled_from([[], ["host", "app"]]))
def test_log_parser_never_raises(payload: bytes, levels: list[str], overrides: list[str]) -> None:
    s = LogSettings(max_past_s=1e13, max_future_s=1e13, payload_overrides=overrides)
    out = parse_log(Message("logs/" + "/".join(levels), payload, NOW), s, NOW)
    assert out
    for item in out:
        if isinstance(item, IngestError):
            _check_error(item, "log")
            continue
        assert isinstance(item, LogLine) and item.msg.strip()
        assert item.ts.utcoffset() == timedelta(0)
        for tag in (item.site, item.host, item.app):
            _check_tag(tag)


@PROPS
@given(payload=log_payloads)
def test_log_message_parser_with_defaults_never_raises(payload: bytes) -> None:
    for item in parse_log_message(Message("logs/s/h/a", payload, NOW), site="s", host="h", app="a"):
        assert isinstance(item, (LogLine, IngestError))


# ------------------------------------------------------------------ feedback
@PROPS
@given(payload=st.one_of(st.binary(max_size=100), json_values.map(lambda v: json.dumps(v).encode()),
                         st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n)),
       alert_id=st.one_of(names, st.just("s1/pump/temp:1767225600")))
def test_feedback_parser_never_raises(payload: bytes, alert_id: str) -> None:
    out = parse_feedback(Message(f"oddwatch/feedback/{alert_id}", payload, NOW))
    assert isinstance(out, (Feedback, IngestError))
    if isinstance(out, IngestError):
        assert out.reason in REASONS | {"unknown_topic"}


# ------------------------------------------------------------------ line protocol
field_values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                         st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(max_size=40))


@PROPS
@given(tags=st.dictionaries(names, st.one_of(names, long_names), max_size=4),
       fields=st.dictionaries(names, field_values, min_size=1, max_size=4),
       text=st.text(max_size=20))
def test_to_line_writes_one_line_that_parses_back(tags: dict[str, str], fields: dict[str, Any], text: str) -> None:
    fields = {k: v for k, v in fields.items() if strip_control(k)}
    tags = {k: v for k, v in tags.items() if strip_control(k)}
    assume(len({strip_control(k) for k in tags}) == len(tags))  # keys that differ only in control characters
    point = Point("m", tags, {**fields, "text": text}, NOW)
    line = to_line(point)
    assert "\n" not in line and "\r" not in line
    ((measurement, got_tags, got_fields, ts),) = parse_lines(line)
    assert measurement == "m"
    assert all(tag_problem(v) is None for v in got_tags.values())
    storable = {strip_control(k): strip_control(v) for k, v in tags.items()
                if tag_problem(strip_control(v)) is None and tag_problem(strip_control(k)) is None and strip_control(v)}
    for key, value in storable.items():
        assert got_tags.get(key) == value
    assert got_fields["text"] == text.replace("\n", "\\n").replace("\r", "\\r")


@PROPS
@given(text=st.text(max_size=200))
def test_parse_lines_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_lines(text)
