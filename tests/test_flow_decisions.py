"""The sensor flow decides exactly what :class:`~oddwatch.core.series.SeriesState` decides.

The NAB samples in tests/data go through the whole flow (parse, key, score, points, budget)
as JSON, one reading per message, and as line protocol, 100 readings per message; every
``sensor_score`` point must carry the score, threshold and alert state the series pipeline
computes for the same values (``alert_open`` carries the hysteresis' decision).
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.sensors import build_flow
from oddwatch.core.series import SeriesState
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


def _expected(series: dict[str, list[tuple[datetime, float]]],
              settings: Settings) -> tuple[dict[tuple[str, datetime], Decision], list[tuple[str, datetime]]]:
    want, opens = {}, []
    for name, rows in series.items():
        st = SeriesState("nab", name, "value", settings.series, settings.alerts)
        for ts, v in rows:
            o = st.step(Reading("nab", name, "value", ts, v))
            want[(name, ts)] = (o.score, o.threshold, o.score >= o.threshold, st.tracker.is_open)
            if o.is_anomaly:
                opens.append((name, ts))
    return want, sorted(opens)


def _json_messages(series: dict[str, list[tuple[datetime, float]]]) -> list[Message]:
    msgs = []
    for i in range(max(len(rows) for rows in series.values())):
        for name, rows in series.items():
            if i < len(rows):
                ts, v = rows[i]
                msgs.append(Message(f"plant/nab/{name}/value", json.dumps({"ts": ts.isoformat(), "value": v}).encode(), ts))
    return msgs


def _lineproto_messages(series: dict[str, list[tuple[datetime, float]]]) -> list[Message]:
    msgs = []
    for name, rows in series.items():
        for i in range(0, len(rows), 100):
            chunk = rows[i:i + 100]
            body = "\n".join(f"m value={v!r} {timestamp_ns(ts)}" for ts, v in chunk)
            msgs.append(Message(f"plant/nab/{name}/value", body.encode(), chunk[-1][0]))
    return msgs


@pytest.mark.parametrize("encoding", ["json", "lineproto"])
def test_flow_scores_like_the_series_pipeline(encoding: str) -> None:
    settings = Settings()
    settings.sensors.max_past_s = 1e12  # NAB timestamps are from 2014
    series = _series()
    msgs = _json_messages(series) if encoding == "json" else _lineproto_messages(series)
    points: list[Point] = []
    flow = build_flow(settings, source=TestingSource(msgs, batch_size=500), influx_sink=TestingSink(points),
                      mqtt_sink=TestingSink([]))
    run_main(flow, epoch_interval=timedelta(milliseconds=20))

    want, want_opens = _expected(series, settings)
    got = {(p.tags["asset"], p.ts): (p.fields["score"], p.fields["threshold"], p.fields["is_anomaly"],
                                     p.fields["alert_open"]) for p in points if p.measurement == "sensor_score"}
    assert len(got) == len(want) == sum(len(r) for r in series.values())
    assert got == want
    opened = sorted((p.tags["subject"], p.ts) for p in points if p.measurement == "alert" and p.tags["kind"] == "open")
    assert opened and want_opens  # both samples hold labelled anomalies
