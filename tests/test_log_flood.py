"""A source flooding new templates (unique tokens in every line) gets at most
``[log_detector] max_new_templates_per_min`` model embeddings per minute of event time, the
rest stand-in vectors, and a ``template_flood`` ingest error; the other sources' decisions are
those they get without the flood."""

from __future__ import annotations

import json
import pickle
import random
from datetime import datetime, timedelta

import numpy as np
from bytewax.testing import TestingSink, TestingSource, run_main

from detectors.embedders import HashingEmbedder, TemplateEmbeddingCache
from flows.logs import build_flow
from oddwatch.core.log_pipeline import LogParams
from oddwatch.core.logsource import Decided, Flooded, LogSourceState
from oddwatch.records import UTC, Message, Point
from oddwatch.settings import Settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NORMAL = ["Accepted password for user{u} from 10.0.0.{u} port 22", "session opened for user user{u} by (uid=0)",
          "session closed for user user{u}"]
WORDS = "abcdefghijklmnopqrstuvwxyz"


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting the texts it embeds (what a real model would take time on)."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__(dim=dim, seed=7)  # not the stand-in's seed: stand-ins must differ from model vectors
        self.texts = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts += len(texts)
        return super().encode(texts)


def _normal(minutes: int) -> list[tuple[float, str]]:
    return [((T0 + timedelta(seconds=60 * w + 5 * i)).timestamp(), t.format(u=(w * 7 + i) % 50))
            for w in range(minutes) for i, t in enumerate(NORMAL)]


def _flood(n: int, start_min: int, minutes: int, seed: int = 0) -> list[tuple[float, str]]:
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice(WORDS) for _ in range(rng.randint(5, 9)))

    t0 = (T0 + timedelta(minutes=start_min)).timestamp()
    return [(t0 + 60.0 * minutes * i / n, " ".join(word() for _ in range(5))) for i in range(n)]


def test_budget_bounds_model_texts_per_minute_and_flags_the_source() -> None:
    emb = CountingEmbedder()
    params = LogParams(model="hashing", max_new_templates_per_min=20)
    state = LogSourceState("s1/noisy/app", params, embeddings=TemplateEmbeddingCache(emb))
    lines = _flood(600, start_min=0, minutes=3)
    out = [o for i in range(0, len(lines), 50) for o in state.step(lines[i:i + 50])] + state.flush()
    assert emb.texts <= 20 * 3  # 3 minutes of event time
    floods = [o for o in out if isinstance(o, Flooded)]
    assert 1 <= len(floods) <= 3 and all(f.limit == 20 and f.example for f in floods)
    assert floods[0].example in {text for _, text in lines}
    assert len([o for o in out if isinstance(o, Decided)]) == 3  # every window still decided
    assert state.templates.unmined_lines > 500 and floods[0].kind == "templates"
    unknown = [o.result for o in out if isinstance(o, Decided)][0]
    assert unknown.templates <= 21  # the minute's new templates, and <unknown template>
    restored = pickle.loads(pickle.dumps(state))  # the budget and stand-in marks are state
    assert restored.budget.per_min == 20 and restored.standins == state.standins


def test_no_limit_sends_every_new_template_to_the_model() -> None:
    emb = CountingEmbedder()
    state = LogSourceState("s1/noisy/app", LogParams(model="hashing", max_new_templates_per_min=0),
                           embeddings=TemplateEmbeddingCache(emb))
    state.step(_flood(300, start_min=0, minutes=1))
    state.flush()
    assert emb.texts >= 290 and state.stood_in == 0


def test_templates_over_the_embedding_budget_get_stand_ins_then_the_model_vector() -> None:
    emb = CountingEmbedder()
    cache = TemplateEmbeddingCache(emb)
    params = LogParams(model="hashing", window_size_s=300.0, max_new_templates_per_min=2)
    state = LogSourceState("s1/web/app", params, embeddings=cache)
    t = T0.timestamp()
    # two new shapes a minute (within the template budget); the 5-minute window closes with 5 at once
    shapes = ["disk full on volume", "fan speed low", "link down on port", "user login failed", "cache miss storm"]
    state.step([(t + 30.0 * i, s) for i, s in enumerate(shapes)])
    out = state.step([(t + 301.0, shapes[4])])  # closes window 0: 2 model texts, 3 stand-ins
    assert state.stood_in == 3 and len(state.standins) == 3
    assert [o.kind for o in out if isinstance(o, Flooded)] == ["embeddings"]
    stood = next(iter(state.standins))
    state.step([(t + 400.0, stood), (t + 601.0, shapes[0])])  # window 1 holds a stood-in shape: in budget now
    held = {text: vec for text, vec in state.novelty.table.values()}
    assert stood not in state.standins
    assert np.allclose(held[stood], cache.embed([stood])[0])


def _messages(lines: list[tuple[float, str]], topic: str) -> list[Message]:
    out = []
    for ts, text in lines:
        when = datetime.fromtimestamp(ts, UTC)
        out.append(Message(topic, json.dumps({"ts": when.isoformat(), "msg": text}).encode(), when))
    return out


def _run(msgs: list[Message], emb: CountingEmbedder) -> list[Point]:
    points: list[Point] = []
    settings = Settings()
    settings.logs.max_past_s = 1e12
    p = settings.log_detector
    p.model, p.warmup, p.max_new_templates_per_min = "hashing", 10, 30
    run_main(build_flow(settings, source=TestingSource(msgs, batch_size=200), influx_sink=TestingSink(points),
                        mqtt_sink=TestingSink([]), embedder=emb))
    return points


def test_a_flood_leaves_the_other_source_s_decisions_unchanged() -> None:
    normal = _messages(_normal(60), "logs/s1/web1/sshd")
    flood = _messages(_flood(3000, start_min=20, minutes=5), "logs/s1/noisy/app")
    alone = _run(normal, CountingEmbedder())
    merged = sorted(normal + flood, key=lambda m: m.received)  # interleaved in time
    emb = CountingEmbedder()
    both = _run(merged, emb)

    def windows(points: list[Point], host: str) -> list[tuple[datetime, dict[str, object]]]:
        return [(pt.ts, pt.fields) for pt in points if pt.measurement == "log_window" and pt.tags["host"] == host]

    assert len(windows(alone, "web1")) == 60
    assert windows(both, "web1") == windows(alone, "web1")  # same scores, same decisions
    assert len(windows(both, "noisy")) == 5
    assert emb.texts <= 3 + 30 * 6  # the normal source's templates, and 30 a minute of the flood's
    errors = [pt for pt in both if pt.measurement == "ingest_error"]
    assert errors and {pt.tags["reason"] for pt in errors} == {"template_flood"}
    first = errors[0].fields
    assert "s1/noisy/app" in str(first["detail"]) and "max_new_templates_per_min = 30" in str(first["detail"])
    assert str(first["payload"]) in {text for _, text in _flood(3000, start_min=20, minutes=5)}
