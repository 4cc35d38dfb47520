"""The settings sections: one dataclass per ``[section]`` of the TOML file, every default
written once, the :class:`Settings` that holds them all, and :class:`ConfigError`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from oddwatch.params import (
    AlertSettings,
    AssetRule,
    AssetSettings,
    IncidentSettings,
    LogParams,
    LogSettings,
    QualitySettings,
    SensorSettings,
    SeriesParams,
    Subscription,
)

__all__ = [
    "AlertSettings", "AssetRule", "AssetSettings", "ConfigError", "IncidentSettings", "InfluxSettings",
    "LogSettings", "MetricsSettings", "MqttSettings", "QualitySettings", "SensorSettings", "ServicesSettings",
    "Settings", "StateSettings", "Subscription", "expand",
]


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
