"""InfluxDB connector against a real InfluxDB 1.6 (and a tiny fake HTTP server for 2.x/5xx)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from oddwatch.connectors.influx import InfluxError, InfluxQuery, InfluxSink, InfluxWriter, Spool
from oddwatch.flowrunner import wait_for
from oddwatch.lineproto import to_line
from oddwatch.records import Point
from oddwatch.services import LocalServices, free_port
from oddwatch.settings import InfluxSettings

T0 = 1_700_000_000_000_000_000


def _lines(measurement: str, n: int, start: int = 0) -> list[str]:
    return [f"{measurement},k=a v={float(i)} {T0 + i}" for i in range(start, start + n)]


def _count(services: Any, measurement: str) -> int:
    rows = services.query(f'SELECT count("v") FROM "{measurement}"')
    return int(rows[0]["count"]) if rows else 0


def test_write_and_read_back(services, unique: str) -> None:
    with InfluxWriter(services.settings().influx) as writer:
        writer.add(_lines(unique, 1200))
        assert writer.flush(10)
        assert writer.written == 1200
        assert writer.rejected == writer.dropped == writer.spooled == 0
    assert _count(services, unique) == 1200


def test_add_more_than_the_buffer_blocks_instead_of_dropping(services, unique: str) -> None:
    settings = services.settings(influx={"batch_size": 100})
    with InfluxWriter(settings.influx, max_buffer=300) as writer:
        writer.add(_lines(unique, 3000))
        assert writer.flush(10)
        assert writer.written == 3000 and writer.dropped == 0
    assert _count(services, unique) == 3000


def test_sink_in_dataflow_keeps_float_fields(services, unique: str) -> None:
    ts = datetime(2024, 1, 1, tzinfo=UTC)
    points = [
        Point(unique, {"site": "s1", "sensor": "t 1"}, {"value": 1.0, "score": 0, "is_anomaly": i % 2 == 0,
                                                         "note": 'a "q"\nb'}, ts + timedelta(seconds=i))
        for i in range(10)
    ]
    points.append(Point(unique, {"site": "s1"}, {"value": float("nan")}, ts))  # rejected, not a crash
    settings = services.settings().influx
    flow = Dataflow("influx_sink_test")
    op.output("out", op.input("in", flow, TestingSource(points)), InfluxSink(settings))
    run_main(flow)  # the sink's close() flushes the shared writer
    assert (Path(settings.spool_dir) / "influx_sink_test.out" / "lock").exists()  # per-flow spool
    rows = services.query(f'SELECT * FROM "{unique}" WHERE "sensor" = \'t 1\'')
    assert len(rows) == 10
    assert rows[0]["value"] == 1.0 and rows[0]["is_anomaly"] is True
    assert rows[0]["note"] == 'a "q"\\nb'
    types = {r["fieldKey"]: r["fieldType"] for r in services.query(f'SHOW FIELD KEYS FROM "{unique}"')}
    assert types["score"] == "integer" and types["value"] == "float"


def test_bad_lines_rejected_good_lines_land(services, unique: str) -> None:
    with InfluxWriter(services.settings().influx) as writer:
        writer.add(_lines(unique, 1))
        assert writer.flush(10)
        batch = _lines(unique, 50, start=1)
        batch[10] = f'{unique},k=a v="text" {T0 + 999}'  # field type conflict
        batch[30] = f"{unique},k=a v= {T0 + 998}"  # parse error
        writer.add(batch)
        assert writer.flush(10)
        assert writer.rejected == 2
        assert writer.written == 1 + 48
    assert _count(services, unique) == 49


def test_query_error_is_clear(services) -> None:
    with pytest.raises(InfluxError, match=r"/query failed.*SELEC"):
        services.query("SELEC nothing")


@pytest.fixture
def own_services(tmp_path: Path) -> Iterator[LocalServices]:
    local = LocalServices(tmp_path / "own", free_port(), free_port(), free_port())
    local.start()
    try:
        yield local
    finally:
        local.stop()


def _outage_settings(local: LocalServices, spool: Path) -> InfluxSettings:
    return InfluxSettings(
        url=local.influx_url, database=local.database, spool_dir=str(spool), flush_interval_s=0.05,
        max_retries=1, retry_min_s=0.05, retry_max_s=0.2, timeout_s=2.0, batch_size=200,
    )


@pytest.mark.integration
@pytest.mark.slow
def test_outage_spools_then_drains_in_order(own_services: LocalServices, tmp_path: Path) -> None:
    settings = _outage_settings(own_services, tmp_path / "spool")
    query = InfluxQuery(settings)
    with InfluxWriter(settings) as writer:
        writer.add(_lines("outage", 100))
        assert writer.flush(10)
        own_services.stop(which=("influx",))
        writer.add(_lines("outage", 500, start=100))
        assert wait_for(lambda: writer.spooled == 500)
        assert writer.spool_bytes > 0
        assert not writer.flush(0.3)
        writer.add(_lines("outage", 100, start=600))  # goes behind the spool
        own_services.start()
        assert writer.flush(20)
        assert writer.spool_bytes == 0 and writer.dropped == 0
        assert writer.written == 700
    rows = query.query('SELECT count("v") FROM "outage"')
    assert rows[0]["count"] == 700


@pytest.mark.integration
@pytest.mark.slow
def test_close_keeps_spool_for_next_start(own_services: LocalServices, tmp_path: Path) -> None:
    settings = _outage_settings(own_services, tmp_path / "spool")
    own_services.stop(which=("influx",))
    writer = InfluxWriter(settings)
    writer.add(_lines("restart", 300))
    writer.close(timeout=0.5)
    assert writer.spool_bytes > 0
    assert list((tmp_path / "spool").glob("seg-*.lp"))
    own_services.start()
    with InfluxWriter(settings) as again:
        assert again.flush(10)
        assert again.written == 300
    assert not list((tmp_path / "spool").glob("seg-*.lp"))
    assert InfluxQuery(settings).query('SELECT count("v") FROM "restart"')[0]["count"] == 300


def test_spool_full_drops_and_counts(tmp_path: Path) -> None:
    settings = InfluxSettings(
        url=f"http://127.0.0.1:{free_port()}", spool_dir=str(tmp_path), spool_max_bytes=4000,
        flush_interval_s=0.02, max_retries=0, retry_min_s=0.01, retry_max_s=0.05, timeout_s=1.0, batch_size=10,
    )
    writer = InfluxWriter(settings)
    lines = _lines("full", 200)
    writer.add(lines)
    assert wait_for(lambda: writer.spooled + writer.dropped == 200)
    writer.close(timeout=0.2)
    assert writer.dropped > 0 and writer.spooled > 0
    assert writer.spool_bytes <= 4000
    with pytest.raises(RuntimeError, match="closed"):
        writer.add(lines)


def test_spool_is_locked_per_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 10_000)
    try:
        with pytest.raises(RuntimeError, match="in use"):
            Spool(tmp_path, 10_000)
    finally:
        spool.close()


def test_spool_segments_drain_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1_000_000, segment_bytes=100)
    for i in range(20):
        spool.append([f"m v={i}", f"m v={i}.5"])
    spool.close()
    spool = Spool(tmp_path, 1_000_000, segment_bytes=100)  # reopened: same content
    seen: list[str] = []
    while spool.bytes:
        lines, size = spool.read(3)
        seen.extend(lines)
        spool.consume(size)
    spool.close()
    assert seen == [x for i in range(20) for x in (f"m v={i}", f"m v={i}.5")]


# --------------------------------------------------------------------------- fake server
class _Fake(http.server.BaseHTTPRequestHandler):
    statuses: list[int] = []
    requests: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append((self.path, dict(self.headers), body))
        status = type(self).statuses.pop(0) if type(self).statuses else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_server() -> Iterator[tuple[str, type[_Fake]]]:
    handler = type("Handler", (_Fake,), {"statuses": [], "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_v2_write_uses_token_and_bucket(fake_server: Any, tmp_path: Path) -> None:
    url, handler = fake_server
    settings = InfluxSettings(url=url, version=2, token="s3cret", org="acme", bucket="b1", spool_dir=str(tmp_path))
    with InfluxWriter(settings) as writer:
        writer.add(["m v=1.0 1"])
        assert writer.flush(5)
    path, headers, body = handler.requests[0]
    assert path.startswith("/api/v2/write?") and "org=acme" in path and "bucket=b1" in path
    assert "precision=ns" in path
    assert headers["Authorization"] == "Token s3cret"
    assert body == b"m v=1.0 1"


def test_v1_basic_auth_and_rp(fake_server: Any, tmp_path: Path) -> None:
    url, handler = fake_server
    settings = InfluxSettings(url=url, username="u", password="p", retention_policy="raw", spool_dir=str(tmp_path))
    with InfluxWriter(settings) as writer:
        writer.add(["m v=1.0 1"])
        assert writer.flush(5)
    path, headers, _ = handler.requests[0]
    assert path.startswith("/write?") and "db=oddwatch" in path and "rp=raw" in path
    assert headers["Authorization"].startswith("Basic ")


def test_5xx_and_429_are_retried(fake_server: Any, tmp_path: Path) -> None:
    url, handler = fake_server
    handler.statuses.extend([503, 429, 500])
    settings = InfluxSettings(url=url, spool_dir=str(tmp_path), retry_min_s=0.01, retry_max_s=0.02, max_retries=5)
    with InfluxWriter(settings) as writer:
        writer.add(["m v=1.0 1", "m v=2.0 2"])
        assert writer.flush(5)
        assert writer.retries == 3
        assert writer.written == 2 and writer.spooled == 0
    assert len(handler.requests) == 4


def test_escaping_survives_the_server(services, unique: str) -> None:
    ts = datetime(2024, 1, 1, tzinfo=UTC)
    tags = {"site": "plant 1,north", "host=name": "a=b", "path": "C:\\logs", "uni": "Zürich 東京"}
    fields: dict[str, float | int | bool | str] = {"msg": 'say "hi" \\ bye', "field key": 2.5, "line": "one\ntwo"}
    with InfluxWriter(services.settings().influx) as writer:
        writer.add([to_line(Point(f"{unique} m,x", tags, fields, ts))])
        assert writer.flush(10)
        assert writer.written == 1
    measurement = f"{unique} m,x".replace('"', '\\"')
    (row,) = services.query(f'SELECT * FROM "{measurement}"')
    assert {k: row[k] for k in tags} == tags
    assert row["msg"] == fields["msg"] and row["field key"] == 2.5
    assert row["line"] == "one\\ntwo"  # newlines are stored as the escape text
