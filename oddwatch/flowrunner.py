"""Helpers for end-to-end tests (and the sensor benchmark) against real Mosquitto and InfluxDB.

- :class:`FlowRunner` runs a dataflow factory's flow (``flows.sensors.build_flow`` by default)
  with the real :class:`~oddwatch.connectors.mqtt.MqttSource`, ``InfluxSink`` and ``MqttSink`` in
  a background thread; :meth:`FlowRunner.stop` sets the source's ``stop`` event, so the
  partitions hand over what is queued and end, and the sinks flush on close.
- :class:`TopicCollector` subscribes to output topics (alerts, dead letters) through
  :mod:`oddwatch.connectors.mqtt`, i.e. a real paho client on the broker.
- :func:`mosquitto_pub` publishes with the ``mosquitto_pub`` CLI, a client we did not write.
- :func:`wait_for` polls a condition.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

from oddwatch.connectors.mqtt import MqttSource
from oddwatch.ingest.topics import own_prefixes, subscribe_filters
from oddwatch.records import Message
from oddwatch.settings import Settings


def wait_for(cond: Callable[[], bool], timeout: float = 15.0, interval: float = 0.1) -> bool:
    """Poll *cond* until it is true (True) or *timeout* seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def build_sensor_flow(settings: Settings, source: MqttSource) -> Dataflow:
    """``flows.sensors.build_flow`` with *source*, real InfluxDB and MQTT sinks."""
    from flows.sensors import build_flow

    return build_flow(settings, source=source)


class FlowRunner:
    """Runs a dataflow with a real :class:`MqttSource` in a daemon thread.

    Parameters
    ----------
    settings
        Broker, InfluxDB and flow settings; ``settings.mqtt.client_id`` names the persistent
        MQTT session, so a second runner with the same settings resumes the first one's.
    factory
        ``factory(settings, source) -> Dataflow``; defaults to the sensor flow.
    topics
        Filters to subscribe to; default: ``settings.sensors.subscriptions``.
    flow
        The flow name in the source's client id (``{client_id}-{flow}-w0``), as the CLI uses.
    """

    def __init__(
        self,
        settings: Settings,
        factory: Callable[[Settings, MqttSource], Dataflow] = build_sensor_flow,
        *,
        topics: Sequence[str] | None = None,
        flow: str = "sensors",
    ) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        topics = (list(topics) if topics is not None
                  else subscribe_filters(settings.sensors.subscriptions, own_prefixes(settings)))
        self.source = MqttSource(settings.mqtt, topics, flow=flow, stop=self.stop_event)
        self.dataflow = factory(settings, self.source)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"flow-{flow}", daemon=True)

    def _run(self) -> None:
        try:
            run_main(self.dataflow, epoch_interval=timedelta(seconds=1))
        except BaseException as exc:  # surfaced by stop()/check()
            self.error = exc

    def start(self, timeout: float = 15.0) -> FlowRunner:
        """Start the flow and wait until its source has subscribed (or resumed its session)."""
        self._thread.start()
        if not self.source.wait_subscribed(timeout):
            self.stop_event.set()
            self.check()
            raise TimeoutError(
                f"flow runner: MQTT source {self.settings.mqtt.client_id} did not subscribe to "
                f"{self.source.topics} on {self.settings.mqtt.host}:{self.settings.mqtt.port} within {timeout} s"
            )
        return self

    def check(self) -> None:
        """Raise the flow thread's exception, if it died with one."""
        if self.error is not None:
            raise RuntimeError(f"flow runner: the dataflow failed: {self.error!r}") from self.error

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """End the flow (queued messages are processed, sinks flush and close) and join it."""
        self.stop_event.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"flow runner: the dataflow did not stop within {timeout} s")
        self.check()

    def __enter__(self) -> FlowRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive() or self.error is not None:
            self.stop()


class TopicCollector:
    """Collects messages on *topics* through a real MQTT client (:mod:`oddwatch.connectors.mqtt`)."""

    def __init__(self, settings: Settings, topics: Sequence[str], *, name: str = "collector") -> None:
        mqtt = dataclasses.replace(settings.mqtt, client_id=f"{settings.mqtt.client_id}-{name}")
        self.source = MqttSource(mqtt, list(topics), flow=name)
        self.partition = self.source.build("collect", 0, 1)
        self.messages: list[Message] = []
        if not self.source.wait_subscribed(10.0):
            self.partition.close()
            raise TimeoutError(f"collector {mqtt.client_id}: no SUBACK for {list(topics)} within 10 s")

    def poll(self) -> list[Message]:
        """Everything received so far (the new messages are appended to ``messages``)."""
        while batch := self.partition.next_batch():
            self.messages.extend(batch)
        return self.messages

    def wait(self, cond: Callable[[list[Message]], bool], timeout: float = 15.0) -> bool:
        """Wait until ``cond(messages)`` holds."""
        return wait_for(lambda: cond(self.poll()), timeout, interval=0.05)

    def close(self) -> None:
        self.partition.close()

    def __enter__(self) -> TopicCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mosquitto_pub(
    settings: Settings, topic: str, payload: bytes | None = None, *, lines: Sequence[str] | None = None, qos: int = 1
) -> None:
    """Publish with the ``mosquitto_pub`` CLI: one binary-safe message (``payload``, read from
    stdin with ``-s``; ``b""`` sends an empty message with ``-n``), or one message per line."""
    binary = shutil.which("mosquitto_pub") or shutil.which("mosquitto_pub", path="/usr/bin:/usr/local/bin")
    if binary is None:
        raise FileNotFoundError("mosquitto_pub is not installed: sudo apt-get install -y mosquitto-clients")
    argv = [binary, "-h", settings.mqtt.host, "-p", str(settings.mqtt.port), "-q", str(qos), "-t", topic]
    data: bytes | None
    if lines is not None:
        argv.append("-l")
        data = ("\n".join(lines) + "\n").encode()
    elif payload == b"":
        argv.append("-n")
        data = None
    elif payload is not None:
        argv.append("-s")
        data = payload
    else:
        raise ValueError("mosquitto_pub: pass payload or lines")
    done = subprocess.run(argv, input=data, capture_output=True, timeout=20, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mosquitto_pub to {topic!r} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")


def count(services: Any, query: str) -> int:
    """The first numeric value of the first row of an InfluxQL ``COUNT`` query (0 when empty)."""
    rows = services.query(query)
    if not rows:
        return 0
    return int(next(v for k, v in rows[0].items() if k != "time" and isinstance(v, (int, float))))
