"""Sub-commands that move or score data: ``simulate``, ``demo``, ``replay``, ``eval``, ``datasets``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oddwatch.cli.config import settings_of


def cmd_simulate(args: argparse.Namespace) -> int:
    from oddwatch import simulate as publish

    settings = settings_of(args)
    run = publish.run_plant if args.kind == "plant" else publish.run_network
    # --rate and --duration are wall-clock: at --speed N the run covers N times as much simulated time.
    summary = run(settings, rate=args.rate / args.speed, duration_s=args.duration * args.speed, seed=args.seed,
                  speed=args.speed, progress=True)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from oddwatch.demo import run_demo

    summary = run_demo(settings_of(args), duration_s=args.duration, seed=args.seed, as_json=args.json,
                       logs=not args.no_logs)
    return 0 if summary.get("ok", True) else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from oddwatch.replay import replay

    summary = replay(
        Path(args.path), settings_of(args), fmt=args.format, topic_template=args.topic,
        speed=args.speed, rate_limit=args.rate, shift_to_now=args.shift_to_now, loop=args.loop,
        progress=not args.quiet,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _eval_default_path(args: argparse.Namespace) -> None:
    """Without a path, evaluate the cached benchmark data (NAB for series, HDFS for logs)."""
    from oddwatch import datasets

    name = "nab" if args.kind == "series" else "hdfs"
    if not datasets.is_present(name):
        raise SystemExit(f"oddwatch eval: no path given and {datasets.missing_message(name)}")
    if args.kind == "series":
        args.path = str(datasets.path(name))
    else:
        log, labels = datasets.hdfs_files()
        args.path = str(log)
        args.labels = args.labels or (str(labels) if labels.exists() else None)
        if args.labels and args.session_regex is None:
            args.session_regex = r"blk_-?\d+"  # HDFS labels are per block


def cmd_eval_suite(args: argparse.Namespace) -> int:
    from oddwatch.evaluation import suite

    try:
        only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
        suite.select(only)
    except ValueError as exc:
        print(f"oddwatch: {exc}", file=sys.stderr)
        return 2
    result = suite.run_suite(settings_of(args), only=only, quick=args.quick, workers=args.workers)
    if args.json:
        suite.write_json(result, args.json)
    print(suite.format_table(result))
    print(suite.format_timings(result))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.kind == "suite":
        return cmd_eval_suite(args)
    if not args.out:
        print(f"oddwatch: eval {args.kind} needs --out DIR", file=sys.stderr)
        return 2
    if args.path is None:
        _eval_default_path(args)
    if args.kind == "series":
        from oddwatch.evaluation.series import evaluate_series

        settings = settings_of(args)
        evaluate_series(Path(args.path), Path(args.labels) if args.labels else None, Path(args.out),
                        series_params=settings.series, alert_settings=settings.alerts,
                        plots_dir=Path(args.plots) if args.plots else None,
                        assets=not getattr(args, "per_series", False))
    else:
        from oddwatch.evaluation.logs import evaluate_logs

        settings = settings_of(args)
        params = settings.log_detector
        if args.window_by:
            params.window_mode, params.window_by = "tumbling", args.window_by
        if args.window_size:
            if params.window_by == "count":
                params.window_size_lines = int(args.window_size)
            else:
                params.window_size_s = args.window_size
        if args.session_memory is not None:
            params.session_memory_s = args.session_memory
        try:
            summary = evaluate_logs(Path(args.path), fmt=args.format, labels=Path(args.labels) if args.labels else None,
                                    out_dir=Path(args.out), params=params, alerts=settings.alerts,
                                    session_regex=args.session_regex)
        except ValueError as exc:
            print(f"oddwatch: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """Fetch a public benchmark data set into the cache folder, or print that folder."""
    from oddwatch import datasets

    try:
        if args.action == "path":
            print(datasets.path(args.name))
            return 0
        if args.action == "list":
            for d in datasets.DATASETS.values():
                state = "present" if datasets.is_present(d.name) else "not fetched"
                print(f"{d.name:12} {state:12} {datasets.path(d.name)}  {d.description}")
            return 0
        if datasets.is_present(args.name) and not args.force:
            print(f"{args.name} is already in {datasets.path(args.name)} (--force fetches it again)", file=sys.stderr)
        else:
            where = f"copying {args.source_dir}" if args.source_dir else "downloading"
            print(f"{args.name}: {where} into {datasets.path(args.name)}", file=sys.stderr)
        shown = [-1]

        def progress(done: int, total: int | None) -> None:
            step = int(100 * done / total) // 5 if total else done >> 26  # every 5 % or 64 MiB
            if step != shown[0]:
                shown[0] = step
                size = f"{done / 2**20:,.0f} MiB" + (f" of {total / 2**20:,.0f} MiB" if total else "")
                print(f"\r  {size}", end="", file=sys.stderr, flush=True)

        dest = datasets.fetch(args.name, source_dir=Path(args.source_dir) if args.source_dir else None,
                              url=args.url, sha256=args.sha256, force=args.force, progress=progress)
        if shown[0] >= 0:
            print(file=sys.stderr)
    except datasets.DatasetError as exc:
        print(f"oddwatch datasets: {exc}", file=sys.stderr)
        return 2
    print(dest)
    return 0
