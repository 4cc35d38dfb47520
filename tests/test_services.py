"""LocalServices: start, idempotent restart, status, stop, errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from oddwatch import services as svc_mod
from oddwatch.services import LocalServices, ServiceError, free_port, from_settings, mqtt_connack
from oddwatch.settings import build_settings


def test_fixture_services_answer(services) -> None:
    assert mqtt_connack(services.mqtt_host, services.mqtt_port)
    names = {row["name"] for row in services.query("SHOW DATABASES")}
    assert services.database in names
    rps = {row["name"]: row for row in services.query(f'SHOW RETENTION POLICIES ON "{services.database}"')}
    assert rps["autogen"]["default"] is True
    assert {"raw", "alerts"} <= set(rps)


def test_fixture_settings_overrides(services) -> None:
    s = services.settings(alerts={"open_after": 1}, mqtt={"qos": 0})
    assert s.alerts.open_after == 1
    assert s.mqtt.qos == 0
    assert s.mqtt.port == services.mqtt_port
    assert s.influx.url == services.influx_url
    other = services.settings()
    assert other.mqtt.client_id != s.mqtt.client_id
    assert other.influx.spool_dir != s.influx.spool_dir


@pytest.mark.integration
def test_start_twice_status_stop(tmp_path: Path) -> None:
    local = LocalServices(tmp_path / "st", free_port(), free_port(), free_port())
    try:
        local.start()
        first = local.status()
        assert local.is_running()
        local.start()  # idempotent: same processes
        again = local.status()
        assert again["mqtt"]["pid"] == first["mqtt"]["pid"]
        assert again["influx"]["pid"] == first["influx"]["pid"]
        # another instance over the same state dir sees the running services
        other = LocalServices(tmp_path / "st", local.mqtt_port, local.influx_port, local.influx_rpc_port)
        assert other.is_running()
        conf = (tmp_path / "st" / "mosquitto.conf").read_text()
        assert f"listener {local.mqtt_port} 127.0.0.1" in conf
        assert "allow_anonymous true" in conf
        assert "reporting-disabled = true" in (tmp_path / "st" / "influxdb.conf").read_text()
    finally:
        local.stop()
    assert not local.is_running()
    assert not (tmp_path / "st" / "mosquitto.pid").exists()
    local.stop()  # no-op when stopped


@pytest.mark.integration
def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:  # something that is not a broker holds the port
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        local = LocalServices(tmp_path / "st", port, free_port(), free_port())
        with pytest.raises(ServiceError, match=rf"mosquitto.*{port}.*already taken"):
            local.start(timeout_s=5)
        local.stop()


@pytest.mark.integration
def test_services_already_answering_are_used_not_stopped(tmp_path: Path, services) -> None:
    """The system's own mosquitto/influxd (started by the Debian packages under systemd) are
    used as they are; stopping ours leaves them running."""
    port = int(services.influx_url.rsplit(":", 1)[1])
    local = LocalServices(tmp_path / "st", services.mqtt_port, port, free_port())
    local.start(timeout_s=10)
    status = local.status()
    assert status["mqtt"]["external"] and status["influx"]["external"] and local.is_running()
    local.stop()
    assert svc_mod.mqtt_connack("127.0.0.1", services.mqtt_port)


def test_missing_binary_names_apt_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svc_mod.shutil, "which", lambda *a, **k: None)
    local = LocalServices(tmp_path, free_port(), free_port(), free_port())
    with pytest.raises(ServiceError, match=r"apt-get install -y mosquitto"):
        local.start(timeout_s=1)


@pytest.mark.integration
def test_start_failure_shows_log_tail(tmp_path: Path) -> None:
    local = LocalServices(tmp_path / "st", free_port(), free_port(), free_port())
    # An invalid listener option makes mosquitto exit at once; the error carries its log.
    local._mosquitto_conf = lambda: "listener notaport 127.0.0.1\n"  # type: ignore[method-assign]
    try:
        with pytest.raises(ServiceError, match=r"mosquitto.*(exited|timeout)"):
            local.start(timeout_s=5)
    finally:
        local.stop()


def test_from_settings(tmp_path: Path) -> None:
    s = build_settings(
        {
            "mqtt": {"port": 1999},
            "influx": {"url": "http://127.0.0.1:18086", "database": "x"},
            "services": {"state_dir": str(tmp_path / "s"), "influx_rpc_port": 18088},
        }
    )
    local = from_settings(s)
    assert (local.mqtt_port, local.influx_port, local.influx_rpc_port) == (1999, 18086, 18088)
    assert local.database == "x"
    assert local.state_dir == (tmp_path / "s").resolve()
    assert not local.is_running()
