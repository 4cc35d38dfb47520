"""Quality of the log detector on HDFS, online from the first line, labels only to score.

``test_vendored_sample_*`` runs without benchmark data on ``tests/data/hdfs_sample.log``: the first
150 blocks (3,851 lines, 8 anomalous) of HDFS_v1 (loghub, see tests/data/LICENSE.loghub). It is
all cold start (the detector has seen nothing before), so only ranking and recall are checked.
The dev-set checks need the 5,750-block HDFS dev subset (``HDFS_dev.log``) in the cache folder
of ``oddwatch datasets fetch hdfs --from DIR`` and skip without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oddwatch import datasets
from oddwatch.core.log_pipeline import LogParams
from oddwatch.evaluation.logs import evaluate_logs

DATA = Path(__file__).parent / "data"
SHARED = datasets.path("hdfs")


def test_vendored_sample_core_runs_without_shared_data(tmp_path: Path) -> None:
    summary = evaluate_logs(
        DATA / "hdfs_sample.log", labels=DATA / "hdfs_sample_labels.csv",
        out_dir=tmp_path, params=LogParams(model="hashing"), session_regex=r"blk_-?\d+",
    )
    assert summary["labelled_sessions"] == 150 and summary["anomalous_sessions"] == 8
    assert summary["auroc"] >= 0.85
    assert summary["recall"] >= 0.75
    header = (tmp_path / "windows.csv").read_text().splitlines()[0]
    assert header == "id,start,end,lines,score,threshold,is_anomaly,label"
    assert (tmp_path / "summary.json").exists()


@pytest.fixture(scope="module")
def dev_summary(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not (SHARED / "HDFS_dev.log").exists():
        pytest.skip(datasets.missing_message("hdfs", "the HDFS_dev.log subset"))
    return evaluate_logs(
        SHARED / "HDFS_dev.log", labels=SHARED / "HDFS_dev_labels.csv",
        out_dir=tmp_path_factory.mktemp("hdfs"), params=LogParams(), session_regex=r"blk_-?\d+",
    )


@pytest.mark.slow
@pytest.mark.shared_data
def test_hdfs_dev_block_f1_of_alert_decisions(dev_summary: dict) -> None:
    # The defaults were chosen on the blocks first seen in the first half of HDFS_dev.log
    # (scripts/cv_hdfs.py); the second half is the held-out measure. Measured with the default
    # model, 2026-12-02: second half F1 0.879 (P 1.000, R 0.784), AUROC 1.000; whole file
    # F1 0.87.
    assert dev_summary["labelled_sessions"] == 5750
    held_out = dev_summary["second_half"]
    assert held_out["labelled_sessions"] > 2500
    assert held_out["f1"] >= 0.85
    assert held_out["precision"] >= 0.95
    assert held_out["auroc"] >= 0.99
