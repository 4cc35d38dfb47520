"""Cost of one sensor series: detector microseconds per reading, memory, snapshot and restore.

Usage::

    .venv/bin/python scripts/bench_detector.py [--history 4500] [--readings 3000] [--series 200]

Runs :class:`detectors.sensor.SensorDetector` and each of its components over one seeded
series (a daily cycle with noise and occasional spikes), scoring then learning each reading:

* ``fresh``: microseconds per reading over the first 300 readings of a new detector;
* ``full``: microseconds per reading over ``--readings`` readings after ``--history``
  readings, when every buffer is full (best of ``--repeats``);
* ``memory``: bytes allocated by the detector at full history (tracemalloc, numpy included);
* ``snapshot``: ``len(pickle.dumps(detector))`` at full history;
* ``restore``: ``pickle.loads`` of that snapshot, and loads plus the first score (median);
* ``--series N``: N detectors at full history (copies of one) against N fresh ones, one reading
  each in turn, microseconds per reading (a working set far larger than the CPU caches).
"""

from __future__ import annotations

import argparse
import math
import pickle
import random
import shlex
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from detectors.sensor import SensorDetector
from oddwatch.evaluation import benchtools

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"quick": ["--history", "1500", "--readings", "1000", "--repeats", "1"], "full": ["--series", "1000"]}


def series(n: int, seed: int = 1) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{"value": 50 + 10 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 1)
             + (15.0 if rng.random() < 0.002 else 0.0)} for i in range(n)]


def feed(det: Any, xs: list[dict[str, float]]) -> float:
    """Score then learn each reading; microseconds per reading."""
    start = time.perf_counter()
    for x in xs:
        det.score_one(x)
        det.learn_one(x)
    return 1e6 * (time.perf_counter() - start) / len(xs)


def warm(make: Any, xs: list[dict[str, float]]) -> bytes:
    det = make()
    feed(det, xs)
    return pickle.dumps(det)


def loaded(blob: bytes, x: dict[str, float]) -> Any:
    det = pickle.loads(blob)
    det.score_one(x)  # a loaded detector finishes its restore on the first score
    return det


def full_us(blob: bytes, xs: list[dict[str, float]], repeats: int) -> float:
    return min(feed(loaded(blob, xs[0]), xs) for _ in range(repeats))


def memory_bytes(blob: bytes, x: dict[str, float]) -> int:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    det = loaded(blob, x)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del det
    return used


def restore_us(blob: bytes, x: dict[str, float], n: int = 30) -> tuple[float, float]:
    loads, first = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        det = pickle.loads(blob)
        t1 = time.perf_counter()
        det.score_one(x)
        t2 = time.perf_counter()
        loads.append(t1 - t0)
        first.append(t2 - t0)
    return 1e6 * statistics.median(loads), 1e6 * statistics.median(first)


def many_us(dets: list[Any], xs: list[dict[str, float]], rounds: int) -> float:
    start = time.perf_counter()
    for r in range(rounds):
        x = xs[r]
        for det in dets:
            det.score_one(x)
            det.learn_one(x)
    return 1e6 * (time.perf_counter() - start) / (rounds * len(dets))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=int, default=4500, help="readings before the full-history measurement")
    ap.add_argument("--readings", type=int, default=3000, help="readings timed at full history")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--series", type=int, default=0, help="also time N series at full history vs N fresh (0: off)")
    ap.add_argument("--rounds", type=int, default=50, help="readings per series in the --series measurement")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench-detector.json")
    args = ap.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    xs = series(args.history + args.readings + 300)
    hist, timed = xs[: args.history], xs[args.history : args.history + args.readings]
    print(f"{'':20} {'fresh us':>9} {'full us':>8} {'memory B':>9} {'snapshot B':>10} {'loads us':>9} "
          f"{'+1st score us':>13}")
    makers: dict[str, Any] = {"SensorDetector": SensorDetector}
    makers.update({f"  {name}": (lambda name=name: SensorDetector().parts[name]) for name in SensorDetector().parts})
    for label, make in makers.items():
        fresh = min(feed(make(), xs[:300]) for _ in range(args.repeats))
        blob = warm(make, hist)
        full = full_us(blob, timed, args.repeats)
        loads, first = restore_us(blob, timed[0])
        memory = memory_bytes(blob, timed[0])
        print(f"{label:20} {fresh:9.1f} {full:8.1f} {memory:9d} {len(blob):10d} {loads:9.0f} {first:13.0f}")
        results[label.strip()] = {"fresh_us_per_reading": round(fresh, 2), "full_us_per_reading": round(full, 2),
                                  "memory_bytes": memory, "snapshot_bytes": len(blob), "loads_us": round(loads),
                                  "first_score_after_load_us": round(first)}
    if args.series:
        blob = warm(SensorDetector, hist)
        n, rounds = args.series, args.rounds
        aged = [loaded(blob, timed[0]) for _ in range(n)]
        aged_us = many_us(aged, timed, rounds)
        del aged
        fresh_dets = [SensorDetector() for _ in range(n)]
        many_us(fresh_dets, xs[:300 - rounds], 300 - rounds)  # past the warm-up, still short-history
        fresh_us = many_us(fresh_dets, xs[300 - rounds :], rounds)
        print(f"{n} series, {rounds} readings each: full history {aged_us:.1f} us/reading, "
              f"300 readings of history {fresh_us:.1f} us/reading (throughput ratio {fresh_us / aged_us:.2f})")
        results["many_series"] = {"series": n, "rounds": rounds, "full_history_us_per_reading": round(aged_us, 2),
                                  "history_300_us_per_reading": round(fresh_us, 2)}
    command = shlex.join(["python", "scripts/bench_detector.py", *(sys.argv[1:] if argv is None else argv)])
    benchtools.write_results(args.out, "bench-detector", command, results, show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
