"""Scale-out: 2 workers in one process, and 2 processes as one Bytewax cluster, against real
Mosquitto and InfluxDB. Each MQTT message must be taken by one worker (shared subscription)
and each reading scored once, by the worker owning its series; the scored readings are
counted through the flows' Prometheus counters (InfluxDB would hide duplicates by
overwriting them).
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bytewax.testing import cluster_main

from flows.sensors import build_flow
from oddwatch import cluster
from oddwatch.connectors.mqtt import MqttPublisher, MqttSource, shared_group
from oddwatch.flowrunner import count, wait_for
from oddwatch.observe import metrics
from oddwatch.observe.metrics import scrape
from oddwatch.records import utcnow
from oddwatch.services import free_port
from oddwatch.settings import Settings, as_dict, to_toml

pytestmark = pytest.mark.integration

SERIES = 24
PER_SERIES = 50


def _publish(settings: Settings, site: str, client: str, *, series: int = SERIES, per: int = PER_SERIES) -> int:
    now = utcnow()
    with MqttPublisher(settings.mqtt, client) as pub:
        for j in range(per):
            ts = (now - timedelta(seconds=per - j)).timestamp()
            for k in range(series):
                pub.publish(f"plant/{site}/a{k}/temp", json.dumps({"ts": ts, "value": 20.0 + (j % 7)}).encode(), qos=1)
        assert pub.wait_all(30)
    return series * per


def test_shared_group_only_for_several_workers() -> None:
    s = Settings()
    assert shared_group(s.mqtt, "logs", 4) == "oddwatch-logs"
    assert shared_group(s.mqtt, "logs", 1) == ""


def test_cluster_env_and_the_missing_addresses_message() -> None:
    env = cluster.cluster_env(1, ["127.0.0.1:1", "127.0.0.1:2"], metrics_port=9000, base={})
    assert env == {"BYTEWAX_PROCESS_ID": "1", "BYTEWAX_ADDRESSES": "127.0.0.1:1;127.0.0.1:2",
                   "ODDWATCH_STATE__RECOVERY": "false",
                   "ODDWATCH_METRICS__PORT": str(9000 + cluster.METRICS_PORT_STRIDE)}
    assert cluster.check_cluster_env({"BYTEWAX_PROCESS_ID": "0", "BYTEWAX_ADDRESSES": "h:1"}) is None
    with pytest.raises(ValueError, match="outside the cluster"):
        cluster.cluster_env(2, ["h:1", "h:2"])


def test_two_workers_score_each_reading_once(services: Any, unique: str) -> None:
    settings = services.settings()
    stop = threading.Event()
    source = MqttSource(settings.mqtt, [s.topic for s in settings.sensors.subscriptions], flow="sensors", stop=stop)
    flow = build_flow(settings, source=source)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            cluster_main(flow, [], 0, epoch_interval=timedelta(seconds=1), worker_count_per_proc=2)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert source.wait_subscribed(15, workers=2), "both workers subscribe"
        before = metrics.READINGS_SCORED._value.get()
        messages_before = metrics.MESSAGES_IN.labels(stream="sensor")._value.get()
        n = _publish(settings, unique, f"{settings.mqtt.client_id}-pub")
        scored = lambda: metrics.READINGS_SCORED._value.get() - before  # noqa: E731
        assert wait_for(lambda: scored() >= n, 30), f"{scored()} of {n} readings scored"
        time.sleep(1.0)  # a second copy of any message would be scored by now
        assert scored() == n
        assert metrics.MESSAGES_IN.labels(stream="sensor")._value.get() - messages_before == n
        q = f"SELECT COUNT(score) FROM sensor_score WHERE site = '{unique}'"
        assert wait_for(lambda: count(services, q) >= n, 15)
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors




def test_two_processes_score_each_reading_once(services: Any, unique: str, tmp_path: Path) -> None:
    settings = services.settings()
    config = tmp_path / "oddwatch.toml"
    config.write_text(to_toml(as_dict(settings, mask=False)))
    port = free_port()
    ports = [port + cluster.METRICS_PORT_STRIDE * k for k in range(2)]
    env = {**os.environ, "ODDWATCH_CONFIG": str(config), "PYTHONPATH": str(Path(__file__).parents[1])}
    procs = cluster.start_local_cluster("sensors", 2, metrics_port=port, env=env)
    try:
        assert wait_for(lambda: all(scrape(p, "oddwatch_readings_scored_total") is not None for p in ports), 60), \
            "both processes serve metrics"
        # Probe readings until each process's source has taken some: both have subscribed.
        probe = f"{unique}probe"
        taken = lambda p: scrape(p, "oddwatch_messages_in_total", {"stream": "sensor"}) or 0.0  # noqa: E731
        for i in range(60):
            _publish(settings, probe, f"{settings.mqtt.client_id}-probe{i}", series=4, per=1)
            if all(taken(p) > 0 for p in ports):
                break
            time.sleep(0.5)
        assert all(taken(p) > 0 for p in ports), "both processes take messages of the shared subscription"
        assert all(proc.poll() is None for proc in procs)

        def scored() -> float:
            return sum(scrape(p, "oddwatch_readings_scored_total") or 0.0 for p in ports)

        before = -1.0
        for _ in range(30):  # the probes are all scored once the count holds still
            time.sleep(0.5)
            before, last = scored(), before
            if before == last:
                break
        n = _publish(settings, unique, f"{settings.mqtt.client_id}-pub")
        assert wait_for(lambda: scored() - before >= n, 60), f"{scored() - before} of {n} readings scored"
        time.sleep(1.0)
        assert scored() - before == n
        per_process = [scrape(p, "oddwatch_readings_scored_total") or 0.0 for p in ports]
        assert all(c > 0 for c in per_process), f"each process owns some series: {per_process}"
        q = f"SELECT COUNT(score) FROM sensor_score WHERE site = '{unique}'"
        assert wait_for(lambda: count(services, q) >= n, 15)
    finally:
        codes = cluster.stop_cluster(procs)
    assert all(c in (0, -2) for c in codes), codes  # -2: ended by the KeyboardInterrupt SIGTERM raises


def test_run_refuses_a_process_id_without_addresses(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from oddwatch import cli

    for name in ("BYTEWAX_PROCESS_ID", "BYTEWAX_ADDRESSES", "BYTEWAX_HOSTFILE_PATH"):
        monkeypatch.setenv(name, "x")  # restored to what it was when the test ends
        monkeypatch.delenv(name)
    assert cli.main(["run", "sensors", "-i", "1"]) == 2
    assert "BYTEWAX_ADDRESSES" in capsys.readouterr().err
    monkeypatch.delenv("BYTEWAX_PROCESS_ID")
    assert cli.main(["run", "sensors", "--processes", "2", "--recovery-dir", "/nonexistent"]) == 2
    assert "--recovery-dir" in capsys.readouterr().err
