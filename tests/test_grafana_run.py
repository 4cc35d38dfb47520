"""Every dashboard query against a real InfluxDB filled by a simulated run of both flows.

The plant and network simulators' output goes through the real sensor and log dataflows
(Bytewax's testing source in, the real InfluxDB and MQTT sinks out), the flows' own health
points are written as a running flow writes them, and then every panel, annotation and
variable query of every dashboard must return rows. A few malformed messages are mixed in, as
a misbehaving device would send them. The alerts both flows publish on MQTT then go through the incidents flow.
Operator actions (feedback) and slow
drifts do not happen in a 40-minute simulation; when the run wrote none, those two
measurements get the hand-written points of ``tests/test_grafana.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from bytewax.testing import TestingSource, run_main

from detectors.embedders import HashingEmbedder
from flows.incidents import build_flow as build_incident_flow
from flows.logs import build_flow as build_log_flow
from flows.sensors import build_flow as build_sensor_flow
from oddwatch.connectors.influx import InfluxQuery, ensure_database
from oddwatch.flowrunner import TopicCollector
from oddwatch.observe import metrics
from oddwatch.records import Message, utcnow
from oddwatch.simulate import log_payload, reading_payload
from simulators.network import NetworkSimulation
from simulators.plant import PlantSimulation
from tests.test_grafana import Query, all_queries, sample_points, substitute, write_points

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DATABASE = "oddwatch_grafana_run"
MINUTES = 40


@pytest.fixture(scope="module")
def run(services: Any) -> Iterator[tuple[InfluxQuery, dict[str, str | list[str]]]]:
    settings = services.settings(
        influx={"database": DATABASE},
        sensors={"max_past_s": 86400.0},
        logs={"max_past_s": 86400.0},
        alerts={"cooldown_s": 60.0},
        log_detector={"window_mode": "tumbling", "window_by": "time", "window_size_s": 10.0, "model": "hashing",
                      "warmup": 30},
    )
    ensure_database(settings.influx)
    alerts = TopicCollector(settings, [f"{settings.mqtt.alerts_prefix}/#"], name="alerts")
    start = utcnow() - timedelta(minutes=MINUTES)
    plant = PlantSimulation(seed=3, rate=16.0, duration_s=MINUTES * 60 - 30, start=start, day_s=600.0,
                            warmup_frac=0.5)
    readings = [Message(r.topic, reading_payload(r), r.ts) for r in plant]
    bad_at = start + timedelta(minutes=MINUTES / 2)  # a misbehaving device, mid-run
    readings += [Message("plant/north/pump-1/temperature", payload, bad_at) for payload in (b"{oops", b"NaN", b"")]
    run_main(build_sensor_flow(settings, source=TestingSource(readings)))
    metrics.pipeline_points(utcnow() - timedelta(seconds=20), "sensors")
    network = NetworkSimulation(seed=3, rate=5.0, duration_s=MINUTES * 60 - 30, start=start, warmup_frac=0.5)
    lines = [Message(x.topic, log_payload(x), x.ts) for x in network]
    run_main(build_log_flow(settings, source=TestingSource(lines), embedder=HashingEmbedder(dim=64)))
    seen: list[int] = []  # every alert has arrived when the count holds for half a second
    assert alerts.wait(lambda ms: seen.append(len(ms)) or (len(seen) > 10 and seen[-1] == seen[-11] > 0), 20)
    alerts.close()  # the alerts both flows published on MQTT go through the incidents flow
    run_main(build_incident_flow(settings, source=TestingSource(alerts.messages)))
    now = utcnow()
    health = [p for instance in ("sensors", "logs") for when in (now - timedelta(seconds=10), now)
              for p in metrics.pipeline_points(when, instance)]
    client = InfluxQuery(settings.influx)
    # quality rows are stamped at the start of their week, outside the last hour on most days
    missing = {m for m in ("feedback", "drift", "quality") if not client.query(f'SELECT count(*) FROM "{m}" WHERE time > now() - 1h')}
    write_points(settings.influx, health + [p for p in sample_points(now) if p.measurement in missing])
    yield client, variables(client)
    client.close()


def variables(client: InfluxQuery) -> dict[str, str | list[str]]:
    """Template variable values taken from the run: a log source with a novel template and a
    sensor of the same site that alerted."""
    log = client.query("SELECT window_id FROM log_window WHERE novel_template =~ /./ LIMIT 1")
    site, host, app = str(log[0]["window_id"]).split(":", 1)[0].split("/")[:3]
    sensor = client.query(f"SELECT alert_id FROM alert WHERE source = 'sensor' AND kind = 'open' AND site = '{site}' LIMIT 1")
    _, asset, name = str(sensor[0]["alert_id"]).rsplit(":", 1)[0].split("/")
    return {"site": site, "asset": asset, "sensor": name, "host": host, "app": app, "instance": ["sensors", "logs"]}


@pytest.mark.parametrize("query", all_queries(), ids=lambda q: f"{q.dashboard}:{q.where}")
def test_query_returns_rows_after_a_simulated_run(run: tuple[InfluxQuery, dict[str, Any]], query: Query) -> None:
    client, values = run
    text = substitute(query.influxql, values)
    rows = client.query(text)
    if query.where.startswith("panel 'Open alerts'") and not rows:
        # Every alert of the run may have closed; the query itself must still run and the
        # closed ones must be there.
        closed = client.query(re.sub(r"""AND "state" = 'open'""", "", text))
        assert closed, f"{query.dashboard} {query.where}: no alerts at all: {text}"
        return
    assert rows, f"{query.dashboard} {query.where} returned no rows after the simulated run: {text}"
