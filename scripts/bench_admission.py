"""Memory of the sensor flow when every message names a new series, with and without a cap.

Runs the sensor dataflow (Bytewax testing source and sink, no services) on ``--series``
messages, each on its own topic, one second apart, and reports the process's peak RSS. With
``--cap`` below ``--series`` and ``--idle-s 0`` the admission object evicts the least recently
seen series for each new one, so the number of series with state stays at the cap.

    python scripts/bench_admission.py --series 2000 --cap 2000   # unbounded: every series kept
    python scripts/bench_admission.py --series 2000 --cap 200    # bounded
"""

from __future__ import annotations

import argparse
import resource
import shlex
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from bytewax.testing import TestingSink, TestingSource, run_main

from flows.sensors import build_flow
from oddwatch.evaluation import benchtools
from oddwatch.records import UTC, Message, Point
from oddwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"quick": ["--series", "500", "--cap", "100"], "full": []}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--cap", type=int, default=200)
    ap.add_argument("--idle-s", type=float, default=0.0)
    ap.add_argument("--readings", type=int, default=3, help="readings per series")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench-admission.json")
    args = ap.parse_args(argv)
    t0 = datetime.now(UTC) - timedelta(hours=2)
    msgs = [Message(f"plant/s1/a{i // 100}/x{i}", b"1.5", t0 + timedelta(seconds=i * args.readings + j))
            for i in range(args.series) for j in range(args.readings)]
    settings = Settings()
    settings.sensors.max_series, settings.sensors.idle_evict_s = args.cap, args.idle_s
    points: list[Point] = []
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    run_main(build_flow(settings, source=TestingSource(msgs), influx_sink=TestingSink(points),
                        mqtt_sink=TestingSink([])))
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "series": args.series, "cap": args.cap, "readings_per_series": args.readings,
        "scored": sum(p.measurement == "sensor_score" for p in points),
        "over_capacity": sum(p.measurement == "ingest_error" for p in points),
        "peak_rss_mb": round(after / 1024, 1), "rss_growth_mb": round((after - before) / 1024, 1),
        "growth_kb_per_series": round((after - before) / max(1, min(args.series, args.cap)), 1),
        "seconds": round(elapsed, 2),
    }
    command = shlex.join(["python", "scripts/bench_admission.py", *(sys.argv[1:] if argv is None else argv)])
    benchtools.write_results(args.out, "bench-admission", command, {"admission": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
