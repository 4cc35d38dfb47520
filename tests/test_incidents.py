"""Assets, incidents, operational quality and the incidents dataflow (Bytewax testing I/O)."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.incidents import IncidentBudgetStep, build_flow
from flows.runtime import BudgetStep
from oddwatch.core.assets import AssetMap
from oddwatch.core.feedback import Feedback, feedback_message, normalise_verdict
from oddwatch.core.incidents import Incident, IncidentPager, IncidentState
from oddwatch.core.quality import QualityBook, component_of
from oddwatch.records import UTC, Alert, Message, Outgoing, Point
from oddwatch.schema import alert_message
from oddwatch.settings import AssetRule, ConfigError, Settings, build_settings

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)


def _alert(key: str, kind: str, opened_min: float, at_min: float | None = None, *, source: str = "sensor",
           severity: str = "warning", title: str = "", details: dict[str, object] | None = None) -> Alert:
    site, subject, name = key.split("/")
    opened = T0 + timedelta(minutes=opened_min)
    ts = T0 + timedelta(minutes=opened_min if at_min is None else at_min)
    return Alert(f"{key}:{int(opened.timestamp())}", source, kind, severity, site,
                 subject if source == "sensor" else f"{subject}/{name}", title or f"{name} {kind}", "",
                 0.9, 0.5, opened, ts, details or {"key": key})


# ---------------------------------------------------------------- assets
def test_asset_map_globs_first_then_convention() -> None:
    m = AssetMap([AssetRule("pump-1", ["north/plc-07/*"]), AssetRule("core-sw1", ["*/snmp-sw1/*"], site="dc1")])
    assert m.asset_of("north/plc-07/controller") == ("north", "pump-1")
    assert m.asset_of("north/pump-1/temperature") == ("north", "pump-1")
    assert m.asset_of("lab/snmp-sw1/temperature") == ("dc1", "core-sw1")
    assert m.key_of("south/web01/nginx") == "south/web01"
    with pytest.raises(ValueError, match="'bad'"):
        m.asset_of("bad")


def test_asset_settings_from_toml_shape() -> None:
    s = build_settings({"assets": {"map": [{"asset": "pump-1", "sources": ["north/plc-07/*"]}]},
                       "incidents": {"join_s": 120, "group_by": "site"}})
    assert s.assets.map[0].sources == ["north/plc-07/*"] and s.incidents.join_s == 120.0
    assert AssetMap.from_settings(s.assets, s.incidents).key_of("north/plc-07/x") == "north/all"
    with pytest.raises(ConfigError, match="stale_s"):
        build_settings({"incidents": {"join_s": 600, "stale_s": 60}})
    with pytest.raises(ConfigError, match="group_by"):
        build_settings({"incidents": {"group_by": "planet"}})
    with pytest.raises(ConfigError, match="assets.map"):
        build_settings({"assets": {"map": [{"asset": "a/b", "sources": ["x"]}]}})
    with pytest.raises(ConfigError, match="budget_counts"):
        build_settings({"alerts": {"budget_counts": "pages"}})


# ---------------------------------------------------------------- incidents
def test_sensor_and_log_alerts_of_one_asset_tell_one_story_in_time_order() -> None:
    st = IncidentState("north", "pump-1", join_s=300)
    rare = {"key": "north/pump-1/plc", "rare_templates": [{"template": "overcurrent trip on <*>", "example": "x"}]}
    out = st.step(_alert("north/pump-1/temperature", "open", 2, title="temperature high"))
    out += st.step(_alert("north/pump-1/plc", "open", 1, 3, source="log", title="unusual log window", details=rare))
    out += st.step(_alert("north/pump-1/current", "open", 6, severity="critical", title="current high"))
    out += st.step(_alert("north/pump-1/temperature", "close", 2, 10, title="back to normal"))
    out += st.step(_alert("north/pump-1/plc", "close", 1, 11, source="log", title="logs back to normal"))
    out += st.step(_alert("north/pump-1/current", "close", 6, 12, title="back to normal"))
    assert [i.kind for i in out] == ["open", "update", "update", "update", "update", "close"]
    last = out[-1]
    assert last.incident_id == f"north/pump-1:{int((T0 + timedelta(minutes=2)).timestamp())}"
    assert last.alerts == 3 and last.severity == "warning" and last.peak_severity == "critical"
    assert last.sources == ("north/pump-1/current", "north/pump-1/plc", "north/pump-1/temperature")
    lines = last.text.splitlines()
    assert lines[0].startswith("08:01:00Z log north/pump-1/plc") and "overcurrent trip on <*>" in lines[0]
    assert lines[1].startswith("08:02:00Z sensor north/pump-1/temperature: temperature high")
    assert lines[-1] == "08:12:00Z incident closed: all 3 alerts back to normal after 600 s"
    assert last.closed_at == T0 + timedelta(minutes=12)
    pickle.loads(pickle.dumps(st))


def test_alerts_far_apart_open_separate_incidents_and_a_near_one_reopens() -> None:
    st = IncidentState("n", "p", join_s=300)
    st.step(_alert("n/p/t", "open", 0))
    first = st.step(_alert("n/p/t", "close", 0, 1))[0]
    again = st.step(_alert("n/p/v", "open", 4))[0]  # 3 min after the close: joins, reopens
    assert (first.kind, again.kind, again.incident_id) == ("close", "update", first.incident_id)
    assert "incident reopened" in again.text
    st.step(_alert("n/p/v", "close", 4, 5))
    later = st.step(_alert("n/p/t", "open", 30))[0]
    assert later.kind == "open" and later.incident_id != first.incident_id and later.alerts == 1
    assert st.step(_alert("n/p/t", "open", 30))[0].alerts == 1  # a repeated open is not a second alert
    assert st.step(_alert("x/y/z", "close", 99)) == []  # closes of unknown alerts change nothing


def test_an_incident_without_activity_closes_as_stale_before_a_new_one_opens() -> None:
    st = IncidentState("n", "p", join_s=300, stale_s=3600)
    st.step(_alert("n/p/t", "open", 0))  # its close never comes
    st.step(_alert("n/p/v", "open", 30))
    assert st.step(_alert("n/p/v", "close", 30, 50))[0].state == "open"
    stale, new = st.step(_alert("n/p/w", "open", 200))
    assert (stale.kind, stale.alerts, new.kind, new.alerts) == ("close", 2, "open", 1)
    assert stale.closed_at == T0 + timedelta(minutes=50) and "closed as stale" in stale.text
    assert "(1 alert never closed)" in stale.text.splitlines()[-1]
    assert st.step(_alert("n/p/t", "close", 0, 201)) == []  # the late close belongs to no open incident


def test_a_false_positive_closes_its_alert_in_the_incident() -> None:
    st = IncidentState("n", "p")
    a = _alert("n/p/t", "open", 0)
    st.step(a)
    out = st.close_alert(a.alert_id, T0 + timedelta(minutes=3), "n/p/t: marked a false positive by ana")
    assert out[0].kind == "close" and "marked a false positive by ana" in out[0].text


def test_story_keeps_first_and_latest_lines() -> None:
    st = IncidentState("n", "p", max_story=4)
    for i in range(6):
        out = st.step(_alert(f"n/p/s{i}", "open", i))
    lines = out[0].text.splitlines()
    assert len(lines) == 5 and lines[2] == "... 2 more lines ..." and "s5" in lines[-1] and "s0" in lines[0]


# ---------------------------------------------------------------- quality
def test_quality_counts_per_source_component_week_and_moves_changed_verdicts() -> None:
    book = QualityBook(precision_floor=0.6, min_judged=3)
    alerts = [_alert("n/p/t", "open", i) for i in range(4)]
    for a in alerts:
        book.record_alert(a)
    ts = T0 + timedelta(hours=1)
    for a, verdict in zip(alerts, ["true_positive", "false_positive", "false_positive", "true_positive"], strict=True):
        row = book.record_feedback(Feedback(a.alert_id, verdict, "ana", "", ts))[-1]
    assert (row.alerts, row.confirmed, row.false_positives, row.precision, row.below_floor) == (4, 2, 2, 0.5, True)
    assert [x.split()[0] for x in row.recent_false_positives] == [alerts[2].alert_id, alerts[1].alert_id]
    row = book.record_feedback(Feedback(alerts[1].alert_id, "true_positive", "bob", "", ts))[0]
    assert (row.confirmed, row.false_positives, row.below_floor) == (3, 1, False)
    missed = book.record_feedback(Feedback("n/p/t:1772400000", "missed", "ana", "", ts))[0]
    assert (missed.component, missed.missed, missed.recall) == ("none", 1, 0.0)
    assert book.record_feedback(Feedback(alerts[0].alert_id, "ack", "ana", "", ts)) == []


def test_verdicts_confirmed_and_missed_are_accepted() -> None:
    assert normalise_verdict("confirmed") == "true_positive" and normalise_verdict("missed") == "missed"
    msg = feedback_message("n/p/t:1772438400", "missed", "ana")
    assert json.loads(msg.payload)["verdict"] == "missed"


def test_component_of_log_alerts() -> None:
    assert component_of(_alert("n/h/app", "open", 0, source="log", details={"silence_s": 99.0})) == "silence"
    assert component_of(_alert("n/h/app", "open", 0, source="log", title="h/app on n: burst of a known message")) == "burst"
    assert component_of(_alert("n/h/app", "open", 0, source="log")) == "novelty"


# ---------------------------------------------------------------- budget
def test_incident_budget_counts_incidents_not_alerts() -> None:
    s = Settings()
    s.alerts.budget_counts, s.alerts.budget_per_source_per_hour = "incidents", 1
    step = IncidentBudgetStep(s.alerts)
    budget = None
    sent: list[object] = []
    for key in ("n/p", "n/p", "n/q"):  # a second incident of n/p in the hour is held
        st = IncidentState(*key.split("/"))
        for i, name in enumerate(("t", "v")):
            for inc in st.step(_alert(f"{key}/{name}", "open", len(sent) + i)):
                budget, out = step(budget, inc)
                sent += [x for x in out if not isinstance(x, Point)]
    kinds = [(x.kind, x.asset if isinstance(x, Incident) else x.subject) for x in sent]  # type: ignore[attr-defined]
    assert kinds == [("open", "p"), ("update", "p"), ("summary", "budget"), ("open", "q"), ("update", "q")]


def test_flow_budgets_pass_every_alert_when_the_budget_counts_incidents() -> None:
    s = Settings()
    s.alerts.budget_per_source_per_hour = 1
    alerts = [_alert("n/p/t", "open", i) for i in range(4)]
    budget, passed = None, []
    for a in alerts:
        budget, out = BudgetStep(s.alerts, "sensors")(budget, a)
        passed += [x for x in out if isinstance(x, Alert)]
    assert [x.kind for x in passed] == ["open", "summary"]  # budget_counts = "alerts"
    s.alerts.budget_counts = "incidents"
    budget, passed = None, []
    for a in alerts:
        budget, out = BudgetStep(s.alerts, "sensors")(budget, a)
        passed += [x for x in out if isinstance(x, Alert)]
    assert passed == alerts


# ---------------------------------------------------------------- the dataflow
def _msg(a: Alert) -> Message:
    out = alert_message(a, "oddwatch/alerts")
    return Message(out.topic, out.payload, a.ts)


def test_flow_merges_one_asset_and_keeps_others_apart() -> None:
    rare = {"key": "north/pump-1/plc", "rare_templates": [{"template": "overcurrent trip on <*>", "example": "x"}]}
    items = [
        _alert("north/pump-1/temperature", "open", 0),
        _alert("north/pump-1/plc", "open", 1, source="log", details=rare),
        _alert("south/fan-2/vibration", "open", 1),
        _alert("north/pump-1/temperature", "close", 0, 8),
        _alert("north/pump-1/plc", "close", 1, 9, source="log"),
    ]
    msgs = [_msg(a) for a in items]
    fb = feedback_message(items[2].alert_id, "false-positive", "ana")
    msgs += [Message(fb.topic, fb.payload, T0 + timedelta(minutes=10)),
             Message("oddwatch/alerts/north/x", b"{nope", T0)]
    odd = Alert("nokey:1", "sensor", "open", "warning", "north", "x", "", "", 0.9, 0.5, T0, T0)
    msgs.append(_msg(odd))
    points: list[Point] = []
    out: list[Outgoing] = []
    flow = build_flow(Settings(), source=TestingSource(msgs), influx_sink=TestingSink(points),
                      mqtt_sink=TestingSink(out))
    run_main(flow, epoch_interval=timedelta(milliseconds=10))
    rows = [p for p in points if p.measurement == "incident"]
    pump = [p for p in rows if p.tags["asset"] == "pump-1"]
    fan = [p for p in rows if p.tags["asset"] == "fan-2"]
    assert {p.ts for p in pump} == {T0} and pump[-1].fields["state"] == "closed" and pump[-1].fields["alerts"] == 2
    assert "overcurrent trip" in str(pump[-1].fields["text"])
    assert fan[-1].fields["state"] == "closed" and "false positive by ana" in str(fan[-1].fields["text"])
    topics = [m.topic for m in out]
    assert topics.count("oddwatch/incidents/north/pump-1") == 4 and "oddwatch/incidents/south/fan-2" in topics
    quality = [p for p in points if p.measurement == "quality"]
    assert quality[-1].tags["source"] == "south/fan-2/vibration" and quality[-1].fields["false_positives"] == 1
    assert any(p.measurement == "ingest_error" and p.tags["reason"] == "bad_json" for p in points)
    assert "oddwatch/deadletter/incident/bad_json" in topics
    odd_err = [p for p in points if p.measurement == "ingest_error" and p.tags["reason"] == "unknown_source"]
    assert odd_err and "'nokey:1'" in str(odd_err[0].fields["detail"]) and odd_err[0].fields["step"] == "check_source"


@pytest.mark.slow
def test_incident_state_survives_an_abort(tmp_path: Path) -> None:
    """An incident opened before a Bytewax abort is closed, story whole, after the resume."""
    rare = {"key": "north/pump-1/plc", "rare_templates": [{"template": "overcurrent trip on <*>", "example": "x"}]}
    before = [_alert("north/pump-1/temperature", "open", 0), _alert("north/pump-1/plc", "open", 1, source="log",
                                                                      details=rare)]
    before += [_alert(f"south/fan-{i}/vibration", "open", 2 + i) for i in range(30)]
    after = [_alert("north/pump-1/temperature", "close", 0, 40), _alert("north/pump-1/plc", "close", 1, 41, source="log")]
    init_db_dir(tmp_path, 1)
    source = TestingSource([*(_msg(a) for a in before), TestingSource.ABORT(), *(_msg(a) for a in after)], batch_size=5)
    runs: list[list[Point]] = [[], []]
    for points in runs:
        flow = build_flow(Settings(), source=source, influx_sink=TestingSink(points), mqtt_sink=TestingSink([]))
        run_main(flow, epoch_interval=timedelta(milliseconds=5), recovery_config=RecoveryConfig(str(tmp_path)))
    first = {p.fields["incident_id"] for p in runs[0] if p.measurement == "incident" and p.tags["asset"] == "pump-1"}
    closed = [p for p in runs[1] if p.measurement == "incident" and p.fields["state"] == "closed"]
    assert len(closed) == 1 and closed[0].fields["incident_id"] in first and closed[0].fields["alerts"] == 2
    assert "overcurrent trip" in str(closed[0].fields["text"]) and "incident closed" in str(closed[0].fields["text"])


def test_incident_budget_resumes_from_a_snapshot_of_the_bare_budget() -> None:
    s = Settings()
    s.alerts.budget_counts, s.alerts.budget_per_source_per_hour = "incidents", 1
    step = IncidentBudgetStep(s.alerts)
    incs = [i for m in (0, 5) for i in IncidentState("n", "p").step(_alert("n/p/t", "open", m))]
    pager, _ = step(None, incs[0])
    resumed, out = step(pager.budget, incs[1])  # the state an older snapshot held
    assert isinstance(resumed, IncidentPager) and resumed.budget is pager.budget
    assert [x.kind for x in out if not isinstance(x, Point)] == ["summary"]
