"""Print DDCAdam's optimiser step time relative to torch.optim.AdamW (target: <= 2x), measured in one run.

Two tables: the benchmark models of docs/DDCADAM.md (gauges from ``DDCAdam.from_model``), and the worst
case by construction, a ReLU MLP of about 1M parameters with the per-channel ReLU gauge over a chosen
fraction of them (``--fractions``; 1.0 leaves only the last bias to AdamW). Both optimisers step
identical copies alternately; ratios are of median step times, wall and process CPU (CPU time does
not count waiting for a busy machine).

Usage: python benchmarks/optim_step.py [--width 1024] [--repeats 20] [--threads 1,2]
                                      [--fractions 0.1,0.5,0.9,1.0] [--params 1000000] [--json]
"""
import argparse
import json

import torch
from rich.console import Console
from rich.table import Table

from ddgraph.optim.bench import benchmark, gauged_fraction


def _floats(text):
    return [float(x) for x in text.split(",") if x]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts to measure with")
    ap.add_argument("--fractions", default="0.1,0.5,0.9,1.0", help="gauged fractions of the worst-case MLP")
    ap.add_argument("--params", type=int, default=1_000_000, help="size of the worst-case MLP")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    results = {}
    for threads in [int(x) for x in args.threads.split(",")]:
        torch.set_num_threads(threads)
        results[threads] = {"models": benchmark(args.width, args.repeats),
                            "gauged_fraction": gauged_fraction(_floats(args.fractions), args.params, args.repeats)}
    if args.json:
        print(json.dumps({str(k): v for k, v in results.items()}, indent=2))
        return
    console = Console()
    for threads, res in results.items():
        for key, title in (("models", "benchmark models"), ("gauged_fraction", "worst case: gauged fraction")):
            table = Table(title=f"optimizer.step() time, fp32, {threads} thread(s): {title}")
            for col in ("model", "params", "AdamW ms", "DDCAdam ms", "ratio wall", "ratio cpu", "gauges"):
                table.add_column(col)
            for r in res[key]:
                table.add_row(r["model"], f"{r['params']:,}", f"{r['adamw_ms']:.2f}", f"{r['ddcadam_ms']:.2f}",
                              f"{r['ratio']:.2f}x", f"{r['cpu_ratio']:.2f}x", r["gauges"])
            console.print(table)


if __name__ == "__main__":
    main()
