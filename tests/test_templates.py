"""Tests of the Drain3 template miner wrapper."""

from __future__ import annotations

import pickle

import pytest

from detectors.templates import TemplateMinerState


@pytest.mark.parametrize(
    ("line", "mask"),
    [
        ("connect from 10.1.2.3:50010 ok", "<IP>"),
        ("connect from /10.1.2.3 ok", "<IP>"),
        ("request 123e4567-e89b-12d3-a456-426614174000 done", "<UUID>"),
        ("wrote /user/root/rand/part-00081 ok", "<PATH>"),
        ("block blk_-1608999687919862906 ok", "<BLK>"),
        ("addr 0x7fff5fbff8a8 ok", "<HEX>"),
        ("digest deadbeef12345678 ok", "<HEX>"),
        ("size 67108864 ok", "<NUM>"),
    ],
)
def test_masks(line: str, mask: str) -> None:
    assert mask in TemplateMinerState().mask(line)


def test_ids_are_stable_and_changes_are_reported() -> None:
    miner = TemplateMinerState()
    first = miner.add("user alice logged in from 10.0.0.1")
    assert first.change_type == "cluster_created"
    again = miner.add("user alice logged in from 10.0.0.2")
    assert (again.template_id, again.change_type) == (first.template_id, "none")
    changed = miner.add("user bob logged in from 10.0.0.3")
    assert changed.template_id == first.template_id
    assert changed.change_type == "cluster_template_changed"
    assert changed.template == "user <*> logged in from <IP>"
    assert miner.template(first.template_id) == changed.template
    # the memo fast path returns the current text, not the one seen first
    assert miner.add("user alice logged in from 10.0.0.9").template == changed.template


def test_bounded_templates() -> None:
    miner = TemplateMinerState(max_clusters=3)
    for i in range(10):
        miner.add(" ".join(["word"] * (i + 1)))  # a new length is a new template
    assert len(miner) == 3
    assert miner.lines == 10


def test_pickle_round_trip_continues_the_same() -> None:
    a = TemplateMinerState()
    for line in ["Receiving block blk_1 src: /10.0.0.1:1 dest: /10.0.0.2:2", "Deleting block blk_2 file /a/b"]:
        a.add(line)
    b = pickle.loads(pickle.dumps(a))
    assert b.templates() == a.templates()
    for line in ["Deleting block blk_9 file /c/d", "Verification succeeded for blk_3", "x y z"]:
        assert a.add(line) == b.add(line)


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="max_clusters = 0"):
        TemplateMinerState(max_clusters=0)
    with pytest.raises(ValueError, match="sim_th = 2"):
        TemplateMinerState(sim_th=2)
