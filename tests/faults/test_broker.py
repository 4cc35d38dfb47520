"""The broker missing at start and restarted mid-stream: the flow says so in one line per
outage, keeps retrying, and processes again within 2 s of the broker's return."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from oddwatch.connectors.influx import InfluxQuery
from oddwatch.connectors.mqtt import MqttPublisher
from oddwatch.faults import FlowProcess, PacedPublisher, sensor_messages, stored_readings, wait_count

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_broker_missing_at_start_then_restarted(services: Any, unique: str, tmp_path: Path) -> None:
    settings = services.settings(state={"snapshot_s": 1.0})
    query = InfluxQuery(services.local.influx_settings())
    messages = sensor_messages(unique, 2000)
    with FlowProcess(settings, "sensors", tmp_path) as flow:
        services.local.stop(which=("mqtt",))
        try:
            flow.start(wait=False)
            time.sleep(6.0)  # imports, then a few connection attempts
            text = flow.stderr()
            assert flow.proc is not None and flow.proc.poll() is None, text
            assert text.count("unreachable") == 1 and "Traceback" not in text, text
        finally:
            services.local.start()
        flow.wait_ready(10)
        assert PacedPublisher(settings, messages[:1000], 1000.0, client_id=f"{unique}-pub").start().join() == 1000
        assert wait_count(lambda: stored_readings(query, unique), 1000, 30) == 1000

        services.local.stop(which=("mqtt",))
        try:
            time.sleep(2.0)
        finally:
            services.local.start()
        back = time.monotonic()
        with MqttPublisher(settings.mqtt, f"{unique}-pub2") as pub:
            for topic, payload in messages[1000:1010]:
                pub.publish(topic, payload)
        assert wait_count(lambda: stored_readings(query, unique), 1010, 10) == 1010
        resumed = time.monotonic() - back
        assert resumed <= 2.0, f"processing resumed {resumed:.2f} s after the broker came back"
        assert flow.proc is not None and flow.proc.poll() is None
