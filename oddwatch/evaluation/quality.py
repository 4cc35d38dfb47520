"""Precision in operation for ``oddwatch status``: the ``quality`` rows of the last weeks, per source.

>>> rows = [{"source": "n/p/t", "alerts": 5.0, "confirmed": 1.0, "false_positives": 3.0, "missed": 0.0,
...          "recent": "n/p/t:1 hot"},
...         {"source": "n/w/nginx", "alerts": 2.0, "confirmed": 2.0, "false_positives": 0.0, "missed": 1.0,
...          "recent": None}]
>>> s = summarise(rows, floor=0.5, min_judged=3)
>>> s["sources"]["n/p/t"]["precision"], s["sources"]["n/w/nginx"]["recall"]
(0.25, 0.667)
>>> s["below_floor"]
[{'source': 'n/p/t', 'precision': 0.25, 'verdicts': 4, 'recent_false_positives': ['n/p/t:1 hot']}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oddwatch.settings import Settings

QUERY = ('SELECT sum("alerts") AS "alerts", sum("confirmed") AS "confirmed", sum("false_positives") AS '
         '"false_positives", sum("missed") AS "missed", last("recent_false_positives") AS "recent" '
         'FROM "quality" WHERE time > now() - {weeks}w GROUP BY "source"')


def summarise(rows: Sequence[Mapping[str, Any]], *, floor: float, min_judged: int) -> dict[str, Any]:
    """Per source: counts, precision and recall; and the sources judged below *floor*."""
    sources: dict[str, dict[str, Any]] = {}
    below = []
    for r in rows:
        conf, fp, missed = (float(r.get(k) or 0.0) for k in ("confirmed", "false_positives", "missed"))
        entry: dict[str, Any] = {"alerts": int(r.get("alerts") or 0), "confirmed": int(conf),
                                 "false_positives": int(fp), "missed": int(missed),
                                 "precision": round(conf / (conf + fp), 3) if conf + fp else None,
                                 "recall": round(conf / (conf + missed), 3) if conf + missed else None}
        sources[str(r["source"])] = entry
        if entry["precision"] is not None and conf + fp >= min_judged and entry["precision"] < floor:
            recent = [x for x in str(r.get("recent") or "").split(" | ") if x]
            below.append({"source": str(r["source"]), "precision": entry["precision"], "verdicts": int(conf + fp),
                          "recent_false_positives": recent})
    return {"floor": floor, "sources": sources, "below_floor": below}


def quality_status(settings: Settings, *, weeks: int = 4) -> dict[str, Any]:
    """The last *weeks* of ``quality`` rows in InfluxDB, summarised for ``oddwatch status``."""
    from oddwatch.connectors.influx import InfluxQuery

    query = InfluxQuery(settings.influx)
    try:
        rows = query.query(QUERY.format(weeks=int(weeks)))
    finally:
        query.close()
    q = settings.quality
    return {"weeks": weeks, **summarise(rows, floor=q.precision_floor, min_judged=q.min_judged)}
