"""A synthetic BGL-like fleet: many nodes, a few lines each, some FATAL bursts; window F1 per node.

No labelled BGL is at hand, so this builds one in the BGL format (label, epoch, date, node,
time, node, message) and runs ``oddwatch eval logs --format bgl`` on it: ``NODES`` nodes each
send a few routine ``RAS`` lines an hour (INFO, and a routine ``ERROR`` line seen every few
windows), and ``FAULTY`` of them, at random times, send a short burst of one of a few FATAL
messages (labelled). Prints window-level precision, recall and F1 of the detector's own
decisions with every node alone (``fleet = "source"``) and as one fleet (the default).
Nothing was tuned on it (seeded; ``--seed`` draws another).

Usage::

    python scripts/bgl_fleet.py [--seed 1] [--nodes 400] [--hours 6]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from oddwatch.core.log_pipeline import LogParams
from oddwatch.evaluation.logs import evaluate_logs

ROUTINE = ["RAS KERNEL INFO instruction cache parity error corrected",
           "RAS KERNEL INFO {n} double-hummer alignment exceptions",
           "RAS KERNEL INFO generating core.{n}",
           "RAS APP INFO ciod: generated {n} core files for program /bgl/apps/job{j}",
           "RAS KERNEL ERROR {n} torus receiver z+ input pipe error(s) (dcr 0x{n:04x}) detected and corrected"]
FATAL = ["RAS KERNEL FATAL data TLB error interrupt",
         "RAS KERNEL FATAL machine check interrupt (bit=0x{n:02x}): L2 dcache unit data parity error",
         "RAS APP FATAL ciod: Error reading message prefix after LOGIN_MESSAGE on CioStream socket to 172.16.96.{n}:{j}",
         "RAS KERNEL FATAL rts: kernel terminated for reason 1004rts: bad message header"]


def synthesize(seed: int, nodes: int, hours: float, faulty: int) -> list[str]:
    rng = random.Random(seed)
    t0, span = 1117838570.0, hours * 3600.0
    names = [f"R{r:02d}-M{m}-N{n}-C:J{j:02d}-U{u}" for r in range(8) for m in range(2) for n in range(4)
             for j in range(2, 18) for u in (1, 11)]
    rng.shuffle(names)
    rows: list[tuple[float, str, str]] = []
    for node in names[:nodes]:
        for _ in range(rng.randint(2, 12)):
            text = rng.choices(ROUTINE, weights=(5, 3, 2, 2, 2))[0]
            rows.append((t0 + rng.random() * span, node, "-" + " " + text.format(n=rng.randrange(4096), j=rng.randrange(99))))
    for node in rng.sample(names[:nodes], faulty):
        start, kind = t0 + (0.3 + 0.7 * rng.random()) * span, rng.choice(FATAL)
        for i in range(rng.randint(1, 6)):
            rows.append((start + i * rng.random() * 5, node, "FATAL " + kind.format(n=rng.randrange(255), j=rng.randrange(9999))))
    out = []
    for ts, node, rest in sorted(rows):
        label, text = rest.split(" ", 1)
        when = datetime.fromtimestamp(ts, UTC)
        label = "KERNDTLB" if label == "FATAL" else "-"
        out.append(f"{label} {int(ts)} {when:%Y.%m.%d} {node} {when:%Y-%m-%d-%H.%M.%S.%f} {node} {text}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=400)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--faulty", type=int, default=30)
    ap.add_argument("--model", default="default")
    args = ap.parse_args(argv)
    lines = synthesize(args.seed, args.nodes, args.hours, args.faulty)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bgl_fleet.log"
        path.write_text("\n".join(lines) + "\n")
        for fleet in ("source", "site/app"):
            s = evaluate_logs(path, fmt="bgl", params=LogParams(model=args.model, fleet=fleet))
            print(f"fleet = {fleet!r}: {s['lines']} lines, {s['windows']} windows ({s['anomalous_windows']} labelled), "
                  f"F1 {s['f1']:.3f} (P {s['precision']:.3f}, R {s['recall']:.3f}), false alerts {s['false_alerts']}, "
                  f"AUROC {s['auroc']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
