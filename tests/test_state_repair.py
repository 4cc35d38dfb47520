"""A truncated or overwritten Bytewax recovery database is found before Bytewax opens it
(which would panic), moved aside with one line, and ``oddwatch state repair`` does it by hand."""

from __future__ import annotations

from pathlib import Path

from oddwatch.flowrun import recovery_dir
from oddwatch.settings import Settings
from oddwatch.state import check_recovery, repair


def test_damaged_recovery_database_is_found_and_repair_moves_it_aside(tmp_path: Path) -> None:
    settings = Settings()
    settings.state.dir = str(tmp_path)
    rec = recovery_dir(settings, "logs")
    assert check_recovery(rec) is None
    (part,) = rec.glob("part-*.sqlite3")
    part.write_bytes(part.read_bytes()[:100])  # truncated
    assert check_recovery(rec) is not None
    part.write_bytes(b"\x00garbage" * 1000)  # overwritten
    problem = check_recovery(rec)
    assert problem is not None and part.name in problem
    (line,) = repair(rec.parent, "logs")
    assert "damaged" in line and "moved to" in line and not rec.exists()
    assert check_recovery(recovery_dir(settings, "logs")) is None  # a fresh one
