"""The MQTT source caps a batch by the lines (readings, log lines) it carries, not only by messages."""

from __future__ import annotations

from typing import Any

import pytest

from oddwatch.connectors import mqtt
from oddwatch.connectors.mqtt import MqttPublisher, MqttSource
from oddwatch.flowrunner import wait_for

pytestmark = pytest.mark.integration


def test_batch_holds_at_most_the_line_cap(services: Any, unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt, "BATCH_CAP_LINES", 250)
    settings = services.settings()
    source = MqttSource(settings.mqtt, [f"{unique}/#"], flow="batch")
    part = source.build("in", 0, 1)
    try:
        assert source.wait_subscribed(10)
        body = "\n".join(f"m value={i}" for i in range(100)).encode()  # 100 lines per message
        with MqttPublisher(settings.mqtt, f"{settings.mqtt.client_id}-pub") as pub:
            for _ in range(10):
                pub.publish(f"{unique}/x", body, qos=1)
        assert wait_for(lambda: len(part._queue) == 10, 10)
        sizes = []
        while sum(sizes) < 10:
            batch = part.next_batch()
            if batch:
                sizes.append(len(batch))
        assert sizes == [3, 3, 3, 1]  # 3 messages reach the 250-line cap (300 lines)
    finally:
        part.close()
