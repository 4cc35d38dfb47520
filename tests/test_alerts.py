"""AlertTracker: hysteresis, cooldown, arming, pickling."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta

import pytest

from oddwatch.core.alerts import AlertTracker

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def feed(tr: AlertTracker, scores: list[float], armed: bool = True, step_s: float = 60.0) -> list[tuple[int, str]]:
    out = []
    for i, s in enumerate(scores):
        t = tr.update(T0 + timedelta(seconds=step_s * i), s, 0.5, armed)
        if t:
            out.append((i, t.kind))
    return out


def test_opens_after_n_consecutive_and_closes_after_m_below() -> None:
    tr = AlertTracker(open_after=3, close_after=2)
    assert feed(tr, [0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.4, 0.9, 0.4, 0.4, 0.1]) == [(5, "open"), (9, "close")]


def test_threshold_is_inclusive() -> None:
    assert feed(AlertTracker(), [0.5]) == [(0, "open")]


def test_opened_at_is_first_reading_of_the_run() -> None:
    tr = AlertTracker(open_after=2)
    tr.update(T0, 0.9, 0.5, True)
    t = tr.update(T0 + timedelta(minutes=1), 0.9, 0.5, True)
    assert t is not None and t.kind == "open" and t.opened_at == T0


def test_no_open_while_not_armed() -> None:
    assert feed(AlertTracker(), [0.9] * 5, armed=False) == []


def test_cooldown_blocks_reopen_until_it_has_passed() -> None:
    tr = AlertTracker(cooldown_s=300)  # 5 readings at 60 s
    events = feed(tr, [0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    assert events == [(0, "open"), (1, "close"), (6, "open")]


def test_close_reports_peak_and_duration() -> None:
    tr = AlertTracker(close_after=1)
    tr.update(T0, 0.6, 0.5, True)
    tr.update(T0 + timedelta(minutes=1), 0.95, 0.5, True)
    t = tr.update(T0 + timedelta(minutes=2), 0.1, 0.5, True)
    assert t is not None and t.kind == "close" and t.peak_score == 0.95 and t.readings == 2


@pytest.mark.parametrize("copier", [lambda t: pickle.loads(pickle.dumps(t)), copy.deepcopy])
def test_round_trip_keeps_state(copier) -> None:  # type: ignore[no-untyped-def]
    tr = AlertTracker(open_after=2, close_after=3, cooldown_s=120)
    scores = [0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9]
    feed(tr, scores[:4])
    clone = copier(tr)
    rest = [(tr.update(T0 + timedelta(minutes=10 + i), s, 0.5, True), s) for i, s in enumerate(scores[4:])]
    rest2 = [(clone.update(T0 + timedelta(minutes=10 + i), s, 0.5, True), s) for i, s in enumerate(scores[4:])]
    assert rest == rest2


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"open_after": 0}, "open_after = 0"), ({"close_after": 0}, "close_after = 0"), ({"cooldown_s": -1}, "cooldown_s = -1")],
)
def test_bad_arguments_named(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        AlertTracker(**kwargs)
