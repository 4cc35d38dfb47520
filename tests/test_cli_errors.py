"""An operator's mistakes end in one line naming what failed and the fix, exit 2, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oddwatch.services import free_port


def oddwatch(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parent.parent
    full = {**os.environ, "PYTHONPATH": str(root), "ODDWATCH_STATE__DIR": str(cwd / "state"),
            "ODDWATCH_SERVICES__STATE_DIR": str(cwd / "services"), **env}
    full.pop("ODDWATCH_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "oddwatch.cli", *args], env=full, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err
    return err


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_simulate_without_a_broker(tmp_path: Path) -> None:
    proc = oddwatch("simulate", "plant", "--duration", "1", env={"ODDWATCH_MQTT__PORT": str(free_port())}, cwd=tmp_path)
    one_line(proc, "oddwatch simulate:", "cannot connect", "oddwatch services up")


def test_services_up_on_a_busy_port(tmp_path: Path, busy_port: int) -> None:
    proc = oddwatch("services", "up", env={"ODDWATCH_MQTT__PORT": str(busy_port),
                                           "ODDWATCH_INFLUX__URL": f"http://127.0.0.1:{free_port()}",
                                           "ODDWATCH_SERVICES__INFLUX_RPC_PORT": str(free_port())}, cwd=tmp_path)
    try:
        one_line(proc, f"port 127.0.0.1:{busy_port} is already taken", "choose another port")
    finally:
        oddwatch("services", "down", env={"ODDWATCH_MQTT__PORT": str(busy_port)}, cwd=tmp_path)


def test_a_model_that_is_not_installed(tmp_path: Path) -> None:
    proc = oddwatch("run", "logs", env={"ODDWATCH_LOG_DETECTOR__MODEL": "nobody/not-a-model",
                                        "ODDWATCH_MQTT__PORT": str(free_port())}, cwd=tmp_path)
    one_line(proc, "oddwatch run:", "'nobody/not-a-model' is not on this machine", "allow_download")


def test_influxdb_down(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    err = one_line(oddwatch("alerts", env={"ODDWATCH_INFLUX__URL": url}, cwd=tmp_path),
                   f"InfluxDB at {url} does not answer (connection refused)", "oddwatch services up")
    assert len(err) < 200
