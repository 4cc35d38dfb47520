"""Tests of oddwatch.core.budget.AlertBudget (pure logic, no Bytewax)."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime, timedelta

import pytest

from oddwatch.core.budget import AlertBudget
from oddwatch.records import UTC, Alert

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def alert(minute: float, *, subject: str = "pump1", kind: str = "open", severity: str = "warning",
          site: str = "s1", score: float = 0.7, opened: float | None = None) -> Alert:
    ts = T0 + timedelta(minutes=minute)
    opened_at = T0 + timedelta(minutes=minute if opened is None else opened)
    return Alert(f"{site}/{subject}/temp:{int(opened_at.timestamp())}", "sensor", kind, severity, site, subject,
                 f"title {subject}", "text", score, 0.5, opened_at, ts)


def kinds(alerts: list[Alert]) -> list[str]:
    return [a.kind for a in alerts]


def test_within_budget_passes_unchanged() -> None:
    b = AlertBudget(per_source_per_hour=3, global_per_hour=10)
    a = alert(1)
    assert b.admit(a) == [a]
    c = alert(2, kind="close", opened=1)
    assert b.admit(c) == [c]
    assert b.state()["used"] == 1 and b.state()["held"] == 0


def test_per_source_budget_holds_warnings_and_emits_one_summary() -> None:
    b = AlertBudget(per_source_per_hour=2, global_per_hour=100, summary_every=5)
    out = [b.admit(alert(i)) for i in range(6)]
    assert [kinds(o) for o in out] == [["open"], ["open"], ["summary"], [], [], []]
    summary = out[2][0]
    assert summary.details["held"] == 1 and summary.details["held_by_source"] == {"s1/pump1": 1}
    assert "s1/pump1 (1)" in summary.text and summary.severity == "warning"
    # another source still has its own budget
    assert kinds(b.admit(alert(7, subject="fan2"))) == ["open"]
    # 5 held alerts after the last summary emit an updated one with the running count
    out = [b.admit(alert(8 + i)) for i in range(5)]
    assert [kinds(o) for o in out] == [[], ["summary"], [], [], []]
    assert out[1][0].details["held"] == 6
    assert out[1][0].alert_id == summary.alert_id  # one id per hour: the newest replaces older
    assert b.state() == {"used": 3, "limit": 100, "held": 9, "source_limit": 2, "sources_over": 1,
                         "held_total": 9, "hour": T0.isoformat()}


def test_global_budget_across_sources() -> None:
    b = AlertBudget(per_source_per_hour=5, global_per_hour=3)
    out = [b.admit(alert(i, subject=f"asset{i}", site=f"s{i % 2}")) for i in range(6)]
    assert [kinds(o) for o in out] == [["open"], ["open"], ["open"], ["summary"], [], []]
    assert "global budget of 3" in out[3][0].text


def test_critical_always_passes_but_counts() -> None:
    b = AlertBudget(per_source_per_hour=1, global_per_hour=2)
    assert kinds(b.admit(alert(0))) == ["open"]
    crit = [b.admit(alert(1 + i, severity="critical")) for i in range(3)]
    assert all(kinds(o) == ["open"] and o[0].severity == "critical" for o in crit)
    assert b.state()["used"] == 4
    assert kinds(b.admit(alert(5, subject="other"))) == ["summary"]  # global budget used by criticals


def test_close_of_held_alert_dropped_close_of_sent_passes() -> None:
    b = AlertBudget(per_source_per_hour=1, global_per_hour=10)
    sent, held = alert(0), alert(1)
    b.admit(sent)
    assert kinds(b.admit(held)) == ["summary"]
    assert b.admit(alert(2, kind="close", opened=1)) == []
    assert kinds(b.admit(alert(3, kind="close", opened=0))) == ["close"]
    assert not b.held_ids  # forgotten once closed
    # a close of an alert never seen (e.g. opened before a restart) passes
    assert kinds(b.admit(alert(4, kind="close", opened=-500))) == ["close"]


def test_held_close_dropped_in_a_later_hour() -> None:
    b = AlertBudget(per_source_per_hour=0, global_per_hour=10)
    assert kinds(b.admit(alert(50))) == ["summary"]
    out = b.admit(alert(70, kind="close", opened=50))
    assert out == []  # the summary of the old hour was already complete; close dropped


def test_hour_rollover_emits_final_summary_and_resets() -> None:
    b = AlertBudget(per_source_per_hour=1, global_per_hour=10, summary_every=100)
    b.admit(alert(0))
    for i in range(1, 5):
        b.admit(alert(i))
    assert b.state()["held"] == 4
    out = b.admit(alert(65))
    assert kinds(out) == ["summary", "open"]
    assert out[0].details["held"] == 4 and out[0].details["final"] is True
    assert b.state()["held"] == 0 and b.state()["used"] == 1
    # nothing held since the last summary: no final summary
    b2 = AlertBudget(per_source_per_hour=1, global_per_hour=10)
    b2.admit(alert(0))
    b2.admit(alert(1))
    assert kinds(b2.admit(alert(61))) == ["open"]


def test_advance_closes_a_quiet_hour() -> None:
    b = AlertBudget(per_source_per_hour=1, global_per_hour=10, summary_every=100)
    for i in range(3):
        b.admit(alert(i))
    assert kinds(b.advance(T0 + timedelta(minutes=30))) == []
    assert kinds(b.advance(T0 + timedelta(minutes=61))) == ["summary"]
    assert b.advance(T0 + timedelta(minutes=62)) == []


def test_late_alert_counts_into_current_hour() -> None:
    b = AlertBudget(per_source_per_hour=1, global_per_hour=10)
    b.admit(alert(61))
    assert kinds(b.admit(alert(59))) == ["summary"]  # event time never moves back


def test_summary_names_sources_and_site_all() -> None:
    b = AlertBudget(per_source_per_hour=0, global_per_hour=10, summary_every=1)
    b.admit(alert(0, site="a", subject="x"))
    out = b.admit(alert(1, site="b", subject="y"))
    s = out[0]
    assert s.site == "all" and s.subject == "budget" and s.source == "sensor"
    assert "a/x (1)" in s.text and "b/y (1)" in s.text


def test_pickle_and_deepcopy_keep_state() -> None:
    b = AlertBudget(per_source_per_hour=1, global_per_hour=5)
    b.admit(alert(0))
    b.admit(alert(1))
    for clone in (pickle.loads(pickle.dumps(b)), copy.deepcopy(b)):
        assert clone.state() == b.state()
        assert clone.admit(alert(2, kind="close", opened=1)) == []


def test_bad_settings_name_the_value() -> None:
    with pytest.raises(ValueError, match="per_source_per_hour = -1"):
        AlertBudget(-1, 5)
    with pytest.raises(ValueError, match="summary_every = 0"):
        AlertBudget(1, 5, summary_every=0)
    with pytest.raises(ValueError, match="kind = 'weird'"):
        AlertBudget(1, 5).admit(alert(0, kind="weird"))


def test_held_ids_bounded() -> None:
    b = AlertBudget(per_source_per_hour=0, global_per_hour=0, max_held_ids=3)
    for i in range(10):
        b.admit(alert(i))
    assert len(b.held_ids) == 3


def test_budget_step_and_points() -> None:
    from flows.runtime import BudgetStep, budget_points
    from oddwatch.settings import AlertSettings

    step = BudgetStep(AlertSettings(budget_per_source_per_hour=1, budget_global_per_hour=5), "sensors")
    budget, out = step(None, alert(0))
    assert [type(x).__name__ for x in out] == ["Alert", "Point"]
    budget, out = step(budget, alert(1))
    assert out[0].kind == "summary"  # type: ignore[union-attr]
    rows = [p for item in out for p in budget_points(item)]
    assert [p.measurement for p in rows] == ["alert", "pipeline"]
    assert rows[0].tags["kind"] == "summary"
    assert rows[1].fields["budget_held"] == 1.0 and rows[1].fields["budget_used"] == 1.0
    assert pickle.loads(pickle.dumps(budget)).state() == budget.state()
