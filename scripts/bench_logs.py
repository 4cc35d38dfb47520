"""Benchmark of the log scoring core on HDFS (prints markdown tables).

Modes:

- default: throughput of :class:`oddwatch.core.logsource.LogSourceState` (templates, windows, cached
  template embeddings, novelty, bursts, calibration, alerts), driven as ``oddwatch eval logs`` does, in lines/s on pre-parsed HDFS lines with the
  default model, template-cache hit rate, model calls per 1,000 lines, micro-batch sizes, peak
  RSS, and the ratio against embedding every line with the same model;
- ``--batch-sizes 32,64,...``: pure model throughput (texts/s) per batch size on whatever device
  ``--device auto`` picks (CUDA in half precision when available);
- ``--matryoshka``: quality (AUROC, AUPRC, F1) and speed with the template embeddings truncated
  to 32, 64, 128 components and at full size, and with two-stage search (first d components of
  the semantic part, then the top candidates rescored at full size). all-MiniLM-L6-v2 is *not*
  Matryoshka-trained, so its truncated prefixes are not meant to stand alone: this measures
  what truncation costs.

Each mode also writes ``--out`` (default ``out/bench-logs[-mode].json``) for
``scripts/make_benchmarks.py``.

Examples::

    .venv/bin/python scripts/bench_logs.py --lines 60000
    .venv/bin/python scripts/bench_logs.py --batch-sizes 32,64,128,256,512,1024
    .venv/bin/python scripts/bench_logs.py --matryoshka
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from detectors.embedders import TemplateEmbeddingCache
from detectors.templates import TemplateMinerState
from oddwatch import datasets
from oddwatch.core.log_pipeline import LogParams, build_embedder
from oddwatch.core.logsource import Decided, LogSourceState
from oddwatch.evaluation import benchtools
from oddwatch.evaluation.corpora import read_log as read_lines
from oddwatch.evaluation.logs import decide_lines, evaluate_logs, template_hit_rate

ROOT = Path(__file__).resolve().parents[1]
BENCH = {"quick": ["--lines", "5000"], "full": ["--lines", "60000"], "data": "hdfs"}  # how scripts/bench.py runs it

HDFS_LOG = Path("hdfs") / "HDFS_dev.log"  # under --data
DEFAULT_LOG = datasets.hdfs_files()[0]  # `oddwatch datasets fetch hdfs`


def _table(rows: list[dict[str, object]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_core(path: Path, limit: int | None, device: str) -> dict[str, object]:
    items = [(ts, src, msg) for ts, src, msg, _ in read_lines(path, "hdfs")][:limit]
    t0 = time.perf_counter()
    params = LogParams(device=device, window_mode="session")
    cache = TemplateEmbeddingCache(build_embedder(params), capacity=params.cache_capacity)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    states: dict[str, LogSourceState] = {}
    windows = sum(isinstance(o, Decided) for o in decide_lines(items, params, cache, states=states))
    core_s = time.perf_counter() - t0
    miner = TemplateMinerState(max_clusters=params.max_templates, sim_th=params.template_sim_th,
                               depth=params.template_depth)
    t0 = time.perf_counter()
    for _, _, msg in items:  # the anchor: Drain3 with the same masking, nothing else
        miner.add(msg)
    drain3_rate = len(items) / (time.perf_counter() - t0)
    sizes = cache.batch_sizes or [0]
    model = cache.embedder
    assert model is not None  # set above
    sample = [msg for _, _, msg in items[:512]]
    model.encode(sample[:32])
    t0 = time.perf_counter()
    model.encode(sample)
    per_line = len(sample) / (time.perf_counter() - t0)
    rate = len(items) / core_s
    row = {
        "lines": len(items), "windows": windows, "templates": sum(len(st.templates.miner) for st in states.values()),
        "core lines/s": rate, "drain3 alone lines/s": drain3_rate, "model load s": load_s,
        "cache hit rate": template_hit_rate(cache, states),
        "model calls / 1k lines": 1000.0 * cache.model_calls / len(items),
        "mean batch": sum(sizes) / len(sizes), "max batch": max(sizes), "peak RSS MiB": benchtools.rss_mb(),
        "embed-every-line lines/s": per_line, "speed-up": rate / per_line,
        "device": str(getattr(model, "device", "?")),
    }
    print(_table([row]))
    return {"core": {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}}


def bench_batches(path: Path, sizes: list[int], device: str, seconds: float) -> dict[str, object]:
    texts = [msg for _, _, msg, _ in read_lines(path, "hdfs")][: max(4096, 4 * max(sizes))]
    model = build_embedder(LogParams(device=device))
    rows = []
    for size in sizes:
        model.batch_size = size  # type: ignore[attr-defined]
        model.encode(texts[:size])
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            start = done % (len(texts) - size)
            model.encode(texts[start:start + size])
            done += size
        rows.append({"device": str(getattr(model, "device", "?")), "batch": size,
                     "texts/s": round(done / (time.perf_counter() - t0), 1)})
    print(_table(rows))
    return {"batches": {f"batch_{r['batch']}": r for r in rows}}


def bench_matryoshka(path: Path, device: str) -> dict[str, object]:
    rows = []
    runs = [("truncate_dim", d) for d in (32, 64, 128, 0)] + [("search_dims", d) for d in (32, 64, 128)]
    for mode, dims in runs:
        t0 = time.perf_counter()
        params = LogParams(device=device, **{mode: dims})
        summary = evaluate_logs(path, labels=path.parent / "HDFS_dev_labels.csv", params=params, session_regex=r"blk_-?\d+")
        rows.append({"mode": "truncated embedding" if mode == "truncate_dim" else "two-stage search",
                     "dims": dims or 384, "AUROC": round(summary["auroc"], 4), "AUPRC": round(summary["auprc"], 4),
                     "F1": round(summary["f1"], 4), "precision": round(summary["precision"], 4),
                     "recall": round(summary["recall"], 4), "lines/s": round(summary["lines_per_s"]),
                     "wall s": round(time.perf_counter() - t0, 1)})
    print(_table(rows))
    return {f"{r['mode']} {r['dims']}": r for r in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="benchmark data folder (reads hdfs/HDFS_dev.log)")
    parser.add_argument("--log", type=Path, default=None, help="HDFS log file (default: --data/hdfs/HDFS_dev.log, else the `oddwatch datasets` cache)")
    parser.add_argument("--lines", type=int, default=None, help="only the first N lines")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", default="", help="e.g. 32,64,128: pure model throughput")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per batch size")
    parser.add_argument("--matryoshka", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="result JSON (default out/bench-logs[-mode].json)")
    args = parser.parse_args(argv)
    args.log = args.log or (args.data / HDFS_LOG if args.data else DEFAULT_LOG)
    if not args.log.exists():
        print(f"bench_logs: {args.log} not found (pass --log)", file=sys.stderr)
        return 2
    command = "python scripts/bench_logs.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.batch_sizes:
        name = "bench-logs-batches"
        results = bench_batches(args.log, [int(s) for s in args.batch_sizes.split(",")], args.device, args.seconds)
    elif args.matryoshka:
        name = "bench-logs-matryoshka"
        results = bench_matryoshka(args.log, args.device)
    else:
        name = "bench-logs"
        results = bench_core(args.log, args.lines, args.device)
    benchtools.write_results(args.out or ROOT / "out" / f"{name}.json", name, command.strip(), results,  # type: ignore[arg-type]
                             show=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
