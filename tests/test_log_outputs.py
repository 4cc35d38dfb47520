from __future__ import annotations

from datetime import datetime, timedelta

from oddwatch.core.alerts import Transition
from oddwatch.core.log_outputs import Silence, log_alert, silence_alerts, split_source, window_point
from oddwatch.core.log_pipeline import WindowResult
from oddwatch.records import UTC

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _result(**kw: object) -> WindowResult:
    base = dict(source="s1/web1/sshd", window_id="s1/web1/sshd:time:1772323200", start=T0.timestamp(),
                end=T0.timestamp() + 55, lines=12, templates=3, score=0.7, threshold=0.2, is_anomaly=True,
                warm=True, admitted=False,
                explanation={"rare_templates": [{"template": "disk <*> failed", "windows_seen": 0,
                                                 "example": "disk sda failed"}],
                             "nearest_normal": {"window_id": "w0", "examples": ["session opened"]}})
    base.update(kw)
    return WindowResult(**base)  # type: ignore[arg-type]


def test_split_source() -> None:
    assert split_source("s1/web1/sshd") == ("s1", "web1", "sshd")


def test_window_point_carries_the_novel_template() -> None:
    p = window_point(_result())
    assert p.tags == {"site": "s1", "host": "web1", "app": "sshd"}
    assert p.fields["novel_template"] == "disk <*> failed" and p.fields["example"] == "disk sda failed"
    assert isinstance(p.fields["novelty"], float) and p.ts == T0 + timedelta(seconds=55)
    assert "novel_template" not in window_point(_result(is_anomaly=False)).fields


def test_log_alert_explains_the_window() -> None:
    t = Transition("open", T0 + timedelta(seconds=55), T0 + timedelta(seconds=55), 0.7, 0.2, 0.7, 0)
    a = log_alert(_result(), t, "warning")
    assert a.subject == "web1/sshd" and a.kind == "open" and a.source == "log"
    assert "disk <*> failed" in a.text and "disk sda failed" in a.text and "Nearest normal window w0" in a.text
    assert "0.700 >= threshold 0.200" in a.text


def test_silence_alerts_open_when_the_next_line_was_due_and_close_at_its_return() -> None:
    opened, closed = silence_alerts(Silence("s1/web1/nginx", T0.timestamp(), T0.timestamp() + 600, 3.0), 20.0)
    assert (opened.kind, closed.kind) == ("open", "close")
    assert opened.opened_at == T0 + timedelta(seconds=3) and closed.ts == T0 + timedelta(seconds=600)
    assert "every 3.0 s" in opened.text and opened.alert_id == closed.alert_id
    assert 0.5 < opened.score < 1.0
