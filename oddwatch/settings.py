"""Settings: one typed dataclass per section, every default written once.

Loaded from a TOML file, then overridden by environment variables of the form
``ODDWATCH_<SECTION>__<KEY>`` (for example ``ODDWATCH_MQTT__PORT=1884``).

>>> s = load_settings(env={"ODDWATCH_MQTT__PORT": "1999"})
>>> s.mqtt.port
1999
>>> s.influx.database
'oddwatch'
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET_KEYS = frozenset({"password", "token"})
ENV_PREFIX = "ODDWATCH_"


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
    flush_interval_s: float = 0.2
    timeout_s: float = 10.0
    max_retries: int = 5
    retry_min_s: float = 0.2
    retry_max_s: float = 10.0
    spool_dir: str = "~/.local/state/oddwatch/spool"
    spool_max_bytes: int = 512 * 1024 * 1024


@dataclass
class ServicesSettings:
    state_dir: str = "~/.local/state/oddwatch/services"
    influx_rpc_port: int = 8088  # InfluxDB 1.x backup/restore RPC bind port (loopback)
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

    def window_overrides(self) -> dict[str, str | float | int]:
        """The window settings this subscription sets (the non-empty ones)."""
        names = ("window_mode", "window_by", "window_size_s", "window_slide_s", "window_size_lines",
                 "window_slide_lines", "session_regex", "session_gap_s")
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
    detector: str = "ensemble"


@dataclass
class LogSettings:
    subscriptions: list[Subscription] = field(default_factory=_log_subscriptions)
    max_payload_bytes: int = 65536
    max_future_s: float = 300.0
    max_past_s: float = 7 * 86400.0


@dataclass
class AlertSettings:
    open_after: int = 1  # readings at or above the threshold before an alert opens
    close_after: int = 10  # readings below the threshold before it closes
    cooldown_s: float = 14400.0  # no new alert for a series this soon after one closed (NAB-tuned)
    log_close_after: int = 3  # normal windows before a log alert closes
    log_cooldown_s: float = 600.0  # no new log alert for a source this soon after one closed
    budget_per_source_per_hour: int = 6
    budget_global_per_hour: int = 60
    budget_summary_every: int = 10  # held alerts between two updated summaries within an hour


@dataclass
class MetricsSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9464


def _series_params() -> Any:
    from oddwatch.core.series import SeriesParams  # lazy: oddwatch.core.series imports this module

    return SeriesParams()


def _log_params() -> Any:
    from oddwatch.core.log_pipeline import LogParams  # lazy, as above

    return LogParams()


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
    series: Any = field(default_factory=_series_params)  # oddwatch.core.series.SeriesParams
    log_detector: Any = field(default_factory=_log_params)  # oddwatch.core.log_pipeline.LogParams


def default_config_path(env: Mapping[str, str] = os.environ) -> Path | None:
    """``$ODDWATCH_CONFIG`` if set, else ``./oddwatch.toml`` if present, else None."""
    if env.get("ODDWATCH_CONFIG"):
        return Path(env["ODDWATCH_CONFIG"])
    local = Path("oddwatch.toml")
    return local if local.exists() else None


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, then the TOML file at *path*, then the environment."""
    env = os.environ if env is None else env
    path = Path(path) if path is not None else default_config_path(env)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX):]:
            continue
        section, key = name[len(ENV_PREFIX):].lower().split("__", 1)
        data.setdefault(section, {})[key] = raw
    return build_settings(data)


def build_settings(data: Mapping[str, Any]) -> Settings:
    """Settings from a parsed mapping; unknown sections or keys and bad values raise ConfigError."""
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    for section, body in data.items():
        if section not in sections:
            raise ConfigError(f"unknown config section [{section}]; known: {', '.join(sections)}")
        if not isinstance(body, Mapping):
            raise ConfigError(f"[{section}] must be a table, got {body!r}")
        cls = section_class(section)
        values[section] = _build_section(section, cls, body)
    settings = Settings(**values)
    validate(settings)
    return settings


def section_class(section: str) -> type:
    """The dataclass of a config section (some live beside the code they tune)."""
    factory = Settings.__dataclass_fields__[section].default_factory
    return type(factory())  # type: ignore[misc,operator]


def _build_section(section: str, cls: type, body: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in body.items():
        if key not in known:
            raise ConfigError(
                f"unknown key [{section}].{key} = {raw!r}; known keys: {', '.join(sorted(known))}"
            )
        kwargs[key] = _coerce(section, key, hints[key], raw)
    return cls(**kwargs)


def _coerce(section: str, key: str, hint: Any, raw: Any) -> Any:
    where = f"[{section}].{key} = {raw!r}"
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return raw.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{where}: expected true or false")
    if hint in (int, float):
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: expected a number")
        try:
            return hint(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {hint.__name__}") from None
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{where}: expected a string")
        return raw
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if isinstance(raw, str):
            raise ConfigError(f"{where}: set lists in the TOML file, not the environment")
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            return [_build_section(f"{section}.{key}", item, entry) for entry in raw]
        return [_coerce(section, key, item, entry) for entry in raw]
    return raw


def validate(s: Settings) -> None:
    """Cross-field checks with messages that name the setting and its value."""
    for section, key, value in (
        ("mqtt", "port", s.mqtt.port),
        ("services", "influx_rpc_port", s.services.influx_rpc_port),
        ("metrics", "port", s.metrics.port),
    ):
        if not 0 < value < 65536:
            raise ConfigError(f"[{section}].{key} = {value!r}: must be a port 1..65535")
    if s.mqtt.qos not in (0, 1, 2):
        raise ConfigError(f"[mqtt].qos = {s.mqtt.qos!r}: must be 0, 1 or 2")
    if s.influx.version not in (1, 2, 3):
        raise ConfigError(f"[influx].version = {s.influx.version!r}: must be 1, 2 or 3")
    if not s.influx.url.startswith(("http://", "https://")):
        raise ConfigError(f"[influx].url = {s.influx.url!r}: must start with http:// or https://")
    if s.influx.version in (2, 3) and not s.influx.token:
        raise ConfigError("[influx].token is empty: InfluxDB 2.x/3.x needs a token (ODDWATCH_INFLUX__TOKEN)")
    for name in ("batch_size", "spool_max_bytes"):
        if getattr(s.influx, name) <= 0:
            raise ConfigError(f"[influx].{name} = {getattr(s.influx, name)!r}: must be positive")
    for section in ("sensors", "logs"):
        for sub in getattr(s, section).subscriptions:
            if len(sub.topic.split("/")) != len(sub.tags.split("/")) and not sub.topic.endswith("#"):
                raise ConfigError(
                    f"[{section}].subscriptions topic {sub.topic!r} has "
                    f"{len(sub.topic.split('/'))} levels but tags {sub.tags!r} has "
                    f"{len(sub.tags.split('/'))}"
                )
    if s.state.fsync not in ("off", "always"):
        raise ConfigError(f"[state].fsync = {s.state.fsync!r}: must be 'off' or 'always'")
    if s.state.snapshot_s <= 0 or s.state.wal_segment_bytes <= 0:
        raise ConfigError("[state].snapshot_s and wal_segment_bytes must be positive")
    if s.alerts.open_after < 1 or s.alerts.close_after < 1:
        raise ConfigError("[alerts].open_after and close_after must be at least 1")


def as_dict(s: Settings, *, mask: bool = True) -> dict[str, Any]:
    """The effective settings as plain data, secrets masked."""
    out = dataclasses.asdict(s)
    if mask:
        for body in out.values():
            for key in body:
                if key in SECRET_KEYS and body[key]:
                    body[key] = "****"
    return out


def to_toml(data: Mapping[str, Any]) -> str:
    """Render settings (as from :func:`as_dict`) as TOML."""
    lines: list[str] = []
    for section, body in data.items():
        lines.append(f"[{section}]")
        tables = []
        for key, value in body.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                tables.append((key, value))
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, entries in tables:
            for entry in entries:
                lines.append(f"\n[[{section}.{key}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in entry.items() if v not in ("", 0, 0.0))
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def sample_toml() -> str:
    """The full default configuration as a commented TOML file."""
    header = (
        "# oddwatch configuration: every key with its default.\n"
        "# Environment overrides: ODDWATCH_<SECTION>__<KEY>, e.g. ODDWATCH_MQTT__HOST.\n\n"
    )
    return header + to_toml(as_dict(Settings(), mask=False))


def expand(path: str) -> Path:
    """A settings path with ``~`` expanded."""
    return Path(path).expanduser()
