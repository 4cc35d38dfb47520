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

#: Record frame: ``MAGIC``, the header (body length, CRC-32 of the body, received time in ns
#: since the epoch, QoS, topic length), the CRC-32 of magic and header, then the body (the UTF-8
#: topic followed by the payload). The magic and the header's own checksum let a reader find the
#: next record after damaged bytes (resynchronise) and trust a length before it reads the body.
MAGIC = b"OWR\xfe"  # read as a format-1 body length it would be ~4.3 GB: never a valid one
HEADER = struct.Struct("<IIqBH")
HEADER_CRC = struct.Struct("<I")
FRAME = len(MAGIC) + HEADER.size + HEADER_CRC.size
SUFFIX = ".wal"
#: Where segments with no readable record are moved (inside the WAL folder).
DAMAGED = "damaged"
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
    """The framed record and its digest (CRC-32 and length of the body)."""
    t = topic.encode()
    body = t + payload
    crc = zlib.crc32(body)
    head = MAGIC + HEADER.pack(len(body), crc, received_ns, qos, len(t))
    return head + HEADER_CRC.pack(zlib.crc32(head)) + body, (crc, len(body))


#: What :func:`_frame_at` found: a whole record, one cut off by the end of the data, or damage.
_WHOLE, _SHORT, _BAD = 0, 1, 2


def _frame_at(data: bytes, pos: int) -> tuple[int, int]:
    """(``_WHOLE`` and the position after the record | ``_SHORT`` | ``_BAD``, 0) for *pos*."""
    n = len(data)
    if pos + FRAME > n:
        return (_SHORT, 0) if MAGIC.startswith(data[pos : pos + len(MAGIC)]) else (_BAD, 0)
    if data[pos : pos + 4] != MAGIC:
        return _BAD, 0
    hend = pos + len(MAGIC) + HEADER.size
    if zlib.crc32(data[pos:hend]) != HEADER_CRC.unpack_from(data, hend)[0]:
        return _BAD, 0
    size, crc, _ns, _qos, tlen = HEADER.unpack_from(data, pos + len(MAGIC))
    start = pos + FRAME
    if tlen > size:
        return _BAD, 0
    if start + size > n:
        return _SHORT, 0
    if zlib.crc32(data[start : start + size]) != crc:
        return _BAD, 0
    return _WHOLE, start + size


def _resync(data: bytes, pos: int) -> int:
    """The position of the next whole (or cut-off) record after damaged bytes at *pos*, or the
    position from which the end of *data* may still begin one."""
    find = pos + 1
    while True:
        nxt = data.find(MAGIC, find)
        if nxt < 0:
            return max(pos + 1, len(data) - len(MAGIC) + 1)
        if _frame_at(data, nxt)[0] != _BAD:
            return nxt
        find = nxt + 1


def _decode_into(out: list[Message], data: bytes, max_records: int, topics: dict[bytes, str]) -> tuple[int, int]:
    """Append the whole records at the start of *data* to *out* (up to *max_records* in all),
    stepping over damaged bytes; (the position after the last record or damage read, bytes
    skipped). *topics* caches decoded topic names."""
    unpack, size_m, n = HEADER.unpack_from, len(MAGIC), len(data)
    fromtimestamp = datetime.fromtimestamp
    pos = skipped = 0
    while len(out) < max_records and pos < n:
        kind, end = _frame_at(data, pos)
        if kind == _SHORT:
            break
        if kind == _BAD:
            nxt = _resync(data, pos)
            skipped += nxt - pos
            pos = nxt
            continue
        _size, _crc, received_ns, qos, tlen = unpack(data, pos + size_m)
        body = data[pos + FRAME : end]
        raw = body[:tlen]
        topic = topics.get(raw)
        if topic is None:
            topic = topics[raw] = raw.decode("utf-8", "replace")
            if len(topics) > 100_000:
                topics.clear()
        out.append(Message(topic, body[tlen:], fromtimestamp(received_ns / 1e9, UTC), qos))
        pos = end
    return pos, skipped


def _decode_v1_into(out: list[Message], data: bytes, max_records: int) -> tuple[int, bool]:
    """Records of the unframed format 1 (no magic, no header checksum): (position after the last
    whole one, whether damage stopped the reading: format 1 cannot resynchronise)."""
    pos, n = 0, len(data)
    while len(out) < max_records and pos + HEADER.size <= n:
        size, crc, received_ns, qos, tlen = HEADER.unpack_from(data, pos)
        start = pos + HEADER.size
        if start + size > n:
            break
        body = data[start : start + size]
        if zlib.crc32(body) != crc or tlen > size:
            return pos, True
        out.append(Message(body[:tlen].decode("utf-8", "replace"), body[tlen:],
                           datetime.fromtimestamp(received_ns / 1e9, UTC), qos))
        pos = start + size
    return pos, False


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
        #: segments in the unframed format 1 (written before records had a magic and a header CRC)
        self._v1 = {b for b in self._bases if self._is_v1(b)}
        #: damaged bytes the reader stepped over (their records are lost), and segments moved aside
        self.skipped_bytes = 0
        self.moved_aside: list[Path] = []
        self._seg_seen: tuple[int, int, int] | None = None  # (base, records, skipped) of the segment being read
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
            if self._bases[-1] in self._v1 and self._end > self._bases[-1]:
                self._new_segment(self._end)  # new records are framed: never in a format-1 segment
            else:
                self._tail = open(self._path(self._bases[-1]), "ab", buffering=0)  # noqa: SIM115 - for appends
                self._v1.discard(self._bases[-1])
        self.appended = 0

    def _path(self, base: int) -> Path:
        return self.dir / f"{base:020d}{SUFFIX}"

    def _is_v1(self, base: int) -> bool:
        with open(self._path(base), "rb") as f:
            head = f.read(len(MAGIC))
        return bool(head) and head != MAGIC

    def _scan(self, base: int) -> int:
        """Remember the digests of segment *base*'s records (for :meth:`holds_recent`); the
        position after its last whole record."""
        data = self._path(base).read_bytes()
        pos = last = 0
        n = len(data)
        if base in self._v1:
            while pos + HEADER.size <= n:
                size, crc = HEADER.unpack_from(data, pos)[:2]
                if pos + HEADER.size + size > n:
                    break
                pos += HEADER.size + size
                self._remember((crc, size))
            return pos
        while pos < n:
            kind, end = _frame_at(data, pos)
            if kind == _SHORT:
                break
            if kind == _BAD:
                pos = _resync(data, pos)
                continue
            size, crc = HEADER.unpack_from(data, pos + len(MAGIC))[:2]
            self._remember((crc, size))
            pos = last = end
        return last

    def _repair(self, base: int) -> int:
        """Cut a torn record off the end of segment *base* (bytes after its last whole record that
        hold none); its length. Damage before a whole record stays: the reader steps over it."""
        path = self._path(base)
        size = path.stat().st_size
        pos = self._scan(base)
        if pos < size:
            log.warning("WAL %s: cut %d bytes of a torn record off the end of %s", self.dir, size - pos, path.name)
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
            tail = self._tail
            if tail is None or self._end - self._bases[-1] >= self.segment_bytes:
                tail = self._new_segment(self._end)
            self._write(tail, record)
            self._remember(digest)
            start = self._end
            self._end += len(record)
            self.appended += 1
            mem = self._mem
            if len(mem) >= MEMORY_RECORDS:
                mem.popleft()  # the reader lags: it reads those from the file
            mem.append((start, self._end, Message(topic, payload, datetime.fromtimestamp(received_ns / 1e9, UTC), qos)))
            return self._end

    def _write(self, tail: BinaryIO, record: bytes) -> None:
        """Write all of *record*, or nothing: a failed write (disk full) is cut off again, so the
        next append after space returns follows the last whole record."""
        view = memoryview(record)
        done = 0
        try:
            while done < len(record):
                done += tail.write(view[done:]) or 0
        except OSError:
            if done:
                try:
                    os.ftruncate(tail.fileno(), self._end - self._bases[-1])
                except OSError as exc:  # the reader steps over what is left
                    log.error("WAL %s: cannot cut a partly written record: %s", self.dir, exc)
            raise

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
        self._tail = open(self._path(base), "ab", buffering=0)  # noqa: SIM115 - kept open for appends
        self._bases.append(base)
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
            try:
                with open(path, "rb") as f:
                    f.seek(offset - base)
                    data = f.read(min(seg_end - offset, max_bytes))
            except FileNotFoundError:  # moved aside meanwhile
                data = b""
            if not data:
                if i + 1 >= len(bases):
                    break
                offset = bases[i + 1]
                continue
            before = len(out)
            if base in self._v1:
                pos, damaged = _decode_v1_into(out, data, max_records)
                skipped = 0
                if damaged:  # format 1 cannot resynchronise: the rest of this segment is lost
                    skipped, pos = seg_end - offset - pos, seg_end - offset
            else:
                pos, skipped = _decode_into(out, data, max_records, self._topics)
            if pos == 0 and not skipped:
                if len(data) < seg_end - offset:  # a record larger than max_bytes
                    max_bytes *= 2
                    continue
                skipped = pos = len(data)  # a record cut off at the end of a closed segment
            if skipped:
                self._skipped(base, offset, skipped)
            self._seen(base, offset, len(out) - before, skipped, offset + pos >= seg_end)
            offset += pos
        return offset

    def _skipped(self, base: int, offset: int, n: int) -> None:
        self.skipped_bytes += n
        log.warning("WAL %s: stepped over %d damaged bytes in segment %s, reading from offset %d (the messages in "
                    "them are lost; reading goes on after them); %d bytes skipped since start",
                    self.dir, n, self._path(base).name, offset, self.skipped_bytes)

    def _seen(self, base: int, offset: int, records: int, skipped: int, finished: bool) -> None:
        """Tally what the reader got from segment *base*; a segment read from its start to its
        end with no readable record is moved aside to ``damaged/``."""
        seen = self._seg_seen
        if offset == base or seen is None or seen[0] != base:
            seen = (base, 0, 0) if offset == base else None
        if seen is None:
            return
        seen = (base, seen[1] + records, seen[2] + skipped)
        self._seg_seen = seen
        if finished and seen[1] == 0 and seen[2] > 0 and base != self._bases[-1]:
            self._move_aside(base, seen[2])

    def _move_aside(self, base: int, size: int) -> None:
        path = self._path(base)
        dest = self.dir / DAMAGED / path.name
        dest.parent.mkdir(exist_ok=True)
        with self._lock:
            try:
                os.replace(path, dest)
            except OSError as exc:
                log.error("WAL %s: segment %s holds no readable record and cannot be moved aside: %s",
                          self.dir, path.name, exc)
                return
            if base in self._bases:
                self._bases.remove(base)
        self.moved_aside.append(dest)
        log.error("WAL %s: segment %s (%d bytes) holds no readable record: moved to %s; the messages in it are "
                  "lost, the rest of the WAL is read (delete the folder %s once looked at; `oddwatch state repair` "
                  "starts a flow afresh)", self.dir, path.name, size, dest, dest.parent)

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
