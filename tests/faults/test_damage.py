"""Back-pressure instead of loss, against the real Mosquitto and InfluxDB of the fixtures: a full
state disk (a small tmpfs) holds the source, whose messages wait in the broker and all reach the
WAL once there is room; a full spool during an InfluxDB outage holds the sink, and every line
reaches InfluxDB when it is back."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oddwatch.connectors.influx import InfluxQuery, InfluxWriter
from oddwatch.connectors.mqtt import MqttPublisher, MqttWalReceiver
from oddwatch.connectors.wal import Wal
from oddwatch.observe import metrics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root only); skipped with the reason where mount is refused."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the disk-full case: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill_disk(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_state_disk_full_holds_the_source_and_loses_nothing(services: Any, unique: str, small_fs: Path) -> None:
    settings = services.settings()
    wal = Wal(small_fs / "wal")
    receiver = MqttWalReceiver(settings.mqtt, [f"plant/{unique}/#"], flow="sensors", wal=wal, held=metrics.HELD)
    try:
        assert receiver.wait_subscribed(10)
        with MqttPublisher(settings.mqtt, f"{unique}-pub") as pub:
            for i in range(1000):
                pub.publish(f"plant/{unique}/a/t", f"{i}".encode())
            assert pub.wait_all(30)
            deadline = time.monotonic() + 10
            while wal.appended < 1000 and time.monotonic() < deadline:
                receiver.ack_appended()
                time.sleep(0.05)
            receiver.ack_appended()  # the last burst too: the broker's in-flight window must not stay full
            filler = _fill_disk(small_fs)
            for i in range(1000, 4000):
                pub.publish(f"plant/{unique}/a/t", f"{i}".encode() + b"x" * 200)
            assert pub.wait_all(30)  # the broker holds them
        deadline = time.monotonic() + 10
        while not receiver.held and time.monotonic() < deadline:
            receiver.ack_appended()
            time.sleep(0.05)
        assert receiver.held, (wal.appended, os.statvfs(small_fs).f_bavail, receiver.redelivered)
        assert metrics.HELD.labels(reason="state_disk_full")._value.get() == 1
        filler.unlink()
        deadline = time.monotonic() + 30
        while wal.appended - receiver.redelivered < 4000 and time.monotonic() < deadline:
            receiver.ack_appended()
            time.sleep(0.05)
        receiver.ack_appended()
        msgs, _ = wal.read(0, 100_000)
        got = {int(m.payload.rstrip(b"x")) for m in msgs}
        assert got == set(range(4000)), f"{4000 - len(got)} lost"
        assert not receiver.held and wal.skipped_bytes == 0
    finally:
        receiver.close()
        wal.close()


def test_spool_full_holds_the_sink_and_every_line_lands(services: Any, unique: str, tmp_path: Path) -> None:
    settings = services.settings(influx={"spool_max_bytes": 20_000, "spool_dir": str(tmp_path / "spool"),
                                         "retry_max_s": 0.5, "timeout_s": 2.0})
    query = InfluxQuery(services.local.influx_settings())
    lines = [f"held_{unique},k=a v={i} {1_700_000_000_000_000_000 + i}" for i in range(2000)]
    writer = InfluxWriter(settings.influx, meters=metrics.METRICS)
    services.local.stop(which=("influx",))
    done = threading.Event()
    try:
        def sink() -> None:
            for i in range(0, len(lines), 100):
                writer.add_durable(lines[i : i + 100])
            done.set()

        threading.Thread(target=sink, daemon=True).start()
        time.sleep(3.0)
        assert not done.is_set() and writer.dropped == 0  # held, not dropped
        assert metrics.HELD.labels(reason="spool_full")._value.get() == 1
    finally:
        services.local.start()
    assert done.wait(60)
    assert writer.flush(60)
    writer.close()
    rows = query.query(f'SELECT COUNT(v) FROM "held_{unique}"')
    assert rows and rows[0]["count"] == 2000 and writer.dropped == 0
    assert os.path.isdir(tmp_path / "spool")


def test_broker_killed_while_the_flow_is_down_keeps_its_queue(services: Any, unique: str, tmp_path: Path) -> None:
    """With the config `oddwatch services` writes (saved every second), a kill -9 of the broker
    loses none of the messages queued for a flow that was down."""
    import signal

    settings = services.settings()
    topics = [f"plant/{unique}/#"]
    wal = Wal(tmp_path / "wal")
    receiver = MqttWalReceiver(settings.mqtt, topics, flow="sensors", wal=wal)
    assert receiver.wait_subscribed(10)
    receiver.close()  # the flow is down; its session stays on the broker
    with MqttPublisher(settings.mqtt, f"{unique}-pub") as pub:
        for i in range(3000):
            pub.publish(f"plant/{unique}/a/t", f"{i}".encode())
        assert pub.wait_all(30)
    time.sleep(2.5)  # more than autosave_interval
    pid = services.local._mqtt.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while services.local._mqtt.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    services.local.start()
    receiver = MqttWalReceiver(settings.mqtt, topics, flow="sensors", wal=wal)
    try:
        deadline = time.monotonic() + 30
        while wal.appended < 3000 and time.monotonic() < deadline:
            receiver.ack_appended()
            time.sleep(0.05)
        got = {int(m.payload) for m in wal.read(0, 100_000)[0]}
        assert got == set(range(3000)), f"{3000 - len(got)} of 3000 queued messages lost"
    finally:
        receiver.close()
        wal.close()


def test_damaged_recovery_database_and_wal_cost_one_line_and_the_damaged_records(
        services: Any, unique: str, tmp_path: Path) -> None:
    from oddwatch.faults import FlowProcess, PacedPublisher, sensor_messages, stored_readings, wait_count

    settings = services.settings(state={"snapshot_s": 1.0, "dir": str(tmp_path / "state")})
    query = InfluxQuery(services.local.influx_settings())
    messages = sensor_messages(unique, 2000)
    with FlowProcess(settings, "sensors", tmp_path / "run") as flow:
        flow.start()
        assert PacedPublisher(settings, messages[:1000], 2000.0, client_id=f"{unique}-pub").start().join() == 1000
        assert wait_count(lambda: stored_readings(query, unique), 1000, 30) == 1000
        flow.kill()
        (part,) = (tmp_path / "state" / "sensors" / "recovery").glob("part-*.sqlite3")
        part.write_bytes(part.read_bytes()[:512])  # truncated
        seg = sorted((tmp_path / "state" / "sensors" / "wal" / "p0").glob("*.wal"))[-1]
        data = bytearray(seg.read_bytes())
        data[len(data) // 3 : len(data) // 3 + 8] = b"\xff" * 8  # one damaged record in the middle
        seg.write_bytes(bytes(data))
        flow.start()
        assert PacedPublisher(settings, messages[1000:], 2000.0, client_id=f"{unique}-pub2").start().join() == 1000
        stored = wait_count(lambda: stored_readings(query, unique), 2000, 30)
        text = flow.stderr()
        assert stored == 2000, text[-3000:]  # the damaged record was written before the damage
        assert text.count("recovery database is damaged") == 1 and "panicked" not in text and "Traceback" not in text
        assert "stepped over" in text
