"""A bounded, append-only on-disk queue of line-protocol lines (the InfluxDB writer's spool).

Points that InfluxDB cannot take now wait here, in order, through an outage and across
restarts; :class:`oddwatch.connectors.influx.InfluxWriter` drains it first when InfluxDB answers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


class SpoolFullError(RuntimeError):
    """The spool has no room for more lines."""


class Spool:
    """A bounded, append-only on-disk queue of lines: ``seg-<n>.lp`` files in *directory*.

    Lines are appended to the newest segment and read from the oldest one; the read offset
    of the oldest segment is kept in ``seg-<n>.off`` so a restart does not resend what was
    written (a resend would be harmless anyway: InfluxDB overwrites identical points).
    One process at a time: the directory is locked with ``flock``. Thread-safe: a flow's
    worker appends what it hands to the sink while the writer's flusher reads and consumes.
    """

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int | None = None) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._mutex = threading.RLock()
        self.segment_bytes = segment_bytes or max(64 * 1024, min(16 * 1024 * 1024, max_bytes // 8))
        self._lock_file = open(self.dir / "lock", "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise RuntimeError(
                f"influx spool {self.dir} is in use by another process; give each writer its own "
                "[influx].spool_dir"
            ) from None
        self._segments = sorted(int(p.stem.split("-")[1]) for p in self.dir.glob("seg-*.lp"))
        self._offset = self._read_offset()
        self._tail: BinaryIO | None = None
        self.bytes = sum(self._path(n).stat().st_size for n in self._segments) - self._offset

    def _path(self, n: int, suffix: str = ".lp") -> Path:
        return self.dir / f"seg-{n:012d}{suffix}"

    def _read_offset(self) -> int:
        if not self._segments:
            return 0
        try:
            return int(self._path(self._segments[0], ".off").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def __len__(self) -> int:
        return self.bytes

    def append(self, lines: list[str], *, sync: bool = True) -> None:
        """Append *lines*, fsynced unless *sync* is false (then they survive kill -9 but not
        power loss); raises SpoolFullError when they do not fit."""
        data = "".join(line + "\n" for line in lines).encode()
        with self._mutex:
            if self.bytes + len(data) > self.max_bytes:
                raise SpoolFullError(f"spool {self.dir} full: {self.bytes} + {len(data)} > {self.max_bytes} bytes")
            tail = self._tail
            if tail is None or tail.tell() >= self.segment_bytes or not self._segments:
                tail = self._rotate()
            start = tail.tell()
            try:
                view, done = memoryview(data), 0
                while done < len(data):
                    done += tail.write(view[done:]) or 0
            except OSError:  # disk full: cut the partial write off, so no line is torn
                if tail.tell() > start:
                    os.ftruncate(tail.fileno(), start)
                raise
            if sync:
                os.fsync(tail.fileno())
            self.bytes += len(data)

    def _rotate(self) -> BinaryIO:
        if self._tail is not None:
            self._tail.close()
        n = (self._segments[-1] + 1) if self._segments else 1
        self._segments.append(n)
        self._tail = open(self._path(n), "ab", buffering=0)  # noqa: SIM115 - kept open for appends
        return self._tail

    def read(self, max_lines: int, max_bytes: int = 8 * 1024 * 1024) -> tuple[list[str], int]:
        """Up to *max_lines* of the oldest lines and the byte count to pass to :meth:`consume`."""
        with self._mutex:
            return self._read(max_lines, max_bytes)

    def _read(self, max_lines: int, max_bytes: int) -> tuple[list[str], int]:
        while self._segments:
            head = self._segments[0]
            with open(self._path(head), "rb") as f:
                f.seek(self._offset)
                lines: list[str] = []
                size = 0
                while len(lines) < max_lines and size < max_bytes:
                    raw = f.readline()
                    if not raw:
                        break
                    size += len(raw)
                    text = raw.decode("utf-8", "replace").rstrip("\n")
                    if text:
                        lines.append(text)
            if size:
                return lines, size
            if len(self._segments) == 1:
                return [], 0
            self._drop_head()
        return [], 0

    def consume(self, size: int) -> None:
        """Mark *size* bytes from :meth:`read` as written."""
        with self._mutex:
            self._consume(size)

    def _consume(self, size: int) -> None:
        self._offset += size
        self.bytes -= size
        head = self._segments[0]
        if self._offset >= self._path(head).stat().st_size and len(self._segments) > 1:
            self._drop_head()
        elif self._offset >= self._path(head).stat().st_size and self._tail is not None:
            # the only segment is fully drained: start afresh
            self._tail.close()
            self._tail = None
            self._drop_head()
        else:
            self._path(head, ".off").write_text(str(self._offset))

    def _drop_head(self) -> None:
        head = self._segments.pop(0)
        self._path(head).unlink(missing_ok=True)
        self._path(head, ".off").unlink(missing_ok=True)
        self._offset = self._read_offset()

    def close(self) -> None:
        with self._mutex:
            self._close()

    def _close(self) -> None:
        if self._tail is not None:
            self._tail.close()
            self._tail = None
        if not self.bytes:
            for n in list(self._segments):
                self._path(n).unlink(missing_ok=True)
                self._path(n, ".off").unlink(missing_ok=True)
            self._segments.clear()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


