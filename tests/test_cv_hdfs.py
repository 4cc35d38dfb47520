"""scripts/cv_hdfs.py on the vendored HDFS sample: the split by first line and the split metric."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from oddwatch.core.log_pipeline import LogParams
from oddwatch.evaluation.corpora import read_session_labels
from oddwatch.evaluation.logs import session_metrics

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
_spec = importlib.util.spec_from_file_location("cv_hdfs", ROOT / "scripts" / "cv_hdfs.py")
assert _spec is not None and _spec.loader is not None
cv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cv)


def test_blocks_split_by_their_first_line_and_scored_apart() -> None:
    toy = ["a blk_1\n", "b blk_2 blk_-3\n", "c blk_1\n", "d blk_4\n", "e blk_2\n", "f blk_5\n"]
    assert cv.halves(toy) == ({"blk_1", "blk_2", "blk_-3"}, {"blk_4", "blk_5"})
    lines = (DATA / "hdfs_sample.log").read_text().splitlines(keepends=True)
    labels = read_session_labels(DATA / "hdfs_sample_labels.csv")
    blocks = sorted(labels)
    first, second = set(blocks[::2]), set(blocks[1::2])
    params = LogParams(model="hashing", window_mode="session", session_regex=cv.SESSION)
    results, _seconds, n = cv.run(lines, params, None)
    assert n == 3851
    regex = re.compile(cv.SESSION)
    a = session_metrics(results, labels, regex, only=first)
    b = session_metrics(results, labels, regex, only=second)
    assert a["labelled_sessions"] + b["labelled_sessions"] == 150
    assert a["anomalous_sessions"] + b["anomalous_sessions"] == 8
    assert a["tp"] + b["tp"] == session_metrics(results, labels, regex)["tp"]
