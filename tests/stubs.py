"""Stand-ins shared by tests of pure logic (never by the integration tests)."""

from __future__ import annotations


class Scripted:
    """A detector replaying scripted scores, so a test is about what happens after the
    detector (calibration, feedback, drift) and not about the detector's tuning."""

    def __init__(self, values: list[float], expected: tuple[float, float] = (0.0, 1.0)) -> None:
        self.values = values
        self.expected = expected
        self.i = 0

    def score_one(self, x: dict[str, float]) -> float:
        return self.values[self.i]

    def learn_one(self, x: dict[str, float]) -> None:
        self.i += 1

    def expected_range(self) -> tuple[float, float]:
        return self.expected
