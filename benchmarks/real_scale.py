"""Prediction at real scale: trace, label and predict times of GPT-2 XL, LLaMA-2-7B, LLaMA-2-70B and
ResNet-50 (when torchvision imports), and the ratio (label + predict) / trace.

The models are built from their libraries' own classes on the meta device (no memory for weights, no
compute), so this runs on a laptop. The target (docs/SCALING.md) is a ratio of at most 0.25 for every
configuration and a LLaMA-2-70B total under 20 s. Run::

    python benchmarks/real_scale.py [NAME ...] [--json]

NAME is a display name or factory (``llama2_70b``); without one, every real-scale configuration. Wall
and process-CPU seconds are both printed: on a shared machine the CPU seconds are the better estimate
of a quiet machine's wall time.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

from ddgraph.cli.architectures import real_scale
from ddgraph.models.catalogue import REAL_SCALE

TARGET_RATIO = 0.25


class _CpuClock:
    """Process CPU seconds per stage, read beside the wall clock: on a loaded machine wall time waits
    for the other jobs, CPU time much less (run with OMP_NUM_THREADS=1 so the two are comparable)."""

    def __init__(self):
        self.marks = []

    def __call__(self):
        self.marks.append(time.process_time())
        return time.perf_counter()


def bench(entry) -> dict:
    """One configuration's timings (``error`` when its library is missing), with the ratio and peak memory."""
    clock = _CpuClock()
    r = real_scale(entry, clock=clock)
    if "error" not in r:
        r["total"] = r["trace"] + r["label"] + r["predict"]
        r["ratio"] = (r["label"] + r["predict"]) / r["trace"]
        t0, t1, t2, t3 = clock.marks
        r["cpu"] = {"trace": t1 - t0, "label": t2 - t1, "predict": t3 - t2, "total": t3 - t0,
                    "ratio": (t3 - t1) / (t1 - t0)}
        r["kl"] = None if r["kl"] is None else str(r["kl"])
    r["max_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return r


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="configurations to run (default: all)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    entries = [e for e in REAL_SCALE if not args.names or e.name in args.names
               or e.factory.split(":")[1] in args.names]
    if not entries:
        ap.error(f"no such configuration; choose from {', '.join(e.factory.split(':')[1] for e in REAL_SCALE)}")
    rows = []
    if not args.json:
        print(f"{'config':20s} {'params':>8s} {'nodes':>6s} {'rows':>5s} {'tracer':>7s} {'trace s':>8s} "
              f"{'label s':>8s} {'predict s':>9s} {'total s':>8s} {'(l+p)/t':>8s} {'CPU total s':>11s} "
              f"{'CPU (l+p)/t':>11s} {'max RSS GB':>10s}")
    for e in entries:
        r = bench(e)
        rows.append(r)
        if args.json:
            continue
        if "error" in r:
            print(f"{r['name']:20s} skipped: {r['error']}", flush=True)
            continue
        print(f"{r['name']:20s} {r['params'] / 1e9:7.2f}B {r['nodes']:6d} {r['rows']:5d} {r['tracer']:>7s} "
              f"{r['trace']:8.2f} {r['label']:8.2f} {r['predict']:9.2f} {r['total']:8.2f} {r['ratio']:8.3f} "
              f"{r['cpu']['total']:11.2f} {r['cpu']['ratio']:11.3f} {r['max_rss_gb']:10.2f}", flush=True)
    ran = [r for r in rows if "error" not in r]
    summary = {"target_ratio": TARGET_RATIO, "worst_ratio": max((r["ratio"] for r in ran), default=None),
               "all_within_target": all(r["ratio"] <= TARGET_RATIO for r in ran)}
    if args.json:
        print(json.dumps({"configs": rows, **summary}, indent=2))
    elif ran:
        print(f"worst (label + predict) / trace: {summary['worst_ratio']:.3f} (target <= {TARGET_RATIO})")


if __name__ == "__main__":
    main()
