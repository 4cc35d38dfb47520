"""Cross-field checks of loaded settings, raised as :class:`ConfigError` naming the setting and its value."""

from __future__ import annotations

import dataclasses
import re

from oddwatch.params import BYS, MODES, LogParams
from oddwatch.settings.sections import ConfigError, Settings

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
    for name in ("false_alerts_per_week", "series_false_alerts_per_week", "asset_window_s"):
        value = getattr(s.alerts, name)
        if not (isinstance(value, (int, float)) and value >= 0 and value != float("inf")):
            raise ConfigError(f"[alerts].{name} = {value!r}: must be a finite number >= 0 (0 turns the budget off)")
    if s.alerts.asset_min_sensors < 1:
        raise ConfigError(f"[alerts].asset_min_sensors = {s.alerts.asset_min_sensors!r}: must be at least 1")
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
