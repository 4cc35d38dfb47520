"""Operator feedback from the command line: publish a verdict on an alert over MQTT.

``oddwatch feedback ALERT_ID false-positive`` calls :func:`send_feedback`; the flows that hold
the alert's series or log source apply it (:mod:`oddwatch.core.feedback`).
"""

from __future__ import annotations

import os

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
