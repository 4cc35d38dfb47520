"""The ``oddwatch`` command line.

Sub-commands import what they need lazily so ``oddwatch --help`` and ``oddwatch config``
start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from oddwatch.settings import ConfigError, Settings, as_dict, load_settings, sample_toml, to_toml


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "sample":
        print(sample_toml(), end="")
        return 0
    settings = _settings(args)
    print(to_toml(as_dict(settings, mask=True)), end="")
    print("# config OK", file=sys.stderr)
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    from oddwatch.services import from_settings

    svc = from_settings(_settings(args))
    if args.action == "up":
        svc.start()
        print(json.dumps(svc.status(), indent=2, default=str))
    elif args.action == "down":
        svc.stop()
        print("services stopped")
    else:
        status = svc.status()
        print(json.dumps(status, indent=2, default=str))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a dataflow: in this process (recovery on by default, it resumes where it stopped), or
    a local cluster of ``--processes``."""
    from oddwatch import cluster

    if args.config:
        os.environ["ODDWATCH_CONFIG"] = args.config
    if args.process_id is not None:
        os.environ["BYTEWAX_PROCESS_ID"] = str(args.process_id)
    if args.addresses:
        os.environ["BYTEWAX_ADDRESSES"] = args.addresses
    problem = cluster.check_cluster_env()
    if problem:
        print(f"oddwatch run: {problem}", file=sys.stderr)
        return 2
    if args.no_recovery or "BYTEWAX_PROCESS_ID" in os.environ:
        # the flow factory reads MQTT directly; a cluster's processes share the subscription
        # instead of each keeping a WAL (docs/scaling.md)
        os.environ["ODDWATCH_STATE__RECOVERY"] = "false"
    if args.processes > 1:
        if args.recovery_dir or "BYTEWAX_PROCESS_ID" in os.environ:
            print("oddwatch run: --processes starts a local cluster; it takes neither --recovery-dir nor "
                  "-i/-a (BYTEWAX_PROCESS_ID)", file=sys.stderr)
            return 2
        # The processes of a local cluster read MQTT directly (no WAL, no snapshots).
        os.environ["ODDWATCH_STATE__RECOVERY"] = "false"
        import signal

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, interrupt)
        return cluster.run_local_cluster(args.flow, args.processes, workers=args.workers,
                                         metrics_port=_settings(args).metrics.port_of(args.flow))
    settings = _settings(args)
    from oddwatch.flowrun import run_flow

    recovery = Path(args.recovery_dir) if args.recovery_dir else None
    snapshot_s = args.snapshot_s if args.snapshot_s is not None else settings.state.snapshot_s
    return run_flow(settings, args.flow, workers=args.workers, recovery=recovery, snapshot_s=snapshot_s)


def cmd_simulate(args: argparse.Namespace) -> int:
    from oddwatch import simulate as publish

    settings = _settings(args)
    run = publish.run_plant if args.kind == "plant" else publish.run_network
    # --rate and --duration are wall-clock: at --speed N the run covers N times as much simulated time.
    summary = run(settings, rate=args.rate / args.speed, duration_s=args.duration * args.speed, seed=args.seed,
                  speed=args.speed, progress=True)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from oddwatch.demo import run_demo

    summary = run_demo(_settings(args), duration_s=args.duration, seed=args.seed, as_json=args.json,
                       logs=not args.no_logs)
    return 0 if summary.get("ok", True) else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from oddwatch.replay import replay

    summary = replay(
        Path(args.path), _settings(args), fmt=args.format, topic_template=args.topic,
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


def cmd_eval(args: argparse.Namespace) -> int:
    if args.path is None:
        _eval_default_path(args)
    if args.kind == "series":
        from oddwatch.evaluation.series import evaluate_series

        settings = _settings(args)
        evaluate_series(Path(args.path), Path(args.labels) if args.labels else None, Path(args.out),
                        series_params=settings.series, alert_settings=settings.alerts,
                        plots_dir=Path(args.plots) if args.plots else None)
    else:
        from oddwatch.evaluation.logs import evaluate_logs

        settings = _settings(args)
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


def cmd_status(args: argparse.Namespace) -> int:
    """Print each running flow's metrics (scraped from its endpoint), precision in operation
    (the ``quality`` rows of the last 4 weeks) and the services' state."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    settings = _settings(args)
    report: dict[str, object] = {}
    for flow in ("sensors", "logs", "incidents"):
        url = f"http://{settings.metrics.host}:{settings.metrics.port_of(flow)}/metrics"
        try:
            text = requests.get(url, timeout=2).text
        except requests.RequestException:
            report[flow] = f"not running (no metrics at {url})"
            continue
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if not family.name.startswith("oddwatch_"):
                continue
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                name = sample.name.removeprefix("oddwatch_")
                if name.endswith(("_bucket", "_created")):
                    continue
                values[f"{name}{{{labels}}}" if labels else name] = sample.value
        report[flow] = values
    try:
        from oddwatch.evaluation.quality import quality_status

        report["quality"] = quality_status(settings)
    except Exception as exc:  # as below: status must always print something useful
        report["quality"] = f"unknown: {exc}"
    try:
        from oddwatch.services import from_settings

        report["services"] = from_settings(settings).status()
    except Exception as exc:  # status must always print something useful
        report["services"] = f"unknown: {exc}"
    print(json.dumps(report, indent=2, default=str))
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


def cmd_up(args: argparse.Namespace) -> int:
    """Run both dataflows (and with --services the local Mosquitto and InfluxDB) until stopped."""
    from oddwatch.up import FLOWS, run_up

    return run_up(_settings(args), config=args.config, services=args.services, workers=args.workers,
                  flows=args.flow or FLOWS)


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the flow's metrics endpoint answers (container and service health checks)."""
    import requests

    settings = _settings(args)
    host = settings.metrics.host if settings.metrics.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{host}:{settings.metrics.port_of(args.flow)}/metrics"
    try:
        ok = requests.get(url, timeout=args.timeout).status_code == 200
    except requests.RequestException:
        ok = False
    print(f"{args.flow}: {'healthy' if ok else 'no answer'} at {url}")
    return 0 if ok else 1


def cmd_alerts(args: argparse.Namespace) -> int:
    """List the alerts of a period with their explanations, read from InfluxDB."""
    from oddwatch.connectors.influx import InfluxError, InfluxQuery
    from oddwatch.review import ReviewError, format_alerts, list_alerts, parse_since

    query = InfluxQuery(_settings(args).influx)
    try:
        alerts = list_alerts(query, since=parse_since(args.since), open_only=args.open, site=args.site)
    except (ReviewError, InfluxError) as exc:
        print(f"oddwatch alerts: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([a.__dict__ for a in alerts], default=str, indent=2))
    else:
        print(format_alerts(alerts))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """The story of one alert: its explanation and the data around it (optionally a PNG)."""
    from oddwatch.connectors.influx import InfluxError, InfluxQuery
    from oddwatch.review import ReviewError, find_alert, story

    query = InfluxQuery(_settings(args).influx)
    try:
        s = story(query, find_alert(query, args.alert_id), plot=bool(args.png))
    except (ReviewError, InfluxError) as exc:
        print(f"oddwatch explain: {exc}", file=sys.stderr)
        return 2
    print("\n".join(s.lines))
    if args.png and s.png:
        Path(args.png).write_bytes(s.png)
        print(f"plot: {args.png}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """A self-contained HTML page of the period's alerts with a plot for each."""
    from oddwatch.connectors.influx import InfluxError, InfluxQuery
    from oddwatch.report import build_report
    from oddwatch.review import ReviewError, parse_since

    query = InfluxQuery(_settings(args).influx)
    try:
        page = build_report(query, since=parse_since(args.since), site=args.site)
    except (ReviewError, InfluxError) as exc:
        print(f"oddwatch report: {exc}", file=sys.stderr)
        return 2
    Path(args.out).write_text(page, encoding="utf-8")
    print(args.out)
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    """Publish an operator's verdict on an alert (the flows learn from false positives), then
    wait up to ``--wait`` seconds for a flow to report it applied it (its ``feedback`` point)."""
    import getpass
    import time

    from oddwatch.connectors.influx import InfluxError
    from oddwatch.connectors.mqtt import MqttError
    from oddwatch.feedback import send_feedback, wait_applied

    settings = _settings(args)
    since_ns = time.time_ns() - 1_000_000_000
    try:
        msg = send_feedback(settings, args.alert_id, args.verdict, args.user or getpass.getuser(), args.comment)
    except (ValueError, MqttError) as exc:
        print(f"oddwatch feedback: {exc}", file=sys.stderr)
        return 2
    sent = f"sent {json.loads(msg.payload)['verdict']} for {args.alert_id} on {msg.topic}"
    if args.wait <= 0:
        print(sent)
        return 0
    try:
        sources = wait_applied(settings, args.alert_id, since_ns, args.wait)
    except InfluxError as exc:
        print(f"{sent}; could not check whether a flow applied it: {exc}")
        return 0
    if sources:
        print(f"{sent}; applied by the {' and '.join(sources)} flow")
        return 0
    print(f"oddwatch feedback: {sent}, but no flow applied it within {args.wait:g} s: is the flow running "
          f"(oddwatch status), and is {args.alert_id!r} an alert id it raised?", file=sys.stderr)
    return 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oddwatch", description="Real-time anomaly detection for sensors and logs over MQTT.")
    parser.add_argument("--config", help="TOML config file (default: $ODDWATCH_CONFIG or ./oddwatch.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="print the sample config or check the effective one")
    p.add_argument("action", choices=["sample", "check"])
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("services", help="local Mosquitto and InfluxDB on 127.0.0.1")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("run", help="run a dataflow (Bytewax)")
    p.add_argument("flow", choices=["sensors", "logs", "incidents"])
    p.add_argument("-w", "--workers", type=int, default=1)
    p.add_argument("--recovery-dir", help="Bytewax snapshots (default: <[state].dir>/<flow>/recovery, created "
                   "on first run)")
    p.add_argument("--snapshot-s", type=float, default=None, help="snapshot interval (default: [state].snapshot_s)")
    p.add_argument("--no-recovery", action="store_true",
                   help="no WAL, no snapshots: a stop or crash loses in-flight messages and model state")
    p.add_argument("--processes", type=int, default=1,
                   help="start N processes on this host as one Bytewax cluster (each series on one worker; "
                   "no WAL or snapshots)")
    p.add_argument("-i", "--process-id", type=int, default=None,
                   help="this process's index in a cluster spread over hosts (BYTEWAX_PROCESS_ID); needs -a")
    p.add_argument("-a", "--addresses", default=None,
                   help="host:port of every process of the cluster, ';' separated (BYTEWAX_ADDRESSES)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("simulate", help="publish simulated data over MQTT")
    p.add_argument("kind", choices=["plant", "network"])
    p.add_argument("--rate", type=float, default=100.0, help="messages per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of wall time")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated seconds per wall second (timestamps end now; default 1 = live)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="services + dataflows + simulators, then a summary")
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--no-logs", action="store_true", help="sensors only")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("status", help="metrics of the running flows and the local services")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("replay", help="replay recorded data over MQTT")
    p.add_argument("path")
    p.add_argument("--format", default="nab", choices=["nab", "hdfs", "bgl", "thunderbird", "syslog", "jsonl", "raw"])
    p.add_argument("--topic", default=None, help="topic template, e.g. plant/nab/{category}/{name}")
    p.add_argument("--speed", type=float, default=None, help="N times real time (default: as fast as --rate allows)")
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second limit")
    p.add_argument("--no-shift", dest="shift_to_now", action="store_false",
                   help="keep the recorded timestamps (the flows reject readings older than [sensors].max_past_s)")
    p.add_argument("--loop", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("eval", help="score the live detection code on labelled data")
    p.add_argument("kind", choices=["series", "logs"])
    p.add_argument("path", nargs="?", default=None,
                   help="data to score (default: the cached NAB or HDFS, see `oddwatch datasets`)")
    p.add_argument("--labels", help="NAB combined_windows.json, or a CSV id,label for logs")
    p.add_argument("--out", required=True)
    p.add_argument("--format", default="hdfs", choices=["hdfs", "bgl", "thunderbird", "raw", "jsonl"])
    p.add_argument("--session-regex", default=None,
                   help=r"session windows keyed by this regex, for --labels per session (HDFS: 'blk_-?\d+')")
    p.add_argument("--session-memory", type=float, default=None,
                   help="seconds a closed session is remembered so its later bursts continue it (0: off)")
    p.add_argument("--window-by", choices=["time", "count"], default=None,
                   help="tumbling windows per source by time or by lines (default: [log_detector] windows)")
    p.add_argument("--window-size", type=float, default=None, help="window size in seconds or lines")
    p.add_argument("--config", default=argparse.SUPPRESS,
                   help="TOML config file: [log_detector] and [alerts] (also accepted before the sub-command)")
    p.add_argument("--plots", help="series: write one PNG per series (values, score, threshold, windows, alerts) here")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("up", help="run the dataflows (sensors, logs, incidents) until Ctrl-C/SIGTERM (--services: the local services too)")
    p.add_argument("--services", action="store_true", help="also start (and at the end stop) Mosquitto and InfluxDB")
    p.add_argument("-w", "--workers", type=int, default=1, help="Bytewax workers per flow")
    p.add_argument("--flow", action="append", choices=["sensors", "logs", "incidents"],
                   help="run only this flow (repeatable; default all three); a stop requested by a signal exits 0")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("health", help="exit 0 when the flow's metrics endpoint answers (for health checks)")
    p.add_argument("flow", choices=["sensors", "logs", "incidents"])
    p.add_argument("--timeout", type=float, default=3.0)
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("alerts", help="list the alerts with their explanations (from InfluxDB)")
    p.add_argument("--open", action="store_true", help="only the alerts still open")
    p.add_argument("--since", default="2h", help="how far back, e.g. 30m, 2h, 7d (default 2h)")
    p.add_argument("--site", help="only this site")
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("explain", help="the story of one alert: values or log windows around it")
    p.add_argument("alert_id", help="as listed by `oddwatch alerts`, e.g. s1/pump1/temp:1767225600")
    p.add_argument("--png", help="also write a plot of it to this PNG file")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("report", help="an HTML page of the period's alerts with a plot for each")
    p.add_argument("--since", default="24h", help="how far back, e.g. 24h, 7d (default 24h)")
    p.add_argument("--site", help="only this site")
    p.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("datasets", help="public benchmark data (NAB, HDFS, BGL, Thunderbird) in a cache folder")
    p.add_argument("action", choices=["fetch", "path", "list"])
    p.add_argument("name", nargs="?", default="", help="nab, hdfs, bgl or thunderbird")
    p.add_argument("--from", dest="source_dir", help="copy a local copy of the data set instead of downloading")
    p.add_argument("--url", help="download from this URL instead (a mirror of the single source file)")
    p.add_argument("--sha256", help="expected SHA-256 of the --url download")
    p.add_argument("--force", action="store_true", help="fetch again even if the data set is there")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("feedback", help="tell oddwatch an alert was a false positive (or right)")
    p.add_argument("alert_id", help="the alert's alert_id, e.g. s1/pump1/temp:1767225600")
    p.add_argument("verdict", help="false-positive, confirmed (true-positive), ack, or missed (with an id "
                                   "<source>:<epoch> for an incident nobody was alerted to)")
    p.add_argument("--user", default="", help="who says so (default: the login name)")
    p.add_argument("--comment", default="")
    p.add_argument("--wait", type=float, default=5.0,
                   help="seconds to wait for a flow to apply it (exit 3 when none does; 0: do not wait)")
    p.set_defaults(func=cmd_feedback)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"oddwatch: config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
