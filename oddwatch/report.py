"""``oddwatch report``: one self-contained HTML page of a period's incidents and alerts.

An incident (several alerts of one asset joined by the incidents flow) is shown with its story
and its alerts under it; an alert is shown once, under its incident or, when its incident holds
only that alert or none, on its own. Each alert has its explanation and a plot. Severities are
coloured; an alert that opened as a warning and peaked critical says so. The PNG plots are
inlined as base64 ``data:`` URIs, so the file can be mailed or attached to a ticket as it is.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from oddwatch.review import AlertRow, Query, incident_story, list_alerts, story

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1000px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-top: 2px solid #ccc; padding-top: .5em; }
h3 { font-size: 1em; margin-top: 1.5em; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: left; border-bottom: 1px solid #ddd; }
.sev { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-weight: 600; font-size: .9em; }
.critical { background: #c62828; } .warning { background: #ef8f00; } .info { background: #1565c0; }
.summary { background: #6d4c41; } .incident { margin-left: 1.5em; } pre { white-space: pre-wrap; }
img { max-width: 100%; } @media print { h2 { page-break-before: auto; } img { page-break-inside: avoid; } }
"""


@dataclass
class Entry:
    """One top-level item of the report: an incident with its alerts, or an alert on its own."""

    head: AlertRow
    alerts: list[AlertRow] = field(default_factory=list)

    @property
    def is_incident(self) -> bool:
        return self.head.source == "incident"

    @property
    def severity(self) -> str:
        rows = [self.head, *self.alerts]
        return "critical" if any(r.worst_severity == "critical" for r in rows) else self.head.worst_severity


def group(alerts: list[AlertRow]) -> list[Entry]:
    """Incidents with the alerts they hold, and the other alerts on their own (newest first).

    An incident that holds a single alert (listed or not) adds nothing to it: the alert stands
    alone. An incident whose alerts fall outside the period still stands, with those listed.
    """
    by_id = {a.alert_id: a for a in alerts if a.source != "incident"}
    placed: set[str] = set()
    entries = []
    for inc in (a for a in alerts if a.source == "incident"):
        if len(inc.alert_ids) <= 1:
            continue
        members = [by_id[i] for i in inc.alert_ids if i in by_id and i not in placed]
        placed.update(a.alert_id for a in members)
        entries.append(Entry(inc, sorted(members, key=lambda a: a.opened_at)))
    entries += [Entry(a) for a in by_id.values() if a.alert_id not in placed]
    entries.sort(key=lambda e: e.head.opened_at, reverse=True)
    return entries


def _severity(a: AlertRow) -> str:
    esc = html.escape
    worst = a.worst_severity or "unknown"
    note = f" (opened as {esc(a.severity)})" if a.severity and worst != a.severity else ""
    return f"<span class='sev {esc(worst)}'>{esc(worst)}</span>{note}"


def _state(a: AlertRow) -> str:
    return f"closed {a.closed_at:%H:%M:%S}Z" if a.closed_at else a.state or "open"


def _alert_html(query: Query, a: AlertRow, now: datetime, anchor: str, level: str) -> list[str]:
    esc = html.escape
    s = story(query, a, now)
    parts = [f"<{level} id='{anchor}'>{esc(a.title)}</{level}>",
             f"<p>{_severity(a)} &middot; {esc(a.source)} &middot; opened {a.opened_at:%Y-%m-%d %H:%M:%S}Z &middot; "
             f"{esc(_state(a))} &middot; <code>{esc(a.alert_id)}</code></p>",
             "<pre>" + esc("\n".join(s.lines[1:])) + "</pre>"]
    if s.png:
        data = base64.b64encode(s.png).decode("ascii")
        parts.append(f"<img alt='{esc(a.alert_id)}' src='data:image/png;base64,{data}'>")
    return parts


def build_report(query: Query, *, since: timedelta, site: str | None = None, now: datetime | None = None,
                 max_alerts: int = 200) -> str:
    """The HTML page of the incidents and alerts opened in the last *since* (newest first, at
    most *max_alerts* top-level entries)."""
    now = now or datetime.now(UTC)
    entries = group(list_alerts(query, since=since, site=site, now=now))
    esc = html.escape
    period = f"{now - since:%Y-%m-%d %H:%M}Z to {now:%Y-%m-%d %H:%M}Z"
    n_alerts = sum(len(e.alerts) if e.is_incident else 1 for e in entries)
    n_incidents = sum(e.is_incident for e in entries)
    still_open = sum(1 for e in entries for a in (e.alerts if e.is_incident else [e.head]) if a.state == "open")
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        f"<title>oddwatch report {esc(period)}</title><style>{STYLE}</style></head><body>",
        f"<h1>oddwatch alerts, {esc(period)}{esc(f', site {site}') if site else ''}</h1>",
        f"<p>{n_alerts} alert(s), {still_open} still open; {n_incidents} incident(s) joining several alerts.</p>",
    ]
    shown = entries[:max_alerts]
    if shown:
        parts.append("<table><tr><th>opened</th><th>severity</th><th>state</th><th>what</th><th>alerts</th></tr>")
        for i, e in enumerate(shown):
            count = len(e.alerts) if e.is_incident else 1
            parts.append(f"<tr><td>{e.head.opened_at:%Y-%m-%d %H:%M:%S}Z</td>"
                         f"<td><span class='sev {esc(e.severity)}'>{esc(e.severity)}</span></td>"
                         f"<td>{esc(_state(e.head))}</td><td><a href='#e{i}'>{esc(e.head.title)}</a></td>"
                         f"<td>{count}</td></tr>")
        parts.append("</table>")
    for i, e in enumerate(shown):
        if not e.is_incident:
            parts += _alert_html(query, e.head, now, f"e{i}", "h2")
            continue
        inc = e.head
        parts.append(f"<h2 id='e{i}'>Incident: {esc(inc.title)}</h2>")
        parts.append(f"<p><span class='sev {esc(e.severity)}'>{esc(e.severity)}</span> &middot; "
                     f"{esc(inc.site)}/{esc(inc.subject)} &middot; opened {inc.opened_at:%Y-%m-%d %H:%M:%S}Z &middot; "
                     f"{esc(_state(inc))} &middot; <code>{esc(inc.alert_id)}</code></p>")
        parts.append("<pre>" + esc("\n".join(incident_story(query, inc).lines[1:])) + "</pre>")
        missing = len(inc.alert_ids) - len(e.alerts)
        parts.append("<div class='incident'>")
        for j, a in enumerate(e.alerts):
            parts += _alert_html(query, a, now, f"e{i}a{j}", "h3")
        if missing > 0:
            parts.append(f"<p>{missing} of its alerts opened before the period: widen --since to see them.</p>")
        parts.append("</div>")
    if len(entries) > max_alerts:
        parts.append(f"<p>{len(entries) - max_alerts} older incident(s) or alert(s) not shown: narrow --since or --site.</p>")
    parts.append(f"<p><small>generated {now:%Y-%m-%d %H:%M:%S}Z by oddwatch report</small></p></body></html>")
    return "\n".join(parts)
