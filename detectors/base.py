"""The detector protocol every sensor detector follows (River's anomaly API)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class AnomalyDetector(Protocol):
    """An online anomaly detector over feature dicts.

    ``score_one`` must not change the detector; scores are finite and in [0, 1], higher is
    more anomalous. Callers score a reading *before* learning it. Missing or unknown keys in
    ``x`` are tolerated and ``x`` is never mutated.
    """

    def learn_one(self, x: dict[str, float]) -> None:
        """Update the model with one observation."""
        ...

    def score_one(self, x: dict[str, float]) -> float:
        """Anomaly score of one observation in [0, 1] (higher = more anomalous)."""
        ...
