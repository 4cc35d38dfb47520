"""Fault injection against real Mosquitto and InfluxDB: flows as ``oddwatch run`` subprocesses,
killed (SIGKILL), stopped (SIGTERM) and restarted while a paced publisher keeps sending.

Used by ``tests/faults/`` and ``scripts/bench_faults.py``; each run counts what was published
against what InfluxDB stores.

- :class:`FlowProcess`: ``oddwatch run sensors|logs`` with the given settings (written to a TOML
  file) and environment overrides; :meth:`FlowProcess.start` waits until it has subscribed.
- :class:`PacedPublisher`: publishes prepared messages at a fixed rate in a thread.
- :func:`sensor_messages` / :func:`log_messages`: distinct readings and log lines for a site.
- :func:`stored_readings` / :func:`stored_lines`: what InfluxDB holds for that site.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from oddwatch.connectors.influx import InfluxQuery
from oddwatch.connectors.mqtt import MqttPublisher
from oddwatch.records import utcnow
from oddwatch.settings import Settings, as_dict, to_toml

#: Environment of a log flow under test: the cheap deterministic embedder, 60 s tumbling
#: windows on event time.
LOG_FLOW_ENV = {
    "ODDWATCH_LOG_DETECTOR__MODEL": "hashing",
    "ODDWATCH_LOG_DETECTOR__WINDOW_MODE": "tumbling",
    "ODDWATCH_LOG_DETECTOR__WINDOW_BY": "time",
    "ODDWATCH_LOG_DETECTOR__WINDOW_SIZE_S": "60",
}
READY_MARKERS = ("subscribing to", "resumed session")


class FlowProcess:
    """``oddwatch run <flow>`` as a subprocess; its stderr goes to ``<workdir>/<flow>-<n>.log``.

    Parameters
    ----------
    settings
        Written to ``<workdir>/oddwatch.toml`` and passed as ``ODDWATCH_CONFIG``.
    flow
        ``sensors`` or ``logs``.
    workdir
        Config and stderr logs.
    env
        Extra environment (``ODDWATCH_<SECTION>__<KEY>`` overrides).
    """

    def __init__(self, settings: Settings, flow: str, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.flow = flow
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "oddwatch.toml"
        self.config.write_text(to_toml(as_dict(settings, mask=False)))
        self.env = {**os.environ, "ODDWATCH_CONFIG": str(self.config), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = self.workdir / f"{flow}-0.log"

    def start(self, timeout: float = 60.0, *, wait: bool = True) -> FlowProcess:
        """Start the flow and (with *wait*) wait until its MQTT client has subscribed or resumed."""
        self.starts += 1
        self.log_path = self.workdir / f"{self.flow}-{self.starts}.log"
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "oddwatch.cli", "run", self.flow], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=err)
        return self.wait_ready(timeout) if wait else self

    def wait_ready(self, timeout: float = 60.0) -> FlowProcess:
        """Wait until the flow's MQTT client has subscribed (or resumed its session)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr()
            if any(m in text for m in READY_MARKERS):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"oddwatch run {self.flow} exited with {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"oddwatch run {self.flow} did not subscribe within {timeout} s:\n{self.stderr()[-3000:]}")

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL (kill -9) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM; the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def __enter__(self) -> FlowProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


class PacedPublisher:
    """Publishes *messages* (topic, payload) at *rate* per second, QoS 1, in a thread.

    ``published`` counts messages handed to the broker; :meth:`join` waits for the last
    acknowledgement. A publish that fails (broker down) is retried until it succeeds.
    """

    def __init__(self, settings: Settings, messages: Sequence[tuple[str, bytes]], rate: float,
                 *, client_id: str = "fault-publisher") -> None:
        self.settings = settings
        self.messages = messages
        self.rate = rate
        self.client_id = client_id
        self.published = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="paced-publisher", daemon=True)

    def start(self) -> PacedPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with MqttPublisher(self.settings.mqtt, self.client_id) as pub:
                t0 = time.monotonic()
                for i, (topic, payload) in enumerate(self.messages):
                    ahead = t0 + i / self.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                    pub.publish(topic, payload, qos=1)
                    self.published = i + 1
                if not pub.wait_all(60):
                    raise RuntimeError(f"{pub.in_flight} message(s) never acknowledged by the broker")
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def wait_published(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.published < n and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.01)

    def join(self, timeout: float = 120.0) -> int:
        self._thread.join(timeout)
        if self.error is not None:
            raise RuntimeError(f"publisher failed after {self.published} messages: {self.error!r}") from self.error
        return self.published


def sensor_messages(site: str, n: int, *, series: int = 10) -> list[tuple[str, bytes]]:
    """*n* readings over *series* series of *site*, 1 ms apart, each with its own timestamp."""
    t0 = utcnow() - timedelta(seconds=120)
    out = []
    for i in range(n):
        ts = (t0 + timedelta(milliseconds=i)).isoformat()
        out.append((f"plant/{site}/a{i % series}/temp", json.dumps({"ts": ts, "value": 20.0 + (i % 17) * 0.1}).encode()))
    return out


def log_messages(site: str, n: int, *, hosts: int = 3, spacing_ms: int = 100) -> list[tuple[str, bytes]]:
    """*n* syslog-like lines from *hosts* hosts of *site*, *spacing_ms* apart in event time."""
    t0 = utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)
    out = []
    for i in range(n):
        ts = (t0 + timedelta(milliseconds=spacing_ms * i)).isoformat()
        msg = f"session {'opened' if i % 2 else 'closed'} for user u{i % 7} by (uid=0) seq {i}"
        out.append((f"logs/{site}/h{i % hosts}/sshd", json.dumps({"ts": ts, "msg": msg}).encode()))
    return out


def _first_value(rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    return int(next((v for k, v in rows[0].items() if k != "time" and isinstance(v, (int, float))), 0))


def stored_readings(query: InfluxQuery, site: str) -> int:
    """Distinct ``sensor_score`` points of *site* (a point written twice counts once)."""
    return _first_value(query.query(f"SELECT COUNT(value) FROM sensor_score WHERE site = '{site}'"))


def stored_lines(query: InfluxQuery, site: str) -> int:
    """Log lines of *site* counted in its distinct ``log_window`` points."""
    return _first_value(query.query(f"SELECT SUM(lines) FROM log_window WHERE site = '{site}'"))


def wait_count(count: Callable[[], int], target: int, timeout: float) -> int:
    """Poll *count* until it reaches *target* or *timeout* seconds pass; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = count()
        if value >= target or time.monotonic() >= deadline:
            return value
        time.sleep(0.2)
