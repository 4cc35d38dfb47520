"""Tests of oddwatch.core.feedback: parsing, points, messages and learning from false positives."""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
from datetime import datetime, timedelta

import pytest

from detectors.embedders import HashingEmbedder, TemplateEmbeddingCache
from oddwatch.core.feedback import (
    Feedback,
    apply_sensor_feedback,
    feedback_message,
    is_quiet,
    parse_feedback,
    route_key,
    split_alert_id,
    topic_prefix,
)
from oddwatch.core.log_pipeline import GroupNovelty, LogParams, WindowResult
from oddwatch.core.logsource import Decided, LogSourceState, RecentWindows, window_meta
from oddwatch.core.series import SeriesParams, SeriesState
from oddwatch.records import UTC, IngestError, Message, Reading
from oddwatch.schema import feedback_point
from oddwatch.settings import AlertSettings
from tests.stubs import Scripted

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AID = "s1/pump1/temp:1767225600"


def msg(payload: bytes | str, alert_id: str = AID, prefix: str = "oddwatch/feedback") -> Message:
    data = payload.encode() if isinstance(payload, str) else payload
    return Message(f"{prefix}/{alert_id}", data, T0)


# ---------------------------------------------------------------- parsing
@pytest.mark.parametrize(("payload", "verdict", "user", "comment"), [
    ('{"verdict": "false_positive", "user": "ana", "comment": "valve flush"}', "false_positive", "ana", "valve flush"),
    ('{"verdict": "true_positive"}', "true_positive", "", ""),
    ("ack", "ack", "", ""),
    ("False-Positive\n", "false_positive", "", ""),
    ('"tp"', "true_positive", "", ""),
])
def test_parse_feedback_ok(payload: str, verdict: str, user: str, comment: str) -> None:
    fb = parse_feedback(msg(payload))
    assert fb == Feedback(AID, verdict, user, comment, T0)


@pytest.mark.parametrize(("message", "reason", "needle"), [
    (msg("ack", alert_id="nope"), "unknown_topic", "'nope'"),
    (Message("other/s1/a/b:1", b"ack", T0), "unknown_topic", "prefix"),
    (msg("{bad json"), "bad_json", AID),
    (msg('{"verdict": 3}'), "bad_type", "verdict"),
    (msg('{"verdict": "maybe"}'), "bad_type", "'maybe'"),
    (msg('{"verdict": "ack", "user": 5}'), "bad_type", "user"),
    (msg(""), "empty", AID),
    (msg(b"\xff\xfe"), "bad_encoding", AID),
    (msg("x" * 5000), "too_large", AID),
])
def test_parse_feedback_errors_name_alert_and_value(message: Message, reason: str, needle: str) -> None:
    err = parse_feedback(message)
    assert isinstance(err, IngestError)
    assert err.reason == reason and needle in err.detail
    assert err.step == "parse_feedback" and err.stream == "feedback" and len(err.payload) <= 259


def test_ids_and_prefixes() -> None:
    assert split_alert_id("s1/web01/nginx:5") == ("s1/web01/nginx", 5)
    assert route_key(AID) == "s1/pump1/temp"
    for bad in ("s1/pump1:5", "s1/a/b:x", "s1//b:5", "budget:sensor:20260101T08", ""):
        with pytest.raises(ValueError, match="alert id"):
            route_key(bad)
    assert topic_prefix("oddwatch/feedback/+") == "oddwatch/feedback"
    assert parse_feedback(msg("ack", prefix="x/fb"), prefix="x/fb/").verdict == "ack"  # type: ignore[union-attr]


def test_feedback_point_and_message() -> None:
    fb = Feedback(AID, "false_positive", "ana", "flush", T0)
    p = feedback_point(fb, "s1", "sensor")
    assert p.measurement == "feedback" and p.ts == T0
    assert p.tags == {"site": "s1", "source": "sensor", "label": "false_positive"}
    assert p.fields == {"alert_id": AID, "user": "ana", "comment": "flush", "verdict": "false_positive", "count": 1.0}
    assert feedback_point(fb).tags["source"] == "unknown"
    m = feedback_message(AID, "false-positive", "ana", "flush", prefix="oddwatch/feedback")
    assert m.topic == f"oddwatch/feedback/{AID}" and m.qos == 1
    assert parse_feedback(Message(m.topic, m.payload, T0)) == fb
    with pytest.raises(ValueError, match="verdict 'meh'"):
        feedback_message(AID, "meh")
    with pytest.raises(ValueError, match="alert id"):
        feedback_message("bad", "ack")
    assert json.loads(m.payload) == {"verdict": "false_positive", "user": "ana", "comment": "flush"}


# ---------------------------------------------------------------- sensors
EPISODES = {1200: [0.62, 0.71, 0.74, 0.66], 2400: [0.64, 0.73, 0.72, 0.61]}  # the same glitch, twice


def _scores() -> list[float]:
    rng = random.Random(5)
    values = [rng.betavariate(2, 12) for _ in range(3000)]
    for start, pattern in EPISODES.items():
        values[start:start + len(pattern)] = pattern
    return values


def _sensor_run(feedback: bool, *, after_close: bool = False) -> tuple[list[tuple[int, str]], list[str]]:
    """A series with the same short glitch at i=1200 and i=2400; feedback on the first alert."""
    params = SeriesParams(warmup=300, q=0.999, min_threshold=0.5)
    if hasattr(params, "drift"):  # keep drift re-fits out of this test
        params.drift = False
    st = SeriesState("s1", "pump1", "temp", params, AlertSettings(open_after=2, close_after=10, cooldown_s=300.0))
    st.detector = Scripted(_scores(), expected=(49.0, 51.0))  # type: ignore[assignment]
    transitions: list[tuple[int, str]] = []
    notes: list[str] = []
    opened: tuple[int, str] | None = None
    for i in range(3000):
        out = st.step(Reading("s1", "pump1", "temp", T0 + timedelta(minutes=i), 50.0))
        if out.alert is not None:
            transitions.append((i, out.alert.kind))
            if out.alert.kind == "open":
                opened = (i, out.alert.alert_id)
            elif after_close:  # what SeriesState.recent_alerts holds
                st.recent_alerts = {out.alert.alert_id: float(out.alert.details["peak_score"])}  # type: ignore[attr-defined]
        fb_at = 30 if after_close else 3
        if feedback and opened is not None and i == opened[0] + fb_at and i < 2000:
            fb = Feedback(opened[1], "false_positive", "ana", "flush", T0 + timedelta(minutes=i))
            result = apply_sensor_feedback(st, fb)
            notes.append(str(result))
            if result.alert is not None:
                notes.append(f"{result.alert.kind} {result.alert.details['closed_by']}")
            st = pickle.loads(pickle.dumps(st))  # the state is snapshotted between items
    return transitions, notes


def test_sensor_false_positive_stops_the_same_pattern_alerting() -> None:
    control, _ = _sensor_run(False)
    assert [k for _, k in control] == ["open", "close", "open", "close"]  # it recurs without feedback
    learnt, notes = _sensor_run(True)
    assert learnt == [control[0]]  # opened once, closed quietly by the feedback, never again
    assert "(peak score 0.740): threshold floor of s1/pump1/temp 0.500 -> 0.760" in notes[0]
    assert "open alert closed" in notes[0] and notes[1] == "close feedback"


def test_sensor_false_positive_after_close_uses_recent_alerts() -> None:
    learnt, notes = _sensor_run(True, after_close=True)
    assert [k for _, k in learnt] == ["open", "close"]
    assert "open alert closed" not in notes[0] and "-> 0.760" in notes[0]


def test_sensor_real_detector_feedback_smoke() -> None:
    """With the real detector: a false positive raises the floor above the alert's peak."""
    rng = random.Random(5)
    st = SeriesState("s1", "pump1", "temp", SeriesParams(warmup=300),
                     AlertSettings(open_after=1, close_after=10, cooldown_s=300.0))
    for i in range(1300):
        v = 50 + math.sin(i / 30) + rng.gauss(0, 0.1) + (10 if 1200 <= i < 1206 else 0)
        out = st.step(Reading("s1", "pump1", "temp", T0 + timedelta(minutes=i), v))
        if out.alert is not None and out.alert.kind == "open":
            res = apply_sensor_feedback(st, Feedback(out.alert.alert_id, "false_positive", "", "", out.alert.ts))
            assert res.applied and res.alert is not None and not st.tracker.is_open
            assert st.calibration.min_threshold > out.score
            break
    else:
        pytest.fail("the +10 spike raised no alert")


def test_sensor_feedback_other_verdicts_and_unknown_alerts() -> None:
    st = SeriesState("s1", "pump1", "temp")
    res = apply_sensor_feedback(st, Feedback(AID, "true_positive", "", "", T0))
    assert not res.applied and "nothing learnt" in str(res)
    res = apply_sensor_feedback(st, Feedback(AID, "false_positive", "", "", T0))
    assert not res.applied and "no longer known" in str(res) and st.calibration.min_threshold == 0.5
    with pytest.raises(ValueError, match="routed to series 's1/pump1/temp'"):
        apply_sensor_feedback(st, Feedback("s1/pump2/temp:1", "false_positive", "", "", T0))


# ---------------------------------------------------------------- logs
NORMAL = ["user {u} logged in from 10.0.0.{n}", "GET /api/items/{n} 200 {ms}ms", "cache hit ratio {r}",
          "user {u} logged out"]


def _lines(rng: random.Random, anomaly: str | None = None) -> list[str]:
    out = [rng.choice(NORMAL).format(u=rng.choice("abcdef"), n=rng.randint(1, 250), ms=rng.randint(1, 90),
                                     r=round(rng.random(), 2)) for _ in range(10)]
    if anomaly:
        out[3:6] = [anomaly.format(d=rng.choice("abcd"), n=rng.randint(1, 9)) for _ in range(3)]
    return out


def test_log_false_positive_makes_similar_window_normal() -> None:
    params = LogParams(model="hashing", window_mode="tumbling", window_by="count", window_size_lines=10,
                       warmup=30, q=0.95)
    cache = TemplateEmbeddingCache(HashingEmbedder(dim=64))
    src = "s1/web01/app"
    state = LogSourceState(src, params, embeddings=cache)
    rng = random.Random(3)
    t = 1_767_225_600.0

    def window(anomaly: str | None = None, on: LogSourceState = state) -> list[WindowResult]:
        nonlocal t
        results = []
        for line in _lines(rng, anomaly):
            t += 1.0
            results += [o.result for o in on.step([(t, line)]) if isinstance(o, Decided)]
        return results

    for _ in range(120):
        window()
    flush = "disk /dev/sd{d} {n} flush completed after maintenance"
    first = window(flush) + window()
    anomalous = [r for r in first if r.is_anomaly]
    assert anomalous, [(r.score, r.threshold) for r in first]
    res = anomalous[0]
    meta = window_meta(res)
    assert meta["template_counts"] and meta["score"] == res.score
    alert_id = f"{src}:{int(res.end)}"
    assert state.tracker.is_open
    before = len(state.novelty.index)  # type: ignore[arg-type]
    control, rng_state, t_before = copy.deepcopy(state), rng.getstate(), t
    control.bind(cache)  # the state does not pickle its embeddings
    assert [r.is_anomaly for r in window(flush, control) + window(None, control)] == [True, False]
    rng.setstate(rng_state)
    t = t_before
    done = state.apply_feedback(Feedback(alert_id, "false_positive", "ana", "", T0))
    learnt, closed = done.results
    assert learnt.applied and "added to the normal index" in str(learnt)
    assert done.alert is not None and is_quiet(done.alert) and not state.tracker.is_open
    assert len(state.novelty.index) == before + 1  # type: ignore[arg-type]
    again = [r for r in window(flush) + window() if r.window_id != res.window_id]
    similar = again[0]
    assert similar.score < similar.threshold and not similar.is_anomaly
    # feedback survives a snapshot of the state
    assert len(pickle.loads(pickle.dumps(state)).novelty.index) == len(state.novelty.index)  # type: ignore[arg-type]


def test_log_feedback_without_state_or_other_verdict() -> None:
    state = LogSourceState("s1/h/a", LogParams(model="hashing"), embeddings=TemplateEmbeddingCache(HashingEmbedder()))
    done = state.apply_feedback(Feedback("s1/h/a:10", "false_positive", "", "", T0))
    assert not any(r.applied for r in done.results) and "nothing learnt" in str(done.results[0])
    assert done.alert is None and done.site == "s1"
    assert "noted; nothing learnt" in str(state.apply_feedback(Feedback("s1/h/a:10", "ack", "", "", T0)).results[0])
    with pytest.raises(ValueError, match="routed to log source 's1/h/a'"):
        state.apply_feedback(Feedback("s1/h/b:10", "ack", "", "", T0))
    assert GroupNovelty("s1/h/a").learn_normal({1: 2}, {}) is None  # no index yet: nothing to rebuild


def test_recent_windows_finds_the_windows_of_an_alert() -> None:
    rw = RecentWindows(capacity=5)
    rw.add({"window_id": "a", "end": 100.0}, opened_alert=True)
    rw.add({"window_id": "b", "end": 160.0})
    rw.add({"window_id": "c", "end": 300.0}, opened_alert=True)
    assert [m["window_id"] for m in rw.find("s/h/a:100")] == ["a", "b"]
    assert [m["window_id"] for m in rw.find("s/h/a:300")] == ["c"]
    assert rw.find("s/h/a:999") == []
    assert len(pickle.loads(pickle.dumps(rw))) == 3


# ---------------------------------------------------------------- sending, against real Mosquitto
def test_send_feedback_reaches_a_subscriber(services) -> None:  # type: ignore[no-untyped-def]
    import time
    import uuid

    from oddwatch.connectors.mqtt import MqttSource
    from oddwatch.feedback import send_feedback

    prefix = f"ow-fb-{uuid.uuid4().hex[:8]}/feedback"
    settings = services.settings(mqtt={"feedback_topic": f"{prefix}/#"})
    source = MqttSource(settings.mqtt, [settings.mqtt.feedback_topic], flow="feedback-test")
    part = source.build("in", 0, 1)
    try:
        assert source.wait_subscribed(10)
        sent = send_feedback(settings, AID, "false-positive", "ana", "valve flush")
        got: list[Message] = []
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got.extend(part.next_batch())
            time.sleep(0.02)
    finally:
        part.close()
    assert sent.topic == f"{prefix}/{AID}" and [m.topic for m in got] == [sent.topic]
    fb = parse_feedback(got[0], prefix=prefix)
    assert isinstance(fb, Feedback) and (fb.alert_id, fb.verdict, fb.user) == (AID, "false_positive", "ana")


def test_series_state_apply_feedback_is_the_log_side_shape() -> None:
    """``SeriesState.apply_feedback`` returns a ``FeedbackDone`` as ``LogSourceState.apply_feedback`` does."""
    st = SeriesState("s1", "pump1", "temp")
    fb = Feedback(AID, "true_positive", "", "", T0)
    done = st.apply_feedback(fb)
    assert done.feedback is fb and done.site == "s1" and done.alert is None
    assert [str(r) for r in done.results] == [str(apply_sensor_feedback(st, fb))]
