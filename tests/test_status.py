"""``oddwatch status`` against real Mosquitto and InfluxDB: a short table, --json, exit 1 when one is down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from oddwatch.cli import main
from oddwatch.observe.metrics import Metrics
from oddwatch.services import free_port
from oddwatch.settings import as_dict, to_toml


def _config(tmp_path: Path, settings) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "oddwatch.toml"
    path.write_text(to_toml(as_dict(settings, mask=False)))
    return str(path)


def test_status_is_a_short_table_with_the_running_flow(services, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    settings = services.settings()
    metrics = Metrics(CollectorRegistry())
    metrics.messages_in.labels(stream="sensor").inc(1200)
    metrics.messages_in.labels(stream="feedback").inc(3)
    metrics.readings_scored.inc(1190)
    metrics.end_to_end_lag_seconds.observe(3600.0)
    start_http_server(settings.metrics.port, addr="127.0.0.1", registry=metrics.registry)
    config = _config(tmp_path, settings)
    assert main(["--config", config, "status"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 20 and "InfluxDB" in out and "DOWN" not in out
    sensors = next(line for line in out.splitlines() if line.startswith("sensors"))
    assert "running" in sensors and "1,203" in sensors and "1,190" in sensors
    assert next(line for line in out.splitlines() if line.startswith("logs")).split()[1:3] == ["not", "running"]
    assert "lag" not in out
    assert main(["--config", config, "status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["flows"]["sensors"]["metrics"]["readings_scored_total"] == 1190.0
    assert not any("lag" in k for k in report["flows"]["sensors"]["metrics"])


def test_status_exits_1_when_influxdb_is_down(services, tmp_path: Path,  # type: ignore[no-untyped-def]
                                             capsys: pytest.CaptureFixture[str]) -> None:
    settings = services.settings(influx={"url": f"http://127.0.0.1:{free_port()}"})
    assert main(["--config", _config(tmp_path, settings), "status"]) == 1
    out = capsys.readouterr().out
    assert "InfluxDB" in out and "DOWN (does not answer /ping)" in out and "oddwatch services up" in out
