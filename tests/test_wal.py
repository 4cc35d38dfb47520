"""The WAL (oddwatch.connectors.wal): records, torn tails, segments, redelivery, and the Bytewax
source resuming from the offset in its snapshot."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import input, output
from bytewax.operators import map as op_map
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, run_main

from oddwatch.connectors.influx import InfluxWriter
from oddwatch.connectors.wal import Wal, WalSource
from oddwatch.settings import InfluxSettings


def _fill(wal: Wal, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        wal.append(f"t/{i % 3}", f"m{i}".encode(), 1_700_000_000_000_000_000 + i, 1)


def test_append_read_across_segments_and_reopen(tmp_path: Path) -> None:
    wal = Wal(tmp_path, segment_bytes=200)
    _fill(wal, 50)
    assert len(list(tmp_path.glob("*.wal"))) > 3
    msgs, offset = wal.read(0, 1000)
    assert [m.payload for m in msgs] == [f"m{i}".encode() for i in range(50)] and offset == wal.end
    first, mid = wal.read(0, 20)
    rest, end = wal.read(mid, 1000)
    assert first + rest == msgs and end == offset
    assert msgs[0].received.timestamp() == 1_700_000_000 and msgs[0].topic == "t/0" and msgs[0].qos == 1
    wal.close()
    again = Wal(tmp_path, segment_bytes=200)
    assert again.end == offset and again.read(0, 1000)[0] == msgs
    again.close()


def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    _fill(wal, 5)
    end = wal.end
    wal.close()
    (seg,) = tmp_path.glob("*.wal")
    with open(seg, "ab") as f:
        f.write(b"\x40\x00\x00\x00torn")  # a crash in the middle of an append
    wal = Wal(tmp_path)
    assert wal.end == end and len(wal.read(0, 100)[0]) == 5
    _fill(wal, 1, start=5)
    assert [m.payload for m in wal.read(0, 100)[0]][-1] == b"m5"
    wal.close()


def test_delete_before_keeps_what_is_still_needed(tmp_path: Path) -> None:
    wal = Wal(tmp_path, segment_bytes=100)
    _fill(wal, 40)
    _, offset = wal.read(0, 20)
    wal.delete_before(offset)
    assert wal.start <= offset
    assert [m.payload for m in wal.read(offset, 100)[0]] == [f"m{i}".encode() for i in range(20, 40)]
    wal.delete_before(wal.end)
    assert len(list(tmp_path.glob("*.wal"))) == 1  # the newest segment stays
    wal.close()


def test_redelivery_is_recognised_and_skip_to(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    _fill(wal, 3)
    assert wal.holds_recent("t/1", b"m1") and not wal.holds_recent("t/1", b"m9")
    wal.close()
    wal = Wal(tmp_path)  # remembered across a restart: read back from the segment
    assert wal.holds_recent("t/2", b"m2")
    wal.skip_to(wal.end + 1000)
    _fill(wal, 1, start=3)
    msgs, _ = wal.read(wal.start, 10)
    assert [m.payload for m in msgs] == [b"m0", b"m1", b"m2", b"m3"]
    wal.close()


class _Feeder:
    """A receiver that appends *items* once, then nothing."""

    def __init__(self, wal: Wal, items: list[int]) -> None:
        for i in items:
            wal.append("t", str(i).encode(), 0, 1)

    def close(self) -> None:
        pass


def _flow(source: WalSource, out: list[int]) -> Dataflow:
    flow = Dataflow("wal_test")
    nums = input("in", flow, source)
    output("out", op_map("decode", nums, lambda m: int(m.payload)), TestingSink(out))
    return flow


def test_source_resumes_from_its_snapshot_offset(tmp_path: Path) -> None:
    (tmp_path / "rec").mkdir()
    init_db_dir(tmp_path / "rec", 1)
    recovery = RecoveryConfig(str(tmp_path / "rec"))
    stop = threading.Event()
    stop.set()  # end (EOF) once the WAL is read
    first: list[int] = []
    run_main(_flow(WalSource(tmp_path / "wal", lambda wal, part: _Feeder(wal, list(range(100))), stop=stop), first),
             epoch_interval=timedelta(milliseconds=10), recovery_config=recovery)
    assert first == list(range(100))
    second: list[int] = []
    run_main(_flow(WalSource(tmp_path / "wal", lambda wal, part: _Feeder(wal, list(range(100, 150))), stop=stop),
                   second), epoch_interval=timedelta(milliseconds=10), recovery_config=recovery)
    assert second == list(range(100, 150)), "resumed after what the first run handed over"


def test_durable_sink_batches_are_in_the_spool_before_they_are_written(tmp_path: Path) -> None:
    settings = InfluxSettings(url="http://127.0.0.1:9", spool_dir=str(tmp_path))
    writer = InfluxWriter(settings, start=False)
    writer.add_durable(["m v=1 1", "m v=2 2"])
    assert writer.spool_bytes > 0 and list(tmp_path.glob("seg-*.lp"))
    writer.close()  # what InfluxDB did not take stays for the next start
    again = InfluxWriter(settings, start=False)
    assert again._spool.read(10)[0] == ["m v=1 1", "m v=2 2"]
    again.close()


def test_run_refuses_a_state_dir_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from oddwatch.flowrun import run_flow
    from oddwatch.settings import Settings

    settings = Settings()
    settings.state.dir = str(tmp_path)
    held = Wal(tmp_path / "sensors" / "wal" / "p0")  # another copy of the flow
    try:
        assert run_flow(settings, "sensors") == 2
    finally:
        held.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in use by another process" in err and str(tmp_path) in err


def _drain(wal: Wal, offset: int, got: list[bytes], per_read: int = 70) -> int:
    while True:
        more, offset = wal.read(offset, per_read)
        if not more:
            return offset
        got += [m.payload for m in more]


def test_memory_and_files_hand_over_every_record_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("oddwatch.connectors.wal.MEMORY_RECORDS", 100)  # the reader lags beyond it
    wal = Wal(tmp_path, segment_bytes=3000)
    _fill(wal, 1000)
    got: list[bytes] = []
    assert _drain(wal, 0, got) == wal.end
    assert got == [f"m{i}".encode() for i in range(1000)]
    wal.close()
    wal = Wal(tmp_path, segment_bytes=3000)  # a restart: old records from the files, new ones from memory
    got, offset = [], 0
    for i in range(1000, 1500):
        _fill(wal, 1, start=i)
        if i % 7 == 0:
            offset = _drain(wal, offset, got, per_read=50)
    assert _drain(wal, offset, got) == wal.end
    assert got == [f"m{i}".encode() for i in range(1500)]
    wal.close()


def test_redelivery_is_recognised_just_after_a_new_segment(tmp_path: Path) -> None:
    wal = Wal(tmp_path, segment_bytes=100)
    _fill(wal, 6)  # the last records sit in the segment before the newest one
    wal.close()
    wal = Wal(tmp_path, segment_bytes=100)
    assert wal.holds_recent("t/1", b"m4") and wal.holds_recent("t/2", b"m5")
    wal.close()


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def test_reader_steps_over_a_damaged_record_and_counts_the_bytes(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    _fill(wal, 100)
    wal.close()
    (seg,) = _segments(tmp_path)
    data = bytearray(seg.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 10] = b"\x00" * 10  # a bad record in the middle
    seg.write_bytes(bytes(data))
    wal = Wal(tmp_path)
    msgs, offset = wal.read(0, 1000)
    payloads = [m.payload for m in msgs]
    assert offset == wal.end and len(payloads) >= 98 and payloads[-1] == b"m99" and payloads[0] == b"m0"
    assert 0 < wal.skipped_bytes < 100
    _fill(wal, 1, start=100)  # appends go on after the damage
    assert wal.read(offset, 10)[0][0].payload == b"m100"
    wal.close()


def test_a_segment_with_no_readable_record_is_moved_aside(tmp_path: Path) -> None:
    wal = Wal(tmp_path, segment_bytes=300)
    _fill(wal, 40)
    wal.close()
    segs = _segments(tmp_path)
    assert len(segs) > 3
    segs[1].write_bytes(b"\x5a" * segs[1].stat().st_size)  # overwritten
    wal = Wal(tmp_path, segment_bytes=300)
    msgs, _ = wal.read(0, 1000)
    assert [m.payload for m in msgs][:3] == [b"m0", b"m1", b"m2"] and msgs[-1].payload == b"m39"
    assert [p.name for p in wal.moved_aside] == [segs[1].name] and (tmp_path / "damaged" / segs[1].name).exists()
    wal.close()


def test_format_1_segments_are_still_read(tmp_path: Path) -> None:
    import struct
    import zlib

    old = bytearray()
    for i in range(5):
        body = b"t/old" + f"o{i}".encode()
        old += struct.pack("<IIqBH", len(body), zlib.crc32(body), 1_700_000_000_000_000_000, 1, 5) + body
    (tmp_path / f"{0:020d}.wal").write_bytes(bytes(old))
    wal = Wal(tmp_path)
    _fill(wal, 3)  # new records go to a framed segment after the old one
    assert [m.payload for m in wal.read(0, 100)[0]] == [b"o0", b"o1", b"o2", b"o3", b"o4", b"m0", b"m1", b"m2"]
    assert len(_segments(tmp_path)) == 2
    wal.close()
    wal = Wal(tmp_path)
    assert len(wal.read(0, 100)[0]) == 8
    wal.close()


def test_a_failed_append_leaves_no_partial_record(tmp_path: Path) -> None:
    wal = Wal(tmp_path)
    _fill(wal, 3)
    end = wal.end

    class Full:
        def __init__(self, f: object) -> None:
            self.f = f

        calls = 0

        def write(self, data: memoryview) -> int:  # a part, then ENOSPC, as a full disk does
            self.calls += 1
            if self.calls > 1:
                raise OSError(28, "No space left on device")
            return self.f.write(bytes(data[:5]))  # type: ignore[attr-defined,no-any-return]

        def fileno(self) -> int:
            return self.f.fileno()  # type: ignore[attr-defined,no-any-return]

    real = wal._tail
    wal._tail = Full(real)  # type: ignore[assignment]
    with pytest.raises(OSError):
        wal.append("t/x", b"lost", 0, 1)
    wal._tail = real
    assert wal.end == end
    _fill(wal, 1, start=3)
    wal.close()
    wal = Wal(tmp_path)
    assert [m.payload for m in wal.read(0, 100)[0]] == [b"m0", b"m1", b"m2", b"m3"] and wal.skipped_bytes == 0
    wal.close()
