"""``oddwatch datasets``: fetching from a (loopback) HTTP server and copying with ``--from``."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from oddwatch import datasets
from oddwatch.cli import main

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("ODDWATCH_DATA", str(root))
    return root


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static HTTP server on 127.0.0.1 serving the files of a temp folder."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def nab_zip(corrupt: bool = False) -> bytes:
    """A small archive in the layout of GitHub's NAB-1.1.zip (top folder, extra files)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for csv in (DATA / "nab" / "data").glob("*/*.csv"):
            body = csv.read_bytes() + (b"1,2\n" if corrupt else b"")
            zf.writestr(f"NAB-1.1/data/{csv.parent.name}/{csv.name}", body)
        zf.writestr("NAB-1.1/labels/combined_windows.json", (DATA / "nab/labels/combined_windows.json").read_text())
        zf.writestr("NAB-1.1/README.md", "not kept")
        zf.writestr("NAB-1.1/nab/detectors/x.py", "not kept")
    return buf.getvalue()


def test_cache_folder_follows_oddwatch_data(cache: Path) -> None:
    assert datasets.path("nab") == cache / "nab"
    assert not datasets.is_present("nab")
    assert "oddwatch datasets fetch nab" in datasets.missing_message("nab")
    with pytest.raises(datasets.DatasetError, match="unknown data set 'nob'"):
        datasets.path("nob")


def test_cache_folder_default_is_under_xdg_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ODDWATCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert datasets.path("hdfs") == tmp_path / "oddwatch" / "datasets" / "hdfs"


def test_download_extracts_kept_members_and_verifies_known_files(server: tuple[str, Path]) -> None:
    url, root = server
    body = nab_zip()
    (root / "NAB-1.1.zip").write_bytes(body)
    dest = datasets.fetch("nab", url=f"{url}/NAB-1.1.zip", sha256=hashlib.sha256(body).hexdigest())
    assert dest == datasets.path("nab") and datasets.is_present("nab")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "SOURCE.json",
        "data/artificialWithAnomaly/art_daily_jumpsup.csv",
        "data/realKnownCause/rogue_agent_key_hold.csv",
        "labels/combined_windows.json",
    ]
    info = json.loads((dest / "SOURCE.json").read_text())
    assert info["urls"] == {f"{url}/NAB-1.1.zip": hashlib.sha256(body).hexdigest()}
    assert info["verified_files"] == 2  # both series are listed in datasets_sha256.json
    assert not list(dest.parent.glob(".nab-*"))  # no staging folder left


def test_download_with_wrong_sha256_keeps_nothing(server: tuple[str, Path]) -> None:
    url, root = server
    (root / "NAB-1.1.zip").write_bytes(nab_zip())
    with pytest.raises(datasets.DatasetError, match="expected 00"):
        datasets.fetch("nab", url=f"{url}/NAB-1.1.zip", sha256="00" * 32)
    assert not datasets.path("nab").exists()
    assert not list(datasets.cache_root().glob(".nab-*"))


def test_download_with_a_changed_known_file_is_refused(server: tuple[str, Path]) -> None:
    url, root = server
    (root / "NAB-1.1.zip").write_bytes(nab_zip(corrupt=True))
    with pytest.raises(datasets.DatasetError, match="art_daily_jumpsup.csv has SHA-256"):
        datasets.fetch("nab", url=f"{url}/NAB-1.1.zip")
    assert not datasets.path("nab").exists()


def test_download_of_plain_files_with_pinned_checksums(server: tuple[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url, root = server
    log = b"- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond: (root) CMD (run-parts)\n"
    (root / "T_2k.log").write_bytes(log)
    thunder = datasets.DATASETS["thunderbird"]
    pinned = replace(thunder, sources=(datasets.Source(f"{url}/T_2k.log", "Thunderbird_2k.log",
                                                       sha256=hashlib.sha256(log).hexdigest()),))
    monkeypatch.setitem(datasets.DATASETS, "thunderbird", pinned)
    dest = datasets.fetch("thunderbird")
    assert (dest / "Thunderbird_2k.log").read_bytes() == log


def test_unreachable_source_says_what_to_do(server: tuple[str, Path]) -> None:
    url, _ = server
    with pytest.raises(datasets.DatasetError, match="--from DIR"):
        datasets.fetch("nab", url=f"{url}/missing.zip")


def test_from_copies_a_local_copy_and_is_idempotent(tmp_path: Path) -> None:
    dest = datasets.fetch("nab", source_dir=DATA / "nab")
    assert (dest / "data/realKnownCause/rogue_agent_key_hold.csv").exists()
    assert json.loads((dest / "SOURCE.json").read_text())["from"] == str((DATA / "nab").resolve())
    stamp = (dest / "SOURCE.json").stat().st_mtime_ns
    assert datasets.fetch("nab", source_dir=DATA / "nab") == dest
    assert (dest / "SOURCE.json").stat().st_mtime_ns == stamp  # already there: untouched


def test_from_a_loghub_checkout_uses_the_system_folder(tmp_path: Path) -> None:
    checkout = tmp_path / "loghub" / "HDFS"
    checkout.mkdir(parents=True)
    shutil.copy(DATA / "hdfs_sample.log", checkout / "HDFS_dev.log")
    shutil.copy(DATA / "hdfs_sample_labels.csv", checkout / "HDFS_dev_labels.csv")
    datasets.fetch("hdfs", source_dir=tmp_path / "loghub")
    log, labels = datasets.hdfs_files()
    assert log.name == "HDFS_dev.log" and labels.read_text().startswith("BlockId,Label")


def test_from_without_the_required_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DatasetError, match=r"no file matches data/\*/\*\.csv"):
        datasets.fetch("nab", source_dir=tmp_path / "empty")


def test_cli_fetch_path_and_list(capsys: pytest.CaptureFixture[str], cache: Path) -> None:
    assert main(["datasets", "path", "bgl"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "bgl")
    assert main(["datasets", "fetch", "nab", "--from", str(DATA / "nab")]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "nab")
    assert main(["datasets", "list"]) == 0
    assert "nab          present" in capsys.readouterr().out
    assert main(["datasets", "fetch", "nab", "--from", "/nonexistent", "--force"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_cli_eval_without_path_names_the_fetch_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="oddwatch datasets fetch hdfs"):
        main(["eval", "logs", "--out", "unused"])


def test_download_of_a_flat_zip_and_a_tarball_with_a_top_folder(server: tuple[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tarfile

    url, root = server
    with zipfile.ZipFile(root / "BGL.zip", "w") as zf:  # loghub's BGL.zip: the log at the root
        zf.writestr("BGL.log", "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 RAS KERNEL INFO ok\n")
    dest = datasets.fetch("bgl", url=f"{url}/BGL.zip")
    assert sorted(p.name for p in dest.iterdir()) == ["BGL.log", "SOURCE.json"]
    with tarfile.open(root / "T.tar.gz", "w:gz") as tf:
        tf.add(DATA / "hdfs_sample.log", arcname="T/HDFS.log")
        tf.add(DATA / "hdfs_sample_labels.csv", arcname="T/preprocessed/anomaly_label.csv")
    hdfs = datasets.DATASETS["hdfs"]
    monkeypatch.setitem(datasets.DATASETS, "hdfs", replace(hdfs, sources=(replace(hdfs.sources[0], filename="T.tar.gz"),)))
    datasets.fetch("hdfs", url=f"{url}/T.tar.gz")
    log, labels = datasets.hdfs_files()
    assert log.name == "HDFS.log" and labels.name == "anomaly_label.csv" and labels.exists()
