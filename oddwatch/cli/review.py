"""Sub-commands for the operator reviewing alerts: ``alerts``, ``explain``, ``report``, ``feedback``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oddwatch.cli.config import settings_of


def cmd_alerts(args: argparse.Namespace) -> int:
    """List the alerts of a period with their explanations, read from InfluxDB."""
    from oddwatch.connectors.influx import InfluxError, InfluxQuery
    from oddwatch.review import ReviewError, format_alerts, list_alerts, parse_since

    query = InfluxQuery(settings_of(args).influx)
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

    query = InfluxQuery(settings_of(args).influx)
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

    query = InfluxQuery(settings_of(args).influx)
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

    settings = settings_of(args)
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
