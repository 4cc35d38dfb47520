"""Alert budget: at most N warning alerts per source and per hour, the rest grouped in a summary.

Operators asked for fewer pages on a bad day: once a source (``site/subject``) or the whole
flow has raised its hourly budget of alerts, further *warning* alerts are held and grouped
into one ``kind="summary"`` alert instead of paging one by one. *Critical* alerts always pass
(and count against the budget). The close of a held alert is dropped, since its open was
never sent; closes of alerts that were sent pass unchanged.

Hours are event-time hours (``alert.ts`` floored to the hour, UTC), so replays and live runs
decide alike. An alert stamped in an hour already closed counts into the current hour (event
time never moves back).

Summary emission (one summary ``alert_id`` per flow and hour, ``budget:<source>:<hour>``):

- the first held alert of an hour emits a summary at once (operators learn that alerts are
  being grouped);
- then every ``summary_every`` held alerts emit an updated summary (the running count);
- when the hour rolls over (the first alert of a later hour, or :meth:`advance`), a final
  summary of the old hour is emitted if alerts were held since the last one.

Every summary carries the totals of its hour so far, so the newest one replaces the older.

The state is a few small dicts bounded by the number of sources that alerted this hour (and
``max_held_ids`` remembered held ids), picklable for Bytewax snapshots. All alerts of a flow
go through one keyed step so the budget holds across series.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

from oddwatch.records import UTC, Alert

HOUR_S = 3600


def _hour_of(ts: datetime) -> int:
    return int(ts.timestamp()) // HOUR_S


def _hour_dt(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR_S, UTC)


def source_of(alert: Alert) -> str:
    """The budget source of an alert: ``site/subject``.

    >>> from oddwatch.records import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> source_of(Alert("k:1", "sensor", "open", "warning", "s1", "pump1", "", "", 0.6, 0.5, t, t))
    's1/pump1'
    """
    return f"{alert.site}/{alert.subject}"


class AlertBudget:
    """Hourly alert budget per source and overall, with grouped summaries (pure, picklable).

    Parameters
    ----------
    per_source_per_hour
        Alerts (opens) a source (``site/subject``) may raise per hour before warnings are held.
    global_per_hour
        Alerts all sources together may raise per hour before warnings are held.
    summary_every
        Held alerts between two updated summaries within an hour (the first held alert
        always emits one).
    max_held_ids
        Held alert ids remembered (oldest forgotten first) to drop their closes.

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> from oddwatch.records import UTC, Alert
    >>> t0 = datetime(2026, 1, 1, 8, tzinfo=UTC)
    >>> def alert(i, kind="open", severity="warning", subject="pump1"):
    ...     ts = t0 + timedelta(minutes=i)
    ...     return Alert(f"s1/{subject}/temp:{i}", "sensor", kind, severity, "s1", subject,
    ...                  "t", "x", 0.7, 0.5, ts, ts)
    >>> budget = AlertBudget(per_source_per_hour=2, global_per_hour=10)
    >>> [[a.kind for a in budget.admit(alert(i))] for i in range(4)]
    [['open'], ['open'], ['summary'], []]
    >>> budget.admit(alert(2, kind="close"))  # held: its open was never sent
    []
    >>> [a.kind for a in budget.admit(alert(0, kind="close"))]
    ['close']
    >>> budget.admit(alert(5, severity="critical"))[0].severity
    'critical'
    >>> budget.state()["held"], budget.state()["used"]
    (2, 3)
    >>> [a.kind for a in budget.admit(alert(61, subject="fan2"))]  # next hour: final summary first
    ['summary', 'open']
    """

    def __init__(
        self, per_source_per_hour: int, global_per_hour: int, *, summary_every: int = 10,
        max_held_ids: int = 10000,
    ) -> None:
        for name, value in (("per_source_per_hour", per_source_per_hour), ("global_per_hour", global_per_hour)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"AlertBudget: {name} = {value!r} must be an integer >= 0")
        if summary_every < 1:
            raise ValueError(f"AlertBudget: summary_every = {summary_every!r} must be >= 1")
        if max_held_ids < 1:
            raise ValueError(f"AlertBudget: max_held_ids = {max_held_ids!r} must be >= 1")
        self.per_source_per_hour = per_source_per_hour
        self.global_per_hour = global_per_hour
        self.summary_every = summary_every
        self.max_held_ids = max_held_ids
        self.hour: int | None = None
        self.used = 0  # alerts sent (or critical) this hour
        self.used_by_source: dict[str, int] = {}
        self.held = 0  # warning alerts held this hour
        self.held_by_source: dict[str, int] = {}
        self.reported = 0  # held count in the last summary emitted this hour
        self.first_held: Alert | None = None  # first held alert this hour (summary's identity)
        self.peak_held: Alert | None = None  # highest-scoring held alert this hour
        self.last_held_ts: datetime | None = None
        self.held_ids: OrderedDict[str, None] = OrderedDict()  # ids whose close must be dropped
        self.held_total = 0  # since start, for metrics

    # -- public
    def admit(self, alert: Alert) -> list[Alert]:
        """The alerts to send for one incoming alert: itself, nothing, and/or a summary."""
        out = self.advance(alert.ts)
        if alert.kind == "summary":
            return [*out, alert]
        if alert.kind == "close":
            if alert.alert_id in self.held_ids:
                del self.held_ids[alert.alert_id]
                return out
            return [*out, alert]
        if alert.kind != "open":
            raise ValueError(f"AlertBudget: alert {alert.alert_id!r} has kind = {alert.kind!r}; "
                             "expected open, close or summary")
        source = source_of(alert)
        over = (self.used_by_source.get(source, 0) >= self.per_source_per_hour
                or self.used >= self.global_per_hour)
        if alert.severity == "critical" or not over:
            self.used += 1
            self.used_by_source[source] = self.used_by_source.get(source, 0) + 1
            return [*out, alert]
        return out + self._hold(alert, source)

    def advance(self, ts: datetime) -> list[Alert]:
        """Move event time to ``ts``; on a new hour, the old hour's final summary (if due).

        Call it from a timer to close an hour that no later alert closes.
        """
        hour = _hour_of(ts)
        if self.hour is None:
            self.hour = hour
            return []
        if hour <= self.hour:
            return []
        out = [self._summary(final=True)] if self.held > self.reported else []
        self.hour = hour
        self.used = 0
        self.used_by_source = {}
        self.held = 0
        self.held_by_source = {}
        self.reported = 0
        self.first_held = self.peak_held = None
        self.last_held_ts = None
        return out

    def is_held(self, alert_id: str) -> bool:
        """Whether *alert_id* was held (its open was never sent, so its close is dropped)."""
        return alert_id in self.held_ids

    def release(self, alert_id: str) -> bool:
        """Stop holding *alert_id*: its later transitions are sent. False if it was not held."""
        if alert_id not in self.held_ids:
            return False
        del self.held_ids[alert_id]
        return True

    def state(self) -> dict[str, object]:
        """Numbers for a dashboard: this hour's ``used``, ``limit`` and ``held``, and more.

        ``used`` and ``held`` count this hour's alerts sent (incl. critical) and held;
        ``limit`` is the global hourly budget; ``source_limit`` the per-source one;
        ``sources_over`` how many sources have used their budget; ``held_total`` counts held
        alerts since the start; ``hour`` is the current hour's start (ISO, or "" before any).
        """
        return {
            "used": self.used,
            "limit": self.global_per_hour,
            "held": self.held,
            "source_limit": self.per_source_per_hour,
            "sources_over": sum(1 for n in self.used_by_source.values() if n >= self.per_source_per_hour),
            "held_total": self.held_total,
            "hour": "" if self.hour is None else _hour_dt(self.hour).isoformat(),
        }

    # -- internals
    def _hold(self, alert: Alert, source: str) -> list[Alert]:
        self.held += 1
        self.held_total += 1
        self.held_by_source[source] = self.held_by_source.get(source, 0) + 1
        if self.first_held is None:
            self.first_held = alert
        if self.peak_held is None or alert.score > self.peak_held.score:
            self.peak_held = alert
        self.last_held_ts = alert.ts if self.last_held_ts is None else max(self.last_held_ts, alert.ts)
        self.held_ids[alert.alert_id] = None
        while len(self.held_ids) > self.max_held_ids:
            self.held_ids.popitem(last=False)
        if self.held == 1 or self.held - self.reported >= self.summary_every:
            return [self._summary(final=False)]
        return []

    def _summary(self, *, final: bool) -> Alert:
        assert self.first_held is not None and self.peak_held is not None and self.hour is not None
        first, peak = self.first_held, self.peak_held
        self.reported = self.held
        start = _hour_dt(self.hour)
        sites = {s.split("/", 1)[0] for s in self.held_by_source}
        site = first.site if len(sites) == 1 else "all"
        top = sorted(self.held_by_source.items(), key=lambda kv: (-kv[1], kv[0]))
        listed = ", ".join(f"{s} ({n})" for s, n in top[:10])
        more = f" and {len(top) - 10} more sources" if len(top) > 10 else ""
        why = []
        if self.used >= self.global_per_hour:
            why.append(f"the global budget of {self.global_per_hour} alerts per hour is used")
        if any(self.used_by_source.get(s, 0) >= self.per_source_per_hour for s in self.held_by_source):
            why.append(f"sources reached their budget of {self.per_source_per_hour} alerts per hour")
        end = start + timedelta(seconds=HOUR_S)
        state = "final count" if final else "so far"
        title = (f"{self.held} warning alert{'s' if self.held != 1 else ''} grouped "
                 f"({state}, {start:%H:%M}-{end:%H:%M}Z) from {len(top)} source{'s' if len(top) != 1 else ''}")
        text = (f"Alert budget: {' and '.join(why) or 'budget reached'}; {self.held} warning alerts held "
                f"between {start:%Y-%m-%d %H:%M}Z and {end:%H:%M}Z ({state}): {listed}{more}. "
                f"Highest score {peak.score:.3f} ({peak.title}). Critical alerts are always sent.")
        ts = self.last_held_ts or first.ts
        return Alert(
            alert_id=f"budget:{first.source}:{start:%Y%m%dT%H}",
            source=first.source, kind="summary", severity="warning", site=site, subject="budget",
            title=title, text=text, score=float(peak.score), threshold=float(peak.threshold),
            opened_at=first.ts, ts=ts,
            details={"held": self.held, "held_by_source": dict(top), "hour": start.isoformat(),
                     "final": final, "used": self.used, "limit": self.global_per_hour,
                     "source_limit": self.per_source_per_hour},
        )


