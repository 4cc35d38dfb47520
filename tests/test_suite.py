"""``oddwatch eval suite``: skipping what is not cached, the table, the JSON, make_benchmarks, a quick run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from oddwatch import datasets
from oddwatch.cli import main
from oddwatch.evaluation import suite


def test_data_sets_not_in_the_cache_are_skipped_with_the_fetch_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ODDWATCH_DATA", str(tmp_path / "empty"))
    out = tmp_path / "suite.json"
    assert main(["eval", "suite", "--only", "tep,streaming,hdfs", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "eval suite: tep: skipped: run `oddwatch datasets fetch tep`" in captured.err
    assert "| hdfs |" in captured.out and "oddwatch datasets fetch hdfs" in captured.out
    data = json.loads(out.read_text())
    assert set(data["datasets"]) == {"tep", "streaming", "hdfs"}
    assert all("skipped" in body for body in data["datasets"].values())


def test_unknown_data_set_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "suite", "--only", "nab,nope"]) == 2
    assert "unknown data set(s) nope" in capsys.readouterr().err


def test_table_fills_the_columns_that_apply() -> None:
    result = {"datasets": {"tep": {"seconds": 3.0, "rows": [
        {"name": "TEP faults detectable", "detected": 17, "total": 18, "delay_s": 540.0, "false_per_asset_day": 0.25,
         "note": "missed 21"}]}, "nab": {"skipped": "skipped: run `oddwatch datasets fetch nab`"}}}
    table = suite.format_table(result).splitlines()
    assert table[2] == "| TEP faults detectable | 17/18 | 9.0 min |  | 0.25 |  |  |  | missed 21 |"
    assert table[3].startswith("| nab |") and table[3].endswith("oddwatch datasets fetch nab` |")
    assert suite.format_timings(result) == "time per data set: tep 3 s"


def test_make_benchmarks_puts_the_suite_table_first(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_benchmarks", Path(__file__).resolve().parents[1] / "scripts" / "make_benchmarks.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = tmp_path / "results"
    results.mkdir()
    rows = [{"name": "plant simulator (seeds 1-10)", "detected": 49, "total": 50, "delay_s": 12.0,
             "false_per_asset_day": 4.5}]
    (results / "suite.json").write_text(json.dumps({"command": "oddwatch eval suite", "quick": False, "workers": 2,
                                                    "datasets": {"plant": {"seconds": 9.0, "rows": rows}}}))
    page = tmp_path / "benchmarks.md"
    mod.main(["--results", str(results), "--out", str(page), "--nab", str(tmp_path / "no_nab")])
    text = page.read_text()
    assert text.index("## Evaluation suite") < text.index("## Reproduce")
    assert "| plant simulator (seeds 1-10) | 49/50 | 12 s |  | 4.50 |" in text
    assert "time per data set: plant 9 s (2 worker processes)." in text


@pytest.mark.shared_data
@pytest.mark.slow
def test_quick_suite_on_the_cached_sensor_data(tmp_path: Path) -> None:
    cached = [n for n in ("nab", "tep", "streaming") if datasets.is_present(n)]
    if not cached:
        pytest.skip(datasets.missing_message("nab"))
    if "streaming" in cached:
        pytest.importorskip("pyarrow")
    result = suite.run_suite(only=cached, quick=True, log=lambda line: None)
    for name in cached:
        body = result["datasets"][name]
        assert body["seconds"] > 0 and body["rows"], name
        for row in body["rows"]:
            assert row.get("total") is None or 0 <= row["detected"] <= row["total"], row
    if "tep" in cached:
        (fault,) = result["datasets"]["tep"]["details"]["faults"]
        assert fault["fault"] == 1 and fault["readings"] == (500 + 960 + 960) * 52
        assert fault["normal_days"] == pytest.approx((500 + 960 + 160) * 180 / 86400)
    if "nab" in cached:
        own = [r["nab_own"] for r in result["datasets"]["nab"]["rows"] if r["nab_own"] is not None]
        assert own and all(-100 <= s <= 100 for s in own)
    table = suite.format_table(result)
    assert table.count("\n") >= 2 + sum(len(result["datasets"][n]["rows"]) for n in cached) - 1
