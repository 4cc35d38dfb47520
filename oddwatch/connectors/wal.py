"""The local write-ahead log of incoming MQTT messages and the Bytewax source that reads it.

A message is acknowledged to the broker only once it is appended here, and the dataflow
reads it from here: the read offset is the partition state in every Bytewax snapshot, so a
flow killed (kill -9), stopped or restarted resumes from its last snapshot and reads again
everything after that snapshot's offset. Segments are deleted once snapshots cover them.

- :class:`Wal`: append-only segment files ``<base offset>.wal`` in one folder (one process).
- :class:`WalSource`: Bytewax ``FixedPartitionedSource`` of :class:`~oddwatch.records.Message`,
  one partition per process, its state the WAL offset it has handed to the dataflow. What
  fills the WAL (an MQTT client) is passed in as a *receiver* factory.
"""

from __future__ import annotations

import bisect
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from oddwatch.records import UTC, Message, utcnow

log = logging.getLogger(__name__)

#: Record header: body length, CRC-32 of the body, received time (ns since the epoch), QoS,
#: topic length. The body is the UTF-8 topic followed by the payload.
HEADER = struct.Struct("<IIqBH")
SUFFIX = ".wal"
#: Most messages one ``next_batch`` hands to the dataflow, and the batching rule (as
#: :class:`oddwatch.connectors.mqtt.MqttSource`): a batch smaller than ``BATCH_MIN`` waits up
#: to ``BATCH_WAIT`` for more, since every Bytewax step has a fixed cost per batch.
BATCH_CAP = 10_000
BATCH_MIN = 500
BATCH_WAIT = timedelta(milliseconds=20)
IDLE_AWAKE = timedelta(milliseconds=10)
#: Records whose digests are remembered to recognise a broker's redelivery (at least the
#: broker's in-flight window, MQTT's Receive Maximum).
RECENT = 4096
#: Appended messages kept in memory for the reader (beyond that, it reads them from the files).
MEMORY_RECORDS = 100_000
#: Snapshots kept readable: segments are deleted only below the offset of the oldest of the
#: last ``KEEP_SNAPSHOTS`` snapshots, since the newest one may not be committed yet.
KEEP_SNAPSHOTS = 10


class WalError(RuntimeError):
    """The WAL folder cannot be used; the message names it."""


def _encode(topic: str, payload: bytes, received_ns: int, qos: int) -> tuple[bytes, tuple[int, int]]:
    """The record and its digest (CRC-32 and length of the body)."""
    t = topic.encode()
    body = t + payload
    crc = zlib.crc32(body)
    return HEADER.pack(len(body), crc, received_ns, qos, len(t)) + body, (crc, len(body))


def _decode(buf: bytes, pos: int) -> tuple[Message, int] | None:
    """The record at *pos* of *buf* and the position after it; None when it is incomplete."""
    end = pos + HEADER.size
    if end > len(buf):
        return None
    size, crc, received_ns, qos, tlen = HEADER.unpack_from(buf, pos)
    if end + size > len(buf):
        return None
    body = buf[end : end + size]
    if zlib.crc32(body) != crc or tlen > size:
        raise WalError(f"corrupt record (CRC mismatch) at byte {pos}")
    received = datetime.fromtimestamp(received_ns / 1e9, UTC)
    return Message(body[:tlen].decode(), bytes(body[tlen:]), received, qos), end + size


def _decode_into(out: list[Message], data: bytes, max_records: int, topics: dict[bytes, str]) -> int:
    """Append the whole records at the start of *data* to *out* (up to *max_records* in all);
    the position after the last one. *topics* caches decoded topic names."""
    unpack, crc32, size_h, n = HEADER.unpack_from, zlib.crc32, HEADER.size, len(data)
    fromtimestamp = datetime.fromtimestamp
    pos = 0
    while len(out) < max_records and pos + size_h <= n:
        size, crc, received_ns, qos, tlen = unpack(data, pos)
        start = pos + size_h
        end = start + size
        if end > n:
            break
        body = data[start:end]
        if crc32(body) != crc or tlen > size:
            raise WalError(f"corrupt record (CRC mismatch) at byte {pos}")
        raw = body[:tlen]
        topic = topics.get(raw)
        if topic is None:
            topic = topics[raw] = raw.decode()
            if len(topics) > 100_000:
                topics.clear()
        out.append(Message(topic, body[tlen:], fromtimestamp(received_ns / 1e9, UTC), qos))
        pos = end
    return pos


class Wal:
    """An append-only log of messages in segment files, addressed by byte offset.

    One writer thread (:meth:`append`) and one reader thread (:meth:`read`) may share it.
    A record torn by a crash mid-append is cut off when the WAL is opened again.

    Parameters
    ----------
    directory
        The folder (created if missing, locked with ``flock`` by one process).
    segment_bytes
        A new segment starts once the newest one holds this many bytes.
    fsync
        ``"off"``: an append reaches the page cache (survives kill -9, not power loss);
        ``"always"``: :meth:`sync` fsyncs what was appended (the receiver calls it before it
        acknowledges a burst of messages).

    Examples
    --------
    >>> import tempfile
    >>> wal = Wal(tempfile.mkdtemp())
    >>> end = wal.append("plant/s1/pump1/temp", b"20.5", 0, 1)
    >>> msgs, offset = wal.read(0, 10)
    >>> [(m.topic, m.payload) for m in msgs], offset == end == wal.end
    ([('plant/s1/pump1/temp', b'20.5')], True)
    >>> wal.close()
    """

    def __init__(self, directory: str | Path, *, segment_bytes: int = 16 * 1024 * 1024, fsync: str = "off") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.fsync = fsync == "always"
        self._lock = threading.Lock()
        self._lock_file = open(self.dir / "lock", "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise WalError(f"WAL {self.dir} is in use by another process; give each flow its own [state].dir") from None
        self._bases = sorted(int(p.name.removesuffix(SUFFIX)) for p in self.dir.glob(f"*{SUFFIX}"))
        self._tail: BinaryIO | None = None
        self._end = 0
        self._recent: dict[tuple[int, int], None] = {}
        self._topics: dict[bytes, str] = {}
        # (start, end, message) of records appended by this process and not read yet
        self._mem: deque[tuple[int, int, Message]] = deque()
        if len(self._bases) > 1:  # the newest segment may hold few records: remember the one before too
            self._scan(self._bases[-2])
        if self._bases:
            self._end = self._bases[-1] + self._repair(self._bases[-1])
            self._tail = open(self._path(self._bases[-1]), "ab")  # noqa: SIM115 - kept open for appends
        self.appended = 0

    def _path(self, base: int) -> Path:
        return self.dir / f"{base:020d}{SUFFIX}"

    def _scan(self, base: int) -> None:
        """Remember the digests of segment *base*'s records (for :meth:`holds_recent`)."""
        data = self._path(base).read_bytes()
        pos, n = 0, len(data)
        while pos + HEADER.size <= n:
            size, crc = HEADER.unpack_from(data, pos)[:2]
            pos += HEADER.size + size
            if pos > n:
                break
            self._remember((crc, size))

    def _repair(self, base: int) -> int:
        """Cut a torn record off the end of segment *base*; its length of whole records."""
        path = self._path(base)
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            try:
                rec = _decode(data, pos)
            except WalError:
                rec = None
            if rec is None:
                break
            body = data[pos + HEADER.size : rec[1]]
            self._remember((zlib.crc32(body), len(body)))
            pos = rec[1]
        if pos < len(data):
            log.warning("WAL %s: cut %d bytes of a torn record off the end of %s", self.dir, len(data) - pos, path.name)
            with open(path, "r+b") as f:
                f.truncate(pos)
        return pos

    def _remember(self, digest: tuple[int, int]) -> None:
        recent = self._recent
        recent[digest] = None
        if len(recent) > RECENT:
            del recent[next(iter(recent))]

    def holds_recent(self, topic: str, payload: bytes) -> bool:
        """True when one of the last ``RECENT`` records has this topic and payload (a redelivery)."""
        body = topic.encode() + payload
        with self._lock:
            return (zlib.crc32(body), len(body)) in self._recent

    @property
    def start(self) -> int:
        """The offset of the oldest record kept."""
        with self._lock:
            return self._bases[0] if self._bases else self._end

    @property
    def end(self) -> int:
        """The offset after the newest record."""
        return self._end

    def append(self, topic: str, payload: bytes, received_ns: int, qos: int) -> int:
        """Append one message; returns the offset after it (durable as ``fsync`` says)."""
        record, digest = _encode(topic, payload, received_ns, qos)
        with self._lock:
            self._remember(digest)
            tail = self._tail
            if tail is None or self._end - self._bases[-1] >= self.segment_bytes:
                tail = self._new_segment(self._end)
            tail.write(record)
            tail.flush()
            start = self._end
            self._end += len(record)
            self.appended += 1
            mem = self._mem
            if len(mem) >= MEMORY_RECORDS:
                mem.popleft()  # the reader lags: it reads those from the file
            mem.append((start, self._end, Message(topic, payload, datetime.fromtimestamp(received_ns / 1e9, UTC), qos)))
            return self._end

    def sync(self) -> None:
        """Make what was appended survive power loss too (fsync), when ``fsync`` is ``"always"``;
        call it before acknowledging appended messages upstream."""
        if not self.fsync:
            return
        with self._lock:
            if self._tail is not None:
                os.fsync(self._tail.fileno())

    def _new_segment(self, base: int) -> BinaryIO:
        if self._tail is not None:
            if self.fsync:  # what it holds may not be synced yet
                os.fsync(self._tail.fileno())
            self._tail.close()
        self._bases.append(base)
        self._tail = open(self._path(base), "ab")  # noqa: SIM115 - kept open for appends
        if self.fsync:
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return self._tail

    def skip_to(self, offset: int) -> None:
        """Continue at *offset* (> ``end``): new appends go to a segment starting there.

        For a WAL emptied or lost while the snapshots that point into it were kept.
        """
        with self._lock:
            if offset > self._end:
                self._new_segment(offset)
                self._end = offset

    def read(self, offset: int, max_records: int, max_bytes: int = 4 * 1024 * 1024) -> tuple[list[Message], int]:
        """Up to *max_records* messages from *offset*, and the offset after the last one.

        Records appended by this process come from memory once the reader has caught up with
        them; older ones (a replay after a restart, or a reader far behind) from the files.
        """
        out: list[Message] = []
        offset, end, bases = self._from_memory(offset, max_records, out)
        if out:
            return out, offset
        offset = self._from_files(offset, end, bases, max_records, max_bytes, out)
        if len(out) < max_records:
            offset = self._from_memory(offset, max_records, out)[0]
        return out, offset

    def _from_memory(self, offset: int, max_records: int, out: list[Message]) -> tuple[int, int, list[int]]:
        """Take records from memory if the one at *offset* is there: (new offset, end of what
        the files must serve first, segment bases)."""
        with self._lock:
            mem = self._mem
            while mem and mem[0][1] <= offset:
                mem.popleft()
            if mem and mem[0][0] == offset:
                while mem and len(out) < max_records:
                    _, offset, message = mem.popleft()
                    out.append(message)
                offset = mem[0][0] if mem else max(offset, self._end)
            end = mem[0][0] if mem and mem[0][0] > offset else self._end
            return offset, end, list(self._bases)

    def _from_files(self, offset: int, end: int, bases: list[int], max_records: int, max_bytes: int,
                    out: list[Message]) -> int:
        while len(out) < max_records and offset < end:
            i = bisect.bisect_right(bases, offset) - 1
            if i < 0:  # before the oldest segment: deleted, cannot be read again
                log.error("WAL %s: offset %d was deleted; continuing at %d", self.dir, offset, bases[0])
                offset = bases[0]
                continue
            base = bases[i]
            seg_end = bases[i + 1] if i + 1 < len(bases) else end
            path = self._path(base)
            if i + 1 < len(bases):
                try:
                    seg_end = min(seg_end, base + path.stat().st_size)
                except FileNotFoundError:
                    seg_end = base
            if offset >= seg_end:
                if i + 1 >= len(bases):
                    break
                offset = bases[i + 1]
                continue
            with open(path, "rb") as f:
                f.seek(offset - base)
                data = f.read(min(seg_end - offset, max_bytes))
            pos = _decode_into(out, data, max_records, self._topics)
            if pos == 0:  # a record larger than max_bytes
                max_bytes *= 2
                continue
            offset += pos
        return offset

    def delete_before(self, offset: int) -> int:
        """Delete the segments whose records all lie before *offset* (never the newest one)."""
        removed = 0
        with self._lock:
            while len(self._bases) > 1 and self._bases[1] <= offset:
                self._path(self._bases.pop(0)).unlink(missing_ok=True)
                removed += 1
        return removed

    def close(self) -> None:
        with self._lock:
            if self._tail is not None:
                self._tail.close()
                self._tail = None
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


class Receiver(Protocol):
    """What fills a WAL (e.g. an MQTT client); started by its factory, stopped by ``close``.

    A receiver with an ``ack_appended()`` method has it called on every poll of the reader:
    it acknowledges upstream what it appended since the last call.
    """

    def close(self) -> None: ...


class _WalPartition(StatefulSourcePartition[Message, int]):
    def __init__(self, wal: Wal, offset: int, receiver: Receiver, stop: threading.Event | None) -> None:
        self.wal = wal
        self.offset = offset  # everything before it has been handed to the dataflow
        self.receiver = receiver
        self.stop = stop
        self._buf: list[Message] = []
        self._buf_end = offset
        self._idle = False
        self._snapshots: deque[int] = deque(maxlen=KEEP_SNAPSHOTS)
        self._ack: Callable[[], object] | None = getattr(receiver, "ack_appended", None)

    def next_batch(self) -> list[Message]:
        if self._ack is not None:
            self._ack()
        if len(self._buf) < BATCH_CAP:
            more, self._buf_end = self.wal.read(self._buf_end, BATCH_CAP - len(self._buf))
            self._buf.extend(more)
        buf = self._buf
        if not buf:
            if self.stop is not None and self.stop.is_set():
                raise StopIteration
            self._idle = True
            return []
        if len(buf) < BATCH_MIN and utcnow() - buf[0].received < BATCH_WAIT:
            self._idle = True  # wake again shortly: more messages may join this batch
            return []
        self._idle = False
        self._buf = []
        self.offset = self._buf_end
        return buf

    def next_awake(self) -> datetime | None:
        return utcnow() + IDLE_AWAKE if self._idle else None

    def snapshot(self) -> int:
        self._snapshots.append(self.offset)
        if len(self._snapshots) == KEEP_SNAPSHOTS:
            self.wal.delete_before(self._snapshots[0])
        return self.offset

    def close(self) -> None:
        self.receiver.close()
        self.wal.close()


class WalSource(FixedPartitionedSource[Message, int]):
    """Bytewax source reading a per-process WAL that *receiver* fills.

    Parameters
    ----------
    directory
        The WAL folder; partition ``p<N>`` (``N`` = ``$BYTEWAX_PROCESS_ID``, default 0) lives
        in ``<directory>/p<N>``.
    receiver
        ``receiver(wal, partition) -> Receiver``: starts filling *wal* (acknowledging each
        message upstream only once :meth:`Wal.append` returned).
    segment_bytes, fsync
        See :class:`Wal`.
    stop
        Optional event: once set, the partition hands over what the WAL holds and ends
        (EOF). For tests; a live flow runs until interrupted.
    """

    def __init__(
        self,
        directory: str | Path,
        receiver: Callable[[Wal, str], Receiver],
        *,
        segment_bytes: int = 16 * 1024 * 1024,
        fsync: str = "off",
        stop: threading.Event | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.receiver = receiver
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.stop = stop

    def list_parts(self) -> list[str]:
        return [f"p{os.environ.get('BYTEWAX_PROCESS_ID', '0') or '0'}"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _WalPartition:
        wal = Wal(self.dir / for_part, segment_bytes=self.segment_bytes, fsync=self.fsync)
        if resume_state is None:
            offset = wal.start
            if wal.end > offset:
                log.warning("step %r: WAL %s holds %d bytes and no snapshot points into it; reading all of it",
                            step_id, wal.dir, wal.end - offset)
        else:
            offset = resume_state
            if offset > wal.end:
                log.warning("step %r: snapshot offset %d is past the end %d of WAL %s (emptied?); continuing there",
                            step_id, offset, wal.end, wal.dir)
                wal.skip_to(offset)
            elif offset < wal.start:
                log.error("step %r: snapshot offset %d is before the oldest record %d kept in WAL %s",
                          step_id, offset, wal.start, wal.dir)
            else:
                log.info("step %r: resuming WAL %s at offset %d (%d bytes to read again)",
                         step_id, wal.dir, offset, wal.end - offset)
        try:
            receiver = self.receiver(wal, for_part)
        except BaseException:
            wal.close()
            raise
        return _WalPartition(wal, offset, receiver, self.stop)
