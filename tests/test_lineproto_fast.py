"""The split-based reading of plain line protocol agrees with the full parser on any input."""

from __future__ import annotations

import random

from oddwatch.lineproto import _Parser, parse_lines

PIECES = ["m", "cpu", "a", "b", "x1", ",", "=", " ", "  ", "\n", "\r", "\\", '"', "#", "1", "-2", "3.5", "1e3",
          "1e999", "7i", "9u", "99999999999999999999i", "t", "false", "nan", "abc", "\t", "1700000000000000000"]


def _full(text: str) -> object:
    try:
        return _Parser(text).parse()
    except ValueError as exc:
        return ("error", str(exc))


def _fast(text: str) -> object:
    try:
        return parse_lines(text)
    except ValueError as exc:
        return ("error", str(exc))


def test_fast_path_matches_the_full_parser_on_random_text() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 14)))
        assert _fast(text) == _full(text), text


def test_fast_path_matches_on_well_formed_lines() -> None:
    rng = random.Random(8)
    for _ in range(2_000):
        lines = []
        for _ in range(rng.randint(1, 5)):
            tags = "".join(f",{rng.choice('abc')}{i}={rng.choice(['x', 'y1', '2'])}" for i in range(rng.randint(0, 3)))
            fields = ",".join(f"f{i}={rng.choice(['1', '-0.5', '3i', 't', 'F', '2.5e-3', '.5', '5.'])}"
                              for i in range(rng.randint(1, 3)))
            ts = rng.choice(["", " 1700000000000000000", " -5"])
            lines.append(f"m{tags} {fields}{ts}")
        text = "\n".join(lines) + rng.choice(["", "\n", "\n\n"])
        assert _fast(text) == _full(text), text
        assert isinstance(_full(text), list)
