from __future__ import annotations

from pathlib import Path

import pytest

from flows.logs import SubscriptionParams
from oddwatch.settings import ConfigError, as_dict, load_settings, sample_toml


def test_sample_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "oddwatch.toml"
    path.write_text(sample_toml())
    loaded, defaults = as_dict(load_settings(path, env={}), mask=False), as_dict(load_settings(env={}), mask=False)
    for d in (loaded, defaults):  # a folder of its own per config file (tests/test_config_check.py)
        d["state"].pop("dir"), d["influx"].pop("spool_dir")
    assert loaded == defaults


def test_sample_is_commented_from_the_settings_source() -> None:
    text = sample_toml()
    assert "# longest a point waits in memory: bounds publish -> queryable\nflush_interval_s = 0.05" in text
    assert "# Where a flow keeps what must survive kill -9, stop and restart.\n[state]" in text
    assert "# readings in one shape\nwindow = 20" in text  # [series], inherited from the detector's params
    lines = text.splitlines()
    keys = [i for i, line in enumerate(lines) if " = " in line and not line.startswith(("#", "["))]
    assert sum(lines[i - 1].startswith("#") for i in keys) >= 0.6 * len(keys)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "oddwatch.toml"
    path.write_text('[mqtt]\nhost = "broker.plant"\nport = 1884\n[influx]\ndatabase = "ops"\n')
    env = {"ODDWATCH_MQTT__PORT": "8883", "ODDWATCH_INFLUX__URL": "http://influx:8086",
           "ODDWATCH_SERIES__WARMUP": "500", "ODDWATCH_METRICS__ENABLED": "false"}
    s = load_settings(path, env=env)
    assert (s.mqtt.host, s.mqtt.port, s.influx.url, s.influx.database) == ("broker.plant", 8883, "http://influx:8086", "ops")
    assert s.series.warmup == 500 and s.metrics.enabled is False


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"ODDWATCH_MQTT__PORT": "abc"}, ["[mqtt].port", "'abc'", "int"]),
        ({"ODDWATCH_MQTT__PORT": "70000"}, ["[mqtt].port", "70000"]),
        ({"ODDWATCH_MQTT__NOPE": "1"}, ["unknown key", "[mqtt].nope"]),
        ({"ODDWATCH_INFLUX__VERSION": "2"}, ["token"]),
        ({"ODDWATCH_INFLUX__URL": "influx:8086"}, ["[influx].url", "http://"]),
        ({"ODDWATCH_NOSECTION__X": "1"}, ["unknown config section"]),
        ({"ODDWATCH_SERIES__ALERT_RATIO": "-1"}, ["alert_ratio"]),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], words: list[str]) -> None:
    with pytest.raises((ConfigError, ValueError)) as err:
        load_settings(env=env)
    for word in words:
        assert word in str(err.value)


def test_secrets_are_masked() -> None:
    s = load_settings(env={"ODDWATCH_MQTT__PASSWORD": "hunter2", "ODDWATCH_INFLUX__TOKEN": "t0k"})
    shown = as_dict(s)
    assert shown["mqtt"]["password"] == "****" and shown["influx"]["token"] == "****"
    assert s.mqtt.password == "hunter2"


def test_log_subscriptions_set_their_own_windows(tmp_path: Path) -> None:
    path = tmp_path / "oddwatch.toml"
    path.write_text(
        '[[logs.subscriptions]]\ntopic = "hdfs/+/+/+"\ntags = "_/site/host/app"\n'
        'window_mode = "session"\nsession_regex = "blk_-?\\\\d+"\n\n'
        '[[logs.subscriptions]]\ntopic = "logs/+/+/+"\ntags = "_/site/host/app"\n'
        'window_mode = "tumbling"\nwindow_size_s = 30.0\n'
    )
    params = SubscriptionParams(load_settings(path, env={}))
    hdfs, syslog = params("hdfs/s1/dn1/datanode"), params("logs/s1/rtr1/bgpd")
    assert (hdfs.window_mode, hdfs.session_regex) == ("session", r"blk_-?\d+")
    assert (syslog.window_mode, syslog.window_size_s) == ("tumbling", 30.0)


def test_config_check_masks_passwords_and_credentials_in_urls() -> None:
    s = load_settings(env={"ODDWATCH_MQTT__PASSWORD": "hunter2",
                           "ODDWATCH_INFLUX__URL": "http://admin:hunter2@127.0.0.1:8086"})
    shown = as_dict(s)
    assert shown["mqtt"]["password"] == "****"
    assert shown["influx"]["url"] == "http://admin:****@127.0.0.1:8086"
    assert "hunter2" not in repr(shown)
