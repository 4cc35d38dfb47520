"""``oddwatch feedback`` says whether a flow applied the verdict (real Mosquitto and InfluxDB)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from oddwatch.cli import main
from oddwatch.flowrunner import FlowRunner, count, mosquitto_pub, wait_for
from oddwatch.records import utcnow
from oddwatch.settings import as_dict, to_toml

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_feedback_reports_whether_a_flow_applied_it(services: Any, unique: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    settings = services.settings()
    config = tmp_path / "oddwatch.toml"
    config.write_text(to_toml(as_dict(settings, mask=False)))
    alert_id = f"{unique}/a1/temp:1767225600"

    assert main(["--config", str(config), "feedback", alert_id, "false-positive", "--wait", "1.5"]) == 3
    assert "no flow applied it" in capsys.readouterr().err

    topics = [s.topic for s in settings.sensors.subscriptions] + [settings.mqtt.feedback_topic]
    with FlowRunner(settings, topics=topics):
        ts = (utcnow() - timedelta(seconds=5)).isoformat()
        mosquitto_pub(settings, f"plant/{unique}/a1/temp", json.dumps({"ts": ts, "value": 1.0}).encode())
        assert wait_for(lambda: count(services, f"SELECT count(value) FROM sensor_score WHERE site = '{unique}'") == 1)
        assert main(["--config", str(config), "feedback", alert_id, "false-positive", "--wait", "10"]) == 0
    assert "applied by the sensor flow" in capsys.readouterr().out
