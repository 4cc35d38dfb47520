"""Precision in operation: alerts and operator verdicts counted per source, component and week.

A :class:`QualityBook` belongs to one incident key (an asset) and counts, per source key
(``site/asset/sensor`` or ``site/host/app``), detector component and ISO week (of the
alert's opening):

- ``alerts``: alerts opened;
- ``confirmed``: alerts an operator confirmed (verdict ``confirmed``/``true_positive``);
- ``false_positives``: alerts marked ``false_positive``;
- ``missed``: incidents nobody was alerted to, reported with verdict ``missed`` on an id
  ``<source>:<epoch of when it happened>``.

``precision = confirmed / (confirmed + false_positives)`` and ``recall = confirmed /
(confirmed + missed)`` when their denominators are not zero. One verdict counts per alert:
a repeated verdict changes nothing, a changed one moves the count. A source whose precision
over the weeks kept is below ``precision_floor`` (after at least ``min_judged`` verdicts) is
flagged, with its latest false positives.

>>> from datetime import datetime
>>> from oddwatch.records import UTC, Alert
>>> from oddwatch.core.feedback import Feedback
>>> t = datetime(2026, 1, 7, 8, tzinfo=UTC)
>>> book = QualityBook(precision_floor=0.5, min_judged=2)
>>> for i in range(3):
...     _ = book.record_alert(Alert(f"n/p/temp:{i}", "sensor", "open", "warning", "n", "p", f"hot {i}", "",
...                                 0.9, 0.5, t, t))
>>> _ = book.record_feedback(Feedback("n/p/temp:0", "false_positive", "ana", "", t))
>>> row = book.record_feedback(Feedback("n/p/temp:1", "false_positive", "ana", "", t))[0]
>>> row.alerts, row.false_positives, row.precision, row.below_floor, row.week
(3, 2, 0.0, True, '2026-W02')
>>> row.recent_false_positives
['n/p/temp:1 hot 1', 'n/p/temp:0 hot 0']
>>> book.record_feedback(Feedback("n/p/temp:1", "false_positive", "ana", "", t))  # counted once
[]
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from oddwatch.core.feedback import Feedback, split_alert_id
from oddwatch.core.incidents import source_of_alert
from oddwatch.records import UTC, Alert

KEEP_WEEKS = 12
MAX_ALERTS = 2000  # alert ids remembered per book for verdicts (oldest forgotten first)
VERDICT_FIELD = {"true_positive": "confirmed", "false_positive": "false_positives", "missed": "missed"}


def week_of(ts: datetime) -> tuple[str, datetime]:
    """``("YYYY-Www", Monday 00:00 UTC)`` of the ISO week holding *ts*.

    >>> week_of(datetime(2026, 1, 1, 12, tzinfo=UTC))
    ('2026-W01', datetime.datetime(2025, 12, 29, 0, 0, tzinfo=datetime.timezone.utc))
    """
    ts = ts.astimezone(UTC)
    year, week, _ = ts.isocalendar()
    monday = (ts - timedelta(days=ts.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return f"{year}-W{week:02d}", monday


def component_of(alert: Alert) -> str:
    """The detector component that raised an alert.

    Sensor alerts come from the per-series ensemble; log alerts from the silence check
    (``details["silence_s"]``), the burst check (a burst title) or the novelty index.
    """
    if alert.source == "sensor":
        return "ensemble"
    if "silence_s" in alert.details:
        return "silence"
    if "burst of a known message" in alert.title:
        return "burst"
    return "novelty" if alert.source == "log" else alert.source or "unknown"


@dataclass(frozen=True, slots=True)
class QualityRow:
    """Counts of one source, component and week, with the source's floor check."""

    site: str
    asset: str
    source: str
    component: str
    week: str
    week_start: datetime
    alerts: int
    confirmed: int
    false_positives: int
    missed: int
    precision: float | None
    recall: float | None
    source_precision: float | None  # over every week kept, every component
    below_floor: bool
    recent_false_positives: list[str]


class QualityBook:
    """Alert and verdict counts of one asset's sources (pure, picklable)."""

    def __init__(self, *, precision_floor: float = 0.5, min_judged: int = 5, recent: int = 5,
                 asset: str = "") -> None:
        self.precision_floor = precision_floor
        self.min_judged = min_judged
        self.recent = recent
        self.asset = asset
        # (source, component, week) -> [alerts, confirmed, false_positives, missed]
        self.counts: dict[tuple[str, str, str], list[int]] = {}
        self.week_starts: dict[str, datetime] = {}
        # alert id -> (source, component, week, title, verdict)
        self.known: OrderedDict[str, list[str]] = OrderedDict()
        self.fps: dict[str, list[str]] = {}  # source -> latest false positives, newest first
        self.flagged: set[str] = set()  # sources below the floor

    def record_alert(self, alert: Alert) -> list[QualityRow]:
        """Count an opened alert (other kinds and repeats count nothing)."""
        if alert.kind != "open" or alert.alert_id in self.known:
            return []
        source, component = source_of_alert(alert), component_of(alert)
        week, start = week_of(alert.opened_at)
        self.week_starts[week] = start
        self.known[alert.alert_id] = [source, component, week, alert.title, ""]
        while len(self.known) > MAX_ALERTS:
            self.known.popitem(last=False)
        self._bump(source, component, week, 0, 1)
        self._forget_old(start)
        return [self._row(source, component, week)]

    def record_feedback(self, fb: Feedback) -> list[QualityRow]:
        """Count one verdict (``ack`` counts nothing)."""
        name = VERDICT_FIELD.get(fb.verdict)
        if name is None:
            return []
        col = 1 + list(VERDICT_FIELD.values()).index(name)
        entry = self.known.get(fb.alert_id)
        if entry is None:
            source, epoch = split_alert_id(fb.alert_id)
            week, start = week_of(datetime.fromtimestamp(epoch, UTC))
            self.week_starts[week] = start
            entry = [source, "none" if fb.verdict == "missed" else "unknown", week, "", ""]
            self.known[fb.alert_id] = entry
        source, component, week, title, old = entry
        if old == fb.verdict:
            return []
        if old:
            self._bump(source, component, week, 1 + list(VERDICT_FIELD.values()).index(VERDICT_FIELD[old]), -1)
        entry[4] = fb.verdict
        self._bump(source, component, week, col, 1)
        if fb.verdict == "false_positive":
            fps = self.fps.setdefault(source, [])
            fps.insert(0, f"{fb.alert_id} {title}".strip())
            del fps[self.recent:]
        elif old == "false_positive":
            self.fps[source] = [x for x in self.fps.get(source, []) if not x.startswith(fb.alert_id + " ")
                                and x != fb.alert_id]
        return [self._row(source, component, week)]

    def source_precision(self, source: str) -> tuple[float | None, int]:
        """``(precision, verdicts)`` of a source over every week and component kept."""
        conf = sum(c[1] for (s, _, _), c in self.counts.items() if s == source)
        fp = sum(c[2] for (s, _, _), c in self.counts.items() if s == source)
        return (conf / (conf + fp) if conf + fp else None), conf + fp

    # -- internals
    def _bump(self, source: str, component: str, week: str, col: int, by: int) -> None:
        counts = self.counts.setdefault((source, component, week), [0, 0, 0, 0])
        counts[col] = max(0, counts[col] + by)

    def _forget_old(self, now: datetime) -> None:
        cutoff = now - timedelta(weeks=KEEP_WEEKS)
        old = {w for w, start in self.week_starts.items() if start < cutoff}
        if old:
            self.counts = {k: v for k, v in self.counts.items() if k[2] not in old}
            for w in old:
                del self.week_starts[w]

    def _row(self, source: str, component: str, week: str) -> QualityRow:
        alerts, conf, fp, missed = self.counts[(source, component, week)]
        precision, judged = self.source_precision(source)
        below = precision is not None and judged >= self.min_judged and precision < self.precision_floor
        if below:
            self.flagged.add(source)
        else:
            self.flagged.discard(source)
        site = source.split("/", 1)[0]
        return QualityRow(
            site=site, asset=self.asset or source.split("/")[1], source=source, component=component, week=week,
            week_start=self.week_starts[week], alerts=alerts, confirmed=conf, false_positives=fp, missed=missed,
            precision=conf / (conf + fp) if conf + fp else None,
            recall=conf / (conf + missed) if conf + missed else None,
            source_precision=precision, below_floor=below,
            recent_false_positives=list(self.fps.get(source, [])) if below else [],
        )
