"""MQTT connector against a real Mosquitto 2.0 (started by the ``services`` fixture)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from typing import Any

import pytest
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from oddwatch.connectors.mqtt import MqttError, MqttPublisher, MqttSink, MqttSource
from oddwatch.flowrunner import wait_for
from oddwatch.records import Message, Outgoing
from oddwatch.services import free_port
from oddwatch.settings import MqttSettings

pytestmark = pytest.mark.integration


def _mosquitto_pub(services: Any, topic: str, messages: list[str], qos: int = 1) -> None:
    """Publish *messages* with the mosquitto_pub CLI, one per line of stdin."""
    binary = shutil.which("mosquitto_pub")
    if binary is None:
        pytest.skip("mosquitto_pub is not installed: sudo apt-get install -y mosquitto-clients")
    subprocess.run(
        [binary, "-h", services.mqtt_host, "-p", str(services.mqtt_port), "-q", str(qos), "-t", topic, "-l"],
        input="\n".join(messages) + "\n", text=True, check=True, timeout=20,
    )


def _drain(partition: Any, want: int, timeout: float = 10.0) -> list[Message]:
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        batch = partition.next_batch()
        got.extend(batch)
        if not batch:
            time.sleep(0.01)
    return got


def test_dataflow_receives_mosquitto_pub_messages(services, unique: str) -> None:
    settings = services.settings()
    stop = threading.Event()
    source = MqttSource(settings.mqtt, [f"{unique}/+/temp"], flow="test", stop=stop)
    out: list[Message] = []
    flow = Dataflow("mqtt_source_test")
    op.output("out", op.input("in", flow, source), TestingSink(out))
    runner = threading.Thread(target=run_main, args=(flow,), daemon=True)
    runner.start()
    try:
        assert source.wait_subscribed(10), "source did not subscribe"
        _mosquitto_pub(services, f"{unique}/a/temp", [str(i) for i in range(200)])
        assert wait_for(lambda: len(out) >= 200), f"got {len(out)} of 200"
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert [m.payload for m in out] == [str(i).encode() for i in range(200)]
    assert all(m.topic == f"{unique}/a/temp" and m.qos == 1 and m.received.tzinfo for m in out)


def test_persistent_session_keeps_messages_while_stopped(services, unique: str) -> None:
    settings = services.settings()
    source = MqttSource(settings.mqtt, [f"{unique}/#"], flow="persist")
    part = source.build("in", 0, 1)
    assert source.wait_subscribed(10)
    part.close()
    _mosquitto_pub(services, f"{unique}/x", [f"m{i}" for i in range(100)])
    source = MqttSource(settings.mqtt, [f"{unique}/#"], flow="persist")  # same client id
    part = source.build("in", 0, 1)
    try:
        assert part.client_id == f"{settings.mqtt.client_id}-persist-w0"
        got = _drain(part, 100)
    finally:
        part.close()
    assert [m.payload.decode() for m in got] == [f"m{i}" for i in range(100)]


def test_restart_with_new_topics_subscribes_them(services, unique: str) -> None:
    settings = services.settings()
    source = MqttSource(settings.mqtt, [f"{unique}/a"], flow="topics")
    part = source.build("in", 0, 1)
    assert source.wait_subscribed(10)
    part.close()
    _mosquitto_pub(services, f"{unique}/a", ["queued"])
    source = MqttSource(settings.mqtt, [f"{unique}/a", f"{unique}/b"], flow="topics")
    part = source.build("in", 0, 1)
    try:
        assert source.wait_subscribed(10)
        _mosquitto_pub(services, f"{unique}/b", ["new"])
        got = _drain(part, 2)
    finally:
        part.close()
    assert sorted(m.payload for m in got) == [b"new", b"queued"]


def test_unacked_messages_are_redelivered(services, unique: str) -> None:
    settings = services.settings()
    source = MqttSource(settings.mqtt, [f"{unique}/#"], flow="redeliver")
    part = source.build("in", 0, 1)
    assert source.wait_subscribed(10)
    _mosquitto_pub(services, f"{unique}/x", ["a", "b", "c"])
    assert wait_for(lambda: len(part._queue) == 3)
    part.close()  # queued but never handed to the dataflow: not acked
    part = MqttSource(settings.mqtt, [f"{unique}/#"], flow="redeliver").build("in", 0, 1)
    try:
        got = _drain(part, 3)
    finally:
        part.close()
    assert [m.payload for m in got] == [b"a", b"b", b"c"]


def test_shared_subscription_splits_messages(services, unique: str) -> None:
    settings = services.settings(mqtt={"shared_group": f"g{unique}"})
    source = MqttSource(settings.mqtt, [f"{unique}/+"], flow="shared")
    parts = [source.build("in", i, 2) for i in range(2)]
    try:
        assert source.wait_subscribed(10, workers=2)
        _mosquitto_pub(services, f"{unique}/s", [str(i) for i in range(200)])
        got: list[list[Message]] = [[], []]

        def poll() -> bool:
            for i, p in enumerate(parts):
                got[i].extend(p.next_batch())
            return len(got[0]) + len(got[1]) >= 200

        assert wait_for(poll)
    finally:
        for p in parts:
            p.close()
    assert len(got[0]) > 0 and len(got[1]) > 0
    assert sorted(int(m.payload) for m in got[0] + got[1]) == list(range(200))


def test_publisher_and_sink_round_trip(services, unique: str) -> None:
    settings = services.settings()
    source = MqttSource(settings.mqtt, [f"{unique}/#"], flow="rt")
    part = source.build("in", 0, 1)
    try:
        assert source.wait_subscribed(10)
        with MqttPublisher(settings.mqtt, f"{unique}-pub") as pub:
            for i in range(500):
                pub.publish(f"{unique}/p", f"{i}")
            assert pub.wait_all(10)
            assert pub.in_flight == 0
        flow = Dataflow("mqtt_sink_test")
        items = [Outgoing(f"{unique}/sink", f"o{i}".encode()) for i in range(50)]
        op.output("out", op.input("in", flow, TestingSource(items)), MqttSink(settings.mqtt, flow="rt"))
        run_main(flow)  # the sink's close() waits for the acks
        got = _drain(part, 550)
    finally:
        part.close()
    assert [m.payload.decode() for m in got[:500]] == [str(i) for i in range(500)]
    assert [m.payload for m in got[500:]] == [f"o{i}".encode() for i in range(50)]


def test_publisher_names_host_port_when_broker_is_absent() -> None:
    port = free_port()
    with pytest.raises(MqttError, match=rf"127\.0\.0\.1:{port}"):
        MqttPublisher(MqttSettings(port=port), "nobody")


def test_source_needs_topics() -> None:
    with pytest.raises(ValueError, match="no topics"):
        MqttSource(MqttSettings(), [], flow="x")


@pytest.mark.slow
def test_broker_restart_source_resumes_and_publisher_keeps_messages(tmp_path: Any) -> None:
    from oddwatch.services import LocalServices

    local = LocalServices(tmp_path / "own", free_port(), free_port(), free_port())
    local.start()
    settings = MqttSettings(host=local.mqtt_host, port=local.mqtt_port, client_id="restart",
                            reconnect_min_s=0.1, reconnect_max_s=0.5)
    source = MqttSource(settings, ["r/#"], flow="restart")
    part = source.build("in", 0, 1)
    pub = MqttPublisher(settings, "restart-pub")
    try:
        assert source.wait_subscribed(10)
        local.stop(which=("mqtt",))
        for i in range(20):  # broker down: kept by the publisher, not dropped
            pub.publish("r/x", f"{i}")
        assert pub.in_flight == 20
        local.start()
        assert pub.wait_all(15), f"{pub.in_flight} message(s) still unacknowledged"
        got = _drain(part, 20, timeout=15)
    finally:
        pub.close(timeout=1)
        part.close()
        local.stop()
    assert sorted(int(m.payload) for m in got) == list(range(20))
