"""Tests of the NAB v1.1 scorer (oddwatch/evaluation/nab.py)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from oddwatch import datasets
from oddwatch.evaluation import nab

SHARED_NAB = datasets.path("nab")
T0 = datetime(2024, 1, 1)


def stamps(n: int, step_min: int = 5) -> list[datetime]:
    return [T0 + timedelta(minutes=step_min * i) for i in range(n)]


def one_file(scores: list[float], windows: list[tuple[int, int]]) -> tuple[dict, dict]:
    ts = stamps(len(scores))
    return {"c/f.csv": (ts, scores)}, {"c/f.csv": [(ts[a], ts[b]) for a, b in windows]}


# A plain transcription of numenta/NAB nab/sweeper.py (calcSweepScore, calcScoreByThreshold)
# and nab/optimizer.py, used as an oracle on random corpora.
def _sig(x: float) -> float:
    return -1.0 if x >= 3.0 else 2 / (1 + math.exp(5 * x)) - 1.0


def reference_sweep(results: dict, windows: dict, cm: nab.Profile) -> tuple[float, float]:
    rows = []  # (score, sweep, window name or None)
    for key, (ts, scores) in results.items():
        limits = list(windows[key])
        prob = min(math.floor(0.15 * len(ts)), 750.0)
        cur = None
        prev_r = prev_w = None
        for i, (t, s) in enumerate(zip(ts, scores, strict=True)):
            if limits and t == limits[0][0]:
                cur = limits.pop(0)
                cur_r = ts.index(cur[1])
                cur_w = float(cur_r - ts.index(cur[0]) + 1)
            if cur is not None:
                sweep = _sig(-(cur_r - i + 1) / cur_w) * cm.tp_weight / _sig(-1.0)
            else:
                pos = 3.0 if prev_r is None else abs(prev_r - i) / float(prev_w - 1)
                sweep = _sig(pos) * cm.fp_weight
            if i >= prob:
                rows.append((s, sweep, None if cur is None else f"{key}|{cur[0]}"))
            if cur is not None and t == cur[1]:
                prev_r, prev_w, cur = i, cur_w, None
    rows.sort(key=lambda r: r[0], reverse=True)
    parts = {"fp": 0.0}
    parts.update({r[2]: -cm.fn_weight for r in rows if r[2] is not None})
    out = []
    cur_t = 1.1
    for s, sweep, name in rows:
        if s != cur_t:
            out.append((cur_t, sum(parts.values())))
            cur_t = s
        if name is None:
            parts["fp"] += sweep
        else:
            parts[name] = max(parts[name], sweep)
    out.append((cur_t, sum(parts.values())))
    best = sorted(out, key=lambda x: x[1], reverse=True)[0]
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("profile", list(nab.PROFILES))
def test_matches_reference_sweeper_on_random_corpora(seed: int, profile: str) -> None:
    rng = np.random.default_rng(seed)
    results, windows = {}, {}
    for k in range(3):
        n = int(rng.integers(150, 400))
        ts = stamps(n)
        scores = np.round(rng.random(n) ** 3, 2).tolist()  # many ties, as real detectors
        starts = sorted(rng.choice(np.arange(60, n - 30, 40), size=int(rng.integers(0, 3)), replace=False))
        wins = []
        for a in starts:
            b = a + int(rng.integers(5, 25))
            wins.append((ts[a], ts[b]))
            scores[a + 2] = float(rng.choice([0.5, 0.97, 1.0]))
        results[f"c/f{k}.csv"] = (ts, scores)
        windows[f"c/f{k}.csv"] = wins
    cm = nab.PROFILES[profile]
    ref_threshold, ref_raw = reference_sweep(results, windows, cm)
    got = nab.score_corpus(results, windows, profile)
    assert got.raw == pytest.approx(ref_raw, abs=1e-9)
    assert got.threshold == pytest.approx(ref_threshold)
    assert sum(got.per_file.values()) == pytest.approx(got.raw, abs=1e-9)


@pytest.mark.shared_data
def test_reproduces_published_artime_scores() -> None:
    art = SHARED_NAB / "reference_results" / "ARTime"
    if not art.is_dir():
        pytest.skip(datasets.missing_message("nab", "with reference_results/ARTime, from a local copy"))
    windows = nab.load_windows(SHARED_NAB / "labels" / "combined_windows.json")
    results = nab.load_results_dir(art, detector="ARTime")
    assert len(results) == 35
    profiles = nab.load_profiles(SHARED_NAB / "config" / "profiles.json")
    scores = nab.score_profiles(results, windows, profiles)
    got = {name: round(s.score, 2) for name, s in scores.items()}
    assert got == {"standard": 67.85, "reward_low_FP_rate": 57.84, "reward_low_FN_rate": 73.72}
    assert scores["standard"].windows == 55


def test_detection_at_window_start_is_perfect_and_null_is_zero() -> None:
    scores = [0.0] * 200
    scores[100] = 1.0
    results, windows = one_file(scores, [(100, 119)])
    best = nab.score_corpus(results, windows)
    assert best.score == pytest.approx(100.0)
    assert (best.tp, best.fp, best.fn, best.windows_detected) == (1, 0, 19, 1)
    null = nab.score_corpus(one_file([0.0] * 200, [(100, 119)])[0], windows)
    assert null.score == pytest.approx(0.0)
    assert null.threshold == 1.1


def test_only_the_best_detection_in_a_window_counts() -> None:
    scores = [0.0] * 200
    for i in (105, 110, 118):
        scores[i] = 1.0
    got = nab.score_at(*one_file(scores, [(100, 119)]), "standard", 0.5)
    expected = nab.scaled_sigmoid(-(119 - 105 + 1) / 20) / nab.scaled_sigmoid(-1.0)
    assert got.raw == pytest.approx(expected)
    assert got.tp == 3


def test_later_detection_scores_less() -> None:
    early, late = [0.0] * 200, [0.0] * 200
    early[102], late[117] = 1.0, 1.0
    w = [(100, 119)]
    assert nab.score_at(*one_file(early, w), "standard", 0.5).raw > nab.score_at(
        *one_file(late, w), "standard", 0.5
    ).raw > 0


def test_probationary_rows_are_not_scored() -> None:
    scores = [0.0] * 200
    scores[10] = 1.0  # probation is floor(0.15 * 200) = 30 rows
    got = nab.score_at(*one_file(scores, [(100, 119)]), "standard", 0.5)
    assert (got.fp, got.raw) == (0, -1.0)
    scores[30] = 1.0
    got = nab.score_at(*one_file(scores, [(100, 119)]), "standard", 0.5)
    assert (got.fp, got.raw) == (1, pytest.approx(-1.11))


def test_probation_is_capped_at_750_rows() -> None:
    assert nab.probation_rows(10000) == 750
    assert nab.probation_rows(1000) == 150


def test_false_positive_weight_depends_on_previous_window() -> None:
    w = [(100, 119)]
    near, far = [0.0] * 300, [0.0] * 300
    near[121], far[200] = 1.0, 1.0
    raw_near = nab.score_at(*one_file(near, w), "standard", 0.5).raw
    raw_far = nab.score_at(*one_file(far, w), "standard", 0.5).raw
    assert raw_near == pytest.approx(-1.0 + 0.11 * nab.scaled_sigmoid(2 / 19))
    assert raw_far == pytest.approx(-1.0 - 0.11)  # 81 rows past a 20-row window: >= 3 widths
    assert raw_far < raw_near < -1.0


def test_profiles_weigh_false_positives_and_negatives() -> None:
    scores = [0.0] * 200
    scores[50] = 1.0
    results, windows = one_file(scores, [(100, 119)])
    assert nab.score_at(results, windows, "standard", 0.5).raw == pytest.approx(-1.11)
    assert nab.score_at(results, windows, "reward_low_FP_rate", 0.5).raw == pytest.approx(-1.22)
    assert nab.score_at(results, windows, "reward_low_FN_rate", 0.5).raw == pytest.approx(-2.11)


def test_threshold_sweep_picks_the_best_threshold_over_the_corpus() -> None:
    # one file wants a high threshold (noise at 0.6), the other a low one (anomaly at 0.4)
    a = [0.0] * 200
    a[60] = a[70] = a[80] = 0.6
    a[100] = 0.9
    b = [0.0] * 200
    b[100] = 0.4
    ts = stamps(200)
    results = {"c/a.csv": (ts, a), "c/b.csv": (ts, b)}
    windows = {"c/a.csv": [(ts[100], ts[119])], "c/b.csv": [(ts[100], ts[119])]}
    best = nab.score_corpus(results, windows)
    assert best.threshold == 0.4
    assert best.windows_detected == 2
    assert best.raw == pytest.approx(2.0 - 3 * 0.11)


def test_ties_prefer_the_higher_threshold() -> None:
    scores = [0.0] * 200
    scores[100], scores[110] = 0.9, 0.5  # 0.5 adds nothing: same raw score
    best = nab.score_corpus(*one_file(scores, [(100, 119)]))
    assert best.threshold == 0.9


def test_window_limits_between_rows_map_to_the_rows_inside() -> None:
    ts = stamps(200)
    scores = [0.0] * 200
    scores[101] = 1.0
    results = {"c/f.csv": (ts, scores)}
    windows = {"c/f.csv": [(ts[100] + timedelta(minutes=2), ts[119] + timedelta(minutes=2))]}
    got = nab.score_at(results, windows, "standard", 0.5)
    assert got.score == pytest.approx(100.0)


def test_score_decisions_uses_threshold_one_half_and_rejects_non_binary() -> None:
    scores = [0] * 200
    scores[100] = 1
    results, windows = one_file(scores, [(100, 119)])
    assert nab.score_decisions(results, windows).score == pytest.approx(100.0)
    results["c/f.csv"][1][5] = 0.7
    with pytest.raises(ValueError, match="row 5 decision 0.7"):
        nab.score_decisions(results, windows)


def test_event_metrics() -> None:
    ts = stamps(400)
    flags = [0] * 400
    for i in (80, 81, 82, 105, 300):  # one false run, one hit, one false alert after
        flags[i] = 1
    windows = {"c/f.csv": [(ts[100], ts[119]), (ts[200], ts[219])]}
    m = nab.event_metrics({"c/f.csv": (ts, flags)}, windows)
    assert (m.windows, m.detected, m.alerts, m.true_alerts, m.false_alerts) == (2, 1, 3, 1, 2)
    assert m.precision == pytest.approx(1 / 3)
    assert m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(0.4)
    assert m.mean_delay_s == pytest.approx(25 * 60)
    scored_days = (399 - 60) * 5 / 1440
    assert m.scored_days == pytest.approx(scored_days)
    assert m.false_alerts_per_day == pytest.approx(2 / scored_days)


def test_unsorted_rows_are_scored_in_row_order() -> None:
    ts = stamps(200)
    ts[150], ts[151] = ts[151], ts[150]  # NAB's machine_temperature has such a glitch
    scores = [0.0] * 200
    scores[100] = 1.0
    windows = {"c/f.csv": [(ts[100], ts[119])]}
    assert nab.score_corpus({"c/f.csv": (ts, scores)}, windows).score == pytest.approx(100.0)


def test_errors_name_the_file_row_and_value(tmp_path: Path) -> None:
    results, windows = one_file([0.0, float("nan")] + [0.0] * 98, [])
    with pytest.raises(ValueError, match=r"c/f.csv: row 1 score nan"):
        nab.score_corpus(results, windows)
    with pytest.raises(ValueError, match="no entry in the windows"):
        nab.score_corpus({"other/x.csv": results["c/f.csv"]}, windows)
    with pytest.raises(ValueError, match="unknown NAB profile"):
        nab.score_corpus(*one_file([0.0] * 100, []), "strict")
    bad = tmp_path / "r.csv"
    bad.write_text("timestamp,value,anomaly_score\n2024-01-01 00:00:00,1,0.5\n2024-01-01 00:05:00,1,x\n")
    with pytest.raises(ValueError, match=r"r.csv: row 3 anomaly_score='x'"):
        nab.read_results_csv(bad)


def test_load_windows_and_profiles(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text('{"c/f.csv": [["2024-01-01 00:10:00.000000", "2024-01-01 00:20:00.000000"]], "c/g.csv": []}')
    w = nab.load_windows(path)
    assert w["c/g.csv"] == []
    assert w["c/f.csv"][0][0].isoformat() == "2024-01-01T00:10:00+00:00"
    prof = tmp_path / "p.json"
    prof.write_text('{"x": {"CostMatrix": {"tpWeight": 1, "fpWeight": 0.5, "fnWeight": 2, "tnWeight": 1}}}')
    assert nab.load_profiles(prof)["x"] == nab.Profile("x", 1.0, 0.5, 2.0)


def test_window_inside_probation_is_not_scored_but_weighs_later_false_positives() -> None:
    scores = [0.0] * 200  # probation: 30 rows
    scores[35] = 1.0
    got = nab.score_at(*one_file(scores, [(10, 19)]), "standard", 0.5)
    assert (got.windows, got.fp) == (0, 1)
    assert got.raw == pytest.approx(0.11 * nab.scaled_sigmoid(16 / 9))  # not -0.11
    assert math.isnan(got.score)  # no window to score: the normalised score is undefined
    ref = reference_sweep(*one_file(scores, [(10, 19)]), nab.PROFILES["standard"])
    assert ref[1] == pytest.approx(nab.score_corpus(*one_file(scores, [(10, 19)])).raw)
