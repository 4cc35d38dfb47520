"""The correlated-fault simulator: labels, scenario placement, determinism, and scoring."""

from __future__ import annotations

from datetime import datetime

import pytest

from oddwatch.core.assets import AssetMap
from oddwatch.evaluation.incidents import score_incidents
from oddwatch.records import UTC
from oddwatch.settings import AssetRule
from simulators.correlated import LABEL, CorrelatedSimulation
from simulators.network import SimLogLine
from simulators.plant import SimReading


def _sim(seed: int = 3) -> CorrelatedSimulation:
    return CorrelatedSimulation(seed=seed, duration_s=3600, start=datetime(2026, 1, 1, tzinfo=UTC), site="north")


@pytest.mark.parametrize("seed", [1, 3, 7])
def test_each_scenario_has_both_sides_labelled_inside_its_window_on_one_asset(seed: int) -> None:
    sim = _sim(seed)
    items = list(sim)
    assert [x.ts for x in items] == sorted(x.ts for x in items)
    assets = AssetMap([AssetRule(**r) for r in sim.asset_rules])  # type: ignore[arg-type]
    for sc in sim.scenarios:
        tagged = [x for x in items if x.label == LABEL and (getattr(x, "fault_id", None) or
                                                            getattr(x, "incident_id", None)) == sc.scenario_id]
        readings = [x for x in tagged if isinstance(x, SimReading)]
        lines = [x for x in tagged if isinstance(x, SimLogLine)]
        assert readings and lines
        assert {r.series for r in readings} == {sc.sensor_series} and {ln.source for ln in lines} == {sc.log_source}
        assert all(sc.start <= x.ts <= sc.end for x in tagged)
        assert assets.key_of(sc.sensor_series) == assets.key_of(sc.log_source) == sc.asset
        # no unrelated fault on the scenario's asset
        unrelated = [f.series for f in sim.plant.plan.faults] + [i.source for i in sim.network.plan.incidents]
        assert all(assets.key_of(s) != sc.asset for s in unrelated)


def test_scoring_counts_a_split_and_a_wrong_merge() -> None:
    sim = _sim()
    plan = sim.as_dict()
    c1, c2 = sim.scenarios
    ms = lambda t: t.timestamp() * 1000.0  # noqa: E731
    fault = sim.plant.plan.faults[0]
    rows = [
        {"incident_id": "a", "sources": c1.sensor_series, "opened_at": ms(c1.start), "time_end": ms(c1.end)},
        {"incident_id": "b", "sources": c1.log_source, "opened_at": ms(c1.start), "time_end": ms(c1.end)},
        {"incident_id": "c", "sources": f"{c2.sensor_series} {c2.log_source} {fault.series}",
         "opened_at": ms(min(c2.start, fault.start)), "time_end": ms(max(c2.end, fault.end))},
    ]
    s = score_incidents(plan, rows, grace_s=60)
    assert (s["detected"], s["merged"], s["split"], s["wrongly_merged"]) == (2, 1, 1, 1)
