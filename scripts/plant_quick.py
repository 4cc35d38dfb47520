"""Quick plant harness: run :class:`oddwatch.core.series.SeriesState` over the plant simulator offline.

Usage::

    .venv/bin/python scripts/plant_quick.py [--seeds 1,2,3,4,5] [--n-series 32] [--set key=value ...]

The demo scenario (``day_s=1200``, a third of the run as warm-up) with ``readings`` readings
per series, for each seed. A fault counts as detected when an alert OPENS on its series
between its first reading and ``grace`` readings after its last one (delay in readings from
its first reading); every other alert opening is a false alert. Prints one line per fault
(``-v``) and a summary per fault kind: detected / injected, median and max delay, and the
false alerts per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from oddwatch.core.series import SeriesParams, SeriesState
from oddwatch.records import Reading
from oddwatch.settings import AlertSettings
from simulators.plant import FAULT_KINDS, PlantSimulation

_D = TypeVar("_D", SeriesParams, AlertSettings)

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FaultResult:
    seed: int
    kind: str
    series: str
    magnitude: float
    detected: bool
    delay: int | None  # readings from the fault's first reading to the alert
    max_score: float
    open_at_start: bool  # an alert (opened earlier) was still open when the fault began


@dataclass
class RunResult:
    faults: list[FaultResult]
    false_alerts: list[tuple[str, int, str]]  # (series, reading index, the component that alerted)
    readings: int
    seconds: float


def run_seed(seed: int, *, n_series: int = 32, readings: int = 1200, grace: int = 10,
             params: SeriesParams | None = None, alerts: AlertSettings | None = None,
             explain: bool = False) -> RunResult:
    """Run the pipeline over one seeded plant and match its alerts with the injected faults."""
    tick_s = 3.0  # seconds between two readings of one series (the demo's 640/min over 32 series)
    sim = PlantSimulation(seed=seed, rate=n_series / tick_s, duration_s=readings * tick_s, start=START,
                          n_series=n_series, day_s=400 * tick_s, warmup_frac=0.33)
    states: dict[str, SeriesState] = {}
    rows: dict[str, list[tuple[float, bool, bool, str | None, str, float]]] = defaultdict(list)
    elapsed = 0.0
    for r in sim:
        key = r.series
        st = states.get(key)
        if st is None:
            site, asset, sensor = key.split("/")
            st = states[key] = SeriesState(site, asset, sensor, params, alerts)
        comps = st.detector.components({"value": r.value}) if explain else {}  # before learning it
        t0 = time.perf_counter()
        out = st.step(Reading(st.site, st.asset, st.sensor, r.ts, r.value))
        elapsed += time.perf_counter() - t0
        why = max(comps, key=comps.__getitem__) if comps else ""
        rows[key].append((out.score, out.is_anomaly, st.tracker.is_open, r.fault_id, why, out.raw_score))
    matched: set[tuple[str, int]] = set()
    results = []
    by_id = {f.fault_id: f for f in sim.plan.faults}
    for f in sim.plan.faults:
        rs = rows[f.series]
        idx = [i for i, row in enumerate(rs) if row[3] == f.fault_id]
        first, last = idx[0], min(idx[-1] + grace, len(rs) - 1)
        opens = [i for i in range(first, last + 1) if rs[i][1]]
        matched.update((f.series, i) for i in opens)
        results.append(FaultResult(
            seed, f.kind, f.series, by_id[f.fault_id].magnitude_sigma, bool(opens),
            opens[0] - first if opens else None, max(rs[i][5] for i in range(first, last + 1)),
            first > 0 and rs[first - 1][2]))
    false_alerts = [(k, i, row[4]) for k, rs in rows.items() for i, row in enumerate(rs)
                    if row[1] and (k, i) not in matched]
    return RunResult(results, false_alerts, sum(len(rs) for rs in rows.values()), elapsed)


def _parse_sets(items: list[str], obj: _D) -> _D:
    """``obj`` with the ``key=value`` items that name one of its fields applied."""
    hints = {f.name: f.type for f in dataclasses.fields(obj)}
    changes = {}
    for item in items:
        key, _, raw = item.partition("=")
        if key not in hints:
            continue
        current = getattr(obj, key)
        changes[key] = type(current)(raw) if not isinstance(current, bool) else raw.lower() in ("1", "true")
    return dataclasses.replace(obj, **changes)


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--n-series", type=int, default=32)
    ap.add_argument("--readings", type=int, default=1200, help="readings per series")
    ap.add_argument("--grace", type=int, default=10, help="readings after a fault's end still credited")
    ap.add_argument("--set", action="append", default=[], help="SeriesParams/AlertSettings key=value")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--explain", action="store_true", help="name the component behind each false alert "
                    "(SensorDetector.components; timings then exclude it)")
    args = ap.parse_args(argv)
    params = _parse_sets(args.set, SeriesParams())
    alerts = _parse_sets(args.set, AlertSettings())
    seeds = [int(s) for s in args.seeds.split(",") if s]
    faults: list[FaultResult] = []
    n_false, n_readings, seconds = 0, 0, 0.0
    for seed in seeds:
        res = run_seed(seed, n_series=args.n_series, readings=args.readings, grace=args.grace,
                       params=params, alerts=alerts, explain=args.explain)
        faults += res.faults
        n_false += len(res.false_alerts)
        n_readings += res.readings
        seconds += res.seconds
        if args.verbose:
            for f in res.faults:
                state = f"delay {f.delay}" if f.detected else "MISSED" + (" (alert open)" if f.open_at_start else "")
                print(f"seed {seed} {f.kind:12s} {f.magnitude:6.2f} sigma  {f.series:32s} "
                      f"max score {f.max_score:.3f}  {state}")
            for series, i, why in res.false_alerts:
                print(f"seed {seed} false alert {series} at reading {i} {why}")
    print(f"{len(seeds)} seeds x {args.n_series} series x {args.readings} readings, grace {args.grace}")
    for kind in FAULT_KINDS:
        fs = [f for f in faults if f.kind == kind]
        if not fs:
            continue
        delays = [f.delay for f in fs if f.delay is not None]
        delay = f"delay median {statistics.median(delays):5.1f} max {max(delays):3d}" if delays else "no detection"
        print(f"{kind:12s} detected {len(delays)}/{len(fs)}  {delay}  "
              f"min max-score {min(f.max_score for f in fs):.3f}")
    total = sum(f.detected for f in faults)
    print(f"all faults   detected {total}/{len(faults)}  false alerts {n_false} "
          f"({n_false / max(len(seeds), 1):.1f} per run)  {1e6 * seconds / max(n_readings, 1):.1f} us/reading")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
