"""Start, stop and inspect a local Mosquitto and InfluxDB 1.x bound to 127.0.0.1.

Used by the ``oddwatch`` CLI and by the test fixtures (on free ports). Each service runs as a
child process detached into its own session, with a pid file, a config file and a log file in
a folder of ``state_dir`` named after the service and its port, so instances on other ports
never share files::

    state_dir/
      mosquitto-<mqtt port>/  mosquitto.conf  mosquitto.pid  mosquitto.log  data/  (persistence)
      influxd-<http port>/    influxdb.conf   influxd.pid    influxd.log    influxdb/{meta,data,wal}

A pid file counts only while its process runs this folder's config file (a recycled pid, or
a process another instance started, is left alone), and ``status`` reports a pid only when
that process listens on the port it should serve. :meth:`LocalServices.stop` stops only
processes this instance's folders started; a service found already answering on its port
(the system's own) is used and never stopped. InfluxDB's backup/restore RPC port is a free
port chosen at start unless ``[services].influx_rpc_port`` names one.

Retention policies created with the database: ``autogen`` (default, infinite) plus ``raw``
(30 days) and ``alerts`` (365 days). Every measurement goes to the default policy unless
``[influx].retention_policy`` says otherwise (see
:data:`oddwatch.connectors.influx.DEFAULT_RETENTION_POLICIES`).
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from oddwatch.connectors.influx import DEFAULT_RETENTION_POLICIES, InfluxQuery, ensure_database
from oddwatch.settings import InfluxSettings, Settings, expand

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOG_TAIL_LINES = 20

#: Broker limits sized for no loss: no count limit on the queue of an offline (or held)
#: persistent session (Mosquitto's default 1000 drops the rest) but a byte bound, so a client
#: that never returns cannot take all of the broker's memory; 1000 QoS 1 messages in flight.
MQTT_MAX_QUEUED = 0
MQTT_MAX_QUEUED_BYTES = 2 * 1024**3
MQTT_MAX_INFLIGHT = 1000
#: Seconds between saves of the broker's in-memory state (sessions, queues) to disk: what a broker
#: crash (kill -9, power cut) can lose. Mosquitto's default is 1800 s, and without persistence
#: every queue is lost.
MQTT_AUTOSAVE_S = 1
#: The largest MQTT packet the local broker accepts; it disconnects a client that sends a
#: larger one. Above the parsers' ``max_payload_bytes`` (64 KiB) so that payloads up to this
#: size still reach them and become ``too_large`` ingest errors.
MQTT_MAX_PACKET = 1024 * 1024


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says which and why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def mqtt_connack(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when an MQTT 3.1.1 CONNECT on *host*:*port* gets a CONNACK accepting it.

    A raw-socket probe, so that only :mod:`oddwatch.connectors.mqtt` imports paho.
    """
    client_id = f"oddwatch-probe-{os.getpid()}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, keepalive 10
    body = variable + len(client_id).to_bytes(2, "big") + client_id
    packet = bytes([0x10, len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(packet)
            reply = sock.recv(4)
            ok = len(reply) == 4 and reply[0] == 0x20 and reply[3] == 0
            if ok:
                sock.sendall(b"\xe0\x00")  # DISCONNECT
            return ok
    except OSError:
        return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(log {path} is empty)"


def _runs(pid: int, binary: str, conf: Path) -> bool:
    """Whether *pid* is a live *binary* started with the config file *conf*.

    Where ``/proc`` is missing the config cannot be checked: a live pid counts.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: not one this instance started
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not Path("/proc/self").exists():
        return True
    try:
        argv = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    if not argv or not argv[0]:  # zombie
        return False
    return binary.encode() in argv[0] and str(conf).encode() in argv


def _listening_inodes(port: int) -> set[str] | None:
    """Inodes of the TCP sockets listening on *port* (any address), or None without ``/proc``."""
    found: set[str] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(t.exists() for t in tables):
        return None
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(cols[9])
    return found


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process *pid* holds a socket listening on TCP *port*; None when it cannot be told."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return None
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


@dataclass
class _Service:
    name: str  # "mosquitto" | "influxd"
    binary: str
    package: str
    port: int
    dir: Path  # state_dir/<name>-<port>
    conf_name: str

    @property
    def conf(self) -> Path:
        return self.dir / self.conf_name

    @property
    def pid_file(self) -> Path:
        return self.dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        """The pid-file's process if it runs this service's config (started from this folder)."""
        pid = self.pid()
        return pid if pid is not None and _runs(pid, self.binary, self.conf) else None

    def serving_pid(self) -> int | None:
        """:meth:`running_pid`, if that process listens on the port it should serve."""
        pid = self.running_pid()
        return pid if pid is not None and listens_on(pid, self.port) is not False else None


class LocalServices:
    """A local Mosquitto 2.x and InfluxDB 1.x on loopback ports, state kept in *state_dir*.

    Parameters
    ----------
    state_dir
        Folder for configs, pid files, logs and data (created if missing).
    mqtt_port, influx_port, influx_rpc_port
        Loopback ports: MQTT listener, InfluxDB HTTP API, InfluxDB backup/restore RPC (0: a
        free port chosen when InfluxDB starts).
    database
        The InfluxDB database created on start.
    """

    def __init__(
        self,
        state_dir: Path,
        mqtt_port: int,
        influx_port: int,
        influx_rpc_port: int = 0,
        database: str = "oddwatch",
        *,
        retention_policies: Mapping[str, str] | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.mqtt_port = mqtt_port
        self.influx_port = influx_port
        self._rpc_port = influx_rpc_port
        self.database = database
        self.start_timeout_s = start_timeout_s
        self.retention_policies = (
            dict(DEFAULT_RETENTION_POLICIES) if retention_policies is None else dict(retention_policies)
        )
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._auto_rpc_port = 0  # the free port chosen at start when influx_rpc_port is 0
        self._external: set[str] = set()  # services found already answering on their port
        d = self.state_dir
        self._mqtt = _Service("mosquitto", "mosquitto", "mosquitto", mqtt_port, d / f"mosquitto-{mqtt_port}",
                              "mosquitto.conf")
        self._influx = _Service("influxd", "influxd", "influxdb", influx_port, d / f"influxd-{influx_port}",
                                "influxdb.conf")

    # ------------------------------------------------------------------ public API
    @property
    def mqtt_host(self) -> str:
        return HOST

    @property
    def influx_rpc_port(self) -> int:
        """InfluxDB's RPC port: as configured, else the one its config file names (0: unknown yet)."""
        if self._rpc_port:
            return self._rpc_port
        try:
            text = self._influx.conf.read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith("bind-address"):
                return int(line.split('"')[1].rsplit(":", 1)[1])
        return 0

    @property
    def influx_url(self) -> str:
        return f"http://{HOST}:{self.influx_port}"

    def influx_settings(self) -> InfluxSettings:
        """InfluxSettings pointing at this InfluxDB and database."""
        return InfluxSettings(url=self.influx_url, database=self.database)

    def start(self, timeout_s: float | None = None) -> None:
        """Start both services (idempotent), wait until they answer, create the database.

        *timeout_s* defaults to the constructor's ``start_timeout_s``.
        """
        for svc in (self._mqtt, self._influx):
            svc.dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + (self.start_timeout_s if timeout_s is None else timeout_s)
        for svc in (self._mqtt, self._influx):
            self._launch(svc)
        self._wait(self._mqtt, lambda: mqtt_connack(HOST, self.mqtt_port), deadline)
        query = InfluxQuery(self.influx_settings())
        try:
            self._wait(self._influx, query.ping, deadline)
        finally:
            query.close()
        ensure_database(self.influx_settings(), self.retention_policies)

    def stop(self, timeout_s: float = 10, *, which: Iterable[str] = ("influx", "mqtt")) -> None:
        """Stop the services named in *which* (SIGTERM, then SIGKILL after *timeout_s*).

        A no-op for a service that is not running, and for one this instance did not start (a
        pid file whose process does not run this instance's config file, or a service found
        answering on the port). ``which=("influx",)`` stops only InfluxDB (outage tests);
        :meth:`start` brings back whatever is stopped.
        """
        by_name = {"influx": self._influx, "mqtt": self._mqtt}
        for name in which:
            if name not in by_name:
                raise ValueError(f"LocalServices.stop: unknown service {name!r}; known: influx, mqtt")
            self._stop(by_name[name], timeout_s)

    def is_running(self) -> bool:
        """True when both services have a live pid and answer on their ports."""
        return all(self.status()[name]["running"] for name in ("mqtt", "influx"))

    def status(self) -> dict[str, Any]:
        """Pid, port, liveness and file locations of each service."""
        out: dict[str, Any] = {"state_dir": str(self.state_dir)}
        for key, svc in (("mqtt", self._mqtt), ("influx", self._influx)):
            pid = svc.serving_pid()
            out[key] = {
                "binary": svc.binary,
                "pid": pid,
                "port": svc.port,
                "running": (pid is not None or svc.name in self._external) and _port_open(svc.port),
                "external": svc.name in self._external,
                "config": str(svc.conf),
                "log": str(svc.log_file),
            }
        out["influx"]["url"] = self.influx_url
        out["influx"]["database"] = self.database
        out["influx"]["rpc_port"] = self.influx_rpc_port
        return out

    # ------------------------------------------------------------------ internals
    def _binary(self, svc: _Service) -> str:
        found = shutil.which(svc.binary) or shutil.which(svc.binary, path="/usr/sbin:/usr/bin:/sbin:/bin")
        if found is None:
            raise ServiceError(
                f"starting {svc.name}: the binary {svc.binary!r} is not on PATH; install it with "
                f"`sudo apt-get install -y {svc.package}`"
            )
        return found

    def _launch(self, svc: _Service) -> None:
        pid = svc.running_pid()
        if pid is not None:
            child = self._children.get(svc.name)
            if child is None or child.poll() is None:
                return  # already running (this process or another one started it)
        svc.pid_file.unlink(missing_ok=True)  # stale: its process is gone or is not ours
        if _port_open(svc.port) and self._answers(svc):
            # e.g. the system's own mosquitto/influxd, started by the Debian package on a
            # machine with systemd: use it rather than fail.
            log.warning("%s: a %s already answers on %s:%s; using it (this command will not stop it)",
                        svc.name, svc.binary, HOST, svc.port)
            self._external.add(svc.name)
            return
        if _port_open(svc.port):
            raise ServiceError(
                f"starting {svc.name}: port {HOST}:{svc.port} is already taken by another process "
                f"(no live pid in {svc.pid_file}); stop it or choose another port"
            )
        binary = self._binary(svc)
        if svc is self._mqtt:
            svc.conf.write_text(self._mosquitto_conf())
            argv = [binary, "-c", str(svc.conf)]
        else:
            if not self._rpc_port:
                self._auto_rpc_port = free_port()
            svc.conf.write_text(self._influxdb_conf())
            argv = [binary, "-config", str(svc.conf)]
        with open(svc.log_file, "ab") as logf:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=svc.dir,
            )
        self._children[svc.name] = child
        svc.pid_file.write_text(f"{child.pid}\n")

    def _answers(self, svc: _Service) -> bool:
        """Whether what listens on the service's port speaks its protocol."""
        if svc is self._mqtt:
            return mqtt_connack(HOST, svc.port)
        query = InfluxQuery(self.influx_settings())
        try:
            return query.ping()
        finally:
            query.close()

    def _wait(self, svc: _Service, ready: Any, deadline: float) -> None:
        while True:
            child = self._children.get(svc.name)
            if child is not None and child.poll() is not None:
                raise ServiceError(
                    f"starting {svc.name} on {HOST}:{svc.port}: it exited with code {child.returncode}; "
                    f"last lines of {svc.log_file}:\n{_tail(svc.log_file)}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"starting {svc.name} on {HOST}:{svc.port}: not ready before the timeout; "
                    f"last lines of {svc.log_file}:\n{_tail(svc.log_file)}"
                )
            time.sleep(0.05)

    def _stop(self, svc: _Service, timeout_s: float) -> None:
        pid = svc.running_pid()
        child = self._children.pop(svc.name, None)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if child is not None and child.pid == pid:
                    if child.poll() is not None:
                        break
                elif not _runs(pid, svc.binary, svc.conf):
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=timeout_s)
        svc.pid_file.unlink(missing_ok=True)

    def _mosquitto_conf(self) -> str:
        persist = self._mqtt.dir / "data"
        persist.mkdir(parents=True, exist_ok=True)
        return (
            "# written by oddwatch (oddwatch/services.py)\n"
            f"user {getpass.getuser()}\n"  # as root, keep root instead of dropping to 'mosquitto'
            "per_listener_settings false\n"
            f"listener {self.mqtt_port} {HOST}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {persist}/\n"
            f"autosave_interval {MQTT_AUTOSAVE_S}\n"
            "autosave_on_changes false\n"
            "persistent_client_expiration 14d\n"
            f"max_queued_messages {MQTT_MAX_QUEUED}\n"
            f"max_queued_bytes {MQTT_MAX_QUEUED_BYTES}\n"
            f"max_inflight_messages {MQTT_MAX_INFLIGHT}\n"
            f"max_packet_size {MQTT_MAX_PACKET}\n"
            f"log_dest file {self._mqtt.log_file}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            "log_timestamp true\n"
        )

    def _influxdb_conf(self) -> str:
        base = self._influx.dir / "influxdb"
        for sub in ("meta", "data", "wal"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        return (
            "# written by oddwatch (oddwatch/services.py)\n"
            "reporting-disabled = true\n"
            f'bind-address = "{HOST}:{self._rpc_port or self._auto_rpc_port}"\n\n'
            f'[meta]\n  dir = "{base / "meta"}"\n\n'
            f'[data]\n  dir = "{base / "data"}"\n  wal-dir = "{base / "wal"}"\n'
            "  query-log-enabled = false\n\n"
            "[monitor]\n  store-enabled = false\n\n"
            "[subscriber]\n  enabled = false\n\n"
            f'[http]\n  enabled = true\n  bind-address = "{HOST}:{self.influx_port}"\n'
            "  log-enabled = false\n  pprof-enabled = false\n"
        )


def from_settings(settings: Settings) -> LocalServices:
    """LocalServices on the ports and state dir of *settings*."""
    port = urlsplit(settings.influx.url).port or 8086
    return LocalServices(
        expand(settings.services.state_dir),
        mqtt_port=settings.mqtt.port,
        influx_port=port,
        influx_rpc_port=settings.services.influx_rpc_port,
        database=settings.influx.database,
        start_timeout_s=settings.services.start_timeout_s,
    )
