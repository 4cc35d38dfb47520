"""Score incidents against a correlated simulation's plan (:mod:`simulators.correlated`).

For each correlated scenario (a sensor series and a log source of one asset, faulty together):

- ``detected``: some incident overlapping the scenario holds its sensor series or its log source;
- ``merged``: one incident holds both;
- ``split``: both sides were detected, but in different incidents.

For each unrelated fault (plant faults and network incidents, on other assets):
``wrongly_merged`` counts those whose incident also holds a scenario's source.

>>> plan = {"scenarios": [{"scenario_id": "C001", "asset": "n/p", "sensor_series": "n/p/t",
...                        "log_source": "n/plc/c", "start": "2026-01-01T00:10:00+00:00",
...                        "end": "2026-01-01T00:20:00+00:00"}],
...         "plant": {"faults": [{"fault_id": "F001", "series": "n/q/t", "start": "2026-01-01T00:12:00+00:00",
...                                "end": "2026-01-01T00:13:00+00:00"}]},
...         "network": {"incidents": []}}
>>> ms = lambda m: (1767225600 + 60 * m) * 1000.0
>>> rows = [{"incident_id": "n/p:1", "sources": "n/p/t n/plc/c", "opened_at": ms(10), "time_end": ms(22)},
...         {"incident_id": "n/q:1", "sources": "n/q/t", "opened_at": ms(12), "time_end": ms(14)}]
>>> s = score_incidents(plan, rows, grace_s=120)
>>> s["detected"], s["merged"], s["split"], s["unrelated_detected"], s["wrongly_merged"]
(1, 1, 0, 1, 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any


def _span(row: Mapping[str, Any]) -> tuple[float, float]:
    start = float(row["opened_at"]) / 1000.0
    end = float(row.get("time_end") or row["opened_at"]) / 1000.0
    return start, max(start, end)


def _overlapping(rows: Sequence[Mapping[str, Any]], source: str, start: str, end: str,
                 grace_s: float) -> list[Mapping[str, Any]]:
    a = datetime.fromisoformat(start).timestamp() - grace_s
    b = datetime.fromisoformat(end).timestamp() + grace_s
    out = []
    for row in rows:
        lo, hi = _span(row)
        if source in str(row.get("sources", "")).split() and lo <= b and hi >= a:
            out.append(row)
    return out


def score_incidents(plan: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], *, grace_s: float) -> dict[str, Any]:
    """Detected, merged and split scenarios, and unrelated faults merged into them (see module doc).

    ``rows`` are ``incident`` rows (InfluxDB, epoch ms in ``opened_at`` and ``time_end``);
    ``grace_s`` widens each fault's time span on both sides (detection delay, log windows).
    """
    scenario_sources = {s for sc in plan["scenarios"] for s in (sc["sensor_series"], sc["log_source"])}
    table = []
    for sc in plan["scenarios"]:
        sensor = _overlapping(rows, sc["sensor_series"], sc["start"], sc["end"], grace_s)
        log = _overlapping(rows, sc["log_source"], sc["start"], sc["end"], grace_s)
        both = {r["incident_id"] for r in sensor} & {r["incident_id"] for r in log}
        table.append({"scenario_id": sc["scenario_id"], "asset": sc["asset"], "sensor": bool(sensor),
                      "log": bool(log), "merged": bool(both), "split": bool(sensor and log and not both),
                      "incidents": sorted({r["incident_id"] for r in sensor + log})})
    unrelated = [(f["fault_id"], f["series"], f["start"], f["end"]) for f in plan["plant"]["faults"]]
    unrelated += [(i["incident_id"], i["source"], i["start"], i["end"]) for i in plan["network"]["incidents"]
                  if i.get("kind") != "silence"]
    detected_unrelated = wrong = 0
    for _, source, start, end in unrelated:
        hits = _overlapping(rows, source, start, end, grace_s)
        detected_unrelated += bool(hits)
        wrong += any(scenario_sources & set(str(r.get("sources", "")).split()) for r in hits)
    return {
        "scenarios": len(table), "detected": sum(r["sensor"] or r["log"] for r in table),
        "merged": sum(r["merged"] for r in table), "split": sum(r["split"] for r in table),
        "unrelated": len(unrelated), "unrelated_detected": detected_unrelated, "wrongly_merged": wrong,
        "incidents": len(rows), "rows": table,
    }


def incident_rows(query: Any, site: str | None, since: datetime) -> list[dict[str, Any]]:
    """The ``incident`` rows since *since* (of one site, or all), as :func:`score_incidents` reads them."""
    where = f"time >= '{since.isoformat().replace('+00:00', 'Z')}'"
    if site:
        where += f" AND \"site\" = '{site}'"
    return list(query.query(f'SELECT "incident_id", "state", "sources", "alerts", "opened_at", "time_end", "title" '
                            f'FROM "incident" WHERE {where}'))
