"""Operator feedback from the command line: publish a verdict over MQTT, see whether a flow applied it.

``oddwatch feedback ALERT_ID false-positive`` calls :func:`send_feedback`; the flows that hold
the alert's series or log source apply it (:mod:`oddwatch.core.feedback`).
"""

from __future__ import annotations

import os
import time

from oddwatch.connectors.influx import InfluxQuery
from oddwatch.connectors.mqtt import MqttError, MqttPublisher
from oddwatch.core.feedback import feedback_message, topic_prefix
from oddwatch.records import Outgoing
from oddwatch.settings import Settings


def send_feedback(settings: Settings, alert_id: str, verdict: str, user: str = "", comment: str = "",
                  *, timeout_s: float = 10.0) -> Outgoing:
    """Publish feedback on ``settings.mqtt`` and wait for the broker's acknowledgement."""
    msg = feedback_message(alert_id, verdict, user, comment, prefix=topic_prefix(settings.mqtt.feedback_topic))
    with MqttPublisher(settings.mqtt, f"{settings.mqtt.client_id}-feedback-{os.getpid()}") as pub:
        pub.publish(msg.topic, msg.payload, qos=msg.qos)
        if not pub.wait_all(timeout_s):
            raise MqttError(f"feedback for {alert_id}: broker {pub.where} did not acknowledge within {timeout_s} s")
    return msg


def wait_applied(settings: Settings, alert_id: str, since_ns: int, timeout_s: float = 5.0) -> list[str]:
    """The sources (``sensor``, ``log``) whose flow applied feedback on *alert_id* since *since_ns*.

    A flow that knows the alert's series or log source writes a ``feedback`` point when it
    applies the verdict; polls InfluxDB for it up to *timeout_s* (empty list: none did).
    Raises :class:`oddwatch.connectors.influx.InfluxError` when InfluxDB cannot be asked.
    """
    quoted = alert_id.replace("\\", "\\\\").replace("'", "\\'")
    q = (f"SELECT \"count\", \"source\" FROM \"feedback\" WHERE alert_id = '{quoted}' "
         f"AND time >= {int(since_ns)}")
    client = InfluxQuery(settings.influx)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            rows = client.query(q)
            if rows or time.monotonic() >= deadline:
                return sorted({str(r.get("source", "unknown")) for r in rows})
            time.sleep(0.25)
    finally:
        client.close()
