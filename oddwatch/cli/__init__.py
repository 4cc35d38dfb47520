"""The ``oddwatch`` command line: the parser and :func:`main`.

The sub-commands live by concern in :mod:`oddwatch.cli.config`, :mod:`oddwatch.cli.run`,
:mod:`oddwatch.cli.review` and :mod:`oddwatch.cli.data`. They import what they need lazily
so ``oddwatch --help`` and ``oddwatch config`` start fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from oddwatch.cli.config import cmd_config
from oddwatch.cli.data import cmd_datasets, cmd_demo, cmd_eval, cmd_replay, cmd_simulate
from oddwatch.cli.review import cmd_alerts, cmd_explain, cmd_feedback, cmd_report
from oddwatch.cli.run import cmd_health, cmd_run, cmd_services, cmd_state, cmd_status, cmd_up
from oddwatch.settings import ConfigError


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("oddwatch")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oddwatch", description="Real-time anomaly detection for sensors and logs over MQTT.",
                                     epilog="Exit codes: 0 done; 1 not healthy (status, health); 2 an error, printed as "
                                     "one line with the fix (config, argument, broker, InfluxDB, port, model); 3 "
                                     "feedback sent but no flow applied it.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--config", help="TOML config file (default: $ODDWATCH_CONFIG or ./oddwatch.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="print the sample config or check the effective one")
    p.add_argument("action", choices=["sample", "check"],
                   help="sample: every key with its default and comment; check: the effective settings, "
                   "the file read, and every value the flows check")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("services", help="local Mosquitto and InfluxDB on 127.0.0.1")
    p.add_argument("action", choices=["up", "down", "status"],
                   help="start (and create) them, stop them, or show their pid, port and files")
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("run", help="run a dataflow (Bytewax)")
    p.add_argument("flow", choices=["sensors", "logs", "incidents"], help="which dataflow")
    p.add_argument("-w", "--workers", type=int, default=1, help="Bytewax worker threads (default 1)")
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
    p.add_argument("kind", choices=["plant", "network"],
                   help="plant: sensor readings with injected faults; network: syslog with incidents")
    p.add_argument("--rate", type=float, default=100.0, help="messages per second")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of wall time")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same data and faults")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated seconds per wall second (timestamps end now; default 1 = live)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="services + dataflows + simulators, then a summary")
    p.add_argument("--duration", type=float, default=60.0, help="wall seconds of simulation (default 60, an hour "
                   "of simulated time)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the simulators (default 7)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--no-logs", action="store_true", help="sensors only")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("status", help="the broker, InfluxDB and each flow in a short table; exit 1 when the broker "
                       "or InfluxDB does not answer")
    p.add_argument("--json", action="store_true", help="every figure (flow metrics, precision in operation, local "
                   "services) as one JSON object")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("state", help="a flow's state dir: `state repair FLOW` starts it afresh")
    p.add_argument("action", choices=["repair"],
                   help="repair: move the flow's recovery database aside, so it starts afresh and reads its whole WAL")
    p.add_argument("flow", choices=["sensors", "logs", "incidents"], help="the flow whose state to repair")
    p.set_defaults(func=cmd_state)

    p = sub.add_parser("replay", help="replay recorded data over MQTT")
    p.add_argument("path", help="a file or folder of recorded data")
    p.add_argument("--format", default="nab", choices=["nab", "hdfs", "bgl", "thunderbird", "syslog", "jsonl", "raw"],
                   help="what the recording is (default nab: a folder of CSV series)")
    p.add_argument("--topic", default=None, help="topic template, e.g. plant/nab/{category}/{name}")
    p.add_argument("--speed", type=float, default=None, help="N times real time (default: as fast as --rate allows)")
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second limit")
    p.add_argument("--no-shift", dest="shift_to_now", action="store_false",
                   help="keep the recorded timestamps (the flows reject readings older than [sensors].max_past_s)")
    p.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("eval", help="score the live detection code on labelled data (series: NAB; logs: HDFS, BGL, "
                       "Thunderbird)")
    kinds = p.add_subparsers(dest="kind", required=True)
    config_help = "TOML config file: [series]/[log_detector] and [alerts] (also accepted before the sub-command)"
    e = kinds.add_parser("series", help="NAB-style CSV series with labelled windows: NAB score, alerts, delays",
                         description="Run each series of a NAB-style folder through the sensor decision code and "
                         "score it with NAB's rules (standard, low FP, low FN profiles).")
    e.add_argument("path", nargs="?", default=None, help="NAB folder (data/ and labels/; default: the cached NAB, "
                   "`oddwatch datasets fetch nab`)")
    e.add_argument("--labels", help="NAB combined_windows.json (default: <path>/labels/combined_windows.json)")
    e.add_argument("--out", required=True, help="folder for the per-series results and the summary")
    e.add_argument("--plots", help="write one PNG per series (values, score, threshold, windows, alerts) here")
    e.add_argument("--per-series", action="store_true",
                   help="every file decides alone (default: each <category> folder is one asset, as live)")
    e.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    e.set_defaults(func=cmd_eval)
    e = kinds.add_parser("logs", help="a labelled log file: F1, precision, recall, AUROC per window or session",
                         description="Run a log file through the log decision code (templates, windows, novelty, "
                         "thresholds) and score it against per-line or per-session labels.")
    e.add_argument("path", nargs="?", default=None,
                   help="log file (default: the cached HDFS, `oddwatch datasets fetch hdfs`)")
    e.add_argument("--labels", help="CSV id,label (per session with --session-regex, else per line)")
    e.add_argument("--out", required=True, help="folder for the scored windows and the summary")
    e.add_argument("--format", default="hdfs", choices=["hdfs", "bgl", "thunderbird", "raw", "jsonl"],
                   help="how lines are parsed (default hdfs)")
    e.add_argument("--session-regex", default=None,
                   help=r"session windows keyed by this regex, for --labels per session (HDFS: 'blk_-?\d+')")
    e.add_argument("--session-memory", type=float, default=None,
                   help="seconds a closed session is remembered so its later bursts continue it (0: off)")
    e.add_argument("--window-by", choices=["time", "count"], default=None,
                   help="tumbling windows per source by time or by lines (default: [log_detector] windows)")
    e.add_argument("--window-size", type=float, default=None, help="window size in seconds or lines")
    e.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    e.set_defaults(func=cmd_eval, plots=None)
    e = kinds.add_parser("suite", help="the configuration over every cached development data set, one table",
                         description="Run the one configuration over every development data set that is cached "
                         "(NAB, TEP, streaming, plant and network simulators, HDFS, Thunderbird, loghub 2k) "
                         "through the live decision objects and print one table.")
    e.add_argument("--only", help="these data sets only, comma-separated "
                   "(nab,tep,streaming,plant,hdfs,thunderbird,loghub2k,network)")
    e.add_argument("--quick", action="store_true", help="fewer files and seeds (a smoke run)")
    e.add_argument("--json", help="write every figure to this JSON file (scripts/make_benchmarks.py reads it)")
    e.add_argument("--workers", type=int, default=2, help="worker processes per data set (at most 2)")
    e.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    e.set_defaults(func=cmd_eval)

    p = sub.add_parser("up", help="run the dataflows (sensors, logs, incidents) until Ctrl-C/SIGTERM (--services: the local services too)")
    p.add_argument("--services", action="store_true", help="also start (and at the end stop) Mosquitto and InfluxDB")
    p.add_argument("-w", "--workers", type=int, default=1, help="Bytewax workers per flow")
    p.add_argument("--flow", action="append", choices=["sensors", "logs", "incidents"],
                   help="run only this flow (repeatable; default all three); a stop requested by a signal exits 0")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("health", help="exit 0 when the flow's metrics endpoint answers (for health checks)")
    p.add_argument("flow", choices=["sensors", "logs", "incidents"], help="which dataflow")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)")
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

    p = sub.add_parser("datasets", help="public benchmark data (NAB, HDFS, BGL, Thunderbird, loghub 2k, TEP, streaming) in a cache folder")
    p.add_argument("action", choices=["fetch", "path", "list"],
                   help="fetch: download or copy into the cache; path: print its folder; list: what is cached")
    p.add_argument("name", nargs="?", default="", help="nab, hdfs, bgl, thunderbird, loghub2k, tep or streaming")
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
    p.add_argument("--comment", default="", help="free text kept with the verdict")
    p.add_argument("--wait", type=float, default=5.0,
                   help="seconds to wait for a flow to apply it (exit 3 when none does; 0: do not wait)")
    p.set_defaults(func=cmd_feedback)
    return parser


def _operator_errors() -> tuple[type[BaseException], ...]:
    """The errors whose message names what failed and the fix: printed as one line, exit 2."""
    from detectors.embedders import ModelUnavailable
    from oddwatch.connectors.influx import InfluxError
    from oddwatch.connectors.mqtt import MqttError
    from oddwatch.services import ServiceError

    return (MqttError, InfluxError, ServiceError, ModelUnavailable)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one sub-command; the exit codes are listed in the README ("Exit codes")."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"oddwatch: config error: {exc}", file=sys.stderr)
        return 2
    except _operator_errors() as exc:
        print(f"oddwatch {args.command}: {exc}", file=sys.stderr)
        return 2
