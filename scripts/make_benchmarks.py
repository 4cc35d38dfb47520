"""Generate ``docs/benchmarks.md`` from result files.

Reads, under ``--results DIR`` (default ``out/``):

- ``DIR/nab/summary.json``: ``oddwatch eval series --out DIR/nab`` (the cached NAB);
- ``DIR/hdfs/summary.json``: ``oddwatch eval logs --out DIR/hdfs`` (the cached HDFS);
- ``DIR/bench-*.json``: benchmark scripts' results (``scripts/bench_*.py``);
- ``DIR/suite.json``: ``oddwatch eval suite --json DIR/suite.json`` (every cached development
  data set, one table: the first section).

Any other ``DIR/*/summary.json`` is classified by its content. The ARTime reference scores
are computed here with :mod:`oddwatch.evaluation.nab` from NAB's published per-row output
(``--nab``, default: the cache folder of ``oddwatch datasets fetch nab``); the Numenta HTM ones
are quoted (its per-row output is not published with NAB v1.1). Usage::

    .venv/bin/python scripts/make_benchmarks.py [--results out] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oddwatch import datasets
from oddwatch.evaluation import benchtools, nab

ROOT = Path(__file__).resolve().parents[1]

PROFILE_COLUMNS = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]
# Published NAB v1.1 scores of Numenta HTM restricted to the 35 benchmark files of
# docs/benchmarks.md; quoted because its per-row output is not available here.
NUMENTA_HTM = {"standard": 66.59, "reward_low_FP_rate": 60.81, "reward_low_FN_rate": 71.06}
MAX_TABLE_ROWS = 40


def find_results(results: Path) -> dict[str, Any]:
    """``{"series": summary|None, "logs": summary|None, "bench": {name: data}}`` under *results*."""
    found: dict[str, Any] = {"series": None, "series_path": None, "logs": None, "logs_path": None, "bench": {}}
    candidates = [results / "nab" / "summary.json", results / "hdfs" / "summary.json"]
    candidates += sorted(p for p in results.glob("*/summary.json") if p not in candidates)
    for path in candidates:
        if not path.is_file():
            continue
        data = _load_json(path)
        kind = "series" if isinstance(data.get("nab"), Mapping) and "events" in data else "logs"
        if found[kind] is None:
            found[kind], found[kind + "_path"] = data, path
    for path in sorted(results.glob("bench-*.json")):
        found["bench"][path.stem] = _load_json(path)
    return found


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"make_benchmarks: {path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {"value": data}


def artime_scores(nab_dir: Path) -> dict[str, float] | None:
    """ARTime's NAB scores on the shared files, computed with our scorer (None if absent)."""
    art = nab_dir / "reference_results" / "ARTime"
    labels = nab_dir / "labels" / "combined_windows.json"
    if not art.is_dir() or not labels.is_file():
        return None
    profiles = nab.load_profiles(nab_dir / "config" / "profiles.json") if (
        nab_dir / "config" / "profiles.json").is_file() else None
    scores = nab.score_profiles(nab.load_results_dir(art, detector="ARTime"), nab.load_windows(labels), profiles)
    return {name: s.score for name, s in scores.items()}


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if abs(v) >= 1e4:
            return f"{v:,.0f}"
        if v and abs(v) < 1e-2:
            return f"{v:.3g}"
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)


def flatten(data: Mapping[str, Any], prefix: str = "", depth: int = 3) -> list[tuple[str, Any]]:
    """Scalar leaves of nested dicts as ``("a.b", value)``; large or deep dicts are skipped.

    >>> flatten({"a": 1, "b": {"c": 2.5, "d": [1]}, "e": "x"})
    [('a', 1), ('b.c', 2.5), ('e', 'x')]
    """
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if depth > 1 and len(value) <= MAX_TABLE_ROWS:
                out += flatten(value, name + ".", depth - 1)
        elif isinstance(value, (str, int, float, bool)) or value is None:
            out.append((name, value))
    return out


def _kv_table(pairs: list[tuple[str, Any]]) -> list[str]:
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in pairs[:MAX_TABLE_ROWS]]
    if len(pairs) > MAX_TABLE_ROWS:
        lines.append(f"| ... | {len(pairs) - MAX_TABLE_ROWS} more in the JSON file |")
    return lines


def nab_section(series: Mapping[str, Any] | None, series_path: Path | None,
                artime: dict[str, float] | None, nab_dir: Path, this_command: str) -> list[str]:
    lines = ["## Sensors: Numenta Anomaly Benchmark (NAB v1.1, 35 files)", ""]
    lines += [
        "NAB scores, normalised (0 = detect nothing, 100 = every window detected at its start). "
        "*Oracle threshold*: the one threshold over the whole corpus that maximises the score, "
        "chosen with the labels as NAB does. *Own decisions*: the pipeline's `is_anomaly` "
        "alerts, decided without labels (what an operator would get).",
        "",
        "| detector | standard | reward_low_FP_rate | reward_low_FN_rate | source |",
        "|---|---|---|---|---|",
    ]
    if series:
        for mode, label in (("oracle", "oddwatch, oracle threshold"), ("decisions", "oddwatch, own decisions")):
            vals = " | ".join(f"{series['nab'][p][mode]['score']:.2f}" for p in PROFILE_COLUMNS)
            lines.append(f"| {label} | {vals} | `{series.get('command', 'oddwatch eval series')}` |")
    else:
        lines.append("| oddwatch | – | – | – | no eval series summary found |")
    if artime:
        vals = " | ".join(f"{artime[p]:.2f}" for p in PROFILE_COLUMNS)
        lines.append(f"| ARTime (published output, scored here) | {vals} | `{this_command}` |")
    else:
        lines.append(f"| ARTime | – | – | – | {nab_dir}/reference_results/ARTime absent |")
    vals = " | ".join(f"{NUMENTA_HTM[p]:.2f}" for p in PROFILE_COLUMNS)
    lines += [f"| Numenta HTM (published) | {vals} | quoted from NAB's results on these files |", ""]
    if series:
        e, q = series["events"], series["no_anomaly"]
        delay = "n/a" if e["mean_delay_s"] is None else f"{e['mean_delay_s'] / 60:.1f} min"
        lines += [
            "Event-level view of the own decisions (an alert is a run of `is_anomaly` rows; a "
            "window is detected when an alert row falls in it; probationary rows excluded). NAB's "
            "windows of a file together span 10% of it, each centred on a labelled anomaly, so a "
            "detection right at the anomaly comes about half a window after the window start:",
            "",
            "| windows detected | alerts | false alerts | precision | recall | F1 | mean delay from window start "
            "| false alerts/day | alerts on artificialNoAnomaly | throughput |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {e['detected']}/{e['windows']} | {e['alerts']} | {e['false_alerts']} | {e['precision']:.3f} "
            f"| {e['recall']:.3f} | {e['f1']:.3f} | {delay} | {e['false_alerts_per_day']:.3f} "
            f"| {q['alerts']} in {q['files']} files | {series['rows']:,} rows in {series['seconds']:.1f} s "
            f"= {(series['rows_per_s'] or 0):,.0f} rows/s |",
            "",
            f"Source: `{series_path}` (created {series.get('created', '?')}, "
            f"{series.get('workers', 1)} process(es)).",
            "",
        ]
    return lines


def logs_section(logs: Mapping[str, Any] | None, path: Path | None, command: str) -> list[str]:
    lines = ["## Logs: HDFS", ""]
    if not logs:
        return lines + ["No `eval logs` summary found (expected `<results>/hdfs/summary.json`).", ""]
    lines += _kv_table(flatten(logs))
    lines += ["", f"Command: `{command}`; source: `{path}`.", ""]
    return lines


def bench_section(bench: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["## Throughput and latency benchmarks", ""]
    if not bench:
        return lines + ["No `bench-*.json` files found.", ""]
    for name, data in bench.items():
        lines += [f"### {name}", ""]
        results = data.get("results")
        rows = list(results.values()) if isinstance(results, Mapping) else []
        if rows and all(isinstance(r, Mapping) and list(r) == list(rows[0]) for r in rows):
            # one row per run with the same columns (e.g. per batch size or per dims): a table
            machine_kv = [kv for kv in flatten({k: v for k, v in data.items() if k != "results"}) if kv[0] != "command"]
            lines += _kv_table(machine_kv) + [""]
            lines += ["| " + " | ".join(map(str, rows[0])) + " |", "|" + "---|" * len(rows[0])]
            lines += ["| " + " | ".join(_fmt(v) for v in r.values()) + " |" for r in rows]
        else:
            lines += _kv_table([kv for kv in flatten(data) if kv[0] != "command"])
        lines += ["", f"Command: `{data.get('command', '(not recorded in the file)')}`.", ""]
    return lines



def cv_section(results: Path, logs: Mapping[str, Any] | None) -> list[str]:
    """How every default was chosen: held-out figures, never the tuning data's own."""
    lines = ["## Cross-validation: tuned on X, measured on Y", ""]
    cv_nab = results / "cv_nab.txt"
    if cv_nab.exists():
        lines += [
            "Sensors, NAB: leave one category out. For each of the four categories, the settings grid",
            "below is tuned on the other three (NAB standard score of the own alert decisions) and",
            "measured on the held-out one, for the own decisions and for the score column with NAB's",
            "threshold optimisation. The defaults are the setting every fold chose.",
            "",
            "```",
            *cv_nab.read_text().strip().splitlines(),
            "```",
            "",
            "Command: `python scripts/cv_nab.py --workers 2 > out/cv_nab.txt`.",
            "",
        ]
    halves = {k: (logs or {}).get(k) for k in ("first_half", "second_half")}
    if all(halves.values()):
        lines += [
            "Logs, HDFS: the detector runs online over the whole file from the first line, without",
            "labels; blocks are scored apart by the half of the file their first line is in. The log",
            "alert floor (`[log_detector] min_threshold = 0.15`) is the choice of",
            "`scripts/cv_hdfs.py` on the first half; the second half is the held-out measure.",
            "",
            "| blocks first seen in | blocks | anomalous | precision | recall | F1 | AUROC | AUPRC |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, label in (("first_half", "first half (tuned on)"), ("second_half", "second half (held out)")):
            h = halves[name]
            assert h is not None
            lines.append(f"| {label} | {h['labelled_sessions']} | {h['anomalous_sessions']} | {_fmt(h['precision'])} | "
                         f"{_fmt(h['recall'])} | {_fmt(h['f1'])} | {_fmt(h['auroc'])} | {_fmt(h['auprc'])} |")
        lines += ["", "Command: `oddwatch eval logs --format hdfs --session-regex 'blk_-?\\d+' --out out/hdfs`;",
                  "the grid: `python scripts/cv_hdfs.py --data HDFS_dev.log --labels HDFS_dev_labels.csv`.", ""]
    return lines


def suite_section(results: Path) -> list[str]:
    """The ``oddwatch eval suite`` table from ``DIR/suite.json``, with its run times."""
    from oddwatch.evaluation import suite

    path = results / "suite.json"
    if not path.is_file():
        return ["## Evaluation suite", "", f"No `{path}`: run `oddwatch eval suite --json {path}`.", ""]
    data = _load_json(path)
    quick = " (`--quick`: fewer files and seeds)" if data.get("quick") else ""
    return [
        "## Evaluation suite", "",
        f"`{data.get('command') or 'oddwatch eval suite'}`{quick}, created {data.get('created', '?')}: the one "
        "configuration (the defaults) over every development data set in the cache, through the live decision "
        "objects. Defaults were tuned on the 35 NAB development files (leave one category out) and the first "
        "half of the HDFS blocks; the simulators served during development; TEP, the streaming bundle, "
        "Thunderbird and the loghub 2k samples were never used to choose a setting. Columns: see "
        "`oddwatch/evaluation/suite.py`.", "",
        suite.format_table(data), "",
        suite.format_timings(data) + f" ({data.get('workers', '?')} worker processes).", "",
    ]


def render(results: Path, nab_dir: Path, this_command: str) -> str:
    """The whole ``docs/benchmarks.md`` text."""
    found = find_results(results)
    m = benchtools.machine()
    artime = artime_scores(nab_dir)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{this_command}` on {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} "
        "(do not edit by hand).",
        "",
        f"Machine: {m['platform']}, Python {m['python']}, {m['cpus']} CPUs ({m['cpu_model']}).",
        "",
    ]
    logs_cmd = (found["logs"] or {}).get("command") or (
        f"oddwatch datasets fetch hdfs && oddwatch eval logs --format hdfs --session-regex 'blk_-?\\d+' --out {results}/hdfs")
    lines += suite_section(results)
    lines += cv_section(results, found["logs"])
    lines += nab_section(found["series"], found["series_path"], artime, nab_dir, this_command)
    lines += logs_section(found["logs"], found["logs_path"], logs_cmd)
    lines += bench_section(found["bench"])
    series_cmd = (found["series"] or {}).get("command") or (
        f"oddwatch datasets fetch nab && oddwatch eval series --out {results}/nab")
    bench_cmds = [d["command"] for d in found["bench"].values() if isinstance(d.get("command"), str)]
    lines += ["## Reproduce", "", "```sh", f"oddwatch eval suite --json {results}/suite.json", series_cmd, logs_cmd, *bench_cmds, this_command, "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="out", help="folder of result files (default: out)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file to write")
    parser.add_argument("--nab", default=str(datasets.path("nab")),
                        help="NAB folder with reference_results/ARTime (default: `oddwatch datasets path nab`)")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "scripts/make_benchmarks.py", *(sys.argv[1:] if argv is None else argv)])
    text = render(Path(args.results), Path(args.nab), command)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"make_benchmarks: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
