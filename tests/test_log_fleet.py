"""Log sources decide as a fleet: a new or small source is judged from its first lines, a line's
level is evidence, counts are judged against their own variability, and a false alert does not
hide the next true one."""

from __future__ import annotations

import random

from detectors.embedders import HashingEmbedder, TemplateEmbeddingCache
from oddwatch.core.log_pipeline import LogParams
from oddwatch.core.logsource import Decided, LogSourceState, fleet_key
from oddwatch.records import Alert
from oddwatch.settings import AlertSettings

T0 = 1_767_225_600.0
NORMAL = ["session opened for user u{u}", "session closed for user u{u}", "job {u} done in {u} ms"]


def _state(**kw: object) -> LogSourceState:
    params = LogParams(model="hashing", window_mode="tumbling", window_size_s=60.0, warmup=10, **kw)  # type: ignore[arg-type]
    return LogSourceState("s1/*/app", params, alerts=AlertSettings(), embeddings=TemplateEmbeddingCache(HashingEmbedder(dim=32)))


def _window(w: int, hosts: range, rng: random.Random, extra: dict[str, list[str]] | None = None,
            ) -> list[tuple[float, str, str, str | None]]:
    lines = []
    for h in hosts:
        body = [t.format(u=rng.randrange(100)) for t in NORMAL[: 1 + (h + w) % 3]]
        body += (extra or {}).get(f"s1/n{h}/app", [])
        lines += [(T0 + 60.0 * w + 50.0 * i / len(body) + h * 0.001, line, f"s1/n{h}/app", None)
                  for i, line in enumerate(body)]
    return sorted(lines)


def _opens(out: list[object]) -> list[Alert]:
    return [o for o in out if isinstance(o, Alert) and o.kind == "open"]


def test_fleet_key_groups_one_app_of_a_site() -> None:
    assert fleet_key("s1/n7/app") == "s1/*/app" and fleet_key("s1/n7/app", "source") == "s1/n7/app"


def test_a_new_node_is_judged_from_its_first_lines() -> None:
    rng = random.Random(1)
    state = _state()
    out: list[object] = []
    for w in range(40):
        out += state.step(_window(w, range(20), rng))
    assert not _opens(out)
    late = [(T0 + 60.0 * 40 + 5, "RAS KERNEL FATAL machine check interrupt on core 3", "s1/n99/app", None)]
    out = state.step(late + _window(40, range(20), rng)) + state.step(_window(41, range(20), rng))
    opens = _opens(out)
    assert [a.alert_id.rsplit(":", 1)[0] for a in opens] == ["s1/n99/app"], [a.title for a in opens]
    assert "FATAL machine check" in opens[0].text


def test_a_routine_error_line_does_not_page_a_rare_one_does() -> None:
    rng = random.Random(2)
    state = _state()
    out: list[object] = []
    routine = {f"s1/n{h}/app": ["ERROR cache miss for key k1"] for h in range(10)}
    for w in range(60):
        out += state.step(_window(w, range(10), rng, routine))
    assert not _opens(out)
    decided = [o for o in state.step([(T0 + 3700.0, "x", "s1/n1/app", None)]) if isinstance(o, Decided)]
    assert decided and not any(d.result.is_anomaly for d in decided)
    levelled = state.step([(T0 + 3725.0, "disk write failed on sda", "s1/n3/app", "critical")])
    levelled += state.flush()
    assert any(isinstance(o, Alert) and o.kind == "open" for o in levelled)


def test_three_times_where_usually_two_never_pages() -> None:
    rng = random.Random(3)
    state = _state(fleet="source")
    out: list[object] = []
    for w in range(300):
        n = rng.choice((1, 2, 2, 2, 3, 3, 4))
        lines = [f"keepalive sent to peer {rng.randrange(9)}"] * n + ["OSPF: hello sent on eth0"] * rng.choice((2, 2, 3))
        out += state.step([(T0 + 60.0 * w + i, line) for i, line in enumerate(lines)])
    assert not _opens(out), [a.title for a in _opens(out)]


def test_a_burst_right_after_a_false_alert_is_reported() -> None:
    rng = random.Random(4)
    state = _state(fleet="source")
    out: list[object] = []

    def window(w: int, extra: list[str]) -> list[object]:
        lines = [f"request {rng.randrange(99)} served"] * 5 + ["cache flushed"] * rng.choice((0, 1)) + extra
        return state.step([(T0 + 60.0 * w + i, line) for i, line in enumerate(lines)])

    for w in range(100):
        out += window(w, [])
    assert not _opens(out)
    false_one = window(100, ["maintenance mode toggled by operator"]) + window(101, [])
    for w in range(102, 106):  # the false alert closes after log_close_after normal windows
        false_one += window(w, [])
    assert len(_opens(false_one)) == 1 and any(isinstance(o, Alert) and o.kind == "close" for o in false_one)
    burst = window(106, ["cache flushed"] * 40) + window(107, [])
    opens = _opens(burst)
    assert opens and "burst of 'cache flushed'" in opens[0].title, [o.title for o in opens]
    assert "score 0.000" not in opens[0].text and opens[0].score >= opens[0].threshold
