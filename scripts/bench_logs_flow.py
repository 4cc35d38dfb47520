"""The log dataflow's own cost per line: HDFS messages in memory -> ``flows.logs`` -> lists.

Usage::

    .venv/bin/python scripts/bench_logs_flow.py [--lines 60000] [--per-message 1,100] [--profile OUT.prof]
    .venv/bin/python scripts/bench_logs_flow.py --flood 50000

No MQTT and no InfluxDB: the flow (``flows.logs.build_flow`` with session windows by block id,
the default model loaded and warmed before the clock starts) reads the messages from a
Bytewax ``TestingSource`` and writes to ``TestingSink`` lists, so the figures are the flow's
own work (parse, templates, windows, novelty, points), which the end-to-end run
(``scripts/bench_logs_e2e.py``) shares with the publisher, Mosquitto and InfluxDB. Messages are
built as there: JSON lines ``{"ts", "msg"}``, K per message. Reported per K: lines/s of wall
time and per CPU second of this process, windows decided, model calls.

``--flood N`` adds a second source on another host that sends N lines of unique random
tokens over ``--flood-minutes`` of event time, interleaved with the HDFS lines, and reports both sources' decided windows and the
flood's ``template_flood`` errors: the HDFS source must keep its rate.

Prints a markdown table and writes ``out/bench-logs-flow.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import random
import shlex
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_logs_e2e import DEFAULT_LOG, HDFS_LOG, read_hdfs, stamp  # noqa: E402

from oddwatch.evaluation import benchtools  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"quick": ["--lines", "5000", "--per-message", "100"], "full": [], "data": "hdfs"}  # how scripts/bench.py runs it


def messages(stamped: list[tuple[datetime, str]], topic: str, per_message: int, received: datetime) -> list[Any]:
    """*per_message* JSON lines per :class:`~oddwatch.records.Message`."""
    import json

    from oddwatch.records import Message

    rows = [json.dumps({"ts": ts.isoformat(), "msg": msg}) for ts, msg in stamped]
    return [Message(topic, "\n".join(rows[i:i + per_message]).encode(), received)
            for i in range(0, len(rows), per_message)]


def flood_lines(n: int, stamped: list[tuple[datetime, str]], minutes: float, seed: int = 0) -> list[tuple[datetime, str]]:
    """*n* lines of unique random words spread over *minutes* of event time from the middle of
    the HDFS lines' span."""
    rng = random.Random(seed)
    t0 = stamped[len(stamped) // 2][0]
    span = 60.0 * minutes
    letters = "abcdefghijklmnopqrstuvwxyz"

    def word() -> str:
        return "".join(rng.choice(letters) for _ in range(rng.randint(4, 9)))

    return [(t0 + timedelta(seconds=span * i / n), f"{word()} {word()} {word()} {word()} {word()}")
            for i in range(n)]


def run_flow(msgs: list[Any], embedder: Any, profile: Path | None) -> tuple[dict[str, Any], list[Any]]:
    from bytewax.testing import TestingSink, TestingSource, run_main

    from flows.logs import build_flow
    from oddwatch.settings import build_settings

    settings = build_settings({"log_detector": {"window_mode": "session"}})
    points: list[Any] = []
    sent: list[Any] = []
    flow = build_flow(settings, source=TestingSource(msgs, batch_size=1000), influx_sink=TestingSink(points),
                      mqtt_sink=TestingSink(sent), embedder=embedder)
    prof = cProfile.Profile() if profile else None
    cpu0, t0 = benchtools.cpu_s(), time.perf_counter()
    if prof is not None:
        prof.enable()
    run_main(flow)
    if prof is not None:
        prof.disable()
        prof.dump_stats(str(profile))
    wall, cpu = time.perf_counter() - t0, benchtools.cpu_s() - cpu0
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}, points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="benchmark data folder (reads hdfs/HDFS_dev.log)")
    parser.add_argument("--log", type=Path, default=None, help="HDFS log file (default: --data/hdfs/HDFS_dev.log, else the `oddwatch datasets` cache)")
    parser.add_argument("--lines", type=int, default=60_000, help="HDFS lines per run (default 60000)")
    parser.add_argument("--per-message", default="1,100", help="lines per message, one run each (default 1,100)")
    parser.add_argument("--flood", type=int, default=0, help="also send this many unique lines from a second source")
    parser.add_argument("--flood-minutes", type=float, default=10.0, help="event time the flood spans (default 10)")
    parser.add_argument("--model", default="default", help="[log_detector] model (default: the default model)")
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile stats of the (last) run here")
    parser.add_argument("--out", default=str(ROOT / "out" / "bench-logs-flow.json"))
    args = parser.parse_args(argv)
    args.log = args.log or (args.data / HDFS_LOG if args.data else DEFAULT_LOG)
    if not args.log.exists():
        print(f"bench_logs_flow: {args.log} not found (pass --log, or run `oddwatch datasets fetch hdfs`); skipped",
              file=sys.stderr)
        return 0
    command = shlex.join(["python", "scripts/bench_logs_flow.py", *(sys.argv[1:] if argv is None else argv)])

    from oddwatch.core.log_pipeline import LogParams, build_embedder
    from oddwatch.records import UTC

    lines = read_hdfs(args.log, args.lines)
    now = datetime.now(UTC)
    stamped = stamp(lines, now=now.timestamp(), second_stamps=False)
    embedder = build_embedder(LogParams(window_mode="session", model=args.model))
    embedder.encode([lines[0][1]])
    results: dict[str, dict[str, Any]] = {}
    for k in [int(k) for k in args.per_message.split(",") if k.strip()]:
        msgs = messages(stamped, "logs/bench/hdfs1/hdfs", k, now)
        if args.flood:  # interleaved by the event time of each message's first line
            noisy = flood_lines(args.flood, stamped, args.flood_minutes)
            timed = [(stamped[i][0], 0, m) for i, m in zip(range(0, len(stamped), k), msgs, strict=True)]
            timed += [(noisy[i][0], 1, m) for i, m in zip(range(0, len(noisy), k),
                                                          messages(noisy, "logs/bench/flood1/app", k, now), strict=True)]
            msgs = [m for _, _, m in sorted(timed, key=lambda x: (x[0], x[1]))]
        n = len(lines) + args.flood
        print(f"bench_logs_flow: {n} lines, {k} per message", file=sys.stderr)
        timing, points = run_flow(msgs, embedder, args.profile)
        windows: dict[str, int] = {}
        for p in points:
            if getattr(p, "measurement", "") == "log_window":
                host = p.tags.get("host", "?")
                windows[host] = windows.get(host, 0) + 1
        errors: dict[str, int] = {}
        for p in points:
            if getattr(p, "measurement", "") == "ingest_error":
                reason = str(p.tags.get("reason", "?"))
                errors[reason] = errors.get(reason, 0) + 1
        results[f"per_message_{k}"] = {
            "lines": n, "lines_per_message": k, **timing,
            "lines_per_s": round(n / timing["wall_s"]), "lines_per_cpu_s": round(n / timing["cpu_s"]),
            "windows_by_host": windows, "ingest_errors": errors, "load_avg_1m": round(__import__("os").getloadavg()[0], 2),
        }
    benchtools.write_results(Path(args.out), "bench-logs-flow", command, results, show=False)
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    print("| metric | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for key in keys:
        print(f"| {key} | " + " | ".join(str(r.get(key, "")) for r in results.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
