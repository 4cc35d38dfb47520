"""``oddwatch status``: the broker, InfluxDB and each flow, as a short table or as JSON.

:func:`collect` gathers everything (a dependency that does not answer is a row saying so, never
an exception); :func:`format_table` prints it for a terminal; :func:`exit_code` is 0 when the
broker and InfluxDB both answer, 1 otherwise. Per flow it shows the running totals of its
``/metrics`` endpoint since the flow started. The end-to-end lag histogram is left out: it
measures from each message's own timestamp, so replayed or simulated data (timestamps in the
past or sped up) makes it meaningless; Grafana's pipeline dashboard graphs it per interval.
"""

from __future__ import annotations

import socket
from typing import Any

from oddwatch.settings import Settings

FLOWS = ("sensors", "logs", "incidents")
# (metric name without prefix, column title) shown per flow; counters summed over their labels
COLUMNS = (("messages_in", "messages in"), ("parse_errors", "bad input"), ("readings_scored", "readings"),
           ("windows_scored", "log windows"), ("alerts", "alert rows"), ("influx_points_written", "points written"),
           ("influx_write_errors", "write errors"), ("spool_bytes", "spool bytes"))


def _tcp(host: str, port: int, timeout: float = 2.0) -> str | None:
    """None when *host:port* accepts a TCP connection, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def flow_metrics(url: str, timeout: float = 2.0) -> dict[str, float] | None:
    """The ``oddwatch_*`` samples of a flow's endpoint (labels joined into the name), or None
    when nothing answers. Histogram series and ``_created`` timestamps are left out."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = requests.get(url, timeout=timeout).text
    except requests.RequestException:
        return None
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("oddwatch_") or family.type == "histogram":
            continue
        for sample in family.samples:
            name = sample.name.removeprefix("oddwatch_")
            if name.endswith("_created"):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{name}{{{labels}}}" if labels else name] = sample.value
    return values


def collect(settings: Settings) -> dict[str, Any]:
    """The dependencies, the flows, precision in operation and the local services, as data."""
    from oddwatch.connectors.influx import InfluxQuery

    m, i = settings.mqtt, settings.influx
    problem = _tcp(m.host, m.port)
    deps: dict[str, Any] = {"mqtt": {"address": f"{m.host}:{m.port}", "up": problem is None, "problem": problem}}
    query = InfluxQuery(i)
    try:
        up = query.ping()
    finally:
        query.close()
    deps["influx"] = {"address": i.url, "up": up,
                      "problem": None if up else "does not answer /ping"}
    host = settings.metrics.host if settings.metrics.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    flows: dict[str, Any] = {}
    for flow in FLOWS:
        url = f"http://{host}:{settings.metrics.port_of(flow)}/metrics"
        flows[flow] = {"url": url, "running": False, "metrics": {}}
        values = flow_metrics(url)
        if values is not None:
            flows[flow] = {"url": url, "running": True, "metrics": values}
    report: dict[str, Any] = {"dependencies": deps, "flows": flows}
    if up:
        try:
            from oddwatch.evaluation.quality import quality_status

            report["quality"] = quality_status(settings)
        except Exception as exc:  # status must always print something useful
            report["quality"] = f"unknown: {exc}"
    try:
        from oddwatch.services import from_settings

        report["services"] = from_settings(settings).status()
    except Exception as exc:  # as above
        report["services"] = f"unknown: {exc}"
    return report


def total(metrics: dict[str, float], name: str) -> float | None:
    """The sum of a metric over its labels, None when the flow does not export it.

    >>> total({"messages_in_total{stream=sensor}": 3.0, "messages_in_total{stream=feedback}": 1.0}, "messages_in")
    4.0
    >>> total({"spool_bytes": 0.0}, "spool_bytes"), total({}, "alerts") is None
    (0.0, True)
    """
    found = [v for k, v in metrics.items() if k.split("{", 1)[0] in (name, name + "_total")]
    return sum(found) if found else None


def exit_code(report: dict[str, Any]) -> int:
    """0 when the broker and InfluxDB answer, 1 when either does not."""
    return 0 if all(d["up"] for d in report["dependencies"].values()) else 1


def format_table(report: dict[str, Any]) -> str:
    """A few lines for a terminal: each dependency, then one row per flow."""
    lines = []
    for name, d in report["dependencies"].items():
        label = "MQTT broker" if name == "mqtt" else "InfluxDB"
        state = "up" if d["up"] else f"DOWN ({d['problem']})"
        lines.append(f"{label:<12} {d['address']:<28} {state}")
    if not all(d["up"] for d in report["dependencies"].values()):
        lines.append("  start the local ones with `oddwatch services up`, or fix [mqtt] host/port and [influx] url "
                     "in the config (`oddwatch config check`)")
    lines.append("")
    head = ["flow", "state"] + [title for _, title in COLUMNS]
    rows = []
    for flow, f in report["flows"].items():
        cells = [flow, "running" if f["running"] else "not running"]
        for metric, _ in COLUMNS:
            value = total(f["metrics"], metric) if f["running"] else None
            cells.append("-" if value is None else f"{value:,.0f}")
        rows.append(cells)
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
    for r in [head, *rows]:
        lines.append("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths, strict=True))))
    lines.append("(totals since each flow started; not running: start it with `oddwatch up` or `oddwatch run FLOW`)")
    quality = report.get("quality")
    if isinstance(quality, dict):
        below = quality.get("below_floor") or []
        judged = len(quality.get("sources") or {})
        lines.append(f"precision in operation: {judged} source(s) judged by operators in {quality['weeks']} weeks, "
                     f"{len(below)} below the floor {quality['floor']}"
                     + "".join(f"\n  {b['source']}: precision {b['precision']} over {b['verdicts']} verdicts"
                               for b in below))
    elif quality:
        lines.append(f"precision in operation: {quality}")
    lines.append("(`oddwatch status --json` for every figure)")
    return "\n".join(lines)
