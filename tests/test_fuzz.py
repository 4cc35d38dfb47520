"""Fuzzed input through both dataflows (Bytewax testing source): random bytes, invalid UTF-8,
control and lone surrogate characters, huge and nested JSON, huge lines. Neither flow stops,
every bad message becomes an ``ingest_error`` (and a dead letter), and every good message sent
after them is scored. ``scripts/bench_fuzz.py`` runs the same with 100,000 messages."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from bytewax.testing import TestingSink, TestingSource, run_main

from detectors.embedders import HashingEmbedder
from flows import logs as log_flow
from flows import sensors as sensor_flow
from oddwatch.fuzz import fuzz_messages, good_messages
from oddwatch.records import IngestError, Message, Outgoing, Point, utcnow, valid_text
from oddwatch.settings import Settings


class TokenizerLike(HashingEmbedder):
    """Refuses what the Rust tokenizers of sentence-transformers refuse (a text that is not a
    ``str`` or holds a lone surrogate: ``TypeError: TextEncodeInput must be Union[...]``), and
    one poison word, standing for any other model failure."""

    def encode(self, texts: list[str]) -> np.ndarray:
        for text in texts:
            if not isinstance(text, str) or "poison" in text:
                raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, "
                                "InputSequence]]") from None
        return super().encode(texts)


def _split(msgs: list[Message]) -> tuple[list[Message], list[Message]]:
    return [m for m in msgs if m.topic.startswith("plant")], [m for m in msgs if m.topic.startswith("logs")]


def test_valid_text_replaces_lone_surrogates_only() -> None:
    assert valid_text("a\ud800b\udfff \U0001f600") == "a\ufffdb\ufffd \U0001f600"
    assert IngestError("log", "s", "r", "t\ud800", "p\udc80", "d\ud83d", utcnow()).detail == "d\ufffd"


def test_both_flows_survive_fuzz_and_score_every_good_message_after_it() -> None:
    now = utcnow()
    sensors_fz, logs_fz = _split(list(fuzz_messages(3000, seed=1, now=now - timedelta(minutes=30))))
    good_sensors, good_logs = good_messages(60, now=now - timedelta(minutes=20))

    points: list[Point] = []
    out: list[Outgoing] = []
    run_main(sensor_flow.build_flow(Settings(), source=TestingSource(sensors_fz + good_sensors),
                                    influx_sink=TestingSink(points), mqtt_sink=TestingSink(out)))
    assert len([p for p in points if p.measurement == "sensor_score" and p.tags["site"] == "ok"]) == 60
    errors = [p for p in points if p.measurement == "ingest_error"]
    assert len(errors) >= len(sensors_fz) // 2
    assert len([o for o in out if o.topic.startswith("oddwatch/deadletter")]) == len(errors)

    points, out = [], []
    run_main(log_flow.build_flow(Settings(), source=TestingSource(logs_fz + good_logs),
                                 influx_sink=TestingSink(points), mqtt_sink=TestingSink(out),
                                 embedder=TokenizerLike(dim=16)))
    scored = sum(int(p.fields["lines"]) for p in points if p.measurement == "log_window" and p.tags["site"] == "ok")
    assert scored == 60
    errors = [p for p in points if p.measurement == "ingest_error"]
    assert len(errors) >= len(logs_fz) // 2
    assert len([o for o in out if o.topic.startswith("oddwatch/deadletter")]) == len(errors)
    for p in points:  # every point can be sent: no lone surrogate left anywhere
        for v in [*p.tags.values(), *p.fields.values()]:
            if isinstance(v, str):
                v.encode("utf-8")


def test_a_template_the_model_refuses_is_a_model_failed_error_and_the_rest_is_scored() -> None:
    now = utcnow() - timedelta(minutes=10)
    msgs = [Message("logs/s1/h/a", (b'{"msg": "a poison pill of a line"}' if i == 3 else f'{{"msg": "line {i} ok"}}'.encode()),
                    now + timedelta(seconds=i)) for i in range(10)]
    points: list[Point] = []
    out: list[Outgoing] = []
    run_main(log_flow.build_flow(Settings(), source=TestingSource(msgs), influx_sink=TestingSink(points),
                                 mqtt_sink=TestingSink(out), embedder=TokenizerLike(dim=16)))
    failed = [p for p in points if p.measurement == "ingest_error"]
    assert [p.tags["reason"] for p in failed] == ["model_failed"]
    assert "TypeError" in str(failed[0].fields["detail"]) and "poison" in str(failed[0].fields["payload"])
    assert sum(int(p.fields["lines"]) for p in points if p.measurement == "log_window") == 10
    assert any(b"model_failed" in (o.payload if isinstance(o.payload, bytes) else o.payload.encode()) for o in out)
