"""Public benchmark data sets: where they come from and where oddwatch keeps them.

``oddwatch datasets fetch NAME`` downloads a data set from its original public source (or
copies a local copy given with ``--from DIR``) into the cache folder, and ``oddwatch datasets
path NAME`` prints that folder. The cache folder of data set ``NAME`` is
``$ODDWATCH_DATA/NAME`` when ``ODDWATCH_DATA`` is set, else
``$XDG_CACHE_HOME/oddwatch/datasets/NAME`` (``~/.cache/oddwatch/datasets/NAME``).

================ ======================================================= ======================
name             source                                                  files in the cache
================ ======================================================= ======================
``nab``          numenta/NAB v1.1 on GitHub (MIT)                        ``data/``, ``labels/``,
                                                                         ``config/profiles.json``
``hdfs``         loghub HDFS_v1 on Zenodo (record 8196385)               ``HDFS.log``,
                                                                         ``anomaly_label.csv``
``bgl``          loghub BGL on Zenodo (record 8196385)                   ``BGL.log``
``thunderbird``  loghub's 2,000-line Thunderbird sample on GitHub        ``Thunderbird_2k.log``
``loghub2k``     loghub's 2,000-line samples of its systems on GitHub  ``<System>/<System>_2k.log``
``tep``          Braatz's Tennessee Eastman data (University of Illinois ``d00.dat``,
                 licence), the GitHub copy camaramm/tennessee-eastman-   ``dNN_te.dat``, ...
                 profBraatz at a pinned commit
``streaming``    the 20 labelled series of wenig/touchstone-rs (MIT; each ``benchmark/*.parquet``
                 series keeps its source's terms, ``DATASETS.md``)
================ ======================================================= ======================

A download is checked against its SHA-256 where it is known (pinned files: GitHub regenerates
its archives, so ``tep`` and ``streaming`` have no archive checksum; the manifest records the
SHA-256 of what was downloaded), and extracted
files against the per-file SHA-256 in ``datasets_sha256.json`` where they are listed. The
loghub data sets are for research use (cite Loghub, ISSRE 2023); NAB is MIT-licensed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath

LOGHUB_COMMIT = "dd61d0952749ee7963bde24220d1be5ede023033"
LOGHUB_ZENODO = "https://zenodo.org/records/8196385/files"
TEP_COMMIT = "df23f0ae22127db9c1d954ba456788c4d4c5470d"
MANIFEST = "SOURCE.json"


class DatasetError(Exception):
    """A data set could not be fetched, verified or found (the message says what to do)."""


@dataclass(frozen=True)
class Source:
    """One downloadable file: a plain file or an archive (``.zip``, ``.tar.gz``).

    ``keep`` lists glob patterns matched against each archive member's path below the
    archive's top folder (when every member sits in one, as in GitHub's archives); a kept
    member is written under that path, renamed by ``rename``. A plain file is written as
    ``filename``.
    """

    url: str
    filename: str
    sha256: str | None = None
    keep: tuple[str, ...] = ()
    rename: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """A named data set: its sources, the files that must be there, and its loghub folder name."""

    name: str
    description: str
    sources: tuple[Source, ...]
    required: tuple[str, ...]
    local_folder: str = ""


DATASETS: dict[str, Dataset] = {
    "nab": Dataset(
        "nab", "Numenta Anomaly Benchmark v1.1: 58 labelled series (timestamp,value CSVs)",
        (Source("https://github.com/numenta/NAB/archive/refs/tags/v1.1.zip", "NAB-1.1.zip",
                keep=("data/*/*.csv", "labels/combined_windows.json", "labels/combined_labels.json",
                      "config/profiles.json", "LICENSE.txt")),),
        required=("data/*/*.csv", "labels/combined_windows.json"),
    ),
    "hdfs": Dataset(
        "hdfs", "loghub HDFS_v1: 11.2M Hadoop file-system log lines, block labels",
        (Source(f"{LOGHUB_ZENODO}/HDFS_v1.zip?download=1", "HDFS_v1.zip",
                keep=("HDFS.log", "preprocessed/anomaly_label.csv", "anomaly_label.csv", "README.md"),
                rename={"preprocessed/anomaly_label.csv": "anomaly_label.csv"}),),
        required=("*.log",), local_folder="HDFS",
    ),
    "bgl": Dataset(
        "bgl", "loghub BGL: 4.7M Blue Gene/L log lines, per-line alert labels",
        (Source(f"{LOGHUB_ZENODO}/BGL.zip?download=1", "BGL.zip", keep=("BGL.log",)),),
        required=("*.log",), local_folder="BGL",
    ),
    "thunderbird": Dataset(
        "thunderbird", "loghub Thunderbird sample: 2,000 lines with per-line alert labels",
        (Source(f"https://raw.githubusercontent.com/logpai/loghub/{LOGHUB_COMMIT}/Thunderbird/Thunderbird_2k.log",
                "Thunderbird_2k.log",
                sha256="903bbfa61c34d4803e4adcb0d726ff2eeb9a2e11971243269a2035fa6c3bbeb0"),
         Source(f"https://raw.githubusercontent.com/logpai/loghub/{LOGHUB_COMMIT}/Thunderbird/"
                "Thunderbird_2k.log_templates.csv", "Thunderbird_2k.log_templates.csv",
                sha256="e20e2dd64becc8d1637aee1fe004d897ca932cdfd520b46e6d0f5dd94ebdcdfe")),
        required=("*.log",), local_folder="Thunderbird",
    ),
    "loghub2k": Dataset(
        "loghub2k", "loghub 2,000-line samples of its systems (no labels: normal-only checks)",
        (Source(f"https://github.com/logpai/loghub/archive/{LOGHUB_COMMIT}.zip", "loghub.zip",
                keep=("*/*_2k.log", "*/*_2k.log_templates.csv", "LICENSE")),),
        required=("*/*_2k.log",),
    ),
    "tep": Dataset(
        "tep", "Tennessee Eastman process: normal runs and 21 fault runs of 52 variables, 3 min per row",
        (Source(f"https://github.com/camaramm/tennessee-eastman-profBraatz/archive/{TEP_COMMIT}.zip",
                "tep.zip", keep=("d*.dat", "readme.txt", "LICENSE")),),
        required=("d00.dat", "d00_te.dat", "d[0-2][0-9]_te.dat"),
    ),
    "streaming": Dataset(
        "streaming", "touchstone-rs streaming benchmark: 20 labelled series (parquet, needs pyarrow)",
        (Source("https://github.com/wenig/touchstone-rs/archive/refs/heads/main.zip", "touchstone-rs.zip",
                keep=("benchmark/*.parquet", "benchmark/DATASETS.md", "LICENSE")),),
        required=("benchmark/*.parquet",),
    ),
}


def get(name: str) -> Dataset:
    """The data set called *name*, or a :class:`DatasetError` listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}") from None


def cache_root() -> Path:
    """``$ODDWATCH_DATA``, else ``$XDG_CACHE_HOME/oddwatch/datasets`` (``~/.cache/...``)."""
    if os.environ.get("ODDWATCH_DATA"):
        return Path(os.environ["ODDWATCH_DATA"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "oddwatch" / "datasets"


def path(name: str) -> Path:
    """The cache folder of data set *name* (it may not exist yet).

    >>> import os; os.environ["ODDWATCH_DATA"] = "/data"; str(path("nab"))
    '/data/nab'
    >>> del os.environ["ODDWATCH_DATA"]
    """
    return cache_root() / get(name).name


def is_present(name: str) -> bool:
    """Whether every required file pattern of *name* matches something in its cache folder."""
    root = path(name)
    return root.is_dir() and not _missing(root, get(name).required)


def missing_message(name: str, what: str = "") -> str:
    """The line a test or script prints when data set *name* is not in the cache."""
    need = f" ({what})" if what else ""
    return (f"benchmark data set {name!r}{need} not found in {path(name)}: run "
            f"`oddwatch datasets fetch {name}` (or `oddwatch datasets fetch {name} --from DIR` "
            f"with a local copy)")


def hdfs_files(root: Path | None = None) -> tuple[Path, Path]:
    """The HDFS log and its block labels: the dev subset if it is there, else the full HDFS_v1."""
    root = path("hdfs") if root is None else root
    if (root / "HDFS_dev.log").exists():
        return root / "HDFS_dev.log", root / "HDFS_dev_labels.csv"
    return root / "HDFS.log", root / "anomaly_label.csv"


def _missing(root: Path, patterns: tuple[str, ...]) -> list[str]:
    return [p for p in patterns if not any(root.glob(p))]


def _known_sha256() -> dict[str, dict[str, str]]:
    text = resources.files("oddwatch").joinpath("datasets_sha256.json").read_text()
    return dict(json.loads(text))


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_files(name: str, root: Path) -> int:
    """Check the extracted files listed in ``datasets_sha256.json``; the number checked."""
    checked = 0
    for rel, want in _known_sha256().get(name, {}).items():
        file = root / rel
        if not file.exists():
            continue
        got = _sha256(file)
        if got != want:
            raise DatasetError(f"{name}: {rel} has SHA-256 {got}, expected {want}: the download is "
                               "corrupt or the source changed; delete it and fetch again")
        checked += 1
    return checked


def download(url: str, dest: Path, *, sha256: str | None = None, timeout_s: float = 60.0,
             progress: Callable[[int, int | None], None] | None = None) -> str:
    """Stream *url* into *dest*; the file's SHA-256 (checked against *sha256* when given)."""
    digest = hashlib.sha256()
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, part.open("wb") as out:  # noqa: S310
            total = int(resp.headers.get("Content-Length") or 0) or None
            done = 0
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except (urllib.error.URLError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise DatasetError(f"download of {url} failed: {exc}; check the network or fetch with --from DIR") from exc
    got = digest.hexdigest()
    if sha256 and got != sha256:
        part.unlink(missing_ok=True)
        raise DatasetError(f"download of {url} has SHA-256 {got}, expected {sha256}: not kept")
    part.replace(dest)
    return got


def _top_folder(names: list[str]) -> str:
    """The folder every member sits in (``"NAB-1.1/"``), or ``""``.

    >>> _top_folder(["NAB-1.1/", "NAB-1.1/data/a.csv"]), _top_folder(["HDFS.log", "pre/x.csv"]), _top_folder(["BGL.log"])
    ('NAB-1.1/', '', '')
    """
    tops = {n.split("/", 1)[0] for n in names if n}
    if len(tops) != 1:
        return ""
    top = tops.pop()
    return f"{top}/" if any(n.startswith(f"{top}/") for n in names) else ""


def _target(member: str, source: Source, top: str = "") -> str | None:
    """Where an archive member goes (relative), or None when it is not kept.

    >>> s = Source("u", "a.zip", keep=("data/*/*.csv",), rename={"x.csv": "y.csv"})
    >>> _target("NAB-1.1/data/realKnownCause/a.csv", s, "NAB-1.1/"), _target("NAB-1.1/README.md", s, "NAB-1.1/")
    ('data/realKnownCause/a.csv', None)
    """
    if member.startswith("/") or ".." in PurePosixPath(member).parts or not member.startswith(top):
        return None
    rel = member[len(top):]
    if any(fnmatch.fnmatchcase(rel, pattern) and rel.count("/") == pattern.count("/") for pattern in source.keep):
        return source.rename.get(rel, rel)
    return None


def _extract(archive: Path, source: Source, into: Path) -> int:
    kept = 0
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            top = _top_folder(zf.namelist())
            for info in zf.infolist():
                rel = None if info.is_dir() else _target(info.filename, source, top)
                if rel:
                    (into / rel).parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, (into / rel).open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    kept += 1
    elif archive.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            top = _top_folder([m.name + ("/" if m.isdir() else "") for m in members])
            for member in members:
                rel = _target(member.name, source, top) if member.isfile() else None
                fh = tf.extractfile(member) if rel else None
                if rel and fh:
                    (into / rel).parent.mkdir(parents=True, exist_ok=True)
                    with fh, (into / rel).open("wb") as dst:
                        shutil.copyfileobj(fh, dst, 1 << 20)
                    kept += 1
    else:
        raise DatasetError(f"{archive.name}: not a .zip or .tar.gz archive")
    if kept == 0:
        raise DatasetError(f"{archive.name}: no member matches {', '.join(source.keep)}; "
                           "the archive's layout changed")
    return kept


def _install(name: str, staged: Path, info: dict[str, object]) -> Path:
    """Check the staged folder, write its manifest and move it into the cache atomically."""
    dataset = get(name)
    missing = _missing(staged, dataset.required)
    if missing:
        raise DatasetError(f"{name}: no file matches {', '.join(missing)} in what was fetched "
                           f"({info.get('from') or info.get('urls')})")
    info["verified_files"] = _verify_files(name, staged)
    info["fetched_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    (staged / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")
    dest = path(name)
    if dest.exists():
        shutil.rmtree(dest)
    staged.replace(dest)
    return dest


def fetch(name: str, *, source_dir: Path | None = None, url: str | None = None, sha256: str | None = None,
          force: bool = False, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Put data set *name* in its cache folder and return that folder.

    With *source_dir*, copy a local copy (its ``local_folder`` subfolder when there is one, so
    a loghub checkout works too); else download every source (*url*/*sha256* replace the single
    source's, for a mirror). Nothing is changed when the data set is already there, unless
    *force*.
    """
    dataset = get(name)
    dest = path(name)
    if is_present(name) and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest.parent))
    try:
        if source_dir is not None:
            src = Path(source_dir).expanduser()
            if dataset.local_folder and (src / dataset.local_folder).is_dir():
                src = src / dataset.local_folder
            if not src.is_dir():
                raise DatasetError(f"{name}: --from {source_dir} is not a folder")
            shutil.copytree(src, staged, dirs_exist_ok=True)
            (staged / MANIFEST).unlink(missing_ok=True)
            return _install(name, staged, {"name": name, "from": str(src.resolve())})
        sources = dataset.sources
        if url:
            if len(sources) != 1:
                raise DatasetError(f"{name} has {len(sources)} source files: --url replaces only a single one")
            s = sources[0]
            sources = (Source(url, s.filename, sha256, s.keep, s.rename),)
        downloaded: dict[str, str] = {}
        for s in sources:
            target = staged / s.filename
            downloaded[s.url] = download(s.url, target, sha256=s.sha256, progress=progress)
            if s.keep:
                _extract(target, s, staged)
                target.unlink()
        return _install(name, staged, {"name": name, "urls": downloaded})
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
