"""Tests of ``eval series`` (oddwatch/evaluation/series.py) on the vendored NAB sample."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from oddwatch.core.series import SeriesParams
from oddwatch.evaluation import nab
from oddwatch.evaluation.series import evaluate_series, format_summary, run_file
from oddwatch.settings import AlertSettings

SAMPLE = Path(__file__).parent / "data" / "nab"
KEYS = ["artificialWithAnomaly/art_daily_jumpsup.csv", "realKnownCause/rogue_agent_key_hold.csv"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("eval_series")
    summary = evaluate_series(SAMPLE / "data", SAMPLE / "labels" / "combined_windows.json", out,
                              progress=False, quiet=True)
    return summary, out


def test_writes_one_output_row_per_input_row_in_order(evaluated: tuple[dict, Path]) -> None:
    _, out = evaluated
    for key in KEYS:
        with open(SAMPLE / "data" / key, newline="") as f:
            src = list(csv.reader(f))
        with open(out / key, newline="") as f:
            got = list(csv.reader(f))
        assert got[0] == ["timestamp", "value", "anomaly_score", "is_anomaly"]
        assert len(got) == len(src)
        assert [r[:2] for r in got[1:]] == src[1:]
        assert all(0.0 <= float(r[2]) <= 1.0 and r[3] in ("0", "1") for r in got[1:])


def test_summary_json_matches_a_rescoring_of_the_output_files(evaluated: tuple[dict, Path]) -> None:
    summary, out = evaluated
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["files"] == 2
    assert summary["rows"] == 4032 + 1882
    assert summary["events"]["windows"] == 3
    windows = nab.load_windows(SAMPLE / "labels" / "combined_windows.json")
    scores = nab.load_results_dir(out)
    flags = nab.load_results_dir(out, column="is_anomaly")
    for name in nab.PROFILES:
        oracle = nab.score_corpus(scores, windows, name)
        own = nab.score_decisions(flags, windows, name)
        assert summary["nab"][name]["oracle"]["score"] == pytest.approx(oracle.score)
        assert summary["nab"][name]["decisions"]["score"] == pytest.approx(own.score)
    assert summary["no_anomaly"] == {"files": 0, "alerts": 0, "per_file": {}}
    assert summary["rows_per_s"] > 0
    assert "rows/s" in format_summary(summary)


def test_settings_reach_the_pipeline(tmp_path: Path) -> None:
    src = SAMPLE / "data" / KEYS[1]
    quiet = run_file(src, None, SeriesParams(min_threshold=1.01), AlertSettings())
    assert quiet["is_anomaly"].sum() == 0  # no score reaches a threshold above 1
    assert (quiet["key"], quiet["rows"]) == (KEYS[1], 1882)
    assert not list(tmp_path.iterdir())  # out_path=None writes nothing
    summary = evaluate_series(SAMPLE / "data", None, tmp_path / "out", series_params={"min_threshold": 1.01},
                              progress=False, quiet=True)
    assert summary["events"]["alerts"] == 0
    assert summary["series_params"]["min_threshold"] == 1.01


def test_bad_input_names_the_file_row_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "data" / "cat" / "x.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text("timestamp,value\n2024-01-01 00:00:00,1.0\n2024-01-01 00:05:00,abc\n")
    labels = tmp_path / "w.json"
    labels.write_text('{"cat/x.csv": []}')
    with pytest.raises(ValueError, match=r"x.csv row 3: value 'abc' is not a number"):
        evaluate_series(tmp_path / "data", labels, tmp_path / "out", progress=False, quiet=True)
    labels.write_text("{}")
    with pytest.raises(ValueError, match="has no windows for"):
        evaluate_series(tmp_path / "data", labels, tmp_path / "out", progress=False, quiet=True)
    with pytest.raises(ValueError, match="unknown series parameter"):
        evaluate_series(SAMPLE / "data", None, tmp_path / "out", series_params={"nope": 1}, quiet=True)


def test_make_benchmarks_renders_the_summary(evaluated: tuple[dict, Path], tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_benchmarks", Path(__file__).resolve().parents[1] / "scripts" / "make_benchmarks.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    summary, out = evaluated
    results = tmp_path / "results"
    (results / "nab").mkdir(parents=True)
    (results / "nab" / "summary.json").write_text(json.dumps(summary))
    (results / "bench-x.json").write_text('{"command": "python scripts/bench_x.py", "rows_per_s": 12345.6}')
    page = tmp_path / "benchmarks.md"
    mod.main(["--results", str(results), "--out", str(page), "--nab", str(tmp_path / "no_nab")])
    text = page.read_text()
    standard = summary["nab"]["standard"]["oracle"]["score"]
    assert f"| oddwatch, oracle threshold | {standard:.2f} |" in text
    assert "| Numenta HTM (published) | 66.59 | 60.81 | 71.06 |" in text
    assert "ARTime | – |" in text  # reference output absent: not typed in
    assert "| rows_per_s | 12,346 |" in text
    assert "python scripts/bench_x.py" in text
    assert "CPUs" in text
