"""A deterministic, seeded network: syslog lines from routers, switches and servers.

Each site has a router (``bgpd``, ``ospfd``, ``ifmgr``), two switches (``ifmgr``, ``stp``),
a server (``sshd``, ``cron``, ``dhcpd``) and a web server (``nginx``, ``shop-api``). Lines are
published on ``logs/<site>/<host>/<app>`` as RFC 3164 text (network gear) or RFC 5424 text
(servers), or all in one format. Every app has frequent messages and a few rare ones.

After a warm-up, labelled incidents are injected, each on one source in its own time slot:

- ``new_message``: an error message never seen before, repeated a few times;
- ``burst``: a normally rare message of that source (auth failures, link flaps, 404s ...)
  at many times its usual rate;
- ``silence``: a busy source stops logging (nothing is published; the plan says when).

>>> from datetime import datetime, timezone
>>> sim = NetworkSimulation(seed=7, rate=50, duration_s=60, start=datetime(2026, 1, 1, tzinfo=timezone.utc))
>>> lines = list(sim)
>>> [i.kind for i in sim.plan.incidents]
['new_message', 'burst', 'silence', 'new_message', 'burst', 'silence']
>>> lines == list(NetworkSimulation(seed=7, rate=50, duration_s=60, start=sim.start))
True
>>> sorted({ln.label for ln in lines if ln.label})
['burst', 'new_message']
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

# RFC 5424 severity names, by numeric level
SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")

INCIDENT_KINDS = ("new_message", "burst", "silence")
DEFAULT_SITES = ("north", "south")

Render = Callable[[random.Random], str]


def _ip(r: random.Random, net: str = "10.1") -> str:
    return f"{net}.{r.randint(0, 7)}.{r.randint(2, 250)}"


def _mac(r: random.Random) -> str:
    return ":".join(f"{r.randint(0, 255):02x}" for _ in range(6))


USERS = ("deploy", "backup", "alice", "bob", "monitor")
JOBS = ("backup", "logrotate", "sync-inventory", "cleanup-tmp")
PATHS = ("items", "orders", "cart", "users/me", "search?q=pump")


@dataclass(frozen=True, slots=True)
class Template:
    """A message kind of an app: relative weight, syslog severity, and a renderer."""

    weight: float
    severity: int
    render: Render


#: (weight, severity, renderer) per app; weights below 1 are the rare messages.
APPS: dict[str, tuple[int, list[Template]]] = {
    "bgpd": (23, [
        Template(6, 6, lambda r: f"BGP: 10.0.0.{r.randint(1, 9)} sent keepalive, hold time 180, uptime {r.randint(1, 900)}h"),
        Template(0.3, 5, lambda r: f"%BGP-5-ADJCHANGE: neighbor 10.0.0.{r.randint(1, 9)} Down BGP Notification sent"),
        Template(0.3, 5, lambda r: f"%BGP-5-ADJCHANGE: neighbor 10.0.0.{r.randint(1, 9)} Up"),
    ]),
    "ospfd": (23, [
        Template(5, 6, lambda r: f"OSPF: hello sent on GigabitEthernet0/{r.randint(0, 7)} area 0"),
        Template(0.3, 5, lambda r: f"%OSPF-5-ADJCHG: Process 1, Nbr 10.255.0.{r.randint(1, 9)} on GigabitEthernet0/"
                                   f"{r.randint(0, 7)} from LOADING to FULL, Loading Done"),
    ]),
    "ifmgr": (23, [
        Template(5, 6, lambda r: f"interface GigabitEthernet0/{r.randint(0, 23)} in {r.randint(10**4, 10**7)} pkts "
                                 f"out {r.randint(10**4, 10**7)} pkts errors 0"),
        Template(0.25, 3, lambda r: f"%LINK-3-UPDOWN: Interface GigabitEthernet0/{r.randint(0, 23)}, changed state to down"),
        Template(0.25, 3, lambda r: f"%LINK-3-UPDOWN: Interface GigabitEthernet0/{r.randint(0, 23)}, changed state to up"),
    ]),
    "stp": (23, [
        Template(3, 6, lambda r: f"%SPANTREE-6-PORT_STATE: Port Gi1/0/{r.randint(1, 48)} instance {r.randint(1, 9)} "
                                 f"moving from learning to forwarding"),
        Template(0.2, 2, lambda r: f"%SPANTREE-2-TOPO_CHANGE: topology change detected on VLAN {r.randint(10, 99)}"),
    ]),
    "sshd": (4, [
        Template(4, 6, lambda r: f"Accepted publickey for {r.choice(USERS)} from {_ip(r)} port {r.randint(30000, 65000)} "
                                 f"ssh2: ED25519 SHA256:{r.getrandbits(48):012x}"),
        Template(4, 6, lambda r: f"pam_unix(sshd:session): session opened for user {r.choice(USERS)} by (uid=0)"),
        Template(3, 6, lambda r: f"pam_unix(sshd:session): session closed for user {r.choice(USERS)}"),
        Template(0.3, 4, lambda r: f"Failed password for invalid user {r.choice(('admin', 'oracle', 'test', 'pi'))} "
                                   f"from 203.0.113.{r.randint(2, 250)} port {r.randint(30000, 65000)} ssh2"),
    ]),
    "cron": (9, [
        Template(5, 6, lambda r: f"(root) CMD (/usr/local/bin/{r.choice(JOBS)}.sh)"),
        Template(2, 6, lambda r: "pam_unix(cron:session): session opened for user root by (uid=0)"),
        Template(0.2, 3, lambda r: f"(root) MAIL (mailed {r.randint(100, 900)} bytes of output but got status 0x004b)"),
    ]),
    "dhcpd": (3, [
        Template(3, 6, lambda r: f"DHCPDISCOVER from {_mac(r)} via eth0"),
        Template(3, 6, lambda r: f"DHCPOFFER on {_ip(r)} to {_mac(r)} via eth0"),
        Template(3, 6, lambda r: f"DHCPREQUEST for {_ip(r)} from {_mac(r)} via eth0"),
        Template(3, 6, lambda r: f"DHCPACK on {_ip(r)} to {_mac(r)} via eth0"),
        Template(0.2, 4, lambda r: f"DHCPNAK on {_ip(r)} to {_mac(r)} via eth0"),
    ]),
    "nginx": (16, [
        Template(10, 6, lambda r: f'{_ip(r)} - - "GET /api/v1/{r.choice(PATHS)} HTTP/1.1" 200 {r.randint(200, 9000)} '
                                  f"{r.randint(2, 80)}ms"),
        Template(2, 6, lambda r: f'{_ip(r)} - - "POST /api/v1/orders HTTP/1.1" 201 {r.randint(80, 400)} '
                                 f"{r.randint(10, 200)}ms"),
        Template(0.3, 4, lambda r: f'{_ip(r)} - - "GET /{r.choice(("wp-login.php", ".env", "admin"))} HTTP/1.1" 404 '
                                   f"{r.randint(100, 200)} 1ms"),
    ]),
    "shop-api": (16, [
        Template(8, 6, lambda r: f"order {r.randint(10**5, 10**6)} created for customer {r.randint(100, 9999)} "
                                 f"total {r.randint(5, 900)}.{r.randint(0, 99):02d} EUR in {r.randint(5, 90)} ms"),
        Template(4, 6, lambda r: f"health check ok: db=up cache=up queue_depth={r.randint(0, 12)}"),
        Template(0.3, 4, lambda r: f"payment provider slow: {r.randint(2000, 9000)} ms for order {r.randint(10**5, 10**6)}"),
    ]),
}

#: Messages never emitted in normal operation, per app (``new_message`` incidents).
NOVEL: dict[str, list[Render]] = {
    "bgpd": [lambda r: f"%BGP-3-NOTIFICATION: received from neighbor 10.0.0.{r.randint(1, 9)} 6/2 "
                       f"(cease: administrative shutdown) 0 bytes"],
    "ospfd": [lambda r: f"%OSPF-4-ERRRCV: Received invalid packet: mismatched area ID from backbone area on "
                        f"GigabitEthernet0/{r.randint(0, 7)}"],
    "ifmgr": [lambda r: f"%PM-4-ERR_DISABLE: bpduguard error detected on Gi0/{r.randint(0, 23)}, putting port in "
                        f"err-disable state"],
    "stp": [lambda r: f"%SPANTREE-2-LOOPGUARD_BLOCK: Loop guard blocking port GigabitEthernet1/0/{r.randint(1, 48)} "
                      f"on VLAN{r.randint(10, 99)}"],
    "sshd": [lambda r: f"fatal: mm_request_receive: read: Connection reset by peer [preauth] pid {r.randint(1000, 9999)}"],
    "cron": [lambda r: f"(CRON) error (grandchild #{r.randint(1000, 9999)} failed with exit status 127)"],
    "dhcpd": [lambda r: f"no free leases on subnet LAN-{r.randint(10, 99)} (10.1.{r.randint(0, 7)}.0/24)"],
    "nginx": [lambda r: f"worker process {r.randint(1000, 9999)} exited on signal 11 (core dumped)"],
    "shop-api": [lambda r: f"java.lang.OutOfMemoryError: Java heap space in OrderService.persist(order="
                           f"{r.randint(10**5, 10**6)})"],
}

#: Hosts of a site: (host, format in "mixed" mode, apps with their share of the site's lines).
HOSTS: tuple[tuple[str, str, tuple[tuple[str, float], ...]], ...] = (
    ("rtr-1", "rfc3164", (("bgpd", 2.0), ("ospfd", 2.0), ("ifmgr", 2.0))),
    ("sw-1", "rfc3164", (("ifmgr", 2.0), ("stp", 1.0))),
    ("sw-2", "rfc3164", (("ifmgr", 2.0), ("stp", 1.0))),
    ("srv-1", "rfc5424", (("sshd", 3.0), ("cron", 1.5), ("dhcpd", 2.0))),
    ("web-1", "rfc5424", (("nginx", 8.0), ("shop-api", 6.0))),
)


@dataclass(frozen=True, slots=True)
class SimLogLine:
    """One simulated log line: topic, time, the syslog payload, and its label."""

    topic: str
    ts: datetime
    payload: str
    msg: str
    level: str
    label: str | None = None
    incident_id: str | None = None

    @property
    def source(self) -> str:
        """``site/host/app``, the key the log flow uses."""
        return self.topic.split("/", 1)[1]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Incident:
    """One injected incident on a source (``site/host/app``) between start and end."""

    incident_id: str
    kind: str
    source: str
    start: datetime
    end: datetime
    example: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d


@dataclass(frozen=True)
class IncidentPlan:
    """Every incident of a run, and when the warm-up ended."""

    incidents: tuple[Incident, ...]
    warmup_end: datetime
    sources: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"warmup_end": self.warmup_end.isoformat(), "n_sources": len(self.sources),
                "incidents": [i.as_dict() for i in self.incidents]}


def format_syslog(fmt: str, *, ts: datetime, host: str, app: str, pid: int, severity: int, facility: int,
                  msg: str) -> str:
    """A syslog line in RFC 3164 or RFC 5424 text.

    >>> from datetime import timezone
    >>> t = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    >>> format_syslog("rfc3164", ts=t, host="h", app="a", pid=9, severity=3, facility=23, msg="m")
    '<187>Jan  2 03:04:05 h a[9]: m'
    >>> format_syslog("rfc5424", ts=t, host="h", app="a", pid=9, severity=6, facility=3, msg="m")
    '<30>1 2026-01-02T03:04:05.678Z h a 9 - - m'
    """
    pri = facility * 8 + severity
    if fmt == "rfc3164":
        return f"<{pri}>{ts:%b} {ts.day:>2} {ts:%H:%M:%S} {host} {app}[{pid}]: {msg}"
    if fmt == "rfc5424":
        stamp = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return f"<{pri}>1 {stamp} {host} {app} {pid} - - {msg}"
    raise ValueError(f"syslog format {fmt!r} is unknown; use rfc3164 or rfc5424")


def network_logs(*, seed: int, rate: float, duration_s: float, start: datetime,
                 sites: Sequence[str] = DEFAULT_SITES, syslog_format: str = "mixed",
                 warmup_frac: float = 0.25, incidents: bool = True,
                 n_incidents: int | None = None) -> Iterator[SimLogLine]:
    """Log lines of every source in time order, about ``rate`` lines per second in all.

    See :class:`NetworkSimulation` for the parameters; its ``plan`` lists the incidents.
    """
    return iter(NetworkSimulation(seed=seed, rate=rate, duration_s=duration_s, start=start, sites=sites,
                                  syslog_format=syslog_format, warmup_frac=warmup_frac,
                                  incidents=incidents, n_incidents=n_incidents))


@dataclass(frozen=True)
class _Source:
    site: str
    host: str
    app: str
    fmt: str
    share: float
    pid: int

    @property
    def key(self) -> str:
        return f"{self.site}/{self.host}/{self.app}"


class NetworkSimulation:
    """Seeded syslog traffic with labelled incidents; iterate it for :class:`SimLogLine`.

    Parameters
    ----------
    seed
        Same seed, same lines and incidents.
    rate
        Mean lines per second over all sources (Poisson arrivals), before incidents.
    duration_s, start
        Simulated seconds and the first possible timestamp (timezone-aware).
    sites
        Site names; each has the hosts of :data:`HOSTS`.
    syslog_format
        ``mixed`` (network gear RFC 3164, servers RFC 5424), ``rfc3164`` or ``rfc5424``.
    warmup_frac
        Fraction of the run without incidents.
    incidents, n_incidents
        Whether to inject incidents and how many (default three per site, kinds in turn).
    """

    def __init__(self, *, seed: int, rate: float, duration_s: float, start: datetime,
                 sites: Sequence[str] = DEFAULT_SITES, syslog_format: str = "mixed",
                 warmup_frac: float = 0.25, incidents: bool = True, n_incidents: int | None = None) -> None:
        for key, value in (("rate", rate), ("duration_s", duration_s)):
            if not value > 0:
                raise ValueError(f"network {key} must be > 0, got {value!r}")
        if syslog_format not in ("mixed", "rfc3164", "rfc5424"):
            raise ValueError(f"network syslog_format {syslog_format!r} must be mixed, rfc3164 or rfc5424")
        if start.tzinfo is None:
            raise ValueError(f"network start {start!r} must be timezone-aware")
        if not 0 <= warmup_frac < 1:
            raise ValueError(f"network warmup_frac must be in [0, 1), got {warmup_frac!r}")
        self.seed, self.rate, self.duration_s, self.start = seed, rate, duration_s, start
        rng = random.Random(f"{seed}/sources")
        self.sources = [
            _Source(site, host, app, fmt if syslog_format == "mixed" else syslog_format, share, rng.randint(200, 30000))
            for site in sites for host, fmt, apps in HOSTS for app, share in apps
        ]
        total = sum(s.share for s in self.sources)
        self.source_rate = {s.key: rate * s.share / total for s in self.sources}
        self.warmup_s = duration_s * warmup_frac
        count = (3 * len(sites) if n_incidents is None else n_incidents) if incidents else 0
        self.plan, self._extra = self._plan(random.Random(f"{seed}/plan"), count)

    def _plan(self, rng: random.Random, count: int) -> tuple[IncidentPlan, list[tuple[float, int, str, str, int]]]:
        """Incidents in equal slots after the warm-up, and the extra lines they inject."""
        warmup_end = self.start + timedelta(seconds=self.warmup_s)
        keys = tuple(s.key for s in self.sources)
        span = self.duration_s - self.warmup_s
        if count < 1 or span <= 0:
            return IncidentPlan((), warmup_end, keys), []
        slot = span / count
        busy = sorted(range(len(self.sources)), key=lambda i: -self.sources[i].share)[:4]
        found: list[Incident] = []
        extra: list[tuple[float, int, str, str, int]] = []  # (t, source index, incident id, kind, seed)
        for i in range(count):
            kind = INCIDENT_KINDS[i % len(INCIDENT_KINDS)]
            src = rng.choice(busy) if kind == "silence" else rng.randrange(len(self.sources))
            length = slot * rng.uniform(0.4, 0.6)
            t0 = self.warmup_s + i * slot + rng.uniform(0, slot - length)
            t1 = t0 + length
            iid = f"I{i + 1:03d}"
            source = self.sources[src]
            example = ""
            if kind != "silence":
                # bursts run at 15x the source's usual rate (new messages at 2x), at least 1/s
                lam = max(1.0, self.source_rate[source.key] * (15.0 if kind == "burst" else 2.0))
                t = t0
                while t <= t1:
                    extra.append((t, src, iid, kind, rng.getrandbits(32)))
                    t += rng.expovariate(lam)
                example = self._render_incident(source.app, kind, random.Random(0))[1]
            found.append(Incident(iid, kind, source.key, self.start + timedelta(seconds=t0),
                                  self.start + timedelta(seconds=t1), example))
        extra.sort()
        return IncidentPlan(tuple(found), warmup_end, keys), extra

    @staticmethod
    def _render_incident(app: str, kind: str, r: random.Random) -> tuple[int, str]:
        if kind == "new_message":
            return 3, r.choice(NOVEL[app])(r)
        rare = [t for t in APPS[app][1] if t.weight < 1]
        tpl = r.choice(rare)
        return tpl.severity, tpl.render(r)

    def __iter__(self) -> Iterator[SimLogLine]:
        return heapq.merge(self._normal(), self._incident_lines(), key=lambda ln: ln.ts)

    def _line(self, src: _Source, t: float, severity: int, msg: str, label: str | None = None,
              iid: str | None = None) -> SimLogLine:
        ts = self.start + timedelta(seconds=round(t, 6))
        facility = APPS[src.app][0]
        payload = format_syslog(src.fmt, ts=ts, host=src.host, app=src.app, pid=src.pid,
                                severity=severity, facility=facility, msg=msg)
        return SimLogLine(f"logs/{src.key}", ts, payload, msg, SEVERITIES[severity], label, iid)

    def _normal(self) -> Iterator[SimLogLine]:
        rng = random.Random(f"{self.seed}/lines")
        weights = [s.share for s in self.sources]
        silent = [(self.sources.index(next(s for s in self.sources if s.key == inc.source)),
                   (inc.start - self.start).total_seconds(), (inc.end - self.start).total_seconds())
                  for inc in self.plan.incidents if inc.kind == "silence"]
        tpl_weights = {app: [t.weight for t in tpls] for app, (_, tpls) in APPS.items()}
        t = rng.expovariate(self.rate)
        while t < self.duration_s:
            src_i = rng.choices(range(len(self.sources)), weights)[0]
            src = self.sources[src_i]
            tpl = rng.choices(APPS[src.app][1], tpl_weights[src.app])[0]
            msg = tpl.render(rng)
            if not any(i == src_i and a <= t <= b for i, a, b in silent):
                yield self._line(src, t, tpl.severity, msg)
            t += rng.expovariate(self.rate)

    def _incident_lines(self) -> Iterator[SimLogLine]:
        for t, src_i, iid, kind, sub_seed in self._extra:
            if t >= self.duration_s:
                continue
            src = self.sources[src_i]
            severity, msg = self._render_incident(src.app, kind, random.Random(sub_seed))
            yield self._line(src, t, severity, msg, kind, iid)
