"""Fuzz both dataflows with hostile messages, then check that every good message after them is scored.

    python scripts/bench_fuzz.py [--messages 100000] [--good 1000] [--model default|hashing]

The messages (:mod:`oddwatch.fuzz`: random bytes, invalid UTF-8, control and lone surrogate
characters, huge and nested JSON, huge lines, near-valid readings and log lines) go to the flow
of their topic (sensor or log) through a Bytewax testing source, with the default settings and
the configured embedding model; the good messages follow. Prints, per flow: messages in, ingest
errors by reason, dead letters, good messages scored, seconds, and whether the flow ended normally.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bytewax.testing import TestingSink, TestingSource, run_main  # noqa: E402

from flows import logs as log_flow  # noqa: E402
from flows import sensors as sensor_flow  # noqa: E402
from oddwatch.fuzz import fuzz_messages, good_messages  # noqa: E402
from oddwatch.records import Outgoing, Point, utcnow  # noqa: E402
from oddwatch.settings import Settings  # noqa: E402


def run(flow: str, msgs: list, good: list, settings: Settings) -> dict[str, object]:
    points: list[Point] = []
    out: list[Outgoing] = []
    builder = sensor_flow.build_flow if flow == "sensors" else log_flow.build_flow
    t0 = time.perf_counter()
    error = ""
    try:
        run_main(builder(settings, source=TestingSource(msgs + good), influx_sink=TestingSink(points),
                         mqtt_sink=TestingSink(out)))
    except Exception as exc:  # noqa: BLE001 - reported: the flow died
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
    secs = time.perf_counter() - t0
    if flow == "sensors":
        scored = sum(1 for p in points if p.measurement == "sensor_score" and p.tags.get("site") == "ok")
    else:
        scored = sum(int(p.fields["lines"]) for p in points if p.measurement == "log_window" and p.tags.get("site") == "ok")
    reasons = Counter(str(p.tags.get("reason")) for p in points if p.measurement == "ingest_error")
    dead = sum(1 for o in out if o.topic.startswith(settings.mqtt.deadletter_prefix))
    return {"flow": flow, "hostile": len(msgs), "errors": sum(reasons.values()), "reasons": reasons, "dead": dead,
            "good": len(good), "scored": scored, "secs": secs, "died": error}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--good", type=int, default=1000)
    ap.add_argument("--model", default=None, help="[log_detector].model (default: the configured one)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    settings = Settings()
    if args.model:
        settings.log_detector.model = args.model
    now = utcnow()
    fuzz = list(fuzz_messages(args.messages, seed=args.seed, now=now - timedelta(minutes=30)))
    good_sensors, good_logs = good_messages(args.good, now=now - timedelta(minutes=20))
    print(f"{args.messages} hostile messages (seed {args.seed}), then {args.good} good ones per flow; "
          f"log model {settings.log_detector.model!r}")
    ok = True
    for flow, prefix, good in (("sensors", "plant", good_sensors), ("logs", "logs", good_logs)):
        r = run(flow, [m for m in fuzz if m.topic.startswith(prefix)], good, settings)
        print(f"\n{flow}: {r['hostile']} hostile messages -> {r['errors']} ingest errors, {r['dead']} dead letters; "
              f"{r['scored']}/{r['good']} good {'readings' if flow == 'sensors' else 'lines'} after them scored; "
              f"{r['secs']:.1f} s; flow {'DIED: ' + str(r['died']) if r['died'] else 'ended normally'}")
        print("  errors by reason: " + ", ".join(f"{k} {v}" for k, v in r["reasons"].most_common()))  # type: ignore[attr-defined]
        ok = ok and not r["died"] and r["scored"] == r["good"] and r["dead"] == r["errors"]
    print("\nresult:", "both flows alive, every good message scored" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
