"""Cost of one sensor series: detector microseconds per reading and pickled state bytes.

Usage::

    .venv/bin/python scripts/bench_detector.py [--readings 20000]

Runs :class:`detectors.sensor.SensorDetector` and each of its components over one seeded
series (a daily cycle with noise and occasional spikes), scoring then learning each reading,
and prints the amortised microseconds per reading and ``len(pickle.dumps(state))`` at the end,
when every buffer is full.
"""

from __future__ import annotations

import argparse
import math
import pickle
import random
import time
from typing import Any

from detectors.sensor import SensorDetector


def series(n: int, seed: int = 1) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{"value": 50 + 10 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 1)
             + (15.0 if rng.random() < 0.002 else 0.0)} for i in range(n)]


def bench(det: Any, xs: list[dict[str, float]]) -> tuple[float, int]:
    start = time.perf_counter()
    for x in xs:
        det.score_one(x)
        det.learn_one(x)
    return 1e6 * (time.perf_counter() - start) / len(xs), len(pickle.dumps(det))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=20000)
    args = ap.parse_args(argv)
    xs = series(args.readings)
    us, size = bench(SensorDetector(), xs)
    print(f"SensorDetector      {us:6.1f} us/reading  {size:7d} bytes pickled")
    parts = SensorDetector().parts
    for name in parts:
        us, size = bench(SensorDetector().parts[name], xs)
        print(f"  {name:<17} {us:6.1f} us/reading  {size:7d} bytes pickled")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
