"""End to end: MQTT (real Mosquitto) -> the sensor dataflow -> InfluxDB (real 1.x) and MQTT alerts.

The flow runs with its real connectors (``MqttSource``, ``InfluxSink``, ``MqttSink``) in a
background thread (:class:`oddwatch.flowrunner.FlowRunner`); inputs come from the plant simulator
(:func:`oddwatch.simulate.run_plant`) and from ``mosquitto_pub``, a client we did not write.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from oddwatch.flowrunner import FlowRunner, TopicCollector, count, mosquitto_pub, wait_for
from oddwatch.records import UTC, utcnow
from oddwatch.simulate import run_plant

pytestmark = pytest.mark.integration

#: The plant run: 8 series x 800 readings (10 per simulated second), faults after the first
#: 400 readings of each series (the calibration warm-up, ``SeriesParams.warmup``, is 300).
N_SERIES = 8
TICKS = 800
RATE = N_SERIES * 10.0
SEED = 2
#: Time is compressed (10 readings per simulated second), so the alert cooldown (event time)
#: is shortened to match, and alerts open on the first reading above the threshold. The
#: default detector window (20 readings averaged in pairs) does not score the simulator's
#: 6-10 sigma one-reading spikes above the threshold (max score ~0.4 against 0.5 on seeds
#: 1-8); a 6-reading window without averaging does.
PLANT_OVERRIDES: dict[str, Any] = {
    "alerts": {"open_after": 1, "cooldown_s": 2.0},
    "series": {"window": 6, "paa": 1},
}


def _ns(ts: datetime) -> int:
    """Epoch nanoseconds, exactly (a float product can land a few ns off a point's time)."""
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def _parse_time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def test_simulated_faults_raise_alerts_in_influx_and_mqtt(services: Any, unique: str) -> None:
    settings = services.settings(**PLANT_OVERRIDES)
    site = unique
    with TopicCollector(settings, [f"{settings.mqtt.alerts_prefix}/{site}/#"]) as alerts_in, FlowRunner(settings) as runner:
        summary = run_plant(
            settings, rate=RATE, duration_s=TICKS * N_SERIES / RATE, seed=SEED, speed=None, rate_limit=5000,
            n_series=N_SERIES, sites=(site,), warmup_frac=0.5, n_faults=5,
        )
        expected = summary["published"]
        assert expected == N_SERIES * TICKS and summary["flushed"]
        q_count = f"SELECT COUNT(score) FROM sensor_score WHERE site = '{site}'"
        assert wait_for(lambda: count(services, q_count) >= expected, 30), (
            f"{count(services, q_count)} of {expected} readings scored")
        runner.stop()  # flushes every sink
        assert count(services, q_count) == expected

        faults = summary["plan"]["faults"]
        opened = services.query(
            f"SELECT alert_id, subject, score, threshold FROM alert WHERE site = '{site}' AND kind = 'open'"
            " AND source = 'sensor'")
        opened_series = [(row["alert_id"].rsplit(":", 1)[0], _parse_time(row["time"])) for row in opened]

        def asset_of(key: str) -> str:
            return key.rsplit("/", 1)[0]

        def detected(fault: dict[str, Any]) -> bool:  # the asset decides: an alert of its asset opens
            start = datetime.fromisoformat(fault["start"]) - timedelta(seconds=30)  # or is opening
            end = datetime.fromisoformat(fault["end"]) + timedelta(seconds=2)
            return any(asset_of(key) == asset_of(fault["series"]) and start <= t <= end for key, t in opened_series)

        by_kind = {f["kind"]: f for f in faults}
        for kind in ("spike", "level_shift"):
            fault = by_kind[kind]
            assert detected(fault), f"{kind} {fault} not detected; alerts opened: {opened_series}"
            _, asset, sensor = fault["series"].split("/")
            start = datetime.fromisoformat(fault["start"])
            end = datetime.fromisoformat(fault["end"]) + timedelta(seconds=2)
            hits = services.query(
                f"SELECT score, threshold FROM sensor_score WHERE site = '{site}' AND asset = '{asset}'"
                f" AND sensor = '{sensor}' AND time >= {_ns(start)} AND time <= {_ns(end)}")
            assert hits, f"no score for {fault}"

        faulted = {asset_of(f["series"]) for f in faults}
        unfaulted_alerts = [(key, t) for key, t in opened_series if asset_of(key) not in faulted]
        assert len(unfaulted_alerts) <= 2, f"alerts on unfaulted series: {unfaulted_alerts}"

        # Every alert row has its JSON message on oddwatch/alerts/<site>/<asset>.
        want = {row["alert_id"] for row in opened}
        assert alerts_in.wait(lambda ms: want <= {json.loads(m.payload)["alert_id"] for m in ms}, 10)
        messages = [(m.topic, json.loads(m.payload)) for m in alerts_in.poll()]
        for topic, body in messages:
            assert topic == f"{settings.mqtt.alerts_prefix}/{site}/{body['subject']}"
            assert body["source"] == "sensor" and body["kind"] in ("open", "close")
        spike = by_kind["spike"]
        assert any(b["kind"] == "open" and asset_of(b["details"]["key"]) == asset_of(spike["series"]) for _, b in messages)


def test_mosquitto_pub_payload_forms_are_scored(services: Any, unique: str) -> None:
    settings = services.settings(sensors={"payload_overrides": ["asset"]})  # off by default
    site = unique
    now = utcnow()
    ns = _ns(now - timedelta(seconds=5)) // 1_000_000 * 1_000_000  # whole ms: Reading.ts holds microseconds
    with FlowRunner(settings) as runner:
        mosquitto_pub(settings, f"plant/{site}/a1/temp", json.dumps(
            {"ts": (now - timedelta(seconds=1)).isoformat(), "value": 1.5, "unit": "degC"}).encode())
        mosquitto_pub(settings, f"plant/{site}/a2/pres", b"2.5")
        mosquitto_pub(settings, f"plant/{site}/a3/flow", json.dumps(
            [{"ts": (now - timedelta(seconds=3)).timestamp(), "value": 3.25},
             {"ts": int((now - timedelta(seconds=2)).timestamp() * 1000), "value": 3.5}]).encode())
        # Line protocol: ``value`` keeps the topic's sensor, other fields become <sensor>.<field>,
        # a tag overrides the topic's asset; two lines in one message.
        mosquitto_pub(settings, f"plant/{site}/a4/power",
                      f"m value=4.5,aux=5.5 {ns}\nm,asset=a5 value=6.5 {ns + 1000}".encode())
        query = f"SELECT value, asset, sensor, detector FROM sensor_score WHERE site = '{site}'"
        assert wait_for(lambda: len(services.query(query)) >= 7, 15), services.query(query)
        runner.stop()
    got = sorted((r["asset"], r["sensor"], r["value"], r["detector"]) for r in services.query(query))
    assert got == [
        ("a1", "temp", 1.5, "ensemble"),
        ("a2", "pres", 2.5, "ensemble"),
        ("a3", "flow", 3.25, "ensemble"),
        ("a3", "flow", 3.5, "ensemble"),
        ("a4", "power", 4.5, "ensemble"),
        ("a4", "power.aux", 5.5, "ensemble"),
        ("a5", "power", 6.5, "ensemble"),
    ]
    times = {r["asset"] + "/" + r["sensor"]: r["time"] for r in services.query(query)}
    # line protocol's own timestamps (ns -> datetime goes through a float: within 1 us)
    assert abs(times["a4/power"] - ns) <= 1000 and abs(times["a5/power"] - (ns + 1000)) <= 1000
    arrival = times["a2/pres"]  # a bare number is stamped on arrival
    assert abs(arrival - _ns(now)) < 30e9


def test_readings_published_while_stopped_are_scored_after_restart(services: Any, unique: str) -> None:
    settings = services.settings()  # the same client id for both runs: one persistent session
    site = unique
    first = FlowRunner(settings).start()  # subscribed once: the broker now keeps the session
    first.stop()
    t0 = utcnow() - timedelta(minutes=1)
    lines = [json.dumps({"ts": (t0 + timedelta(seconds=i)).isoformat(), "value": 20.0 + i % 3})
             for i in range(50)]
    mosquitto_pub(settings, f"plant/{site}/boiler/temp", lines=lines)
    q_count = f"SELECT COUNT(value) FROM sensor_score WHERE site = '{site}'"
    time.sleep(0.3)
    assert count(services, q_count) == 0  # nothing ran meanwhile
    with FlowRunner(settings) as second:
        assert wait_for(lambda: count(services, q_count) >= 50, 15), f"{count(services, q_count)} of 50 scored"
        second.stop()
    assert count(services, q_count) == 50


def test_sigterm_flushes_what_was_scored(services: Any, unique: str, tmp_path: Any) -> None:
    """``oddwatch run sensors`` stopped with SIGTERM (systemd, docker stop) writes the points it
    holds in memory before it exits, even with a long flush interval."""
    import os
    import signal
    import subprocess
    import sys

    from oddwatch.settings import as_dict, to_toml

    settings = services.settings(influx={"flush_interval_s": 60.0, "batch_size": 100000})
    config = tmp_path / "oddwatch.toml"
    config.write_text(to_toml(as_dict(settings, mask=False)))
    env = {**os.environ, "ODDWATCH_CONFIG": str(config)}
    proc = subprocess.Popen([sys.executable, "-m", "oddwatch.cli", "run", "sensors"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait until the source has subscribed
            if "subscribing to" in line:
                break
        mosquitto_pub(settings, f"plant/{unique}/a1/temp", lines=[f"{i}.5" for i in range(40)])
        time.sleep(3)  # scored, but still in the writer's memory (60 s flush interval)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert count(services, f"SELECT count(score) FROM sensor_score WHERE site = '{unique}'") == 40
