"""InfluxDB connector: the only module that talks HTTP to InfluxDB.

- :class:`InfluxQuery` runs InfluxQL on ``POST /query`` (1.x, 2.x v1-compat and 3.x).
- :func:`ensure_database` creates the database and its retention policies (1.x).
- :class:`InfluxWriter` batches line-protocol lines, retries with backoff and keeps what it
  cannot write in a bounded on-disk spool (:class:`Spool`).
- :class:`InfluxSink` is the Bytewax sink of :class:`oddwatch.records.Point`.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import requests
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from oddwatch.connectors.held import NOT_HELD, HeldMeter
from oddwatch.connectors.spool import Spool, SpoolFullError
from oddwatch.lineproto import to_line
from oddwatch.records import Point, valid_text
from oddwatch.settings import InfluxSettings, expand

log = logging.getLogger(__name__)


class _Count(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Level(Protocol):
    def set(self, value: float) -> None: ...


class WriterMeters(Protocol):
    """What an :class:`InfluxWriter` counts; :class:`oddwatch.observe.metrics.Metrics` has it all."""

    @property
    def influx_points_written(self) -> _Count: ...

    @property
    def influx_write_errors(self) -> _Count: ...

    @property
    def spool_bytes(self) -> _Level: ...

    @property
    def held(self) -> HeldMeter: ...


class _Uncounted:
    """The meters of a writer nobody gave meters to: counts nothing."""

    class _Nothing:
        def inc(self, amount: float = 1) -> None:
            pass

        def set(self, value: float) -> None:
            pass

    influx_points_written = influx_write_errors = spool_bytes = _Nothing()
    held = NOT_HELD


UNCOUNTED: WriterMeters = _Uncounted()

#: Retention policies created next to ``autogen`` (which stays the default, infinite).
#: Everything is written to the default policy unless ``[influx].retention_policy`` names
#: another one: set it to ``raw`` to keep scores 30 days. ``alerts`` (365 days) is there for
#: deployments that route the ``alert`` and ``feedback`` measurements to a longer policy.
DEFAULT_RETENTION_POLICIES: dict[str, str] = {"raw": "30d", "alerts": "365d"}


class InfluxError(RuntimeError):
    """InfluxDB refused a query or a write; the message names the URL, the statement and the reason."""


def unreachable(url: str, exc: Exception, timeout_s: float) -> str:
    """One line for an InfluxDB that does not answer: where, why in a few words, and the fix.

    >>> unreachable("http://127.0.0.1:9", requests.ConnectionError("... [Errno 111] Connection refused"), 5)
    'InfluxDB at http://127.0.0.1:9 does not answer (connection refused): start it (`oddwatch services up` for the local one) or fix [influx] url in the config'
    """
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        why = f"no answer within {timeout_s:g} s"
    elif "Connection refused" in text:
        why = "connection refused"
    elif "Name or service not known" in text or "nodename nor servname" in text or "Failed to resolve" in text:
        why = "unknown host name"
    else:
        why = type(exc).__name__
    return (f"InfluxDB at {url} does not answer ({why}): start it (`oddwatch services up` for the local one) "
            "or fix [influx] url in the config")


def _auth(settings: InfluxSettings) -> tuple[dict[str, str], tuple[str, str] | None]:
    """HTTP headers and basic-auth pair for *settings*."""
    if settings.version in (2, 3):
        return {"Authorization": f"Token {settings.token}"}, None
    if settings.username:
        return {}, (settings.username, settings.password)
    return {}, None


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes.

    >>> quote_ident('odd"watch')
    '"odd\\\\"watch"'
    """
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxQuery:
    """InfluxQL over ``POST /query``.

    Parameters
    ----------
    settings
        Where InfluxDB is and how to authenticate; ``database`` is sent as ``db``.
    """

    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self._session = requests.Session()
        self._headers, self._basic = _auth(settings)

    @property
    def url(self) -> str:
        return self.settings.url.rstrip("/")

    def ping(self, timeout: float = 2.0) -> bool:
        """True when ``GET /ping`` answers 204 (or 200 from 3.x)."""
        try:
            resp = self._session.get(f"{self.url}/ping", timeout=timeout, headers=self._headers)
        except requests.RequestException:
            return False
        return resp.status_code in (200, 204)

    def query(self, q: str, epoch: str | None = "ns", *, database: str | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL *q* and return every row of every series as a dict.

        A row holds the series' tags (from ``GROUP BY``) and its columns. With ``epoch="ns"``
        (the default) ``time`` is an int of nanoseconds; ``epoch=None`` gives RFC 3339 strings.
        """
        data = {"q": q, "db": self.settings.database if database is None else database}
        if epoch:
            data["epoch"] = epoch
        try:
            resp = self._session.post(
                f"{self.url}/query",
                data=data,
                headers=self._headers,
                auth=self._basic,
                timeout=self.settings.timeout_s,
            )
        except requests.RequestException as exc:
            raise InfluxError(unreachable(self.url, exc, self.settings.timeout_s)) from exc
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code >= 400 or "error" in body:
            reason = body.get("error") or resp.text.strip() or f"HTTP {resp.status_code}"
            raise InfluxError(f"InfluxDB query at {self.url}/query failed ({resp.status_code}): {reason}; q={q!r}")
        rows: list[dict[str, Any]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise InfluxError(f"InfluxDB query at {self.url}/query failed: {result['error']}; q={q!r}")
            for series in result.get("series", []):
                tags = series.get("tags") or {}
                columns = series.get("columns", [])
                for values in series.get("values", []):
                    rows.append({**tags, **dict(zip(columns, values, strict=False))})
        return rows

    def close(self) -> None:
        self._session.close()


def ensure_database(
    settings: InfluxSettings,
    retention_policies: Mapping[str, str] | None = None,
) -> None:
    """Create ``settings.database`` and *retention_policies* (name -> duration) if missing.

    ``autogen`` stays the default policy. Idempotent: an existing policy with another
    duration is altered. On InfluxDB 2.x/3.x databases are buckets managed by the operator;
    this only checks that the server answers.
    """
    rps = DEFAULT_RETENTION_POLICIES if retention_policies is None else retention_policies
    client = InfluxQuery(settings)
    try:
        if settings.version != 1:
            if not client.ping():
                raise InfluxError(f"InfluxDB at {client.url} does not answer /ping")
            return
        db = quote_ident(settings.database)
        client.query(f"CREATE DATABASE {db}", database="")
        existing = {row["name"]: row for row in client.query(f"SHOW RETENTION POLICIES ON {db}", database="")}
        for name, duration in rps.items():
            verb = "ALTER" if name in existing else "CREATE"
            client.query(
                f"{verb} RETENTION POLICY {quote_ident(name)} ON {db} DURATION {duration} REPLICATION 1",
                database="",
            )
    finally:
        client.close()


# --------------------------------------------------------------------------- writer
_OK, _REJECT, _RETRY, _FAIL = "ok", "reject", "retry", "fail"
#: Rejected lines logged in full per minute; the rest are only counted.
REJECT_LOG_PER_MINUTE = 10


class InfluxWriter:
    """Thread-safe batching writer with retries and a bounded on-disk spool.

    ``add(lines)`` queues lines in memory; a background thread writes batches of up to
    ``batch_size`` lines at least every ``flush_interval_s``. 5xx, 429 and connection errors
    are retried with exponential backoff (``retry_min_s`` .. ``retry_max_s``, ``max_retries``
    times); then the batch goes to the spool and the writer drains the spool, oldest first,
    before anything newer. A 400 means some lines are bad: the batch is split in halves
    until the bad lines are isolated, so every good line still lands (InfluxDB 1.x already
    kept the good ones of a partial write; writing a point again is idempotent). When the
    spool is full, lines are refused, counted in ``dropped`` and logged as errors.

    At most ``max_buffer`` lines wait in memory (default ``max(10 * batch_size, 100_000)``);
    ``add`` blocks while the buffer is full (backpressure) and drops, counted and logged, only
    when it makes no progress for ``timeout_s``.

    Counters (ints): ``written``, ``rejected``, ``retries``, ``spooled``, ``spool_bytes``,
    ``dropped``. Lines written, write errors and the spool's size are also counted in *meters*
    (the command injects the process's :class:`~oddwatch.observe.metrics.Metrics`; none by default).
    """

    def __init__(self, settings: InfluxSettings, *, max_buffer: int | None = None, start: bool = True,
                 meters: WriterMeters = UNCOUNTED) -> None:
        self.settings = settings
        self.meters = meters
        self.written = 0
        self.rejected = 0
        self.retries = 0
        self.spooled = 0
        self.dropped = 0
        self.max_buffer = max_buffer or max(10 * settings.batch_size, 100_000)
        self._buf: deque[str] = deque()
        self._inflight = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._flush_wanted = False
        self._closed = False
        self._down_since: float | None = None
        self._down_attempt = 0
        self._last_drop_log = 0.0
        self._reject_window = 0.0
        self._reject_logged = 0
        self._session = requests.Session()
        self._headers, self._basic = _auth(settings)
        self._headers["Content-Type"] = "text/plain; charset=utf-8"
        base = settings.url.rstrip("/")
        self._v2: Any = None  # InfluxDB 2.x/3.x: oddwatch.connectors.influx2 (influxdb-client)
        if settings.version == 1:
            self._write_url = f"{base}/write"
            self._params = {"db": settings.database, "precision": "ns"}
            if settings.retention_policy:
                self._params["rp"] = settings.retention_policy
        else:
            from oddwatch.connectors.influx2 import V2Transport

            self._v2 = V2Transport(settings)
            self._write_url = self._v2.url
        self._spool = Spool(expand(settings.spool_dir), settings.spool_max_bytes)
        if self._spool.bytes:
            log.warning("influx writer: %d bytes left in spool %s from a previous run; draining them first",
                        self._spool.bytes, self._spool.dir)
        self._thread = threading.Thread(target=self._run, name="influx-writer", daemon=True)
        if start:
            self._thread.start()

    # ------------------------------------------------------------------ public API
    @property
    def spool_bytes(self) -> int:
        return self._spool.bytes

    @property
    def pending(self) -> int:
        """Lines in memory or in flight (not counting the spool)."""
        return len(self._buf) + self._inflight

    def add(self, lines: Iterable[str]) -> None:
        """Queue *lines* (line protocol, no newlines) for writing; never drops silently.

        Blocks up to ``timeout_s`` when the memory buffer is full; lines that still do not
        fit are counted in ``dropped`` and logged.
        """
        batch = self._clean(lines)
        if not batch:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError(f"influx writer for {self._write_url} is closed; cannot add {len(batch)} lines")
            start = 0
            deadline = time.monotonic() + self.settings.timeout_s
            while start < len(batch):
                room = self.max_buffer - len(self._buf)
                if room > 0:
                    self._buf.extend(batch[start : start + room])
                    start += room
                    deadline = time.monotonic() + self.settings.timeout_s  # progress: wait afresh
                    self._cond.notify_all()
                    continue
                if time.monotonic() >= deadline:
                    self._drop(
                        len(batch) - start,
                        f"memory buffer full ({self.max_buffer} lines) for {self.settings.timeout_s} s "
                        f"while writing to {self._write_url} and spooling to {self._spool.dir}",
                    )
                    break
                self._cond.notify_all()
                self._cond.wait(0.05)
            if len(self._buf) >= self.settings.batch_size:
                self._cond.notify_all()

    def _clean(self, lines: Iterable[str]) -> list[str]:
        """*lines* without empty ones and without those holding a raw newline (counted, logged)."""
        batch = [line for line in lines if line]
        bad = [line for line in batch if "\n" in line or "\r" in line]
        if bad:
            batch = [line for line in batch if line not in bad]
            with self._cond:
                self.rejected += len(bad)
            log.error("influx writer: refused %d line(s) containing a raw newline, first: %r", len(bad), bad[0][:300])
        return batch

    def add_durable(self, lines: Iterable[str], *, sync: bool = False) -> None:
        """Append *lines* to the on-disk spool before returning; the flusher writes them from there.

        For a flow with recovery: what its sink was handed survives kill -9 (and, with *sync*,
        power loss) before the Bytewax snapshot that no longer replays it commits. While the
        spool is full (or its disk), this waits, never drops: the dataflow is held, so no snapshot
        advances past these points, the WAL keeps every message after the last one, and the
        flow goes on by itself once InfluxDB has taken enough of the spool (a restart meanwhile
        reads them from the WAL again). Said once a minute (log) and in the ``held`` metric.
        """
        batch = self._clean(lines)
        if not batch:
            return
        since: float | None = None
        said = 0.0
        while True:
            try:
                self._spool.append(batch, sync=sync)
                break
            except (SpoolFullError, OSError) as exc:
                now = time.monotonic()
                if since is None:
                    since = now
                    self.meters.held.labels(reason="spool_full").set(1)
                if now - said >= 60.0:
                    said = now
                    log.error("influx writer: HOLDING THE FLOW for %.0f s: %s; InfluxDB %s unreachable or slow. "
                              "Nothing is dropped: the snapshot does not advance and the WAL keeps every message; "
                              "the flow goes on when InfluxDB takes the spool (or raise [influx].spool_max_bytes / "
                              "free disk)", now - since, exc, self._write_url)
                with self._cond:
                    self._cond.notify_all()  # the flusher drains the spool
                time.sleep(0.05)
        if since is not None:
            self.meters.held.labels(reason="spool_full").set(0)
            log.warning("influx writer: spool %s has room again after %.0f s; the flow goes on",
                        self._spool.dir, time.monotonic() - since)
        with self._cond:
            if self._spool.bytes >= 256 * 1024:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything added so far (spool included); True when all of it reached InfluxDB."""
        timeout = self.settings.timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_wanted = True
            self._cond.notify_all()
            while self._buf or self._inflight or self._spool.bytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to *timeout*), stop the flusher and keep what is left in the spool."""
        if self._closed:
            return
        if self._thread.is_alive():
            self.flush(timeout)
        with self._cond:
            self._closed = True
            self._stop.set()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(self.settings.timeout_s + self.settings.retry_max_s)
        with self._cond:
            rest = list(self._buf)
            self._buf.clear()
        if rest:
            self._to_spool(rest)
        if self._spool.bytes:
            log.warning("influx writer: closing with %d bytes in spool %s; the next start drains them",
                        self._spool.bytes, self._spool.dir)
        self._spool.close()
        self._session.close()
        if self._v2 is not None:
            self._v2.close()

    def __enter__(self) -> InfluxWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ flusher
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                deadline = time.monotonic() + self.settings.flush_interval_s
                while (
                    not self._stop.is_set()
                    and not self._flush_wanted
                    and len(self._buf) < self.settings.batch_size
                    and time.monotonic() < deadline
                ):
                    self._cond.wait(max(0.0, deadline - time.monotonic()))
                flushing = self._flush_wanted
                self._flush_wanted = False
            try:
                while self._cycle(flushing):
                    pass
            except Exception:  # never let the flusher die silently
                log.exception("influx writer: unexpected error in the flusher; retrying")
                self._stop.wait(self.settings.retry_max_s)
            with self._cond:
                self._cond.notify_all()

    def _cycle(self, flushing: bool = False) -> bool:
        """Write one batch (spool first). True when there is more to do right away."""
        if self._spool.bytes:
            lines, size = self._spool.read(self.settings.batch_size)
            if not lines and not size:
                return False
            if self._deliver(lines, attempts=1):
                self._spool.consume(size)
                self._up()
                return True
            self._spool_memory()
            self._backoff()
            return False
        with self._cond:
            n = min(len(self._buf), self.settings.batch_size)
            batch = [self._buf.popleft() for _ in range(n)]
            self._inflight = n
        if not batch:
            return False
        try:
            if not self._deliver(batch, attempts=self.settings.max_retries + 1):
                self._to_spool(batch)
                self._spool_memory()
                return False
            self._up()
        finally:
            with self._cond:
                self._inflight = 0
                self._cond.notify_all()
        with self._cond:
            return len(self._buf) >= self.settings.batch_size or (flushing and bool(self._buf))

    def _deliver(self, lines: list[str], attempts: int) -> bool:
        """Write *lines*, splitting on 400; False when InfluxDB is unreachable (keep them)."""
        for attempt in range(attempts):
            outcome, message = self._post(lines)
            if outcome == _OK:
                with self._cond:
                    self.written += len(lines)
                self.meters.influx_points_written.inc(len(lines))
                self.meters.spool_bytes.set(self._spool.bytes)
                return True
            if outcome == _REJECT:
                if len(lines) == 1:
                    self._rejected_line(lines[0], message)
                    return True
                mid = len(lines) // 2
                return self._deliver(lines[:mid], attempts) and self._deliver(lines[mid:], attempts)
            self._mark_down(message)
            self.meters.influx_write_errors.inc()
            if outcome == _FAIL or attempt + 1 >= attempts or self._stop.is_set():
                return False
            with self._cond:
                self.retries += 1
                over = len(self._buf) > self.max_buffer // 2
            if over:
                return False
            self._stop.wait(self._delay(attempt))
        return False

    def _rejected_line(self, line: str, message: str) -> None:
        """Count a line InfluxDB refused; log the first ones of each minute in full."""
        now = time.monotonic()
        self.meters.influx_write_errors.inc()
        with self._cond:
            self.rejected += 1
            if now - self._reject_window > 60.0:
                self._reject_window, self._reject_logged = now, 0
            self._reject_logged += 1
            logged = self._reject_logged
        if logged <= REJECT_LOG_PER_MINUTE:
            log.error("influx writer: InfluxDB at %s rejected line %r: %s", self._write_url, line[:500], message)
        elif logged == REJECT_LOG_PER_MINUTE + 1:
            log.error("influx writer: more lines rejected; logging paused for a minute (counter `rejected` = %d)",
                      self.rejected)

    def _post(self, lines: list[str]) -> tuple[str, str]:
        if self._v2 is not None:
            return self._v2.post(lines)  # type: ignore[no-any-return]
        body = "\n".join(lines).encode()
        try:
            resp = self._session.post(
                self._write_url, params=self._params, data=body, headers=self._headers,
                auth=self._basic, timeout=self.settings.timeout_s,
            )
        except requests.RequestException as exc:
            return _RETRY, f"{type(exc).__name__}: {exc}"
        if resp.status_code < 300:
            return _OK, ""
        message = resp.text.strip()[:1000]
        if resp.status_code in (400, 413, 422):
            return _REJECT, f"HTTP {resp.status_code}: {message}"
        if resp.status_code >= 500 or resp.status_code == 429:
            return _RETRY, f"HTTP {resp.status_code}: {message}"
        # 401/403/404 (bad credentials, missing database): an operator must act; keep the data.
        return _FAIL, f"HTTP {resp.status_code}: {message}"

    def _delay(self, attempt: int) -> float:
        base = min(self.settings.retry_max_s, self.settings.retry_min_s * 2**attempt)
        return base * (0.5 + random.random() / 2)

    def _mark_down(self, message: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._down_attempt = 0
            log.warning("influx writer: cannot write to %s (%s); retrying, spooling to %s (is InfluxDB running, "
                        "e.g. `oddwatch services up`, and [influx].url right?)", self._write_url, message,
                        self._spool.dir)

    def _up(self) -> None:
        if self._down_since is not None:
            log.warning("influx writer: %s is back after %.1f s", self._write_url,
                        time.monotonic() - self._down_since)
            self._down_since = None

    def _backoff(self) -> None:
        """Wait before the next drain attempt, spooling memory so add() never stalls."""
        attempt = self._down_attempt
        self._down_attempt = attempt + 1
        with self._cond:
            self.retries += 1
        deadline = time.monotonic() + self._delay(attempt)
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._cond:
                self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                over = len(self._buf) >= self.settings.batch_size
            if over:
                self._spool_memory()

    def _spool_memory(self) -> None:
        with self._cond:
            rest = list(self._buf)
            self._buf.clear()
        if rest:
            self._to_spool(rest)

    def _to_spool(self, lines: list[str]) -> None:
        step = max(1, self.settings.batch_size)
        for i in range(0, len(lines), step):
            chunk = lines[i : i + step]
            try:
                self._spool.append(chunk)
            except SpoolFullError as exc:
                with self._cond:
                    self._drop(len(lines) - i, f"{exc}; InfluxDB {self._write_url} unreachable; free disk "
                               "or raise [influx].spool_max_bytes")
                return
            with self._cond:
                self.spooled += len(chunk)
                self._cond.notify_all()

    def _drop(self, n: int, why: str) -> None:
        """Count and log *n* dropped lines (caller holds the lock)."""
        self.dropped += n
        now = time.monotonic()
        if now - self._last_drop_log > 5.0:
            self._last_drop_log = now
            log.error("influx writer: DROPPED %d line(s) (total %d so far): %s", n, self.dropped, why)


# --------------------------------------------------------------------------- sink
_WRITERS: dict[tuple[Any, ...], tuple[InfluxWriter, int]] = {}
_WRITERS_LOCK = threading.Lock()


def shared_writer(settings: InfluxSettings, meters: WriterMeters = UNCOUNTED) -> InfluxWriter:
    """The process-wide writer for *settings*, counting in *meters* (the first caller's;
    reference counted; release it with :func:`release_writer`)."""
    key = dataclasses.astuple(settings)
    with _WRITERS_LOCK:
        writer, refs = _WRITERS.get(key, (None, 0))
        if writer is None:
            writer = InfluxWriter(settings, meters=meters)
        _WRITERS[key] = (writer, refs + 1)
        return writer


def release_writer(writer: InfluxWriter) -> None:
    """Drop one reference; the last one closes the writer."""
    key = dataclasses.astuple(writer.settings)
    with _WRITERS_LOCK:
        current, refs = _WRITERS.get(key, (None, 0))
        if current is not writer:
            return
        if refs > 1:
            _WRITERS[key] = (writer, refs - 1)
            return
        del _WRITERS[key]
    writer.close()


@atexit.register
def _close_writers() -> None:
    with _WRITERS_LOCK:
        writers = [w for w, _ in _WRITERS.values()]
        _WRITERS.clear()
    for writer in writers:
        writer.close()


def flush_writers(timeout: float) -> tuple[bool, int]:
    """Flush every shared writer (up to *timeout* in all); (all written, bytes left in spools)."""
    with _WRITERS_LOCK:
        writers = [w for w, _ in _WRITERS.values()]
    deadline = time.monotonic() + timeout
    done = True
    for w in writers:
        left = max(0.0, deadline - time.monotonic())
        down = w._down_since is not None  # unreachable now: what is left stays in its spool
        done = w.flush(min(left, 2.0) if down else left) and done
    return done, sum(w.spool_bytes for w in writers)


def sink_spool_dir(spool_dir: str, name: str, env: Mapping[str, str] = os.environ) -> str:
    """The spool folder of one sink: ``<spool_dir>/<name>[-p<BYTEWAX_PROCESS_ID>]``.

    Stable across restarts (so a restarted flow drains its own spool) and distinct per flow
    and per Bytewax process, since a spool folder is locked by one process.

    >>> sink_spool_dir("/var/spool/ow", "sensors.influx_out", env={})
    '/var/spool/ow/sensors.influx_out'
    >>> sink_spool_dir("/var/spool/ow", "logs/out x", env={"BYTEWAX_PROCESS_ID": "1"})
    '/var/spool/ow/logs_out_x-p1'
    """
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name) or "sink"
    process = env.get("BYTEWAX_PROCESS_ID", "")
    return str(Path(spool_dir) / (f"{safe}-p{process}" if process else safe))


class _InfluxSinkPartition(StatelessSinkPartition[Point]):
    def __init__(self, settings: InfluxSettings, step_id: str, durable: str, meters: WriterMeters) -> None:
        self.step_id = step_id
        self.durable = durable
        self.writer = shared_writer(settings, meters)

    def write_batch(self, items: list[Point]) -> None:
        lines = []
        for point in items:
            try:
                lines.append(valid_text(to_line(point)))  # a lone surrogate cannot be UTF-8 encoded
            except Exception as exc:  # noqa: BLE001 - one point never stops the flow
                with self.writer._cond:
                    self.writer.rejected += 1
                log.error("step %r: point not written: %s", self.step_id, exc)
        if self.durable == "off":
            self.writer.add(lines)  # in memory: a crash loses what was not written yet
        else:
            self.writer.add_durable(lines, sync=self.durable == "always")

    def close(self) -> None:
        release_writer(self.writer)


class InfluxSink(DynamicSink[Point]):
    """Bytewax sink of :class:`~oddwatch.records.Point`: one shared :class:`InfluxWriter` per process.

    Its spool is ``<spool_dir>/<name or step id>`` (see :func:`sink_spool_dir`), so the sensor
    and log flows, running as separate processes with the same settings, never share one.
    Points that cannot be turned into line protocol (no fields, non-finite floats) are logged
    and counted in the writer's ``rejected``, never raised into the dataflow.

    *durable* (``"off"``, ``"page-cache"`` or ``"always"``): with recovery, every batch is in the
    spool when ``write_batch`` returns (fsynced with ``"always"``), so nothing a committed
    snapshot no longer replays is only in memory; ``"off"`` keeps it in memory until written.
    """

    def __init__(self, settings: InfluxSettings, *, name: str | None = None, durable: str = "off",
                 meters: WriterMeters = UNCOUNTED) -> None:
        if durable not in ("off", "page-cache", "always"):
            raise ValueError(f"InfluxSink durable={durable!r}: must be 'off', 'page-cache' or 'always'")
        self.settings = settings
        self.name = name
        self.durable = durable
        self.meters = meters

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _InfluxSinkPartition:
        spool = sink_spool_dir(self.settings.spool_dir, self.name or step_id)
        return _InfluxSinkPartition(dataclasses.replace(self.settings, spool_dir=spool), step_id, self.durable,
                                     self.meters)
