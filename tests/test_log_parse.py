"""Tests for oddwatch.ingest.logs: every payload format and every error reason."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from oddwatch.ingest.logs import parse_log_message
from oddwatch.records import UTC, IngestError, LogLine, Message

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
TOPIC = "logs/s1/topic-host/topic-app"


def parse(payload: bytes | str, **kw: object) -> list[LogLine | IngestError]:
    data = payload.encode() if isinstance(payload, str) else payload
    return parse_log_message(Message(TOPIC, data, NOW), site="s1", host="topic-host",
                             app="topic-app", now=NOW, **kw)  # type: ignore[arg-type]


def one_line(payload: bytes | str) -> LogLine:
    (out,) = parse(payload)
    assert isinstance(out, LogLine), out
    return out


def one_error(payload: bytes | str, **kw: object) -> IngestError:
    (out,) = parse(payload, **kw)
    assert isinstance(out, IngestError), out
    return out


def test_raw_line_uses_topic_and_arrival_time() -> None:
    line = one_line("disk almost full on /var")
    assert (line.site, line.host, line.app, line.ts, line.msg) == ("s1", "topic-host", "topic-app", NOW,
                                                                   "disk almost full on /var")
    assert line.topic == TOPIC and line.received == NOW and line.level is None
    assert line.key == "s1/topic-host/topic-app"


def test_raw_line_level_is_sniffed() -> None:
    line = one_line("081109 203530 147 WARN dfs.DataNode: slow block receiver")
    assert line.level == "warning"


def test_multi_line_payload_skips_blank_lines() -> None:
    out = parse("first line\n\n  \r\nsecond line\r\nthird line\n")
    assert [o.msg for o in out if isinstance(o, LogLine)] == ["first line", "second line", "third line"]
    assert len(out) == 3


def test_raw_line_starting_with_bracket_is_not_json() -> None:
    line = one_line("[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6")
    assert line.msg.startswith("[Sun Dec 04") and line.level == "error"


def test_json_object() -> None:
    line = one_line(json.dumps({"ts": "2026-11-27T09:59:00Z", "msg": "user login", "level": "WARN",
                                "host": "web-1", "app": "auth", "extra": 1}))
    assert (line.ts, line.msg, line.level, line.host, line.app) == (
        datetime(2026, 11, 27, 9, 59, tzinfo=UTC), "user login", "warning", "web-1", "auth")


def test_json_message_key_epoch_ts_and_topic_defaults() -> None:
    line = one_line(json.dumps({"ts": NOW.timestamp() - 5, "message": "hello"}))
    assert line.ts == NOW - timedelta(seconds=5)
    assert (line.host, line.app, line.msg) == ("topic-host", "topic-app", "hello")


def test_json_missing_ts_is_arrival_time() -> None:
    assert one_line('{"msg": "no time"}').ts == NOW


def test_json_array_and_json_lines() -> None:
    out = parse(json.dumps([{"msg": "a"}, {"msg": "b", "host": "h2"}, 3]))
    assert [type(o).__name__ for o in out] == ["LogLine", "LogLine", "IngestError"]
    assert out[1].host == "h2"  # type: ignore[union-attr]
    assert out[2].reason == "bad_type"  # type: ignore[union-attr]
    lines = parse('{"msg": "a"}\n{"msg": "b"}\n{"msg": broken}')
    assert [getattr(o, "msg", None) for o in lines[:2]] == ["a", "b"]
    assert isinstance(lines[2], IngestError) and lines[2].reason == "bad_json"


def test_rfc5424() -> None:
    line = one_line('<165>1 2026-11-27T09:59:30.120Z web-1 nginx 2231 ID47 '
                    '[exampleSDID@32473 iut="3" eventSource="App\\]lication"] \ufeffGET /index 200')
    assert (line.ts, line.host, line.app, line.level, line.msg) == (
        datetime(2026, 11, 27, 9, 59, 30, 120000, tzinfo=UTC), "web-1", "nginx", "notice", "GET /index 200")


def test_rfc5424_nil_values_fall_back_to_topic() -> None:
    line = one_line("<11>1 - - - - - - connection refused")
    assert (line.ts, line.host, line.app, line.level, line.msg) == (
        NOW, "topic-host", "topic-app", "error", "connection refused")


def test_rfc3164_with_year_inference() -> None:
    line = one_line("<38>Nov 27 09:58:01 srv-1 sshd[4242]: Accepted publickey for deploy")
    assert (line.ts, line.host, line.app, line.level, line.msg) == (
        datetime(2026, 11, 27, 9, 58, 1, tzinfo=UTC), "srv-1", "sshd", "info", "Accepted publickey for deploy")
    jan = Message(TOPIC, b"<38>Dec 31 23:59:59 h cron: job", datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC))
    (old,) = parse_log_message(jan, site="s1", host="x", app="y")
    assert isinstance(old, LogLine) and old.ts.year == 2026


def test_rfc3164_without_tag_and_bsd_without_pri() -> None:
    line = one_line("<13>Nov 27 09:58:01 sw-1 link flapped")
    assert (line.host, line.app, line.msg) == ("sw-1", "topic-app", "link flapped")  # no "TAG:"
    line = one_line("Nov 27 09:58:01 combo sshd(pam_unix)[19939]: authentication failure")
    assert (line.host, line.app, line.level) == ("combo", "sshd(pam_unix)", None)
    assert line.msg == "authentication failure"


def test_too_large() -> None:
    err = one_error("x" * 100, max_payload_bytes=10)
    assert err.reason == "too_large" and "100 bytes" in err.detail and err.stream == "log"
    assert err.topic == TOPIC and err.ts == NOW and err.payload.startswith("xxx")


def test_bad_encoding() -> None:
    err = one_error(b"caf\xe9 ok")
    assert err.reason == "bad_encoding" and "UTF-8" in err.detail


@pytest.mark.parametrize("payload", ["", "   \n\n ", "[]", '{"msg": "  "}'])
def test_empty(payload: str) -> None:
    assert one_error(payload).reason == "empty"


@pytest.mark.parametrize("payload", ['{"msg": "x"', '{"level": "info"}', "[" * 50000, '{"msg": ' + "[" * 50000])
def test_bad_json(payload: str) -> None:
    err = one_error(payload)
    assert err.reason == "bad_json" and err.payload[:1] in "{[" and len(err.payload) < 300


@pytest.mark.parametrize("payload", ['{"msg": 5}', '{"msg": "x", "ts": "yesterday"}', '{"msg": "x", "ts": true}'])
def test_bad_type(payload: str) -> None:
    assert one_error(payload).reason == "bad_type"


@pytest.mark.parametrize("payload", [
    "<999>Nov 27 09:58:01 h app: x",
    "<13>garbage without header",
    "<13>1 not-a-time h app - - - msg",
    "<13>1 2026-11-27T09:59:30Z h app - - [unterminated msg",
    "<13>1 2026-11-27T09:59:30Z h app - - nosd msg",
    "<13>Foo 27 09:58:01 h app: x",
])
def test_bad_syslog(payload: str) -> None:
    err = one_error(payload)
    assert err.reason == "bad_syslog", err
    assert err.payload == payload


def test_ts_future_and_past() -> None:
    future = (NOW + timedelta(hours=1)).isoformat()
    err = one_error(json.dumps({"ts": future, "msg": "x"}))
    assert err.reason == "ts_future" and "max_future_s" in err.detail
    past = (NOW - timedelta(days=30)).isoformat()
    assert one_error(json.dumps({"ts": past, "msg": "x"})).reason == "ts_past"
    assert one_error("<13>1 2026-11-27T09:00:00Z h a - - - m", max_past_s=60).reason == "ts_past"


def test_errors_and_lines_mixed_in_order() -> None:
    out = parse("ok one\n<999>bad\nok two")
    assert [type(o).__name__ for o in out] == ["LogLine", "IngestError", "LogLine"]


def test_never_raises_on_odd_input() -> None:
    for payload in [b"\x00\x01", b"<", b"<1>", b"{", b"[", b"[1, {", b"\xef\xbb\xbf", b"<13>1 ", b"}{"]:
        out = parse(payload)
        assert all(isinstance(o, (LogLine, IngestError)) for o in out)


def test_json_numeric_severity() -> None:
    assert one_line('{"msg": "x", "level": 2}').level == "critical"


def test_parse_log_with_settings() -> None:
    from oddwatch.ingest.logs import parse_log
    from oddwatch.settings import LogSettings

    settings = LogSettings(max_payload_bytes=100)
    (line,) = parse_log(Message("logs/s2/h1/app1", b"hello", NOW), settings)
    assert isinstance(line, LogLine) and line.key == "s2/h1/app1" and line.ts == NOW
    (err,) = parse_log(Message("logs/s2/h1/app1", b"y" * 200, NOW), settings)
    assert isinstance(err, IngestError) and err.reason == "too_large" and "max_payload_bytes" in err.detail
    (err,) = parse_log(Message("metrics/x", b"hello", NOW), settings)
    assert isinstance(err, IngestError) and err.reason == "unknown_topic" and "metrics/x" in err.detail


def test_fuzz_never_raises() -> None:
    import random

    rng = random.Random(0)
    seeds = [b'<13>1 2026-11-27T09:59:30Z h app 1 ID [a b="c"] msg', b"<38>Nov 27 09:58:01 h sshd[1]: m",
             b'{"ts": 1, "msg": "x", "level": "info"}', b'[{"msg": "a"}]', b"Nov 27 09:58:01 h t: m"]
    alphabet = b'<>[]{}":,\\ \n-01Z9aT\xff\xc3'
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data) + 1)
            if rng.random() < 0.5 and data:
                del data[min(i, len(data) - 1)]
            else:
                data.insert(i, rng.choice(alphabet))
        out = parse(bytes(data))
        assert out and all(isinstance(o, (LogLine, IngestError)) for o in out)
