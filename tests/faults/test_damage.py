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
    receiver = MqttWalReceiver(settings.mqtt, [f"plant/{unique}/#"], flow="sensors", wal=wal)
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
            filler = _fill_disk(small_fs)
            for i in range(1000, 4000):
                pub.publish(f"plant/{unique}/a/t", f"{i}".encode() + b"x" * 200)
            assert pub.wait_all(30)  # the broker holds them
        deadline = time.monotonic() + 10
        while not receiver.held and time.monotonic() < deadline:
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
    writer = InfluxWriter(settings.influx)
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
