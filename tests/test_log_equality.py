"""The log dataflow and ``oddwatch eval logs`` make the same decisions.

One recorded stream per window kind goes through the Bytewax flow (testing source and sinks,
event time only: idle closing by wall clock is pushed out of reach) and through the
evaluator's driver (:func:`oddwatch.evaluation.logs.decide_lines`): every window's score,
threshold and decision, and every alert opened or closed, must be identical.

- HDFS sessions: ``tests/data/hdfs_sample.log`` (session windows by block id);
- a syslog-like sshd stream in 60 s tumbling windows with a new kernel error, a burst of a
  known message and a 20 minute silence.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from detectors.embedders import HashingEmbedder, TemplateEmbeddingCache
from flows.logs import SubscriptionParams, build_flow
from oddwatch.core.logsource import Decided, LogOutput
from oddwatch.evaluation.corpora import read_log
from oddwatch.evaluation.logs import decide_lines
from oddwatch.records import UTC, Alert, Message, Outgoing, Point
from oddwatch.schema import alert_json
from oddwatch.settings import Settings, Subscription

DATA = Path(__file__).parent / "data"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
SSHD = "s1/web1/sshd"
HDFS = "s1/dn1/hdfs"
NORMAL = [
    "Accepted password for user{u} from 10.0.0.{u} port 22",
    "session opened for user user{u} by (uid=0)",
    "session closed for user user{u}",
]


def _sshd() -> list[tuple[float, str]]:
    lines: list[tuple[float, str]] = []
    shift = 0.0
    for w in range(200):
        if w == 170:
            shift = 1200.0  # 20 minutes without a line before window 170
        body = [t.format(u=(w * 7 + i) % 50) for i, t in enumerate(NORMAL)] + ["Connection closed by 10.0.0.9"] * (w % 2)
        if w == 120:
            body += ["kernel: EXT4-fs error (device sda1): ext4_find_entry: reading directory lblock 0"] * 3
        if w == 150:
            body += ["Connection closed by 10.0.0.9"] * 40
        base = T0.timestamp() + 60.0 * w + shift
        lines += [(base + 50.0 * i / len(body), line) for i, line in enumerate(body)]
    return [(datetime.fromtimestamp(ts, UTC).timestamp(), line) for ts, line in lines]  # as recorded: µs


def _hdfs() -> list[tuple[float, str]]:
    return [(ts, msg) for ts, _, msg, _ in read_log(DATA / "hdfs_sample.log", "hdfs")]


def _settings() -> Settings:
    s = Settings()
    s.logs.max_past_s = 1e12
    s.logs.subscriptions = [
        Subscription("logs/+/+/+", "_/site/host/app", window_mode="tumbling", window_by="time", window_size_s=60.0),
        Subscription("hdfs/+/+/+", "_/site/host/app"),
    ]
    s.log_detector.model = "hashing"
    s.log_detector.warmup = 30
    s.alerts.budget_per_source_per_hour = s.alerts.budget_global_per_hour = 100_000  # nothing held
    return s


def _messages(topic: str, lines: list[tuple[float, str]]) -> list[Message]:
    out = []
    for ts, line in lines:
        when = datetime.fromtimestamp(ts, UTC)
        out.append(Message(topic, json.dumps({"ts": when.isoformat(), "msg": line}).encode(), when))
    return out


def _window_rows(points: list[Point]) -> dict[str, tuple[float, float, bool]]:
    return {str(p.fields["window_id"]): (float(p.fields["novelty"]), float(p.fields["threshold"]),
                                         bool(p.fields["is_anomaly"]))
            for p in points if p.measurement == "log_window"}


def _alert_rows(alerts: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((a["alert_id"], a["kind"], json.dumps(a, sort_keys=True)) for a in alerts)


@pytest.fixture(scope="module")
def both() -> dict[str, Any]:
    settings = _settings()
    streams = {SSHD: ("logs/s1/web1/sshd", _sshd()), HDFS: ("hdfs/s1/dn1/hdfs", _hdfs())}
    msgs = [m for topic, lines in streams.values() for m in _messages(topic, lines)]
    points: list[Point] = []
    out: list[Outgoing] = []
    run_main(build_flow(settings, source=TestingSource(msgs, batch_size=32), influx_sink=TestingSink(points),
                        mqtt_sink=TestingSink(out), embedder=HashingEmbedder(dim=64), idle_check_s=3600.0))
    flow_alerts = [json.loads(m.payload) for m in out if m.topic.startswith(settings.mqtt.alerts_prefix + "/")]

    params_of = SubscriptionParams(settings)
    cache = TemplateEmbeddingCache(HashingEmbedder(dim=64))
    outputs: list[LogOutput] = []
    for key, (topic, lines) in streams.items():
        outputs += decide_lines(((ts, key, line) for ts, line in lines), params_of(topic), cache,
                                alerts=settings.alerts, batch_lines=100)
    windows = {o.result.window_id: (o.result.score, o.result.threshold, o.result.is_anomaly)
               for o in outputs if isinstance(o, Decided)}
    return {"flow_windows": _window_rows(points), "eval_windows": windows,
            "flow_alerts": flow_alerts, "eval_alerts": [alert_json(o) for o in outputs if isinstance(o, Alert)]}


def test_every_window_has_the_same_score_threshold_and_decision(both: dict[str, Any]) -> None:
    flow, ev = both["flow_windows"], both["eval_windows"]
    assert len(ev) > 300 and sum(1 for w in ev if w.startswith(SSHD)) == 200
    assert flow == ev


def test_every_alert_opens_and_closes_alike(both: dict[str, Any]) -> None:
    flow, ev = both["flow_alerts"], both["eval_alerts"]
    assert _alert_rows(flow) == _alert_rows(ev)


def test_the_streams_hold_a_new_message_a_burst_and_a_silence(both: dict[str, Any]) -> None:
    opens = [a for a in both["eval_alerts"] if a["kind"] == "open"]
    sshd = [a["text"] for a in opens if a["alert_id"].startswith(SSHD)]
    assert any("new log message" in t and "EXT4-fs error" in t for t in sshd), sshd
    assert any(t.startswith("Burst on s1/web1/sshd: 'Connection closed by") and "40 times" in t for t in sshd), sshd
    assert any(t.startswith("s1/web1/sshd was silent from its line at 2026-03-01 02:49:37Z until "
                            "2026-03-01 03:10:00Z: 1222 s without a log line") for t in sshd), sshd
    assert any(a["alert_id"].startswith(HDFS) for a in opens)
    assert any(a["kind"] == "close" for a in both["eval_alerts"])


def test_eval_logs_honours_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from oddwatch.cli import main

    config = tmp_path / "oddwatch.toml"
    config.write_text('[log_detector]\nmodel = "hashing"\nwarmup = 7\n\n[alerts]\nlog_close_after = 2\n')
    session = ["--session-regex", r"blk_-?\d+"]
    for argv in (["eval", "logs", str(DATA / "hdfs_sample.log"), *session, "--out", str(tmp_path / "a"), "--config", str(config)],
                 ["--config", str(config), "eval", "logs", str(DATA / "hdfs_sample.log"), *session, "--out", str(tmp_path / "b")]):
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["params"]["model"] == "hashing" and summary["params"]["warmup"] == 7
        assert summary["windows"] > 500 and summary["alerts_opened"] >= 1
