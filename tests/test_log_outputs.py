from __future__ import annotations

from datetime import datetime, timedelta

from oddwatch.core.alerts import Transition
from oddwatch.core.feedback import Feedback, is_quiet
from oddwatch.core.log_outputs import (
    Silence,
    feedback_close,
    log_alert,
    silence_alerts,
    split_source,
)
from oddwatch.core.log_pipeline import WindowResult
from oddwatch.records import UTC
from oddwatch.schema import window_point

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


OPEN = Transition("open", T0 + timedelta(seconds=55), T0 + timedelta(seconds=55), 0.7, 0.2, 0.7, 0)


def test_a_novelty_alert_names_the_new_template_with_an_example() -> None:
    a = log_alert(_result(), OPEN, "warning")
    assert a.subject == "web1/sshd" and a.kind == "open" and a.source == "log"
    assert a.title == "web1/sshd on s1: 1 new log message: 'disk <*> failed'"
    assert ("has 1 new log message: 'disk <*> failed' (never seen before; e.g. 'disk sda failed')."
            in a.text)
    assert "Nearest normal window w0: session opened." in a.text
    assert a.text.endswith("(novelty 0.700, threshold 0.200)")


def test_a_burst_alert_gives_the_template_its_count_and_its_usual_count() -> None:
    burst = {"template": "Failed password for invalid user <*>", "count": 40, "expected": 0.52,
             "example": "Failed password for invalid user admin", "score": 0.8}
    a = log_alert(_result(score=0.0, explanation={"burst": burst, "template_counts": {1: 40}}), OPEN, "warning")
    assert a.title == "web1/sshd on s1: burst of 'Failed password for invalid user <*>' (40 times, usually 0.5)"
    assert a.text == ("Burst on s1/web1/sshd: 'Failed password for invalid user <*>' was logged 40 times from "
                      "2026-03-01 00:00:00Z to 00:00:55Z, usually 0.5 times per window of this length. "
                      "Example: 'Failed password for invalid user admin'. The message is known; its rate is not.")
    assert "novelty" not in a.text and "threshold" not in a.text


def test_a_novelty_alert_without_a_rare_template_names_the_counts_that_differ() -> None:
    changes = [{"template": "session opened for user <*>", "count": 9, "usual": 1, "example": "session opened for user u1"},
               {"template": "session closed for user <*>", "count": 0, "usual": 1, "example": ""}]
    a = log_alert(_result(explanation={"count_changes": changes, "nearest_normal": {"window_id": "w0"}}), OPEN,
                  "warning")
    assert a.title == "web1/sshd on s1: unusual mix of log messages: 'session opened for user <*>' 9 times, usually 1"
    assert ("has no new message but an unusual mix. The counts least likely given their usual variability: "
            "'session opened for user <*>' 9 times (usually 1), e.g. 'session opened for "
            "user u1'; 'session closed for user <*>' 0 times (usually 1).") in a.text
    bare = log_alert(_result(explanation={}), OPEN, "warning")
    assert "far from every normal window" in bare.text and "0 new" not in bare.title + bare.text


def test_a_close_and_a_quiet_close_by_feedback() -> None:
    close = Transition("close", T0 + timedelta(seconds=300), T0 + timedelta(seconds=55), 0.1, 0.2, 0.9, 4)
    a = log_alert(_result(is_anomaly=False), close, "critical")
    assert a.kind == "close" and a.title == "web1/sshd on s1: logs back to normal"
    assert "closed after 4 windows (peak novelty 0.900" in a.text
    fb = Feedback("s1/web1/sshd:1772323255", "false_positive", "ana", "planned maintenance", T0)
    q = feedback_close("s1/web1/sshd", fb, close, "critical")
    assert is_quiet(q) and q.alert_id == fb.alert_id and q.kind == "close"
    assert "marked a false positive by ana: planned maintenance" in q.text


def test_silence_alerts_open_when_the_next_line_was_due_and_close_at_its_return() -> None:
    opened, closed = silence_alerts(Silence("s1/web1/nginx", T0.timestamp(), T0.timestamp() + 600, 3.0), 20.0)
    assert (opened.kind, closed.kind) == ("open", "close")
    assert opened.opened_at == T0 + timedelta(seconds=3) and closed.ts == T0 + timedelta(seconds=600)
    assert opened.text == (
        "s1/web1/nginx was silent from its line at 2026-03-01 00:00:00Z until 2026-03-01 00:10:00Z: 600 s without "
        "a log line, 200 times its usual gap; it usually sends one every 3.0 s. Check that the service and its "
        "log shipping run.")
    assert opened.alert_id == closed.alert_id
    assert 0.5 < opened.score < 1.0
