"""What the benchmark scripts share: the machine, CPU and memory readings, result files.

A result file (``out/bench-<name>.json``, read by ``scripts/make_benchmarks.py``) holds
``{"name", "machine", "command", "created", "results": {section: {metric: value}}}``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oddwatch.records import utcnow


def machine() -> dict[str, Any]:
    """Platform, Python, CPU count and model, and the 1-minute load average now."""
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    except (OSError, subprocess.SubprocessError):
        pass
    if not model and Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "cpu_model": model or "unknown", "load_avg_1m": round(os.getloadavg()[0], 2)}


def rss_mb() -> float:
    """Peak resident memory of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of process *pid* so far (this process when None; 0 when unknown)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank *q* quantile (0..1) of *values*; NaN when empty.

    >>> percentile([5, 1, 4, 2, 3], 0.5), percentile(range(1, 101), 0.99)
    (3, 99)
    """
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def split_headline(results: Mapping[str, Mapping[str, Any]],
                   headline: Mapping[str, Sequence[str]]) -> dict[str, dict[str, Any]]:
    """Each section's *headline* metrics first, the rest under its ``details`` key.

    >>> split_headline({"a": {"x": 1, "y": 2}}, {"a": ("y",)})
    {'a': {'y': 2, 'details': {'x': 1}}}
    """
    out: dict[str, dict[str, Any]] = {}
    for section, values in results.items():
        keep = headline.get(section, tuple(values))
        head = {k: values[k] for k in keep if k in values}
        rest = {k: v for k, v in values.items() if k not in head}
        out[section] = {**head, "details": rest} if rest else head
    return out


def table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A markdown table ``benchmark | metric | value`` of nested results."""
    lines = ["| benchmark | metric | value |", "|---|---|---|"]
    for section, values in results.items():
        for key, value in values.items():
            if isinstance(value, Mapping):
                continue
            shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
            lines.append(f"| {section} | {key} | {shown} |")
    return "\n".join(lines)


def write_results(out: Path, name: str, command: str, results: Mapping[str, Mapping[str, Any]], *,
                  machine_info: Mapping[str, Any] | None = None,
                  headline: Mapping[str, Sequence[str]] | None = None, show: bool = True) -> Path:
    """Write the result file ``scripts/make_benchmarks.py`` reads (and print its table)."""
    info = dict(machine_info) if machine_info is not None else machine()
    info["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    body = split_headline(results, headline) if headline is not None else dict(results)
    data = {"name": name, "machine": info, "command": command, "created": utcnow().isoformat(), "results": body}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    if show:
        print(table(body))
        print(f"\nCommand: `{command}`; wrote {out}")
    return out
