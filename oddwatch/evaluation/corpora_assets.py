"""Readers of multi-sensor corpora: the Tennessee Eastman process and the streaming bundle.

Both give :class:`AssetSeries`: one asset whose sensors are all read at each row's time, with
a 0/1 label per row. :meth:`AssetSeries.readings` yields them as live
:class:`~oddwatch.records.Reading` objects in time order (row by row, sensors in column
order), which is what :func:`oddwatch.evaluation.assets.replay_asset` consumes.

- Tennessee Eastman (Braatz's data, ``d00.dat``, ``d00_te.dat``, ``dNN_te.dat``): 52 variables
  (XMEAS 1-41, XMV 1-11), one row per 3 minutes. ``d00.dat`` is stored transposed (52 rows of
  500 columns); :func:`read_tep_file` turns it. :func:`tep_run` builds the online protocol of
  one fault: ``d00.dat`` then ``d00_te.dat`` as normal history, then ``dNN_te.dat`` whose
  fault starts at its row 161 (after 8 h).
- The streaming bundle (touchstone-rs, ``benchmark/*.parquet``): columns ``timestamp``, one or
  more value columns, ``is_anomaly``. An integer timestamp is a row index, read as one step
  of ``step_s`` seconds (60, the sampling interval of its server-machine series); text
  timestamps are parsed as UTC. Rows are put in time order. Parquet needs ``pyarrow``
  (``pip install 'oddwatch[eval]'``).

Examples
--------
>>> run = AssetSeries("a", ("x", "y"), np.array([0.0, 60.0]), np.array([[1.0, 2.0], [3.0, 4.0]]),
...                   np.array([0, 1], dtype=np.int8))
>>> [(r.sensor, r.value, r.ts.isoformat()) for r in run.readings("s")]
[('x', 1.0, '1970-01-01T00:00:00+00:00'), ('y', 2.0, '1970-01-01T00:00:00+00:00'), ('x', 3.0, '1970-01-01T00:01:00+00:00'), ('y', 4.0, '1970-01-01T00:01:00+00:00')]
>>> events(np.array([0, 1, 1, 0, 1], dtype=np.int8))
[(1, 2), (4, 4)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from oddwatch.records import Reading

TEP_SENSORS = tuple([f"xmeas_{i:02d}" for i in range(1, 42)] + [f"xmv_{i:02d}" for i in range(1, 12)])
TEP_STEP_S = 180.0  # one row per 3 minutes
TEP_FAULT_ROW = 160  # 0-based: the fault starts at row 161 of dNN_te.dat
TEP_FAULTS = tuple(range(1, 22))
TEP_HARD_FAULTS = (3, 9, 15)  # nearly invisible in these variables: reported apart
STREAMING_STEP_S = 60.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AssetSeries:
    """One asset of several sensors read together, one row per time.

    ``ts`` holds epoch seconds (float) per row, ``values`` rows x sensors, ``labels`` 0/1 per
    row; ``start`` is the first anomalous row of a run with one known onset (TEP), else None.
    """

    name: str
    sensors: tuple[str, ...]
    ts: np.ndarray
    values: np.ndarray
    labels: np.ndarray
    start: int | None = None

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])

    def readings(self, site: str, asset: str | None = None) -> Iterator[Reading]:
        """Every value as a :class:`Reading` of ``site/asset/sensor``, in time order."""
        asset = asset or self.name
        for i in range(self.rows):
            ts = EPOCH + timedelta(seconds=float(self.ts[i]))
            for j, sensor in enumerate(self.sensors):
                yield Reading(site, asset, sensor, ts, float(self.values[i, j]))


def events(labels: np.ndarray) -> list[tuple[int, int]]:
    """The runs of 1 in *labels* as inclusive (first row, last row) pairs."""
    flags = np.concatenate([[0], np.asarray(labels, dtype=np.int8) != 0, [0]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(flags))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


# ---------------------------------------------------------------- Tennessee Eastman
def read_tep_file(path: str | Path) -> np.ndarray:
    """One TEP data file as rows x 52 (``d00.dat``, stored 52 x 500, is transposed)."""
    try:
        data = np.loadtxt(path, ndmin=2)
    except OSError:
        raise FileNotFoundError(f"TEP file {path} does not exist: run `oddwatch datasets fetch tep`") from None
    except ValueError as exc:
        raise ValueError(f"TEP file {path} is not a whitespace-separated table of numbers: {exc}") from None
    if data.shape[1] != len(TEP_SENSORS) and data.shape[0] == len(TEP_SENSORS):
        data = data.T
    if data.shape[1] != len(TEP_SENSORS):
        raise ValueError(f"TEP file {path} has {data.shape[1]} columns, expected {len(TEP_SENSORS)}")
    return data


def tep_run(root: str | Path, fault: int) -> AssetSeries:
    """The online protocol of *fault* (1-21): d00.dat, d00_te.dat, then dNN_te.dat, 3 min apart.

    Labels are 1 from the fault's onset (row 161 of dNN_te.dat) to the end; ``start`` is that
    row in the joined run. Rows before it are normal operation.
    """
    if fault not in TEP_FAULTS:
        raise ValueError(f"TEP fault {fault!r} must be one of 1-21")
    root = Path(root)
    parts = [read_tep_file(root / "d00.dat"), read_tep_file(root / "d00_te.dat"),
             read_tep_file(root / f"d{fault:02d}_te.dat")]
    values = np.vstack(parts)
    start = parts[0].shape[0] + parts[1].shape[0] + TEP_FAULT_ROW
    labels = np.zeros(values.shape[0], dtype=np.int8)
    labels[start:] = 1
    ts = np.arange(values.shape[0], dtype=float) * TEP_STEP_S
    return AssetSeries(f"fault{fault:02d}", TEP_SENSORS, ts, values, labels, start)


# ---------------------------------------------------------------- streaming bundle
def find_streaming(root: str | Path) -> list[Path]:
    """The ``*.parquet`` series under *root* (or under ``root/benchmark``), sorted by name."""
    root = Path(root)
    files = sorted(root.glob("*.parquet"))
    return files or sorted((root / "benchmark").glob("*.parquet"))


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading the streaming bundle's parquet files needs pyarrow: "
                          "pip install 'oddwatch[eval]'") from None
    return pq


def _epoch_seconds(column: np.ndarray, step_s: float, path: Path) -> np.ndarray:
    if column.dtype.kind in "iuf":
        return column.astype(float) * step_s
    try:
        stamps = np.array([np.datetime64(str(t).strip().replace("Z", ""), "ns") for t in column])
    except ValueError:
        raise ValueError(f"{path}: timestamp {column[0]!r} is neither a row index nor ISO 8601") from None
    return (stamps - np.datetime64(0, "ns")).astype(np.int64) / 1e9


def read_streaming(path: str | Path, *, step_s: float = STREAMING_STEP_S) -> AssetSeries:
    """One series of the streaming bundle: every column but ``timestamp``/``is_anomaly`` is a sensor."""
    path = Path(path)
    table = _pyarrow_parquet().read_table(path)
    names = list(table.schema.names)
    missing = [c for c in ("timestamp", "is_anomaly") if c not in names]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r} (columns: {names[:6]})")
    sensors = tuple(n for n in names if n not in ("timestamp", "is_anomaly"))
    if not sensors:
        raise ValueError(f"{path}: no value column beside timestamp and is_anomaly")
    ts = _epoch_seconds(table.column("timestamp").to_numpy(zero_copy_only=False), step_s, path)
    values = np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(float) for n in sensors])
    labels = (table.column("is_anomaly").to_numpy(zero_copy_only=False).astype(float) != 0).astype(np.int8)
    order = np.argsort(ts, kind="stable")
    return AssetSeries(path.stem, sensors, ts[order], values[order], labels[order])
