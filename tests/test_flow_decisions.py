"""The sensor flow decides exactly what :class:`~oddwatch.core.asset_sensors.AssetSensorsState` decides.

The NAB samples in tests/data go through the whole flow (parse, key, score, points, budget)
as JSON, one reading per message, and as line protocol, 100 readings per message, each file
as an asset of its own and both files as the two sensors of one asset; every
``sensor_score`` point must carry the score, threshold and alert state the asset pipeline
computes for the same values (``alert_open`` carries the asset's decision), and the asset
alerts must open at the same times.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.sensors import build_flow
from oddwatch.core.asset_sensors import AssetSensorsState
from oddwatch.lineproto import timestamp_ns
from oddwatch.records import UTC, Message, Point, Reading
from oddwatch.settings import Settings

NAB = Path(__file__).parent / "data" / "nab" / "data"
FILES = {"jumpsup": NAB / "artificialWithAnomaly" / "art_daily_jumpsup.csv",
         "rogue": NAB / "realKnownCause" / "rogue_agent_key_hold.csv"}


def _series() -> dict[str, list[tuple[datetime, float]]]:
    out = {}
    for name, path in FILES.items():
        with path.open() as f:
            out[name] = [(datetime.fromisoformat(r["timestamp"]).replace(tzinfo=UTC), float(r["value"]))
                         for r in csv.DictReader(f)]
    return out


Decision = tuple[float, float, bool, bool]


def _where(name: str, one_asset: bool) -> tuple[str, str]:
    """(asset, sensor) of a file: an asset of its own, or a sensor of the one asset ``both``."""
    return ("both", name) if one_asset else (name, "value")


def _expected(series: dict[str, list[tuple[datetime, float]]], settings: Settings,
              one_asset: bool) -> tuple[dict[tuple[str, str, datetime], Decision], list[str]]:
    """Decisions of the asset pipeline, fed in the order the flow sees each asset's readings."""
    want, opens = {}, []
    states: dict[str, AssetSensorsState] = {}
    for i in range(max(len(rows) for rows in series.values())):
        for name, rows in series.items():
            if i >= len(rows):
                continue
            ts, v = rows[i]
            asset, sensor = _where(name, one_asset)
            st = states.setdefault(asset, AssetSensorsState("nab", asset, settings.series, settings.alerts))
            o = st.step(Reading("nab", asset, sensor, ts, v))
            s = o.series
            want[(asset, sensor, ts)] = (s.score, s.threshold, s.score >= s.threshold, st.is_open)
            if o.alert is not None and o.alert.kind == "open":
                opens.append(o.alert.alert_id)
    return want, sorted(opens)


def _json_messages(series: dict[str, list[tuple[datetime, float]]], one_asset: bool) -> list[Message]:
    msgs = []
    for i in range(max(len(rows) for rows in series.values())):
        for name, rows in series.items():
            if i < len(rows):
                ts, v = rows[i]
                asset, sensor = _where(name, one_asset)
                msgs.append(Message(f"plant/nab/{asset}/{sensor}",
                                    json.dumps({"ts": ts.isoformat(), "value": v}).encode(), ts))
    return msgs


def _lineproto_messages(series: dict[str, list[tuple[datetime, float]]]) -> list[Message]:
    msgs = []
    for name, rows in series.items():
        for i in range(0, len(rows), 100):
            chunk = rows[i:i + 100]
            body = "\n".join(f"m value={v!r} {timestamp_ns(ts)}" for ts, v in chunk)
            msgs.append(Message(f"plant/nab/{name}/value", body.encode(), chunk[-1][0]))
    return msgs


@pytest.mark.parametrize(("encoding", "one_asset"), [("json", False), ("lineproto", False), ("json", True)])
def test_flow_scores_like_the_asset_pipeline(encoding: str, one_asset: bool) -> None:
    settings = Settings()
    settings.sensors.max_past_s = 1e12  # NAB timestamps are from 2014
    series = _series()
    msgs = _json_messages(series, one_asset) if encoding == "json" else _lineproto_messages(series)
    points: list[Point] = []
    flow = build_flow(settings, source=TestingSource(msgs, batch_size=500), influx_sink=TestingSink(points),
                      mqtt_sink=TestingSink([]))
    run_main(flow, epoch_interval=timedelta(milliseconds=20))

    want, want_opens = _expected(series, settings, one_asset)
    got = {(p.tags["asset"], p.tags["sensor"], p.ts): (p.fields["score"], p.fields["threshold"],
                                                       p.fields["is_anomaly"], p.fields["alert_open"])
           for p in points if p.measurement == "sensor_score"}
    assert len(got) == len(want) == sum(len(r) for r in series.values())
    assert got == want
    opened = sorted({str(p.fields["alert_id"]) for p in points if p.measurement == "alert" and p.tags["kind"] == "open"})
    assert opened and opened == want_opens
