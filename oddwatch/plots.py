"""PNG plots of a sensor series, a log source's windows and an evaluated NAB series.

matplotlib with the Agg backend (no display needed); each function returns the PNG bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ALERT_COLOR = "#d62728"


def _figure(rows: int = 2, height: float = 4.5) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, 1, figsize=(10, height), sharex=True,
                             gridspec_kw={"height_ratios": [2, 1][:rows]})
    return fig, axes


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _shade_alert(axes: Sequence[Any], opened: datetime | None, closed: datetime | None, last: datetime) -> None:
    if opened is None:
        return
    for ax in axes:
        ax.axvspan(opened, closed or last, color=ALERT_COLOR, alpha=0.12, lw=0)
        ax.axvline(opened, color=ALERT_COLOR, lw=1)


def sensor_png(times: Sequence[datetime], values: Sequence[float], low: Sequence[float], high: Sequence[float],
               scores: Sequence[float], thresholds: Sequence[float], *, title: str,
               opened: datetime | None = None, closed: datetime | None = None) -> bytes:
    """Values against the expected band above, score against the threshold below, the alert shaded.

    The band is drawn as it was up to the alert's onset and, from the onset on, held at its last
    value before it (dashed): the band the series learns while a fault lasts widens around the
    fault and would hide it. Missing band values (NaN: the warm-up) leave a gap. The onset is a
    red line labelled with its time; the value axis is fitted to the values and the held band.
    """
    fig, (top, bottom) = _figure()
    t = np.asarray(times, dtype=object)
    v = np.asarray(values, dtype=float)
    lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    pre = np.array([opened is None or x < opened for x in times], dtype=bool)
    if pre.any():
        top.fill_between(t[pre], lo[pre], hi[pre], color="#1f77b4", alpha=0.15, step="post", label="expected range")
    known = np.flatnonzero(pre & np.isfinite(lo) & np.isfinite(hi))
    if opened is not None and known.size and (~pre).any():
        held_lo, held_hi = lo[known[-1]], hi[known[-1]]
        after = t[~pre]
        top.fill_between(after, held_lo, held_hi, color="#1f77b4", alpha=0.08, step="post", hatch="//",
                         label="expected range before the onset")
        top.hlines([held_lo, held_hi], after[0], after[-1], colors="#1f77b4", linestyles="--", lw=0.8)
    top.plot(times, values, color="#1f77b4", lw=1, label="value")
    shown = v[np.isfinite(v)]
    if known.size:
        shown = np.concatenate([shown, lo[known], hi[known]])
    if shown.size:
        pad = 0.08 * max(float(shown.max() - shown.min()), 1e-9)
        top.set_ylim(float(shown.min()) - pad, float(shown.max()) + pad)
    top.set_title(title, fontsize=10)
    bottom.plot(times, scores, color="#555555", lw=1, label="score")
    bottom.plot(times, thresholds, color=ALERT_COLOR, lw=1, ls="--", label="threshold")
    bottom.set_ylim(-0.02, 1.02)
    if times:
        _shade_alert((top, bottom), opened, closed, times[-1])
        if opened is not None:
            top.annotate(f"onset {opened:%H:%M:%S}Z", xy=(opened, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(3, -12), textcoords="offset points", color=ALERT_COLOR, fontsize=8)
    top.legend(loc="upper left", fontsize=8)
    bottom.legend(loc="upper left", fontsize=8)
    return _png(fig)


def log_png(times: Sequence[datetime], novelty: Sequence[float], thresholds: Sequence[float],
            lines: Sequence[float], *, title: str, opened: datetime | None = None,
            closed: datetime | None = None) -> bytes:
    """A log source's window novelty against its threshold above, lines per window below."""
    fig, (top, bottom) = _figure()
    top.plot(times, novelty, color="#555555", lw=1, marker=".", label="novelty")
    top.plot(times, thresholds, color=ALERT_COLOR, lw=1, ls="--", label="threshold")
    top.set_ylim(-0.02, 1.02)
    top.set_title(title, fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(times, lines, width=0.0005, color="#1f77b4", label="lines per window")
    bottom.legend(loc="upper left", fontsize=8)
    if times:
        _shade_alert((top, bottom), opened, closed, times[-1])
    return _png(fig)


def _naive_utc(t: Any) -> datetime:
    """A datetime or datetime64 as a naive UTC datetime (the time axis of an evaluated series)."""
    if isinstance(t, datetime):
        return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t
    return np.datetime64(t, "ms").astype(datetime)  # type: ignore[no-any-return]


def eval_series_png(run: Mapping[str, Any], windows: Sequence[tuple[Any, Any]]) -> bytes:
    """One evaluated series: values, score and threshold, labelled windows, alerts opened.

    *run* is a result of :func:`oddwatch.evaluation.series.run_file` (``timestamps``,
    ``values``, ``scores``, ``thresholds``, ``is_anomaly``); *windows* the series' labelled
    anomaly windows (start, end).
    """
    times = np.asarray(run["timestamps"]).astype("datetime64[ms]").astype(datetime)
    fig, (top, bottom) = _figure(height=5)
    top.plot(times, run["values"], color="#1f77b4", lw=0.8, label="value")
    bottom.plot(times, run["scores"], color="#555555", lw=0.8, label="score")
    bottom.plot(times, run["thresholds"], color=ALERT_COLOR, lw=1, ls="--", label="threshold")
    bottom.set_ylim(-0.02, 1.02)
    for i, (start, end) in enumerate(windows):
        for ax in (top, bottom):
            ax.axvspan(_naive_utc(start), _naive_utc(end),
                       color="#2ca02c", alpha=0.15, lw=0, label="labelled window" if i == 0 and ax is top else None)
    opened = times[np.asarray(run["is_anomaly"]) == 1]
    for i, t in enumerate(opened):
        for ax in (top, bottom):
            ax.axvline(t, color=ALERT_COLOR, lw=1, label="alert opened" if i == 0 and ax is top else None)
    top.set_title(f"{run['key']}: {len(opened)} alerts, {len(windows)} labelled windows", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    bottom.legend(loc="upper left", fontsize=8)
    return _png(fig)


def write_eval_series_plots(runs: Sequence[Mapping[str, Any]], windows: Mapping[str, Sequence[tuple[Any, Any]]],
                            out_dir: Path) -> list[Path]:
    """``OUT_DIR/<category>__<file>.png`` for each run; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for run in runs:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "__", str(run["key"]).removesuffix(".csv")) + ".png"
        path = out_dir / name
        path.write_bytes(eval_series_png(run, windows.get(str(run["key"]), [])))
        written.append(path)
    return written
