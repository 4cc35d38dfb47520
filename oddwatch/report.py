"""``oddwatch report``: one self-contained HTML page of a period's alerts, a plot for each.

The PNG plots are inlined as base64 ``data:`` URIs, so the file can be mailed or attached to a
ticket as it is.
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime, timedelta

from oddwatch.review import Query, list_alerts, story

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1000px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: left; border-bottom: 1px solid #ddd; }
.critical { color: #b00; } .warning { color: #a60; } pre { white-space: pre-wrap; }
img { max-width: 100%; }
"""


def build_report(query: Query, *, since: timedelta, site: str | None = None, now: datetime | None = None,
                 max_alerts: int = 200) -> str:
    """The HTML page of the alerts opened in the last *since* (newest first, at most *max_alerts*)."""
    now = now or datetime.now(UTC)
    alerts = list_alerts(query, since=since, site=site, now=now)
    esc = html.escape
    period = f"{now - since:%Y-%m-%d %H:%M}Z to {now:%Y-%m-%d %H:%M}Z"
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        f"<title>oddwatch report {esc(period)}</title><style>{STYLE}</style></head><body>",
        f"<h1>oddwatch alerts, {esc(period)}{esc(f', site {site}') if site else ''}</h1>",
        f"<p>{len(alerts)} alert(s), {sum(1 for a in alerts if a.state == 'open')} still open.</p>",
    ]
    if alerts:
        parts.append("<table><tr><th>opened</th><th>severity</th><th>state</th><th>alert</th></tr>")
        for i, a in enumerate(alerts[:max_alerts]):
            parts.append(f"<tr><td>{a.opened_at:%Y-%m-%d %H:%M:%S}Z</td><td class='{esc(a.severity)}'>"
                         f"{esc(a.severity)}</td><td>{esc(a.state)}</td><td><a href='#a{i}'>{esc(a.title)}</a></td></tr>")
        parts.append("</table>")
    for i, a in enumerate(alerts[:max_alerts]):
        s = story(query, a, now)
        parts.append(f"<h2 id='a{i}'>{esc(a.title)}</h2>")
        parts.append(f"<p><code>{esc(a.alert_id)}</code> &middot; {esc(a.source)} &middot; "
                     f"<span class='{esc(a.severity)}'>{esc(a.severity)}</span> &middot; {esc(a.state)}</p>")
        parts.append("<pre>" + esc("\n".join(s.lines[1:])) + "</pre>")
        if s.png:
            data = base64.b64encode(s.png).decode("ascii")
            parts.append(f"<img alt='{esc(a.alert_id)}' src='data:image/png;base64,{data}'>")
    if len(alerts) > max_alerts:
        parts.append(f"<p>{len(alerts) - max_alerts} older alert(s) not shown: narrow --since or --site.</p>")
    parts.append(f"<p><small>generated {now:%Y-%m-%d %H:%M:%S}Z by oddwatch report</small></p></body></html>")
    return "\n".join(parts)
