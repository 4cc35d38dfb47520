"""``oddwatch eval series --plots DIR``: one PNG per series."""

from __future__ import annotations

from pathlib import Path

from oddwatch.cli import main

DATA = Path(__file__).parent / "data" / "nab"


def test_eval_series_writes_one_png_per_series(tmp_path: Path) -> None:
    assert main(["eval", "series", str(DATA), "--out", str(tmp_path / "out"), "--plots", str(tmp_path / "plots")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["artificialWithAnomaly__art_daily_jumpsup.png", "realKnownCause__rogue_agent_key_hold.png"]
    assert all((tmp_path / "plots" / p).read_bytes().startswith(b"\x89PNG") for p in pngs)
    assert (tmp_path / "out" / "summary.json").exists()
