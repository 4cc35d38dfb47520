"""HDFS detection on blocks it was never tuned on: tune on the first half, measure on the second.

The detector runs online over the whole file in order, from the first line, without labels,
exactly as ``oddwatch eval logs`` runs it; only the metric is split. A block belongs to the
half of the file (by line number) where its first line is. Each candidate setting of a small
grid is scored on the first-half blocks; the one with the best F1 of its own alert decisions
there is chosen, and its second-half figures are the result. AUROC, AUPRC and the best F1 over
all thresholds (chosen with the labels) are diagnostics. A second diagnostic, ``cold``, starts
the detector at the middle line (it has seen nothing before; later bursts of blocks written in
the first half arrive as fragments) and scores the same second-half blocks.

The grid (two questions):

- ``session_memory_s``: a block's later bursts (verification, reads, deletion, hours after it
  was written) judged alone (0) or with the whole block so far (86400: a day);
- ``min_threshold``: the floor of the calibrated alert threshold (cosine distance to the
  nearest normal window), the setting that moves the detector's own decisions most: 0.08,
  0.11 (the default) or 0.15.

Usage::

    PYTHONPATH=. .venv/bin/python scripts/cv_hdfs.py --data DIR/HDFS_dev.log --labels DIR/HDFS_dev_labels.csv
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

from detectors.embedders import TemplateEmbeddingCache
from oddwatch.core.log_pipeline import LogParams, WindowResult, build_embedder
from oddwatch.core.logsource import Decided
from oddwatch.evaluation.corpora import parse_log_line, read_session_labels
from oddwatch.evaluation.logs import decide_lines, session_metrics

SESSION = r"blk_-?\d+"
GRID: dict[str, list[Any]] = {"session_memory_s": [0.0, 86400.0], "min_threshold": [0.08, 0.11, 0.15]}
SHOWN = ("f1", "precision", "recall", "tp", "fp", "fn", "auroc", "auprc")


def halves(lines: list[str]) -> tuple[set[str], set[str]]:
    """Blocks whose first line is in the first half of *lines*, and the others."""
    regex = re.compile(SESSION)
    half = len(lines) // 2
    first: dict[str, int] = {}
    for n, line in enumerate(lines):
        for block in regex.findall(line):
            first.setdefault(block, n)
    return {b for b, n in first.items() if n < half}, {b for b, n in first.items() if n >= half}


def run(lines: list[str], params: LogParams, embedder: Any) -> tuple[list[WindowResult], float, int]:
    """The detector over *lines* in order: its window results, seconds, lines."""
    cache = TemplateEmbeddingCache(embedder or build_embedder(params), capacity=params.cache_capacity)
    t0 = time.perf_counter()
    items = [parse_log_line(line, "hdfs")[:3] for line in lines if line.strip()]
    outputs = decide_lines(items, params, cache)
    results = [o.result for o in outputs if isinstance(o, Decided)]
    return results, time.perf_counter() - t0, len(items)


def fmt_row(name: str, m: dict[str, Any]) -> str:
    cells = [f"{m[k]:.3f}" if isinstance(m[k], float) else str(m[k]) for k in SHOWN]
    return f"| {name} | " + " | ".join(cells) + f" | {m['best_f1']['f1']:.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="HDFS_dev.log (time-ordered HDFS lines)")
    ap.add_argument("--labels", required=True, help="BlockId,Label CSV")
    ap.add_argument("--model", default="default", help="embedding model ([log_detector] model)")
    ap.add_argument("--out", default="out/cv-hdfs.json")
    args = ap.parse_args()
    with Path(args.data).open(encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
    labels = read_session_labels(args.labels)
    tune, test = halves(lines)
    regex = re.compile(SESSION)
    embedder = build_embedder(LogParams(model=args.model))
    rows = []
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values, strict=True))
        params = LogParams(model=args.model, window_mode="session", session_regex=SESSION, **setting)
        results, seconds, n = run(lines, params, embedder)
        cold, _, _ = run(lines[len(lines) // 2:], params, embedder)
        rows.append({"setting": setting, "seconds": seconds, "lines_per_s": n / seconds,
                     "first": session_metrics(results, labels, regex, only=tune),
                     "second": session_metrics(results, labels, regex, only=test),
                     "cold": session_metrics(cold, labels, regex, only=test)})
        print(f"{setting}: first-half F1 {rows[-1]['first']['f1']:.3f}, {seconds:.1f} s", flush=True)
    best = max(rows, key=lambda r: r["first"]["f1"])
    head = "| setting | " + " | ".join(SHOWN) + " | best-threshold F1 |"
    print(f"\nBlocks: {len(tune)} first seen in the first half ({sum(labels.get(b, 0) for b in tune)} anomalous), "
          f"{len(test)} in the second ({sum(labels.get(b, 0) for b in test)} anomalous).\n")
    for half in ("first", "second", "cold"):
        print(f"{half}{'' if half == 'cold' else ' half'}\n\n{head}\n|" + "---|" * (len(SHOWN) + 2))
        for r in rows:
            print(fmt_row(json.dumps(r["setting"]), r[half]))
        print()
    m = best["second"]
    print(f"tuned on first half, measured on second half: {json.dumps(best['setting'])}\n"
          f"  own decisions: F1 {m['f1']:.3f} (P {m['precision']:.3f}, R {m['recall']:.3f}; "
          f"tp {m['tp']}, fp {m['fp']}, fn {m['fn']})\n"
          f"  diagnostics: AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}, best-threshold F1 {m['best_f1']['f1']:.3f}\n"
          f"  cold start at the middle line: F1 {best['cold']['f1']:.3f} (P {best['cold']['precision']:.3f}, "
          f"R {best['cold']['recall']:.3f}), AUROC {best['cold']['auroc']:.3f}\n"
          f"  run time {best['seconds']:.1f} s ({best['lines_per_s']:.0f} lines/s, whole file)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"grid": GRID, "chosen": best["setting"], "runs": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
