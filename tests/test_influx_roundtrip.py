"""What oddwatch writes is what InfluxDB returns: tags and string fields with the characters
line protocol escapes, against the real InfluxDB 1.x of the ``services`` fixture. A tag value
InfluxDB cannot store as written is refused by the parsers (``bad_tag``) and, written anyway,
does not cost the rest of the batch."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oddwatch.ingest.sensors import SensorParser
from oddwatch.lineproto import MAX_TAG_CHARS, strip_control, tag_problem, to_line
from oddwatch.records import UTC, IngestError, Message, Point, Reading
from oddwatch.settings import SensorSettings

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 1, tzinfo=UTC)

TAG_VALUES = [
    "plain", "back\\slash", "two\\\\back", "\\lead", "quote\"d", "it's", "com,ma", "eq=ual", "sp ace",
    "all , = \" \\x", "é漢字", "tab\there", "new\nline", "nul\x00x", "x" * MAX_TAG_CHARS,
]
UNSTORABLE_TAGS = ["trail\\", "back\\ space", "back\\,comma", "back\\=eq", "x" * (MAX_TAG_CHARS + 1)]
STRINGS = [
    "plain", "back\\slash", "trailing\\", "\\\\", 'quo"te', '\\"', "com,ma", "eq=ual", "sp ace", "nul\x00x",
    "tab\tx", "é漢字", "line1\nline2", "cr\rx", "x" * 60_000, "", "a\\nb",
]


def _write(services: Any, lines: list[str]) -> int:
    req = urllib.request.Request(f"{services.influx_url}/write?db={services.database}",
                                 data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def _point(measurement: str, i: int, tags: dict[str, str], fields: dict[str, Any]) -> Point:
    return Point(measurement, tags, {"i": i, **fields}, T0 + timedelta(seconds=i))


def test_tag_values_come_back_as_written(services: Any, unique: str) -> None:
    points = [_point(unique, i, {"t": v}, {}) for i, v in enumerate(TAG_VALUES)]
    assert _write(services, [to_line(p) for p in points]) == 204
    rows = services.query(f'SELECT "i", "t" FROM "{unique}"')
    got = {row["i"]: row["t"] for row in rows}
    assert got == {i: strip_control(v) for i, v in enumerate(TAG_VALUES)}


def test_string_fields_come_back_as_written(services: Any, unique: str) -> None:
    points = [_point(unique, i, {}, {"s": v}) for i, v in enumerate(STRINGS)]
    assert _write(services, [to_line(p) for p in points]) == 204
    got = {row["i"]: row["s"] for row in services.query(f'SELECT "i", "s" FROM "{unique}"')}
    # raw newlines cannot travel in line protocol: they come back as backslash-n (lineproto docs)
    assert got == {i: v.replace("\n", "\\n").replace("\r", "\\r") for i, v in enumerate(STRINGS)}


def test_unstorable_tags_are_ingest_errors_and_never_fail_a_batch(services: Any, unique: str) -> None:
    parser = SensorParser(SensorSettings())
    for value in UNSTORABLE_TAGS:
        assert tag_problem(value) is not None
        (err,) = parser.parse(Message(f"plant/s1/{value}/temp", b"1.0", T0), T0)
        assert isinstance(err, IngestError) and err.reason == "bad_tag", err
        assert "asset" in err.detail
    points = [_point(unique, i, {"t": v}, {}) for i, v in enumerate([*UNSTORABLE_TAGS, "ok"])]
    assert _write(services, [to_line(p) for p in points]) == 204  # the writer never sends a line InfluxDB rejects
    rows = services.query(f'SELECT "i", "t" FROM "{unique}"')
    assert len(rows) == len(points) and {"i": len(UNSTORABLE_TAGS), "t": "ok"}.items() <= rows[-1].items()


def test_readings_from_hostile_topics_round_trip(services: Any, unique: str) -> None:
    """A topic level with escapable characters reaches InfluxDB as the same tag."""
    parser = SensorParser(SensorSettings())
    assets = ["pump 1", "pump,2", "p=3", "C:\\dir\\x", 'q"uote', "tab\tbed"]
    points = []
    for i, asset in enumerate(assets):
        (reading,) = parser.parse(Message(f"plant/{unique}/{asset}/temp", b"1.5", T0), T0)
        assert isinstance(reading, Reading)
        points.append(_point("sensor_roundtrip", i, {"site": reading.site, "asset": reading.asset}, {}))
    assert _write(services, [to_line(p) for p in points]) == 204
    rows = services.query(f"SELECT \"i\", \"asset\" FROM sensor_roundtrip WHERE site = '{unique}'")
    assert {row["i"]: row["asset"] for row in rows} == {i: strip_control(a) for i, a in enumerate(assets)}


_text = st.text(alphabet=st.sampled_from(list('ab\\ ,="\'\n\x00é')), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tag=_text, text=_text)
def test_any_storable_text_round_trips(services: Any, tag: str, text: str) -> None:
    measurement = f"rt_{abs(hash((tag, text))) % 10**12}"
    clean = strip_control(tag)
    tags = {"t": tag} if clean and tag_problem(clean) is None else {}
    assert _write(services, [to_line(_point(measurement, 1, tags, {"s": text}))]) == 204
    (row,) = services.query(f'SELECT * FROM "{measurement}"')
    assert row["s"] == text.replace("\n", "\\n")
    assert row.get("t") == (clean if tags else None)
