"""What the log flow writes and publishes: window points and explained alerts.

Pure functions of the log detector's results (:class:`oddwatch.core.log_pipeline.WindowResult`) and
of ended silences, so they are tested without Bytewax.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from oddwatch.core.alerts import Transition
from oddwatch.core.log_pipeline import WindowResult
from oddwatch.records import UTC, Alert, Point


@dataclass(frozen=True, slots=True)
class Silence:
    """A source sent nothing from ``start`` to ``end`` (event time, epoch seconds)."""

    source: str
    start: float
    end: float
    usual_gap: float


def silence_alerts(s: Silence, factor: float) -> tuple[Alert, ...]:
    """An explained alert for a silent source: opened when its next line was due, closed when
    it sent again (both at once: a silence is only known for sure when it ends)."""
    site, host, app = split_source(s.source)
    subject = f"{host}/{app}"
    due = datetime.fromtimestamp(min(s.start + s.usual_gap, s.end), UTC)
    end = datetime.fromtimestamp(s.end, UTC)
    gap = s.end - s.start
    score = gap / (gap + factor * max(s.usual_gap, 1e-9))
    title = f"{subject} on {site}: no log lines for {gap:.0f} s"
    text = (f"{s.source} sent no log lines from {due:%Y-%m-%d %H:%M:%S}Z to {end:%H:%M:%S}Z ({gap:.0f} s); "
            f"it usually sends one every {s.usual_gap:.1f} s. Check that the service and its log shipping run.")
    common = {"alert_id": f"{s.source}:{int(due.timestamp())}", "source": "log", "severity": "warning",
              "site": site, "subject": subject, "threshold": 0.5, "opened_at": due,
              "details": {"silence_s": gap, "usual_gap_s": s.usual_gap}}
    return (
        Alert(kind="open", title=title, text=text, score=score, ts=end, **common),  # type: ignore[arg-type]
        Alert(kind="close", title=f"{subject} on {site}: logs again", text=text, score=score, ts=end,
              **common),  # type: ignore[arg-type]
    )


def severity_of(score: float) -> str:
    """``critical`` for a novelty of 0.9 or more, else ``warning``."""
    return "critical" if score >= 0.9 else "warning"


def split_source(source: str) -> tuple[str, str, str]:
    site, host, app = (source.split("/", 2) + ["", ""])[:3]
    return site, host, app


def log_alert(r: WindowResult, t: Transition, severity: str) -> Alert:
    """An explained alert for a novel log window (open) or the return to normal (close).

    *severity* is the one the alert opened with, for the close too (it is the ``alert`` rows'
    severity tag); the severity of the peak novelty goes in ``details["peak_severity"]``.
    """
    site, host, app = split_source(r.source)
    start = datetime.fromtimestamp(r.start, UTC)
    end = datetime.fromtimestamp(r.end, UTC)
    subject = f"{host}/{app}"
    if t.kind == "open":
        ex = r.explanation
        rare = list(ex.get("rare_templates", []))
        near = ex.get("nearest_normal") or {}
        parts = [
            f"Log window {r.window_id} of {r.source} ({start:%Y-%m-%d %H:%M:%S}Z to {end:%H:%M:%S}Z, "
            f"{r.lines} lines, {r.templates} templates) has novelty {r.score:.3f} >= threshold {r.threshold:.3f}."
        ]
        burst = ex.get("burst")
        if burst:
            parts.append(f"Burst: '{burst['template']}' {burst['count']} times in the window, usually "
                         f"{burst['expected']:.2f} (e.g. '{burst['example']}').")
        if rare:
            parts.append("New or rare templates: " + "; ".join(
                f"'{x['template']}' (seen in {x['windows_seen']} windows; e.g. '{x['example']}')" for x in rare[:3]))
        if near:
            parts.append(f"Nearest normal window {near.get('window_id')}: " + " | ".join(near.get("examples", [])[:3]))
        title = (f"{subject} on {site}: burst of a known message" if burst and not rare
                 else f"{subject} on {site}: unusual log window ({len(rare)} new or rare templates)")
        text = " ".join(parts)
    else:
        title = f"{subject} on {site}: logs back to normal"
        text = (f"Log alert on {r.source} open since {t.opened_at.isoformat()} closed after {t.readings} windows "
                f"(peak novelty {t.peak_score:.3f}, threshold {t.threshold:.3f}).")
    return Alert(
        alert_id=f"{r.source}:{int(t.opened_at.timestamp())}", source="log", kind=t.kind,
        severity=severity, site=site, subject=subject,
        title=title, text=text, score=r.score, threshold=r.threshold, opened_at=t.opened_at, ts=end,
        details={"window_id": r.window_id, "start": start, "end": end, "lines": r.lines,
                 "peak_severity": severity_of(t.peak_score),
                 **{k: v for k, v in r.explanation.items() if k in ("rare_templates", "nearest_normal")}},
    )


def window_point(r: WindowResult, stamp: datetime | None = None) -> Point:
    """The ``log_window`` point of one scored window, at *stamp* (default: its end)."""
    site, host, app = split_source(r.source)
    return Point(
        "log_window", {"site": site, "host": host, "app": app},
        {"novelty": float(r.score), "threshold": float(r.threshold), "lines": int(r.lines),
         "templates": int(r.templates), "is_anomaly": bool(r.is_anomaly), "window_id": r.window_id,
         "start_ms": float(r.start * 1000.0), "end_ms": float(r.end * 1000.0), **novel_template_fields(r)},
        stamp or datetime.fromtimestamp(r.end, UTC),
    )


def novel_template_fields(r: WindowResult) -> dict[str, float | int | bool | str]:
    """``novel_template`` and ``example`` of an anomalous window with a new or rare template."""
    burst = r.explanation.get("burst") if r.is_anomaly else None
    if burst:
        return {"novel_template": str(burst["template"])[:256], "example": str(burst["example"])[:256]}
    rare = r.explanation.get("rare_templates", []) if r.is_anomaly else []
    if not rare:
        return {}
    first = min(rare, key=lambda x: x["windows_seen"])
    return {"novel_template": str(first["template"])[:256], "example": str(first["example"])[:256]}
