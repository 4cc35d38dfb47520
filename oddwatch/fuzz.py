"""Seeded hostile MQTT messages for the fuzz test and ``scripts/bench_fuzz.py``.

:func:`fuzz_messages` yields messages on sensor and log topics whose payloads are random
bytes, invalid UTF-8, control and lone surrogate characters (raw and as JSON ``\\u`` escapes),
huge and deeply nested JSON, huge lines, and near-valid readings and log lines with one part
broken. No flow may stop on any of them; :func:`good_messages` are the valid ones sent after.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from oddwatch.records import Message

SENSOR_TOPICS = ("plant/fz/p1/temp", "plant/fz/p2/flow", "plant/fz/p\x01/x", "plant/fz/\ufffd/t", "plant/fz")
LOG_TOPICS = ("logs/fz/h1/sshd", "logs/fz/h2/nginx", "logs/fz/h\x7f/app", "logs/fz")
SURROGATES = ("\\ud800", "\\udfff", "\\udc80x", "\\ud83d")  # lone halves, as JSON escapes
CONTROL = "".join(chr(c) for c in (*range(0, 32), 127, 0x85, 0x2028, 0x2029, 0xFEFF, 0x200B))


def _text(rng: random.Random, n: int) -> str:
    """Random text mixing ASCII, control characters, non-BMP characters and JSON escapes."""
    parts = []
    for _ in range(n):
        pick = rng.random()
        if pick < 0.5:
            parts.append(chr(rng.randint(32, 126)))
        elif pick < 0.7:
            parts.append(rng.choice(CONTROL))
        elif pick < 0.85:
            parts.append(chr(rng.choice((rng.randint(0x80, 0xD7FF), rng.randint(0xE000, 0x10FFFF)))))
        else:
            parts.append(rng.choice(SURROGATES))
    return "".join(parts)


def _payload(rng: random.Random, kind: int, stream: str, now: datetime) -> bytes:
    ts = (now - timedelta(seconds=rng.randint(0, 3600))).isoformat()
    if kind == 0:  # random bytes
        return rng.randbytes(rng.randint(0, 200))
    if kind == 1:  # invalid UTF-8 around valid text
        return b"value " + rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")) + b" 1.0"
    if kind == 2:  # control and lone surrogate characters inside JSON strings
        body = _text(rng, rng.randint(1, 60))
        key = "msg" if stream == "log" else rng.choice(("value", "sensor", "asset", "unit"))
        value = '"' + body.replace("\\u", "\x00").replace("\\", "\\\\").replace('"', '\\"').replace("\x00", "\\u") + '"'
        extra = rng.choice(('', ', "host": "h\\ud800"', ', "app": "\\udfff"', ', "level": "\\ud83d"'))
        return ('{"ts": "' + ts + '", "' + key + '": ' + value + extra + "}").encode("utf-8", "surrogatepass")
    if kind == 3:  # raw surrogates and controls encoded with surrogatepass (invalid UTF-8 on the wire)
        return _text(rng, 30).replace("\\u", "").encode("utf-8", "surrogatepass") + "\ud800".encode("utf-8", "surrogatepass")
    if kind == 4:  # huge JSON
        n = rng.choice((1000, 20_000, 200_000))
        return json.dumps({"ts": ts, "msg": "x" * n, "value": 1.0, "pad": list(range(n // 10))}).encode()
    if kind == 5:  # deeply nested JSON
        depth = rng.choice((100, 999, 1500, 100_000))
        inner = b'{"msg": "deep", "value": 1}' if rng.random() < 0.5 else b"1"
        return b'{"a":' * depth + inner + b"}" * depth if rng.random() < 0.5 else b"[" * depth + inner + b"]" * depth
    if kind == 6:  # huge lines, many lines
        if rng.random() < 0.5:
            return ("GET /" + "a" * rng.choice((5000, 70_000, 1_000_000))).encode()
        return "\n".join(_text(rng, 20).replace("\\u", "u") for _ in range(rng.randint(2, 500))).encode("utf-8", "replace")
    if kind == 7:  # wrong JSON types in every field
        value = rng.choice(("null", "true", "[]", "{}", '"1e999"', "1e999", "-0", "NaN", "Infinity", '"\\ud800"',
                            str(2**70), "[1,2]", '{"v": 1}'))
        key = rng.choice(("value", "ts", "msg", "message", "host", "app", "level", "sensor", "severity"))
        return ('{"' + key + '": ' + value + ', "ts": ' + rng.choice((f'"{ts}"', "1e300", "-1", '"x"', "null"))
                + "}").encode()
    if kind == 8:  # syslog and line protocol with broken parts
        return rng.choice((b"<999>Nov 27 09:59:58 h app: x", b"<13>1 - - - - - -", b"<13>Feb 30 25:61:61 h a: m",
                           b"<13>1 2026-13-45T99:99:99Z h a - - [x msg", b"temp value=1 1" + b"9" * 30,
                           b"temp,a=\\ value=\xff", b"x value=nan", b"<13>1 2026-01-01T00:00:00Z \xed\xa0\x80 a - - - m"))
    return _text(rng, rng.randint(0, 100)).encode("utf-8", "surrogatepass")  # kind 9: anything


def fuzz_messages(n: int, *, seed: int = 0, now: datetime) -> Iterator[Message]:
    """*n* hostile messages, a seeded mix of every kind above on sensor and log topics."""
    rng = random.Random(seed)
    for _ in range(n):
        stream = "log" if rng.random() < 0.5 else "sensor"
        topics = LOG_TOPICS if stream == "log" else SENSOR_TOPICS
        topic = rng.choice(topics) if rng.random() < 0.9 else rng.choice(topics) + _text(rng, 3).replace("\\u", "")
        topic = topic.encode("utf-8", "replace").decode()  # MQTT topics are valid UTF-8 on the wire
        yield Message(topic, _payload(rng, rng.randrange(10), stream, now), now)


def good_messages(n: int, *, now: datetime, site: str = "ok") -> tuple[list[Message], list[Message]]:
    """*n* valid readings and *n* valid log lines of *site*, one second apart from *now*, each
    received when stamped (sensor messages, log messages)."""
    stamps = [now + timedelta(seconds=i) for i in range(n)]
    sensors = [Message(f"plant/{site}/p{i % 3}/temp", json.dumps({"ts": t.isoformat(), "value": 20 + i % 5}).encode(), t)
               for i, t in enumerate(stamps)]
    logs = [Message(f"logs/{site}/h{i % 3}/sshd",
                    json.dumps({"ts": t.isoformat(), "msg": f"session opened for user u{i % 7}"}).encode(), t)
            for i, t in enumerate(stamps)]
    return sensors, logs
