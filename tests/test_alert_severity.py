"""An alert whose severity rises while it is open still closes in InfluxDB: every row of one
alert carries the severity it opened with (a tag), the peak severity is a field, and the
dashboards' open-alerts queries list it no more once it closed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from oddwatch.core.alerts import Transition
from oddwatch.core.feedback import Feedback, apply_sensor_feedback
from oddwatch.core.log_outputs import log_alert
from oddwatch.core.log_pipeline import WindowResult
from oddwatch.core.series import SeriesParams, SeriesState
from oddwatch.records import UTC, Alert, Reading
from oddwatch.schema import alert_points
from oddwatch.settings import AlertSettings
from tests.test_grafana import all_queries, substitute, write_points

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


class ScriptedDetector:
    """A detector stub whose scores are given in advance."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)

    def score_one(self, x: dict[str, float]) -> float:
        return self.scores.pop(0)

    def learn_one(self, x: dict[str, float]) -> None:
        pass

    def expected_range(self) -> tuple[float, float]:
        return 0.0, 1.0


def _sensor_alerts(site: str, scores: list[float]) -> tuple[SeriesState, list[Alert]]:
    state = SeriesState(site, "pump1", "temp", SeriesParams(warmup=5, drift=False),
                        AlertSettings(open_after=1, close_after=3, cooldown_s=0))
    state.detector = ScriptedDetector(scores)  # type: ignore[assignment]
    alerts = []
    for i in range(len(scores)):
        out = state.step(Reading(site, "pump1", "temp", T0 + timedelta(seconds=10 * i), 0.5))
        if out.alert is not None:
            alerts.append(out.alert)
    return state, alerts


RISING = [0.1] * 10 + [0.6, 0.95, 0.97] + [0.1] * 3  # opens as a warning, peaks critical, closes


def test_sensor_alert_keeps_its_opening_severity() -> None:
    _, (opened, closed) = _sensor_alerts("s1", RISING)
    assert (opened.kind, opened.severity, opened.details["peak_severity"]) == ("open", "warning", "warning")
    assert (closed.kind, closed.severity, closed.details["peak_severity"]) == ("close", "warning", "critical")
    open_row, = alert_points(opened)
    close_row, rewritten = alert_points(closed)
    assert open_row.tags == rewritten.tags and open_row.ts == rewritten.ts
    assert close_row.tags["severity"] == "warning" and close_row.fields["peak_severity"] == "critical"
    assert rewritten.fields["state"] == "closed" and rewritten.fields["peak_severity"] == "critical"


def test_feedback_close_keeps_the_opening_severity() -> None:
    state, (opened,) = _sensor_alerts("s1", RISING[:-3])
    fb = Feedback(opened.alert_id, "false_positive", "ana", "", T0 + timedelta(hours=1))
    close = apply_sensor_feedback(state, fb).alert
    assert close is not None
    (open_row,), (_, rewritten) = alert_points(opened), alert_points(close)
    assert open_row.tags == rewritten.tags and rewritten.fields["peak_severity"] == "critical"


def _log_alerts(site: str) -> list[Alert]:
    """As the log flow's novelty step: the severity is fixed when the alert opens."""
    def window(i: int, score: float) -> WindowResult:
        start = (T0 + timedelta(minutes=i)).timestamp()
        return WindowResult(source=f"{site}/web-1/nginx", window_id=f"w{i}", start=start, end=start + 60,
                            lines=10, templates=2, score=score, threshold=0.5, is_anomaly=score >= 0.5,
                            warm=True, admitted=False, explanation={})
    opened_at = T0
    t_open = Transition("open", opened_at, opened_at, 0.6, 0.5, 0.6, 0)
    t_close = Transition("close", T0 + timedelta(minutes=5), opened_at, 0.1, 0.5, 0.97, 5)
    open_severity = "warning"  # severity_of(0.6)
    return [log_alert(window(0, 0.6), t_open, open_severity), log_alert(window(5, 0.1), t_close, open_severity)]


def test_log_alert_keeps_its_opening_severity() -> None:
    opened, closed = _log_alerts("s1")
    assert closed.severity == "warning" and closed.details["peak_severity"] == "critical"
    assert alert_points(opened)[0].tags == alert_points(closed)[1].tags


@pytest.mark.integration
def test_dashboards_show_no_open_alert_after_a_rising_alert_closes(services: Any, unique: str) -> None:
    _, sensor = _sensor_alerts(unique, RISING)
    log = _log_alerts(unique)
    settings = services.settings().influx
    write_points(settings, [p for a in sensor + log for p in alert_points(a)])
    queries = [q for q in all_queries() if '"state" = \'open\'' in q.influxql]
    assert queries, "no open-alerts query in the dashboards"
    for q in queries:
        influxql = substitute(q.influxql, {"site": unique}).replace("time > now() - 1h", "time > now() - 2h")
        assert services.query(influxql) == [], f"{q.dashboard} {q.where} still lists an alert as open"
    # and the rows are there: one alert per source, closed, with its peak severity
    rows = services.query(f"SELECT * FROM alert WHERE site = '{unique}' AND kind = 'open'")
    assert sorted((r["source"], r["state"], r["severity"], r["peak_severity"]) for r in rows) == [
        ("log", "closed", "warning", "critical"), ("sensor", "closed", "warning", "critical")]
