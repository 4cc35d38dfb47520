"""The real connectors of a flow, built only where a caller (a test) did not pass its own."""

from __future__ import annotations

import signal
import threading
from typing import Any, TypeVar

from oddwatch.settings import Settings

V = TypeVar("V")


def value_of(kv: tuple[str, V]) -> V:
    """The value of a keyed item (to leave a keyed step)."""
    return kv[1]


def stop_on_sigterm() -> None:
    """Treat SIGTERM (systemd, docker stop, the demo) like Ctrl-C.

    Python's default SIGTERM ends the process at once; as an interrupt, the process exits
    through its exit handlers, so the InfluxDB writer flushes its buffer (or spools it).
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def connectors(
    settings: Settings, flow: str, topics: list[str], *, source: Any = None, influx_sink: Any = None,
    mqtt_sink: Any = None,
) -> tuple[Any, Any, Any]:
    """``(source, influx_sink, mqtt_sink)``: MQTT in (plus feedback), InfluxDB and MQTT out.

    A real run (no source given) also starts the flow's health endpoint and ``pipeline``
    points (:func:`oddwatch.observe.health.start_health`).
    """
    if source is None:
        from oddwatch.connectors.mqtt import MqttSource
        from oddwatch.observe.health import start_health

        start_health(settings, flow)
        stop_on_sigterm()
        source = MqttSource(settings.mqtt, [*topics, settings.mqtt.feedback_topic], flow=flow)
    if influx_sink is None:
        from oddwatch.connectors.influx import InfluxSink

        influx_sink = InfluxSink(settings.influx)
    if mqtt_sink is None:
        from oddwatch.connectors.mqtt import MqttSink

        mqtt_sink = MqttSink(settings.mqtt, flow=flow)
    return source, influx_sink, mqtt_sink
