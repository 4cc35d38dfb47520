"""A deterministic, seeded plant and network with correlated faults across sensors and logs.

The plant (:class:`~simulators.plant.PlantSimulation`) and the network
(:class:`~simulators.network.NetworkSimulation`) run as usual, with their own unrelated faults
and incidents. Two correlated scenarios are added after the warm-up, each on an asset that has
no unrelated fault:

- ``plant``: a plant asset's sensor (``temperature``) steps up by ``shift_sigma`` noise sigmas
  while its controller (a PLC on ``logs/<site>/plc-<n>/controller``, a host named differently
  from the asset, so it needs an ``[[assets.map]]`` rule: :attr:`CorrelatedSimulation.asset_rules`)
  logs overcurrent and overtemperature errors it never logs otherwise;
- ``network``: a switch (``sw-1`` or ``sw-2``) logs errors it never logs otherwise on
  ``ifmgr`` while its temperature sensor (``plant/<site>/<switch>/temperature``, same name as
  the log host: joined by convention) climbs.

Every faulty reading and line carries ``label="correlated"`` and the scenario id (``C001``,
``C002``) in ``fault_id`` / ``incident_id``; :class:`Scenario` lists each scenario's asset,
sources, start and end. Items come in time order (readings and log lines mixed).

>>> from datetime import datetime, timezone
>>> sim = CorrelatedSimulation(seed=3, duration_s=1800, start=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> [(s.kind, s.asset, s.sensor_series, s.log_source) for s in sim.scenarios]  # doctest: +NORMALIZE_WHITESPACE
[('plant', 'north/chiller-1', 'north/chiller-1/temperature', 'north/plc-1/controller'),
 ('network', 'north/sw-1', 'north/sw-1/temperature', 'north/sw-1/ifmgr')]
>>> items = list(sim)
>>> sorted({x.label for x in items if x.label})
['burst', 'correlated', 'level_shift', 'new_message', 'spike']
>>> items == list(CorrelatedSimulation(seed=3, duration_s=1800, start=sim.start))
True
>>> sim.asset_rules
[{'asset': 'chiller-1', 'site': 'north', 'sources': ['north/plc-1/*']}]
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from simulators.network import NOVEL, NetworkSimulation, SimLogLine, format_syslog
from simulators.plant import SENSORS, PlantSimulation, SimReading

LABEL = "correlated"
SWITCHES = ("sw-1", "sw-2")
SWITCH_TEMP = (45.0, 0.4)  # a switch's temperature sensor: base degC and noise sigma
CONTROLLER_NORMAL = (
    lambda r: f"cycle {r.randint(10**5, 10**6)} ok: setpoint {r.randint(1400, 1500)} rpm, load {r.randint(40, 80)}%",
    lambda r: f"heartbeat from HMI 10.2.0.{r.randint(2, 40)}",
    lambda r: f"valve V{r.randint(1, 9)} position {r.randint(10, 90)}% confirmed",
)
CONTROLLER_FAULT = (
    lambda r: f"drive fault: overcurrent {r.randint(95, 140)} A on phase L{r.randint(1, 3)} (limit 90 A)",
    lambda r: f"motor winding overtemperature {r.randint(120, 160)} degC, derating to {r.randint(40, 70)}%",
)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One correlated fault: the asset, its faulty sensor series and log source, and when."""

    scenario_id: str
    kind: str  # "plant" | "network"
    asset: str  # site/asset
    sensor_series: str  # site/asset/sensor
    log_source: str  # site/host/app
    start: datetime
    end: datetime

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d


class CorrelatedSimulation:
    """The plant, the network and two correlated scenarios; iterate it for readings and lines.

    Parameters
    ----------
    seed, duration_s, start
        Same seed, same items; simulated seconds; first timestamp (timezone-aware).
    site
        The one site simulated.
    plant_rate, log_rate
        Readings per second over the plant's series; log lines per second over the network.
    assets_per_site, n_faults, n_incidents
        The plant's layout and its unrelated faults; the network's unrelated incidents.
    warmup_frac
        Fraction of the run without any fault.
    controller_rate
        The PLC's normal lines per second (its fault lines come at twice the rate, at least 0.2/s).
    shift_sigma
        The correlated sensor step, in noise sigmas.
    """

    def __init__(self, *, seed: int, duration_s: float, start: datetime, site: str = "north",
                 plant_rate: float = 2.4, log_rate: float = 1.0, assets_per_site: int = 3, n_faults: int = 2,
                 n_incidents: int = 2, warmup_frac: float = 0.5, controller_rate: float = 0.1,
                 shift_sigma: float = 10.0) -> None:
        if not 0 < warmup_frac < 0.8:
            raise ValueError(f"correlated warmup_frac must be in (0, 0.8), got {warmup_frac!r}")
        if controller_rate <= 0 or shift_sigma <= 0:
            raise ValueError(f"correlated controller_rate {controller_rate!r} and shift_sigma {shift_sigma!r} "
                             "must be > 0")
        self.seed, self.duration_s, self.start, self.site = seed, duration_s, start, site
        self.controller_rate, self.shift_sigma = controller_rate, shift_sigma
        self.plant = PlantSimulation(seed=seed, rate=plant_rate, duration_s=duration_s, start=start, sites=(site,),
                                     assets_per_site=assets_per_site, n_faults=n_faults, warmup_frac=warmup_frac,
                                     day_s=duration_s / 2)
        self.network = NetworkSimulation(seed=seed, rate=log_rate, duration_s=duration_s, start=start, sites=(site,),
                                         n_incidents=n_incidents, warmup_frac=warmup_frac)
        faulty = {"/".join(f.series.split("/")[:2]) for f in self.plan_faults}
        assets = sorted({"/".join(t.split("/")[1:3]) for t in self.plant.lay.topics}, key=self._asset_order)
        clean = [a for a in assets if a not in faulty and f"{a}/temperature" in self._series]
        noisy_hosts = {"/".join(i.source.split("/")[:2]) for i in self.network.plan.incidents}
        switches = [f"{site}/{s}" for s in SWITCHES if f"{site}/{s}" not in noisy_hosts]
        if not clean or not switches:
            raise ValueError(f"correlated seed {seed}: no plant asset or switch free of unrelated faults "
                             f"(assets {assets}, faulty {sorted(faulty)}); use more assets or fewer faults")
        span = duration_s * (1 - warmup_frac)
        warm = duration_s * warmup_frac
        t_plant = (warm + 0.25 * span, warm + 0.45 * span)
        t_net = (warm + 0.6 * span, warm + 0.8 * span)
        asset, switch = clean[0], switches[0]
        self.plc = f"{site}/plc-1/controller"
        self.scenarios = (
            Scenario("C001", "plant", asset, f"{asset}/temperature", self.plc,
                     *(start + timedelta(seconds=t) for t in t_plant)),
            Scenario("C002", "network", switch, f"{switch}/temperature", f"{switch}/ifmgr",
                     *(start + timedelta(seconds=t) for t in t_net)),
        )
        self.asset_rules = [{"asset": asset.split("/")[1], "site": site, "sources": [f"{site}/plc-1/*"]}]

    @property
    def plan_faults(self) -> Sequence[Any]:
        return self.plant.plan.faults

    @property
    def _series(self) -> set[str]:
        return {t.split("/", 1)[1] for t in self.plant.lay.topics}

    @staticmethod
    def _asset_order(asset: str) -> tuple[int, str]:
        name = asset.split("/")[1]
        return (0 if name.startswith(("chiller", "compressor", "pump")) else 1, name)

    def as_dict(self) -> dict[str, Any]:
        """The plan: scenarios, the plant's unrelated faults and the network's unrelated incidents."""
        return {"scenarios": [s.as_dict() for s in self.scenarios], "asset_rules": self.asset_rules,
                "plant": self.plant.plan.as_dict(), "network": self.network.plan.as_dict()}

    def __iter__(self) -> Iterator[SimReading | SimLogLine]:
        streams: list[Iterator[SimReading | SimLogLine]] = [
            self._plant(), self.network_lines(), self._controller(), self._switch_temperature()]
        return heapq.merge(*streams, key=lambda x: x.ts)

    # -- streams
    def _plant(self) -> Iterator[SimReading]:
        sc = self.scenarios[0]
        sigma = next(s.sigma for s in SENSORS if s.name == "temperature")
        for r in self.plant:
            if r.series == sc.sensor_series and sc.start <= r.ts <= sc.end:
                r = replace(r, value=round(r.value + self.shift_sigma * sigma, 4), label=LABEL, fault_id=sc.scenario_id)
            yield r

    def network_lines(self) -> Iterator[SimLogLine]:
        """The network's lines plus the switch's correlated error lines."""
        sc = self.scenarios[1]
        _, host, app = sc.log_source.split("/")
        rng = random.Random(f"{self.seed}/switch")
        extra = []
        t = sc.start
        while t <= sc.end:
            msg = NOVEL[app][0](rng)
            extra.append(SimLogLine(f"logs/{sc.log_source}", t, format_syslog(
                "rfc3164", ts=t, host=host, app=app, pid=812, severity=3, facility=23, msg=msg), msg, "error",
                LABEL, sc.scenario_id))
            t += timedelta(seconds=rng.uniform(2.0, 8.0))
        return heapq.merge(iter(self.network), iter(extra), key=lambda x: x.ts)

    def _controller(self) -> Iterator[SimLogLine]:
        sc = self.scenarios[0]
        _, host, app = sc.log_source.split("/")
        rng = random.Random(f"{self.seed}/controller")
        t = self.start + timedelta(seconds=rng.expovariate(self.controller_rate))
        end = self.start + timedelta(seconds=self.duration_s)
        fault_rate = max(0.2, 2 * self.controller_rate)
        while t < end:
            inside = sc.start <= t <= sc.end
            render = rng.choice(CONTROLLER_FAULT if inside else CONTROLLER_NORMAL)
            msg = render(rng)
            severity = 3 if inside else 6
            yield SimLogLine(f"logs/{sc.log_source}", t, format_syslog(
                "rfc5424", ts=t, host=host, app=app, pid=77, severity=severity, facility=16, msg=msg), msg,
                "error" if inside else "info", LABEL if inside else None, sc.scenario_id if inside else None)
            t += timedelta(seconds=rng.expovariate(fault_rate if inside else self.controller_rate))

    def _switch_temperature(self) -> Iterator[SimReading]:
        sc = self.scenarios[1]
        base, sigma = SWITCH_TEMP
        rng = random.Random(f"{self.seed}/switch-temperature")
        tick = self.plant.tick_s
        n = int(self.duration_s / tick)
        for i in range(n):
            ts = self.start + timedelta(seconds=i * tick + tick / 2)
            value = base + rng.gauss(0.0, sigma)
            inside = sc.start <= ts <= sc.end
            if inside:
                value += self.shift_sigma * sigma
            yield SimReading(f"plant/{sc.sensor_series}", ts, round(value, 3), "degC",
                             LABEL if inside else None, sc.scenario_id if inside else None)
