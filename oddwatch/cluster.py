"""Several processes as one Bytewax cluster: each series stays on the worker that owns its key.

Bytewax routes every keyed item to one worker of the whole cluster (by a hash of the key), and
the MQTT source of a flow with several workers subscribes through a shared group
(:func:`oddwatch.connectors.mqtt.shared_group`), so each message is taken by one worker and
each reading is scored once, by its series' owner. Processes of one cluster know each other by
``BYTEWAX_PROCESS_ID`` and ``BYTEWAX_ADDRESSES`` (``host:port`` of every process, ``;``
separated, the same list in every process), which ``python -m bytewax.run`` reads as ``-i`` and
``-a``.

:func:`start_local_cluster` starts *n* such processes on this host (free loopback ports, one
metrics port each) for ``oddwatch run sensors|logs --processes N`` and the tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from oddwatch.services import free_port

TARGETS = {flow: f"oddwatch.flowrun:served_flow({flow!r})" for flow in ("sensors", "logs", "incidents")}
#: The ``[metrics]`` key of each flow's port; process *k* of a local cluster serves on that port
#: ``+ METRICS_PORT_STRIDE * k``, so the three flows' default ports (9464-9466) never meet.
PORT_KEYS = {"sensors": "PORT", "logs": "LOGS_PORT", "incidents": "INCIDENTS_PORT"}
METRICS_PORT_STRIDE = 3


def bytewax_argv(flow: str, workers: int = 1) -> list[str]:
    """The ``python -m bytewax.run`` command line of *flow* with *workers* threads per process."""
    if flow not in TARGETS:
        raise ValueError(f"unknown flow {flow!r}; expected one of {sorted(TARGETS)}")
    return [sys.executable, "-m", "bytewax.run", TARGETS[flow], "-w", str(workers)]


def cluster_env(process_id: int, addresses: Sequence[str], *, metrics_port: int | None = None,
                base: Mapping[str, str] = os.environ, flow: str = "sensors") -> dict[str, str]:
    """The environment of process *process_id* of a cluster of ``len(addresses)`` processes."""
    if not 0 <= process_id < len(addresses):
        raise ValueError(f"process id {process_id} is outside the cluster of {len(addresses)} addresses {list(addresses)}")
    env = dict(base)
    env["BYTEWAX_PROCESS_ID"] = str(process_id)
    env["BYTEWAX_ADDRESSES"] = ";".join(addresses)
    env["ODDWATCH_STATE__RECOVERY"] = "false"  # cluster processes read MQTT directly (docs/scaling.md)
    if metrics_port is not None:
        env[f"ODDWATCH_METRICS__{PORT_KEYS[flow]}"] = str(metrics_port + METRICS_PORT_STRIDE * process_id)
    return env


def check_cluster_env(env: Mapping[str, str] = os.environ) -> str | None:
    """Why ``bytewax.run`` would refuse to start with *env*, or None.

    >>> check_cluster_env({"BYTEWAX_PROCESS_ID": "1"})[:40]
    'BYTEWAX_PROCESS_ID=1 is set but BYTEWAX_'
    """
    if "BYTEWAX_PROCESS_ID" in env and not env.get("BYTEWAX_ADDRESSES") and not env.get("BYTEWAX_HOSTFILE_PATH"):
        return (f"BYTEWAX_PROCESS_ID={env['BYTEWAX_PROCESS_ID']} is set but BYTEWAX_ADDRESSES is not: every "
                "process of a cluster needs the host:port of all of them, e.g. "
                "BYTEWAX_ADDRESSES='host1:2101;host2:2101' (or -a), or unset BYTEWAX_PROCESS_ID for one process")
    return None


def start_local_cluster(
    flow: str, processes: int, *, workers: int = 1, metrics_port: int | None = None,
    env: Mapping[str, str] = os.environ, host: str = "127.0.0.1",
) -> list[subprocess.Popen[bytes]]:
    """Start *processes* ``bytewax.run`` processes of *flow* forming one cluster on this host."""
    if processes < 1:
        raise ValueError(f"--processes must be at least 1, got {processes}")
    addresses = [f"{host}:{free_port()}" for _ in range(processes)]
    argv = bytewax_argv(flow, workers)
    return [subprocess.Popen(argv, env=cluster_env(k, addresses, metrics_port=metrics_port, base=env, flow=flow))
            for k in range(processes)]


def stop_cluster(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 20.0) -> list[int]:
    """SIGTERM every process (they flush their sinks), wait, kill what is left; the exit codes."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return [int(p.returncode) for p in procs]


def run_local_cluster(flow: str, processes: int, *, workers: int = 1, metrics_port: int | None = None) -> int:
    """Run a local cluster until one process ends or this one is interrupted; then stop them all."""
    procs = start_local_cluster(flow, processes, workers=workers, metrics_port=metrics_port)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        codes = stop_cluster(procs)
    return max(codes, key=abs)
