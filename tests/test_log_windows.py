"""Tests of pure log windowing."""

from __future__ import annotations

import pickle

import pytest

from oddwatch.core.log_windows import LogWindowParams, WindowAssembler


def _ids(windows: list) -> list[str]:
    return [w.window_id for w in windows]


def test_session_gap_multi_id_and_unkeyed_lines() -> None:
    asm = WindowAssembler("s", LogWindowParams(mode="session", session_gap_s=10, examples_per_template=2))
    assert asm.add(0, 1, "a blk_1") == []
    assert asm.add(5, 2, "b blk_1 blk_-2") == []
    assert asm.add(6, 3, "no id here") == []
    closed = asm.add(20, 1, "c blk_1")  # blk_1 last seen at 5: still open? no: 5 + 10 < 20
    assert sorted(_ids(closed)) == ["s:-:6", "s:blk_-2:5", "s:blk_1:0"]
    first = next(w for w in closed if w.window_id == "s:blk_1:0")
    assert (first.lines, dict(first.template_counts), first.start, first.end) == (2, {1: 1, 2: 1}, 0, 5)
    assert first.examples[1] == ("a blk_1",)
    rest = asm.flush()
    assert _ids(rest) == ["s:blk_1:20"] and len(asm) == 0


def test_session_max_lines_and_open_bound() -> None:
    asm = WindowAssembler("s", LogWindowParams(mode="session", session_gap_s=100, max_session_lines=3, max_open_windows=2))
    out = []
    for i in range(3):
        out += asm.add(i, 1, "x blk_1")
    assert [w.lines for w in out] == [3]
    out = asm.add(4, 1, "blk_2") + asm.add(5, 1, "blk_3") + asm.add(6, 1, "blk_4")
    assert _ids(out) == ["s:blk_2:4"] and len(asm) == 2


def test_session_memory_continues_a_session_across_bursts() -> None:
    p = LogWindowParams(mode="session", session_gap_s=10, session_memory_s=100, max_open_windows=2)
    asm = WindowAssembler("s", p)
    asm.add(0, 1, "write blk_1")
    asm.add(1, 2, "write blk_1")
    (first,) = asm.add(20, 3, "serve blk_2")
    assert (first.window_id, first.lines, first.bursts) == ("s:blk_1:0", 2, 1)
    (second,) = asm.add(50, 4, "verify blk_1")  # blk_2 closes; blk_1 continues
    assert (second.window_id, second.bursts) == ("s:blk_2:20", 1)
    (cont,) = asm.add(200, 5, "other blk_3")
    assert (cont.window_id, cont.start, cont.end, cont.lines, cont.bursts) == ("s:blk_1:50", 0, 50, 3, 2)
    assert dict(cont.template_counts) == {1: 1, 2: 1, 4: 1} and set(cont.examples) == {1, 2, 4}
    # blk_1 was last seen at 50: forgotten at 150, so a line at 300 starts a new session
    asm.add(300, 6, "again blk_1")
    (fresh,) = [w for w in asm.flush() if "blk_1" in w.window_id]
    assert (fresh.lines, fresh.bursts) == (1, 1)
    again = pickle.loads(pickle.dumps(asm))
    assert len(again) == 0


def test_session_memory_off_judges_each_burst_alone() -> None:
    asm = WindowAssembler("s", LogWindowParams(mode="session", session_gap_s=10))
    asm.add(0, 1, "a blk_1")
    asm.add(20, 2, "b blk_1")
    (late,) = asm.flush()
    assert (late.lines, late.bursts, dict(late.template_counts)) == (1, 1, {2: 1})


def test_tumbling_by_time() -> None:
    asm = WindowAssembler("s", LogWindowParams(mode="tumbling", by="time", size_s=10))
    out = []
    for ts in (0, 3, 9, 10, 25):
        out += asm.add(ts, 1, "l")
    assert [(w.window_id, w.lines) for w in out] == [("s:time:0", 3), ("s:time:10", 1)]
    assert [(w.window_id, w.lines) for w in asm.flush()] == [("s:time:20", 1)]


def test_sliding_by_time_puts_a_line_in_each_covering_window() -> None:
    asm = WindowAssembler("s", LogWindowParams(mode="sliding", by="time", size_s=10, slide_s=5))
    out = []
    for ts in (0, 6, 12, 30):
        out += asm.add(ts, 1, "l")
    counts = {w.window_id: w.lines for w in out}
    assert counts == {"s:time:-5": 1, "s:time:0": 2, "s:time:5": 2, "s:time:10": 1}


def test_count_windows() -> None:
    tumbling = WindowAssembler("s", LogWindowParams(mode="tumbling", by="count", size_lines=3))
    out = [w for i in range(7) for w in tumbling.add(i, i, "l")]
    assert [w.lines for w in out] == [3, 3] and [w.lines for w in tumbling.flush()] == [1]
    sliding = WindowAssembler("s", LogWindowParams(mode="sliding", by="count", size_lines=4, slide_lines=2))
    out = [w for i in range(8) for w in sliding.add(i, i, "l")]
    assert [(w.window_id, w.lines) for w in out] == [
        ("s:count:-2", 2), ("s:count:0", 4), ("s:count:2", 4), ("s:count:4", 4)
    ]


def test_pickle_mid_stream() -> None:
    asm = WindowAssembler("s", LogWindowParams(mode="session", session_gap_s=10))
    asm.add(0, 1, "blk_1")
    again = pickle.loads(pickle.dumps(asm))
    assert _ids(again.add(50, 1, "blk_2")) == _ids(asm.add(50, 1, "blk_2")) == ["s:blk_1:0"]


def test_bad_params_name_the_field() -> None:
    with pytest.raises(ValueError, match="mode = 'hopping'"):
        WindowAssembler("s", LogWindowParams(mode="hopping"))
    with pytest.raises(ValueError, match="session_regex"):
        WindowAssembler("s", LogWindowParams(session_regex="("))
