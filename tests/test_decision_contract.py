"""The contract every decision object keeps: what Bytewax snapshots must pickle, resume to the
same decisions, and stay small.

One line in :data:`CASES` adds an object: how to make it, the inputs to feed it, how to step
it with one input, how to restore it from its pickle, and the most bytes its snapshot may take
after those inputs. The inputs are fed in two halves with a pickle round trip in between; the
restored object must decide the second half exactly as the uninterrupted one does.
"""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from detectors.embedders import HashingEmbedder, TemplateEmbeddingCache
from oddwatch.core.asset_state import AssetState
from oddwatch.core.budget import AlertBudget
from oddwatch.core.feedback import Feedback
from oddwatch.core.incidents import Incident, IncidentPager
from oddwatch.core.logsource import LogSourceState
from oddwatch.core.series import SeriesState
from oddwatch.params import LogParams, SeriesParams
from oddwatch.records import UTC, Alert, Reading

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
EMBEDDINGS = TemplateEmbeddingCache(HashingEmbedder())


# ---------------------------------------------------------------- inputs, seeded
def sensor_inputs() -> list[Reading | Feedback]:
    rng = random.Random(3)
    out: list[Reading | Feedback] = []
    for i in range(1600):
        v = 50 + math.sin(i / 30) + rng.gauss(0, 0.1) + (12 if i in (700, 701, 1300) else 0)
        out.append(Reading("s1", "pump1", "temp", T0 + timedelta(minutes=i), v))
    opened = T0 + timedelta(minutes=700)
    out.insert(1000, Feedback(f"s1/pump1/temp:{int(opened.timestamp())}", "false_positive", "ana", "",
                              T0 + timedelta(minutes=999)))
    return out


def log_inputs() -> list[list[tuple[float, str]]]:
    rng = random.Random(4)
    batches = []
    t = T0.timestamp()
    for b in range(120):
        batch = []
        for _ in range(20):
            t += rng.uniform(0.5, 3.0)
            msg = rng.choice(["GET /api/items/%d 200 %dms", "user %d logged in from 10.0.0.%d", "cache hit ratio %d.%d"])
            batch.append((t, msg % (rng.randrange(1000), rng.randrange(99))))
        if b in (60, 95):
            batch.append((t + 0.1, f"kernel: segfault at {b:x} ip 00007f error 4 in libc.so"))
        batches.append(batch)
    return batches


def _alert(key: str, kind: str, minute: int, opened: int) -> Alert:
    site, asset, _ = key.split("/")
    o = T0 + timedelta(minutes=opened)
    return Alert(f"{key}:{int(o.timestamp())}", "sensor", kind, "warning", site, asset, "hot", "", 0.9, 0.5,
                 o, T0 + timedelta(minutes=minute), {"key": key})


def asset_inputs() -> list[Alert | Feedback]:
    out: list[Alert | Feedback] = []
    for k in range(30):
        m = 40 * k
        for sensor in ("temp", "vib"):
            out.append(_alert(f"n/p/{sensor}", "open", m, m))
        out.append(_alert("n/p/temp", "close", m + 5, m))
        if k % 3 == 0:
            out.append(Feedback(f"n/p/vib:{int((T0 + timedelta(minutes=m)).timestamp())}", "false_positive", "ana",
                                "", T0 + timedelta(minutes=m + 6)))
        else:
            out.append(_alert("n/p/vib", "close", m + 7, m))
    return out


def incident_inputs() -> list[Incident]:
    out = []
    for k in range(200):
        t = T0 + timedelta(minutes=7 * k)
        for kind in ("open", "update", "close"):
            peak = "critical" if k % 9 == 0 and kind == "update" else "warning"
            out.append(Incident(f"n/p{k % 5}:{k}", kind, "n", f"p{k % 5}", "warning", peak, "t", "", 1, (), (), t, t))
    return out


# ---------------------------------------------------------------- the objects
def _step_series(st: SeriesState, x: Reading | Feedback) -> object:
    return st.apply_feedback(x) if isinstance(x, Feedback) else st.step(x)


def _step_asset(st: AssetState, x: Alert | Feedback) -> object:
    return st.apply_feedback(x) if isinstance(x, Feedback) else st.step(x)


def _restore_log(blob: bytes) -> LogSourceState:
    st: LogSourceState = pickle.loads(blob)
    st.bind(EMBEDDINGS)
    return st


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], Any]
    inputs: Callable[[], list[Any]]
    step: Callable[[Any, Any], object]
    max_bytes: int
    restore: Callable[[bytes], Any] = pickle.loads


CASES = [
    Case("SeriesState", lambda: SeriesState("s1", "pump1", "temp", SeriesParams(warmup=300)), sensor_inputs,
         _step_series, 100_000),
    Case("LogSourceState", lambda: LogSourceState("s1/web/app", LogParams(model="hashing"), embeddings=EMBEDDINGS),
         log_inputs, lambda st, batch: st.step(batch), 100_000, _restore_log),
    Case("AssetState", lambda: AssetState.create("n/p"), asset_inputs, _step_asset, 16_000),
    Case("IncidentPager", lambda: IncidentPager(AlertBudget(2, 5), counts_incidents=True), incident_inputs,
         lambda st, inc: st.step(inc), 16_000),
]


def _run(state: Any, step: Callable[[Any, Any], object], items: list[Any]) -> list[str]:
    return [repr(step(state, x)) for x in items]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_restored_state_decides_as_the_uninterrupted_one(case: Case) -> None:
    items = case.inputs()
    half = len(items) // 2
    whole = case.make()
    expected = _run(whole, case.step, items)
    first = case.make()
    assert _run(first, case.step, items[:half]) == expected[:half]  # same input, same decisions
    restored = case.restore(pickle.dumps(first, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(restored) is type(first)
    assert _run(restored, case.step, items[half:]) == expected[half:]
    assert any("Alert(" in d or "Incident(" in d for d in expected), "the inputs must make decisions"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_snapshot_stays_small(case: Case) -> None:
    state = case.make()
    _run(state, case.step, case.inputs())
    size = len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    assert size <= case.max_bytes, f"{case.name} snapshot is {size} bytes after its inputs (> {case.max_bytes})"
