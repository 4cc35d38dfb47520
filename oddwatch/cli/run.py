"""Sub-commands that run and watch oddwatch: ``run``, ``up``, ``health``, ``services``, ``status``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from oddwatch.cli.config import settings_of


def cmd_services(args: argparse.Namespace) -> int:
    from oddwatch.services import from_settings

    svc = from_settings(settings_of(args))
    if args.action == "up":
        svc.start()
        print(json.dumps(svc.status(), indent=2, default=str))
    elif args.action == "down":
        svc.stop()
        print("services stopped")
    else:
        status = svc.status()
        print(json.dumps(status, indent=2, default=str))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a dataflow: in this process (recovery on by default, it resumes where it stopped), or
    a local cluster of ``--processes``."""
    from oddwatch import cluster

    if args.config:
        os.environ["ODDWATCH_CONFIG"] = args.config
    if args.process_id is not None:
        os.environ["BYTEWAX_PROCESS_ID"] = str(args.process_id)
    if args.addresses:
        os.environ["BYTEWAX_ADDRESSES"] = args.addresses
    problem = cluster.check_cluster_env()
    if problem:
        print(f"oddwatch run: {problem}", file=sys.stderr)
        return 2
    if args.no_recovery or "BYTEWAX_PROCESS_ID" in os.environ:
        # the flow factory reads MQTT directly; a cluster's processes share the subscription
        # instead of each keeping a WAL (docs/scaling.md)
        os.environ["ODDWATCH_STATE__RECOVERY"] = "false"
    if args.processes > 1:
        if args.recovery_dir or "BYTEWAX_PROCESS_ID" in os.environ:
            print("oddwatch run: --processes starts a local cluster; it takes neither --recovery-dir nor "
                  "-i/-a (BYTEWAX_PROCESS_ID)", file=sys.stderr)
            return 2
        # The processes of a local cluster read MQTT directly (no WAL, no snapshots).
        os.environ["ODDWATCH_STATE__RECOVERY"] = "false"
        import signal

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)
        return cluster.run_local_cluster(args.flow, args.processes, workers=args.workers,
                                         metrics_port=settings_of(args).metrics.port_of(args.flow))
    settings = settings_of(args)
    from oddwatch.flowrun import run_flow

    recovery = Path(args.recovery_dir) if args.recovery_dir else None
    snapshot_s = args.snapshot_s if args.snapshot_s is not None else settings.state.snapshot_s
    return run_flow(settings, args.flow, workers=args.workers, recovery=recovery, snapshot_s=snapshot_s)


def cmd_status(args: argparse.Namespace) -> int:
    """The broker, InfluxDB and each flow as a short table (``--json``: every figure); exit 1
    when the broker or InfluxDB does not answer."""
    from oddwatch.status import collect, exit_code, format_table

    report = collect(settings_of(args))
    print(json.dumps(report, indent=2, default=str) if args.json else format_table(report))
    return exit_code(report)


def cmd_up(args: argparse.Namespace) -> int:
    """Run the dataflows (and with --services the local Mosquitto and InfluxDB) until stopped."""
    from oddwatch.up import FLOWS, run_up

    return run_up(settings_of(args), config=args.config, services=args.services, workers=args.workers,
                  flows=args.flow or FLOWS)


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the flow's metrics endpoint answers (container and service health checks)."""
    import requests

    settings = settings_of(args)
    host = settings.metrics.host if settings.metrics.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{host}:{settings.metrics.port_of(args.flow)}/metrics"
    try:
        ok = requests.get(url, timeout=args.timeout).status_code == 200
    except requests.RequestException:
        ok = False
    print(f"{args.flow}: {'healthy' if ok else 'no answer'} at {url}")
    return 0 if ok else 1


def cmd_state(args: argparse.Namespace) -> int:
    """``oddwatch state repair FLOW``: move the flow's recovery database aside (start afresh)."""
    from flows.runtime import state_dir
    from oddwatch.settings import load_settings
    from oddwatch.state import repair

    if args.config:
        os.environ["ODDWATCH_CONFIG"] = args.config
    for line in repair(state_dir(load_settings(), args.flow), args.flow):
        print(f"oddwatch state: {line}")
    return 0
