"""Assets deciding together, offline: the plant simulator and the Tennessee Eastman process.

Usage::

    .venv/bin/python scripts/asset_quick.py plant [--seeds 1-10] [--per-series]
    .venv/bin/python scripts/asset_quick.py tep --data DIR [--per-series]

``plant``: the demo plant (8 assets of 4 sensors, a reading every 3 s per sensor, one hour, the
first third fault-free) through one :class:`oddwatch.core.asset_sensors.AssetSensorsState` per
asset. A fault is found when an alert of its asset opens between its start and 30 s after its
end; every other open is a false alert. ``--per-series`` pages every
:class:`~oddwatch.core.series.SeriesState` alone instead (each series alert counts).

``tep``: one asset of 52 series, one row every 3 minutes: ``d00.dat`` (stored transposed) and
``d00_te.dat`` as 73 h of normal history, then each ``dNN_te.dat`` from that state; a fault is
found when an alert opens at or after its row 161, alerts before are false (per asset-day of
normal rows). Faults 3, 9 and 15 are reported apart (nearly invisible in these variables).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from oddwatch import datasets
from oddwatch.core.series import SeriesState
from oddwatch.records import Alert, Reading
from simulators.plant import PlantSimulation

START = datetime(2026, 1, 1, tzinfo=UTC)
HIDDEN = (3, 9, 15)


class PerSeries:
    """Every series pages alone (the decisions before assets decided together)."""

    def __init__(self, site: str, asset: str) -> None:
        self.site, self.asset = site, asset
        self.series: dict[str, SeriesState] = {}

    def step(self, r: Reading) -> Alert | None:
        st = self.series.get(r.sensor)
        if st is None:
            st = self.series[r.sensor] = SeriesState(self.site, self.asset, r.sensor)
        return st.step(r).alert


class Together:
    def __init__(self, site: str, asset: str) -> None:
        # imported here: --per-series also runs on trees without assets
        from oddwatch.core.asset_sensors import AssetSensorsState

        self.state = AssetSensorsState(site, asset)

    def step(self, r: Reading) -> Alert | None:
        return self.state.step(r).alert


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def plant(seeds: list[int], per_series: bool) -> None:
    found = total = false = 0
    delays: list[float] = []
    hours = 0.0
    t_all = 0.0
    n_all = 0
    for seed in seeds:
        tick = 3.0
        sim = PlantSimulation(seed=seed, rate=32 / tick, duration_s=1200 * tick, start=START, n_series=32,
                              day_s=400 * tick, warmup_frac=0.33)
        assets: dict[str, PerSeries | Together] = {}
        opens: list[tuple[str, datetime, str]] = []
        t0 = time.perf_counter()
        last = START
        for r in sim:
            site, asset, sensor = r.series.split("/")
            key = f"{site}/{asset}"
            a = assets.get(key)
            if a is None:
                a = assets[key] = PerSeries(site, asset) if per_series else Together(site, asset)
            alert = a.step(Reading(site, asset, sensor, r.ts, r.value))
            last = r.ts
            n_all += 1
            if alert is not None and alert.kind == "open":
                opens.append((key, alert.opened_at, alert.title))
        t_all += time.perf_counter() - t0
        matched: set[int] = set()
        for f in sim.plan.faults:
            key = f.series.rsplit("/", 1)[0]
            hits = [i for i, (k, ts, _) in enumerate(opens) if k == key
                    and f.start - timedelta(seconds=1) <= ts <= f.end + timedelta(seconds=30)]
            total += 1
            if hits:
                found += 1
                delays.append((opens[hits[0]][1] - f.start).total_seconds())
                matched.update(hits)
        false += len(opens) - len(matched)
        hours += len(assets) * (last - START).total_seconds() * (1 - 0.33) / 3600
    print(f"plant seeds {seeds[0]}-{seeds[-1]} ({'per series' if per_series else 'assets'}): faults found "
          f"{found}/{total}, median delay {statistics.median(delays) if delays else float('nan'):.0f} s, "
          f"false alerts {false} = {false / max(hours, 1e-9):.2f} per asset-hour "
          f"({1e6 * t_all / max(n_all, 1):.1f} us/reading)")


def _tep_rows(path: Path, transposed: bool = False) -> list[list[float]]:
    rows = [[float(x) for x in line.split()] for line in path.read_text().splitlines() if line.strip()]
    return [list(col) for col in zip(*rows, strict=True)] if transposed else rows


def tep(data: Path, per_series: bool) -> None:
    history = _tep_rows(data / "d00.dat", transposed=True) + _tep_rows(data / "d00_te.dat")
    step = timedelta(minutes=3)
    a: PerSeries | Together = PerSeries("tep", "plant") if per_series else Together("tep", "plant")
    false = 0
    ts = START
    for row in history:
        for k, v in enumerate(row):
            alert = a.step(Reading("tep", "plant", f"x{k + 1:02d}", ts, v))
            false += alert is not None and alert.kind == "open"
        ts += step
    normal_rows = len(history)
    saved = pickle.dumps(a)
    found, missed, delays = [], [], []
    for n in range(1, 22):
        run = _tep_rows(data / f"d{n:02d}_te.dat")
        b = pickle.loads(saved)
        t = ts
        first = None
        for i, row in enumerate(run):
            for k, v in enumerate(row):
                alert = b.step(Reading("tep", "plant", f"x{k + 1:02d}", t, v))
                if alert is not None and alert.kind == "open":
                    if i < 160:
                        false += 1
                    elif first is None:
                        first = i
            t += step
        normal_rows += 160
        (found if first is not None else missed).append(n)
        if first is not None:
            delays.append((first - 160) * 3)
    days = normal_rows * 3 / 1440
    vis = [n for n in found if n not in HIDDEN]
    print(f"TEP ({'per series' if per_series else 'assets'}): detectable faults found {len(vis)}/18 "
          f"(3, 9, 15: {[n for n in found if n in HIDDEN]}), missed {missed}, median delay "
          f"{statistics.median(delays) if delays else float('nan'):.0f} min; false alerts {false} over {days:.1f} "
          f"normal days = {false / days:.2f} per asset-day")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("plant", "tep"))
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--data", type=Path, default=None,
                    help="TEP folder (default: the cache of `oddwatch datasets fetch tep`)")
    ap.add_argument("--per-series", action="store_true")
    args = ap.parse_args()
    if args.what == "plant":
        plant(_seeds(args.seeds), args.per_series)
    else:
        tep(args.data or datasets.path("tep"), args.per_series)


if __name__ == "__main__":
    main()
