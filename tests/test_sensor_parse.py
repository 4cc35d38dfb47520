from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from oddwatch.ingest.sensors import SensorParser
from oddwatch.records import UTC, IngestError, Message, Reading
from oddwatch.settings import SensorSettings, Subscription

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOPIC = "plant/s1/pump1/temp"


def parse(payload: bytes | str, topic: str = TOPIC, **settings: object) -> list[Reading | IngestError]:
    data = payload.encode() if isinstance(payload, str) else payload
    return SensorParser(SensorSettings(**settings)).parse(Message(topic, data, NOW), NOW)  # type: ignore[arg-type]


def one(payload: bytes | str, **kw: object) -> Reading | IngestError:
    (item,) = parse(payload, **kw)
    return item


@pytest.mark.parametrize(
    ("payload", "ts"),
    [
        ('{"ts": "2026-03-01T11:59:00Z", "value": 1.5}', datetime(2026, 3, 1, 11, 59, tzinfo=UTC)),
        ('{"ts": 1772366340, "value": 1.5}', datetime(2026, 3, 1, 11, 59, tzinfo=UTC)),
        ('{"ts": 1772366340000, "value": 1.5}', datetime(2026, 3, 1, 11, 59, tzinfo=UTC)),
        ('{"value": 1.5}', NOW),
        ("1.5", NOW),
        ("temp value=1.5 1772366340000000000", datetime(2026, 3, 1, 11, 59, tzinfo=UTC)),
    ],
)
def test_accepted_payloads(payload: str, ts: datetime) -> None:
    r = one(payload)
    assert isinstance(r, Reading)
    assert (r.site, r.asset, r.sensor, r.value, r.ts) == ("s1", "pump1", "temp", 1.5, ts)


def test_json_unit_quality_and_list() -> None:
    items = parse('[{"value": 1, "unit": "C", "quality": "good"}, {"value": 2}]')
    assert [r.value for r in items if isinstance(r, Reading)] == [1.0, 2.0]
    assert items[0].unit == "C" and items[0].quality == "good"  # type: ignore[union-attr]


def test_line_protocol_fields_and_tag_override() -> None:
    items = parse("m,asset=pump9 value=1,rpm=1200i\nm value=2", payload_overrides=["asset"])
    got = [(r.asset, r.sensor, r.value) for r in items if isinstance(r, Reading)]
    assert got == [("pump9", "temp", 1.0), ("pump9", "temp.rpm", 1200.0), ("pump1", "temp", 2.0)]


def test_line_protocol_tags_do_not_override_the_topic_by_default() -> None:
    items = parse("m,site=s9,asset=pump9,sensor=x value=1")
    assert [(r.site, r.asset, r.sensor) for r in items if isinstance(r, Reading)] == [("s1", "pump1", "temp")]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("{not json", "bad_json"),
        ('{"value": NaN}', "non_finite"),
        ('{"value": Infinity}', "non_finite"),
        ("inf", "non_finite"),
        ('{"value": "12"}', "bad_type"),
        ('{"value": true}', "bad_type"),
        ('{"ts": "yesterday", "value": 1}', "bad_type"),
        ('{"ts": "2026-03-01T12:00:00", "value": 1}', "bad_type"),
        ('{"temp": 1}', "bad_type"),
        ('{"ts": "2030-01-01T00:00:00Z", "value": 1}', "ts_future"),
        ('{"ts": "2020-01-01T00:00:00Z", "value": 1}', "ts_past"),
        ("", "empty"),
        (b"\xff\xfe", "bad_encoding"),
        ("hello world", "bad_line_protocol"),
        ("x" * 70000, "too_large"),
    ],
)
def test_rejected_payloads(payload: str | bytes, reason: str) -> None:
    err = one(payload)
    assert isinstance(err, IngestError)
    assert err.reason == reason, err.detail
    assert err.stream == "sensor" and err.step == "parse_reading" and err.topic == TOPIC
    assert len(err.payload) <= 260


def test_unknown_topic_and_empty_level() -> None:
    err = one("1", topic="factory/a/b")
    assert isinstance(err, IngestError) and err.reason == "unknown_topic"
    assert "factory/a/b" in err.detail
    err = one("1", topic="plant/s1//temp")
    assert isinstance(err, IngestError) and err.reason == "unknown_topic" and "asset" in err.detail


def test_one_bad_item_does_not_drop_the_good_ones() -> None:
    items = parse('[{"value": 1}, {"value": null}, {"value": 3}]')
    assert [type(i).__name__ for i in items] == ["Reading", "IngestError", "Reading"]


def test_custom_topic_parsing() -> None:
    subs = [Subscription(topic="factory/+/line/+/+", tags="_/site/_/asset/sensor")]
    r = one("2", topic="factory/berlin/line/press7/force", subscriptions=subs)
    assert isinstance(r, Reading) and (r.site, r.asset, r.sensor) == ("berlin", "press7", "force")


def test_limits_come_from_settings() -> None:
    ts = (NOW - timedelta(days=30)).isoformat()
    assert isinstance(one(f'{{"ts": "{ts}", "value": 1}}', max_past_s=90 * 86400.0), Reading)
