"""Tests for oddwatch.replay: file reading and encoding, and a real replay over Mosquitto."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from oddwatch import datasets
from oddwatch.records import UTC
from oddwatch.replay import ReplayError, iter_payloads, replay
from oddwatch.settings import Settings

NAB_A = "timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,2.5\n2014-04-01 00:10:00,-3\n"
NAB_B = "timestamp,value\n2014-04-01 00:02:00,10\n2014-04-01 00:07:00,20\n"
HDFS = (
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_1 src: /10.0.0.1:1 dest: /10.0.0.1:2\n"
    "\n"
    "081109 203519 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /x. blk_2\n"
    "081109 203520 143 WARN dfs.DataNode: slow write blk_1\n"
)
SYSLOG = ("<13>Jun 14 15:16:01 combo sshd[19939]: authentication failure; rhost=218.188.2.4\n"
          "Jun 14 15:16:02 combo su(pam_unix)[2]: session opened for user cyrus\n")


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self.sent.append((topic, payload if isinstance(payload, bytes) else payload.encode()))

    def wait_all(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


@pytest.fixture
def nab_dir(tmp_path: Path) -> Path:
    (tmp_path / "nab" / "realTest").mkdir(parents=True)
    (tmp_path / "nab" / "realTest" / "series_a.csv").write_text(NAB_A)
    (tmp_path / "nab" / "realTest" / "series b.csv").write_text(NAB_B)
    return tmp_path / "nab"


def test_nab_folder_merged_in_time_order(nab_dir: Path) -> None:
    pairs = list(iter_payloads(nab_dir, fmt="nab"))
    assert [t for t, _ in pairs] == ["plant/nab/realTest/series_a", "plant/nab/realTest/series_b"] * 2 + [
        "plant/nab/realTest/series_a"]
    assert json.loads(pairs[0][1]) == {"ts": "2014-04-01T00:00:00Z", "value": 1.5}
    assert json.loads(pairs[-1][1]) == {"ts": "2014-04-01T00:10:00Z", "value": -3.0}


def test_topic_template_and_errors(nab_dir: Path, tmp_path: Path) -> None:
    pairs = list(iter_payloads(nab_dir / "realTest" / "series_a.csv", fmt="nab",
                               topic_template="plant/{category}/x/{name}"))
    assert pairs[0][0] == "plant/realTest/x/series_a"
    with pytest.raises(ReplayError, match="does not exist"):
        list(iter_payloads(tmp_path / "missing.csv"))
    with pytest.raises(ReplayError, match="topic_template"):
        list(iter_payloads(nab_dir, topic_template="plant/{nope}"))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ReplayError, match="timestamp,value"):
        list(iter_payloads(bad))
    with pytest.raises(ReplayError, match="fmt"):
        replay(bad, Settings(), fmt="xml", publisher=FakePublisher())


def test_bgl_label_is_stripped(tmp_path: Path) -> None:
    f = tmp_path / "BGL.log"
    f.write_text("KERNDTLB 1117838570 2005.06.03 R02-M1 2005-06-03-15.42.50.675872 R02-M1 RAS KERNEL FATAL x\n")
    ((topic, payload),) = iter_payloads(f, fmt="bgl")
    assert topic == "logs/replay/BGL/bgl" and payload.startswith(b"1117838570 ")


def test_thunderbird_sample_replays_without_labels() -> None:
    sample = Path(__file__).parent / "data" / "thunderbird_sample.log"
    pairs = list(iter_payloads(sample, fmt="thunderbird"))
    assert len(pairs) == 300 and {t for t, _ in pairs} == {"logs/replay/thunderbird_sample/thunderbird"}
    assert pairs[0][1].startswith(b"1131566461 2005.11.09 dn228 ")


def test_shift_to_now_restamps_syslog_and_paces(tmp_path: Path) -> None:
    f = tmp_path / "auth.log"
    f.write_text(SYSLOG)
    pub = FakePublisher()
    before = datetime.now(UTC)
    summary = replay(f, Settings(), fmt="syslog", speed=4.0, shift_to_now=True, publisher=pub)
    assert summary["published"] == 2 and 0.2 < summary["elapsed_s"] < 1.0  # 1 s of data at 4x
    assert pub.sent[0][1].startswith(b"<13>" + f"{before:%b} {before.day:>2}".encode())
    assert pub.sent[0][1].endswith(b"sshd[19939]: authentication failure; rhost=218.188.2.4")
    first = datetime.fromisoformat(summary["first_ts"])
    assert abs((first - before).total_seconds()) < 2


def test_loop_and_max_messages(nab_dir: Path) -> None:
    pub = FakePublisher()
    summary = replay(nab_dir / "realTest" / "series_a.csv", Settings(), fmt="nab", shift_to_now=False, loop=True,
                     max_messages=7, publisher=pub)
    assert summary["published"] == 7
    stamps = [json.loads(p)["ts"] for _, p in pub.sent]
    assert stamps == sorted(stamps) and len(set(stamps)) == 7  # later rounds are shifted in time


def _subscribe(host: str, port: int, topic: str, count: int) -> subprocess.Popen[str]:
    sub = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
    proc = subprocess.Popen([sub, "-h", host, "-p", str(port), "-t", topic, "-q", "1", "-C", str(count),
                             "-W", "20", "-F", "%t %p"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # let the subscription settle before publishing
    return proc


def _received(proc: subprocess.Popen[str]) -> list[tuple[str, str]]:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"mosquitto_sub exited {proc.returncode}: {err}"
    return [tuple(line.split(" ", 1)) for line in out.splitlines()]  # type: ignore[misc]


@pytest.mark.skipif(not (shutil.which("mosquitto_sub") or Path("/usr/bin/mosquitto_sub").exists()),
                    reason="mosquitto_sub is not installed: sudo apt-get install -y mosquitto-clients")
def test_replay_over_mqtt(services, unique: str, nab_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = services.settings()
    expected = list(iter_payloads(nab_dir, fmt="nab", topic_template=f"plant/{unique}/{{category}}/{{name}}"))
    proc = _subscribe(services.mqtt_host, services.mqtt_port, f"plant/{unique}/#", len(expected))
    summary = replay(nab_dir, settings, fmt="nab", topic_template=f"plant/{unique}/{{category}}/{{name}}",
                     shift_to_now=False, rate_limit=1000)
    assert summary["published"] == 5 and summary["flushed"] and summary["topics"] == 2
    got = _received(proc)
    assert got == [(t, p.decode()) for t, p in expected]

    log = tmp_path / "HDFS_tiny.log"
    log.write_text(HDFS)
    proc = _subscribe(services.mqtt_host, services.mqtt_port, f"logs/{unique}/#", 3)
    before = time.monotonic()
    summary = replay(log, settings, fmt="hdfs", site=unique, speed=10.0)
    assert summary["published"] == 3 and time.monotonic() - before >= 0.18  # 2 s of log at 10x
    got = _received(proc)
    lines = [ln for ln in HDFS.splitlines() if ln]
    assert got == [(f"logs/{unique}/HDFS_tiny/hdfs", ln) for ln in lines]


def test_progress_bar_on_stderr(nab_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    replay(nab_dir, Settings(), fmt="nab", progress=True, publisher=FakePublisher())
    err = capsys.readouterr().err
    assert "replay nab" in err and "5/5" in err and "100.0%" in err


def test_shift_to_now_fast_stamps_are_live(nab_dir: Path) -> None:
    pub = FakePublisher()
    replay(nab_dir, Settings(), fmt="nab", speed=None, shift_to_now=True, publisher=pub)
    now = datetime.now(UTC)
    for _, payload in pub.sent:
        ts = datetime.fromisoformat(json.loads(payload)["ts"])
        assert now - timedelta(seconds=5) <= ts <= now


def test_jsonl_restamped_and_bad_lines_kept(tmp_path: Path) -> None:
    f = tmp_path / "app.jsonl"
    f.write_text('{"ts": "2015-01-01T00:00:00Z", "msg": "a"}\nnot json\n{"msg": "b", "time": 1420070401}\n')
    pub = FakePublisher()
    summary = replay(f, Settings(), fmt="jsonl", publisher=pub)
    assert summary["published"] == 3 and summary["topics"] == 1
    first, bad, third = (p for _, p in pub.sent)
    assert json.loads(first)["ts"].startswith(str(datetime.now(UTC).year)) and json.loads(first)["msg"] == "a"
    assert bad == b"not json"
    assert json.loads(third)["time"].startswith(str(datetime.now(UTC).year))


def test_log_folder_merged_undated_lines_follow_their_predecessor(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("Jun 14 15:16:01 h1 app: a1\n  continuation of a1\nJun 14 15:16:05 h1 app: a2\n")
    (tmp_path / "logs" / "b.log").write_text("Jun 14 15:16:03 h2 app: b1\n")
    pairs = list(iter_payloads(tmp_path / "logs", fmt="syslog"))
    assert [p.decode().split(": ")[-1].strip() for _, p in pairs] == ["a1", "continuation of a1", "b1", "a2"]
    assert [t for t, _ in pairs] == ["logs/replay/a/syslog"] * 2 + ["logs/replay/b/syslog", "logs/replay/a/syslog"]


@pytest.mark.shared_data
@pytest.mark.skipif(not (datasets.is_present("nab") and datasets.hdfs_files()[0].exists()),
                    reason="; ".join(datasets.missing_message(n) for n in ("nab", "hdfs")))
def test_real_nab_and_hdfs_files_parse() -> None:
    nab = datasets.path("nab") / "data" / "realKnownCause" / "ambient_temperature_system_failure.csv"
    pairs = list(iter_payloads(nab))
    assert len(pairs) == len(nab.read_text().splitlines()) - 1
    assert pairs[0][0] == "plant/nab/realKnownCause/ambient_temperature_system_failure"
    log = datasets.hdfs_files()[0]
    hdfs = list(itertools.islice(iter_payloads(log, fmt="hdfs"), 1000))
    assert len(hdfs) == 1000 and all(t == f"logs/replay/{log.stem}/hdfs" for t, _ in hdfs)
