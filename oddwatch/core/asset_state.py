"""The decision object of one asset in the incidents flow: its incidents and its quality counts.

:class:`AssetState` is what the incidents flow's ``incident`` step keeps per incident key
(pickled at Bytewax snapshots) and what a test or an evaluation steps directly.

>>> from datetime import datetime
>>> from oddwatch.core.feedback import Feedback
>>> from oddwatch.records import UTC, Alert
>>> t = datetime(2026, 1, 7, 8, tzinfo=UTC)
>>> st = AssetState.create("n/p")
>>> out = st.step(Alert("n/p/temp:1767772800", "sensor", "open", "warning", "n", "p", "hot", "", 0.9, 0.5, t, t))
>>> [type(x).__name__ for x in out]
['Incident', 'QualityRow']
>>> out = st.apply_feedback(Feedback("n/p/temp:1767772800", "false_positive", "ana", "", t))
>>> [(type(x).__name__, getattr(x, "kind", "")) for x in out]
[('QualityRow', ''), ('Incident', 'close')]
"""

from __future__ import annotations

from dataclasses import dataclass

from oddwatch.core.feedback import Feedback, route_key
from oddwatch.core.incidents import Incident, IncidentState
from oddwatch.core.quality import QualityBook, QualityRow
from oddwatch.records import Alert
from oddwatch.settings import IncidentSettings, QualitySettings

Decided = Incident | QualityRow


@dataclass
class AssetState:
    """One incident key's :class:`IncidentState` and :class:`QualityBook`."""

    incidents: IncidentState
    quality: QualityBook

    @classmethod
    def create(cls, key: str, incidents: IncidentSettings | None = None,
               quality: QualitySettings | None = None) -> AssetState:
        """The state of incident key ``site/asset`` with these settings (defaults when None)."""
        i, q = incidents or IncidentSettings(), quality or QualitySettings()
        site, _, asset = key.partition("/")
        return cls(IncidentState(site, asset, join_s=i.join_s, max_story=i.max_story, stale_s=i.stale_s),
                   QualityBook(precision_floor=q.precision_floor, min_judged=q.min_judged,
                               recent=q.recent_false_positives, asset=asset))

    def step(self, alert: Alert) -> list[Decided]:
        """Incident transitions and quality rows for one alert transition."""
        return [*self.incidents.step(alert), *self.quality.record_alert(alert)]

    def apply_feedback(self, fb: Feedback) -> list[Decided]:
        """Count a verdict; a false positive also closes its alert in the open incident."""
        out: list[Decided] = list(self.quality.record_feedback(fb))
        if fb.verdict == "false_positive" and self.incidents.is_member(fb.alert_id):
            who = f" by {fb.user}" if fb.user else ""
            out.extend(self.incidents.close_alert(fb.alert_id, fb.ts,
                                                  f"{route_key(fb.alert_id)}: marked a false positive{who}"))
        return out
