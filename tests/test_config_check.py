"""``oddwatch config check`` rejects what the flows would reject at start, naming key, value and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from oddwatch.cli import main
from oddwatch.settings import ConfigError, build_settings, load_settings


@pytest.mark.parametrize(("data", "message"), [
    ({"log_detector": {"window_mode": "tumblin"}},
     "[log_detector].window_mode = 'tumblin': must be one of session, tumbling, sliding (did you mean 'tumbling'?)"),
    ({"log_detector": {"window_by": "lines"}}, "[log_detector].window_by = 'lines': must be one of time, count"),
    ({"log_detector": {"session_regex": "blk_(("}},
     "[log_detector].session_regex = 'blk_((' is not a valid regular expression"),
    ({"log_detector": {"weighting": "tf"}}, "[log_detector]: weighting = 'tf' must be count, tfidf, logtfidf or idf"),
    ({"log_detector": {"window_size_s": 0}}, "[log_detector]: window_size_s = 0.0 must be > 0"),
    ({"alerts": {"open_after": 2.5}},
     "[alerts].open_after = 2.5: expected a whole number (an integer setting), e.g. open_after = 2"),
    ({"log_detector": {"index_k": "3.7"}}, "[log_detector].index_k = '3.7': expected a whole number"),
    ({"series": {"window": 7}}, "[series]: sensor detector setting window = 7: must be >= 2 and a multiple of paa"),
    ({"series": {"q": 1.5}}, "[series]:"),
    ({"mqtt": {"port": 70000}}, "[mqtt].port = 70000: must be a port 1..65535"),
    ({"influx": {"version": 2, "token": "t"}}, "[influx].org is empty: InfluxDB 2.x writes need the organization"),
    ({"metrics": {"logs_port": 9464}}, "each flow needs its own metrics port"),
    ({"influx": {"url": "http://127.0.0.1:99999"}}, "[influx].url = 'http://127.0.0.1:99999': the port must be"),
    ({"logs": {"subscriptions": [{"topic": "logs/+/+/+", "tags": "_/site/host/app", "window_mode": "slide"}]}},
     "[[logs.subscriptions]] #1 topic 'logs/+/+/+': window_mode = 'slide': must be one of session, tumbling, "
     "sliding (did you mean 'sliding'?)"),
    ({"logs": {"subscriptions": [{"topic": "logs/+/+/+", "tags": "_/site/host/app", "session_regex": "["}]}},
     "[[logs.subscriptions]] #1 topic 'logs/+/+/+': session_regex = '[' is not a valid regular expression"),
])
def test_rejected_with_key_value_and_fix(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_settings(data)
    assert message in str(err.value)


def test_whole_floats_and_integer_strings_are_accepted() -> None:
    s = build_settings({"alerts": {"open_after": 3.0}, "log_detector": {"window_mode": "tumbling"}})
    assert s.alerts.open_after == 3 and isinstance(s.alerts.open_after, int)
    assert load_settings(env={"ODDWATCH_ALERTS__CLOSE_AFTER": "4"}).alerts.close_after == 4
    with pytest.raises(ConfigError, match="expected a whole number"):
        load_settings(env={"ODDWATCH_ALERTS__CLOSE_AFTER": "4.5"})


def test_config_check_exits_2_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "oddwatch.toml"
    cfg.write_text('[log_detector]\nwindow_mode = "tumblin"\n')
    assert main(["--config", str(cfg), "config", "check"]) == 2
    assert "did you mean 'tumbling'?" in capsys.readouterr().err
    cfg.write_text('[log_detector]\nwindow_mode = "tumbling"\n')
    assert main(["--config", str(cfg), "config", "check"]) == 0
    assert "config OK" in capsys.readouterr().err


def test_config_check_names_the_file_it_read_and_fails_for_a_missing_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    cfg = tmp_path / "oddwatch.toml"
    cfg.write_text('[log_detector]\nmodel = "nobody/not-a-model"\n')
    assert main(["--config", str(cfg), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert f"# read {cfg}" in err and "'nobody/not-a-model' is not on this machine" in err and "config OK" not in err
    cfg.write_text('[log_detector]\nmodel = "default"\n')
    assert main(["--config", str(cfg), "config", "check"]) == 0
    assert "config OK" in capsys.readouterr().err


def test_the_default_state_dir_is_per_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ODDWATCH_STATE__DIR", raising=False)
    monkeypatch.delenv("ODDWATCH_INFLUX__SPOOL_DIR", raising=False)
    dirs = []
    for checkout in ("a", "b"):
        cfg = tmp_path / checkout / "oddwatch.toml"
        cfg.parent.mkdir()
        cfg.write_text("")
        s = load_settings(cfg)
        assert s.state.dir.startswith(str(tmp_path / "xdg" / "oddwatch" / "state" / f"{checkout}-oddwatch-"))
        assert s.influx.spool_dir == str(Path(s.state.dir) / "spool")
        dirs.append(s.state.dir)
    assert dirs[0] != dirs[1] and load_settings(tmp_path / "a" / "oddwatch.toml").state.dir == dirs[0]
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "mine"}"\n')
    assert load_settings(cfg).state.dir == str(tmp_path / "mine")
