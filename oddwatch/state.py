"""A flow's state dir: check the Bytewax recovery database before a run, move damaged state aside.

``<[state].dir>/<flow>/recovery/part-*.sqlite3`` is Bytewax's recovery database. Bytewax panics
(a Rust traceback) on one that was truncated or overwritten; :func:`check_recovery` finds that
first, so :func:`oddwatch.flowrun.run_flow` moves it aside with one line and starts from an empty
state, reading the whole WAL again (nothing the WAL holds is lost; the model state is).
``oddwatch state repair FLOW`` does the same by hand.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def check_recovery(directory: Path) -> str | None:
    """Why the recovery database in *directory* cannot be used, or None (also for none at all)."""
    for part in sorted(directory.glob("part-*.sqlite3")):
        try:
            con = sqlite3.connect(f"file:{part}?mode=ro", uri=True)
            try:
                ok = con.execute("PRAGMA quick_check").fetchone()
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                con.close()
        except sqlite3.Error as exc:
            return f"{part.name}: {exc}"
        if not ok or ok[0] != "ok":
            return f"{part.name}: {ok[0] if ok else 'no answer to quick_check'}"
        if not tables:
            return f"{part.name}: holds no tables (truncated or overwritten)"
    return None


def move_aside(directory: Path) -> Path:
    """Rename *directory* to ``<name>.damaged-<unix time>``; the new path."""
    dest = directory.with_name(f"{directory.name}.damaged-{int(time.time())}")
    directory.rename(dest)
    return dest


def repair(state_dir: Path, flow: str) -> list[str]:
    """Start *flow* afresh: move its recovery database aside (the WAL is then read again from its
    oldest record); lines saying what was done."""
    recovery = state_dir / "recovery"
    if not recovery.exists():
        return [f"{flow}: no recovery database in {recovery}; nothing to do"]
    problem = check_recovery(recovery)
    dest = move_aside(recovery)
    what = f"damaged ({problem})" if problem else "intact"
    return [f"{flow}: recovery database ({what}) moved to {dest}; the next run starts from an empty model state "
            f"and reads the WAL {state_dir / 'wal'} again from its oldest record"]
