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
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oddwatch.params import BYS, MODES, LogParams, SeriesParams

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
    log_cooldown_s: float = 600.0  # no new log alert for a source this soon after one closed
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
    """The dataclass of a config section."""
    cls: type = typing.get_type_hints(Settings)[section]
    return cls


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
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a params class that validates itself on construction
        raise ConfigError(f"[{section}]: {exc}") from None


def _coerce(section: str, key: str, hint: Any, raw: Any) -> Any:
    where = f"[{section}].{key} = {raw!r}"
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
            return raw.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{where}: expected true or false")
    if hint is int and (isinstance(raw, float) and not raw.is_integer()
                        or isinstance(raw, str) and not raw.strip().lstrip("+-").isdigit()):
        raise ConfigError(f"{where}: expected a whole number (an integer setting), e.g. {key} = "
                          f"{_whole_example(raw)}")
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


def _whole_example(raw: Any) -> str:
    """A whole number near *raw* for an error message ("2" for 2.5, "1" otherwise)."""
    try:
        return str(max(1, round(float(raw))))
    except (TypeError, ValueError):
        return "1"


# LogWindowParams field -> the [log_detector] key that sets it (messages name the config key).
_WINDOW_KEYS = {"mode": "window_mode", "by": "window_by", "size_s": "window_size_s", "slide_s": "window_slide_s",
                "size_lines": "window_size_lines", "slide_lines": "window_slide_lines"}


def _check_log_params(where: str, params: LogParams) -> None:
    """Everything the log flow checks at start, as ConfigError naming *where* (section or subscription)."""
    for key, allowed in (("window_mode", MODES), ("window_by", BYS)):
        value = getattr(params, key)
        if value not in allowed:
            near = [a for a in allowed if a.startswith(str(value)[:3])]
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{where}{key} = {value!r}: must be one of {', '.join(allowed)}{hint}")
    try:
        re.compile(params.session_regex)
    except re.error as exc:
        raise ConfigError(f"{where}session_regex = {params.session_regex!r} is not a valid regular expression "
                          f"({exc}); in TOML write it in single quotes, e.g. session_regex = 'blk_-?\\d+'") from None
    try:
        params.validate()
    except ValueError as exc:
        text = str(exc)
        for field_name, key in _WINDOW_KEYS.items():
            text = text.replace(f"LogWindowParams: {field_name} =", f"{key} =")
        text = text.replace("LogWindowParams: ", "").replace("LogParams: ", "")
        raise ConfigError(f"{where.rstrip('. :')}: {text}") from None


def validate(s: Settings) -> None:
    """Cross-field checks with messages that name the setting and its value."""
    for section, key, value in (
        ("mqtt", "port", s.mqtt.port),
        ("metrics", "port", s.metrics.port),
        ("metrics", "logs_port", s.metrics.logs_port),
        ("metrics", "incidents_port", s.metrics.incidents_port),
    ):
        if not 0 < value < 65536:
            raise ConfigError(f"[{section}].{key} = {value!r}: must be a port 1..65535")
    if not 0 <= s.services.influx_rpc_port < 65536:
        raise ConfigError(f"[services].influx_rpc_port = {s.services.influx_rpc_port!r}: must be a port "
                          "1..65535, or 0 for a free port chosen at start")
    ports = (s.metrics.port, s.metrics.logs_port, s.metrics.incidents_port)
    if len(set(ports)) < len(ports):
        raise ConfigError(f"[metrics] port, logs_port, incidents_port = {ports!r}: each flow needs its own metrics "
                          "port, e.g. 9464 (sensors), 9465 (logs) and 9466 (incidents)")
    if s.mqtt.qos not in (0, 1, 2):
        raise ConfigError(f"[mqtt].qos = {s.mqtt.qos!r}: must be 0, 1 or 2")
    if s.influx.version not in (1, 2, 3):
        raise ConfigError(f"[influx].version = {s.influx.version!r}: must be 1, 2 or 3")
    if not s.influx.url.startswith(("http://", "https://")):
        raise ConfigError(f"[influx].url = {s.influx.url!r}: must start with http:// or https://")
    if s.influx.version in (2, 3) and not s.influx.token:
        raise ConfigError("[influx].token is empty: InfluxDB 2.x/3.x needs a token (ODDWATCH_INFLUX__TOKEN)")
    if s.influx.version == 2 and not s.influx.org:
        raise ConfigError("[influx].org is empty: InfluxDB 2.x writes need the organization name "
                          "(ODDWATCH_INFLUX__ORG)")
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
    for section, allowed in (("sensors", ("site", "asset", "sensor")), ("logs", ("host", "app"))):
        for name in getattr(s, section).payload_overrides:
            if name not in allowed:
                raise ConfigError(f"[{section}].payload_overrides names {name!r}; it may name {', '.join(allowed)}")
    for section, key in (("sensors", "max_series"), ("logs", "max_sources")):
        if getattr(getattr(s, section), key) < 1:
            raise ConfigError(f"[{section}].{key} = {getattr(getattr(s, section), key)!r}: must be at least 1")
        if getattr(s, section).idle_evict_s < 0:
            raise ConfigError(f"[{section}].idle_evict_s = {getattr(s, section).idle_evict_s!r}: must be >= 0")
    if s.state.fsync not in ("off", "always"):
        raise ConfigError(f"[state].fsync = {s.state.fsync!r}: must be 'off' or 'always'")
    if s.state.snapshot_s <= 0 or s.state.wal_segment_bytes <= 0:
        raise ConfigError("[state].snapshot_s and wal_segment_bytes must be positive")
    if s.alerts.open_after < 1 or s.alerts.close_after < 1:
        raise ConfigError("[alerts].open_after and close_after must be at least 1")
    port = _url_port(s.influx.url)
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"[influx].url = {s.influx.url!r}: the port must be a number 1..65535, "
                          "e.g. http://127.0.0.1:8086")
    try:
        s.series.validate()
    except ValueError as exc:
        raise ConfigError(f"[series]: {exc}") from None
    _check_log_params("[log_detector].", s.log_detector)
    for i, sub in enumerate(s.logs.subscriptions):
        overrides = sub.window_overrides()
        if overrides:
            _check_log_params(f"[[logs.subscriptions]] #{i + 1} topic {sub.topic!r}: ",
                              dataclasses.replace(s.log_detector, **overrides))

    if s.alerts.budget_counts not in ("alerts", "incidents"):
        raise ConfigError(f"[alerts].budget_counts = {s.alerts.budget_counts!r}: must be alerts or incidents")
    if s.incidents.group_by not in ("asset", "site"):
        raise ConfigError(f"[incidents].group_by = {s.incidents.group_by!r}: must be asset or site")
    if s.incidents.join_s < 0 or s.incidents.max_story < 2 or s.incidents.stale_s <= s.incidents.join_s:
        raise ConfigError(f"[incidents].join_s = {s.incidents.join_s!r} must be >= 0, max_story = "
                          f"{s.incidents.max_story!r} >= 2 and stale_s = {s.incidents.stale_s!r} > join_s")
    for rule in s.assets.map:
        if not rule.asset or "/" in rule.asset or not rule.sources:
            raise ConfigError(f"[[assets.map]] asset = {rule.asset!r}: needs a name without '/' and at least "
                              f"one source glob (sources = {rule.sources!r})")
    if not 0.0 <= s.quality.precision_floor <= 1.0:
        raise ConfigError(f"[quality].precision_floor = {s.quality.precision_floor!r}: must be in [0, 1]")


def _url_port(url: str) -> int | None:
    """The explicit port of *url*, or None; -1 when it is not a number.

    >>> _url_port("http://h:8086"), _url_port("https://h"), _url_port("http://h:x")
    (8086, None, -1)
    """
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).port
    except ValueError:
        return -1


def as_dict(s: Settings, *, mask: bool = True) -> dict[str, Any]:
    """The effective settings as plain data, secrets masked (also passwords inside URLs)."""
    out = dataclasses.asdict(s)
    if mask:
        for body in out.values():
            for key in body:
                if key in SECRET_KEYS and body[key]:
                    body[key] = "****"
                elif isinstance(body[key], str) and "://" in body[key]:
                    body[key] = mask_url(body[key])
    return out


def mask_url(url: str) -> str:
    """*url* with the password of its ``user:password@`` part masked.

    >>> mask_url("http://admin:s3cret@db:8086/x"), mask_url("http://db:8086")
    ('http://admin:****@db:8086/x', 'http://db:8086')
    """
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:****@{host}{slash}{path}"


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
    return header + to_toml(as_dict(Settings(), mask=False)) + SESSION_PROFILE


SESSION_PROFILE = """
# Log windows are tumbling windows of event time per source ([log_detector] window_mode,
# window_size_s), which fit any syslog-like source. Logs that name a session id can be judged
# per session instead: e.g. HDFS, one window per block, closed after an hour without a line:
#
# [[logs.subscriptions]]
# topic = "hdfs/+/+/+"
# tags = "_/site/host/app"
# window_mode = "session"
# session_regex = 'blk_-?\\d+'
# session_gap_s = 3600.0
# session_memory_s = 0.0  # > 0: a block's later bursts are judged with the whole block so far
"""


def expand(path: str) -> Path:
    """A settings path with ``~`` expanded."""
    return Path(path).expanduser()
