"""Prediction at real scale: trace, label and predict times of GPT-2 XL, LLaMA-2-7B, LLaMA-2-70B and
ResNet-50 (when torchvision imports), and the ratio (label + predict) / trace.

The models are built from their libraries' own classes on the meta device (no memory for weights, no
compute), so this runs on a laptop. The target (docs/SCALING.md) is a ratio of at most 0.25 for every
configuration and a LLaMA-2-70B total under 20 s. Run::

    python benchmarks/real_scale.py [NAME ...] [--json]

NAME is a display name or factory (``llama2_70b``); without one, every real-scale configuration.
"""
from __future__ import annotations

import argparse
import json
import resource

from ddgraph.cli.architectures import real_scale
from ddgraph.models.catalogue import REAL_SCALE

TARGET_RATIO = 0.25


def bench(entry) -> dict:
    """One configuration's timings (``error`` when its library is missing), with the ratio and peak memory."""
    r = real_scale(entry)
    if "error" not in r:
        r["total"] = r["trace"] + r["label"] + r["predict"]
        r["ratio"] = (r["label"] + r["predict"]) / r["trace"]
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
              f"{'label s':>8s} {'predict s':>9s} {'total s':>8s} {'(l+p)/t':>8s} {'max RSS GB':>10s}")
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
              f"{r['max_rss_gb']:10.2f}", flush=True)
    ran = [r for r in rows if "error" not in r]
    summary = {"target_ratio": TARGET_RATIO, "worst_ratio": max((r["ratio"] for r in ran), default=None),
               "all_within_target": all(r["ratio"] <= TARGET_RATIO for r in ran)}
    if args.json:
        print(json.dumps({"configs": rows, **summary}, indent=2))
    elif ran:
        print(f"worst (label + predict) / trace: {summary['worst_ratio']:.3f} (target <= {TARGET_RATIO})")


if __name__ == "__main__":
    main()
