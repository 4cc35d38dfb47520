"""``oddwatch demo``: services, the three dataflows and the simulators, then a summary.

The plant simulator runs ``speed`` times faster than real time over timestamps that end
"now", so a one-minute demo covers an hour of plant time with injected faults; the network
simulator does the same for syslog. The summary compares the alerts in InfluxDB with the
simulators' fault plans: faults detected (with delay) and false alerts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from oddwatch.records import UTC, utcnow
from oddwatch.settings import AssetRule, Settings, as_dict, expand, to_toml

CORRELATED_SITE = "east"  # the correlated scenarios' site (simulators/correlated.py)
READY = re.compile(r"subscribing to|resumed session")
QUERIES = {
    "alerts": 'SELECT "title", "text", "score", "threshold" FROM "alert" WHERE "kind" = \'open\' AND time > now() - 2h',
    "scores": 'SELECT mean("score") FROM "sensor_score" WHERE time > now() - 2h GROUP BY time(1m), "asset"',
    "log novelty": 'SELECT max("novelty") FROM "log_window" WHERE time > now() - 2h GROUP BY time(1m), "host"',
    "ingest errors": 'SELECT count("count") FROM "ingest_error" WHERE time > now() - 2h GROUP BY "reason"',
    "incidents": 'SELECT "asset", "state", "title", "alerts", "sources" FROM "incident" WHERE time > now() - 2h',
}


@dataclass
class FlowProcess:
    """A dataflow running in a child process, with its log lines collected."""

    name: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if READY.search(line):
                self.ready.set()

    def wait_ready(self, timeout: float) -> None:
        if not self.ready.wait(timeout) or self.proc.poll() is not None:
            tail = "\n".join(self.lines[-20:])
            raise RuntimeError(f"demo: the {self.name} flow did not subscribe within {timeout:.0f} s:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_flow(name: str, config: Path) -> FlowProcess:
    """Start ``oddwatch run <name>`` in a child process reading *config*."""
    env = {**os.environ, "ODDWATCH_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "oddwatch.cli", "run", name], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    flow = FlowProcess(name, proc)
    threading.Thread(target=flow._pump, daemon=True).start()
    return flow


def demo_settings(settings: Settings) -> Settings:
    """Demo tweaks: an hour of simulated syslog in 20 s tumbling windows (180 per source, the
    first 60 of them the calibration warm-up) instead of HDFS-style block sessions."""
    p = settings.log_detector
    if p.window_mode == "session" and p.session_regex == r"blk_-?\d+":
        p.window_mode, p.window_by = "tumbling", "time"
    p.window_size_s = min(p.window_size_s, 20.0)
    p.warmup = min(p.warmup, 60)
    return settings


# A log incident's alert may open up to this long before its planned start: a silence starts at
# the source's last line, one usual gap (a few seconds at most in the simulator) before it.
LOG_LEAD_S = 10.0


def match_faults(faults: list[dict[str, Any]], alerts: list[dict[str, Any]], key_of: str, grace_s: float,
                 lead_s: float = 0.001) -> dict[str, Any]:
    """Which planned faults an alert caught (opened inside [start - lead, end + grace]) and which alerts were false.

    *lead_s* allows an alert that opens slightly before the planned start: a silence begins at
    the source's last line before it (the demo's InfluxDB times are in ms, hence 1 ms). A fault
    may carry its own ``grace_s`` (a simulator with another reading interval). Every alert that
    caught no fault is false, whatever its site: ``false_by_site`` counts them per site.

    >>> f = [{"fault_id": "F1", "kind": "spike", "series": "a/b/c", "start": "2026-01-01T00:00:00+00:00",
    ...       "end": "2026-01-01T00:01:00+00:00"}]
    >>> a = [{"key": "a/b/c", "opened": datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC),
    ...       "raised": datetime(2026, 1, 1, 0, 0, 40, tzinfo=UTC)},
    ...      {"key": "a/b/d", "opened": datetime(2026, 1, 1, tzinfo=UTC), "raised": datetime(2026, 1, 1, tzinfo=UTC)}]
    >>> r = match_faults(f, a, "series", 60)
    >>> r["detected"], r["false_alerts"], r["false_by_site"], r["faults"][0]["delay_s"]
    (1, 1, {'a': 1}, 40.0)
    """
    used: set[int] = set()
    rows = []
    for fault in faults:
        # InfluxDB returns times in ms here: an alert opened at the fault's first reading may
        # come back up to 1 ms before the fault's microsecond start.
        start = datetime.fromisoformat(fault["start"]) - timedelta(seconds=lead_s)
        end = datetime.fromisoformat(fault["end"]) + timedelta(seconds=fault.get("grace_s", grace_s))
        hits = [i for i, a in enumerate(alerts) if a["key"] == fault[key_of] and start <= a["opened"] <= end]
        used.update(hits)
        first = min((alerts[i]["raised"] for i in hits), default=None)
        delay = None if first is None else max(0.0, (first - start).total_seconds() - 0.001)
        rows.append({**{k: fault[k] for k in (key_of, "kind", "start")}, "detected": bool(hits), "delay_s": delay})
    delays = [r["delay_s"] for r in rows if r["delay_s"] is not None]
    false_by_site: dict[str, int] = {}
    for i, a in enumerate(alerts):
        if i not in used:
            site = a["key"].split("/", 1)[0]
            false_by_site[site] = false_by_site.get(site, 0) + 1
    return {
        "injected": len(rows), "detected": sum(r["detected"] for r in rows),
        "mean_delay_s": round(sum(delays) / len(delays), 1) if delays else None,
        "alerts": len(alerts), "false_alerts": len(alerts) - len(used), "false_by_site": dict(sorted(false_by_site.items())),
        "faults": rows,
    }


# The correlated scenarios' plant: readings per simulated second over all its series.
CORRELATED_PLANT_RATE = 2.4


def planned_faults(results: dict[str, Any], *, sensor_grace_s: float, log_grace_s: float
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every fault the simulators planned, of every site: (sensor faults keyed by ``series``,
    log faults keyed by ``source``).

    *results* are the simulators' results (``plant``, and when logs run ``network`` and
    ``correlated``). The correlated site contributes its own plant's and network's unrelated
    faults and, per scenario, the faulty sensor series and the log source (kind ``correlated``);
    its sensor faults get a grace of 20 of its own reading intervals.
    """
    sensor = list(results["plant"]["plan"]["faults"])
    log = list(results["network"]["plan"]["incidents"]) if "network" in results else []
    corr = results.get("correlated")
    if corr:
        plan = corr["plan"]
        tick = plan["plant"]["n_series"] / CORRELATED_PLANT_RATE
        grace = max(sensor_grace_s, 20 * tick)
        sensor += [{**f, "grace_s": grace} for f in plan["plant"]["faults"]]
        sensor += [{"fault_id": sc["scenario_id"], "kind": "correlated", "series": sc["sensor_series"],
                    "start": sc["start"], "end": sc["end"], "grace_s": grace} for sc in plan["scenarios"]]
        log += list(plan["network"]["incidents"])
        log += [{"incident_id": sc["scenario_id"], "kind": "correlated", "source": sc["log_source"],
                 "start": sc["start"], "end": sc["end"], "grace_s": log_grace_s} for sc in plan["scenarios"]]
    return sensor, log


def score_alerts(results: dict[str, Any], sensor_alerts: list[dict[str, Any]], log_alerts: list[dict[str, Any]], *,
                 sensor_grace_s: float, log_grace_s: float) -> dict[str, Any]:
    """The demo's sensor and log alerts of every site against every fault the simulators planned."""
    sensor_faults, log_faults = planned_faults(results, sensor_grace_s=sensor_grace_s, log_grace_s=log_grace_s)
    out = {"sensor_faults": match_faults(sensor_faults, sensor_alerts, "series", sensor_grace_s)}
    if "network" in results:
        out["log_incidents"] = match_faults(log_faults, log_alerts, "source", log_grace_s, lead_s=LOG_LEAD_S)
    return out


def _alerts(query: Any, source: str, since: datetime, exclude: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    rows = query.query(
        f"SELECT \"alert_id\", \"raised_at_ms\" FROM \"alert\" WHERE \"source\" = '{source}' AND \"kind\" = 'open' "
        f"AND time >= '{since.isoformat().replace('+00:00', 'Z')}'", epoch="ms")
    out = []
    for r in rows:
        if r.get("raised_at_ms") is None or r["alert_id"] in exclude:
            continue
        key = str(r["alert_id"]).rsplit(":", 1)[0]
        out.append({"key": key, "alert_id": r["alert_id"], "opened": datetime.fromtimestamp(r["time"] / 1000, UTC),
                    "raised": datetime.fromtimestamp(r["raised_at_ms"] / 1000, UTC)})
    return out


def _incident_rows(query: Any, since: datetime) -> list[dict[str, Any]]:
    from oddwatch.evaluation.incidents import incident_rows

    return incident_rows(query, CORRELATED_SITE, since)


def with_correlated_site(settings: Settings, seed: int, duration_s: float) -> Settings:
    """The asset rules the correlated scenarios need; the alert budget counts incidents."""
    from simulators.correlated import CorrelatedSimulation

    sim = CorrelatedSimulation(seed=seed, duration_s=duration_s, start=utcnow(), site=CORRELATED_SITE)
    settings.assets.map = [*settings.assets.map, *(AssetRule(**r) for r in sim.asset_rules)]  # type: ignore[arg-type]
    settings.alerts.budget_counts = "incidents"
    return settings


def _count(query: Any, q: str) -> int:
    rows = query.query(q)
    return int(next(iter(v for k, v in rows[0].items() if k != "time"), 0)) if rows else 0


def run_demo(settings: Settings, *, duration_s: float = 60.0, seed: int = 7, as_json: bool = False,
             logs: bool = True, speed: float = 60.0, plant_rate: float = 640.0, log_rate: float = 1200.0) -> dict[str, Any]:
    """Run the whole demo; prints and returns the summary."""
    from oddwatch import simulate as publish
    from oddwatch.connectors.influx import InfluxQuery
    from oddwatch.services import from_settings

    say = (lambda *a: None) if as_json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    settings = demo_settings(settings)
    if logs:  # incidents of the correlated scenarios, on their own site
        settings = with_correlated_site(settings, seed, duration_s * speed)
    services = from_settings(settings)
    say("demo: starting Mosquitto and InfluxDB ...")
    services.start()
    state = expand(settings.services.state_dir)
    # Each demo starts its flows afresh: no WAL or snapshot of an earlier demo is resumed.
    shutil.rmtree(state / "demo-flows", ignore_errors=True)
    settings.state.dir = str(state / "demo-flows")
    config = state / "demo.toml"
    config.write_text(to_toml(as_dict(settings, mask=False)))
    names = ["sensors", "logs", "incidents"] if logs else ["sensors"]
    say(f"demo: starting the {' and '.join(names)} dataflows ...")
    flows = [start_flow(name, config) for name in names]
    query = InfluxQuery(settings.influx)
    summary: dict[str, Any] = {}
    try:
        for flow in flows:
            flow.wait_ready(120)
        sim_s = duration_s * speed
        since = utcnow() - timedelta(seconds=sim_s + 60)
        # Earlier demo runs may have written into the same time range: count only what is new.
        rfc = since.isoformat().replace("+00:00", "Z")
        own = f"\"site\" != '{CORRELATED_SITE}'"
        q_scored = f"SELECT count(\"score\") FROM \"sensor_score\" WHERE time >= '{rfc}' AND {own}"
        q_windows = f"SELECT count(\"novelty\") FROM \"log_window\" WHERE time >= '{rfc}' AND {own}"
        before_scored, before_windows = _count(query, q_scored), _count(query, q_windows)
        old = {src: frozenset(a["alert_id"] for a in _alerts(query, src, since)) for src in ("sensor", "log")}
        old_incidents = frozenset(r["incident_id"] for r in _incident_rows(query, since))
        say(f"demo: simulating {sim_s / 3600:.1f} h of plant{' and network' if logs else ''} in {duration_s:.0f} s ...")
        results: dict[str, Any] = {}
        # Faults start once the detectors are warm: after their warm-up readings/windows.
        per_series = plant_rate * duration_s / 32
        plant_warmup = min(0.6, max(0.25, 1.3 * settings.series.warmup / per_series))
        n_windows = sim_s / settings.log_detector.window_size_s
        log_warmup = min(0.6, max(0.25, 1.3 * settings.log_detector.warmup / n_windows))
        threads = [threading.Thread(target=lambda: results.__setitem__("plant", publish.run_plant(
            settings, rate=plant_rate / speed, duration_s=sim_s, seed=seed, speed=speed, day_s=sim_s / 3,
            warmup_frac=plant_warmup, progress=not as_json)))]
        if logs:
            threads.append(threading.Thread(target=lambda: results.__setitem__("network", publish.run_network(
                settings, rate=log_rate / speed, duration_s=sim_s, seed=seed, speed=speed,
                warmup_frac=log_warmup))))
            threads.append(threading.Thread(target=lambda: results.__setitem__("correlated", publish.run_correlated(
                settings, duration_s=sim_s, seed=seed, speed=speed, site=CORRELATED_SITE,
                plant_rate=CORRELATED_PLANT_RATE))))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        plant = results["plant"]
        scored = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(1.0)
            scored = _count(query, q_scored) - before_scored
            if scored >= plant["published"]:
                break
        if logs:  # the log flow has caught up when its window count stops growing for 3 s
            last, still, deadline = -1, 0, time.monotonic() + 60
            while still < 3 and time.monotonic() < deadline:
                time.sleep(1.0)
                now_windows = _count(query, q_windows)
                still, last = (still + 1, last) if now_windows == last else (0, now_windows)
        time.sleep(2 * settings.influx.flush_interval_s + 1)
        wall = time.monotonic() - t0
        n_series = plant["series"]
        tick = n_series / (plant_rate / speed)
        window_s = settings.log_detector.window_size_s
        scored_alerts = score_alerts(results, _alerts(query, "sensor", since, old["sensor"]),
                                     _alerts(query, "log", since, old["log"]) if logs else [],
                                     sensor_grace_s=20 * tick, log_grace_s=3 * window_s)
        summary = {
            "ok": True,
            "wall_s": round(wall, 1),
            "simulated_s": sim_s,
            "readings_published": plant["published"],
            "readings_scored": scored,
            "series": n_series,
            "sensor_faults": scored_alerts["sensor_faults"],
            "command": oddwatch_command(),
        }
        if logs:
            net = results["network"]
            windows = _count(query, q_windows) - before_windows
            summary["log_lines_published"] = net["published"]
            summary["log_windows_scored"] = windows
            summary["log_incidents"] = scored_alerts["log_incidents"]
            from oddwatch.evaluation.incidents import score_incidents

            rows = [r for r in _incident_rows(query, since) if r["incident_id"] not in old_incidents]
            summary["incidents"] = score_incidents(results["correlated"]["plan"], rows,
                                                   grace_s=3 * settings.log_detector.window_size_s)
        summary["queries"] = QUERIES
        summary["grafana"] = "deploy/grafana/provisioning (datasource + dashboards); see deploy/README.md"
        summary["still_running"] = {
            "mqtt": f"Mosquitto on {settings.mqtt.host}:{settings.mqtt.port}",
            "influx": f"InfluxDB on {settings.influx.url} (database {settings.influx.database!r})",
        }
    finally:
        for flow in flows:
            flow.stop()
            if os.environ.get("ODDWATCH_DEMO_DEBUG"):
                print(f"--- {flow.name} flow log ---", *flow.lines[-40:], sep="\n", file=sys.stderr)
    print(json.dumps(summary, default=str) if as_json else format_summary(summary))
    return summary


def oddwatch_command() -> str:
    """How to type ``oddwatch`` in this shell: ``oddwatch`` when it is on PATH, else the path of
    the script next to this Python (``.venv/bin/oddwatch`` after ``make``), else ``python -m``."""
    script = Path(sys.executable).parent / "oddwatch"
    found = shutil.which("oddwatch")
    if found and script.exists() and Path(found).resolve() == script.resolve():
        return "oddwatch"
    if script.exists():
        try:
            return str(script.absolute().relative_to(Path.cwd()))
        except ValueError:
            return str(script.absolute())
    return f"{sys.executable} -m oddwatch.cli"


def _false(f: dict[str, Any]) -> str:
    sites = f.get("false_by_site") or {}
    per_site = f" ({', '.join(f'{k} {v}' for k, v in sites.items())})" if sites else ""
    return f"false alerts {f['false_alerts']}{per_site}"


def format_summary(s: dict[str, Any]) -> str:
    """The demo summary for a terminal; every command it suggests works as printed."""
    f = s["sensor_faults"]
    cmd = s.get("command", "oddwatch")
    lines = [
        "",
        "oddwatch demo summary",
        f"  wall time {s['wall_s']} s for {s['simulated_s'] / 3600:.1f} h of simulated time",
        f"  sensor readings: {s['readings_published']} published over {s['series']} series, {s['readings_scored']} scored",
        f"  sensor faults (every site): {f['detected']}/{f['injected']} detected, mean delay {f['mean_delay_s']} s "
        f"(simulated time); alerts opened {f['alerts']}, {_false(f)}",
    ]
    for row in f["faults"]:
        delay = "missed" if not row["detected"] else f"after {row['delay_s']:.0f} s"
        lines.append(f"    {row['kind']:<12} {row['series']:<32} {delay}")
    if "log_incidents" in s:
        g = s["log_incidents"]
        lines += [
            f"  log lines: {s['log_lines_published']} published, {s['log_windows_scored']} windows scored",
            f"  log incidents (every site): {g['detected']}/{g['injected']} detected; alerts opened {g['alerts']}, "
            f"{_false(g)}",
        ]
        for row in g["faults"]:
            delay = "missed" if not row["detected"] else f"after {row['delay_s']:.0f} s"
            lines.append(f"    {row['kind']:<12} {row['source']:<32} {delay}")
    total = f["false_alerts"] + s.get("log_incidents", {}).get("false_alerts", 0)
    opened = f["alerts"] + s.get("log_incidents", {}).get("alerts", 0)
    lines.append(f"  false alerts in all: {total} of {opened} (an alert is false when it caught no planned fault)")
    if "incidents" in s:
        i = s["incidents"]
        lines.append(f"  incidents ({CORRELATED_SITE}): {i['detected']}/{i['scenarios']} correlated faults detected, "
                     f"{i['merged']} merged into one incident, {i['split']} split; {i['unrelated_detected']}/"
                     f"{i['unrelated']} unrelated faults detected, {i['wrongly_merged']} wrongly merged; "
                     f"{i['incidents']} incidents in all")
    lines += ["", "Look at the results:",
              f"  {cmd} alerts --since 2h          the alerts with their explanations",
              f"  {cmd} explain ALERT_ID           the story of one alert",
              f"  {cmd} report --since 2h --out report.html"]
    if cmd != "oddwatch" and cmd.endswith("/oddwatch"):
        lines.append(f"  (or `. {cmd.removesuffix('/oddwatch')}/activate` once, then type `oddwatch ...`)")
    lines += ["InfluxQL (database 'oddwatch'; POST to the InfluxDB /query endpoint, e.g. "
              "curl -sG URL/query --data-urlencode db=oddwatch --data-urlencode q=...):"]
    lines += [f"  {name}: {q}" for name, q in s["queries"].items()]
    lines += [f"  Grafana: {s['grafana']}"]
    if "still_running" in s:
        lines += ["", "Still running: " + "; ".join(s["still_running"].values()) + ".",
                  f"  {cmd} up                 runs the dataflows on them (Ctrl-C stops)",
                  f"  {cmd} services down      stops them"]
    lines += [""]
    return "\n".join(lines)
