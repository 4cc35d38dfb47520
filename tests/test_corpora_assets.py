"""Tests of the multi-sensor corpus readers (TEP, streaming bundle) on tiny samples built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from oddwatch.evaluation import corpora_assets as ca


def _write_tep(root: Path, rows_d00: int = 4, rows_te: int = 165) -> None:
    rng = np.random.default_rng(0)
    np.savetxt(root / "d00.dat", rng.normal(size=(52, rows_d00)))  # stored transposed
    np.savetxt(root / "d00_te.dat", rng.normal(size=(rows_te, 52)))
    np.savetxt(root / "d03_te.dat", np.arange(rows_te * 52, dtype=float).reshape(rows_te, 52))


def test_tep_run_joins_normal_history_then_the_fault(tmp_path: Path) -> None:
    _write_tep(tmp_path)
    assert ca.read_tep_file(tmp_path / "d00.dat").shape == (4, 52)
    run = ca.tep_run(tmp_path, 3)
    assert run.values.shape == (4 + 165 + 165, 52) and run.sensors[0] == "xmeas_01" and run.sensors[-1] == "xmv_11"
    assert run.start == 4 + 165 + 160
    assert run.labels[: run.start].sum() == 0 and run.labels[run.start:].all()
    assert run.values[4 + 165, 1] == 1.0  # dNN_te.dat row 1, column 2
    assert run.ts[1] - run.ts[0] == 180.0
    readings = list(run.readings("tep", "fault03"))
    assert len(readings) == run.rows * 52
    assert readings[52].sensor == "xmeas_01" and (readings[52].ts - readings[0].ts).total_seconds() == 180


def test_tep_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="oddwatch datasets fetch tep"):
        ca.tep_run(tmp_path, 1)
    np.savetxt(tmp_path / "d00.dat", np.zeros((3, 7)))
    with pytest.raises(ValueError, match="d00.dat has 7 columns, expected 52"):
        ca.read_tep_file(tmp_path / "d00.dat")
    with pytest.raises(ValueError, match="must be one of 1-21"):
        ca.tep_run(tmp_path, 22)


def test_streaming_reader_orders_rows_and_keeps_every_sensor(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    (tmp_path / "benchmark").mkdir()
    path = tmp_path / "benchmark" / "two.parquet"
    pq.write_table(pa.table({"timestamp": [2, 1, 0], "a": [3.0, 2.0, 1.0], "b": [30.0, 20.0, 10.0],
                             "is_anomaly": [1, 0, 0]}), path)
    assert ca.find_streaming(tmp_path) == [path]
    run = ca.read_streaming(path)
    assert run.name == "two" and run.sensors == ("a", "b")
    assert run.ts.tolist() == [0.0, 60.0, 120.0] and run.values[:, 1].tolist() == [10.0, 20.0, 30.0]
    assert run.labels.tolist() == [0, 0, 1] and ca.events(run.labels) == [(2, 2)]
    text = tmp_path / "text.parquet"
    pq.write_table(pa.table({"timestamp": ["1970-01-01 00:00:00.000000000", "1970-01-01 00:00:00.500000000"],
                             "MLII": [0.1, 0.2], "is_anomaly": [0, 1]}), text)
    assert ca.read_streaming(text).ts.tolist() == [0.0, 0.5]
    pq.write_table(pa.table({"timestamp": [0], "v": [1.0]}), text)
    with pytest.raises(ValueError, match="no column 'is_anomaly'"):
        ca.read_streaming(text)
