"""Settings: one typed dataclass per section, every default written once.

Loaded from a TOML file, then overridden by environment variables of the form
``ODDWATCH_<SECTION>__<KEY>`` (for example ``ODDWATCH_MQTT__PORT=1884``).

- :mod:`oddwatch.settings.sections`: the section dataclasses, :class:`Settings` and :class:`ConfigError`;
- :mod:`oddwatch.settings.loading`: TOML and environment in, plain data, TOML and the sample file out;
- :mod:`oddwatch.settings.validation`: the cross-field checks run on every load.

>>> s = load_settings(env={"ODDWATCH_MQTT__PORT": "1999"})
>>> s.mqtt.port
1999
>>> s.influx.database
'oddwatch'
"""

from __future__ import annotations

from oddwatch.settings.loading import (
    ENV_PREFIX,
    SECRET_KEYS,
    SESSION_PROFILE,
    as_dict,
    build_settings,
    default_config_path,
    load_settings,
    mask_url,
    sample_toml,
    section_class,
    to_toml,
)
from oddwatch.settings.sections import (
    AlertSettings,
    AssetRule,
    AssetSettings,
    ConfigError,
    IncidentSettings,
    InfluxSettings,
    LogSettings,
    MetricsSettings,
    MqttSettings,
    QualitySettings,
    SensorSettings,
    ServicesSettings,
    Settings,
    StateSettings,
    Subscription,
    expand,
)
from oddwatch.settings.validation import validate

__all__ = [
    "ENV_PREFIX",
    "SECRET_KEYS",
    "SESSION_PROFILE",
    "AlertSettings",
    "AssetRule",
    "AssetSettings",
    "ConfigError",
    "IncidentSettings",
    "InfluxSettings",
    "LogSettings",
    "MetricsSettings",
    "MqttSettings",
    "QualitySettings",
    "SensorSettings",
    "ServicesSettings",
    "Settings",
    "StateSettings",
    "Subscription",
    "as_dict",
    "build_settings",
    "default_config_path",
    "expand",
    "load_settings",
    "mask_url",
    "sample_toml",
    "section_class",
    "to_toml",
    "validate",
]
