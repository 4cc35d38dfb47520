"""InfluxDB 2.x/3.x writes through influxdb-client, against a loopback server that answers
/api/v2/write the way InfluxDB 2.7 does (status codes, JSON error bodies, partial writes)."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oddwatch.connectors.influx import InfluxWriter
from oddwatch.connectors.influx2 import V2Transport
from oddwatch.settings import InfluxSettings

pytest.importorskip("influxdb_client")

TOKEN, ORG, BUCKET = "s3cret-token", "acme", "plant"


@dataclass
class Recorded:
    """What the server saw and how it answers."""

    requests: list[dict[str, object]] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before writing again
    down: bool = False  # close connections without answering
    buckets: tuple[str, ...] = (BUCKET,)


def make_handler(rec: Recorded) -> type[http.server.BaseHTTPRequestHandler]:
    class InfluxDB27(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body else b""
            self.send_response(status)
            self.send_header("X-Influxdb-Build", "OSS")
            self.send_header("X-Influxdb-Version", "v2.7.11")
            if data:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if rec.down:
                self.close_connection = True
                self.connection.close()
                return
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            rec.requests.append({"path": url.path, "query": query, "auth": self.headers.get("Authorization"),
                                 "encoding": self.headers.get("Content-Encoding"), "body": body.decode()})
            if url.path != "/api/v2/write":
                return self._answer(404, {"code": "not found", "message": "path not found"})
            if self.headers.get("Authorization") != f"Token {TOKEN}":
                return self._answer(401, {"code": "unauthorized", "message": "unauthorized access"})
            if query.get("bucket") not in rec.buckets:
                return self._answer(404, {"code": "not found", "message": f'bucket "{query.get("bucket")}" not found'})
            if rec.fail_next:
                status = rec.fail_next.pop(0)
                return self._answer(status, {"code": "unavailable", "message": "service unavailable"})
            lines = [x for x in body.decode().split("\n") if x]
            bad = [x for x in lines if "=" not in x.split(" ", 1)[-1]]
            rec.stored.extend(x for x in lines if x not in bad)  # 2.x keeps the good lines of a partial write
            if bad:
                return self._answer(400, {"code": "invalid", "message": f"partial write: unable to parse '{bad[0]}': "
                                                                        "missing fields"})
            return self._answer(204)

        def log_message(self, *args: object) -> None:
            pass

    return InfluxDB27


@pytest.fixture
def server() -> Iterator[tuple[str, Recorded]]:
    rec = Recorded()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rec))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", rec
    finally:
        httpd.shutdown()
        httpd.server_close()


def settings(url: str, tmp_path: Path, **kw: object) -> InfluxSettings:
    base: dict[str, object] = dict(url=url, version=2, token=TOKEN, org=ORG, bucket=BUCKET, spool_dir=str(tmp_path),
                                   retry_min_s=0.01, retry_max_s=0.05, max_retries=2, timeout_s=5.0,
                                   flush_interval_s=0.02)
    base.update(kw)
    return InfluxSettings(**base)  # type: ignore[arg-type]


def test_writes_go_through_the_client_with_token_org_bucket_ns(server: tuple[str, Recorded], tmp_path: Path) -> None:
    url, rec = server
    with InfluxWriter(settings(url, tmp_path)) as writer:
        assert isinstance(writer._v2, V2Transport)
        writer.add(["m,k=a v=1.0 1", "m,k=b v=2.0 2"])
        assert writer.flush(5)
        assert writer.written == 2
    (req,) = rec.requests
    assert req["path"] == "/api/v2/write" and req["auth"] == f"Token {TOKEN}"
    assert req["query"] == {"org": ORG, "bucket": BUCKET, "precision": "ns"}
    assert req["body"] == "m,k=a v=1.0 1\nm,k=b v=2.0 2"
    assert rec.stored == ["m,k=a v=1.0 1", "m,k=b v=2.0 2"]


def test_influxdb3_uses_the_database_as_bucket(server: tuple[str, Recorded], tmp_path: Path) -> None:
    url, rec = server
    with InfluxWriter(settings(url, tmp_path, version=3, org="", bucket="", database=BUCKET)) as writer:
        writer.add(["m v=1.0 1"])
        assert writer.flush(5)
    assert rec.requests[0]["query"]["bucket"] == BUCKET  # type: ignore[index]
    assert rec.requests[0]["query"].get("org", "") == ""  # type: ignore[union-attr]


def test_a_bad_line_is_isolated_and_the_good_ones_land(server: tuple[str, Recorded], tmp_path: Path) -> None:
    url, rec = server
    with InfluxWriter(settings(url, tmp_path)) as writer:
        writer.add(["m v=1.0 1", "m 2", "m v=3.0 3", "m v=4.0 4"])
        assert writer.flush(5)
        assert (writer.written, writer.rejected, writer.dropped) == (3, 1, 0)
    assert sorted(set(rec.stored)) == ["m v=1.0 1", "m v=3.0 3", "m v=4.0 4"]


def test_503_and_429_are_retried(server: tuple[str, Recorded], tmp_path: Path) -> None:
    url, rec = server
    rec.fail_next = [503, 429]
    with InfluxWriter(settings(url, tmp_path)) as writer:
        writer.add(["m v=1.0 1"])
        assert writer.flush(5)
        assert writer.written == 1 and writer.retries == 2 and writer.spooled == 0
    assert rec.stored == ["m v=1.0 1"]


def test_wrong_token_keeps_the_data_in_the_spool(server: tuple[str, Recorded], tmp_path: Path) -> None:
    url, rec = server
    writer = InfluxWriter(settings(url, tmp_path, token="wrong"))
    try:
        writer.add(["m v=1.0 1"])
        assert not writer.flush(0.5)
        assert writer.written == 0 and writer.dropped == 0 and writer.spooled == 1
    finally:
        writer.close(0.1)
    assert rec.stored == [] and rec.requests[0]["auth"] == "Token wrong"
    transport = V2Transport(settings(url, tmp_path, token="wrong"))
    outcome, message = transport.post(["m v=1.0 1"])
    transport.close()
    assert outcome == "fail" and message == "HTTP 401: unauthorized access"
    # The spool is drained by the next writer with the right token.
    with InfluxWriter(settings(url, tmp_path)) as writer:
        assert writer.flush(5)
    assert rec.stored == ["m v=1.0 1"]


def test_unreachable_server_spools_then_drains(server: tuple[str, Recorded], tmp_path: Path) -> None:
    url, rec = server
    rec.down = True
    with InfluxWriter(settings(url, tmp_path)) as writer:
        writer.add(["m v=1.0 1", "m v=2.0 2"])
        assert not writer.flush(0.5)
        assert writer.spooled == 2 and writer.dropped == 0
        rec.down = False
        assert writer.flush(5)
        assert writer.written == 2
    assert rec.stored == ["m v=1.0 1", "m v=2.0 2"]


def test_unknown_bucket_is_an_operator_error(server: tuple[str, Recorded], tmp_path: Path) -> None:
    url, _ = server
    transport = V2Transport(settings(url, tmp_path, bucket="nope"))
    try:
        assert transport.post(["m v=1.0 1"]) == ("fail", 'HTTP 404: bucket "nope" not found')
    finally:
        transport.close()
