"""The Grafana dashboards: committed JSON is the generator's output, and every query runs.

Every panel target, annotation and template-variable query is pulled out of the committed
JSON, Grafana's macros are substituted the way Grafana would, and the query is run against a
real InfluxDB (fixture ``services``) holding a realistic set of points for every measurement
of ``docs/schema.md``, written through the real :class:`~oddwatch.connectors.influx.InfluxWriter`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from oddwatch.connectors.influx import InfluxQuery, InfluxWriter, ensure_database
from oddwatch.core.incidents import Incident
from oddwatch.core.quality import QualityRow
from oddwatch.lineproto import to_line
from oddwatch.records import UTC, Point
from oddwatch.schema import incident_points, quality_point
from oddwatch.settings import InfluxSettings

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATABASE = "oddwatch_grafana_test"

#: Values of the template variables; the sample points below use exactly these. A list is a
#: multi-value selection (Grafana's default is All), written ``(a|b)`` inside a regex.
VARIABLES: dict[str, str | list[str]] = {
    "site": "north", "asset": "pump-1", "sensor": "temp", "host": "web-1", "app": "nginx",
    "instance": ["sensors", "logs"],
}
TIME_FILTER = "time > now() - 1h"
INTERVAL = "10s"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> committed dashboard JSON."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


@dataclass(frozen=True)
class Query:
    """One query found in a dashboard."""

    dashboard: str
    where: str  # "panel <title> <refId>", "annotation <name>" or "variable <name>"
    kind: str  # "panel", "annotation", "variable"
    influxql: str
    panel_type: str = ""


def extract_queries(name: str, board: dict[str, Any]) -> list[Query]:
    """Every InfluxQL query of *board*: panel targets (rows' nested panels too), annotations, variables."""
    out: list[Query] = []

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(board.get("panels", [])):
        for t in panel.get("targets", []):
            out.append(Query(name, f"panel {panel['title']!r} {t['refId']}", "panel", t["query"], panel["type"]))
    for ann in board.get("annotations", {}).get("list", []):
        if ann.get("builtIn"):
            continue
        out.append(Query(name, f"annotation {ann['name']!r}", "annotation", ann["query"]))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"] if isinstance(var["query"], str) else var["query"]["query"]
            out.append(Query(name, f"variable {var['name']!r}", "variable", query))
    return out


def substitute(influxql: str, values: dict[str, str | list[str]] | None = None) -> str:
    """*influxql* with Grafana's macros and template variables replaced as Grafana would.

    Inside a regex (``=~ /^$site$/``) the value is regex-escaped, elsewhere it is inserted
    as is (Grafana's InfluxDB datasource does the same for a single value).

    >>> substitute('SELECT 1 FROM "x" WHERE $timeFilter AND "s" =~ /^$site$/ GROUP BY time($__interval)')
    'SELECT 1 FROM "x" WHERE time > now() - 1h AND "s" =~ /^north$/ GROUP BY time(10s)'
    """
    values = VARIABLES if values is None else values
    text = influxql.replace("$timeFilter", TIME_FILTER).replace("$__interval", INTERVAL)

    def in_regex(name: str) -> str:
        value = values[name]
        if isinstance(value, list):
            return "(" + "|".join(_regex_escape(v) for v in value) + ")"
        return _regex_escape(value)

    def plain(name: str) -> str:
        value = values[name]
        if isinstance(value, list):
            raise ValueError(f"variable ${name} has several values {value!r} outside a regex")
        return value

    def regex(match: re.Match[str]) -> str:
        return re.sub(r"\$(\w+)", lambda m: in_regex(m.group(1)), match.group(0))

    text = re.sub(r"=~\s*/(?:[^/\\]|\\.)*/", regex, text)
    return re.sub(r"\$(\w+)", lambda m: plain(m.group(1)), text)


def _regex_escape(value: str) -> str:
    """Escape *value* for an InfluxQL regex literal like Grafana's InfluxDB datasource does."""
    return re.sub(r"([\\^$.|?*+()\[\]{}/])", r"\\\1", value)


def all_queries() -> list[Query]:
    return [q for name, board in load_dashboards().items() for q in extract_queries(name, board)]


# --- sample data -----------------------------------------------------------------------------


def sample_points(now: datetime) -> list[Point]:
    """A realistic half hour of every measurement in docs/schema.md, ending at *now*.

    The lead may replace this with the output of a simulated run; the variable values in
    :data:`VARIABLES` must then be present in it.
    """
    points: list[Point] = []
    steps = 180  # every 10 s for 30 min
    times = [now - timedelta(seconds=10 * (steps - i)) for i in range(steps)]
    for site in ("north", "south"):
        for asset in ("pump-1", "press-2"):
            for sensor, base in (("temp", 60.0), ("vibration", 2.0)):
                for i, ts in enumerate(times):
                    spike = site == "north" and asset == "pump-1" and 100 <= i < 110
                    value = base * (1.5 if spike else 1.0) + (i % 7) * 0.1
                    score = 0.95 if spike else 0.05 + (i % 5) * 0.02
                    points.append(Point(
                        "sensor_score", {"site": site, "asset": asset, "sensor": sensor, "detector": "ensemble"},
                        {"value": value, "score": score, "threshold": 0.8, "expected_low": base * 0.9,
                         "expected_high": base * 1.1, "is_anomaly": score >= 0.8,
                         "alert_open": site == "north" and asset == "pump-1" and 101 <= i < 115}, ts))
        for host, app in (("web-1", "nginx"), ("db-1", "postgres")):
            for i, ts in enumerate(times[::3]):
                novel = site == "north" and host == "web-1" and i in (30, 31)
                fields: dict[str, float | int | bool | str] = {
                    "novelty": 0.9 if novel else 0.1, "threshold": 0.7, "lines": 40 + i % 9,
                    "templates": 5 + (2 if novel else 0), "is_anomaly": novel, "window_id": f"{host}-{i}",
                }
                if novel or i == 0:
                    fields["novel_template"] = f"upstream <*> timed out after <*> ms (case {i})"
                    fields["example"] = f'upstream 10.0.0.{i} timed out after 3000 ms "GET /api"'
                points.append(Point("log_window", {"site": site, "host": host, "app": app}, fields, ts))
    points.extend(alert_points(now))
    for i, reason in enumerate(("bad_json", "bad_json", "ts_future", "non_finite")):
        points.append(Point(
            "ingest_error", {"stream": "sensor" if i < 3 else "log", "reason": reason},
            {"topic": "plant/north/pump-1/temp", "payload": "{not json", "detail": "Expecting value",
             "step": "parse_reading", "count": 1.0}, now - timedelta(minutes=5 + i)))
    points.append(Point(
        "feedback", {"site": "north", "source": "sensor", "label": "false_positive"},
        {"alert_id": "a-closed", "user": "operator", "comment": "maintenance window", "count": 1.0},
        now - timedelta(minutes=4)))
    for i, ts in enumerate(times[::6]):
        points.append(Point("drift", {"stream": "sensor", "site": "north"},
                            {"key": "north/pump-1/temp", "score": 0.01 * i, "threshold": 0.5,
                             "recalibrated": i == 29}, ts))
    points.extend(pipeline_sample(times))
    points.extend(incident_sample(now))
    return points


def incident_sample(now: datetime) -> list[Point]:
    """A closed and an open incident of north/pump-1 (with its web-1 log source), and quality rows."""
    points: list[Point] = []
    for n, (opened, closed) in enumerate(((now - timedelta(minutes=20), now - timedelta(minutes=12)),
                                          (now - timedelta(minutes=3), None))):
        story = f"{opened:%H:%M:%S}Z sensor north/pump-1/temp: temp on north/pump-1: value 90 above expected range"
        points += incident_points(Incident(
            f"north/pump-1:{n}", "close" if closed else "update", "north", "pump-1", "warning", "critical",
            "pump-1 on north: 2 alerts (nginx, temp) from log and sensor", story, 2,
            ("north/pump-1/temp", "north/web-1/nginx"), ("a", "b"), opened, closed or now, closed))
    for source, component, fp in (("north/pump-1/temp", "ensemble", 3), ("north/web-1/nginx", "novelty", 0)):
        points.append(quality_point(QualityRow(
            "north", source.split("/")[1], source, component, "2026-W10", now - timedelta(minutes=10), 5, 2, fp, 1,
            2 / (2 + fp), 2 / 3, 2 / (2 + fp), fp > 2, ["north/pump-1/temp:1 temp high"] if fp > 2 else [])))
    return points


def alert_points(now: datetime) -> list[Point]:
    """One closed and one still-open alert per source, written as docs/schema.md says."""
    points: list[Point] = []
    for source, subject in (("sensor", "pump-1"), ("log", "web-1/nginx")):
        tags = {"site": "north", "source": source, "severity": "warning", "subject": subject}
        opened, closed = now - timedelta(minutes=13), now - timedelta(minutes=11)
        base = {"alert_id": f"{source}-closed", "title": f"{subject} anomalous",
                "text": f"score 0.95 above threshold 0.8 on {subject}; largest deviation: level",
                "score": 0.95, "threshold": 0.8, "opened_at_ms": opened.timestamp() * 1000}
        end = {"state": "closed", "time_end": closed.timestamp() * 1000, "duration_s": 120.0}
        points.append(Point("alert", {**tags, "kind": "open"}, {**base, "state": "open"}, opened))
        points.append(Point("alert", {**tags, "kind": "close"}, {**base, **end}, closed))
        points.append(Point("alert", {**tags, "kind": "open"}, {**base, **end}, opened))  # the rewrite
        still = now - timedelta(minutes=2)
        points.append(Point("alert", {**tags, "kind": "open", "severity": "critical"},
                            {**base, "alert_id": f"{source}-open", "state": "open",
                             "opened_at_ms": still.timestamp() * 1000}, still))
    return points


def pipeline_sample(times: list[datetime]) -> list[Point]:
    """`pipeline` points as two processes would write them every 10 s."""
    points = []
    for n, ts in enumerate(times):
        for instance, stream in (("sensors", "sensor"), ("logs", "log")):
            comps: dict[str, dict[str, float]] = {
                stream: {"messages_in": 200.0 * n, "parse_errors": float(n // 20), "alerts_opened": 1.0,
                         "alerts_closed": 1.0,
                         ("readings_scored" if stream == "sensor" else "windows_scored"): 190.0 * n},
                "influx": {"points_written": 190.0 * n, "write_errors": float(n // 60),
                           "spool_bytes": 4096.0 if 50 <= n < 55 else 0.0},
                "flow": {"lag_s": 0.05 + 0.01 * (n % 3), "lag_samples": 200.0},
                "budget": {"budget_used": float(n % 7), "budget_limit": 60.0, "budget_held": 0.0,
                           "budget_held_total": 0.0, "budget_sources_over": 0.0},
            }
            if stream == "log":
                comps["embedder"] = {"model_calls": 3.0 * n, "texts_embedded": 60.0 * n, "batch_size": 20.0}
                comps["templates"] = {"cache_hits": 180.0 * n, "cache_misses": 20.0 * n, "cache_hit_rate": 0.9}
                comps["index"] = {"index_size": 100.0 + n, "index_groups": 2.0}
                comps["index:nginx"] = {"index_size": 60.0 + n}
                comps["index:postgres"] = {"index_size": 40.0}
            for component, fields in comps.items():
                points.append(Point("pipeline", {"component": component, "instance": instance}, fields, ts))
    return points


def write_points(settings: InfluxSettings, points: list[Point]) -> None:
    """Write *points* with the real InfluxWriter and fail if InfluxDB refused any."""
    writer = InfluxWriter(settings)
    try:
        writer.add(to_line(p) for p in points)
        assert writer.flush(timeout=30), "InfluxWriter did not flush the sample points"
        assert writer.rejected == 0, f"InfluxDB rejected {writer.rejected} sample lines"
    finally:
        writer.close()


# --- tests without InfluxDB ------------------------------------------------------------------


def test_committed_json_is_generator_output() -> None:
    gen = _generator()
    assert set(load_dashboards()) == set(gen.dashboards()), "run deploy/grafana/build_dashboards.py"
    assert gen.stale(DASHBOARDS) == [], "committed dashboards are stale: run deploy/grafana/build_dashboards.py"


def test_dashboards_load_and_uids_are_unique() -> None:
    boards = load_dashboards()
    assert len(boards) == 4
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    titles = {b["title"] for b in boards.values()}
    assert {"oddwatch / Overview", "oddwatch / Sensor detail", "oddwatch / Logs", "oddwatch / Pipeline health"} == titles
    for board in boards.values():
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), board["uid"]
        assert board["id"] is None


def test_every_query_follows_the_rules() -> None:
    queries = all_queries()
    assert len(queries) > 30
    for q in queries:
        assert "\n" not in q.influxql, q.where
        if q.influxql.startswith("SELECT"):
            assert "WHERE $timeFilter" in q.influxql, f"{q.dashboard} {q.where}: no WHERE $timeFilter"
        else:
            assert q.influxql.startswith("SHOW TAG VALUES"), q.where
        if q.panel_type == "timeseries":
            assert "GROUP BY time($__interval)" in q.influxql, f"{q.dashboard} {q.where}: no GROUP BY time"
        assert not re.search(r"\$\w", substitute(q.influxql)), q.where


def test_annotations_map_time_end_text_and_tags() -> None:
    boards = load_dashboards()
    anns = [a for b in boards.values() for a in b["annotations"]["list"] if not a.get("builtIn")]
    assert {a["name"] for a in anns} == {"Sensor alerts", "Log alerts", "Incidents"}
    for a in anns:
        tags = "severity,asset" if a["name"] == "Incidents" else "severity,subject"
        assert (a["timeEndColumn"], a["textColumn"], a["tagsColumn"]) == ("time_end", "text", tags)
        assert a["datasource"]["uid"] == "oddwatch-influx"


def test_substitute_regex_escapes_inside_regex_only() -> None:
    values = {**VARIABLES, "host": "a.b", "app": "x"}
    assert substitute("\"subject\" =~ /^$host\\/$app$/ AND \"h\" = '$host'", values) == (
        "\"subject\" =~ /^a\\.b\\/x$/ AND \"h\" = 'a.b'"
    )


# --- every query against a real InfluxDB ---------------------------------------------------


@pytest.fixture(scope="module")
def influx(services: Any) -> Iterator[InfluxQuery]:
    settings = services.settings(influx={"database": DATABASE}).influx
    ensure_database(settings)
    write_points(settings, sample_points(datetime.now(UTC) - timedelta(seconds=5)))
    client = InfluxQuery(settings)
    yield client
    client.close()


@pytest.mark.parametrize("query", all_queries(), ids=lambda q: f"{q.dashboard}:{q.where}")
def test_query_returns_rows(influx: InfluxQuery, query: Query) -> None:
    rows = influx.query(substitute(query.influxql))
    assert rows, f"{query.dashboard} {query.where} returned no rows: {substitute(query.influxql)}"
    if query.kind == "variable":
        key = re.search(r'WITH KEY = "(\w+)"', query.influxql)
        assert key is not None
        wanted = VARIABLES[key.group(1)]
        assert set(wanted if isinstance(wanted, list) else [wanted]) <= {row["value"] for row in rows}
    if query.kind == "annotation":
        regions = [r for r in rows if r.get("time_end") is not None]
        assert regions and all(r["text"] and r["title"] for r in rows)
        assert all(r["time_end"] * 1e6 > r["time"] for r in regions), "time_end must be after the start"
        if '"alert"' in query.influxql:
            assert any(r.get("time_end") is None for r in rows), "a still-open alert should be a point marker"
        else:  # an incident spans from its first alert to its close, or to its latest update while open
            assert len(regions) == len(rows) == 2, rows


def test_incident_and_quality_panels_show_the_story_and_the_floor(influx: InfluxQuery) -> None:
    (incidents,) = [q for q in all_queries() if q.where.startswith("panel 'Incidents'")]
    rows = influx.query(substitute(incidents.influxql))
    assert [r["state"] for r in rows] == ["open", "closed"] and all("north/pump-1/temp" in r["text"] for r in rows)
    (quality,) = [q for q in all_queries() if q.where.startswith("panel 'Precision in operation'")]
    rows = {r["source"]: r for r in influx.query(substitute(quality.influxql))}
    assert rows["north/pump-1/temp"]["below floor"] is True and rows["north/pump-1/temp"]["precision"] == 0.4
    assert rows["north/web-1/nginx"]["below floor"] is False


def test_open_alerts_panel_lists_only_alerts_still_open(influx: InfluxQuery) -> None:
    (query,) = [q for q in all_queries() if q.where.startswith("panel 'Open alerts'")]
    rows = influx.query(substitute(query.influxql))
    assert sorted(r["alert_id"] for r in rows) == ["log-open", "sensor-open"]
