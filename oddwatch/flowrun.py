"""``oddwatch run``: one dataflow in this process, with Bytewax recovery unless turned off.

With ``[state].recovery`` (the default) the flow reads MQTT through its WAL and Bytewax
snapshots its state and WAL offset every ``[state].snapshot_s`` into
``<[state].dir>/<flow>/recovery`` (created on the first run). A stop (SIGTERM, Ctrl-C) or a
crash resumes from the last snapshot, reading the WAL again from its offset: what was in
flight, including log lines in open windows, is processed after the restart.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

from flows.runtime import state_dir
from oddwatch.settings import Settings

log = logging.getLogger(__name__)

FLOWS = ("sensors", "logs", "incidents")


def recovery_dir(settings: Settings, flow: str, directory: Path | None = None) -> Path:
    """The flow's Bytewax recovery folder, with its partition created if missing."""
    from bytewax.recovery import init_db_dir

    directory = directory or state_dir(settings, flow) / "recovery"
    if not any(directory.glob("part-*.sqlite3")):
        directory.mkdir(parents=True, exist_ok=True)
        init_db_dir(directory, 1)
    return directory


def run_flow(settings: Settings, flow: str, *, workers: int = 1, recovery: Path | None = None,
             snapshot_s: float | None = None) -> int:
    """Run *flow* (``sensors`` or ``logs``) until interrupted; 0 after a stop by signal."""
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    if flow not in FLOWS:
        raise ValueError(f"unknown flow {flow!r}; known: {', '.join(FLOWS)}")
    config = None
    if settings.state.recovery:
        from oddwatch.connectors.wal import Wal, WalError, WalSource
        from oddwatch.state import check_recovery, move_aside

        try:
            existing = recovery or state_dir(settings, flow) / "recovery"
            problem = check_recovery(existing) if existing.exists() else None
            if problem:
                dest = move_aside(existing)
                print(f"oddwatch run {flow}: the recovery database is damaged ({problem}); moved to {dest}. Lost: "
                      "the model state of the last snapshot; starting from an empty state and reading the whole WAL "
                      f"again (`oddwatch state repair {flow}` does this by hand)", file=sys.stderr)
            config = RecoveryConfig(str(recovery_dir(settings, flow, recovery)), backup_interval=timedelta(0))
            for part in WalSource(state_dir(settings, flow) / "wal", lambda w, p: w).list_parts():
                Wal(state_dir(settings, flow) / "wal" / part).close()  # usable, and not in use
        except (OSError, WalError) as exc:
            print(f"oddwatch run {flow}: cannot use the state dir {state_dir(settings, flow)} ([state].dir): {exc}",
                  file=sys.stderr)
            return 2
    interval = timedelta(seconds=snapshot_s if snapshot_s is not None else settings.state.snapshot_s)
    dataflow = importlib.import_module(f"flows.{flow}").build_flow(settings)
    cluster: dict[str, object] = {}
    if os.environ.get("BYTEWAX_PROCESS_ID") and os.environ.get("BYTEWAX_ADDRESSES"):  # as bytewax.run reads them
        cluster = {"process_id": int(os.environ["BYTEWAX_PROCESS_ID"]),
                   "addresses": os.environ["BYTEWAX_ADDRESSES"].split(";")}
    try:
        cli_main(dataflow, workers_per_process=workers, epoch_interval=interval, recovery_config=config, **cluster)
    except KeyboardInterrupt as exc:
        kept = ("resumes from its last snapshot and WAL" if config is not None
                else "without recovery: in-flight messages and state since start are not kept")
        print(f"oddwatch run {flow}: stopped by {exc or 'interrupt'}; {kept}", file=sys.stderr)
    return 0
