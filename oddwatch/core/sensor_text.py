"""What a sensor or asset alert says: the check that fired, sizes in the sensor's units, a next step.

Sizes are written as an operator reads a gauge: the value, its usual value (the median of
recent readings) and how far it moved from it, in the sensor's unit. The check is the
detector component that scored highest, named after what the readings did: a sudden jump
(one reading, the series' point check), a level shift (the mean of the last readings moved),
noise (readings jump more than usual), a stuck value, or an unusual pattern. A close says
"back to normal" only when the value is back inside the range expected before the alert;
otherwise it says that the series settled at a new level, which is still a change to look at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from detectors.spot import to_tail

if TYPE_CHECKING:
    from oddwatch.core.series import SeriesState
    from oddwatch.records import Reading

# component -> (the check, what it saw, what to do next)
CHECKS = {
    "point": ("sudden jump", "one reading far from the median of its last {point_window}",
              "check the sensor and the process at that moment; a single reading can be a glitch"),
    "level": ("level shift", "the mean of its last {level_k} readings moved away from the {level_window} before",
              "check for a setpoint change, a valve or load change, or recent maintenance"),
    "spread": ("noise", "the readings jump from one to the next far more than usual",
               "check for a loose connection, vibration or a failing sensor"),
    "stuck": ("stuck value", "the same value repeats longer than this series ever did",
              "check the sensor and its transmitter: the reading may be frozen"),
    "novelty": ("unusual pattern", "the shape of its last {window} readings is unlike any it showed before",
                "compare with a normal period of the same operation"),
    "hst": ("outlier", "the value is rare among recent readings",
            "check the sensor and the process at that moment"),
}
DEFAULT_CHECK = ("anomaly", "the reading is unlike the series' past", "check the sensor and the process")


def check_of(st: SeriesState, value: float) -> str:
    """The component that scores *value* highest on *st*'s detector (before it is learnt).

    A check an operator can picture (jump, level, noise, stuck) is named over the shape novelty
    whenever it is at its own alert level, and a level shift over a jump when its measure is at
    least 60 % of the jump's: a step moves both, and it is the lasting part that matters.
    """
    components = getattr(st.detector, "components", None)  # stand-in detectors in tests lack it
    parts: dict[str, float] = components({"value": value}) if components else {}
    if not parts or max(parts.values()) <= 0:
        return ""
    name = max(parts, key=lambda k: parts[k])
    level = getattr(getattr(st.detector, "params", None), "alert_ratio", 1.0)
    local = {k: v for k, v in parts.items() if k in ("point", "level", "spread", "stuck") and v >= level}
    if name == "novelty" and local:
        name = max(local, key=lambda k: local[k])
    if name == "spread" and "level" in local:  # one big step also raises the mean step
        name = "level"
    if name == "point" and parts.get("level", 0.0) >= 0.6 * parts["point"]:
        name = "level"
    return name


def _num(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "n/a"


@dataclass(frozen=True, slots=True)
class Moved:
    """How far one sensor moved: its value against its usual one, the check, and the evidence."""

    sensor: str
    check: str  # the component name (a CHECKS key) or ""
    value: float
    usual: float
    low: float
    high: float
    unit: str
    score: float
    level: float

    @classmethod
    def of(cls, st: SeriesState, r: Reading, score: float, level: float, low: float, high: float) -> Moved:
        usual = 0.5 * (low + high) if math.isfinite(low) and math.isfinite(high) else math.nan
        return cls(r.sensor, check_of(st, r.value), r.value, usual, low, high, r.unit or "", score, level)

    @property
    def strength(self) -> float:
        """The evidence against its level on the tail scale (1 = at the level)."""
        lv = to_tail(self.level)
        return to_tail(self.score) / lv if lv > 0 else 0.0

    def describe(self, p: object | None = None) -> str:
        """``temp level shift: 65.6 °C, usual 50.1 °C (+15.5; expected 45.8-54.4)``."""
        u = f" {self.unit}" if self.unit else ""
        name = CHECKS.get(self.check, DEFAULT_CHECK)[0]
        if not math.isfinite(self.usual):
            return f"{self.sensor} {name}: {_num(self.value)}{u}"
        delta = self.value - self.usual
        return (f"{self.sensor} {name}: {_num(self.value)}{u}, usual {_num(self.usual)}{u} "
                f"({delta:+.3g}{u}; expected {_num(self.low)} to {_num(self.high)}{u})")


def next_step(check: str) -> str:
    return CHECKS.get(check, DEFAULT_CHECK)[2]


def asset_open_text(key: str, named: list[Moved], moved: int, sensors: int) -> tuple[str, str]:
    """Title and text of an asset alert's open: the sensors that moved most, and a next step."""
    top = named[0]
    name = CHECKS.get(top.check, DEFAULT_CHECK)[0]
    if moved > 1:
        head = f"{key}: {moved} of {sensors} sensors moved together, most {top.sensor} ({name})"
    else:
        head = f"{key}: {top.describe()}"
    lines = "; ".join(m.describe() for m in named)
    text = (f"{head}. {lines}. Next: {next_step(top.check)}"
            f"{' (and whether the sensors named share a cause)' if moved > 1 else ''}.")
    return head, text


def asset_close_text(key: str, opened_at: datetime, members: list[Moved], latest: dict[str, float],
                     now: dict[str, tuple[float, float]], by: str = "") -> tuple[str, str]:
    """Close title and text: back to normal only if every named sensor is back in its range from before."""
    if by == "feedback":
        return f"{key}: closed as a false positive", f"{key}: alert open since {opened_at.isoformat()} closed by feedback."
    still = [m for m in members if math.isfinite(latest.get(m.sensor, math.nan)) and math.isfinite(m.low)
             and not m.low <= latest[m.sensor] <= m.high]
    since = opened_at.isoformat()
    if not still:
        return f"{key}: back to normal", f"{key}: alert open since {since} closed; every sensor named is back in its usual range."
    parts = "; ".join(f"{m.sensor} now {_num(latest[m.sensor])}{' ' + m.unit if m.unit else ''}, before the alert "
                      f"{_num(m.usual)} (expected {_num(m.low)} to {_num(m.high)})" for m in still)
    return (f"{key}: settled at a new level",
            f"{key}: alert open since {since} closed as the checks adapted, but it has not returned: {parts}. "
            "Next: confirm the new level is intended (a setpoint or load change); if not, it is still a fault.")
