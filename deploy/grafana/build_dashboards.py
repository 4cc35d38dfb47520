"""Generate oddwatch's Grafana dashboards (classic dashboard JSON) from plain Python dicts.

Run from the repository root after changing a panel, and commit the output::

    .venv/bin/python deploy/grafana/build_dashboards.py          # writes deploy/grafana/dashboards/
    .venv/bin/python deploy/grafana/build_dashboards.py --check  # exit 1 if the JSON is stale

Every query is raw InfluxQL (it runs on InfluxDB 1.x, on 2.x through a DBRP mapping and on
3.x), uses ``WHERE $timeFilter`` and ``GROUP BY time($__interval)`` where it aggregates over
time, and reads only the schema in ``docs/schema.md``. ``tests/test_grafana.py`` runs every
query against a real InfluxDB.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DATASOURCE_UID = "oddwatch-influx"
DS: dict[str, str] = {"type": "influxdb", "uid": DATASOURCE_UID}
OUT_DIR = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39
TAGS = ["oddwatch"]

Json = dict[str, Any]


# --- building blocks -------------------------------------------------------------------------


def target(query: str, ref: str = "A", *, alias: str = "", table: bool = False) -> Json:
    """A raw InfluxQL panel target."""
    out: Json = {
        "datasource": DS,
        "query": query,
        "rawQuery": True,
        "refId": ref,
        "resultFormat": "table" if table else "time_series",
    }
    if alias:
        out["alias"] = alias
    return out


def timeseries(
    title: str,
    targets: list[Json],
    *,
    unit: str = "short",
    description: str = "",
    bars: bool = False,
    min_: float | None = None,
    max_: float | None = None,
    overrides: list[Json] | None = None,
) -> Json:
    """A time series panel (lines, or bars for counts per interval)."""
    custom: Json = {"drawStyle": "bars" if bars else "line", "fillOpacity": 60 if bars else 10,
                    "lineWidth": 1, "showPoints": "never", "spanNulls": False}
    if bars:
        custom["stacking"] = {"group": "A", "mode": "normal"}
    defaults: Json = {"custom": custom, "unit": unit}
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["max", "last"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }


def table(
    title: str,
    targets: list[Json],
    *,
    description: str = "",
    sort_by: str = "",
    limit: int = 0,
    time_from: str = "",
    score_columns: tuple[str, ...] = (),
) -> Json:
    """A table panel; *score_columns* get green/orange/red cell colours (0.5, 0.8)."""
    transformations: list[Json] = []
    if sort_by:
        transformations.append({"id": "sortBy", "options": {"sort": [{"field": sort_by, "desc": True}]}})
    if limit:
        transformations.append({"id": "limit", "options": {"limitField": limit}})
    overrides = [
        {
            "matcher": {"id": "byName", "options": column},
            "properties": [
                {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                    {"color": "green", "value": None},
                    {"color": "orange", "value": 0.5},
                    {"color": "red", "value": 0.8},
                ]}},
                {"id": "decimals", "value": 3},
            ],
        }
        for column in score_columns
    ]
    panel: Json = {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "transformations": transformations,
        "fieldConfig": {"defaults": {"custom": {"cellOptions": {"type": "auto"}, "filterable": True}},
                        "overrides": overrides},
        "options": {"showHeader": True, "cellHeight": "sm"},
    }
    if time_from:
        panel["timeFrom"] = time_from
    return panel


def stat(title: str, targets: list[Json], *, unit: str = "short", description: str = "",
         red_above: float | None = None) -> Json:
    """A single-number panel (last value), red above *red_above*."""
    steps: list[Json] = [{"color": "green", "value": None}]
    if red_above is not None:
        steps.append({"color": "red", "value": red_above})
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background", "graphMode": "area"},
    }


def dashed(name_regex: str) -> Json:
    """A field override drawing series whose name matches *name_regex* as dashed lines."""
    return {
        "matcher": {"id": "byRegexp", "options": name_regex},
        "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
    }


def query_variable(name: str, query: str, label: str = "") -> Json:
    """A multi-value template variable (with All) filled by ``SHOW TAG VALUES``."""
    return {
        "name": name,
        "label": label or name.capitalize(),
        "type": "query",
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def alert_annotation(name: str, query: str, color: str) -> Json:
    """Alerts as annotations: a region from open to close, the explanation as text."""
    return {
        "name": name,
        "datasource": DS,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "query": query,
        "titleColumn": "title",
        "textColumn": "text",
        "tagsColumn": "severity,subject",
        "timeEndColumn": "time_end",
    }


def incident_annotation(sources_regex: str) -> Json:
    """Incidents whose sources match *sources_regex*: a region from the first alert to the close
    (or the latest update while open), the story as text."""
    return {
        "name": "Incidents",
        "datasource": DS,
        "enable": True,
        "hide": False,
        "iconColor": "purple",
        "query": 'SELECT "title", "text", "time_end", "severity", "asset" FROM "incident" WHERE $timeFilter '
                 f'AND "site" =~ /^$site$/ AND "sources" =~ /{sources_regex}/',
        "titleColumn": "title",
        "textColumn": "text",
        "tagsColumn": "severity,asset",
        "timeEndColumn": "time_end",
    }


BUILTIN_ANNOTATION: Json = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def layout(rows: list[list[tuple[Json, int, int]]]) -> list[Json]:
    """Place panels row by row: each entry is (panel, width, height) on a 24-column grid."""
    panels: list[Json] = []
    y = 0
    for row in rows:
        x = 0
        for panel, width, height in row:
            panels.append({**panel, "id": len(panels) + 1, "gridPos": {"h": height, "w": width, "x": x, "y": y}})
            x += width
        y += max(height for _, _, height in row)
    return panels


def dashboard(uid: str, title: str, description: str, rows: list[list[tuple[Json, int, int]]],
              *, variables: list[Json] | None = None, annotations: list[Json] | None = None,
              time_from: str = "now-6h") -> Json:
    """A classic dashboard JSON ready for file provisioning."""
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "links": [{"type": "dashboards", "tags": TAGS, "asDropdown": True, "title": "oddwatch",
                   "includeVars": False, "keepTime": True}],
        "annotations": {"list": [BUILTIN_ANNOTATION, *(annotations or [])]},
        "templating": {"list": variables or []},
        "panels": layout(rows),
    }


# --- the dashboards --------------------------------------------------------------------------

SITE_SENSORS = 'SHOW TAG VALUES FROM "sensor_score" WITH KEY = "site"'
SITE_LOGS = 'SHOW TAG VALUES FROM "log_window" WITH KEY = "site"'
PER_INTERVAL = "GROUP BY time($__interval)"


def overview() -> Json:
    site = '"site" =~ /^$site$/'
    assets = table(
        "Assets by current health",
        [target(
            'SELECT max("score") AS "max score", last("score") AS "score", last("threshold") AS "threshold", '
            f'count("score") AS "readings" FROM "sensor_score" WHERE $timeFilter AND {site} '
            'GROUP BY "site", "asset"', table=True)],
        description="Highest and latest anomaly score of each asset's sensors over the last 15 minutes.",
        sort_by="max score", time_from="15m", score_columns=("max score", "score"),
    )
    hosts = table(
        "Hosts by current health",
        [target(
            'SELECT max("novelty") AS "max novelty", last("novelty") AS "novelty", last("threshold") AS "threshold", '
            f'sum("lines") AS "lines" FROM "log_window" WHERE $timeFilter AND {site} '
            'GROUP BY "site", "host", "app"', table=True)],
        description="Highest and latest novelty of each host/app's log windows over the last 15 minutes.",
        sort_by="max novelty", time_from="15m", score_columns=("max novelty", "novelty"),
    )
    open_alerts = table(
        "Open alerts",
        [target(
            'SELECT "source", "severity", "subject", "title", "score", "threshold", "alert_id" FROM "alert" '
            f"WHERE $timeFilter AND \"kind\" = 'open' AND \"state\" = 'open' AND {site}", table=True)],
        description="Alerts opened in the last 7 days that have not closed (time = when it opened).",
        time_from="7d", score_columns=("score",),
    )
    alert_counts = timeseries(
        "Alerts opened",
        [target(f"SELECT count(\"alert_id\") FROM \"alert\" WHERE $timeFilter AND \"kind\" = 'open' AND {site} "
                f'{PER_INTERVAL}, "source", "severity" fill(0)', alias="$tag_source $tag_severity")],
        bars=True, description="Alerts opened per interval, by source and severity.",
    )
    top_sensors = table(
        "Top anomalous sensors",
        [target(
            'SELECT max("score") AS "max score", mean("score") AS "mean score", last("threshold") AS "threshold" '
            f'FROM "sensor_score" WHERE $timeFilter AND {site} GROUP BY "site", "asset", "sensor"', table=True)],
        sort_by="max score", limit=10, score_columns=("max score", "mean score"),
    )
    top_logs = table(
        "Top anomalous log sources",
        [target(
            'SELECT max("novelty") AS "max novelty", mean("novelty") AS "mean novelty", sum("lines") AS "lines" '
            f'FROM "log_window" WHERE $timeFilter AND {site} GROUP BY "site", "host", "app"', table=True)],
        sort_by="max novelty", limit=10, score_columns=("max novelty", "mean novelty"),
    )
    feedback = timeseries(
        "Operator feedback on alerts",
        [target(f'SELECT sum("count") FROM "feedback" WHERE $timeFilter AND {site} {PER_INTERVAL}, "label" fill(0)',
                alias="$tag_label")],
        bars=True, description="Verdicts sent to oddwatch/feedback/<alert_id>.",
    )
    incidents = table(
        "Incidents",
        [target(
            'SELECT "state", "asset", "peak_severity", "title", "text", "alerts", "sources", "incident_id" '
            f'FROM "incident" WHERE $timeFilter AND {site} ORDER BY time DESC LIMIT 100', table=True)],
        description="Alerts of one asset that opened close together, newest first (time = first alert); "
        "the text tells the story in time order.",
    )
    quality = table(
        "Precision in operation",
        [target(
            'SELECT sum("alerts") AS "alerts", sum("confirmed") AS "confirmed", '
            'sum("false_positives") AS "false positives", sum("missed") AS "missed", '
            'last("source_precision") AS "precision", last("below_floor") AS "below floor", '
            'last("recent_false_positives") AS "recent false positives" '
            f'FROM "quality" WHERE $timeFilter AND {site} GROUP BY "site", "asset", "source", "component"',
            table=True)],
        description="Operator verdicts per source and detector component over the last 4 weeks: precision = "
        "confirmed / (confirmed + false positives) over every week kept; sources below [quality].precision_floor "
        "list their latest false positives.",
        time_from="28d",
    )
    drift = timeseries(
        "Baseline drift",
        [target(f'SELECT max("score") FROM "drift" WHERE $timeFilter AND {site} {PER_INTERVAL}, "stream", "site" '
                "fill(none)", alias="$tag_stream $tag_site")],
        min_=0, max_=1, description="Slow change in the series' baselines (max per interval).",
    )
    return dashboard(
        "oddwatch-overview", "oddwatch / Overview",
        "Assets and hosts by current health, open alerts and the most anomalous sources.",
        [
            [(assets, 12, 9), (hosts, 12, 9)],
            [(open_alerts, 24, 8)],
            [(incidents, 24, 9)],
            [(alert_counts, 12, 8), (feedback, 6, 8), (drift, 6, 8)],
            [(quality, 24, 8)],
            [(top_sensors, 12, 9), (top_logs, 12, 9)],
        ],
        variables=[query_variable("site", SITE_SENSORS)],
    )


def sensor_detail() -> Json:
    where = '$timeFilter AND "site" =~ /^$site$/ AND "asset" =~ /^$asset$/ AND "sensor" =~ /^$sensor$/'
    value = timeseries(
        "Value",
        [
            target(f'SELECT mean("value") FROM "sensor_score" WHERE {where} {PER_INTERVAL}, "asset", "sensor" '
                   "fill(none)", "A", alias="$tag_asset/$tag_sensor"),
            target(f'SELECT min("expected_low") FROM "sensor_score" WHERE {where} {PER_INTERVAL}, "asset", "sensor" '
                   "fill(none)", "B", alias="expected low $tag_asset/$tag_sensor"),
            target(f'SELECT max("expected_high") FROM "sensor_score" WHERE {where} {PER_INTERVAL}, "asset", "sensor" '
                   "fill(none)", "C", alias="expected high $tag_asset/$tag_sensor"),
        ],
        overrides=[dashed("^expected .*")],
        description="The readings (mean per interval) and the range the detector expected (dashed). "
        "Shaded regions: alerts from open to close.",
    )
    score = timeseries(
        "Score and threshold",
        [
            target(f'SELECT max("score") FROM "sensor_score" WHERE {where} {PER_INTERVAL}, "asset", "sensor" '
                   "fill(none)", "A", alias="score $tag_asset/$tag_sensor"),
            target(f'SELECT mean("threshold") FROM "sensor_score" WHERE {where} {PER_INTERVAL}, "asset", "sensor" '
                   "fill(none)", "B", alias="threshold $tag_asset/$tag_sensor"),
        ],
        min_=0, max_=1, overrides=[dashed("^threshold .*")],
        description="Anomaly score (max per interval) against the calibrated threshold (dashed).",
    )
    anomalies = timeseries(
        "Readings at or above the threshold",
        [target(f'SELECT count("score") FROM "sensor_score" WHERE {where} AND "is_anomaly" = true '
                f'{PER_INTERVAL}, "asset", "sensor" fill(0)', alias="$tag_asset/$tag_sensor")],
        bars=True,
    )
    alerts = table(
        "Sensor alerts",
        [target(
            'SELECT "state", "severity", "subject", "title", "text", "score", "threshold", "duration_s" FROM "alert" '
            "WHERE $timeFilter AND \"source\" = 'sensor' AND \"kind\" = 'open' AND \"site\" =~ /^$site$/ "
            'AND "subject" =~ /^$asset$/ ORDER BY time DESC LIMIT 100', table=True)],
        description="Alerts of the selected assets, newest first (time = when it opened).",
    )
    annotation = alert_annotation(
        "Sensor alerts",
        'SELECT "title", "text", "time_end", "severity", "subject" FROM "alert" WHERE $timeFilter '
        "AND \"source\" = 'sensor' AND \"kind\" = 'open' AND \"site\" =~ /^$site$/ AND \"subject\" =~ /^$asset$/",
        "red",
    )
    return dashboard(
        "oddwatch-sensor", "oddwatch / Sensor detail",
        "Value, anomaly score and threshold per sensor; alerts shaded from open to close.",
        [
            [(value, 24, 8)],
            [(score, 24, 8)],
            [(anomalies, 12, 7), (alerts, 12, 7)],
        ],
        variables=[
            query_variable("site", SITE_SENSORS),
            query_variable("asset", 'SHOW TAG VALUES FROM "sensor_score" WITH KEY = "asset" WHERE "site" =~ /^$site$/'),
            query_variable(
                "sensor",
                'SHOW TAG VALUES FROM "sensor_score" WITH KEY = "sensor" '
                'WHERE "site" =~ /^$site$/ AND "asset" =~ /^$asset$/',
            ),
        ],
        annotations=[annotation, incident_annotation("$site\\/$asset\\/$sensor")],
    )


def logs() -> Json:
    where = '$timeFilter AND "site" =~ /^$site$/ AND "host" =~ /^$host$/ AND "app" =~ /^$app$/'
    novelty = timeseries(
        "Novelty and threshold",
        [
            target(f'SELECT max("novelty") FROM "log_window" WHERE {where} {PER_INTERVAL}, "host", "app" fill(none)',
                   "A", alias="novelty $tag_host/$tag_app"),
            target(f'SELECT mean("threshold") FROM "log_window" WHERE {where} {PER_INTERVAL}, "host", "app" '
                   "fill(none)", "B", alias="threshold $tag_host/$tag_app"),
        ],
        min_=0, max_=1, overrides=[dashed("^threshold .*")],
        description="Window novelty (max per interval) against the calibrated threshold (dashed).",
    )
    volume = timeseries(
        "Lines and templates per interval",
        [
            target(f'SELECT sum("lines") FROM "log_window" WHERE {where} {PER_INTERVAL}, "host", "app" fill(0)',
                   "A", alias="lines $tag_host/$tag_app"),
            target(f'SELECT max("templates") FROM "log_window" WHERE {where} {PER_INTERVAL}, "host", "app" '
                   "fill(none)", "B", alias="templates $tag_host/$tag_app"),
        ],
    )
    novel = table(
        "Newest novel templates",
        [target(
            'SELECT "host", "app", "novelty", "novel_template", "example", "window_id" FROM "log_window" '
            f'WHERE {where} AND "novel_template" =~ /./ ORDER BY time DESC LIMIT 50', table=True)],
        description="Templates seen for the first time, newest first, with one example line each.",
        score_columns=("novelty",),
    )
    alerts = table(
        "Log alerts",
        [target(
            'SELECT "state", "severity", "subject", "title", "text", "score", "duration_s" FROM "alert" '
            "WHERE $timeFilter AND \"source\" = 'log' AND \"kind\" = 'open' AND \"site\" =~ /^$site$/ "
            'AND "subject" =~ /^$host\\/$app$/ ORDER BY time DESC LIMIT 100', table=True)],
    )
    annotation = alert_annotation(
        "Log alerts",
        'SELECT "title", "text", "time_end", "severity", "subject" FROM "alert" WHERE $timeFilter '
        "AND \"source\" = 'log' AND \"kind\" = 'open' AND \"site\" =~ /^$site$/ AND \"subject\" =~ /^$host\\/$app$/",
        "orange",
    )
    return dashboard(
        "oddwatch-logs", "oddwatch / Logs",
        "Log novelty and threshold per host/app, the newest novel templates and log alerts.",
        [
            [(novelty, 24, 8)],
            [(novel, 24, 10)],
            [(volume, 12, 8), (alerts, 12, 8)],
        ],
        variables=[
            query_variable("site", SITE_LOGS),
            query_variable("host", 'SHOW TAG VALUES FROM "log_window" WITH KEY = "host" WHERE "site" =~ /^$site$/'),
            query_variable(
                "app",
                'SHOW TAG VALUES FROM "log_window" WITH KEY = "app" WHERE "site" =~ /^$site$/ AND "host" =~ /^$host$/',
            ),
        ],
        annotations=[annotation, incident_annotation("$site\\/$host\\/$app")],
    )


def pipeline_health() -> Json:
    inst = '"instance" =~ /^$instance$/'

    def pipe(select: str, component: str, group: str = '"component", "instance"', fill: str = "none") -> str:
        return (f'SELECT {select} FROM "pipeline" WHERE $timeFilter AND "component" =~ /{component}/ AND {inst} '
                f"{PER_INTERVAL}, {group} fill({fill})")

    rate = "non_negative_derivative(max(\"{}\"), 1s)"
    throughput = timeseries(
        "Readings and lines per second",
        [
            target(pipe(rate.format("messages_in"), "^(sensor|log)$"), "A", alias="in $tag_component ($tag_instance)"),
            target(pipe(rate.format("readings_scored"), "^sensor$"), "B", alias="scored readings ($tag_instance)"),
            target(pipe(rate.format("windows_scored"), "^log$"), "C", alias="scored windows ($tag_instance)"),
        ],
        unit="reqps", description="MQTT messages received and scored per second.",
    )
    errors = timeseries(
        "Ingest errors by reason",
        [target(f'SELECT sum("count") FROM "ingest_error" WHERE $timeFilter {PER_INTERVAL}, "stream", "reason" fill(0)',
                alias="$tag_stream $tag_reason")],
        bars=True, description="Rejected inputs per interval (details: ingest_error, dead-letter topics).",
    )
    embed = timeseries(
        "Embedding batches",
        [
            target(pipe(rate.format("model_calls"), "^embedder$"), "A", alias="model calls/s ($tag_instance)"),
            target(pipe('mean("batch_size")', "^embedder$"), "B", alias="batch size ($tag_instance)"),
        ],
    )
    cache = timeseries(
        "Template cache hit rate",
        [target(pipe('mean("cache_hit_rate")', "^templates$"), alias="hit rate ($tag_instance)")],
        unit="percentunit", min_=0, max_=1,
    )
    index = timeseries(
        "Novelty index sizes",
        [target(pipe('last("index_size")', "^index:"), alias="$tag_component ($tag_instance)")],
        description="Vectors per group's novelty index.",
    )
    writes = timeseries(
        "InfluxDB points written and write errors",
        [
            target(pipe(rate.format("points_written"), "^influx$"), "A", alias="points/s ($tag_instance)"),
            target(pipe(rate.format("write_errors"), "^influx$"), "B", alias="write errors/s ($tag_instance)"),
        ],
        overrides=[{"matcher": {"id": "byRegexp", "options": "^write errors.*"},
                    "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]}],
    )
    spool = timeseries(
        "Spool size",
        [target(pipe('max("spool_bytes")', "^influx$"), alias="spool ($tag_instance)")],
        unit="bytes", description="Bytes waiting on disk for InfluxDB; it should drain to 0.",
    )
    spool_now = stat(
        "Spool now",
        [target(pipe('last("spool_bytes")', "^influx$", group='"instance"'), alias="$tag_instance")],
        unit="bytes", red_above=1,
    )
    lag = timeseries(
        "End-to-end lag",
        [target(pipe('mean("lag_s")', "^flow$"), alias="lag ($tag_instance)")],
        unit="s", description="Seconds from an event's timestamp to its score (mean per interval).",
    )
    budget = timeseries(
        "Alert budget (this hour)",
        [
            target(pipe('last("budget_used")', "^budget$"), "A", alias="alerts sent ($tag_instance)"),
            target(pipe('last("budget_limit")', "^budget$"), "B", alias="limit ($tag_instance)"),
            target(pipe('last("budget_held")', "^budget$"), "C", alias="held in summaries ($tag_instance)"),
        ],
        description="Alerts sent this hour against [alerts] budget_global_per_hour; warnings past it are "
                    "grouped into one summary alert.",
    )
    return dashboard(
        "oddwatch-pipeline", "oddwatch / Pipeline health",
        "oddwatch's own health from the pipeline and ingest_error measurements.",
        [
            [(throughput, 12, 8), (errors, 12, 8)],
            [(embed, 8, 8), (cache, 8, 8), (index, 8, 8)],
            [(writes, 10, 8), (spool, 10, 8), (spool_now, 4, 8)],
            [(lag, 16, 7), (budget, 8, 7)],
        ],
        variables=[query_variable("instance", 'SHOW TAG VALUES FROM "pipeline" WITH KEY = "instance"')],
        time_from="now-3h",
    )


def dashboards() -> dict[str, Json]:
    """File name -> dashboard JSON, for every oddwatch dashboard."""
    return {
        "overview.json": overview(),
        "sensor-detail.json": sensor_detail(),
        "logs.json": logs(),
        "pipeline-health.json": pipeline_health(),
    }


def render(board: Json) -> str:
    """The committed form of a dashboard: stable key order, 2-space indent, final newline."""
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def stale(out_dir: Path = OUT_DIR) -> list[str]:
    """Names of dashboard files in *out_dir* that are missing or differ from the generator."""
    return [
        name for name, board in dashboards().items()
        if not (out_dir / name).exists() or (out_dir / name).read_text() != render(board)
    ]


def write(out_dir: Path = OUT_DIR) -> list[Path]:
    """Write every dashboard to *out_dir*; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, board in dashboards().items():
        path = out_dir / name
        path.write_text(render(board))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.out)
        if names:
            print(f"stale dashboards in {args.out}: {', '.join(names)}; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
