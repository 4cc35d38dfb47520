"""``oddwatch run``: one dataflow in this process, with Bytewax recovery unless turned off.

With ``[state].recovery`` (the default) the flow reads MQTT through its WAL and Bytewax
snapshots its state and WAL offset every ``[state].snapshot_s`` into
``<[state].dir>/<flow>/recovery`` (created on the first run). A stop (SIGTERM, Ctrl-C) or a
crash resumes from the last snapshot, reading the WAL again from its offset: what was in
flight, including log lines in open windows, is processed after the restart.

The flow factories (``flows.<flow>.build_flow``) start nothing; what a real run needs around
the dataflow, the health endpoint with its ``pipeline`` points and the SIGTERM flush, is
started here (:func:`start_runtime`), by ``oddwatch run`` and by :func:`served_flow`, the
factory that ``python -m bytewax.run`` runs for ``oddwatch cluster``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from flows.runtime import state_dir
from oddwatch.settings import Settings, expand, load_settings

if TYPE_CHECKING:
    from bytewax.dataflow import Dataflow

    from oddwatch.observe.health import Health

log = logging.getLogger(__name__)

FLOWS = ("sensors", "logs", "incidents")


def stop_on_sigterm(flow: str = "flow", *, recovery: bool = False, timeout_s: float = 30.0) -> None:
    """Stop on SIGTERM (systemd, docker stop) or SIGINT (Ctrl-C): flush, one line, exit 0.

    The signal starts a thread that flushes the InfluxDB writers (up to *timeout_s*; what is
    left stays in their spools), prints one line and ends the process. Nothing is lost by
    ending it there: with recovery, every message is in the WAL and every point the sink took
    in its spool, and the next start resumes from the last snapshot. Without recovery, what
    the dataflow held in memory (open windows, queued messages) is lost.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    stopping = threading.Event()

    def stop(signum: int) -> None:
        from oddwatch.connectors.influx import flush_writers

        flushed, spooled = flush_writers(timeout_s)
        name = signal.Signals(signum).name
        state = "resumes from its last snapshot and WAL" if recovery else "ran without recovery: in-memory state lost"
        sys.stderr.write(f"oddwatch run {flow}: stopped by {name}; InfluxDB writers "
                         f"{'flushed' if flushed else f'not flushed, {spooled} bytes kept in their spool'}; {state}\n")
        sys.stderr.flush()
        os._exit(0)

    def on_signal(signum: int, frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        threading.Thread(target=stop, args=(signum,), name="oddwatch-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def start_runtime(settings: Settings, flow: str) -> Health:
    """Around a real run of *flow*: its health endpoint and ``pipeline`` points (through an
    InfluxDB writer of their own, counting in the process's metrics) and the SIGTERM flush."""
    from oddwatch.connectors.influx import InfluxWriter, sink_spool_dir
    from oddwatch.observe.health import start_health
    from oddwatch.observe.metrics import METRICS

    spool = sink_spool_dir(str(expand(settings.influx.spool_dir)), f"health-{flow}")  # its own per flow and process
    writer = InfluxWriter(dataclasses.replace(settings.influx, spool_dir=spool), meters=METRICS)
    health = start_health(settings, flow, writer, meters=METRICS)
    stop_on_sigterm(flow, recovery=settings.state.recovery)
    return health


def build_flow(settings: Settings, flow: str) -> Dataflow:
    """The dataflow of *flow* (``flows.<flow>.build_flow``) with its real connectors."""
    if flow not in FLOWS:
        raise ValueError(f"unknown flow {flow!r}; known: {', '.join(FLOWS)}")
    return importlib.import_module(f"flows.{flow}").build_flow(settings)  # type: ignore[no-any-return]


def served_flow(flow: str) -> Dataflow:
    """*flow* as ``python -m bytewax.run "oddwatch.flowrun:served_flow('sensors')"`` runs it:
    the settings loaded, :func:`start_runtime` started, the real connectors."""
    settings = load_settings()
    start_runtime(settings, flow)
    return build_flow(settings, flow)


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
    start_runtime(settings, flow)
    dataflow = build_flow(settings, flow)
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
