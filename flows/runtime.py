"""The real connectors of a flow, built only where a caller (a test) did not pass its own."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TypeVar

from oddwatch.settings import Settings, expand

V = TypeVar("V")


def value_of(kv: tuple[str, V]) -> V:
    """The value of a keyed item (to leave a keyed step)."""
    return kv[1]


def stop_on_sigterm(flow: str = "flow", *, timeout_s: float = 30.0) -> None:
    """Stop on SIGTERM (systemd, docker stop) or SIGINT (Ctrl-C): flush, one line, exit 0.

    The signal starts a thread that flushes the InfluxDB writers (up to *timeout_s*; what is
    left stays in their spools), prints one line and ends the process. Nothing is lost by
    ending it there: with recovery, every message is in the WAL and every point the sink took
    in its spool, and the next start resumes from the last snapshot. Without recovery, what
    the dataflow held in memory (open windows, queued messages) is lost.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    stopping = threading.Event()

    def stop(signum: int) -> None:
        from oddwatch.connectors.influx import flush_writers

        flushed, spooled = flush_writers(timeout_s)
        name = signal.Signals(signum).name
        state = "resumes from its last snapshot and WAL" if _recovery else "ran without recovery: in-memory state lost"
        sys.stderr.write(f"oddwatch run {flow}: stopped by {name}; InfluxDB writers "
                         f"{'flushed' if flushed else f'not flushed, {spooled} bytes kept in their spool'}; {state}\n")
        sys.stderr.flush()
        os._exit(0)

    def on_signal(signum: int, frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        threading.Thread(target=stop, args=(signum,), name="oddwatch-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


_recovery = False


def state_dir(settings: Settings, flow: str) -> Path:
    """``<[state].dir>/<flow>``: the flow's WAL (``wal/``) and Bytewax snapshots (``recovery/``)."""
    return Path(expand(settings.state.dir)) / flow


def wal_source(settings: Settings, flow: str, topics: list[str], *, stop: threading.Event | None = None) -> Any:
    """MQTT -> the flow's WAL -> the dataflow (:class:`~oddwatch.connectors.wal.WalSource`)."""
    from oddwatch.connectors.mqtt import MqttWalReceiver
    from oddwatch.connectors.wal import Wal, WalSource

    def receive(wal: Wal, part: str) -> MqttWalReceiver:
        return MqttWalReceiver(settings.mqtt, topics, flow=flow, wal=wal, index=int(part.lstrip("p") or 0))

    return WalSource(state_dir(settings, flow) / "wal", receive, segment_bytes=settings.state.wal_segment_bytes,
                     fsync=settings.state.fsync, stop=stop)


def connectors(
    settings: Settings, flow: str, topics: list[str], *, source: Any = None, influx_sink: Any = None,
    mqtt_sink: Any = None,
) -> tuple[Any, Any, Any]:
    """``(source, influx_sink, mqtt_sink)``: MQTT in (plus feedback), InfluxDB and MQTT out.

    With ``[state].recovery`` (the default), a real run reads MQTT through the flow's WAL and
    its InfluxDB sink spools each batch before returning (see :mod:`oddwatch.connectors.wal`);
    run it with Bytewax recovery (``oddwatch run`` does). A real run (no source given) also starts the flow's health endpoint and ``pipeline``
    points (:func:`oddwatch.observe.health.start_health`).
    """
    durable = "off"
    if source is None:
        from oddwatch.observe.health import start_health

        start_health(settings, flow)
        global _recovery
        _recovery = settings.state.recovery
        stop_on_sigterm(flow)
        subscribed = [*topics, settings.mqtt.feedback_topic]
        if settings.state.recovery:
            source = wal_source(settings, flow, subscribed)
            durable = "always" if settings.state.fsync == "always" else "page-cache"
        else:
            from oddwatch.connectors.mqtt import MqttSource

            source = MqttSource(settings.mqtt, subscribed, flow=flow)
    if influx_sink is None:
        from oddwatch.connectors.influx import InfluxSink

        influx_sink = InfluxSink(settings.influx, durable=durable)
    if mqtt_sink is None:
        from oddwatch.connectors.mqtt import MqttSink

        mqtt_sink = MqttSink(settings.mqtt, flow=flow)
    return source, influx_sink, mqtt_sink
