"""``oddwatch eval suite``: the one configuration over every development data set, one table.

Each data set whose files are in the cache (``oddwatch datasets fetch NAME``) is run through
the live decision objects with the same settings (those of the configuration file, else the
defaults); a data set that is not there is skipped with the command that fetches it. The
rows (:mod:`~oddwatch.evaluation.suite_sensors`, :mod:`~oddwatch.evaluation.suite_logs`) share
the columns below, each filled where it applies:

=================== ==================================================================
column              meaning
=================== ==================================================================
detected            events, faults or incidents found / there to find
delay               median time from an event's start to the alert that found it
false/series-day    alerts that found nothing, per series and day of data
false/asset-day     the same per asset (an asset's alerts are the paging alerts it returns)
false/source-day    the same per log source
NAB own             NAB standard score of the own decisions (no labels used)
NAB scores          NAB standard score of the score column (threshold chosen with the labels)
=================== ==================================================================

``--json OUT`` writes every figure with its details; ``scripts/make_benchmarks.py`` turns
that file into a section of ``docs/benchmarks.md``.

>>> print(format_table({"datasets": {"x": {"seconds": 1.0, "rows": [{"name": "x", "detected": 2, "total": 3}]}}}))
| data set | detected | delay | false/series-day | false/asset-day | false/source-day | NAB own | NAB scores | notes |
|---|---|---|---|---|---|---|---|---|
| x | 2/3 |  |  |  |  |  |  |  |
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oddwatch import datasets
from oddwatch.evaluation import suite_logs, suite_sensors
from oddwatch.evaluation.suite_sensors import Result
from oddwatch.settings import Settings


@dataclass(frozen=True)
class Entry:
    """One data set of the suite: the cached data sets it needs and the function that scores it."""

    name: str
    needs: tuple[str, ...]
    run: Callable[[Settings, bool, int], Result]
    extra: str = ""  # a Python package it needs beside the cache


SUITE: tuple[Entry, ...] = (
    Entry("nab", ("nab",), suite_sensors.nab_rows),
    Entry("tep", ("tep",), suite_sensors.tep_rows),
    Entry("streaming", ("streaming",), suite_sensors.streaming_rows, extra="pyarrow"),
    Entry("plant", (), suite_sensors.plant_rows),
    Entry("hdfs", ("hdfs",), suite_logs.hdfs_rows),
    Entry("thunderbird", ("thunderbird",), suite_logs.thunderbird_rows),
    Entry("loghub2k", ("loghub2k",), suite_logs.loghub2k_rows),
    Entry("network", (), suite_logs.network_rows),
)
NAMES = tuple(e.name for e in SUITE)
COLUMNS = ("data set", "detected", "delay", "false/series-day", "false/asset-day", "false/source-day",
           "NAB own", "NAB scores", "notes")


def select(only: Sequence[str] | None) -> list[Entry]:
    """The entries named in *only* (all when empty); ValueError names an unknown one."""
    if not only:
        return list(SUITE)
    unknown = [n for n in only if n not in NAMES]
    if unknown:
        raise ValueError(f"eval suite: unknown data set(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return [e for e in SUITE if e.name in only]


def _missing(entry: Entry) -> str | None:
    for name in entry.needs:
        if not datasets.is_present(name):
            return f"skipped: run `oddwatch datasets fetch {name}`"
    if entry.extra:
        try:
            __import__(entry.extra)
        except ImportError:
            return f"skipped: needs {entry.extra} (pip install 'oddwatch[eval]')"
    return None


def run_suite(settings: Settings | None = None, *, only: Sequence[str] | None = None, quick: bool = False,
              workers: int = 2, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every selected data set; the result that ``--json`` writes (see :func:`format_table`)."""
    settings = settings or Settings()
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out: dict[str, Any] = {"quick": quick, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                           "command": " ".join(["oddwatch", *sys.argv[1:]]) if sys.argv else "",
                           "machine": {"platform": platform.platform(), "python": platform.python_version(),
                                       "cpus": os.cpu_count()},
                           "workers": workers, "datasets": {}}
    for entry in select(only):
        why = _missing(entry)
        if why:
            say(f"eval suite: {entry.name}: {why}")
            out["datasets"][entry.name] = {"skipped": why}
            continue
        say(f"eval suite: {entry.name} ...")
        t0 = time.perf_counter()
        rows, details = entry.run(settings, quick, workers)
        seconds = time.perf_counter() - t0
        say(f"eval suite: {entry.name}: {seconds:.0f} s")
        out["datasets"][entry.name] = {"seconds": seconds, "rows": rows, "details": details}
    out["settings"] = {"series": asdict(settings.series), "alerts": asdict(settings.alerts),
                       "log_detector": asdict(settings.log_detector)}
    return out


def _num(x: Any, fmt: str = "{:.2f}") -> str:
    return "" if x is None else fmt.format(x)


def _delay(s: float | None) -> str:
    if s is None:
        return ""
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """The table's cells, one list per row (skipped data sets say how to fetch them)."""
    cells: list[list[str]] = []
    for name, body in result["datasets"].items():
        if "skipped" in body:
            cells.append([name] + [""] * (len(COLUMNS) - 2) + [body["skipped"]])
            continue
        for r in body["rows"]:
            detected = "" if r.get("detected") is None else f"{r['detected']}/{r.get('total', '?')}"
            cells.append([r["name"], detected, _delay(r.get("delay_s")), _num(r.get("false_per_series_day")),
                          _num(r.get("false_per_asset_day")), _num(r.get("false_per_source_day")),
                          _num(r.get("nab_own"), "{:.1f}"), _num(r.get("nab_scores"), "{:.1f}"), r.get("note", "")])
    return cells


def format_table(result: dict[str, Any]) -> str:
    """The suite's result as one Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    return "\n".join(lines)


def format_timings(result: dict[str, Any]) -> str:
    """Seconds per data set, one line."""
    parts = [f"{n} {b['seconds']:.0f} s" for n, b in result["datasets"].items() if "seconds" in b]
    return "time per data set: " + ", ".join(parts) if parts else ""


def write_json(result: dict[str, Any], path: str | Path) -> None:
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(result, indent=2, default=str) + "\n")
