"""Replay one asset's sensor readings through the live decision objects: :func:`replay_asset`.

Every evaluation of sensor data (``oddwatch eval series``, the TEP, streaming and plant rows
of ``oddwatch eval suite``) goes through this one function, so that what they report is what
the sensor flow decides: one :class:`~oddwatch.core.asset_sensors.AssetSensorsState` per
asset (the flow's per-key state, holding a ``SeriesState`` per sensor), whose asset alerts are
the paging alerts. Counts of alerts per asset are taken from :attr:`AssetReplay.alerts` alone.

Examples
--------
>>> from datetime import datetime, timedelta
>>> from oddwatch.records import UTC, Reading
>>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
>>> values = [10.0 + (i % 7) * 0.1 for i in range(400)] + [30.0] + [10.0] * 5
>>> readings = [Reading("s", "pump", "temp", t0 + timedelta(minutes=i), v) for i, v in enumerate(values)]
>>> run = replay_asset("s", "pump", readings)
>>> len(run.scores), [i for i, _ in run.alerts], run.alerts[0][1].subject
(406, [400], 'pump')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from oddwatch.core.asset_sensors import AssetSensorsState
from oddwatch.records import Alert, Reading
from oddwatch.settings import Settings


@dataclass
class AssetReplay:
    """What the decision objects did with an asset's readings, in input order.

    ``scores`` and ``thresholds`` hold the per-reading output (score shown on dashboards, the
    threshold in force); ``alerts`` the paging alerts as (index of the reading that opened
    it, alert); ``sensors`` the sensor of each reading; ``flagged`` per opening alert the
    index of the latest reading of each sensor it names.
    """

    scores: np.ndarray
    thresholds: np.ndarray
    sensors: list[str]
    alerts: list[tuple[int, Alert]] = field(default_factory=list)
    flagged: list[list[int]] = field(default_factory=list)

    def alert_rows(self) -> np.ndarray:
        """0/1 per reading: 1 at the latest reading of each sensor an opening alert names."""
        flags = np.zeros(len(self.scores), dtype=np.int8)
        for rows in self.flagged:
            flags[rows] = 1
        return flags


def replay_asset(site: str, asset: str, readings: Iterable[Reading], settings: Settings | None = None) -> AssetReplay:
    """Step every reading of asset ``site/asset`` (in time order) through its decision objects.

    A reading's own ``site``/``asset`` are replaced by the arguments, so callers may pass
    readings keyed however their corpus names them.
    """
    settings = settings or Settings()
    state = AssetSensorsState(site, asset, settings.series, settings.alerts)
    scores: list[float] = []
    thresholds: list[float] = []
    sensors: list[str] = []
    alerts: list[tuple[int, Alert]] = []
    flagged: list[list[int]] = []
    latest: dict[str, int] = {}
    for i, r in enumerate(readings):
        if r.site != site or r.asset != asset:
            r = Reading(site, asset, r.sensor, r.ts, r.value, r.unit, r.quality, r.topic, r.received)
        out = state.step(r)
        latest[r.sensor] = i
        scores.append(out.series.score)
        thresholds.append(out.series.threshold)
        sensors.append(r.sensor)
        if out.alert is not None and out.alert.kind == "open":
            alerts.append((i, out.alert))
            flagged.append(sorted({latest[s] for s in (out.sensors or (r.sensor,)) if s in latest}))
    return AssetReplay(np.asarray(scores, dtype=float), np.asarray(thresholds, dtype=float), sensors, alerts,
                       flagged)
