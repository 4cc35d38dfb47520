"""Nothing lost across kill -9: flows run as ``oddwatch run`` subprocesses against the real
Mosquitto and InfluxDB, killed mid-stream while a publisher keeps sending at 1,000 messages/s,
and restarted; InfluxDB must then hold every reading and every log line (a point written twice
is stored once, so duplicates may only be identical points)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from oddwatch.connectors.influx import InfluxQuery
from oddwatch.faults import (
    LOG_FLOW_ENV,
    FlowProcess,
    PacedPublisher,
    log_messages,
    sensor_messages,
    stored_lines,
    stored_readings,
    wait_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RATE = 1000.0


def _query(services: Any) -> InfluxQuery:
    return InfluxQuery(services.local.influx_settings())


def test_sensor_flow_killed_twice_loses_nothing(services: Any, unique: str, tmp_path: Path) -> None:
    settings = services.settings(state={"snapshot_s": 1.0})
    messages = sensor_messages(unique, 6000)
    with FlowProcess(settings, "sensors", tmp_path) as flow:
        flow.start()
        publisher = PacedPublisher(settings, messages, RATE, client_id=f"{unique}-pub").start()
        for at in (1500, 3500):
            publisher.wait_published(at)
            flow.kill()
            flow.start()
        assert publisher.join() == len(messages)
        stored = wait_count(lambda: stored_readings(_query(services), unique), len(messages), 60)
    assert stored == len(messages), f"published {len(messages)}, stored {stored}: lost {len(messages) - stored}"


def test_log_flow_killed_loses_no_line(services: Any, unique: str, tmp_path: Path) -> None:
    settings = services.settings(state={"snapshot_s": 1.0})
    messages = log_messages(unique, 4000)
    with FlowProcess(settings, "logs", tmp_path, env=LOG_FLOW_ENV) as flow:
        flow.start()
        publisher = PacedPublisher(settings, messages, RATE, client_id=f"{unique}-pub").start()
        publisher.wait_published(2000)
        flow.kill()
        flow.start()
        assert publisher.join() == len(messages)
        stored = wait_count(lambda: stored_lines(_query(services), unique), len(messages), 60)
    assert stored == len(messages), f"published {len(messages)} lines, stored {stored}: lost {len(messages) - stored}"
