"""``oddwatch up``: both flows under one supervisor; a signal or a dead flow stops them all."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oddwatch import up
from oddwatch.settings import Settings, as_dict, to_toml


def fake_flows(monkeypatch: pytest.MonkeyPatch, scripts: dict[str, str]) -> None:
    def command(flow: str, config: str | None, workers: int) -> list[str]:
        return [sys.executable, "-c", scripts[flow]]

    monkeypatch.setattr(up, "flow_command", command)


# Like a flow: SIGTERM ends it through its exit path, which prints a line.
SERVE = ("import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, lambda *a: (print('flushed', flush=True), sys.exit(0)))\n"
         "print('serving', flush=True)\n"
         "time.sleep(60)\n")


def test_sigterm_stops_every_flow_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_flows(monkeypatch, {"sensors": SERVE, "logs": SERVE, "incidents": SERVE})
    out = io.StringIO()
    started: list[up.Child] = []

    def ready(children: list[up.Child]) -> None:
        started.extend(children)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    t0 = time.monotonic()
    assert up.run_up(Settings(), out=out, ready=ready) == 0
    assert time.monotonic() - t0 < 10
    assert all(c.proc.returncode == 0 for c in started)
    text = out.getvalue()
    assert "[sensors] flushed" in text and "[logs] flushed" in text
    assert "SIGTERM: stopping sensors, logs, incidents" in text
    assert signal.getsignal(signal.SIGTERM) is not up.Stop  # handlers restored


def test_a_flow_that_exits_stops_the_other(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_flows(monkeypatch, {"sensors": SERVE, "incidents": SERVE, "logs": "import sys; print('bad config'); sys.exit(2)"})
    out = io.StringIO()
    assert up.run_up(Settings(), out=out) == 1
    text = out.getvalue()
    assert "the logs flow exited with status 2" in text
    assert "[sensors] flushed" in text and "oddwatch up: sensors stopped\n" in text


@pytest.mark.slow
def test_oddwatch_up_runs_both_real_flows(services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = services.settings(log_detector={"model": "hashing"})
    config = tmp_path / "oddwatch.toml"
    config.write_text(to_toml(as_dict(settings, mask=False)))
    proc = subprocess.Popen([sys.executable, "-m", "oddwatch.cli", "--config", str(config), "up"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            subscribed = {flow for flow in ("sensors", "logs")
                          if any(x.startswith(f"[{flow}]") and "subscribing to" in x for x in lines)}
            if subscribed == {"sensors", "logs"}:
                break
        else:
            pytest.fail("".join(lines[-30:]))
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + rest
    assert proc.returncode == 0, text[-3000:]
    assert "sensors stopped" in text and "logs stopped" in text


def test_demo_summary_says_what_is_still_running_and_how_to_stop_it() -> None:
    from oddwatch.demo import QUERIES, format_summary

    faults = {"detected": 1, "injected": 1, "mean_delay_s": 5.0, "alerts": 1, "false_alerts": 0, "faults": []}
    text = format_summary({
        "wall_s": 60.0, "simulated_s": 3600.0, "readings_published": 10, "series": 1, "readings_scored": 10,
        "sensor_faults": faults, "queries": QUERIES, "grafana": "deploy/grafana",
        "still_running": {"mqtt": "Mosquitto on 127.0.0.1:1883", "influx": "InfluxDB on http://127.0.0.1:8086"},
    })
    assert "Still running: Mosquitto on 127.0.0.1:1883; InfluxDB on http://127.0.0.1:8086." in text
    assert "oddwatch services down" in text and "oddwatch up" in text and "oddwatch alerts --since 2h" in text


def test_a_flow_that_fails_is_restarted_with_backoff(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    crash_once = (f"import pathlib, sys\np = pathlib.Path({str(marker)!r})\n"
                  "if not p.exists():\n    p.write_text('x'); print('broker gone', flush=True); sys.exit(1)\n" + SERVE)
    fake_flows(monkeypatch, {"sensors": SERVE, "incidents": SERVE, "logs": crash_once})
    out = io.StringIO()

    def ready(children: list[up.Child]) -> None:
        def later() -> None:
            deadline = time.monotonic() + 20
            while "restarted the logs flow" not in out.getvalue() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        import threading

        threading.Thread(target=later, daemon=True).start()

    assert up.run_up(Settings(), out=out, ready=ready) == 0
    text = out.getvalue()
    assert "the logs flow exited with status 1; restarting it in 1 s" in text
    assert "restarted the logs flow" in text and text.count("[logs] serving") == 1
