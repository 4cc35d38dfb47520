"""``oddwatch eval logs --format thunderbird|bgl``: window-level metrics from per-line labels.

Runs on the vendored Thunderbird sample (tests/data/thunderbird_sample.log, loghub, all normal)
with a few labelled alert lines appended to one node.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from oddwatch.cli import main
from oddwatch.core.log_pipeline import LogParams
from oddwatch.evaluation.logs import evaluate_logs

DATA = Path(__file__).parent / "data"
ALERTS = [
    f"ECC {1131566580 + i} 2005.11.09 tbird-admin1 Nov 9 12:03:{i:02d} tbird-admin1/tbird-admin1 "
    f"kernel: EDAC k8 MC0: general bus error: participating processor(local node response), bank {i}"
    for i in range(5)
]


@pytest.fixture()
def labelled_log(tmp_path: Path) -> Path:
    path = tmp_path / "tbird.log"
    path.write_text((DATA / "thunderbird_sample.log").read_text() + "\n".join(ALERTS) + "\n")
    return path


def _params(**kw: object) -> LogParams:
    return LogParams(model="hashing", window_mode="tumbling", window_by="count", window_size_lines=10, warmup=3, **kw)


def test_window_labels_per_node_and_metrics(labelled_log: Path, tmp_path: Path) -> None:
    summary = evaluate_logs(labelled_log, fmt="thunderbird", params=_params(), out_dir=tmp_path / "out")
    assert summary["level"] == "window" and summary["lines"] == 305 and summary["labelled_lines"] == 5
    # tbird-admin1 has 105 normal lines, then the 5 alerts: its 11th window of 10 lines holds them
    assert summary["anomalous_windows"] == 1
    rows = list(csv.DictReader((tmp_path / "out" / "windows.csv").open()))
    labelled = [r for r in rows if r["label"] == "1"]
    assert [r["id"] for r in labelled] == ["tbird-admin1:count:100"]
    node = [r for r in rows if r["id"].startswith("tbird-admin1:")][1:]  # the first window meets an empty index
    assert max(node, key=lambda r: float(r["score"]))["id"] == "tbird-admin1:count:100"
    # the nodes learn as one fleet (warm after 3 of its windows, not 3 of each node's): a few of
    # the sample's rarer messages, first seen after that, page
    assert summary["recall"] == 1.0 and summary["false_alerts"] <= 8
    alone = evaluate_logs(labelled_log, fmt="thunderbird", params=_params(fleet="source"))
    assert alone["recall"] == 1.0 and alone["false_alerts"] == 0  # each node alone: its own warm-up
    assert {"precision", "f1", "false_alerts", "auprc", "best_f1", "alerts_per_hour"} <= set(summary)


def test_labels_never_reach_the_detector(labelled_log: Path) -> None:
    states: dict[str, Any] = {}
    evaluate_logs(labelled_log, fmt="thunderbird", params=_params(), states=states)
    texts = [t for st in states.values() for t in st.templates.miner.templates().values()]
    assert texts and not any(t.startswith(("ECC", "- ")) for t in texts)


def test_all_normal_sample_by_time_counts_false_alerts(tmp_path: Path) -> None:
    summary = evaluate_logs(DATA / "thunderbird_sample.log", fmt="thunderbird",
                            params=LogParams(model="hashing", window_mode="tumbling", window_by="time", window_size_s=60))
    assert summary["anomalous_windows"] == 0 and summary["false_alerts"] == summary["alerts"]


def test_session_labels_need_session_windows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--session-regex"):
        evaluate_logs(DATA / "hdfs_sample.log", labels=DATA / "hdfs_sample_labels.csv",
                      params=LogParams(model="hashing", window_mode="tumbling"))


def test_cli_thunderbird_windows_by_count(labelled_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[log_detector]\nmodel = "hashing"\nwarmup = 3\n')
    rc = main(["--config", str(cfg), "eval", "logs", str(labelled_log), "--format", "thunderbird",
               "--window-by", "count", "--window-size", "10", "--out", str(tmp_path / "o")])
    assert rc == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["params"]["window_size_lines"] == 10 and summary["anomalous_windows"] == 1
    assert '"level": "window"' in capsys.readouterr().out


def test_cli_session_labels_without_session_windows_is_a_clear_error(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["eval", "logs", str(DATA / "hdfs_sample.log"), "--labels", str(DATA / "hdfs_sample_labels.csv"),
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "--session-regex" in capsys.readouterr().err
