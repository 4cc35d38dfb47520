"""End to end: the correlated-fault simulation over real Mosquitto -> the sensor, log and
incidents dataflows -> InfluxDB (real 1.x) incidents and quality, and MQTT incident messages.

A plant asset's temperature step and its PLC's error lines (mapped to the asset by an
``[[assets.map]]`` rule), and a switch's error lines and temperature climb (same name: joined
by convention) must each land in one incident; unrelated faults on other assets, at the same
time, must not join them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from bytewax.dataflow import Dataflow

from oddwatch import simulate
from oddwatch.connectors.mqtt import MqttSource
from oddwatch.evaluation.incidents import incident_rows, score_incidents
from oddwatch.evaluation.quality import quality_status
from oddwatch.flowrunner import FlowRunner, TopicCollector, count, mosquitto_pub, wait_for
from oddwatch.records import utcnow
from oddwatch.settings import Settings
from simulators.correlated import CorrelatedSimulation

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DURATION_S = 3600.0
SEED = 3


def _logs(settings: Settings, source: MqttSource) -> Dataflow:
    from flows.logs import build_flow

    return build_flow(settings, source=source, idle_check_s=30.0)


def _incidents(settings: Settings, source: MqttSource) -> Dataflow:
    from flows.incidents import build_flow

    return build_flow(settings, source=source)


def test_correlated_faults_land_in_one_incident_each(services: Any, unique: str) -> None:
    site = unique
    start = utcnow().replace(second=0, microsecond=0) - timedelta(seconds=DURATION_S + 120)
    plan = CorrelatedSimulation(seed=SEED, duration_s=DURATION_S, start=start, site=site)
    settings = services.settings(
        series={"warmup": 200},
        log_detector={"model": "hashing", "window_mode": "tumbling", "window_by": "time", "window_size_s": 20.0,
                      "warmup": 30},
        assets={"map": plan.asset_rules},
        alerts={"budget_counts": "incidents"},
        incidents={"join_s": 300.0},
    )
    feedback = settings.mqtt.feedback_topic
    with TopicCollector(settings, [f"oddwatch/incidents/{site}/#", f"oddwatch/quality/{site}/#"]) as out, \
            FlowRunner(settings, _incidents, topics=[f"oddwatch/alerts/{site}/#", feedback], flow="incidents") as inc, \
            FlowRunner(settings, topics=[f"plant/{site}/+/+"], flow="sensors") as sensors, \
            FlowRunner(settings, _logs, topics=[f"logs/{site}/+/+"], flow="logs") as logs:
        run = simulate.run_correlated(settings, duration_s=DURATION_S, seed=SEED, speed=None, start=start,
                                      site=site, rate_limit=4000)
        readings = sum(1 for x in plan if hasattr(x, "value"))
        scored = f"SELECT count(score) FROM sensor_score WHERE site = '{site}'"
        assert wait_for(lambda: count(services, scored) >= readings, 120), (count(services, scored), readings)
        windows = f"SELECT count(novelty) FROM log_window WHERE site = '{site}'"
        seen: list[int] = []
        assert wait_for(lambda: seen.append(count(services, windows)) or (len(seen) > 3 and seen[-1] == seen[-4] > 0),
                        120, interval=0.5)
        rows_q = f"SELECT count(alerts) FROM incident WHERE site = '{site}'"
        assert wait_for(lambda: count(services, rows_q) > 0, 30)
        alerts = services.query(f"SELECT alert_id FROM alert WHERE site = '{site}' AND kind = 'open'")
        # an operator confirms the plant scenario's sensor alert and reports an incident nobody was alerted to
        sc = plan.scenarios[0]
        sensor_alert = next(str(a["alert_id"]) for a in alerts if str(a["alert_id"]).startswith(sc.sensor_series + ":"))
        mosquitto_pub(settings, f"oddwatch/feedback/{sensor_alert}", b"confirmed")
        missed = f"{site}/pump-1/flow:{int((start + timedelta(seconds=100)).timestamp())}"
        mosquitto_pub(settings, f"oddwatch/feedback/{missed}", b'{"verdict": "missed", "user": "ana"}')
        quality_q = f"SELECT count(alerts) FROM quality WHERE site = '{site}' AND missed > 0"
        assert wait_for(lambda: count(services, quality_q) > 0, 20)
        for runner in (sensors, logs, inc):
            runner.stop()
        messages = out.poll()
    assert run["published"] == len(list(plan))

    rows = incident_rows(services, site, start - timedelta(hours=1))
    score = score_incidents(plan.as_dict(), rows, grace_s=120.0)
    assert (score["scenarios"], score["detected"], score["merged"], score["split"]) == (2, 2, 2, 0), score
    assert score["wrongly_merged"] == 0 and score["unrelated_detected"] >= 1, score
    for sc in plan.scenarios:
        row = next(r for r in rows if sc.sensor_series in str(r["sources"]).split())
        asset = sc.asset.split("/")[1]
        assert all(s.split("/")[1] in (asset, "plc-1") for s in str(row["sources"]).split()), row
        assert row["state"] == "closed" and row["alerts"] >= 2
    story = services.query(f"SELECT text, sources FROM incident WHERE site = '{site}' AND asset = "
                           f"'{plan.scenarios[0].asset.split('/')[1]}'")
    both = {plan.scenarios[0].log_source, plan.scenarios[0].sensor_series}
    text = next(str(r["text"]) for r in story if both <= set(str(r["sources"]).split()))
    assert "overcurrent" in text or "overtemperature" in text  # the PLC's new templates
    assert f"sensor {plan.scenarios[0].sensor_series}: " in text and " degC " in text and "(expected " in text
    assert text.split(" | ")[-1].split(" ", 1)[1].startswith("incident closed: all ")
    topics = {m.topic for m in messages}
    assert {f"oddwatch/incidents/{sc.asset}" for sc in plan.scenarios} <= topics
    bodies = [json.loads(m.payload) for m in messages if m.topic == f"oddwatch/incidents/{plan.scenarios[1].asset}"]
    assert bodies[0]["kind"] == "open" and any(b["kind"] == "close" for b in bodies)
    q = services.query(f"SELECT confirmed, precision FROM quality WHERE site = '{site}' AND "
                       f"source = '{plan.scenarios[0].sensor_series}'")
    assert q and q[-1]["confirmed"] == 1 and q[-1]["precision"] == 1.0
    status = quality_status(settings)  # what `oddwatch status` prints under "quality"
    assert status["sources"][plan.scenarios[0].sensor_series]["confirmed"] == 1
    assert status["sources"][f"{site}/pump-1/flow"]["missed"] == 1
