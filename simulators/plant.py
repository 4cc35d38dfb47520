"""A deterministic, seeded plant: sensor readings with labelled, injected faults.

Every asset has a latent load (a compressed daily cycle of ``day_s`` seconds plus a slow
AR(1) wander) that all its sensors follow, each with its own gain, offset and white noise, so
sensors of one asset are correlated (the daily swing is ``2 * gain`` noise sigmas). After a
warm-up (default the first 25 % of the run) faults are injected, each on one series and in
its own time slot, sized in units of the series' noise sigma:

- ``spike``: one reading 6-10 sigma off;
- ``level_shift``: a 4-6 sigma step for the fault's duration;
- ``drift``: a ramp reaching 5-8 sigma at the fault's end;
- ``stuck``: the exact value of the fault's first reading, repeated;
- ``noise_burst``: noise 4-5 times larger.

Readings inside a fault carry ``label`` (the kind) and ``fault_id``; :class:`FaultPlan`
lists every fault with its series, start and end so that detection rate and delay can be
computed. The same seed with ``faults=False`` gives the same values outside the faults (the
fault-free twin), so each fault's exact effect is known.

>>> from datetime import datetime, timezone
>>> start = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> rows = list(plant_readings(seed=1, rate=320, duration_s=10, start=start))
>>> len(rows), rows[0].topic, rows[0].unit
(3200, 'plant/north/pump-1/temperature', 'degC')
>>> rows == list(plant_readings(seed=1, rate=320, duration_s=10, start=start))
True
>>> sorted({r.label for r in rows if r.label})
['drift', 'level_shift', 'noise_burst', 'spike', 'stuck']
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

FAULT_KINDS = ("spike", "level_shift", "drift", "stuck", "noise_burst")
DEFAULT_SITES = ("north", "south")
CYCLE_AMPLITUDE = 2.0  # daily swing of the latent load; a sensor swings gain * this, in sigma
WANDER_SD = 0.5  # the load's slow AR(1) wander: standard deviation ...
WANDER_TAU_DAYS = 0.25  # ... and time constant, in days
ASSET_KINDS = ("pump", "compressor", "chiller", "boiler", "fan", "conveyor")


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """One sensor kind: value = base + sigma * (gain * load + noise)."""

    name: str
    unit: str
    base: float
    sigma: float
    gain: float


#: Sensor kinds, in the order they are given to assets.
SENSORS: tuple[SensorSpec, ...] = (
    SensorSpec("temperature", "degC", 62.0, 0.5, 3.0),
    SensorSpec("pressure", "bar", 4.2, 0.04, 2.5),
    SensorSpec("vibration", "mm/s", 2.8, 0.08, 2.0),
    SensorSpec("flow", "m3/h", 118.0, 1.5, 3.0),
    SensorSpec("power", "kW", 45.0, 0.8, 3.0),
    SensorSpec("humidity", "%", 41.0, 0.9, -2.0),
    SensorSpec("speed", "rpm", 1480.0, 6.0, 2.0),
    SensorSpec("current", "A", 82.0, 1.2, 3.0),
)
DEFAULT_SENSORS = tuple(s.name for s in SENSORS[:4])


@dataclass(frozen=True, slots=True)
class SimReading:
    """One simulated reading with its label (None when normal)."""

    topic: str
    ts: datetime
    value: float
    unit: str
    label: str | None = None
    fault_id: str | None = None

    @property
    def series(self) -> str:
        """``site/asset/sensor``, the key the sensor flow uses."""
        return self.topic.split("/", 1)[1]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: kind, series (``site/asset/sensor``), first and last reading time."""

    fault_id: str
    kind: str
    series: str
    start: datetime
    end: datetime
    magnitude_sigma: float

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d


@dataclass(frozen=True)
class FaultPlan:
    """Every fault of a run, and when the warm-up ended."""

    faults: tuple[Fault, ...]
    warmup_end: datetime
    series: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"warmup_end": self.warmup_end.isoformat(), "n_series": len(self.series),
                "faults": [f.as_dict() for f in self.faults]}

    def fault_at(self, series: str, ts: datetime) -> Fault | None:
        """The fault affecting *series* at *ts*, if any."""
        return next((f for f in self.faults if f.series == series and f.start <= ts <= f.end), None)


@dataclass(frozen=True)
class _Layout:
    topics: tuple[str, ...]
    specs: tuple[SensorSpec, ...]
    asset_of: np.ndarray  # series index -> asset index
    site_of: np.ndarray  # asset index -> site index
    n_assets: int


def layout(*, sites: Sequence[str] = DEFAULT_SITES, assets_per_site: int = 4,
           sensors: Sequence[str] = DEFAULT_SENSORS, n_series: int | None = None) -> _Layout:
    """Series layout; with *n_series*, assets are added per site until there are that many.

    >>> len(layout(n_series=1000).topics), layout().topics[5]
    (1000, 'plant/north/compressor-1/pressure')
    """
    by_name = {s.name: s for s in SENSORS}
    unknown = [s for s in sensors if s not in by_name]
    if unknown:
        raise ValueError(f"plant sensors {unknown!r} are unknown; known: {', '.join(by_name)}")
    if not sites or not sensors or assets_per_site < 1:
        raise ValueError(f"plant needs sites, sensors and assets_per_site >= 1, got {sites!r}, "
                         f"{sensors!r}, {assets_per_site!r}")
    if n_series is not None:
        if n_series < 1:
            raise ValueError(f"plant n_series must be >= 1, got {n_series!r}")
        assets_per_site = math.ceil(n_series / (len(sites) * len(sensors)))
    topics, specs, asset_of, site_of = [], [], [], []
    for si, site in enumerate(sites):
        for a in range(assets_per_site):
            asset = f"{ASSET_KINDS[a % len(ASSET_KINDS)]}-{a // len(ASSET_KINDS) + 1}"
            site_of.append(si)
            for name in sensors:
                topics.append(f"plant/{site}/{asset}/{name}")
                specs.append(by_name[name])
                asset_of.append(len(site_of) - 1)
    count = n_series or len(topics)
    return _Layout(tuple(topics[:count]), tuple(specs[:count]), np.array(asset_of[:count]),
                   np.array(site_of), len(site_of))


def plan_faults(rng: np.random.Generator, *, topics: Sequence[str], n_ticks: int, warmup_ticks: int,
                n_faults: int, start: datetime, tick_s: float, offsets_s: np.ndarray, warmup_end: datetime,
                kinds: Sequence[str] = FAULT_KINDS) -> tuple[list[tuple[int, int, int, str, float]], FaultPlan]:
    """Place *n_faults* faults in equal time slots after the warm-up, on distinct series if possible.

    Returns ``(series index, first tick, last tick, kind, magnitude)`` rows and the plan.
    """
    rows: list[tuple[int, int, int, str, float]] = []
    faults: list[Fault] = []
    span = n_ticks - warmup_ticks
    n_slots = min(n_faults, span // 2)
    if n_faults < 1 or n_slots < 1:
        return rows, FaultPlan((), warmup_end, tuple(topics))
    slot = span / n_slots  # with more faults than slots, faults share a slot on other series
    picks = rng.permutation(len(topics))
    for i in range(n_faults):
        kind = kinds[i % len(kinds)]
        s = int(picks[i % len(topics)])
        lo = warmup_ticks + int((i % n_slots) * slot)
        length = 1 if kind == "spike" else max(2, int(slot * rng.uniform(0.35, 0.55)))
        first = lo + int(rng.integers(0, max(1, int(slot) - length)))
        last = min(first + length - 1, n_ticks - 1)
        mag = {"spike": rng.uniform(6, 10) * rng.choice([-1, 1]), "level_shift": rng.uniform(4, 6) * rng.choice([-1, 1]),
               "drift": rng.uniform(5, 8) * rng.choice([-1, 1]), "stuck": 0.0,
               "noise_burst": rng.uniform(4, 5)}[kind]
        rows.append((s, first, last, kind, float(mag)))
        t0 = start + timedelta(seconds=first * tick_s + float(offsets_s[s]))
        t1 = start + timedelta(seconds=last * tick_s + float(offsets_s[s]))
        faults.append(Fault(f"F{i + 1:03d}", kind, topics[s].split("/", 1)[1], t0, t1, round(abs(float(mag)), 3)))
    return rows, FaultPlan(tuple(faults), warmup_end, tuple(topics))


def plant_readings(*, seed: int, rate: float, duration_s: float, start: datetime,
                   sites: Sequence[str] = DEFAULT_SITES, assets_per_site: int = 4,
                   sensors: Sequence[str] = DEFAULT_SENSORS, n_series: int | None = None,
                   day_s: float = 60.0, warmup_frac: float = 0.25, faults: bool = True,
                   n_faults: int | None = None) -> Iterator[SimReading]:
    """Readings of every series in time order, ``rate`` readings per second in all.

    Parameters
    ----------
    seed
        Same seed, same readings and faults.
    rate
        Readings per second over all series; each series reports every ``n_series / rate`` s,
        the series staggered within that interval.
    duration_s
        Simulated seconds.
    start
        Timestamp of the first reading (timezone-aware).
    sites, assets_per_site, sensors, n_series
        The layout (see :func:`layout`).
    day_s
        Simulated seconds per daily cycle (60: a one-minute demo shows one day).
    warmup_frac
        Fraction of the run with no faults, for detectors to learn.
    faults, n_faults
        Whether to inject faults, and how many (default: one per 20 series, at least 5, at
        most 50; kinds in turn, each on its own series, in equal time slots after the warm-up).
    """
    return iter(PlantSimulation(seed=seed, rate=rate, duration_s=duration_s, start=start, sites=sites,
                                assets_per_site=assets_per_site, sensors=sensors, n_series=n_series,
                                day_s=day_s, warmup_frac=warmup_frac, faults=faults, n_faults=n_faults))


class PlantSimulation:
    """The simulation behind :func:`plant_readings`, exposing its :class:`FaultPlan` up front."""

    def __init__(self, *, seed: int, rate: float, duration_s: float, start: datetime,
                 sites: Sequence[str] = DEFAULT_SITES, assets_per_site: int = 4,
                 sensors: Sequence[str] = DEFAULT_SENSORS, n_series: int | None = None,
                 day_s: float = 60.0, warmup_frac: float = 0.25, faults: bool = True,
                 n_faults: int | None = None) -> None:
        for key, value in (("rate", rate), ("duration_s", duration_s), ("day_s", day_s)):
            if not value > 0:
                raise ValueError(f"plant {key} must be > 0, got {value!r}")
        if not 0 <= warmup_frac < 1:
            raise ValueError(f"plant warmup_frac must be in [0, 1), got {warmup_frac!r}")
        if start.tzinfo is None:
            raise ValueError(f"plant start {start!r} must be timezone-aware")
        self.seed, self.start, self.day_s = seed, start, day_s
        self.lay = layout(sites=sites, assets_per_site=assets_per_site, sensors=sensors, n_series=n_series)
        n = len(self.lay.topics)
        self.tick_s = n / rate
        self.total = max(1, round(duration_s * rate))
        self.n_ticks = math.ceil(self.total / n)  # the last tick may be partial
        self.offsets_s = np.arange(n) * (self.tick_s / n)
        rng = np.random.default_rng([seed, 1])
        if n_faults is None:
            n_faults = max(5, min(n // 20, 50))
        self.rows, self.plan = plan_faults(
            rng, topics=self.lay.topics, n_ticks=max(1, self.total // n),
            warmup_ticks=math.ceil(duration_s * warmup_frac / self.tick_s),
            n_faults=n_faults if faults else 0, start=start, tick_s=self.tick_s, offsets_s=self.offsets_s,
            warmup_end=start + timedelta(seconds=duration_s * warmup_frac))

    def __iter__(self) -> Iterator[SimReading]:
        lay, n = self.lay, len(self.lay.topics)
        rng = np.random.default_rng([self.seed, 2])
        base = np.array([s.base for s in lay.specs])
        sigma = np.array([s.sigma for s in lay.specs])
        gain = np.array([s.gain for s in lay.specs])
        units = [s.unit for s in lay.specs]
        site_phase = rng.uniform(0, 0.1, size=len(set(lay.site_of.tolist())) or 1)
        asset_phase = site_phase[lay.site_of] + rng.uniform(0, 0.03, size=lay.n_assets)
        offset = rng.normal(0, 2, size=n)  # per-series calibration offset, in sigma
        phi = math.exp(-self.tick_s / (WANDER_TAU_DAYS * self.day_s))  # same dynamics at any rate
        wander = rng.normal(0, WANDER_SD, size=lay.n_assets)
        by_tick: dict[int, list[tuple[int, int, str, float, str]]] = {}
        for i, (s, first, last, kind, mag) in enumerate(self.rows):
            for t in range(first, last + 1):
                by_tick.setdefault(t, []).append((s, first, kind, mag, self.plan.faults[i].fault_id))
        stuck: dict[str, float] = {}
        lengths = {f.fault_id: (row[2] - row[1] + 1) for f, row in zip(self.plan.faults, self.rows, strict=True)}
        for t in range(self.n_ticks):
            wander = phi * wander + math.sqrt(1 - phi * phi) * rng.normal(0, WANDER_SD, size=lay.n_assets)
            tt = t * self.tick_s + self.offsets_s
            load = CYCLE_AMPLITUDE * np.sin(2 * np.pi * (tt / self.day_s + asset_phase[lay.asset_of])) + wander[lay.asset_of]
            noise = rng.normal(0, 1, size=n)
            z = gain * load + offset + noise
            labels: dict[int, tuple[str | None, str | None]] = {}
            for s, first, kind, mag, fid in by_tick.get(t, ()):
                labels[s] = (kind, fid)
                if kind == "spike" or kind == "level_shift":
                    z[s] += mag
                elif kind == "drift":
                    z[s] += mag * (t - first + 1) / lengths[fid]
                elif kind == "noise_burst":
                    z[s] += (mag - 1.0) * noise[s]
                elif kind == "stuck":
                    stuck.setdefault(fid, round(float(base[s] + sigma[s] * z[s]), 4))
            values = base + sigma * z
            for s in range(min(n, self.total - t * n)):
                label, label_id = labels.get(s) or (None, None)
                value = stuck[label_id] if label == "stuck" and label_id else round(float(values[s]), 4)
                yield SimReading(lay.topics[s], self.start + timedelta(seconds=float(tt[s])), value,
                                 units[s], label, label_id)
