"""The settings sections: one dataclass per ``[section]`` of the TOML file, every default
written once, the :class:`Settings` that holds them all, and :class:`ConfigError`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oddwatch.params import LogParams, SeriesParams


class ConfigError(ValueError):
    """A setting has a value oddwatch cannot use; the message names section, key and value."""


@dataclass
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = ""
    client_id: str = "oddwatch"  # workers use f"{client_id}-{flow}-w{worker_index}"
    keepalive_s: int = 30
    qos: int = 1
    session_expiry_s: int = 86400  # keep the broker-side session (and queue) for a day
    shared_group: str = ""  # non-empty: subscribe as $share/<group>/<filter>
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 1.0  # a returning broker is found within this long
    alerts_prefix: str = "oddwatch/alerts"
    deadletter_prefix: str = "oddwatch/deadletter"
    feedback_topic: str = "oddwatch/feedback/#"  # alert ids span several topic levels


@dataclass
class InfluxSettings:
    url: str = "http://127.0.0.1:8086"
    version: int = 1  # 1, 2 or 3: 1 writes /write?db=; 2 and 3 write /api/v2/write with a token
    database: str = "oddwatch"
    retention_policy: str = ""
    username: str = ""
    password: str = ""
    token: str = ""
    org: str = ""
    bucket: str = ""  # 2.x/3.x; defaults to database when empty
    batch_size: int = 5000
    flush_interval_s: float = 0.05  # longest a point waits in memory: bounds publish -> queryable
    timeout_s: float = 10.0
    max_retries: int = 5
    retry_min_s: float = 0.2
    retry_max_s: float = 10.0
    spool_dir: str = "~/.local/state/oddwatch/spool"
    spool_max_bytes: int = 512 * 1024 * 1024


@dataclass
class ServicesSettings:
    state_dir: str = "~/.local/state/oddwatch/services"
    influx_rpc_port: int = 0  # InfluxDB 1.x backup/restore RPC bind port (loopback); 0: a free port
    start_timeout_s: float = 30.0


@dataclass
class StateSettings:
    """Where a flow keeps what must survive kill -9, stop and restart.

    ``<dir>/<flow>/wal`` holds the MQTT messages taken from the broker (acknowledged once
    appended there) and ``<dir>/<flow>/recovery`` the Bytewax snapshots (model state and each
    WAL partition's read offset). ``recovery = false`` reads MQTT directly (acknowledged as
    read): a crash or stop then loses what was in flight and the state since the start.
    """

    dir: str = "~/.local/state/oddwatch/state"
    recovery: bool = True
    snapshot_s: float = 30.0  # Bytewax epoch and snapshot interval (each snapshot copies every changed state)
    fsync: str = "off"  # "off": appends survive kill -9 (page cache); "always": also power loss
    wal_segment_bytes: int = 16 * 1024 * 1024


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
    subscriptions: list[Subscription] = field(default_factory=_sensor_subscriptions)
    max_payload_bytes: int = 65536
    max_future_s: float = 300.0  # readings stamped further ahead than this are rejected
    max_past_s: float = 7 * 86400.0  # readings older than this are rejected
    payload_overrides: list[str] = field(default_factory=list)  # line-protocol tags (site, asset, sensor) that may replace the topic's
    max_series: int = 10000  # series with state per flow worker (~150 KB each); more: over_capacity
    idle_evict_s: float = 86400.0  # a series silent this long gives its place to a new one


@dataclass
class LogSettings:
    subscriptions: list[Subscription] = field(default_factory=_log_subscriptions)
    max_payload_bytes: int = 65536
    max_future_s: float = 300.0
    max_past_s: float = 7 * 86400.0
    payload_overrides: list[str] = field(default_factory=list)  # payload fields (host, app) that may replace the topic's
    max_sources: int = 1000  # log sources (site/host/app) with state per flow worker; more: over_capacity
    idle_evict_s: float = 86400.0  # a source silent this long gives its place to a new one


@dataclass
class AlertSettings:
    open_after: int = 1  # readings at or above the threshold before an alert opens
    close_after: int = 10  # readings below the threshold before it closes
    cooldown_s: float = 0.0  # no new alert for a series this soon after one closed ([series] quiet_after_alert counts readings)
    log_close_after: int = 3  # normal windows before a log alert closes
    log_cooldown_s: float = 0.0  # no new log alert for a source this soon after one closed (0: a false alert never hides the next)
    false_alerts_per_week: float = 1.0  # per log source (time windows): the novelty threshold is the score its normal windows pass this often; 0: [log_detector] q
    budget_per_source_per_hour: int = 6
    budget_global_per_hour: int = 60
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

    map: list[AssetRule] = field(default_factory=list)


@dataclass
class IncidentSettings:
    join_s: float = 600.0  # an alert opened this soon after the incident's latest alert joins it
    group_by: str = "asset"  # or "site": every asset of a site joins one incident
    topic_prefix: str = "oddwatch/incidents"
    max_story: int = 40  # story lines kept per incident (the first and the latest)
    stale_s: float = 86400.0  # an open incident without alert activity this long closes as stale


@dataclass
class QualitySettings:
    precision_floor: float = 0.5  # a source judged below this precision is reported
    min_judged: int = 5  # verdicts (confirmed + false positives) before precision is compared
    recent_false_positives: int = 5  # false positives listed with a source below the floor
    topic_prefix: str = "oddwatch/quality"


@dataclass
class MetricsSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
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


def expand(path: str) -> Path:
    """A settings path with ``~`` expanded."""
    return Path(path).expanduser()
