"""Throughput of the incidents dataflow (Bytewax testing source and sinks, no broker).

Usage::

    .venv/bin/python scripts/bench_incidents.py [--alerts 20000] [--assets 200] [--out results/incidents.json]

Alert open/close messages (JSON as the sensor and log flows publish them) for ``--assets``
assets, two sources each, in time order, plus one verdict per 10 alerts, go through
``flows.incidents.build_flow``; prints input messages per second and the points and messages
written.
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bytewax.testing import TestingSink, TestingSource, run_main

from flows.incidents import build_flow
from oddwatch.core.feedback import feedback_message
from oddwatch.evaluation import benchtools
from oddwatch.records import Alert, Message
from oddwatch.schema import alert_message
from oddwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"quick": ["--alerts", "4000"], "full": []}

START = datetime(2026, 1, 5, tzinfo=UTC)


def messages(n_alerts: int, n_assets: int, seed: int = 1) -> list[Message]:
    """Open and close messages of *n_alerts* alerts (and a verdict per 10), in time order."""
    rng = random.Random(seed)
    out: list[tuple[datetime, Message]] = []
    for i in range(n_alerts):
        asset = f"a{rng.randrange(n_assets)}"
        key = f"s1/{asset}/temp" if i % 2 else f"s1/{asset}/plc"
        opened = START + timedelta(seconds=30 * i)
        closed = opened + timedelta(seconds=rng.uniform(60, 900))
        for kind, ts in (("open", opened), ("close", closed)):
            alert = Alert(f"{key}:{int(opened.timestamp())}", "sensor" if i % 2 else "log",
                          kind, "warning", "s1", asset, f"{key} {kind}", "", 0.9, 0.5, opened, ts, {"key": key})
            m = alert_message(alert, "oddwatch/alerts")
            out.append((ts, Message(m.topic, m.payload, ts)))
        if i % 10 == 0:
            fb = feedback_message(f"{key}:{int(opened.timestamp())}", "false-positive" if i % 20 else "confirmed")
            out.append((closed, Message(fb.topic, fb.payload, closed)))
    out.sort(key=lambda x: x[0])
    return [m for _, m in out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=20000)
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-incidents.json")
    args = parser.parse_args(argv)
    msgs = messages(args.alerts, args.assets)
    points: list[object] = []
    sent: list[object] = []
    flow = build_flow(Settings(), source=TestingSource(msgs, batch_size=500), influx_sink=TestingSink(points),
                      mqtt_sink=TestingSink(sent))
    t0 = time.perf_counter()
    run_main(flow)
    elapsed = time.perf_counter() - t0
    result = {"messages": len(msgs), "alerts": args.alerts, "assets": args.assets, "elapsed_s": round(elapsed, 2),
              "messages_per_s": round(len(msgs) / elapsed), "points": len(points), "mqtt_messages": len(sent)}
    command = shlex.join(["python", "scripts/bench_incidents.py", *(sys.argv[1:] if argv is None else argv)])
    benchtools.write_results(args.out, "bench-incidents", command, {"incidents_flow": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
