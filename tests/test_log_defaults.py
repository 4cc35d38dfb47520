"""Log window defaults: tumbling time windows per source; session windows an opt-in profile."""

from __future__ import annotations

import tomllib

from flows.logs import SubscriptionParams
from oddwatch.core.log_pipeline import LogParams
from oddwatch.settings import SESSION_PROFILE, Settings, build_settings, sample_toml


def test_default_windows_are_tumbling_time_windows() -> None:
    p = LogParams()
    assert (p.window_mode, p.window_by, p.window_size_s) == ("tumbling", "time", 60.0)
    assert p.window_params().mode == "tumbling"


def test_sample_config_documents_the_session_profile() -> None:
    text = sample_toml()
    assert text.endswith(SESSION_PROFILE)
    assert tomllib.loads(text)["log_detector"]["window_mode"] == "tumbling"
    profile = "\n".join(line[2:] for line in SESSION_PROFILE.splitlines()
                        if line.startswith("# [") or (line.startswith("# ") and " = " in line))
    settings = build_settings(tomllib.loads(profile))
    (hdfs,) = settings.logs.subscriptions
    params = SubscriptionParams(settings)
    p = params("hdfs/s1/dn1/datanode")
    assert (p.window_mode, p.session_regex, p.session_gap_s) == ("session", r"blk_-?\d+", 3600.0)
    assert SubscriptionParams(Settings())("logs/s1/web1/nginx").window_mode == "tumbling"
    assert hdfs.window_overrides()["window_mode"] == "session"
