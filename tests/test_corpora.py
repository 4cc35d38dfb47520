"""Tests of the corpus readers (oddwatch.evaluation.corpora) on the vendored samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oddwatch.evaluation import corpora

DATA = Path(__file__).parent / "data"


def test_nab_series_and_windows() -> None:
    files = corpora.find_series(DATA / "nab")
    assert [f.name for f in files] == ["art_daily_jumpsup.csv", "rogue_agent_key_hold.csv"]
    rows = list(corpora.iter_series(files[0]))
    assert len(rows) == 4032
    assert rows[0].ts.isoformat() == "2014-04-01T00:00:00+00:00" and rows[0].ts_text == "2014-04-01 00:00:00"
    assert isinstance(rows[0].value, float)
    windows = corpora.read_windows(DATA / "nab" / "labels" / "combined_windows.json")
    (start, end), = windows["artificialWithAnomaly/art_daily_jumpsup.csv"]
    assert start.tzinfo is not None and start < end


def test_nab_errors_name_file_row_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n")
    with pytest.raises(ValueError, match=r"x.csv row 3: value 'abc' is not a number"):
        list(corpora.iter_series(bad))
    bad.write_text("time,v\n")
    with pytest.raises(ValueError, match="is not timestamp,value"):
        list(corpora.iter_series(bad))
    bad.write_text('{"a.csv": [["2014-01-01", 5]]}')
    with pytest.raises(ValueError, match="is not \\[start, end\\]"):
        corpora.read_windows(bad)


def test_naive_time_is_utc() -> None:
    assert corpora.utc("2014-04-01T00:05:00Z") == corpora.utc("2014-04-01 00:05:00")
    assert corpora.utc("2014-04-01T02:05:00+02:00").isoformat() == "2014-04-01T00:05:00+00:00"


def test_hdfs_lines_and_block_labels() -> None:
    lines = list(corpora.read_log(DATA / "hdfs_sample.log", "hdfs", source="hdfs"))
    assert len(lines) == 3851
    assert lines[0].source == "hdfs" and lines[0].label == "" and lines[0].message.startswith("INFO dfs.")
    assert lines[0].ts == 1226262930.0  # 081109 203530 UTC
    labels = corpora.read_session_labels(DATA / "hdfs_sample_labels.csv")
    assert len(labels) == 150 and sum(labels.values()) == 8


def test_thunderbird_node_is_the_source_and_the_label_never_in_the_message() -> None:
    lines = list(corpora.read_log(DATA / "thunderbird_sample.log", "thunderbird"))
    assert len(lines) == 300 and all(line.label == "" for line in lines)
    assert lines[0] == corpora.CorpusLine(1131566461.0, "dn228", "crond(pam_unix)[2915]: session closed for user root", "")
    alert = "VAPI 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 kernel: x"
    parsed = corpora.parse_log_line(alert, "thunderbird")
    assert (parsed.label, parsed.message) == ("VAPI", "kernel: x")


def test_bgl_jsonl_raw_and_bad_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bgl.log"
    path.write_text(
        "- 1117838570 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.675872 R02-M1-N0 RAS KERNEL INFO ok\n"
        "not a bgl line\n\n"
        "APPREAD 1117838571 2005.06.03 R02-M1-N1 2005-06-03-15.42.51.675872 R02-M1-N1 RAS APP FATAL bad\n"
    )
    got = list(corpora.read_log(path, "bgl"))
    assert [(g.source, g.message, g.label) for g in got] == [
        ("R02-M1-N0", "RAS KERNEL INFO ok", ""), ("R02-M1-N1", "RAS APP FATAL bad", "APPREAD")]
    js = tmp_path / "x.jsonl"
    js.write_text(json.dumps({"ts": "2024-01-01T00:00:00Z", "source": "a", "msg": "m", "label": "Normal"}) + "\n[1]\n"
                  + json.dumps({"ts": 5, "message": "n", "label": "oom"}) + "\n")
    assert list(corpora.read_log(js, "jsonl", source="d")) == [
        corpora.CorpusLine(1704067200.0, "a", "m", ""), corpora.CorpusLine(5.0, "d", "n", "oom")]
    assert list(corpora.read_log(js, "raw"))[1] == corpora.CorpusLine(1.0, "logs", "[1]", "")
    with pytest.raises(ValueError, match="must be one of"):
        list(corpora.read_log(js, "syslog"))
