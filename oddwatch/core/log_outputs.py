"""What the log side writes and publishes: window points and explained alerts.

Pure functions of the log detector's results (:class:`oddwatch.core.log_pipeline.WindowResult`) and
of ended silences, so they are tested without Bytewax. An alert says what an operator can act
on: a burst names the template, its count and its usual count; a novel window names its new or
rare templates with an example line, or, when none is rare, the templates whose counts differ
most from the nearest normal window; a silence says since when, for how long, against the
usual gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from oddwatch.core.alerts import Transition
from oddwatch.core.log_pipeline import WindowResult
from oddwatch.records import UTC, Alert, Severity, alert_id, severity

if TYPE_CHECKING:
    from oddwatch.core.feedback import Feedback

TEMPLATES_NAMED = 3  # templates an alert text names at most


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
    since = datetime.fromtimestamp(s.start, UTC)
    title = f"{subject} on {site}: no log lines for {gap:.0f} s"
    text = (f"{s.source} was silent from its line at {since:%Y-%m-%d %H:%M:%S}Z until {end:%Y-%m-%d %H:%M:%S}Z: "
            f"{gap:.0f} s without a log line, {gap / max(s.usual_gap, 1e-9):.0f} times its usual gap; it usually "
            f"sends one every {s.usual_gap:.1f} s. Check that the service and its log shipping run.")
    common = {"alert_id": alert_id(s.source, due), "source": "log", "severity": "warning",
              "site": site, "subject": subject, "threshold": 0.5, "opened_at": due,
              "details": {"silence_s": gap, "usual_gap_s": s.usual_gap}}
    return (
        Alert(kind="open", title=title, text=text, score=score, ts=end, **common),  # type: ignore[arg-type]
        Alert(kind="close", title=f"{subject} on {site}: logs again", text=text, score=score, ts=end,
              **common),  # type: ignore[arg-type]
    )


def severity_of(score: float) -> Severity:
    """``critical`` for a novelty of 0.9 or more, else ``warning`` (:func:`oddwatch.records.severity`)."""
    return severity(score)


def split_source(source: str) -> tuple[str, str, str]:
    site, host, app = (source.split("/", 2) + ["", ""])[:3]
    return site, host, app


def log_alert(r: WindowResult, t: Transition, severity: Severity) -> Alert:
    """An explained alert for a novel log window (open) or the return to normal (close).

    *severity* is the one the alert opened with, for the close too (it is the ``alert`` rows'
    severity tag); the severity of the peak novelty goes in ``details["peak_severity"]``.
    """
    site, host, app = split_source(r.source)
    start = datetime.fromtimestamp(r.start, UTC)
    end = datetime.fromtimestamp(r.end, UTC)
    subject = f"{host}/{app}"
    if t.kind == "open":
        title, text = _open_text(r, start, end)
        title = f"{subject} on {site}: {title}"
    else:
        title = f"{subject} on {site}: logs back to normal"
        text = (f"Log alert on {r.source} open since {t.opened_at.isoformat()} closed after {t.readings} windows "
                f"(peak novelty {t.peak_score:.3f}, threshold {t.threshold:.3f}).")
    return Alert(
        alert_id=alert_id(r.source, t.opened_at), source="log", kind=t.kind,
        severity=severity, site=site, subject=subject,
        title=title, text=text, score=t.score if t.kind == "open" else r.score, threshold=r.threshold, opened_at=t.opened_at, ts=end,
        details={"window_id": r.window_id, "start": start, "end": end, "lines": r.lines, "peak_severity": severity_of(t.peak_score),
                 **{k: v for k, v in r.explanation.items() if k in ("rare_templates", "nearest_normal", "burst",
                                                                     "count_changes", "severity")}},
    )


def _q(text: object, limit: int = 200) -> str:
    t = str(text)
    return "'" + (t if len(t) <= limit else t[:limit] + "...") + "'"


def _seen(windows: int) -> str:
    return "never seen before" if not windows else f"seen in {windows} earlier window{'s' if windows > 1 else ''}"


def _open_text(r: WindowResult, start: datetime, end: datetime) -> tuple[str, str]:
    """Title (without the subject) and text of an open alert, from the window's explanation."""
    ex = r.explanation
    span = f"{start:%Y-%m-%d %H:%M:%S}Z to {end:%H:%M:%S}Z"
    decided = f"(novelty {r.score:.3f}, threshold {r.threshold:.3f})"
    burst: dict[str, Any] | None = ex.get("burst")
    if burst:
        text = (f"Burst on {r.source}: {_q(burst['template'])} was logged {burst['count']} times from {span}, "
                f"usually {burst['expected']:.1f} times per window of this length. "
                f"Example: {_q(burst['example'])}. The message is known; its rate is not.")
        return f"burst of {_q(burst['template'], 60)} ({burst['count']} times, usually {burst['expected']:.1f})", text
    sev: dict[str, Any] | None = ex.get("severity")
    if sev:
        text = (f"{r.source} logged {_q(sev['template'])} at level {sev['level']} {sev['count']} time"
                f"{'s' if sev['count'] != 1 else ''} from {span} ({_seen(sev['windows_seen'])} of its fleet's windows). "
                f"Example: {_q(sev['example'])}.")
        return f"{sev['level']} message: {_q(sev['template'], 60)}", text
    near = ex.get("nearest_normal") or {}
    near_txt = (f" Nearest normal window {near.get('window_id')}: " + " | ".join(near.get("examples", [])[:3]) + "."
                if near else "")
    rare = sorted(ex.get("rare_templates", []), key=lambda x: x["windows_seen"])
    head = f"Log window {r.window_id} of {r.source} ({span}, {r.lines} lines, {r.templates} templates)"
    if rare:
        named = "; ".join(
            f"{_q(x['template'])} ({_seen(x['windows_seen'])}; e.g. {_q(x['example'])})" for x in rare[:TEMPLATES_NAMED])
        new = sum(1 for x in rare if not x["windows_seen"])
        what = (f"{len(rare)} new log message{'s' if len(rare) > 1 else ''}" if new == len(rare)
                else f"{len(rare)} new or rare log message{'s' if len(rare) > 1 else ''}")
        text = f"{head} has {what}: {named}.{near_txt} {decided}"
        return f"{what}: {_q(rare[0]['template'], 60)}", text
    changes = ex.get("count_changes") or []
    if changes:
        named = "; ".join(f"{_q(c['template'])} {c['count']} times (usually {c['usual']})"
                          + (f", e.g. {_q(c['example'])}" if c.get("example") else "") for c in changes)
        text = (f"{head} has no new message but an unusual mix. The counts least likely given their usual "
                f"variability: {named}. {decided}")
        top = changes[0]
        return f"unusual mix of log messages: {_q(top['template'], 60)} {top['count']} times, usually {top['usual']}", text
    text = f"{head} has no new message, but its mix of messages is far from every normal window.{near_txt} {decided}"
    return "unusual mix of log messages", text


def feedback_close(source: str, fb: Feedback, t: Transition, severity: Severity) -> Alert:
    """The quiet close of a log alert an operator marked a false positive (InfluxDB only)."""
    site, host, app = split_source(source)
    subject = f"{host}/{app}"
    who = f" by {fb.user}" if fb.user else ""
    return Alert(
        alert_id=fb.alert_id, source="log", kind="close", severity=severity, site=site, subject=subject,
        title=f"{subject} on {site}: closed as a false positive",
        text=(f"Log alert on {source} open since {t.opened_at.isoformat()} marked a false positive{who}"
              f"{': ' + fb.comment if fb.comment else ''}; its windows are learnt as normal "
              f"(peak novelty {t.peak_score:.3f})."),
        score=t.peak_score, threshold=t.threshold, opened_at=t.opened_at, ts=t.ts,
        details={"closed_by": "feedback", "user": fb.user, "open_severity": severity, "peak_score": t.peak_score},
    )


