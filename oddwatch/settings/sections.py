"""The settings sections: one dataclass per ``[section]`` of the TOML file, every default
written once, the :class:`Settings` that holds them all, and :class:`ConfigError`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oddwatch.params import LogParams, SeriesParams


class ConfigError(ValueError):
    """A setting has a value oddwatch cannot use; the message names section, key and value."""


@dataclass
class MqttSettings:
    host: str = "127.0.0.1"  # the broker's host name or address
    port: int = 1883  # the broker's port (8883 is the usual TLS port)
    username: str = ""  # empty: anonymous
    password: str = ""  # with username; also ODDWATCH_MQTT__PASSWORD
    client_id: str = "oddwatch"  # workers use f"{client_id}-{flow}-w{worker_index}"
    keepalive_s: int = 30  # seconds between MQTT pings
    qos: int = 1  # QoS of subscriptions and published alerts (1: at least once)
    session_expiry_s: int = 86400  # keep the broker-side session (and queue) for a day
    shared_group: str = ""  # non-empty: subscribe as $share/<group>/<filter>
    tls_ca: str = ""  # CA file: set to use TLS
    tls_cert: str = ""  # client certificate file (mutual TLS)
    tls_key: str = ""  # the client certificate's key file
    reconnect_min_s: float = 0.5  # first wait before reconnecting to a lost broker (doubles up to reconnect_max_s)
    reconnect_max_s: float = 1.0  # a returning broker is found within this long
    alerts_prefix: str = "oddwatch/alerts"  # alerts are published on <prefix>/<site>/<subject>
    deadletter_prefix: str = "oddwatch/deadletter"  # rejected messages are republished on <prefix>/<stream>/<reason>
    feedback_topic: str = "oddwatch/feedback/#"  # alert ids span several topic levels


@dataclass
class InfluxSettings:
    url: str = "http://127.0.0.1:8086"  # InfluxDB's HTTP API
    version: int = 1  # 1, 2 or 3: 1 writes /write?db=; 2 and 3 write /api/v2/write with a token
    database: str = "oddwatch"  # 1.x database (and the InfluxQL database of 2.x/3.x queries)
    retention_policy: str = ""  # empty: the database's default policy
    username: str = ""  # 1.x user (empty: no authentication)
    password: str = ""  # with username; also ODDWATCH_INFLUX__PASSWORD
    token: str = ""  # 2.x/3.x API token (a write token for the flows); also ODDWATCH_INFLUX__TOKEN
    org: str = ""  # 2.x organisation
    bucket: str = ""  # 2.x/3.x; defaults to database when empty
    batch_size: int = 5000  # points per write request at most
    flush_interval_s: float = 0.05  # longest a point waits in memory: bounds publish -> queryable
    timeout_s: float = 10.0  # seconds per HTTP request
    max_retries: int = 5  # attempts per batch before it waits in the spool
    retry_min_s: float = 0.2  # first wait between attempts (doubles up to retry_max_s)
    retry_max_s: float = 10.0  # longest wait between attempts
    spool_dir: str = ""  # batches InfluxDB has not accepted yet wait here on disk, per flow; empty: <[state] dir>/spool
    spool_max_bytes: int = 512 * 1024 * 1024  # the spool's size limit; beyond it the flow stops taking messages


@dataclass
class ServicesSettings:
    state_dir: str = "~/.local/state/oddwatch/services"  # where `oddwatch services` keeps Mosquitto's and InfluxDB's data, configs and logs (one folder per port)
    influx_rpc_port: int = 0  # InfluxDB 1.x backup/restore RPC bind port (loopback); 0: a free port
    start_timeout_s: float = 30.0  # seconds `oddwatch services up` waits for each service to answer


@dataclass
class StateSettings:
    """Where a flow keeps what must survive kill -9, stop and restart.

    ``<dir>/<flow>/wal`` holds the MQTT messages taken from the broker (acknowledged once
    appended there) and ``<dir>/<flow>/recovery`` the Bytewax snapshots (model state and each
    WAL partition's read offset). ``recovery = false`` reads MQTT directly (acknowledged as
    read): a crash or stop then loses what was in flight and the state since the start.
    """

    dir: str = ""  # WAL and snapshots, one folder per flow; empty: a folder of its own per config file (see default_state_dir)
    recovery: bool = True  # false: no WAL or snapshots (a stop or crash loses in-flight messages and model state)
    snapshot_s: float = 30.0  # Bytewax epoch and snapshot interval (each snapshot copies every changed state)
    fsync: str = "off"  # "off": appends survive kill -9 (page cache); "always": also power loss
    wal_segment_bytes: int = 16 * 1024 * 1024  # size of one WAL file; acknowledged segments are deleted after a snapshot


@dataclass
class Subscription:
    """One MQTT subscription and how its topic levels map to tags (Telegraf style).

    Log subscriptions may set their own windows; empty or 0 keeps the ``[log_detector]``
    value (e.g. block sessions for HDFS, 60 s tumbling windows for syslog).
    """

    topic: str
    tags: str  # e.g. "_/site/asset/sensor": '_' skips a level
    window_mode: str = ""  # session | tumbling | sliding
    window_by: str = ""  # time | count
    window_size_s: float = 0.0
    window_slide_s: float = 0.0
    window_size_lines: int = 0
    window_slide_lines: int = 0
    session_regex: str = ""
    session_gap_s: float = 0.0
    session_memory_s: float = 0.0

    def window_overrides(self) -> dict[str, Any]:
        """The window settings this subscription sets (the non-empty ones)."""
        names = ("window_mode", "window_by", "window_size_s", "window_slide_s", "window_size_lines",
                 "window_slide_lines", "session_regex", "session_gap_s", "session_memory_s")
        return {n: getattr(self, n) for n in names if getattr(self, n)}


def _sensor_subscriptions() -> list[Subscription]:
    return [Subscription(topic="plant/+/+/+", tags="_/site/asset/sensor")]


def _log_subscriptions() -> list[Subscription]:
    return [Subscription(topic="logs/+/+/+", tags="_/site/host/app")]


@dataclass
class SensorSettings:
    subscriptions: list[Subscription] = field(default_factory=_sensor_subscriptions)  # topics the sensor flow subscribes to and how their levels map to tags
    max_payload_bytes: int = 65536  # larger messages are rejected (reason too_large)
    max_future_s: float = 300.0  # readings stamped further ahead than this are rejected
    max_past_s: float = 7 * 86400.0  # readings older than this are rejected
    payload_overrides: list[str] = field(default_factory=list)  # line-protocol tags (site, asset, sensor) that may replace the topic's
    max_series: int = 10000  # series with state per flow worker (~150 KB each); more: over_capacity
    idle_evict_s: float = 86400.0  # a series silent this long gives its place to a new one


@dataclass
class LogSettings:
    subscriptions: list[Subscription] = field(default_factory=_log_subscriptions)  # topics the log flow subscribes to, their tags, and optionally their own windows
    max_payload_bytes: int = 65536  # larger messages are rejected (reason too_large)
    max_future_s: float = 300.0  # lines stamped further ahead than this are rejected
    max_past_s: float = 7 * 86400.0  # lines older than this are rejected
    payload_overrides: list[str] = field(default_factory=list)  # payload fields (host, app) that may replace the topic's
    max_sources: int = 1000  # log sources (site/host/app) with state per flow worker; more: over_capacity
    idle_evict_s: float = 86400.0  # a source silent this long gives its place to a new one


@dataclass
class AlertSettings:
    open_after: int = 1  # readings at or above the threshold before an alert opens
    close_after: int = 10  # readings below the threshold before it closes
    cooldown_s: float = 0.0  # no new alert for a series this soon after one closed ([series] quiet_after_alert counts readings)
    false_alerts_per_week: float = 1.0  # per asset and per log source: the thresholds aim at this many false alerts a week on normal data (logs: time windows; 0: [log_detector] q)
    series_false_alerts_per_week: float = 7.0  # per sensor: the level at which a sensor's check counts as evidence
    asset_window_s: float = 300.0  # sensors raised this close in time are one asset-level event
    asset_min_sensors: int = 2  # sensors raised together that open an asset alert (one alone needs the asset's budget)
    log_close_after: int = 3  # normal windows before a log alert closes
    log_cooldown_s: float = 0.0  # no new log alert for a source this soon after one closed (0: a false alert never hides the next)
    budget_per_source_per_hour: int = 6  # warning alerts per source and hour before they are grouped into a summary alert
    budget_global_per_hour: int = 60  # warning alerts per hour over all sources before they are grouped
    budget_summary_every: int = 10  # held alerts between two updated summaries within an hour
    budget_counts: str = "alerts"  # "incidents": the flows pass every alert; the incidents flow budgets incidents


@dataclass
class AssetRule:
    """Sources (globs over ``site/asset/sensor`` and ``site/host/app`` keys) that make up one asset."""

    asset: str
    sources: list[str] = field(default_factory=list)
    site: str = ""  # empty: the site of each matching source


@dataclass
class AssetSettings:
    """Asset mapping; a source no rule matches belongs to the asset (or host) named in its key."""

    map: list[AssetRule] = field(default_factory=list)  # [[assets.map]] rules: asset, sources (globs), site


@dataclass
class IncidentSettings:
    join_s: float = 600.0  # an alert opened this soon after the incident's latest alert joins it
    group_by: str = "asset"  # or "site": every asset of a site joins one incident
    topic_prefix: str = "oddwatch/incidents"  # incidents are published on <prefix>/<site>/<asset>
    max_story: int = 40  # story lines kept per incident (the first and the latest)
    stale_s: float = 86400.0  # an open incident without alert activity this long closes as stale


@dataclass
class QualitySettings:
    precision_floor: float = 0.5  # a source judged below this precision is reported
    min_judged: int = 5  # verdicts (confirmed + false positives) before precision is compared
    recent_false_positives: int = 5  # false positives listed with a source below the floor
    topic_prefix: str = "oddwatch/quality"  # precision in operation is published on <prefix>/<source>


@dataclass
class MetricsSettings:
    enabled: bool = True  # serve Prometheus /metrics and write the pipeline measurement
    host: str = "127.0.0.1"  # address the /metrics endpoints listen on (0.0.0.0: every interface)
    port: int = 9464  # the sensor flow's /metrics
    logs_port: int = 9465  # the log flow's /metrics
    incidents_port: int = 9466  # the incidents flow's /metrics

    def port_of(self, flow: str) -> int:
        """The metrics port of *flow* (``sensors``, ``logs`` or ``incidents``)."""
        return {"logs": self.logs_port, "incidents": self.incidents_port}.get(flow, self.port)


@dataclass
class Settings:
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    influx: InfluxSettings = field(default_factory=InfluxSettings)
    services: ServicesSettings = field(default_factory=ServicesSettings)
    state: StateSettings = field(default_factory=StateSettings)
    sensors: SensorSettings = field(default_factory=SensorSettings)
    logs: LogSettings = field(default_factory=LogSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    assets: AssetSettings = field(default_factory=AssetSettings)
    incidents: IncidentSettings = field(default_factory=IncidentSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    series: SeriesParams = field(default_factory=SeriesParams)
    log_detector: LogParams = field(default_factory=LogParams)

    def __post_init__(self) -> None:
        if not self.state.dir:
            self.state.dir = str(default_state_dir())
        if not self.influx.spool_dir:
            self.influx.spool_dir = str(Path(self.state.dir).expanduser() / "spool")


def default_state_dir(origin: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``[state] dir`` when the config leaves it empty: a folder of its own per config file.

    ``$XDG_STATE_HOME/oddwatch/state/<name>-<hash>`` (``~/.local/state`` when unset), where
    the hash is of the config file's absolute path, or of the working directory when there is
    no config file: two checkouts, or two configs, never share a WAL or a snapshot.

    >>> p = default_state_dir(Path("/srv/plant/oddwatch.toml"), env={"XDG_STATE_HOME": "/var/lib/x"})
    >>> str(p.parent), p.name.startswith("plant-oddwatch-")
    ('/var/lib/x/oddwatch/state', True)
    """
    import hashlib
    import os
    import re

    env = os.environ if env is None else env
    key = Path(origin).absolute() if origin is not None else Path.cwd().absolute()
    name = f"{key.parent.name}-{key.stem}" if origin is not None else key.name or "root"
    digest = hashlib.sha256(str(key).encode()).hexdigest()[:8]
    base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "oddwatch" / "state" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}-{digest}"


def expand(path: str) -> Path:
    """A settings path with ``~`` expanded."""
    return Path(path).expanduser()
