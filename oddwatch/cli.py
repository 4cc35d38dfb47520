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
    """Run a dataflow in this process; with recovery (the default) it resumes where it stopped."""
    if args.config:
        os.environ["ODDWATCH_CONFIG"] = args.config
    if args.no_recovery:
        os.environ["ODDWATCH_STATE__RECOVERY"] = "false"  # the flow factory reads MQTT directly
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


def cmd_eval(args: argparse.Namespace) -> int:
    if args.kind == "series":
        from oddwatch.evaluation.series import evaluate_series

        evaluate_series(Path(args.path), Path(args.labels) if args.labels else None, Path(args.out))
    else:
        from oddwatch.evaluation.logs import evaluate_logs

        summary = evaluate_logs(Path(args.path), fmt=args.format, labels=Path(args.labels) if args.labels else None,
                                out_dir=Path(args.out), params=_settings(args).log_detector,
                                session_regex=args.session_regex)
        print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print each running flow's metrics (scraped from its endpoint) and the services' state."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    from oddwatch.observe.health import PORT_OFFSETS

    settings = _settings(args)
    report: dict[str, object] = {}
    for flow, offset in PORT_OFFSETS.items():
        url = f"http://{settings.metrics.host}:{settings.metrics.port + offset}/metrics"
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
        from oddwatch.services import from_settings

        report["services"] = from_settings(settings).status()
    except Exception as exc:  # status must always print something useful
        report["services"] = f"unknown: {exc}"
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    """Publish an operator's verdict on an alert (the flows learn from false positives), then
    wait up to ``--wait`` seconds for a flow to report it applied it (its ``feedback`` point)."""
    import getpass
    import time

    from oddwatch.connectors.influx import InfluxError
    from oddwatch.connectors.mqtt import MqttError
    from oddwatch.core.feedback import send_feedback, wait_applied

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
    p.add_argument("flow", choices=["sensors", "logs"])
    p.add_argument("-w", "--workers", type=int, default=1)
    p.add_argument("--recovery-dir", help="Bytewax snapshots (default: <[state].dir>/<flow>/recovery, created "
                   "on first run)")
    p.add_argument("--snapshot-s", type=float, default=None, help="snapshot interval (default: [state].snapshot_s)")
    p.add_argument("--no-recovery", action="store_true",
                   help="no WAL, no snapshots: a stop or crash loses in-flight messages and model state")
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
    p.add_argument("--format", default="nab", choices=["nab", "hdfs", "bgl", "syslog", "jsonl", "raw"])
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
    p.add_argument("path")
    p.add_argument("--labels", help="NAB combined_windows.json, or a CSV id,label for logs")
    p.add_argument("--out", required=True)
    p.add_argument("--format", default="hdfs", choices=["hdfs", "bgl", "raw", "jsonl"])
    p.add_argument("--session-regex", default=None, help=r"session id regex (default: [log_detector] session_regex, blk_-?\d+)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("feedback", help="tell oddwatch an alert was a false positive (or right)")
    p.add_argument("alert_id", help="the alert's alert_id, e.g. s1/pump1/temp:1767225600")
    p.add_argument("verdict", help="false-positive, true-positive or ack")
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
