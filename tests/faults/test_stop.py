"""Nothing lost across a stop: SIGTERM (systemd, docker stop) ends a flow with exit status 0 and
one line, and lines in open log windows are scored after the restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from oddwatch.connectors.influx import InfluxQuery
from oddwatch.faults import LOG_FLOW_ENV, FlowProcess, PacedPublisher, log_messages, stored_lines, wait_count

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_log_flow_sigterm_then_restart_loses_no_line(services: Any, unique: str, tmp_path: Path) -> None:
    settings = services.settings(state={"snapshot_s": 1.0})
    messages = log_messages(unique, 3000)
    query = InfluxQuery(services.local.influx_settings())
    with FlowProcess(settings, "logs", tmp_path, env=LOG_FLOW_ENV) as flow:
        flow.start()
        publisher = PacedPublisher(settings, messages, 1000.0, client_id=f"{unique}-pub").start()
        publisher.wait_published(1500)
        before = len(flow.stderr())
        assert flow.terminate() == 0
        said = flow.stderr()[before:]
        assert said.count("\n") == 1 and "stopped by SIGTERM" in said, said
        assert "Traceback" not in flow.stderr() and "panicked" not in flow.stderr()
        flow.start()
        assert publisher.join() == len(messages)
        stored = wait_count(lambda: stored_lines(query, unique), len(messages), 60)
    assert stored == len(messages), f"published {len(messages)} lines, stored {stored}: lost {len(messages) - stored}"
