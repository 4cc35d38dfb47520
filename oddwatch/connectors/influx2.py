"""InfluxDB 2.x / 3.x writes through the official ``influxdb-client`` (``[influx] version = 2|3``).

:class:`V2Transport` is what :class:`oddwatch.connectors.influx.InfluxWriter` posts a batch of
line-protocol lines through when the version is 2 or 3 (1.x keeps its plain ``/write``). The
client writes synchronously to ``/api/v2/write`` with the token, org, bucket and nanosecond
precision; its own retries are off, because the writer retries, splits and spools. Outcomes
map to the writer's:

- 2xx: ``ok``;
- 400, 413, 422 (bad lines, too large): ``reject``, so the writer splits the batch down to
  the bad lines and keeps the good ones;
- 429, 5xx, connection errors and timeouts: ``retry`` (backoff, then the spool);
- 401, 403, 404 (token, org or bucket wrong): ``fail``, kept in the spool until an operator acts.

InfluxDB 3 Core accepts the same ``/api/v2/write`` (``bucket`` = database; it ignores ``org``,
which may be empty).
"""

from __future__ import annotations

import json
from typing import Any

from oddwatch.settings import InfluxSettings

OK, REJECT, RETRY, FAIL = "ok", "reject", "retry", "fail"


def _detail(exc: Any) -> str:
    """The server's message of an ApiException (JSON ``message`` when there is one)."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            return str(json.loads(body).get("message") or body)[:1000]
        except (ValueError, AttributeError):
            return body.strip()[:1000]
    return str(getattr(exc, "reason", "") or exc)[:1000]


def classify(status: int) -> str:
    """The writer's outcome for an HTTP status.

    >>> [classify(s) for s in (204, 400, 413, 429, 503, 401, 404)]
    ['ok', 'reject', 'reject', 'retry', 'retry', 'fail', 'fail']
    """
    if status < 300:
        return OK
    if status in (400, 413, 422):
        return REJECT
    if status >= 500 or status == 429:
        return RETRY
    return FAIL


class V2Transport:
    """Posts line-protocol batches to InfluxDB 2.x/3.x with ``influxdb-client``."""

    def __init__(self, settings: InfluxSettings) -> None:
        try:
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS
        except ImportError:
            raise RuntimeError(f"[influx] version = {settings.version} needs the influxdb-client package: "
                               "pip install 'influxdb-client>=1.40'") from None
        from urllib3.util.retry import Retry

        self.url = settings.url.rstrip("/") + "/api/v2/write"
        self.org = settings.org
        self.bucket = settings.bucket or settings.database
        self._client = InfluxDBClient(url=settings.url, token=settings.token, org=settings.org,
                                      timeout=int(settings.timeout_s * 1000), retries=Retry(total=0, redirect=0))
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def post(self, lines: list[str]) -> tuple[str, str]:
        """Write *lines*; ``(outcome, message)`` with outcome ``ok``, ``reject``, ``retry`` or ``fail``."""
        from influxdb_client.client.write_api import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._write.write(bucket=self.bucket, org=self.org, record="\n".join(lines),
                              write_precision=WritePrecision.NS)  # type: ignore[arg-type]
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 0:  # no HTTP answer at all
                return RETRY, f"{type(exc).__name__}: {_detail(exc)}"
            return classify(status), f"HTTP {status}: {_detail(exc)}"
        except Exception as exc:  # noqa: BLE001 - urllib3 connection errors and timeouts
            return RETRY, f"{type(exc).__name__}: {exc}"
        return OK, ""

    def close(self) -> None:
        self._write.close()
        self._client.close()
