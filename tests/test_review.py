"""``oddwatch alerts``, ``explain`` and ``report`` against a real InfluxDB, on points written here."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oddwatch.cli import main
from oddwatch.connectors.influx import InfluxQuery, InfluxWriter
from oddwatch.lineproto import to_line
from oddwatch.records import Alert, Point
from oddwatch.review import ReviewError, find_alert, list_alerts, parse_since, story
from oddwatch.schema import alert_points
from oddwatch.settings import as_dict, to_toml

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(minutes=70)


def sensor_points(site: str) -> list[Point]:
    points = []
    for i in range(60):
        spike = 40 <= i < 46
        value = 30.0 if spike else 10.0 + (i % 3) * 0.1
        score = 0.95 if spike else 0.2
        points.append(Point("sensor_score", {"site": site, "asset": "pump1", "sensor": "temp", "detector": "ensemble"},
                            {"value": value, "score": score, "threshold": 0.8, "expected_low": 9.5,
                             "expected_high": 10.8, "is_anomaly": spike, "alert_open": spike},
                            T0 + timedelta(minutes=i)))
    opened = T0 + timedelta(minutes=40)
    common: dict[str, Any] = dict(alert_id=f"{site}/pump1/temp:{int(opened.timestamp())}", source="sensor",
                                  severity="critical", site=site, subject="pump1", score=0.95, threshold=0.8,
                                  opened_at=opened)
    points += alert_points(Alert(kind="open", title="temp on s/pump1: value 30 <above> expected range",
                                 text="temp on s/pump1: value 30, expected [9.5, 10.8]; anomaly score 0.950 >= "
                                      "threshold 0.800", ts=opened + timedelta(minutes=2), **common))
    points += alert_points(Alert(kind="close", title="temp: back to normal", text="closed",
                                 ts=T0 + timedelta(minutes=46), **common))
    return points


def log_points(site: str) -> list[Point]:
    points = []
    for i in range(20):
        novel = i == 12
        fields: dict[str, Any] = {"novelty": 0.9 if novel else 0.1, "threshold": 0.6, "lines": 50, "templates": 4,
                                  "is_anomaly": novel, "window_id": f"w{i}", "start_ms": 0.0, "end_ms": 0.0}
        if novel:
            fields |= {"novel_template": "Failed password for <*> from <*>", "example": "Failed password for root from 10.0.0.9"}
        points.append(Point("log_window", {"site": site, "host": "gw1", "app": "sshd"}, fields,
                            T0 + timedelta(minutes=3 * i)))
    opened = T0 + timedelta(minutes=36)
    text = ("Log window w12 of s/gw1/sshd (... 50 lines, 4 templates) has novelty 0.900 >= threshold 0.600. "
            "New or rare templates: 'Failed password for <*> from <*>' (seen in 0 windows; e.g. "
            "'Failed password for root from 10.0.0.9'). Nearest normal window w11: Accepted publickey for deploy")
    points += alert_points(Alert(alert_id=f"{site}/gw1/sshd:{int(opened.timestamp())}", source="log", kind="open",
                                 severity="warning", site=site, subject="gw1/sshd",
                                 title="gw1/sshd on s: unusual log window (1 new or rare templates)", text=text,
                                 score=0.9, threshold=0.6, opened_at=opened, ts=opened))
    return points


@pytest.fixture
def site(services, unique: str) -> str:  # type: ignore[no-untyped-def]
    with InfluxWriter(services.settings().influx) as writer:
        writer.add([to_line(p) for p in sensor_points(unique) + log_points(unique)])
        assert writer.flush(10)
    return unique


@pytest.fixture
def config(services, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "oddwatch.toml"
    path.write_text(to_toml(as_dict(services.settings(), mask=False)))
    return str(path)


def test_parse_since_rejects_what_influxql_would_not_take() -> None:
    assert parse_since("7d") == timedelta(days=7)
    with pytest.raises(ReviewError, match="30m, 2h"):
        parse_since("2x")


def test_list_alerts_of_a_site_newest_first_and_open_only(services, site: str) -> None:  # type: ignore[no-untyped-def]
    query = InfluxQuery(services.settings().influx)
    alerts = list_alerts(query, since=timedelta(hours=3), site=site)
    assert [a.source for a in alerts] == ["sensor", "log"]  # opened at +40 and +36 min
    sensor, log = alerts
    assert sensor.state == "closed" and sensor.closed_at == T0 + timedelta(minutes=46)
    assert log.state == "open" and log.closed_at is None
    assert [a.alert_id for a in list_alerts(query, since=timedelta(hours=3), site=site, open_only=True)] == [log.alert_id]
    assert list_alerts(query, since=timedelta(minutes=10), site=site) == []


def test_sensor_story_has_values_against_band_and_threshold(services, site: str) -> None:  # type: ignore[no-untyped-def]
    query = InfluxQuery(services.settings().influx)
    alert = find_alert(query, f"{site}/pump1/temp:{int((T0 + timedelta(minutes=40)).timestamp())}")
    s = story(query, alert, NOW)
    text = "\n".join(s.lines)
    assert "values 10 to 10.2, expected about [9.5, 10.8]" in text
    assert "During: 7 readings, 6 at or above the threshold; peak score 0.950 (threshold 0.800)" in text
    assert s.png is not None and s.png.startswith(b"\x89PNG")


def test_log_story_lists_new_templates_with_examples(services, site: str) -> None:  # type: ignore[no-untyped-def]
    query = InfluxQuery(services.settings().influx)
    alert = find_alert(query, f"{site}/gw1/sshd:{int((T0 + timedelta(minutes=36)).timestamp())}")
    s = story(query, alert, NOW)
    assert "Nearest normal window w11: Accepted publickey for deploy" in s.lines
    assert ("  new template 'Failed password for <*> from <*>' in 1 window(s) (50 lines), "
            "e.g. 'Failed password for root from 10.0.0.9'") in s.lines
    assert s.png is not None


def test_cli_alerts_explain_and_report(site: str, config: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", config, "alerts", "--site", site, "--since", "3h"]) == 0
    out = capsys.readouterr().out
    ids = re.findall(rf"{site}/\S+:\d+", out)
    assert len(ids) == 2 and "anomaly score 0.950 >= threshold 0.800" in out
    assert main(["--config", config, "explain", ids[0], "--png", str(tmp_path / "a.png")]) == 0
    assert "During:" in capsys.readouterr().out and (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
    assert main(["--config", config, "explain", f"{site}/nope/x:1"]) == 2
    assert "oddwatch alerts --since 7d" in capsys.readouterr().err
    out_html = tmp_path / "report.html"
    assert main(["--config", config, "report", "--since", "3h", "--site", site, "--out", str(out_html)]) == 0
    page = out_html.read_text()
    assert "2 alert(s), 1 still open" in page
    assert "value 30 &lt;above&gt; expected range" in page and "<above>" not in page  # escaped
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "src='http" not in page  # self-contained


def test_incidents_are_listed_and_explained_with_their_story(services, site: str) -> None:  # type: ignore[no-untyped-def]
    from oddwatch.core.incidents import Incident
    from oddwatch.schema import incident_points

    opened = T0 + timedelta(minutes=36)
    story_text = (f"{opened:%H:%M:%S}Z log {site}/gw1/sshd: 1 new log message 'Failed password ...'\n"
                  f"{opened + timedelta(minutes=4):%H:%M:%S}Z sensor {site}/gw1/temp: level shift, value 71")
    inc = Incident(f"{site}/gw1:{int(opened.timestamp())}", "close", site, "gw1", "warning", "critical",
                   "gw1 on site: 2 alerts (sshd, temp) from log and sensor", story_text, 2,
                   (f"{site}/gw1/sshd", f"{site}/gw1/temp"), ("a:1", "b:2"), opened,
                   opened + timedelta(minutes=10), closed_at=opened + timedelta(minutes=10))
    with InfluxWriter(services.settings().influx) as writer:
        writer.add([to_line(p) for p in incident_points(inc)])
        assert writer.flush(10)
    query = InfluxQuery(services.settings().influx)
    listed = [a for a in list_alerts(query, since=timedelta(hours=3), site=site) if a.source == "incident"]
    assert [a.alert_id for a in listed] == [inc.incident_id] and listed[0].closed_at is not None
    told = story(query, find_alert(query, inc.incident_id))
    text = "\n".join(told.lines)
    assert "What happened, in time order:" in text and "level shift, value 71" in text and "a:1" in text


def warmup_points(site: str) -> list[Point]:
    """A series whose first readings (the warm-up) are stored without an expected range."""
    points = []
    for i in range(30):
        fields: dict[str, Any] = {"value": 50.0 if i >= 20 else 10.0, "score": 0.9 if i >= 20 else 0.1,
                                  "threshold": 0.8, "is_anomaly": i >= 20, "alert_open": i >= 20}
        if i >= 5:
            fields |= {"expected_low": 9.0, "expected_high": 11.0}
        points.append(Point("sensor_score", {"site": site, "asset": "fan", "sensor": "rpm", "detector": "ensemble"},
                            fields, T0 + timedelta(minutes=i)))
    opened = T0 + timedelta(minutes=20)
    points += alert_points(Alert(alert_id=f"{site}/fan/rpm:{int(opened.timestamp())}", source="sensor", kind="open",
                                 severity="warning", site=site, subject="fan", title="rpm on fan: level shift",
                                 text="level shift", score=0.9, threshold=0.8, opened_at=opened, ts=opened,
                                 details={"peak_severity": "critical"}))
    return points


def test_explain_and_report_reach_readings_without_an_expected_range(services, config: str, unique: str,  # type: ignore[no-untyped-def]
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with InfluxWriter(services.settings().influx) as writer:
        writer.add([to_line(p) for p in warmup_points(unique)])
        assert writer.flush(10)
    alert_id = f"{unique}/fan/rpm:{int((T0 + timedelta(minutes=20)).timestamp())}"
    assert main(["--config", config, "explain", alert_id, "--png", str(tmp_path / "w.png")]) == 0
    out = capsys.readouterr().out
    assert "expected about [9, 11]" in out and (tmp_path / "w.png").read_bytes().startswith(b"\x89PNG")
    assert main(["--config", config, "report", "--since", "3h", "--site", unique, "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "<span class='sev critical'>critical</span> (opened as warning)" in page  # the peak, not the open severity


def test_report_shows_incidents_with_their_alerts_each_alert_once(services, site: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from oddwatch.core.incidents import Incident
    from oddwatch.report import build_report
    from oddwatch.schema import incident_points

    sensor_id = f"{site}/pump1/temp:{int((T0 + timedelta(minutes=40)).timestamp())}"
    log_id = f"{site}/gw1/sshd:{int((T0 + timedelta(minutes=36)).timestamp())}"
    opened = T0 + timedelta(minutes=36)
    joined = Incident(f"{site}/pump1:{int(opened.timestamp())}", "open", site, "pump1", "warning", "critical",
                      "pump1: 2 alerts (sshd, temp)", "step one\nstep two", 2,
                      (f"{site}/gw1/sshd", f"{site}/pump1/temp"), (log_id, sensor_id), opened, opened)
    alone = Incident(f"{site}/gw1:{int(opened.timestamp()) + 1}", "open", site, "gw1", "warning", "warning",
                     "gw1: 1 alert (sshd)", "step", 1, (f"{site}/gw1/sshd",), (log_id,),
                     opened + timedelta(seconds=1), opened + timedelta(seconds=1))
    with InfluxWriter(services.settings().influx) as writer:
        writer.add([to_line(p) for inc in (joined, alone) for p in incident_points(inc)])
        assert writer.flush(10)
    page = build_report(InfluxQuery(services.settings().influx), since=timedelta(hours=3), site=site, now=NOW)
    assert page.count("Incident: ") == 1 and "Incident: pump1: 2 alerts (sshd, temp)" in page
    assert "gw1: 1 alert (sshd)" not in page  # a one-alert incident is its alert, shown once
    assert page.count(f"<code>{sensor_id}</code>") == 1 and page.count(f"<code>{log_id}</code>") == 1
    assert page.index("Incident: pump1") < page.index(f"<code>{sensor_id}</code>")
    assert "<span class='sev critical'>critical</span>" in page and "2 alert(s), 1 still open; 1 incident(s)" in page
    assert len(re.findall(r"data:image/png;base64,", page)) == 2


def test_report_renders_in_a_headless_browser(services, site: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import subprocess

    from oddwatch.report import build_report

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser (apt-get install -y chromium)")
    page = tmp_path / "report.html"
    page.write_text(build_report(InfluxQuery(services.settings().influx), since=timedelta(hours=3), site=site, now=NOW))
    shot = tmp_path / "report.png"
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1100,2000",
                           f"--screenshot={shot}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("<img") == 2 and "2 alert(s), 1 still open" in proc.stdout
    assert shot.read_bytes().startswith(b"\x89PNG")
