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
        conf = (tmp_path / "st" / f"mosquitto-{local.mqtt_port}" / "mosquitto.conf").read_text()
        assert f"listener {local.mqtt_port} 127.0.0.1" in conf
        assert "allow_anonymous true" in conf
        assert f"max_packet_size {svc_mod.MQTT_MAX_PACKET}" in conf
        influx_conf = (tmp_path / "st" / f"influxd-{local.influx_port}" / "influxdb.conf").read_text()
        assert "reporting-disabled = true" in influx_conf
    finally:
        local.stop()
    assert not local.is_running()
    assert not (tmp_path / "st" / f"mosquitto-{local.mqtt_port}" / "mosquitto.pid").exists()
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


@pytest.mark.integration
def test_instances_on_other_ports_share_nothing_and_stop_only_their_own(tmp_path: Path) -> None:
    """Two instances over one state dir: separate files, automatic RPC ports, and stopping
    one (even from a fresh object, as ``oddwatch services down`` does) leaves the other."""
    state = tmp_path / "st"
    first = LocalServices(state, free_port(), free_port())
    second = LocalServices(state, free_port(), free_port())
    try:
        first.start()
        second.start()
        assert first.is_running() and second.is_running()
        assert first.influx_rpc_port and second.influx_rpc_port
        assert first.influx_rpc_port != second.influx_rpc_port
        assert {p.name for p in state.iterdir()} == {
            f"mosquitto-{first.mqtt_port}", f"influxd-{first.influx_port}",
            f"mosquitto-{second.mqtt_port}", f"influxd-{second.influx_port}"}
        # a fresh object for the first instance's ports: finds its processes and stops only them
        again = LocalServices(state, first.mqtt_port, first.influx_port)
        assert again.status()["mqtt"]["pid"] == first.status()["mqtt"]["pid"]
        assert again.influx_rpc_port == first.influx_rpc_port  # read back from its config
        again.stop()
        assert not first.is_running()
        assert second.is_running() and mqtt_connack("127.0.0.1", second.mqtt_port)
    finally:
        first.stop()
        second.stop()


@pytest.mark.integration
def test_a_pid_file_naming_another_process_is_not_trusted(tmp_path: Path) -> None:
    """status reports a pid only if it serves the port; stop never signals a process this
    instance did not start (here: the other instance's broker, named in a forged pid file)."""
    state = tmp_path / "st"
    other = LocalServices(state, free_port(), free_port())
    mine = LocalServices(state, free_port(), free_port())
    try:
        other.start()
        other_pid = other.status()["mqtt"]["pid"]
        assert other_pid is not None
        pid_file = state / f"mosquitto-{mine.mqtt_port}" / "mosquitto.pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(f"{other_pid}\n")
        status = mine.status()["mqtt"]
        assert status["pid"] is None and not status["running"]
        mine.stop()
        assert other.is_running() and other.status()["mqtt"]["pid"] == other_pid
    finally:
        other.stop()


def test_listens_on_tells_a_listening_socket(tmp_path: Path) -> None:
    import os

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert svc_mod.listens_on(os.getpid(), port) in (True, None)  # None: no /proc here
        assert svc_mod.listens_on(os.getpid(), free_port()) in (False, None)


def test_rpc_port_zero_is_chosen_at_start(tmp_path: Path) -> None:
    local = LocalServices(tmp_path, free_port(), free_port())
    assert local.influx_rpc_port == 0  # nothing started yet
    s = build_settings({"services": {"influx_rpc_port": 0, "state_dir": str(tmp_path / "state")}})
    assert from_settings(s).influx_rpc_port == 0
    assert build_settings({}).services.influx_rpc_port == 0
