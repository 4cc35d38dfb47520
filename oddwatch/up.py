"""``oddwatch up``: the dataflows (sensors, logs, incidents; optionally the local services) under one command.

Each flow runs as ``oddwatch run sensors`` / ``oddwatch run logs`` in a child process of its
own process group, so a Ctrl-C in the terminal reaches this supervisor only; the supervisor
then stops each flow with SIGTERM (which a flow treats like Ctrl-C: the InfluxDB writer
flushes or spools), waits for it, and stops the services it started.

A flow that exits on its own is restarted with back-off (:class:`Backoff`: 1 s doubling to
60 s, back to 1 s after 5 minutes up): a dependency error (broker or database gone, disk
failing, a crash) must not leave it down. Exit status 2 is a usage or configuration error that
a restart cannot fix: then the others are stopped too and ``up`` exits with status 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

FLOWS = ("sensors", "logs", "incidents")
# How a flow ends after SIGTERM: 0, or 1 from Bytewax's "signal received" error, or the signal.
STOPPED_CLEANLY = frozenset({0, 1, -signal.SIGTERM, -signal.SIGINT})
#: Exit status of a usage or configuration error: restarting would fail the same way.
CONFIG_ERROR = 2


@dataclass
class Backoff:
    """Restart delays: *first_s* doubling to *max_s*; a run of *reset_s* or more starts again at *first_s*.

    >>> b = Backoff()
    >>> [b.next(ran_s=0.5) for _ in range(8)]
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    >>> b.next(ran_s=600.0)
    1.0
    """

    first_s: float = 1.0
    max_s: float = 60.0
    reset_s: float = 300.0
    _delay: float = 0.0

    def next(self, ran_s: float) -> float:
        self._delay = self.first_s if ran_s >= self.reset_s or not self._delay else min(self.max_s, self._delay * 2)
        return self._delay


class Stop(Exception):
    """Raised in the supervisor by SIGTERM or SIGINT."""


@dataclass
class Child:
    """One flow process and the thread that copies its output with a ``[name]`` prefix."""

    name: str
    proc: subprocess.Popen[str]
    out: TextIO
    pump: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.pump = threading.Thread(target=self._copy, name=f"up-{self.name}", daemon=True)
        self.pump.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.write(f"[{self.name}] {line}")
            self.out.flush()

    def stop(self, timeout_s: float) -> int:
        """SIGTERM, then SIGKILL after *timeout_s*; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.out.write(f"oddwatch up: {self.name} flow did not stop within {timeout_s:.0f} s: killed\n")
                self.proc.kill()
                self.proc.wait()
        self.pump.join(2)
        return self.proc.returncode


def flow_command(flow: str, config: str | None, workers: int) -> list[str]:
    """The command line of one flow.

    >>> flow_command("logs", "/etc/oddwatch.toml", 2)[-6:]
    ['--config', '/etc/oddwatch.toml', 'run', 'logs', '-w', '2']
    """
    argv = [sys.executable, "-m", "oddwatch.cli"]
    if config:
        argv += ["--config", config]
    return [*argv, "run", flow, "-w", str(workers)]


def start_flow(flow: str, config: str | None, workers: int, out: TextIO) -> Child:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(flow_command(flow, config, workers), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    return Child(flow, proc, out)


def run_up(settings: Any, *, config: str | None = None, services: bool = False, workers: int = 1,
           flows: Sequence[str] = FLOWS, stop_timeout_s: float = 30.0, out: TextIO = sys.stderr,
           ready: Callable[[list[Child]], None] | None = None) -> int:
    """Run *flows* until SIGTERM/SIGINT or until one exits; 0 after a requested stop."""
    svc = None
    if services:
        from oddwatch.services import from_settings

        svc = from_settings(settings)
        out.write("oddwatch up: starting Mosquitto and InfluxDB ...\n")
        svc.start()

    def interrupt(signum: int, frame: object) -> None:
        raise Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    children: list[Child] = []
    status = 0
    started: dict[str, float] = {}
    backoff: dict[str, Backoff] = {}
    due: dict[str, float] = {}  # flow -> when to start it again
    try:
        try:
            for flow in flows:
                children.append(start_flow(flow, config, workers, out))
                started[flow] = time.monotonic()
            out.write(f"oddwatch up: running {', '.join(c.name for c in children)} "
                      f"(pids {', '.join(str(c.proc.pid) for c in children)}); Ctrl-C or SIGTERM stops "
                      f"{'them and the services' if svc else 'them'}\n")
            out.flush()
            if ready:
                ready(children)
            while True:
                ended = [c for c in children if c.proc.poll() is not None]
                fatal = [c for c in ended if c.proc.returncode == CONFIG_ERROR]
                if fatal:
                    for c in fatal:
                        out.write(f"oddwatch up: the {c.name} flow exited with status {c.proc.returncode}; "
                                  "stopping the others\n")
                    status = 1
                    break
                now = time.monotonic()
                for c in ended:
                    children.remove(c)
                    c.pump.join(2)
                    wait = backoff.setdefault(c.name, Backoff()).next(ran_s=now - started[c.name])
                    due[c.name] = now + wait
                    out.write(f"oddwatch up: the {c.name} flow exited with status {c.proc.returncode}; "
                              f"restarting it in {wait:.0f} s\n")
                    out.flush()
                for name, at in list(due.items()):
                    if now >= at:
                        del due[name]
                        children.append(start_flow(name, config, workers, out))
                        started[name] = time.monotonic()
                        out.write(f"oddwatch up: restarted the {name} flow (pid {children[-1].proc.pid})\n")
                        out.flush()
                time.sleep(0.2)
        except Stop as why:
            out.write(f"oddwatch up: {why}: stopping {', '.join(c.name for c in children)} ...\n")
        # A second signal while stopping must not abandon the children half-stopped.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        for c in children:
            code = c.stop(stop_timeout_s)
            note = "" if code in STOPPED_CLEANLY else f" (exit status {code})"
            out.write(f"oddwatch up: {c.name} stopped{note}\n")
        if svc is not None:
            svc.stop()
            out.write("oddwatch up: services stopped\n")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        out.flush()
    return status
