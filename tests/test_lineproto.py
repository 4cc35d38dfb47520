"""Line protocol writer and parser: escaping, types, errors, round trips."""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from oddwatch.lineproto import parse_lines, strip_control, timestamp_ns, to_line
from oddwatch.records import Point

TS = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
TS_NS = 1714979289123456000


def _point(measurement: str = "m", tags: dict | None = None, fields: dict | None = None) -> Point:
    return Point(measurement, tags or {}, fields if fields is not None else {"v": 1.0}, TS)


@pytest.mark.parametrize(
    ("point", "line"),
    [
        (_point(), f"m v=1.0 {TS_NS}"),
        (_point(fields={"v": 2}), f"m v=2i {TS_NS}"),
        (_point(fields={"v": 0.1 + 0.2}), f"m v=0.30000000000000004 {TS_NS}"),
        (_point(fields={"v": 1e300}), f"m v=1e+300 {TS_NS}"),
        (_point(fields={"a": True, "b": False}), f"m a=true,b=false {TS_NS}"),
        (_point(fields={"s": 'a "b" \\ c'}), f'm s="a \\"b\\" \\\\ c" {TS_NS}'),
        (_point(fields={"s": "line1\nline2\r"}), f'm s="line1\\nline2\\r" {TS_NS}'),
        (_point("cpu load,x"), f"cpu\\ load\\,x v=1.0 {TS_NS}"),
        (_point("a=b"), f"a=b v=1.0 {TS_NS}"),
        (_point(tags={"b": "2", "a": "x y", "c": ""}), f"m,a=x\\ y,b=2 v=1.0 {TS_NS}"),
        (_point(tags={"k,=": "v,= "}), f"m,k\\,\\==v\\,\\=\\  v=1.0 {TS_NS}"),
        (_point(tags={"path": "C:\\dir\\"}), f"m,path=C:\\dir/ v=1.0 {TS_NS}"),
        (_point(tags={"path": "a\\ b\\\\c"}), f"m,path=a/\\ b\\\\c v=1.0 {TS_NS}"),
        (_point(tags={"t": "a\nb\x00c\td"}), f"m,t=abcd v=1.0 {TS_NS}"),
        (_point(tags={"t": "\n"}), f"m v=1.0 {TS_NS}"),
        (_point(tags={"t": "x" * 300}), f"m,t={'x' * 256} v=1.0 {TS_NS}"),
        (_point(fields={"f k": 1.5}), f"m f\\ k=1.5 {TS_NS}"),
    ],
)
def test_to_line(point: Point, line: str) -> None:
    assert to_line(point) == line


def test_floats_stay_floats_and_ints_get_suffix() -> None:
    line = to_line(_point(fields={"score": 1.0, "count": 1, "zero": 0.0}))
    assert "score=1.0," in line and "count=1i," in line and "zero=0.0 " in line


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -math.inf])
def test_non_finite_raises_naming_field(bad: float) -> None:
    with pytest.raises(ValueError, match=r"'sensor_score'.*'score'.*not finite"):
        to_line(_point("sensor_score", fields={"score": bad}))


def test_no_fields_raises() -> None:
    with pytest.raises(ValueError, match="'alert' has no fields"):
        to_line(_point("alert", fields={}))


@pytest.mark.parametrize(
    "point",
    [
        _point(""),
        _point("#comment"),
        _point(fields={"v": 2**63}),
        _point(fields={"v": [1]}),
        _point(fields={"": 1.0}),
        _point(tags={"": "x"}),
        Point("m", {}, {"v": 1.0}, datetime(2024, 1, 1)),
    ],
)
def test_invalid_points_raise(point: Point) -> None:
    with pytest.raises(ValueError, match="line protocol"):
        to_line(point)


def test_timestamp_ns_is_exact() -> None:
    assert timestamp_ns(TS) == TS_NS
    assert timestamp_ns(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)) == -1_000_000_000
    other = timezone(timedelta(hours=2))
    assert timestamp_ns(TS.astimezone(other)) == TS_NS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("m v=1", [("m", {}, {"v": 1.0}, None)]),
        ("m v=1i,u=2u,b=T,c=false,f=-1.5e3 123", [("m", {}, {"v": 1, "u": 2, "b": True, "c": False, "f": -1500.0}, 123)]),
        ('m s="a,b c=d" -5', [("m", {}, {"s": "a,b c=d"}, -5)]),
        ('m s="x\\"y\\\\z\\n"', [("m", {}, {"s": 'x"y\\z\\n'}, None)]),
        ("m,a=1,b=x\\ y v=.5  7  ", [("m", {"a": "1", "b": "x y"}, {"v": 0.5}, 7)]),
        ("# comment\n\n  m v=1\r\nn v=2\n", [("m", {}, {"v": 1.0}, None), ("n", {}, {"v": 2.0}, None)]),
        ('m s="multi\nline" 1', [("m", {}, {"s": "multi\nline"}, 1)]),
        ("m\\,x\\ y,t\\=k=v\\=w f\\,k=1", [("m,x y", {"t=k": "v=w"}, {"f,k": 1.0}, None)]),
        ("m,p=C:\\dir v=1", [("m", {"p": "C:\\dir"}, {"v": 1.0}, None)]),
    ],
)
def test_parse_lines(text: str, expected: list) -> None:
    assert parse_lines(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("m", r"no fields at line 1 column 2"),
        ("m ", r"no fields"),
        ("m,t v=1", r"expected '=' after tag key 't'"),
        ("m,t= v=1", r"missing value for tag 't'"),
        ("m,t=a=b v=1", r"unescaped '='"),
        ("m v=", r"missing value for field 'v'"),
        ("m v=1x", r"invalid value '1x' for field 'v'"),
        ('m v="open', r"unterminated string .* column 5"),
        ("m v=1 12ab", r"invalid timestamp '12ab'"),
        ("m v=1 1 2", r"unexpected '2'"),
        ("m v=9223372036854775808i", r"out of int64 range"),
        ("ok v=1\nbad v=nope", r"line 2 column 7 \(offset 13\)"),
        (",t=a v=1", r"empty measurement"),
        ("m v=1,", r"empty field key"),
    ],
)
def test_parse_errors_name_the_position(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_lines(text)


def _random_text(rng: random.Random) -> str:
    alphabet = 'ab ,="\\\n\rxé漢\t'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))


def _expected_string(value: str) -> str:
    """What survives a round trip: raw newlines come back as backslash escapes."""
    return value.replace("\n", "\\n").replace("\r", "\\r")


def _expected_name(value: str, special: str = ",= ") -> str:
    """What a name survives as: no control characters, ``/`` for an unstorable backslash."""
    return re.sub(rf"\\(?=[{special}]|$)", "/", strip_control(value))


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_random_points(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        tags = {_random_text(rng): _random_text(rng) for _ in range(rng.randint(0, 3))}
        tags = {k: v for k, v in tags.items() if strip_control(k) and strip_control(v)}
        fields: dict = {}
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(["float", "int", "bool", "str"])
            value = {
                "float": lambda: rng.uniform(-1e6, 1e6) if rng.random() < 0.8 else float(rng.randint(-5, 5)),
                "int": lambda: rng.randint(-(2**63), 2**63 - 1),
                "bool": lambda: rng.random() < 0.5,
                "str": lambda: _random_text(rng),
            }[kind]()
            key = _random_text(rng)
            if strip_control(key):
                fields[key] = value
        if not fields or strip_control(measurement := _random_text(rng)).startswith("#") or not strip_control(measurement):
            continue
        if len({_expected_name(k) for k in tags}) < len(tags) or len({_expected_name(k) for k in fields}) < len(fields):
            continue  # keys that differ only by control characters collide
        point = Point(measurement, tags, fields, TS + timedelta(microseconds=rng.randint(0, 10**9)))
        ((got_measurement, got_tags, got_fields, ts),) = parse_lines(to_line(point))
        assert got_measurement == _expected_name(point.measurement, ", ")
        assert got_tags == {_expected_name(k): _expected_name(v) for k, v in tags.items()}
        assert got_fields == {
            _expected_name(k): _expected_string(v) if isinstance(v, str) else v for k, v in fields.items()
        }
        for key, value in fields.items():
            assert type(got_fields[_expected_name(key)]) is type(value)
        assert ts == timestamp_ns(point.ts)


def test_round_trip_many_lines() -> None:
    points = [_point(f"m{i}", {"host": f"h {i}"}, {"v": float(i), "n": i, "s": f"x{i}"}) for i in range(100)]
    parsed = parse_lines("\n".join(to_line(p) for p in points))
    assert [(m, t, f) for m, t, f, _ in parsed] == [(p.measurement, p.tags, p.fields) for p in points]
    assert all(isinstance(f["v"], float) for _, _, f, _ in parsed)
