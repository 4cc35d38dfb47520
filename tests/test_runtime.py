"""flows.runtime.keyed_state: per-key state stepped in place, never copied at snapshots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.runtime import keyed_state


class Counted:
    """A state that counts how often it is copied or pickled."""

    copies = 0

    def __init__(self) -> None:
        self.items: list[int] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> Counted:
        Counted.copies += 1
        return self

    def __getstate__(self) -> dict[str, Any]:
        Counted.copies += 1
        return self.__dict__


def _run(items: list[int], builder: Any, epoch_ms: float = 0.0, batch_size: int = 2) -> list[tuple[str, int]]:
    def step(state: Counted, n: int) -> tuple[str, int] | None:
        state.items.append(n)
        return None if n < 0 else (str(n % 2), len(state.items))

    flow = Dataflow("keyed_state_test")
    nums = op.key_on("key", op.input("in", flow, TestingSource(items, batch_size=batch_size)), lambda n: str(abs(n) % 2))
    out: list[tuple[str, int]] = []
    op.output("out", keyed_state("count", nums, builder, step), TestingSink(out))
    run_main(flow, epoch_interval=timedelta(milliseconds=epoch_ms))
    return out


def test_state_per_key_stepped_in_place_never_copied() -> None:
    Counted.copies = 0
    out = _run(list(range(10)), lambda n: Counted())  # an epoch per batch: 5 snapshots per key
    assert sorted(out) == [("0", i) for i in range(1, 6)] + [("1", i) for i in range(1, 6)]
    assert Counted.copies == 0


def test_builder_none_drops_the_item_and_keeps_no_state() -> None:
    out = _run([1, 3, 2, 5], lambda n: None if n == 1 else Counted())
    assert out == [("1", 1), ("0", 1), ("1", 2)]  # 1 dropped; 3 started key "1"


def test_none_results_are_not_emitted() -> None:
    out = _run([1, -3, 5], lambda n: Counted())
    assert out == [("1", 1), ("1", 3)]
