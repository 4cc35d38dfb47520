"""Readers of every labelled corpus the evaluations and the replay use.

- NAB: ``timestamp,value`` CSV series (:func:`iter_series`, :func:`find_series`) and the
  anomaly windows of ``labels/combined_windows.json`` (:func:`read_windows`);
- logs (:func:`read_log`): HDFS (``yymmdd hhmmss pid LEVEL component: message``), BGL and
  Thunderbird (the first token is the alert label, ``-`` for normal; then epoch seconds, a
  date and the node), JSON lines (``ts``, ``source``, ``msg``/``message``, ``label``) and raw
  lines; per-session labels (:func:`read_session_labels`, HDFS ``BlockId,Label``).

Naive timestamps are UTC (:func:`utc`). A log line's label is returned beside it and never
inside the message, so the detector cannot see it.

Examples
--------
>>> utc("2014-04-01 00:05:00").isoformat()
'2014-04-01T00:05:00+00:00'
>>> parse_log_line("- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond[2916]: x", "thunderbird")
CorpusLine(ts=1131566461.0, source='dn228', message='crond[2916]: x', label='')
>>> parse_log_line("KERNDTLB 1118 2005.06.03 R02-M1 2005-06-03-15.42.50.675872 R02-M1 RAS KERNEL FATAL x", "bgl")
CorpusLine(ts=1118.0, source='R02-M1', message='RAS KERNEL FATAL x', label='KERNDTLB')
>>> parse_log_line("081109 203530 147 INFO dfs.DataNode: Receiving blk_1", "hdfs").message
'INFO dfs.DataNode: Receiving blk_1'
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

LOG_FORMATS = ("hdfs", "bgl", "thunderbird", "jsonl", "raw")
NORMAL_LABELS = ("", "-", "normal", "0", "false")

# label, epoch, date, node, then the BGL full timestamp + node again or Thunderbird's "Mon d hh:mm:ss user@host"
_BGL = re.compile(r"^(\S+) (\d+(?:\.\d+)?) (\S+) (\S+) (\S+) (\S+) ?(.*)$")
_THUNDERBIRD = re.compile(r"^(\S+) (\d+(?:\.\d+)?) (\S+) (\S+) (\w{3}\s+\d{1,2} \d\d:\d\d:\d\d) (\S+) ?(.*)$")


class CorpusLine(NamedTuple):
    """One log line: event time (epoch seconds), source key, message, label (``""`` = normal)."""

    ts: float
    source: str
    message: str
    label: str


class SeriesRow(NamedTuple):
    """One row of a NAB series, with its CSV text for outputs that echo it."""

    ts: datetime
    value: float
    ts_text: str
    value_text: str


def utc(text: str) -> datetime:
    """An ISO 8601 timestamp as timezone-aware UTC; a naive one is taken as UTC."""
    ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# ---------------------------------------------------------------- NAB
def find_series(data_dir: str | Path) -> list[Path]:
    """The ``<category>/<file>.csv`` files under *data_dir* (or under ``data_dir/data``)."""
    root = Path(data_dir)
    files = sorted(root.glob("*/*.csv"))
    if not files and (root / "data").is_dir():
        files = sorted((root / "data").glob("*/*.csv"))
    return [f for f in files if not f.name.startswith("_")]  # _asset_alerts.csv: an eval output


def iter_series(path: str | Path) -> Iterator[SeriesRow]:
    """The rows of a ``timestamp,value`` CSV; ValueError names the file, row and value at fault."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["timestamp", "value"]:
            raise ValueError(f"{path}: header {header!r} is not timestamp,value")
        for row_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2:
                raise ValueError(f"{path} row {row_no}: {row!r} has no value column")
            try:
                ts = utc(row[0])
            except ValueError:
                raise ValueError(f"{path} row {row_no}: timestamp {row[0]!r} is not ISO 8601") from None
            try:
                value = float(row[1])
            except ValueError:
                raise ValueError(f"{path} row {row_no}: value {row[1]!r} is not a number") from None
            yield SeriesRow(ts, value, row[0], row[1])


def read_windows(path: str | Path) -> dict[str, list[tuple[datetime, datetime]]]:
    """NAB anomaly windows (``labels/combined_windows.json``) as sorted UTC (start, end) per file."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"NAB windows file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"NAB windows file {path} is not valid JSON: {exc}") from None
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for key, limits in raw.items():
        windows = []
        for limit in limits:
            try:
                start, end = (utc(v) for v in limit)
            except (TypeError, ValueError, AttributeError):
                raise ValueError(f"{path}: window {limit!r} of {key!r} is not [start, end]") from None
            windows.append((start, end))
        out[key] = sorted(windows)
    return out


# ---------------------------------------------------------------- logs
def parse_log_line(line: str, fmt: str, *, source: str = "logs", n: int = 0) -> CorpusLine:
    """One line of format *fmt* (see :data:`LOG_FORMATS`); ValueError when it does not parse.

    *source* is the key of formats without one (HDFS, raw) and *n* the line number, the time
    of raw lines.
    """
    line = line.rstrip("\r\n")
    if fmt == "hdfs":
        date, clock, _pid, rest = line.split(" ", 3)
        ts = datetime.strptime(date + clock, "%y%m%d%H%M%S").replace(tzinfo=UTC).timestamp()
        return CorpusLine(ts, source, rest, "")
    if fmt in ("bgl", "thunderbird"):
        m = (_THUNDERBIRD if fmt == "thunderbird" else _BGL).match(line)
        if m is None:
            raise ValueError(f"not a {fmt} line: {line[:80]!r}")
        label = m.group(1)
        return CorpusLine(float(m.group(2)), m.group(4), m.group(7), "" if label == "-" else label)
    if fmt == "jsonl":
        obj = json.loads(line)
        if not isinstance(obj, dict):
            raise ValueError(f"JSON line is not an object: {line[:80]!r}")
        raw = obj.get("ts", n)
        ts = utc(raw).timestamp() if isinstance(raw, str) else float(raw)
        label = str(obj.get("label", "") or "")
        return CorpusLine(ts, str(obj.get("source", source)), str(obj.get("msg", obj.get("message", ""))),
                          "" if label.strip().lower() in NORMAL_LABELS else label)
    if fmt == "raw":
        return CorpusLine(float(n), source, line, "")
    raise ValueError(f"log format {fmt!r} must be one of {LOG_FORMATS}")


def read_log(path: str | Path, fmt: str = "hdfs", source: str = "logs") -> Iterator[CorpusLine]:
    """Every parsable non-blank line of *path*, in file order; lines that do not parse are skipped."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r} must be one of {LOG_FORMATS}")
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                yield parse_log_line(line, fmt, source=source, n=n)
            except (ValueError, IndexError, TypeError, json.JSONDecodeError):
                continue


def read_session_labels(path: str | Path) -> dict[str, int]:
    """``id,label`` CSV (HDFS ``BlockId,Label``) -> {id: 1 if anomalous}; a header row is skipped."""
    out: dict[str, int] = {}
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if len(row) < 2 or row[0] in ("BlockId", "id"):
                continue
            out[row[0]] = 0 if row[1].strip().lower() in NORMAL_LABELS else 1
    return out
