"""Shared fixtures: real Mosquitto and InfluxDB on free loopback ports.

``services`` (session scope) starts :class:`oddwatch.services.LocalServices` in a temp dir and
yields a :class:`RunningServices`. Any test that uses it is marked ``integration``
automatically. ``unique`` gives a short unique string per test to isolate topics,
measurements and client ids.
"""

from __future__ import annotations

import copy
import itertools
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from oddwatch.connectors.influx import InfluxQuery
from oddwatch.services import LocalServices, free_port
from oddwatch.settings import Settings, build_settings

_counter = itertools.count()


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class RunningServices:
    """What the ``services`` fixture yields.

    Attributes
    ----------
    mqtt_host, mqtt_port
        The Mosquitto listener.
    influx_url, database
        The InfluxDB HTTP API and the database created on start.
    local
        The underlying :class:`~oddwatch.services.LocalServices`.
    """

    def __init__(self, local: LocalServices, root: Path) -> None:
        self.local = local
        self.root = root
        self.mqtt_host = local.mqtt_host
        self.mqtt_port = local.mqtt_port
        self.influx_url = local.influx_url
        self.database = local.database
        self._query = InfluxQuery(local.influx_settings())

    def settings(self, **overrides: Mapping[str, Any]) -> Settings:
        """Settings pointing at these services, with nested-dict *overrides* per section.

        Each call gets its own spool dir, MQTT client id and metrics port (so two flows in one
        test do not collide); reuse the returned object where a test needs the same ones, e.g.
        ``settings(alerts={"open_after": 1}, mqtt={"client_id": "x"})``.
        """
        n = next(_counter)
        base: dict[str, Any] = {
            "mqtt": {
                "host": self.mqtt_host,
                "port": self.mqtt_port,
                "client_id": f"ow-test-{n}-{uuid.uuid4().hex[:6]}",
                "reconnect_min_s": 0.1,
                "reconnect_max_s": 1.0,
            },
            "influx": {
                "url": self.influx_url,
                "database": self.database,
                "spool_dir": str(self.root / "spool" / str(n)),
                "flush_interval_s": 0.05,
                "retry_min_s": 0.05,
                "retry_max_s": 0.5,
            },
            "services": {
                "state_dir": str(self.local.state_dir),
                "influx_rpc_port": self.local.influx_rpc_port,
            },
            "metrics": {"port": free_port(), "logs_port": free_port(), "incidents_port": free_port()},
            "state": {"dir": str(self.root / "state" / str(n))},
        }
        return build_settings(_merge(base, overrides))

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """Rows (dicts; ``time`` in ns) of an InfluxQL query on the test database."""
        return self._query.query(influxql)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "services" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServices]:
    """Mosquitto and InfluxDB on free loopback ports for the whole test session."""
    for binary, package in (("mosquitto", "mosquitto"), ("influxd", "influxdb")):
        if shutil.which(binary) is None and shutil.which(binary, path="/usr/sbin:/usr/bin") is None:
            pytest.skip(f"{binary} is not installed: sudo apt-get install -y {package}")
    root = tmp_path_factory.mktemp("services")
    local = LocalServices(root / "state", free_port(), free_port(), free_port())
    local.start(timeout_s=30)
    running = RunningServices(local, root)
    try:
        yield running
    finally:
        running._query.close()
        local.stop()


@pytest.fixture
def unique() -> str:
    """A short string unique to this test, e.g. ``t3f9a1c2e``."""
    return f"t{uuid.uuid4().hex[:8]}"
