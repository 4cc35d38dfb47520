"""The demo summary counts false alerts against every simulator's fault plan, on every site."""

from __future__ import annotations

import os
import random
import subprocess
from datetime import datetime, timedelta
from typing import Any

import pytest

from oddwatch.demo import (
    CORRELATED_PLANT_RATE,
    CORRELATED_SITE,
    QUERIES,
    format_summary,
    oddwatch_command,
    score_alerts,
)
from oddwatch.records import UTC
from simulators.correlated import CorrelatedSimulation
from simulators.network import NetworkSimulation
from simulators.plant import PlantSimulation

START = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = 3600.0


def results() -> dict[str, Any]:
    plant = PlantSimulation(seed=7, rate=640 / 60, duration_s=HOUR, start=START)
    net = NetworkSimulation(seed=7, rate=20, duration_s=HOUR, start=START)
    corr = CorrelatedSimulation(seed=7, duration_s=HOUR, start=START, site=CORRELATED_SITE,
                                plant_rate=CORRELATED_PLANT_RATE)
    return {"plant": {"plan": plant.plan.as_dict()}, "network": {"plan": net.plan.as_dict()},
            "correlated": {"plan": corr.as_dict()}}


def spans(r: dict[str, Any]) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(key, start, end) of every planned fault, read straight from the plans."""
    c = r["correlated"]["plan"]
    sensor = [(f["series"], f["start"], f["end"]) for f in r["plant"]["plan"]["faults"] + c["plant"]["faults"]]
    sensor += [(s["sensor_series"], s["start"], s["end"]) for s in c["scenarios"]]
    log = [(i["source"], i["start"], i["end"]) for i in r["network"]["plan"]["incidents"] + c["network"]["incidents"]]
    log += [(s["log_source"], s["start"], s["end"]) for s in c["scenarios"]]
    return sensor, log


def alerts_for(faults: list[tuple[str, str, str]], keys: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """One alert inside each fault, and 3 alerts per site on keys and times far from any fault."""
    out = []
    for key, start, _ in faults:
        t = datetime.fromisoformat(start) + timedelta(seconds=1)
        out.append({"key": key, "opened": t, "raised": t})
    faulty = {k for k, _, _ in faults}
    clean = [k for k in keys if k not in faulty]
    for site in sorted({k.split("/")[0] for k in keys}):
        for k in [k for k in clean if k.startswith(site + "/")][:3]:
            t = START + timedelta(seconds=rng.uniform(0, HOUR))
            out.append({"key": k, "opened": t, "raised": t})
    return out


def independent_false(alerts: list[dict[str, Any]], faults: list[tuple[str, str, str]], grace_s: float) -> int:
    return sum(not any(a["key"] == k and datetime.fromisoformat(s) - timedelta(seconds=10) <= a["opened"]
                       <= datetime.fromisoformat(e) + timedelta(seconds=grace_s) for k, s, e in faults) for a in alerts)


def test_false_alerts_are_counted_on_every_site_against_the_fault_plans() -> None:
    r = results()
    sensor_faults, log_faults = spans(r)
    rng = random.Random(3)
    plant_keys = [f"{s}/{a}/{n}" for s, a, n in (k.split("/") for k, _, _ in sensor_faults)]
    plant_keys += [f"{CORRELATED_SITE}/quiet-asset/flow", "north/quiet-asset/flow", "south/quiet/flow"]
    log_keys = [k for k, _, _ in log_faults] + [f"{CORRELATED_SITE}/sw-9/ifmgr", "north/r9/bgpd"]
    sensor_alerts = alerts_for(sensor_faults, plant_keys, rng)
    log_alerts = alerts_for(log_faults, log_keys, rng)
    # a false log alert on the correlated site's source in its fault-free first half
    east_log = next(k for k, _, _ in log_faults if k.startswith(CORRELATED_SITE + "/"))
    log_alerts.append({"key": east_log, "opened": START + timedelta(seconds=60), "raised": START + timedelta(seconds=60)})
    scored = score_alerts(r, sensor_alerts, log_alerts, sensor_grace_s=60, log_grace_s=60)
    s, g = scored["sensor_faults"], scored["log_incidents"]
    assert s["injected"] == len(sensor_faults) and s["detected"] == len(sensor_faults)
    assert g["injected"] == len(log_faults) and g["detected"] == len(log_faults)
    assert s["false_alerts"] == independent_false(sensor_alerts, sensor_faults, 60) > 0
    assert g["false_alerts"] == independent_false(log_alerts, log_faults, 60) > 0
    assert g["false_by_site"][CORRELATED_SITE] >= 2 and s["false_by_site"][CORRELATED_SITE] >= 1
    text = format_summary({"wall_s": 60.0, "simulated_s": HOUR, "readings_published": 1, "series": 1,
                           "readings_scored": 1, "sensor_faults": s, "log_lines_published": 1, "log_windows_scored": 1,
                           "log_incidents": g, "queries": QUERIES, "grafana": "g"})
    total = s["false_alerts"] + g["false_alerts"]
    assert f"false alerts in all: {total} of {len(sensor_alerts) + len(log_alerts)}" in text
    assert f"{CORRELATED_SITE} {g['false_by_site'][CORRELATED_SITE]}" in text


def test_the_suggested_command_works_as_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the venv's bin is not on PATH, as after `make`
    cmd = oddwatch_command()
    assert cmd != "oddwatch"
    text = format_summary({"wall_s": 1.0, "simulated_s": HOUR, "readings_published": 1, "series": 1,
                           "readings_scored": 1, "command": cmd, "queries": QUERIES, "grafana": "g",
                           "sensor_faults": {"detected": 0, "injected": 0, "mean_delay_s": None, "alerts": 0,
                                             "false_alerts": 0, "faults": []}, "still_running": {"m": "x"}})
    assert f"  {cmd} alerts --since 2h" in text and f"  {cmd} services down" in text
    proc = subprocess.run(f"{cmd} --help", shell=True, capture_output=True, text=True, env={**os.environ}, timeout=60)
    assert proc.returncode == 0 and "usage: oddwatch" in proc.stdout
