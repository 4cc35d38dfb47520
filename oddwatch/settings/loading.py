"""Loading settings: TOML file and ``ODDWATCH_<SECTION>__<KEY>`` environment overrides into
typed sections, and back out as masked plain data, TOML and the commented sample file."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oddwatch.settings.sections import ConfigError, Settings, default_state_dir
from oddwatch.settings.validation import validate

SECRET_KEYS = frozenset({"password", "token"})
ENV_PREFIX = "ODDWATCH_"


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
    return build_settings(data, origin=path)


def build_settings(data: Mapping[str, Any], *, origin: Path | None = None) -> Settings:
    """Settings from a parsed mapping; unknown sections or keys and bad values raise ConfigError.

    An empty ``[state] dir`` becomes the folder of *origin* (the config file; the working
    directory when None) under :func:`~oddwatch.settings.sections.default_state_dir`.
    """
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    state = data.get("state")
    if not (isinstance(state, Mapping) and state.get("dir")):
        data = {**data, "state": {**(state if isinstance(state, Mapping) else {}),
                                  "dir": str(default_state_dir(origin))}}
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


def to_toml(data: Mapping[str, Any], *, comments: bool = False) -> str:
    """Render settings (as from :func:`as_dict`) as TOML; with *comments*, each section and key
    preceded by its comment from the settings classes (:mod:`oddwatch.settings.comments`)."""
    from oddwatch.settings.comments import field_comments, section_comment

    lines: list[str] = []
    for section, body in data.items():
        cls = section_class(section) if comments else None
        keys = field_comments(cls) if cls else {}
        if cls and section_comment(cls):
            lines += _comment(section_comment(cls))
        lines.append(f"[{section}]")
        tables = []
        for key, value in body.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                tables.append((key, value))
            else:
                if key in keys:
                    lines += _comment(keys[key])
                lines.append(f"{key} = {_toml_value(value)}")
        for key, entries in tables:
            if key in keys:
                lines += ["", *_comment(keys[key])]
            for entry in entries:
                lines.append(f"\n[[{section}.{key}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in entry.items() if v not in ("", 0, 0.0))
        lines.append("")
    return "\n".join(lines)


def _comment(text: str, width: int = 96) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent="# ", subsequent_indent="# ")


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
    data = as_dict(Settings(), mask=False)
    data["state"]["dir"] = data["influx"]["spool_dir"] = ""  # resolved per config file when loaded
    return header + to_toml(data, comments=True) + SESSION_PROFILE


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
