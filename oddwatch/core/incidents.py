"""Incidents: the alerts of one asset that belong together, told as one story.

One :class:`IncidentState` per incident key (``site/asset``, or ``site/all`` when grouped by
site) turns that key's alert transitions into incident transitions (:class:`Incident`):

- an alert that opens while the asset's incident is open, or at most ``join_s`` seconds after
  it closed (or before it opened: the flows deliver alerts out of event-time order), joins
  it; a closed incident that an alert joins opens again under the same id;
- any other alert opens a new incident (``incident_id`` = ``site/asset:epoch``);
- the incident closes when every alert in it has closed (a close from the flow, or operator
  feedback marking the alert a false positive, since that close is never published);
- an open incident with no alert opening or closing for ``stale_s`` seconds is closed as
  stale when the next alert of the asset arrives (an alert whose close never came must not
  hold every later alert in one incident); that alert opens a new incident.

The story (``text``) lists what happened in event-time order: which sensor went where, which
log templates appeared, what closed each alert and the incident. It keeps the first and latest
``max_story`` lines. The state is small, holds no I/O and pickles for Bytewax snapshots.

>>> from datetime import datetime, timedelta
>>> from oddwatch.records import UTC, Alert
>>> t0 = datetime(2026, 1, 1, 8, tzinfo=UTC)
>>> def alert(key, kind, minute, title, source="sensor"):
...     site, subject, name = key.split("/")
...     opened = t0 + timedelta(minutes=minute if kind == "open" else 0)
...     return Alert(f"{key}:{int(opened.timestamp())}", source, kind, "warning", site, subject,
...                  title, "", 0.9, 0.5, opened, t0 + timedelta(minutes=minute), {})
>>> st = IncidentState("north", "pump-1", join_s=600)
>>> [i.kind for i in st.step(alert("north/pump-1/temperature", "open", 0, "temperature high"))]
['open']
>>> inc = st.step(alert("north/pump-1/plc", "open", 0, "unusual log window", "log"))[0]
>>> inc.kind, inc.alerts, inc.sources
('update', 2, ('north/pump-1/plc', 'north/pump-1/temperature'))
>>> st.step(alert("north/pump-1/temperature", "close", 5, "back to normal"))[0].state
'open'
>>> done = st.step(alert("north/pump-1/plc", "close", 7, "logs back to normal", "log"))[0]
>>> done.kind, done.closed_at.minute
('close', 7)
>>> print(done.text.splitlines()[-1])
08:07:00Z incident closed: all 2 alerts back to normal after 420 s
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from oddwatch.core.budget import AlertBudget
from oddwatch.records import Alert, Severity

SEVERITY_RANK = {"warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident transition: ``kind`` open, update or close."""

    incident_id: str
    kind: str
    site: str
    asset: str
    severity: Severity  # severity at opening (the InfluxDB tag: the row is rewritten in place)
    peak_severity: Severity
    title: str
    text: str
    alerts: int
    sources: tuple[str, ...]
    alert_ids: tuple[str, ...]
    opened_at: datetime
    ts: datetime
    closed_at: datetime | None = None

    @property
    def state(self) -> str:
        return "closed" if self.kind == "close" else "open"


@dataclass(slots=True)
class _Member:
    source: str
    stream: str
    opened_at: datetime
    severity: Severity
    closed_at: datetime | None = None


@dataclass(slots=True)
class _Open:
    """The incident being built (members, story) while it is open or may still be joined."""

    incident_id: str
    opened_at: datetime
    severity: Severity
    members: dict[str, _Member] = field(default_factory=dict)
    story: list[tuple[datetime, int, str]] = field(default_factory=list)
    omitted: int = 0
    closed_at: datetime | None = None
    seq: int = 0
    last_activity: datetime | None = None  # latest alert transition (event time)

    def touch(self, ts: datetime) -> None:
        self.last_activity = ts if self.last_activity is None else max(self.last_activity, ts)

    @property
    def is_open(self) -> bool:
        return any(m.closed_at is None for m in self.members.values())


def source_of_alert(alert: Alert) -> str:
    """The source key of an alert: ``details["key"]`` or the alert id before ``:epoch``.

    >>> from datetime import datetime
    >>> from oddwatch.records import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> source_of_alert(Alert("s/web1/nginx:1767225600", "log", "open", "warning", "s", "web1/nginx",
    ...                       "", "", 0.9, 0.5, t, t))
    's/web1/nginx'
    """
    key = alert.details.get("key")
    return str(key) if isinstance(key, str) and key.count("/") == 2 else alert.alert_id.rpartition(":")[0]


def story_line(alert: Alert, source: str) -> str:
    """One line of an incident's story for an alert transition (without the time).

    >>> from datetime import datetime
    >>> from oddwatch.records import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> a = Alert("n/p/plc:1", "log", "open", "warning", "n", "p/plc", "p/plc on n: unusual log window", "",
    ...           0.9, 0.5, t, t, {"rare_templates": [{"template": "overcurrent trip <*>", "example": "x"}]})
    >>> story_line(a, "n/p/plc")
    "log n/p/plc: p/plc on n: unusual log window; new templates: 'overcurrent trip <*>' (warning, score 0.900 >= 0.500)"
    """
    if alert.kind == "close":
        if alert.details.get("closed_by") == "feedback":
            return f"{alert.source} {source}: closed as a false positive by operator feedback"
        return f"{alert.source} {source}: {alert.title} after {(alert.ts - alert.opened_at).total_seconds():.0f} s"
    line = f"{alert.source} {source}: {alert.title}"
    low, high = alert.details.get("expected_low"), alert.details.get("expected_high")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        line += f" (expected {low:.4g} to {high:.4g})"
    rare = alert.details.get("rare_templates")
    if isinstance(rare, list) and rare:
        names = [f"'{r.get('template', '')}'" for r in rare[:3] if isinstance(r, dict)]
        line += "; new templates: " + ", ".join(names)
    return line + f" ({alert.severity}, score {alert.score:.3f} >= {alert.threshold:.3f})"


class IncidentState:
    """The incident decision object of one incident key (pure, picklable).

    Parameters
    ----------
    site, asset
        The incident key's parts (``asset`` is ``all`` for site-wide incidents).
    join_s
        Seconds before an incident's first alert or after its close within which a new alert
        still joins it.
    max_story
        Story lines kept (the first half and the latest half; a line says how many were left out).
    stale_s
        Seconds without alert activity after which an open incident is closed as stale.
    """

    def __init__(self, site: str, asset: str, *, join_s: float = 600.0, max_story: int = 40,
                 stale_s: float = 86400.0) -> None:
        if join_s < 0 or max_story < 2 or stale_s <= join_s:
            raise ValueError(f"IncidentState {site}/{asset}: join_s = {join_s!r} must be >= 0, "
                             f"max_story = {max_story!r} >= 2 and stale_s = {stale_s!r} > join_s")
        self.stale_s = stale_s
        self.site = site
        self.asset = asset
        self.join_s = join_s
        self.max_story = max_story
        self.current: _Open | None = None
        self.incidents = 0  # incidents opened for this key since the start

    @property
    def key(self) -> str:
        return f"{self.site}/{self.asset}"

    # -- public
    def step(self, alert: Alert) -> list[Incident]:
        """The incident transitions one alert transition causes (summaries cause none)."""
        source = source_of_alert(alert)
        if alert.kind == "open":
            return [*self._close_if_stale(alert.ts), self._open(alert, source)]
        if alert.kind == "close":
            return self._close(alert.alert_id, alert.ts, story_line(alert, source))
        return []

    def close_alert(self, alert_id: str, ts: datetime, why: str) -> list[Incident]:
        """Close one member alert that no close message will come for (e.g. a false positive)."""
        return self._close(alert_id, ts, why)

    def is_member(self, alert_id: str) -> bool:
        return self.current is not None and alert_id in self.current.members

    # -- internals
    def _close_if_stale(self, now: datetime) -> list[Incident]:
        cur = self.current
        if cur is None or cur.last_activity is None or not cur.is_open or \
                (now - cur.last_activity).total_seconds() <= self.stale_s:
            return []
        still = [a for a, m in cur.members.items() if m.closed_at is None]
        for alert_id in still:
            cur.members[alert_id].closed_at = cur.last_activity
        cur.closed_at = cur.last_activity
        self._say(now, f"incident closed as stale: no alert opened or closed for {self.stale_s:.0f} s "
                       f"({len(still)} alert{'s' if len(still) != 1 else ''} never closed)")
        out = self._emit("close", now)
        self.current = None
        return [out]

    def _joins(self, alert: Alert) -> bool:
        cur = self.current
        if cur is None:
            return False
        if alert.alert_id in cur.members or cur.is_open:
            return True
        first = min(m.opened_at for m in cur.members.values())
        end = cur.closed_at or max(m.opened_at for m in cur.members.values())
        return (first - alert.opened_at).total_seconds() <= self.join_s and \
            (alert.opened_at - end).total_seconds() <= self.join_s

    def _open(self, alert: Alert, source: str) -> Incident:
        if not self._joins(alert):
            epoch = int(alert.opened_at.timestamp())
            self.current = _Open(f"{self.key}:{epoch}", alert.opened_at, alert.severity)
            self.incidents += 1
            kind = "open"
        else:
            assert self.current is not None
            kind = "update"
            if self.current.closed_at is not None:
                self._say(alert.opened_at, "incident reopened")
                self.current.closed_at = None
        cur = self.current
        if alert.alert_id in cur.members:  # the same open again (at-least-once delivery)
            return self._emit("update", alert.ts)
        cur.members[alert.alert_id] = _Member(source, alert.source, alert.opened_at, alert.severity)
        cur.touch(alert.ts)
        self._say(alert.opened_at, story_line(alert, source))
        return self._emit(kind, alert.ts)

    def _close(self, alert_id: str, ts: datetime, line: str) -> list[Incident]:
        cur = self.current
        member = cur.members.get(alert_id) if cur is not None else None
        if cur is None or member is None or member.closed_at is not None:
            return []
        member.closed_at = ts
        cur.touch(ts)
        self._say(ts, line)
        if cur.is_open:
            return [self._emit("update", ts)]
        cur.closed_at = max(m.closed_at or ts for m in cur.members.values())
        n = len(cur.members)
        self._say(cur.closed_at, f"incident closed: all {n} alert{'s' if n != 1 else ''} back to normal after "
                                 f"{(cur.closed_at - cur.opened_at).total_seconds():.0f} s")
        return [self._emit("close", ts)]

    def _say(self, ts: datetime, line: str) -> None:
        cur = self.current
        assert cur is not None
        cur.seq += 1
        bisect.insort(cur.story, (ts, cur.seq, line))
        if len(cur.story) > self.max_story:  # keep the start and the latest lines
            del cur.story[self.max_story // 2]
            cur.omitted += 1

    def _emit(self, kind: str, ts: datetime) -> Incident:
        cur = self.current
        assert cur is not None
        members = cur.members
        peak = max((m.severity for m in members.values()), key=lambda s: SEVERITY_RANK.get(s, 0))
        sources = tuple(sorted({m.source for m in members.values()}))
        lines = [f"{t:%H:%M:%S}Z {text}" for t, _, text in cur.story]
        if cur.omitted:
            lines.insert(self.max_story // 2, f"... {cur.omitted} more lines ...")
        names = sorted({s.rsplit("/", 1)[-1] for s in sources})
        streams = sorted({m.stream for m in members.values()})
        title = (f"{self.asset} on {self.site}: {len(members)} alert{'s' if len(members) != 1 else ''} "
                 f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}) from {' and '.join(streams)}")
        return Incident(
            incident_id=cur.incident_id, kind=kind, site=self.site, asset=self.asset, severity=cur.severity,
            peak_severity=peak, title=title, text="\n".join(lines), alerts=len(members), sources=sources,
            alert_ids=tuple(members), opened_at=cur.opened_at, ts=ts,
            closed_at=cur.closed_at if kind == "close" else None,
        )


def as_alert(inc: Incident) -> Alert:
    """An incident transition in the shape :class:`~oddwatch.core.budget.AlertBudget` counts."""
    return Alert(inc.incident_id, "incident", "close" if inc.kind == "close" else "open", inc.peak_severity,
                 inc.site, inc.asset, inc.title, inc.text, 1.0, 0.0, inc.opened_at, inc.ts)


class BudgetSettings(Protocol):
    """What :meth:`IncidentPager.create` reads of ``[alerts]`` (:class:`oddwatch.settings.AlertSettings`)."""

    budget_per_source_per_hour: int
    budget_global_per_hour: int
    budget_summary_every: int
    budget_counts: str


class IncidentPager:
    """Which incident transitions are paged: the incidents flow's ``budget`` decision (pure, picklable).

    With ``counts_incidents`` (``[alerts].budget_counts = "incidents"``) an incident's opening
    counts against the hourly :class:`~oddwatch.core.budget.AlertBudget` of its asset and of
    all assets; a held incident's updates and close are held too, unless it turns critical
    (then it is released and pages from there on). Otherwise every transition passes.

    >>> from datetime import datetime, timedelta
    >>> from oddwatch.records import UTC
    >>> t = datetime(2026, 1, 1, 8, tzinfo=UTC)
    >>> def inc(n, kind="open", peak="warning"):
    ...     return Incident(f"n/p{n}:1", kind, "n", f"p{n}", "warning", peak, "t", "", 1, (), (), t, t)
    >>> pager = IncidentPager(AlertBudget(1, 1), counts_incidents=True)
    >>> [x.kind for x in pager.step(inc(1))], [x.kind for x in pager.step(inc(2))]
    (['open'], ['summary'])
    >>> pager.step(inc(2, "update")), [x.kind for x in pager.step(inc(2, "update", "critical"))]
    ([], ['update'])
    """

    def __init__(self, budget: AlertBudget, *, counts_incidents: bool) -> None:
        self.budget = budget
        self.counts_incidents = counts_incidents

    @classmethod
    def create(cls, a: BudgetSettings) -> IncidentPager:
        """The pager of ``[alerts]``."""
        return cls(AlertBudget(a.budget_per_source_per_hour, a.budget_global_per_hour,
                               summary_every=a.budget_summary_every),
                   counts_incidents=a.budget_counts == "incidents")

    def step(self, inc: Incident) -> list[Incident | Alert]:
        """The incident to page (or nothing) and any budget summaries, for one incident transition."""
        if not self.counts_incidents:
            return [inc]
        budget = self.budget
        if inc.kind == "update":
            out: list[Incident | Alert] = list(budget.advance(inc.ts))
            if inc.peak_severity == "critical":
                budget.release(inc.incident_id)
            if not budget.is_held(inc.incident_id):
                out.append(inc)
            return out
        return [inc if item.alert_id == inc.incident_id and item.kind != "summary" else item
                for item in budget.admit(as_alert(inc))]
